"""Runs in a Blender child (``python -m farm.media.video_scene ARGS_JSON``): what video a scene asks for, and the
mixdown of its sequencer sound.

The argument is one JSON object: ``blend`` (the laid-out .blend), ``out`` (where to write the answer as JSON),
and optionally ``mixdown`` (a WAV path) with ``start``/``end`` (the frame range to mix). The answer is
``{"video": bool, "settings": {...VideoSettings...}, "sound": bool, "mixed": bool}``. bpy stays out of the
scheduler and of Ray's workers: it is imported here only, in a process of its own.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def read_settings(scene: Any) -> dict[str, Any]:
    """The scene's video output as ``farm.media.video_ffmpeg.VideoSettings`` fields."""
    render = scene.render
    ff = render.ffmpeg
    return {
        "container": ff.format,
        "codec": ff.codec,
        "crf": ff.constant_rate_factor,
        "preset": ff.ffmpeg_preset,
        "video_bitrate": int(ff.video_bitrate),
        "minrate": int(ff.minrate),
        "maxrate": int(ff.maxrate),
        "buffersize": int(ff.buffersize),
        "gopsize": int(ff.gopsize),
        "max_b_frames": int(ff.max_b_frames) if ff.use_max_b_frames else None,
        "prores_profile": ff.ffmpeg_prores_profile,
        "color_mode": render.image_settings.color_mode,
        "fps": int(render.fps),
        "fps_base": float(render.fps_base),
        "audio_codec": ff.audio_codec,
        "audio_bitrate": int(ff.audio_bitrate),
        "audio_channels": ff.audio_channels,
        "audio_mixrate": int(ff.audio_mixrate),
        "audio_volume": float(ff.audio_volume),
    }


def has_sound(scene: Any) -> bool:
    """Whether the sequencer holds a sound strip that plays."""
    editor = scene.sequence_editor
    if editor is None:
        return False
    return any(strip.type == "SOUND" and not strip.mute for strip in editor.strips_all)


def main() -> None:
    import bpy

    args = json.loads(sys.argv[1])
    bpy.ops.wm.open_mainfile(filepath=args["blend"], load_ui=False)
    scene = bpy.context.scene
    video = scene.render.image_settings.media_type == "VIDEO"
    answer: dict[str, Any] = {"video": video, "settings": read_settings(scene) if video else {}, "mixed": False}
    answer["sound"] = video and has_sound(scene)
    if answer["sound"] and args.get("mixdown") and scene.render.ffmpeg.audio_codec != "NONE":
        scene.frame_start = int(args["start"])
        scene.frame_end = int(args["end"])
        result = bpy.ops.sound.mixdown(
            filepath=args["mixdown"],
            relative_path=False,
            container="WAV",
            codec="PCM",
            format="S16",
            mixrate=int(scene.render.ffmpeg.audio_mixrate),
            channels=scene.render.ffmpeg.audio_channels,  # every render channel layout is a mixdown layout too
        )
        answer["mixed"] = "FINISHED" in result
    with open(args["out"], "w", encoding="utf-8") as handle:
        json.dump(answer, handle)


if __name__ == "__main__":
    main()
