"""Make every missing thumbnail: one per cached file (by MD5), on all cores."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from social_tui_media.jobs import Progress
from social_tui_media.media.cache import MediaCache
from social_tui_media.media.thumbnails import ThumbnailError, make_thumbnail, thumbnail_path
from social_tui_media.store.interface import MediaQuery, MediaStore

log = logging.getLogger(__name__)
THUMB_FIELDS = ("media_id", "md5_sum", "mime_type", "local_file_path", "download_status", "evicted_at")


@dataclass
class ThumbnailReport:
    files_seen: int = 0  # distinct cached files (by MD5)
    made: int = 0
    existing: int = 0  # had one already
    not_cached: int = 0  # row says downloaded but its file is not in the cache
    failed: int = 0
    failures: list[str] = field(default_factory=list)


def _missing(store: MediaStore, cache: MediaCache, report: ThumbnailReport) -> Iterator[tuple[Path, dict]]:
    """(target, row) for each cached file without a thumbnail, each MD5 once."""
    seen: set[str] = set()
    for row in store.iter_media(MediaQuery(download_status="downloaded")):
        md5_sum = row.get("md5_sum")
        if not md5_sum or md5_sum in seen or row.get("evicted_at"):
            continue
        seen.add(md5_sum)
        report.files_seen += 1
        target = thumbnail_path(cache.root, md5_sum)
        if target.is_file():
            report.existing += 1
            continue
        yield (
            target,
            {k: row.get(k) for k in THUMB_FIELDS},
        )  # what making one needs: a page's worth of rows stays small


def make_missing_thumbnails(
    store: MediaStore, cache: MediaCache, progress: Progress | None = None, workers: int | None = None
) -> ThumbnailReport:
    """A thumbnail for every cached file that has none; a file that gives none is one failure
    line and leaves nothing behind."""
    report = ThumbnailReport()
    todo = list(_missing(store, cache, report))
    if progress is not None:
        progress.expect(len(todo))

    def one(item: tuple[Path, dict]) -> str | None:
        target, row = item
        source = cache.file_of(row)
        if source is None:
            return "not_cached"
        try:
            make_thumbnail(source, row.get("mime_type"), target)
        except (ThumbnailError, OSError) as exc:
            log.warning("no thumbnail: %s", exc, extra={"media_id": row["media_id"]})
            return f"{row['media_id']}: {exc}"
        return None

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2) as pool:
        for outcome in pool.map(one, todo):
            if outcome is None:
                report.made += 1
            elif outcome == "not_cached":
                report.not_cached += 1
            else:
                report.failed += 1
                report.failures.append(outcome)
            if progress is not None:
                progress.advance(1, 0)
    return report
