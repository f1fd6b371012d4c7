"""The Supabase REST back end (supabase-py over PostgREST), for installations that have only
SUPABASE_URL and SUPABASE_API_KEY.

Atomic steps are the SQL functions the PostgreSQL back end calls, reached through /rpc/.
Bulk writes go in a few large requests (WRITE_ROWS rows each). No response from PostgREST
holds more than its row cap (db-max-rows, 1000 on Supabase), so every listing pages in
primary-key order until a short page, and every claim asks for at most that many rows.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import datetime
from typing import Any

import httpx
from postgrest.exceptions import APIError
from postgrest.types import ReturnMethod

from social_tui_media.ids import PREFIX_POST, PREFIX_RUN, generate_aws_id
from social_tui_media.store.interface import (
    ANALYSIS_LEASE_SECONDS,
    DOWNLOAD_LEASE_SECONDS,
    AnalysisOutcome,
    DownloadOutcome,
    MediaSlotRow,
    PostRecord,
    RunCounts,
    SchemaMissing,
    StoreError,
    UpsertedMedia,
    media_filters,
    media_order,
)
from social_tui_media.store.rows import normalize_row, to_iso, utc_now
from supabase import Client, ClientOptions, SupabaseException, create_client

PAGE_ROWS = 1000  # PostgREST's default db-max-rows: the most rows one response may hold
WRITE_ROWS = 1000  # rows per bulk insert or rpc batch, so each rpc result also fits a response
IN_LIST_CHARS = 6000  # an `in.(...)` filter's share of a URL; gateways refuse request lines over 8 KB
SCHEMA_CODES = {"PGRST202", "42883", "PGRST205", "42P01"}  # function or table not found
MIGRATE = "database is not migrated: run `python manage_media.py migrate` with SUPABASE_DB_URL set"
REQUEST_TIMEOUT = httpx.Timeout(120.0, connect=15.0)

Filter = Callable[[Any], Any]
_verified: weakref.WeakSet = weakref.WeakSet()  # supabase clients whose key passed the access check


def _eq(column: str, value: Any) -> Filter:
    return lambda request: request.eq(column, value)


def _in(column: str, values: list[str]) -> Filter:
    return lambda request: request.in_(column, values)


def _chunks(items: list, size: int = WRITE_ROWS) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _in_chunks(values: list[str]) -> Iterator[list[str]]:
    """Distinct values in groups whose `in.(...)` filter stays within IN_LIST_CHARS."""
    chunk: list[str] = []
    size = 0
    for value in dict.fromkeys(values):
        if chunk and size + len(value) + 3 > IN_LIST_CHARS:
            yield chunk
            chunk, size = [], 0
        chunk.append(value)
        size += len(value) + 3  # the value, a comma and maybe quotes, URL-encoded
    if chunk:
        yield chunk


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


def _utc(moment: str) -> str:
    """A date or timestamp filter value as UTC, so the database's time zone cannot shift it."""
    parsed = _timestamp(moment)
    return to_iso(parsed) if isinstance(parsed, datetime) else moment


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


