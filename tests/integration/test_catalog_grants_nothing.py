"""The operator's own database grants nothing: S3 secrets are the trustee's, the trustee checks
every signature, and what the gateway sends is held to what the client signed.

Each test performs the attack (edits the databases with sqlite3, forges requests, calls the
trustee API as a gateway) and asserts that it fails.
"""

import base64
import datetime as dt
import hashlib
import sqlite3
import time

import requests

from conftest import parse_key_output
from gov_helpers import entries_of, log_size, make_tenant
from s3helpers import assert_s3_error, unique_name, xml_error
from split_helpers import running_split, split  # noqa: F401 (fixtures)


def file_bytes(path) -> bytes:
    out = b""
    for suffix in ("", "-wal", "-shm"):
        p = path.parent / (path.name + suffix)
        if p.exists():
            out += p.read_bytes()
    return out


def sql(path, statement: str, *args) -> None:
    db = sqlite3.connect(path, timeout=30)
    try:
        db.execute(statement, args)
        db.commit()
    finally:
        db.close()


def fresh_key(server) -> dict:
    """A new access key of tenant demo, made by its admin."""
    r = server.cli("tenant", "key-create", "demo", token=server.token("demo_admin"))
    assert r.returncode == 0, r.stderr
    return parse_key_output(r.stdout)


def test_no_s3_secret_is_kept_where_the_operator_can_read_it(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    key = fresh_key(server)
    raw = server.raw(key["AWS_ACCESS_KEY_ID"], key["AWS_SECRET_ACCESS_KEY"])
    assert raw.request("GET", bucket, "k").status_code == 200
    data = server.data_dir
    for secret in (server.demo["AWS_SECRET_ACCESS_KEY"], key["AWS_SECRET_ACCESS_KEY"]):
        assert secret.encode() not in file_bytes(data / "catalog.db"), "a secret is in the catalog"
        for site in ("de-fra", "de-mgd"):
            for f in server.site_dir(site).rglob("*"):
                if f.is_file():
                    assert secret.encode() not in f.read_bytes(), f"a secret is in {f}"
        # The trustee keeps it, sealed: not even there in clear.
        assert secret.encode() not in file_bytes(data / "trustee" / "access-keys.db")


def test_a_key_row_written_into_the_catalog_grants_nothing(server, bucket):
    """Today's attack on an earlier release: insert an access key row, sign with it."""
    forged_id, forged_secret = "OBK" + "F" * 17, "forged-secret-0123456789"
    sql(
        server.data_dir / "catalog.db",
        "CREATE TABLE IF NOT EXISTS access_keys (access_key_id TEXT PRIMARY KEY, tenant TEXT NOT NULL,"
        " secret TEXT NOT NULL, created_ms INTEGER NOT NULL)",
    )
    sql(server.data_dir / "catalog.db", "INSERT INTO access_keys VALUES (?, 'demo', ?, 0)", forged_id, forged_secret)
    raw = server.raw(forged_id, forged_secret)
    r = raw.request("GET", bucket)
    assert_s3_error(r, 403, "InvalidAccessKeyId")
    r = raw.request("PUT", bucket, "planted", body=b"x")
    assert_s3_error(r, 403, "InvalidAccessKeyId")


def test_an_edited_or_copied_trustee_key_record_is_refused_and_raises_an_alarm(server, bucket):
    key = fresh_key(server)
    db = server.data_dir / "trustee" / "access-keys.db"
    start = log_size(server)
    # Copy the row (its sealed secret) under another id: the secret is bound to its id.
    copy_id = "OBK" + "C" * 17
    sql(db, "INSERT INTO access_keys (access_key_id, tenant, sealed, state, created_ms) "
            "SELECT ?, tenant, sealed, state, created_ms FROM access_keys WHERE access_key_id = ?",
        copy_id, key["AWS_ACCESS_KEY_ID"])
    r = server.raw(copy_id, key["AWS_SECRET_ACCESS_KEY"]).request("GET", bucket)
    assert_s3_error(r, 403, "AccessDenied")
    # A row written by hand, with a made-up sealed value.
    hand_id = "OBK" + "H" * 17
    sql(db, "INSERT INTO access_keys (access_key_id, tenant, sealed, state, created_ms) VALUES (?, 'demo', ?, 'active', 0)",
        hand_id, b"\x01" * 60)
    r = server.raw(hand_id, "anything").request("GET", bucket)
    assert_s3_error(r, 403, "AccessDenied")
    alarms = entries_of(server, start, type="integrity_failure")
    assert {a["subject"] for a in alarms} >= {copy_id, hand_id}, alarms
    assert all(a["what"] == "access_key" for a in alarms)
    # The genuine key still works.
    assert server.raw(key["AWS_ACCESS_KEY_ID"], key["AWS_SECRET_ACCESS_KEY"]).request("GET", bucket).status_code == 200


def test_a_trustee_key_record_moved_to_another_tenant_is_refused_and_raises_an_alarm(server, bucket):
    """The tenant column of a key's record in the trustee's access-keys.db is edited: demo's key
    handed to another tenant, and that tenant's key handed to demo."""
    other = make_tenant(server)
    theirs = unique_name("theirs")
    other["client"].create_bucket(Bucket=theirs)
    other["client"].put_object(Bucket=theirs, Key="private", Body=b"the other tenant's data")
    server.client().put_object(Bucket=bucket, Key="private", Body=b"demo's data")
    moved_out = fresh_key(server)  # demo's, never used before the edit
    moved_in = parse_key_output(server.cli_ok("tenant", "key-create", other["name"], token=other["admin"]))
    db = server.data_dir / "trustee" / "access-keys.db"
    start = log_size(server)
    sql(db, "UPDATE access_keys SET tenant = ? WHERE access_key_id = ?", other["name"], moved_out["AWS_ACCESS_KEY_ID"])
    sql(db, "UPDATE access_keys SET tenant = 'demo' WHERE access_key_id = ?", moved_in["AWS_ACCESS_KEY_ID"])
    for key, target in ((moved_out, theirs), (moved_out, bucket), (moved_in, bucket), (moved_in, theirs)):
        raw = server.raw(key["AWS_ACCESS_KEY_ID"], key["AWS_SECRET_ACCESS_KEY"])
        for method, obj in (("GET", "private"), ("GET", None), ("PUT", "planted")):
            r = raw.request(method, target, obj, body=b"x" if method == "PUT" else b"")
            assert_s3_error(r, 403, "AccessDenied")
            assert b"data" not in r.content
    for name in (bucket, theirs):
        client = server.client() if name == bucket else other["client"]
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=name).get("Contents", [])]
        assert keys == ["private"], f"{name}: {keys}"
    alarms = entries_of(server, start, type="integrity_failure")
    assert {a["subject"] for a in alarms} >= {moved_out["AWS_ACCESS_KEY_ID"], moved_in["AWS_ACCESS_KEY_ID"]}, alarms
    assert all(a["what"] == "access_key" for a in alarms), alarms
    # The genuine keys of both tenants are unaffected.
    assert server.client().get_object(Bucket=bucket, Key="private")["Body"].read() == b"demo's data"
    assert other["client"].get_object(Bucket=theirs, Key="private")["Body"].read() == b"the other tenant's data"
    assert_s3_error(server.raw().request("GET", theirs, "private"), 403, "AccessDenied")


