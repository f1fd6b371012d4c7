"""Import scraped post files into the store: posts, their stats history, and media slots.

`import_path` is the job; the functions after it are the installation's `manage_data` API
(`import_directory`, `extract_and_store_media`, `create_download_run`, ...), with its
signatures and return shapes, backed by this job and the safe downloader.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from social_tui_media.jobs import Progress
from social_tui_media.jobs.download import DownloadReport, MediaFeed, download_pending
from social_tui_media.media.fetch import Fetcher, FetchPolicy
from social_tui_media.posts.json_values import clean_text
from social_tui_media.posts.media_items import post_identity
from social_tui_media.posts.reader import ReadBatch, read_batches
from social_tui_media.posts.records import (
    PreparedPost,
    media_rows,
    slot_rows,
    stats_download_id,
    unique_slots,
    with_stats_ids,
)
from social_tui_media.settings import Settings, load_settings
from social_tui_media.store import as_store
from social_tui_media.store.interface import MediaStore, RunCounts
from social_tui_media.store.rows import utc_now

log = logging.getLogger(__name__)


@dataclass
class ImportReport:
    run_id: str | None = None
    files: int = 0
    posts_processed: int = 0
    posts_new: int = 0
    posts_updated: int = 0
    media_total: int = 0
    media_new: int = 0
    media_ids: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one line each, naming file and post

    @property
    def skipped(self) -> int:
        return len(self.problems)


@dataclass(frozen=True)
class _Batch:
    """What one import writes for every batch: its run, its time, and the key of its stats rows."""

    run_id: str | None
    downloaded_at: str
    stats_key: bytes  # a post's stats row id in this import (see records.stats_download_id)


def _write_batch(
    store: MediaStore,
    batch: list[PreparedPost],
    writing: _Batch,
    report: ImportReport,
    on_media: Callable[[list[str]], None] | None,
) -> bool:
    """One batch's posts, media slots and stats rows, each one store call; whether a post of
    the batch was met in an earlier one (its media ids are then listed twice)."""
    ids = store.upsert_posts([p.record for p in batch])
    stats: dict[str, dict] = {}  # post_id -> its stats row; a post seen twice keeps the last
    inserted: dict[str, bool] = {}  # post_id -> whether its first sight in the batch created it
    slots = []
    for post, (post_id, new) in zip(batch, ids, strict=True):
        inserted.setdefault(post_id, new)
        download_id = stats_download_id(writing.stats_key, post_id)
        stats[post_id] = with_stats_ids(
            post.stats, post_id, writing.run_id, writing.downloaded_at, download_id
        )
        slots.extend(slot_rows(post_id, post.media))
    upserted = store.upsert_media(unique_slots(slots))
    report.posts_processed += len(batch)
    report.media_total += len(upserted)
    report.media_new += sum(u.inserted for u in upserted)
    report.media_ids.extend(u.media_id for u in upserted)
    if on_media is not None:
        on_media([u.media_id for u in upserted])
    seen_before = store.insert_data_downloads(list(stats.values()))  # rows of earlier batches replaced
    for post_id, new in inserted.items():
        if stats[post_id]["download_id"] not in seen_before:
            report.posts_new += new
            report.posts_updated += not new
    return bool(seen_before)


def import_posts(
    store: MediaStore,
    batches: Iterable[ReadBatch],
    report: ImportReport,
    on_media: Callable[[list[str]], None] | None = None,
) -> None:
    """Write posts, one stats row per post per run, and media slots, a batch at a time as the
    posts are read; `on_media` gets each batch's media ids as soon as they are committed."""
    writing = _Batch(report.run_id, utc_now(), secrets.token_bytes(32))
    met_again = False
    for batch in batches:
        report.problems.extend(batch.problems)
        met_again |= _write_batch(store, batch.posts, writing, report, on_media)
    if met_again:  # only a post met in two batches lists its media twice
        report.media_ids = list(dict.fromkeys(report.media_ids))


def input_files(root: Path) -> tuple[list[Path], str | None]:
    """The post files a path names: a directory's `*.json`, or the file itself; with a line
    saying why there is nothing to import when that is so."""
    if root.is_dir():
        paths = sorted(root.glob("*.json"))
        return (
            paths,
            None
            if paths
            else f"{clean_text(str(root))}: no *.json files in this directory; nothing imported",
        )
    if root.is_file() or root.is_symlink():
        return [root], None  # a file of any name is read as JSON; reading it says what is wrong
    return [], f"{clean_text(str(root))}: neither a directory nor a file; nothing imported"


def import_path(
    client: Any,
    directory: str | Path,
    script_name: str = "manage_data.py import",
    on_media: Callable[[list[str]], None] | None = None,
    run_id: str | None = None,
    new_run_id: str | None = None,
    parallel: bool | None = None,
) -> ImportReport:
    """Import every `*.json` in a directory (or one file) as a recorded download run.

    Media slots are stored, not fetched: pass `report.media_ids` (or, to overlap the two,
    a downloader's feed as `on_media`) to the downloader. With `run_id`, the posts join a run
    the caller started and will complete (the installation's `create_download_run` flow);
    `new_run_id` names the run this import starts (the CLI's log correlation id). `parallel`:
    read the files in a process of their own (None: when they are large; see posts.reader).
    """
    store = as_store(client)
    root = Path(directory)
    paths, nothing = input_files(root)
    report = ImportReport(files=len(paths), problems=[nothing] if nothing else [])
    own_run = run_id is None
    report.run_id = store.start_run(clean_text(str(root)), script_name, new_run_id) if own_run else run_id
    counts = RunCounts()
    read_problems: list[str] = []
    first_row_problem = len(report.problems)
    try:
        import_posts(store, read_batches(paths, read_problems, parallel), report, on_media)
        report.problems[first_row_problem:first_row_problem] = read_problems  # the files' lines first
    except BaseException as exc:
        if own_run:
            counts.errors = [f"{exc.__class__.__name__}: {exc}"]
            store.finish_run(report.run_id, counts, "failed")
        raise
    if own_run:
        counts.posts_processed, counts.posts_new = report.posts_processed, report.posts_new
        counts.posts_updated, counts.error_count = report.posts_updated, report.skipped
        counts.errors = report.problems
        store.finish_run(report.run_id, counts, "completed")
    for problem in report.problems:
        log.warning(problem)
    return report


