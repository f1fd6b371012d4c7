"""What every store back end implements: the records it takes, the statuses, the errors,
and the few rules written over the interface itself (requeueing, the event entry).

Never imports a back end: `social_tui_media.store.open_store` chooses one.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from abc import abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any, Protocol
from urllib.parse import SplitResult, urlsplit

from social_tui_media.store.rows import to_iso, utc_now
from social_tui_media.store.search import SearchHit, SearchQuery

DOWNLOAD_STATUSES = ("pending", "downloaded", "failed")
AI_STATUSES = ("not_started", "started", "completed", "failed")
DOWNLOAD_LEASE_SECONDS = 15 * 60
ANALYSIS_LEASE_SECONDS = 10 * 60
BATCH_OPEN_STATUSES = ("preparing", "submitted")  # an analysis batch not yet ended
TEXT_STATUSES = ("not_started", "started", "completed", "failed")
TEXT_LEASE_SECONDS = 10 * 60
PAGE_ROWS = 1000  # rows a store reads per page (PostgREST's default db-max-rows: one response's most)
AUDIT_ACTIONS = ("presigned_url", "export", "file_deleted")
COST_GROUPS = ("month", "post", "author")  # what `analysis_costs` sums by


class StoreError(Exception):
    """The database refused or could not be reached; the message says what to do."""


class StoreFull(StoreError):
    """The disk under the database is full: the step was rolled back; free space and run again."""


class SchemaMissing(StoreError):
    """The database has not been migrated."""


@dataclass(frozen=True)
class PostRecord:
    """A post as the `posts` table holds it."""

    urn: str
    full_urn: str | None
    posted_at_timestamp: int  # epoch milliseconds; 0 when the scrape had none
    author_username: str
    author_name: str | None
    text_content: str
    url: str | None
    post_type: str | None
    raw_json: str  # the scraped post as JSON text (posts.raw_json)


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
    before_events: tuple[dict, ...] = ()  # logged ahead of `event` by finish_batch_item


@dataclass(frozen=True)
class AnalysisBatch:
    """An analysis batch as recorded before anything is sent: rows are claimed into it while it
    is `preparing` and `owner` (host:pid:nonce) still holds it."""

    batch_id: str
    model: str
    owner: str
    api_base: str | None = None


@dataclass(frozen=True)
class DownloadClaim:
    """Which pending slots a download worker asks for: up to `limit`, transient failures too
    (permanent ones with `retry_failed`), taking over expired leases and dead owners' claims."""

    worker: str
    limit: int
    retry_failed: bool = False
    dead_workers: tuple[str, ...] | list[str] = ()
    media_ids: list[str] | None = None  # only these rows
    lease_seconds: int = DOWNLOAD_LEASE_SECONDS


@dataclass(frozen=True)
class AnalysisClaim:
    """Which cached rows an analysis worker asks for, and the event logged on each it takes."""

    worker: str
    limit: int
    statuses: list[str]
    event: dict
    media_ids: list[str] | None = None
    lease_seconds: int = ANALYSIS_LEASE_SECONDS
    dead_workers: tuple[str, ...] | list[str] = ()  # their `started` rows are taken over at once


@dataclass(frozen=True)
class AnalysisQuery:
    """Which rows an analysis run could take: these statuses (and `started` rows whose lease
    of `lease_seconds` ran out), optionally only these ids."""

    statuses: list[str]
    media_ids: list[str] | None = None
    lease_seconds: int = ANALYSIS_LEASE_SECONDS


@dataclass(frozen=True)
class TextClaim:
    """Which cached rows an extract-text worker asks for, and the event logged on each it takes."""

    worker: str
    limit: int
    statuses: list[str]
    event: dict
    media_ids: list[str] | None = None
    lease_seconds: int = TEXT_LEASE_SECONDS
    dead_workers: tuple[str, ...] | list[str] = ()


@dataclass(frozen=True)
class TextOutcome:
    """The result of one claimed extraction. A completed one is shared by every row holding the
    same bytes (md5) that has none yet."""

    media_id: str
    status: str  # completed | failed
    event: dict
    text: str | None = None
    segments: list[dict] | None = None  # {page, text, source} per PDF page, {t, text} per video frame
    engine: str | None = None
    phash: str | None = None  # 16 hex digits, images only


def check_since(since: str | None) -> None:
    """A `since` filter is a day like 2025-11-01 (or None): ValueError saying so otherwise."""
    if since is not None:
        try:
            date.fromisoformat(since)
        except (TypeError, ValueError):
            raise ValueError(f"since={since!r} is not a date like 2025-11-01") from None


