"""Local OCR: the text in a picture, read on this machine with no API and no token cost.

RapidOCR (the `ocr` extra) runs the PP-OCR models its wheel ships, on onnxruntime, loaded
from the package with no network. Where it is not installed, Tesseract from the system
(`apt-get install tesseract-ocr`) is the fallback. One engine per process, loaded on first use.
"""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
import threading
from functools import cache
from importlib import metadata
from typing import Protocol

from PIL import Image

log = logging.getLogger(__name__)
INSTALL_HINT = (
    "local text extraction needs an OCR engine: pip install 'social-tui-media[ocr]' "
    "(or pip install -r requirements.txt), or apt-get install tesseract-ocr"
)
MIN_SCORE = 0.5  # recognitions below this confidence are noise (texture read as letters)
MAX_SIDE = 2000  # pixels: larger pictures are scaled down first (RapidOCR's own limit too)
TESSERACT_TIMEOUT = 120


class OcrUnavailable(Exception):
    """No OCR engine is installed; the message says what to install."""


class OcrEngine(Protocol):
    name: str

    def read_lines(self, image: Image.Image) -> list[str]:
        """The lines of text in the picture, in reading order (top to bottom, left to right)."""


def _reading_order(boxes: list, texts: list[str]) -> list[str]:
    """Lines sorted top to bottom, then left to right; boxes on one line (their vertical centres
    within half a line height) read left to right."""
    placed = []
    for box, text in zip(boxes, texts, strict=True):
        ys = [float(point[1]) for point in box]
        xs = [float(point[0]) for point in box]
        placed.append(((min(ys) + max(ys)) / 2, max(ys) - min(ys), min(xs), text))
    placed.sort()
    lines: list[list[tuple]] = []
    for item in placed:
        if lines and abs(item[0] - lines[-1][0][0]) < max(item[1], lines[-1][0][1]) / 2:
            lines[-1].append(item)
        else:
            lines.append([item])
    return [" ".join(part[3] for part in sorted(line, key=lambda p: p[2])) for line in lines]


def _scaled(image: Image.Image) -> Image.Image:
    image = image.convert("RGB")
    if max(image.size) > MAX_SIDE:
        image = image.copy()
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    return image


class RapidOcrEngine:
    """PP-OCR through RapidOCR on onnxruntime; the models come from the rapidocr wheel."""

    def __init__(self) -> None:
        import onnxruntime  # noqa: F401  - RapidOCR's default engine; fail here, not mid-run
        from rapidocr import RapidOCR  # ImportError: the ocr extra is not installed

        self._engine = RapidOCR(params={"Global.log_level": "warning", "Global.text_score": MIN_SCORE})
        self._lock = threading.Lock()  # one inference at a time: onnxruntime already uses every core
        self.name = f"rapidocr {metadata.version('rapidocr')}"

    def read_lines(self, image: Image.Image) -> list[str]:
        import numpy

        pixels = numpy.asarray(_scaled(image))[:, :, ::-1].copy()  # RGB to the BGR RapidOCR expects
        with self._lock:
            result = self._engine(pixels)
        if result.txts is None or result.boxes is None:
            return []
        keep = [i for i, score in enumerate(result.scores) if score >= MIN_SCORE and result.txts[i].strip()]
        return _reading_order([result.boxes[i] for i in keep], [result.txts[i].strip() for i in keep])


class TesseractEngine:
    """The system's `tesseract` command (Debian's tesseract-ocr), English."""

    def __init__(self) -> None:
        self._binary = shutil.which("tesseract")
        if self._binary is None:
            raise OcrUnavailable(INSTALL_HINT)
        version = subprocess.run(
            [self._binary, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
        first = (version.stdout or version.stderr).splitlines()
        self.name = first[0].strip() if first else "tesseract"

    def read_lines(self, image: Image.Image) -> list[str]:
        buffer = io.BytesIO()
        _scaled(image).save(buffer, "PNG")
        done = subprocess.run(
            [self._binary, "stdin", "stdout", "-l", "eng", "--psm", "3"],
            input=buffer.getvalue(), capture_output=True, timeout=TESSERACT_TIMEOUT, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"tesseract failed: {done.stderr.decode(errors='replace').strip()[:200]}")
        text = done.stdout.decode("utf-8", errors="replace")
        return [line.strip() for line in text.splitlines() if line.strip()]


@cache
def load_engine() -> OcrEngine:
    """The process's OCR engine: RapidOCR, else Tesseract; OcrUnavailable when neither is there."""
    try:
        return RapidOcrEngine()
    except ImportError as exc:
        log.info("RapidOCR is not installed (%s); trying Tesseract", exc)
    return TesseractEngine()