def test_a_revoked_key_stops_at_the_next_request_and_an_edit_cannot_revive_it(server, bucket):
    key = fresh_key(server)
    raw = server.raw(key["AWS_ACCESS_KEY_ID"], key["AWS_SECRET_ACCESS_KEY"])
    assert raw.request("GET", bucket).status_code == 200
    out = server.cli_ok("tenant", "key-revoke", "demo", key["AWS_ACCESS_KEY_ID"], token=server.token("demo_admin"))
    assert "revoked" in out
    assert_s3_error(raw.request("GET", bucket), 403, "InvalidAccessKeyId")
    listed = server.cli_ok("tenant", "key-list", "demo", token=server.token("demo_admin"))
    assert f"{key['AWS_ACCESS_KEY_ID']}  revoked" in listed, listed
    assert key["AWS_SECRET_ACCESS_KEY"] not in listed
    sql(server.data_dir / "trustee" / "access-keys.db",
        "UPDATE access_keys SET state = 'active' WHERE access_key_id = ?", key["AWS_ACCESS_KEY_ID"])
    assert raw.request("GET", bucket).status_code == 403


def test_only_the_tenants_admin_creates_or_revokes_its_keys(server):
    for who in ("officer1", "operator", "auditor"):
        r = server.cli("tenant", "key-create", "demo", token=server.token(who))
        assert r.returncode != 0 and "AWS_SECRET_ACCESS_KEY" not in r.stdout, who
    other = make_tenant(server)
    r = server.cli("tenant", "key-create", "demo", token=other["admin"])
    assert r.returncode != 0, "a tenant admin created keys of another tenant"
    r = server.cli("tenant", "key-revoke", other["name"], other["access_key"], token=server.token("demo_admin"))
    assert r.returncode != 0, "a tenant admin revoked another tenant's key"
    assert other["client"].list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_signature_checks_append_nothing_to_the_log_and_failures_are_rate_limited(server, bucket):
    key = fresh_key(server)
    raw = server.raw(key["AWS_ACCESS_KEY_ID"], key["AWS_SECRET_ACCESS_KEY"])
    assert raw.request("GET", bucket).status_code == 200
    before = log_size(server)
    for _ in range(10):
        assert raw.request("HEAD", bucket).status_code == 200
    wrong = server.raw(key["AWS_ACCESS_KEY_ID"], "not-the-secret")
    codes = [xml_error(wrong.request("GET", bucket))[0] for _ in range(25)]
    assert codes[0] == "SignatureDoesNotMatch", codes
    assert codes[-1] == "SlowDown", f"failed checks were not limited: {codes}"
    # While limited, even the right secret waits (the limit is per key, for a minute).
    r = raw.request("GET", bucket)
    assert_s3_error(r, 503, "SlowDown")
    assert log_size(server) == before, "checking signatures appended to the log"
    # Other keys are not held up.
    assert server.raw().request("GET", bucket).status_code == 200


