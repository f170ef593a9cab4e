"""S3 Object Lock through boto3 and aws-cli: buckets created with object lock (versioned for
good), their default retention, a version's retention (GOVERNANCE, COMPLIANCE) and legal hold
set by headers or by Put/GetObjectRetention and Put/GetObjectLegalHold, and the rule that a
version a lock holds is removed by nobody: not by the tenant's own key, not by a key without
s3:BypassGovernanceRetention, not by lifecycle, not by a crypto-shred of a COMPLIANCE-locked
tenant, and not after an edit of catalog.db (the lock record is the trustee's seal).
Retention changes and legal holds are log entries. (docs/s3-compatibility.md, "Object lock".)"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import sqlite3
import time
import zlib

import pytest

from conftest import parse_key_output
from gov_helpers import approved_grant, credentials, entries_of, grant_client, log_size, make_tenant, wait_until
from s3helpers import client_error, expect_error, unique_name


def lock_bucket(s3, prefix: str, default: dict | None = None) -> str:
    name = unique_name(prefix)
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    if default is not None:
        s3.put_object_lock_configuration(
            Bucket=name,
            ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": default}},
        )
    return name


def later(seconds: float) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)


def wait_past(when: dt.datetime) -> None:
    """Until `when` has passed (with a margin for the trustee's clock, the same machine's)."""
    while dt.datetime.now(dt.timezone.utc) < when + dt.timedelta(milliseconds=300):
        time.sleep(0.1)


def scoped(server, policy: dict, tmp_path) -> dict:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy))
    out = server.cli_ok("tenant", "key-create", "demo", "--policy", str(path), token=server.token("demo_admin"))
    keys = parse_key_output(out)
    keys["client"] = server.client(keys["AWS_ACCESS_KEY_ID"], keys["AWS_SECRET_ACCESS_KEY"])
    return keys


def everything_but_bypass(bucket: str) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:*", "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]},
            {"Effect": "Deny", "Action": "s3:BypassGovernanceRetention", "Resource": "*"},
        ],
    }


# ---------------------------------------------------------------- the bucket


def test_a_bucket_created_with_object_lock_stays_versioned_and_answers_its_configuration(s3):
    b = lock_bucket(s3, "olb")
    assert s3.get_bucket_versioning(Bucket=b)["Status"] == "Enabled"
    expect_error(s3.put_bucket_versioning, "InvalidBucketState", 409, Bucket=b,
                 VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket=b)["Status"] == "Enabled"
    conf = s3.get_object_lock_configuration(Bucket=b)["ObjectLockConfiguration"]
    assert conf == {"ObjectLockEnabled": "Enabled"}, conf
    s3.put_object_lock_configuration(Bucket=b, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 2}}})
    conf = s3.get_object_lock_configuration(Bucket=b)["ObjectLockConfiguration"]
    assert conf["Rule"]["DefaultRetention"] == {"Mode": "GOVERNANCE", "Days": 2}, conf
    for bad, code in (({"Mode": "GOVERNANCE", "Days": 2, "Years": 1}, "MalformedXML"),
                      ({"Mode": "GOVERNANCE", "Days": 0}, "InvalidArgument"),
                      ({"Mode": "FOREVER", "Days": 1}, {"InvalidArgument", "MalformedXML"})):
        expect_error(s3.put_object_lock_configuration, code, 400, Bucket=b, ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": bad}})
    assert s3.get_object_lock_configuration(Bucket=b)["ObjectLockConfiguration"]["Rule"]["DefaultRetention"] == {
        "Mode": "GOVERNANCE", "Days": 2}
    # The default goes again with a configuration without a rule.
    s3.put_object_lock_configuration(Bucket=b, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"})
    assert "Rule" not in s3.get_object_lock_configuration(Bucket=b)["ObjectLockConfiguration"]


def test_a_bucket_without_object_lock_has_none_and_takes_no_lock_headers(s3, bucket):
    expect_error(s3.get_object_lock_configuration, "ObjectLockConfigurationNotFoundError", 404, Bucket=bucket)
    expect_error(s3.put_object_lock_configuration, "InvalidBucketState", 409, Bucket=bucket,
                 ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"})
    expect_error(s3.put_object, "InvalidRequest", 400, Bucket=bucket, Key="k", Body=b"x",
                 ObjectLockLegalHoldStatus="ON")
    expect_error(s3.put_object, "InvalidRequest", 400, Bucket=bucket, Key="k", Body=b"x",
                 ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=later(60))
    expect_error(s3.head_object, "404", 404, Bucket=bucket, Key="k")
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    h = s3.head_object(Bucket=bucket, Key="k")
    assert "ObjectLockMode" not in h and "ObjectLockLegalHoldStatus" not in h, h


def test_lock_headers_are_checked_as_s3_checks_them(s3, raw):
    b = lock_bucket(s3, "olh")
    expect_error(s3.put_object, "InvalidArgument", 400, Bucket=b, Key="k", Body=b"x", ObjectLockMode="GOVERNANCE")
    expect_error(s3.put_object, "InvalidArgument", 400, Bucket=b, Key="k", Body=b"x",
                 ObjectLockRetainUntilDate=later(60))
    expect_error(s3.put_object, "InvalidArgument", 400, Bucket=b, Key="k", Body=b"x",
                 ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=later(-60))
    expect_error(s3.put_object, "InvalidArgument", 400, Bucket=b, Key="k", Body=b"x",
                 ObjectLockMode="FOREVER", ObjectLockRetainUntilDate=later(60))
    # Without Content-MD5 or a checksum header, as S3 requires of a write with lock headers.
    r = raw.request("PUT", b, "k", body=b"x", headers={"x-amz-object-lock-legal-hold": "ON"})
    assert r.status_code == 400 and b"<Code>InvalidRequest</Code>" in r.content, r.content
    md5 = base64.b64encode(hashlib.md5(b"x").digest()).decode()
    r = raw.request("PUT", b, "k", body=b"x", headers={"x-amz-object-lock-legal-hold": "ON", "Content-MD5": md5})
    assert r.status_code == 200, r.content
    assert s3.get_object_legal_hold(Bucket=b, Key="k")["LegalHold"]["Status"] == "ON"
    s3.put_object_legal_hold(Bucket=b, Key="k", LegalHold={"Status": "OFF"})


# ---------------------------------------------------------------- retention


def test_a_default_retention_applies_to_every_new_version(s3):
    b = lock_bucket(s3, "oldef", {"Mode": "GOVERNANCE", "Days": 1})
    v = s3.put_object(Bucket=b, Key="k", Body=b"kept")["VersionId"]
    h = s3.head_object(Bucket=b, Key="k", VersionId=v)
    assert h["ObjectLockMode"] == "GOVERNANCE" and h["ObjectLockLegalHoldStatus"] == "OFF", h
    assert h["ObjectLockRetainUntilDate"] > dt.datetime.now(dt.timezone.utc)
    r = s3.get_object_retention(Bucket=b, Key="k", VersionId=v)["Retention"]
    assert r["Mode"] == "GOVERNANCE" and r["RetainUntilDate"] == h["ObjectLockRetainUntilDate"]
    g = s3.get_object(Bucket=b, Key="k")
    assert g["ObjectLockMode"] == "GOVERNANCE" and g["Body"].read() == b"kept"
    expect_error(s3.delete_object, "AccessDenied", 403, Bucket=b, Key="k", VersionId=v)
    # Explicit headers beat the default.
    v2 = s3.put_object(Bucket=b, Key="k2", Body=b"x", ObjectLockMode="COMPLIANCE",
                       ObjectLockRetainUntilDate=later(30))["VersionId"]
    assert s3.get_object_retention(Bucket=b, Key="k2", VersionId=v2)["Retention"]["Mode"] == "COMPLIANCE"
    # A version without retention has none to answer.
    plain = lock_bucket(s3, "olnone")
    s3.put_object(Bucket=plain, Key="k", Body=b"x")
    expect_error(s3.get_object_retention, "NoSuchObjectLockConfiguration", 404, Bucket=plain, Key="k")
    # The governance default above goes with the bypass, by the tenant's own key.
    s3.delete_object(Bucket=b, Key="k", VersionId=v, BypassGovernanceRetention=True)


def test_compliance_is_removed_by_nobody_until_it_passes(s3):
    b = lock_bucket(s3, "olcomp")
    until = later(10)
    v = s3.put_object(Bucket=b, Key="k", Body=b"record", ObjectLockMode="COMPLIANCE",
                      ObjectLockRetainUntilDate=until)["VersionId"]
    expect_error(s3.delete_object, "AccessDenied", 403, Bucket=b, Key="k", VersionId=v)
    expect_error(s3.delete_object, "AccessDenied", 403, Bucket=b, Key="k", VersionId=v,
                 BypassGovernanceRetention=True)
    r = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "k", "VersionId": v}]},
                          BypassGovernanceRetention=True)
    assert [e["Code"] for e in r.get("Errors", [])] == ["AccessDenied"], r
    # Shortened, weakened or removed: never, bypass or not.
    for retention in ({"Mode": "COMPLIANCE", "RetainUntilDate": later(5)},
                      {"Mode": "GOVERNANCE", "RetainUntilDate": later(3600)}):
        expect_error(s3.put_object_retention, "AccessDenied", 403, Bucket=b, Key="k", VersionId=v,
                     Retention=retention, BypassGovernanceRetention=True)
    expect_error(s3.put_object_retention, "AccessDenied", 403, Bucket=b, Key="k", VersionId=v,
                 Retention={}, BypassGovernanceRetention=True)
    # Extended: always.
    until = later(12)
    s3.put_object_retention(Bucket=b, Key="k", VersionId=v,
                            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until})
    got = s3.get_object_retention(Bucket=b, Key="k", VersionId=v)["Retention"]
    assert got["Mode"] == "COMPLIANCE" and abs((got["RetainUntilDate"] - until).total_seconds()) < 1, got
    # A DELETE without a version id adds a delete marker, as S3 does; the version stays.
    m = s3.delete_object(Bucket=b, Key="k")
    assert m["DeleteMarker"] is True
    assert s3.get_object(Bucket=b, Key="k", VersionId=v)["Body"].read() == b"record"
    expect_error(s3.delete_object, "AccessDenied", 403, Bucket=b, Key="k", VersionId=v)
    wait_past(until)
    s3.delete_object(Bucket=b, Key="k", VersionId=v)
    expect_error(s3.head_object, "404", 404, Bucket=b, Key="k", VersionId=v)


def test_governance_is_bypassed_only_by_a_key_allowed_to_and_only_when_asked(server, s3, tmp_path):
    b = lock_bucket(s3, "olgov")
    v = s3.put_object(Bucket=b, Key="k", Body=b"x", ObjectLockMode="GOVERNANCE",
                      ObjectLockRetainUntilDate=later(3600))["VersionId"]
    limited = scoped(server, everything_but_bypass(b), tmp_path)["client"]
    # The limited key may read and extend, but not bypass.
    assert limited.get_object_retention(Bucket=b, Key="k", VersionId=v)["Retention"]["Mode"] == "GOVERNANCE"
    expect_error(limited.delete_object, "AccessDenied", 403, Bucket=b, Key="k", VersionId=v,
                 BypassGovernanceRetention=True)
    expect_error(limited.put_object_retention, "AccessDenied", 403, Bucket=b, Key="k", VersionId=v,
                 Retention={}, BypassGovernanceRetention=True)
    # Asking for the bypass without the permission refuses the whole request.
    expect_error(limited.delete_objects, "AccessDenied", 403, Bucket=b,
                 Delete={"Objects": [{"Key": "k", "VersionId": v}]}, BypassGovernanceRetention=True)
    r = limited.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "k", "VersionId": v}]})
    assert [e["Code"] for e in r.get("Errors", [])] == ["AccessDenied"], r
    # The tenant's own key without asking for the bypass: refused too.
    expect_error(s3.delete_object, "AccessDenied", 403, Bucket=b, Key="k", VersionId=v)
    expect_error(s3.put_object_retention, "AccessDenied", 403, Bucket=b, Key="k", VersionId=v,
                 Retention={"Mode": "GOVERNANCE", "RetainUntilDate": later(60)})
    # Asking, with the permission: shortened, then removed for good.
    start = log_size(server)
    s3.put_object_retention(Bucket=b, Key="k", VersionId=v, BypassGovernanceRetention=True,
                            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": later(1800)})
    entries = wait_until(lambda: entries_of(server, start, type="object_lock", bucket=b), 10, "the change in the log")
    assert entries[-1]["change"] == "retention" and entries[-1]["mode"] == "GOVERNANCE" and entries[-1]["bypass"] is True, entries
    s3.delete_object(Bucket=b, Key="k", VersionId=v, BypassGovernanceRetention=True)
    expect_error(s3.head_object, "404", 404, Bucket=b, Key="k", VersionId=v)


def test_lock_headers_on_a_write_need_their_own_permissions(server, s3, tmp_path):
    """A key that may only write cannot set a retention or a legal hold with its writes (a
    COMPLIANCE date far ahead would stop the tenant's shred for as long): S3 asks for
    s3:PutObjectRetention and s3:PutObjectLegalHold, and so does obhut."""
    b = lock_bucket(s3, "olperm")

    def key_with(*actions: str):
        return scoped(server, {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject", *actions],
                           "Resource": f"arn:aws:s3:::{b}/*"}],
        }, tmp_path)["client"]

    writer = key_with()
    expect_error(writer.put_object, "AccessDenied", 403, Bucket=b, Key="c", Body=b"x",
                 ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=later(3600))
    expect_error(writer.put_object, "AccessDenied", 403, Bucket=b, Key="h", Body=b"x",
                 ObjectLockLegalHoldStatus="ON")
    expect_error(writer.create_multipart_upload, "AccessDenied", 403, Bucket=b, Key="m",
                 ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=later(3600))
    writer.put_object(Bucket=b, Key="plain", Body=b"x")  # without lock headers: a write as any
    # Both ways: with the permission, the same writes are taken.
    retainer = key_with("s3:PutObjectRetention")
    v = retainer.put_object(Bucket=b, Key="c", Body=b"x", ObjectLockMode="GOVERNANCE",
                            ObjectLockRetainUntilDate=later(3600))["VersionId"]
    assert s3.get_object_retention(Bucket=b, Key="c", VersionId=v)["Retention"]["Mode"] == "GOVERNANCE"
    expect_error(retainer.put_object, "AccessDenied", 403, Bucket=b, Key="h", Body=b"x",
                 ObjectLockLegalHoldStatus="ON")
    holder = key_with("s3:PutObjectLegalHold")
    v = holder.put_object(Bucket=b, Key="h", Body=b"x", ObjectLockLegalHoldStatus="ON")["VersionId"]
    assert s3.get_object_legal_hold(Bucket=b, Key="h", VersionId=v)["LegalHold"]["Status"] == "ON"
    s3.put_object_legal_hold(Bucket=b, Key="h", VersionId=v, LegalHold={"Status": "OFF"})


def test_lock_headers_on_writes_are_refused_under_an_operators_grant(server):
    """The provider's staff write only under a grant; a lock they set would outlive the grant
    and a COMPLIANCE date could stop the tenant's shred: lock headers under a grant are refused
    (by the gateway, and by the trustee, which seals no lock headers signed with grant
    credentials). The same grant's plain writes are taken without a lock; under a bucket's
default retention they are refused too (the trustee seals no lock for a grant's request)."""
    t = make_tenant(server)
    b = unique_name("olgrant")
    t["client"].create_bucket(Bucket=b, ObjectLockEnabledForBucket=True)
    t["client"].put_object(Bucket=b, Key="doc", Body=b"tenant's")
    start = log_size(server)
    gid = approved_grant(server, {**t, "bucket": b}, "read,list,write")
    staff = grant_client(server, credentials(server, server.token("operator"), gid))
    until = later(3600)
    attempts = {
        "PutObject COMPLIANCE": lambda: staff.put_object(Bucket=b, Key="doc", Body=b"x", ObjectLockMode="COMPLIANCE",
                                                         ObjectLockRetainUntilDate=until),
        "PutObject GOVERNANCE": lambda: staff.put_object(Bucket=b, Key="g", Body=b"x", ObjectLockMode="GOVERNANCE",
                                                         ObjectLockRetainUntilDate=until),
        "PutObject legal hold": lambda: staff.put_object(Bucket=b, Key="h", Body=b"x",
                                                         ObjectLockLegalHoldStatus="ON"),
        "CopyObject COMPLIANCE": lambda: staff.copy_object(Bucket=b, Key="c", CopySource={"Bucket": b, "Key": "doc"},
                                                           ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until),
        "CreateMultipartUpload legal hold": lambda: staff.create_multipart_upload(Bucket=b, Key="m",
                                                                                  ObjectLockLegalHoldStatus="ON"),
    }
    for what, attempt in attempts.items():
        code, status, _ = client_error(attempt)
        assert (code, status) == ("AccessDenied", 403), (what, code, status)
    versions = t["client"].list_object_versions(Bucket=b).get("Versions", [])
    assert [v["Key"] for v in versions] == ["doc"], versions
    assert t["client"].list_multipart_uploads(Bucket=b).get("Uploads", []) == []
    assert entries_of(server, start, type="object_lock", bucket=b) == []
    # The trustee lists no locked version of the tenant (none could stop its shred).
    out = server.cli_ok("residency", "report", "--tenant", t["name"], "--verify", token=t["admin"])
    assert "locked versions (the trustee's list): 0 checked, 0 missing" in out, out
    # Both ways: the grant writes without lock headers, and its version has no lock.
    v = staff.put_object(Bucket=b, Key="plain", Body=b"x")["VersionId"]
    code, status, _ = client_error(t["client"].get_object_retention, Bucket=b, Key="plain", VersionId=v)
    assert (code, status) == ("NoSuchObjectLockConfiguration", 404), (code, status)
    # A bucket's default retention (which the catalog keeps) is not sealed for a grant either.
    t["client"].put_object_lock_configuration(Bucket=b, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
    code, status, _ = client_error(staff.put_object, Bucket=b, Key="plain2", Body=b"x")
    assert (code, status) == ("AccessDenied", 403), (code, status)
    keys = sorted(v["Key"] for v in t["client"].list_object_versions(Bucket=b).get("Versions", []))
    assert keys == ["doc", "plain"], keys
    assert entries_of(server, start, type="object_lock", bucket=b) == []
    # The tenant's own plain write takes the default.
    v = t["client"].put_object(Bucket=b, Key="own", Body=b"x")["VersionId"]
    assert t["client"].get_object_retention(Bucket=b, Key="own", VersionId=v)["Retention"]["Mode"] == "GOVERNANCE"


def test_a_retention_beyond_the_trustees_longest_is_invalid(s3):
    b = lock_bucket(s3, "olmax")
    beyond = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=36525 + 2)
    code, status, _ = client_error(s3.put_object, Bucket=b, Key="k", Body=b"x", ObjectLockMode="GOVERNANCE",
                                   ObjectLockRetainUntilDate=beyond)
    assert (code, status) == ("InvalidArgument", 400), (code, status)
    assert s3.list_object_versions(Bucket=b).get("Versions", []) == []
    # Within it, taken; extended beyond it, InvalidArgument, and the retention stays.
    v = s3.put_object(Bucket=b, Key="k", Body=b"x", ObjectLockMode="GOVERNANCE",
                      ObjectLockRetainUntilDate=later(3600))["VersionId"]
    code, status, _ = client_error(s3.put_object_retention, Bucket=b, Key="k", VersionId=v,
                                   Retention={"Mode": "GOVERNANCE", "RetainUntilDate": beyond})
    assert (code, status) == ("InvalidArgument", 400), (code, status)
    kept = s3.get_object_retention(Bucket=b, Key="k", VersionId=v)["Retention"]["RetainUntilDate"]
    assert kept < later(7200), kept


def test_the_longest_retention_is_configured(private_server_factory):
    srv = private_server_factory(config="max_retention_days = 2\n")
    s3 = srv.client()
    b = lock_bucket(s3, "olmaxcfg")
    code, status, _ = client_error(s3.put_object, Bucket=b, Key="k", Body=b"x", ObjectLockMode="GOVERNANCE",
                                   ObjectLockRetainUntilDate=later(3 * 86400))
    assert (code, status) == ("InvalidArgument", 400), (code, status)
    s3.put_object(Bucket=b, Key="k", Body=b"x", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=later(86400))


def test_a_legal_hold_holds_until_it_is_lifted_and_both_are_logged(server, s3, aws):
    b = lock_bucket(s3, "olhold")
    start = log_size(server)
    v = s3.put_object(Bucket=b, Key="k", Body=b"x", ObjectLockLegalHoldStatus="ON")["VersionId"]
    assert s3.head_object(Bucket=b, Key="k")["ObjectLockLegalHoldStatus"] == "ON"
    expect_error(s3.delete_object, "AccessDenied", 403, Bucket=b, Key="k", VersionId=v,
                 BypassGovernanceRetention=True)
    # aws-cli reads and lifts it.
    out = json.loads(aws("s3api", "get-object-legal-hold", "--bucket", b, "--key", "k").stdout)
    assert out["LegalHold"]["Status"] == "ON", out
    aws("s3api", "put-object-legal-hold", "--bucket", b, "--key", "k", "--version-id", v,
        "--legal-hold", "Status=OFF")
    assert s3.get_object_legal_hold(Bucket=b, Key="k", VersionId=v)["LegalHold"]["Status"] == "OFF"
    entries = entries_of(server, start, type="object_lock", bucket=b)
    assert [(e["change"], e["legal_hold"]) for e in entries] == [("written", True), ("legal_hold", False)], entries
    assert all(e["version_id"] == v and e["key"] == "k" for e in entries), entries
    s3.delete_object(Bucket=b, Key="k", VersionId=v)
    expect_error(s3.put_object_legal_hold, "NoSuchVersion", 404, Bucket=b, Key="k", VersionId=v,
                 LegalHold={"Status": "ON"})


def test_a_retention_or_legal_hold_is_changed_only_by_a_body_its_signature_binds(s3, raw, aws):
    """The trustee reads the body of a retention or legal hold request itself, bound by what
    the request signed: its SHA-256 (as boto3 and aws-cli sign it), else a signed Content-MD5
    or SHA checksum. A request that signs UNSIGNED-PAYLOAD with a CRC32 only is InvalidRequest,
    naming what to send, and changes nothing."""
    b = lock_bucket(s3, "olbind")
    v = s3.put_object(Bucket=b, Key="k", Body=b"x", ObjectLockMode="GOVERNANCE",
                      ObjectLockRetainUntilDate=later(3600))["VersionId"]
    ns = "http://s3.amazonaws.com/doc/2006-03-01/"
    on = f'<LegalHold xmlns="{ns}"><Status>ON</Status></LegalHold>'.encode()
    query = [("legal-hold", ""), ("versionId", v)]
    crc = base64.b64encode(zlib.crc32(on).to_bytes(4, "big")).decode()
    r = raw.request("PUT", b, "k", query=query, body=on, payload_hash="UNSIGNED-PAYLOAD",
                    headers={"x-amz-checksum-crc32": crc, "x-amz-sdk-checksum-algorithm": "CRC32"})
    assert r.status_code == 400 and b"<Code>InvalidRequest</Code>" in r.content, r.content
    assert b"x-amz-content-sha256" in r.content and b"Content-MD5" in r.content, r.content
    assert s3.get_object_legal_hold(Bucket=b, Key="k", VersionId=v)["LegalHold"]["Status"] == "OFF"
    # A body other than the one whose SHA-256 was signed.
    r = raw.request("PUT", b, "k", query=query, body=on,
                    payload_hash=hashlib.sha256(on.replace(b"ON", b"OFF")).hexdigest())
    assert r.status_code == 400 and b"XAmzContentSHA256Mismatch" in r.content, r.content
    assert s3.get_object_legal_hold(Bucket=b, Key="k", VersionId=v)["LegalHold"]["Status"] == "OFF"
    # Both ways: a signed Content-MD5 or SHA-256 checksum binds it without a payload hash.
    md5 = base64.b64encode(hashlib.md5(on).digest()).decode()
    r = raw.request("PUT", b, "k", query=query, body=on, payload_hash="UNSIGNED-PAYLOAD",
                    headers={"Content-MD5": md5})
    assert r.status_code == 200, r.content
    assert s3.get_object_legal_hold(Bucket=b, Key="k", VersionId=v)["LegalHold"]["Status"] == "ON"
    off = on.replace(b"ON", b"OFF")
    sha = base64.b64encode(hashlib.sha256(off).digest()).decode()
    r = raw.request("PUT", b, "k", query=query, body=off, payload_hash="UNSIGNED-PAYLOAD",
                    headers={"x-amz-checksum-sha256": sha, "x-amz-sdk-checksum-algorithm": "SHA256"})
    assert r.status_code == 200, r.content
    assert s3.get_object_legal_hold(Bucket=b, Key="k", VersionId=v)["LegalHold"]["Status"] == "OFF"
    # boto3 and aws-cli sign the body's SHA-256 (beside a CRC32): both work unchanged.
    until = later(7200).replace(microsecond=0)
    s3.put_object_retention(Bucket=b, Key="k", VersionId=v,
                            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until})
    assert s3.get_object_retention(Bucket=b, Key="k", VersionId=v)["Retention"]["RetainUntilDate"] == until
    until = until + dt.timedelta(hours=1)
    aws("s3api", "put-object-retention", "--bucket", b, "--key", "k", "--version-id", v,
        "--retention", f"Mode=GOVERNANCE,RetainUntilDate={until.strftime('%Y-%m-%dT%H:%M:%SZ')}")
    assert s3.get_object_retention(Bucket=b, Key="k", VersionId=v)["Retention"]["RetainUntilDate"] == until
    s3.put_object_legal_hold(Bucket=b, Key="k", VersionId=v, LegalHold={"Status": "ON"})
    aws("s3api", "put-object-legal-hold", "--bucket", b, "--key", "k", "--version-id", v,
        "--legal-hold", "Status=OFF")
    assert s3.get_object_legal_hold(Bucket=b, Key="k", VersionId=v)["LegalHold"]["Status"] == "OFF"


def test_copies_and_multipart_uploads_take_their_own_lock(s3):
    b = lock_bucket(s3, "olcopy")
    src = s3.put_object(Bucket=b, Key="src", Body=b"source", ObjectLockLegalHoldStatus="ON")["VersionId"]
    # A copy has no lock of its source's; its own headers give it one.
    c1 = s3.copy_object(Bucket=b, Key="c1", CopySource={"Bucket": b, "Key": "src"})["VersionId"]
    assert s3.get_object_legal_hold(Bucket=b, Key="c1", VersionId=c1)["LegalHold"]["Status"] == "OFF"
    c2 = s3.copy_object(Bucket=b, Key="c2", CopySource={"Bucket": b, "Key": "src"}, ObjectLockMode="COMPLIANCE",
                        ObjectLockRetainUntilDate=later(3600))["VersionId"]
    assert s3.get_object_retention(Bucket=b, Key="c2", VersionId=c2)["Retention"]["Mode"] == "COMPLIANCE"
    expect_error(s3.delete_object, "AccessDenied", 403, Bucket=b, Key="c2", VersionId=c2)
    s3.delete_object(Bucket=b, Key="c1", VersionId=c1)
    up = s3.create_multipart_upload(Bucket=b, Key="big", ObjectLockLegalHoldStatus="ON")["UploadId"]
    part = s3.upload_part(Bucket=b, Key="big", UploadId=up, PartNumber=1, Body=b"p" * 1024)
    done = s3.complete_multipart_upload(Bucket=b, Key="big", UploadId=up,
                                        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    vid = done["VersionId"]
    assert s3.head_object(Bucket=b, Key="big", VersionId=vid)["ObjectLockLegalHoldStatus"] == "ON"
    expect_error(s3.delete_object, "AccessDenied", 403, Bucket=b, Key="big", VersionId=vid)
    s3.put_object_legal_hold(Bucket=b, Key="src", VersionId=src, LegalHold={"Status": "OFF"})
    s3.delete_object(Bucket=b, Key="src", VersionId=src)


def test_a_presigned_write_seals_a_lock_only_in_its_first_minutes(s3, bucket, monkeypatch):
    """A presigned URL is valid up to 7 days, and the same signed bytes may be sent again: the
    trustee remembers which version a signed request sealed for 30 minutes, so a request seals a
    lock (a bucket with object lock gives every version one) only within 15 minutes of its
    signature's date. Later, the URL writes to a bucket without object lock only."""
    import botocore.auth
    import requests

    b = lock_bucket(s3, "olpresign")
    fresh = s3.generate_presigned_url("put_object", Params={"Bucket": b, "Key": "k"}, ExpiresIn=3600)
    r = requests.put(fresh, data=b"x", timeout=30)
    assert r.status_code == 200, r.text
    # Signed 20 minutes ago (botocore's clock, naive UTC as it reads it).
    signed_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(minutes=20)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *_, **__: signed_at)
    old = s3.generate_presigned_url("put_object", Params={"Bucket": b, "Key": "k"}, ExpiresIn=3600)
    old_plain = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=3600)
    monkeypatch.undo()
    r = requests.put(old, data=b"y", timeout=30)
    assert r.status_code == 403, r.text
    assert "<Code>AccessDenied</Code>" in r.text, r.text
    assert len(s3.list_object_versions(Bucket=b).get("Versions", [])) == 1
    r = requests.put(old_plain, data=b"y", timeout=30)
    assert r.status_code == 200, r.text


