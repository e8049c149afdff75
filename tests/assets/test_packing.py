"""Dependency packing with BAT: outside files, absolute paths, linked libraries, sequences, the hash cache."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from farm.client.packing import OUTSIDE_PROJECT, HashCache, manifest, trace
from tests.assets.helpers import build_blend, texture


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project using every kind of reference; returns its scene.blend."""
    base = tmp_path_factory.mktemp("packing")
    proj, outside = base / "proj", base / "outside"
    texture(proj / "textures" / "inside.png", (0, 255, 0))
    texture(proj / "textures" / "absolute.png", (0, 0, 255))
    texture(outside / "far.png", (255, 0, 0))
    texture(proj / "lib" / "libtex.png", (255, 255, 0))
    for i in range(1, 4):
        texture(proj / "seq" / f"img_{i:04d}.png", (i * 60, 0, 0))
    build_blend(proj / "lib" / "lib.blend", ["//libtex.png"], object_name="LibPlane")
    return build_blend(
        proj / "scene.blend",
        [
            "//textures/inside.png",
            str(proj / "textures" / "absolute.png"),
            str(outside / "far.png"),
            "//textures/missing.png",
            {"path": "//seq/img_0001.png", "sequence": True},
        ],
        library="//lib/lib.blend",
    )


def test_every_kind_of_reference_lands_in_the_manifest(project: Path) -> None:
    proj = project.parent
    with trace(project) as pack:
        files = set(pack.files)
        outside_far = f"{OUTSIDE_PROJECT}/{(proj.parent / 'outside' / 'far.png').as_posix().lstrip('/')}"
        assert {
            "scene.blend",
            "textures/inside.png",
            "lib/lib.blend",
            "lib/libtex.png",  # a texture of the linked library, traced through it
            "seq/img_0001.png",
            "seq/img_0002.png",
            "seq/img_0003.png",
            outside_far,
        } <= files
        # BAT rewrites absolute paths, even inside the project, and moves their files under _outside_project.
        assert any(p.startswith(OUTSIDE_PROJECT) and p.endswith("absolute.png") for p in files)
        assert pack.outside == [proj.parent / "outside" / "far.png"]
        assert pack.missing == [str(proj / "textures" / "missing.png")]
        # The scene refers to outside files, so the manifest carries a rewritten copy, not the original.
        assert pack.rewritten == {"scene.blend"}
        copy = pack.files["scene.blend"]
        assert copy != project and copy.exists()
        data = _blend_bytes(copy)
        assert f"//{outside_far}".encode() in data
        assert str(proj.parent / "outside").encode() not in data.replace(f"//{outside_far}".encode(), b"")
    assert not copy.exists()  # closing the pack removes the copy


def _blend_bytes(path: Path) -> bytes:
    import gzip

    raw = path.read_bytes()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def test_a_rewrite_of_an_unchanged_scene_has_the_same_hash(project: Path) -> None:
    digests = []
    for _ in range(2):
        with trace(project) as pack:
            digests.append(hashlib.sha256(pack.files["scene.blend"].read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_the_hash_cache_rehashes_only_changed_files(project: Path, tmp_path: Path) -> None:
    cache_file = tmp_path / "hashes.json"
    with trace(project) as pack:
        first = HashCache(cache_file)
        entries = manifest(pack, first)
        total = sum(e.size for e in entries.values())
        rewritten = entries["scene.blend"].size
        assert first.hashed_bytes == total

        again = HashCache(cache_file)
        assert manifest(pack, again) == entries
        # Only the temporary rewritten .blend is read again (it is never remembered); textures are not.
        assert again.hashed_bytes == rewritten

    changed = project.parent / "textures" / "inside.png"
    texture(changed, (0, 128, 0), size=16)
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 1_000_000))
    with trace(project) as pack:
        third = HashCache(cache_file)
        entries3 = manifest(pack, third)
    assert third.hashed_bytes == rewritten + changed.stat().st_size
    assert entries3["textures/inside.png"] != entries["textures/inside.png"]