def test_the_trustee_judges_time_and_region_itself(server, bucket):
    raw = server.raw()
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=16)
    assert_s3_error(raw.request("GET", bucket, now=old), 403, "RequestTimeTooSkewed")
    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=16)
    assert_s3_error(raw.request("GET", bucket, now=future), 403, "RequestTimeTooSkewed")
    r = raw.request("GET", bucket, region="eu-west-1")
    assert_s3_error(r, 400, "AuthorizationHeaderMalformed")
    assert "de-1" in xml_error(r)[1]
    assert raw.request("GET", bucket).status_code == 200


def test_amz_headers_outside_the_signature_are_refused(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="private/secret", Body=b"secret")
    raw = server.raw()
    # A presigned PUT URL, and an x-amz-copy-source nobody signed: nothing is copied.
    url = raw.presigned_url("PUT", bucket, "public/dst")
    r = requests.put(url, headers={"x-amz-copy-source": f"{bucket}/private/secret"}, data=b"", timeout=30)
    assert_s3_error(r, 403, "AccessDenied")
    assert "x-amz-copy-source" in xml_error(r)[1]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert "public/dst" not in keys
    # Header signatures too: metadata added after signing.
    path = raw.path(bucket, "k2")
    signed = raw.sign("PUT", path, [], {}, hashlib.sha256(b"v").hexdigest())
    headers = dict(signed.headers)
    headers["x-amz-meta-added"] = "later"
    r = raw.http.put(raw.endpoint + path, headers=headers, data=b"v", timeout=30)
    assert_s3_error(r, 403, "AccessDenied")
    # The same presigned URL without the extra header works.
    assert requests.put(url, data=b"plain", timeout=30).status_code == 200


def test_a_body_that_differs_from_its_signed_hash_is_not_stored(server, s3, bucket):
    raw = server.raw()
    path = raw.path(bucket, "swapped")
    signed = raw.sign("PUT", path, [], {}, hashlib.sha256(b"what was signed").hexdigest())
    r = raw.http.put(raw.endpoint + path, headers=signed.headers, data=b"what was sent!!", timeout=30)
    assert_s3_error(r, 400, "XAmzContentSHA256Mismatch")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert "swapped" not in keys


