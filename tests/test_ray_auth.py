"""The embedded farm's Ray requires its token (issue 15): a local driver without it, with a wrong one, or with
authentication switched off is refused; the same driver with the farm's token connects (so the refusals are the
token's doing). The token is new per start, lives only in the farm's environment, and is written to no file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray]

DRIVER = "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); print('CONNECTED', len(ray.nodes()))"


def probe(address: str, home: Path, **ray_env: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    # Loopback like the farm; a home of its own, so no ~/.ray/auth_token of this machine's user is picked up.
    env.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0", HOME=str(home), **ray_env)
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, address], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def outcome(proc: subprocess.Popen[str], timeout: float) -> tuple[bool, str]:
    """(connected, what it said); a driver still trying after ``timeout`` was not let in."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return proc.returncode == 0 and "CONNECTED" in out, (out + err)[-600:]


def test_a_driver_needs_the_farms_token(farm, tmp_path):
    import ray

    address = ray.get_runtime_context().gcs_address
    assert address.startswith("127.0.0.1:")
    token = os.environ["RAY_AUTH_TOKEN"]
    assert os.environ["RAY_AUTH_MODE"] == "token" and len(token) == 64
    refused = {
        "no token": probe(address, tmp_path / "a", RAY_AUTH_MODE="token"),
        "auth off": probe(address, tmp_path / "b", RAY_AUTH_MODE="disabled"),
        "wrong token": probe(address, tmp_path / "c", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="0" * 64),
    }
    allowed = probe(address, tmp_path / "d", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    ok, said = outcome(allowed, 60)
    assert ok, said
    for name, proc in refused.items():
        connected, said = outcome(proc, 30)
        assert not connected, f"{name}: {said}"
    assert "AuthenticationError" in outcome(probe(address, tmp_path / "e", RAY_AUTH_MODE="token"), 30)[1]
    # The token is in no file of the farm's data dir nor in a default token file.
    data_dir = Path(farm.settings.data_dir)
    assert not [
        p for p in data_dir.rglob("*") if p.is_file() and p.stat().st_size < 10**6 and token.encode() in p.read_bytes()
    ]
    assert (
        not (Path.home() / ".ray" / "auth_token").exists()
        or token not in (Path.home() / ".ray" / "auth_token").read_text()
    )
