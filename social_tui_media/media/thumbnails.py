"""Thumbnails: `{cache}/thumbs/{md5}.webp`, made once per file, on demand by whatever shows
media (never in the download path). An image is downscaled, a video becomes a contact sheet of
frames with its duration, a PDF its first page.

Hostile files (decompression bombs, broken videos, damaged PDFs) raise ThumbnailError with one
line; nothing is left behind. Files are written like the cache's: a private temp file renamed
into place, directories 0700, files 0600.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from social_tui_media.media.frames import MAX_FRAME_PIXELS, UnreadableMedia, fit_rgb, pdf_pages, video_frames

log = logging.getLogger(__name__)

THUMBS = "thumbs"  # the folder under the cache root
THUMB_SIDE = 480  # pixels on the longer side
SHEET_COLUMNS, SHEET_ROWS = 3, 2  # a video's contact sheet: six frames
SHEET_GAP = 4
WEBP_QUALITY = 80
TEMP_PREFIX = ".part-"


class ThumbnailError(Exception):
    """No thumbnail can be made of this file; the message says which and why."""


def thumbnail_path(cache_root: Path, md5_sum: str) -> Path:
    """Where the thumbnail of the file whose bytes hash to `md5_sum` lives."""
    if not md5_sum or not all(c in "0123456789abcdef" for c in md5_sum.lower()):
        raise ValueError(f"{md5_sum!r} is not an MD5 hex digest")
    return Path(cache_root) / THUMBS / f"{md5_sum.lower()}.webp"


def media_kind(mime_type: str | None, path: Path) -> str:
    """image, video or document, from the stored MIME type (else the file's extension)."""
    mime = (mime_type or "").split(";", 1)[0].strip().lower()
    if mime.startswith("video/") or path.suffix.lower() in (".mp4", ".mov", ".webm", ".m4v", ".mkv"):
        return "video"
    if mime == "application/pdf" or path.suffix.lower() == ".pdf":
        return "document"
    return "image"


def render_thumbnail(source: Path, mime_type: str | None) -> Image.Image:
    """The thumbnail of one file as an RGB image; raises ThumbnailError."""
    kind = media_kind(mime_type, source)
    if kind == "video":
        return _video_sheet(source)
    if kind == "document":
        try:
            pages = pdf_pages(source, 1, THUMB_SIDE)
        except UnreadableMedia as exc:
            raise ThumbnailError(str(exc)) from None
        if not pages:
            raise ThumbnailError(f"{source.name}: the PDF has no pages")
        return fit_rgb(pages[0], THUMB_SIDE)
    return _image_thumbnail(source)


def _image_thumbnail(source: Path) -> Image.Image:
    try:
        with Image.open(source) as image:
            # Only the header is read so far: refuse a bomb before one pixel is decoded (Pillow's
            # own guard merely warns below twice its limit).
            if image.width * image.height > MAX_FRAME_PIXELS:
                raise ThumbnailError(
                    f"{source.name} claims {image.width}x{image.height} pixels; "
                    f"not decoding more than {MAX_FRAME_PIXELS:,}"
                )
            scale = min(1.0, THUMB_SIDE / max(image.size or (1, 1)))
            # JPEG decodes at 1/2, 1/4, 1/8 scale directly: far less work for a big photo.
            image.draft("RGB", (math.ceil(image.width * scale), math.ceil(image.height * scale)))
            return fit_rgb(ImageOps.exif_transpose(image), THUMB_SIDE)
    except Image.DecompressionBombError as exc:
        raise ThumbnailError(f"{source.name}: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ThumbnailError(f"{source.name} is not a readable image: {exc}") from None


def format_duration(seconds: float) -> str:
    """`0:07`, `12:30`, `1:02:03`."""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _video_sheet(source: Path) -> Image.Image:
    """Frames spread over the video on a grid, the duration in the corner."""
    frames, duration = video_frames(source, SHEET_COLUMNS * SHEET_ROWS, with_duration=True)
    if not frames:
        raise ThumbnailError(f"{source.name}: no video frame could be decoded")
    columns = min(SHEET_COLUMNS, len(frames))
    rows = math.ceil(len(frames) / columns)
    cell_w = (THUMB_SIDE - SHEET_GAP * (columns - 1)) // columns
    cells = [fit_rgb(frame, cell_w) for frame in frames]
    cell_h = max(cell.height for cell in cells)
    sheet = Image.new(
        "RGB", (columns * cell_w + SHEET_GAP * (columns - 1), rows * cell_h + SHEET_GAP * (rows - 1))
    )
    for index, cell in enumerate(cells):
        x = (index % columns) * (cell_w + SHEET_GAP) + (cell_w - cell.width) // 2
        y = (index // columns) * (cell_h + SHEET_GAP) + (cell_h - cell.height) // 2
        sheet.paste(cell, (x, y))
    if duration > 0:
        _label(sheet, format_duration(duration))
    return sheet


def _label(image: Image.Image, text: str) -> None:
    """White text on a dark box in the bottom-right corner."""
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(12, image.height // 12))
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    pad = 4
    x = image.width - (right - left) - 2 * pad - 4
    y = image.height - (bottom - top) - 2 * pad - 4
    draw.rectangle((x, y, image.width - 4, image.height - 4), fill=(0, 0, 0))
    draw.text((x + pad - left, y + pad - top), text, fill=(255, 255, 255), font=font)


def write_thumbnail(image: Image.Image, target: Path) -> Path:
    """Save as WebP under its final name atomically (temp file + rename), 0600 in a 0700 folder."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(target.parent, 0o700)
    fd, name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", suffix=".webp", dir=target.parent)
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            image.save(handle, format="WEBP", quality=WEBP_QUALITY, method=4)
        os.chmod(temp, 0o600)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return target


def make_thumbnail(source: Path, mime_type: str | None, target: Path) -> Path:
    """Render and write one thumbnail. Raises ThumbnailError for a file that gives none (nothing
    is written); an OSError writing it (a full disk) is not the file's fault and passes through."""
    image = render_thumbnail(source, mime_type)
    try:
        return write_thumbnail(image, target)
    except ValueError as exc:  # e.g. a sheet too large for WebP
        raise ThumbnailError(f"{source.name}: cannot encode the thumbnail: {exc}") from None


def ensure_thumbnail(cache_root: Path, source: Path, md5_sum: str, mime_type: str | None) -> Path | None:
    """The thumbnail of a cached file (`source`, already confined to the cache), made now if it
    is missing; None, with one log line, when the file gives none."""
    target = thumbnail_path(cache_root, md5_sum)
    if target.is_file():
        return target
    try:
        return make_thumbnail(source, mime_type, target)
    except (ThumbnailError, OSError) as exc:
        log.warning("no thumbnail for %s: %s", source.name, exc)
        return None
