"""An operator whose farm call runs in a background thread: polled from a timer under the UI, waited for from a
script. Subclasses say how to start the call and what to do with its result in Blender's main thread."""

from __future__ import annotations

from typing import Any

import bpy

from . import remote


def redraw(context: bpy.types.Context) -> None:
    """Redraw every area (panels show the new state)."""
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            area.tag_redraw()


def rpt(text: str) -> str:
    """Translate a report message (Blender's report context) into the UI language."""
    return str(bpy.app.translations.pgettext_rpt(text))


class BackgroundCall:
    """Mixin for ``bpy.types.Operator``: ``start`` returns a started :class:`remote.Call` (or None: refused, and
    already reported), ``finish`` applies it. Blender's UI keeps running while the call is under way."""

    _timer: Any = None
    _call: remote.Call | None = None

    def start(self, context: bpy.types.Context) -> remote.Call | None:
        raise NotImplementedError

    def finish(self, context: bpy.types.Context, call: remote.Call) -> set[str]:
        raise NotImplementedError

    def execute(self, context: bpy.types.Context) -> set[str]:
        call = self.start(context)
        if call is None:
            return {"CANCELLED"}
        call.wait()
        return self.finish(context, call)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if context.window is None:
            return self.execute(context)
        call = self.start(context)
        if call is None:
            return {"CANCELLED"}
        self._call = call
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.2, window=context.window)
        wm.modal_handler_add(self)
        redraw(context)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        call = self._call
        if event.type != "TIMER" or call is None or not call.done:
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        result = self.finish(context, call)
        redraw(context)
        return result
