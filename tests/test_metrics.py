"""/metrics: farm state from the database on both backends, request latency by route template, promtool's
linter, a real Prometheus server scraping the embedded farm, and several uvicorn workers in multiprocess mode."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from farm.clock import SystemClock
from farm.db.engine import Database
from farm.db.models import Blob
from farm.errors import StorageError
from farm.lifecycle import tallies
from farm.metering import ledger
from farm.services import nodeview
from farm.services.nodeview import NodeState, Snapshot, WorkerState
from tests import factories
from web import metrics

pytest_plugins = ["tests.db.backends"]  # db_url: SQLite and PostgreSQL

PER_PROCESS = ("farm_api_request_seconds", "farm_storage_errors")


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, keyed by name and labels."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(parsed, name: str, **labels: str) -> float:
    return parsed[(name, frozenset(labels.items()))]


def farm_state(parsed):
    """The database-derived part of a scrape (what every replica and worker must agree on)."""
    return {k: v for k, v in parsed.items() if not k[0].startswith(PER_PROCESS)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def seed(db: Database) -> datetime:
    """Two companies, jobs in several states, frames, ledger rows, blobs, budgets and a scheduler heartbeat."""
    now = datetime.now(UTC)
    hour = timedelta(hours=1)
    with db.session() as s:
        acme = factories.company(s, "acme", now, id="c-acme", gpu_hours_budget=10.0)
        beta = factories.company(s, "beta", now, id="c-beta")
        jobs = {}

        def job(job_id, company, status, tasks, waited_s=None, **settings):
            jobs[job_id] = factories.job(
                s,
                company,
                frames="1-4",
                chunk_size=2,
                status=status,
                tasks=tasks,
                attempts=1,
                settings=settings,
                now=now,
                id=job_id,
                name=job_id,
                created_at=now - hour,
                started_at=now - hour + timedelta(seconds=waited_s) if waited_s is not None else None,
            )

        job("j-active", acme, "active", ["completed", "queued"], waited_s=12)
        job("j-gpu", acme, "queued", ["queued", "soft-failed"], gpu=True)
        job("j-done", beta, "completed", ["completed", "completed"], waited_s=4000)
        for frame, (job_id, seconds, device) in enumerate(
            [("j-active", 0.3, "CPU"), ("j-active", 2.0, "CPU"), ("j-done", 40.0, "OPTIX")], start=1
        ):
            factories.frames(
                s,
                jobs[job_id],
                [frame],
                now - timedelta(minutes=5),
                task_id="t-0",
                key=f"k{frame}",
                name=f"f{frame}.png",
                size=1000,
                sha256="0" * 64,
                device=device,
                render_seconds=seconds,
            )
        s.add(Blob(company_id="c-acme", sha256="a" * 64, size=3 * 1024**3, created_at=now))
        for company, resource, count, seconds in [("c-acme", "gpu", 1.0, 5400.0), ("c-acme", "cpu", 4.0, 100.0)]:
            ledger.record(  # appends the row and adds to the running total (issue 15)
                s,
                ledger.Usage(
                    company_id=company,
                    job_id="j-active",
                    task_id="t-0",
                    attempt=1,
                    node="n1",
                    resource=resource,
                    count=count,
                    started_at=now - timedelta(seconds=seconds),
                    ended_at=now,
                    seconds=seconds,
                    outcome="completed",
                ),
            )
        # Queue wait is observed per chunk at dispatch (tests/metrics_cost/test_totals.py goes through it).
        tallies.chunk_waited(s, "c-acme", 12.0)
        tallies.chunk_waited(s, "c-beta", 4000.0)
    nodeview.write(
        db,
        Snapshot(
            workers=(
                WorkerState("n1/slot-0", "n1", "busy", "t-1"),
                WorkerState("n1/slot-1", "n1", "idle"),
                WorkerState("n2/slot-0", "n2", "lost"),
            ),
            nodes=(NodeState("id-1", "n1", True), NodeState("id-2", "n2", False)),
        ),
        now,
    )
    return now


def check_seeded(parsed, now: datetime) -> None:
    assert value(parsed, "farm_metrics_database_up") == 1
    assert value(parsed, "farm_jobs", company="acme", state="active") == 1
    assert value(parsed, "farm_jobs", company="acme", state="queued") == 1
    assert value(parsed, "farm_jobs", company="beta", state="completed") == 1
    assert value(parsed, "farm_jobs", company="beta", state="failed") == 0
    assert value(parsed, "farm_tasks", state="completed") == 3
    assert value(parsed, "farm_tasks", state="queued") == 2
    assert value(parsed, "farm_tasks", state="running") == 0
    assert value(parsed, "farm_queue_depth", company="acme", resource="cpu") == 1
    assert value(parsed, "farm_queue_depth", company="acme", resource="gpu") == 2  # queued + soft-failed
    assert value(parsed, "farm_queue_depth", company="beta", resource="cpu") == 0
    assert value(parsed, "farm_frames_rendered_total", company="acme") == 2
    assert value(parsed, "farm_frames_rendered_total", company="beta") == 1
    assert value(parsed, "farm_frame_render_seconds_count", company="acme", device="cpu") == 2
    assert value(parsed, "farm_frame_render_seconds_bucket", company="acme", device="cpu", le="0.5") == 1
    assert value(parsed, "farm_frame_render_seconds_bucket", company="acme", device="cpu", le="2.5") == 2
    assert value(parsed, "farm_frame_render_seconds_sum", company="acme", device="cpu") == pytest.approx(2.3)
    assert value(parsed, "farm_frame_render_seconds_bucket", company="beta", device="optix", le="30.0") == 0
    assert value(parsed, "farm_resource_seconds_total", company="acme", resource="gpu") == 5400
    assert value(parsed, "farm_resource_seconds_total", company="acme", resource="cpu") == 400
    assert value(parsed, "farm_resource_seconds_total", company="beta", resource="gpu") == 0
    assert value(parsed, "farm_storage_bytes", company="acme") == 3 * 1024**3 + 2000
    assert value(parsed, "farm_storage_bytes", company="beta") == 1000
    progress = value(parsed, "farm_job_last_progress_timestamp_seconds", company="acme", job="j-active")
    assert progress == pytest.approx((now - timedelta(minutes=5)).timestamp(), abs=1)
    assert not any(k[0] == "farm_job_last_progress_timestamp_seconds" and ("job", "j-done") in k[1] for k in parsed)
    assert value(parsed, "farm_queue_wait_seconds_bucket", company="acme", le="15.0") == 1
    assert value(parsed, "farm_queue_wait_seconds_sum", company="acme") == pytest.approx(12, abs=0.01)
    assert value(parsed, "farm_queue_wait_seconds_bucket", company="beta", le="3600.0") == 0
    assert value(parsed, "farm_queue_wait_seconds_bucket", company="beta", le="7200.0") == 1
    assert value(parsed, "farm_company_budget_used_ratio", company="acme", resource="gpu") == pytest.approx(0.15)
    assert not any(k[0] == "farm_company_budget_used_ratio" and ("company", "beta") in k[1] for k in parsed)
    assert value(parsed, "farm_workers", node="n1", state="busy") == 1
    assert value(parsed, "farm_workers", node="n2", state="lost") == 1
    assert value(parsed, "farm_slot_utilisation") == 0.5
    assert value(parsed, "farm_nodes", state="alive") == 1
    assert value(parsed, "farm_nodes", state="lost") == 1


def test_farm_state_comes_from_the_database(db_url):
    db = Database(db_url)
    db.migrate()
    try:
        now = seed(db)
        text = metrics.render(metrics.FarmCollector(db, SystemClock())).decode()
        check_seeded(samples(text), now)
    finally:
        db.dispose()


def test_a_database_outage_is_visible_not_fatal(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'missing' / 'farm.db'}")  # never migrated: every query fails
    parsed = samples(metrics.render(metrics.FarmCollector(db, SystemClock())).decode())
    assert value(parsed, "farm_metrics_database_up") == 0
    db.dispose()


SCRAPE = "scrape-secret"


@pytest.fixture()
def api(tmp_path):
    with factories.api_farm(tmp_path, metrics_token=SCRAPE) as farm, factories.client(farm, auth=False) as http:
        http.headers["Authorization"] = f"Bearer {SCRAPE}"
        http.farm = farm
        yield http


def test_metrics_need_the_scrape_token_or_a_platform_admin(api):

    from farm.contract import Role

    assert api.get("/metrics").status_code == 200
    nobody = api.get("/metrics", headers={"Authorization": ""})
    assert nobody.status_code == 401 and "Bearer" in nobody.headers["www-authenticate"]
    assert api.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    with api.farm.db.session() as s:
        artist = factories.token(s, "studio-m", Role.ARTIST)
        admin = factories.token(s, "studio-m", Role.PLATFORM_ADMIN)
    refused = api.get("/metrics", headers={"Authorization": f"Bearer {artist}"})
    assert refused.status_code == 403 and "FARM_METRICS_TOKEN" in refused.json()["detail"]
    assert api.get("/metrics", headers={"Authorization": f"Bearer {admin}"}).status_code == 200


def test_latency_is_labelled_by_route_template_not_url(api):
    def count(**labels):
        return samples(api.get("/metrics").text).get(("farm_api_request_seconds_count", frozenset(labels.items())), 0)

    route = {"route": "/api/v1/jobs/{job_id}", "method": "GET", "status": "401"}
    before = count(**route)
    for job_id in ("job-a", "job-b", "job-c"):
        assert api.get(f"/api/v1/jobs/{job_id}").status_code == 401
    assert count(**route) == before + 3
    unmatched = {"route": "<unmatched>", "method": "GET", "status": "404"}
    before = count(**unmatched)
    api.get("/no/such/page/12345")
    assert count(**unmatched) == before + 1
    text = api.get("/metrics").text
    assert "job-a" not in text and "12345" not in text
    api.request("BREW", "/healthz")
    assert 'method="OTHER"' in api.get("/metrics").text


class BrokenStore:
    """The ObjectStore seam, failing like an unreachable S3 would."""

    def stat(self, key):
        raise StorageError("S3 unreachable")

    def open(self, key):
        def chunks():
            yield b"partial"
            raise StorageError("connection reset")

        return chunks()


def test_storage_errors_are_counted_by_operation():
    def errors(operation):
        parsed = samples(metrics.generate_latest(metrics.PROCESS_REGISTRY).decode())
        return value(parsed, "farm_storage_errors_total", operation=operation)

    store = metrics.CountingStore(BrokenStore())  # type: ignore[arg-type]
    stat_before, open_before = errors("stat"), errors("open")
    with pytest.raises(StorageError):
        store.stat("blobs/x")
    with pytest.raises(StorageError):
        list(store.open("outputs/x"))
    assert errors("stat") == stat_before + 1
    assert errors("open") == open_before + 1


# ---- the embedded farm, promtool, and a real Prometheus ---------------------------------------------------------
@pytest.fixture(scope="module")
def rendered(farm, sample_blend):
    from farm.client import FarmClient
    from farm.domain.states import JOB_TERMINAL

    with FarmClient(farm.url, farm.admin_token) as client:
        job = client.submit(sample_blend, "1-2", name="metrics", chunk_size=2).job
        deadline = time.monotonic() + 180
        while client.job(job.id).status not in JOB_TERMINAL:
            assert time.monotonic() < deadline, "the metrics test job did not finish"
            time.sleep(0.1)
        return client.job(job.id)


def admin(farm):
    return {"Authorization": f"Bearer {farm.admin_token}"}


@pytest.mark.ray
@pytest.mark.blender
def test_embedded_scrape_reports_the_render(farm, rendered):
    assert rendered.status.value == "completed"
    parsed = samples(httpx.get(f"{farm.url}/metrics", headers=admin(farm)).text)
    company = rendered.company
    assert value(parsed, "farm_frames_rendered_total", company=company) >= 2
    assert value(parsed, "farm_frame_render_seconds_count", company=company, device="cpu") >= 2
    assert value(parsed, "farm_resource_seconds_total", company=company, resource="cpu") > 0
    assert value(parsed, "farm_storage_bytes", company=company) > 0
    assert value(parsed, "farm_jobs", company=company, state="completed") >= 1
    # Worker states come straight from the in-process pool.
    assert sum(v for (name, _), v in parsed.items() if name == "farm_workers") == len(farm.pool.slots)
    assert value(parsed, "farm_nodes", state="alive") == 1


@pytest.mark.ray
@pytest.mark.blender
def test_promtool_accepts_the_scrape(farm, rendered):
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (Debian package prometheus): run scripts/system-deps.sh as root")
    text = httpx.get(f"{farm.url}/metrics", headers=admin(farm)).text
    checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert checked.returncode == 0 and checked.stdout.strip() == "", checked.stdout + checked.stderr


@pytest.mark.ray
@pytest.mark.blender
def test_a_real_prometheus_scrapes_the_farm_and_answers_promql(farm, rendered, tmp_path):
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus is not installed (Debian package prometheus): run scripts/system-deps.sh as root")
    target = farm.url.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        f"  - job_name: render-farm\n    metrics_path: /metrics\n"
        f"    authorization:\n      credentials: {farm.admin_token}\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    server = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{port}/api/v1/query"
    try:
        deadline = time.monotonic() + 60
        result: list = []
        while time.monotonic() < deadline:
            assert server.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
            try:
                answer = httpx.get(api, params={"query": f'farm_frames_rendered_total{{company="{rendered.company}"}}'})
                result = answer.json()["data"]["result"] if answer.status_code == 200 else []
            except httpx.TransportError:
                result = []
            if result:
                break
            time.sleep(0.5)
        assert result, "Prometheus never stored farm_frames_rendered_total from the farm"
        assert float(result[0]["value"][1]) >= 2
        assert result[0]["metric"]["job"] == "render-farm"  # the scrape job; the farm's own `job` becomes exported_job
        up = httpx.get(api, params={"query": 'up{job="render-farm"}'}).json()["data"]["result"]
        assert float(up[0]["value"][1]) == 1
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


# ---- several uvicorn workers -------------------------------------------------------------------------------------
def test_several_uvicorn_workers_agree_and_sum_their_latency(tmp_path):
    db_file = tmp_path / "farm.db"
    db = Database(f"sqlite:///{db_file}")
    db.migrate()
    seeded_at = seed(db)
    db.dispose()
    multiproc = tmp_path / "prometheus-multiproc"
    multiproc.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "FARM_DATA_DIR": str(tmp_path),
        "FARM_DATABASE_URL": f"sqlite:///{db_file}",
        "FARM_METRICS_TOKEN": SCRAPE,
    }
    log = (tmp_path / "uvicorn.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "web.asgi:create_app_from_env",
            "--workers",
            "2",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    health_calls = 0
    lock = threading.Lock()

    def hit() -> None:
        nonlocal health_calls
        if httpx.get(f"{base}/healthz").status_code == 200:  # a new connection each: workers share the load
            with lock:
                health_calls += 1

    def worker_pids() -> set[str]:
        return {p.stem.rsplit("_", 1)[-1] for p in multiproc.glob("histogram_*.db")}

    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (tmp_path / "uvicorn.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "uvicorn did not start: " + (tmp_path / "uvicorn.log").read_text()
            try:
                hit()
                break
            except httpx.TransportError:
                time.sleep(0.3)
        # Keep calling until both workers have served requests (the kernel picks which worker accepts).
        while len(worker_pids()) < 2 and time.monotonic() < deadline:
            threads = [threading.Thread(target=hit) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert len(worker_pids()) >= 2, "only one uvicorn worker ever answered"

        first = samples(httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {SCRAPE}"}).text)
        second = samples(httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {SCRAPE}"}).text)
        assert farm_state(first) == farm_state(second)
        check_seeded(first, seeded_at)
        healthz = {"route": "/healthz", "method": "GET", "status": "200"}
        for scrape in (first, second):
            assert value(scrape, "farm_api_request_seconds_count", **healthz) == health_calls
            assert value(scrape, "farm_api_request_seconds_bucket", le="+Inf", **healthz) == health_calls
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
