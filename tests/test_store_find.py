"""Text extraction claims, sharing by identical bytes, near-duplicate groups and search: one
behaviour suite on every back end (the `store` fixture)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from social_tui_media.ids import PREFIX_MEDIA, generate_aws_id
from social_tui_media.store.interface import (
    AnalysisClaim,
    AnalysisOutcome,
    DownloadClaim,
    DownloadOutcome,
    MediaSlotRow,
    PostRecord,
    TextClaim,
    TextOutcome,
    make_event,
)
from social_tui_media.store.search import SearchQuery, parse_search


def add_post(store, urn: str, author: str, text: str, day: str) -> str:
    millis = int(datetime.fromisoformat(f"{day}T10:00:00+00:00").timestamp() * 1000)
    record = PostRecord(
        urn,
        urn,
        millis,
        author,
        author.title(),
        text,
        f"https://li/{urn}",
        "regular",
        json.dumps({"urn": urn}),
    )
    [(post_id, _)] = store.upsert_posts([record])
    return post_id


def add_media(store, post_id: str, name: str, md5: str, media_type: str = "image", size: int = 100,
              position: int = 0) -> str:  # fmt: skip
    """A downloaded media row holding the bytes `md5`."""
    url = f"https://media.licdn.com/{post_id}/{name}"
    row = MediaSlotRow(
        generate_aws_id(PREFIX_MEDIA), post_id, media_type, url, url, media_type, position, None
    )
    [added] = store.upsert_media([row])
    store.claim_downloads(DownloadClaim("dl", 1, media_ids=[added.media_id]))
    mime = {"image": "image/jpeg", "video": "video/mp4", "document": "application/pdf"}[media_type]
    outcome = DownloadOutcome(
        added.media_id, "downloaded", make_event("media_downloaded"), md5_sum=md5, file_size=size,
        mime_type=mime, width=10, height=10, local_file_path=f"/cache/{md5}", attempts=1,
    )  # fmt: skip
    assert store.finish_downloads("dl", [outcome]) == 1
    return added.media_id


def extract(store, media_id: str, text: str, phash: str | None = None) -> int:
    """Claim one row for extraction and finish it with `text`; rows written."""
    [row] = store.claim_text(
        TextClaim("w", 1, ["not_started"], make_event("text_extraction_started"), [media_id])
    )
    details = {"engine": "test", "characters": len(text)}
    outcome = TextOutcome(
        row["media_id"], "completed", make_event("text_extraction_completed", details=details), text=text,
        segments=[{"page": 1, "text": text}], engine="test", phash=phash,
    )  # fmt: skip
    return store.finish_text("w", outcome)


def search(store, text: str, **filters) -> list[list[str]]:
    """Each hit's media ids (every copy, earliest post first), in rank order."""
    return [hit.media_ids for hit in store.search_media(SearchQuery(parse_search(text), **filters))]


@pytest.fixture
def corpus(store):
    """Four posts: one slide shared as identical bytes by two of them, a banner and its
    re-encoded copy (a confirmed near duplicate), a PDF and a video."""
    alice = add_post(store, "urn:1", "alice", "Big news from the conference", "2025-11-01")
    bob = add_post(store, "urn:2", "bob", "Reposting this slide", "2025-11-03")
    carol = add_post(store, "urn:3", "carol", "Our keynote stage", "2025-11-05")
    dave = add_post(store, "urn:4", "dave", "Great talks today", "2025-11-06")
    m = {
        "slide_bob": add_media(store, bob, "slide", "1" * 32),
        "slide_alice": add_media(store, alice, "slide", "1" * 32),
        "banner": add_media(store, carol, "banner", "2" * 32, size=900),
        "banner_copy": add_media(store, dave, "banner", "3" * 32, size=400),
        "pdf": add_media(store, alice, "doc", "4" * 32, "document", position=1),
        "video": add_media(store, dave, "clip", "5" * 32, "video", position=1),
    }
    assert extract(store, m["slide_bob"], "DynamoDB launches\nServerless at scale", "f0f0f0f0f0f0f0f0") == 2
    extract(store, m["banner"], "Venetian Expo Hall keynote stage", "ccb80cccd89c3b6a")
    extract(store, m["banner_copy"], "Venetian Expo Hall keynote stage", "ccb80cccd89c3b6b")
    extract(store, m["pdf"], "Cost anomalies report\nQ3 findings")
    extract(store, m["video"], "Opening keynote\nGraviton5 announced")
    store.set_near_group(m["banner"], [m["banner"], m["banner_copy"]])
    return m


