"""Helpers shared by the integration tests: a minimal SigV4 signer for raw
requests (so tests can send exactly the bytes they mean, including malformed
ones), aws-chunked body encoders, checksum functions, and small utilities.

Nothing here knows anything about obhut's internals; it speaks S3 only.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import os
import re
import struct
import urllib.parse
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass

import botocore.exceptions
import requests

REGION = "de-1"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

# Environment variables that would make a client talk to something other than
# the server under test, or that break clients against plain-HTTP loopback.
_STRIPPED_ENV = (
    "AWS_CA_BUNDLE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "OBHUT_ADMIN_URL",
    "OBHUT_TOKEN",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
)


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a client subprocess: the current one without
    credentials, profiles, proxies and CA-bundle overrides, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in _STRIPPED_ENV and not k.startswith("RCLONE_")}
    env["AWS_CONFIG_FILE"] = "/nonexistent/obhut-tests/aws-config"
    env["AWS_SHARED_CREDENTIALS_FILE"] = "/nonexistent/obhut-tests/aws-credentials"
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env["NO_PROXY"] = "127.0.0.1,localhost"
    env["no_proxy"] = "127.0.0.1,localhost"
    if extra:
        env.update(extra)
    return env


def parse_env_file(text: str) -> dict[str, str]:
    """Parses KEY=VALUE lines (tolerating a leading `export ` and quotes)."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].strip()
        key, sep, value = line.partition("=")
        assert sep, f"line without '=' in env file: {raw!r}"
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def multipart_etag(parts: list[bytes]) -> str:
    digests = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


# --------------------------------------------------------------------------
# Checksums (values as S3 sends them: base64 of the big-endian digest)


def _reflected_table(poly: int, width: int) -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc & ((1 << width) - 1))
    return table


_CRC32C_TABLE = _reflected_table(0x82F63B78, 32)
_CRC64NVME_TABLE = _reflected_table(0x9A6C9329AC4BC9B5, 64)


def crc32c_int(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def crc64nvme_int(data: bytes) -> int:
    crc = 0xFFFFFFFFFFFFFFFF
    table = _CRC64NVME_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFFFFFFFFFF


def checksum_b64(algorithm: str, data: bytes) -> str:
    algorithm = algorithm.upper()
    if algorithm == "CRC32":
        raw = struct.pack(">I", zlib.crc32(data) & 0xFFFFFFFF)
    elif algorithm == "CRC32C":
        raw = struct.pack(">I", crc32c_int(data))
    elif algorithm == "CRC64NVME":
        raw = struct.pack(">Q", crc64nvme_int(data))
    elif algorithm == "SHA1":
        raw = hashlib.sha1(data).digest()
    elif algorithm == "SHA256":
        raw = hashlib.sha256(data).digest()
    else:
        raise ValueError(algorithm)
    return base64.b64encode(raw).decode()


CHECKSUM_ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")


# --------------------------------------------------------------------------
# SigV4


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str = REGION, service: str = "s3") -> bytes:
    k = _hmac(("AWS4" + secret).encode(), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def uri_encode(s: str, *, slash: bool = True) -> str:
    """RFC 3986 encoding as SigV4 wants it (unreserved characters kept)."""
    return urllib.parse.quote(s, safe="-_.~" + ("" if slash else "/"))


def canonical_query(query: list[tuple[str, str]]) -> str:
    pairs = sorted((uri_encode(k), uri_encode(v)) for k, v in query)
    return "&".join(f"{k}={v}" for k, v in pairs)


@dataclass
class Signed:
    headers: dict[str, str]
    signature: str
    signing_key: bytes
    amz_date: str
    scope: str


def sign(
    method: str,
    host: str,
    path: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    payload_hash: str,
    access_key: str,
    secret_key: str,
    *,
    region: str = REGION,
    now: dt.datetime | None = None,
) -> Signed:
    """Signs a request in the Authorization header. `path` is the already
    URI-encoded path as it goes on the wire."""
    now = now or dt.datetime.now(dt.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    hdrs = dict(headers)
    hdrs["host"] = host
    hdrs["x-amz-date"] = amz_date
    hdrs["x-amz-content-sha256"] = payload_hash
    lower = {k.lower(): " ".join(str(v).strip().split()) for k, v in hdrs.items()}
    signed_names = sorted(lower)
    canonical_headers = "".join(f"{n}:{lower[n]}\n" for n in signed_names)
    signed_headers = ";".join(signed_names)
    creq = "\n".join(
        [method, path, canonical_query(query), canonical_headers, signed_headers, payload_hash]
    )
    scope = f"{date}/{region}/s3/aws4_request"
    sts = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()]
    )
    key = signing_key(secret_key, date, region)
    signature = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    hdrs["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    return Signed(hdrs, signature, key, amz_date, scope)


def presign(
    method: str,
    host: str,
    path: str,
    query: list[tuple[str, str]],
    access_key: str,
    secret_key: str,
    *,
    expires: int = 300,
    region: str = REGION,
    now: dt.datetime | None = None,
) -> str:
    """Returns the query string (already encoded) of a presigned URL."""
    now = now or dt.datetime.now(dt.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{amz_date[:8]}/{region}/s3/aws4_request"
    q = list(query) + [
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
        ("X-Amz-Credential", f"{access_key}/{scope}"),
        ("X-Amz-Date", amz_date),
        ("X-Amz-Expires", str(expires)),
        ("X-Amz-SignedHeaders", "host"),
    ]
    creq = "\n".join([method, path, canonical_query(q), f"host:{host}\n", "host", UNSIGNED_PAYLOAD])
    sts = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()]
    )
    sig = hmac.new(signing_key(secret_key, amz_date[:8], region), sts.encode(), hashlib.sha256).hexdigest()
    return canonical_query(q + [("X-Amz-Signature", sig)])


