"""What the CLIs print, as cron and people see it: summaries on stdout in any format, naming
where they worked; `-q` and `-v`; `show`; progress bars on a real terminal (tmux)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest

from social_tui_media.jobs.import_posts import import_path
from tests.conftest import ROOT, SAMPLES, scrape


def cli(env, cwd, script: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


SUMMARIES = [
    ("manage_data.py", "import", "POSTS", "--no-media"),
    ("manage_media.py", "stats"),
    ("manage_media.py", "download-all"),
    ("manage_media.py", "verify-cache"),
    ("manage_media.py", "backfill", "--dry-run"),
    ("manage_media.py", "analyze", "--status", "not_started", "--dry-run"),
    ("manage_media.py", "migrate"),
    ("backfill_media.py", "--dry-run"),
]


@pytest.mark.parametrize("store_kind", ["sqlite"])
@pytest.mark.parametrize("command", SUMMARIES, ids=lambda c: " ".join(c[:2]))
def test_every_summary_is_json_naming_its_database_cache_and_bucket(command, cli_env, samples_dir, tmp_path):
    script, *args = command
    args = [str(scrape(samples_dir, 1)) if a == "POSTS" else a for a in args]
    result = cli(cli_env, tmp_path, script, *args, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    expected = "backfill" if script == "backfill_media.py" else args[0]
    assert summary["command"] == expected
    assert summary["database"] == cli_env["DATABASE_URL"]
    assert summary["cache_dir"] == cli_env["MEDIA_CACHE_DIR"] and summary["bucket"] is None


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_a_piped_summary_is_one_tab_separated_line_per_value(cli_env, samples_dir, tmp_path):
    result = cli(cli_env, tmp_path, "manage_data.py", "import", str(scrape(samples_dir, 1)), "--no-media")
    lines = dict(line.split("\t") for line in result.stdout.splitlines())
    assert result.returncode == 0 and lines["command"] == "import" and lines["posts_new"] == "10"
    assert lines["run_id"].startswith("run-") and lines["media_total"] == "13"
    stats = cli(cli_env, tmp_path, "manage_media.py", "stats").stdout.splitlines()
    assert "by_download_status.pending\t13" in stats and "bucket\t" in stats
    verified = cli(cli_env, tmp_path, "manage_media.py", "verify-cache").stdout.splitlines()
    assert "missing\t0" in verified and "stray_files\t0" in verified  # counts, not JSON blobs
    csv_lines = cli(cli_env, tmp_path, "manage_media.py", "stats", "--format", "csv").stdout.splitlines()
    assert csv_lines[:2] == ["key,value", "command,stats"]


@pytest.mark.parametrize("store_kind", ["postgres"])
def test_the_database_is_named_without_its_password(cli_env, tmp_path):
    parts = urlsplit(cli_env["DATABASE_URL"])
    with_password = urlunsplit(parts._replace(netloc=f"postgres:hunter2@{parts.hostname}:{parts.port}"))
    result = cli({**cli_env, "DATABASE_URL": with_password}, tmp_path, "manage_media.py", "stats", "--json")
    assert result.returncode == 0, result.stderr
    assert (
        json.loads(result.stdout)["database"]
        == f"postgresql://postgres@{parts.hostname}:{parts.port}{parts.path}"
    )
    assert "hunter2" not in result.stdout + result.stderr


STATS_KEYS = [
    "command", "database", "cache_dir", "bucket", "posts_total", "media_total", "by_download_status",
    "download_backlog", "by_ai_status", "expiring_48h", "archived", "evicted", "cache_files", "cache_bytes",
    "cache_limit", "ai_prompt_tokens", "ai_completion_tokens", "ai_cost_usd",
    # the metrics (issue 16), appended so that scripts reading the keys above keep working
    "since", "download_success_rate", "cache_hit_rate", "downloads_succeeded", "downloads_failed",
    "download_mean_ms", "download_p95_ms", "download_bytes_per_second", "download_failures_by_kind",
    "queue_depth", "s3_objects", "s3_bytes", "s3_monthly_cost_usd",
    "batches_open", "batch_items_open", "batch_oldest_open_at", "batch_cost_usd", "batch_saved_usd",
]  # fmt: skip


def test_stats_json_has_the_same_keys_in_the_same_order_and_rounded_cost_on_every_back_end(
    store, cli_env, samples_dir, tmp_path
):
    ids = import_path(store, scrape(samples_dir, 1)).media_ids
    for media_id in ids[:3]:  # 3 × 0.003739 is 0.011217000000000001 in floating point
        store.update_media(media_id, {"ai_cost_usd": 0.003739})
    stats = json.loads(cli(cli_env, tmp_path, "manage_media.py", "stats", "--json").stdout)
    assert list(stats) == STATS_KEYS
    assert list(stats["by_download_status"]) == ["pending", "downloaded", "failed"]
    assert list(stats["by_ai_status"]) == ["not_started", "started", "completed", "failed"]
    assert stats["ai_cost_usd"] == 0.0112 and stats["by_download_status"]["pending"] == 13
    assert list(stats["queue_depth"]) == ["download", "text", "analysis", "archive"]
    assert list(stats["cache_hit_rate"]) == ["window", "all_time"]


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_quiet_prints_nothing_when_all_went_well(cli_env, samples_dir, tmp_path):
    imported = cli(cli_env, tmp_path, "manage_data.py", "-q", "import", str(scrape(samples_dir, 1)))
    assert (imported.returncode, imported.stdout, imported.stderr) == (0, "", "")
    again = cli(cli_env, tmp_path, "manage_media.py", "download-all", "-q")
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
    asked = cli(cli_env, tmp_path, "manage_media.py", "stats", "-q", "--format", "tsv")
    assert asked.returncode == 0 and "media_total\t13" in asked.stdout.splitlines()


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_quiet_still_says_in_one_line_that_items_failed_and_what_to_run(
    store, cli_env, served, samples_dir, tmp_path
):
    posts = scrape(samples_dir, 1)
    for file in posts.glob("*.json"):  # every media URL now answers 404
        file.write_text(file.read_text().replace(served.base_url, f"{served.base_url}/gone"))
    import_path(store, posts)
    result = cli(cli_env, tmp_path, "manage_media.py", "-q", "download-all")
    assert result.returncode == 1 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("warning: 13 downloads failed") and "manage_media.py download-all" in line
    unknown = cli(cli_env, tmp_path, "manage_media.py", "-q", "show", "med-nope")
    assert unknown.returncode == 2 and unknown.stderr == "error: no media with id 'med-nope'\n"


@pytest.mark.parametrize("store_kind", ["sqlite"])
@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_prints_the_scrubbed_log_on_stderr(where, store, cli_env, samples_dir, tmp_path):
    import_path(store, scrape(samples_dir, 1))
    args = ["-v", "download-all"] if where == "before" else ["download-all", "-v"]
    result = cli(cli_env, tmp_path, "manage_media.py", *args)
    cached = [line for line in result.stderr.splitlines() if "media cached (http)" in line]
    assert result.returncode == 0 and len(cached) == 13
    assert re.match(r"\d\d:\d\d:\d\d info +social_tui_media\.jobs\.download: media cached", cached[0])
    assert "media_id=med-" in cached[0]
    silent = cli(cli_env, tmp_path, "manage_media.py", "download-all")
    assert "media cached" not in silent.stderr


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_show_prints_the_description_tags_and_text_in_the_image(store, cli_env, samples_dir, tmp_path):
    media_id = import_path(store, scrape(samples_dir, 1)).media_ids[0]
    analysis = {
        "description": "A chart of [bold]sales.",
        "text_in_image": "Q3: +12%",
        "tags": ["chart", "sales"],
    }
    store.update_media(media_id, {"ai_analysis": json.dumps(analysis), "ai_analysis_status": "completed"})
    wide = {**cli_env, "COLUMNS": "200"}
    table = cli(wide, tmp_path, "manage_media.py", "show", media_id, "--format", "table")
    assert table.returncode == 0, table.stderr
    assert re.search(r"│ description +│ A chart of \[bold\]sales\. +│", table.stdout)
    assert re.search(r"│ tags +│ chart, sales +│", table.stdout)
    assert re.search(r"│ text in the image +│ Q3: \+12% +│", table.stdout)
    shown = json.loads(cli(cli_env, tmp_path, "manage_media.py", "show", media_id, "--json").stdout)
    assert (shown["media_id"], shown["tags"], shown["text_in_image"]) == (
        media_id,
        ["chart", "sales"],
        "Q3: +12%",
    )


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_a_download_progress_bar_counts_items_and_bytes_apart_on_a_terminal(
    store, cli_env, samples_dir, tmp_path
):
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed to test what a terminal shows")
    import_path(store, scrape(samples_dir, 1))
    session = f"stm-{uuid.uuid4().hex[:8]}"
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in cli_env.items() if k != "COLUMNS")
    command = f"env -i {env} {sys.executable} {ROOT / 'manage_media.py'} download-all; echo EXIT=$?; sleep 30"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "30", command],
        check=True,
        cwd=tmp_path,
    )
    try:
        screen = ""
        for _ in range(120):
            screen = subprocess.run(
                ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True
            ).stdout
            if "EXIT=" in screen:
                break
            time.sleep(0.25)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    assert "EXIT=0" in screen, screen
    [bar] = [line for line in screen.splitlines() if line.startswith("downloading media")]
    assert re.search(r" 13/13 +100% ", bar), bar
    assert re.search(r"\d+(\.\d)? [kM]B at \d+(\.\d)? [kM]B/s", bar), bar  # bytes apart from items
    assert re.search(r"│ downloaded +│ 13 +│", screen)  # the summary is a table on a terminal


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_quiet_import_of_bad_posts_is_one_line_naming_the_log(cli_env, tmp_path):
    result = cli(cli_env, tmp_path, "manage_data.py", "import", str(SAMPLES / "bad"), "--no-media", "-q")
    assert result.returncode == 1 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("warning: 14 items were skipped or cleaned") and cli_env["MEDIA_LOG_FILE"] in line
