"""From the rendered chart to a launch plan for the production rehearsal: which processes each pod runs, with
which arguments, environment and volumes, all read from the manifests (nothing about the farm is written here).

What this module adds is only what Kubernetes and KubeRay would add on a real cluster:

* Secret references are resolved from the rendered Secret (the one ``helm install`` would create).
* Service names resolve to 127.0.0.1 (the driver writes them into ``/etc/hosts`` of its mount namespace), so
  every address in the environment stays exactly as rendered; the backing servers listen on the Service ports.
* KubeRay's ``ray start`` command line from a group's ``rayStartParams`` (``--head`` or ``--address``, ``--block``,
  ``--num-cpus``/``--memory`` from the container's limits, GCS port 6379).
* Two API replicas (the HPA's range in the CI values is 1..2) and two CPU worker pods. All pods share one network
  namespace, so replica *i* of a Deployment listens 10000*i above the rendered ports (its ``--port`` argument and
  ``*_PORT`` variables); everything else is verbatim.
* Test-size knobs that are not the farm's: no Ray dashboard, Ray auth and usage stats off.

The plan is plain JSON: the driver runs inside ``unshare`` and needs neither helm nor the chart.
"""

from __future__ import annotations

import base64
from typing import Any

Doc = dict[str, Any]

RAY_GCS_PORT = 6379
PORT_STEP = 10000  # replica i of a Deployment listens on its ports + i * PORT_STEP
FARM_IMAGE_COMMANDS = {"farm", "ray"}
NAMESPACE_SUFFIXES = ("", ".{ns}", ".{ns}.svc", ".{ns}.svc.cluster.local")


def _quantity_bytes(value: str) -> int:
    units = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4, "k": 1000, "M": 1000**2, "G": 1000**3}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return int(float(value[: -len(suffix)]) * factor)
    return int(value)


def _cpus(value: str) -> int:
    return max(1, int(float(value[:-1]) / 1000)) if value.endswith("m") else int(float(value))


def secret_data(docs: list[Doc]) -> dict[str, dict[str, str]]:
    """name -> key -> decoded value of every rendered Secret."""
    return {
        d["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in d.get("data", {}).items()}
        for d in docs
        if d["kind"] == "Secret"
    }


def resolve_env(container: Doc, secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """A container's environment with ``secretKeyRef`` resolved (an optional missing key is left out)."""
    env: dict[str, str] = {}
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
            continue
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref is None:
            raise ValueError(f"env {entry['name']}: only values and secretKeyRef are supported")
        value = secrets.get(ref["name"], {}).get(ref["key"])
        if value is None:
            if ref.get("optional"):
                continue
            raise ValueError(f"env {entry['name']}: Secret {ref['name']} has no key {ref['key']}")
        env[entry["name"]] = value
    return env


def _volumes(spec: Doc) -> dict[str, Doc]:
    """Pod volumes as {name: {"memory": size or None}}: every kind becomes a private folder of the pod."""
    out: dict[str, Doc] = {}
    for volume in spec.get("volumes", []):
        empty = volume.get("emptyDir") or {}
        memory = empty.get("sizeLimit") if empty.get("medium") == "Memory" else None
        out[volume["name"]] = {"memory": memory}
    return out


def _process(container: Doc, argv: list[str], secrets: dict[str, dict[str, str]]) -> Doc:
    return {
        "name": container["name"],
        "argv": argv,
        "env": resolve_env(container, secrets),
        "mounts": {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])},
        "probe": (container.get("startupProbe") or {}).get("exec", {}).get("command"),
    }


def _pod(name: str, spec: Doc, main: Doc, sidecars: list[Doc]) -> Doc:
    return {"name": name, "volumes": _volumes(spec), "sidecars": sidecars, "main": main}


def _farm_argv(container: Doc) -> list[str]:
    argv = list(container.get("command", [])) + list(container.get("args", []))
    if not argv or argv[0] not in FARM_IMAGE_COMMANDS:
        raise ValueError(f"container {container['name']}: unexpected command {argv!r}")
    return argv


