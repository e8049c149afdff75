"""``farm preset …``, ``farm resubmit`` and ``farm admin webhook …`` (issue 19)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from farm.cli import output as out
from farm.client import ClientError
from farm.client.pipeline import PipelineClient
from farm.contract import (
    JOB_EVENTS,
    EstimateOut,
    JobOut,
    PresetOut,
    PresetPublish,
    PresetSave,
    PresetSettings,
    ResubmitRequest,
    SharedPresetOut,
    WebhookCreate,
    WebhookEvent,
)

preset_app = typer.Typer(
    help="Named job presets: your company's (save, list, show, delete) and shared ones (publish, unpublish). "
    "`farm submit --preset NAME` takes your company's NAME first, then the shared NAME; NAME@PUBLISHER names a "
    "shared one.",
    no_args_is_help=True,
)
webhook_app = typer.Typer(
    help="Webhooks: job events POSTed to your pipeline, signed with HMAC-SHA256.", no_args_is_help=True
)

AsJson = Annotated[bool, typer.Option("--json", help="print one JSON object")]
Company = Annotated[str | None, typer.Option("--company", help="another company (platform admins)")]


def _client() -> PipelineClient:
    return PipelineClient()


def _fail(exc: ClientError) -> typer.Exit:
    out.error(exc.detail)
    return typer.Exit(1)


def _invalid(exc: ValidationError, flags: dict[str, str]) -> typer.Exit:
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        out.error(f"{flags.get(where, where)}: {message}" if where else message)
    return typer.Exit(2)


_PRESET_FLAGS = {
    "chunk_size": "--chunk",
    "priority": "--priority",
    "output_format": "--format",
    "resolution": "--resolution",
    "samples": "--samples",
    "max_attempts": "--max-attempts",
    "name": "--name",
    "frames": "--frames",
    "url": "URL",
    "events": "--event",
    "description": "--description",
    "to": "--to",
}


def _show_preset(preset: PresetOut, as_json: bool) -> None:
    if as_json:
        out.emit_json(preset.model_dump(mode="json", exclude_none=True))
        return
    values = preset.settings.model_dump(mode="json", exclude_none=True)
    out.line(f"preset {preset.name}: " + (", ".join(f"{k}={v}" for k, v in values.items()) or "(empty)"))


@preset_app.command("save")
def preset_save(
    name: Annotated[str, typer.Argument(help="preset name: letters, digits, '.', '_', '-'")],
    from_job: Annotated[str | None, typer.Option("--from", help="start from this job's settings")] = None,
    chunk: Annotated[int | None, typer.Option("--chunk", help="frames per chunk")] = None,
    priority: Annotated[int | None, typer.Option(help="0-100")] = None,
    format: Annotated[str | None, typer.Option("--format", help="scene or an output format, e.g. PNG")] = None,
    resolution: Annotated[str | None, typer.Option(help="e.g. 1920x1080")] = None,
    samples: Annotated[int | None, typer.Option(help="Cycles samples")] = None,
    gpu: Annotated[bool | None, typer.Option("--gpu/--cpu", help="render on GPU (or CPU) slots")] = None,
    max_attempts: Annotated[int | None, typer.Option(help="attempts per chunk")] = None,
    as_json: AsJson = False,
) -> None:
    """Save (or replace) a preset: `farm submit --preset NAME` uses it under the flags you give."""
    try:
        settings = PresetSettings(
            chunk_size=chunk,
            priority=priority,
            output_format=(format if format is None or format.lower() == "scene" else format.upper()),
            resolution=resolution,
            samples=samples,
            gpu=gpu,
            max_attempts=max_attempts,
        )
        body = PresetSave(settings=settings, from_job=from_job)
    except ValidationError as exc:
        raise _invalid(exc, _PRESET_FLAGS) from exc
    with _client() as client:
        try:
            preset = client.save_preset(name, body)
        except ClientError as exc:
            raise _fail(exc) from exc
    _show_preset(preset, as_json)


def _values(settings: PresetSettings) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.model_dump(mode="json", exclude_none=True).items())


def _source(shared: SharedPresetOut) -> str:
    """Who shares it: ``platform`` for the platform's practice, else the publishing company."""
    return f"shared by {'platform (' + shared.publisher + ')' if shared.by_platform else shared.publisher}"


