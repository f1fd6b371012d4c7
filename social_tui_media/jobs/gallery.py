"""Export media as a self-contained static site (or a Markdown report): the pages, a style sheet,
a filter script and copies of the thumbnails and files, all inside one folder, so `index.html`
opens from disk in a browser with no server and no network."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from social_tui_media.jobs import Progress
from social_tui_media.jobs.gallery_pages import (
    FILTER_SCRIPT,
    STYLE,
    GalleryItem,
    index_html,
    item_html,
    markdown_report,
    posted_day,
    web_url,
)
from social_tui_media.media.cache import MediaCache
from social_tui_media.store.browse import iter_found
from social_tui_media.store.interface import PAGE_ROWS, BrowseQuery, MediaStore, make_audit
from social_tui_media.store.usage import UsageRecorder

log = logging.getLogger(__name__)
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
EXTENSION = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


class GalleryError(Exception):
    """The gallery cannot be written there; the message says why."""


@dataclass
class GalleryReport:
    out_dir: Path
    items: int = 0
    posts: int = 0
    thumbnails: int = 0  # copied into the gallery
    files: int = 0  # media files copied into the gallery
    bytes_copied: int = 0
    not_cached: int = 0  # items shown without their file (pending, failed, evicted)
    no_thumbnail: list[str] = field(default_factory=list)  # files that give none
    index: Path | None = None  # index.html, or report.md with markdown


def page_name(media_id: str) -> str:
    """A file name for an item's page: the id when it is a plain name, else its hash."""
    if SAFE_NAME.match(media_id) and ".." not in media_id:
        return media_id
    return "m-" + hashlib.sha256(media_id.encode("utf-8", "surrogatepass")).hexdigest()[:20]


def _status(row: dict) -> str:
    return "evicted" if row.get("evicted_at") else (row.get("download_status") or "pending")


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _copy(source: Path, target: Path) -> int:
    """Copy once (same name, same size: already there); world-readable like any exported page."""
    if target.is_file() and target.stat().st_size == source.stat().st_size:
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".part-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, 1024 * 1024)
        os.chmod(temp, 0o644)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target.stat().st_size


def _item(row: dict, cache: MediaCache, out_dir: Path, report: GalleryReport) -> GalleryItem:
    """One row as a gallery item, its thumbnail and file copied beside the pages."""
    analysis = row.get("ai_analysis") or {}
    thumb = file = None
    md5_sum = row.get("md5_sum") or ""
    source = cache.file_of(row)
    thumbnail = cache.thumbnail_of(row)  # made now when missing; kept from an evicted file's past
    if thumbnail is not None:
        thumb = f"thumbs/{thumbnail.name}"
        report.bytes_copied += _copy(thumbnail, out_dir / thumb)
        report.thumbnails += 1
    elif source is not None:
        report.no_thumbnail.append(row["media_id"])
    if source is not None:
        suffix = source.suffix.lower() if EXTENSION.match(source.suffix) else ""
        file = f"media/{md5_sum or page_name(row['media_id'])}{suffix}"
        report.bytes_copied += _copy(source, out_dir / file)
        report.files += 1
    else:
        report.not_cached += 1
    tags = analysis.get("tags") if isinstance(analysis.get("tags"), list) else []
    return GalleryItem(
        media_id=row["media_id"],
        page=f"items/{page_name(row['media_id'])}.html",
        post_id=row["post_id"],
        media_type=_text(row.get("media_type")) or "media",
        mime_type=row.get("mime_type"),
        status=_status(row),
        author_name=_text(row.get("post_author_name")),
        author_username=_text(row.get("post_author_username")),
        posted_at=posted_day(row.get("post_posted_at")),
        post_url=web_url(row.get("post_url")),
        post_text=_text(row.get("post_text")),
        description=_text(analysis.get("description")),
        tags=tuple(str(t) for t in tags),
        text_in_image=_text(analysis.get("text_in_image")),
        extracted_text=_text(row.get("extracted_text")),  # the text-extraction stage's column, once it exists
        thumb=thumb,
        file=file,
        width=row.get("width"),
        height=row.get("height"),
    )


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def describe_query(query: BrowseQuery) -> str:
    parts = [
        f"“{query.text}”" if query.text else "",
        f"post {query.post_id}" if query.post_id else "",
        f"author {query.author}" if query.author else "",
        f"type {query.media_type}" if query.media_type else "",
    ]
    chosen = ", ".join(p for p in parts if p)
    return f"filter: {chosen}" if chosen else "all media"


def _audit_export(store: MediaStore, report: GalleryReport, query: BrowseQuery) -> None:
    """One audit entry per export: where the copies went, how many, and what chose them."""
    details = {"items": report.items, "files": report.files, "thumbnails": report.thumbnails,
               "query": describe_query(query)}  # fmt: skip
    store.append_audit([make_audit("export", "export-gallery", target=str(report.index), details=details)])


def export_gallery(
    store: MediaStore,
    cache: MediaCache,
    out_dir: Path,
    query: BrowseQuery,
    markdown: bool = False,
    title: str = "Media gallery",
    progress: Progress | None = None,
) -> GalleryReport:
    """Write the gallery of what `query` finds into `out_dir`: `index.html` (grid, filter box),
    `items/*.html`, `style.css`, `filter.js`, `thumbs/`, `media/`; with `markdown`, `report.md`
    and the same copies instead of the pages."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise GalleryError(f"{out_dir} is a file: give a folder for the gallery")
    if out_dir.resolve().is_relative_to(cache.root.resolve()):
        raise GalleryError(f"{out_dir} is inside the media cache {cache.root}: give a folder outside it")
    out_dir.mkdir(parents=True, exist_ok=True)
    report = GalleryReport(out_dir)
    items: list[GalleryItem] = []
    used = UsageRecorder(store)  # each copied file was read: eviction keeps it longer
    try:
        for row in iter_found(store, query, PAGE_ROWS):
            items.append(_item(row, cache, out_dir, report))
            if items[-1].file is not None:
                used.touch(row["media_id"])
            if progress is not None:
                progress.advance(1, 0)
    finally:
        used.close()
    report.items = len(items)
    report.posts = len({item.post_id for item in items})
    subtitle = f"{report.items} media from {report.posts} posts · {describe_query(query)}"
    if markdown:
        report.index = out_dir / "report.md"
        _write(report.index, markdown_report(items, title, subtitle))
        _audit_export(store, report, query)
        return report
    _write(out_dir / "style.css", STYLE)
    _write(out_dir / "filter.js", FILTER_SCRIPT)
    for index, item in enumerate(items):
        previous = items[index - 1] if index > 0 else None
        following = items[index + 1] if index + 1 < len(items) else None
        _write(out_dir / item.page, item_html(item, previous, following))
    report.index = out_dir / "index.html"
    _write(report.index, index_html(items, title, subtitle))
    _audit_export(store, report, query)
    log.info("gallery of %d media written to %s", report.items, out_dir)
    return report
