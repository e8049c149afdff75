"""The node view (``scheduler.nodes``): one reading of Ray's node table, one naming rule and one answer to "alive?"
for the tracker (slots), the dispatcher (node loss) and the heartbeat (/metrics, Workers page). No Ray here: the
node table comes from a fake lister."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from farm.services.nodeview import NodeState
from scheduler.heartbeat import snapshot
from scheduler.nodes import NodeTracker, NodeView


def ray_node(
    node_id: str, host: str = "", cpus: int = 1, gpus: int = 0, alive: bool = True, port: int = 1, death: int = 0
) -> dict[str, Any]:
    """A row as ``ray.nodes()`` returns it (the keys the farm reads)."""
    resources = {"CPU": float(cpus), **({"GPU": float(gpus)} if gpus else {})}
    row: dict[str, Any] = {"NodeID": node_id, "Alive": alive, "NodeManagerPort": port, "Resources": resources}
    if host:
        row["NodeManagerHostname"] = host
    if death:
        row["DeathReason"] = death
    return row


@dataclass
class FakeSlot:
    """What the tracker creates and the heartbeat reads of a slot."""

    name: str
    resources: dict[str, float]
    node: str = ""
    node_id: str = ""
    task_id: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


class FakePool:
    def __init__(self) -> None:
        self.slots: list[FakeSlot] = []
        self.node_alive = lambda _node_id: True

    def add_slot(self, name: str, resources: dict[str, float], node: str = "", node_id: str = "") -> FakeSlot:
        slot = FakeSlot(name, dict(resources), node, node_id)
        self.slots.append(slot)
        return slot


class Table:
    """A node lister whose table the test edits, and which can be made to fail."""

    def __init__(self, *rows: dict[str, Any]) -> None:
        self.rows = list(rows)
        self.calls = 0
        self.broken = False

    def __call__(self) -> list[dict[str, Any]]:
        self.calls += 1
        if self.broken:
            raise ConnectionError("GCS unreachable")
        return [dict(r) for r in self.rows]


def test_nodes_are_named_by_host_then_port_and_keep_their_name():
    table = Table(ray_node("a" * 28, "box", port=7001), ray_node("b" * 28, "box", port=7002), ray_node("c" * 28))
    view = NodeView(table)
    assert [(n.name, n.alive) for n in view.refresh()] == [("box", True), ("box:7002", True), ("c" * 12, True)]
    # The first "box" leaves: the second keeps its name (attempts and blocklists refer to it); a newcomer on the
    # same host takes the free plain name, and the dead node keeps its own.
    table.rows[0]["Alive"] = False
    table.rows.append(ray_node("d" * 28, "box", port=7003))
    names = {n.node_id[0]: (n.name, n.alive) for n in view.refresh()}
    assert names == {"a": ("box", False), "b": ("box:7002", True), "c": ("c" * 12, True), "d": ("box", True)}


def test_a_dead_node_never_takes_a_live_nodes_name():
    # Ray lists the dead node first; the live one still gets the plain host name.
    view = NodeView(Table(ray_node("old", "box", alive=False, death=2, port=7001), ray_node("new", "box", port=7002)))
    assert {n.node_id: n.name for n in view.refresh()} == {"old": "box:7001", "new": "box"}


def test_alive_answers_from_the_last_read_or_asks_now():
    table = Table(ray_node("n1", "gpu-1"))
    view = NodeView(table)
    assert not view.alive("n1")  # nothing read yet
    assert view.alive("n1", fresh=True) and table.calls == 1
    table.rows[0]["Alive"] = False
    assert view.alive("n1")  # the last read
    assert not view.alive("n1", fresh=True)
    table.rows[0]["Alive"] = True
    table.broken = True
    assert not view.alive("n1", fresh=True)  # Ray cannot be asked: the last read stands
    with pytest.raises(ConnectionError):
        view.refresh()


def test_the_lost_window_counts_from_the_first_read_that_saw_the_node_dead():
    clock = [0.0]
    table = Table(ray_node("a", "gpu-1"), ray_node("d", "cpu-2", alive=False, death=1))  # d: `ray stop`
    view = NodeView(table, monotonic=lambda: clock[0], lost_window_s=600)
    assert view.states() == [NodeState("a", "gpu-1", True)]
    table.rows.append(ray_node("e", "gpu-3", alive=False, death=2))
    assert not view.alive("e", fresh=True)  # the dispatcher's read, not the heartbeat's, saw it first
    clock[0] = 600.0
    assert view.states() == [NodeState("a", "gpu-1", True), NodeState("e", "gpu-3", False)]
    clock[0] = 601.0
    assert view.states() == [NodeState("a", "gpu-1", True)]


def test_tracker_heartbeat_and_pool_share_one_view():
    """Two Ray nodes on one host: the slots, the heartbeat's node rows and the pool's answer agree."""
    table = Table(ray_node("n1", "box", cpus=2, port=7001), ray_node("n2", "box", cpus=1, gpus=1, port=7002))
    pool = FakePool()
    tracker = NodeTracker(pool, NodeView(table), interval_s=0)  # type: ignore[arg-type]
    assert tracker.sync() == []
    assert [(s.name, s.node, s.node_id) for s in pool.slots] == [
        ("box/cpu", "box", "n1"),
        ("box:7002/gpu-0", "box:7002", "n2"),
        ("box:7002/cpu", "box:7002", "n2"),
    ]
    pool.slots[1].task_id = "t-1"
    snap = snapshot(pool, tracker.view.states())  # type: ignore[arg-type]
    assert snap.nodes == (NodeState("n1", "box", True), NodeState("n2", "box:7002", True))
    assert {s.node for s in pool.slots} == {n.name for n in snap.nodes}
    assert [w.state for w in snap.workers] == ["idle", "busy", "idle"]
    # n2 dies: the heartbeat sees it at once (its slot lost), the pool too; the tracker hands its slots back.
    table.rows[1]["Alive"] = False
    snap = snapshot(pool, tracker.view.states())  # type: ignore[arg-type]
    assert snap.nodes[1] == NodeState("n2", "box:7002", False)
    assert [(w.name, w.state) for w in snap.workers] == [
        ("box/cpu", "idle"),
        ("box:7002/gpu-0", "lost"),
        ("box:7002/cpu", "lost"),
    ]
    assert not pool.node_alive("n2") and pool.node_alive("n1")
    assert [s.name for s in tracker.sync()] == ["box:7002/gpu-0", "box:7002/cpu"]
    assert set(tracker.nodes) == {"n1"}


def test_tracker_keeps_its_slots_when_ray_cannot_be_asked():
    table = Table(ray_node("n1", "head", cpus=2))
    pool = FakePool()
    tracker = NodeTracker(pool, NodeView(table), interval_s=0)  # type: ignore[arg-type]
    tracker.sync()
    table.broken = True
    assert tracker.sync() == [] and [s.name for s in pool.slots] == ["head/cpu"]
    assert tracker.alive("n1")


def test_tracker_reads_at_most_once_per_interval():
    clock = [0.0]
    table = Table(ray_node("n1", "head"))
    tracker = NodeTracker(FakePool(), NodeView(table), interval_s=1.0, monotonic=lambda: clock[0])  # type: ignore[arg-type]
    tracker.sync()
    tracker.sync()
    assert table.calls == 1
    clock[0] = 1.0
    tracker.sync()
    assert table.calls == 2
    tracker.sync(force=True)
    assert table.calls == 3