@preset_app.command("list")
def preset_list(as_json: AsJson = False) -> None:
    """Your company's presets and the shared ones you may use, marked (own / shared by …)."""
    with _client() as client:
        try:
            items = client.presets()
            shared = client.shared_presets()
        except ClientError as exc:
            raise _fail(exc) from exc
    if as_json:
        out.emit_json(
            {
                "presets": [p.model_dump(mode="json", exclude_none=True) for p in items],
                "shared": [p.model_dump(mode="json", exclude_none=True) for p in shared],
            }
        )
        return
    published = {p.name: p for p in shared if p.mine}
    rows: list[list[object]] = []
    for p in items:
        mark = "own"
        if p.name in published:
            mine = published[p.name]
            mark += ", published to " + (", ".join(mine.to) if mine.to else "every company")
        rows.append([p.name, mark, _values(p.settings), "", p.updated_at.strftime("%Y-%m-%d %H:%M")])
    for q in shared:
        if not q.mine:
            rows.append(
                [q.ref, _source(q), _values(q.settings), q.description, q.updated_at.strftime("%Y-%m-%d %H:%M")]
            )
    out.table(["NAME", "SOURCE", "SETTINGS", "WHEN TO USE", "UPDATED"], rows)


@preset_app.command("show")
def preset_show(
    name: Annotated[str, typer.Argument(help="preset name, or NAME@PUBLISHER for a shared one")],
    as_json: AsJson = False,
) -> None:
    """One preset's settings: your company's NAME, else the shared NAME (as `farm submit --preset` finds it)."""
    with _client() as client:
        try:
            if "@" in name:
                shared = client.shared_preset(name)
            else:
                try:
                    _show_preset(client.preset(name), as_json)
                    return
                except ClientError as exc:
                    if exc.status != 404:
                        raise
                    found = [p for p in client.shared_presets() if p.name == name and not p.mine]
                    if len(found) != 1:
                        raise (exc if not found else ClientError(409, _ambiguous(name, found))) from None
                    shared = found[0]
        except ClientError as exc:
            raise _fail(exc) from exc
    if as_json:
        out.emit_json(shared.model_dump(mode="json", exclude_none=True))
        return
    out.line(f"preset {shared.ref} ({_source(shared)}): {_values(shared.settings) or '(empty)'}")
    out.line(f"when to use it: {shared.description}")


def _ambiguous(name: str, found: list[SharedPresetOut]) -> str:
    refs = ", ".join(sorted(p.ref for p in found))
    return f"several shared presets are called {name!r}: {refs}; name one as NAME@PUBLISHER"


