"""media_archive against moto's S3 server over real HTTP on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
import re
import select
import socket
import socketserver
import stat
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

import media_archive  # the root module the spec names
from social_tui_media.media.s3_archive import (
    TRANSITION_RULE_ID,
    Archive,
    ArchiveConfigError,
    ArchivedObject,
    ArchiveError,
    LocalFileCorrupt,
    generate_s3_key,
    parse_s3_url,
)
from social_tui_media.settings import Settings

MIB = 1024 * 1024
REGION = "us-east-1"
WHEN = datetime(2025, 3, 7, 12, 0, tzinfo=UTC)

_AWS_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_S3_BUCKET",
    "AWS_S3_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
)


# -- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def endpoint(s3_endpoint: str) -> str:
    return s3_endpoint


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials only; no profile files, no instance metadata: nothing leaves loopback."""
    for name in _AWS_VARS:
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "empty-aws-config"
    empty.write_text("")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@pytest.fixture(scope="module")
def s3(endpoint: str):
    """A plain boto3 client to arrange and inspect the server independently of the archive."""
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing").client(
        "s3", region_name=REGION, endpoint_url=endpoint
    )


@pytest.fixture
def bucket(s3) -> str:
    name = f"archive-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def make_settings(endpoint: str, bucket: str | None, region: str = REGION) -> Settings:
    return Settings(s3_bucket=bucket, s3_region=region, s3_endpoint_url=endpoint)


@pytest.fixture
def archive(endpoint: str, bucket: str) -> Archive:
    return Archive(make_settings(endpoint, bucket), retry_wait=0.01)


def write_media(path: Path, size: int) -> tuple[bytes, str]:
    data = os.urandom(size)
    path.write_bytes(data)
    return data, hashlib.md5(data).hexdigest()


