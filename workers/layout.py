"""A job's private input folder on a worker: laid out with verified copies, audited after every chunk.

Isolation comes from separate inodes: every file here is a copy whose bytes were hashed while copying and
matched the manifest's sha256, so no write into this folder reaches the node cache, the object store or another
job. The audit after each chunk keeps the job's own later chunks honest too: whatever a render wrote or changed
inside the input folder (a compositor File Output node writing ``//textures/x.png``, a script saving the .blend)
is discarded, named in the attempt's log, and restored from the cache before the next chunk.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from farm.domain.inputs import input_owner
from farm.errors import StorageError
from storage.base import ObjectStore
from workers.cache import BlobCache, copy_verified, remove_tree

log = logging.getLogger(__name__)


class Stamp(NamedTuple):
    """What a laid-out file looked like right after the copy; any difference means something wrote to it."""

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, path: str | Path) -> Stamp:
        return cls.from_stat(os.lstat(path))

    @classmethod
    def from_stat(cls, st: os.stat_result) -> Stamp:
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
    """``<root>/input`` holds the manifest's files; ``<root>/output/chunk`` what the chunk being rendered renders."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.input = self.root / "input"
        self.output = self.root / "output"
        # Emptied before each chunk and reused by the next (``workers.cache.empty_folder``).
        self.chunk_output = self.output / "chunk"
        self._input = str(self.input)  # the per-chunk work below runs on strings: pathlib costs more than stat
        self._stamps: dict[str, Stamp] = {}

    def prepare(
        self, cache: BlobCache, store: ObjectStore, company: str, manifest: Mapping[str, Mapping[str, Any]]
    ) -> None:
        """Make the input folder hold exactly the manifest's bytes (first chunk: the whole layout; later chunks:
        only what is missing or no longer matches its stamp: one ``lstat`` per file)."""
        if not self._stamps:
            self.input.mkdir(parents=True, exist_ok=True)
        copied = False
        for rel, entry in manifest.items():
            stamp = self._stamps.get(rel)
            if stamp is not None:
                try:
                    if Stamp.of(os.path.join(self._input, rel)) == stamp:
                        continue
                except (FileNotFoundError, NotADirectoryError):
                    pass
            dest = self.input / rel
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
        changed (``prepare`` restores it). Every file is looked at, by one ``lstat`` (the stamp)."""
        created: list[str] = []
        changed: list[str] = []
        seen: set[str] = set()
        if not self._audit_folder(self._input, "", created, changed, seen):
            return AuditReport([], sorted(self._stamps))  # the input folder is gone: prepare lays it out again
        if len(seen) != len(self._stamps):  # some laid-out file was not found as it was
            for rel in set(self._stamps) - seen:
                changed.append(rel)  # deleted or moved away by the render
                del self._stamps[rel]
        report = AuditReport(sorted(created), sorted(changed))
        if not report.clean:
            log.warning("job folder %s: %s", self.root.name, report.describe())
        return report

    def _audit_folder(self, folder: str, prefix: str, created: list[str], changed: list[str], seen: set[str]) -> bool:
        """One folder of the audit (``prefix``: its path relative to the input folder, ending with ``/``); False
        when it is not there (removed, or something else in its place: its files count as missing)."""
        try:
            with os.scandir(folder) as scan:
                entries = list(scan)
        except (FileNotFoundError, NotADirectoryError):
            return False
        for entry in entries:
            rel = prefix + entry.name
            try:
                is_dir = entry.is_dir()  # follows a link, so that a link to a folder is caught below
            except OSError:
                is_dir = False
            if is_dir:
                if entry.is_symlink():
                    created.append(rel)  # never followed: it could lead anywhere
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                else:
                    self._audit_folder(entry.path, rel + "/", created, changed, seen)
                continue
            stamp = self._stamps.get(rel)
            if stamp is None:
                created.append(rel)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                continue
            try:
                now = Stamp.from_stat(entry.stat(follow_symlinks=False))
            except FileNotFoundError:
                continue  # removed while we looked: counted as missing
            if now == stamp:
                seen.add(rel)  # ``seen`` holds only files that are as laid out: the count check relies on it
                continue
            changed.append(rel)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
            del self._stamps[rel]
        return True

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
