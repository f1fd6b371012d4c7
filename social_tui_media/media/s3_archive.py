"""The S3 archive: private, encrypted, verified copies of cached media.

Objects live at `s3://$AWS_S3_BUCKET/media/{yyyy}/{mm}/{media_id}.{ext}` and carry their
MD5 in the user metadata `md5`, because the ETag of a multipart upload is not the file's
MD5. Nothing here trusts what it sends: local bytes are hashed before an upload, the store
is asked to check them (Content-MD5), the object is checked afterwards (HEAD), and a
restore is hashed before it is moved into place.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import logging
import mimetypes
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from s3transfer.utils import ChunksizeAdjuster
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from social_tui_media.settings import ConfigError, Settings, load_settings

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
DEFAULT_MULTIPART_THRESHOLD = 8 * MIB
DEFAULT_MULTIPART_CHUNKSIZE = 8 * MIB
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # SigV4 limit
ABORT_INCOMPLETE_DAYS = 7
TRANSITION_RULE_ID = "social-tui-archive-transition"
ARCHIVE_PREFIX = "media/"  # generate_s3_key's keys
_READ_BLOCK = MIB

_NO_BUCKET = "AWS_S3_BUCKET is not set: set it in .env to the archive bucket's name"
_NO_CREDENTIALS = (
    "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or configure a profile)"
)
_DENIED_CODES = {"AccessDenied", "403", "AllAccessDisabled", "AccountProblem"}
_BAD_KEY_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"}
_NOT_SUPPORTED_CODES = {"NotImplemented", "NotImplementedError", "MethodNotAllowed"}
# BadDigest: the body the store received did not match our Content-MD5 (corrupted in
# transit, or the file changed after it was hashed: the retry re-hashes and tells which).
_TRANSIENT_CODES = {"BadDigest", "RequestTimeout", "InternalError", "SlowDown"}
_MD5_RE = re.compile(r"[0-9a-f]{32}")
_MULTIPART_ETAG_RE = re.compile(r"([0-9a-f]{32})-(\d+)")
_MEDIA_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_EXTENSION_RE = re.compile(r"[a-z0-9]{1,10}")

T = TypeVar("T")


class ArchiveConfigError(ConfigError):
    """The archive cannot be used at all; the one-line message says what to set."""


class ArchiveError(Exception):
    """Uploading, verifying or restoring one item failed; the message says which and why."""


class ArchiveCopyCorrupt(ArchiveError):
    """The archived object's bytes no longer have the row's MD5: the copy must not be trusted."""


class LocalFileCorrupt(ArchiveError):
    """The local file no longer matches its recorded MD5, so it was not uploaded."""


@dataclass(frozen=True)
class ArchivedObject:
    s3_url: str
    key: str
    bytes: int
    verified: bool
    reused: bool


@dataclass(frozen=True)
class _LocalFile:
    """One hashing pass over a local file."""

    md5_sum: str
    size: int
    body: bytes | None  # the exact bytes hashed, kept for single-request uploads
    multipart_etag: str | None  # the ETag S3 computes for our part size, if multipart


def generate_s3_key(media_id: str, extension: str, when: datetime | None = None) -> str:
    """Return `media/{yyyy}/{mm}/{media_id}.{ext}` for `when` (UTC; default now)."""
    if not _MEDIA_ID_RE.fullmatch(media_id or ""):
        raise ValueError(f"media id {media_id!r} is not usable in an S3 key")
    ext = (extension or "").lstrip(".").lower()
    if not _EXTENSION_RE.fullmatch(ext):
        raise ValueError(f"extension {extension!r} must be 1-10 letters or digits")
    when = datetime.now(UTC) if when is None else when
    if when.tzinfo is not None:
        when = when.astimezone(UTC)  # naive datetimes are taken to be UTC already
    return f"media/{when:%Y}/{when:%m}/{media_id}.{ext}"


def parse_s3_url(s3_url: str) -> tuple[str, str]:
    """Split `s3://bucket/key` into (bucket, key); ArchiveError for anything else."""
    if isinstance(s3_url, str) and s3_url.startswith("s3://"):
        bucket, _, key = s3_url[len("s3://") :].partition("/")
        if bucket and key:
            return bucket, key
    raise ArchiveError(f"{s3_url!r} is not an s3://bucket/key URL")


def _normalise_md5(md5_sum: str) -> str:
    value = (md5_sum or "").strip().lower()
    if not _MD5_RE.fullmatch(value):
        raise ValueError(f"{md5_sum!r} is not an MD5 hex digest")
    return value


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _unwrap(exc: BaseException) -> BaseException:
    # upload_file re-raises a ClientError as S3UploadFailedError, keeping it as context.
    if isinstance(exc, S3UploadFailedError) and isinstance(exc.__context__, ClientError):
        return exc.__context__
    return exc


def _is_transient(exc: BaseException) -> bool:
    """True for failures worth another attempt after botocore's own retries gave up."""
    exc = _unwrap(exc)
    if isinstance(exc, BotoConnectionError | HTTPClientError | IncompleteReadError):
        return True
    return isinstance(exc, ClientError) and _error_code(exc) in _TRANSIENT_CODES


