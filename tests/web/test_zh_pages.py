"""Every monitor page in Chinese has no English left outside names, ids, paths, logs and technical tokens (issue 16).

Status reasons and attempt errors written by the farm are still English sentences: the pages here carry none (see
the issue's item 6, which needs them stored as codes).
"""

from __future__ import annotations

import html as htmllib
import re
from datetime import UTC, datetime, timedelta

from farm.db.models import TaskAttempt
from farm.domain.states import TaskStatus
from farm.metering import ledger
from farm.services import nodeview
from tests import factories
from tests.web.test_monitor import Monitor

#: Words a Chinese page may show: product and format names, units written the same in both languages.
TECHNICAL = {"GPU", "CPU", "PNG", "EXR", "JPEG", "API", "UTC", "Blender", "MP4", "KiB", "MiB", "GiB", "B", "ID"}
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
    names = {"hero", job_id, "acme", "default", "node-a", "slot-0", "slot-1", company_id, "English"}
    for path in ("/jobs", f"/jobs/{job_id}", "/workers", "/usage", "/jobs?page=9", "/jobs/job-nope", "/jobs?q=zz"):
        page = mon.http.get(path, headers=ZH).text
        assert '<html lang="zh-Hans">' in page, path
        if path == f"/jobs/{job_id}":
            assert "重新提交" in page and "渲染设置" in page  # the resubmit form and the settings are there too
        left = english_words(page, names)
        assert not left, f"{path}: English left on the Chinese page: {sorted(left)}"
