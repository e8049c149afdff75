"""The one place where the farm's exception tree becomes HTTP responses (JSON for the API), and where a coded error
becomes text in a page viewer's language (``localized``: the monitor's error pages)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError, StatementError

from farm.contract import ErrorOut, ValidationErrorOut
from farm.errors import STATUS_PARAMS, DatabaseUnavailable, FarmError, MissingBlobs, Unauthorized, ValidationFailed
from web.i18n import DEFAULT_LOCALE, Translator, catalogue

log = logging.getLogger(__name__)

_ERROR = {"model": ErrorOut}
#: The error answers every API route may give, documented in the OpenAPI document (the routers take it).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {**_ERROR, "description": "well-formed but unusable input, e.g. a NUL character in the path or query"},
    401: {**_ERROR, "description": "no API token, or an unknown, revoked or expired one"},
    403: {**_ERROR, "description": "the token's role may not do this"},
    404: {**_ERROR, "description": "absent, or another company's"},
    409: {**_ERROR, "description": "the request disagrees with the current state (e.g. blobs not uploaded yet)"},
    413: {**_ERROR, "description": "a request body or upload over this farm's limit"},
    422: {"model": ValidationErrorOut, "description": "input that breaks a documented rule"},
    429: {**_ERROR, "description": "a company limit stops this now (queued chunks, submit rate)"},
    503: {**_ERROR, "description": "the database or the object store is busy or unreachable (Retry-After)"},
}


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
        retry_after = getattr(exc, "retry_after_s", None)
        if retry_after is not None:  # busy database, submit rate: when to try again
            headers = {"Retry-After": str(retry_after)}
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

    @app.exception_handler(OperationalError)
    async def database_down(request: Request, exc: OperationalError) -> JSONResponse:
        # Locked past the busy timeout, or unreachable. Only the driver's first line is logged: the statement and
        # its parameters (a token hash, names) stay out of the log.
        first = str(exc.orig).splitlines()[0][:200] if exc.orig is not None else type(exc).__name__
        log.warning("database unavailable during %s %s: %s", request.method, request.url.path, first)
        return await farm_error(
            request, DatabaseUnavailable("the database is busy or unreachable right now; retry in a few seconds")
        )

    @app.exception_handler(DataError)
    async def unstorable(request: Request, exc: DataError) -> JSONResponse:
        return await farm_error(request, _unstorable())

    @app.exception_handler(StatementError)
    async def statement(request: Request, exc: StatementError) -> JSONResponse:
        if isinstance(exc.orig, OverflowError | ValueError):  # SQLite: an integer past 64 bits, a NUL byte
            return await farm_error(request, _unstorable())
        raise exc


def _unstorable() -> FarmError:
    return ValidationFailed(
        "a value in the request is out of range or holds characters the database cannot store (e.g. a NUL byte, "
        "or a number beyond 2**63); fix the value and retry"
    )


def localized(t: Translator, exc: FarmError) -> str | None:
    """``exc`` in ``t``'s language: its English message for English, else its code's message (``error.<code>``
    in ``messages.toml``) with the parameters filled in, statuses by their translated names. None when the error
    has no code, or this catalogue cannot say it (the page then explains in general and shows the English)."""
    key = f"error.{exc.code}"
    if not exc.code or key not in catalogue():
        return None
    if t.code == DEFAULT_LOCALE:
        return exc.message
    values: dict[str, object] = {}
    for name, value in exc.params.items():
        status_key = f"status.{value}"
        values[name] = t(status_key) if name in STATUS_PARAMS and status_key in catalogue() else value
    try:
        return t(key, **values)
    except (KeyError, IndexError, ValueError):  # a translation naming a parameter this error lacks
        log.warning("message %s does not fit the parameters of the error %r", key, exc.message)
        return None