# ---------------------------------------------------------------- the catalog is not obeyed


def test_an_edited_or_removed_lock_record_is_detected_and_the_version_kept(private_server):
    srv = private_server
    s3 = srv.client()
    b = lock_bucket(s3, "oltamper")
    held = s3.put_object(Bucket=b, Key="held", Body=b"evidence", ObjectLockLegalHoldStatus="ON")["VersionId"]
    gone = s3.put_object(Bucket=b, Key="gone", Body=b"evidence 2", ObjectLockLegalHoldStatus="ON")["VersionId"]
    free = s3.put_object(Bucket=b, Key="free", Body=b"not held")["VersionId"]
    start = log_size(srv)
    srv.stop_ok()
    db = sqlite3.connect(srv.data_dir / "catalog.db")
    try:
        # The provider's admin gives `held` the record of the unheld version, and removes the
        # record of `gone` altogether.
        db.execute(
            "UPDATE object_locks SET record = (SELECT record FROM object_locks WHERE bucket = ? AND version_id = ?) "
            "WHERE bucket = ? AND version_id = ?",
            (b, free, b, held),
        )
        db.execute("DELETE FROM object_locks WHERE bucket = ? AND version_id = ?", (b, gone))
        assert db.total_changes == 2
        db.commit()
    finally:
        db.close()
    srv.start()
    s3 = srv.client()
    for key, vid in (("held", held), ("gone", gone)):
        code, status, _ = client_error(s3.delete_object, Bucket=b, Key=key, VersionId=vid)
        assert (code, status) == ("InvalidObjectState", 409), (key, code, status)
        code, _, _ = client_error(s3.put_object_legal_hold, Bucket=b, Key=key, VersionId=vid,
                                  LegalHold={"Status": "OFF"})
        assert code == "InvalidObjectState", (key, code)
        code, _, _ = client_error(s3.get_object, Bucket=b, Key=key, VersionId=vid)
        assert code == "InvalidObjectState", (key, code)
    alarms = wait_until(lambda: entries_of(srv, start, type="integrity_alarm", bucket=b), 10, "the integrity alarms")
    assert {a["key"] for a in alarms} == {"held", "gone"}, alarms
    # The untouched version is removed as before.
    s3.delete_object(Bucket=b, Key="free", VersionId=free)


