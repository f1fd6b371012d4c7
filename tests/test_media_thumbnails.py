"""Thumbnails of real files: images downscaled, videos as a contact sheet with the duration, a
PDF's first page; hostile files give none, leave nothing behind and say so in one line."""

from __future__ import annotations

import json
import logging
import stat
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from devtools.media_server import sample_media
from social_tui_media.media.cache import MediaCache
from social_tui_media.media.thumbnails import (
    THUMB_SIDE,
    ThumbnailError,
    ensure_thumbnail,
    format_duration,
    make_thumbnail,
    render_thumbnail,
    thumbnail_path,
)
from tests.conftest import ROOT
from tests.test_media_vision import _make_mp4, _make_pdf

MD5 = "0123456789abcdef0123456789abcdef"


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, with almost no data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_a_large_photo_is_downscaled_to_the_thumbnail_side_keeping_its_aspect(tmp_path):
    source = tmp_path / "photo.jpg"
    Image.new("RGB", (2048, 1536), (200, 30, 30)).save(source, "JPEG")
    target = make_thumbnail(source, "image/jpeg", thumbnail_path(tmp_path / "cache", MD5))
    with Image.open(target) as thumb:
        assert thumb.format == "WEBP" and thumb.size == (THUMB_SIDE, THUMB_SIDE * 3 // 4)
        assert thumb.getpixel((10, 10))[0] > 150  # still red


def test_thumbnails_are_private_like_the_cache_and_written_whole(tmp_path):
    source = tmp_path / "photo.png"
    Image.new("RGBA", (100, 50), (0, 0, 0, 0)).save(source)
    target = make_thumbnail(source, "image/png", thumbnail_path(tmp_path / "cache", MD5))
    assert target == tmp_path / "cache" / "thumbs" / f"{MD5}.webp"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temp file left
    with Image.open(target) as thumb:
        assert thumb.getpixel((5, 5))[:3] == (255, 255, 255)  # transparency on white, not black


def test_a_video_becomes_a_contact_sheet_of_frames_with_its_duration(tmp_path):
    video = _make_mp4(tmp_path / "clip.mp4", seconds=3)
    sheet = render_thumbnail(video, "video/mp4")
    assert sheet.width <= THUMB_SIDE and sheet.height > 0
    # Six frames of a clip going from green to red: the left and right cells differ.
    left, right = sheet.getpixel((10, 10)), sheet.getpixel((sheet.width - 60, 10))
    assert left != right
    # The duration sits in the bottom-right corner: white text on black.
    corner = sheet.crop((sheet.width - 60, sheet.height - 30, sheet.width, sheet.height))
    colours = {corner.getpixel((x, y)) for x in range(corner.width) for y in range(corner.height)}
    assert (0, 0, 0) in colours and any(min(c) > 200 for c in colours)


def test_a_pdf_gives_its_first_page(tmp_path):
    pdf = _make_pdf(tmp_path / "deck.pdf", 3)
    page = render_thumbnail(pdf, "application/pdf")
    assert max(page.size) == THUMB_SIDE
    assert page.size[0] > page.size[1]  # the first page is 800x600, landscape


def test_the_sample_servers_video_and_document_give_thumbnails(tmp_path):
    for path, mime in (("/playlist/vid/x", "video/mp4"), ("/dms/document/y", "application/pdf")):
        data, _ = sample_media(path)
        source = tmp_path / f"source{len(data)}"
        source.write_bytes(data)
        assert render_thumbnail(source, mime).width > 0


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_claiming(60_000, 60_000))
    with pytest.raises(ThumbnailError, match="claims 60000x60000 pixels|exceeds limit"):
        render_thumbnail(bomb, "image/png")


@pytest.mark.parametrize(
    ("name", "mime", "data"),
    [
        ("broken.mp4", "video/mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x17" * 4000),
        ("broken.pdf", "application/pdf", b"%PDF-1.4\n" + b"garbage" * 100),
        ("broken.jpg", "image/jpeg", b"\xff\xd8\xff\xe0" + b"\x00" * 100),
    ],
)
def test_a_broken_file_gives_no_thumbnail_and_one_log_line(tmp_path, caplog, name, mime, data):
    source = tmp_path / name
    source.write_bytes(data)
    cache_root = tmp_path / "cache"
    with caplog.at_level(logging.WARNING, logger="social_tui_media.media.thumbnails"):
        assert ensure_thumbnail(cache_root, source, MD5, mime) is None
    assert not thumbnail_path(cache_root, MD5).exists()
    assert not (cache_root / "thumbs").exists() or list((cache_root / "thumbs").iterdir()) == []
    [record] = [r for r in caplog.records if r.name == "social_tui_media.media.thumbnails"]
    assert name in record.getMessage() and "\n" not in record.getMessage()


