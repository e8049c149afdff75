"""Export the API contract: ``python -m web.openapi docs/openapi.json`` (checked in; a test compares)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of the app, built without starting anything."""
    from fastapi import FastAPI

    from farm.clock import SystemClock
    from farm.db.engine import Database
    from farm.settings import ServerSettings
    from storage.local import LocalDirStore
    from web.app import create_app
    from web.deps import AppContext

    settings = ServerSettings(data_dir=Path("/nonexistent"))
    ctx = AppContext(
        settings=settings, db=Database("sqlite://"), store=LocalDirStore.__new__(LocalDirStore), clock=SystemClock()
    )
    app: FastAPI = create_app(ctx)
    return app.openapi()


def render() -> str:
    """The document as stable, reviewable text."""
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


def main() -> None:
    """Write the document to the path given (default docs/openapi.json)."""
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/openapi.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render())


if __name__ == "__main__":
    main()
