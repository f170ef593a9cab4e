"""Scoped access keys, bucket policies, Block Public Access and ACLs under enforced ownership,
through boto3 and aws-cli, each decision tried both ways.

A tenant's admin makes keys limited by a preset (`--read-only`, `--write-only`, `--no-delete`,
`--backup`, `--bucket`, `--prefix`) or an IAM policy file; the trustee keeps the policy bound
to the key's sealed secret, so an edit of access-keys.db that widens it (or drops it) is
refused and raises an alarm. Bucket policies only narrow a tenant's own keys: an explicit Deny
beats a key's Allow, conditions on aws:SourceIp and aws:SecureTransport decide both ways, and
naming another tenant's key or "*" never lets anyone outside the tenant in.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import botocore.exceptions
import pytest
import requests

from conftest import aws_env, parse_key_output, run_aws
from gov_helpers import entries_of, log_size, make_tenant
from s3helpers import assert_s3_error, unique_name
from split_helpers import running_split, split  # noqa: F401 (fixtures)
from conftest import s3_client


def scoped_key(server, *options: str) -> dict:
    """A new key of tenant demo with these key-create options, made by demo's admin."""
    out = server.cli_ok("tenant", "key-create", "demo", *options, token=server.token("demo_admin"))
    keys = parse_key_output(out)
    keys["client"] = server.client(keys["AWS_ACCESS_KEY_ID"], keys["AWS_SECRET_ACCESS_KEY"])
    return keys


def denied(call, code: str = "AccessDenied") -> None:
    """`call()` fails with this S3 error code."""
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call()
    assert e.value.response["Error"]["Code"] == code, e.value.response


def aws_as(server, key: dict, *args: str, check: bool = True):
    env = aws_env(server, AWS_ACCESS_KEY_ID=key["AWS_ACCESS_KEY_ID"],
                  AWS_SECRET_ACCESS_KEY=key["AWS_SECRET_ACCESS_KEY"])
    return run_aws(server, *args, env=env, check=check)


def sql(path: Path, statement: str, *args) -> None:
    db = sqlite3.connect(path, timeout=30)
    try:
        db.execute(statement, args)
        db.commit()
    finally:
        db.close()


@pytest.fixture
def filled(s3, request) -> str:
    """A bucket of demo with a few objects."""
    name = unique_name(request.node.name[:20])
    s3.create_bucket(Bucket=name)
    for k in ("home/a", "home/b", "etc/c"):
        s3.put_object(Bucket=name, Key=k, Body=k.encode())
    return name


def test_a_read_only_key_reads_and_lists_its_bucket_and_nothing_else(server, s3, filled, tmp_path):
    other = unique_name("other")
    s3.create_bucket(Bucket=other)
    s3.put_object(Bucket=other, Key="x", Body=b"x")
    key = scoped_key(server, "--read-only", "--bucket", filled)
    c = key["client"]
    assert c.get_object(Bucket=filled, Key="home/a")["Body"].read() == b"home/a"
    assert c.head_object(Bucket=filled, Key="etc/c")["ContentLength"] == 5
    assert {o["Key"] for o in c.list_objects_v2(Bucket=filled)["Contents"]} == {"home/a", "home/b", "etc/c"}
    denied(lambda: c.put_object(Bucket=filled, Key="new", Body=b"x"))
    denied(lambda: c.delete_object(Bucket=filled, Key="home/a"))
    denied(lambda: c.get_object(Bucket=other, Key="x"))
    denied(lambda: c.list_objects_v2(Bucket=other))
    denied(lambda: c.create_bucket(Bucket=unique_name("nope")))
    # Nothing changed.
    assert {o["Key"] for o in s3.list_objects_v2(Bucket=filled)["Contents"]} == {"home/a", "home/b", "etc/c"}
    # aws-cli, both ways.
    dest = tmp_path / "a"
    aws_as(server, key, "s3", "cp", f"s3://{filled}/home/a", str(dest))
    assert dest.read_bytes() == b"home/a"
    r = aws_as(server, key, "s3", "cp", str(dest), f"s3://{filled}/uploaded", check=False)
    assert r.returncode != 0 and "AccessDenied" in r.stderr, r.stderr
    r = aws_as(server, key, "s3", "ls", f"s3://{other}/", check=False)
    assert r.returncode != 0 and "AccessDenied" in r.stderr, r.stderr


