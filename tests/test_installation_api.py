"""The names the installation's other scripts import from same-named modules (db_utils,
manage_data, media_cache, supabase_client) exist with their signatures and return shapes,
backed by the pipeline; and the TUI's hook finds cached files without fetching anything."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter

import pytest

import db_utils
import manage_data
import media_cache
import supabase_client
from social_tui_media.settings import ConfigError
from supabase import create_client
from tests.conftest import SCRAPE1


@pytest.fixture
def media_env(monkeypatch, tmp_path, served):
    """The environment the installation's scripts run with: settings from variables."""
    for name in ("DATABASE_URL", "SUPABASE_DB_URL", "SUPABASE_URL", "SUPABASE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no developer .env
    monkeypatch.setenv("MEDIA_CACHE_DIR", str(tmp_path / "cache" / "media"))
    monkeypatch.setenv("MEDIA_ALLOW_PRIVATE_HOSTS", "127.0.0.0/8")
    monkeypatch.setenv("MEDIA_LOG_FILE", str(tmp_path / "media.log"))
    monkeypatch.setenv("SOCIAL_TUI_HOME", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    return tmp_path


def test_db_utils_ids_in_both_forms():
    new = db_utils.generate_aws_id(db_utils.PREFIX_MEDIA)
    assert db_utils.validate_aws_id(new, "med") and db_utils.extract_prefix(new) == "med"
    assert db_utils.validate_aws_id("p-1a2b3c4d", db_utils.PREFIX_POST)  # the installation's form
    assert not db_utils.validate_aws_id("p-1a2b3c4d", "med") and not db_utils.validate_aws_id("p-xyz")
    assert db_utils.extract_prefix("nonsense") is None
    assert (
        len({db_utils.generate_aws_id("p") for _ in range(100_000)}) == 100_000
    )  # 8 hex digits would collide
    assert (db_utils.PREFIX_PROFILE_TAG, db_utils.PREFIX_POST_TAG, db_utils.PREFIX_ACTION) == (
        "pft",
        "ptg",
        "act",
    )
    assert (db_utils.PREFIX_DOWNLOAD, db_utils.PREFIX_RUN, db_utils.PREFIX_PROFILE, db_utils.PREFIX_TAG) == (
        "dl", "run", "prf", "tag",
    )  # fmt: skip


def test_new_ids_sort_by_the_time_they_were_made_and_end_random():
    first = db_utils.generate_aws_id("med")
    time.sleep(0.002)
    later = [db_utils.generate_aws_id("med") for _ in range(2000)]
    assert all(first < other for other in later)  # an index on them grows at its end
    assert len({other[-9:] for other in later}) == 2000  # the random part differs within a millisecond
    digits = Counter("".join(other[-9:] for other in later))
    assert len(digits) == 36 and max(digits.values()) < 2 * min(digits.values())  # every digit, evenly


def test_manage_data_api_with_a_supabase_client(
    media_env, postgrest_server, pg_clean_url, samples_dir, monkeypatch
):
    monkeypatch.setenv("MEDIA_CACHE_DIR", str(media_env / "cache" / "media"))
    client = create_client(postgrest_server.url, postgrest_server.service_key)
    posts = json.loads((samples_dir / SCRAPE1.name).read_text())
    assert manage_data.get_post_urn(posts[0]) == posts[0]["full_urn"]
    run_id = manage_data.create_download_run(client, script_name="update_data.py")
    stats, same_run = manage_data.import_directory(client, samples_dir / SCRAPE1.name, run_id=run_id)
    assert same_run == run_id
    assert set(stats) == {
        "processed",
        "new",
        "duplicates",
        "errors",
        "media_total",
        "media_cached",
        "media_errors",
    }
    assert stats["processed"] == len(posts) and stats["media_cached"] == stats["media_total"] > 0
    manage_data.complete_download_run(
        client, run_id, {"processed": len(posts), "new": len(posts), "errors": 0}
    )
    [run] = client.table("download_runs").select("*").eq("run_id", run_id).execute().data
    assert (run["status"], run["posts_fetched"], run["script_name"]) == (
        "completed",
        len(posts),
        "update_data.py",
    )
    post_id = (
        client.table("posts").select("post_id").eq("urn", posts[0]["full_urn"]).execute().data[0]["post_id"]
    )
    result = manage_data.extract_and_store_media(client, post_id, posts[0])
    assert set(result) == {"media_ids", "media_count", "media_cached", "media_errors"}
    assert result["media_count"] == len(result["media_ids"]) == result["media_cached"] > 0


def test_media_cache_api(media_env, served, samples_dir):
    url = next(u for u in _image_urls(samples_dir))
    info = media_cache.download_and_cache_media(url)
    assert set(info) >= {"md5_sum", "local_path", "file_size", "mime_type", "media_type", "width", "height",
                         "extension", "url"}  # fmt: skip
    assert info["media_type"] == "image" and info["url"] == url
    assert media_cache.calculate_md5(info["local_path"]) == info["md5_sum"]
    assert media_cache.verify_cached_media(info["local_path"], info["md5_sum"])
    assert media_cache.get_media_cache_path("image", info["md5_sum"], info["extension"]) == info["local_path"]
    assert media_cache.find_cached_by_md5(info["md5_sum"]) == info["local_path"]
    results = media_cache.download_multiple_media([url, url.replace("/dms/", "/missing/")], max_workers=2)
    assert results[0]["md5_sum"] == info["md5_sum"] and "error" in results[1]
    stats = media_cache.get_cache_stats()
    assert stats["total_files"] == 1 and stats["total_size"] == info["file_size"]
    assert media_cache.format_size(1536) == "1.5 KB"


def test_tui_hook_finds_the_cached_file_under_any_signature_and_never_fetches(media_env, served, samples_dir):
    from social_tui_media.jobs.download import download_pending
    from social_tui_media.jobs.import_posts import import_path
    from social_tui_media.settings import load_settings
    from social_tui_media.store import open_store

    settings = load_settings(None)
    store = open_store(settings)
    try:
        report = import_path(store, samples_dir / SCRAPE1.name)
        download_pending(store, settings, media_ids=report.media_ids)
        row = store.get_media(report.media_ids[0])
    finally:
        store.close()
    served.clear()
    resigned = row["media_url"].split("?")[0] + "?e=1999999999&v=beta&t=another-signature"
    found = media_cache.cached_media(url=resigned)
    assert found is not None and found.media_id == row["media_id"]
    assert (
        found.thumbnail_path is not None and found.thumbnail_path.name == f"{row['md5_sum']}.webp"
    )  # made on ask
    assert hashlib.md5(found.local_path.read_bytes()).hexdigest() == row["md5_sum"]
    assert media_cache.cached_media(post_id=row["post_id"]).local_path.is_file()
    assert media_cache.find_cached_by_url(resigned) == found.local_path
    assert media_cache.cached_media(url="https://media.licdn.com/never/seen?e=1") is None
    assert served.requests == []  # no media fetch


def test_supabase_client_reads_the_installations_variables(monkeypatch, postgrest_server):
    monkeypatch.setenv("SUPABASE_URL", postgrest_server.url)
    monkeypatch.setenv("SUPABASE_API_KEY", postgrest_server.service_key)
    client = supabase_client.get_supabase_client()
    assert client.table("posts").select("post_id").limit(1).execute().data is not None
    monkeypatch.setenv("SUPABASE_API_KEY", "")
    with pytest.raises(ConfigError, match="SUPABASE_API_KEY"):
        supabase_client.get_supabase_client()


def _image_urls(samples_dir):
    for post in json.loads((samples_dir / SCRAPE1.name).read_text()):
        media = post.get("media") or {}
        if media.get("type") == "image":
            yield media["images"][0]["url"] if media.get("images") else media["url"]