def test_identical_bytes_are_extracted_once_and_shared_with_events(store, corpus):
    shared = store.get_media(corpus["slide_alice"])
    assert shared["text_status"] == "completed" and shared["extracted_text"].startswith("DynamoDB launches")
    assert shared["text_segments"] == [{"page": 1, "text": "DynamoDB launches\nServerless at scale"}]
    events = [(e["event"], e.get("details", {}).get("shared_from")) for e in shared["ai_analysis_log"]]
    assert events[-2:] == [
        ("text_extraction_started", corpus["slide_bob"]),
        ("text_extraction_completed", corpus["slide_bob"]),
    ]
    assert store.text_backlog(["not_started"]) == 0
    assert store.extracted_text_of("1" * 32)["extracted_text"] == shared["extracted_text"]


def test_a_claim_takes_one_row_of_identical_bytes_and_skips_bytes_being_read(store):
    post_id = add_post(store, "urn:9", "zed", "x", "2025-11-01")
    twins = {add_media(store, post_id, "a", "9" * 32), add_media(store, post_id, "b", "9" * 32, position=1)}
    event = make_event("text_extraction_started")
    [claimed] = store.claim_text(TextClaim("w1", 5, ["not_started"], event))  # one of the two, never both
    assert claimed["media_id"] in twins
    assert store.claim_text(TextClaim("w2", 5, ["not_started"], event)) == []
    assert store.text_claimants() == ["w1"]


def test_a_lost_lease_writes_nothing(store):
    post_id = add_post(store, "urn:8", "zed", "x", "2025-11-01")
    media_id = add_media(store, post_id, "a", "8" * 32)
    store.claim_text(TextClaim("w1", 1, ["not_started"], make_event("text_extraction_started")))
    outcome = TextOutcome(media_id, "completed", make_event("text_extraction_completed"), text="x")
    assert store.finish_text("someone-else", outcome) == 0
    assert store.get_media(media_id)["text_status"] == "started"


def test_words_phrases_prefixes_and_stems_find_exactly_their_media(store, corpus):
    slide = [corpus["slide_alice"], corpus["slide_bob"]]  # alice posted first
    banner = [corpus["banner"], corpus["banner_copy"]]
    assert search(store, "dynamodb") == [slide]
    assert search(store, "launch") == [slide]  # stemmed: launches
    assert search(store, '"keynote stage"') == [banner]
    assert search(store, "anomal*") == [[corpus["pdf"]]]
    assert sorted(search(store, "keynote")) == sorted([banner, [corpus["video"]]])
    assert search(store, "keynote -venetian") == [[corpus["video"]]]
    assert search(store, "dynamodb -serverless") == []


def test_filters_and_fields_narrow_the_search(store, corpus):
    banner = [corpus["banner"], corpus["banner_copy"]]
    assert search(store, "keynote", field="post") == [banner]  # carol's post text
    assert sorted(search(store, "keynote", field="text")) == sorted([banner, [corpus["video"]]])
    assert search(store, "keynote", media_type="video") == [[corpus["video"]]]
    assert search(store, "keynote", author="carol") == [banner]
    assert search(store, "conference") == [
        [corpus["slide_alice"], corpus["slide_bob"]],
        [corpus["pdf"]],
    ] or sorted(search(store, "conference")) == sorted(
        [[corpus["slide_alice"], corpus["slide_bob"]], [corpus["pdf"]]]
    )
    assert search(store, "reposting", since="2025-11-04") == []
    assert search(store, "Graviton5", since="2025-11-06") == [[corpus["video"]]]


def test_a_hit_lists_every_post_sharing_the_picture_earliest_first(store, corpus):
    [hit] = store.search_media(SearchQuery(parse_search("serverless")))
    assert [p["author"] for p in hit.posts] == ["alice", "bob"]
    assert hit.posts[0]["post_url"] == "https://li/urn:1"
    assert "[" in hit.snippet and "]" in hit.snippet and "erverless" in hit.snippet
    assert hit.local_file_path == "/cache/" + "1" * 32


def test_the_index_follows_analysis_and_post_updates(store, corpus):
    [row] = store.claim_analysis(AnalysisClaim("ai", 1, ["not_started"], make_event("ai_analysis_started"),
                                               [corpus["pdf"]]))  # fmt: skip
    analysis = {
        "description": "A finance memo",
        "text_in_image": "",
        "tags": ["budget", "cloud"],
        "kind": "document",
    }
    store.finish_analysis("ai", AnalysisOutcome(row["media_id"], "completed", make_event("ai_analysis_completed"),
                                                 analysis=analysis))  # fmt: skip
    assert search(store, "memo", field="description") == [[corpus["pdf"]]]
    assert search(store, "budget", field="tags") == [[corpus["pdf"]]]
    add_post(store, "urn:4", "dave", "Talks about serverless pricing", "2025-11-06")  # a re-scrape's new text
    assert search(store, "pricing") == [
        [corpus["banner"], corpus["banner_copy"]],
        [corpus["video"]],
    ] or sorted(search(store, "pricing")) == sorted(
        [[corpus["banner"], corpus["banner_copy"]], [corpus["video"]]]
    )


