"""Batch analysis (the OpenAI Batch API) and identical bytes analysed once: the real openai
client against the loopback OpenAI-compatible server, the real stores, the CLI as a subprocess."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import replace

import pytest

from devtools.media_server import sample_media
from devtools.openai_server import OpenAITestServer
from social_tui_media.jobs import analyze_batch
from social_tui_media.jobs.analyze import analyze_pending
from social_tui_media.jobs.analyze_batch import collect_batches, submit_batches
from social_tui_media.jobs.download import download_pending
from social_tui_media.jobs.import_posts import import_path
from social_tui_media.media import batch_api
from social_tui_media.media.vision import build_request, estimate_cost, make_client
from social_tui_media.store.claims import claim_statuses
from social_tui_media.store.interface import AnalysisBatch, AnalysisClaim, make_event
from tests.test_jobs_analyze import FAST, manage

MODEL = "gpt-4o-mini"


@pytest.fixture(scope="module")
def vision():
    with OpenAITestServer() as server:
        yield server


@pytest.fixture
def ai(vision, settings):
    vision.reset()
    return replace(settings, openai_base_url=vision.base_url, openai_api_key="test-key", ai_model=MODEL)


@pytest.fixture
def ai_env(cli_env, vision):
    return dict(cli_env, OPENAI_BASE_URL=vision.base_url, OPENAI_API_KEY="test-key", MEDIA_AI_MODEL=MODEL)


@pytest.fixture
def client(ai):
    return make_client(ai)


def cached(store, settings, served, tmp_path, images: list[tuple[int, int, str]]) -> list[str]:
    """One post per image (width, height, bytes key): images with the same key hold the same
    bytes under different URLs. Returns the media ids in that order."""
    posts, bodies = [], {}
    call = len(list(tmp_path.glob("posts_*")))
    for n, (w, h, key) in enumerate(images):
        i = f"{call}x{n}"
        body, kind = bodies.setdefault(key, sample_media(f"/dms/image/v2/{key}/x/{key}/0/1", w, h))
        path = f"/dms/image/v2/B{i}/x/B{i}/0/1"
        posts.append(
            {
                "full_urn": f"urn:li:activity:b{i}",
                "media": {"type": "image", "url": served.add(path, body, kind)},
            }
        )
    directory = tmp_path / f"posts_{call}"
    directory.mkdir()
    (directory / "p.json").write_text(json.dumps(posts))
    report = import_path(store, directory)
    assert download_pending(store, settings, media_ids=report.media_ids).failed == 0
    return report.media_ids


def events(row: dict) -> list[str]:
    return [e["event"] for e in row["ai_analysis_log"]]


def rows_by_id(store) -> dict[str, dict]:
    return {r["media_id"]: r for r in store.list_media()}


def submit(store, settings, client, **kwargs):
    kwargs.setdefault("statuses", claim_statuses())
    return submit_batches(store, settings, client, **kwargs)


# --------------------------------------------------------------------------- submit and collect


def test_a_batch_carries_the_synchronous_requests_and_is_collected_at_half_price(
    store, ai, client, served, vision, tmp_path
):
    ids = cached(store, ai, served, tmp_path, [(100, 100, "a"), (101, 101, "b"), (102, 102, "c")])
    report = submit(store, ai, client)
    assert (len(report.batches), report.batched, report.requests) == (1, 3, 3)
    [provider_id] = report.batches
    lines = vision.batch_api.input_lines(provider_id)
    assert sorted(line["custom_id"] for line in lines) == sorted(ids)
    assert {(line["method"], line["url"]) for line in lines} == {("POST", "/v1/chat/completions")}
    for line in lines:  # byte for byte what the synchronous path sends for the same file
        row = store.get_media(line["custom_id"])
        assert line["body"] == build_request(MODEL, row["local_file_path"], row["mime_type"])
    waiting = rows_by_id(store)
    assert {r["ai_analysis_status"] for r in waiting.values()} == {"started"}
    [batch] = store.analysis_batches()
    assert {r["ai_batch_id"] for r in waiting.values()} == {batch["batch_id"]}
    batched = waiting[ids[0]]["ai_analysis_log"][-1]
    assert batched["event"] == "ai_analysis_batched" and batched["model"] == MODEL
    assert batched["details"]["batch_id"] == batch["batch_id"] and batch["provider_batch_id"] == provider_id
    assert vision.calls == []  # nothing answered synchronously

    collected = collect_batches(store, client)
    assert (collected.batches_applied, collected.completed, collected.failed) == (1, 3, 0)
    for row in rows_by_id(store).values():
        assert row["ai_analysis_status"] == "completed" and row["ai_batch_id"] is None
        assert events(row) == [
            "media_downloaded",
            "ai_analysis_batched",
            "ai_analysis_started",
            "ai_analysis_completed",
        ]
        done = row["ai_analysis_log"][-1]
        tokens = done["details"]["tokens_used"]
        half = estimate_cost(MODEL, tokens["prompt"], tokens["completion"]) / 2
        assert done["details"]["estimated_cost_usd"] == pytest.approx(half, abs=1e-6)
        assert float(row["ai_cost_usd"]) == pytest.approx(half, abs=1e-6)
        assert row["ai_analysis_log"][-2]["model"] == MODEL
    counts = store.batch_counts()
    assert counts["batches_open"] == 0 and counts["batch_saved_usd"] == pytest.approx(
        collected.saved_usd, abs=1e-5
    )
    assert counts["batch_saved_usd"] > 0 and counts["batch_saved_usd"] == pytest.approx(
        counts["batch_cost_usd"], abs=1e-5
    )


def test_collecting_again_applies_nothing_twice(store, ai, client, served, vision, tmp_path):
    cached(store, ai, served, tmp_path, [(100, 100, "a"), (101, 101, "b")])
    submit(store, ai, client)
    [batch] = store.analysis_batches()
    assert collect_batches(store, client).completed == 2
    before = rows_by_id(store)
    # The batch reopened (as if a second collector read it before the first one closed it).
    store.update_analysis_batch(batch["batch_id"], {"status": "submitted"})
    again = collect_batches(store, client)
    assert again.completed == 0 and again.failed == 0
    assert rows_by_id(store) == before


def test_identical_bytes_go_into_the_batch_once_and_every_row_gets_the_result(
    store, ai, client, served, vision, tmp_path
):
    first, same, other = cached(
        store, ai, served, tmp_path, [(100, 100, "a"), (100, 100, "a"), (120, 90, "b")]
    )
    report = submit(store, ai, client)
    assert (report.batched, report.requests) == (3, 2)
    [provider_id] = report.batches
    carried = {line["custom_id"] for line in vision.batch_api.input_lines(provider_id)}
    assert other in carried and len(carried & {first, same}) == 1
    collected = collect_batches(store, client)
    assert (collected.completed, collected.shared) == (3, 1)
    rows = rows_by_id(store)
    analysed, sharer = (first, same) if first in carried else (same, first)
    shared = rows[sharer]["ai_analysis_log"][-1]["details"]
    assert shared["shared_from"] == analysed and shared["estimated_cost_usd"] == 0
    assert shared["tokens_used"] == rows[analysed]["ai_analysis_log"][-1]["details"]["tokens_used"]
    assert rows[sharer]["ai_analysis"] == rows[analysed]["ai_analysis"]
    assert events(rows[sharer])[-2:] == ["ai_analysis_started", "ai_analysis_completed"]
    assert rows[sharer]["ai_prompt_tokens"] == 0 and float(rows[sharer]["ai_cost_usd"]) == 0  # each call once


def test_rows_whose_bytes_were_analysed_are_completed_without_a_batch(
    store, ai, client, served, vision, tmp_path
):
    [first] = cached(store, ai, served, tmp_path, [(100, 100, "a")])
    analyze_pending(store, ai, statuses=claim_statuses(), client=client, retry_policy=FAST)
    [later] = cached(store, ai, served, tmp_path, [(100, 100, "a")])
    report = submit(store, ai, client)
    assert report.shared == 1 and report.batches == [] and report.requests == 0
    row = store.get_media(later)
    assert row["ai_analysis_status"] == "completed"
    assert row["ai_analysis_log"][-1]["details"]["shared_from"] == first
    assert store.analysis_batches() == []


# --------------------------------------------------------------------------- how batches end


def test_a_batch_in_progress_is_left_alone_and_its_rows_are_never_taken_over(
    store, ai, client, served, vision, tmp_path
):
    cached(store, ai, served, tmp_path, [(100, 100, "a"), (101, 101, "b")])
    vision.batch_api.scenarios.append("in_progress")
    submit(store, ai, client)
    collected = collect_batches(store, client)
    [waiting] = collected.in_progress
    assert (waiting.items, waiting.status, collected.completed) == (2, "in_progress", 0)
    # An expired lease and a "dead" owner change nothing: the rows wait for their batch.
    taken = analyze_pending(store, ai, statuses=claim_statuses(), client=client, lease_seconds=0)
    assert taken.completed == 0 and vision.calls == []
    assert {r["ai_analysis_status"] for r in store.list_media()} == {"started"}


def test_an_expired_batch_applies_what_ran_and_sends_the_rest_back(
    store, ai, client, served, vision, tmp_path
):
    cached(store, ai, served, tmp_path, [(100, 100, "a"), (101, 101, "b"), (102, 102, "c")])
    vision.batch_api.scenarios.append(("expired", 1))
    submit(store, ai, client)
    collected = collect_batches(store, client)
    assert (collected.completed, collected.released) == (1, 2)
    assert any("expired" in line for line in collected.ended)
    rows = store.list_media()
    assert sorted(r["ai_analysis_status"] for r in rows) == ["completed", "not_started", "not_started"]
    back = next(r for r in rows if r["ai_analysis_status"] == "not_started")
    released = back["ai_analysis_log"][-1]
    assert released["event"] == "ai_analysis_released" and released["details"]["batch_status"] == "expired"
    assert back["ai_batch_id"] is None
    [batch] = store.analysis_batches(open_only=False)
    assert batch["status"] == "expired"
    assert submit(store, ai, client).requests == 2  # the next run takes them again


@pytest.mark.parametrize("store_kind", ["sqlite", "postgres"])
@pytest.mark.parametrize("scenario", ["failed", "cancelled"])
def test_a_failed_or_cancelled_batch_sends_every_item_back(
    store, ai, client, served, vision, tmp_path, scenario
):
    cached(store, ai, served, tmp_path, [(100, 100, "a"), (101, 101, "b")])
    vision.batch_api.scenarios.append(scenario)
    submit(store, ai, client)
    collected = collect_batches(store, client)
    assert (collected.completed, collected.released) == (0, 2)
    assert {r["ai_analysis_status"] for r in store.list_media()} == {"not_started"}
    assert store.analysis_batches(open_only=False)[0]["status"] == scenario


def test_a_bad_line_fails_only_its_item(store, ai, client, served, vision, tmp_path):
    cached(store, ai, served, tmp_path, [(100, 100, "a"), (101, 101, "b"), (102, 102, "c"), (103, 103, "d")])
    vision.reject_image_size(101, 101, 400, "Invalid image: unsupported content.")
    vision.script("ok", "malformed")  # lines without a rule: one answers, one is not JSON, then ok
    submit(store, ai, client)
    collected = collect_batches(store, client)
    assert (collected.completed, collected.failed) == (2, 2)
    rows = {r["width"]: r for r in store.list_media()}
    assert rows[101]["ai_analysis_status"] == "failed"
    assert "Invalid image: unsupported content." in rows[101]["ai_analysis_log"][-1]["details"]["message"]
    malformed = [r for r in rows.values() if r["ai_analysis_status"] == "failed" and r["width"] != 101]
    assert [r["ai_analysis_log"][-1]["details"]["error_kind"] for r in malformed] == ["bad_output"]
    assert events(malformed[0])[-2:] == ["ai_analysis_started", "ai_analysis_failed"]


# --------------------------------------------------------------------------- exactly once across crashes


@pytest.mark.parametrize("store_kind", ["sqlite", "postgres"])
def test_a_batch_recorded_by_a_run_that_died_before_creating_it_goes_back_to_the_queue(
    store, ai, client, served, vision, tmp_path
):
    ids = cached(store, ai, served, tmp_path, [(100, 100, "a"), (101, 101, "b")])
    dead = f"{socket.gethostname()}:999999:gone"
    event = make_event("ai_analysis_batched", details={"batch_id": "anb-dead"}, model=MODEL)
    store.claim_analysis_batch(
        AnalysisBatch("anb-dead", MODEL, dead), AnalysisClaim("anb-dead", 10, ["not_started"], event)
    )
    collected = collect_batches(store, client)
    assert collected.released == 2 and vision.batch_api.batches == {}
    assert {r["ai_analysis_status"] for r in store.list_media(media_ids=ids)} == {"not_started"}
    assert store.analysis_batches(open_only=False)[0]["status"] == "abandoned"


@pytest.mark.parametrize("store_kind", ["sqlite", "postgres"])
def test_a_batch_created_but_never_recorded_is_found_and_collected_not_sent_twice(
    store, ai, client, served, vision, tmp_path
):
    cached(store, ai, served, tmp_path, [(100, 100, "a"), (101, 101, "b")])
    vision.batch_api.fail_create_after_commit = True  # created at the provider; the answer is lost
    with pytest.raises(batch_api.BatchApiError):
        submit(store, ai, client)
    [batch] = store.analysis_batches()
    assert batch["status"] == "preparing" and len(vision.batch_api.batches) == 1
    # Its run is this (live) process: a collector leaves it alone until the preparing lease ends.
    assert collect_batches(store, client).in_progress[0].status == "preparing"
    assert submit(store, ai, client).batches == []  # its rows are not claimable meanwhile
    later = time.time() + analyze_batch.PREPARE_LEASE_SECONDS + 60
    collected = collect_batches(store, client, now=later)
    assert collected.completed == 2 and len(vision.batch_api.batches) == 1
    [done] = store.analysis_batches(open_only=False)
    assert done["status"] == "completed" and done["provider_batch_id"] in vision.batch_api.batches


# --------------------------------------------------------------------------- synchronous sharing


def test_identical_bytes_are_analysed_once_in_a_synchronous_run(store, ai, client, served, vision, tmp_path):
    ids = cached(store, ai, served, tmp_path, [(100, 100, "a")] * 4 + [(120, 90, "b")])
    vision.latency = 0.2  # the first analysis of "a" is still running when the others are claimed
    try:
        report = analyze_pending(
            store, ai, statuses=claim_statuses(), client=client, workers=3, retry_policy=FAST
        )
    finally:
        vision.latency = 0.0
    assert (report.completed, report.shared, len(vision.calls)) == (5, 3, 2)
    rows = rows_by_id(store)
    sharers = [rows[i] for i in ids[:4] if "shared_from" in rows[i]["ai_analysis_log"][-1]["details"]]
    [analysed] = [i for i in ids[:4] if rows[i] not in sharers]
    for row in sharers:
        assert events(row) == ["media_downloaded", "ai_analysis_started", "ai_analysis_completed"]
        assert row["ai_analysis_log"][1]["model"] == MODEL
        assert row["ai_analysis_log"][-1]["details"]["shared_from"] == analysed
        assert row["ai_analysis_log"][-1]["details"]["estimated_cost_usd"] == 0
        assert row["ai_prompt_tokens"] == 0  # totals count each call once
    assert (
        store.media_counts()["ai_prompt_tokens"]
        == rows[analysed]["ai_prompt_tokens"] + rows[ids[4]]["ai_prompt_tokens"]
    )


def test_a_later_row_shares_a_stored_analysis_and_force_analyses_again(
    store, ai, client, served, vision, tmp_path
):
    [first] = cached(store, ai, served, tmp_path, [(100, 100, "a")])
    analyze_pending(store, ai, statuses=claim_statuses(), client=client, retry_policy=FAST)
    [later] = cached(store, ai, served, tmp_path, [(100, 100, "a")])
    report = analyze_pending(store, ai, statuses=claim_statuses(), client=client, retry_policy=FAST)
    assert (report.completed, report.shared, len(vision.calls)) == (1, 1, 1)
    assert store.get_media(later)["ai_analysis_log"][-1]["details"]["shared_from"] == first
    forced = analyze_pending(
        store, ai, statuses=claim_statuses(force=True), media_ids=[later], client=client, retry_policy=FAST
    )
    assert (forced.completed, forced.shared, len(vision.calls)) == (1, 0, 2)
    assert "shared_from" not in store.get_media(later)["ai_analysis_log"][-1]["details"]


def test_a_confirmed_near_duplicate_shares_the_analysis_unless_forced(
    store, ai, client, served, vision, tmp_path
):
    first, resized = cached(store, ai, served, tmp_path, [(100, 100, "a"), (90, 90, "b")])
    analyze_pending(store, ai, statuses=claim_statuses(), media_ids=[first], client=client, retry_policy=FAST)
    store.set_near_group("ng-1", [first, resized])  # what extract-text records once the texts agree
    report = analyze_pending(store, ai, statuses=claim_statuses(), client=client, retry_policy=FAST)
    assert (report.completed, report.shared, len(vision.calls)) == (1, 1, 1)
    assert store.get_media(resized)["ai_analysis_log"][-1]["details"]["shared_from"] == first
    forced = analyze_pending(
        store, ai, statuses=claim_statuses(force=True), media_ids=[resized], client=client, retry_policy=FAST
    )
    assert (forced.shared, len(vision.calls)) == (0, 2)


# --------------------------------------------------------------------------- the command


@pytest.mark.parametrize("store_kind", ["sqlite"])  # what it prints; the back ends are above
@pytest.mark.parametrize("status", [404, 405])
def test_a_server_without_the_batch_api_is_one_line_and_exit_2_with_nothing_claimed(
    store, ai, ai_env, served, vision, tmp_path, status
):
    cached(store, ai, served, tmp_path, [(100, 100, "a")])
    vision.batch_api.support = status
    result = manage(ai_env, "analyze", "--batch", cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "has no Batch API" in lines[0] and str(status) in lines[0]
    assert (
        store.list_media()[0]["ai_analysis_status"] == "not_started" and store.analysis_batches(False) == []
    )
    plain = manage(ai_env, "analyze", "--status", "not_started", cwd=tmp_path)  # unchanged without --batch
    assert plain.returncode == 0 and store.list_media()[0]["ai_analysis_status"] == "completed"


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_the_daily_batch_and_the_hourly_collect_from_the_command_line(
    store, ai, ai_env, served, vision, tmp_path
):
    cached(store, ai, served, tmp_path, [(100, 100, "a"), (101, 101, "b"), (101, 101, "b")])
    vision.batch_api.scenarios.append("in_progress")
    submitted = manage(ai_env, "analyze", "--batch", "--json", cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    summary = json.loads(submitted.stdout)
    assert (len(summary["batches_submitted"]), summary["batched"], summary["requests"]) == (1, 3, 2)
    waiting = manage(ai_env, "analyze", "--collect", "--json", cwd=tmp_path)
    assert waiting.returncode == 0 and "1 batch in progress, 3 items, submitted 0 min ago" in waiting.stderr
    assert json.loads(waiting.stdout)["batches_in_progress"] == 1
    stats = json.loads(manage(ai_env, "stats", "--json", cwd=tmp_path).stdout)
    assert (stats["batches_open"], stats["batch_items_open"], stats["batch_saved_usd"]) == (1, 3, 0)
    [provider_id] = vision.batch_api.batches
    vision.batch_api.batches[provider_id]["scenario"] = "completed"
    done = manage(ai_env, "analyze", "--collect", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["batches_collected"], result["collected_completed"], result["collected_shared"]) == (
        1,
        3,
        1,
    )
    stats = json.loads(manage(ai_env, "stats", "--json", cwd=tmp_path).stdout)
    assert stats["batches_open"] == 0 and stats["batch_saved_usd"] > 0
    assert stats["by_ai_status"]["completed"] == 3


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_a_lost_answer_while_submitting_is_one_line_and_exit_1(store, ai, ai_env, served, vision, tmp_path):
    cached(store, ai, served, tmp_path, [(100, 100, "a")])
    vision.batch_api.fail_create_after_commit = True
    result = manage(ai_env, "analyze", "--batch", cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "analyze --collect" in lines[0], result.stderr
    assert store.analysis_batches()[0]["status"] == "preparing"  # reconciled later, never sent twice
