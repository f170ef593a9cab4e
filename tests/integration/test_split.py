"""The trustee as a process of its own: `obhut trustee --config` serves its API
over mutual TLS, `obhut gateway --config` runs the S3 gateway and the admin API
against it. S3 works through the pair; the trustee refuses gateways whose
certificate its CA did not sign; the gateway refuses to start without the
trustee's certificate material; a dead trustee makes keyed requests answer 503
naming the trustee at once, and a restarted one brings service back without a
gateway restart; sealing the trustee makes the gateway drop its cached keys
within a long-poll round trip; SIGHUP makes the trustee present a renewed
certificate without a restart (which would leave it sealed).

See split_helpers.py for the bootstrap."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import signal
import socket
import sqlite3
import ssl
import time
from pathlib import Path

import botocore.exceptions
import pytest
import requests

from conftest import assert_one_line_failure, file_mode
from s3helpers import RawS3, assert_s3_error, client_error, unique_name, xml_error
from split_helpers import Split, running_split, split  # noqa: F401 (fixtures)


def put_get(s3, bucket: str, key: str, body: bytes) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert got == body


def expect_trustee_503(fn, what: str, **kwargs) -> float:
    """`fn` must fail with 503 ServiceUnavailable naming the trustee; returns how long it took."""
    started = time.monotonic()
    code, status, resp = client_error(fn, **kwargs)
    took = time.monotonic() - started
    msg = resp.get("Error", {}).get("Message", "")
    assert (status, code) == (503, "ServiceUnavailable"), f"{what}: expected 503 ServiceUnavailable, got {status} {code}: {msg!r}"
    assert "trustee" in msg.lower(), f"{what}: the 503 does not name the trustee: {msg!r}"
    return took


def first_503(fn, limit: float, **kwargs) -> tuple[float, str]:
    """Repeats `fn` until it answers 503; returns (seconds until then, its message).
    Fails if that takes longer than `limit` or anything else goes wrong."""
    started = time.monotonic()
    while True:
        try:
            result = fn(**kwargs)
            if "Body" in result:
                result["Body"].read()
        except botocore.exceptions.ClientError as e:
            status = e.response["ResponseMetadata"]["HTTPStatusCode"]
            assert status == 503, f"expected 503, got {status}: {e.response['Error']}"
            return time.monotonic() - started, e.response["Error"].get("Message", "")
        elapsed = time.monotonic() - started
        assert elapsed < limit, f"still served {elapsed:.1f}s later (limit {limit}s)"
        time.sleep(0.1)


def test_init_pki_writes_private_keys_and_keeps_what_exists(split: Split):
    for name in ("ca.key", "trustee.key", "gateway-1.key", "gateway-2.key"):
        assert file_mode(split.pki / name) == 0o600, f"{name} has mode {file_mode(split.pki / name):o}"
    for name in ("ca.crt", "trustee.crt", "gateway-1.crt", "gateway-2.crt"):
        assert (split.pki / name).read_text().startswith("-----BEGIN CERTIFICATE-----")
    ca = (split.pki / "ca.crt").read_bytes()
    r = split.run("trustee", "init-pki", "--dir", str(split.pki), "--gateways", "3")
    assert r.returncode == 0, r.stderr
    assert "created" in r.stdout and "gateway-3.crt" in r.stdout, r.stdout
    assert f"kept {split.pki / 'trustee.crt'}" in r.stdout, r.stdout
    assert (split.pki / "ca.crt").read_bytes() == ca


def test_s3_round_trip_through_a_remote_trustee(running_split: Split):
    s = running_split
    s3 = s.s3()
    bucket = unique_name("split")
    s3.create_bucket(Bucket=bucket)
    body = b"kept by the trustee in another process\n" * 1000
    put_get(s3, bucket, "a/b.txt", body)
    # the trustee is reached through the gateway's admin API as well
    r = s.run("trustee", "status", token=s.token("operator"))
    assert r.returncode == 0 and r.stdout.strip() == "unsealed", (r.stdout, r.stderr)
    # the trustee API speaks to other clients that hold a gateway certificate, too
    assert s.trustee_api("GET", "/v1/seal").json()["sealed"] is False
    assert "DEVELOPMENT MODE" in s.trustee.log_text()
    # and the released key never shows up in a log
    assert "bucket key released" in s.trustee.log_text()


def test_a_gateway_certificate_from_another_ca_is_refused(split: Split):
    other = split.base / "other-pki"
    r = split.run("trustee", "init-pki", "--dir", str(other), "--gateways", "1")
    assert r.returncode == 0, r.stderr
    split.start_trustee()
    # trusts the real CA, but presents a certificate that another CA signed
    config = split.gateway_config("intruder.toml", cert=other / "gateway-1.crt", key=other / "gateway-1.key")
    split.start_gateway(config)
    s3 = split.s3()
    took = expect_trustee_503(s3.create_bucket, "CreateBucket with a foreign certificate", Bucket=unique_name("intruder"))
    assert took < 10, f"the refusal took {took:.1f}s"
    code, status, resp = client_error(s3.create_bucket, Bucket=unique_name("intruder"))
    assert split.trustee_url in resp["Error"]["Message"], resp["Error"]["Message"]
    assert "refused a TLS connection" in split.trustee.log_text()
    # a client of the trustee API without any certificate gets nowhere either
    try:
        requests.get(split.trustee_url + "/v1/seal", verify=str(split.pki / "ca.crt"), timeout=5)
    except requests.exceptions.RequestException:
        pass
    else:
        raise AssertionError("the trustee API answered a client without a certificate")


def test_the_gateway_refuses_to_start_without_the_trustees_certificate_material(split: Split):
    missing = split.base / "nowhere" / "gateway-1.key"
    for config, needle in [
        (split.gateway_config("no-key.toml", key=missing), str(missing)),
        (split.gateway_config("no-section.toml", trustee_section=False), "[trustee]"),
        (split.gateway_config("not-a-cert.toml", cert=split.pki / "gateway-1.key"), "gateway certificate"),
    ]:
        r = split.run("gateway", "--config", str(config), timeout=30)
        assert_one_line_failure(r, f"gateway with {config.name}")
        assert needle in r.stderr, f"{config.name}: {r.stderr!r}"
        assert "trustee" in r.stderr.lower(), f"{config.name}: {r.stderr!r}"


def test_a_dead_trustee_gives_quick_503s_and_a_restarted_one_brings_service_back(running_split: Split):
    s = running_split
    s3 = s.s3()
    bucket = unique_name("kill")
    s3.create_bucket(Bucket=bucket)
    put_get(s3, bucket, "before", b"before the outage")

    s.trustee.kill9()
    # cached keys are dropped as soon as the revocation stream breaks: even the bucket whose
    # key the gateway held a moment ago answers 503, quickly
    took, msg = first_503(s3.get_object, 10, Bucket=bucket, Key="before")
    assert "trustee" in msg.lower(), msg
    for what, fn, kwargs in [
        ("GetObject", s3.get_object, {"Bucket": bucket, "Key": "before"}),
        ("PutObject", s3.put_object, {"Bucket": bucket, "Key": "during", "Body": b"x"}),
        ("CreateBucket", s3.create_bucket, {"Bucket": unique_name("dead")}),
    ]:
        took = expect_trustee_503(fn, f"{what} with the trustee dead", **kwargs)
        assert took < 10, f"{what} took {took:.1f}s with the trustee dead"
    # the admin API says so too, in one line
    r = s.run("trustee", "status", token=s.token("operator"))
    assert_one_line_failure(r, "trustee status with the trustee dead")
    assert "trustee" in r.stderr and "503" in r.stderr, r.stderr

    # the trustee comes back (unsealing itself from the development share file); the gateway
    # was never restarted
    s.start_trustee()
    deadline = time.monotonic() + 15
    while True:
        try:
            got = s3.get_object(Bucket=bucket, Key="before")["Body"].read()
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert got == b"before the outage"
    put_get(s3, bucket, "after", b"after the outage")
    assert s.gateway.running()


def test_sealing_drops_cached_keys_within_the_long_poll_bound(running_split: Split):
    s = running_split
    s3 = s.s3()
    bucket = unique_name("seal")
    s3.create_bucket(Bucket=bucket)
    put_get(s3, bucket, "k", b"cached key")
    # the bucket key is now cached (key_cache_ttl 300 s): only a revocation can drop it
    r = s.run("trustee", "seal", token=s.token("officer1"))
    assert r.returncode == 0 and r.stdout.startswith("sealed"), (r.stdout, r.stderr)
    took, msg = first_503(s3.get_object, 5, Bucket=bucket, Key="k")
    assert "sealed" in msg and "trustee" in msg, msg
    assert "dropping revoked keys" in s.gateway.log_text()
    # the trustee waits for each gateway to acknowledge the revocation (its next long-poll)
    deadline = time.monotonic() + 12
    while "revocation acknowledged by every gateway" not in s.trustee.log_text():
        assert time.monotonic() < deadline, "the trustee logged no acknowledgement:\n" + s.trustee.log_tail()
        time.sleep(0.2)
    assert "not acknowledged" not in s.trustee.log_text()

    # officers unseal through the gateway's admin API: service resumes
    shares = s.dev_shares()
    for who, share in zip(("officer1", "officer2"), shares):
        r = s.run("trustee", "unseal", share, token=s.token(who))
        assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "unsealed"
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"cached key"

    # sealing the trustee directly (not through this gateway) reaches the gateway the same way
    assert s.trustee_api("POST", "/v1/seal", json={}).json()["sealed"] is True
    took, msg = first_503(s3.get_object, 5, Bucket=bucket, Key="k")
    assert "sealed" in msg, msg


def _presented_sha256(s: Split) -> str:
    """SHA-256 of the certificate the trustee API presents to a gateway on a new connection."""
    ctx = ssl.create_default_context(cafile=str(s.pki / "ca.crt"))
    ctx.load_cert_chain(str(s.pki / "gateway-2.crt"), str(s.pki / "gateway-2.key"))
    host, port = s.trustee_url.removeprefix("https://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


def _pem_sha256(path) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(path.read_text())).hexdigest()


def test_sighup_renews_the_trustee_certificate_without_sealing_it(running_split: Split):
    s = running_split
    old = _presented_sha256(s)
    assert old == _pem_sha256(s.pki / "trustee.crt")
    # A new certificate from the same CA, made beside the current one and renamed over it.
    renewed = s.base / "renewed-pki"
    renewed.mkdir()
    for name in ("ca.crt", "ca.key"):
        shutil.copy2(s.pki / name, renewed / name)
    r = s.run("trustee", "init-pki", "--dir", str(renewed), "--gateways", "1")
    assert r.returncode == 0, r.stderr
    new = _pem_sha256(renewed / "trustee.crt")
    assert new != old
    os.rename(renewed / "trustee.crt", s.pki / "trustee.crt")
    os.rename(renewed / "trustee.key", s.pki / "trustee.key")
    s.trustee.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while _presented_sha256(s) != new:
        assert time.monotonic() < deadline, s.trustee.log_tail()
        time.sleep(0.1)
    assert s.trustee.running(), "SIGHUP ended the trustee"
    assert "new TLS certificate in use" in s.trustee.log_text()
    # Still unsealed (no restart happened), and gateways still get keys through it.
    assert s.trustee_api("GET", "/v1/seal").json()["sealed"] is False
    bucket = unique_name("renewed")
    s.s3().create_bucket(Bucket=bucket)
    put_get(s.s3(), bucket, "k", b"after the renewal")

    # An unusable pair (a key that does not fit) is refused and the renewed one stays.
    other = s.base / "other-pki"
    r = s.run("trustee", "init-pki", "--dir", str(other), "--gateways", "1")
    assert r.returncode == 0, r.stderr
    os.rename(other / "trustee.key", s.pki / "trustee.key")
    s.trustee.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "the previous TLS certificate stays in use" not in s.trustee.log_text():
        assert time.monotonic() < deadline, s.trustee.log_tail()
        time.sleep(0.1)
    assert s.trustee.running()
    assert _presented_sha256(s) == new


def test_a_dead_trustee_stops_listings_and_deletes_quickly_and_deletes_nothing(running_split: Split):
    """Names, sizes and ETags are customer data: with the trustee unreachable, no listing
    answers and no delete happens, quickly, and everything is still there once it is back."""
    s = running_split
    s3 = s.s3()
    raw = RawS3(s.s3_url, s.demo["AWS_ACCESS_KEY_ID"], s.demo["AWS_SECRET_ACCESS_KEY"])
    bucket = unique_name("dead-names")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="doc", Body=b"named data")
    uid = s3.create_multipart_upload(Bucket=bucket, Key="up")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="up", UploadId=uid, PartNumber=1, Body=b"p")
    empty = unique_name("dead-empty")
    s3.create_bucket(Bucket=empty)
    # every listing works and the bucket key is cached before the trustee dies
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])] == ["doc"]

    s.trustee.kill9()
    first_503(s3.list_objects_v2, 10, Bucket=bucket)
    requests_ = [
        ("ListObjectsV2", "GET", bucket, "", [("list-type", "2")], None),
        ("ListObjects", "GET", bucket, "", [], None),
        ("ListObjectVersions", "GET", bucket, "", [("versions", "")], None),
        ("ListMultipartUploads", "GET", bucket, "", [("uploads", "")], None),
        ("ListParts", "GET", bucket, "up", [("uploadId", uid)], None),
        ("ListBuckets", "GET", None, None, [], None),
        ("DeleteObject", "DELETE", bucket, "doc", [], None),
        ("DeleteObjects", "POST", bucket, "", [("delete", "")],
         b"<Delete><Object><Key>doc</Key></Object></Delete>"),
        ("AbortMultipartUpload", "DELETE", bucket, "up", [("uploadId", uid)], None),
        ("DeleteBucket (empty bucket)", "DELETE", empty, "", [], None),
    ]
    for what, method, b, key, query, body in requests_:
        headers = {}
        if body is not None:
            headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()
        started = time.monotonic()
        if b is None:
            r = raw.request(method, query=query, timeout=30)
        else:
            r = raw.request(method, b, key or None, query=query, body=body or b"", headers=headers, timeout=30)
        took = time.monotonic() - started
        assert_s3_error(r, 503, "ServiceUnavailable")
        _, msg = xml_error(r)
        assert "trustee" in msg.lower(), f"{what}: the 503 does not name the trustee: {msg!r}"
        assert took < 10, f"{what} took {took:.1f}s with the trustee dead"
        assert b"doc" not in r.content or what.startswith("Delete"), f"{what} named an object with the trustee dead"
        assert b"<Size>" not in r.content and b"<ETag>" not in r.content, f"{what}: {r.text[:300]}"
        assert empty.encode() not in r.content or what.startswith("DeleteBucket"), f"{what} named a bucket"

    s.start_trustee()
    deadline = time.monotonic() + 15
    while True:
        try:
            listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
            break
        except botocore.exceptions.ClientError:
            assert time.monotonic() < deadline, "listing did not come back after the trustee restarted"
            time.sleep(0.2)
    assert listed == ["doc"], "an object was deleted while the trustee was unreachable"
    assert s3.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"named data"
    uploads = [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    assert uploads == [uid], "the multipart upload was aborted while the trustee was unreachable"
    assert [p["PartNumber"] for p in s3.list_parts(Bucket=bucket, Key="up", UploadId=uid)["Parts"]] == [1]
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert bucket in names and empty in names, "a bucket was deleted while the trustee was unreachable"
    s3.head_bucket(Bucket=empty)


FIXTURES = Path(__file__).resolve().parents[2] / "crates" / "catalog" / "tests" / "fixtures"


def test_a_gateway_refuses_a_catalog_with_keys_in_clear_in_one_line_naming_the_upgrade(split: Split):
    """A catalog an earlier release wrote (S3 secrets in clear) needs the one-time upgrade that
    only `obhut serve` runs: a gateway refuses it in one line naming the commands, and loses
    nothing."""
    split.start_trustee()
    catalog = split.data_dir / "catalog.db"
    sidecars = [split.data_dir / f"catalog.db{suffix}" for suffix in ("-wal", "-shm")]
    current = {p: p.read_bytes() for p in [catalog, *sidecars] if p.exists()}
    fixture_secret = "fixture-secret-0123456789abcdefghijklmn"
    planted_id, planted_secret = "OBK" + "L" * 17, "legacy-secret-in-clear-0123456789abcd"

    def from_release_2():
        for p in sidecars:
            p.unlink(missing_ok=True)
        shutil.copyfile(FIXTURES / "catalog-v2.db", catalog)
        return "OBHUTFIXTUREKEY00001", fixture_secret

    def a_row_in_clear_added():
        for p in sidecars:
            p.unlink(missing_ok=True)
        for p, data in current.items():
            p.write_bytes(data)
        db = sqlite3.connect(catalog)
        try:
            db.execute("CREATE TABLE IF NOT EXISTS access_keys (access_key_id TEXT PRIMARY KEY, tenant TEXT NOT NULL,"
                       " secret TEXT NOT NULL, created_ms INTEGER NOT NULL)")
            db.execute("INSERT INTO access_keys VALUES (?, 'demo', ?, 0)", (planted_id, planted_secret))
            db.commit()
        finally:
            db.close()
        return planted_id, planted_secret

    config = split.gateway_config()
    for what, prepare in (("the catalog of release 2", from_release_2), ("a key in clear added", a_row_in_clear_added)):
        key_id, secret = prepare()
        r = split.run("gateway", "--config", str(config), timeout=60)
        assert_one_line_failure(r, f"gateway on {what}")
        line = r.stderr.strip()
        assert "in clear" in line, f"{what}: {line!r}"
        assert f"obhut serve --data-dir {split.data_dir}" in line, f"{what}: {line!r}"
        assert f"obhut catalog erase-legacy-keys --data-dir {split.data_dir}" in line, f"{what}: {line!r}"
        assert secret not in r.stderr and secret not in r.stdout, f"{what}: the secret was printed"
        # Nothing was lost: the key is still there for `obhut serve` to take into custody.
        db = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT secret FROM access_keys WHERE access_key_id = ?", (key_id,)).fetchall()
        finally:
            db.close()
        assert rows == [(secret,)], f"{what}: the refused start changed the key in clear: {rows}"
        # Nothing listens either.
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", split.s3_port), timeout=2).close()

    # The other way: once the keys in clear are erased, the gateway starts and serves.
    r = split.run("catalog", "erase-legacy-keys", "--data-dir", str(split.data_dir), timeout=60)
    assert r.returncode == 0, r.stderr
    split.start_gateway(config)
    bucket = unique_name("after-erase")
    split.s3().create_bucket(Bucket=bucket)
    put_get(split.s3(), bucket, "k", b"served after the erase")
