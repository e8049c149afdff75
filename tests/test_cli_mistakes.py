"""A first hour without surprises (issue 18): every documented mistake gets one or two human lines and its exit
code, before anything is traced or sent (the farm below is unreachable: a check that ran late would say so)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import factories

FARM = str(Path(sys.executable).parent / "farm")


@pytest.fixture()
def run(tmp_path):
    home = tmp_path / "home"
    env = {
        **os.environ,
        "FARM_URL": f"http://127.0.0.1:{factories.free_port()}",  # nothing listens: nothing may be sent
        "FARM_TOKEN": "farm_nobody",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
    }

    def go(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([FARM, *args], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)

    return go


def _human(done: subprocess.CompletedProcess[str]) -> str:
    text = (done.stdout + done.stderr).strip()
    assert "Traceback" not in text and "pydantic" not in text and "errors.pydantic.dev" not in text, text
    assert len(text.splitlines()) <= 3, text
    return text


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--chunk", "0"], "--chunk: Input should be greater than or equal to 1"),
        (["--priority", "500"], "--priority: Input should be less than or equal to 100"),
        (["--resolution", "64*48"], "--resolution: resolution '64*48' must be WIDTHxHEIGHT"),
        (["--on-chunk-failure", "stop"], "--on-chunk-failure: Input should be 'fail-job' or 'continue'"),
        (["--samples", "0"], "--samples: Input should be greater than or equal to 1"),
        (["--max-attempts", "99"], "--max-attempts: Input should be less than or equal to 20"),
        (["--frames", "1-x"], "frame spec part '1-x' is not a number"),
        (["--frames", "5-1"], "is reversed; write 1-5"),
        (["--format", "GIF"], "--format must be scene or one of"),
        (["--camera", "Nope"], "--camera Nope: the cameras in this file are"),
        (["--view-layer", "Nope"], "--view-layer Nope: scene"),
        (["--output-pattern", "../x_{frame:04d}"], "--output-pattern"),
    ],
)
def test_bad_submit_options_are_refused_before_anything_is_sent(run, sample_blend, args, expected):
    done = run("submit", str(sample_blend), "--frames", "1-2", *args)
    text = _human(done)
    assert done.returncode == 2 and expected in text, text
    assert "cannot reach" not in text


def test_not_a_blend_file(run, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    done = run("submit", "notes.txt")
    text = _human(done)
    assert done.returncode == 2 and "notes.txt" in text and "not a blend file" in text.lower()


def test_a_scene_without_a_camera_is_refused_at_submit(run, sample_blend, tmp_path):
    from tests.reliability.scene_variants import build

    nocamera = build(sample_blend, tmp_path / "nocamera", "nocamera")
    done = run("submit", str(nocamera), "--frames", "1")
    text = _human(done)
    assert done.returncode == 2 and "has no active camera" in text and "Scene properties > Camera" in text


def test_a_month_that_is_not_a_month(run):
    done = run("usage", "--month", "nov")
    text = _human(done)
    assert done.returncode == 2 and "--month must be a month as YYYY-MM" in text


def test_an_unreachable_farm_says_where_its_address_came_from(run, sample_blend):
    done = run("submit", str(sample_blend), "--frames", "1")
    text = _human(done)
    assert done.returncode == 2 and "cannot reach the farm" in text
    assert "FARM_URL" in text and "farm login --url" in text


def test_a_stale_token_names_farm_login(tmp_path):
    with factories.api_farm(tmp_path / "farm") as farm, factories.serve(farm.app) as url:
        done = subprocess.run(
            [FARM, "jobs"],
            capture_output=True,
            text=True,
            timeout=120,
            env={
                **os.environ,
                "FARM_URL": url,
                "FARM_TOKEN": "farm_stale",
                "HOME": str(tmp_path / "h"),
                "XDG_CONFIG_HOME": str(tmp_path / "h"),
            },
        )
    text = _human(done)
    assert done.returncode == 1 and "unknown API token" in text and "farm login" in text and "FARM_TOKEN" in text


def test_ctrl_c_while_waiting_says_the_job_keeps_running(farm, sample_blend, tmp_path):
    import signal
    import time

    env = {
        **os.environ,
        "FARM_URL": farm.url,
        "FARM_TOKEN": farm.admin_token,
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path),
    }
    proc = subprocess.Popen(
        [FARM, "submit", str(sample_blend), "--frames", "1-400", "--chunk", "400", "--wait", "--name", "ctrl-c"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # the id comes first, before any following
    assert first.startswith("job job-") and "following it" in first, first
    job_id = first.split()[1]
    # Outside a terminal, progress arrives as plain lines on stderr.
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert f"job {job_id} keeps rendering" in err and f"farm status {job_id}" in err
    assert f"job {job_id}:" in err  # at least one plain progress line
    from farm.client import FarmClient

    with FarmClient(farm.url, farm.admin_token) as client:
        assert client.job(job_id).status.value in ("queued", "active")
        client.cancel(job_id)


def test_a_missing_texture_is_one_message_without_the_tracers_own_lines(run, sample_blend, tmp_path):
    import shutil

    project = tmp_path / "project"
    shutil.copytree(sample_blend.parent, project)
    shutil.rmtree(project / "textures")
    done = run("submit", str(project / sample_blend.name), "--frames", "1")
    text = _human(done)
    assert done.returncode == 2 and "references files that do not exist" in text and "--allow-missing" in text
    assert "Missing file:" not in text  # blender-asset-tracer's own warning stays out of the way
