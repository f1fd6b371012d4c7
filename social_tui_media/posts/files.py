"""Reading scraped post files: a list of posts, one post, or {"matching_elements": [...]}.

Every problem becomes one line naming the file and the post; nothing here raises for bad input.
Only regular files are read (a FIFO would block, /dev/zero never ends), up to a size limit.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from social_tui_media.posts.json_values import MAX_DEPTH, clean_json, clean_text
from social_tui_media.posts.media_items import post_identity

MAX_POST_FILE_BYTES = 512 * 1024 * 1024  # a scrape file larger than this is refused, not read
_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
)  # fmt: skip


@dataclass(frozen=True)
class LoadedPost:
    source_file: str  # the file's name, for messages
    index: int
    data: dict
    urn: str
    source_path: str = ""  # the file's full path, recorded in data_downloads.source_file_path


def _not_regular(mode: int) -> str | None:
    """What a file is when it is not a regular file ("a FIFO", ...), else None."""
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _FILE_KINDS if test(mode)), "not a regular file")


def _too_large(name: str, size: int) -> str:
    return (
        f"{name}: {size:,} bytes is over the limit of {MAX_POST_FILE_BYTES:,} bytes (MAX_POST_FILE_BYTES);"
        " split the file; skipped"
    )


def _read_regular_file(path: Path) -> tuple[bytes | None, str | None]:
    """The bytes of a regular file (a symlink to one is followed), or why it was not read.

    Checked before opening, so a FIFO or device is never opened, and again on the open file
    (opened non-blocking), so one swapped in between is not read either."""
    name = clean_text(path.name)
    try:
        kind = _not_regular(path.stat().st_mode)
        if kind is not None:
            return None, f"{name}: not a regular file ({kind}); skipped"
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as handle:
            opened = os.fstat(handle.fileno())
            kind = _not_regular(opened.st_mode)
            if kind is not None:
                return None, f"{name}: not a regular file ({kind}); skipped"
            if opened.st_size > MAX_POST_FILE_BYTES:
                return None, _too_large(name, opened.st_size)
            data = handle.read(MAX_POST_FILE_BYTES + 1)
    except OSError as exc:
        return None, f"{name}: cannot read file ({exc.__class__.__name__}: {exc}); skipped"
    if len(data) > MAX_POST_FILE_BYTES:  # it grew while being read
        return None, _too_large(name, len(data))
    return data, None


def load_post_file(path: Path) -> tuple[list[Any], str | None]:
    """The post objects in one file (a list, one post, or {"matching_elements": [...]})."""
    name = clean_text(path.name)
    raw, problem = _read_regular_file(path)
    if raw is None:
        return [], problem
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], f"{name}: cannot read file ({exc.__class__.__name__}: {exc}); skipped"
    if not text.strip():
        return [], f"{name}: file is empty; skipped"
    try:
        data = json.loads(text)
    except RecursionError:
        return [], f"{name}: not usable JSON: nested too deeply; skipped"
    except ValueError as exc:
        return [], f"{name}: not valid JSON ({exc}); skipped"
    if isinstance(data, dict) and isinstance(data.get("matching_elements"), list):
        return data["matching_elements"], None
    if isinstance(data, dict):
        return [data], None
    if isinstance(data, list):
        return data, None
    return [], f"{name}: expected a list of posts or an object, found {type(data).__name__}; skipped"


def describe(source: str, index: int, urn: str | None) -> str:
    return f"{source} post {urn}" if urn else f"{source} post #{index + 1}"


def load_posts(paths: Iterable[Path], problems: list[str]) -> list[LoadedPost]:
    """Every post with an identity from the files, cleaned so every back end stores it (see
    `json_values`); the rest, and what was cleaned, become one-line problems."""
    posts: list[LoadedPost] = []
    for path in paths:
        items, problem = load_post_file(path)
        if problem:
            problems.append(problem)
        name = clean_text(path.name)
        source_path = clean_text(str(path.resolve())) if items else ""
        for index, item in enumerate(items):
            cleaned = clean_json(item)
            if cleaned.too_deep:
                urn = post_identity(item)
                where = describe(name, index, clean_text(urn) if urn else None)
                problems.append(f"{where}: nested more than {MAX_DEPTH} levels deep; skipped")
                continue
            urn = post_identity(cleaned.value)
            if urn is None:
                kind = "not an object" if not isinstance(item, dict) else "has no urn or full_urn"
                problems.append(f"{describe(name, index, None)}: {kind}; skipped")
                continue
            if cleaned.changes:
                problems.append(f"{describe(name, index, urn)}: {', '.join(cleaned.changes)}")
            posts.append(LoadedPost(name, index, cleaned.value, urn, source_path))
    return posts
