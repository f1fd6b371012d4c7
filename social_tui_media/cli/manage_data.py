"""Import scraped LinkedIn post files: `python manage_data.py import DIR [--no-media] [--workers N]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from social_tui_media import __version__
from social_tui_media.cli.formats import add_format_options, output_format, print_summary
from social_tui_media.cli.output import (
    EXIT_ITEMS_FAILED,
    EXIT_OK,
    UsageError,
    add_verbosity_options,
    positive_int,
    progress_bar,
    run_command,
    warn,
)
from social_tui_media.cli.runs import (
    EXTRACTION_LABELS,
    add_download_lines,
    evict_if_needed,
    extract_text_with_progress,
    ocr_engine,
    start_command,
    summary_for,
    warn_download_failures,
)
from social_tui_media.jobs.import_posts import import_path, import_with_downloads
from social_tui_media.store import open_store

IMPORT_LABELS = {
    "files": "files",
    "posts_processed": "posts imported",
    "posts_new": "new posts",
    "posts_updated": "updated posts",
    "media_total": "media slots",
    "media_new": "new media slots",
    "skipped": "skipped items",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="manage_data.py", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_verbosity_options(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import", help="import every *.json in DIR, then download its media")
    add_verbosity_options(imp, on_subcommand=True)
    add_format_options(imp)
    imp.add_argument("directory", metavar="DIR", help="directory of scraped post JSON files (or one file)")
    imp.add_argument("--no-media", action="store_true", help="store media rows but download nothing")
    imp.add_argument("--workers", type=positive_int, help="parallel downloads (default MEDIA_MAX_CONCURRENT)")
    imp.add_argument(
        "--extract-text",
        action="store_true",
        help="then extract the text of the downloaded media (local OCR)",
    )
    return parser


def cmd_import(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    if not directory.exists():
        raise UsageError(f"{directory} does not exist: pass a directory of scraped post JSON files")
    if args.extract_text and args.no_media:
        raise UsageError("--extract-text needs the media downloaded: leave out --no-media")
    settings, run_id = start_command(args)
    engine = ocr_engine() if args.extract_text else None  # a missing engine: exit 2 before any work
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
        summary = summary_for("import", settings, report.run_id or run_id)
        summary.add("source", "source", str(directory))
        summary.add_fields(report, IMPORT_LABELS)
        failed = 0
        if downloads is not None:
            add_download_lines(summary, downloads, len(report.media_ids) - downloads.attempted)
            failed = downloads.failed
            if engine is not None:
                extracted = extract_text_with_progress(store, settings, engine=engine)
                summary.add_fields(extracted, EXTRACTION_LABELS)
                failed += extracted.failed
            evict_if_needed(store, settings)
        print_summary(summary, output_format(args), args.quiet)
        if report.skipped:
            warn(
                f"{report.skipped} items were skipped or cleaned: each has a line above and in {settings.log_file}",
                even_quiet=True,
            )
        return EXIT_ITEMS_FAILED if report.skipped or failed else EXIT_OK
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: cmd_import(args))
