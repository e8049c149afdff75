"""The monitor's nav bar leads to the library page (everyone) and the operator's report (platform admins only),
in English and Simplified Chinese (issue 20)."""

from __future__ import annotations

import re

from farm.contract import Role
from tests import factories
from tests.platform.test_pages import login


def nav_links(html: str) -> dict[str, str]:
    """The nav bar's links: href -> label."""
    nav = re.search(r"<nav [^>]*>(.*?)</nav>", html, re.S)
    assert nav is not None, html[:2000]
    return {href: label.strip() for href, label in re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', nav.group(1))}


def test_library_for_everyone_and_the_report_only_for_platform_admins(tmp_path):
    with factories.api_farm(tmp_path) as farm:
        with farm.db.session() as s:
            artist = factories.token(s, "studio-nav", Role.ARTIST)
            company_admin = factories.token(s, "studio-nav", Role.COMPANY_ADMIN)
        for token, report in ((artist, False), (company_admin, False), (farm.admin_token, True)):
            with factories.client(farm, auth=False, base_url="http://127.0.0.1") as http:
                login(http, token)
                links = nav_links(http.get("/jobs").text)
                assert links.get("/library") == "Library"
                assert ("/admin/report" in links) is report, links
                if report:
                    assert links["/admin/report"] == "Report"
                    page = http.get("/admin/report").text
                    assert 'href="/admin/report" aria-current="page"' in page  # the current page is marked
                zh = nav_links(http.get("/library", headers={"Accept-Language": "zh-CN"}).text)
                assert zh["/library"] == "素材库" and ("/admin/report" in zh) is report
                if report:
                    assert zh["/admin/report"] == "运营报告"
                assert 'href="/library" aria-current="page"' in http.get("/library").text
