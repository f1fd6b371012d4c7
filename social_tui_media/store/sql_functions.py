"""The store rules written once, as calls to the SQL functions in `supabase/migrations/`.

PostgreSQL (psycopg) and Supabase REST (PostgREST `/rpc/`) differ only in how a function is
called: a subclass supplies `_call(function, params)`, with params as named JSON values, and
gets rows back as dicts (or the scalar a function returns). Everything else is here: payloads,
result mapping, paging (no call returns more than PAGE_ROWS rows, PostgREST's db-max-rows) and
write batches (WRITE_ROWS rows per call).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime
from typing import Any

from social_tui_media.ids import PREFIX_POST, PREFIX_RUN, generate_aws_id
from social_tui_media.store.interface import (
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
    TextClaim,
    TextOutcome,
    UpsertedMedia,
    analysis_claim_order,
    batch_counts_row,
    day_start_iso,
    day_start_ms,
    download_claim_order,
    media_pages,
    post_payloads,
    system_info,
    upserted_in_input_order,
)
from social_tui_media.store.search import SearchHit, SearchQuery

WRITE_ROWS = 1000  # rows per bulk write, so each call's result also fits one response
BROWSE_AFTER_PARAMS = ("p_after_posted_at", "p_after_post_id", "p_after_position", "p_after_media_id")
AFTER_KEY_PARAMS = ("p_after_post_id", "p_after_position", "p_after_media_id")  # media_list's page key


def chunks(items: list, size: int = WRITE_ROWS) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SqlFunctionStore(MediaStore, ABC):
    """MediaStore over the SQL functions; subclasses are transports."""

    @abstractmethod
    def _call(self, function: str, params: dict[str, Any]) -> Any:
        """Call one SQL function by named parameters; rows as normalised dicts, or its scalar."""

    # posts and runs ---------------------------------------------------------------------

    def upsert_posts(self, records: list[PostRecord]) -> list[tuple[str, bool]]:
        by_urn: dict[str, tuple[str, bool]] = {}
        for chunk in chunks(post_payloads(records, lambda: generate_aws_id(PREFIX_POST))):
            for row in self._call("social_tui_upsert_posts", {"p_rows": chunk}):
                by_urn[row["urn"]] = (row["post_id"], row["inserted"])
        return [by_urn[r.urn] for r in records]

    def start_run(self, source_path: str, script_name: str, run_id: str | None = None) -> str:
        run_id = run_id or generate_aws_id(PREFIX_RUN)
        self._call(
            "media_start_run",
            {
                "p_run_id": run_id, "p_source_path": source_path, "p_script_name": script_name,
                "p_system_info": system_info(script_name),
            },
        )  # fmt: skip
        return run_id

    def finish_run(self, run_id: str, counts: RunCounts, status: str) -> None:
        self._call(
            "media_finish_run",
            {
                "p_run_id": run_id, "p_status": status, "p_posts_processed": counts.posts_processed,
                "p_posts_new": counts.posts_new, "p_posts_updated": counts.posts_updated,
                "p_error_count": counts.error_count,
                "p_error_message": "\n".join(counts.errors[:50]) or None,
            },
        )  # fmt: skip

    def insert_data_downloads(self, rows: list[dict]) -> set[str]:
        replaced: set[str] = set()
        for chunk in chunks(rows):
            replaced.update(
                r["download_id"] for r in self._call("media_insert_data_downloads", {"p_rows": chunk})
            )
        return replaced

    # media slots ------------------------------------------------------------------------

    def upsert_media(self, rows: list[MediaSlotRow]) -> list[UpsertedMedia]:
        result: list[dict] = []
        for chunk in chunks(rows):
            result += self._call("media_upsert_slots", {"p_rows": [vars(r) for r in chunk]})
        return upserted_in_input_order(rows, result)

    def iter_media(self, query: MediaQuery) -> Iterator[dict]:
        params = {
            "p_post_id": query.post_id, "p_download_status": query.download_status,
            "p_ai_status": query.ai_status, "p_media_type": query.media_type, "p_since": query.since,
            "p_media_ids": None if query.media_ids is None else list(dict.fromkeys(query.media_ids)),
            "p_limit": PAGE_ROWS,
        }  # fmt: skip

        def read_page(after: tuple | None) -> list[dict]:
            after_key = {} if after is None else dict(zip(AFTER_KEY_PARAMS, after, strict=True))
            return self._call("media_list", {**params, **after_key})

        return media_pages(read_page)

    def get_media(self, media_id: str) -> dict | None:
        rows = self._call("media_list", {"p_media_ids": [media_id], "p_limit": 1})
        return rows[0] if rows else None

    def browse_media(
        self, query: BrowseQuery, after: tuple | None = None, limit: int = PAGE_ROWS
    ) -> list[dict]:
        params = {
            "p_text": query.text, "p_post_id": query.post_id, "p_author": query.author,
            "p_media_type": query.media_type, "p_limit": min(limit, PAGE_ROWS),
            "p_media_ids": None if query.media_ids is None else list(query.media_ids),
        }  # fmt: skip
        if after is not None:
            params.update(zip(BROWSE_AFTER_PARAMS, after, strict=True))
        return self._call("media_browse", params)

    # downloads --------------------------------------------------------------------------

    def download_claimants(self) -> list[str]:
        return [r["claimant"] for r in self._call("media_download_claimants", {})]

    def analysis_claimants(self) -> list[str]:
        return [r["claimant"] for r in self._call("media_analysis_claimants", {})]

    def claim_downloads(self, claim: DownloadClaim) -> list[dict]:
        params = {
            "p_worker": claim.worker, "p_lease_seconds": claim.lease_seconds,
            "p_retry_failed": claim.retry_failed, "p_dead_workers": list(claim.dead_workers),
            "p_media_ids": claim.media_ids,
        }  # fmt: skip
        return sorted(self._claim("media_claim_downloads", params, claim.limit), key=download_claim_order)

    def download_backlog(self, retry_failed: bool = False) -> int:
        return int(self._call("media_download_backlog", {"p_retry_failed": retry_failed}))

    def finish_downloads(self, worker: str, outcomes: list[DownloadOutcome]) -> int:
        payload = [asdict(o) for o in outcomes]
        return sum(
            self._call("media_finish_downloads", {"p_worker": worker, "p_results": chunk})
            for chunk in chunks(payload)
        )

    def release_downloads(self, worker: str) -> int:
        return self._call("media_release_downloads", {"p_worker": worker})

    # analysis ---------------------------------------------------------------------------

    def claim_analysis(self, claim: AnalysisClaim) -> list[dict]:
        params = {
            "p_worker": claim.worker, "p_lease_seconds": claim.lease_seconds, "p_statuses": claim.statuses,
            "p_event": claim.event, "p_media_ids": claim.media_ids, "p_dead_workers": list(claim.dead_workers),
        }  # fmt: skip
        return sorted(self._claim("media_claim_analysis", params, claim.limit), key=analysis_claim_order)

    def analysis_candidates(self, query: AnalysisQuery) -> list[dict]:
        params = {
            "p_statuses": list(query.statuses), "p_lease_seconds": query.lease_seconds,
            "p_media_ids": None if query.media_ids is None else list(query.media_ids), "p_limit": PAGE_ROWS,
        }  # fmt: skip
        rows: list[dict] = []
        while True:
            page = self._call(
                "media_analysis_candidates", {**params, "p_after": rows[-1]["media_id"] if rows else None}
            )
            rows += page
            if len(page) < PAGE_ROWS:
                return sorted(rows, key=analysis_claim_order)

    def finish_analysis(self, worker: str, outcome: AnalysisOutcome) -> bool:
        params = {
            "p_media_id": outcome.media_id, "p_worker": worker, "p_status": outcome.status,
            "p_analysis": outcome.analysis, "p_model": outcome.model,
            "p_prompt_tokens": outcome.prompt_tokens, "p_completion_tokens": outcome.completion_tokens,
            "p_cost": outcome.cost_usd, "p_event": outcome.event,
        }  # fmt: skip
        return bool(self._call("media_finish_analysis", params))

    # analysis batches -------------------------------------------------------------------

    def claim_analysis_batch(self, batch: AnalysisBatch, claim: AnalysisClaim) -> list[dict]:
        params = {
            "p_batch_id": batch.batch_id, "p_model": batch.model, "p_api_base": batch.api_base,
            "p_owner": batch.owner, "p_worker": claim.worker, "p_lease_seconds": claim.lease_seconds,
            "p_statuses": claim.statuses, "p_event": claim.event, "p_media_ids": claim.media_ids,
            "p_dead_workers": list(claim.dead_workers),
        }  # fmt: skip
        return sorted(
            self._claim("media_claim_analysis_batch", params, claim.limit), key=analysis_claim_order
        )

    def analysis_batches(self, open_only: bool = True) -> list[dict]:
        return self._call("media_analysis_batches", {"p_open_only": open_only})

    def batch_members(self, batch_id: str) -> list[dict]:
        rows: list[dict] = []
        while True:
            params = {"p_batch_id": batch_id, "p_after": rows[-1]["media_id"] if rows else None}
            page = self._call("media_batch_members", {**params, "p_limit": PAGE_ROWS})
            rows += page
            if len(page) < PAGE_ROWS:
                return rows

    def update_analysis_batch(
        self, batch_id: str, fields: dict, from_statuses: tuple[str, ...] | list[str] | None = None
    ) -> bool:
        params = {
            "p_batch_id": batch_id, "p_fields": fields,
            "p_from_statuses": None if from_statuses is None else list(from_statuses),
        }  # fmt: skip
        return bool(self._call("media_update_analysis_batch", params))

    def finish_batch_item(self, batch_id: str, outcome: AnalysisOutcome) -> bool:
        params = {
            "p_batch_id": batch_id, "p_media_id": outcome.media_id, "p_status": outcome.status,
            "p_analysis": outcome.analysis, "p_model": outcome.model,
            "p_prompt_tokens": outcome.prompt_tokens, "p_completion_tokens": outcome.completion_tokens,
            "p_cost": outcome.cost_usd, "p_events": [*outcome.before_events, outcome.event],
        }  # fmt: skip
        return bool(self._call("media_finish_batch_item", params))

    def release_analysis_batch(self, batch_id: str, event: dict) -> int:
        return int(self._call("media_release_analysis_batch", {"p_batch_id": batch_id, "p_event": event}))

    def shareable_analysis(self, media_id: str, model: str) -> dict | None:
        found = self._call("media_shareable_analysis", {"p_media_id": media_id, "p_model": model})
        return found[0] if found else None

    def batch_counts(self) -> dict:
        return batch_counts_row(self._call("media_batch_counts", {}))

    # local text extraction, duplicates, search ------------------------------------------

    def claim_text(self, claim: TextClaim) -> list[dict]:
        params = {
            "p_worker": claim.worker, "p_lease_seconds": claim.lease_seconds, "p_statuses": claim.statuses,
            "p_event": claim.event, "p_media_ids": claim.media_ids, "p_dead_workers": list(claim.dead_workers),
        }  # fmt: skip
        return sorted(self._claim("media_claim_text", params, claim.limit), key=analysis_claim_order)

    def text_claimants(self) -> list[str]:
        return [r["claimant"] for r in self._call("media_text_claimants", {})]

    def text_backlog(self, statuses: list[str], media_ids: list[str] | None = None) -> int:
        params = {
            "p_statuses": list(statuses),
            "p_lease_seconds": TEXT_LEASE_SECONDS,
            "p_media_ids": media_ids,
        }
        return int(self._call("media_text_backlog", params))

    def finish_text(self, worker: str, outcome: TextOutcome, lease_seconds: int = TEXT_LEASE_SECONDS) -> int:
        params = {
            "p_media_id": outcome.media_id, "p_worker": worker, "p_status": outcome.status,
            "p_text": outcome.text, "p_segments": outcome.segments, "p_engine": outcome.engine,
            "p_phash": outcome.phash, "p_event": outcome.event, "p_lease_seconds": lease_seconds,
        }  # fmt: skip
        return int(self._call("media_finish_text", params) or 0)

    def extracted_text_of(self, md5_sum: str) -> dict | None:
        rows = self._call("media_extracted_text_of", {"p_md5_sum": md5_sum})
        return rows[0] if rows else None

    def near_candidates(self, media_id: str, phash: str, max_distance: int) -> list[dict]:
        params = {"p_media_id": media_id, "p_phash": phash, "p_max_distance": max_distance}
        return self._call("media_near_candidates", params)

    def set_near_group(self, group_id: str, media_ids: list[str]) -> int:
        return int(self._call("media_set_near_group", {"p_group_id": group_id, "p_media_ids": media_ids}))

    def iter_duplicate_groups(self) -> Iterator[dict]:
        after: dict = {}
        while True:
            page = self._call("media_duplicate_groups", {**after, "p_limit": PAGE_ROWS})
            yield from page
            if len(page) < PAGE_ROWS:
                return
            after = {"p_after_group": page[-1]["group_key"], "p_after_rank": page[-1]["member_rank"]}

    def search_media(self, query: SearchQuery) -> list[SearchHit]:
        params = {
            "p_terms": query.terms_json(), "p_media_type": query.media_type, "p_author": query.author,
            "p_since_ms": day_start_ms(query.since), "p_field": query.field, "p_limit": query.limit,
        }  # fmt: skip
        return [
            SearchHit(
                r["media_id"],
                r["media_type"],
                float(r["rank"]),
                r["snippet"] or "",
                r["local_file_path"],
                r["media_url"],
                list(r["media_ids"] or []),
                list(r["posts"] or []),
                bool(r["fuzzy"]),
            )  # fmt: skip
            for r in self._call("media_search", params)
        ]

    # single-row updates -----------------------------------------------------------------

    def append_event(self, media_id: str, event: dict) -> None:
        self._call("media_append_event", {"p_media_id": media_id, "p_event": event})

    def update_media(self, media_id: str, fields: dict, event: dict | None = None) -> None:
        if fields or event is not None:
            self._call("media_update", {"p_media_id": media_id, "p_fields": fields, "p_event": event})

    def find_archived_copy(self, md5_sum: str) -> str | None:
        return self._call("media_archived_copy", {"p_md5_sum": md5_sum})

    def find_cached(self, post_id: str | None = None, slot_key: str | None = None) -> dict | None:
        found = self._call("media_cached_file", {"p_post_id": post_id, "p_slot_key": slot_key})
        return found[0] if found else None

    # posts for backfill -----------------------------------------------------------------

    def posts_page(self, after_post_id: str | None, limit: int, start_date: str | None = None) -> list[dict]:
        rows: list[dict] = []
        while len(rows) < limit:
            want = min(limit - len(rows), PAGE_ROWS)
            after = rows[-1]["post_id"] if rows else after_post_id
            params = {"p_after": after, "p_limit": want, "p_since_ms": day_start_ms(start_date)}
            page = self._call("media_posts_page", params)
            rows += page
            if len(page) < want:
                break
        return rows

    def media_slot_keys(self, post_ids: list[str]) -> set[tuple[str, str]]:
        keys: list[tuple[str, str]] = []
        for chunk in chunks(list(dict.fromkeys(post_ids)), PAGE_ROWS):
            after: tuple[str | None, str | None] = (None, None)
            while True:
                params = {"p_post_ids": chunk, "p_after_post_id": after[0], "p_after_slot_key": after[1]}
                page = [
                    (r["post_id"], r["slot_key"])
                    for r in self._call("media_slot_keys", {**params, "p_limit": PAGE_ROWS})
                ]
                keys += page
                if len(page) < PAGE_ROWS:
                    break
                after = page[-1]
        return set(keys)

    def media_counts(self) -> dict:
        counts = dict(self._call("media_counts", {}))
        counts["ai_cost_usd"] = float(counts["ai_cost_usd"])
        return counts

    # use, audit, metrics, retention -----------------------------------------------------

    def mark_used(self, media_ids: list[str]) -> int:
        ids = list(dict.fromkeys(media_ids))
        return sum(self._call("media_mark_used", {"p_media_ids": chunk}) for chunk in chunks(ids))

    def append_audit(self, entries: list[AuditEntry]) -> int:
        rows = [vars(e) for e in entries]
        return sum(self._call("media_append_audit", {"p_rows": chunk}) for chunk in chunks(rows))

    def iter_audit(self, query: AuditQuery) -> Iterator[dict]:
        params = {"p_since": day_start_iso(query.since), "p_media_id": query.media_id, "p_limit": PAGE_ROWS}
        after = None
        while True:
            page = self._call("media_audit_list", {**params, "p_after": after})
            yield from page
            if len(page) < PAGE_ROWS:
                return
            after = page[-1]["audit_id"]

    def download_metrics(self, since: str | None = None) -> dict:
        return dict(self._call("media_download_metrics", {"p_since": since}))

    def stage_counts(self) -> dict:
        return dict(self._call("media_stage_counts", {}))

    def analysis_costs(self, by: str, since: str | None = None) -> list[dict]:
        rows: list[dict] = []
        while True:
            params = {"p_by": by, "p_since": since, "p_limit": PAGE_ROWS}
            page = self._call(
                "media_analysis_costs", {**params, "p_after": rows[-1]["group_key"] if rows else None}
            )
            rows += page
            if len(page) < PAGE_ROWS:
                return [{**r, "cost_usd": float(r["cost_usd"])} for r in rows]

    def retention_candidates(self, cutoff_at: str) -> Iterator[dict]:
        cutoff_ms = int(datetime.fromisoformat(cutoff_at).timestamp() * 1000)
        params = {"p_cutoff_ms": cutoff_ms, "p_cutoff_at": cutoff_at, "p_limit": PAGE_ROWS}
        after: tuple[str | None, str | None] = (None, None)
        while True:
            page = self._call(
                "media_retention_candidates",
                {**params, "p_after_md5": after[0], "p_after_media_id": after[1]},
            )
            yield from page
            if len(page) < PAGE_ROWS:
                return
            after = (page[-1]["md5_sum"], page[-1]["media_id"])

    # helpers ----------------------------------------------------------------------------

    def _claim(self, function: str, params: dict, limit: int) -> list[dict]:
        """Claim up to `limit` rows, at most PAGE_ROWS per call: a larger claim's rows past
        the cap would be claimed in the database but never returned."""
        rows: list[dict] = []
        while len(rows) < limit:
            want = min(limit - len(rows), PAGE_ROWS)
            batch = self._call(function, {**params, "p_limit": want})
            rows += batch
            if len(batch) < want:
                break
        return rows
