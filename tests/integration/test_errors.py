"""Client mistakes get the AWS error code and HTTP status, never a 5xx, and a
failed write stores nothing."""

import datetime as dt
import hashlib

import pytest
import requests

from s3helpers import (
    EMPTY_SHA256,
    assert_s3_error,
    expect_error,
    md5_b64,
    unique_name,
)


def now_utc():
    return dt.datetime.now(dt.timezone.utc)


# ---------------------------------------------------------------- authentication


def test_wrong_secret(server, bucket, s3):
    bad = server.client(secret_key=server.demo["AWS_SECRET_ACCESS_KEY"][:-2] + "xx")
    expect_error(bad.list_buckets, "SignatureDoesNotMatch", 403)
    expect_error(bad.put_object, "SignatureDoesNotMatch", 403, Bucket=bucket, Key="k", Body=b"x")
    expect_error(s3.head_object, "404", 404, Bucket=bucket, Key="k")


def test_unknown_access_key(server, bucket):
    bad = server.client(access_key="AKIAOBHUTUNKNOWN0000", secret_key="x" * 40)
    expect_error(bad.list_buckets, "InvalidAccessKeyId", 403)
    expect_error(bad.get_object, "InvalidAccessKeyId", 403, Bucket=bucket, Key="k")


@pytest.mark.parametrize("minutes", [-20, 20, -60 * 24])
def test_clock_skew(raw, bucket, minutes):
    r = raw.request("GET", bucket, now=now_utc() + dt.timedelta(minutes=minutes))
    assert_s3_error(r, 403, "RequestTimeTooSkewed")


@pytest.mark.parametrize("minutes", [-14, 14])
def test_clock_skew_within_limit(raw, bucket, minutes):
    r = raw.request("GET", bucket, now=now_utc() + dt.timedelta(minutes=minutes))
    assert r.status_code == 200, r.text


def test_anonymous_requests_denied(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="private", Body=b"not public")
    for url in (f"{server.s3_url}/", f"{server.s3_url}/{bucket}", f"{server.s3_url}/{bucket}/private"):
        r = requests.get(url, timeout=10)
        assert_s3_error(r, 403, "AccessDenied")
        assert b"not public" not in r.content
    r = requests.put(f"{server.s3_url}/{bucket}/anon", data=b"x", timeout=10)
    assert_s3_error(r, 403, "AccessDenied")
    expect_error(s3.head_object, "404", 404, Bucket=bucket, Key="anon")


def test_malformed_authorization(raw, server, bucket):
    for auth in ("AWS4-HMAC-SHA256 garbage", "AWS4-HMAC-SHA256 Credential=onlythis", "Bearer abc"):
        r = requests.get(
            f"{server.s3_url}/{bucket}",
            headers={"Authorization": auth, "x-amz-date": now_utc().strftime("%Y%m%dT%H%M%SZ"),
                     "x-amz-content-sha256": EMPTY_SHA256},
            timeout=10,
        )
        assert r.status_code in (400, 403), f"{auth!r}: {r.status_code} {r.text[:300]}"
        assert_s3_error(r, {400, 403}, {"AuthorizationHeaderMalformed", "AccessDenied", "InvalidArgument",
                                        "SignatureDoesNotMatch", "InvalidRequest", "InvalidAccessKeyId"})


def test_payload_hash_mismatch_stores_nothing(raw, s3, bucket):
    r = raw.request("PUT", bucket, "k", body=b"actual body", payload_hash=hashlib.sha256(b"claimed body").hexdigest())
    assert_s3_error(r, {400, 403}, {"XAmzContentSHA256Mismatch", "BadDigest", "SignatureDoesNotMatch"})
    expect_error(s3.head_object, "404", 404, Bucket=bucket, Key="k")


@pytest.mark.parametrize("md5", ["", "abc", "AAAA"])
def test_an_empty_or_malformed_content_md5_is_refused_and_stores_nothing(raw, s3, bucket, md5):
    r = raw.request("PUT", bucket, "md5", body=b"hello", headers={"Content-MD5": md5})
    assert_s3_error(r, 400, "InvalidDigest")
    expect_error(s3.head_object, "404", 404, Bucket=bucket, Key="md5")
    # The right digest is taken.
    r = raw.request("PUT", bucket, "md5", body=b"hello", headers={"Content-MD5": md5_b64(b"hello")})
    assert r.status_code == 200, r.text


