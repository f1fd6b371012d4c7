"""Downloads end to end: import → parallel, deduplicated, verified cache; failure handling;
crash and concurrency safety; verify-cache, eviction, backfill and legacy adoption."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from devtools.media_server import sample_media
from social_tui_media.jobs.download import download_pending
from social_tui_media.jobs.evict import evict_lru
from social_tui_media.jobs.import_posts import import_path
from social_tui_media.media.cache import MediaCache, calculate_md5
from social_tui_media.media.fetch import Fetcher, FetchPolicy
from social_tui_media.store import open_store
from social_tui_media.store.interface import make_event
from tests.conftest import ROOT, scrape

DEDUP_A, DEDUP_B = "DECA26941BC5187", "DBC469CC94C4B47"


def cached_files(settings) -> list[Path]:
    return MediaCache(settings.cache_dir).cached_files()


def import_and_download(store, settings, directory, **kwargs):
    report = import_path(store, directory)
    downloads = download_pending(store, settings, media_ids=report.media_ids, **kwargs)
    return report, downloads


def test_import_downloads_every_media_kind_once(store, settings, samples_dir, served):
    _, downloads = import_and_download(store, settings, scrape(samples_dir, 1))
    rows = store.list_media()
    assert downloads.failed == 0 and len(rows) == 13
    assert {r["download_status"] for r in rows} == {"downloaded"}
    by_kind = {r["mime_type"] for r in rows}
    assert by_kind == {"image/jpeg", "video/mp4", "application/pdf"}
    video = next(r for r in rows if r["media_type"] == "video")
    assert (video["width"], video["height"]) == (64, 48)
    single = next(r for r in rows if DEDUP_A in r["slot_key"])
    assert (single["width"], single["height"]) == (800, 800)
    for row in rows:
        path = Path(row["local_file_path"])
        assert (
            path.parent.name
            == {"image": "images", "video": "videos", "document": "documents"}[row["media_type"]]
        )
        assert path.name == f"{row['md5_sum']}.{path.suffix[1:]}" and calculate_md5(path) == row["md5_sum"]
        assert row["file_size"] == path.stat().st_size
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        event = row["ai_analysis_log"][-1]
        assert event["event"] == "media_downloaded" and event["details"]["md5_sum"] == row["md5_sum"]
    assert oct(settings.cache_dir.stat().st_mode & 0o777) == "0o700"
    assert len(served.requests) == 13  # one request per slot


def test_same_bytes_under_two_urls_are_one_file(store, settings, samples_dir, served):
    import_and_download(store, settings, scrape(samples_dir, 1))
    rows = store.list_media()
    a = next(r for r in rows if DEDUP_A in r["slot_key"])
    b = next(r for r in rows if DEDUP_B in r["slot_key"])
    assert a["post_id"] != b["post_id"] and a["md5_sum"] == b["md5_sum"]
    assert a["local_file_path"] == b["local_file_path"]
    assert len(cached_files(settings)) == 12


def test_reimport_of_resigned_scrape_makes_no_http_request(store, settings, samples_dir, served):
    import_and_download(store, settings, scrape(samples_dir, 1))
    served.clear()
    report, downloads = import_and_download(store, settings, scrape(samples_dir, 2))
    assert report.media_new == 0 and downloads.attempted == 0
    assert served.requests == []
    assert len(store.list_media()) == 13


def _post_with_image(urn: str, url: str) -> dict:
    return {"full_urn": urn, "media": {"type": "image", "url": url}}


def _write_posts(directory: Path, posts: list[dict], name: str = "posts.json") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(json.dumps(posts))
    return directory


def test_html_served_as_jpeg_fails_the_row(store, settings, served, tmp_path):
    url = served.add("/html/err", b"<!DOCTYPE html><html><body>Sign in</body></html>", "image/jpeg")
    import_and_download(
        store, settings, _write_posts(tmp_path / "p", [_post_with_image("urn:li:activity:1", url + "?e=1")])
    )
    [row] = store.list_media()
    assert row["download_status"] == "failed" and row["download_error_kind"] == "html"
    assert "HTML page" in row["download_error"]
    assert row["ai_analysis_log"][-1]["event"] == "media_download_failed"
    assert cached_files(settings) == []


def test_expired_url_403_is_fetched_once_and_not_retried_by_every_run(store, settings, served, tmp_path):
    url = served.add("/expired/403", b"denied", "text/plain", status=403)
    import_and_download(
        store,
        settings,
        _write_posts(tmp_path / "p", [_post_with_image("urn:li:activity:1", url + "?e=1&t=a")]),
    )
    [row] = store.list_media()
    assert row["download_status"] == "failed" and row["download_permanent"] is True
    assert served.count("/expired/403") == 1
    assert download_pending(store, settings).attempted == 0
    assert served.count("/expired/403") == 1
    assert download_pending(store, settings, retry_failed=True).failed == 1
    assert served.count("/expired/403") == 2


def test_reimport_with_fresh_url_sets_failed_slot_back_to_pending(store, settings, served, tmp_path):
    body, kind = sample_media("/dms/image/v2/FRESH/x")
    served.add("/fresh/img", body, kind, fail_times=1, fail_status=403)
    base = served.base_url + "/fresh/img"
    import_and_download(
        store,
        settings,
        _write_posts(tmp_path / "a", [_post_with_image("urn:li:activity:1", base + "?e=100&t=old")]),
    )
    assert store.list_media()[0]["download_status"] == "failed"
    _, downloads = import_and_download(
        store,
        settings,
        _write_posts(tmp_path / "b", [_post_with_image("urn:li:activity:1", base + "?e=200&t=new")]),
    )
    [row] = store.list_media()
    assert downloads.downloaded == 1 and row["download_status"] == "downloaded"
    assert row["media_url"].endswith("t=new")


def test_server_errors_and_rate_limits_are_retried(store, settings, served, tmp_path):
    body, kind = sample_media("/dms/image/v2/RETRY/x")
    a = served.add("/retry/503", body, kind, fail_times=2, fail_status=503)
    b = served.add("/retry/429", body + b"", kind, fail_times=1, fail_status=429, retry_after=1)
    posts = [_post_with_image("urn:li:activity:1", a), _post_with_image("urn:li:activity:2", b)]
    started = time.monotonic()
    _, downloads = import_and_download(store, settings, _write_posts(tmp_path / "p", posts))
    assert downloads.downloaded == 2 and downloads.failed == 0
    assert served.count("/retry/503") == 3 and served.count("/retry/429") == 2
    assert time.monotonic() - started >= 1.0  # Retry-After honoured
    assert {r["download_attempts"] for r in store.list_media()} == {3, 2}


def test_too_slow_download_fails_for_now_and_the_next_run_fetches_it(store, settings, served, tmp_path):
    body, kind = sample_media("/dms/image/v2/SLOW/x")
    url = served.add("/slow/img", body, kind, trickle_every=0.05)
    import_path(store, _write_posts(tmp_path / "p", [_post_with_image("urn:li:activity:1", url)]))
    policy = replace(FetchPolicy.from_settings(settings), min_rate=1000, rate_grace=0.3)
    with Fetcher(policy) as slow_to_give_up:
        report = download_pending(store, settings, fetcher=slow_to_give_up)
    [row] = store.list_media()
    assert report.failed == 1 and row["download_error_kind"] == "too_slow"
    assert row["download_permanent"] is False and "MEDIA_MIN_DOWNLOAD_RATE" in row["download_error"]
    assert served.count("/slow/img") == 1  # not retried within the run
    served.add("/slow/img", body, kind)  # fast again
    assert download_pending(store, settings).downloaded == 1
    assert store.get_media(row["media_id"])["download_status"] == "downloaded"


def test_private_address_is_refused_without_the_allowance(store, settings, served, tmp_path):
    strict = replace(settings, allow_private_hosts=())
    url = served.add("/private/img", *sample_media("/dms/image/v2/PRIV/x"))
    import_path(store, _write_posts(tmp_path / "p", [_post_with_image("urn:li:activity:1", url)]))
    report = download_pending(store, strict)
    [row] = store.list_media()
    assert report.failed == 1 and row["download_error_kind"] == "blocked_address"
    assert served.count("/private/img") == 0


def test_legacy_cache_file_is_adopted_without_a_request(store, settings, served, tmp_path):
    body, kind = sample_media("/dms/image/v2/LEGACY/x")
    url = served.add("/legacy/img", body, kind) + "?e=5&t=x"
    legacy_dir = settings.cache_dir.parent / "images"
    legacy_dir.mkdir(parents=True)
    (legacy_dir / f"{hashlib.md5(url.encode()).hexdigest()}.jpg").write_bytes(body)
    import_and_download(
        store, settings, _write_posts(tmp_path / "p", [_post_with_image("urn:li:activity:1", url)])
    )
    [row] = store.list_media()
    assert row["download_status"] == "downloaded" and row["md5_sum"] == hashlib.md5(body).hexdigest()
    assert row["ai_analysis_log"][-1]["details"]["source"] == "legacy"
    assert served.count("/legacy/img") == 0


def test_log_is_json_lines_without_signed_queries(store, settings, served, tmp_path):
    from social_tui_media.logs import configure_logging

    url = served.add("/log/403", b"x", "text/plain", status=403) + "?e=1&t=SECRET_SIGNATURE"
    run_id = configure_logging(settings.log_file)
    import_and_download(
        store, settings, _write_posts(tmp_path / "p", [_post_with_image("urn:li:activity:1", url)])
    )
    lines = [json.loads(line) for line in settings.log_file.read_text().splitlines()]
    assert lines and all(entry["run_id"] == run_id for entry in lines)
    assert any(entry.get("media_id") for entry in lines)
    assert "SECRET_SIGNATURE" not in settings.log_file.read_text()


def many_posts(served, directory: Path, count: int, prefix: str) -> Path:
    posts = []
    for i in range(count):
        path = f"/dms/image/v2/{prefix}{i:05d}/feedshare/{prefix}{i:05d}/0/1"
        body, kind = sample_media(path, 64, 64)
        posts.append(
            _post_with_image(
                f"urn:li:activity:{prefix}{i}", served.add(path, body, kind) + f"?e={1800000000 + i}&t=x"
            )
        )
    return _write_posts(directory, posts)


def run_cli(env, *args, **kwargs):
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=180, **kwargs
    )


def test_two_download_processes_never_fetch_the_same_slot(store, settings, cli_env, served, tmp_path):
    directory = many_posts(served, tmp_path / "posts", 60, "TWO")
    import_path(store, directory)
    served.latency = 0.02
    try:
        procs = [
            subprocess.Popen(
                [sys.executable, str(ROOT / "manage_media.py"), "download-all"],
                env=cli_env,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(2)
        ]
        codes = [p.wait(timeout=180) for p in procs]
    finally:
        served.latency = 0.0
    assert codes == [0, 0], [p.stderr.read() for p in procs]
    paths = [r.path for r in served.requests if "/TWO" in r.path]
    assert len(paths) == 60 and len(set(paths)) == 60
    assert store.media_counts()["by_download_status"] == {"downloaded": 60}


def test_sigkill_during_download_all_leaves_nothing_partial_and_rerun_completes(
    store, settings, cli_env, served, tmp_path
):
    directory = many_posts(served, tmp_path / "posts", 40, "KILL")
    import_path(store, directory)
    served.latency = 0.1
    try:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage_media.py"), "download-all", "--workers", "2"],
            env=cli_env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum(1 for r in served.requests if "/KILL" in r.path) < 8:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        served.latency = 0.0
    for path in cached_files(settings):  # every visible file is complete and named by its hash
        assert path.name.startswith(calculate_md5(path))
    assert store.media_counts()["by_download_status"].get("downloaded", 0) < 40
    result = run_cli(cli_env, str(ROOT / "manage_media.py"), "download-all", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = store.list_media()
    assert len(rows) == 40 and {r["download_status"] for r in rows} == {"downloaded"}
    assert len(cached_files(settings)) == 40
    leftovers = [p for p in settings.cache_dir.rglob(".part-*")]
    assert leftovers == []


def _sigint_as_usual() -> None:
    """In the child: Ctrl-C raises KeyboardInterrupt even when this test runs with SIGINT ignored
    (a background job), as Python leaves an ignored SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _trickling_posts(served, tmp_path, tag: str) -> tuple[Path, list[tuple[bytes, str]]]:
    """A posts file whose three images arrive a byte every half second (so a run is mid-transfer)."""
    media = [sample_media(f"/dms/image/v2/{tag}{i}/x") for i in range(3)]
    posts = [
        _post_with_image(f"urn:li:activity:{i}", served.add(f"/{tag}/{i}", body, kind, trickle_every=0.5))
        for i, (body, kind) in enumerate(media)
    ]
    return _write_posts(tmp_path / "posts", posts), media


