"""The operator's own database grants nothing: catalog.db is the provider's to
read and edit, so nothing in it may make a tenant's data readable under
another name, hand it to another bucket or tenant, or tell the provider what
a tenant stores.

- An object's key is bound to its tenant, bucket, name and version (an
  upload's to its upload id): a record copied or moved under another name, into
  another bucket or into another tenant's bucket serves nothing, answers
  409 InvalidObjectState (never 500, never the data), is left out of listings,
  and is reported to the trustee's log as an `integrity_alarm`.
- ETags and checksums are sealed: catalog.db (and its WAL) holds no MD5 and no
  checksum of what a tenant stored, while conditional requests still work.
- Names, sizes and ETags are customer data: with the trustee sealed, listings
  and deletes answer 503 like reads and writes; after a crypto-shred they
  answer AccessDenied and list nothing.
(docs/format.md, sections 4, 7 and 8; docs/governance.md.)"""

from __future__ import annotations

import base64
import hashlib
import os
import sqlite3
import time

from conftest import new_tenant
from gov_helpers import log_entries
from s3helpers import assert_s3_error, client_error, unique_name, xml_error

MIB = 1024 * 1024


def edit_catalog(srv, *statements: tuple[str, tuple]) -> None:
    """Edits catalog.db of the stopped server, as the provider's database admin could."""
    db = sqlite3.connect(srv.data_dir / "catalog.db")
    try:
        for sql, args in statements:
            db.execute(sql, args)
        db.commit()
    finally:
        db.close()


def copy_object_row(srv, bucket: str, key: str, new_bucket: str, new_key: str, move: bool = False):
    """Files the catalog record of `bucket`/`key` under `new_bucket`/`new_key` (a copy, or a move)."""
    stmts = [(
        "INSERT OR REPLACE INTO objects (bucket, key, size, etag, last_modified_ms, envelope, meta, sites, chunks) "
        "SELECT ?, ?, size, etag, last_modified_ms, envelope, meta, sites, chunks FROM objects "
        "WHERE bucket = ? AND key = ?",
        (new_bucket, new_key.encode(), bucket, key.encode()),
    )]
    if move:
        stmts.append(("DELETE FROM objects WHERE bucket = ? AND key = ?", (bucket, key.encode())))
    edit_catalog(srv, *stmts)


def assert_integrity_refused(resp, what: str):
    """The answer to a request for a tampered record: 409 InvalidObjectState, no data."""
    assert resp.status_code == 409, f"{what}: expected 409, got {resp.status_code}: {resp.text[:300]}"
    if resp.request.method != "HEAD":
        code, msg = xml_error(resp)
        assert code == "InvalidObjectState", f"{what}: {code} {msg!r}"
        assert "integrity" in msg, f"{what}: the message should say the record failed its integrity check: {msg!r}"


def alarms(srv, **match) -> list[dict]:
    return [
        e for _, e in log_entries(srv)
        if e.get("type") == "integrity_alarm" and all(e.get(k) == v for k, v in match.items())
    ]


def wait_alarm(srv, timeout: float = 15.0, **match) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        found = alarms(srv, **match)
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no integrity_alarm {match} in the log: {alarms(srv)}"
        time.sleep(0.3)


def listed(s3, bucket: str, prefix: str = "") -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


# ---------------------------------------------------------------- 1. identity is bound to the key