def test_a_write_only_key_writes_but_never_reads_lists_or_deletes(server, s3, filled, tmp_path):
    key = scoped_key(server, "--write-only", "--bucket", filled)
    c = key["client"]
    c.put_object(Bucket=filled, Key="drop/1", Body=b"one")
    # A multipart upload is a write too.
    up = c.create_multipart_upload(Bucket=filled, Key="drop/big")
    part = c.upload_part(Bucket=filled, Key="drop/big", UploadId=up["UploadId"], PartNumber=1, Body=b"p" * 10)
    c.complete_multipart_upload(Bucket=filled, Key="drop/big", UploadId=up["UploadId"],
                                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert s3.get_object(Bucket=filled, Key="drop/1")["Body"].read() == b"one"
    denied(lambda: c.get_object(Bucket=filled, Key="drop/1"))
    denied(lambda: c.list_objects_v2(Bucket=filled))
    denied(lambda: c.delete_object(Bucket=filled, Key="drop/1"))
    src = tmp_path / "f"
    src.write_bytes(b"via aws-cli")
    aws_as(server, key, "s3", "cp", str(src), f"s3://{filled}/drop/cli")
    assert s3.get_object(Bucket=filled, Key="drop/cli")["Body"].read() == b"via aws-cli"
    r = aws_as(server, key, "s3", "cp", f"s3://{filled}/drop/cli", str(tmp_path / "g"), check=False)
    assert r.returncode != 0, r.stdout
    assert not (tmp_path / "g").exists()


def test_a_no_delete_key_does_everything_but_delete(server, s3, filled):
    key = scoped_key(server, "--no-delete")
    c = key["client"]
    c.put_object(Bucket=filled, Key="kept", Body=b"k")
    assert c.get_object(Bucket=filled, Key="kept")["Body"].read() == b"k"
    c.copy_object(Bucket=filled, Key="kept-copy", CopySource={"Bucket": filled, "Key": "kept"})
    denied(lambda: c.delete_object(Bucket=filled, Key="kept"))
    out = c.delete_objects(Bucket=filled, Delete={"Objects": [{"Key": "kept"}, {"Key": "home/a"}]})
    assert {e["Key"]: e["Code"] for e in out.get("Errors", [])} == {"kept": "AccessDenied", "home/a": "AccessDenied"}
    assert not out.get("Deleted")
    denied(lambda: c.delete_bucket(Bucket=filled))
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=filled)["Contents"]}
    assert {"kept", "kept-copy", "home/a"} <= keys
    # Its own bucket it can make, but not remove.
    mine = unique_name("nd")
    c.create_bucket(Bucket=mine)
    denied(lambda: c.delete_bucket(Bucket=mine))
    s3.delete_bucket(Bucket=mine)


def test_a_bucket_and_prefix_key_stays_under_its_prefix(server, s3, filled):
    key = scoped_key(server, "--bucket", filled, "--prefix", "home/")
    c = key["client"]
    c.put_object(Bucket=filled, Key="home/new", Body=b"n")
    assert c.get_object(Bucket=filled, Key="home/a")["Body"].read() == b"home/a"
    c.delete_object(Bucket=filled, Key="home/new")
    denied(lambda: c.put_object(Bucket=filled, Key="etc/new", Body=b"n"))
    denied(lambda: c.get_object(Bucket=filled, Key="etc/c"))
    denied(lambda: c.delete_object(Bucket=filled, Key="etc/c"))
    # Copying out of the prefix reads outside it: refused.
    denied(lambda: c.copy_object(Bucket=filled, Key="home/stolen", CopySource={"Bucket": filled, "Key": "etc/c"}))
    assert {o["Key"] for o in c.list_objects_v2(Bucket=filled, Prefix="home/")["Contents"]} == {"home/a", "home/b"}
    denied(lambda: c.list_objects_v2(Bucket=filled))
    denied(lambda: c.list_objects_v2(Bucket=filled, Prefix="etc/"))
    out = aws_as(server, key, "s3", "ls", f"s3://{filled}/home/").stdout
    assert "a" in out and "etc" not in out, out
    r = aws_as(server, key, "s3", "ls", f"s3://{filled}/", check=False)
    assert r.returncode != 0 and "AccessDenied" in r.stderr, r.stderr
    out = s3.delete_objects(Bucket=filled, Delete={"Objects": [{"Key": "home/new"}]})
    assert not out.get("Errors")


