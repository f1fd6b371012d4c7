"""What a downloaded file really is: type from magic bytes, size from the header. No network."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

logger = logging.getLogger(__name__)

IMAGES = "images"
VIDEOS = "videos"
DOCUMENTS = "documents"


@dataclass(frozen=True)
class MediaKind:
    mime_type: str
    extension: str  # without the dot: "jpg"
    category: str  # "images" | "videos" | "documents", also the cache subdirectory


@dataclass(frozen=True)
class MediaDimensions:
    width: int | None = None
    height: int | None = None
    duration_seconds: float | None = None


JPEG = MediaKind("image/jpeg", "jpg", IMAGES)
PNG = MediaKind("image/png", "png", IMAGES)
GIF = MediaKind("image/gif", "gif", IMAGES)
WEBP = MediaKind("image/webp", "webp", IMAGES)
AVIF = MediaKind("image/avif", "avif", IMAGES)
HEIC = MediaKind("image/heic", "heic", IMAGES)
HEIF = MediaKind("image/heif", "heif", IMAGES)
MP4 = MediaKind("video/mp4", "mp4", VIDEOS)
M4V = MediaKind("video/x-m4v", "m4v", VIDEOS)
MOV = MediaKind("video/quicktime", "mov", VIDEOS)
WEBM = MediaKind("video/webm", "webm", VIDEOS)
MKV = MediaKind("video/x-matroska", "mkv", VIDEOS)
PDF = MediaKind("application/pdf", "pdf", DOCUMENTS)

_AVIF_BRANDS = {b"avif", b"avis"}
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"}
_HEIF_BRANDS = {b"mif1", b"msf1"}
_MOV_BRANDS = {b"qt  "}
_M4V_BRANDS = {b"M4V ", b"M4VH", b"M4VP"}
_MP4_BRANDS = {
    b"isom",
    b"iso2",
    b"iso3",
    b"iso4",
    b"iso5",
    b"iso6",
    b"iso7",
    b"iso8",
    b"iso9",
    b"mp41",
    b"mp42",
    b"avc1",
    b"dash",
    b"mmp4",
    b"MSNV",
    b"XAVC",
    b"f4v ",
    b"3gp4",
    b"3gp5",
    b"3gp6",
    b"3g2a",
}
# Pre-ftyp QuickTime files start straight with one of these atoms.
_LEGACY_MOV_ATOMS = {b"moov", b"mdat", b"wide", b"pnot"}


def _brand_kind(brand: bytes) -> MediaKind | None:
    if brand in _AVIF_BRANDS:
        return AVIF
    if brand in _HEIC_BRANDS:
        return HEIC
    if brand in _MOV_BRANDS:
        return MOV
    if brand in _M4V_BRANDS:
        return M4V
    if brand in _MP4_BRANDS:
        return MP4
    return None


def _sniff_ftyp(head: bytes) -> MediaKind | None:
    """ISO base media (MP4, MOV, HEIF, AVIF): decide from the ftyp box's brands."""
    box_size = int.from_bytes(head[0:4], "big")
    major = head[8:12]
    end = min(len(head), box_size if box_size >= 16 else 16)
    compatible = [head[i : i + 4] for i in range(16, end - 3, 4)]
    kind = _brand_kind(major)
    if kind is not None:
        return kind
    if major in _HEIF_BRANDS:
        # Generic HEIF major brand: the compatible brands say which codec.
        if any(b in _AVIF_BRANDS for b in compatible):
            return AVIF
        if any(b in _HEIC_BRANDS for b in compatible):
            return HEIC
        return HEIF
    for brand in compatible:
        kind = _brand_kind(brand)
        if kind is not None:
            return kind
    return None


def _ebml_doctype(head: bytes) -> bytes | None:
    """Read the DocType string from an EBML header, or None if it is not in `head`."""
    pos = head.find(b"\x42\x82", 4, 64)
    if pos < 0 or pos + 2 >= len(head):
        return None
    first = head[pos + 2]
    length_bytes = 1
    mask = 0x80
    while length_bytes <= 8 and not first & mask:
        length_bytes += 1
        mask >>= 1
    if length_bytes > 8:
        return None
    size = first & (mask - 1)
    for b in head[pos + 3 : pos + 2 + length_bytes]:
        size = (size << 8) | b
    start = pos + 2 + length_bytes
    return head[start : start + size].rstrip(b"\x00")


