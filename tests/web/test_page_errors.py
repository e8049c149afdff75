"""Issue 16: the farm's own errors on a page are in the viewer's language, and costs carry the farm's currency.

A refused action (the actions table's ``Conflict``), an unknown chunk (404) or a bad priority (422) posted from the
monitor by a zh-CN viewer answers a page in Chinese with no English sentence; the English viewer gets the API's
exact text. The English templates in ``messages.toml`` are checked against the messages the farm really raises.
"""

from __future__ import annotations

import html as htmllib
import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from farm.db.models import Company, Job
from farm.domain.states import JobStatus, TaskStatus
from farm.errors import Conflict, FarmError, InvalidTransition, NotFound
from farm.lifecycle import actions as table
from farm.lifecycle.actions import RULES, ChunkAction, check, check_chunk
from farm.metering import ledger
from tests import factories
from tests.web.test_monitor import Monitor, csrf_of
from tests.web.test_zh_pages import ZH, english_words
from web import i18n
from web.errors import localized

EN = {"Accept-Language": "en"}
MESSAGES = Path(__file__).resolve().parents[2] / "web" / "templates" / "messages.toml"


def _job(mon: Monitor, status: str, tasks: list[TaskStatus]) -> str:
    with mon.db.session() as s:
        frames = f"1-{2 * len(tasks)}"
        return factories.job(s, "acme", frames=frames, chunk_size=2, status=status, tasks=tasks, name="shot").id


def _error_text(page: str) -> str:
    found = re.search(r'<div id="error-text">(.*?)</div>', page, re.S)
    assert found, page
    return htmllib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found[1])).strip())


def _raised(call: object, *args: object) -> FarmError:
    with pytest.raises(FarmError) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value


def test_refused_actions_read_in_chinese_for_a_chinese_viewer(mon: Monitor) -> None:
    done = _job(mon, "completed", [TaskStatus.COMPLETED, TaskStatus.COMPLETED])
    live = _job(mon, "active", [TaskStatus.COMPLETED, TaskStatus.QUEUED])
    mon.login(mon.company_token("acme"))
    csrf = csrf_of(mon.http.get("/jobs", headers=ZH).text)
    names = {done, live, "shot", "acme", "English", f"{live}-t0"}

    # Resume of a completed job: the actions table's refusal.
    zh = mon.http.post(f"/jobs/{done}/resume", data={"csrf": csrf}, headers=ZH)
    assert zh.status_code == 409
    assert _error_text(zh.text) == f"作业 {done} 的状态为“已完成”：只有已暂停的作业可以继续"
    assert not english_words(zh.text, names), sorted(english_words(zh.text, names))
    assert '<pre class="detail"' not in zh.text  # no English detail block under it
    en = mon.http.post(f"/jobs/{done}/resume", data={"csrf": csrf}, headers=EN)
    assert _error_text(en.text) == f"job {done} is completed: only paused jobs can be resumed"

    # Cancel of a completed chunk of a running job: the chunk's own refusal.
    zh = mon.http.post(f"/jobs/{live}/chunks", data={"csrf": csrf, "cancel": "0"}, headers=ZH)
    assert zh.status_code == 409
    assert _error_text(zh.text) == f"作业 {live} 的分块 0 状态为“已完成”：只能取消尚待渲染的分块"
    assert not english_words(zh.text, names)

    # Requeue of a chunk of a completed job is allowed; of a job being canceled it is refused by the job's state.
    with mon.db.session() as s:
        row = s.get(Job, live)
        assert row is not None
        row.status = JobStatus.CANCEL_REQUESTED.value
    zh = mon.http.post(f"/jobs/{live}/chunks", data={"csrf": csrf, "requeue": "0"}, headers=ZH)
    assert zh.status_code == 409
    assert _error_text(zh.text) == f"作业 {live} 的状态为“取消中”：等取消完成后才能重新排队其分块"

    # An unknown chunk (404) and a bad priority (422) are said in Chinese too.
    zh = mon.http.post(f"/jobs/{done}/chunks", data={"csrf": csrf, "requeue": "7"}, headers=ZH)
    assert zh.status_code == 404 and "没有分块 '7'" in _error_text(zh.text)
    assert not english_words(zh.text, names | {"farm status"})
    zh = mon.http.post(f"/jobs/{live}/priority", data={"csrf": csrf, "priority": "high"}, headers=ZH)
    assert zh.status_code == 422
    assert _error_text(zh.text) == "优先级必须是 0 到 100 之间的整数，而不是 'high'"
    # The API keeps its English detail, field for field.
    api = mon.http.post(f"/api/v1/jobs/{done}/resume", headers={"Authorization": f"Bearer {mon.admin}", **ZH})
    assert api.status_code == 409
    assert api.json() == {"detail": f"job {done} is completed: only paused jobs can be resumed"}


