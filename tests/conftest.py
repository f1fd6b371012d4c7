"""Real components on loopback: PostgreSQL, the media test server, files in tmp_path.

Tests that need PostgreSQL fail (never skip) when CI is set.
"""

from __future__ import annotations

import ipaddress
import os
import uuid
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from devtools.media_server import MediaTestServer, rewrite_hosts, serve_samples
from devtools.postgrest_server import PostgrestTestServer
from social_tui_media.settings import Settings
from social_tui_media.store.migrations import apply_pending
from social_tui_media.store.postgres import PostgresStore
from social_tui_media.store.rest import RestStore
from social_tui_media.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SCRAPE1 = SAMPLES / "posts_scrape1.json"
SCRAPE2 = SAMPLES / "posts_scrape2_resigned.json"
PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
APP_TABLES = (
    "post_media, action_queue, post_tags, profile_tags, tags, profiles, data_downloads, download_runs, posts,"
    " media_analysis_batches"
)


def need_service(reason: str) -> None:
    """Skip locally when a service is missing, but fail under CI."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this test may not skip)")
    pytest.skip(reason)


def _database_url(admin_url: str, name: str) -> str:
    """The admin URL pointing at another database (URL form, as DATABASE_URL takes it)."""
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def pg_server() -> str:
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5):
            pass
    except psycopg.OperationalError as exc:
        need_service(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}")
    return PG_ADMIN_URL


@pytest.fixture(scope="session")
def pg_empty_database_factory(pg_server):
    """Create throwaway databases; all are dropped at the end of the session."""
    created: list[str] = []

    def create() -> str:
        name = f"social_tui_test_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return _database_url(pg_server, name)

    yield create
    with psycopg.connect(pg_server, autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_url(pg_empty_database_factory) -> str:
    """A migrated database shared by the session; tests empty its tables first."""
    url = pg_empty_database_factory()
    apply_pending(url)
    return url


@pytest.fixture
def pg_clean_url(pg_url) -> str:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {APP_TABLES} CASCADE")
        with conn.transaction():  # the audit log refuses TRUNCATE; only a replica session skips that
            conn.execute("SET LOCAL session_replication_role = replica")
            conn.execute("TRUNCATE media_audit RESTART IDENTITY")
    return pg_url


@pytest.fixture(scope="session")
def postgrest_server(pg_url):
    """The loopback PostgREST stand-in on the session's migrated database."""
    with PostgrestTestServer(pg_url) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres", "rest"])
def store_kind(request) -> str:
    return request.param


@pytest.fixture
def store_url(store_kind, tmp_path, request) -> str:
    """The store's location: a SQLite URL, a PostgreSQL URL, or the REST endpoint's URL."""
    if store_kind == "sqlite":
        (tmp_path / "db").mkdir(exist_ok=True)
        return f"sqlite:///{tmp_path / 'db' / 'social_tui.db'}"
    url = request.getfixturevalue("pg_clean_url")
    return request.getfixturevalue("postgrest_server").url if store_kind == "rest" else url


@pytest.fixture
def store(store_kind, store_url, request):
    if store_kind == "sqlite":
        opened = SQLiteStore(store_url[len("sqlite:///") :])
    elif store_kind == "rest":
        opened = RestStore(store_url, request.getfixturevalue("postgrest_server").service_key)
    else:
        opened = PostgresStore(store_url)
    yield opened
    opened.close()


@pytest.fixture(scope="session")
def media_server():
    """The loopback CDN: every sample post's media path with real bytes."""
    with MediaTestServer() as server:
        serve_samples(server, [SCRAPE1, SCRAPE2])
        yield server


@pytest.fixture
def served(media_server):
    media_server.clear()
    return media_server


@pytest.fixture
def samples_dir(tmp_path, media_server) -> Path:
    """The sample posts with their CDN hosts pointed at the loopback media server."""
    directory = tmp_path / "posts"
    directory.mkdir()
    for source in (SCRAPE1, SCRAPE2):
        (directory / source.name).write_text(rewrite_hosts(source.read_text(), media_server.base_url))
    return directory


