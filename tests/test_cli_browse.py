"""`browse` as a person sees it: the Textual app through Textual's own pilot (headless: keys
pressed, the screen read, the half-block image fallback drawn), and the real command in tmux."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from social_tui_media.cli.browse import MediaBrowser
from social_tui_media.media.cache import MediaCache
from social_tui_media.store.interface import BrowseQuery
from tests.conftest import ROOT

DOCS = ROOT / "docs"
pytestmark = pytest.mark.parametrize("store_kind", ["sqlite"])


async def settle(pilot) -> None:
    """Wait until the app's workers (page loads, thumbnails) are done and the screen drawn."""
    for _ in range(200):
        await pilot.pause(0.05)
        if all(worker.is_finished for worker in pilot.app.workers):
            await pilot.pause()
            return
    raise AssertionError("the browser's workers did not finish")


def screen_text(app) -> str:
    """What the terminal shows, as plain text (the SVG export's text, without markup)."""
    import re
    from html import unescape

    svg = app.export_screenshot()
    return unescape(" ".join(re.findall(r">([^<>]*)</text>", svg))).replace("\xa0", " ")


def browser(store, settings, **options) -> MediaBrowser:
    options.setdefault("images", "halfblock")
    return MediaBrowser(store, MediaCache(settings.cache_dir), options.pop("query", BrowseQuery()), **options)


def run(app, scenario, size=(150, 40)):
    async def main():
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            await scenario(pilot)

    asyncio.run(main())


def test_the_list_shows_each_media_with_its_post_and_the_preview_its_thumbnail(store, settings, shown_media):
    app = browser(store, settings)

    async def scenario(pilot):
        table = app.query_one("DataTable")
        assert table.row_count == 13 and app.sub_title == "13 media"
        text = screen_text(app)
        assert "Bo Chen @bo" in text and "2025-11-15" in text and "image" in text
        first = app.rows[0]
        assert first["post_author_name"] in text
        preview = app.query_one("#preview")
        assert preview.image is not None and Path(preview.image).name == f"{first['md5_sum']}.webp"
        # The half-block fallback draws pixels as coloured ▀ cells, in any terminal.
        assert "▀" in text or "▄" in text
        if os.environ.get("UPDATE_SCREENSHOTS"):
            DOCS.mkdir(exist_ok=True)
            app.save_screenshot(filename="browse.svg", path=str(DOCS))

    run(app, scenario)


def test_typing_a_search_filters_the_list_live(store, settings, shown_media):
    app = browser(store, settings)

    async def scenario(pilot):
        await pilot.press("slash", *"costs")
        await pilot.pause(0.4)  # the pause after typing
        await settle(pilot)
        assert app.query_one("DataTable").row_count == 1
        assert "A bar chart of cloud costs falling quarter by quarter" in screen_text(app)
        await pilot.press(*["backspace"] * 5, "enter")
        await pilot.pause(0.4)
        await settle(pilot)
        assert app.query_one("DataTable").row_count == 13

    run(app, scenario)


def test_brackets_jump_between_the_media_of_one_post(store, settings, shown_media):
    app = browser(store, settings)

    async def scenario(pilot):
        post_id = app.rows[0]["post_id"]
        same = [i for i, r in enumerate(app.rows) if r["post_id"] == post_id]
        assert len(same) >= 2  # the carousel post comes first
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert app.query_one("DataTable").cursor_row == same[1]
        await pilot.press("left_square_bracket", "left_square_bracket")
        await settle(pilot)
        assert app.query_one("DataTable").cursor_row == same[-1]  # wraps around

    run(app, scenario)


def test_keys_copy_the_post_url_and_requeue_the_analysis(store, settings, shown_media):
    app = browser(store, settings)

    async def scenario(pilot):
        analysed = next(i for i, r in enumerate(app.rows) if r["ai_analysis_status"] == "completed")
        app.query_one("DataTable").move_cursor(row=analysed)
        await settle(pilot)
        row = app.rows[analysed]
        await pilot.press("c")
        assert app.clipboard == row["post_url"]
        await pilot.press("a")
        await settle(pilot)
        assert store.get_media(row["media_id"])["ai_analysis_status"] == "not_started"
        assert "cached" in screen_text(app)

    run(app, scenario)


def test_pages_load_as_the_cursor_nears_the_end(store, settings, shown_media):
    app = browser(store, settings, page_rows=5)

    async def scenario(pilot):
        table = app.query_one("DataTable")
        assert table.row_count >= 5
        for _ in range(12):
            await pilot.press("down")
            await settle(pilot)
        assert table.row_count == 13 and app.cursor is None and app.sub_title == "13 media"
        assert len({r["media_id"] for r in app.rows}) == 13

    run(app, scenario)


def test_text_from_posts_is_shown_as_text_not_markup(store, settings, shown_media):
    row = shown_media[0]
    store.update_media(
        row["media_id"], {"ai_analysis": {"description": "[bold red]not markup[/] [link=x]y[/link]"}}
    )
    app = browser(store, settings, query=BrowseQuery(text="not markup"))

    async def scenario(pilot):
        assert "[bold red]not markup[/] [link=x]y[/link]" in screen_text(app)

    run(app, scenario)