def object_exists(s3, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "404"
        return False
    return True


# -- keys and URLs -------------------------------------------------------------------------


def test_generate_s3_key_is_media_year_month_id_and_lowercase_extension():
    assert generate_s3_key("med-abc123", ".JPG", WHEN) == "media/2025/03/med-abc123.jpg"
    assert generate_s3_key("med-abc123", "mp4", WHEN) == "media/2025/03/med-abc123.mp4"


def test_generate_s3_key_uses_utc_month():
    half_past_midnight_at_utc_plus_2 = datetime(2025, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    assert generate_s3_key("med-x", "png", half_past_midnight_at_utc_plus_2) == "media/2024/12/med-x.png"


def test_generate_s3_key_defaults_to_now():
    now = datetime.now(UTC)
    assert generate_s3_key("med-x", "png") == f"media/{now:%Y}/{now:%m}/med-x.png"


@pytest.mark.parametrize(("media_id", "extension"), [("../etc", "jpg"), ("med/x", "jpg"), ("med-x", "")])
def test_generate_s3_key_rejects_ids_and_extensions_unsafe_in_a_key(media_id, extension):
    with pytest.raises(ValueError):
        generate_s3_key(media_id, extension, WHEN)


def test_parse_s3_url_splits_bucket_and_key_and_rejects_anything_else():
    assert parse_s3_url("s3://b/media/2025/03/m.jpg") == ("b", "media/2025/03/m.jpg")
    for bad in ("https://b.s3.amazonaws.com/k", "s3://b", "s3:///k", "s3://b/"):
        with pytest.raises(ArchiveError):
            parse_s3_url(bad)


# -- upload, verify, restore ---------------------------------------------------------------


def test_upload_then_restore_round_trips_the_bytes(archive, s3, bucket, tmp_path):
    data, md5 = write_media(tmp_path / "a.jpg", 300_000)

    archived = archive.upload(tmp_path / "a.jpg", "med-roundtrip", md5, "jpg", when=WHEN)

    assert archived == ArchivedObject(
        s3_url=f"s3://{bucket}/media/2025/03/med-roundtrip.jpg",
        key="media/2025/03/med-roundtrip.jpg",
        bytes=len(data),
        verified=True,
        reused=False,
    )
    dest = tmp_path / "restored" / "copy.jpg"
    archive.restore(archived.s3_url, dest, md5)
    assert dest.read_bytes() == data
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert [p.name for p in dest.parent.iterdir()] == ["copy.jpg"]


def test_uploaded_object_is_private_and_carries_its_md5(archive, s3, bucket, tmp_path):
    _, md5 = write_media(tmp_path / "a.png", 10_000)
    archived = archive.upload(tmp_path / "a.png", "med-private", md5, "png", when=WHEN)

    head = s3.head_object(Bucket=bucket, Key=archived.key)
    assert head["Metadata"] == {"md5": md5}
    assert head["ContentType"] == "image/png"
    grantees = [
        g["Grantee"].get("URI", "") for g in s3.get_object_acl(Bucket=bucket, Key=archived.key)["Grants"]
    ]
    assert not [uri for uri in grantees if "AllUsers" in uri or "AuthenticatedUsers" in uri]


def test_uploading_the_same_bytes_again_reuses_the_object(archive, tmp_path):
    _, md5 = write_media(tmp_path / "a.jpg", 1000)
    first = archive.upload(tmp_path / "a.jpg", "med-twice", md5, "jpg", when=WHEN)
    second = archive.upload(tmp_path / "a.jpg", "med-twice", md5, "jpg", when=WHEN)
    assert (first.reused, second.reused) == (False, True)
    assert second.s3_url == first.s3_url and second.verified


@pytest.mark.parametrize("size", [50_000, 6 * MIB], ids=["single-put", "multipart"])
def test_file_corrupted_after_hashing_is_refused_and_nothing_is_stored(endpoint, s3, bucket, tmp_path, size):
    archive = Archive(
        make_settings(endpoint, bucket),
        multipart_threshold=5 * MIB + 1,
        multipart_chunksize=5 * MIB,
    )
    path = tmp_path / "a.jpg"
    data, md5 = write_media(path, size)
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # one flipped byte on disk

    with pytest.raises(LocalFileCorrupt, match=md5):
        archive.upload(path, "med-corrupt", md5, "jpg", when=WHEN)

    assert not object_exists(s3, bucket, "media/2025/03/med-corrupt.jpg")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_multipart_upload_verifies_through_md5_metadata(endpoint, s3, bucket, tmp_path):
    archive = Archive(
        make_settings(endpoint, bucket),
        multipart_threshold=5 * MIB + 1,
        multipart_chunksize=5 * MIB,
    )
    data, md5 = write_media(tmp_path / "clip.mp4", 6 * MIB)

    archived = archive.upload(tmp_path / "clip.mp4", "med-big", md5, "mp4", when=WHEN)

    head = s3.head_object(Bucket=bucket, Key=archived.key)
    assert head["ETag"].strip('"').endswith("-2")  # two parts: 5 MiB + 1 MiB
    assert head["Metadata"]["md5"] == md5
    assert archived.verified and archived.bytes == len(data)
    assert archive.verify(archived.s3_url, md5, expected_size=len(data))
    dest = tmp_path / "back.mp4"
    archive.restore(archived.s3_url, dest, md5)
    assert hashlib.md5(dest.read_bytes()).hexdigest() == md5


def test_verify_is_false_for_a_wrong_md5_a_wrong_size_and_a_missing_object(archive, bucket, tmp_path):
    data, md5 = write_media(tmp_path / "a.jpg", 2000)
    archived = archive.upload(tmp_path / "a.jpg", "med-verify", md5, "jpg", when=WHEN)

    assert archive.verify(archived.s3_url, md5, expected_size=len(data)) is True
    assert archive.verify(archived.s3_url, hashlib.md5(b"other").hexdigest()) is False
    assert archive.verify(archived.s3_url, md5, expected_size=len(data) + 1) is False
    assert archive.verify(f"s3://{bucket}/media/2025/03/med-missing.jpg", md5) is False


def test_verify_accepts_a_plain_etag_without_metadata(archive, s3, bucket):
    s3.put_object(Bucket=bucket, Key="media/2025/03/old.jpg", Body=b"legacy bytes")
    assert archive.verify(f"s3://{bucket}/media/2025/03/old.jpg", hashlib.md5(b"legacy bytes").hexdigest())


def test_restore_of_corrupt_remote_content_raises_and_leaves_no_file(archive, s3, bucket, tmp_path):
    s3.put_object(Bucket=bucket, Key="media/2025/03/bad.jpg", Body=b"not what was archived")
    dest_dir = tmp_path / "cache"
    dest_dir.mkdir()
    dest = dest_dir / "bad.jpg"

    with pytest.raises(ArchiveError, match="not restored"):
        archive.restore(
            f"s3://{bucket}/media/2025/03/bad.jpg",
            dest,
            hashlib.md5(b"the original").hexdigest(),
        )

    assert list(dest_dir.iterdir()) == []


def test_restore_of_a_missing_object_raises_archive_error(archive, bucket, tmp_path):
    with pytest.raises(ArchiveError, match="NoSuchKey"):
        archive.restore(f"s3://{bucket}/media/2025/03/none.jpg", tmp_path / "x.jpg", "0" * 32)
    assert not (tmp_path / "x.jpg").exists()


def test_presigned_url_fetches_the_object_with_plain_http(archive, tmp_path):
    data, md5 = write_media(tmp_path / "a.webp", 40_000)
    archived = archive.upload(tmp_path / "a.webp", "med-share", md5, "webp", when=WHEN)

    url = archive.presigned_url(archived.s3_url, expires=300)

    assert "X-Amz-Signature=" in url and "X-Amz-Expires=300" in url
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == data


def test_presigned_url_rejects_expiry_beyond_seven_days(archive, bucket):
    with pytest.raises(ValueError):
        archive.presigned_url(f"s3://{bucket}/k", expires=8 * 24 * 3600)


# -- bucket set-up ------------------------------------------------------------------------


def test_setup_bucket_creates_a_private_encrypted_bucket_and_is_idempotent(endpoint, s3):
    name = f"setup-{uuid.uuid4().hex[:12]}"
    archive = Archive(make_settings(endpoint, name))

    first = archive.setup_bucket()
    second = archive.setup_bucket()

    assert first[0] == f"created bucket '{name}' in us-east-1"
    assert second[0] == f"bucket '{name}' exists"
    assert second[1].startswith("public access already blocked")
    assert second[2].startswith("default encryption already on (AES256)")
    block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    rules = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    archive.check_access()  # the bucket now exists and is reachable


def test_setup_bucket_outside_us_east_1_sets_the_location_constraint(endpoint, s3):
    name = f"setup-eu-{uuid.uuid4().hex[:12]}"
    Archive(make_settings(endpoint, name, region="eu-west-1")).setup_bucket()
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == "eu-west-1"


def lifecycle(s3, bucket: str) -> dict[str, dict]:
    return {rule["ID"]: rule for rule in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}


def test_setup_bucket_adds_the_lifecycle_rules_keeps_the_users_and_is_idempotent(endpoint, s3, bucket):
    users = {
        "ID": "users-own-expiry", "Status": "Enabled", "Filter": {"Prefix": "tmp/"},
        "Expiration": {"Days": 3},
    }  # fmt: skip
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [users]})
    archive = Archive(replace(make_settings(endpoint, bucket), archive_transition_days=120))

    first, second = archive.setup_bucket(), archive.setup_bucket()

    assert first[-1] == "archive copies move to GLACIER_IR after 120 days"
    assert second[-2:] == [
        "incomplete multipart uploads already expire",
        "archive copies move to GLACIER_IR after 120 days (already set)",
    ]
    rules = lifecycle(s3, bucket)
    assert set(rules) == {"users-own-expiry", "social-tui-abort-incomplete-multipart", TRANSITION_RULE_ID}
    assert rules["users-own-expiry"]["Expiration"] == {"Days": 3}
    assert rules["social-tui-abort-incomplete-multipart"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 7
    }
    assert rules[TRANSITION_RULE_ID]["Transitions"] == [{"Days": 120, "StorageClass": "GLACIER_IR"}]
    assert rules[TRANSITION_RULE_ID]["Filter"] == {"Prefix": "media/"}


