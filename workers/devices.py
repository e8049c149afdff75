"""Choosing the Cycles compute device for a render slot.

Pure code over a small ``Protocol`` of Cycles' add-on preferences, so it is tested with fakes and runs for
real inside the Blender subprocess (``cycles_preferences()`` hands over the live object there).

How Cycles sees devices (bpy 5.0): ``refresh_devices()`` asks every backend the build has (CUDA, OPTIX, HIP,
ONEAPI; METAL on macOS) for its devices and keeps one entry per (backend, device) in ``devices``, plus the
CPU. The same NVIDIA card therefore shows up twice, as a CUDA entry (id ``CUDA_<name>_<pci bus id>``) and as
an OPTIX entry (the same id with ``_OptiX`` appended). Rendering uses the entries of the one backend named by
``compute_device_type`` whose ``use`` is on, and the scene's ``cycles.device`` must be ``"GPU"``.

Inside a Ray worker ``CUDA_VISIBLE_DEVICES`` (or its HIP/oneAPI twin) already holds only the GPUs Ray
assigned, so Blender never sees the others; ``allowed_gpu_ids`` is an optional extra filter on top of that.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal, Protocol

__all__ = [
    "GPU_BACKENDS",
    "CyclesDevice",
    "CyclesPreferences",
    "DeviceChoice",
    "DeviceKind",
    "NoGpuAvailable",
    "apply_to_scene",
    "cycles_preferences",
    "parse_visible_devices",
    "select_device",
]

log = logging.getLogger(__name__)

DeviceKind = Literal["CPU", "OPTIX", "CUDA", "HIP", "ONEAPI"]
SceneDevice = Literal["CPU", "GPU"]

#: GPU backends, best first: OptiX uses the RT cores of the same NVIDIA cards that CUDA drives.
GPU_BACKENDS: tuple[Literal["OPTIX", "CUDA", "HIP", "ONEAPI"], ...] = ("OPTIX", "CUDA", "HIP", "ONEAPI")

#: ``compute_device_type`` value meaning "no GPU backend"; every Cycles build accepts it.
NO_COMPUTE_DEVICE = "NONE"


class NoGpuAvailable(RuntimeError):
    """A GPU render was asked for, CPU fallback is off, and no usable GPU device was found."""


class CyclesDevice(Protocol):
    """One entry of ``CyclesPreferences.devices`` (``bpy.types.CyclesDeviceSettings``)."""

    @property
    def type(self) -> str:
        """Backend of this entry: ``CPU``, ``CUDA``, ``OPTIX``, ``HIP``, ``ONEAPI`` or ``METAL``."""
        ...

    @property
    def name(self) -> str:
        """Human-readable device name, e.g. ``NVIDIA H100 80GB HBM3``."""
        ...

    @property
    def id(self) -> str:
        """Persistent id, e.g. ``CUDA_NVIDIA H100 80GB HBM3_0000:3b:00`` (``_OptiX`` appended for OptiX)."""
        ...

    use: bool


class CyclesPreferences(Protocol):
    """The part of ``bpy.context.preferences.addons['cycles'].preferences`` that device selection uses."""

    compute_device_type: str

    @property
    def devices(self) -> Iterable[CyclesDevice]:
        """Device entries of every backend, as filled by ``refresh_devices()``."""
        ...

    def refresh_devices(self) -> None:
        """Query every backend and update ``devices`` (``get_devices()`` only calls this in bpy 5)."""
        ...


class CyclesSceneSettings(Protocol):
    """``scene.cycles``: only the device is set here."""

    device: str


class SceneLike(Protocol):
    """A ``bpy.types.Scene``, as far as ``apply_to_scene`` needs one."""

    @property
    def cycles(self) -> CyclesSceneSettings:
        """The scene's Cycles settings."""
        ...


@dataclass(frozen=True)
class DeviceChoice:
    """What ``select_device`` decided: the backend, the devices switched on, and why."""

    kind: DeviceKind
    device_names: list[str]
    scene_device: SceneDevice
    reason: str

    def as_dict(self) -> dict[str, object]:
        """Plain-data form for JSON (worker facts, benchmark output)."""
        return asdict(self)


def parse_visible_devices(value: str | None) -> list[str] | None:
    """Split a ``CUDA_VISIBLE_DEVICES``-style value into ids; ``None`` when unset (everything visible)."""
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def _matches(device: CyclesDevice, ordinal: int, wanted: str, visible: Sequence[str] | None) -> bool:
    # Ray hands out physical ids ("3") while the process sees its GPUs renumbered from 0 in the order of
    # CUDA_VISIBLE_DEVICES, so a listed id is translated to its position there first.
    if visible is not None and wanted in visible:
        return visible.index(wanted) == ordinal
    if wanted.isdigit():
        return int(wanted) == ordinal
    if wanted in (device.id, device.name):
        return True
    # A PCI bus id ("0000:3B:00.0") is part of Cycles' CUDA/OptiX ids, without the function number.
    if ":" in wanted:
        bus = wanted.lower().removesuffix(".0")
        return bus in device.id.lower()
    return False


