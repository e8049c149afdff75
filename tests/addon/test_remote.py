"""The add-on's bpy-free farm calls: a call never blocks its caller, failures read as messages, the estimate line
and the options a submission sends with a preset and Preview First."""

from __future__ import annotations

import importlib
import sys
import threading
from pathlib import Path
from types import ModuleType, SimpleNamespace

from farm.client import ClientError
from farm.domain.states import JobStatus
from tests.addon.labels import ADDON


def _package() -> tuple[ModuleType, ModuleType]:
    """``core`` and ``remote`` as the package ``render_farm`` (remote imports core relatively); no bpy needed."""
    sys.path.insert(0, str(ADDON.parent))
    try:
        pkg = ModuleType("render_farm")
        pkg.__path__ = [str(ADDON)]  # a namespace without running __init__ (which imports bpy)
        sys.modules.setdefault("render_farm", pkg)
        return importlib.import_module("render_farm.core"), importlib.import_module("render_farm.remote")
    finally:
        sys.path.remove(str(ADDON.parent))


def test_a_call_returns_at_once_and_reports_when_done() -> None:
    _, remote = _package()
    release = threading.Event()
    call = remote.Call(lambda: release.wait(10) and 42, "http://farm").start()
    assert not call.done  # the UI thread is free while the call waits on the network
    release.set()
    assert call.wait(10) and call.done and call.result == 42 and call.outcome is None


def test_a_failed_call_becomes_a_message_not_about_a_job() -> None:
    _, remote = _package()

    def refuse() -> None:
        raise ClientError(404, "library asset 'lib-x' not found")

    call = remote.Call(refuse, "http://farm")
    call.run()
    assert call.outcome is not None and call.outcome.kind == "refused"
    assert call.outcome.text() == "The farm refused the request: library asset 'lib-x' not found"


def test_estimate_line_has_price_band_and_hours() -> None:
    _, remote = _package()
    est = SimpleNamespace(
        ready=True,
        job_id="job-1",
        status=JobStatus.COMPLETED,
        cost=1.234,
        cost_low=0.9,
        cost_high=1.6,
        frames_total=250,
        resource_hours=0.41234,
        resource="gpu",
        rate=3.0,
    )
    outcome = remote.estimate_outcome(est)
    assert outcome.ok and outcome.job_id == "job-1"
    assert outcome.text() == "Estimate: 1.23 (0.90 to 1.60) for 250 frame(s): 0.412 gpu-hours at 3.00/hour"
    est.ready, est.status = False, JobStatus.FAILED
    failed = remote.estimate_outcome(est)
    assert failed.kind == "estimate_failed" and "job-1 ended failed" in failed.text()


def test_order_and_shared_preset_in_the_options() -> None:
    core, _ = _package()
    base = {"url": "", "token": "", "blend": Path("x.blend"), "frames": "1-4", "name": "shot"}
    assert core.SubmitRequest(**base, order="preview").options()["order"] == "preview"
    with_preset = core.SubmitRequest(**base, preset="final@studio-a", order="preview").options()
    assert with_preset == {"preset": "final@studio-a", "order": "preview", "after": [], "frame_match": False}
    assert "order" not in core.SubmitRequest(**base, preset="final").options()  # the preset's own order applies
    assert core.check_request(core.SubmitRequest(**base, preset="final@studio-a")) is None
    bad = core.check_request(core.SubmitRequest(**base, preset="final@@x"))
    assert bad is not None and "Preset" in bad.text()
    bad_order = core.check_request(core.SubmitRequest(**base, order="random"))
    assert bad_order is not None and "Frame Order" in bad_order.text()
