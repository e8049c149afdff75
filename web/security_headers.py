"""Security headers on every answer (issue 17): the monitor runs no inline script and may not be framed, so a
page cannot be clickjacked nor made to run injected markup; nothing is sniffed into another type; no URL (job ids,
next= targets) leaks to other sites in a Referer.

FastAPI's own ``/docs`` and ``/redoc`` pages need an inline script and their CDN: they keep every header except the
script rules.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The monitor's pages: scripts and styles from the farm itself only; images also as data:/blob: (thumbnails).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
#: The interactive API docs (FastAPI's pages): still never framed.
DOCS_CSP = "frame-ancestors 'none'; object-src 'none'; base-uri 'none'"
DOCS = ("/docs", "/redoc")

COMMON = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class SecurityHeaders:
    """ASGI middleware (not Starlette's BaseHTTPMiddleware: it would buffer the event streams)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        csp = DOCS_CSP if path.startswith(DOCS) else CSP

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in COMMON if k not in present]
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", csp.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