def test_an_object_record_copied_under_another_name_serves_nothing(private_server):
    srv = private_server
    s3, raw = srv.client(), srv.raw()
    bucket = unique_name("bound")
    s3.create_bucket(Bucket=bucket)
    secret = os.urandom(70_000)
    s3.put_object(Bucket=bucket, Key="private/salaries.csv", Body=secret)
    s3.put_object(Bucket=bucket, Key="shared/readme.txt", Body=b"for the grant")
    srv.stop_ok()
    # The attack: the record of a private object filed under the prefix a grant or a
    # careless policy exposes.
    copy_object_row(srv, bucket, "private/salaries.csv", bucket, "shared/salaries.csv")
    srv.start()
    s3, raw = srv.client(), srv.raw()

    for method in ("GET", "HEAD"):
        r = raw.request(method, bucket, "shared/salaries.csv")
        assert_integrity_refused(r, f"{method} of the copied record")
        assert secret not in r.content
    r = raw.request("GET", bucket, "shared/salaries.csv", headers={"Range": "bytes=0-99"})
    assert_integrity_refused(r, "ranged GET of the copied record")
    r = raw.request("PUT", bucket, "shared/stolen", headers={"x-amz-copy-source": f"/{bucket}/shared/salaries.csv"})
    assert_integrity_refused(r, "CopyObject from the copied record")
    code, _, _ = client_error(s3.head_object, Bucket=bucket, Key="shared/stolen")
    assert code in ("404", "NoSuchKey"), "nothing was written from the copied record"
    # Listings leave it out; the real object and its neighbour are unaffected.
    assert listed(s3, bucket, "shared/") == ["shared/readme.txt"]
    assert s3.list_objects_v2(Bucket=bucket, Prefix="shared/")["KeyCount"] == 1
    assert s3.get_object(Bucket=bucket, Key="private/salaries.csv")["Body"].read() == secret
    alarm = wait_alarm(srv, bucket=bucket, key="shared/salaries.csv")
    assert alarm["tenant"] == "demo" and alarm["reason"], alarm
    assert len(alarms(srv, bucket=bucket, key="shared/salaries.csv")) == 1, "one alarm per record, not per request"
    log = srv.log_path.read_text(errors="replace")
    assert "failed its integrity check" in log
    # The process log names the record by digests only (names are the tenant's data).
    for name in (bucket, "shared/salaries.csv"):
        assert name not in log, f"{name!r} is in the server's log"


def test_an_object_record_moved_into_another_bucket_or_tenant_serves_nothing(private_server):
    srv = private_server
    other_tenant = new_tenant(srv, "mallory")
    demo = srv.client()
    mallory = srv.client(other_tenant["AWS_ACCESS_KEY_ID"], other_tenant["AWS_SECRET_ACCESS_KEY"])
    home, sibling, foreign = unique_name("home"), unique_name("sibling"), unique_name("foreign")
    demo.create_bucket(Bucket=home)
    demo.create_bucket(Bucket=sibling)
    mallory.create_bucket(Bucket=foreign)
    a, b = os.urandom(5000), os.urandom(6000)
    demo.put_object(Bucket=home, Key="a", Body=a)
    demo.put_object(Bucket=home, Key="b", Body=b)
    srv.stop_ok()
    copy_object_row(srv, home, "a", sibling, "a", move=True)
    copy_object_row(srv, home, "b", foreign, "b")
    srv.start()
    demo = srv.client()
    mallory = srv.client(other_tenant["AWS_ACCESS_KEY_ID"], other_tenant["AWS_SECRET_ACCESS_KEY"])
    raw_demo = srv.raw()
    raw_mallory = srv.raw(other_tenant["AWS_ACCESS_KEY_ID"], other_tenant["AWS_SECRET_ACCESS_KEY"])

    assert_integrity_refused(raw_demo.request("GET", sibling, "a"), "an object moved into a sibling bucket")
    assert_integrity_refused(raw_mallory.request("GET", foreign, "b"), "an object copied into another tenant's bucket")
    assert_integrity_refused(raw_mallory.request("HEAD", foreign, "b"), "HEAD in another tenant's bucket")
    assert listed(demo, sibling) == [] and listed(mallory, foreign) == []
    assert demo.get_object(Bucket=home, Key="b")["Body"].read() == b
    wait_alarm(srv, tenant="demo", bucket=sibling, key="a")
    wait_alarm(srv, tenant="mallory", bucket=foreign, key="b")


