"""The spec's metrics (download success rate, cache hit rate, download times, storage local and in
S3, queue depth per stage, failures by kind, costs), over a window and over all time. Every
figure is read from the rows and their event logs by the store: nothing is counted twice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from social_tui_media.store.interface import COST_GROUPS, MediaStore, day_start_iso

DEFAULT_WINDOW_DAYS = 7
# S3 Standard in us-east-1, first 50 TB, USD per GB-month (aws.amazon.com/s3/pricing, 2025). An
# upper bound: copies that moved to a cheaper class (MEDIA_ARCHIVE_STORAGE_CLASS) cost less.
S3_PRICE_PER_GB_MONTH = 0.023
GB = 1024**3
STAGES = ("download", "text", "analysis", "archive")


@dataclass(frozen=True)
class DownloadFigures:
    """One period's download metrics, derived from the store's counts."""

    succeeded: int
    failed: int
    success_rate: float | None  # succeeded slots / slots attempted
    cache_hit_rate: float | None  # slots served without an HTTP request / slots served
    mean_ms: float | None  # over timed HTTP fetches
    p95_ms: float | None
    bytes_per_second: float | None  # bytes of timed HTTP fetches / their time
    failures_by_kind: dict[str, int]


def download_figures(counts: dict) -> DownloadFigures:
    """Rates and means from `MediaStore.download_metrics` counts; None where nothing happened."""
    succeeded, failed = counts["succeeded"], counts["failed"]
    timed, ms = counts["http_timed"], counts["http_ms"]
    return DownloadFigures(
        succeeded=succeeded,
        failed=failed,
        success_rate=succeeded / (succeeded + failed) if succeeded + failed else None,
        cache_hit_rate=counts["served_without_http"] / succeeded if succeeded else None,
        mean_ms=ms / timed if timed else None,
        p95_ms=counts["p95_ms"],
        bytes_per_second=counts["http_bytes"] / (ms / 1000) if ms else None,
        failures_by_kind=dict(counts["failures_by_kind"]),
    )


def window_start(since: str | None, now: datetime | None = None) -> str:
    """The window's first day: `since` (YYYY-MM-DD), else DEFAULT_WINDOW_DAYS days ago (UTC)."""
    return since or ((now or datetime.now(UTC)) - timedelta(days=DEFAULT_WINDOW_DAYS)).date().isoformat()


@dataclass(frozen=True)
class PipelineFigures:
    window: DownloadFigures
    all_time: DownloadFigures
    queue_depth: dict[str, int | None]  # per stage, in STAGES order
    s3_objects: int
    s3_bytes: int
    s3_monthly_cost_usd: float


def pipeline_figures(store: MediaStore, since: str) -> PipelineFigures:
    """The metrics for a window starting on day `since`, and for all time."""
    stages = store.stage_counts() | {"text": store.text_backlog(["not_started"])}  # extract-text's own rule
    return PipelineFigures(
        window=download_figures(store.download_metrics(day_start_iso(since))),
        all_time=download_figures(store.download_metrics(None)),
        queue_depth={stage: stages.get(stage) for stage in STAGES},
        s3_objects=int(stages["s3_objects"]),
        s3_bytes=int(stages["s3_bytes"]),
        s3_monthly_cost_usd=int(stages["s3_bytes"]) / GB * S3_PRICE_PER_GB_MONTH,
    )


def cost_groups(store: MediaStore, by: str, since: str) -> list[dict]:
    """Analysis cost by month, post or author: all time, and since day `since`, one row per group."""
    if by not in COST_GROUPS:
        raise ValueError(f"by={by!r}: expected one of {', '.join(COST_GROUPS)}")
    recent = {r["group_key"]: r for r in store.analysis_costs(by, day_start_iso(since))}
    return [
        {
            by: row["group_key"],
            "analyses": row["analyses"],
            "prompt_tokens": row["prompt_tokens"],
            "completion_tokens": row["completion_tokens"],
            "cost_usd": row["cost_usd"],
            "analyses_since": recent.get(row["group_key"], {}).get("analyses", 0),
            "cost_usd_since": recent.get(row["group_key"], {}).get("cost_usd", 0.0),
        }
        for row in store.analysis_costs(by)
    ]
