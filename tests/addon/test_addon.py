"""The Blender add-on, end to end: built by `farm addon build`, installed from the zip into a headless bpy running in
a child process (bpy stays out of the pytest process), submitting to the session's embedded farm."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from farm.runtime.embedded import EmbeddedFarm

DRIVER = Path(__file__).with_name("driver.py")
TEXTURE = "textures/checker.png"


# addon_zip: tests/addon/conftest.py (built once per session, shared with test_platform.py).


def _project(sample_blend: Path, dest: Path, with_texture: bool = True) -> Path:
    """A private copy of the sample project (the add-on saves the file it submits)."""
    shutil.copytree(sample_blend.parent, dest)
    if not with_texture:
        (dest / TEXTURE).unlink()
    return dest / sample_blend.name


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


CASES = {
    "ok": {"name": "addon-ok", "settings": {"frame_end": 4, "chunk_size": 2, "priority": 60}},
    "bad_token": {"name": "addon-bad-token", "token": "not-a-real-token"},
    "missing": {"name": "addon-missing", "texture": False},
    "unreachable": {"name": "addon-unreachable", "unreachable": True},
    "dirty": {"name": "addon-dirty", "settings": {"save_before_submit": False}},
    "untitled": {"name": "addon-untitled", "blend": None},
    # A bad range on a file with unsaved changes: refused before Save Before Submit saves it into the scene.
    "bad_range": {"name": "addon-bad-range", "settings": {"frame_start": 5, "frame_end": 1}},
    # What an artist types: no scheme, a trailing slash.
    "no_scheme": {"name": "addon-no-scheme", "no_scheme": True},
}


@pytest.fixture(scope="module")
def outcomes(
    addon_zip: Path, farm: EmbeddedFarm, sample_blend: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Install the add-on once in a fresh headless Blender and run every case there."""
    root = tmp_path_factory.mktemp("addon-run")
    cases = []
    for key, spec in CASES.items():
        blend = _project(sample_blend, root / key, spec.get("texture", True)) if spec.get("blend", 1) else None
        url = f"http://127.0.0.1:{_closed_port()}" if spec.get("unreachable") else farm.url
        if spec.get("no_scheme"):
            url = " " + farm.url.removeprefix("http://") + "/ "
        # Unticking the scene range copies the scene's range into the fields (as in the UI): set the fields after it.
        settings = {"job_name": spec["name"], "use_scene_range": False, "frame_start": 1, "frame_end": 2}
        settings.update(spec.get("settings", {}))
        cases.append(
            {
                "blend": str(blend) if blend else "",
                "url": url,
                "token": spec.get("token", farm.admin_token),
                "settings": settings,
            }
        )
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(root / "blender-user"))
    result = subprocess.run(
        [sys.executable, str(DRIVER), json.dumps({"zip": str(addon_zip), "cases": cases})],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=root,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stdout[-4000:] + result.stderr[-4000:]
    data = json.loads(lines[-1][len("RESULT ") :])
    assert data["enabled"], data
    data["by_case"] = dict(zip(CASES, data["cases"], strict=True))
    data["root"] = root
    data["stdout"] = result.stdout + result.stderr
    return data


def _jobs_named(farm: EmbeddedFarm, name: str) -> list[Any]:
    from sqlalchemy import select

    from farm.db.models import Job

    with farm.db.session() as session:
        return list(session.scalars(select(Job).where(Job.name == name)))


def test_addon_runs_the_client_bundled_in_its_zip(outcomes: dict[str, Any]) -> None:
    assert Path(outcomes["farm_module"]).is_relative_to(outcomes["root"] / "blender-user"), outcomes["farm_module"]


def test_submit_creates_the_job_with_frames_and_texture(outcomes: dict[str, Any], farm: EmbeddedFarm) -> None:
    ok = outcomes["by_case"]["ok"]
    assert ok["operator"] == ["FINISHED"], ok
    assert ok["state"] == "DONE" and ok["kind"] == "ok" and ok["job_id"] in ok["message"]
    assert ok["monitor_url"] == f"{farm.url}/jobs/{ok['job_id']}"

    headers = {"Authorization": f"Bearer {farm.admin_token}"}
    job = httpx.get(f"{farm.url}/api/v1/jobs/{ok['job_id']}", headers=headers).json()
    assert (job["name"], job["frames_total"], job["tasks_total"], job["chunk_size"], job["priority"]) == (
        "addon-ok",
        4,
        2,
        2,
        60,
    )
    (row,) = _jobs_named(farm, "addon-ok")
    texture = outcomes["root"] / "ok" / TEXTURE
    assert row.manifest[TEXTURE]["sha256"] == hashlib.sha256(texture.read_bytes()).hexdigest()
    # Save Before Submit saved the scene (Blender kept a .blend1 backup) and the saved file is what was packed.
    saved = outcomes["root"] / "ok" / row.blend_file
    assert saved.with_suffix(".blend1").is_file()
    assert row.manifest[row.blend_file]["sha256"] == hashlib.sha256(saved.read_bytes()).hexdigest()
    httpx.post(f"{farm.url}/api/v1/jobs/{ok['job_id']}/cancel", headers=headers)


def test_bad_token_gives_the_clear_message_and_no_job(outcomes: dict[str, Any], farm: EmbeddedFarm) -> None:
    bad = outcomes["by_case"]["bad_token"]
    assert bad["operator"] == ["CANCELLED"] and bad["state"] == "FAILED" and bad["kind"] == "bad_token"
    assert "refused the token" in bad["message"] and "Preferences" in bad["message"]
    assert "not-a-real-token" not in outcomes["stdout"], "the token is never printed"
    assert _jobs_named(farm, "addon-bad-token") == []


def test_missing_texture_is_listed_and_nothing_submitted(outcomes: dict[str, Any], farm: EmbeddedFarm) -> None:
    missing = outcomes["by_case"]["missing"]
    assert missing["kind"] == "missing_files"
    assert any("checker.png" in m for m in missing["missing"]) and "checker.png" in missing["message"]
    assert _jobs_named(farm, "addon-missing") == []


def test_unreachable_farm_unsaved_file_and_unsaved_changes(outcomes: dict[str, Any]) -> None:
    cases = outcomes["by_case"]
    assert cases["unreachable"]["kind"] == "unreachable"
    assert "Cannot reach the farm at http://127.0.0.1:" in cases["unreachable"]["message"]
    assert cases["untitled"]["kind"] == "unsaved" and "Save As" in cases["untitled"]["message"]
    assert cases["dirty"]["kind"] == "unsaved_changes" and cases["dirty"]["is_dirty"]


def test_checks_come_before_saving_and_the_url_is_normalised(outcomes: dict[str, Any], farm: EmbeddedFarm) -> None:
    cases = outcomes["by_case"]
    bad = cases["bad_range"]
    assert bad["kind"] == "bad_frames" and "reversed" in bad["message"], bad
    assert bad["is_dirty"], "the bad range was saved into the scene"
    assert not (outcomes["root"] / "bad_range" / "scene.blend1").exists()  # nothing was saved at all
    assert _jobs_named(farm, "addon-bad-range") == []
    typed = cases["no_scheme"]
    assert typed["kind"] == "ok" and typed["monitor_url"].startswith(farm.url + "/jobs/"), typed


def test_upload_progress_reaches_its_total(outcomes: dict[str, Any]) -> None:
    ok = outcomes["by_case"]["ok"]
    assert ok["total"] > 0 and ok["sent"] == ok["total"] and ok["progress"] == 1.0, ok


def test_zip_manifest_lists_its_wheels(addon_zip: Path) -> None:
    with zipfile.ZipFile(addon_zip) as archive:
        names = set(archive.namelist())
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode())
        (client,) = [n for n in names if n.startswith("wheels/render_farm_client-")]
        with zipfile.ZipFile(archive.open(client)) as wheel:
            modules = set(wheel.namelist())
    assert manifest["id"] == "render_farm" and manifest["blender_version_min"] == "4.2.0"
    assert {w.removeprefix("./") for w in manifest["wheels"]} == {n for n in names if n.startswith("wheels/")}
    assert {"farm/client/__init__.py", "farm/client/api.py", "farm/client/packing.py", "farm/contract.py"} <= modules
    server = ("farm/db/", "farm/cli/", "farm/runtime/", "farm/services/", "farm/lifecycle/", "farm/metering/")
    assert not any(m.startswith(server) for m in modules), "server code stays out"
    assert "__init__.py" in names and "translations.py" in names
