"""Bucket and object operations through boto3, checked against AWS semantics."""

import base64
import datetime as dt
import hashlib
import os
import random
import time

import botocore.exceptions
import pytest
import requests

from s3helpers import assert_s3_error, expect_error, md5_hex, unique_name

MIB = 1024 * 1024


def etag_of(data: bytes) -> str:
    return f'"{md5_hex(data)}"'


# ---------------------------------------------------------------- buckets


def test_bucket_lifecycle(s3):
    name = unique_name("lifecycle")
    r = s3.create_bucket(Bucket=name)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    s3.head_bucket(Bucket=name)
    buckets = s3.list_buckets()["Buckets"]
    match = [b for b in buckets if b["Name"] == name]
    assert len(match) == 1
    created = match[0]["CreationDate"]
    assert abs((dt.datetime.now(dt.timezone.utc) - created).total_seconds()) < 300
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == "de-1"
    r = s3.delete_bucket(Bucket=name)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    expect_error(s3.head_bucket, "404", 404, Bucket=name)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_create_bucket_with_location_constraint_and_acl(s3):
    name = unique_name("withloc")
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "de-1"})
    s3.head_bucket(Bucket=name)
    name2 = unique_name("withacl")
    s3.create_bucket(Bucket=name2, ACL="private")
    s3.head_bucket(Bucket=name2)


def test_list_buckets_sorted(s3):
    names = [unique_name("sorted") for _ in range(3)]
    for n in names:
        s3.create_bucket(Bucket=n)
    listed = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert listed == sorted(listed)
    assert set(names) <= set(listed)


# ---------------------------------------------------------------- objects


def test_put_get_head_roundtrip_with_headers(s3, bucket):
    data = os.urandom(12345)
    expires = "Wed, 02 Jan 2030 03:04:05 GMT"
    put = s3.put_object(
        Bucket=bucket,
        Key="docs/report.pdf",
        Body=data,
        ContentType="application/x-obhut-test; charset=utf-8",
        ContentEncoding="gzip",
        ContentDisposition='attachment; filename="report.pdf"',
        ContentLanguage="de-DE",
        CacheControl="max-age=60, private",
        Expires=dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
        Metadata={"color": "blue", "multi-word": "Hello World", "n": "42"},
    )
    assert put["ETag"] == etag_of(data)
    for resp in (
        s3.head_object(Bucket=bucket, Key="docs/report.pdf"),
        s3.get_object(Bucket=bucket, Key="docs/report.pdf"),
    ):
        hdrs = resp["ResponseMetadata"]["HTTPHeaders"]
        assert resp["ETag"] == etag_of(data)
        assert resp["ContentLength"] == len(data)
        assert resp["ContentType"] == "application/x-obhut-test; charset=utf-8"
        assert resp["ContentEncoding"] == "gzip"
        assert resp["ContentDisposition"] == 'attachment; filename="report.pdf"'
        assert resp["ContentLanguage"] == "de-DE"
        assert resp["CacheControl"] == "max-age=60, private"
        assert hdrs.get("expires") == expires
        assert resp["Metadata"] == {"color": "blue", "multi-word": "Hello World", "n": "42"}
        assert abs((dt.datetime.now(dt.timezone.utc) - resp["LastModified"]).total_seconds()) < 300
        if "Body" in resp:
            assert resp["Body"].read() == data


def test_default_content_type(s3, bucket):
    s3.put_object(Bucket=bucket, Key="plain", Body=b"x")
    # boto3 sends no Content-Type of its own for put_object bodies of bytes,
    # AWS then stores binary/octet-stream.
    ct = s3.head_object(Bucket=bucket, Key="plain")["ContentType"]
    assert ct in ("binary/octet-stream", "application/octet-stream"), ct


