"""Exactly one active scheduler: a lease row in the database, with fencing. Works on PostgreSQL and SQLite alike.

The row ``scheduler_lease`` names the holder, a ``generation`` (raised by each takeover) and a ``beat`` (raised by
each renewal). No wall clocks are compared across machines:

* The **leader** renews every ``lease_s / 4``. If it cannot renew (its row was taken, or the database does not
  answer) for ``SELF_FENCE`` of a lease, measured on its own monotonic clock from the start of its last successful
  renewal, it stops dispatching: by then a standby may be about to take over.
* A **standby** reads the row; when holder, generation and beat have not changed for a whole lease on *its*
  monotonic clock, it takes over with a conditional update (``generation + 1`` where the row is still what it saw).
  A released row (holder empty: the leader stopped cleanly) is taken at once.
* **Fencing**: every transaction of the leader's dispatcher commits only if the row still carries its generation
  (``FencedDatabase``). The check runs after the transaction's writes are flushed, so it holds a lock: SQLite's one
  write lock, or a PostgreSQL ``FOR SHARE`` row lock that a takeover has to wait for. A leader that lost its lease
  can therefore not commit a single change, even before it notices.

The leader also stores how its loop fares (``loop_at``, ``loop_seconds``); every process exports that as
``farm_scheduler_*`` metrics (``web.metrics``), so a dead scheduler is told apart from dead render nodes.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from farm.clock import Clock
from farm.db.engine import Database, is_postgresql
from farm.db.models import SchedulerLease
from farm.errors import FarmError

log = logging.getLogger(__name__)

ROW = "scheduler"
#: The leader stops dispatching when it could not renew for this share of a lease.
SELF_FENCE = 0.75


class LeadershipLost(FarmError):
    """This scheduler's lease was taken over (or could not be renewed): it must not change anything any more."""


