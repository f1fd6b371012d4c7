"""The exact text of one cached media file, read locally: OCR for pictures, the PDF's own text
layer (OCR only for pages without one), and OCR of a video's frames at scene changes, each
with its timestamp. Also the picture's perceptual hash. Never calls a network API.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from social_tui_media.media.ocr import OcrEngine
from social_tui_media.media.phash import phash

log = logging.getLogger(__name__)
MAX_PDF_PAGES = 100
PDF_RENDER_SCALE = 2.0  # 144 dpi: small print is legible to OCR
MIN_LAYER_CHARS = 3  # a page whose text layer has fewer letters and digits than this is OCR'd
VIDEO_SAMPLE_SECONDS = 0.5  # look at a frame this often
SCENE_PIXEL = 32  # grey levels (0-255) a thumbnail pixel must move by to count as changed
SCENE_CHANGE = 0.01  # share of changed thumbnail pixels that starts a new scene (a new line of text does)
MAX_VIDEO_FRAMES = 30  # frames OCR'd per video at most
Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, 180_000_000)


class ExtractionError(Exception):
    """The file could not be read; `kind` names why (unsupported, unreadable, no_video_support)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class ExtractedText:
    text: str
    segments: list[dict] | None  # PDF pages / video frames; None for a picture
    engine: str
    phash: str | None
    elapsed_ms: int


def _alnum_count(text: str) -> int:
    return sum(ch.isalnum() for ch in text)


def _open_image(path: Path) -> Image.Image:
    from social_tui_media.media.sniff import _register_heif

    _register_heif()
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)
            image.load()
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ExtractionError("unreadable", f"cannot read {path.name} as an image: {exc}") from None


def read_image(path: Path, engine: OcrEngine) -> tuple[str, str]:
    """(text, perceptual hash) of a picture."""
    image = _open_image(path)
    return "\n".join(engine.read_lines(image)), phash(image)


def read_pdf(path: Path, engine: OcrEngine) -> tuple[str, list[dict], bool]:
    """(text, pages, whether OCR was needed): each page's text layer, or its OCR when it has none."""
    import pypdfium2

    try:
        pdf = pypdfium2.PdfDocument(str(path))
    except pypdfium2.PdfiumError as exc:
        raise ExtractionError("unreadable", f"cannot open {path.name} as a PDF: {exc}") from None
    pages: list[dict] = []
    used_ocr = False
    try:
        for index in range(min(len(pdf), MAX_PDF_PAGES)):
            page = pdf[index]
            try:
                text = page.get_textpage().get_text_bounded().replace("\r\n", "\n").strip()
                source = "layer"
                if _alnum_count(text) < MIN_LAYER_CHARS:
                    bitmap = page.render(scale=PDF_RENDER_SCALE)
                    text, source, used_ocr = "\n".join(engine.read_lines(bitmap.to_pil())), "ocr", True
            finally:
                page.close()
            pages.append({"page": index + 1, "source": source, "text": text})
    finally:
        pdf.close()
    return "\n\n".join(p["text"] for p in pages if p["text"]), pages, used_ocr


def _signature(frame: Image.Image) -> list[int]:
    return list(frame.convert("L").resize((96, 54), Image.Resampling.BILINEAR).tobytes())


def _new_scene(signature: list[int], last: list[int] | None) -> bool:
    if last is None:
        return True
    changed = sum(abs(a - b) > SCENE_PIXEL for a, b in zip(signature, last, strict=True))
    return changed / len(signature) > SCENE_CHANGE


def read_video(path: Path, engine: OcrEngine) -> tuple[str, list[dict]]:
    """(text, frames): the text of the frames where a new scene starts, with their time in seconds
    (the same text on consecutive scenes is kept once)."""
    try:
        import av
    except ImportError:
        raise ExtractionError(
            "no_video_support", "reading video frames needs PyAV: pip install 'social-tui-media[video]'"
        ) from None
    frames: list[dict] = []
    try:
        with av.open(str(path)) as container:
            stream = next((s for s in container.streams if s.type == "video"), None)
            if stream is None:
                raise ExtractionError("unreadable", f"{path.name} has no video stream")
            stream.thread_type = "AUTO"
            last_sample, last_signature, ocr_count = -1.0, None, 0
            for frame in container.decode(stream):
                seconds = float(frame.time or 0.0)
                if last_signature is not None and seconds - last_sample < VIDEO_SAMPLE_SECONDS:
                    continue
                last_sample = seconds
                picture = frame.to_image()
                signature = _signature(picture)
                changed = _new_scene(signature, last_signature)
                last_signature = signature
                if not changed:
                    continue
                text = "\n".join(engine.read_lines(picture))
                ocr_count += 1
                if text and (not frames or frames[-1]["text"] != text):
                    frames.append({"t": round(seconds, 2), "text": text})
                if ocr_count >= MAX_VIDEO_FRAMES:
                    break
    except av.error.FFmpegError as exc:
        raise ExtractionError("unreadable", f"cannot decode {path.name}: {exc}") from None
    return "\n".join(f["text"] for f in frames), frames


def extract_text(path: Path, mime_type: str, engine: OcrEngine) -> ExtractedText:
    """The text of one cached file, by its MIME type; ExtractionError when it cannot be read."""
    started = time.monotonic()
    kind = (mime_type or "").split("/")[0]
    try:
        if kind == "image":
            text, hashed = read_image(path, engine)
            result = (text, None, engine.name, hashed)
        elif mime_type == "application/pdf":
            text, pages, used_ocr = read_pdf(path, engine)
            result = (text, pages, f"pdfium+{engine.name}" if used_ocr else "pdfium", None)
        elif kind == "video":
            text, frames = read_video(path, engine)
            result = (text, frames, f"pyav+{engine.name}", None)
        else:
            raise ExtractionError("unsupported", f"no text extraction for {mime_type or 'unknown type'}")
    except FileNotFoundError:
        raise ExtractionError("unreadable", f"cached file {path} is missing") from None
    elapsed = int((time.monotonic() - started) * 1000)
    return ExtractedText(*result, elapsed_ms=elapsed)
