"""``farm api``: the cluster-mode API process, wired in one place. No Ray here.

It serves ``/api/v1`` (and whatever else ``web.app`` mounts) from the shared database and object store; the
scheduler (``farm scheduler``) is another process and picks up what the API records (new jobs, cancel, pause)
on its next loop turn. Run as many replicas as needed.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from farm.clock import Clock, SystemClock
from farm.db.engine import Database
from farm.db.schema import prepare_schema
from farm.runtime.bootstrap import bootstrap
from farm.runtime.secret import with_secret
from farm.runtime.serving import GracefulServer, configure_logging, uvicorn_config
from farm.settings import ServerSettings
from storage.base import ObjectStore
from storage.factory import make_store, store_config
from web import metrics
from web.app import create_app
from web.deps import AppContext

log = logging.getLogger(__name__)


def wire_app(
    settings: ServerSettings,
    db: Database,
    store: ObjectStore,
    clock: Clock,
    notify: Callable[[], None] | None = None,
) -> FastAPI:
    """The one wiring of the API app, for every entry point: the embedded farm, ``farm api``, uvicorn workers
    (``web.asgi``) and the tests. ``notify`` wakes an in-process scheduler (embedded mode)."""
    counted = metrics.CountingStore(store)  # farm_storage_errors_total
    settings = with_secret(settings)  # FARM_SECRET_KEY, or the install's own (farm.runtime.secret)
    return create_app(AppContext(settings=settings, db=db, store=counted, clock=clock, notify=notify or _nobody))


def _nobody() -> None:
    """No scheduler in this process: it picks up what the API recorded on its next loop turn."""


def build_app(settings: ServerSettings) -> FastAPI:
    """Migrate the database, make sure the admin token exists, and build the app."""
    clock = SystemClock()
    db = Database(settings.db_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    prepare_schema(db, settings.migrate_on_start)
    bootstrap(db, clock, settings.data_dir, settings.bootstrap_admin_token)
    return wire_app(settings, db, make_store(store_config(settings)), clock)


def app_from_env() -> FastAPI:
    """The API app from the environment (``FARM_*``), for API-only processes started by uvicorn. The bootstrap
    token is left to ``farm api`` or the embedded farm, so several workers starting together do not race on it."""
    settings = ServerSettings()
    configure_logging(settings)
    db = Database(settings.db_url)
    prepare_schema(db, settings.migrate_on_start)
    return wire_app(settings, db, make_store(store_config(settings)), SystemClock())


def serve_api(settings: ServerSettings) -> None:
    """Serve HTTP until interrupted: in this process, or in ``FARM_API_WORKERS`` uvicorn worker processes."""
    configure_logging(settings)
    if settings.api_workers > 1:
        serve_workers(settings)
        return
    app = build_app(settings)
    log.info("api: serving on http://%s:%d", settings.host, settings.port)
    GracefulServer(uvicorn_config(app, settings, settings.port)).run()


def serve_workers(settings: ServerSettings) -> None:
    """Several uvicorn workers (``web.asgi``): this process migrates and bootstraps once, then supervises them.
    They read the same settings from the environment; their per-process metrics are summed through
    ``PROMETHEUS_MULTIPROC_DIR`` (a fresh folder in the data dir unless set)."""
    db = Database(settings.db_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    prepare_schema(db, settings.migrate_on_start)
    bootstrap(db, SystemClock(), settings.data_dir, settings.bootstrap_admin_token)
    db.dispose()
    # The workers build their settings from the environment: pass on what the command line changed.
    os.environ.update(
        FARM_MODE=settings.mode.value,
        FARM_DATA_DIR=str(settings.data_dir),
        FARM_HOST=settings.host,
        FARM_PORT=str(settings.port),
    )
    if not os.environ.get(metrics.MULTIPROC_ENV):
        directory = settings.data_dir / "api-metrics"
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        os.environ[metrics.MULTIPROC_ENV] = str(directory)
    log.info("api: serving on http://%s:%d with %d workers", settings.host, settings.port, settings.api_workers)
    uvicorn.run(
        "web.asgi:create_app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.api_workers,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_s)),
    )