def test_setup_bucket_follows_a_changed_transition_and_removes_it_at_zero_days(endpoint, s3, bucket):
    settings = make_settings(endpoint, bucket)
    Archive(settings).setup_bucket()
    assert lifecycle(s3, bucket)[TRANSITION_RULE_ID]["Transitions"] == [
        {"Days": 90, "StorageClass": "GLACIER_IR"}
    ]
    moved = Archive(replace(settings, archive_transition_days=30, archive_storage_class="STANDARD_IA"))
    assert moved.setup_bucket()[-1] == "archive copies move to STANDARD_IA after 30 days"
    assert lifecycle(s3, bucket)[TRANSITION_RULE_ID]["Transitions"] == [
        {"Days": 30, "StorageClass": "STANDARD_IA"}
    ]
    off = Archive(replace(settings, archive_transition_days=0)).setup_bucket()
    assert off[-1] == "removed the storage class transition (MEDIA_ARCHIVE_TRANSITION_DAYS=0)"
    assert set(lifecycle(s3, bucket)) == {"social-tui-abort-incomplete-multipart"}


# -- configuration errors -------------------------------------------------------------------


def test_bucket_unset_is_a_configuration_error(endpoint, tmp_path):
    archive = Archive(make_settings(endpoint, None))
    (tmp_path / "a.jpg").write_bytes(b"x")
    with pytest.raises(ArchiveConfigError, match="^AWS_S3_BUCKET is not set: set it in .env"):
        archive.check_access()
    with pytest.raises(ArchiveConfigError, match="AWS_S3_BUCKET is not set"):
        archive.upload(tmp_path / "a.jpg", "med-x", hashlib.md5(b"x").hexdigest(), "jpg")
    with pytest.raises(ArchiveConfigError, match="AWS_S3_BUCKET is not set"):
        archive.setup_bucket()


