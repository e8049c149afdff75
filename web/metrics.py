"""Prometheus metrics at ``/metrics``: farm state from the database, request latency from this process.

Two kinds of values, kept apart on purpose:

* **Farm state** (jobs, chunks, queue depth, frames, render seconds, resource-seconds, storage bytes, progress,
  queue wait, budgets, slots in use, the scheduler's and workers' store errors) is read from the database at
  scrape time by ``FarmCollector``. Every API replica and every uvicorn worker therefore reports the same truth,
  and a restart loses nothing. The counters and histograms are running totals kept in the database as things
  happen (``farm.lifecycle.tallies``) and per-job columns, so a scrape never aggregates history: its cost does not
  grow with the frames or the ledger (issue 15; ``bench/metrics.py``). Alert rules take ``max`` over replicas.
* **Per-process values** (``farm_api_request_seconds``, ``farm_storage_errors_total``) are prometheus_client
  metrics. With ``PROMETHEUS_MULTIPROC_DIR`` set (several uvicorn workers; empty the directory before the workers
  start) they live in that directory and every scrape sums all workers' files; without it, in this process.

* **Scheduler health** (``farm_scheduler_*``: the loop's last turn and duration, who leads, the lease) comes from
  the scheduler lease row (``scheduler.leader``), in every mode; ``farm_metrics_database_up`` and
  ``farm_metrics_store_up`` say whether this process reaches the database and the object store.

Workers, slots and nodes come from the scheduler: read from the in-process pool in the embedded farm
(``use_worker_source``), else from the heartbeat rows the scheduler writes (``scheduler.heartbeat``).

The ``route`` label of the latency histogram is the route's template (``/api/v1/jobs/{job_id}``), never the raw
URL, and unknown methods are folded into ``OTHER``, so label cardinality stays bounded whatever clients send.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from farm.clock import Clock, utc
from farm.db.engine import Database
from farm.db.models import Blob, Company, Job, SchedulerLease, Task
from farm.domain.states import JOB_DISPATCHABLE, JobStatus, TaskStatus
from farm.errors import Forbidden
from farm.lifecycle import tallies
from farm.metering import quota
from farm.services.auth import resolve_token
from farm.services.nodeview import NODE_STATES, WORKER_STATES, Snapshot, WorkerState
from farm.services.nodeview import read as read_heartbeat
from storage import counting
from storage.base import ObjectStore
from web.deps import Ctx, bearer

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
RESOURCES = ("cpu", "gpu")
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
STORAGE_OPERATIONS = counting.OPERATIONS

# ``*_created`` series only double the scrape size; the single-process exposition would add them, the multiprocess
# one cannot: leave them out everywhere so both look alike.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Per-process metrics. prometheus_client picks file-backed values at import when PROMETHEUS_MULTIPROC_DIR is set.
PROCESS_REGISTRY = CollectorRegistry()
REQUEST_SECONDS = Histogram(
    "farm_api_request_seconds",
    "API request latency by route template, method and status code.",
    ["route", "method", "status"],
    registry=PROCESS_REGISTRY,
)
STORAGE_ERRORS = Counter(
    "farm_storage_errors",
    "Failed object-store operations in the API processes, by operation (the scheduler's and the workers':"
    " farm_cluster_storage_errors_total).",
    ["operation"],
    registry=PROCESS_REGISTRY,
)
for _operation in STORAGE_OPERATIONS:
    STORAGE_ERRORS.labels(_operation)  # series exist at 0, so rate() works from the first error on

WorkerSource = Callable[[], Snapshot]


# ---- request latency ------------------------------------------------------------------------------------------
class RequestMetrics:
    """ASGI middleware: observes every HTTP request's duration under its route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when the app raises before answering

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            method = str(scope.get("method", "")).upper()
            REQUEST_SECONDS.labels(
                route_template(scope), method if method in HTTP_METHODS else "OTHER", str(status)
            ).observe(time.perf_counter() - started)