class RestStore:
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

    def _rpc(self, function: str, params: dict) -> Any:
        return self._run(self._client.rpc(function, params))

    def _select_all(self, table: str, columns: str, *filters: Filter, key: str = "media_id") -> list[dict]:
        """Every matching row, PAGE_ROWS at a time in `key` order. Keyset paging, not offsets:
        a row that stops matching while we page does not shift the next page past a row."""
        rows: list[dict] = []
        while True:
            request = self._client.table(table).select(columns)
            for apply in filters:
                request = apply(request)
            if rows:
                request = request.gt(key, rows[-1][key])
            page = self._run(request.order(key).range(0, PAGE_ROWS - 1))
            rows += page
            if len(page) < PAGE_ROWS:
                return rows

    def _claim(self, function: str, params: dict, limit: int) -> list[dict]:
        """Claim up to `limit` rows, at most PAGE_ROWS per call: a larger claim's rows past
        the cap would be claimed in the database but never returned."""
        rows: list[dict] = []
        while len(rows) < limit:
            want = min(limit - len(rows), PAGE_ROWS)
            batch = self._rpc(function, {**params, "p_limit": want})
            rows += batch
            if len(batch) < want:
                break
        return [_row(r) for r in rows]

    # posts and runs ---------------------------------------------------------------------

    def upsert_posts(self, records: list[PostRecord]) -> list[tuple[str, bool]]:
        unique: dict[str, dict] = {}
        for r in records:  # one row per URN per statement: ON CONFLICT may touch a row once
            unique[r.urn] = {
                "post_id": generate_aws_id(PREFIX_POST), "urn": r.urn, "full_urn": r.full_urn,
                "posted_at_timestamp": r.posted_at_timestamp, "posted_at": r.posted_at,
                "author_username": r.author_username, "author_name": r.author_name,
                "text_content": r.text_content, "post_url": r.post_url, "post_type": r.post_type,
                "raw_json": r.raw_json,
            }  # fmt: skip
        by_urn: dict[str, tuple[str, bool]] = {}
        for chunk in _chunks(list(unique.values())):
            for row in self._rpc("social_tui_upsert_posts", {"p_rows": chunk}):
                by_urn[row["urn"]] = (row["post_id"], row["inserted"])
        return [by_urn[r.urn] for r in records]

    def start_run(self, source_path: str, script_name: str) -> str:
        run_id = generate_aws_id(PREFIX_RUN)
        row = {"run_id": run_id, "source_path": source_path, "script_name": script_name}
        self._run(self._client.table("download_runs").insert(row, returning=ReturnMethod.minimal))
        return run_id

    def finish_run(self, run_id: str, counts: RunCounts, status: str) -> None:
        fields = {
            "completed_at": utc_now(), "status": status, "posts_processed": counts.posts_processed,
            "posts_new": counts.posts_new, "posts_updated": counts.posts_updated,
            "error_count": counts.error_count, "error_message": "\n".join(counts.errors[:50]) or None,
        }  # fmt: skip
        request = self._client.table("download_runs").update(fields, returning=ReturnMethod.minimal)
        self._run(request.eq("run_id", run_id))

    def insert_data_downloads(self, rows: list[dict]) -> None:
        for chunk in _chunks(rows):
            self._run(self._client.table("data_downloads").insert(chunk, returning=ReturnMethod.minimal))

    # media slots ------------------------------------------------------------------------

    def upsert_media(self, rows: list[MediaSlotRow]) -> list[UpsertedMedia]:
        by_slot: dict[tuple[str, str], dict] = {}
        for chunk in _chunks(rows):
            payload = [asdict(r) for r in chunk]
            for row in self._rpc("media_upsert_slots", {"p_rows": payload}):
                by_slot[(row["post_id"], row["slot_key"])] = row
        return [
            UpsertedMedia(
                by_slot[(r.post_id, r.slot_key)]["media_id"],
                r.post_id,
                r.slot_key,
                by_slot[(r.post_id, r.slot_key)]["inserted"],
            )
            for r in rows
        ]

    def list_media(
        self,
        post_id: str | None = None,
        download_status: str | None = None,
        ai_status: str | None = None,
        media_ids: list[str] | None = None,
    ) -> list[dict]:
        filters = [_eq(column, value) for column, value in media_filters(post_id, download_status, ai_status)]
        if media_ids is None:
            rows = self._select_all("post_media", "*", *filters)
        else:
            rows = [
                row
                for chunk in _in_chunks(media_ids)
                for row in self._select_all("post_media", "*", *filters, _in("media_id", chunk))
            ]
        return sorted((_row(r) for r in rows), key=media_order)

    def get_media(self, media_id: str) -> dict | None:
        rows = self._run(self._client.table("post_media").select("*").eq("media_id", media_id).limit(1))
        return _row(rows[0]) if rows else None

    # downloads --------------------------------------------------------------------------

    def download_claimants(self) -> list[str]:
        rows = self._select_all(
            "post_media",
            "media_id,download_claimed_by",
            lambda request: request.not_.is_("download_claimed_by", None),
            lambda request: request.neq("download_status", "downloaded"),
        )
        return list(dict.fromkeys(r["download_claimed_by"] for r in rows))

    def claim_downloads(
        self,
        worker: str,
        limit: int,
        retry_failed: bool = False,
        dead_workers: list[str] | None = None,
        media_ids: list[str] | None = None,
        lease_seconds: int = DOWNLOAD_LEASE_SECONDS,
    ) -> list[dict]:
        params = {
            "p_worker": worker, "p_lease_seconds": lease_seconds, "p_retry_failed": retry_failed,
            "p_dead_workers": list(dead_workers or []),
            "p_media_ids": None if media_ids is None else list(media_ids),
        }  # fmt: skip
        rows = self._claim("media_claim_downloads", params, limit)
        return sorted(
            rows,
            key=lambda r: (
                r["url_expires_at"] is None,
                r["url_expires_at"] or "",
                r["created_at"],
                r["position"],
            ),
        )

    def finish_downloads(self, worker: str, outcomes: list[DownloadOutcome]) -> int:
        payload = [asdict(o) for o in outcomes]
        return sum(
            self._rpc("media_finish_downloads", {"p_worker": worker, "p_results": chunk})
            for chunk in _chunks(payload)
        )

    # analysis ---------------------------------------------------------------------------

    def claim_analysis(
        self,
        worker: str,
        limit: int,
        statuses: list[str],
        event: dict,
        media_ids: list[str] | None = None,
        lease_seconds: int = ANALYSIS_LEASE_SECONDS,
    ) -> list[dict]:
        params = {
            "p_worker": worker, "p_lease_seconds": lease_seconds, "p_statuses": list(statuses),
            "p_event": event, "p_media_ids": None if media_ids is None else list(media_ids),
        }  # fmt: skip
        rows = self._claim("media_claim_analysis", params, limit)
        return sorted(rows, key=lambda r: (r["created_at"], r["media_id"]))

    def finish_analysis(self, worker: str, outcome: AnalysisOutcome) -> bool:
        params = {
            "p_media_id": outcome.media_id, "p_worker": worker, "p_status": outcome.status,
            "p_analysis": outcome.analysis, "p_model": outcome.model,
            "p_prompt_tokens": outcome.prompt_tokens, "p_completion_tokens": outcome.completion_tokens,
            "p_cost": outcome.cost_usd, "p_event": outcome.event,
        }  # fmt: skip
        return bool(self._rpc("media_finish_analysis", params))

    # single-row updates -----------------------------------------------------------------

    def append_event(self, media_id: str, event: dict) -> None:
        self._rpc("media_append_event", {"p_media_id": media_id, "p_event": event})

    def update_media(self, media_id: str, fields: dict, event: dict | None = None) -> None:
        if fields or event is not None:
            self._rpc("media_update", {"p_media_id": media_id, "p_fields": fields, "p_event": event})

    def find_archived_copy(self, md5_sum: str) -> str | None:
        request = self._client.table("post_media").select("archive_url").eq("md5_sum", md5_sum)
        rows = self._run(request.not_.is_("archive_url", None).limit(1))
        return rows[0]["archive_url"] if rows else None

    # posts for backfill -----------------------------------------------------------------

    def posts_page(self, after_post_id: str | None, limit: int, start_date: str | None = None) -> list[dict]:
        rows: list[dict] = []
        while len(rows) < limit:
            request = self._client.table("posts").select("post_id,urn,posted_at,raw_json")
            after = rows[-1]["post_id"] if rows else after_post_id
            if after:
                request = request.gt("post_id", after)
            if start_date:
                request = request.gte("posted_at", _utc(start_date))
            want = min(limit - len(rows), PAGE_ROWS)
            page = self._run(request.order("post_id").range(0, want - 1))
            rows += page
            if len(page) < want:
                break
        return [_row(r) for r in rows]

    def post_ids_with_media(self, post_ids: list[str]) -> set[str]:
        return {
            row["post_id"]
            for chunk in _in_chunks(post_ids)
            for row in self._select_all("post_media", "media_id,post_id", _in("post_id", chunk))
        }

    def media_counts(self) -> dict:
        counts = dict(self._rpc("media_counts", {}))
        counts["ai_cost_usd"] = float(counts["ai_cost_usd"])
        return counts

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