def test_missing_credentials_are_a_configuration_error(endpoint, bucket, monkeypatch, tmp_path):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    archive = Archive(make_settings(endpoint, bucket))
    _, md5 = write_media(tmp_path / "a.jpg", 100)

    with pytest.raises(ArchiveConfigError, match="^no AWS credentials found: set AWS_ACCESS_KEY_ID"):
        archive.check_access()
    with pytest.raises(ArchiveConfigError, match="no AWS credentials found"):
        archive.upload(tmp_path / "a.jpg", "med-x", md5, "jpg")
    with pytest.raises(ArchiveConfigError, match="no AWS credentials found"):
        archive.presigned_url(f"s3://{bucket}/k")


def test_missing_bucket_is_a_configuration_error(endpoint, tmp_path):
    name = f"missing-{uuid.uuid4().hex[:12]}"
    archive = Archive(make_settings(endpoint, name))
    _, md5 = write_media(tmp_path / "a.jpg", 100)
    expected = f"^bucket '{name}' does not exist: run `python manage_media.py setup-bucket`$"

    with pytest.raises(ArchiveConfigError, match=expected):
        archive.check_access()
    with pytest.raises(ArchiveConfigError, match=expected):
        archive.upload(tmp_path / "a.jpg", "med-x", md5, "jpg")


def test_unreachable_endpoint_is_a_configuration_error(bucket):
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    archive = Archive(make_settings(f"http://127.0.0.1:{port}", bucket), max_attempts=1)
    with pytest.raises(ArchiveConfigError, match="^cannot reach http://127.0.0.1"):
        archive.check_access()


def make_iam_user(endpoint: str, bucket: str, actions: list[str]) -> tuple[str, str]:
    """A moto IAM user allowed `actions` on the bucket; returns its access key pair."""
    iam = boto3.session.Session().client("iam", region_name=REGION, endpoint_url=endpoint)
    name = f"user-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=name)
    if actions:
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": actions,
                    "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                }
            ],
        }
        iam.put_user_policy(UserName=name, PolicyName="archive", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


@pytest.fixture
def enforce_iam(endpoint: str) -> Iterator[Callable[[], None]]:
    """Call to make moto check signatures and IAM policies; always switched off afterwards."""

    def enable() -> None:
        requests.post(f"{endpoint}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()

    try:
        yield enable
    finally:
        requests.post(f"{endpoint}/moto-api/reset-auth", data=b"inf", timeout=10).raise_for_status()


def test_access_denied_is_a_configuration_error(endpoint, bucket, monkeypatch, tmp_path, enforce_iam):
    # moto authorises HEAD bucket as "s3:HeadBucket"; real S3 wants s3:ListBucket.
    reader = make_iam_user(endpoint, bucket, ["s3:ListBucket", "s3:HeadBucket", "s3:GetObject"])
    nobody = make_iam_user(endpoint, bucket, [])
    _, md5 = write_media(tmp_path / "a.jpg", 100)
    expected = (
        "^"
        + re.escape(
            f"access denied to bucket '{bucket}': check the credentials' s3:PutObject/GetObject rights"
        )
        + "$"
    )
    enforce_iam()

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", nobody[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", nobody[1])
    with pytest.raises(ArchiveConfigError, match=expected):
        Archive(make_settings(endpoint, bucket)).check_access()

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", reader[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", reader[1])
    archive = Archive(make_settings(endpoint, bucket))
    archive.check_access()  # may see the bucket, may not write to it
    with pytest.raises(ArchiveConfigError, match=expected):
        archive.upload(tmp_path / "a.jpg", "med-denied", md5, "jpg", when=WHEN)