def route_template(scope: Scope) -> str:
    """The matched route's path template; ``<unmatched>`` for URLs no route knows (404s of scanners)."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(template) if template else "<unmatched>"


# ---- storage errors -------------------------------------------------------------------------------------------
def CountingStore(inner: ObjectStore) -> counting.CountingStore:
    """``inner`` counting its ``StorageError``s into this process's ``farm_storage_errors_total``."""
    return counting.CountingStore(inner, lambda operation: STORAGE_ERRORS.labels(operation).inc())


# ---- farm state from the database -----------------------------------------------------------------------------
def _histogram(t: tallies.Total, bounds: tuple[float, ...]) -> tuple[list[tuple[str, float]], float]:
    """Buckets and sum of a running histogram (``farm.lifecycle.tallies``)."""
    # ``le`` spelled as prometheus_client spells its own buckets (``1.0``, ``0.25``).
    buckets = [(repr(float(b)), float(v)) for b, v in zip(bounds, t.buckets, strict=True)]
    return [*buckets, ("+Inf", float(t.count))], t.total


def _histograms(
    name: str,
    documentation: str,
    totals: list[tallies.Total],
    bounds: tuple[float, ...],
    company: Callable[[str], str],
    label: str = "",
) -> HistogramMetricFamily:
    """A family of running histograms by company (and the series' ``label``, when it has one)."""
    family = HistogramMetricFamily(name, documentation, labels=["company", label] if label else ["company"])
    for t in totals:
        values = [company(t.company_id), t.label] if label else [company(t.company_id)]
        family.add_metric(values, *_histogram(t, bounds))
    return family


