"""Scenarios 1-3: downloading media (speed), re-importing re-signed posts, and peak memory.

1. `manage_data.py import` end to end vs `aria2c -j 5` vs the older scripts' sequential loop,
   all on the same URLs from a loopback CDN that adds 50 ms to every request.
2. The same posts scraped again (new signatures, same paths): re-import must send no request.
3. One 1 GB file: peak RSS of the importing process.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
from pathlib import Path

from bench.common import (
    GB,
    KB,
    MB,
    BenchError,
    Context,
    Row,
    bench_script,
    clean_env,
    fmt_bytes,
    fmt_seconds,
    log,
    project_cli,
    project_env,
    require_tool,
    run_measured,
    sqlite_url,
)
from bench.content import (
    Signer,
    log_uniform_sizes,
    make_image,
    make_video,
    posts_for,
    register,
    write_aria2_input,
    write_posts,
    write_url_list,
)
from devtools.media_server import MediaTestServer

LATENCY = 0.05
CONCURRENCY = 5  # MEDIA_MAX_CONCURRENT's default, and aria2c -j 5
REIMPORT_TARGET_SECONDS = 10.0
MEMORY_TARGET = 100 * MB


def aria2c_command(input_file: Path, out_dir: Path, jobs: int = CONCURRENCY) -> list[str]:
    """aria2c as a user would run it on a URL list, tuned in its favour (no preallocation)."""
    return [
        require_tool("aria2c", "apt-get install -y aria2"),
        f"-j{jobs}",
        "-i", str(input_file),
        "-d", str(out_dir),
        "--file-allocation=none",  # its default (prealloc) writes every file twice
        "--allow-overwrite=true",
        "--auto-file-renaming=false",
        "--console-log-level=warn",
        "--summary-interval=0",
        "--download-result=hide",
        "--max-tries=3",
        "--timeout=60",
    ]  # fmt: skip


def download_status_counts(db_path: Path) -> dict[str, int]:
    with sqlite3.connect(db_path) as conn:
        return dict(conn.execute("SELECT download_status, count(*) FROM post_media GROUP BY 1").fetchall())


def directory_bytes(directory: Path) -> tuple[int, int]:
    files = [p for p in directory.rglob("*") if p.is_file() and not p.name.startswith(".")]
    return len(files), sum(p.stat().st_size for p in files)


def _check_import(db_path: Path, expected: int, what: str) -> None:
    counts = download_status_counts(db_path)
    if counts.get("downloaded", 0) != expected:
        raise BenchError(f"{what}: expected {expected} media downloaded, the database says {counts}")


def _check_files(directory: Path, expected_files: int, expected_bytes: int, what: str) -> None:
    files, nbytes = directory_bytes(directory)
    if files != expected_files or nbytes != expected_bytes:
        raise BenchError(
            f"{what}: expected {expected_files} files / {expected_bytes:,} B, found {files} / {nbytes:,} B"
        )


# --- scenarios 1 and 2 -----------------------------------------------------------------------


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def _spread(runs) -> str:
    seconds = sorted(m.seconds for m in runs)
    return f"median of {len(seconds)}: " + ", ".join(f"{s:.2f}" for s in seconds) + " s"


def run_download(ctx: Context, want_download: bool = True, want_reimport: bool = True) -> list[Row]:
    count = ctx.scale(1000, 100)
    videos = ctx.scale(10, 2)
    repeats = ctx.scale(3, 1) if want_download else 1
    rng = random.Random(1)
    images = [make_image(rng, size) for size in log_uniform_sizes(rng, count - videos, 30 * KB, 2 * MB)]
    media = images + [make_video(rng, rng.randint(3 * MB, 8 * MB)) for _ in range(videos)]
    total_bytes = sum(m.size for m in media)
    posts = posts_for(media, rng)
    ws = ctx.ws.dir("download")
    rows: list[Row] = []
    log(
        f"download: {count} media ({fmt_bytes(total_bytes)}) in {len(posts)} posts, {LATENCY * 1000:.0f} ms latency"
    )
    with MediaTestServer(latency=LATENCY) as server:
        register(server, media)
        urls = write_posts(ws / "posts", posts, server.base_url, Signer(seed=11), seed=12)
        assert len(urls) == count, (len(urls), count)
        write_url_list(ws / "urls.txt", urls)
        write_aria2_input(ws / "aria2.txt", urls)

        def ours_once(rep: int):
            db = ws / f"ours{rep}" / "social_tui.db"
            env = project_env(ws / f"ours{rep}", sqlite_url(db))
            log(f"download: manage_data.py import (run {rep + 1} of {repeats})")
            server.clear()
            measured = run_measured(
                project_cli("manage_data.py", "import", str(ws / "posts")),
                env=env,
                cwd=ws / f"ours{rep}",
                timeout=900,
            )
            _check_import(db, count, "manage_data.py import")
            return measured, server.max_in_flight, len(server.requests), env, db

        def aria_once(rep: int):
            log(f"download: aria2c -j 5 (run {rep + 1} of {repeats})")
            server.clear()
            measured = run_measured(
                aria2c_command(ws / "aria2.txt", ws / "aria2"), env=clean_env(), cwd=ws, timeout=900
            )
            _check_files(ws / "aria2", count, total_bytes, "aria2c")
            shutil.rmtree(ws / "aria2")
            return measured, server.max_in_flight

        ours_runs, aria_runs = [], []
        for rep in range(repeats):
            if want_download:
                aria_runs.append(aria_once(rep))
            ours_runs.append(ours_once(rep))
            if rep < repeats - 1:  # keep the last cache and database for the re-import
                shutil.rmtree(ws / f"ours{rep}" / "cache", ignore_errors=True)
        ours, ours_in_flight, ours_requests, env, db = ours_runs[-1]

        if want_download:
            log("download: sequential requests.get loop (older scripts)")
            server.clear()
            seq = run_measured(
                bench_script("sequential_fetch.py", str(ws / "urls.txt"), str(ws / "seq")),
                env=clean_env(),
                cwd=ws,
                timeout=1800,
            )
            _check_files(ws / "seq", count, total_bytes, "sequential loop")
            shutil.rmtree(ws / "seq")

            log("download: manage_data.py import --no-media (how long before the first download starts)")
            rows_env = project_env(ws / "no-media", sqlite_url(ws / "no-media" / "social_tui.db"))
            no_media = run_measured(
                project_cli("manage_data.py", "import", "--no-media", str(ws / "posts")),
                env=rows_env,
                cwd=ws / "no-media",
                timeout=300,
            )
            ours_seconds = _median([m.seconds for m, *_ in ours_runs])
            aria_seconds = _median([m.seconds for m, _ in aria_runs])
            facts = (
                f"{count:,} media, {fmt_bytes(total_bytes)}, {LATENCY * 1000:.0f} ms per request; "
                f"ours ({_spread([m for m, *_ in ours_runs])}): {ours_requests} requests, {ours_in_flight} in flight at most, "
                f"{ours.cpu_seconds:.1f} CPU s ({ours.cores_used:.2f} cores), peak RSS {fmt_bytes(ours.max_rss)}; "
                f"`import --no-media` of the same posts (start-up + posts and media rows, no request) takes "
                f"{fmt_seconds(no_media.seconds)}"
            )
            aria = aria_runs[-1][0]
            rows.append(
                Row(
                    f"1a. download {count:,} media: `manage_data.py import` vs `aria2c -j 5`",
                    fmt_seconds(ours_seconds),
                    fmt_seconds(aria_seconds),
                    aria_seconds / ours_seconds,
                    "≥ 1.00× (no slower than aria2c)",
                    ours_seconds <= aria_seconds,
                    [facts, f"aria2c ({_spread([m for m, _ in aria_runs])}): {aria_runs[-1][1]} in flight at most, "
                            f"{aria.cpu_seconds:.1f} CPU s, peak RSS {fmt_bytes(aria.max_rss)}"],
                    {"ours": [m.summary() for m, *_ in ours_runs], "theirs": [m.summary() for m, _ in aria_runs],
                     "no_media": no_media.summary(), "media": count, "bytes": total_bytes},
                )
            )  # fmt: skip
            rows.append(
                Row(
                    f"1b. download {count:,} media: `manage_data.py import` vs sequential `requests.get` loop",
                    fmt_seconds(ours_seconds),
                    fmt_seconds(seq.seconds),
                    seq.seconds / ours_seconds,
                    "≥ 4.00×",
                    seq.seconds / ours_seconds >= 4.0,
                    [f"sequential loop: {seq.cpu_seconds:.1f} CPU s, peak RSS {fmt_bytes(seq.max_rss)}"],
                    {"ours": [m.summary() for m, *_ in ours_runs], "theirs": seq.summary()},
                )
            )

        if want_reimport:
            rows.append(_reimport(ws, server, posts, count, total_bytes, env, db))
    return rows


def _reimport(ws: Path, server: MediaTestServer, posts, count: int, total_bytes: int, env, db: Path) -> Row:
    """The same posts scraped a week later: same paths, new signatures."""
    resigned = Signer(seed=21, now=None)
    resigned.expires += 7 * 24 * 3600
    urls = write_posts(ws / "posts_resigned", posts, server.base_url, resigned, seed=12)
    write_url_list(ws / "urls_resigned.txt", urls)
    log("reimport: manage_data.py import of the re-signed posts")
    server.clear()
    ours = run_measured(
        project_cli("manage_data.py", "import", str(ws / "posts_resigned")),
        env=env,
        cwd=db.parent,
        timeout=600,
    )
    requests = len(server.requests)
    _check_import(db, count, "re-import")
    with sqlite3.connect(db) as conn:
        media_rows = conn.execute("SELECT count(*) FROM post_media").fetchone()[0]
    log("reimport: the older scripts re-fetch every re-signed URL (sequential loop)")
    server.clear()
    seq = run_measured(
        bench_script("sequential_fetch.py", str(ws / "urls_resigned.txt"), str(ws / "seq2")),
        env=clean_env(), cwd=ws, timeout=1800,
    )  # fmt: skip
    seq_requests = len(server.requests)
    shutil.rmtree(ws / "seq2", ignore_errors=True)
    met = requests == 0 and ours.seconds <= REIMPORT_TARGET_SECONDS and media_rows == count
    return Row(
        f"2. re-import {count:,} media's posts with re-signed URLs vs the older scripts (URL-keyed cache: re-fetch all)",
        f"{requests} requests, {fmt_seconds(ours.seconds)}",
        f"{seq_requests:,} requests, {fmt_seconds(seq.seconds)}",
        seq.seconds / ours.seconds,
        f"0 requests, ≤ {REIMPORT_TARGET_SECONDS:.0f} s",
        met,
        [f"re-import kept {media_rows:,} media rows for {count:,} slots (no duplicates); "
         f"older scripts re-download {fmt_bytes(total_bytes)}"],
        {"ours": ours.summary(), "theirs": seq.summary(), "requests": requests, "media_rows": media_rows},
    )  # fmt: skip


# --- scenario 3 ------------------------------------------------------------------------------


def run_memory(ctx: Context) -> list[Row]:
    size = ctx.scale(1 * GB, 100 * MB)
    rng = random.Random(3)
    video = make_video(rng, size)
    posts = posts_for([video], rng)
    ws = ctx.ws.dir("memory")
    rows = []
    log(f"memory: one {fmt_bytes(size)} file")
    with MediaTestServer() as server:
        register(server, [video])
        urls = write_posts(ws / "posts", posts, server.base_url, Signer(seed=31), seed=32)
        write_url_list(ws / "urls.txt", urls)
        write_aria2_input(ws / "aria2.txt", urls)
        db = ws / "ours" / "social_tui.db"
        env = project_env(ws / "ours", sqlite_url(db), MEDIA_MAX_FILE_SIZE=str(2 * size))
        log("memory: manage_data.py import")
        ours = run_measured(
            project_cli("manage_data.py", "import", str(ws / "posts")), env=env, cwd=ws / "ours", timeout=900
        )
        _check_import(db, 1, "manage_data.py import (1 GB)")
        shutil.rmtree(ws / "ours" / "cache")
        log("memory: aria2c")
        aria = run_measured(
            aria2c_command(ws / "aria2.txt", ws / "aria2"), env=clean_env(), cwd=ws, timeout=900
        )
        _check_files(ws / "aria2", 1, size, "aria2c")
        shutil.rmtree(ws / "aria2")
        log("memory: requests.get (older scripts)")
        seq = run_measured(
            bench_script("sequential_fetch.py", str(ws / "urls.txt"), str(ws / "seq")),
            env=clean_env(),
            cwd=ws,
            timeout=900,
        )
        _check_files(ws / "seq", 1, size, "sequential loop")
        shutil.rmtree(ws / "seq")
    what = f"3{{}}. peak RSS downloading one {fmt_bytes(size)} file: `manage_data.py import` vs {{}}"
    target = f"< {fmt_bytes(MEMORY_TARGET)}"
    base_notes = [
        f"ours took {fmt_seconds(ours.seconds)} ({fmt_bytes(size / ours.seconds)}/s); peak RSS of each process from GNU time (%M)"
    ]
    rows.append(Row(what.format("a", "`aria2c`"), fmt_bytes(ours.max_rss), fmt_bytes(aria.max_rss),
                    aria.max_rss / ours.max_rss, target, ours.max_rss < MEMORY_TARGET, base_notes,
                    {"ours": ours.summary(), "theirs": aria.summary(), "size": size}))  # fmt: skip
    rows.append(Row(what.format("b", "the older scripts' `requests.get`"), fmt_bytes(ours.max_rss),
                    fmt_bytes(seq.max_rss), seq.max_rss / ours.max_rss, target, ours.max_rss < MEMORY_TARGET,
                    [], {"ours": ours.summary(), "theirs": seq.summary(), "size": size}))  # fmt: skip
    return rows
