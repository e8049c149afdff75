"""Limits per company (issue 17): each refusal is a clear 413/422/429 that names the limit, given before anything
is written, and manifest paths must form a sane file tree."""

from __future__ import annotations

import hashlib

import pytest

from farm.db.models import Blob, Job
from farm.services.auth import ensure_company
from tests import factories

SCENE = b"BLENDER-v500 limits"
SHA = hashlib.sha256(SCENE).hexdigest()


@pytest.fixture()
def farm(tmp_path):
    limits = dict(max_request_bytes=200_000, max_manifest_entries=50, max_job_frames=500, max_job_chunks=100,
                  max_queued_chunks=150, max_submits_per_minute=4)
    with factories.api_farm(tmp_path, **limits) as made, factories.client(made) as http:
        with made.db.session() as s:
            company = ensure_company(s, "default", made.clock.now())
            s.add(Blob(company_id=company.id, sha256=SHA, size=len(SCENE), created_at=made.clock.now()))
        yield made, http


def spec(frames: str = "1-10", chunk: int = 1, files: int = 0, **extra: object) -> dict[str, object]:
    manifest = {"s.blend": {"sha256": SHA, "size": len(SCENE)}}
    manifest.update({f"tex/{i}.png": {"sha256": SHA, "size": len(SCENE)} for i in range(files)})
    return {"name": "n", "blend_file": "s.blend", "manifest": manifest, "frames": frames, "chunk_size": chunk, **extra}


def jobs_written(made) -> int:
    with made.db.session() as s:
        return s.query(Job).count()


def test_each_limit_answers_with_its_status_and_name(farm):
    made, http = farm
    cases = [
        (spec(files=60), 413, "FARM_MAX_MANIFEST_ENTRIES"),
        (spec(frames="1-600", chunk=10), 422, "FARM_MAX_JOB_FRAMES"),
        (spec(frames="1-200", chunk=1), 422, "FARM_MAX_JOB_CHUNKS"),
    ]
    for body, status, name in cases:
        r = http.post("/api/v1/jobs", json=body)
        assert r.status_code == status and name in r.json()["detail"], r.text
    assert "chunk size to at least 2" in http.post("/api/v1/jobs", json=spec(frames="1-200")).json()["detail"]
    assert jobs_written(made) == 0


def test_queued_chunks_per_company_and_submit_rate(farm):
    made, http = farm
    assert http.post("/api/v1/jobs", json=spec(frames="1-100")).status_code == 201
    r = http.post("/api/v1/jobs", json=spec(frames="1-60"))  # 100 waiting + 60 > 150
    assert r.status_code == 429 and "FARM_MAX_QUEUED_CHUNKS" in r.json()["detail"]
    for _ in range(3):
        assert http.post("/api/v1/jobs", json=spec(frames="1")).status_code == 201
    r = http.post("/api/v1/jobs", json=spec(frames="1"))
    assert r.status_code == 429 and r.headers["retry-after"] == "60"
    assert "FARM_MAX_SUBMITS_PER_MINUTE" in r.json()["detail"]
    assert jobs_written(made) == 4


def test_a_body_over_the_limit_is_413_whether_declared_or_streamed(farm):
    made, http = farm
    big = spec(name="x" * 300_000)
    r = http.post("/api/v1/jobs", json=big)
    assert r.status_code == 413 and "FARM_MAX_REQUEST_BYTES" in r.json()["detail"]

    def chunks():
        for _ in range(30):
            yield b"x" * 10_000

    r = http.post("/api/v1/jobs", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text
    assert jobs_written(made) == 0


@pytest.mark.parametrize(
    "path, why",
    [
        ("tex", "is a file, and"),
        ("tex/\nx.png", "control characters"),
        ("tex/a\tb.png", "control characters"),
        ("tex/", "nor end with '/'"),
        ("a/" * 600 + "x.png", "characters; at most"),
        ("tex/" + "n" * 300 + ".png", "over 255 bytes"),
    ],
)
def test_manifest_paths_must_form_a_sane_file_tree(farm, path, why):
    made, http = farm
    body = spec(files=1)
    body["manifest"][path] = {"sha256": SHA, "size": len(SCENE)}  # type: ignore[index]
    r = http.post("/api/v1/jobs", json=body)
    assert r.status_code == 422 and why in r.json()["detail"], r.text
    assert jobs_written(made) == 0


def test_a_submit_reads_the_company_s_recent_and_unfinished_jobs_by_index_not_its_history(farm):
    """The submit limits count the jobs of the last minute and sum the chunks waiting on unfinished jobs; each read
    goes through an index that holds only those rows (SQLite's plan), so a company with years of finished jobs
    submits as fast as a new one."""
    from sqlalchemy import event

    made, http = farm
    seen: list[tuple[str, object]] = []

    def note(_conn, _cursor, statement, parameters, _context, _many):
        if "FROM jobs" in statement and ("count(" in statement or "sum(" in statement):
            seen.append((statement, parameters))

    event.listen(made.db.engine, "before_cursor_execute", note)
    try:
        assert http.post("/api/v1/jobs", json=spec(frames="1")).status_code == 201
    finally:
        event.remove(made.db.engine, "before_cursor_execute", note)
    plans = {}
    with made.db.engine.connect() as conn:
        for statement, parameters in seen:
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
            plans["count" if "count(" in statement else "sum"] = " / ".join(str(r[-1]) for r in rows)
    assert "INDEX ix_jobs_company_created" in plans["count"], plans
    assert "INDEX ix_jobs_company_finished" in plans["sum"], plans