def test_presigned_url_errors(raw, s3, bucket):
    s3.put_object(Bucket=bucket, Key="p", Body=b"presigned secret")
    # Signed two hours ago, valid for one minute: expired.
    url = raw.presigned_url("GET", bucket, "p", expires=60, now=now_utc() - dt.timedelta(hours=2))
    r = requests.get(url, timeout=10)
    assert_s3_error(r, 403, "AccessDenied")
    assert b"presigned secret" not in r.content
    # Tampered signature.
    url = raw.presigned_url("GET", bucket, "p", expires=300)
    r = requests.get(url[:-4] + ("0000" if not url.endswith("0000") else "1111"), timeout=10)
    assert_s3_error(r, 403, "SignatureDoesNotMatch")
    # Signed for another key.
    good = raw.presigned_url("GET", bucket, "p", expires=300)
    r = requests.get(good.replace(f"/{bucket}/p?", f"/{bucket}/other?"), timeout=10)
    assert_s3_error(r, 403, "SignatureDoesNotMatch")
    # Expiry longer than a week is refused (AWS: AuthorizationQueryParametersError).
    url = raw.presigned_url("GET", bucket, "p", expires=604801)
    r = requests.get(url, timeout=10)
    assert_s3_error(r, {400, 403}, {"AuthorizationQueryParametersError", "AccessDenied", "InvalidArgument"})
    assert b"presigned secret" not in r.content
    # A valid one works.
    r = requests.get(raw.presigned_url("GET", bucket, "p", expires=300), timeout=10)
    assert r.status_code == 200 and r.content == b"presigned secret"


# ---------------------------------------------------------------- buckets


@pytest.mark.parametrize(
    "name",
    ["ab", "a" * 64, "UpperCase", "under_score", "-leading", "trailing-", "192.168.5.4", "two..dots",
     "xn--prefixed", "has space", "sthree-x", "ends-s3alias"],
)
def test_invalid_bucket_name(raw, s3, name):
    r = raw.request("PUT", name)
    assert_s3_error(r, 400, "InvalidBucketName")
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_valid_unusual_bucket_names(s3):
    suffix = unique_name("d")[-6:]
    for name in ("abc", "a" * 57 + suffix, "with.dots.x" + suffix, "9starts-with-digit" + suffix):
        s3.create_bucket(Bucket=name)
        s3.head_bucket(Bucket=name)


def test_bucket_already_owned(s3, bucket, aws):
    """S3 outside us-east-1: 409 BucketAlreadyOwnedByYou, and the bucket is left as it was."""
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v = s3.put_object(Bucket=bucket, Key="kept", Body=b"still here", Tagging="t=1")["VersionId"]
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}]})
    expect_error(s3.create_bucket, "BucketAlreadyOwnedByYou", 409, Bucket=bucket)
    expect_error(s3.create_bucket, "BucketAlreadyOwnedByYou", 409, Bucket=bucket,
                 CreateBucketConfiguration={"LocationConstraint": s3.meta.region_name})
    r = aws("s3api", "create-bucket", "--bucket", bucket, check=False)
    assert r.returncode != 0 and "BucketAlreadyOwnedByYou" in r.stderr, r.stderr
    got = s3.get_object(Bucket=bucket, Key="kept")
    assert got["Body"].read() == b"still here" and got["VersionId"] == v and got["TagCount"] == 1
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert len(s3.get_bucket_cors(Bucket=bucket)["CORSRules"]) == 1


def test_bucket_already_exists_for_other_tenant(s3, tenant_b, bucket):
    expect_error(tenant_b["client"].create_bucket, "BucketAlreadyExists", 409, Bucket=bucket)


