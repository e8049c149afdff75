"""Every label and message of the add-on has a Simplified Chinese entry (checked without bpy)."""

from __future__ import annotations

import importlib.util
import re
import sys
from types import ModuleType

from tests.addon.labels import ADDON, ui_strings


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"render_farm_{name}", ADDON / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class body runs.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_every_label_and_message_has_a_zh_hans_entry() -> None:
    translations = _load("translations")
    labels = ui_strings()
    assert len(labels) > 40, "the collector found the add-on's strings"
    missing = sorted(labels - set(translations.ZH_HANS))
    assert missing == [], f"no zh_HANS translation for: {missing}"


def test_translations_keep_placeholders_and_are_chinese() -> None:
    translations = _load("translations")
    for english, chinese in translations.ZH_HANS.items():
        assert set(re.findall(r"{\w+}", english)) == set(re.findall(r"{\w+}", chinese)), english
        if re.search(r"[a-z]{3}", english) and english not in ("OpenEXR",):
            assert re.search(r"[\u4e00-\u9fff]", chinese), f"{english!r} is not translated"


def test_blender_dict_covers_labels_and_operator_contexts() -> None:
    translations = _load("translations")
    table = translations.blender_dict()
    assert set(table) == {"zh_HANS"}
    assert table["zh_HANS"][("*", "Render Farm")] == "渲染农场"
    assert table["zh_HANS"][("Operator", "Submit to Farm")] == "提交到渲染农场"
