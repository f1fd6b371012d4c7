"""Asking the terminal what it can draw: the probe runs in a child process on a pseudo-terminal
whose other end is a scripted terminal here, which answers the questions it recognises in the
order they came, as a real one does (or answers nothing)."""

from __future__ import annotations

import fcntl
import json
import os
import select
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass

import pytest

from social_tui_media.cli.terminal_graphics import (
    CELL_SIZE_QUERY,
    DEVICE_ATTRIBUTES_QUERY,
    KITTY_QUERY,
    PROBE_SECONDS,
    TerminalAnswers,
    choose_protocol,
    fallback_cell_size,
    parse_answers,
)
from tests.conftest import ROOT

PROBE = """
import json, sys, time
from social_tui_media.cli.terminal_graphics import probe_terminal
started = time.perf_counter()
graphics = probe_terminal(sys.argv[1])
seconds = time.perf_counter() - started
print(json.dumps({"protocol": graphics.protocol, "cell_size": graphics.cell_size, "seconds": seconds}),
      file=sys.stderr)
"""

# What `hand_over_graphics` promises: textual-image's widgets load afterwards without a question.
HAND_OVER = """
import json, sys, time
from social_tui_media.cli.browse import hand_over_graphics
from social_tui_media.cli.terminal_graphics import TerminalGraphics
hand_over_graphics(TerminalGraphics("halfblock", (9, 18)))
started = time.perf_counter()
import textual_image.widget
from textual_image._terminal import get_cell_size
seconds = time.perf_counter() - started
print(json.dumps({"cell_size": list(get_cell_size()), "seconds": seconds}), file=sys.stderr)
"""


@dataclass
class ScriptedTerminal:
    """A terminal's answers: None for a question it does not know (it stays silent)."""

    device_attributes: bytes | None = b"\x1b[?62;22c"
    kitty: bytes | None = None
    cell_size: bytes | None = None
    pixels: tuple[int, int] = (0, 0)  # the window size in pixels it tells the kernel

    def answers(self, asked: bytes) -> bytes:
        out = b""
        if KITTY_QUERY in asked and self.kitty is not None:
            out += self.kitty
        if CELL_SIZE_QUERY in asked and self.cell_size is not None:
            out += self.cell_size
        if self.device_attributes is not None:
            out += self.device_attributes
        return out


@dataclass(frozen=True)
class Session:
    result: dict
    written: bytes  # everything the child wrote to the terminal
    mode_restored: bool


def run_on_terminal(code: str, terminal: ScriptedTerminal, *args: str) -> Session:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 150, *terminal.pixels))
    mode_before = termios.tcgetattr(slave)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TEXTUAL_CELL_WIDTH", None)
    env.pop("TEXTUAL_CELL_HEIGHT", None)
    child = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdin=slave, stdout=slave, stderr=subprocess.PIPE,
        env=env, cwd=ROOT,
    )  # fmt: skip
    written, answered = b"", False
    try:
        while child.poll() is None:
            if select.select([master], [], [], 0.01)[0]:
                written += os.read(master, 4096)
            if DEVICE_ATTRIBUTES_QUERY in written and not answered:
                os.write(master, terminal.answers(written))
                answered = True
        stderr = child.stderr.read().decode()
        assert child.returncode == 0, stderr
        mode_restored = termios.tcgetattr(slave) == mode_before
    finally:
        child.kill()
        os.close(master)
        os.close(slave)
    return Session(json.loads(stderr.strip().splitlines()[-1]), written, mode_restored)


def probe(terminal: ScriptedTerminal, wanted: str = "auto") -> Session:
    return run_on_terminal(PROBE, terminal, wanted)


def test_a_terminal_that_reports_sixel_draws_sixel():
    session = probe(ScriptedTerminal(device_attributes=b"\x1b[?62;4;22c"))
    assert session.result["protocol"] == "sixel"


def test_a_terminal_that_answers_the_kitty_query_draws_kitty_graphics():
    session = probe(ScriptedTerminal(kitty=b"\x1b_Gi=31;OK\x1b\\"))
    assert session.result["protocol"] == "kitty"


def test_a_kitty_error_answer_is_not_kitty_graphics():
    session = probe(ScriptedTerminal(kitty=b"\x1b_Gi=31;EINVAL:bad\x1b\\"))
    assert session.result["protocol"] == "halfblock"


