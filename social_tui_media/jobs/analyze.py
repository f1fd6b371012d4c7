"""The analysis work queue: workers claim cached rows atomically, analyse them with the
vision model, and finish each row `completed` or `failed`, with events in the row's log."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from social_tui_media.jobs import Progress
from social_tui_media.jobs.download import DownloadReport, download_pending
from social_tui_media.jobs.queue import next_row_claimer, run_workers
from social_tui_media.media.vision import (
    AnalysisError,
    CircuitBreaker,
    RetryPolicy,
    analyze_media,
    make_client,
)
from social_tui_media.settings import Settings
from social_tui_media.store.claims import is_dead_local_worker, worker_id
from social_tui_media.store.interface import (
    ANALYSIS_LEASE_SECONDS,
    AnalysisClaim,
    AnalysisOutcome,
    AnalysisQuery,
    MediaStore,
    make_event,
    requeue_for_download,
)
from social_tui_media.store.usage import UsageRecorder

log = logging.getLogger(__name__)
RELEASED = "ai_analysis_released"


# --------------------------------------------------------------------------- sharing


@dataclass(frozen=True)
class SharedSource:
    """An analysis another row holding the same bytes can take: the row that was analysed,
    and what that one call used."""

    media_id: str
    analysis: dict
    model: str | None
    prompt_tokens: int
    completion_tokens: int


def shared_source(
    media_id: str, analysis: dict | None, model: str | None, event: dict
) -> SharedSource | None:
    """The source behind a completed analysis and its `ai_analysis_completed` event (a row that
    shared names the row analysed, so sharing never chains); None for anything else."""
    if analysis is None or event.get("event") != "ai_analysis_completed":
        return None
    details = event.get("details") or {}
    tokens = details.get("tokens_used") or {}
    return SharedSource(
        details.get("shared_from") or media_id, analysis, model,
        int(tokens.get("prompt") or 0), int(tokens.get("completion") or 0),
    )  # fmt: skip


def source_of_row(row: dict) -> SharedSource | None:
    """The source a completed row (as `store.shareable_analysis` returns it) offers."""
    done = [e for e in row.get("ai_analysis_log") or [] if e.get("event") == "ai_analysis_completed"]
    event = done[-1] if done else {"event": "ai_analysis_completed"}
    return shared_source(row["media_id"], row.get("ai_analysis"), row.get("ai_model"), event)


def source_of_outcome(outcome: AnalysisOutcome) -> SharedSource | None:
    if outcome.status != "completed":
        return None
    return shared_source(outcome.media_id, outcome.analysis, outcome.model, outcome.event)


def shared_outcome(
    media_id: str, source: SharedSource, before_events: tuple[dict, ...] = ()
) -> AnalysisOutcome:
    """A row completed with another row's analysis of the same bytes: no call of its own, so
    its columns count no tokens and no cost (totals count each call once); the event names the
    row analysed and that call's tokens."""
    details = {
        "shared_from": source.media_id,
        "tokens_used": {
            "prompt": source.prompt_tokens,
            "completion": source.completion_tokens,
            "total": source.prompt_tokens + source.completion_tokens,
        },
        "estimated_cost_usd": 0.0,
    }
    event = make_event("ai_analysis_completed", "success", details, model=source.model)
    return AnalysisOutcome(
        media_id,
        "completed",
        event,
        analysis=source.analysis,
        model=source.model,
        before_events=before_events,
    )


def is_shared(outcome: AnalysisOutcome) -> bool:
    return "shared_from" in (outcome.event.get("details") or {})