def test_a_multipart_upload_record_copied_under_another_name_serves_nothing(private_server):
    srv = private_server
    s3, raw = srv.client(), srv.raw()
    bucket = unique_name("mpu-bound")
    s3.create_bucket(Bucket=bucket)
    uid = s3.create_multipart_upload(Bucket=bucket, Key="private/big")["UploadId"]
    part = os.urandom(MIB)
    etag = s3.upload_part(Bucket=bucket, Key="private/big", UploadId=uid, PartNumber=1, Body=part)["ETag"]
    # A second upload of the tenant's, into which a part of the first is moved.
    other = s3.create_multipart_upload(Bucket=bucket, Key="shared/other")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="shared/other", UploadId=other, PartNumber=1, Body=b"own part")
    # A completed multipart object, too.
    done = s3.create_multipart_upload(Bucket=bucket, Key="private/done")["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key="private/done", UploadId=done, PartNumber=1, Body=part)["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="private/done", UploadId=done,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}]})
    srv.stop_ok()
    fake = "f" * 40
    edit_catalog(
        srv,
        ("INSERT INTO uploads (upload_id, bucket, key, initiated_ms, envelope, meta) "
         "SELECT ?, bucket, ?, initiated_ms, envelope, meta FROM uploads WHERE upload_id = ?",
         (fake, b"shared/big", uid)),
        ("INSERT INTO parts (upload_id, part_number, chunk, etag, checksums, sites, last_modified_ms) "
         "SELECT ?, part_number, chunk, etag, checksums, sites, last_modified_ms FROM parts WHERE upload_id = ?",
         (fake, uid)),
    )
    edit_catalog(
        srv,
        ("INSERT INTO parts (upload_id, part_number, chunk, etag, checksums, sites, last_modified_ms) "
         "SELECT ?, 2, chunk, etag, checksums, sites, last_modified_ms FROM parts WHERE upload_id = ?",
         (other, uid)),
    )
    copy_object_row(srv, bucket, "private/done", bucket, "shared/done")
    srv.start()
    s3, raw = srv.client(), srv.raw()

    r = raw.request("GET", bucket, "shared/big", query=[("uploadId", fake)])
    assert_integrity_refused(r, "ListParts of the copied upload")
    body = (f"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part>"
            "</CompleteMultipartUpload>").encode()
    r = raw.request("POST", bucket, "shared/big", query=[("uploadId", fake)], body=body)
    assert_integrity_refused(r, "CompleteMultipartUpload of the copied upload")
    r = raw.request("PUT", bucket, "shared/big", query=[("partNumber", "2"), ("uploadId", fake)], body=b"x" * 10)
    assert_integrity_refused(r, "UploadPart into the copied upload")
    code, _, _ = client_error(s3.head_object, Bucket=bucket, Key="shared/big")
    assert code in ("404", "NoSuchKey"), "the copied upload completed nothing"
    # A part moved into another upload does not open there (it is sealed under the other
    # upload's key and part number).
    r = raw.request("GET", bucket, "shared/other", query=[("uploadId", other)])
    assert_integrity_refused(r, "ListParts of an upload with a part moved into it")
    body2 = (f"<CompleteMultipartUpload><Part><PartNumber>2</PartNumber><ETag>{etag}</ETag></Part>"
             "</CompleteMultipartUpload>").encode()
    r = raw.request("POST", bucket, "shared/other", query=[("uploadId", other)], body=body2)
    assert_integrity_refused(r, "CompleteMultipartUpload with a part moved in")
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert sorted(u["UploadId"] for u in uploads) == sorted([uid, other]), f"the copied upload is listed: {uploads}"
    assert_integrity_refused(raw.request("GET", bucket, "shared/done"), "a completed multipart object copied")
    assert s3.get_object(Bucket=bucket, Key="private/done")["Body"].read() == part
    # The real upload still completes.
    s3.complete_multipart_upload(Bucket=bucket, Key="private/big", UploadId=uid,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert s3.get_object(Bucket=bucket, Key="private/big")["Body"].read() == part
    wait_alarm(srv, bucket=bucket, key="shared/big", upload=fake)


# ---------------------------------------------------------------- 2. ETags and checksums are sealed


def catalog_bytes(srv) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(srv.data_dir.glob("catalog.db*")))


