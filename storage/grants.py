"""Scoped, credential-free store access for render nodes (issue 15).

Render nodes run studios' untrusted .blend files, so they hold no store key. The scheduler, which does, hands
each assignment a ``StoreGrant`` (``farm.domain.attempts``): a presigned GET URL for each input blob of the job
and a signed POST policy for the keys under the job's outputs. The worker wraps it in a ``GrantedStore``, which
the node cache and the frame upload use like any ``ObjectStore``. A grant reaches only that job's objects: the
signatures cover the key (GET) and the key prefix (POST), and they lapse.

Lifetimes: input URLs live ``base_s`` (the chunk fetches its inputs first); the upload grant lives
``base_s + per_frame_s * frames``, capped at S3's seven days. One job's grant is reused for its next chunks while
it still covers them, so a job of many chunks is signed a few times, not once per chunk.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import urllib3

from farm.domain.attempts import StoreGrant, UploadGrant
from farm.domain.inputs import input_owner
from farm.errors import ObjectMissing, StorageError
from storage.base import ObjectInfo, blob_key, check_key

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
MAX_PRESIGN_S = 7 * 24 * 3600  # the longest lifetime S3 signatures allow
#: Environment variables that carry store credentials: never inherited by Ray workers or Blender.
SECRET_ENV = (
    "FARM_S3_ACCESS_KEY",
    "FARM_S3_SECRET_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "MINIO_ROOT_USER",
    "MINIO_ROOT_PASSWORD",
    "MINIO_ACCESS_KEY",
    "MINIO_SECRET_KEY",
)


class Presigner(Protocol):
    """What issuing grants needs of a store (``storage.s3.S3Store`` has it)."""

    def presigned_get_urls(self, keys: Sequence[str], expires_s: int) -> dict[str, str]: ...

    def presigned_post_prefix(self, prefix: str, expires_s: int) -> tuple[str, dict[str, str]]: ...


def outputs_prefix(company: str, job_id: str) -> str:
    """The key prefix of one job's outputs (``storage.base.output_key`` puts every output file under it)."""
    return check_key(f"outputs/{company}/{job_id}") + "/"


class GrantIssuer:
    """Signs grants for assignments (in the scheduler, the only process with the store's keys)."""

    def __init__(
        self,
        store: Presigner,
        base_s: int = 900,
        per_frame_s: int = 3600,
        clock: Any = time.time,
        max_jobs: int = 1024,
    ) -> None:
        if base_s < 1 or per_frame_s < 0:
            raise ValueError("grant lifetimes must be positive")
        self.store = store
        self.base_s = base_s
        self.per_frame_s = per_frame_s
        self._clock = clock
        self._max_jobs = max_jobs
        self._lock = threading.Lock()
        self._cache: dict[str, StoreGrant] = {}

    def lifetime(self, frames: int) -> int:
        """Seconds an upload grant for a chunk of ``frames`` frames must live."""
        return min(MAX_PRESIGN_S, self.base_s + self.per_frame_s * max(frames, 1))

    def __call__(self, company: str, job_id: str, manifest: Mapping[str, Mapping[str, Any]], frames: int) -> StoreGrant:
        return self.issue(company, job_id, manifest, frames)

    def issue(self, company: str, job_id: str, manifest: Mapping[str, Mapping[str, Any]], frames: int) -> StoreGrant:
        """The grant for one chunk of ``job_id``: its input blobs and its outputs, no more."""
        now = self._clock()
        need = self.lifetime(frames)
        keys = _input_keys(company, manifest)
        with self._lock:
            cached = self._cache.get(job_id)
            if (
                cached is not None
                and cached.expires_at - now >= self.base_s / 2
                and cached.upload.expires_at - now >= need
                and len(cached.inputs) == len(keys)
            ):
                return cached
        # Signed for twice what the chunk needs, so the job's next chunks reuse it for a while.
        upload_s = min(MAX_PRESIGN_S, 2 * need)
        url, fields = self.store.presigned_post_prefix(outputs_prefix(company, job_id), upload_s)
        inputs = self.store.presigned_get_urls(keys, self.base_s)
        grant = StoreGrant(
            inputs=inputs,
            upload=UploadGrant(url, fields, outputs_prefix(company, job_id), now + upload_s),
            expires_at=now + self.base_s,
        )
        with self._lock:
            if len(self._cache) >= self._max_jobs:
                self._cache = {k: g for k, g in self._cache.items() if g.upload.expires_at > now}
                while len(self._cache) >= self._max_jobs:
                    self._cache.pop(next(iter(self._cache)))
            self._cache[job_id] = grant
        return grant


