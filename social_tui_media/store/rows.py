"""The one shape rows have in Python, whichever back end produced them.

Rows travel as plain dicts keyed by column name. JSON columns arrive parsed
(`ai_analysis_log` always a list, `ai_analysis` a dict or None) and timestamps as
ISO-8601 UTC strings, whatever the back end stores.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any


def utc_now() -> str:
    """Now, as the ISO-8601 UTC text every back end stores and compares."""
    return to_iso(datetime.now(UTC))


def to_iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def parse_log(value: Any) -> list:
    """An event log as a list, whatever older writers stored (NULL, JSON text, one object)."""
    if value is None:
        return []
    if isinstance(value, (bytes, str)):
        try:
            value = json.loads(value)
        except ValueError:
            return [{"event": "legacy_log", "details": str(value)}]
        return parse_log(value) if isinstance(value, str) else parse_log_list(value)
    return parse_log_list(value)


def parse_log_list(value: Any) -> list:
    if isinstance(value, list):
        return value
    if value is None:
        return []
    return [value]


def parse_analysis(value: Any) -> dict | None:
    if value is None or isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        return {"description": str(value)}
    return parsed if isinstance(parsed, dict) else {"description": str(value)}


def normalize_row(row: dict) -> dict:
    """Give a row the same Python shape whichever back end produced it."""
    out = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            value = to_iso(value)
        elif isinstance(value, date):
            value = value.isoformat()
        elif isinstance(value, Decimal):
            value = float(value)
        out[key] = value
    if "ai_analysis_log" in out:
        out["ai_analysis_log"] = parse_log(out["ai_analysis_log"])
    if "ai_analysis" in out:
        out["ai_analysis"] = parse_analysis(out["ai_analysis"])
    if "download_permanent" in out and out["download_permanent"] is not None:
        out["download_permanent"] = bool(out["download_permanent"])
    if isinstance(out.get("text_segments"), str):
        out["text_segments"] = parse_log(out["text_segments"])
    if "raw_json" in out and isinstance(out["raw_json"], str):
        out["raw_json"] = json.loads(out["raw_json"])
    if out.get("download_status") is None and "download_status" in out:
        out["download_status"] = "downloaded" if out.get("md5_sum") else "pending"
    return out
