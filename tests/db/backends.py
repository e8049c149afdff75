"""Fixtures that run database-touching tests on both backends: SQLite and a real PostgreSQL on 127.0.0.1.

Import them where needed (``from tests.db.backends import db_url, postgres``); the server behind ``postgres`` is
one per test run however many modules import the fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.db.postgres import PostgresServer, available, shared_server, stop_shared_server

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (initdb + pg_ctl start as the ``postgres`` user), stopped at the end."""
    if not available():
        pytest.skip("PostgreSQL is not installed (pg_ctl, initdb): run scripts/system-deps.sh as root")
    server = shared_server()
    yield server
    stop_shared_server()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each backend: an SQLite file in ``tmp_path``, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'farm.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database()
