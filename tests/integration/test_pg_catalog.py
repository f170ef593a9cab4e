"""The catalog on PostgreSQL: `obhut serve --catalog postgres://…` serves S3 from it, keeps
its data over a restart, `obhut catalog migrate` copies an embedded catalog into it, and
rows edited with psql grant nothing, just as rows edited in catalog.db with sqlite3 do
(test_catalog_tampering.py, test_catalog_grants_nothing.py).

One PostgreSQL server for the module (pg_helpers.py), a database per test; the password is
given by file or environment, never on the command line."""

from __future__ import annotations

import hashlib
import os
import random
import time

import pytest

from conftest import ObhutServer, assert_one_line_failure, obhut_bin
from pg_helpers import PASSWORD, PgServer
from s3helpers import assert_s3_error, clean_env, unique_name
from garage_helpers import garage  # noqa: F401 (fixture)
from split_helpers import split  # noqa: F401 (fixture)
from test_catalog_tampering import alarms, assert_integrity_refused, listed, wait_alarm

MIB = 1024 * 1024

# Names whose byte order differs from any linguistic order.
NAMES = ["a", "B", "\u00e4rger.txt", "b", "Z/1", "z", "\u00e9t\u00e9/x", "e", "\u65e5\u672c.txt", "a/b", "a-b", "\U00010348", "~"]


@pytest.fixture(scope="module")
def pg():
    server = PgServer().start()
    yield server
    server.stop()


def pg_server(tmp_path, name: str, url: str | None, password_file=None, env=None) -> ObhutServer:
    base = tmp_path / name
    base.mkdir(parents=True, exist_ok=True)
    extra = []
    if url is not None:
        extra = ["--catalog", url]
        if password_file is not None:
            extra += ["--catalog-password-file", str(password_file)]
    srv = ObhutServer(base / "data", base / "serve.log", extra_args=extra)
    srv.extra_env = dict(env or {})
    return srv


def password_file(tmp_path):
    f = tmp_path / "catalog-password"
    f.write_text(PASSWORD + "\n")
    f.chmod(0o600)
    return f


def run_obhut(*args: str, env: dict | None = None):
    import subprocess

    return subprocess.run(
        [str(obhut_bin()), *args], env=clean_env(env or {}), capture_output=True, text=True,
        timeout=120, stdin=subprocess.DEVNULL,
    )


def byte_order(names):
    return sorted(names, key=lambda n: n.encode())


def test_serve_on_postgres_serves_s3_in_byte_order_and_keeps_it_over_a_restart(pg, tmp_path):
    url = pg.new_database()
    pw = password_file(tmp_path)
    srv = pg_server(tmp_path, "srv", url, password_file=pw).start()
    try:
        s3 = srv.client()
        bucket = unique_name("pg")
        s3.create_bucket(Bucket=bucket)
        bodies = {name: os.urandom(random.randint(0, 3000)) for name in NAMES}
        for name, body in bodies.items():
            s3.put_object(Bucket=bucket, Key=name, Body=body)
        # Multipart: two parts of 5 MiB and a small last one.
        parts_data = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(1234)]
        up = s3.create_multipart_upload(Bucket=bucket, Key="multi/\u00fcber")
        done = []
        for n, data in enumerate(parts_data, start=1):
            r = s3.upload_part(Bucket=bucket, Key="multi/\u00fcber", UploadId=up["UploadId"], PartNumber=n, Body=data)
            done.append({"PartNumber": n, "ETag": r["ETag"]})
        s3.complete_multipart_upload(
            Bucket=bucket, Key="multi/\u00fcber", UploadId=up["UploadId"], MultipartUpload={"Parts": done}
        )
        bodies["multi/\u00fcber"] = b"".join(parts_data)
        # An unfinished upload, listed in byte order as well.
        s3.create_multipart_upload(Bucket=bucket, Key="unfinished")
        s3.delete_object(Bucket=bucket, Key="z")
        del bodies["z"]
        # Listed in byte order, also a page at a time.
        assert listed(s3, bucket) == byte_order(bodies)
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, PaginationConfig={"PageSize": 4})
        assert [o["Key"] for p in pages for o in p.get("Contents", [])] == byte_order(bodies)
        assert [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])] == ["unfinished"]
        assert not (srv.data_dir / "catalog.db").exists(), "no embedded catalog beside PostgreSQL"
        srv.stop_ok()
        # The password is nowhere in the process log; the catalog's URL is, without it.
        log = srv.log_path.read_text(errors="replace")
        assert PASSWORD not in log
        assert "the catalog is on PostgreSQL" in log

        srv.start()
        s3 = srv.client()
        assert listed(s3, bucket) == byte_order(bodies)
        for name, body in bodies.items():
            assert s3.get_object(Bucket=bucket, Key=name)["Body"].read() == body, name
        db = url.rsplit("/", 1)[1]
        rows = pg.psql(db, "SELECT COUNT(*) FROM objects").strip()
        assert int(rows) == len(bodies)
        apps = pg.psql(db, f"SELECT DISTINCT application_name FROM pg_stat_activity WHERE datname = '{db}'")
        assert "obhut" in apps.split(), apps
    finally:
        if srv.running():
            srv.stop_ok()


