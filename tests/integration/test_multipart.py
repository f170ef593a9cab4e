"""Multipart uploads: create / upload / copy parts / list / complete / abort,
with AWS's rules on part order, ETags and part sizes."""

import os

import pytest

from s3helpers import assert_s3_error, client_error, expect_error, md5_hex, multipart_etag, sha256_hex, unique_name

MIB = 1024 * 1024


def complete(s3, bucket, key, upload_id, parts):
    return s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in parts]},
    )


def test_multipart_roundtrip(s3, bucket):
    key = "big/object.bin"
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB + 123), os.urandom(100 * 1024)]
    up = s3.create_multipart_upload(
        Bucket=bucket, Key=key, ContentType="application/x-mp", Metadata={"stage": "mp"}, CacheControl="no-cache",
    )["UploadId"]
    assert up
    etags = {}
    for n in (3, 1, 2):  # parts may arrive in any order
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=n, Body=parts[n - 1])
        assert r["ETag"] == f'"{md5_hex(parts[n - 1])}"'
        etags[n] = r["ETag"]

    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=up)
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2, 3]
    assert [p["Size"] for p in listed["Parts"]] == [len(p) for p in parts]
    assert [p["ETag"] for p in listed["Parts"]] == [etags[1], etags[2], etags[3]]
    assert listed["UploadId"] == up and listed["Key"] == key

    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [(key, up)]
    # Not visible as an object before completion.
    expect_error(s3.head_object, "404", 404, Bucket=bucket, Key=key)

    r = complete(s3, bucket, key, up, [(1, etags[1]), (2, etags[2]), (3, etags[3])])
    assert r["ETag"] == multipart_etag(parts)
    assert r["Key"] == key and r["Bucket"] == bucket

    whole = b"".join(parts)
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == len(whole)
    assert head["ETag"] == multipart_etag(parts)
    assert head["ContentType"] == "application/x-mp"
    assert head["Metadata"] == {"stage": "mp"}
    assert head["CacheControl"] == "no-cache"
    got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert sha256_hex(got) == sha256_hex(whole)
    # A range across the part boundaries.
    a, b = 5 * MIB - 10, 10 * MIB + 200
    r = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={a}-{b}")
    assert r["Body"].read() == whole[a : b + 1]
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["Size"], o["ETag"]) for o in listed] == [(key, len(whole), multipart_etag(parts))]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    # The upload is gone once completed.
    expect_error(s3.list_parts, "NoSuchUpload", 404, Bucket=bucket, Key=key, UploadId=up)


def test_reuploaded_part_replaces_previous(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="k", UploadId=up, PartNumber=1, Body=b"first" * MIB)
    e1 = s3.upload_part(Bucket=bucket, Key="k", UploadId=up, PartNumber=1, Body=b"again" * MIB)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="k", UploadId=up, PartNumber=2, Body=b"end")["ETag"]
    parts = s3.list_parts(Bucket=bucket, Key="k", UploadId=up)["Parts"]
    assert [(p["PartNumber"], p["ETag"]) for p in parts] == [(1, e1), (2, e2)]
    complete(s3, bucket, "k", up, [(1, e1), (2, e2)])
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"again" * MIB + b"end"


def test_complete_with_subset_of_parts(s3, bucket):
    data = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(1000)]
    up = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    e = [s3.upload_part(Bucket=bucket, Key="k", UploadId=up, PartNumber=n, Body=d)["ETag"] for n, d in enumerate(data, 1)]
    r = complete(s3, bucket, "k", up, [(1, e[0]), (3, e[2])])
    assert r["ETag"] == multipart_etag([data[0], data[2]])
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == data[0] + data[2]


def test_invalid_part_order(s3, bucket):
    data = [os.urandom(5 * MIB), os.urandom(5 * MIB)]  # both big enough in any order
    up = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    e = [s3.upload_part(Bucket=bucket, Key="k", UploadId=up, PartNumber=n, Body=d)["ETag"] for n, d in enumerate(data, 1)]
    expect_error(complete, "InvalidPartOrder", 400, s3, bucket, "k", up, [(2, e[1]), (1, e[0])])
    expect_error(complete, {"InvalidPartOrder", "InvalidPart"}, 400, s3, bucket, "k", up, [(1, e[0]), (1, e[0])])
    # The failed attempts changed nothing: the upload completes normally.
    expect_error(s3.head_object, "404", 404, Bucket=bucket, Key="k")
    complete(s3, bucket, "k", up, [(1, e[0]), (2, e[1])])
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"".join(data)


