"""The embedded farm: API + scheduler + local Ray + worker actors + SQLite + local store, wired in one place."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from farm.clock import SystemClock
from farm.db.engine import Database
from farm.lifecycle import attempts
from farm.runtime import side_work
from farm.runtime.api import wire_app
from farm.runtime.bootstrap import bootstrap, offer_to_cli
from farm.runtime.scheduler import dispatch_config
from farm.runtime.serving import GracefulServer, configure_logging, uvicorn_config
from farm.settings import ServerSettings
from scheduler import heartbeat, leader, ray_runtime
from scheduler.dispatcher import Dispatcher
from scheduler.fairshare import FairShare
from scheduler.nodes import NodeView
from scheduler.pool import WorkerPool
from scheduler.store_errors import StoreErrors
from storage.base import ObjectStore
from storage.factory import make_store, store_config
from storage.grants import secrets_withheld
from web import metrics
from web.monitor.workers import pool_snapshot

log = logging.getLogger(__name__)


def slot_layout(slots: int | None, cpus: int) -> list[dict[str, float]]:
    """One slot using every core by default (measured faster than several single-thread slots)."""
    count = slots or 1
    per_slot = max(1, cpus // count)
    return [{"cpu": float(per_slot)} for _ in range(count)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedFarm:
    """Start with ``start()``, stop with ``stop()``; ``url`` and ``admin_token`` tell clients where to go."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        #: Ray's session folder (short: its socket paths must fit in 107 bytes); removed when the farm stops.
        self.ray_temp = Path("/tmp") / f"farm-ray-{os.getpid()}"  # noqa: S108
        self.clock = SystemClock()
        self.data_dir = settings.data_dir
        self.db = Database(settings.db_url)
        self.store: ObjectStore | None = None
        self.pool: WorkerPool | None = None
        self.dispatcher: Dispatcher | None = None
        self.admin_token = ""
        self.port = settings.port or free_port()
        self.url = f"http://{settings.host}:{self.port}"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: uvicorn.Server | None = None
        # Issue 14: one scheduler per database, even with two `farm server` on one data dir (scheduler.leader).
        self.meter = leader.LoopMeter(self.clock)
        lease = leader.Lease(self.db, self.clock, leader.identity(), settings.scheduler_lease_s)
        self.elector = leader.Elector(lease, self.meter)
        self.fenced: leader.FencedDatabase | None = None

    def _lead(self) -> leader.FencedDatabase:
        """Wait for the scheduler lease (at once unless another live scheduler holds it) and keep it; the
        dispatcher writes through the returned database, fenced by the lease."""
        generation = self.elector.wait_for_leadership(self._stop)
        if generation is None:
            raise RuntimeError("stopped while waiting for the scheduler lease")
        self.fenced = leader.FencedDatabase(self.db, self.elector.lease, generation)
        self.elector.keep(on_lost=self._lost)
        return self.fenced

    def _lost(self) -> None:
        log.error("another scheduler took this farm's lease: dispatching stops (the API keeps serving)")
        self._stop.set()
        if self.dispatcher is not None:
            self.dispatcher.wake.set()

    def prepare(self) -> None:
        """Database, store, admin token, Ray and warm workers; everything but serving HTTP."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.db.migrate()
        cfg = store_config(self.settings)
        self.store = make_store(cfg)
        self.admin_token = bootstrap(self.db, self.clock, self.data_dir, self.settings.bootstrap_admin_token)
        cpus = os.cpu_count() or 1
        layout = slot_layout(self.settings.slots, cpus)
        ray_cpus = max(cpus, int(sum(s["cpu"] for s in layout)))
        with secrets_withheld():  # issue 15: Ray's workers and their Blender processes inherit no store key
            ray_runtime.start_embedded(ray_cpus, self.settings.ray_object_store_bytes, self.ray_temp)

        self.pool = WorkerPool(side_work.worker_configs(self.settings, cfg))
        for i, resources in enumerate(layout):
            self.pool.add_slot(f"{socket.gethostname()}/slot-{i}", resources)
        started = time.monotonic()
        self.pool.warm()
        log.info("%d render slot(s) warm in %.1fs", len(layout), time.monotonic() - started)
        # Reliability (issue 5): leases and the per-job node blocklist, from the settings.
        self.dispatcher = Dispatcher(
            self._lead(),
            self.pool,
            self.clock,
            dispatch_config(self.settings),
            FairShare(self.settings.fair_share_window_s, self.settings.starvation_s),
        )
        store_errors = StoreErrors(self.db, self.clock)  # issue 15: workers' and media tasks' failed store calls
        side_work.attach(
            self.dispatcher,
            self.db,
            self.clock,
            self.settings,
            self.store,
            self.store,
            cfg,
            store_errors,
            self.meter,
            self._stop,
        )
        self.dispatcher.recover()

    def _start_scheduler(self) -> None:
        assert self.dispatcher is not None
        thread = threading.Thread(target=self.dispatcher.run, args=(self._stop,), name="dispatcher", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _app(self) -> FastAPI:
        assert self.store is not None
        notify = self.dispatcher.wake.set if self.dispatcher is not None else None
        app = wire_app(self.settings, self.db, self.store, self.clock, notify)
        pool = self.pool
        if pool is not None:
            # Worker and node states for /metrics straight from the in-process pool (fresher than heartbeats).
            view = self.dispatcher.node_view if self.dispatcher is not None else NodeView()
            metrics.use_worker_source(app, lambda: heartbeat.snapshot(pool, view.states()))
            # The monitor's Workers page reads the live slots too (web.monitor.workers).
            app.state.worker_snapshot = lambda: pool_snapshot(pool, self.dispatcher)
        return app

    def _uvicorn(self) -> uvicorn.Server:
        # On SIGTERM the scheduler stops handing out chunks at once, before HTTP drains (issue 14).
        self._server = GracefulServer(uvicorn_config(self._app(), self.settings, self.port), self._stop_dispatching)
        return self._server

    def _stop_dispatching(self) -> None:
        self._stop.set()
        if self.dispatcher is not None:
            self.dispatcher.wake.set()

    def start(self) -> EmbeddedFarm:
        """Everything, with HTTP served from a background thread (tests, ``farm demo``)."""
        self.prepare()
        self._start_scheduler()
        server = self._uvicorn()
        thread = threading.Thread(target=server.run, name="api", daemon=True)
        thread.start()
        self._threads.append(thread)
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError(f"the API did not start on {self.url}")
            time.sleep(0.05)
        if self.settings.write_cli_config:
            log.info("%s", offer_to_cli(self.url, self.admin_token, self.data_dir))
        return self

    def serve_forever(self) -> None:
        """``farm server``: HTTP in this thread until interrupted."""
        configure_logging(self.settings)
        self.prepare()
        self._start_scheduler()
        if self.settings.write_cli_config:
            log.info("%s", offer_to_cli(self.url, self.admin_token, self.data_dir))
        try:
            self._uvicorn().run()
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop serving, stop the scheduler, stop Blender and Ray."""
        if self._server is not None:
            self._server.should_exit = True
        self._stop.set()
        if self.dispatcher is not None:
            self.dispatcher.wake.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None
        self._hand_over()
        ray_runtime.shutdown()
        shutil.rmtree(self.ray_temp, ignore_errors=True)  # Ray's sockets, logs and session files: nothing left in /tmp
        self.db.dispose()

    def _hand_over(self) -> None:
        """With the workers stopped: requeue the chunks they held (not lost: the next scheduler renders them),
        then release the scheduler lease so a standby or the next start need not wait it out."""
        if self.fenced is not None and not self.elector.lost.is_set():
            try:
                with self.fenced.session() as s:
                    requeued = attempts.recover(s, self.clock.now())
                if requeued:
                    log.info("stopping: %d running chunk(s) requeued", requeued)
            except Exception:
                log.warning("running chunks not requeued now; the next start requeues them", exc_info=True)
        self.elector.release()
        self.fenced = None

    def __enter__(self) -> EmbeddedFarm:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
