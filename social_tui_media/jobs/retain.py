"""The retention policy (MEDIA_RETENTION_DAYS): the local files of posts older than N days go,
when their archive copy verifies now; never the only copy. A file that a younger post also
uses stays (the store's `retention_candidates` leaves it out). Each deletion is audited, and its
rows are marked evicted, so `analyze --media-id` or the TUI can bring a file back from S3."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import groupby
from pathlib import Path

from social_tui_media.jobs.evict import ArchiveCheck, archive_verified, remove_cached_file
from social_tui_media.media.cache import MediaCache
from social_tui_media.store.interface import MediaStore
from social_tui_media.store.rows import to_iso

log = logging.getLogger(__name__)
LISTED = 200  # files named in a report; the counts cover all


@dataclass
class RetentionReport:
    retention_days: int
    cutoff: str  # posts posted (else first seen) before this instant are old
    dry_run: bool = False
    files_removed: int = 0  # in a dry run: files that would be removed
    rows_evicted: int = 0
    bytes_freed: int = 0
    kept_without_archive: int = 0  # old, but no archive copy verifies: the only copy stays
    outside_cache: int = 0  # rows pointing outside the cache root: reported, never touched
    files: list[str] = field(default_factory=list)  # the first LISTED files removed


def retention_cutoff(days: int, now: datetime | None = None) -> str:
    """The instant before which a post is older than `days` days."""
    return to_iso((now or datetime.now(UTC)) - timedelta(days=days))


def apply_retention(
    store: MediaStore,
    cache: MediaCache,
    days: int,
    archive_check: ArchiveCheck | None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> RetentionReport:
    """Remove (or, in a dry run, list) the cached files only posts older than `days` use and
    whose archive copy verifies now; without an archive check nothing is removed."""
    report = RetentionReport(days, retention_cutoff(days, now), dry_run)
    details = {"retention_days": days, "cutoff": report.cutoff}
    for _, group in groupby(store.retention_candidates(report.cutoff), key=lambda r: r["md5_sum"]):
        rows = list(group)
        by_path: dict[Path, list[dict]] = {}
        for row in rows:
            path = cache.confined(row["local_file_path"])
            if path is None:
                report.outside_cache += 1
            elif path.is_file():
                by_path.setdefault(path, []).append(row)
        if not by_path:
            continue
        if not archive_verified(store, rows, archive_check, forget=not dry_run):
            report.kept_without_archive += len(by_path)
            continue
        for path, path_rows in by_path.items():
            size = path.stat().st_size
            if not dry_run:
                remove_cached_file(store, cache, path, path_rows, "retention", details)
                log.info(
                    "retention removed %s (%d bytes)",
                    path.name,
                    size,
                    extra={"media_id": path_rows[0]["media_id"]},
                )
            report.files_removed += 1
            report.rows_evicted += len(path_rows)
            report.bytes_freed += size
            if len(report.files) < LISTED:
                report.files.append(str(path))
    return report
