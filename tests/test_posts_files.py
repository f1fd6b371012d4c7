"""Reading post files: a file over STREAM_FILE_BYTES is read a post at a time and gives exactly
what reading it whole gives; real files in tmp_path, no servers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from social_tui_media.posts.files import STREAM_FILE_BYTES, iter_posts
from social_tui_media.posts.json_values import MAX_DEPTH

POST = '{"full_urn": "urn:li:activity:1"}'
READ_WHOLE = 2**62  # `stream_above`: read every file whole, the way small files are read

ODD_POSTS = [  # JSON text json.loads reads: every value a problem line, the post kept or skipped alone
    '{"full_urn": "urn:li:activity:2", "text": "lone \\ud800 surrogate", "author": {"username": "ana"}}',
    '{"full_urn": "urn:li:activity:3", "text": "nul\\u0000here", "stats": {"views": 12345678901234567890123}}',
    '{"full_urn": "urn:li:activity:4", "stats": {"ratio": NaN, "top": Infinity, "low": -Infinity, "huge": 1e400}}',
    '{"full_urn": "urn:li:activity:5", "text": "an escaped emoji \\ud83d\\ude00 and caf\u00e9"}',
    '{"text": "no identity"}',
    '"not an object"',
    '{"full_urn": "urn:li:activity:6", "deep": ' + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "}",
]


def a_post(n: int) -> str:
    post = {
        "full_urn": f"urn:li:activity:{n}",
        "author": {"username": f"user{n % 97}"},
        "text": f"post {n} " + "lorem ipsum " * 100,
        "media": {"type": "image", "url": f"https://media.licdn.com/dms/image/{n}/x.jpg?e=1764000000&t=abc"},
    }
    return json.dumps(post)


def big_list(directory: Path, name: str = "big.json", posts: int = STREAM_FILE_BYTES // 1200) -> Path:
    """A scrape file over STREAM_FILE_BYTES (`posts` of about 1,300 bytes), the odd posts among them."""
    items = [a_post(n) for n in range(100, 100 + posts)]
    items[1500:1500] = ODD_POSTS
    path = directory / name
    path.write_text("[\n" + ",\n".join(items) + "\n]\n")
    assert path.stat().st_size > STREAM_FILE_BYTES
    return path


def read(path: Path, stream_above: int = STREAM_FILE_BYTES) -> tuple[list[tuple], list[str]]:
    """(file name, index, urn, data) of every post read, and the problem lines."""
    problems: list[str] = []
    posts = [(p.source_file, p.index, p.urn, p.data) for p in iter_posts([path], problems, stream_above)]
    return posts, problems


def test_a_streamed_list_gives_the_posts_and_problems_of_the_whole_file(tmp_path):
    path = big_list(tmp_path)
    streamed, whole = read(path), read(path, READ_WHOLE)
    assert streamed == whole
    posts, problems = streamed
    assert len(posts) == STREAM_FILE_BYTES // 1200 + 4  # the odd posts less the three skipped
    assert problems == [
        "big.json post urn:li:activity:2: lone surrogates replaced with U+FFFD",
        "big.json post urn:li:activity:3: NUL characters dropped",
        "big.json post urn:li:activity:4: NaN/Infinity numbers stored as null",
        "big.json post #1505: has no urn or full_urn; skipped",
        "big.json post #1506: not an object; skipped",
        f"big.json post urn:li:activity:6: nested more than {MAX_DEPTH} levels deep; skipped",
    ]
    by_urn = {urn: data for _, _, urn, data in posts}
    assert by_urn["urn:li:activity:3"]["stats"]["views"] == 12345678901234567890123
    assert by_urn["urn:li:activity:5"]["text"] == "an escaped emoji \U0001f600 and caf\u00e9"


def test_a_streamed_matching_elements_object_gives_what_the_whole_file_gives(tmp_path):
    items = big_list(tmp_path, "list.json").read_text()
    path = tmp_path / "matching.json"
    path.write_text('{"search": {"q": "x"}, "matching_elements": ' + items + ', "total": 3000}')
    streamed = read(path)
    assert streamed == read(path, READ_WHOLE)
    assert len(streamed[0]) == STREAM_FILE_BYTES // 1200 + 4


def test_a_large_object_without_matching_elements_is_one_post(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"full_urn": "urn:li:activity:1", "text": "x" * STREAM_FILE_BYTES}))
    streamed = read(path)
    assert streamed == read(path, READ_WHOLE)
    assert [urn for _, _, urn, _ in streamed[0]] == ["urn:li:activity:1"]


def test_a_streamed_file_cut_off_half_way_keeps_the_posts_before_the_cut(tmp_path):
    (tmp_path / "full").mkdir()
    full = big_list(tmp_path / "full", "cut.json", posts=STREAM_FILE_BYTES // 600)
    path = tmp_path / "cut.json"
    path.write_bytes(full.read_bytes()[: full.stat().st_size * 2 // 3])  # still over STREAM_FILE_BYTES
    posts, problems = read(path)
    full_posts, full_problems = read(full)
    assert 4000 < len(posts) < len(full_posts)
    assert posts == full_posts[: len(posts)]  # every post before the cut, whole
    whole_posts, whole_problems = read(path, READ_WHOLE)
    assert whole_posts == []  # read whole, as small files are: nothing from it
    assert problems == full_problems + whole_problems  # the same line as when read whole
    assert whole_problems[0].startswith("cut.json: not valid JSON (") and len(whole_problems) == 1


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (f"[{POST}] trailing", "f.json: not valid JSON (Extra data: line 1 column 37 (char 36)); skipped"),
        (
            f"[{POST}\n {POST}]",
            "f.json: not valid JSON (Expecting ',' delimiter: line 2 column 2 (char 36)); skipped",
        ),
        (
            f'{{"matching_elements": [{POST}], "x" 1}}',
            "f.json: not valid JSON (Expecting ':' delimiter: line 1 column 64 (char 63)); skipped",
        ),
        (
            f"\ufeff\ufeff[{POST}]",  # one BOM is dropped, a second one is not JSON
            "f.json: not valid JSON (Unexpected UTF-8 BOM (decode using utf-8-sig): line 1 column 1 (char 0)); skipped",
        ),
        ("  \n\t ", "f.json: file is empty; skipped"),
        ("42", "f.json: expected a list of posts or an object, found int; skipped"),
        ("[" * 100_000 + "]" * 100_000, "f.json: not usable JSON: nested too deeply; skipped"),
    ],
)
def test_a_streamed_file_that_is_not_posts_is_one_line_worded_as_when_read_whole(tmp_path, text, problem):
    path = tmp_path / "f.json"
    path.write_text(text)
    assert read(path, stream_above=0)[1] == read(path, READ_WHOLE)[1] == [problem]


def test_bytes_that_are_not_utf8_are_one_line_with_their_place_in_the_file(tmp_path):
    path = tmp_path / "f.json"
    data = b'\xef\xbb\xbf[{"full_urn": "urn:li:activity:1", "text": "caf\xe9"}]'
    path.write_bytes(data)
    at = data.index(b"\xe9") - 3  # counted after the BOM, as bytes.decode("utf-8-sig") counts
    expected = (
        f"f.json: cannot read file (UnicodeDecodeError: 'utf-8' codec can't decode byte 0xe9 in position {at}:"
        " invalid continuation byte); skipped"
    )
    assert read(path, stream_above=0)[1] == read(path, READ_WHOLE)[1] == [expected]
