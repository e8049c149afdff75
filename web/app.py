"""Builds the FastAPI application from collaborators handed in by the entry point."""

from __future__ import annotations

from fastapi import FastAPI

from farm import __version__
from farm.contract import Health
from web import errors, metrics, monitor
from web.deps import AppContext, Ctx
from web.routes_admin import router as admin_router
from web.routes_api import router as api_router
from web.routes_assets import router as assets_router
from web.routes_control import router as control_router


def create_app(ctx: AppContext) -> FastAPI:
    """The API app; ``ctx`` carries the database, store, clock and settings."""
    app = FastAPI(
        title="Render farm",
        version=__version__,
        description="Shared Blender render farm: submit jobs, follow them, download frames, read usage.",
    )
    app.state.ctx = ctx
    errors.install(app)
    metrics.install(app)  # /metrics and request latency

    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz() -> Health:
        """Liveness: the process answers (no token needed)."""
        return Health(status="ok", version=__version__)

    @app.get("/readyz", response_model=Health, tags=["health"])
    def readyz(ctx: Ctx) -> Health:
        """Readiness: the database answers (no token needed)."""
        from sqlalchemy import text

        with ctx.db.session() as s:
            s.execute(text("SELECT 1"))
        return Health(status="ready", version=__version__)

    app.include_router(api_router)
    app.include_router(control_router)
    monitor.install(app)
    app.include_router(assets_router)
    app.include_router(admin_router)
    return app
