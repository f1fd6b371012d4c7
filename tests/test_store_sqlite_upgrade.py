"""An embedded database made by an earlier release gains the columns added since, keeps its rows,
and opens again without change."""

from __future__ import annotations

import sqlite3

from social_tui_media.store import sqlite as sqlite_store
from social_tui_media.store.sqlite import SQLiteStore


def _columns(path, table: str) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def test_an_older_database_gains_the_added_columns_and_keeps_its_rows(tmp_path, monkeypatch):
    path = tmp_path / "social_tui.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO tags (tag_id, name) VALUES ('t1', 'kept')")
    monkeypatch.setattr(
        sqlite_store,
        "ADDED_COLUMNS",
        (("tags", "added_later", "TEXT"), ("tags", "added_after", "INTEGER DEFAULT 7")),
    )

    SQLiteStore(path).close()
    SQLiteStore(path).close()  # a second open finds them present

    assert _columns(path, "tags")[-2:] == ["added_later", "added_after"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT name, added_later, added_after FROM tags").fetchall() == [
            ("kept", None, 7)
        ]


def test_every_added_column_is_also_declared_for_new_databases(tmp_path, monkeypatch):
    added = sqlite_store.ADDED_COLUMNS
    monkeypatch.setattr(sqlite_store, "ADDED_COLUMNS", ())  # a new database gets them from sqlite.sql alone
    path = tmp_path / "fresh.db"
    SQLiteStore(path).close()
    missing = [(t, c) for t, c, _ in added if c not in _columns(path, t)]
    assert missing == []
