"""A throwaway PostgreSQL server on 127.0.0.1 for the tests: initdb into a temporary directory, pg_ctl start on
a free port, one fresh database per test, everything removed at the end.

PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` OS user (the Debian package
creates it). Durability is switched off (fsync, synchronous commit): the data dies with the test run anyway.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SUPERUSER = "postgres"


def find_bin(name: str) -> str | None:
    """``pg_ctl``/``initdb`` from PATH, else from Debian's versioned directory (not on PATH there)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]), reverse=True
    )
    return candidates[0] if candidates else None


def available() -> bool:
    return find_bin("pg_ctl") is not None and find_bin("initdb") is not None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One server; ``url(database)`` builds SQLAlchemy URLs, ``create_database()`` makes a fresh empty one."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="farm-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self._names = itertools.count(1)
        self._as_user: str | None = None
        self._shared_database = ""
        if os.geteuid() == 0:
            self._as_user = SUPERUSER
            entry = pwd.getpwnam(SUPERUSER)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        os.chmod(self.root, 0o700)

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args),
            user=self._as_user,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self) -> PostgresServer:
        initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        assert initdb and pg_ctl, "PostgreSQL is not installed: run scripts/system-deps.sh"
        done = self._run(
            initdb, "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr or done.stdout}")
        for _ in range(5):  # a free port can be taken between the probe and the bind: try another
            self.port = free_port()
            options = (
                f"-h 127.0.0.1 -p {self.port} -k {self.root} -F "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
            )
            done = self._run(
                pg_ctl, "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start"
            )
            if done.returncode == 0:
                return self
            time.sleep(0.2)
        log = self.log.read_text() if self.log.exists() else ""
        raise RuntimeError(f"pg_ctl start failed: {done.stderr or done.stdout}\n{log[-4000:]}")

    def url(self, database: str = "postgres", schema: str | None = None) -> str:
        url = f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"
        return f"{url}?options=-csearch_path%3D{schema}" if schema else url

    def _admin(self, database: str, statement: str) -> None:
        import psycopg

        dsn = f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database}"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]  # names come from this module, never from input

    def create_database(self, prefix: str = "farm") -> str:
        """A new, empty place for one test's tables; returns its SQLAlchemy URL.

        A schema of one shared database, made the connection's ``search_path``: as empty as a new database for
        the farm's tables and migrations, and far cheaper (a new database copies its template's files).
        """
        if not self._shared_database:
            self._admin("postgres", 'CREATE DATABASE "farm_tests"')
            self._shared_database = "farm_tests"
        schema = f"{prefix}_{next(self._names)}"
        self._admin(self._shared_database, f'CREATE SCHEMA "{schema}"')
        return self.url(self._shared_database, schema)

    def stop(self) -> None:
        pg_ctl = find_bin("pg_ctl")
        if pg_ctl and (self.data / "postmaster.pid").exists():
            self._run(pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


_shared: PostgresServer | None = None


def shared_server() -> PostgresServer:
    """The test run's one server, started on first use (fixtures in several modules share it)."""
    global _shared
    if _shared is None:
        _shared = PostgresServer().start()
    return _shared


def stop_shared_server() -> None:
    global _shared
    if _shared is not None:
        _shared.stop()
        _shared = None
