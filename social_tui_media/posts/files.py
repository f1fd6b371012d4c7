"""Reading scraped post files: a list of posts, one post, or {"matching_elements": [...]}.

Every problem becomes one line naming the file and the post; nothing here raises for bad input.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from social_tui_media.posts.media_items import post_identity


@dataclass(frozen=True)
class LoadedPost:
    source_file: str  # the file's name, for messages
    index: int
    data: dict
    urn: str
    source_path: str = ""  # the file's full path, recorded in data_downloads.source_file_path


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


def describe(source: str, index: int, urn: str | None) -> str:
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
                problems.append(f"{describe(path.name, index, None)}: {kind}; skipped")
                continue
            posts.append(LoadedPost(path.name, index, item, urn, str(path.resolve())))
    return posts
