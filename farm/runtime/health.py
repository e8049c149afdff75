"""The scheduler process's health endpoint (``FARM_SCHEDULER_HEALTH_HOST``/``_PORT``), for Kubernetes probes.

* ``GET /livez``: 200 while the process does its job: a leader whose dispatch loop turned within ``stuck_s``, or a
  standby that still follows the lease. 503 otherwise: a hung loop is restarted by the kubelet.
* ``GET /readyz``: 200 when it leads with a fresh loop or follows the lease as a standby; 503 while it starts,
  stops, or lost its lease. The body is JSON: role, generation and the loop's age.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Health:
    """What the probes see."""

    role: str  # starting, standby, leader, stopping, lost, stopped
    generation: int | None
    loop_age_s: float | None  # leader: seconds since the dispatch loop last turned
    seen_age_s: float  # seconds since the lease was last read (standby) or renewed (leader)

    def live(self, stuck_s: float) -> bool:
        """False when the process should be restarted."""
        if self.role == "leader":
            return self.loop_age_s is None or self.loop_age_s < stuck_s
        return self.role != "standby" or self.seen_age_s < stuck_s

    def ready(self, stale_s: float) -> bool:
        """True when it leads with a fresh loop, or follows the lease as a standby."""
        if self.role == "leader":
            return self.loop_age_s is not None and self.loop_age_s < stale_s
        return self.role == "standby" and self.seen_age_s < stale_s


class HealthServer:
    """A tiny HTTP server in a daemon thread; ``close()`` stops it."""

    def __init__(
        self, host: str, port: int, probe: Callable[[], Health], stuck_s: float = 60.0, stale_s: float = 30.0
    ) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                health = probe()
                if self.path.split("?")[0] == "/livez":
                    ok = health.live(outer.stuck_s)
                elif self.path.split("?")[0] == "/readyz":
                    ok = health.ready(outer.stale_s)
                else:
                    self.send_error(404, "try /livez or /readyz")
                    return
                body = json.dumps({"ok": ok, **asdict(health)}).encode()
                self.send_response(200 if ok else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("health: " + format, *args)

        self.stuck_s, self.stale_s = stuck_s, stale_s
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, name="health", daemon=True)
        self._thread.start()
        log.info("scheduler health on http://%s:%d/livez and /readyz", host, self.port)

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
