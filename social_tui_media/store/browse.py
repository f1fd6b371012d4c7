"""The one place a browse QUERY becomes media rows, for the media browser and the gallery export.

Today the QUERY is plain filters done in the store (`browse_media`: a substring of the analysis,
the post's text or its author, plus post, author and type). When the search over media lands
(`search`: SQLite FTS5, PostgreSQL tsvector), `find_media` is the function to switch to it: its
callers only pass the cursor back, never look inside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from social_tui_media.store.interface import PAGE_ROWS, BrowseQuery, MediaStore, browse_key

BROWSE_PAGE_ROWS = 200  # a screenful and more: the browser's first page comes back at once


@dataclass(frozen=True)
class MediaPage:
    rows: list[dict]
    cursor: object | None  # hand back to `find_media` for the next page; None: this was the last


def find_media(
    store: MediaStore, query: BrowseQuery, cursor: object | None = None, limit: int = BROWSE_PAGE_ROWS
) -> MediaPage:
    """One page of the media `query` finds, each row with its post's fields, newest post first."""
    limit = min(limit, PAGE_ROWS)  # a store returns at most that many: a shorter page must mean the end
    after = cursor if isinstance(cursor, tuple) else None
    rows = store.browse_media(query, after=after, limit=limit)
    return MediaPage(rows, browse_key(rows[-1]) if len(rows) == limit else None)


def iter_found(store: MediaStore, query: BrowseQuery, limit: int = BROWSE_PAGE_ROWS) -> Iterator[dict]:
    """Every row `query` finds, a page in memory at a time."""
    cursor: object | None = None
    while True:
        page = find_media(store, query, cursor, limit)
        yield from page.rows
        if page.cursor is None:
            return
        cursor = page.cursor
