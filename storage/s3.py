"""S3 / MinIO backend of the object store, over the official ``minio`` SDK.

Choices worth knowing before changing this module:

* **Retries are ours.** The urllib3 pool under the SDK retries nothing but one failed connect, so the
  exponential backoff with jitter in :meth:`S3Store._backoff_or_raise` alone decides how long an outage is
  waited out (``retries`` and ``backoff_s``), and a stopped server fails in bounded time. Only transient
  failures are retried: connection refused/reset, timeouts, urllib3 errors, 5xx and ``SlowDown``; a 4xx such
  as ``NoSuchKey`` fails at once.
* **Streaming both ways.** Uploads above ``multipart_threshold`` go as multipart with ``part_size`` parts read
  one at a time (one part in memory); smaller ones as one PUT. Downloads are read in chunks of ``CHUNK`` bytes
  and resume with a ranged GET (pinned to the first response's ETag) when the connection drops.
* **One exception.** Every failure leaves as ``farm.errors.StorageError`` naming the key and the cause; the
  secret key never appears in a message.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import os
import random
import re
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, TypeVar
from urllib.parse import parse_qsl, quote, urlsplit

import certifi
import urllib3
from minio import Minio
from minio.datatypes import PostPolicy
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError
from minio.helpers import DictType
from urllib3.response import BaseHTTPResponse

from farm.errors import ObjectMissing, StorageError
from storage.base import ObjectInfo, check_key

logger = logging.getLogger(__name__)

T = TypeVar("T")

CHUNK = 1024 * 1024
MIN_PART_SIZE = 5 * 1024 * 1024  # S3's smallest allowed part (except the last)
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024  # S3's largest part, and largest single PUT
MAX_PARTS = 10_000
MAX_BACKOFF_S = 10.0  # one wait never exceeds this, however many retries are configured

# Error codes S3 and MinIO answer when the request may well succeed later.
_TRANSIENT_CODES = frozenset(
    {"SlowDown", "SlowDownRead", "SlowDownWrite", "InternalError", "ServiceUnavailable", "RequestTimeout"}
)
_MISSING_CODES = frozenset({"NoSuchKey", "NotFound"})
# What the SDK and the transport raise. Anything else is a bug in the caller or here, and is not wrapped.
_SDK_ERRORS = (MinioException, urllib3.exceptions.HTTPError, OSError, ValueError)


def _is_transient(exc: BaseException) -> bool:
    """Whether repeating the request could help (server or network trouble, not a refused request)."""
    if isinstance(exc, S3Error):
        return exc.code in _TRANSIENT_CODES or exc.response.status >= 500
    if isinstance(exc, ServerError):
        return exc.status_code >= 500
    if isinstance(exc, InvalidResponseError):
        # A non-XML answer usually comes from a proxy or load balancer in front of the store (502/503/504).
        status = getattr(exc, "_code", 0)
        return isinstance(status, int) and (status >= 500 or status == 429)
    if isinstance(exc, urllib3.exceptions.HTTPError):
        return not isinstance(exc, urllib3.exceptions.LocationValueError)
    # Plain OSError is not transient: it is what a short stream or an unreadable local file raises.
    return isinstance(exc, ConnectionError | TimeoutError)


def _cause(exc: BaseException) -> str:
    """A one-line account of ``exc`` for a StorageError message."""
    if isinstance(exc, S3Error):
        return f"{exc.code} (HTTP {exc.response.status}): {exc.message}"
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    return f"{type(exc).__name__}: {exc}"


def _content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback name and the exact UTF-8 name (RFC 6266 / RFC 5987)."""
    fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", filename) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


