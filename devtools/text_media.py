"""Generated media with known text, for the text-extraction tests and benchmarks: slides and
banners rendered with Pillow and the system's fonts (straight, tilted, noisy, low JPEG quality),
PDFs with and without a text layer, and a short video with text frames (PyAV).
"""

from __future__ import annotations

import hashlib
import io
import random
import threading
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/truetype"),
    Path("/usr/share/fonts"),
)
FONT_NAMES = ("DejaVuSans-Bold.ttf", "DejaVuSans.ttf")


def font_path() -> Path:
    """A TrueType font of the system (DejaVu, from fonts-dejavu-core)."""
    for directory in FONT_DIRS:
        for name in FONT_NAMES:
            found = next(iter(sorted(directory.rglob(name))), None) if directory.is_dir() else None
            if found:
                return found
    raise FileNotFoundError("no DejaVu font: apt-get install fonts-dejavu-core")


def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path()), size)


def slide(lines: list[str], size: tuple[int, int] = (960, 540), background: str = "white",
          color: str = "black", font_size: int = 44) -> Image.Image:  # fmt: skip
    """A presentation slide: one line of text per entry, left aligned."""
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    face = font(font_size)
    y = size[1] // 6
    for line in lines:
        draw.text((size[0] // 12, y), line, font=face, fill=color)
        y += int(font_size * 1.6)
    return image


def photo(size: tuple[int, int] = (960, 640), seed: int = 1) -> Image.Image:
    """A photo-like picture: a colour gradient with blurred shapes (no text)."""
    rng = random.Random(seed)
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    top, bottom = [rng.randrange(40, 200) for _ in range(3)], [rng.randrange(40, 200) for _ in range(3)]
    for y in range(size[1]):
        mix = y / size[1]
        draw.line(
            [(0, y), (size[0], y)],
            fill=tuple(int(a + (b - a) * mix) for a, b in zip(top, bottom, strict=True)),
        )
    for _ in range(12):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        r = rng.randrange(20, 120)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(rng.randrange(256) for _ in range(3)))
    return image.filter(ImageFilter.GaussianBlur(6))


def banner(
    text: str, base: Image.Image | None = None, angle: float = 7.0, font_size: int = 52
) -> Image.Image:
    """A tilted banner with `text` laid over a photo."""
    base = (base or photo()).copy()
    face = font(font_size)
    left, top, right, bottom = face.getbbox(text)
    strip = Image.new("RGBA", (right - left + 60, bottom - top + 40), (255, 255, 255, 235))
    ImageDraw.Draw(strip).text((30 - left, 20 - top), text, font=face, fill=(20, 20, 120, 255))
    strip = strip.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC)
    base.paste(strip, ((base.width - strip.width) // 2, (base.height - strip.height) // 2), strip)
    return base


def noisy(image: Image.Image, amount: int = 40, seed: int = 2) -> Image.Image:
    """Speckle noise of +-amount on every channel."""
    rng = random.Random(seed)
    noise = Image.frombytes(
        "L", image.size, bytes(rng.randrange(256) for _ in range(image.width * image.height))
    )
    noise_rgb = Image.merge("RGB", (noise, noise, noise))
    return Image.blend(image, noise_rgb, amount / 255)


def jpeg(image: Image.Image, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _pdf_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf_with_text(pages: list[list[str]]) -> bytes:
    """A PDF whose pages carry a real text layer (Helvetica), one line per entry."""
    objects: list[bytes] = []
    kids = []
    font_id = 3 + 2 * len(pages)
    for index, lines in enumerate(pages):
        page_id, content_id = 3 + 2 * index, 4 + 2 * index
        kids.append(f"{page_id} 0 R")
        body = (
            "BT /F1 28 Tf 72 720 Td 36 TL "
            + " ".join(f"({_pdf_string(line)}) Tj T*" for line in lines)
            + " ET"
        )
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_id} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode()
        )
        objects.append(f"<< /Length {len(body)} >>\nstream\n{body}\nendstream".encode())
    header = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(pages)} >>".encode(),
    ]
    objects = header + objects + [b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + obj + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def pdf_scanned(images: list[Image.Image]) -> bytes:
    """A PDF of pictures only (a scan): no text layer at all."""
    buffer = io.BytesIO()
    first, *rest = [image.convert("RGB") for image in images]
    first.save(buffer, "PDF", save_all=True, append_images=rest, resolution=100)
    return buffer.getvalue()


def video_with_text(
    scenes: list[tuple[str, float]], size: tuple[int, int] = (480, 272), fps: int = 10
) -> bytes:
    """An MP4 whose scenes each show one line of text on its own background for `seconds`."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        colours = ["white", "lightyellow", "lightcyan", "mistyrose", "honeydew"]
        for index, (text, seconds) in enumerate(scenes):
            picture = slide([text], size, background=colours[index % len(colours)], font_size=30)
            for _ in range(max(1, int(seconds * fps))):
                for packet in stream.encode(av.VideoFrame.from_image(picture)):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


class RememberingEngine:
    """Wraps a real OCR engine; answers a picture it has read before from memory and counts the
    pictures it really read (tests read each generated picture once per process)."""

    def __init__(self, engine):
        self.engine = engine
        self.name = engine.name
        self.reads = 0
        self._seen: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def read_lines(self, image: Image.Image) -> list[str]:
        key = hashlib.md5(image.convert("RGB").tobytes() + repr(image.size).encode()).hexdigest()
        with self._lock:
            if key not in self._seen:
                self._seen[key] = self.engine.read_lines(image)
                self.reads += 1
            return self._seen[key]