def test_the_password_is_never_taken_from_the_command_line_and_its_file_must_be_private(pg, tmp_path):
    url = pg.new_database()
    with_pw = url.replace("obhut@", f"obhut:{PASSWORD}@")
    r = run_obhut("serve", "--data-dir", str(tmp_path / "d"), "--catalog", with_pw)
    assert_one_line_failure(r, "a password in the URL")
    assert "holds a password" in r.stderr and PASSWORD not in r.stderr
    loose = tmp_path / "loose"
    loose.write_text(PASSWORD)
    loose.chmod(0o644)
    r = run_obhut("serve", "--data-dir", str(tmp_path / "d"), "--catalog", url, "--catalog-password-file", str(loose))
    assert_one_line_failure(r, "a password file others can read")
    assert "chmod 600" in r.stderr
    # A data directory without a catalog to copy: one clear line.
    r = run_obhut("catalog", "migrate", "--from", str(tmp_path / "d"), "--to", url,
                  env={"OBHUT_CATALOG_PASSWORD": PASSWORD})
    assert_one_line_failure(r, "a data directory without a catalog")
    assert "no catalog at" in r.stderr


def test_catalog_migrate_copies_an_embedded_catalog_and_postgres_serves_every_object(pg, tmp_path):
    srv = pg_server(tmp_path, "srv", None).start()
    s3 = srv.client()
    bucket = unique_name("mig")
    s3.create_bucket(Bucket=bucket)
    bodies = {name: os.urandom(random.randint(1, 5000)) for name in NAMES}
    for name, body in bodies.items():
        s3.put_object(Bucket=bucket, Key=name, Body=body)
    big = os.urandom(5 * MIB + 17)
    s3.upload_fileobj(__import__("io").BytesIO(big), bucket, "big/\u00f6l",
                      Config=__import__("boto3").s3.transfer.TransferConfig(multipart_threshold=5 * MIB,
                                                                           multipart_chunksize=5 * MIB))
    bodies["big/\u00f6l"] = big
    url = pg.new_database()
    env = {"OBHUT_CATALOG_PASSWORD": PASSWORD}
    # Not while the server runs on the directory.
    r = run_obhut("catalog", "migrate", "--from", str(srv.data_dir), "--to", url, env=env)
    assert_one_line_failure(r, "migrate beside a running server")
    assert "running" in r.stderr
    srv.stop_ok()
    catalog_db = srv.data_dir / "catalog.db"
    before = hashlib.sha256(catalog_db.read_bytes()).hexdigest()
    wrong = run_obhut("catalog", "migrate", "--from", str(srv.data_dir), "--to", url,
                      env={"OBHUT_CATALOG_PASSWORD": "not-it"})
    assert_one_line_failure(wrong, "a wrong password")
    assert "not-it" not in wrong.stderr and "password" in wrong.stderr.lower()
    outputs = []
    for _ in range(2):  # a second run (as after an interruption) copies the same again
        r = run_obhut("catalog", "migrate", "--from", str(srv.data_dir), "--to", url, env=env)
        assert r.returncode == 0, r.stderr
        outputs.append(r.stdout)
    assert outputs[0] == outputs[1]
    lines = outputs[0].splitlines()
    tables = ["tenants", "sites", "residency", "buckets", "bucket_keys", "objects", "uploads", "parts", "upgrades"]
    for table in tables:
        assert any(ln.split()[0] == table and "digest" in ln for ln in lines), (table, lines)
    objects_line = next(ln for ln in lines if ln.startswith("objects "))
    assert objects_line.split()[1] == str(len(bodies)), objects_line
    assert hashlib.sha256(catalog_db.read_bytes()).hexdigest() == before, "the source catalog was changed"
    assert not (srv.data_dir / "catalog.db-wal").exists()

    # The same data directory (sites, trustee) served from PostgreSQL, named in the config file.
    config = tmp_path / "obhut.toml"
    config.write_text(f'catalog = "{url}"\n')
    srv.extra_args = ["--config", str(config)]
    srv.extra_env = env
    srv.start()
    try:
        s3 = srv.client()
        assert listed(s3, bucket) == byte_order(bodies)
        for name, body in bodies.items():
            assert s3.get_object(Bucket=bucket, Key=name)["Body"].read() == body, name
        s3.put_object(Bucket=bucket, Key="after", Body=b"new")
        assert s3.get_object(Bucket=bucket, Key="after")["Body"].read() == b"new"
    finally:
        srv.stop_ok()


