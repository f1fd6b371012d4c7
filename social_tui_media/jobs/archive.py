"""Archive cached media to S3 in parallel, and restore cached files from their archive copy.

Each distinct file is uploaded once: rows sharing an `md5_sum` with an archived row reuse its
copy without a request, and a row gets `archive_url` only after the object was verified.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from social_tui_media.jobs import Progress
from social_tui_media.jobs.evict import forget_archive_copy
from social_tui_media.media.cache import CATEGORIES, CATEGORY_BY_MEDIA_TYPE, CachedMedia, MediaCache
from social_tui_media.media.s3_archive import (
    Archive,
    ArchiveCopyCorrupt,
    ArchivedObject,
    ArchiveError,
    parse_s3_url,
)
from social_tui_media.settings import Settings
from social_tui_media.store.interface import MediaStore, make_event
from social_tui_media.store.rows import utc_now

log = logging.getLogger(__name__)
# Parallel uploads to S3, like the aws CLI's default: the per-host cap MEDIA_MAX_CONCURRENT
# protects the media CDN, not the archive, which is built for many concurrent requests.
UPLOAD_WORKERS = 10


@dataclass
class ArchiveReport:
    uploaded: int = 0  # files sent
    reused: int = 0  # rows pointed at an existing archive copy, no upload
    failed: int = 0
    bytes: int = 0
    failures: list[str] = field(default_factory=list)


@dataclass
class ArchivePlan:
    """What archiving some rows takes: rows whose bytes are archived already, files to upload."""

    reuse: list[tuple[str, list[dict]]] = field(default_factory=list)  # (archive_url, rows)
    upload: list[list[dict]] = field(default_factory=list)  # rows sharing one file's bytes

    @property
    def rows_reusing(self) -> int:
        return sum(len(rows) for _, rows in self.reuse)

    @property
    def upload_bytes(self) -> int:
        return sum(group[0].get("file_size") or 0 for group in self.upload)


def archivable_rows(store: MediaStore, post_id: str | None = None, media_id: str | None = None) -> list[dict]:
    """Cached rows without an archive copy (all, one post's, or one row)."""
    if media_id:
        rows = store.list_media(media_ids=[media_id])
    else:
        rows = store.list_media(post_id=post_id, download_status="downloaded")
    return [
        r
        for r in rows
        if r["download_status"] == "downloaded" and not r.get("archive_url") and r.get("md5_sum")
    ]


def _extension(row: dict) -> str:
    suffix = Path(row.get("local_file_path") or "").suffix.lstrip(".")
    return suffix or "bin"


def _archived_event(obj: ArchivedObject, reused: bool) -> dict:
    return make_event(
        "media_archived",
        "success",
        {"key": obj.key, "bytes": obj.bytes, "verified": obj.verified, "reused": reused},
    )


def _record(store: MediaStore, rows: list[dict], obj: ArchivedObject, reused: bool) -> None:
    for row in rows:
        store.update_media(
            row["media_id"],
            {"archive_url": obj.s3_url, "archived_at": utc_now()},
            _archived_event(obj, reused),
        )


def plan_archive(store: MediaStore, rows: list[dict]) -> ArchivePlan:
    """Group rows by their bytes; bytes with an archive copy already are reused, not re-sent."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["md5_sum"], []).append(row)
    plan = ArchivePlan()
    for md5_sum, group in groups.items():
        existing = store.find_archived_copy(md5_sum)
        if existing:
            plan.reuse.append((existing, group))
        else:
            plan.upload.append(group)
    return plan


def archive_rows(
    store: MediaStore,
    archive: Archive,
    plan: ArchivePlan,
    *,
    workers: int = UPLOAD_WORKERS,
    progress: Progress | None = None,
) -> ArchiveReport:
    """Carry out a plan: point reusing rows at their copy, upload each other file once, verified."""
    report = ArchiveReport()
    for s3_url, group in plan.reuse:
        copy = ArchivedObject(s3_url, parse_s3_url(s3_url)[1], group[0].get("file_size") or 0, True, True)
        _record(store, group, copy, reused=True)
        report.reused += len(group)
    if progress:
        progress.expect(len(plan.upload))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="archive") as pool:
        futures = {pool.submit(_upload, archive, group): group for group in plan.upload}
        for future in as_completed(futures):
            sent = _settle(store, future, futures[future], report)
            if progress:
                progress.advance(1, sent)
    return report


def _upload(archive: Archive, group: list[dict]) -> ArchivedObject:
    first = group[0]
    return archive.upload(
        Path(first["local_file_path"]), first["media_id"], first["md5_sum"], _extension(first),
        check_existing=False,  # the store knows these bytes have no archive copy yet
    )  # fmt: skip


def _settle(store: MediaStore, future: Future, group: list[dict], report: ArchiveReport) -> int:
    """Record one upload's outcome on its rows; returns the bytes it sent."""
    try:
        obj = future.result()
    except (ArchiveError, OSError) as error:
        report.failed += len(group)
        for row in group:
            report.failures.append(f"{row['media_id']}: {error}")
            log.warning("archive failed: %s", error, extra={"media_id": row["media_id"]})
        return 0
    _record(store, group, obj, obj.reused)
    report.uploaded += 0 if obj.reused else 1
    report.reused += len(group) - (0 if obj.reused else 1)
    sent = 0 if obj.reused else obj.bytes
    report.bytes += sent
    return sent


def archive_verifier(settings: Settings, archive: Archive | None = None) -> Callable[[dict], bool]:
    """An eviction check: does the row's archive copy exist with its size and MD5 right now (HEAD)?
    Raises when the archive cannot be asked (configuration, network)."""
    archive = archive or Archive(settings)

    def check(row: dict) -> bool:
        return archive.verify(row["archive_url"], row["md5_sum"], expected_size=row.get("file_size"))

    return check


def archive_restorer(settings: Settings, archive: Archive | None = None, store: MediaStore | None = None):
    """A downloader restorer: brings a row's file back from its archive copy into the cache; a
    copy whose bytes no longer match is forgotten on the row (with `store`)."""
    archive = archive or Archive(settings)

    def restore(row: dict, cache: MediaCache) -> CachedMedia | None:
        if not row.get("archive_url") or not row.get("md5_sum"):
            return None
        category = Path(row.get("local_file_path") or "").parent.name
        if category not in CATEGORIES:
            category = CATEGORY_BY_MEDIA_TYPE.get(row["media_type"], "images")
        extension = Path(parse_s3_url(row["archive_url"])[1]).suffix.lstrip(".") or _extension(row)
        dest = cache.path_for(category, row["md5_sum"], extension)
        try:
            archive.restore(row["archive_url"], dest, row["md5_sum"])
        except ArchiveCopyCorrupt as error:
            if store is not None:
                forget_archive_copy(store, row, str(error))
            return None
        except ArchiveError as error:
            log.warning("restore from archive failed: %s", error, extra={"media_id": row["media_id"]})
            return None
        return CachedMedia(
            md5_sum=row["md5_sum"], local_path=dest, file_size=dest.stat().st_size,
            mime_type=row.get("mime_type") or "application/octet-stream",
            width=row.get("width"), height=row.get("height"),
        )  # fmt: skip

    return restore
