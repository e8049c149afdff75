"""The monitor's library page (thumbnails of image assets, 404 across companies) and the operator's report page."""

from __future__ import annotations

import hashlib
import io
import re

from fastapi.testclient import TestClient
from PIL import Image

from farm.contract import Role
from tests import factories


def login(http: TestClient, token: str) -> TestClient:
    page = http.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    answer = http.post("/login", data={"token": token, "csrf": csrf.group(1)}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return http


def png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (400, 200), color).save(buffer, "PNG")
    return buffer.getvalue()


def test_library_page_report_page_and_their_limits(tmp_path):
    texture = png((200, 30, 30))
    digest = hashlib.sha256(texture).hexdigest()
    with factories.api_farm(tmp_path) as farm:
        with farm.db.session() as s:
            pub = factories.token(s, "studio-a", Role.COMPANY_ADMIN)
            outsider = factories.token(s, "studio-c", Role.ARTIST)
            user = factories.token(s, "studio-b", Role.ARTIST)
        with factories.client(farm, auth=False) as api:
            bearer = {"Authorization": f"Bearer {pub}"}
            assert api.put(f"/api/v1/blobs/{digest}", content=texture, headers=bearer).status_code == 201
            body = {
                "sha256": digest,
                "name": "red brick",
                "filename": "brick.png",
                "licence": "CC0",
                "tags": ["texture"],
                "to": ["studio-b"],
            }
            asset = api.post("/api/v1/library", json=body, headers=bearer).json()
        with factories.client(farm, auth=False, base_url="http://127.0.0.1") as http:
            assert http.get("/library", follow_redirects=False).status_code == 303  # a session first
            login(http, user)
            page = http.get("/library")
            assert page.status_code == 200 and "red brick" in page.text and f"/library/{asset['id']}/thumb" in page.text
            thumb = http.get(f"/library/{asset['id']}/thumb")
            assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
            with Image.open(io.BytesIO(thumb.content)) as image:
                assert image.size == (160, 80)
                red, green, _blue = image.getpixel((80, 40))
                assert red > 150 and green < 80
            assert http.get(f"/library/{asset['id']}/download").content == texture
            assert http.get("/admin/report").status_code == 403  # platform admins only
        with factories.client(farm, auth=False, base_url="http://127.0.0.1") as other:
            login(other, outsider)
            assert "red brick" not in other.get("/library").text
            assert other.get(f"/library/{asset['id']}/thumb").status_code == 404
            assert other.get(f"/library/{asset['id']}/download").status_code == 404
        with factories.client(farm, auth=False, base_url="http://127.0.0.1") as admin:
            login(admin, farm.admin_token)
            report = admin.get("/admin/report", params={"month": "2026-11"})
            assert report.status_code == 200 and "GPU" in report.text and "CPU" in report.text
            assert admin.get("/admin/report", params={"month": "2026-13"}).status_code == 422