def test_signature_version_2_is_refused_everywhere_including_post_forms(server, bucket):
    url = f"{server.s3_url}/{bucket}"
    # Header and query forms of version 2.
    r = requests.get(url, headers={"Authorization": f"AWS {server.demo['AWS_ACCESS_KEY_ID']}:c2ln"}, timeout=30)
    assert_s3_error(r, 400, "InvalidRequest")
    r = requests.get(url + f"?AWSAccessKeyId={server.demo['AWS_ACCESS_KEY_ID']}&Expires=9999999999&Signature=x",
                     timeout=30)
    assert_s3_error(r, 400, "InvalidRequest")
    # Browser POST forms, version 2 and version 4: nothing is stored either way.
    for fields in (
        {"key": "posted-v2", "AWSAccessKeyId": server.demo["AWS_ACCESS_KEY_ID"], "policy": "e30=", "signature": "c2ln"},
        {"key": "posted-v4", "x-amz-algorithm": "AWS4-HMAC-SHA256", "x-amz-date": "20260101T000000Z",
         "x-amz-credential": f"{server.demo['AWS_ACCESS_KEY_ID']}/20260101/de-1/s3/aws4_request",
         "policy": "e30=", "x-amz-signature": "0" * 64},
    ):
        r = requests.post(url, data=fields, files={"file": ("f", b"posted")}, timeout=30)
        assert r.status_code >= 400, f"a POST form was accepted: {r.status_code} {r.text[:200]}"
    keys = [o["Key"] for o in server.client().list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert not any(k.startswith("posted") for k in keys)


def test_a_gateway_that_no_customer_asked_cannot_obtain_a_bucket_key(running_split):
    """A gateway's certificate used to be enough to claim a customer's justification."""
    split = running_split
    s3 = split.s3()
    name = unique_name("claimed")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=b"private")
    db = sqlite3.connect(split.data_dir / "catalog.db")
    try:
        row = db.execute(
            "SELECT version, wrapped, kcv FROM bucket_keys WHERE bucket = ? ORDER BY version DESC", (name,)
        ).fetchone()
    finally:
        db.close()
    assert row, "the bucket's wrapped key is not in the catalog"
    version, wrapped, kcv = row
    b64 = lambda v: base64.b64encode(bytes(v) if isinstance(v, (bytes, bytearray)) else bytes.fromhex(v)).decode()
    body = {
        "tenant": "demo",
        "bucket": name,
        "key": {"version": version, "wrapped": b64(wrapped), "kcv": b64(kcv)},
        "why": {"kind": "customer", "tenant": "demo", "principal": split.demo["AWS_ACCESS_KEY_ID"],
                "operation": "GetObject"},
    }
    r = split.trustee_api("POST", "/v1/bucket-keys/release", json=body)
    assert r.status_code == 403, f"the trustee released a key on a gateway's word: {r.status_code} {r.text[:300]}"
    assert "signed request" in r.text
    # Nor by claiming obhut itself needs it (the one-time format upgrade runs only in-process).
    body["why"] = {"kind": "system", "reason": "format upgrade: bind object keys to their names, seal ETags"}
    r = split.trustee_api("POST", "/v1/bucket-keys/release", json=body)
    assert r.status_code == 403, f"the trustee released a key for a system reason: {r.status_code} {r.text[:300]}"
    # Nor for reading tags for lifecycle rules: that too runs only beside an in-process trustee.
    body["why"] = {"kind": "system", "reason": "lifecycle: read object tags for the tenant's own tag-filtered rules"}
    r = split.trustee_api("POST", "/v1/bucket-keys/release", json=body)
    assert r.status_code == 403, f"the trustee released a key for lifecycle: {r.status_code} {r.text[:300]}"


def test_a_key_release_names_the_request_it_served(private_server_factory):
    srv = private_server_factory(config="key_cache_ttl_secs = 1\n")
    s3 = srv.client()
    name = unique_name("named")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=b"v")
    time.sleep(1.5)
    start = log_size(srv)
    assert s3.get_object(Bucket=name, Key="k")["Body"].read() == b"v"
    releases = entries_of(srv, start, type="key_release")
    assert releases, "no key release was logged"
    why = releases[-1]["justification"]
    assert why["kind"] == "customer" and len(why["request"]["digest"]) == 64, why
    assert why["principal"] == srv.demo["AWS_ACCESS_KEY_ID"]


def plant_legacy_key(srv, key_id: str, secret: str) -> None:
    """An S3 key in clear in catalog.db, in the table earlier releases kept them in."""
    sql(srv.data_dir / "catalog.db",
        "CREATE TABLE IF NOT EXISTS access_keys (access_key_id TEXT PRIMARY KEY, tenant TEXT NOT NULL,"
        " secret TEXT NOT NULL, created_ms INTEGER NOT NULL)")
    sql(srv.data_dir / "catalog.db", "INSERT INTO access_keys VALUES (?, 'demo', ?, 0)", key_id, secret)
    assert secret.encode() in file_bytes(srv.data_dir / "catalog.db")


def as_the_release_before_left_the_trustee(srv) -> None:
    """The trustee's access-keys.db as the release before wrote it (schema 2): no record yet
    of the one import of the catalog's legacy keys."""
    db = sqlite3.connect(srv.data_dir / "trustee" / "access-keys.db", timeout=30)
    try:
        db.execute("DROP TABLE legacy_import")
        db.execute("PRAGMA user_version = 2")
        db.commit()
    finally:
        db.close()


