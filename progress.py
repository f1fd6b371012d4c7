"""What long library calls (downloads, archiving, analysis) report their progress to.
The CLIs pass a progress bar (`terminal.BarProgress`); library code only calls these."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def add_total(self, items: int) -> None: ...

    def advance(self, items: int, nbytes: int) -> None: ...
