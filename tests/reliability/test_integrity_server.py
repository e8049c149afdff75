"""Frame integrity of a whole farm under a full store and under crashes: `farm server` in a child process (real
Ray, real Blender), its local object store (``<data-dir>/objects``) on a 64 MiB tmpfs.

The farm promises that a chunk completes only when every one of its frames is stored (size and sha256 recorded),
that a store outage counts against neither the chunk nor the node (workers retry each upload for about 11 s, then
the chunk waits with a growing backoff), and that a restarted server requeues what was in flight. Each test attacks
one promise and then checks bytes, not statuses: every frame is in the job's output folder exactly once with no
leftovers, its recorded sha256 and size are those of the stored file (and of what the API serves), and its pixels
equal a clean render of the same frame made by the same farm before any fault (Blender writes render timing into
each PNG, so file hashes of two renders never match; ``pixels.pixel_digest`` compares pixels).

* ``test_store_full_for_a_minute_mid_chunk_loses_no_frame``: right after a chunk stored its first frame the store's
  disk is filled to the last page and kept full for a minute. Attacks the storage fault path: attempts must end
  with fault "storage", wait with a growing backoff, never fail the job nor blocklist the node, and the job must
  complete with every frame once the disk has room again.
* ``test_a_short_store_outage_is_absorbed_by_upload_retries``: the same, full for 3 s. Attacks the worker's upload
  retries: the outage must not even fail an attempt.
* ``test_farm_server_killed_three_times_mid_job``: SIGKILL of the server's whole process group three times while a
  job renders (each time after one more frame was stored), restart on the same data dir and port. Attacks
  ``Dispatcher.recover`` and re-rendering over frames already stored: nothing lost, nothing doubled, the admin
  token survives. Its frames are larger (320x240, 16 samples, about half a second each) so that kills land while
  a chunk renders; their clean reference is rendered by the same farm first.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from farm.client import FarmClient
from farm.contract import AttemptOut, JobOut
from farm.runtime.embedded import free_port
from tests.reliability.pixels import pixel_digest

pytestmark = [pytest.mark.ray, pytest.mark.blender]

STORE_BYTES = 64 * 1024 * 1024
REFERENCE_FRAMES = range(1, 13)  # the clean render covers the frames of every test
#: In the environment of every process a test server starts (Ray workers and Blender run in process groups of
#: their own): how leftovers of a killed server are found.
MARK = "INTEGRITY_TEST_FARM"
TERMINAL = frozenset({"completed", "failed", "canceled"})
#: What may sit next to the frames in a finished job's output folder (the preview movie, frame thumbnails).
ALLOWED_BESIDE_FRAMES = frozenset({"preview.mp4", "thumbs"})
FILLER_NAME = "integrity-test-filler"
PAGE = os.sysconf("SC_PAGE_SIZE")

T = TypeVar("T")


def wait_for(what: str, check: Callable[[], T], timeout: float, interval: float = 0.05) -> T:
    """``check()``'s first truthy value; AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout:g}s (last: {value!r})")
        time.sleep(interval)