def test_rows_edited_with_psql_grant_nothing(pg, tmp_path):
    url = pg.new_database()
    db = url.rsplit("/", 1)[1]
    srv = pg_server(tmp_path, "srv", url, env={"OBHUT_CATALOG_PASSWORD": PASSWORD}).start()
    try:
        s3, raw = srv.client(), srv.raw()
        bucket = unique_name("bound")
        s3.create_bucket(Bucket=bucket)
        secret = os.urandom(70_000)
        s3.put_object(Bucket=bucket, Key="private/salaries.csv", Body=secret)
        s3.put_object(Bucket=bucket, Key="shared/readme.txt", Body=b"for the grant")
        # The attack, on the live database (gateways share it): the record of a private
        # object filed under the prefix a grant or a careless policy exposes.
        pg.psql(db, (
            "INSERT INTO objects (bucket, key, size, etag, last_modified_ms, envelope, meta, sites, chunks) "
            "SELECT bucket, convert_to('shared/salaries.csv', 'UTF8'), size, etag, last_modified_ms, envelope, "
            f"meta, sites, chunks FROM objects WHERE bucket = '{bucket}' "
            "AND key = convert_to('private/salaries.csv', 'UTF8')"
        ))
        for method in ("GET", "HEAD"):
            r = raw.request(method, bucket, "shared/salaries.csv")
            assert_integrity_refused(r, f"{method} of the copied record")
            assert secret not in r.content
        assert listed(s3, bucket, "shared/") == ["shared/readme.txt"]
        assert s3.get_object(Bucket=bucket, Key="private/salaries.csv")["Body"].read() == secret
        alarm = wait_alarm(srv, bucket=bucket, key="shared/salaries.csv")
        assert alarm["tenant"] == "demo" and alarm["reason"], alarm
        assert len(alarms(srv, bucket=bucket, key="shared/salaries.csv")) == 1

        # An access key row written into the catalog, as into an earlier release's: nothing.
        forged_id, forged_secret = "OBK" + "F" * 17, "forged-secret-0123456789"
        pg.psql(db, "CREATE TABLE IF NOT EXISTS access_keys (access_key_id TEXT PRIMARY KEY, tenant TEXT NOT NULL,"
                    " secret TEXT NOT NULL, created_ms BIGINT NOT NULL)")
        pg.psql(db, f"INSERT INTO access_keys VALUES ('{forged_id}', 'demo', '{forged_secret}', 0)")
        forged = srv.raw(forged_id, forged_secret)
        assert_s3_error(forged.request("GET", bucket), 403, "InvalidAccessKeyId")
        assert_s3_error(forged.request("PUT", bucket, "planted", body=b"x"), 403, "InvalidAccessKeyId")

        # No secret of the tenant's is in the catalog's rows.
        dump = pg.psql(db, "SELECT string_agg(t::text, E'\\n') FROM (SELECT * FROM objects) t")
        assert srv.demo["AWS_SECRET_ACCESS_KEY"] not in dump
    finally:
        srv.stop_ok()


