"""Scenarios run inside ``unshare --net --pid --fork --mount-proc`` (root): only ``lo`` exists there and every
process the scenario starts dies with the namespace. The multi-process tests (cluster, failover, autoscaling,
the production rehearsal) run their scenario script this way and read the JSON report it writes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

UNSHARE = ["unshare", "--net", "--pid", "--fork", "--mount-proc"]


def can_unshare() -> bool:
    """Root, ``unshare`` and ``ip`` are there and the namespaces can be made."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run([*UNSHARE, "true"], capture_output=True, check=False)
    return probe.returncode == 0


def skip_unless_isolated(what: str = "network and PID namespaces") -> None:
    if not can_unshare():
        pytest.skip(f"needs root and `unshare` ({what}) for the loopback-only cluster")


def run_scenario(
    script: Path,
    args: list[str | Path],
    out: Path,
    *,
    timeout: int,
    env: Mapping[str, str] | None = None,
    log_chars: int = 3000,
    keep_as: str = "",
) -> dict[str, Any]:
    """Run ``script args...`` in the namespaces (``lo`` brought up first) and return its report from ``out``;
    fails the test when no report was written or the report lists errors (with the logs it carries).
    ``keep_as``: also copy the report to ``test-artifacts/<keep_as>`` for a human when a check fails."""
    command = " ".join(str(part) for part in (sys.executable, script, *args))
    proc = subprocess.run(
        [*UNSHARE, "bash", "-c", f"ip link set lo up && exec {command}"],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=None if env is None else dict(env),
        check=False,
    )
    if not out.exists():
        tail = f"{proc.stdout[-log_chars:]}\n{proc.stderr[-log_chars:]}"
        pytest.fail(f"{script.name} wrote no report (rc {proc.returncode}):\n{tail}")
    data: dict[str, Any] = json.loads(out.read_text())
    if keep_as:
        keep = Path(__file__).resolve().parents[1] / "test-artifacts"
        keep.mkdir(exist_ok=True)
        shutil.copy(out, keep / keep_as)
    if data["errors"]:
        logs = "\n".join(f"--- {name}\n{text[-log_chars:]}" for name, text in data.get("logs", {}).items())
        logs = logs or proc.stderr[-log_chars:]
        extra = {k: data[k] for k in ("submit",) if k in data}
        pytest.fail(f"{script.name} failed:\n{data['errors'][0]}\n{extra}\ntimings {data.get('timings')}\n{logs}")
    return data
