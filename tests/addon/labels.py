"""Collect every user-visible English string of the add-on's sources, without importing bpy."""

from __future__ import annotations

import ast
from pathlib import Path

ADDON = Path(__file__).resolve().parents[2] / "addon" / "render_farm"
_KEYWORDS = {"name", "description", "text"}
_CLASS_ATTRS = {"bl_label", "bl_description"}


def _strings_in_items(node: ast.AST) -> list[str]:
    out: list[str] = []
    if isinstance(node, ast.List | ast.Tuple):
        for item in node.elts:
            if isinstance(item, ast.Tuple) and len(item.elts) == 3:
                out.extend(e.value for e in item.elts[1:] if isinstance(e, ast.Constant) and isinstance(e.value, str))
    return out


def ui_strings() -> set[str]:
    """Names, descriptions, label texts, operator labels and enum item names/descriptions; messages of core.py."""
    found: set[str] = set()
    for path in sorted(ADDON.glob("*.py")):
        if path.name == "translations.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg in _KEYWORDS:
                if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                    found.add(node.value.value)
            elif isinstance(node, ast.keyword) and node.arg == "items":
                found.update(_strings_in_items(node.value))
            elif isinstance(node, ast.Assign):
                targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
                if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                    if any(t in _CLASS_ATTRS or t.startswith("MSG_") for t in targets):
                        found.add(node.value.value)
                elif any(t.endswith("_ITEMS") for t in targets):
                    found.update(_strings_in_items(node.value))
    found.discard("")
    return found
