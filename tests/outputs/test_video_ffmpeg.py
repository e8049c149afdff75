"""Blender's video settings -> ffmpeg arguments (pure), then real ffmpeg encodes of tiny frames checked with ffprobe."""

from __future__ import annotations

import json
import math
import shutil
import struct
import subprocess
import wave
from fractions import Fraction
from pathlib import Path

import pytest
from PIL import Image

from farm.media.video import frame_step, product_name, video_media_type
from farm.media.video_ffmpeg import UnsupportedVideo, VideoSettings, encode_command, frame_rate

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")


def _after(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_mp4_h264_aac_maps_every_setting() -> None:
    v = VideoSettings(
        container="MPEG4",
        codec="H264",
        crf="HIGH",
        preset="BEST",
        gopsize=12,
        max_b_frames=2,
        audio_codec="AAC",
        audio_bitrate=160,
        audio_channels="MONO",
        audio_mixrate=44100,
        audio_volume=0.5,
    )
    args = encode_command(v, Path("f/%06d.png"), Fraction(24), Path("out.mp4"), Path("sound.wav"))
    assert args[0] == "ffmpeg" and isinstance(args, list) and all(isinstance(a, str) for a in args)
    assert _after(args, "-framerate") == "24/1"
    assert _after(args, "-c:v") == "libx264" and _after(args, "-pix_fmt") == "yuv420p"
    assert _after(args, "-crf") == "20" and _after(args, "-preset") == "slower"
    assert _after(args, "-g") == "12" and _after(args, "-bf") == "2"
    assert "-b:v" not in args  # quality mode, not a bitrate
    assert _after(args, "-c:a") == "aac" and _after(args, "-b:a") == "160k"
    assert _after(args, "-ac") == "1" and _after(args, "-ar") == "44100" and _after(args, "-af") == "volume=0.5"
    assert args[-3:] == ["-f", "mp4", "out.mp4"] and "+faststart" in args
    assert [a for a in args if a == "-i"] == ["-i", "-i"] and "1:a:0" in args


def test_bitrate_mode_and_codec_defaults() -> None:
    v = VideoSettings(
        container="AVI", codec="NONE", crf="NONE", video_bitrate=6000, minrate=100, maxrate=9000, buffersize=1792
    )
    args = encode_command(v, Path("p"), Fraction(25), Path("o.avi"))
    assert _after(args, "-c:v") == "mpeg4"  # AVI's default codec
    assert (_after(args, "-b:v"), _after(args, "-minrate"), _after(args, "-maxrate"), _after(args, "-bufsize")) == (
        "6000k",
        "100k",
        "9000k",
        "1792k",
    )
    assert "-crf" not in args and "-c:a" not in args and "-i" in args and args.count("-i") == 1
    assert args[-2:] == ["avi", "o.avi"]


def test_crf_is_ignored_by_codecs_without_it_and_alpha_keeps_its_pixel_format() -> None:
    args = encode_command(
        VideoSettings(container="QUICKTIME", codec="PRORES", crf="HIGH", color_mode="RGBA", prores_profile="4444"),
        Path("p"),
        Fraction(24),
        Path("o.mov"),
    )
    assert "-crf" not in args and _after(args, "-c:v") == "prores_ks" and _after(args, "-profile:v") == "4"
    assert _after(args, "-pix_fmt") == "yuva444p10le"
    webm = encode_command(
        VideoSettings(container="WEBM", codec="WEBM", crf="MEDIUM", color_mode="RGBA"),
        Path("p"),
        Fraction(24),
        Path("o.webm"),
    )
    assert _after(webm, "-pix_fmt") == "yuva420p" and _after(webm, "-crf") == "23" and _after(webm, "-b:v") == "0"


def test_frame_rates_keep_ntsc_exact_and_steps_keep_time() -> None:
    assert frame_rate(30, 1.001) == Fraction(30000, 1001)
    assert frame_rate(24, 1.0, step=2) == Fraction(12)
    assert frame_rate(25, 1.0) == 25
    with pytest.raises(UnsupportedVideo):
        frame_rate(0, 1.0)
    assert frame_step([1, 6, 11, 16]) == 5 and frame_step([1, 2, 4]) == 1 and frame_step([7]) == 1


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [("container", "REALMEDIA", "container"), ("codec", "CINEPAK", "video codec"), ("audio_codec", "WMA", "audio")],
)
def test_what_cannot_be_made_is_refused_with_the_alternatives(field: str, value: str, words: str) -> None:
    v = VideoSettings(**{field: value, "audio_codec": "AAC"} if field != "audio_codec" else {field: value})
    with pytest.raises(UnsupportedVideo, match=words) as err:
        encode_command(v, Path("p"), Fraction(24), Path("o"), Path("a.wav"))
    assert "use one of" in str(err.value)


