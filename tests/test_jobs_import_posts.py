"""`manage_data.py import`: posts, stats history and media rows, identical on every back end."""

from __future__ import annotations

import json
import subprocess
import sys

from social_tui_media.jobs.import_posts import import_path, store_media_slots
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

    return PostRecord("urn:li:activity:7390000000000100009", None, 0, "", None, "", None, None, {})


def run_cli(env, *args, cwd=None):
    return subprocess.run(
        [sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_cli_import_bad_input_exit_1_one_line_each_no_traceback(cli_env, tmp_path):
    result = run_cli(
        cli_env, str(ROOT / "manage_data.py"), "import", str(SAMPLES / "bad"), "--no-media", cwd=tmp_path
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 14
    assert any("truncated.json" in w for w in warnings)


def test_cli_import_missing_directory_exit_2(cli_env, tmp_path):
    result = run_cli(cli_env, str(ROOT / "manage_data.py"), "import", str(tmp_path / "nope"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nope'} does not exist: pass a directory of scraped post JSON files"
    ]


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
    assert stats["media_total"] == 13 and stats["by_download_status"] == {"pending": 13}
    assert {"by_ai_status", "cache_files", "cache_bytes"} <= set(stats)
