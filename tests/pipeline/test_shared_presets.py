"""Shared presets (issue 20 item 4) through the API: published by a company or the platform, visible by the
library's rule, found at submit after the company's own, and never leaking another company's private presets."""

from __future__ import annotations

from farm.contract import Role
from tests.pipeline.test_dependencies_api import BLEND, spec
from tests.tenancy.conftest import Api, sha


def admin_of(api: Api, company: str) -> dict[str, str]:
    """A company admin's headers, with the test scene uploaded for that company."""
    headers = api.as_(api.mint(company, Role.COMPANY_ADMIN))
    assert api.put(f"/api/v1/blobs/{sha(BLEND)}", content=BLEND, headers=headers).status_code in (200, 201)
    return headers


def save(api: Api, who: dict[str, str], name: str, **settings: object) -> None:
    answer = api.put(f"/api/v1/presets/{name}", json={"settings": settings}, headers=who)
    assert answer.status_code == 200, answer.text


def publish(api: Api, who: dict[str, str], name: str, **body: object) -> dict[str, object]:
    answer = api.post(f"/api/v1/presets/{name}/publish", json={"description": "for finals", **body}, headers=who)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def submit(api: Api, who: dict[str, str], preset: str) -> dict[str, object]:
    answer = api.post("/api/v1/jobs", json=spec(preset=preset), headers=who)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_shared_preset_found_after_own_and_by_explicit_ref(api: Api) -> None:
    a, b = admin_of(api, "sp-a"), admin_of(api, "sp-b")
    save(api, a, "final", samples=64, chunk_size=3)
    shared = publish(api, a, "final", description="Final frames of lit shots: 64 samples, 3-frame chunks")
    assert (shared["ref"], shared["publisher"], shared["visibility"], shared["by_platform"]) == (
        "final@sp-a",
        "sp-a",
        "all",
        False,
    )
    listed = api.get("/api/v1/shared-presets", headers=b).json()["presets"]
    assert [(p["ref"], p["mine"], p["description"]) for p in listed] == [
        ("final@sp-a", False, "Final frames of lit shots: 64 samples, 3-frame chunks")
    ]
    assert api.get("/api/v1/presets", headers=b).json()["presets"] == []  # b's own presets: none

    job = submit(api, b, "final")  # b has no own "final": the shared one applies
    assert (job["samples"], job["chunk_size"]) == (64, 3)
    save(api, b, "final", samples=8)
    assert submit(api, b, "final")["samples"] == 8  # the company's own preset comes first
    assert submit(api, b, "final@sp-a")["samples"] == 64  # ... unless the shared one is named

    # The shared copy is taken at publish time; publishing again replaces it.
    save(api, a, "final", samples=128)
    assert submit(api, b, "final@sp-a")["samples"] == 64
    publish(api, a, "final", description="Final frames, now 128 samples")
    assert submit(api, b, "final@sp-a")["samples"] == 128

    # Unpublished: new submits cannot use it, jobs already made keep their settings, a's own preset stays.
    assert api.delete("/api/v1/presets/final/publish", headers=b).status_code == 404  # b never published one
    assert api.delete("/api/v1/presets/final/publish", headers=a).status_code == 204
    gone = api.post("/api/v1/jobs", json=spec(preset="final@sp-a"), headers=b)
    assert gone.status_code == 404 and "final@sp-a" in gone.json()["detail"]
    assert api.get(f"/api/v1/jobs/{job['id']}", headers=b).json()["samples"] == 64
    assert api.get("/api/v1/presets/final", headers=a).json()["settings"]["samples"] == 128


def test_private_and_listed_presets_stay_hidden(api: Api) -> None:
    a, b, c = admin_of(api, "vis-a"), admin_of(api, "vis-b"), admin_of(api, "vis-c")
    save(api, a, "secret", samples=3)
    assert api.get("/api/v1/presets/secret", headers=b).status_code == 404
    assert api.post("/api/v1/jobs", json=spec(preset="secret"), headers=b).status_code == 404
    assert api.post("/api/v1/jobs", json=spec(preset="secret@vis-a"), headers=b).status_code == 404
    assert api.post("/api/v1/presets/secret/publish", json={"description": "x"}, headers=b).status_code == 404

    save(api, a, "partners", samples=5)
    shared = publish(api, a, "partners", to=["vis-c"])
    assert shared["visibility"] == "listed" and shared["to"] == ["vis-c"]
    seen_by_c = api.get("/api/v1/shared-presets/vis-a/partners", headers=c).json()
    assert seen_by_c["to"] is None  # the grantee list is the publisher's business
    assert submit(api, c, "partners")["samples"] == 5
    for path in ("/api/v1/shared-presets/vis-a/partners", "/api/v1/shared-presets/vis-a/secret"):
        assert api.get(path, headers=b).status_code == 404
    assert api.post("/api/v1/jobs", json=spec(preset="partners"), headers=b).status_code == 404
    assert api.get("/api/v1/shared-presets", headers=b).json()["presets"] == []
    mine = api.get("/api/v1/shared-presets", headers=a).json()["presets"]
    assert [(p["ref"], p["mine"], p["to"]) for p in mine] == [("partners@vis-a", True, ["vis-c"])]


def test_publishing_is_checked_and_the_platform_publishes_practice(api: Api) -> None:
    a, b = admin_of(api, "pub-a"), admin_of(api, "pub-b")
    artist = api.as_(api.mint("pub-a", Role.ARTIST))
    save(api, a, "draft", samples=16)
    refused = api.post("/api/v1/presets/draft/publish", json={"description": "d"}, headers=artist)
    assert refused.status_code == 403
    for body in ({"description": ""}, {"description": "   "}, {}, {"description": "d", "to": ["no-such-co"]}):
        answer = api.post("/api/v1/presets/draft/publish", json=body, headers=a)
        assert answer.status_code == 422, (body, answer.text)
    assert api.post("/api/v1/presets/nope/publish", json={"description": "d"}, headers=a).status_code == 404
    bad_ref = api.post("/api/v1/jobs", json=spec(preset="draft@@pub-a"), headers=a)
    assert bad_ref.status_code == 422 and "preset" in bad_ref.json()["detail"]

    platform = api.as_(api.admin_token)
    save(api, platform, "draft", samples=32, order="preview")
    practice = publish(api, platform, "draft", description="Dailies: preview order so the whole shot shows early")
    assert practice["by_platform"] is True
    publish(api, a, "draft")
    # b sees two shared presets called "draft": a bare name is ambiguous, the refs are not.
    ambiguous = api.post("/api/v1/jobs", json=spec(preset="draft"), headers=b)
    assert ambiguous.status_code == 409
    assert "draft@pub-a" in ambiguous.json()["detail"] and str(practice["ref"]) in ambiguous.json()["detail"]
    made = submit(api, b, str(practice["ref"]))
    assert (made["samples"], made["order"]) == (32, "preview")
    # A platform admin may take down a company's shared preset; another company may not.
    assert api.delete("/api/v1/presets/draft/publish?company=pub-a", headers=b).status_code == 404
    assert api.delete("/api/v1/presets/draft/publish?company=pub-a", headers=platform).status_code == 204
    assert submit(api, b, "draft")["samples"] == 32  # only the platform's is left
