"""The embedded SQLite back end: WAL mode, schema created on first use, atomic steps in
`BEGIN IMMEDIATE` transactions (the SQLite twin of the PostgreSQL functions)."""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from social_tui_media.ids import PREFIX_POST, PREFIX_RUN, generate_aws_id
from social_tui_media.store.interface import (
    BATCH_OPEN_STATUSES,
    BROWSE_MEDIA_FIELDS,
    BROWSE_POST_FIELDS,
    PAGE_ROWS,
    TEXT_LEASE_SECONDS,
    AnalysisBatch,
    AnalysisClaim,
    AnalysisOutcome,
    AnalysisQuery,
    AuditEntry,
    AuditQuery,
    BrowseQuery,
    DownloadClaim,
    DownloadOutcome,
    MediaQuery,
    MediaSlotRow,
    MediaStore,
    PostRecord,
    RunCounts,
    StoreError,
    StoreFull,
    TextClaim,
    TextOutcome,
    UpsertedMedia,
    batch_counts_row,
    day_start_iso,
    day_start_ms,
    download_claim_order,
    like_pattern,
    media_pages,
    system_info,
)
from social_tui_media.store.rows import normalize_row, parse_log, to_iso, utc_now
from social_tui_media.store.search import SearchHit, SearchQuery, fts5_match

SCHEMA_FILE = Path(__file__).resolve().parent / "schema" / "sqlite.sql"
CHECKPOINT_PAUSE = 0.05  # seconds between background checkpoints: commits meanwhile are copied back together
WAL_LIMIT_PAGES = 20_000  # past this (80 MB) a commit checkpoints itself, should the background fall behind
log = logging.getLogger(__name__)
JSON_COLUMNS = ("raw_json", "stats_json", "payload", "ai_analysis", "ai_analysis_log", "text_segments")
SEARCH_CANDIDATES = 400  # best-ranked index rows a search looks up first (see _search_top)
CHUNK = 500  # rows per statement batch; well under SQLite's variable limit
CACHE_KIB = 32 * 1024  # page cache: an import keeps the pages of its indexes it writes again and again


_UPSERT_POST = """INSERT INTO posts (post_id, urn, full_urn, platform, posted_at_timestamp,
        author_username, author_name, text_content, url, post_type, raw_json,
        first_seen_at, last_seen_at, is_read, is_marked, created_at, updated_at)
    VALUES (?,?,?,'linkedin',?,?,?,?,?,?,?,?,?,0,0,?,?)
    ON CONFLICT (urn) DO UPDATE SET
        full_urn = coalesce(nullif(excluded.full_urn, ''), posts.full_urn),
        posted_at_timestamp = CASE WHEN posts.posted_at_timestamp = 0
            THEN excluded.posted_at_timestamp ELSE posts.posted_at_timestamp END,
        author_username = coalesce(nullif(excluded.author_username, ''), posts.author_username),
        author_name = coalesce(nullif(excluded.author_name, ''), posts.author_name),
        text_content = coalesce(nullif(excluded.text_content, ''), posts.text_content),
        url = coalesce(nullif(excluded.url, ''), posts.url),
        post_type = coalesce(nullif(excluded.post_type, ''), posts.post_type),
        raw_json = excluded.raw_json,
        last_seen_at = excluded.last_seen_at,
        updated_at = excluded.updated_at"""
_INSERT_SLOT = """INSERT INTO post_media (media_id, post_id, media_type, media_url, slot_key,
        slot_role, position, url_expires_at, ai_analysis_log, created_at, updated_at)
    VALUES (?,?,?,?,?,?,?,?,'[]',?,?)"""


@dataclass(frozen=True)
class _SearchSource:
    """One FTS5 index a search reads: its table, its rank, and how its documents reach media rows."""

    table: str
    rank: str
    join: str
    where: tuple[str, ...]


# Media with text of their own are found by their document; the others by their post's
# (sqlite.sql: a media row has a document exactly when it has text of its own).
_SEARCH_SOURCES = (
    _SearchSource(
        "media_search",
        "-bm25(media_search, 10.0, 4.0, 3.0, 1.0, 1.0)",
        "JOIN post_media m ON m.rowid = d.rowid JOIN posts p ON p.post_id = m.post_id",
        ("m.duplicate_of IS NULL",),
    ),
    _SearchSource(
        "post_search",
        "-bm25(post_search, 1.0, 1.0)",
        "JOIN posts p ON p.rowid = d.rowid JOIN post_media m ON m.post_id = p.post_id",
        ("m.duplicate_of IS NULL", "m.ai_analysis IS NULL", "coalesce(m.extracted_text, '') = ''"),
    ),
)
# Columns read through the same rule as the SQL functions (media_ai_status): NULL is not_started.
_COLUMN_READ = {"ai_analysis_status": "coalesce(ai_analysis_status, 'not_started')"}
# Columns added to an existing table after an embedded database was first created: sqlite.sql
# declares them for new databases; an older file gets them here, before sqlite.sql runs (its
# indexes may name them). (table, column, declaration), in the order they were added.
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("post_media", "ai_batch_id", "TEXT"),
    ("post_media", "text_status", "TEXT NOT NULL DEFAULT 'not_started'"
     " CHECK (text_status IN ('not_started', 'started', 'completed', 'failed'))"),
    ("post_media", "text_claimed_by", "TEXT"),
    ("post_media", "text_claimed_at", "TEXT"),
    ("post_media", "extracted_text", "TEXT"),
    ("post_media", "text_segments", "TEXT"),
    ("post_media", "text_engine", "TEXT"),
    ("post_media", "text_extracted_at", "TEXT"),
    ("post_media", "phash", "TEXT"),
    ("post_media", "near_group_id", "TEXT"),
)  # fmt: skip


def _hamming(a: str | None, b: str | None) -> int | None:
    """Bits that differ between two 64-bit hashes in hex (the SQL twin of bit_count(a # b))."""
    if not a or not b:
        return None
    try:
        return (int(a, 16) ^ int(b, 16)).bit_count()
    except ValueError:
        return None


def _cutoff(lease_seconds: int) -> str:
    return to_iso(datetime.now(UTC) - timedelta(seconds=lease_seconds))


