"""Apply `supabase/migrations/*.sql` to PostgreSQL, recorded the way the Supabase CLI records
them (`supabase_migrations.schema_migrations`), so this tool and the CLI agree on what ran."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.rows import tuple_row

MIGRATIONS_DIR = Path(__file__).resolve().parent / "schema" / "migrations"  # supabase/migrations links here
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path


def available_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Migration files in the CLI's `<version>_<name>.sql` layout, in file-name order."""
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        version, _, name = path.stem.partition("_")
        if version.isdigit():
            migrations.append(Migration(version, name, path))
    return migrations


def _ensure_history_table(conn: psycopg.Connection) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS supabase_migrations")
    conn.execute(
        """CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations (
               version TEXT NOT NULL PRIMARY KEY, statements TEXT[], name TEXT)"""
    )


def applied_versions(conn: psycopg.Connection) -> set[str]:
    cur = conn.cursor(row_factory=tuple_row)
    exists = cur.execute("SELECT to_regclass('supabase_migrations.schema_migrations') IS NOT NULL").fetchone()
    if not exists[0]:
        return set()
    return {r[0] for r in cur.execute("SELECT version FROM supabase_migrations.schema_migrations")}


def pending_migrations(conn: psycopg.Connection, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    done = applied_versions(conn)
    return [m for m in available_migrations(directory) if m.version not in done]


def apply_pending(conninfo: str, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply every pending migration, each in its own transaction; returns what ran."""
    applied = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        # One migrator at a time, whichever machine runs it.
        conn.execute("SELECT pg_advisory_lock(hashtext('social_tui_migrate'))")
        try:
            _ensure_history_table(conn)
            for migration in pending_migrations(conn, directory):
                sql = migration.path.read_text()
                with conn.transaction():
                    conn.execute(sql)
                    conn.execute(
                        "INSERT INTO supabase_migrations.schema_migrations (version, statements, name)"
                        " VALUES (%s, %s, %s)",
                        (migration.version, [sql], migration.name),
                    )
                log.info("applied migration %s_%s", migration.version, migration.name)
                applied.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext('social_tui_migrate'))")
    return applied
