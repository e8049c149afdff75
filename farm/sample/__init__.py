"""A small generated Blender scene for tests, benchmarks and demos.

``generate_sample`` runs ``make_scene.py`` in a child Python process (bpy is never imported into a farm
process) and caches the result: a ``sample.json`` stamp beside the .blend records the parameters and a hash
of the generator, and a matching stamp with both files present skips the ~1 s regeneration.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["SCRIPT", "STAMP_NAME", "TEXTURE_RELATIVE", "generate_sample"]

SCRIPT = Path(__file__).with_name("make_scene.py")
STAMP_NAME = "sample.json"
TEXTURE_RELATIVE = "textures/checker.png"
_STDERR_TAIL_CHARS = 4000


def _stamp(resolution: tuple[int, int], samples: int, frames: int) -> dict[str, object]:
    # The script's hash is part of the stamp so an edited generator never leaves a stale scene behind.
    return {
        "resolution": [resolution[0], resolution[1]],
        "samples": samples,
        "frames": frames,
        "script_sha256": hashlib.sha256(SCRIPT.read_bytes()).hexdigest(),
    }


def _is_current(out_dir: Path, stamp: dict[str, object]) -> bool:
    blend, texture, stamp_file = out_dir / "scene.blend", out_dir / TEXTURE_RELATIVE, out_dir / STAMP_NAME
    if not (blend.is_file() and texture.is_file() and stamp_file.is_file()):
        return False
    try:
        return bool(json.loads(stamp_file.read_text(encoding="utf-8")) == stamp)
    except (OSError, ValueError):
        return False


def _tail(text: str) -> str:
    return text[-_STDERR_TAIL_CHARS:].strip()


def generate_sample(
    out_dir: Path,
    resolution: tuple[int, int] = (64, 64),
    samples: int = 4,
    frames: int = 48,
    python: str | None = None,
    *,
    timeout_s: float = 120.0,
) -> Path:
    """Write the sample scene to ``out_dir/scene.blend`` (texture in ``out_dir/textures``); return the path.

    ``python`` is the interpreter that has bpy (default: this one). Generation is skipped when the .blend,
    the texture and a stamp with the same parameters already exist. Raises ``ValueError`` for bad parameters
    and ``RuntimeError`` (with the tail of the script's stderr) when the child process fails or times out.
    """
    width, height = resolution
    if width <= 0 or height <= 0 or samples < 1 or frames < 2:
        raise ValueError(
            f"need a positive resolution, samples >= 1 and frames >= 2; got {resolution}, {samples}, {frames}"
        )
    out_dir = Path(out_dir).resolve()
    blend = out_dir / "scene.blend"
    stamp = _stamp(resolution, samples, frames)
    if _is_current(out_dir, stamp):
        return blend

    out_dir.mkdir(parents=True, exist_ok=True)
    # A stamp left from other parameters must not vouch for a half-written new scene.
    (out_dir / STAMP_NAME).unlink(missing_ok=True)
    # The script is run by path rather than with -m so the child needs no farm package on its sys.path.
    command = [
        python or sys.executable,
        str(SCRIPT),
        "--out",
        str(out_dir),
        "--resolution",
        f"{width}x{height}",
        "--samples",
        str(samples),
        "--frames",
        str(frames),
    ]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, errors="replace", timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        raise RuntimeError(
            f"sample scene generation timed out after {timeout_s:.0f} s: {command!r}\n{_tail(stderr)}"
        ) from exc
    if result.returncode != 0 or not blend.is_file():
        detail = _tail(result.stderr) or _tail(result.stdout) or "(no output)"
        raise RuntimeError(
            f"sample scene generation failed (exit {result.returncode}) running {command!r}:\n{detail}"
        )

    tmp = out_dir / f".{STAMP_NAME}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, out_dir / STAMP_NAME)
    return blend
