"""LRU eviction when the cache outgrows `MEDIA_CACHE_LIMIT`. Never deletes the only copy of a
file: a file goes only when its archive copy verifies now (HEAD: size and stored MD5), unless
forced; an archive copy that no longer verifies is forgotten, so nothing trusts it again."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from social_tui_media.media.cache import MediaCache
from social_tui_media.store.interface import MediaStore, make_audit, make_event
from social_tui_media.store.rows import utc_now

log = logging.getLogger(__name__)

# True when the row's archive copy verifies, False when it definitely does not; raises when it
# cannot be checked now (the archive unreachable): the file is then kept and the row left alone.
ArchiveCheck = Callable[[dict], bool]


@dataclass
class EvictionReport:
    cache_bytes_before: int = 0
    files_evicted: int = 0
    bytes_freed: int = 0
    kept_without_archive: int = 0  # files that would have gone, but have no verified archive copy
    outside_cache: int = 0  # rows pointing outside the cache root: reported, never touched


@dataclass(frozen=True)
class _CachedFile:
    last_used: str
    path: str
    rows: list[dict]


def _files_by_last_use(rows: list[dict]) -> list[_CachedFile]:
    """Each cached file with its rows, least recently used first."""
    files: dict[str, list[dict]] = {}
    for row in rows:
        if row.get("local_file_path") and not row.get("evicted_at"):
            files.setdefault(row["local_file_path"], []).append(row)
    used = {
        p: max((r.get("cache_used_at") or r.get("downloaded_at") or "") for r in rs)
        for p, rs in files.items()
    }
    return sorted((_CachedFile(used[p], p, rs) for p, rs in files.items()), key=lambda f: f.last_used)


def forget_archive_copy(store: MediaStore, row: dict, reason: str) -> None:
    """A row's archive copy failed verification: clear it, so nothing (eviction above all) trusts it."""
    log.warning(
        "archive copy of %s is not usable: %s", row["media_id"], reason, extra={"media_id": row["media_id"]}
    )
    store.update_media(
        row["media_id"],
        {"archive_url": None, "archived_at": None},
        make_event("media_archive_invalid", "failed", {"archive_url": row["archive_url"], "reason": reason}),
    )


def archive_verified(
    store: MediaStore, rows: list[dict], check: ArchiveCheck | None, forget: bool = True
) -> bool:
    """Whether one of these rows has an archive copy that verifies right now; a copy that
    definitely does not is forgotten on its row (unless `forget` is False: a dry run)."""
    for row in rows:
        if not (row.get("archive_url") and row.get("archived_at")) or check is None:
            continue
        try:
            if check(row):
                return True
        except Exception as error:  # noqa: BLE001 - unreachable archive: keep the file, change nothing
            log.warning("cannot verify archive copy: %s", error, extra={"media_id": row["media_id"]})
            continue
        if not forget:
            continue
        log.warning(
            "archive copy %s does not verify; forgetting it",
            row["archive_url"],
            extra={"media_id": row["media_id"]},
        )
        store.update_media(
            row["media_id"],
            {"archive_url": None, "archived_at": None},
            make_event("media_archive_invalid", "failed", {"archive_url": row["archive_url"]}),
        )
    return False


def remove_cached_file(
    store: MediaStore,
    cache: MediaCache,
    path: Path,
    rows: list[dict],
    reason: str,
    details: dict | None = None,
) -> None:
    """Delete a cached file whose bytes are safe elsewhere: its rows are marked evicted (restored
    from the archive when needed again) and each deletion is written to the audit log first."""
    store.append_audit(
        [make_audit("file_deleted", reason, row["media_id"], str(path), details) for row in rows]
    )
    cache.remove(path)
    for row in rows:
        store.update_media(row["media_id"], {"evicted_at": utc_now()})


def evict_lru(
    store: MediaStore,
    cache: MediaCache,
    limit_bytes: int,
    archive_check: ArchiveCheck | None = None,
    force: bool = False,
) -> EvictionReport:
    """Delete least recently used cached files until the cache fits in `limit_bytes`."""
    _, total = cache.usage()
    report = EvictionReport(cache_bytes_before=total)
    if total <= limit_bytes:
        return report
    for cached in _files_by_last_use(store.list_media(download_status="downloaded")):
        if total <= limit_bytes:
            break
        path = cache.confined(cached.path)
        if path is None:
            report.outside_cache += len(cached.rows)
            continue
        if not path.is_file():
            continue
        if not force and not archive_verified(store, cached.rows, archive_check):
            report.kept_without_archive += 1
            continue
        size = path.stat().st_size
        remove_cached_file(store, cache, path, cached.rows, "eviction", {"cache_limit": limit_bytes})
        total -= size
        report.files_evicted += 1
        report.bytes_freed += size
        log.info("evicted %s (%d bytes)", path.name, size)
    if total > limit_bytes and report.kept_without_archive:
        log.warning(
            "cache is %d bytes over MEDIA_CACHE_LIMIT; %d files have no verified archive copy: "
            "run `manage_media.py archive --all`",
            total - limit_bytes,
            report.kept_without_archive,
        )
    return report