def _content_type(extension: str) -> str:
    return mimetypes.guess_type(f"x.{extension}")[0] or "application/octet-stream"


def _multipart_etag(part_digests: list[bytes]) -> str:
    """The ETag S3 gives a multipart object: MD5 of the parts' binary MD5s, dash, count."""
    return f"{hashlib.md5(b''.join(part_digests)).hexdigest()}-{len(part_digests)}"


class Archive:
    """One S3 bucket used as a media archive; thread-safe (boto3 clients are)."""

    def __init__(
        self,
        settings: Settings,
        client: Any = None,
        *,
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
        multipart_chunksize: int = DEFAULT_MULTIPART_CHUNKSIZE,
        max_concurrency: int = 4,
        workers: int | None = None,
        max_attempts: int = 5,
        upload_attempts: int = 3,
        retry_wait: float = 1.0,
    ) -> None:
        self._bucket = settings.s3_bucket
        self._endpoint_url = settings.s3_endpoint_url
        self._transition = (settings.archive_transition_days, settings.archive_storage_class)
        self._threshold = multipart_threshold
        self._chunksize = multipart_chunksize
        self._upload_attempts = upload_attempts
        self._retry_wait = retry_wait
        workers = workers or settings.max_concurrent
        # Each worker thread may run one multipart upload with max_concurrency parts
        # in flight, plus the HEAD that checks it.
        pool = max(10, workers * (max_concurrency + 1))
        self._transfer_config = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=multipart_chunksize,
            max_concurrency=max_concurrency,
            preferred_transfer_client="classic",  # our ETag check assumes its part size
        )
        if client is None:
            s3_options: dict[str, str] = {}
            if settings.s3_endpoint_url:
                # MinIO, Supabase Storage and IP endpoints need path-style addressing.
                s3_options["addressing_style"] = "path"
            botocore_config = Config(
                # total_max_attempts counts the first try; "max_attempts" would not.
                retries={"mode": "standard", "total_max_attempts": max_attempts},
                signature_version="s3v4",  # presigned URLs would otherwise be SigV2
                # Content-MD5 (single part) and per-part checks already guard the bytes;
                # a CRC32 on top costs ~0.7 CPU s per GB.
                request_checksum_calculation="when_required",
                max_pool_connections=pool,
                connect_timeout=10,
                read_timeout=60,
                s3=s3_options,
            )
            # A session of our own: the default session caches credentials process-wide.
            session = boto3.session.Session(region_name=settings.s3_region)
            client = session.client(
                "s3",
                endpoint_url=settings.s3_endpoint_url,
                config=botocore_config,
            )
        self._client = client

    @property
    def bucket(self) -> str:
        """The archive bucket (AWS_S3_BUCKET); ArchiveConfigError when unset."""
        if not self._bucket:
            raise ArchiveConfigError(_NO_BUCKET)
        return self._bucket

    @property
    def region(self) -> str:
        return self._client.meta.region_name or "us-east-1"

    # -- configuration -------------------------------------------------------------

    def check_access(self) -> None:
        """Raise ArchiveConfigError unless the bucket exists and the credentials reach it."""
        bucket = self.bucket
        try:
            self._client.head_bucket(Bucket=bucket)
        except (BotoCoreError, ClientError) as exc:
            raise self._config_error(exc, bucket) from exc
        logger.debug("archive bucket %s is reachable", bucket)

    def setup_bucket(self) -> list[str]:
        """Create the bucket if missing, private and encrypted; return what was done."""
        bucket = self.bucket
        try:
            actions = [
                self._ensure_bucket(bucket),
                self._unless_unsupported(
                    self._ensure_public_access_block,
                    bucket,
                    "public access blocks",
                    "make sure the bucket is private",
                ),
                self._unless_unsupported(
                    self._ensure_encryption,
                    bucket,
                    "default encryption",
                    "check how it encrypts data at rest",
                ),
                self._unless_unsupported(
                    self._ensure_multipart_cleanup,
                    bucket,
                    "lifecycle rules",
                    "abort stale multipart uploads by hand",
                ),
                self._unless_unsupported(
                    self._ensure_transition,
                    bucket,
                    "lifecycle transitions",
                    "older archive copies stay in their storage class",
                ),
            ]
        except (BotoCoreError, ClientError) as exc:
            raise self._config_error(exc, bucket) from exc
        for action in actions:
            logger.info("setup-bucket %s: %s", bucket, action)
        return actions

    def _ensure_bucket(self, bucket: str) -> str:
        try:
            self._client.head_bucket(Bucket=bucket)
            return f"bucket '{bucket}' exists"
        except ClientError as exc:
            if _error_code(exc) not in ("404", "NoSuchBucket"):
                raise
        params: dict[str, Any] = {"Bucket": bucket}
        if self.region != "us-east-1":  # us-east-1 rejects an explicit constraint
            params["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self._client.create_bucket(**params)
        except ClientError as exc:
            code = _error_code(exc)
            if code == "BucketAlreadyOwnedByYou":
                return f"bucket '{bucket}' exists"
            if code == "BucketAlreadyExists":
                raise ArchiveConfigError(
                    f"bucket name '{bucket}' belongs to another account: choose another AWS_S3_BUCKET"
                ) from exc
            raise
        self._client.get_waiter("bucket_exists").wait(
            Bucket=bucket, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
        )
        return f"created bucket '{bucket}' in {self.region}"

    def _unless_unsupported(
        self, ensure: Callable[[str], str], bucket: str, feature: str, advice: str
    ) -> str:
        """Apply one bucket setting; an endpoint without the feature gets a warning, not an error."""
        try:
            return ensure(bucket)
        except ClientError as exc:
            if _error_code(exc) not in _NOT_SUPPORTED_CODES:
                raise
            logger.warning("endpoint does not support %s: %s", feature, exc)
            return f"warning: this endpoint does not support {feature}; {advice}"

    @staticmethod
    def _current(read: Callable[[], Any], missing_code: str, default: Any) -> Any:
        """A bucket setting as it is now, or `default` when the bucket has none."""
        try:
            return read()
        except ClientError as exc:
            if _error_code(exc) != missing_code:
                raise
            return default

    def _ensure_multipart_cleanup(self, bucket: str) -> str:
        """A lifecycle rule aborting multipart uploads left incomplete (a killed run) after
        ABORT_INCOMPLETE_DAYS; the bucket's other rules are kept as they are."""
        rules = self._current(
            lambda: self._client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"],
            "NoSuchLifecycleConfiguration",
            [],
        )
        if any("AbortIncompleteMultipartUpload" in rule for rule in rules):
            return "incomplete multipart uploads already expire"
        rule = {
            "ID": "social-tui-abort-incomplete-multipart",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_INCOMPLETE_DAYS},
        }
        self._client.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": [*rules, rule]}
        )
        return f"incomplete multipart uploads now expire after {ABORT_INCOMPLETE_DAYS} days"

    def _lifecycle_rules(self, bucket: str) -> list[dict]:
        return self._current(
            lambda: self._client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"],
            "NoSuchLifecycleConfiguration",
            [],
        )

    def _ensure_transition(self, bucket: str) -> str:
        """A lifecycle rule moving archive copies older than MEDIA_ARCHIVE_TRANSITION_DAYS to
        MEDIA_ARCHIVE_STORAGE_CLASS (ours by its ID: updated when the settings change, removed
        when the days are 0); the bucket's other rules are kept as they are."""
        days, storage_class = self._transition
        rules = self._lifecycle_rules(bucket)
        others = [rule for rule in rules if rule.get("ID") != TRANSITION_RULE_ID]
        ours = next((rule for rule in rules if rule.get("ID") == TRANSITION_RULE_ID), None)
        if days == 0:
            if ours is None:
                return "no storage class transition (MEDIA_ARCHIVE_TRANSITION_DAYS=0)"
            self._put_lifecycle(bucket, others)
            return "removed the storage class transition (MEDIA_ARCHIVE_TRANSITION_DAYS=0)"
        wanted = {
            "ID": TRANSITION_RULE_ID,
            "Status": "Enabled",
            "Filter": {"Prefix": ARCHIVE_PREFIX},
            "Transitions": [{"Days": days, "StorageClass": storage_class}],
        }
        done = f"archive copies move to {storage_class} after {days} days"
        if ours is not None and _same_transition(ours, wanted):
            return f"{done} (already set)"
        self._put_lifecycle(bucket, [*others, wanted])
        return done

    def _put_lifecycle(self, bucket: str, rules: list[dict]) -> None:
        if rules:
            self._client.put_bucket_lifecycle_configuration(
                Bucket=bucket, LifecycleConfiguration={"Rules": rules}
            )
        else:
            self._client.delete_bucket_lifecycle(Bucket=bucket)

    def _ensure_public_access_block(self, bucket: str) -> str:
        wanted = {
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        }
        current = self._current(
            lambda: self._client.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"],
            "NoSuchPublicAccessBlockConfiguration",
            {},
        )
        if all(current.get(name) for name in wanted):
            return "public access already blocked (all four settings on)"
        self._client.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=wanted)
        return "blocked all public access (ACLs and bucket policies)"

    def _ensure_encryption(self, bucket: str) -> str:
        rules = self._current(
            lambda: self._client.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"][
                "Rules"
            ],
            "ServerSideEncryptionConfigurationNotFoundError",
            [],
        )
        algorithms = [
            rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]
            for rule in rules
            if "ApplyServerSideEncryptionByDefault" in rule
        ]
        if algorithms:  # keep a KMS configuration: it is at least as strong
            return f"default encryption already on ({', '.join(algorithms)})"
        self._client.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        return "default encryption set to AES256 (SSE-S3)"

    # -- upload ----------------------------------------------------------------------

    def upload(
        self,
        local_path: Path,
        media_id: str,
        md5_sum: str,
        extension: str,
        *,
        when: datetime | None = None,
        check_existing: bool = True,
    ) -> ArchivedObject:
        """Upload a cached file whose MD5 is `md5_sum`; return it only once verified.

        Raises LocalFileCorrupt (nothing sent) when the file no longer has that MD5.
        An object already at the key with the same MD5 and size is reused, not re-sent;
        callers that know there is none pass `check_existing=False` to save that request
        (a retry of a failed attempt always looks first).
        """
        return self._upload(
            Path(local_path), media_id, _normalise_md5(md5_sum), extension, when, check_existing
        )

    def _upload(
        self,
        local_path: Path,
        media_id: str,
        md5_sum: str | None,
        extension: str,
        when: datetime | None,
        check_existing: bool = True,
    ) -> ArchivedObject:
        bucket = self.bucket
        key = generate_s3_key(media_id, extension, when)
        s3_url = f"s3://{bucket}/{key}"
        what = f"upload of {media_id} ({local_path}) to {s3_url}"
        try:
            tries = itertools.count()  # a retry always looks for what an earlier attempt stored
            return self._retrying(
                lambda: self._upload_once(
                    local_path, media_id, md5_sum, bucket, key, check_existing or next(tries) > 0
                )
            )
        except (BotoCoreError, ClientError, S3UploadFailedError) as exc:
            raise self._item_error(exc, what, bucket) from exc
        except OSError as exc:
            raise ArchiveError(f"{what} failed: cannot read the file: {exc}") from exc

    def _upload_once(
        self,
        local_path: Path,
        media_id: str,
        md5_sum: str | None,
        bucket: str,
        key: str,
        check_existing: bool = True,
    ) -> ArchivedObject:
        s3_url = f"s3://{bucket}/{key}"
        local = self._read_local(local_path)
        if md5_sum is not None and local.md5_sum != md5_sum:
            raise LocalFileCorrupt(
                f"{local_path} (media {media_id}) has MD5 {local.md5_sum}, "
                f"expected {md5_sum}: not uploaded; re-download it"
            )
        md5_sum = local.md5_sum
        existing = self._head(bucket, key) if check_existing else None
        if existing is not None and self._matches(existing, md5_sum, local.size):
            logger.info("archive: %s already holds media %s", s3_url, media_id)
            return ArchivedObject(s3_url, key, local.size, verified=True, reused=True)

        extension = key.rsplit(".", 1)[-1]
        extra = {"Metadata": {"md5": md5_sum}, "ContentType": _content_type(extension)}
        if local.body is not None:
            # The bytes sent are the bytes hashed; Content-MD5 lets the store reject
            # anything that differs on arrival.
            response = self._client.put_object(
                Bucket=bucket,
                Key=key,
                Body=local.body,
                ContentMD5=base64.b64encode(binascii.unhexlify(md5_sum)).decode(),
                **extra,
            )
            # The store checked Content-MD5 and answers the body's MD5 as the ETag of a
            # single-part object: that is the verification, no HEAD needed. (Stores that
            # encrypt with KMS answer another ETag; the HEAD below then decides.)
            if response.get("ETag", "").strip('"') == md5_sum:
                logger.info(
                    "archived media %s to %s (%d bytes, md5 %s)", media_id, s3_url, local.size, md5_sum
                )
                return ArchivedObject(s3_url, key, local.size, verified=True, reused=False)
        else:
            # Multipart: streamed from disk in parts (bounded memory); S3 checks each
            # part's checksum, and the ETag check below covers the whole file.
            self._client.upload_file(
                str(local_path),
                bucket,
                key,
                ExtraArgs=extra,
                Config=self._transfer_config,
            )

        head = self._head(bucket, key)
        if head is None or not self._matches(head, md5_sum, local.size):
            raise ArchiveError(
                f"upload of {media_id} to {s3_url} could not be verified: "
                f"the stored object does not report MD5 {md5_sum} and {local.size} bytes"
            )
        self._check_multipart_etag(head, local, bucket, key, media_id)
        logger.info(
            "archived media %s to %s (%d bytes, md5 %s)",
            media_id,
            s3_url,
            local.size,
            md5_sum,
        )
        return ArchivedObject(s3_url, key, local.size, verified=True, reused=False)

    def _read_local(self, path: Path) -> _LocalFile:
        """Hash the file in one pass, keeping the bytes when it goes in one request."""
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size <= self._threshold:
                body = f.read(self._threshold + 1)
                if len(body) <= self._threshold:
                    return _LocalFile(hashlib.md5(body).hexdigest(), len(body), body, None)
                f.seek(0)  # it grew since the stat: treat it as a large file
            part_size = ChunksizeAdjuster().adjust_chunksize(self._chunksize, size)
            whole = hashlib.md5()
            part_digests: list[bytes] = []
            total = 0
            while True:
                part = hashlib.md5()
                part_bytes = 0
                while part_bytes < part_size:
                    block = f.read(min(_READ_BLOCK, part_size - part_bytes))
                    if not block:
                        break
                    whole.update(block)
                    part.update(block)
                    part_bytes += len(block)
                if part_bytes == 0:
                    break
                part_digests.append(part.digest())
                total += part_bytes
                if part_bytes < part_size:
                    break
        etag = _multipart_etag(part_digests) if total > self._threshold else None
        return _LocalFile(whole.hexdigest(), total, None, etag)

    def _check_multipart_etag(
        self,
        head: dict[str, Any],
        local: _LocalFile,
        bucket: str,
        key: str,
        media_id: str,
    ) -> None:
        """Compare S3's multipart ETag with the one computed from the local bytes.

        The md5 metadata is only our claim; the ETag is computed by the store from what
        it received, so a file that changed during the upload is caught here.
        """
        if local.multipart_etag is None:
            return
        etag = str(head.get("ETag", "")).strip('"').lower()
        match = _MULTIPART_ETAG_RE.fullmatch(etag)
        expected_parts = local.multipart_etag.rsplit("-", 1)[1]
        if match is None or match.group(2) != expected_parts:
            # Some S3-compatible stores compute ETags differently; nothing to compare.
            logger.debug("archive: ETag %r of %s not comparable", etag, key)
            return
        if etag != local.multipart_etag:
            self._client.delete_object(Bucket=bucket, Key=key)
            raise ArchiveError(
                f"upload of {media_id} to s3://{bucket}/{key} was corrupted: S3 computed "
                f"ETag {etag}, the local file gives {local.multipart_etag} "
                "(did the file change during the upload?); the object was deleted"
            )

    # -- verify, restore, share --------------------------------------------------------

    def verify(self, s3_url: str, expected_md5: str, *, expected_size: int | None = None) -> bool:
        """True when the object exists and reports `expected_md5` (and the size, if given)."""
        bucket, key = parse_s3_url(s3_url)
        md5_sum = _normalise_md5(expected_md5)
        try:
            head = self._head(bucket, key)
        except (BotoCoreError, ClientError) as exc:
            raise self._item_error(exc, f"verify of {s3_url}", bucket) from exc
        ok = head is not None and self._matches(head, md5_sum, expected_size)
        if not ok:
            logger.warning("archive: %s does not verify against md5 %s", s3_url, md5_sum)
        return ok

    def restore(self, s3_url: str, dest_path: Path, expected_md5: str) -> None:
        """Download to `dest_path`, which appears only if the bytes have `expected_md5`."""
        bucket, key = parse_s3_url(s3_url)
        md5_sum = _normalise_md5(expected_md5)
        dest = Path(dest_path)
        what = f"restore of {s3_url} to {dest}"
        try:
            dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._retrying(self._restore_once, bucket, key, dest, md5_sum)
        except (BotoCoreError, ClientError) as exc:
            raise self._item_error(exc, what, bucket) from exc
        except OSError as exc:
            raise ArchiveError(f"{what} failed: {exc}") from exc
        logger.info("restored %s to %s (md5 %s)", s3_url, dest, md5_sum)

    def _restore_once(self, bucket: str, key: str, dest: Path, md5_sum: str) -> None:
        response = self._client.get_object(Bucket=bucket, Key=key)
        body = response["Body"]
        # mkstemp creates the file 0600 in the destination's directory, so the final
        # os.replace is an atomic rename on the same filesystem.
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        try:
            digest = hashlib.md5()
            with os.fdopen(fd, "wb") as out:
                for chunk in body.iter_chunks(_READ_BLOCK):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != md5_sum:
                raise ArchiveCopyCorrupt(
                    f"s3://{bucket}/{key} has MD5 {digest.hexdigest()}, expected {md5_sum}: "
                    f"not restored to {dest}"
                )
            os.replace(tmp_name, dest)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        finally:
            body.close()

    def presigned_url(self, s3_url: str, expires: int = 3600) -> str:
        """A time-limited HTTPS GET link to a private object."""
        bucket, key = parse_s3_url(s3_url)
        if not 1 <= expires <= MAX_PRESIGN_SECONDS:
            raise ValueError(f"expires must be 1..{MAX_PRESIGN_SECONDS} seconds, got {expires}")
        try:
            return self._client.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires
            )
        except (NoCredentialsError, PartialCredentialsError) as exc:
            raise ArchiveConfigError(_NO_CREDENTIALS) from exc

    # -- helpers ---------------------------------------------------------------------

    def _head(self, bucket: str, key: str) -> dict[str, Any] | None:
        try:
            return self._client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    @staticmethod
    def _matches(head: dict[str, Any], md5_sum: str, size: int | None) -> bool:
        metadata_md5 = str(head.get("Metadata", {}).get("md5", "")).lower()
        etag = str(head.get("ETag", "")).strip('"').lower()
        md5_ok = metadata_md5 == md5_sum or ("-" not in etag and etag == md5_sum)
        return md5_ok and (size is None or head.get("ContentLength") == size)

    def _retrying(self, fn: Callable[..., T], *args: Any) -> T:
        retrying = Retrying(
            stop=stop_after_attempt(self._upload_attempts),
            wait=wait_exponential(multiplier=self._retry_wait, max=30 * self._retry_wait)
            + wait_random(0, self._retry_wait),
            retry=retry_if_exception(_is_transient),
            before_sleep=lambda state: logger.warning(
                "archive: attempt %d failed (%s); retrying",
                state.attempt_number,
                state.outcome.exception() if state.outcome else "?",
            ),
            reraise=True,
        )
        return retrying(fn, *args)

    def _config_error(self, exc: BaseException, bucket: str) -> Exception:
        """Translate a failure of a bucket-level call; connection trouble is configuration."""
        error = self._item_error(exc, f"access to bucket '{bucket}'", bucket)
        if isinstance(error, ArchiveConfigError):
            return error
        exc = _unwrap(exc)
        if isinstance(exc, ClientError) and _error_code(exc) in ("404", "NotFound"):
            return ArchiveConfigError(
                f"bucket '{bucket}' does not exist: run `python manage_media.py setup-bucket`"
            )
        if isinstance(exc, BotoConnectionError):
            endpoint = self._endpoint_url or "AWS S3"
            return ArchiveConfigError(
                f"cannot reach {endpoint}: check AWS_ENDPOINT_URL, AWS_S3_REGION and the network"
            )
        return error

    def _item_error(self, exc: BaseException, what: str, bucket: str) -> Exception:
        """Translate a boto failure: configuration problems apart from per-item ones."""
        exc = _unwrap(exc)
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return ArchiveConfigError(_NO_CREDENTIALS)
        if isinstance(exc, ClientError):
            code = _error_code(exc)
            if code in _DENIED_CODES:
                return ArchiveConfigError(
                    f"access denied to bucket '{bucket}': "
                    "check the credentials' s3:PutObject/GetObject rights"
                )
            if code in _BAD_KEY_CODES:
                return ArchiveConfigError(
                    f"the AWS credentials were rejected ({code}): "
                    "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                )
            if code == "NoSuchBucket":
                return ArchiveConfigError(
                    f"bucket '{bucket}' does not exist: run `python manage_media.py setup-bucket`"
                )
            message = exc.response.get("Error", {}).get("Message", "")
            return ArchiveError(f"{what} failed: {code} {message}".rstrip())
        return ArchiveError(f"{what} failed: {exc}")


# -- the spec's module-level functions, on the archive the environment configures --------


def _same_transition(rule: dict, wanted: dict) -> bool:
    """Whether a stored lifecycle rule already says what `wanted` says (S3 may add fields)."""
    transitions = [(t.get("Days"), t.get("StorageClass")) for t in rule.get("Transitions", [])]
    prefix = rule.get("Filter", {}).get("Prefix", rule.get("Prefix"))
    return (
        rule.get("Status") == "Enabled"
        and prefix == wanted["Filter"]["Prefix"]
        and transitions == [(t["Days"], t["StorageClass"]) for t in wanted["Transitions"]]
    )


def upload_to_s3(local_path: Path, media_id: str) -> str:
    """Upload a media file to the archive and return its verified `s3://` URL."""
    path = Path(local_path)
    extension = path.suffix.lstrip(".") or "bin"
    return Archive(load_settings())._upload(path, media_id, None, extension, None).s3_url


def verify_s3_upload(s3_url: str, expected_md5: str) -> bool:
    """True when the archived object at `s3_url` has the expected MD5."""
    return Archive(load_settings()).verify(s3_url, expected_md5)
