"""The operator's report checked against a scripted month of use (rows written as the farm writes them)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from farm.cli.main import app
from farm.contract import Role
from farm.db.models import LibraryAsset, LibraryUse, TaskAttempt, WorkerBeat
from farm.metering import ledger
from farm.metering.operator_report import CapacitySampler, percentile, record_capacity, slots_now
from tests import factories

NOV = datetime(2026, 11, 1, tzinfo=UTC)


def at(day: int, hour: float = 0.0) -> datetime:
    return NOV + timedelta(days=day - 1, hours=hour)


def attempt_row(s, job, task, number, resources, started, seconds, outcome="completed"):
    for resource, count in resources.items():
        ledger.record(
            s,
            ledger.Usage(
                company_id=job.company_id,
                job_id=job.id,
                task_id=f"{job.id}-t{task}",
                attempt=number,
                node="node-1",
                resource=resource,
                count=count,
                started_at=started,
                ended_at=started + timedelta(seconds=seconds),
                seconds=seconds,
                outcome=outcome,
            ),
        )


def trouble_row(s, job, task, number, status, fault, started, seconds, worker):
    s.add(
        TaskAttempt(
            task_id=f"{job.id}-t{task}",
            number=number,
            node="node-1",
            worker=worker,
            status=status,
            started_at=started,
            ended_at=started + timedelta(seconds=seconds),
            seconds=seconds,
            fault=fault,
        )
    )


def script_month(db) -> None:
    """November 2026: two pools, two studios, a node failure, a lost attempt, library reuse; noise outside."""
    with db.session() as s:
        a = factories.company(s, "studio-a", now=at(1), rates={"gpu": 2.0, "cpu": 0.1})
        b = factories.company(s, "studio-b", now=at(1), rates={"cpu": 0.05})
        c = factories.company(s, "studio-c", now=at(1))
        # Capacity from the heartbeat samples: 2 GPU slots and 4 CPU slots for 100 hours; October's is not counted.
        record_capacity(s, {"gpu": 2, "cpu": 4}, at(10), 100 * 3600)
        record_capacity(s, {"gpu": 9, "cpu": 9}, NOV - timedelta(hours=1), 3600)
        # GPU job of studio-a created Nov 2 00:00: chunk 0 waits 600 s, runs 1 h; chunk 1 fails on a node after
        # waiting 1200 s (30 min, billed), its retry waits 300 s after that and runs 1 h.
        gpu_job = factories.job(s, a, frames="1-2", status="active", created_at=at(2), settings={"gpu": True})
        attempt_row(s, gpu_job, 0, 1, {"gpu": 1}, at(2, 600 / 3600), 3600)
        attempt_row(s, gpu_job, 1, 1, {"gpu": 1}, at(2, 1200 / 3600), 1800, outcome="failed")
        trouble_row(s, gpu_job, 1, 1, "failed", "node", at(2, 1200 / 3600), 1800, "gpu-0")
        attempt_row(s, gpu_job, 1, 2, {"gpu": 1}, at(2, (1200 + 1800 + 300) / 3600), 3600)
        # CPU job of studio-b created Nov 5: chunk 0 waits 1 h and runs 2 h on 4 cores; chunk 1 lost its worker
        # after 30 min (no ledger row: nobody paid).
        cpu_job = factories.job(s, b, frames="1-2", status="active", created_at=at(5))
        attempt_row(s, cpu_job, 0, 1, {"cpu": 4}, at(5, 1), 7200)
        trouble_row(s, cpu_job, 1, 1, "lost", "", at(5, 0.5), 1800, "cpu-0")
        s.add(WorkerBeat(name="cpu-0", node="node-1", state="idle", beat_at=at(5), cpus=4, gpus=0))
        # CPU job of studio-a created Nov 20: waits 30 s, runs 6 h on 2 cores.
        a_cpu = factories.job(s, a, frames="1", status="completed", created_at=at(20))
        attempt_row(s, a_cpu, 0, 1, {"cpu": 2}, at(20, 30 / 3600), 6 * 3600)
        # Noise: December's use and a storage sample are not November's slot use.
        attempt_row(s, a_cpu, 0, 2, {"cpu": 2}, datetime(2026, 12, 1, 1, tzinfo=UTC), 3600)
        ledger.record(s, ledger.Usage(a.id, None, None, None, "", "storage", 5.0, at(3), at(3, 1), 3600, "sampled"))
        # Library: studio-a's sky, used by studio-b (first in October), studio-c (first in November) and itself.
        sky = LibraryAsset(
            id="lib-sky",
            company_id=a.id,
            sha256="ab" * 32,
            size=5000,
            name="sky",
            filename="sky.hdr",
            tags=[],
            licence="CC0",
            visibility="all",
            created_at=NOV - timedelta(days=40),
        )
        s.add(sky)
        s.flush()
        for job_id, company, when in (
            ("job-oct", b, NOV - timedelta(days=3)),
            ("job-b2", b, at(6)),
            ("job-c1", c, at(7)),
            ("job-c2", c, at(8)),
            ("job-a1", a, at(9)),
        ):
            s.add(LibraryUse(asset_id=sky.id, job_id=job_id, company_id=company.id, size=5000, used_at=when))


EXPECTED_POOLS = {
    "gpu": {
        "capacity_slot_hours": 200.0,
        "used_slot_hours": 2.5,
        "utilisation": 0.0125,
        "idle_hours": 197.5,
        "queue_wait_p50_s": 600.0,
        "queue_wait_p95_s": 1200.0,
        "attempts": 3,
        "failed_attempts": 1,
        "node_failed_attempts": 1,
        "lost_attempts": 0,
        "platform_slot_hours": 0.5,
        "unbilled_slot_hours": 0.0,
        "cost_recovered": 5.0,
        "companies": [{"company": "studio-a", "slot_hours": 2.5, "share": 1.0, "cost": 5.0}],
    },
    "cpu": {
        "capacity_slot_hours": 400.0,
        "used_slot_hours": 8.0,
        "utilisation": 0.02,
        "idle_hours": 392.0,
        "queue_wait_p50_s": 30.0,
        "queue_wait_p95_s": 3600.0,
        "attempts": 3,
        "failed_attempts": 0,
        "node_failed_attempts": 0,
        "lost_attempts": 1,
        "platform_slot_hours": 0.5,
        "unbilled_slot_hours": 0.5,
        "cost_recovered": 1.6,
        "companies": [
            {"company": "studio-a", "slot_hours": 6.0, "share": 0.75, "cost": 1.2},
            {"company": "studio-b", "slot_hours": 2.0, "share": 0.25, "cost": 0.4},
        ],
    },
}


@pytest.fixture()
def farm(tmp_path):
    with factories.api_farm(tmp_path) as built:
        script_month(built.db)
        yield built


def test_report_figures_match_the_scripted_month(farm):
    with factories.client(farm) as http:
        answer = http.get("/api/v1/admin/report", params={"month": "2026-11"})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    pools = {p["pool"]: p for p in report["pools"]}
    for pool, expected in EXPECTED_POOLS.items():
        got = {k: pools[pool][k] for k in expected}
        assert _close(got, expected), (pool, got)
    assert report["library"] == {"assets_live": 1, "uses": 4, "uploads_avoided": 1, "bytes_avoided": 5000}


def _close(got, expected) -> bool:
    for key, want in expected.items():
        if key == "companies":
            if len(got[key]) != len(want):
                return False
            for g, w in zip(got[key], want, strict=True):
                if g["company"] != w["company"] or any(
                    abs(g[f] - w[f]) > 1e-6 for f in ("slot_hours", "share", "cost")
                ):
                    return False
        elif isinstance(want, float):
            if got[key] is None or abs(got[key] - want) > 1e-6:
                return False
        elif got[key] != want:
            return False
    return True


def test_report_is_for_platform_admins_and_checks_the_month(farm):
    with factories.client(farm) as http:
        with farm.db.session() as s:
            company_admin = factories.token(s, "studio-a", Role.COMPANY_ADMIN)
        denied = http.get(
            "/api/v1/admin/report", params={"month": "2026-11"}, headers={"Authorization": f"Bearer {company_admin}"}
        )
        assert denied.status_code == 403 and "platform-admin" in denied.json()["detail"]
        for bad in ("2026-13", "26-11", "1999-01", ""):
            assert http.get("/api/v1/admin/report", params={"month": bad}).status_code == 422, bad
        assert http.get("/api/v1/admin/report").status_code == 422
        empty = http.get("/api/v1/admin/report", params={"month": "2025-01"}).json()
        assert all(p["used_slot_hours"] == 0 and p["queue_wait_p50_s"] is None for p in empty["pools"])


def test_cli_report_table_csv_json(farm):
    with factories.serve(farm.app) as url:
        env = {"FARM_URL": url, "FARM_TOKEN": farm.admin_token}
        as_json = CliRunner().invoke(app, ["admin", "report", "--month", "2026-11", "--format", "json"], env=env)
        as_csv = CliRunner().invoke(app, ["admin", "report", "--month", "2026-11", "--format", "csv"], env=env)
        table = CliRunner().invoke(app, ["admin", "report", "--month", "2026-11"], env=env)
        bad = CliRunner().invoke(app, ["admin", "report", "--month", "nov"], env=env)
    assert as_json.exit_code == 0, as_json.output
    assert {p["pool"]: p["used_slot_hours"] for p in json.loads(as_json.output)["pools"]} == {"gpu": 2.5, "cpu": 8.0}
    assert as_csv.exit_code == 0, as_csv.output
    rows = list(csv.DictReader(io.StringIO(as_csv.output.split("\n\n")[0])))
    assert [(r["pool"], float(r["capacity_slot_hours"]), float(r["cost_recovered"])) for r in rows] == [
        ("gpu", 200.0, 5.0),
        ("cpu", 400.0, 1.6),
    ]
    assert table.exit_code == 0 and "studio-b" in table.output
    assert bad.exit_code == 2 and "YYYY-MM" in bad.output


def test_capacity_sampler_counts_fresh_slots_from_heartbeats(tmp_path):
    class Clock:
        def __init__(self) -> None:
            self.t = at(3)

        def now(self) -> datetime:
            return self.t

    with factories.api_farm(tmp_path) as built:
        clock = Clock()
        with built.db.session() as s:
            s.add_all(
                [
                    WorkerBeat(name="g0", node="n", state="busy", beat_at=clock.t, cpus=1, gpus=1),
                    WorkerBeat(name="c0", node="n", state="idle", beat_at=clock.t, cpus=4, gpus=0),
                    WorkerBeat(name="c1", node="n", state="lost", beat_at=clock.t, cpus=4, gpus=0),
                    WorkerBeat(
                        name="old", node="n", state="idle", beat_at=clock.t - timedelta(hours=1), cpus=4, gpus=0
                    ),
                ]
            )
        with built.db.session() as s:
            assert slots_now(s, clock.t) == {"gpu": 1, "cpu": 1}
        sampler = CapacitySampler(built.db, clock, interval_s=60)  # type: ignore[arg-type]
        sampler()  # marks the start
        clock.t += timedelta(seconds=30)
        sampler()  # not due yet
        clock.t += timedelta(seconds=90)
        with built.db.session() as s:  # keep the slots fresh for the sample
            for beat in s.query(WorkerBeat).filter(WorkerBeat.name.in_(["g0", "c0"])):
                beat.beat_at = clock.t
        sampler()
        with factories.client(built) as http:
            pools = {
                p["pool"]: p for p in http.get("/api/v1/admin/report", params={"month": "2026-11"}).json()["pools"]
            }
        assert pools["gpu"]["capacity_slot_hours"] == pytest.approx(120 / 3600, abs=1e-6)
        assert pools["cpu"]["capacity_slot_hours"] == pytest.approx(120 / 3600, abs=1e-6)


def test_percentile_is_nearest_rank():
    assert percentile([], 50) is None
    assert percentile([5.0], 95) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 95) == 95.0