def test_a_default_retention_edited_in_the_catalog_is_not_sealed(private_server):
    """The provider's admin edits a bucket's default retention in the catalog: a GOVERNANCE
    day becomes ten years of COMPLIANCE (which would stop the tenant's shred), and a bucket
    the tenant gave no default gets one. The tenant's writes without lock headers are not
    sealed with it (AccessDenied) and leave no version. A bucket whose default the trustee
    never saw (set before the release that keeps it: no row in governance.db) refuses such a
    write with InvalidRequest naming PutObjectLockConfiguration, never dropping the default
    silently. Both ways: the default the tenant sets through boto3 is applied."""
    srv = private_server
    s3 = srv.client()
    day = lock_bucket(s3, "oldefault", {"Mode": "GOVERNANCE", "Days": 1})
    before = dt.datetime.now(dt.timezone.utc)
    v = s3.put_object(Bucket=day, Key="k", Body=b"x")["VersionId"]
    r = s3.get_object_retention(Bucket=day, Key="k", VersionId=v)["Retention"]
    assert r["Mode"] == "GOVERNANCE", r
    assert before + dt.timedelta(days=1) - dt.timedelta(minutes=1) <= r["RetainUntilDate"] \
        <= dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1, minutes=1), r
    bare = lock_bucket(s3, "olnodefault")
    s3.put_object(Bucket=bare, Key="k", Body=b"x")
    legacy = lock_bucket(s3, "ollegacy", {"Mode": "GOVERNANCE", "Days": 1})
    srv.stop_ok()
    db = sqlite3.connect(srv.data_dir / "catalog.db")
    try:
        forged = json.dumps({"v": 1, "default": {"mode": "COMPLIANCE", "days": 3650}}).encode()
        for b in (day, bare):
            db.execute("UPDATE bucket_configs SET config = ? WHERE bucket = ? AND kind = 'object_lock'", (forged, b))
        assert db.total_changes == 2
        db.commit()
    finally:
        db.close()
    # `legacy` as a bucket whose default was set before the trustee kept defaults.
    gov = sqlite3.connect(srv.data_dir / "trustee" / "governance.db")
    try:
        gov.execute("DELETE FROM bucket_lock_defaults WHERE bucket = ?", (legacy,))
        assert gov.total_changes == 1
        gov.commit()
    finally:
        gov.close()
    srv.start()
    s3 = srv.client()
    assert s3.get_object_lock_configuration(Bucket=day)["ObjectLockConfiguration"]["Rule"]["DefaultRetention"] \
        == {"Mode": "COMPLIANCE", "Days": 3650}
    for b in (day, bare):
        expect_error(s3.put_object, "AccessDenied", 403, Bucket=b, Key="k", Body=b"y")
        assert len(s3.list_object_versions(Bucket=b)["Versions"]) == 1
    code, status, response = client_error(s3.put_object, Bucket=legacy, Key="k", Body=b"y")
    assert (code, status) == ("InvalidRequest", 400), (code, status, response)
    assert "PutObjectLockConfiguration" in response["Error"]["Message"], response
    assert "Versions" not in s3.list_object_versions(Bucket=legacy)
    # Both ways: a write with its own lock headers is taken, and the tenant setting its default
    # (again, through boto3) is what a plain write then gets.
    s3.put_object(Bucket=day, Key="k", Body=b"z", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=later(60))
    for b in (day, legacy):
        s3.put_object_lock_configuration(
            Bucket=b, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled",
                                               "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 2}}})
        v = s3.put_object(Bucket=b, Key="k", Body=b"w")["VersionId"]
        r = s3.get_object_retention(Bucket=b, Key="k", VersionId=v)["Retention"]
        assert r["Mode"] == "GOVERNANCE" and r["RetainUntilDate"] > later(86400 * 2 - 120), r


def test_an_older_lock_record_put_back_in_the_catalog_does_not_weaken_a_change(private_server):
    """The provider's admin keeps a version's record from while its retention was GOVERNANCE and
    puts it back after the tenant made it COMPLIANCE: the trustee judges a change only against
    the latest record it sealed, so the retention cannot be bypassed away."""
    srv = private_server
    s3 = srv.client()
    b = lock_bucket(s3, "olreplay")
    until = later(3600).replace(microsecond=0)
    vid = s3.put_object(Bucket=b, Key="k", Body=b"evidence", ObjectLockMode="GOVERNANCE",
                        ObjectLockRetainUntilDate=until)["VersionId"]

    def record() -> bytes:
        db = sqlite3.connect(srv.data_dir / "catalog.db")
        try:
            (rec,) = db.execute("SELECT record FROM object_locks WHERE bucket = ? AND version_id = ?",
                                (b, vid)).fetchone()
            return rec
        finally:
            db.close()

    governance = record()
    # Both ways: the tenant's change to COMPLIANCE is sealed.
    s3.put_object_retention(Bucket=b, Key="k", VersionId=vid, Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until})
    assert record() != governance
    srv.stop_ok()
    db = sqlite3.connect(srv.data_dir / "catalog.db")
    try:
        db.execute("UPDATE object_locks SET record = ? WHERE bucket = ? AND version_id = ?", (governance, b, vid))
        assert db.total_changes == 1
        db.commit()
    finally:
        db.close()
    srv.start()
    s3 = srv.client()
    # Judged against the GOVERNANCE record, the bypass would remove the retention: refused.
    code, status, _ = client_error(s3.put_object_retention, Bucket=b, Key="k", VersionId=vid,
                                   Retention={}, BypassGovernanceRetention=True)
    assert (code, status) == ("AccessDenied", 403), (code, status)
    code, _, _ = client_error(s3.put_object_retention, Bucket=b, Key="k", VersionId=vid,
                              Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until},
                              BypassGovernanceRetention=True)
    assert code == "AccessDenied", code
    # Nor is the version removed with the bypass: the trustee answers the latest state it sealed.
    code, status, _ = client_error(s3.delete_object, Bucket=b, Key="k", VersionId=vid, BypassGovernanceRetention=True)
    assert (code, status) == ("AccessDenied", 403), (code, status)
    assert s3.get_object_retention(Bucket=b, Key="k", VersionId=vid)["Retention"]["Mode"] == "COMPLIANCE"
    # The latest state asked again is sealed (a change whose record the catalog missed), and
    # then the retention is extended as usual.
    s3.put_object_retention(Bucket=b, Key="k", VersionId=vid, Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until})
    s3.put_object_retention(Bucket=b, Key="k", VersionId=vid,
                            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until + dt.timedelta(hours=1)})
    got = s3.get_object_retention(Bucket=b, Key="k", VersionId=vid)["Retention"]
    assert got["Mode"] == "COMPLIANCE", got


