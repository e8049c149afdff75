"""Add-on preferences: where the farm is and the token that identifies the artist."""

from __future__ import annotations

import bpy
from bpy.props import StringProperty


class RenderFarmPreferences(bpy.types.AddonPreferences):
    """Stored in Blender's preferences; the token is a PASSWORD field, shown as dots and never printed."""

    bl_idname = __package__

    farm_url: StringProperty(  # type: ignore[valid-type]
        name="Farm URL",
        description="Address of the farm, e.g. http://farm.studio:8321. Empty: FARM_URL or the farm CLI's config",
        default="",
    )
    token: StringProperty(  # type: ignore[valid-type]
        name="Token",
        description="Your farm token. Empty: FARM_TOKEN or the farm CLI's config",
        default="",
        subtype="PASSWORD",
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "farm_url")
        layout.prop(self, "token")
        layout.label(text="Leave both empty to use the farm CLI's settings.", icon="INFO")


def preferences(context: bpy.types.Context) -> RenderFarmPreferences:
    """This add-on's preferences."""
    return context.preferences.addons[__package__].preferences  # type: ignore[no-any-return]