LIFECYCLE_EXPIRING_EVERYTHING = {"Rules": [{
    "ID": "all", "Status": "Enabled", "Filter": {},
    "Expiration": {"Days": 1}, "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
}]}


def test_keys_that_may_not_delete_may_not_set_what_deletes_for_them(server, s3, filled):
    """Lifecycle rules, versioning and the bucket policy delete or expose by other means: a
    no-delete key, and a key limited to a prefix, change none of them for the whole bucket."""
    for key in (scoped_key(server, "--no-delete"),
                scoped_key(server, "--bucket", filled, "--prefix", "home/"),
                scoped_key(server, "--no-delete", "--bucket", filled, "--prefix", "home/")):
        c = key["client"]
        denied(lambda: c.put_bucket_lifecycle_configuration(
            Bucket=filled, LifecycleConfiguration=LIFECYCLE_EXPIRING_EVERYTHING))
        denied(lambda: c.put_bucket_versioning(
            Bucket=filled, VersioningConfiguration={"Status": "Suspended"}))
        denied(lambda: c.put_bucket_policy(Bucket=filled, Policy=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",
                                                   "Action": "s3:GetObject",
                                                   "Resource": f"arn:aws:s3:::{filled}/*",
                                                   "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.1/32"}}}]})))
    # The key of the whole tenant may (the other side of the decision).
    s3.put_bucket_lifecycle_configuration(Bucket=filled, LifecycleConfiguration=LIFECYCLE_EXPIRING_EVERYTHING)
    s3.delete_bucket_lifecycle(Bucket=filled)


def test_a_prefix_without_a_bucket_is_refused_since_it_would_limit_nothing(server):
    for preset in ((), ("--read-only",), ("--no-delete",), ("--backup",)):
        r = server.cli("tenant", "key-create", "demo", *preset, "--prefix", "home/alice/",
                       token=server.token("demo_admin"))
        assert r.returncode != 0, r.stdout
        assert "--bucket" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_key_with_a_policy_file_is_held_to_it(server, s3, filled, tmp_path):
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ReadHome", "Effect": "Allow", "Action": ["s3:GetObject"],
             "Resource": [f"arn:aws:s3:::{filled}/home/*"]},
            {"Sid": "NotB", "Effect": "Deny", "Action": "s3:*", "Resource": f"arn:aws:s3:::{filled}/home/b"},
        ],
    }
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy))
    key = scoped_key(server, "--policy", str(path))
    c = key["client"]
    assert c.get_object(Bucket=filled, Key="home/a")["Body"].read() == b"home/a"
    denied(lambda: c.get_object(Bucket=filled, Key="home/b"))
    denied(lambda: c.get_object(Bucket=filled, Key="etc/c"))
    denied(lambda: c.put_object(Bucket=filled, Key="home/x", Body=b"x"))
    # A file that is no key policy makes no key: one line, non-zero.
    for bad in ("{", json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"}]}),
                json.dumps({"Statement": [{"Effect": "Allow", "Action": "s3:Nonsense", "Resource": "*"}]})):
        path.write_text(bad)
        r = server.cli("tenant", "key-create", "demo", "--policy", str(path), token=server.token("demo_admin"))
        assert r.returncode != 0 and "AWS_SECRET_ACCESS_KEY" not in r.stdout, r.stdout
        assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) == 1, r.stderr
    # Presets and a policy file do not mix.
    r = server.cli("tenant", "key-create", "demo", "--policy", str(path), "--read-only", token=server.token("demo_admin"))
    assert r.returncode != 0