def _input_keys(company: str, manifest: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Store keys of a job's inputs: its company's blobs, and library assets in their publisher's (issue 20)."""
    folders: dict[str, str] = {}  # 'blobs/<company>/', checked once per owner; the keys are checked on signing
    keys: set[str] = set()
    for entry in manifest.values():
        owner = input_owner(company, entry)
        folder = folders.get(owner) or folders.setdefault(owner, blob_key(owner, "x")[:-1])
        keys.add(folder + str(entry["sha256"]))
    return sorted(keys)


def _error_code(body: bytes) -> str:
    match = re.search(rb"<Code>([^<]{1,64})</Code>", body)
    return match.group(1).decode(errors="replace") if match else ""


class _Multipart:
    """A multipart/form-data body read piece by piece: the form fields, the file's bytes, the closing line. The
    file is never held in memory."""

    def __init__(self, fields: Mapping[str, str], filename: str, path: Path) -> None:
        self.boundary = secrets.token_hex(16)
        head = b"".join(
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            for name, value in fields.items()
        )
        head += (
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{self.boundary}--\r\n".encode()
        self._file: BinaryIO = path.open("rb")
        size = os.fstat(self._file.fileno()).st_size
        self.length = len(head) + size + len(tail)
        self._pieces: list[bytes | BinaryIO] = [head, self._file, tail]

    def read(self, n: int = -1) -> bytes:
        while self._pieces:
            piece = self._pieces[0]
            if isinstance(piece, bytes):
                if not piece:
                    self._pieces.pop(0)
                    continue
                cut = len(piece) if n is None or n < 0 else n
                out, self._pieces[0] = piece[:cut], piece[cut:]
                return out
            block = piece.read(CHUNK if n is None or n < 0 else n)
            if block:
                return block
            self._pieces.pop(0)
        return b""

    def close(self) -> None:
        self._file.close()


def grant_pool() -> urllib3.PoolManager:
    """Connections for granted transfers; a worker keeps one across its chunks. Retries are ours (one connect
    retry absorbs a keep-alive connection the server closed)."""
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=5.0, read=60.0),
        maxsize=4,
        retries=urllib3.Retry(total=1, connect=1, read=0, redirect=0, status=0, other=0),
    )