def test_a_misspelling_finds_its_word_on_postgresql(store, store_kind, corpus):
    hits = store.search_media(SearchQuery(parse_search("Venetain")))
    if store_kind == "sqlite":
        assert hits == []  # FTS5 has no typo tolerance; PostgreSQL's pg_trgm does
    else:
        assert [h.media_ids for h in hits] == [[corpus["banner"], corpus["banner_copy"]]]
        assert hits[0].fuzzy and "[venetian]" in hits[0].snippet.lower()


def test_duplicate_groups_list_the_best_copy_first(store, corpus):
    rows = list(store.iter_duplicate_groups())
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["group_key"], []).append(row)
    near = groups[corpus["banner"]]
    assert [r["media_id"] for r in near] == [corpus["banner"], corpus["banner_copy"]]  # 900 bytes before 400
    assert [r["member_rank"] for r in near] == [1, 2] and {r["kind"] for r in near} == {"near"}
    assert near[0]["post_url"] == "https://li/urn:3" and near[0]["author_username"] == "carol"
    identical = groups["md5:" + "1" * 32]
    assert {r["media_id"] for r in identical} == {corpus["slide_alice"], corpus["slide_bob"]}
    assert len(groups) == 2


def test_near_candidates_are_other_posts_images_by_hash_distance(store, corpus):
    found = store.near_candidates(corpus["banner"], "ccb80cccd89c3b6a", 10)
    assert [(c["media_id"], c["distance"]) for c in found] == [(corpus["banner_copy"], 1)]
    assert store.near_candidates(corpus["banner"], "0000000000000000", 3) == []


def test_a_confirmed_near_duplicate_shares_its_analysis_by_the_same_model(store, corpus):
    assert store.shareable_analysis(corpus["banner_copy"], "gpt-4o-mini") is None
    [row] = store.claim_analysis(AnalysisClaim("ai", 1, ["not_started"], make_event("ai_analysis_started"),
                                               [corpus["banner"]]))  # fmt: skip
    analysis = {"description": "A stage", "text_in_image": "Venetian", "tags": ["stage"], "kind": "photo"}
    store.finish_analysis("ai", AnalysisOutcome(row["media_id"], "completed", make_event("ai_analysis_completed"),
                                                analysis=analysis, model="gpt-4o-mini"))  # fmt: skip
    reused = store.shareable_analysis(corpus["banner_copy"], "gpt-4o-mini")
    assert reused["media_id"] == corpus["banner"] and reused["ai_analysis"]["description"] == "A stage"
    assert store.shareable_analysis(corpus["banner_copy"], "gpt-4o") is None  # another model's answer


def test_an_expired_or_dead_workers_claim_is_taken_over(store):
    post_id = add_post(store, "urn:7", "zed", "x", "2025-11-01")
    media_id = add_media(store, post_id, "a", "6" * 32)
    event = make_event("text_extraction_started")
    assert [r["media_id"] for r in store.claim_text(TextClaim("w1", 1, ["not_started"], event))] == [media_id]
    assert store.claim_text(TextClaim("w2", 1, ["not_started"], event)) == []
    taken = store.claim_text(TextClaim("w2", 1, ["not_started"], event, dead_workers=["w1"]))
    assert [r["media_id"] for r in taken] == [media_id] and taken[0]["text_claimed_by"] == "w2"
    failed = TextOutcome(media_id, "failed", make_event("text_extraction_failed", "failed", {"message": "x"}))
    assert store.finish_text("w2", failed) == 1
    assert store.text_backlog(["not_started"]) == 0 and store.text_backlog(["not_started", "failed"]) == 1
    events = [e["event"] for e in store.get_media(media_id)["ai_analysis_log"]]
    assert events[-3:] == ["text_extraction_started", "text_extraction_started", "text_extraction_failed"]


@pytest.mark.parametrize("store_kind", ["sqlite"])  # SQLite looks up the best index rows first
def test_looking_up_the_best_candidates_first_gives_the_same_hits(store, monkeypatch):
    from social_tui_media.store import sqlite as sqlite_store

    # 12 copies of one picture rank best (the word three times), then 30 pictures of their own.
    shared = [add_media(store, add_post(store, f"urn:c{i}", "ann", "cloud cloud cloud", "2025-11-01"),
                        "c", "c" * 32) for i in range(12)]  # fmt: skip
    for i in range(30):
        add_media(
            store, add_post(store, f"urn:o{i}", "bob", "cloud " + "word " * i, "2025-11-02"), "o", f"{i:032x}"
        )

    def hits(candidates: int, limit: int) -> list[list[str]]:
        monkeypatch.setattr(sqlite_store, "SEARCH_CANDIDATES", candidates)
        return search(store, "cloud", limit=limit)

    everything = hits(10_000, 8)
    assert sorted(everything[0]) == sorted(shared) and len(everything) == 8
    assert hits(5, 8) == everything  # the 5 best rows are one picture: asked again without
    assert hits(20, 8) == everything  # 20 rows hold 9 pictures: exact from them