def test_a_bucket_owner_etag_or_checksum_edited_with_psql_serves_nothing(pg, tmp_path):
    """Beyond the object and access key rows: a bucket handed to another tenant, and an
    object's sealed ETag or sealed checksums replaced by another object's, on the live
    PostgreSQL catalog."""
    import json

    import botocore.exceptions

    from gov_helpers import make_tenant

    url = pg.new_database()
    db = url.rsplit("/", 1)[1]
    srv = pg_server(tmp_path, "srv", url, env={"OBHUT_CATALOG_PASSWORD": PASSWORD}).start()
    try:
        s3, raw = srv.client(), srv.raw()
        other = make_tenant(srv)

        # 1. The bucket's owner edited: the new "owner" gets no data and no listing, and the
        # real owner is refused too (the bucket's key is bound to its tenant).
        owned = unique_name("owned")
        s3.create_bucket(Bucket=owned)
        s3.put_object(Bucket=owned, Key="private", Body=b"demo's data")
        pg.psql(db, f"UPDATE buckets SET tenant = '{other['name']}' WHERE name = '{owned}'")
        s3.create_bucket(Bucket=unique_name("flush"))  # any such write empties the gateway's cache
        theirs = srv.raw(other["access_key"], other["secret_key"])
        for method, key, query in (("GET", "private", []), ("HEAD", "private", []), ("GET", None, [("list-type", "2")])):
            r = theirs.request(method, owned, key, query=query)
            assert_integrity_refused(r, f"{method} {key or 'listing'} by the tenant the bucket was handed to")
            assert b"demo's data" not in r.content and b"private" not in r.content, r.text[:300]
        alarm = wait_alarm(srv, bucket=owned, tenant=other["name"])
        assert "does not open" in alarm["reason"], alarm
        for method, key in (("HEAD", None), ("GET", "private"), ("GET", None)):
            r = raw.request(method, owned, key)
            assert_s3_error(r, 403, None if method == "HEAD" else "AccessDenied")
            assert b"demo's data" not in r.content
        pg.psql(db, f"UPDATE buckets SET tenant = 'demo' WHERE name = '{owned}'")
        s3.create_bucket(Bucket=unique_name("flush"))
        assert s3.get_object(Bucket=owned, Key="private")["Body"].read() == b"demo's data"

        # 2. A sealed ETag and sealed checksums copied from another object's row.
        bucket = unique_name("sealed")
        s3.create_bucket(Bucket=bucket)
        for key in ("a", "b"):
            s3.put_object(Bucket=bucket, Key=key, Body=key.encode() * 1000, ChecksumAlgorithm="SHA256")
        b_etag = s3.head_object(Bucket=bucket, Key="b")["ETag"]
        b_sum = s3.head_object(Bucket=bucket, Key="b", ChecksumMode="ENABLED")["ChecksumSHA256"]
        row = lambda key: f"bucket = '{bucket}' AND key = convert_to('{key}', 'UTF8')"
        pg.psql(db, f"UPDATE objects SET etag = (SELECT etag FROM objects WHERE {row('b')}) WHERE {row('a')}")
        s3.put_object(Bucket=bucket, Key="c", Body=b"c" * 1000, ChecksumAlgorithm="SHA256")
        pg.psql(db, f"UPDATE objects SET meta = (SELECT meta FROM objects WHERE {row('b')}) WHERE {row('c')}")
        s3.create_bucket(Bucket=unique_name("flush"))
        for key, what in (("a", "another object's ETag"), ("c", "another object's checksums")):
            for method, headers in (("GET", {}), ("HEAD", {}), ("GET", {"x-amz-checksum-mode": "ENABLED"}),
                                    ("GET", {"If-Match": b_etag})):
                r = raw.request(method, bucket, key, headers=headers)
                if "If-Match" in headers and key == "c":
                    # c's own ETag is intact: the condition fails before its metadata is opened
                    assert_s3_error(r, 412, "PreconditionFailed")
                else:
                    assert_integrity_refused(r, f"{method} of {key} with {what} {headers}")
                assert b_etag.strip('"').encode() not in r.content and b_etag not in r.headers.get("ETag", "")
                assert b_sum.encode() not in r.content and b_sum not in json.dumps(dict(r.headers))
                assert (key.encode() * 1000) not in r.content
        try:
            names = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        except botocore.exceptions.ClientError as e:
            raise AssertionError(f"one bad record broke the listing: {e.response['Error']}") from e
        assert "a" not in names, "an object whose ETag was replaced is listed"
        # The row the values were copied from still serves, with its own ETag and checksum.
        got = s3.get_object(Bucket=bucket, Key="b", ChecksumMode="ENABLED")
        assert got["Body"].read() == b"b" * 1000 and got["ETag"] == b_etag and got["ChecksumSHA256"] == b_sum
        wait_alarm(srv, bucket=bucket, key="a")
        wait_alarm(srv, bucket=bucket, key="c")
    finally:
        srv.stop_ok()