@dataclass(frozen=True)
class FarmCollector:
    """A prometheus_client collector that reads the farm's state from the database at each scrape."""

    db: Database
    clock: Clock
    workers: WorkerSource | None = None
    store: StoreProbe | None = None

    def collect(self) -> Iterator[Metric]:
        """Every farm-state family; when the database fails only ``farm_metrics_database_up 0`` is exported."""
        up = GaugeMetricFamily("farm_metrics_database_up", "1 when this scrape could read the farm database.")
        try:
            with self.db.session() as s:
                families = list(self._from_database(s))
        except Exception:
            log.warning("metrics: the database could not be read", exc_info=True)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        yield from families
        if self.store is not None:
            yield from self.store.families()
        try:
            snap = self.workers() if self.workers is not None else read_heartbeat(self.db, self.clock.now())
        except Exception:
            log.warning("metrics: worker states could not be read", exc_info=True)
        else:
            yield from worker_families(snap)
            yield from self._in_use(snap)

    def _in_use(self, snap: Snapshot) -> Iterator[Metric]:
        """Slots and resources held now by each company's chunks (issue 15), from the scheduler's snapshot."""
        busy = [w for w in snap.workers if w.state == "busy" and w.task_id]
        owners: dict[str, str] = {}
        if busy:
            try:
                with self.db.session() as s:
                    owners = {
                        str(task_id): str(name)
                        for task_id, name in s.execute(
                            select(Task.id, Company.name)
                            .join(Job, Job.id == Task.job_id)
                            .join(Company, Company.id == Job.company_id)
                            .where(Task.id.in_([w.task_id for w in busy]))
                        ).all()
                    }
            except Exception:
                log.warning("metrics: the owners of busy slots could not be read", exc_info=True)
                return
        yield from usage_families(busy, owners)

    def _from_database(self, s: Session) -> Iterator[Metric]:
        # Issue 15: every query here reads the jobs' counters, the running totals (``farm.lifecycle.tallies``) or
        # the live part of the tasks table through its status index: nothing aggregates the frames or the ledger,
        # so a scrape costs the same after years of history.
        now = self.clock.now()
        names = {cid: name for cid, name in s.execute(select(Company.id, Company.name)).all()}

        def company(cid: str) -> str:
            return names.get(cid, cid)

        jobs = GaugeMetricFamily("farm_jobs", "Jobs by company and state.", labels=["company", "state"])
        counts = {
            (c, st): n
            for c, st, n in s.execute(
                select(Job.company_id, Job.status, func.count()).group_by(Job.company_id, Job.status)
            ).all()
        }
        for cid in sorted(names):
            for state in JobStatus:
                jobs.add_metric([company(cid), state.value], float(counts.get((cid, state), 0)))
        yield jobs

        yield self._tasks(s)
        yield self._queue_depth(s, names, company)

        frames = CounterMetricFamily(
            "farm_frames_rendered", "Frames rendered and stored, by company.", labels=["company"]
        )
        frame_counts = {t.company_id: t.count for t in tallies.read(s, tallies.FRAMES_RENDERED)}
        for cid in sorted(set(names) | set(frame_counts)):
            frames.add_metric([company(cid)], float(frame_counts.get(cid, 0)))
        yield frames

        yield _histograms(
            "farm_frame_render_seconds",
            "Render time per frame, by company and device.",
            tallies.read(s, tallies.FRAME_RENDER_SECONDS),
            tallies.FRAME_SECONDS_BUCKETS,
            company,
            label="device",
        )

        resource_seconds = CounterMetricFamily(
            "farm_resource_seconds",
            "Resource-seconds (wall seconds times CPUs or GPUs) from the metering ledger, by company and resource.",
            labels=["company", "resource"],
        )
        used = {(t.company_id, t.label): t.total for t in tallies.read(s, tallies.RESOURCE_SECONDS)}
        for key in sorted(set(used) | {(cid, r) for cid in names for r in RESOURCES}):
            resource_seconds.add_metric([company(key[0]), key[1]], used.get(key, 0.0))
        yield resource_seconds

        cluster_errors = CounterMetricFamily(
            "farm_cluster_storage_errors",
            "Failed object-store operations of the scheduler and the render workers (from the database), by process"
            " and operation.",
            labels=["process", "operation"],
        )
        failed = {(t.company_id, t.label): t.count for t in tallies.read(s, tallies.STORAGE_ERRORS)}
        for key in sorted(set(failed) | {(p, op) for p in ("scheduler", "workers") for op in STORAGE_OPERATIONS}):
            cluster_errors.add_metric(list(key), float(failed.get(key, 0)))
        yield cluster_errors

        storage = GaugeMetricFamily(
            "farm_storage_bytes",
            "Bytes stored per company: uploaded input blobs plus rendered frames.",
            labels=["company"],
        )
        blob_bytes = dict(s.execute(select(Blob.company_id, func.sum(Blob.size)).group_by(Blob.company_id)).all())
        frame_bytes = dict(s.execute(select(Job.company_id, func.sum(Job.frames_bytes)).group_by(Job.company_id)).all())
        for cid in sorted(names):
            storage.add_metric([company(cid)], float(blob_bytes.get(cid) or 0) + float(frame_bytes.get(cid) or 0))
        yield storage

        progress = GaugeMetricFamily(
            "farm_job_last_progress_timestamp_seconds",
            "Unix time an active job last stored a frame (or started, before its first frame).",
            labels=["company", "job"],
        )
        for job_id, cid, started_at, created_at, last_frame in s.execute(
            select(Job.id, Job.company_id, Job.started_at, Job.created_at, Job.last_frame_at)
            .where(Job.status == JobStatus.ACTIVE.value)
            .order_by(Job.id)
        ).all():
            moments = [utc(m) for m in (last_frame, started_at, created_at) if m is not None]
            progress.add_metric([company(cid), job_id], max(moments).timestamp())
        yield progress

        yield _histograms(
            "farm_queue_wait_seconds",
            "Wait of each chunk from becoming runnable (queued, or soft-failed for a retry) to its dispatch, "
            "by company.",
            tallies.read(s, tallies.QUEUE_WAIT_SECONDS),
            tallies.QUEUE_WAIT_BUCKETS,
            company,
        )
        yield _histograms(
            "farm_dispatch_chunks_per_call",
            "Chunks carried by each call the scheduler sends a worker (more than 1: a bundle of short chunks), "
            "by company.",
            tallies.read(s, tallies.CHUNKS_PER_CALL),
            tallies.CHUNKS_PER_CALL_BUCKETS,
            company,
        )

        yield from self._budgets(s, now)
        yield from scheduler_families(s.get(SchedulerLease, "scheduler"), now)

    @staticmethod
    def _tasks(s: Session) -> Metric:
        """Chunks by state: finished ones from the jobs' counters, live ones counted through the status index."""
        tasks = GaugeMetricFamily("farm_tasks", "Chunks (tasks) by state.", labels=["state"])
        finished = {
            TaskStatus.COMPLETED: Job.tasks_completed,
            TaskStatus.FAILED: Job.tasks_failed,
            TaskStatus.CANCELED: Job.tasks_canceled,
        }
        sums = s.execute(select(*(func.coalesce(func.sum(col), 0) for col in finished.values()))).one()
        task_counts: dict[TaskStatus, int] = {st: int(v or 0) for st, v in zip(finished, sums, strict=True)}
        live = [st for st in TaskStatus if st not in finished]
        for status, n in s.execute(
            select(Task.status, func.count()).where(Task.status.in_(live)).group_by(Task.status)
        ).all():
            task_counts[TaskStatus(status)] = int(n)
        for tstate in TaskStatus:
            tasks.add_metric([tstate.value], float(task_counts.get(tstate, 0)))
        return tasks

    @staticmethod
    def _queue_depth(s: Session, names: dict[str, str], company: Callable[[str], str]) -> Metric:
        depth = GaugeMetricFamily(
            "farm_queue_depth",
            "Chunks waiting for a slot, by company and the resource they need.",
            labels=["company", "resource"],
        )
        totals: dict[tuple[str, str], int] = {}
        for cid, settings, n in s.execute(
            select(Job.company_id, Job.settings, Job.tasks_runnable).where(
                Job.status.in_([j.value for j in JOB_DISPATCHABLE]), Job.tasks_runnable > 0
            )
        ).all():
            resource = "gpu" if dict(settings or {}).get("gpu") else "cpu"
            totals[(cid, resource)] = totals.get((cid, resource), 0) + int(n)
        for key in sorted(set(totals) | {(cid, r) for cid in names for r in RESOURCES}):
            depth.add_metric([company(key[0]), key[1]], float(totals.get(key, 0)))
        return depth

    @staticmethod
    def _budgets(s: Session, now: datetime) -> Iterator[Metric]:
        ratio = GaugeMetricFamily(
            "farm_company_budget_used_ratio",
            "Share of the company's monthly resource-hour budget used this month (companies with a budget).",
            labels=["company", "resource"],
        )
        companies = list(
            s.scalars(
                select(Company)
                .where((Company.gpu_hours_budget.is_not(None)) | (Company.cpu_hours_budget.is_not(None)))
                .order_by(Company.name)
            )
        )
        used = quota.month_hours(s, [c.id for c in companies], quota.month_of(now))
        for c in companies:
            for resource in RESOURCES:
                budget = quota.budget_hours(c, resource)
                if budget is None:
                    continue
                hours = used.get((c.id, resource), 0.0)
                ratio.add_metric([c.name, resource], hours / budget if budget > 0 else 1.0)
        yield ratio


