"""Identifiers shared by every social-tui table: `{prefix}-{time}{random}` ids in the AWS style.

The installation made `prefix-xxxxxxxx` ids (8 hex digits: 32 bits, which collide after about
65,000 ids of one kind); new ids carry 17 base-36 characters: 8 of the time they were made,
in milliseconds, and 9 random ones (46 bits, so ids made in one millisecond do not collide).
Both forms are valid ids, and every function here accepts both.
"""

from __future__ import annotations

import os
import re
import time
from functools import lru_cache

PREFIX_POST = "p"
PREFIX_MEDIA = "med"
PREFIX_RUN = "run"
PREFIX_DOWNLOAD = "dl"
PREFIX_PROFILE = "prf"
PREFIX_TAG = "tag"
PREFIX_PROFILE_TAG = "pft"
PREFIX_POST_TAG = "ptg"
PREFIX_ACTION = "act"

__all__ = [
    "PREFIX_ACTION", "PREFIX_DOWNLOAD", "PREFIX_MEDIA", "PREFIX_POST", "PREFIX_POST_TAG", "PREFIX_PROFILE",
    "PREFIX_PROFILE_TAG", "PREFIX_RUN", "PREFIX_TAG", "extract_prefix", "generate_aws_id", "validate_aws_id",
]  # fmt: skip

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_ID = re.compile(r"([a-z0-9]+)-([0-9a-f]{8}|[0-9a-z]{17})")
_TIME_CHARS = 8  # milliseconds since 1970 in base 36: enough until the year 2059
# A random byte below 252 (7 x 36) read modulo 36 is a uniform base-36 digit; the others are dropped.
_DIGIT_OF_BYTE = bytes(ord(_ALPHABET[b % 36]) for b in range(252)) + bytes(4)
_DROPPED_BYTES = bytes(range(252, 256))


def _base36(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 36)
        digits.append(_ALPHABET[digit])
    return "".join(reversed(digits))


def _random_digits(count: int) -> str:
    """`count` uniform base-36 digits from the operating system's random source."""
    digits = b""
    while len(digits) < count:
        digits += os.urandom(count + 4).translate(_DIGIT_OF_BYTE, _DROPPED_BYTES)
    return digits[:count].decode()


def generate_aws_id(prefix: str, length: int = 17) -> str:
    """Return a new id such as `med-0mx9gtqip3k9xa1bz`: URL-safe, lower case, `length` base-36
    characters. The first 8 count milliseconds, so ids made later sort later (a database index
    on them grows at its end instead of changing pages all over); the rest are random (46 bits
    in the usual 17), so an id cannot be guessed from another."""
    if not prefix or not prefix.isalnum():
        raise ValueError(f"id prefix must be letters or digits, got {prefix!r}")
    if length <= _TIME_CHARS:
        raise ValueError(f"an id needs more than {_TIME_CHARS} characters, got {length}")
    millis = time.time_ns() // 1_000_000
    return f"{prefix}-{_time_digits(millis)}{_random_digits(length - _TIME_CHARS)}"


@lru_cache(maxsize=1)  # ids made in one millisecond share its digits
def _time_digits(millis: int) -> str:
    return _base36(millis, _TIME_CHARS)


def validate_aws_id(aws_id: str, expected_prefix: str | None = None) -> bool:
    """True for an id in either form (`p-1a2b3c4d` or `p-` and 17 base-36 characters),
    with `expected_prefix` when one is given."""
    match = _ID.fullmatch(aws_id) if isinstance(aws_id, str) else None
    return match is not None and (expected_prefix is None or match[1] == expected_prefix)


def extract_prefix(aws_id: str) -> str | None:
    """The prefix of a valid id (`med` of `med-1a2b3c4d`), else None."""
    match = _ID.fullmatch(aws_id) if isinstance(aws_id, str) else None
    return match[1] if match else None
