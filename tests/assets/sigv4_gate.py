"""A signature-checking gate in front of the test S3 server (moto accepts any signature, MinIO and S3 do not).

It forwards to moto what S3 itself would accept and answers ``403`` to the rest, as S3 does:

* a presigned request (``X-Amz-Signature`` in the query): the SigV4 query signature is recomputed from the
  method, the path (the key), the query and the host with the secret key, and the expiry is checked;
* a browser-form upload (``POST /bucket`` with a ``policy``): the policy's signature, its expiration and each of
  its conditions (bucket, ``starts-with`` key prefix) are checked against the form;
* a request signed in its ``Authorization`` header (the farm's own keyed clients) is forwarded as is;
* anything else (anonymous) is refused.

Every request is recorded (``log``: method, path, how it was authorised, status), so tests can tell how a
process reached the store.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import hmac
import http.client
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import quote, unquote, urlsplit

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    auth: str  # "presigned", "policy", "keyed", "anonymous"
    status: int
    key: str = ""  # the form's key of a policy upload


def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _encode(value: str) -> str:
    return quote(value, safe="-_.~")


class Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_presigned(method: str, raw_path: str, host: str, secret: str, now: datetime) -> None:
    """Raise ``Refused`` unless the SigV4 query signature of this request is right and unexpired."""
    path, _, query = raw_path.partition("?")
    pairs = [(unquote(k), unquote(v)) for k, _, v in (p.partition("=") for p in query.split("&") if p)]
    params = dict(pairs)
    given = params.get("X-Amz-Signature", "")
    credential = params.get("X-Amz-Credential", "").split("/")
    if len(credential) != 5 or params.get("X-Amz-SignedHeaders") != "host":
        raise Refused("AuthorizationQueryParametersError", "malformed presigned query")
    _access, date, region, service, _term = credential
    amz_date = params.get("X-Amz-Date", "")
    signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    if now > signed_at + timedelta(seconds=int(params.get("X-Amz-Expires", "0"))):
        raise Refused("AccessDenied", "Request has expired")
    canonical_query = "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(pairs) if k != "X-Amz-Signature")
    canonical = "\n".join([method, path, canonical_query, f"host:{host}\n", "host", "UNSIGNED-PAYLOAD"])
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    expected = hmac.new(_signing_key(secret, date, region, service), to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given):
        raise Refused("SignatureDoesNotMatch", "the signature does not cover this request")


def form_fields(content_type: str, body: bytes) -> dict[str, bytes]:
    """The fields of a multipart/form-data body (the file's bytes under ``file``)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields: dict[str, bytes] = {}
    for part in message.iter_parts():  # type: ignore[attr-defined]
        name = part.get_param("name", header="content-disposition")
        fields[str(name)] = part.get_payload(decode=True) or b""
    return fields


def check_policy(bucket: str, fields: dict[str, bytes], secret: str, now: datetime) -> None:
    """Raise ``Refused`` unless the form's policy is signed with the secret, unexpired, and the form meets it."""
    try:
        policy_b64 = fields["policy"].decode()
        credential = fields["x-amz-credential"].decode().split("/")
        given = fields["x-amz-signature"].decode()
        _access, date, region, service, _term = credential
    except (KeyError, ValueError) as exc:
        raise Refused("InvalidPolicyDocument", f"incomplete form: {exc}") from exc
    key = _signing_key(secret, date, region, service)
    expected = hmac.new(key, policy_b64.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given):
        raise Refused("SignatureDoesNotMatch", "the policy's signature is wrong")
    policy = json.loads(base64.b64decode(policy_b64))
    expires = datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    if now > expires:
        raise Refused("AccessDenied", "Invalid according to Policy: Policy expired")
    values = {name: value.decode(errors="replace") for name, value in fields.items() if name != "file"}
    values["bucket"] = bucket
    for condition in policy["conditions"]:
        if isinstance(condition, dict):
            condition = ["eq", *next(iter(condition.items()))]
            condition[1] = "$" + condition[1]
        op, field, wanted = condition
        actual = values.get(field.lstrip("$").lower(), values.get(field.lstrip("$"), ""))
        if (op == "eq" and actual != wanted) or (op == "starts-with" and not actual.startswith(wanted)):
            raise Refused("AccessDenied", f"Invalid according to Policy: Policy Condition failed: {condition}")


def _read_body(req: BaseHTTPRequestHandler) -> bytes:
    """The request's body, sent with a length or in chunks."""
    if "chunked" in req.headers.get("Transfer-Encoding", "").lower():
        parts = []
        while size := int(req.rfile.readline().split(b";")[0].strip() or b"0", 16):
            parts.append(req.rfile.read(size))
            req.rfile.readline()
        while req.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return b"".join(parts)
    length = int(req.headers.get("Content-Length") or 0)
    return req.rfile.read(length) if length else b""


class SigV4Gate:
    """The gate on ``127.0.0.1:port`` in front of ``backend`` (``host:port``); ``endpoint`` is its address."""

    def __init__(self, backend: str, secret_key: str) -> None:
        self.backend = backend
        self.secret_key = secret_key
        self.log: list[Seen] = []
        gate = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
                pass

            def _handle(self) -> None:
                gate.handle(self)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle  # noqa: N815

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"{HOST}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> SigV4Gate:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        body = _read_body(req)
        now = datetime.now(UTC)
        path = req.path
        auth, key = "anonymous", ""
        try:
            if "X-Amz-Signature=" in urlsplit(path).query:
                auth = "presigned"
                check_presigned(req.command, path, req.headers.get("Host", ""), self.secret_key, now)
            elif req.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256 "):
                auth = "keyed"
            elif req.command == "POST" and "multipart/form-data" in req.headers.get("Content-Type", ""):
                auth = "policy"
                fields = form_fields(req.headers["Content-Type"], body)
                key = fields.get("key", b"").decode(errors="replace")
                check_policy(unquote(urlsplit(path).path.strip("/")), fields, self.secret_key, now)
            else:
                raise Refused("AccessDenied", "anonymous access is not allowed")
        except Refused as refused:
            payload = f"<Error><Code>{refused.code}</Code><Message>{refused}</Message></Error>".encode()
            self.log.append(Seen(req.command, path.split("?")[0], auth, 403, key))
            req.send_response(403)
            req.send_header("Content-Type", "application/xml")
            req.send_header("Content-Length", str(len(payload)))
            req.end_headers()
            req.wfile.write(payload)
            return
        status, headers, data = self._forward(req.command, path, dict(req.headers.items()), body)
        self.log.append(Seen(req.command, path.split("?")[0], auth, status, key))
        req.send_response(status)
        for name, value in headers:
            # A HEAD answer's length is the object's: kept. Otherwise the body is re-sent whole, with its length.
            if name.lower() not in {"transfer-encoding", "connection"} and (
                req.command == "HEAD" or name.lower() != "content-length"
            ):
                req.send_header(name, value)
        if req.command != "HEAD":
            req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(data)

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        host, port = self.backend.split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            hop = {"connection", "transfer-encoding", "content-length", "expect"}
            headers = {k: v for k, v in headers.items() if k.lower() not in hop}
            headers["Content-Length"] = str(len(body))
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()
