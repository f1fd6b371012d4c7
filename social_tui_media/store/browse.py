"""The one place a browse QUERY becomes media rows, for the media browser and the gallery export.

A QUERY's text goes to the search over media (`search_media`: SQLite FTS5, PostgreSQL tsvector;
phrases, -negation, prefix*, stemming; identical and near-duplicate copies one hit), best hit
first, one page of up to PAGE_ROWS hits. Text the search cannot take (only -negations, no
word at all) is matched as a plain substring of the analysis, the post's text or its author.
The other filters (post, author, type) are plain filters in the store (`browse_media`); without
text the rows come newest post first, a keyset page at a time. Callers only pass the cursor
back, never look inside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from social_tui_media.store.interface import PAGE_ROWS, BrowseQuery, MediaStore, browse_key
from social_tui_media.store.search import SearchQuery, SearchSyntaxError, parse_search

BROWSE_PAGE_ROWS = 200  # a screenful and more: the browser's first page comes back at once


@dataclass(frozen=True)
class MediaPage:
    rows: list[dict]
    cursor: object | None  # hand back to `find_media` for the next page; None: this was the last


def find_media(
    store: MediaStore, query: BrowseQuery, cursor: object | None = None, limit: int = BROWSE_PAGE_ROWS
) -> MediaPage:
    """One page of the media `query` finds, each row with its post's fields: the best search hits
    first when it has text, else newest post first."""
    searched = _searched(store, query) if query.text else None
    if searched is not None:
        return MediaPage(searched, None)
    limit = min(limit, PAGE_ROWS)  # a store returns at most that many: a shorter page must mean the end
    after = cursor if isinstance(cursor, tuple) else None
    rows = store.browse_media(query, after=after, limit=limit)
    return MediaPage(rows, browse_key(rows[-1]) if len(rows) == limit else None)


def _searched(store: MediaStore, query: BrowseQuery) -> list[dict] | None:
    """The rows of the search hits for `query.text`, best first; None when the text is no search
    (the caller filters by substring instead)."""
    try:
        search = SearchQuery(parse_search(query.text or ""), media_type=query.media_type, limit=PAGE_ROWS)
    except (SearchSyntaxError, ValueError):
        return None
    ranked = [hit.media_id for hit in store.search_media(search)]
    if not ranked:
        return []
    plain = BrowseQuery(None, query.post_id, query.author, query.media_type, media_ids=tuple(ranked))
    rows = {row["media_id"]: row for row in store.browse_media(plain, limit=PAGE_ROWS)}
    return [rows[media_id] for media_id in ranked if media_id in rows]


def iter_found(store: MediaStore, query: BrowseQuery, limit: int = BROWSE_PAGE_ROWS) -> Iterator[dict]:
    """Every row `query` finds, a page in memory at a time."""
    cursor: object | None = None
    while True:
        page = find_media(store, query, cursor, limit)
        yield from page.rows
        if page.cursor is None:
            return
        cursor = page.cursor
