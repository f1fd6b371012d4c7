"""The real OCR engine, loaded once per test process and remembering what it read: the same
generated picture is read once however many back ends a test runs on (OCR is CPU-heavy)."""

from __future__ import annotations

import hashlib
import threading
from functools import cache

from PIL import Image

from social_tui_media.media.ocr import OcrEngine, load_engine


class RememberingEngine:
    """Wraps the process's real engine; answers a picture it has read before from memory."""

    def __init__(self, engine: OcrEngine):
        self.engine = engine
        self.name = engine.name
        self.reads = 0  # pictures actually read by the real engine
        self._seen: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def read_lines(self, image: Image.Image) -> list[str]:
        key = hashlib.md5(image.convert("RGB").tobytes() + repr(image.size).encode()).hexdigest()
        with self._lock:
            if key not in self._seen:
                self._seen[key] = self.engine.read_lines(image)
                self.reads += 1
            return self._seen[key]


@cache
def shared_engine() -> RememberingEngine:
    return RememberingEngine(load_engine())
