"""``farm``: run an embedded farm, submit and follow jobs, download frames, read usage."""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from farm.cli import output as out
from farm.client import ClientError, FarmClient
from farm.client.api import InvalidOptions
from farm.contract import JobOut
from farm.domain.states import JOB_TERMINAL

_FORMATS = "PNG, JPEG, TIFF, WEBP, EXR, EXR_MULTILAYER"

app = typer.Typer(help="Shared Blender render farm.", no_args_is_help=True, pretty_exceptions_enable=False)


def _client() -> FarmClient:
    return FarmClient()


#: The job spec's fields as ``farm submit`` names them, so a refused option is named by its flag.
FLAGS = {
    "name": "--name",
    "frames": "--frames",
    "chunk_size": "--chunk",
    "priority": "--priority",
    "output_format": "--format",
    "output_pattern": "--output-pattern",
    "view_layers": "--view-layer",
    "camera": "--camera",
    "resolution": "--resolution",
    "samples": "--samples",
    "max_attempts": "--max-attempts",
    "on_chunk_failure": "--on-chunk-failure",
    "after": "--after",
    "frame_match": "--frame-match",
    "order": "--order",
}


def _where_the_farm_comes_from() -> str:
    from farm.client import config as clientconfig

    if os.environ.get("FARM_URL"):
        return "FARM_URL"
    if clientconfig.read_file().get("url"):
        return str(clientconfig.config_path())
    return "the default"


def _fail(exc: ClientError) -> typer.Exit:
    from farm.client import config as clientconfig

    out.error(exc.detail)
    if exc.status == 0 and "cannot reach the farm" in exc.detail:
        out.line(
            f"is the farm running? The address comes from {_where_the_farm_comes_from()}; "
            "to use another farm: farm login --url URL"
        )
    elif exc.status == 401:
        token_from = "FARM_TOKEN" if os.environ.get("FARM_TOKEN") else str(clientconfig.config_path())
        out.line(f"the token comes from {token_from}; log in again with a valid one: farm login")
    return typer.Exit(2 if exc.status == 0 else 1)


def _bytes_progress(description: str, total: int) -> Progress:
    return Progress(
        TextColumn(description),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=out.err_console,
        transient=True,
        disable=total == 0 or not out.err_console.is_terminal,
    )


@app.command()
def server(
    data_dir: Annotated[Path | None, typer.Option(help="where the database, objects and cache live")] = None,
    port: Annotated[int, typer.Option(help="HTTP port on 127.0.0.1")] = 8321,
    slots: Annotated[int | None, typer.Option(help="render slots (default: one using every core)")] = None,
) -> None:
    """Run an embedded farm: API, scheduler, local Ray and workers on 127.0.0.1."""
    from farm.runtime.embedded import EmbeddedFarm
    from farm.settings import ServerSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides: dict[str, object] = {"port": port}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if slots is not None:
        overrides["slots"] = slots
    settings = ServerSettings(**overrides)  # type: ignore[arg-type]
    farm = EmbeddedFarm(settings)
    out.line(f"farm: starting on {farm.url} (data in {settings.data_dir})")
    farm.serve_forever()


#: ``farm submit``'s parameter behind each job spec field, where the names differ.
_PARAMS = {
    "chunk_size": "chunk",
    "output_format": "format",
    "view_layers": "view_layer",
    "allow_cpu_fallback": "cpu_fallback",
}


def _given(ctx: typer.Context, preset: str | None, **options: Any) -> dict[str, Any]:
    """The spec's options; with ``--preset``, only the flags given on the command line (the preset fills the rest,
    on the farm)."""
    if preset is None:
        return options

    def given(field: str) -> bool:
        source = ctx.get_parameter_source(_PARAMS.get(field, field))
        return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")  # typer may vendor click

    return {"preset": preset, **{field: value for field, value in options.items() if given(field)}}


