"""Scenario 8: `manage_media.py list --download-status pending` over 130,000 media rows.

The rows are seeded straight into each database with one SQL statement (43,334 posts, three
media each; 70 % pending, 20 % downloaded, 10 % failed), then `list --download-status pending
--format json` and `--format jsonl` run against SQLite and PostgreSQL. Each run reports its
wall time, how long until the first whole row was on stdout (read from the pipe as it
arrives), and its peak RSS; every printed row is checked (all pending, in key order, none
missing). The comparison is the floor for the same database: its own client streaming the
same rows as JSON (`sqlite3 -json`; `psql` with `COPY (SELECT row_to_json(m) ...)`).

Targets (issue 13): the first row out in under a second and flat memory (under 150 MB),
whatever the row count.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench import common
from bench.common import (
    GNU_TIME,
    MB,
    BenchError,
    Context,
    Measured,
    Row,
    fmt_bytes,
    fmt_seconds,
    log,
    machine_busy_seconds,
    not_measured,
    project_cli,
    project_env,
    require_tool,
    sqlite_url,
    throwaway_postgres,
    wait_or_kill,
)

FIRST_ROW_TARGET = 1.0  # seconds
RSS_TARGET = 150 * MB
TARGET = "first row < 1 s, peak RSS < 150 MB"
PENDING_SQL = (
    "SELECT * FROM post_media WHERE download_status = 'pending' ORDER BY post_id, position, media_id"
)

# The same rows in both databases: ids from a multiplicative hash (a bijection below 2^48, so
# unique, and in no particular order, as generated ids are), media three to a post.
SQLITE_SEED = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :posts)
INSERT INTO posts (post_id, urn, platform, posted_at_timestamp, author_username, author_name, text_content,
                   url, post_type, raw_json, first_seen_at, last_seen_at, created_at, updated_at)
SELECT printf('post-%016x', (i * 2654435761) % 281474976710656), 'urn:li:activity:' || (7390000000000000000 + i),
       'linkedin', 1759276800000 + i * 60000, 'author' || (i % 500), 'Author ' || (i % 500),
       'A post about media at scale, number ' || i, 'https://www.linkedin.com/feed/update/urn:li:activity:' || i,
       'regular', '{}', '2025-12-01T00:00:00.000000+00:00', '2025-12-01T00:00:00.000000+00:00',
       '2025-12-01T00:00:00.000000+00:00', '2025-12-01T00:00:00.000000+00:00'
  FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :media)
INSERT INTO post_media (media_id, post_id, media_type, media_url, slot_key, slot_role, position, url_expires_at,
                        download_status, md5_sum, file_size, mime_type, width, height, local_file_path,
                        downloaded_at, ai_analysis_status, ai_analysis_log, created_at, updated_at)
SELECT printf('media-%016x', (i * 2246822519) % 281474976710656),
       printf('post-%016x', (((i - 1) / 3 + 1) * 2654435761) % 281474976710656),
       CASE i % 20 WHEN 0 THEN 'video' WHEN 1 THEN 'document' ELSE 'image' END,
       printf('https://media.licdn.com/dms/image/v2/D4E22AQ%016x/feedshare-shrink_2048_1536/0/1764000000000'
              || '?e=1764877600&v=beta&t=%032x', i, i * 7919),
       printf('https://media.licdn.com/dms/image/v2/D4E22AQ%016x/feedshare-shrink_2048_1536/0/1764000000000', i),
       CASE i % 20 WHEN 0 THEN 'video' WHEN 1 THEN 'document' ELSE 'image' END,
       (i - 1) % 3, '2025-12-04T19:46:40.000000+00:00',
       CASE WHEN i % 10 < 7 THEN 'pending' WHEN i % 10 < 9 THEN 'downloaded' ELSE 'failed' END,
       CASE WHEN i % 10 IN (7, 8) THEN printf('%032x', i * 104729) END,
       CASE WHEN i % 10 IN (7, 8) THEN 100000 + i END,
       CASE WHEN i % 10 IN (7, 8) THEN 'image/jpeg' END,
       CASE WHEN i % 10 IN (7, 8) THEN 2048 END,
       CASE WHEN i % 10 IN (7, 8) THEN 1536 END,
       CASE WHEN i % 10 IN (7, 8) THEN printf('images/%02x/%032x.jpg', i % 256, i * 104729) END,
       CASE WHEN i % 10 IN (7, 8) THEN '2025-12-02T00:00:00.000000+00:00' END,
       'not_started', '[]',
       strftime('%Y-%m-%dT%H:%M:%f+00:00', '2025-10-01', '+' || (i / 2) || ' minutes'),
       '2025-12-01T00:00:00.000000+00:00'
  FROM n;
"""