@dataclass(frozen=True)
class MediaQuery:
    """Which media rows to list; every filter given must hold (None: any)."""

    post_id: str | None = None
    download_status: str | None = None
    ai_status: str | None = None  # a row without one reads as not_started
    media_type: str | None = None
    since: str | None = None  # YYYY-MM-DD: rows created on or after that UTC day
    media_ids: tuple[str, ...] | list[str] | None = None  # only these rows ([]: none)

    def __post_init__(self) -> None:
        check_since(self.since)


@dataclass(frozen=True)
class AuditEntry:
    """One line of the append-only audit log: who (OS user and host) did what to which media,
    and why; the database stamps when. `action` is one of AUDIT_ACTIONS; `reason` says why
    (eviction, retention, repair_corrupt, repair_stray, a command's name)."""

    action: str
    actor_user: str
    actor_host: str
    media_id: str | None = None
    target: str | None = None  # what was handed out or deleted: an s3:// URL, a cache path, a folder
    reason: str | None = None
    details: dict | None = None


@dataclass(frozen=True)
class AuditQuery:
    """Which audit entries to list, oldest first; every filter given must hold."""

    since: str | None = None  # YYYY-MM-DD: entries on or after that UTC day
    media_id: str | None = None

    def __post_init__(self) -> None:
        check_since(self.since)


@dataclass(frozen=True)
class BrowseQuery:
    """Which media rows, with their post, the browser and the gallery show; every filter given
    must hold (None: any). Text filters match a substring in any case; % and _ are literal."""

    text: str | None = None  # in the analysis, the post's text, or the author's username or name
    post_id: str | None = None
    author: str | None = None  # in the author's username or name
    media_type: str | None = None
    media_ids: tuple[str, ...] | None = None  # only these rows (what a search found)


