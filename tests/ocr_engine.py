"""The real OCR engine, loaded once per test process and remembering what it read: the same
generated picture is read once however many back ends a test runs on (OCR is CPU-heavy)."""

from __future__ import annotations

from functools import cache

from devtools.text_media import RememberingEngine
from social_tui_media.media.ocr import load_engine


@cache
def shared_engine() -> RememberingEngine:
    return RememberingEngine(load_engine())