def sniff_media_kind(head: bytes) -> MediaKind | None:
    """Say what a file is from its first bytes only; None when it is nothing we keep."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if head[0:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return _sniff_ftyp(head)
    if len(head) >= 8 and head[4:8] in _LEGACY_MOV_ATOMS:
        return MOV
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        doctype = _ebml_doctype(head)
        if doctype == b"webm":
            return WEBM
        if doctype in (b"matroska", None):
            return MKV
        return None
    if _strip_preamble(head).startswith(b"%PDF-"):
        return PDF
    return None


_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body")
_XML_COMMENT = re.compile(rb"<!--.*?-->", re.S)


def _strip_preamble(head: bytes) -> bytes:
    for bom in _BOMS:
        if head.startswith(bom):
            head = head[len(bom) :]
            break
    return head.lstrip(b" \t\r\n\f\v\x00")


def looks_like_html(head: bytes) -> bool:
    """True when a body starts like an HTML page (an error or login page), not media."""
    text = _strip_preamble(head).lower()
    # Skip leading comments: `<!-- generated by ... --><html>` is still a page.
    while text.startswith(b"<!--"):
        end = text.find(b"-->")
        if end < 0:
            return False
        text = text[end + 3 :].lstrip()
    if text.startswith(_HTML_STARTS):
        return True
    if text.startswith(b"<?xml"):
        rest = _XML_COMMENT.sub(b"", text)
        return b"<!doctype html" in rest or b"<html" in rest or b"/1999/xhtml" in rest
    return False


_heif_registered = False


def _register_heif() -> None:
    """Teach Pillow HEIC (and AVIF, on Pillow builds without it) when pillow-heif is installed."""
    global _heif_registered
    if _heif_registered:
        return
    _heif_registered = True
    try:
        import pillow_heif
    except ImportError:
        logger.debug("pillow-heif not installed; HEIC dimensions unavailable")
        return
    pillow_heif.register_heif_opener()
    register_avif = getattr(pillow_heif, "register_avif_opener", None)
    if register_avif is not None and "AVIF" not in Image.registered_extensions().values():
        register_avif()


def _unchecked_header_size(path: Path) -> tuple[int, int] | None:
    """The size an image header claims, without Pillow's decompression-bomb guard.

    Only the header is parsed (no pixels are decoded), so a bomb costs nothing here; this is
    how Image.open identifies a file, minus the size check.
    """
    Image.init()
    with open(path, "rb") as fp:
        prefix = fp.read(16)
        for format_id in Image.ID:
            factory, accept = Image.OPEN[format_id]
            try:
                accepted = accept(prefix) if accept is not None else True
                if not accepted or isinstance(accepted, str):
                    continue
                fp.seek(0)
                im = factory(fp, str(path))
            except (SyntaxError, IndexError, TypeError, ValueError, OSError, EOFError):
                continue
            try:
                return im.size
            finally:
                im.close()
    return None


def _probe_image(path: Path, kind: MediaKind) -> MediaDimensions:
    if kind in (HEIC, HEIF, AVIF):  # importing pillow-heif costs ~0.25 s: only when needed
        _register_heif()
    try:
        # Image.open parses the header only; pixels are decoded by load(), never called here.
        with Image.open(path) as im:
            width, height = im.size
        return MediaDimensions(width, height, None)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        logger.warning("%s claims a huge pixel count; reading its size without decoding", path)
        try:
            size = _unchecked_header_size(path)
        except Exception:  # noqa: BLE001 - a hostile header must never crash the caller
            logger.debug("header re-read failed for %s", path, exc_info=True)
            size = None
        if size is None:
            return MediaDimensions()
        return MediaDimensions(size[0], size[1], None)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        logger.warning("cannot read image size of %s: %s", path, exc)
        return MediaDimensions()


def _probe_video(path: Path) -> MediaDimensions:
    try:
        import av
    except ImportError:
        logger.warning("PyAV not installed; video dimensions unavailable")
        return MediaDimensions()
    try:
        with av.open(str(path)) as container:
            stream = next(iter(container.streams.video), None)
            width = height = None
            duration = None
            if container.duration is not None and container.duration > 0:
                duration = container.duration / av.time_base
            if stream is not None:
                width = stream.codec_context.width or None
                height = stream.codec_context.height or None
                if duration is None and stream.duration and stream.time_base:
                    duration = float(stream.duration * stream.time_base)
            return MediaDimensions(width, height, duration)
    except Exception as exc:  # noqa: BLE001 - FFmpeg raises many types for hostile files
        logger.warning("cannot read video metadata of %s: %s", path, exc)
        return MediaDimensions()


def probe_dimensions(path: Path, kind: MediaKind) -> MediaDimensions:
    """Width, height (images, videos) and duration (videos) from the file's headers.

    Never raises for a bad or hostile file: unknown values are None.
    """
    if kind.category == IMAGES:
        return _probe_image(Path(path), kind)
    if kind.category == VIDEOS:
        return _probe_video(Path(path))
    return MediaDimensions()
