"""media_analysis through the real openai client against OpenAITestServer on loopback."""

from __future__ import annotations

import base64
import hashlib
import io
import struct
import time
import urllib.error
import urllib.request
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import openai
import pytest
from PIL import Image

from devtools.openai_server import OpenAITestServer
from social_tui_media import settings as config
from social_tui_media.media.vision import (
    AnalysisConfigError,
    AnalysisError,
    RetryPolicy,
    analyze_media,
    estimate_cost,
    make_client,
    prepare_images,
)

FAST = RetryPolicy(attempts=6, base_delay=0.001, max_delay=0.05)
MODEL = "gpt-4o-mini"


@pytest.fixture
def server():
    with OpenAITestServer() as srv:
        yield srv


@pytest.fixture
def client(server: OpenAITestServer) -> openai.OpenAI:
    settings = config.Settings(openai_api_key="test-key", openai_base_url=server.base_url)
    return make_client(settings)


def _image(tmp_path: Path, name: str, size: tuple[int, int], color=(30, 120, 200)) -> Path:
    path = tmp_path / name
    Image.new("RGB", size, color).save(path)
    return path


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    return _image(tmp_path, "photo.jpg", (640, 480))


def _make_mp4(path: Path, seconds: int = 2, fps: int = 12, gop: int = 6, rotation: int = 0) -> Path:
    """A small 320x240 MP4 whose colour changes every frame, so sampled frames differ."""
    for codec in ("mpeg4", "libx264"):
        try:
            with av.open(str(path), mode="w") as container:
                stream = container.add_stream(codec, rate=fps)
                stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
                stream.codec_context.gop_size = gop
                if rotation:
                    stream.set_display_rotation(rotation)
                for i in range(seconds * fps):
                    shade = int(255 * i / (seconds * fps))
                    image = Image.new("RGB", (320, 240), (shade, 255 - shade, 80))
                    frame = av.VideoFrame.from_image(image)
                    container.mux(stream.encode(frame))
                container.mux(stream.encode(None))
            return path
        except (av.FFmpegError, ValueError):
            continue
    pytest.fail("PyAV could encode neither mpeg4 nor libx264")


def _make_pdf(path: Path, page_count: int) -> Path:
    """A PDF with pages of distinct sizes (Pillow writes one image per page at 72 dpi)."""
    pages = [Image.new("RGB", (800 - 100 * i, 600), (40 * i, 90, 160)) for i in range(page_count)]
    pages[0].save(path, save_all=True, append_images=pages[1:], resolution=72.0)
    return path


def _data_url_bytes(data_url: str) -> bytes:
    return base64.b64decode(data_url.split(",", 1)[1])


# ---------------------------------------------------------------- images


def test_image_is_analysed_with_all_fields(server, client, photo):
    result = analyze_media(client, MODEL, photo, "image/jpeg", retry_policy=FAST)

    assert set(result.analysis) == {"description", "text_in_image", "tags", "kind"}
    assert result.analysis["description"] == "1 image(s); first image 640x480"
    assert result.analysis["text_in_image"] == ""
    assert result.analysis["tags"] == ["test"]
    assert result.analysis["kind"] == "photo"
    assert result.model == MODEL
    assert result.frames == 1
    assert result.analysis_time_ms >= 0
    request = server.calls[0]["request"]
    assert request["response_format"] == {"type": "json_object"}
    assert request["temperature"] == 0
    assert [m["role"] for m in request["messages"]] == ["system", "user"]


def test_large_image_is_downscaled_to_1536_on_the_long_side(server, client, tmp_path):
    big = _image(tmp_path, "big.png", (4000, 3000))

    analyze_media(client, MODEL, big, "image/png", retry_policy=FAST)

    assert server.calls[0]["image_sizes"] == [(1536, 1152)]


def test_transparent_png_is_flattened_onto_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (50, 40), (0, 0, 0, 0)).save(path)

    (url,) = prepare_images(path, "image/png")

    assert url.startswith("data:image/jpeg;base64,")
    decoded = Image.open(io.BytesIO(_data_url_bytes(url)))
    assert decoded.getpixel((25, 20)) >= (250, 250, 250)


