"""Cycles device selection: fakes of the preferences object, plus one run against real bpy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from workers.devices import (
    GPU_BACKENDS,
    DeviceChoice,
    NoGpuAvailable,
    apply_to_scene,
    parse_visible_devices,
    select_device,
)

REPO = Path(__file__).resolve().parents[1]
CPU_NAME = "AMD EPYC 9654"


@dataclass
class FakeDevice:
    type: str
    name: str
    id: str
    use: bool = False


@dataclass
class FakePrefs:
    """Behaves like CyclesPreferences: ``devices`` is only filled once ``refresh_devices()`` ran."""

    available: list[FakeDevice]
    compute_device_type: str = "NONE"
    devices: list[FakeDevice] = field(default_factory=list)
    refreshes: int = 0

    def refresh_devices(self) -> None:
        self.refreshes += 1
        self.devices = list(self.available)

    def by_type(self, kind: str) -> list[FakeDevice]:
        return [d for d in self.devices if d.type == kind]


def cpu() -> FakeDevice:
    # Blender enables the CPU entry by default; a GPU choice must switch it off.
    return FakeDevice("CPU", CPU_NAME, "CPU", use=True)


def nvidia(count: int, optix: bool = True, name: str = "NVIDIA H100 80GB HBM3") -> list[FakeDevice]:
    """Entries as Cycles lists them: each card once as CUDA and once as OPTIX."""
    cuda = [FakeDevice("CUDA", name, f"CUDA_{name}_0000:{0x3B + i:02x}:00") for i in range(count)]
    opt = [FakeDevice("OPTIX", d.name, d.id + "_OptiX") for d in cuda] if optix else []
    return cuda + opt


def gpus(kind: str, count: int, name: str) -> list[FakeDevice]:
    return [FakeDevice(kind, f"{name} #{i}", f"{kind}_{name}_{i}") for i in range(count)]


def test_optix_preferred_over_cuda() -> None:
    prefs = FakePrefs([cpu(), *nvidia(2)])
    choice = select_device(prefs, want_gpu=True)
    assert choice.kind == "OPTIX"
    assert choice.scene_device == "GPU"
    assert choice.device_names == ["NVIDIA H100 80GB HBM3"] * 2
    assert prefs.compute_device_type == "OPTIX"
    assert all(d.use for d in prefs.by_type("OPTIX"))
    assert not any(d.use for d in prefs.by_type("CUDA"))
    assert not any(d.use for d in prefs.by_type("CPU"))
    assert prefs.refreshes == 1


def test_cuda_when_only_cuda() -> None:
    prefs = FakePrefs([cpu(), *nvidia(1, optix=False, name="Quadro K6000")])
    choice = select_device(prefs, want_gpu=True)
    assert (choice.kind, choice.scene_device, choice.device_names) == ("CUDA", "GPU", ["Quadro K6000"])
    assert prefs.compute_device_type == "CUDA"
    assert [d.use for d in prefs.by_type("CUDA")] == [True]


@pytest.mark.parametrize(
    ("kind", "name"), [("HIP", "AMD Radeon PRO W7900"), ("ONEAPI", "Intel Arc A770 Graphics")]
)
def test_hip_and_oneapi(kind: str, name: str) -> None:
    prefs = FakePrefs([cpu(), *gpus(kind, 2, name)])
    choice = select_device(prefs, want_gpu=True)
    assert choice.kind == kind
    assert choice.device_names == [f"{name} #0", f"{name} #1"]
    assert prefs.compute_device_type == kind
    assert all(d.use for d in prefs.by_type(kind))


def test_backend_order_is_optix_cuda_hip_oneapi() -> None:
    assert GPU_BACKENDS == ("OPTIX", "CUDA", "HIP", "ONEAPI")
    prefs = FakePrefs([cpu(), *gpus("ONEAPI", 1, "Arc"), *gpus("HIP", 1, "Radeon")])
    assert select_device(prefs, want_gpu=True).kind == "HIP"
    prefs = FakePrefs([cpu(), *gpus("HIP", 1, "Radeon"), *nvidia(1, optix=False)])
    assert select_device(prefs, want_gpu=True).kind == "CUDA"


@pytest.mark.parametrize(
    "devices",
    [nvidia(2), nvidia(1, optix=False), gpus("HIP", 1, "Radeon"), gpus("ONEAPI", 1, "Arc")],
    ids=["optix", "cuda", "hip", "oneapi"],
)
def test_cpu_device_never_enabled_with_a_gpu(devices: list[FakeDevice]) -> None:
    prefs = FakePrefs([cpu(), *devices])
    choice = select_device(prefs, want_gpu=True)
    assert choice.scene_device == "GPU"
    assert CPU_NAME not in choice.device_names
    assert not any(d.use for d in prefs.by_type("CPU"))
    # Only entries of the chosen backend are on.
    assert {d.type for d in prefs.devices if d.use} == {choice.kind}


def test_allowed_gpu_ids_by_ordinal() -> None:
    prefs = FakePrefs([cpu(), *nvidia(3)])
    choice = select_device(prefs, ["1"], want_gpu=True)
    assert choice.kind == "OPTIX"
    assert [d.use for d in prefs.by_type("OPTIX")] == [False, True, False]
    assert not any(d.use for d in prefs.by_type("CUDA"))
    assert "using 1 of 3" in choice.reason and "allowed_gpu_ids=['1']" in choice.reason


def test_allowed_gpu_ids_mapped_through_visible_devices() -> None:
    # Ray gave this process physical GPUs 2 and 3; it sees them as ordinals 0 and 1.
    prefs = FakePrefs([cpu(), *nvidia(2)])
    select_device(prefs, ["3"], want_gpu=True, visible_gpu_ids=parse_visible_devices("2,3"))
    assert [d.use for d in prefs.by_type("OPTIX")] == [False, True]


def test_allowed_gpu_ids_by_pci_bus_id_and_device_id() -> None:
    prefs = FakePrefs([cpu(), *nvidia(2)])
    select_device(prefs, ["0000:3B:00.0"], want_gpu=True)
    assert [d.use for d in prefs.by_type("OPTIX")] == [True, False]

    cuda_id = nvidia(2)[1].id
    prefs = FakePrefs([cpu(), *nvidia(2, optix=False)])
    select_device(prefs, [cuda_id], want_gpu=True)
    assert [d.use for d in prefs.by_type("CUDA")] == [False, True]


def test_allowed_gpu_ids_excluding_everything_is_no_gpu() -> None:
    prefs = FakePrefs([cpu(), *nvidia(2)])
    with pytest.raises(NoGpuAvailable) as info:
        select_device(prefs, ["7"], want_gpu=True)
    assert "allowed_gpu_ids=['7']" in str(info.value)
    assert not any(d.use for d in prefs.devices if d.type != "CPU")


def test_no_gpu_with_fallback_is_cpu_with_reason() -> None:
    prefs = FakePrefs([cpu()])
    choice = select_device(prefs, want_gpu=True, allow_cpu_fallback=True)
    expected = DeviceChoice(kind="CPU", device_names=[CPU_NAME], scene_device="CPU", reason=choice.reason)
    assert choice == expected
    assert "falling back to CPU" in choice.reason
    assert "no GPU device" in choice.reason and CPU_NAME in choice.reason
    assert prefs.compute_device_type == "NONE"


def test_no_gpu_without_fallback_raises_clear_error() -> None:
    prefs = FakePrefs([cpu()])
    with pytest.raises(NoGpuAvailable) as info:
        select_device(prefs, want_gpu=True, allow_cpu_fallback=False)
    assert isinstance(info.value, RuntimeError)
    message = str(info.value)
    assert "no GPU device" in message
    assert "OPTIX, CUDA, HIP, ONEAPI" in message
    assert CPU_NAME in message
    # The default is strict: a GPU job never lands on a CPU silently.
    with pytest.raises(NoGpuAvailable):
        select_device(FakePrefs([cpu()]), want_gpu=True)


def test_want_cpu_regardless_of_gpus() -> None:
    prefs = FakePrefs([cpu(), *nvidia(2)])
    choice = select_device(prefs, want_gpu=False)
    assert (choice.kind, choice.scene_device) == ("CPU", "CPU")
    assert "want_gpu=False" in choice.reason
    assert prefs.compute_device_type == "NONE"
    # Querying backends initialises GPU drivers; a CPU slot has no reason to.
    assert prefs.refreshes == 0


def test_apply_to_scene_and_as_dict() -> None:
    @dataclass
    class Cycles:
        device: str = "CPU"

    @dataclass
    class Scene:
        cycles: Cycles

    scene = Scene(Cycles())
    gpu = select_device(FakePrefs([cpu(), *nvidia(1)]), want_gpu=True)
    apply_to_scene(scene, gpu)
    assert scene.cycles.device == "GPU"
    apply_to_scene(scene, select_device(FakePrefs([cpu()]), want_gpu=False))
    assert scene.cycles.device == "CPU"
    assert json.loads(json.dumps(gpu.as_dict()))["kind"] == "OPTIX"


def test_parse_visible_devices() -> None:
    assert parse_visible_devices(None) is None
    assert parse_visible_devices("") == []
    assert parse_visible_devices("0, 2,GPU-1a2b") == ["0", "2", "GPU-1a2b"]


BPY_SCRIPT = textwrap.dedent(
    """
    import json
    import bpy
    from workers.devices import NoGpuAvailable, apply_to_scene, cycles_preferences, select_device

    prefs = cycles_preferences()
    as_cpu = select_device(prefs, want_gpu=False)
    fallback = select_device(prefs, want_gpu=True, allow_cpu_fallback=True)
    found = sorted({d.type for d in prefs.devices})
    scene = bpy.context.scene
    apply_to_scene(scene, fallback)
    try:
        select_device(prefs, want_gpu=True, allow_cpu_fallback=False)
        strict = None
    except NoGpuAvailable as exc:
        strict = str(exc)
    print("RESULT=" + json.dumps({
        "cpu": as_cpu.as_dict(), "fallback": fallback.as_dict(), "found": found,
        "scene_device": scene.cycles.device, "strict_error": strict,
    }))
    """
)


@pytest.mark.blender
def test_real_cycles_preferences_satisfy_the_protocol(tmp_path: Path) -> None:
    script = tmp_path / "devices_probe.py"
    script.write_text(BPY_SCRIPT)
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=REPO, env=env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT=")]
    assert lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(lines[-1].removeprefix("RESULT="))

    assert result["cpu"]["kind"] == "CPU" and result["cpu"]["scene_device"] == "CPU"
    assert "CPU" in result["found"]
    if set(result["found"]) & set(GPU_BACKENDS):
        # A machine with a GPU: the real object must lead to a GPU choice.
        assert result["fallback"]["kind"] in GPU_BACKENDS
        assert result["scene_device"] == "GPU" and result["strict_error"] is None
    else:
        fallback = result["fallback"]
        assert (fallback["kind"], fallback["scene_device"]) == ("CPU", "CPU")
        assert "falling back to CPU" in fallback["reason"]
        assert fallback["device_names"] and fallback["device_names"] != ["CPU"]  # the real CPU's name
        assert result["scene_device"] == "CPU"
        assert "no GPU device" in result["strict_error"]
