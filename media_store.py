"""The store interface every back end implements, and the choice of back end from settings.

Rows travel as plain dicts keyed by column name. JSON columns arrive parsed
(`ai_analysis_log` always a list, `ai_analysis` a dict or None) and timestamps as
ISO-8601 UTC strings, whatever the back end stores.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Protocol

from config import Settings

DOWNLOAD_STATUSES = ("pending", "downloaded", "failed")
AI_STATUSES = ("not_started", "started", "completed", "failed")
DOWNLOAD_LEASE_SECONDS = 15 * 60
ANALYSIS_LEASE_SECONDS = 10 * 60


class StoreError(Exception):
    """The database refused or could not be reached; the message says what to do."""


class SchemaMissing(StoreError):
    """The database has not been migrated."""


@dataclass(frozen=True)
class PostRecord:
    """A post as the `posts` table holds it."""

    urn: str
    full_urn: str | None
    posted_at_timestamp: int | None
    posted_at: str | None
    author_username: str | None
    author_name: str | None
    text_content: str | None
    post_url: str | None
    post_type: str | None
    raw_json: dict


@dataclass(frozen=True)
class MediaSlotRow:
    """A media slot to insert or refresh in `post_media`."""

    media_id: str
    post_id: str
    media_type: str
    media_url: str
    slot_key: str
    slot_role: str
    position: int
    url_expires_at: str | None


@dataclass(frozen=True)
class UpsertedMedia:
    media_id: str
    post_id: str
    slot_key: str
    inserted: bool


@dataclass(frozen=True)
class DownloadOutcome:
    """The result of one claimed download, written back in a batch."""

    media_id: str
    download_status: str  # downloaded | failed
    event: dict
    md5_sum: str | None = None
    file_size: int | None = None
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None
    local_file_path: str | None = None
    download_error: str | None = None
    download_error_kind: str | None = None
    download_permanent: bool = False
    attempts: int = 0


@dataclass(frozen=True)
class AnalysisOutcome:
    media_id: str
    status: str  # completed | failed
    event: dict
    analysis: dict | None = None
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


@dataclass
class RunCounts:
    posts_processed: int = 0
    posts_new: int = 0
    posts_updated: int = 0
    error_count: int = 0
    errors: list[str] = field(default_factory=list)


class MediaStore(Protocol):
    """What the pipeline needs from a database. Every write that must be atomic is one call."""

    def upsert_posts(self, records: list[PostRecord]) -> list[tuple[str, bool]]:
        """Insert or refresh posts by URN; (post_id, inserted) in input order."""

    def start_run(self, source_path: str, script_name: str) -> str: ...

    def finish_run(self, run_id: str, counts: RunCounts, status: str) -> None: ...

    def insert_data_downloads(self, rows: list[dict]) -> None: ...

    def upsert_media(self, rows: list[MediaSlotRow]) -> list[UpsertedMedia]: ...

    def list_media(
        self,
        post_id: str | None = None,
        download_status: str | None = None,
        ai_status: str | None = None,
        media_ids: list[str] | None = None,
    ) -> list[dict]: ...

    def get_media(self, media_id: str) -> dict | None: ...

    def download_claimants(self) -> list[str]: ...

    def claim_downloads(
        self,
        worker: str,
        limit: int,
        retry_failed: bool = False,
        dead_workers: list[str] | None = None,
        media_ids: list[str] | None = None,
        lease_seconds: int = DOWNLOAD_LEASE_SECONDS,
    ) -> list[dict]: ...

    def finish_downloads(self, worker: str, outcomes: list[DownloadOutcome]) -> int: ...

    def claim_analysis(
        self,
        worker: str,
        limit: int,
        statuses: list[str],
        event: dict,
        media_ids: list[str] | None = None,
        lease_seconds: int = ANALYSIS_LEASE_SECONDS,
    ) -> list[dict]: ...

    def finish_analysis(self, worker: str, outcome: AnalysisOutcome) -> bool: ...

    def append_event(self, media_id: str, event: dict) -> None: ...

    def update_media(self, media_id: str, fields: dict, event: dict | None = None) -> None: ...

    def find_archived_copy(self, md5_sum: str) -> str | None: ...

    def posts_page(
        self, after_post_id: str | None, limit: int, start_date: str | None = None
    ) -> list[dict]: ...

    def post_ids_with_media(self, post_ids: list[str]) -> set[str]: ...

    def media_counts(self) -> dict: ...

    def close(self) -> None: ...


def requeue_for_download(store: MediaStore, media_ids: list[str], forget_path: bool = False) -> None:
    """Put rows back in the download queue (missing, corrupt or evicted files)."""
    fields: dict = {"download_status": "pending", "download_permanent": False}
    if forget_path:
        fields["local_file_path"] = None
    for media_id in media_ids:
        store.update_media(media_id, fields)


def media_filters(
    post_id: str | None, download_status: str | None, ai_status: str | None
) -> list[tuple[str, str]]:
    """The `column = value` conditions of a `list_media` call, for every back end."""
    pairs = (("post_id", post_id), ("download_status", download_status), ("ai_analysis_status", ai_status))
    return [(column, value) for column, value in pairs if value is not None]


def media_order(row: dict) -> tuple:
    """The order `list_media` returns rows in: by post, then the post's own order."""
    return (row["post_id"], row["position"], row["media_id"])


