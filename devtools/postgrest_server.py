"""A loopback stand-in for Supabase's PostgREST, for tests: the part of the protocol that
`social_tui_media.store.rest.RestStore` uses, executed on a real PostgreSQL database.

    with PostgrestTestServer(database_url) as server:
        client = supabase.create_client(server.url, server.service_key)
        assert server.count() == 0

Keys map to database roles as on Supabase: `service_key` to `service_role` (BYPASSRLS),
`anon_key` to `anon` (granted the tables, so row-level security is what stops it). Each
request is one transaction under `SET LOCAL ROLE`. Reads return at most `max_rows` rows, as
PostgREST's db-max-rows (1000 on Supabase) does, table-returning functions included, so
paging bugs show.

Supported: GET, PATCH and DELETE /rest/v1/<table> with `select`, `order`, `limit`, `offset`
and eq/neq/gt/gte/lt/lte/in/is filters (optionally `not.`); POST /rest/v1/<table> inserts a
JSON array (`columns`, `Prefer: return=minimal|representation`); POST /rest/v1/rpc/<function>
with a JSON object of named arguments, typed from pg_proc. Identifiers are checked against
the catalog and quoted; values are always bound parameters.
"""

from __future__ import annotations

import base64
import json
import queue
import re
import secrets
import socket
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

MAX_ROWS = 1000
ROUTE = re.compile(r"/rest/v1/(rpc/)?([A-Za-z_][A-Za-z0-9_]*)")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
COMPARISONS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
IS_VALUES = {"null": "NULL", "true": "TRUE", "false": "FALSE", "unknown": "UNKNOWN"}
IN_ITEM = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|([^,]*))\s*(?:,|$)')
ROLE_SQL = """DO $$ BEGIN CREATE ROLE {} NOLOGIN {};
              EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"""
GRANTS = """GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
            GRANT ALL ON ALL TABLES IN SCHEMA public TO anon, authenticated, service_role;
            GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO anon, authenticated, service_role"""
FUNCTION_SQL = """
SELECT p.proretset AS set, p.prorettype = 'void'::regtype AS void,
       p.pronargs - p.pronargdefaults AS required,
       coalesce(array_agg(a.name ORDER BY a.n) FILTER (WHERE a.n IS NOT NULL), '{}') AS names,
       coalesce(array_agg(format_type(a.type, NULL) ORDER BY a.n) FILTER (WHERE a.n IS NOT NULL), '{}')
           AS types
  FROM pg_proc p JOIN pg_namespace ns ON ns.oid = p.pronamespace
  LEFT JOIN LATERAL unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]), p.proargnames,
                           coalesce(p.proargmodes, array_fill('i'::"char", ARRAY[p.pronargs])))
       WITH ORDINALITY AS a(type, name, mode, n) ON a.mode IN ('i', 'b')
 WHERE ns.nspname = 'public' AND p.proname = %s
 GROUP BY p.oid"""


class ApiError(Exception):
    """An error answered the way PostgREST answers: a status and {code, message, details, hint}."""

    def __init__(self, status: int, code: str, message: str, details=None, hint=None):
        super().__init__(message)
        self.status = status
        self.body = {"code": code, "message": message, "details": details, "hint": hint}

    @classmethod
    def from_db(cls, exc: psycopg.Error) -> ApiError:
        code = exc.sqlstate or "XX000"
        status = {"42501": 403, "23505": 409, "23503": 409, "42883": 404, "42P01": 404}.get(code, 400)
        diag = exc.diag
        return cls(status, code, diag.message_primary or str(exc), diag.message_detail, diag.message_hint)


def make_key(role: str) -> str:
    """A JWT-shaped API key naming its role, like Supabase's anon and service_role keys."""

    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    signature = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return (
        f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'iss': 'postgrest-test', 'role': role})}.{signature}"
    )


