"""Guarantee 4, no standing operator access: an operator reads a tenant's data
only under a grant (scope, reason, expiry) approved by two distinct officers
other than the requester and, where the tenant's policy asks for it, by that
tenant's admin. Every rule is checked both ways: what it refuses and what it
still allows. Every access under a grant and every key release is logged."""

from __future__ import annotations

import json
import os
import subprocess
import time

import boto3
import botocore
import requests
from botocore.config import Config

from conftest import bearer, tool
from gov_helpers import (
    api,
    approve,
    approved_grant,
    credentials,
    enrol,
    entries_of,
    grant_client,
    grant_view,
    log_entries,
    log_size,
    make_tenant,
    new_name,
    request_grant,
    run_fail,
    run_ok,
    tenant_with_bucket,
)
from s3helpers import RawS3, clean_env, client_error, unique_name, xml_error

DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "InvalidToken"}


def assert_denied(fn, what: str, **kw):
    try:
        fn(**kw)
    except botocore.exceptions.ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        resp = e.response
    else:
        raise AssertionError(f"{what}: expected a 403 denial, but the request succeeded")
    assert status == 403 and code in DENIED, f"{what}: expected a 403 denial, got {code!r}/{status}: {resp.get('Error')}"
    return code, resp.get("Error", {}).get("Message", "")


def assert_access_denied(fn, what: str, **kw) -> str:
    code, msg = assert_denied(fn, what, **kw)
    # a HEAD response has no body, so its code is only the status
    assert code == "AccessDenied" or (code == "403" and "Head" in what), f"{what}: expected AccessDenied, got {code!r} ({msg!r})"
    return msg


def s3_operations(bucket: str, key: str, new_bucket: str):
    """(name, call) for every kind of S3 request an operator might try."""
    return [
        ("ListBuckets", lambda c: c.list_buckets()),
        ("CreateBucket", lambda c: c.create_bucket(Bucket=new_bucket)),
        ("HeadBucket", lambda c: c.head_bucket(Bucket=bucket)),
        ("GetBucketLocation", lambda c: c.get_bucket_location(Bucket=bucket)),
        ("GetBucketVersioning", lambda c: c.get_bucket_versioning(Bucket=bucket)),
        ("ListObjectsV2", lambda c: c.list_objects_v2(Bucket=bucket)),
        ("ListObjectsV2-prefix", lambda c: c.list_objects_v2(Bucket=bucket, Prefix=key[:3])),
        ("ListObjects", lambda c: c.list_objects(Bucket=bucket)),
        ("ListObjectVersions", lambda c: c.list_object_versions(Bucket=bucket)),
        ("ListMultipartUploads", lambda c: c.list_multipart_uploads(Bucket=bucket)),
        ("GetObject", lambda c: c.get_object(Bucket=bucket, Key=key)["Body"].read()),
        ("GetObject-range", lambda c: c.get_object(Bucket=bucket, Key=key, Range="bytes=0-3")["Body"].read()),
        ("HeadObject", lambda c: c.head_object(Bucket=bucket, Key=key)),
        ("GetObjectAcl", lambda c: c.get_object_acl(Bucket=bucket, Key=key)),
        ("GetObjectTagging", lambda c: c.get_object_tagging(Bucket=bucket, Key=key)),
        ("PutObject", lambda c: c.put_object(Bucket=bucket, Key=key, Body=b"overwritten")),
        ("PutObject-new", lambda c: c.put_object(Bucket=bucket, Key="planted", Body=b"planted")),
        ("CopyObject", lambda c: c.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": key})),
        ("DeleteObject", lambda c: c.delete_object(Bucket=bucket, Key=key)),
        ("DeleteObjects", lambda c: c.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key}]})),
        ("CreateMultipartUpload", lambda c: c.create_multipart_upload(Bucket=bucket, Key="mpu")),
        ("PutBucketVersioning", lambda c: c.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})),
        ("DeleteBucket", lambda c: c.delete_bucket(Bucket=bucket)),
    ]


def assert_untouched(t: dict, key: str, body: bytes):
    c = t["client"]
    assert c.get_object(Bucket=t["bucket"], Key=key)["Body"].read() == body
    keys = [o["Key"] for o in c.list_objects_v2(Bucket=t["bucket"]).get("Contents", [])]
    assert "planted" not in keys and "copied" not in keys and "mpu" not in keys, keys
    assert c.list_multipart_uploads(Bucket=t["bucket"]).get("Uploads", []) == []


# ---------------------------------------------------------------- no grant, no access


def test_operator_without_grant_is_denied_on_every_s3_operation(server):
    key, body = "customer/record.txt", b"customer record " + os.urandom(16)
    t = tenant_with_bucket(server, {key: body})
    other_bucket = unique_name("gb-other")
    t["client"].create_bucket(Bucket=other_bucket)
    op = server.token("operator")
    start = log_size(server)

    # A grant on another bucket of the same tenant, and one still pending on this bucket.
    elsewhere = approved_grant(server, t, "read,list,write", bucket=other_bucket)
    elsewhere_creds = credentials(server, op, elsewhere)
    pending = request_grant(server, op, t["name"], t["bucket"], "read,list,write")
    run_fail(server, op, "access", "credentials", pending, status=403, says="pending")

    unsigned = Config(signature_version=botocore.UNSIGNED, s3={"addressing_style": "path"}, retries={"total_max_attempts": 1})
    who = {
        "anonymous": boto3.session.Session().client("s3", endpoint_url=server.s3_url, region_name="de-1", config=unsigned),
        "operator token as S3 key": server.client(op, op),
        "operator bearer as S3 key": server.client(bearer(op), bearer(op)),
        "made-up grant key": grant_client(server, {"AWS_ACCESS_KEY_ID": "OBG0123456789ABCDEF",
                                                   "AWS_SECRET_ACCESS_KEY": "0" * 40,
                                                   "AWS_SESSION_TOKEN": "obs_" + "0" * 48}),
        "grant on another bucket": grant_client(server, elsewhere_creds),
    }

    for label, client in who.items():
        for name, call in s3_operations(t["bucket"], key, unique_name("gb-new")):
            assert_denied(call, f"{name} as {label}", c=client)
    assert_untouched(t, key, body)

    # Nothing of this bucket was released or accessed under any grant.
    for e in entries_of(server, start, tenant=t["name"]):
        if e["type"] == "key_release":
            assert e["justification"]["kind"] == "customer", f"a key was released without the customer: {e}"
        assert e["type"] != "grant_access" or e.get("bucket") != t["bucket"], f"an access was allowed: {e}"

    # ... and both ways: the grant on the other bucket does work there.
    t["client"].put_object(Bucket=other_bucket, Key="x", Body=b"other")
    assert grant_client(server, elsewhere_creds).get_object(Bucket=other_bucket, Key="x")["Body"].read() == b"other"


