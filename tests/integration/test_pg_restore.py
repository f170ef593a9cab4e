"""Point-in-time restore of the catalog on PostgreSQL (docs/deploy.md, "Backups of the
catalog"): a base backup (`pg_basebackup`) and archived WAL (`archive_mode = on`, an
`archive_command`) bring the catalog back to a named restore point, and every object visible
in the restored catalog reads back through a gateway started on it, though after that point
objects were deleted, overwritten and a version deleted for good. The gateway leaves the
blobs of what it removed to orphan collection, which keeps them for the retention of removed
blobs (`OBHUT_BLOB_RETENTION_MS`) while it runs every 300 ms with a grace of 1 s: its record of
them (`unreferenced_blobs`) shows it found them and kept them."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import botocore.exceptions
import requests

from pg_helpers import PgServer
from split_helpers import Proc, _free_ports, split  # noqa: F401 (fixture)
from s3helpers import unique_name
from test_pg_catalog import password_file, run_obhut

RETENTION_MS = 3_600_000
ENV = {
    "OBHUT_BLOB_RETENTION_MS": str(RETENTION_MS),
    "OBHUT_ORPHAN_GRACE_MS": "1000",
    "OBHUT_ORPHAN_EVERY_MS": "300",
    "OBHUT_TEST_SHORT_ORPHAN_GRACE": "1",
    "OBHUT_LEASE_TTL_MS": "3000",
    "OBHUT_LEASE_RENEW_MS": "1000",
}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blobs_on_sites(data_dir: Path) -> set[str]:
    return {f"{p.parts[-4]}/{p.name}" for p in data_dir.glob("sites/*/blobs/*/*")}


def start_gateway(config: Path, url: str, pw: Path, log: Path, admin_port: int) -> Proc:
    gw = Proc("obhut gateway", ["gateway", "--config", str(config), "--catalog", url,
                                "--catalog-password-file", str(pw)], log, env=ENV)
    gw.start()

    def ready():
        r = requests.get(f"http://127.0.0.1:{admin_port}/readyz", timeout=2)
        return r.status_code == 200 and r.json().get("background") == "leader", f"readyz {r.status_code} {r.text[:200]}"

    gw.wait_ready(ready, "the gateway's readiness, holding the lease on background work")
    return gw


def snapshot(s3, buckets: list[str]) -> dict:
    """Every visible object and version of `buckets`: key (and version id) -> sha256 of its body."""
    seen: dict = {}
    for b in buckets:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=b):
            for o in page.get("Contents", []):
                seen[(b, o["Key"], None)] = sha(s3.get_object(Bucket=b, Key=o["Key"])["Body"].read())
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=b):
            for v in page.get("Versions", []):
                if v["VersionId"] != "null":
                    body = s3.get_object(Bucket=b, Key=v["Key"], VersionId=v["VersionId"])["Body"].read()
                    seen[(b, v["Key"], v["VersionId"])] = sha(body)
    return seen


def test_the_catalog_restored_to_a_point_in_time_reads_back_every_object(split, tmp_path):
    pg = PgServer()
    archive = pg.base / "archive"
    archive.mkdir(parents=True)
    if pg.root:
        shutil.chown(archive, "postgres", "postgres")
    pg.start([
        "wal_level=replica", "archive_mode=on", "full_page_writes=on",
        f"archive_command='cp %p {archive}/%f'",
    ])
    gw: Proc | None = None
    try:
        url = pg.new_database()
        db = url.rsplit("/", 1)[1]
        pw = password_file(tmp_path)
        r = run_obhut("catalog", "migrate", "--from", str(split.data_dir), "--to", url,
                      "--catalog-password-file", str(pw))
        assert r.returncode == 0, r.stderr

        # The base backup (as a nightly one would be): before any of the writes below.
        backup = pg.base / "backup"
        pg._run(pg._as_server_user([
            str(pg.bin / "pg_basebackup"), "-h", str(pg.base), "-p", str(pg.port), "-U", "postgres",
            "-D", str(backup), "-X", "fetch", "-c", "fast",
        ]), "pg_basebackup")

        split.start_trustee()
        s3_port, admin_port = _free_ports(2)
        config = tmp_path / "gateway.toml"
        config.write_text(
            split.gateway_config().read_text()
            .replace(f"127.0.0.1:{split.s3_port}", f"127.0.0.1:{s3_port}")
            .replace(f"127.0.0.1:{split.admin_port}", f"127.0.0.1:{admin_port}")
        )
        log = tmp_path / "gateway.log"
        gw = start_gateway(config, url, pw, log, admin_port)

        from conftest import s3_client
        s3 = s3_client(f"http://127.0.0.1:{s3_port}", split.demo["AWS_ACCESS_KEY_ID"],
                       split.demo["AWS_SECRET_ACCESS_KEY"])
        plain, versioned = unique_name("pitr"), unique_name("pitr-v")
        s3.create_bucket(Bucket=plain)
        s3.create_bucket(Bucket=versioned)
        s3.put_bucket_versioning(Bucket=versioned, VersioningConfiguration={"Status": "Enabled"})
        bodies = {
            "kept": os.urandom(5000),
            "deleted-later": os.urandom(7000),
            "overwritten-later": os.urandom(9000),
            "big-overwritten-later": os.urandom(12 * 1024 * 1024 + 3),
        }
        for k, v in bodies.items():
            s3.put_object(Bucket=plain, Key=k, Body=v)
        first = s3.put_object(Bucket=versioned, Key="doc", Body=b"version one " * 500)["VersionId"]
        s3.put_object(Bucket=versioned, Key="doc", Body=b"version two " * 500)

        # The point to restore to, and what is visible then.
        at_point = snapshot(s3, [plain, versioned])
        assert len(at_point) == len(bodies) + 2 + 1, at_point
        pg.psql("postgres", "SELECT pg_create_restore_point('before-the-mistakes')")

        # After it: deletions, overwrites, a version deleted for good, a new object.
        s3.delete_object(Bucket=plain, Key="deleted-later")
        s3.put_object(Bucket=plain, Key="overwritten-later", Body=b"the new content")
        s3.put_object(Bucket=plain, Key="big-overwritten-later", Body=b"small now")
        s3.delete_object(Bucket=versioned, Key="doc", VersionId=first)
        s3.put_object(Bucket=plain, Key="written-later", Body=b"not there at the point")
        after = snapshot(s3, [plain, versioned])
        assert after != at_point
        on_sites = blobs_on_sites(split.data_dir)

        # Orphan collection runs (every 300 ms, 1 s of grace) and keeps the removed blobs: it
        # found them unreferenced (its record in the catalog) and removed none of them.
        deadline = time.monotonic() + 30
        while True:
            found = int(pg.psql(db, "SELECT count(*) FROM unreferenced_blobs").strip())
            # deleted-later, overwritten-later, big-overwritten-later (its chunks) and the
            # version deleted for good, each on both sites.
            if found >= 2 * 4:
                break
            assert time.monotonic() < deadline, (
                f"orphan collection did not find the removed blobs ({found} recorded)\n{gw.log_tail()}")
            time.sleep(0.3)
        time.sleep(1.5)
        assert blobs_on_sites(split.data_dir) >= on_sites, (
            f"blobs removed within the retention: {sorted(on_sites - blobs_on_sites(split.data_dir))}")
        assert "orphan blobs removed" not in gw.log_text(), gw.log_tail()

        # Every WAL segment up to the restore point archived, then the primary is lost.
        segment = pg.psql("postgres", "SELECT pg_walfile_name(pg_switch_wal())").strip()
        deadline = time.monotonic() + 30
        while not (archive / segment).exists():
            assert time.monotonic() < deadline, f"WAL segment {segment} not archived: {sorted(os.listdir(archive))}"
            time.sleep(0.2)
        assert gw.stop() == 0, gw.log_tail()
        gw = None
        pg.halt()

        # The restore: the base backup, the archive's WAL replayed up to the restore point.
        shutil.rmtree(pg.data)
        pg._run(pg._as_server_user(["cp", "-a", str(backup), str(pg.data)]), "copy of the base backup")
        with open(pg.data / "postgresql.auto.conf", "a") as f:
            f.write(f"restore_command = 'cp {archive}/%f %p'\n"
                    "recovery_target_name = 'before-the-mistakes'\n"
                    "recovery_target_action = 'promote'\n")
        (pg.data / "recovery.signal").touch()
        if pg.root:
            shutil.chown(pg.data / "recovery.signal", "postgres", "postgres")
        pg.restart()
        deadline = time.monotonic() + 60
        while pg.psql("postgres", "SELECT pg_is_in_recovery()").strip() != "f":
            assert time.monotonic() < deadline, (pg.base / "server.log").read_text()[-3000:]
            time.sleep(0.2)
        assert "recovery stopping at restore point" in (pg.base / "server.log").read_text()

        # A gateway on the restored catalog: exactly what was visible at the point, every
        # object and version reading back whole.
        gw = start_gateway(config, url, pw, log, admin_port)
        restored = snapshot(s3, [plain, versioned])
        assert restored == at_point, {
            "missing": sorted(set(at_point) - set(restored)),
            "unexpected": sorted(set(restored) - set(at_point)),
            "different": sorted(k for k in at_point if k in restored and restored[k] != at_point[k]),
        }
        for k, v in bodies.items():
            assert s3.get_object(Bucket=plain, Key=k)["Body"].read() == v, k
        try:
            s3.head_object(Bucket=plain, Key="written-later")
            raise AssertionError("an object written after the restore point is visible")
        except botocore.exceptions.ClientError as e:
            assert e.response["Error"]["Code"] in ("404", "NoSuchKey"), e.response
    finally:
        if gw is not None and gw.running():
            gw.stop()
        pg.stop()
