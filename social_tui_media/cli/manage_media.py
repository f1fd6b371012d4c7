"""Manage post media: list, download, verify, archive, analyse and report.

Exit codes: 0 success, 1 the job ran but some items failed, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from social_tui_media import __version__
from social_tui_media.cli.formats import Summary, add_format_options, output_format, print_rows, print_summary
from social_tui_media.cli.output import (
    EXIT_ITEMS_FAILED,
    EXIT_OK,
    UsageError,
    add_verbosity_options,
    console,
    fail,
    positive_int,
    progress_bar,
    run_command,
    warn,
)
from social_tui_media.cli.runs import (
    EXTRACTION_LABELS,
    add_download_lines,
    download_with_progress,
    evict_if_needed,
    extract_text_with_progress,
    ocr_engine,
    start_command,
    summary_for,
)
from social_tui_media.cli.terminal_graphics import PROTOCOLS, probe_in_background
from social_tui_media.jobs.metrics import PipelineFigures, pipeline_figures
from social_tui_media.jobs.verify import repair_cache, verify_cache
from social_tui_media.media.cache import MediaCache
from social_tui_media.settings import Settings
from social_tui_media.store import open_store
from social_tui_media.store.claims import claim_statuses
from social_tui_media.store.interface import (
    AI_STATUSES,
    COST_GROUPS,
    DOWNLOAD_STATUSES,
    AnalysisQuery,
    AuditQuery,
    BrowseQuery,
    MediaQuery,
    MediaStore,
    make_audit,
)

if TYPE_CHECKING:
    from social_tui_media.jobs.thumbnails import ThumbnailReport

LIST_COLUMNS = [
    "media_id",
    "post_id",
    "media_type",
    "download_status",
    "ai_analysis_status",
    "file_size",
    "mime_type",
    "md5_sum",
]


SEARCH_COLUMNS = ["rank", "media_id", "media_type", "snippet", "post_url", "author", "local_file", "copies"]
DUPLICATE_COLUMNS = [
    "group_key",
    "member_rank",
    "kind",
    "media_id",
    "file_size",
    "media_url",
    "post_url",
    "author_username",
]

SHOW_LABELS = {
    "media_id": "media",
    "post_id": "post",
    "media_type": "type",
    "mime_type": "MIME type",
    "width": "width",
    "height": "height",
    "file_size": "bytes",
    "md5_sum": "MD5",
    "download_status": "download status",
    "local_file_path": "cached file",
    "archive_url": "archive copy",
    "ai_analysis_status": "analysis status",
    "ai_model": "model",
}


STATS_LABELS = {
    "expiring_48h": "uncached, URL expires within 48 h",
    "archived": "archived",
    "evicted": "evicted from cache",
}
ANALYSIS_TOTAL_LABELS = {
    "ai_prompt_tokens": "analysis prompt tokens",
    "ai_completion_tokens": "analysis completion tokens",
}
BATCH_STATS_LABELS = {
    "batches_open": "analysis batches open",
    "batch_items_open": "items waiting in open batches",
    "batch_oldest_open_at": "oldest open batch since",
    "batch_cost_usd": "batch analysis cost (estimated USD)",
    "batch_saved_usd": "saved by the batch price (estimated USD)",
}
REPAIR_LABELS = {
    "strays_removed": "stray files removed",
    "adopted": "misplaced files moved into the layout",
    "restored": "files restored (archive or re-download)",
    "restore_failed": "files that could not be restored",
}
BACKFILL_LABELS = {
    "posts_scanned": "posts scanned",
    "posts_without_media": "posts missing media rows (some or all)",
    "media_found": "media found",
}
COLLECT_LINES = {  # report attribute: (summary key, label)
    "batches_applied": ("batches_collected", "batches collected"),
    "completed": ("collected_completed", "completed from batches"),
    "shared": ("collected_shared", "of which shared (identical bytes)"),
    "failed": ("collected_failed", "failed in batches"),
    "released": ("collected_released", "handed back to the queue (batch ended unfinished)"),
    "cost_usd": ("collected_cost_usd", "batch cost (estimated USD)"),
    "saved_usd": ("collected_saved_usd", "saved by the batch price (USD)"),
}
SUBMIT_LABELS = {
    "batched": "items waiting in the batches",
    "requests": "requests sent (identical bytes once)",
    "shared": "completed at once from an analysis of the same bytes",
    "failed": "failed before sending",
}
ANALYZE_LABELS = {
    "completed": "completed",
    "shared": "of which shared (identical bytes)",
    "failed": "failed",
    "prompt_tokens": "prompt tokens",
    "completion_tokens": "completion tokens",
    "cost_usd": "estimated cost (USD)",
    "lost": "results dropped (lease taken over)",
    "released": "handed back uncharged (endpoint failed)",
}
ARCHIVE_LABELS = {
    "uploaded": "files uploaded",
    "reused": "rows reusing an archive copy",
    "failed": "failed",
    "bytes": "bytes uploaded",
}
AUDIT_COLUMNS = [
    "audit_id", "occurred_at", "actor_user", "actor_host", "action", "reason", "media_id", "target",
]  # fmt: skip
RETAIN_LABELS = {
    "retention_days": "MEDIA_RETENTION_DAYS",
    "cutoff": "posts older than",
    "dry_run": "dry run (nothing removed)",
    "files_removed": "files removed",
    "rows_evicted": "rows marked evicted",
    "bytes_freed": "bytes freed",
    "kept_without_archive": "old files kept: no verified archive copy",
    "outside_cache": "rows pointing outside the cache (never touched)",
}
DOWNLOAD_FIGURES = {  # DownloadFigures field -> (stats key, label, how a person reads it)
    "success_rate": ("download_success_rate", "download success rate", "percent"),
    "cache_hit_rate": ("cache_hit_rate", "cache hit rate (served without HTTP)", "percent"),
    "succeeded": ("downloads_succeeded", "slots downloaded or reused", "count"),
    "failed": ("downloads_failed", "downloads failed", "count"),
    "mean_ms": ("download_mean_ms", "mean download time (ms)", "ms"),
    "p95_ms": ("download_p95_ms", "95th percentile download time (ms)", "ms"),
    "bytes_per_second": ("download_bytes_per_second", "download throughput (bytes/s)", "count"),
    "failures_by_kind": ("download_failures_by_kind", "failed downloads by kind", "kinds"),
}
THUMBNAIL_LABELS = {
    "files_seen": "cached files",
    "made": "thumbnails made",
    "existing": "had one already",
    "not_cached": "rows whose file is not in the cache",
    "failed": "files that give no thumbnail",
}
GALLERY_LABELS = {
    "items": "media exported",
    "posts": "posts",
    "thumbnails": "thumbnails copied",
    "files": "media files copied",
    "bytes_copied": "bytes copied",
    "not_cached": "media shown without their file (not downloaded or evicted)",
}
MEDIA_TYPES = ("image", "video", "document")
VERIFY_LABELS = {
    "rows_checked": "rows checked",
    "files_checked": "files re-hashed",
    "bytes_checked": "bytes re-hashed",
    "missing": "missing files",
    "corrupt": "corrupt files",
    "dangling": "rows pointing nowhere",
    "moved": "rows whose file moved within the cache",
    "misplaced": "files outside the cache layout",
    "outside_cache": "rows pointing outside the cache (never touched)",
    "stray_files": "stray files (no row points at them)",
}


def bounded_limit(text: str) -> int:
    value = positive_int(text)
    if value > 1000:
        raise argparse.ArgumentTypeError(f"{value} is more than 1000")
    return value


def iso_date(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2025-11-01") from None


# commands -----------------------------------------------------------------------------------


def cmd_list(args, settings: Settings, store: MediaStore) -> int:
    download_status, ai_status = args.download_status, args.analysis_status
    if args.status:  # the older, ambiguous filter: a download status, else an analysis status
        if args.status in DOWNLOAD_STATUSES:
            download_status = args.status
        else:
            ai_status = args.status
    query = MediaQuery(
        post_id=args.post_id, download_status=download_status, ai_status=ai_status,
        media_type=args.media_type, since=args.since,
    )  # fmt: skip
    rows = store.iter_media(query)  # streamed: a page at a time, whatever the total
    print_rows(rows, LIST_COLUMNS, output_format(args), title=lambda count: f"{count} media")
    return EXIT_OK


def cmd_show(args, settings: Settings, store: MediaStore) -> int:
    row = store.get_media(args.media_id)
    if row is None:
        raise UsageError(f"no media with id {args.media_id!r}")
    analysis = row.get("ai_analysis") or {}  # the store hands it over parsed
    summary = Summary("media").add_fields(row, SHOW_LABELS)
    summary.add("description", "description", analysis.get("description"))
    summary.add("tags", "tags", analysis.get("tags") or [])
    summary.add("text_in_image", "text in the image", analysis.get("text_in_image"))
    summary.add("text_status", "text extraction", row.get("text_status"))
    summary.add("extracted_text", "extracted text", row.get("extracted_text"))
    summary.add("near_group_id", "near-duplicate group", row.get("near_group_id"))
    print_summary(summary, output_format(args), args.quiet)
    return EXIT_OK


def cmd_stats(args, settings: Settings, store: MediaStore) -> int:
    from social_tui_media.jobs.metrics import cost_groups, window_start

    since = window_start(args.since)
    if args.by:  # a listing: one row per month, post or author
        rows = cost_groups(store, args.by, since)
        columns = [args.by, "analyses", "prompt_tokens", "completion_tokens", "cost_usd", "analyses_since",
                   "cost_usd_since"]  # fmt: skip
        print_rows(
            rows, columns, output_format(args), title=f"analysis cost by {args.by} (since: from {since})"
        )
        return EXIT_OK
    counts = store.media_counts()
    files, nbytes = MediaCache(settings.cache_dir).usage() if settings.cache_dir.is_dir() else (0, 0)
    by_download = {status: counts["by_download_status"].get(status, 0) for status in DOWNLOAD_STATUSES}
    by_ai = {status: counts["by_ai_status"].get(status, 0) for status in AI_STATUSES}
    summary = summary_for("stats", settings)
    summary.add_fields(counts, {"posts_total": "posts", "media_total": "media"})
    summary.add("by_download_status", "download status", by_download)
    summary.add("download_backlog", "taken by the next download-all", store.download_backlog())
    summary.add("by_ai_status", "analysis status", by_ai)
    summary.add_fields(counts, STATS_LABELS)
    summary.add("cache_files", "cache files", files)
    summary.add("cache_bytes", "cache bytes", nbytes)
    summary.add("cache_limit", "cache limit (bytes)", settings.cache_limit)
    summary.add_fields(counts, ANALYSIS_TOTAL_LABELS)
    summary.add("ai_cost_usd", "analysis cost (estimated USD)", float(counts["ai_cost_usd"]))
    add_pipeline_lines(summary, pipeline_figures(store, since), since)
    batches = store.batch_counts()
    summary.add_fields(batches, BATCH_STATS_LABELS)
    if batches["batches_open"] and not args.quiet:
        oldest = batches["batch_oldest_open_at"]
        console.print(
            f"{batches['batches_open']} batch{'es' if batches['batches_open'] > 1 else ''} open, "
            f"{batches['batch_items_open']} items, oldest submitted {_ago(oldest)}: "
            "`python manage_media.py analyze --collect` applies finished ones"
        )
    print_summary(summary, output_format(args), args.quiet)
    return EXIT_OK


def add_pipeline_lines(summary: Summary, figures: PipelineFigures, since: str) -> None:
    """The spec's metrics, each over the window and over all time, after the counts (new keys
    are appended: scripts reading `stats --json` keep their keys and order)."""
    summary.add("since", "window starts (UTC day)", since)
    for name, (key, label, unit) in DOWNLOAD_FIGURES.items():
        value = {"window": getattr(figures.window, name), "all_time": getattr(figures.all_time, name)}
        shown = (
            f"since {since}: {_figure(value['window'], unit)}; all time: {_figure(value['all_time'], unit)}"
        )
        summary.add(key, label, value, shown)
    summary.add("queue_depth", "waiting per stage", figures.queue_depth)
    summary.add("s3_objects", "archive objects in S3", figures.s3_objects)
    summary.add("s3_bytes", "archive bytes in S3", figures.s3_bytes)
    summary.add("s3_monthly_cost_usd", "S3 storage per month (estimated USD)", figures.s3_monthly_cost_usd)


def _figure(value, unit: str) -> str:
    if value is None:
        return "none"
    if unit == "percent":
        return f"{value:.1%}"
    if unit == "ms":
        return f"{value:,.0f} ms"
    if unit == "kinds":
        return ", ".join(f"{kind} {count:,}" for kind, count in value.items()) or "none"
    return f"{value:,.0f}"


def cmd_audit(args, settings: Settings, store: MediaStore) -> int:
    rows = store.iter_audit(AuditQuery(since=args.since, media_id=args.media_id))
    print_rows(rows, AUDIT_COLUMNS, output_format(args), title=lambda count: f"{count} audit entries")
    return EXIT_OK


def cmd_retain(args, settings: Settings, store: MediaStore) -> int:
    from social_tui_media.jobs.retain import apply_retention

    summary = summary_for("retain", settings, args.run_id)
    if settings.retention_days is None:
        console.print("MEDIA_RETENTION_DAYS is not set: no retention policy applies, nothing was removed.")
        summary.add("retention_days", "MEDIA_RETENTION_DAYS", None)
        print_summary(summary, output_format(args), args.quiet)
        return EXIT_OK
    check = None
    if settings.s3_bucket:  # the archive copy is verified (HEAD: size and MD5) before a file goes
        from social_tui_media.jobs.archive import archive_verifier

        check = archive_verifier(settings)
    else:
        warn("AWS_S3_BUCKET is not set: retention never removes the only copy of a file, so nothing goes")
    report = apply_retention(
        store, MediaCache(settings.cache_dir), settings.retention_days, check, dry_run=args.dry_run
    )
    for path in report.files[:100]:
        console.print(f"  {'would remove' if args.dry_run else 'removed'}  {path}")
    labels = dict(RETAIN_LABELS)
    if args.dry_run:
        labels.update(files_removed="files that would be removed", rows_evicted="rows that would be marked evicted",
                      bytes_freed="bytes that would be freed")  # fmt: skip
    summary.add_fields(report, labels)
    print_summary(summary, output_format(args), args.quiet)
    if report.kept_without_archive and settings.s3_bucket:
        warn(
            f"{report.kept_without_archive} old files have no verified archive copy and were kept: "
            "run `python manage_media.py archive --all`"
        )
    return EXIT_OK


def cmd_download_all(args, settings: Settings, store: MediaStore) -> int:
    engine = ocr_engine() if args.extract_text else None  # a missing engine: exit 2 before any download
    report = download_with_progress(
        store, settings, retry_failed=args.retry_failed, limit=args.limit, workers=args.workers
    )
    extracted = extract_text_with_progress(store, settings, engine=engine) if engine else None
    evicted = evict_if_needed(store, settings)
    summary = summary_for("download-all", settings, args.run_id)
    add_download_lines(summary, report)
    if extracted is not None:
        summary.add_fields(extracted, EXTRACTION_LABELS)
    summary.add("files_evicted", "evicted to stay under MEDIA_CACHE_LIMIT", evicted.files_evicted)
    print_summary(summary, output_format(args), args.quiet)
    return EXIT_ITEMS_FAILED if report.failed or (extracted and extracted.failed) else EXIT_OK


def cmd_extract_text(args, settings: Settings, store: MediaStore) -> int:
    media_ids = [args.media_id] if args.media_id else None
    if media_ids and store.get_media(args.media_id) is None:
        raise UsageError(f"no media with id {args.media_id!r}")
    report = extract_text_with_progress(
        store, settings, statuses=claim_statuses(args.retry_failed, args.force), media_ids=media_ids,
        limit=args.limit, workers=args.workers or 1,
    )  # fmt: skip
    summary = summary_for("extract-text", settings, args.run_id)
    summary.add_fields(report, EXTRACTION_LABELS)
    print_summary(summary, output_format(args), args.quiet)
    return EXIT_ITEMS_FAILED if report.failed else EXIT_OK


def _search_row(rank: int, hit) -> dict:
    """A hit as one output row: the best copy, why it matched, and every post sharing it."""
    first = hit.posts[0] if hit.posts else {}
    return {
        "rank": rank, "score": round(hit.rank, 4), "media_id": hit.media_id, "media_type": hit.media_type,
        "snippet": hit.snippet, "post_url": first.get("post_url"), "author": first.get("author"),
        "local_file": hit.local_file_path, "copies": len(hit.media_ids), "media_ids": hit.media_ids,
        "posts": hit.posts, "fuzzy": hit.fuzzy, "media_url": hit.media_url,
    }  # fmt: skip


def cmd_search(args, settings: Settings, store: MediaStore) -> int:
    from social_tui_media.store.search import SearchQuery, SearchSyntaxError, parse_search

    args.query = " ".join(args.query)
    try:
        query = SearchQuery(
            parse_search(args.query), media_type=args.media_type, author=args.author, since=args.since,
            field=args.field, limit=args.limit,
        )  # fmt: skip
    except SearchSyntaxError as exc:
        raise UsageError(f"search {args.query!r}: {exc}") from None
    hits = store.search_media(query)
    rows = [_search_row(rank, hit) for rank, hit in enumerate(hits, start=1)]
    fuzzy = " (by similar spelling)" if any(h.fuzzy for h in hits) else ""
    print_rows(
        rows, SEARCH_COLUMNS, output_format(args), title=lambda n: f"{n} hits for {args.query!r}{fuzzy}"
    )
    return EXIT_OK


def cmd_duplicates(args, settings: Settings, store: MediaStore) -> int:
    rows = store.iter_duplicate_groups()
    print_rows(rows, DUPLICATE_COLUMNS, output_format(args), title=lambda n: f"{n} media in duplicate groups")
    return EXIT_OK


def cmd_verify_cache(args, settings: Settings, store: MediaStore) -> int:
    cache = MediaCache(settings.cache_dir)
    report = verify_cache(store, cache)
    summary = summary_for("verify-cache", settings, args.run_id)
    if args.repair and (report.problems or report.moved or report.misplaced or report.stray):
        with progress_bar("restoring missing and corrupt files") as bar:
            repaired = repair_cache(store, settings, cache, report, progress=bar)
        for failure in repaired.failures[:20]:
            warn(failure)
        report = verify_cache(store, cache)
        summary.add_fields(repaired, REPAIR_LABELS)
    if args.repair:  # a missing thumbnail is no corruption: rebuilt, never counted in the exit code
        thumbs = make_thumbnails_with_progress(store, cache)
        summary.add("thumbnails_made", "missing thumbnails made", thumbs.made)
        summary.add("thumbnails_failed", "files that give no thumbnail", thumbs.failed)
    for key, value in report.as_dict().items():
        summary.add(key, VERIFY_LABELS[key], value, len(value) if isinstance(value, list) else value)
    print_summary(summary, output_format(args), args.quiet)
    for row in report.problems[:50]:
        warn(
            f"{row['media_id']} ({row.get('local_file_path') or 'no file'}): needs repair; run `verify-cache --repair`"
        )
    if report.problems:
        warn(
            f"{len(report.problems)} cached files are missing or corrupt: run `python manage_media.py verify-cache --repair`",
            even_quiet=True,
        )
    if report.stray and not args.repair:
        warn(f"{len(report.stray)} files in the cache belong to no row: `verify-cache --repair` removes them")
    return EXIT_ITEMS_FAILED if report.problems else EXIT_OK


def make_thumbnails_with_progress(store: MediaStore, cache: MediaCache) -> ThumbnailReport:
    """Every missing thumbnail, with a progress bar; a file that gives none is one warning line."""
    from social_tui_media.jobs.thumbnails import make_missing_thumbnails

    with progress_bar("making thumbnails", with_bytes=False) as bar:
        report = make_missing_thumbnails(store, cache, progress=bar)
    for failure in report.failures[:20]:
        warn(f"no thumbnail for {failure}")
    if len(report.failures) > 20:
        warn(f"... and {len(report.failures) - 20} more files give no thumbnail (the log has each)")
    return report


def cmd_thumbnails(args, settings: Settings, store: MediaStore) -> int:
    report = make_thumbnails_with_progress(store, MediaCache(settings.cache_dir))
    summary = summary_for("thumbnails", settings, args.run_id)
    summary.add_fields(report, THUMBNAIL_LABELS)
    print_summary(summary, output_format(args), args.quiet)
    return EXIT_ITEMS_FAILED if report.failed else EXIT_OK


def browse_query(args) -> BrowseQuery:
    """The filters `browse` and `export-gallery` share."""
    text = (args.query or "").strip() or None
    return BrowseQuery(text=text, post_id=args.post_id, author=args.author, media_type=args.media_type)


def cmd_browse(args, settings: Settings, store: MediaStore) -> int:
    graphics = probe_in_background(args.image)  # the terminal answers while Textual loads
    try:
        from social_tui_media.cli.browse import run_browser
    except ImportError as exc:
        graphics.result()  # the terminal as it was, before the message
        raise UsageError(
            f"browse needs Textual and textual-image ({exc.name} is missing): "
            "pip install 'social-tui-media[browse]' (or pip install -r requirements.txt)"
        ) from None
    return run_browser(store, settings, browse_query(args), graphics.result())


def cmd_export_gallery(args, settings: Settings, store: MediaStore) -> int:
    from social_tui_media.jobs.gallery import GalleryError, export_gallery

    query = browse_query(args)
    cache = MediaCache(settings.cache_dir)
    try:
        with progress_bar("exporting media", with_bytes=False) as bar:
            report = export_gallery(store, cache, args.out_dir, query, markdown=args.markdown, progress=bar)
    except GalleryError as exc:
        raise UsageError(str(exc)) from None
    for media_id in report.no_thumbnail[:20]:
        warn(f"{media_id}: its file gives no thumbnail (the log says why); shown without one")
    summary = summary_for("export-gallery", settings, args.run_id)
    summary.add("index", "open", str(report.index))
    summary.add_fields(report, GALLERY_LABELS)
    print_summary(summary, output_format(args), args.quiet)
    return EXIT_OK


def cmd_backfill(args, settings: Settings, store: MediaStore) -> int:
    from social_tui_media.jobs.backfill import backfill_media

    report = backfill_media(store, start_date=args.start_date, limit=args.limit, dry_run=args.dry_run)
    for problem in report.problems:
        warn(problem)
    for slot in report.missing[:200]:  # the slot key: the URL without its signature
        console.print(f"  {slot.post_id}  {slot.media_type}  {slot.slot_role}  {slot.slot_key}")
    summary = summary_for("backfill", settings, args.run_id)
    summary.add("dry_run", "dry run (nothing written)", args.dry_run)
    summary.add_fields(report, BACKFILL_LABELS)
    failed = 0
    if not args.dry_run and report.media_ids:
        downloads = download_with_progress(store, settings, media_ids=report.media_ids)
        add_download_lines(summary, downloads)
        failed = downloads.failed
    print_summary(summary, output_format(args), args.quiet)
    return EXIT_ITEMS_FAILED if failed or report.problems else EXIT_OK


def _ago(iso: str) -> str:
    """How long ago an ISO-8601 instant was, as a person says it: 12 min, 3 h, 2 d."""
    seconds = max(0.0, (datetime.now(UTC) - datetime.fromisoformat(iso)).total_seconds())
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} d ago"


def in_progress_line(batches: list) -> str:
    """'1 batch in progress, 240 items, submitted 3 h ago' (the oldest, for several)."""
    items = sum(b.items for b in batches)
    oldest = min(b.since for b in batches)
    many = len(batches) > 1
    return (
        f"{len(batches)} batch{'es' if many else ''} in progress, {items} items, "
        f"{'oldest ' if many else ''}submitted {_ago(oldest)}"
    )


def add_collect_lines(summary: Summary, report) -> None:
    """What collecting the open batches did, and what is still running."""
    for attribute, (key, label) in COLLECT_LINES.items():
        summary.add(key, label, getattr(report, attribute))
    summary.add("batches_in_progress", "batches still in progress", len(report.in_progress))
    summary.add("batch_items_in_progress", "items waiting in them", sum(b.items for b in report.in_progress))
    for line in report.ended:
        warn(line)
    for problem in report.problems:
        warn(f"{problem}; it is looked at again on the next run")
    for failure in report.failures[:20]:
        warn(failure)
    if report.in_progress:
        console.print(in_progress_line(report.in_progress))


def cmd_analyze(args, settings: Settings, store: MediaStore) -> int:
    from social_tui_media.jobs.analyze import analyze_pending, restore_evicted
    from social_tui_media.jobs.analyze_batch import collect_batches
    from social_tui_media.media.vision import make_client

    if not (args.status or args.media_id or args.collect or args.batch):
        raise UsageError("analyze needs one of --status S, --media-id ID, --collect or --batch")
    if args.collect and args.batch:
        raise UsageError(
            "--collect applies finished batches, --batch submits new ones (and collects first): use one"
        )
    if args.status and args.status not in ("not_started", "failed", "completed"):
        raise UsageError(f"--status {args.status!r}: expected not_started, failed or completed")
    if args.status == "completed" and not args.force:
        raise UsageError("--status completed re-analyses finished rows: add --force")
    statuses = claim_statuses(args.retry_failed or args.status == "failed", args.force)
    if args.status and not args.force and not args.retry_failed:
        statuses = [args.status]
    media_ids = [args.media_id] if args.media_id else None
    if media_ids:
        row = store.get_media(args.media_id)
        if row is None:
            raise UsageError(f"no media with id {args.media_id!r}")
        if not args.dry_run:
            with progress_bar("restoring evicted files") as bar:
                restored = restore_evicted(store, settings, media_ids, progress=bar)
            for failure in restored.failures:
                warn(failure)
    summary = summary_for("analyze", settings, args.run_id)
    summary.add("model", "model", settings.ai_model)
    if args.dry_run:
        rows = store.analysis_candidates(AnalysisQuery(statuses, media_ids))[: args.limit]
        for row in rows[:50]:
            console.print(f"  {row['media_id']}  {row['mime_type']}  {row['local_file_path']}")
        summary.add("dry_run", "dry run (nothing sent)", True)
        summary.add("would_analyse", "media that would be analysed", len(rows))
        print_summary(summary, output_format(args), args.quiet)
        return EXIT_OK
    client = make_client(settings)  # AnalysisConfigError (no key) ends the command with exit 2
    collected = collect_batches(store, client)  # every run first applies what batches returned
    add_collect_lines(summary, collected)
    if args.collect:
        print_summary(summary, output_format(args), args.quiet)
        return _failed_exit(collected.failed)
    if args.batch:
        return submit_with_summary(
            args, settings, store, client, summary, statuses, media_ids, collected.failed
        )
    with progress_bar(f"analysing with {settings.ai_model}", with_bytes=False) as bar:
        report = analyze_pending(
            store, settings, statuses=statuses, media_ids=media_ids, limit=args.limit,
            workers=args.workers or 1, progress=bar, client=client,
        )  # fmt: skip
    for failure in report.failures[:20]:
        warn(failure)
    summary.add_fields(report, ANALYZE_LABELS)
    print_summary(summary, output_format(args), args.quiet)
    report.failed += collected.failed
    if report.stopped:
        fail(report.stopped, EXIT_ITEMS_FAILED)
        return EXIT_ITEMS_FAILED
    if report.failed:
        warn(
            f"{report.failed} analyses failed: `python manage_media.py list --analysis-status failed` shows "
            "them; `python manage_media.py analyze --status failed` tries them again",
            even_quiet=True,
        )
    if media_ids and report.completed + report.failed == 0:
        warn(f"{args.media_id} was not analysed: it is not cached, or already analysed (use --force)")
        return EXIT_ITEMS_FAILED
    return EXIT_ITEMS_FAILED if report.failed else EXIT_OK


def _failed_exit(failed: int) -> int:
    if failed:
        warn(
            f"{failed} analyses failed: `python manage_media.py list --analysis-status failed` shows "
            "them; `python manage_media.py analyze --status failed` tries them again",
            even_quiet=True,
        )
    return EXIT_ITEMS_FAILED if failed else EXIT_OK


def submit_with_summary(
    args, settings, store, client, summary, statuses, media_ids, failed_before: int
) -> int:
    """`analyze --batch`: claim rows into Batch API batches and submit them."""
    from social_tui_media.jobs.analyze_batch import submit_batches
    from social_tui_media.media.batch_api import BatchApiError

    try:
        report = submit_batches(
            store, settings, client, statuses=statuses, media_ids=media_ids, limit=args.limit
        )
    except BatchApiError as error:
        then = (
            "its items went back to the queue"
            if error.definite
            else "the next `analyze --collect` finds out whether the batch was created, and collects it or "
            "sends its items back"
        )
        return fail(f"{error}; {then}", EXIT_ITEMS_FAILED)
    for failure in report.failures[:20]:
        warn(failure)
    summary.add("batches_submitted", "batches submitted", report.batches, len(report.batches))
    summary.add_fields(report, SUBMIT_LABELS)
    print_summary(summary, output_format(args), args.quiet)
    if report.batches:
        console.print(
            f"{report.batched} items wait in {len(report.batches)} batch(es), results within 24 h: "
            "`python manage_media.py analyze --collect` applies them"
        )
    return _failed_exit(report.failed + failed_before)


def cmd_archive(args, settings: Settings, store: MediaStore) -> int:
    from social_tui_media.jobs.archive import archivable_rows, archive_rows, plan_archive
    from social_tui_media.media.s3_archive import Archive

    if args.media_id and store.get_media(args.media_id) is None:
        raise UsageError(f"no media with id {args.media_id!r}")
    archive = Archive(settings)
    archive.check_access()  # no bucket, no credentials, missing bucket, denied: exit 2
    plan = plan_archive(store, archivable_rows(store, post_id=args.post_id, media_id=args.media_id))
    summary = summary_for("archive", settings, args.run_id)
    if args.dry_run:
        for group in plan.upload[:100]:
            first = group[0]
            console.print(
                f"  {first['media_id']}  {first.get('file_size') or 0:>12,} B  {first['local_file_path']}"
            )
        summary.add("dry_run", "dry run (nothing sent)", True)
        summary.add("files_to_upload", "files to upload", len(plan.upload))
        summary.add("bytes_to_upload", "bytes to upload", plan.upload_bytes)
        summary.add("rows_reusing", "rows that would reuse an archive copy", plan.rows_reusing)
        print_summary(summary, output_format(args), args.quiet)
        return EXIT_OK
    with progress_bar(f"archiving to s3://{archive.bucket}") as bar:
        report = archive_rows(store, archive, plan, progress=bar)
    for failure in report.failures[:20]:
        warn(failure)
    summary.add_fields(report, ARCHIVE_LABELS)
    print_summary(summary, output_format(args), args.quiet)
    if report.failed:
        warn(
            f"{report.failed} uploads failed: fix what the lines above say, then run "
            "`python manage_media.py archive --all`",
            even_quiet=True,
        )
    return EXIT_ITEMS_FAILED if report.failed else EXIT_OK


def cmd_url(args, settings: Settings, store: MediaStore) -> int:
    from social_tui_media.media.s3_archive import Archive

    row = store.get_media(args.media_id)
    if row is None:
        raise UsageError(f"no media with id {args.media_id!r}")
    if not row.get("archive_url"):
        raise UsageError(
            f"{args.media_id} is not archived yet: run `python manage_media.py archive --media-id {args.media_id}`"
        )
    try:
        url = Archive(settings).presigned_url(row["archive_url"], args.expires)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    # Recorded before it is handed out: a link the audit log does not hold is never printed.
    store.append_audit(
        [
            make_audit(
                "presigned_url", "url", args.media_id, row["archive_url"], {"expires_seconds": args.expires}
            )
        ]
    )
    print(url)
    return EXIT_OK


def cmd_setup_bucket(args, settings: Settings) -> int:
    from social_tui_media.media.s3_archive import Archive

    steps = list(Archive(settings).setup_bucket())
    for line in steps:
        console.print(line)
    summary = summary_for("setup-bucket", settings).add("steps", "done", steps)
    print_summary(summary, output_format(args), args.quiet)
    return EXIT_OK


def cmd_migrate(args, settings: Settings) -> int:
    url = settings.store_url
    summary = summary_for("migrate", settings)
    if url.startswith("sqlite:///"):
        open_store(settings).close()
        console.print("SQLite creates and updates its schema on first use: nothing to migrate.")
        print_summary(summary.add("applied", "applied", []), output_format(args), args.quiet)
        return EXIT_OK
    if not url.startswith(("postgres://", "postgresql://")):
        raise UsageError(
            "migrate needs a database URL: set SUPABASE_DB_URL (or DATABASE_URL) to the project's Postgres URL"
        )
    from social_tui_media.store.migrations import apply_pending

    try:
        report = apply_pending(url)
    except Exception as exc:  # psycopg errors: one line, the SQL error's first line; nothing was kept
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UsageError(f"migration failed, database unchanged: {first}") from None
    for migration in report.baseline:
        console.print(f"recorded {migration.version}_{migration.name} (already in the database)")
    for migration in report.applied:
        console.print(f"applied {migration.version}_{migration.name}")
    if not report.applied and not report.baseline:
        console.print("database is up to date: no pending migrations")
    summary.add("recorded", "recorded (already in the database)", [m.version for m in report.baseline])
    summary.add("applied", "applied", [m.version for m in report.applied])
    print_summary(summary, output_format(args), args.quiet)
    return EXIT_OK


def add_backfill_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start-date", type=iso_date, help="only posts posted on or after YYYY-MM-DD")
    parser.add_argument("--dry-run", action="store_true", help="report what is missing, write nothing")
    parser.add_argument("--limit", type=positive_int, help="backfill at most N posts")


def add_browse_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--post-id", help="media of one post")
    parser.add_argument("--author", help="part of the author's name or username")
    parser.add_argument(
        "--type", "--media-type", dest="media_type", choices=MEDIA_TYPES, help="one kind of media"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="manage_media.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_verbosity_options(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, summary: bool = True) -> argparse.ArgumentParser:
        """A subcommand with -q/-v after its name and, for a summary or listing, --format/--json."""
        p = sub.add_parser(name, help=help, description=help)
        add_verbosity_options(p, on_subcommand=True)
        if summary:
            add_format_options(p)
        return p

    p = command("list", "list media rows (filters combine)")
    p.add_argument("--post-id", help="media of one post")
    p.add_argument("--download-status", choices=DOWNLOAD_STATUSES, help="pending, downloaded or failed")
    p.add_argument("--analysis-status", choices=AI_STATUSES, help="not_started, started, completed or failed")
    p.add_argument("--media-type", "--type", choices=("image", "video", "document"), help="one kind of media")
    p.add_argument("--since", type=iso_date, help="rows created on or after YYYY-MM-DD")
    p.add_argument("--all", action="store_true", help="every media row (the default without filters)")
    p.add_argument("--status", choices=sorted(set(DOWNLOAD_STATUSES + AI_STATUSES)), help=argparse.SUPPRESS)

    p = command("show", "one media row with its analysis: description, tags, text in the image")
    p.add_argument("media_id", metavar="MEDIA_ID")

    p = command("stats", "counts by status, download and cache metrics, queues, storage, costs")
    p.add_argument("--since", type=iso_date, help="the window's first UTC day (default: 7 days ago)")
    p.add_argument("--by", choices=COST_GROUPS, help="list analysis cost by month, post or author instead")

    p = command("audit", "list the audit log: presigned URLs, exports, deleted files (who, when, why)")
    p.add_argument("--since", type=iso_date, help="entries on or after YYYY-MM-DD (UTC)")
    p.add_argument("--media-id", help="entries about one media row")

    p = command(
        "retain", "apply MEDIA_RETENTION_DAYS: remove old posts' files that have a verified archive copy"
    )
    p.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")

    p = command("download-all", "download every pending media slot (and retry transient failures)")
    p.add_argument("--retry-failed", action="store_true", help="also retry permanent failures (403/404/410)")
    p.add_argument("--workers", type=positive_int, help="parallel downloads (default MEDIA_MAX_CONCURRENT)")
    p.add_argument("--limit", type=positive_int, help="download at most N media")
    p.add_argument(
        "--extract-text", action="store_true", help="then extract the text of what is cached (OCR)"
    )

    p = command("extract-text", "read the text of cached media locally: OCR, PDF text, video frames; no API")
    p.add_argument("--media-id", help="one media row")
    p.add_argument("--limit", type=positive_int, help="extract at most N rows")
    p.add_argument("--workers", type=positive_int, help="parallel workers (default 1; OCR uses every core)")
    p.add_argument("--retry-failed", action="store_true", help="also take rows whose extraction failed")
    p.add_argument("--force", action="store_true", help="extract rows already done again")

    p = command("search", "search everything media say: post text, author, description, tags, text in them")
    p.add_argument(
        "query", metavar="QUERY", nargs="+",
        help="""words, "a phrase", -not, prefix* (quote a query that starts with -: 'keynote -aws')""",
    )  # fmt: skip
    p.add_argument("--media-type", "--type", choices=("image", "video", "document"), help="one kind of media")
    p.add_argument("--author", help="posts by this author (username or name)")
    p.add_argument("--since", type=iso_date, help="posts posted on or after YYYY-MM-DD")
    p.add_argument("--field", choices=("text", "description", "tags", "post"), help="match in one field only")
    p.add_argument(
        "--limit", type=bounded_limit, default=20, help="at most N hits (default 20, at most 1000)"
    )

    command("duplicates", "groups of identical and near-duplicate media, best copy first")

    p = command("verify-cache", "re-hash cached files; exit 1 while corruption remains")
    p.add_argument("--repair", action="store_true", help="restore or re-fetch missing and corrupt files")

    p = command("browse", "browse media in the terminal: thumbnails, analysis and posts", summary=False)
    p.add_argument(
        "query", metavar="QUERY", nargs="?", help="words in the analysis, the post's text or the author"
    )
    add_browse_filters(p)
    p.add_argument(
        "--image", choices=PROTOCOLS, default="auto",
        help="how thumbnails are drawn (default auto: Sixel or Kitty graphics where the terminal "
        "answers for them, else half-blocks); a protocol named here is not asked about",
    )  # fmt: skip

    p = command("export-gallery", "write a static gallery (index.html) or a Markdown report of media")
    p.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="folder to write (created if missing)")
    p.add_argument(
        "query", metavar="QUERY", nargs="?", help="words in the analysis, the post's text or the author"
    )
    add_browse_filters(p)
    p.add_argument(
        "--markdown", action="store_true", help="write report.md (with the files) instead of the pages"
    )

    command("thumbnails", "make every missing thumbnail (cache/media/thumbs/{md5}.webp)")

    p = command("backfill", "create media rows for stored posts that have none")
    add_backfill_arguments(p)

    p = command("analyze", "analyse cached media with the vision model")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--status", help="not_started, failed (same as --retry-failed) or completed (with --force)"
    )
    which.add_argument("--media-id", help="one media row")
    which.add_argument(
        "--collect",
        action="store_true",
        help="only apply the results of submitted batches (every run does first)",
    )
    p.add_argument(
        "--batch", action="store_true",
        help="submit through the OpenAI Batch API: half price, results within 24 h (default --status not_started)",
    )  # fmt: skip
    p.add_argument("--limit", type=positive_int, help="analyse at most N rows")
    p.add_argument("--workers", type=positive_int, help="parallel requests (default 1)")
    p.add_argument("--retry-failed", action="store_true", help="also take rows whose analysis failed")
    p.add_argument("--force", action="store_true", help="re-analyse rows already completed")
    p.add_argument("--dry-run", action="store_true", help="list what would be analysed, send nothing")

    p = command("archive", "upload cached media to the S3 archive, verified by MD5")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every cached row not yet archived")
    which.add_argument("--post-id", help="one post's media")
    which.add_argument("--media-id", help="one media row")
    p.add_argument("--dry-run", action="store_true", help="list what would be uploaded and the total bytes")

    p = command("url", "print a presigned GET URL for an archived media row", summary=False)
    p.add_argument("media_id", metavar="MEDIA_ID")
    p.add_argument(
        "--expires", type=positive_int, default=3600, help="seconds the URL stays valid (default 3600)"
    )

    command("setup-bucket", "create the archive bucket: private, encrypted")
    command("migrate", "apply pending PostgreSQL migrations")
    return parser


COMMANDS = {
    "list": cmd_list,
    "show": cmd_show,
    "stats": cmd_stats,
    "download-all": cmd_download_all,
    "extract-text": cmd_extract_text,
    "search": cmd_search,
    "duplicates": cmd_duplicates,
    "verify-cache": cmd_verify_cache,
    "backfill": cmd_backfill,
    "thumbnails": cmd_thumbnails,
    "browse": cmd_browse,
    "export-gallery": cmd_export_gallery,
    "analyze": cmd_analyze,
    "archive": cmd_archive,
    "url": cmd_url,
    "audit": cmd_audit,
    "retain": cmd_retain,
}


def dispatch(args: argparse.Namespace) -> int:
    settings, args.run_id = start_command(args)
    if args.command == "migrate":
        return cmd_migrate(args, settings)
    if args.command == "setup-bucket":
        return cmd_setup_bucket(args, settings)
    store = open_store(settings)
    try:
        return COMMANDS[args.command](args, settings, store)
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: dispatch(args))


def backfill_main(argv: list[str] | None = None) -> int:
    """`backfill_media.py`: the backfill command under the older scripts' name."""
    parser = argparse.ArgumentParser(
        prog="backfill_media.py", description="Create media rows for stored posts that have none."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_verbosity_options(parser)
    add_format_options(parser)
    add_backfill_arguments(parser)
    args = parser.parse_args(argv)
    args.command = "backfill"
    return run_command(lambda: dispatch(args))
