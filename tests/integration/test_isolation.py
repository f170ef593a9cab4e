"""Tenant isolation: a tenant is denied every operation on another tenant's
buckets, objects and uploads (in both directions), and nothing it tries
changes or reveals the other tenant's data."""

from dataclasses import dataclass

import botocore.exceptions
import pytest
import requests

from s3helpers import unique_name

SECRET = b"tenant secret payload \x00\x01\x02" * 100
DENIED_CODES = {"AccessDenied", "NoSuchBucket", "403", "404"}
DENIED_STATUS = {403, 404}


@dataclass
class Scene:
    owner: object          # boto3 client of the owning tenant
    intruder: object       # boto3 client of the other tenant
    bucket: str            # owner's bucket
    key: str               # owner's object
    upload_key: str
    upload_id: str
    part_etag: str
    intruder_bucket: str   # intruder's own bucket, with intruder_key in it
    intruder_key: str


def make_scene(owner, intruder) -> Scene:
    bucket = unique_name("owned")
    owner.create_bucket(Bucket=bucket)
    owner.put_object(Bucket=bucket, Key="secret.bin", Body=SECRET, Metadata={"m": "v"})
    up = owner.create_multipart_upload(Bucket=bucket, Key="mpu")["UploadId"]
    etag = owner.upload_part(Bucket=bucket, Key="mpu", UploadId=up, PartNumber=1, Body=b"p" * 1000)["ETag"]
    ib = unique_name("intruder")
    intruder.create_bucket(Bucket=ib)
    intruder.put_object(Bucket=ib, Key="mine", Body=b"intruder data")
    return Scene(owner, intruder, bucket, "secret.bin", "mpu", up, etag, ib, "mine")


@pytest.fixture(scope="module", params=["B-on-demo", "demo-on-B"])
def scene(request, s3, tenant_b):
    if request.param == "B-on-demo":
        return make_scene(s3, tenant_b["client"])
    return make_scene(tenant_b["client"], s3)


def assert_intact(sc: Scene):
    o = sc.owner
    o.head_bucket(Bucket=sc.bucket)
    got = o.get_object(Bucket=sc.bucket, Key=sc.key)
    assert got["Body"].read() == SECRET and got["Metadata"] == {"m": "v"}, "owner's object was changed"
    keys = [x["Key"] for x in o.list_objects_v2(Bucket=sc.bucket).get("Contents", [])]
    assert keys == [sc.key], f"owner's bucket now holds {keys}"
    parts = o.list_parts(Bucket=sc.bucket, Key=sc.upload_key, UploadId=sc.upload_id).get("Parts", [])
    assert [(p["PartNumber"], p["ETag"]) for p in parts] == [(1, sc.part_etag)], "owner's upload was changed"
    uploads = o.list_multipart_uploads(Bucket=sc.bucket).get("Uploads", [])
    assert [u["UploadId"] for u in uploads] == [sc.upload_id]
    # The intruder's own bucket holds only its own object.
    mine = [x["Key"] for x in sc.intruder.list_objects_v2(Bucket=sc.intruder_bucket).get("Contents", [])]
    assert mine == [sc.intruder_key], f"intruder's bucket now holds {mine}"


def denied(call, *args, **kwargs):
    try:
        result = call(*args, **kwargs)
    except botocore.exceptions.ClientError as e:
        code = e.response.get("Error", {}).get("Code")
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        assert code in DENIED_CODES and status in DENIED_STATUS, f"expected AccessDenied, got {code}/{status}"
        return
    body = result.get("Body").read() if isinstance(result, dict) and "Body" in result else b""
    assert SECRET[:20] not in body
    raise AssertionError(f"operation was allowed for the other tenant: {result!r}"[:600])


def op_delete_objects(sc):
    try:
        r = sc.intruder.delete_objects(Bucket=sc.bucket, Delete={"Objects": [{"Key": sc.key}]})
    except botocore.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] in DENIED_CODES
        return
    # S3 may answer 200 with a per-key error; it must not report a deletion.
    assert not r.get("Deleted"), r
    assert all(e["Code"] == "AccessDenied" for e in r.get("Errors", [])) and r.get("Errors"), r


def op_upload_part_copy(sc):
    up = sc.intruder.create_multipart_upload(Bucket=sc.intruder_bucket, Key="stolen-mpu")["UploadId"]
    try:
        denied(sc.intruder.upload_part_copy, Bucket=sc.intruder_bucket, Key="stolen-mpu", UploadId=up, PartNumber=1,
               CopySource={"Bucket": sc.bucket, "Key": sc.key})
        assert sc.intruder.list_parts(Bucket=sc.intruder_bucket, Key="stolen-mpu", UploadId=up).get("Parts", []) == []
    finally:
        sc.intruder.abort_multipart_upload(Bucket=sc.intruder_bucket, Key="stolen-mpu", UploadId=up)


