"""How the workers of a queued stage (analysis, text extraction) take their next row."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

# claim_one(worker, media_ids or None) -> the claimed row, or None
ClaimOne = Callable[[str, list[str] | None], dict | None]


def next_row_claimer(
    claim_one: ClaimOne, media_ids: list[str] | None, limit: int | None, fixed: list[str] | None
) -> Callable[[str], dict | None]:
    """What each worker calls for its next row; None when the run is over (`limit` rows taken,
    or the queue empty).

    Only `not_started` rows leave a queue for good once done. A run that also takes failed or
    completed rows (--retry-failed, --force) passes `fixed`, the ids chosen at its start, and
    works through them one at a time, so a row that fails again, or was just redone, is not
    taken twice; an id another worker took meanwhile is skipped."""
    lock = threading.Lock()
    left = [limit if limit is not None else float("inf")]
    remaining = iter(fixed) if fixed is not None else None

    def claim(me: str) -> dict | None:
        while True:
            with lock:
                if left[0] <= 0:
                    return None
                ids = media_ids
                if remaining is not None:
                    ids = [next(remaining, None)]
                    if ids == [None]:
                        return None
                left[0] -= 1
            row = claim_one(me, ids)
            if row is not None:
                return row
            if remaining is None:
                return None
            with lock:
                left[0] += 1  # taken by another worker meanwhile: try the next id

    return claim


def run_workers(work: Callable[[], None], workers: int, name: str) -> None:
    """Run `workers` threads of `work` (each takes rows until its claimer says the run is over)
    and wait for all; the first error any of them raised is raised here."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        for future in [pool.submit(work) for _ in range(workers)]:
            future.result()