def test_without_textual_browse_says_what_to_install_and_exits_2(cli_env, tmp_path):
    blocker = tmp_path / "no-textual"
    blocker.mkdir()
    (blocker / "textual_image.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'textual_image'\", name='textual_image')\n"
    )
    env = {**cli_env, "PYTHONPATH": f"{blocker}{os.pathsep}{cli_env['PYTHONPATH']}"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage_media.py"), "browse"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert "pip install 'social-tui-media[browse]'" in line and "textual_image" in line


def tmux_screen(session: str) -> str:
    return subprocess.run(
        ["tmux", "-L", session, "capture-pane", "-p", "-t", session], capture_output=True, text=True
    ).stdout


def wait_for(session: str, text: str, seconds: float = 30) -> str:
    screen = ""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        screen = tmux_screen(session)
        if text in screen:
            return screen
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never showed; the screen:\n{screen}")


def start_in_tmux(cli_env: dict[str, str], cwd: Path, *args: str) -> str:
    """`manage_media.py ARGS` in a new tmux server of its own (150x40); the session's name."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed to test what a terminal shows (.ci/run installs it)")
    session = f"stm-browse-{uuid.uuid4().hex[:8]}"
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in cli_env.items() if k not in ("COLUMNS", "LINES"))
    script = f"{sys.executable} {ROOT / 'manage_media.py'} {shlex.join(args)}"
    command = f"env -i TERM=xterm-256color {env} {script}; echo EXIT=$?; sleep 30"
    subprocess.run(
        ["tmux", "-L", session, "new-session", "-d", "-s", session, "-x", "150", "-y", "40", command],
        check=True,
        cwd=cwd,
    )
    return session


@contextmanager
def browsing_in_tmux(cli_env: dict[str, str], cwd: Path, *args: str) -> Iterator[str]:
    """`manage_media.py ARGS` in tmux for the body; then `q`, and it must exit 0."""
    session = start_in_tmux(cli_env, cwd, *args)
    try:
        yield session
        subprocess.run(["tmux", "-L", session, "send-keys", "-t", session, "q"], check=True)
        screen = wait_for(session, "EXIT=")
    finally:
        subprocess.run(["tmux", "-L", session, "kill-server"], capture_output=True)
    assert "EXIT=0" in screen


def test_browse_in_tmux_lists_searches_and_quits(shown_media, cli_env, tmp_path):
    with browsing_in_tmux(cli_env, tmp_path, "browse") as session:
        wait_for(session, "13 media")
        screen = wait_for(session, "Copy post URL")
        assert "Bo Chen @bo" in wait_for(session, "Bo Chen @bo")
        wait_for(
            session, "▀"
        )  # the thumbnail (made on first show): tmux answers no graphics query, so half-blocks
        subprocess.run(["tmux", "-L", session, "send-keys", "-t", session, "/"], check=True)
        time.sleep(0.5)  # as a person: the search box takes the focus, then the words come
        subprocess.run(
            ["tmux", "-L", session, "send-keys", "-t", session, "c", "o", "s", "t", "s"], check=True
        )
        screen = wait_for(session, "1 media · costs")
        assert "A bar chart of cloud costs" in screen
        subprocess.run(["tmux", "-L", session, "send-keys", "-t", session, "Escape"], check=True)
        time.sleep(0.3)


def test_the_image_option_draws_the_thumbnail_the_way_it_names(shown_media, cli_env, tmp_path):
    with browsing_in_tmux(cli_env, tmp_path, "browse", "--image", "unicode") as session:
        wait_for(session, "13 media")
        deadline = time.monotonic() + 30
        while not any(shade in (screen := tmux_screen(session)) for shade in "▓▒░"):
            assert time.monotonic() < deadline, f"no grey-shade thumbnail; the screen:\n{screen}"
            time.sleep(0.2)
        assert "▀" not in screen  # not the half-blocks auto picks in tmux


def test_the_list_is_drawn_before_the_preview_loads(store, settings, shown_media):
    app = browser(store, settings)

    async def main():
        async with app.run_test(size=(150, 40)) as pilot:
            table = app.query_one("DataTable")
            deadline = time.monotonic() + 30
            while table.row_count == 0:
                assert time.monotonic() < deadline, "no row came"
                await asyncio.sleep(0)
            assert app.preview is None and not app.query("#preview")  # the rows first...
            await settle(pilot)
            preview = app.query_one("#preview")  # ...textual-image's widget after them
            assert preview is app.preview and preview.image is not None

    asyncio.run(main())


def test_what_a_person_looks_at_is_marked_used_for_eviction(store, settings, shown_media):
    app = browser(store, settings)
    before = {row["media_id"]: row["cache_used_at"] for row in store.list_media()}

    async def scenario(pilot):
        await pilot.press("down")
        await settle(pilot)

    run(app, scenario)
    app.used.close()
    seen = [row["media_id"] for row in app.rows[:2]]
    after = {row["media_id"]: row["cache_used_at"] for row in store.list_media()}
    assert all(after[m] and after[m] > (before[m] or "") for m in seen)
    assert sum(after[m] != before[m] for m in after) == 2
