"""`export-gallery`: a static site that opens from disk, seen in a real headless Chromium (Debian's
`chromium`, driven by Playwright; no browser download), and the Markdown report."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from social_tui_media.jobs.gallery_pages import GalleryItem, index_html, item_html, markdown_report, web_url
from tests.conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
DOCS = ROOT / "docs"


def cli(env, cwd, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage_media.py"), *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def item(**changes) -> GalleryItem:
    fields = dict(
        media_id="med-1", page="items/med-1.html", post_id="p-1", media_type="image", mime_type="image/jpeg",
        status="downloaded", author_name="Ana L", author_username="ana", posted_at="2025-11-20",
        post_url="https://www.linkedin.com/feed/update/urn:li:activity:1", post_text="Great keynote",
        description="A speaker on stage", tags=("keynote",), text_in_image="", extracted_text="",
        thumb="thumbs/a.webp", file="media/a.jpg",
    )  # fmt: skip
    return GalleryItem(**(fields | changes))


def local_references(page: Path) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', page.read_text())


# pure pages -------------------------------------------------------------------------------------


def test_text_from_posts_is_never_markup_in_the_pages():
    hostile = item(post_text='<script>alert(1)</script>', description='"><img src=x onerror=alert(1)>',
                   author_name="<b>Eve</b>", tags=("<i>",))  # fmt: skip
    for page in (index_html([hostile], "t", "s"), item_html(hostile, None, None)):
        assert "<script>alert" not in page and "<img src=x" not in page and "<b>Eve" not in page
        assert "&lt;script&gt;" in page or "&lt;b&gt;Eve" in page


def test_only_http_links_lead_to_the_post():
    assert web_url("javascript:alert(1)") is None and web_url("file:///etc/passwd") is None
    assert web_url("https://www.linkedin.com/x") == "https://www.linkedin.com/x"
    page = item_html(item(post_url=web_url("javascript:alert(1)")), None, None)
    assert "javascript:" not in page and "The post on LinkedIn" not in page


def test_the_markdown_report_groups_media_by_post_and_escapes_the_data():
    first, second = (
        item(),
        item(media_id="med-2", thumb="thumbs/b.webp", file="media/b.jpg", description="A [chart](x)"),
    )
    report = markdown_report([first, second], "PyCon 2025", "2 media")
    assert report.count("## Ana L (@ana) · 2025-11-20") == 1
    assert "[![A speaker on stage](thumbs/a.webp)](media/a.jpg)" in report
    assert "A \\[chart\\](x)" in report  # a description cannot make a link
    assert "> Great keynote" in report and "[The post](https://www.linkedin.com/" in report


# the exported site ------------------------------------------------------------------------------


@pytest.fixture
def gallery(shown_media, cli_env, tmp_path) -> Path:
    out = tmp_path / "gallery"
    result = cli(cli_env, tmp_path, "export-gallery", str(out), "--format", "json")
    assert result.returncode == 0, result.stderr
    assert '"items": 13' in result.stdout and '"files": 13' in result.stdout
    return out


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_the_gallery_holds_every_file_it_shows_and_nothing_from_elsewhere(gallery):
    pages = [gallery / "index.html", *sorted((gallery / "items").glob("*.html"))]
    assert len(pages) == 14
    for page in pages:
        for reference in local_references(page):
            if reference.startswith("https://www.linkedin.com/"):
                continue  # the post's own link, followed only when clicked
            assert not re.match(r"^[a-z]+:", reference), (page.name, reference)
            target = (page.parent / unquote(reference)).resolve()
            assert target.is_file() and target.is_relative_to(gallery.resolve()), (page.name, reference)
    assert 'loading="lazy"' not in (gallery / "index.html").read_text()
    kinds = {p.suffix for p in (gallery / "media").iterdir()}
    assert {".jpg", ".mp4", ".pdf"} <= kinds
    assert len(list((gallery / "thumbs").glob("*.webp"))) == len(list((gallery / "media").iterdir()))


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_the_markdown_report_links_copies_inside_its_folder(shown_media, cli_env, tmp_path):
    out = tmp_path / "report"
    result = cli(cli_env, tmp_path, "export-gallery", str(out), "--markdown", "--type", "image")
    assert result.returncode == 0, result.stderr
    report = (out / "report.md").read_text()
    pictures = re.findall(r"\]\((thumbs/[0-9a-f]{32}\.webp|media/[0-9a-f]{32}\.\w+)\)", report)
    assert pictures and all((out / p).is_file() for p in pictures)
    assert "A speaker on stage in front of a slide titled Graviton" in report
    assert not (out / "index.html").exists() and ".mp4" not in report


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_export_gallery_into_a_file_is_one_line_and_exit_2(shown_media, cli_env, tmp_path):
    target = tmp_path / "a-file"
    target.write_text("x")
    result = cli(cli_env, tmp_path, "export-gallery", str(target))
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "is a file" in result.stderr


# in a real browser --------------------------------------------------------------------------------


@pytest.fixture
def chromium():
    if not Path(CHROMIUM).is_file() or shutil.which("chromium") is None:
        pytest.fail(
            "Debian's chromium is needed to see the gallery (apt-get install -y chromium; .ci/run does)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_the_gallery_in_chromium_loads_every_image_filters_and_stays_in_its_folder(gallery, chromium):
    page = chromium.new_page(viewport={"width": 1200, "height": 900})
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto((gallery / "index.html").as_uri())
    page.wait_for_load_state("load")

    widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
    assert len(widths) == 13 and all(w > 0 for w in widths), widths
    assert page.inner_text("#shown") == "13 of 13 shown"

    page.fill("#filter", "COSTS falling")  # words of one analysis, any case
    assert page.inner_text("#shown") == "1 of 13 shown"
    visible = page.eval_on_selector_all(".item:not([hidden])", "els => els.map(e => e.dataset.mediaId)")
    assert len(visible) == 1
    page.fill("#filter", "")
    assert page.inner_text("#shown") == "13 of 13 shown"
    if os.environ.get("UPDATE_SCREENSHOTS"):
        DOCS.mkdir(exist_ok=True)
        page.screenshot(path=str(DOCS / "gallery.png"))

    page.click(".item a")  # an item's page shows the full media
    page.wait_for_load_state("load")
    full = page.eval_on_selector(".full img, .full video, .full a img", "e => e.tagName")
    assert full in ("IMG", "VIDEO")
    for url in requests:
        parts = urlsplit(url)
        assert parts.scheme == "file", url
        assert Path(unquote(parts.path)).resolve().is_relative_to(gallery.resolve()), url
    assert len(requests) >= 15  # the page, its style, its script, 13 thumbnails (and the item page)


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_an_export_is_audited_and_marks_the_files_it_copied_used(shown_media, cli_env, tmp_path):
    import json

    def last_use() -> dict[str, str]:
        rows = json.loads(cli(cli_env, tmp_path, "list", "--all", "--format", "json").stdout)
        return {row["md5_sum"]: row["cache_used_at"] for row in rows if row["media_type"] == "image"}

    before = last_use()
    out = tmp_path / "report"
    result = cli(cli_env, tmp_path, "export-gallery", str(out), "--markdown", "--type", "image")
    assert result.returncode == 0, result.stderr
    audit = json.loads(cli(cli_env, tmp_path, "audit", "--format", "json").stdout)
    exports = [entry for entry in audit if entry["action"] == "export"]
    assert len(exports) == 1 and exports[0]["target"] == str(out / "report.md")
    after, copied = last_use(), {p.stem for p in (out / "media").iterdir()}
    assert copied and all(after[md5] > (before[md5] or "") for md5 in copied)
