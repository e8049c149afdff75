"""Client SDK used by the CLI, the add-on and scripts: packing, dedup upload, jobs, frames, usage."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from farm.client import config as clientconfig
from farm.client.packing import HashCache, Pack, manifest, trace
from farm.client.scene_info import SceneUnreadable, read_scene
from farm.contract import (
    BlobsMissingResponse,
    Blocklist,
    BulkResult,
    ChunkActionOut,
    DirectUpload,
    FrameList,
    GcReport,
    JobCreate,
    JobList,
    JobOut,
    JobUpdate,
    LogOut,
    ManifestEntry,
    TaskList,
    UnblockRequest,
    UsageReport,
)
from farm.domain.frames import parse_frames
from farm.domain.outputs import OutputNameError, check_name
from farm.errors import BadRequest

Progress = Callable[[int], None]
log = logging.getLogger(__name__)


class ClientError(Exception):
    """The farm answered with an error; ``status`` is the HTTP status, ``detail`` its message."""

    def __init__(self, status: int, detail: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status}: {detail}")
        self.status, self.detail, self.body = status, detail, body or {}


class FarmUnreachable(ClientError):
    def __init__(self, url: str, cause: Exception) -> None:
        super().__init__(0, f"cannot reach the farm at {url}: {cause}")


class MissingFiles(ClientError):
    """The scene references files that do not exist; ``missing`` lists them as the scene names them."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(
            0,
            "the scene references files that do not exist: "
            + ", ".join(missing)
            + " (fix the paths, or submit anyway with --allow-missing)",
        )
        self.missing = list(missing)


class InvalidOptions(ValueError):
    """Job options the farm would refuse, found before anything is traced or sent. ``problems``: (field of the
    job spec, what is wrong), for the CLI and the add-on to name in their own words (flags, panel fields)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in problems))
        self.problems = problems


def check_options(name: str, frames: str, **options: Any) -> None:
    """Refuse options the farm would refuse (``InvalidOptions``), with the contract's own rules and nothing sent."""
    placeholder = {"scene.blend": ManifestEntry(sha256="0" * 64, size=0)}
    try:
        JobCreate(name=name, blend_file="scene.blend", manifest=placeholder, frames=frames, **options)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err.get("loc", ())) or "options"
            problems.append((field, str(err.get("msg", "invalid")).removeprefix("Value error, ")))
        raise InvalidOptions(problems) from None
    try:
        parse_frames(frames)
    except BadRequest as exc:
        raise InvalidOptions([("frames", exc.message)]) from None


@dataclass
class SubmitResult:
    job: JobOut
    uploaded_bytes: int
    reused_bytes: int
    uploaded_files: int
    missing: list[str]


class _FileStream:
    """Streams a file to httpx in blocks and reports progress."""

    def __init__(self, path: Path, progress: Progress | None) -> None:
        self.path, self.progress = path, progress

    def __iter__(self) -> Iterator[bytes]:
        with self.path.open("rb") as handle:
            while block := handle.read(1024 * 1024):
                if self.progress is not None:
                    self.progress(len(block))
                yield block


#: Calls that may be sent again without doing anything twice, and the answers that mean "busy, try again".
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
BUSY = frozenset({502, 503, 504})
BACKOFF_S = 0.5
MAX_WAIT_S = 10.0


def _retry_after(response: httpx.Response, default: float) -> float:
    """The farm's Retry-After in seconds (bounded), or ``default``."""
    try:
        return min(max(float(response.headers.get("retry-after", "")), 0.0), MAX_WAIT_S)
    except ValueError:
        return min(default, MAX_WAIT_S)