def test_response_header_overrides(s3, bucket):
    s3.put_object(Bucket=bucket, Key="o", Body=b"override me", ContentType="text/plain")
    r = s3.get_object(
        Bucket=bucket,
        Key="o",
        ResponseContentType="application/x-override",
        ResponseContentDisposition='inline; filename="x.bin"',
        ResponseCacheControl="no-cache",
        ResponseContentLanguage="fr",
        ResponseContentEncoding="identity",
        ResponseExpires=dt.datetime(2031, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc),
    )
    h = r["ResponseMetadata"]["HTTPHeaders"]
    assert r["ContentType"] == "application/x-override"
    assert r["ContentDisposition"] == 'inline; filename="x.bin"'
    assert r["CacheControl"] == "no-cache"
    assert r["ContentLanguage"] == "fr"
    assert r["ContentEncoding"] == "identity"
    assert h.get("expires") == "Tue, 06 May 2031 07:08:09 GMT"
    assert r["Body"].read() == b"override me"
    # Overrides never change what is stored.
    assert s3.head_object(Bucket=bucket, Key="o")["ContentType"] == "text/plain"


def test_overwrite_replaces_content_and_metadata(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"first", Metadata={"a": "1"})
    s3.put_object(Bucket=bucket, Key="k", Body=b"second!", Metadata={"b": "2"})
    r = s3.get_object(Bucket=bucket, Key="k")
    assert r["Body"].read() == b"second!"
    assert r["Metadata"] == {"b": "2"}
    assert r["ETag"] == etag_of(b"second!")


@pytest.mark.parametrize(
    "key",
    [
        "with space.txt",
        "plus+sign",
        "percent%20literal",
        "unicode-ß-漢字-😀",
        "query?and#hash&amp=1",
        "a//double//slash",
        "/leading-slash",
        "dots/../not-a-parent",
        "trailing-slash/",
        "~tilde!$'()*,;=:@",
        "x" * 1024,
    ],
    ids=lambda k: k[:24],
)
def test_key_names_roundtrip(s3, bucket, key):
    body = key.encode()[:100]
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in listed] == [key]
    s3.delete_object(Bucket=bucket, Key=key)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_zero_byte_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    r = s3.get_object(Bucket=bucket, Key="empty")
    assert r["ContentLength"] == 0 and r["Body"].read() == b""
    assert r["ETag"] == '"d41d8cd98f00b204e9800998ecf8427e"'


# ---------------------------------------------------------------- ranges


RANGE_DATA = os.urandom(1000)


@pytest.fixture(scope="module")
def range_bucket(s3):
    name = unique_name("ranges")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="r", Body=RANGE_DATA)
    return name


@pytest.mark.parametrize(
    "rng, start, end",
    [
        ("bytes=0-9", 0, 9),
        ("bytes=0-0", 0, 0),
        ("bytes=990-", 990, 999),
        ("bytes=-10", 990, 999),
        ("bytes=500-5000", 500, 999),
        ("bytes=-5000", 0, 999),
        ("bytes=999-999", 999, 999),
        ("bytes=0-", 0, 999),
    ],
)
def test_range_get(s3, range_bucket, rng, start, end):
    r = s3.get_object(Bucket=range_bucket, Key="r", Range=rng)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert r["ContentRange"] == f"bytes {start}-{end}/1000"
    assert r["ContentLength"] == end - start + 1
    assert r["Body"].read() == RANGE_DATA[start : end + 1]


@pytest.mark.parametrize("rng", ["bytes=1000-", "bytes=1500-2000", "bytes=1000-1000"])
def test_range_past_end(s3, range_bucket, rng):
    expect_error(s3.get_object, "InvalidRange", 416, Bucket=range_bucket, Key="r", Range=rng)


def test_head_with_range(s3, range_bucket):
    # HeadObject honours Range like GetObject does: 206 and the part's length.
    r = s3.head_object(Bucket=range_bucket, Key="r", Range="bytes=2-4")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert r["ContentRange"] == "bytes 2-4/1000"
    assert r["ContentLength"] == 3


