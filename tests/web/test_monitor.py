"""The monitor without a browser: sessions, CSRF, isolation, pages, thumbnails, languages (real SQLite and store)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from farm.contract import Role
from farm.db.engine import Database
from farm.db.models import ApiToken, Job
from farm.media import thumbnails
from farm.metering import ledger
from storage.base import output_key
from storage.local import LocalDirStore
from tests import factories
from web import i18n
from web.monitor import views

TEMPLATES = Path(__file__).resolve().parents[2] / "web" / "templates"


class Monitor:
    def __init__(self, http: TestClient, db: Database, store: LocalDirStore, admin: str) -> None:
        self.http, self.db, self.store, self.admin = http, db, store, admin

    def login(self, token: str, client: TestClient | None = None) -> TestClient:
        http = client or self.http
        page = http.get("/login")
        csrf = csrf_of(page.text)
        r = http.post("/login", data={"token": token, "csrf": csrf}, follow_redirects=False)
        assert r.status_code == 303, r.text
        return http

    def company_token(self, name: str, role: Role = Role.ARTIST) -> str:
        with self.db.session() as s:
            return factories.token(s, name, role, name="test")

    def add_job(self, company: str = "default", frames: int = 4, status: str = "queued", stored: int = 0) -> str:
        """A job row with tasks and ``stored`` PNG frames in the store (no scheduler)."""
        now = datetime.now(UTC)
        with self.db.session() as s:
            job = factories.job(
                s,
                company,
                frames=f"1-{frames}",
                chunk_size=2,
                status=status,
                settings={"output_format": "PNG"},
                now=now,
                name=f"shot-{company}",
                started_at=now - timedelta(seconds=30) if status != "queued" else None,
            )
            for f in range(1, stored + 1):
                key = output_key(job.company_id, job.id, f"frame_{f:04d}.png")
                path = self.store.root / "src.png"
                Image.new("RGB", (320, 180), (20 * f, 100, 200)).save(path)
                self.store.put_file(key, path)
                factories.frames(s, job, [f], now, key=key, size=path.stat().st_size, sha256=f"{f:064x}")
            return job.id


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


@pytest.fixture()
def mon(tmp_path):
    with factories.api_farm(tmp_path) as farm:
        with factories.client(farm, auth=False, base_url="http://127.0.0.1") as http:
            yield Monitor(http, farm.db, farm.store, farm.admin_token)  # type: ignore[arg-type]


def test_pages_need_a_session_but_login_health_and_static_do_not(mon):
    for path in ("/jobs", "/workers", "/usage", "/jobs/job-x", "/"):
        r = mon.http.get(path, follow_redirects=False)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/login" if path != "/" else "/jobs")
    assert mon.http.get("/events/jobs?ids=a", headers={"accept": "text/event-stream"}).status_code == 401
    assert mon.http.get("/login").status_code == 200
    assert mon.http.get("/healthz").status_code == 200
    assert mon.http.get("/static/monitor.css").status_code == 200


def test_session_cookie_is_signed_httponly_lax_and_holds_no_token(mon):
    page = mon.http.get("/login")
    r = mon.http.post("/login", data={"token": mon.admin, "csrf": csrf_of(page.text)}, follow_redirects=False)
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert mon.admin not in cookie
    assert mon.http.get("/jobs").status_code == 200
    # An altered cookie is no session at all.
    value = mon.http.cookies.get("farm_session")
    mon.http.cookies.set("farm_session", value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert mon.http.get("/jobs", follow_redirects=False).status_code == 303


def test_login_refuses_bad_tokens_and_missing_csrf(mon):
    page = mon.http.get("/login")
    csrf = csrf_of(page.text)
    r = mon.http.post("/login", data={"token": "farm_nope", "csrf": csrf})
    assert r.status_code == 401 and "unknown API token" in r.text
    assert mon.http.post("/login", data={"token": mon.admin}).status_code == 403
    assert mon.http.post("/login", data={"token": mon.admin, "csrf": "forged"}).status_code == 403
    fresh = TestClient(mon.http.app, base_url="http://127.0.0.1")  # no cookie at all
    assert fresh.post("/login", data={"token": mon.admin, "csrf": csrf}).status_code == 403


def test_login_redirects_only_to_local_paths(mon):
    page = mon.http.get("/login")
    for target, expected in (("/usage", "/usage"), ("https://evil.example/", "/jobs"), ("//evil", "/jobs")):
        r = mon.http.post(
            "/login", data={"token": mon.admin, "csrf": csrf_of(page.text), "next": target}, follow_redirects=False
        )
        assert r.headers["location"] == expected
        page = mon.http.get("/jobs")


def test_every_post_action_needs_the_csrf_token(mon):
    job = mon.add_job()
    mon.login(mon.admin)
    html = mon.http.get(f"/jobs/{job}").text
    for path in (f"/jobs/{job}/cancel", "/logout", "/lang"):
        assert mon.http.post(path, data={"lang": "zh"}).status_code == 403, path
        assert mon.http.post(path, data={"csrf": "wrong", "lang": "zh"}).status_code == 403, path
    r = mon.http.post(f"/jobs/{job}/cancel", headers={"X-CSRF-Token": csrf_of(html)}, follow_redirects=False)
    assert r.status_code == 303
    with mon.db.session() as s:
        assert s.get(Job, job).status == "canceled"


def test_revoked_token_ends_the_browser_session(mon):
    token = mon.company_token("acme")
    mon.login(token)
    assert mon.http.get("/jobs").status_code == 200
    with mon.db.session() as s:
        for row in s.query(ApiToken).filter(ApiToken.name == "test"):
            row.revoked_at = datetime.now(UTC)
    assert mon.http.get("/jobs", follow_redirects=False).status_code == 303


def test_logout_forgets_the_session(mon):
    mon.login(mon.admin)
    html = mon.http.get("/jobs").text
    assert mon.http.post("/logout", data={"csrf": csrf_of(html)}, follow_redirects=False).status_code == 303
    assert mon.http.get("/jobs", follow_redirects=False).status_code == 303


def test_another_companys_job_is_not_listed_and_answers_404(mon):
    theirs = mon.add_job(company="beta", stored=1)
    mine = mon.add_job(company="acme")
    mon.login(mon.company_token("acme"))
    listing = mon.http.get("/jobs").text
    assert mine in listing and theirs not in listing
    for path in (
        f"/jobs/{theirs}",
        f"/jobs/{theirs}/events",
        f"/jobs/{theirs}/frames/1/thumb",
        f"/jobs/{theirs}/frames/1/image",
        f"/jobs/{theirs}/preview.mp4",
    ):
        assert mon.http.get(path).status_code == 404, path
    html = mon.http.get(f"/jobs/{mine}").text
    assert mon.http.post(f"/jobs/{theirs}/cancel", data={"csrf": csrf_of(html)}).status_code == 404
    # The live list only streams jobs the viewer may see (both finished, so the stream ends at once).
    with mon.db.session() as s:
        s.get(Job, mine).status = s.get(Job, theirs).status = "canceled"
    body = mon.http.get(f"/events/jobs?ids={theirs},{mine}").text
    assert mine in body and theirs not in body


def test_admin_sees_every_company_with_its_name(mon):
    mon.add_job(company="beta")
    mon.login(mon.admin)
    html = mon.http.get("/jobs").text
    assert "shot-beta" in html and '<th scope="col">Company</th>' in html


def test_jobs_filter_and_pagination(mon):
    for _ in range(views.PAGE_SIZE + 3):
        mon.add_job(frames=2)
    done = mon.add_job(frames=2, status="active")
    mon.login(mon.admin)
    first = mon.http.get("/jobs").text
    assert first.count('<tr data-job="') == views.PAGE_SIZE and "Page 1 of 2" in first
    second = mon.http.get("/jobs?page=2").text
    assert second.count('<tr data-job="') == 4
    active = mon.http.get("/jobs?status=active").text
    assert active.count('<tr data-job="') == 1 and done in active


def test_job_page_shows_chunks_thumbnails_and_a_stream(mon):
    job = mon.add_job(frames=4, status="active", stored=2)
    mon.login(mon.admin)
    html = mon.http.get(f"/jobs/{job}").text
    assert html.count('class="done"') == 2 and html.count("<tr data-task=") == 2
    thumb = mon.http.get(f"/jobs/{job}/frames/1/thumb")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    from io import BytesIO

    assert Image.open(BytesIO(thumb.content)).size == (160, 90)
    assert any(".jpg" in o.key and "/thumbs/" in o.key for o in mon.store.list("outputs/"))
    # The stream starts with the whole state: job, chunk rows, frames (log blocks only when attempts exist).
    with mon.db.session() as s:
        s.get(Job, job).status = "failed"  # finished (and no preview to wait for): the stream ends on its own
    body = mon.http.get(f"/jobs/{job}/events").text
    for event in ("event: job", "event: tasks", "event: frames", "event: end"):
        assert event in body


def test_preview_video_is_shown_when_stored(mon, tmp_path):
    job = mon.add_job(frames=2, status="completed")
    with mon.db.session() as s:
        company = s.get(Job, job).company_id
    mon.login(mon.admin)
    assert 'id="preview" aria-labelledby="preview-h" hidden' in mon.http.get(f"/jobs/{job}").text
    video = tmp_path / "p.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    mon.store.put_file(output_key(company, job, "preview.mp4"), video)
    html = mon.http.get(f"/jobs/{job}").text
    assert f'src="/jobs/{job}/preview.mp4"' in html and 'aria-labelledby="preview-h" hidden' not in html
    r = mon.http.get(f"/jobs/{job}/preview.mp4", headers={"Range": "bytes=0-9"})
    assert r.status_code == 206 and len(r.content) == 10


def test_usage_page_sums_the_ledger_per_company(mon):
    job = mon.add_job(company="acme", frames=2)
    now = datetime.now(UTC)
    with mon.db.session() as s:
        co = s.get(Job, job).company_id
        for resource, count, seconds in (("cpu", 4.0, 900.0), ("gpu", 1.0, 1800.0)):
            ledger.record(s, ledger.Usage(co, job, None, 1, "n", resource, count, now, now, seconds, "completed"))
    mon.login(mon.admin)
    html = mon.http.get("/usage").text
    assert "acme" in html and "1.00" in html and "0.50" in html and "<svg" in html
    mon.http.post("/lang", data={"csrf": csrf_of(html), "lang": "zh"})
    assert "GPU 时" in mon.http.get("/usage").text
    assert mon.http.get("/usage?month=2026-13").status_code == 422


def test_workers_page_without_a_pool_lists_attempts_in_flight(mon):
    mon.login(mon.admin)
    html = mon.http.get("/workers").text
    assert "No render slots are known." in html


def test_language_from_accept_language_and_the_switch(mon):
    mon.login(mon.admin)
    zh = mon.http.get("/jobs", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}).text
    assert '<html lang="zh-Hans">' in zh and "作业" in zh
    en = mon.http.get("/jobs", headers={"Accept-Language": "en-GB,en;q=0.9"}).text
    assert '<html lang="en">' in en and ">Jobs<" in en
    r = mon.http.post("/lang", data={"csrf": csrf_of(en), "lang": "zh", "next": "/usage"}, follow_redirects=False)
    assert r.headers["location"] == "/usage"
    assert "用量" in mon.http.get("/usage", headers={"Accept-Language": "en"}).text


def test_negotiation_and_formatting():
    assert i18n.negotiate(None, "zh-TW,en;q=0.5") == "zh"
    assert i18n.negotiate(None, "fr, en;q=0.4, zh;q=0.8") == "zh"
    assert i18n.negotiate(None, "de") == "en"
    assert i18n.negotiate("en", "zh") == "en"
    assert i18n.negotiate(None, "zh;q=0, en") == "en"
    en, zh = i18n.translator("en"), i18n.translator("zh")
    assert en.number(1234567.891, 2) == "1,234,567.89"
    when = datetime(2026, 11, 3, 14, 5, tzinfo=UTC)
    assert en.datetime(when).startswith("Nov 3, 2026")
    assert zh.datetime(when).startswith("2026年11月3日")
    assert en.duration(3725) == "1h 2m" and zh.duration(3725) == "1小时2分钟"


def test_catalogue_is_complete_for_both_languages():
    catalogue = i18n.catalogue()
    for key, texts in catalogue.items():
        assert set(texts) == set(i18n.LOCALES), key
        assert all(texts.values()), key
        names = [set(re.findall(r"{(\w+)}", text)) for text in texts.values()]
        assert all(n == names[0] for n in names), f"{key}: placeholders differ between languages"
    used = set()
    for template in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r"""t\(\s*["']([a-z_]+\.[a-z_.-]+)["']""", template.read_text()))
    source = "".join(p.read_text() for p in (TEMPLATES.parent / "monitor").glob("*.py"))
    used |= set(re.findall(r"""t\(\s*["']([a-z_]+\.[a-z_.-]+)["']""", source))
    used -= {"jobs.sort_", "error.explain_"}  # prefixes of t("jobs.sort_" ~ column) and of per-status texts
    used |= {f"jobs.sort_{column}" for column in views.SORTS}
    from farm.domain.states import JobStatus, TaskStatus

    used |= {f"status.{s.value}" for s in (*JobStatus, *TaskStatus)}
    used |= {f"role.{r.value}" for r in Role} | {f"action.{a}" for a in ("cancel", "pause", "resume", "retry")}
    missing = sorted(used - set(catalogue))
    assert not missing, f"messages used but not in the catalogue: {missing}"


# ---- thumbnails -----------------------------------------------------------------------------------------------
def test_thumbnails_of_png_jpeg_and_exr_are_160_wide(tmp_path):
    import OpenEXR

    Image.new("RGBA", (640, 360), (255, 0, 0, 128)).save(tmp_path / "a.png")
    Image.new("RGB", (100, 50), (0, 255, 0)).save(tmp_path / "b.jpg")
    hdr = np.zeros((90, 320, 3), np.float32)
    hdr[:, :160] = 0.18  # mid grey
    hdr[:, 160:] = 40.0  # far above 1: must roll off, not wrap or clip to garbage
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    channels = {c: np.ascontiguousarray(hdr[..., i]) for i, c in enumerate("RGB")}
    with OpenEXR.File(header, channels) as exr:
        exr.write(str(tmp_path / "c.exr"))
    from io import BytesIO

    sizes = {}
    for name in ("a.png", "b.jpg", "c.exr"):
        image = Image.open(BytesIO(thumbnails.make_thumbnail(tmp_path / name)))
        assert image.format == "JPEG"
        sizes[name] = image.size
    assert sizes == {"a.png": (160, 90), "b.jpg": (100, 50), "c.exr": (160, 45)}  # never enlarged
    exr_thumb = np.asarray(Image.open(BytesIO(thumbnails.make_thumbnail(tmp_path / "c.exr"))), np.float32)
    grey, bright = exr_thumb[:, :60].mean(), exr_thumb[:, 100:].mean()
    assert 80 < grey < 130 and bright > 240  # 0.18 linear is about 118 in sRGB


def test_multilayer_exr_channels_are_found(tmp_path):
    import OpenEXR

    plane = np.full((8, 16), 0.5, np.float32)
    channels = {f"ViewLayer.Combined.{c}": plane for c in "RGBA"}
    with OpenEXR.File({"type": OpenEXR.scanlineimage}, channels) as exr:
        exr.write(str(tmp_path / "m.exr"))
    assert thumbnails.read_exr(tmp_path / "m.exr").shape == (8, 16, 3)


def test_thumbnail_is_made_once_and_stored_next_to_the_frame(tmp_path):
    store = LocalDirStore(tmp_path / "objects")
    Image.new("RGB", (320, 240), (1, 2, 3)).save(tmp_path / "f.png")
    frame_key = "outputs/co-1/job-1/frame_0001.png"
    store.put_file(frame_key, tmp_path / "f.png")
    key = thumbnails.ensure_thumbnail(store, frame_key, "ab" * 32)
    assert key == f"outputs/co-1/job-1/thumbs/frame_0001.{'ab' * 8}.jpg"
    first = store.local_path(key).stat().st_mtime_ns
    assert thumbnails.ensure_thumbnail(store, frame_key, "ab" * 32) == key
    assert store.local_path(key).stat().st_mtime_ns == first


def test_pause_resume_retry_buttons_follow_the_api(mon):
    from web.monitor import actions

    offered = actions.available(mon.http.app)
    job = mon.add_job(frames=4)
    mon.login(mon.admin)
    html = mon.http.get(f"/jobs/{job}").text
    for action in ("pause", "resume", "retry"):
        assert (f'data-action="{action}"' in html) == (action in offered)
    if "pause" not in offered:
        pytest.skip("this farm has no pause/resume API routes")
    assert 'data-action="pause">' in html and 'data-action="resume" hidden' in html
    assert mon.http.post(f"/jobs/{job}/pause", data={"csrf": csrf_of(html)}).status_code == 200
    with mon.db.session() as s:
        assert s.get(Job, job).status in ("paused", "pause-requested")
    html = mon.http.get(f"/jobs/{job}").text
    assert 'data-action="resume">' in html
    mon.http.post(f"/jobs/{job}/resume", data={"csrf": csrf_of(html)})
    with mon.db.session() as s:
        assert s.get(Job, job).status == "queued"
