"""A chunk's files on a worker, attacked without Ray or Blender (the renderer seam takes a scripted renderer):
every stored frame is a whole file holding the bytes the renderer wrote and its row's sha256; nothing of an earlier
attempt can pass for a frame; a frame that is a link is copied, never moved into the store; the audit of the input
folder catches what a render wrote there; a reason never shows the node's folders; and the local store's
temporary files never collide, across threads or with the leftovers of an earlier process.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import storage.local
from farm.domain.attempts import Assignment, AttemptFacts, Outcome
from farm.domain.outputs import DEFAULT_TEMPLATE, frame_name
from farm.errors import StorageError
from storage.base import blob_key, output_key
from storage.factory import StoreConfig
from storage.local import LocalDirStore
from workers.actor import RenderWorker, WorkerConfig
from workers.cache import remove_tree
from workers.renderer import ChunkResult, ChunkSpec, FrameCallback, FrameDone, ProgressCallback, StopCheck, tiny_png

NAME_7, NAME_8 = (frame_name(DEFAULT_TEMPLATE, frame=n, ext=".png") for n in (7, 8))
BLEND = b"BLENDER-v500 stand-in" * 50
TEXTURE = b"checker" * 100

Script = Callable[[ChunkSpec, FrameCallback], ChunkResult]


class ScriptedRenderer:
    """A ``Renderer`` whose chunk is whatever the test's script does with the spec and the frame callback."""

    def __init__(self, script: Script) -> None:
        self.script = script

    def warm(self) -> None:
        pass

    def kill(self) -> None:
        pass

    def close(self) -> None:
        pass

    def live_log(self) -> str:
        return ""

    def render(
        self, spec: ChunkSpec, on_frame: FrameCallback, on_progress: ProgressCallback, stopped: StopCheck
    ) -> ChunkResult:
        return self.script(spec, on_frame)


