"""Companies, tokens and roles through the API, with the bad input the issue lists."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from farm.contract import Role
from farm.db.models import ApiToken
from farm.services.auth import hash_token
from tests.tenancy.conftest import yesterday


def test_create_list_get_update_company(api):
    body = {"name": "studio-a", "gpu_share": 3, "cpu_share": 2, "min_slots": 1, "max_slots": 4,
            "gpu_hours_budget": 100, "cpu_hours_budget": 500, "rates": {"gpu": 1.5, "cpu": 0.02}}
    created = api.post("/api/v1/admin/companies", json=body)
    assert created.status_code == 201, created.text
    company = created.json()
    assert (company["gpu_share"], company["max_slots"], company["rates"]) == (3, 4, {"gpu": 1.5, "cpu": 0.02})
    assert "studio-a" in [c["name"] for c in api.get("/api/v1/admin/companies").json()["companies"]]
    assert api.get("/api/v1/admin/companies/studio-a").json()["cpu_hours_budget"] == 500
    updated = api.patch("/api/v1/admin/companies/studio-a", json={"gpu_hours_budget": 120, "max_slots": None})
    assert updated.status_code == 200, updated.text
    assert (updated.json()["gpu_hours_budget"], updated.json()["max_slots"], updated.json()["gpu_share"]) == (
        120, None, 3)
    assert api.post("/api/v1/admin/companies", json={"name": "studio-a"}).status_code == 409


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"name": "a"}, "2-64 characters"),
        ({"name": "x" * 65}, "65 characters long"),
        ({"name": "bad name!"}, "not allowed"),
        ({"name": "-dash"}, "starting with a letter or digit"),
        ({"name": "ok", "gpu_share": -1}, "gpu_share"),
        ({"name": "ok", "cpu_share": 0}, "cpu_share"),
        ({"name": "ok", "gpu_hours_budget": -5}, "gpu_hours_budget"),
        ({"name": "ok", "cpu_hours_budget": -0.1}, "cpu_hours_budget"),
        ({"name": "ok", "min_slots": -1}, "min_slots"),
        ({"name": "ok", "min_slots": 3, "max_slots": 2}, "must not exceed"),
        ({"name": "ok", "rates": {"gpu": -1}}, "0 or more"),
        ({"name": "ok", "rates": {"tpu": 1}}, "known resources"),
    ],
)
def test_bad_company_input_is_422_with_a_clear_message(api, body, fragment):
    response = api.post("/api/v1/admin/companies", json=body)
    assert response.status_code == 422, response.text
    assert fragment in response.json()["detail"]


def test_negative_values_on_update_are_422(api):
    api.post("/api/v1/admin/companies", json={"name": "upd"})
    for field in ("gpu_share", "cpu_hours_budget", "max_slots"):
        response = api.patch("/api/v1/admin/companies/upd", json={field: -1})
        assert response.status_code == 422 and field in response.json()["detail"], response.text
    response = api.patch("/api/v1/admin/companies/upd", json={"min_slots": 5, "max_slots": None})
    assert response.status_code == 200
    response = api.patch("/api/v1/admin/companies/upd", json={"max_slots": 2})
    assert response.status_code == 422 and "must not exceed" in response.json()["detail"]
    assert api.get("/api/v1/admin/companies/upd").json()["max_slots"] is None  # nothing half-applied


def test_token_is_random_shown_once_and_stored_hashed(api):
    api.post("/api/v1/admin/companies", json={"name": "tok-co"})
    first = api.post("/api/v1/admin/tokens", json={"company": "tok-co", "user": "anna"}).json()
    second = api.post("/api/v1/admin/tokens", json={"company": "tok-co"}).json()
    assert first["token"] != second["token"] and len(first["token"]) > 40
    assert first["role"] == "artist" and first["user"] == "anna"
    assert first["expires_at"] is not None  # tokens expire by default
    with api.db.session() as s:
        row = s.get(ApiToken, first["id"])
        assert row.token_hash == hash_token(first["token"]) and first["token"] not in str(vars(row))
    listed = api.get("/api/v1/admin/tokens", params={"company": "tok-co"}).json()["tokens"]
    assert {t["id"] for t in listed} == {first["id"], second["id"]}
    assert all("token" not in t for t in listed)
    me = api.get("/api/v1/me", headers=api.as_(first["token"])).json()
    assert (me["company"], me["role"]) == ("tok-co", "artist")


def test_revoked_expired_and_garbage_tokens_are_401_with_www_authenticate(api):
    api.post("/api/v1/admin/companies", json={"name": "gone"})
    created = api.post("/api/v1/admin/tokens", json={"company": "gone"}).json()
    assert api.get("/api/v1/jobs", headers=api.as_(created["token"])).status_code == 200
    revoked = api.post(f"/api/v1/admin/tokens/{created['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    expired = api.mint("gone", expires_at=yesterday())
    for token, fragment in [(created["token"], "revoked"), (expired, "expired"), ("farm_garbage", "unknown")]:
        response = api.get("/api/v1/jobs", headers=api.as_(token))
        assert response.status_code == 401, token
        assert "Bearer" in response.headers["www-authenticate"]
        assert fragment in response.json()["detail"]


def test_artist_gets_403_on_admin_routes(api):
    artist = api.as_(api.mint("art-co", Role.ARTIST))
    for method, path, body in [
        ("GET", "/api/v1/admin/companies", None),
        ("POST", "/api/v1/admin/companies", {"name": "nope"}),
        ("GET", "/api/v1/admin/companies/art-co", None),
        ("PATCH", "/api/v1/admin/companies/art-co", {"max_slots": 9}),
        ("GET", "/api/v1/admin/tokens", None),
        ("POST", "/api/v1/admin/tokens", {"company": "art-co"}),
        ("POST", "/api/v1/admin/tokens/tok-x/revoke", None),
        ("GET", "/api/v1/usage", None),
    ]:
        response = api.request(method, path, json=body, headers=artist)
        assert response.status_code == 403, (method, path, response.text)
        assert "role" in response.json()["detail"]
    assert api.get("/api/v1/jobs", headers=artist).status_code == 200  # its own jobs stay open to it


def test_company_admin_manages_its_own_company_only(api):
    api.post("/api/v1/admin/companies", json={"name": "other-co", "max_slots": 2})
    boss = api.as_(api.mint("boss-co", Role.COMPANY_ADMIN))
    assert [c["name"] for c in api.get("/api/v1/admin/companies", headers=boss).json()["companies"]] == ["boss-co"]
    assert api.get("/api/v1/admin/companies/other-co", headers=boss).status_code == 404
    assert api.patch("/api/v1/admin/companies/boss-co", json={"max_slots": 99}, headers=boss).status_code == 403
    assert api.post("/api/v1/admin/tokens", json={"company": "other-co"}, headers=boss).status_code == 404
    made = api.post("/api/v1/admin/tokens", json={"company": "boss-co", "role": "company-admin"}, headers=boss)
    assert made.status_code == 201
    up = api.post("/api/v1/admin/tokens", json={"company": "boss-co", "role": "platform-admin"}, headers=boss)
    assert up.status_code == 403 and "cannot create" in up.json()["detail"]
    other = api.post("/api/v1/admin/tokens", json={"company": "other-co"}).json()
    assert api.post(f"/api/v1/admin/tokens/{other['id']}/revoke", headers=boss).status_code == 404
    assert {t["company"] for t in api.get("/api/v1/admin/tokens", headers=boss).json()["tokens"]} == {"boss-co"}


def test_token_expiry_is_bounded(api):
    api.post("/api/v1/admin/companies", json={"name": "exp-co"})
    response = api.post("/api/v1/admin/tokens", json={"company": "exp-co", "expires_in_days": 0})
    assert response.status_code == 422
    never = api.post("/api/v1/admin/tokens", json={"company": "exp-co", "expires_in_days": None}).json()
    assert never["expires_at"] is None
    week = api.post("/api/v1/admin/tokens", json={"company": "exp-co", "expires_in_days": 7}).json()
    assert week["expires_at"] > never["created_at"]
    with api.db.session() as s:
        row = s.scalar(select(ApiToken).where(ApiToken.id == week["id"]))
        assert timedelta(days=6.9) < row.expires_at - row.created_at < timedelta(days=7.1)


def test_usage_report_per_company_job_resource_with_costs(api):
    from datetime import UTC, datetime

    from farm.metering import ledger
    from farm.services.auth import ensure_company

    api.post("/api/v1/admin/companies", json={"name": "pay-a", "rates": {"cpu": 0.5, "gpu": 2.0}})
    api.post("/api/v1/admin/companies", json={"name": "pay-b"})
    nov, dec = datetime(2026, 11, 3, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    with api.db.session() as s:
        a, b = ensure_company(s, "pay-a", nov), ensure_company(s, "pay-b", nov)
        for company, job, resource, count, seconds, when in [
            (a, "job-a1", "cpu", 2, 1800, nov),
            (a, "job-a1", "gpu", 1, 3600, nov),
            (a, "job-a1", "gpu", 1, -600, nov),  # a correction is a row of its own
            (a, "job-a2", "cpu", 1, 3600, dec),
            (b, "job-b1", "cpu", 4, 900, nov),
        ]:
            ledger.record(s, ledger.Usage(company.id, job, None, 1, "n", resource, count, when, when, seconds, "x"))
    report = api.get("/api/v1/usage", params={"month": "2026-11", "per_job": True}).json()
    rows = {(r["company"], r["job_id"], r["resource"]): r for r in report["rows"]}
    assert set(rows) == {("pay-a", "job-a1", "cpu"), ("pay-a", "job-a1", "gpu"), ("pay-b", "job-b1", "cpu")}
    assert rows[("pay-a", "job-a1", "gpu")]["hours"] == pytest.approx(50 / 60)
    assert rows[("pay-a", "job-a1", "gpu")]["cost"] == pytest.approx(2.0 * 50 / 60)
    assert rows[("pay-a", "job-a1", "cpu")]["seconds"] == 3600 and rows[("pay-a", "job-a1", "cpu")]["cost"] == 0.5
    summary = {c["company"]: c for c in report["companies"]}
    assert summary["pay-a"]["cost"] == pytest.approx(0.5 + 2.0 * 50 / 60)
    assert summary["pay-b"]["cpu_hours"] == 1.0 and summary["pay-b"]["cost"] == 0
    narrowed = api.get("/api/v1/usage", params={"month": "2026-11", "company": "pay-b"}).json()
    assert {r["company"] for r in narrowed["totals"]} == {"pay-b"}
    boss = api.as_(api.mint("pay-b", Role.COMPANY_ADMIN))
    own = api.get("/api/v1/usage", params={"month": "2026-11"}, headers=boss).json()
    assert {r["company"] for r in own["totals"]} == {"pay-b"} and [c["company"] for c in own["companies"]] == ["pay-b"]
    assert api.get("/api/v1/usage", params={"company": "pay-a"}, headers=boss).status_code == 404
    assert api.get("/api/v1/usage", params={"company": "nope"}).status_code == 404


def test_migration_matches_the_models(api):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from farm.db.models import Base

    mine = {"companies", "users", "api_tokens"}
    with api.db.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_server_default": True}), Base.metadata)
    ours = [d for d in diffs if mine & set(str(d).split("'"))]
    assert ours == []
