"""Serving HTTP with uvicorn the farm's way: a stop that is quick and tells the rest of the process at once.

On SIGTERM/SIGINT uvicorn stops accepting, then waits for open requests; a monitor tab's event stream is one of
them. ``GracefulServer`` runs the process's own stop first (the embedded scheduler stops handing out chunks at
once), marks the app as closing (event streams end within one interval, ``web.monitor.routes.stream``) and gives
what is still open ``FARM_SHUTDOWN_GRACE_S`` before uvicorn cancels it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn

from farm.settings import ServerSettings

log = logging.getLogger(__name__)


def configure_logging(settings: ServerSettings) -> None:
    """The server processes' log format at ``FARM_LOG_LEVEL``."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )


def uvicorn_config(app: Any, settings: ServerSettings, port: int, **extra: Any) -> uvicorn.Config:
    """uvicorn's configuration: our logging (uvicorn's own access log is off: ``web.access_log`` writes one
    without secrets), and a short grace for open requests on stop."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_s)),
        **extra,
    )


class GracefulServer(uvicorn.Server):
    """uvicorn's server; on a stop signal it first calls ``on_stop`` and marks the app as closing."""

    def __init__(self, config: uvicorn.Config, on_stop: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self.on_stop = on_stop

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """A stop signal: stop the rest of the process, end event streams, then uvicorn's own shutdown."""
        mark_closing(self.config.app)
        if self.on_stop is not None and not self.should_exit:
            try:
                self.on_stop()
            except Exception:
                log.exception("stopping on signal %d failed", sig)
        super().handle_exit(sig, frame)
        # uvicorn re-raises the signal once it has shut down, for the handler it replaced; in the embedded farm
        # and the scheduler that is Ray's, which ends the process at once, before the farm has stopped its
        # workers, requeued their chunks and released the scheduler lease. The signal is handled here: the
        # caller returns normally and stops the rest (a second signal still ends the process at once).
        self._captured_signals.clear()


def mark_closing(app: Any) -> None:
    """Tell the app's event streams to end now (``app.state.closing``)."""
    state = getattr(app, "state", None)
    if state is not None:
        state.closing = True
