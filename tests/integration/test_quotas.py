"""Quotas per tenant (set by officers) and per bucket (set by the tenant's admin,
within the tenant's), in bytes and objects, driven with boto3, aws-cli and the
admin CLI against `obhut serve`.

A write the quota has no room for is refused with S3's `QuotaExceeded` (403)
before any of it is stored: no object appears and no blob is left on a site.
Parallel writes never together pass a limit; an aborted upload and a deleted
object give their bytes back."""

import concurrent.futures
import os
import time

import requests

from conftest import assert_one_line_failure, aws_env, bearer, blob_snapshot, new_tenant, run_aws
from s3helpers import client_error, unique_name

MIB = 1 << 20


def tenant_with_bucket(server, prefix="q"):
    t = new_tenant(server, prefix + os.urandom(4).hex())
    client = server.client(t["AWS_ACCESS_KEY_ID"], t["AWS_SECRET_ACCESS_KEY"])
    bucket = unique_name(prefix)
    client.create_bucket(Bucket=bucket)
    return t, client, bucket


def set_tenant_quota(server, tenant, *limits, who="officer1"):
    return server.cli_ok("tenant", "quota", tenant, *limits, token=server.token(who))


def usage(server, tenant, bucket=None, token=None):
    """The admin API's JSON report of a tenant's (officer) or bucket's (its admin) quota."""
    if bucket is None:
        url = f"{server.admin_url}/v1/tenants/{tenant}/quota"
        headers = server.auth("officer1")
    else:
        url = f"{server.admin_url}/v1/tenants/{tenant}/buckets/{bucket}/quota"
        headers = {"Authorization": f"Bearer {bearer(token)}"}
    r = requests.get(url, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def wait_usage(server, tenant, want: dict, timeout=10.0):
    """Polls until the tenant's usage has the fields of `want` (a failed write's hold is
    released just after its answer)."""
    deadline = time.monotonic() + timeout
    while True:
        u = usage(server, tenant)["usage"]
        if all(u[k] == v for k, v in want.items()) or time.monotonic() > deadline:
            assert all(u[k] == v for k, v in want.items()), f"usage {u}, wanted {want}"
            return u
        time.sleep(0.1)


def assert_quota_exceeded(fn, *args, **kwargs):
    code, status, resp = client_error(fn, *args, **kwargs)
    assert (code, status) == ("QuotaExceeded", 403), resp.get("Error")
    assert "quota" in resp["Error"]["Message"].lower(), resp["Error"]


def test_put_beyond_the_tenant_quota_is_refused_and_stores_nothing(server):
    t, client, bucket = tenant_with_bucket(server)
    out = set_tenant_quota(server, t["name"], "--max-bytes", "1MiB", "--max-objects", "3")
    assert "quota 1.0 MiB (1048576 B)" in out and "quota 3" in out, out
    client.put_object(Bucket=bucket, Key="a", Body=b"x" * (600 * 1024))
    before = blob_snapshot(server)
    assert_quota_exceeded(client.put_object, Bucket=bucket, Key="b", Body=b"y" * (600 * 1024))
    # Refused before its first byte was stored: no object, no blob on any site.
    assert blob_snapshot(server) == before
    code, _, _ = client_error(client.head_object, Bucket=bucket, Key="b")
    assert code in ("404", "NoSuchKey")
    wait_usage(server, t["name"], {"bytes": 600 * 1024, "objects": 1, "reserved_bytes": 0})
    # What fits still goes in; an overwrite counts only its growth.
    client.put_object(Bucket=bucket, Key="b", Body=b"y" * (400 * 1024))
    client.put_object(Bucket=bucket, Key="a", Body=b"x" * (620 * 1024))
    wait_usage(server, t["name"], {"bytes": 1020 * 1024, "objects": 2})
    # The object limit: the third fits, the fourth does not.
    client.put_object(Bucket=bucket, Key="c", Body=b"")
    assert_quota_exceeded(client.put_object, Bucket=bucket, Key="d", Body=b"")
    listed = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert listed == ["a", "b", "c"]


def test_delete_frees_usage_and_a_cleared_quota_limits_nothing(server):
    t, client, bucket = tenant_with_bucket(server)
    set_tenant_quota(server, t["name"], "--max-bytes", "100KiB")
    client.put_object(Bucket=bucket, Key="k", Body=b"z" * (90 * 1024))
    assert_quota_exceeded(client.put_object, Bucket=bucket, Key="j", Body=b"z" * (20 * 1024))
    client.delete_object(Bucket=bucket, Key="k")
    wait_usage(server, t["name"], {"bytes": 0, "objects": 0})
    client.put_object(Bucket=bucket, Key="j", Body=b"z" * (20 * 1024))
    out = set_tenant_quota(server, t["name"], "--clear")
    assert "quota no limit" in out, out
    client.put_object(Bucket=bucket, Key="big", Body=b"z" * (200 * 1024))
    wait_usage(server, t["name"], {"bytes": 220 * 1024, "objects": 2})


def test_put_copy_and_part_copy_are_refused_with_quota_exceeded(server, tmp_path):
    t, client, bucket = tenant_with_bucket(server)
    set_tenant_quota(server, t["name"], "--max-bytes", "300KiB")
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(200 * 1024))
    env = aws_env(
        server,
        AWS_ACCESS_KEY_ID=t["AWS_ACCESS_KEY_ID"],
        AWS_SECRET_ACCESS_KEY=t["AWS_SECRET_ACCESS_KEY"],
    )
    run_aws(server, "s3api", "put-object", "--bucket", bucket, "--key", "src", "--body", str(src), env=env)
    before = blob_snapshot(server)
    # A copy needs room for the whole source again.
    r = run_aws(
        server, "s3api", "copy-object", "--bucket", bucket, "--key", "copy",
        "--copy-source", f"{bucket}/src", env=env, check=False,
    )
    assert r.returncode != 0 and "QuotaExceeded" in r.stderr, r.stderr
    assert_quota_exceeded(client.copy_object, Bucket=bucket, Key="copy2", CopySource={"Bucket": bucket, "Key": "src"})
    r = run_aws(server, "s3api", "put-object", "--bucket", bucket, "--key", "again", "--body", str(src), env=env, check=False)
    assert r.returncode != 0 and "QuotaExceeded" in r.stderr, r.stderr
    # UploadPartCopy: a part of the whole source does not fit, a part of a range of it does.
    up = client.create_multipart_upload(Bucket=bucket, Key="assembled")["UploadId"]
    assert_quota_exceeded(
        client.upload_part_copy, Bucket=bucket, Key="assembled", UploadId=up, PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "src"},
    )
    assert client.list_parts(Bucket=bucket, Key="assembled", UploadId=up).get("Parts", []) == []
    assert blob_snapshot(server) == before
    client.upload_part_copy(
        Bucket=bucket, Key="assembled", UploadId=up, PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "src"}, CopySourceRange="bytes=0-65535",
    )
    wait_usage(server, t["name"], {"bytes": 264 * 1024, "objects": 1, "reserved_bytes": 0})
    client.abort_multipart_upload(Bucket=bucket, Key="assembled", UploadId=up)
    assert [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]] == ["src"]
    wait_usage(server, t["name"], {"bytes": 200 * 1024, "objects": 1, "reserved_bytes": 0})