# ---------------------------------------------------------------- lifecycle and crypto-shred


def test_lifecycle_never_removes_a_locked_version(private_server_factory):
    srv = private_server_factory(env={"OBHUT_LIFECYCLE_DAY_MS": "1000", "OBHUT_LIFECYCLE_EVERY_MS": "300"})
    s3 = srv.client()
    b = lock_bucket(s3, "ollc")
    held = s3.put_object(Bucket=b, Key="doc", Body=b"held", ObjectLockLegalHoldStatus="ON")["VersionId"]
    kept = s3.put_object(Bucket=b, Key="doc", Body=b"retained", ObjectLockMode="GOVERNANCE",
                         ObjectLockRetainUntilDate=later(3600))["VersionId"]
    free = s3.put_object(Bucket=b, Key="doc", Body=b"free")["VersionId"]
    s3.put_object(Bucket=b, Key="doc", Body=b"current")
    s3.put_bucket_lifecycle_configuration(Bucket=b, LifecycleConfiguration={"Rules": [
        {"ID": "old", "Status": "Enabled", "Filter": {}, "NoncurrentVersionExpiration": {"NoncurrentDays": 1}}]})

    def versions():
        return {v["VersionId"] for v in s3.list_object_versions(Bucket=b).get("Versions", [])}

    wait_until(lambda: free not in versions(), 30, "the unlocked noncurrent version to expire")
    left = versions()
    assert held in left and kept in left, left
    assert s3.get_object(Bucket=b, Key="doc", VersionId=held)["Body"].read() == b"held"