def scheduler_families(lease: SchedulerLease | None, now: datetime) -> Iterator[Metric]:
    """``farm_scheduler_*`` from the scheduler lease row (``scheduler.leader``): the same in every process and mode.
    With no scheduler ever started the timestamps are 0, so "no heartbeat for N minutes" alerts at once."""

    def stamp(moment: datetime | None) -> float:
        return utc(moment).timestamp() if moment is not None else 0.0

    yield GaugeMetricFamily(
        "farm_scheduler_last_loop_timestamp_seconds",
        "Unix time the leading scheduler's dispatch loop last turned (as of its last lease renewal).",
        value=stamp(lease.loop_at if lease else None),
    )
    yield GaugeMetricFamily(
        "farm_scheduler_loop_duration_seconds",
        "Duration of the leading scheduler's last dispatch-loop turn, waits included.",
        value=float(lease.loop_seconds) if lease else 0.0,
    )
    yield GaugeMetricFamily(
        "farm_scheduler_lease_renewed_timestamp_seconds",
        "Unix time the leading scheduler last renewed its lease.",
        value=stamp(lease.renewed_at if lease and lease.holder else None),
    )
    yield GaugeMetricFamily(
        "farm_scheduler_lease_generation",
        "Scheduler lease generation: goes up by one at each takeover.",
        value=float(lease.generation) if lease else 0.0,
    )
    leader = GaugeMetricFamily(
        "farm_scheduler_leader",
        "1 for the scheduler holding a live lease (the one that dispatches), 0 when the lease lapsed or was released.",
        labels=["holder"],
    )
    if lease is not None and lease.holder:
        fresh = (now - utc(lease.renewed_at)).total_seconds() <= lease.lease_seconds if lease.renewed_at else False
        leader.add_metric([lease.holder], 1.0 if fresh else 0.0)
    yield leader


