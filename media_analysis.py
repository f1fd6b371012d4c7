"""Vision analysis of one media file under the spec's module name: `analyze_media`,
`make_client`, `estimate_cost`. The work queue is `python manage_media.py analyze`."""

from social_tui_media.media.vision import (
    AnalysisError,
    AnalysisResult,
    analyze_media,
    estimate_cost,
    make_client,
)

__all__ = ["AnalysisError", "AnalysisResult", "analyze_media", "estimate_cost", "make_client"]