def test_access_keys_an_earlier_release_kept_in_clear_move_to_the_trustee(private_server_factory):
    """Upgrade: a catalog.db with S3 secrets in clear (as earlier releases wrote it)."""
    srv = private_server_factory()
    bucket = unique_name("legacy")
    srv.client().create_bucket(Bucket=bucket)
    srv.stop_ok()
    legacy_id, legacy_secret = "OBK" + "L" * 17, "legacy-secret-in-clear-0123456789abcd"
    plant_legacy_key(srv, legacy_id, legacy_secret)
    as_the_release_before_left_the_trustee(srv)
    srv.start()
    assert legacy_id in srv.log_path.read_text(errors="replace"), "the exposed key was not reported"
    # Nothing of the secret is left in the catalog's files, and the key goes on working.
    assert legacy_secret.encode() not in file_bytes(srv.data_dir / "catalog.db")
    assert srv.raw(legacy_id, legacy_secret).request("GET", bucket).status_code == 200
    imported = entries_of(srv, 0, type="access_keys_imported")
    assert imported and legacy_id in imported[-1]["access_key_ids"], imported
    # Once: a key written into the catalog after that upgrade is not taken.
    srv.stop_ok()
    later_id, later_secret = "OBK" + "M" * 17, "written-after-the-upgrade-0123456789ab"
    plant_legacy_key(srv, later_id, later_secret)
    srv.start()
    assert_s3_error(srv.raw(later_id, later_secret).request("GET", bucket), 403, "InvalidAccessKeyId")
    assert srv.raw(legacy_id, legacy_secret).request("GET", bucket).status_code == 200
    assert [e["access_key_ids"] for e in entries_of(srv, 0, type="access_keys_imported")] == \
        [imported[-1]["access_key_ids"]]


def test_an_access_key_row_written_into_the_catalog_is_not_imported_at_the_next_start(private_server_factory):
    """The operator writes a key in clear into catalog.db, in the table earlier releases kept
    them in, and restarts: nothing is imported (the trustee did its one import at the first
    start), the key grants nothing, and the row is erased and reported."""
    srv = private_server_factory()
    bucket = unique_name("planted")
    srv.client().create_bucket(Bucket=bucket)
    srv.stop_ok()
    planted_id, planted_secret = "OBK" + "P" * 17, "planted-by-the-operator-0123456789abcd"
    plant_legacy_key(srv, planted_id, planted_secret)
    srv.start()
    raw = srv.raw(planted_id, planted_secret)
    assert_s3_error(raw.request("GET", bucket), 403, "InvalidAccessKeyId")
    assert_s3_error(raw.request("PUT", bucket, "planted", body=b"x"), 403, "InvalidAccessKeyId")
    assert not entries_of(srv, 0, type="access_keys_imported")
    assert planted_secret.encode() not in file_bytes(srv.data_dir / "catalog.db"), "the row was not erased"
    log = srv.log_path.read_text(errors="replace")
    assert planted_id in log and "not taken into custody" in log, "the planted key was not reported"
    # Nor at any later start.
    srv.stop_ok()
    plant_legacy_key(srv, planted_id, planted_secret)
    srv.start()
    assert_s3_error(srv.raw(planted_id, planted_secret).request("GET", bucket), 403, "InvalidAccessKeyId")
    assert not entries_of(srv, 0, type="access_keys_imported")


def test_a_sealed_trustee_stops_listing_and_deleting_too(private_server):
    """Names, sizes and ETags are customer data: without the trustee nothing is answered."""
    srv = private_server
    s3, raw = srv.client(), srv.raw()
    bucket = unique_name("sealedlist")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="a/visible-name", Body=b"x")
    srv.cli_ok("trustee", "seal", token=srv.token("officer1"))
    for what, r in (
        ("ListObjectsV2", raw.request("GET", bucket, query=[("list-type", "2")])),
        ("ListObjects", raw.request("GET", bucket)),
        ("ListBuckets", raw.request("GET")),
        ("ListMultipartUploads", raw.request("GET", bucket, query=[("uploads", "")])),
        ("DeleteObject", raw.request("DELETE", bucket, "a/visible-name")),
        ("HeadBucket", raw.request("HEAD", bucket)),
    ):
        assert r.status_code == 503, f"{what} while sealed: {r.status_code} {r.text[:200]}"
        assert b"visible-name" not in r.content, what


def test_a_single_put_over_5_gib_is_refused_before_its_body_is_read(server, bucket):
    import socket

    host, port = server.s3_url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(
            f"PUT /{bucket}/huge HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Length: {5 * 1024**3 + 1}\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        answer = s.recv(4096).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 400"), answer
    assert "EntityTooLarge" in answer, answer
    assert "100 Continue" not in answer