class StoreProbe:
    """Whether the object store answers, probed in the background at most every ``interval_s`` (a store that is
    down can take seconds to fail: a scrape never waits for it). Exports ``farm_metrics_store_up``."""

    KEY = "health/probe"
    #: The first scrape waits this long for the first answer, so every process exports the series from the start.
    FIRST_WAIT_S = 2.0

    def __init__(self, store: ObjectStore, interval_s: float = 15.0) -> None:
        self.store = getattr(store, "inner", store)  # not through CountingStore: probes are not API errors
        self.interval_s = interval_s
        self.up: bool | None = None
        self._probed_at = float("-inf")
        self._lock = threading.Lock()
        self._running = False

    def families(self) -> Iterator[Metric]:
        """The last probe's answer, starting a new probe when due."""
        started = self._maybe_probe()
        if self.up is None and started is not None:
            started.join(self.FIRST_WAIT_S)
        if self.up is not None:
            yield GaugeMetricFamily(
                "farm_metrics_store_up", "1 when the object store answered the last probe.", value=float(self.up)
            )

    def _maybe_probe(self) -> threading.Thread | None:
        with self._lock:
            if self._running or time.monotonic() - self._probed_at < self.interval_s:
                return None
            self._running, self._probed_at = True, time.monotonic()
        thread = threading.Thread(target=self.probe, name="store-probe", daemon=True)
        thread.start()
        return thread

    def probe(self) -> bool:
        """Probe now (a stat of a key that need not exist)."""
        try:
            self.store.stat(self.KEY)
            self.up = True
        except Exception:
            log.warning("metrics: the object store did not answer", exc_info=True)
            self.up = False
        finally:
            with self._lock:
                self._running = False
        return self.up


def worker_families(snap: Snapshot) -> Iterator[Metric]:
    """``farm_workers``, ``farm_slot_utilisation`` and ``farm_nodes`` from a scheduler snapshot."""
    workers = GaugeMetricFamily(
        "farm_workers", "Render slots (worker actors) by node and state.", labels=["node", "state"]
    )
    per_node: dict[tuple[str, str], int] = {}
    for w in snap.workers:
        per_node[(w.node, w.state)] = per_node.get((w.node, w.state), 0) + 1
    for node in sorted({w.node for w in snap.workers}):
        for state in WORKER_STATES:
            workers.add_metric([node, state], float(per_node.get((node, state), 0)))
    yield workers

    busy = sum(1 for w in snap.workers if w.state == "busy")
    usable = sum(1 for w in snap.workers if w.state in ("idle", "busy"))
    yield GaugeMetricFamily(
        "farm_slot_utilisation",
        "Busy render slots divided by usable (idle or busy) ones, 0 to 1.",
        value=busy / usable if usable else 0.0,
    )

    nodes = GaugeMetricFamily("farm_nodes", "Ray nodes: alive, or lost (died unexpectedly recently).", labels=["state"])
    alive = sum(1 for n in snap.nodes if n.alive)
    nodes.add_metric([NODE_STATES[0]], float(alive))
    nodes.add_metric([NODE_STATES[1]], float(len(snap.nodes) - alive))
    yield nodes


