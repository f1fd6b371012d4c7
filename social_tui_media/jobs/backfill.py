"""Create media rows for posts already stored without them, from their stored raw JSON."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from social_tui_media.posts.records import media_rows, unique_slots
from social_tui_media.store.interface import MediaSlotRow, MediaStore

log = logging.getLogger(__name__)
PAGE_SIZE = 500


@dataclass
class BackfillReport:
    """What a backfill looked at and what it added (or, in a dry run, would add)."""

    posts_scanned: int = 0
    posts_without_media: int = 0  # posts missing at least one of their slots
    media_found: int = 0  # slots added (dry run: that would be added)
    media_ids: list[str] = field(default_factory=list)
    missing: list[MediaSlotRow] = field(default_factory=list)  # dry run: what would be added
    problems: list[str] = field(default_factory=list)


def backfill_media(
    store: MediaStore,
    start_date: str | None = None,
    limit: int | None = None,
    dry_run: bool = False,
    page_size: int = PAGE_SIZE,
) -> BackfillReport:
    """Add every slot a stored post's raw JSON implies that has no row yet, whether the post
    has no rows or some; pages through every post (keyset, no row cap); `limit` caps the
    posts completed. Idempotent: a second run adds nothing."""
    report = BackfillReport()
    after: str | None = None
    while limit is None or report.posts_without_media < limit:
        page = store.posts_page(after, page_size, start_date)
        if not page:
            break
        after = page[-1]["post_id"]
        report.posts_scanned += len(page)
        stored = store.media_slot_keys([p["post_id"] for p in page])
        missing: list[MediaSlotRow] = []
        for post in page:
            if limit is not None and report.posts_without_media >= limit:
                break
            slots = _missing_slots(post, stored, report.problems)
            report.posts_without_media += bool(slots)
            missing += slots
        report.media_found += len(missing)
        if dry_run:
            report.missing += missing
        elif missing:
            report.media_ids += [u.media_id for u in store.upsert_media(missing)]
    for problem in report.problems:
        log.warning(problem)
    return report


def _missing_slots(post: dict, stored: set[tuple[str, str]], problems: list[str]) -> list[MediaSlotRow]:
    """The post's slots (from its raw JSON) that have no row yet."""
    if not isinstance(post.get("raw_json"), dict):
        return []
    slots = unique_slots(media_rows(post["post_id"], post["raw_json"], f"post {post['urn']}", problems))
    return [s for s in slots if (s.post_id, s.slot_key) not in stored]