class FarmClient:
    """Talks to ``/api/v1`` with a bearer token."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        timeout: float = 60.0,
        retries: int = 4,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.retries, self.sleep = retries, sleep
        cfg = clientconfig.load(url, token)
        self.url, self.token = cfg.url, cfg.token
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> FarmClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, retry: bool | None = None, **kwargs: Any) -> httpx.Response:
        """One API call. Idempotent ones (GET, PUT, DELETE, or ``retry=True``) are retried when the farm is busy
        (502/503/504, after its Retry-After) or unreachable for a moment; a submit (POST) never is: it could run
        twice."""
        again = method.upper() in IDEMPOTENT if retry is None else retry
        for attempt in range(self.retries + 1):
            last = attempt == self.retries or not again
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if last:
                    raise FarmUnreachable(self.url, exc) from exc
                self.sleep(min(BACKOFF_S * 2**attempt, MAX_WAIT_S))
                continue
            if response.status_code in BUSY and not last:
                self.sleep(_retry_after(response, BACKOFF_S * 2**attempt))
                continue
            break
        if response.status_code >= 400:
            try:
                body = response.json()
                detail = str(body.get("detail", response.text))
            except ValueError:
                body, detail = {}, response.text or response.reason_phrase
            raise ClientError(response.status_code, detail, body)
        return response

    def _download_failed(self, exc: httpx.TransportError) -> ClientError:
        """A download that broke off: the farm itself, or the object store it redirected to (an S3 farm hands out
        presigned URLs), which is another machine with another remedy."""
        try:
            target = exc.request.url
        except RuntimeError:
            return FarmUnreachable(self.url, exc)
        farm = httpx.URL(self.url)
        if (target.host, target.port) == (farm.host, farm.port):
            return FarmUnreachable(self.url, exc)
        return ClientError(
            0,
            f"the farm answered, but its object store at {target.host}:{target.port or ''} cannot be reached from "
            f"here ({exc}); retry later, or ask the farm's admin whether the store is up and reachable",
        )

    # ---- blobs and submit ---------------------------------------------------------------------------------

    def _save_checked(
        self,
        path: str,
        dest: Path,
        sha256: str,
        what: str,
        params: dict[str, str] | None = None,
        progress: Progress | None = None,
    ) -> None:
        """Stream ``path`` into ``dest`` through a temporary file beside it, kept only when its sha256 is ``sha256``,
        so a download that broke off or arrived damaged never leaves a file that looks right. ``what`` names the
        file in the error ("frame 12")."""
        tmp = dest.with_name(f".{dest.name}.part")
        digest = hashlib.sha256()
        try:
            with self.http.stream("GET", path, params=params, follow_redirects=True) as response:
                if response.status_code >= 400:
                    response.read()
                    raise ClientError(response.status_code, response.text)
                with tmp.open("wb") as handle:
                    for block in response.iter_bytes():
                        digest.update(block)
                        handle.write(block)
                        if progress is not None:
                            progress(len(block))
        except httpx.TransportError as exc:
            tmp.unlink(missing_ok=True)
            raise self._download_failed(exc) from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if digest.hexdigest() != sha256:
            tmp.unlink(missing_ok=True)
            raise ClientError(
                0,
                f"{what} arrived corrupted (sha256 {digest.hexdigest()[:12]}…, expected {sha256[:12]}…); run the"
                " command again",
            )
        os.replace(tmp, dest)

    def missing_blobs(self, hashes: list[str]) -> list[str]:
        """The hashes the farm does not hold for this company."""
        return self.missing_with_uploads(hashes, direct=False).missing

    def missing_with_uploads(self, hashes: list[str], direct: bool = True) -> BlobsMissingResponse:
        """The missing hashes and, on an S3 farm, a presigned PUT URL for each."""
        body = {"hashes": hashes, "direct": direct}
        answer = self._request("POST", "/api/v1/blobs/missing", json=body, retry=True)  # reads only: safe again
        return BlobsMissingResponse.model_validate(answer.json())

    def upload_blob(self, path: Path, sha256: str, size: int, progress: Progress | None = None) -> None:
        """Stream one blob through the API, which verifies it."""
        self._request(
            "PUT",
            f"/api/v1/blobs/{sha256}",
            content=_FileStream(path, progress),
            headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
        )

    def upload_direct(
        self, target: DirectUpload, path: Path, sha256: str, size: int, progress: Progress | None = None
    ) -> None:
        """PUT one blob straight into the object store, then have the farm check and commit it."""
        # A client of its own: the presigned URL is the credential, a farm token must not travel to the store.
        with httpx.Client(timeout=self.http.timeout) as direct:
            response = direct.put(
                target.url,
                content=_FileStream(path, progress),
                headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
            )
        if response.status_code >= 400:
            raise ClientError(response.status_code, f"the object store refused the upload: {response.text[:500]}")
        self._request("POST", f"/api/v1/blobs/{sha256}/commit", json={"size": size, "upload": target.upload})

    def upload_missing(
        self,
        pack: Pack,
        entries: dict[str, ManifestEntry],
        progress: Progress | None = None,
        direct: bool = True,
        on_total: Callable[[int, int], None] | None = None,
    ) -> tuple[int, int, int]:
        """Upload only what the farm lacks; returns (uploaded bytes, reused bytes, files uploaded).

        On an S3 farm the bytes go straight to the store through presigned URLs; when the store cannot be
        reached from here (a farm-internal MinIO), this and the remaining blobs go through the API instead.
        """
        by_hash: dict[str, tuple[Path, int]] = {}
        for rel, entry in entries.items():
            by_hash.setdefault(entry.sha256, (pack.files[rel], entry.size))
        answer = self.missing_with_uploads(sorted(by_hash), direct=direct)
        missing = set(answer.missing)
        if on_total is not None:
            on_total(sum(size for sha, (_p, size) in by_hash.items() if sha in missing), len(missing))
        uploaded = reused = files = 0
        for sha, (path, size) in sorted(by_hash.items()):
            if sha not in missing:
                reused += size
                continue
            target = answer.uploads.get(sha)
            sent = False
            if target is not None:
                try:
                    self.upload_direct(target, path, sha, size, progress)
                    sent = True
                except (httpx.TransportError, ClientError) as exc:
                    if isinstance(exc, ClientError) and exc.status in (413, 422):
                        raise  # the farm checked the bytes and refused them: sending them again cannot help
                    log.warning("direct upload to the object store failed (%s); uploading through the farm", exc)
                    answer.uploads.clear()
            if not sent:
                self.upload_blob(path, sha, size, progress)
            uploaded += size
            files += 1
        return uploaded, reused, files

    def submit(
        self,
        blend: Path,
        frames: str | None = None,
        name: str | None = None,
        progress: Progress | None = None,
        allow_missing: bool = False,
        hash_cache: HashCache | None = None,
        on_total: Callable[[int, int], None] | None = None,
        **options: Any,
    ) -> SubmitResult:
        """Trace, hash, upload what is missing and create the job (``hash_cache``: default the user's).

        Without ``frames`` the scene's own range and step are rendered. Requested view layers and cameras are
        checked against the file first (``ValueError`` naming those that exist), and every option before anything
        is traced or sent (``InvalidOptions``). ``on_total(bytes, files)`` learns what will be uploaded, once the
        farm said what it lacks; ``progress(n)`` then counts the bytes sent."""
        layers = list(options.get("view_layers") or [])
        try:
            scene = read_scene(Path(blend))
        except SceneUnreadable:
            if frames is None or layers or options.get("camera"):
                raise
            scene = None  # the farm's Blender says what is wrong with the file
        if scene is not None:
            scene.check(layers, options.get("camera"))
            frames = frames or scene.frames
        if frames is None:
            raise SceneUnreadable(f"no frames given and no frame range read from {Path(blend).name}")
        job_name = name or Path(blend).stem
        check_options(job_name, frames, **options)  # every option before any tracing, hashing or upload
        with trace(Path(blend)) as pack:  # closing removes rewritten temporary copies of .blend files
            if pack.missing and not allow_missing:
                raise MissingFiles(pack.missing)
            entries = manifest(pack, hash_cache if hash_cache is not None else HashCache())
            uploaded, reused, files = self.upload_missing(pack, entries, progress, on_total=on_total)
        spec = JobCreate(
            name=job_name,
            blend_file=pack.blend_rel,
            manifest=entries,
            frames=frames,
            allow_missing=allow_missing,
            **options,
        )
        job = self.create_job(spec)
        return SubmitResult(job, uploaded, reused, files, pack.missing)

    def create_job(self, spec: JobCreate) -> JobOut:
        # With a preset, only what the caller set is sent: the farm fills the rest from the preset (issue 19).
        body = spec.model_dump(mode="json", exclude_none=True, exclude_unset=spec.preset is not None)
        data = self._request("POST", "/api/v1/jobs", json=body).json()
        return JobOut.model_validate(data)

    # ---- jobs -----------------------------------------------------------------------------------------------
    def jobs(self, status: str | None = None, limit: int = 100) -> list[JobOut]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        return JobList.model_validate(self._request("GET", "/api/v1/jobs", params=params).json()).jobs

    def job(self, job_id: str) -> JobOut:
        return JobOut.model_validate(self._request("GET", f"/api/v1/jobs/{job_id}").json())

    def cancel(self, job_id: str) -> JobOut:
        return JobOut.model_validate(self._request("POST", f"/api/v1/jobs/{job_id}/cancel").json())

    def pause(self, job_id: str, now: bool = False) -> JobOut:
        """Pause the job; with ``now`` the chunks rendering now are stopped too (and requeued)."""
        path = f"/api/v1/jobs/{job_id}/pause"
        return JobOut.model_validate(self._request("POST", path, params={"now": now}).json())

    def resume(self, job_id: str) -> JobOut:
        return JobOut.model_validate(self._request("POST", f"/api/v1/jobs/{job_id}/resume").json())

    def retry(self, job_id: str) -> JobOut:
        """Requeue the job's failed and canceled chunks."""
        return JobOut.model_validate(self._request("POST", f"/api/v1/jobs/{job_id}/retry").json())

    def blocklist(self, job_id: str) -> Blocklist:
        return Blocklist.model_validate(self._request("GET", f"/api/v1/jobs/{job_id}/blocklist").json())

    def unblock(self, job_id: str, node: str | None = None) -> Blocklist:
        """Give ``node`` (every node when None) a fresh start on the job."""
        body = UnblockRequest(node=node).model_dump()
        return Blocklist.model_validate(self._request("POST", f"/api/v1/jobs/{job_id}/unblock", json=body).json())

    # ---- issue 16: one chunk, priority, bulk ----------------------------------------------------------------
    def requeue_chunk(self, job_id: str, chunk: str) -> ChunkActionOut:
        """Render one chunk (its index or id) again; a rendering one is stopped first."""
        path = f"/api/v1/jobs/{job_id}/tasks/{chunk}/requeue"
        return ChunkActionOut.model_validate(self._request("POST", path).json())

    def cancel_chunk(self, job_id: str, chunk: str) -> ChunkActionOut:
        """Leave one chunk (its index or id) out; the rest of the job goes on."""
        path = f"/api/v1/jobs/{job_id}/tasks/{chunk}/cancel"
        return ChunkActionOut.model_validate(self._request("POST", path).json())

    def set_priority(self, job_id: str, priority: int) -> JobOut:
        """Change a job's priority (0-100, higher first)."""
        body = JobUpdate(priority=priority).model_dump(mode="json", exclude_none=True)
        return JobOut.model_validate(self._request("PATCH", f"/api/v1/jobs/{job_id}", json=body, retry=True).json())

    def bulk(self, action: str, job_ids: list[str], priority: int | None = None, now: bool = False) -> BulkResult:
        """One action on many jobs; the answer says, job by job, done, refused (why) or not found."""
        body = {"action": action, "job_ids": job_ids, "priority": priority, "now": now}
        return BulkResult.model_validate(self._request("POST", "/api/v1/jobs/bulk", json=body).json())

    def tasks(self, job_id: str) -> TaskList:
        return TaskList.model_validate(self._request("GET", f"/api/v1/jobs/{job_id}/tasks").json())

    def frames(self, job_id: str) -> FrameList:
        return FrameList.model_validate(self._request("GET", f"/api/v1/jobs/{job_id}/frames").json())

    def logs(self, job_id: str) -> str:
        return LogOut.model_validate(self._request("GET", f"/api/v1/jobs/{job_id}/logs").json()).text

    def usage(self, month: str | None = None, per_job: bool = False) -> UsageReport:
        params: dict[str, Any] = {"per_job": per_job}
        if month:
            params["month"] = month
        return UsageReport.model_validate(self._request("GET", "/api/v1/usage", params=params).json())

    def gc(self, apply: bool = False, retention_days: float = 30.0) -> GcReport:
        """Blob garbage collection (platform admins): a dry run unless ``apply``."""
        params: dict[str, Any] = {"apply": apply, "retention_days": retention_days}
        return GcReport.model_validate(self._request("POST", "/api/v1/admin/gc", params=params).json())

    def download_preview(self, job_id: str, dest: Path) -> Path:
        """Save the job's preview MP4 to ``dest``."""
        try:
            with self.http.stream("GET", f"/api/v1/jobs/{job_id}/preview", follow_redirects=True) as response:
                if response.status_code >= 400:
                    response.read()
                    raise ClientError(response.status_code, response.text)
                tmp = dest.with_name(f".{dest.name}.part")
                with tmp.open("wb") as handle:
                    for block in response.iter_bytes():
                        handle.write(block)
        except httpx.TransportError as exc:
            raise self._download_failed(exc) from exc
        os.replace(tmp, dest)
        return dest

    def download_product(self, job_id: str, out_dir: Path, progress: Progress | None = None) -> tuple[Path, bool]:
        """Save the job's video product (issue 13) into ``out_dir`` under its name; returns (path, downloaded):
        a file already there with the same hash is kept. ``ClientError`` 404 says why there is none."""
        product = self.job(job_id).product
        if product is None or product.status.value != "ready":
            why = product.reason if product is not None else "the scene's output is not a video, or it is encoding"
            raise ClientError(404, f"job {job_id} has no video to download: {why}")
        dest = out_dir / Path(product.name).name
        if dest.exists() and _sha256(dest) == product.sha256:
            return dest, False
        out_dir.mkdir(parents=True, exist_ok=True)
        self._save_checked(f"/api/v1/jobs/{job_id}/product", dest, product.sha256, "the video", progress=progress)
        return dest, True

    def download(self, job_id: str, out_dir: Path, progress: Progress | None = None) -> tuple[int, int]:
        """Fetch every stored frame into ``out_dir``; files already there with the same hash are skipped.

        Returns (downloaded files, skipped files).
        """
        out_dir.mkdir(parents=True, exist_ok=True)
        downloaded = skipped = 0
        # Every file: the frame's, or each view layer's when the frame was written one file per layer.
        files: list[tuple[int, str, int, str, str | None]] = []
        for frame in self.frames(job_id).frames:
            if frame.layers:
                files += [(frame.frame, f.name, f.size, f.sha256, f.layer) for f in frame.layers]
            else:
                files.append((frame.frame, frame.name, frame.size, frame.sha256, None))
        for number, name, size, sha256, layer in files:
            try:
                # The job's own layout (e.g. render/shot_0001.exr), never a path outside ``out_dir``.
                dest = out_dir / check_name(name, what="frame name")
            except OutputNameError as exc:
                raise ClientError(0, f"frame {number}: {exc}") from exc
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists() and _sha256(dest) == sha256:
                skipped += 1
                if progress is not None:
                    progress(size)
                continue
            params = {"layer": layer} if layer is not None else None
            path = f"/api/v1/jobs/{job_id}/frames/{number}"
            self._save_checked(path, dest, sha256, f"frame {number}", params, progress)
            downloaded += 1
        return downloaded, skipped


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()
