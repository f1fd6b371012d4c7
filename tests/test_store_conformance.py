"""One behaviour suite, run against every store back end."""

from __future__ import annotations

import json
import threading
from contextlib import closing
from dataclasses import replace
from datetime import datetime

import pytest

from social_tui_media.ids import PREFIX_MEDIA, generate_aws_id
from social_tui_media.store.interface import (
    PAGE_ROWS,
    AnalysisClaim,
    AnalysisOutcome,
    AnalysisQuery,
    DownloadClaim,
    DownloadOutcome,
    MediaQuery,
    MediaSlotRow,
    PostRecord,
    RunCounts,
    StoreError,
    make_event,
    media_order,
)
from social_tui_media.store.postgres import PostgresStore


def post(urn: str, text: str = "hello", posted_at: str = "2025-11-20T10:00:00+00:00") -> PostRecord:
    millis = int(datetime.fromisoformat(posted_at).timestamp() * 1000)
    return PostRecord(
        urn, urn, millis, "ana", "Ana L", text, "https://x", "regular", json.dumps({"urn": urn, "text": text})
    )


def slot(
    post_id: str,
    path: str,
    url_query: str = "e=1764877600&t=a",
    expires: str | None = "2025-12-04T19:46:40.000000+00:00",
    position: int = 0,
) -> MediaSlotRow:
    url = f"https://media.licdn.com{path}?{url_query}"
    return MediaSlotRow(
        generate_aws_id(PREFIX_MEDIA),
        post_id,
        "image",
        url,
        f"https://media.licdn.com{path}",
        "image",
        position,
        expires,
    )


def seeded(store, n_slots: int = 3) -> tuple[str, list[str]]:
    [(post_id, _)] = store.upsert_posts([post("urn:li:activity:1")])
    media = store.upsert_media([slot(post_id, f"/img/{i}", position=i) for i in range(n_slots)])
    return post_id, [m.media_id for m in media]


def downloaded(media_id: str, md5: str = "a" * 32) -> DownloadOutcome:
    return DownloadOutcome(
        media_id, "downloaded", make_event("media_downloaded", details={"md5_sum": md5}),
        md5_sum=md5, file_size=10, mime_type="image/jpeg", width=4, height=3,
        local_file_path=f"cache/media/images/{md5}.jpg", attempts=1,
    )  # fmt: skip


def test_upsert_posts_keeps_post_id_and_refreshes_fields(store):
    [(first_id, inserted)] = store.upsert_posts([post("urn:li:activity:1", "v1")])
    [(second_id, again)] = store.upsert_posts([post("urn:li:activity:1", "v2")])
    assert inserted is True and again is False and first_id == second_id
    page = store.posts_page(None, 10)
    assert [p["raw_json"]["text"] for p in page] == ["v2"]


def test_upsert_posts_returns_ids_in_input_order(store):
    urns = [f"urn:li:activity:{i}" for i in range(5)]
    ids = store.upsert_posts([post(u) for u in urns])
    again = store.upsert_posts([post(u) for u in reversed(urns)])
    assert [i for i, _ in again] == [i for i, _ in reversed(ids)]


def test_upsert_media_is_idempotent_and_keeps_newest_url(store):
    post_id, ids = seeded(store, 1)
    newer = slot(post_id, "/img/0", "e=1765000000&t=b", "2025-12-06T05:46:40.000000+00:00")
    older = slot(post_id, "/img/0", "e=1764000000&t=c", "2025-11-24T16:00:00.000000+00:00")
    assert [m.inserted for m in store.upsert_media([newer])] == [False]
    assert [m.media_id for m in store.upsert_media([older])] == ids
    [row] = store.list_media(post_id=post_id)
    assert row["media_url"].endswith("e=1765000000&t=b")
    assert row["url_expires_at"].startswith("2025-12-06")


def test_fresh_url_sets_failed_slot_back_to_pending(store):
    post_id, [media_id] = seeded(store, 1)
    [claimed] = store.claim_downloads(DownloadClaim("w1", 10))
    failure = DownloadOutcome(
        media_id,
        "failed",
        make_event("media_download_failed", "failed"),
        download_error="403",
        download_error_kind="http_status",
        download_permanent=True,
        attempts=1,
    )
    store.finish_downloads("w1", [failure])
    assert store.get_media(media_id)["download_status"] == "failed"
    assert store.claim_downloads(DownloadClaim("w1", 10)) == []  # permanent: not retried by every run
    store.upsert_media([slot(post_id, "/img/0", "e=1769000000&t=z", "2026-01-21T12:53:20.000000+00:00")])
    row = store.get_media(media_id)
    assert row["download_status"] == "pending" and row["download_permanent"] is False


