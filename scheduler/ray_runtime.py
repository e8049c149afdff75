"""Starting or joining Ray. The embedded mode keeps every Ray socket on 127.0.0.1 and requires a token.

Ray 2.60 token authentication (``RAY_AUTH_MODE=token``): every Ray process, driver and worker presents the token
(``RAY_AUTH_TOKEN``, or the file at ``RAY_AUTH_TOKEN_PATH``) and the GCS and raylets refuse calls without it. The
embedded farm makes a random token per start, held only in its own environment and inherited by the Ray processes
it starts, so another local user (or a process of this user that was not given it) cannot drive its Ray, which
runs code on the farm's behalf. In cluster mode the chart generates the token into its Secret and gives it to the
head, the worker pods and the scheduler; ``connect`` reads it from the environment like any Ray driver.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

import ray

log = logging.getLogger(__name__)

# Ray reads these at start. The first makes a single-node Ray bind and advertise 127.0.0.1 only
# (Ray's own local-only switch); the second turns on token authentication (the token is added per start).
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token"}
TOKEN_ENV = "RAY_AUTH_TOKEN"  # noqa: S105 (the variable's name, not a token)


def _use_token(token: str) -> None:
    """Make this process (and the Ray processes it starts) present ``token``; Ray caches both the mode and the
    token at import, so both caches are refreshed."""
    os.environ[TOKEN_ENV] = token
    os.environ.pop("RAY_AUTH_TOKEN_PATH", None)  # the token above, never a file left by someone else
    from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def start_embedded(num_cpus: int, object_store_bytes: int, temp_dir: Path | None = None) -> None:
    """A local single-node Ray on loopback (idempotent)."""
    if ray.is_initialized():
        return
    os.environ.update(LOOPBACK_ENV)  # inherited by the raylet, the agents and the workers
    _use_token(secrets.token_hex(32))  # a new one per start: inherited, never written to a file
    # This process imported Ray before the mode was known, and Ray reads the switch at import time.
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False
    kwargs: dict[str, object] = {}
    if temp_dir is not None:
        temp_dir.mkdir(parents=True, exist_ok=True)
        kwargs["_temp_dir"] = str(temp_dir)
    ray.init(
        num_cpus=num_cpus,
        num_gpus=0,
        include_dashboard=False,
        object_store_memory=object_store_bytes,
        configure_logging=False,
        log_to_driver=False,
        namespace="render-farm",
        runtime_env={"env_vars": dict(LOOPBACK_ENV)},
        **kwargs,  # type: ignore[arg-type]
    )
    log.info("ray: embedded on 127.0.0.1 with %d CPUs, token authentication on", num_cpus)


def connect(address: str) -> None:
    """Join an existing Ray cluster (cluster mode)."""
    if ray.is_initialized():
        return
    ray.init(address=address, namespace="render-farm", configure_logging=False, log_to_driver=False)
    log.info("ray: connected to %s", address)


def shutdown() -> None:
    """Leave Ray (stops the local one in the embedded mode)."""
    if ray.is_initialized():
        ray.shutdown()
