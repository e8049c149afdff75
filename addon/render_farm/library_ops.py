"""The farm's asset library in Blender (issue 20): browse the assets your company may use, then link or append a
.blend asset's collections, objects, materials, node groups or worlds into the open file, or load an image (an HDRI
may become the world's environment).

The asset is downloaded by the farm client in a background thread into a cache named by content
(``<Blender user data>/render_farm/library/<sha256>/<file name>``), so a linked library keeps a stable path; the
loading itself runs in Blender's main thread through ``bpy.data.libraries.load``. When the file is submitted, the
packer finds the linked library's hash among the library assets and the farm uses it by reference.
"""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty

from . import core, remote
from .background import BackgroundCall, rpt
from .preferences import preferences
from .properties import WHAT_ITEMS

#: The browser's entries, from the last refresh.
ASSETS: list[remote.AssetChoice] = []
#: The data-block names the last Link/Append/Load brought in (for scripts and tests).
LAST_IMPORT: list[str] = []

_ATTR = {
    "COLLECTIONS": "collections",
    "OBJECTS": "objects",
    "MATERIALS": "materials",
    "NODE_GROUPS": "node_groups",
    "WORLDS": "worlds",
}
_HDRI_SUFFIXES = (".hdr", ".exr")
#: The scene's custom property that keeps linked materials and node groups nothing uses yet.
LINKS_PROPERTY = "render_farm_links"


def cache_dir() -> Path:
    """Where pulled assets live: Blender's user data folder, which survives sessions (linked files need it)."""
    return Path(bpy.utils.user_resource("DATAFILES", path="render_farm/library", create=True))


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def load_blend(
    path: Path, asset_name: str, link: bool, what: str, names: list[str], scene: bpy.types.Scene
) -> tuple[list[str], core.Outcome]:
    """Link or append ``what`` (all of it, or ``names``) from the .blend at ``path`` into ``scene``; collections
    and objects are put into the scene (a linked collection as an instance empty, as Blender's Link does)."""
    attr = _ATTR[what]
    label = what.lower().replace("_", " ")
    with bpy.data.libraries.load(str(path), link=link) as (data_from, data_to):
        available = list(getattr(data_from, attr))
        absent = [n for n in names if n not in available]
        if not absent:
            setattr(data_to, attr, [n for n in available if not names or n in names])
    if absent:
        outcome = core.failure(
            "not_in_file",
            remote.MSG_NOT_IN_FILE,
            name=asset_name,
            what=label,
            wanted=", ".join(absent),
            available=", ".join(available) or "-",
        )
        return [], outcome
    loaded = [block for block in getattr(data_to, attr) if block is not None]
    if not loaded:
        return [], core.failure("empty", remote.MSG_NOTHING_IN_FILE, name=asset_name, what=label)
    for block in loaded:
        if what == "COLLECTIONS" and link:
            empty = bpy.data.objects.new(block.name, None)
            empty.instance_type, empty.instance_collection = "COLLECTION", block
            scene.collection.objects.link(empty)
        elif what == "COLLECTIONS" and block.name not in scene.collection.children:
            scene.collection.children.link(block)
        elif what == "OBJECTS" and block.name not in scene.collection.objects:
            scene.collection.objects.link(block)
        elif what in ("MATERIALS", "NODE_GROUPS") and not link:
            block.use_fake_user = True  # nothing uses it yet: without a fake user, saving would drop it
        elif what in ("MATERIALS", "NODE_GROUPS"):
            # A linked block's fake user is not saved: the scene holds it in a custom property instead.
            if LINKS_PROPERTY not in scene:
                scene[LINKS_PROPERTY] = {}
            scene[LINKS_PROPERTY][block.name] = block
    if what == "WORLDS":
        scene.world = loaded[0]
    outcome = core.Outcome(
        kind="ok",
        template=remote.MSG_LINKED if link else remote.MSG_APPENDED,
        args={
            "count": len(loaded),
            "what": label,
            "name": asset_name,
            "names": ", ".join(b.name for b in loaded),
        },
    )
    return [b.name for b in loaded], outcome


def load_image(path: Path, asset_name: str, as_world: bool, scene: bpy.types.Scene) -> tuple[list[str], core.Outcome]:
    """Load an image; an HDRI (``.hdr``/``.exr``) becomes the world's environment texture when ``as_world``."""
    image = bpy.data.images.load(str(path), check_existing=True)
    if not (as_world and path.suffix.lower() in _HDRI_SUFFIXES):
        return [image.name], core.Outcome(
            kind="ok", template=remote.MSG_IMAGE_LOADED, args={"name": asset_name, "image": image.name}
        )
    world = scene.world or bpy.data.worlds.new(asset_name)
    scene.world = world
    if hasattr(world, "use_nodes") and not world.use_nodes:
        world.use_nodes = True
    tree = world.node_tree
    background = next((n for n in tree.nodes if n.type == "BACKGROUND"), None) or tree.nodes.new("ShaderNodeBackground")
    output = next((n for n in tree.nodes if n.type == "OUTPUT_WORLD"), None) or tree.nodes.new("ShaderNodeOutputWorld")
    env = tree.nodes.new("ShaderNodeTexEnvironment")
    env.image = image
    tree.links.new(env.outputs["Color"], background.inputs["Color"])
    if not background.outputs["Background"].is_linked:
        tree.links.new(background.outputs["Background"], output.inputs["Surface"])
    return [image.name], core.Outcome(kind="ok", template=remote.MSG_WORLD_SET, args={"name": asset_name})


