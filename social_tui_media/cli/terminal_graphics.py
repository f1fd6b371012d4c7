"""What the terminal can draw a picture with, asked once before Textual owns it.

textual-image asks on import, one question at a time with a 0.1 s wait each (Sixel, then Kitty
graphics, then the cell size): in tmux, in most terminals without Kitty graphics and over a slow
SSH link that is 0.1–0.3 s before anything can be drawn, and a link slower than 0.1 s gets the
wrong answer. Here every question goes out in one write followed by the primary device
attributes request (DA1), which every VT100-like terminal, tmux included, answers, and always
last: once its answer is in, a question not answered yet will not be. One round trip, waited for
on a thread while Python loads Textual (`probe_in_background`).

Only the standard library here: this runs before the browser's modules are imported.
"""

from __future__ import annotations

import os
import re
import select
import sys
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

PROTOCOLS = ("auto", "kitty", "sixel", "halfblock", "unicode")
PROBE_SECONDS = 0.3  # at most, for a terminal that answers nothing (textual-image's three waits)
DEFAULT_CELL_SIZE = (10, 20)  # a VT340's cell, textual-image's own guess when nothing answers

# Kitty's graphics protocol: "query" an image (a=q) of one pixel; a terminal that has the protocol
# answers OK (or an error) for id 31 without drawing anything.
KITTY_QUERY = b"\x1b_Gi=31,s=1,v=1,a=q,t=d,f=24;AAAA\x1b\\"
CELL_SIZE_QUERY = b"\x1b[16t"  # answered as ESC [ 6 ; height ; width t (pixels)
DEVICE_ATTRIBUTES_QUERY = b"\x1b[c"  # answered as ESC [ ? 62 ; 4 ; … c  (4: Sixel)

KITTY_ANSWER = re.compile(rb"\x1b_Gi=31;([^\x1b]*)\x1b\\")
CELL_SIZE_ANSWER = re.compile(rb"\x1b\[6;(\d+);(\d+)t")
DEVICE_ATTRIBUTES_ANSWER = re.compile(rb"\x1b\[\?([\d;]*)c")
SIXEL_ATTRIBUTE = "4"


@dataclass(frozen=True)
class TerminalAnswers:
    """What a terminal said to the questions: nothing is False/None."""

    device_attributes: tuple[str, ...] | None = None  # None: DA1 not answered
    kitty_graphics: bool = False
    cell_size: tuple[int, int] | None = None  # (width, height) of a cell in pixels


@dataclass(frozen=True)
class TerminalGraphics:
    """How the preview draws: `protocol` is kitty, sixel, halfblock or unicode; `cell_size` is a
    cell's (width, height) in pixels, None off a terminal (nothing to size for)."""

    protocol: str
    cell_size: tuple[int, int] | None = None


def parse_answers(data: bytes) -> TerminalAnswers:
    """The answers in what the terminal sent back (other bytes, such as keys pressed, ignored)."""
    attributes = DEVICE_ATTRIBUTES_ANSWER.search(data)
    kitty = KITTY_ANSWER.search(data)
    cell = CELL_SIZE_ANSWER.search(data)
    return TerminalAnswers(
        device_attributes=tuple(attributes.group(1).decode().split(";")) if attributes else None,
        kitty_graphics=bool(kitty and kitty.group(1) == b"OK"),
        cell_size=_positive(int(cell.group(2)), int(cell.group(1))) if cell else None,
    )


def choose_protocol(wanted: str, on_terminal: bool, answers: TerminalAnswers) -> str:
    """The protocol to draw with: the one asked for, else the best the terminal answered for, in
    textual-image's order (Sixel, then Kitty: terminals that report both draw Sixel right), else
    half-blocks on a terminal and plain Unicode off one."""
    if wanted != "auto":
        return wanted
    if not on_terminal:
        return "unicode"
    if SIXEL_ATTRIBUTE in (answers.device_attributes or ()):
        return "sixel"
    return "kitty" if answers.kitty_graphics else "halfblock"


def fallback_cell_size(environ: Mapping[str, str]) -> tuple[int, int]:
    """A cell's size when the terminal does not say: textual-serve's variables, else a VT340's."""
    width, height = environ.get("TEXTUAL_CELL_WIDTH", ""), environ.get("TEXTUAL_CELL_HEIGHT", "")
    if width.isdigit() and height.isdigit() and int(width) and int(height):
        return int(width), int(height)
    return DEFAULT_CELL_SIZE


def window_cell_size(fd: int) -> tuple[int, int] | None:
    """A cell's size from the window size the terminal gave the kernel (no round trip), when
    it gave pixels."""
    import fcntl
    import struct
    import termios

    try:
        rows, columns, width, height = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return None
    return _positive(width // columns, height // rows) if rows and columns else None


def ask_terminal(fd_in: int, fd_out: int, questions: bytes, timeout: float = PROBE_SECONDS) -> bytes:
    """Write `questions` and DA1, and read until DA1's answer (or `timeout`): what came back,
    nothing when the terminal cannot be asked. Echo and line buffering are off meanwhile, so no
    answer shows on the screen."""
    import termios
    import tty

    try:
        before = termios.tcgetattr(fd_in)
    except termios.error:
        return b""
    data = b""
    tty.setcbreak(fd_in, termios.TCSANOW)
    try:
        os.write(fd_out, questions + DEVICE_ATTRIBUTES_QUERY)
        deadline = time.monotonic() + timeout
        while not DEVICE_ATTRIBUTES_ANSWER.search(data):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd_in], [], [], left)[0]:
                break
            chunk = os.read(fd_in, 1024)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass  # the terminal went away: what came back so far
    finally:
        termios.tcsetattr(fd_in, termios.TCSANOW, before)
    return data


def probe_terminal(wanted: str = "auto", timeout: float = PROBE_SECONDS) -> TerminalGraphics:
    """How to draw on this process's terminal. A protocol asked for is not asked about; the cell
    size is asked only when the kernel's window size has no pixels; off a terminal, nothing is
    asked."""
    stdin, stdout = sys.__stdin__, sys.__stdout__
    if stdout is None or not stdout.isatty():
        return TerminalGraphics(choose_protocol(wanted, False, TerminalAnswers()))
    answers = TerminalAnswers()
    can_ask = os.name == "posix" and stdin is not None and stdin.isatty()
    cell_size = window_cell_size(stdout.fileno()) if os.name == "posix" else None
    questions = (KITTY_QUERY if wanted == "auto" else b"") + (b"" if cell_size else CELL_SIZE_QUERY)
    if questions and can_ask:
        answers = parse_answers(ask_terminal(stdin.fileno(), stdout.fileno(), questions, timeout))
    cell_size = cell_size or answers.cell_size or fallback_cell_size(os.environ)
    return TerminalGraphics(choose_protocol(wanted, True, answers), cell_size)


def probe_in_background(wanted: str = "auto") -> Future[TerminalGraphics]:
    """`probe_terminal` on a thread: its wait for the terminal overlaps the caller's imports.
    Take the result before anything else reads the keyboard or draws."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="terminal-probe")
    try:
        return pool.submit(probe_terminal, wanted)
    finally:
        pool.shutdown(wait=False)


def _positive(width: int, height: int) -> tuple[int, int] | None:
    return (width, height) if width > 0 and height > 0 else None
