"""Import scraped post files into the store: posts, their stats history, and media slots."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from social_tui_media.posts.files import LoadedPost, describe, load_posts
from social_tui_media.posts.records import media_rows, post_record, stats_row, unique_slots
from social_tui_media.store import as_store
from social_tui_media.store.interface import MediaStore, RunCounts
from social_tui_media.store.rows import utc_now

log = logging.getLogger(__name__)
BATCH_POSTS = 1000
FIRST_BATCH_POSTS = 100  # small, so downloads can start while later batches are written


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


def _batches(posts: list[LoadedPost]) -> Iterable[list[LoadedPost]]:
    yield posts[:FIRST_BATCH_POSTS]
    for start in range(FIRST_BATCH_POSTS, len(posts), BATCH_POSTS):
        yield posts[start : start + BATCH_POSTS]


def import_posts(
    store: MediaStore,
    posts: list[LoadedPost],
    report: ImportReport,
    on_media: Callable[[list[str]], None] | None = None,
) -> None:
    """Write posts, one stats row per post per run, and media slots, a batch at a time;
    `on_media` gets each batch's media ids as soon as they are committed."""
    downloads: dict[str, dict] = {}  # post_id -> its stats row; a post seen twice keeps the last
    now = utc_now()
    for batch in _batches(posts):
        if not batch:
            continue
        ids = store.upsert_posts([post_record(p, report.problems) for p in batch])
        slots = []
        for post, (post_id, inserted) in zip(batch, ids, strict=True):
            if post_id not in downloads:
                report.posts_new += inserted
                report.posts_updated += not inserted
            downloads[post_id] = stats_row(post, post_id, report.run_id, now)
            where = describe(post.source_file, post.index, post.urn)
            slots.extend(media_rows(post_id, post.data, where, report.problems))
        upserted = store.upsert_media(unique_slots(slots))
        report.posts_processed += len(batch)
        report.media_total += len(upserted)
        report.media_new += sum(u.inserted for u in upserted)
        report.media_ids.extend(u.media_id for u in upserted)
        if on_media is not None:
            on_media([u.media_id for u in upserted])
    rows = list(downloads.values())
    for start in range(0, len(rows), BATCH_POSTS):
        store.insert_data_downloads(rows[start : start + BATCH_POSTS])
    report.media_ids = list(dict.fromkeys(report.media_ids))


def import_directory(
    client: Any,
    directory: str | Path,
    script_name: str = "manage_data.py import",
    on_media: Callable[[list[str]], None] | None = None,
) -> ImportReport:
    """Import every `*.json` in a directory (or one file) as a recorded download run.

    Media slots are stored, not fetched: pass `report.media_ids` (or, to overlap the two,
    a downloader's feed as `on_media`) to the downloader.
    """
    store = as_store(client)
    root = Path(directory)
    paths = sorted(root.glob("*.json")) if root.is_dir() else [root]
    report = ImportReport(files=len(paths))
    report.run_id = store.start_run(str(root), script_name)
    counts = RunCounts()
    try:
        posts = load_posts(paths, report.problems)
        import_posts(store, posts, report, on_media)
    except BaseException as exc:
        counts.errors = [f"{exc.__class__.__name__}: {exc}"]
        store.finish_run(report.run_id, counts, "failed")
        raise
    counts.posts_processed, counts.posts_new = report.posts_processed, report.posts_new
    counts.posts_updated, counts.error_count = report.posts_updated, report.skipped
    counts.errors = report.problems
    store.finish_run(report.run_id, counts, "completed")
    for problem in report.problems:
        log.warning(problem)
    return report


def extract_and_store_media(client: Any, post_id: str, post_data: dict) -> list[str]:
    """Create or refresh the post's `post_media` slot rows; returns their media_ids in order.

    `client` is a store or a supabase `Client`. Problems are logged, not raised.
    """
    store = as_store(client)
    problems: list[str] = []
    rows = media_rows(post_id, post_data, f"post {post_id}", problems)
    for problem in problems:
        log.warning(problem)
    return [u.media_id for u in store.upsert_media(rows)]


