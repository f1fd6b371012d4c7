"""The PostgreSQL back end (psycopg 3): the transport for the SQL functions in the migrations.

Each function is called the way PostgREST calls it: its named arguments arrive as one JSON
object, typed from the function's own signature (`jsonb_to_record`), so both back ends send the
same values and get the same results.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from social_tui_media.store.interface import SchemaMissing, StoreError
from social_tui_media.store.migrations import pending_migrations
from social_tui_media.store.rows import normalize_row
from social_tui_media.store.sql_functions import SqlFunctionStore

SIGNATURE_SQL = """
SELECT p.proretset AS returns_set, p.prorettype = 'void'::regtype AS returns_void,
       t.typtype = 'c' OR p.proargmodes IS NOT NULL AS returns_rows,
       coalesce(p.proargnames[1:p.pronargs], '{}') AS names,
       ARRAY(SELECT format_type(a, NULL) FROM unnest(p.proargtypes::oid[]) a) AS types
  FROM pg_proc p JOIN pg_type t ON t.oid = p.prorettype
 WHERE p.proname = %s AND p.pronamespace = 'public'::regnamespace"""


def _redacted(conninfo: str) -> str:
    try:
        params = psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "the configured database"
    return f"{params.get('host', 'localhost')}:{params.get('port', 5432)}/{params.get('dbname', '')}"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class PostgresStore(SqlFunctionStore):
    """MediaStore on PostgreSQL. One connection shared under a lock; every call its own transaction."""

    def __init__(self, conninfo: str, check_schema: bool = True):
        try:
            self._conn = psycopg.connect(conninfo, autocommit=True, row_factory=dict_row)
        except psycopg.ProgrammingError:  # its message may quote the string, password included
            raise StoreError(
                "DATABASE_URL is not a valid PostgreSQL URL: expected postgresql://user:password@host:5432/dbname"
            ) from None
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "connection failed"
            raise StoreError(f"cannot connect to PostgreSQL at {_redacted(conninfo)}: {reason}") from None
        self._lock = threading.RLock()
        self._calls: dict[str, tuple[sql.Composable, bool, bool]] = {}
        if check_schema:
            pending = pending_migrations(self._conn)
            if pending:
                names = ", ".join(f"{m.version}_{m.name}" for m in pending)
                raise SchemaMissing(
                    f"database is not migrated ({len(pending)} pending: {names}): "
                    "run `python manage_media.py migrate`"
                )

    def _call(self, function: str, params: dict[str, Any]) -> Any:
        statement, returns_rows, returns_set = self._statement(function, sorted(params))
        payload = json.dumps(params, default=str)
        with self._lock:
            try:
                cursor = self._conn.execute(statement, [payload] if params else [])
                rows = cursor.fetchall() if cursor.description else []
            except psycopg.Error as exc:
                raise StoreError(f"PostgreSQL refused {function}: {_first_line(exc)}") from None
        if returns_rows or returns_set:
            return [normalize_row(r) for r in rows]
        return rows[0]["value"] if rows else None

    def _statement(self, function: str, names: list[str]) -> tuple[sql.Composable, bool, bool]:
        """`SELECT ... FROM fn(a => r.a, ...)` with the arguments typed from the signature."""
        key = f"{function}({','.join(names)})"
        if key not in self._calls:
            with self._lock:
                found = self._conn.execute(SIGNATURE_SQL, (function,)).fetchall()
            match = next((f for f in found if set(names) <= set(f["names"])), None)
            if match is None:
                raise SchemaMissing(
                    f"database has no function {function}: run `python manage_media.py migrate`"
                )
            types = dict(zip(match["names"], match["types"], strict=True))
            call = sql.SQL("{}({})").format(
                sql.Identifier(function),
                sql.SQL(", ").join(sql.SQL("{0} => r.{0}").format(sql.Identifier(n)) for n in names),
            )
            source = sql.SQL("")
            if names:
                record = sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(types[n])) for n in names
                )
                source = sql.SQL(" FROM jsonb_to_record(%s::jsonb) AS r({})").format(record)
            rows = match["returns_rows"] or match["returns_set"]
            if rows:
                statement = (
                    sql.SQL("SELECT f.* FROM {} f").format(call)
                    if not names
                    else sql.SQL("SELECT f.*{}, LATERAL {} f").format(source, call)
                )
            else:
                statement = sql.SQL("SELECT {} AS value{}").format(call, source)
            self._calls[key] = (statement, match["returns_rows"], match["returns_set"])
        return self._calls[key]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
