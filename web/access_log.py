"""One structured log line per HTTP request (logger ``farm.access``), with nothing secret in it.

Each line is a JSON object: method, path, route template, status, duration in milliseconds, response bytes and
the client address. The query string, headers and cookies are never logged: tokens travel in the
``Authorization`` header, the session cookie, and for downloads in signed query parameters. A path segment that
looks like a farm token (``farm_…``) is masked too, in case a client put one where it does not belong.
"""

from __future__ import annotations

import json
import logging
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.metrics import route_template

log = logging.getLogger("farm.access")

_TOKENISH = re.compile(r"farm_[A-Za-z0-9_\-]{8,}")


def safe_path(path: str) -> str:
    """The request path with anything token-like masked (the query string is never passed in)."""
    return _TOKENISH.sub("farm_***", path)[:300]


class AccessLog:
    """ASGI middleware: logs each HTTP request once it has been answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, sent = 500, 0

        async def noting(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, noting)
        finally:
            client = scope.get("client")
            log.info(
                "%s",
                json.dumps(
                    {
                        "method": str(scope.get("method", ""))[:16],
                        "path": safe_path(str(scope.get("path", ""))),
                        "route": route_template(scope),
                        "status": status,
                        "ms": round((time.perf_counter() - started) * 1000, 1),
                        "bytes": sent,
                        "client": client[0] if client else "",
                    },
                    separators=(",", ":"),
                ),
            )
