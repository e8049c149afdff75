"""Alembic migrations on an empty SQLite and PostgreSQL database: they apply, match the models, and replicas that
start together apply them once."""

from __future__ import annotations

import subprocess
import sys
import time

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from farm.db.engine import MIGRATIONS, Database, alembic_config, normalise_url
from farm.db.models import Base


def heads() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def applied(db: Database) -> set[str]:
    with db.engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def test_upgrade_heads_on_an_empty_database_matches_the_models(db_url):
    db = Database(db_url)
    try:
        db.migrate()
        assert applied(db) == heads()
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
        assert set(Base.metadata.tables) <= set(inspect(db.engine).get_table_names())
    finally:
        db.dispose()


def test_migrate_twice_is_a_no_op(db_url):
    db = Database(db_url)
    try:
        db.migrate()
        db.migrate()
        assert applied(db) == heads()
    finally:
        db.dispose()


REPLICA = """
import sys, time
from farm.db.engine import Database

pytest_plugins = ["tests.db.backends"]  # db_url (SQLite and PostgreSQL), postgres
db = Database(sys.argv[1])
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # all replicas start migrating at the same instant
db.migrate()
"""


def test_replicas_starting_together_migrate_once(db_url):
    # Three API replicas (processes) migrate the same empty database at once; without the migration lock the
    # losers fail on tables that already exist.
    start_at = time.time() + 3.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", REPLICA, db_url, str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    db = Database(db_url)
    try:
        assert applied(db) == heads()
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == len(heads())
    finally:
        db.dispose()


def test_big_objects_fit(db_url):
    # Blob and frame sizes are 64-bit: a 5 GiB upload must not overflow PostgreSQL's 32-bit integer.
    from datetime import UTC, datetime

    from farm.db.models import Blob, Company

    db = Database(db_url)
    try:
        db.migrate()
        now = datetime.now(UTC)
        with db.session() as s:
            s.add(Company(id="c1", name="acme", created_at=now))
            s.flush()
            s.add(Blob(company_id="c1", sha256="a" * 64, size=5 * 1024**3, created_at=now))
        with db.session() as s:
            assert s.get(Blob, ("c1", "a" * 64)).size == 5 * 1024**3
    finally:
        db.dispose()


def test_postgres_urls_mean_psycopg():
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"
    assert MIGRATIONS.is_dir()
