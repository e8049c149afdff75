"""Engine and sessions; the schema is applied by Alembic migrations at start.

Two backends: SQLite (embedded mode, one file in the data dir) and PostgreSQL (cluster mode,
``FARM_DATABASE_URL=postgresql+psycopg://user:password@host:5432/farm``), where several API replicas and one
scheduler share the database. Migrations take a lock first, so replicas starting together apply them once.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text, update
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
#: Key of the PostgreSQL advisory lock held while migrating (any constant both sides agree on).
MIGRATION_LOCK_KEY = 0x6661726D  # "farm"


def normalise_url(url: str) -> str:
    """``postgres://`` and ``postgresql://`` mean psycopg 3, the PostgreSQL driver the farm installs."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def is_postgresql(engine: Engine | Connection) -> bool:
    """True on PostgreSQL (row locks such as ``FOR UPDATE SKIP LOCKED`` are worth taking there)."""
    return engine.dialect.name == "postgresql"


def take_sqlite_write_lock(session: Session, job_id: str) -> None:
    """On SQLite, start this session's write transaction now, before reading what it will change.

    pysqlite begins a transaction only at the first write, so rows read before it can be stale by then and a
    decision taken on them can undo another process's change (a pause, a claim). A no-op write on the job row
    takes SQLite's single write lock first; what the session reads afterwards stays current until it commits.
    Other databases use row locks instead (``FOR UPDATE``); there this does nothing.
    """
    from farm.db.models import Job

    if session.get_bind().dialect.name == "sqlite":
        session.execute(update(Job).where(Job.id == job_id).values(status=Job.status))


def make_engine(url: str, busy_timeout_s: float = 30.0) -> Engine:
    """An engine; SQLite gets WAL, a busy timeout and foreign keys so API and scheduler can share it. A database
    locked or unreachable past ``busy_timeout_s`` raises (the API answers 503 with Retry-After: ``web.errors``)."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_timeout_s})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            cur.close()

        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        pool_timeout=busy_timeout_s,
        connect_args={"connect_timeout": max(1, round(busy_timeout_s))},
    )


def alembic_config(url: str) -> Config:
    """Alembic configuration built in code, so the migrations ship inside the package."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@contextmanager
def _sqlite_migration_lock(engine: Engine) -> Iterator[None]:
    """Several processes on one SQLite file (e.g. ``uvicorn --workers N``) migrate one after the other."""
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).with_name(Path(database).name + ".migrate-lock")
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent, and safe when replicas start together)."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    if is_postgresql(engine):
        with engine.begin() as conn:
            # PostgreSQL has transactional DDL: the lock is held until the whole upgrade commits, and a replica
            # that waited for it then finds the schema current and does nothing.
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "heads")
        return
    with _sqlite_migration_lock(engine), engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")


class Database:
    """Engine plus a session factory; ``with db.session() as s:`` commits on success, rolls back on error."""

    def __init__(self, url: str, busy_timeout_s: float = 30.0) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url, busy_timeout_s)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self) -> None:
        """Apply migrations."""
        migrate(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction."""
        with self._factory() as session, session.begin():
            yield session

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()
