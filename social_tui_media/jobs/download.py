"""Download every pending media slot: claimed in the database, fetched in parallel, written
back in batches by the coordinating thread.

A slot costs no HTTP request when its bytes are already cached, when an older checkout's
cache holds its file, or when its archive copy can be restored.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path

from social_tui_media.jobs import Progress
from social_tui_media.media.cache import CachedMedia, MediaCache, MediaRejected
from social_tui_media.media.fetch import Fetcher, FetchError, FetchPolicy, redact_url
from social_tui_media.settings import Settings
from social_tui_media.store.claims import is_dead_local_worker, worker_id
from social_tui_media.store.interface import DownloadClaim, DownloadOutcome, MediaStore, make_event

log = logging.getLogger(__name__)

CLAIM_BATCH = 100
FLUSH_EVERY = 50
FLUSH_SECONDS = 1.0

# Restores a row's file from its archive copy into the cache; None when there is none.
Restorer = Callable[[dict, MediaCache], "CachedMedia | None"]


class MediaFeed:
    """Media ids to download, in order, possibly still growing while an import runs."""

    def __init__(self, ids: Iterable[str] = (), closed: bool = False) -> None:
        self._ids: deque[str] = deque(ids)
        self._closed = closed
        self._ready = threading.Condition()

    def extend(self, ids: Iterable[str]) -> None:
        with self._ready:
            self._ids.extend(ids)
            self._ready.notify_all()

    def close(self) -> None:
        """No more ids will come."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    @property
    def closed(self) -> bool:
        with self._ready:
            return self._closed

    def pending(self) -> int:
        """Distinct ids not yet handed out."""
        with self._ready:
            return len(set(self._ids))

    def finished(self) -> bool:
        with self._ready:
            return self._closed and not self._ids

    def take(self, count: int, timeout: float) -> list[str] | None:
        """Up to `count` ids, waiting up to `timeout` for some; None once closed and drained."""
        with self._ready:
            self._ready.wait_for(lambda: self._ids or self._closed, timeout)
            if not self._ids:
                return None if self._closed else []
            return [self._ids.popleft() for _ in range(min(count, len(self._ids)))]


@dataclass
class DownloadReport:
    downloaded: int = 0  # rows now cached
    fetched: int = 0  # of which needed an HTTP download
    reused: int = 0  # of which came from the cache, a legacy file or the archive
    failed: int = 0
    bytes: int = 0  # bytes fetched over HTTP
    failures: list[str] = field(default_factory=list)  # "med-…: reason", one line each

    @property
    def attempted(self) -> int:
        return self.downloaded + self.failed


@dataclass(frozen=True)
class Obtained:
    cached: CachedMedia
    source: str  # http | cache | legacy | archive (| shared: another slot's fetch served it)
    attempts: int
    duration_ms: int = 0  # how long obtaining it took (stats: download times and throughput)


def _group_by_slot(rows: list[dict]) -> list[list[dict]]:
    """Rows sharing a URL path (the same media in several posts) are fetched once."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["slot_key"], []).append(row)
    return list(groups.values())


def _freshest(group: list[dict]) -> dict:
    return max(group, key=lambda r: r.get("url_expires_at") or "")


class Downloader:
    """Fetches claimed rows into one cache. Thread safe where it needs to be."""

    def __init__(self, cache: MediaCache, fetcher: Fetcher, restorer: Restorer | None = None) -> None:
        self.cache = cache
        self.fetcher = fetcher
        self.restorer = restorer

    def obtain(self, group: list[dict]) -> Obtained:
        """The group's file, the cheapest way (cache, legacy file, archive, then HTTP), timed."""
        started = time.monotonic()
        obtained = self._obtain(group)
        return replace(obtained, duration_ms=round((time.monotonic() - started) * 1000))

    def _obtain(self, group: list[dict]) -> Obtained:
        for row in group:
            known = row.get("md5_sum") and self.cache.find(row["md5_sum"])
            if known and row.get("file_size") in (None, known.stat().st_size):
                return Obtained(self._describe(known, row), "cache", 0)
        for row in group:
            legacy = self.cache.legacy_file(row["media_url"])
            if legacy is not None:
                try:
                    return Obtained(self.cache.admit_copy(legacy), "legacy", 0)
                except MediaRejected:
                    log.info("legacy file %s is not media; fetching instead", legacy.name)
        if self.restorer is not None:
            for row in group:
                if row.get("archive_url"):
                    restored = self.restorer(row, self.cache)
                    if restored is not None:
                        return Obtained(restored, "archive", 0)
        cached, attempts = self.cache.admit_url(self.fetcher, _freshest(group)["media_url"])
        return Obtained(cached, "http", attempts)

    def _describe(self, path: Path, row: dict) -> CachedMedia:
        return CachedMedia(
            md5_sum=row["md5_sum"],
            local_path=path,
            file_size=path.stat().st_size,
            mime_type=row.get("mime_type") or "application/octet-stream",
            width=row.get("width"),
            height=row.get("height"),
        )


