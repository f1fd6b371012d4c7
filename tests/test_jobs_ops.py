"""Running for months, end to end on every back end: eviction follows last use, retention
removes old posts' files only with a verified archive copy, every presigned URL and deletion is
in the audit log, and `stats` reports the spec's metrics from the rows and events."""

# ruff: noqa: F811 - the S3 fixtures come from test_jobs_archive and are taken as arguments
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import media_cache
from social_tui_media.jobs.download import download_pending
from social_tui_media.jobs.evict import evict_lru
from social_tui_media.jobs.import_posts import import_path
from social_tui_media.media.cache import MediaCache
from social_tui_media.settings import load_settings
from social_tui_media.store.interface import AuditQuery
from social_tui_media.store.usage import UsageRecorder, usage_recorder
from tests.conftest import scrape
from tests.test_jobs_archive import aws_env, bucket, downloaded, manage, s3, s3_env, s3_settings  # noqa: F401

LONG_AGO = (datetime.now(UTC) - timedelta(days=20)).isoformat(timespec="microseconds")
LONGER_AGO = (datetime.now(UTC) - timedelta(days=30)).isoformat(timespec="microseconds")


def audit(store, **filters) -> list[dict]:
    return list(store.iter_audit(AuditQuery(**filters)))


# a true LRU ----------------------------------------------------------------------------------------


def test_a_file_the_tui_reads_every_day_survives_a_squeeze_that_evicts_an_untouched_newer_download(
    store, settings, cli_env, samples_dir, served, monkeypatch
):
    downloaded(store, settings, samples_dir)
    rows = [r for r in store.list_media() if r["media_type"] == "image"]
    daily, untouched = rows[0], next(r for r in rows[1:] if r["md5_sum"] != rows[0]["md5_sum"])
    for row in store.list_media():  # every file downloaded long ago; the daily one first of all
        store.update_media(row["media_id"], {"downloaded_at": LONG_AGO, "cache_used_at": LONG_AGO})
    store.update_media(daily["media_id"], {"downloaded_at": LONGER_AGO, "cache_used_at": LONGER_AGO})
    for name, value in cli_env.items():
        monkeypatch.setenv(name, value)

    found = media_cache.cached_media(url=daily["media_url"])  # the TUI shows it
    assert found is not None and found.media_id == daily["media_id"]
    assert store.get_media(daily["media_id"])["cache_used_at"] == LONGER_AGO  # batched: not yet written
    usage_recorder(load_settings()).flush()
    assert store.get_media(daily["media_id"])["cache_used_at"] > LONG_AGO

    cache = MediaCache(settings.cache_dir)
    _, total = cache.usage()
    others = {r["media_id"] for r in store.list_media() if r["md5_sum"] != daily["md5_sum"]}
    report = evict_lru(store, cache, total - 1, force=True)  # room for all but one file

    assert report.files_evicted == 1 and Path(daily["local_file_path"]).is_file()
    evicted = [r for r in store.list_media() if r["evicted_at"]]
    assert {r["media_id"] for r in evicted} <= others and not Path(evicted[0]["local_file_path"]).exists()
    assert untouched["md5_sum"] != daily["md5_sum"]
    entries = audit(store)
    assert {e["media_id"] for e in entries} == {r["media_id"] for r in evicted}
    assert {(e["action"], e["reason"]) for e in entries} == {("file_deleted", "eviction")}


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_the_usage_recorder_writes_once_per_batch_and_not_again_within_the_hour(
    store, settings, samples_dir, served
):
    downloaded(store, settings, samples_dir)
    ids = [r["media_id"] for r in store.list_media()][:3]
    for media_id in ids:
        store.update_media(media_id, {"cache_used_at": LONG_AGO})
    calls: list[list[str]] = []

    class Counting:
        def mark_used(self, media_ids):
            calls.append(list(media_ids))
            return store.mark_used(media_ids)

    recorder = UsageRecorder(Counting(), batch=3, interval=60)
    for _ in range(50):  # a person paging back and forth over two files
        recorder.touch(ids[0])
        recorder.touch(ids[1])
    assert calls == []
    recorder.touch(ids[2])  # the batch is full
    assert calls == [ids]
    recorder.touch(ids[0])  # marked minutes ago: nothing to write
    recorder.close()
    assert calls == [ids] and all(store.get_media(i)["cache_used_at"] > LONG_AGO for i in ids)


