"""Render Farm: submit the open scene to the shared render farm from Output Properties.

The submission goes through ``farm.client`` (the farm CLI's own client), which ``farm addon build`` bundles into
the extension zip as wheels together with its dependencies.
"""

from __future__ import annotations

import bpy

from . import operators, panel, preferences, properties, translations


def register() -> None:
    """Blender calls this when the add-on is enabled."""
    bpy.utils.register_class(preferences.RenderFarmPreferences)
    properties.register()
    operators.register()
    panel.register()
    bpy.app.translations.register(__package__, translations.blender_dict())


def unregister() -> None:
    """Blender calls this when the add-on is disabled."""
    bpy.app.translations.unregister(__package__)
    panel.unregister()
    operators.unregister()
    properties.unregister()
    bpy.utils.unregister_class(preferences.RenderFarmPreferences)