# --------------------------------------------------------------------------
# aws-chunked bodies


def aws_chunked_unsigned(data: bytes, chunk_size: int, trailer: tuple[str, str] | None) -> bytes:
    """STREAMING-UNSIGNED-PAYLOAD-TRAILER body, as boto3 builds it."""
    out = bytearray()
    for i in range(0, len(data), chunk_size):
        chunk = data[i : i + chunk_size]
        out += b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    out += b"0\r\n"
    if trailer:
        out += f"{trailer[0]}:{trailer[1]}\r\n".encode()
    out += b"\r\n"
    return bytes(out)


def aws_chunked_signed(
    data: bytes,
    chunk_size: int,
    signed: Signed,
    trailer: tuple[str, str] | None = None,
) -> bytes:
    """STREAMING-AWS4-HMAC-SHA256-PAYLOAD(-TRAILER) body, chunk signatures
    chained from the seed signature of the Authorization header."""
    prev = signed.signature
    out = bytearray()
    chunks = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)] + [b""]
    for chunk in chunks:
        sts = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                signed.amz_date,
                signed.scope,
                prev,
                EMPTY_SHA256,
                hashlib.sha256(chunk).hexdigest(),
            ]
        )
        sig = hmac.new(signed.signing_key, sts.encode(), hashlib.sha256).hexdigest()
        prev = sig
        out += b"%x;chunk-signature=%s\r\n" % (len(chunk), sig.encode()) + chunk
        if chunk or trailer is None:
            out += b"\r\n"
    if trailer:
        trailer_line = f"{trailer[0]}:{trailer[1]}\n"
        sts = "\n".join(
            [
                "AWS4-HMAC-SHA256-TRAILER",
                signed.amz_date,
                signed.scope,
                prev,
                hashlib.sha256(trailer_line.encode()).hexdigest(),
            ]
        )
        tsig = hmac.new(signed.signing_key, sts.encode(), hashlib.sha256).hexdigest()
        out += f"{trailer[0]}:{trailer[1]}\r\n".encode()
        out += f"x-amz-trailer-signature:{tsig}\r\n\r\n".encode()
    return bytes(out)


# --------------------------------------------------------------------------
# Raw client


