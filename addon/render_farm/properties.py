"""The panel's settings (saved with the scene) and the submission status (per session, not saved)."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

DEVICE_ITEMS = [
    ("CPU", "CPU", "Render on the farm's CPU slots"),
    ("GPU", "GPU", "Render on the farm's GPU slots (CPU slots take it only when the farm has no GPU slot at all)"),
]
ORDER_ITEMS = [
    ("sequential", "Sequential", "Render the frames in order"),
    (
        "preview",
        "Preview First",
        "Render a spread of frames first (first, last, then halving the gaps) so the whole shot shows early",
    ),
]
WHAT_ITEMS = [
    ("COLLECTIONS", "Collections", "The library file's collections (with their objects)"),
    ("OBJECTS", "Objects", "The library file's objects"),
    ("MATERIALS", "Materials", "The library file's materials"),
    ("NODE_GROUPS", "Node Groups", "The library file's node groups"),
    ("WORLDS", "Worlds", "The library file's worlds"),
]
FORMAT_ITEMS = [
    ("scene", "Scene", "The scene's own output settings (format, colour depth, codec, passes and view layers)"),
    ("PNG", "PNG", "PNG frames, overriding the scene's format"),
    ("EXR", "OpenEXR", "OpenEXR frames (one layer), overriding the scene's format"),
    ("EXR_MULTILAYER", "OpenEXR Multilayer", "Multilayer OpenEXR frames with every pass and view layer"),
]


def _copy_scene_range(self: RenderFarmJobSettings, context: bpy.types.Context) -> None:
    # Unticking "Scene Frame Range" starts the custom range from the scene's, not from arbitrary numbers.
    if not self.use_scene_range:
        scene = context.scene
        self.frame_start, self.frame_end, self.frame_step = scene.frame_start, scene.frame_end, scene.frame_step


class RenderFarmJobSettings(bpy.types.PropertyGroup):
    """What the next job asks for; saved in the .blend so a resubmit uses the same settings."""

    job_name: StringProperty(  # type: ignore[valid-type]
        name="Job Name", description="Name shown on the farm. Empty: the file name", default=""
    )
    use_scene_range: BoolProperty(  # type: ignore[valid-type]
        name="Scene Frame Range",
        description="Render the scene's frame range",
        default=True,
        update=_copy_scene_range,
    )
    frame_start: IntProperty(name="Start", description="First frame", default=1, min=0)  # type: ignore[valid-type]
    frame_end: IntProperty(name="End", description="Last frame", default=250, min=0)  # type: ignore[valid-type]
    frame_step: IntProperty(  # type: ignore[valid-type]
        name="Step", description="Render every Nth frame", default=1, min=1
    )
    chunk_size: IntProperty(  # type: ignore[valid-type]
        name="Chunk Size",
        description="Frames per task: one farm slot renders a chunk with the scene kept loaded",
        default=8,
        min=1,
        max=10_000,
    )
    priority: IntProperty(  # type: ignore[valid-type]
        name="Priority",
        description="0 to 100: higher runs first among your company's jobs",
        default=50,
        min=0,
        max=100,
    )
    device: EnumProperty(  # type: ignore[valid-type]
        name="Device", description="Which farm slots render the job", items=DEVICE_ITEMS, default="CPU"
    )
    output_format: EnumProperty(  # type: ignore[valid-type]
        name="Output Format", description="File format of the rendered frames", items=FORMAT_ITEMS, default="scene"
    )
    save_before_submit: BoolProperty(  # type: ignore[valid-type]
        name="Save Before Submit",
        description="Save the .blend before packing it: the farm renders the file as saved",
        default=True,
    )
    allow_missing: BoolProperty(  # type: ignore[valid-type]
        name="Submit With Missing Files",
        description="Submit even when textures or libraries the scene uses do not exist",
        default=False,
    )
    # Issue 19: dependencies.
    after: StringProperty(  # type: ignore[valid-type]
        name="Run After",
        description="Farm job ids (comma separated) this job waits for: it starts once they completed",
        default="",
    )
    frame_match: BoolProperty(  # type: ignore[valid-type]
        name="Match Frames",
        description="Each frame waits only for the same frame of the jobs in Run After (comp after render)",
        default=False,
    )
    preset: StringProperty(  # type: ignore[valid-type]
        name="Preset",
        description="A job preset (farm preset list): your company's NAME first, else a shared one; NAME@PUBLISHER "
        "names a shared preset. It sets chunk size, priority, device and format",
        default="",
    )
    order: EnumProperty(  # type: ignore[valid-type]
        name="Frame Order", description="Which frames render first", items=ORDER_ITEMS, default="sequential"
    )


class RenderFarmStatus(bpy.types.PropertyGroup):
    """The last submission of this Blender session (on the window manager, so never saved into a .blend)."""

    state: EnumProperty(  # type: ignore[valid-type]
        name="State",
        items=[
            ("IDLE", "Idle", "Nothing submitted yet"),
            ("RUNNING", "Running", "A submission is running"),
            ("DONE", "Submitted", "The last submission succeeded"),
            ("FAILED", "Failed", "The last submission failed"),
        ],
        default="IDLE",
    )
    kind: StringProperty(name="Kind", default="")  # type: ignore[valid-type]
    message: StringProperty(name="Message", default="")  # type: ignore[valid-type]
    job_id: StringProperty(name="Job ID", default="")  # type: ignore[valid-type]
    monitor_url: StringProperty(name="Monitor URL", default="", subtype="NONE")  # type: ignore[valid-type]
    missing: StringProperty(name="Missing Files", default="")  # type: ignore[valid-type]
    progress: FloatProperty(name="Progress", default=0.0, min=0.0, max=1.0)  # type: ignore[valid-type]


class RenderFarmTools(bpy.types.PropertyGroup):
    """The cost estimate, the preset menu and the library browser of this session (never saved into a .blend)."""

    estimate_state: EnumProperty(  # type: ignore[valid-type]
        name="Estimate State",
        items=[
            ("IDLE", "Idle", "No estimate yet"),
            ("RUNNING", "Running", "Sample frames are rendering"),
            ("DONE", "Estimated", "The last estimate"),
            ("FAILED", "Failed", "The last estimate failed"),
        ],
        default="IDLE",
    )
    estimate_message: StringProperty(name="Estimate", default="")  # type: ignore[valid-type]
    estimate_job_id: StringProperty(name="Sample Job", default="")  # type: ignore[valid-type]
    presets_message: StringProperty(name="Presets", default="")  # type: ignore[valid-type]
    library_message: StringProperty(name="Library", default="")  # type: ignore[valid-type]
    library_failed: BoolProperty(name="Library Failed", default=False)  # type: ignore[valid-type]
    library_tag: StringProperty(  # type: ignore[valid-type]
        name="Tag", description="Only assets with this tag. Empty: every asset you may use", default=""
    )
    library_what: EnumProperty(  # type: ignore[valid-type]
        name="Data",
        description="What Link and Append take from a .blend asset",
        items=WHAT_ITEMS,
        default="COLLECTIONS",
    )
    library_as_world: BoolProperty(  # type: ignore[valid-type]
        name="Use HDRI as World",
        description="Loading an HDRI (.hdr or .exr) makes it the scene world's environment texture",
        default=True,
    )


CLASSES = (RenderFarmJobSettings, RenderFarmStatus, RenderFarmTools)


def register() -> None:
    """Register the property groups and attach them to Scene and WindowManager."""
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.render_farm = PointerProperty(type=RenderFarmJobSettings)
    bpy.types.WindowManager.render_farm_status = PointerProperty(type=RenderFarmStatus)
    bpy.types.WindowManager.render_farm_tools = PointerProperty(type=RenderFarmTools)


def unregister() -> None:
    """Undo :func:`register`."""
    del bpy.types.WindowManager.render_farm_tools
    del bpy.types.WindowManager.render_farm_status
    del bpy.types.Scene.render_farm
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
