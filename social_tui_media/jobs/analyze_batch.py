"""Analysis at half price through the OpenAI Batch API: `submit_batches` claims rows into a
batch and sends their requests as one file; `collect_batches` applies what came back.

Exactly once, whatever stops a run:
  * record first, then submit: the batch and its rows are written (`preparing`) before the
    file is uploaded, and the provider's batch id is recorded after it is created. A run that
    stopped in between is reconciled by the next one: the provider's batch tagged with our id
    is recorded and collected, or, when none was created, the rows go back to the queue.
  * rows waiting in a batch belong to no process: no lease expiry or dead-owner takeover
    claims them until their batch ends (the store's claim rule).
  * each result is written only to a row still waiting in that batch (`finish_batch_item`),
    so a batch collected twice, or by two runs at once, changes nothing the second time.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from social_tui_media.ids import generate_aws_id
from social_tui_media.jobs.analyze import (
    RELEASED,
    Sharing,
    shared_outcome,
    source_of_outcome,
    thumbnail_for,
)
from social_tui_media.media import batch_api
from social_tui_media.media.vision import AnalysisError, build_request, estimate_cost, read_batch_answer
from social_tui_media.settings import Settings
from social_tui_media.store.claims import is_dead_local_worker, worker_id
from social_tui_media.store.interface import (
    ANALYSIS_LEASE_SECONDS,
    AnalysisBatch,
    AnalysisClaim,
    AnalysisOutcome,
    MediaStore,
    make_event,
)
from social_tui_media.store.rows import utc_now

log = logging.getLogger(__name__)
PREFIX_ANALYSIS_BATCH = "anb"
CLAIM_ROWS = 20  # rows claimed into a batch at a time (one claim's lines fit the file's headroom)
PREPARE_LEASE_SECONDS = 60 * 60  # a batch still `preparing` after this is its run's leftover
# A line's error that says nothing about the item (the batch ran out of time, the server or the
# rate limit failed): the item goes back to the queue uncharged rather than failing.
NOT_THE_ITEM = frozenset({"batch_expired", "batch_cancelled", "rate_limit_exceeded", "server_error"})


@dataclass
class SubmitReport:
    batches: list[str] = field(default_factory=list)  # provider batch ids submitted
    batched: int = 0  # rows now waiting in a batch
    requests: int = 0  # lines sent (identical bytes once)
    shared: int = 0  # rows completed at once from a stored analysis of the same bytes
    failed: int = 0
    failures: list[str] = field(default_factory=list)


@dataclass
class InProgress:
    batch_id: str
    items: int
    since: str  # when it was submitted (or recorded, while still being submitted)
    status: str


@dataclass
class CollectReport:
    batches_applied: int = 0
    completed: int = 0
    shared: int = 0
    failed: int = 0
    released: int = 0  # handed back to the queue (expired, failed or cancelled batches)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    saved_usd: float = 0.0
    in_progress: list[InProgress] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)  # one line per batch that ended without results
    failures: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # batches that could not be looked at now


# --------------------------------------------------------------------------- submit


def submit_batches(
    store: MediaStore,
    settings: Settings,
    client: Any,
    *,
    statuses: list[str],
    media_ids: list[str] | None = None,
    limit: int | None = None,
    max_requests: int = batch_api.MAX_REQUESTS,
    max_bytes: int = batch_api.MAX_FILE_BYTES,
) -> SubmitReport:
    """Claim rows into batches (as many as `limit` allows) and submit them. Raises
    BatchUnsupported before claiming anything on a server without the Batch API."""
    batch_api.check_support(client)
    report = SubmitReport()
    left = limit if limit is not None else float("inf")
    sharing = Sharing(store, settings.ai_model, reuse_stored="completed" not in statuses)
    while left > 0:
        batch = AnalysisBatch(
            generate_aws_id(PREFIX_ANALYSIS_BATCH), settings.ai_model, worker_id(), settings.openai_base_url
        )
        with tempfile.TemporaryDirectory(prefix="social-tui-batch-") as workdir:
            path = Path(workdir) / f"{batch.batch_id}.jsonl"
            claimed, requests = _fill(store, batch, path, statuses, media_ids, left, sharing, report, max_bytes,
                                      max_requests)  # fmt: skip
            if claimed == 0:
                return report
            left -= claimed
            if requests:
                _send(store, client, batch, path, requests, report)
            else:  # every row shared or failed at once: nothing to send
                store.update_analysis_batch(
                    batch.batch_id, {"status": "completed", "finished_at": utc_now()}, ["preparing"]
                )
    return report


def _fill(store, batch, path, statuses, media_ids, left, sharing, report, max_bytes, max_requests):
    """Claim rows into `batch` and write their request lines to `path` until the file or the
    request count is full, or nothing is left. Returns (rows claimed, lines written)."""
    claimed = requests = waiting = 0
    written: dict[str, str] = {}  # md5 -> the media id whose line carries these bytes
    event = make_event("ai_analysis_batched", details={"batch_id": batch.batch_id}, model=batch.model)
    with open(path, "wb") as out:
        while left - claimed > 0 and out.tell() < max_bytes and requests <= max_requests - CLAIM_ROWS:
            want = int(min(CLAIM_ROWS, left - claimed))
            claim = AnalysisClaim(batch.batch_id, want, statuses, event, media_ids, ANALYSIS_LEASE_SECONDS)
            rows = store.claim_analysis_batch(batch, claim)
            claimed += len(rows)
            for row in rows:
                added = _add_row(store, batch, row, out, written, sharing, report)
                requests += added == "line"
                waiting += added in ("line", "same_bytes")
            if len(rows) < want:
                break
    report.batched += waiting
    return claimed, requests


def _add_row(store, batch, row, out, written, sharing, report) -> str:
    """Write one claimed row's request line ('line'); or leave it waiting for the line of the
    same bytes already in the batch ('same_bytes'); or finish it now ('done'): shared from a
    stored analysis, or unreadable."""
    media_id, md5 = row["media_id"], row.get("md5_sum")
    source = sharing.stored_source(row)
    if source is not None:
        store.finish_batch_item(batch.batch_id, shared_outcome(media_id, source, (_started(batch.model),)))
        report.shared += 1
        return "done"
    if md5 and md5 in written:
        return "same_bytes"
    try:
        body = build_request(
            batch.model, Path(row["local_file_path"]), row.get("mime_type") or "image/jpeg",
            thumbnail_for(store, row),
        )  # fmt: skip
    except (AnalysisError, OSError) as error:
        message = str(error) if isinstance(error, AnalysisError) else f"cannot read cached file: {error}"
        details = {"error_kind": getattr(error, "kind", "unreadable_media"), "message": message}
        failed = AnalysisOutcome(
            media_id, "failed", make_event("ai_analysis_failed", "failed", details, model=batch.model),
            model=batch.model, before_events=(_started(batch.model),),
        )  # fmt: skip
        if store.finish_batch_item(batch.batch_id, failed):
            report.failed += 1
            report.failures.append(f"{media_id}: {message}")
        return "done"
    out.write(batch_api.batch_line(media_id, body))
    if md5:
        written[md5] = media_id
    return "line"


def _send(store, client, batch, path, requests, report) -> None:
    """Upload and create the batch, recording each step; a definite refusal hands the rows back,
    an answer lost on the way leaves the batch `preparing` for the next run to reconcile."""
    try:
        file_id = batch_api.upload_input(client, path)
        store.update_analysis_batch(
            batch.batch_id, {"input_file_id": file_id, "request_count": requests}, ["preparing"]
        )
        created = batch_api.create_batch(client, file_id, batch.batch_id)
    except (batch_api.BatchApiError, batch_api.BatchUnsupported) as error:
        if getattr(error, "definite", True):
            _abandon(store, batch.batch_id, str(error))
        raise
    fields = {"status": "submitted", "provider_batch_id": created.id, "submitted_at": utc_now()}
    if not store.update_analysis_batch(batch.batch_id, fields, ["preparing"]):
        # Another run reconciled this batch as never created meanwhile: its rows went back to
        # the queue, so this batch must not run.
        log.warning(
            "batch %s was handed back while it was being created; cancelling %s", batch.batch_id, created.id
        )
        batch_api.cancel_batch(client, created.id)
        return
    log.info("submitted batch %s as %s: %d requests", batch.batch_id, created.id, requests)
    report.batches.append(created.id)
    report.requests += requests


def _abandon(store: MediaStore, batch_id: str, reason: str, status: str = "abandoned") -> int:
    """Hand a batch's waiting rows back to the queue and close the batch with `status`."""
    details = {"batch_id": batch_id, "batch_status": status, "message": reason}
    released = store.release_analysis_batch(batch_id, make_event(RELEASED, "skipped", details))
    store.update_analysis_batch(
        batch_id,
        {"status": status, "error": reason[:500], "finished_at": utc_now()},
        ["preparing", "submitted"],
    )
    return released