# What `browse_media` returns for each row: the media's own fields and its post's, prefixed.
BROWSE_MEDIA_FIELDS = (
    "media_id", "post_id", "media_type", "media_url", "local_file_path", "file_size", "mime_type", "width",
    "height", "md5_sum", "download_status", "download_error", "ai_analysis_status", "ai_analysis",
    "ai_analyzed_at", "archive_url", "evicted_at", "position", "slot_role", "created_at", "extracted_text",
)  # fmt: skip
BROWSE_POST_FIELDS = {  # our name: the posts column
    "post_author_username": "author_username",
    "post_author_name": "author_name",
    "post_url": "url",
    "post_text": "text_content",
    "post_posted_at": "posted_at_timestamp",  # epoch milliseconds
}


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

    def start_run(self, source_path: str, script_name: str, run_id: str | None = None) -> str:
        """Record a run (`run_id`, else a new id: the CLIs pass their log's), status 'running'."""

    def finish_run(self, run_id: str, counts: RunCounts, status: str) -> None: ...

    def insert_data_downloads(self, rows: list[dict]) -> set[str]:
        """Insert stats rows; a row whose download_id is stored already replaces that row (an
        import names a post's row the same each time it meets the post). Returns those ids."""

    def upsert_media(self, rows: list[MediaSlotRow]) -> list[UpsertedMedia]: ...

    @abstractmethod
    def iter_media(self, query: MediaQuery) -> Iterator[dict]:
        """The rows `query` matches in key order (post_id, position, media_id), read a page
        (PAGE_ROWS) at a time: never more than one page in memory, whatever the total."""

    def list_media(self, **filters) -> list[dict]:
        """`iter_media` as a list, the filters as MediaQuery's fields; for results known to be small."""
        return list(self.iter_media(MediaQuery(**filters)))

    def get_media(self, media_id: str) -> dict | None: ...

    def browse_media(
        self, query: BrowseQuery, after: tuple | None = None, limit: int = PAGE_ROWS
    ) -> list[dict]:
        """Up to `limit` (at most PAGE_ROWS) media rows matching `query`, each with its post's
        fields (BROWSE_MEDIA_FIELDS and BROWSE_POST_FIELDS): newest post first, a post's media in
        its order. One query per page; `after` is the previous page's last `browse_key`."""

    def download_claimants(self) -> list[str]: ...

    def analysis_claimants(self) -> list[str]: ...

    def claim_downloads(self, claim: DownloadClaim) -> list[dict]: ...

    def download_backlog(self, retry_failed: bool = False) -> int:
        """How many rows the next download run would take: pending and transient failures
        (and permanent ones with `retry_failed`), the claim rule's statuses."""

    def finish_downloads(self, worker: str, outcomes: list[DownloadOutcome]) -> int: ...

    def release_downloads(self, worker: str) -> int:
        """Give back every download claim `worker` still holds, recording nothing (an
        interrupted run): the next run may take those rows at once. Returns how many."""

    def claim_analysis(self, claim: AnalysisClaim) -> list[dict]: ...

    def analysis_candidates(self, query: AnalysisQuery) -> list[dict]:
        """What `claim_analysis` would take now (the same rule), in claim order; claims nothing."""

    def finish_analysis(self, worker: str, outcome: AnalysisOutcome) -> bool: ...

    def claim_analysis_batch(self, batch: AnalysisBatch, claim: AnalysisClaim) -> list[dict]:
        """Record `batch` (if new) and claim rows into it atomically, as `claim_analysis` would:
        they become `started` with `ai_batch_id`, and no lease expiry or dead-owner takeover
        claims them until the batch ends. Nothing is claimed unless the batch is `preparing`
        and held by `batch.owner`."""

    def analysis_batches(self, open_only: bool = True) -> list[dict]:
        """Batch rows, oldest first: the open ones (BATCH_OPEN_STATUSES), or all."""

    def batch_members(self, batch_id: str) -> list[dict]:
        """media_id and md5_sum of every row still waiting in `batch_id`, in media_id order."""

    def update_analysis_batch(
        self, batch_id: str, fields: dict, from_statuses: tuple[str, ...] | list[str] | None = None
    ) -> bool:
        """Set a batch's columns while its status is one of `from_statuses` (None: any); True
        when it was, so each step that moves a batch on is taken once."""

    def finish_batch_item(self, batch_id: str, outcome: AnalysisOutcome) -> bool:
        """Write one row's result if it still waits in `batch_id`, logging `before_events` and
        `event`; False when it does not (applied already, or handed back)."""

    def release_analysis_batch(self, batch_id: str, event: dict) -> int:
        """Hand back every row still waiting in `batch_id`, uncharged, to the status it had (a row
        analysed before stays `completed`), logging `event`. Returns how many."""

    def shareable_analysis(self, media_id: str, model: str) -> dict | None:
        """The row whose analysis `media_id` can share instead of a request of its own: a
        completed row analysed by `model` (or a dated snapshot of it) holding the same bytes
        (md5), else a confirmed near duplicate of it (same near_group_id: see extract-text);
        identical bytes first, then the largest copy. The one definition of "the same media"
        for analysis."""

    def batch_counts(self) -> dict:
        """batches_open, batch_items_open, batch_oldest_open_at, batch_cost_usd, batch_saved_usd."""

    def append_event(self, media_id: str, event: dict) -> None: ...

    # local text extraction, duplicates, search ------------------------------------------

    def claim_text(self, claim: TextClaim) -> list[dict]:
        """Claim cached rows for extract-text (the analysis claim's rule, on text_status), logging
        `claim.event` on each; a row whose bytes a live worker is reading now is left for later."""

    def text_claimants(self) -> list[str]: ...

    def text_backlog(self, statuses: list[str], media_ids: list[str] | None = None) -> int:
        """How many rows `claim_text` could take now with these statuses."""

    def finish_text(self, worker: str, outcome: TextOutcome, lease_seconds: int = TEXT_LEASE_SECONDS) -> int:
        """Write an extraction the worker still holds; a completed one also goes to every other
        row with the same md5 that is not extracted and not held by a live worker (each with its
        own started/completed events carrying `shared_from`). Rows written; 0: lease lost."""

    def extracted_text_of(self, md5_sum: str) -> dict | None:
        """A row holding these bytes whose text is extracted, or None."""

    def near_candidates(self, media_id: str, phash: str, max_distance: int) -> list[dict]:
        """Extracted images of other posts whose perceptual hash is within `max_distance` bits,
        nearest first: media_id, post_id, md5_sum, phash, extracted_text, file_size, near_group_id,
        distance."""

    def set_near_group(self, group_id: str, media_ids: list[str]) -> int:
        """Put these rows, the rows holding the same bytes and the groups they were in into one
        confirmed near-duplicate group."""

    def iter_duplicate_groups(self) -> Iterator[dict]:
        """Every member of every group of copies of one picture (same md5, or a confirmed near
        duplicate), by group_key, the best (largest) copy first (member_rank 1): kind, media_id,
        post_id, media_type, media_url, post_url, author_username, posted_at_timestamp,
        file_size, width, height, md5_sum, local_file_path."""

    def search_media(self, query: SearchQuery) -> list[SearchHit]:
        """Ranked hits, one per picture (identical and near-duplicate copies collapse into one
        listing every post, earliest first)."""

    def update_media(self, media_id: str, fields: dict, event: dict | None = None) -> None: ...

    def find_archived_copy(self, md5_sum: str) -> str | None: ...

    def find_cached(self, post_id: str | None = None, slot_key: str | None = None) -> dict | None:
        """The first downloaded, not evicted row of a post, or of a slot in any post: one read."""

    def posts_page(
        self, after_post_id: str | None, limit: int, start_date: str | None = None
    ) -> list[dict]: ...

    def media_slot_keys(self, post_ids: list[str]) -> set[tuple[str, str]]:
        """(post_id, slot_key) of every stored slot of these posts."""

    def media_counts(self) -> dict:
        """media_total, posts_total, by_download_status and by_ai_status (statuses with rows
        only), archived, evicted, expiring_48h and the analysis totals."""

    def mark_used(self, media_ids: list[str]) -> int:
        """Mark these rows' cached files read now (`cache_used_at`), in one write: eviction
        follows last use. Returns how many rows were marked."""

    def append_audit(self, entries: list[AuditEntry]) -> int:
        """Add entries to the append-only audit log (the database stamps the time); no
        operation of the store updates or deletes them. Returns how many were written."""

    def iter_audit(self, query: AuditQuery) -> Iterator[dict]:
        """The audit entries `query` matches, oldest first, a page at a time."""

    def download_metrics(self, since: str | None = None) -> dict:
        """From the rows' download events at or after `since` (ISO-8601 UTC; None: all time):
        succeeded, failed, served_without_http, http_timed, http_ms, http_bytes, p95_ms (nearest
        rank over timed HTTP fetches; None without any) and failures_by_kind."""

    def stage_counts(self) -> dict:
        """What each stage has waiting now (download, analysis, archive) and the archive's
        s3_objects and s3_bytes, one count per archive copy."""

    def analysis_costs(self, by: str, since: str | None = None) -> list[dict]:
        """Completed analyses at or after `since` summed by `by` (one of COST_GROUPS), in key
        order: {group_key, analyses, prompt_tokens, completion_tokens, cost_usd}."""

    def retention_candidates(self, cutoff_at: str) -> Iterator[dict]:
        """Cached rows of posts older than `cutoff_at` (posted then, else first seen then) whose
        bytes no younger post's cached row shares, in (md5_sum, media_id) order, paged."""

    def close(self) -> None: ...


