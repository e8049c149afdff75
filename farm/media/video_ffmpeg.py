"""Blender's FFmpeg output settings as ffmpeg arguments: pure functions, tested without Blender or ffmpeg.

``VideoSettings`` holds what a scene says about its video (``render.ffmpeg.*``, ``render.fps``/``fps_base``,
the image format's colour mode), as read by ``farm.media.video_scene`` in a Blender child. ``encode_command``
turns it into the argument list (never a shell string) that encodes a numbered frame sequence, and the scene's
sequencer audio when there is some, into the container and codec the scene asks for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

#: Blender container (``render.ffmpeg.format``) -> (ffmpeg muxer, file extension).
CONTAINERS: dict[str, tuple[str, str]] = {
    "MPEG4": ("mp4", ".mp4"),
    "MKV": ("matroska", ".mkv"),
    "WEBM": ("webm", ".webm"),
    "AVI": ("avi", ".avi"),
    "DV": ("dv", ".dv"),
    "FLASH": ("flv", ".flv"),
    "MPEG1": ("mpeg", ".mpg"),
    "MPEG2": ("mpeg", ".mpg"),
    "OGG": ("ogg", ".ogv"),
    "QUICKTIME": ("mov", ".mov"),
}

#: What Blender picks when a container is chosen and the codec is left at ``NONE``.
DEFAULT_CODECS: dict[str, str] = {
    "MPEG4": "H264",
    "MKV": "H264",
    "WEBM": "WEBM",
    "AVI": "MPEG4",
    "DV": "DV",
    "FLASH": "FLASH",
    "MPEG1": "MPEG1",
    "MPEG2": "MPEG2",
    "OGG": "THEORA",
    "QUICKTIME": "H264",
}

#: Blender video codec -> (ffmpeg encoder, pixel format without alpha, pixel format with alpha or None).
VIDEO_CODECS: dict[str, tuple[str, str, str | None]] = {
    "H264": ("libx264", "yuv420p", None),
    "H265": ("libx265", "yuv420p", None),
    "AV1": ("libaom-av1", "yuv420p", None),
    "WEBM": ("libvpx-vp9", "yuv420p", "yuva420p"),
    "DNXHD": ("dnxhd", "yuv422p", None),
    "DV": ("dvvideo", "yuv411p", None),
    "FFV1": ("ffv1", "yuv420p", "bgra"),
    "FLASH": ("flv", "yuv420p", None),
    "HUFFYUV": ("huffyuv", "rgb24", "bgra"),
    "MPEG1": ("mpeg1video", "yuv420p", None),
    "MPEG2": ("mpeg2video", "yuv420p", None),
    "MPEG4": ("mpeg4", "yuv420p", None),
    "PNG": ("png", "rgb24", "rgba"),
    "PRORES": ("prores_ks", "yuv422p10le", "yuva444p10le"),
    "QTRLE": ("qtrle", "rgb24", "argb"),
    "THEORA": ("libtheora", "yuv420p", None),
}

#: Codecs whose ``constant_rate_factor`` Blender honours, and how ffmpeg spells "quality, not bitrate".
CRF_CODECS = frozenset({"H264", "H265", "AV1", "WEBM"})

#: ``render.ffmpeg.constant_rate_factor`` -> CRF value (Blender's own table).
CRF_VALUES: dict[str, int] = {
    "LOSSLESS": 0,
    "PERC_LOSSLESS": 17,
    "HIGH": 20,
    "MEDIUM": 23,
    "LOW": 26,
    "VERYLOW": 29,
    "LOWEST": 32,
}

#: ``render.ffmpeg.ffmpeg_preset`` -> x264/x265 preset.
PRESETS: dict[str, str] = {"BEST": "slower", "GOOD": "medium", "REALTIME": "superfast"}

#: Blender audio codec -> (ffmpeg encoder, whether a bitrate applies).
AUDIO_CODECS: dict[str, tuple[str, bool]] = {
    "AAC": ("aac", True),
    "AC3": ("ac3", True),
    "FLAC": ("flac", False),
    "MP2": ("mp2", True),
    "MP3": ("libmp3lame", True),
    "OPUS": ("libopus", True),
    "PCM": ("pcm_s16le", False),
    "VORBIS": ("libvorbis", True),
}

AUDIO_CHANNELS: dict[str, int] = {"MONO": 1, "STEREO": 2, "SURROUND4": 4, "SURROUND51": 6, "SURROUND71": 8}

PRORES_PROFILES: dict[str, int] = {"422_PROXY": 0, "422_LT": 1, "422_STD": 2, "422_HQ": 3, "4444": 4, "4444_XQ": 5}


class UnsupportedVideo(ValueError):
    """The scene asks for a video the farm cannot make (the message says what and how to fix it)."""


@dataclass(frozen=True)
class VideoSettings:
    """A scene's video output, as Blender's RNA names it (strings are RNA enum identifiers)."""

    container: str = "MPEG4"
    codec: str = "H264"
    crf: str = "MEDIUM"
    preset: str = "GOOD"
    video_bitrate: int = 0  # kbit/s; used when crf is NONE or the codec has no CRF
    minrate: int = 0
    maxrate: int = 0
    buffersize: int = 0  # kbit
    gopsize: int = 0
    max_b_frames: int | None = None  # None: the encoder's default
    prores_profile: str = "422_STD"
    color_mode: str = "RGB"
    fps: int = 24
    fps_base: float = 1.0
    audio_codec: str = "NONE"
    audio_bitrate: int = 192  # kbit/s
    audio_channels: str = "STEREO"
    audio_mixrate: int = 48000
    audio_volume: float = 1.0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VideoSettings:
        """From the child's JSON; unknown keys are ignored, so a newer child cannot break an older server."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def effective_codec(self) -> str:
        return DEFAULT_CODECS.get(self.container, "H264") if self.codec == "NONE" else self.codec

    @property
    def extension(self) -> str:
        return _container(self.container)[1]

    @property
    def has_audio(self) -> bool:
        return self.audio_codec != "NONE"


