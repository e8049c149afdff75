"""The web job monitor: server-rendered pages, live updates over Server-Sent Events, browser sessions."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from web.monitor import bulk, job_forms, logs, resubmit, streams
from web.monitor.routes import router

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def install(app: FastAPI) -> None:
    """Add the monitor's pages and its static files (served without a session) to ``app``."""
    app.include_router(bulk.router)  # before the job routes: /jobs/bulk is no job
    app.include_router(resubmit.router)  # before /jobs/{id}/{action}, which would take it for an action
    app.include_router(job_forms.router)  # issue 16: chunk actions, priority (before /jobs/{id}/{action} too)
    app.include_router(router)
    app.include_router(streams.router)
    app.include_router(logs.router)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    app.add_api_route("/favicon.ico", favicon, methods=["GET"], include_in_schema=False)


async def favicon() -> FileResponse:
    """The icon browsers ask for on their own (pages also link ``/static/favicon.svg``)."""
    return FileResponse(
        STATIC_DIR / "favicon.svg", media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"}
    )


__all__ = ["install", "router"]
