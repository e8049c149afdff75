"""Hostile input refused at the door (issue 17): a NUL character in the path or query (no id, name or filter holds
one, PostgreSQL cannot store or compare one, and letting it through turned hostile requests into 500s), and request
bodies over the farm's limit."""

from __future__ import annotations

import json
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MESSAGE = "the request's path or query holds a NUL character (%00); no farm id, name or filter contains one"


class RefuseNul:
    """ASGI middleware: 400 with a message before any route sees the request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw_path = scope.get("raw_path") or str(scope.get("path", "")).encode()
            query = scope.get("query_string", b"")
            if b"\x00" in unquote_to_bytes(raw_path) or b"\x00" in unquote_to_bytes(query.replace(b"+", b" ")):
                await _answer(send, 400, MESSAGE)
                return
        await self.app(scope, receive, send)


class LimitBody:
    """ASGI middleware: a request body over ``max_bytes`` gets 413 (``FARM_MAX_REQUEST_BYTES``), whether it says its
    length or streams it; blob uploads (``PUT /api/v1/blobs/…``) have their own, larger limit."""

    def __init__(self, app: ASGIApp, max_bytes: int, exempt: tuple[str, ...] = ("/api/v1/blobs/",)) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or (scope.get("method") == "PUT" and path.startswith(self.exempt)):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _answer(send, 413, self._message())
            return
        if declared is not None:
            await self.app(scope, receive, send)  # the server holds the client to the length it declared
            return
        # Streamed without a length: read it here, up to the limit, then hand it on as it came.
        messages: list[Message] = []
        seen = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                await _answer(send, 413, self._message())
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    def _message(self) -> str:
        return (
            f"the request body is over {self.max_bytes:,} bytes, this farm's limit (FARM_MAX_REQUEST_BYTES); a job "
            "with that many files or chunks is too big: split it"
        )


async def _answer(send: Send, status: int, message: str) -> None:
    body = json.dumps({"detail": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