def test_invalid_part(s3, bucket):
    data = [os.urandom(5 * MIB), os.urandom(1000)]
    up = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    e = [s3.upload_part(Bucket=bucket, Key="k", UploadId=up, PartNumber=n, Body=d)["ETag"] for n, d in enumerate(data, 1)]
    wrong = f'"{md5_hex(b"something else")}"'
    expect_error(complete, "InvalidPart", 400, s3, bucket, "k", up, [(1, e[0]), (2, wrong)])
    expect_error(complete, "InvalidPart", 400, s3, bucket, "k", up, [(1, e[0]), (2, e[1]), (7, e[1])])
    expect_error(s3.head_object, "404", 404, Bucket=bucket, Key="k")
    complete(s3, bucket, "k", up, [(1, e[0]), (2, e[1])])


def test_entity_too_small(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key="k", UploadId=up, PartNumber=1, Body=b"a" * 1024)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="k", UploadId=up, PartNumber=2, Body=b"b" * 1024)["ETag"]
    expect_error(complete, "EntityTooSmall", 400, s3, bucket, "k", up, [(1, e1), (2, e2)])
    expect_error(s3.head_object, "404", 404, Bucket=bucket, Key="k")
    # A single small part is fine: only the last part may be small.
    complete(s3, bucket, "k", up, [(2, e2)])
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"b" * 1024


def test_empty_complete_is_malformed(raw, s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    body = b'<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></CompleteMultipartUpload>'
    r = raw.request("POST", bucket, "k", query=[("uploadId", up)], body=body)
    assert_s3_error(r, 400, "MalformedXML")
    r = raw.request("POST", bucket, "k", query=[("uploadId", up)], body=b"<CompleteMultipartUpload><Part>")
    assert_s3_error(r, 400, "MalformedXML")


def test_abort(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="k", UploadId=up, PartNumber=1, Body=b"x" * 1000)
    r = s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=up)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    expect_error(s3.list_parts, "NoSuchUpload", 404, Bucket=bucket, Key="k", UploadId=up)
    expect_error(s3.upload_part, "NoSuchUpload", 404, Bucket=bucket, Key="k", UploadId=up, PartNumber=2, Body=b"y")
    expect_error(complete, "NoSuchUpload", 404, s3, bucket, "k", up, [(1, '"00000000000000000000000000000000"')])
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    expect_error(s3.head_object, "404", 404, Bucket=bucket, Key="k")


def test_unknown_upload_id(s3, bucket):
    bogus = "this-upload-does-not-exist"
    expect_error(s3.upload_part, "NoSuchUpload", 404, Bucket=bucket, Key="k", UploadId=bogus, PartNumber=1, Body=b"x")
    expect_error(s3.list_parts, "NoSuchUpload", 404, Bucket=bucket, Key="k", UploadId=bogus)
    expect_error(s3.abort_multipart_upload, "NoSuchUpload", 404, Bucket=bucket, Key="k", UploadId=bogus)


def test_upload_id_is_bound_to_its_key(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="right")["UploadId"]
    expect_error(s3.upload_part, "NoSuchUpload", 404, Bucket=bucket, Key="wrong", UploadId=up, PartNumber=1, Body=b"x")


def test_upload_part_copy(s3, bucket):
    src = os.urandom(6 * MIB + 100)
    s3.put_object(Bucket=bucket, Key="source", Body=src)
    other = unique_name("upc")
    s3.create_bucket(Bucket=other)
    up = s3.create_multipart_upload(Bucket=other, Key="assembled")["UploadId"]
    src_ref = {"Bucket": bucket, "Key": "source"}
    r1 = s3.upload_part_copy(Bucket=other, Key="assembled", UploadId=up, PartNumber=1, CopySource=src_ref)
    r2 = s3.upload_part_copy(Bucket=other, Key="assembled", UploadId=up, PartNumber=2, CopySource=src_ref,
                             CopySourceRange=f"bytes=100-{100 + 5 * MIB - 1}")
    r3 = s3.upload_part_copy(Bucket=other, Key="assembled", UploadId=up, PartNumber=3, CopySource=src_ref,
                             CopySourceRange="bytes=100-1099")
    expected = [src, src[100 : 100 + 5 * MIB], src[100:1100]]
    etags = [r["CopyPartResult"]["ETag"] for r in (r1, r2, r3)]
    assert etags == [f'"{md5_hex(p)}"' for p in expected]
    r4 = s3.upload_part(Bucket=other, Key="assembled", UploadId=up, PartNumber=4, Body=b"tail")
    parts = s3.list_parts(Bucket=other, Key="assembled", UploadId=up)["Parts"]
    assert [p["Size"] for p in parts] == [len(src), 5 * MIB, 1000, 4]
    # Part 3 is small and not last: completing with it fails; without it works.
    expect_error(complete, "EntityTooSmall", 400, s3, other, "assembled", up,
                 [(1, etags[0]), (2, etags[1]), (3, etags[2]), (4, r4["ETag"])])
    complete(s3, other, "assembled", up, [(1, etags[0]), (2, etags[1]), (4, r4["ETag"])])
    got = s3.get_object(Bucket=other, Key="assembled")
    assert got["ETag"] == multipart_etag([expected[0], expected[1], b"tail"])
    assert sha256_hex(got["Body"].read()) == sha256_hex(expected[0] + expected[1] + b"tail")


