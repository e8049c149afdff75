"""Output names: the scene's path pattern, --output-pattern, traversal and collisions (pure, no Blender)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from farm.contract import JobCreate, JobSettings, ManifestEntry, OutputFormat
from farm.domain.outputs import (
    DEFAULT_TEMPLATE,
    OutputNameError,
    check_name,
    check_pattern,
    frame_name,
    scene_template,
)


@pytest.mark.parametrize(
    ("filepath", "frame", "ext", "expected"),
    [
        ("//render/shot_####.exr", 1, ".exr", "render/shot_0001.exr"),
        ("//render/shot_####.exr", 12345, ".exr", "render/shot_12345.exr"),
        ("//render/shot_####", 7, ".png", "render/shot_0007.png"),
        ("//render/shot_####.png", 7, ".exr", "render/shot_0007.exr"),  # Blender replaces a known extension
        ("//render/frame_", 3, ".png", "render/frame_0003.png"),  # no '#': four digits appended
        ("//render/", 3, ".png", "render/0003.png"),
        ("//a_##_b", 3, ".jpg", "a_03_b.jpg"),
        ("//frame_######", 5, ".png", "frame_000005.png"),
        ("/tmp/", 5, ".png", "frame_000005.png"),  # an absolute path means nothing on the farm
        ("", 5, ".png", "frame_000005.png"),
        ("//../outside/shot_", 5, ".png", "frame_000005.png"),  # outside the job's outputs: not honoured
        ("//{odd}/x_#", 2, ".png", "{odd}/x_2.png"),  # braces in a scene path are literal
    ],
)
def test_scene_paths_become_names(filepath: str, frame: int, ext: str, expected: str) -> None:
    assert frame_name(scene_template(filepath), frame=frame, ext=ext) == expected


def test_pattern_fields_fill_in_and_stay_path_safe() -> None:
    pattern = check_pattern("{job}/{name}/{layer}_{camera}.{frame:04d}{ext}")
    name = frame_name(pattern, frame=9, ext=".exr", job="job-1", name="my shot/../x", layer="Beauty", camera="Cam.L")
    assert name == "job-1/my_shot_.._x/Beauty_Cam.L.0009.exr"
    assert frame_name(pattern, frame=1, ext=".png", job="j", name="..", layer="", camera="") == "j/_/___.0001.png"
    assert frame_name(DEFAULT_TEMPLATE, frame=42, ext=".tif") == "frame_000042.tif"


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        ("shot{ext}", "no {frame}"),  # every frame would collide
        ("../{frame}{ext}", "'..'"),
        ("/abs/{frame}{ext}", "relative"),
        ("a//{frame}{ext}", "empty parts"),
        ("a\\{frame}{ext}", "relative"),
        ("{frame}/{shot}{ext}", "unknown field {shot}"),
        ("{frame:s}{ext}", "zero-padded width"),
        ("{name:>9}{frame}{ext}", "only {frame} takes a format"),
        ("{frame:c}{ext}", "zero-padded width"),  # chr(47) is '/'
        ("{frame:04x}{ext}", "zero-padded width"),
        ("thumbs/{frame}{ext}", "keeps for itself"),
        ("preview.mp4{frame}", None),  # fine: not the preview's own name
        ("{frame", "not valid"),
    ],
)
def test_bad_patterns_are_refused_with_the_reason(pattern: str, words: str | None) -> None:
    if words is None:
        assert check_pattern(pattern) == pattern
        return
    with pytest.raises(OutputNameError) as caught:
        check_pattern(pattern)
    assert words in str(caught.value)


def test_names_that_collide_with_the_farms_own_files_are_refused() -> None:
    for name in ("preview.mp4", "thumbs/a.png", "render/thumbs/x.png", ".product/x.mp4", "a/.hidden.png"):
        with pytest.raises(OutputNameError):
            check_name(name)
    assert check_name("render/shot_0001.exr") == "render/shot_0001.exr"


def _create(**fields: object) -> JobCreate:
    return JobCreate(
        name="n",
        blend_file="a.blend",
        manifest={"a.blend": ManifestEntry(sha256="0" * 64, size=1)},
        frames="1",
        **fields,  # type: ignore[arg-type]
    )


def test_the_api_contract_defaults_to_the_scene_and_validates_overrides() -> None:
    job = _create()
    assert job.output_format is OutputFormat.SCENE and job.output_pattern is None and job.view_layers == []
    assert _create(output_format="EXR_MULTILAYER").output_format is OutputFormat.EXR_MULTILAYER
    assert _create(view_layers=["A", "B", "A"]).view_layers == ["A", "B"]
    with pytest.raises(ValidationError, match="output_format"):
        _create(output_format="GIF")
    with pytest.raises(ValidationError, match="no \\{frame\\}"):
        _create(output_pattern="same{ext}")
    with pytest.raises(ValidationError, match="'..'"):
        _create(output_pattern="../{frame}{ext}")
    # Jobs stored before these fields existed read back with their old format and the new defaults.
    old = JobSettings.of({"output_format": "PNG", "samples": 4})
    assert old.output_format is OutputFormat.PNG and old.view_layers == () and old.camera is None


def test_the_scene_reader_reads_the_media_type_and_refuses_what_is_not_a_blend(scenes) -> None:
    from farm.client.scene_info import SceneUnreadable, read_scene

    info = read_scene(scenes / "multilayer.blend")
    assert info.media_type == "MULTI_LAYER_IMAGE" and info.enabled_layers == ["Beauty", "Extra"]
    assert read_scene(scenes / "video.blend").media_type == "VIDEO"
    assert read_scene(scenes / "layers_png.blend").media_type == "IMAGE"
    not_blend = scenes / "not.blend"
    not_blend.write_bytes(b"nothing like a blend file" * 10)
    with pytest.raises(SceneUnreadable, match="not.blend"):
        read_scene(not_blend)