def test_the_backup_clients_key_deletes_objects_but_never_versions(server, s3, tmp_path):
    bucket = unique_name("backup")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    key = scoped_key(server, "--backup", "--bucket", bucket)
    c = key["client"]
    v1 = c.put_object(Bucket=bucket, Key="snap/1", Body=b"first")["VersionId"]
    c.put_object(Bucket=bucket, Key="snap/1", Body=b"second")
    c.put_object(Bucket=bucket, Key="snap/2", Body=b"other")
    assert c.get_object(Bucket=bucket, Key="snap/1")["Body"].read() == b"second"
    # Deleting an object only adds a delete marker: allowed.
    assert c.delete_object(Bucket=bucket, Key="snap/2")["DeleteMarker"] is True
    # Removing a version for good: refused, singly and in a batch.
    denied(lambda: c.delete_object(Bucket=bucket, Key="snap/1", VersionId=v1))
    out = c.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "snap/1", "VersionId": v1}]})
    assert [e["Code"] for e in out["Errors"]] == ["AccessDenied"], out
    # Reading old versions, listing them, changing versioning, bypassing retention: refused.
    denied(lambda: c.get_object(Bucket=bucket, Key="snap/1", VersionId=v1))
    denied(lambda: c.list_object_versions(Bucket=bucket))
    denied(lambda: c.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"}))
    denied(lambda: c.delete_object(Bucket=bucket, Key="snap/1", BypassGovernanceRetention=True))
    denied(lambda: c.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": key["AWS_ACCESS_KEY_ID"]}, "Action": "s3:*",
                       "Resource": f"arn:aws:s3:::{bucket}/*"}]})))
    # The client deletes everything it sees, as `aws s3 rm --recursive` does.
    aws_as(server, key, "s3", "rm", "--recursive", f"s3://{bucket}/")
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    versions = s3.list_object_versions(Bucket=bucket)
    kept = {(v["Key"], v["VersionId"]) for v in versions.get("Versions", [])}
    assert ("snap/1", v1) in kept and len(kept) == 3, versions
    assert s3.get_object(Bucket=bucket, Key="snap/1", VersionId=v1)["Body"].read() == b"first"


def test_keys_are_listed_with_their_scope_and_revoked(server, filled):
    key = scoped_key(server, "--read-only", "--bucket", filled)
    kid = key["AWS_ACCESS_KEY_ID"]
    listed = server.cli_ok("tenant", "key-list", "demo", token=server.token("demo_admin"))
    line = next(ln for ln in listed.splitlines() if ln.startswith(kid))
    assert "active" in line and "[ReadOnly] Allow s3:GetObject" in line and f"arn:aws:s3:::{filled}" in line, line
    assert key["AWS_SECRET_ACCESS_KEY"] not in listed
    whole = server.demo["AWS_ACCESS_KEY_ID"]
    assert "scope tenant" in next(ln for ln in listed.splitlines() if ln.startswith(whole))
    full = server.cli_ok("tenant", "key-list", "demo", "--policies", token=server.token("demo_admin"))
    assert '"Sid":"ReadOnly"' in full
    # The tenant admin's console page lists the key with its policy.
    from test_console import console, sign_in
    page = sign_in(server, server.token("demo_admin")).get(f"{console(server)}/tenant", timeout=10).text
    row = page[page.index(kid):][:3000]
    assert "ReadOnly" in row and f"arn:aws:s3:::{filled}" in row, row[:500]
    key["client"].get_object(Bucket=filled, Key="home/a")
    server.cli_ok("tenant", "key-revoke", "demo", kid, token=server.token("demo_admin"))
    denied(lambda: key["client"].get_object(Bucket=filled, Key="home/a"), "InvalidAccessKeyId")


def test_an_edit_of_the_trustees_key_record_that_widens_a_scope_is_refused(server, s3, filled):
    """Whoever can write the trustee's access-keys.db (its host) rewrites a read-only key's
    policy to allow everything, or removes it: the key's secret no longer opens, its requests
    are refused, and the log raises an alarm. The catalog holds no key policy at all."""
    key = scoped_key(server, "--read-only", "--bucket", filled)
    kid = key["AWS_ACCESS_KEY_ID"]
    raw = server.raw(kid, key["AWS_SECRET_ACCESS_KEY"])
    assert raw.request("GET", filled, "home/a").status_code == 200
    assert_s3_error(raw.request("PUT", filled, "planted", body=b"x"), 403, "AccessDenied")
    db = server.data_dir / "trustee" / "access-keys.db"
    wide = json.dumps({"Version": "2012-10-17",
                       "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
    start = log_size(server)
    # A key in use: whatever the trustee still has in memory for it, the edit widens nothing.
    for edit in (wide, None):
        sql(db, "UPDATE access_keys SET policy = ? WHERE access_key_id = ?", edit, kid)
        for method, obj in (("PUT", "planted"), ("DELETE", "home/a")):
            r = raw.request(method, filled, obj, body=b"x" if method == "PUT" else b"")
            assert_s3_error(r, 403, "AccessDenied")
    # A key edited before its first use: its record is read, its seal does not open with the
    # policy edited (widened, or removed), and every request is refused.
    for edit in (wide, None):
        fresh = scoped_key(server, "--read-only", "--bucket", filled)
        sql(db, "UPDATE access_keys SET policy = ? WHERE access_key_id = ?", edit, fresh["AWS_ACCESS_KEY_ID"])
        fr = server.raw(fresh["AWS_ACCESS_KEY_ID"], fresh["AWS_SECRET_ACCESS_KEY"])
        assert_s3_error(fr.request("PUT", filled, "planted", body=b"x"), 403, "AccessDenied")
        assert_s3_error(fr.request("GET", filled, "home/a"), 403, "AccessDenied")
        alarms = entries_of(server, start, type="integrity_failure")
        assert fresh["AWS_ACCESS_KEY_ID"] in {a["subject"] for a in alarms}, alarms
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=filled)["Contents"]}
    assert keys == {"home/a", "home/b", "etc/c"}


