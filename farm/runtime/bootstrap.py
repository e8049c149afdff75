"""First start of a farm: the default company and the platform-admin token."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from farm.client import config as clientconfig
from farm.clock import Clock
from farm.contract import Role
from farm.db.engine import Database, is_postgresql
from farm.db.models import ApiToken, Company
from farm.services.auth import DEFAULT_COMPANY, create_token, ensure_company, hash_token

log = logging.getLogger(__name__)


def write_secret(path: Path, value: str) -> None:
    """Write a file only its owner can read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    os.chmod(path, 0o600)


#: PostgreSQL advisory lock key of the first start (another constant than the migrations' lock).
BOOTSTRAP_LOCK_KEY = 0x6661726E


def first_start_lock(s: Session) -> None:
    """Processes starting together on an empty database (API replicas, the scheduler) bootstrap one after the
    other: the second finds the default company and the token the first made, instead of inserting them again.

    PostgreSQL: a transaction-scoped advisory lock; its later statements see what the first committed. SQLite: the
    one write lock, taken before reading (a no-op update)."""
    if is_postgresql(s.get_bind()):
        s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": BOOTSTRAP_LOCK_KEY})
    else:
        s.execute(update(Company).where(Company.id == "").values(name=Company.name))


def bootstrap(db: Database, clock: Clock, data_dir: Path, token: str | None = None) -> str:
    """Ensure the default company and an admin token; returns the token (kept in ``admin.token``)."""
    token_file = data_dir / "admin.token"
    existing = token_file.read_text().strip() if token_file.exists() else None
    wanted = token or existing
    with db.session() as s:
        first_start_lock(s)
        company = ensure_company(s, DEFAULT_COMPANY, clock.now())
        row = s.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(wanted))) if wanted else None
        if wanted and row is not None:
            value = wanted
            if row.revoked_at is not None:  # revoked on purpose: never revived, but say the way back
                log.warning(
                    "the platform-admin token in %s was revoked; to get a new one, run on this machine: "
                    "farm admin recover-token --data-dir %s",
                    token_file,
                    data_dir,
                )
        else:
            value, _ = create_token(s, company, Role.PLATFORM_ADMIN, clock.now(), name="bootstrap admin", token=wanted)
            log.info("created the platform-admin token (in %s)", token_file)
    if existing != value:
        write_secret(token_file, value)
    return value


def recover_admin_token(db: Database, clock: Clock, data_dir: Path) -> str:
    """A new platform-admin token in the default company, written to ``admin.token`` (the way back when every
    admin token was revoked or lost; it needs the data dir and the database, i.e. the farm's machine)."""
    with db.session() as s:
        company = ensure_company(s, DEFAULT_COMPANY, clock.now())
        stamp = clock.now().strftime("%Y-%m-%d %H:%M")
        value, _ = create_token(s, company, Role.PLATFORM_ADMIN, clock.now(), name=f"recovered admin {stamp}")
    write_secret(data_dir / "admin.token", value)
    log.warning("issued a new platform-admin token (recover-token), saved in %s", data_dir / "admin.token")
    return value


def offer_to_cli(url: str, token: str, data_dir: Path) -> str:
    """Point the user's CLI config at this farm when that is safe, and say what was done (``farm server`` prints
    it): written when there was none or it named this very address (a farm restarted with another data dir: its
    old token is useless here); left alone, with the command to switch, when it names another farm."""
    path = clientconfig.config_path()
    if os.environ.get("FARM_TOKEN"):
        return f"the CLI uses FARM_TOKEN from the environment; this farm's admin token is in {data_dir / 'admin.token'}"
    stored = clientconfig.read_file()
    same = stored.get("url", "").rstrip("/") == url.rstrip("/")
    if stored.get("token") and not same:
        return (
            f"the CLI config ({path}) points at {stored.get('url')}, left as it is; to use this farm: "
            f"farm login --url {url} (token in {data_dir / 'admin.token'})"
        )
    if same and stored.get("token") == token:
        return f"the CLI config ({path}) already points at this farm"
    clientconfig.write_file(url, token)
    return f"the CLI config ({path}) now points at this farm ({url})"