def test_random_ranges_on_large_object(s3, bucket):
    size = 3 * MIB + 7
    data = os.urandom(size)
    s3.put_object(Bucket=bucket, Key="big", Body=data)
    rnd = random.Random(1234)
    cases = [(0, size - 1), (65535, 65536), (65536, 131071), (size - 1, size - 1), (MIB - 3, 2 * MIB + 3)]
    for _ in range(15):
        a = rnd.randrange(size)
        cases.append((a, min(size - 1, a + rnd.randrange(1, 300000))))
    for a, b in cases:
        r = s3.get_object(Bucket=bucket, Key="big", Range=f"bytes={a}-{b}")
        got = r["Body"].read()
        assert got == data[a : b + 1], f"range {a}-{b} returned wrong bytes"
        assert r["ContentRange"] == f"bytes {a}-{b}/{size}"
    r = s3.get_object(Bucket=bucket, Key="big")
    assert hashlib.sha256(r["Body"].read()).digest() == hashlib.sha256(data).digest()


# ---------------------------------------------------------------- conditionals


def test_conditional_get_and_head(s3, bucket):
    s3.put_object(Bucket=bucket, Key="c", Body=b"conditional")
    head = s3.head_object(Bucket=bucket, Key="c")
    etag, lm = head["ETag"], head["LastModified"]
    day = dt.timedelta(days=1)

    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"conditional"
    expect_error(s3.get_object, "PreconditionFailed", 412, Bucket=bucket, Key="c", IfMatch='"0123456789abcdef0123456789abcdef"')
    expect_error(s3.get_object, "304", 304, Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert s3.get_object(Bucket=bucket, Key="c", IfNoneMatch='"0123456789abcdef0123456789abcdef"')["Body"].read()
    expect_error(s3.get_object, "304", 304, Bucket=bucket, Key="c", IfModifiedSince=lm)
    assert s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=lm - day)["Body"].read() == b"conditional"
    expect_error(s3.get_object, "PreconditionFailed", 412, Bucket=bucket, Key="c", IfUnmodifiedSince=lm - day)
    assert s3.get_object(Bucket=bucket, Key="c", IfUnmodifiedSince=lm)["Body"].read() == b"conditional"
    # If-Match wins over a false If-Unmodified-Since (RFC 7232 / S3 docs).
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag, IfUnmodifiedSince=lm - day)["Body"].read()

    expect_error(s3.head_object, "304", 304, Bucket=bucket, Key="c", IfNoneMatch=etag)
    expect_error(s3.head_object, "412", 412, Bucket=bucket, Key="c", IfMatch='"0123456789abcdef0123456789abcdef"')
    s3.head_object(Bucket=bucket, Key="c", IfMatch=etag)


# ---------------------------------------------------------------- delete


def test_delete_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="d", Body=b"bye")
    r = s3.delete_object(Bucket=bucket, Key="d")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    expect_error(s3.get_object, "NoSuchKey", 404, Bucket=bucket, Key="d")
    # Deleting a key that does not exist succeeds, as on AWS.
    r = s3.delete_object(Bucket=bucket, Key="never-existed")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_delete_objects(s3, bucket):
    for k in ("x1", "x2", "x3", "keep"):
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    r = s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": "x1"}, {"Key": "x2"}, {"Key": "missing"}], "Quiet": False},
    )
    assert sorted(d["Key"] for d in r.get("Deleted", [])) == ["missing", "x1", "x2"]
    assert not r.get("Errors")
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "x3"}], "Quiet": True})
    assert not r.get("Deleted") and not r.get("Errors")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["keep"]


def test_delete_bucket_not_empty(s3, bucket):
    s3.put_object(Bucket=bucket, Key="obj", Body=b"1")
    expect_error(s3.delete_bucket, "BucketNotEmpty", 409, Bucket=bucket)
    s3.head_bucket(Bucket=bucket)
    s3.delete_object(Bucket=bucket, Key="obj")
    s3.delete_bucket(Bucket=bucket)
    expect_error(s3.head_bucket, "404", 404, Bucket=bucket)


# ---------------------------------------------------------------- copy


