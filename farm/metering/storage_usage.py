"""Storage metering: the bytes each company holds (input blobs + outputs), sampled into the usage ledger.

Every sample appends one ledger row per company: resource ``storage``, ``count`` = gigabytes held (10^9
bytes), ``seconds`` = the time since the previous sample. Reports multiply seconds by count like for every
other resource, so a storage row's resource-seconds are GB-seconds and its hours are **GB-hours**, with no
special case anywhere downstream.

The bytes come from listing the store (``blobs/<company>/…`` and ``outputs/<company>/…``): it is what is
really held, previews included, and uncommitted direct uploads (``uploads/``) are not billed. The sampler
is ticked by the scheduler loop and lists in a thread of its own, so a slow or unreachable store never
stalls dispatching; a failed sample is logged and the next one covers the whole gap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import select

from farm.clock import Clock
from farm.db.engine import Database
from farm.db.models import Company
from farm.errors import StorageError
from farm.metering import ledger
from storage.base import ObjectStore

log = logging.getLogger(__name__)

RESOURCE = "storage"
BYTES_PER_GB = 1_000_000_000
PREFIXES = ("blobs/", "outputs/")


def bytes_by_company(store: ObjectStore) -> dict[str, int]:
    """Bytes held per company id under the metered prefixes."""
    held: dict[str, int] = defaultdict(int)
    for prefix in PREFIXES:
        for info in store.list(prefix):
            parts = info.key.split("/")
            if len(parts) >= 3:
                held[parts[1]] += info.size
    return dict(held)


def record_sample(db: Database, held: dict[str, int], now: datetime, seconds: float) -> int:
    """Append one ``storage`` row per known company holding bytes; returns how many rows were written."""
    if seconds <= 0:
        return 0
    written = 0
    with db.session() as s:
        known = set(s.scalars(select(Company.id).where(Company.id.in_(list(held)))))
        for company_id, size in sorted(held.items()):
            if company_id not in known or size <= 0:
                continue  # objects of a deleted company are nobody's bill
            ledger.record(
                s,
                ledger.Usage(
                    company_id=company_id,
                    job_id=None,
                    task_id=None,
                    attempt=None,
                    node="",
                    resource=RESOURCE,
                    count=size / BYTES_PER_GB,
                    started_at=now - timedelta(seconds=seconds),
                    ended_at=now,
                    seconds=seconds,
                    outcome="sampled",
                ),
            )
            written += 1
    return written


class StorageSampler:
    """Samples every ``interval_s``; call ``tick()`` often (the scheduler loop does), it returns at once.

    The first tick only marks the start: a row covers the time since the previous sample.
    """

    def __init__(self, db: Database, store: ObjectStore, clock: Clock, interval_s: float) -> None:
        self.db = db
        self.store = store
        self.clock = clock
        self.interval_s = interval_s
        self.last: datetime | None = None
        self._due_at = 0.0
        self._thread: threading.Thread | None = None

    def tick(self) -> None:
        """Start a sample in the background when one is due and none is running."""
        if time.monotonic() < self._due_at or (self._thread is not None and self._thread.is_alive()):
            return
        self._due_at = time.monotonic() + self.interval_s
        if self.last is None:
            self.last = self.clock.now()
            return
        self._thread = threading.Thread(target=self.sample, name="storage-sampler", daemon=True)
        self._thread.start()

    __call__ = tick

    def sample(self) -> int:
        """List the store and write the rows now; returns the number of rows."""
        try:
            held = bytes_by_company(self.store)
        except StorageError as exc:
            log.warning("storage sample skipped, the store did not answer: %s", exc)
            return 0
        now = self.clock.now()
        last = self.last or now
        written = record_sample(self.db, held, now, (now - last).total_seconds())
        self.last = now
        log.debug("storage sample: %d company row(s), %d bytes", written, sum(held.values()))
        return written