def test_settings_from_a_newer_child_and_names() -> None:
    v = VideoSettings.from_json({"container": "MKV", "codec": "FFV1", "some_future_field": 1})
    assert (v.container, v.codec, v.extension) == ("MKV", "FFV1", ".mkv")
    assert VideoSettings.from_json(v.to_json()) == v
    assert product_name("shot 010/../final", ".mp4") == "shot_010_.._final.mp4"
    assert product_name("../..", ".mov") == "video.mov"
    assert video_media_type("a.webm") == "video/webm" and video_media_type("a.xyz") == "application/octet-stream"


def _frames(folder: Path, count: int, size: tuple[int, int] = (32, 24)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, count + 1):
        Image.new("RGB", size, (40 * i % 256, 100, 200)).save(folder / f"{i:06d}.png")
    return folder / "%06d.png"


def _tone(path: Path, seconds: float, rate: int = 48000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        samples = (int(6000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(int(seconds * rate)))
        w.writeframes(b"".join(struct.pack("<hh", s, s) for s in samples))
    return path


def probe(path: Path) -> dict[str, object]:
    """ffprobe's view of a file: format and streams, with frames counted."""
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_format", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    data: dict[str, object] = json.loads(result.stdout)
    return data


@needs_ffmpeg
@pytest.mark.parametrize(
    ("settings", "format_name", "vcodec", "acodec"),
    [
        (VideoSettings(container="MKV", codec="FFV1", audio_codec="FLAC"), "matroska", "ffv1", "flac"),
        (VideoSettings(container="QUICKTIME", codec="PRORES"), "mov", "prores", None),
        (VideoSettings(container="WEBM", codec="WEBM", audio_codec="OPUS"), "webm", "vp9", "opus"),
        (VideoSettings(container="AVI", codec="NONE", crf="NONE", video_bitrate=800), "avi", "mpeg4", None),
        (VideoSettings(container="OGG", codec="THEORA", audio_codec="VORBIS"), "ogg", "theora", "vorbis"),
        (
            VideoSettings(container="MPEG4", codec="H264", fps=30, fps_base=1.001, audio_codec="AAC"),
            "mp4",
            "h264",
            "aac",
        ),
    ],
    ids=["mkv-ffv1-flac", "mov-prores", "webm-vp9-opus", "avi-mpeg4-bitrate", "ogg-theora-vorbis", "mp4-h264-ntsc"],
)
def test_real_encodes_have_the_container_codec_rate_and_frames_asked_for(
    tmp_path: Path, settings: VideoSettings, format_name: str, vcodec: str, acodec: str | None
) -> None:
    pattern = _frames(tmp_path / "frames", 5)
    rate = frame_rate(settings.fps, settings.fps_base)
    audio = _tone(tmp_path / "a.wav", 5 / float(rate)) if acodec else None
    out = tmp_path / f"out{settings.extension}"
    result = subprocess.run(encode_command(settings, pattern, rate, out, audio), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    info = probe(out)
    assert format_name in str(info["format"]["format_name"])  # type: ignore[index]
    streams = info["streams"]
    video = [s for s in streams if s["codec_type"] == "video"]  # type: ignore[index,union-attr,attr-defined]
    assert len(video) == 1 and video[0]["codec_name"] == vcodec
    assert int(video[0]["nb_read_frames"]) == 5
    assert Fraction(video[0]["r_frame_rate"]) == rate
    audios = [s for s in streams if s["codec_type"] == "audio"]  # type: ignore[index,union-attr,attr-defined]
    assert [a["codec_name"] for a in audios] == ([acodec] if acodec else [])
