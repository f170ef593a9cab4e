"""S3 bucket versioning through boto3 and aws-cli: PutBucketVersioning (Enabled,
Suspended), ListObjectVersions with prefix, delimiter, markers and pages, GET,
HEAD, DELETE and CopyObject by versionId, delete markers, the null version of
suspended buckets, x-amz-version-id on responses, multipart uploads creating
versions, blobs of a version deleted for good going, a version's key bound to
its version (a catalog row moved to another version serves nothing), and a
kill -9 in the middle of a versioned overwrite leaving the version list whole.
(docs/s3-compatibility.md, "Versioning"; docs/catalog.md, "Versions".)"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import threading
import time

import requests

from conftest import SITES, blob_files, wait_for_blob_counts
from s3helpers import RawS3, client_error, expect_error, unique_name

VERSION_ID = re.compile(r"^[0-9a-f]{32}$")


def versioned_bucket(s3, prefix: str, status: str = "Enabled") -> str:
    name = unique_name(prefix)
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": status})
    return name


def all_versions(s3, bucket: str, **kw) -> list[tuple[str, str, bool, bool]]:
    """(key, version id, is delete marker, is latest) of every entry, in S3's order: by key,
    newest first. The response lists versions and delete markers apart, each in that order;
    they are merged back by key and LastModified (a marker before a version of the same
    millisecond: in these tests a marker is never older than a version it ties with)."""
    r = s3.list_object_versions(Bucket=bucket, **kw)
    both = [(m["Key"], m["VersionId"], True, m["IsLatest"], m["LastModified"]) for m in r.get("DeleteMarkers", [])]
    both += [(v["Key"], v["VersionId"], False, v["IsLatest"], v["LastModified"]) for v in r.get("Versions", [])]
    both.sort(key=lambda e: (e[0].encode(), -e[4].timestamp()))
    return [e[:4] for e in both]


def headers(resp) -> dict:
    return resp["ResponseMetadata"]["HTTPHeaders"]


# ---------------------------------------------------------------- the bucket's state


def test_versioning_is_enabled_suspended_and_never_unversioned_again(s3):
    name = unique_name("vstate")
    s3.create_bucket(Bucket=name)
    assert "Status" not in s3.get_bucket_versioning(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Suspended"
    # No status (nor any other word) is not a state a bucket can be put in.
    expect_error(
        s3.put_bucket_versioning,
        {"IllegalVersioningConfigurationException", "MalformedXML"},
        400,
        Bucket=name,
        VersioningConfiguration={},
    )
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Suspended"


def test_an_unversioned_bucket_answers_without_version_ids_and_lists_the_null_version(s3, bucket):
    r = s3.put_object(Bucket=bucket, Key="k", Body=b"one")
    assert "VersionId" not in r and "x-amz-version-id" not in headers(r)
    s3.put_object(Bucket=bucket, Key="k", Body=b"two")
    assert all_versions(s3, bucket) == [("k", "null", False, True)]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"two"
    r = s3.delete_object(Bucket=bucket, Key="k")
    assert "DeleteMarker" not in r
    assert all_versions(s3, bucket) == []


# ---------------------------------------------------------------- versions and delete markers


def test_overwrites_keep_every_version_readable_by_its_id(s3):
    bucket = versioned_bucket(s3, "vkeep")
    bodies = [b"first", b"second version", b"third"]
    ids = []
    for body in bodies:
        r = s3.put_object(Bucket=bucket, Key="doc", Body=body)
        assert VERSION_ID.match(r["VersionId"]), r.get("VersionId")
        assert headers(r)["x-amz-version-id"] == r["VersionId"]
        ids.append(r["VersionId"])
    assert len(set(ids)) == 3
    assert all_versions(s3, bucket) == [
        ("doc", ids[2], False, True),
        ("doc", ids[1], False, False),
        ("doc", ids[0], False, False),
    ]
    for vid, body in zip(ids, bodies):
        g = s3.get_object(Bucket=bucket, Key="doc", VersionId=vid)
        assert g["Body"].read() == body and g["VersionId"] == vid
        h = s3.head_object(Bucket=bucket, Key="doc", VersionId=vid)
        assert h["ContentLength"] == len(body) and h["VersionId"] == vid
        assert h["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    current = s3.get_object(Bucket=bucket, Key="doc")
    assert current["Body"].read() == bodies[2] and current["VersionId"] == ids[2]
    # ListObjectsV2 still shows one object per key.
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["doc"]
    # A range of an old version.
    g = s3.get_object(Bucket=bucket, Key="doc", VersionId=ids[1], Range="bytes=0-5")
    assert g["Body"].read() == b"second"


def test_version_ids_that_name_nothing_are_refused(s3):
    bucket = versioned_bucket(s3, "vbad")
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    expect_error(s3.get_object, "InvalidArgument", 400, Bucket=bucket, Key="k", VersionId="not-a-version")
    expect_error(s3.get_object, "NoSuchVersion", 404, Bucket=bucket, Key="k", VersionId="0" * 32)
    expect_error(s3.get_object, "NoSuchVersion", 404, Bucket=bucket, Key="k", VersionId="null")


def test_a_delete_marker_hides_the_key_and_removing_it_brings_the_object_back(s3, raw):
    bucket = versioned_bucket(s3, "vmark")
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"kept")["VersionId"]
    d = s3.delete_object(Bucket=bucket, Key="k")
    assert d["DeleteMarker"] is True and VERSION_ID.match(d["VersionId"]) and d["VersionId"] != v1
    marker = d["VersionId"]
    # GET of the key: 404 NoSuchKey, saying it is a delete marker.
    r = raw.request("GET", bucket, "k")
    assert r.status_code == 404 and "<Code>NoSuchKey</Code>" in r.text
    assert r.headers.get("x-amz-delete-marker") == "true"
    assert r.headers.get("x-amz-version-id") == marker
    # GET of the marker by its id: 405 MethodNotAllowed.
    r = raw.request("GET", bucket, "k", query=[("versionId", marker)])
    assert r.status_code == 405 and "<Code>MethodNotAllowed</Code>" in r.text
    assert r.headers.get("x-amz-delete-marker") == "true"
    # The version under it is still there.
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=v1)["Body"].read() == b"kept"
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert all_versions(s3, bucket) == [("k", marker, True, True), ("k", v1, False, False)]
    # Removing the marker for good makes v1 current again.
    r = s3.delete_object(Bucket=bucket, Key="k", VersionId=marker)
    assert r["DeleteMarker"] is True and r["VersionId"] == marker
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"kept"
    assert all_versions(s3, bucket) == [("k", v1, False, True)]


def test_deleting_a_version_for_good_removes_its_blobs(fresh_server):
    srv = fresh_server.start()
    s3 = srv.client()
    bucket = versioned_bucket(s3, "vgone")
    old = s3.put_object(Bucket=bucket, Key="k", Body=os.urandom(4096))["VersionId"]
    new_body = os.urandom(4096)
    new = s3.put_object(Bucket=bucket, Key="k", Body=new_body)["VersionId"]
    assert wait_for_blob_counts(srv, 2) == {s: 2 for s in SITES}, "both versions are on both sites"
    r = s3.delete_object(Bucket=bucket, Key="k", VersionId=old)
    assert r["VersionId"] == old and "DeleteMarker" not in r
    assert wait_for_blob_counts(srv, 1) == {s: 1 for s in SITES}, "the removed version's blobs go"
    expect_error(s3.get_object, "NoSuchVersion", 404, Bucket=bucket, Key="k", VersionId=old)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == new_body
    assert all_versions(s3, bucket) == [("k", new, False, True)]
    # A bucket is empty only when no version and no marker is left.
    s3.delete_object(Bucket=bucket, Key="k")
    expect_error(s3.delete_bucket, "BucketNotEmpty", 409, Bucket=bucket)
    for key, vid, _, _ in all_versions(s3, bucket):
        s3.delete_object(Bucket=bucket, Key=key, VersionId=vid)
    s3.delete_bucket(Bucket=bucket)
    assert wait_for_blob_counts(srv, 0) == {s: 0 for s in SITES}
    srv.stop_ok()


def test_delete_objects_writes_markers_and_removes_versions(s3):
    bucket = versioned_bucket(s3, "vmany")
    a1 = s3.put_object(Bucket=bucket, Key="a", Body=b"a")["VersionId"]
    s3.put_object(Bucket=bucket, Key="b", Body=b"b")
    r = s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": "a", "VersionId": a1}, {"Key": "b"}]},
    )
    assert not r.get("Errors")
    by_key = {d["Key"]: d for d in r["Deleted"]}
    assert by_key["a"]["VersionId"] == a1 and not by_key["a"].get("DeleteMarker")
    assert by_key["b"]["DeleteMarker"] is True and VERSION_ID.match(by_key["b"]["DeleteMarkerVersionId"])
    listed = all_versions(s3, bucket)
    assert [(k, m, latest) for k, _, m, latest in listed] == [("b", True, True), ("b", False, False)]


# ---------------------------------------------------------------- the null version


def test_a_suspended_bucket_writes_and_replaces_the_null_version(s3):
    name = unique_name("vnull")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=b"before versioning")
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=name, Key="k", Body=b"v1")["VersionId"]
    assert all_versions(s3, name) == [("k", v1, False, True), ("k", "null", False, False)]
    assert s3.get_object(Bucket=name, Key="k", VersionId="null")["Body"].read() == b"before versioning"
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Suspended"})
    r = s3.put_object(Bucket=name, Key="k", Body=b"suspended 1")
    assert r["VersionId"] == "null"
    # The old null version was replaced: still two versions.
    assert all_versions(s3, name) == [("k", "null", False, True), ("k", v1, False, False)]
    s3.put_object(Bucket=name, Key="k", Body=b"suspended 2")
    assert all_versions(s3, name) == [("k", "null", False, True), ("k", v1, False, False)]
    assert s3.get_object(Bucket=name, Key="k", VersionId="null")["Body"].read() == b"suspended 2"
    # DELETE without a version id writes a null delete marker, replacing the null version.
    d = s3.delete_object(Bucket=name, Key="k")
    assert d["DeleteMarker"] is True and d["VersionId"] == "null"
    assert all_versions(s3, name) == [("k", "null", True, True), ("k", v1, False, False)]
    expect_error(s3.get_object, "NoSuchKey", 404, Bucket=name, Key="k")
    assert s3.get_object(Bucket=name, Key="k", VersionId=v1)["Body"].read() == b"v1"


# ---------------------------------------------------------------- listing


def test_list_object_versions_pages_with_key_and_version_id_markers(s3):
    bucket = versioned_bucket(s3, "vpage")
    expected = []
    for key in ["B", "a", "a/b", "\u00e4"]:  # byte order: B < a < a/b < ä
        ids = [s3.put_object(Bucket=bucket, Key=key, Body=key.encode() * (i + 1))["VersionId"] for i in range(3)]
        expected += [(key, vid) for vid in reversed(ids)]
    everything = s3.list_object_versions(Bucket=bucket)
    assert [(v["Key"], v["VersionId"]) for v in everything["Versions"]] == expected
    assert [v["IsLatest"] for v in everything["Versions"]] == [True, False, False] * 4
    assert everything["IsTruncated"] is False
    # Pages of 5 by hand: each continues at NextKeyMarker / NextVersionIdMarker.
    paged, kw = [], {}
    while True:
        r = s3.list_object_versions(Bucket=bucket, MaxKeys=5, **kw)
        paged += [(v["Key"], v["VersionId"], v["IsLatest"]) for v in r.get("Versions", [])]
        if not r["IsTruncated"]:
            break
        assert len(r["Versions"]) == 5
        kw = {"KeyMarker": r["NextKeyMarker"], "VersionIdMarker": r["NextVersionIdMarker"]}
    assert [(k, v) for k, v, _ in paged] == expected
    assert [latest for _, _, latest in paged] == [True, False, False] * 4, "IsLatest across page boundaries"
    # boto3's paginator does the same.
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket, PaginationConfig={"PageSize": 4})
    assert [(v["Key"], v["VersionId"]) for p in pages for v in p.get("Versions", [])] == expected
    # A key marker alone skips every version of that key.
    r = s3.list_object_versions(Bucket=bucket, KeyMarker="a")
    assert [(v["Key"], v["VersionId"]) for v in r["Versions"]] == expected[6:]
    # Prefix and delimiter: a/ rolls up; the versions of "a" itself are listed.
    r = s3.list_object_versions(Bucket=bucket, Prefix="a", Delimiter="/")
    assert [(v["Key"], v["VersionId"]) for v in r["Versions"]] == expected[3:6]
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["a/"]
    # A version-id marker needs a key marker, and must name a version of it.
    expect_error(s3.list_object_versions, "InvalidArgument", 400, Bucket=bucket, VersionIdMarker=expected[0][1])
    expect_error(
        s3.list_object_versions, "InvalidArgument", 400, Bucket=bucket, KeyMarker="a", VersionIdMarker="0" * 32
    )


def test_aws_cli_enables_versioning_and_lists_versions(s3, aws):
    name = unique_name("vcli")
    s3.create_bucket(Bucket=name)
    aws("s3api", "put-bucket-versioning", "--bucket", name, "--versioning-configuration", "Status=Enabled")
    got = json.loads(aws("s3api", "get-bucket-versioning", "--bucket", name).stdout)
    assert got["Status"] == "Enabled"
    ids = [s3.put_object(Bucket=name, Key="f.txt", Body=f"v{i}".encode())["VersionId"] for i in range(2)]
    aws("s3api", "delete-object", "--bucket", name, "--key", "f.txt")
    listed = json.loads(aws("s3api", "list-object-versions", "--bucket", name).stdout)
    assert [v["VersionId"] for v in listed["Versions"]] == list(reversed(ids))
    assert len(listed["DeleteMarkers"]) == 1 and listed["DeleteMarkers"][0]["IsLatest"] is True
    out = json.loads(
        aws("s3api", "get-object", "--bucket", name, "--key", "f.txt", "--version-id", ids[0], "/dev/null").stdout
    )
    assert out["VersionId"] == ids[0] and out["ContentLength"] == 2


# ---------------------------------------------------------------- copies and multipart uploads


def test_copy_from_a_version_and_restoring_it_over_its_own_key(s3):
    bucket = versioned_bucket(s3, "vcopy")
    old = s3.put_object(Bucket=bucket, Key="k", Body=b"old content")["VersionId"]
    s3.put_object(Bucket=bucket, Key="k", Body=b"new content")
    r = s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "k", "VersionId": old})
    assert r["CopySourceVersionId"] == old and VERSION_ID.match(r["VersionId"])
    assert s3.get_object(Bucket=bucket, Key="copy")["Body"].read() == b"old content"
    # Copying an old version onto its own key restores it as a new version.
    r = s3.copy_object(Bucket=bucket, Key="k", CopySource={"Bucket": bucket, "Key": "k", "VersionId": old})
    restored = r["VersionId"]
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"old content"
    assert [v for k, v, _, _ in all_versions(s3, bucket) if k == "k"][0] == restored
    assert len([1 for k, *_ in all_versions(s3, bucket) if k == "k"]) == 3
    # A copy from a delete marker is refused as a GET of it is.
    marker = s3.delete_object(Bucket=bucket, Key="copy")["VersionId"]
    expect_error(
        s3.copy_object,
        "MethodNotAllowed",
        405,
        Bucket=bucket,
        Key="x",
        CopySource={"Bucket": bucket, "Key": "copy", "VersionId": marker},
    )


def test_a_multipart_upload_in_a_versioned_bucket_adds_a_version(s3):
    bucket = versioned_bucket(s3, "vmpu")
    first = s3.put_object(Bucket=bucket, Key="big", Body=b"small first")["VersionId"]
    part = os.urandom(5 * 1024 * 1024)
    up = s3.create_multipart_upload(Bucket=bucket, Key="big")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="big", UploadId=up, PartNumber=1, Body=part)["ETag"]
    r = s3.complete_multipart_upload(
        Bucket=bucket, Key="big", UploadId=up, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}
    )
    assert VERSION_ID.match(r["VersionId"]) and r["VersionId"] != first
    assert all_versions(s3, bucket) == [("big", r["VersionId"], False, True), ("big", first, False, False)]
    assert s3.get_object(Bucket=bucket, Key="big", VersionId=first)["Body"].read() == b"small first"
    assert hashlib.sha256(s3.get_object(Bucket=bucket, Key="big")["Body"].read()).digest() == hashlib.sha256(part).digest()


# ---------------------------------------------------------------- binding and crashes


def test_a_version_row_moved_to_another_version_serves_nothing(private_server):
    """The provider moves the envelope and blobs of one version into another version's row
    (catalog.db is theirs to edit): the moved record no longer matches the version its key
    is bound to, and is refused instead of served as that version."""
    srv = private_server
    s3 = srv.client()
    bucket = versioned_bucket(s3, "vbind")
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"version one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"version two")["VersionId"]
    srv.stop_ok()
    db = sqlite3.connect(srv.data_dir / "catalog.db")
    try:
        # The current row (v2) takes the noncurrent v1's key, metadata and blobs, keeping its id.
        db.execute(
            "UPDATE objects SET envelope = v.envelope, meta = v.meta, etag = v.etag, chunks = v.chunks, "
            "size = v.size FROM object_versions v WHERE v.bucket = objects.bucket AND v.key = objects.key "
            "AND v.version_id = ? AND objects.bucket = ?",
            (v1, bucket),
        )
        assert db.total_changes == 1
        db.commit()
    finally:
        db.close()
    srv.start()
    s3 = srv.client()
    code, status, _ = client_error(s3.get_object, Bucket=bucket, Key="k", VersionId=v2)
    assert (code, status) == ("InvalidObjectState", 409), (code, status)
    code, status, _ = client_error(s3.get_object, Bucket=bucket, Key="k")
    assert (code, status) == ("InvalidObjectState", 409), (code, status)
    # The untouched version still reads.
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=v1)["Body"].read() == b"version one"


def test_kill_during_a_versioned_overwrite_leaves_the_version_list_whole(fresh_server):
    srv = fresh_server.start()
    s3 = srv.client()
    bucket = versioned_bucket(s3, "vcrash")
    acked = []
    for i in range(5):
        body = f"acknowledged {i}".encode()
        acked.append((s3.put_object(Bucket=bucket, Key="k", Body=body)["VersionId"], body))
    demo = srv.demo
    stop = threading.Event()
    results: list[tuple[int, str | None, bytes]] = []

    def overwrite(n: int):
        raw = RawS3(srv.s3_url, demo["AWS_ACCESS_KEY_ID"], demo["AWS_SECRET_ACCESS_KEY"])
        i = 0
        while not stop.is_set():
            body = os.urandom(256 * 1024) + f"{n}-{i}".encode()
            try:
                r = raw.request("PUT", bucket, "k", body=body, timeout=60)
            except requests.RequestException:
                return
            results.append((r.status_code, r.headers.get("x-amz-version-id"), body))
            i += 1

    threads = [threading.Thread(target=overwrite, args=(n,), daemon=True) for n in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(results) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    srv.kill9()
    stop.set()
    for t in threads:
        t.join(30)
    assert len(results) >= 8, f"only {len(results)} overwrites answered before the kill"
    assert all(status == 200 for status, _, _ in results), [s for s, _, _ in results]
    acked += [(vid, body) for _, vid, body in results]
    srv.start()
    s3 = srv.client()
    listed = all_versions(s3, bucket)
    ids = [vid for _, vid, _, _ in listed]
    assert len(ids) == len(set(ids)), "no version listed twice"
    missing = [vid for vid, _ in acked if vid not in ids]
    assert not missing, f"acknowledged versions lost by the kill: {missing}"
    # At most the PUTs in flight at the kill add versions, and every listed version reads whole.
    assert len(ids) <= len(acked) + 4
    assert [latest for *_, latest in listed] == [True] + [False] * (len(listed) - 1)
    bodies = dict(acked)
    for vid in ids:
        got = s3.get_object(Bucket=bucket, Key="k", VersionId=vid)["Body"].read()
        if vid in bodies:
            assert got == bodies[vid], f"version {vid} reads other bytes than were PUT"
    # Blobs: exactly one per listed version on each site once orphans are collected.
    assert wait_for_blob_counts(srv, len(ids)) == {s: len(ids) for s in SITES}
    srv.stop_ok()
    for site in SITES:
        assert len(blob_files(srv.site_dir(site))) == len(ids)


# ---------------------------------------------------------------- residency, repair, grants


def test_residency_report_and_repair_cover_noncurrent_versions(private_server):
    from conftest import blob_path, blob_snapshot, new_blob
    from site_helpers import bucket_report, residency, run_ok, wait_repair_idle

    srv = private_server
    s3 = srv.client()
    bucket = versioned_bucket(s3, "vrepair")
    before = blob_snapshot(srv)
    old_body = os.urandom(50_000)
    old = s3.put_object(Bucket=bucket, Key="k", Body=old_body)["VersionId"]
    old_blobs = new_blob(srv, before)
    s3.put_object(Bucket=bucket, Key="k", Body=b"current")
    s3.put_object(Bucket=bucket, Key="other", Body=b"x")
    rep = bucket_report(residency(srv, "demo", verify=True)[1], "demo", bucket)
    assert rep["objects_by_sites"] == {"de-fra,de-mgd": 3}, rep
    assert rep["verified"]["missing"] == 0, rep
    # The noncurrent version loses its replica on one site: the report sees it ...
    blob_path(srv, "de-fra", old_blobs["de-fra"]).unlink()
    rep = bucket_report(residency(srv, "demo", verify=True)[1], "demo", bucket)
    assert rep["verified"]["missing"] == 1, rep
    # ... and repair restores it (a ciphertext copy from the other site).
    run_ok(srv, srv.token("operator"), "repair")
    wait_repair_idle(srv)
    assert blob_path(srv, "de-fra", old_blobs["de-fra"]).is_file(), "repair did not restore the noncurrent version"
    rep = bucket_report(residency(srv, "demo", verify=True)[1], "demo", bucket)
    assert rep["verified"]["missing"] == 0, rep
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=old)["Body"].read() == old_body


def test_a_grant_covers_current_objects_and_not_versions_by_id(server):
    from gov_helpers import approved_grant, credentials, grant_client, tenant_with_bucket

    t = tenant_with_bucket(server, {})
    b, tc = t["bucket"], t["client"]
    tc.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    old = tc.put_object(Bucket=b, Key="doc", Body=b"old")["VersionId"]
    current = tc.put_object(Bucket=b, Key="doc", Body=b"current")["VersionId"]
    op = server.token("operator")
    reader = grant_client(server, credentials(server, op, approved_grant(server, t, "read")))
    # The current object reads under a read grant ...
    assert reader.get_object(Bucket=b, Key="doc")["Body"].read() == b"current"
    # ... but no version by its id (not even the current one), and no listing of versions.
    for what, call in [
        ("GetObject?versionId (noncurrent)", lambda: reader.get_object(Bucket=b, Key="doc", VersionId=old)),
        ("GetObject?versionId (current)", lambda: reader.get_object(Bucket=b, Key="doc", VersionId=current)),
        ("HeadObject?versionId", lambda: reader.head_object(Bucket=b, Key="doc", VersionId=old)),
        ("ListObjectVersions", lambda: reader.list_object_versions(Bucket=b)),
    ]:
        code, status, _ = client_error(call)
        assert status == 403 and code in {"AccessDenied", "403"}, f"{what} under a read grant: {code} {status}"
    writer = grant_client(server, credentials(server, op, approved_grant(server, t, "write")))
    # A write grant may DELETE (a delete marker) but not remove a version for good.
    code, status, _ = client_error(lambda: writer.delete_object(Bucket=b, Key="doc", VersionId=old))
    assert status == 403, f"DeleteObjectVersion under a write grant: {code} {status}"
    assert tc.get_object(Bucket=b, Key="doc", VersionId=old)["Body"].read() == b"old", "the version was removed"
    d = writer.delete_object(Bucket=b, Key="doc")
    assert d["DeleteMarker"] is True
    assert [k for k, _, marker, _ in all_versions(tc, b) if marker] == ["doc"]
    # A copy reads its source: from a version only with `versions` in the grant.
    tc.put_object(Bucket=b, Key="src", Body=b"v1")
    src_old = tc.list_object_versions(Bucket=b, Prefix="src")["Versions"][0]["VersionId"]
    tc.put_object(Bucket=b, Key="src", Body=b"v2")
    copier = grant_client(server, credentials(server, op, approved_grant(server, t, "read,write")))
    copier.copy_object(Bucket=b, Key="copy-current", CopySource={"Bucket": b, "Key": "src"})
    code, status, _ = client_error(
        lambda: copier.copy_object(
            Bucket=b, Key="copy-old", CopySource={"Bucket": b, "Key": "src", "VersionId": src_old}
        )
    )
    assert status == 403, f"CopyObject from a version under read,write: {code} {status}"
    wide = grant_client(server, credentials(server, op, approved_grant(server, t, "read,write,versions")))
    wide.copy_object(Bucket=b, Key="copy-old", CopySource={"Bucket": b, "Key": "src", "VersionId": src_old})
    assert tc.get_object(Bucket=b, Key="copy-old")["Body"].read() == b"v1"


def test_a_grant_with_the_versions_op_reaches_noncurrent_versions(server):
    from gov_helpers import approved_grant, credentials, grant_client, tenant_with_bucket

    t = tenant_with_bucket(server, {})
    b, tc = t["bucket"], t["client"]
    tc.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    old = tc.put_object(Bucket=b, Key="doc", Body=b"old")["VersionId"]
    tc.put_object(Bucket=b, Key="doc", Body=b"current")
    op = server.token("operator")
    wide = grant_client(server, credentials(server, op, approved_grant(server, t, "read,list,versions")))
    assert wide.get_object(Bucket=b, Key="doc", VersionId=old)["Body"].read() == b"old"
    assert wide.head_object(Bucket=b, Key="doc", VersionId=old)["ContentLength"] == 3
    assert [v["VersionId"] for v in wide.list_object_versions(Bucket=b)["Versions"]][1] == old
    # `versions` widens only what the grant allows: no write, so no removal of a version.
    code, status, _ = client_error(lambda: wide.delete_object(Bucket=b, Key="doc", VersionId=old))
    assert status == 403, f"DeleteObjectVersion under read,list,versions: {code} {status}"
    assert tc.get_object(Bucket=b, Key="doc", VersionId=old)["Body"].read() == b"old"


# ---------------------------------------------------------------- quotas


def test_every_version_counts_against_the_quota_and_removing_one_frees_it(server):
    from test_quotas import assert_quota_exceeded, set_tenant_quota, tenant_with_bucket, wait_usage

    t, client, bucket = tenant_with_bucket(server, "vq")
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    set_tenant_quota(server, t["name"], "--max-bytes", "100KiB")
    first = client.put_object(Bucket=bucket, Key="k", Body=b"a" * (40 * 1024))["VersionId"]
    client.put_object(Bucket=bucket, Key="k", Body=b"b" * (40 * 1024))
    # Both versions are held: an overwrite in a versioned bucket frees nothing ...
    wait_usage(server, t["name"], {"bytes": 80 * 1024, "objects": 2})
    assert_quota_exceeded(client.put_object, Bucket=bucket, Key="k", Body=b"c" * (40 * 1024))
    # ... nor does a delete marker ...
    client.delete_object(Bucket=bucket, Key="k")
    wait_usage(server, t["name"], {"bytes": 80 * 1024, "objects": 2})
    assert_quota_exceeded(client.put_object, Bucket=bucket, Key="other", Body=b"c" * (40 * 1024))
    # ... removing a version for good does.
    client.delete_object(Bucket=bucket, Key="k", VersionId=first)
    wait_usage(server, t["name"], {"bytes": 40 * 1024, "objects": 1})
    client.put_object(Bucket=bucket, Key="other", Body=b"c" * (40 * 1024))
    wait_usage(server, t["name"], {"bytes": 80 * 1024, "objects": 2})


# ---------------------------------------------------------------- crypto-shred


def test_a_crypto_shred_purges_every_version_and_its_blobs(private_server):
    srv = private_server
    s3 = srv.client()
    bucket = versioned_bucket(s3, "vshred")
    for i in range(3):
        s3.put_object(Bucket=bucket, Key="k", Body=os.urandom(1000 + i))
    s3.delete_object(Bucket=bucket, Key="k")
    s3.put_object(Bucket=bucket, Key="j", Body=b"j")
    assert wait_for_blob_counts(srv, 4) == {s: 4 for s in SITES}

    def rows() -> tuple[int, int]:
        db = sqlite3.connect(f"file:{srv.data_dir / 'catalog.db'}?mode=ro", uri=True)
        try:
            current = db.execute("SELECT COUNT(*) FROM objects WHERE bucket = ?", (bucket,)).fetchone()[0]
            older = db.execute("SELECT COUNT(*) FROM object_versions WHERE bucket = ?", (bucket,)).fetchone()[0]
        finally:
            db.close()
        return current, older

    assert rows() == (1, 4), "j current; k's three versions and its delete marker"
    srv.cli_ok("tenant", "shred", "demo", "--now", token=srv.token("officer1"))
    out = srv.cli_ok("tenant", "shred", "demo", "--now", token=srv.token("officer2"))
    assert "destroyed" in out, out
    deadline = time.monotonic() + 15
    while rows() != (0, 0) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert rows() == (0, 0), f"versions of the shredded tenant remain in catalog.db: {rows()}"
    assert wait_for_blob_counts(srv, 0) == {s: 0 for s in SITES}, "noncurrent versions' blobs remain"


# ---------------------------------------------------------------- on PostgreSQL


def test_versions_on_a_postgres_catalog_survive_a_restart_in_byte_order(tmp_path):
    from pg_helpers import PgServer
    from test_pg_catalog import password_file, pg_server

    pg = PgServer().start()
    srv = None
    try:
        url = pg.new_database()
        srv = pg_server(tmp_path, "srv", url, password_file=password_file(tmp_path)).start()
        s3 = srv.client()
        bucket = versioned_bucket(s3, "vpg")
        expected = []
        for key in ["a", "B", "\u00e4", "a/b"]:
            ids = [s3.put_object(Bucket=bucket, Key=key, Body=f"{key}{i}".encode())["VersionId"] for i in range(2)]
            expected += [(key, vid) for vid in reversed(ids)]
        expected.sort(key=lambda e: e[0].encode())  # stable: newest first within a key
        marker = s3.delete_object(Bucket=bucket, Key="B")["VersionId"]
        srv.stop_ok()
        srv.start()
        s3 = srv.client()
        r = s3.list_object_versions(Bucket=bucket, MaxKeys=1000)
        assert [(v["Key"], v["VersionId"]) for v in r["Versions"]] == expected
        assert [(m["Key"], m["VersionId"], m["IsLatest"]) for m in r["DeleteMarkers"]] == [("B", marker, True)]
        pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket, PaginationConfig={"PageSize": 3})
        assert [(v["Key"], v["VersionId"]) for p in pages for v in p.get("Versions", [])] == expected
        old_a = expected[[k for k, _ in expected].index("a") + 1][1]
        assert s3.get_object(Bucket=bucket, Key="a", VersionId=old_a)["Body"].read() == b"a0"
        expect_error(s3.get_object, "NoSuchKey", 404, Bucket=bucket, Key="B")
        db = url.rsplit("/", 1)[1]
        # A noncurrent version of each of the four keys, B's former current one and its marker.
        assert int(pg.psql(db, "SELECT COUNT(*) FROM object_versions").strip()) == 6
        srv.stop_ok()
    finally:
        if srv is not None and srv.running():
            srv.kill9()
        pg.stop()


def test_a_bad_replica_of_a_noncurrent_version_found_on_read_is_repaired(private_server):
    """GET by versionId that meets a missing replica serves the other one and queues that
    version (not the current one) for repair. A GET reads one replica, so the damage is put
    on de-fra first and, if the reads never touched it, on de-mgd."""
    from site_helpers import blob_file, site_blobs, wait_until

    srv = private_server
    s3 = srv.client()
    bucket = versioned_bucket(s3, "vreadfix")
    before = site_blobs(srv.site_dir("de-fra"))
    old_body = os.urandom(200_000)
    old = s3.put_object(Bucket=bucket, Key="k", Body=old_body)["VersionId"]
    (blob,) = site_blobs(srv.site_dir("de-fra")) - before
    s3.put_object(Bucket=bucket, Key="k", Body=b"current")
    good = blob_file(srv.site_dir("de-mgd"), blob).read_bytes()
    repaired_on = None
    for sid in ("de-fra", "de-mgd"):
        d = srv.site_dir(sid)
        blob_file(d, blob).unlink()
        for _ in range(3):
            assert s3.get_object(Bucket=bucket, Key="k", VersionId=old)["Body"].read() == old_body
        try:
            wait_until(lambda: blob_file(d, blob).is_file(), 10, f"the noncurrent version's replica on {sid}")
            repaired_on = sid
            break
        except AssertionError:
            blob_file(d, blob).write_bytes(good)
    assert repaired_on, "the missing replica of a noncurrent version was not repaired after reads"
    assert blob_file(srv.site_dir(repaired_on), blob).read_bytes() == good