def identity() -> str:
    """Who holds the lease: host, process and a random tag (a restarted process is a new holder)."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class LeaseView:
    """The lease row as read."""

    holder: str
    generation: int
    beat: int
    renewed_at: datetime | None = None
    loop_at: datetime | None = None
    loop_seconds: float = 0.0
    lease_seconds: float = 0.0

    @property
    def mark(self) -> tuple[str, int, int]:
        """What must stay unchanged for a whole lease before a standby may take over."""
        return (self.holder, self.generation, self.beat)


def read(db: Database) -> LeaseView | None:
    """The lease row, or None when no scheduler ever ran on this database."""
    with db.session() as s:
        row = s.get(SchedulerLease, ROW)
        if row is None:
            return None
        return LeaseView(
            row.holder,
            row.generation,
            row.beat,
            row.renewed_at,
            row.loop_at,
            row.loop_seconds,
            row.lease_seconds,
        )


class Lease:
    """The database side of the election; each call is one short transaction."""

    def __init__(self, db: Database, clock: Clock, holder: str, lease_s: float) -> None:
        self.db = db
        self.clock = clock
        self.holder = holder
        self.lease_s = lease_s

    def take(self, seen: LeaseView | None) -> int | None:
        """Take the lease if the row is still what was ``seen``; the new generation, or None when someone else
        was faster."""
        now = self.clock.now()
        try:
            with self.db.session() as s:
                if seen is None:
                    s.execute(
                        insert(SchedulerLease).values(
                            name=ROW,
                            holder=self.holder,
                            generation=1,
                            beat=0,
                            renewed_at=now,
                            loop_seconds=0.0,
                            lease_seconds=self.lease_s,
                        )
                    )
                    return 1
                taken = s.execute(
                    update(SchedulerLease)
                    .where(
                        SchedulerLease.name == ROW,
                        SchedulerLease.holder == seen.holder,
                        SchedulerLease.generation == seen.generation,
                        SchedulerLease.beat == seen.beat,
                    )
                    .values(
                        holder=self.holder,
                        generation=seen.generation + 1,
                        beat=0,
                        renewed_at=now,
                        lease_seconds=self.lease_s,
                    )
                )
                return seen.generation + 1 if _rowcount(taken) == 1 else None
        except IntegrityError:
            return None  # another standby inserted the first row at the same moment

    def renew(self, generation: int, loop_at: datetime | None, loop_seconds: float) -> bool:
        """Renew (and record the loop's last turn); False when the lease is no longer ours."""
        values: dict[str, Any] = {"beat": SchedulerLease.beat + 1, "renewed_at": self.clock.now()}
        if loop_at is not None:
            values.update(loop_at=loop_at, loop_seconds=loop_seconds)
        with self.db.session() as s:
            done = s.execute(
                update(SchedulerLease)
                .where(
                    SchedulerLease.name == ROW,
                    SchedulerLease.holder == self.holder,
                    SchedulerLease.generation == generation,
                )
                .values(**values)
            )
            return _rowcount(done) == 1

    def release(self, generation: int) -> bool:
        """Give the lease up (clean stop) so a standby takes over at once; True when it was still ours."""
        with self.db.session() as s:
            done = s.execute(
                update(SchedulerLease)
                .where(
                    SchedulerLease.name == ROW,
                    SchedulerLease.holder == self.holder,
                    SchedulerLease.generation == generation,
                )
                .values(holder="", beat=SchedulerLease.beat + 1, renewed_at=self.clock.now())
            )
            return _rowcount(done) == 1

    def check(self, s: Session, generation: int) -> None:
        """Raise ``LeadershipLost`` unless the row still carries ``generation`` and this holder (fencing).

        On PostgreSQL the row is read ``FOR SHARE``: a takeover waits until this transaction ends."""
        query = select(SchedulerLease.holder, SchedulerLease.generation).where(SchedulerLease.name == ROW)
        if is_postgresql(s.get_bind()):
            query = query.with_for_update(read=True)
        row = s.execute(query).one_or_none()
        if row is None or row.holder != self.holder or row.generation != generation:
            raise LeadershipLost(f"scheduler {self.holder} (generation {generation}) no longer holds the lease")


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


class FencedDatabase(Database):
    """The same database, but a transaction commits only while the lease is still this scheduler's."""

    def __init__(self, inner: Database, lease: Lease, generation: int) -> None:
        self.url = inner.url
        self.engine = inner.engine
        self.lease = lease
        self.generation = generation
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        event.listen(self._factory, "before_commit", self._fence)

    def _fence(self, s: Session) -> None:
        s.flush()  # the writes first: they take the lock that keeps the row stable until the commit
        self.lease.check(s, self.generation)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction that commits only under this scheduler's lease."""
        with self._factory() as s, s.begin():
            yield s

    def dispose(self) -> None:
        """The engine belongs to the inner database."""


class LoopMeter:
    """A periodic hook of the dispatch loop: when the loop last turned and how long a turn took."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.turned_at: datetime | None = None
        self.turned_mono: float | None = None
        self.seconds = 0.0

    def __call__(self) -> None:
        mono = self.clock.monotonic()
        if self.turned_mono is not None:
            self.seconds = mono - self.turned_mono
        self.turned_mono, self.turned_at = mono, self.clock.now()

    def age(self) -> float | None:
        """Seconds since the loop last turned (None before its first turn)."""
        return None if self.turned_mono is None else self.clock.monotonic() - self.turned_mono


class Elector:
    """Waits for the lease (standby), then keeps it (leader) from a thread of its own until stopped or lost."""

    def __init__(
        self,
        lease: Lease,
        meter: LoopMeter | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lease = lease
        self.meter = meter
        self.monotonic = monotonic
        self.generation: int | None = None
        self.role = "standby"
        self.last_seen = monotonic()  # the standby's last successful read, the leader's last renewal
        self.lost = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_lost: Callable[[], None] | None = None

    @property
    def lease_s(self) -> float:
        return self.lease.lease_s

    def wait_for_leadership(self, stop: threading.Event) -> int | None:
        """Block until this process leads (its generation) or ``stop`` is set (None)."""
        seen: tuple[str, int, int] | None = None
        since = self.monotonic()
        poll = min(1.0, self.lease_s / 5)
        announced = False
        while not stop.is_set():
            try:
                view = read(self.lease.db)
                self.last_seen = self.monotonic()
                if view is None or not view.holder:
                    generation = self.lease.take(view)
                elif seen != view.mark:
                    seen, since, generation = view.mark, self.monotonic(), None
                    if not announced:
                        log.info("standby: %s leads (generation %d); waiting", view.holder, view.generation)
                        announced = True
                elif self.monotonic() - since >= self.lease_s:
                    log.warning(
                        "standby: %s stopped renewing its lease for %.0fs; taking over", view.holder, self.lease_s
                    )
                    generation = self.lease.take(view)
                else:
                    generation = None
            except Exception:
                log.warning("standby: the lease could not be read; retrying", exc_info=True)
                generation = None
            if generation is not None:
                self.generation, self.role = generation, "leader"
                self.last_seen = self.monotonic()
                log.info("scheduler %s leads (generation %d)", self.lease.holder, generation)
                return generation
            stop.wait(poll)
        return None

    def keep(self, on_lost: Callable[[], None]) -> None:
        """Renew from a thread until ``stop_keeping``; call ``on_lost`` once if the lease is lost or unsure."""
        self._on_lost = on_lost
        self._thread = threading.Thread(target=self._renew_loop, name="scheduler-lease", daemon=True)
        self._thread.start()

    def _renew_loop(self) -> None:
        assert self.generation is not None
        interval = self.lease_s / 4
        renewed_from = self.monotonic()
        while not self._done.wait(interval):
            started = self.monotonic()
            try:
                meter = self.meter
                ok = self.lease.renew(
                    self.generation,
                    meter.turned_at if meter else None,
                    meter.seconds if meter else 0.0,
                )
            except Exception:
                log.warning("the scheduler lease could not be renewed", exc_info=True)
                ok = None
            if ok:
                renewed_from = started
                self.last_seen = self.monotonic()
                continue
            if ok is False or self.monotonic() - renewed_from >= self.lease_s * SELF_FENCE:
                why = "taken over" if ok is False else "not renewed in time"
                log.error("scheduler lease %s (generation %d): stopping dispatch", why, self.generation)
                self._lose()
                return

    def _lose(self) -> None:
        self.role = "lost"
        self.lost.set()
        if self._on_lost is not None:
            self._on_lost()

    def stop_keeping(self) -> None:
        """Stop renewing (before a clean release)."""
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=self.lease_s)

    def release(self) -> None:
        """Stop renewing and give the lease up, so a standby takes over without waiting out a lease."""
        self.stop_keeping()
        if self.generation is not None and not self.lost.is_set():
            try:
                if self.lease.release(self.generation):
                    log.info("scheduler lease released (generation %d)", self.generation)
            except Exception:
                log.warning("the scheduler lease could not be released; a standby waits it out", exc_info=True)
        self.role = "stopped"