def test_the_catalog_holds_no_etag_or_checksum_of_what_a_tenant_stores(private_server):
    srv = private_server
    s3, raw = srv.client(), srv.raw()
    bucket = unique_name("sealed-etags")
    s3.create_bucket(Bucket=bucket)
    known = b"a well-known public document, e.g. a leaked report\n" * 1000
    part = os.urandom(5 * MIB)
    s3.put_object(Bucket=bucket, Key="known", Body=known, ChecksumAlgorithm="SHA256")
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mpu", ChecksumAlgorithm="CRC32")["UploadId"]
    up = s3.upload_part(Bucket=bucket, Key="mpu", UploadId=uid, PartNumber=1, Body=part, ChecksumAlgorithm="CRC32")
    uid2 = s3.create_multipart_upload(Bucket=bucket, Key="pending")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="pending", UploadId=uid2, PartNumber=1, Body=known)

    digests = {
        "MD5": hashlib.md5(known).digest(),
        "SHA-256": hashlib.sha256(known).digest(),
        "part MD5": hashlib.md5(part).digest(),
    }
    needles = {}
    for name, d in digests.items():
        needles[f"{name} hex"] = d.hex().encode()
        needles[f"{name} HEX"] = d.hex().upper().encode()
        needles[f"{name} base64"] = base64.b64encode(d).rstrip(b"=")
        needles[f"{name} raw"] = d
    needles["part CRC32 base64"] = up["ChecksumCRC32"].rstrip("=").encode()
    image = catalog_bytes(srv)
    assert image, "catalog.db not found"
    for name, needle in needles.items():
        assert needle not in image, f"catalog.db (or its WAL) holds the {name} of stored data"

    # Conditional requests still compare ETags (opened through the object key).
    e = s3.head_object(Bucket=bucket, Key="known")["ETag"]
    assert e.strip('"') == hashlib.md5(known).hexdigest(), "the real ETag is still answered"
    assert [o["ETag"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="known")["Contents"]] == [e]
    assert raw.request("GET", bucket, "known", headers={"If-Match": e}).status_code == 200
    assert_s3_error(raw.request("GET", bucket, "known", headers={"If-Match": '"0123"'}), 412, "PreconditionFailed")
    assert raw.request("GET", bucket, "known", headers={"If-None-Match": e}).status_code == 304
    r = raw.request("PUT", bucket, "known", body=b"v2", headers={"If-Match": '"0123"'})
    assert_s3_error(r, 412, "PreconditionFailed")
    r = raw.request("PUT", bucket, "known", body=b"v2", headers={"If-Match": e})
    assert r.status_code == 200, r.text
    r = raw.request("PUT", bucket, "copy", headers={"x-amz-copy-source": f"/{bucket}/known",
                                                   "x-amz-copy-source-if-match": e})
    assert_s3_error(r, 412, "PreconditionFailed")
    new = s3.head_object(Bucket=bucket, Key="known")["ETag"]
    r = raw.request("PUT", bucket, "copy", headers={"x-amz-copy-source": f"/{bucket}/known",
                                                   "x-amz-copy-source-if-match": new})
    assert r.status_code == 200, r.text
    parts = s3.list_parts(Bucket=bucket, Key="mpu", UploadId=uid)["Parts"]
    assert [(p["ETag"], p.get("ChecksumCRC32")) for p in parts] == [(up["ETag"], up["ChecksumCRC32"])]
    s3.complete_multipart_upload(Bucket=bucket, Key="mpu", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": up["ETag"], "ChecksumCRC32": up["ChecksumCRC32"]}]})
    image = catalog_bytes(srv)
    for name, needle in needles.items():
        assert needle not in image, f"after completion, catalog.db (or its WAL) holds the {name} of stored data"


# ---------------------------------------------------------------- 3. and 4. names are customer data


def seal(srv):
    out = srv.cli_ok("trustee", "seal", token=srv.token("officer1"))
    assert out.strip().startswith("sealed"), out


def unseal(srv):
    path = srv.data_dir / "trustee" / "dev-unseal-shares"
    s1, s2 = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    srv.cli_ok("trustee", "unseal", s1, token=srv.token("officer1"))
    srv.cli_ok("trustee", "unseal", s2, token=srv.token("officer2"))


def listing_and_delete_requests(bucket: str, uid: str):
    return [
        ("ListObjectsV2", "GET", "", [("list-type", "2")], None),
        ("ListObjects", "GET", "", [], None),
        ("ListObjectVersions", "GET", "", [("versions", "")], None),
        ("ListMultipartUploads", "GET", "", [("uploads", "")], None),
        ("ListParts", "GET", "up", [("uploadId", uid)], None),
        ("DeleteObject", "DELETE", "doc", [], None),
        ("DeleteObject of an absent key", "DELETE", "absent", [], None),
        ("DeleteObjects", "POST", "", [("delete", "")],
         b"<Delete><Object><Key>doc</Key></Object></Delete>"),
        # Whether a name exists is not answered either (never 404).
        ("GetObject of an absent key", "GET", "absent", [], None),
        ("ListParts of an absent upload", "GET", "up", [("uploadId", "f" * 40)], None),
        ("ListBuckets", "GET", None, [], None),
    ]


def send(raw, bucket, method, key, query, body):
    headers = {}
    if body is not None:
        headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()
    if key is None:  # ListBuckets
        return raw.request(method, query=query)
    return raw.request(method, bucket, key or None, query=query, body=body or b"", headers=headers)


def object_rows(srv, bucket: str) -> int:
    db = sqlite3.connect(f"file:{srv.data_dir / 'catalog.db'}?mode=ro", uri=True)
    try:
        n = db.execute("SELECT COUNT(*) FROM objects WHERE bucket = ?", (bucket,)).fetchone()[0]
        n += db.execute("SELECT COUNT(*) FROM uploads WHERE bucket = ?", (bucket,)).fetchone()[0]
    finally:
        db.close()
    return n


def test_a_sealed_trustee_stops_listings_and_deletes_too(private_server):
    srv = private_server
    s3, raw = srv.client(), srv.raw()
    bucket = unique_name("sealed-names")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="doc", Body=b"named data")
    uid = s3.create_multipart_upload(Bucket=bucket, Key="up")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="up", UploadId=uid, PartNumber=1, Body=b"p")
    assert listed(s3, bucket) == ["doc"]  # the bucket key is cached now
    seal(srv)
    for what, method, key, query, body in listing_and_delete_requests(bucket, uid):
        r = send(raw, bucket, method, key, query, body)
        assert_s3_error(r, 503, "ServiceUnavailable")
        _, msg = xml_error(r)
        assert "trustee" in msg.lower(), f"{what}: the 503 should name the trustee: {msg!r}"
        assert b"doc" not in r.content or what.startswith("Delete"), f"{what} named an object while sealed"
    unseal(srv)
    assert listed(s3, bucket) == ["doc"], "nothing was deleted while sealed"
    assert s3.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"named data"
    s3.delete_object(Bucket=bucket, Key="doc")
    assert listed(s3, bucket) == []


