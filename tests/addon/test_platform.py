"""The add-on on the shared platform, end to end in a headless bpy child process against the session's embedded
farm: the preset menu with own and shared presets, Preview First order, the cost estimate, and the library browser
that links and appends a published .blend's collection, material and node group, and sets a published HDRI as the
world."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from farm.client.library import LibraryClient
from farm.client.pipeline import PipelineClient
from farm.contract import PresetPublish, PresetSave, PresetSettings, Role
from farm.db.models import Job
from farm.domain.inputs import FROM_FIELD
from farm.runtime.embedded import EmbeddedFarm
from tests import factories

DRIVER = Path(__file__).with_name("driver_platform.py")
DESCRIPTION = "Turntables: 2 samples, one frame per chunk"


def _child(args: dict[str, Any], root: Path, timeout: float = 300) -> dict[str, Any]:
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(root / "blender-user"))
    result = subprocess.run(
        [sys.executable, str(DRIVER), json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=root,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stdout[-4000:] + result.stderr[-4000:]
    return dict(json.loads(lines[-1][len("RESULT ") :]))


@pytest.fixture(scope="module")
def run(
    addon_zip: Path, farm: EmbeddedFarm, sample_blend: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Publish a .blend library, an HDRI and a preset as one company; then, as another company's artist, use them
    all from the add-on in one Blender process."""
    root = tmp_path_factory.mktemp("addon-platform")
    made = root / "made"
    made.mkdir()
    _child({"mode": "make_library", "out": str(made)}, root)
    with farm.db.session() as s:
        publisher = factories.token(s, "addon-pub", Role.COMPANY_ADMIN)
        artist = factories.token(s, "addon-user", Role.ARTIST)
        outsider = factories.token(s, "addon-other", Role.ARTIST)
    with LibraryClient(farm.url, publisher) as lib:
        props = lib.publish(made / "props.blend", "studio props", "CC-BY 4.0", tags=["props"])
        sky = lib.publish(made / "sky.hdr", "blue sky", "CC0", tags=["hdri"])
        hidden = lib.publish(made / "props.blend", "partners only", "members", to=["addon-other"])
    with PipelineClient(farm.url, publisher) as pipe:
        pipe.save_preset("turntable", PresetSave(settings=PresetSettings(samples=2, chunk_size=1)))
        pipe.publish_preset("turntable", PresetPublish(description=DESCRIPTION))
        pipe.save_preset("private", PresetSave(settings=PresetSettings(samples=7)))
    with PipelineClient(farm.url, artist) as pipe:
        pipe.save_preset("mine", PresetSave(settings=PresetSettings(chunk_size=3)))

    shutil.copytree(sample_blend.parent, root / "project")
    blend = root / "project" / sample_blend.name
    frames = {"use_scene_range": False, "frame_start": 1, "frame_end": 4, "job_name": "addon-shared-preset"}
    steps: list[dict[str, Any]] = [
        {"do": "presets"},
        {"do": "use_preset", "ref": "turntable@addon-pub"},
        {"do": "submit", "settings": {**frames, "order": "preview"}},
        {"do": "estimate"},
        {"do": "library"},
        {"do": "draw"},
        {"do": "import", "asset_id": props.id, "link": True, "what": "COLLECTIONS"},
        {"do": "save_reopen"},
        {"do": "submit", "settings": {**frames, "frame_end": 1, "job_name": "addon-linked", "preset": ""}},
        {"do": "fresh"},
        {"do": "import", "asset_id": props.id, "link": False, "what": "COLLECTIONS", "names": "Props"},
        {"do": "import", "asset_id": props.id, "link": False, "what": "MATERIALS", "names": "Gold"},
        {"do": "import", "asset_id": props.id, "link": True, "what": "NODE_GROUPS"},
        {"do": "save_reopen"},
        {"do": "import", "asset_id": props.id, "link": False, "what": "COLLECTIONS", "names": "Nope"},
        {"do": "import", "asset_id": sky.id, "as_world": True},
        {"do": "import", "asset_id": hidden.id, "link": True},
    ]
    data = _child(
        {"mode": "use", "zip": str(addon_zip), "blend": str(blend), "url": farm.url, "token": artist, "steps": steps},
        root,
        timeout=400,
    )
    assert data["enabled"], data
    data.update(root=root, artist=artist, outsider=outsider, props=props, sky=sky, hidden=hidden, made=made)
    keys = ["presets", "use", "submit", "estimate", "library", "draw", "link", "reopen", "linked_job", "fresh"]
    keys += ["append", "material", "node_group", "saved", "unknown", "hdri", "hidden"]
    data["by"] = dict(zip(keys, data["steps"], strict=True))
    return data


def _get(farm: EmbeddedFarm, token: str, path: str) -> Any:
    answer = httpx.get(f"{farm.url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_preset_menu_lists_own_and_shared_and_submits_with_a_shared_one(
    run: dict[str, Any], farm: EmbeddedFarm
) -> None:
    presets = run["by"]["presets"]
    assert presets["operator"] == ["FINISHED"], presets
    choices = {c["ref"]: c for c in presets["choices"]}
    assert set(choices) == {"mine", "turntable@addon-pub"}  # never another company's private preset
    assert choices["mine"]["source"] == "own"
    assert choices["turntable@addon-pub"]["source"] == "addon-pub"
    assert DESCRIPTION in choices["turntable@addon-pub"]["description"]
    assert run["by"]["use"]["preset"] == "turntable@addon-pub"

    submitted = run["by"]["submit"]
    assert submitted["operator"] == ["FINISHED"], submitted
    job = _get(farm, run["artist"], f"/api/v1/jobs/{submitted['job_id']}")
    # The shared preset's settings, and the panel's Preview First order on top of it.
    assert (job["samples"], job["chunk_size"], job["tasks_total"], job["order"]) == (2, 1, 4, "preview")
    tasks = _get(farm, run["artist"], f"/api/v1/jobs/{submitted['job_id']}/tasks")["tasks"]
    assert [t["frames"] for t in tasks][:2] == ["1", "4"]  # the ends first


