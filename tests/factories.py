"""Rows and apps for tests, built one way.

Rows: ``company``, ``token``, ``job`` (with one task per chunk, split as the API splits them, and the counters the
lifecycle keeps set from the rows) and ``frames`` (stored-frame rows, the job's counters updated). Call them inside
``db.session()``; they flush, so ids are there at once.

Apps: ``api_farm`` gives the API app as every entry point wires it (``farm.runtime.api.wire_app``) on a migrated
database with the admin token bootstrapped; ``client`` wraps it in a TestClient that sends that token; ``serve``
runs any app over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from farm.clock import Clock, SystemClock, new_id
from farm.contract import Role
from farm.db.engine import Database
from farm.db.models import Company, Frame, Job, Task
from farm.domain.frames import chunk_frames, parse_frames
from farm.domain.states import JobStatus, TaskStatus
from farm.lifecycle import tallies
from farm.lifecycle.transitions import recount
from farm.runtime.api import wire_app
from farm.runtime.bootstrap import bootstrap
from farm.services.auth import create_token, ensure_company
from farm.settings import ServerSettings
from storage.base import ObjectStore
from storage.local import LocalDirStore


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


# ---- rows -----------------------------------------------------------------------------------------------------
def company(s: Session, name: str = "acme", now: datetime | None = None, **fields: Any) -> Company:
    """The company called ``name``: created with ``fields`` (e.g. ``id``, ``gpu_hours_budget``) when absent."""
    if not fields:
        return ensure_company(s, name, _now(now))
    row = Company(name=name, created_at=_now(now), **{"id": new_id("co"), **fields})
    s.add(row)
    s.flush()
    return row


def token(
    s: Session, company_name: str = "acme", role: Role = Role.ARTIST, now: datetime | None = None, **kw: Any
) -> str:
    """A token of ``role`` for the company (created when absent), straight from the database."""
    value, _ = create_token(s, company(s, company_name, now), role, _now(now), **kw)
    return value


def job(
    s: Session,
    owner: Company | str = "acme",
    *,
    frames: str = "1-4",
    chunk_size: int = 1,
    status: JobStatus | str = JobStatus.QUEUED,
    tasks: Sequence[TaskStatus | str] | None = None,
    attempts: int = 0,
    settings: dict[str, object] | None = None,
    now: datetime | None = None,
    **fields: Any,
) -> Job:
    """A job with one task per chunk of ``frames`` (task ids ``<job id>-t<index>``) and its counters right.

    ``owner``: a company row or the name of one (created when absent). ``tasks``: the status of each chunk
    (default all queued); ``attempts``: each task's attempt count. ``fields``: any other column (``id``,
    ``started_at``, ``priority``...).
    """
    now = _now(now)
    co = owner if isinstance(owner, Company) else company(s, owner, now)
    numbers = parse_frames(frames)
    chunks = chunk_frames(numbers, chunk_size)
    statuses = list(tasks) if tasks is not None else [TaskStatus.QUEUED] * len(chunks)
    if len(statuses) != len(chunks):
        raise ValueError(f"{len(statuses)} task statuses for {len(chunks)} chunks of {frames!r} by {chunk_size}")
    row = Job(
        **{
            "id": new_id("job"),
            "name": "shot",
            "status_reason": "",
            "priority": 50,
            "blend_file": "scene.blend",
            "manifest": {},
            "created_at": now,
            **fields,
        },
        company_id=co.id,
        status=JobStatus(status),
        frames=frames,
        chunk_size=chunk_size,
        settings=dict(settings or {}),
        frames_total=len(numbers),
    )
    s.add(row)
    s.flush()
    for index, (chunk, task_status) in enumerate(zip(chunks, statuses, strict=True)):
        s.add(
            Task(
                id=f"{row.id}-t{index}",
                job_id=row.id,
                index=index,
                frames=chunk,
                status=TaskStatus(task_status),
                attempts=attempts,
                updated_at=now,
            )
        )
    s.flush()
    recount(s, row)  # rows written by hand: set the counters the lifecycle keeps
    return row


def frames(s: Session, row: Job, numbers: Iterable[int], now: datetime | None = None, **fields: Any) -> list[Frame]:
    """Stored-frame rows for ``numbers`` of the job (``fields``: ``task_id``, ``key``, ``size``, ``sha256``,
    ``device``, ``render_seconds``...; one value for all), and the job's counters updated."""
    made = []
    for number in numbers:
        values: dict[str, Any] = {
            "task_id": "t",
            "key": f"k/{row.id}/{number}",
            "name": f"frame_{number:04d}.png",
            "size": 1,
            "sha256": "ab" * 32,
            "created_at": _now(now),
            **fields,
        }
        frame = Frame(job_id=row.id, frame=number, **values)
        s.add(frame)
        made.append(frame)
    s.flush()
    recount(s, row)
    # The running totals /metrics reads, as the lifecycle keeps them when it records frames (issue 15).
    tallies.observe(s, tallies.FRAMES_RENDERED, row.company_id, [1.0] * len(made))
    for frame in made:
        label = str(frame.device or "").lower()
        tallies.observe(s, tallies.FRAME_RENDER_SECONDS, row.company_id, [frame.render_seconds or 0.0], label=label)
    return made


# ---- apps -----------------------------------------------------------------------------------------------------
@dataclass
class ApiFarm:
    """What a test needs around an API app: its settings, database, store, clock and the admin token."""

    app: FastAPI
    settings: ServerSettings
    db: Database
    store: ObjectStore
    clock: Clock
    admin_token: str


@contextmanager
def api_farm(
    tmp_path: Path, store: ObjectStore | None = None, clock: Clock | None = None, **settings: Any
) -> Iterator[ApiFarm]:
    """The API app wired as in production (``wire_app``) on a migrated database under ``tmp_path`` (or
    ``database_url``), a local store unless given one, and the admin token; the database is closed after."""
    config = ServerSettings(**{"data_dir": tmp_path, "port": 0, "write_cli_config": False, **settings})
    clock = clock or SystemClock()
    db = Database(config.db_url)
    try:
        db.migrate()
        admin = bootstrap(db, clock, tmp_path)
        store = store or LocalDirStore(tmp_path / "objects")
        yield ApiFarm(wire_app(config, db, store, clock), config, db, store, clock, admin)
    finally:
        db.dispose()


@contextmanager
def client(farm: ApiFarm, cls: type[TestClient] = TestClient, auth: bool = True, **kw: Any) -> Iterator[Any]:
    """A TestClient (or subclass) on the farm's app, sending the admin token unless ``auth`` is False."""
    with cls(farm.app, **kw) as http:
        if auth:
            http.headers["Authorization"] = f"Bearer {farm.admin_token}"
        yield http


def free_port() -> int:
    """A port on 127.0.0.1 that is free now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(app: FastAPI, port: int | None = None, **config: Any) -> Iterator[str]:
    """Serve ``app`` over HTTP on 127.0.0.1 (``port``, or a free one) from a thread; yields its URL."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, **config)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the API did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
