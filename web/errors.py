"""The one place where the farm's exception tree becomes HTTP responses."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from farm.errors import FarmError, MissingBlobs, Unauthorized

log = logging.getLogger(__name__)


def _describe(errors: list[dict[str, object]]) -> str:
    parts = []
    for err in errors:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")  # type: ignore[attr-defined]
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def install(app: FastAPI) -> None:
    """Register the handlers."""

    @app.exception_handler(FarmError)
    async def farm_error(_request: Request, exc: FarmError) -> JSONResponse:
        headers = {"WWW-Authenticate": 'Bearer realm="farm"'} if isinstance(exc, Unauthorized) else None
        body: dict[str, object] = {"detail": exc.message}
        if isinstance(exc, MissingBlobs):
            body["missing"] = exc.missing
        if exc.status_code >= 500:
            log.warning("request failed: %s", exc.message)
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = jsonable_encoder(exc.errors())
        return JSONResponse({"detail": _describe(errors), "errors": errors}, status_code=422)