def test_no_such_bucket(s3, raw):
    missing = unique_name("missing")
    expect_error(s3.get_object, "NoSuchBucket", 404, Bucket=missing, Key="k")
    expect_error(s3.put_object, "NoSuchBucket", 404, Bucket=missing, Key="k", Body=b"x")
    expect_error(s3.list_objects_v2, "NoSuchBucket", 404, Bucket=missing)
    expect_error(s3.list_objects, "NoSuchBucket", 404, Bucket=missing)
    expect_error(s3.delete_bucket, "NoSuchBucket", 404, Bucket=missing)
    expect_error(s3.get_bucket_location, "NoSuchBucket", 404, Bucket=missing)
    expect_error(s3.create_multipart_upload, "NoSuchBucket", 404, Bucket=missing, Key="k")
    expect_error(s3.head_bucket, "404", 404, Bucket=missing)
    expect_error(s3.delete_object, "NoSuchBucket", 404, Bucket=missing, Key="k")
    assert missing not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_no_such_key(s3, bucket):
    expect_error(s3.get_object, "NoSuchKey", 404, Bucket=bucket, Key="nope")
    expect_error(s3.get_object, "NoSuchKey", 404, Bucket=bucket, Key="nope", Range="bytes=0-1")
    expect_error(s3.head_object, "404", 404, Bucket=bucket, Key="nope")
    expect_error(s3.copy_object, "NoSuchKey", 404, Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "nope"})
    expect_error(s3.head_object, "404", 404, Bucket=bucket, Key="dst")


# ---------------------------------------------------------------- objects


def test_key_too_long(raw, s3, bucket):
    r = raw.request("PUT", bucket, "k" * 1025, body=b"x")
    assert_s3_error(r, 400, "KeyTooLongError")
    expect_error(s3.put_object, "KeyTooLongError", 400, Bucket=bucket, Key="é" * 513, Body=b"x")  # 1026 bytes
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_copy_onto_itself_without_change(s3, bucket):
    s3.put_object(Bucket=bucket, Key="self", Body=b"me")
    expect_error(s3.copy_object, "InvalidRequest", 400, Bucket=bucket, Key="self", CopySource={"Bucket": bucket, "Key": "self"})


def test_range_on_empty_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    expect_error(s3.get_object, "InvalidRange", 416, Bucket=bucket, Key="empty", Range="bytes=0-0")


def test_suffix_range_on_empty_object_is_the_empty_object(s3, bucket):
    """A suffix range of an empty object is satisfiable (RFC 9110, 14.1.1) but names no byte:
    the answer is the whole, empty object, never a Content-Range claiming byte 0."""
    s3.put_object(Bucket=bucket, Key="empty-suffix", Body=b"")
    r = s3.get_object(Bucket=bucket, Key="empty-suffix", Range="bytes=-1")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200, r["ResponseMetadata"]
    assert "ContentRange" not in r, r.get("ContentRange")
    assert r["Body"].read() == b""


# ---------------------------------------------------------------- malformed bodies / parameters


def delete_body(keys):
    inner = "".join(f"<Object><Key>{k}</Key></Object>" for k in keys)
    return f'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{inner}</Delete>'.encode()


@pytest.mark.parametrize(
    "body",
    [b"<Delete><Object><Key>k</Key>", b"this is not xml", b"<Delete></Delete>", b"", b"<Delete><Object></Object></Delete>"],
    ids=["truncated", "not-xml", "no-objects", "empty", "object-without-key"],
)
def test_delete_objects_malformed_xml(raw, s3, bucket, body):
    s3.put_object(Bucket=bucket, Key="k", Body=b"still here")
    r = raw.request("POST", bucket, query=[("delete", "")], body=body, headers={"Content-MD5": md5_b64(body)})
    # AWS answers an empty body with MissingRequestBodyError.
    assert_s3_error(r, 400, {"MalformedXML", "MissingRequestBodyError"} if not body else "MalformedXML")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"still here"


def test_delete_objects_too_many_keys(raw, s3, bucket):
    body = delete_body([f"k{i}" for i in range(1001)])
    r = raw.request("POST", bucket, query=[("delete", "")], body=body, headers={"Content-MD5": md5_b64(body)})
    assert_s3_error(r, 400, "MalformedXML")


def test_create_bucket_malformed_configuration(raw, s3):
    name = unique_name("badcfg")
    r = raw.request("PUT", name, body=b"<CreateBucketConfiguration><LocationConstraint>")
    assert_s3_error(r, 400, "MalformedXML")
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


@pytest.mark.parametrize("value", ["-1", "abc"])
def test_invalid_max_keys(raw, bucket, value):
    r = raw.request("GET", bucket, query=[("list-type", "2"), ("max-keys", value)])
    assert_s3_error(r, 400, "InvalidArgument")


