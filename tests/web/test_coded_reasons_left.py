"""Issue 16: reasons that used to be plain English (a retry, the worker's storage and internal errors, a failed
video) are coded, keep their code through the worker's path hiding and Ray's pickling, and read in Chinese."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from pathlib import Path

from farm.db.models import Job, JobProduct
from farm.domain import reasons
from farm.domain.states import TaskStatus
from farm.lifecycle import control
from farm.services import products
from farm.services.products import ProductFacts
from tests import factories
from tests.web.test_monitor import Monitor
from tests.web.test_zh_pages import ZH, english_words
from workers.layout import hide_node_paths


def test_hiding_node_paths_keeps_the_code() -> None:
    work = Path("/var/farm/worker-3")
    detail = f"PUT {work}/jobs/j1/out/f.png: connection reset"
    reason = reasons.make("pair", first=reasons.make("storage", detail=detail), second="plain")
    hidden = reasons.rewrite(reason, lambda text: hide_node_paths(text, [(work, "<worker>")]))
    assert isinstance(hidden, reasons.Reason) and hidden.code == "pair"
    assert hidden == "storage: PUT <worker>/jobs/j1/out/f.png: connection reset; plain"
    assert str(work) not in str(hidden.params)
    again = pickle.loads(pickle.dumps(hidden))  # how the facts travel back from the Ray actor
    assert isinstance(again, reasons.Reason) and again.params == hidden.params
    assert reasons.from_worker(reasons.make("worker_error", detail="KeyError('x')")).code == "worker_error"
    # Plain text stays plain text.
    assert reasons.rewrite(f"{work}/x", lambda text: text.replace(str(work), "<worker>")) == "<worker>/x"


def test_retry_and_failed_video_reasons_read_in_chinese(mon: Monitor) -> None:
    now = datetime.now(UTC)
    with mon.db.session() as s:
        job = factories.job(s, "acme", frames="1-4", chunk_size=2, status="failed", tasks=[TaskStatus.FAILED] * 2)
        job_id = job.id
        assert control.retry(s, job, now) == 2
        assert job.status_reason == "retrying 2 chunk(s)" and job.status_reason_code == "retrying"
        paused = factories.job(s, "acme", frames="1-2", chunk_size=2, status="paused", tasks=[TaskStatus.PAUSED])
        control.resume(s, paused, now)
        assert paused.status_reason == "resumed" and paused.status_reason_code == "resumed"
        paused_id = paused.id
        done = factories.job(s, "acme", frames="1-2", chunk_size=2, status="completed", tasks=[TaskStatus.COMPLETED])
        done_id = done.id
        products.start(s, done, now)
        products.record(s, ProductFacts(job_id=done.id, video=True, reason=reasons.make("video_no_ffmpeg")), now)
    with mon.db.session() as s:
        row = s.get(JobProduct, done_id)
        assert row is not None and row.reason_code == "video_no_ffmpeg"
        assert s.get(Job, job_id) is not None
    mon.login(mon.company_token("acme"))
    names = {job_id, done_id, "acme", "shot", "English", "ffmpeg"}
    retried = mon.http.get(f"/jobs/{job_id}", headers=ZH).text
    assert "正在重试 2 个分块" in retried
    assert not english_words(retried, names)
    assert "已继续" in mon.http.get(f"/jobs/{paused_id}", headers=ZH).text
    video = mon.http.get(f"/jobs/{done_id}", headers=ZH).text
    assert "负责编码视频的节点上没有安装 ffmpeg" in video
    assert not english_words(video, names)
    english = mon.http.get(f"/jobs/{done_id}", headers={"Accept-Language": "en"}).text
    assert "ffmpeg is not installed on the node that encodes videos" in english
