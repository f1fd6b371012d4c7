"""The archive end to end: `archive`, `url`, `setup-bucket` and restores, through the CLIs and
the real boto3 client against moto's S3 server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import boto3
import pytest
import requests

from social_tui_media.jobs.archive import archivable_rows, archive_rows, plan_archive
from social_tui_media.jobs.download import download_pending
from social_tui_media.jobs.evict import evict_lru
from social_tui_media.jobs.import_posts import import_path
from social_tui_media.media.cache import MediaCache, calculate_md5
from social_tui_media.media.s3_archive import Archive
from tests.conftest import ROOT, scrape

REGION = "us-east-1"


@pytest.fixture(autouse=True)
def aws_env(aws_test_env):
    return aws_test_env


@pytest.fixture
def s3(s3_endpoint):
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing").client(
        "s3", region_name=REGION, endpoint_url=s3_endpoint
    )


@pytest.fixture
def bucket(s3) -> str:
    name = f"archive-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_settings(settings, s3_endpoint, bucket):
    return replace(settings, s3_bucket=bucket, s3_region=REGION, s3_endpoint_url=s3_endpoint)


@pytest.fixture
def s3_env(cli_env, s3_endpoint, bucket, tmp_path):
    env = dict(cli_env)
    env.update({k: v for k, v in os.environ.items() if k.startswith("AWS_")})
    env.update(AWS_S3_BUCKET=bucket, AWS_S3_REGION=REGION, AWS_ENDPOINT_URL=s3_endpoint)
    return env


def manage(env, *args, cwd):
    return subprocess.run(
        [sys.executable, str(ROOT / "manage_media.py"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )


def downloaded(store, settings, samples_dir):
    report = import_path(store, scrape(samples_dir, 1))
    assert download_pending(store, settings, media_ids=report.media_ids).failed == 0


def counting_archive(settings) -> tuple[Archive, list[str]]:
    archive = Archive(settings, retry_wait=0.01)
    calls: list[str] = []
    for operation in ("PutObject", "CreateMultipartUpload"):
        archive._client.meta.events.register(
            f"before-call.s3.{operation}", lambda model, **_: calls.append(model.name)
        )
    return archive, calls


def test_archive_all_uploads_each_file_once_verified_and_rerun_makes_no_put(
    store, s3_settings, s3_env, samples_dir, served, s3, bucket, tmp_path
):
    downloaded(store, s3_settings, samples_dir)
    result = manage(s3_env, "archive", "--all", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = store.list_media()
    assert all(r["archive_url"] and r["archive_url"].startswith(f"s3://{bucket}/media/") for r in rows)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert len(keys) == 12  # 13 rows, two of them the same bytes: stored once
    for row in rows:
        key = row["archive_url"].split("/", 3)[3]
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.md5(body).hexdigest() == row["md5_sum"]
        event = row["ai_analysis_log"][-1]
        assert event["event"] == "media_archived" and event["details"]["verified"] is True
        assert event["details"]["key"] == key
    archive, puts = counting_archive(s3_settings)
    report = archive_rows(store, archive, plan_archive(store, archivable_rows(store)))
    assert puts == [] and report.uploaded == 0
    again = manage(s3_env, "archive", "--all", cwd=tmp_path)
    assert again.returncode == 0 and len(s3.list_objects_v2(Bucket=bucket)["Contents"]) == 12


def test_content_archived_under_another_row_is_reused(store, s3_settings, samples_dir, served):
    downloaded(store, s3_settings, samples_dir)
    rows = store.list_media()
    first = next(r for r in rows if "DECA26941BC5187" in r["slot_key"])
    twin = next(r for r in rows if "DBC469CC94C4B47" in r["slot_key"])
    archive, puts = counting_archive(s3_settings)
    archive_rows(store, archive, plan_archive(store, archivable_rows(store, media_id=first["media_id"])))
    assert len(puts) == 1
    report = archive_rows(
        store, archive, plan_archive(store, archivable_rows(store, media_id=twin["media_id"]))
    )
    assert len(puts) == 1 and report.reused == 1
    assert (
        store.get_media(twin["media_id"])["archive_url"] == store.get_media(first["media_id"])["archive_url"]
    )


def test_file_corrupted_after_download_is_reported_not_uploaded(
    store, s3_settings, s3_env, samples_dir, served, s3, bucket, tmp_path
):
    downloaded(store, s3_settings, samples_dir)
    video = next(r for r in store.list_media() if r["media_type"] == "video")
    Path(video["local_file_path"]).write_bytes(b"bit rot")
    result = manage(s3_env, "archive", "--media-id", video["media_id"], cwd=tmp_path)
    assert result.returncode == 1 and video["media_id"] in result.stderr
    assert store.get_media(video["media_id"])["archive_url"] is None
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_dry_run_lists_files_and_total_bytes_and_sends_nothing(
    store, s3_settings, s3_env, samples_dir, served, s3, bucket, tmp_path
):
    downloaded(store, s3_settings, samples_dir)
    result = manage(s3_env, "archive", "--all", "--dry-run", "--json", cwd=tmp_path)
    total = sum(p.stat().st_size for p in MediaCache(s3_settings.cache_dir).cached_files())
    summary = json.loads(result.stdout)
    assert result.returncode == 0 and (summary["files_to_upload"], summary["bytes_to_upload"]) == (12, total)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_presigned_url_fetches_the_object(store, s3_settings, s3_env, samples_dir, served, tmp_path):
    downloaded(store, s3_settings, samples_dir)
    assert manage(s3_env, "archive", "--all", cwd=tmp_path).returncode == 0
    row = store.list_media()[0]
    result = manage(s3_env, "url", row["media_id"], "--expires", "600", cwd=tmp_path)
    assert result.returncode == 0
    url = result.stdout.strip()
    assert url.startswith("http://127.0.0.1") and "X-Amz-Expires=600" in url
    body = requests.get(url, timeout=10).content
    assert hashlib.md5(body).hexdigest() == row["md5_sum"]


@pytest.mark.parametrize(
    "store_kind", ["sqlite"]
)  # what it prints; the back ends are the conformance suite's
def test_url_of_unarchived_row_says_what_to_run(store, s3_settings, s3_env, samples_dir, served, tmp_path):
    downloaded(store, s3_settings, samples_dir)
    row = store.list_media()[0]
    result = manage(s3_env, "url", row["media_id"], cwd=tmp_path)
    assert result.returncode == 2 and f"archive --media-id {row['media_id']}" in result.stderr


def test_restore_brings_back_deleted_cache_file_without_the_cdn(
    store, s3_settings, s3_env, samples_dir, served, tmp_path
):
    downloaded(store, s3_settings, samples_dir)
    assert manage(s3_env, "archive", "--all", cwd=tmp_path).returncode == 0
    document = next(r for r in store.list_media() if r["media_type"] == "document")
    Path(document["local_file_path"]).unlink()
    served.clear()
    result = manage(s3_env, "verify-cache", "--repair", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    restored = store.get_media(document["media_id"])
    assert calculate_md5(Path(restored["local_file_path"])) == document["md5_sum"]
    assert restored["ai_analysis_log"][-1]["details"]["source"] == "archive"
    assert served.requests == []


def test_evicted_file_is_restored_from_the_archive_when_needed(
    store, s3_settings, s3_env, samples_dir, served, tmp_path
):
    downloaded(store, s3_settings, samples_dir)
    assert manage(s3_env, "archive", "--all", cwd=tmp_path).returncode == 0
    from social_tui_media.jobs.archive import archive_verifier

    evict_lru(store, MediaCache(s3_settings.cache_dir), 0, archive_verifier(s3_settings))
    evicted = store.list_media()[0]
    assert evicted["evicted_at"] and not Path(evicted["local_file_path"]).exists()
    served.clear()
    report = download_pending(store, s3_settings, media_ids=[evicted["media_id"]])
    assert report.attempted == 0  # eviction is not undone by download-all
    from social_tui_media.jobs.archive import archive_restorer
    from social_tui_media.store.interface import requeue_for_download

    requeue_for_download(store, [evicted["media_id"]])
    report = download_pending(
        store, s3_settings, media_ids=[evicted["media_id"]], restorer=archive_restorer(s3_settings)
    )
    back = store.get_media(evicted["media_id"])
    assert report.downloaded == 1 and back["evicted_at"] is None
    assert calculate_md5(Path(back["local_file_path"])) == evicted["md5_sum"]
    assert served.requests == []


def test_setup_bucket_creates_private_encrypted_bucket_idempotently(s3_env, s3, tmp_path):
    name = f"fresh-{uuid.uuid4().hex[:10]}"
    env = dict(s3_env, AWS_S3_BUCKET=name)
    for _ in range(2):
        result = manage(env, "setup-bucket", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    rules = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    abort, transition = s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]  # added once, not twice
    assert abort["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert transition["Transitions"] == [{"Days": 90, "StorageClass": "GLACIER_IR"}]  # the defaults


def test_setup_bucket_keeps_the_users_own_lifecycle_rules(s3_env, s3, bucket, tmp_path):
    mine = {"ID": "to-glacier", "Status": "Enabled", "Filter": {"Prefix": "media/"},
            "Transitions": [{"Days": 90, "StorageClass": "GLACIER"}]}  # fmt: skip
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [mine]})
    assert manage(s3_env, "setup-bucket", cwd=tmp_path).returncode == 0
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert rules["to-glacier"]["Transitions"] == mine["Transitions"]
    assert (
        rules["social-tui-abort-incomplete-multipart"]["AbortIncompleteMultipartUpload"][
            "DaysAfterInitiation"
        ]
        == 7
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"AWS_S3_BUCKET": ""}, "AWS_S3_BUCKET is not set"),
        ({"AWS_S3_BUCKET": "no-such-bucket-here"}, "bucket 'no-such-bucket-here' does not exist"),
        ({"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}, "no AWS credentials found"),
    ],
)
@pytest.mark.parametrize(
    "store_kind", ["sqlite"]
)  # what it prints; the back ends are the conformance suite's
def test_archive_configuration_errors_exit_2_with_one_line(s3_env, tmp_path, change, message):
    env = {k: v for k, v in dict(s3_env, **change).items() if v != ""}
    result = manage(env, "archive", "--all", cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr


def test_archiving_a_small_file_is_one_put_verified_by_its_etag(
    store, s3_settings, samples_dir, served, s3, bucket
):
    downloaded(store, s3_settings, samples_dir)
    archive = Archive(s3_settings, retry_wait=0.01)
    calls: list[str] = []
    archive._client.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))
    row = next(r for r in store.list_media() if r["media_type"] == "document")
    report = archive_rows(
        store, archive, plan_archive(store, archivable_rows(store, media_id=row["media_id"]))
    )
    assert report.uploaded == 1 and calls == ["PutObject"]
    stored = store.get_media(row["media_id"])
    body = s3.get_object(Bucket=bucket, Key=stored["archive_url"].split("/", 3)[3])["Body"].read()
    assert hashlib.md5(body).hexdigest() == row["md5_sum"]


def _archived(store, s3_settings, s3_env, samples_dir, tmp_path) -> list[dict]:
    downloaded(store, s3_settings, samples_dir)
    assert manage(s3_env, "archive", "--all", cwd=tmp_path).returncode == 0
    return store.list_media()


def test_eviction_keeps_a_file_whose_archive_copy_no_longer_verifies(
    store, s3_settings, s3_env, samples_dir, served, s3, bucket, tmp_path
):
    from social_tui_media.jobs.archive import archive_verifier

    rows = _archived(store, s3_settings, s3_env, samples_dir, tmp_path)
    victim = rows[0]
    s3.put_object(Bucket=bucket, Key=victim["archive_url"].split("/", 3)[3], Body=b"not the file any more")
    report = evict_lru(store, MediaCache(s3_settings.cache_dir), 0, archive_verifier(s3_settings))
    kept = store.get_media(victim["media_id"])
    assert Path(kept["local_file_path"]).is_file() and kept["evicted_at"] is None
    assert kept["archive_url"] is None and kept["ai_analysis_log"][-1]["event"] == "media_archive_invalid"
    assert report.files_evicted == 11 and report.kept_without_archive == 1


def test_eviction_without_a_way_to_verify_keeps_every_file(
    store, s3_settings, s3_env, samples_dir, served, tmp_path
):
    _archived(store, s3_settings, s3_env, samples_dir, tmp_path)
    report = evict_lru(store, MediaCache(s3_settings.cache_dir), 0)
    assert report.files_evicted == 0 and report.kept_without_archive == 12


def test_restoring_a_corrupt_archive_copy_forgets_it_and_fetches_again(
    store, s3_settings, s3_env, samples_dir, served, s3, bucket, tmp_path
):
    from social_tui_media.jobs.archive import archive_restorer
    from social_tui_media.store.interface import requeue_for_download

    victim = _archived(store, s3_settings, s3_env, samples_dir, tmp_path)[0]
    key = victim["archive_url"].split("/", 3)[3]
    s3.put_object(
        Bucket=bucket, Key=key, Body=b"garbage", Metadata={"md5": victim["md5_sum"]}
    )  # HEAD still agrees
    Path(victim["local_file_path"]).unlink()
    requeue_for_download(store, [victim["media_id"]], forget_path=True)
    report = download_pending(
        store,
        s3_settings,
        media_ids=[victim["media_id"]],
        restorer=archive_restorer(s3_settings, store=store),
    )
    row = store.get_media(victim["media_id"])
    assert report.downloaded == 1 and row["archive_url"] is None
    assert calculate_md5(Path(row["local_file_path"])) == victim["md5_sum"]  # fetched from the CDN instead
    assert "media_archive_invalid" in [e["event"] for e in row["ai_analysis_log"]]


def test_repair_and_eviction_never_touch_a_file_outside_the_cache(
    store, settings, cli_env, samples_dir, served, tmp_path
):
    downloaded(store, settings, samples_dir)
    precious = tmp_path / "precious.txt"
    precious.write_text("not media")
    victim = store.list_media()[0]
    store.update_media(victim["media_id"], {"local_file_path": str(precious), "md5_sum": "0" * 32})
    report = evict_lru(store, MediaCache(settings.cache_dir), 0, force=True)
    assert precious.read_text() == "not media" and report.outside_cache == 1
    store.update_media(victim["media_id"], {"evicted_at": None})
    result = manage(cli_env, "verify-cache", "--repair", "--json", cwd=tmp_path)
    assert precious.read_text() == "not media"
    assert result.returncode == 0, result.stderr
    repaired = store.get_media(victim["media_id"])
    assert MediaCache(settings.cache_dir).confined(repaired["local_file_path"]) is not None


def test_stray_cache_files_are_reported_and_repair_removes_only_old_ones(
    store, settings, cli_env, samples_dir, served, tmp_path
):
    downloaded(store, settings, samples_dir)
    images = settings.cache_dir / "images"
    old, fresh = images / ("a" * 32 + ".jpg"), images / ("b" * 32 + ".jpg")
    old.write_bytes(b"left by a crash long ago")
    fresh.write_bytes(b"a download about to be recorded")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    report = json.loads(manage(cli_env, "verify-cache", "--json", cwd=tmp_path).stdout)
    assert report["stray_files"] == [str(old)]
    assert manage(cli_env, "verify-cache", "--repair", cwd=tmp_path).returncode == 0
    assert not old.exists() and fresh.exists()
    assert all(Path(r["local_file_path"]).is_file() for r in store.list_media())
