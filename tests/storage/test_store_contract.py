"""One contract for every ``ObjectStore`` backend, then what only the S3 backend promises.

The contract tests run twice (ids ``local`` and ``s3``) with the same assertions; the S3 ones run against a
real S3-protocol server (moto) on 127.0.0.1 which some of them stop and start again.
"""

from __future__ import annotations

import hashlib
import io
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from minio import Minio

from farm.errors import StorageError
from storage.base import ObjectInfo, ObjectStore
from storage.s3 import S3Store
from tests.s3_server import S3ServerProcess
from tests.storage.conftest import MIB, make_s3_store, unique_bucket


class GeneratedStream(io.RawIOBase):
    """``size`` pseudo-random bytes made on demand (never all in memory), hashed as they are read.

    Not seekable, like a request body or a pipe.
    """

    def __init__(self, size: int, seed: int = 7) -> None:
        self.remaining = size
        self._random = random.Random(seed)
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            n = self.remaining
        block = self._random.randbytes(min(n, self.remaining, 4 * MIB))
        self.remaining -= len(block)
        self.sha256.update(block)
        return block


def sha256_of(chunks: Iterator[bytes]) -> str:
    digest = hashlib.sha256()
    for block in chunks:
        digest.update(block)
    return digest.hexdigest()


def write(tmp_path: Path, data: bytes, name: str = "src.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- the contract, for both backends --------------------------------------------------------------------


def test_backends_satisfy_the_protocol(store: ObjectStore) -> None:
    assert isinstance(store, ObjectStore)


def test_put_file_get_file_roundtrip(store: ObjectStore, tmp_path: Path) -> None:
    data = random.Random(1).randbytes(300_000)
    store.put_file("blobs/acme/abc", write(tmp_path, data))

    target = tmp_path / "out" / "nested" / "copy.bin"  # parents do not exist yet
    store.get_file("blobs/acme/abc", target)

    assert target.read_bytes() == data
    assert store.stat("blobs/acme/abc") == ObjectInfo("blobs/acme/abc", len(data))
    assert sorted(p.name for p in target.parent.iterdir()) == ["copy.bin"]  # no temporary file left


def test_put_replaces_an_existing_object(store: ObjectStore, tmp_path: Path) -> None:
    store.put_file("outputs/acme/j1/f.png", write(tmp_path, b"first version"))
    store.put_stream("outputs/acme/j1/f.png", io.BytesIO(b"second"), 6)
    assert b"".join(store.open("outputs/acme/j1/f.png")) == b"second"


def test_empty_object(store: ObjectStore, tmp_path: Path) -> None:
    store.put_stream("blobs/acme/empty", io.BytesIO(b""), 0)
    assert store.stat("blobs/acme/empty") == ObjectInfo("blobs/acme/empty", 0)
    store.get_file("blobs/acme/empty", tmp_path / "empty")
    assert (tmp_path / "empty").read_bytes() == b""


def test_put_stream_larger_than_multipart_threshold(store: ObjectStore, tmp_path: Path) -> None:
    size = 12 * MIB + 12345  # three 5 MiB parts on S3, the last one short
    stream = GeneratedStream(size)
    store.put_stream("blobs/acme/big", cast(BinaryIO, stream), size)

    assert store.stat("blobs/acme/big") == ObjectInfo("blobs/acme/big", size)
    store.get_file("blobs/acme/big", tmp_path / "big")
    assert sha256_of(iter([(tmp_path / "big").read_bytes()])) == stream.sha256.hexdigest()
    assert sha256_of(store.open("blobs/acme/big")) == stream.sha256.hexdigest()


@pytest.mark.parametrize(("given", "declared"), [(3, 10), (7 * MIB, 12 * MIB)], ids=["small", "multipart"])
def test_put_stream_shorter_than_its_size_fails(store: ObjectStore, given: int, declared: int) -> None:
    with pytest.raises(StorageError, match="blobs/acme/short"):
        store.put_stream("blobs/acme/short", io.BytesIO(bytes(given)), declared)
    assert store.stat("blobs/acme/short") is None  # nothing half-written is visible


def test_stat_of_absent_object_is_none(store: ObjectStore) -> None:
    assert store.stat("blobs/acme/nothing-here") is None


def test_delete(store: ObjectStore, tmp_path: Path) -> None:
    store.delete("blobs/acme/never-existed")  # not an error
    store.put_file("blobs/acme/x", write(tmp_path, b"x"))
    store.delete("blobs/acme/x")
    assert store.stat("blobs/acme/x") is None


def test_list_by_prefix(store: ObjectStore, tmp_path: Path) -> None:
    keys = {
        "outputs/acme/j1/0001.png": b"1",
        "outputs/acme/j1/0002.png": b"22",
        "outputs/acme/j2/0001.png": b"333",
        "outputs/other/j1/0001.png": b"4444",
        "blobs/acme/aa": b"55555",
    }
    for key, data in keys.items():
        store.put_stream(key, io.BytesIO(data), len(data))

    def listed(prefix: str) -> set[ObjectInfo]:
        return set(store.list(prefix))

    assert listed("outputs/acme/j1/") == {
        ObjectInfo("outputs/acme/j1/0001.png", 1),
        ObjectInfo("outputs/acme/j1/0002.png", 2),
    }
    assert {i.key for i in listed("outputs/acme/")} == {k for k in keys if k.startswith("outputs/acme/")}
    assert {i.key for i in listed("outputs/acme/j")} == {k for k in keys if k.startswith("outputs/acme/j")}
    assert listed("outputs/nobody/") == set()
    assert {i.key for i in listed("")} == set(keys)


def test_open_streams_chunks(store: ObjectStore) -> None:
    data = random.Random(2).randbytes(2 * MIB + 100)
    store.put_stream("outputs/acme/j1/big.exr", io.BytesIO(data), len(data))

    chunks = list(store.open("outputs/acme/j1/big.exr"))
    assert len(chunks) > 1
    assert max(map(len, chunks)) < len(data)
    assert b"".join(chunks) == data


def test_open_abandoned_early_releases_the_object(store: ObjectStore) -> None:
    data = bytes(3 * MIB)
    store.put_stream("outputs/acme/j1/a.exr", io.BytesIO(data), len(data))
    # More abandoned reads than the S3 connection pool holds: a leaked connection would show as a hang
    # or a pool warning, a leaked file handle as a ResourceWarning.
    for _ in range(15):
        chunks = store.open("outputs/acme/j1/a.exr")
        assert next(chunks)
        del chunks
    assert store.stat("outputs/acme/j1/a.exr") == ObjectInfo("outputs/acme/j1/a.exr", len(data))


def test_missing_object_cannot_be_read(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="blobs/acme/missing"):
        store.get_file("blobs/acme/missing", tmp_path / "out" / "missing")
    out_dir = tmp_path / "out"
    assert not out_dir.exists() or not list(out_dir.iterdir())  # no object, no temporary file
    with pytest.raises(StorageError, match="blobs/acme/missing"):
        list(store.open("blobs/acme/missing"))


def test_local_path_is_none_or_the_object(store: ObjectStore, tmp_path: Path) -> None:
    store.put_file("blobs/acme/lp", write(tmp_path, b"linked"))
    path = store.local_path("blobs/acme/lp")
    assert path is None or path.read_bytes() == b"linked"
    assert isinstance(store, S3Store) == (path is None)


INVALID_KEYS = ["/abs", "a/../b", "a//b", "", "a/./b", "a/", "..", "a\\b"]


def _operations(tmp_path: Path) -> dict[str, Callable[[ObjectStore, str], object]]:
    src = write(tmp_path, b"data")
    return {
        "put_file": lambda s, k: s.put_file(k, src),
        "put_stream": lambda s, k: s.put_stream(k, io.BytesIO(b"data"), 4),
        "get_file": lambda s, k: s.get_file(k, tmp_path / "out"),
        "open": lambda s, k: list(s.open(k)),
        "stat": lambda s, k: s.stat(k),
        "delete": lambda s, k: s.delete(k),
        "local_path": lambda s, k: s.local_path(k),
    }


@pytest.mark.parametrize("key", INVALID_KEYS)
def test_invalid_keys_are_refused(store: ObjectStore, tmp_path: Path, key: str) -> None:
    for name, operation in _operations(tmp_path).items():
        with pytest.raises(StorageError, match="invalid object key"):
            operation(store, key)
            pytest.fail(f"{name} accepted {key!r}")
    assert not (tmp_path / "out").exists()


# -- what only the S3 backend promises ----------------------------------------------------------------


def raw_client(server: S3ServerProcess) -> Minio:
    return Minio(server.endpoint, server.access_key, server.secret_key, secure=False)


def test_s3_creates_its_bucket_when_absent(s3_server: S3ServerProcess) -> None:
    bucket = unique_bucket()
    assert not raw_client(s3_server).bucket_exists(bucket)
    make_s3_store(s3_server, bucket)
    assert raw_client(s3_server).bucket_exists(bucket)
    make_s3_store(s3_server, bucket)  # and an existing bucket is simply used


def test_s3_large_stream_goes_multipart(s3_server: S3ServerProcess) -> None:
    store = make_s3_store(s3_server)
    size = 12 * MIB
    store.put_stream("blobs/acme/parts", cast(BinaryIO, GeneratedStream(size)), size)
    etag = raw_client(s3_server).stat_object(store.bucket, "blobs/acme/parts").etag
    assert etag is not None and etag.endswith("-3")  # S3 marks multipart ETags with their part count


def test_s3_presigned_put_then_get(s3_server: S3ServerProcess) -> None:
    store = make_s3_store(s3_server)
    key = "outputs/acme/j1/0001.png"
    with httpx.Client(trust_env=False, timeout=10) as http:  # no proxy from the environment on loopback
        put = http.put(store.presigned_put_url(key, expires_s=60), content=b"\x89PNG frame")
        assert put.status_code == 200, put.text
        assert store.stat(key) == ObjectInfo(key, 10)

        got = http.get(store.presigned_get_url(key, expires_s=60, filename="shot 0001 é.png"))
        assert got.status_code == 200, got.text
        assert got.content == b"\x89PNG frame"
        disposition = got.headers["content-disposition"]
        assert disposition.startswith('attachment; filename="shot 0001 _.png"')
        assert "filename*=UTF-8''shot%200001%20%C3%A9.png" in disposition


def test_s3_tampered_presigned_url_is_refused(s3_server: S3ServerProcess) -> None:
    store = make_s3_store(s3_server)
    store.put_stream("outputs/acme/j1/a.png", io.BytesIO(b"a"), 1)
    url = urlsplit(store.presigned_get_url("outputs/acme/j1/a.png"))
    query = dict(parse_qsl(url.query))
    query["X-Amz-Expires"] = "604800"  # stretch the lifetime without re-signing
    tampered = urlunsplit(url._replace(query=urlencode(query)))
    status = httpx.get(tampered, trust_env=False).status_code
    if status == 200:
        pytest.skip("this S3 server (moto) does not verify presigned signatures; MinIO does")
    assert status == 403


def test_s3_stopped_server_fails_fast_with_storage_error(s3_server: S3ServerProcess, tmp_path: Path) -> None:
    store = make_s3_store(s3_server, retries=2, backoff_s=0.2)
    store.put_file("blobs/acme/there", write(tmp_path, b"x"))
    s3_server.stop()
    try:
        for name, operation in _operations(tmp_path).items():
            if name == "local_path":
                continue
            started = time.monotonic()
            with pytest.raises(StorageError) as caught:
                operation(store, "blobs/acme/there")
            assert time.monotonic() - started < 10, name
            message = str(caught.value)
            assert "blobs/acme/there" in message and "3 attempts" in message, message
            assert "Connection" in message or "connection" in message, message
            assert s3_server.secret_key not in message
        with pytest.raises(StorageError, match="Connection"):
            list(store.list("blobs/"))
    finally:
        s3_server.start()
    assert store.stat("blobs/acme/there") == ObjectInfo("blobs/acme/there", 1)  # data outlives the outage


def _restart_later(server: S3ServerProcess, delay_s: float) -> threading.Thread:
    def restart() -> None:
        time.sleep(delay_s)
        server.start()

    thread = threading.Thread(target=restart, daemon=True)
    thread.start()
    return thread


def test_s3_put_rides_out_a_short_outage(s3_server: S3ServerProcess, tmp_path: Path) -> None:
    store = make_s3_store(s3_server, retries=8, backoff_s=0.2)
    data = random.Random(3).randbytes(6 * MIB)  # multipart
    s3_server.stop()
    thread = _restart_later(s3_server, 1.5)
    try:
        store.put_file("blobs/acme/after-outage", write(tmp_path, data))
    finally:
        thread.join()
    store.get_file("blobs/acme/after-outage", tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == data


def test_s3_seekable_stream_is_rewound_for_a_retry(s3_server: S3ServerProcess) -> None:
    store = make_s3_store(s3_server, retries=8, backoff_s=0.2)
    stream = io.BytesIO(b"HEADER" + b"payload-bytes" + b"TRAILER")
    stream.seek(6)  # the object starts at the current position, not at 0
    s3_server.stop()
    thread = _restart_later(s3_server, 1.0)
    try:
        store.put_stream("blobs/acme/rewound", stream, 13)
    finally:
        thread.join()
    assert b"".join(store.open("blobs/acme/rewound")) == b"payload-bytes"


def test_s3_unseekable_stream_is_not_retried(s3_server: S3ServerProcess) -> None:
    store = make_s3_store(s3_server, retries=8, backoff_s=0.5)
    s3_server.stop()
    try:
        started = time.monotonic()
        with pytest.raises(StorageError, match="not retried"):
            store.put_stream("blobs/acme/once", cast(BinaryIO, GeneratedStream(1000)), 1000)
        assert time.monotonic() - started < 2
    finally:
        s3_server.start()


def test_s3_download_resumes_after_a_dropped_connection(
    s3_server: S3ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    store = make_s3_store(s3_server, retries=8, backoff_s=0.2)
    size = 48 * MIB  # far more than socket buffers hold, so the cut lands mid-body
    stream = GeneratedStream(size, seed=11)
    store.put_stream("blobs/acme/resume", cast(BinaryIO, stream), size)

    caplog.set_level(logging.WARNING, logger="storage.s3")
    chunks = store.open("blobs/acme/resume")
    digest = hashlib.sha256(next(chunks))
    s3_server.stop()
    thread = _restart_later(s3_server, 1.0)
    try:
        for block in chunks:
            digest.update(block)
    finally:
        thread.join()
    assert digest.hexdigest() == stream.sha256.hexdigest()
    assert "resumes at byte" in caplog.text
