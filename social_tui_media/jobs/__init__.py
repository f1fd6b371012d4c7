"""Jobs: each one claims its work in the store, does it with the media tools, and writes the
outcome back. They return reports and log; they never print. The CLIs present them.

Long jobs report progress to a `Progress` the caller passes (a bar on a terminal).
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def expect(self, items: int | None) -> None:
        """How many items the run will take, counted before it starts; None while unknown."""

    def advance(self, items: int, nbytes: int) -> None:
        """`items` finished, `nbytes` of them moved over the network."""