def test_refused_requests_under_a_grant_are_logged_but_cannot_flood_the_log(server):
    from gov_helpers import approved_grant, credentials, grant_client, tenant_with_bucket

    t = tenant_with_bucket(server, {"case-1/a": b"a", "other/b": b"b"})
    gid = approved_grant(server, t, "read,list", prefix="case-1/")
    c = grant_client(server, credentials(server, server.token("operator"), gid))
    assert c.get_object(Bucket=t["bucket"], Key="case-1/a")["Body"].read() == b"a"
    start = log_size(server)
    # An operation no grant covers is refused by the gateway, and logged all the same.
    try:
        c.delete_bucket(Bucket=t["bucket"])
        raise AssertionError("DeleteBucket under a grant succeeded")
    except Exception as e:  # botocore ClientError
        assert "AccessDenied" in str(e), e
    denied = entries_of(server, start, type="grant_access_denied", grant=gid)
    assert [d["operation"] for d in denied] == ["DeleteBucket"], denied
    # A flood of refused reads: at most 10 entries a minute per grant.
    for _ in range(30):
        try:
            c.get_object(Bucket=t["bucket"], Key="other/b")
            raise AssertionError("a read outside the grant succeeded")
        except Exception as e:
            assert "AccessDenied" in str(e), e
    denied = entries_of(server, start, type="grant_access_denied", grant=gid)
    assert len(denied) == 10, f"{len(denied)} refusals logged in a minute"


def test_a_bucket_handed_to_another_tenant_in_the_catalog_serves_it_nothing(server, s3, tenant_b):
    """The catalog says which tenant owns a bucket; editing that opens nothing."""
    name = unique_name("owned")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="private", Body=b"demo's data")
    sql(server.data_dir / "catalog.db", "UPDATE buckets SET tenant = ? WHERE name = ?", tenant_b["name"], name)
    # Any write of such records empties the gateway's cache of them: the edit is what it reads now.
    s3.create_bucket(Bucket=unique_name("flush"))
    other = tenant_b["client"]
    try:
        s3.head_bucket(Bucket=name)
        raise AssertionError("the gateway still reads the bucket as demo's: the edit was not seen")
    except Exception as e:
        assert "403" in str(e) or "AccessDenied" in str(e), e
    for call in (
        lambda: other.get_object(Bucket=name, Key="private")["Body"].read(),
        lambda: other.list_objects_v2(Bucket=name),
    ):
        try:
            out = call()
        except Exception as e:  # botocore ClientError: refused, whatever the code
            assert "demo's data" not in str(e)
            continue
        raise AssertionError(f"tenant {tenant_b['name']} was served demo's bucket: {out!r}")
    sql(server.data_dir / "catalog.db", "UPDATE buckets SET tenant = 'demo' WHERE name = ?", name)


def test_a_new_keys_secret_crosses_the_admin_api_only_encrypted(server, bucket):
    """Whoever runs the admin listener (the gateway) relays the creation of an access key; it
    sees neither in the request nor in the answer the secret the admin's CLI prints."""
    import http.server
    import threading

    seen: list[bytes] = []

    class Relay(http.server.BaseHTTPRequestHandler):
        def relay(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")}
            r = requests.request(self.command, server.admin_url + self.path, headers=headers, data=body or None,
                                 timeout=30)
            seen.extend([body, r.content])
            self.send_response(r.status_code)
            for k, v in r.headers.items():
                if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(r.content)))
            self.end_headers()
            self.wfile.write(r.content)

        do_GET = do_POST = relay

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Relay)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        r = server.cli("tenant", "key-create", "demo", token=server.token("demo_admin"),
                       env={"OBHUT_ADMIN_URL": f"http://127.0.0.1:{httpd.server_port}"})
    finally:
        httpd.shutdown()
    assert r.returncode == 0, r.stderr
    key = parse_key_output(r.stdout)
    relayed = b"".join(seen)
    assert key["AWS_ACCESS_KEY_ID"].encode() in relayed, "the relay saw nothing of the creation"
    assert key["AWS_SECRET_ACCESS_KEY"].encode() not in relayed, "the relay saw the new secret"
    # And it is the key's secret.
    assert server.raw(key["AWS_ACCESS_KEY_ID"], key["AWS_SECRET_ACCESS_KEY"]).request("GET", bucket).status_code == 200


def signature_checks(server) -> float:
    """`obhut_trustee_signature_checks_total`: requests the trustee (in this process) was asked
    to verify."""
    r = requests.get(f"{server.admin_url}/metrics", headers=server.auth("operator"), timeout=30)
    assert r.status_code == 200, f"/metrics: {r.status_code} {r.text[:300]}"
    for line in r.text.splitlines():
        if line.startswith("obhut_trustee_signature_checks_total "):
            return float(line.split()[1])
    raise AssertionError("/metrics has no obhut_trustee_signature_checks_total")


