"""How long a server asked us to wait: one reading of `Retry-After` for every HTTP client here."""

from __future__ import annotations

import math
from collections.abc import Mapping

from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

_STANDARD = Retry()


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait, or None when the server did not say (or said nonsense).

    The standard forms (whole seconds, an HTTP date) are read by urllib3; our extras are the
    `retry-after-ms` header some APIs send and decimal seconds (`Retry-After: 1.5`).
    """
    if headers is None:
        return None
    seconds = _number(headers.get("retry-after-ms"), scale=1000)
    if seconds is not None:
        return seconds
    raw = (headers.get("retry-after") or "").strip()
    if not raw:
        return None
    try:
        return max(0.0, float(_STANDARD.parse_retry_after(raw)))
    except InvalidHeader:
        return _number(raw)


def _number(raw: str | None, scale: float = 1.0) -> float | None:
    try:
        value = float(raw) / scale if raw else None
    except ValueError:
        return None
    return max(0.0, value) if value is not None and math.isfinite(value) else None
