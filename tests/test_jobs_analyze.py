"""The analysis queue end to end: the real openai client against the loopback
OpenAI-compatible server, claims in the real database, the CLI's exit codes."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from devtools.media_server import sample_media
from devtools.openai_server import OpenAITestServer
from social_tui_media.jobs.analyze import analyze_pending
from social_tui_media.jobs.download import download_pending
from social_tui_media.jobs.import_posts import import_path
from social_tui_media.media.vision import RetryPolicy
from social_tui_media.store.claims import claim_statuses
from tests.conftest import ROOT, scrape

FAST = RetryPolicy(attempts=6, base_delay=0.01, max_delay=0.05)


@pytest.fixture(scope="module")
def vision():
    with OpenAITestServer() as server:
        yield server


@pytest.fixture
def ai(vision, settings):
    vision.reset()
    vision.latency = 0.0
    return replace(
        settings, openai_base_url=vision.base_url, openai_api_key="test-key", ai_model="gpt-4o-mini"
    )


@pytest.fixture
def ai_env(cli_env, vision):
    return dict(
        cli_env, OPENAI_BASE_URL=vision.base_url, OPENAI_API_KEY="test-key", MEDIA_AI_MODEL="gpt-4o-mini"
    )


def cached_samples(store, settings, samples_dir):
    report = import_path(store, scrape(samples_dir, 1))
    assert download_pending(store, settings, media_ids=report.media_ids).failed == 0


def cached_images(store, settings, served, tmp_path, sizes):
    posts = []
    for i, (w, h) in enumerate(sizes):
        path = f"/dms/image/v2/AI{i}/x/AI{i}/0/1"
        body, kind = sample_media(path, w, h)
        posts.append(
            {
                "full_urn": f"urn:li:activity:ai{i}",
                "media": {"type": "image", "url": served.add(path, body, kind)},
            }
        )
    directory = tmp_path / "ai_posts"
    directory.mkdir()
    (directory / "p.json").write_text(json.dumps(posts))
    report = import_path(store, directory)
    assert download_pending(store, settings, media_ids=report.media_ids).failed == 0


def run(store, settings, **kwargs):
    kwargs.setdefault("statuses", claim_statuses())
    return analyze_pending(store, settings, retry_policy=FAST, **kwargs)


def test_images_video_and_pdf_are_analysed_with_events(store, ai, samples_dir, served, vision):
    cached_samples(store, ai, samples_dir)  # 13 rows; one carousel image is another post's image
    report = run(store, ai, workers=2)
    assert report.completed == 13 and report.shared == 1 and report.failed == 0
    rows = store.list_media()
    assert {r["ai_analysis_status"] for r in rows} == {"completed"}
    for row in rows:
        assert {"description", "text_in_image", "tags", "kind"} <= set(row["ai_analysis"])
        events = [e["event"] for e in row["ai_analysis_log"]]
        assert events == ["media_downloaded", "ai_analysis_started", "ai_analysis_completed"]
        done = row["ai_analysis_log"][-1]
        assert done["details"]["tokens_used"]["prompt"] > 0
        assert row["ai_analysis_log"][1]["model"] == "gpt-4o-mini"
        if "shared_from" not in done["details"]:
            assert done["details"]["analysis_time_ms"] >= 0 and done["details"]["estimated_cost_usd"] > 0
    video = next(r for r in rows if r["media_type"] == "video")
    document = next(r for r in rows if r["media_type"] == "document")
    assert video["ai_analysis_log"][-1]["details"]["frames"] > 1
    assert document["ai_analysis_log"][-1]["details"]["frames"] == 3
    assert len(vision.calls) == 12  # identical bytes are analysed once
    counts = store.media_counts()
    assert counts["ai_cost_usd"] > 0 and counts["by_ai_status"] == {"completed": 13}


def test_rate_limit_bursts_are_survived(store, ai, served, vision, tmp_path):
    cached_images(store, ai, served, tmp_path, [(100, 100), (110, 110)])
    vision.script(*[("status", 429, "slow down", {"Retry-After": "0"})] * 4)
    report = run(store, ai)
    assert report.completed == 2 and report.failed == 0
    assert len(vision.calls) == 6


def test_malformed_answer_is_retried_once_then_fails_the_row(store, ai, served, vision, tmp_path):
    cached_images(store, ai, served, tmp_path, [(100, 100)])
    vision.script("malformed", "malformed")
    report = run(store, ai)
    [row] = store.list_media()
    assert report.failed == 1 and row["ai_analysis_status"] == "failed"
    failed = row["ai_analysis_log"][-1]
    assert failed["event"] == "ai_analysis_failed" and failed["details"]["error_kind"] == "bad_output"
    vision.script("malformed")
    again = run(store, ai, statuses=claim_statuses(retry_failed=True))
    assert again.completed == 1 and store.list_media()[0]["ai_analysis_status"] == "completed"


def test_a_400_for_one_item_fails_only_that_row(store, ai, served, vision, tmp_path):
    cached_images(store, ai, served, tmp_path, [(100, 100), (101, 101), (102, 102)])
    vision.reject_image_size(101, 101, 400, "Invalid image: unsupported content.")
    report = run(store, ai, workers=3)
    rows = {r["width"]: r for r in store.list_media()}
    assert report.completed == 2 and report.failed == 1
    assert rows[101]["ai_analysis_status"] == "failed"
    assert "Invalid image: unsupported content." in rows[101]["ai_analysis_log"][-1]["details"]["message"]
    assert rows[100]["ai_analysis_status"] == rows[102]["ai_analysis_status"] == "completed"
    assert (
        sum(1 for c in vision.calls if c["image_sizes"] == [[101, 101]] or c["image_sizes"] == [(101, 101)])
        == 1
    )


def test_limit_and_force(store, ai, served, vision, tmp_path):
    cached_images(store, ai, served, tmp_path, [(100, 100), (101, 101), (102, 102)])
    assert run(store, ai, limit=2).completed == 2
    assert run(store, ai).completed == 1
    assert run(store, ai).completed == 0
    media_id = store.list_media()[0]["media_id"]
    forced = run(store, ai, statuses=claim_statuses(force=True), media_ids=[media_id])
    assert forced.completed == 1 and len(vision.calls) == 4


def manage(env, *args, cwd):
    return subprocess.run(
        [sys.executable, str(ROOT / "manage_media.py"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.parametrize(
    "store_kind", ["sqlite"]
)  # what it prints; the back ends are the conformance suite's
def test_missing_api_key_exits_2_with_one_line(store, ai, ai_env, served, tmp_path):
    cached_images(store, ai, served, tmp_path, [(100, 100)])
    env = {k: v for k, v in ai_env.items() if k != "OPENAI_API_KEY"}
    result = manage(env, "analyze", "--status", "not_started", cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "OPENAI_API_KEY" in lines[0]
    assert store.list_media()[0]["ai_analysis_status"] == "not_started"


@pytest.mark.parametrize(
    "store_kind", ["sqlite"]
)  # what it prints; the back ends are the conformance suite's
def test_dry_run_sends_nothing(store, ai, ai_env, served, vision, tmp_path):
    cached_images(store, ai, served, tmp_path, [(100, 100), (101, 101)])
    result = manage(ai_env, "analyze", "--status", "not_started", "--dry-run", "--json", cwd=tmp_path)
    assert result.returncode == 0 and json.loads(result.stdout)["would_analyse"] == 2
    assert vision.calls == [] and {r["ai_analysis_status"] for r in store.list_media()} == {"not_started"}


@pytest.mark.parametrize("store_kind", ["postgres"])
def test_two_worker_processes_analyse_each_row_exactly_once(store, ai, ai_env, served, vision, tmp_path):
    cached_images(store, ai, served, tmp_path, [(100 + i, 100) for i in range(20)])
    vision.latency = 0.05
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "manage_media.py"),
                "analyze",
                "--status",
                "not_started",
                "--workers",
                "2",
            ],
            env=ai_env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    assert [p.wait(timeout=180) for p in procs] == [0, 0]
    rows = store.list_media()
    assert {r["ai_analysis_status"] for r in rows} == {"completed"}
    assert len(vision.calls) == 20
    assert all(sum(e["event"] == "ai_analysis_completed" for e in r["ai_analysis_log"]) == 1 for r in rows)
    workers = {r["ai_analysis_log"][1].get("timestamp") and r["ai_model"] for r in rows}
    assert workers == {"gpt-4o-mini"}


@pytest.mark.parametrize("store_kind", ["postgres", "sqlite"])
def test_a_killed_analyze_leaves_rows_the_next_run_takes_over_at_once(
    store, ai, ai_env, served, vision, tmp_path
):
    cached_images(store, ai, served, tmp_path, [(100 + i, 100) for i in range(6)])
    vision.latency = 2.0
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "manage_media.py"),
            "analyze",
            "--status",
            "not_started",
            "--workers",
            "2",
        ],
        env=ai_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(vision.calls) < 2:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    vision.latency = 0.0
    stuck = [r for r in store.list_media() if r["ai_analysis_status"] == "started"]
    assert len(stuck) == 2
    # The lease (10 minutes) still holds, but its owner is gone from this host: no waiting.
    assert run(store, ai).completed == 6
    assert {r["ai_analysis_status"] for r in store.list_media()} == {"completed"}


def test_a_broken_endpoint_stops_the_run_quickly_and_charges_no_item(
    store, ai, ai_env, served, vision, tmp_path
):
    cached_images(store, ai, served, tmp_path, [(100, 100)] * 6)
    vision.script(*[("status", 501, "Not Implemented\n<html><body>a whole error page</body></html>")] * 30)
    started = time.monotonic()
    result = manage(ai_env, "analyze", "--status", "not_started", "--workers", "2", cwd=tmp_path)
    elapsed = time.monotonic() - started
    assert result.returncode == 1 and elapsed < 30
    stopped = (
        r"answers 501: Not Implemented: stopped after [34] consecutive failures; 6 items left not_started"
    )
    assert re.search(stopped, result.stderr), result.stderr
    assert "whole error page" not in result.stderr
    rows = store.list_media()
    assert {r["ai_analysis_status"] for r in rows} == {"not_started"}  # no item charged a failure
    assert any(e["event"] == "ai_analysis_released" for r in rows for e in r["ai_analysis_log"])


def test_an_unreachable_endpoint_never_replaces_a_completed_analysis(store, ai, ai_env, served, tmp_path):
    cached_images(store, ai, served, tmp_path, [(100, 100)] * 2)
    assert run(store, ai).completed == 2
    before = {r["media_id"]: r["ai_analysis"] for r in store.list_media()}
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    env = dict(ai_env, OPENAI_BASE_URL=f"http://127.0.0.1:{closed}/v1")
    result = manage(env, "analyze", "--status", "completed", "--force", cwd=tmp_path)
    assert result.returncode == 1 and "consecutive failures" in result.stderr
    after = {r["media_id"]: (r["ai_analysis_status"], r["ai_analysis"]) for r in store.list_media()}
    assert after == {media_id: ("completed", analysis) for media_id, analysis in before.items()}


def test_analysing_a_file_marks_it_used_for_eviction(store, ai, samples_dir, served, vision):
    cached_samples(store, ai, samples_dir)
    long_ago = "2025-01-01T00:00:00.000000+00:00"
    for row in store.list_media():
        store.update_media(row["media_id"], {"cache_used_at": long_ago})
    report = run(store, ai, limit=2)
    assert report.completed == 2

    def read_its_file(row: dict) -> bool:  # not given the result of identical bytes (`shared_from`)
        done = [e for e in row["ai_analysis_log"] if e["event"] == "ai_analysis_completed"]
        return bool(done) and "shared_from" not in (done[-1].get("details") or {})

    rows = store.list_media()
    used = [r["media_id"] for r in rows if r["cache_used_at"] > long_ago]
    assert used and sorted(used) == sorted(r["media_id"] for r in rows if read_its_file(r))
