"""One pod of the rehearsal, run as ``unshare --mount --uts --propagation private python pod.py POD.json``.

It does what the kubelet does for the pod: sets the host name, mounts the pod's volumes at the containers'
mount paths (a private folder per volume, a tmpfs for memory-backed emptyDirs), starts native sidecars and waits
for their startup probe, then becomes the main container (``execve``). The mounts are private to this pod's
mount namespace, so each pod has its own ``/tmp``, ``/home/farm`` and caches, as on separate machines.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PROBE_TIMEOUT_S = 120.0


def _run(*argv: str) -> None:
    subprocess.run(list(argv), check=True)


def _deepest_existing(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def mount_volumes(pod: dict[str, Any], root: Path) -> None:
    """Every mount path of every container, once; missing parents get a tmpfs over their nearest existing
    ancestor (the image has those folders, this machine may not)."""
    wanted: dict[str, str] = {}
    for process in [*pod["sidecars"], pod["main"]]:
        wanted.update(process["mounts"])
    covered: set[Path] = set()
    for mount_path in sorted(wanted, key=lambda p: p.count("/")):
        target = Path(mount_path)
        anchor = _deepest_existing(target)
        if anchor != target and anchor not in covered:
            if anchor == Path("/"):
                raise RuntimeError(f"will not cover / to create {target}")
            _run("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(anchor))
            covered.add(anchor)
        target.mkdir(parents=True, exist_ok=True)
        volume = wanted[mount_path]
        memory = pod["volumes"].get(volume, {}).get("memory")
        if memory:
            size = memory.replace("Mi", "m").replace("Gi", "g")
            _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target))
        else:
            source = root / "volumes" / volume
            source.mkdir(parents=True, exist_ok=True)
            _run("mount", "--bind", str(source), str(target))


def environment(process: dict[str, Any], base: dict[str, str]) -> dict[str, str]:
    """The image's environment, then the container's."""
    return {**base, **process["env"]}


def resolve(argv: list[str], bin_dir: str) -> list[str]:
    """``farm`` and ``ray`` are the image's console scripts; here they are the virtualenv's."""
    head = argv[0]
    if head in {"farm", "ray"}:
        head = str(Path(bin_dir) / head)
    return [head, *argv[1:]]


def refuse_hidden_checkout(pod: dict[str, Any], bin_dir: str) -> None:
    """A pod's volumes (its own ``/tmp``, home, caches) are mounted over this machine's folders: a checkout or
    virtualenv below one of them would vanish inside the pod. Say so at once instead of a pod that never starts."""
    needed = Path(bin_dir).resolve()
    for process in [*pod["sidecars"], pod["main"]]:
        for mount_path in process["mounts"]:
            if needed.is_relative_to(Path(mount_path)):
                raise RuntimeError(
                    f"the virtualenv {needed} lies under {mount_path}, which pod {pod['name']} mounts a volume over: "
                    "run the rehearsal from a checkout elsewhere (e.g. /var/tmp or your home)"
                )


def main(spec_path: Path) -> None:
    spec = json.loads(spec_path.read_text())
    pod, root, base = spec["pod"], Path(spec["root"]), spec["base_env"]
    refuse_hidden_checkout(pod, spec["bin"])
    _run("hostname", pod["name"])
    mount_volumes(pod, root)
    os.chdir(base.get("HOME", "/"))
    for sidecar in pod["sidecars"]:
        log = (root / f"{sidecar['name']}.log").open("ab")
        subprocess.Popen(resolve(sidecar["argv"], spec["bin"]), env=environment(sidecar, base), stdout=log, stderr=log)
        probe = sidecar.get("probe")
        deadline = time.monotonic() + PROBE_TIMEOUT_S
        while probe and subprocess.run(probe, check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"sidecar {sidecar['name']}: startup probe never passed: {probe}")
            time.sleep(0.5)
    main_process = pod["main"]
    argv = resolve(main_process["argv"], spec["bin"])
    sys.stdout.flush()
    os.execve(argv[0], argv, environment(main_process, base))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