class Slot:
    """A worker with a local store, one job laid out (a .blend and a texture), and its chunks."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = LocalDirStore(root / "objects")
        self.manifest: dict[str, dict[str, object]] = {}
        for rel, data in (("scene.blend", BLEND), ("textures/checker.png", TEXTURE)):
            sha = hashlib.sha256(data).hexdigest()
            src = root / f"src-{sha}"
            src.write_bytes(data)
            self.store.put_file(blob_key("co", sha), src)
            self.manifest[rel] = {"sha256": sha, "size": len(data)}
        self.worker = RenderWorker(
            WorkerConfig(
                name="slot",
                store=StoreConfig(backend="local", root=str(root / "objects")),
                cache_dir=str(root / "cache"),
                cache_bytes=10**9,
                work_dir=str(root / "work"),
                renderer="sleep:0",
            )
        )
        self.job = root / "work" / "slot" / "jobs" / "job"

    def render(self, frame: int, attempt: int = 1) -> AttemptFacts:
        return self.worker.render(
            Assignment("job", f"job-t{frame}", attempt, "co", "scene.blend", dict(self.manifest), [frame], {})
        )

    def stored(self, name: str) -> Path:
        return self.store.root / output_key("co", "job", name)


@pytest.fixture
def slot(tmp_path: Path) -> Iterator[Slot]:
    s = Slot(tmp_path)
    yield s
    s.worker.close()


def test_frames_are_stored_whole_with_their_hash_and_nothing_is_left_behind(slot: Slot) -> None:
    for frame in range(1, 6):
        facts = slot.render(frame)
        assert facts.outcome is Outcome.COMPLETED, facts.reason
        (row,) = facts.frames
        data = slot.stored(row.name).read_bytes()
        assert data == tiny_png(4, 4, frame)  # the bytes the stand-in renderer wrote for this frame
        assert (row.size, row.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        st = os.lstat(slot.stored(row.name))
        assert st.st_nlink == 1 and not os.path.islink(slot.stored(row.name))  # the store's own inode
        output = slot.job / "output" / "chunk"
        assert not list(output.iterdir())  # the frame was moved out of the reused folder: nothing is left
    assert not list((slot.store.root / ".tmp").iterdir())  # no temporary file of the store left


def test_nothing_of_an_earlier_attempt_passes_for_a_frame(slot: Slot, tmp_path: Path) -> None:
    """An earlier attempt left frame 7 (and more) in the chunk's output folder; this attempt's renderer says it
    wrote frame 7 but did not: the chunk fails, nothing is stored, and the reason names no folder of the node."""
    assert slot.render(1).outcome is Outcome.COMPLETED  # the job folder exists
    output = slot.job / "output" / "chunk"
    output.mkdir(parents=True, exist_ok=True)
    (output / NAME_7).write_bytes(b"STALE frame of an earlier attempt")
    (output / "sub").mkdir()
    (output / "sub" / "more.png").write_bytes(b"stale")

    def claims_without_writing(spec: ChunkSpec, on_frame: FrameCallback) -> ChunkResult:
        assert spec.out_dir == output and output.is_dir() and not any(output.rglob("*.png"))  # emptied before
        on_frame(FrameDone(7, spec.output_path(7), 0.0, "CPU"))
        return ChunkResult(outcome=Outcome.COMPLETED, frames=[7])

    slot.worker.renderer = ScriptedRenderer(claims_without_writing)
    facts = slot.render(7, attempt=2)
    assert facts.outcome is Outcome.FAILED and not facts.frames
    assert not slot.stored(NAME_7).exists()
    assert str(tmp_path) not in str(facts.reason), facts.reason

    assert not any(p.is_file() for p in output.rglob("*"))  # and left with no file for the next chunk

    # The output folder a link to a folder elsewhere holding a stale frame: the link goes, the folder it led to
    # is left alone, and the frame stored is the one rendered now.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / NAME_8).write_bytes(b"STALE")
    remove_tree(output)
    output.symlink_to(elsewhere, target_is_directory=True)
    slot.worker.renderer = ScriptedRenderer(write_frames(tiny=True))
    facts = slot.render(8)
    assert facts.outcome is Outcome.COMPLETED, facts.reason
    assert slot.stored(NAME_8).read_bytes() == tiny_png(4, 4, 8)
    assert (elsewhere / NAME_8).read_bytes() == b"STALE"
    assert not output.is_symlink() and output.is_dir()  # the link was replaced by a folder of its own


def write_frames(tiny: bool = False, link_to: Path | None = None, symlink: bool = False) -> Script:
    """A renderer script writing each frame as a file, or as a hard link or a symbolic link to ``link_to``."""

    def script(spec: ChunkSpec, on_frame: FrameCallback) -> ChunkResult:
        spec.out_dir.mkdir(parents=True, exist_ok=True)
        for frame in spec.frames:
            path = spec.output_path(frame)
            if link_to is None:
                path.write_bytes(tiny_png(4, 4, frame) if tiny else os.urandom(64))
            elif symlink:
                path.symlink_to(link_to)
            else:
                os.link(link_to, path)
            on_frame(FrameDone(frame, path, 0.0, "CPU"))
        return ChunkResult(outcome=Outcome.COMPLETED, frames=list(spec.frames))

    return script


@pytest.mark.parametrize("symlink", [False, True], ids=["hard link", "symbolic link"])
def test_a_frame_linked_to_another_file_is_copied_never_moved(slot: Slot, symlink: bool) -> None:
    """A scene that writes its frame as a link to one of its inputs: the store gets its own copy of the bytes, so
    the next write into the input does not reach the stored frame, and the input stays where it was."""
    assert slot.render(1).outcome is Outcome.COMPLETED
    texture = slot.job / "input" / "textures" / "checker.png"
    slot.worker.renderer = ScriptedRenderer(write_frames(link_to=texture, symlink=symlink))
    facts = slot.render(2)
    assert facts.outcome is Outcome.COMPLETED, facts.reason
    stored = slot.stored(facts.frames[0].name)
    assert not stored.is_symlink() and stored.stat().st_ino != texture.stat().st_ino
    assert stored.read_bytes() == TEXTURE and facts.frames[0].sha256 == hashlib.sha256(TEXTURE).hexdigest()
    with texture.open("r+b") as f:  # what the next chunk's File Output node would do
        f.write(b"POISON")
    assert stored.read_bytes() == TEXTURE


def test_the_audit_catches_what_a_render_wrote_into_its_inputs(slot: Slot, tmp_path: Path) -> None:
    assert slot.render(1).outcome is Outcome.COMPLETED
    inputs = slot.job / "input"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_bytes(b"not the farm's")

    def writes_into_inputs(spec: ChunkSpec, on_frame: FrameCallback) -> ChunkResult:
        with (inputs / "scene.blend").open("r+b") as f:  # in place: same inode, same size
            f.write(b"SAVED!")
        (inputs / "textures" / "checker.png").unlink()
        (inputs / "textures" / "new").mkdir()
        (inputs / "textures" / "new" / "aImage.png").write_bytes(b"File Output node")
        (inputs / "linked").symlink_to(outside, target_is_directory=True)
        return write_frames()(spec, on_frame)

    slot.worker.renderer = ScriptedRenderer(writes_into_inputs)
    facts = slot.render(2)
    assert facts.outcome is Outcome.COMPLETED, facts.reason
    assert "scene.blend" in facts.log_tail and "textures/checker.png" in facts.log_tail, facts.log_tail
    assert "textures/new/aImage.png" in facts.log_tail and "linked" in facts.log_tail
    assert not (inputs / "linked").exists() and (outside / "keep.txt").read_bytes() == b"not the farm's"
    assert not (inputs / "textures" / "new" / "aImage.png").exists()

    seen: list[bytes] = []

    def reads_inputs(spec: ChunkSpec, on_frame: FrameCallback) -> ChunkResult:
        assert spec.reload  # the .blend is opened again: its inputs were restored
        seen.extend([(inputs / "scene.blend").read_bytes(), (inputs / "textures" / "checker.png").read_bytes()])
        return write_frames()(spec, on_frame)

    slot.worker.renderer = ScriptedRenderer(reads_inputs)
    facts = slot.render(3)
    assert facts.outcome is Outcome.COMPLETED and "farm:" not in facts.log_tail, facts.log_tail
    assert seen == [BLEND, TEXTURE]


def test_a_reason_never_shows_the_nodes_folders(slot: Slot, tmp_path: Path) -> None:
    def fails(spec: ChunkSpec, on_frame: FrameCallback) -> ChunkResult:
        return ChunkResult(Outcome.FAILED, 1, reason=f"cannot read {spec.blend_path} (cache {tmp_path / 'cache'})")

    slot.worker.renderer = ScriptedRenderer(fails)
    facts = slot.render(1)
    assert facts.outcome is Outcome.FAILED
    assert facts.reason == "cannot read <job folder>/input/scene.blend (cache <cache>)"


def test_the_local_store_moves_a_file_whole_and_copies_across_file_systems(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path / "objects")
    frame = tmp_path / "frame.png"
    frame.write_bytes(b"rendered")
    store.move_file("outputs/co/job/frame.png", frame)
    assert not frame.exists() and store.local_path("outputs/co/job/frame.png").read_bytes() == b"rendered"
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second file system here")
    other = Path(os.environ.get("TMPDIR_SHM", shm)) / f"farm-test-{os.getpid()}.png"
    other.write_bytes(b"elsewhere")
    try:
        store.move_file("outputs/co/job/other.png", other)
        assert store.local_path("outputs/co/job/other.png").read_bytes() == b"elsewhere"
        assert not list((store.root / ".tmp").iterdir())
    finally:
        other.unlink(missing_ok=True)


def test_a_frame_swapped_for_a_link_between_the_check_and_the_move_is_not_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The frame file passes the check (a regular file, one link), then is replaced by a link to another company's
    input just before the rename: what arrives is refused and removed, never served as the frame."""
    store = LocalDirStore(tmp_path / "objects")
    secret = tmp_path / "other-company-input.blend"
    secret.write_bytes(b"another company's texture")
    frame = tmp_path / "frame.png"
    frame.write_bytes(b"rendered")
    replace = os.replace

    def swap_then_replace(src: str | Path, dst: str | Path) -> None:
        if Path(src) == frame:
            frame.unlink()
            frame.symlink_to(secret)
        replace(src, dst)

    monkeypatch.setattr(storage.local.os, "replace", swap_then_replace)
    with pytest.raises(StorageError, match="replaced while being stored"):
        store.move_file("outputs/co/job/frame.png", frame)
    assert store.local_path("outputs/co/job/frame.png") is None or not os.path.lexists(
        store.root / "outputs/co/job/frame.png"
    )
    assert secret.read_bytes() == b"another company's texture"