def test_copy_object_same_bucket_copy_directive(s3, bucket):
    data = os.urandom(4000)
    s3.put_object(Bucket=bucket, Key="src", Body=data, ContentType="text/x-src", Metadata={"origin": "src"},
                  CacheControl="no-store")
    r = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert r["CopyObjectResult"]["ETag"] == etag_of(data)
    d = s3.get_object(Bucket=bucket, Key="dst")
    assert d["Body"].read() == data
    assert d["ContentType"] == "text/x-src"
    assert d["Metadata"] == {"origin": "src"}
    assert d["CacheControl"] == "no-store"
    assert d["ETag"] == etag_of(data)
    # The copy is independent of its source.
    s3.delete_object(Bucket=bucket, Key="src")
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == data


def test_copy_object_replace_directive(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"payload", ContentType="text/plain", Metadata={"old": "1"})
    s3.copy_object(
        Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"},
        MetadataDirective="REPLACE", ContentType="application/json", Metadata={"new": "2"},
    )
    d = s3.head_object(Bucket=bucket, Key="dst")
    assert d["ContentType"] == "application/json"
    assert d["Metadata"] == {"new": "2"}
    # In-place metadata update (copy onto itself with REPLACE) is allowed.
    s3.copy_object(
        Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"},
        MetadataDirective="REPLACE", Metadata={"updated": "yes"}, ContentType="text/markdown",
    )
    s = s3.get_object(Bucket=bucket, Key="src")
    assert s["Metadata"] == {"updated": "yes"} and s["ContentType"] == "text/markdown"
    assert s["Body"].read() == b"payload"


def test_copy_object_cross_bucket_and_odd_keys(s3, bucket):
    other = unique_name("copydst")
    s3.create_bucket(Bucket=other)
    key = "dir/with space+plus/ü.bin"
    data = os.urandom(70000)
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    s3.copy_object(Bucket=other, Key="copied/" + key, CopySource={"Bucket": bucket, "Key": key})
    assert s3.get_object(Bucket=other, Key="copied/" + key)["Body"].read() == data
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data


def test_copy_object_preconditions(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"abc")
    etag = s3.head_object(Bucket=bucket, Key="src")["ETag"]
    s3.copy_object(Bucket=bucket, Key="ok", CopySource={"Bucket": bucket, "Key": "src"}, CopySourceIfMatch=etag)
    expect_error(
        s3.copy_object, "PreconditionFailed", 412,
        Bucket=bucket, Key="no", CopySource={"Bucket": bucket, "Key": "src"},
        CopySourceIfMatch='"0123456789abcdef0123456789abcdef"',
    )
    expect_error(s3.head_object, "404", 404, Bucket=bucket, Key="no")


# ---------------------------------------------------------------- versions / ACLs


def test_list_object_versions_reports_null(s3, bucket):
    s3.put_object(Bucket=bucket, Key="v1", Body=b"one")
    s3.put_object(Bucket=bucket, Key="v2", Body=b"two!")
    r = s3.list_object_versions(Bucket=bucket)
    versions = r.get("Versions", [])
    assert [v["Key"] for v in versions] == ["v1", "v2"]
    for v, body in zip(versions, (b"one", b"two!")):
        assert v["VersionId"] == "null"
        assert v["IsLatest"] is True
        assert v["Size"] == len(body)
        assert v["ETag"] == etag_of(body)
    assert not r.get("DeleteMarkers")
    # Asking for version "null" explicitly works like asking for no version.
    assert s3.get_object(Bucket=bucket, Key="v1", VersionId="null")["Body"].read() == b"one"


@pytest.mark.parametrize("acl", ["private", "bucket-owner-full-control"])
def test_canned_acl_accepted(s3, bucket, acl):
    s3.put_object(Bucket=bucket, Key="acl", Body=b"a", ACL=acl)
    assert s3.get_object(Bucket=bucket, Key="acl")["Body"].read() == b"a"


