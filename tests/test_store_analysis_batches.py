"""The store operations behind batch analysis and shared analyses, run against every back end."""

from __future__ import annotations

from dataclasses import replace

from social_tui_media.store.interface import (
    AnalysisBatch,
    AnalysisClaim,
    AnalysisOutcome,
    AnalysisQuery,
    DownloadClaim,
    make_event,
)
from social_tui_media.store.rows import utc_now
from tests.test_store_conformance import downloaded, seeded


def cached(store, md5s: list[str]) -> list[str]:
    """One cached row per md5 given (repeat an md5 for identical bytes)."""
    _, ids = seeded(store, len(md5s))
    store.claim_downloads(DownloadClaim("d", len(ids)))
    store.finish_downloads("d", [downloaded(i, md5) for i, md5 in zip(ids, md5s, strict=True)])
    return ids


def batched(batch_id: str, model: str = "gpt-4o-mini") -> make_event:
    return make_event("ai_analysis_batched", details={"batch_id": batch_id}, model=model)


def batch_claim(batch_id: str, limit: int = 10, **changes) -> AnalysisClaim:
    return replace(AnalysisClaim(batch_id, limit, ["not_started"], batched(batch_id)), **changes)


def completed(media_id: str, model: str = "gpt-4o-mini", **changes) -> AnalysisOutcome:
    outcome = AnalysisOutcome(
        media_id, "completed", make_event("ai_analysis_completed", model=model),
        {"description": "a chart", "text_in_image": "", "tags": ["x"], "kind": "chart"}, model, 100, 20, 0.0006,
    )  # fmt: skip
    return replace(outcome, **changes)


BATCH = AnalysisBatch("anb-1", "gpt-4o-mini", "host:1:owner", "http://127.0.0.1:1/v1")


def test_claiming_into_a_batch_records_it_and_marks_the_rows(store):
    ids = cached(store, ["a" * 32, "b" * 32, "c" * 32])
    rows = store.claim_analysis_batch(BATCH, batch_claim("anb-1", limit=2))
    assert len(rows) == 2
    assert {r["ai_batch_id"] for r in rows} == {"anb-1"} and {r["ai_analysis_status"] for r in rows} == {
        "started"
    }
    assert rows[0]["ai_analysis_log"][-1]["event"] == "ai_analysis_batched"
    more = store.claim_analysis_batch(BATCH, batch_claim("anb-1"))
    assert {r["media_id"] for r in rows + more} == set(ids)
    [batch] = store.analysis_batches()
    assert (batch["batch_id"], batch["status"], batch["item_count"]) == ("anb-1", "preparing", 3)
    assert batch["owner"] == "host:1:owner" and batch["model"] == "gpt-4o-mini"


def test_a_batch_is_recorded_only_with_rows_and_lists_its_waiting_members(store):
    assert store.claim_analysis_batch(BATCH, batch_claim("anb-1")) == []
    assert store.analysis_batches(open_only=False) == []
    first, second = cached(store, ["a" * 32, "a" * 32])
    store.claim_analysis_batch(BATCH, batch_claim("anb-1"))
    members = store.batch_members("anb-1")
    assert members == sorted(
        [{"media_id": first, "md5_sum": "a" * 32}, {"media_id": second, "md5_sum": "a" * 32}],
        key=lambda m: m["media_id"],
    )
    store.finish_batch_item("anb-1", completed(first))
    assert [m["media_id"] for m in store.batch_members("anb-1")] == [second]


def test_only_the_owner_of_a_preparing_batch_claims_into_it(store):
    cached(store, ["a" * 32, "b" * 32])
    assert len(store.claim_analysis_batch(BATCH, batch_claim("anb-1", limit=1))) == 1
    assert store.claim_analysis_batch(replace(BATCH, owner="host:2:other"), batch_claim("anb-1")) == []
    assert store.update_analysis_batch("anb-1", {"status": "abandoned"}, ["preparing"])
    assert store.claim_analysis_batch(BATCH, batch_claim("anb-1")) == []


def test_rows_in_a_batch_are_never_taken_over_by_lease_or_dead_owner(store):
    ids = cached(store, ["a" * 32, "b" * 32])
    store.claim_analysis_batch(BATCH, batch_claim("anb-1"))
    expired = AnalysisClaim("w2", 10, ["not_started"], make_event("ai_analysis_started"), lease_seconds=0)
    assert store.claim_analysis(replace(expired, dead_workers=["anb-1", "host:1:owner"])) == []
    assert store.analysis_candidates(AnalysisQuery(["not_started"], lease_seconds=0)) == []
    assert store.analysis_claimants() == []
    assert {r["ai_analysis_status"] for r in store.list_media(media_ids=ids)} == {"started"}


