"""Every process that talks to the store counts its failures (issue 15), the preview and video tasks included:
their counts travel back with their results and reach ``farm_cluster_storage_errors_total{process="media"}``."""

from __future__ import annotations

from farm.clock import SystemClock
from farm.db.engine import Database
from farm.lifecycle import tallies
from farm.media.preview import _preview_task
from farm.media.video import VideoJob, _video_task
from scheduler.store_errors import StoreErrors
from storage.factory import StoreConfig

FRAME = "outputs/co/job-1/frame_0001.png"  # never stored: every read of it fails


def test_a_preview_task_reports_its_failed_store_calls(tmp_path):
    config = StoreConfig(backend="local", root=str(tmp_path / "store"))
    key, error, failures = _preview_task(config, "co", "job-1", [FRAME], 24)
    assert key is None and error and sum(failures.values()) >= 1, (error, failures)


def test_a_video_task_reports_its_failed_store_calls(tmp_path):
    config = StoreConfig(backend="local", root=str(tmp_path / "store"))
    job = VideoJob(
        job_id="job-1",
        company_id="co",
        name="shot",
        blend_file="scene.blend",
        manifest={"scene.blend": {"sha256": "ab" * 32, "size": 10}},
        frames=[(1, FRAME)],
    )
    facts = _video_task(config, job)
    assert facts.reason and sum(facts.storage_errors.values()) >= 1, facts


def test_media_counts_are_written_under_their_own_process(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'farm.db'}")
    db.migrate()
    try:
        errors = StoreErrors(db, SystemClock())
        errors.media({"get_file": 2})
        errors.media({"get_file": 1, "open": 1})
        errors.flush()
        with db.session() as s:
            rows = {(t.company_id, t.label): t.count for t in tallies.read(s, tallies.STORAGE_ERRORS)}
    finally:
        db.dispose()
    assert rows == {("media", "get_file"): 3, ("media", "open"): 1}