@pytest.mark.parametrize("acl", ["public-read", "public-read-write", "authenticated-read"])
def test_public_acl_refused(s3, bucket, acl):
    expect_error(s3.put_object, "AccessControlListNotSupported", 400, Bucket=bucket, Key="pub", Body=b"a", ACL=acl)
    expect_error(s3.head_object, "404", 404, Bucket=bucket, Key="pub")


# ---------------------------------------------------------------- presigned URLs


def test_presigned_get_and_put(s3, bucket):
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "pre/k"}, ExpiresIn=300)
    data = os.urandom(5000)
    r = requests.put(put_url, data=data, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers.get("ETag") == etag_of(data)
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "pre/k"}, ExpiresIn=300)
    r = requests.get(get_url, timeout=30)
    assert r.status_code == 200 and r.content == data
    r = requests.get(get_url, headers={"Range": "bytes=10-19"}, timeout=30)
    assert r.status_code == 206 and r.content == data[10:20]
    # Presigned response overrides.
    url = s3.generate_presigned_url(
        "get_object",
        Params={"Bucket": bucket, "Key": "pre/k", "ResponseContentDisposition": "attachment; filename=x"},
        ExpiresIn=300,
    )
    r = requests.get(url, timeout=30)
    assert r.status_code == 200 and r.headers.get("Content-Disposition") == "attachment; filename=x"


def test_presigned_url_expires(s3, bucket):
    s3.put_object(Bucket=bucket, Key="exp", Body=b"secret")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "exp"}, ExpiresIn=1)
    time.sleep(2.5)
    r = requests.get(url, timeout=30)
    assert r.status_code == 403, r.text
    assert "<Code>AccessDenied</Code>" in r.text, r.text
    assert b"secret" not in r.content


# ---------------------------------------------------------------- partNumber on GET/HEAD


def test_part_number_one_of_a_single_part_object_is_the_whole_object(s3, bucket):
    data = os.urandom(3000)
    s3.put_object(Bucket=bucket, Key="single", Body=data, ContentType="text/x-one")
    r = s3.get_object(Bucket=bucket, Key="single", PartNumber=1)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert r["Body"].read() == data
    assert r["ContentLength"] == len(data)
    assert r["ContentRange"] == f"bytes 0-{len(data) - 1}/{len(data)}"
    assert r["ETag"] == etag_of(data) and r["ContentType"] == "text/x-one"
    # Only an object uploaded in parts has a part count.
    assert "PartsCount" not in r
    h = s3.head_object(Bucket=bucket, Key="single", PartNumber=1)
    assert h["ContentLength"] == len(data) and h["ETag"] == etag_of(data)
    assert h["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert "PartsCount" not in h


@pytest.mark.parametrize("part", [2, 3, 10000])
def test_part_number_past_a_single_part_object_is_invalid_part_number(raw, s3, bucket, part):
    s3.put_object(Bucket=bucket, Key="single", Body=b"only one part")
    expect_error(s3.get_object, "InvalidPartNumber", 416, Bucket=bucket, Key="single", PartNumber=part)
    expect_error(s3.head_object, "416", 416, Bucket=bucket, Key="single", PartNumber=part)
    r = raw.request("GET", bucket, "single", query=[("partNumber", str(part))])
    assert_s3_error(r, 416, "InvalidPartNumber")
    assert b"only one part" not in r.content


def test_part_number_of_a_multipart_object_in_and_out_of_range(raw, s3, bucket):
    parts = [os.urandom(5 * MIB), b"tail of the object"]
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    etags = [s3.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=n, Body=d)["ETag"]
             for n, d in enumerate(parts, 1)]
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]})
    total = sum(len(p) for p in parts)
    r = s3.get_object(Bucket=bucket, Key="mp", PartNumber=2)
    assert r["Body"].read() == parts[1] and r["PartsCount"] == 2
    assert r["ContentRange"] == f"bytes {len(parts[0])}-{total - 1}/{total}"
    for bad in (3, 9999):
        expect_error(s3.get_object, "InvalidPartNumber", 416, Bucket=bucket, Key="mp", PartNumber=bad)
        expect_error(s3.head_object, "416", 416, Bucket=bucket, Key="mp", PartNumber=bad)
    for bad in ("0", "10001", "-1"):
        r = raw.request("GET", bucket, "mp", query=[("partNumber", bad)])
        assert_s3_error(r, 400, "InvalidArgument")