def _container(name: str) -> tuple[str, str]:
    try:
        return CONTAINERS[name]
    except KeyError:
        raise UnsupportedVideo(
            f"video container {name!r} is not supported; use one of {', '.join(sorted(CONTAINERS))}"
        ) from None


def frame_rate(fps: int, fps_base: float, step: int = 1) -> Fraction:
    """Frames per second of the product: ``fps / fps_base`` (29.97 is 30000/1001), divided by the frame step so a
    job of every 5th frame lasts as long as the scene (and stays in sync with its sound)."""
    if fps <= 0 or fps_base <= 0 or step <= 0:
        raise UnsupportedVideo(f"frame rate {fps}/{fps_base} (step {step}) must be positive")
    return Fraction(fps) / Fraction(fps_base).limit_denominator(100_000) / step


def _video_args(v: VideoSettings) -> list[str]:
    codec = v.effective_codec
    if codec not in VIDEO_CODECS:
        raise UnsupportedVideo(f"video codec {codec!r} is not supported; use one of {', '.join(sorted(VIDEO_CODECS))}")
    encoder, pix_fmt, alpha_fmt = VIDEO_CODECS[codec]
    if v.color_mode == "RGBA" and alpha_fmt is not None:
        pix_fmt = alpha_fmt
    args = ["-c:v", encoder, "-pix_fmt", pix_fmt]
    if pix_fmt.startswith(("yuv420", "yuva420", "yuv422", "yuv411")):
        # Chroma subsampling wants even sides; Blender pads odd sizes the same way.
        args += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"]
    crf = CRF_VALUES.get(v.crf) if codec in CRF_CODECS else None
    if crf is not None:
        args += ["-crf", str(crf)]
        if codec in ("WEBM", "AV1"):
            args += ["-b:v", "0"]  # constant quality, not a bitrate cap
    elif v.video_bitrate > 0:
        args += ["-b:v", f"{v.video_bitrate}k"]
        if v.minrate > 0:
            args += ["-minrate", f"{v.minrate}k"]
        if v.maxrate > 0:
            args += ["-maxrate", f"{v.maxrate}k"]
        if v.buffersize > 0:
            args += ["-bufsize", f"{v.buffersize}k"]
    if codec in ("H264", "H265") and v.preset in PRESETS:
        args += ["-preset", PRESETS[v.preset]]
    if codec == "PRORES":
        args += ["-profile:v", str(PRORES_PROFILES.get(v.prores_profile, 2))]
    if v.gopsize > 0:
        args += ["-g", str(v.gopsize)]
    if v.max_b_frames is not None:
        args += ["-bf", str(v.max_b_frames)]
    return args


def _audio_args(v: VideoSettings) -> list[str]:
    if v.audio_codec not in AUDIO_CODECS:
        raise UnsupportedVideo(
            f"audio codec {v.audio_codec!r} is not supported; use one of NONE, {', '.join(sorted(AUDIO_CODECS))}"
        )
    encoder, has_bitrate = AUDIO_CODECS[v.audio_codec]
    channels = AUDIO_CHANNELS.get(v.audio_channels)
    if channels is None:
        raise UnsupportedVideo(f"audio channels {v.audio_channels!r} are not supported")
    args = ["-c:a", encoder, "-ac", str(channels), "-ar", str(v.audio_mixrate)]
    if has_bitrate and v.audio_bitrate > 0:
        args += ["-b:a", f"{v.audio_bitrate}k"]
    if v.audio_volume != 1.0:
        args += ["-af", f"volume={v.audio_volume:g}"]
    return args


def encode_command(
    v: VideoSettings, pattern: Path, rate: Fraction, out: Path, audio: Path | None = None, ffmpeg: str = "ffmpeg"
) -> list[str]:
    """The ffmpeg arguments that encode the numbered frames ``pattern`` (e.g. ``dir/%06d.png``) at ``rate``, with
    ``audio`` (a WAV mixdown) when given, into ``out`` the way the scene's settings say."""
    muxer, _ext = _container(v.container)
    command = [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
    command += ["-framerate", f"{rate.numerator}/{rate.denominator}", "-i", str(pattern)]
    if audio is not None:
        command += ["-i", str(audio)]
    command += ["-map", "0:v:0"]
    command += _video_args(v)
    if audio is not None:
        # The mixdown spans exactly the frames' range, so both streams end together.
        command += ["-map", "1:a:0", *_audio_args(v)]
    if muxer in ("mp4", "mov"):
        command += ["-movflags", "+faststart"]
    return [*command, "-f", muxer, str(out)]