def test_upload_part_copy_bad_range(s3, bucket):
    s3.put_object(Bucket=bucket, Key="source", Body=b"0123456789")
    up = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    expect_error(
        s3.upload_part_copy, {"InvalidRange", "InvalidArgument"}, {400, 416},
        Bucket=bucket, Key="dst", UploadId=up, PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "source"}, CopySourceRange="bytes=5-100",
    )


@pytest.mark.parametrize("part, code", [("0", "InvalidArgument"), ("10001", "InvalidArgument"), ("-1", None), ("abc", None)])
def test_part_number_out_of_range(raw, s3, bucket, part, code):
    up = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    r = raw.request("PUT", bucket, "k", query=[("partNumber", part), ("uploadId", up)], body=b"data")
    assert_s3_error(r, 400, code)
    assert s3.list_parts(Bucket=bucket, Key="k", UploadId=up).get("Parts", []) == []


def test_part_number_limits_accepted(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key="k", UploadId=up, PartNumber=1, Body=b"a" * (5 * MIB))["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="k", UploadId=up, PartNumber=10000, Body=b"z")["ETag"]
    complete(s3, bucket, "k", up, [(1, e1), (10000, e2)])
    assert s3.head_object(Bucket=bucket, Key="k")["ContentLength"] == 5 * MIB + 1


def test_list_parts_paging(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    for n in range(1, 8):
        s3.upload_part(Bucket=bucket, Key="k", UploadId=up, PartNumber=n, Body=bytes([n]) * 100)
    seen, marker = [], 0
    while True:
        r = s3.list_parts(Bucket=bucket, Key="k", UploadId=up, MaxParts=3, PartNumberMarker=marker)
        seen += [p["PartNumber"] for p in r.get("Parts", [])]
        assert len(r.get("Parts", [])) <= 3
        if not r["IsTruncated"]:
            break
        marker = r["NextPartNumberMarker"]
        assert len(seen) <= 7
    assert seen == list(range(1, 8))


def test_list_multipart_uploads_prefix_and_paging(s3, bucket):
    ids = {}
    for k in ("lmu/a", "lmu/b", "lmu/c", "lmu/d", "other/x"):
        ids.setdefault(k, []).append(s3.create_multipart_upload(Bucket=bucket, Key=k)["UploadId"])
    ids["lmu/b"].append(s3.create_multipart_upload(Bucket=bucket, Key="lmu/b")["UploadId"])
    all_ = s3.list_multipart_uploads(Bucket=bucket, Prefix="lmu/")
    got = [(u["Key"], u["UploadId"]) for u in all_.get("Uploads", [])]
    assert sorted(got) == sorted((k, i) for k, v in ids.items() if k.startswith("lmu/") for i in v)
    assert [k for k, _ in got] == sorted(k for k, _ in got), "uploads must be sorted by key"

    seen, km, uim = [], "", ""
    for _ in range(20):
        r = s3.list_multipart_uploads(Bucket=bucket, MaxUploads=2, KeyMarker=km, UploadIdMarker=uim)
        page = [(u["Key"], u["UploadId"]) for u in r.get("Uploads", [])]
        assert len(page) <= 2
        seen += page
        if not r["IsTruncated"]:
            break
        km, uim = r["NextKeyMarker"], r["NextUploadIdMarker"]
    assert sorted(seen) == sorted((k, i) for k, v in ids.items() for i in v)
    assert len(seen) == len(set(seen)) == 6

    r = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert sorted(p["Prefix"] for p in r.get("CommonPrefixes", [])) == ["lmu/", "other/"]
    assert not r.get("Uploads")


# ---------------------------------------------------------------- a repeated completion


def upload_two_parts(s3, bucket, key):
    parts = [os.urandom(5 * MIB), b"the last part"]
    up = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etags = [s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=n, Body=d)["ETag"]
             for n, d in enumerate(parts, 1)]
    return up, parts, etags


@pytest.mark.parametrize("versioned", [False, True], ids=["unversioned", "versioned"])
def test_a_repeated_completion_answers_the_same_success(s3, bucket, versioned):
    """A client that lost the answer of CompleteMultipartUpload and sends it again gets the
    same answer (as S3 does), not NoSuchUpload; nothing is written twice."""
    if versioned:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    up, parts, etags = upload_two_parts(s3, bucket, "k")
    listed = [(1, etags[0]), (2, etags[1])]
    first = complete(s3, bucket, "k", up, listed)
    assert first["ETag"] == multipart_etag(parts)
    again = complete(s3, bucket, "k", up, listed)
    for field in ("ETag", "Bucket", "Key"):
        assert again[field] == first[field], field
    assert again.get("VersionId") == first.get("VersionId")
    assert (first.get("VersionId") is not None) == versioned
    # Conditions were decided by the first completion: a retry with If-None-Match: * is the
    # same request, answered the same.
    cond = s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=up, IfNoneMatch="*",
                                        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in listed]})
    assert cond["ETag"] == first["ETag"]
    # One object (one version), as the first completion left it.
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"".join(parts)
    versions = s3.list_object_versions(Bucket=bucket).get("Versions", [])
    assert len(versions) == 1
    # A different part list for that upload is NoSuchUpload, and changes nothing.
    expect_error(complete, "NoSuchUpload", 404, s3, bucket, "k", up, [(1, etags[0])])
    expect_error(complete, "NoSuchUpload", 404, s3, bucket, "k", up, [(1, etags[1]), (2, etags[0])])
    expect_error(complete, "NoSuchUpload", 404, s3, bucket, "k", up, [(1, etags[0]), (3, etags[1])])
    # Under another key it is no upload at all.
    expect_error(complete, "NoSuchUpload", 404, s3, bucket, "other", up, listed)
    assert s3.head_object(Bucket=bucket, Key="k")["ETag"] == first["ETag"]
    # The upload is gone for every other call.
    expect_error(s3.list_parts, "NoSuchUpload", 404, Bucket=bucket, Key="k", UploadId=up)
    expect_error(s3.abort_multipart_upload, "NoSuchUpload", 404, Bucket=bucket, Key="k", UploadId=up)