def test_tmux_answers_only_the_device_attributes_and_gets_half_blocks_in_one_round_trip():
    session = probe(ScriptedTerminal(device_attributes=b"\x1b[?1;2c"))  # what tmux 3.3 says
    assert session.result["protocol"] == "halfblock"
    assert session.result["seconds"] < PROBE_SECONDS / 2  # no wait for the unanswered Kitty query
    assert session.written.count(DEVICE_ATTRIBUTES_QUERY) == 1  # every question in one write
    assert session.mode_restored


def test_a_terminal_that_answers_nothing_gets_half_blocks_after_the_wait():
    session = probe(ScriptedTerminal(device_attributes=None))
    assert session.result["protocol"] == "halfblock"
    assert PROBE_SECONDS * 0.9 <= session.result["seconds"] < PROBE_SECONDS + 1
    assert session.mode_restored


def test_the_cell_size_comes_from_the_window_size_without_asking_when_it_has_pixels():
    session = probe(ScriptedTerminal(pixels=(150 * 9, 40 * 18)))
    assert session.result["cell_size"] == [9, 18]
    assert CELL_SIZE_QUERY not in session.written


def test_the_cell_size_is_asked_when_the_window_size_has_no_pixels():
    session = probe(ScriptedTerminal(cell_size=b"\x1b[6;21;11t"))
    assert session.result["cell_size"] == [11, 21]
    assert CELL_SIZE_QUERY in session.written


def test_a_terminal_that_does_not_say_its_cell_size_gets_textual_images_guess():
    session = probe(ScriptedTerminal())
    assert session.result["cell_size"] == [10, 20]


def test_a_protocol_asked_for_is_not_asked_about():
    session = probe(ScriptedTerminal(device_attributes=b"\x1b[?62;4c", pixels=(1350, 720)), "kitty")
    assert session.result == {**session.result, "protocol": "kitty", "cell_size": [9, 18]}
    assert session.written == b""  # not one question: nothing to wait for


def test_a_protocol_asked_for_still_asks_the_cell_size_the_window_size_lacks():
    session = probe(ScriptedTerminal(cell_size=b"\x1b[6;20;10t"), "halfblock")
    assert session.result["protocol"] == "halfblock"
    assert KITTY_QUERY not in session.written and CELL_SIZE_QUERY in session.written


def test_off_a_terminal_nothing_is_asked_and_the_preview_is_plain_unicode():
    result = subprocess.run(
        [sys.executable, "-c", PROBE, "auto"], stdin=subprocess.DEVNULL, capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert result.stdout == b""
    assert json.loads(result.stderr)["protocol"] == "unicode"


def test_after_the_hand_over_textual_image_loads_without_asking_the_terminal():
    started = time.monotonic()
    session = run_on_terminal(HAND_OVER, ScriptedTerminal(device_attributes=None))
    assert session.written == b""  # no question Textual's key reader could take the answer of
    assert session.result["cell_size"] == [9, 18]
    assert session.result["seconds"] < 2 and time.monotonic() - started < 30


def test_answers_are_found_among_keys_pressed_meanwhile():
    answers = parse_answers(b"q\x1b_Gi=31;OK\x1b\\j\x1b[6;32;16t\x1b[?62;4;9c")
    assert answers == TerminalAnswers(
        device_attributes=("62", "4", "9"), kitty_graphics=True, cell_size=(16, 32)
    )
    assert parse_answers(b"") == TerminalAnswers()
    assert parse_answers(b"\x1b[6;0;0t").cell_size is None


@pytest.mark.parametrize(
    ("wanted", "on_terminal", "answers", "protocol"),
    [
        ("auto", True, TerminalAnswers(("62", "4"), kitty_graphics=True), "sixel"),
        ("auto", True, TerminalAnswers(("62",), kitty_graphics=True), "kitty"),
        ("auto", True, TerminalAnswers(("1", "2")), "halfblock"),
        ("auto", True, TerminalAnswers(), "halfblock"),
        ("auto", False, TerminalAnswers(), "unicode"),
        ("sixel", False, TerminalAnswers(), "sixel"),
        ("halfblock", True, TerminalAnswers(("62", "4")), "halfblock"),
    ],
)
def test_the_protocol_is_the_one_asked_for_else_the_best_answered_for(wanted, on_terminal, answers, protocol):
    assert choose_protocol(wanted, on_terminal, answers) == protocol


def test_textual_serves_cell_size_variables_are_the_fallback():
    assert fallback_cell_size({"TEXTUAL_CELL_WIDTH": "8", "TEXTUAL_CELL_HEIGHT": "16"}) == (8, 16)
    assert fallback_cell_size({"TEXTUAL_CELL_WIDTH": "8", "TEXTUAL_CELL_HEIGHT": "x"}) == (10, 20)
    assert fallback_cell_size({}) == (10, 20)