class Sharing:
    """Identical bytes are analysed once. A row takes the analysis of a completed row holding
    the same bytes or a confirmed near duplicate of them (`store.shareable_analysis`, unless
    `reuse_stored` is off: --force), or of
    the worker of this run already analysing them, waiting for it; the first analysis of
    bytes new to the run is the only call made for them."""

    def __init__(self, store: MediaStore, model: str, reuse_stored: bool = True) -> None:
        self.store = store
        self.model = model
        self.reuse_stored = reuse_stored
        self._lock = threading.Lock()
        self._inflight: dict[str, Future] = {}

    def stored_source(self, row: dict) -> SharedSource | None:
        if not self.reuse_stored:
            return None
        found = self.store.shareable_analysis(row["media_id"], self.model)
        return source_of_row(found) if found else None

    def run(
        self,
        row: dict,
        analyse: Callable[[dict], AnalysisOutcome],
        write: Callable[[AnalysisOutcome], bool],
    ) -> tuple[AnalysisOutcome, bool]:
        """Finish `row`: shared when its bytes were analysed, else analysed; (outcome, written)."""
        source = self.stored_source(row)
        if source is not None:
            outcome = shared_outcome(row["media_id"], source)
            return outcome, write(outcome)
        md5 = row.get("md5_sum")
        with self._lock:
            pending = self._inflight.get(md5) if md5 else None
            mine = Future() if md5 and pending is None else None
            if mine is not None:
                self._inflight[md5] = mine
        if pending is not None:
            source = pending.result()
            if source is not None:
                outcome = shared_outcome(row["media_id"], source)
                return outcome, write(outcome)
        result: SharedSource | None = None
        try:
            outcome = analyse(row)
            written = write(outcome)
            result = source_of_outcome(outcome) if written else None
        finally:
            if mine is not None:
                mine.set_result(result)
                with self._lock:
                    if result is None:
                        self._inflight.pop(md5, None)  # the next row with these bytes tries itself
        return outcome, written


@dataclass
class AnalysisReport:
    completed: int = 0
    shared: int = 0  # of the completed: identical bytes analysed once, the result shared
    failed: int = 0
    lost: int = 0  # finished after another worker took the lease over: result not written
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    released: int = 0  # handed back uncharged: the endpoint failed, not the item
    stopped: str | None = None  # why the run stopped early (the endpoint's circuit breaker)
    failures: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, outcome: AnalysisOutcome, written: bool) -> None:
        with self._lock:
            self.prompt_tokens += outcome.prompt_tokens
            self.completion_tokens += outcome.completion_tokens
            self.cost_usd += outcome.cost_usd
            if not written:
                self.lost += 1
            elif outcome.event["event"] == RELEASED:
                self.released += 1
            elif outcome.status == "completed":
                self.completed += 1
                self.shared += is_shared(outcome)
            else:
                self.failed += 1
                self.failures.append(f"{outcome.media_id}: {outcome.event['details']['message']}")


def restore_evicted(
    store: MediaStore, settings: Settings, media_ids: list[str], progress: Progress | None = None
) -> DownloadReport:
    """Bring back the evicted files of these rows (from the archive first) so they can be analysed."""
    evicted = [r["media_id"] for r in store.list_media(media_ids=media_ids) if r.get("evicted_at")]
    if not evicted:
        return DownloadReport()
    requeue_for_download(store, evicted)
    return download_pending(store, settings, media_ids=evicted, progress=progress)


def thumbnail_for(store: MediaStore, row: dict) -> Path | None:
    """A video's thumbnail from the same post, used when no frame can be read."""
    if row["media_type"] != "video":
        return None
    for other in store.list_media(post_id=row["post_id"]):
        if other.get("slot_role") == "video_thumbnail" and other["download_status"] == "downloaded":
            path = Path(other["local_file_path"] or "")
            if path.is_file():
                return path
    return None


def released(row: dict, model: str, error: AnalysisError) -> AnalysisOutcome:
    """Hand a claimed row back as it was, uncharged: the endpoint failed, not the media. A row
    analysed before (a --force run) keeps its analysis; a failure never replaces it."""
    before = "completed" if row.get("ai_analysis") else "not_started"
    details = {"error_kind": error.kind, "message": str(error)}
    return AnalysisOutcome(
        row["media_id"], before, make_event(RELEASED, "skipped", details, model=model),
        analysis=row.get("ai_analysis") if before == "completed" else None, model=model,
        prompt_tokens=error.prompt_tokens, completion_tokens=error.completion_tokens,
    )  # fmt: skip


