"""Isolation: a second company's token walks EVERY route of /openapi.json with the first company's ids.

Runs against the session's embedded farm over real HTTP, after company A rendered a real one-frame job (so it
has a job, tasks, an attempt with a log, a frame, a blob, ledger rows and a token). Nothing of A may leak to B:
each route answers 404 (or 403/405/409/422 that echo only B's own input), or a 2xx scoped to B.
"""

from __future__ import annotations

import json
import re
import secrets
import time

import httpx
import pytest

from farm.client.admin import AdminClient
from farm.contract import CompanyCreate, Role, TokenCreate
from farm.domain.states import JOB_TERMINAL

pytestmark = [pytest.mark.ray, pytest.mark.blender]

NO_TOKEN_NEEDED = {"/healthz", "/readyz", "/openapi.json"}


@pytest.fixture(scope="module")
def scene(farm, sample_blend):
    suffix = secrets.token_hex(3)
    a_name, b_name = f"alpha-secret-{suffix}", f"bravo-{suffix}"
    with AdminClient(farm.url, farm.admin_token) as admin:
        for name in (a_name, b_name):
            admin.create_company(CompanyCreate(name=name))
        a_token = admin.create_token(TokenCreate(company=a_name, role=Role.COMPANY_ADMIN))
        b_token = admin.create_token(TokenCreate(company=b_name, role=Role.COMPANY_ADMIN))
        a_artist = admin.create_token(TokenCreate(company=a_name, role=Role.ARTIST))
    with AdminClient(farm.url, a_token.token) as a:
        # A short name: other tests read `farm jobs` tables, where a long one squeezes the id column.
        job = a.submit(sample_blend, "1", name=f"as-{suffix}", chunk_size=1).job
        deadline = time.monotonic() + 120
        while job.status not in JOB_TERMINAL and time.monotonic() < deadline:
            time.sleep(0.1)
            job = a.job(job.id)
        assert job.status.value == "completed", job.status_reason
        tasks = a.tasks(job.id).tasks
        frame = a.frames(job.id).frames[0]
    from sqlalchemy import select

    from farm.db.models import Blob, Company

    with farm.db.session() as s:
        a_company = s.scalar(select(Company).where(Company.name == a_name))
        blob = s.scalar(select(Blob.sha256).where(Blob.company_id == a_company.id))
        a_company_id = a_company.id
    # Issue 20: A publishes its blob to a third company only; for B it must not exist.
    with AdminClient(farm.url, farm.admin_token) as admin:
        admin.create_company(CompanyCreate(name=f"charlie-{suffix}"))
    shared = {"sha256": blob, "name": "alpha", "filename": "a.blend", "licence": "A's", "to": [f"charlie-{suffix}"]}
    published = httpx.post(
        f"{farm.url}/api/v1/library", json=shared, headers={"Authorization": f"Bearer {a_token.token}"}
    )
    assert published.status_code == 201, published.text
    asset_id = published.json()["id"]
    # Issue 19: A's webhook and preset; B must not see or touch them.
    a_headers = {"Authorization": f"Bearer {a_token.token}"}
    hook = httpx.post(f"{farm.url}/api/v1/admin/webhooks", json={"url": "http://127.0.0.1:9/a-hook"}, headers=a_headers)
    assert hook.status_code == 201, hook.text
    preset = httpx.put(f"{farm.url}/api/v1/presets/{a_name}", json={"settings": {"chunk_size": 3}}, headers=a_headers)
    assert preset.status_code in (200, 201), preset.text
    # Issue 20 item 4: A shares that preset with the third company only; for B it must not exist either.
    share = {"description": "A's way", "to": [f"charlie-{suffix}"]}
    published_preset = httpx.post(f"{farm.url}/api/v1/presets/{a_name}/publish", json=share, headers=a_headers)
    assert published_preset.status_code in (200, 201), published_preset.text
    return {
        "a_name": a_name,
        "b_name": b_name,
        "a_company_id": a_company_id,
        "a_token": a_token,
        "a_artist": a_artist,
        "b_token": b_token.token,
        "job": job,
        "task_ids": [t.id for t in tasks],
        "frame": frame,
        "blob": blob,
        "asset_id": asset_id,
        "webhook_id": hook.json()["id"],
    }


def secrets_of_a(scene) -> list[str]:
    """Strings that must never reach company B."""
    return [
        scene["a_name"],
        scene["a_company_id"],
        scene["job"].id,
        scene["job"].name,
        scene["a_token"].id,
        scene["a_artist"].id,
        scene["frame"].sha256,
        *scene["task_ids"],
        scene["asset_id"],
        scene["webhook_id"],
    ]


def path_values(scene) -> dict[str, str]:
    return {
        "job_id": scene["job"].id,
        "task_id": scene["task_ids"][0],
        "frame": str(scene["frame"].frame),
        "sha256": scene["blob"],
        "name": scene["a_name"],
        "company": scene["a_name"],
        "publisher": scene["a_name"],
        "token_id": scene["a_token"].id,
        "asset_id": scene["asset_id"],
        "webhook_id": scene["webhook_id"],
    }


