"""Client-side packing: trace a .blend's dependencies with blender-asset-tracer (BAT) and hash them with a cache.

The tracing is BAT's own ``Packer`` with a transferer that records instead of copying, so the farm sees the
same layout a ``bat pack`` would produce:

* files inside the project folder keep their relative path;
* files outside it go under ``_outside_project/<absolute path without its root>``, and every .blend that
  refers to them (the scene, or a linked library) is rewritten in a temporary copy to point there;
* absolute paths to files inside the project are rewritten to relative ones the same way;
* a relative path that leaves the project folder and comes back in (``//../<project folder>/x.png``) works
  only where the folders are named as here: its file keeps its project path and the .blend is rewritten
  (``//x.png``), since the job folder on the farm has another name (BAT alone would keep the detour);
* linked libraries are traced recursively, image sequences and caches expand to their files.

Nothing is copied unless a .blend needs rewriting; the copies live in a temporary folder that
``Pack.close()`` removes (after the upload).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import queue
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from farm.contract import ManifestEntry

log = logging.getLogger(__name__)
# BAT warns about each missing file on its own logger; the farm reports them itself (one message, with what to do),
# so with no logging configured (the CLI, the add-on) BAT's lines must not reach stderr as well.
logging.getLogger("blender_asset_tracer").addHandler(logging.NullHandler())

OUTSIDE_PROJECT = "_outside_project"
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class Pack:
    """What a job needs: files by their path relative to the project folder.

    ``files`` maps a manifest path to the local file to upload (a rewritten temporary copy for .blend files
    that referred to outside or absolute paths); ``missing`` lists referenced files that do not exist;
    ``outside`` the files that came from outside the project folder; ``rewritten`` the manifest paths whose
    local file is a rewritten temporary copy.
    """

    root: Path
    blend_rel: str
    files: dict[str, Path] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    outside: list[Path] = field(default_factory=list)
    rewritten: set[str] = field(default_factory=set)
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    def close(self) -> None:
        """Remove the temporary rewritten copies (call after the upload)."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Pack:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _patch_bat_nodetree_expander() -> None:
    """Follow material, light and world node trees in Blender 5 files (BAT 1.23 misses them).

    BAT 1.23 reads ``compositing_node_group`` instead of ``nodetree`` for every ID type in files from
    Blender 5.0 on, but only scenes renamed that field. In the main .blend every image block is visited
    anyway; in a linked library only what the linked objects use is, so without this its textures would be
    missed. Idempotent; a no-op for files that have neither field.
    """
    from blender_asset_tracer.trace import expanders

    if getattr(expanders, "_farm_patched", False):
        return

    def nodetree_id(block: Any) -> Any:
        ntree = block.get_pointer(b"nodetree", None)
        if ntree is None:
            ntree = block.get_pointer(b"compositing_node_group", None)
        if ntree is not None:
            yield from expanders._expand_generic_nodetree(ntree)

    expanders._expand_generic_nodetree_id = nodetree_id
    setattr(expanders, "_farm_patched", True)  # noqa: B010 - a module attribute mypy cannot know


def _recording_packer(blend: Path, root: Path, target: Path) -> Any:
    """A BAT ``Packer`` whose transfers are recorded as ``(source, destination)`` pairs, never performed."""
    from blender_asset_tracer.pack import Packer
    from blender_asset_tracer.pack.transfer import FileTransferer

    class Recorder(FileTransferer):
        def __init__(self) -> None:
            super().__init__()
            self.items: list[tuple[Path, PurePath]] = []

        def run(self) -> None:
            # BAT's own iter_queue() waits 0.5 s on an empty queue before it looks at `done`: that wait was
            # most of a small submit's time. Nothing is copied here, so poll briskly instead.
            while True:
                try:
                    src, dst, _action = self.queue.get(timeout=0.002)
                except queue.Empty:
                    if self.done.is_set():
                        return
                    continue
                self.items.append((Path(src), PurePath(dst)))

        def join(self, timeout: float | None = None) -> None:
            # BAT's join() flushes progress with a 0.5 s wait per loop; this thread reports no progress.
            threading.Thread.join(self, timeout)
            self.progress_cb.flush()

    class RecordingPacker(Packer):
        recorder: Recorder | None = None

        def _create_file_transferer(self) -> Recorder:
            self.recorder = Recorder()
            return self.recorder

        def strategise(self) -> None:
            super().strategise()
            _rewrite_detours(self)

    return RecordingPacker(blend, root, str(target))


def _rewrite_detours(packer: Any) -> None:
    """Rewrite every relative path that would not find its file in the packed layout.

    BAT keeps a ``//`` path as it is when the file it names lies inside the project, but a path such as
    ``//../<project folder>/textures/x.png`` only finds its file when the folders around the project are
    named as on this machine: on the farm the job folder has another name, and Blender renders the missing
    texture magenta. The same happens to a .blend that BAT moves under ``_outside_project`` (a linked library
    outside the project) when it names a file inside the project relatively. So after BAT's plan, each kept
    path is resolved from where its .blend will be in the pack; where that is not where the file will be,
    the .blend gets the path rewritten (``//textures/x.png``), the same rewrite BAT does for outside files.
    """
    from blender_asset_tracer import bpathlib
    from blender_asset_tracer.pack import PathAction

    actions = packer._actions
    for action in list(actions.values()):
        if action.path_action is not PathAction.KEEP_PATH or action.new_path is None:
            continue  # BAT rewrites every use of a file it moves
        for usage in action.usages:
            if not usage.asset_path.is_blendfile_relative():
                continue
            blend = actions.get(bpathlib.make_absolute(usage.block.bfile.filepath))
            if blend is None or blend.new_path is None:
                continue
            packed_dir = bpathlib.BlendPath(blend.new_path.parent)  # type: ignore[no-untyped-call]
            resolved = bpathlib.make_absolute(Path(usage.asset_path.absolute(packed_dir).to_path()))
            if resolved == bpathlib.make_absolute(action.new_path):
                continue
            log.info(
                "%s: %s would miss its file in the job folder; rewritten",
                usage.block.bfile.filepath,
                usage.asset_path,
            )
            blend.rewrites.append(usage)


