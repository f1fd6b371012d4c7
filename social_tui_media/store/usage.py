"""Marking cached files used, so eviction follows last use (a true LRU), without a database write
per read: a `UsageRecorder` collects media ids and hands them to `store.mark_used` in one call
per `batch` ids, `interval` seconds after the first unsent read, and at close (or exit).

    recorder = UsageRecorder(store)          # a job with its own store: close() before it closes
    recorder.touch(row["media_id"])          # every read of a cached file
    recorder.close()

    usage_recorder(settings).touch(media_id) # anywhere else (the TUI hook, browse, export): one
                                             # recorder per database, opening it to flush

A file read again within `remember` seconds of its last mark is not marked again: an hour is
fine-grained enough for eviction, and a person paging back and forth writes nothing.
Reading a file to check it (verify-cache) is not use and does not touch.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable, Iterable
from functools import partial

from social_tui_media.settings import Settings
from social_tui_media.store.interface import MediaStore

log = logging.getLogger(__name__)

BATCH = 200
INTERVAL_SECONDS = 5.0
REMEMBER_SECONDS = 3600.0


class UsageRecorder:
    """Collects reads of cached files and marks them in the store in batches. Thread safe."""

    def __init__(
        self,
        store: MediaStore | Callable[[], MediaStore],
        batch: int = BATCH,
        interval: float = INTERVAL_SECONDS,
        remember: float = REMEMBER_SECONDS,
    ) -> None:
        self._store = store  # a store, or a factory opening one per flush (closed after it)
        self._batch = batch
        self._interval = interval
        self._remember = remember
        self._pending: dict[str, None] = {}
        self._marked: dict[str, float] = {}  # media id -> when it was last sent
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._timer: threading.Timer | None = None

    def touch(self, media_id: str | None) -> None:
        """One read of a media row's cached file."""
        self.touch_many([media_id] if media_id else [])

    def touch_many(self, media_ids: Iterable[str]) -> None:
        now = time.monotonic()
        with self._lock:
            for media_id in media_ids:
                if now - self._marked.get(media_id, -self._remember) >= self._remember:
                    self._pending[media_id] = None
            full = len(self._pending) >= self._batch
            if self._pending and not full and self._timer is None and self._interval > 0:
                self._timer = threading.Timer(self._interval, self.flush)
                self._timer.daemon = True
                self._timer.start()
        if full or (self._pending and self._interval <= 0):
            self.flush()

    def flush(self) -> int:
        """Send every read collected so far in one store call; returns how many rows it marked.
        A failure is logged and the reads are kept for the next flush: marking use never
        fails the read it follows."""
        with self._flushing:
            with self._lock:
                ids = list(self._pending)
                self._pending.clear()
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
            if not ids:
                return 0
            try:
                marked = self._mark(ids)
            except Exception as error:  # noqa: BLE001 - a read must not fail for its bookkeeping
                log.warning("could not mark %d cached files used: %s", len(ids), error)
                with self._lock:
                    self._pending.update(dict.fromkeys(ids))
                return 0
            now = time.monotonic()
            with self._lock:
                self._marked = {m: t for m, t in self._marked.items() if now - t < self._remember}
                self._marked.update(dict.fromkeys(ids, now))
            log.debug("marked %d cached files used", marked)
            return marked

    def _mark(self, ids: list[str]) -> int:
        if hasattr(self._store, "mark_used"):
            return self._store.mark_used(ids)
        store = self._store()
        try:
            return store.mark_used(ids)
        finally:
            store.close()

    def close(self) -> None:
        """Send what is left; call before the store it writes to closes."""
        self.flush()


_shared: dict[Settings, UsageRecorder] = {}
_shared_lock = threading.Lock()


def usage_recorder(settings: Settings) -> UsageRecorder:
    """The process-wide recorder for reads outside a job (the TUI hook, browse, export) on the
    database `settings` name: it opens that store for each flush, and flushes at exit."""
    with _shared_lock:
        if settings not in _shared:
            _shared[settings] = UsageRecorder(partial(_open_store, settings))
            atexit.register(_shared[settings].close)
        return _shared[settings]


def _open_store(settings: Settings) -> MediaStore:
    from social_tui_media.store import open_store  # the package imports the back ends' chooser

    return open_store(settings)
