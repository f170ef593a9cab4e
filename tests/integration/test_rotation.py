"""Key rotation: bucket keys (a new version and a rewrap of every object key, by the tenant's
admin, with progress) and the master key (offline, from the current shares)."""

import json
import os
import sqlite3
import subprocess

from conftest import clean_env, obhut_bin


def envelope_versions(srv, bucket: str) -> list[int]:
    db = sqlite3.connect(f"file:{srv.data_dir / 'catalog.db'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT envelope FROM objects WHERE bucket = ?", (bucket,)).fetchall()
        rows += db.execute("SELECT envelope FROM uploads WHERE bucket = ?", (bucket,)).fetchall()
    finally:
        db.close()
    return [json.loads(bytes(r[0]))["key_version"] for r in rows]


def test_bucket_key_rotation_rewraps_every_object_key(private_server):
    srv = private_server
    s3 = srv.client()
    s3.create_bucket(Bucket="rot")
    bodies = {f"k{i:02}": os.urandom(1000 + i) for i in range(30)}
    for k, b in bodies.items():
        s3.put_object(Bucket="rot", Key=k, Body=b, Metadata={"n": k})
    up = s3.create_multipart_upload(Bucket="rot", Key="mp")["UploadId"]
    part = os.urandom(5 * 1024 * 1024)
    etag1 = s3.upload_part(Bucket="rot", Key="mp", UploadId=up, PartNumber=1, Body=part)["ETag"]
    assert set(envelope_versions(srv, "rot")) == {1}

    # only the tenant's own admin may rotate
    for who in ("officer1", "operator", "auditor"):
        r = srv.cli("tenant", "rotate-key", "demo", "--bucket", "rot", token=srv.token(who))
        assert r.returncode != 0 and "403" in r.stderr, (who, r.returncode, r.stderr)

    out = srv.cli_ok("tenant", "rotate-key", "demo", "--bucket", "rot", token=srv.token("demo_admin"))
    assert "key version 2 in use; 31 object keys rewrapped" in out, out
    assert set(envelope_versions(srv, "rot")) == {2}

    for k, b in bodies.items():
        o = s3.get_object(Bucket="rot", Key=k)
        assert o["Body"].read() == b and o["Metadata"] == {"n": k}
    etag2 = s3.upload_part(Bucket="rot", Key="mp", UploadId=up, PartNumber=2, Body=b"tail")["ETag"]
    s3.complete_multipart_upload(
        Bucket="rot", Key="mp", UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag1}, {"PartNumber": 2, "ETag": etag2}]},
    )
    assert s3.get_object(Bucket="rot", Key="mp")["Body"].read() == part + b"tail"
    s3.put_object(Bucket="rot", Key="new", Body=b"after")
    assert set(envelope_versions(srv, "rot")) == {2}

    # a second rotation moves everything to version 3; the tenant admin of demo cannot touch
    # another tenant's bucket
    out = srv.cli_ok("tenant", "rotate-key", "demo", "--bucket", "rot", token=srv.token("demo_admin"))
    assert "key version 3 in use; 32 object keys rewrapped" in out, out
    r = srv.cli("tenant", "rotate-key", "other", "--bucket", "rot", token=srv.token("demo_admin"))
    assert r.returncode != 0 and "403" in r.stderr, r.stderr
    srv.stop_ok()
    srv.start()
    assert srv.client().get_object(Bucket="rot", Key="k07")["Body"].read() == bodies["k07"]


def run_rotate_master(srv, stdin: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(obhut_bin()), "trustee", "rotate-master", "--dir", str(srv.data_dir / "trustee"), *extra],
        input=stdin, capture_output=True, text=True, env=clean_env({}), timeout=60,
    )


def test_master_key_rotation_from_the_current_shares(private_server):
    srv = private_server
    s3 = srv.client()
    s3.create_bucket(Bucket="mkey")
    s3.put_object(Bucket="mkey", Key="k", Body=b"before rotation")
    dev_file = srv.data_dir / "trustee" / "dev-unseal-shares"
    old = [l for l in dev_file.read_text().splitlines() if l.strip()]

    r = run_rotate_master(srv, "\n".join(old) + "\n", "--shares", "5", "--threshold", "3")
    assert r.returncode != 0 and "running trustee" in r.stderr, ("refused while serving", r.stderr)

    srv.stop_ok()
    r = run_rotate_master(srv, old[0] + "\n", "--shares", "5", "--threshold", "3")
    assert r.returncode != 0, "one share must not be enough"
    r = run_rotate_master(srv, "\n".join(old) + "\n", "--shares", "5", "--threshold", "3")
    assert r.returncode == 0, r.stderr
    new = [l.split(": ", 1)[1] for l in r.stdout.splitlines() if l.startswith("share ")]
    assert len(new) == 5 and not set(new) & set(old), r.stdout
    assert dev_file.read_text().split() == new[:3]
    assert dev_file.stat().st_mode & 0o777 == 0o600
    keystore = json.loads((srv.data_dir / "trustee" / "keystore.json").read_text())
    assert keystore["threshold"] == 3 and keystore["shares"] == 5

    srv.start()
    assert srv.client().get_object(Bucket="mkey", Key="k")["Body"].read() == b"before rotation"
    # the old shares are void
    srv.cli_ok("trustee", "seal", token=srv.token("officer1"))
    for share in old:
        srv.cli_ok("trustee", "unseal", share, token=srv.token("officer1"))
    assert "sealed: 2 of 3" in srv.cli_ok("trustee", "status", token=srv.token("operator"))
    # a third share mixed with the old ones reconstructs nothing, and starts the count again
    r = srv.cli("trustee", "unseal", new[2], token=srv.token("officer1"))
    assert r.returncode != 0 and "do not reconstruct" in r.stderr, r.stderr
    assert "sealed: 0 of 3" in srv.cli_ok("trustee", "status", token=srv.token("operator"))
    for share in new[2:5]:
        srv.cli_ok("trustee", "unseal", share, token=srv.token("officer1"))
    assert srv.cli_ok("trustee", "status", token=srv.token("operator")).strip() == "unsealed"