def _started(model: str, **details: Any) -> dict:
    return make_event("ai_analysis_started", details=details or None, model=model)


# --------------------------------------------------------------------------- collect


def collect_batches(store: MediaStore, client: Any, now: float | None = None) -> CollectReport:
    """Look at every open batch once: apply a finished batch's answers, hand back the rows of a
    batch that expired, failed or was cancelled (and of one never created), leave one still
    running alone. A batch that cannot be looked at now is reported and left for next time."""
    report = CollectReport()
    now = time.time() if now is None else now
    for batch in store.analysis_batches():
        try:
            if batch["status"] == "preparing":
                batch = _reconcile(store, client, batch, now, report)
                if batch is None:
                    continue
            _collect(store, client, batch, report)
        except (batch_api.BatchApiError, batch_api.BatchUnsupported) as error:
            report.problems.append(f"batch {batch['batch_id']}: {error}")
            log.warning("cannot collect batch %s: %s", batch["batch_id"], error)
    return report


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _reconcile(store, client, batch, now, report) -> dict | None:
    """A batch still `preparing`: left alone while its run may still be sending it; else the
    provider's batch tagged with its id is recorded (and collected), or its rows go back."""
    batch_id, created = batch["batch_id"], _epoch(batch["created_at"])
    if not is_dead_local_worker(batch["owner"] or "") and now - created < PREPARE_LEASE_SECONDS:
        report.in_progress.append(InProgress(batch_id, batch["item_count"], batch["created_at"], "preparing"))
        return None
    found = batch_api.find_batch(client, batch_id, created_after=created - 3600)
    if found is None:
        released = _abandon(
            store, batch_id, "never created at the provider: the run preparing it stopped first"
        )
        report.released += released
        report.ended.append(
            f"batch {batch_id} was never submitted (its run stopped): {released} items back in the queue"
        )
        return None
    fields = {"status": "submitted", "provider_batch_id": found.id, "submitted_at": utc_now()}
    if not store.update_analysis_batch(batch_id, fields, ["preparing"]):
        return None  # its own run, or another collector, moved it on meanwhile
    log.info("batch %s was created as %s by a run that stopped before recording it", batch_id, found.id)
    return {**batch, **fields}


