"""Render Farm: submit the open scene to the shared render farm from Output Properties (with presets, own and
shared, and a cost estimate), and link or append the farm library's assets from the 3D viewport's sidebar.

The submission goes through ``farm.client`` (the farm CLI's own client), which ``farm addon build`` bundles into
the extension zip as wheels together with its dependencies.
"""

from __future__ import annotations

import bpy

from . import library_ops, operators, panel, pipeline_ops, preferences, properties, translations


def register() -> None:
    """Blender calls this when the add-on is enabled."""
    bpy.utils.register_class(preferences.RenderFarmPreferences)
    properties.register()
    operators.register()
    pipeline_ops.register()
    library_ops.register()
    panel.register()
    bpy.app.translations.register(__package__, translations.blender_dict())


def unregister() -> None:
    """Blender calls this when the add-on is disabled."""
    bpy.app.translations.unregister(__package__)
    panel.unregister()
    library_ops.unregister()
    pipeline_ops.unregister()
    operators.unregister()
    properties.unregister()
    bpy.utils.unregister_class(preferences.RenderFarmPreferences)