def test_a_batch_result_is_applied_once_with_its_events(store):
    [media_id] = cached(store, ["a" * 32])
    store.claim_analysis_batch(BATCH, batch_claim("anb-1"))
    started = make_event("ai_analysis_started", model="gpt-4o-mini")
    outcome = completed(media_id, before_events=(started,))
    assert store.finish_batch_item("anb-1", outcome) is True
    assert store.finish_batch_item("anb-1", outcome) is False
    row = store.get_media(media_id)
    assert row["ai_analysis_status"] == "completed" and row["ai_batch_id"] is None
    assert row["ai_analysis"]["kind"] == "chart" and row["ai_prompt_tokens"] == 100
    events = [e["event"] for e in row["ai_analysis_log"]]
    assert events == [
        "media_downloaded",
        "ai_analysis_batched",
        "ai_analysis_started",
        "ai_analysis_completed",
    ]
    assert store.finish_batch_item("anb-other", completed(media_id)) is False


def test_releasing_a_batch_hands_its_rows_back_as_they_were(store):
    first, second, third = cached(store, ["a" * 32, "b" * 32, "c" * 32])
    store.claim_analysis(AnalysisClaim("w", 1, ["not_started"], make_event("ai_analysis_started"), [first]))
    assert store.finish_analysis("w", completed(first))
    forced = batch_claim("anb-1", statuses=["not_started", "completed"])
    assert len(store.claim_analysis_batch(BATCH, forced)) == 3
    assert store.finish_batch_item("anb-1", completed(third))
    released = make_event("ai_analysis_released", "skipped", {"batch_id": "anb-1", "batch_status": "expired"})
    assert store.release_analysis_batch("anb-1", released) == 2
    assert store.release_analysis_batch("anb-1", released) == 0
    rows = {r["media_id"]: r for r in store.list_media()}
    assert rows[first]["ai_analysis_status"] == "completed" and rows[first]["ai_analysis"]["kind"] == "chart"
    assert rows[second]["ai_analysis_status"] == "not_started" and rows[second]["ai_batch_id"] is None
    assert rows[second]["ai_analysis_log"][-1]["details"]["batch_status"] == "expired"
    assert rows[third]["ai_analysis_status"] == "completed"


def test_a_batch_moves_on_only_from_the_status_asked(store):
    cached(store, ["a" * 32])
    store.claim_analysis_batch(BATCH, batch_claim("anb-1"))
    now = utc_now()
    submitted = {"status": "submitted", "provider_batch_id": "batch_x", "submitted_at": now}
    assert store.update_analysis_batch("anb-1", submitted, ["preparing"]) is True
    assert store.update_analysis_batch("anb-1", submitted, ["preparing"]) is False
    done = {
        "status": "completed",
        "finished_at": now,
        "cost_usd": 0.25,
        "saved_usd": 0.25,
        "request_count": 1,
    }
    assert store.update_analysis_batch("anb-1", done, ["submitted"]) is True
    assert store.analysis_batches() == []
    [batch] = store.analysis_batches(open_only=False)
    assert batch["provider_batch_id"] == "batch_x" and batch["status"] == "completed"
    assert float(batch["saved_usd"]) == 0.25


def test_batch_counts_show_open_batches_and_savings(store):
    assert store.batch_counts() == {
        "batches_open": 0, "batch_items_open": 0, "batch_oldest_open_at": None,
        "batch_cost_usd": 0.0, "batch_saved_usd": 0.0,
    }  # fmt: skip
    cached(store, ["a" * 32, "b" * 32, "c" * 32])
    store.claim_analysis_batch(BATCH, batch_claim("anb-1", limit=2))
    store.claim_analysis_batch(replace(BATCH, batch_id="anb-2"), batch_claim("anb-2"))
    store.update_analysis_batch("anb-2", {"status": "completed", "cost_usd": 0.5, "saved_usd": 0.5})
    counts = store.batch_counts()
    assert (counts["batches_open"], counts["batch_items_open"]) == (1, 2)
    assert counts["batch_saved_usd"] == 0.5 and counts["batch_cost_usd"] == 0.5
    assert counts["batch_oldest_open_at"].endswith("+00:00")


def test_a_completed_row_with_the_same_bytes_and_model_is_shareable(store):
    first, same, other, dated = cached(store, ["a" * 32, "a" * 32, "b" * 32, "b" * 32])
    assert store.shareable_analysis(same, "gpt-4o-mini") is None  # nothing completed yet
    claim = AnalysisClaim("w", 10, ["not_started"], make_event("ai_analysis_started"), [first, other])
    store.claim_analysis(claim)
    store.finish_analysis("w", completed(first))
    store.finish_analysis("w", completed(other, model="gpt-4o-mini-2024-07-18"))
    assert store.shareable_analysis(same, "gpt-4o-mini")["media_id"] == first
    assert store.shareable_analysis(same, "gpt-4o") is None  # another model's answer is not shared
    assert store.shareable_analysis(first, "gpt-4o-mini") is None  # never itself
    assert store.shareable_analysis(dated, "gpt-4o-mini")["media_id"] == other  # a dated snapshot


def test_a_failed_row_is_not_shareable(store):
    first, same = cached(store, ["a" * 32, "a" * 32])
    store.claim_analysis(AnalysisClaim("w", 1, ["not_started"], make_event("ai_analysis_started"), [first]))
    failed = AnalysisOutcome(first, "failed", make_event("ai_analysis_failed", "failed"), model="gpt-4o-mini")
    store.finish_analysis("w", failed)
    assert store.shareable_analysis(same, "gpt-4o-mini") is None
