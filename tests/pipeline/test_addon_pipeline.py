"""The add-on's pipeline options, checked by its bpy-free core the way the farm checks them."""

from __future__ import annotations

from pathlib import Path

from tests.addon.test_core import _core


def test_run_after_field_becomes_job_ids_and_is_checked() -> None:
    core = _core()
    assert core.job_ids(" job-a, job-b  job-c,, ") == ["job-a", "job-b", "job-c"]
    assert core.job_ids("  ") == []
    base = {"url": "", "token": "", "blend": Path("x.blend"), "frames": "1-4", "name": "shot"}
    assert core.check_request(core.SubmitRequest(**base, after=["job-a"], frame_match=True)) is None
    bad = core.check_request(core.SubmitRequest(**base, frame_match=True))
    assert bad is not None and bad.kind == "bad_options"
    assert "frame_match needs" in bad.text()
    too_long = core.check_request(core.SubmitRequest(**base, after=["j" * 41]))
    assert too_long is not None and "Run After" in too_long.text()


def test_a_preset_leaves_chunk_priority_device_and_format_to_the_farm() -> None:
    core = _core()
    base = {"url": "", "token": "", "blend": Path("x.blend"), "frames": "1-4", "name": "shot", "chunk_size": 3}
    assert core.SubmitRequest(**base).options()["chunk_size"] == 3
    chosen = core.SubmitRequest(**base, preset=" final ", after=["job-a"]).options()
    assert chosen == {"preset": "final", "after": ["job-a"], "frame_match": False}
    assert core.check_request(core.SubmitRequest(**base, preset="final")) is None
    assert "Preset" in core.check_request(core.SubmitRequest(**base, preset="p" * 65)).text()
