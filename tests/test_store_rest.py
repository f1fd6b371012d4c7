"""The Supabase REST back end through the real supabase-py client, over HTTP, against the
loopback PostgREST stand-in on the real PostgreSQL: paging past the row cap, few requests,
a supabase `Client` accepted directly, and a key without rights refused in one line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from postgrest.exceptions import APIError

from devtools.postgrest_server import PostgrestTestServer
from social_tui_media.jobs.backfill import backfill_media
from social_tui_media.jobs.import_posts import import_path, store_media_slots
from social_tui_media.store.interface import DownloadClaim, PostRecord, SchemaMissing, StoreError, make_event
from social_tui_media.store.postgres import PostgresStore
from social_tui_media.store.rest import RestStore, _store_error
from supabase import create_client
from tests.conftest import ROOT, SCRAPE1, SCRAPE2

# supabase-py's own create_client() warns about its defaults; scripts call it just so.
pytestmark = pytest.mark.filterwarnings("ignore:The '(timeout|verify)' parameter is deprecated")
DENIED = "permission denied for table post_media: use the service role key"
N_POSTS = 2500


@pytest.fixture
def rest(postgrest_server, pg_clean_url):
    opened = RestStore(postgrest_server.url, postgrest_server.service_key)
    yield opened
    opened.close()


def carousel_posts(directory: Path, count: int) -> Path:
    """`count` posts of two images each, in one file."""
    posts = [
        {
            "full_urn": f"urn:li:activity:{i}",
            "posted_at": {"timestamp": 1763025200000 + i * 1000},
            "media": {
                "type": "images",
                "images": [
                    {
                        "url": f"https://media.licdn.com/dms/image/v2/P{i}/feedshare/P{i}/0/{n}?e=1800000000&t=x"
                    }
                    for n in range(2)
                ],
            },
        }
        for i in range(count)
    ]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "posts.json").write_text(json.dumps(posts))
    return directory


def test_import_of_2500_posts_pages_past_the_row_cap(rest, tmp_path):
    report = import_path(rest, carousel_posts(tmp_path / "posts", N_POSTS))
    assert report.problems == [] and report.posts_new == N_POSTS and report.media_new == 2 * N_POSTS
    posts = rest.posts_page(None, 10_000)
    assert len(posts) == len({p["post_id"] for p in posts}) == N_POSTS
    media = rest.list_media()
    assert len(media) == len({m["media_id"] for m in media}) == 2 * N_POSTS
    assert len(rest.list_media(media_ids=report.media_ids)) == 2 * N_POSTS
    assert len({post_id for post_id, _ in rest.media_slot_keys([p["post_id"] for p in posts])}) == N_POSTS
    assert rest.media_counts()["by_download_status"] == {"pending": 2 * N_POSTS}


def test_claims_larger_than_the_row_cap_return_every_claimed_row(rest, tmp_path):
    import_path(rest, carousel_posts(tmp_path / "posts", 600))
    claimed = rest.claim_downloads(DownloadClaim("w1", 5000))
    assert len(claimed) == len({r["media_id"] for r in claimed}) == 1200
    assert rest.claim_downloads(DownloadClaim("w2", 5000)) == []
    assert rest.download_claimants() == ["w1"]


def test_backfill_sees_every_post(rest, tmp_path):
    import_path(rest, carousel_posts(tmp_path / "posts", N_POSTS))
    rest._client.table("post_media").delete(returning="minimal").neq("media_id", "").execute()
    report = backfill_media(rest, page_size=1500)  # pages larger than the cap, too
    assert report.posts_scanned == report.posts_without_media == N_POSTS
    assert len(rest.list_media()) == 2 * N_POSTS


def test_cli_import_of_2500_posts_takes_few_requests(postgrest_server, pg_clean_url, tmp_path):
    directory = carousel_posts(tmp_path / "posts", N_POSTS)
    before = list(postgrest_server.requests)
    env = rest_env(postgrest_server, postgrest_server.service_key, tmp_path)
    result = run_cli(env, tmp_path, "manage_data.py", "import", str(directory), "--no-media")
    assert result.returncode == 0, result.stderr
    made = postgrest_server.requests[len(before) :]
    assert len(made) < 30, made
    rpcs = [p.rsplit("/", 1)[1] for m, p in made if "/rpc/" in p]
    # batches of 100, 1000, 1000 and 400 posts; two slots a post, 1,000 rows per request
    assert rpcs.count("social_tui_upsert_posts") == 4 and rpcs.count("media_upsert_slots") == 6


def test_store_media_slots_accepts_a_supabase_client(postgrest_server, pg_clean_url):
    client = create_client(postgrest_server.url, postgrest_server.service_key)
    post = json.loads(SCRAPE1.read_text())[9]
    record = PostRecord(post["full_urn"], None, 0, "", None, "", None, None, "{}")
    [(post_id, _)] = RestStore.from_client(client).upsert_posts([record])
    checks = postgrest_server.count(path_part="/rpc/media_denied_table")
    ids = store_media_slots(client, post_id, post)
    assert len(ids) == 4 and store_media_slots(client, post_id, post) == ids
    assert postgrest_server.count(path_part="/rpc/media_denied_table") == checks  # checked once per client


def test_restricted_key_is_refused_in_one_line(postgrest_server, pg_clean_url):
    with pytest.raises(StoreError) as refused:
        RestStore(postgrest_server.url, postgrest_server.anon_key)
    assert str(refused.value) == DENIED
    anon = create_client(postgrest_server.url, postgrest_server.anon_key)
    with pytest.raises(StoreError, match=f"^{DENIED}$"):
        store_media_slots(anon, "p-1", json.loads(SCRAPE1.read_text())[0])


def test_row_level_security_refusals_read_the_same():
    rls = APIError(
        {"code": "42501", "message": 'new row violates row-level security policy for table "post_media"'}
    )
    assert str(_store_error(rls, "http://x")) == DENIED
    grant = APIError({"code": "42501", "message": "permission denied for table post_media"})
    assert str(_store_error(grant, "http://x")) == DENIED


def test_cli_with_restricted_key_exits_2_with_that_line(postgrest_server, pg_clean_url, tmp_path):
    env = rest_env(postgrest_server, postgrest_server.anon_key, tmp_path)
    result = run_cli(env, tmp_path, "manage_media.py", "stats")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {DENIED}"]


def test_unknown_key_and_unreachable_endpoint_are_store_errors(postgrest_server):
    with pytest.raises(StoreError, match="SUPABASE_API_KEY was refused"):
        RestStore(postgrest_server.url, "not-a-key")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(StoreError, match="cannot reach Supabase at"):
        RestStore(f"http://127.0.0.1:{port}", postgrest_server.service_key)


def test_unmigrated_database_says_to_migrate(pg_empty_database_factory):
    with PostgrestTestServer(pg_empty_database_factory()) as server:
        with pytest.raises(SchemaMissing, match=r"not migrated: run `python manage_media.py migrate`"):
            RestStore(server.url, server.service_key)


def test_rows_read_the_same_as_postgres_whatever_the_session_time_zone(pg_url, pg_clean_url, tmp_path):
    direct = PostgresStore(pg_clean_url)
    with PostgrestTestServer(pg_url, timezone="America/New_York") as server:
        rest = RestStore(server.url, server.service_key)
        for source in (SCRAPE1, SCRAPE2):
            directory = tmp_path / source.stem
            directory.mkdir()
            (directory / source.name).write_text(source.read_text())
            import_path(rest, directory)
        [row] = rest.claim_downloads(DownloadClaim("w1", 1))
        rest.update_media(
            row["media_id"],
            {"archive_url": "s3://b/k", "archived_at": "2025-11-25T01:02:03+00:00"},
            make_event("media_archived"),
        )
        assert rest.list_media() == direct.list_media()
        assert rest.posts_page(None, 100, "2025-11-20") == direct.posts_page(None, 100, "2025-11-20")
        assert rest.media_counts() == direct.media_counts()
        assert rest.get_media(row["media_id"])["archived_at"] == "2025-11-25T01:02:03.000000+00:00"
        rest.close()
    direct.close()


def rest_env(server: PostgrestTestServer, key: str, tmp_path: Path) -> dict[str, str]:
    """The CLIs' environment for the REST back end only: SUPABASE_URL and SUPABASE_API_KEY."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "SUPABASE", "MEDIA_"))}
    env.update(
        SUPABASE_URL=server.url,
        SUPABASE_API_KEY=key,
        MEDIA_CACHE_DIR=str(tmp_path / "cache"),
        MEDIA_LOG_FILE=str(tmp_path / "media.log"),
        SOCIAL_TUI_HOME=str(tmp_path),
        PYTHONPATH=str(ROOT),
    )
    return env


def run_cli(env: dict[str, str], cwd: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
