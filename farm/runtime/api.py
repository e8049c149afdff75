"""``farm api``: the cluster-mode API process, wired in one place. No Ray here.

It serves ``/api/v1`` (and whatever else ``web.app`` mounts) from the shared database and object store; the
scheduler (``farm scheduler``) is another process and picks up what the API records (new jobs, cancel, pause)
on its next loop turn. Run as many replicas as needed.
"""

from __future__ import annotations

import logging

import uvicorn
from fastapi import FastAPI

from farm.clock import SystemClock
from farm.db.engine import Database
from farm.runtime.bootstrap import bootstrap
from farm.settings import ServerSettings
from storage.factory import make_store, store_config
from web import metrics
from web.app import create_app
from web.deps import AppContext

log = logging.getLogger(__name__)


def build_app(settings: ServerSettings) -> FastAPI:
    """Migrate the database, make sure the admin token exists, and build the app."""
    clock = SystemClock()
    db = Database(settings.db_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db.migrate()
    bootstrap(db, clock, settings.data_dir, settings.bootstrap_admin_token)
    store = metrics.CountingStore(make_store(store_config(settings)))
    return create_app(AppContext(settings=settings, db=db, store=store, clock=clock))


def serve_api(settings: ServerSettings) -> None:
    """Serve HTTP until interrupted."""
    app = build_app(settings)
    log.info("api: serving on http://%s:%d", settings.host, settings.port)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)
