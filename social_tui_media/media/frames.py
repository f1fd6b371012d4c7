"""Pictures from a video or a PDF: frames spread over a video (PyAV) and a PDF's first pages
(pypdfium2), as Pillow images. Shared by the vision analysis and the thumbnails; loads neither
FFmpeg nor PDFium until asked.
"""

from __future__ import annotations

import logging
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

from PIL import Image

logger = logging.getLogger(__name__)

# After a seek the decoder lands on the keyframe before the target; decode forward at most
# this many frames to reach the target, so a long GOP cannot make one seek decode a movie.
MAX_FRAMES_AFTER_SEEK = 90
# A frame or page larger than this is not decoded (a hostile file's claimed size).
MAX_FRAME_PIXELS = 64_000_000

# PDFium is not thread-safe, not even across documents: every pypdfium2 call in this
# process must hold this lock (other modules using pypdfium2 should import it).
PDFIUM_LOCK = threading.Lock()


class UnreadableMedia(Exception):
    """No picture can be had from this file; the message says which file and why."""


def _video_timestamps(duration_s: float, count: int) -> list[float]:
    """`count` instants spread evenly over the video, at the middle of equal slices."""
    return [duration_s * (i + 0.5) / count for i in range(count)]


def video_duration(container: Any, stream: Any) -> float:
    """Seconds the stream (else the container) says the video lasts; 0 when neither says."""
    import av

    time_base = stream.time_base or Fraction(1, 1_000_000)
    if stream.duration:
        return float(stream.duration * time_base)
    if container.duration:
        return container.duration / av.time_base
    return 0.0


def video_frames(path: Path, count: int, with_duration: bool = False) -> Any:
    """Up to `count` distinct frames spread over the video; [] when none can be decoded.
    With `with_duration`: (frames, seconds)."""
    try:  # PyAV bundles FFmpeg; imported lazily so image-only callers skip its load time.
        import av
    except ImportError:  # the `video` extra is not installed: the thumbnail stands in
        logger.warning("PyAV is not installed (pip install 'social-tui-media[video]'); no video frames")
        return ([], 0.0) if with_duration else []

    images: list[Image.Image] = []
    duration_s = 0.0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return ([], 0.0) if with_duration else []
            stream = container.streams.video[0]
            width, height = stream.codec_context.width or 0, stream.codec_context.height or 0
            if width * height > MAX_FRAME_PIXELS:
                logger.info("video %s claims %dx%d frames: not decoded", path.name, width, height)
                return ([], 0.0) if with_duration else []
            stream.thread_type = "AUTO"
            time_base = stream.time_base or Fraction(1, 1_000_000)
            duration_s = video_duration(container, stream)
            targets = _video_timestamps(duration_s, count) if duration_s > 0 else [0.0]
            seen_pts: set[int | None] = set()
            for target in targets:
                frame = _frame_at(container, stream, target, time_base)
                if frame is None or frame.pts in seen_pts:
                    continue
                seen_pts.add(frame.pts)
                image = frame.to_image()
                if frame.rotation:  # phone videos: stored landscape, shown portrait
                    image = image.rotate(frame.rotation, expand=True)
                images.append(image)
    except (av.FFmpegError, OSError, ValueError) as exc:
        logger.info("video %s: decoding stopped: %s", path.name, exc)
    return (images, duration_s) if with_duration else images


def _frame_at(container: Any, stream: Any, target_s: float, time_base: Fraction) -> Any:
    """The first frame at or after target_s (or the last one decoded within the cap)."""
    import av

    # frame.time counts from the stream's start_time, which need not be zero.
    target_s += float((stream.start_time or 0) * time_base)
    offset = int(target_s / time_base)
    try:
        container.seek(offset, stream=stream, backward=True)
    except av.FFmpegError as exc:
        logger.debug("seek to %.2fs failed: %s", target_s, exc)
        return None
    chosen = None
    try:
        for decoded, frame in enumerate(container.decode(stream)):
            chosen = frame
            if frame.time is None or frame.time >= target_s or decoded >= MAX_FRAMES_AFTER_SEEK:
                break
    except av.FFmpegError as exc:
        logger.debug("decode after seek to %.2fs failed: %s", target_s, exc)
    return chosen


def pdf_pages(path: Path, pages: int, long_side: int) -> list[Image.Image]:
    """The first `pages` pages as RGB images whose longer side is `long_side` pixels; raises
    UnreadableMedia when not even the first page renders."""
    import pypdfium2 as pdfium

    images: list[Image.Image] = []
    with PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(str(path))
        except (pdfium.PdfiumError, OSError) as exc:
            raise UnreadableMedia(f"{path.name} is not a readable PDF: {exc}") from None
        try:
            for index in range(min(pages, len(pdf))):
                page = pdf[index]
                try:
                    width, height = page.get_size()
                    scale = long_side / max(width, height, 1.0)
                    bitmap = page.render(scale=scale)
                    try:
                        # to_pil may share the bitmap's buffer: copy before closing it.
                        images.append(bitmap.to_pil().convert("RGB"))
                    finally:
                        bitmap.close()
                finally:
                    page.close()
        except pdfium.PdfiumError as exc:
            if not images:
                raise UnreadableMedia(f"{path.name}: {exc}") from None
            logger.info("pdf %s: stopped after %d pages: %s", path.name, len(images), exc)
        finally:
            pdf.close()
    return images


def fit_rgb(image: Image.Image, side: int) -> Image.Image:
    """Flatten to RGB (transparent areas white, not the black convert("RGB") would give) and
    shrink to fit `side`, keeping the aspect: what a thumbnail and a vision request both send."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        image = flat
    elif image.mode != "RGB":
        image = image.convert("RGB")
    if max(image.size) > side:
        image.thumbnail((side, side), Image.Resampling.LANCZOS)
    return image
