"""Scrape files read and prepared for the store a batch at a time: here, or, when the input is
large, in a process of its own, so that reading, parsing and cleaning the next posts overlaps
writing the last ones (which stays in the caller's process, with its database connection).

Both ways give the same batches and the same problem lines in the same order.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from social_tui_media.posts.files import iter_posts
from social_tui_media.posts.records import PreparedPost, prepare_post

log = logging.getLogger(__name__)
FIRST_BATCH_POSTS = 100  # small, so downloads can start while later batches are read
BATCH_POSTS = 1000
PARALLEL_ABOVE_BYTES = 8 * 1024 * 1024  # input larger than this is read in a process of its own


class PostReaderError(RuntimeError):
    """The reading process failed or vanished; the message says how."""


@dataclass
class ReadBatch:
    posts: list[PreparedPost]
    problems: list[str] = field(default_factory=list)  # what preparing these posts found, in order


def input_bytes(paths: list[Path]) -> int:
    """The size of the input, as far as it can be told (unreadable files count nothing)."""
    total = 0
    for path in paths:
        try:
            total += path.stat().st_size
        except OSError:
            pass
    return total


def read_batches(
    paths: list[Path], read_problems: list[str], parallel: bool | None = None
) -> Iterator[ReadBatch]:
    """The files' posts, prepared, a batch at a time (the first small). `read_problems` gets the
    lines about the files themselves once the batches are done. `parallel`: read in a process
    of its own (None: when the input is larger than PARALLEL_ABOVE_BYTES)."""
    if parallel is None:
        parallel = input_bytes(paths) > PARALLEL_ABOVE_BYTES
    return _from_reader_process(paths, read_problems) if parallel else _batches(paths, read_problems)


def _batches(paths: list[Path], read_problems: list[str]) -> Iterator[ReadBatch]:
    posts = iter_posts(paths, read_problems)
    size = FIRST_BATCH_POSTS
    while loaded := list(islice(posts, size)):
        problems: list[str] = []
        yield ReadBatch([prepare_post(post, problems) for post in loaded], problems)
        size = BATCH_POSTS


def reader_main() -> None:
    """The reading process (`python -m social_tui_media.posts.reader`): the paths arrive
    pickled on stdin; every batch, then the files' problem lines (or why it failed), leave
    pickled on stdout. A full pipe makes it wait: it is never more than a batch ahead."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the writer, which ends this process
    paths = pickle.load(sys.stdin.buffer)
    out = sys.stdout.buffer
    read_problems: list[str] = []
    try:
        for batch in _batches(paths, read_problems):
            pickle.dump(("batch", batch), out, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.dump(("done", read_problems), out)
    except Exception as exc:  # noqa: BLE001 - passed on whole to the writer, which raises it
        pickle.dump(("failed", f"{exc.__class__.__name__}: {exc}"), out)
    out.flush()


def _from_reader_process(paths: list[Path], read_problems: list[str]) -> Iterator[ReadBatch]:
    """A process of its own, started afresh (nothing of this one, nor its caller's script, runs
    again in it)."""
    package_root = str(Path(__file__).resolve().parents[2])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, (package_root, os.environ.get("PYTHONPATH")))),
    }
    command = [sys.executable, "-m", __name__]
    try:
        started = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
        )
    except OSError as exc:
        raise PostReaderError(
            f"cannot start the process reading the post files ({sys.executable}): {exc}"
        ) from None
    with started as reader:
        log.debug("reading %d file(s) in process %s", len(paths), reader.pid)
        try:
            reader.stdin.write(pickle.dumps(paths))
            reader.stdin.close()
            while True:
                kind, value = _next_message(reader)
                if kind == "batch":
                    yield value
                elif kind == "done":
                    read_problems.extend(value)
                    return
                else:
                    raise PostReaderError(f"reading the post files failed: {value}")
        finally:
            if reader.poll() is None:
                reader.kill()


def _next_message(reader: subprocess.Popen) -> tuple[str, object]:
    try:
        return pickle.load(reader.stdout)
    except (EOFError, pickle.UnpicklingError, OSError):
        raise PostReaderError(
            f"the process reading the post files ended unexpectedly (exit code {reader.wait()})"
        ) from None


if __name__ == "__main__":  # run by its own name, so what it pickles names this module, not __main__
    import social_tui_media.posts.reader

    social_tui_media.posts.reader.reader_main()