# ---------------------------------------------------------------- quorum


def test_one_officer_cannot_approve_alone(server):
    t = tenant_with_bucket(server, {"k": b"secret"})
    op = server.token("operator")
    gid = request_grant(server, op, t["name"], t["bucket"])
    assert approve(server, server.token("officer1"), gid) == "pending: 1 of 2 officers, tenant admin has not approved"
    # the tenant admin on top of one officer is still not a quorum
    assert approve(server, t["admin"], gid) == "pending: 1 of 2 officers, tenant admin approved"
    assert grant_view(server, gid)["state"] == "pending"
    run_fail(server, op, "access", "credentials", gid, status=403, says="not approved")
    # both ways: the second officer completes it
    assert approve(server, server.token("officer2"), gid) == "approved"
    view = grant_view(server, gid)
    assert view["state"] == "approved" and view["expires_ms"] > view["approved_ms"], view
    creds = credentials(server, op, gid)
    assert grant_client(server, creds).get_object(Bucket=t["bucket"], Key="k")["Body"].read() == b"secret"


def test_the_same_officer_twice_is_still_one(server):
    t = tenant_with_bucket(server, {"k": b"secret"})
    op = server.token("operator")
    gid = request_grant(server, op, t["name"], t["bucket"])
    start = log_size(server)
    for _ in range(3):
        assert approve(server, server.token("officer1"), gid).startswith("pending: 1 of 2 officers")
    assert approve(server, t["admin"], gid) == "pending: 1 of 2 officers, tenant admin approved"
    assert approve(server, t["admin"], gid) == "pending: 1 of 2 officers, tenant admin approved"
    run_fail(server, op, "access", "credentials", gid, status=403)
    approvals = entries_of(server, start, type="grant_approval", grant=gid)
    assert sorted(e["principal"] for e in approvals) == sorted(["officer1", t["name"] + "-admin"]), approvals
    # both ways: a different officer completes it
    assert approve(server, server.token("officer2"), gid) == "approved"
    assert [a["principal"] for a in grant_view(server, gid)["approvals"]].count("officer1") == 1


def test_the_requester_cannot_approve_its_own_request(server):
    t = tenant_with_bucket(server, {"k": b"secret"})
    requester = server.token("officer1")
    gid = request_grant(server, requester, t["name"], t["bucket"])
    run_fail(server, requester, "access", "approve", gid, status=403, says="requester")
    out = run_ok(server, requester, "access", "show", gid)
    assert "approvals: none" in out, f"the requester's attempt counted: {out!r}"
    assert grant_view(server, gid)["approvals"] == []
    assert approve(server, server.token("officer2"), gid) == "pending: 1 of 2 officers, tenant admin has not approved"
    assert approve(server, t["admin"], gid) == "pending: 1 of 2 officers, tenant admin approved"
    run_fail(server, requester, "access", "credentials", gid, status=403)
    # both ways: a third officer (not the requester) completes the quorum
    officer3 = enrol(server, new_name("officer3-"), "officer")
    assert approve(server, officer3, gid) == "approved"
    # only the requester receives the credentials
    run_fail(server, server.token("officer2"), "access", "credentials", gid, status=403, says="requester")
    run_fail(server, server.token("operator"), "access", "credentials", gid, status=403)
    creds = credentials(server, requester, gid)
    assert grant_client(server, creds).get_object(Bucket=t["bucket"], Key="k")["Body"].read() == b"secret"


def test_tenant_admin_of_a_cannot_approve_for_b(server):
    a = make_tenant(server)
    b = tenant_with_bucket(server, {"k": b"b's data"})
    op = server.token("operator")
    gid = request_grant(server, op, b["name"], b["bucket"])
    approve(server, server.token("officer1"), gid)
    approve(server, server.token("officer2"), gid)
    run_fail(server, a["admin"], "access", "approve", gid, status=404, says="no grant")  # A's admin cannot even see it
    assert grant_view(server, gid)["state"] == "pending"
    assert [a["principal"] for a in grant_view(server, gid)["approvals"]] == ["officer1", "officer2"]
    run_fail(server, a["admin"], "access", "deny", gid, status=403)
    run_fail(server, a["admin"], "access", "revoke", gid, status=403)
    # A's admin does not even see B's grants
    assert api(server, "GET", f"/v1/grants/{gid}", a["admin"]).status_code == 404
    assert gid not in run_ok(server, a["admin"], "access", "list")
    # tenant admins do not request grants
    run_fail(server, a["admin"], "access", "request", "--tenant", b["name"], "--bucket", b["bucket"], "--ops", "read",
             "--duration", "1h", "--reason", "x", status=403)
    # both ways: B's own admin completes it, and sees it
    assert gid in run_ok(server, b["admin"], "access", "list")
    assert approve(server, b["admin"], gid) == "approved"
    creds = credentials(server, op, gid)
    assert grant_client(server, creds).get_object(Bucket=b["bucket"], Key="k")["Body"].read() == b"b's data"


