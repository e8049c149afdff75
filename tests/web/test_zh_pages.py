"""Every monitor page in Chinese has no English left outside names, ids, paths, logs and technical tokens (issue 16).

Status reasons and attempt reasons are stored as codes with parameters (``farm.domain.reasons``) and shown in the
viewer's language; only words that are not the farm's own (Blender's message, a node's name) stay as they are.
"""

from __future__ import annotations

import html as htmllib
import re
from datetime import UTC, datetime, timedelta

from farm.db.models import Task, TaskAttempt
from farm.domain import reasons
from farm.domain.states import JobStatus, TaskStatus
from farm.lifecycle import attempts, blocklist
from farm.lifecycle.transitions import set_job_status
from farm.metering import ledger
from farm.services import nodeview
from tests import factories
from tests.web.test_monitor import Monitor

#: Words a Chinese page may show: product and format names, units written the same in both languages.
TECHNICAL = {"GPU", "CPU", "PNG", "EXR", "JPEG", "API", "UTC", "Blender", "MP4", "KiB", "MiB", "GiB", "B", "ID", "EUR"}
ZH = {"Accept-Language": "zh-CN,zh;q=0.9"}


def english_words(page: str, names: set[str]) -> set[str]:
    """Latin words in the page's visible text and its labels, after removing names, logs and technical tokens."""
    body = re.split(r"<body[^>]*>", page, maxsplit=1)[1]
    body = re.sub(r"<(script|style|pre)\b.*?</\1>", " ", body, flags=re.S)
    labels = " ".join(re.findall(r'(?:aria-label|placeholder|title|alt|data-label|data-confirm)="([^"]*)"', body))
    text = htmllib.unescape(re.sub(r"<[^>]+>", " ", body) + " " + labels)
    for name in sorted(names, key=len, reverse=True):
        text = text.replace(name, " ")
    text = re.sub(r"\bfarm \w+|\S+\.(blend|png|mp4)\b|--\w+|\b\d+x\d+\b", " ", text)  # commands, paths, sizes
    return {w for w in re.findall(r"[A-Za-z][A-Za-z-]+", text) if w not in TECHNICAL}


def test_no_english_left_on_chinese_pages(mon: Monitor) -> None:
    now = datetime.now(UTC)
    with mon.db.session() as s:
        job = factories.job(
            s,
            "default",
            name="hero",
            frames="1-4",
            chunk_size=2,
            status="active",
            tasks=[TaskStatus.COMPLETED, TaskStatus.RUNNING],
            started_at=now - timedelta(seconds=40),
            settings={"resolution": "64x48", "samples": 8, "output_format": "PNG"},
        )
        job_id, company_id = job.id, job.company_id
        s.add(
            TaskAttempt(
                task_id=f"{job_id}-t0",
                number=1,
                node="node-a",
                worker="slot-0",
                status="completed",
                started_at=now - timedelta(seconds=30),
                ended_at=now,
                seconds=30.0,
                reason="",
                log_tail="Fra:1 Mem",
            )
        )
        company = s.get(type(job).__mro__[0], job_id).company_id
        ledger.record(s, ledger.Usage(company, job_id, None, 1, "node-a", "cpu", 2.0, now, now, 90.0, "completed"))
    nodeview.write(
        mon.db,
        nodeview.Snapshot(
            workers=(
                nodeview.WorkerState("slot-0", "node-a", "busy", f"{job_id}-t1"),
                nodeview.WorkerState("slot-1", "node-a", "idle"),
            )
        ),
        now,
    )
    mon.login(mon.admin)
    names = {"hero", job_id, "acme", "default", "node-a", "slot-0", "slot-1", company_id, "English", "job-nope"}
    for path in ("/jobs", f"/jobs/{job_id}", "/workers", "/usage", "/jobs?page=9", "/jobs/job-nope", "/jobs?q=zz"):
        page = mon.http.get(path, headers=ZH).text
        assert '<html lang="zh-Hans">' in page, path
        if path == f"/jobs/{job_id}":
            assert "重新提交" in page and "渲染设置" in page  # the resubmit form and the settings are there too
        left = english_words(page, names)
        assert not left, f"{path}: English left on the Chinese page: {sorted(left)}"