POSTGRES_SEED = """
INSERT INTO posts (post_id, urn, platform, posted_at_timestamp, author_username, author_name, text_content,
                   url, post_type, raw_json, first_seen_at, last_seen_at, created_at, updated_at)
SELECT 'post-' || lpad(to_hex((i * 2654435761) %% 281474976710656), 16, '0'),
       'urn:li:activity:' || (7390000000000000000 + i), 'linkedin', 1759276800000 + i * 60000,
       'author' || (i %% 500), 'Author ' || (i %% 500), 'A post about media at scale, number ' || i,
       'https://www.linkedin.com/feed/update/urn:li:activity:' || i, 'regular', '{}',
       '2025-12-01', '2025-12-01', '2025-12-01', '2025-12-01'
  FROM generate_series(1::BIGINT, %(posts)s::BIGINT) i;
INSERT INTO post_media (media_id, post_id, media_type, media_url, slot_key, slot_role, position, url_expires_at,
                        download_status, md5_sum, file_size, mime_type, width, height, local_file_path,
                        downloaded_at, ai_analysis_status, ai_analysis_log, created_at, updated_at)
SELECT 'media-' || lpad(to_hex((i * 2246822519) %% 281474976710656), 16, '0'),
       'post-' || lpad(to_hex((((i - 1) / 3 + 1) * 2654435761) %% 281474976710656), 16, '0'),
       CASE i %% 20 WHEN 0 THEN 'video' WHEN 1 THEN 'document' ELSE 'image' END,
       'https://media.licdn.com/dms/image/v2/D4E22AQ' || lpad(to_hex(i), 16, '0')
           || '/feedshare-shrink_2048_1536/0/1764000000000?e=1764877600&v=beta&t=' || lpad(to_hex(i * 7919), 32, '0'),
       'https://media.licdn.com/dms/image/v2/D4E22AQ' || lpad(to_hex(i), 16, '0')
           || '/feedshare-shrink_2048_1536/0/1764000000000',
       CASE i %% 20 WHEN 0 THEN 'video' WHEN 1 THEN 'document' ELSE 'image' END,
       (i - 1) %% 3, '2025-12-04T19:46:40+00:00',
       CASE WHEN i %% 10 < 7 THEN 'pending' WHEN i %% 10 < 9 THEN 'downloaded' ELSE 'failed' END,
       CASE WHEN i %% 10 IN (7, 8) THEN lpad(to_hex(i * 104729), 32, '0') END,
       CASE WHEN i %% 10 IN (7, 8) THEN 100000 + i END,
       CASE WHEN i %% 10 IN (7, 8) THEN 'image/jpeg' END,
       CASE WHEN i %% 10 IN (7, 8) THEN 2048 END,
       CASE WHEN i %% 10 IN (7, 8) THEN 1536 END,
       CASE WHEN i %% 10 IN (7, 8) THEN 'images/' || lpad(to_hex(i %% 256), 2, '0') || '/'
                                        || lpad(to_hex(i * 104729), 32, '0') || '.jpg' END,
       CASE WHEN i %% 10 IN (7, 8) THEN TIMESTAMPTZ '2025-12-02' END,
       'not_started', '[]'::JSONB,
       TIMESTAMPTZ '2025-10-01 00:00+00' + (i / 2) * INTERVAL '1 minute', '2025-12-01'
  FROM generate_series(1::BIGINT, %(media)s::BIGINT) i;
"""


def pending_count(media: int) -> int:
    return sum(1 for i in range(1, media + 1) if i % 10 < 7)


