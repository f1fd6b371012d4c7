"""Create media rows for posts already stored without them, from their stored raw JSON."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from social_tui_media.jobs.import_posts import media_rows, unique_slots
from social_tui_media.store.interface import MediaStore

log = logging.getLogger(__name__)
PAGE_SIZE = 500


@dataclass
class BackfillReport:
    """What a backfill looked at and what it added (or, in a dry run, would add)."""

    posts_scanned: int = 0
    posts_without_media: int = 0
    media_found: int = 0
    media_ids: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def backfill_media(
    store: MediaStore,
    start_date: str | None = None,
    limit: int | None = None,
    dry_run: bool = False,
    page_size: int = PAGE_SIZE,
) -> BackfillReport:
    """Page through every post (keyset pagination, no row cap); `limit` caps posts backfilled."""
    report = BackfillReport()
    after: str | None = None
    while True:
        page = store.posts_page(after, page_size, start_date)
        if not page:
            break
        after = page[-1]["post_id"]
        report.posts_scanned += len(page)
        have = store.post_ids_with_media([p["post_id"] for p in page])
        slots = []
        for post in page:
            if post["post_id"] in have or not isinstance(post.get("raw_json"), dict):
                continue
            if limit is not None and report.posts_without_media >= limit:
                break
            rows = media_rows(post["post_id"], post["raw_json"], f"post {post['urn']}", report.problems)
            if rows:
                report.posts_without_media += 1
                slots += rows
        report.media_found += len(slots)
        if slots and not dry_run:
            report.media_ids += [u.media_id for u in store.upsert_media(unique_slots(slots))]
        if limit is not None and report.posts_without_media >= limit:
            break
    for problem in report.problems:
        log.warning(problem)
    return report