@pytest.mark.parametrize(
    "method, key, query, headers",
    [
        ("GET", None, [("list-type", "2"), ("continuation-token", "!!not-a-token!!")], {}),
        ("GET", "k", [("partNumber", "abc")], {}),
        ("PUT", "k", [("partNumber", "1"), ("uploadId", "")], {}),
        ("PUT", "dst", [], {"x-amz-copy-source": "no-slash-here"}),
        ("PUT", "dst", [], {"x-amz-copy-source": "/%ZZbad/encoding"}),
        ("GET", "k", [], {"Range": "bytes=5-1"}),
        ("PUT", "k", [], {"x-amz-meta-big": "v" * 9000}),
        ("POST", "k", [("uploadId", "nope")], {}),
        ("PUT", "k", [], {"x-amz-metadata-directive": "SOMETIMES", "x-amz-copy-source": "/b/k"}),
    ],
    ids=["bad-token", "bad-partnumber", "empty-uploadid", "copy-source-no-slash", "copy-source-bad-pct",
         "reversed-range", "huge-metadata", "complete-unknown-upload", "bad-directive"],
)
def test_client_mistakes_are_4xx(raw, s3, bucket, method, key, query, headers):
    s3.put_object(Bucket=bucket, Key="k", Body=b"0123456789")
    r = raw.request(method, bucket, key, query=query, headers=headers, body=b"")
    if r.status_code in (200, 206) and headers.get("Range") == "bytes=5-1":
        # AWS ignores a syntactically invalid range and returns the object.
        assert r.content == b"0123456789"
        return
    assert 400 <= r.status_code < 500, f"{method} {r.request.url}: got {r.status_code}: {r.text[:400]}"
    assert_s3_error(r, r.status_code, None)
    assert r.content.lstrip().startswith(b"<"), f"error body is not S3 XML: {r.text[:200]!r}"


# ---------------------------------------------------------------- request header section (8 KiB)


def header_bytes(prepared_headers) -> int:
    """Total size of header names and values as sent."""
    return sum(len(k.encode()) + len(str(v).encode()) for k, v in prepared_headers.items())


@pytest.mark.parametrize(
    "pad",
    [{"x-obhut-pad": "p" * 9000}, {f"x-obhut-pad-{i}": "p" * 900 for i in range(10)}],
    ids=["one-big-header", "many-small-headers"],
)
def test_request_header_section_too_large(raw, s3, bucket, pad):
    r = raw.request("PUT", bucket, "hdr", body=b"must not be stored", headers=pad)
    assert header_bytes(r.request.headers) > 9000
    assert_s3_error(r, 400, "RequestHeaderSectionTooLarge")
    assert r.content.lstrip().startswith(b"<"), f"error body is not S3 XML: {r.text[:200]!r}"
    expect_error(s3.head_object, "404", 404, Bucket=bucket, Key="hdr")
    r = raw.request("GET", bucket, query=[("list-type", "2")], headers=pad)
    assert_s3_error(r, 400, "RequestHeaderSectionTooLarge")


def test_request_headers_under_limit_work(raw, s3, bucket):
    # About 7 KiB of headers in all, none of it user metadata.
    pad = {f"x-obhut-pad-{i}": "p" * 1000 for i in range(6)}
    pad["x-obhut-pad-last"] = "p" * 500
    r = raw.request("PUT", bucket, "hdr", body=b"stored", headers=pad)
    assert 7000 <= header_bytes(r.request.headers) <= 7700, header_bytes(r.request.headers)
    assert r.status_code == 200, f"PUT with ~7 KiB of headers: {r.status_code}: {r.text[:400]}"
    r = raw.request("GET", bucket, "hdr", headers=pad)
    assert 7000 <= header_bytes(r.request.headers) <= 7700, header_bytes(r.request.headers)
    assert r.status_code == 200 and r.content == b"stored", f"{r.status_code}: {r.text[:400]}"


# ---------------------------------------------------------------- keys that are not UTF-8


def raw_path_request(raw, method, path, *, body=b"", headers=None, query=None):
    """A signed request for a path given exactly as it goes on the wire."""
    query = query or []
    signed = raw.sign(method, path, query, dict(headers or {}), hashlib.sha256(body).hexdigest())
    url = raw.endpoint + path + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")
    return raw.http.request(method, url, headers=signed.headers, data=body, timeout=60, allow_redirects=False)


