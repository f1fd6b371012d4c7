"""LRU eviction when the cache outgrows `MEDIA_CACHE_LIMIT`. Never deletes the only copy of a
file: only files whose bytes have a verified archive copy go, unless forced."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from social_tui_media.media.cache import MediaCache
from social_tui_media.store.interface import MediaStore
from social_tui_media.store.rows import utc_now

log = logging.getLogger(__name__)


@dataclass
class EvictionReport:
    cache_bytes_before: int = 0
    files_evicted: int = 0
    bytes_freed: int = 0
    kept_without_archive: int = 0  # files that would have gone, but have no archive copy


def _files_by_last_use(rows: list[dict]) -> list[tuple[str, Path, bool, list[str]]]:
    """(last used, path, archived, media_ids) per cached file, least recently used first."""
    files: dict[str, dict] = {}
    for row in rows:
        path = row.get("local_file_path")
        if not path or row.get("evicted_at"):
            continue
        entry = files.setdefault(path, {"used": "", "archived": False, "ids": []})
        entry["used"] = max(entry["used"], row.get("cache_used_at") or row.get("downloaded_at") or "")
        entry["archived"] |= bool(row.get("archive_url") and row.get("archived_at"))
        entry["ids"].append(row["media_id"])
    ordered = sorted(files.items(), key=lambda item: item[1]["used"])
    return [(e["used"], Path(p), e["archived"], e["ids"]) for p, e in ordered]


def evict_lru(store: MediaStore, cache: MediaCache, limit_bytes: int, force: bool = False) -> EvictionReport:
    """Delete least recently used cached files until the cache fits in `limit_bytes`."""
    _, total = cache.usage()
    report = EvictionReport(cache_bytes_before=total)
    if total <= limit_bytes:
        return report
    for _, path, archived, media_ids in _files_by_last_use(store.list_media(download_status="downloaded")):
        if total <= limit_bytes:
            break
        if not path.is_file():
            continue
        if not archived and not force:
            report.kept_without_archive += 1
            continue
        size = path.stat().st_size
        cache.remove(path)
        total -= size
        report.files_evicted += 1
        report.bytes_freed += size
        for media_id in media_ids:
            store.update_media(media_id, {"evicted_at": utc_now()})
        log.info("evicted %s (%d bytes)", path.name, size)
    if total > limit_bytes and report.kept_without_archive:
        log.warning(
            "cache is %d bytes over MEDIA_CACHE_LIMIT; %d files have no archive copy: run `manage_media.py archive --all`",
            total - limit_bytes,
            report.kept_without_archive,
        )
    return report
