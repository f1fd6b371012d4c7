"""What the CLIs share: a stderr console, progress bars, one-line errors and exit codes.
Only `manage_*.py` and `backfill_media.py` use this; library modules never print.

Data (URNs, URLs, paths, ids, error text) is never rich markup: the console reads none unless a
helper here asks, and those helpers escape the data they are given."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich import filesize
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from social_tui_media.settings import ConfigError

EXIT_OK, EXIT_ITEMS_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_BROKEN_PIPE = 141  # what a shell reports for a tool that SIGPIPE ended

# Plain text unless a helper asks; a line is never folded (a piped log line stays one line).
console = Console(stderr=True, highlight=False, markup=False, emoji=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, markup=False, emoji=False, soft_wrap=True)  # `-q` spares it


def add_verbosity_options(parser: argparse.ArgumentParser, on_subcommand: bool = False) -> None:
    """`-q` (errors only) and `-v`/`-vv` (the log on stderr), before or after the command name."""
    unset = argparse.SUPPRESS if on_subcommand else None  # a subcommand's absent flag keeps the main one's
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=unset or False,
        help="errors only: no progress, warnings or summary (a --format still prints)",
    )
    group.add_argument(
        "-v", "--verbose", action="count", default=unset or 0,
        help="also print the log on stderr (-vv: debug detail)",
    )  # fmt: skip


def apply_verbosity(args: argparse.Namespace) -> int | None:
    """Silence diagnostics for `-q`; the log level `-v`/`-vv` asks for on stderr (None: none)."""
    console.quiet = bool(getattr(args, "quiet", False))
    verbose = getattr(args, "verbose", 0) or 0
    return None if not verbose else (logging.INFO if verbose == 1 else logging.DEBUG)


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
    errors.print(f"[bold red]error:[/] {escape(message)}", markup=True)
    return code


def warn(message: str, even_quiet: bool = False) -> None:
    """One yellow `warning:` line; `message` is text, printed as it is. `even_quiet` for the
    one line that says items failed and what to run: `-q` keeps it."""
    out = errors if even_quiet else console
    out.print(f"[yellow]warning:[/] {escape(message)}", markup=True)


class BytesColumn(ProgressColumn):
    """Bytes moved so far and their rate, from the task's `bytes_done` field (the bar counts items)."""

    def render(self, task: Task) -> Text:
        done = task.fields.get("bytes_done", 0)
        elapsed = task.finished_time if task.finished else task.elapsed
        rate = done / elapsed if elapsed else 0
        return Text(
            f"{filesize.decimal(done)} at {filesize.decimal(int(rate))}/s", style="progress.data.speed"
        )


class BarProgress:
    """A rich progress bar fed by library callbacks: items against their total, bytes apart."""

    def __init__(self, progress: Progress, description: str):
        self._progress = progress
        self._task = progress.add_task(description, total=None, bytes_done=0)
        self._bytes = 0

    def expect(self, items: int | None) -> None:
        """The run's item count once known; None keeps the bar indeterminate."""
        self._progress.update(self._task, total=items)

    def advance(self, items: int, nbytes: int) -> None:
        self._bytes += nbytes
        self._progress.update(self._task, advance=items, bytes_done=self._bytes)


@contextmanager
def progress_bar(description: str, with_bytes: bool = True) -> Iterator[BarProgress]:
    """A progress bar on the terminal; silent when stderr is not a terminal (cron, pipes) or
    with `-q`."""
    columns: list[Any] = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
    ]
    if with_bytes:
        columns.append(BytesColumn())
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    disabled = console.quiet or not console.is_terminal
    progress = Progress(*columns, console=console, transient=False, disable=disabled)
    with progress:
        yield BarProgress(progress, escape(description))  # the description column reads markup


def run_command(handler: Callable[[], int]) -> int:
    """Run a command; expected failures become one red line and exit 2, never a traceback."""
    from social_tui_media.posts.reader import PostReaderError
    from social_tui_media.store.interface import StoreError, StoreFull

    try:
        return handler()
    except (StoreFull, PostReaderError) as exc:  # the job ran but could not finish its work: not usage
        return fail(str(exc), EXIT_ITEMS_FAILED)
    except (UsageError, ConfigError, StoreError) as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return fail("interrupted; claimed items will be picked up by the next run", 130)
    except BrokenPipeError:  # `| head` stopped reading: stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return EXIT_BROKEN_PIPE
