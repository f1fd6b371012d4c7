"""Scenario 7: `manage_media.py analyze` of 200 cached images through the loopback
OpenAI-compatible server, which takes 300 ms per call, with 1, 2, 4 and 8 workers.

Each worker count starts from the same database (a copy taken after the downloads), so
every run analyses all 200 images. The comparison is the ideal a latency-bound queue can
reach: workers ÷ 0.3 s images per second.
"""

from __future__ import annotations

import random
import shutil
import sqlite3

from bench.common import (
    BenchError,
    Context,
    Row,
    log,
    project_cli,
    project_env,
    rate_row,
    run_measured,
    sqlite_url,
)
from bench.content import Signer, make_image, posts_for, register, write_posts
from devtools.media_server import MediaTestServer
from devtools.openai_server import OpenAITestServer

LATENCY = 0.3
WORKERS = (1, 2, 4, 8)
# Photo sizes as a feed has them (the analysis downsizes to 1536 px and re-encodes).
SIZES = ((640, 480), (800, 800), (1080, 1080), (1200, 627), (1280, 720), (1600, 1200), (2048, 1536))


def run(ctx: Context) -> list[Row]:
    count = ctx.scale(200, 20)
    rng = random.Random(7)
    media = [make_image(rng, 0, *rng.choice(SIZES)) for _ in range(count)]
    posts = posts_for(media, rng)
    ws = ctx.ws.dir("analysis")
    base_db = ws / "downloaded.db"
    log(f"analysis: downloading {count} images (setup)")
    with MediaTestServer() as server:
        register(server, media)
        write_posts(ws / "posts", posts, server.base_url, Signer(seed=71), seed=72)
        run_measured(
            project_cli("manage_data.py", "import", str(ws / "posts")),
            env=project_env(ws, sqlite_url(base_db)), cwd=ws, timeout=600,
        )  # fmt: skip
    rows: list[Row] = []
    single = None
    with OpenAITestServer(latency=LATENCY, keep_requests=False) as api:
        for workers in WORKERS:
            db = ws / f"workers{workers}.db"
            shutil.copyfile(base_db, db)
            for suffix in ("-wal", "-shm"):
                if base_db.with_name(base_db.name + suffix).exists():
                    shutil.copyfile(base_db.with_name(base_db.name + suffix), db.with_name(db.name + suffix))
            env = project_env(ws, sqlite_url(db), OPENAI_API_KEY="bench", OPENAI_BASE_URL=api.base_url)
            log(f"analysis: analyze --workers {workers}")
            calls_before = len(api.calls)
            measured = run_measured(
                project_cli("manage_media.py", "analyze", "--status", "not_started", "--workers", str(workers)),
                env=env, cwd=ws, timeout=900,
            )  # fmt: skip
            calls = len(api.calls) - calls_before
            with sqlite3.connect(db) as conn:
                done = conn.execute(
                    "SELECT count(*) FROM post_media WHERE ai_analysis_status='completed'"
                ).fetchone()[0]
            if done != count:
                raise BenchError(f"analyze --workers {workers} completed {done} of {count} images")
            rate = count / measured.seconds
            ideal = workers / LATENCY
            single = single or rate
            rows.append(
                rate_row(
                    f"7. analyze {count} images, 300 ms per call, `--workers {workers}` vs the latency bound",
                    count, "images/s", (measured.seconds, count / ideal),
                    [f"{calls} API calls; {rate / single:.2f}× the 1-worker rate; {measured.cpu_seconds:.1f} CPU s "
                     f"({measured.cores_used:.2f} cores) in the analyser, peak RSS {measured.max_rss / 2**20:.0f} MB"],
                    {"ours": measured.summary(), "workers": workers, "images": count, "calls": calls},
                )
            )  # fmt: skip
    return rows