def requeue_for_download(store: MediaStore, media_ids: list[str], forget_path: bool = False) -> None:
    """Put rows back in the download queue (missing, corrupt or evicted files)."""
    fields: dict = {"download_status": "pending", "download_permanent": False}
    if forget_path:
        fields["local_file_path"] = None
    for media_id in media_ids:
        store.update_media(media_id, fields)


def requeue_for_analysis(store: MediaStore, media_ids: list[str]) -> None:
    """Put rows back in the analysis queue (`analyze --status not_started` takes them next)."""
    for media_id in media_ids:
        store.update_media(
            media_id, {"ai_analysis_status": "not_started", "ai_claimed_by": None, "ai_claimed_at": None}
        )


def media_pages(read_page: Callable[[tuple | None], list[dict]]) -> Iterator[dict]:
    """Rows in key order, one page in memory at a time: `read_page(after)` returns up to
    PAGE_ROWS rows whose key (`media_order`) comes after `after` (None: from the start).

    Each page is its own read, after the last key seen: a row's key never changes, so no row
    is listed twice or skipped, and a writer between pages waits for nothing."""
    after = None
    while True:
        page = read_page(after)
        yield from page
        if len(page) < PAGE_ROWS:
            return
        after = media_order(page[-1])


# Query parameters that sign a URL rather than name the media (DESIGN.md, "Post JSON"): dropped
# wherever they appear; every other parameter is part of the slot's identity. The SQL twin is
# media_slot_key() in the migrations.
SIGNING_PARAMS = frozenset(
    {
        "e", "v", "t", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
        "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token", "AWSAccessKeyId", "Expires",
        "Signature", "Key-Pair-Id", "Policy",
    }
)  # fmt: skip


def slot_key(url: str) -> str:
    """The slot identity of a media URL: scheme and host (lower case), path, and the query
    parameters that are not signing ones, in their order; stable across re-signed URLs."""
    return split_slot_key(urlsplit(url))


def split_slot_key(parts: SplitResult) -> str:
    """`slot_key` of a URL already split."""
    kept = [p for p in parts.query.split("&") if p and p.split("=", 1)[0] not in SIGNING_PARAMS]
    key = f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path}"
    return f"{key}?{'&'.join(kept)}" if kept else key