class FarmServer:
    """``farm server`` as a child process in its own session, restartable on the same data dir and port."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "data"
        self.objects = self.data / "objects"
        self.log = base / "farm.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.mark = uuid.uuid4().hex
        self.token = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.pids: list[int] = []  # every server process started (each has its own Ray temp dir)
        self.reference: dict[int, str] = {}  # frame -> pixel digest of the clean render
        self.frame_room = 0  # bytes of store that hold one (or two) frames of the clean render
        # The real renderer: no FARM_RENDERER (nor any other FARM_ setting of the calling environment).
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
        self.env.update({"FARM_WRITE_CLI_CONFIG": "false", MARK: self.mark})

    def start(self, timeout: float = 180.0) -> None:
        """Start the server and wait for ``/readyz``; the admin token is read from the data dir."""
        farm_cli = Path(sys.executable).with_name("farm")
        with self.log.open("ab") as out:
            out.write(f"\n===== test: start {len(self.pids) + 1} of farm server =====\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [str(farm_cli), "server", "--data-dir", str(self.data), "--port", str(self.port), "--slots", "1"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pids.append(self.proc.pid)
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            assert code is None, f"farm server exited with {code}:\n{self.tail()}"
            assert time.monotonic() < deadline, f"farm server not ready after {timeout:g}s:\n{self.tail()}"
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.token = (self.data / "admin.token").read_text().strip()

    def client(self) -> FarmClient:
        return FarmClient(self.url, self.token)

    def kill(self) -> None:
        """SIGKILL the server's process group, then whatever it started in other groups (a crashed machine)."""
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self.proc = None
        self.reap()

    def stop(self) -> None:
        """SIGTERM (SIGKILL after 30 s), no process of the server left, Ray temp dirs removed."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=30)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
            self.proc = None
        self.reap()
        for pid in self.pids:
            shutil.rmtree(Path("/tmp") / f"farm-ray-{pid}", ignore_errors=True)

    def leftovers(self) -> list[int]:
        """Live processes that carry this server's mark in their environment."""
        needle = f"{MARK}={self.mark}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue  # gone, or a zombie
            if needle in environ.split(b"\0"):
                found.append(int(entry.name))
        return found

    def reap(self, timeout: float = 30.0) -> None:
        """SIGKILL every leftover (Ray workers, raylet, Blender) until none is left: the next start needs a clean
        machine, and a stray Blender must not upload into the store behind the new server's back."""
        deadline = time.monotonic() + timeout
        while pids := self.leftovers():
            assert time.monotonic() < deadline, f"processes of the killed server survive: {pids}"
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)

    def tail(self, chars: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    # ---- the store, read directly ------------------------------------------------------------------------
    def job_dir(self, job_id: str) -> Path | None:
        """``objects/outputs/<company>/<job>``, once the job stored something."""
        found = list((self.objects / "outputs").glob(f"*/{job_id}"))
        assert len(found) <= 1, f"job {job_id} has several output folders: {found}"
        return found[0] if found else None

    def stored_frame_files(self, job_id: str) -> list[str]:
        folder = self.job_dir(job_id)
        return sorted(p.name for p in folder.glob("frame_*.png")) if folder is not None else []

    def store_temporaries(self) -> list[str]:
        """Half-written objects of the local store (its ``.tmp`` folder), the filler aside."""
        tmp = self.objects / ".tmp"
        return sorted(p.name for p in tmp.iterdir() if p.name != FILLER_NAME) if tmp.is_dir() else []

    def worker_log_lines(self, *needles: str) -> list[str]:
        """Lines of the Ray worker logs of every start of this server that contain all ``needles``."""
        lines = []
        for pid in self.pids:
            for path in (Path("/tmp") / f"farm-ray-{pid}").glob("session_*/logs/worker-*"):
                for line in path.read_text(errors="replace").splitlines():
                    if all(n in line for n in needles):
                        lines.append(line)
        return lines


class StoreFiller:
    """Takes every free page of the store's tmpfs but ``leave`` bytes, and whatever frees up again at each
    ``top_up``, until it exits. The filler lives in the store's ``.tmp`` folder, which the store never lists."""

    def __init__(self, root: Path, leave: int = 0) -> None:
        self.root = root
        self.leave = leave
        self.path = root / ".tmp" / FILLER_NAME
        self.fd: int | None = None

    def __enter__(self) -> StoreFiller:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.top_up(self.leave)
        return self

    def top_up(self, leave: int = 0) -> None:
        assert self.fd is not None
        for size in (1024 * 1024, PAGE):
            block = b"\0" * size
            while self.free_bytes() - size >= leave:
                try:
                    os.write(self.fd, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break

    def filled(self) -> bool:
        """Top up; True when no byte is left free."""
        self.top_up()
        return self.free_bytes() == 0

    def free_bytes(self) -> int:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    def __exit__(self, *_exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        self.path.unlink(missing_ok=True)


def mount_tmpfs(path: Path, size: int) -> str:
    """Mount a tmpfs of ``size`` bytes at ``path``; returns why not ('' when mounted)."""
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return "" if done.returncode == 0 else (done.stderr.strip() or f"mount exited with {done.returncode}")


def unmount(path: Path) -> None:
    """Unmount, retrying while something still holds it; detach lazily as the last resort."""
    for _ in range(10):
        if subprocess.run(["umount", str(path)], capture_output=True, timeout=30).returncode == 0:
            return
        if not os.path.ismount(path):
            return
        time.sleep(0.5)
    subprocess.run(["umount", "-l", str(path)], check=True, timeout=30)


def attempts_of(client: FarmClient, job_id: str) -> list[tuple[int, AttemptOut]]:
    """(task index, attempt) for every attempt of the job."""
    return [(t.index, a) for t in client.tasks(job_id).tasks for a in t.attempts]


def describe(server: FarmServer, client: FarmClient | None, job_id: str) -> str:
    """What a failed assertion should show: the job, its attempts, the server's log tail."""
    parts = []
    if client is not None:
        try:
            parts.append(repr(client.job(job_id)))
            for index, a in attempts_of(client, job_id):
                parts.append(f"  task {index} attempt {a.number}: {a.status} fault={a.fault!r} reason={a.reason!r}")
            parts.append(f"frame rows: {sorted(f.frame for f in client.frames(job_id).frames)}")
        except Exception as exc:  # the server may be the thing that broke
            parts.append(f"(the API did not answer: {exc!r})")
    parts.append(f"stored frame files: {server.stored_frame_files(job_id)}")
    parts.append("---- farm server log (tail) ----\n" + server.tail())
    return "\n".join(parts)


def wait_job(server: FarmServer, client: FarmClient, job_id: str, timeout: float) -> JobOut:
    """The job once it reached a terminal status."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.job(job_id)
        if job.status.value in TERMINAL:
            return job
        assert time.monotonic() < deadline, f"job not done after {timeout:g}s\n{describe(server, client, job_id)}"
        time.sleep(0.2)


def wait_first_stored_frame(server: FarmServer, job_id: str, timeout: float = 120.0) -> list[str]:
    """Watch the store itself (faster than the API learns of it) until the job's first frame file is there."""
    deadline = time.monotonic() + timeout
    while not (files := server.stored_frame_files(job_id)):
        assert time.monotonic() < deadline, f"no frame stored after {timeout:g}s\n{describe(server, None, job_id)}"
        time.sleep(0.005)
    return files


def check_frames(
    server: FarmServer, client: FarmClient, job_id: str, frames: Iterable[int], reference: dict[int, str] | None
) -> dict[int, str]:
    """Every frame exactly once, in the store and in the frame rows, hashes matching bytes, pixels matching the
    clean render (when ``reference`` is given); returns each frame's pixel digest."""
    wanted = list(frames)
    rows = client.frames(job_id).frames
    assert sorted(r.frame for r in rows) == wanted, f"frame rows {[r.frame for r in rows]}, wanted {wanted}"
    folder = server.job_dir(job_id)
    assert folder is not None, f"job {job_id} has no output folder"
    entries = sorted(p.name for p in folder.iterdir())
    names = [f"frame_{n:06d}.png" for n in wanted]
    assert [e for e in entries if e.startswith("frame_")] == names, f"output folder holds {entries}"
    leftovers = [e for e in entries if not e.startswith("frame_") and e not in ALLOWED_BESIDE_FRAMES]
    assert not leftovers, f"unexpected files in the output folder {folder}: {leftovers}"
    digests = {}
    for row in rows:
        assert row.name == f"frame_{row.frame:06d}.png", row
        data = (folder / row.name).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (row.size, row.sha256), (
            f"frame {row.frame}: the row says size {row.size} sha256 {row.sha256}, the stored file has "
            f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}"
        )
        served = client.http.get(f"/api/v1/jobs/{job_id}/frames/{row.frame}", follow_redirects=True)
        assert served.status_code == 200, served.text
        assert served.content == data, f"frame {row.frame}: the API serves other bytes than the store holds"
        digests[row.frame] = pixel_digest(data)
        if reference is not None:
            assert digests[row.frame] == reference[row.frame], f"frame {row.frame}: pixels differ from the clean render"
    return digests


def check_backoff(attempts: list[tuple[int, AttemptOut]]) -> int:
    """After consecutive "storage" attempts a chunk waits 2, 4, 8 … 60 s before the next: checks the gaps, returns
    how many storage waits there were."""
    by_task: dict[int, list[AttemptOut]] = {}
    for index, a in attempts:
        by_task.setdefault(index, []).append(a)
    waits = 0
    for index, task_attempts in by_task.items():
        ordered = sorted(task_attempts, key=lambda a: a.number)
        streak = 0
        for before, after in zip(ordered, ordered[1:], strict=False):
            if before.fault != "storage":
                streak = 0
                continue
            streak += 1
            waits += 1
            assert before.ended_at is not None
            gap = (after.started_at - before.ended_at).total_seconds()
            expected = min(60.0, 2.0 * 2 ** (streak - 1))
            assert gap >= expected - 0.5, (
                f"task {index}: attempt {after.number} started {gap:.1f}s after storage failure {streak} of a row "
                f"(attempt {before.number}); the backoff is {expected:g}s"
            )
    return waits


def _timestamp(value: datetime | None) -> str:
    return value.isoformat(timespec="milliseconds") if value is not None else "-"


@pytest.fixture(scope="module")
def integrity_farm(tmp_path_factory: pytest.TempPathFactory, sample_blend: Path) -> Iterator[FarmServer]:
    """A farm server whose object store is a 64 MiB tmpfs, with a clean reference render of frames 1-12."""
    server = FarmServer(tmp_path_factory.mktemp("integrity"))
    server.objects.mkdir(parents=True)
    why = mount_tmpfs(server.objects, STORE_BYTES)
    if why:
        pytest.skip(f"needs a small tmpfs as the object store (root with CAP_SYS_ADMIN): mount failed: {why}")
    try:
        server.start()
        with server.client() as client:
            job = client.submit(sample_blend, "1-12", name="clean-reference", chunk_size=4).job
            done = wait_job(server, client, job.id, 240)
            assert done.status.value == "completed", describe(server, client, job.id)
            server.reference = check_frames(server, client, job.id, REFERENCE_FRAMES, None)
            largest = max(f.size for f in client.frames(job.id).frames)
        # The sample is animated: a frame rendered in another frame's place would be caught.
        assert len(set(server.reference.values())) > 1, "every frame of the sample has the same pixels"
        # Room for the largest frame (whose render timing text may be a few bytes longer next time) and a page.
        server.frame_room = (-(-(largest + 512) // PAGE) + 1) * PAGE
        yield server
    finally:
        try:
            server.stop()
        finally:
            unmount(server.objects)


def outage(
    server: FarmServer, client: FarmClient, submit: Callable[[], str], seconds: float, check: Callable[[], None]
) -> tuple[str, int]:
    """Submit a job while the store has room for about one frame, fill the rest as soon as the job stored its
    first frame, keep the store full for ``seconds`` (calling ``check`` every half second), then free it.

    The sample renders a frame in about 15 ms: faster than anyone can fill 64 MiB after noticing a stored frame,
    so the store is filled up to one frame's room beforehand and the first frame itself takes the last pages.
    Returns the job's id and how many frame files it had stored when the store was full.
    """
    with StoreFiller(server.objects, leave=server.frame_room) as filler:
        job_id = submit()  # its inputs are in the store already: the clean render uploaded them
        wait_first_stored_frame(server, job_id)
        # A failed upload may free the pages it had taken a moment later: top up until none is free.
        wait_for("a full store", filler.filled, timeout=10)
        stored = len(server.stored_frame_files(job_id))
        ends = time.monotonic() + seconds
        while time.monotonic() < ends:
            filler.top_up()
            job = client.job(job_id)
            assert job.status.value not in TERMINAL, (
                f"the job ended {job.status.value} while the store was full (it held {stored} frame file(s) when "
                f"the store filled up)\n{describe(server, client, job_id)}"
            )
            check()
            time.sleep(min(0.5, max(0.0, ends - time.monotonic())))
    return job_id, stored


@pytest.mark.timeout(480)
def test_store_full_for_a_minute_mid_chunk_loses_no_frame(integrity_farm: FarmServer, sample_blend: Path) -> None:
    server = integrity_farm
    with server.client() as client:
        job_ids: list[str] = []
        seen = {"storage": False, "waiting": False}

        def submit() -> str:
            job_ids.append(client.submit(sample_blend, "1-8", name="store-full-a-minute", chunk_size=8).job.id)
            return job_ids[0]

        def during() -> None:
            attempts = attempts_of(client, job_ids[0])
            blamed = [(i, a.number, a.fault, a.reason) for i, a in attempts if a.fault not in ("", "storage")]
            assert not blamed, f"a store outage was blamed on the scene or the node: {blamed}"
            nodes = client.blocklist(job_ids[0]).nodes
            assert not nodes, f"a store outage blocklisted a node: {nodes}"
            seen["storage"] |= any(a.fault == "storage" and a.status == "failed" for _, a in attempts)
            reason = client.job(job_ids[0]).status_reason
            seen["waiting"] |= reason.startswith("waiting") and "object store" in reason

        job_id, stored = outage(server, client, submit, 60.0, during)
        assert stored < 8, "every frame was stored before the store filled up: the outage hit nothing"
        assert seen["storage"], (
            f"no attempt failed with fault 'storage' in a minute\n{describe(server, client, job_id)}"
        )
        assert seen["waiting"], "the job never said it was waiting for the object store"

        done = wait_job(server, client, job_id, 150)
        assert done.status.value == "completed", describe(server, client, job_id)
        assert done.frames_done == 8
        attempts = attempts_of(client, job_id)
        summary = [
            (i, a.number, a.status, a.fault, _timestamp(a.started_at), _timestamp(a.ended_at)) for i, a in attempts
        ]
        assert all(a.fault == "storage" for _, a in attempts if a.status != "completed"), summary
        assert client.blocklist(job_id).nodes == []
        assert check_backoff(attempts) >= 2, f"fewer than two storage waits in a minute: {summary}"
        assert server.store_temporaries() == [], "half-written objects left in the store"
        check_frames(server, client, job_id, range(1, 9), server.reference)


@pytest.mark.timeout(240)
def test_a_short_store_outage_is_absorbed_by_upload_retries(integrity_farm: FarmServer, sample_blend: Path) -> None:
    server = integrity_farm
    with server.client() as client:

        def submit() -> str:
            return client.submit(sample_blend, "1-8", name="store-full-3s", chunk_size=8).job.id

        job_id, stored = outage(server, client, submit, 3.0, lambda: None)
        assert stored < 8, "every frame was stored before the store filled up: the outage hit nothing"

        done = wait_job(server, client, job_id, 120)
        assert done.status.value == "completed", describe(server, client, job_id)
        assert done.frames_done == 8
        attempts = [(i, a.number, a.status, a.fault, a.reason) for i, a in attempts_of(client, job_id)]
        assert [a[:3] for a in attempts] == [(0, 1, "completed")], f"a 3 s outage failed an attempt: {attempts}"
        retried = server.worker_log_lines(f"/{job_id}/frame_", "failed; retrying")
        assert retried, "no upload of this job was retried: the outage did not reach the worker"
        assert server.store_temporaries() == [], "half-written objects left in the store"
        check_frames(server, client, job_id, range(1, 9), server.reference)


#: Frames slow enough (about half a second each) that a kill lands while a chunk renders.
SLOW_RESOLUTION, SLOW_SAMPLES = "320x240", 16


@pytest.mark.timeout(600)
def test_farm_server_killed_three_times_mid_job(integrity_farm: FarmServer, sample_blend: Path) -> None:
    server = integrity_farm
    token = server.token
    with server.client() as client:
        clean = client.submit(
            sample_blend,
            "1-12",
            name="clean-reference-slow",
            chunk_size=4,
            resolution=SLOW_RESOLUTION,
            samples=SLOW_SAMPLES,
        ).job.id
        done = wait_job(server, client, clean, 240)
        assert done.status.value == "completed", describe(server, client, clean)
        reference = check_frames(server, client, clean, REFERENCE_FRAMES, None)
        job_id = client.submit(
            sample_blend, "1-12", name="server-killed", chunk_size=2, resolution=SLOW_RESOLUTION, samples=SLOW_SAMPLES
        ).job.id
    stored = 0
    for kill in range(1, 4):
        with server.client() as client:

            def more(client: FarmClient = client, before: int = stored) -> int:
                count = len(client.frames(job_id).frames)
                return count if count > before else 0

            stored = wait_for(f"frame {stored + 1} stored before kill {kill}", more, timeout=180)
            assert stored < 12, f"the job stored every frame before kill {kill}: the kill hit no running chunk"
        server.kill()
        assert server.leftovers() == []
        server.start()
        assert server.token == token, "the restarted server answers to another admin token"

    with server.client() as client:
        done = wait_job(server, client, job_id, 240)
        assert done.status.value == "completed", describe(server, client, job_id)
        assert done.frames_done == 12
        attempts = attempts_of(client, job_id)
        summary = [(i, a.number, a.status, a.fault, a.reason) for i, a in attempts]
        assert any(a.status == "lost" for _, a in attempts), f"no kill caught a chunk in flight: {summary}"
        assert all(a.status in ("completed", "lost") for _, a in attempts), summary
        assert client.blocklist(job_id).nodes == []
        check_frames(server, client, job_id, REFERENCE_FRAMES, reference)