def analyse_row(
    store: MediaStore,
    client: Any,
    model: str,
    row: dict,
    retry_policy: RetryPolicy | None,
    breaker: CircuitBreaker | None = None,
) -> AnalysisOutcome:
    """Analyse one claimed row; never raises for a failure of the item itself."""
    media_id = row["media_id"]
    try:
        result = analyze_media(
            client,
            model,
            Path(row["local_file_path"]),
            row.get("mime_type") or "image/jpeg",
            thumbnail_path=thumbnail_for(store, row),
            retry_policy=retry_policy,
            breaker=breaker,
        )
    except AnalysisError as error:
        if error.endpoint_failure:
            log.warning("vision endpoint failed: %s", error, extra={"media_id": media_id})
            return released(row, model, error)
        log.warning("analysis failed: %s", error, extra={"media_id": media_id, "post_id": row["post_id"]})
        details = {"error_kind": error.kind, "message": str(error)}
        return AnalysisOutcome(
            media_id, "failed", make_event("ai_analysis_failed", "failed", details, model=model),
            model=model, prompt_tokens=error.prompt_tokens, completion_tokens=error.completion_tokens,
        )  # fmt: skip
    except OSError as error:
        details = {"error_kind": "unreadable_media", "message": f"cannot read cached file: {error}"}
        return AnalysisOutcome(
            media_id, "failed", make_event("ai_analysis_failed", "failed", details, model=model)
        )
    details = {
        "analysis_time_ms": result.analysis_time_ms,
        "tokens_used": {
            "prompt": result.prompt_tokens,
            "completion": result.completion_tokens,
            "total": result.prompt_tokens + result.completion_tokens,
        },
        "estimated_cost_usd": round(result.cost_usd, 6),
        "frames": result.frames,
    }
    log.info("analysis completed", extra={"media_id": media_id, "post_id": row["post_id"]})
    return AnalysisOutcome(
        media_id, "completed", make_event("ai_analysis_completed", "success", details, model=result.model),
        analysis=result.analysis, model=result.model, prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens, cost_usd=result.cost_usd,
    )  # fmt: skip


def analyze_pending(
    store: MediaStore,
    settings: Settings,
    *,
    statuses: list[str],
    media_ids: list[str] | None = None,
    limit: int | None = None,
    workers: int = 1,
    progress: Progress | None = None,
    client: Any = None,
    retry_policy: RetryPolicy | None = None,
    lease_seconds: int = ANALYSIS_LEASE_SECONDS,
) -> AnalysisReport:
    """Run `workers` workers until the queue is empty or `limit` rows were claimed."""
    client = client or make_client(settings)  # a missing key fails here, before any claim
    model = settings.ai_model
    report = AnalysisReport()
    breaker = CircuitBreaker()
    dead = [c for c in store.analysis_claimants() if is_dead_local_worker(c)]
    if dead:
        log.info("taking over the analysis claims of %d processes that are gone", len(dead))
    queue = AnalysisQuery(statuses, media_ids, lease_seconds)
    candidates = [r["media_id"] for r in store.analysis_candidates(queue)]
    if progress:
        progress.expect(len(candidates) if limit is None else min(limit, len(candidates)))
    next_claim = _claimer(store, statuses, media_ids, limit, lease_seconds, model, dead, candidates)
    sharing = Sharing(store, model, reuse_stored="completed" not in statuses)  # --force re-analyses

    used = UsageRecorder(store)  # each analysed file was read: eviction keeps it longer

    def analyse(row: dict) -> AnalysisOutcome:
        used.touch(row["media_id"])  # its file is read; a row sharing another's result reads nothing
        return analyse_row(store, client, model, row, retry_policy, breaker)

    def work() -> None:
        me = worker_id()
        while not breaker.open and (claimed := next_claim(me)):
            outcome, written = sharing.run(
                claimed, analyse, lambda outcome: store.finish_analysis(me, outcome)
            )
            report.add(outcome, written)
            if progress:
                progress.advance(1, 0)

    try:
        run_workers(work, workers, "analyze")
    finally:
        used.close()
    if breaker.open:
        left = len(store.analysis_candidates(queue))
        endpoint = settings.openai_base_url or "https://api.openai.com/v1"
        report.stopped = (
            f"vision endpoint {endpoint} answers {breaker.last_error}: stopped after {breaker.failures} "
            f"consecutive failures; {left} items left {'/'.join(statuses)}"
        )
        log.error(report.stopped)
    return report


def _claimer(store, statuses, media_ids, limit, lease_seconds, model, dead_workers, candidates):
    """What each worker calls for its next row (see next_row_claimer); a run that also takes
    failed or completed rows works through `candidates`, the list fixed at its start."""

    def claim_one(me: str, ids: list[str] | None) -> dict | None:
        event = make_event("ai_analysis_started", model=model)
        rows = store.claim_analysis(AnalysisClaim(me, 1, statuses, event, ids, lease_seconds, dead_workers))
        return rows[0] if rows else None

    fixed = list(media_ids or candidates) if set(statuses) != {"not_started"} else None
    return next_row_claimer(claim_one, media_ids, limit, fixed)
