"""Run inside a fresh Python with bpy, for tests/addon/test_platform.py. Two modes (argv[1] is JSON):

- ``{"mode": "make_library", "out": DIR}``: write ``DIR/props.blend`` (collection ``Props`` with objects ``Crate`` and
  ``Ball``, material ``Gold``, node group ``Wobble``) and ``DIR/sky.hdr`` (a tiny HDRI), then exit.
- ``{"mode": "use", "zip": ZIP, "blend": BLEND, "url": URL, "token": TOKEN, "steps": [...]}``: install the add-on zip
  like a user, open BLEND, and run each step through the add-on's operators; prints ``RESULT <json>``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def make_library(bpy: Any, out: Path) -> None:
    bpy.ops.wm.read_homefile(use_empty=True)
    props = bpy.data.collections.new("Props")
    bpy.context.scene.collection.children.link(props)
    gold = bpy.data.materials.new("Gold")
    for name, size in (("Crate", 1.0), ("Ball", 0.5)):
        mesh = bpy.data.meshes.new(name + "Mesh")
        mesh.from_pydata([(0, 0, 0), (size, 0, 0), (0, size, 0)], [], [(0, 1, 2)])
        mesh.materials.append(gold)
        props.objects.link(bpy.data.objects.new(name, mesh))
    bpy.data.node_groups.new("Wobble", "GeometryNodeTree").use_fake_user = True
    bpy.ops.wm.save_as_mainfile(filepath=str(out / "props.blend"))
    image = bpy.data.images.new("sky", 8, 4, float_buffer=True)
    image.pixels = [0.5, 0.7, 1.0, 1.0] * 32
    image.filepath_raw = str(out / "sky.hdr")
    image.file_format = "HDR"
    image.save()


def _call(bpy: Any, op: Any, **props: Any) -> dict[str, Any]:
    try:
        return {"operator": sorted(op(**props))}
    except RuntimeError as exc:  # bpy.ops raises on an ERROR report
        return {"operator": ["CANCELLED"], "report": str(exc)}


def _scene_objects(bpy: Any) -> list[dict[str, Any]]:
    return [
        {
            "name": o.name,
            "library": o.library.filepath if o.library else None,
            "instance": o.instance_collection.name if o.instance_collection else None,
            "in_scene": o.name in bpy.context.scene.objects,
        }
        for o in bpy.data.objects
    ]


class Layout:
    """Stands in for ``UILayout`` when drawing a panel headless: checks every property, operator, menu and icon
    the draw code names against Blender's own tables, and records the label texts."""

    def __init__(self, bpy: Any, problems: list[str], texts: list[str]) -> None:
        self.bpy, self.problems, self.texts = bpy, problems, texts
        icon_param = bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"]
        self.icons = {item.identifier for item in icon_param.enum_items}

    def _icon(self, kw: dict[str, Any]) -> None:
        if "icon" in kw and kw["icon"] not in self.icons:
            self.problems.append(f"icon {kw['icon']}")

    def _child(self, *args: Any, **kw: Any) -> Layout:
        return Layout(self.bpy, self.problems, self.texts)

    row = column = box = _child

    def prop(self, data: Any, name: str, **kw: Any) -> None:
        self._icon(kw)
        if name not in data.bl_rna.properties:
            self.problems.append(f"property {name}")

    def operator(self, idname: str, **kw: Any) -> Any:
        self._icon(kw)
        group, _, name = idname.partition(".")
        if not hasattr(getattr(self.bpy.ops, group), name):
            self.problems.append(f"operator {idname}")
        return type("Props", (), {})()

    def menu(self, idname: str, **kw: Any) -> None:
        self._icon(kw)
        if not hasattr(self.bpy.types, idname):
            self.problems.append(f"menu {idname}")

    def label(self, **kw: Any) -> None:
        self._icon(kw)
        self.texts.append(str(kw.get("text", "")))

    def progress(self, **kw: Any) -> None:
        pass

    def separator(self, **kw: Any) -> None:
        pass

    def __setattr__(self, name: str, value: Any) -> None:  # active, scale_y, use_property_split, ...
        object.__setattr__(self, name, value)


def draw(bpy: Any, module: str) -> dict[str, Any]:
    """Draw the Render Farm panel, the preset menu and the library panel with the state the steps left."""
    problems: list[str] = []
    texts: list[str] = []
    panel = sys.modules[module + ".panel"].RENDER_FARM_PT_submit
    menu = sys.modules[module + ".pipeline_ops"].RENDER_FARM_MT_presets
    library = sys.modules[module + ".library_ops"].RENDER_FARM_PT_library
    for cls in (panel, menu, library):
        cls.draw(type("Drawn", (), {"layout": Layout(bpy, problems, texts)})(), bpy.context)
    return {"problems": problems, "texts": texts}


