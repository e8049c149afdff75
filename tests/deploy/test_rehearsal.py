"""The production rehearsal: the chart rendered with its CI values, its processes started on loopback exactly as
rendered (``plan.py`` says what is added and why), a real scene rendered through them (``rehearsal.py``).

It keeps chart and code in step: a setting the chart forgets (it once never set ``FARM_STORAGE=s3``, so each pod
kept blobs in its own container folder) makes the job fail here. Runs inside ``unshare --net --pid --fork
--mount-proc`` (root): only ``lo`` exists and every process dies with the namespace. One run (about two minutes)
serves every test below; a second part restores a database dump and checks ``farm admin fsck``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.helm.conftest import NAMESPACE, ci_values, render
from tests.isolated import run_scenario, skip_unless_isolated

from .plan import build_plan

pytestmark = [pytest.mark.ray, pytest.mark.blender, pytest.mark.timeout(600)]

HERE = Path(__file__).resolve().parent
TIMEOUT_S = 480
FRAMES = [1, 2, 3, 4]


@pytest.fixture(scope="module")
def plan() -> dict[str, Any]:
    return build_plan(render(ci_values()), NAMESPACE)


@pytest.fixture(scope="module")
def report(plan: dict[str, Any], sample_blend: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from tests.db.postgres import available

    skip_unless_isolated("network, PID and mount namespaces")
    if not available():
        pytest.skip("PostgreSQL is not installed: run scripts/system-deps.sh")
    tmp = tmp_path_factory.mktemp("rehearsal")
    (tmp / "plan.json").write_text(json.dumps(plan))
    out = tmp / "report.json"
    try:
        return run_scenario(
            HERE / "rehearsal.py", [tmp / "plan.json", sample_blend, out], out, timeout=TIMEOUT_S, log_chars=2500
        )
    finally:
        if out.exists():  # its tmpfs mounts went with the namespace; the folders stay behind
            shutil.rmtree(json.loads(out.read_text())["work"], ignore_errors=True)


def test_plan_takes_every_process_from_the_rendered_manifests(plan: dict[str, Any]) -> None:
    names = [p["name"] for p in plan["pods"]]
    assert names.count("ray-head") == 1
    assert len([n for n in names if n.startswith("ray-cpu-")]) == 2
    apis = [p for p in plan["pods"] if p["name"].startswith("farm-render-farm-api-")]
    assert [p["main"]["argv"][-1] for p in apis] == ["8321", "18321"]
    # Two scheduler replicas (one leads, one stands by: issue 14), each with its raylet sidecar.
    schedulers = [p for p in plan["pods"] if p["name"].startswith("farm-render-farm-scheduler-")]
    assert len(schedulers) == 2
    for scheduler in schedulers:
        assert scheduler["main"]["argv"][:2] == ["farm", "scheduler"]
        assert [s["name"] for s in scheduler["sidecars"]] == ["raylet"]
    scheduler = schedulers[0]
    # Secrets are the rendered Secret's values, not placeholders.
    secret = plan["secrets"]["farm-render-farm-credentials"]
    assert scheduler["main"]["env"]["FARM_DATABASE_URL"] == secret["database-url"]
    assert "farm-render-farm-postgresql:5432" in secret["database-url"]


def test_the_job_renders_on_the_worker_pods(report: dict[str, Any]) -> None:
    assert report["submit"]["rc"] == 0, report["submit"]
    assert report["job"]["status"] == "completed", report["job"]
    assert [f["frame"] for f in report["frames"]] == FRAMES
    assert set(report["attempt_nodes"]) <= {"ray-cpu-0", "ray-cpu-1"}, report["attempt_nodes"]


def test_blobs_and_frames_are_in_the_bucket(report: dict[str, Any]) -> None:
    blobs = [k for k in report["bucket"] if k.startswith("blobs/")]
    assert blobs and all(report["bucket_blob_hashes_ok"].values()), report["bucket"]
    rows = {f["name"]: f["sha256"] for f in report["frames"]}
    assert report["bucket_frames"] == rows  # each frame stored once, with the bytes its row names


def test_frames_download_byte_identical_through_either_replica(report: dict[str, Any]) -> None:
    rows = {f["name"]: f["sha256"] + ":png" for f in report["frames"]}
    assert len(report["downloads"]) == 2
    for url, got in report["downloads"].items():
        assert got == rows, url
    cli = report["cli_download"]
    assert cli["rc"] == 0, cli["output"]
    assert {name: digest + ":png" for name, digest in cli["files"].items()} == rows


def test_worker_inputs_are_cached_on_the_asset_cache_volume(report: dict[str, Any]) -> None:
    blob_hashes = {k.rsplit("/", 1)[-1] for k in report["bucket"] if k.startswith("blobs/")}
    cached = {name for files in report["worker_caches"].values() for name in files}
    assert blob_hashes & cached, report["worker_caches"]


def test_only_the_migration_hook_job_migrates(report: dict[str, Any]) -> None:
    hooks = report["hooks"]
    (migrate,) = [h for name, h in hooks.items() if name.endswith("-migrate")]
    assert migrate["rc"] == 0 and migrate["phase"] == "post-install", migrate
    assert "migrated: empty -> " in migrate["log"], migrate["log"]  # the whole chain, from an empty database
    for name, log in report["logs"].items():
        if name.startswith(("farm-render-farm-api-", "farm-render-farm-scheduler-")):
            assert "Running upgrade" not in log, name


def test_restored_database_and_older_bucket_are_reported_by_fsck(report: dict[str, Any]) -> None:
    assert report["pg_restore"]["rc"] == 0, report["pg_restore"]
    restore = report["restore"]
    assert restore["fsck_rc"] == 0, restore["fsck"]
    fsck = restore["fsck"]
    # A blob uploaded after the backup: in the bucket, unknown to the restored database.
    assert any(key.endswith(restore["extra_blob"]) for key in fsck["blob_objects_without_rows"]), fsck
    # A frame the older bucket lacks: named, with its job, so it can be rendered again.
    assert restore["lost_key"] in fsck["frames_without_objects"], fsck
    (job,) = fsck["jobs_with_lost_frames"]
    assert job["frames"] == [restore["lost_frame"]]
    assert not fsck["repaired"] and fsck["deleted_objects"] == 0
