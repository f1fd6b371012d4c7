"""The floor for scenario 6: the least work that stores the same posts in the same database.

    python bench/raw_insert.py sqlite PATH DIR
    python bench/raw_insert.py postgres URL DIR

Reads every `*.json` in DIR and stores each post's URN and raw JSON in a one-table schema,
in one transaction (SQLite: executemany; PostgreSQL: COPY). No media rows, no run record,
no stats history: what any importer has to pay at least.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path


def load(directory: Path) -> list[tuple[str, str]]:
    rows = []
    for path in sorted(directory.glob("*.json")):
        for post in json.loads(path.read_text()):
            rows.append((post["full_urn"], json.dumps(post)))
    return rows


def into_sqlite(path: str, rows: list[tuple[str, str]]) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS raw_posts (urn TEXT PRIMARY KEY, raw_json TEXT NOT NULL)")
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO raw_posts VALUES (?, ?) ON CONFLICT (urn) DO UPDATE SET raw_json=excluded.raw_json", rows
    )
    conn.execute("COMMIT")
    conn.close()


def into_postgres(url: str, rows: list[tuple[str, str]]) -> None:
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_raw_posts (urn TEXT PRIMARY KEY, raw_json JSONB NOT NULL)"
        )
        with conn.cursor().copy("COPY bench_raw_posts (urn, raw_json) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def main(kind: str, target: str, directory: str) -> int:
    rows = load(Path(directory))
    (into_sqlite if kind == "sqlite" else into_postgres)(target, rows)
    print(f"{len(rows)} posts stored")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
