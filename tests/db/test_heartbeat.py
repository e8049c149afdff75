"""The scheduler heartbeat rows: written from a pool, read back by API replicas, expiring into lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from farm.db.engine import Database
from farm.services import nodeview
from farm.services.nodeview import NodeState, Snapshot, WorkerState
from scheduler.nodes import NodeView

pytest_plugins = ["tests.db.backends"]  # db_url (SQLite and PostgreSQL), postgres


def test_rows_round_trip_and_expire_into_lost(db_url):
    db = Database(db_url)
    db.migrate()
    try:
        now = datetime.now(UTC)
        snap = Snapshot(
            workers=(WorkerState("n1/slot-0", "n1", "busy", "task-1"), WorkerState("n1/slot-1", "n1", "idle")),
            nodes=(NodeState("id-1", "n1", True), NodeState("id-2", "n2", False)),
        )
        nodeview.write(db, snap, now)
        assert nodeview.read(db, now + timedelta(seconds=5)) == snap
        stale = nodeview.read(db, now + timedelta(seconds=nodeview.LEASE_S + 1))
        assert {w.state for w in stale.workers} == {"lost"}
        assert {n.alive for n in stale.nodes} == {False}
        # A later beat without a slot removes its row.
        nodeview.write(db, Snapshot(workers=snap.workers[:1], nodes=snap.nodes[:1]), now)
        assert nodeview.read(db, now) == Snapshot(workers=snap.workers[:1], nodes=snap.nodes[:1])
    finally:
        db.dispose()


def test_lost_nodes_are_reported_for_a_while_planned_shutdowns_never():
    clock = [0.0]
    table = [
        {"NodeID": "a", "NodeManagerHostname": "gpu-1", "Alive": True},
        {"NodeID": "b", "NodeManagerHostname": "gpu-2", "Alive": False, "DeathReason": 2},  # unexpected
        {"NodeID": "c", "NodeManagerHostname": "cpu-1", "Alive": False, "DeathReason": 4},  # autoscaler, idle
    ]
    nodes = NodeView(list_nodes=lambda: table, monotonic=lambda: clock[0], lost_window_s=600)
    assert nodes.states() == [NodeState("a", "gpu-1", True), NodeState("b", "gpu-2", False)]
    clock[0] = 601.0
    assert nodes.states() == [NodeState("a", "gpu-1", True)]
