"""``farm addon build|install``: the Blender add-on as an installable Blender extension zip.

The add-on submits through the same ``farm.client`` code as the CLI. Blender's Python has neither the ``farm``
package nor its third-party dependencies (pydantic, httpx, blender-asset-tracer), so the build puts them into the
zip as Python wheels listed in ``blender_manifest.toml``; Blender installs those wheels when the extension is
enabled. The farm's client modules become a small ``render_farm_client`` wheel; every third-party dependency is
repacked from the distribution installed in this environment, so the add-on runs the exact versions the CLI was
tested with and the build needs no network. Wheels with compiled code (pydantic-core, zstandard) tie the zip to
this machine's platform and Python version (Blender 4.2 to 5.0 embed Python 3.11): build on each platform you
deploy to.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.metadata as metadata
import io
import platform
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from packaging.requirements import Requirement

from farm.cli import output as out

ADDON_ID = "render_farm"
CLIENT_DIST = "render_farm_client"
# The farm code the add-on bundles: the client SDK and the leaves it imports (tests/test_layout.py keeps it so).
CLIENT_PACKAGES = ("farm/client", "farm/domain")
CLIENT_MODULES = ("farm/__init__.py", "farm/contract.py", "farm/errors.py")
# Third-party distributions the client needs inside Blender; their own requirements are followed.
THIRD_PARTY_ROOTS = ("pydantic", "httpx", "blender-asset-tracer", "zstandard")
# Blender's manifest may not name these: the build writes them.
GENERATED_MANIFEST_KEYS = ("wheels", "platforms")

_MACHINES = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}
_SYSTEMS = {"linux": "linux", "darwin": "macos", "windows": "windows"}


class AddonBuildError(Exception):
    """The add-on cannot be built or installed; the message says what to fix."""


@dataclass(frozen=True)
class Wheel:
    """One wheel put into the zip."""

    filename: str
    data: bytes

    @property
    def pure(self) -> bool:
        return self.filename.endswith("-none-any.whl")


def addon_source_dir() -> Path:
    """``addon/render_farm`` of the checkout this ``farm`` package runs from."""
    import farm

    source = Path(farm.__file__).resolve().parent.parent / "addon" / ADDON_ID
    if not (source / "blender_manifest.toml").is_file():
        raise AddonBuildError(
            f"the add-on sources are not at {source}: run `farm addon build` from a render-farm checkout "
            "(pip install -e .)"
        )
    return source


def blender_platform() -> str:
    """This machine as Blender names platforms in extension manifests, e.g. ``linux-x64``."""
    system = platform.system().lower()
    machine = platform.machine().lower()
    return f"{_SYSTEMS.get(system, system)}-{_MACHINES.get(machine, machine)}"


# ---- wheels ---------------------------------------------------------------------------------------------------
def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def _wheel_bytes(files: dict[str, bytes], dist_info: str) -> bytes:
    """A wheel archive of ``files`` (paths relative to site-packages) with a freshly computed RECORD."""
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for name, data in files.items():
        writer.writerow([name, _record_hash(data), str(len(data))])
    record_name = f"{dist_info}/RECORD"
    writer.writerow([record_name, "", ""])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(files.items()):
            archive.writestr(_zip_info(name), data)
        archive.writestr(_zip_info(record_name), record.getvalue())
    return buffer.getvalue()


def _zip_info(name: str) -> zipfile.ZipInfo:
    # A fixed timestamp keeps the zip byte-identical between builds of the same sources.
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def farm_modules() -> dict[str, Path]:
    """The ``farm`` modules the add-on bundles (``CLIENT_PACKAGES`` and ``CLIENT_MODULES``), by dotted name.

    The client SDK imports nothing else of the farm (tests/test_layout.py checks it), so a fixed list is enough.
    """
    import farm

    package_dir = Path(farm.__file__).resolve().parent
    root = package_dir.parent
    found: dict[str, Path] = {}
    paths = [root / m for m in CLIENT_MODULES]
    for package in CLIENT_PACKAGES:
        paths.extend(sorted((root / package).rglob("*.py")))
    for path in paths:
        if not path.is_file():
            raise AddonBuildError(f"the add-on needs {path.relative_to(root)}, which is missing under {root}")
        found[".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")] = path
    return found


def client_wheel(version: str) -> Wheel:
    """The farm's client modules as a pure-Python wheel (top-level package ``farm``)."""
    import farm

    package_dir = Path(farm.__file__).resolve().parent
    files: dict[str, bytes] = {}
    for path in farm_modules().values():
        files[path.relative_to(package_dir.parent).as_posix()] = path.read_bytes()
    if (package_dir / "py.typed").is_file():
        files["farm/py.typed"] = b""
    dist_info = f"{CLIENT_DIST}-{version}.dist-info"
    files[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {CLIENT_DIST}\nVersion: {version}\n"
        "Summary: The render farm's client modules, bundled into the Blender add-on.\n"
    ).encode()
    files[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: farm addon build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    return Wheel(f"{CLIENT_DIST}-{version}-py3-none-any.whl", _wheel_bytes(files, dist_info))


def third_party_distributions(roots: tuple[str, ...] = THIRD_PARTY_ROOTS) -> list[metadata.Distribution]:
    """The installed distributions ``roots`` need, following their requirements (extras left out)."""
    found: dict[str, metadata.Distribution] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError as exc:
            raise AddonBuildError(
                f"{name} is not installed in this environment; the add-on bundles it: pip install {name}"
            ) from exc
        key = _normalise(dist.metadata["Name"])
        if key in found:
            continue
        found[key] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return [found[k] for k in sorted(found)]


def _normalise(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def repack(dist: metadata.Distribution) -> Wheel:
    """A wheel rebuilt from an installed distribution's files (its RECORD), for the platform it was built for."""
    name, version = _normalise(dist.metadata["Name"]), dist.version
    wheel_text = dist.read_text("WHEEL") or ""
    tags = [line.split(":", 1)[1].strip() for line in wheel_text.splitlines() if line.startswith("Tag:")]
    if not tags or dist.files is None:
        raise AddonBuildError(
            f"{name} {version} was not installed from a wheel (no WHEEL tags or RECORD); reinstall it with pip"
        )
    files: dict[str, bytes] = {}
    dist_info = ""
    for entry in dist.files:
        posix = entry.as_posix()
        # Scripts live outside site-packages ("../../bin"); bytecode is rebuilt by Python.
        if posix.startswith("..") or "__pycache__" in posix or posix.endswith(".pyc"):
            continue
        if posix.endswith(".dist-info/RECORD"):
            dist_info = posix.rsplit("/", 1)[0]
            continue
        if posix.endswith((".dist-info/INSTALLER", ".dist-info/REQUESTED", ".dist-info/direct_url.json")):
            continue
        path = Path(str(dist.locate_file(entry)))
        if path.is_file():
            files[posix] = path.read_bytes()
    if not dist_info:
        raise AddonBuildError(f"{name} {version} has no RECORD; reinstall it with pip")
    return Wheel(f"{name}-{version}-{tags[0]}.whl", _wheel_bytes(files, dist_info))


# ---- the extension zip ----------------------------------------------------------------------------------------
def _manifest_text(source: Path, wheels: list[Wheel], platforms: list[str]) -> str:
    text = (source / "blender_manifest.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    for key in GENERATED_MANIFEST_KEYS:
        if key in data:
            raise AddonBuildError(f"{source}/blender_manifest.toml must not set {key!r}: the build writes it")
    wheel_list = ", ".join(f'"./wheels/{w.filename}"' for w in wheels)
    extra = f"\n# Written by `farm addon build`.\nwheels = [{wheel_list}]\n"
    if platforms:
        extra += "platforms = [" + ", ".join(f'"{p}"' for p in platforms) + "]\n"
    # Top-level keys must come before any [table] of the manifest.
    head, sep, tail = text.partition("\n[")
    return head.rstrip("\n") + "\n" + extra + (sep + tail if sep else "")


def build_addon(out_dir: Path) -> Path:
    """Build ``render_farm-<version>-<platform>.zip`` into ``out_dir`` and return its path."""
    source = addon_source_dir()
    version = str(tomllib.loads((source / "blender_manifest.toml").read_text(encoding="utf-8"))["version"])
    wheels = [client_wheel(version), *(repack(d) for d in third_party_distributions())]
    platforms = [] if all(w.pure for w in wheels) else [blender_platform()]
    suffix = platforms[0] if platforms else "any"
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{ADDON_ID}-{version}-{suffix}.zip"
    tmp = target.with_name(f".{target.name}.part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(_zip_info("blender_manifest.toml"), _manifest_text(source, wheels, platforms))
        for path in sorted(source.rglob("*")):
            rel = path.relative_to(source).as_posix()
            if not path.is_file() or rel == "blender_manifest.toml" or "__pycache__" in rel or rel.endswith(".pyc"):
                continue
            archive.writestr(_zip_info(rel), path.read_bytes())
        for wheel in wheels:
            archive.writestr(_zip_info(f"wheels/{wheel.filename}"), wheel.data)
    tmp.replace(target)
    return target


# ---- install --------------------------------------------------------------------------------------------------
def find_blender(explicit: Path | None = None) -> Path | None:
    """``explicit``, else ``blender`` on PATH, else the usual install locations of this OS."""
    if explicit is not None:
        return explicit if explicit.is_file() else None
    on_path = shutil.which("blender")
    if on_path:
        return Path(on_path)
    candidates = [
        Path("/Applications/Blender.app/Contents/MacOS/Blender"),
        Path("/snap/bin/blender"),
        Path("/usr/bin/blender"),
        Path("/usr/local/bin/blender"),
    ]
    program_files = Path("C:/Program Files/Blender Foundation")
    if sys.platform == "win32" and program_files.is_dir():
        candidates.extend(sorted(program_files.glob("Blender*/blender.exe"), reverse=True))
    return next((c for c in candidates if c.is_file()), None)


def install_command(blender: Path, zip_path: Path) -> list[str]:
    """Blender's own command line that installs and enables an extension zip in the user repository."""
    return [
        str(blender),
        "--command",
        "extension",
        "install-file",
        "--repo",
        "user_default",
        "--enable",
        str(zip_path),
    ]


MANUAL_INSTALL = (
    "In Blender 4.2 or newer: Edit > Preferences > Get Extensions, open the menu at the top right (v), "
    "choose 'Install from Disk...' and pick {zip}. Then set the farm URL and token in the add-on's preferences."
)


# ---- commands -------------------------------------------------------------------------------------------------
addon_app = typer.Typer(help="The Blender add-on: build its zip, install it into Blender.", no_args_is_help=True)


@addon_app.command("build")
def build_cmd(
    out_dir: Annotated[Path, typer.Option("--out", help="folder for the zip")] = Path("dist"),
) -> None:
    """Build the add-on into an installable Blender extension zip."""
    try:
        target = build_addon(out_dir)
    except AddonBuildError as exc:
        out.error(str(exc))
        raise typer.Exit(2) from exc
    out.line(f"built {target} ({target.stat().st_size} bytes)")


@addon_app.command("install")
def install_cmd(
    blender: Annotated[Path | None, typer.Option(help="the Blender executable (default: the one found here)")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="folder for the zip")] = Path("dist"),
) -> None:
    """Build the add-on and install it into Blender's user extensions, enabled."""
    try:
        target = build_addon(out_dir)
    except AddonBuildError as exc:
        out.error(str(exc))
        raise typer.Exit(2) from exc
    found = find_blender(blender)
    if found is None:
        where = f"no Blender at {blender}" if blender is not None else "no Blender found on PATH"
        out.error(f"{where}; pass --blender PATH, or install the zip by hand. " + MANUAL_INSTALL.format(zip=target))
        raise typer.Exit(1)
    result = subprocess.run(install_command(found, target), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        out.plain(result.stdout + result.stderr)
        out.error(f"{found} could not install {target}. " + MANUAL_INSTALL.format(zip=target))
        raise typer.Exit(1)
    out.line(f"installed {target} into {found}; set the farm URL and token in the add-on's preferences")


def register(app: typer.Typer) -> None:
    """Add ``farm addon ...`` to the CLI."""
    app.add_typer(addon_app, name="addon")