class RawS3:
    """Sends hand-built, SigV4-signed requests with `requests`."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str, region: str = REGION):
        u = urllib.parse.urlsplit(endpoint)
        self.endpoint = endpoint.rstrip("/")
        self.host = u.netloc
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.http = requests.Session()
        self.http.trust_env = False

    @staticmethod
    def path(bucket: str | None = None, key: str | None = None) -> str:
        p = "/"
        if bucket is not None:
            p += uri_encode(bucket)
            if key is not None:
                p += "/" + uri_encode(key, slash=False)
        return p

    def sign(self, method, path, query, headers, payload_hash, *, now=None, access_key=None, secret_key=None, region=None):
        return sign(
            method,
            self.host,
            path,
            query,
            headers,
            payload_hash,
            access_key or self.access_key,
            secret_key or self.secret_key,
            region=region or self.region,
            now=now,
        )

    def request(
        self,
        method: str,
        bucket: str | None = None,
        key: str | None = None,
        *,
        query: list[tuple[str, str]] | dict | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        payload_hash: str | None = None,
        now: dt.datetime | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        region: str | None = None,
        signed: bool = True,
        timeout: float = 60,
    ) -> requests.Response:
        if isinstance(query, dict):
            query = list(query.items())
        query = query or []
        path = self.path(bucket, key)
        headers = dict(headers or {})
        if signed:
            ph = payload_hash if payload_hash is not None else hashlib.sha256(body).hexdigest()
            headers = self.sign(
                method, path, query, headers, ph,
                now=now, access_key=access_key, secret_key=secret_key, region=region,
            ).headers
        url = self.endpoint + path
        if query:
            url += "?" + canonical_query(query)
        return self.http.request(method, url, headers=headers, data=body, timeout=timeout, allow_redirects=False)

    def presigned_url(self, method: str, bucket: str, key: str, *, expires=300, now=None, query=None) -> str:
        path = self.path(bucket, key)
        qs = presign(
            method, self.host, path, list(query or []), self.access_key, self.secret_key,
            expires=expires, region=self.region, now=now,
        )
        return f"{self.endpoint}{path}?{qs}"


def xml_error(resp: requests.Response) -> tuple[str | None, str]:
    """(code, message) of an S3 XML error body; (None, text) if not XML."""
    try:
        root = ET.fromstring(resp.content)
    except ET.ParseError:
        return None, resp.text
    root_tag = strip_ns(root.tag)
    if root_tag != "Error":
        return None, resp.text
    code = None
    msg = ""
    for child in root:
        if strip_ns(child.tag) == "Code":
            code = child.text
        elif strip_ns(child.tag) == "Message":
            msg = child.text or ""
    return code, msg


def strip_ns(tag: str) -> str:
    return tag.split("}", 1)[1] if "}" in tag else tag


def xml_find_all(root: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in root.iter() if strip_ns(e.tag) == name]


def assert_s3_error(resp: requests.Response, status: int | set[int], codes: str | set[str] | None):
    """Checks status and (for non-HEAD responses) the S3 XML error code."""
    statuses = {status} if isinstance(status, int) else set(status)
    code, msg = xml_error(resp) if resp.request.method != "HEAD" else (None, "")
    assert resp.status_code in statuses, (
        f"{resp.request.method} {resp.request.url}: expected HTTP {sorted(statuses)} "
        f"({codes}), got {resp.status_code}: {resp.text[:500]!r}"
    )
    if codes is not None and resp.request.method != "HEAD":
        codes = {codes} if isinstance(codes, str) else set(codes)
        assert code in codes, (
            f"{resp.request.method} {resp.request.url}: expected error code {sorted(codes)}, "
            f"got {code!r} (HTTP {resp.status_code}): {resp.text[:500]!r}"
        )


def client_error(fn, *args, **kwargs) -> tuple[str, int, dict]:
    """Runs a boto3 call that must fail; returns (code, http_status, response)."""
    try:
        result = fn(*args, **kwargs)
    except botocore.exceptions.ClientError as e:
        return (
            e.response.get("Error", {}).get("Code", ""),
            e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0),
            e.response,
        )
    raise AssertionError(f"{getattr(fn, '__name__', fn)} was expected to fail but returned {result!r}")


def expect_error(fn, code: str | set[str], status: int | set[int], *args, **kwargs) -> dict:
    got_code, got_status, resp = client_error(fn, *args, **kwargs)
    codes = {code} if isinstance(code, str) else set(code)
    statuses = {status} if isinstance(status, int) else set(status)
    assert got_code in codes and got_status in statuses, (
        f"{getattr(fn, '__name__', fn)}: expected {sorted(codes)}/{sorted(statuses)}, "
        f"got {got_code!r}/{got_status}: {resp.get('Error')}"
    )
    return resp


_BUCKET_SAFE = re.compile(r"[^a-z0-9-]")


def unique_name(prefix: str) -> str:
    """A fresh, valid bucket name."""
    prefix = _BUCKET_SAFE.sub("-", prefix.lower())[:40].strip("-") or "b"
    return f"{prefix}-{os.urandom(5).hex()}"