def _connection(context: bpy.types.Context) -> tuple[str, str]:
    prefs = preferences(context)
    return core.normalise_url(prefs.farm_url), prefs.token.strip()


class RENDER_FARM_OT_library_refresh(BackgroundCall, bpy.types.Operator):
    """List the farm library's assets your company may use"""

    bl_idname = "render_farm.library_refresh"
    bl_label = "Browse Library"
    bl_description = "List the farm library's assets your company may use"

    def start(self, context: bpy.types.Context) -> remote.Call | None:
        url, token = _connection(context)
        tag = context.window_manager.render_farm_tools.library_tag.strip()
        return remote.Call(lambda: remote.list_assets(url, token, tag), url, "render-farm-library").start()

    def finish(self, context: bpy.types.Context, call: remote.Call) -> set[str]:
        tools = context.window_manager.render_farm_tools
        if call.outcome is not None:
            tools.library_message, tools.library_failed = call.outcome.text(rpt), True
            self.report({"ERROR"}, tools.library_message)
            return {"CANCELLED"}
        ASSETS[:] = call.result
        tools.library_message = rpt(remote.MSG_ASSETS).format(count=len(ASSETS))
        tools.library_failed = False
        return {"FINISHED"}


class RENDER_FARM_OT_library_import(BackgroundCall, bpy.types.Operator):
    """Download a library asset to the local cache, then link or append it into this file (images: load them)"""

    bl_idname = "render_farm.library_import"
    bl_label = "Link or Append Asset"
    bl_description = "Download a library asset to the local cache, then link or append it into this file"
    bl_options = {"REGISTER", "UNDO"}

    asset_id: StringProperty(name="Asset", default="", options={"SKIP_SAVE"})  # type: ignore[valid-type]
    link: BoolProperty(  # type: ignore[valid-type]
        name="Link", description="Link (reference the library file) rather than append (copy into this file)"
    )
    what: EnumProperty(name="Data", items=WHAT_ITEMS, default="COLLECTIONS")  # type: ignore[valid-type]
    names: StringProperty(  # type: ignore[valid-type]
        name="Names", description="Comma-separated names to take. Empty: all of them", default=""
    )

    def start(self, context: bpy.types.Context) -> remote.Call | None:
        url, token, asset_id, cache = *_connection(context), self.asset_id.strip(), cache_dir()
        return remote.Call(lambda: remote.pull_asset(url, token, asset_id, cache), url, "render-farm-pull").start()

    def finish(self, context: bpy.types.Context, call: remote.Call) -> set[str]:
        tools = context.window_manager.render_farm_tools
        LAST_IMPORT.clear()
        outcome = call.outcome
        if outcome is None:
            asset, path = call.result
            if asset.kind == "blend":
                names, outcome = load_blend(path, asset.name, self.link, self.what, _names(self.names), context.scene)
            elif asset.kind == "image":
                names, outcome = load_image(path, asset.name, tools.library_as_world, context.scene)
            else:
                names = []
                outcome = core.failure("unsupported", remote.MSG_UNSUPPORTED, name=asset.name, filename=asset.filename)
            LAST_IMPORT.extend(names)
        tools.library_message, tools.library_failed = outcome.text(rpt), not outcome.ok
        if not outcome.ok:
            self.report({"ERROR"}, tools.library_message)
            return {"CANCELLED"}
        self.report({"INFO"}, tools.library_message)
        return {"FINISHED"}


class RENDER_FARM_PT_library(bpy.types.Panel):
    """The farm library in the 3D viewport's sidebar"""

    bl_label = "Farm Library"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Render Farm"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        tools = context.window_manager.render_farm_tools
        row = layout.row(align=True)
        row.prop(tools, "library_tag", text="", icon="BOOKMARKS")
        row.operator(RENDER_FARM_OT_library_refresh.bl_idname, text="", icon="FILE_REFRESH")
        layout.prop(tools, "library_what")
        layout.prop(tools, "library_as_world")
        if tools.library_message:
            layout.label(text=tools.library_message, icon="ERROR" if tools.library_failed else "INFO", translate=False)
        for asset in ASSETS:
            box = layout.box()
            box.label(text=f"{asset.name} ({asset.publisher})", icon="ASSET_MANAGER", translate=False)
            box.label(text=asset.licence[:80], icon="COPY_ID", translate=False)
            row = box.row(align=True)
            if asset.kind == "blend":
                for link, label, icon in ((True, "Link", "LINKED"), (False, "Append", "APPEND_BLEND")):
                    op = row.operator(RENDER_FARM_OT_library_import.bl_idname, text=label, icon=icon)
                    op.asset_id, op.link, op.what = asset.id, link, tools.library_what
            elif asset.kind == "image":
                op = row.operator(RENDER_FARM_OT_library_import.bl_idname, text="Load Image", icon="IMAGE_DATA")
                op.asset_id = asset.id


CLASSES = (RENDER_FARM_OT_library_refresh, RENDER_FARM_OT_library_import, RENDER_FARM_PT_library)


def register() -> None:
    """Register the library operators and the sidebar panel."""
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    """Unregister them."""
    ASSETS.clear()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
