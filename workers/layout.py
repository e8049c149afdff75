"""A job's private input folder on a worker: laid out with verified copies, audited after every chunk.

Isolation comes from separate inodes: every file here is a copy whose bytes were hashed while copying and
matched the manifest's sha256, so no write into this folder reaches the node cache, the object store or another
job. The audit after each chunk keeps the job's own later chunks honest too: whatever a render wrote or changed
inside the input folder (a compositor File Output node writing ``//textures/x.png``, a script saving the .blend)
is discarded, named in the attempt's log, and restored from the cache before the next chunk.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farm.domain.inputs import input_owner
from farm.errors import StorageError
from storage.base import ObjectStore
from workers.cache import BlobCache, copy_verified, remove_tree

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stamp:
    """What a laid-out file looked like right after the copy; any difference means something wrote to it."""

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> Stamp:
        st = os.lstat(path)
        return cls(st.st_size, st.st_mtime_ns, st.st_ino)


@dataclass(frozen=True)
class AuditReport:
    """What a chunk did to its inputs: files it created (deleted now) and inputs it changed or removed."""

    created: list[str]
    changed: list[str]

    @property
    def clean(self) -> bool:
        return not self.created and not self.changed

    def describe(self) -> str:
        """One line for the attempt's log."""
        parts = []
        if self.changed:
            parts.append(f"inputs changed by the render, restored from the cache: {', '.join(self.changed[:20])}")
        if self.created:
            more = f" and {len(self.created) - 20} more" if len(self.created) > 20 else ""
            parts.append(f"files written outside the output folder, discarded: {', '.join(self.created[:20])}{more}")
        return "farm: " + "; ".join(parts)


class JobFolder:
    """``<root>/input`` holds the manifest's files; ``<root>/output/<task>`` what chunks render."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.input = self.root / "input"
        self._stamps: dict[str, Stamp] = {}

    def prepare(
        self, cache: BlobCache, store: ObjectStore, company: str, manifest: Mapping[str, Mapping[str, Any]]
    ) -> None:
        """Make the input folder hold exactly the manifest's bytes (first chunk: the whole layout; later chunks:
        only what is missing or no longer matches its stamp)."""
        self.input.mkdir(parents=True, exist_ok=True)
        copied = False
        for rel, entry in manifest.items():
            dest = self.input / rel
            stamp = self._stamps.get(rel)
            try:
                if stamp is not None and Stamp.of(dest) == stamp:
                    continue
            except FileNotFoundError:
                pass
            self._copy_in(cache, store, input_owner(company, entry), str(entry["sha256"]), dest)  # issue 20
            self._stamps[rel] = Stamp.of(dest)
            copied = True
        if copied:  # disk use only grew if something was copied in
            cache.evict()

    @staticmethod
    def _copy_in(cache: BlobCache, store: ObjectStore, company: str, sha: str, dest: Path) -> None:
        if dest.is_dir() and not dest.is_symlink():
            remove_tree(dest)  # a render made a folder where an input goes
        for _ in range(2):
            src = cache.ensure(store, company, sha, evict=False)
            if copy_verified(src, dest) == sha:
                return
            # Something changed the cache entry after it was verified: never hand those bytes to a render.
            cache.drop(sha)
        dest.unlink(missing_ok=True)
        raise StorageError(f"blob {sha} does not match its hash even after fetching it again")

    def audit(self) -> AuditReport:
        """Compare the input folder with what was laid out: delete what the render created, forget what it
        changed (``prepare`` restores it)."""
        created: list[str] = []
        changed: list[str] = []
        seen: set[str] = set()
        if not self.input.exists():
            return AuditReport([], sorted(self._stamps))
        for dirpath, dirnames, filenames in os.walk(self.input):
            for name in filenames:
                path = Path(dirpath) / name
                rel = path.relative_to(self.input).as_posix()
                stamp = self._stamps.get(rel)
                if stamp is None:
                    created.append(rel)
                    path.unlink(missing_ok=True)
                    continue
                seen.add(rel)
                try:
                    if Stamp.of(path) != stamp:
                        changed.append(rel)
                        path.unlink(missing_ok=True)
                        del self._stamps[rel]
                except FileNotFoundError:
                    pass
            for name in list(dirnames):
                sub = Path(dirpath) / name
                if sub.is_symlink():
                    created.append(sub.relative_to(self.input).as_posix())
                    sub.unlink(missing_ok=True)
                    dirnames.remove(name)
        for rel in set(self._stamps) - seen:
            changed.append(rel)  # deleted or moved away by the render
            del self._stamps[rel]
        report = AuditReport(sorted(created), sorted(changed))
        if not report.clean:
            log.warning("job folder %s: %s", self.root.name, report.describe())
        return report

    def remove(self) -> None:
        """Delete the whole folder (the job ended, or the worker starts afresh)."""
        remove_tree(self.root)
        self._stamps.clear()


def hide_node_paths(text: str, places: list[tuple[Path, str]]) -> str:
    """``text`` with this node's folders named by what they are (``<job folder>/input/tex.png``), for reasons the
    studio reads: the farm's own layout is none of its business. The first place that matches wins, so list the
    deepest first."""
    for path, name in places:
        text = text.replace(str(path), name)
    return text
