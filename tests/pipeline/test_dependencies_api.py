"""``after`` and ``frame_match`` through the API: refused with the reason (404/422), shown on the job."""

from __future__ import annotations

from typing import Any

from tests.tenancy.conftest import Api, sha

BLEND = b"BLENDER-v500 dependency api test"


def spec(**extra: Any) -> dict[str, Any]:
    return {
        "name": "shot",
        "blend_file": "scene.blend",
        "manifest": {"scene.blend": {"sha256": sha(BLEND), "size": len(BLEND)}},
        "frames": "1-4",
        **extra,
    }


def studio(api: Api, name: str) -> dict[str, str]:
    headers = api.as_(api.mint(name))
    assert api.put(f"/api/v1/blobs/{sha(BLEND)}", content=BLEND, headers=headers).status_code in (200, 201)
    return headers


def test_after_is_checked_and_shown(api):
    a, b = studio(api, "dep-a"), studio(api, "dep-b")
    render = api.post("/api/v1/jobs", json=spec(name="render"), headers=a).json()
    theirs = api.post("/api/v1/jobs", json=spec(name="theirs"), headers=b).json()

    comp = api.post("/api/v1/jobs", json=spec(name="comp", after=[render["id"]], frame_match=True), headers=a)
    assert comp.status_code == 201, comp.text
    body = comp.json()
    assert body["after"] == [render["id"]] and body["frame_match"] is True
    assert body["status"] == "queued"
    assert body["status_reason"] == f"waiting for frames of job {render['id']} (render)"
    assert api.get(f"/api/v1/jobs/{body['id']}", headers=a).json()["after"] == [render["id"]]

    for after in (["job-does-not-exist"], [theirs["id"]]):
        answer = api.post("/api/v1/jobs", json=spec(after=after), headers=a)
        assert answer.status_code == 404, answer.text
        assert after[0] in answer.json()["detail"] and "not found" in answer.json()["detail"]
    lone = api.post("/api/v1/jobs", json=spec(frame_match=True), headers=a)
    assert lone.status_code == 422 and "frame_match needs" in lone.json()["detail"]
    blank = api.post("/api/v1/jobs", json=spec(after=[""]), headers=a)
    assert blank.status_code == 422 and "after" in blank.json()["detail"]
    many = api.post("/api/v1/jobs", json=spec(after=[f"job-{i}" for i in range(51)]), headers=a)
    assert many.status_code == 422
    listed = {j["id"]: j for j in api.get("/api/v1/jobs", headers=a).json()["jobs"]}
    assert len(listed) == 2  # the refused submits wrote nothing
