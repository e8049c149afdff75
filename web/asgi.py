"""ASGI entry point of an API-only process: cluster-mode replicas, or several uvicorn workers on one machine::

    PROMETHEUS_MULTIPROC_DIR=/run/farm-metrics uvicorn --factory web.asgi:create_app_from_env --workers 4

Settings come from the environment (``FARM_*``, e.g. ``FARM_DATABASE_URL=postgresql+psycopg://…``). Migrations are
applied at start, under a lock, so workers and replicas starting together apply them once. No scheduler runs
here: ``/metrics`` reads worker and node states from the heartbeat rows the scheduler writes.
"""

from __future__ import annotations

from fastapi import FastAPI


def create_app_from_env() -> FastAPI:
    """The API app wired from the environment (``uvicorn --factory``): ``farm.runtime.api.app_from_env``."""
    from farm.runtime.api import app_from_env

    return app_from_env()
