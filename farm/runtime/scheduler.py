"""``farm scheduler --ray-address HOST:PORT``: the cluster-mode scheduler, wired in one place.

It joins an existing Ray cluster, then waits for the scheduler lease (``scheduler.leader``: exactly one scheduler
dispatches per database; the others stand by and take over within a lease when the leader dies). As leader it
follows the Ray nodes (``scheduler.nodes``), requeues what the previous scheduler left in flight
(``Dispatcher.recover``) and runs the dispatch loop, every write fenced by its lease generation, until SIGTERM or
SIGINT. On a signal it stops handing out chunks at once, stops its workers, requeues their chunks and releases the
lease so a standby carries on without waiting. A health endpoint answers the kubelet's probes
(``farm.runtime.health``). The API runs as its own processes (``farm api``) on the same database.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from farm.clock import SystemClock
from farm.db.engine import Database
from farm.db.schema import prepare_schema
from farm.lifecycle import attempts
from farm.runtime import side_work
from farm.runtime.bootstrap import bootstrap
from farm.runtime.health import Health, HealthServer
from farm.runtime.serving import configure_logging
from farm.settings import ServerSettings
from scheduler import demand, leader, ray_runtime
from scheduler.dispatcher import DispatchConfig, Dispatcher
from scheduler.fairshare import FairShare
from scheduler.pool import WorkerPool
from scheduler.store_errors import StoreErrors
from storage.counting import CountingStore
from storage.factory import make_store, store_config

log = logging.getLogger(__name__)


class SchedulerProcess:
    """``join()``, ``lead(stop)`` (waits for the lease), ``dispatcher.run(stop)``; then ``stop_leading()`` and
    ``close()``."""

    def __init__(self, settings: ServerSettings, ray_address: str) -> None:
        self.settings = settings
        self.ray_address = ray_address
        self.clock = SystemClock()
        self.db = Database(settings.db_url)
        self.pool: WorkerPool | None = None
        self.dispatcher: Dispatcher | None = None
        self.meter = leader.LoopMeter(self.clock)
        lease = leader.Lease(self.db, self.clock, leader.identity(), settings.scheduler_lease_s)
        self.elector = leader.Elector(lease, self.meter)
        self.role = "starting"
        self.fenced: leader.FencedDatabase | None = None

    def join(self) -> None:
        """Database and Ray, before waiting for the lease: a standby that takes over only builds its workers."""
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        prepare_schema(self.db, settings.migrate_on_start)
        bootstrap(self.db, self.clock, settings.data_dir, settings.bootstrap_admin_token)
        ray_runtime.connect(self.ray_address)

    def lead(self, stop: threading.Event) -> Dispatcher | None:
        """Wait for the lease, then build the workers and the dispatcher; None when stopped while waiting."""
        self.role = "standby"
        generation = self.elector.wait_for_leadership(stop)
        if generation is None:
            return None
        self.role = "leader"
        self.fenced = leader.FencedDatabase(self.db, self.elector.lease, generation)
        self.elector.keep(on_lost=lambda: self._lost(stop))
        return self._build(self.fenced, stop)

    def _lost(self, stop: threading.Event) -> None:
        self.role = "lost"
        stop.set()
        if self.dispatcher is not None:
            self.dispatcher.wake.set()

    def _build(self, db: Database, stop: threading.Event) -> Dispatcher:
        settings = self.settings
        cfg = store_config(settings)
        store_errors = StoreErrors(db, self.clock)  # issue 15: the scheduler's and the workers' failed store calls
        backend = make_store(cfg)
        store = CountingStore(backend, store_errors.own)

        self.pool = WorkerPool(side_work.worker_configs(settings, cfg))
        tracker, autoscaler = demand.follow_nodes(db, self.clock, self.pool, settings)  # issue 15: autoscaling
        dispatcher = Dispatcher(
            db,
            self.pool,
            self.clock,
            dispatch_config(settings),
            FairShare(settings.fair_share_window_s, settings.starvation_s),
            nodes=tracker,
        )
        side_work.attach(dispatcher, db, self.clock, settings, store, backend, cfg, store_errors, self.meter, stop)
        if autoscaler is not None:
            dispatcher.periodic.append(autoscaler)  # demand to Ray's autoscaler, idle slots released
        dispatcher.recover()
        self.dispatcher = dispatcher
        log.info("scheduler ready on Ray at %s", self.ray_address)
        return dispatcher

    def prepare(self) -> Dispatcher:
        """``join()`` and ``lead()`` without a stop signal (tests and scripts)."""
        self.join()
        dispatcher = self.lead(threading.Event())
        assert dispatcher is not None
        return dispatcher

    def health(self) -> Health:
        """For the probes: role, generation, the loop's and the lease's ages."""
        mono = self.clock.monotonic()
        return Health(
            role=self.role,
            generation=self.elector.generation,
            loop_age_s=self.meter.age(),
            seen_age_s=mono - self.elector.last_seen,
        )

    def stop_leading(self) -> int:
        """Stop every worker, requeue the chunks they held (while the lease is still ours), release the lease.
        Returns the chunks requeued."""
        self.role = "stopping"
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None
        requeued = 0
        if self.fenced is not None and not self.elector.lost.is_set():
            try:
                with self.fenced.session() as s:
                    requeued = attempts.recover(s, self.clock.now())
            except Exception:
                log.warning("running chunks not requeued now; the next scheduler requeues them", exc_info=True)
        self.elector.release()
        self.role = "stopped"
        return requeued

    def close(self) -> None:
        """Leave Ray, close the database."""
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None
        ray_runtime.shutdown()
        self.db.dispose()


def dispatch_config(settings: ServerSettings) -> DispatchConfig:
    """The dispatcher's configuration from the process's settings (embedded and cluster mode alike)."""
    return DispatchConfig(
        interval_s=settings.dispatch_interval_s,
        task_timeout_s=settings.task_timeout_s,
        blocklist_after=settings.blocklist_after,
        bundle_max=settings.bundle_max,
        bundle_s=settings.bundle_s,
    )


def run_scheduler(settings: ServerSettings, ray_address: str) -> None:
    """Run until SIGTERM/SIGINT: stand by or lead; on a signal stop dispatching at once and hand over."""
    configure_logging(settings)
    stop = threading.Event()
    process = SchedulerProcess(settings, ray_address)

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping the scheduler", signum)
        stop.set()
        if process.dispatcher is not None:
            process.dispatcher.wake.set()

    def _catch_signals() -> None:
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)

    _catch_signals()
    health = None
    if settings.scheduler_health_port:
        try:
            health = HealthServer(settings.scheduler_health_host, settings.scheduler_health_port, process.health)
        except OSError as exc:  # the probes will say so; scheduling does not depend on them
            log.error(
                "scheduler health endpoint not served on %s:%d: %s",
                settings.scheduler_health_host,
                settings.scheduler_health_port,
                exc,
            )
    try:
        process.join()
        _catch_signals()  # again: connecting to Ray installed its own SIGTERM handler, which exits at once
        dispatcher = process.lead(stop)
        if dispatcher is not None and not stop.is_set():
            dispatcher.run(stop)
        if process.role != "lost":
            requeued = process.stop_leading()
            log.info("scheduler stopped; %d running chunk(s) requeued", requeued)
    finally:
        process.close()
        if health is not None:
            health.close()
    if process.role == "lost":
        raise SystemExit("the scheduler lost its lease to another scheduler; restart to stand by")
