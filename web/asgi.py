"""ASGI entry point of an API-only process: cluster-mode replicas, or several uvicorn workers on one machine::

    PROMETHEUS_MULTIPROC_DIR=/run/farm-metrics uvicorn --factory web.asgi:create_app_from_env --workers 4

Settings come from the environment (``FARM_*``, e.g. ``FARM_DATABASE_URL=postgresql+psycopg://…``). Migrations are
applied at start, under a lock, so workers and replicas starting together apply them once. No scheduler runs
here: ``/metrics`` reads worker and node states from the heartbeat rows the scheduler writes.
"""

from __future__ import annotations

from fastapi import FastAPI

from farm.clock import SystemClock
from farm.db.engine import Database
from farm.settings import ServerSettings
from storage.factory import make_store, store_config
from web.app import create_app
from web.deps import AppContext
from web.metrics import CountingStore


def create_app_from_env() -> FastAPI:
    """The API app wired from the environment (``uvicorn --factory``)."""
    settings = ServerSettings()
    db = Database(settings.db_url)
    db.migrate()
    store = CountingStore(make_store(store_config(settings)))
    return create_app(AppContext(settings=settings, db=db, store=store, clock=SystemClock()))
