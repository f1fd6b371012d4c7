"""Scraped JSON as every back end can store it. Pure: no I/O.

Python's json reads what the databases refuse: NaN and ±Infinity (and numbers like 1e400, read
as Infinity), which jsonb and SQLite's JSON functions reject; "\\u0000", which PostgreSQL text
and jsonb reject; lone surrogates ("\\ud800"), which no UTF-8 encoder takes. A post is cleaned
once, before it becomes rows, so one bad value costs that post a problem line, never its batch.
The walk is iterative and bounds nesting, so no later json.dumps or json.loads of a stored post
can exceed the recursion limit.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 200  # nesting levels a post may have: real posts have about ten; Python recurses to ~1000
NUL_DROPPED = "NUL characters dropped"
SURROGATES_REPLACED = "lone surrogates replaced with U+FFFD"
NON_FINITE_NULLED = "NaN/Infinity numbers stored as null"
_CHANGE_ORDER = (NUL_DROPPED, SURROGATES_REPLACED, NON_FINITE_NULLED)
_SURROGATE = re.compile("[\ud800-\udfff]")
# The C encoder refuses NaN/±Infinity, escapes NUL as \u0000 and writes lone surrogates as they
# are: one pass that finds whether a value needs the walk at all.
_ENCODE = json.JSONEncoder(ensure_ascii=False, allow_nan=False, check_circular=False).encode


@dataclass(frozen=True)
class CleanedJson:
    value: Any  # None when too_deep
    changes: tuple[str, ...]  # what was changed, in a fixed order; empty when nothing was
    too_deep: bool = False


def _clean_str(text: str, changes: set[str]) -> str:
    if "\x00" in text:
        text = text.replace("\x00", "")
        changes.add(NUL_DROPPED)
    replaced, count = _SURROGATE.subn("\ufffd", text)
    if count:
        changes.add(SURROGATES_REPLACED)
    return replaced


def clean_text(text: str) -> str:
    """`text` without NUL characters and with each lone surrogate replaced by U+FFFD."""
    return _clean_str(text, set())


def clean_json(value: Any, max_depth: int = MAX_DEPTH) -> CleanedJson:
    """A JSON value cleaned (text cleaned, keys too; NaN/±Infinity as null): the value itself
    when nothing needs cleaning, else a cleaned copy; `too_deep` when containers nest more than
    `max_depth` levels."""
    if _clean_already(value, max_depth):
        return CleanedJson(value, ())
    return _cleaned_copy(value, max_depth)


def _clean_already(value: Any, max_depth: int) -> bool:
    """True when `value` has nothing to clean, told from its C-encoded text: no non-finite
    number, no NUL, no lone surrogate, and too few containers to nest deeper than allowed.
    False only sends the value through the walk, which decides."""
    try:
        text = _ENCODE(value)
        text.encode()  # a lone surrogate has no UTF-8: UnicodeEncodeError, a ValueError
    except (ValueError, TypeError, RecursionError):
        return False
    return text.count("{") + text.count("[") <= max_depth and "\\u0000" not in text


def _cleaned_copy(value: Any, max_depth: int) -> CleanedJson:
    changes: set[str] = set()
    holder: list[Any] = [None]
    stack: list[tuple[Any, Any, Any, int]] = [(holder, 0, value, 0)]  # (parent, key, value, depth)
    while stack:
        parent, key, item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= max_depth:
                return CleanedJson(None, (), too_deep=True)
            copy: Any
            if isinstance(item, dict):
                copy = {}
                for k, v in item.items():
                    k = _clean_str(k, changes) if isinstance(k, str) else k
                    copy[k] = None  # keeps the key order; the value is filled in below
                    stack.append((copy, k, v, depth + 1))
            else:
                copy = [None] * len(item)
                stack.extend((copy, i, v, depth + 1) for i, v in enumerate(item))
            parent[key] = copy
        elif isinstance(item, str):
            parent[key] = _clean_str(item, changes)
        elif isinstance(item, float) and not math.isfinite(item):
            parent[key] = None
            changes.add(NON_FINITE_NULLED)
        else:
            parent[key] = item
    return CleanedJson(holder[0], tuple(c for c in _CHANGE_ORDER if c in changes))