def test_residency_edited_with_psql_neither_widens_nor_narrows_placement(pg, tmp_path):
    """The catalog's copy of a residency policy, on PostgreSQL, edited to allow a US site and
    to drop the AT site the trustee's record requires: nothing goes to the US site, nothing
    leaves the AT site, the difference is reported and the copy rewritten."""
    import json

    from site_helpers import policy, repair_status, run_ok, site_add_fs, site_blobs, wait_repair_idle, wait_until
    from test_policy_owner import DIFFERS

    url = pg.new_database()
    db = url.rsplit("/", 1)[1]
    srv = pg_server(tmp_path, "srv", url, env={"OBHUT_CATALOG_PASSWORD": PASSWORD}).start()
    at, us = tmp_path / "at-vie", tmp_path / "us-east"
    try:
        site_add_fs(srv, "at-vie", "AT", at)
        site_add_fs(srv, "us-east", "US", us)
        policy(srv, "demo", jurisdiction="DE,AT", min_sites=3)
        s3 = srv.client()
        bucket = unique_name("resid")
        s3.create_bucket(Bucket=bucket)
        for i in range(4):
            s3.put_object(Bucket=bucket, Key=f"k{i}", Body=b"customer data %d" % i)
        on_at = site_blobs(at)
        assert len(on_at) >= 4, "with DE,AT and min_sites 3 every object is on the AT site too"
        srv.stop_ok()
        pg.psql(db, "UPDATE tenants SET jurisdictions = '[\"DE\",\"US\"]', min_sites = 2 WHERE name = 'demo'")
        rule = json.dumps({"jurisdictions": ["DE", "US"]})
        pg.psql(db, f"INSERT INTO residency (scope, rule) VALUES ('bucket:{bucket}', '{rule}') "
                    "ON CONFLICT (scope) DO UPDATE SET rule = EXCLUDED.rule")
        srv.start()
        found = [ln for ln in srv.log_path.read_text(errors="replace").splitlines() if DIFFERS in ln]
        assert found, "the edited copy was not reported"
        s3 = srv.client()
        for i in range(4, 8):
            s3.put_object(Bucket=bucket, Key=f"k{i}", Body=b"customer data %d" % i)
        run_ok(srv, srv.token("operator"), "repair")
        wait_until(lambda: repair_status(srv)["state"] != "running", timeout=60, what="repair pass")
        st = wait_repair_idle(srv)
        assert st["replicas_removed"] == 0, st
        assert site_blobs(us) == set(), "a blob of a DE,AT tenant landed on the US site"
        assert on_at <= site_blobs(at), "a replica left the AT site the trustee's record requires"
        assert len(site_blobs(at)) >= len(on_at) + 4, "new objects are not placed by the trustee's policy"
        out = run_ok(srv, srv.token("officer1"), "tenant", "policy", "demo")
        assert "min_sites 3" in out and "US" not in out, out
        row = pg.psql(db, "SELECT jurisdictions, min_sites FROM tenants WHERE name = 'demo'").strip()
        assert json.loads(row.split("|")[0]) == ["DE", "AT"] and row.split("|")[1] == "3", \
            f"the catalog's copy was not rewritten from the trustee's record: {row}"
    finally:
        srv.stop_ok()