def test_multipart_parts_count_until_complete_and_abort_releases_them(server):
    t, client, bucket = tenant_with_bucket(server)
    set_tenant_quota(server, t["name"], "--max-bytes", "12MiB", "--max-objects", "1")
    up = client.create_multipart_upload(Bucket=bucket, Key="mpu")["UploadId"]
    parts = []
    for n in (1, 2):
        r = client.upload_part(Bucket=bucket, Key="mpu", UploadId=up, PartNumber=n, Body=b"p" * (5 * MIB))
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    # Open parts hold 10 MiB: a third part of 5 MiB does not fit, and neither does a PUT.
    assert_quota_exceeded(
        client.upload_part, Bucket=bucket, Key="mpu", UploadId=up, PartNumber=3, Body=b"p" * (5 * MIB)
    )
    assert_quota_exceeded(client.put_object, Bucket=bucket, Key="other", Body=b"o" * (3 * MIB))
    wait_usage(server, t["name"], {"bytes": 10 * MIB, "objects": 0, "reserved_bytes": 0})
    client.complete_multipart_upload(Bucket=bucket, Key="mpu", UploadId=up, MultipartUpload={"Parts": parts})
    wait_usage(server, t["name"], {"bytes": 10 * MIB, "objects": 1})
    # One object allowed: completing a second upload is refused, and the upload stays
    # open (nothing half-written); aborting it gives its bytes back.
    up2 = client.create_multipart_upload(Bucket=bucket, Key="mpu2")["UploadId"]
    r = client.upload_part(Bucket=bucket, Key="mpu2", UploadId=up2, PartNumber=1, Body=b"q" * MIB)
    assert_quota_exceeded(
        client.complete_multipart_upload,
        Bucket=bucket, Key="mpu2", UploadId=up2,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": r["ETag"]}]},
    )
    code, _, _ = client_error(client.head_object, Bucket=bucket, Key="mpu2")
    assert code in ("404", "NoSuchKey")
    listed = client.list_parts(Bucket=bucket, Key="mpu2", UploadId=up2)["Parts"]
    assert [p["PartNumber"] for p in listed] == [1]
    wait_usage(server, t["name"], {"bytes": 11 * MIB, "objects": 1})
    client.abort_multipart_upload(Bucket=bucket, Key="mpu2", UploadId=up2)
    wait_usage(server, t["name"], {"bytes": 10 * MIB, "objects": 1, "reserved_bytes": 0, "reserved_objects": 0})
    # An overwrite by a smaller object at the object limit is allowed.
    client.put_object(Bucket=bucket, Key="mpu", Body=b"small")
    wait_usage(server, t["name"], {"bytes": 5, "objects": 1})


