"""Post JSON to media items: every shape DESIGN.md lists, pure functions, no servers."""

import json
from datetime import UTC, datetime

from social_tui_media.posts.media_items import extract_media_items, post_identity, url_expiry
from social_tui_media.store.interface import slot_key
from tests.conftest import SAMPLES, SCRAPE1, SCRAPE2

POSTS = {post_identity(p): p for p in json.loads(SCRAPE1.read_text())}


def roles(urn: str) -> list[tuple[str, str]]:
    return [(i.media_type, i.slot_role) for i in extract_media_items(POSTS[urn]).items]


def test_single_image_repeated_as_media_url_is_one_slot():
    assert roles("urn:li:activity:7390000000000100000") == [("image", "image")]


def test_carousel_keeps_order():
    post = POSTS["urn:li:activity:7390000000000100009"]
    items = extract_media_items(post).items
    expected = [slot_key(image["url"]) for image in post["media"]["images"]]
    assert [i.slot_key for i in items] == expected
    assert [i.position for i in items] == [0, 1, 2, 3]
    assert {i.slot_role for i in items} == {"carousel"}


def test_video_and_its_thumbnail():
    assert roles("urn:li:activity:7390000000000100002") == [("video", "video"), ("image", "video_thumbnail")]


def test_article_thumbnail_same_path_as_media_is_one_slot():
    assert roles("urn:li:activity:7390000000000100003") == [("image", "image")]


def test_article_thumbnail_alone_is_an_image():
    post = {
        "full_urn": "urn:li:activity:1",
        "article": {"url": "https://x.org", "thumbnail": "https://media.licdn.com/a/b?e=1"},
    }
    assert [(i.media_type, i.slot_role) for i in extract_media_items(post).items] == [
        ("image", "article_thumbnail")
    ]


def test_reshared_post_media_belong_to_the_resharing_post():
    items = extract_media_items(POSTS["urn:li:activity:7390000000000100004"]).items
    assert len(items) == 1 and "D472280C01A17A6" in items[0].slot_key


def test_document_is_a_document():
    assert roles("urn:li:activity:7390000000000100008") == [("document", "document")]


def test_no_media_absent_null_or_empty():
    for urn in ("urn:li:activity:7390000000000100005", "urn:li:activity:7390000000000100006"):
        result = extract_media_items(POSTS[urn])
        assert result.items == [] and result.problems == []
    assert extract_media_items({"media": {}}).items == []


def test_sample_scrape_has_thirteen_slots():
    assert sum(len(extract_media_items(p).items) for p in POSTS.values()) == 13


def test_resigned_urls_keep_their_slot_keys():
    second = json.loads(SCRAPE2.read_text())["matching_elements"]
    keys1 = [i.slot_key for p in POSTS.values() for i in extract_media_items(p).items]
    keys2 = [i.slot_key for p in second for i in extract_media_items(p).items]
    urls1 = [i.media_url for p in POSTS.values() for i in extract_media_items(p).items]
    urls2 = [i.media_url for p in second for i in extract_media_items(p).items]
    assert sorted(keys1) == sorted(keys2)
    assert set(urls1).isdisjoint(urls2)


def test_slot_key_drops_query_and_lowercases_host():
    assert slot_key("https://Media.LICDN.com/dms/Image/x?e=1&t=2") == "https://media.licdn.com/dms/Image/x"


def test_url_expiry_reads_e_parameter():
    assert url_expiry("https://h/p?e=1764877600&v=beta") == datetime.fromtimestamp(1764877600, tz=UTC)
    assert url_expiry("https://h/p?e=soon") is None
    assert url_expiry("https://h/p") is None
    assert url_expiry("https://h/p?v=1&e=&e=176%34877600") == datetime.fromtimestamp(1764877600, tz=UTC)


def test_identity_order():
    assert (
        post_identity({"full_urn": "urn:li:activity:1", "urn": {"activity_urn": "2"}}) == "urn:li:activity:1"
    )
    assert post_identity({"urn": {"activity_urn": "2"}}) == "urn:li:activity:2"
    assert post_identity({"urn": {"activity_urn": None, "ugcPost_urn": "3"}}) == "urn:li:ugcPost:3"
    assert post_identity({"urn": "urn:li:share:4"}) == "urn:li:share:4"
    assert post_identity({"text": "x"}) is None
    assert post_identity("not a post") is None


def test_bad_media_are_reported_one_line_each():
    odd = {post_identity(p): p for p in json.loads((SAMPLES / "bad" / "odd_posts.json").read_text())}
    file_post = extract_media_items(odd["urn:li:activity:9000000000000000001"])
    assert file_post.items == [] and "'file' is not http or https" in file_post.problems[0]
    js = extract_media_items(odd["urn:li:activity:9000000000000000002"])
    assert "'javascript'" in js.problems[0]
    carousel = extract_media_items(odd["urn:li:activity:9000000000000000003"])
    assert carousel.items == [] and len(carousel.problems) == 4
    unknown = extract_media_items(odd["urn:li:activity:9000000000000000004"])
    assert "unknown media type 'carousel_v3'" in unknown.problems[0]
    assert "not an object" in extract_media_items(odd["urn:li:activity:9000000000000000005"]).problems[0]
    assert all("\n" not in p for p in carousel.problems)


SLOT_URLS = [
    "https://media.licdn.com/dms/image/v2/D/feedshare-shrink_2048/0/1?e=1764877600&v=beta&t=abc",
    "HTTPS://Media.LICDN.com/dms/image/v2/D/x?t=1&e=2",
    "https://cdn.example.com/render?to=cat&e=1&size=large&t=sig#frag",
    "https://cdn.example.com/render?to=dog&e=1&size=large&t=sig",
    "https://bucket.s3.amazonaws.com/a/b.jpg?X-Amz-Algorithm=AWS4&X-Amz-Signature=ff&id=7",
    "https://d111.cloudfront.net/v.mp4?Expires=1&Signature=s&Key-Pair-Id=k&Policy=p",
    "https://www.youtube.com/watch?v=abc&list=PL1",
    "https://x.test/path/with/no/query",
]


def test_slot_key_drops_only_the_signing_parameters_wherever_they_are():
    assert slot_key(SLOT_URLS[0]) == "https://media.licdn.com/dms/image/v2/D/feedshare-shrink_2048/0/1"
    assert slot_key(SLOT_URLS[1]) == "https://media.licdn.com/dms/image/v2/D/x"
    assert slot_key(SLOT_URLS[2]) == "https://cdn.example.com/render?to=cat&size=large"
    assert slot_key(SLOT_URLS[2]) != slot_key(SLOT_URLS[3])  # identity in the query is kept
    assert slot_key(SLOT_URLS[4]) == "https://bucket.s3.amazonaws.com/a/b.jpg?id=7"
    assert slot_key(SLOT_URLS[5]) == "https://d111.cloudfront.net/v.mp4"


def test_slot_key_in_sql_agrees_with_python(pg_url):
    import psycopg

    with psycopg.connect(pg_url) as conn:
        in_sql = [conn.execute("SELECT media_slot_key(%s)", (url,)).fetchone()[0] for url in SLOT_URLS]
    assert in_sql == [slot_key(url) for url in SLOT_URLS]