def _ray_start(params: dict[str, str], container: Doc, head_address: str | None) -> list[str]:
    """KubeRay's ``ray start`` for a group: its rayStartParams plus what KubeRay derives."""
    argv = ["ray", "start", "--block"]
    merged = dict(params)
    limits = container.get("resources", {}).get("limits", {})
    if "num-cpus" not in merged and "cpu" in limits:
        merged["num-cpus"] = str(_cpus(str(limits["cpu"])))
    if "memory" not in merged and "memory" in limits:
        merged["memory"] = str(_quantity_bytes(str(limits["memory"])))
    if head_address is None:
        argv += ["--head", f"--port={RAY_GCS_PORT}", "--include-dashboard=false"]
        merged.pop("dashboard-host", None)  # no dashboard in the rehearsal
    else:
        argv.append(f"--address={head_address}")
    argv += [f"--{key}={value}" for key, value in sorted(merged.items())]
    return argv


def build_plan(docs: list[Doc], namespace: str, api_replicas: int = 2, cpu_worker_pods: int = 2) -> Doc:
    """The launch plan of a rendered release (see the module docstring)."""
    secrets = secret_data(docs)
    services = [d for d in docs if d["kind"] == "Service"]
    hostnames = [d["metadata"]["name"] for d in services]
    (cluster,) = [d for d in docs if d["kind"] == "RayCluster"]
    head_service = f"{cluster['metadata']['name']}-head-svc"
    hostnames.append(head_service)
    head_address = f"{head_service}:{RAY_GCS_PORT}"

    pods: list[Doc] = []
    hooks: list[Doc] = []
    for doc in docs:
        kind, name = doc["kind"], doc["metadata"]["name"]
        if kind == "Job":
            spec = doc["spec"]["template"]["spec"]
            (container,) = spec["containers"]
            hook = doc["metadata"].get("annotations", {}).get("helm.sh/hook", "")
            if container.get("command", [""])[0] in FARM_IMAGE_COMMANDS:
                hooks.append(
                    {"hook": hook, **_pod(name, spec, _process(container, _farm_argv(container), secrets), [])}
                )
        if kind != "Deployment":
            continue
        spec = doc["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        sidecars = [
            _process(c, _farm_argv(c), secrets)
            for c in spec.get("initContainers", [])
            if c.get("restartPolicy") == "Always"
        ]
        argv = _farm_argv(container)
        replicas = api_replicas if argv[:2] == ["farm", "api"] else int(doc["spec"].get("replicas", 1))
        for i in range(replicas):
            run = list(argv)
            if "--port" in run:
                at = run.index("--port") + 1
                run[at] = str(int(run[at]) + PORT_STEP * i)
            main = _process(container, run, secrets)
            for key, value in main["env"].items():  # e.g. a scheduler's health port: one network here
                if key.endswith("_PORT") and value.isdigit() and int(value) > 0:
                    main["env"][key] = str(int(value) + PORT_STEP * i)
            pods.append(_pod(f"{name}-{i}", spec, main, sidecars))

    head_spec = cluster["spec"]["headGroupSpec"]
    (head_container,) = head_spec["template"]["spec"]["containers"]
    head_argv = _ray_start(head_spec["rayStartParams"], head_container, None)
    pods.insert(0, _pod("ray-head", head_spec["template"]["spec"], _process(head_container, head_argv, secrets), []))
    for group in cluster["spec"].get("workerGroupSpecs", []):
        if int(group["replicas"]) == 0 and group["groupName"] != "cpu":
            continue
        (worker,) = group["template"]["spec"]["containers"]
        argv = _ray_start(group["rayStartParams"], worker, head_address)
        count = max(cpu_worker_pods, int(group["replicas"])) if group["groupName"] == "cpu" else int(group["replicas"])
        for i in range(count):
            pods.append(
                _pod(f"ray-{group['groupName']}-{i}", group["template"]["spec"], _process(worker, argv, secrets), [])
            )

    names = [suffix.format(ns=namespace) for suffix in NAMESPACE_SUFFIXES]
    return {
        "hosts": sorted(f"{host}{suffix}" for host in hostnames for suffix in names),
        "services": {d["metadata"]["name"]: [p["port"] for p in d["spec"]["ports"]] for d in services},
        "secrets": secrets,
        "hooks": hooks,
        "pods": pods,
    }
