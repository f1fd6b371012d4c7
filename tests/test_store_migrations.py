"""`manage_media.py migrate` on a real PostgreSQL: applied once, recorded like the Supabase CLI,
older rows repaired, row-level security on every table."""

from __future__ import annotations

import subprocess
import sys

import psycopg

from social_tui_media.store.migrations import MIGRATIONS_DIR, available_migrations
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
    env.update(DATABASE_URL=url, SOCIAL_TUI_HOME=str(tmp_path))
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


def test_migrations_start_with_the_installations_history_in_the_supabase_layout():
    names = [p.name for p in sorted((ROOT / "supabase" / "migrations").glob("*.sql"))]
    assert names[:9] == [
        "20251130223349_create_schema.sql",
        "20251130230000_create_engagement_view.sql",
        "20251130233000_alter_engagement_view_with_zero_point.sql",
        "20251130234500_correct_engagement_view_zero_point.sql",
        "20251201000000_fix_virtual_zero_point_to_use_posted_at.sql",
        "20251201000100_fix_virtual_zero_point_min_time.sql",
        "20251201123623_add_media_tracking_columns.sql",
        "20251201200836_create_v_profiles_with_stats_view.sql",
        "20251202010717_update_main_post_view.sql",
    ]
    assert names == sorted(p.name for p in MIGRATIONS_DIR.glob("*.sql"))