def test_a_bucket_policy_deny_beats_a_keys_allow(server, s3, filled):
    key = scoped_key(server, "--bucket", filled)
    kid = key["AWS_ACCESS_KEY_ID"]
    c = key["client"]
    c.put_object(Bucket=filled, Key="home/gone", Body=b"g")
    c.delete_object(Bucket=filled, Key="home/gone")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "NoDeleteForTheScopedKey", "Effect": "Deny", "Principal": {"AWS": [kid]},
             "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"], "Resource": f"arn:aws:s3:::{filled}/*"},
            {"Sid": "EtcIsSealed", "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
             "Resource": f"arn:aws:s3:::{filled}/etc/*"},
            {"Sid": "AllowedStillNarrow", "Effect": "Allow", "Principal": {"AWS": kid}, "Action": "s3:*",
             "Resource": [f"arn:aws:s3:::{filled}", f"arn:aws:s3:::{filled}/*"]},
        ],
    }
    s3.put_bucket_policy(Bucket=filled, Policy=json.dumps(policy))
    assert json.loads(s3.get_bucket_policy(Bucket=filled)["Policy"]) == policy
    assert s3.get_bucket_policy_status(Bucket=filled)["PolicyStatus"]["IsPublic"] is False
    denied(lambda: c.delete_object(Bucket=filled, Key="home/a"))
    out = c.delete_objects(Bucket=filled, Delete={"Objects": [{"Key": "home/a"}]})
    assert [e["Code"] for e in out["Errors"]] == ["AccessDenied"]
    denied(lambda: c.get_object(Bucket=filled, Key="etc/c"))
    denied(lambda: s3.get_object(Bucket=filled, Key="etc/c"))
    assert c.get_object(Bucket=filled, Key="home/a")["Body"].read() == b"home/a"
    # The whole-tenant key is not named by the first statement: it deletes.
    s3.put_object(Bucket=filled, Key="home/tmp", Body=b"t")
    s3.delete_object(Bucket=filled, Key="home/tmp")
    # A bucket policy's Allow never widens a scoped key: a read-only key stays read-only.
    ro = scoped_key(server, "--read-only", "--bucket", filled)
    s3.put_bucket_policy(Bucket=filled, Policy=json.dumps({"Statement": [
        {"Effect": "Allow", "Principal": {"AWS": ro["AWS_ACCESS_KEY_ID"]}, "Action": "s3:*",
         "Resource": [f"arn:aws:s3:::{filled}", f"arn:aws:s3:::{filled}/*"]}]}))
    denied(lambda: ro["client"].put_object(Bucket=filled, Key="home/x", Body=b"x"))
    # aws-cli sees the same policy, and deleting it ends the denial.
    got = run_aws(server, "s3api", "get-bucket-policy", "--bucket", filled).stdout
    assert ro["AWS_ACCESS_KEY_ID"] in json.loads(got)["Policy"]
    run_aws(server, "s3api", "delete-bucket-policy", "--bucket", filled)
    denied(lambda: s3.get_bucket_policy(Bucket=filled), "NoSuchBucketPolicy")
    denied(lambda: s3.get_bucket_policy_status(Bucket=filled), "NoSuchBucketPolicy")
    assert s3.get_object(Bucket=filled, Key="etc/c")["Body"].read() == b"etc/c"
    # A Deny naming the whole-tenant key on its own policy does not lock the tenant out.
    s3.put_bucket_policy(Bucket=filled, Policy=json.dumps({"Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": [f"arn:aws:s3:::{filled}", f"arn:aws:s3:::{filled}/*"]}]}))
    denied(lambda: s3.get_object(Bucket=filled, Key="home/a"))
    denied(lambda: c.get_bucket_policy(Bucket=filled))
    s3.delete_bucket_policy(Bucket=filled)
    assert s3.get_object(Bucket=filled, Key="home/a")["Body"].read() == b"home/a"


