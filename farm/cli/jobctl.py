"""``farm cancel|pause|resume|retry|requeue|priority|blocklist|unblock`` (job control; several job ids make one bulk
request) and ``farm scheduler|api`` (cluster mode)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from farm.cli import output as out
from farm.client import ClientError, FarmClient
from farm.contract import Blocklist, ChunkActionOut, JobOut

JobId = Annotated[str, typer.Argument(help="job id")]
JobIds = Annotated[list[str], typer.Argument(help="job id(s); several make one bulk request")]
ChunkOpt = Annotated[
    list[str] | None,
    typer.Option("--chunk", help="one chunk of the job: its index (as `farm status` lists) or id; repeatable"),
]


def _fail(exc: ClientError) -> typer.Exit:
    out.error(exc.detail)
    return typer.Exit(2 if exc.status == 0 else 1)


def _job_line(job: JobOut) -> None:
    reason = f" ({job.status_reason})" if job.status_reason else ""
    out.line(f"job {job.id}: {job.status.value}{reason}")


def _show_blocklist(blocklist: Blocklist) -> None:
    if not blocklist.nodes:
        out.line(f"job {blocklist.job_id}: no node has failed a chunk of it")
        return
    out.table(
        ["node", "failed chunks", "blocked", "last failure"],
        [[n.node, n.failures, "yes" if n.blocked else "no", n.reason] for n in blocklist.nodes],
    )


def _server_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _bulk(client: FarmClient, action: str, job_ids: list[str], priority: int | None = None, now: bool = False) -> None:
    """Several jobs: one bulk request; a line per job, and exit status 1 unless every job took the action."""
    try:
        result = client.bulk(action, job_ids, priority=priority, now=now)
    except ClientError as exc:
        raise _fail(exc) from exc
    for r in result.jobs:  # one line per job, as the API answered it
        out.line(f"{r.job_id}: {r.outcome.value}" + (f" ({r.status.value})" if r.status else f": {r.detail}"))
    out.line(f"{action}: done for {result.done} job(s), refused for {result.refused}, not found {result.not_found}")
    if result.refused or result.not_found:
        raise typer.Exit(1)


def _one_or_many(job_ids: list[str], action: str, one: Callable[[FarmClient, str], JobOut], now: bool = False) -> None:
    with FarmClient() as client:
        if len(job_ids) > 1:
            _bulk(client, action, job_ids, now=now)
            return
        try:
            _job_line(one(client, job_ids[0]))
        except ClientError as exc:
            raise _fail(exc) from exc


def _chunk_line(result: ChunkActionOut) -> None:
    task, job = result.task, result.job
    same = "" if result.changed else " (nothing to do)"
    out.line(f"job {job.id} chunk {task.index} (frames {task.frames}): {task.status.value}{same}")
    _job_line(job)


def _chunks(job_ids: list[str], chunks: list[str], act: Callable[[FarmClient, str, str], ChunkActionOut]) -> None:
    if len(job_ids) != 1:
        out.error("--chunk names chunks of one job: give exactly one job id with it")
        raise typer.Exit(2)
    with FarmClient() as client:
        for chunk in chunks:
            try:
                _chunk_line(act(client, job_ids[0], chunk))
            except ClientError as exc:
                raise _fail(exc) from exc


def cancel(
    job_ids: JobIds,
    chunk: ChunkOpt = None,
) -> None:
    """Cancel jobs (running chunks stop within seconds), or with --chunk one chunk of a job (the rest goes on)."""
    if chunk:
        _chunks(job_ids, chunk, lambda c, job, ref: c.cancel_chunk(job, ref))
        return
    with FarmClient() as client:
        if len(job_ids) > 1:
            _bulk(client, "cancel", job_ids)
            return
        try:
            job = client.cancel(job_ids[0])
        except ClientError as exc:
            raise _fail(exc) from exc
    out.line(f"job {job.id}: {job.status.value}")


def requeue(
    job_id: JobId,
    chunk: Annotated[list[str], typer.Option("--chunk", help="chunk index (as `farm status` lists) or id; repeatable")],
) -> None:
    """Render chunks of a job again: a rendering chunk is stopped first; a finished one keeps its frames until the
    new ones replace them."""
    _chunks([job_id], chunk, lambda c, job, ref: c.requeue_chunk(job, ref))


def priority(
    args: Annotated[list[str], typer.Argument(help="JOB PRIORITY, or job ids with --set", metavar="JOB [PRIORITY]")],
    to: Annotated[int | None, typer.Option("--set", min=0, max=100, help="the priority for every job named")] = None,
) -> None:
    """Change a job's priority (0-100, higher first): `farm priority JOB 80`, or `farm priority J1 J2 --set 80`."""
    if to is None:
        if len(args) != 2 or not args[1].isdigit() or not 0 <= int(args[1]) <= 100:
            out.error("give a job id and a priority from 0 to 100 (farm priority JOB 80), or jobs with --set N")
            raise typer.Exit(2)
        job_ids, to = [args[0]], int(args[1])
    else:
        job_ids = list(args)
    with FarmClient() as client:
        if len(job_ids) > 1:
            _bulk(client, "priority", job_ids, priority=to)
            return
        try:
            job = client.set_priority(job_ids[0], to)
        except ClientError as exc:
            raise _fail(exc) from exc
    out.line(f"job {job.id}: priority {job.priority} ({job.status.value})")


