"""The extract-text work queue: workers claim cached rows atomically, read their text locally
(OCR, PDF text layer, video frames), and finish each row `completed` or `failed`, with events
in the row's log. Identical bytes are read once: the result goes to every row holding them.
Each image's perceptual hash then finds its near duplicates in other posts, confirmed by
their text, and puts them in one group.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path

from social_tui_media.jobs import Progress
from social_tui_media.jobs.queue import next_row_claimer, run_workers
from social_tui_media.media.cache import MediaCache
from social_tui_media.media.ocr import OcrEngine, load_engine
from social_tui_media.media.phash import hamming
from social_tui_media.media.text_extract import ExtractionError, extract_text
from social_tui_media.settings import Settings
from social_tui_media.store.claims import claim_statuses, is_dead_local_worker, worker_id
from social_tui_media.store.interface import (
    TEXT_LEASE_SECONDS,
    MediaQuery,
    MediaStore,
    TextClaim,
    TextOutcome,
    make_event,
)
from social_tui_media.store.usage import UsageRecorder

log = logging.getLogger(__name__)
NEAR_DISTANCE_WITH_TEXT = 10  # bits: re-encoded, resized, lightly cropped copies whose text agrees
NEAR_DISTANCE_NO_TEXT = 6  # bits: pictures without text have only their hash to go by
TEXT_AGREEMENT = 0.9  # similarity (difflib ratio) of one line read from two copies
_WORDS = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass
class ExtractionReport:
    completed: int = 0
    failed: int = 0
    shared: int = 0  # rows that got the text of identical bytes read once for all of them
    reused: int = 0  # claimed rows whose bytes were read before: no OCR
    lost: int = 0  # finished after another worker took the lease over: result not written
    near_grouped: int = 0  # rows put in a confirmed near-duplicate group
    characters: int = 0
    failures: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, outcome: TextOutcome, written: int, reused: bool) -> None:
        with self._lock:
            if written == 0:
                self.lost += 1
            elif outcome.status == "completed":
                self.completed += 1
                self.shared += written - 1
                self.reused += int(reused)
                self.characters += len(outcome.text or "")
            else:
                self.failed += 1
                self.failures.append(f"{outcome.media_id}: {outcome.event['details']['message']}")


def _words(text: str | None) -> list[str]:
    return [w.lower() for w in _WORDS.findall(text or "")]


def _lines(text: str | None) -> list[list[str]]:
    return [words for line in (text or "").splitlines() if (words := _words(line))]


def _lines_agree(a: list[str], b: list[str]) -> bool:
    """One line read from two copies: the same numbers, the same letters up to an OCR slip."""
    numbers_a = sorted(w for w in a if any(ch.isdigit() for ch in w))
    numbers_b = sorted(w for w in b if any(ch.isdigit() for ch in w))
    if numbers_a != numbers_b:
        return False
    return SequenceMatcher(None, " ".join(a), " ".join(b), autojunk=False).ratio() >= TEXT_AGREEMENT


def texts_agree(a: str | None, b: str | None) -> bool:
    """Whether two copies' texts say the same: both without text, or every line of each read in
    the other up to OCR slips (a letter here and there; numbers must match). Two slides of one
    template that differ by a line do not agree."""
    lines_a, lines_b = _lines(a), _lines(b)
    if not lines_a or not lines_b:
        return not lines_a and not lines_b
    return all(any(_lines_agree(x, y) for y in lines_b) for x in lines_a) and all(
        any(_lines_agree(y, x) for x in lines_a) for y in lines_b
    )


def confirmed_near_duplicates(text: str | None, phash: str, candidates: list[dict]) -> list[dict]:
    """The candidates (other posts' images, nearest first) that are the same picture: close
    hashes, and texts that agree (closer still when neither has text)."""
    has_text = bool(_words(text))
    limit = NEAR_DISTANCE_WITH_TEXT if has_text else NEAR_DISTANCE_NO_TEXT
    return [
        c
        for c in candidates
        if c.get("phash")
        and hamming(phash, c["phash"]) <= limit
        and texts_agree(text, c.get("extracted_text"))
    ]


def group_near_duplicates(store: MediaStore, row: dict, text: str | None, phash: str) -> int:
    """Put `row` in the confirmed near-duplicate group of its matches; rows grouped (0: none)."""
    candidates = store.near_candidates(row["media_id"], phash, NEAR_DISTANCE_WITH_TEXT)
    confirmed = [
        c for c in confirmed_near_duplicates(text, phash, candidates) if c["md5_sum"] != row["md5_sum"]
    ]
    if not confirmed:
        return 0
    groups = sorted(c["near_group_id"] for c in confirmed if c.get("near_group_id"))
    group_id = groups[0] if groups else confirmed[0]["media_id"]
    members = [row["media_id"], *(c["media_id"] for c in confirmed)]
    store.set_near_group(group_id, members)
    log.info("near duplicates grouped", extra={"media_id": row["media_id"], "post_id": row["post_id"]})
    return len(members)


def _reused(row: dict, twin: dict) -> TextOutcome:
    """The extraction of identical bytes made earlier, for a row downloaded since."""
    details = {"shared_from": twin["media_id"], "characters": len(twin.get("extracted_text") or "")}
    return TextOutcome(
        row["media_id"], "completed", make_event("text_extraction_completed", details=details),
        text=twin.get("extracted_text"), segments=twin.get("text_segments"), engine=twin.get("text_engine"),
        phash=twin.get("phash"),
    )  # fmt: skip


def extract_row(cache: MediaCache, engine: OcrEngine, row: dict) -> TextOutcome:
    """Read one claimed row's text; never raises for a failure of the item itself."""
    media_id = row["media_id"]
    path = cache.confined(row.get("local_file_path"))
    try:
        if path is None:
            raise ExtractionError("outside_cache", f"{row.get('local_file_path')} is not inside the cache")
        result = extract_text(Path(path), row.get("mime_type") or "", engine)
    except ExtractionError as error:
        log.warning(
            "text extraction failed: %s", error, extra={"media_id": media_id, "post_id": row["post_id"]}
        )
        details = {"error_kind": error.kind, "message": str(error)}
        return TextOutcome(media_id, "failed", make_event("text_extraction_failed", "failed", details))
    except Exception as error:  # noqa: BLE001 - an engine crash on one file must not end the run
        log.exception("text extraction crashed", extra={"media_id": media_id})
        details = {"error_kind": "engine_error", "message": f"{type(error).__name__}: {error}"}
        return TextOutcome(media_id, "failed", make_event("text_extraction_failed", "failed", details))
    details = {
        "engine": result.engine, "characters": len(result.text), "extraction_time_ms": result.elapsed_ms,
        "segments": len(result.segments or []),
    }  # fmt: skip
    log.info("text extracted", extra={"media_id": media_id, "post_id": row["post_id"]})
    return TextOutcome(
        media_id, "completed", make_event("text_extraction_completed", details=details),
        text=result.text, segments=result.segments, engine=result.engine, phash=result.phash,
    )  # fmt: skip


def _claimer(store: MediaStore, statuses: list[str], media_ids: list[str] | None, limit: int | None,
             lease_seconds: int, dead: list[str]):  # fmt: skip
    """What each worker calls for its next row (see next_row_claimer); a run that also takes
    failed or completed rows works through the downloaded rows in those statuses at its start."""

    def claim_one(me: str, ids: list[str] | None) -> dict | None:
        event = make_event("text_extraction_started", details={"worker": me})
        rows = store.claim_text(TextClaim(me, 1, statuses, event, ids, lease_seconds, dead))
        return rows[0] if rows else None

    fixed = None
    if set(statuses) != {"not_started"}:
        rows = store.iter_media(MediaQuery(download_status="downloaded", media_ids=media_ids))
        fixed = [r["media_id"] for r in rows if (r.get("text_status") or "not_started") in statuses]
    return next_row_claimer(claim_one, media_ids, limit, fixed)


def extract_pending(
    store: MediaStore,
    settings: Settings,
    *,
    statuses: list[str] | None = None,
    media_ids: list[str] | None = None,
    limit: int | None = None,
    workers: int = 1,
    progress: Progress | None = None,
    engine: OcrEngine | None = None,
    lease_seconds: int = TEXT_LEASE_SECONDS,
) -> ExtractionReport:
    """Run `workers` workers until the queue is empty or `limit` rows were claimed. Raises
    OcrUnavailable (before any claim) when no OCR engine is installed."""
    engine = engine or load_engine()
    statuses = statuses or claim_statuses()
    cache = MediaCache(settings.cache_dir)
    report = ExtractionReport()
    dead = [c for c in store.text_claimants() if is_dead_local_worker(c)]
    if progress:
        backlog = store.text_backlog(statuses, media_ids)
        progress.expect(backlog if limit is None else min(limit, backlog))
    next_row = _claimer(store, statuses, media_ids, limit, lease_seconds, dead)
    used = UsageRecorder(store)  # each file read: eviction keeps it longer

    def read(row: dict) -> TextOutcome:
        used.touch(row["media_id"])
        return extract_row(cache, engine, row)

    def work() -> None:
        me = worker_id()
        while claimed := next_row(me):
            twin = store.extracted_text_of(claimed["md5_sum"]) if claimed.get("md5_sum") else None
            reused = twin is not None and twin["media_id"] != claimed["media_id"]
            outcome = _reused(claimed, twin) if reused else read(claimed)
            written = store.finish_text(me, outcome, lease_seconds)
            report.add(outcome, written, reused)
            if written and outcome.status == "completed" and outcome.phash:
                grouped = group_near_duplicates(store, claimed, outcome.text, outcome.phash)
                with report._lock:
                    report.near_grouped += grouped
            if progress:
                progress.advance(1, 0)

    try:
        run_workers(work, workers, "extract-text")
    finally:
        used.close()
    return report