def seed_sqlite(path: Path, media: int) -> None:
    """The project's schema (created as the store creates it), then the rows in one transaction."""
    from social_tui_media.store.sqlite import SQLiteStore

    SQLiteStore(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        for statement in filter(str.strip, SQLITE_SEED.split(";")):
            conn.execute(statement, {"posts": -(-media // 3), "media": media})
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
    finally:
        conn.close()


def seed_postgres(url: str, media: int) -> None:
    """The rows in one transaction; triggers and foreign-key checks off while seeding (every
    column they would fill is given, every post exists), when the role may turn them off."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("SET session_replication_role = replica")
        with conn.transaction():
            for statement in filter(str.strip, POSTGRES_SEED.split(";")):
                conn.execute(statement, {"posts": -(-media // 3), "media": media})
            # the search documents its (skipped) triggers keep, built as the migrations do
            conn.execute("SELECT post_search_refresh(array_agg(post_id)) FROM posts")
            conn.execute("SELECT media_search_refresh(array_agg(media_id)) FROM post_media")
        conn.execute("ANALYZE post_search_index")
        conn.execute("ANALYZE media_search_index")
        conn.execute("ANALYZE posts")
        conn.execute("ANALYZE post_media")


# --- a measured run that watches its stdout ---------------------------------------------------


@dataclass(frozen=True)
class Streamed:
    run: Measured
    first_row: float  # seconds from spawn until the first whole row was readable on stdout
    output: Path  # what it printed
    output_bytes: int


def run_streamed(command: list[str], *, env: dict[str, str], cwd: Path, newlines_per_first_row: int,
                 timeout: float) -> Streamed:  # fmt: skip
    """Run one process to completion, as `common.run_measured` does (GNU time's peak RSS, CPU
    from wait4, the machine's other load), reading its stdout through a pipe as it comes: the
    first row counts as out when `newlines_per_first_row` newlines have arrived."""
    cwd.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    out_path, err_path, rss_path = cwd / f"out-{tag}", cwd / f".err-{tag}", cwd / f".rss-{tag}"
    wrapped = [GNU_TIME, "-f", "%M", "-o", str(rss_path), *command] if Path(GNU_TIME).exists() else command
    first_row: list[float] = []
    written = [0]

    def drain(pipe, started: float) -> None:
        newlines = 0
        with open(out_path, "wb") as out:
            while chunk := pipe.read1(1 << 16):
                if not first_row:
                    newlines += chunk.count(b"\n")
                    if newlines >= newlines_per_first_row:
                        first_row.append(time.perf_counter() - started)
                out.write(chunk)
                written[0] += len(chunk)

    with open(err_path, "wb") as err:
        busy_before = machine_busy_seconds()
        self_before = time.process_time()
        started = time.perf_counter()
        proc = subprocess.Popen(wrapped, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=err,
                                stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        reader = threading.Thread(target=drain, args=(proc.stdout, started), daemon=True)
        reader.start()
        status, usage, killed = wait_or_kill(proc, timeout)
        seconds = time.perf_counter() - started
        reader.join(timeout=60)
        proc.stdout.close()
        busy = machine_busy_seconds() - busy_before
        server_cpu = time.process_time() - self_before
    stderr = err_path.read_text(errors="replace")
    max_rss = -1
    with contextlib.suppress(OSError, ValueError, IndexError):
        max_rss = int(rss_path.read_text().split()[-1]) * 1024  # GNU time reports KiB
    for path in (err_path, rss_path):
        path.unlink(missing_ok=True)
    cpu = usage.ru_utime + usage.ru_stime
    measured = Measured(
        command=[str(c) for c in command], returncode=os.waitstatus_to_exitcode(status), seconds=seconds,
        max_rss=max_rss, cpu_seconds=cpu, server_cpu_seconds=server_cpu,
        background_cores=max(0.0, busy - cpu - server_cpu) / seconds if seconds else 0.0,
        stdout="", stderr=stderr,
    )  # fmt: skip
    common.MEASUREMENTS.append(measured)
    name = Path(command[1] if command[0] == common.PYTHON else command[0]).name
    if killed:
        raise BenchError(f"{name} did not finish within {timeout:.0f} s; killed:\n{measured.tail()}")
    if measured.returncode != 0:
        raise BenchError(
            f"`{' '.join(measured.command[:4])} ...` exited {measured.returncode}:\n{measured.tail()}"
        )
    return Streamed(measured, first_row[0] if first_row else seconds, out_path, written[0])


# --- checks ---------------------------------------------------------------------------------


def row_lines(path: Path, fmt: str):
    """Each printed row's JSON text; a json document must be `[`, rows one per line with a
    comma after each but the last, `]`."""
    with open(path, encoding="utf-8") as lines:
        if fmt == "jsonl":
            yield from lines
            return
        opening = next(lines, "")
        if opening == "[]\n":
            return
        if opening != "[\n":
            raise BenchError(f"list --format json began with {opening[:40]!r}, not '[' on a line")
        previous = None
        for line in lines:
            if line == "]\n" and previous is not None and not previous.endswith(",\n"):
                yield previous
                return
            if previous is not None:
                if not previous.endswith(",\n"):
                    raise BenchError("list --format json: a row line without its comma")
                yield previous[:-2]
            previous = line
        raise BenchError("list --format json did not end with its last row and ']'")


def check_listing(streamed: Streamed, fmt: str, expected: int) -> None:
    """Every row pending, in (post_id, position, media_id) order, none twice, none missing."""
    count, last = 0, None
    for line in row_lines(streamed.output, fmt):
        row = json.loads(line)
        key = (row["post_id"], row["position"], row["media_id"])
        if row["download_status"] != "pending" or (last is not None and key <= last):
            raise BenchError(f"list printed {key} ({row['download_status']}) after {last}")
        count, last = count + 1, key
    if count != expected:
        raise BenchError(f"list printed {count:,} rows; {expected:,} are pending")


def check_line_count(streamed: Streamed, expected: int, what: str) -> None:
    with open(streamed.output, "rb") as out:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: out.read(1 << 20), b""))
    if lines != expected:
        raise BenchError(f"{what} printed {lines:,} lines; {expected:,} rows are pending")


# --- the scenario -----------------------------------------------------------------------------


def _row(letter: str, fmt: str, back_end: str, ours: Streamed, floor: Streamed | None, floor_name: str,
         rows: int) -> Row:  # fmt: skip
    met = ours.first_row < FIRST_ROW_TARGET and 0 < ours.run.max_rss < RSS_TARGET
    theirs = "not measured" if floor is None else (
        f"first row {fmt_seconds(floor.first_row)}, all {fmt_seconds(floor.run.seconds)}, "
        f"{fmt_bytes(floor.run.max_rss)} ({floor_name})"
    )  # fmt: skip
    return Row(
        f"8{letter}. `list --download-status pending --format {fmt}` of {rows:,} rows, {back_end}",
        f"first row {fmt_seconds(ours.first_row)}, all {fmt_seconds(ours.run.seconds)}, {fmt_bytes(ours.run.max_rss)}",
        theirs,
        None if floor is None else floor.run.seconds / ours.run.seconds,
        TARGET,
        met,
        [f"{rows:,} rows, {fmt_bytes(ours.output_bytes)} printed; {ours.run.cpu_seconds:.1f} CPU s "
         f"({ours.run.cores_used:.2f} cores); ratio: the database's own client's total time ÷ ours"],
        {"ours": ours.run.summary(), "ours_first_row": round(ours.first_row, 3), "rows": rows,
         "output_bytes": ours.output_bytes,
         "floor": None if floor is None else {**floor.run.summary(), "first_row": round(floor.first_row, 3)}},
    )  # fmt: skip


def _measure(ws: Path, database_url: str, back_end: str, letters: str, expected: int, floor: Streamed | None,
             floor_name: str) -> list[Row]:  # fmt: skip
    """`list` as json (first letter) and as jsonl (second), each checked row by row."""
    rows = []
    for fmt, letter in zip(("json", "jsonl"), letters, strict=True):
        log(f"list: {back_end}: list --download-status pending --format {fmt} ({expected:,} rows)")
        ours = run_streamed(
            project_cli("manage_media.py", "list", "--download-status", "pending", "--format", fmt),
            env=project_env(ws, database_url), cwd=ws, newlines_per_first_row=2 if fmt == "json" else 1,
            timeout=600,
        )  # fmt: skip
        check_listing(ours, fmt, expected)
        ours.output.unlink()
        rows.append(_row(letter, fmt, back_end, ours, floor, floor_name, expected))
    return rows


def _floor(command: list[str], ws: Path, expected: int, what: str) -> Streamed | None:
    try:
        require_tool(command[0], "the database's own client, for the floor")
    except BenchError as exc:
        log(f"list: floor not measured: {exc}")
        return None
    floor = run_streamed(command, env=common.clean_env(), cwd=ws, newlines_per_first_row=1, timeout=600)
    check_line_count(floor, expected, what)
    floor.output.unlink()
    return floor


def run(ctx: Context) -> list[Row]:
    media = ctx.scale(130_000, 13_000)
    expected = pending_count(media)
    rows: list[Row] = []

    ws = ctx.ws.dir("list", "sqlite")
    db = ws / "social_tui.db"
    started = time.monotonic()
    seed_sqlite(db, media)
    log(f"list: seeded SQLite with {media:,} media rows in {time.monotonic() - started:.1f} s")
    floor = _floor(["sqlite3", "-json", str(db), PENDING_SQL], ws, expected, "sqlite3 -json")
    rows += _measure(ws, sqlite_url(db), "SQLite", "ab", expected, floor, "`sqlite3 -json`")

    ws = ctx.ws.dir("list", "pg")
    try:
        with throwaway_postgres() as url:
            started = time.monotonic()
            seed_postgres(url, media)
            log(f"list: seeded PostgreSQL with {media:,} media rows in {time.monotonic() - started:.1f} s")
            copy = f"COPY (SELECT row_to_json(m) FROM ({PENDING_SQL}) m) TO STDOUT"
            floor = _floor(["psql", "-X", "-q", "-d", url, "-c", copy], ws, expected, "psql COPY")
            rows += _measure(ws, url, "PostgreSQL", "cd", expected, floor, "`psql` COPY of row_to_json")
    except BenchError as exc:
        reason = str(exc).splitlines()[0]
        rows += [
            not_measured(
                f"8{letter}. `list --download-status pending --format {fmt}`, PostgreSQL", reason, TARGET
            )
            for letter, fmt in (("c", "json"), ("d", "jsonl"))
        ]
    return rows