def trace(blend: Path, root: Path | None = None) -> Pack:
    """The .blend plus every file it references that exists; missing ones are listed, not fatal.

    ``root`` is the project folder (default: the folder of the .blend); the .blend must be inside it.
    """
    from blender_asset_tracer import blendfile

    _patch_bat_nodetree_expander()
    blend = Path(os.path.abspath(blend))
    root = Path(os.path.abspath(root or blend.parent))
    try:
        blend_rel = blend.relative_to(root).as_posix()
    except ValueError as exc:
        raise ValueError(f"{blend} is not inside the project folder {root}") from exc
    # A target that exists nowhere: only its shape matters, paths under it become manifest paths.
    target = Path("/farm-pack-target")
    pack = Pack(root=root, blend_rel=blend_rel)
    tmp = tempfile.TemporaryDirectory(prefix="farm-pack-")
    pack._tmp = tmp
    packer = _recording_packer(blend, root, target)
    try:
        packer.strategise()
        packer.execute()
        recorder = packer.recorder
        assert recorder is not None
        rewrite_dir = Path(packer._rewrite_in)
        # A rewritten copy stands for its original, which may lie outside the project (a linked library).
        originals = {Path(a.read_from): Path(path) for path, a in packer._actions.items() if a.read_from}
        for src, dst in recorder.items:
            rel = PurePath(dst).relative_to(target).as_posix()
            if rel == "pack-info.txt" and src.parent == rewrite_dir:
                continue  # BAT's note for humans opening a pack
            if src.parent == rewrite_dir:
                # A rewritten .blend: keep our own copy, BAT removes its temp folder on close.
                local = Path(tmp.name) / rel
                local.parent.mkdir(parents=True, exist_ok=True)
                _deterministic_copy(src, local)
                pack.rewritten.add(rel)
            else:
                local = src
            original = originals.get(src, src)
            if not _inside(original, root):
                pack.outside.append(original)
            pack.files[rel] = local
        pack.missing = sorted(str(p) for p in packer.missing_files)
    except BaseException:
        pack.close()
        raise
    finally:
        packer.close()
        # BAT caches opened .blend files process-wide; a later trace must see files changed since.
        blendfile.close_all_cached()
    pack.files.setdefault(blend_rel, blend)
    if pack.outside:
        log.info("%d file(s) outside %s packed under %s/", len(pack.outside), root, OUTSIDE_PROJECT)
    return pack


def _inside(path: Path, root: Path) -> bool:
    try:
        Path(os.path.abspath(path)).relative_to(root)
    except ValueError:
        return False
    return True


def _deterministic_copy(src: Path, dest: Path) -> None:
    """Copy a rewritten .blend so that the same rewrite gives the same bytes (and the same sha256).

    BAT re-compresses a rewritten compressed .blend with gzip, whose header records the time and the
    temporary file name: rewritten without either, an unchanged scene hashes the same on every submit.
    """
    with src.open("rb") as handle:
        compressed = handle.read(2) == _GZIP_MAGIC
    if not compressed:
        shutil.copyfile(src, dest)
        return
    with gzip.open(src, "rb") as raw, dest.open("wb") as out:
        with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6) as gz:
            shutil.copyfileobj(raw, gz, 1024 * 1024)


def cache_path() -> Path:
    """Where the hash cache lives: ``$XDG_CACHE_HOME/render-farm/hashes.json``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "render-farm" / "hashes.json"


class HashCache:
    """sha256 of files keyed by (path, size, mtime): a resubmit does not rehash unchanged files.

    ``hashed_bytes`` counts the bytes actually read, so callers (and tests) can see what the cache saved.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_path()
        try:
            self.entries: dict[str, list[object]] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}
        self.hashed_bytes = 0

    def sha256(self, path: Path, remember: bool = True) -> tuple[str, int]:
        """``(hex sha256, size)``; ``remember=False`` for temporary files that will never be seen again."""
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
        if remember:
            self.entries[key] = [st.st_size, st.st_mtime_ns, digest.hexdigest()]
        return digest.hexdigest(), st.st_size

    def save(self) -> None:
        """Write the cache atomically; a failure only costs rehashing next time."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.entries))
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("could not save the hash cache %s: %s", self.path, exc)


def manifest(pack: Pack, cache: HashCache) -> dict[str, ManifestEntry]:
    """``{relative path: {sha256, size}}`` for every file of the pack."""
    out: dict[str, ManifestEntry] = {}
    for rel, path in sorted(pack.files.items()):
        sha, size = cache.sha256(path, remember=rel not in pack.rewritten)
        out[rel] = ManifestEntry(sha256=sha, size=size)
    cache.save()
    return out