# retention -----------------------------------------------------------------------------------------


def test_retain_without_a_policy_says_so_and_removes_nothing(
    store, cli_env, samples_dir, served, settings, tmp_path
):
    downloaded(store, settings, samples_dir)
    result = manage(cli_env, "retain", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "MEDIA_RETENTION_DAYS is not set" in result.stderr
    assert json.loads(result.stdout)["retention_days"] is None
    assert all(Path(r["local_file_path"]).is_file() for r in store.list_media())


def test_retain_removes_old_posts_files_with_a_verified_archive_copy_and_never_the_only_copy(
    store, s3_settings, s3_env, samples_dir, served, tmp_path
):
    downloaded(store, s3_settings, samples_dir)
    document = next(r for r in store.list_media() if r["media_type"] == "document")
    assert manage(s3_env, "archive", "--all", cwd=tmp_path).returncode == 0
    store.update_media(document["media_id"], {"archive_url": None, "archived_at": None})  # its only copy
    env = {**s3_env, "MEDIA_RETENTION_DAYS": "3"}  # the sample posts are from November 2025

    dry = manage(env, "retain", "--dry-run", "--json", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)
    assert (
        planned["dry_run"] is True and planned["files_removed"] == 11 and planned["kept_without_archive"] == 1
    )
    assert all(Path(r["local_file_path"]).is_file() for r in store.list_media()) and audit(store) == []

    result = manage(env, "retain", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    done = json.loads(result.stdout)
    assert (done["files_removed"], done["bytes_freed"]) == (11, planned["bytes_freed"]) and done[
        "bytes_freed"
    ] > 0
    rows = store.list_media()
    kept = store.get_media(document["media_id"])
    assert kept["evicted_at"] is None and Path(kept["local_file_path"]).is_file()
    gone = [r for r in rows if r["media_id"] != document["media_id"]]
    assert all(r["evicted_at"] and not Path(r["local_file_path"]).exists() for r in gone)
    entries = audit(store)
    assert {e["media_id"] for e in entries} == {r["media_id"] for r in gone}
    assert {(e["action"], e["reason"]) for e in entries} == {("file_deleted", "retention")}
    assert entries[0]["details"]["retention_days"] == 3
    again = json.loads(manage(env, "retain", "--json", cwd=tmp_path).stdout)
    assert again["files_removed"] == 0  # nothing left to do


# the audit log --------------------------------------------------------------------------------------


def test_every_presigned_url_is_in_the_audit_log_with_who_when_and_the_object(
    store, s3_settings, s3_env, samples_dir, served, tmp_path
):
    downloaded(store, s3_settings, samples_dir)
    assert manage(s3_env, "archive", "--all", cwd=tmp_path).returncode == 0
    row = store.list_media()[0]
    result = manage(s3_env, "url", row["media_id"], "--expires", "600", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    listed = manage(s3_env, "audit", "--media-id", row["media_id"], "--format", "jsonl", cwd=tmp_path)
    [entry] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (entry["action"], entry["media_id"], entry["target"]) == (
        "presigned_url",
        row["media_id"],
        row["archive_url"],
    )
    assert entry["details"] == {"expires_seconds": 600} and entry["actor_user"] and entry["actor_host"]
    assert "X-Amz-Signature" not in listed.stdout  # the link itself is never stored
    today = datetime.now(UTC).date()
    assert entry["occurred_at"].startswith(today.isoformat())
    later = manage(
        s3_env, "audit", "--since", (today + timedelta(days=1)).isoformat(), "--json", cwd=tmp_path
    )
    assert json.loads(later.stdout) == []


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_repair_audits_the_corrupt_and_stray_files_it_deletes(
    store, settings, cli_env, samples_dir, served, tmp_path
):
    downloaded(store, settings, samples_dir)
    victim = store.list_media()[0]
    Path(victim["local_file_path"]).write_bytes(b"not the bytes it was")
    stray = settings.cache_dir / "images" / ("f" * 32 + ".jpg")
    stray.write_bytes(b"\xff\xd8\xff nobody's")
    old = datetime.now().timestamp() - 3600
    import os

    os.utime(stray, (old, old))
    result = manage(cli_env, "verify-cache", "--repair", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    reasons = {(e["reason"], e["media_id"], e["target"]) for e in audit(store)}
    assert ("repair_stray", None, str(stray.resolve())) in reasons
    assert any(r == "repair_corrupt" and m == victim["media_id"] for r, m, _ in reasons)


# stats ------------------------------------------------------------------------------------------------


def test_stats_reports_success_and_cache_hit_rates_download_times_failures_and_queues(
    store, settings, cli_env, samples_dir, served, tmp_path, monkeypatch
):
    monkeypatch.setattr(served, "latency", 0.02)  # every fetch takes measurable time
    first = import_path(store, scrape(samples_dir, 1)).media_ids
    gone = store.get_media(first[0])
    store.update_media(
        gone["media_id"], {"media_url": gone["media_url"].replace(served.base_url, f"{served.base_url}/gone")}
    )
    report = download_pending(store, settings, media_ids=first)
    assert report.failed == 1
    stats = json.loads(manage(cli_env, "stats", "--json", cwd=tmp_path).stdout)
    succeeded = report.downloaded
    assert stats["downloads_succeeded"] == {"window": succeeded, "all_time": succeeded}
    assert stats["downloads_failed"]["all_time"] == 1
    assert stats["download_success_rate"]["window"] == round(succeeded / (succeeded + 1), 4)
    assert stats["cache_hit_rate"]["all_time"] == round(report.reused / succeeded, 4)
    assert stats["download_failures_by_kind"]["all_time"] == {gone_kind(store, gone["media_id"]): 1}
    assert stats["download_p95_ms"]["all_time"] >= stats["download_mean_ms"]["all_time"] * 0.5 >= 10
    assert stats["download_bytes_per_second"]["all_time"] > 0
    # a 404 waits for --retry-failed, not in the download queue; each downloaded file waits for its text
    assert stats["queue_depth"] == {
        "download": 0,
        "text": succeeded,
        "analysis": succeeded,
        "archive": succeeded,
    }
    assert (stats["s3_objects"], stats["s3_bytes"], stats["s3_monthly_cost_usd"]) == (0, 0, 0.0)
    future = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    later = json.loads(manage(cli_env, "stats", "--since", future, "--json", cwd=tmp_path).stdout)
    assert later["since"] == future and later["downloads_succeeded"]["window"] == 0
    assert later["download_success_rate"] == {
        "window": None,
        "all_time": stats["download_success_rate"]["all_time"],
    }


def gone_kind(store, media_id: str) -> str:
    return store.get_media(media_id)["download_error_kind"]


def test_stats_by_author_post_and_month_sum_the_analyses_cost(
    store, settings, cli_env, samples_dir, served, tmp_path
):
    from social_tui_media.store.interface import make_event

    ids = import_path(store, scrape(samples_dir, 1)).media_ids
    rows = [store.get_media(i) for i in ids[:3]]
    for row, cost in zip(rows, (0.5, 0.25, 0.125), strict=True):
        details = {"tokens_used": {"prompt": 100, "completion": 10, "total": 110}, "estimated_cost_usd": cost}
        store.append_event(row["media_id"], make_event("ai_analysis_completed", details=details, model="m"))
    month = datetime.now(UTC).strftime("%Y-%m")
    by_month = json.loads(manage(cli_env, "stats", "--by", "month", "--json", cwd=tmp_path).stdout)
    assert by_month == [
        {"month": month, "analyses": 3, "prompt_tokens": 300, "completion_tokens": 30, "cost_usd": 0.875,
         "analyses_since": 3, "cost_usd_since": 0.875}
    ]  # fmt: skip
    by_post = json.loads(manage(cli_env, "stats", "--by", "post", "--json", cwd=tmp_path).stdout)
    expected: dict[str, float] = {}
    for row, cost in zip(rows, (0.5, 0.25, 0.125), strict=True):
        expected[row["post_id"]] = expected.get(row["post_id"], 0) + cost
    assert {r["post"]: r["cost_usd"] for r in by_post} == expected
    by_author = manage(
        cli_env, "stats", "--by", "author", "--format", "tsv", cwd=tmp_path
    ).stdout.splitlines()
    assert sum(float(line.split("\t")[4]) for line in by_author) == 0.875
