"""Integrity checks on upload: Content-MD5, x-amz-checksum-* (as a header
and as an aws-chunked trailer), signed streaming chunks, and that a failed
check stores nothing."""

import base64
import hashlib
import os

import botocore.httpchecksum
import pytest

from s3helpers import (
    CHECKSUM_ALGORITHMS,
    assert_s3_error,
    aws_chunked_signed,
    aws_chunked_unsigned,
    checksum_b64,
    expect_error,
    md5_b64,
    md5_hex,
    multipart_etag,
    sha256_hex,
)

MIB = 1024 * 1024
CHECKSUM_FAIL_CODES = {"BadDigest", "InvalidRequest"}


def assert_absent(s3, bucket, key):
    expect_error(s3.head_object, "404", 404, Bucket=bucket, Key=key)


def assert_not_aws_chunked(s3, bucket, key):
    enc = s3.head_object(Bucket=bucket, Key=key).get("ContentEncoding")
    assert not enc or "aws-chunked" not in enc, (
        f"Content-Encoding stored as {enc!r}: aws-chunked is a transfer detail and must not be stored"
    )


# ---------------------------------------------------------------- Content-MD5


def test_content_md5_correct(s3, bucket):
    data = os.urandom(3000)
    s3.put_object(Bucket=bucket, Key="m", Body=data, ContentMD5=md5_b64(data))
    assert s3.get_object(Bucket=bucket, Key="m")["Body"].read() == data


def test_content_md5_wrong_stores_nothing(s3, bucket):
    expect_error(s3.put_object, "BadDigest", 400, Bucket=bucket, Key="m", Body=b"data", ContentMD5=md5_b64(b"other"))
    assert_absent(s3, bucket, "m")


def test_content_md5_wrong_keeps_previous_version(s3, bucket):
    s3.put_object(Bucket=bucket, Key="m", Body=b"old")
    expect_error(s3.put_object, "BadDigest", 400, Bucket=bucket, Key="m", Body=b"new", ContentMD5=md5_b64(b"nope"))
    assert s3.get_object(Bucket=bucket, Key="m")["Body"].read() == b"old"


@pytest.mark.parametrize(
    "value",
    [
        "not-base64!!",
        md5_hex(b"data"),  # the hex digest: valid base64 characters, but 24 bytes
        base64.b64encode(hashlib.md5(b"data").digest()[:15]).decode(),
        base64.b64encode(hashlib.md5(b"data").digest() + b"\0").decode(),
    ],
    ids=["not-base64", "hex-digest", "15-bytes", "17-bytes"],
)
def test_content_md5_malformed(raw, s3, bucket, value):
    # AWS: a Content-MD5 that is not the base64 of 16 bytes is InvalidDigest
    # (BadDigest is for a well-formed digest that does not match the body).
    r = raw.request("PUT", bucket, "m", body=b"data", headers={"Content-MD5": value})
    assert_s3_error(r, 400, "InvalidDigest")
    assert_absent(s3, bucket, "m")


def test_content_md5_wrong_on_large_body_stores_nothing(raw, s3, bucket):
    # Large enough that the body is streamed to storage before the digest is known.
    data = os.urandom(8 * MIB + 123)
    r = raw.request("PUT", bucket, "big", body=data, headers={"Content-MD5": md5_b64(data[:-1])})
    assert_s3_error(r, 400, "BadDigest")
    assert_absent(s3, bucket, "big")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


# ---------------------------------------------------------------- checksum headers


@pytest.mark.parametrize("algo", CHECKSUM_ALGORITHMS)
def test_checksum_header_correct(raw, s3, bucket, algo):
    data = os.urandom(40000)
    r = raw.request("PUT", bucket, f"c-{algo}", body=data, headers={f"x-amz-checksum-{algo.lower()}": checksum_b64(algo, data)})
    assert r.status_code == 200, r.text
    assert s3.get_object(Bucket=bucket, Key=f"c-{algo}")["Body"].read() == data


@pytest.mark.parametrize("algo", CHECKSUM_ALGORITHMS)
def test_checksum_header_wrong_stores_nothing(raw, s3, bucket, algo):
    data = os.urandom(40000)
    r = raw.request("PUT", bucket, f"c-{algo}", body=data,
                    headers={f"x-amz-checksum-{algo.lower()}": checksum_b64(algo, b"something else")})
    assert_s3_error(r, 400, CHECKSUM_FAIL_CODES)
    assert_absent(s3, bucket, f"c-{algo}")


