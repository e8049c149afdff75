"""`farm estimate` and `farm submit --max-cost` with real Blender: sample frames are rendered and metered, and the
estimate is the ledger's slot-seconds per sampled frame times the frames, priced by the company's rate card."""

from __future__ import annotations

import json
import secrets

import httpx
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from farm.cli.main import app
from farm.client.admin import AdminClient
from farm.contract import CompanyCreate, Role, TokenCreate
from farm.db.models import Job, UsageEntry

pytestmark = [pytest.mark.ray, pytest.mark.blender]

RATE = 36.0  # per CPU-hour: 0.01 per CPU-second, so small renders give readable prices


def test_estimate_then_max_cost(farm, sample_blend, monkeypatch):
    name = f"est-{secrets.token_hex(3)}"
    with AdminClient(farm.url, farm.admin_token) as admin:
        admin.create_company(CompanyCreate(name=name, rates={"cpu": RATE}))
        token = admin.create_token(TokenCreate(company=name, role=Role.COMPANY_ADMIN)).token
    monkeypatch.setenv("FARM_URL", farm.url)
    monkeypatch.setenv("FARM_TOKEN", token)
    runner = CliRunner()
    result = runner.invoke(app, ["estimate", str(sample_blend), "--frames", "1-12", "--json"])
    assert result.exit_code == 0, result.output
    est = json.loads(result.output[result.output.index("{") :])
    assert est["ready"] and est["frames_total"] == 12 and est["sampled_frames"] == [1, 6, 12]
    with farm.db.session() as s:
        metered = s.scalar(
            select(func.sum(UsageEntry.seconds * UsageEntry.count)).where(
                UsageEntry.job_id == est["job_id"], UsageEntry.resource == "cpu"
            )
        )
    assert metered and metered > 0  # the samples are metered like any render
    hours = metered / 3 * 12 / 3600
    assert est["resource"] == "cpu" and est["resource_hours"] == pytest.approx(hours, abs=1e-4)
    assert est["cost"] == pytest.approx(hours * RATE, abs=1e-3)
    assert est["cost_low"] <= 0.75 * est["cost"] + 1e-3 and est["cost_high"] >= 1.25 * est["cost"] - 1e-3

    with farm.db.session() as s:
        before = s.scalar(select(func.count()).select_from(Job).where(Job.name.not_like("estimate %")))
    refused = runner.invoke(app, ["submit", str(sample_blend), "--frames", "1-12", "--max-cost", "0.000001"])
    assert refused.exit_code == 1 and "exceeds" in refused.output
    with farm.db.session() as s:
        after = s.scalar(select(func.count()).select_from(Job).where(Job.name.not_like("estimate %")))
    assert after == before  # nothing but the estimate's samples was submitted
    accepted = runner.invoke(app, ["submit", str(sample_blend), "--frames", "1", "--max-cost", "1000", "--json"])
    assert accepted.exit_code == 0, accepted.output
    job_id = json.loads(accepted.stdout)["job_id"]
    plain = httpx.get(f"{farm.url}/api/v1/jobs/{job_id}/estimate", headers={"Authorization": f"Bearer {token}"})
    assert plain.status_code == 409 and "not an estimate" in plain.json()["detail"]  # an ordinary job