@preset_app.command("publish")
def preset_publish(
    name: Annotated[str, typer.Argument(help="your company's preset to share")],
    description: Annotated[str, typer.Option("--description", help="when to use it: the scenes and purposes")],
    to: Annotated[
        list[str] | None, typer.Option("--to", help="only this company (repeatable); default: every company")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Share a preset (company admins; a platform admin's is the platform's practice). Publishing again replaces
    the shared copy with the preset's settings now."""
    try:
        body = PresetPublish(description=description, to=to or [])
    except ValidationError as exc:
        raise _invalid(exc, _PRESET_FLAGS) from exc
    with _client() as client:
        try:
            shared = client.publish_preset(name, body)
        except ClientError as exc:
            raise _fail(exc) from exc
    if as_json:
        out.emit_json(shared.model_dump(mode="json", exclude_none=True))
        return
    audience = ", ".join(shared.to) if shared.to else "every company"
    out.line(f"preset {shared.ref} shared with {audience}: `farm submit --preset {shared.ref}`")


@preset_app.command("unpublish")
def preset_unpublish(
    name: Annotated[str, typer.Argument(help="your company's shared preset")], company: Company = None
) -> None:
    """Stop sharing a preset (your own preset stays; jobs submitted with it keep their settings)."""
    with _client() as client:
        try:
            client.unpublish_preset(name, company)
        except ClientError as exc:
            raise _fail(exc) from exc
    out.line(f"preset {name} is no longer shared")


@preset_app.command("delete")
def preset_delete(name: Annotated[str, typer.Argument(help="preset name")]) -> None:
    """Delete a preset (jobs submitted with it keep their settings)."""
    with _client() as client:
        try:
            client.delete_preset(name)
        except ClientError as exc:
            raise _fail(exc) from exc
    out.line(f"preset {name} deleted")


def resubmit(
    job_id: Annotated[str, typer.Argument(help="the job whose inputs to render again")],
    frames: Annotated[str | None, typer.Option(help="frames, e.g. 1-10 (default: the job's)")] = None,
    samples: Annotated[int | None, typer.Option(help="override Cycles samples")] = None,
    resolution: Annotated[str | None, typer.Option(help="override, e.g. 1920x1080")] = None,
    priority: Annotated[int | None, typer.Option(help="0-100")] = None,
    chunk: Annotated[int | None, typer.Option("--chunk", help="frames per chunk")] = None,
    name: Annotated[str | None, typer.Option(help="the new job's name (default: the old one's)")] = None,
    as_json: AsJson = False,
) -> None:
    """Submit a job again from its inputs on the farm (nothing is uploaded), with some settings changed."""
    try:
        change = ResubmitRequest(
            frames=frames, samples=samples, resolution=resolution, priority=priority, chunk_size=chunk, name=name
        )
    except ValidationError as exc:
        raise _invalid(exc, _PRESET_FLAGS) from exc
    with _client() as client:
        try:
            job: JobOut = client.resubmit(job_id, change)
        except ClientError as exc:
            raise _fail(exc) from exc
    if as_json:
        out.emit_json({"job_id": job.id, "status": job.status.value, "frames": job.frames, "from": job_id})
        return
    out.line(f"job {job.id} {job.status.value}: {job.frames_total} frame(s) from the inputs of {job_id}")


@webhook_app.command("add")
def webhook_add(
    url: Annotated[str, typer.Argument(help="http(s) URL that receives the events")],
    event: Annotated[
        list[str] | None,
        typer.Option("--event", help=f"send only this event (repeatable): {', '.join(e.value for e in JOB_EVENTS)}"),
    ] = None,
    company: Company = None,
    as_json: AsJson = False,
) -> None:
    """Add a webhook; prints its signing secret once."""
    try:
        spec = WebhookCreate(url=url, events=[WebhookEvent(e) for e in event] if event else list(JOB_EVENTS))
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            raise _invalid(exc, _PRESET_FLAGS) from exc
        out.error(f"--event: {exc}; choose from {', '.join(e.value for e in JOB_EVENTS)}")
        raise typer.Exit(2) from exc
    with _client() as client:
        try:
            hook = client.add_webhook(spec, company)
        except ClientError as exc:
            raise _fail(exc) from exc
    if as_json:
        out.emit_json(hook.model_dump(mode="json"))
        return
    out.line(f"webhook {hook.id} -> {hook.url} ({', '.join(e.value for e in hook.events)})")
    out.plain(hook.secret)
    out.warn("the line above is the HMAC-SHA256 secret of X-Farm-Signature; it is not shown again")


@webhook_app.command("list")
def webhook_list(company: Company = None, as_json: AsJson = False) -> None:
    """Your company's webhooks."""
    with _client() as client:
        try:
            hooks = client.webhooks(company)
        except ClientError as exc:
            raise _fail(exc) from exc
    if as_json:
        out.emit_json({"webhooks": [h.model_dump(mode="json") for h in hooks]})
        return
    out.table(["ID", "URL", "EVENTS"], [[h.id, h.url, ", ".join(e.value for e in h.events)] for h in hooks])


@webhook_app.command("remove")
def webhook_remove(webhook_id: Annotated[str, typer.Argument(help="webhook id")], company: Company = None) -> None:
    """Remove a webhook (its pending deliveries are given up)."""
    with _client() as client:
        try:
            client.remove_webhook(webhook_id, company)
        except ClientError as exc:
            raise _fail(exc) from exc
    out.line(f"webhook {webhook_id} removed")


@webhook_app.command("test")
def webhook_test(webhook_id: Annotated[str, typer.Argument(help="webhook id")], company: Company = None) -> None:
    """Send a `test` event; `farm admin webhook log` shows whether it arrived."""
    with _client() as client:
        try:
            delivery = client.test_webhook(webhook_id, company)
        except ClientError as exc:
            raise _fail(exc) from exc
    out.line(f"test event queued as delivery {delivery.id}; see `farm admin webhook log --webhook {webhook_id}`")


@webhook_app.command("log")
def webhook_log(
    webhook_id: Annotated[str | None, typer.Option("--webhook", help="only this webhook's deliveries")] = None,
    limit: Annotated[int, typer.Option(help="newest N deliveries")] = 50,
    company: Company = None,
    as_json: AsJson = False,
) -> None:
    """Deliveries, newest first: event, job, status, attempts, last answer."""
    with _client() as client:
        try:
            rows = client.webhook_log(company, webhook_id, limit)
        except ClientError as exc:
            raise _fail(exc) from exc
    if as_json:
        out.emit_json({"deliveries": [d.model_dump(mode="json") for d in rows]})
        return
    out.table(
        ["ID", "WEBHOOK", "EVENT", "JOB", "STATUS", "TRIES", "LAST"],
        [
            [d.id, d.webhook_id, d.event, d.job_id or "", d.status, d.attempts, d.last_error or d.last_code or ""]
            for d in rows
        ],
    )


def show_estimate(est: EstimateOut) -> str:
    """One line: price with its band, and the resource-hours behind it."""
    return (
        f"estimate for {est.frames_total} frame(s) ({est.frames}): {est.cost:.2f} {est.currency} "
        f"({est.cost_low:.2f}-{est.cost_high:.2f}) = {est.resource_hours:.3f} {est.resource}-hours "
        f"({est.resource_hours_low:.3f}-{est.resource_hours_high:.3f}) at {est.rate:.2f} {est.currency}/hour; "
        f"{est.seconds_per_frame:.2f} s per frame from frames {', '.join(map(str, est.sampled_frames))} "
        f"(sample job {est.job_id})"
    )


def estimate(
    blend: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help=".blend file to estimate")],
    frames: Annotated[str | None, typer.Option(help="frames of the job (default: the scene's range)")] = None,
    gpu: Annotated[bool, typer.Option("--gpu", help="estimate on GPU slots")] = False,
    samples: Annotated[int | None, typer.Option(help="override Cycles samples")] = None,
    resolution: Annotated[str | None, typer.Option(help="override, e.g. 1920x1080")] = None,
    as_json: AsJson = False,
) -> None:
    """Render 3 sample frames on a farm slot (metered) and extrapolate the job's resource-hours and price."""
    with _client() as client:
        try:
            est = client.run_estimate(
                blend,
                frames,
                gpu=gpu,
                samples=samples,
                resolution=resolution,
                on_submitted=lambda job_id: out.err_console.print(f"rendering samples as job {job_id}"),
            )
        except ClientError as exc:
            raise _fail(exc) from exc
        except ValueError as exc:
            out.error(str(exc))
            raise typer.Exit(2) from exc
    if as_json:
        out.emit_json(est.model_dump(mode="json"))
    elif est.ready:
        out.line(show_estimate(est))
    if not est.ready:
        out.error(f"the sample job {est.job_id} ended {est.status.value}: no estimate (see farm status {est.job_id})")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``preset`` and ``resubmit`` to ``farm``, ``webhook`` to ``farm admin``."""
    from farm.cli.admin import admin_app

    app.add_typer(preset_app, name="preset")
    app.command("resubmit")(resubmit)
    app.command("estimate")(estimate)
    admin_app.add_typer(webhook_app, name="webhook")