def test_a_crypto_shred_of_a_tenant_under_compliance_is_refused_until_it_passes(private_server):
    srv = private_server
    s3 = srv.client()
    b = lock_bucket(s3, "olshred")
    until = later(5)
    for k in ("a", "b"):
        s3.put_object(Bucket=b, Key=k, Body=b"x", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until)
    # Governance and legal holds do not stop a shred; they are not counted.
    s3.put_object(Bucket=b, Key="g", Body=b"x", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=later(3600))
    r = srv.cli("tenant", "shred", "demo", "--now", token=srv.token("officer1"))
    assert r.returncode != 0, r.stdout
    assert "2 object version(s)" in r.stderr and until.strftime("%Y-%m-%dT%H:%M") in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    # Nothing was shredded: the tenant reads on.
    assert s3.get_object(Bucket=b, Key="a")["Body"].read() == b"x"
    wait_past(until)
    out = srv.cli_ok("tenant", "shred", "demo", "--now", token=srv.token("officer1"))
    assert "2 object version(s)" not in out, out


def test_a_locked_version_removed_from_the_catalog_is_reported_by_a_verified_residency_report(private_server):
    srv = private_server
    s3 = srv.client()
    b = lock_bucket(s3, "olres")
    held = s3.put_object(Bucket=b, Key="k", Body=b"evidence", ObjectLockLegalHoldStatus="ON")["VersionId"]
    s3.put_object(Bucket=b, Key="k", Body=b"newer, unlocked")
    out = srv.cli_ok("residency", "report", "--tenant", "demo", "--verify", token=srv.token("demo_admin"))
    assert "locked versions (the trustee's list): 1 checked, 0 missing" in out, out
    srv.stop_ok()
    db = sqlite3.connect(srv.data_dir / "catalog.db")
    try:
        # The provider's admin removes the held version and its lock record for good.
        db.execute("DELETE FROM object_versions WHERE bucket = ? AND version_id = ?", (b, held))
        db.execute("DELETE FROM object_locks WHERE bucket = ? AND version_id = ?", (b, held))
        assert db.total_changes == 2
        db.commit()
    finally:
        db.close()
    srv.start()
    r = srv.cli("residency", "report", "--tenant", "demo", "--verify", token=srv.token("demo_admin"))
    assert r.returncode != 0, r.stdout
    assert "1 checked, 1 missing" in r.stdout, r.stdout
    assert "1 locked version(s) are missing from the catalog" in r.stderr, r.stderr
