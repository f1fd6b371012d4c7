"""Manage post media: list, download, verify, archive, analyse and report.

Exit codes: 0 success, 1 the job ran but some items failed, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
from datetime import date
from typing import TYPE_CHECKING

from social_tui_media.jobs.verify import adopt_misplaced, mark_for_refetch, remove_strays, verify_cache
from social_tui_media.logs import configure_logging
from social_tui_media.media.cache import MediaCache
from social_tui_media.settings import Settings, load_settings
from social_tui_media.store import open_store
from social_tui_media.store.interface import AI_STATUSES, DOWNLOAD_STATUSES, MediaQuery, MediaStore

if TYPE_CHECKING:  # the downloader (requests) loads only for commands that download
    pass

from social_tui_media import __version__
from social_tui_media.cli.formats import FORMATS, print_rows
from social_tui_media.cli.output import (
    EXIT_ITEMS_FAILED,
    EXIT_OK,
    UsageError,
    console,
    fail,
    positive_int,
    print_json,
    progress_bar,
    run_command,
    show,
    table,
    warn,
)
from social_tui_media.cli.runs import download_with_progress, evict_if_needed

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
    print_rows(rows, LIST_COLUMNS, "json" if args.json else args.format, title=lambda count: f"{count} media")
    return EXIT_OK


def cmd_stats(args, settings: Settings, store: MediaStore) -> int:
    counts = store.media_counts()
    files, nbytes = MediaCache(settings.cache_dir).usage() if settings.cache_dir.is_dir() else (0, 0)
    counts.update(cache_files=files, cache_bytes=nbytes, cache_limit=settings.cache_limit)
    if args.json:
        print_json(counts)
        return EXIT_OK
    rows = [
        ["posts", counts["posts_total"]],
        ["media", counts["media_total"]],
        *[[f"download: {k}", v] for k, v in sorted(counts["by_download_status"].items())],
        *[[f"analysis: {k}", v] for k, v in sorted(counts["by_ai_status"].items())],
        ["uncached, URL expires within 48 h", counts["expiring_48h"]],
        ["archived", counts["archived"]],
        ["evicted from cache", counts["evicted"]],
        ["cache files", counts["cache_files"]],
        ["cache bytes", f"{nbytes:,} of {settings.cache_limit:,}"],
        [
            "analysis tokens (prompt/completion)",
            f"{counts['ai_prompt_tokens']:,} / {counts['ai_completion_tokens']:,}",
        ],
        ["analysis cost (estimated USD)", f"{counts['ai_cost_usd']:.4f}"],
    ]
    show(table("media stats", ["", "value"], rows))
    return EXIT_OK


def cmd_download_all(args, settings: Settings, store: MediaStore) -> int:
    report = download_with_progress(
        store, settings, retry_failed=args.retry_failed, limit=args.limit, workers=args.workers
    )
    evict_if_needed(store, settings)
    show(
        table(
            "download-all",
            ["", "count"],
            [
                ["downloaded", report.fetched],
                ["reused (no request)", report.reused],
                ["failed", report.failed],
                ["bytes fetched", f"{report.bytes:,}"],
            ],
        )
    )
    return EXIT_ITEMS_FAILED if report.failed else EXIT_OK


def cmd_verify_cache(args, settings: Settings, store: MediaStore) -> int:
    cache = MediaCache(settings.cache_dir)
    report = verify_cache(store, cache)
    if args.repair and (report.problems or report.moved or report.misplaced or report.stray):
        remove_strays(cache, report)
        adopt_misplaced(store, cache, report)
        queued = mark_for_refetch(store, cache, report)
        if queued:
            download_with_progress(store, settings, media_ids=queued, retry_failed=True)
        report = verify_cache(store, cache)
    if args.json:
        print_json(report.as_dict())
    else:
        rows = [
            ["rows checked", report.rows_checked],
            ["files re-hashed", report.files_checked],
            ["bytes re-hashed", f"{report.bytes_checked:,}"],
            ["missing files", len(report.missing)],
            ["corrupt files", len(report.corrupt)],
            ["rows pointing nowhere", len(report.dangling)],
            ["rows pointing outside the cache (never touched)", len(report.outside)],
            ["stray files (no row points at them)", len(report.stray)],
            ["files outside the cache layout", len(report.misplaced)],
        ]
        show(table("verify-cache", ["", "count"], rows))
        for row in report.problems[:50]:
            warn(
                f"{row['media_id']} ({row.get('local_file_path') or 'no file'}): needs repair; run `verify-cache --repair`"
            )
    if report.stray and not args.repair:
        warn(f"{len(report.stray)} files in the cache belong to no row: `verify-cache --repair` removes them")
    return EXIT_ITEMS_FAILED if report.problems else EXIT_OK


def cmd_backfill(args, settings: Settings, store: MediaStore) -> int:
    from social_tui_media.jobs.backfill import backfill_media

    report = backfill_media(store, start_date=args.start_date, limit=args.limit, dry_run=args.dry_run)
    for problem in report.problems:
        warn(problem)
    rows = [
        ["posts scanned", report.posts_scanned],
        ["posts missing media rows", report.posts_without_media],
        ["media found" + (" (dry run: nothing written)" if args.dry_run else ""), report.media_found],
    ]
    failed = 0
    if not args.dry_run and report.media_ids:
        downloads = download_with_progress(store, settings, media_ids=report.media_ids)
        rows += [
            ["downloaded", downloads.fetched],
            ["reused", downloads.reused],
            ["failed", downloads.failed],
        ]
        failed = downloads.failed
    show(table("backfill", ["", "count"], rows))
    return EXIT_ITEMS_FAILED if failed or report.problems else EXIT_OK


def cmd_analyze(args, settings: Settings, store: MediaStore) -> int:
    from social_tui_media.jobs.analyze import analyze_pending, claim_statuses, restore_evicted
    from social_tui_media.media.vision import make_client

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
    if args.dry_run:
        rows = store.analysis_candidates(statuses, media_ids)[: args.limit]
        console.print(f"would analyse {len(rows)} media with {settings.ai_model} (dry run: nothing sent)")
        for row in rows[:50]:
            console.print(f"  {row['media_id']}  {row['mime_type']}  {row['local_file_path']}")
        return EXIT_OK
    client = make_client(settings)  # AnalysisConfigError (no key) ends the command with exit 2
    with progress_bar(f"analysing with {settings.ai_model}", with_bytes=False) as bar:
        report = analyze_pending(
            store, settings, statuses=statuses, media_ids=media_ids, limit=args.limit,
            workers=args.workers or 1, progress=bar, client=client,
        )  # fmt: skip
    for failure in report.failures[:20]:
        warn(failure)
    rows = [
        ["completed", report.completed],
        ["failed", report.failed],
        ["tokens (prompt / completion)", f"{report.prompt_tokens:,} / {report.completion_tokens:,}"],
        ["estimated cost (USD)", f"{report.cost_usd:.4f}"],
    ]
    if report.lost:
        rows.append(["results dropped (lease taken over)", report.lost])
    if report.released:
        rows.append(["handed back uncharged (endpoint failed)", report.released])
    show(table("analyze", ["", "count"], rows))
    if report.stopped:
        fail(report.stopped, EXIT_ITEMS_FAILED)
        return EXIT_ITEMS_FAILED
    if media_ids and report.completed + report.failed == 0:
        warn(f"{args.media_id} was not analysed: it is not cached, or already analysed (use --force)")
        return EXIT_ITEMS_FAILED
    return EXIT_ITEMS_FAILED if report.failed else EXIT_OK


def cmd_archive(args, settings: Settings, store: MediaStore) -> int:
    from social_tui_media.jobs.archive import archivable_rows, archive_rows, plan_archive
    from social_tui_media.media.s3_archive import Archive

    if args.media_id and store.get_media(args.media_id) is None:
        raise UsageError(f"no media with id {args.media_id!r}")
    archive = Archive(settings)
    archive.check_access()  # no bucket, no credentials, missing bucket, denied: exit 2
    plan = plan_archive(store, archivable_rows(store, post_id=args.post_id, media_id=args.media_id))
    if args.dry_run:
        for group in plan.upload[:100]:
            first = group[0]
            console.print(
                f"  {first['media_id']}  {first.get('file_size') or 0:>12,} B  {first['local_file_path']}"
            )
        console.print(
            f"would upload {len(plan.upload)} files ({plan.upload_bytes:,} bytes) to s3://{archive.bucket}; "
            f"{plan.rows_reusing} rows would reuse an existing archive copy (dry run: nothing sent)"
        )
        return EXIT_OK
    with progress_bar(f"archiving to s3://{archive.bucket}") as bar:
        report = archive_rows(store, archive, plan, progress=bar)
    for failure in report.failures[:20]:
        warn(failure)
    show(
        table(
            "archive",
            ["", "count"],
            [
                ["files uploaded", report.uploaded],
                ["rows reusing an archive copy", report.reused],
                ["failed", report.failed],
                ["bytes uploaded", f"{report.bytes:,}"],
            ],
        )
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
    print(url)
    return EXIT_OK


def cmd_setup_bucket(args, settings: Settings) -> int:
    from social_tui_media.media.s3_archive import Archive

    for line in Archive(settings).setup_bucket():
        console.print(line)
    return EXIT_OK


def cmd_migrate(args, settings: Settings) -> int:
    url = settings.store_url
    if url.startswith("sqlite:///"):
        open_store(settings).close()
        console.print("SQLite creates and updates its schema on first use: nothing to migrate.")
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
    return EXIT_OK


def add_backfill_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start-date", type=iso_date, help="only posts posted on or after YYYY-MM-DD")
    parser.add_argument("--dry-run", action="store_true", help="report what is missing, write nothing")
    parser.add_argument("--limit", type=positive_int, help="backfill at most N posts")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="manage_media.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list media rows (filters combine)")
    p.add_argument("--post-id", help="media of one post")
    p.add_argument("--download-status", choices=DOWNLOAD_STATUSES, help="pending, downloaded or failed")
    p.add_argument("--analysis-status", choices=AI_STATUSES, help="not_started, started, completed or failed")
    p.add_argument("--media-type", "--type", choices=("image", "video", "document"), help="one kind of media")
    p.add_argument("--since", type=iso_date, help="rows created on or after YYYY-MM-DD")
    p.add_argument("--all", action="store_true", help="every media row (the default without filters)")
    p.add_argument("--status", choices=sorted(set(DOWNLOAD_STATUSES + AI_STATUSES)), help=argparse.SUPPRESS)
    p.add_argument("--format", choices=FORMATS, help="table on a terminal, else tsv (one line per row)")
    p.add_argument("--json", action="store_true", help="the same as --format json")

    p = sub.add_parser("stats", help="counts by status, cache usage, expiring URLs, analysis cost")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("download-all", help="download every pending media slot")
    p.add_argument("--retry-failed", action="store_true", help="also retry permanent failures (403/404/410)")
    p.add_argument("--workers", type=positive_int)
    p.add_argument("--limit", type=positive_int)

    p = sub.add_parser("verify-cache", help="re-hash cached files; exit 1 while corruption remains")
    p.add_argument("--repair", action="store_true", help="restore or re-fetch missing and corrupt files")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("backfill", help="create media rows for stored posts that have none")
    add_backfill_arguments(p)

    p = sub.add_parser("analyze", help="analyse cached media with the vision model")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--status", help="not_started, failed (same as --retry-failed) or completed (with --force)"
    )
    which.add_argument("--media-id", help="one media row")
    p.add_argument("--limit", type=positive_int, help="analyse at most N rows")
    p.add_argument("--workers", type=positive_int, help="parallel requests (default 1)")
    p.add_argument("--retry-failed", action="store_true", help="also take rows whose analysis failed")
    p.add_argument("--force", action="store_true", help="re-analyse rows already completed")
    p.add_argument("--dry-run", action="store_true", help="list what would be analysed, send nothing")

    p = sub.add_parser("archive", help="upload cached media to the S3 archive, verified by MD5")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every cached row not yet archived")
    which.add_argument("--post-id", help="one post's media")
    which.add_argument("--media-id", help="one media row")
    p.add_argument("--dry-run", action="store_true", help="list what would be uploaded and the total bytes")

    p = sub.add_parser("url", help="print a presigned GET URL for an archived media row")
    p.add_argument("media_id", metavar="MEDIA_ID")
    p.add_argument(
        "--expires", type=positive_int, default=3600, help="seconds the URL stays valid (default 3600)"
    )

    sub.add_parser("setup-bucket", help="create the archive bucket: private, encrypted")

    sub.add_parser("migrate", help="apply pending PostgreSQL migrations")
    return parser


COMMANDS = {
    "list": cmd_list,
    "stats": cmd_stats,
    "download-all": cmd_download_all,
    "verify-cache": cmd_verify_cache,
    "backfill": cmd_backfill,
    "analyze": cmd_analyze,
    "archive": cmd_archive,
    "url": cmd_url,
}


def dispatch(args: argparse.Namespace) -> int:
    settings = load_settings()
    configure_logging(settings.log_file, sentry_dsn=settings.sentry_dsn)
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
    add_backfill_arguments(parser)
    args = parser.parse_args(argv)
    args.command = "backfill"
    return run_command(lambda: dispatch(args))
