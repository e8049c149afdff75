"""The add-on's bpy-free submission core against the session farm, and `farm addon install` without Blender."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from typer.testing import CliRunner

from farm.client import ClientError
from farm.runtime.embedded import EmbeddedFarm
from tests.addon.labels import ADDON


def _core() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_farm_core", ADDON / "core.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class body runs.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_frames_spec_and_check() -> None:
    core = _core()
    assert core.frames_spec(1, 4) == "1-4"
    assert core.frames_spec(1, 9, 2) == "1-9x2"
    assert core.frames_spec(7, 7, 3) == "7"
    assert core.check_frames("1-4") is None
    bad = core.check_frames(core.frames_spec(5, 1))
    assert bad is not None and bad.kind == "bad_frames"


def test_classify_quota_and_refusals() -> None:
    core = _core()
    assert core.classify(ClientError(429, "GPU-hours for 2026-11 used up"), "u").kind == "quota"
    assert core.classify(ClientError(409, "quota exceeded: 3 running jobs"), "u").kind == "quota"
    refused = core.classify(ClientError(400, "bad frames"), "u")
    assert refused.kind == "refused" and refused.text() == "The farm refused the job: bad frames"
    assert core.classify(ClientError(403, "viewer"), "u").kind == "forbidden"


def test_background_submission_with_bad_token(farm: EmbeddedFarm, sample_blend: Path) -> None:
    core = _core()
    request = core.SubmitRequest(url=farm.url, token="wrong", blend=sample_blend, frames="1-2", name="core-bad-token")
    assert "wrong" not in repr(request)
    submission = core.Submission(request).start()
    outcome = submission.wait(60)
    assert outcome is not None and outcome.kind == "bad_token"


def test_install_without_blender_says_how_to_install_by_hand(tmp_path: Path) -> None:
    from farm.cli.main import app

    result = CliRunner().invoke(
        app, ["addon", "install", "--blender", str(tmp_path / "no-blender"), "--out", str(tmp_path)]
    )
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "Install from Disk" in text and "render_farm-" in text


def test_install_command_uses_blenders_extension_cli() -> None:
    from farm.cli.addon import install_command

    cmd = install_command(Path("/opt/blender/blender"), Path("/tmp/x.zip"))
    assert cmd[:4] == ["/opt/blender/blender", "--command", "extension", "install-file"]
    assert cmd[-2:] == ["--enable", "/tmp/x.zip"]


@pytest.mark.parametrize("count,text", [(0, "0 B"), (2048, "2.0 KB"), (5 * 1024**2, "5.0 MB")])
def test_human_bytes(count: int, text: str) -> None:
    assert _core().human_bytes(count) == text


def test_normalise_url_and_options_refused_by_panel_name() -> None:
    core = _core()
    assert core.normalise_url(" farm.studio:8321/ ") == "http://farm.studio:8321"
    assert core.normalise_url("https://farm.studio") == "https://farm.studio"
    assert core.normalise_url("") == ""
    request = core.SubmitRequest(url="", token="", blend=Path("s.blend"), frames="1-4", name="n", chunk_size=0)
    problem = core.check_request(request)
    assert problem is not None and problem.kind == "bad_options" and "Chunk Size" in problem.text()
    request.chunk_size, request.frames = 2, "4-1"
    problem = core.check_request(request)
    assert problem is not None and problem.kind == "bad_frames"
    request.frames = "1-4"
    assert core.check_request(request) is None
