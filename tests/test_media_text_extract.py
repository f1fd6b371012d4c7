"""Local text extraction with the real engines on generated media: slides and banners
(straight, tilted, noisy, JPEG quality 50), PDFs with and without a text layer, a video."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from devtools import text_media
from social_tui_media.jobs.extract_text import confirmed_near_duplicates, texts_agree
from social_tui_media.media.phash import hamming, phash
from social_tui_media.media.text_extract import ExtractionError, extract_text
from tests.ocr_engine import shared_engine

SLIDE = ["DynamoDB launch", "Serverless at scale", "re:Invent 2025"]


@pytest.fixture(scope="module")
def engine():
    return shared_engine()


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_a_straight_slide_is_read_line_by_line(engine, tmp_path):
    result = extract_text(
        write(tmp_path, "s.png", text_media.png(text_media.slide(SLIDE))), "image/png", engine
    )
    assert result.text.splitlines() == SLIDE
    assert result.engine.startswith("rapidocr") and len(result.phash) == 16


def test_a_tilted_slide_at_jpeg_quality_50_is_read(engine, tmp_path):
    tilted = text_media.slide(SLIDE).rotate(6, expand=True, fillcolor="white")
    result = extract_text(write(tmp_path, "t.jpg", text_media.jpeg(tilted, 50)), "image/jpeg", engine)
    assert result.text.splitlines() == SLIDE


def test_a_noisy_low_quality_slide_is_read(engine, tmp_path):
    lines = ["Cost anomalies", "Weekly report"]
    image = text_media.noisy(text_media.slide(lines))
    result = extract_text(write(tmp_path, "n.jpg", text_media.jpeg(image, 50)), "image/jpeg", engine)
    assert result.text.splitlines() == lines


def test_a_tilted_banner_over_a_photo_is_read(engine, tmp_path):
    image = text_media.banner("Venetian Expo Hall keynote stage")
    result = extract_text(write(tmp_path, "b.jpg", text_media.jpeg(image, 50)), "image/jpeg", engine)
    assert result.text == "Venetian Expo Hall keynote stage"


def test_a_pdf_text_layer_is_read_without_ocr(engine, tmp_path):
    data = text_media.pdf_with_text([["Cost anomalies report", "Q3 findings"], ["Second page"]])
    before = engine.reads
    result = extract_text(write(tmp_path, "a.pdf", data), "application/pdf", engine)
    assert engine.reads == before and result.engine == "pdfium"
    assert result.segments == [
        {"page": 1, "source": "layer", "text": "Cost anomalies report\nQ3 findings"},
        {"page": 2, "source": "layer", "text": "Second page"},
    ]


def test_a_scanned_pdf_page_is_ocrd(engine, tmp_path):
    data = text_media.pdf_scanned([text_media.slide(["Scanned budget memo"])])
    result = extract_text(write(tmp_path, "s.pdf", data), "application/pdf", engine)
    assert result.segments == [{"page": 1, "source": "ocr", "text": "Scanned budget memo"}]
    assert result.engine == f"pdfium+{engine.name}"


def test_video_text_is_kept_with_the_time_of_its_scene(engine, tmp_path):
    data = text_media.video_with_text([("Opening keynote", 1.5), ("Graviton5 announced", 1.5)])
    result = extract_text(write(tmp_path, "v.mp4", data), "video/mp4", engine)
    assert result.segments == [
        {"t": 0.0, "text": "Opening keynote"},
        {"t": 1.5, "text": "Graviton5 announced"},
    ]
    assert result.text == "Opening keynote\nGraviton5 announced"


def test_an_unreadable_file_is_an_extraction_error(engine, tmp_path):
    with pytest.raises(ExtractionError) as caught:
        extract_text(write(tmp_path, "x.jpg", b"<html>not an image</html>"), "image/jpeg", engine)
    assert caught.value.kind == "unreadable"


def test_a_reencoded_resized_or_cropped_copy_hashes_close_and_other_pictures_far():
    base = text_media.banner("Venetian Expo Hall keynote stage")
    resized = Image.open(io.BytesIO(text_media.jpeg(base.resize((640, 427)), 40)))
    w, h = base.size
    cropped = base.crop((int(w * 0.03), int(h * 0.03), int(w * 0.97), int(h * 0.97)))
    other = text_media.banner("Venetian Expo Hall keynote stage", text_media.photo(seed=5))
    assert hamming(phash(base), phash(resized)) <= 2
    assert hamming(phash(base), phash(cropped)) <= 10
    assert hamming(phash(base), phash(other)) > 16


def test_texts_agree_through_ocr_noise_but_not_across_a_changed_line():
    assert texts_agree("DynamoDB launch\nServerless at scale", "DynamoDB Iaunch\nserverless at scale")
    assert texts_agree(None, "")
    assert not texts_agree(
        "Cost anomalies\nWeekly report\nRegion us-east-1", "Cost anomalies\nWeekly report\nRegion eu-west-1"
    )
    assert not texts_agree("Results\nWeek 12", "Results\nWeek 13")
    assert not texts_agree("Slide one", None)


def test_near_duplicates_need_close_hashes_and_agreeing_text():
    me = "ffff0000ffff0000"
    close, far = "ffff0000ffff00ff", "0000ffff0000ffff"
    candidates = [
        {"media_id": "a", "phash": close, "extracted_text": "Venetian Expo Hall"},
        {"media_id": "b", "phash": close, "extracted_text": "Venetian Expo Hall day two"},
        {"media_id": "c", "phash": far, "extracted_text": "Venetian Expo Hall"},
    ]
    assert [c["media_id"] for c in confirmed_near_duplicates("Venetian Expo Hall", me, candidates)] == ["a"]
    no_text = [{"media_id": "d", "phash": close, "extracted_text": ""}]
    assert confirmed_near_duplicates("", me, no_text) == []  # 8 bits apart: too far without text to confirm