def test_malformed_bucket_policies_are_refused(server, s3, bucket):
    bad = [
        "not json",
        json.dumps({"Statement": []}),
        json.dumps({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]}),
        json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                   "Resource": "arn:aws:s3:::some-other-bucket/*"}]}),
        json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:Teleport",
                                   "Resource": f"arn:aws:s3:::{bucket}/*"}]}),
        json.dumps({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                                   "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]}),
        json.dumps({"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
                                   "Resource": f"arn:aws:s3:::{bucket}/*",
                                   "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/99"}}}]}),
    ]
    for text in bad:
        denied(lambda: s3.put_bucket_policy(Bucket=bucket, Policy=text), "MalformedPolicy")
    denied(lambda: s3.get_bucket_policy(Bucket=bucket), "NoSuchBucketPolicy")
    r = run_aws(server, "s3api", "put-bucket-policy", "--bucket", bucket, "--policy", bad[1], check=False)
    assert r.returncode != 0 and "MalformedPolicy" in r.stderr, r.stderr


@pytest.mark.parametrize("op,ranges,blocked", [
    ("IpAddress", ["127.0.0.0/8"], True),
    ("IpAddress", ["198.18.0.0/15"], False),
    ("NotIpAddress", ["127.0.0.1/32", "::1/128"], False),
    ("NotIpAddress", ["198.18.0.0/15"], True),
])
def test_a_source_ip_condition_decides_both_ways(server, s3, filled, op, ranges, blocked):
    key = scoped_key(server, "--bucket", filled)
    s3.put_bucket_policy(Bucket=filled, Policy=json.dumps({"Statement": [
        {"Effect": "Deny", "Principal": {"AWS": key["AWS_ACCESS_KEY_ID"]}, "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{filled}/*", "Condition": {op: {"aws:SourceIp": ranges}}}]}))
    get = lambda: key["client"].get_object(Bucket=filled, Key="home/a")  # noqa: E731
    if blocked:
        denied(get)
    else:
        assert get()["Body"].read() == b"home/a"
    # The condition only ever narrows: the tenant's other key reads regardless.
    assert s3.get_object(Bucket=filled, Key="home/a")["Body"].read() == b"home/a"


