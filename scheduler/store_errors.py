"""Failed store calls of the scheduler and of every render worker, written to the database for ``/metrics``.

Neither the scheduler nor the workers serve ``/metrics``; the API replicas do, from the database. So the scheduler
counts its own store's failures (``storage.counting``), learns each worker's cumulative counts from its polls and
facts (``Dispatcher.store_errors``), and every few seconds adds what is new to the running totals
(``farm.lifecycle.tallies.STORAGE_ERRORS``), exported as ``farm_cluster_storage_errors_total{process, operation}``.
"""

from __future__ import annotations

import logging

from farm.clock import Clock
from farm.db.engine import Database
from farm.lifecycle import tallies
from storage.counting import ErrorCounts

log = logging.getLogger(__name__)

INTERVAL_S = 5.0


class StoreErrors:
    """Call ``worker(name, counts)`` for each report; add it to the dispatcher's periodic hooks; wrap the
    scheduler's store with ``CountingStore(store, self.own)``."""

    def __init__(self, db: Database, clock: Clock, interval_s: float = INTERVAL_S) -> None:
        self.db = db
        self.clock = clock
        self.interval_s = interval_s
        self.own = ErrorCounts()
        self._own_seen: dict[str, int] = {}
        self._seen: dict[str, dict[str, int]] = {}  # worker -> its cumulative counts at its last report
        self._pending: dict[tuple[str, str], int] = {}
        self._next = float("-inf")

    def worker(self, name: str, counts: dict[str, int]) -> None:
        """A worker's cumulative counts; only the increase since its last report is new. ``name`` is one actor's
        (a replaced actor starts again from zero under a new name); a decrease means a restart: all of it is new."""
        last = self._seen.get(name, {})
        for operation, total in counts.items():
            before = last.get(operation, 0)
            self._add("workers", operation, total - before if total >= before else total)
        self._seen[name] = dict(counts)

    def media(self, counts: dict[str, int]) -> None:
        """The failed store calls of one preview or video task (each task starts from zero)."""
        for operation, n in counts.items():
            self._add("media", operation, n)

    def _add(self, process: str, operation: str, n: int) -> None:
        if n > 0:
            self._pending[(process, operation)] = self._pending.get((process, operation), 0) + n

    def __call__(self) -> None:
        mono = self.clock.monotonic()
        if mono < self._next:
            return
        self._next = mono + self.interval_s
        self.flush()

    def flush(self) -> None:
        """Write what is new now (kept for the next turn when the database fails)."""
        own = self.own.snapshot()
        for operation, total in own.items():
            self._add("scheduler", operation, total - self._own_seen.get(operation, 0))
        self._own_seen = own
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        try:
            with self.db.session() as s:
                for (process, operation), n in sorted(pending.items()):
                    tallies.observe(s, tallies.STORAGE_ERRORS, process, [1.0] * n, label=operation)
        except Exception:
            log.warning("store error counts not written; retrying", exc_info=True)
            for key, n in pending.items():
                self._pending[key] = self._pending.get(key, 0) + n