def test_temporary_names_never_collide(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight threads store into one store at once (some to the same keys), after an earlier process with this pid
    left temporaries under the names the counter gives first: every object holds one writer's whole bytes, the
    leftovers are untouched, and no temporary of this process is left."""
    store = LocalDirStore(tmp_path / "objects")
    monkeypatch.setattr(storage.local, "_NAMES", itertools.count())
    leftovers = [store.root / ".tmp" / f"{os.getpid()}-{n}.part" for n in range(3)]
    for path in leftovers:
        path.write_bytes(b"left by an earlier life")
    payloads = {t: os.urandom(200_000) for t in range(8)}
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        try:
            src = tmp_path / f"src-{t}"
            src.write_bytes(payloads[t])
            for i in range(30):
                store.put_file(f"outputs/co/job/shared-{i % 3}", src)
                store.put_file(f"outputs/co/job/own-{t}-{i}", src)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for t in range(8):
        for i in range(30):
            assert store.local_path(f"outputs/co/job/own-{t}-{i}").read_bytes() == payloads[t]
    for i in range(3):
        assert store.local_path(f"outputs/co/job/shared-{i}").read_bytes() in payloads.values()
    assert sorted((store.root / ".tmp").iterdir()) == sorted(leftovers)
    assert all(p.read_bytes() == b"left by an earlier life" for p in leftovers)
