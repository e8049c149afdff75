"""``farm scheduler --ray-address HOST:PORT``: the cluster-mode scheduler, wired in one place.

It joins an existing Ray cluster, follows its nodes (``scheduler.nodes``: slots per node from the node's
resources), requeues what the previous scheduler left in flight (``Dispatcher.recover``), and runs the dispatch
loop until SIGTERM or SIGINT. The API runs as its own processes (``farm api``) on the same database; there is
exactly one scheduler per database.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from farm.clock import SystemClock
from farm.db.engine import Database
from farm.media.preview import PreviewMaker
from farm.metering.storage_usage import StorageSampler
from farm.runtime.bootstrap import bootstrap
from farm.settings import ServerSettings
from scheduler import ray_runtime
from scheduler.dispatcher import DispatchConfig, Dispatcher
from scheduler.fairshare import FairShare
from scheduler.nodes import NodeTracker
from scheduler.pool import WorkerPool
from storage.factory import make_store, store_config
from workers.actor import WorkerConfig

log = logging.getLogger(__name__)


class SchedulerProcess:
    """``prepare()`` then ``run(stop)``; ``close()`` stops the workers and leaves Ray."""

    def __init__(self, settings: ServerSettings, ray_address: str) -> None:
        self.settings = settings
        self.ray_address = ray_address
        self.clock = SystemClock()
        self.db = Database(settings.db_url)
        self.pool: WorkerPool | None = None
        self.dispatcher: Dispatcher | None = None

    def prepare(self) -> Dispatcher:
        """Database, Ray, node tracking and the dispatcher, with in-flight work recovered."""
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.db.migrate()
        bootstrap(self.db, self.clock, settings.data_dir, settings.bootstrap_admin_token)
        cfg = store_config(settings)
        store = make_store(cfg)
        ray_runtime.connect(self.ray_address)

        def make_config(name: str, resources: dict[str, float]) -> WorkerConfig:
            return WorkerConfig(
                name=name,
                store=cfg,
                cache_dir=str(settings.cache_dir),
                cache_bytes=settings.worker_cache_bytes,
                work_dir=str(settings.data_dir / "work"),
                resources=resources,
                renderer=settings.renderer,
            )

        self.pool = WorkerPool(make_config)
        dispatcher = Dispatcher(
            self.db,
            self.pool,
            self.clock,
            dispatch_config(settings),
            FairShare(settings.fair_share_window_s, settings.starvation_s),
            nodes=NodeTracker(self.pool),
        )
        dispatcher.on_job_completed = PreviewMaker(self.db, cfg)
        dispatcher.periodic.append(StorageSampler(self.db, store, self.clock, settings.storage_sample_interval_s))
        dispatcher.recover()
        self.dispatcher = dispatcher
        log.info("scheduler ready on Ray at %s", self.ray_address)
        return dispatcher

    def close(self) -> None:
        """Stop Blender in every slot, leave Ray, close the database."""
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
    )


def run_scheduler(settings: ServerSettings, ray_address: str) -> None:
    """Run until SIGTERM/SIGINT."""
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping the scheduler", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    process = SchedulerProcess(settings, ray_address)
    try:
        process.prepare().run(stop)
    finally:
        process.close()