def _two_gateways_on_postgres(pg, split, tmp_path):
    """The split's trustee and gateway on a catalog in PostgreSQL (migrated from its data
    directory), and a second gateway on the same data directory and catalog, started and
    healthy. Returns the second gateway's process and its S3 and admin ports."""
    from split_helpers import Proc, _free_ports

    url = pg.new_database()
    pw = password_file(tmp_path)
    r = run_obhut("catalog", "migrate", "--from", str(split.data_dir), "--to", url,
                  "--catalog-password-file", str(pw))
    assert r.returncode == 0, r.stderr
    split.start_trustee()
    config = split.gateway_config()
    with open(config, "r+") as f:
        text = f.read()
        f.seek(0)
        f.write(f'catalog = "{url}"\ncatalog_password_file = "{pw}"\n' + text)
    split.start_gateway(config)
    s3_port, admin_port = _free_ports(2)
    second = tmp_path / "gateway-b.toml"
    second.write_text(
        config.read_text()
        .replace(f"127.0.0.1:{split.s3_port}", f"127.0.0.1:{s3_port}")
        .replace(f"127.0.0.1:{split.admin_port}", f"127.0.0.1:{admin_port}")
        .replace("gateway-1.", "gateway-2.")
        .replace(f'catalog = "{url}"\ncatalog_password_file = "{pw}"\n', "")
    )
    gw2 = Proc("obhut gateway (b)", ["gateway", "--config", str(second), "--catalog", url,
                                      "--catalog-password-file", str(pw)], tmp_path / "gateway-b.log")
    gw2.start()
    import requests

    def ready():
        resp = requests.get(f"http://127.0.0.1:{admin_port}/v1/health", timeout=2)
        return resp.status_code == 200, f"health {resp.status_code}"

    try:
        gw2.wait_ready(ready, "the second gateway's health")
    except BaseException:
        gw2.stop()
        raise
    return gw2, s3_port, admin_port


def test_two_gateways_share_one_catalog_on_postgres(pg, split, tmp_path):
    """`obhut gateway` on PostgreSQL: two gateways on one data directory (no lock taken), one
    configured by its file and one by flags, each sees what the other writes."""
    bucket = unique_name("dc")
    s3 = None
    gw2, s3_port, admin_port = _two_gateways_on_postgres(pg, split, tmp_path)
    try:
        s3 = split.s3()
        from conftest import s3_client

        s3b = s3_client(f"http://127.0.0.1:{s3_port}", split.demo["AWS_ACCESS_KEY_ID"],
                        split.demo["AWS_SECRET_ACCESS_KEY"], connect_timeout=5, read_timeout=30)
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="\u00fcber/a", Body=b"from a")
        s3b.put_object(Bucket=bucket, Key="Zeta", Body=b"from b")
        assert s3b.get_object(Bucket=bucket, Key="\u00fcber/a")["Body"].read() == b"from a"
        assert s3.get_object(Bucket=bucket, Key="Zeta")["Body"].read() == b"from b"
        assert listed(s3b, bucket) == ["Zeta", "\u00fcber/a"]
        # If-None-Match: * through both: the second is refused whichever gateway it reaches.
        s3.put_object(Bucket=bucket, Key="once", Body=b"1", IfNoneMatch="*")
        from botocore.exceptions import ClientError

        with pytest.raises(ClientError) as e:
            s3b.put_object(Bucket=bucket, Key="once", Body=b"2", IfNoneMatch="*")
        assert e.value.response["Error"]["Code"] == "PreconditionFailed"
        # Each gateway keeps buckets, tenants and bucket keys in memory; a bucket deleted
        # through one is gone for the other as soon as the notification of that commit
        # arrives, and always within the bound stated in docs/catalog.md ("Caching across
        # gateways", 5 s).
        gone = unique_name("gone")
        s3.create_bucket(Bucket=gone)
        s3b.head_bucket(Bucket=gone)  # now in the second gateway's cache
        s3b.head_bucket(Bucket=gone)
        s3.delete_bucket(Bucket=gone)
        start = time.monotonic()
        while True:
            try:
                s3b.head_bucket(Bucket=gone)
            except ClientError as e:
                assert e.response["Error"]["Code"] in ("404", "NoSuchBucket"), e.response
                break
            assert time.monotonic() - start < 5, "the deleted bucket is still seen after 5 s"
            time.sleep(0.01)
        with pytest.raises(ClientError) as e:
            s3b.put_object(Bucket=gone, Key="k", Body=b"x")
        assert e.value.response["Error"]["Code"] == "NoSuchBucket"
        # And the other way round: a bucket created through the second gateway, which the
        # first had looked up (and found missing) just before.
        born = unique_name("born")
        with pytest.raises(ClientError):
            s3.head_bucket(Bucket=born)
        s3b.create_bucket(Bucket=born)
        start = time.monotonic()
        while True:
            try:
                s3.put_object(Bucket=born, Key="k", Body=b"x")
                break
            except ClientError as e:
                assert e.response["Error"]["Code"] == "NoSuchBucket", e.response
            assert time.monotonic() - start < 5, "the new bucket is still missing after 5 s"
            time.sleep(0.01)
        assert s3b.get_object(Bucket=born, Key="k")["Body"].read() == b"x"
        for log in (split.gateway.log_text(), gw2.log_text()):
            assert "shared with other gateways" in log
            assert "orphans are collected by the lease holder after their grace period" in log
            assert PASSWORD not in log
    finally:
        code = gw2.stop()
        assert code == 0, gw2.log_tail()