class S3Store:
    """An ``ObjectStore`` in one bucket of an S3-compatible server (MinIO in production).

    ``endpoint`` is ``host:port`` without a scheme; ``secure`` selects HTTPS. The bucket is created when
    absent. Raises ``ValueError`` for impossible sizes or counts, ``StorageError`` when the server cannot be
    reached or refuses to create the bucket.
    """

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        region: str | None = None,
        secure: bool = False,
        multipart_threshold: int = 64 * 1024 * 1024,
        part_size: int = 16 * 1024 * 1024,
        retries: int = 5,
        backoff_s: float = 0.2,
        *,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 60.0,
    ) -> None:
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError(f"part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE} bytes")
        if not 0 <= multipart_threshold <= MAX_PART_SIZE:
            raise ValueError(f"multipart_threshold must be between 0 and {MAX_PART_SIZE} bytes")
        if retries < 0 or backoff_s < 0:
            raise ValueError("retries and backoff_s must not be negative")
        self.endpoint = endpoint
        self.bucket = bucket
        self.region = region
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.retries = retries
        self.backoff_s = backoff_s
        self._secret = secret_key
        self._secure = secure
        # One connect retry absorbs a pooled keep-alive connection the server already closed; everything
        # else comes back to our loop at once, so backoff_s and retries alone govern timing.
        self._pool = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s),
            maxsize=10,
            retries=urllib3.Retry(total=1, connect=1, read=0, redirect=0, status=0, other=0),
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        )
        try:
            self._client = Minio(
                endpoint,
                access_key=access_key,
                secret_key=secret_key,
                secure=secure,
                region=region,
                http_client=self._pool,
            )
        except ValueError as exc:
            raise StorageError(f"invalid S3 endpoint {endpoint!r}: {exc}") from exc
        self._run("create bucket", bucket, self._ensure_bucket)

    def __repr__(self) -> str:
        return f"S3Store(endpoint={self.endpoint!r}, bucket={self.bucket!r})"

    # -- retry machinery -------------------------------------------------------------------------------

    def _backoff_or_raise(
        self, op: str, key: str, exc: BaseException, attempt: int, rewind_note: str | None = None
    ) -> None:
        """Sleep before retry number ``attempt + 1``, or raise StorageError when that is pointless.

        ``rewind_note`` says why a transient failure still cannot be retried (a stream already consumed).
        """
        transient = _is_transient(exc)
        if not transient or attempt >= self.retries or rewind_note is not None:
            tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
            message = f"S3 {op} of {key!r} in bucket {self.bucket!r} failed after {tries}: {_cause(exc)}"
            if transient and rewind_note is not None:
                message += f" (not retried: {rewind_note})"
            if self._secret:
                message = message.replace(self._secret, "***")
            if isinstance(exc, S3Error) and exc.code in _MISSING_CODES:
                raise ObjectMissing(message) from exc
            raise StorageError(message) from exc
        # Exponential growth keeps a struggling server from being hammered; the random half ("equal
        # jitter") keeps many workers that failed together from retrying in lockstep.
        ceiling = min(MAX_BACKOFF_S, self.backoff_s * 2**attempt)
        delay = random.uniform(ceiling / 2, ceiling)
        logger.warning(
            "S3 %s of %s failed (%s); retry %d/%d in %.2fs",
            op,
            key,
            _cause(exc),
            attempt + 1,
            self.retries,
            delay,
        )
        time.sleep(delay)

    def _run(
        self,
        op: str,
        key: str,
        call: Callable[[], T],
        rewind: Callable[[], object] | None = None,
        rewind_note: str | None = None,
    ) -> T:
        """Run ``call`` with retries; ``rewind`` restores the input before each retry."""
        attempt = 0
        while True:
            try:
                if attempt and rewind is not None:
                    rewind()
                return call()
            except _SDK_ERRORS as exc:
                self._backoff_or_raise(op, key, exc, attempt, rewind_note)
                attempt += 1

    def _ensure_bucket(self) -> None:
        if self._client.bucket_exists(self.bucket):
            return
        try:
            self._client.make_bucket(self.bucket, location=self.region)
        except S3Error as exc:
            # Another process created it between our check and our request: the goal is reached.
            if exc.code != "BucketAlreadyOwnedByYou":
                raise
        logger.info("created S3 bucket %s on %s", self.bucket, self.endpoint)

    # -- writes ----------------------------------------------------------------------------------------

    def _upload(self, key: str, stream: BinaryIO, size: int) -> None:
        if size <= self.multipart_threshold:
            # A part size covering the whole object makes the SDK send one plain PUT.
            part_size = max(size, MIN_PART_SIZE)
        else:
            part_size = max(self.part_size, math.ceil(size / MAX_PARTS))
        # One upload thread: the SDK leaves its worker threads behind when a part fails, and a sequential
        # upload keeps exactly one part in memory. Frames and blobs are uploaded concurrently by callers.
        self._client.put_object(self.bucket, key, stream, size, part_size=part_size, num_parallel_uploads=1)

    def put_file(self, key: str, path: Path) -> None:
        """Upload the file at ``path``; S3 makes an object visible only once it is complete."""
        check_key(key)
        path = Path(path)

        def attempt() -> None:
            # Reopened on each attempt, so a retry always starts from the first byte.
            with path.open("rb") as src:
                self._upload(key, src, os.fstat(src.fileno()).st_size)

        self._run("put", key, attempt)

    def put_stream(self, key: str, stream: BinaryIO, size: int) -> None:
        """Upload ``size`` bytes from ``stream``; a seekable stream is rewound for retries, others are not."""
        check_key(key)
        if size < 0:
            raise StorageError(f"S3 put of {key!r}: size must not be negative, got {size}")
        try:
            start: int | None = stream.tell() if stream.seekable() else None
        except (AttributeError, OSError, ValueError):
            start = None

        def upload() -> None:
            self._upload(key, stream, size)

        if start is None:
            self._run("put", key, upload, rewind_note="the stream cannot seek back to its start")
        else:
            position = start
            self._run("put", key, upload, rewind=lambda: stream.seek(position))

    def delete(self, key: str) -> None:
        """Remove the object; an absent one is not an error."""
        check_key(key)

        def attempt() -> None:
            try:
                self._client.remove_object(self.bucket, key)
            except S3Error as exc:
                if exc.code not in _MISSING_CODES:
                    raise

        self._run("delete", key, attempt)

    # -- reads -----------------------------------------------------------------------------------------

    def _get(self, key: str, offset: int, etag: str | None) -> BaseHTTPResponse:
        """A GET response from ``offset``, refused by the server if the object is no longer ``etag``."""
        headers: DictType | None = {"If-Match": etag} if etag else None
        return self._run(
            "get",
            key,
            lambda: self._client.get_object(self.bucket, key, offset=offset, request_headers=headers),
        )

    def _open(self, key: str) -> _ObjectChunks:
        check_key(key)
        return _ObjectChunks(self, key)

    def open(self, key: str) -> Iterator[bytes]:
        """Chunks of the object; a missing object raises here, not on first iteration.

        The connection goes back to the pool when the iterator is exhausted, closed or collected.
        """
        return self._open(key)

    def get_file(self, key: str, path: Path) -> None:
        """Download into a temporary file next to ``path`` and rename it into place."""
        path = Path(path)
        chunks = self._open(key)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # os.open rather than mkstemp: the file gets the umask's permissions, like any other download.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(fd, "wb") as out:
                for block in chunks:
                    out.write(block)
            os.replace(tmp, path)
        except OSError as exc:
            raise StorageError(f"S3 get of {key!r} cannot write {path}: {exc}") from exc
        finally:
            chunks.close()
            tmp.unlink(missing_ok=True)

    def stat(self, key: str) -> ObjectInfo | None:
        """Size of the object, or None when absent."""
        check_key(key)

        def attempt() -> ObjectInfo | None:
            try:
                info = self._client.stat_object(self.bucket, key)
            except S3Error as exc:
                if exc.code in _MISSING_CODES:
                    return None
                raise
            return ObjectInfo(key, info.size or 0, info.last_modified)

        return self._run("stat", key, attempt)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in key order, fetched page by page."""
        after: str | None = None
        attempt = 0
        while True:
            try:
                for obj in self._client.list_objects(self.bucket, prefix=prefix, recursive=True, start_after=after):
                    name = obj.object_name
                    if obj.is_dir or name is None:
                        continue
                    # A listing cut off by a dropped connection resumes after the last key handed out.
                    after = name
                    attempt = 0
                    yield ObjectInfo(name, obj.size or 0, obj.last_modified)
                return
            except _SDK_ERRORS as exc:
                self._backoff_or_raise("list", prefix, exc, attempt)
                attempt += 1

    def local_path(self, key: str) -> Path | None:
        """Always None: objects live on the server, so workers download instead of hard-linking."""
        check_key(key)
        return None

    # -- direct transfers --------------------------------------------------------------------------------

    def presigned_put_url(self, key: str, expires_s: int = 900) -> str:
        """A URL that lets its holder PUT this one object, without credentials, for ``expires_s`` seconds."""
        check_key(key)
        return self._run(
            "presign put",
            key,
            lambda: self._client.presigned_put_object(self.bucket, key, timedelta(seconds=expires_s)),
        )

    def presigned_get_url(self, key: str, expires_s: int = 300, filename: str | None = None) -> str:
        """A URL to GET this object for ``expires_s`` seconds; ``filename`` makes browsers save it as that."""
        check_key(key)
        response_headers: DictType | None = (
            {"response-content-disposition": _content_disposition(filename)} if filename else None
        )
        return self._run(
            "presign get",
            key,
            lambda: self._client.presigned_get_object(
                self.bucket, key, timedelta(seconds=expires_s), response_headers=response_headers
            ),
        )

    def presigned_get_urls(self, keys: Sequence[str], expires_s: int) -> dict[str, str]:
        """Presigned GET URLs for many keys at once (an assignment's inputs: up to tens of thousands).

        The SDK signs the first key; the others are signed here with the same date, scope and expiry, reusing
        its signing key (about ten times faster than asking the SDK for each). The first URL is signed both ways
        and compared, so a URL form this code does not know (another addressing style, extra parameters) falls
        back to the SDK for every key instead of producing URLs the server would refuse."""
        if not keys:
            return {}
        first = self.presigned_get_url(keys[0], expires_s)
        signer = _QuerySigner.from_url(first, keys[0], self._secret)
        if signer is None or signer.url(keys[0]) != first:
            logger.info("presigned URLs of %s come from the SDK one by one (unknown URL form)", self.endpoint)
            return {key: self.presigned_get_url(key, expires_s) for key in keys}
        return {key: first if i == 0 else signer.url(check_key(key)) for i, key in enumerate(keys)}

    def presigned_post_prefix(self, prefix: str, expires_s: int) -> tuple[str, dict[str, str]]:
        """A signed POST policy that lets its holder upload objects under ``prefix`` only, for ``expires_s``
        seconds: the form's URL and fields (the uploader adds ``key`` and the file). The signature covers the
        prefix and the expiry, so the server refuses any other key or a late upload."""
        check_key(prefix.rstrip("/"))
        policy = PostPolicy(self.bucket, datetime.now(UTC) + timedelta(seconds=expires_s))
        policy.add_starts_with_condition("key", prefix)
        fields = self._run("presign post", prefix, lambda: self._client.presigned_post_policy(policy))
        scheme = "https" if self._secure else "http"
        return f"{scheme}://{self.endpoint}/{quote(self.bucket)}", dict(fields)

    def close(self) -> None:
        """Close the pooled connections (the store stays usable: the pool reconnects on demand)."""
        self._pool.clear()


class _ObjectChunks(Iterator[bytes]):
    """Chunks of one object. Resumes after a dropped connection and always hands the connection back."""

    def __init__(self, store: S3Store, key: str) -> None:
        self._store = store
        self._key = key
        self._received = 0
        self._response: BaseHTTPResponse | None = None  # set first: __del__ runs even if the GET fails
        # The first request is made now, so a missing object fails at open() like the local backend.
        response = self._response = store._get(key, 0, None)
        self._etag = response.headers.get("ETag")
        length = response.headers.get("Content-Length")
        self._size = int(length) if length is not None else None

    def __iter__(self) -> _ObjectChunks:
        return self

    def __next__(self) -> bytes:
        stalls = 0
        while self._response is not None:
            try:
                block = self._response.read(CHUNK)
            except _SDK_ERRORS as exc:
                self.close()
                # A resume that delivers nothing before failing again counts against the retry budget.
                self._store._backoff_or_raise("get", self._key, exc, stalls)
                stalls += 1
                if self._size is not None and self._received >= self._size:
                    break
                logger.warning("S3 get of %s resumes at byte %d", self._key, self._received)
                self._response = self._store._get(self._key, self._received, self._etag)
                continue
            if not block:
                break
            self._received += len(block)
            return block
        self.close()
        raise StopIteration

    def close(self) -> None:
        """Give the connection back to the pool (idempotent)."""
        response, self._response = self._response, None
        if response is not None:
            response.close()
            response.release_conn()

    def __enter__(self) -> _ObjectChunks:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


class _QuerySigner:
    """SigV4 query signing of GETs that share one date, scope and expiry (see ``S3Store.presigned_get_urls``)."""

    def __init__(self, scheme: str, host: str, path_prefix: str, params: dict[str, str], signing_key: bytes) -> None:
        self.scheme, self.host, self.path_prefix = scheme, host, path_prefix
        self.params = params
        self.signing_key = signing_key
        self.query = "&".join(f"{_uri(k)}={_uri(v)}" for k, v in sorted(params.items()))
        scope = params["X-Amz-Credential"].split("/", 1)[1]
        self.head = f"AWS4-HMAC-SHA256\n{params['X-Amz-Date']}\n{scope}\n"

    @classmethod
    def from_url(cls, url: str, object_key: str, secret: str) -> _QuerySigner | None:
        """The signer that made ``url``, the presigned GET of ``object_key`` (path or virtual-host style), or None
        when its form is not the one this class reproduces."""
        parts = urlsplit(url)
        encoded_key = _uri(object_key, safe="/")
        if not parts.path.endswith("/" + encoded_key):
            return None
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        expected = {"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders"}
        if set(params) != expected | {"X-Amz-Signature"} or params["X-Amz-SignedHeaders"] != "host":
            return None
        del params["X-Amz-Signature"]
        credential = params["X-Amz-Credential"].split("/")
        if len(credential) != 5 or params["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256":
            return None
        _access, date, region, service, _term = credential
        signing_key = ("AWS4" + secret).encode()
        for part in (date, region, service, "aws4_request"):
            signing_key = hmac.new(signing_key, part.encode(), hashlib.sha256).digest()
        return cls(parts.scheme, parts.netloc, parts.path[: -len(encoded_key)], params, signing_key)

    def url(self, key: str) -> str:
        """The presigned GET URL of ``key`` (its path is the first URL's with the key replaced)."""
        # The prefix is '/bucket/' (path style) or '/'; keys of the farm's layout need no encoding.
        path = self.path_prefix + (key if _PLAIN_KEY.fullmatch(key) else _uri(key, safe="/"))
        canonical = f"GET\n{path}\n{self.query}\nhost:{self.host}\n\nhost\nUNSIGNED-PAYLOAD"
        to_sign = self.head + hashlib.sha256(canonical.encode()).hexdigest()
        signature = hmac.digest(self.signing_key, to_sign.encode(), "sha256").hex()
        return f"{self.scheme}://{self.host}{path}?{self.query}&X-Amz-Signature={signature}"


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.~/-]+")


def _uri(value: str, safe: str = "") -> str:
    """S3's URI encoding: everything but unreserved characters (and ``safe``) percent-encoded."""
    return quote(value, safe="-_.~" + safe)