def op_presigned_get(sc):
    url = sc.intruder.generate_presigned_url("get_object", Params={"Bucket": sc.bucket, "Key": sc.key}, ExpiresIn=60)
    r = requests.get(url, timeout=10)
    assert r.status_code in DENIED_STATUS, r.status_code
    assert SECRET[:20] not in r.content


def op_presigned_put(sc):
    url = sc.intruder.generate_presigned_url("put_object", Params={"Bucket": sc.bucket, "Key": sc.key}, ExpiresIn=60)
    r = requests.put(url, data=b"overwritten", timeout=10)
    assert r.status_code in DENIED_STATUS, r.status_code


def op_create_bucket(sc):
    try:
        sc.intruder.create_bucket(Bucket=sc.bucket)
    except botocore.exceptions.ClientError as e:
        assert (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]) == ("BucketAlreadyExists", 409)
        return
    raise AssertionError("other tenant could create a bucket with an existing name")


OPS = {
    "HeadBucket": lambda sc: denied(sc.intruder.head_bucket, Bucket=sc.bucket),
    "GetBucketLocation": lambda sc: denied(sc.intruder.get_bucket_location, Bucket=sc.bucket),
    "ListObjects": lambda sc: denied(sc.intruder.list_objects, Bucket=sc.bucket),
    "ListObjectsV2": lambda sc: denied(sc.intruder.list_objects_v2, Bucket=sc.bucket),
    "ListObjectVersions": lambda sc: denied(sc.intruder.list_object_versions, Bucket=sc.bucket),
    "ListMultipartUploads": lambda sc: denied(sc.intruder.list_multipart_uploads, Bucket=sc.bucket),
    "DeleteBucket": lambda sc: denied(sc.intruder.delete_bucket, Bucket=sc.bucket),
    "CreateBucket": op_create_bucket,
    "PutObject-overwrite": lambda sc: denied(sc.intruder.put_object, Bucket=sc.bucket, Key=sc.key, Body=b"evil"),
    "PutObject-new": lambda sc: denied(sc.intruder.put_object, Bucket=sc.bucket, Key="planted", Body=b"evil"),
    "GetObject": lambda sc: denied(sc.intruder.get_object, Bucket=sc.bucket, Key=sc.key),
    "GetObject-range": lambda sc: denied(sc.intruder.get_object, Bucket=sc.bucket, Key=sc.key, Range="bytes=0-9"),
    "GetObject-missing": lambda sc: denied(sc.intruder.get_object, Bucket=sc.bucket, Key="does-not-exist"),
    "HeadObject": lambda sc: denied(sc.intruder.head_object, Bucket=sc.bucket, Key=sc.key),
    "DeleteObject": lambda sc: denied(sc.intruder.delete_object, Bucket=sc.bucket, Key=sc.key),
    "DeleteObjects": op_delete_objects,
    "CopyObject-from-other": lambda sc: denied(
        sc.intruder.copy_object, Bucket=sc.intruder_bucket, Key="stolen", CopySource={"Bucket": sc.bucket, "Key": sc.key}),
    "CopyObject-into-other": lambda sc: denied(
        sc.intruder.copy_object, Bucket=sc.bucket, Key=sc.key,
        CopySource={"Bucket": sc.intruder_bucket, "Key": sc.intruder_key}),
    "CopyObject-within-other": lambda sc: denied(
        sc.intruder.copy_object, Bucket=sc.bucket, Key="dup", CopySource={"Bucket": sc.bucket, "Key": sc.key}),
    "CreateMultipartUpload": lambda sc: denied(sc.intruder.create_multipart_upload, Bucket=sc.bucket, Key="planted"),
    "UploadPart": lambda sc: denied(
        sc.intruder.upload_part, Bucket=sc.bucket, Key=sc.upload_key, UploadId=sc.upload_id, PartNumber=2, Body=b"evil"),
    "UploadPart-overwrite": lambda sc: denied(
        sc.intruder.upload_part, Bucket=sc.bucket, Key=sc.upload_key, UploadId=sc.upload_id, PartNumber=1, Body=b"evil"),
    "UploadPartCopy": op_upload_part_copy,
    "ListParts": lambda sc: denied(sc.intruder.list_parts, Bucket=sc.bucket, Key=sc.upload_key, UploadId=sc.upload_id),
    "CompleteMultipartUpload": lambda sc: denied(
        sc.intruder.complete_multipart_upload, Bucket=sc.bucket, Key=sc.upload_key, UploadId=sc.upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": sc.part_etag}]}),
    "AbortMultipartUpload": lambda sc: denied(
        sc.intruder.abort_multipart_upload, Bucket=sc.bucket, Key=sc.upload_key, UploadId=sc.upload_id),
    "PresignedGet": op_presigned_get,
    "PresignedPut": op_presigned_put,
}


@pytest.mark.parametrize("op", list(OPS))
def test_other_tenant_denied(scene, op):
    OPS[op](scene)
    assert_intact(scene)


def test_owner_still_allowed(scene):
    o = scene.owner
    o.put_object(Bucket=scene.bucket, Key="owner-extra", Body=b"ok")
    assert o.get_object(Bucket=scene.bucket, Key="owner-extra")["Body"].read() == b"ok"
    o.copy_object(Bucket=scene.bucket, Key="owner-copy", CopySource={"Bucket": scene.bucket, "Key": scene.key})
    assert o.get_object(Bucket=scene.bucket, Key="owner-copy")["Body"].read() == SECRET
    o.delete_objects(Bucket=scene.bucket, Delete={"Objects": [{"Key": "owner-extra"}, {"Key": "owner-copy"}]})
    assert o.get_bucket_location(Bucket=scene.bucket)["LocationConstraint"] == "de-1"
    assert_intact(scene)


def test_list_buckets_shows_only_own(s3, tenant_b):
    a = unique_name("only-demo")
    b = unique_name("only-b")
    s3.create_bucket(Bucket=a)
    tenant_b["client"].create_bucket(Bucket=b)
    demo_names = {x["Name"] for x in s3.list_buckets()["Buckets"]}
    b_names = {x["Name"] for x in tenant_b["client"].list_buckets()["Buckets"]}
    assert a in demo_names and b not in demo_names
    assert b in b_names and a not in b_names
    assert not demo_names & b_names, f"buckets listed for both tenants: {demo_names & b_names}"


def _start_held_put(server, bucket: str, key: str, body: bytes, held: int):
    """A signed PUT (UNSIGNED-PAYLOAD) of `body` whose last `held` bytes are not sent yet: the
    request is authorised and its handler waits for the rest."""
    import socket
    from urllib.parse import urlparse

    from s3helpers import sign

    u = urlparse(server.s3_url)
    host = f"{u.hostname}:{u.port}"
    path = f"/{bucket}/{key}"
    signed = sign(
        "PUT",
        host,
        path,
        [],
        {"content-length": str(len(body))},
        "UNSIGNED-PAYLOAD",
        server.demo["AWS_ACCESS_KEY_ID"],
        server.demo["AWS_SECRET_ACCESS_KEY"],
    )
    head = f"PUT {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in signed.headers.items())
    sock = socket.create_connection((u.hostname, u.port), timeout=30)
    sock.sendall(head.encode() + b"\r\n" + body[: len(body) - held])
    return sock


def _finish_held_put(sock, rest: bytes) -> tuple[int, bytes]:
    """Sends the held bytes; returns the answer's status and body."""
    with sock:
        sock.sendall(rest)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed before an answer: {data!r}"
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, body


@pytest.mark.parametrize("successor", ["other-tenant", "same-tenant"])
def test_a_put_held_across_its_buckets_deletion_never_lands_in_a_new_bucket_of_that_name(
    server, s3, tenant_b, successor
):
    """A PUT authorised against a bucket, whose body is still arriving when the bucket is
    deleted and a bucket of the same name created (by another tenant, or by the same one),
    fails NoSuchBucket; the new bucket's object under that key is left as it was."""
    import time

    bucket = unique_name("reborn")
    s3.create_bucket(Bucket=bucket)
    body = b"the first incarnation's write " * 4000
    sock = _start_held_put(server, bucket, "k", body, held=1000)
    # Time for the gateway to authorise the request and start reading its body.
    time.sleep(1.0)
    s3.delete_bucket(Bucket=bucket)
    heir = tenant_b["client"] if successor == "other-tenant" else s3
    heir.create_bucket(Bucket=bucket)
    theirs = b"the new bucket's own object"
    heir.put_object(Bucket=bucket, Key="k", Body=theirs)

    status, answer = _finish_held_put(sock, body[-1000:])
    assert status == 404 and b"NoSuchBucket" in answer, (status, answer[:300])

    assert heir.get_object(Bucket=bucket, Key="k")["Body"].read() == theirs
    listed = heir.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert [(o["Key"], o["Size"]) for o in listed] == [("k", len(theirs))]
    # Nothing of the refused write is left behind in it: once emptied, it can be deleted.
    heir.delete_object(Bucket=bucket, Key="k")
    heir.delete_bucket(Bucket=bucket)
