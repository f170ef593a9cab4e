"""`key_release = per-object`: the tenant's bucket keys never leave the trustee, which opens
exactly the object keys each verified request names and records every such request in the log
(group-committed) before the keys leave.

The attacks: a gateway that holds a genuine ticket for one object asks for another object's key,
or for the bucket key; someone other than the tenant's admin switches the tenant back.
"""

import base64
import hashlib
import sqlite3

from gov_helpers import entries_of, log_size, make_tenant, run_ok
from s3helpers import unique_name
from test_catalog_tampering import assert_integrity_refused, copy_object_row, wait_alarm
from split_helpers import running_split, split  # noqa: F401 (fixtures)


def per_object(srv) -> dict:
    t = make_tenant(srv)
    out = run_ok(srv, t["admin"], "tenant", "key-release", t["name"], "per-object")
    assert f"tenant {t['name']}: key_release=per-object" in out, out
    return t


def test_a_per_object_tenant_is_served_by_every_ordinary_operation(server):
    t = per_object(server)
    s3, name = t["client"], unique_name("po")
    s3.create_bucket(Bucket=name)
    start = log_size(server)
    body = b"per-object " * 1000
    s3.put_object(Bucket=name, Key="a/one", Body=body)
    assert s3.get_object(Bucket=name, Key="a/one")["Body"].read() == body
    head = s3.head_object(Bucket=name, Key="a/one")
    assert head["ContentLength"] == len(body)
    assert head["ETag"] == '"%s"' % hashlib.md5(body).hexdigest()
    s3.copy_object(Bucket=name, Key="b/copy", CopySource={"Bucket": name, "Key": "a/one"})
    assert s3.get_object(Bucket=name, Key="b/copy")["Body"].read() == body
    # A multipart upload: created, parts sent, listed, completed.
    up = s3.create_multipart_upload(Bucket=name, Key="a/big")["UploadId"]
    part = b"p" * (5 * 1024 * 1024)
    etags = [s3.upload_part(Bucket=name, Key="a/big", UploadId=up, PartNumber=n, Body=part)["ETag"]
             for n in (1, 2)]
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=name).get("Uploads", [])] == [up]
    assert len(s3.list_parts(Bucket=name, Key="a/big", UploadId=up)["Parts"]) == 2
    s3.complete_multipart_upload(Bucket=name, Key="a/big", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": e} for n, e in zip((1, 2), etags)]})
    assert s3.get_object(Bucket=name, Key="a/big", Range="bytes=0-3")["Body"].read() == b"pppp"
    # Listings answer ETags the trustee opened.
    listed = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=name)["Contents"]}
    assert listed["a/one"] == head["ETag"] and set(listed) == {"a/one", "a/big", "b/copy"}
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=name, Prefix="b/")["Contents"]] == ["b/copy"]
    s3.delete_object(Bucket=name, Key="b/copy")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=name)["Contents"]] == ["a/big", "a/one"]
    # Every request is in the log, by the digest of what the customer signed; no bucket key left.
    released = entries_of(server, start, type="object_keys_released", tenant=t["name"])
    requests = [r for e in released for r in e["requests"]]
    assert requests and all(r["bucket"] == name for r in requests)
    assert all(r["justification"] == "customer" and len(r["request"]) == 64 for r in requests), requests
    assert sum(r["opened"] for r in requests) >= 5
    assert sum(r["listed"] for r in requests) >= 4
    assert sum(r["wrapped"] for r in requests) >= 4
    assert not entries_of(server, start, type="key_release", tenant=t["name"]), \
        "a bucket key of a per-object tenant was released"


def test_only_the_tenants_admin_chooses_its_key_release(server):
    t = make_tenant(server)
    for who in ("officer1", "operator", "auditor", "demo_admin"):
        r = server.cli("tenant", "key-release", t["name"], "bucket", token=server.token(who))
        assert r.returncode != 0, f"{who} changed another tenant's key release"
    start = log_size(server)
    run_ok(server, t["admin"], "tenant", "key-release", t["name"], "per-object")
    set_ = entries_of(server, start, type="key_release_policy_set", tenant=t["name"])
    assert [e["key_release"] for e in set_] == ["per-object"], set_
    # And back: the tenant's gateways use bucket keys again.
    s3, name = t["client"], unique_name("po")
    s3.create_bucket(Bucket=name)
    run_ok(server, t["admin"], "tenant", "key-release", t["name"], "bucket")
    start = log_size(server)
    s3.put_object(Bucket=name, Key="k", Body=b"v")
    assert s3.get_object(Bucket=name, Key="k")["Body"].read() == b"v"
    assert entries_of(server, start, type="key_release", tenant=t["name"]), "no bucket key release after switching back"


def test_a_record_moved_in_the_catalog_does_not_open_per_object(server):
    t = per_object(server)
    s3, name = t["client"], unique_name("po")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="private", Body=b"secret")
    s3.put_object(Bucket=name, Key="public", Body=b"hello")
    copy_object_row(server, name, "private", name, "public")
    r = server.raw(t["access_key"], t["secret_key"]).request("GET", name, "public")
    assert_integrity_refused(r, "a record filed under another name")
    assert b"secret" not in r.content
    wait_alarm(server, tenant=t["name"], bucket=name, key="public")


EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def signed_get(endpoint: str, access: str, secret: str, region: str, bucket: str, key: str) -> dict:
    """A GET signed by botocore, in the parts a gateway sends the trustee to verify."""
    from urllib.parse import urlsplit

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest(method="GET", url=f"{endpoint}/{bucket}/{key}", headers={"x-amz-content-sha256": EMPTY_SHA256})
    SigV4Auth(Credentials(access, secret), "s3", region).add_auth(req)
    auth = req.headers["Authorization"]
    fields = dict(part.strip().split("=", 1) for part in auth.split(" ", 1)[1].split(","))
    _, scope_date, scope_region, service, _ = fields["Credential"].split("/")
    headers = []
    for name in fields["SignedHeaders"].split(";"):
        value = urlsplit(endpoint).netloc if name == "host" else req.headers[name]
        headers.append([name, value])
    return {"access_key_id": access, "amz_date": req.headers["X-Amz-Date"], "scope_date": scope_date,
            "region": scope_region, "service": service, "method": "GET", "path": f"/{bucket}/{key}",
            "query": [], "headers": headers, "payload": EMPTY_SHA256, "presigned_expires": None,
            "signature": fields["Signature"]}


def test_a_gateway_with_a_genuine_ticket_gets_only_what_the_request_names(running_split):
    """The gateway has a real GET of one object verified, then asks for more with its ticket."""
    import json

    split = running_split
    out = split.run("tenant", "key-release", "demo", "per-object", token=split.token("demo_admin"))
    assert out.returncode == 0, out.stderr
    s3, name = split.s3(), unique_name("po")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="asked", Body=b"a")
    s3.put_object(Bucket=name, Key="other", Body=b"b")
    access, secret = split.demo["AWS_ACCESS_KEY_ID"], split.demo["AWS_SECRET_ACCESS_KEY"]
    region = split.demo.get("AWS_REGION") or split.demo.get("AWS_DEFAULT_REGION")
    r = split.trustee_api("POST", "/v1/auth/verify", json=signed_get(split.s3_url, access, secret, region, name, "asked"))
    assert r.status_code == 200, r.text[:300]
    ticket = r.json()["ticket"]
    db = sqlite3.connect(split.data_dir / "catalog.db")
    try:
        version, wrapped, kcv = db.execute(
            "SELECT version, wrapped, kcv FROM bucket_keys WHERE bucket = ? ORDER BY version DESC", (name,)).fetchone()
        envelopes = {bytes(k).decode(): v
                     for k, v in db.execute("SELECT key, envelope FROM objects WHERE bucket = ?", (name,))}
    finally:
        db.close()
    b64 = lambda v: base64.b64encode(bytes(v) if isinstance(v, (bytes, bytearray)) else bytes.fromhex(v)).decode()
    why = {"kind": "customer", "tenant": "demo", "principal": access, "operation": "GetObject", "request": ticket}
    body = {"tenant": "demo", "bucket": name, "key": {"version": version, "wrapped": b64(wrapped), "kcv": b64(kcv)},
            "why": why}
    # The bucket key: refused for a per-object tenant, even against the genuine request.
    r = split.trustee_api("POST", "/v1/bucket-keys/release", json=body)
    assert r.status_code == 403 and "object_keys_only" in r.text, (r.status_code, r.text[:300])

    def op(obj: str) -> dict:
        env = json.loads(bytes(envelopes[obj]))
        return {"op": "open", "name": {"key": obj}, "version_id": env["version_id"],
                "wrapped": env["wrapped_key"], "kcv": env["kcv"]}

    r = split.trustee_api("POST", "/v1/object-keys", json={**body, "ops": [op("asked")]})
    assert r.status_code == 200 and r.json()["outcomes"][0]["outcome"] == "key", r.text[:300]
    r = split.trustee_api("POST", "/v1/object-keys", json={**body, "ops": [op("other")]})
    assert r.status_code == 403, f"the trustee opened a key the request did not name: {r.text[:300]}"
    r = split.trustee_api("POST", "/v1/object-keys", json={**body, "ops": [op("asked"), op("other")]})
    assert r.status_code == 403, f"the trustee opened a key the request did not name: {r.text[:300]}"


def test_switching_to_per_object_needs_a_rotation_done_inside_the_trustee(server):
    """A bucket key version a gateway once held would open every object wrapped under it: after
    the switch nothing new is wrapped under it, and the rotation rewraps inside the trustee."""
    t = make_tenant(server)
    s3, name = t["client"], unique_name("po")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="before", Body=b"written in bucket mode")
    run_ok(server, t["admin"], "tenant", "key-release", t["name"], "per-object")
    start = log_size(server)
    # Reads go on; a write under the version gateways held is refused, saying what to do.
    assert s3.get_object(Bucket=name, Key="before")["Body"].read() == b"written in bucket mode"
    r = server.raw(t["access_key"], t["secret_key"]).request("PUT", name, "after", body=b"x")
    assert r.status_code == 503 and b"rotate" in r.content, (r.status_code, r.content[:300])
    out = run_ok(server, t["admin"], "tenant", "rotate-key", t["name"], "--bucket", name)
    assert "rewrapped" in out or "1" in out, out
    s3.put_object(Bucket=name, Key="after", Body=b"written per object")
    assert s3.get_object(Bucket=name, Key="before")["Body"].read() == b"written in bucket mode"
    assert s3.get_object(Bucket=name, Key="after")["Body"].read() == b"written per object"
    assert not entries_of(server, start, type="key_release", tenant=t["name"]), \
        "a bucket key left the trustee after the switch"
    rewrapped = [r for e in entries_of(server, start, type="object_keys_released", tenant=t["name"])
                 for r in e["requests"] if r.get("rewrapped")]
    assert sum(r["rewrapped"] for r in rewrapped) == 1, rewrapped
