"""``farm pause|resume|retry|blocklist|unblock`` (job control) and ``farm scheduler|api`` (cluster mode)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from farm.cli import output as out
from farm.client import ClientError, FarmClient
from farm.contract import Blocklist, JobOut

JobId = Annotated[str, typer.Argument(help="job id")]


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


def pause(
    job_id: JobId,
    now: Annotated[bool, typer.Option("--now", help="also stop the chunks rendering now (they are requeued)")] = False,
) -> None:
    """Pause a job: no new chunks start; running ones finish first unless --now."""
    with FarmClient() as client:
        try:
            _job_line(client.pause(job_id, now=now))
        except ClientError as exc:
            raise _fail(exc) from exc


def resume(job_id: JobId) -> None:
    """Resume a paused job."""
    with FarmClient() as client:
        try:
            _job_line(client.resume(job_id))
        except ClientError as exc:
            raise _fail(exc) from exc


def retry(job_id: JobId) -> None:
    """Requeue the job's failed (and canceled) chunks, each with a fresh count of attempts."""
    with FarmClient() as client:
        try:
            _job_line(client.retry(job_id))
        except ClientError as exc:
            raise _fail(exc) from exc


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
    for command in (pause, resume, retry, blocklist, unblock, scheduler, api):
        app.command()(command)