def usage_families(busy: list[WorkerState], owners: dict[str, str]) -> Iterator[Metric]:
    """``farm_slots_in_use`` and ``farm_resources_in_use`` per company and resource from the busy slots and the
    company each one's chunk belongs to (``owners``: task id -> company name). Resources count as the ledger meters
    them: a GPU slot holds its GPU and the core that feeds it."""
    slots = GaugeMetricFamily(
        "farm_slots_in_use",
        "Render slots running a company's chunks now, by slot kind.",
        labels=["company", "resource"],
    )
    held = GaugeMetricFamily(
        "farm_resources_in_use",
        "CPU cores and GPUs held by a company's running chunks now (as metered), by resource.",
        labels=["company", "resource"],
    )
    counts: dict[tuple[str, str], int] = {}
    amounts: dict[tuple[str, str], float] = {}
    for w in busy:
        company = owners.get(str(w.task_id))
        if company is None:
            continue
        kind = "gpu" if w.gpus > 0 else "cpu"
        counts[(company, kind)] = counts.get((company, kind), 0) + 1
        for resource, amount in (("cpu", w.cpus), ("gpu", w.gpus)):
            amounts[(company, resource)] = amounts.get((company, resource), 0.0) + amount
    for company in sorted({c for c, _ in counts}):
        for resource in RESOURCES:
            slots.add_metric([company, resource], float(counts.get((company, resource), 0)))
            held.add_metric([company, resource], amounts.get((company, resource), 0.0))
    yield slots
    yield held


# ---- exposition -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Exposition:
    """What one scrape exports: per-process metrics (this process, or all workers' files) and farm state."""

    farm: FarmCollector

    def collect(self) -> Iterator[Metric]:
        directory = os.environ.get(MULTIPROC_ENV)
        if directory:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
            yield from registry.collect()
        else:
            yield from PROCESS_REGISTRY.collect()
        yield from self.farm.collect()


def render(farm: FarmCollector) -> bytes:
    """The text exposition of one scrape."""
    return generate_latest(_Exposition(farm))


router = APIRouter()


def check_scraper(request: Request, ctx: Ctx) -> None:
    """/metrics names every company and job: only the scrape token (``FARM_METRICS_TOKEN``) or a platform admin."""
    token = bearer(request)
    expected = ctx.settings.metrics_token
    if token and expected and hmac.compare_digest(token.encode(), expected.encode()):
        return
    with ctx.db.session() as session:
        who = resolve_token(session, token, ctx.clock.now())
    if not who.is_platform_admin:
        raise Forbidden("/metrics is for the farm's Prometheus: use FARM_METRICS_TOKEN or a platform-admin token")


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, ctx: Ctx) -> Response:
    """Prometheus scrape endpoint, for the metrics token or a platform admin."""
    check_scraper(request, ctx)
    source: WorkerSource | None = getattr(request.app.state, "metrics_workers", None)
    probe: StoreProbe | None = getattr(request.app.state, "store_probe", None)
    body = render(FarmCollector(ctx.db, ctx.clock, source, probe))
    return Response(content=body, media_type=CONTENT_TYPE_PLAIN_0_0_4)


def install(app: FastAPI) -> None:
    """Add ``/metrics`` and the request-latency middleware to the app."""
    app.add_middleware(RequestMetrics)
    app.include_router(router)
    ctx = getattr(app.state, "ctx", None)
    if ctx is not None:
        app.state.store_probe = StoreProbe(ctx.store)


def use_worker_source(app: FastAPI, source: WorkerSource) -> None:
    """Read worker, slot and node states from ``source`` (the in-process pool) instead of the heartbeat rows."""
    app.state.metrics_workers = source
