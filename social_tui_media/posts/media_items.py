"""Turn one scraped post (a plain dict) into its media items. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import SplitResult, unquote_plus, urlsplit

from social_tui_media.store.interface import split_slot_key

ALLOWED_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class MediaItem:
    """One media slot of a post, in the post's order."""

    media_type: str  # image | video | document
    slot_role: str  # image | carousel | video | video_thumbnail | document | article_thumbnail
    media_url: str
    slot_key: str
    position: int
    url_expires_at: datetime | None


@dataclass(frozen=True)
class ExtractedMedia:
    items: list[MediaItem]
    problems: list[str]  # one line each: what was skipped and why


def post_identity(post: Any) -> str | None:
    """The post's URN: `full_urn`, else `urn.activity_urn`/`urn.ugcPost_urn`, else a string `urn`."""
    if not isinstance(post, dict):
        return None
    full_urn = post.get("full_urn")
    if isinstance(full_urn, str) and full_urn.strip():
        return full_urn.strip()
    urn = post.get("urn")
    if isinstance(urn, dict):
        for key, kind in (("activity_urn", "activity"), ("ugcPost_urn", "ugcPost")):
            value = urn.get(key)
            if isinstance(value, (str, int)) and str(value).strip():
                value = str(value).strip()
                return value if value.startswith("urn:") else f"urn:li:{kind}:{value}"
    if isinstance(urn, str) and urn.strip():
        return urn.strip()
    return None


def url_expiry(url: str) -> datetime | None:
    """The expiry a signed CDN URL carries in its `e=` parameter, if any."""
    return query_expiry(urlsplit(url).query)


def query_expiry(query: str) -> datetime | None:
    """The expiry in a URL's query: its first non-empty `e=` value (decoded as parse_qs does),
    read as epoch seconds; None when there is none or it is not a usable number."""
    for pair in query.split("&"):
        if pair.startswith("e=") and (value := unquote_plus(pair[2:])):
            try:
                return datetime.fromtimestamp(int(value), tz=UTC)
            except (ValueError, OverflowError, OSError):
                return None
    return None


def url_problem(url: Any) -> str | None:
    """Why a media URL cannot be fetched, or None when it is an absolute http(s) URL."""
    if not isinstance(url, str) or not url.strip():
        return "media URL is missing or not text"
    return split_url_problem(urlsplit(url.strip()))


def split_url_problem(parts: SplitResult) -> str | None:
    """`url_problem` of a URL already split."""
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        return f"media URL scheme {parts.scheme or 'none'!r} is not http or https"
    if not parts.netloc:
        return "media URL has no host"
    return None


class _Collector:
    """Accumulates items in order, one per slot, and the problems met on the way."""

    def __init__(self) -> None:
        self.items: list[MediaItem] = []
        self.problems: list[str] = []
        self._seen: set[str] = set()

    def add(self, url: Any, media_type: str, role: str, where: str) -> None:
        parts = urlsplit(url.strip()) if isinstance(url, str) and url.strip() else None
        problem = split_url_problem(parts) if parts is not None else url_problem(url)
        if problem:
            self.problems.append(f"{where}: {problem}; skipped")
            return
        key = split_slot_key(parts)
        if key in self._seen:
            return
        self._seen.add(key)
        self.items.append(
            MediaItem(
                media_type=media_type,
                slot_role=role,
                media_url=url.strip(),
                slot_key=key,
                position=len(self.items),
                url_expires_at=query_expiry(parts.query),
            )
        )


def _collect_images(media: dict, role: str, where: str, out: _Collector) -> None:
    images = media.get("images")
    if images is not None and not isinstance(images, list):
        out.problems.append(f"{where}.images is not a list; skipped")
        images = []
    entries = images or []
    if media.get("url") and not entries:
        out.add(media.get("url"), "image", role, f"{where}.url")
    for index, image in enumerate(entries):
        if not isinstance(image, dict):
            out.problems.append(f"{where}.images[{index}] is not an object; skipped")
            continue
        out.add(image.get("url"), "image", role, f"{where}.images[{index}].url")
    if media.get("url") and entries:
        out.add(media.get("url"), "image", role, f"{where}.url")


def _document_url(media: dict) -> Any:
    for key in ("url", "pdf_url", "document_url", "transcribed_document_url"):
        if media.get(key):
            return media[key]
    document = media.get("document")
    return document.get("url") if isinstance(document, dict) else None


def _section(value: Any, where: str, out: _Collector) -> dict | None:
    """A post's optional object (`media`, `article`, `reshared_post`): None when absent or
    empty; anything else that is not an object is a problem line, and None."""
    if value is None or value == {}:
        return None
    if not isinstance(value, dict):
        out.problems.append(f"{where} is not an object; skipped")
        return None
    return value


def _collect_media(media: Any, where: str, out: _Collector) -> None:
    if (media := _section(media, where, out)) is None:
        return
    kind = media.get("type")
    if kind == "image":
        _collect_images(media, "image", where, out)
    elif kind == "images":
        _collect_images(media, "carousel", where, out)
    elif kind == "video":
        out.add(media.get("url"), "video", "video", f"{where}.url")
        if media.get("thumbnail"):
            out.add(media.get("thumbnail"), "image", "video_thumbnail", f"{where}.thumbnail")
    elif kind == "document":
        out.add(_document_url(media), "document", "document", f"{where}.url")
    else:
        out.problems.append(f"{where}: unknown media type {kind!r}; skipped")


def _collect_article(article: Any, where: str, out: _Collector) -> None:
    if (article := _section(article, where, out)) is None:
        return
    thumbnail = article.get("thumbnail")
    if isinstance(thumbnail, dict):
        thumbnail = thumbnail.get("url")
    if thumbnail:
        out.add(thumbnail, "image", "article_thumbnail", f"{where}.thumbnail")


def _collect_post(post: dict, prefix: str, out: _Collector, depth: int) -> None:
    _collect_media(post.get("media"), f"{prefix}media", out)
    _collect_article(post.get("article"), f"{prefix}article", out)
    if depth > 3:
        return
    reshared = _section(post.get("reshared_post"), f"{prefix}reshared_post", out)
    if reshared is not None:
        _collect_post(reshared, f"{prefix}reshared_post.", out, depth + 1)


def extract_media_items(post: dict) -> ExtractedMedia:
    """Every media slot of a post, its reshared post's included, in order, one per slot."""
    out = _Collector()
    _collect_post(post, "", out, depth=0)
    return ExtractedMedia(items=out.items, problems=out.problems)
