"""A real S3-protocol server on 127.0.0.1 for tests, which can be stopped and started again.

Two child processes make it up:

* ``moto_server`` (pip ``moto[server]``) on a private port: the S3 implementation. It keeps its objects in
  memory, so it must outlive an outage, or every blob would be gone after a restart (MinIO keeps its disk).
* a small TCP forwarder (this file, run as a script) on the public port that clients use. ``stop()`` kills it:
  new connections are refused and open ones are cut, exactly what clients see when the S3 server process
  dies. ``start()`` listens on the same port again and the data is still there.

``stop(lose_data=True)`` also kills moto, for tests of a store that comes back empty; ``pause()`` freezes the
forwarder (connections are accepted by the kernel but never answered) to exercise timeouts.

Usage::

    with S3ServerProcess() as server:
        store = S3Store(server.endpoint, server.access_key, server.secret_key, "bucket")
        server.stop()
        ...
        server.start()
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

HOST = "127.0.0.1"  # never anything else: tests must not expose a server beyond this machine
STARTUP_TIMEOUT_S = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    """Whether an HTTP server answers ``GET /`` on ``port`` (any status will do)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        conn.request("GET", "/")
        conn.getresponse().read()
        return True
    except OSError:
        return False
    finally:
        conn.close()


class S3ServerProcess:
    """An S3 server on ``127.0.0.1:port`` with stop/start on the same port (see the module docstring)."""

    def __init__(
        self,
        port: int | None = None,
        access_key: str = "farm-test-access",
        secret_key: str = "farm-test-secret-key",
        log_dir: Path | None = None,
    ) -> None:
        self.host = HOST
        self.port = port or free_port()
        self.endpoint = f"{HOST}:{self.port}"
        # moto accepts any credentials; fixed ones let tests check that the secret never leaks into errors.
        self.access_key = access_key
        self.secret_key = secret_key
        self.log_dir = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="s3-server-"))
        self._backend_port = free_port()
        self._moto: subprocess.Popen[bytes] | None = None
        self._proxy: subprocess.Popen[bytes] | None = None

    @property
    def credentials(self) -> tuple[str, str, str]:
        """``(endpoint, access_key, secret_key)`` for an ``S3Store``."""
        return self.endpoint, self.access_key, self.secret_key

    @property
    def running(self) -> bool:
        """Whether clients can reach the server now (false after ``stop()``)."""
        return self._proxy is not None and self._proxy.poll() is None

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        # moto reads AWS-style variables at import; fixed values keep it away from any real account config.
        env.update(
            AWS_ACCESS_KEY_ID=self.access_key,
            AWS_SECRET_ACCESS_KEY=self.secret_key,
            AWS_DEFAULT_REGION="us-east-1",
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        )
        log = (self.log_dir / f"{name}.log").open("ab")
        try:
            return subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        finally:
            log.close()  # the child holds its own descriptor

    def _wait_until_answers(self, proc: subprocess.Popen[bytes], port: int, name: str) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                log = (self.log_dir / f"{name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} exited with {proc.returncode} before answering:\n{log}")
            if _answers(port):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{name} did not answer on {HOST}:{port} within {STARTUP_TIMEOUT_S}s")

    def start(self) -> None:
        """Start (or restart after ``stop()``) and return once the server answers on ``endpoint``."""
        if self._moto is None or self._moto.poll() is not None:
            self._moto = self._spawn(
                "moto", [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self._backend_port)]
            )
            self._wait_until_answers(self._moto, self._backend_port, "moto")
        if not self.running:
            self._proxy = self._spawn(
                "proxy",
                [sys.executable, str(Path(__file__).resolve()), str(self.port), str(self._backend_port)],
            )
            self._wait_until_answers(self._proxy, self.port, "proxy")

    def stop(self, lose_data: bool = False) -> None:
        """Make the server unreachable at once, as if its process died; ``lose_data`` also drops its data."""
        _kill(self._proxy)
        self._proxy = None
        if lose_data:
            _kill(self._moto)
            self._moto = None

    def pause(self) -> None:
        """Freeze the server: connections open but nothing is answered until ``resume()``."""
        if self._proxy is not None:
            self._proxy.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Undo ``pause()``."""
        if self._proxy is not None:
            self._proxy.send_signal(signal.SIGCONT)

    def close(self) -> None:
        """Stop both processes for good."""
        self.resume()
        self.stop(lose_data=True)

    def __enter__(self) -> S3ServerProcess:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _kill(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL, not SIGTERM: the point is an abrupt death, and it cannot be ignored while paused."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


@contextlib.contextmanager
def running_s3_server(log_dir: Path | None = None) -> Iterator[S3ServerProcess]:
    """A started ``S3ServerProcess``, closed on exit; ``.credentials`` is ``(endpoint, access, secret)``."""
    server = S3ServerProcess(log_dir=log_dir)
    try:
        server.start()
        yield server
    finally:
        server.close()


# -- the forwarder, run as ``python tests/s3_server.py LISTEN_PORT TARGET_PORT`` ----------------------------


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(256 * 1024):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.transport.abort()


async def _forward(
    client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter, target: int
) -> None:
    try:
        server_reader, server_writer = await asyncio.open_connection(HOST, target)
    except OSError:
        client_writer.transport.abort()
        return
    await asyncio.gather(_pipe(client_reader, server_writer), _pipe(server_reader, client_writer))
    server_writer.close()
    client_writer.close()


async def _serve(listen: int, target: int) -> None:
    server = await asyncio.start_server(lambda r, w: _forward(r, w, target), HOST, listen, reuse_address=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1]), int(sys.argv[2])))