# AWS rejects a key whose percent-decoded bytes are not UTF-8 with
# 400 InvalidURI ("Couldn't parse the specified URI.").
NOT_UTF8 = {
    "ff-fe": "%FF%FE",
    "truncated": "ok%C3",
    "overlong-slash": "a%C0%AFb",
    "surrogate": "%ED%A0%80x",
    "lone-continuation": "dir/%80",
}


@pytest.mark.parametrize("encoded", list(NOT_UTF8.values()), ids=list(NOT_UTF8))
def test_key_not_utf8_put_rejected(raw, s3, bucket, encoded):
    path = f"/{bucket}/{encoded}"
    r = raw_path_request(raw, "PUT", path, body=b"must not be stored")
    assert_s3_error(r, 400, "InvalidURI")
    assert r.content.lstrip().startswith(b"<"), f"error body is not S3 XML: {r.text[:200]!r}"
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    r = raw_path_request(raw, "POST", path, query=[("uploads", "")])
    assert_s3_error(r, 400, "InvalidURI")
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_key_not_utf8_read_and_delete_rejected(raw, s3, bucket):
    s3.put_object(Bucket=bucket, Key="other", Body=b"x")
    path = f"/{bucket}/%FF%FE"
    for method in ("GET", "DELETE"):
        r = raw_path_request(raw, method, path)
        assert_s3_error(r, 400, "InvalidURI")
    r = raw_path_request(raw, "HEAD", path)
    assert r.status_code == 400, f"HEAD {path}: {r.status_code}"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["other"]


# ---------------------------------------------------------------- ranges


def test_head_range_past_end(raw, s3, bucket):
    s3.put_object(Bucket=bucket, Key="r", Body=b"0123456789")
    for rng in ("bytes=10-", "bytes=10-20", "bytes=100-200"):
        r = raw.request("HEAD", bucket, "r", headers={"Range": rng})
        assert r.status_code == 416, f"HEAD Range: {rng}: {r.status_code} {dict(r.headers)}"
    expect_error(s3.head_object, "416", 416, Bucket=bucket, Key="r", Range="bytes=10-")


def test_get_range_past_end_is_xml(raw, s3, bucket):
    s3.put_object(Bucket=bucket, Key="r", Body=b"0123456789")
    r = raw.request("GET", bucket, "r", headers={"Range": "bytes=10-"})
    assert_s3_error(r, 416, "InvalidRange")
    assert b"0123456789" not in r.content


# ---------------------------------------------------------------- user metadata (2 KB)


def metadata_size(meta: dict[str, str]) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in meta.items())


EXACTLY_2K = {"a": "x" * 1000, "bb": "y" * 1000, "ccc": "z" * 42}
OVER_2K = {"a": "x" * 1000, "bb": "y" * 1000, "ccc": "z" * 43}


def test_metadata_exactly_2k_accepted(s3, bucket):
    assert metadata_size(EXACTLY_2K) == 2048
    s3.put_object(Bucket=bucket, Key="m", Body=b"x", Metadata=EXACTLY_2K)
    assert s3.head_object(Bucket=bucket, Key="m")["Metadata"] == EXACTLY_2K
    single = {"k": "v" * 2047}
    s3.put_object(Bucket=bucket, Key="single", Body=b"x", Metadata=single)
    assert s3.head_object(Bucket=bucket, Key="single")["Metadata"] == single
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", Metadata=EXACTLY_2K)["UploadId"]
    s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=up)


def test_metadata_too_large(raw, s3, bucket):
    assert metadata_size(OVER_2K) == 2049
    headers = {f"x-amz-meta-{k}": v for k, v in OVER_2K.items()}
    r = raw.request("PUT", bucket, "m", body=b"x", headers=headers)
    assert header_bytes(r.request.headers) < 8 * 1024
    assert_s3_error(r, 400, "MetadataTooLarge")
    expect_error(s3.head_object, "404", 404, Bucket=bucket, Key="m")
    expect_error(s3.put_object, "MetadataTooLarge", 400, Bucket=bucket, Key="m", Body=b"x", Metadata={"k": "v" * 2048})
    expect_error(s3.head_object, "404", 404, Bucket=bucket, Key="m")


