"""Bad settings are one line naming the variable and exit 2, never a traceback; numbers that
are not finite are refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from social_tui_media.settings import ConfigError, load_settings
from tests.conftest import ROOT


def run_stats(tmp_path, **variables: str) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "SUPABASE", "MEDIA_", "AWS_", "OPENAI"))
    }
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}", SOCIAL_TUI_HOME=str(tmp_path))
    env.update(variables)
    return subprocess.run(
        [sys.executable, str(ROOT / "manage_media.py"), "stats"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"MEDIA_DOWNLOAD_TIMEOUT": "nan"}, "MEDIA_DOWNLOAD_TIMEOUT"),
        ({"MEDIA_DOWNLOAD_TIMEOUT": "inf"}, "MEDIA_DOWNLOAD_TIMEOUT"),
        ({"MEDIA_MAX_FILE_SIZE": "-5"}, "MEDIA_MAX_FILE_SIZE"),
        ({"AWS_ENDPOINT_URL": "notaurl"}, "AWS_ENDPOINT_URL"),
        ({"OPENAI_BASE_URL": "localhost:11434"}, "OPENAI_BASE_URL"),
        ({"DATABASE_URL": "postgresql://u:SECRETPW@127.0.0.1:5432/db?bogus_option=1"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://[::1"}, "DATABASE_URL"),
        ({"MEDIA_RETENTION_DAYS": "0"}, "MEDIA_RETENTION_DAYS"),
        ({"MEDIA_RETENTION_DAYS": "ninety"}, "MEDIA_RETENTION_DAYS"),
        ({"MEDIA_ARCHIVE_STORAGE_CLASS": "TAPE"}, "MEDIA_ARCHIVE_STORAGE_CLASS"),
        ({"MEDIA_ARCHIVE_TRANSITION_DAYS": "-1"}, "MEDIA_ARCHIVE_TRANSITION_DAYS"),
        (
            {"MEDIA_ARCHIVE_TRANSITION_DAYS": "7", "MEDIA_ARCHIVE_STORAGE_CLASS": "STANDARD_IA"},
            "MEDIA_ARCHIVE_TRANSITION_DAYS",
        ),
    ],
)
def test_bad_settings_are_one_line_and_exit_2(tmp_path, variables, named):
    result = run_stats(tmp_path, **variables)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "Traceback" not in result.stderr
    assert "SECRETPW" not in result.stderr


def test_a_cache_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "cache").write_text("not a directory")
    result = run_stats(tmp_path, MEDIA_CACHE_DIR=str(tmp_path / "cache"))
    assert (
        result.returncode == 2
        and "MEDIA_CACHE_DIR" in result.stderr
        and len(result.stderr.strip().splitlines()) == 1
    )


def test_finite_positive_numbers_are_read(monkeypatch):
    monkeypatch.setenv("MEDIA_DOWNLOAD_TIMEOUT", "2.5")
    monkeypatch.setenv("MEDIA_MIN_DOWNLOAD_RATE", "2048")
    settings = load_settings(None)
    assert (settings.download_timeout, settings.min_download_rate) == (2.5, 2048)
    monkeypatch.setenv("MEDIA_MIN_DOWNLOAD_RATE", "1e999")
    with pytest.raises(ConfigError, match="MEDIA_MIN_DOWNLOAD_RATE"):
        load_settings(None)


def run_cli(script: str, *args: str, cwd, **variables: str) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "SUPABASE", "MEDIA_", "AWS_", "OPENAI", "SOCIAL_TUI"))
    }
    env.update(variables)
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_run_from_any_directory_uses_the_home_and_leaves_the_directory_alone(tmp_path):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    (home / "db").mkdir()
    (home / ".env").write_text("DATABASE_URL=sqlite:///db/posts.db\nMEDIA_CACHE_DIR=media-cache\n")
    result = run_cli("manage_data.py", "import", str(ROOT / "samples" / "posts_scrape1.json"), "--no-media",
                     cwd=elsewhere, SOCIAL_TUI_HOME=str(home))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (home / "db" / "posts.db").is_file() and (home / "log" / "media.log").is_file()
    assert list(elsewhere.iterdir()) == []
    stats = run_cli("manage_media.py", "stats", "--json", cwd="/", SOCIAL_TUI_HOME=str(home))
    assert json.loads(stats.stdout)["posts_total"] == 10


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"SUPABASE_URL": "https://project.supabase.co"}, "SUPABASE_API_KEY"),
        ({"SUPABASE_API_KEY": "service-key"}, "SUPABASE_URL"),
        ({"DATABASE_URL": "sqlite:///nodir/x.db"}, "DATABASE_URL"),
    ],
)
def test_a_partial_configuration_is_an_error_not_a_silent_fallback(tmp_path, variables, named):
    result = run_cli("manage_media.py", "stats", cwd=tmp_path, SOCIAL_TUI_HOME=str(tmp_path), **variables)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and named in lines[0], result.stderr
    assert not (tmp_path / "nodir").exists() and not (tmp_path / "data").exists()


@pytest.fixture
def small_disk(tmp_path):
    """A 384 KB filesystem (tmpfs) for the database, where this machine lets root mount one."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=384k", "tmpfs", str(mount_point)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_disk_under_the_database_is_one_line_and_exit_1(tmp_path, small_disk):
    posts = [{"full_urn": f"urn:li:activity:{i}", "text": "x" * 2000, "posted_at": {"timestamp": 1763000000000}}
             for i in range(600)]  # fmt: skip
    (tmp_path / "posts.json").write_text(json.dumps(posts))
    result = run_cli("manage_data.py", "import", str(tmp_path / "posts.json"), "--no-media", cwd=tmp_path,
                     SOCIAL_TUI_HOME=str(tmp_path), DATABASE_URL=f"sqlite:///{small_disk / 'db.sqlite'}")  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "is full" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