def test_customer_approval_policy(server):
    t = tenant_with_bucket(server, {"k": b"data"})
    officer, op = server.token("officer1"), server.token("operator")
    assert "customer approval of grants required" in run_ok(server, t["admin"], "tenant", "policy", t["name"])
    start = log_size(server)
    # only officers set the policy
    for who in (t["admin"], op, server.token("auditor")):
        run_fail(server, who, "tenant", "policy", t["name"], "--customer-approval", "optional", status=403)
    run_fail(server, officer, "tenant", "policy", t["name"], "--customer-approval", "maybe")
    # required: two officers are not enough
    g1 = request_grant(server, op, t["name"], t["bucket"])
    approve(server, officer, g1)
    assert approve(server, server.token("officer2"), g1) == "pending: 2 of 2 officers, tenant admin has not approved"
    run_fail(server, op, "access", "credentials", g1, status=403)

    out = run_ok(server, officer, "tenant", "policy", t["name"], "--customer-approval", "optional")
    assert "optional" in out, out
    assert api(server, "GET", f"/v1/tenants/{t['name']}/policy", t["admin"]).json()["customer_approval"] == "optional"
    g2 = request_grant(server, op, t["name"], t["bucket"])
    assert approve(server, officer, g2) == "pending: 1 of 2 officers"
    assert approve(server, server.token("officer2"), g2) == "approved"
    assert grant_client(server, credentials(server, op, g2)).get_object(Bucket=t["bucket"], Key="k")["Body"].read() == b"data"
    # the tenant admin may still approve (it counts for nothing extra) and may revoke
    run_ok(server, t["admin"], "access", "revoke", g2)

    run_ok(server, server.token("officer2"), "tenant", "policy", t["name"], "--customer-approval", "required")
    g3 = request_grant(server, op, t["name"], t["bucket"])
    approve(server, officer, g3)
    assert approve(server, server.token("officer2"), g3).endswith("tenant admin has not approved")
    changes = entries_of(server, start, type="policy_changed", tenant=t["name"])
    assert [(e["customer_approval"], e["by"]) for e in changes] == [("optional", "officer1"), ("required", "officer2")], changes


# ---------------------------------------------------------------- operations and scope


