"""``farm admin recover-token``: a new platform-admin token, for whoever holds the farm's data dir (issue 17)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from farm.cli import output as out


def recover_token(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="the farm's data dir (FARM_DATA_DIR of `farm server`)")],
) -> None:
    """Issue a new platform-admin token when every admin token was revoked or lost. Runs on the farm's machine
    (it opens the database: FARM_DATABASE_URL, or the SQLite file in the data dir); no server call."""
    from farm.clock import SystemClock
    from farm.db.engine import Database
    from farm.runtime.bootstrap import recover_admin_token
    from farm.settings import ServerSettings

    settings = ServerSettings(data_dir=data_dir)
    if settings.database_url is None and not (data_dir / "farm.db").exists():
        out.error(f"{data_dir} holds no farm database (farm.db): give the data dir `farm server` uses")
        raise typer.Exit(2)
    db = Database(settings.db_url)
    try:
        token = recover_admin_token(db, SystemClock(), data_dir)
    finally:
        db.dispose()
    out.line(f"new platform-admin token (also saved in {data_dir / 'admin.token'}, readable by you only):")
    out.line(token)
    out.line("use it with: farm login --token … (and revoke tokens you no longer trust: farm admin token list)")


def register(app: typer.Typer) -> None:
    """Add ``recover-token`` to ``farm admin``."""
    app.command("recover-token")(recover_token)