def success_outcome(row: dict, obtained: Obtained) -> DownloadOutcome:
    c = obtained.cached
    details = {
        "md5_sum": c.md5_sum, "file_size": c.file_size, "mime_type": c.mime_type,
        "width": c.width, "height": c.height, "source": obtained.source,
        "attempts": obtained.attempts, "duration_ms": obtained.duration_ms,
    }  # fmt: skip
    if c.duration_seconds is not None:
        details["duration_seconds"] = round(c.duration_seconds, 3)
    return DownloadOutcome(
        media_id=row["media_id"],
        download_status="downloaded",
        event=make_event("media_downloaded", "success", details),
        md5_sum=c.md5_sum,
        file_size=c.file_size,
        mime_type=c.mime_type,
        width=c.width,
        height=c.height,
        local_file_path=str(c.local_path),
        attempts=obtained.attempts,
    )


def failure_outcome(row: dict, error: Exception) -> DownloadOutcome:
    kind = getattr(error, "kind", "error")
    permanent = bool(getattr(error, "permanent", False))
    attempts = int(getattr(error, "attempts", 0) or 0)
    message = str(error) or error.__class__.__name__
    details = {"error_kind": kind, "message": message, "attempts": attempts, "permanent": permanent}
    if getattr(error, "status", None):
        details["http_status"] = error.status
    return DownloadOutcome(
        media_id=row["media_id"],
        download_status="failed",
        event=make_event("media_download_failed", "failed", details),
        download_error=message,
        download_error_kind=kind,
        download_permanent=permanent,
        attempts=attempts,
    )


def download_pending(
    store: MediaStore,
    settings: Settings,
    *,
    media_ids: list[str] | MediaFeed | None = None,
    retry_failed: bool = False,
    limit: int | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    restorer: Restorer | None = None,
    fetcher: Fetcher | None = None,
) -> DownloadReport:
    """Download pending slots: all (soonest-expiring first), or those of `media_ids`, a list
    or a MediaFeed that an import is still filling."""
    report = DownloadReport()
    feed = MediaFeed(media_ids, closed=True) if isinstance(media_ids, list) else media_ids
    if feed is not None and feed.finished():
        return report
    restorer = restorer or archive_restorer_for(settings, store)
    cache = MediaCache(settings.cache_dir)
    cache.ensure_dirs()
    cache.clean_leftovers()
    workers = workers or settings.max_concurrent
    own_fetcher = fetcher is None
    fetcher = fetcher or Fetcher(FetchPolicy.from_settings(settings), settings.max_concurrent)
    dead = [c for c in store.download_claimants() if is_dead_local_worker(c)]
    if dead:
        log.info("taking over %d claims of processes that are gone", len(dead))
    run = _Run(
        store, Downloader(cache, fetcher, restorer), worker_id(), dead, feed, retry_failed, limit,
        workers, progress, report,
    )  # fmt: skip
    if progress:
        progress.expect(_expected_items(store, feed, retry_failed, limit))
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="download") as pool:
            run.execute(pool)
    finally:
        if own_fetcher:
            fetcher.close()
    return report


def archive_restorer_for(settings: Settings, store: MediaStore | None = None) -> Restorer | None:
    """Restores from the S3 archive when one is configured (AWS_S3_BUCKET), else None."""
    if not settings.s3_bucket:
        return None
    from social_tui_media.jobs.archive import archive_restorer  # boto3 loads only with a bucket

    return archive_restorer(settings, store=store)


def _expected_items(
    store: MediaStore, feed: MediaFeed | None, retry_failed: bool, limit: int | None
) -> int | None:
    """How many rows the run will take, counted before it starts; None while an import is
    still feeding ids. Rows another process holds make it an upper bound."""
    if feed is not None and not feed.closed:
        return None
    backlog = feed.pending() if feed is not None else store.download_backlog(retry_failed)
    return backlog if limit is None else min(limit, backlog)