def post_payloads(records: list[PostRecord], new_post_id: Callable[[], str]) -> list[dict]:
    """The `posts` rows to upsert, one per URN (ON CONFLICT may touch a row once per statement:
    a URN seen twice keeps its last record); `post_id` is used only for a new post."""
    unique = {r.urn: {"post_id": new_post_id(), **vars(r)} for r in records}
    return list(unique.values())


def upserted_in_input_order(rows: list[MediaSlotRow], result: list[dict]) -> list[UpsertedMedia]:
    """Map an upsert's returned (post_id, slot_key, media_id, inserted) rows back to the input."""
    by_slot = {(r["post_id"], r["slot_key"]): r for r in result}
    return [
        UpsertedMedia(
            by_slot[(r.post_id, r.slot_key)]["media_id"], r.post_id, r.slot_key,
            by_slot[(r.post_id, r.slot_key)]["inserted"],
        )
        for r in rows
    ]  # fmt: skip


def download_claim_order(row: dict) -> tuple:
    """The order claimed downloads are fetched in: the soonest-expiring signed URL first."""
    return (row["url_expires_at"] is None, row["url_expires_at"] or "", row["created_at"], row["position"])


def day_start_ms(day: str | None) -> int | None:
    """`YYYY-MM-DD` as the epoch milliseconds its UTC day starts at (posted_at_timestamp's unit)."""
    if day is None:
        return None
    start = datetime.combine(date.fromisoformat(day), time(), tzinfo=UTC)
    return int(start.timestamp() * 1000)


def system_info(script_name: str, platform: str = "linkedin") -> str:
    """download_runs.system_info as the original scripts write it: JSON text."""
    return json.dumps({"hostname": socket.gethostname(), "platform": platform, "script": script_name})


def analysis_claim_order(row: dict) -> tuple:
    """The order rows are analysed in: oldest first."""
    return (row["created_at"], row["media_id"])


def batch_counts_row(counts: dict) -> dict:
    """`batch_counts` in one shape whichever back end answered: amounts as floats, the oldest
    open batch's time as ISO-8601 UTC text (None without one)."""
    oldest = counts.get("batch_oldest_open_at")
    if isinstance(oldest, str):
        oldest = to_iso(datetime.fromisoformat(oldest))
    elif isinstance(oldest, datetime):
        oldest = to_iso(oldest)
    return {
        "batches_open": int(counts.get("batches_open") or 0),
        "batch_items_open": int(counts.get("batch_items_open") or 0),
        "batch_oldest_open_at": oldest,
        "batch_cost_usd": float(counts.get("batch_cost_usd") or 0),
        "batch_saved_usd": float(counts.get("batch_saved_usd") or 0),
    }


def browse_key(row: dict) -> tuple:
    """Where a `browse_media` row sits in its order: the key the next page starts after."""
    return (row["post_posted_at"], row["post_id"], row["position"], row["media_id"])


def like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its % _ and \\ literal (ESCAPE '\\')."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def media_order(row: dict) -> tuple:
    """The key `iter_media` lists rows in: by post, then the post's own order."""
    return (row["post_id"], row["position"], row["media_id"])


def day_start_iso(day: str | None) -> str | None:
    """`YYYY-MM-DD` as the ISO-8601 UTC text its day starts at (the stores' timestamp form)."""
    if day is None:
        return None
    return datetime.combine(date.fromisoformat(day), time(), tzinfo=UTC).isoformat(timespec="microseconds")


def audit_actor() -> tuple[str, str]:
    """Who is acting: the OS user (USER/LOGNAME, else the uid) and the host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        user = f"uid:{os.getuid()}"
    return user, socket.gethostname()


def make_audit(
    action: str,
    reason: str | None = None,
    media_id: str | None = None,
    target: str | None = None,
    details: dict | None = None,
) -> AuditEntry:
    """An audit entry by this process's user on this host."""
    if action not in AUDIT_ACTIONS:
        raise ValueError(f"audit action {action!r}: expected one of {', '.join(AUDIT_ACTIONS)}")
    user, host = audit_actor()
    return AuditEntry(action, user, host, media_id, target, reason, details)


def make_event(event: str, status: str = "success", details: dict | None = None, **extra) -> dict:
    """One `ai_analysis_log` entry: {timestamp, event, status, details?, model?}."""
    entry: dict[str, Any] = {"timestamp": utc_now(), "event": event, "status": status}
    if details:
        entry["details"] = details
    entry.update({k: v for k, v in extra.items() if v is not None})
    return entry