def _encode(column: str, value):
    if column in JSON_COLUMNS and value is not None and not isinstance(value, str):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, bool):
        return int(value)
    return value


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Give an existing database the ADDED_COLUMNS it does not have yet (a concurrent opener
    may add one first: that is not an error)."""
    for table, column, declaration in ADDED_COLUMNS:
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if present and column not in present:
            try:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            except sqlite3.OperationalError as exc:
                if "duplicate column" not in str(exc):
                    raise


@contextmanager
def _sqlite_errors(path: Path) -> Iterator[None]:
    """What sqlite3 raises for a database or a value it cannot use (an int over 64 bits, a lone
    surrogate), as one StoreError line."""
    try:
        yield
    except (sqlite3.Error, OverflowError, UnicodeEncodeError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            raise StoreFull(
                f"the disk under {path} is full: nothing of this step was written; free space and run again"
            ) from None
        raise StoreError(f"SQLite database {path} refused the statement: {reason}") from None


def _chunks(items: list, size: int = CHUNK) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _media_where(query: MediaQuery) -> tuple[list[str], list]:
    """The conditions and parameters of a MediaQuery (the twin of media_list's in the migrations)."""
    media_ids = None if query.media_ids is None else json.dumps(list(query.media_ids))
    filters = [
        ("post_id = ?", query.post_id),
        ("download_status = ?", query.download_status),
        (f"{_COLUMN_READ['ai_analysis_status']} = ?", query.ai_status),
        ("media_type = ?", query.media_type),
        ("created_at >= ?", query.since),  # ISO-8601 UTC text: text order is time order
        ("media_id IN (SELECT value FROM json_each(?))", media_ids),  # one parameter, any length
    ]
    where = [condition for condition, value in filters if value is not None]
    return where or ["1"], [value for _, value in filters if value is not None]


_BROWSE_SELECT = ", ".join(
    [f"m.{c}" if c not in _COLUMN_READ else f"{_COLUMN_READ[c]} AS {c}" for c in BROWSE_MEDIA_FIELDS]
    + [f"p.{column} AS {name}" for name, column in BROWSE_POST_FIELDS.items()]
)


def _browse_where(query: BrowseQuery, after: tuple | None) -> tuple[list[str], list]:
    """The conditions and parameters of a browse page (the twin of media_browse in the migrations)."""
    where: list[str] = []
    params: list = []
    if query.text is not None:
        fields = ("m.ai_analysis", "p.text_content", "p.author_username", "p.author_name")
        where.append("(" + " OR ".join(f"{f} LIKE ? ESCAPE '\\'" for f in fields) + ")")
        params += [like_pattern(query.text)] * len(fields)
    if query.post_id is not None:
        where.append("p.post_id = ?")
        params.append(query.post_id)
    if query.author is not None:
        where.append("(p.author_username LIKE ? ESCAPE '\\' OR p.author_name LIKE ? ESCAPE '\\')")
        params += [like_pattern(query.author)] * 2
    if query.media_type is not None:
        where.append("m.media_type = ?")
        params.append(query.media_type)
    if query.media_ids is not None:
        where.append("m.media_id IN (SELECT value FROM json_each(?))")  # one parameter, any length
        params.append(json.dumps(list(query.media_ids)))
    if after is not None:
        posted_at, post_id, position, media_id = after
        # The first condition alone is a range on idx_posts_browse_order; the rest picks the exact row.
        where.append(
            "p.posted_at_timestamp <= ? AND (p.posted_at_timestamp < ? OR (p.posted_at_timestamp = ?"
            " AND (p.post_id < ? OR (p.post_id = ? AND (m.position, m.media_id) > (?, ?)))))"
        )
        params += [posted_at, posted_at, posted_at, post_id, post_id, position, media_id]
    return where or ["1"], params


def _primary_slots(conn: sqlite3.Connection, rows: list[MediaSlotRow]) -> dict[tuple[str, str], dict]:
    """The stored primary rows of these rows' posts, by (post_id, slot_key): one index read per
    post, not one per slot (most posts of an import are new and have none)."""
    post_ids = list(dict.fromkeys(row.post_id for row in rows))
    found = conn.execute(
        "SELECT media_id, post_id, slot_key, media_url, url_expires_at FROM post_media"
        f" WHERE post_id IN ({','.join('?' * len(post_ids))}) AND duplicate_of IS NULL",
        post_ids,
    )
    return {(r["post_id"], r["slot_key"]): dict(r) for r in found}


def _upsert_slots(conn: sqlite3.Connection, rows: list[MediaSlotRow], now: str) -> list[UpsertedMedia]:
    """Insert each slot, or refresh its stored row with a fresher URL; new rows go in together."""
    current = _primary_slots(conn, rows)  # follows the writes: a slot met twice is met stored
    out: list[UpsertedMedia] = []
    inserts: list[tuple] = []
    for row in rows:
        key = (row.post_id, row.slot_key)
        stored = current.get(key)
        if stored is None:
            inserts.append(
                (
                    row.media_id, row.post_id, row.media_type, row.media_url, row.slot_key,
                    row.slot_role, row.position, row.url_expires_at, now, now,
                )
            )  # fmt: skip
            current[key] = {
                "media_id": row.media_id,
                "media_url": row.media_url,
                "url_expires_at": row.url_expires_at,
            }
            out.append(UpsertedMedia(row.media_id, row.post_id, row.slot_key, True))
            continue
        old_expiry, new_expiry = stored["url_expires_at"], row.url_expires_at
        newer = old_expiry is None or new_expiry is None or new_expiry >= old_expiry
        if row.media_url != stored["media_url"] and newer:  # an older scrape's URL changes nothing
            conn.executemany(_INSERT_SLOT, inserts)  # the row to refresh may be one of them
            inserts.clear()
            expiry = max(filter(None, (old_expiry, new_expiry)), default=None)
            conn.execute(
                """UPDATE post_media SET media_url=?, url_expires_at=?, download_permanent=0,
                       download_status=CASE WHEN download_status='failed' THEN 'pending'
                                            ELSE download_status END,
                       updated_at=? WHERE media_id=?""",
                (row.media_url, expiry, now, stored["media_id"]),
            )
            stored.update(media_url=row.media_url, url_expires_at=expiry)
        out.append(UpsertedMedia(stored["media_id"], row.post_id, row.slot_key, False))
    conn.executemany(_INSERT_SLOT, inserts)
    return out


def _write_analysis(conn: sqlite3.Connection, outcome: AnalysisOutcome, log: list[dict], now: str) -> None:
    """A finished analysis on its row: result, tokens and cost added, claim and batch released."""
    done = outcome.status == "completed"
    conn.execute(
        """UPDATE post_media SET ai_analysis_status=?,
               ai_analysis=CASE WHEN ? THEN ? ELSE ai_analysis END,
               ai_analyzed_at=CASE WHEN ? THEN ? ELSE ai_analyzed_at END,
               ai_model=coalesce(?, ai_model),
               ai_prompt_tokens=coalesce(ai_prompt_tokens, 0) + ?,
               ai_completion_tokens=coalesce(ai_completion_tokens, 0) + ?,
               ai_cost_usd=coalesce(ai_cost_usd, 0) + ?,
               ai_claimed_by=NULL, ai_claimed_at=NULL, ai_batch_id=NULL,
               ai_analysis_log=?, updated_at=?
           WHERE media_id=?""",
        (
            outcome.status, done, _encode("ai_analysis", outcome.analysis), done, now,
            outcome.model, outcome.prompt_tokens, outcome.completion_tokens,
            outcome.cost_usd, json.dumps(log), now, outcome.media_id,
        ),
    )  # fmt: skip


class _Checkpointer:
    """Copies committed pages from the WAL back into the database file on a thread and a
    connection of its own, so that no commit waits for it.

    SQLite's automatic checkpoint runs inside the COMMIT that takes the WAL past its limit. The
    ids are random, so every import batch dirties pages across whole indexes, and copying them
    back (with an fsync) inside each commit grew with the tables, to about a fifth of an import
    of 100,000 posts. Here it overlaps the work on the next batch."""

    def __init__(self, path: Path):
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._committed = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        """Something was committed: copy it back soon."""
        self._committed.set()

    def _run(self) -> None:
        try:
            while self._committed.wait() and not self._closed.is_set():
                self._committed.clear()
                try:
                    self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:  # the next commit tries again; the WAL keeps the data
                    log.warning("SQLite checkpoint failed: %s", exc)
                self._closed.wait(CHECKPOINT_PAUSE)
        finally:
            self._conn.close()

    def close(self) -> None:
        self._closed.set()
        self._committed.set()
        self._thread.join()


class SQLiteStore(MediaStore):
    """MediaStore on one SQLite file. Safe to share between threads (one lock, one connection;
    checkpoints run on a connection of their own, see _Checkpointer)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))  # it holds signed URLs: private
            self._conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open SQLite database {self.path}: {exc}") from None
        self._conn.row_factory = sqlite3.Row
        self._conn.create_function("hamming64", 2, _hamming, deterministic=True)
        self._lock = threading.RLock()
        with _sqlite_errors(self.path):  # e.g. a file that is not a database
            columns = {r[1] for r in self._conn.execute("PRAGMA table_info(posts)")}
            if "post_url" in columns:  # our first release's own column names, before the installation's
                self._conn.close()
                raise StoreError(
                    f"{self.path} has the schema of an earlier release of this tool: move it aside "
                    "and import your posts again (nothing in it was changed)"
                )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute("PRAGMA busy_timeout=60000")
            self._conn.execute("PRAGMA temp_store=MEMORY")  # statement journals (a trigger needs one per row)
            self._conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            self._conn.execute(f"PRAGMA wal_autocheckpoint={WAL_LIMIT_PAGES}")
            with self._lock:
                _add_missing_columns(self._conn)
                self._conn.executescript("BEGIN IMMEDIATE;" + SCHEMA_FILE.read_text() + "COMMIT;")
            self._checkpointer = _Checkpointer(self.path)
            for path in (self.path, *(self.path.with_name(self.path.name + s) for s in ("-wal", "-shm"))):
                if path.exists():
                    os.chmod(path, 0o600)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE: take the write lock up front so read-then-write steps are atomic."""
        with self._lock, _sqlite_errors(self.path):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        self._checkpointer.committed()

    def _rows(self, sql: str, params: tuple | list = ()) -> list[dict]:
        with self._lock, _sqlite_errors(self.path):
            return [normalize_row(dict(r)) for r in self._conn.execute(sql, params).fetchall()]

    # posts and runs ---------------------------------------------------------------------

    def upsert_posts(self, records: list[PostRecord]) -> list[tuple[str, bool]]:
        now = utc_now()
        result: dict[str, tuple[str, bool]] = {}
        with self._transaction() as conn:
            for chunk in _chunks(records):
                urns = [r.urn for r in chunk]
                marks = ",".join("?" * len(urns))
                existing = dict(
                    conn.execute(f"SELECT urn, post_id FROM posts WHERE urn IN ({marks})", urns).fetchall()
                )
                values = []
                for record in chunk:
                    post_id = existing.get(record.urn) or result.get(record.urn, (None,))[0]
                    inserted = post_id is None
                    post_id = post_id or generate_aws_id(PREFIX_POST)
                    values.append(
                        (
                            post_id, record.urn, record.full_urn, record.posted_at_timestamp,
                            record.author_username, record.author_name, record.text_content, record.url,
                            record.post_type, record.raw_json, now, now, now, now,
                        )
                    )  # fmt: skip
                    previous = result.get(record.urn)
                    result[record.urn] = (post_id, inserted if previous is None else previous[1])
                conn.executemany(_UPSERT_POST, values)  # in order: a URN met twice updates its row
        return [result[r.urn] for r in records]

    def start_run(self, source_path: str, script_name: str, run_id: str | None = None) -> str:
        run_id = run_id or generate_aws_id(PREFIX_RUN)
        now = utc_now()
        with self._transaction() as conn:
            conn.execute(
                """INSERT INTO download_runs (run_id, started_at, status, script_name, platform, system_info,
                       source_path, created_at) VALUES (?,?,'running',?,'linkedin',?,?,?)""",
                (run_id, now, script_name, system_info(script_name), source_path, now),
            )
        return run_id

    def finish_run(self, run_id: str, counts: RunCounts, status: str) -> None:
        with self._transaction() as conn:
            conn.execute(
                """UPDATE download_runs SET completed_at=?, status=?, posts_fetched=?, posts_new=?,
                       posts_updated=?, error_count=?, error_message=? WHERE run_id=?""",
                (
                    utc_now(), status, counts.posts_processed, counts.posts_new,
                    counts.posts_updated, counts.error_count,
                    "\n".join(counts.errors[:50]) or None, run_id,
                ),
            )  # fmt: skip

    def insert_data_downloads(self, rows: list[dict]) -> set[str]:
        if not rows:
            return set()
        columns = list(rows[0])
        replaced = ", ".join(f"{c} = excluded.{c}" for c in columns if c != "download_id")
        sql = (
            f"INSERT INTO data_downloads ({','.join(columns)}, created_at)"
            f" VALUES ({','.join('?' * (len(columns) + 1))})"
            f" ON CONFLICT (download_id) DO UPDATE SET {replaced}"
        )
        now = utc_now()
        with self._transaction() as conn:
            stored: set[str] = set()
            for chunk in _chunks([row["download_id"] for row in rows]):
                marks = ",".join("?" * len(chunk))
                found = conn.execute(
                    f"SELECT download_id FROM data_downloads WHERE download_id IN ({marks})", chunk
                )
                stored.update(download_id for (download_id,) in found)
            conn.executemany(sql, [[_encode(c, row[c]) for c in columns] + [now] for row in rows])
        return stored

    # media slots ------------------------------------------------------------------------

    def upsert_media(self, rows: list[MediaSlotRow]) -> list[UpsertedMedia]:
        now = utc_now()
        out: list[UpsertedMedia] = []
        with self._transaction() as conn:
            for chunk in _chunks(rows):
                out += _upsert_slots(conn, chunk, now)
        return out

    def iter_media(self, query: MediaQuery) -> Iterator[dict]:
        # A page per statement, after the last key: a cursor left open between pages would hold
        # this shared connection's read while the caller writes through it (undefined in SQLite).
        where, params = _media_where(query)

        def read_page(after: tuple | None) -> list[dict]:
            conditions = [*where, "(post_id, position, media_id) > (?, ?, ?)"] if after else where
            return self._rows(
                f"SELECT * FROM post_media WHERE {' AND '.join(conditions)}"
                " ORDER BY post_id, position, media_id LIMIT ?",
                [*params, *(after or ()), PAGE_ROWS],
            )

        return media_pages(read_page)

    def get_media(self, media_id: str) -> dict | None:
        rows = self._rows("SELECT * FROM post_media WHERE media_id = ?", (media_id,))
        return rows[0] if rows else None

    def browse_media(
        self, query: BrowseQuery, after: tuple | None = None, limit: int = PAGE_ROWS
    ) -> list[dict]:
        where, params = _browse_where(query, after)
        return self._rows(
            f"SELECT {_BROWSE_SELECT} FROM posts p JOIN post_media m ON m.post_id = p.post_id"
            f" WHERE {' AND '.join(where)}"
            " ORDER BY p.posted_at_timestamp DESC, p.post_id DESC, m.position, m.media_id LIMIT ?",
            [*params, min(limit, PAGE_ROWS)],
        )

    # downloads --------------------------------------------------------------------------

    def analysis_claimants(self) -> list[str]:
        rows = self._rows(
            "SELECT DISTINCT ai_claimed_by FROM post_media"
            " WHERE ai_claimed_by IS NOT NULL AND ai_analysis_status = 'started' AND ai_batch_id IS NULL"
        )
        return [r["ai_claimed_by"] for r in rows]

    def download_claimants(self) -> list[str]:
        rows = self._rows(
            "SELECT DISTINCT download_claimed_by FROM post_media"
            " WHERE download_claimed_by IS NOT NULL AND download_status <> 'downloaded'"
        )
        return [r["download_claimed_by"] for r in rows]

    def claim_downloads(self, claim: DownloadClaim) -> list[dict]:
        worker, limit, media_ids = claim.worker, claim.limit, claim.media_ids
        dead = list(claim.dead_workers)
        params: list = [int(claim.retry_failed), _cutoff(claim.lease_seconds), *dead]
        id_clause = ""
        if media_ids is not None:
            id_clause = f"AND media_id IN ({','.join('?' * len(media_ids))})" if media_ids else "AND 0"
            params += media_ids
        with self._transaction() as conn:
            picked = [
                r[0]
                for r in conn.execute(
                    f"""SELECT media_id FROM post_media
                         WHERE (download_status = 'pending'
                                OR (download_status = 'failed' AND (? OR NOT download_permanent)))
                           AND (download_claimed_by IS NULL OR download_claimed_at < ?
                                OR download_claimed_by IN ({",".join("?" * len(dead))}))
                           {id_clause}
                         ORDER BY url_expires_at IS NULL, url_expires_at, created_at, position
                         LIMIT ?""",
                    params + [limit],
                ).fetchall()
            ]
            if not picked:
                return []
            marks = ",".join("?" * len(picked))
            conn.execute(
                f"UPDATE post_media SET download_claimed_by=?, download_claimed_at=? WHERE media_id IN ({marks})",
                [worker, utc_now(), *picked],
            )
            rows = self._by_ids(conn, picked)
        return sorted(rows, key=download_claim_order)

    def download_backlog(self, retry_failed: bool = False) -> int:
        with self._lock, _sqlite_errors(self.path):
            return self._conn.execute(
                """SELECT count(*) FROM post_media
                    WHERE download_status = 'pending'
                       OR (download_status = 'failed' AND (? OR NOT download_permanent))""",
                (int(retry_failed),),
            ).fetchone()[0]

    def finish_downloads(self, worker: str, outcomes: list[DownloadOutcome]) -> int:
        now = utc_now()
        done = 0
        with self._transaction() as conn:
            for o in outcomes:
                row = conn.execute(
                    "SELECT ai_analysis_log FROM post_media WHERE media_id=? AND download_claimed_by=?",
                    (o.media_id, worker),
                ).fetchone()
                if row is None:
                    continue
                log = parse_log(row["ai_analysis_log"]) + [o.event]
                ok = o.download_status == "downloaded"
                conn.execute(
                    """UPDATE post_media SET download_status=?,
                           md5_sum=coalesce(?, md5_sum), file_size=coalesce(?, file_size),
                           mime_type=coalesce(?, mime_type), width=coalesce(?, width),
                           height=coalesce(?, height), local_file_path=coalesce(?, local_file_path),
                           download_error=?, download_error_kind=?, download_permanent=?,
                           download_attempts=download_attempts + ?,
                           downloaded_at=CASE WHEN ? THEN ? ELSE downloaded_at END,
                           cache_used_at=CASE WHEN ? THEN ? ELSE cache_used_at END,
                           evicted_at=CASE WHEN ? THEN NULL ELSE evicted_at END,
                           download_claimed_by=NULL, download_claimed_at=NULL,
                           ai_analysis_log=?, updated_at=? WHERE media_id=?""",
                    (
                        o.download_status, o.md5_sum, o.file_size, o.mime_type, o.width, o.height,
                        o.local_file_path, o.download_error, o.download_error_kind,
                        int(o.download_permanent), o.attempts, ok, now, ok, now, ok,
                        json.dumps(log), now, o.media_id,
                    ),
                )  # fmt: skip
                done += 1
        return done

    def release_downloads(self, worker: str) -> int:
        with self._transaction() as conn:
            return conn.execute(
                "UPDATE post_media SET download_claimed_by=NULL, download_claimed_at=NULL"
                " WHERE download_claimed_by=?",
                (worker,),
            ).rowcount

    # analysis ---------------------------------------------------------------------------

    def claim_analysis(self, claim: AnalysisClaim) -> list[dict]:
        with self._transaction() as conn:
            return self._claim_rows(conn, claim, None)

    def _claim_rows(self, conn: sqlite3.Connection, claim: AnalysisClaim, batch_id: str | None) -> list[dict]:
        """Take the claimable rows for `claim` (into `batch_id`, when given), inside the caller's transaction."""
        now = utc_now()
        picked = self._analysis_claimable(
            conn,
            claim.statuses,
            claim.media_ids,
            claim.lease_seconds,
            claim.limit,
            list(claim.dead_workers),
        )
        for row in picked:
            log = json.dumps(parse_log(row["ai_analysis_log"]) + [claim.event])
            conn.execute(
                """UPDATE post_media SET ai_analysis_status='started', ai_claimed_by=?,
                       ai_claimed_at=?, ai_batch_id=?, ai_analysis_log=?, updated_at=? WHERE media_id=?""",
                (claim.worker, now, batch_id, log, now, row["media_id"]),
            )
        return self._by_ids(conn, [r["media_id"] for r in picked])

    # analysis batches -------------------------------------------------------------------

    def claim_analysis_batch(self, batch: AnalysisBatch, claim: AnalysisClaim) -> list[dict]:
        now = utc_now()
        with self._transaction() as conn:
            stored = conn.execute(
                "SELECT status, owner FROM media_analysis_batches WHERE batch_id=?", (batch.batch_id,)
            ).fetchone()
            if stored is not None and (stored["status"], stored["owner"]) != ("preparing", batch.owner):
                return []
            rows = self._claim_rows(conn, claim, batch.batch_id)
            if rows and stored is None:  # a batch is recorded with its first rows, never empty
                conn.execute(
                    """INSERT INTO media_analysis_batches (batch_id, status, model, api_base, owner,
                           created_at, updated_at) VALUES (?, 'preparing', ?, ?, ?, ?, ?)""",
                    (batch.batch_id, batch.model, batch.api_base, batch.owner, now, now),
                )
            conn.execute(
                "UPDATE media_analysis_batches SET item_count = item_count + ?, updated_at=? WHERE batch_id=?",
                (len(rows), now, batch.batch_id),
            )
        return rows

    def analysis_batches(self, open_only: bool = True) -> list[dict]:
        where = f"status IN {BATCH_OPEN_STATUSES}" if open_only else "1"
        return self._rows(f"SELECT * FROM media_analysis_batches WHERE {where} ORDER BY created_at, batch_id")

    def batch_members(self, batch_id: str) -> list[dict]:
        return self._rows(
            "SELECT media_id, md5_sum FROM post_media WHERE ai_batch_id=? AND ai_analysis_status='started'"
            " ORDER BY media_id",
            (batch_id,),
        )

    def update_analysis_batch(
        self, batch_id: str, fields: dict, from_statuses: tuple[str, ...] | list[str] | None = None
    ) -> bool:
        assignments = {**fields, "updated_at": utc_now()}
        sets = ", ".join(f"{column}=?" for column in assignments)
        params: list = [*assignments.values(), batch_id]
        condition = ""
        if from_statuses is not None:
            condition = (
                f" AND status IN ({','.join('?' * len(from_statuses))})" if from_statuses else " AND 0"
            )
            params += list(from_statuses)
        with self._transaction() as conn:
            changed = conn.execute(
                f"UPDATE media_analysis_batches SET {sets} WHERE batch_id=?{condition}", params
            ).rowcount
        return changed == 1

    def finish_batch_item(self, batch_id: str, outcome: AnalysisOutcome) -> bool:
        now = utc_now()
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT ai_analysis_log FROM post_media"
                " WHERE media_id=? AND ai_batch_id=? AND ai_analysis_status='started'",
                (outcome.media_id, batch_id),
            ).fetchone()
            if row is None:
                return False
            log = parse_log(row["ai_analysis_log"]) + [*outcome.before_events, outcome.event]
            _write_analysis(conn, outcome, log, now)
        return True

    def release_analysis_batch(self, batch_id: str, event: dict) -> int:
        now = utc_now()
        with self._transaction() as conn:
            waiting = conn.execute(
                "SELECT media_id, ai_analysis_log FROM post_media WHERE ai_batch_id=? AND ai_analysis_status='started'",
                (batch_id,),
            ).fetchall()
            for row in waiting:
                conn.execute(
                    """UPDATE post_media SET ai_analysis_status=CASE WHEN ai_analysis IS NOT NULL
                               THEN 'completed' ELSE 'not_started' END,
                           ai_claimed_by=NULL, ai_claimed_at=NULL, ai_batch_id=NULL,
                           ai_analysis_log=?, updated_at=? WHERE media_id=?""",
                    (json.dumps(parse_log(row["ai_analysis_log"]) + [event]), now, row["media_id"]),
                )
        return len(waiting)

    def shareable_analysis(self, media_id: str, model: str) -> dict | None:
        rows = self._rows(
            """SELECT o.* FROM post_media me
                 JOIN post_media o ON o.media_id <> me.media_id
                                  AND ((me.md5_sum IS NOT NULL AND o.md5_sum = me.md5_sum)
                                       OR (me.near_group_id IS NOT NULL AND o.near_group_id = me.near_group_id))
                WHERE me.media_id = ?
                  AND o.ai_analysis_status = 'completed' AND o.ai_analysis IS NOT NULL
                  AND (o.ai_model = ? OR o.ai_model LIKE ? || '-____-__-__')
                ORDER BY o.md5_sum IS me.md5_sum DESC, o.file_size IS NULL, o.file_size DESC,
                         o.ai_analyzed_at IS NULL, o.ai_analyzed_at DESC, o.media_id LIMIT 1""",
            (media_id, model, model),
        )
        return rows[0] if rows else None

    def batch_counts(self) -> dict:
        with self._lock, _sqlite_errors(self.path):
            row = self._conn.execute(
                f"""SELECT count(*) FILTER (WHERE status IN {BATCH_OPEN_STATUSES}) AS batches_open,
                          coalesce(sum(item_count) FILTER (WHERE status IN {BATCH_OPEN_STATUSES}), 0)
                              AS batch_items_open,
                          min(coalesce(submitted_at, created_at)) FILTER (WHERE status IN {BATCH_OPEN_STATUSES})
                              AS batch_oldest_open_at,
                          coalesce(sum(cost_usd), 0) AS batch_cost_usd,
                          coalesce(sum(saved_usd), 0) AS batch_saved_usd
                     FROM media_analysis_batches"""
            ).fetchone()
        return batch_counts_row(dict(row))

    def analysis_candidates(self, query: AnalysisQuery) -> list[dict]:
        with self._lock, _sqlite_errors(self.path):
            claimable = self._analysis_claimable(
                self._conn, query.statuses, query.media_ids, query.lease_seconds
            )
            return [normalize_row(dict(r)) for r in claimable]

    @staticmethod
    def _analysis_claimable(
        conn: sqlite3.Connection,
        statuses: list[str],
        media_ids: list[str] | None,
        lease_seconds: int,
        limit: int = -1,
        dead_workers: list[str] | None = None,
    ) -> list[sqlite3.Row]:
        """The one rule for which rows analysis may take (the twin of media_analysis_claimable):
        a cached file, and a status the run asks for, or `started` under an expired lease or
        held by a process that is gone."""
        if not statuses or media_ids == []:
            return []
        dead = list(dead_workers or [])
        params: list = [*statuses, _cutoff(lease_seconds), *dead]
        id_clause = ""
        if media_ids is not None:
            id_clause = f"AND media_id IN ({','.join('?' * len(media_ids))})"
            params += media_ids
        return conn.execute(
            f"""SELECT * FROM post_media
                 WHERE download_status = 'downloaded' AND evicted_at IS NULL
                   AND local_file_path IS NOT NULL
                   AND (coalesce(ai_analysis_status, 'not_started') IN ({",".join("?" * len(statuses))})
                        OR (ai_analysis_status = 'started' AND ai_batch_id IS NULL
                            AND (ai_claimed_at IS NULL OR ai_claimed_at < ?
                                 OR ai_claimed_by IN ({",".join("?" * len(dead))}))))
                   {id_clause}
                 ORDER BY created_at, media_id LIMIT ?""",
            params + [limit],
        ).fetchall()

    @staticmethod
    def _by_ids(conn: sqlite3.Connection, media_ids: list[str]) -> list[dict]:
        """Rows by id, in the order of the ids."""
        if not media_ids:
            return []
        found = {
            r["media_id"]: normalize_row(dict(r))
            for r in conn.execute(
                f"SELECT * FROM post_media WHERE media_id IN ({','.join('?' * len(media_ids))})", media_ids
            )
        }
        return [found[m] for m in media_ids if m in found]

    def finish_analysis(self, worker: str, outcome: AnalysisOutcome) -> bool:
        now = utc_now()
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT ai_analysis_log FROM post_media"
                " WHERE media_id=? AND ai_claimed_by=? AND ai_analysis_status='started'",
                (outcome.media_id, worker),
            ).fetchone()
            if row is None:
                return False
            _write_analysis(conn, outcome, parse_log(row["ai_analysis_log"]) + [outcome.event], now)
        return True

    # local text extraction, duplicates, search ------------------------------------------

    @staticmethod
    def _text_claimable(
        conn: sqlite3.Connection,
        statuses: list[str],
        media_ids: list[str] | None,
        lease_seconds: int,
        limit: int = -1,
        dead_workers: list[str] | None = None,
        columns: str = "*",
    ) -> list[sqlite3.Row]:
        """The twin of media_text_claimable (+ media_claim_text's rule on bytes being read)."""
        if not statuses or media_ids == []:
            return []
        dead = list(dead_workers or [])
        cutoff = _cutoff(lease_seconds)
        params: list = [*statuses, cutoff, *dead]
        id_clause = ""
        if media_ids is not None:
            id_clause = f"AND m.media_id IN ({','.join('?' * len(media_ids))})"
            params += media_ids
        params += [cutoff, *dead, *statuses, cutoff, *dead, *(media_ids or []), limit]
        return conn.execute(
            f"""SELECT {columns} FROM post_media m
                 WHERE m.download_status = 'downloaded' AND m.evicted_at IS NULL
                   AND m.local_file_path IS NOT NULL
                   AND (m.text_status IN ({",".join("?" * len(statuses))})
                        OR (m.text_status = 'started'
                            AND (m.text_claimed_at IS NULL OR m.text_claimed_at < ?
                                 OR m.text_claimed_by IN ({",".join("?" * len(dead))}))))
                   {id_clause}
                   AND NOT EXISTS (SELECT 1 FROM post_media o
                                    WHERE o.md5_sum = m.md5_sum AND o.media_id <> m.media_id
                                      AND o.text_status = 'started' AND o.text_claimed_at >= ?
                                      AND o.text_claimed_by NOT IN ({",".join("?" * len(dead))}))
                   AND NOT EXISTS (SELECT 1 FROM post_media o
                                    WHERE o.md5_sum = m.md5_sum AND o.media_id < m.media_id
                                      AND o.download_status = 'downloaded' AND o.evicted_at IS NULL
                                      AND o.local_file_path IS NOT NULL
                                      AND (o.text_status IN ({",".join("?" * len(statuses))})
                                           OR (o.text_status = 'started'
                                               AND (o.text_claimed_at IS NULL OR o.text_claimed_at < ?
                                                    OR o.text_claimed_by IN ({",".join("?" * len(dead))}))))
                                      {id_clause.replace("m.media_id", "o.media_id")})
                 ORDER BY m.created_at, m.media_id LIMIT ?""",
            params,
        ).fetchall()

    def claim_text(self, claim: TextClaim) -> list[dict]:
        now = utc_now()
        with self._transaction() as conn:
            picked = self._text_claimable(
                conn, claim.statuses, claim.media_ids, claim.lease_seconds, claim.limit,
                list(claim.dead_workers), "m.media_id, m.ai_analysis_log",
            )  # fmt: skip
            for row in picked:
                log = json.dumps(parse_log(row["ai_analysis_log"]) + [claim.event])
                conn.execute(
                    """UPDATE post_media SET text_status='started', text_claimed_by=?, text_claimed_at=?,
                           ai_analysis_log=?, updated_at=? WHERE media_id=?""",
                    (claim.worker, now, log, now, row["media_id"]),
                )
            return self._by_ids(conn, [r["media_id"] for r in picked])

    def text_claimants(self) -> list[str]:
        rows = self._rows(
            "SELECT DISTINCT text_claimed_by FROM post_media"
            " WHERE text_claimed_by IS NOT NULL AND text_status = 'started'"
        )
        return [r["text_claimed_by"] for r in rows]

    def text_backlog(self, statuses: list[str], media_ids: list[str] | None = None) -> int:
        with self._lock, _sqlite_errors(self.path):
            return len(
                self._text_claimable(
                    self._conn, statuses, media_ids, TEXT_LEASE_SECONDS, columns="m.media_id"
                )
            )

    def finish_text(self, worker: str, outcome: TextOutcome, lease_seconds: int = TEXT_LEASE_SECONDS) -> int:
        now = utc_now()
        done = outcome.status == "completed"
        segments = None if outcome.segments is None else json.dumps(outcome.segments, ensure_ascii=False)
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT ai_analysis_log, md5_sum FROM post_media"
                " WHERE media_id=? AND text_claimed_by=? AND text_status='started'",
                (outcome.media_id, worker),
            ).fetchone()
            if row is None:
                return 0
            conn.execute(
                """UPDATE post_media SET text_status=?,
                       extracted_text=CASE WHEN ? THEN ? ELSE extracted_text END,
                       text_segments=CASE WHEN ? THEN ? ELSE text_segments END,
                       text_engine=CASE WHEN ? THEN ? ELSE text_engine END,
                       text_extracted_at=CASE WHEN ? THEN ? ELSE text_extracted_at END,
                       phash=coalesce(?, phash), text_claimed_by=NULL, text_claimed_at=NULL,
                       ai_analysis_log=?, updated_at=? WHERE media_id=?""",
                (
                    outcome.status, done, outcome.text, done, segments, done, outcome.engine, done, now,
                    outcome.phash, json.dumps(parse_log(row["ai_analysis_log"]) + [outcome.event]), now,
                    outcome.media_id,
                ),
            )  # fmt: skip
            if not done or row["md5_sum"] is None:
                return 1
            twins = conn.execute(
                """SELECT media_id, ai_analysis_log FROM post_media
                    WHERE md5_sum = ? AND media_id <> ?
                      AND (text_status IN ('not_started', 'failed')
                           OR (text_status = 'started' AND (text_claimed_at IS NULL OR text_claimed_at < ?)))""",
                (row["md5_sum"], outcome.media_id, _cutoff(lease_seconds)),
            ).fetchall()
            details = {**outcome.event.get("details", {}), "shared_from": outcome.media_id}
            started = {
                "timestamp": outcome.event.get("timestamp", now), "event": "text_extraction_started",
                "status": "success", "details": {"shared_from": outcome.media_id},
            }  # fmt: skip
            for twin in twins:
                log = parse_log(twin["ai_analysis_log"]) + [started, {**outcome.event, "details": details}]
                conn.execute(
                    """UPDATE post_media SET text_status='completed', extracted_text=?, text_segments=?,
                           text_engine=?, text_extracted_at=?, phash=coalesce(?, phash), text_claimed_by=NULL,
                           text_claimed_at=NULL, ai_analysis_log=?, updated_at=? WHERE media_id=?""",
                    (
                        outcome.text, segments, outcome.engine, now, outcome.phash, json.dumps(log), now,
                        twin["media_id"],
                    ),
                )  # fmt: skip
            return 1 + len(twins)

    def extracted_text_of(self, md5_sum: str) -> dict | None:
        rows = self._rows(
            "SELECT * FROM post_media WHERE md5_sum = ? AND text_status = 'completed'"
            " ORDER BY text_extracted_at, media_id LIMIT 1",
            (md5_sum,),
        )
        return rows[0] if rows else None

    def near_candidates(self, media_id: str, phash: str, max_distance: int) -> list[dict]:
        return self._rows(
            """SELECT c.media_id, c.post_id, c.md5_sum, c.phash, c.extracted_text, c.file_size, c.near_group_id,
                      hamming64(c.phash, ?) AS distance
                 FROM post_media c, (SELECT post_id FROM post_media WHERE media_id = ?) me
                WHERE c.phash IS NOT NULL AND c.media_id <> ? AND c.post_id <> me.post_id
                  AND c.text_status = 'completed' AND hamming64(c.phash, ?) <= ?
                ORDER BY distance, c.created_at, c.media_id LIMIT 50""",
            (phash, media_id, media_id, phash, max_distance),
        )

    def set_near_group(self, group_id: str, media_ids: list[str]) -> int:
        marks = ",".join("?" * len(media_ids))
        with self._transaction() as conn:
            return conn.execute(
                f"""UPDATE post_media SET near_group_id = ?, updated_at = ?
                     WHERE media_id IN ({marks})
                        OR md5_sum IN (SELECT md5_sum FROM post_media WHERE media_id IN ({marks}))
                        OR near_group_id IN (SELECT near_group_id FROM post_media WHERE media_id IN ({marks}))""",
                [group_id, utc_now(), *media_ids, *media_ids, *media_ids],
            ).rowcount

    def iter_duplicate_groups(self) -> Iterator[dict]:
        rows = self._rows(
            """SELECT m.media_id, m.post_id, m.media_type, m.media_url, p.url AS post_url, p.author_username,
                      p.posted_at_timestamp, m.file_size, m.width, m.height, m.md5_sum, m.local_file_path,
                      m.near_group_id, m.created_at
                 FROM post_media m JOIN posts p ON p.post_id = m.post_id
                WHERE m.duplicate_of IS NULL AND (m.near_group_id IS NOT NULL
                      OR m.md5_sum IN (SELECT md5_sum FROM post_media WHERE md5_sum IS NOT NULL
                                        AND duplicate_of IS NULL GROUP BY md5_sum HAVING count(*) > 1))"""
        )
        near_of_md5 = {}
        for row in rows:
            if row["near_group_id"] and row["md5_sum"]:
                near_of_md5[row["md5_sum"]] = min(row["near_group_id"], near_of_md5.get(row["md5_sum"], "~"))
        groups: dict[str, list[dict]] = {}
        for row in rows:
            key = row["near_group_id"] or near_of_md5.get(row["md5_sum"]) or f"md5:{row['md5_sum']}"
            groups.setdefault(key, []).append(row)
        for key in sorted(groups):
            members = groups[key]
            if len(members) < 2:
                continue
            members.sort(
                key=lambda r: (
                    -(r["file_size"] or -1), -((r["width"] or 0) * (r["height"] or 0)), r["posted_at_timestamp"],
                    r["media_id"],
                )
            )  # fmt: skip
            for rank, row in enumerate(members, start=1):
                kind = "identical" if key.startswith("md5:") else "near"
                extra = {"group_key": key, "member_rank": rank, "kind": kind}
                yield {**extra, **{k: v for k, v in row.items() if k not in ("near_group_id", "created_at")}}

    def search_media(self, query: SearchQuery) -> list[SearchHit]:
        match = fts5_match(query.terms, query.field)
        filters, params = [], []
        if query.media_type:
            filters.append("m.media_type = ?")
            params.append(query.media_type)
        if query.author:
            filters.append("(lower(p.author_username) = lower(?) OR lower(p.author_name) = lower(?))")
            params += [query.author, query.author]
        if query.since:
            filters.append("p.posted_at_timestamp >= ?")
            params.append(day_start_ms(query.since))
        sources = _SEARCH_SOURCES if query.field in (None, "post") else _SEARCH_SOURCES[:1]
        top = (
            None
            if filters
            else self._search_top(sources, match, filters, params, query.limit, SEARCH_CANDIDATES)
        )
        if top is None:
            top = self._search_top(sources, match, filters, params, query.limit)
        return [self._search_hit(hit, match) for hit in top]

    def _search_top(
        self,
        sources: tuple[_SearchSource, ...],
        match: str,
        filters: list[str],
        params: list,
        limit: int,
        candidates: int | None = None,
    ) -> list[dict] | None:
        """The best `limit` pictures: one row per picture (SQLite's max() picks the columns of the
        best-ranked copy), only the top rows leaving the database however many match. With
        `candidates`, only that many best-ranked documents of each index are looked up first (a
        common word matches tens of thousands): exact when every picture shown ranks above the
        last document looked up of each index that had more (anything left out ranks lower);
        else None, and the caller asks again without."""
        limited = f"ORDER BY rank DESC LIMIT {int(candidates)}" if candidates is not None else ""
        docs = [
            f"""{source.table}_docs AS MATERIALIZED (
                    SELECT rowid, {source.rank} AS rank FROM {source.table} WHERE {source.table} MATCH ? {limited})"""
            for source in sources
        ]
        hits = [
            f"""SELECT '{source.table}' AS doc, d.rowid AS doc_rowid, m.media_id, m.media_type, m.local_file_path,
                       m.media_url, coalesce(m.near_group_id, 'md5:' || m.md5_sum, 'id:' || m.media_id) AS group_key,
                       d.rank
                  FROM {source.table}_docs d {source.join}
                 WHERE {" AND ".join([*source.where, *filters])}"""
            for source in sources
        ]
        cuts = "".join(
            f", (SELECT min(rank) FROM {s.table}_docs HAVING count(*) >= {int(candidates)}) AS {s.table}_cut"
            for s in sources
            if candidates is not None
        )
        rows = self._rows(
            f"""WITH {", ".join(docs)}, hits AS MATERIALIZED ({" UNION ALL ".join(hits)})
                SELECT group_key, doc, doc_rowid, media_id, media_type, local_file_path, media_url,
                       max(rank) AS rank{cuts}
                  FROM hits GROUP BY group_key
                 ORDER BY rank DESC, media_id LIMIT ?""",
            [match] * len(sources) + params * len(sources) + [limit],
        )
        if candidates is None:
            return rows
        cut_off = [rows[0][f"{s.table}_cut"] for s in sources] if rows else [math.inf]
        cut_off = [rank for rank in cut_off if rank is not None]  # the indexes that had more
        return rows if not cut_off or (len(rows) == limit and rows[-1]["rank"] > max(cut_off)) else None

    def _search_hit(self, hit: dict, match: str) -> SearchHit:
        """A hit with every copy of its picture and their posts, earliest post first, and a
        snippet of the document it was found by."""
        key = hit["group_key"]
        if key.startswith("md5:"):
            condition, value = "o.md5_sum = ? AND o.near_group_id IS NULL", key[4:]
        elif key.startswith("id:"):
            condition, value = "o.media_id = ?", hit["media_id"]
        else:
            condition, value = "o.near_group_id = ?", key
        members = self._rows(
            f"""SELECT o.media_id, p.post_id, p.url AS post_url, p.author_username AS author,
                       p.posted_at_timestamp, o.local_file_path
                  FROM post_media o JOIN posts p ON p.post_id = o.post_id
                 WHERE o.duplicate_of IS NULL AND {condition}
                 ORDER BY p.posted_at_timestamp, o.media_id""",
            (value,),
        )
        index = hit["doc"]  # media_search or post_search: a table name of _SEARCH_SOURCES
        snippet = self._rows(
            f"SELECT snippet({index}, -1, '[', ']', ' … ', 16) AS s FROM {index} WHERE {index} MATCH ? AND rowid = ?",
            (match, hit["doc_rowid"]),
        )
        return SearchHit(
            hit["media_id"], hit["media_type"], float(hit["rank"]), snippet[0]["s"] if snippet else "",
            hit["local_file_path"],
            hit["media_url"], [m["media_id"] for m in members], members, False,
        )  # fmt: skip

    # single-row updates -----------------------------------------------------------------

    def append_event(self, media_id: str, event: dict) -> None:
        self.update_media(media_id, {}, event)

    def update_media(self, media_id: str, fields: dict, event: dict | None = None) -> None:
        with self._transaction() as conn:
            assignments = {k: _encode(k, v) for k, v in fields.items()}
            if event is not None:
                row = conn.execute(
                    "SELECT ai_analysis_log FROM post_media WHERE media_id=?", (media_id,)
                ).fetchone()
                if row is None:
                    return
                assignments["ai_analysis_log"] = json.dumps(parse_log(row["ai_analysis_log"]) + [event])
            assignments["updated_at"] = utc_now()
            sets = ", ".join(f"{column}=?" for column in assignments)
            conn.execute(f"UPDATE post_media SET {sets} WHERE media_id=?", [*assignments.values(), media_id])

    def find_archived_copy(self, md5_sum: str) -> str | None:
        rows = self._rows(
            "SELECT archive_url FROM post_media WHERE md5_sum=? AND archive_url IS NOT NULL LIMIT 1",
            (md5_sum,),
        )
        return rows[0]["archive_url"] if rows else None

    def find_cached(self, post_id: str | None = None, slot_key: str | None = None) -> dict | None:
        if post_id is None and slot_key is None:
            return None
        where = ["download_status = 'downloaded'", "evicted_at IS NULL", "local_file_path IS NOT NULL"]
        given = {"post_id": post_id, "slot_key": slot_key}
        where += [
            f"{column} = ?" for column, value in given.items() if value is not None
        ]  # each by its index
        rows = self._rows(
            f"SELECT * FROM post_media WHERE {' AND '.join(where)} ORDER BY position, media_id LIMIT 1",
            [value for value in given.values() if value is not None],
        )
        return rows[0] if rows else None

    # posts for backfill -----------------------------------------------------------------

    def posts_page(self, after_post_id: str | None, limit: int, start_date: str | None = None) -> list[dict]:
        where, params = ["post_id > ?"], [after_post_id or ""]
        if start_date:
            where.append("posted_at_timestamp >= ?")
            params.append(day_start_ms(start_date))
        return self._rows(
            f"SELECT post_id, urn, posted_at_timestamp, raw_json FROM posts WHERE {' AND '.join(where)}"
            " ORDER BY post_id LIMIT ?",
            params + [limit],
        )

    def media_slot_keys(self, post_ids: list[str]) -> set[tuple[str, str]]:
        found: set[tuple[str, str]] = set()
        for chunk in _chunks(post_ids):
            rows = self._rows(
                f"SELECT DISTINCT post_id, slot_key FROM post_media WHERE post_id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            found.update((r["post_id"], r["slot_key"]) for r in rows)
        return found

    def media_counts(self) -> dict:
        with self._lock, _sqlite_errors(self.path):
            return _counts(self._conn)

    # use, audit, metrics, retention -----------------------------------------------------

    def mark_used(self, media_ids: list[str]) -> int:
        now, marked = utc_now(), 0
        with self._transaction() as conn:
            for chunk in _chunks(list(dict.fromkeys(media_ids))):
                marked += conn.execute(
                    f"""UPDATE post_media SET cache_used_at = ?
                         WHERE media_id IN ({",".join("?" * len(chunk))})
                           AND (cache_used_at IS NULL OR cache_used_at < ?)""",
                    [now, *chunk, now],
                ).rowcount
        return marked

    def append_audit(self, entries: list[AuditEntry]) -> int:
        with self._transaction() as conn:
            conn.executemany(
                """INSERT INTO media_audit (actor_user, actor_host, action, media_id, target, reason, details)
                   VALUES (?,?,?,?,?,?,?)""",
                [
                    (e.actor_user, e.actor_host, e.action, e.media_id, e.target, e.reason,
                     None if e.details is None else json.dumps(e.details, separators=(",", ":")))
                    for e in entries
                ],
            )  # fmt: skip
        return len(entries)

    def iter_audit(self, query: AuditQuery) -> Iterator[dict]:
        where, params = ["audit_id > ?"], []
        if query.since is not None:
            where.append("occurred_at >= ?")
            params.append(day_start_iso(query.since))
        if query.media_id is not None:
            where.append("media_id = ?")
            params.append(query.media_id)
        after = 0
        while True:
            page = self._rows(
                f"SELECT * FROM media_audit WHERE {' AND '.join(where)} ORDER BY audit_id LIMIT ?",
                [after, *params, PAGE_ROWS],
            )
            for row in page:
                row["details"] = json.loads(row["details"]) if row["details"] is not None else None
            yield from page
            if len(page) < PAGE_ROWS:
                return
            after = page[-1]["audit_id"]

    def _events(self, names: tuple[str, ...], since: str | None, columns: str) -> list[tuple]:
        """`columns` of the logged events named `names` at or after `since` (the twin of
        media_events): e is the event, m its row, p its post."""
        with self._lock, _sqlite_errors(self.path):
            return self._conn.execute(
                f"""SELECT {columns}
                      FROM post_media m
                      LEFT JOIN posts p ON p.post_id = m.post_id,
                           json_each(CASE WHEN json_valid(m.ai_analysis_log)
                                           AND json_type(m.ai_analysis_log) = 'array'
                                          THEN m.ai_analysis_log ELSE '[]' END) e
                     WHERE json_type(e.value) = 'object'
                       AND json_extract(e.value, '$.event') IN ({",".join("?" * len(names))})
                       AND (? IS NULL OR json_extract(e.value, '$.timestamp') >= ?)""",
                [*names, since, since],
            ).fetchall()

    def download_metrics(self, since: str | None = None) -> dict:
        events = self._events(
            ("media_downloaded", "media_download_failed"),
            since,
            """json_extract(e.value, '$.event'), coalesce(json_extract(e.value, '$.details.source'), 'http'),
               CASE WHEN json_type(e.value, '$.details.duration_ms') IN ('integer', 'real')
                    THEN json_extract(e.value, '$.details.duration_ms') END,
               CASE WHEN json_type(e.value, '$.details.file_size') IN ('integer', 'real')
                    THEN json_extract(e.value, '$.details.file_size') ELSE 0 END,
               coalesce(json_extract(e.value, '$.details.error_kind'), 'error')""",
        )
        ok = [e for e in events if e[0] == "media_downloaded"]
        timed = sorted((e[2], e[3]) for e in ok if e[1] == "http" and e[2] is not None)
        kinds: dict[str, int] = {}
        for e in events:
            if e[0] == "media_download_failed":
                kinds[e[4]] = kinds.get(e[4], 0) + 1
        return {
            "succeeded": len(ok),
            "failed": len(events) - len(ok),
            "served_without_http": sum(1 for e in ok if e[1] != "http"),
            "http_timed": len(timed),
            "http_ms": sum(ms for ms, _ in timed),
            "http_bytes": sum(n for _, n in timed),
            "p95_ms": timed[math.ceil(0.95 * len(timed)) - 1][0] if timed else None,  # nearest rank
            "failures_by_kind": dict(sorted(kinds.items())),
        }

    def stage_counts(self) -> dict:
        with self._lock, _sqlite_errors(self.path):
            row = self._conn.execute(
                f"""SELECT
                      sum(CASE WHEN download_status = 'pending'
                                 OR (download_status = 'failed' AND NOT download_permanent)
                               THEN 1 ELSE 0 END) AS download,
                      sum(CASE WHEN download_status = 'downloaded' AND evicted_at IS NULL
                                AND local_file_path IS NOT NULL
                                AND {_COLUMN_READ["ai_analysis_status"]} = 'not_started'
                               THEN 1 ELSE 0 END) AS analysis,
                      sum(CASE WHEN download_status = 'downloaded' AND archive_url IS NULL
                                AND md5_sum IS NOT NULL THEN 1 ELSE 0 END) AS archive,
                      (SELECT count(DISTINCT archive_url) FROM post_media WHERE archive_url IS NOT NULL)
                          AS s3_objects,
                      (SELECT coalesce(sum(b), 0) FROM (SELECT max(file_size) AS b FROM post_media
                                                         WHERE archive_url IS NOT NULL GROUP BY archive_url))
                          AS s3_bytes
                    FROM post_media"""
            ).fetchone()
        return {key: row[key] or 0 for key in row.keys()}

    def analysis_costs(self, by: str, since: str | None = None) -> list[dict]:
        key = {"month": "substr(json_extract(e.value, '$.timestamp'), 1, 7)", "post": "m.post_id"}.get(
            by, "coalesce(p.author_username, '')"
        )
        groups: dict[str, dict] = {}
        for group_key, prompt, completion, cost in self._events(
            ("ai_analysis_completed",),
            since,
            f"""{key},
                CASE WHEN json_type(e.value, '$.details.tokens_used.prompt') IN ('integer', 'real')
                     THEN json_extract(e.value, '$.details.tokens_used.prompt') ELSE 0 END,
                CASE WHEN json_type(e.value, '$.details.tokens_used.completion') IN ('integer', 'real')
                     THEN json_extract(e.value, '$.details.tokens_used.completion') ELSE 0 END,
                CASE WHEN json_type(e.value, '$.details.estimated_cost_usd') IN ('integer', 'real')
                     THEN json_extract(e.value, '$.details.estimated_cost_usd') ELSE 0 END""",
        ):
            g = groups.setdefault(
                group_key,
                {
                    "group_key": group_key,
                    "analyses": 0,
                    "prompt_tokens": 0,
                    "completion_tokens": 0,
                    "cost_usd": 0.0,
                },
            )
            g["analyses"] += 1
            g["prompt_tokens"] += int(prompt)
            g["completion_tokens"] += int(completion)
            g["cost_usd"] += float(cost)
        return [groups[k] for k in sorted(groups)]

    def retention_candidates(self, cutoff_at: str) -> Iterator[dict]:
        cutoff_ms = int(datetime.fromisoformat(cutoff_at).timestamp() * 1000)
        old = """(CASE WHEN coalesce({p}.posted_at_timestamp, 0) > 0 THEN {p}.posted_at_timestamp < :ms
                      ELSE coalesce({p}.first_seen_at, {p}.created_at) < :at END)"""
        after: tuple[str, str] = ("", "")
        while True:
            page = self._rows(
                f"""SELECT m.* FROM post_media m JOIN posts p ON p.post_id = m.post_id
                     WHERE m.download_status = 'downloaded' AND m.evicted_at IS NULL
                       AND m.local_file_path IS NOT NULL AND m.md5_sum IS NOT NULL
                       AND {old.format(p="p")}
                       AND NOT EXISTS (
                           SELECT 1 FROM post_media o JOIN posts q ON q.post_id = o.post_id
                            WHERE o.md5_sum = m.md5_sum AND o.download_status = 'downloaded'
                              AND o.evicted_at IS NULL AND NOT {old.format(p="q")})
                       AND (m.md5_sum, m.media_id) > (:after_md5, :after_id)
                     ORDER BY m.md5_sum, m.media_id LIMIT :limit""",
                {
                    "ms": cutoff_ms,
                    "at": cutoff_at,
                    "after_md5": after[0],
                    "after_id": after[1],
                    "limit": PAGE_ROWS,
                },
            )
            yield from page
            if len(page) < PAGE_ROWS:
                return
            after = (page[-1]["md5_sum"], page[-1]["media_id"])

    def close(self) -> None:
        self._checkpointer.close()
        with self._lock:
            self._conn.close()  # the last connection: it checkpoints what is left


def _counts(conn: sqlite3.Connection) -> dict:
    one = conn.execute(
        """SELECT count(*) AS media_total, count(archive_url) AS archived,
                  coalesce(sum(ai_cost_usd), 0) AS ai_cost_usd,
                  coalesce(sum(ai_prompt_tokens), 0) AS ai_prompt_tokens,
                  coalesce(sum(ai_completion_tokens), 0) AS ai_completion_tokens,
                  count(evicted_at) AS evicted,
                  sum(CASE WHEN download_status <> 'downloaded' AND url_expires_at >= ?
                            AND url_expires_at < ? THEN 1 ELSE 0 END) AS expiring_48h
             FROM post_media""",
        (utc_now(), to_iso(datetime.now(UTC) + timedelta(hours=48))),
    ).fetchone()
    counts = dict(one)
    counts["expiring_48h"] = counts["expiring_48h"] or 0
    counts["posts_total"] = conn.execute("SELECT count(*) FROM posts").fetchone()[0]
    for column, key in (("download_status", "by_download_status"), ("ai_analysis_status", "by_ai_status")):
        counts[key] = dict(
            conn.execute(
                f"SELECT {_COLUMN_READ.get(column, column)}, count(*) FROM post_media GROUP BY 1"
            ).fetchall()
        )
    return counts