# -- retries --------------------------------------------------------------------------------


class HangUpProxy:
    """A loopback TCP proxy to moto that hangs up, unanswered, on the first `drop` connections."""

    def __init__(self, upstream_port: int, drop: int) -> None:
        self.drop = drop
        self.dropped = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with proxy._lock:
                    hang_up = proxy.dropped < proxy.drop
                    proxy.dropped += hang_up
                if hang_up:
                    self.request.recv(65536)  # take the request, close without a response
                    return
                with socket.create_connection(("127.0.0.1", upstream_port)) as upstream:
                    pump(self.request, upstream)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def pump(a: socket.socket, b: socket.socket) -> None:
    while True:
        readable, _, _ = select.select([a, b], [], [])
        for sock in readable:
            data = sock.recv(65536)
            if not data:
                return
            (b if sock is a else a).sendall(data)


@pytest.fixture
def hang_up_proxy(endpoint: str) -> Iterator[Callable[[int], HangUpProxy]]:
    proxies: list[HangUpProxy] = []

    def start(drop: int) -> HangUpProxy:
        proxies.append(HangUpProxy(int(endpoint.rsplit(":", 1)[1]), drop))
        return proxies[-1]

    yield start
    for proxy in proxies:
        proxy.close()


def test_connection_dropped_after_botocore_gives_up_is_retried(hang_up_proxy, s3, bucket, tmp_path):
    proxy = hang_up_proxy(1)
    # max_attempts=1: botocore does not retry, so only the tenacity layer can recover.
    archive = Archive(
        make_settings(proxy.url, bucket),
        max_attempts=1,
        upload_attempts=3,
        retry_wait=0.01,
    )
    data, md5 = write_media(tmp_path / "a.jpg", 20_000)

    archived = archive.upload(tmp_path / "a.jpg", "med-flaky", md5, "jpg", when=WHEN)

    assert proxy.dropped == 1
    assert archived.verified
    assert s3.get_object(Bucket=bucket, Key=archived.key)["Body"].read() == data


def test_connection_errors_give_up_after_the_configured_attempts(hang_up_proxy, s3, bucket, tmp_path):
    proxy = hang_up_proxy(100)
    archive = Archive(
        make_settings(proxy.url, bucket),
        max_attempts=1,
        upload_attempts=3,
        retry_wait=0.01,
    )
    _, md5 = write_media(tmp_path / "a.jpg", 20_000)

    with pytest.raises(ArchiveError, match="upload of med-down .* failed"):
        archive.upload(tmp_path / "a.jpg", "med-down", md5, "jpg", when=WHEN)

    assert proxy.dropped == 3
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


# -- the spec's module-level functions ---------------------------------------------------------


def test_module_functions_archive_and_verify_with_settings_from_the_environment(
    endpoint, bucket, monkeypatch, tmp_path
):
    monkeypatch.chdir(tmp_path)  # no developer .env is loaded
    monkeypatch.setenv("AWS_S3_BUCKET", bucket)
    monkeypatch.setenv("AWS_S3_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    data, md5 = write_media(tmp_path / "photo.JPG", 5000)

    s3_url = media_archive.upload_to_s3(tmp_path / "photo.JPG", "med-module")

    assert re.fullmatch(rf"s3://{bucket}/media/\d{{4}}/\d{{2}}/med-module\.jpg", s3_url)
    assert media_archive.verify_s3_upload(s3_url, md5) is True
    assert media_archive.verify_s3_upload(s3_url, hashlib.md5(data + b"!").hexdigest()) is False
