"""extract-text, search and duplicates as a person runs them: scraped posts whose media are
generated slides, banners, PDFs and a video, imported with --extract-text (real OCR), then
searched on every back end; searches return exactly the expected media."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from devtools import text_media
from tests.conftest import ROOT


def run(env, script: str, *args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def post(n: int, author: str, text: str, day: str, media: dict) -> dict:
    stamp = int(datetime.fromisoformat(f"{day}T09:00:00+00:00").astimezone(UTC).timestamp() * 1000)
    return {
        "full_urn": f"urn:li:activity:90{n}", "text": text, "url": f"https://www.linkedin.com/posts/p{n}",
        "posted_at": {"timestamp": stamp}, "author": {"username": author, "first_name": author.title()},
        "media": media,
    }  # fmt: skip


def image(served, name: str, body: bytes, kind: str = "image/jpeg") -> dict:
    return {"type": "image", "url": served.add(f"/dms/image/v2/{name}/0/1", body, kind)}


def one_slide_post(served, tmp_path, author: str, slide_text: str, day: str) -> str:
    """A directory holding one post by `author` whose image is a slide reading `slide_text`."""
    body = text_media.png(text_media.slide([slide_text]))
    name = slide_text.split()[0].lower()
    posts = [post(1, author, "A day of talks", day, image(served, name, body, "image/png"))]
    directory = tmp_path / "one"
    directory.mkdir()
    (directory / "p.json").write_text(json.dumps(posts))
    return str(directory)


@pytest.fixture
def posts_dir(served, tmp_path):
    """Seven posts: a slide re-shared as the same bytes, a banner and its re-encoded smaller
    copy, a carousel of two slides of one template, a PDF with a text layer, a scanned PDF and a
    video with text frames."""
    slide = text_media.png(text_media.slide(["DynamoDB launch", "Serverless at scale"]))
    banner = text_media.banner("Venetian Expo Hall keynote stage")
    banner_copy = Image.open(io.BytesIO(text_media.jpeg(banner.resize((720, 480)), 45)))
    template = [["Cost anomalies", "Weekly report", "Region us-east-1"],
                ["Cost anomalies", "Weekly report", "Region eu-west-1"]]  # fmt: skip
    carousel = {
        "type": "images",
        "images": [
            {
                "url": served.add(
                    f"/dms/image/v2/deck{i}/0/1", text_media.jpeg(text_media.slide(lines), 50), "image/jpeg"
                )
            }
            for i, lines in enumerate(template)
        ],
    }
    docs = {
        "layer": text_media.pdf_with_text([["Quarterly budget review", "Savings plan"]]),
        "scan": text_media.pdf_scanned([text_media.slide(["Scanned budget memo"])]),
    }
    video = text_media.video_with_text([("Opening keynote", 1.5), ("Graviton5 announced", 1.5)])
    posts = [
        post(1, "alice", "Big news from the conference", "2025-11-01", image(served, "slide", slide, "image/png")),
        post(2, "bob", "Reposting this", "2025-11-03", image(served, "slide-again", slide, "image/png")),
        post(3, "carol", "Our keynote stage", "2025-11-05", image(served, "banner", text_media.jpeg(banner, 50))),
        post(4, "dave", "Great talks", "2025-11-06", image(served, "banner-copy", text_media.jpeg(banner_copy, 50))),
        post(5, "erin", "Weekly numbers", "2025-11-07", carousel),
        post(6, "frank", "Budget documents", "2025-11-08",
             {"type": "document", "url": served.add("/dms/document/layer/0/1", docs["layer"], "application/pdf")}),
        post(7, "gina", "Scanned paper", "2025-11-09",
             {"type": "document", "url": served.add("/dms/document/scan/0/1", docs["scan"], "application/pdf")}),
        post(8, "hugo", "Event recap", "2025-11-10",
             {"type": "video", "url": served.add("/dms/video/clip/0/1", video, "video/mp4")}),
    ]  # fmt: skip
    directory = tmp_path / "posts"
    directory.mkdir()
    (directory / "posts.json").write_text(json.dumps(posts))
    return directory


def search(env, tmp_path, *args) -> list[list[str]]:
    """Each hit's authors (every post sharing the picture, earliest first), in rank order."""
    done = run(env, "manage_media.py", "search", *args, "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return [[p["author"] for p in hit["posts"]] for hit in json.loads(done.stdout)]


def test_import_with_extract_text_then_search_finds_exactly_the_expected_media(
    cli_env, posts_dir, tmp_path, store_kind
):
    done = run(
        cli_env,
        "manage_data.py",
        "import",
        str(posts_dir),
        "--extract-text",
        "--format",
        "json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["completed"] == 8 and summary["failed"] == 0  # 9 rows: one slide's text shared
    assert summary["shared"] + summary["reused"] == 1
    assert summary["near_grouped"] == 2  # the banner and its copy; never the carousel's template slides
    assert search(cli_env, tmp_path, "dynamodb") == [["alice", "bob"]]
    assert search(cli_env, tmp_path, "launches") == [["alice", "bob"]]  # stemmed
    assert search(cli_env, tmp_path, '"keynote stage"') == [["carol", "dave"]]
    assert sorted(search(cli_env, tmp_path, "keynote")) == [["carol", "dave"], ["hugo"]]
    assert search(cli_env, tmp_path, "keynote -venetian") == [["hugo"]]
    assert search(cli_env, tmp_path, "region", "eu-west-1") == [["erin"]]
    assert search(cli_env, tmp_path, "anomal*") == [["erin"], ["erin"]]  # two slides: two pictures
    assert sorted(search(cli_env, tmp_path, "budget")) == [["frank"], ["gina"]]  # text layer and OCR
    assert search(cli_env, tmp_path, "budget", "--type", "document", "--author", "gina") == [["gina"]]
    assert search(cli_env, tmp_path, "keynote", "--field", "post") == [["carol", "dave"]]
    assert search(cli_env, tmp_path, "graviton5", "--since", "2025-11-10") == [["hugo"]]
    assert search(cli_env, tmp_path, "graviton5", "--since", "2025-11-11") == []
    if store_kind != "sqlite":  # typo tolerance is PostgreSQL's (pg_trgm)
        assert search(cli_env, tmp_path, "Venetain") == [["carol", "dave"]]


@pytest.mark.parametrize("store_kind", ["sqlite"])  # what it prints; the back ends are the store suite's
def test_duplicates_lists_groups_best_copy_first_with_posts(cli_env, posts_dir, tmp_path, store_kind):
    assert (
        run(
            cli_env, "manage_data.py", "import", str(posts_dir), "--extract-text", "-q", cwd=tmp_path
        ).returncode
        == 0
    )
    done = run(cli_env, "manage_media.py", "duplicates", "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["group_key"], []).append(row)
    kinds = sorted(
        (members[0]["kind"], [m["author_username"] for m in members]) for members in groups.values()
    )
    assert kinds == [("identical", ["alice", "bob"]), ("near", ["carol", "dave"])]
    near = next(m for m in groups.values() if m[0]["kind"] == "near")
    assert near[0]["file_size"] > near[1]["file_size"]  # the best (largest) copy first
    assert all(r["media_url"] and r["post_url"].startswith("https://www.linkedin.com/posts/") for r in rows)
    table = run(cli_env, "manage_media.py", "duplicates", "--format", "tsv", cwd=tmp_path)
    assert len(table.stdout.splitlines()) == 4


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_extract_text_without_an_ocr_engine_says_what_to_install_and_exits_2(cli_env, tmp_path, store_kind):
    blocker = tmp_path / "no_ocr"
    blocker.mkdir()
    (blocker / "rapidocr.py").write_text("raise ImportError('rapidocr is not installed')\n")
    env = {**cli_env, "PYTHONPATH": f"{blocker}:{cli_env['PYTHONPATH']}", "PATH": "/nonexistent"}
    done = run(env, "manage_media.py", "extract-text", cwd=tmp_path)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "pip install 'social-tui-media[ocr]'" in lines[0]
    listed = run(env, "manage_media.py", "list", "--format", "json", cwd=tmp_path)
    assert listed.returncode == 0  # nothing else breaks


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_search_with_only_negations_is_a_usage_error(cli_env, tmp_path, store_kind):
    done = run(cli_env, "manage_media.py", "search", "-aws -azure", cwd=tmp_path)
    assert done.returncode == 2 and "at least one word" in done.stderr


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_download_all_with_extract_text_reads_what_it_downloaded(cli_env, served, tmp_path, store_kind):
    directory = one_slide_post(served, tmp_path, "ivan", "Aurora serverless", "2025-11-01")
    assert (
        run(cli_env, "manage_data.py", "import", directory, "--no-media", "-q", cwd=tmp_path).returncode == 0
    )
    done = run(cli_env, "manage_media.py", "download-all", "--extract-text", "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["downloaded"] == 1 and summary["completed"] == 1
    assert search(cli_env, tmp_path, "aurora", "--field", "text") == [["ivan"]]


@pytest.mark.parametrize("store_kind", ["sqlite"])  # marking is one store op, tested on every back end
def test_extract_text_marks_each_file_it_reads_used(cli_env, served, tmp_path, store_kind):
    directory = one_slide_post(served, tmp_path, "jo", "Graviton four", "2025-11-02")
    assert run(cli_env, "manage_data.py", "import", directory, "-q", cwd=tmp_path).returncode == 0

    def last_use() -> str:
        listed = run(cli_env, "manage_media.py", "list", "--all", "--format", "json", cwd=tmp_path)
        [row] = json.loads(listed.stdout)
        return row["cache_used_at"]

    before = last_use()
    assert run(cli_env, "manage_media.py", "extract-text", "-q", cwd=tmp_path).returncode == 0
    assert last_use() > before


@pytest.mark.parametrize("store_kind", ["sqlite"])  # which statuses a claim takes is the store suite's
def test_extract_text_takes_a_done_row_again_with_force_and_a_failed_one_with_retry_failed(
    cli_env, served, tmp_path, store_kind
):
    directory = one_slide_post(served, tmp_path, "kim", "Nitro cards", "2025-11-03")
    imported = run(cli_env, "manage_data.py", "import", directory, "--extract-text", "-q", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    listed = run(cli_env, "manage_media.py", "list", "--all", "--format", "json", cwd=tmp_path)
    [row] = json.loads(listed.stdout)
    cached = Path(row["local_file_path"])

    def extract(*flags: str) -> dict:
        done = run(
            cli_env, "manage_media.py", "extract-text", "--media-id", row["media_id"], *flags, "--format", "json",
            cwd=tmp_path,
        )  # fmt: skip
        return json.loads(done.stdout)

    assert extract()["completed"] == 0  # read already: nothing to take
    saved = cached.read_bytes()
    cached.unlink()
    assert extract("--force")["failed"] == 1  # taken again: its file is gone
    assert extract()["failed"] == 0  # a failed row waits for --retry-failed
    cached.write_bytes(saved)
    assert extract("--retry-failed")["completed"] == 1
    assert search(cli_env, tmp_path, "nitro", "--field", "text") == [["kim"]]