def test_parallel_puts_never_pass_the_quota(server):
    t, client, bucket = tenant_with_bucket(server)
    set_tenant_quota(server, t["name"], "--max-bytes", "1000KiB")
    body = b"c" * (100 * 1024)

    def put(i):
        c = server.client(t["AWS_ACCESS_KEY_ID"], t["AWS_SECRET_ACCESS_KEY"])
        code = None
        try:
            c.put_object(Bucket=bucket, Key=f"k{i}", Body=body)
        except Exception as e:  # noqa: BLE001 - the code is what matters
            code = getattr(e, "response", {}).get("Error", {}).get("Code", repr(e))
        return code

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(put, range(30)))
    ok = results.count(None)
    assert set(results) <= {None, "QuotaExceeded"}, results
    assert ok == 10, results
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert len(keys) == 10
    wait_usage(server, t["name"], {"bytes": 1000 * 1024, "objects": 10, "reserved_bytes": 0})


def test_bucket_quota_is_the_tenant_admins_within_the_tenants(server, tenant_b):
    t, client, bucket = tenant_with_bucket(server)
    admin = t["admin_token"]
    set_tenant_quota(server, t["name"], "--max-bytes", "1GiB", "--max-objects", "100")
    # Allowed: the tenant's admin, within the tenant's quota.
    out = server.cli_ok("bucket", "quota", t["name"], bucket, "--max-bytes", "64KiB", "--max-objects", "10", token=admin)
    assert "quota 64.0 KiB" in out, out
    # Refused: above the tenant's quota, or without a limit the tenant has.
    r = server.cli("bucket", "quota", t["name"], bucket, "--max-bytes", "2GiB", "--max-objects", "10", token=admin)
    assert_one_line_failure(r, "bucket quota above the tenant's")
    assert "within its tenant" in r.stderr, r.stderr
    r = server.cli("bucket", "quota", t["name"], bucket, "--max-objects", "10", token=admin)
    assert_one_line_failure(r, "bucket quota without the tenant's byte limit")
    # Refused: officers, operators, another tenant's admin.
    for who, token in (
        ("officer", server.token("officer1")),
        ("operator", server.token("operator")),
        ("other tenant's admin", tenant_b["admin_token"]),
    ):
        r = server.cli("bucket", "quota", t["name"], bucket, "--max-bytes", "1KiB", token=token)
        assert_one_line_failure(r, f"bucket quota set by {who}")
        r = server.cli("bucket", "usage", t["name"], bucket, token=token)
        assert_one_line_failure(r, f"bucket usage read by {who}")
    # A bucket that is not the tenant's is answered as one that does not exist.
    other_bucket = unique_name("qother")
    tenant_b["client"].create_bucket(Bucket=other_bucket)
    r1 = server.cli("bucket", "usage", t["name"], other_bucket, token=admin)
    r2 = server.cli("bucket", "usage", t["name"], unique_name("qnone"), token=admin)
    assert_one_line_failure(r1, "another tenant's bucket")
    assert_one_line_failure(r2, "no such bucket")
    assert r1.stderr.replace(other_bucket, "X").split("(HTTP")[1] == r2.stderr.split("(HTTP")[1]
    # The bucket's quota is enforced below the tenant's.
    client.put_object(Bucket=bucket, Key="a", Body=b"a" * (60 * 1024))
    assert_quota_exceeded(client.put_object, Bucket=bucket, Key="b", Body=b"b" * (10 * 1024))
    out = server.cli_ok("bucket", "usage", t["name"], bucket, token=admin)
    assert "60.0 KiB" in out and "1 used" in out, out
    # Another bucket of the tenant has only the tenant's quota.
    second = unique_name("qsecond")
    client.create_bucket(Bucket=second)
    client.put_object(Bucket=second, Key="b", Body=b"b" * (10 * 1024))
    server.cli_ok("bucket", "quota", t["name"], bucket, "--clear", token=admin)
    client.put_object(Bucket=bucket, Key="b", Body=b"b" * (10 * 1024))