def test_an_error_without_a_code_still_explains_in_chinese_and_keeps_the_detail(mon: Monitor) -> None:
    job = _job(mon, "active", [TaskStatus.QUEUED])
    mon.login(mon.company_token("acme"))
    page = mon.http.get(f"/jobs/{job}/log/zz.txt", headers=ZH).text  # a 404 whose detail has no code
    assert "该内容不存在" in page and '<pre class="detail" lang="en">' in page


def test_english_templates_are_the_messages_the_farm_raises() -> None:
    """Each coded error the lifecycle raises renders, from messages.toml's English, to its exact message; both
    languages name the same parameters."""
    with MESSAGES.open("rb") as handle:
        messages = tomllib.load(handle)
    raised: list[FarmError] = []
    for action, rule in RULES.items():
        refused = [s for s in JobStatus if s not in rule.accepted_in]
        raised += [_raised(check, action, "job-1", s) for s in refused[:1]]
    for chunk_action in ChunkAction:
        raised.append(_raised(check_chunk, chunk_action, "job-1", JobStatus.REQUEUEING, 3, TaskStatus.QUEUED))
        chunk_rule = table.CHUNK_RULES[chunk_action]
        job_ok = sorted(chunk_rule.job_in)[0]
        bad_chunk = next(s for s in TaskStatus if s not in chunk_rule.accepted_in)
        raised.append(_raised(check_chunk, chunk_action, "job-1", job_ok, 3, bad_chunk))
    raised.append(InvalidTransition("job", "job-1", "completed", "running"))
    assert all(isinstance(e, Conflict) and e.code for e in raised)
    en, zh = i18n.translator("en"), i18n.translator("zh")
    for error in raised:
        entry = messages[f"error.{error.code}"]
        assert entry["en"].format(**error.params) == error.message, error.code
        assert set(re.findall(r"{(\w+)}", entry["en"])) == set(re.findall(r"{(\w+)}", entry["zh"])), error.code
        assert localized(en, error) == error.message
        said = localized(zh, error)
        assert said and not re.search(r"[A-Za-z]{3,}", said.replace("job-1", "")), said
    # An error without a code, or with a code this catalogue lacks, is left to the page's general explanation.
    assert localized(zh, NotFound("gone")) is None
    assert localized(zh, NotFound("gone", code="from_a_newer_version")) is None


def test_report_and_estimate_costs_use_the_farms_currency(tmp_path: Path) -> None:
    with factories.api_farm(tmp_path, currency="CHF") as farm, factories.client(farm) as http:
        now = datetime.now(UTC)
        with farm.db.session() as s:
            sample = factories.job(
                s,
                "acme",
                frames="1-2",
                chunk_size=2,
                status="completed",
                tasks=[TaskStatus.COMPLETED],
                settings={"estimate_for": "1-9"},
            )
            company = s.get(Company, sample.company_id)
            assert company is not None
            company.rates = {"cpu": 0.02}
            ledger.record(s, ledger.Usage(company.id, sample.id, None, 1, "n", "cpu", 2.0, now, now, 9.0, "completed"))
            sample_id = sample.id
        est = http.get(f"/api/v1/jobs/{sample_id}/estimate")
        assert est.status_code == 200, est.text
        assert est.json()["currency"] == "CHF"
        mon = Monitor(http, farm.db, farm.store, farm.admin_token)
        del http.headers["Authorization"]
        mon.login(farm.admin_token)
        month = f"{now.year:04d}-{now.month:02d}"
        report = mon.http.get(f"/admin/report?month={month}", headers=EN)
        assert report.status_code == 200, report.text
        costs = re.findall(r'<span class="cost">([^<]*)</span>', report.text)
        assert costs and all(c.endswith(" CHF") for c in costs), costs
