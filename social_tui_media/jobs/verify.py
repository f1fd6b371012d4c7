"""Check every cached file against its row's MD5, on all cores, and repair what is wrong."""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from social_tui_media.jobs import Progress
from social_tui_media.media.cache import MediaCache, MediaRejected, calculate_md5
from social_tui_media.settings import Settings
from social_tui_media.store.interface import MediaStore, make_audit, requeue_for_download

log = logging.getLogger(__name__)
STRAY_AGE_SECONDS = 3600


@dataclass
class VerifyReport:
    rows_checked: int = 0
    files_checked: int = 0
    bytes_checked: int = 0
    missing: list[dict] = field(default_factory=list)  # row's file is not on disk
    corrupt: list[dict] = field(default_factory=list)  # file's bytes do not hash to md5_sum
    dangling: list[dict] = field(default_factory=list)  # downloaded, but no path or no md5 recorded
    moved: list[dict] = field(default_factory=list)  # file found in the cache under another path
    misplaced: list[dict] = field(
        default_factory=list
    )  # intact, but outside the cache layout (older scripts)
    outside: list[dict] = field(default_factory=list)  # path outside the cache: reported, never touched
    stray: list[Path] = field(default_factory=list)  # cache files no row points at, older than STRAY_AGE

    @property
    def problems(self) -> list[dict]:
        return self.missing + self.corrupt + self.dangling + self.outside

    def as_dict(self) -> dict:
        brief = lambda rows: [  # noqa: E731
            {k: r.get(k) for k in ("media_id", "post_id", "local_file_path", "md5_sum")} for r in rows
        ]
        return {
            "rows_checked": self.rows_checked,
            "files_checked": self.files_checked,
            "bytes_checked": self.bytes_checked,
            "missing": brief(self.missing),
            "corrupt": brief(self.corrupt),
            "dangling": brief(self.dangling),
            "moved": brief(self.moved),
            "misplaced": brief(self.misplaced),
            "outside_cache": brief(self.outside),
            "stray_files": [str(p) for p in self.stray],
        }


def _hash_or_none(path: Path) -> tuple[str | None, int]:
    try:
        return calculate_md5(path), path.stat().st_size
    except OSError:
        return None, 0


def verify_cache(store: MediaStore, cache: MediaCache, workers: int | None = None) -> VerifyReport:
    """Re-hash every file the database says is cached (each file once, all cores)."""
    report = VerifyReport()
    every_row = store.list_media()
    rows = [r for r in every_row if r["download_status"] == "downloaded" and not r.get("evicted_at")]
    report.rows_checked = len(rows)
    report.stray = stray_files(cache, every_row)
    by_file: dict[Path, list[dict]] = {}
    for row in rows:
        if not row.get("local_file_path") or not row.get("md5_sum"):
            report.dangling.append(row)
            continue
        path = cache.confined(row["local_file_path"], legacy_too=True)
        if path is None:  # never read, hashed or deleted: a repair only forgets the path
            log.warning("%s points outside the cache: %s", row["media_id"], row["local_file_path"])
            report.outside.append(row)
            continue
        if not path.is_file():
            elsewhere = cache.find(row["md5_sum"])
            (report.moved if elsewhere else report.missing).append(row)
            if elsewhere:
                by_file.setdefault(elsewhere, []).append(row)
            continue
        by_file.setdefault(path, []).append(row)
    paths = list(by_file)
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2) as pool:
        hashes = list(pool.map(_hash_or_none, paths, chunksize=4))
    for path, (digest, size) in zip(paths, hashes, strict=True):
        report.files_checked += 1
        report.bytes_checked += size
        for row in by_file[path]:
            if digest != row["md5_sum"]:
                report.corrupt.append(row)
            elif not _in_layout(cache, path, digest):
                report.misplaced.append(row)
    return report


def _in_layout(cache: MediaCache, path: Path, md5_sum: str) -> bool:
    """True for `{root}/{category}/{md5}.{ext}` files (not e.g. an older `cache/images/x.bin`)."""
    try:
        relative = path.resolve().relative_to(cache.root.resolve())
    except ValueError:
        return False
    return len(relative.parts) == 2 and relative.stem == md5_sum and relative.suffix not in ("", ".bin")


