"""The store operations a months-long installation needs, on every back end: marking files used,
the append-only audit log, the metrics read from rows and events, and retention's candidates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from social_tui_media.store.interface import (
    PAGE_ROWS,
    AuditQuery,
    DownloadClaim,
    DownloadOutcome,
    StoreError,
    day_start_iso,
    make_audit,
    make_event,
)
from social_tui_media.store.rows import utc_now
from tests.test_store_conformance import post, seeded, slot

TODAY = datetime.now(UTC).date().isoformat()
TOMORROW = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()


def finished(store, outcomes: list[DownloadOutcome]) -> None:
    store.claim_downloads(DownloadClaim("w1", len(outcomes), media_ids=[o.media_id for o in outcomes]))
    assert store.finish_downloads("w1", outcomes) == len(outcomes)


def ok(
    media_id: str, md5: str, source: str = "http", ms: int | None = 100, size: int = 1000
) -> DownloadOutcome:
    details = {"md5_sum": md5, "file_size": size, "source": source}
    if ms is not None:
        details["duration_ms"] = ms
    return DownloadOutcome(
        media_id, "downloaded", make_event("media_downloaded", details=details), md5_sum=md5, file_size=size,
        mime_type="image/jpeg", local_file_path=f"/cache/media/images/{md5}.jpg", attempts=1,
    )  # fmt: skip


def failed(media_id: str, kind: str) -> DownloadOutcome:
    event = make_event("media_download_failed", "failed", {"error_kind": kind, "message": "no"})
    return DownloadOutcome(media_id, "failed", event, download_error="no", download_error_kind=kind)


# marking files used ----------------------------------------------------------------------------


def test_mark_used_moves_the_last_use_of_only_the_rows_read_in_one_call(store):
    _, ids = seeded(store, 3)
    finished(store, [ok(i, c * 32) for i, c in zip(ids, "abc", strict=True)])
    long_ago = "2025-01-01T00:00:00.000000+00:00"
    for media_id in ids:
        store.update_media(media_id, {"cache_used_at": long_ago})
    assert store.mark_used([ids[0], ids[0], ids[2]]) == 2
    used = {i: store.get_media(i)["cache_used_at"] for i in ids}
    assert used[ids[1]] == long_ago
    assert used[ids[0]] > long_ago and used[ids[2]] > long_ago
    assert store.mark_used([]) == 0 and store.mark_used(["med-unknown"]) == 0


# the audit log ----------------------------------------------------------------------------------


def test_audit_entries_list_oldest_first_with_who_and_when_filtered_by_media_and_day(store):
    store.append_audit(
        [
            make_audit(
                "presigned_url", "url", "med-1", "s3://bucket/media/2025/12/med-1.jpg", {"expires": 60}
            ),
            make_audit("file_deleted", "eviction", "med-2", "/cache/media/images/x.jpg"),
            make_audit("file_deleted", "repair_stray", None, "/cache/media/images/y.jpg"),
        ]
    )
    entries = list(store.iter_audit(AuditQuery()))
    assert [e["action"] for e in entries] == ["presigned_url", "file_deleted", "file_deleted"]
    first = entries[0]
    assert first["details"] == {"expires": 60} and first["target"].endswith("med-1.jpg")
    assert first["actor_user"] and first["actor_host"] and first["occurred_at"] >= day_start_iso(TODAY)
    assert entries[2]["media_id"] is None and entries[1]["details"] is None
    assert [e["media_id"] for e in store.iter_audit(AuditQuery(media_id="med-2"))] == ["med-2"]
    assert len(list(store.iter_audit(AuditQuery(since=TODAY)))) == 3
    assert list(store.iter_audit(AuditQuery(since=TOMORROW))) == []


def test_an_audit_listing_longer_than_a_page_comes_whole_and_in_order(store):
    assert store.append_audit([make_audit("export", "test", f"med-{i}") for i in range(PAGE_ROWS + 5)]) == (
        PAGE_ROWS + 5
    )
    ids = [e["audit_id"] for e in store.iter_audit(AuditQuery())]
    assert len(ids) == PAGE_ROWS + 5 and ids == sorted(ids) and len(set(ids)) == len(ids)


def test_an_unknown_audit_action_is_refused_before_anything_is_written():
    with pytest.raises(ValueError, match="presigned_url"):
        make_audit("looked_at")


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_sqlite_audit_rows_cannot_be_updated_or_deleted(store):
    store.append_audit([make_audit("export", "test", "med-1")])
    for statement in ("UPDATE media_audit SET action = 'x'", "DELETE FROM media_audit"):
        with pytest.raises(StoreError, match="append-only"), store._transaction() as conn:
            conn.execute(statement)
    assert [e["action"] for e in store.iter_audit(AuditQuery())] == ["export"]


@pytest.mark.parametrize("store_kind", ["postgres"])
@pytest.mark.parametrize("role", ["owner", "service_role"])
def test_postgres_audit_rows_cannot_be_changed_by_any_role_the_tool_uses(
    store, store_url, postgrest_server, role
):
    store.append_audit([make_audit("export", "test", "med-1")])
    for statement in (
        "UPDATE media_audit SET action = 'x'",
        "DELETE FROM media_audit",
        "TRUNCATE media_audit",
    ):
        with psycopg.connect(store_url, autocommit=True) as conn:
            if role != "owner":
                conn.execute(f"SET ROLE {role}")
            with pytest.raises(psycopg.Error, match="append-only|permission denied"):
                conn.execute(statement)
    assert [e["action"] for e in store.iter_audit(AuditQuery())] == ["export"]


@pytest.mark.parametrize("store_kind", ["rest"])
def test_rest_audit_rows_cannot_be_deleted_or_changed_through_the_table_endpoint(store):
    store.append_audit([make_audit("export", "test", "med-1")])
    table = store._client.table("media_audit")
    for request in (
        table.delete().eq("media_id", "med-1"),
        table.update({"action": "x"}).eq("media_id", "med-1"),
    ):
        with pytest.raises(StoreError, match="append-only|permission denied"):
            store._run(request)
    assert [e["action"] for e in store.iter_audit(AuditQuery())] == ["export"]


# metrics ------------------------------------------------------------------------------------------


def test_download_metrics_come_from_the_events_of_a_window_and_of_all_time(store):
    _, ids = seeded(store, 6)
    finished(
        store,
        [
            ok(ids[0], "a" * 32, ms=100, size=1000),
            ok(ids[1], "b" * 32, ms=300, size=3000),
            ok(ids[2], "c" * 32, source="cache", ms=1),
            ok(ids[3], "d" * 32, source="shared", ms=5),
            failed(ids[4], "http_403"),
            failed(ids[5], "timeout"),
        ],
    )
    old = make_event("media_download_failed", "failed", {"error_kind": "timeout"})
    store.append_event(ids[5], {**old, "timestamp": "2025-01-02T03:04:05.000000+00:00"})
    everything = store.download_metrics()
    assert everything == {
        "succeeded": 4, "failed": 3, "served_without_http": 2, "http_timed": 2, "http_ms": 400,
        "http_bytes": 4000, "p95_ms": 300, "failures_by_kind": {"http_403": 1, "timeout": 2},
    }  # fmt: skip
    window = store.download_metrics(day_start_iso(TODAY))
    assert (window["failed"], window["failures_by_kind"]) == (2, {"http_403": 1, "timeout": 1})
    nothing = store.download_metrics(day_start_iso(TOMORROW))
    assert nothing["succeeded"] == nothing["http_timed"] == 0 and nothing["p95_ms"] is None


def test_stage_counts_say_what_waits_and_count_each_archive_copy_once(store):
    _, ids = seeded(store, 5)
    finished(store, [ok(ids[i], c * 32, size=10 * (i + 1)) for i, c in zip(range(1, 5), "abcd", strict=True)])
    store.update_media(ids[2], {"archive_url": "s3://b/media/x.jpg", "archived_at": utc_now()})
    store.update_media(ids[3], {"archive_url": "s3://b/media/x.jpg", "archived_at": utc_now()})  # reused copy
    store.update_media(ids[4], {"archive_url": "s3://b/media/y.jpg", "archived_at": utc_now()})
    store.update_media(ids[4], {"ai_analysis_status": "completed"})
    assert store.stage_counts() == {
        "download": 1, "analysis": 3, "archive": 1, "s3_objects": 2, "s3_bytes": 40 + 50,
    }  # fmt: skip


def test_analysis_costs_sum_completed_analyses_by_month_post_and_author(store):
    [(p1, _), (p2, _)] = store.upsert_posts([post("urn:li:activity:1"), post("urn:li:activity:2")])
    store.upsert_posts([replace_author(post("urn:li:activity:2"), "bo")])
    rows = store.upsert_media([slot(p1, "/img/1"), slot(p2, "/img/2")])

    def completed(when: str, cost: float, prompt: int) -> dict:
        details = {"tokens_used": {"prompt": prompt, "completion": 10}, "estimated_cost_usd": cost}
        return {**make_event("ai_analysis_completed", details=details), "timestamp": when}

    store.append_event(rows[0].media_id, completed("2025-10-03T00:00:00.000000+00:00", 0.25, 100))
    store.append_event(rows[0].media_id, completed("2025-11-04T00:00:00.000000+00:00", 0.5, 200))
    store.append_event(rows[1].media_id, completed("2025-11-05T00:00:00.000000+00:00", 1.0, 300))
    store.append_event(rows[1].media_id, make_event("ai_analysis_failed", "failed", {"error_kind": "x"}))
    by_month = store.analysis_costs("month")
    assert [(r["group_key"], r["analyses"], r["cost_usd"]) for r in by_month] == [
        ("2025-10", 1, 0.25), ("2025-11", 2, 1.5),
    ]  # fmt: skip
    assert by_month[1]["prompt_tokens"] == 500 and by_month[1]["completion_tokens"] == 20
    assert {r["group_key"]: r["cost_usd"] for r in store.analysis_costs("post")} == {p1: 0.75, p2: 1.0}
    assert {r["group_key"]: r["cost_usd"] for r in store.analysis_costs("author")} == {"ana": 0.75, "bo": 1.0}
    since = store.analysis_costs("author", day_start_iso("2025-11-01"))
    assert {r["group_key"]: r["analyses"] for r in since} == {"ana": 1, "bo": 1}


def replace_author(record, author: str):
    from dataclasses import replace

    return replace(record, author_username=author)


# retention ------------------------------------------------------------------------------------------


def test_retention_candidates_are_old_posts_files_that_no_younger_post_shares(store):
    now = datetime.now(UTC)
    young_at = (now - timedelta(days=2)).isoformat()
    [(old, _), (young, _)] = store.upsert_posts(
        [
            post("urn:li:activity:old", posted_at="2025-01-01T00:00:00+00:00"),
            post("urn:li:activity:new", posted_at=young_at),
        ]
    )
    rows = store.upsert_media(
        [slot(old, "/img/only-old"), slot(old, "/img/shared", position=1), slot(old, "/img/gone", position=2),
         slot(young, "/img/shared-too"), slot(young, "/img/young", position=1)]
    )  # fmt: skip
    ids = [r.media_id for r in rows]
    finished(
        store,
        [
            ok(ids[0], "a" * 32),
            ok(ids[1], "b" * 32),
            ok(ids[2], "c" * 32),
            ok(ids[3], "b" * 32),
            ok(ids[4], "d" * 32),
        ],
    )
    store.update_media(ids[2], {"evicted_at": utc_now()})
    cutoff = (now - timedelta(days=30)).isoformat(timespec="microseconds")
    assert [r["media_id"] for r in store.retention_candidates(cutoff)] == [ids[0]]
    store.update_media(ids[3], {"evicted_at": utc_now()})  # the young post no longer holds the shared file
    assert sorted(r["media_id"] for r in store.retention_candidates(cutoff)) == sorted([ids[0], ids[1]])
