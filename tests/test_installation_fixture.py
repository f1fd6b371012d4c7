"""The existing-installation fixture (devtools.installation) builds what EXISTING_INSTALL.md describes."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from devtools.installation import (
    HISTORY_VARIANTS,
    MEDIA_OTHER_VERSION,
    MEDIA_VERSION,
    SECURITY_PASS,
    TABLES,
    VIEWS,
    build_installation,
    migration_files,
    seed_installation,
    snapshot,
)

ADMIN_URL = os.environ.get("TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SAMPLES = json.loads((Path(__file__).resolve().parent.parent / "samples" / "posts_scrape1.json").read_text())

# EXISTING_INSTALL.md, "Tables": each table's columns with their types (tstz: timestamptz).
DOCUMENTED_COLUMNS = {
    "posts": "post_id text, urn text, full_urn text, platform text, posted_at_timestamp bigint,"
    " author_username text, text_content text, post_type text, url text, raw_json text, first_seen_at tstz,"
    " is_read boolean, is_marked boolean, created_at tstz, updated_at tstz",
    "download_runs": "run_id text, started_at tstz, completed_at tstz, status text, script_name text,"
    " platform text, posts_fetched integer, posts_new integer, posts_updated integer, error_message text,"
    " system_info text, created_at tstz",
    "data_downloads": "download_id text, post_id text, run_id text, downloaded_at tstz, total_reactions integer,"
    " stats_json text, raw_json text, source_file_path text, created_at tstz",
    "profiles": "profile_id text, username text, name text, platform text, is_active boolean, notes text,"
    " post_count integer, last_synced_at tstz, created_at tstz, updated_at tstz",
    "tags": "tag_id text, name text, description text, color text, created_at tstz",
    "profile_tags": "profile_tag_id text, profile_id text, tag_id text, created_at tstz",
    "post_tags": "post_tag_id text, post_id text, tag_id text, confidence real, applied_by text,"
    " system_notes text, created_at tstz",
    "action_queue": "action_id text, post_id text, action_type text, action_params text, status text,"
    " priority integer, scheduled_for tstz, executed_at tstz, user_notes text, system_notes text,"
    " created_at tstz, updated_at tstz",
    "post_media": "media_id text, post_id text, media_type text, media_url text, local_file_path text,"
    " file_size integer, mime_type text, width integer, height integer, ai_analysis_status text,"
    " ai_analysis text, ai_analyzed_at tstz, md5_sum text, archive_url text, ai_analysis_log jsonb,"
    " created_at tstz, updated_at tstz",
}
# EXISTING_INSTALL.md, "Views" (the two views it leaves open keep the original's columns).
VIEW_COLUMNS = {
    "v_main_post_view": "post_id platform urn posted_at_formatted author_username text_preview media_indicator"
    " marked_indicator first_seen_at raw_json",
    "v_post_engagement_history": "post_id post_urn author_username downloaded_at reactions comments reposts views"
    " stats_json download_id run_id",
    "v_profiles_with_stats": "profile_id username name platform notes is_active created_at updated_at"
    " last_synced_at post_count tags",
}
ID_PREFIXES = dict(zip(TABLES, "p run dl prf tag pft ptg act med".split(), strict=True))


def columns(spec: str) -> dict[str, str]:
    """`"a text, b tstz"` as information_schema names the types."""
    pairs = (column.split() for column in spec.split(","))
    return {name: "timestamp with time zone" if kind == "tstz" else kind for name, kind in pairs}


@pytest.fixture
def empty_db() -> Iterator[str]:
    """A throwaway database, dropped after the test."""
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL is not reachable at {ADMIN_URL}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so this test may not skip)")
        pytest.skip(reason)
    name = f"social_tui_install_{uuid.uuid4().hex[:10]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlunsplit(urlsplit(ADMIN_URL)._replace(path=f"/{name}"))
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=HISTORY_VARIANTS)
def installation(request, empty_db) -> Iterator[tuple[str, psycopg.Connection, dict]]:
    """A built and seeded installation of each history variant: (variant, connection, seeded ids)."""
    build_installation(empty_db, request.param)
    with psycopg.connect(empty_db, autocommit=True) as conn:
        yield request.param, conn, seed_installation(conn, SAMPLES)


def test_tables_have_exactly_the_documented_columns(installation):
    _, conn, _ = installation
    rows = conn.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name = ANY(%s)",
        (list(TABLES),),
    ).fetchall()
    found: dict[str, dict[str, str]] = {}
    for table, column, data_type in rows:
        found.setdefault(table, {})[column] = data_type
    assert found == {table: columns(spec) for table, spec in DOCUMENTED_COLUMNS.items()}


def test_post_media_status_check_and_default_are_the_media_migrations(installation):
    _, conn, _ = installation
    default = conn.execute(
        "SELECT column_default FROM information_schema.columns"
        " WHERE table_name = 'post_media' AND column_name = 'ai_analysis_status'"
    ).fetchone()[0]
    check = conn.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'post_media_ai_analysis_status_check'"
    ).fetchone()[0]
    assert default.startswith("'not_started'")
    assert all(f"'{s}'" in check for s in ("not_started", "started", "completed", "failed", "pending"))


def test_views_return_rows_with_documented_columns(installation):
    _, conn, _ = installation
    for view in VIEWS:
        cur = conn.execute(f"SELECT * FROM {view}")
        assert [c.name for c in cur.description] == VIEW_COLUMNS[view].split()
        assert cur.fetchall(), view


def test_main_post_view_shows_media_and_marks(installation):
    _, conn, seeded = installation
    rows = {
        r[0]: r
        for r in conn.execute("SELECT post_id, media_indicator, marked_indicator FROM v_main_post_view")
    }
    carousel = seeded["post_by_urn"][SAMPLES[1]["full_urn"]]
    assert rows[carousel][1] == f"📷({len(SAMPLES[1]['media']['images'])})"
    assert rows[seeded["posts"][0]][2].startswith("★")


def test_rls_is_enabled_with_four_policies_per_table_and_views_run_as_invoker(installation):
    _, conn, _ = installation
    rls = dict(
        conn.execute("SELECT relname, relrowsecurity FROM pg_class WHERE relname = ANY(%s)", (list(TABLES),))
    )
    assert rls == dict.fromkeys(TABLES, True)
    policies = conn.execute(
        "SELECT tablename, cmd, qual, with_check FROM pg_policies WHERE schemaname = 'public'"
    ).fetchall()
    for table in TABLES:
        by_cmd = {cmd: (qual, check) for t, cmd, qual, check in policies if t == table}
        assert set(by_cmd) == {"SELECT", "INSERT", "UPDATE", "DELETE"}, table
        assert by_cmd["SELECT"][0] == "true"
        assert "authenticated" in by_cmd["INSERT"][1] and "authenticated" in by_cmd["DELETE"][0]
    options = dict(
        conn.execute("SELECT relname, reloptions FROM pg_class WHERE relname = ANY(%s)", (list(VIEWS),))
    )
    assert options == dict.fromkeys(VIEWS, ["security_invoker=on"])


def test_history_table_holds_what_the_variant_says(installation):
    variant, conn, _ = installation
    exists = conn.execute(
        "SELECT to_regclass('supabase_migrations.schema_migrations') IS NOT NULL"
    ).fetchone()[0]
    if variant == "no_history":
        assert not exists
        return
    rows = conn.execute(
        "SELECT version, name, statements FROM supabase_migrations.schema_migrations ORDER BY version"
    ).fetchall()
    expected = {}
    for path in migration_files():
        version, _, name = path.stem.partition("_")
        if variant == "media_other_version" and version == MEDIA_VERSION:
            version = MEDIA_OTHER_VERSION
        expected[version] = (name, [path.read_text()])
    assert {version: (name, statements) for version, name, statements in rows} == expected
    assert len(rows) == 9


def test_every_migration_file_runs_again_without_changing_a_row(installation):
    _, conn, _ = installation
    before = snapshot(conn)
    for path in migration_files():
        conn.execute(path.read_text())
    assert snapshot(conn) == before


def test_security_pass_runs_again(installation):
    _, conn, _ = installation
    conn.execute(SECURITY_PASS.read_text())


def test_seeded_media_log_is_a_json_string(installation):
    _, conn, seeded = installation
    kind, log = conn.execute(
        "SELECT jsonb_typeof(ai_analysis_log), ai_analysis_log #>> '{}' FROM post_media WHERE media_id = %s",
        (seeded["media"]["cached"],),
    ).fetchone()
    assert kind == "string"
    assert json.loads(log)[0]["event"] == "media_downloaded"


def test_seeded_media_rows_keep_what_the_scripts_wrote(installation):
    _, conn, seeded = installation
    rows = {
        r[0]: r[1:]
        for r in conn.execute(
            "SELECT media_id, md5_sum, local_file_path, ai_analysis_status, ai_analysis, local_file_path IS NULL"
            " AND ai_analysis_log IS NULL AND mime_type IS NULL FROM post_media"
        )
    }
    media = seeded["media"]
    for media_id, expected in seeded["files"].items():
        assert rows[media_id][:2] == (expected["md5_sum"], expected["local_file_path"])
    assert rows[media["analysed"]][2:4] == ("completed", seeded["ai_analysis"][media["analysed"]])
    assert rows[media["pending"]][2] == "pending"
    assert rows[media["youtube"]][2] == "not_started" and rows[media["youtube"]][4]


def test_seeded_ids_have_the_installation_format(installation):
    _, conn, seeded = installation
    for table, prefix in ID_PREFIXES.items():
        assert seeded[table], table
        assert all(re.fullmatch(rf"{prefix}-[0-9a-f]{{8}}", i) for i in seeded[table]), table
    counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    assert counts == {t: len(seeded[t]) for t in TABLES}


def test_engagement_history_has_a_zero_point_and_a_snapshot_per_post(installation):
    _, conn, seeded = installation
    rows = conn.execute("SELECT post_id, download_id, reactions FROM v_post_engagement_history").fetchall()
    for post_id in seeded["posts"]:
        kinds = sorted(d == "virtual_initial_point" for p, d, _ in rows if p == post_id)
        assert kinds == [False, True], post_id
    reactions = {p: r for p, d, r in rows if d != "virtual_initial_point"}
    first = seeded["post_by_urn"][SAMPLES[0]["full_urn"]]
    assert reactions[first] == SAMPLES[0]["stats"]["total_reactions"]