def test_estimate_shows_the_farms_price_and_band(run: dict[str, Any], farm: EmbeddedFarm) -> None:
    est = run["by"]["estimate"]
    assert est["operator"] == ["FINISHED"] and est["state"] == "DONE", est
    truth = _get(farm, run["artist"], f"/api/v1/jobs/{est['job_id']}/estimate")
    assert truth["ready"] and truth["frames_total"] == 4
    expected = (
        f"Estimate: {truth['cost']:.2f} ({truth['cost_low']:.2f} to {truth['cost_high']:.2f}) for 4 frame(s): "
        f"{truth['resource_hours']:.3f} {truth['resource']}-hours"
    )
    assert est["message"].startswith(expected), (est["message"], expected)
    assert truth["resource_hours_low"] <= truth["resource_hours"] <= truth["resource_hours_high"]


def test_library_browser_lists_only_visible_assets(run: dict[str, Any]) -> None:
    listed = run["by"]["library"]
    assert listed["operator"] == ["FINISHED"], listed
    kinds = {a["name"]: a["kind"] for a in listed["assets"]}
    assert kinds == {"studio props": "blend", "blue sky": "image"}  # "partners only" is listed for another company
    hidden = run["by"]["hidden"]
    assert hidden["operator"] == ["CANCELLED"] and "not found" in hidden["message"]


def test_link_puts_an_instance_of_the_linked_collection_in_the_scene(run: dict[str, Any], farm: EmbeddedFarm) -> None:
    link = run["by"]["link"]
    assert link["operator"] == ["FINISHED"] and link["loaded"] == ["Props"], link
    objects = {o["name"]: o for o in link["objects"]}
    cached = Path(run["cache"]) / run["props"].sha256 / "props.blend"
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == run["props"].sha256
    for name in ("Crate", "Ball"):
        assert objects[name]["library"] == str(cached)  # linked, not copied
    assert objects["Props"]["instance"] == "Props" and objects["Props"]["in_scene"]
    reopened = run["by"]["reopen"]
    assert reopened["libraries"] == [str(cached)]
    assert {o["name"] for o in reopened["objects"]} >= {"Crate", "Ball", "Props"}
    # Submitted, the linked library file is used by reference: the publisher's stored copy, not an upload.
    submitted = run["by"]["linked_job"]
    assert submitted["operator"] == ["FINISHED"], submitted
    with farm.db.session() as s:
        job = s.get(Job, submitted["job_id"])
        assert job is not None
        entries = [e for e in job.manifest.values() if e["sha256"] == run["props"].sha256]
    assert len(entries) == 1 and entries[0][FROM_FIELD] != job.company_id, job.manifest


def test_append_copies_collection_material_and_links_node_groups(run: dict[str, Any]) -> None:
    append = run["by"]["append"]
    assert append["operator"] == ["FINISHED"], append
    objects = {o["name"]: o for o in append["objects"]}
    assert all(o["library"] is None for o in objects.values())  # the fresh scene holds no earlier link
    assert objects["Crate"]["in_scene"] and objects["Ball"]["in_scene"] and "Props" not in objects
    assert append["materials"]["Gold"] is None  # came with the objects, local
    material = run["by"]["material"]
    # Appended again: a second local copy, named as Blender names copies (a material has no fake user otherwise).
    assert material["operator"] == ["FINISHED"] and material["loaded"] == ["Gold.001"], material
    assert material["materials"]["Gold.001"] is None
    group = run["by"]["node_group"]
    assert group["operator"] == ["FINISHED"] and group["loaded"] == ["Wobble"], group
    assert group["node_groups"]["Wobble"] is not None  # linked from the cached library file
    saved = run["by"]["saved"]  # what nothing uses yet survives saving: appended with a fake user, or linked
    assert {"Gold", "Gold.001"} <= set(saved["materials"]) and "Wobble" in saved["node_groups"]


def test_unknown_name_says_what_the_file_holds(run: dict[str, Any]) -> None:
    unknown = run["by"]["unknown"]
    assert unknown["operator"] == ["CANCELLED"], unknown
    assert "no collections called Nope" in unknown["message"] and "Props" in unknown["message"]


def test_hdri_becomes_the_world_environment(run: dict[str, Any]) -> None:
    hdri = run["by"]["hdri"]
    assert hdri["operator"] == ["FINISHED"], hdri
    assert hdri["world_image"] == str(Path(run["cache"]) / run["sky"].sha256 / "sky.hdr")
    assert (Path(run["cache"]) / run["sky"].sha256 / "sky.hdr").read_bytes() == (run["made"] / "sky.hdr").read_bytes()


def test_panels_draw_the_presets_estimate_and_library(run: dict[str, Any]) -> None:
    drawn = run["by"]["draw"]
    assert drawn["problems"] == [], drawn  # every property, operator, menu and icon the draw code names exists
    texts = " ".join(drawn["texts"])
    assert "Turntables: 2 samples" in texts  # the chosen shared preset's description under the Preset field
    assert "Estimate: " in texts  # the estimate under its button
    assert "studio props (addon-pub)" in texts and "blue sky (addon-pub)" in texts  # the library browser
