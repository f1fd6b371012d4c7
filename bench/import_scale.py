"""Scenario 9: `manage_data.py import FILE --no-media` of one file of 100,000 posts (~166 MB).

The posts are the benchmark's usual ones (single images and carousels of 2-6, ~250,000 media
rows), written as one list in one file, as a long scrape leaves them. The file is imported
into SQLite and into a throwaway PostgreSQL database, each import its own measured process:
posts per second end to end (start-up included) and the process's peak RSS. The comparison
is the floor for the same database, `bench/raw_insert.py` (each post's URN and JSON into one
table in one transaction), which reads the file whole.

Targets (issue 13, item 10): flat memory (peak RSS under 150 MB) and at least 5,000 posts/s
into SQLite, 2,000 posts/s into PostgreSQL. `--quick`: 10,000 posts.
"""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

from bench.common import (
    MB,
    BenchError,
    Context,
    Measured,
    Row,
    check_stored,
    fmt_bytes,
    fmt_rate,
    fmt_seconds,
    log,
    not_measured,
    project_cli,
    project_env,
    raw_insert_floor,
    run_measured,
    sqlite_url,
    throwaway_postgres,
)
from bench.content import Post, Signer, make_image, post_json, posts_for

FAKE_CDN = "http://127.0.0.1:9"  # never contacted: --no-media
RSS_TARGET = 150 * MB
RATE_TARGETS = {"SQLite": 5000, "PostgreSQL": 2000}  # posts per second
IMAGES_PER_GROUP = 2200  # posts_for slices its list: grouped a few thousand at a time, it stays linear


def _posts(count: int) -> list[Post]:
    """`count` posts of 1-6 images each, as scenario 6 makes them, with unique URNs."""
    rng = random.Random(9)
    posts: list[Post] = []
    while len(posts) < count:
        images = [make_image(rng, 100_000) for _ in range(IMAGES_PER_GROUP)]
        posts += posts_for(images, rng, 7393000000000000000 + len(posts))
    return posts[:count]


def _scrape_file(ctx: Context, count: int) -> tuple[Path, int]:
    """One scrape file holding `count` posts as a JSON list; returns it and its media count."""
    posts = _posts(count)
    path = ctx.ws.dir("import", "scrape") / "scrape.json"
    signer, rng = Signer(seed=91), random.Random(92)
    with open(path, "w") as out:
        out.write("[")
        for number, post in enumerate(posts):
            out.write(("," if number else "") + json.dumps(post_json(post, FAKE_CDN, signer, rng)))
        out.write("]")
    return path, sum(len(p.media) for p in posts)


def _row(
    backend: str, path: Path, count: int, media: int, ours: Measured, theirs: Measured, floor: str
) -> Row:
    ours_rate, theirs_rate = count / ours.seconds, count / theirs.seconds
    size = fmt_bytes(path.stat().st_size)
    target = RATE_TARGETS[backend]
    return Row(
        f"9{'a' if backend == 'SQLite' else 'b'}. import one {count:,}-post file ({size}) `--no-media` "
        f"into {backend} vs raw insert",
        f"{fmt_rate(ours_rate, 'posts/s')} ({fmt_seconds(ours.seconds)}), peak RSS {fmt_bytes(ours.max_rss)}",
        f"{fmt_rate(theirs_rate, 'posts/s')} ({fmt_seconds(theirs.seconds)}), peak RSS {fmt_bytes(theirs.max_rss)}",
        ours_rate / theirs_rate,
        f"≥ {target:,} posts/s, peak RSS < {fmt_bytes(RSS_TARGET)}",
        ours_rate >= target and 0 < ours.max_rss < RSS_TARGET,
        [f"{count:,} posts, {media:,} media rows in one {size} file; {ours.cpu_seconds:.1f} CPU s in the "
         f"importer ({ours.cores_used:.2f} cores); floor: {floor}, reading the file whole"],
        {"ours": ours.summary(), "theirs": theirs.summary(), "posts": count, "media_rows": media,
         "file_bytes": path.stat().st_size},
    )  # fmt: skip


def _import(path: Path, ws_dir: Path, database_url: str) -> Measured:
    return run_measured(
        project_cli("manage_data.py", "import", "--no-media", str(path)),
        env=project_env(ws_dir, database_url), cwd=ws_dir, timeout=1800,
    )  # fmt: skip


def _sqlite(ctx: Context, path: Path, count: int, media: int) -> Row:
    ws = ctx.ws.dir("import", "sqlite")
    log(f"import: one file of {count:,} posts into SQLite")
    ours = _import(path, ws, sqlite_url(ws / "social_tui.db"))
    with sqlite3.connect(ws / "social_tui.db") as conn:
        check_stored(conn, count, media, "SQLite import")
    theirs = raw_insert_floor("sqlite", str(ws / "raw.db"), path.parent, ws)
    return _row("SQLite", path, count, media, ours, theirs, "`sqlite3` executemany of (urn, raw_json)")


def _postgres(ctx: Context, path: Path, count: int, media: int) -> Row:
    ws = ctx.ws.dir("import", "pg")
    log(f"import: one file of {count:,} posts into PostgreSQL")
    try:
        with throwaway_postgres() as url:
            ours = _import(path, ws, url)
            import psycopg

            with psycopg.connect(url) as conn:
                check_stored(conn, count, media, "PostgreSQL import")
            theirs = raw_insert_floor("postgres", url, path.parent, ws)
    except BenchError as exc:
        return not_measured(f"9b. import one {count:,}-post file into PostgreSQL", str(exc).splitlines()[0])
    return _row("PostgreSQL", path, count, media, ours, theirs, "psycopg `COPY` of (urn, raw_json jsonb)")


def run(ctx: Context) -> list[Row]:
    count = ctx.scale(100_000, 10_000)
    log(f"import: writing one file of {count:,} posts")
    path, media = _scrape_file(ctx, count)
    return [_sqlite(ctx, path, count, media), _postgres(ctx, path, count, media)]