def _collect(store, client, batch, report) -> None:
    batch_id = batch["batch_id"]
    remote = batch_api.retrieve_batch(client, batch["provider_batch_id"])
    if remote.status in batch_api.RUNNING:
        since = batch.get("submitted_at") or batch["created_at"]
        report.in_progress.append(InProgress(batch_id, batch["item_count"], since, remote.status))
        return
    applied = _Applied()
    same_bytes: dict[str, list[str]] = {}
    for member in store.batch_members(batch_id):
        if member["md5_sum"]:
            same_bytes.setdefault(member["md5_sum"], []).append(member["media_id"])
    applied.md5 = {m: md5 for md5, ids in same_bytes.items() for m in ids}
    applied.same_bytes = same_bytes
    for file_id in (remote.output_file_id, remote.error_file_id):
        if file_id:
            for line in batch_api.result_lines(client, file_id):
                _apply_line(store, batch, line, applied, report)
    reason = {
        "completed": "the batch completed without an answer for it",
        "expired": "the batch expired (not run within 24 hours)",
        "failed": f"the provider refused the batch: {_errors(remote)}",
        "cancelled": "the batch was cancelled",
    }.get(remote.status, f"the batch ended {remote.status}")
    status = remote.status if remote.status in batch_api.ENDED else "failed"
    released = store.release_analysis_batch(
        batch_id,
        make_event(RELEASED, "skipped", {"batch_id": batch_id, "batch_status": status, "message": reason}),
    )
    report.released += released
    fields = {
        "status": status, "finished_at": utc_now(), "output_file_id": remote.output_file_id,
        "error_file_id": remote.error_file_id, "prompt_tokens": applied.prompt_tokens,
        "completion_tokens": applied.completion_tokens, "cost_usd": round(applied.cost_usd, 6),
        "saved_usd": round(applied.saved_usd, 6), "error": None if status == "completed" else reason[:500],
    }  # fmt: skip
    if store.update_analysis_batch(batch_id, fields, ["submitted"]):
        report.batches_applied += 1
        report.saved_usd += applied.saved_usd
    if status != "completed" or released:
        report.ended.append(f"batch {batch_id} {status}: {released} items back in the queue ({reason})")


