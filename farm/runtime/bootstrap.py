"""First start of a farm: the default company and the platform-admin token."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sqlalchemy import select

from farm.client import config as clientconfig
from farm.clock import Clock
from farm.contract import Role
from farm.db.engine import Database
from farm.db.models import ApiToken
from farm.services.auth import DEFAULT_COMPANY, create_token, ensure_company, hash_token

log = logging.getLogger(__name__)


def write_secret(path: Path, value: str) -> None:
    """Write a file only its owner can read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    os.chmod(path, 0o600)


def bootstrap(db: Database, clock: Clock, data_dir: Path, token: str | None = None) -> str:
    """Ensure the default company and an admin token; returns the token (kept in ``admin.token``)."""
    token_file = data_dir / "admin.token"
    existing = token_file.read_text().strip() if token_file.exists() else None
    wanted = token or existing
    with db.session() as s:
        company = ensure_company(s, DEFAULT_COMPANY, clock.now())
        if wanted and s.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(wanted))) is not None:
            value = wanted
        else:
            value, _ = create_token(
                s, company, Role.PLATFORM_ADMIN, clock.now(), name="bootstrap admin", token=wanted
            )
            log.info("created the platform-admin token (in %s)", token_file)
    if existing != value:
        write_secret(token_file, value)
    return value


def offer_to_cli(url: str, token: str) -> bool:
    """Put the token into the user's CLI config when none is set there, so ``farm`` works at once."""
    if os.environ.get("FARM_TOKEN") or clientconfig.read_file().get("token"):
        return False
    clientconfig.write_file(url, token)
    return True
