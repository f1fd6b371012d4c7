"""Identifiers shared by every social-tui table: `{prefix}-{random}` ids in the AWS style.

The installation made `prefix-xxxxxxxx` ids (8 hex digits: 32 bits, which collide after about
65,000 ids of one kind); new ids carry 17 base-36 characters (about 88 bits). Both forms are
valid ids, and every function here accepts both.
"""

from __future__ import annotations

import re
import secrets

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


def generate_aws_id(prefix: str, length: int = 17) -> str:
    """Return a new random id such as `med-0f3k9x...`: unguessable, URL-safe, lower case."""
    if not prefix or not prefix.isalnum():
        raise ValueError(f"id prefix must be letters or digits, got {prefix!r}")
    number = int.from_bytes(secrets.token_bytes(length), "big")  # 8 random bits per character drawn
    digits = []
    for _ in range(length):
        number, digit = divmod(number, 36)
        digits.append(_ALPHABET[digit])
    return f"{prefix}-{''.join(digits)}"


def validate_aws_id(aws_id: str, expected_prefix: str | None = None) -> bool:
    """True for an id in either form (`p-1a2b3c4d` or `p-` and 17 base-36 characters),
    with `expected_prefix` when one is given."""
    match = _ID.fullmatch(aws_id) if isinstance(aws_id, str) else None
    return match is not None and (expected_prefix is None or match[1] == expected_prefix)


def extract_prefix(aws_id: str) -> str | None:
    """The prefix of a valid id (`med` of `med-1a2b3c4d`), else None."""
    match = _ID.fullmatch(aws_id) if isinstance(aws_id, str) else None
    return match[1] if match else None