def _interrupt_when(argv: list[str], env, cwd, ready) -> tuple[int, str, float]:
    """Run a CLI, send it Ctrl-C once `ready()` holds; its exit code, stderr and seconds to stop."""
    proc = subprocess.Popen(
        [sys.executable, *argv], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_sigint_as_usual,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not ready():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        interrupted = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=15)
        return proc.returncode, stderr, time.monotonic() - interrupted
    finally:
        proc.kill()
        proc.wait()


def test_ctrl_c_stops_download_all_within_seconds_and_gives_back_its_claims(
    store, settings, cli_env, served, tmp_path
):
    directory, media = _trickling_posts(served, tmp_path, "ctrlc")
    import_path(store, directory)

    def every_transfer_under_way() -> bool:
        return len(list(settings.cache_dir.glob(".part-*"))) >= 3 and all(
            served.bytes_sent(f"/ctrlc/{i}") >= 2 for i in range(3)
        )

    code, stderr, stopped_after = _interrupt_when(
        [str(ROOT / "manage_media.py"), "download-all"], cli_env, tmp_path, every_transfer_under_way
    )
    assert code == 130, stderr
    assert stopped_after < 5
    assert list(settings.cache_dir.rglob(".part-*")) == []
    rows = store.list_media()
    assert {(r["download_status"], r["download_claimed_by"], r["download_claimed_at"]) for r in rows} == {
        ("pending", None, None)
    }
    for i, (body, kind) in enumerate(media):
        served.add(f"/ctrlc/{i}", body, kind)  # the server is fast again
    again = run_cli(cli_env, str(ROOT / "manage_media.py"), "download-all", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert store.media_counts()["by_download_status"] == {"downloaded": 3}


def test_verify_cache_finds_corruption_and_repair_refetches(
    store, settings, cli_env, samples_dir, served, tmp_path
):
    import_and_download(store, settings, scrape(samples_dir, 1))
    rows = store.list_media()
    victim = Path(next(r for r in rows if r["media_type"] == "video")["local_file_path"])
    victim.write_bytes(b"corrupted")
    missing = Path(next(r for r in rows if r["media_type"] == "document")["local_file_path"])
    missing.unlink()
    result = run_cli(cli_env, str(ROOT / "manage_media.py"), "verify-cache", "--json", cwd=tmp_path)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert len(report["corrupt"]) == 1 and len(report["missing"]) == 1
    repaired = run_cli(
        cli_env, str(ROOT / "manage_media.py"), "verify-cache", "--repair", "--json", cwd=tmp_path
    )
    assert repaired.returncode == 0, repaired.stderr
    after = json.loads(repaired.stdout)
    assert after["corrupt"] == [] and after["missing"] == [] and after["rows_checked"] == 13
    assert (after["restored"], after["restore_failed"]) == (2, 0)  # it says what it brought back
    assert calculate_md5(victim) == victim.stem


def test_eviction_never_deletes_the_only_copy(store, settings, samples_dir, served):
    import_and_download(store, settings, scrape(samples_dir, 1))
    cache = MediaCache(settings.cache_dir)
    report = evict_lru(store, cache, limit_bytes=1)
    assert report.files_evicted == 0 and report.kept_without_archive == 12
    archived = store.list_media()[0]
    store.update_media(
        archived["media_id"],
        {"archive_url": "s3://b/k.jpg", "archived_at": "2025-11-25T00:00:00+00:00"},
        make_event("media_archived"),
    )
    report = evict_lru(store, cache, limit_bytes=1)  # an archive copy nobody can verify is no copy
    assert report.files_evicted == 0 and Path(archived["local_file_path"]).exists()
    assert store.get_media(archived["media_id"])["evicted_at"] is None
    assert len(cached_files(settings)) == 12  # evicting verified copies: tests/test_jobs_archive.py


def test_backfill_creates_missing_media_rows_across_pages(store, settings, served, tmp_path):
    from social_tui_media.jobs.backfill import backfill_media

    posts = [_post_with_image(f"urn:li:activity:{i}", f"{served.base_url}/bf/{i}?e=1") for i in range(1203)]
    import_path(store, _write_posts(tmp_path / "p", posts))
    conn_ids = [r["media_id"] for r in store.list_media()]
    assert len(conn_ids) == 1203
    _delete_media(store)
    dry = backfill_media(store, dry_run=True, page_size=500)
    assert dry.posts_without_media == 1203 and store.list_media() == []
    report = backfill_media(store, page_size=500)
    assert report.posts_scanned == 1203 and len(report.media_ids) == 1203
    assert len(store.list_media()) == 1203
    assert backfill_media(store, page_size=500).media_found == 0


def _delete_media(store) -> None:
    if hasattr(store, "path"):
        import sqlite3

        with sqlite3.connect(store.path) as conn:
            conn.execute("DELETE FROM post_media")
    elif hasattr(store, "_client"):  # REST: a filtered DELETE, as Supabase's safeupdate requires
        store._client.table("post_media").delete(returning="minimal").neq("media_id", "").execute()
    else:
        store._conn.execute("DELETE FROM post_media")


def test_stats_counts_uncached_media_expiring_within_48_hours(store, settings, tmp_path):
    soon = int(time.time()) + 3600
    later = int(time.time()) + 7 * 86400
    posts = [
        _post_with_image("urn:li:activity:1", f"https://media.licdn.com/a/1?e={soon}"),
        _post_with_image("urn:li:activity:2", f"https://media.licdn.com/a/2?e={later}"),
    ]
    import_path(store, _write_posts(tmp_path / "p", posts))
    assert store.media_counts()["expiring_48h"] == 1


def test_open_store_uses_settings(settings):
    opened = open_store(settings)
    try:
        assert opened.media_counts()["media_total"] == 0
    finally:
        opened.close()


@pytest.fixture(autouse=True)
def _reset_latency(served):
    yield
    served.latency = 0.0


def test_older_scripts_bin_file_is_read_and_adopted_by_repair(store, settings, cli_env, served, tmp_path):
    body, kind = sample_media("/dms/image/v2/OLDBIN/x", 90, 60)
    url = served.add("/oldbin/img", body, kind)
    import_path(store, _write_posts(tmp_path / "p", [_post_with_image("urn:li:activity:1", url)]))
    [row] = store.list_media()
    old = settings.cache_dir.parent / "images" / "0123.bin"
    old.parent.mkdir(parents=True)
    old.write_bytes(body)
    md5 = hashlib.md5(body).hexdigest()
    store.update_media(
        row["media_id"], {"download_status": "downloaded", "md5_sum": md5, "local_file_path": str(old)}
    )
    check = run_cli(cli_env, str(ROOT / "manage_media.py"), "verify-cache", "--json", cwd=tmp_path)
    assert check.returncode == 0 and len(json.loads(check.stdout)["misplaced"]) == 1
    assert (
        run_cli(cli_env, str(ROOT / "manage_media.py"), "verify-cache", "--repair", cwd=tmp_path).returncode
        == 0
    )
    fixed = store.get_media(row["media_id"])
    assert Path(fixed["local_file_path"]) == settings.cache_dir / "images" / f"{md5}.jpg"
    assert (fixed["mime_type"], fixed["width"], fixed["height"]) == ("image/jpeg", 90, 60)
    assert old.exists() and served.count("/oldbin/img") == 0


def test_backfill_media_script_is_the_same_command(store, settings, cli_env, served, tmp_path):
    body, kind = sample_media("/dms/image/v2/BFSCRIPT/x")
    url = served.add("/bfscript/img", body, kind)
    post = dict(_post_with_image("urn:li:activity:1", url), posted_at={"timestamp": 1763000000000})
    import_path(store, _write_posts(tmp_path / "p", [post]))
    _delete_media(store)
    result = run_cli(cli_env, str(ROOT / "backfill_media.py"), "--start-date", "2000-01-01", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [r["download_status"] for r in store.list_media()] == ["downloaded"]
    bad = run_cli(cli_env, str(ROOT / "backfill_media.py"), "--start-date", "yesterday", cwd=tmp_path)
    assert bad.returncode == 2 and "not a date" in bad.stderr


def test_cli_import_downloads_while_importing_and_reimport_makes_no_request(
    store, cli_env, samples_dir, served, tmp_path
):
    first = run_cli(
        cli_env, str(ROOT / "manage_data.py"), "import", str(scrape(samples_dir, 1)), cwd=tmp_path
    )
    assert first.returncode == 0, first.stderr
    assert store.media_counts()["by_download_status"] == {"downloaded": 13}
    assert len(served.requests) == 13
    served.clear()
    second = run_cli(
        cli_env, str(ROOT / "manage_data.py"), "import", str(scrape(samples_dir, 2)), cwd=tmp_path
    )
    assert second.returncode == 0, second.stderr
    assert served.requests == [] and len(store.list_media()) == 13
    assert "reused\t13" in second.stdout.splitlines()  # off a terminal: one tab-separated line each


def test_feed_downloads_ids_added_while_the_run_is_going(store, settings, served, tmp_path):
    import threading

    from social_tui_media.jobs.download import MediaFeed

    directory = many_posts(served, tmp_path / "posts", 30, "FEED")
    report = import_path(store, directory)
    feed = MediaFeed(report.media_ids[:10])
    result = {}
    runner = threading.Thread(
        target=lambda: result.update(r=download_pending(store, settings, media_ids=feed))
    )
    runner.start()
    time.sleep(0.5)
    feed.extend(report.media_ids[10:])
    feed.close()
    runner.join(timeout=60)
    assert result["r"].downloaded == 30
    assert store.media_counts()["by_download_status"] == {"downloaded": 30}


def test_ctrl_c_stops_an_import_and_its_downloads_within_seconds(store, settings, cli_env, served, tmp_path):
    directory, _ = _trickling_posts(served, tmp_path, "impc")
    code, stderr, stopped_after = _interrupt_when(
        [str(ROOT / "manage_data.py"), "import", str(directory)], cli_env, tmp_path,
        lambda: all(served.bytes_sent(f"/impc/{i}") >= 2 for i in range(3)),
    )  # fmt: skip
    assert code == 130 and stopped_after < 5, stderr
    assert list(settings.cache_dir.rglob(".part-*")) == []
    rows = store.list_media()
    assert len(rows) == 3
    assert {(r["download_status"], r["download_claimed_by"]) for r in rows} == {("pending", None)}


def test_a_blocked_address_is_retried_once_the_configuration_is_fixed(
    store, cli_env, samples_dir, served, tmp_path
):
    import_path(store, scrape(samples_dir, 1))
    blocked = {k: v for k, v in cli_env.items() if k != "MEDIA_ALLOW_PRIVATE_HOSTS"}  # loopback is refused
    first = run_cli(blocked, str(ROOT / "manage_media.py"), "download-all", cwd=tmp_path)
    assert first.returncode == 1 and served.requests == []
    assert "then run `python manage_media.py download-all`" in first.stderr
    assert store.media_counts()["by_download_status"] == {"failed": 13}
    fixed = run_cli(cli_env, str(ROOT / "manage_media.py"), "download-all", cwd=tmp_path)  # no --retry-failed
    assert fixed.returncode == 0, fixed.stderr
    assert store.media_counts()["by_download_status"] == {"downloaded": 13}