def test_a_completion_repeated_after_an_overwrite_is_no_such_upload(s3, bucket):
    up, parts, etags = upload_two_parts(s3, bucket, "k")
    listed = [(1, etags[0]), (2, etags[1])]
    complete(s3, bucket, "k", up, listed)
    s3.put_object(Bucket=bucket, Key="k", Body=b"overwritten")
    expect_error(complete, "NoSuchUpload", 404, s3, bucket, "k", up, listed)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"overwritten"
    # Deleted: no object to answer with either.
    up2, _, etags2 = upload_two_parts(s3, bucket, "d")
    listed2 = [(1, etags2[0]), (2, etags2[1])]
    complete(s3, bucket, "d", up2, listed2)
    s3.delete_object(Bucket=bucket, Key="d")
    expect_error(complete, "NoSuchUpload", 404, s3, bucket, "d", up2, listed2)
    expect_error(s3.head_object, "404", 404, Bucket=bucket, Key="d")


def test_another_tenant_cannot_repeat_a_completion(s3, bucket, tenant_b):
    up, parts, etags = upload_two_parts(s3, bucket, "k")
    listed = [(1, etags[0]), (2, etags[1])]
    complete(s3, bucket, "k", up, listed)
    other = tenant_b["client"]
    b2 = unique_name("repeat-b")
    other.create_bucket(Bucket=b2)
    # Its own bucket, the same upload id: no upload of its.
    expect_error(complete, "NoSuchUpload", 404, other, b2, "k", up, listed)
    code, status, _ = client_error(complete, other, bucket, "k", up, listed)
    assert status in (403, 404) and code in ("AccessDenied", "NoSuchBucket"), (code, status)
