"""Ray worker actors that run Blender: input cache, persistent bpy subprocess, progress, output upload."""