def test_permanent_failures_retry_only_when_asked(store):
    _, [media_id] = seeded(store, 1)
    store.claim_downloads(DownloadClaim("w1", 1))
    store.finish_downloads(
        "w1",
        [
            DownloadOutcome(
                media_id, "failed", make_event("media_download_failed", "failed"), download_permanent=True
            )
        ],
    )
    assert store.claim_downloads(DownloadClaim("w2", 5)) == []
    assert [r["media_id"] for r in store.claim_downloads(DownloadClaim("w2", 5, retry_failed=True))] == [
        media_id
    ]


def test_claims_are_exclusive_and_soonest_expiry_first(store):
    [(post_id, _)] = store.upsert_posts([post("urn:li:activity:1")])
    late = slot(post_id, "/late", expires="2026-02-01T00:00:00.000000+00:00")
    soon = slot(post_id, "/soon", expires="2025-12-01T00:00:00.000000+00:00", position=1)
    never = slot(post_id, "/never", expires=None, position=2)
    store.upsert_media([late, never, soon])
    first = store.claim_downloads(DownloadClaim("w1", 2))
    assert [r["slot_key"].rsplit("/", 1)[1] for r in first] == ["soon", "late"]
    second = store.claim_downloads(DownloadClaim("w2", 5))
    assert [r["slot_key"].rsplit("/", 1)[1] for r in second] == ["never"]
    assert store.claim_downloads(DownloadClaim("w3", 5)) == []


def test_dead_workers_claims_are_taken_over(store):
    _, ids = seeded(store, 2)
    store.claim_downloads(DownloadClaim("host:999999:dead", 5))
    assert store.claim_downloads(DownloadClaim("w2", 5)) == []
    assert "host:999999:dead" in store.download_claimants()
    taken = store.claim_downloads(DownloadClaim("w2", 5, dead_workers=["host:999999:dead"]))
    assert sorted(r["media_id"] for r in taken) == sorted(ids)


def test_expired_download_lease_is_taken_over(store):
    seeded(store, 1)
    store.claim_downloads(DownloadClaim("w1", 5))
    assert store.claim_downloads(DownloadClaim("w2", 5, lease_seconds=3600)) == []
    assert len(store.claim_downloads(DownloadClaim("w2", 5, lease_seconds=0))) == 1


def test_finish_downloads_writes_batch_and_appends_event(store):
    _, ids = seeded(store, 3)
    store.claim_downloads(DownloadClaim("w1", 3))
    assert store.finish_downloads("w1", [downloaded(i, c * 32) for i, c in zip(ids, "abc", strict=True)]) == 3
    rows = store.list_media(download_status="downloaded")
    assert len(rows) == 3
    row = store.get_media(ids[1])
    assert (row["md5_sum"], row["file_size"], row["width"], row["mime_type"]) == (
        "b" * 32,
        10,
        4,
        "image/jpeg",
    )
    assert [e["event"] for e in row["ai_analysis_log"]] == ["media_downloaded"]
    assert row["download_claimed_by"] is None and row["download_attempts"] == 1


def test_only_the_claim_owner_can_finish(store):
    _, [media_id] = seeded(store, 1)
    store.claim_downloads(DownloadClaim("w1", 1))
    assert store.finish_downloads("intruder", [downloaded(media_id)]) == 0
    assert store.get_media(media_id)["download_status"] == "pending"


def test_released_claims_are_claimable_at_once_with_nothing_recorded(store):
    _, ids = seeded(store, 3)
    store.claim_downloads(DownloadClaim("w1", 2))
    [other] = store.claim_downloads(DownloadClaim("w2", 5))
    assert store.release_downloads("intruder") == 0
    assert store.release_downloads("w1") == 2
    released = [store.get_media(i) for i in ids if i != other["media_id"]]
    for row in released:
        assert (row["download_claimed_by"], row["download_claimed_at"]) == (None, None)
        assert (row["download_status"], row["download_attempts"]) == ("pending", 0)
        assert row["ai_analysis_log"] == []
    assert store.get_media(other["media_id"])["download_claimed_by"] == "w2"  # only w1's claims
    again = store.claim_downloads(DownloadClaim("w3", 5))
    assert sorted(r["media_id"] for r in again) == sorted(r["media_id"] for r in released)