def import_with_downloads(
    store: MediaStore,
    settings: Settings,
    directory: str | Path,
    workers: int | None = None,
    progress: Progress | None = None,
    new_run_id: str | None = None,
) -> tuple[ImportReport, DownloadReport]:
    """Import while downloading: each committed batch's media are fetched at once."""
    feed = MediaFeed()
    with (
        Fetcher(FetchPolicy.from_settings(settings), settings.max_concurrent) as fetcher,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-downloads") as background,
    ):
        downloading = background.submit(
            download_pending,
            store,
            settings,
            media_ids=feed,
            workers=workers,
            progress=progress,
            fetcher=fetcher,
        )
        try:
            try:
                report = import_path(store, directory, on_media=feed.extend, new_run_id=new_run_id)
            finally:
                feed.close()
            return report, downloading.result()
        except KeyboardInterrupt:
            fetcher.cancel()  # Ctrl-C lands here, not in the download thread: its run gives up too
            raise


# The installation's manage_data API -------------------------------------------------------


def get_post_urn(post: dict) -> str | None:
    """A post's identity: `full_urn`, else `urn.activity_urn`/`urn.ugcPost_urn`, else a string `urn`."""
    return post_identity(post)


def create_download_run(client: Any, script_name: str = "import", platform: str = "linkedin") -> str:
    """Start a download run (status 'running'); returns its run_id."""
    return as_store(client).start_run("", script_name)


def complete_download_run(client: Any, run_id: str, stats: dict, error_message: str | None = None) -> None:
    """Finish a run with the counts of `stats` (keys processed, new, errors): 'failed' with an
    error message, else 'completed'."""
    counts = RunCounts(
        posts_processed=int(stats.get("processed", 0)),
        posts_new=int(stats.get("new", 0)),
        posts_updated=int(stats.get("duplicates", 0)),
        error_count=int(stats.get("errors", 0)),
        errors=[error_message] if error_message else [],
    )
    as_store(client).finish_run(run_id, counts, "failed" if error_message else "completed")


def store_media_slots(
    client: Any, post_id: str, post_data: dict, problems: list[str] | None = None
) -> list[str]:
    """Create or refresh the post's `post_media` slot rows; their media_ids, in order."""
    problems = [] if problems is None else problems
    rows = media_rows(post_id, post_data, f"post {post_id}", problems)
    for problem in problems:
        log.warning(problem)
    return [u.media_id for u in as_store(client).upsert_media(unique_slots(rows))]


def extract_and_store_media(client: Any, post_id: str, post_data: dict) -> dict:
    """Record the post's media slots and fetch them through the safe downloader (settings from
    the environment). Returns media_ids, media_count, media_cached, media_errors."""
    store = as_store(client)
    problems: list[str] = []
    media_ids = store_media_slots(store, post_id, post_data, problems)
    downloads = (
        download_pending(store, load_settings(), media_ids=media_ids) if media_ids else DownloadReport()
    )
    return {
        "media_ids": media_ids,
        "media_count": len(media_ids),
        "media_cached": _cached(store, media_ids),
        "media_errors": downloads.failed + len(problems),
    }


def _cached(store: MediaStore, media_ids: list[str]) -> int:
    """How many of these rows have their file in the cache (downloaded now or before)."""
    rows = store.list_media(media_ids=media_ids) if media_ids else []
    return sum(1 for r in rows if r["download_status"] == "downloaded" and not r.get("evicted_at"))


def import_directory(client: Any, directory: str | Path, run_id: str | None = None) -> tuple[dict, str]:
    """Import a directory of scraped posts and cache their media; returns (stats, run_id) with
    the stats keys processed, new, duplicates, errors, media_total, media_cached, media_errors."""
    store = as_store(client)
    report = import_path(store, directory, script_name="import", run_id=run_id)
    downloads = download_pending(store, load_settings(), media_ids=report.media_ids)
    stats = {
        "processed": report.posts_processed,
        "new": report.posts_new,
        "duplicates": report.posts_updated,
        "errors": report.skipped,
        "media_total": report.media_total,
        "media_cached": _cached(store, report.media_ids),
        "media_errors": downloads.failed,
    }
    return stats, report.run_id or ""


def import_and_download(directory: str | Path) -> dict:
    """One call for update_data.py: import a directory (or file) into the configured database
    and download its media; returns the import's and the downloads' counts."""
    from social_tui_media.store import open_store

    settings = load_settings()
    store = open_store(settings)
    try:
        report, downloads = import_with_downloads(store, settings, directory)
    finally:
        store.close()
    return {
        "run_id": report.run_id, "processed": report.posts_processed, "new": report.posts_new,
        "updated": report.posts_updated, "errors": report.skipped, "media_total": report.media_total,
        "media_cached": downloads.downloaded, "media_errors": downloads.failed, "problems": report.problems,
    }  # fmt: skip
