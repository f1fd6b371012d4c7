"""Import scraped LinkedIn post files: `python manage_data.py import DIR [--no-media] [--workers N]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from social_tui_media import __version__
from social_tui_media.cli.output import (
    EXIT_ITEMS_FAILED,
    EXIT_OK,
    UsageError,
    positive_int,
    progress_bar,
    run_command,
    show,
    table,
    warn,
)
from social_tui_media.cli.runs import evict_if_needed, warn_download_failures
from social_tui_media.jobs.import_posts import import_path, import_with_downloads
from social_tui_media.logs import configure_logging
from social_tui_media.settings import load_settings
from social_tui_media.store import open_store


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="manage_data.py", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import", help="import every *.json in DIR, then download its media")
    imp.add_argument("directory", metavar="DIR", help="directory of scraped post JSON files (or one file)")
    imp.add_argument("--no-media", action="store_true", help="store media rows but download nothing")
    imp.add_argument("--workers", type=positive_int, help="parallel downloads (default MEDIA_MAX_CONCURRENT)")
    return parser


def cmd_import(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    if not directory.exists():
        raise UsageError(f"{directory} does not exist: pass a directory of scraped post JSON files")
    settings = load_settings()
    run_id = configure_logging(settings.log_file, sentry_dsn=settings.sentry_dsn)  # one id: log, row, summary
    store = open_store(settings)
    try:
        if args.no_media:
            report, downloads = import_path(store, directory, new_run_id=run_id), None
        else:
            with progress_bar("downloading media") as bar:
                report, downloads = import_with_downloads(
                    store, settings, directory, args.workers, bar, run_id
                )
            warn_download_failures(downloads)
        for problem in report.problems:
            warn(problem)
        rows = [
            ["run", report.run_id],
            ["source", str(directory)],
            ["files", report.files],
            ["posts imported", report.posts_processed],
            ["new posts", report.posts_new],
            ["updated posts", report.posts_updated],
            ["media slots", report.media_total],
            ["new media slots", report.media_new],
            ["skipped items", report.skipped],
        ]
        failed = 0
        if downloads is not None:
            rows += [
                ["media downloaded", downloads.fetched],
                ["media reused (no request)", downloads.reused + len(report.media_ids) - downloads.attempted],
                ["media failed", downloads.failed],
                ["bytes fetched", f"{downloads.bytes:,}"],
            ]
            failed = downloads.failed
            evict_if_needed(store, settings)
        show(table("import", ["", "count"], rows))
        return EXIT_ITEMS_FAILED if report.skipped or failed else EXIT_OK
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: cmd_import(args))
