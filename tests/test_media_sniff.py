"""media_sniff on real generated files, and the sample content the test server serves."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from pathlib import Path
from urllib.parse import urlsplit

import av
import pillow_heif
import pypdfium2
import pytest
from PIL import Image

from devtools import media_server as media_test_server
from devtools.media_server import MediaTestServer, rewrite_hosts, sample_media, serve_samples
from social_tui_media.media.sniff import (
    MediaDimensions,
    MediaKind,
    looks_like_html,
    probe_dimensions,
    sniff_media_kind,
)

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = next(
    d for d in (ROOT / "samples", Path("/work/shared/samples")) if (d / "posts_scrape1.json").is_file()
)
SCRAPE1 = SAMPLES / "posts_scrape1.json"
SCRAPE2 = SAMPLES / "posts_scrape2_resigned.json"


def image_bytes(fmt: str, size: tuple[int, int] = (123, 45), mode: str = "RGB") -> bytes:
    if fmt == "HEIF":
        pillow_heif.register_heif_opener()
    out = io.BytesIO()
    Image.new(mode, size, (10, 200, 30)).save(out, fmt)
    return out.getvalue()


def video_bytes(container_format: str, codec: str, size=(64, 48), frames=10, fps=10) -> bytes:
    out = io.BytesIO()
    container = av.open(out, "w", format=container_format)
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p"
    for i in range(frames):
        frame = av.VideoFrame.from_image(Image.new("RGB", size, (20 * i, 50, 90)))
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height; the pixel data is absent."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data)
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + b"\x00\x00\x00\x08free"


def ebml(doctype: bytes) -> bytes:
    doc = b"\x42\x82" + bytes([0x80 | len(doctype)]) + doctype
    header = b"\x42\x86\x81\x01\x42\xf7\x81\x01" + doc
    return b"\x1a\x45\xdf\xa3" + bytes([0x80 | len(header)]) + header


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- sniffing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "mime", "ext", "category"),
    [
        (lambda: image_bytes("JPEG"), "image/jpeg", "jpg", "images"),
        (lambda: image_bytes("PNG"), "image/png", "png", "images"),
        (lambda: image_bytes("GIF", mode="P"), "image/gif", "gif", "images"),
        (lambda: image_bytes("WEBP"), "image/webp", "webp", "images"),
        (lambda: image_bytes("AVIF"), "image/avif", "avif", "images"),
        (lambda: image_bytes("HEIF"), "image/heic", "heic", "images"),
        (lambda: video_bytes("mp4", "mpeg4"), "video/mp4", "mp4", "videos"),
        (lambda: video_bytes("mp4", "libx264"), "video/mp4", "mp4", "videos"),
        (lambda: video_bytes("mov", "mpeg4"), "video/quicktime", "mov", "videos"),
        (lambda: video_bytes("webm", "libvpx"), "video/webm", "webm", "videos"),
        (lambda: video_bytes("matroska", "mpeg4"), "video/x-matroska", "mkv", "videos"),
        (lambda: sample_media("/dms/document/v2/X/0/1")[0], "application/pdf", "pdf", "documents"),
    ],
    ids=["jpeg", "png", "gif", "webp", "avif", "heic", "mp4", "h264", "mov", "webm", "mkv", "pdf"],
)
def test_real_files_are_sniffed_from_their_bytes(make, mime, ext, category):
    head = make()[:4096]

    assert sniff_media_kind(head) == MediaKind(mime, ext, category)


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (ftyp(b"M4V ", b"M4V ", b"mp42", b"isom"), "video/x-m4v"),
        (ftyp(b"qt  ", b"qt  "), "video/quicktime"),
        (ftyp(b"mif1", b"mif1", b"avif"), "image/avif"),
        (ftyp(b"mif1", b"mif1", b"heic"), "image/heic"),
        (ftyp(b"msf1", b"msf1"), "image/heif"),
        (ftyp(b"abcd", b"abcd", b"mp41"), "video/mp4"),
        (ebml(b"webm"), "video/webm"),
        (ebml(b"matroska"), "video/x-matroska"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "application/pdf"),
        (b"GIF87a\x01\x00\x01\x00", "image/gif"),
    ],
)
def test_container_brands_decide_the_type(head, mime):
    kind = sniff_media_kind(head)

    assert kind is not None and kind.mime_type == mime


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"hello world",
        b"<!DOCTYPE html><html></html>",
        b'{"error": "expired"}',
        bytes(range(256)) * 4,
        ftyp(b"M4A ", b"M4A "),  # audio only
        ebml(b"unknown"),
        b"RIFF\x00\x00\x00\x00WAVEfmt ",
    ],
    ids=["empty", "text", "html", "json", "noise", "m4a", "ebml-other", "wav"],
)
def test_unknown_content_is_none(head):
    assert sniff_media_kind(head) is None


@pytest.mark.parametrize(
    "head",
    [
        b"<!DOCTYPE html><html><body>Sign in</body></html>",
        b"<html lang='en'>",
        b"\xef\xbb\xbf  \r\n\t<!doctype HTML>",
        b"\n\n<HTML>",
        b"<head><title>403</title></head>",
        b"<body>Access denied</body>",
        b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0">',
        b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml">',
        b"<!-- cached page --><html>",
    ],
)
def test_html_pages_are_recognised(head):
    assert looks_like_html(head)


@pytest.mark.parametrize(
    "head",
    [
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>',
        b"\xff\xd8\xff\xe0\x00\x10JFIF<html>",
        b"%PDF-1.4 <html>",
        b"plain text that mentions <html> later",
        b"",
    ],
)
def test_media_and_non_html_text_are_not_html(head):
    assert not looks_like_html(head)


# --- dimensions ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "AVIF", "HEIF"])
def test_image_dimensions_come_from_the_header(tmp_path, fmt):
    data = image_bytes(fmt, size=(123, 45))
    kind = sniff_media_kind(data)
    assert kind is not None

    dims = probe_dimensions(write(tmp_path, "img", data), kind)

    assert dims == MediaDimensions(123, 45, None)


def test_heic_dimensions_work_in_a_fresh_interpreter(tmp_path):
    # Other tests register pillow-heif themselves; a fresh process shows media_sniff does it.
    path = write(tmp_path, "photo.heic", image_bytes("HEIF", size=(40, 30)))
    code = (
        "import sys; from pathlib import Path; from social_tui_media.media import sniff as s; "
        "p = Path(sys.argv[1]); k = s.sniff_media_kind(p.read_bytes()); "
        "d = s.probe_dimensions(p, k); print(k.extension, d.width, d.height)"
    )

    result = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert result.stdout.split() == ["heic", "40", "30"]


@pytest.mark.parametrize(("fmt", "codec"), [("mp4", "libx264"), ("webm", "libvpx")])
def test_video_dimensions_and_duration(tmp_path, fmt, codec):
    data = video_bytes(fmt, codec, size=(96, 64), frames=20, fps=10)
    kind = sniff_media_kind(data)
    assert kind is not None

    dims = probe_dimensions(write(tmp_path, "video", data), kind)

    assert (dims.width, dims.height) == (96, 64)
    assert dims.duration_seconds == pytest.approx(2.0, abs=0.15)


def test_decompression_bomb_header_returns_size_without_decoding(tmp_path):
    path = write(tmp_path, "bomb.png", png_claiming(100_000, 100_000))
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)  # proves the file really trips Pillow's guard

    started = time.monotonic()
    dims = probe_dimensions(path, sniff_media_kind(path.read_bytes()))

    assert dims == MediaDimensions(100_000, 100_000, None)
    assert time.monotonic() - started < 1


def test_corrupt_image_gives_no_dimensions(tmp_path):
    data = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8
    path = write(tmp_path, "bad.jpg", data)

    assert probe_dimensions(path, sniff_media_kind(data)) == MediaDimensions(None, None, None)


def test_corrupt_video_gives_no_dimensions(tmp_path):
    data = ftyp(b"isom", b"isom", b"mp41") + bytes(range(256)) * 8
    path = write(tmp_path, "bad.mp4", data)

    assert probe_dimensions(path, sniff_media_kind(data)) == MediaDimensions(None, None, None)


def test_documents_have_no_dimensions(tmp_path):
    data = sample_media("/dms/document/v2/X/0/1")[0]
    path = write(tmp_path, "doc.pdf", data)

    assert probe_dimensions(path, sniff_media_kind(data)) == MediaDimensions()


# --- sample content from the test server -----------------------------------------------------


@pytest.fixture(scope="module")
def samples_server():
    with MediaTestServer() as server:
        urls = serve_samples(server, [SCRAPE1])
        yield server, urls


def download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback test server
        return resp.read()


def sample_posts() -> list[dict]:
    return json.loads(SCRAPE1.read_text())


def test_every_cdn_url_in_the_samples_serves_real_media(samples_server):
    server, urls = samples_server
    expected = {
        "/dms/image/": "image/jpeg",
        "/playlist/vid/": "video/mp4",
        "/dms/document/": "application/pdf",
    }

    seen = set()
    for original, served in urls.items():
        assert urlsplit(served).query == urlsplit(original).query
        kind = sniff_media_kind(download(served)[:4096])
        want = next(mime for marker, mime in expected.items() if marker in original)
        assert kind is not None and kind.mime_type == want, original
        seen.add(kind.mime_type)

    assert seen == set(expected.values())
    assert server.count(urlsplit(next(iter(urls.values()))).path) >= 1


def test_sample_images_have_the_posts_dimensions(samples_server, tmp_path):
    _, urls = samples_server
    checked = 0
    for post in sample_posts():
        media = post.get("media") or {}
        for image in media.get("images", []):
            if "DBC469CC94C4B47" in image["url"]:
                continue  # the dedup slot carries another post's bytes
            path = write(tmp_path, f"{checked}.jpg", download(urls[image["url"]]))
            dims = probe_dimensions(path, sniff_media_kind(path.read_bytes()))
            assert (dims.width, dims.height) == (image["width"], image["height"])
            checked += 1

    assert checked >= 6


def test_dedup_pair_serves_identical_bytes_and_other_media_differ(samples_server):
    _, urls = samples_server
    by_path = {urlsplit(o).path: download(s) for o, s in urls.items()}
    single = next(b for p, b in by_path.items() if "DECA26941BC5187" in p)
    carousel = next(b for p, b in by_path.items() if "DBC469CC94C4B47" in p)

    assert carousel == single
    digests = [hashlib.md5(b).hexdigest() for b in by_path.values()]
    assert len(set(digests)) == len(digests) - 1  # exactly one duplicate pair


def test_sample_pdf_opens_with_three_pages(samples_server):
    _, urls = samples_server
    url = next(s for o, s in urls.items() if "/dms/document/" in o)

    document = pypdfium2.PdfDocument(download(url))
    try:
        assert len(document) == 3
        page = document[2]
        text = page.get_textpage().get_text_range()
        assert "Slide 3 of 3" in text
    finally:
        document.close()


def test_sample_video_is_a_short_playable_mp4(samples_server, tmp_path):
    _, urls = samples_server
    url = next(s for o, s in urls.items() if "/playlist/vid/" in o)
    path = write(tmp_path, "v.mp4", download(url))

    dims = probe_dimensions(path, sniff_media_kind(path.read_bytes()))

    assert dims.width and dims.height and dims.width <= 128
    assert dims.duration_seconds == pytest.approx(1.0, abs=0.2)
    with av.open(str(path)) as container:
        assert sum(1 for _ in container.decode(video=0)) >= 5


def test_sample_content_is_deterministic():
    paths = ["/dms/image/v2/A/x/A/0/1", "/playlist/vid/v2/B/x/B/0/1", "/dms/document/v2/C/0/1"]
    first = [sample_media(p)[0] for p in paths]
    for cached in (media_test_server._jpeg, media_test_server._mp4, media_test_server._pdf):
        cached.cache_clear()

    again = [sample_media(p)[0] for p in paths]

    assert again == first
    assert sample_media(paths[0])[0] != sample_media("/dms/image/v2/Z/x/Z/0/1")[0]


def test_resigned_scrape_uses_the_same_paths():
    with MediaTestServer() as server:
        first = serve_samples(server, [SCRAPE1])
        second = serve_samples(server, [SCRAPE2])

    assert {urlsplit(u).path for u in second.values()} == {urlsplit(u).path for u in first.values()}
    assert set(first).isdisjoint(second)  # every URL was re-signed


def test_rewrite_hosts_points_sample_posts_at_the_server():
    text = SCRAPE1.read_text()

    rewritten = rewrite_hosts(text, "http://127.0.0.1:8123/")

    assert "media.licdn.com" not in rewritten and "dms.licdn.com" not in rewritten
    assert "http://127.0.0.1:8123/dms/image/v2/DECA26941BC5187/" in rewritten
    assert len(json.loads(rewritten)) == len(json.loads(text))


def test_server_requests_record_query_strings(samples_server):
    server, urls = samples_server
    original, served = next(iter(urls.items()))

    download(served)

    record = server.requests[-1]
    assert (record.method, record.path) == ("GET", urlsplit(original).path)
    assert record.query == urlsplit(original).query