def test_tenant_quota_is_the_officers(server, tenant_b):
    t, client, bucket = tenant_with_bucket(server)
    # Allowed: officers set and read it; the tenant's admin reads its own.
    set_tenant_quota(server, t["name"], "--max-objects", "5")
    out = server.cli_ok("tenant", "quota", t["name"], token=t["admin_token"])
    assert "quota 5" in out, out
    # Refused: the tenant's admin, an operator, an auditor set it; an operator or another
    # tenant's admin reads it.
    for who, token in (
        ("tenant admin", t["admin_token"]),
        ("operator", server.token("operator")),
        ("auditor", server.token("auditor")),
    ):
        r = server.cli("tenant", "quota", t["name"], "--max-objects", "500", token=token)
        assert_one_line_failure(r, f"tenant quota set by {who}")
    for who, token in (("operator", server.token("operator")), ("other tenant's admin", tenant_b["admin_token"])):
        r = server.cli("tenant", "quota", t["name"], token=token)
        assert_one_line_failure(r, f"tenant quota read by {who}")
    assert usage(server, t["name"])["quota"] == {"max_objects": 5}
    # A recount of usage: officers only; counted usage stays as it was.
    client.put_object(Bucket=bucket, Key="counted", Body=b"12345")
    out = server.cli_ok("tenant", "quota", t["name"], "--recount", token=server.token("officer1"))
    assert "5 B used" in out and "1 used" in out, out
    r = server.cli("tenant", "quota", t["name"], "--recount", token=t["admin_token"])
    assert_one_line_failure(r, "recount by the tenant's admin")
    assert usage(server, t["name"])["usage"]["bytes"] == 5
    # Admin API errors are JSON; a size the CLI cannot read is one line.
    r = requests.put(
        f"{server.admin_url}/v1/tenants/{t['name']}/quota",
        json={"max_bytes": 1},
        headers={"Authorization": f"Bearer {bearer(t['admin_token'])}"},
        timeout=10,
    )
    assert r.status_code == 403 and r.json()["error"] == "forbidden", r.text
    r = requests.put(
        f"{server.admin_url}/v1/tenants/nosuchtenant{os.urandom(3).hex()}/quota",
        json={"max_bytes": 1},
        headers=server.auth("officer1"),
        timeout=10,
    )
    assert r.status_code == 404 and r.json()["error"] == "not_found", r.text
    r = server.cli("tenant", "quota", t["name"], "--max-bytes", "ten", token=server.token("officer1"))
    assert r.returncode != 0 and "not a size" in r.stderr, r.stderr


def test_metrics_show_quotas_in_aggregate_only(server):
    t, client, bucket = tenant_with_bucket(server)
    set_tenant_quota(server, t["name"], "--max-bytes", "10KiB")
    client.put_object(Bucket=bucket, Key="k", Body=b"m" * (10 * 1024))
    r = requests.get(f"{server.admin_url}/metrics", headers=server.auth("operator"), timeout=10)
    assert r.status_code == 200, r.text
    lines = {ln.split(" ")[0]: float(ln.split(" ")[1]) for ln in r.text.splitlines() if ln.startswith("obhut_quota")}
    assert lines['obhut_quota_scopes{scope="tenant"}'] >= 1, lines
    assert lines['obhut_quota_scopes_at_limit{scope="tenant"}'] >= 1, lines
    assert lines['obhut_quota_used_bytes{scope="tenant"}'] >= 10 * 1024, lines
    assert t["name"] not in r.text and bucket not in r.text
    # The process log does not name the tenant or the bucket either.
    log = server.log_path.read_text(errors="replace")
    assert t["name"] not in log and bucket not in log
