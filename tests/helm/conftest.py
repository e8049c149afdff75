"""Rendering helpers for the chart tests: helm-python-sdk (Helm's Go library, offline) renders the chart once per
set of values; tests read the parsed objects.

No cluster is contacted: `lookup` returns nothing, so the Secret is generated afresh on every render.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "render-farm"
CI_VALUES = CHART / "ci-values.yaml"
# KubeRay's RayCluster CRD lives in the shared data folder, beside the checkout (or inside it).
# The project's own copy (a user's clone has nothing beside it); see tests/helm/data/kuberay/SOURCE.md.
CRD_CANDIDATES = [Path(__file__).resolve().parent / "data" / "kuberay" / "ray.io_rayclusters.yaml"]
RELEASE = "farm"
NAMESPACE = "render"
FULLNAME = "farm-render-farm"
# The Kubernetes version the rendered objects are validated against (kubernetes-validate) and linted for.
KUBE_VERSION = "1.34"

Doc = dict[str, Any]

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def ci_values() -> dict[str, Any]:
    """The chart's ci-values.yaml, as a fresh dict."""
    with CI_VALUES.open() as f:
        loaded: dict[str, Any] = yaml.load(f, Loader=_Loader)
    return loaded


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `override` into a copy of `base` (maps merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@functools.lru_cache(maxsize=64)
def _render_cached(values_json: str) -> tuple[dict[str, str], tuple[Doc, ...]]:
    values = json.loads(values_json)
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values=values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs: list[Doc] = []
    for path, text in sorted(manifests.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.load_all(text, Loader=_Loader):
            if doc:
                docs.append(doc)
    return manifests, tuple(docs)


def render(values: dict[str, Any] | None = None) -> list[Doc]:
    """Render the chart with `values` over its defaults; a deep copy of the parsed objects."""
    _, docs = _render_cached(json.dumps(values or {}, sort_keys=True))
    return copy.deepcopy(list(docs))


def render_text(values: dict[str, Any] | None = None) -> dict[str, str]:
    """Render the chart; template path -> rendered text (NOTES.txt included)."""
    manifests, _ = _render_cached(json.dumps(values or {}, sort_keys=True))
    return dict(manifests)


def find(docs: list[Doc], kind: str, name: str | None = None) -> list[Doc]:
    """Objects of `kind` (and `name`, when given)."""
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    """The single object of `kind` named `name`."""
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_specs(docs: list[Doc]) -> Iterator[tuple[str, Doc]]:
    """Every pod spec the chart creates, labelled `Kind/name[/group]`, RayCluster groups included."""
    for d in docs:
        kind, name = d["kind"], d["metadata"]["name"]
        if kind in {"Deployment", "StatefulSet", "Job", "DaemonSet"}:
            yield f"{kind}/{name}", d["spec"]["template"]["spec"]
        elif kind == "RayCluster":
            yield f"{kind}/{name}/head", d["spec"]["headGroupSpec"]["template"]["spec"]
            for group in d["spec"].get("workerGroupSpecs", []):
                yield f"{kind}/{name}/{group['groupName']}", group["template"]["spec"]


def containers(spec: Doc) -> list[Doc]:
    """Init containers (native sidecars too) and containers of a pod spec."""
    return list(spec.get("initContainers", [])) + list(spec["containers"])


def env_of(container: Doc) -> dict[str, Any]:
    """name -> value (plain) or valueFrom (referenced) of a container's env."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


@pytest.fixture(scope="session")
def default_docs() -> list[Doc]:
    """The chart rendered with its default values."""
    return render()


@pytest.fixture(scope="session")
def ci_docs() -> list[Doc]:
    """The chart rendered with ci-values.yaml."""
    return render(ci_values())


@pytest.fixture(scope="session")
def render_with() -> Callable[[dict[str, Any]], list[Doc]]:
    """Render ci-values.yaml with overrides deep-merged on top."""
    base = ci_values()
    return lambda override: render(merge(base, override))


@pytest.fixture(scope="session")
def raycluster_schema() -> dict[str, Any]:
    """openAPIV3Schema of the RayCluster CRD's served storage version v1."""
    crd_path = next((p for p in CRD_CANDIDATES if p.is_file()), None)
    assert crd_path is not None, f"RayCluster CRD not found in {[str(p) for p in CRD_CANDIDATES]}"
    with crd_path.open() as f:
        crd = yaml.load(f, Loader=_Loader)
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema
