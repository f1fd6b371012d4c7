"""Archive cached media to S3 in parallel, and restore cached files from their archive copy.

Each distinct file is uploaded once: rows sharing an `md5_sum` with an archived row reuse its
copy without a request, and a row gets `archive_url` only after the object was verified.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from social_tui_media.jobs import Progress
from social_tui_media.media.cache import CATEGORIES, CATEGORY_BY_MEDIA_TYPE, CachedMedia, MediaCache
from social_tui_media.media.s3_archive import Archive, ArchivedObject, ArchiveError, parse_s3_url
from social_tui_media.settings import Settings
from social_tui_media.store.interface import MediaStore, make_event
from social_tui_media.store.rows import utc_now

log = logging.getLogger(__name__)


@dataclass
class ArchiveReport:
    uploaded: int = 0  # files sent
    reused: int = 0  # rows pointed at an existing archive copy, no upload
    failed: int = 0
    bytes: int = 0
    failures: list[str] = field(default_factory=list)
    planned: list[dict] = field(default_factory=list)  # --dry-run: one entry per file to upload


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


def archive_rows(
    store: MediaStore,
    archive: Archive,
    rows: list[dict],
    *,
    workers: int = 5,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ArchiveReport:
    """Upload each distinct file once, verified; rows whose bytes are archived already reuse it."""
    report = ArchiveReport()
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["md5_sum"], []).append(row)
    to_upload: list[list[dict]] = []
    for md5_sum, group in groups.items():
        existing = store.find_archived_copy(md5_sum)
        if existing:
            key = parse_s3_url(existing)[1]
            if not dry_run:
                _record(
                    store,
                    group,
                    ArchivedObject(existing, key, group[0].get("file_size") or 0, True, True),
                    True,
                )
            report.reused += len(group)
        else:
            to_upload.append(group)
    if dry_run:
        report.planned = [
            {
                "media_id": g[0]["media_id"],
                "local_file_path": g[0]["local_file_path"],
                "bytes": g[0].get("file_size") or 0,
                "rows": len(g),
            }
            for g in to_upload
        ]
        return report
    if progress:
        progress.add_total(len(to_upload))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="archive") as pool:
        futures = {
            pool.submit(
                archive.upload,
                Path(g[0]["local_file_path"]),
                g[0]["media_id"],
                g[0]["md5_sum"],
                _extension(g[0]),
                check_existing=False,  # the store knows these bytes have no archive copy yet
            ): g
            for g in to_upload
        }
        for future in as_completed(futures):
            group = futures[future]
            try:
                obj = future.result()
            except (ArchiveError, OSError) as error:
                report.failed += len(group)
                for row in group:
                    report.failures.append(f"{row['media_id']}: {error}")
                    log.warning("archive failed: %s", error, extra={"media_id": row["media_id"]})
                if progress:
                    progress.advance(1, 0)
                continue
            _record(store, group, obj, obj.reused)
            report.uploaded += 0 if obj.reused else 1
            report.reused += len(group) - (0 if obj.reused else 1)
            report.bytes += 0 if obj.reused else obj.bytes
            if progress:
                progress.advance(1, obj.bytes)
    return report


def archive_restorer(settings: Settings, archive: Archive | None = None):
    """A downloader restorer: brings a row's file back from its archive copy into the cache."""
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
        except ArchiveError as error:
            log.warning("restore from archive failed: %s", error, extra={"media_id": row["media_id"]})
            return None
        return CachedMedia(
            md5_sum=row["md5_sum"], local_path=dest, file_size=dest.stat().st_size,
            mime_type=row.get("mime_type") or "application/octet-stream",
            width=row.get("width"), height=row.get("height"),
        )  # fmt: skip

    return restore
