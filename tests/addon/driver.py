"""Run inside a fresh Python with bpy: install the add-on zip like a user would, submit, print the outcome as JSON.

Usage: python driver.py '<json>' with keys ``zip`` and ``cases``: a list of {blend, url, token, settings (panel
properties)}; one Blender process runs them all (starting bpy costs more than a submission). The caller redirects
Blender's user folders (BLENDER_USER_RESOURCES) so the user's own Blender is never touched.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def submit_case(bpy: Any, module: str, case: dict[str, Any]) -> dict[str, object]:
    """Open the case's scene (or an untitled one), set the preferences and panel, run the submit operator."""
    if case.get("blend"):
        bpy.ops.wm.open_mainfile(filepath=case["blend"])
    else:
        bpy.ops.wm.read_homefile(use_empty=True)
    prefs = bpy.context.preferences.addons[module].preferences
    prefs.farm_url = case["url"]
    prefs.token = case["token"]
    settings = bpy.context.scene.render_farm
    for key, value in case.get("settings", {}).items():
        setattr(settings, key, value)
    out: dict[str, object] = {}
    try:
        out["operator"] = sorted(bpy.ops.render_farm.submit())
    except RuntimeError as exc:  # bpy.ops raises on an ERROR report
        out["operator"] = ["CANCELLED"]
        out["report"] = str(exc)
    status = bpy.context.window_manager.render_farm_status
    out.update(
        state=status.state,
        kind=status.kind,
        message=status.message,
        job_id=status.job_id,
        monitor_url=status.monitor_url,
        missing=status.missing.splitlines(),
        is_dirty=bpy.data.is_dirty,
        progress=status.progress,
    )
    finished = getattr(sys.modules.get(module + ".operators"), "LAST_SUBMISSION", None)
    if finished is not None:
        out.update(sent=finished.sent, total=finished.total)
    return out


def main() -> None:
    args = json.loads(sys.argv[1])
    import bpy

    result = bpy.ops.extensions.package_install_files(filepath=args["zip"], repo="user_default", enable_on_install=True)
    module = "bl_ext.user_default.render_farm"
    enabled = module in bpy.context.preferences.addons
    out: dict[str, object] = {"install": sorted(result), "enabled": enabled}
    if not enabled:
        print("RESULT " + json.dumps(out), flush=True)
        return

    import farm

    # The add-on must run the client bundled in its zip, not the farm package of this virtualenv.
    out["farm_module"] = farm.__file__
    out["cases"] = [submit_case(bpy, module, case) for case in args["cases"]]
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
