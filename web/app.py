"""Builds the FastAPI application from collaborators handed in by the entry point."""

from __future__ import annotations

from fastapi import FastAPI

from farm import __version__
from farm.contract import Health
from web import errors, library_pages, metrics, monitor
from web.access_log import AccessLog
from web.deps import AppContext, Ctx
from web.input_guard import LimitBody, RefuseNul
from web.routes_admin import router as admin_router
from web.routes_api import router as api_router
from web.routes_assets import router as assets_router
from web.routes_control import router as control_router
from web.routes_library import router as library_router
from web.routes_pipeline import router as pipeline_router
from web.security_headers import SecurityHeaders


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
    app.add_middleware(AccessLog)  # one structured line per request, no tokens (web.access_log)
    app.add_middleware(SecurityHeaders)  # CSP without inline script, never framed, nosniff (web.security_headers)
    app.add_middleware(RefuseNul)  # 400 for a NUL in the path or query (web.input_guard)
    app.add_middleware(LimitBody, max_bytes=ctx.settings.max_request_bytes)  # 413 above FARM_MAX_REQUEST_BYTES

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
    app.include_router(library_router)  # issue 20: the common asset library, the operator's report
    app.include_router(library_pages.router)  # issue 20: the library and report pages of the monitor
    app.include_router(pipeline_router)  # issue 19: resubmit, presets, webhooks
    return app
