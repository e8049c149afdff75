"""The web job monitor: server-rendered pages, live updates over Server-Sent Events, browser sessions."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from web.monitor.routes import router

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def install(app: FastAPI) -> None:
    """Add the monitor's pages and its static files (served without a session) to ``app``."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")


__all__ = ["install", "router"]