def test_a_secure_transport_condition_decides_both_ways(server, s3, filled, tmp_path):
    from test_listener_tls import Pki, TlsServer

    deny_plain = lambda b: json.dumps({"Statement": [  # noqa: E731
        {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": [f"arn:aws:s3:::{b}", f"arn:aws:s3:::{b}/*"],
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})
    s3.put_bucket_policy(Bucket=filled, Policy=deny_plain(filled))
    denied(lambda: s3.get_object(Bucket=filled, Key="home/a"))
    denied(lambda: s3.put_object(Bucket=filled, Key="home/z", Body=b"z"))
    # Its own policy stays reachable over plain HTTP, for the tenant to undo.
    s3.delete_bucket_policy(Bucket=filled)
    assert s3.get_object(Bucket=filled, Key="home/a")["Body"].read() == b"home/a"
    base = tmp_path / "tls"
    base.mkdir()
    srv = TlsServer(base, Pki(tmp_path / "pki"))
    srv.start()
    try:
        c = srv.boto3(str(srv.pki.ca))
        b = unique_name("tls")
        c.create_bucket(Bucket=b)
        c.put_bucket_policy(Bucket=b, Policy=deny_plain(b))
        c.put_object(Bucket=b, Key="k", Body=b"over TLS")
        assert c.get_object(Bucket=b, Key="k")["Body"].read() == b"over TLS"
    finally:
        assert srv.stop() == 0


def test_a_policy_never_lets_another_tenant_or_anonymous_in(server, s3, filled):
    other = make_tenant(server)
    s3.put_public_access_block(Bucket=filled, PublicAccessBlockConfiguration={
        "BlockPublicAcls": False, "IgnorePublicAcls": False, "BlockPublicPolicy": False, "RestrictPublicBuckets": False})
    policy = {"Statement": [
        {"Effect": "Allow", "Principal": {"AWS": [other["access_key"]]}, "Action": "s3:*",
         "Resource": [f"arn:aws:s3:::{filled}", f"arn:aws:s3:::{filled}/*"]},
        {"Effect": "Allow", "Principal": "*", "Action": "s3:*",
         "Resource": [f"arn:aws:s3:::{filled}", f"arn:aws:s3:::{filled}/*"]},
    ]}
    s3.put_bucket_policy(Bucket=filled, Policy=json.dumps(policy))
    assert s3.get_bucket_policy_status(Bucket=filled)["PolicyStatus"]["IsPublic"] is True
    c = other["client"]
    denied(lambda: c.get_object(Bucket=filled, Key="home/a"))
    denied(lambda: c.list_objects_v2(Bucket=filled))
    denied(lambda: c.put_object(Bucket=filled, Key="planted", Body=b"x"))
    denied(lambda: c.delete_object(Bucket=filled, Key="home/a"))
    denied(lambda: c.get_bucket_policy(Bucket=filled))
    for method, path in (("GET", f"/{filled}/home/a"), ("GET", f"/{filled}"), ("PUT", f"/{filled}/anon")):
        r = requests.request(method, server.s3_url + path, data=b"x" if method == "PUT" else None, timeout=30)
        assert_s3_error(r, 403, "AccessDenied")
        assert b"home/a" not in r.content
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=filled)["Contents"]}
    assert keys == {"home/a", "home/b", "etc/c"}
    s3.delete_bucket_policy(Bucket=filled)
    s3.delete_public_access_block(Bucket=filled)


def test_block_public_access_is_on_by_default_and_refuses_public_policies(server, s3, bucket):
    conf = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert conf == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                    "RestrictPublicBuckets": True}
    public = json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                        "Resource": f"arn:aws:s3:::{bucket}/*"}]})
    denied(lambda: s3.put_bucket_policy(Bucket=bucket, Policy=public))
    denied(lambda: s3.get_bucket_policy(Bucket=bucket), "NoSuchBucketPolicy")
    # Narrowed to an address range it is not public, and accepted.
    ranged = json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                        "Resource": f"arn:aws:s3:::{bucket}/*",
                                        "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}}]})
    s3.put_bucket_policy(Bucket=bucket, Policy=ranged)
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is False
    # With BlockPublicPolicy off the public one is taken, and reported public.
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": False, "RestrictPublicBuckets": True})
    s3.put_bucket_policy(Bucket=bucket, Policy=public)
    out = json.loads(run_aws(server, "s3api", "get-bucket-policy-status", "--bucket", bucket).stdout)
    assert out["PolicyStatus"]["IsPublic"] is True
    # Deleting the settings brings obhut's default back: on.
    run_aws(server, "s3api", "delete-public-access-block", "--bucket", bucket)
    out = json.loads(run_aws(server, "s3api", "get-public-access-block", "--bucket", bucket).stdout)
    assert all(out["PublicAccessBlockConfiguration"].values()), out
    s3.delete_bucket_policy(Bucket=bucket)
    denied(lambda: s3.put_bucket_policy(Bucket=bucket, Policy=public))


def test_acls_are_the_owners_full_control_and_nothing_else(server, s3, tenant_b):
    owner_grants = lambda g: [(x["Grantee"]["Type"], x["Grantee"].get("ID"), x["Permission"]) for x in g]  # noqa: E731
    for acl in ("private", "bucket-owner-full-control"):
        b = unique_name("acl")
        s3.create_bucket(Bucket=b, ACL=acl)
        s3.delete_bucket(Bucket=b)
    for acl in ("public-read", "public-read-write", "authenticated-read"):
        denied(lambda: s3.create_bucket(Bucket=unique_name("acl"), ACL=acl), "InvalidBucketAclWithObjectOwnership")
    denied(lambda: s3.create_bucket(Bucket=unique_name("acl"), ObjectOwnership="ObjectWriter"), "InvalidRequest")
    b = unique_name("acl")
    s3.create_bucket(Bucket=b, ObjectOwnership="BucketOwnerEnforced")
    acl = s3.get_bucket_acl(Bucket=b)
    assert acl["Owner"]["ID"] == "demo"
    assert owner_grants(acl["Grants"]) == [("CanonicalUser", "demo", "FULL_CONTROL")]
    for canned in ("private", "bucket-owner-full-control"):
        s3.put_object(Bucket=b, Key=f"o-{canned}", Body=b"x", ACL=canned)
        s3.copy_object(Bucket=b, Key=f"c-{canned}", CopySource={"Bucket": b, "Key": f"o-{canned}"}, ACL=canned)
    denied(lambda: s3.put_object(Bucket=b, Key="pub", Body=b"x", ACL="public-read"), "AccessControlListNotSupported")
    denied(lambda: s3.copy_object(Bucket=b, Key="pub", CopySource={"Bucket": b, "Key": "o-private"}, ACL="public-read"),
           "AccessControlListNotSupported")
    oacl = s3.get_object_acl(Bucket=b, Key="o-private")
    assert owner_grants(oacl["Grants"]) == [("CanonicalUser", "demo", "FULL_CONTROL")]
    denied(lambda: s3.get_object_acl(Bucket=b, Key="missing"), "NoSuchKey")
    s3.put_object_acl(Bucket=b, Key="o-private", ACL="bucket-owner-full-control")
    denied(lambda: s3.put_object_acl(Bucket=b, Key="o-private", ACL="public-read"), "AccessDenied")
    s3.put_bucket_acl(Bucket=b, ACL="private")
    denied(lambda: s3.put_bucket_acl(Bucket=b, ACL="public-read"), "AccessDenied")
    denied(lambda: s3.put_bucket_acl(Bucket=b, GrantRead='id="someone-else"'), "AccessControlListNotSupported")
    # Ownership controls: always BucketOwnerEnforced.
    rules = s3.get_bucket_ownership_controls(Bucket=b)["OwnershipControls"]["Rules"]
    assert rules == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    s3.put_bucket_ownership_controls(Bucket=b, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})
    denied(lambda: s3.put_bucket_ownership_controls(
        Bucket=b, OwnershipControls={"Rules": [{"ObjectOwnership": "ObjectWriter"}]}), "InvalidRequest")
    denied(lambda: s3.delete_bucket_ownership_controls(Bucket=b), "InvalidRequest")
    # Another tenant sees none of it.
    denied(lambda: tenant_b["client"].get_bucket_acl(Bucket=b))
    denied(lambda: tenant_b["client"].get_object_acl(Bucket=b, Key="o-private"))
    # aws-cli, as an archive tool would call it.
    out = json.loads(run_aws(server, "s3api", "get-bucket-acl", "--bucket", b).stdout)
    assert out["Grants"][0]["Permission"] == "FULL_CONTROL"
    out = json.loads(run_aws(server, "s3api", "get-bucket-ownership-controls", "--bucket", b).stdout)
    assert out["OwnershipControls"]["Rules"][0]["ObjectOwnership"] == "BucketOwnerEnforced"
    src = Path(server.data_dir).parent / "acl-upload"
    src.write_bytes(b"cli")
    run_aws(server, "s3", "cp", str(src), f"s3://{b}/cli", "--acl", "bucket-owner-full-control")
    r = run_aws(server, "s3", "cp", str(src), f"s3://{b}/cli-pub", "--acl", "public-read", check=False)
    assert r.returncode != 0 and "AccessControlListNotSupported" in r.stderr, r.stderr
    src.unlink()


def test_a_scoped_keys_policy_reaches_a_gateway_of_its_own_process(running_split):
    """With the trustee in its own process, the policy comes back over the trustee API with
    each signature check, and the gateway holds the key to it."""
    sp = running_split
    s3 = sp.s3()
    b = unique_name("split")
    s3.create_bucket(Bucket=b)
    s3.put_object(Bucket=b, Key="k", Body=b"v")
    r = sp.run("tenant", "key-create", "demo", "--read-only", "--bucket", b, token=sp.token("demo_admin"))
    assert r.returncode == 0, r.stderr
    keys = parse_key_output(r.stdout)
    c = s3_client(sp.s3_url, keys["AWS_ACCESS_KEY_ID"], keys["AWS_SECRET_ACCESS_KEY"])
    assert c.get_object(Bucket=b, Key="k")["Body"].read() == b"v"
    denied(lambda: c.put_object(Bucket=b, Key="k", Body=b"overwritten"))
    denied(lambda: c.delete_object(Bucket=b, Key="k"))
    assert s3.get_object(Bucket=b, Key="k")["Body"].read() == b"v"
