"""``farm api``: the cluster-mode API process, wired in one place. No Ray here.

It serves ``/api/v1`` (and whatever else ``web.app`` mounts) from the shared database and object store; the
scheduler (``farm scheduler``) is another process and picks up what the API records (new jobs, cancel, pause)
on its next loop turn. Run as many replicas as needed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from farm.clock import Clock, SystemClock
from farm.db.engine import Database
from farm.runtime.bootstrap import bootstrap
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
    return create_app(AppContext(settings=settings, db=db, store=counted, clock=clock, notify=notify or _nobody))


def _nobody() -> None:
    """No scheduler in this process: it picks up what the API recorded on its next loop turn."""


def build_app(settings: ServerSettings) -> FastAPI:
    """Migrate the database, make sure the admin token exists, and build the app."""
    clock = SystemClock()
    db = Database(settings.db_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db.migrate()
    bootstrap(db, clock, settings.data_dir, settings.bootstrap_admin_token)
    return wire_app(settings, db, make_store(store_config(settings)), clock)


def app_from_env() -> FastAPI:
    """The API app from the environment (``FARM_*``), for API-only processes started by uvicorn. The bootstrap
    token is left to ``farm api`` or the embedded farm, so several workers starting together do not race on it."""
    settings = ServerSettings()
    db = Database(settings.db_url)
    db.migrate()
    return wire_app(settings, db, make_store(store_config(settings)), SystemClock())


def serve_api(settings: ServerSettings) -> None:
    """Serve HTTP until interrupted."""
    app = build_app(settings)
    log.info("api: serving on http://%s:%d", settings.host, settings.port)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)
