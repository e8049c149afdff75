"""Named job presets of a company (``farm preset``): submit settings saved once, applied under a request's own.

A request that names a preset gets each of the preset's settings it did not set itself (what a client sent, by
pydantic's ``model_fields_set``); the merged request is checked like any other.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from farm.clock import utc
from farm.contract import PRESET_FIELDS, JobCreate, JobSettings, PresetOut, PresetSave, PresetSettings
from farm.db.models import Job, JobPreset
from farm.errors import NotFound, ValidationFailed
from farm.services import presets_shared
from farm.services.auth import Principal

#: Presets one company may hold.
MAX_PRESETS = 200


def _out(row: JobPreset) -> PresetOut:
    return PresetOut(
        name=row.name,
        settings=PresetSettings.model_validate(row.settings),
        created_at=utc(row.created_at),
        updated_at=utc(row.updated_at),
    )


def _row(session: Session, who: Principal, name: str) -> JobPreset:
    row = session.get(JobPreset, (who.company_id, name))
    if row is None:
        raise NotFound(f"preset {name!r} not found")
    return row


def settings_of_job(job: Job) -> PresetSettings:
    """The preset-able settings a job was submitted with."""
    stored = JobSettings.of(job.settings).model_dump(mode="json")
    values = {key: stored[key] for key in PRESET_FIELDS if key in stored and stored[key] is not None}
    values["view_layers"] = list(stored.get("view_layers") or [])
    values.update(chunk_size=job.chunk_size, priority=job.priority)
    return PresetSettings.model_validate(values)


def save(session: Session, who: Principal, name: str, body: PresetSave, now: datetime) -> PresetOut:
    """Create or replace the preset; ``from_job`` (same company, 404 otherwise) gives the starting values."""
    values: dict[str, object] = {}
    if body.from_job is not None:
        job = session.scalar(select(Job).where(Job.id == body.from_job, Job.company_id == who.company_id))
        if job is None:
            raise NotFound(f"job {body.from_job!r} not found")
        values = settings_of_job(job).model_dump(mode="json", exclude_none=True)
    values.update(body.settings.model_dump(mode="json", exclude_none=True))
    if not values:
        raise ValidationFailed("a preset needs settings: give some (e.g. samples, chunk_size) or from_job")
    row = session.get(JobPreset, (who.company_id, name))
    if row is None:
        held = len(list(session.scalars(select(JobPreset.name).where(JobPreset.company_id == who.company_id))))
        if held >= MAX_PRESETS:
            raise ValidationFailed(f"your company has {held} presets already (at most {MAX_PRESETS})")
        row = JobPreset(company_id=who.company_id, name=name, settings=values, created_at=now, updated_at=now)
        session.add(row)
    else:
        row.settings, row.updated_at = values, now
    session.flush()
    return _out(row)


def get(session: Session, who: Principal, name: str) -> PresetOut:
    return _out(_row(session, who, name))


def listed(session: Session, who: Principal) -> list[PresetOut]:
    rows = session.scalars(select(JobPreset).where(JobPreset.company_id == who.company_id).order_by(JobPreset.name))
    return [_out(row) for row in rows]


def delete(session: Session, who: Principal, name: str) -> None:
    session.delete(_row(session, who, name))


def apply(session: Session, who: Principal, spec: JobCreate) -> JobCreate:
    """``spec`` with its preset's settings where it set none (404 for an unknown preset, 422 if the result breaks
    a rule); the preset is the company's own or a shared one (``presets_shared.resolve``)."""
    if spec.preset is None:
        return spec
    stored = presets_shared.resolve(session, who, spec.preset)
    given = spec.model_dump(mode="json", include=spec.model_fields_set)
    merged = {**{k: v for k, v in stored.items() if k in PRESET_FIELDS}, **given}
    try:
        return JobCreate.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'preset'}: {str(e['msg']).removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ValidationFailed(f"with preset {spec.preset!r}: {problems}") from None