class PostgrestTestServer:
    """A threaded HTTP server on 127.0.0.1 speaking PostgREST's protocol for one database."""

    def __init__(self, database_url: str, max_rows: int = MAX_ROWS, timezone: str | None = None):
        self.database_url = database_url
        self.max_rows = max_rows
        self.timezone = timezone  # None: the database's default, as PostgREST does
        self.service_key = make_key("service_role")
        self.anon_key = make_key("anon")
        self.roles = {self.service_key: "service_role", self.anon_key: "anon"}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.tables: dict[str, set[str]] = {}
        self._pool: queue.LifoQueue[psycopg.Connection] = queue.LifoQueue()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.app = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> PostgrestTestServer:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            conn.execute(ROLE_SQL.format("anon", ""))
            conn.execute(ROLE_SQL.format("authenticated", ""))
            conn.execute(ROLE_SQL.format("service_role", "BYPASSRLS"))
            conn.execute(GRANTS)
            rows = conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
            ).fetchall()
        for table, column in rows:
            self.tables.setdefault(table, set()).add(column)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        while not self._pool.empty():
            self._pool.get().close()

    def count(self, method: str | None = None, path_part: str = "") -> int:
        """Requests seen so far, optionally only one method and paths containing `path_part`."""
        return sum(1 for m, p in self.requests if (method is None or m == method) and path_part in p)

    @contextmanager
    def _connection(self):
        try:
            conn = self._pool.get_nowait()
        except queue.Empty:
            conn = psycopg.connect(self.database_url, autocommit=True)
        try:
            yield conn
        finally:
            if conn.closed or conn.broken:
                conn.close()
            else:
                self._pool.put(conn)

    # requests ---------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: str, headers, body: bytes
    ) -> tuple[int, bytes | None, dict]:
        self.requests.append((method, path))
        auth = headers.get("Authorization", "")
        role = self.roles.get(auth.removeprefix("Bearer ") if auth else headers.get("apikey", ""))
        if role is None:
            raise ApiError(401, "PGRST301", "JWSError JWSInvalidSignature")
        route = ROUTE.fullmatch(path)
        if route is None:
            raise ApiError(404, "PGRST125", f"Invalid path specified in request URL: {path}")
        params = parse_qsl(query, keep_blank_values=True)
        payload = json.loads(body) if body else None
        prefer = {p.strip() for p in headers.get("Prefer", "").split(",")}
        try:
            with self._connection() as conn, conn.transaction():
                conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
                if self.timezone:
                    conn.execute("SELECT set_config('TimeZone', %s, true)", (self.timezone,))
                if route[1]:
                    if method != "POST":
                        raise ApiError(405, "PGRST101", "Only POST is supported for functions here")
                    return self._rpc(conn, route[2], payload or {})
                return self._table(conn, method, route[2], params, payload, prefer)
        except psycopg.Error as exc:
            raise ApiError.from_db(exc) from None

    def _table(self, conn, method, table, params, payload, prefer) -> tuple[int, bytes | None, dict]:
        if table not in self.tables:
            raise ApiError(404, "PGRST205", f"Could not find the table 'public.{table}' in the schema cache")
        target = sql.Identifier("public", table)
        args: list = []
        options = dict(p for p in params if p[0] in ("select", "order", "limit", "offset", "columns"))
        where = self._where(table, [p for p in params if p[0] not in options], args)
        if method == "GET":
            limit = min(_number(options.get("limit", self.max_rows)), self.max_rows)
            offset = _number(options.get("offset", 0))
            select = sql.SQL("*")
            if options.get("select", "*") != "*":
                select = sql.SQL(", ").join(self._ids(table, options["select"].split(",")))
            query = sql.SQL(
                "SELECT count(*), coalesce(json_agg(t), '[]')::text FROM"
                " (SELECT {} FROM {} {} {} LIMIT {} OFFSET {}) t"
            ).format(select, target, where, self._order(table, options.get("order")), limit, offset)
            n, text = conn.execute(query, args).fetchone()
            return 200, text.encode(), {"Content-Range": f"{offset}-{offset + n - 1}/*" if n else "*/*"}
        if method == "POST":
            rows = payload if isinstance(payload, list) else [payload]
            names = (
                [c.strip('"') for c in options["columns"].split(",")]
                if "columns" in options
                else list(rows[0])
            )
            columns = sql.SQL(", ").join(self._ids(table, names))
            statement = sql.SQL(
                "INSERT INTO {} ({}) SELECT {} FROM jsonb_populate_recordset(NULL::{}, %s)"
            ).format(target, columns, columns, target)
            return self._write(conn, statement, [Jsonb(rows)], prefer, 201)
        if method == "PATCH":
            sets = sql.SQL(", ").join(
                sql.SQL("{} = r.{}").format(c, c) for c in self._ids(table, list(payload))
            )
            statement = sql.SQL("UPDATE {} SET {} FROM jsonb_populate_record(NULL::{}, %s) r {}").format(
                target, sets, target, where
            )
            return self._write(conn, statement, [Jsonb(payload), *args], prefer, 200)
        if method == "DELETE":
            return self._write(conn, sql.SQL("DELETE FROM {} {}").format(target, where), args, prefer, 200)
        raise ApiError(405, "PGRST117", f"Unsupported HTTP method: {method}")

    def _write(self, conn, statement, args, prefer, status) -> tuple[int, bytes | None, dict]:
        if "return=representation" not in prefer:
            conn.execute(statement, args)
            return (201 if status == 201 else 204), None, {}
        query = sql.SQL("WITH w AS ({} RETURNING *) SELECT coalesce(json_agg(w), '[]')::text FROM w")
        return status, conn.execute(query.format(statement), args).fetchone()[0].encode(), {}

    def _rpc(self, conn, name: str, payload: dict) -> tuple[int, bytes | None, dict]:
        found = conn.execute(FUNCTION_SQL, (name,)).fetchall() if NAME.fullmatch(name) else []
        given = set(payload)
        match = next((f for f in found if given <= set(f[3]) and set(f[3][: f[2]]) <= given), None)
        if match is None:
            signature = ", ".join(sorted(given))
            raise ApiError(
                404, "PGRST202", f"Could not find the function public.{name}({signature}) in the schema cache"
            )
        returns_set, void, _, names, types = match
        used = [(n, t) for n, t in zip(names, types, strict=True) if n in given]
        call = sql.SQL("{}({}) f").format(
            sql.Identifier("public", name),
            sql.SQL(", ").join(sql.SQL("{0} => r.{0}").format(sql.Identifier(n)) for n, _ in used),
        )
        if used:  # the arguments as one record typed like the parameters, as PostgREST does
            fields = sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in used
            )
            call = sql.SQL("jsonb_to_record(%s) AS r({}), LATERAL {}").format(fields, call)
        if returns_set:
            query = "SELECT coalesce(json_agg(s), '[]')::text FROM (SELECT f.* FROM {} LIMIT {}) s"
        else:
            query = "SELECT count(*)::text FROM {}" if void else "SELECT to_json(f)::text FROM {}"
        text = conn.execute(
            sql.SQL(query).format(call, self.max_rows), [Jsonb(payload)] if used else []
        ).fetchone()[0]
        return (204, None, {}) if void else (200, (text or "null").encode(), {})

    def _ids(self, table: str, names: list[str]) -> list[sql.Identifier]:
        for name in names:
            if name not in self.tables[table]:
                raise ApiError(400, "42703", f"column {table}.{name} does not exist")
        return [sql.Identifier(n) for n in names]

    def _where(self, table: str, filters: list[tuple[str, str]], args: list) -> sql.Composable:
        conditions = []
        for column, expression in filters:
            self._ids(table, [column])
            col = sql.Identifier(table, column)  # qualified: an UPDATE's FROM has the same names
            negate, expression = expression.startswith("not."), expression.removeprefix("not.")
            operator, _, value = expression.partition(".")
            if operator in COMPARISONS:
                condition = sql.SQL("{} {} %s").format(col, sql.SQL(COMPARISONS[operator]))
                args.append(value)
            elif operator == "in" and value.startswith("(") and value.endswith(")"):
                items = [
                    q.replace('\\"', '"').replace("\\\\", "\\") if q else p for q, p in _in_items(value[1:-1])
                ]
                args.extend(items)
                marks = sql.SQL(", ").join(sql.Placeholder() * len(items))
                condition = sql.SQL("{} IN ({})").format(col, marks) if items else sql.SQL("FALSE")
            elif operator == "is" and value in IS_VALUES:
                condition = sql.SQL("{} IS {}").format(col, sql.SQL(IS_VALUES[value]))
            else:
                raise ApiError(400, "PGRST100", f'"failed to parse filter ({expression})" (line 1, column 1)')
            conditions.append(sql.SQL("NOT ({})").format(condition) if negate else condition)
        return sql.SQL("WHERE {}").format(sql.SQL(" AND ").join(conditions)) if conditions else sql.SQL("")

    def _order(self, table: str, order: str | None) -> sql.Composable:
        if not order:
            return sql.SQL("")
        terms = []
        for term in order.split(","):
            column, *modifiers = term.split(".")
            [col] = self._ids(table, [column])
            words = {"asc": "ASC", "desc": "DESC", "nullsfirst": "NULLS FIRST", "nullslast": "NULLS LAST"}
            if any(m not in words for m in modifiers):
                raise ApiError(400, "PGRST100", f'"failed to parse order ({order})" (line 1, column 1)')
            terms.append(sql.SQL(" ").join([col, *(sql.SQL(words[m]) for m in modifiers)]))
        return sql.SQL("ORDER BY {}").format(sql.SQL(", ").join(terms))