def test_a_write_under_a_read_grant_is_denied(server):
    t = tenant_with_bucket(server, {"doc": b"original", "other": b"other"})
    op = server.token("operator")
    c = grant_client(server, credentials(server, op, approved_grant(server, t, "read")))
    b = t["bucket"]
    assert c.get_object(Bucket=b, Key="doc")["Body"].read() == b"original"
    assert c.head_object(Bucket=b, Key="doc")["ContentLength"] == len(b"original")
    assert c.get_object(Bucket=b, Key="doc", Range="bytes=0-3")["Body"].read() == b"orig"
    for what, call in [
        ("PutObject", lambda: c.put_object(Bucket=b, Key="doc", Body=b"changed")),
        ("PutObject new", lambda: c.put_object(Bucket=b, Key="new", Body=b"new")),
        ("DeleteObject", lambda: c.delete_object(Bucket=b, Key="doc")),
        ("CopyObject", lambda: c.copy_object(Bucket=b, Key="copy", CopySource={"Bucket": b, "Key": "doc"})),
        ("CreateMultipartUpload", lambda: c.create_multipart_upload(Bucket=b, Key="mpu")),
        ("DeleteObjects", lambda: c.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "doc"}]})),
        ("ListObjectsV2 (not granted)", lambda: c.list_objects_v2(Bucket=b)),
    ]:
        assert_denied(call, f"{what} under a read grant")
    assert_untouched(t, "doc", b"original")

    # both ways: a write grant writes (and the tenant reads what was written) ...
    w = grant_client(server, credentials(server, op, approved_grant(server, t, "write")))
    w.put_object(Bucket=b, Key="fixed", Body=b"written under a grant")
    assert t["client"].get_object(Bucket=b, Key="fixed")["Body"].read() == b"written under a grant"
    mpu = w.create_multipart_upload(Bucket=b, Key="big")["UploadId"]
    part = os.urandom(5 * 1024 * 1024)
    etag = w.upload_part(Bucket=b, Key="big", UploadId=mpu, PartNumber=1, Body=part)["ETag"]
    w.complete_multipart_upload(Bucket=b, Key="big", UploadId=mpu, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert t["client"].get_object(Bucket=b, Key="big")["Body"].read() == part
    w.delete_object(Bucket=b, Key="fixed")
    # ... but does not read or list
    assert_denied(lambda: w.get_object(Bucket=b, Key="doc"), "GetObject under a write grant")
    assert_denied(lambda: w.list_objects_v2(Bucket=b), "ListObjectsV2 under a write grant")
    assert_denied(lambda: w.copy_object(Bucket=b, Key="c2", CopySource={"Bucket": b, "Key": "doc"}),
                  "CopyObject (reads its source) under a write-only grant")
    # ... and a list grant lists only
    lc = grant_client(server, credentials(server, op, approved_grant(server, t, "list")))
    keys = sorted(o["Key"] for o in lc.list_objects_v2(Bucket=b)["Contents"])
    assert keys == ["big", "doc", "other"], keys
    lc.head_bucket(Bucket=b)
    assert_denied(lambda: lc.get_object(Bucket=b, Key="doc"), "GetObject under a list grant")
    assert_denied(lambda: lc.put_object(Bucket=b, Key="x", Body=b"x"), "PutObject under a list grant")


def test_out_of_scope_access_is_denied(server):
    t = tenant_with_bucket(server, {"in/a": b"in scope", "in/sub/b": b"deeper", "out/a": b"out of scope", "inx": b"near miss"})
    second = unique_name("gb-second")
    t["client"].create_bucket(Bucket=second)
    t["client"].put_object(Bucket=second, Key="in/a", Body=b"other bucket")
    other = tenant_with_bucket(server, {"in/a": b"other tenant"})
    op = server.token("operator")
    creds = credentials(server, op, approved_grant(server, t, "read,list,write", prefix="in/"))
    c = grant_client(server, creds)
    b = t["bucket"]

    # inside the scope
    assert c.get_object(Bucket=b, Key="in/a")["Body"].read() == b"in scope"
    assert c.get_object(Bucket=b, Key="in/sub/b")["Body"].read() == b"deeper"
    listed = sorted(o["Key"] for o in c.list_objects_v2(Bucket=b, Prefix="in/")["Contents"])
    assert listed == ["in/a", "in/sub/b"], listed
    c.put_object(Bucket=b, Key="in/new", Body=b"new")
    c.copy_object(Bucket=b, Key="in/copy", CopySource={"Bucket": b, "Key": "in/a"})
    mpu = c.create_multipart_upload(Bucket=b, Key="in/mpu")["UploadId"]

    # outside it: other keys, other prefixes, other buckets, other tenants
    for what, call in [
        ("GetObject out/a", lambda: c.get_object(Bucket=b, Key="out/a")),
        ("GetObject inx (prefix without its slash)", lambda: c.get_object(Bucket=b, Key="inx")),
        ("HeadObject out/a", lambda: c.head_object(Bucket=b, Key="out/a")),
        ("PutObject out/x", lambda: c.put_object(Bucket=b, Key="out/x", Body=b"x")),
        ("DeleteObject out/a", lambda: c.delete_object(Bucket=b, Key="out/a")),
        ("ListObjectsV2 whole bucket", lambda: c.list_objects_v2(Bucket=b)),
        ("ListObjectsV2 prefix out/", lambda: c.list_objects_v2(Bucket=b, Prefix="out/")),
        ("ListObjectsV2 prefix i", lambda: c.list_objects_v2(Bucket=b, Prefix="i")),
        ("ListObjects whole bucket", lambda: c.list_objects(Bucket=b)),
        ("CopyObject from out/ into in/", lambda: c.copy_object(Bucket=b, Key="in/stolen", CopySource={"Bucket": b, "Key": "out/a"})),
        ("CopyObject from in/ to out/", lambda: c.copy_object(Bucket=b, Key="out/leak", CopySource={"Bucket": b, "Key": "in/a"})),
        ("GetObject in another bucket", lambda: c.get_object(Bucket=second, Key="in/a")),
        ("ListObjectsV2 in another bucket", lambda: c.list_objects_v2(Bucket=second, Prefix="in/")),
        ("GetObject of another tenant", lambda: c.get_object(Bucket=other["bucket"], Key="in/a")),
        ("CopyObject from another tenant", lambda: c.copy_object(Bucket=b, Key="in/x", CopySource={"Bucket": other["bucket"], "Key": "in/a"})),
        ("UploadPartCopy from out/", lambda: c.upload_part_copy(Bucket=b, Key="in/mpu", UploadId=mpu, PartNumber=1,
                                                                 CopySource={"Bucket": b, "Key": "out/a"})),
        ("CreateMultipartUpload out/", lambda: c.create_multipart_upload(Bucket=b, Key="out/mpu")),
        ("PUT by a presigned URL to out/", lambda: presigned_put(c, b, "out/presigned")),
    ]:
        assert_access_denied(call, what)
    c.abort_multipart_upload(Bucket=b, Key="in/mpu", UploadId=mpu)
    keys = sorted(o["Key"] for o in t["client"].list_objects_v2(Bucket=b)["Contents"])
    assert keys == ["in/a", "in/copy", "in/new", "in/sub/b", "inx", "out/a"], keys
    assert t["client"].get_object(Bucket=b, Key="out/a")["Body"].read() == b"out of scope"


def test_copy_source_tricks_do_not_leave_the_grant(server):
    """The grant check reads x-amz-copy-source as the copy does: percent-encoding, a leading
    slash, ?versionId=, and '..', '?' or '%' in keys (S3 keys are literal) cannot make a grant
    for a/ copy from a key outside it."""
    t = tenant_with_bucket(server, {"a/in": b"in scope", "secret": b"TOP SECRET", "a/q?x%y": b"odd key"})
    b = t["bucket"]
    creds = credentials(server, server.token("operator"), approved_grant(server, t, "read,list,write", prefix="a/"))
    raw = RawS3(server.s3_url, creds["AWS_ACCESS_KEY_ID"], creds["AWS_SECRET_ACCESS_KEY"])

    def copy(source: str, dest: str):
        return raw.request("PUT", b, dest, headers={"x-amz-security-token": creds["AWS_SESSION_TOKEN"],
                                                    "x-amz-copy-source": source})

    # Outside a/, however written: refused by the grant check.
    for i, source in enumerate([
        f"{b}/secret",
        f"/{b}/secret",
        f"{b}//secret",
        f"%2F{b}%2Fsecret",
        f"{b}%2Fsecret",
        f"{b}/secret?versionId=null",
        f"{b}/secret%3Fa/x",
        f"{b}/%73ecret",
    ]):
        r = copy(source, f"a/stolen-{i}")
        assert r.status_code == 403 and xml_error(r)[0] == "AccessDenied", \
            f"copy from {source!r} under a grant for a/: {r.status_code} {r.text[:300]}"
    # Inside a/ as S3 reads it (keys are literal: "a/../secret" is a key under a/, not
    # "secret"): allowed, and the copy reads that very key, which does not exist.
    for i, source in enumerate([f"{b}/a%2F..%2Fsecret", f"{b}/a/../secret", f"{b}/a/%2e%2e/secret"]):
        r = copy(source, f"a/dotted-{i}")
        assert r.status_code == 404 and xml_error(r)[0] == "NoSuchKey", \
            f"copy from {source!r} under a grant for a/: {r.status_code} {r.text[:300]}"
    # A key under a/ with '?' and '%' in it is copied, and it is that key that is read.
    r = copy(f"{b}/a/q%3Fx%25y", "a/copied")
    assert r.status_code == 200, f"copy of 'a/q?x%y': {r.status_code} {r.text[:300]}"
    assert t["client"].get_object(Bucket=b, Key="a/copied")["Body"].read() == b"odd key"
    keys = sorted(o["Key"] for o in t["client"].list_objects_v2(Bucket=b)["Contents"])
    assert keys == ["a/copied", "a/in", "a/q?x%y", "secret"], keys


def presigned_put(client, bucket, key):
    """A PUT through a presigned URL; raises a ClientError-like failure on refusal."""
    url = client.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=60)
    r = requests.put(url, data=b"planted", timeout=30)
    if r.status_code != 200:
        raise botocore.exceptions.ClientError(
            {"Error": {"Code": "AccessDenied" if "AccessDenied" in r.text else str(r.status_code), "Message": r.text[:200]},
             "ResponseMetadata": {"HTTPStatusCode": r.status_code}}, "PutObject")
    return r


