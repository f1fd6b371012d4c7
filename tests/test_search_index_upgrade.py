"""The search index is built for rows that existed before it: by the PostgreSQL migration, and
by SQLite on first open."""

from __future__ import annotations

import shutil
import sqlite3

from social_tui_media.store.migrations import MIGRATIONS_DIR, apply_pending
from social_tui_media.store.postgres import PostgresStore
from social_tui_media.store.search import SearchQuery, parse_search
from social_tui_media.store.sqlite import SQLiteStore
from tests.test_store_find import add_media, add_post

SEARCH_MIGRATION = "20251210000001"


def found(store, text: str) -> list[list[str]]:
    return [hit.media_ids for hit in store.search_media(SearchQuery(parse_search(text)))]


def test_the_migration_indexes_rows_that_were_there_before_it(pg_empty_database_factory, tmp_path):
    url = pg_empty_database_factory()
    before = tmp_path / "migrations"
    before.mkdir()
    for path in MIGRATIONS_DIR.glob("*.sql"):
        if path.name < SEARCH_MIGRATION:
            shutil.copy(path, before / path.name)
    apply_pending(url, before)
    store = PostgresStore(url, check_schema=False)
    post_id = add_post(store, "urn:old", "olga", "An older post about glaciers", "2025-10-01")
    media_id = add_media(store, post_id, "old", "7" * 32)
    store.close()
    assert [m.version for m in apply_pending(url).applied] == [SEARCH_MIGRATION]
    store = PostgresStore(url)
    try:
        assert found(store, "glacier") == [[media_id]]
    finally:
        store.close()


def test_sqlite_indexes_rows_of_a_database_made_before_search(tmp_path):
    path = tmp_path / "old.db"
    store = SQLiteStore(path)
    post_id = add_post(store, "urn:old", "olga", "An older post about glaciers", "2025-10-01")
    media_id = add_media(store, post_id, "old", "7" * 32)
    store.close()
    conn = sqlite3.connect(path)  # as a database from before the search index
    for trigger in (
        "media_search_insert",
        "media_search_update",
        "media_search_delete",
        "media_search_post_update",
    ):
        conn.execute(f"DROP TRIGGER {trigger}")
    conn.execute("DROP TABLE media_search")
    conn.commit()
    conn.close()
    store = SQLiteStore(path)
    try:
        assert found(store, "glacier") == [[media_id]]
    finally:
        store.close()
