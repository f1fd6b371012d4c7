"""Running a job for a person: a progress bar while it works, its failures as warning lines.
Shared by both CLIs."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from social_tui_media.cli.formats import Summary
from social_tui_media.cli.output import apply_verbosity, console, progress_bar, warn
from social_tui_media.jobs.evict import EvictionReport, evict_lru
from social_tui_media.logs import configure_logging
from social_tui_media.media.cache import MediaCache
from social_tui_media.settings import Settings, load_settings
from social_tui_media.store.interface import MediaStore

if TYPE_CHECKING:  # the downloader (requests) loads only for commands that download
    from social_tui_media.jobs.download import DownloadReport
    from social_tui_media.jobs.extract_text import ExtractionReport

EXTRACTION_LABELS = {
    "completed": "text extracted",
    "shared": "rows sharing identical bytes' text (read once)",
    "reused": "rows reusing text read before (no OCR)",
    "failed": "text extraction failed",
    "near_grouped": "rows put in near-duplicate groups",
    "characters": "characters extracted",
    "lost": "results dropped (lease taken over)",
}


def download_with_progress(store: MediaStore, settings: Settings, **options: Any) -> DownloadReport:
    """`jobs.download.download_pending` with a progress bar; its options pass through."""
    from social_tui_media.jobs.download import download_pending

    with progress_bar("downloading media") as bar:
        report = download_pending(store, settings, progress=bar, **options)
    warn_download_failures(report)
    return report


def ocr_engine():
    """The local OCR engine, loaded before any claim; without one, exit 2 saying what to install."""
    from social_tui_media.cli.output import UsageError
    from social_tui_media.media.ocr import OcrUnavailable, load_engine

    try:
        return load_engine()
    except OcrUnavailable as exc:
        raise UsageError(str(exc)) from None


def extract_text_with_progress(store: MediaStore, settings: Settings, **options: Any) -> ExtractionReport:
    """`jobs.extract_text.extract_pending` with a progress bar; its failures as warning lines."""
    from social_tui_media.jobs.extract_text import extract_pending

    engine = options.pop("engine", None) or ocr_engine()
    with progress_bar(f"extracting text ({engine.name})", with_bytes=False) as bar:
        report = extract_pending(store, settings, progress=bar, engine=engine, **options)
    for failure in report.failures[:20]:
        warn(failure)
    if report.failed:
        warn(
            f"{report.failed} text extractions failed: `python manage_media.py extract-text --retry-failed` "
            "tries them again",
            even_quiet=True,
        )
    return report


def start_command(args: argparse.Namespace) -> tuple[Settings, str]:
    """What every command does first: `-q`/`-v`, the settings, and the log under a new run id
    (the one the summary, the download_runs row and every log line carry)."""
    stderr_level = apply_verbosity(args)
    settings = load_settings()
    run_id = configure_logging(settings.log_file, sentry_dsn=settings.sentry_dsn, stderr_level=stderr_level)
    return settings, run_id


def summary_for(command: str, settings: Settings, run_id: str | None = None) -> Summary:
    """A summary that starts by naming the run (for a job), the database (no secrets), the
    cache and the bucket."""
    summary = Summary(command)
    if run_id is not None:
        summary.add("run_id", "run", run_id)
    summary.add("database", "database", settings.database_label)
    summary.add("cache_dir", "cache", str(settings.cache_dir))
    summary.add("bucket", "archive bucket", f"s3://{settings.s3_bucket}" if settings.s3_bucket else None)
    return summary


def add_download_lines(summary: Summary, report: DownloadReport, already_cached: int = 0) -> None:
    """The download counts; `already_cached` rows needed no claim at all (an import's re-run)."""
    summary.add("downloaded", "downloaded", report.fetched)
    summary.add("reused", "reused (no request)", report.reused + already_cached)
    summary.add("failed", "failed", report.failed)
    summary.add("bytes_fetched", "bytes fetched", report.bytes)


def warn_download_failures(report: DownloadReport) -> None:
    """The first failures, one line each, and one line saying what to run next."""
    for failure in report.failures[:20]:
        warn(failure)
    if len(report.failures) > 20:
        warn(f"... and {len(report.failures) - 20} more (`manage_media.py list --download-status failed`)")
    if report.failed:
        warn(
            f"{report.failed} downloads failed: fix what the lines above say, then run "
            "`python manage_media.py download-all` (an expired link needs a re-scrape, then `--retry-failed`)",
            even_quiet=True,
        )


def evict_if_needed(store: MediaStore, settings: Settings) -> EvictionReport:
    check = None
    if settings.s3_bucket:  # archive copies are verified (HEAD) before a local file goes
        from social_tui_media.jobs.archive import archive_verifier

        check = archive_verifier(settings)
    report = evict_lru(store, MediaCache(settings.cache_dir), settings.cache_limit, check)
    if report.files_evicted:
        console.print(
            f"evicted {report.files_evicted} files ({report.bytes_freed:,} bytes) to stay under MEDIA_CACHE_LIMIT"
        )
    if report.kept_without_archive:
        warn(
            f"cache exceeds MEDIA_CACHE_LIMIT but {report.kept_without_archive} files have no verified archive copy; "
            "run `python manage_media.py archive --all`"
        )
    return report
