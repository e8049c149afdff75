"""Who applies migrations, and what a process does on a database whose schema is not the one it was built for.

The embedded farm migrates at start (one process, its own database). A cluster release migrates once, from the
chart's migration Job (``farm migrate``: a Helm hook that runs after install and before each upgrade), and its API
and scheduler pods run with ``FARM_MIGRATE_ON_START=false``: they never change the schema under pods of the other
release. Such a process starts only on the schema it knows:

* schema behind (the migration Job has not run yet, e.g. on first install): it waits, saying so every few seconds,
  and starts as soon as the Job is done;
* schema ahead of it (a rollback to an older image after the database was upgraded): it refuses to start with a
  message naming both revisions and the way back (restore the backup taken before the upgrade, or roll forward).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from farm.db.engine import Database, alembic_config, migrate

log = logging.getLogger(__name__)

WAIT_LOG_INTERVAL_S = 10.0


class SchemaMismatch(RuntimeError):
    """The database holds a schema this release does not know (newer than its migrations)."""


@dataclass(frozen=True)
class SchemaStatus:
    """The revisions the database is at and those this release's migrations end in."""

    current: frozenset[str]
    wanted: frozenset[str]
    unknown: frozenset[str]  # in the database but not among this release's migrations (a newer release's)

    @property
    def up_to_date(self) -> bool:
        """Exactly at this release's heads."""
        return self.current == self.wanted

    def describe(self) -> str:
        """One line for logs and errors."""
        current = ", ".join(sorted(self.current)) or "empty (no migrations applied)"
        return f"database schema at {current}; this release needs {', '.join(sorted(self.wanted))}"


def schema_status(engine: Engine) -> SchemaStatus:
    """Read the database's Alembic revisions and compare them with this release's migrations."""
    script = ScriptDirectory.from_config(alembic_config(engine.url.render_as_string(hide_password=False)))
    with engine.connect() as conn:
        current = frozenset(MigrationContext.configure(conn).get_current_heads())
    unknown = set()
    for revision in current:
        try:
            script.get_revision(revision)
        except CommandError:
            unknown.add(revision)
    return SchemaStatus(current, frozenset(script.get_heads()), frozenset(unknown))


def wait_until_current(
    engine: Engine,
    timeout_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    interval_s: float = 2.0,
) -> SchemaStatus:
    """Return once the schema is this release's; raise ``SchemaMismatch`` at once if it is newer, and
    ``TimeoutError`` after ``timeout_s`` (None: wait as long as it takes; the orchestrator's probes decide)."""
    waited = 0.0
    last_log = -WAIT_LOG_INTERVAL_S
    while True:
        try:
            found: SchemaStatus | None = schema_status(engine)
        except OperationalError as exc:  # the database is not up yet: same wait, different words
            found = None
            reason = f"database not reachable ({type(exc.orig).__name__ if exc.orig else exc})"
        if found is not None:
            if found.unknown:
                raise SchemaMismatch(
                    f"{found.describe()}: the database was migrated by a newer release. Roll forward to that "
                    "release, or restore the database backup taken before the upgrade (docs/operations.md)"
                )
            if found.up_to_date:
                return found
            reason = f"{found.describe()}: waiting for `farm migrate` (the chart's migration Job)"
        if timeout_s is not None and waited >= timeout_s:
            raise TimeoutError(f"after {waited:.0f}s: {reason}")
        if waited - last_log >= WAIT_LOG_INTERVAL_S:
            log.warning("%s", reason)
            last_log = waited
        sleep(interval_s)
        waited += interval_s


def prepare_schema(db: Database, migrate_on_start: bool) -> None:
    """At process start: migrate (embedded, or when asked), else wait for the release's migration Job."""
    if migrate_on_start:
        db.migrate()
        return
    status = wait_until_current(db.engine)
    log.info("%s: up to date", status.describe())


def run_migrations(db: Database, timeout_s: float, sleep: Callable[[float], None] = time.sleep) -> SchemaStatus:
    """``farm migrate``: wait up to ``timeout_s`` for the database to accept connections, then migrate once
    (an advisory lock makes concurrent runs harmless) and return the new status."""
    waited = 0.0
    while True:
        try:
            before = schema_status(db.engine)
            break
        except OperationalError as exc:
            if waited >= timeout_s:
                raise TimeoutError(f"database not reachable after {waited:.0f}s: {exc.orig or exc}") from exc
            sleep(2.0)
            waited += 2.0
    if before.unknown:
        raise SchemaMismatch(
            f"{before.describe()}: the database is newer than this release; refusing to migrate it backwards"
        )
    migrate(db.engine)
    after = schema_status(db.engine)
    log.info("migrated: %s -> %s", ", ".join(sorted(before.current)) or "empty", ", ".join(sorted(after.current)))
    return after
