"""The project installs as a package: a wheel holds the code and its SQL, the commands exist,
every CLI answers --version."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

from social_tui_media import __version__
from tests.conftest import ROOT


def test_wheel_holds_the_package_its_schema_and_its_commands(tmp_path):
    source = tmp_path / "source"  # a clean copy: setuptools would reuse a stale build/ in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    shutil.copytree(
        ROOT / "social_tui_media", source / "social_tui_media", ignore=shutil.ignore_patterns("__pycache__")
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", tmp_path, source],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    [wheel] = tmp_path.glob("social_tui_media-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    migrations = sorted(n for n in names if n.startswith("social_tui_media/store/schema/migrations/"))
    shipped = sorted(p.name for p in (ROOT / "supabase" / "migrations").glob("*.sql"))
    assert [m.rsplit("/", 1)[1] for m in migrations] == shipped
    assert "social_tui_media/store/schema/sqlite.sql" in names
    assert not any(n.startswith(("devtools/", "tests/", "bench/")) for n in names)
    entry_points = zipfile.ZipFile(wheel).read(f"social_tui_media-{__version__}.dist-info/entry_points.txt")
    assert b"manage-media = social_tui_media.cli.manage_media:main" in entry_points
    assert b"manage-data = social_tui_media.cli.manage_data:main" in entry_points


def test_every_cli_answers_version_from_any_directory(tmp_path):
    for script in ("manage_media.py", "manage_data.py", "backfill_media.py"):
        result = subprocess.run(
            [sys.executable, str(ROOT / script), "--version"], cwd=tmp_path, capture_output=True, text=True
        )
        assert result.returncode == 0
        assert result.stdout.strip() == f"{script} {__version__}"