def test_scope_holds_for_hand_made_listing_requests(server):
    """The prefix the grant check sees is the prefix the listing uses."""
    t = tenant_with_bucket(server, {"in/a": b"1", "out/secret-name": b"2"})
    creds = credentials(server, server.token("operator"), approved_grant(server, t, "list", prefix="in/"))
    raw = RawS3(server.s3_url, creds["AWS_ACCESS_KEY_ID"], creds["AWS_SECRET_ACCESS_KEY"])
    tok = {"x-amz-security-token": creds["AWS_SESSION_TOKEN"]}
    ok = raw.request("GET", t["bucket"], query=[("list-type", "2"), ("prefix", "in/")], headers=dict(tok))
    assert ok.status_code == 200 and "in/a" in ok.text and "out/" not in ok.text, ok.text[:500]
    for query in (
        [("list-type", "2"), ("prefix", "in/"), ("prefix", "")],
        [("list-type", "2"), ("prefix", ""), ("prefix", "in/")],
        [("list-type", "2"), ("prefix", "in/"), ("start-after", "")],
        [("prefix", "in/"), ("prefix", "out/")],
        [("list-type", "2"), ("Prefix", "in/")],
    ):
        r = raw.request("GET", t["bucket"], query=query, headers=dict(tok))
        assert "secret-name" not in r.text, f"listing {query} under a grant for in/ showed out/: {r.status_code} {r.text[:500]}"


def test_a_grant_does_not_follow_its_bucket_name_to_another_tenant(server):
    """A grant names a tenant's bucket; if the tenant deletes it and another
    tenant creates a bucket of that name, the grant gives nothing of it."""
    a = tenant_with_bucket(server, {"k": b"a's data"})
    c = grant_client(server, credentials(server, server.token("operator"), approved_grant(server, a, "read,list,write")))
    assert c.get_object(Bucket=a["bucket"], Key="k")["Body"].read() == b"a's data"
    a["client"].delete_object(Bucket=a["bucket"], Key="k")
    a["client"].delete_bucket(Bucket=a["bucket"])
    b = make_tenant(server)
    b["client"].create_bucket(Bucket=a["bucket"])
    b["client"].put_object(Bucket=a["bucket"], Key="k", Body=b"b's data")
    for what, call in [
        ("GetObject", lambda: c.get_object(Bucket=a["bucket"], Key="k")["Body"].read()),
        ("HeadObject", lambda: c.head_object(Bucket=a["bucket"], Key="k")),
        ("ListObjectsV2", lambda: c.list_objects_v2(Bucket=a["bucket"])),
        ("PutObject", lambda: c.put_object(Bucket=a["bucket"], Key="k", Body=b"overwritten")),
        ("DeleteObject", lambda: c.delete_object(Bucket=a["bucket"], Key="k")),
    ]:
        code, status, resp = client_error(call)
        assert 400 <= status < 500, f"{what} on another tenant's bucket of the same name: {code}/{status}"
    assert b["client"].get_object(Bucket=a["bucket"], Key="k")["Body"].read() == b"b's data"


