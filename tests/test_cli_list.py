"""`manage_media.py list` as people use it: filters that mean one thing, results on stdout in the
format asked for (one tab-separated line per row when piped), from any directory."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import subprocess
import sys

import pytest

from social_tui_media.jobs.import_posts import import_path
from social_tui_media.store.interface import DownloadClaim, DownloadOutcome, make_event
from tests.conftest import ROOT, scrape


def list_media(env, cwd, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage_media.py"), "list", *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def seeded_with_failures(store, samples_dir) -> tuple[list[str], list[str]]:
    """Two rows whose download failed, one whose analysis failed (after a download)."""
    ids = import_path(store, scrape(samples_dir, 1)).media_ids
    store.claim_downloads(DownloadClaim("w", 3, media_ids=ids[:3]))
    failed = [DownloadOutcome(i, "failed", make_event("media_download_failed", "failed")) for i in ids[:2]]
    done = DownloadOutcome(ids[2], "downloaded", make_event("media_downloaded"), md5_sum="a" * 32,
                           local_file_path="/x.jpg")  # fmt: skip
    store.finish_downloads("w", [*failed, done])
    store.update_media(ids[2], {"ai_analysis_status": "failed"})
    return ids[:2], [ids[2]]


def test_download_and_analysis_failures_are_separate_filters(store, cli_env, samples_dir, tmp_path):
    download_failed, analysis_failed = seeded_with_failures(store, samples_dir)
    piped = list_media(cli_env, tmp_path, "--download-status", "failed")
    assert piped.returncode == 0
    lines = piped.stdout.splitlines()
    assert sorted(line.split("\t")[0] for line in lines) == sorted(download_failed)  # tsv, ids whole
    analysed = list_media(cli_env, tmp_path, "--analysis-status", "failed", "--format", "json")
    assert [r["media_id"] for r in json.loads(analysed.stdout)] == analysis_failed
    both = list_media(
        cli_env, tmp_path, "--download-status", "downloaded", "--analysis-status", "failed", "--json"
    )
    assert [r["media_id"] for r in json.loads(both.stdout)] == analysis_failed


@pytest.mark.parametrize(
    "store_kind", ["sqlite"]
)  # what it prints; the back ends are the conformance suite's
def test_every_format_prints_the_same_rows(store, cli_env, samples_dir, tmp_path):
    ids = import_path(store, scrape(samples_dir, 1)).media_ids
    jsonl = list_media(cli_env, tmp_path, "--format", "jsonl").stdout.splitlines()
    assert sorted(json.loads(line)["media_id"] for line in jsonl) == sorted(ids)
    rows = list(csv.DictReader(io.StringIO(list_media(cli_env, tmp_path, "--format", "csv").stdout)))
    assert sorted(r["media_id"] for r in rows) == sorted(ids) and rows[0]["download_status"] == "pending"
    images = list_media(cli_env, tmp_path, "--media-type", "image", "--format", "json").stdout
    assert {r["media_type"] for r in json.loads(images)} == {"image"}
    assert list_media(cli_env, tmp_path, "--since", "2999-01-01").stdout == ""


def test_type_and_day_filters_print_only_the_rows_that_match(store, cli_env, samples_dir, tmp_path):
    ids = import_path(store, scrape(samples_dir, 1)).media_ids
    rows = store.list_media(media_ids=ids)
    images = [r["media_id"] for r in rows if r["media_type"] == "image"]
    assert len(images) >= 2 and len(images) < len(rows)  # the sample has other kinds too
    store.update_media(images[0], {"created_at": "2025-10-31T23:59:59.999999+00:00"})  # the day before
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    filters = ("--media-type", "image", "--since", "2025-11-01")
    result = list_media(cli_env, elsewhere, *filters, "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["media_id"] for r in printed] == images[1:]  # in the store's key order
    assert {r["media_type"] for r in printed} == {"image"}
    assert all(r["created_at"] >= "2025-11-01" for r in printed)


def test_a_table_is_titled_with_the_count_of_its_rows(store, cli_env, samples_dir, tmp_path):
    ids = import_path(store, scrape(samples_dir, 1)).media_ids
    result = list_media(cli_env, tmp_path, "--format", "table")
    assert result.returncode == 0 and result.stdout.splitlines()[0].strip() == f"{len(ids)} media"
    assert list_media(cli_env, tmp_path, "--since", "2999-01-01", "--json").stdout == "[]\n"


@pytest.mark.parametrize(
    "store_kind", ["sqlite"]
)  # what it prints; the back ends are the conformance suite's
def test_import_of_nothing_says_so_in_one_line(cli_env, tmp_path):
    def import_(path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(ROOT / "manage_data.py"), "import", str(path), "--no-media"],
            env=cli_env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "notes.txt").write_text("not json at all")
    result = import_(empty)
    assert result.returncode == 1 and "no *.json files in this directory" in result.stderr
    assert import_(tmp_path / "notes.txt").returncode == 1
    missing = import_(tmp_path / "nope")
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    posts = tmp_path / "one.json"
    posts.write_text(json.dumps([{"full_urn": "urn:li:activity:1"}]))
    assert import_(posts).returncode == 0  # a single JSON file still imports


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_an_import_has_one_run_id_in_its_summary_its_row_and_its_log(
    store, cli_env, samples_dir, served, tmp_path
):
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage_data.py"), "import", str(scrape(samples_dir, 1))],
        env=cli_env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [printed] = re.findall(r"^run_id\t(run-[0-9a-z]+)$", result.stdout, re.MULTILINE)
    logged = {json.loads(line)["run_id"] for line in open(cli_env["MEDIA_LOG_FILE"])}
    with sqlite3.connect(cli_env["DATABASE_URL"][len("sqlite:///") :]) as conn:
        recorded = [r[0] for r in conn.execute("SELECT run_id FROM download_runs")]
    assert logged == {printed} and recorded == [printed]