def utc_now() -> str:
    """Now, as the ISO-8601 UTC text every back end stores and compares."""
    return to_iso(datetime.now(UTC))


def to_iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def make_event(event: str, status: str = "success", details: dict | None = None, **extra) -> dict:
    """One `ai_analysis_log` entry: {timestamp, event, status, details?, model?}."""
    entry: dict[str, Any] = {"timestamp": utc_now(), "event": event, "status": status}
    if details:
        entry["details"] = details
    entry.update({k: v for k, v in extra.items() if v is not None})
    return entry


def worker_id() -> str:
    """host:pid:nonce, so a claim names the process that holds it."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


def is_dead_local_worker(claimant: str) -> bool:
    """True when the claim was made on this host by a process that no longer exists."""
    host, _, rest = claimant.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def parse_log(value: Any) -> list:
    """An event log as a list, whatever older writers stored (NULL, JSON text, one object)."""
    if value is None:
        return []
    if isinstance(value, (bytes, str)):
        try:
            value = json.loads(value)
        except ValueError:
            return [{"event": "legacy_log", "details": str(value)}]
        return parse_log(value) if isinstance(value, str) else parse_log_list(value)
    return parse_log_list(value)


def parse_log_list(value: Any) -> list:
    if isinstance(value, list):
        return value
    if value is None:
        return []
    return [value]


def parse_analysis(value: Any) -> dict | None:
    if value is None or isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        return {"description": str(value)}
    return parsed if isinstance(parsed, dict) else {"description": str(value)}


def normalize_row(row: dict) -> dict:
    """Give a row the same Python shape whichever back end produced it."""
    out = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            value = to_iso(value)
        elif isinstance(value, date):
            value = value.isoformat()
        elif isinstance(value, Decimal):
            value = float(value)
        out[key] = value
    if "ai_analysis_log" in out:
        out["ai_analysis_log"] = parse_log(out["ai_analysis_log"])
    if "ai_analysis" in out:
        out["ai_analysis"] = parse_analysis(out["ai_analysis"])
    if "download_permanent" in out and out["download_permanent"] is not None:
        out["download_permanent"] = bool(out["download_permanent"])
    if "raw_json" in out and isinstance(out["raw_json"], str):
        out["raw_json"] = json.loads(out["raw_json"])
    if out.get("download_status") is None and "download_status" in out:
        out["download_status"] = "downloaded" if out.get("md5_sum") else "pending"
    return out


def open_store(settings: Settings) -> MediaStore:
    """The store the settings point at: PostgreSQL, Supabase REST, or embedded SQLite."""
    url = settings.store_url
    if url.startswith(("postgres://", "postgresql://")):
        from media_store_postgres import PostgresStore

        return PostgresStore(url)
    if url == "supabase-rest":
        from media_store_rest import RestStore

        return RestStore(settings.supabase_url or "", settings.supabase_api_key or "")
    if url.startswith("sqlite:///"):
        from media_store_sqlite import SQLiteStore

        return SQLiteStore(sqlite_path(url))
    raise StoreError(
        f"DATABASE_URL {url.split('://')[0]}://... is not supported: use sqlite:///path or postgresql://..."
    )


def sqlite_path(url: str) -> str:
    """`sqlite:///relative/path` or `sqlite:////absolute/path` to a file path."""
    path = url[len("sqlite:///") :]
    if not path:
        raise StoreError("DATABASE_URL sqlite:/// needs a file path, e.g. sqlite:///data/social_tui.db")
    return path
