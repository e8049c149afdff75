"""Busy, not broken (issue 17): a database locked or unreachable past its busy timeout answers 503 with
Retry-After and a reason, quickly; values the database cannot store answer 422, never 500."""

from __future__ import annotations

import sqlite3
import time

from fastapi.testclient import TestClient

from farm.clock import SystemClock
from farm.db.engine import Database
from farm.runtime.api import wire_app
from farm.runtime.bootstrap import bootstrap
from farm.settings import ServerSettings
from storage.local import LocalDirStore
from tests.factories import free_port


def _app(tmp_path, url: str, token: str | None = None):
    settings = ServerSettings(data_dir=tmp_path, port=0, write_cli_config=False, database_url=url)
    db = Database(url, busy_timeout_s=0.5)
    return wire_app(settings, db, LocalDirStore(tmp_path / "objects"), SystemClock()), db


def test_a_locked_sqlite_database_answers_503_with_retry_after(tmp_path):
    url = f"sqlite:///{tmp_path / 'farm.db'}"
    setup = Database(url)
    setup.migrate()
    token = bootstrap(setup, SystemClock(), tmp_path)
    setup.dispose()
    app, db = _app(tmp_path, url)
    holder = sqlite3.connect(tmp_path / "farm.db", isolation_level=None)
    try:
        with TestClient(app) as http:
            http.headers["Authorization"] = f"Bearer {token}"
            assert http.get("/api/v1/jobs").status_code == 200
            holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            started = time.monotonic()
            r = http.post("/api/v1/admin/companies", json={"name": "acme"})
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "5"
            assert "busy or unreachable" in r.json()["detail"]
            assert time.monotonic() - started < 10
            holder.execute("ROLLBACK")
            # Nothing was half-written, and the same request works once the lock is gone.
            assert http.post("/api/v1/admin/companies", json={"name": "acme"}).status_code == 201
    finally:
        holder.close()
        db.dispose()


def test_an_unreachable_postgresql_answers_503_not_500(tmp_path):
    url = f"postgresql+psycopg://farm:nope@127.0.0.1:{free_port()}/farm"  # nothing listens there
    app, db = _app(tmp_path, url)
    try:
        with TestClient(app) as http:
            r = http.get("/api/v1/jobs", headers={"Authorization": "Bearer farm_whatever"})
            assert r.status_code == 503 and r.headers["retry-after"] == "5", r.text
            assert "nope" not in r.text  # no connection string in the answer
            assert http.get("/healthz").status_code == 200
            assert http.get("/readyz").status_code == 503
    finally:
        db.dispose()
