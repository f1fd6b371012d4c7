"""Import scraped post files into the store: posts, their stats history, and media slots."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from db_utils import PREFIX_DOWNLOAD, PREFIX_MEDIA, generate_aws_id
from media_store import MediaSlotRow, MediaStore, PostRecord, RunCounts, to_iso, utc_now
from post_media_items import extract_media_items, post_identity

log = logging.getLogger(__name__)
BATCH_POSTS = 1000
FIRST_BATCH_POSTS = 100  # small, so downloads can start while later batches are written


@dataclass(frozen=True)
class LoadedPost:
    source_file: str
    index: int
    data: dict
    urn: str


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


def load_post_file(path: Path) -> tuple[list[Any], str | None]:
    """The post objects in one file (a list, one post, or {"matching_elements": [...]})."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return [], f"{path.name}: cannot read file ({exc.__class__.__name__}: {exc}); skipped"
    if not text.strip():
        return [], f"{path.name}: file is empty; skipped"
    try:
        data = json.loads(text)
    except ValueError as exc:
        return [], f"{path.name}: not valid JSON ({exc}); skipped"
    if isinstance(data, dict) and isinstance(data.get("matching_elements"), list):
        return data["matching_elements"], None
    if isinstance(data, dict):
        return [data], None
    if isinstance(data, list):
        return data, None
    return [], f"{path.name}: expected a list of posts or an object, found {type(data).__name__}; skipped"


def _describe(source: str, index: int, urn: str | None) -> str:
    return f"{source} post {urn}" if urn else f"{source} post #{index + 1}"


def load_posts(paths: Iterable[Path], problems: list[str]) -> list[LoadedPost]:
    """Every post with an identity from the files; the rest become one-line problems."""
    posts: list[LoadedPost] = []
    for path in paths:
        items, problem = load_post_file(path)
        if problem:
            problems.append(problem)
        for index, item in enumerate(items):
            urn = post_identity(item)
            if urn is None:
                kind = "not an object" if not isinstance(item, dict) else "has no urn or full_urn"
                problems.append(f"{_describe(path.name, index, None)}: {kind}; skipped")
                continue
            posts.append(LoadedPost(path.name, index, item, urn))
    return posts


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _posted_at(post: dict, where: str, problems: list[str]) -> tuple[int | None, str | None]:
    posted = post.get("posted_at")
    if not isinstance(posted, dict) or posted.get("timestamp") is None:
        return None, None
    stamp = posted.get("timestamp")
    if isinstance(stamp, bool) or not isinstance(stamp, (int, float)):
        problems.append(f"{where}: posted_at.timestamp {stamp!r} is not a number; left empty")
        return None, None
    try:
        moment = datetime.fromtimestamp(stamp / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        problems.append(f"{where}: posted_at.timestamp {stamp!r} is out of range; left empty")
        return None, None
    return int(stamp), to_iso(moment)


def post_record(post: LoadedPost, problems: list[str]) -> PostRecord:
    """The `posts` row of a scraped post."""
    data = post.data
    where = _describe(post.source_file, post.index, post.urn)
    author = data.get("author") if isinstance(data.get("author"), dict) else {}
    if data.get("author") is not None and not isinstance(data.get("author"), dict):
        problems.append(f"{where}: author is not an object; left empty")
    name = " ".join(p for p in (_text(author.get("first_name")), _text(author.get("last_name"))) if p)
    timestamp, posted_at = _posted_at(data, where, problems)
    return PostRecord(
        urn=post.urn,
        full_urn=_text(data.get("full_urn")),
        posted_at_timestamp=timestamp,
        posted_at=posted_at,
        author_username=_text(author.get("username")),
        author_name=name or None,
        text_content=_text(data.get("text")),
        post_url=_text(data.get("url")),
        post_type=_text(data.get("post_type")),
        raw_json=data,
    )


def _stats(data: dict) -> dict | None:
    stats = data.get("stats")
    return stats if isinstance(stats, dict) else None


def _reactions(stats: dict | None) -> int | None:
    value = (stats or {}).get("total_reactions")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def media_rows(post_id: str, data: dict, where: str, problems: list[str]) -> list[MediaSlotRow]:
    """The `post_media` slot rows of one post (new ids; existing slots keep theirs on upsert)."""
    extracted = extract_media_items(data)
    problems.extend(f"{where}: {p}" for p in extracted.problems)
    return [
        MediaSlotRow(
            media_id=generate_aws_id(PREFIX_MEDIA),
            post_id=post_id,
            media_type=item.media_type,
            media_url=item.media_url,
            slot_key=item.slot_key,
            slot_role=item.slot_role,
            position=item.position,
            url_expires_at=to_iso(item.url_expires_at) if item.url_expires_at else None,
        )
        for item in extracted.items
    ]


def unique_slots(rows: list[MediaSlotRow]) -> list[MediaSlotRow]:
    """One row per (post, slot), keeping the URL that expires last: the newest signature."""
    best: dict[tuple[str, str], MediaSlotRow] = {}
    for row in rows:
        key = (row.post_id, row.slot_key)
        current = best.get(key)
        if current is None or (row.url_expires_at or "") >= (current.url_expires_at or ""):
            best[key] = row if current is None else replace(row, media_id=current.media_id)
    return list(best.values())


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
            stats = _stats(post.data)
            downloads[post_id] = {
                "download_id": generate_aws_id(PREFIX_DOWNLOAD), "post_id": post_id,
                "run_id": report.run_id, "downloaded_at": now,
                "total_reactions": _reactions(stats), "stats_json": stats,
                "raw_json": post.data, "source_file": post.source_file,
            }  # fmt: skip
            where = _describe(post.source_file, post.index, post.urn)
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


def as_store(client: Any) -> MediaStore:
    """Accept a store, or a supabase-py `Client` as existing scripts pass one."""
    if hasattr(client, "upsert_media"):
        return client
    if hasattr(client, "table") and hasattr(client, "rpc"):
        from media_store_rest import RestStore

        return RestStore.from_client(client)
    raise TypeError(f"expected a media store or a supabase Client, got {type(client).__name__}")
