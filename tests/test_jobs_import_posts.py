"""`manage_data.py import`: posts, stats history and media rows, identical on every back end."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from social_tui_media.ids import PREFIX_MEDIA, generate_aws_id
from social_tui_media.jobs.import_posts import import_path, store_media_slots
from social_tui_media.posts.files import STREAM_FILE_BYTES
from social_tui_media.posts.reader import BATCH_POSTS, FIRST_BATCH_POSTS
from social_tui_media.store.interface import MediaSlotRow
from tests.conftest import ROOT, SAMPLES, SCRAPE1, SCRAPE2

SHAPE_COLUMNS = (
    "media_type",
    "slot_role",
    "position",
    "slot_key",
    "media_url",
    "download_status",
    "ai_analysis_status",
)


def media_by_urn(store) -> dict[str, list[tuple]]:
    urns = {p["post_id"]: p["urn"] for p in store.posts_page(None, 10_000)}
    out: dict[str, list[tuple]] = {}
    for row in store.list_media():
        out.setdefault(urns[row["post_id"]], []).append(tuple(row[c] for c in SHAPE_COLUMNS))
    return out


def import_both_scrapes(store, tmp_path):
    for source in (SCRAPE1, SCRAPE2):
        directory = tmp_path / source.stem
        directory.mkdir(parents=True)
        (directory / source.name).write_text(source.read_text())
        report = import_path(store, directory)
        assert report.problems == []
    return report


def test_media_rows_per_shape(store, tmp_path):
    import_path(store, _one(tmp_path, SCRAPE1))
    media = media_by_urn(store)
    shapes = {urn: [(m[0], m[1]) for m in rows] for urn, rows in media.items()}
    assert shapes == {
        "urn:li:activity:7390000000000100000": [("image", "image")],
        "urn:li:activity:7390000000000100001": [("image", "carousel"), ("image", "carousel")],
        "urn:li:activity:7390000000000100002": [("video", "video"), ("image", "video_thumbnail")],
        "urn:li:activity:7390000000000100003": [("image", "image")],
        "urn:li:activity:7390000000000100004": [("image", "image")],
        "urn:li:activity:7390000000000100007": [("image", "image")],
        "urn:li:activity:7390000000000100008": [("document", "document")],
        "urn:li:activity:7390000000000100009": [("image", "carousel")] * 4,
    }
    carousel = media["urn:li:activity:7390000000000100009"]
    assert [m[2] for m in carousel] == [0, 1, 2, 3]


def _one(tmp_path, source):
    directory = tmp_path / f"only_{source.stem}"
    directory.mkdir(exist_ok=True)
    (directory / source.name).write_text(source.read_text())
    return directory


def test_reimport_with_resigned_urls_creates_no_new_rows_and_keeps_newest_url(store, tmp_path):
    first = import_path(store, _one(tmp_path, SCRAPE1))
    ids_before = {r["media_id"] for r in store.list_media()}
    posts_before = {p["urn"]: p["post_id"] for p in store.posts_page(None, 100)}
    second = import_path(store, _one(tmp_path, SCRAPE2))
    assert first.media_new == 13 and second.media_new == 0
    assert {r["media_id"] for r in store.list_media()} == ids_before
    assert {p["urn"]: p["post_id"] for p in store.posts_page(None, 100)} == posts_before
    assert second.posts_new == 0 and second.posts_updated == 10
    resigned = json.loads(SCRAPE2.read_text())["matching_elements"]
    newest = {
        img["url"]
        for p in resigned
        if isinstance(p.get("media"), dict)
        for img in p["media"].get("images", [])
    }
    stored = {r["media_url"] for r in store.list_media()}
    assert newest <= stored
    # the same posts again: still nothing new
    third = import_path(store, _one(tmp_path, SCRAPE1))
    assert third.media_new == 0 and len(store.list_media()) == 13
    assert newest <= {r["media_url"] for r in store.list_media()}  # the older scrape's URLs do not win


def test_each_run_records_one_stats_row_per_post(store, tmp_path):
    import_path(store, _one(tmp_path, SCRAPE1))
    import_path(store, _one(tmp_path, SCRAPE2))
    assert store.media_counts()["posts_total"] == 10


def test_sqlite_and_postgres_give_identical_rows(tmp_path, pg_clean_url):
    from social_tui_media.store.postgres import PostgresStore
    from social_tui_media.store.sqlite import SQLiteStore

    results = []
    for index, opened in enumerate((SQLiteStore(tmp_path / "a.db"), PostgresStore(pg_clean_url))):
        import_both_scrapes(opened, tmp_path / f"run{index}")
        results.append(media_by_urn(opened))
        opened.close()
    assert results[0] == results[1]
    assert sum(len(v) for v in results[0].values()) == 13


def test_bad_directory_imports_what_is_valid(store, tmp_path):
    report = import_path(store, SAMPLES / "bad")
    assert report.posts_processed == 6  # the seven odd posts less the one without identity
    files = {p.split(":")[0].split(" ")[0] for p in report.problems}
    assert {"empty.json", "not_posts.json", "truncated.json", "odd_posts.json"} <= files
    assert any("has no urn" in p for p in report.problems)
    assert any("'file' is not http or https" in p and "9000000000000000001" in p for p in report.problems)
    assert all("\n" not in p for p in report.problems)
    assert store.list_media() == []


def test_store_media_slots_with_a_store(store):
    [(post_id, _)] = store.upsert_posts([_record()])
    post = json.loads(SCRAPE1.read_text())[9]
    ids = store_media_slots(store, post_id, post)
    assert len(ids) == 4 and store_media_slots(store, post_id, post) == ids


def _record():
    from social_tui_media.store.interface import PostRecord

    return PostRecord("urn:li:activity:7390000000000100009", None, 0, "", None, "", None, None, "{}")


def run_cli(env, *args, cwd=None):
    return subprocess.run(
        [sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "store_kind", ["sqlite"]
)  # what it prints; the back ends are the conformance suite's
def test_cli_import_bad_input_exit_1_one_line_each_no_traceback(cli_env, tmp_path):
    result = run_cli(
        cli_env, str(ROOT / "manage_data.py"), "import", str(SAMPLES / "bad"), "--no-media", cwd=tmp_path
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 15 and warnings[-1].startswith("warning: 14 items were skipped or cleaned")
    assert any("truncated.json" in w for w in warnings)


@pytest.mark.parametrize(
    "store_kind", ["sqlite"]
)  # what it prints; the back ends are the conformance suite's
def test_cli_import_missing_directory_exit_2(cli_env, tmp_path):
    result = run_cli(cli_env, str(ROOT / "manage_data.py"), "import", str(tmp_path / "nope"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nope'} does not exist: pass a directory of scraped post JSON files"
    ]


@pytest.mark.parametrize(
    "store_kind", ["sqlite"]
)  # what it prints; the back ends are the conformance suite's
def test_cli_list_json_is_one_document_on_stdout(cli_env, tmp_path):
    assert (
        run_cli(
            cli_env,
            str(ROOT / "manage_data.py"),
            "import",
            str(_one(tmp_path, SCRAPE1)),
            "--no-media",
            cwd=tmp_path,
        ).returncode
        == 0
    )
    result = run_cli(cli_env, str(ROOT / "manage_media.py"), "list", "--all", "--json", cwd=tmp_path)
    rows = json.loads(result.stdout)
    assert len(rows) == 13 and {"media_id", "post_id", "media_url", "md5_sum", "ai_analysis_log"} <= set(
        rows[0]
    )
    stats = json.loads(
        run_cli(cli_env, str(ROOT / "manage_media.py"), "stats", "--json", cwd=tmp_path).stdout
    )
    assert stats["media_total"] == 13
    assert stats["by_download_status"] == {"pending": 13, "downloaded": 0, "failed": 0}
    assert {"by_ai_status", "cache_files", "cache_bytes"} <= set(stats)


# Hostile input: every bad file or post is one problem line; the rest of the directory imports --------


@pytest.fixture
def db_rows(store_kind, store_url, request):
    """Read the database behind the store directly: the SQLite file, or the PostgreSQL database
    (the REST back end's too: its server fronts the same database)."""
    pg_url = None if store_kind == "sqlite" else request.getfixturevalue("pg_clean_url")

    def read(query: str, params: tuple = ()) -> list[dict]:
        if pg_url is None:
            with closing(sqlite3.connect(store_url[len("sqlite:///") :])) as conn:
                conn.row_factory = sqlite3.Row
                return [dict(r) for r in conn.execute(query, params)]
        with psycopg.connect(pg_url, row_factory=dict_row) as conn:
            return conn.execute(query.replace("?", "%s"), params).fetchall()

    return read


def a_post(n: int, **fields) -> dict:
    post = {
        "full_urn": f"urn:li:activity:{n}",
        "posted_at": {"timestamp": 1763000000000},
        "author": {"username": "ana"},
        "text": f"post {n}",
    }
    return {**post, **fields}


def write_posts(directory: Path, name: str, posts: list[dict]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(json.dumps(posts))
    return directory


def run_status(db_rows, run_id: str) -> str:
    [row] = db_rows("SELECT status FROM download_runs WHERE run_id = ?", (run_id,))
    return row["status"]


def assert_views_readable(db_rows) -> None:
    """The TUI's views parse raw_json and stats_json: one unreadable row breaks them for all."""
    assert db_rows("SELECT count(*) AS n FROM v_main_post_view")[0]["n"] > 0
    assert db_rows("SELECT sum(comments + reactions + reposts + views) AS n FROM v_post_engagement_history")


def test_a_deeply_nested_file_is_one_problem_and_the_rest_of_the_directory_imports(store, db_rows, tmp_path):
    directory = write_posts(tmp_path / "posts", "good.json", [a_post(1)])
    (directory / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    report = import_path(store, directory)
    assert report.posts_processed == 1
    assert report.problems == ["deep.json: not usable JSON: nested too deeply; skipped"]
    assert run_status(db_rows, report.run_id) == "completed"


def test_a_post_nested_past_the_depth_limit_is_skipped_alone(store, db_rows, tmp_path):
    from social_tui_media.posts.json_values import MAX_DEPTH

    deep = json.loads('{"a":' * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1))
    directory = write_posts(tmp_path / "posts", "posts.json", [a_post(1), a_post(2, extra=deep), a_post(3)])
    report = import_path(store, directory)
    assert report.posts_processed == 2
    assert report.problems == [
        f"posts.json post urn:li:activity:2: nested more than {MAX_DEPTH} levels deep; skipped"
    ]
    assert sorted(p["urn"] for p in store.posts_page(None, 10)) == ["urn:li:activity:1", "urn:li:activity:3"]
    assert run_status(db_rows, report.run_id) == "completed"


def test_numbers_too_big_for_their_column_are_stored_as_its_default_and_the_run_completes(
    store, db_rows, tmp_path
):
    posts = [
        a_post(1, stats={"total_reactions": 10**30, "comments": 3}),
        a_post(2, stats={"total_reactions": 2**31}),  # fits SQLite's INTEGER, not PostgreSQL's
        a_post(3, posted_at={"timestamp": 10**30}),
        a_post(4, stats={"total_reactions": 7, "comments": 2**40, "views": -(2**31) - 1}),
        a_post(5, stats={"total_reactions": 2**31 - 1, "comments": -(2**31)}),
    ]
    report = import_path(store, write_posts(tmp_path / "posts", "posts.json", posts))
    assert report.posts_processed == 5
    assert run_status(db_rows, report.run_id) == "completed"
    assert sorted(report.problems) == [
        f"posts.json post urn:li:activity:1: stats.total_reactions {10**30} does not fit a 32-bit integer;"
        " stored as 0",
        f"posts.json post urn:li:activity:2: stats.total_reactions {2**31} does not fit a 32-bit integer;"
        " stored as 0",
        f"posts.json post urn:li:activity:3: posted_at.timestamp {10**30} is out of range; stored as 0",
        f"posts.json post urn:li:activity:4: stats.comments {2**40} does not fit a 32-bit integer;"
        " stored as null",
        f"posts.json post urn:li:activity:4: stats.views {-(2**31) - 1} does not fit a 32-bit integer;"
        " stored as null",
    ]
    rows = {
        r["urn"][len("urn:li:activity:") :]: r
        for r in db_rows(
            "SELECT p.urn, p.posted_at_timestamp, d.total_reactions, d.stats_json"
            " FROM posts p JOIN data_downloads d ON d.post_id = p.post_id"
        )
    }
    assert {k: r["total_reactions"] for k, r in rows.items()} == {
        "1": 0, "2": 0, "3": 0, "4": 7, "5": 2**31 - 1
    }  # fmt: skip
    assert rows["3"]["posted_at_timestamp"] == 0
    assert json.loads(rows["4"]["stats_json"]) == {"total_reactions": 7, "comments": None, "views": None}
    assert json.loads(rows["5"]["stats_json"]) == {"total_reactions": 2**31 - 1, "comments": -(2**31)}
    assert_views_readable(db_rows)


BAD_VALUES = [  # JSON text as a scraper may write it: Python's json reads it all, databases refuse some
    '{"full_urn": "urn:li:activity:2", "text": "lone \\ud800 surrogate", "author": {"username": "ana"}}',
    '{"full_urn": "urn:li:activity:3", "text": "nul\\u0000here", "author": {"username": "b\\u0000o"}}',
    '{"full_urn": "urn:li:activity:4", "stats": {"total_reactions": 1, "ratio": NaN, "top": Infinity,'
    ' "low": -Infinity, "huge": 1e400}}',
    '{"full_urn": "urn:li:activity:5\\udc80", "text": "a surrogate in the identity"}',
    '{"full_urn": "urn:li:activity:6", "ke\\u0000y\\udfff": ["x\\u0000", {"y": NaN}]}',
]


def test_bad_text_and_numbers_are_cleaned_per_post_and_their_batch_is_kept(store, db_rows, tmp_path):
    good = [json.dumps(a_post(n)) for n in range(100, 220)]  # the first batch holds 100 posts
    directory = tmp_path / "posts"
    directory.mkdir()
    (directory / "posts.json").write_text("[" + ",".join(good[:50] + BAD_VALUES + good[50:]) + "]")
    report = import_path(store, directory)
    assert report.posts_processed == 125
    assert run_status(db_rows, report.run_id) == "completed"
    assert report.problems == [
        "posts.json post urn:li:activity:2: lone surrogates replaced with U+FFFD",
        "posts.json post urn:li:activity:3: NUL characters dropped",
        "posts.json post urn:li:activity:4: NaN/Infinity numbers stored as null",
        "posts.json post urn:li:activity:5\ufffd: lone surrogates replaced with U+FFFD",
        "posts.json post urn:li:activity:6: NUL characters dropped, lone surrogates replaced with U+FFFD,"
        " NaN/Infinity numbers stored as null",
    ]
    posts = {r["urn"]: r for r in db_rows("SELECT urn, text_content, author_username, raw_json FROM posts")}
    assert len(posts) == 125
    assert posts["urn:li:activity:2"]["text_content"] == "lone \ufffd surrogate"
    assert (posts["urn:li:activity:3"]["text_content"], posts["urn:li:activity:3"]["author_username"]) == (
        "nulhere",
        "bo",
    )
    stats = json.loads(posts["urn:li:activity:4"]["raw_json"])["stats"]
    assert stats == {"total_reactions": 1, "ratio": None, "top": None, "low": None, "huge": None}
    assert "urn:li:activity:5\ufffd" in posts
    assert json.loads(posts["urn:li:activity:6"]["raw_json"])["key\ufffd"] == ["x", {"y": None}]
    [downloads] = db_rows("SELECT count(*) AS n FROM data_downloads")
    assert downloads["n"] == 125
    assert_views_readable(db_rows)


def test_a_file_name_that_is_not_utf8_is_recorded_with_a_replacement_character(store, db_rows, tmp_path):
    directory = write_posts(tmp_path / "posts", "good.json", [a_post(1)])
    with open(os.path.join(os.fsencode(directory), b"caf\xe9.json"), "w") as latin1_name:
        json.dump([a_post(2, text=None)], latin1_name)  # Python names it 'caf\udce9.json'
    report = import_path(store, directory)
    assert report.posts_processed == 2 and report.problems == []
    assert run_status(db_rows, report.run_id) == "completed"
    paths = {r["source_file_path"] for r in db_rows("SELECT source_file_path FROM data_downloads")}
    assert paths == {str(directory / "good.json"), str(directory / "caf\ufffd.json")}


@pytest.mark.timeout(60)
def test_a_fifo_a_device_and_a_directory_named_json_are_skipped_without_reading(store, db_rows, tmp_path):
    directory = write_posts(tmp_path / "posts", "good.json", [a_post(1)])
    os.mkfifo(directory / "a.json")  # opening it for reading would wait for a writer forever
    (directory / "dir.json").mkdir()
    (directory / "null.json").symlink_to("/dev/null")
    elsewhere = write_posts(tmp_path / "elsewhere", "other.json", [a_post(2)])
    (directory / "link.json").symlink_to(elsewhere / "other.json")  # a link to a regular file is read
    report = import_path(store, directory)
    assert report.posts_processed == 2
    assert report.problems == [
        "a.json: not a regular file (a FIFO); skipped",
        "dir.json: not a regular file (a directory); skipped",
        "null.json: not a regular file (a character device); skipped",
    ]
    assert run_status(db_rows, report.run_id) == "completed"


@pytest.mark.timeout(60)
def test_a_link_to_dev_zero_is_skipped_without_reading(store, db_rows, tmp_path):
    directory = write_posts(tmp_path / "posts", "good.json", [a_post(1)])
    (directory / "zero.json").symlink_to("/dev/zero")  # reading it never ends
    report = import_path(store, directory)
    assert report.posts_processed == 1
    assert report.problems == ["zero.json: not a regular file (a character device); skipped"]
    assert run_status(db_rows, report.run_id) == "completed"


def test_a_file_over_the_size_limit_is_one_problem_line(store, db_rows, tmp_path, monkeypatch):
    from social_tui_media.posts import files

    monkeypatch.setattr(files, "MAX_POST_FILE_BYTES", 1000)
    directory = write_posts(tmp_path / "posts", "good.json", [a_post(1)])
    write_posts(directory, "big.json", [a_post(n) for n in range(2, 40)])
    size = (directory / "big.json").stat().st_size
    report = import_path(store, directory)
    assert report.posts_processed == 1
    assert report.problems == [
        f"big.json: {size:,} bytes is over the limit of 1,000 bytes (MAX_POST_FILE_BYTES); split the file"
        "; skipped"
    ]
    assert run_status(db_rows, report.run_id) == "completed"


# Large files are read as a stream and written a batch at a time --------------------------------


def stats_rows(db_rows, run_id: str) -> dict[str, list[int]]:
    """Each post's total_reactions in the run's data_downloads rows, by URN."""
    rows = db_rows(
        "SELECT p.urn, d.total_reactions FROM data_downloads d JOIN posts p ON p.post_id = d.post_id"
        " WHERE d.run_id = ? ORDER BY p.urn",
        (run_id,),
    )
    out: dict[str, list[int]] = {}
    for row in rows:
        out.setdefault(row["urn"], []).append(row["total_reactions"])
    return out


def test_a_large_file_cut_off_half_way_imports_the_posts_before_the_cut_and_says_where(
    store, db_rows, tmp_path
):
    posts = [a_post(n, text="x" * 1500) for n in range(1, 4001)]
    text = json.dumps(posts)
    cut = text[: text.index('"urn:li:activity:3001"')]  # inside post 3001
    directory = tmp_path / "posts"
    directory.mkdir()
    (directory / "scrape.json").write_text(cut)
    assert len(cut) > STREAM_FILE_BYTES
    try:
        json.loads(cut)
    except ValueError as exc:
        error = str(exc)
    report = import_path(store, directory)
    assert report.posts_processed == 3000
    assert report.problems == [f"scrape.json: not valid JSON ({error}); skipped"]
    assert run_status(db_rows, report.run_id) == "completed"
    assert len(stats_rows(db_rows, report.run_id)) == 3000
    assert store.media_counts()["posts_total"] == 3000


def test_a_post_met_again_in_a_later_batch_keeps_its_last_stats_row_and_counts_once(store, db_rows, tmp_path):
    def post(n: int, reactions: int) -> dict:
        image = {"type": "image", "url": f"https://media.licdn.com/dms/image/{n}/feedshare.jpg"}
        return a_post(n, stats={"total_reactions": reactions}, media=image)

    count = FIRST_BATCH_POSTS + BATCH_POSTS + 50  # three batches
    posts = [post(n, 1) for n in range(1, count + 1)]
    posts.insert(5, post(7, 2))  # twice in the first batch: the later row wins
    posts.insert(FIRST_BATCH_POSTS + 10, post(1, 3))  # again in the second
    posts.append(post(1, 4))  # and in the third
    posts.append(post(FIRST_BATCH_POSTS + 20, 5))  # in the second, then in the third
    directory = write_posts(tmp_path / "posts", "scrape.json", posts)

    first = import_path(store, directory)
    assert (first.posts_processed, first.posts_new, first.posts_updated) == (count + 4, count, 0)
    rows = stats_rows(db_rows, first.run_id)
    assert len(rows) == count and all(len(r) == 1 for r in rows.values())  # one row per post per run
    assert rows["urn:li:activity:7"] == [1]
    assert rows["urn:li:activity:1"] == [4]
    assert rows[f"urn:li:activity:{FIRST_BATCH_POSTS + 20}"] == [5]
    assert len(first.media_ids) == len(set(first.media_ids)) == count  # each medium once

    again = import_path(store, directory)  # a new run: its own rows, the posts already known
    assert (again.posts_new, again.posts_updated) == (0, count)
    assert stats_rows(db_rows, again.run_id) == rows
    assert again.media_ids == first.media_ids  # the same slots, in the same order
    assert db_rows("SELECT count(*) AS n FROM data_downloads")[0]["n"] == 2 * count


def test_a_sqlite_import_is_all_in_the_database_file_once_the_store_closes(tmp_path):
    from social_tui_media.store.sqlite import SQLiteStore

    path = tmp_path / "db" / "social_tui.db"
    store = SQLiteStore(path)  # its checkpoints run on a thread of their own
    report = import_path(
        store, write_posts(tmp_path / "posts", "p.json", [a_post(n) for n in range(1, 1501)])
    )
    store.close()
    assert report.posts_new == 1500
    assert not path.with_name(path.name + "-wal").exists()
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT count(*) FROM posts").fetchone() == (1500,)


def test_a_stats_row_written_again_under_its_download_id_replaces_the_first(store, db_rows):
    run_id = store.start_run("posts/", "test")
    [(post_id, _)] = store.upsert_posts([_record()])
    row = {
        "download_id": "dl-1", "post_id": post_id, "run_id": run_id,
        "downloaded_at": "2025-11-25T00:00:00+00:00", "total_reactions": 5,
        "stats_json": '{"total_reactions": 5}', "raw_json": "{}", "source_file_path": "/scrapes/f.json",
    }  # fmt: skip
    assert store.insert_data_downloads([row]) == set()
    second = {**row, "total_reactions": 6, "stats_json": '{"total_reactions": 6}'}
    assert store.insert_data_downloads([second, {**row, "download_id": "dl-2"}]) == {"dl-1"}
    stored = db_rows(
        "SELECT download_id, total_reactions, stats_json FROM data_downloads ORDER BY download_id"
    )
    assert stored == [
        {"download_id": "dl-1", "total_reactions": 6, "stats_json": '{"total_reactions": 6}'},
        {"download_id": "dl-2", "total_reactions": 5, "stats_json": '{"total_reactions": 5}'},
    ]


# What a person sees: data is printed as text, never read as rich markup ---------------------------


def _unwrapped(text: str) -> str:
    return "".join(line.strip() for line in text.splitlines())


@pytest.mark.parametrize(
    "store_kind", ["sqlite"]
)  # what it prints; the back ends are the conformance suite's
def test_cli_import_prints_markup_characters_in_data_as_text(cli_env, tmp_path):
    directory = tmp_path / "in[bold]" / "a["
    post = a_post(1, full_urn="urn:li:activity:[/x]1", media={"type": "image", "url": "file:///[/x]"})
    write_posts(directory, "x].json", [post])
    (directory / "[red]b.json").write_text("")
    path = f"{directory}/x].json"  # the file a[/x].json: '[/x]' is a closing tag to rich
    wide = {**cli_env, "COLUMNS": "400"}  # no wrapping: each line whole
    table = ("--format", "table")
    result = run_cli(wide, str(ROOT / "manage_data.py"), "import", path, "--no-media", *table, cwd=tmp_path)
    assert result.returncode == 1, result.stderr  # one item skipped
    assert "Traceback" not in result.stderr and "MarkupError" not in result.stderr
    assert (
        "warning: x].json post urn:li:activity:[/x]1: media.url: media URL scheme 'file' is not http or"
        " https; skipped"
    ) in result.stderr.splitlines()
    assert path in _unwrapped(result.stdout)  # the summary's source line
    assert re.search(r"│ posts imported +│ 1 ", result.stdout)
    whole = run_cli(
        wide, str(ROOT / "manage_data.py"), "import", str(directory), "--no-media", *table, cwd=tmp_path
    )
    assert whole.returncode == 1, whole.stderr
    assert "warning: [red]b.json: file is empty; skipped" in whole.stderr.splitlines()
    assert str(directory) in _unwrapped(whole.stdout)
    assert re.search(r"│ skipped items +│ 2 ", whole.stdout)


@pytest.mark.parametrize(
    "store_kind", ["sqlite"]
)  # what it prints; the back ends are the conformance suite's
def test_cli_download_failures_with_markup_characters_keep_the_summary(cli_env, store, served, tmp_path):
    [(post_id, _)] = store.upsert_posts([_record()])
    url = f"{served.base_url}/gone/[/x]/[bold]a.jpg"
    store.upsert_media(
        [MediaSlotRow(generate_aws_id(PREFIX_MEDIA), post_id, "image", url, url, "image", 0, None)]
    )
    result = run_cli(
        cli_env,
        str(ROOT / "manage_media.py"),
        "download-all",
        "--retry-failed",
        "--format",
        "table",
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    failure, what_next = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert url in failure and "then run `python manage_media.py download-all`" in what_next
    assert re.search(r"│ failed +│ 1 ", result.stdout)


@pytest.mark.parametrize(
    "store_kind", ["sqlite"]
)  # what it prints; the back ends are the conformance suite's
def test_cli_url_of_an_unknown_id_with_markup_characters_is_one_error_line(cli_env, tmp_path):
    result = run_cli(cli_env, str(ROOT / "manage_media.py"), "url", "[/x]med-1", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == ["error: no media with id '[/x]med-1'"]


def test_reading_in_a_process_of_its_own_stores_the_same_rows_and_says_the_same_lines(tmp_path):
    """Large input is read in a reader process: the same posts, media, stats rows, counts and
    problem lines, in the same order, as reading it here."""
    from social_tui_media.store.sqlite import SQLiteStore

    def post(n: int) -> dict:
        images = [
            {"url": f"https://media.licdn.com/dms/image/{n}/{i}.jpg?e=1764877600&t=s"}
            for i in range(n % 3 + 1)
        ]
        return a_post(n, text=f"post {n} \ud800", media={"type": "images", "images": images})

    directory = write_posts(
        tmp_path / "posts", "big.json", [post(n) for n in range(1, FIRST_BATCH_POSTS + 1500)]
    )
    for bad in (SAMPLES / "bad").glob("*.json"):
        (directory / bad.name).write_bytes(bad.read_bytes())
    (directory / SCRAPE1.name).write_text(SCRAPE1.read_text())

    def imported(parallel: bool) -> tuple:
        store = SQLiteStore(tmp_path / f"parallel-{parallel}.db")
        try:
            report = import_path(store, directory, parallel=parallel)
            posts = sorted((p["urn"], p["raw_json"]) for p in store.posts_page(None, 10_000))
            counts = (report.posts_processed, report.posts_new, report.media_total, report.media_new)
            return counts, report.problems, posts, media_by_urn(store), store.media_counts()
        finally:
            store.close()

    here, apart = imported(False), imported(True)
    assert here[0][0] > FIRST_BATCH_POSTS + 1499  # every post of the big file, the samples' too
    assert len(here[1]) > FIRST_BATCH_POSTS + 1499  # a line for each lone surrogate, the bad files'
    assert apart == here


def test_a_script_without_a_main_guard_imports_large_input(tmp_path):
    """The reader process starts afresh: a caller's script is not run again in it (as
    multiprocessing's spawn would, failing or repeating the script's work)."""
    posts = [a_post(n) for n in range(1, 301)]
    directory = write_posts(tmp_path / "posts", "scrape.json", posts)
    script = tmp_path / "update_data.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from social_tui_media.jobs.import_posts import import_path\n"
        "from social_tui_media.store.sqlite import SQLiteStore\n"
        f"store = SQLiteStore({str(tmp_path / 'db.sqlite')!r})\n"
        f"report = import_path(store, {str(directory)!r}, parallel=True)\n"
        "store.close()\n"
        "print('imported', report.posts_new)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert (done.returncode, done.stdout) == (0, "imported 300\n"), done.stderr