def _describe(devices: Sequence[CyclesDevice]) -> str:
    if not devices:
        return "no devices at all"
    return ", ".join(f"{d.type} {d.name!r} ({d.id})" for d in devices)


def _cpu_choice(devices: Sequence[CyclesDevice], reason: str) -> DeviceChoice:
    names = [d.name for d in devices if d.type == "CPU"] or ["CPU"]
    return DeviceChoice(kind="CPU", device_names=names, scene_device="CPU", reason=reason)


def select_device(
    prefs: CyclesPreferences,
    allowed_gpu_ids: Sequence[str] | None = None,
    *,
    want_gpu: bool,
    allow_cpu_fallback: bool = False,
    visible_gpu_ids: Sequence[str] | None = None,
) -> DeviceChoice:
    """Pick the Cycles backend and devices for this process and switch them on in ``prefs``.

    With ``want_gpu`` the best backend that has a device is taken, in the order OPTIX > CUDA > HIP > ONEAPI,
    and exactly its GPU entries are enabled: the CPU entry and every other backend's entries are switched
    off, because adding the CPU to a GPU render slows it down (and the CPU belongs to other slots).

    ``allowed_gpu_ids`` optionally narrows the GPUs further (``None`` = all that Blender sees). Each id may be
    a Blender device id or name, a PCI bus id, or an ordinal; ordinals are positions among one backend's
    devices as this process sees them, unless ``visible_gpu_ids`` (the ``CUDA_VISIBLE_DEVICES`` list the
    process runs under, see ``parse_visible_devices``) is given, in which case ids found in it are mapped
    to their position there. Inside a Ray worker pass ``None``: Ray has already hidden the other GPUs.

    Without ``want_gpu`` the CPU is chosen and no backend is queried (this initialises no GPU driver).
    When a GPU is wanted but none is usable, the CPU is chosen if ``allow_cpu_fallback`` (the reason says
    why), otherwise ``NoGpuAvailable`` is raised with what was found.
    """
    if not want_gpu:
        prefs.compute_device_type = NO_COMPUTE_DEVICE
        choice = _cpu_choice(list(prefs.devices), "CPU rendering was asked for (want_gpu=False)")
        log.info("cycles device: %s (%s)", choice.kind, choice.reason)
        return choice

    prefs.refresh_devices()
    devices = list(prefs.devices)
    allowed = None if allowed_gpu_ids is None else [str(x) for x in allowed_gpu_ids]
    filtered_out: list[str] = []
    for backend in GPU_BACKENDS:
        candidates = [d for d in devices if d.type == backend]
        if not candidates:
            continue
        chosen = [
            d
            for ordinal, d in enumerate(candidates)
            if allowed is None or any(_matches(d, ordinal, w, visible_gpu_ids) for w in allowed)
        ]
        if not chosen:
            filtered_out.append(f"{backend}: {len(candidates)} device(s), none in allowed_gpu_ids={allowed}")
            continue
        prefs.compute_device_type = backend
        chosen_ids = {d.id for d in chosen}
        for d in devices:
            d.use = d.type == backend and d.id in chosen_ids
        reason = f"{backend} is the best GPU backend with a device; using {len(chosen)} of {len(candidates)}"
        if allowed is not None:
            reason += f" (allowed_gpu_ids={allowed})"
        if filtered_out:
            reason += "; skipped " + "; ".join(filtered_out)
        choice = DeviceChoice(
            kind=backend, device_names=[d.name for d in chosen], scene_device="GPU", reason=reason
        )
        log.info("cycles device: %s %s (%s)", choice.kind, choice.device_names, choice.reason)
        return choice

    found = _describe(devices)
    why = "no GPU device for Cycles in backends " + ", ".join(GPU_BACKENDS)
    if filtered_out:
        why += " (" + "; ".join(filtered_out) + ")"
    why += f"; found: {found}"
    if not allow_cpu_fallback:
        raise NoGpuAvailable(
            f"{why}. Check the node's driver and that this worker was given a GPU (num_gpus), "
            "or allow CPU fallback."
        )
    prefs.compute_device_type = NO_COMPUTE_DEVICE
    choice = _cpu_choice(devices, f"GPU wanted but falling back to CPU: {why}")
    log.warning("cycles device: %s (%s)", choice.kind, choice.reason)
    return choice


def apply_to_scene(scene: SceneLike, choice: DeviceChoice) -> None:
    """Make ``scene`` render on the chosen device (``scene.cycles.device`` = ``"CPU"`` or ``"GPU"``).

    Needed for every scene rendered, since the device is stored in each .blend and artists save either.
    """
    scene.cycles.device = choice.scene_device


def cycles_preferences() -> CyclesPreferences:
    """Return the live Cycles add-on preferences; callable only inside the Blender (bpy) subprocess."""
    import bpy  # deliberately lazy: farm processes must never import bpy

    addon = bpy.context.preferences.addons.get("cycles")
    if addon is None:
        raise RuntimeError("the Cycles add-on is not enabled in this Blender process")
    prefs: CyclesPreferences = addon.preferences
    return prefs