def _in_items(text: str) -> list[tuple[str, str]]:
    return [m.groups("") for m in IN_ITEM.finditer(text) if m.group(0)] if text.strip() else []


def _number(text) -> int:
    try:
        return max(0, int(text))
    except ValueError:
        raise ApiError(400, "PGRST100", f"{text!r} is not a number") from None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()  # headers and body go out in two writes: without NODELAY, Nagle adds 40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args) -> None:  # quiet: pytest shows failures anyway
        pass

    def _serve(self) -> None:
        app: PostgrestTestServer = self.server.app  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {"Content-Type": "application/json; charset=utf-8"}
        try:
            status, content, extra = app.handle(self.command, parts.path, parts.query, self.headers, body)
            headers.update(extra)
        except ApiError as exc:
            status, content = exc.status, json.dumps(exc.body).encode()
        except ValueError as exc:  # a body that is not JSON
            status, content = 400, json.dumps({"code": "PGRST102", "message": str(exc)}).encode()
        except Exception as exc:  # a bug here: answer, rather than leave the client waiting
            status, content = 500, json.dumps({"code": "XX000", "message": repr(exc)}).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content or b"")))
        self.end_headers()
        if content:
            self.wfile.write(content)

    do_GET = do_POST = do_PATCH = do_DELETE = _serve
