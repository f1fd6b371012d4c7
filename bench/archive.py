"""Scenario 5: `manage_media.py archive --all` of 500 files / 1 GB to moto's S3 server vs
`aws s3 cp --recursive` of the same cache directory to the same server.

Each side uploads into a bucket of its own (so neither finds the other's objects), and both
run with their default concurrency: 10 uploads for ours (jobs.archive.UPLOAD_WORKERS), the CLI's
`max_concurrent_requests` (10) for aws.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections import Counter

import boto3

from bench.common import (
    GB,
    MB,
    BenchError,
    Context,
    Row,
    aws_env,
    clean_env,
    fmt_bytes,
    fmt_seconds,
    log,
    project_cli,
    require_tool,
    run_measured,
)
from bench.verify import fill_cache

TARGET = 1.0
BUCKET_OURS = "bench-archive-ours"  # one bucket per run: -0, -1, ...
BUCKET_THEIRS = "bench-archive-aws"


class RequestCounter(logging.Handler):
    """Counts the S3 requests moto's server answers, by method, from werkzeug's request log."""

    _LINE = re.compile(r'"(?:\x1b\[[0-9;]*m)?(GET|PUT|HEAD|POST|DELETE) ')  # 4xx lines are coloured

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        match = self._LINE.search(record.getMessage())
        if match:
            self.counts[match.group(1)] += 1

    def take(self) -> dict[str, int]:
        counts, self.counts = dict(self.counts), Counter()
        return counts


def _bucket_totals(s3, bucket: str) -> tuple[int, int]:
    count = size = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            count += 1
            size += item["Size"]
    return count, size


def _empty_bucket(s3, bucket: str) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})


def _requests(counts: dict[str, int]) -> str:
    return f"{sum(counts.values())} (" + ", ".join(f"{n} {m}" for m, n in sorted(counts.items())) + ")"


def run(ctx: Context) -> list[Row]:
    from moto.server import ThreadedMotoServer

    counter = RequestCounter()
    werkzeug = logging.getLogger("werkzeug")  # moto's server logs one line per request there
    werkzeug.setLevel(logging.INFO)
    werkzeug.propagate = False
    werkzeug.addHandler(counter)

    total = ctx.scale(1 * GB, 100 * MB)
    count = ctx.scale(500, 50)
    repeats = ctx.scale(3, 1)
    aws = require_tool("aws", "pip install awscli")
    ws, env, db, _ = fill_cache(ctx, "archive", count, total, seed=5)
    pristine = ws / "not-archived.db"
    shutil.copyfile(db, pristine)  # every run of ours starts with nothing archived
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    ours_runs, theirs_runs = [], []
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        credentials = aws_env(ws)
        s3 = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        ).client("s3", endpoint_url=endpoint)
        for rep in range(repeats):
            bucket = f"{BUCKET_THEIRS}-{rep}"
            s3.create_bucket(Bucket=bucket)
            log(
                f"archive: aws s3 cp --recursive ({count} files, {fmt_bytes(total)}; run {rep + 1} of {repeats})"
            )
            theirs_cmd = [aws, "s3", "cp", "--recursive", "--only-show-errors", "--endpoint-url", endpoint,
                          str(ws / "cache" / "media"), f"s3://{bucket}/media/"]  # fmt: skip
            counter.take()
            measured = run_measured(theirs_cmd, env=clean_env(**credentials), cwd=ws, timeout=1200)
            theirs_runs.append((measured, counter.take(), _bucket_totals(s3, bucket)))
            _empty_bucket(s3, bucket)  # moto keeps objects in memory

            bucket = f"{BUCKET_OURS}-{rep}"
            s3.create_bucket(Bucket=bucket)
            for leftover in (db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
                leftover.unlink(missing_ok=True)
            shutil.copyfile(pristine, db)
            log(f"archive: manage_media.py archive --all (run {rep + 1} of {repeats})")
            ours_env = {**env, **credentials, "AWS_S3_BUCKET": bucket, "AWS_S3_REGION": "us-east-1",
                        "AWS_ENDPOINT_URL": endpoint}  # fmt: skip
            counter.take()
            measured = run_measured(
                project_cli("manage_media.py", "archive", "--all"), env=ours_env, cwd=ws, timeout=1200
            )
            ours_runs.append((measured, counter.take(), _bucket_totals(s3, bucket)))
            _empty_bucket(s3, bucket)
    finally:
        server.stop()
        werkzeug.removeHandler(counter)
    for who, runs in (("ours", ours_runs), ("aws s3 cp", theirs_runs)):
        for _, _, (n, size) in runs:
            if n != count or size != total:
                raise BenchError(f"{who} stored {n} objects / {size:,} B; expected {count} / {total:,} B")
    ours, ours_requests, _ = sorted(ours_runs, key=lambda r: r[0].seconds)[len(ours_runs) // 2]
    theirs, theirs_requests, _ = sorted(theirs_runs, key=lambda r: r[0].seconds)[len(theirs_runs) // 2]
    ratio = theirs.seconds / ours.seconds
    spread = (
        ", ".join(f"{r[0].seconds:.2f}" for r in ours_runs),
        ", ".join(f"{r[0].seconds:.2f}" for r in theirs_runs),
    )
    return [
        Row(
            f"5. archive {count} files / {fmt_bytes(total)} to S3 (moto): `archive --all` vs `aws s3 cp --recursive`",
            fmt_seconds(ours.seconds),
            fmt_seconds(theirs.seconds),
            ratio,
            f"≥ {TARGET:.2f}× (at least as fast)",
            ratio >= TARGET,
            [
                f"median of {repeats}, alternating (ours {spread[0]} s; aws {spread[1]} s); "
                f"ours: {fmt_bytes(total / ours.seconds)}/s, S3 requests {_requests(ours_requests)}, "
                f"{ours.cpu_seconds:.1f} CPU s, peak RSS {fmt_bytes(ours.max_rss)}, 10 uploads in flight "
                f"(jobs.archive.UPLOAD_WORKERS); aws: {fmt_bytes(total / theirs.seconds)}/s, S3 requests "
                f"{_requests(theirs_requests)}, {theirs.cpu_seconds:.1f} CPU s, peak RSS {fmt_bytes(theirs.max_rss)}, "
                f"10 in flight (its default); moto (in the benchmark process) used {ours.server_cpu_seconds:.1f} "
                f"CPU s serving ours, {theirs.server_cpu_seconds:.1f} serving aws"
            ],
            {"ours": [r[0].summary() for r in ours_runs], "theirs": [r[0].summary() for r in theirs_runs],
             "ours_requests": ours_requests, "theirs_requests": theirs_requests},
        )
    ]  # fmt: skip