def test_event_log_is_an_array_and_appends_never_rewrite(store):
    _, [media_id] = seeded(store, 1)
    for n in range(3):
        store.append_event(media_id, make_event("media_archived", details={"n": n}))
    log = store.get_media(media_id)["ai_analysis_log"]
    assert isinstance(log, list) and [e["details"]["n"] for e in log] == [0, 1, 2]
    assert set(log[0]) >= {"timestamp", "event", "status"}


def test_concurrent_appends_lose_nothing(store):
    _, [media_id] = seeded(store, 1)

    def append(worker: int) -> None:
        for n in range(10):
            store.append_event(media_id, make_event("media_archived", details={"w": worker, "n": n}))

    threads = [threading.Thread(target=append, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.get_media(media_id)["ai_analysis_log"]) == 40


def _analysable(store, n: int) -> list[str]:
    _, ids = seeded(store, n)
    store.claim_downloads(DownloadClaim("d", n))
    store.finish_downloads("d", [downloaded(i, f"{k:032x}") for k, i in enumerate(ids)])
    return ids


def test_analysis_claim_is_exclusive_and_logs_started(store):
    ids = _analysable(store, 3)
    started = make_event("ai_analysis_started", model="m")
    a = store.claim_analysis(AnalysisClaim("w1", 2, ["not_started"], started))
    b = store.claim_analysis(AnalysisClaim("w2", 5, ["not_started"], started))
    assert len(a) == 2 and len(b) == 1
    assert {r["media_id"] for r in a + b} == set(ids)
    assert all(r["ai_analysis_status"] == "started" for r in a + b)
    assert a[0]["ai_claimed_by"] == "w1"
    assert a[0]["ai_analysis_log"][-1]["event"] == "ai_analysis_started"


def test_analysis_needs_a_cached_file(store):
    seeded(store, 2)  # pending downloads only
    assert (
        store.claim_analysis(AnalysisClaim("w1", 5, ["not_started"], make_event("ai_analysis_started"))) == []
    )


def test_finish_analysis_completed_and_failed(store):
    ids = _analysable(store, 2)
    store.claim_analysis(AnalysisClaim("w1", 2, ["not_started"], make_event("ai_analysis_started")))
    done = AnalysisOutcome(
        ids[0],
        "completed",
        make_event("ai_analysis_completed"),
        {"description": "a chart", "tags": ["x"]},
        "m",
        100,
        20,
        0.0012,
    )
    bad = AnalysisOutcome(
        ids[1], "failed", make_event("ai_analysis_failed", "failed", {"error_kind": "bad_output"})
    )
    assert store.finish_analysis("w1", done) and store.finish_analysis("w1", bad)
    row = store.get_media(ids[0])
    assert row["ai_analysis"] == {"description": "a chart", "tags": ["x"]}
    assert row["ai_analysis_status"] == "completed" and row["ai_prompt_tokens"] == 100
    assert row["ai_analyzed_at"] is not None
    assert store.get_media(ids[1])["ai_analysis_status"] == "failed"
    assert (
        store.claim_analysis(AnalysisClaim("w2", 5, ["not_started"], make_event("ai_analysis_started"))) == []
    )
    again = store.claim_analysis(
        AnalysisClaim("w2", 5, ["not_started", "failed"], make_event("ai_analysis_started"))
    )
    assert [r["media_id"] for r in again] == [ids[1]]


def test_expired_analysis_lease_is_reclaimed_and_old_owner_cannot_finish(store):
    [media_id] = _analysable(store, 1)
    store.claim_analysis(AnalysisClaim("crashed", 1, ["not_started"], make_event("ai_analysis_started")))
    assert (
        store.claim_analysis(
            AnalysisClaim("w2", 1, ["not_started"], make_event("ai_analysis_started"), lease_seconds=3600)
        )
        == []
    )
    [row] = store.claim_analysis(
        AnalysisClaim("w2", 1, ["not_started"], make_event("ai_analysis_started"), lease_seconds=0)
    )
    assert row["ai_claimed_by"] == "w2"
    late = AnalysisOutcome(
        media_id, "completed", make_event("ai_analysis_completed"), {"description": "late"}
    )
    assert store.finish_analysis("crashed", late) is False


def test_update_media_and_find_archived_copy(store):
    ids = _analysable(store, 2)
    store.update_media(
        ids[0],
        {"archive_url": "s3://b/media/2025/11/x.jpg", "archived_at": "2025-11-25T00:00:00.000000+00:00"},
        make_event("media_archived"),
    )
    assert store.find_archived_copy(f"{0:032x}") == "s3://b/media/2025/11/x.jpg"
    assert store.find_archived_copy(f"{1:032x}") is None
    assert store.get_media(ids[0])["ai_analysis_log"][-1]["event"] == "media_archived"


def test_runs_and_data_downloads(store):
    run_id = store.start_run("posts/", "test")
    [(post_id, _)] = store.upsert_posts([post("urn:li:activity:1")])
    store.insert_data_downloads(
        [
            {
                "download_id": "dl-1",
                "post_id": post_id,
                "run_id": run_id,
                "downloaded_at": "2025-11-25T00:00:00+00:00",
                "total_reactions": 5,
                "stats_json": '{"total_reactions": 5}',
                "raw_json": '{"a": 1}',
                "source_file_path": "/scrapes/f.json",
            }
        ]
    )
    store.finish_run(run_id, RunCounts(posts_processed=1, posts_new=1), "completed")
    assert store.media_counts()["posts_total"] == 1


def test_posts_page_pages_past_any_cap_and_filters_by_date(store):
    store.upsert_posts(
        [
            post(f"urn:li:activity:{i}", posted_at=f"2025-11-{1 + i % 28:02d}T00:00:00+00:00")
            for i in range(1200)
        ]
    )
    seen, after = [], None
    while page := store.posts_page(after, 500):
        seen += [p["post_id"] for p in page]
        after = page[-1]["post_id"]
    assert len(seen) == len(set(seen)) == 1200
    recent = store.posts_page(None, 5000, start_date="2025-11-20")
    assert len(recent) == sum(1 for i in range(1200) if 1 + i % 28 >= 20)


def listed(store, **filters) -> list[str]:
    return [r["media_id"] for r in store.iter_media(MediaQuery(**filters))]


def two_posts_made_on_either_side_of_a_day(store) -> dict[str, str]:
    """Post a: an image made just before 2025-11-01 (UTC), a video at its first instant; post b:
    an image made later that month, a video made in October."""
    [(a, _), (b, _)] = store.upsert_posts([post("urn:li:activity:1"), post("urn:li:activity:2")])
    made = {
        "a_image": (slot(a, "/a/0", position=0), "2025-10-31T23:59:59.999999+00:00"),
        "a_video": (replace(slot(a, "/a/1", position=1), media_type="video"), "2025-11-01T00:00:00.000000+00:00"),
        "b_image": (slot(b, "/b/0", position=0), "2025-11-20T08:00:00.000000+00:00"),
        "b_video": (replace(slot(b, "/b/1", position=1), media_type="video"), "2025-10-02T08:00:00.000000+00:00"),
    }  # fmt: skip
    ids = [m.media_id for m in store.upsert_media([row for row, _ in made.values()])]
    for media_id, (_, created_at) in zip(ids, made.values(), strict=True):
        store.update_media(media_id, {"created_at": created_at})
    return dict(zip(made, ids, strict=True))


def in_key_order(store, *media_ids: str) -> list[str]:
    return [r["media_id"] for r in sorted((store.get_media(m) for m in media_ids), key=media_order)]


def test_list_filters_by_media_type(store):
    ids = two_posts_made_on_either_side_of_a_day(store)
    assert listed(store, media_type="video") == in_key_order(store, ids["a_video"], ids["b_video"])
    assert listed(store, media_type="image") == in_key_order(store, ids["a_image"], ids["b_image"])
    assert listed(store, media_type="document") == []


def test_list_since_a_day_keeps_rows_made_from_its_first_utc_instant(store):
    ids = two_posts_made_on_either_side_of_a_day(store)
    assert listed(store, since="2025-11-01") == in_key_order(store, ids["a_video"], ids["b_image"])
    assert listed(store, since="2025-11-21") == []
    assert len(listed(store, since="2025-10-01")) == 4


@pytest.mark.parametrize("store_kind", ["postgres"])
def test_since_is_the_utc_day_whatever_the_sessions_time_zone(store, store_url):
    ids = two_posts_made_on_either_side_of_a_day(store)
    auckland_url = f"{store_url}?options=-c%20TimeZone%3DPacific/Auckland"  # UTC+13 in November
    with closing(PostgresStore(auckland_url)) as auckland:
        assert listed(auckland, since="2025-11-01") == in_key_order(store, ids["a_video"], ids["b_image"])


def test_list_filters_combine(store):
    ids = two_posts_made_on_either_side_of_a_day(store)
    a_post = store.get_media(ids["a_image"])["post_id"]
    store.update_media(ids["b_image"], {"download_status": "downloaded"})
    store.update_media(ids["a_video"], {"ai_analysis_status": "failed"})
    recent_images = {"media_type": "image", "since": "2025-11-01"}
    assert listed(store, **recent_images, download_status="downloaded") == [ids["b_image"]]
    assert listed(store, **recent_images, download_status="pending") == []
    assert listed(store, post_id=a_post, media_type="video", ai_status="failed", since="2025-11-01") == [
        ids["a_video"]
    ]
    assert listed(store, post_id=a_post, ai_status="not_started") == [ids["a_image"]]
    chosen = [ids["b_video"], ids["a_image"], ids["a_video"], ids["b_video"]]  # any order, repeats
    videos = in_key_order(store, ids["a_video"], ids["b_video"])
    assert listed(store, media_ids=chosen, media_type="video") == videos
    assert listed(store, media_ids=[]) == [] and store.list_media(media_ids=[], media_type="image") == []


def many_slots(store, n_posts: int) -> list[tuple]:
    """Three slots per post, written out of position order; the third is a video. Their keys."""
    posts = store.upsert_posts([post(f"urn:li:activity:{i}") for i in range(n_posts)])
    rows = [
        slot(post_id, f"/p{i}/{n}", position=n) if n < 2 else replace(slot(post_id, f"/p{i}/2", position=2), media_type="video")
        for i, (post_id, _) in enumerate(posts) for n in (2, 0, 1)
    ]  # fmt: skip
    upserted = store.upsert_media(rows)
    return [(m.post_id, row.position, m.media_id) for m, row in zip(upserted, rows, strict=True)]


def test_a_listing_larger_than_a_page_streams_in_key_order_without_duplicates_or_gaps(store):
    keys = many_slots(store, PAGE_ROWS)  # 3 pages of rows: 2 of images, 1 of videos, exactly
    stream = store.iter_media(MediaQuery())
    assert [media_order(r) for r in stream] == sorted(keys)
    images = sorted(k for k in keys if k[1] < 2)
    assert [media_order(r) for r in store.iter_media(MediaQuery(media_type="image"))] == images
    some = [k[2] for k in keys[::2]]  # 1,500 ids: a page and a half
    assert [media_order(r) for r in store.iter_media(MediaQuery(media_ids=some))] == sorted(keys[::2])


def test_a_listing_reads_each_page_when_it_gets_there(store):
    keys = many_slots(store, PAGE_ROWS // 2)  # a page and a half
    stream = store.iter_media(MediaQuery())
    first = next(stream)
    last_post = max(keys)[0]
    [late] = store.upsert_media([slot(last_post, "/written-while-listing", position=9)])
    rest = list(stream)
    assert media_order(first) == min(keys) and len(rest) == len(keys)
    assert rest[-1]["media_id"] == late.media_id  # its key sorts last: read with the last page


def test_media_counts_by_status(store):
    ids = _analysable(store, 2)
    post_id = store.get_media(ids[0])["post_id"]
    store.upsert_media([slot(post_id, "/pending", position=9)])
    counts = store.media_counts()
    assert counts["media_total"] == 3
    assert counts["by_download_status"] == {"downloaded": 2, "pending": 1}
    assert counts["by_ai_status"] == {"not_started": 3}


def test_an_older_scrapes_url_does_not_requeue_a_failed_slot(store):
    post_id, [media_id] = seeded(store, 1)
    store.claim_downloads(DownloadClaim("w1", 1))
    failure = DownloadOutcome(
        media_id, "failed", make_event("media_download_failed", "failed"), download_permanent=True
    )
    store.finish_downloads("w1", [failure])
    store.upsert_media([slot(post_id, "/img/0", "e=1700000000&t=old", "2023-11-14T22:13:20.000000+00:00")])
    row = store.get_media(media_id)
    assert (row["download_status"], row["download_permanent"]) == ("failed", True)
    assert row["media_url"].endswith("e=1764877600&t=a")


def test_a_row_without_analysis_status_reads_and_claims_as_not_started(store):
    # Other scripts may write NULL (the column is nullable with a default in the installation).
    ids = _analysable(store, 2)
    store.update_media(ids[0], {"ai_analysis_status": None})
    assert store.media_counts()["by_ai_status"] == {"not_started": 2}
    assert {r["media_id"] for r in store.list_media(ai_status="not_started")} == set(ids)
    claimed = store.claim_analysis(AnalysisClaim("w1", 5, ["not_started"], make_event("ai_analysis_started")))
    assert {r["media_id"] for r in claimed} == set(ids)


def test_analysis_candidates_follow_the_claim_rule_and_claim_nothing(store):
    ids = _analysable(store, 3)
    post_id = store.get_media(ids[0])["post_id"]
    store.upsert_media([slot(post_id, "/not-cached", position=9)])  # pending: never a candidate
    [first] = store.claim_analysis(AnalysisClaim("w1", 1, ["not_started"], make_event("ai_analysis_started")))
    candidates = store.analysis_candidates(AnalysisQuery(["not_started"]))
    assert {r["media_id"] for r in candidates} == set(ids) - {first["media_id"]}
    assert all(r["ai_analysis_status"] == "not_started" for r in candidates)
    taken = store.claim_analysis(AnalysisClaim("w2", 5, ["not_started"], make_event("ai_analysis_started")))
    assert [r["media_id"] for r in taken] == [r["media_id"] for r in candidates]
    assert (
        store.analysis_candidates(AnalysisQuery(["not_started"], lease_seconds=0)) != []
    )  # expired leases count


def test_an_earlier_releases_sqlite_file_is_refused_untouched(tmp_path):
    import sqlite3

    import pytest

    from social_tui_media.store.interface import StoreError
    from social_tui_media.store.sqlite import SQLiteStore

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE posts (post_id TEXT PRIMARY KEY, urn TEXT, post_url TEXT)")
    before = path.read_bytes()
    with pytest.raises(StoreError, match="earlier release of this tool: move it aside"):
        SQLiteStore(path)
    assert path.read_bytes() == before


def test_a_value_the_database_cannot_hold_is_one_store_error_and_writes_nothing(store):
    with pytest.raises(StoreError) as refused:
        store.upsert_posts([post("urn:li:activity:1"), post("urn:li:activity:2", text="lone \ud800")])
    assert "\n" not in str(refused.value)
    assert store.posts_page(None, 10) == []
    [(post_id, _)] = store.upsert_posts([post("urn:li:activity:3")])
    row = {
        "download_id": "dl-1", "post_id": post_id, "run_id": None,
        "downloaded_at": "2025-11-25T00:00:00+00:00", "total_reactions": 10**30,
        "stats_json": None, "raw_json": "{}", "source_file_path": "/scrapes/f.json",
    }  # fmt: skip
    with pytest.raises(StoreError) as refused:
        store.insert_data_downloads([row])
    assert "\n" not in str(refused.value)
    store.insert_data_downloads([{**row, "total_reactions": 5}])  # the store is still usable


def test_a_dead_workers_analysis_claims_are_taken_over_at_once(store):
    ids = _analysable(store, 2)
    store.claim_analysis(
        AnalysisClaim("host:999999:dead", 2, ["not_started"], make_event("ai_analysis_started"))
    )
    assert store.analysis_claimants() == ["host:999999:dead"]
    live = AnalysisClaim("w2", 5, ["not_started"], make_event("ai_analysis_started"), lease_seconds=3600)
    assert store.claim_analysis(live) == []
    taken = store.claim_analysis(replace(live, dead_workers=["host:999999:dead"]))
    assert sorted(r["media_id"] for r in taken) == sorted(ids) and {r["ai_claimed_by"] for r in taken} == {
        "w2"
    }


def test_the_sqlite_database_and_its_journal_are_private(tmp_path):
    import stat

    from social_tui_media.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "db.sqlite")
    try:
        store.upsert_posts([post("urn:li:activity:1")])
        files = [tmp_path / name for name in ("db.sqlite", "db.sqlite-wal", "db.sqlite-shm")]
        assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files if f.exists())
        assert (tmp_path / "db.sqlite-wal").exists()
    finally:
        store.close()


def test_download_backlog_counts_what_the_next_run_would_claim(store):
    post_id, ids = seeded(store, 4)
    store.claim_downloads(DownloadClaim("w1", 4))
    fail = lambda media_id, permanent: DownloadOutcome(  # noqa: E731
        media_id, "failed", make_event("media_download_failed", "failed"), download_permanent=permanent
    )
    store.finish_downloads("w1", [downloaded(ids[0]), fail(ids[1], True), fail(ids[2], False)])
    store.release_downloads("w1")
    assert store.download_backlog() == 2  # the transient failure and the never-tried slot
    assert store.download_backlog(retry_failed=True) == 3
    assert len(store.claim_downloads(DownloadClaim("w2", 10))) == store.download_backlog()