def test_decompression_bomb_is_unreadable_media_and_never_sent(server, client, tmp_path):
    # A PNG header claiming 30000x30000 pixels: Pillow must refuse it before decoding.
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))

    with pytest.raises(AnalysisError) as caught:
        analyze_media(client, MODEL, bomb, "image/png", retry_policy=FAST)

    assert caught.value.kind == "unreadable_media"
    assert server.calls == []


def test_corrupt_image_is_unreadable_media(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"<html>403 Forbidden</html>")

    with pytest.raises(AnalysisError) as caught:
        prepare_images(path, "image/jpeg")

    assert caught.value.kind == "unreadable_media"


def test_unsupported_mime_type_is_unreadable_media(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")

    with pytest.raises(AnalysisError) as caught:
        prepare_images(path, "text/plain")

    assert caught.value.kind == "unreadable_media"
    assert "text/plain" in str(caught.value)


# ---------------------------------------------------------------- video and PDF


@pytest.mark.parametrize("gop", [6, 48], ids=["keyframe-every-half-second", "one-keyframe"])
def test_video_sends_the_requested_number_of_distinct_frames(server, client, tmp_path, gop):
    video = _make_mp4(tmp_path / "clip.mp4", gop=gop)

    result = analyze_media(client, MODEL, video, "video/mp4", retry_policy=FAST)

    call = server.calls[0]
    assert call["images"] == 4
    assert result.frames == 4
    assert len(set(call["image_sha256"])) == 4  # spread over the clip, not one frame 4x
    assert call["image_sizes"] == [(320, 240)] * 4


def test_video_frames_follow_the_frames_argument(tmp_path):
    video = _make_mp4(tmp_path / "clip.mp4")

    assert len(prepare_images(video, "video/mp4", frames=2)) == 2


def test_rotated_phone_video_frames_are_sent_upright(server, client, tmp_path):
    video = _make_mp4(tmp_path / "portrait.mov", rotation=90)

    analyze_media(client, MODEL, video, "video/quicktime", retry_policy=FAST)

    assert server.calls[0]["image_sizes"] == [(240, 320)] * 4


def test_undecodable_video_falls_back_to_the_thumbnail(server, client, tmp_path):
    video = tmp_path / "broken.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 500)
    thumbnail = _image(tmp_path, "thumb.jpg", (320, 180))

    result = analyze_media(client, MODEL, video, "video/mp4", thumbnail, retry_policy=FAST)

    assert result.frames == 1
    assert server.calls[0]["image_sizes"] == [(320, 180)]


def test_undecodable_video_without_thumbnail_is_unreadable_media(server, client, tmp_path):
    video = tmp_path / "broken.webm"
    video.write_bytes(b"not a video at all")

    with pytest.raises(AnalysisError) as caught:
        analyze_media(client, MODEL, video, "video/webm", retry_policy=FAST)

    assert caught.value.kind == "unreadable_media"
    assert server.calls == []


def test_pdf_sends_its_first_three_pages_at_about_1024px(server, client, tmp_path):
    pdf = _make_pdf(tmp_path / "deck.pdf", page_count=4)

    result = analyze_media(client, MODEL, pdf, "application/pdf", retry_policy=FAST)

    sizes = server.calls[0]["image_sizes"]
    assert result.frames == 3
    assert len(sizes) == 3
    assert all(abs(max(size) - 1024) <= 1 for size in sizes)
    # page order kept: the pages are 800, 700 and 600 points wide, all 600 high
    assert [round(w / h, 2) for w, h in sizes] == [1.33, 1.17, 1.0]


def test_corrupt_pdf_is_unreadable_media(tmp_path):
    pdf = tmp_path / "broken.pdf"
    pdf.write_bytes(b"%PDF-1.4\ngarbage")

    with pytest.raises(AnalysisError) as caught:
        prepare_images(pdf, "application/pdf")

    assert caught.value.kind == "unreadable_media"


# ---------------------------------------------------------------- retries


def test_429_with_retry_after_is_honoured_then_succeeds(server, client, photo):
    server.script(("status", 429, {"Retry-After": "0.3"}), "ok")
    policy = RetryPolicy(attempts=6, base_delay=0.001, max_delay=5.0)

    result = analyze_media(client, MODEL, photo, "image/jpeg", retry_policy=policy)

    assert result.analysis["kind"] == "photo"
    assert len(server.calls) == 2
    assert server.calls[1]["time"] - server.calls[0]["time"] >= 0.3


def test_retry_after_is_capped_by_max_delay(server, client, photo):
    server.script(("status", 429, {"Retry-After": "3600"}), "ok")
    started = time.monotonic()

    analyze_media(client, MODEL, photo, "image/jpeg", retry_policy=FAST)

    assert len(server.calls) == 2
    assert time.monotonic() - started < 2.0


def test_burst_of_429s_is_survived(server, client, photo):
    server.script(*[("status", 429)] * 5)

    result = analyze_media(client, MODEL, photo, "image/jpeg", retry_policy=FAST)

    assert result.frames == 1
    assert len(server.calls) == 6


def test_429_beyond_the_attempt_limit_is_rate_limited(server, client, photo):
    server.script(*[("status", 429)] * 10)

    with pytest.raises(AnalysisError) as caught:
        analyze_media(client, MODEL, photo, "image/jpeg", retry_policy=FAST)

    assert caught.value.kind == "rate_limited"
    assert caught.value.status_code == 429
    assert len(server.calls) == 6


def test_insufficient_quota_429_is_an_api_error_without_retry(server, client, photo):
    # OpenAI answers 429 with code insufficient_quota when billing is exhausted:
    # waiting does not help, so it is not retried.
    quota = {
        "message": "You exceeded your current quota, please check your plan.",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
    server.script(("error", 429, quota))

    with pytest.raises(AnalysisError) as caught:
        analyze_media(client, MODEL, photo, "image/jpeg", retry_policy=FAST)

    assert caught.value.kind == "api_error"
    assert "exceeded your current quota" in str(caught.value)
    assert len(server.calls) == 1


def test_500_then_success(server, client, photo):
    server.script(("status", 500))

    result = analyze_media(client, MODEL, photo, "image/jpeg", retry_policy=FAST)

    assert result.frames == 1
    assert [c["behaviour"] for c in server.calls] == [("status", 500), "ok"]


def test_dropped_connection_is_retried(server, client, photo):
    server.script("disconnect")

    result = analyze_media(client, MODEL, photo, "image/jpeg", retry_policy=FAST)

    assert result.analysis["tags"] == ["test"]
    assert len(server.calls) == 2


def test_unreachable_server_is_a_connection_error(photo):
    with OpenAITestServer() as srv:
        base_url = srv.base_url  # the port is closed again once the server stops
    client = make_client(config.Settings(openai_api_key="k", openai_base_url=base_url))

    with pytest.raises(AnalysisError) as caught:
        analyze_media(client, MODEL, photo, "image/jpeg", retry_policy=FAST)

    assert caught.value.kind == "connection"


def test_400_is_an_api_error_with_the_apis_message_and_no_retry(server, client, photo):
    server.script(("status", 400, "Invalid image: could not process image."))

    with pytest.raises(AnalysisError) as caught:
        analyze_media(client, MODEL, photo, "image/jpeg", retry_policy=FAST)

    assert caught.value.kind == "api_error"
    assert caught.value.status_code == 400
    assert "400" in str(caught.value)
    assert "Invalid image: could not process image." in str(caught.value)
    assert len(server.calls) == 1


# ---------------------------------------------------------------- model output


def test_malformed_answer_is_retried_once_then_succeeds(server, client, photo):
    server.script("malformed")

    result = analyze_media(client, MODEL, photo, "image/jpeg", retry_policy=FAST)

    assert result.analysis["kind"] == "photo"
    assert len(server.calls) == 2


def test_malformed_twice_is_bad_output_quoting_the_reply(server, client, photo):
    server.script("malformed", "malformed")

    with pytest.raises(AnalysisError) as caught:
        analyze_media(client, MODEL, photo, "image/jpeg", retry_policy=FAST)

    assert caught.value.kind == "bad_output"
    assert "Sure! Here is" in str(caught.value)
    assert caught.value.prompt_tokens > 0  # both attempts were paid for
    assert len(server.calls) == 2


def test_missing_required_key_is_bad_output(server, client, photo):
    incomplete = '{"description": "a cat", "tags": ["cat"], "kind": "photo"}'
    server.script(("content", incomplete), ("content", incomplete))

    with pytest.raises(AnalysisError) as caught:
        analyze_media(client, MODEL, photo, "image/jpeg", retry_policy=FAST)

    assert caught.value.kind == "bad_output"
    assert "text_in_image" in str(caught.value)


def test_reply_cut_off_at_the_token_limit_is_bad_output(server, client, photo):
    cut = '{"description": "A long document with a lot of text'
    server.script(("content", cut, "length"), ("content", cut, "length"))

    with pytest.raises(AnalysisError) as caught:
        analyze_media(client, MODEL, photo, "image/jpeg", retry_policy=FAST)

    assert caught.value.kind == "bad_output"
    assert "cut off" in str(caught.value)
    assert len(server.calls) == 2


def test_fenced_json_is_accepted_and_unknown_kind_becomes_other(server, client, photo):
    reply = (
        '```json\n{"description": "A meme.", "text_in_image": "HELLO\\nWORLD",'
        ' "tags": ["meme", "meme", " humour "], "kind": "meme"}\n```'
    )
    server.script(("content", reply))

    result = analyze_media(client, MODEL, photo, "image/jpeg", retry_policy=FAST)

    assert result.analysis == {
        "description": "A meme.",
        "text_in_image": "HELLO\nWORLD",
        "tags": ["meme", "humour"],
        "kind": "other",
    }
    assert len(server.calls) == 1


# ---------------------------------------------------------------- tokens, cost, config


def test_tokens_and_cost_are_summed_over_a_retried_bad_output(server, client, photo):
    server.script("malformed")

    result = analyze_media(client, MODEL, photo, "image/jpeg", retry_policy=FAST)

    assert result.prompt_tokens > 0
    assert result.completion_tokens > 0
    assert result.cost_usd > 0
    assert result.cost_usd == pytest.approx(
        estimate_cost(MODEL, result.prompt_tokens, result.completion_tokens)
    )
    single = analyze_media(client, MODEL, photo, "image/jpeg", retry_policy=FAST)
    assert result.prompt_tokens == 2 * single.prompt_tokens


def test_estimate_cost_uses_the_price_table():
    assert estimate_cost("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert estimate_cost("gpt-4o-mini-2024-07-18", 1_000_000, 0) == pytest.approx(0.15)
    assert estimate_cost("gpt-4o", 1_000_000, 0) == pytest.approx(2.50)
    assert estimate_cost("gpt-4.1-mini", 0, 1_000_000) == pytest.approx(1.60)
    assert estimate_cost("llava:13b", 1_000_000, 1_000_000) == 0.0


def test_missing_api_key_is_a_config_error():
    with pytest.raises(AnalysisConfigError, match="OPENAI_API_KEY"):
        make_client(config.Settings(openai_api_key=None))


def test_make_client_uses_the_base_url_and_disables_sdk_retries(server):
    client = make_client(config.Settings(openai_api_key="k", openai_base_url=server.base_url))

    assert str(client.base_url).rstrip("/") == server.base_url
    assert client.max_retries == 0


# ---------------------------------------------------------------- the test server itself


def test_test_server_requires_a_bearer_key(server):
    request = urllib.request.Request(server.base_url + "/chat/completions", data=b"{}", method="POST")

    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)

    assert caught.value.code == 401
    assert b'"error"' in caught.value.read()


def test_one_rejected_image_among_concurrent_analyses_fails_alone(server, client, tmp_path):
    paths = [_image(tmp_path, f"{i}.jpg", (300 + i, 200)) for i in range(5)]
    rejected = prepare_images(paths[2], "image/jpeg")[0]
    server.reject_image_sha256(
        {hashlib.sha256(_data_url_bytes(rejected)).hexdigest()},
        400,
        "Image rejected by policy.",
    )
    server.latency = 0.05

    def run(path: Path):
        try:
            return analyze_media(client, MODEL, path, "image/jpeg", retry_policy=FAST)
        except AnalysisError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=5) as pool:
        outcomes = list(pool.map(run, paths))

    failures = [i for i, o in enumerate(outcomes) if isinstance(o, AnalysisError)]
    assert failures == [2]
    assert outcomes[2].kind == "api_error"
    assert "Image rejected by policy." in str(outcomes[2])
    assert len(server.calls) == 5