@dataclass
class _Run:
    """One download run's fixed parts: who claims, what it may claim, where results go."""

    store: MediaStore
    downloader: Downloader
    worker: str
    dead_workers: list[str]
    feed: MediaFeed | None
    retry_failed: bool
    limit: int | None
    workers: int
    progress: Progress | None
    report: DownloadReport

    def claim_next(self, want: int, wait_for_feed: bool) -> list[dict] | None:
        """The next rows to fetch; None when there is nothing left to claim at all.

        Without a feed, any claimable row. With one, only the ids it hands out, a window at a
        time: each claim stays small whatever the import's size, and downloads start while the
        import is still writing later batches.
        """
        if self.feed is None:
            return self.store.claim_downloads(self._claim(want, None)) or None
        window = self.feed.take(want, FLUSH_SECONDS if wait_for_feed else 0.0)
        if window is None:
            return None
        return self.store.claim_downloads(self._claim(len(window), window)) if window else []

    def _claim(self, limit: int, media_ids: list[str] | None) -> DownloadClaim:
        return DownloadClaim(self.worker, limit, self.retry_failed, self.dead_workers, media_ids)

    def execute(self, pool: ThreadPoolExecutor) -> None:
        """Keep the pool fed with claimed slot groups; write outcomes back in batches."""
        inflight: dict[Future, list[dict]] = {}
        outcomes: list[DownloadOutcome] = []
        try:
            self._feed_pool(pool, inflight, outcomes)
        except KeyboardInterrupt:
            self.abandon(pool, inflight, outcomes)
            raise
        if self.downloader.fetcher.cancelled:  # cancelled from another thread (an import's Ctrl-C)
            self.abandon(pool, inflight, outcomes)

    def _feed_pool(
        self, pool: ThreadPoolExecutor, inflight: dict[Future, list[dict]], outcomes: list[DownloadOutcome]
    ) -> None:
        attempted: set[str] = set()
        told = self.feed is None or self.feed.closed  # the total was given at the start
        remaining = self.limit if self.limit is not None else float("inf")
        exhausted = False
        last_flush = time.monotonic()
        while not self.downloader.fetcher.cancelled:
            while not exhausted and remaining > 0 and len(inflight) < self.workers * 2:
                rows = self.claim_next(int(min(CLAIM_BATCH, remaining)), not inflight)
                if rows is None:
                    exhausted = True
                    break
                fresh = [r for r in rows if r["media_id"] not in attempted]
                if not fresh:
                    if self.feed is None:
                        exhausted = True  # only rows this run already tried are left
                    break
                remaining -= len(fresh)
                attempted.update(r["media_id"] for r in fresh)
                for group in _group_by_slot(fresh):
                    inflight[pool.submit(self.downloader.obtain, group)] = group
            if self.progress and not told and self.feed.closed:
                told = True  # the import is done: the run's whole count is known now
                self.progress.expect(len(attempted) + self.feed.pending())
            if not inflight:
                if exhausted or remaining <= 0:
                    break
                continue  # the feed is still open: the next take waits for it
            done, _ = wait(inflight, timeout=FLUSH_SECONDS, return_when=FIRST_COMPLETED)
            for future in done:
                outcomes += _settle(future, inflight.pop(future), self.report, self.progress)
            if outcomes and (len(outcomes) >= FLUSH_EVERY or time.monotonic() - last_flush >= FLUSH_SECONDS):
                self.store.finish_downloads(self.worker, outcomes)
                outcomes.clear()
                last_flush = time.monotonic()
        if outcomes:
            self.store.finish_downloads(self.worker, outcomes)
            outcomes.clear()
        if self.progress and not self.downloader.fetcher.cancelled:
            self.progress.expect(len(attempted))  # what the run really took: the bar ends full

    def abandon(
        self, pool: ThreadPoolExecutor, inflight: dict[Future, list[dict]], outcomes: list[DownloadOutcome]
    ) -> None:
        """Ctrl-C: stop every transfer at once (each removes its temp file), keep the results
        that are in, and give back the claims of everything else, recording nothing for it."""
        log.warning("interrupted: abandoning %d downloads in progress", len(inflight))
        self.downloader.fetcher.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        for future, group in inflight.items():
            if not future.cancelled() and future.exception() is None:
                outcomes += _settle(future, group, self.report, self.progress)
        try:
            if outcomes:
                self.store.finish_downloads(self.worker, outcomes)
            released = self.store.release_downloads(self.worker)
        except Exception:  # the interrupt goes on; claims left behind expire or are taken over
            log.exception("could not give back the claims of the interrupted run")
        else:
            log.info("gave back %d claims for the next run", released)


def _settle(future: Future, group: list[dict], report: DownloadReport, progress) -> list[DownloadOutcome]:
    try:
        obtained = future.result()
    except Exception as error:  # one item's failure never stops the run
        if isinstance(error, FetchError) and error.kind == "cancelled":
            return []  # abandoned, not failed: the run gives the claim back
        if not isinstance(error, (FetchError, MediaRejected, OSError)):
            log.error("unexpected download error", exc_info=error)
        for row in group:
            log.warning(
                "download failed: %s",
                error,
                extra={
                    "media_id": row["media_id"],
                    "post_id": row["post_id"],
                    "url": redact_url(row["media_url"]),
                },
            )
            report.failures.append(f"{row['media_id']}: {error}")
        report.failed += len(group)
        if progress:
            progress.advance(len(group), 0)
        return [failure_outcome(row, error) for row in group]
    report.downloaded += len(group)
    if obtained.source == "http":
        report.fetched += 1
        report.reused += len(group) - 1
        report.bytes += obtained.cached.file_size
    else:
        report.reused += len(group)
    for row in group:
        log.info(
            "media cached (%s)",
            obtained.source,
            extra={
                "media_id": row["media_id"],
                "post_id": row["post_id"],
                "md5_sum": obtained.cached.md5_sum,
            },
        )
    if progress:
        progress.advance(len(group), obtained.cached.file_size if obtained.source == "http" else 0)
    # One HTTP fetch serves the whole group: the other slots count as served without a request.
    shared = replace(obtained, source="shared", attempts=0) if obtained.source == "http" else obtained
    return [success_outcome(row, obtained if i == 0 else shared) for i, row in enumerate(group)]
