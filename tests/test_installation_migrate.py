"""`migrate` on an existing social-tui installation (each history variant of EXISTING_INSTALL.md):
nothing lost, twice is once, the original scripts keep working, our import fills it the way
its readers expect."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import psycopg
import pytest
from psycopg.rows import dict_row

from devtools.installation import (
    HISTORY_VARIANTS,
    OriginalScripts,
    build_installation,
    seed_installation,
    snapshot,
)
from social_tui_media.jobs.import_posts import import_path
from social_tui_media.store.interface import slot_key
from social_tui_media.store.migrations import MIGRATIONS_DIR, MigrationFailed, apply_pending
from social_tui_media.store.postgres import PostgresStore
from tests.conftest import ROOT, SCRAPE1, SCRAPE2

SAMPLES = json.loads(SCRAPE1.read_text())


@pytest.fixture(params=HISTORY_VARIANTS)
def installation(request, pg_empty_database_factory) -> tuple[str, dict]:
    """A seeded installation of one history variant, with one archived row, before migrate."""
    url = pg_empty_database_factory()
    build_installation(url, request.param)
    with psycopg.connect(url, autocommit=True) as conn:
        seeded = seed_installation(conn, SAMPLES)
        conn.execute(
            "UPDATE post_media SET archive_url = 's3://archive/media/2025/11/x.jpg' WHERE media_id = %s",
            (seeded["media"]["analysed"],),
        )
    return url, seeded


def migrate(url: str, tmp_path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": url, "SOCIAL_TUI_HOME": str(tmp_path)}
    return subprocess.run(
        [sys.executable, str(ROOT / "manage_media.py"), "migrate"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def rows(url: str, sql: str, params=()) -> list[dict]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()


def history_state(conn) -> list | None:
    """The recorded history, or None when the database keeps none."""
    if conn.execute("SELECT to_regclass('supabase_migrations.schema_migrations')").fetchone()[0] is None:
        return None
    return conn.execute(
        "SELECT version, name FROM supabase_migrations.schema_migrations ORDER BY 1"
    ).fetchall()


def test_migrate_keeps_every_row_and_twice_is_once(installation, tmp_path):
    url, seeded = installation
    with psycopg.connect(url) as conn:
        before = snapshot(conn)
    first = migrate(url, tmp_path)
    assert first.returncode == 0, first.stderr
    history = rows(url, "SELECT version, statements FROM supabase_migrations.schema_migrations ORDER BY 1")
    second = migrate(url, tmp_path)
    assert second.returncode == 0 and "up to date" in second.stderr
    assert (
        rows(url, "SELECT version, statements FROM supabase_migrations.schema_migrations ORDER BY 1")
        == history
    )
    with psycopg.connect(url) as conn:
        after = snapshot(conn)
    assert after["views"] == before["views"]  # the TUI's views: same columns
    for table, old_rows in before["tables"].items():
        new_rows = after["tables"][table]
        assert len(new_rows) == len(old_rows), table
        for old, new in zip(old_rows, new_rows, strict=True):
            kept = {
                k: v
                for k, v in old.items()
                if k not in ("ai_analysis_log", "ai_analysis_status", "updated_at")
            }
            assert {k: new[k] for k in kept} == kept, table
    media = {r["media_id"]: r for r in after["tables"]["post_media"]}
    analysed = media[seeded["media"]["analysed"]]
    assert analysed["archive_url"] == "s3://archive/media/2025/11/x.jpg"
    assert json.loads(analysed["ai_analysis"]) == json.loads(seeded["ai_analysis"][analysed["media_id"]])


def test_migrated_rows_are_repaired_for_the_pipeline(installation, tmp_path):
    url, seeded = installation
    assert migrate(url, tmp_path).returncode == 0
    media = {r["media_id"]: r for r in rows(url, "SELECT * FROM post_media")}
    assert all(isinstance(r["ai_analysis_log"], list) for r in media.values())  # JSON strings became arrays
    assert media[seeded["media"]["pending"]]["ai_analysis_status"] == "not_started"  # claimable now
    assert media[seeded["media"]["cached"]]["download_status"] == "downloaded"
    assert media[seeded["media"]["youtube"]]["download_status"] == "pending"
    assert all(r["slot_key"] == slot_key(r["media_url"]) for r in media.values())
    history = {r["version"] for r in rows(url, "SELECT version FROM supabase_migrations.schema_migrations")}
    assert {"20251205000000", "20251205000100"} <= history
    assert "20251201123623" in history or "20251201203830" in history


def test_views_keep_their_security_setting_and_their_definition(installation, tmp_path):
    url, _ = installation
    query = (
        "SELECT relname, reloptions, pg_get_viewdef(oid) AS definition FROM pg_class"
        " WHERE relkind = 'v' AND relnamespace = 'public'::regnamespace ORDER BY 1"
    )
    before = rows(url, query)
    assert migrate(url, tmp_path).returncode == 0
    assert rows(url, query) == before
    assert all("security_invoker=on" in (v["reloptions"] or []) for v in before)


def test_the_original_scripts_keep_working_after_migrate(installation, tmp_path):
    url, seeded = installation
    assert migrate(url, tmp_path).returncode == 0
    post = json.loads(SCRAPE2.read_text())["matching_elements"][0]
    post = {**post, "full_urn": "urn:li:activity:9999", "urn": "urn:li:activity:9999"}
    with psycopg.connect(url, autocommit=True) as conn:
        scripts = OriginalScripts(conn)
        run_id = scripts.create_run()
        post_id = scripts.insert_post(post)
        scripts.insert_data_download(post_id, run_id, post, "data/new.json")
        image = "https://media.licdn.com/dms/image/v2/Z/feedshare-shrink_800/0/1?e=1764877600&v=beta&t=old"
        first = scripts.insert_media(post_id, image, "image")
        again = scripts.insert_media(post_id, image.replace("t=old", "t=new"), "image")  # a re-scrape
        youtube = scripts.insert_youtube_media(post_id, "https://www.youtube.com/watch?v=abc")
        scripts.record_analysis(first, {"description": "d", "tags": []})
        scripts.complete_run(run_id, processed=1, new=1)
    media = {r["media_id"]: r for r in rows(url, "SELECT * FROM post_media WHERE post_id = %s", (post_id,))}
    assert media[first]["slot_key"] == media[again]["slot_key"] == slot_key(image)
    assert media[again]["duplicate_of"] == first and media[first]["duplicate_of"] is None
    assert isinstance(media[first]["ai_analysis_log"], list)
    assert media[youtube]["slot_key"] == slot_key("https://www.youtube.com/watch?v=abc")
    assert (
        media[youtube]["download_status"] == "pending"
        and media[youtube]["ai_analysis_status"] == "not_started"
    )


def test_our_import_fills_the_installation_the_way_its_readers_expect(installation, tmp_path):
    url, seeded = installation
    assert migrate(url, tmp_path).returncode == 0
    posts_dir = tmp_path / "posts"
    posts_dir.mkdir()
    shutil.copy(SCRAPE1, posts_dir)
    store = PostgresStore(url)
    try:
        report = import_path(store, posts_dir)
    finally:
        store.close()
    assert report.posts_new == 0  # every sample was stored by the original scripts: same post_id
    ids = {r["urn"]: r["post_id"] for r in rows(url, "SELECT urn, post_id FROM posts")}
    assert all(ids[urn] == post_id for urn, post_id in seeded["post_by_urn"].items())
    cached = rows(
        url, "SELECT post_id, slot_key FROM post_media WHERE media_id = %s", (seeded["media"]["cached"],)
    )[0]
    same_slot = rows(
        url, "SELECT count(*) AS n FROM post_media WHERE post_id = %s AND slot_key = %s",
        (cached["post_id"], cached["slot_key"]),
    )  # fmt: skip
    assert same_slot[0]["n"] == 1  # the slot they stored is ours too, not a second row
    [run] = rows(url, "SELECT * FROM download_runs WHERE run_id = %s", (report.run_id,))
    assert (run["status"], run["platform"], run["posts_fetched"]) == ("completed", "linkedin", len(SAMPLES))
    assert run["started_at"] is not None and json.loads(run["system_info"])["script"]
    downloads = rows(url, "SELECT * FROM data_downloads WHERE run_id = %s", (report.run_id,))
    assert len(downloads) == len(SAMPLES)
    assert all(d["source_file_path"].endswith("posts_scrape1.json") for d in downloads)
    assert all(json.loads(d["raw_json"])["full_urn"] for d in downloads)
    history = rows(url, "SELECT * FROM v_post_engagement_history WHERE download_id IN "
                        "(SELECT download_id FROM data_downloads WHERE run_id = %s)", (report.run_id,))  # fmt: skip
    assert len(history) == len(SAMPLES)
    main_view = rows(url, "SELECT post_id, media_indicator FROM v_main_post_view")
    assert {r["post_id"] for r in main_view} >= set(ids.values())


def test_a_failing_migration_leaves_the_database_as_it_was(installation, tmp_path):
    url, _ = installation
    broken = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, broken)
    (broken / "20251299000000_broken.sql").write_text("ALTER TABLE posts ADD COLUMN oops TEXT; SELECT 1/0;")
    with psycopg.connect(url) as conn:
        before = snapshot(conn)
        history_before = history_state(conn)
    with pytest.raises(MigrationFailed, match="20251299000000_broken: division by zero"):
        apply_pending(url, broken)
    with psycopg.connect(url) as conn:
        assert snapshot(conn) == before
        columns = conn.execute(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'post_media' AND column_name = 'slot_key'"
        ).fetchone()[0]
        assert columns == 0
        assert history_state(conn) == history_before


def test_the_rest_back_end_imports_into_a_migrated_installation(installation, tmp_path):
    from devtools.postgrest_server import PostgrestTestServer
    from social_tui_media.store.rest import RestStore

    url, seeded = installation
    assert migrate(url, tmp_path).returncode == 0
    posts_dir = tmp_path / "posts"
    posts_dir.mkdir()
    shutil.copy(SCRAPE2, posts_dir)
    with PostgrestTestServer(url) as server:
        store = RestStore(server.url, server.service_key)
        try:
            report = import_path(store, posts_dir)
            assert report.posts_new == 0 and report.media_total > 0
            assert store.media_counts()["posts_total"] == len(seeded["posts"])
        finally:
            store.close()


def test_sqlite_has_the_installations_tables_and_views(tmp_path):
    import sqlite3

    from social_tui_media.store.sqlite import SQLiteStore
    from tests.test_installation_fixture import DOCUMENTED_COLUMNS, VIEW_COLUMNS

    SQLiteStore(tmp_path / "db.sqlite").close()
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        for table, spec in DOCUMENTED_COLUMNS.items():
            have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            assert {c.split()[0] for c in spec.split(",")} <= have, table
        for view, names in VIEW_COLUMNS.items():
            assert [
                d[0] for d in conn.execute(f"SELECT * FROM {view} LIMIT 0").description
            ] == names.split(), view
