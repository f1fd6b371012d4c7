"""The PostgreSQL back end (psycopg 3): atomic steps are the SQL functions in the migrations."""

from __future__ import annotations

import threading
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from social_tui_media.ids import PREFIX_POST, PREFIX_RUN, generate_aws_id
from social_tui_media.store.interface import (
    ANALYSIS_LEASE_SECONDS,
    DOWNLOAD_LEASE_SECONDS,
    AnalysisOutcome,
    DownloadOutcome,
    MediaSlotRow,
    PostRecord,
    RunCounts,
    SchemaMissing,
    StoreError,
    UpsertedMedia,
    media_filters,
)
from social_tui_media.store.migrations import pending_migrations
from social_tui_media.store.rows import normalize_row, to_iso

JSON_COLUMNS = ("raw_json", "stats_json", "payload", "ai_analysis", "ai_analysis_log")


def _json(value):
    return None if value is None else Jsonb(value)


def _redacted(conninfo: str) -> str:
    try:
        params = psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "the configured database"
    return f"{params.get('host', 'localhost')}:{params.get('port', 5432)}/{params.get('dbname', '')}"


class PostgresStore:
    """MediaStore on PostgreSQL. One connection shared under a lock; every call its own transaction."""

    def __init__(self, conninfo: str, check_schema: bool = True):
        try:
            self._conn = psycopg.connect(conninfo, autocommit=True, row_factory=dict_row)
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "connection failed"
            raise StoreError(f"cannot connect to PostgreSQL at {_redacted(conninfo)}: {reason}") from None
        self._lock = threading.RLock()
        if check_schema:
            pending = pending_migrations(self._conn)
            if pending:
                names = ", ".join(f"{m.version}_{m.name}" for m in pending)
                raise SchemaMissing(
                    f"database is not migrated ({len(pending)} pending: {names}): "
                    "run `python manage_media.py migrate`"
                )

    def _rows(self, sql: str, params: dict | tuple | list = ()) -> list[dict]:
        with self._lock:
            return [normalize_row(r) for r in self._conn.execute(sql, params).fetchall()]

    def _call(self, sql: str, params: dict | tuple | list = ()) -> list[dict]:
        with self._lock, self._conn.transaction():
            return [normalize_row(r) for r in self._conn.execute(sql, params).fetchall()]

    # posts and runs ---------------------------------------------------------------------

    def upsert_posts(self, records: list[PostRecord]) -> list[tuple[str, bool]]:
        if not records:
            return []
        unique: dict[str, dict] = {}
        for r in records:  # one row per URN per statement: ON CONFLICT may touch a row once
            unique[r.urn] = {
                "post_id": generate_aws_id(PREFIX_POST), "urn": r.urn, "full_urn": r.full_urn,
                "posted_at_timestamp": r.posted_at_timestamp, "posted_at": r.posted_at,
                "author_username": r.author_username, "author_name": r.author_name,
                "text_content": r.text_content, "post_url": r.post_url, "post_type": r.post_type,
                "raw_json": r.raw_json,
            }  # fmt: skip
        rows = self._call(
            "SELECT * FROM social_tui_upsert_posts(%s)",
            (Jsonb(list(unique.values())),),
        )
        by_urn = {r["urn"]: (r["post_id"], r["inserted"]) for r in rows}
        return [by_urn[r.urn] for r in records]

    def start_run(self, source_path: str, script_name: str) -> str:
        run_id = generate_aws_id(PREFIX_RUN)
        self._call(
            "INSERT INTO download_runs (run_id, source_path, script_name) VALUES (%s,%s,%s) RETURNING run_id",
            (run_id, source_path, script_name),
        )
        return run_id

    def finish_run(self, run_id: str, counts: RunCounts, status: str) -> None:
        self._call(
            """UPDATE download_runs SET completed_at=NOW(), status=%s, posts_processed=%s,
                   posts_new=%s, posts_updated=%s, error_count=%s, error_message=%s
               WHERE run_id=%s RETURNING run_id""",
            (
                status, counts.posts_processed, counts.posts_new, counts.posts_updated,
                counts.error_count, "\n".join(counts.errors[:50]) or None, run_id,
            ),
        )  # fmt: skip

    def insert_data_downloads(self, rows: list[dict]) -> None:
        if not rows:
            return
        columns = list(rows[0])
        sql = f"INSERT INTO data_downloads ({','.join(columns)}) VALUES ({','.join(['%s'] * len(columns))})"
        values = [[_json(row[c]) if c in JSON_COLUMNS else row[c] for c in columns] for row in rows]
        with self._lock, self._conn.transaction(), self._conn.cursor() as cur:
            cur.executemany(sql, values)

    # media slots ------------------------------------------------------------------------

    def upsert_media(self, rows: list[MediaSlotRow]) -> list[UpsertedMedia]:
        if not rows:
            return []
        payload = [
            {
                "media_id": r.media_id, "post_id": r.post_id, "media_type": r.media_type,
                "media_url": r.media_url, "slot_key": r.slot_key, "slot_role": r.slot_role,
                "position": r.position, "url_expires_at": r.url_expires_at,
            }
            for r in rows
        ]  # fmt: skip
        result = self._call("SELECT * FROM media_upsert_slots(%s)", (Jsonb(payload),))
        by_slot = {(r["post_id"], r["slot_key"]): r for r in result}
        return [
            UpsertedMedia(
                by_slot[(r.post_id, r.slot_key)]["media_id"],
                r.post_id,
                r.slot_key,
                by_slot[(r.post_id, r.slot_key)]["inserted"],
            )
            for r in rows
        ]

    def list_media(
        self,
        post_id: str | None = None,
        download_status: str | None = None,
        ai_status: str | None = None,
        media_ids: list[str] | None = None,
    ) -> list[dict]:
        conditions = media_filters(post_id, download_status, ai_status)
        where = [f"{column} = %s" for column, _ in conditions]
        params: list = [value for _, value in conditions]
        if media_ids is not None:
            where.append("media_id = ANY(%s)")
            params.append(list(media_ids))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        return self._rows(f"SELECT * FROM post_media {clause} ORDER BY post_id, position, media_id", params)

    def get_media(self, media_id: str) -> dict | None:
        rows = self._rows("SELECT * FROM post_media WHERE media_id = %s", (media_id,))
        return rows[0] if rows else None

    # downloads --------------------------------------------------------------------------

    def download_claimants(self) -> list[str]:
        rows = self._rows(
            "SELECT DISTINCT download_claimed_by FROM post_media"
            " WHERE download_claimed_by IS NOT NULL AND download_status <> 'downloaded'"
        )
        return [r["download_claimed_by"] for r in rows]

    def claim_downloads(
        self,
        worker: str,
        limit: int,
        retry_failed: bool = False,
        dead_workers: list[str] | None = None,
        media_ids: list[str] | None = None,
        lease_seconds: int = DOWNLOAD_LEASE_SECONDS,
    ) -> list[dict]:
        rows = self._call(
            "SELECT * FROM media_claim_downloads(%s, %s::int, %s::int, %s, %s::text[], %s::text[])",
            (worker, limit, lease_seconds, retry_failed, list(dead_workers or []), media_ids),
        )
        return sorted(
            rows,
            key=lambda r: (
                r["url_expires_at"] is None,
                r["url_expires_at"] or "",
                r["created_at"],
                r["position"],
            ),
        )

    def finish_downloads(self, worker: str, outcomes: list[DownloadOutcome]) -> int:
        if not outcomes:
            return 0
        payload = [asdict(o) for o in outcomes]
        rows = self._call("SELECT media_finish_downloads(%s, %s) AS n", (worker, Jsonb(payload)))
        return rows[0]["n"]

    # analysis ---------------------------------------------------------------------------

    def claim_analysis(
        self,
        worker: str,
        limit: int,
        statuses: list[str],
        event: dict,
        media_ids: list[str] | None = None,
        lease_seconds: int = ANALYSIS_LEASE_SECONDS,
    ) -> list[dict]:
        rows = self._call(
            "SELECT * FROM media_claim_analysis(%s, %s::int, %s::int, %s::text[], %s::jsonb, %s::text[])",
            (worker, limit, lease_seconds, list(statuses), Jsonb(event), media_ids),
        )
        return sorted(rows, key=lambda r: (r["created_at"], r["media_id"]))

    def finish_analysis(self, worker: str, outcome: AnalysisOutcome) -> bool:
        rows = self._call(
            "SELECT media_finish_analysis(%s, %s, %s, %s::jsonb, %s, %s::int, %s::int, %s::numeric, %s::jsonb) AS ok",
            (
                outcome.media_id, worker, outcome.status, _json(outcome.analysis), outcome.model,
                outcome.prompt_tokens, outcome.completion_tokens, outcome.cost_usd,
                Jsonb(outcome.event),
            ),
        )  # fmt: skip
        return bool(rows[0]["ok"])

    # single-row updates -----------------------------------------------------------------

    def append_event(self, media_id: str, event: dict) -> None:
        self._call("SELECT media_append_event(%s, %s)", (media_id, Jsonb(event)))

    def update_media(self, media_id: str, fields: dict, event: dict | None = None) -> None:
        with self._lock, self._conn.transaction():
            if fields:
                sets = ", ".join(f"{column} = %s" for column in fields)
                values = [_json(v) if k in JSON_COLUMNS else v for k, v in fields.items()]
                self._conn.execute(
                    f"UPDATE post_media SET {sets}, updated_at = NOW() WHERE media_id = %s",
                    [*values, media_id],
                )
            if event is not None:
                self._conn.execute("SELECT media_append_event(%s, %s)", (media_id, Jsonb(event)))

    def find_archived_copy(self, md5_sum: str) -> str | None:
        rows = self._rows(
            "SELECT archive_url FROM post_media WHERE md5_sum=%s AND archive_url IS NOT NULL LIMIT 1",
            (md5_sum,),
        )
        return rows[0]["archive_url"] if rows else None

    # posts for backfill -----------------------------------------------------------------

    def posts_page(self, after_post_id: str | None, limit: int, start_date: str | None = None) -> list[dict]:
        where, params = ["post_id > %s"], [after_post_id or ""]
        if start_date:
            where.append("posted_at >= (%s::date::timestamp AT TIME ZONE 'UTC')")  # a UTC day, as SQLite
            params.append(start_date)
        return self._rows(
            f"SELECT post_id, urn, posted_at, raw_json FROM posts WHERE {' AND '.join(where)}"
            " ORDER BY post_id LIMIT %s",
            params + [limit],
        )

    def post_ids_with_media(self, post_ids: list[str]) -> set[str]:
        rows = self._rows(
            "SELECT DISTINCT post_id FROM post_media WHERE post_id = ANY(%s)", (list(post_ids),)
        )
        return {r["post_id"] for r in rows}

    def media_counts(self) -> dict:
        now = datetime.now(UTC)
        counts = self._rows(
            """SELECT count(*) AS media_total, count(archive_url) AS archived,
                      coalesce(sum(ai_cost_usd), 0) AS ai_cost_usd,
                      coalesce(sum(ai_prompt_tokens), 0) AS ai_prompt_tokens,
                      coalesce(sum(ai_completion_tokens), 0) AS ai_completion_tokens,
                      count(evicted_at) AS evicted,
                      count(*) FILTER (WHERE download_status <> 'downloaded'
                                         AND url_expires_at >= %s AND url_expires_at < %s) AS expiring_48h
                 FROM post_media""",
            (to_iso(now), to_iso(now + timedelta(hours=48))),
        )[0]
        counts["posts_total"] = self._rows("SELECT count(*) AS n FROM posts")[0]["n"]
        for column, key in (
            ("download_status", "by_download_status"),
            ("ai_analysis_status", "by_ai_status"),
        ):
            rows = self._rows(f"SELECT {column} AS k, count(*) AS n FROM post_media GROUP BY {column}")
            counts[key] = {r["k"]: r["n"] for r in rows}
        return counts

    def close(self) -> None:
        with self._lock:
            self._conn.close()
