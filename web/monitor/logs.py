"""One attempt's output as a text file (the log viewer's download links): what the farm kept of Blender's output."""

from __future__ import annotations

import re

from fastapi import APIRouter, Response

from farm.errors import NotFound
from farm.services import jobs as jobops
from web.deps import Ctx
from web.monitor.routes import PageRoute, Seen

router = APIRouter(route_class=PageRoute, include_in_schema=False)

KEY = re.compile(r"^(\d{1,9})-(\d{1,4})\.txt$")


@router.get("/jobs/{job_id}/log/{name}")
def attempt_log(job_id: str, name: str, v: Seen, ctx: Ctx) -> Response:
    """``<chunk>-<attempt>.txt``: that attempt's output, a header line first; 404 for another company's job."""
    match = KEY.match(name)
    if match is None:
        raise NotFound(f"no log {name!r}: log files are named <chunk>-<attempt>.txt, e.g. 0-1.txt")
    index, number = int(match.group(1)), int(match.group(2))
    with ctx.db.session() as s:
        job = jobops.get_job(s, v.who, job_id)
        tasks = jobops.tasks_out(s, job)
    for task in tasks:
        if task.index != index:
            continue
        for attempt in task.attempts:
            if attempt.number == number:
                head = (
                    f"# job {job_id} · chunk {index} (frames {task.frames}) · attempt {number}"
                    f" · node {attempt.node or '?'} · {attempt.status}\n"
                )
                return Response(
                    head + attempt.log_tail,
                    media_type="text/plain; charset=utf-8",
                    headers={
                        "Content-Disposition": f'attachment; filename="{job_id}-chunk{index}-attempt{number}.txt"'
                    },
                )
    raise NotFound(f"job {job_id} has no attempt {number} of chunk {index}")