def test_after_a_crypto_shred_no_name_size_or_etag_is_answered_and_the_records_go(private_server):
    srv = private_server
    s3, raw = srv.client(), srv.raw()
    bucket = unique_name("shredded-names")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="doc", Body=b"named data")
    uid = s3.create_multipart_upload(Bucket=bucket, Key="up")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="up", UploadId=uid, PartNumber=1, Body=b"p")
    srv.cli_ok("tenant", "shred", "demo", "--now", token=srv.token("officer1"))
    out = srv.cli_ok("tenant", "shred", "demo", "--now", token=srv.token("officer2"))
    assert "destroyed" in out, out
    for what, method, key, query, body in listing_and_delete_requests(bucket, uid):
        r = send(raw, bucket, method, key, query, body)
        assert_s3_error(r, 403, "AccessDenied")
        assert b"doc" not in r.content or what.startswith("Delete"), f"{what} named an object after the shred"
        assert b"<ETag>" not in r.content and b"<Size>" not in r.content, f"{what}: {r.text[:300]}"
    # The destroyed key's records leave the catalog (and their blobs the sites) in bounded time.
    deadline = time.monotonic() + 15
    while object_rows(srv, bucket) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert object_rows(srv, bucket) == 0, "the shredded tenant's object and upload records are still in catalog.db"
    db = sqlite3.connect(f"file:{srv.data_dir / 'catalog.db'}?mode=ro", uri=True)
    try:
        assert db.execute("SELECT COUNT(*) FROM parts").fetchone()[0] == 0, "parts of the shredded upload remain"
    finally:
        db.close()
    assert "records were purged" in srv.log_path.read_text(errors="replace")