# ---------------------------------------------------------------- non-ASCII user metadata


def test_rfc2047_encoded_metadata_round_trips_and_raw_non_ascii_is_refused(s3, bucket):
    """S3's REST API carries user metadata as US-ASCII; a value that is not ASCII travels as an
    RFC 2047 encoded-word, is stored decoded, and comes back as S3 returns it
    (`=?UTF-8?B?...?=`)."""
    word = "=?UTF-8?B?" + base64.b64encode("Grüße, 漢字".encode()).decode() + "?="
    s3.put_object(Bucket=bucket, Key="meta", Body=b"x", Metadata={"greeting": word, "plain": "ascii"})
    got = s3.head_object(Bucket=bucket, Key="meta")["Metadata"]
    assert got == {"greeting": word, "plain": "ascii"}
    assert s3.get_object(Bucket=bucket, Key="meta")["Metadata"] == got
    # S3 decodes encoded-words before storing and answers values that are not ASCII
    # `B`-encoded in UTF-8, whichever encoding and charset they were sent in.
    b_word = "=?UTF-8?B?" + base64.b64encode("Grüße".encode()).decode() + "?="
    for sent in ("=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=", "=?utf-8?b?R3LDvMOfZQ==?="):
        s3.put_object(Bucket=bucket, Key="q", Body=b"x", Metadata={"greeting": sent})
        assert s3.head_object(Bucket=bucket, Key="q")["Metadata"] == {"greeting": b_word}, sent
    # A long value comes back as several encoded-words, each at most 75 characters (RFC 2047).
    long = "Grüße aus dem Archiv, " * 4
    s3.put_object(Bucket=bucket, Key="long", Body=b"x",
                  Metadata={"greeting": "=?UTF-8?B?" + base64.b64encode(long.encode()).decode() + "?="})
    words = s3.head_object(Bucket=bucket, Key="long")["Metadata"]["greeting"].split(" ")
    assert len(words) > 1 and all(len(w) <= 75 and w.startswith("=?UTF-8?B?") for w in words)
    assert "".join(base64.b64decode(w[10:-2]).decode() for w in words) == long
    # Not yet: a charset other than UTF-8 (S3 takes it) is refused, and stores nothing.
    expect_error(s3.put_object, "InvalidArgument", 400, Bucket=bucket, Key="latin1", Body=b"x",
                 Metadata={"greeting": "=?ISO-8859-1?Q?Gr=FC=DFe?="})
    expect_error(s3.head_object, "404", 404, Bucket=bucket, Key="latin1")
    # Copied with its metadata, and replaced by a copy that gives new metadata.
    s3.copy_object(Bucket=bucket, Key="q2", CopySource={"Bucket": bucket, "Key": "q"})
    assert s3.head_object(Bucket=bucket, Key="q2")["Metadata"] == {"greeting": b_word}
    s3.copy_object(Bucket=bucket, Key="q3", CopySource={"Bucket": bucket, "Key": "q"}, MetadataDirective="REPLACE",
                   Metadata={"greeting": "=?UTF-8?Q?caf=C3=A9?="})
    assert s3.head_object(Bucket=bucket, Key="q3")["Metadata"] == {"greeting": "=?UTF-8?B?Y2Fmw6k=?="}
    # botocore itself refuses to send what S3 would not take as a header.
    with pytest.raises(botocore.exceptions.ParamValidationError):
        s3.put_object(Bucket=bucket, Key="meta2", Body=b"x", Metadata={"greeting": "Grüße"})
    expect_error(s3.head_object, "404", 404, Bucket=bucket, Key="meta2")
