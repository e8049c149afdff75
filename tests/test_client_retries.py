"""Busy, not broken, seen from the client (issue 17): idempotent calls wait out a busy farm (503 + Retry-After)
and a moment of unreachability; a submit is never sent twice. Against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from farm.client import ClientError, FarmClient
from farm.client.api import FarmUnreachable
from tests import factories


def flaky_farm(busy_answers: int) -> tuple[FastAPI, list[str]]:
    """Answers 503 (Retry-After: 0) to the first ``busy_answers`` requests of each path, then a job list."""
    app = FastAPI()
    seen: list[str] = []

    @app.api_route("/api/v1/{rest:path}", methods=["GET", "POST", "PUT"])
    async def answer(rest: str, request: Request) -> JSONResponse:
        seen.append(f"{request.method} /{rest}")
        if sum(1 for s in seen if s == f"{request.method} /{rest}") <= busy_answers:
            return JSONResponse({"detail": "the database is busy"}, status_code=503, headers={"Retry-After": "0"})
        return JSONResponse({"jobs": []})

    return app, seen


def test_a_read_waits_out_a_busy_farm():
    app, seen = flaky_farm(busy_answers=2)
    waits: list[float] = []
    with factories.serve(app) as url, FarmClient(url, "farm_t", sleep=waits.append) as client:
        assert client.jobs() == []
    assert seen == ["GET /jobs"] * 3 and waits == [0.0, 0.0]


def test_a_submit_is_never_sent_twice():
    app, seen = flaky_farm(busy_answers=1)
    with factories.serve(app) as url, FarmClient(url, "farm_t", sleep=lambda _s: None) as client:
        with pytest.raises(ClientError) as caught:
            client._request("POST", "/api/v1/jobs", json={})
    assert caught.value.status == 503 and "busy" in caught.value.detail
    assert seen == ["POST /jobs"]


def test_gives_up_after_its_retries_with_the_farms_reason():
    app, seen = flaky_farm(busy_answers=100)
    with factories.serve(app) as url, FarmClient(url, "farm_t", retries=3, sleep=lambda _s: None) as client:
        with pytest.raises(ClientError) as caught:
            client.jobs()
    assert caught.value.status == 503 and len(seen) == 4


def test_an_unreachable_farm_is_retried_then_reported():
    waits: list[float] = []
    url = f"http://127.0.0.1:{factories.free_port()}"
    with FarmClient(url, "farm_t", retries=2, sleep=waits.append) as client, pytest.raises(FarmUnreachable):
        client.jobs()
    assert len(waits) == 2 and waits[1] > waits[0]


def test_a_download_whose_store_is_down_blames_the_store_not_the_farm(tmp_path):
    from fastapi.responses import RedirectResponse

    store = f"http://127.0.0.1:{factories.free_port()}"  # the presigned URL's host: down
    app = FastAPI()

    @app.get("/api/v1/jobs/{job_id}/preview")
    async def preview(job_id: str) -> RedirectResponse:
        return RedirectResponse(f"{store}/bucket/outputs/{job_id}/preview.mp4?X-Amz-Signature=x", status_code=307)

    with factories.serve(app) as url, FarmClient(url, "farm_t", sleep=lambda _s: None) as client:
        with pytest.raises(ClientError) as caught:
            client.download_preview("job-1", tmp_path / "preview.mp4")
    message = caught.value.detail
    assert "object store" in message and store.removeprefix("http://") in message
    assert "cannot reach the farm" not in message


def damaging_farm(body: bytes) -> FastAPI:
    """A farm whose frame listing promises one sha256 and whose frame download sends other bytes."""
    app = FastAPI()
    promised = hashlib.sha256(b"the frame as rendered").hexdigest()

    @app.get("/api/v1/jobs/{job_id}/frames")
    async def frames(job_id: str) -> JSONResponse:
        frame = {"frame": 1, "name": "shot_0001.png", "size": 21, "sha256": promised, "key": "k", "device": "CPU"}
        frame |= {"render_seconds": 0.1, "created_at": "2026-11-30T00:00:00Z", "layers": []}
        return JSONResponse({"job_id": job_id, "frames": [frame]})

    @app.get("/api/v1/jobs/{job_id}/frames/{number}")
    async def frame(job_id: str, number: int) -> Response:
        return Response(body, media_type="image/png")

    return app


def test_a_damaged_download_leaves_no_file_and_says_which_frame(tmp_path):
    with factories.serve(damaging_farm(b"bytes damaged on the way")) as url, FarmClient(url, "farm_t") as client:
        with pytest.raises(ClientError) as caught:
            client.download("job_x", tmp_path)
    assert "frame 1 arrived corrupted" in caught.value.detail
    assert list(tmp_path.iterdir()) == []  # neither the frame nor its temporary file