def test_quotas_on_postgres_hold_under_parallel_puts_and_count_deletes(pg, tmp_path):
    """The catalog on PostgreSQL enforces a tenant's quota as the embedded one does: of 24
    parallel PUTs exactly those that fit get in, and a delete gives its bytes back."""
    import concurrent.futures

    url = pg.new_database()
    pw = password_file(tmp_path)
    srv = pg_server(tmp_path, "srv", url, password_file=pw).start()
    try:
        s3 = srv.client()
        bucket = unique_name("pgq")
        s3.create_bucket(Bucket=bucket)
        srv.cli_ok("tenant", "quota", "demo", "--max-bytes", "800KiB", token=srv.token("officer1"))
        body = b"q" * (100 * 1024)

        def put(i):
            try:
                srv.client().put_object(Bucket=bucket, Key=f"k{i:02}", Body=body)
                return None
            except Exception as e:  # noqa: BLE001 - the code is what matters
                return getattr(e, "response", {}).get("Error", {}).get("Code", repr(e))

        with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
            results = list(pool.map(put, range(24)))
        assert set(results) <= {None, "QuotaExceeded"}, results
        assert results.count(None) == 8, results
        assert len(listed(s3, bucket)) == 8
        s3.delete_object(Bucket=bucket, Key=listed(s3, bucket)[0])
        s3.put_object(Bucket=bucket, Key="after-delete", Body=body)
        out = srv.cli_ok("tenant", "quota", "demo", token=srv.token("officer1"))
        assert "800.0 KiB (819200 B) used" in out and "8 used" in out, out
    finally:
        srv.stop_ok()


