"""Scenario 6: `manage_data.py import --no-media` of 5,000 posts into each back end.

Posts per second, end to end (start-up included). The comparison is the floor for the same
database: `bench/raw_insert.py` storing just each post's URN and JSON in one table, in one
transaction. The Supabase REST back end is measured when its module and loopback server
work; otherwise its row says so.
"""

from __future__ import annotations

import random
import sqlite3

from bench.common import (
    BenchError,
    Context,
    Row,
    check_stored,
    log,
    not_measured,
    project_cli,
    project_env,
    rate_row,
    raw_insert_floor,
    run_measured,
    sqlite_url,
    throwaway_postgres,
)
from bench.content import Signer, log_uniform_sizes, make_image, posts_for, write_posts

FAKE_CDN = "http://127.0.0.1:9"  # never contacted: --no-media


def _posts_dir(ctx: Context, count: int):
    """`count` posts with 1-6 images each (media rows are stored, nothing is fetched)."""
    rng = random.Random(6)
    media = [make_image(rng, s) for s in log_uniform_sizes(rng, int(count * 2.2), 30_000, 2_000_000)]
    posts = posts_for(media, rng)
    while len(posts) < count:  # top up with single-image posts
        posts += posts_for(
            [make_image(rng, 100_000) for _ in range(count - len(posts))],
            rng,
            7392000000000000000 + len(posts),
        )
    posts = posts[:count]
    directory = ctx.ws.dir("posts", "scrape")
    write_posts(directory, posts, FAKE_CDN, Signer(seed=61), seed=62, per_file=500)
    return directory, sum(len(p.media) for p in posts)


def _row(name: str, count: int, media: int, ours, theirs, what_floor: str) -> Row:
    return rate_row(
        f"6{name}", count, "posts/s", (ours.seconds, theirs.seconds),
        [f"{count:,} posts, {media:,} media rows, {ours.cpu_seconds:.1f} CPU s in the importer "
         f"({ours.cores_used:.2f} cores); floor: {what_floor}"],
        {"ours": ours.summary(), "theirs": theirs.summary(), "posts": count, "media_rows": media},
    )  # fmt: skip


def run(ctx: Context) -> list[Row]:
    count = ctx.scale(5000, 500)
    directory, media = _posts_dir(ctx, count)
    ws = ctx.ws.dir("posts")
    rows: list[Row] = []

    log(f"posts: import --no-media of {count:,} posts into SQLite")
    db = ws / "sqlite" / "social_tui.db"
    ours = run_measured(
        project_cli("manage_data.py", "import", "--no-media", str(directory)),
        env=project_env(ws / "sqlite", sqlite_url(db)), cwd=ws / "sqlite", timeout=900,
    )  # fmt: skip
    with sqlite3.connect(db) as conn:
        check_stored(conn, count, media, "SQLite import")
    theirs = raw_insert_floor("sqlite", str(ws / "raw.db"), directory, ws)
    rows.append(_row(f"a. import {count:,} posts `--no-media` into SQLite vs raw insert", count, media, ours, theirs,
                     "`sqlite3` executemany of (urn, raw_json) in one transaction"))  # fmt: skip

    log(f"posts: import --no-media of {count:,} posts into PostgreSQL")
    try:
        with throwaway_postgres() as url:
            ours = run_measured(
                project_cli("manage_data.py", "import", "--no-media", str(directory)),
                env=project_env(ws / "pg", url), cwd=ws / "pg", timeout=900,
            )  # fmt: skip
            import psycopg

            with psycopg.connect(url) as conn:
                check_stored(conn, count, media, "PostgreSQL import")
            theirs = raw_insert_floor("postgres", url, directory, ws)
        rows.append(_row(f"b. import {count:,} posts `--no-media` into PostgreSQL vs raw insert", count, media, ours,
                         theirs, "psycopg `COPY` of (urn, raw_json jsonb) in one transaction"))  # fmt: skip
    except BenchError as exc:
        rows.append(
            not_measured(f"6b. import {count:,} posts `--no-media` into PostgreSQL", str(exc).splitlines()[0])
        )

    rows.append(_rest(ctx, count, media, directory))
    return rows


def _rest(ctx: Context, count: int, media: int, directory) -> Row:
    """The Supabase REST back end, if it exists yet and works."""
    name = f"6c. import {count:,} posts `--no-media` through Supabase REST (reference)"
    try:
        from bench import rest_backend
    except ImportError as exc:
        return not_measured(name, f"not measured: {exc}")
    try:
        return rest_backend.measure(ctx, name, count, media, directory, _row)
    except Exception as exc:  # noqa: BLE001 - a back end being written must not stop the run
        return not_measured(
            name,
            f"not measured: the REST back end failed: {exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
        )