def _within_budget(blend: Path, frames: str | None, max_cost: float, **options: Any) -> None:
    """``--max-cost``: estimate the job (issue 19) and stop with exit code 1 when it costs more."""
    from farm.cli.pipeline import show_estimate
    from farm.client.pipeline import PipelineClient

    with PipelineClient() as client:
        try:
            est = client.run_estimate(blend, frames, **options)
        except ClientError as exc:
            raise _fail(exc) from exc
    if not est.ready:
        out.error(f"--max-cost: the sample job {est.job_id} ended {est.status.value}; nothing submitted")
        raise typer.Exit(1)
    out.err_console.print(show_estimate(est), highlight=False, soft_wrap=True)  # stdout stays the submit's (--json)
    if est.cost > max_cost:
        out.error(f"--max-cost: the estimate {est.cost:.2f} exceeds {max_cost:.2f}; nothing submitted")
        raise typer.Exit(1)


@app.command()
def submit(
    ctx: typer.Context,
    blend: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help=".blend file to render")],
    frames: Annotated[
        str | None, typer.Option(help="frames, e.g. 1-250, 1-250x2, 1,5,10-20 (default: the scene's range and step)")
    ] = None,
    chunk: Annotated[int, typer.Option(help="frames per task")] = 8,
    priority: Annotated[int, typer.Option(help="0-100, higher first within your company")] = 50,
    name: Annotated[str | None, typer.Option(help="job name (default: the file name)")] = None,
    format: Annotated[
        str, typer.Option("--format", help=f"scene (the scene's own output settings) or an override: {_FORMATS}")
    ] = "scene",
    output_pattern: Annotated[
        str | None,
        typer.Option(
            "--output-pattern",
            help="frame file names, e.g. 'render/{name}_{frame:04d}{ext}' (fields: job, name, layer, camera, "
            "frame, ext); default: the scene's output path",
        ),
    ] = None,
    view_layer: Annotated[
        list[str] | None, typer.Option("--view-layer", help="render only this view layer (repeatable)")
    ] = None,
    camera: Annotated[str | None, typer.Option("--camera", help="render through this camera object")] = None,
    resolution: Annotated[str | None, typer.Option(help="override, e.g. 1920x1080")] = None,
    samples: Annotated[int | None, typer.Option(help="override Cycles samples")] = None,
    gpu: Annotated[bool, typer.Option("--gpu", help="render on GPU slots")] = False,
    cpu_fallback: Annotated[
        bool, typer.Option("--cpu-fallback/--no-cpu-fallback", help="a --gpu job may use CPU slots when no GPU is up")
    ] = True,
    max_attempts: Annotated[int, typer.Option(help="attempts per chunk before it fails")] = 3,
    on_chunk_failure: Annotated[
        str, typer.Option(help="'continue' (render the rest, then fail) or 'fail-job' (stop at once)")
    ] = "continue",
    preview: Annotated[bool, typer.Option("--preview/--no-preview", help="make an MP4 preview at the end")] = True,
    allow_missing: Annotated[bool, typer.Option("--allow-missing", help="submit despite missing files")] = False,
    after: Annotated[
        str | None, typer.Option("--after", help="start once these jobs completed: JOB[,JOB] (issue 19)")
    ] = None,
    frame_match: Annotated[
        bool, typer.Option("--frame-match", help="with --after: frame N waits only for frame N of those jobs")
    ] = False,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            help="a preset (farm preset list): your company's NAME first, else a shared one; NAME@PUBLISHER names a"
            " shared one; flags you give override it",
        ),
    ] = None,
    order: Annotated[
        str,
        typer.Option(
            "--order", help="'sequential', or 'preview': first, last, then halving the gaps, so the shot shows early"
        ),
    ] = "sequential",
    max_cost: Annotated[
        float | None,
        typer.Option("--max-cost", help="estimate first (3 metered sample frames); refuse if it costs more than this"),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="follow the job until it ends")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Pack the scene, upload what the farm lacks and submit a job."""
    from farm.domain.frames import parse_frames
    from farm.domain.outputs import FORMATS, SCENE, OutputNameError, check_pattern
    from farm.errors import BadRequest

    fmt = SCENE if format.lower() == SCENE else format.upper().replace("-", "_")
    if fmt != SCENE and fmt not in FORMATS:
        out.error(f"--format must be scene or one of {_FORMATS}, not {format!r}")
        raise typer.Exit(2)
    try:
        if frames is not None:
            parse_frames(frames)
        if output_pattern is not None:
            check_pattern(output_pattern)
    except BadRequest as exc:
        out.error(exc.message)
        raise typer.Exit(2) from exc
    except OutputNameError as exc:
        out.error(f"--output-pattern: {exc}")
        raise typer.Exit(2) from exc
    if max_cost is not None:
        _within_budget(blend, frames, max_cost, gpu=gpu, samples=samples, resolution=resolution)
    with _client() as client:
        try:
            with _bytes_progress("uploading", 1) as bar:
                task = bar.add_task("upload", total=None)
                result = client.submit(
                    blend,
                    frames,
                    name=name,
                    progress=lambda n: bar.advance(task, n),
                    on_total=lambda size, _files: bar.update(task, total=size),
                    allow_missing=allow_missing,
                    **_given(
                        ctx,
                        preset,
                        chunk_size=chunk,
                        priority=priority,
                        output_format=fmt,
                        output_pattern=output_pattern,
                        view_layers=list(view_layer or []),
                        camera=camera,
                        resolution=resolution,
                        samples=samples,
                        gpu=gpu,
                        allow_cpu_fallback=cpu_fallback,
                        max_attempts=max_attempts,
                        on_chunk_failure=on_chunk_failure,
                        preview=preview,
                        after=[ident.strip() for ident in (after or "").split(",") if ident.strip()],
                        frame_match=frame_match,
                        order=order,
                    ),
                )
        except ClientError as exc:
            raise _fail(exc) from exc
        except InvalidOptions as exc:
            for field, message in exc.problems:
                out.error(f"{FLAGS.get(field.split('.')[0], field)}: {message}")
            raise typer.Exit(2) from exc
        except ValueError as exc:
            out.error(str(exc))
            raise typer.Exit(2) from exc
        for missing in result.missing:
            out.warn(f"missing file (submitted anyway): {missing}")
        job = result.job
        if wait:
            # The id first: whoever stops following (Ctrl-C) can still find the job.
            message = f"job {job.id} submitted ({job.frames_total} frame(s), frames {job.frames}); following it"
            if as_json:
                out.err_console.print(message, highlight=False, soft_wrap=True)
            else:
                out.line(message)
            job = _follow(client, job.id, quiet=as_json)
        if as_json:
            out.emit_json(
                {
                    "job_id": job.id,
                    "status": job.status.value,
                    "uploaded_bytes": result.uploaded_bytes,
                    "reused_bytes": result.reused_bytes,
                    "uploaded_files": result.uploaded_files,
                    "frames_total": job.frames_total,
                    "frames_done": job.frames_done,
                }
            )
        else:
            out.line(
                f"job {job.id} {job.status.value}: {job.frames_total} frame(s) in {job.tasks_total} chunk(s); "
                f"uploaded {result.uploaded_bytes} bytes, reused {result.reused_bytes} bytes"
            )
        if wait and job.status.value != "completed":
            raise typer.Exit(1)


#: Outside a terminal, ``--wait`` prints a line this often (and at each change of status).
PLAIN_EVERY_S = 10.0


def _follow(client: FarmClient, job_id: str, quiet: bool = False) -> JobOut:
    """Poll the job until it ends: a bar with the frame total in a terminal, a plain line every few seconds (and
    at each change of status) elsewhere. Ctrl-C stops following, not the job, and says how to find it again."""
    try:
        return _poll(client, job_id, quiet)
    except KeyboardInterrupt:
        out.err_console.print(
            f"stopped following; job {job_id} keeps rendering. Follow it with: farm status {job_id}, "
            f"farm download {job_id} --out DIR when it is done, or farm cancel {job_id} to stop it",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(130) from None


def _poll(client: FarmClient, job_id: str, quiet: bool) -> JobOut:
    job = client.job(job_id)
    terminal = out.err_console.is_terminal
    said_at, said = time.monotonic(), ""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} frames"),
        TimeRemainingColumn(),
        console=out.err_console,
        transient=True,
        disable=quiet or not terminal,
    ) as bar:
        task = bar.add_task(job.name, total=job.frames_total)
        while job.status not in JOB_TERMINAL:
            bar.update(task, completed=job.frames_done, description=f"{job.name} [{job.status.value}]")
            now = time.monotonic()
            if not quiet and not terminal and (job.status.value != said or now - said_at >= PLAIN_EVERY_S):
                reason = f" ({job.status_reason})" if job.status_reason else ""
                out.err_console.print(
                    f"job {job.id}: {job.status.value}{reason}, {job.frames_done}/{job.frames_total} frames",
                    highlight=False,
                    soft_wrap=True,
                )
                said_at, said = now, job.status.value
            time.sleep(0.25)
            job = client.job(job_id)
        bar.update(task, completed=job.frames_done)
    return job


@app.command()
def jobs(
    status: Annotated[str | None, typer.Option(help="only jobs in this status")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List your jobs, newest first."""
    with _client() as client:
        try:
            items = client.jobs(status)
        except ClientError as exc:
            raise _fail(exc) from exc
    if as_json:
        out.emit_json({"jobs": [j.model_dump(mode="json") for j in items]})
        return
    out.table(
        ["id", "name", "status", "frames", "priority", "submitted"],
        [
            [
                j.id,
                j.name,
                j.status.value,
                f"{j.frames_done}/{j.frames_total}",
                j.priority,
                f"{j.created_at:%F %T}",
            ]
            for j in items
        ],
    )


