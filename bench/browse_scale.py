"""Scenario 10: `manage_media.py browse` over 130,000 media rows: time to the first screen.

The rows of scenario 8 (43,334 posts, three media each) are seeded into SQLite and PostgreSQL.
`browse` runs in tmux on a 150x40 terminal, as a person starts it; the time counted is from
spawn until the first row (a seeded author's name) is on the screen, read with `capture-pane`
every 20 ms. Three runs, the median counts. A second line times the query under it: one page of
`find_media` (200 rows with their post), unfiltered and with a text filter, in-process.

The comparison is the database's own client printing the same first page (the same join,
ordered and limited the same way): what any browser needs at least before it can draw.

Target (issue 15): the first screen in under a second on 100,000 rows.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import time
import uuid
from pathlib import Path

from bench.common import (
    BenchError,
    Context,
    Row,
    fmt_seconds,
    log,
    not_measured,
    project_cli,
    project_env,
    run_measured,
    sqlite_url,
    throwaway_postgres,
)
from bench.list_scale import seed_postgres, seed_sqlite

TARGET_SECONDS = 1.0
TARGET = "first screen < 1 s"
RUNS = 3
FIRST_PAGE_SQL = (
    "SELECT m.media_id, p.author_name, p.author_username, p.posted_at_timestamp, m.media_type, m.file_size,"
    " m.download_status, p.text_content FROM posts p JOIN post_media m ON m.post_id = p.post_id"
    " ORDER BY p.posted_at_timestamp DESC, p.post_id DESC, m.position, m.media_id LIMIT 200"
)


def first_screen_seconds(ws: Path, database_url: str) -> float:
    """Spawn `browse` in a fresh tmux session; seconds until a row is on the screen."""
    session = f"bench-browse-{uuid.uuid4().hex[:8]}"
    env = project_env(ws, database_url, TERM="xterm-256color")
    command = " ".join(f"{k}='{v}'" for k, v in env.items() if "'" not in v)
    command = f"env -i {command} {' '.join(project_cli('manage_media.py', 'browse'))}"
    started = time.perf_counter()
    subprocess.run(
        ["tmux", "-L", session, "new-session", "-d", "-s", session, "-x", "150", "-y", "40", command],
        check=True,
        cwd=ws,
    )
    try:
        while time.perf_counter() - started < 30:
            screen = subprocess.run(
                ["tmux", "-L", session, "capture-pane", "-p", "-t", session], capture_output=True, text=True
            ).stdout
            if "Author " in screen and "media" in screen:
                return time.perf_counter() - started
            time.sleep(0.02)
        raise BenchError(f"browse showed no row within 30 s; the screen:\n{screen[-800:]}")
    finally:
        subprocess.run(["tmux", "-L", session, "send-keys", "-t", session, "q"], capture_output=True)
        time.sleep(0.2)
        subprocess.run(["tmux", "-L", session, "kill-server"], capture_output=True)


def query_seconds(database_url: str) -> dict[str, float]:
    """One page of find_media, unfiltered and with a text filter, in this process."""
    from social_tui_media.settings import Settings
    from social_tui_media.store import open_store
    from social_tui_media.store.browse import find_media
    from social_tui_media.store.interface import BrowseQuery

    store = open_store(Settings(database_url=database_url))
    try:
        timings = {}
        for name, query in (
            ("all", BrowseQuery()),
            ("text", BrowseQuery(text="number 4333")),
            ("video", BrowseQuery(media_type="video")),
        ):
            started = time.perf_counter()
            page = find_media(store, query)
            timings[name] = time.perf_counter() - started
            if not page.rows:
                raise BenchError(f"find_media({query}) found nothing")
        return timings
    finally:
        store.close()


def _measure(ws: Path, database_url: str, back_end: str, letter: str, rows: int, floor: list[str]) -> Row:
    seconds = [first_screen_seconds(ws, database_url) for _ in range(RUNS)]
    ours = statistics.median(seconds)
    queries = query_seconds(database_url)
    theirs = run_measured(floor, env=project_env(ws, database_url), cwd=ws, timeout=120)
    return Row(
        f"10{letter}. `browse`: first screen over {rows:,} media rows, {back_end}",
        f"{fmt_seconds(ours)} (runs: {', '.join(fmt_seconds(s) for s in seconds)})",
        f"{fmt_seconds(theirs.seconds)} (the first page by the database's own client)",
        theirs.seconds / ours if ours else None,
        TARGET,
        ours < TARGET_SECONDS,
        [f"in tmux, spawn to the first row on screen, Python start-up included; one page of find_media "
         f"in-process: {queries['all'] * 1000:.0f} ms, with a text filter {queries['text'] * 1000:.0f} ms, "
         f"videos only {queries['video'] * 1000:.0f} ms"],
        {"first_screen": seconds, "queries": queries, "floor": theirs.summary()},
    )  # fmt: skip


def run(ctx: Context) -> list[Row]:
    if shutil.which("tmux") is None:
        return [
            not_measured(
                "10. `browse` first screen", "tmux is not installed (apt-get install -y tmux)", TARGET
            )
        ]
    media = ctx.scale(130_000, 13_000)
    results: list[Row] = []
    ws = ctx.ws.dir("browse", "sqlite")
    db = ws / "social_tui.db"
    seed_sqlite(db, media)
    log(f"browse: SQLite seeded with {media:,} media rows")
    results.append(_measure(ws, sqlite_url(db), "SQLite", "a", media, ["sqlite3", str(db), FIRST_PAGE_SQL]))
    ws = ctx.ws.dir("browse", "pg")
    try:
        with throwaway_postgres() as url:
            seed_postgres(url, media)
            log(f"browse: PostgreSQL seeded with {media:,} media rows")
            results.append(
                _measure(
                    ws, url, "PostgreSQL", "b", media, ["psql", "-X", "-q", "-d", url, "-c", FIRST_PAGE_SQL]
                )
            )
    except BenchError as exc:
        results.append(
            not_measured("10b. `browse` first screen, PostgreSQL", str(exc).splitlines()[0], TARGET)
        )
    return results
