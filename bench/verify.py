"""Scenario 4: `manage_media.py verify-cache` over 2 GB of cached files vs `md5sum` on them.

The cache is filled the way users fill it (`manage_data.py import` from the loopback CDN),
then both sides hash the same files with the page cache warm: one untimed warm-up of each,
then three timed runs of each, alternating; the median counts.
"""

from __future__ import annotations

import random

from bench.common import (
    GB,
    MB,
    BenchError,
    Context,
    Row,
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
from bench.content import Signer, make_image, make_video, posts_for, register, sizes_for_total, write_posts
from bench.download import directory_bytes
from devtools.media_server import MediaTestServer

TARGET = 1.5


def fill_cache(ctx: Context, name: str, count: int, total: int, seed: int):
    """Import `count` media adding up to `total` bytes; returns (workdir, env, db path, files)."""
    rng = random.Random(seed)
    sizes = sizes_for_total(rng, count, total)
    # Mostly photos; every tenth file a video, as a feed has.
    media = [make_video(rng, s) if i % 10 == 9 else make_image(rng, s) for i, s in enumerate(sizes)]
    posts = posts_for(media, rng)
    ws = ctx.ws.dir(name)
    db = ws / "social_tui.db"
    env = project_env(ws, sqlite_url(db))
    log(f"{name}: filling the cache: {count} files, {fmt_bytes(total)} (manage_data.py import)")
    with MediaTestServer() as server:
        register(server, media)
        write_posts(ws / "posts", posts, server.base_url, Signer(seed=seed), seed=seed)
        run_measured(
            project_cli("manage_data.py", "import", str(ws / "posts")), env=env, cwd=ws, timeout=1200
        )
    files = sorted(
        p for p in (ws / "cache" / "media").rglob("*") if p.is_file() and not p.name.startswith(".")
    )
    found, nbytes = directory_bytes(ws / "cache" / "media")
    if found != count or nbytes != total:
        raise BenchError(f"{name}: expected {count} cached files / {total:,} B, found {found} / {nbytes:,} B")
    return ws, env, db, files


def run(ctx: Context) -> list[Row]:
    total = ctx.scale(2 * GB, 200 * MB)
    count = ctx.scale(500, 50)
    ws, env, _, files = fill_cache(ctx, "verify", count, total, seed=4)
    md5sum = [require_tool("md5sum", "coreutils"), *map(str, files)]
    ours_cmd = project_cli("manage_media.py", "verify-cache", "--json")
    log("verify: warm-up (page cache) of both sides")
    run_measured(md5sum, env=clean_env(), cwd=ws, timeout=600)
    run_measured(ours_cmd, env=env, cwd=ws, timeout=600)
    ours_runs, theirs_runs = [], []
    for rep in range(3):
        log(f"verify: md5sum and verify-cache (run {rep + 1} of 3)")
        theirs_runs.append(run_measured(md5sum, env=clean_env(), cwd=ws, timeout=600))
        ours_runs.append(run_measured(ours_cmd, env=env, cwd=ws, timeout=600))
    import json

    report = json.loads(ours_runs[-1].stdout)
    if report["files_checked"] != count or report["corrupt"] or report["missing"]:
        raise BenchError(f"verify-cache did not check every file cleanly: {report}")
    ours = sorted(ours_runs, key=lambda m: m.seconds)[1]
    theirs = sorted(theirs_runs, key=lambda m: m.seconds)[1]
    ratio = theirs.seconds / ours.seconds
    return [
        Row(
            f"4. verify-cache over {fmt_bytes(total)} ({count} files) vs `md5sum` on the same files",
            fmt_seconds(ours.seconds),
            fmt_seconds(theirs.seconds),
            ratio,
            f"≥ {TARGET:.2f}×, both cores",
            ratio >= TARGET and ours.cores_used > 1.2,
            [
                f"median of 3 after a warm-up, page cache warm; ours used {ours.cores_used:.2f} cores "
                f"({ours.cpu_seconds:.1f} CPU s, {fmt_bytes(total / ours.seconds)}/s), md5sum "
                f"{theirs.cores_used:.2f} cores ({fmt_bytes(total / theirs.seconds)}/s); runs: ours "
                + ", ".join(f"{m.seconds:.2f}" for m in ours_runs)
                + " s, md5sum "
                + ", ".join(f"{m.seconds:.2f}" for m in theirs_runs)
                + " s"
            ],
            {"ours": [m.summary() for m in ours_runs], "theirs": [m.summary() for m in theirs_runs]},
        )
    ]