@app.command()
def status(
    job_id: Annotated[str, typer.Argument(help="job id")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show a job's progress and its chunks."""
    with _client() as client:
        try:
            job = client.job(job_id)
            tasks = client.tasks(job_id).tasks
        except ClientError as exc:
            raise _fail(exc) from exc
    if as_json:
        data = job.model_dump(mode="json")
        data["tasks"] = [t.model_dump(mode="json", exclude={"attempts"}) for t in tasks]
        out.emit_json(data)
        return
    reason = f" ({job.status_reason})" if job.status_reason else ""
    out.line(f"{job.id} {job.name}: {job.status.value}{reason}, {job.frames_done}/{job.frames_total} frames")
    if job.warning:
        out.line(f"warning: {job.warning}")
    if job.product is not None:  # issue 13: the video of a video-output scene
        p = job.product
        made = f"{p.name} ({p.detail}), `farm download {job.id} --out DIR --video`"
        out.line(f"video: {made}" if p.status.value == "ready" else f"video failed: {p.reason}")
    if job.actions:
        out.line(f"you can: {', '.join(job.actions)} (farm ACTION {job.id})")
    rows = []
    for t in tasks:
        last = t.attempts[-1] if t.attempts else None
        rows.append(
            [
                t.index,
                t.frames,
                t.status.value,
                len(t.attempts),
                last.node if last else "",
                f"{last.seconds:.2f}s" if last and last.seconds is not None else "",
                last.fault if last else "",
                last.reason if last else "",
            ]
        )
    out.table(["chunk", "frames", "status", "attempts", "node", "time", "fault", "reason"], rows)


@app.command()
def logs(job_id: Annotated[str, typer.Argument(help="job id")]) -> None:
    """Print Blender's output for every attempt of the job."""
    with _client() as client:
        try:
            text = client.logs(job_id)
        except ClientError as exc:
            raise _fail(exc) from exc
    out.plain(text or "(no attempts yet)")


@app.command()
def download(
    job_id: Annotated[str, typer.Argument(help="job id")],
    out_dir: Annotated[Path, typer.Option("--out", help="folder for the frames")],
    video: Annotated[
        bool, typer.Option("--video", help="only the video the farm encoded (video-output scenes), not the frames")
    ] = False,
    preview: Annotated[
        bool, typer.Option("--preview", help="only the job's preview video (preview.mp4), not the frames")
    ] = False,
) -> None:
    """Download the job's frames, and its video when the scene's output is one; files already there with the same
    content are skipped."""
    with _client() as client:
        try:
            job = client.job(job_id)
            if preview:
                out_dir.mkdir(parents=True, exist_ok=True)
                path = client.download_preview(job_id, out_dir / "preview.mp4")
                out.line(f"preview downloaded: {path}")
                return
            if not video:
                frames = client.frames(job_id).frames
                total = sum(sum(layer.size for layer in f.layers) or f.size for f in frames)
                with _bytes_progress("downloading", total) as bar:
                    task = bar.add_task("download", total=total)
                    got, skipped = client.download(job_id, out_dir, progress=lambda n: bar.advance(task, n))
                out.line(f"{got} frame(s) downloaded, {skipped} already present, into {out_dir}")
            if video or (job.product is not None and job.product.status.value == "ready"):
                path, fetched = client.download_product(job_id, out_dir)
                out.line(f"video {'downloaded' if fetched else 'already present'}: {path}")
            elif job.product is not None:
                out.line(f"no video: its encode failed: {job.product.reason}")
        except ClientError as exc:
            raise _fail(exc) from exc


@app.command()
def usage(
    month: Annotated[str | None, typer.Option(help="YYYY-MM (default: all time)")] = None,
    company: Annotated[str | None, typer.Option(help="one company (platform admins)")] = None,
    per_job: Annotated[bool, typer.Option("--per-job", help="one row per job")] = False,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
    as_json: Annotated[bool, typer.Option("--json", help="same as --format json")] = False,
) -> None:
    """Resource usage and cost from the metering ledger, per company, job and resource."""
    from farm.client.admin import AdminClient
    from farm.metering import usage_report

    fmt = "json" if as_json else fmt.lower()
    if month is not None and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        out.error(f"--month must be a month as YYYY-MM, e.g. 2026-11, not {month!r}")
        raise typer.Exit(2)
    if fmt not in ("table", "csv", "json"):
        out.error(f"--format must be table, csv or json, not {fmt!r}")
        raise typer.Exit(2)
    with AdminClient() as client:
        try:
            # CSV is per job by nature: one line per company, job and resource.
            report = client.usage_report(month, company, per_job or fmt == "csv")
        except ClientError as exc:
            raise _fail(exc) from exc
    if fmt == "json":
        out.emit_json(report.model_dump(mode="json"))
    elif fmt == "csv":
        out.plain(usage_report.to_csv(report))
    else:
        columns, rows = usage_report.table_rows(report, per_job)
        out.table(columns, rows)


@app.command()
def demo(
    frames: Annotated[str, typer.Option(help="frames of the sample to render")] = "1-48",
    resolution: Annotated[str, typer.Option(help="WIDTHxHEIGHT")] = "64x64",
    samples: Annotated[int, typer.Option(help="Cycles samples")] = 4,
    chunk: Annotated[int, typer.Option(help="frames per chunk")] = 8,
    out_dir: Annotated[Path, typer.Option("--out", help="where the frames go")] = Path("demo-output"),
) -> None:
    """Start an embedded farm, render the bundled sample scene, download the frames, print a summary."""
    from farm.runtime.demo import run_demo

    try:
        summary = run_demo(frames, resolution, samples, chunk, out_dir, log=out.line)
    except ClientError as exc:
        raise _fail(exc) from exc
    out.table(["", ""], [[k, v] for k, v in summary.items()])
    if summary["status"] != "completed":
        raise typer.Exit(1)


__import__("farm.cli.addon", fromlist=["register"]).register(app)  # `farm addon build|install`
__import__("farm.cli.admin", fromlist=["register"]).register(app)  # `farm admin …`, `farm login`
__import__("farm.cli.jobctl", fromlist=["register"]).register(app)  # cancel/pause/…/priority, scheduler, api
__import__("farm.cli.migrate", fromlist=["register"]).register(app)  # `farm migrate` (the chart's hook Job)
__import__("farm.cli.library", fromlist=["register"]).register(app)  # `farm library …`, `farm admin report`
__import__("farm.cli.pipeline", fromlist=["register"]).register(app)  # preset, resubmit, admin webhook (#19)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