@dataclass
class _Applied:
    """One batch's collection: its totals, and its waiting rows by their bytes."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    saved_usd: float = 0.0
    md5: dict[str, str] = field(default_factory=dict)  # media id -> md5
    same_bytes: dict[str, list[str]] = field(default_factory=dict)  # md5 -> media ids


def _errors(remote: Any) -> str:
    errors = getattr(getattr(remote, "errors", None), "data", None) or []
    return "; ".join(f"{e.code}: {e.message}" for e in errors[:3]) or "no reason given"


def _apply_line(store, batch, line: dict, applied: _Applied, report: CollectReport) -> None:
    """One answer: its row finished like a synchronous answer, then every row of the batch
    holding the same bytes shares it; an answer that fails the item fails only that item."""
    batch_id, model = batch["batch_id"], batch["model"]
    media_id = line.get("custom_id")
    if not isinstance(media_id, str):
        log.warning("batch %s: a result line without custom_id: %s", batch_id, str(line)[:200])
        return
    started = _started(model, batch_id=batch_id, provider_batch_id=batch["provider_batch_id"])
    response = line.get("response") or {}
    error = line.get("error") or {}
    if response.get("status_code") == 200:
        try:
            result = read_batch_answer(response.get("body"), model)
        except AnalysisError as exc:
            outcome = _failed(
                media_id, model, started, exc.kind, str(exc), exc.prompt_tokens, exc.completion_tokens
            )
        else:
            outcome = _completed(media_id, result, started, batch_id)
    else:
        body_error = (
            (response.get("body") or {}).get("error") if isinstance(response.get("body"), dict) else None
        )
        error = error or body_error or {}
        code = error.get("code") or error.get("type") or f"http_{response.get('status_code')}"
        status_code = response.get("status_code") or 0
        if code in NOT_THE_ITEM or status_code >= 500 or status_code in (408, 429):
            return  # handed back with the batch's other unanswered rows
        outcome = _failed(
            media_id,
            model,
            started,
            "api_error",
            f"{status_code or ''} {error.get('message') or code}".strip(),
        )
    if not store.finish_batch_item(batch_id, outcome):
        return  # applied before (a second collection): nothing changes
    _count(outcome, applied, report, model)
    source = source_of_outcome(outcome)
    if source is None:
        return
    for other in applied.same_bytes.get(applied.md5.get(media_id, ""), []):
        if other != media_id and store.finish_batch_item(batch_id, shared_outcome(other, source, (started,))):
            report.completed += 1
            report.shared += 1


def _completed(media_id: str, result, started: dict, batch_id: str) -> AnalysisOutcome:
    details = {
        "tokens_used": {
            "prompt": result.prompt_tokens,
            "completion": result.completion_tokens,
            "total": result.prompt_tokens + result.completion_tokens,
        },
        "estimated_cost_usd": round(result.cost_usd, 6),
        "batch_id": batch_id,
    }
    return AnalysisOutcome(
        media_id, "completed", make_event("ai_analysis_completed", "success", details, model=result.model),
        analysis=result.analysis, model=result.model, prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens, cost_usd=result.cost_usd, before_events=(started,),
    )  # fmt: skip


def _failed(media_id, model, started, kind, message, prompt_tokens=0, completion_tokens=0) -> AnalysisOutcome:
    details = {"error_kind": kind, "message": message}
    return AnalysisOutcome(
        media_id, "failed", make_event("ai_analysis_failed", "failed", details, model=model), model=model,
        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
        cost_usd=estimate_cost(model, prompt_tokens, completion_tokens, batch=True), before_events=(started,),
    )  # fmt: skip


def _count(outcome: AnalysisOutcome, applied: _Applied, report: CollectReport, model: str) -> None:
    applied.prompt_tokens += outcome.prompt_tokens
    applied.completion_tokens += outcome.completion_tokens
    applied.cost_usd += outcome.cost_usd
    full = estimate_cost(outcome.model or model, outcome.prompt_tokens, outcome.completion_tokens) or (
        estimate_cost(model, outcome.prompt_tokens, outcome.completion_tokens)
    )
    applied.saved_usd += max(0.0, full - outcome.cost_usd)
    report.prompt_tokens += outcome.prompt_tokens
    report.completion_tokens += outcome.completion_tokens
    report.cost_usd += outcome.cost_usd
    if outcome.status == "completed":
        report.completed += 1
    else:
        report.failed += 1
        report.failures.append(f"{outcome.media_id}: {outcome.event['details']['message']}")
