"""A scraped post as the rows the store takes: its `posts` row, its stats, its media slots. Pure."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from social_tui_media.ids import PREFIX_DOWNLOAD, PREFIX_MEDIA, generate_aws_id
from social_tui_media.posts.files import LoadedPost, describe
from social_tui_media.posts.media_items import MediaItem, extract_media_items
from social_tui_media.store.interface import MediaSlotRow, PostRecord
from social_tui_media.store.rows import to_iso

INTEGER_MIN, INTEGER_MAX = -(2**31), 2**31 - 1  # PostgreSQL's INTEGER; SQLite stores the same range
# Stats counts read as INTEGER: total_reactions is a column; v_post_engagement_history casts all five.
INTEGER_STATS = ("total_reactions", "comments", "reposts", "shares", "views")
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _posted_at_ms(post: dict, where: str, problems: list[str]) -> int:
    """posted_at.timestamp in epoch milliseconds; 0 when missing or unusable (the column is NOT NULL)."""
    posted = post.get("posted_at")
    if not isinstance(posted, dict) or posted.get("timestamp") is None:
        return 0
    stamp = posted.get("timestamp")
    if isinstance(stamp, bool) or not isinstance(stamp, (int, float)):
        problems.append(f"{where}: posted_at.timestamp {stamp!r} is not a number; stored as 0")
        return 0
    try:
        datetime.fromtimestamp(stamp / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        problems.append(f"{where}: posted_at.timestamp {stamp!r} is out of range; stored as 0")
        return 0
    return int(stamp)


def post_record(post: LoadedPost, problems: list[str], raw_json: str) -> PostRecord:
    """The `posts` row of a scraped post (`raw_json`: the post encoded, `encoded_post`)."""
    data = post.data
    where = describe(post.source_file, post.index, post.urn)
    author = data.get("author") if isinstance(data.get("author"), dict) else {}
    if data.get("author") is not None and not isinstance(data.get("author"), dict):
        problems.append(f"{where}: author is not an object; left empty")
    name = " ".join(p for p in (_text(author.get("first_name")), _text(author.get("last_name"))) if p)
    return PostRecord(
        urn=post.urn,
        full_urn=_text(data.get("full_urn")),
        posted_at_timestamp=_posted_at_ms(data, where, problems),
        author_username=_text(author.get("username")) or "",  # as the original scripts store it
        author_name=name or None,
        text_content=_text(data.get("text")) or "",
        url=_text(data.get("url")),
        post_type=_text(data.get("post_type")),
        raw_json=raw_json,
    )


def encoded_post(data: dict) -> str:
    """A post as the JSON text both `posts.raw_json` and `data_downloads.raw_json` hold."""
    return json.dumps(data, ensure_ascii=False)


def _stats(data: dict) -> dict | None:
    stats = data.get("stats")
    return stats if isinstance(stats, dict) else None


def _stored_stats(stats: dict | None, where: str, problems: list[str]) -> dict | None:
    """The stats as `data_downloads` keeps them: a count read as INTEGER (the total_reactions
    column, the TUI's engagement view) that does not fit becomes null, read as 0."""
    if stats is None:
        return None
    stored = dict(stats)
    for key in INTEGER_STATS:
        value = stored.get(key)
        if (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and not INTEGER_MIN <= value <= INTEGER_MAX
        ):
            default = "0" if key == "total_reactions" else "null"
            problems.append(
                f"{where}: stats.{key} {value!r} does not fit a 32-bit integer; stored as {default}"
            )
            stored[key] = None
    return stored


def _reactions(stats: dict | None) -> int | None:
    value = (stats or {}).get("total_reactions")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def stats_download_id(import_key: bytes, post_id: str) -> str:
    """The `data_downloads` id of a post's stats row in one import: the same post gets the same
    id, so a post seen again replaces its row; unguessable without the import's secret key."""
    digest = hashlib.blake2b(post_id.encode(), digest_size=16, key=import_key)
    number = int.from_bytes(digest.digest(), "big")
    digits = []
    for _ in range(17):  # the form generate_aws_id gives: 17 base-36 characters
        number, digit = divmod(number, 36)
        digits.append(_BASE36[digit])
    return f"{PREFIX_DOWNLOAD}-{''.join(digits)}"


def stats_fields(post: LoadedPost, problems: list[str], raw_json: str) -> dict:
    """The part of a post's `data_downloads` row that needs no ids: its engagement stats as
    this run saw them, and the post (`raw_json`: encoded, `encoded_post`)."""
    where = describe(post.source_file, post.index, post.urn)
    stats = _stored_stats(_stats(post.data), where, problems)
    return {
        "total_reactions": _reactions(stats) or 0,
        "stats_json": None if stats is None else json.dumps(stats),
        "raw_json": raw_json,
        "source_file_path": post.source_path or post.source_file,
    }


def with_stats_ids(
    fields: dict, post_id: str, run_id: str | None, downloaded_at: str, download_id: str
) -> dict:
    """A `data_downloads` row of `stats_fields` once the post has its id."""
    return {
        "download_id": download_id, "post_id": post_id, "run_id": run_id, "downloaded_at": downloaded_at, **fields,
    }  # fmt: skip


@dataclass(frozen=True)
class PreparedPost:
    """A scraped post as the rows the store takes, but for the ids its stored row gives."""

    record: PostRecord
    media: list[MediaItem]
    stats: dict  # its data_downloads row without ids (stats_fields)


def prepare_post(post: LoadedPost, problems: list[str]) -> PreparedPost:
    """One post's rows, the post encoded once for both tables; what was wrong with it is a
    line in `problems`."""
    raw_json = encoded_post(post.data)
    where = describe(post.source_file, post.index, post.urn)
    return PreparedPost(
        post_record(post, problems, raw_json),
        media_items(post.data, where, problems),
        stats_fields(post, problems, raw_json),
    )


def media_rows(post_id: str, data: dict, where: str, problems: list[str]) -> list[MediaSlotRow]:
    """The `post_media` slot rows of one post (new ids; existing slots keep theirs on upsert)."""
    return slot_rows(post_id, media_items(data, where, problems))


def media_items(data: dict, where: str, problems: list[str]) -> list[MediaItem]:
    """The media slots of one post, in order; what was skipped is a line in `problems`."""
    extracted = extract_media_items(data)
    problems.extend(f"{where}: {p}" for p in extracted.problems)
    return extracted.items


def slot_rows(post_id: str, items: list[MediaItem]) -> list[MediaSlotRow]:
    """The `post_media` rows of a post's media slots, each with a new id."""
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
        for item in items
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
