"""Defences against the people who run obhut: what logs may show, which signatures are
accepted, and refusing to start where starting would destroy data."""

import shutil

import boto3
import botocore.config
import pytest

from s3helpers import client_error


def test_debug_logs_never_show_the_signature_a_request_should_have_had(private_server_factory):
    srv = private_server_factory()
    srv.stop_ok()
    srv.extra_env = {"RUST_LOG": "trace"}
    srv.start()
    s3 = srv.client()
    s3.create_bucket(Bucket="logs")
    wrong = srv.client(secret_key="x" * 40)
    code, status, _ = client_error(wrong.get_object, Bucket="logs", Key="k")
    assert (code, status) == ("SignatureDoesNotMatch", 403)
    # malformed XML whose keys must not reach the log either
    raw = srv.raw()
    r = raw.request("POST", "logs", None, query=[("delete", "")], body=b"<Delete><Object><Key>secret-name-in-xml</Key>")
    assert 400 <= r.status_code < 500
    log = srv.log_path.read_text(errors="replace")
    assert "signature mismatch" not in log, "the S3 library's debug log would hand out valid signatures"
    assert "secret-name-in-xml" not in log


def test_signature_version_2_is_refused(private_server):
    srv = private_server
    srv.client().create_bucket(Bucket="sigv2")
    v2 = boto3.client(
        "s3",
        endpoint_url=srv.s3_url,
        aws_access_key_id=srv.demo["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=srv.demo["AWS_SECRET_ACCESS_KEY"],
        region_name="de-1",
        config=botocore.config.Config(signature_version="s3", s3={"addressing_style": "path"},
                                      retries={"max_attempts": 1}),
    )
    code, status, resp = client_error(v2.list_objects_v2, Bucket="sigv2")
    assert status in (400, 403), (code, status)
    url = v2.generate_presigned_url("get_object", Params={"Bucket": "sigv2", "Key": "k"}, ExpiresIn=10**8)
    import requests
    r = requests.get(url)
    assert r.status_code in (400, 403) and b"Signature" in r.content, (r.status_code, r.content[:300])


def test_a_lost_catalog_does_not_turn_every_blob_into_an_orphan(private_server_factory):
    srv = private_server_factory()
    s3 = srv.client()
    s3.create_bucket(Bucket="keep")
    s3.put_object(Bucket="keep", Key="k", Body=b"precious")
    srv.stop_ok()
    moved = srv.data_dir.parent / "catalog-backup"
    moved.mkdir()
    for f in srv.data_dir.glob("catalog.db*"):
        shutil.move(str(f), moved / f.name)
    blobs_before = sorted(p.name for p in (srv.data_dir / "sites").rglob("*") if p.is_file() and p.parent.parent.name == "blobs")
    assert blobs_before
    srv.proc = None
    with pytest.raises(BaseException):
        srv.start(timeout=15)
    assert "has no catalog.db but site" in srv.log_path.read_text()
    blobs_after = sorted(p.name for p in (srv.data_dir / "sites").rglob("*") if p.is_file() and p.parent.parent.name == "blobs")
    assert blobs_after == blobs_before, "no blob may be collected"
    for f in moved.iterdir():
        shutil.move(str(f), srv.data_dir / f.name)
    srv.start()
    assert srv.client().get_object(Bucket="keep", Key="k")["Body"].read() == b"precious"


def test_an_unmounted_site_is_down_never_recreated(private_server_factory):
    srv = private_server_factory()
    s3 = srv.client()
    s3.create_bucket(Bucket="mount")
    s3.put_object(Bucket="mount", Key="k", Body=b"on both sites")
    srv.stop_ok()
    site = srv.site_dir("de-fra")
    unmounted = srv.data_dir.parent / "de-fra-unmounted"
    site.rename(unmounted)

    srv.start()
    assert "site is down" in srv.log_path.read_text()
    assert not site.exists(), "a missing site directory must not be recreated"
    s3 = srv.client()
    assert s3.get_object(Bucket="mount", Key="k")["Body"].read() == b"on both sites"
    code, status, resp = client_error(s3.put_object, Bucket="mount", Key="new", Body=b"x")
    assert (code, status) == ("ServiceUnavailable", 503), (code, status)
    assert "site" in resp["Error"].get("Message", "")
    assert not site.exists(), "nothing may be written where the site should be"

    # an empty mount point is not the site either
    srv.stop_ok()
    site.mkdir()
    srv.start()
    assert list(site.iterdir()) == [], "nothing written into the empty mount point"
    code, status, _ = client_error(srv.client().put_object, Bucket="mount", Key="new", Body=b"x")
    assert status == 503

    # remounted: full service again
    srv.stop_ok()
    site.rmdir()
    unmounted.rename(site)
    srv.start()
    srv.client().put_object(Bucket="mount", Key="new", Body=b"both sites again")
    assert srv.client().get_object(Bucket="mount", Key="new")["Body"].read() == b"both sites again"


def _wide(path):
    """Every file and directory under `path` that group or others may use, with its mode."""
    import os
    import stat

    found = []
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            p = os.path.join(root, name)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                continue
            if stat.S_IMODE(st.st_mode) & 0o077:
                found.append((p, oct(stat.S_IMODE(st.st_mode))))
    return found


def test_databases_wal_and_log_files_are_the_owners_alone_even_in_a_wide_data_dir(fresh_server):
    """catalog.db, governance.db, their -wal/-shm files and the log's files are 0600 and
    every directory 0700, also when the data directory was made 0755 with a 0644 file in it
    before the first start, and for what is written while serving."""
    import os
    import stat

    srv = fresh_server
    srv.data_dir.mkdir(mode=0o755)
    os.chmod(srv.data_dir, 0o755)
    (srv.data_dir / "notes").mkdir()
    os.chmod(srv.data_dir / "notes", 0o755)
    (srv.data_dir / "notes" / "readme.txt").write_text("left by an administrator")
    os.chmod(srv.data_dir / "notes" / "readme.txt", 0o644)
    assert _wide(srv.data_dir), "the test should start from a wide data directory"
    srv.start()
    s3 = srv.client()
    s3.create_bucket(Bucket="modes")
    s3.put_object(Bucket="modes", Key="k", Body=b"some bytes")
    names = {p.name for p in srv.data_dir.rglob("*")}
    for expected in ("catalog.db", "catalog.db-wal", "catalog.db-shm", "governance.db", "log-key", "origin"):
        assert expected in names, f"{expected} is not in the data directory (the test looks for it): {sorted(names)}"
    log_dirs = [p for p in srv.data_dir.rglob("log") if p.is_dir()]
    assert log_dirs and any(f.is_file() for d in log_dirs for f in d.rglob("*")), "no log files found"
    wide = _wide(srv.data_dir)
    assert wide == [], f"group or others may use: {wide}"
    assert stat.S_IMODE(srv.data_dir.stat().st_mode) == 0o700
    for p in srv.data_dir.rglob("*"):
        if p.is_file() and not p.is_symlink() and (p.name.endswith((".db", "-wal", "-shm")) or "log" in p.parts):
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, (p, oct(stat.S_IMODE(p.stat().st_mode)))
    srv.stop_ok()
    # A restart after an administrator widened things again tightens them again.
    os.chmod(srv.data_dir / "catalog.db", 0o644)
    os.chmod(srv.data_dir, 0o755)
    srv.start()
    assert _wide(srv.data_dir) == []
    srv.stop_ok()


def _logged(name: str) -> str:
    """A name as the process log shows it: `#` and the first 12 hex digits of its SHA-256."""
    import hashlib

    return "#" + hashlib.sha256(name.encode()).hexdigest()[:12]


def test_the_process_log_never_names_a_tenant_bucket_or_object(private_server_factory):
    """Tenants, buckets and objects are the customers' names: the log the provider collects
    shows them only as short SHA-256 prefixes, through tenant creation, keys, bucket
    policies, key rotation, S3 reads and writes, multipart uploads and failures."""
    import os

    from conftest import enrol, parse_key_output

    srv = private_server_factory()
    tag = os.urandom(4).hex()
    tenant = f"zqtenant{tag}"
    bucket = f"zq-bucket-{tag}"
    key = f"zq-object-{tag}/report.pdf"
    officer = srv.token("officer1")
    srv.cli_ok("tenant", "create", tenant, "--jurisdiction", "DE", token=officer)
    admin = enrol(srv, f"adm{tag}", "tenant-admin", tenant=tenant)
    keys = parse_key_output(srv.cli_ok("tenant", "key-create", tenant, token=admin))
    s3 = srv.client(keys["AWS_ACCESS_KEY_ID"], keys["AWS_SECRET_ACCESS_KEY"])
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=key, Body=b"quarterly numbers")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"quarterly numbers"
    s3.list_objects_v2(Bucket=bucket, Prefix="zq-object-")
    s3.copy_object(Bucket=bucket, Key=key + ".copy", CopySource={"Bucket": bucket, "Key": key})
    up = s3.create_multipart_upload(Bucket=bucket, Key=key + ".mpu")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key=key + ".mpu", UploadId=up, PartNumber=1, Body=b"part")["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key=key + ".mpu", UploadId=up,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    code, status, _ = client_error(s3.get_object, Bucket=bucket, Key=key + ".missing")
    assert status == 404, (code, status)
    srv.cli_ok("tenant", "bucket-policy", tenant, "--bucket", bucket, "--min-sites", "2", token=admin)
    srv.cli_ok("tenant", "rotate-key", tenant, "--bucket", bucket, token=admin)
    s3.delete_object(Bucket=bucket, Key=key)
    srv.stop_ok()
    log = srv.log_path.read_text(errors="replace")
    for name in (tenant, bucket, "zq-object-", tag):
        assert name not in log, f"the process log names {name!r}: " + next(
            ln for ln in log.splitlines() if name in ln)
    # The lines are there, naming the tenant and bucket by their digests.
    assert _logged(tenant) in log, "no log line names the tenant by its digest (e.g. `tenant created`)"
    assert _logged(bucket) in log, "no log line names the bucket by its digest (e.g. `bucket key rotated`)"
