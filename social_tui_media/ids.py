"""Identifiers shared by every social-tui table: `{prefix}-{random}` ids in the AWS style."""

from __future__ import annotations

import secrets

PREFIX_POST = "p"
PREFIX_MEDIA = "med"
PREFIX_RUN = "run"
PREFIX_DOWNLOAD = "dl"
PREFIX_PROFILE = "prf"
PREFIX_TAG = "tag"
PREFIX_ACTION = "act"

__all__ = [
    "PREFIX_ACTION", "PREFIX_DOWNLOAD", "PREFIX_MEDIA", "PREFIX_POST", "PREFIX_PROFILE", "PREFIX_RUN",
    "PREFIX_TAG", "generate_aws_id",
]  # fmt: skip

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


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