def test_a_thumbnail_is_made_once_and_reused(tmp_path):
    cache = MediaCache(tmp_path / "cache")
    cache.ensure_dirs()
    source = cache.root / "images" / f"{MD5}.jpg"
    Image.new("RGB", (640, 480), (0, 90, 200)).save(source, "JPEG")
    row = {
        "md5_sum": MD5,
        "mime_type": "image/jpeg",
        "local_file_path": str(source),
        "download_status": "downloaded",
    }
    first = cache.thumbnail_of(row)
    made_at = first.stat().st_mtime_ns
    source.unlink()  # a second ask reads nothing but the thumbnail
    assert cache.thumbnail_of(row) == first and first.stat().st_mtime_ns == made_at


def test_a_row_pointing_outside_the_cache_is_never_read(tmp_path):
    cache = MediaCache(tmp_path / "cache")
    outside = tmp_path / "secret.jpg"
    Image.new("RGB", (10, 10)).save(outside, "JPEG")
    row = {
        "md5_sum": MD5,
        "mime_type": "image/jpeg",
        "local_file_path": str(outside),
        "download_status": "downloaded",
    }
    assert cache.file_of(row) is None and cache.thumbnail_of(row) is None
    assert not thumbnail_path(cache.root, MD5).exists()


def test_durations_read_like_a_player_shows_them():
    assert [format_duration(s) for s in (7.4, 750, 3723)] == ["0:07", "12:30", "1:02:03"]


def test_a_path_that_is_not_an_md5_is_refused():
    with pytest.raises(ValueError):
        thumbnail_path(Path("/cache"), "../../etc/passwd")


# the commands -----------------------------------------------------------------------------------


def manage_media(env, cwd, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage_media.py"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_downloads_make_no_thumbnail_and_the_thumbnails_command_makes_each_once(
    shown_media, settings, cli_env, tmp_path
):
    thumbs = settings.cache_dir / "thumbs"
    assert not thumbs.exists()  # never in the download path
    first = manage_media(cli_env, tmp_path, "thumbnails", "--format", "json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    md5s = {r["md5_sum"] for r in shown_media if r["download_status"] == "downloaded"}
    assert report["made"] == report["files_seen"] == len(md5s) and report["failed"] == 0
    assert {p.stem for p in thumbs.glob("*.webp")} == md5s
    again = json.loads(manage_media(cli_env, tmp_path, "thumbnails", "--format", "json").stdout)
    assert again["made"] == 0 and again["existing"] == len(md5s)


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_a_hostile_cached_file_is_one_warning_line_and_exit_1_the_rest_are_made(
    shown_media, settings, cli_env, tmp_path
):
    image = next(r for r in shown_media if r["mime_type"] == "image/jpeg")
    Path(image["local_file_path"]).write_bytes(_png_claiming(70_000, 70_000))
    result = manage_media(cli_env, tmp_path, "thumbnails", "--format", "json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["failed"] == 1 and report["made"] == report["files_seen"] - 1
    [line] = [line for line in result.stderr.splitlines() if "no thumbnail" in line]
    assert image["media_id"] in line and ("70000x70000" in line or "decompression bomb" in line)
    assert not thumbnail_path(settings.cache_dir, image["md5_sum"]).exists()


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_verify_cache_repair_rebuilds_missing_thumbnails(shown_media, settings, cli_env, tmp_path):
    assert manage_media(cli_env, tmp_path, "thumbnails").returncode == 0
    removed = sorted((settings.cache_dir / "thumbs").glob("*.webp"))[:3]
    for path in removed:
        path.unlink()
    result = manage_media(cli_env, tmp_path, "verify-cache", "--repair", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["thumbnails_made"] == 3
    assert all(path.is_file() for path in removed)
