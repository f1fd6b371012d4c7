"""browse_media on every back end: media rows with their post, newest post first, a page per
query, filters done in the database."""

from __future__ import annotations

from dataclasses import replace

from social_tui_media.ids import PREFIX_MEDIA, generate_aws_id
from social_tui_media.store.browse import find_media
from social_tui_media.store.interface import BrowseQuery, MediaSlotRow, browse_key
from tests.test_store_conformance import post


def media(post_id: str, name: str, position: int, media_type: str = "image") -> MediaSlotRow:
    url = f"https://media.licdn.com/dms/{name}"
    return MediaSlotRow(
        generate_aws_id(PREFIX_MEDIA), post_id, media_type, url + "?e=1&t=x", url, media_type, position, None
    )


def seed(store) -> dict[str, str]:
    """Three posts: an older one by Ana, two newer ones posted at the same instant (a tie)."""
    older = post("urn:li:activity:1", "Keynote slides from PyCon", "2025-11-01T09:00:00+00:00")
    tie_a = post("urn:li:activity:2", "Team photo 100% fun", "2025-11-20T10:00:00+00:00")
    tie_b = replace(
        post("urn:li:activity:3", "A demo video", "2025-11-20T10:00:00+00:00"),
        author_username="bob-k",
        author_name="Bob Kowalski",
    )
    ids = dict(
        zip(
            ("older", "tie_a", "tie_b"),
            (p for p, _ in store.upsert_posts([older, tie_a, tie_b])),
            strict=True,
        )
    )
    rows = [
        media(ids["older"], "slide-2", 1, "document"),
        media(ids["older"], "slide-1", 0),
        media(ids["tie_a"], "team", 0),
        media(ids["tie_b"], "demo", 0, "video"),
        media(ids["tie_b"], "poster", 1),
    ]
    upserted = store.upsert_media(rows)
    names = {
        row.media_url.split("?")[0].rsplit("/", 1)[1]: u.media_id
        for row, u in zip(rows, upserted, strict=True)
    }
    store.update_media(
        names["team"], {"ai_analysis": {"description": "Twelve people on a STAGE", "tags": ["team"]}}
    )
    return {**ids, **names}


def every_page(store, query: BrowseQuery, limit: int) -> list[dict]:
    rows: list[dict] = []
    while True:
        page = store.browse_media(query, browse_key(rows[-1]) if rows else None, limit)
        rows += page
        if len(page) < limit:
            return rows


def test_rows_carry_their_post_newest_post_first_and_a_posts_media_in_order(store):
    ids = seed(store)
    rows = store.browse_media(BrowseQuery())
    media_of = {ids["tie_a"]: [ids["team"]], ids["tie_b"]: [ids["demo"], ids["poster"]]}
    ties = sorted(media_of, reverse=True)  # posted at the same instant: by post id, descending
    expected = [*media_of[ties[0]], *media_of[ties[1]], ids["slide-1"], ids["slide-2"]]
    assert [r["media_id"] for r in rows] == expected
    slide = rows[-1]
    assert slide["post_author_username"] == "ana" and slide["post_author_name"] == "Ana L"
    assert slide["post_text"] == "Keynote slides from PyCon" and slide["post_url"] == "https://x"
    assert slide["post_posted_at"] == 1761987600000 and slide["media_type"] == "document"
    assert slide["download_status"] == "pending" and slide["ai_analysis_status"] == "not_started"
    team = next(r for r in rows if r["media_id"] == ids["team"])
    assert team["ai_analysis"]["description"] == "Twelve people on a STAGE"  # parsed, as everywhere


def test_pages_after_the_last_key_list_every_row_once_in_the_same_order(store):
    seed(store)
    whole = store.browse_media(BrowseQuery())
    for limit in (1, 2, 3):
        assert [r["media_id"] for r in every_page(store, BrowseQuery(), limit)] == [
            r["media_id"] for r in whole
        ]


def test_text_matches_the_analysis_the_post_text_or_the_author_in_any_case(store):
    ids = seed(store)
    found = lambda **q: {r["media_id"] for r in store.browse_media(BrowseQuery(**q))}  # noqa: E731
    assert found(text="stage") == {ids["team"]}  # the analysis
    assert found(text="pycon") == {ids["slide-1"], ids["slide-2"]}  # the post's text
    assert found(text="kowalski") == {ids["demo"], ids["poster"]}  # the author's name
    assert found(text="100%") == {ids["team"]} and found(text="0%") == {ids["team"]}
    assert found(text="%") == {ids["team"]}  # % is a character, not a wildcard
    assert found(text="_") == set()
    assert found(author="BOB") == {ids["demo"], ids["poster"]}
    assert found(media_type="video") == {ids["demo"]}
    assert found(post_id=ids["older"], media_type="image") == {ids["slide-1"]}
    assert found(text="pycon", author="bob") == set()  # filters combine


def test_a_page_never_holds_more_rows_than_asked(store):
    seed(store)
    assert len(store.browse_media(BrowseQuery(), limit=2)) == 2


def test_only_the_given_media_ids_and_each_row_carries_its_extracted_text(store):
    ids = seed(store)
    rows = store.browse_media(BrowseQuery(media_ids=(ids["team"], ids["demo"])))
    assert {r["media_id"] for r in rows} == {ids["team"], ids["demo"]}
    assert all("extracted_text" in r for r in rows)
    assert store.browse_media(BrowseQuery(media_ids=())) == []


def test_a_query_with_words_is_the_search_stemmed_with_negation_and_filters(store):
    ids = seed(store)
    assert [r["media_id"] for r in find_media(store, BrowseQuery("stages")).rows] == [ids["team"]]
    slides = find_media(store, BrowseQuery("slide")).rows
    assert {r["media_id"] for r in slides} == {ids["slide-1"], ids["slide-2"]}
    assert all(r["post_author_username"] for r in slides)  # rows with their post, as without a search
    assert find_media(store, BrowseQuery("slide -pycon")).rows == []
    assert [r["media_id"] for r in find_media(store, BrowseQuery("slide", media_type="document")).rows] == [
        ids["slide-2"]
    ]
    # no word to look for: a plain substring, as before the search
    assert [r["media_id"] for r in find_media(store, BrowseQuery("100%")).rows] == [ids["team"]]