def pause(
    job_ids: JobIds,
    now: Annotated[bool, typer.Option("--now", help="also stop the chunks rendering now (they are requeued)")] = False,
) -> None:
    """Pause jobs: no new chunks start; running ones finish first unless --now."""
    _one_or_many(job_ids, "pause", lambda c, job: c.pause(job, now=now), now=now)


def resume(job_ids: JobIds) -> None:
    """Resume paused jobs."""
    _one_or_many(job_ids, "resume", lambda c, job: c.resume(job))


def retry(job_ids: JobIds) -> None:
    """Requeue the jobs' failed (and canceled) chunks, each with a fresh count of attempts."""
    _one_or_many(job_ids, "retry", lambda c, job: c.retry(job))


def blocklist(
    job_id: JobId,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Nodes that failed chunks of the job; blocked ones get no more of them."""
    with FarmClient() as client:
        try:
            result = client.blocklist(job_id)
        except ClientError as exc:
            raise _fail(exc) from exc
    if as_json:
        out.emit_json(result.model_dump(mode="json"))
    else:
        _show_blocklist(result)


def unblock(
    job_id: JobId,
    node: Annotated[str | None, typer.Argument(help="node name (default: every node)")] = None,
) -> None:
    """Give a blocklisted node (or every node) another chance at the job."""
    with FarmClient() as client:
        try:
            result = client.unblock(job_id, node)
        except ClientError as exc:
            raise _fail(exc) from exc
    out.line(f"job {job_id}: {'node ' + node if node else 'every node'} unblocked")
    _show_blocklist(result)


def scheduler(
    ray_address: Annotated[str, typer.Option("--ray-address", help="Ray cluster to join, HOST:PORT")],
    data_dir: Annotated[Path | None, typer.Option(help="admin token, work and cache folders")] = None,
) -> None:
    """Run the cluster-mode scheduler: joins Ray, follows its nodes, dispatches chunks (one per database)."""
    from farm.runtime.scheduler import run_scheduler
    from farm.settings import Mode, ServerSettings

    _server_logging()
    overrides: dict[str, object] = {"mode": Mode.CLUSTER, "ray_address": ray_address}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    run_scheduler(ServerSettings(**overrides), ray_address)  # type: ignore[arg-type]


def api(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port")] = 8321,
    data_dir: Annotated[Path | None, typer.Option(help="admin token and upload spool")] = None,
) -> None:
    """Run the cluster-mode API (no Ray): serves /api/v1 from the shared database and object store."""
    from farm.runtime.api import serve_api
    from farm.settings import Mode, ServerSettings

    _server_logging()
    overrides: dict[str, object] = {"mode": Mode.CLUSTER, "host": host, "port": port}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    serve_api(ServerSettings(**overrides))  # type: ignore[arg-type]


def register(app: typer.Typer) -> None:
    """Add the job-control and cluster-mode commands to ``farm``."""
    for command in (cancel, pause, resume, retry, requeue, priority, blocklist, unblock, scheduler, api):
        app.command()(command)
