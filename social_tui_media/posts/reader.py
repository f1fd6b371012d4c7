"""Scrape files read and prepared for the store a batch at a time: here, or, when the input is
large, in a process of its own, so that reading, parsing and cleaning the next posts overlaps
writing the last ones (which stays in the caller's process, with its database connection).

Both ways give the same batches and the same problem lines in the same order.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from multiprocessing.process import BaseProcess
from pathlib import Path

from social_tui_media.posts.files import iter_posts
from social_tui_media.posts.records import PreparedPost, prepare_post

log = logging.getLogger(__name__)
FIRST_BATCH_POSTS = 100  # small, so downloads can start while later batches are read
BATCH_POSTS = 1000
PARALLEL_ABOVE_BYTES = 8 * 1024 * 1024  # input larger than this is read in a process of its own
QUEUED_BATCHES = 2  # batches the reader may be ahead of the writer: memory stays flat
WAIT_SECONDS = 1.0  # how often a waiting writer checks that the reader is still there


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


def _read_into(paths: list[Path], batches: multiprocessing.Queue) -> None:
    """The reading process: every batch, then the files' problem lines (or why it failed)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the writer, which stops this process
    read_problems: list[str] = []
    try:
        for batch in _batches(paths, read_problems):
            batches.put(("batch", batch))
        batches.put(("done", read_problems))
    except Exception as exc:  # noqa: BLE001 - passed on whole to the writer, which raises it
        batches.put(("failed", f"{exc.__class__.__name__}: {exc}"))


def _from_reader_process(paths: list[Path], read_problems: list[str]) -> Iterator[ReadBatch]:
    context = multiprocessing.get_context("spawn")  # nothing of this process (threads, connections) is copied
    batches = context.Queue(maxsize=QUEUED_BATCHES)
    reader = context.Process(target=_read_into, args=(paths, batches), name="post-reader", daemon=True)
    reader.start()
    log.debug("reading %d file(s) in process %s", len(paths), reader.pid)
    try:
        while True:
            kind, value = _next_message(batches, reader)
            if kind == "batch":
                yield value
            elif kind == "done":
                read_problems.extend(value)
                return
            else:
                raise PostReaderError(f"reading the post files failed: {value}")
    finally:
        if reader.is_alive():
            reader.terminate()
        reader.join()
        batches.close()


def _next_message(batches: multiprocessing.Queue, reader: BaseProcess) -> tuple[str, object]:
    while True:
        try:
            return batches.get(timeout=WAIT_SECONDS)
        except queue.Empty:
            if not reader.is_alive():
                raise PostReaderError(
                    f"the process reading the post files ended unexpectedly (exit code {reader.exitcode})"
                ) from None