def test_metadata_too_large_on_multipart_and_copy(s3, bucket):
    expect_error(s3.create_multipart_upload, "MetadataTooLarge", 400, Bucket=bucket, Key="mp", Metadata=OVER_2K)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    s3.put_object(Bucket=bucket, Key="src", Body=b"source", Metadata={"small": "1"})
    expect_error(
        s3.copy_object, "MetadataTooLarge", 400, Bucket=bucket, Key="dst",
        CopySource={"Bucket": bucket, "Key": "src"}, MetadataDirective="REPLACE", Metadata=OVER_2K,
    )
    expect_error(s3.head_object, "404", 404, Bucket=bucket, Key="dst")


def test_early_error_closes_a_connection_whose_body_was_not_read(server):
    """An error answered before the request body was read (here: an anonymous PUT that waits
    for 100-continue) must close the connection; otherwise the unsent body's length would be
    taken from the next request on the same connection."""
    import socket
    from urllib.parse import urlparse

    u = urlparse(server.s3_url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as sock:
        sock.sendall(
            b"PUT /no-such-bucket/k HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            assert chunk, "connection closed before a response"
            head += chunk
        status_line, _, rest = head.partition(b"\r\n")
        assert b" 403 " in status_line, status_line
        headers = rest.lower()
        assert b"connection: close" in headers, head.decode(errors="replace")


# ---------------------------------------------------------------- request ids


def _error_ids(r: requests.Response) -> tuple[str | None, str | None]:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(r.content)
    return root.findtext("RequestId"), root.findtext("HostId")


def test_every_response_carries_request_ids_and_errors_name_them_in_the_body(raw, server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="there", Body=b"x")
    errors = [
        raw.request("GET", bucket, "not-there"),                                      # S3 handler
        requests.get(f"{server.s3_url}/{bucket}/there", timeout=10),                 # anonymous
        requests.get(f"{server.s3_url}/{bucket}", headers={"Authorization": "Bearer x"}, timeout=10),
        raw.request("PUT", bucket, "big", body=b"x", headers={"x-obhut-pad": "p" * 9000}),  # front
        raw.request("GET", "no-such-bucket-" + bucket, "k"),
    ]
    host_ids = set()
    for r in errors:
        assert r.status_code >= 400
        request_id = r.headers.get("x-amz-request-id")
        assert request_id, r.headers
        assert r.headers.get("x-amz-id-2"), r.headers
        in_body, host_in_body = _error_ids(r)
        assert in_body == request_id, (r.status_code, r.text[:300], request_id)
        assert host_in_body == r.headers["x-amz-id-2"]
        host_ids.add(host_in_body)
    assert len(host_ids) == 1, "one process, one host id"
    ok = raw.request("GET", bucket, "there")
    assert ok.status_code == 200 and ok.headers.get("x-amz-request-id") and ok.headers.get("x-amz-id-2")
    assert ok.content == b"x"
    # boto3 reads both into its error reports.
    err = expect_error(s3.get_object, "NoSuchKey", 404, Bucket=bucket, Key="not-there")
    assert err["ResponseMetadata"]["RequestId"] and err["ResponseMetadata"]["HostId"]


# ---------------------------------------------------------------- empty Authorization


def test_an_empty_authorization_header_is_anonymous_and_refused(server, s3, bucket):
    """S3 takes an empty Authorization header as no signature at all: an anonymous request,
    refused with 403 AccessDenied; nothing is read or written."""
    value = ""
    s3.put_object(Bucket=bucket, Key="private", Body=b"not for anonymous eyes")
    r = requests.get(f"{server.s3_url}/{bucket}/private", headers={"Authorization": value}, timeout=10)
    assert_s3_error(r, 403, "AccessDenied")
    assert b"not for anonymous eyes" not in r.content
    r = requests.put(f"{server.s3_url}/{bucket}/anon", data=b"x", headers={"Authorization": value}, timeout=10)
    assert_s3_error(r, 403, "AccessDenied")
    expect_error(s3.head_object, "404", 404, Bucket=bucket, Key="anon")
    r = requests.get(f"{server.s3_url}/", headers={"Authorization": value}, timeout=10)
    assert_s3_error(r, 403, "AccessDenied")
    assert bucket not in r.text