class GrantedStore:
    """The ``ObjectStore`` a worker uses for one assignment: reads the granted input blobs, writes under the
    granted prefix, and refuses the rest before asking the server (which would refuse it too)."""

    def __init__(
        self,
        grant: StoreGrant,
        retries: int = 5,
        backoff_s: float = 0.2,
        http: urllib3.PoolManager | None = None,
    ) -> None:
        self.grant = grant
        self.retries = retries
        self.backoff_s = backoff_s
        self._http = http or grant_pool()

    def __repr__(self) -> str:
        return f"GrantedStore({self.grant!r})"

    def _refuse(self, what: str, key: str) -> StorageError:
        return StorageError(f"{what} of {key!r} is not granted to this assignment")

    # -- reads -------------------------------------------------------------------------------------------
    def get_file(self, key: str, path: Path) -> None:
        """Download a granted input to ``path`` (atomically); the cache verifies its sha256."""
        url = self.grant.inputs.get(check_key(key))
        if url is None:
            raise self._refuse("read", key)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
        attempt = 0
        while True:
            try:
                self._download(key, url, tmp)
                os.replace(tmp, path)
                return
            except _Transient as exc:
                if attempt >= self.retries:
                    raise StorageError(f"GET of {key!r} failed after {attempt + 1} attempts: {exc}") from exc
                delay = min(10.0, self.backoff_s * 2**attempt)
                log.warning("GET of %s failed (%s); retry %d/%d in %.2fs", key, exc, attempt + 1, self.retries, delay)
                time.sleep(delay)
                attempt += 1
            finally:
                tmp.unlink(missing_ok=True)

    def _download(self, key: str, url: str, tmp: Path) -> None:
        try:
            response = self._http.request("GET", url, preload_content=False)
        except urllib3.exceptions.HTTPError as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}".replace(url, "<url>")) from None
        try:
            if response.status != 200:
                body = response.read(64 * 1024)
                code = _error_code(body)
                message = f"GET of {key!r} refused: HTTP {response.status} {code}".rstrip()
                if response.status >= 500 or response.status == 429:
                    raise _Transient(message)
                if response.status == 404:
                    raise ObjectMissing(f"object {key} is not in the store ({code or 'HTTP 404'})")
                raise StorageError(message + " (the grant lapsed or does not cover it)")
            try:
                with tmp.open("wb") as out:
                    for block in response.stream(CHUNK):
                        out.write(block)
            except urllib3.exceptions.HTTPError as exc:
                raise _Transient(f"{type(exc).__name__} mid-download") from None
            except OSError as exc:
                raise StorageError(f"cannot write {key!r} to {tmp}: {exc}") from exc
        finally:
            response.release_conn()

    def open(self, key: str) -> Iterator[bytes]:
        raise self._refuse("streaming read", key)

    def stat(self, key: str) -> ObjectInfo | None:
        raise self._refuse("stat", key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        raise self._refuse("listing", prefix)

    def local_path(self, key: str) -> Path | None:
        """None: a granted object is reached over HTTP only."""
        return None

    # -- writes ------------------------------------------------------------------------------------------
    def put_file(self, key: str, path: Path) -> None:
        """Upload a file under the granted prefix with the signed POST policy (one try; callers retry)."""
        upload = self.grant.upload
        if not check_key(key).startswith(upload.prefix):
            raise self._refuse("write", key)
        body = _Multipart({**upload.fields, "key": key}, Path(key).name, Path(path))
        try:
            response = self._http.request(
                "POST",
                upload.url,
                body=body,  # type: ignore[arg-type]  # read() piece by piece, never whole in memory
                headers={
                    "Content-Type": f"multipart/form-data; boundary={body.boundary}",
                    "Content-Length": str(body.length),
                },
                preload_content=True,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise StorageError(f"upload of {key!r} failed: {type(exc).__name__}: {exc}") from exc
        except OSError as exc:
            raise StorageError(f"upload of {key!r} cannot read {path}: {exc}") from exc
        finally:
            body.close()
        if response.status not in (200, 201, 204):
            code = _error_code(response.data)
            raise StorageError(f"upload of {key!r} refused: HTTP {response.status} {code}".rstrip())

    def put_stream(self, key: str, stream: BinaryIO, size: int) -> None:
        raise self._refuse("stream upload", key)

    def delete(self, key: str) -> None:
        raise self._refuse("delete", key)


class _Transient(Exception):
    """A failure worth repeating (connection trouble, 5xx)."""


def scrubbed_environ(environ: Mapping[str, str], names: Iterable[str] = SECRET_ENV) -> dict[str, str]:
    """``environ`` without the variables that carry store credentials."""
    drop = set(names)
    return {k: v for k, v in environ.items() if k not in drop}


@contextlib.contextmanager
def secrets_withheld(names: Iterable[str] = SECRET_ENV) -> Iterator[None]:
    """Remove the store's credentials from ``os.environ`` for the duration (e.g. while Ray starts, so neither its
    workers nor the Blender processes they start inherit them); restored after."""
    saved = {name: os.environ.pop(name) for name in list(names) if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def issuer_for(store: object, base_s: int, per_frame_s: int) -> GrantIssuer | None:
    """A grant issuer over a store that can presign (S3), or None (the local store needs no grants)."""
    from storage.s3 import S3Store  # here: render nodes import this module and need no S3 SDK

    return GrantIssuer(store, base_s, per_frame_s) if isinstance(store, S3Store) else None
