"""Who migrates (``farm migrate``, the chart's hook Job) and what a cluster process does on a schema that is not
its own: it waits for one behind and refuses one ahead (``farm.db.schema``). Real SQLite files, real Alembic."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from farm.cli.main import app
from farm.db.engine import Database
from farm.db.schema import SchemaMismatch, prepare_schema, schema_status, wait_until_current


@pytest.fixture()
def db(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'farm.db'}")


def test_an_empty_database_is_behind_and_a_process_waits_saying_why(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    status = schema_status(db.engine)
    assert status.current == frozenset() and status.wanted and not status.up_to_date
    slept: list[float] = []
    with pytest.raises(TimeoutError, match="waiting for `farm migrate`"):
        wait_until_current(db.engine, timeout_s=6, sleep=slept.append, interval_s=2)
    assert slept == [2, 2, 2]
    assert "empty (no migrations applied)" in caplog.text and "this release needs" in caplog.text


def test_the_wait_ends_as_soon_as_the_migration_ran(db: Database) -> None:
    def migrate_meanwhile(_seconds: float) -> None:
        db.migrate()  # the hook Job finishing while the pod waits

    status = wait_until_current(db.engine, timeout_s=60, sleep=migrate_meanwhile)
    assert status.up_to_date


def test_a_schema_from_a_newer_release_is_refused_at_once(db: Database) -> None:
    db.migrate()
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0999_from_the_future'"))
    slept: list[float] = []
    with pytest.raises(SchemaMismatch, match="migrated by a newer release.*restore the database backup"):
        wait_until_current(db.engine, timeout_s=60, sleep=slept.append)
    assert slept == []
    result = CliRunner().invoke(app, ["migrate", "--timeout", "0"], env={"FARM_DATABASE_URL": str(db.engine.url)})
    assert result.exit_code == 1 and "refusing to migrate it backwards" in result.output


def test_prepare_schema_migrates_only_when_asked(db: Database) -> None:
    prepare_schema(db, migrate_on_start=True)
    assert schema_status(db.engine).up_to_date
    prepare_schema(db, migrate_on_start=False)  # current: returns at once


def test_farm_migrate_brings_the_database_to_this_release(db: Database) -> None:
    env = {"FARM_DATABASE_URL": str(db.engine.url)}
    result = CliRunner().invoke(app, ["migrate"], env=env)
    assert result.exit_code == 0, result.output
    status = schema_status(db.engine)
    assert status.up_to_date
    assert "database schema at " + ", ".join(sorted(status.current)) in result.output
    again = CliRunner().invoke(app, ["migrate"], env=env)  # idempotent: every upgrade runs it
    assert again.exit_code == 0, again.output


def test_farm_migrate_gives_up_on_an_unreachable_database_with_a_reason() -> None:
    url = "postgresql+psycopg://farm:pw@127.0.0.1:1/farm?connect_timeout=1"
    result = CliRunner().invoke(app, ["migrate", "--timeout", "0"], env={"FARM_DATABASE_URL": url})
    assert result.exit_code == 1
    assert "database not reachable" in result.output