def scrape(samples_dir: Path, which: int) -> Path:
    """One scrape's file alone in a directory of its own."""
    source = samples_dir / (SCRAPE1.name if which == 1 else SCRAPE2.name)
    target = samples_dir.parent / f"scrape{which}"
    target.mkdir(exist_ok=True)
    (target / source.name).write_text(source.read_text())
    return target


@pytest.fixture
def settings(tmp_path, store_kind, store_url, request) -> Settings:
    rest = store_kind == "rest"
    return Settings(
        database_url=None if rest else store_url,
        supabase_url=store_url if rest else None,
        supabase_api_key=request.getfixturevalue("postgrest_server").service_key if rest else None,
        cache_dir=tmp_path / "cache" / "media",
        allow_private_hosts=(ipaddress.ip_network("127.0.0.0/8"),),
        download_timeout=2.0,
        log_file=tmp_path / "log" / "media.log",
    )


@pytest.fixture
def cli_env(settings, tmp_path) -> dict[str, str]:
    """Environment for running the CLIs as subprocesses against the test store and servers."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "SUPABASE", "MEDIA_", "AWS_", "OPENAI"))
    }
    env.update(
        DATABASE_URL=settings.database_url or "",
        MEDIA_CACHE_DIR=str(settings.cache_dir),
        MEDIA_ALLOW_PRIVATE_HOSTS="127.0.0.0/8",
        MEDIA_DOWNLOAD_TIMEOUT="2",
        MEDIA_LOG_FILE=str(settings.log_file),
        SOCIAL_TUI_HOME=str(tmp_path),
        PYTHONPATH=str(ROOT),
    )
    if settings.supabase_url:
        env.update(SUPABASE_URL=settings.supabase_url, SUPABASE_API_KEY=settings.supabase_api_key or "")
    return env


def with_settings(settings: Settings, **changes) -> Settings:
    return replace(settings, **changes)


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server over real HTTP on 127.0.0.1, one for the session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_test_env(monkeypatch, tmp_path):
    """Fake credentials only; no profile files, no instance metadata: nothing leaves loopback."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    empty = tmp_path / "empty-aws-config"
    empty.write_text("")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


PG_FIXTURES = {"pg_server", "pg_empty_database_factory", "pg_url", "pg_clean_url", "postgrest_server"}


def pytest_collection_modifyitems(items):
    """Mark every test that reaches PostgreSQL (directly or through a store parameter), so a
    quick local run is `pytest -m "not postgres"`."""
    for item in items:
        params = getattr(item, "callspec", None)
        on_pg_store = params is not None and params.params.get("store_kind") in ("postgres", "rest")
        if on_pg_store or PG_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)


DESCRIPTIONS = [  # analyses as the vision model writes them, for what the browser and the gallery show
    ("A speaker on stage in front of a slide titled Graviton", ["keynote", "stage", "cloud"], "GRAVITON 4"),
    ("A bar chart of cloud costs falling quarter by quarter", ["chart", "cloud", "costs"], "Q1 Q2 Q3"),
    ("The team posing in front of the booth", ["team", "booth"], ""),
]


@pytest.fixture
def shown_media(store, settings, samples_dir) -> list[dict]:
    """The first scrape imported and downloaded (images, a video, a PDF), three images analysed."""
    from social_tui_media.jobs.download import download_pending
    from social_tui_media.jobs.import_posts import import_path
    from social_tui_media.store.interface import MediaQuery

    report = import_path(store, scrape(samples_dir, 1))
    download_pending(store, settings, media_ids=report.media_ids)
    rows = [
        row for row in store.list_media() if row["media_type"] == "image"
    ]  # photos are what gets described
    for row, (description, tags, text) in zip(rows, DESCRIPTIONS, strict=False):
        analysis = {"description": description, "tags": tags, "text_in_image": text, "kind": "photo"}
        store.update_media(row["media_id"], {"ai_analysis": analysis, "ai_analysis_status": "completed"})
    return list(store.iter_media(MediaQuery()))
