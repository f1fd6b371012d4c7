"""Create media rows for stored posts that have none: the same as `manage_media.py backfill`."""

from __future__ import annotations

import argparse
import sys

import manage_media


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="backfill_media.py", description=__doc__)
    manage_media.add_backfill_arguments(parser)
    args = parser.parse_args(argv)
    args.command = "backfill"
    return manage_media.run_command(lambda: manage_media.dispatch(args))


if __name__ == "__main__":
    sys.exit(main())