def test_malformed_dates_and_key_ids_obhut_never_issues_are_refused_without_asking_the_trustee(server, bucket):
    raw = server.raw()
    path = raw.path(bucket)
    now = dt.datetime.now(dt.timezone.utc)
    tomorrow = now + dt.timedelta(days=1)

    def header_signed(**edit) -> dict:
        signed = raw.sign("GET", path, [], {}, hashlib.sha256(b"").hexdigest(), now=now)
        headers = dict(signed.headers)
        headers.update(edit)
        return headers

    def presigned_with(name: str, value: str) -> str:
        url = raw.presigned_url("GET", bucket, "k")
        base, qs = url.split("?", 1)
        pairs = [p.split("=", 1) for p in qs.split("&")]
        return base + "?" + "&".join(f"{k}={value if k == name else v}" for k, v in pairs)

    cred_today = f"{raw.access_key}%2F{now:%Y%m%d}%2Fde-1%2Fs3%2Faws4_request"
    dropped = [
        # (what, send, status, code)
        ("X-Amz-Date not YYYYMMDDTHHMMSSZ",
         lambda: raw.http.get(raw.endpoint + path, headers=header_signed(**{"x-amz-date": now.strftime("%Y-%m-%dT%H:%M:%SZ")})),
         400, "AuthorizationHeaderMalformed"),
        ("X-Amz-Date of another day than the credential's",
         lambda: raw.http.get(raw.endpoint + path, headers=header_signed(**{"x-amz-date": tomorrow.strftime("%Y%m%dT%H%M%SZ")})),
         400, "AuthorizationHeaderMalformed"),
        ("credential date not YYYYMMDD",
         lambda: raw.http.get(raw.endpoint + path, headers=header_signed(
             Authorization=header_signed()["Authorization"].replace(f"/{now:%Y%m%d}/", f"/{now:%Y-%m-%d}/"))),
         400, "AuthorizationHeaderMalformed"),
        ("presigned X-Amz-Date not YYYYMMDDTHHMMSSZ",
         lambda: raw.http.get(presigned_with("X-Amz-Date", "yesterday")),
         400, "AuthorizationQueryParametersError"),
        ("presigned X-Amz-Date of another day than the credential's",
         lambda: raw.http.get(presigned_with("X-Amz-Date", tomorrow.strftime("%Y%m%dT%H%M%SZ"))),
         400, "AuthorizationQueryParametersError"),
        ("presigned credential date of another day",
         lambda: raw.http.get(presigned_with("X-Amz-Credential", cred_today.replace(f"{now:%Y%m%d}", f"{tomorrow:%Y%m%d}"))),
         400, "AuthorizationQueryParametersError"),
        ("an AWS-style key id obhut never issues",
         lambda: raw.request("GET", bucket, access_key="AKIAIOSFODNN7EXAMPLE"),
         403, "InvalidAccessKeyId"),
        ("a key id of obhut's prefix but the wrong length",
         lambda: raw.request("GET", bucket, access_key="OBK" + "A" * 16),
         403, "InvalidAccessKeyId"),
        ("a key id with lower-case letters",
         lambda: raw.request("GET", bucket, access_key="OBK" + "a" * 17),
         403, "InvalidAccessKeyId"),
    ]
    for what, send, status, code in dropped:
        before = signature_checks(server)
        r = send()
        assert_s3_error(r, status, code)
        assert signature_checks(server) == before, f"{what}: the trustee was asked about it"

    # The other way: well-formed requests are asked about, a good one and a bad one alike
    # (a well-formed id obhut never issued is for the trustee to refuse).
    asked = [
        ("a genuine request", lambda: raw.request("GET", bucket), 200, None),
        ("a genuine presigned URL", lambda: raw.http.get(raw.presigned_url("GET", bucket, "absent")), 404, "NoSuchKey"),
        ("a well-formed key id nobody holds", lambda: raw.request("GET", bucket, access_key="OBK" + "Q" * 17),
         403, "InvalidAccessKeyId"),
    ]
    for what, send, status, code in asked:
        before = signature_checks(server)
        r = send()
        if code is None:
            assert r.status_code == status, f"{what}: {r.status_code} {r.text[:300]}"
        else:
            assert_s3_error(r, status, code)
        assert signature_checks(server) == before + 1, f"{what}: the trustee was not asked exactly once"


def memory_of(pid: int) -> list[tuple[int, int, str]]:
    """The readable private and anonymous mappings of process `pid`: (start, end, what)."""
    regions = []
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            span, perms = fields[0], fields[1]
            what = fields[5].strip() if len(fields) > 5 else "[anonymous]"
            if perms[0] != "r" or perms[3] != "p" or what in ("[vvar]", "[vvar_vclock]", "[vsyscall]"):
                continue
            start, end = (int(x, 16) for x in span.split("-"))
            regions.append((start, end, what))
    return regions


