"""``farm migrate``: bring the database to this release's schema, once per release (the chart's hook Job).

Cluster pods start with ``FARM_MIGRATE_ON_START=false`` and wait for it (``farm.db.schema``), so the schema only
changes here, before the new release's pods start and never under the old one's by surprise.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from farm.cli import output as out


def migrate(
    timeout: Annotated[
        float, typer.Option("--timeout", min=0, help="seconds to wait for the database to accept connections")
    ] = 300.0,
) -> None:
    """Apply the database migrations of this release (FARM_DATABASE_URL), then exit."""
    from farm.db.engine import Database
    from farm.db.schema import SchemaMismatch, run_migrations
    from farm.settings import ServerSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ServerSettings()
    db = Database(settings.db_url)
    try:
        status = run_migrations(db, timeout)
    except (SchemaMismatch, TimeoutError) as exc:
        out.error(str(exc))
        raise typer.Exit(1) from exc
    finally:
        db.dispose()
    out.line(f"database schema at {', '.join(sorted(status.current))}")


def register(app: typer.Typer) -> None:
    """Add ``migrate`` to the ``farm`` command."""
    app.command("migrate")(migrate)
