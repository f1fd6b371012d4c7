"""The search index is built for rows that existed before it: by the PostgreSQL migration, and
by SQLite on first open."""

from __future__ import annotations

import shutil
import sqlite3

import psycopg

from social_tui_media.store.migrations import MIGRATIONS_DIR, apply_pending
from social_tui_media.store.postgres import PostgresStore
from social_tui_media.store.search import SearchQuery, parse_search
from social_tui_media.store.sqlite import SQLiteStore
from tests.test_store_find import add_media, add_post, extract

SEARCH_MIGRATION = "20251210000001"
POST_DOCUMENTS_MIGRATION = "20251211000000"


def found(store, text: str) -> list[list[str]]:
    return [hit.media_ids for hit in store.search_media(SearchQuery(parse_search(text)))]


def migrated_before(url: str, version: str, tmp_path) -> None:
    """Apply the migrations older than `version`, as an installation of then has them."""
    before = tmp_path / "migrations"
    before.mkdir()
    for path in MIGRATIONS_DIR.glob("*.sql"):
        if path.name < version:
            shutil.copy(path, before / path.name)
    apply_pending(url, before)


def test_the_migration_indexes_rows_that_were_there_before_it(pg_empty_database_factory, tmp_path):
    url = pg_empty_database_factory()
    migrated_before(url, SEARCH_MIGRATION, tmp_path)
    store = PostgresStore(url, check_schema=False)
    post_id = add_post(store, "urn:old", "olga", "An older post about glaciers", "2025-10-01")
    media_id = add_media(store, post_id, "old", "7" * 32)
    store.close()
    assert [m.version for m in apply_pending(url).applied][:2] == [SEARCH_MIGRATION, POST_DOCUMENTS_MIGRATION]
    store = PostgresStore(url)
    try:
        assert found(store, "glacier") == [[media_id]]
    finally:
        store.close()


def test_postgres_moves_the_first_index_to_post_documents(pg_empty_database_factory, tmp_path):
    """The first index gave every media row a document; after the migration only rows with
    text of their own have one, every post has its own, and the search finds the same media."""
    url = pg_empty_database_factory()
    migrated_before(url, POST_DOCUMENTS_MIGRATION, tmp_path)
    store = PostgresStore(url, check_schema=False)
    post_id = add_post(store, "urn:old", "olga", "An older post about glaciers", "2025-10-01")
    plain = add_media(store, post_id, "plain", "7" * 32)
    read = add_media(store, post_id, "read", "8" * 32, position=1)
    assert extract(store, read, "Ice shelf survey") == 1
    assert sorted(found(store, "glacier")) == sorted([[plain], [read]])
    store.close()
    assert [m.version for m in apply_pending(url).applied][0] == POST_DOCUMENTS_MIGRATION
    store = PostgresStore(url)
    try:
        assert sorted(found(store, "glacier")) == sorted([[plain], [read]])
        assert found(store, "shelf") == [[read]]
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT media_id FROM media_search_index").fetchall() == [(read,)]
            assert conn.execute("SELECT post_id FROM post_search_index").fetchall() == [(post_id,)]
    finally:
        store.close()


SEARCH_TRIGGERS = (
    "media_doc_insert", "media_doc_update", "media_doc_delete", "post_doc_insert", "post_doc_update",
    "post_doc_delete",
)  # fmt: skip


def test_sqlite_indexes_rows_of_a_database_made_before_search(tmp_path):
    path = tmp_path / "old.db"
    store = SQLiteStore(path)
    post_id = add_post(store, "urn:old", "olga", "An older post about glaciers", "2025-10-01")
    media_id = add_media(store, post_id, "old", "7" * 32)
    store.close()
    conn = sqlite3.connect(path)  # as a database from before the search index
    for trigger in SEARCH_TRIGGERS:
        conn.execute(f"DROP TRIGGER {trigger}")
    conn.execute("DROP TABLE media_search")
    conn.execute("DROP TABLE post_search")
    conn.commit()
    conn.close()
    store = SQLiteStore(path)
    try:
        assert found(store, "glacier") == [[media_id]]
    finally:
        store.close()


def test_sqlite_reindexes_a_database_of_one_document_per_media_row_once(tmp_path):
    """The first index gave every media row a document repeating its post's text; now only
    rows with text of their own have one, and the others are found by their post's."""
    path = tmp_path / "first-index.db"
    store = SQLiteStore(path)
    post_id = add_post(store, "urn:old", "olga", "An older post about glaciers", "2025-10-01")
    plain = add_media(store, post_id, "plain", "7" * 32)
    read = add_media(store, post_id, "read", "8" * 32, position=1)
    assert extract(store, read, "Ice shelf survey") == 1
    store.close()
    conn = sqlite3.connect(path)
    for trigger in SEARCH_TRIGGERS:
        conn.execute(f"DROP TRIGGER {trigger}")
    conn.execute("DROP TABLE post_search")
    conn.execute("DELETE FROM media_search")
    conn.execute(
        "INSERT INTO media_search (rowid, image_text, post_text, author)"
        " SELECT m.rowid, m.extracted_text, p.text_content, p.author_username"
        " FROM post_media m JOIN posts p USING (post_id)"
    )
    conn.execute("CREATE TRIGGER media_search_insert AFTER INSERT ON post_media BEGIN SELECT 1; END")
    conn.commit()
    conn.close()
    store = SQLiteStore(path)
    try:
        assert sorted(found(store, "glacier")) == sorted([[plain], [read]])
        assert found(store, "shelf") == [[read]]
        later = add_media(store, post_id, "later", "9" * 32, position=2)
        assert sorted(found(store, "glacier")) == sorted([[plain], [read], [later]])
    finally:
        store.close()
    conn = sqlite3.connect(path)
    try:
        documents = [r[0] for r in conn.execute("SELECT rowid FROM media_search")]
        [read_rowid] = conn.execute("SELECT rowid FROM post_media WHERE media_id = ?", (read,)).fetchone()
        assert documents == [read_rowid]
        assert conn.execute("SELECT count(*) FROM post_search").fetchone() == (1,)
        triggers = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        assert "media_search_insert" not in triggers and set(SEARCH_TRIGGERS) <= triggers
    finally:
        conn.close()
