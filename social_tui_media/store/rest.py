"""The Supabase REST back end (supabase-py over PostgREST), for installations that have only
SUPABASE_URL and SUPABASE_API_KEY: the transport for the SQL functions, reached through /rpc/.
Paging and write batches (PostgREST caps a response at db-max-rows) are in `sql_functions`.
"""

from __future__ import annotations

import re
import weakref
from datetime import datetime
from typing import Any

import httpx
from postgrest.exceptions import APIError

from social_tui_media.store.interface import SchemaMissing, StoreError
from social_tui_media.store.rows import normalize_row
from social_tui_media.store.sql_functions import SqlFunctionStore
from supabase import Client, ClientOptions, SupabaseException, create_client

SCHEMA_CODES = {"PGRST202", "42883", "PGRST205", "42P01"}  # function or table not found
MIGRATE = "database is not migrated: run `python manage_media.py migrate` with SUPABASE_DB_URL set"
REQUEST_TIMEOUT = httpx.Timeout(120.0, connect=15.0)

_verified: weakref.WeakSet = weakref.WeakSet()  # supabase clients whose key passed the access check


def _timestamp(value: str) -> datetime | str:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return value


def _row(row: dict) -> dict:
    """A row as the other back ends give it: timestamps as ISO-8601 UTC, JSON parsed."""
    return normalize_row(
        {k: _timestamp(v) if k.endswith("_at") and isinstance(v, str) else v for k, v in row.items()}
    )


def _store_error(exc: APIError, url: str) -> StoreError:
    """One line saying what to do, for an error PostgREST (or the gateway in front) returned."""
    code, message = exc.code or "", exc.message or str(exc)
    if code in SCHEMA_CODES:
        return SchemaMissing(MIGRATE)
    if code == "42501":
        policy = re.search(r'row-level security policy for table "?([^"\s]+)', message)
        denied = f"permission denied for table {policy[1]}" if policy else message
        return StoreError(f"{denied}: use the service role key")
    if code.startswith("PGRST3") or "api key" in message.lower():
        return StoreError(f"SUPABASE_API_KEY was refused by {url} ({message}): use the service role key")
    return StoreError(f"Supabase at {url} refused the request: {message} ({code or 'no code'})")


class RestStore(SqlFunctionStore):
    """MediaStore over Supabase's REST API. Thread-safe: every call is its own HTTP request."""

    def __init__(self, url: str, key: str):
        if not url or not key:
            raise StoreError("the Supabase REST back end needs both SUPABASE_URL and SUPABASE_API_KEY")
        http = httpx.Client(timeout=REQUEST_TIMEOUT, follow_redirects=True, http2=True)
        options = ClientOptions(auto_refresh_token=False, persist_session=False, httpx_client=http)
        try:
            client = create_client(url, key, options)
        except SupabaseException as exc:
            http.close()
            raise StoreError(
                f"SUPABASE_URL {url!r}: {exc.message}; expected https://<project>.supabase.co"
            ) from None
        self._http: httpx.Client | None = http
        try:
            self._open(client)
        except BaseException:
            http.close()
            raise

    @classmethod
    def from_client(cls, client: Client) -> RestStore:
        """A store on a caller's supabase `Client` (its key checked once per client)."""
        store = cls.__new__(cls)
        store._http = None  # the caller's client: not ours to close
        store._open(client)
        return store

    def _open(self, client: Client) -> None:
        self._client = client
        self._url = str(getattr(client, "supabase_url", "the Supabase project")).rstrip("/")
        if client not in _verified:
            self._check_access()
            _verified.add(client)

    def _check_access(self) -> None:
        """Refuse a key whose role row-level security applies to, with one clear line.

        RLS with no policies does not fail reads or updates: selects come back empty and
        updates touch nothing, so `stats` would report an empty database. Only inserts raise
        42501. `media_denied_table()` asks PostgreSQL directly: row_security_active() is false
        only for roles that bypass RLS (service_role, the owner), and the grants are checked
        too. One request; its absence (PGRST202) means the database is not migrated.
        """
        denied = self._rpc("media_denied_table", {})
        if denied:
            raise StoreError(f"permission denied for table {denied}: use the service role key")

    # requests ---------------------------------------------------------------------------

    def _run(self, request) -> Any:
        try:
            return request.execute().data
        except APIError as exc:
            raise _store_error(exc, self._url) from None
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise StoreError(f"cannot reach Supabase at {self._url}: {reason}") from None
        except ValueError as exc:  # a value JSON cannot carry (NaN, a lone surrogate), or a reply not JSON
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise StoreError(
                f"Supabase at {self._url}: request or reply is not valid JSON ({reason})"
            ) from None

    def _rpc(self, function: str, params: dict) -> Any:
        return self._run(self._client.rpc(function, params))

    def _call(self, function: str, params: dict[str, Any]) -> Any:
        data = self._rpc(function, params)
        return [_row(r) for r in data] if isinstance(data, list) else data

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