def test_grant_credentials_need_their_session_token(server):
    t = tenant_with_bucket(server, {"k": b"secret"})
    creds = credentials(server, server.token("operator"), approved_grant(server, t))
    b = t["bucket"]
    msg = assert_access_denied(lambda: grant_client(server, creds, session_token=False).get_object(Bucket=b, Key="k"),
                               "GetObject without the session token")
    assert "session token" in msg.lower(), msg
    other = "obs_" + os.urandom(24).hex()
    assert_access_denied(lambda: grant_client(server, creds, session_token=other).get_object(Bucket=b, Key="k"),
                         "GetObject with another session token")
    wrong_secret = dict(creds, AWS_SECRET_ACCESS_KEY="f" * 40)
    assert_denied(lambda: grant_client(server, wrong_secret).get_object(Bucket=b, Key="k"), "GetObject with a wrong secret")
    # both ways: with it, boto3, a presigned URL and aws-cli all work
    c = grant_client(server, creds)
    assert c.get_object(Bucket=b, Key="k")["Body"].read() == b"secret"
    url = c.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "k"}, ExpiresIn=60)
    assert "X-Amz-Security-Token" in url
    r = requests.get(url, timeout=30)
    assert r.status_code == 200 and r.content == b"secret", (r.status_code, r.text[:300])
    stripped = url.replace("X-Amz-Security-Token=", "X-Amz-Security-Tokex=")
    assert requests.get(stripped, timeout=30).status_code == 403
    env = clean_env({**creds, "AWS_ENDPOINT_URL": server.s3_url, "AWS_DEFAULT_REGION": "de-1", "AWS_REGION": "de-1"})
    r = subprocess.run([tool("aws"), "s3", "cp", f"s3://{b}/k", "-"], env=env, capture_output=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and r.stdout == b"secret", f"aws s3 cp under a grant: {r.returncode} {r.stderr.decode()[-500:]}"
    env.pop("AWS_SESSION_TOKEN")
    r = subprocess.run([tool("aws"), "s3", "cp", f"s3://{b}/k", "-"], env=env, capture_output=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert r.returncode != 0 and (b"AccessDenied" in r.stderr or b"(403)" in r.stderr), f"aws s3 cp without the session token: {r.returncode} {r.stderr!r}"


def test_grant_requests_are_validated(server):
    t = tenant_with_bucket(server)
    other = tenant_with_bucket(server)
    op = server.token("operator")
    base = ["access", "request", "--tenant", t["name"], "--bucket", t["bucket"], "--reason", "case 1"]
    run_fail(server, op, *base, "--ops", "read", "--duration", "4s", status=400, says="5 seconds")
    run_fail(server, op, *base, "--ops", "read", "--duration", "31d", status=400, says="30 days")
    run_fail(server, op, *base, "--ops", "read,delete", "--duration", "1h", status=400)
    run_fail(server, op, *base, "--ops", "read", "--duration", "soon")
    run_fail(server, op, "access", "request", "--tenant", t["name"], "--bucket", t["bucket"], "--reason", " ",
             "--ops", "read", "--duration", "1h", status=400, says="reason")
    # A bucket name is not checked against the catalog (that would tell an operator which
    # bucket names exist); a grant naming another tenant's bucket gives nothing
    # (test_a_grant_does_not_follow_its_bucket_name_to_another_tenant).
    run_fail(server, op, "access", "request", "--tenant", new_name("nosuch"), "--bucket", t["bucket"], "--reason", "x",
             "--ops", "read", "--duration", "1h", status=404)
    # both ways: the limits themselves are accepted
    for d in ("5s", "30d"):
        request_grant(server, op, t["name"], t["bucket"], duration=d)


def test_only_operators_and_officers_request_grants(server):
    """Auditors and tenant admins are refused for what they are, whether or not
    the bucket exists (a 404 would tell them which bucket names exist)."""
    t = tenant_with_bucket(server)
    for who in (server.token("auditor"), t["admin"]):
        for bucket in (t["bucket"], unique_name("no-such-bucket")):
            run_fail(server, who, "access", "request", "--tenant", t["name"], "--bucket", bucket, "--ops", "read",
                     "--duration", "1h", "--reason", "x", status=403)
    request_grant(server, server.token("operator"), t["name"], t["bucket"])
    request_grant(server, server.token("officer2"), t["name"], t["bucket"])


# ---------------------------------------------------------------- ending a grant


def test_revoked_and_denied_grants_give_no_access(server):
    t = tenant_with_bucket(server, {"k": b"secret"})
    op, officer = server.token("operator"), server.token("officer1")
    start = log_size(server)
    gid = approved_grant(server, t)
    creds = credentials(server, op, gid)
    c = grant_client(server, creds)
    for _ in range(2):  # the second read would come from a cache if there were one
        assert c.get_object(Bucket=t["bucket"], Key="k")["Body"].read() == b"secret"
    # only officers and the tenant's admin revoke
    run_fail(server, op, "access", "revoke", gid, status=403)
    run_fail(server, server.token("auditor"), "access", "revoke", gid, status=403)
    run_ok(server, officer, "access", "revoke", gid)
    assert grant_view(server, gid)["state"] == "revoked"
    assert_denied(lambda: c.get_object(Bucket=t["bucket"], Key="k"), "GetObject right after revocation")
    assert_denied(lambda: c.head_object(Bucket=t["bucket"], Key="k"), "HeadObject after revocation")
    run_fail(server, op, "access", "credentials", gid, status=403, says="revoked")
    run_fail(server, server.token("officer2"), "access", "approve", gid, status=409)
    run_fail(server, officer, "access", "revoke", gid, status=409)
    assert [e["principal"] for e in entries_of(server, start, type="grant_revoked", grant=gid)] == ["officer1"]

    # the tenant admin revokes too
    g2 = approved_grant(server, t)
    c2 = grant_client(server, credentials(server, op, g2))
    assert c2.get_object(Bucket=t["bucket"], Key="k")["Body"].read() == b"secret"
    run_ok(server, t["admin"], "access", "revoke", g2)
    assert_denied(lambda: c2.get_object(Bucket=t["bucket"], Key="k"), "GetObject after the tenant admin revoked")

    # a denied request can no longer be approved
    g3 = request_grant(server, op, t["name"], t["bucket"])
    approve(server, officer, g3)
    run_fail(server, op, "access", "deny", g3, status=403)
    run_ok(server, t["admin"], "access", "deny", g3, "--reason", "no ticket for this case")
    assert grant_view(server, g3)["state"] == "denied"
    run_fail(server, server.token("officer2"), "access", "approve", g3, status=409, says="denied")
    run_fail(server, op, "access", "credentials", g3, status=403)
    denied = entries_of(server, start, type="grant_denied", grant=g3)
    assert [e.get("reason") for e in denied] == ["no ticket for this case"], denied
    # Without --reason the denial records none.
    g4 = request_grant(server, op, t["name"], t["bucket"])
    run_ok(server, officer, "access", "deny", g4)
    assert [e.get("reason") for e in entries_of(server, start, type="grant_denied", grant=g4)] == [None]


def test_revoking_the_requester_ends_its_grant_access(server):
    """A principal's revocation takes effect at once, also for the grant
    credentials it holds."""
    t = tenant_with_bucket(server, {"k": b"secret"})
    name = new_name("op-")
    op = enrol(server, name, "operator")
    gid = approved_grant(server, t, requester=op)
    c = grant_client(server, credentials(server, op, gid))
    assert c.get_object(Bucket=t["bucket"], Key="k")["Body"].read() == b"secret"
    run_ok(server, server.token("officer1"), "principal", "revoke", name)
    assert_denied(lambda: c.get_object(Bucket=t["bucket"], Key="k"), "GetObject by a revoked requester")


def test_grant_scope_cannot_be_widened_in_the_trustee_state(private_server):
    """The approvals are checked at every use; they must bind what was approved
    (tenant, bucket, prefix, operations, duration), not only the grant's id: an
    edit of the trustee's stored grant must not widen it."""
    import json
    import sqlite3

    srv = private_server
    t = tenant_with_bucket(srv, {"in/a": b"in", "out/b": b"out"})
    gid = approved_grant(srv, t, "read", prefix="in/")
    creds = credentials(srv, srv.token("operator"), gid)
    srv.stop_ok()
    db = sqlite3.connect(srv.data_dir / "trustee" / "governance.db")
    (record,) = db.execute("SELECT record FROM grants WHERE id = ?", (gid,)).fetchone()
    g = json.loads(record)
    g["prefix"], g["ops"] = "", ["list", "read", "write"]
    db.execute("UPDATE grants SET record = ? WHERE id = ?", (json.dumps(g), gid))
    db.commit()
    db.close()
    srv.start()
    c = grant_client(srv, creds)
    for what, call in [
        ("GetObject out/b", lambda: c.get_object(Bucket=t["bucket"], Key="out/b")),
        ("PutObject", lambda: c.put_object(Bucket=t["bucket"], Key="out/planted", Body=b"x")),
        ("ListObjectsV2", lambda: c.list_objects_v2(Bucket=t["bucket"])),
    ]:
        assert_denied(call, f"{what} under a grant widened by editing governance.db")


# ---------------------------------------------------------------- the record


def test_each_access_under_a_grant_and_each_key_release_is_logged(server):
    t = tenant_with_bucket(server, {"in/a": b"aaa", "in/b": b"bbb", "out/c": b"ccc"})
    op = server.token("operator")
    start = log_size(server)
    gid = approved_grant(server, t, "read,list,write", prefix="in/")
    creds = credentials(server, op, gid)
    c = grant_client(server, creds)
    b = t["bucket"]
    done = []  # (operation, key) as the log must show them, in order

    def did(op_name, key):
        done.append((op_name, key))

    c.get_object(Bucket=b, Key="in/a")["Body"].read(); did("GetObject", "in/a")
    c.get_object(Bucket=b, Key="in/a")["Body"].read(); did("GetObject", "in/a")
    c.head_object(Bucket=b, Key="in/b"); did("HeadObject", "in/b")
    c.list_objects_v2(Bucket=b, Prefix="in/"); did("ListObjectsV2", "in/")
    c.put_object(Bucket=b, Key="in/new", Body=b"new"); did("PutObject", "in/new")
    c.delete_object(Bucket=b, Key="in/new"); did("DeleteObject", "in/new")
    assert_denied(lambda: c.get_object(Bucket=b, Key="out/c"), "out of scope")
    assert_denied(lambda: c.list_objects_v2(Bucket=b), "whole-bucket listing")

    entries = entries_of(server, start, grant=gid)
    kinds = [e["type"] for e in entries]
    assert kinds[:1] == ["grant_requested"], kinds
    assert kinds.count("grant_approval") == 3 and kinds.count("grant_approved") == 1, kinds
    assert kinds.count("grant_credentials") == 1, kinds
    requested = entries[0]
    assert (requested["tenant"], requested["bucket"], requested["prefix"], requested["ops"], requested["principal"],
            requested["reason"]) == (t["name"], b, "in/", ["list", "read", "write"], "operator", "support case 4711"), requested
    approved = [e for e in entries if e["type"] == "grant_approved"][0]
    assert sorted(approved["approvers"]) == sorted(["officer1", "officer2", t["name"] + "-admin"]), approved
    accesses = [(e["operation"], e["key"]) for e in entries if e["type"] == "grant_access"]
    assert accesses == done, f"grant_access entries {accesses} != accesses made {done}"
    for e in entries:
        if e["type"] in ("grant_access", "grant_access_denied"):
            assert (e["tenant"], e["bucket"], e["principal"]) == (t["name"], b, "operator"), e
    denied = [(e["operation"], e["key"]) for e in entries if e["type"] == "grant_access_denied"]
    assert denied == [("GetObject", "out/c"), ("ListObjectsV2", "")], denied

    # every key use under the grant is its own release, recorded right after the access it serves
    all_entries = entries_of(server, start)
    releases = [e for e in all_entries if e["type"] == "key_release" and e["justification"].get("kind") == "grant"]
    assert all(r["justification"]["grant_id"] == gid and r["tenant"] == t["name"] and r["bucket"] == b for r in releases), releases
    # Listings and deletes need the key too: names, sizes and ETags are the tenant's data.
    keyed = [d for d in done if d[0] in ("GetObject", "HeadObject", "PutObject", "ListObjectsV2", "DeleteObject")]
    assert len(releases) == len(keyed), f"{len(releases)} grant key releases for {len(keyed)} keyed accesses {keyed}"
    for i, e in enumerate(all_entries):
        if e["type"] == "key_release" and e["justification"].get("kind") == "grant":
            assert all_entries[i - 1]["type"] == "grant_access" and all_entries[i - 1]["grant"] == gid, (
                f"a grant key release not preceded by its access: {all_entries[i - 1]} then {e}")

    # the customer's own key use is a release too, justified as the customer's
    fresh = unique_name("gb-cust")
    before = log_size(server)
    t["client"].create_bucket(Bucket=fresh)
    t["client"].put_object(Bucket=fresh, Key="k", Body=b"v")
    cust = entries_of(server, before, type="key_release", bucket=fresh)
    assert len(cust) >= 1, "the customer's first write released no logged key"
    j = cust[0]["justification"]
    assert (j["kind"], j["tenant"], j["operation"], j["principal"]) == ("customer", t["name"], "PutObject", t["access_key"]), j
    for e in all_entries:
        assert isinstance(e.get("at_ms"), int) and len(e.get("salt", "")) >= 16, f"entry without at_ms/salt: {e}"

    # no entry holds a secret: grant credentials, tokens, bearers, S3 secret keys
    everything = json.dumps([e for _, e in log_entries(server)])
    for secret in (creds["AWS_SECRET_ACCESS_KEY"], creds["AWS_SESSION_TOKEN"], t["secret_key"], t["admin"],
                   bearer(t["admin"]), op, bearer(op)):
        assert secret not in everything, "a secret is in the log"

    # the tenant's admin sees all of it in its own view of the log, each entry proven included
    out = run_ok(server, t["admin"], "log", "show")
    assert out.count(f"grant={gid}") >= len(entries), out[-2000:]
    assert "each inclusion proof checked" in out


# ---------------------------------------------------------------- expiry


def test_an_expired_grant_is_denied(server):
    t = tenant_with_bucket(server, {"k": b"short-lived"})
    op = server.token("operator")
    start = log_size(server)
    gid = approved_grant(server, t, "read,list", duration="5s")  # the shortest grant
    creds = credentials(server, op, gid)
    view = grant_view(server, gid)
    assert view["expires_ms"] - view["approved_ms"] == 5_000, view
    c = grant_client(server, creds)
    # both ways: it works until it expires ...
    assert c.get_object(Bucket=t["bucket"], Key="k")["Body"].read() == b"short-lived"
    assert time.time() * 1000 < view["expires_ms"], "the machine is too slow for a 5 s grant"
    wait = view["expires_ms"] / 1000 + 0.5 - time.time()
    if wait > 0:
        time.sleep(wait)
    # ... and not a moment after
    assert_denied(lambda: c.get_object(Bucket=t["bucket"], Key="k"), "GetObject after expiry")
    assert_denied(lambda: c.head_object(Bucket=t["bucket"], Key="k"), "HeadObject after expiry")
    assert_denied(lambda: c.list_objects_v2(Bucket=t["bucket"]), "ListObjectsV2 after expiry")
    assert grant_view(server, gid)["state"] == "expired"
    run_fail(server, op, "access", "credentials", gid, status=403, says="expired")
    run_fail(server, server.token("officer1"), "access", "approve", gid, status=409, says="expired")
    run_fail(server, server.token("officer1"), "access", "revoke", gid, status=409)
    accesses = entries_of(server, start, type="grant_access", grant=gid)
    assert len(accesses) == 1, f"only the access before expiry may be logged as an access: {accesses}"
    # the tenant itself is unaffected
    assert t["client"].get_object(Bucket=t["bucket"], Key="k")["Body"].read() == b"short-lived"


def test_a_cli_grant_prefix_without_a_slash_is_refused_unless_raw(server):
    """`--prefix case-42` would also cover `case-420/`: the CLI refuses it in one line and
    asks for `case-42/` or `--raw-prefix`; a grant on `case-42/` cannot read `case-420/x`."""
    t = tenant_with_bucket(server, {"case-42/a": b"in scope", "case-420/x": b"another case"})
    op = server.token("operator")
    base = ["access", "request", "--tenant", t["name"], "--bucket", t["bucket"], "--ops", "read",
            "--duration", "1h", "--reason", "support case 42"]
    before = len(run_ok(server, op, "access", "list").splitlines())
    err = run_fail(server, op, *base, "--prefix", "case-42")
    assert "case-42/" in err and "--raw-prefix" in err, err
    assert len(run_ok(server, op, "access", "list").splitlines()) == before, "the refused request was made anyway"
    # With --raw-prefix the plain string prefix is what is asked for.
    out = run_ok(server, op, *base, "--prefix", "case-42", "--raw-prefix")
    assert 'prefix "case-42"' in out, out
    # A grant on the folder reads it, and not the neighbouring one.
    creds = credentials(server, op, approved_grant(server, t, "read", prefix="case-42/"))
    c = grant_client(server, creds)
    assert c.get_object(Bucket=t["bucket"], Key="case-42/a")["Body"].read() == b"in scope"
    assert_access_denied(lambda: c.get_object(Bucket=t["bucket"], Key="case-420/x"), "GetObject case-420/x")
