"""``farm demo``: an embedded farm renders the bundled sample scene end to end."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from farm.client import FarmClient
from farm.domain.states import JOB_TERMINAL
from farm.runtime.embedded import EmbeddedFarm
from farm.sample import generate_sample
from farm.settings import ServerSettings


def run_demo(
    frames: str, resolution: str, samples: int, chunk: int, out_dir: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    """Render the sample and return a summary (job id, frames, wall time, usage seconds)."""
    with tempfile.TemporaryDirectory(prefix="farm-demo-") as tmp:
        tmp_path = Path(tmp)
        log("generating the sample scene ...")
        width, height = (int(v) for v in resolution.lower().split("x"))
        blend = generate_sample(tmp_path / "sample", resolution=(width, height), samples=samples)
        log("starting an embedded farm (Ray, Blender workers, API on 127.0.0.1) ...")
        settings = ServerSettings(data_dir=tmp_path / "data", port=0, write_cli_config=False)
        with EmbeddedFarm(settings) as farm, FarmClient(farm.url, farm.admin_token) as client:
            started = time.monotonic()
            result = client.submit(blend, frames, name="demo", chunk_size=chunk)
            job = result.job
            log(f"submitted {job.id}: {job.frames_total} frames in {job.tasks_total} chunks")
            last = -1
            while job.status not in JOB_TERMINAL:
                time.sleep(0.1)
                job = client.job(job.id)
                if job.frames_done != last:
                    last = job.frames_done
                    log(f"  {job.frames_done}/{job.frames_total} frames ({job.status.value})")
            wall = time.monotonic() - started
            got, _ = client.download(job.id, out_dir)
            usage = client.usage()
            seconds = sum(r.seconds for r in usage.totals if r.resource in ("cpu", "gpu"))
        return {
            "job_id": job.id,
            "status": job.status.value,
            "frames": f"{job.frames_done}/{job.frames_total}",
            "wall_time_s": round(wall, 2),
            "usage_resource_seconds": round(seconds, 2),
            "output": f"{got} file(s) in {out_dir}",
        }
