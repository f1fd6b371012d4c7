"""The gallery's pages as text, from plain items: the index (a grid of thumbnails with captions
and a filter box), one page per item, the style sheet and the filter script, and the Markdown
report. Pure: no files, no database. Everything from outside is escaped; links go only to
files beside the pages, or to the post on http(s).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

CAPTION_CHARS = 140
REPORT_POST_CHARS = 600


@dataclass(frozen=True)
class GalleryItem:
    """One media item as the gallery shows it. Paths are relative to the gallery's folder."""

    media_id: str
    page: str  # items/{name}.html
    post_id: str
    media_type: str
    mime_type: str | None
    status: str  # downloaded, pending, failed, evicted
    author_name: str
    author_username: str
    posted_at: str  # YYYY-MM-DD, or "" when the scrape had no date
    post_url: str | None  # http(s) only
    post_text: str
    description: str
    tags: tuple[str, ...]
    text_in_image: str
    extracted_text: str  # the local text extraction's, when the row has it ("" until then)
    thumb: str | None  # thumbs/{md5}.webp
    file: str | None  # media/{md5}.{ext}
    width: int | None = None
    height: int | None = None


def posted_day(millis: int | None) -> str:
    if not millis:
        return ""
    try:
        return datetime.fromtimestamp(millis / 1000, UTC).date().isoformat()
    except (OverflowError, OSError, ValueError):
        return ""


def web_url(url: str | None) -> str | None:
    """`url` when it is an http(s) URL with a host, else None (never a javascript: or file: link)."""
    if not url or not isinstance(url, str):
        return None
    parts = urlsplit(url.strip())
    return url.strip() if parts.scheme.lower() in ("http", "https") and parts.hostname else None