def body_for(method: str, template: str, scene) -> dict[str, object] | None:
    """A plausible body for each write route, aimed at A's things."""
    bodies: dict[tuple[str, str], dict[str, object]] = {
        ("POST", "/api/v1/blobs/missing"): {"hashes": [scene["blob"]]},
        ("POST", "/api/v1/jobs"): {
            "name": "steal",
            "blend_file": "scene.blend",
            "manifest": {"scene.blend": {"sha256": scene["blob"], "size": 10}},
            "frames": "1",
        },
        ("POST", "/api/v1/admin/companies"): {"name": f"{scene['b_name']}-new"},
        ("PATCH", "/api/v1/admin/companies/{name}"): {"max_slots": 0, "gpu_hours_budget": 0},
        ("POST", "/api/v1/admin/tokens"): {"company": scene["a_name"], "role": "company-admin"},
        ("POST", "/api/v1/admin/webhooks"): {"url": "http://127.0.0.1:9/hook"},
    }
    return bodies.get((method, template), {} if method in ("POST", "PUT", "PATCH") else None)


def read_some(http: httpx.Client, method: str, url: str, **kwargs: object) -> tuple[int, str, str]:
    """Status, content type and up to 256 KiB of the body; event streams are read for a moment only."""
    with http.stream(method, url, **kwargs) as response:
        chunks, size, deadline = [], 0, time.monotonic() + 2.0
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > 256 * 1024 or time.monotonic() > deadline:
                break
        body = b"".join(chunks).decode("utf-8", "replace")
        return response.status_code, response.headers.get("content-type", ""), body


def test_every_route_is_scoped_to_the_callers_company(farm, scene):
    values = path_values(scene)
    leaks = secrets_of_a(scene)
    spec = httpx.get(f"{farm.url}/openapi.json").json()
    walked = []
    with httpx.Client(base_url=farm.url, timeout=5.0, headers={"Authorization": f"Bearer {scene['b_token']}"}) as http:
        for template, operations in spec["paths"].items():
            for method, op in operations.items():
                method = method.upper()
                params = {p["name"]: p for p in op.get("parameters", [])}
                path_names = re.findall(r"{(\w+)}", template)
                unknown = [n for n in path_names if n not in values]
                assert not unknown, f"{method} {template}: add a value of company A for {unknown} to this test"
                url = template
                for name in path_names:
                    url = url.replace("{" + name + "}", values[name])
                query = {n: values[n] for n, p in params.items() if p["in"] == "query" and n in values}
                body = body_for(method, template, scene)
                kwargs: dict[str, object] = {"params": query}
                if method == "PUT":
                    kwargs["content"] = b""
                elif body is not None:
                    kwargs["json"] = body
                status, ctype, text = read_some(http, method, url, **kwargs)
                walked.append((method, template, status))
                sent = json.dumps([url, query, body])
                leaked = [s for s in leaks if s in text and s not in sent]  # echoing B's own input is no leak
                assert not leaked, f"{method} {url} -> {status} leaks {leaked}: {text[:500]}"
                if path_names and template not in NO_TOKEN_NEEDED:
                    # A's ids in the path: A's thing must look absent (or the call is refused outright).
                    assert status in (403, 404, 405, 422), f"{method} {url} -> {status}: {text[:300]}"
                elif template in NO_TOKEN_NEEDED or status >= 400:
                    assert status < 500, f"{method} {url} -> {status}: {text[:300]}"
                if (method, template) == ("POST", "/api/v1/blobs/missing"):
                    assert json.loads(text)["missing"] == [scene["blob"]]  # A's blob never counts for B
                if query.get("company") == scene["a_name"]:
                    assert status in (403, 404), f"{method} {url}?company=A -> {status}"
    assert len(walked) >= 15, walked
    # Nothing B tried changed A's things.
    with AdminClient(farm.url, scene["a_token"].token) as a:
        assert a.job(scene["job"].id).status.value == "completed"
        assert a.me().company == scene["a_name"]
        assert a.company(scene["a_name"]).max_slots is None


def test_platform_admin_sees_both_and_can_narrow(farm, scene):
    with AdminClient(farm.url, farm.admin_token) as admin:
        report = admin.usage_report(company=scene["a_name"], per_job=True)
        assert {r.company for r in report.rows} == {scene["a_name"]}
        assert scene["job"].id in {r.job_id for r in report.rows}
        names = {c.name for c in admin.companies()}
        assert {scene["a_name"], scene["b_name"]} <= names
    with AdminClient(farm.url, scene["b_token"]) as b:
        assert b.usage_report(per_job=True).rows == []
        assert [c.name for c in b.companies()] == [scene["b_name"]]
