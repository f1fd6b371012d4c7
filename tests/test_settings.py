"""Bad settings are one line naming the variable and exit 2, never a traceback; numbers that
are not finite are refused."""

from __future__ import annotations

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
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}", MEDIA_LOG_FILE=str(tmp_path / "media.log"))
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
