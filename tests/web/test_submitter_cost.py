"""Submitter and currency on the monitor (issue 16): who submitted each job, sortable and searchable; every cost
with the rate card's currency and enough decimals not to read 0.00."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import select

from farm.contract import Role
from farm.db.models import ApiToken, Company, Job
from farm.metering import ledger
from farm.services import jobs as jobops
from farm.services import tokens
from farm.services.auth import Principal
from tests import factories
from tests.web.test_monitor import Monitor


def _names_in_order(html: str) -> list[str]:
    return re.findall(r'<a href="/jobs/(job-[^"]+)">', html)


def test_submitter_column_sorts_and_searches(mon: Monitor) -> None:
    with mon.db.session() as s:
        ids = {
            who: factories.job(s, "default", name=f"shot-{who}", submitted_by=who).id for who in ("zoe", "amir", "lin")
        }
    mon.login(mon.admin)
    html = mon.http.get("/jobs?sort=submitter&dir=asc").text
    assert _names_in_order(html) == [ids["amir"], ids["lin"], ids["zoe"]]
    assert 'aria-sort="ascending"' in html and ">Submitted by<" in html
    found = mon.http.get("/jobs?q=ami").text
    assert _names_in_order(found) == [ids["amir"]]
    page = mon.http.get(f"/jobs/{ids['lin']}").text
    assert re.search(r'id="job-submitter">lin<', page)


def test_the_submitter_is_the_tokens_user_or_name(mon: Monitor) -> None:
    now = datetime.now(UTC)
    with mon.db.session() as s:
        factories.token(s, "default", Role.ARTIST, name="ci-bot")
        token = s.scalars(select(ApiToken).where(ApiToken.name == "ci-bot")).one()
        company = s.get(Company, token.company_id)
        assert company is not None
        who = Principal(token.id, company.id, company.name, Role.ARTIST)
        assert jobops.submitter(s, who) == "ci-bot"
        token.user_id = tokens.ensure_user(s, company, "maya", now).id
        assert jobops.submitter(s, who) == "maya"


def test_costs_carry_the_currency_and_small_ones_are_not_zero(mon: Monitor) -> None:
    job_id = mon.add_job(company="acme", frames=2)
    now = datetime.now(UTC)
    with mon.db.session() as s:
        job = s.get(Job, job_id)
        assert job is not None
        company = s.get(Company, job.company_id)
        assert company is not None
        company.rates = {"cpu": 0.02}
        # 2 cores for 9 s at 0.02 an hour: 0.0001 of a currency unit.
        ledger.record(s, ledger.Usage(company.id, job_id, None, 1, "n", "cpu", 2.0, now, now, 9.0, "completed"))
    mon.login(mon.admin)
    usage = mon.http.get("/usage").text
    assert '<span class="cost">0.00010 EUR</span>' in usage, usage
    page = mon.http.get(f"/jobs/{job_id}").text
    assert re.search(r"id=\"job-cost\">0.00010 EUR<", page), re.findall(r"job-cost.{0,60}", page)
    api = mon.http.get("/api/v1/usage", headers={"Authorization": f"Bearer {mon.admin}"}).json()
    assert api["currency"] == "EUR"
