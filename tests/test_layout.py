"""Import contracts: the layering the architecture promises, checked on the source (no imports executed).

* The client SDK (``farm.client``, what the Blender add-on bundles) imports nothing of the server: only itself,
  ``farm.contract``, ``farm.domain`` and ``farm.errors`` among the farm's modules.
* ``farm.domain`` is pure: no database, no web, no Ray, no store.
* Only ``farm.runtime`` wires the processes together: no other farm module imports ``scheduler``, ``web`` or
  ``workers``; ``web`` and ``workers`` never import ``scheduler``; ``workers`` never import ``web``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLIENT_MAY_IMPORT = ("farm.client", "farm.contract", "farm.domain", "farm.errors")


def modules(package: str) -> dict[str, Path]:
    base = ROOT / package.replace(".", "/")
    files = [base.with_suffix(".py")] if base.with_suffix(".py").is_file() else sorted(base.rglob("*.py"))
    return {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p for p in files}


def imports(path: Path) -> set[str]:
    """Absolute module names imported by a file (``from farm import x`` counts as ``farm.x``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module in ("farm", "scheduler", "web", "workers", "storage"):
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def offenders(package: str, allowed: tuple[str, ...], watched: tuple[str, ...]) -> list[str]:
    bad = []
    for name, path in modules(package).items():
        for imported in imports(path):
            if imported.startswith(watched) and not imported.startswith(allowed):
                bad.append(f"{name} imports {imported}")
    return sorted(bad)


def test_the_client_sdk_imports_nothing_of_the_server():
    watched = ("farm", "scheduler", "web", "workers", "storage", "sqlalchemy", "ray", "fastapi", "bpy")
    assert offenders("farm.client", CLIENT_MAY_IMPORT, watched) == []


def test_the_domain_is_pure():
    watched = ("farm", "scheduler", "web", "workers", "storage", "sqlalchemy", "ray", "fastapi", "httpx")
    assert offenders("farm.domain", ("farm.domain", "farm.errors"), watched) == []


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("farm.contract", ("scheduler", "web", "workers", "farm.services", "farm.db")),
        ("farm.lifecycle", ("scheduler", "web", "workers", "farm.services", "farm.runtime")),
        ("farm.services", ("scheduler", "web", "workers")),
        ("farm.metering", ("scheduler", "web", "workers")),
        ("farm.db", ("scheduler", "web", "workers")),
        ("farm.cli", ("scheduler", "web", "workers")),
        ("web", ("scheduler", "workers")),
        ("workers", ("scheduler", "web")),
        ("storage", ("scheduler", "web", "workers", "farm.services", "farm.db")),
    ],
)
def test_only_the_runtime_wires_processes_together(package, forbidden):
    assert offenders(package, (), forbidden) == []


def reads_ray_nodes(node: ast.AST) -> bool:
    """``ray.nodes`` (called or passed along) or ``from ray import nodes``."""
    if isinstance(node, ast.Attribute):
        return node.attr == "nodes" and isinstance(node.value, ast.Name) and node.value.id == "ray"
    if isinstance(node, ast.ImportFrom):
        return node.module == "ray" and any(alias.name == "nodes" for alias in node.names)
    return False


def ray_nodes_callers(package: str) -> list[str]:
    """Modules of ``package`` that read Ray's node table."""
    return [
        name
        for name, path in modules(package).items()
        if any(reads_ray_nodes(node) for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))))
    ]


def test_only_the_node_view_reads_rays_node_table():
    """One reader of ``ray.nodes()`` (``scheduler.nodes``), so every node has one name and one answer to "alive?"."""
    callers = [
        c for package in ("farm", "scheduler", "workers", "storage", "web", "bench") for c in ray_nodes_callers(package)
    ]
    assert callers == ["scheduler.nodes"]