def test_a_site_added_through_one_gateway_is_used_by_the_other_without_a_restart(pg, split, garage, tmp_path):
    """An officer adds a site (a bucket on Garage) through the first gateway's admin API; the
    second gateway, which shares the catalog and was started before, places new objects on it
    within seconds, without a restart; and when the officer gives the site new credentials
    (`site set-backend`) and the old key is deleted, the second gateway goes on with the new
    ones, again without a restart."""
    from conftest import s3_client
    from site_helpers import remote_keys

    gw2, s3_port, _ = _two_gateways_on_postgres(pg, split, tmp_path)
    try:
        s3b = s3_client(f"http://127.0.0.1:{s3_port}", split.demo["AWS_ACCESS_KEY_ID"],
                        split.demo["AWS_SECRET_ACCESS_KEY"], connect_timeout=5, read_timeout=30)
        bucket = unique_name("grow")
        s3b.create_bucket(Bucket=bucket)
        from botocore.exceptions import ClientError

        # Three sites wanted, two there: the second gateway refuses the write.
        r = split.run("tenant", "policy", "demo", "--min-sites", "3", token=split.token("officer1"))
        assert r.returncode == 0, r.stderr
        with pytest.raises(ClientError) as e:
            s3b.put_object(Bucket=bucket, Key="k", Body=b"x" * 5000)
        assert e.value.response["Error"]["Code"] == "ServiceUnavailable", e.value.response

        remote = garage.site()
        import subprocess

        r = subprocess.run(
            [str(obhut_bin()), "site", "add", "de-garage", "--jurisdiction", "DE", "--location", "Garage",
             "--s3", remote["url"], "--bucket", remote["bucket"], "--region", remote["region"],
             "--access-key", remote["access_key"]],
            env=clean_env({"OBHUT_ADMIN_URL": split.admin_url, "OBHUT_TOKEN": split.token("officer1"),
                           "OBHUT_SITE_SECRET_KEY": remote["secret_key"]}),
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        )
        assert r.returncode == 0, f"site add through the first gateway: {r.stderr}"
        identity = set(remote_keys(remote))

        # The PUT succeeds once the second gateway has read the registry again (every 5 s).
        start = time.monotonic()
        while True:
            try:
                s3b.put_object(Bucket=bucket, Key="k", Body=b"x" * 5000)
                break
            except ClientError as e:
                assert e.response["Error"]["Code"] == "ServiceUnavailable", e.response
            assert time.monotonic() - start < 20, (
                f"the second gateway does not use the new site after 20 s:\n{gw2.log_tail()}"
            )
            time.sleep(0.2)
        assert len(set(remote_keys(remote)) - identity) == 1, "the object's blob is not on Garage"
        assert s3b.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x" * 5000
        assert "site opened from the registry" in gw2.log_text()
        assert remote["secret_key"] not in gw2.log_text()

        # Pointed at a bucket that is not this site (no identity there): refused, nothing changes.
        other = garage.new_bucket("not-the-site")
        r = subprocess.run(
            [str(obhut_bin()), "site", "set-backend", "de-garage",
             "--s3", remote["url"], "--bucket", other, "--region", remote["region"],
             "--access-key", remote["access_key"]],
            env=clean_env({"OBHUT_ADMIN_URL": split.admin_url, "OBHUT_TOKEN": split.token("officer1"),
                           "OBHUT_SITE_SECRET_KEY": remote["secret_key"]}),
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        )
        assert r.returncode != 0 and "obhut-site.json" in r.stderr, (r.returncode, r.stderr)
        r = split.run("site", "list", token=split.token("operator"))
        assert r.returncode == 0 and other not in r.stdout, r.stdout

        # New credentials for the site; the old key is deleted on Garage.
        new_id, new_secret = garage.new_key("obhut-rotated", remote["bucket"])
        r = subprocess.run(
            [str(obhut_bin()), "site", "set-backend", "de-garage",
             "--s3", remote["url"], "--bucket", remote["bucket"], "--region", remote["region"],
             "--access-key", new_id],
            env=clean_env({"OBHUT_ADMIN_URL": split.admin_url, "OBHUT_TOKEN": split.token("officer1"),
                           "OBHUT_SITE_SECRET_KEY": new_secret}),
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        )
        assert r.returncode == 0, f"site set-backend through the first gateway: {r.stderr}"
        assert new_secret not in r.stdout + r.stderr
        garage.delete_key(remote["access_key"])
        garage.key_id, garage.secret_key = new_id, new_secret  # what the tests read Garage with
        r = split.run("site", "list", token=split.token("operator"))
        assert r.returncode == 0 and f"as {new_id}" in r.stdout, r.stdout
        start = time.monotonic()
        while True:
            try:
                s3b.put_object(Bucket=bucket, Key="k2", Body=b"y" * 5000)
                break
            except ClientError as e:
                assert e.response["Error"]["Code"] == "ServiceUnavailable", e.response
            assert time.monotonic() - start < 20, (
                f"the second gateway does not use the site's new credentials after 20 s:\n{gw2.log_tail()}"
            )
            time.sleep(0.2)
        assert len(set(remote_keys(remote)) - identity) == 2
        assert s3b.get_object(Bucket=bucket, Key="k2")["Body"].read() == b"y" * 5000
        log = gw2.log_text() + split.gateway.log_text()
        assert new_secret not in log and remote["secret_key"] not in log
        r = split.run("log", "show", token=split.token("auditor"))
        assert r.returncode == 0 and "site_backend_changed" in r.stdout, r.stdout[-2000:]
        assert new_secret not in r.stdout
    finally:
        code = gw2.stop()
        assert code == 0, gw2.log_tail()