def step(bpy: Any, module: str, spec: dict[str, Any], blend: str) -> dict[str, Any]:
    """One step of the ``use`` mode; returns what the test checks."""
    ops = bpy.ops.render_farm
    tools = bpy.context.window_manager.render_farm_tools
    kind = spec["do"]
    if kind == "draw":
        return draw(bpy, module)
    if kind == "fresh":  # the user's scene again, as saved (drops what earlier steps loaded)
        bpy.ops.wm.open_mainfile(filepath=blend)
        return {}
    if kind == "presets":
        out = _call(bpy, ops.refresh_presets)
        pipeline_ops = sys.modules[module + ".pipeline_ops"]
        out["choices"] = [vars(c) for c in pipeline_ops.PRESETS]
        out["message"] = tools.presets_message
        return out
    if kind == "use_preset":
        out = _call(bpy, ops.use_preset, ref=spec["ref"])
        out["preset"] = bpy.context.scene.render_farm.preset
        return out
    if kind == "submit":
        settings = bpy.context.scene.render_farm
        for key, value in spec.get("settings", {}).items():
            setattr(settings, key, value)
        out = _call(bpy, ops.submit)
        status = bpy.context.window_manager.render_farm_status
        out.update(state=status.state, kind=status.kind, message=status.message, job_id=status.job_id)
        return out
    if kind == "estimate":
        out = _call(bpy, ops.estimate)
        out.update(state=tools.estimate_state, message=tools.estimate_message, job_id=tools.estimate_job_id)
        return out
    if kind == "library":
        out = _call(bpy, ops.library_refresh)
        library_ops = sys.modules[module + ".library_ops"]
        out["assets"] = [{"id": a.id, "name": a.name, "kind": a.kind} for a in library_ops.ASSETS]
        out["message"] = tools.library_message
        return out
    if kind == "import":
        tools.library_as_world = spec.get("as_world", True)
        props = {k: spec[k] for k in ("asset_id", "link", "what", "names") if k in spec}
        out = _call(bpy, ops.library_import, **props)
        library_ops = sys.modules[module + ".library_ops"]
        out.update(message=tools.library_message, loaded=list(library_ops.LAST_IMPORT))
        out["objects"] = _scene_objects(bpy)
        out["materials"] = {m.name: m.library.filepath if m.library else None for m in bpy.data.materials}
        out["node_groups"] = {g.name: g.library.filepath if g.library else None for g in bpy.data.node_groups}
        world = bpy.context.scene.world
        env = [n for n in world.node_tree.nodes if n.type == "TEX_ENVIRONMENT"] if world and world.node_tree else []
        out["world_image"] = env[0].image.filepath if env and env[0].image else None
        return out
    if kind == "save_reopen":  # a linked library must survive saving and opening the file again
        path = str(Path(blend).with_name("linked.blend"))
        bpy.ops.wm.save_as_mainfile(filepath=path)
        bpy.ops.wm.open_mainfile(filepath=path)
        return {
            "objects": _scene_objects(bpy),
            "libraries": [lib.filepath for lib in bpy.data.libraries],
            "materials": sorted(m.name for m in bpy.data.materials),
            "node_groups": sorted(g.name for g in bpy.data.node_groups),
        }
    raise ValueError(f"unknown step {kind!r}")


def main() -> None:
    args = json.loads(sys.argv[1])
    import bpy

    if args["mode"] == "make_library":
        make_library(bpy, Path(args["out"]))
        print("RESULT {}", flush=True)
        return
    result = bpy.ops.extensions.package_install_files(filepath=args["zip"], repo="user_default", enable_on_install=True)
    module = "bl_ext.user_default.render_farm"
    out: dict[str, Any] = {"install": sorted(result), "enabled": module in bpy.context.preferences.addons}
    if out["enabled"]:
        bpy.ops.wm.open_mainfile(filepath=args["blend"])
        prefs = bpy.context.preferences.addons[module].preferences
        prefs.farm_url, prefs.token = args["url"], args["token"]
        out["cache"] = str(sys.modules[module + ".library_ops"].cache_dir())
        out["steps"] = [step(bpy, module, spec, args["blend"]) for spec in args["steps"]]
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