def find_in_memory(pid: int, needles: dict[str, bytes]) -> tuple[dict[str, list[str]], int]:
    """Reads every readable private mapping of `pid` through /proc/PID/mem, a piece at a time
    (never the whole image at once); returns where each needle was found, and the bytes read."""
    found: dict[str, list[str]] = {name: [] for name in needles}
    overlap = max(len(n) for n in needles.values()) - 1
    piece = 4 << 20
    read = 0
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for start, end, what in memory_of(pid):
            tail = b""
            at = start
            while at < end:
                try:
                    mem.seek(at)
                    data = mem.read(min(piece, end - at))
                except OSError:
                    break
                if not data:
                    break
                read += len(data)
                window = tail + data
                for name, needle in needles.items():
                    if needle in window and what not in found[name]:
                        found[name].append(what)
                tail = window[-overlap:] if overlap else b""
                at += len(data)
    return found, read


def test_the_gateway_holds_no_s3_secret_and_no_derived_signing_key_in_memory(running_split):
    """With the gateway and the trustee in separate processes, the gateway's memory is read
    (as root, through /proc/PID/mem) after header-signed, presigned and aws-chunked requests."""
    import os

    from s3helpers import RawS3, aws_chunked_signed, signing_key
    from test_per_object_release import signed_get

    split = running_split
    access, secret = split.demo["AWS_ACCESS_KEY_ID"], split.demo["AWS_SECRET_ACCESS_KEY"]
    raw = RawS3(split.s3_url, access, secret)
    name = unique_name("memory")
    marker = "obhut-marker-" + unique_name("m")
    # header-signed, with a marker header the gateway must read
    assert raw.request("PUT", name).status_code == 200
    r = raw.request("PUT", name, "plain", body=b"plain body", headers={"x-amz-meta-marker": marker})
    assert r.status_code == 200, r.text
    assert raw.request("GET", name, "plain").content == b"plain body"
    # presigned
    r = raw.http.get(raw.presigned_url("GET", name, "plain"), timeout=30)
    assert r.status_code == 200 and r.content == b"plain body", r.text[:300]
    # aws-chunked with signed chunks
    data = os.urandom(150_000)
    path = raw.path(name, "chunked")
    signed = raw.sign("PUT", path, [], {"Content-Encoding": "aws-chunked",
                                        "x-amz-decoded-content-length": str(len(data))},
                      "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
    r = raw.http.put(raw.endpoint + path, headers=signed.headers, data=aws_chunked_signed(data, 65536, signed),
                     timeout=60)
    assert r.status_code == 200, r.text
    assert raw.request("GET", name, "chunked").content == data
    # boto3 as well (its own choice of payload signing)
    split.s3().put_object(Bucket=name, Key="boto3", Body=b"from boto3")

    today = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d")
    derived = signing_key(secret, today, "de-1")
    assert derived == signed.signing_key
    needles = {
        "the secret access key": secret.encode(),
        "the secret access key (UTF-16)": secret.encode("utf-16-le"),
        "the derived signing key": derived,
        "the derived signing key (hex)": derived.hex().encode(),
        # controls: what the gateway must have held, so the scan reads where a secret would be
        "the access key id": access.encode(),
        "the marker header": marker.encode(),
    }
    found, read = find_in_memory(split.gateway.proc.pid, needles)
    assert read > 1 << 20, f"only {read} bytes of the gateway's memory were read"
    assert found["the access key id"], "control failed: the access key id is nowhere in the gateway's memory"
    assert found["the marker header"], "control failed: the marker header is nowhere in the gateway's memory"
    for what in ("the secret access key", "the secret access key (UTF-16)", "the derived signing key",
                 "the derived signing key (hex)"):
        assert not found[what], f"{what} is in the gateway's memory, in {found[what]}"

    # What the trustee answers a verify call carries no key material either.
    r = split.trustee_api("POST", "/v1/auth/verify",
                          json=signed_get(split.s3_url, access, secret, "de-1", name, "plain"))
    assert r.status_code == 200, r.text[:300]
    answer = r.content
    for form in (secret.encode(), derived, derived.hex().encode(), derived.hex().upper().encode(),
                 base64.b64encode(derived), base64.b64encode(derived).rstrip(b"="),
                 base64.urlsafe_b64encode(derived).rstrip(b"=")):
        assert form not in answer, f"the trustee's verify answer carries key material: {answer[:300]!r}"
    assert set(r.json()) <= {"signer", "ticket", "chain"}, r.json().keys()
