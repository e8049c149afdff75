"""What the monitor's event streams watch: one job, one page of the jobs list, the Workers page, a month's usage.

A browser opens ONE stream for all of its monitor tabs (``static/monitor-worker.js``, a SharedWorker, multiplexes
it): ``GET /events?watch=job:ID&watch=list:status=active&watch=workers&watch=usage:2026-05`` names every topic the
open tabs show (``lang`` names the pages' language).
Each watch remembers what it last sent and ``poll()`` returns only what changed, as ``(kind, data)`` pairs; a
fresh stream starts with the whole state. Nothing here ends a stream when a job finishes: a finished job can be
retried from the CLI and its page must follow.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from farm.domain.states import JobStatus
from farm.errors import FarmError, NotFound, ValidationFailed
from web.deps import AppContext
from web.monitor import actions, views

if TYPE_CHECKING:
    from web.monitor.routes import Viewer

#: The most topics one stream may watch (a browser with this many monitor tabs open is not a wrangler's).
MAX_TOPICS = 64
#: After a job completes, how long its watch keeps looking for the preview video on every poll.
PREVIEW_GRACE_S = 20.0

Update = tuple[str, Any]
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@dataclass
class JobWatch:
    """One job's page: ``job`` (progress), ``tasks``, ``blocklist``, ``frames``, ``log``, ``preview`` and ``gone``
    (the job vanished or is not the viewer's)."""

    job_id: str
    v: Viewer
    ctx: AppContext
    render: Callable[[str, dict[str, Any]], str]
    row_state: Callable[[views.JobRow], dict[str, Any]]
    sent_job: dict[str, Any] = field(default_factory=dict)
    sent_tasks: str = ""
    sent_blocklist: str = ""
    sent_frames: dict[int, str] = field(default_factory=dict)
    sent_log: dict[str, tuple[str, str]] = field(default_factory=dict)
    sent_preview: bool = False
    gone: bool = False
    finished_at: float | None = None

    @property
    def topic(self) -> str:
        return f"job:{self.job_id}"

    def load(self) -> tuple[views.JobDetail, bool]:
        """The job page's data now (``NotFound`` for a job the viewer may not see)."""
        with self.ctx.db.session() as s:
            detail = views.job_detail(s, self.v.who, self.job_id, self.ctx.clock.now(), self.v.t)
        return detail, self.ctx.store.stat(detail.preview_key) is not None

    def poll(self) -> list[Update]:
        try:
            detail, has_preview = self.load()
        except NotFound as exc:
            if self.gone:
                return []
            self.gone = True
            return [("gone", {"message": exc.message})]
        self.gone = False
        return self.changes(detail, has_preview)

    def changes(self, detail: views.JobDetail, has_preview: bool) -> list[Update]:
        out: list[Update] = []
        t = self.v.t
        state = self.row_state(detail.job)
        if state != self.sent_job:
            out.append(("job", state))
            self.sent_job = state
        tasks_html = self.render("_tasks.html", {"t": t, "tasks": detail.tasks})
        if tasks_html != self.sent_tasks:
            out.append(("tasks", {"html": tasks_html}))
            self.sent_tasks = tasks_html
        listed = self.render(
            "_blocklist.html",
            {
                "t": t,
                "csrf": self.v.csrf,
                "job_id": detail.job.id,
                "blocklist": detail.blocklist,
                "can_unblock": actions.may_unblock(self.v.who),
            },
        )
        if listed != self.sent_blocklist:
            out.append(("blocklist", {"html": listed, "shown": bool(detail.blocklist)}))
            self.sent_blocklist = listed
        base = f"/jobs/{quote(self.job_id)}"
        fresh = [tile for tile in detail.tiles if tile.done and self.sent_frames.get(tile.frame) != tile.version]
        if fresh:
            out.append(
                (
                    "frames",
                    [
                        {
                            "frame": tile.frame,
                            "version": tile.version,
                            "thumb": f"{base}/frames/{tile.frame}/thumb?v={tile.version}",
                            "image": f"{base}/frames/{tile.frame}/image",
                            "label": t("job.frame_n", frame=tile.frame),
                        }
                        for tile in fresh
                    ],
                )
            )
            self.sent_frames.update({tile.frame: tile.version for tile in fresh})
        changed = [b for b in detail.log if self.sent_log.get(b.key) != (b.title, b.text)]
        if changed:
            download = t("job.log_download")
            out.append(
                (
                    "log",
                    [
                        {
                            "key": b.key,
                            "title": b.title,
                            "text": b.text,
                            "download": f"{base}/log/{b.key}.txt",
                            "download_label": download,
                        }
                        for b in changed
                    ],
                )
            )
            self.sent_log.update({b.key: (b.title, b.text) for b in changed})
        if has_preview and not self.sent_preview:
            out.append(("preview", {"url": f"{base}/preview.mp4"}))
            self.sent_preview = True
        if detail.job.terminal:
            self.finished_at = self.finished_at or time.monotonic()
        else:
            self.finished_at = None  # retried: it is live again
        return out

    def settled(self) -> bool:
        """Whether a one-job stream (``/jobs/{id}/events``) may end: finished, and its preview sent or given up."""
        if self.finished_at is None:
            return False
        waiting = self.sent_job.get("status") == JobStatus.COMPLETED.value and not self.sent_preview
        return not waiting or time.monotonic() - self.finished_at > PREVIEW_GRACE_S


@dataclass
class ListWatch:
    """One page of the jobs list (its filter, search, sort and page): ``list`` when the jobs on it change (ids in
    order, the rows not sent before as HTML, the count), ``row`` when a job on it progresses."""

    query: views.ListQuery
    v: Viewer
    ctx: AppContext
    render: Callable[[str, dict[str, Any]], str]
    row_state: Callable[[views.JobRow], dict[str, Any]]
    sent_ids: list[str] | None = None
    sent_count: str = ""
    sent_rows: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def topic(self) -> str:
        return f"list:{self.query.encode()}"

    def poll(self) -> list[Update]:
        t = self.v.t
        with self.ctx.db.session() as s:
            rows, total = views.job_page(s, self.v.who, self.query, self.ctx.clock.now())
        out: list[Update] = []
        ids = [r.id for r in rows]
        count = t("jobs.count", n=t.number(total))
        if ids != self.sent_ids or count != self.sent_count:
            known = set(self.sent_ids or [])
            out.append(
                (
                    "list",
                    {
                        "ids": ids,
                        "rows": {
                            r.id: self.render(
                                "_job_row.html", {"t": t, "viewer": self.v.who, "r": r, "j": self.row_state(r)}
                            )
                            for r in rows
                            if r.id not in known
                        },
                        "count": count,
                        "total": total,
                    },
                )
            )
            self.sent_ids, self.sent_count = ids, count
        for r in rows:
            state = self.row_state(r)
            if self.sent_rows.get(r.id) != state:
                out.append(("row", state))
                self.sent_rows[r.id] = state
        return out


@dataclass
class HtmlWatch:
    """A page part the server renders whole (the Workers table, a month's usage): its HTML whenever it changed,
    as ``kind``."""

    topic: str
    kind: str
    render_part: Callable[[], str]
    sent: str = ""

    def poll(self) -> list[Update]:
        try:
            html = self.render_part()
        except FarmError as exc:  # e.g. an artist asking for the usage: refused once, like a job that is gone
            gone = f"gone:{exc.message}"
            if self.sent == gone:
                return []
            self.sent = gone
            return [("gone", {"message": exc.message})]
        if html == self.sent:
            return []
        self.sent = html
        return [(self.kind, {"html": html, "version": version(html)})]


def version(html: str) -> str:
    """A short fingerprint of a rendered part: the page carries its own, so a stream's first (whole-state) update
    does not redraw what the page already shows."""
    return hashlib.sha256(html.encode()).hexdigest()[:16]


Watch = JobWatch | ListWatch | HtmlWatch


def parse_topic(value: str) -> tuple[str, str]:
    """``job:ID``, ``list:<query string>`` or ``workers`` → (kind, argument); ``ValidationFailed`` otherwise."""
    kind, _, arg = value.partition(":")
    if kind == "job" and arg and len(arg) <= 64:
        return kind, arg
    if kind == "list" and len(arg) <= 512:
        return kind, arg
    if kind == "workers" and not arg:
        return kind, ""
    if kind == "usage" and MONTH.match(arg):
        return kind, arg
    raise ValidationFailed(
        f"cannot watch {value[:80]!r}: topics are job:<job id>, list:<jobs list query>, workers or usage:<YYYY-MM>"
    )


def list_query(arg: str) -> views.ListQuery:
    """The jobs list's query string (``status=…&q=…&sort=…&page=…``) as the list reads it."""
    params = {key: values[-1] for key, values in parse_qs(arg, keep_blank_values=True).items()}
    return views.ListQuery.from_params(params)