MALFORMED_CRC32 = {
    "not-base64": "!!not/base64",
    "3-bytes": base64.b64encode(b"\x01\x02\x03").decode(),
    "8-bytes": base64.b64encode(b"\x01" * 8).decode(),
    "hex": "%08x" % 0x1C291CA3,  # hex instead of base64: decodes to 6 bytes
}


@pytest.mark.parametrize("value", list(MALFORMED_CRC32.values()), ids=list(MALFORMED_CRC32))
def test_checksum_header_malformed_stores_nothing(raw, s3, bucket, value):
    s3.put_object(Bucket=bucket, Key="kept", Body=b"previous")
    for key in ("fresh", "kept"):
        r = raw.request("PUT", bucket, key, body=b"some data", headers={"x-amz-checksum-crc32": value})
        assert_s3_error(r, 400, CHECKSUM_FAIL_CODES)
    assert_absent(s3, bucket, "fresh")
    assert s3.get_object(Bucket=bucket, Key="kept")["Body"].read() == b"previous"


@pytest.mark.parametrize("algo", ["CRC32", "SHA1", "SHA256"])
def test_boto3_checksum_algorithms(s3, bucket, algo):
    data = os.urandom(20000)
    s3.put_object(Bucket=bucket, Key=algo, Body=data, ChecksumAlgorithm=algo)
    assert s3.get_object(Bucket=bucket, Key=algo)["Body"].read() == data
    # A value supplied by the caller is sent as is, and must be verified.
    expect_error(
        s3.put_object, CHECKSUM_FAIL_CODES, 400,
        Bucket=bucket, Key=algo + "-bad", Body=data, **{f"Checksum{algo}": checksum_b64(algo, b"x")},
    )
    assert_absent(s3, bucket, algo + "-bad")


def test_wrong_checksum_on_upload_part(raw, s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    data = os.urandom(10000)
    r = raw.request("PUT", bucket, "mp", query=[("partNumber", "1"), ("uploadId", up)], body=data,
                    headers={"x-amz-checksum-crc32": checksum_b64("CRC32", b"not it")})
    assert_s3_error(r, 400, CHECKSUM_FAIL_CODES)
    assert s3.list_parts(Bucket=bucket, Key="mp", UploadId=up).get("Parts", []) == []
    r = raw.request("PUT", bucket, "mp", query=[("partNumber", "1"), ("uploadId", up)], body=data,
                    headers={"Content-MD5": md5_b64(b"not it")})
    assert_s3_error(r, 400, "BadDigest")
    assert s3.list_parts(Bucket=bucket, Key="mp", UploadId=up).get("Parts", []) == []


# ---------------------------------------------------------------- aws-chunked


def chunked_headers(data: bytes, trailer_name: str | None) -> dict:
    h = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)),
    }
    if trailer_name:
        h["x-amz-trailer"] = trailer_name
    return h


@pytest.mark.parametrize("algo", CHECKSUM_ALGORITHMS)
def test_unsigned_trailer_correct(raw, s3, bucket, algo):
    data = os.urandom(200_000)
    name = f"x-amz-checksum-{algo.lower()}"
    body = aws_chunked_unsigned(data, 65536, (name, checksum_b64(algo, data)))
    r = raw.request("PUT", bucket, f"t-{algo}", body=body, payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                    headers=chunked_headers(data, name))
    assert r.status_code == 200, r.text
    got = s3.get_object(Bucket=bucket, Key=f"t-{algo}")
    assert got["ContentLength"] == len(data)
    assert got["Body"].read() == data
    assert got["ETag"] == f'"{md5_hex(data)}"'
    assert_not_aws_chunked(s3, bucket, f"t-{algo}")


@pytest.mark.parametrize("algo", ["CRC32", "CRC32C", "SHA256"])
def test_unsigned_trailer_wrong_stores_nothing(raw, s3, bucket, algo):
    data = os.urandom(100_000)
    name = f"x-amz-checksum-{algo.lower()}"
    body = aws_chunked_unsigned(data, 65536, (name, checksum_b64(algo, data + b"!")))
    r = raw.request("PUT", bucket, "bad-trailer", body=body, payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                    headers=chunked_headers(data, name))
    assert_s3_error(r, 400, CHECKSUM_FAIL_CODES)
    assert_absent(s3, bucket, "bad-trailer")


