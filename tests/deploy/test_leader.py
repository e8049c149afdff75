"""Scheduler leader election and fencing (``scheduler.leader``) on SQLite and a real PostgreSQL: one leader, a
standby that waits while the lease is renewed and takes over when it is not, a released lease taken at once, and a
leader that lost its lease unable to commit anything. The metrics every process exports come from the same row."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from farm.clock import SystemClock
from farm.db.engine import Database
from farm.db.models import Company
from scheduler import leader
from tests.db.backends import db_url, postgres  # noqa: F401 - fixtures
from web.metrics import FarmCollector, render

LEASE_S = 1.0


@pytest.fixture()
def db(db_url: str):  # noqa: F811 - the fixture imported above
    database = Database(db_url)
    database.migrate()
    yield database
    database.dispose()


def elector(db: Database, name: str, lease_s: float = LEASE_S) -> leader.Elector:
    return leader.Elector(leader.Lease(db, SystemClock(), name, lease_s), leader.LoopMeter(SystemClock()))


def wait_in_thread(candidate: leader.Elector, stop: threading.Event) -> dict[str, float | int | None]:
    out: dict[str, float | int | None] = {}

    def run() -> None:
        out["generation"] = candidate.wait_for_leadership(stop)
        out["at"] = time.monotonic()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    out["thread"] = id(thread)
    return out


def test_standby_waits_while_the_leader_renews_then_takes_over(db: Database) -> None:
    first, second = elector(db, "a"), elector(db, "b")
    assert first.wait_for_leadership(threading.Event()) == 1
    lost = threading.Event()
    first.keep(on_lost=lost.set)
    stop = threading.Event()
    got = wait_in_thread(second, stop)
    time.sleep(LEASE_S * 3)  # three leases: renewed all along, so the standby must still wait
    assert "generation" not in got, "a standby took over a lease that was being renewed"
    first.stop_keeping()  # the leader hangs or dies: no more renewals
    stopped = time.monotonic()
    deadline = stopped + LEASE_S * 4
    while "generation" not in got and time.monotonic() < deadline:
        time.sleep(0.05)
    assert got.get("generation") == 2
    # A whole lease after the last renewal (at most a renewal interval before the stop), never at once.
    assert LEASE_S * 0.7 <= float(got["at"] or 0) - stopped <= LEASE_S * 3
    # The old leader's renewal now fails: it knows it lost.
    assert first.lease.renew(1, None, 0.0) is False
    view = leader.read(db)
    assert view is not None and view.holder == "b" and view.generation == 2
    stop.set()


def test_a_released_lease_is_taken_at_once(db: Database) -> None:
    first, second = elector(db, "a", lease_s=30.0), elector(db, "b", lease_s=30.0)
    assert first.wait_for_leadership(threading.Event()) == 1
    first.keep(on_lost=lambda: None)
    first.release()
    started = time.monotonic()
    assert second.wait_for_leadership(threading.Event()) == 2
    assert time.monotonic() - started < 2.0


def test_a_leader_that_lost_its_lease_cannot_commit(db: Database) -> None:
    """Fencing: a transaction of the old leader that commits after the takeover is rolled back, whole."""
    old = leader.Lease(db, SystemClock(), "old", LEASE_S)
    assert old.take(None) == 1
    fenced = leader.FencedDatabase(db, old, 1)
    with fenced.session() as s:  # under the lease: commits
        s.add(Company(id="co_before", name="before", created_at=datetime.now(UTC)))
    with pytest.raises(leader.LeadershipLost):
        with fenced.session() as s:
            s.add(Company(id="co_after", name="after", created_at=datetime.now(UTC)))
            seen = leader.read(db)
            assert leader.Lease(db, SystemClock(), "new", LEASE_S).take(seen) == 2  # taken meanwhile
    with db.session() as s:
        names = set(s.scalars(select(Company.name)))
    assert "before" in names and "after" not in names


def test_standbys_racing_for_a_free_lease_make_one_leader(db: Database) -> None:
    stop = threading.Event()
    candidates = [elector(db, f"s{i}") for i in range(3)]
    for candidate in candidates:
        threading.Thread(
            target=lambda c=candidate: c.wait_for_leadership(stop) and c.keep(on_lost=lambda: None), daemon=True
        ).start()
    wait_until = time.monotonic() + 10
    while not any(c.role == "leader" for c in candidates) and time.monotonic() < wait_until:
        time.sleep(0.05)
    time.sleep(LEASE_S * 3)  # the winner renews: nobody else may take over meanwhile
    assert [c.generation for c in candidates if c.role == "leader"] == [1]
    stop.set()
    for candidate in candidates:
        candidate.stop_keeping()


def test_the_leader_stops_when_it_cannot_renew(db: Database) -> None:
    first = elector(db, "a")
    assert first.wait_for_leadership(threading.Event()) == 1
    lost = threading.Event()
    first.keep(on_lost=lost.set)
    assert leader.Lease(db, SystemClock(), "intruder", LEASE_S).take(leader.read(db)) == 2
    assert lost.wait(LEASE_S * 2), "the leader kept dispatching after its lease was taken"
    assert first.role == "lost"


def scrape(db: Database) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = render(FarmCollector(db, SystemClock())).decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def test_scheduler_metrics_come_from_the_lease_row(db: Database) -> None:
    before = scrape(db)
    assert before["farm_scheduler_last_loop_timestamp_seconds"] == [({}, 0.0)]  # no scheduler ever ran
    assert before.get("farm_scheduler_leader", []) == []
    first = elector(db, "host-a/1/abc")
    assert first.wait_for_leadership(threading.Event()) == 1
    assert first.meter is not None
    first.meter()
    time.sleep(0.05)
    first.meter()  # two loop turns: a duration
    assert first.lease.renew(1, first.meter.turned_at, first.meter.seconds)
    after = scrape(db)
    loop_at = after["farm_scheduler_last_loop_timestamp_seconds"][0][1]
    assert abs(loop_at - time.time()) < 5
    assert 0.04 <= after["farm_scheduler_loop_duration_seconds"][0][1] < 1.0
    assert after["farm_scheduler_leader"] == [({"holder": "host-a/1/abc"}, 1.0)]
    assert after["farm_scheduler_lease_generation"][0][1] == 1.0
    first.release()
    released = scrape(db)
    assert released.get("farm_scheduler_leader", []) == []
    assert released["farm_metrics_database_up"] == [({}, 1.0)]


def test_store_probe_tells_a_store_that_answers_from_one_that_does_not(tmp_path: Path) -> None:
    """A real S3 server: up, then its process stopped (connections refused), then back."""
    from storage.s3 import S3Store
    from tests.s3_server import S3ServerProcess
    from web.metrics import StoreProbe

    def exported(probe: StoreProbe) -> list[float]:
        return [s.value for f in probe.families() for s in f.samples if s.name == "farm_metrics_store_up"]

    with S3ServerProcess() as server:
        store = S3Store(server.endpoint, server.access_key, server.secret_key, "bucket", retries=0)
        probe = StoreProbe(store, interval_s=3600)  # probed by hand below, not in the background
        assert probe.probe() is True and exported(probe) == [1.0]
        server.stop()
        assert probe.probe() is False and exported(probe) == [0.0]
        server.start()
        assert probe.probe() is True
