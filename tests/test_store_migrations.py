"""`manage_media.py migrate` on a real PostgreSQL: applied once, recorded like the Supabase CLI,
older rows repaired, row-level security on every table."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import psycopg

from social_tui_media.store.migrations import MIGRATIONS_DIR, apply_pending, available_migrations
from tests.conftest import ROOT

TABLES = (
    "posts",
    "download_runs",
    "data_downloads",
    "profiles",
    "tags",
    "profile_tags",
    "post_tags",
    "action_queue",
    "post_media",
)


def run(env, *args):
    return subprocess.run(
        [sys.executable, str(ROOT / "manage_media.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def env_for(url: str, tmp_path) -> dict:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "SUPABASE", "MEDIA_"))}
    env.update(
        DATABASE_URL=url, MEDIA_CACHE_DIR=str(tmp_path / "cache"), MEDIA_LOG_FILE=str(tmp_path / "media.log")
    )
    return env


def test_migrate_applies_all_then_is_a_no_op(pg_empty_database_factory, tmp_path):
    url = pg_empty_database_factory()
    env = env_for(url, tmp_path)
    first = run(env, "migrate")
    assert first.returncode == 0, first.stderr
    names = [f"{m.version}_{m.name}" for m in available_migrations()]
    assert all(f"applied {n}" in first.stderr for n in names)
    with psycopg.connect(url) as conn:
        recorded = conn.execute(
            "SELECT version, name, statements FROM supabase_migrations.schema_migrations ORDER BY version"
        ).fetchall()
    assert [f"{v}_{n}" for v, n, _ in recorded] == names
    assert all(statements and statements[0].strip() for _, _, statements in recorded)
    second = run(env, "migrate")
    assert second.returncode == 0 and "no pending migrations" in second.stderr


def test_unmigrated_database_exits_2_saying_to_migrate(pg_empty_database_factory, tmp_path):
    result = run(env_for(pg_empty_database_factory(), tmp_path), "stats")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "run `python manage_media.py migrate`" in lines[0]


def test_row_level_security_on_every_table(pg_url):
    with psycopg.connect(pg_url) as conn:
        rows = dict(
            conn.execute(
                "SELECT relname, relrowsecurity FROM pg_class WHERE relname = ANY(%s) AND relkind = 'r'",
                (list(TABLES),),
            ).fetchall()
        )
    assert rows == {t: True for t in TABLES}


def test_older_rows_are_repaired_by_the_pipeline_migration(pg_empty_database_factory, tmp_path):
    url = pg_empty_database_factory()
    partial = tmp_path / "migrations"
    partial.mkdir()
    base, spec = available_migrations()[:2]
    shutil.copy(base.path, partial / base.path.name)
    apply_pending(url, partial)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO posts (post_id, urn) VALUES ('p-1', 'urn:li:activity:1')")
        conn.execute(
            "INSERT INTO post_media (media_id, post_id, media_type, media_url, ai_analysis) VALUES"
            " ('med-a', 'p-1', 'image', 'https://media.licdn.com/x/1?e=1', 'a chart of sales'),"
            " ('med-b', 'p-1', 'image', 'https://media.licdn.com/x/1?e=2', NULL)"
        )
    shutil.copy(spec.path, partial / spec.path.name)
    apply_pending(url, partial)
    with psycopg.connect(url, autocommit=True) as conn:
        # the older scripts stored the log as a JSON string inside jsonb, and cached files
        conn.execute(
            "UPDATE post_media SET ai_analysis_log = to_jsonb(%s::text), md5_sum = %s, local_file_path = %s WHERE media_id = 'med-a'",
            (
                json.dumps([{"event": "media_downloaded", "status": "success"}]),
                "f" * 32,
                "cache/images/x.jpg",
            ),
        )
    assert [m.name for m in apply_pending(url)] == [m.name for m in available_migrations()[2:]]
    with psycopg.connect(url) as conn:
        rows = {r[0]: r[1:] for r in conn.execute(
            "SELECT media_id, slot_key, ai_analysis_status, ai_analysis, ai_analysis_log, download_status FROM post_media"
        ).fetchall()}  # fmt: skip
    a, b = rows["med-a"], rows["med-b"]
    assert a[0] == "https://media.licdn.com/x/1" and b[0] == "https://media.licdn.com/x/1#med-b"
    assert a[1] == b[1] == "not_started"
    assert a[2] == {"description": "a chart of sales"}
    assert a[3] == [{"event": "media_downloaded", "status": "success"}]
    assert a[4] == "downloaded" and b[4] == "pending"


def test_migrations_dir_is_the_supabase_layout():
    names = sorted(p.name for p in MIGRATIONS_DIR.glob("*.sql"))
    assert names[:2] == ["20251130223349_create_schema.sql", "20251201123623_add_media_tracking_columns.sql"]
