"""What the CLIs share: a stderr console, progress bars, one-line errors and exit codes.
Only `manage_*.py` and `backfill_media.py` use this; library modules never print.

Data (URNs, URLs, paths, ids, error text) is never rich markup: the console reads none unless a
helper here asks, and those helpers escape the data they are given."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from social_tui_media.settings import ConfigError

EXIT_OK, EXIT_ITEMS_FAILED, EXIT_USAGE = 0, 1, 2

console = Console(stderr=True, highlight=False, markup=False, emoji=False)  # plain text unless asked


def positive_int(text: str) -> int:
    """argparse type for counts: a whole number above zero."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than zero")
    return value


class UsageError(Exception):
    """Bad usage or configuration: one line, exit 2."""


def fail(message: str, code: int = EXIT_USAGE) -> int:
    """One red `error:` line; `message` is text, printed as it is."""
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, markup=True)
    return code


def warn(message: str) -> None:
    """One yellow `warning:` line; `message` is text, printed as it is."""
    console.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True, markup=True, highlight=False)


def print_json(document: Any) -> None:
    """The one JSON document a `--json` command prints on stdout."""
    sys.stdout.write(json.dumps(document, indent=2, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    """A table whose title, headers and cells are plain text on any console."""
    out = Table(title=Text(title), title_justify="left", header_style="bold")
    for column in columns:
        out.add_column(Text(column), overflow="fold")
    for row in rows:
        out.add_row(*(Text("" if v is None else str(v)) for v in row))
    return out


def show(renderable: Any) -> None:
    """Tables for people go to the terminal (stderr), keeping stdout for data."""
    console.print(renderable)


class BarProgress:
    """A rich progress bar (items, bytes, rate, ETA) fed by library callbacks."""

    def __init__(self, progress: Progress, description: str):
        self._progress = progress
        self._task = progress.add_task(description, total=0, bytes_done=0)
        self._items = 0
        self._bytes = 0

    def add_total(self, items: int) -> None:
        total = (self._progress.tasks[self._task].total or 0) + items
        self._progress.update(self._task, total=total)

    def advance(self, items: int, nbytes: int) -> None:
        self._items += items
        self._bytes += nbytes
        self._progress.update(self._task, advance=items, bytes_done=self._bytes)


@contextmanager
def progress_bar(description: str, with_bytes: bool = True) -> Iterator[BarProgress]:
    """A progress bar on the terminal; silent when stderr is not a terminal (cron, pipes)."""
    columns: list[Any] = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
    ]
    if with_bytes:
        columns += [TextColumn("{task.fields[bytes_done]:,} B"), TransferSpeedColumn()]
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    progress = Progress(*columns, console=console, transient=False, disable=not console.is_terminal)
    with progress:
        yield BarProgress(progress, escape(description))  # the description column reads markup


def run_command(handler: Callable[[], int]) -> int:
    """Run a command; expected failures become one red line and exit 2, never a traceback."""
    from social_tui_media.store.interface import StoreError, StoreFull

    try:
        return handler()
    except StoreFull as exc:  # the job ran but could not record its work: items failed, not usage
        return fail(str(exc), EXIT_ITEMS_FAILED)
    except (UsageError, ConfigError, StoreError) as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return fail("interrupted; claimed items will be picked up by the next run", 130)
