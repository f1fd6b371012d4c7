"""Apply `supabase/migrations/*.sql` to PostgreSQL, recorded the way the Supabase CLI records
them (`supabase_migrations.schema_migrations`), so this tool and the CLI agree on what ran.

Works on any existing social-tui installation: one whose history the Supabase CLI recorded,
one that recorded the media migration under another version, and one with no history at all
(its schema applied by hand), whose baseline is detected from what the database holds and
recorded without running anything again. A run is one transaction: it applies everything
pending or nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.rows import tuple_row

MIGRATIONS_DIR = Path(__file__).resolve().parent / "schema" / "migrations"  # supabase/migrations links here
HISTORY = "supabase_migrations.schema_migrations"
# Versions an installation may have recorded for one of ours (the spec's report of Phase 1).
ALIASES = {"20251201203830": "20251201123623"}
# The installation's own migrations, and how to tell one was applied when no history was kept.
BASELINE = {
    "20251130223349": "SELECT to_regclass('public.posts') IS NOT NULL",
    "20251130230000": "SELECT to_regclass('public.v_post_engagement_history') IS NOT NULL",
    "20251130233000": "SELECT to_regclass('public.v_post_engagement_history') IS NOT NULL",
    "20251130234500": "SELECT to_regclass('public.v_post_engagement_history') IS NOT NULL",
    "20251201000000": "SELECT to_regclass('public.v_post_engagement_history') IS NOT NULL",
    "20251201000100": "SELECT to_regclass('public.v_post_engagement_history') IS NOT NULL",
    "20251201123623": """SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'public'
                                AND table_name = 'post_media' AND column_name = 'md5_sum')""",
    "20251201200836": "SELECT to_regclass('public.v_profiles_with_stats') IS NOT NULL",
    "20251202010717": "SELECT to_regclass('public.v_main_post_view') IS NOT NULL",
}
BASELINE_NOTE = "-- recorded by manage_media.py migrate: found in the database, which kept no history"
log = logging.getLogger(__name__)


class MigrationFailed(Exception):
    """A migration could not be applied; nothing of the run was kept."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path


@dataclass(frozen=True)
class MigrationReport:
    applied: list[Migration]
    baseline: list[Migration]  # found in a database without history, recorded without running


def available_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Migration files in the CLI's `<version>_<name>.sql` layout, in file-name order."""
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        version, _, name = path.stem.partition("_")
        if version.isdigit():
            migrations.append(Migration(version, name, path))
    return migrations


def _has_history(conn: psycopg.Connection) -> bool:
    cur = conn.cursor(row_factory=tuple_row)
    return cur.execute(f"SELECT to_regclass('{HISTORY}') IS NOT NULL").fetchone()[0]


def applied_versions(conn: psycopg.Connection) -> set[str]:
    """The versions the history holds, aliases read as the version they stand for."""
    if not _has_history(conn):
        return set()
    cur = conn.cursor(row_factory=tuple_row)
    return {ALIASES.get(r[0], r[0]) for r in cur.execute(f"SELECT version FROM {HISTORY}")}


def pending_migrations(conn: psycopg.Connection, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    done = applied_versions(conn)
    return [m for m in available_migrations(directory) if m.version not in done]


def _baseline(conn: psycopg.Connection, pending: list[Migration]) -> list[Migration]:
    """The installation's migrations a database without history already holds."""
    cur = conn.cursor(row_factory=tuple_row)
    return [m for m in pending if m.version in BASELINE and cur.execute(BASELINE[m.version]).fetchone()[0]]


def _record(conn: psycopg.Connection, migration: Migration, statements: list[str]) -> None:
    conn.execute(
        f"INSERT INTO {HISTORY} (version, statements, name) VALUES (%s, %s, %s)",
        (migration.version, statements, migration.name),
    )


def apply_pending(conninfo: str, directory: Path = MIGRATIONS_DIR) -> MigrationReport:
    """Apply every pending migration in one transaction; a failure keeps nothing of the run."""
    with psycopg.connect(conninfo, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('social_tui_migrate'))")  # one migrator at a time
        without_history = not _has_history(conn)
        conn.execute("CREATE SCHEMA IF NOT EXISTS supabase_migrations")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {HISTORY} (version TEXT NOT NULL PRIMARY KEY, statements TEXT[], name TEXT)"
        )
        pending = pending_migrations(conn, directory)
        baseline = _baseline(conn, pending) if without_history else []
        for migration in baseline:
            _record(conn, migration, [BASELINE_NOTE])
        applied = [m for m in pending if m not in baseline]
        for migration in applied:
            sql = migration.path.read_text()
            try:
                with conn.transaction():
                    conn.execute(sql)
            except psycopg.Error as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise MigrationFailed(f"{migration.version}_{migration.name}: {first}") from None
            _record(conn, migration, [sql])
            log.info("applied migration %s_%s", migration.version, migration.name)
    return MigrationReport(applied, baseline)