@pytest.mark.parametrize("value", list(MALFORMED_CRC32.values()), ids=list(MALFORMED_CRC32))
def test_unsigned_trailer_malformed_stores_nothing(raw, s3, bucket, value):
    data = os.urandom(70_000)
    name = "x-amz-checksum-crc32"
    body = aws_chunked_unsigned(data, 65536, (name, value))
    r = raw.request("PUT", bucket, "bad-trailer", body=body, payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                    headers=chunked_headers(data, name))
    assert_s3_error(r, 400, CHECKSUM_FAIL_CODES)
    assert_absent(s3, bucket, "bad-trailer")


def test_signed_chunks(raw, s3, bucket):
    data = os.urandom(150_000)
    path = raw.path(bucket, "signed-chunks")
    headers = chunked_headers(data, None)
    signed = raw.sign("PUT", path, [], headers, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
    body = aws_chunked_signed(data, 65536, signed)
    r = raw.http.put(raw.endpoint + path, headers=signed.headers, data=body, timeout=60)
    assert r.status_code == 200, r.text
    assert s3.get_object(Bucket=bucket, Key="signed-chunks")["Body"].read() == data
    assert_not_aws_chunked(s3, bucket, "signed-chunks")


def test_signed_chunks_with_trailer(raw, s3, bucket):
    data = os.urandom(150_000)
    path = raw.path(bucket, "signed-trailer")
    headers = chunked_headers(data, "x-amz-checksum-crc32c")
    signed = raw.sign("PUT", path, [], headers, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER")
    body = aws_chunked_signed(data, 65536, signed, ("x-amz-checksum-crc32c", checksum_b64("CRC32C", data)))
    r = raw.http.put(raw.endpoint + path, headers=signed.headers, data=body, timeout=60)
    assert r.status_code == 200, r.text
    assert s3.get_object(Bucket=bucket, Key="signed-trailer")["Body"].read() == data
    assert_not_aws_chunked(s3, bucket, "signed-trailer")


def test_signed_chunks_tampered_stores_nothing(raw, s3, bucket):
    data = os.urandom(150_000)
    path = raw.path(bucket, "tampered")
    headers = chunked_headers(data, None)
    signed = raw.sign("PUT", path, [], headers, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
    body = bytearray(aws_chunked_signed(data, 65536, signed))
    # Flip one payload byte in the second chunk: its signature no longer matches.
    pos = body.index(b"\r\n", body.index(b"chunk-signature=", 100)) + 10
    body[pos] ^= 0xFF
    r = raw.http.put(raw.endpoint + path, headers=signed.headers, data=bytes(body), timeout=60)
    assert_s3_error(r, {400, 403}, {"SignatureDoesNotMatch", "IncompleteBody", "InvalidRequest"})
    assert_absent(s3, bucket, "tampered")


def test_signed_chunks_with_a_tampered_trailer_store_nothing(raw, s3, bucket):
    """The trailer of a signed streaming upload is signed too: an altered trailer signature, a
    checksum changed after signing, or a signature left off, and nothing is stored."""
    data = os.urandom(150_000)
    name = "x-amz-checksum-crc32c"
    good = checksum_b64("CRC32C", data)
    other = checksum_b64("CRC32C", data[:-1] + bytes([data[-1] ^ 1]))
    assert other != good

    def flip_signature(body: bytes) -> bytes:
        head, sig = body.rsplit(b"x-amz-trailer-signature:", 1)
        sig = sig.rstrip(b"\r\n")
        flipped = (b"0" if sig[:1] != b"0" else b"1") + sig[1:]
        return head + b"x-amz-trailer-signature:" + flipped + b"\r\n\r\n"

    cases = [
        ("trailer signature altered", flip_signature),
        ("checksum changed after signing",
         lambda body: body.replace(f"{name}:{good}\r\n".encode(), f"{name}:{other}\r\n".encode())),
        ("trailer signature left off",
         lambda body: body.split(b"x-amz-trailer-signature:", 1)[0] + b"\r\n"),
    ]
    for i, (what, tamper) in enumerate(cases):
        key = f"tampered-trailer-{i}"
        path = raw.path(bucket, key)
        signed = raw.sign("PUT", path, [], chunked_headers(data, name), "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER")
        body = aws_chunked_signed(data, 65536, signed, (name, good))
        tampered = tamper(body)
        assert tampered != body, what
        r = raw.http.put(raw.endpoint + path, headers=signed.headers, data=tampered, timeout=60)
        assert_s3_error(r, {400, 403}, {"SignatureDoesNotMatch", "IncompleteBody", "InvalidRequest"})
        assert_absent(s3, bucket, key)
    # The same upload, untouched, is stored: the refusals were for the tampering alone.
    path = raw.path(bucket, "untampered-trailer")
    signed = raw.sign("PUT", path, [], chunked_headers(data, name), "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER")
    r = raw.http.put(raw.endpoint + path, headers=signed.headers,
                     data=aws_chunked_signed(data, 65536, signed, (name, good)), timeout=60)
    assert r.status_code == 200, r.text
    assert s3.get_object(Bucket=bucket, Key="untampered-trailer")["Body"].read() == data


def test_decoded_length_mismatch_is_client_error(raw, s3, bucket):
    data = os.urandom(5000)
    name = "x-amz-checksum-crc32"
    body = aws_chunked_unsigned(data, 4096, (name, checksum_b64("CRC32", data)))
    headers = chunked_headers(data, name)
    headers["x-amz-decoded-content-length"] = str(len(data) + 10)
    r = raw.request("PUT", bucket, "short", body=body, payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER", headers=headers)
    assert 400 <= r.status_code < 500, f"expected a 4xx, got {r.status_code}: {r.text[:300]}"
    assert_absent(s3, bucket, "short")


# ---------------------------------------------------------------- boto3 as over TLS


@pytest.fixture
def tls_style_boto3(server, monkeypatch):
    """A boto3 client that sends uploads the way it does to an https endpoint:
    HTTP chunked transfer, aws-chunked content encoding, CRC32 trailer."""
    orig = botocore.httpchecksum.urlparse
    monkeypatch.setattr(botocore.httpchecksum, "urlparse", lambda url, *a, **k: orig(url, *a, **k)._replace(scheme="https"))
    client = server.client()
    seen = []

    def record(request, **kwargs):
        seen.append({k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()})

    client.meta.events.register("before-send.s3", record)
    return client, seen


def test_boto3_trailing_checksum_put_and_multipart(tls_style_boto3, s3, bucket):
    client, seen = tls_style_boto3
    data = os.urandom(3 * MIB + 17)
    client.put_object(Bucket=bucket, Key="trail", Body=data)
    sent = seen[-1]
    assert sent.get("x-amz-content-sha256") == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    assert "aws-chunked" in sent.get("content-encoding", "")
    assert s3.get_object(Bucket=bucket, Key="trail")["Body"].read() == data
    head = s3.head_object(Bucket=bucket, Key="trail")
    assert head["ETag"] == f'"{md5_hex(data)}"'
    assert_not_aws_chunked(s3, bucket, "trail")

    # Multipart upload as s3transfer does it (CRC32 per part, checksums in Complete).
    parts = [os.urandom(5 * MIB), os.urandom(MIB + 3)]
    up = client.create_multipart_upload(Bucket=bucket, Key="trail-mp", ChecksumAlgorithm="CRC32")["UploadId"]
    done = []
    for n, p in enumerate(parts, 1):
        r = client.upload_part(Bucket=bucket, Key="trail-mp", UploadId=up, PartNumber=n, Body=p, ChecksumAlgorithm="CRC32")
        assert r.get("ChecksumCRC32") in (None, checksum_b64("CRC32", p))
        done.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumCRC32": checksum_b64("CRC32", p)})
    client.complete_multipart_upload(Bucket=bucket, Key="trail-mp", UploadId=up, MultipartUpload={"Parts": done})
    got = s3.get_object(Bucket=bucket, Key="trail-mp")
    assert got["ETag"] == multipart_etag(parts)
    assert sha256_hex(got["Body"].read()) == sha256_hex(b"".join(parts))


def test_boto3_content_encoding_kept_next_to_aws_chunked(tls_style_boto3, s3, bucket):
    client, _ = tls_style_boto3
    client.put_object(Bucket=bucket, Key="gz", Body=b"\x1f\x8b pretend gzip", ContentEncoding="gzip")
    head = s3.head_object(Bucket=bucket, Key="gz")
    assert head.get("ContentEncoding") == "gzip"
