"""Starting or joining Ray. The embedded mode keeps every Ray socket on 127.0.0.1."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import ray

log = logging.getLogger(__name__)

# Ray reads these at start. The first makes a single-node Ray bind and advertise 127.0.0.1 only
# (Ray's own local-only switch); the second skips the auth token file a local farm does not need.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}


def start_embedded(num_cpus: int, object_store_bytes: int, temp_dir: Path | None = None) -> None:
    """A local single-node Ray on loopback (idempotent)."""
    if ray.is_initialized():
        return
    os.environ.update(LOOPBACK_ENV)  # inherited by the raylet, the agents and the workers
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
    log.info("ray: embedded on 127.0.0.1 with %d CPUs", num_cpus)


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
