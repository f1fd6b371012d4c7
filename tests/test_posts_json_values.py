"""Cleaning a scraped post so every back end stores it: pure, iterative, no servers."""

import json

from social_tui_media.posts.json_values import MAX_DEPTH, clean_json, clean_text


def test_a_clean_post_comes_back_equal_with_no_changes():
    post = {"full_urn": "urn:li:activity:1", "stats": {"n": 3, "r": 0.5}, "tags": ["a", None, True]}
    cleaned = clean_json(post)
    assert cleaned.value == post and cleaned.changes == () and not cleaned.too_deep


def test_nesting_far_past_the_recursion_limit_is_reported_not_raised():
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    cleaned = clean_json({"full_urn": "urn:li:activity:1", "x": deep})
    assert cleaned.too_deep and cleaned.value is None


def test_the_depth_limit_counts_containers():
    at_limit = json.loads("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    assert not clean_json(at_limit).too_deep
    assert clean_json([at_limit]).too_deep


def test_text_loses_nul_and_lone_surrogates_become_replacement_characters():
    assert clean_text("a\x00b\ud800c\udfff") == "ab\ufffdc\ufffd"
    assert clean_text("emoji \U0001f600 stays") == "emoji \U0001f600 stays"


def test_keys_are_cleaned_and_non_finite_numbers_become_null():
    cleaned = clean_json({"k\x00": [float("nan"), float("inf"), -float("inf"), 1.5], "\ud800": "x"})
    assert cleaned.value == {"k": [None, None, None, 1.5], "\ufffd": "x"}
    assert cleaned.changes == (
        "NUL characters dropped",
        "lone surrogates replaced with U+FFFD",
        "NaN/Infinity numbers stored as null",
    )


def test_many_shallow_containers_are_not_too_deep():
    wide = {
        "full_urn": "urn:li:activity:1",
        "images": [{"url": f"u{i}", "size": [i, i]} for i in range(MAX_DEPTH)],
    }
    cleaned = clean_json(wide)
    assert cleaned.value == wide and cleaned.changes == () and not cleaned.too_deep


def test_text_that_only_looks_like_an_escape_is_kept():
    post = {"full_urn": "urn:li:activity:1", "text": "a literal \\u0000 and \\ud800 in a code sample"}
    cleaned = clean_json(post)
    assert cleaned.value == post and cleaned.changes == ()


def test_each_problem_is_found_deep_inside_an_otherwise_clean_post():
    for bad, change in [
        ("a\x00b", "NUL characters dropped"),
        ("a\ud800", "lone surrogates replaced with U+FFFD"),
    ]:
        post = {"full_urn": "urn:li:activity:1", "media": {"images": [{"url": "u", "alt": bad}]}}
        assert clean_json(post).changes == (change,)
    post = {"full_urn": "urn:li:activity:1", "media": {"images": [{"url": "u", "w": float("nan")}]}}
    assert clean_json(post).value["media"]["images"][0]["w"] is None
