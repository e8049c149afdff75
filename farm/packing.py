"""Client-side packing: trace a .blend's dependencies (blender-asset-tracer) and hash them with a cache."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from farm.contract import ManifestEntry

log = logging.getLogger(__name__)


@dataclass
class Pack:
    """What a job needs: files by their path relative to the project folder."""

    root: Path
    blend_rel: str
    files: dict[str, Path] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    outside: list[Path] = field(default_factory=list)


def trace(blend: Path, root: Path | None = None) -> Pack:
    """The .blend plus every file it references that exists; missing ones are listed, not fatal."""
    from blender_asset_tracer import trace as bat_trace

    blend = blend.resolve()
    root = (root or blend.parent).resolve()
    pack = Pack(root=root, blend_rel=blend.relative_to(root).as_posix())
    pack.files[pack.blend_rel] = blend
    for usage in bat_trace.deps(blend):
        for path in _usage_files(usage):
            absolute = Path(os.path.normpath(path))
            if not absolute.exists():
                pack.missing.append(str(usage.asset_path))
                continue
            try:
                rel = absolute.resolve().relative_to(root).as_posix()
            except ValueError:
                pack.outside.append(absolute)
                continue
            pack.files[rel] = absolute
    pack.missing = sorted(set(pack.missing))
    return pack


def _usage_files(usage: object) -> Iterable[Path]:
    try:
        return list(usage.files())  # type: ignore[attr-defined]
    except (OSError, ValueError):
        return [Path(str(usage.abspath))]  # type: ignore[attr-defined]


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "render-farm" / "hashes.json"


class HashCache:
    """sha256 of files keyed by (path, size, mtime): a resubmit does not rehash unchanged files."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_path()
        try:
            self.entries: dict[str, list[object]] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}
        self.hashed_bytes = 0

    def sha256(self, path: Path) -> tuple[str, int]:
        st = path.stat()
        key = str(path.resolve())
        cached = self.entries.get(key)
        if cached and cached[0] == st.st_size and cached[1] == st.st_mtime_ns:
            return str(cached[2]), st.st_size
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while block := handle.read(1024 * 1024):
                digest.update(block)
        self.hashed_bytes += st.st_size
        self.entries[key] = [st.st_size, st.st_mtime_ns, digest.hexdigest()]
        return digest.hexdigest(), st.st_size

    def save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.entries))
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("could not save the hash cache %s: %s", self.path, exc)


def manifest(pack: Pack, cache: HashCache) -> dict[str, ManifestEntry]:
    """``{relative path: {sha256, size}}`` for every file of the pack."""
    out: dict[str, ManifestEntry] = {}
    for rel, path in sorted(pack.files.items()):
        sha, size = cache.sha256(path)
        out[rel] = ManifestEntry(sha256=sha, size=size)
    cache.save()
    return out