def test_reasons_summaries_and_log_titles_follow_the_language(mon: Monitor) -> None:
    """A failed job whose reason is the lifecycle's own failure summary (a coded reason nesting the last attempt's
    coded reason, plus the blocklisted node), a failed chunk, a paused job: Chinese everywhere in zh, the stored
    English sentence (the API's) in en, and the colour from the code's severity."""
    now = datetime.now(UTC)
    blender_says = "Error: Cannot read file 'tex/wood.png'"  # Blender's own words: shown as they are
    with mon.db.session() as s:
        company = factories.company(s, "default")
        company.rates = {"cpu": 0.02}
        job = factories.job(
            s,
            company,
            name="hero",
            frames="1-4",
            chunk_size=2,
            status="active",
            tasks=[TaskStatus.FAILED, TaskStatus.COMPLETED],
            started_at=now - timedelta(seconds=40),
            submitted_by="maya",
            settings={"resolution": "64x48", "samples": 8, "output_format": "PNG", "max_attempts": 2},
        )
        task = s.get(Task, f"{job.id}-t0")
        assert task is not None
        task.failures = 2
        s.add(
            TaskAttempt(
                task_id=task.id,
                number=1,
                node="node-a",
                worker="slot-0",
                status="failed",
                started_at=now - timedelta(seconds=30),
                ended_at=now - timedelta(seconds=20),
                seconds=10.0,
                reason=reasons.from_worker(f"frame 1: {blender_says}"),
                log_tail="Fra:1 Mem",
            )
        )
        s.add(
            TaskAttempt(
                task_id=task.id,
                number=2,
                node="node-a",
                worker="slot-0",
                status="failed",
                started_at=now - timedelta(seconds=20),
                ended_at=now,
                seconds=20.0,
                reason=reasons.make("lease_expired", timeout=600),
                log_tail="Fra:2 Mem",
            )
        )
        # What the lifecycle records for a soft-failed attempt on the node: the worker's reason, coded.
        blocklist.record_failure(s, job.id, "node-a", reasons.from_worker(f"frame 1: {blender_says}"), now, 1)
        s.flush()
        set_job_status(job, JobStatus.FAILED, now, attempts.failure_summary(s, job))
        english = job.status_reason
        ledger.record(s, ledger.Usage(company.id, job.id, task.id, 1, "node-a", "cpu", 2.0, now, now, 0.09, "failed"))
        paused = factories.job(
            s, company, name="calm", status="paused", tasks=[TaskStatus.PAUSED] * 4, submitted_by="maya"
        )
        paused.status_reason = reasons.make("paused")
        job_id, paused_id = job.id, paused.id
    # The summary is the lifecycle's: the nested attempt reason and the blocklisted node are in it, in English.
    assert english == (
        "1 of 2 chunk(s) failed; chunk 0 (frames 1-2) after 2 attempt(s), last on node-a: lease expired: no frame or "
        "progress for 600s (FARM_TASK_TIMEOUT_S); the attempt was killed; blocklisted: node-a"
    )
    mon.login(mon.admin)
    names = {"hero", "calm", job_id, paused_id, "node-a", "slot-0", "default", "maya", "English", blender_says}
    zh = mon.http.get(f"/jobs/{job_id}", headers=ZH).text
    assert "最后一次在 node-a" in zh and "租约过期：600 秒内没有新帧或进度" in zh  # nested, in Chinese
    assert "已列入黑名单的节点：node-a" in zh and 'data-severity="error"' in zh
    assert "第 2 次尝试 · node-a · 失败" in zh  # the log title, with the coded attempt reason translated
    assert "maya" in zh and "EUR" in zh  # submitter and the cost's currency
    left = english_words(zh, names | {"FARM_TASK_TIMEOUT_S"})
    assert not left, f"English left on the Chinese job page: {sorted(left)}"
    zh_paused = mon.http.get(f"/jobs/{paused_id}", headers=ZH).text
    assert "已按请求暂停" in zh_paused and 'data-severity="info"' in zh_paused
    assert not english_words(zh_paused, names)
    en = mon.http.get(f"/jobs/{job_id}", headers={"Accept-Language": "en"}).text
    assert htmllib.escape(english, quote=False) in en
    assert "chunk 0 (frames 1-2) · attempt 2 · node-a · Failed · lease expired" in en
    en_paused = mon.http.get(f"/jobs/{paused_id}", headers={"Accept-Language": "en"}).text
    assert "paused by request" in en_paused and 'class="reason reason-info"' in en_paused
    # The API keeps its English text and adds the code.
    api = mon.http.get(f"/api/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {mon.admin}"}).json()
    assert api["status_reason"] == english and api["status_reason_code"] == "pair"
    assert api["submitted_by"] == "maya"