def adopt_misplaced(store: MediaStore, cache: MediaCache, report: VerifyReport) -> int:
    """Copy intact files left outside the layout into the cache (typed from their bytes)."""
    adopted = 0
    for row in report.misplaced:
        try:
            cached = cache.admit_copy(Path(row["local_file_path"]))
        except (MediaRejected, OSError) as error:
            log.warning(
                "cannot adopt %s: %s", row["local_file_path"], error, extra={"media_id": row["media_id"]}
            )
            continue
        store.update_media(
            row["media_id"],
            {
                "local_file_path": str(cached.local_path),
                "mime_type": cached.mime_type,
                "width": cached.width,
                "height": cached.height,
            },
        )
        adopted += 1
    return adopted


def stray_files(cache: MediaCache, rows: list[dict], min_age: float = STRAY_AGE_SECONDS) -> list[Path]:
    """Complete files in the cache that no row points at. Only files older than `min_age`: a
    download that just finished may not be recorded yet."""
    referenced = {cache.confined(r.get("local_file_path")) for r in rows}
    cutoff = time.time() - min_age
    return sorted(
        p for p in cache.cached_files() if p.resolve() not in referenced and p.stat().st_mtime < cutoff
    )


def remove_strays(store: MediaStore, cache: MediaCache, report: VerifyReport) -> int:
    """Delete the stray files a verification found, each audited; returns how many."""
    if report.stray:
        store.append_audit([make_audit("file_deleted", "repair_stray", None, str(p)) for p in report.stray])
    for path in report.stray:
        log.warning("removing stray cache file %s (no row points at it)", path.name)
        cache.remove(path)
    return len(report.stray)


def mark_for_refetch(store: MediaStore, cache: MediaCache, report: VerifyReport) -> list[str]:
    """Remove corrupt files, point moved rows at their file, and queue broken rows again."""
    corrupt_paths = {cache.confined(r["local_file_path"]) for r in report.corrupt if r.get("local_file_path")}
    audited = [
        make_audit("file_deleted", "repair_corrupt", r["media_id"], str(cache.confined(r["local_file_path"])))
        for r in report.corrupt
        if cache.confined(r.get("local_file_path"))
    ]
    if audited:
        store.append_audit(audited)
    for path in corrupt_paths - {None}:  # a corrupt file of the older scripts' cache is left as it is
        log.warning("removing corrupt cached file %s", path.name)
        cache.remove(path)
    for row in report.moved:
        if row in report.corrupt:
            continue
        found = cache.find(row["md5_sum"])
        if found is not None:
            store.update_media(row["media_id"], {"local_file_path": str(found)})
    queued = [r["media_id"] for r in report.problems]
    requeue_for_download(store, queued, forget_path=True)
    return queued


@dataclass
class RepairReport:
    strays_removed: int = 0
    adopted: int = 0  # intact files moved into the cache layout
    restored: int = 0  # missing or corrupt files brought back (archive copy or re-download)
    restore_failed: int = 0
    failures: list[str] = field(default_factory=list)


def repair_cache(
    store: MediaStore,
    settings: Settings,
    cache: MediaCache,
    report: VerifyReport,
    progress: Progress | None = None,
) -> RepairReport:
    """Fix what a verification found: strays go, misplaced files are adopted, missing and
    corrupt ones are restored from the archive or downloaded again."""
    from social_tui_media.jobs.download import download_pending  # requests loads only when repairing

    repaired = RepairReport(remove_strays(store, cache, report), adopt_misplaced(store, cache, report))
    queued = mark_for_refetch(store, cache, report)
    if queued:
        downloads = download_pending(store, settings, media_ids=queued, retry_failed=True, progress=progress)
        repaired.restored, repaired.restore_failed = downloads.downloaded, downloads.failed
        repaired.failures = downloads.failures
    return repaired
