"""Presets through the API: saved per company, applied under a submit's own settings, refused with reasons."""

from __future__ import annotations

from tests.pipeline.test_dependencies_api import spec, studio
from tests.tenancy.conftest import Api


def test_presets_save_apply_override_and_scope(api: Api):
    a, b = studio(api, "pre-a"), studio(api, "pre-b")
    saved = api.put(
        "/api/v1/presets/final", json={"settings": {"samples": 256, "chunk_size": 4, "gpu": True}}, headers=a
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["settings"]["samples"] == 256
    assert [p["name"] for p in api.get("/api/v1/presets", headers=a).json()["presets"]] == ["final"]
    assert api.get("/api/v1/presets", headers=b).json()["presets"] == []
    assert api.get("/api/v1/presets/final", headers=b).status_code == 404

    job = api.post("/api/v1/jobs", json=spec(preset="final", chunk_size=2), headers=a).json()
    assert (job["samples"], job["chunk_size"], job["gpu"]) == (256, 2, True)  # the request's chunk_size wins
    assert job["tasks_total"] == 2
    assert api.post("/api/v1/jobs", json=spec(preset="final"), headers=b).status_code == 404
    assert api.post("/api/v1/jobs", json=spec(preset="nope"), headers=a).status_code == 404

    copied = api.put("/api/v1/presets/like-that", json={"from_job": job["id"], "settings": {"priority": 90}}, headers=a)
    assert copied.status_code == 200, copied.text
    values = copied.json()["settings"]
    assert (values["samples"], values["chunk_size"], values["gpu"], values["priority"]) == (256, 2, True, 90)
    assert api.put("/api/v1/presets/x", json={"from_job": job["id"]}, headers=b).status_code == 404

    for name, body in (
        ("bad name!", {"settings": {"samples": 1}}),
        ("empty", {"settings": {}}),
        ("neg", {"settings": {"samples": 0}}),
        ("res", {"settings": {"resolution": "huge"}}),
        ("extra", {"settings": {"frames": "1-4"}}),
    ):
        answer = api.put(f"/api/v1/presets/{name}", json=body, headers=a)
        assert answer.status_code == 422, (name, answer.text)
    assert api.delete("/api/v1/presets/final", headers=b).status_code == 404
    assert api.delete("/api/v1/presets/final", headers=a).status_code == 204
    assert api.get("/api/v1/presets/final", headers=a).status_code == 404
    again = api.get(f"/api/v1/jobs/{job['id']}", headers=a).json()
    assert again["samples"] == 256  # a job keeps what it was submitted with


def test_resubmit_route_refuses_with_reasons(api: Api):
    a, b = studio(api, "re-a"), studio(api, "re-b")
    job = api.post("/api/v1/jobs", json=spec(samples=8), headers=a).json()
    again = api.post(f"/api/v1/jobs/{job['id']}/resubmit", json={"frames": "2-3", "samples": 16}, headers=a)
    assert again.status_code == 201, again.text
    made = again.json()
    assert (made["frames"], made["samples"], made["name"]) == ("2-3", 16, "shot") and made["id"] != job["id"]
    assert api.post(f"/api/v1/jobs/{job['id']}/resubmit", json={}, headers=b).status_code == 404
    reversed_ = api.post(f"/api/v1/jobs/{job['id']}/resubmit", json={"frames": "9-1"}, headers=a)
    assert reversed_.status_code == 400 and "9-1" in reversed_.json()["detail"]  # as a submit answers
    assert api.post(f"/api/v1/jobs/{job['id']}/resubmit", json={"samples": -1}, headers=a).status_code == 422


def test_order_preview_through_the_api_and_presets(api: Api):
    a = studio(api, "ord-a")
    job = api.post("/api/v1/jobs", json=spec(order="preview", chunk_size=2), headers=a).json()
    assert job["order"] == "preview"
    tasks = api.get(f"/api/v1/jobs/{job['id']}/tasks", headers=a).json()["tasks"]
    assert [t["frames"] for t in tasks] == ["1,4", "2-3"]  # the ends first, then the middle
    bogus = api.post("/api/v1/jobs", json=spec(order="random"), headers=a)
    assert bogus.status_code == 422 and "order" in bogus.json()["detail"]
    api.put("/api/v1/presets/dailies", json={"settings": {"order": "preview"}}, headers=a)
    made = api.post("/api/v1/jobs", json=spec(preset="dailies"), headers=a).json()
    assert made["order"] == "preview"
    again = api.post(f"/api/v1/jobs/{made['id']}/resubmit", json={}, headers=a).json()
    assert again["order"] == "preview"