def first_line(text: str, limit: int = CAPTION_CHARS) -> str:
    line = next((part.strip() for part in (text or "").splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def _e(text: object) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def _href(path: str) -> str:
    """A relative path as an attribute value (each segment percent-encoded)."""
    return _e(quote(path, safe="/"))


def author_label(item: GalleryItem) -> str:
    name, user = item.author_name.strip(), item.author_username.strip()
    if name and user:
        return f"{name} (@{user})"
    return name or (f"@{user}" if user else "unknown author")


def search_text(item: GalleryItem) -> str:
    """What the filter box matches, lower case: author, date, type, analysis, texts."""
    parts = [
        item.author_name, item.author_username, item.posted_at, item.media_type, item.description,
        " ".join(item.tags), item.text_in_image, item.extracted_text, item.post_text,
    ]  # fmt: skip
    return " ".join(p for p in parts if p).lower()


STYLE = """\
:root { color-scheme: light dark; --accent: #0a66c2; --muted: #666; --card: #f4f4f4; }
@media (prefers-color-scheme: dark) { :root { --muted: #aaa; --card: #1e1e1e; } }
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 1rem; }
header { display: flex; gap: 1rem; align-items: baseline; flex-wrap: wrap; }
h1 { font-size: 1.4rem; margin: 0.3rem 0; }
#filter { font: inherit; padding: 0.4rem 0.6rem; min-width: 18rem; }
#shown { color: var(--muted); }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); gap: 1rem;
        margin-top: 1rem; }
.item { background: var(--card); border-radius: 6px; margin: 0; overflow: hidden; }
.item[hidden] { display: none; }
.item a { color: inherit; text-decoration: none; display: block; }
.item img, .nothumb { width: 100%; aspect-ratio: 4 / 3; object-fit: cover; display: block; background: #8882; }
.nothumb { display: flex; align-items: center; justify-content: center; color: var(--muted); }
figcaption { padding: 0.5rem 0.6rem 0.7rem; font-size: 0.9rem; }
.who { font-weight: 600; }
.meta, .tags { color: var(--muted); font-size: 0.85rem; }
.full img, .full video { max-width: 100%; max-height: 80vh; display: block; }
pre { white-space: pre-wrap; background: var(--card); padding: 0.6rem; border-radius: 4px; }
nav a { margin-right: 1rem; color: var(--accent); }
dt { font-weight: 600; margin-top: 0.8rem; }
dd { margin-left: 0; }
"""

FILTER_SCRIPT = """\
// The filter box: shows the items whose text holds every word typed (any case). No network.
(function () {
  var box = document.getElementById("filter");
  var items = Array.prototype.slice.call(document.querySelectorAll(".item"));
  var shown = document.getElementById("shown");
  function apply() {
    var words = box.value.toLowerCase().split(/\\s+/).filter(Boolean);
    var count = 0;
    items.forEach(function (item) {
      var text = item.getAttribute("data-search");
      var match = words.every(function (w) { return text.indexOf(w) !== -1; });
      item.hidden = !match;
      if (match) count += 1;
    });
    shown.textContent = count + " of " + items.length + " shown";
  }
  box.addEventListener("input", apply);
  apply();
})();
"""


def _page(title: str, body: str, root: str = "") -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<title>{_e(title)}</title>\n<link rel="stylesheet" href="{root}style.css">\n</head>\n'
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def _thumb_or_placeholder(item: GalleryItem, root: str, alt: str) -> str:
    if item.thumb:
        return f'<img src="{root}{_href(item.thumb)}" alt="{_e(alt)}">'
    return f'<div class="nothumb">{_e(item.media_type)} · {_e(item.status)}</div>'


def index_html(items: list[GalleryItem], title: str, subtitle: str) -> str:
    """The grid: each item's thumbnail and caption, linking to its page; the filter box on top."""
    figures = []
    for item in items:
        caption = first_line(item.description) or first_line(item.post_text) or item.media_type
        figures.append(
            f'<figure class="item" data-search="{_e(search_text(item))}" data-media-id="{_e(item.media_id)}">'
            f'<a href="{_href(item.page)}">{_thumb_or_placeholder(item, "", caption)}'
            f'<figcaption><div class="who">{_e(author_label(item))}</div>'
            f'<div class="meta">{_e(item.posted_at)} · {_e(item.media_type)}</div>'
            f"<div>{_e(caption)}</div></figcaption></a></figure>"
        )
    body = (
        f"<header><h1>{_e(title)}</h1><span>{_e(subtitle)}</span>"
        '<input id="filter" type="search" placeholder="filter: words in the description, text, author…" '
        'aria-label="filter" autofocus><span id="shown"></span></header>\n'
        f'<main class="grid">\n{chr(10).join(figures)}\n</main>\n<script src="filter.js"></script>'
    )
    return _page(title, body)


def _full_media(item: GalleryItem) -> str:
    if item.file is None:
        note = (
            "evicted from the cache (archived)"
            if item.status == "evicted"
            else f"not downloaded ({item.status})"
        )
        return f'{_thumb_or_placeholder(item, "../", item.description)}<p class="meta">The file is {_e(note)}.</p>'
    src = "../" + _href(item.file)
    if item.media_type == "video" or (item.mime_type or "").startswith("video/"):
        poster = f' poster="../{_href(item.thumb)}"' if item.thumb else ""
        return f'<video controls preload="metadata" src="{src}"{poster}></video>'
    if (item.mime_type or "") == "application/pdf" or item.media_type == "document":
        preview = _thumb_or_placeholder(item, "../", "first page")
        return f'<a href="{src}">{preview}</a><p><a href="{src}">Open the PDF</a></p>'
    return f'<a href="{src}"><img src="{src}" alt="{_e(item.description)}"></a>'


def item_html(item: GalleryItem, previous: GalleryItem | None, following: GalleryItem | None) -> str:
    """One item's page: the full media, its analysis and texts, and the post it belongs to."""
    nav = ['<a href="../index.html">← all media</a>']
    if previous is not None:
        nav.append(f'<a href="../{_href(previous.page)}" rel="prev">previous</a>')
    if following is not None:
        nav.append(f'<a href="../{_href(following.page)}" rel="next">next</a>')
    facts = [("Description", item.description), ("Tags", ", ".join(item.tags))]
    details = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts if v)
    for label, text in (("Text in the image", item.text_in_image), ("Extracted text", item.extracted_text)):
        if text:
            details += f"<dt>{_e(label)}</dt><dd><pre>{_e(text)}</pre></dd>"
    post_link = f'<p><a href="{_e(item.post_url)}">The post on LinkedIn</a></p>' if item.post_url else ""
    size = f" · {item.width}×{item.height}" if item.width and item.height else ""
    body = (
        f"<nav>{''.join(nav)}</nav>\n"
        f"<h1>{_e(author_label(item))}</h1>\n"
        f'<p class="meta">{_e(item.posted_at)} · {_e(item.media_type)}{_e(size)} · {_e(item.media_id)}</p>\n'
        f'<div class="full">{_full_media(item)}</div>\n<dl>{details}</dl>\n'
        f"<h2>The post</h2>\n<pre>{_e(item.post_text)}</pre>\n{post_link}"
    )
    return _page(f"{author_label(item)} · {item.media_id}", body, root="../")


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")
_MD_LINE_START = re.compile(r"^(\s*)([#+=-]|\d+\.)", re.MULTILINE)


def md_escape(text: str) -> str:
    """Text that Markdown shows as it is: no emphasis, links, HTML, lists or headings from the data."""
    escaped = _MD_SPECIAL.sub(r"\\\1", text.replace("&", "&amp;"))
    return _MD_LINE_START.sub(r"\1\\\2", escaped)


def markdown_report(items: Iterable[GalleryItem], title: str, subtitle: str) -> str:
    """The report people write by hand after a conference: post by post, who posted what and
    when, the post's words, and each picture with what it shows."""
    lines = [f"# {md_escape(title)}", "", f"_{md_escape(subtitle)}_", ""]
    current_post = None
    for item in items:
        if item.post_id != current_post:
            current_post = item.post_id
            heading = author_label(item) + (f" · {item.posted_at}" if item.posted_at else "")
            lines += ["", f"## {md_escape(heading)}", ""]
            if item.post_url:
                lines += [f"[The post]({quote(item.post_url, safe=':/?&=%#+@,;~')})", ""]
            text = item.post_text.strip()
            if text:
                short = (
                    text if len(text) <= REPORT_POST_CHARS else text[: REPORT_POST_CHARS - 1].rstrip() + "…"
                )
                lines += [f"> {md_escape(line)}" if line.strip() else ">" for line in short.splitlines()]
                lines.append("")
        alt = md_escape(first_line(item.description, 100) or item.media_type)
        picture = (
            f"![{alt}]({quote(item.thumb)})"
            if item.thumb
            else f"*({md_escape(item.media_type)}, {item.status})*"
        )
        lines.append(f"[{picture}]({quote(item.file)})" if item.file else picture)
        lines.append("")
        if item.description:
            lines += [md_escape(item.description), ""]
        if item.tags:
            lines += ["Tags: " + ", ".join(md_escape(t) for t in item.tags), ""]
        if item.text_in_image:
            lines += [
                "Text in the image:",
                "",
                *[f"    {line}" for line in item.text_in_image.splitlines()],
                "",
            ]
        if item.extracted_text:
            lines += [
                "Extracted text:",
                "",
                *[f"    {line}" for line in item.extracted_text.splitlines()],
                "",
            ]
    return "\n".join(lines).rstrip() + "\n"
