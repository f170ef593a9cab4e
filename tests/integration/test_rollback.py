"""`obhut bucket rollback`: a versioned bucket made again what it was at a point in time, with
the tenant's own S3 key (docs/s3-compatibility.md, "Rolling a bucket back to a point in time").

The story it exists for: restic backs up into a bucket with object lock and a default
GOVERNANCE retention, holding a `--backup` key (write and delete objects; never delete a
version, bypass a retention or read versions). Ransomware holding that key forgets and prunes
every snapshot and then removes every object with `aws s3 rm --recursive`; its attempts to
remove versions are refused. The tenant's admin rolls the bucket back to a time after the last
snapshot, and restic lists every snapshot again and restores each byte for byte. Keys that are
not the tenant's (another tenant's) or may not read versions (the backup key) cannot roll back,
and change nothing when they try.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from conftest import aws_env, parse_key_output, run_aws, tool
from s3helpers import clean_env, expect_error, unique_name

COUNTS = re.compile(r": (\d+) restored, (\d+) hidden, (\d+) unchanged$")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def rfc3339(t: dt.datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def pause_past_now() -> dt.datetime:
    """A point in time strictly between what was written before and what is written after
    (LastModified has millisecond precision; the server's clock is this machine's)."""
    time.sleep(0.05)
    t = utc_now()
    time.sleep(0.05)
    return t


def new_key(server, *flags: str) -> dict:
    """A key of tenant demo made by its admin (a key of the whole tenant without flags)."""
    out = server.cli_ok("tenant", "key-create", "demo", *flags, token=server.token("demo_admin"))
    return parse_key_output(out)


def rollback(server, key: dict, bucket: str, to: str, *extra: str) -> subprocess.CompletedProcess:
    """`obhut bucket rollback` with `key` as the S3 credentials (and no admin token)."""
    return server.cli(
        "bucket", "rollback", bucket, "--to", to, *extra,
        env={
            "AWS_ACCESS_KEY_ID": key["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": key["AWS_SECRET_ACCESS_KEY"],
            "AWS_ENDPOINT_URL": server.s3_url,
            "AWS_REGION": server.demo["AWS_REGION"],
        },
        timeout=300,
    )


def rollback_ok(server, key: dict, bucket: str, to: str, *extra: str) -> tuple[int, int, int]:
    r = rollback(server, key, bucket, to, *extra)
    assert r.returncode == 0, f"rollback exited {r.returncode}: {r.stderr.strip()!r} {r.stdout.strip()!r}"
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1, f"rollback printed {r.stdout!r}"
    m = COUNTS.search(lines[0])
    assert m, f"rollback printed no counts: {lines[0]!r}"
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def assert_refused(r: subprocess.CompletedProcess, code: str) -> None:
    assert r.returncode != 0, f"rollback was not refused: {r.stdout!r}"
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("obhut: "), f"not one line: {r.stderr!r}"
    assert code in lines[0], f"expected {code}: {lines[0]!r}"
    assert r.stdout == "", r.stdout


def history(s3, bucket: str) -> list[tuple[str, str, bool]]:
    """Every version and delete marker of the bucket: (key, version id, is delete marker)."""
    out = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        out += [(v["Key"], v["VersionId"], False) for v in page.get("Versions", [])]
        out += [(m["Key"], m["VersionId"], True) for m in page.get("DeleteMarkers", [])]
    return sorted(out)


def current(s3, bucket: str) -> dict[str, bytes]:
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


# ---------------------------------------------------------------------------
# restic: backups, ransomware with the backup key, the admin's rollback, restores


def restic(env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(
        [tool("restic"), *args],
        env=clean_env(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if check:
        assert r.returncode == 0, f"restic {' '.join(args)} exited {r.returncode}:\n{r.stderr}\n{r.stdout[-2000:]}"
    return r


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    if root.exists():
        for p in sorted(root.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def read_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_restic_snapshots_come_back_after_ransomware_deleted_everything(server, tenant_b, tmp_path):
    admin_s3 = server.client()
    bucket = unique_name("restic-rollback")
    admin_s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    admin_s3.put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
        },
    )
    backup = new_key(server, "--backup", "--bucket", bucket)
    env = {
        "RESTIC_REPOSITORY": f"s3:{server.s3_url}/{bucket}/repo",
        "RESTIC_PASSWORD": "correct horse battery staple",
        "RESTIC_CACHE_DIR": str(tmp_path / "restic-cache"),
        "AWS_ACCESS_KEY_ID": backup["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": backup["AWS_SECRET_ACCESS_KEY"],
        "HOME": str(tmp_path),
    }
    region = ["-o", f"s3.region={server.demo['AWS_REGION']}"]
    restic(env, "init", *region)

    # Three snapshots of one directory with different content.
    data = tmp_path / "data"
    rnd = os.urandom
    states = [
        {"a.bin": rnd(40_000), "docs/b.txt": b"first\n" * 100, "docs/c.bin": rnd(3_000)},
    ]
    states.append({**states[0], "a.bin": rnd(50_000), "new/d.bin": rnd(70_000)})
    states.append({k: v for k, v in states[1].items() if k != "docs/c.bin"} | {"e.txt": b"third\n"})
    snapshots = []
    for state in states:
        write_tree(data, state)
        out = restic(env, "backup", *region, "--json", str(data)).stdout
        summary = [json.loads(l) for l in out.splitlines() if '"summary"' in l]
        assert len(summary) == 1, out
        snapshots.append(summary[0]["snapshot_id"])
    listed = json.loads(restic(env, "snapshots", *region, "--json").stdout)
    assert sorted(s["short_id"] for s in listed) == sorted(snapshots)
    before = history(admin_s3, bucket)
    objects_before = current(admin_s3, bucket)
    assert len(objects_before) > 5, sorted(objects_before)

    to = rfc3339(pause_past_now())

    # The ransomware, with the backup key: forget and prune every snapshot, then remove
    # everything that is left.
    restic(env, "forget", *region, "--prune", *snapshots)
    assert json.loads(restic(env, "snapshots", *region, "--json").stdout) in ([], None)
    ransom = aws_env(server, AWS_ACCESS_KEY_ID=backup["AWS_ACCESS_KEY_ID"],
                     AWS_SECRET_ACCESS_KEY=backup["AWS_SECRET_ACCESS_KEY"])
    run_aws(server, "s3", "rm", "--recursive", f"s3://{bucket}/", env=ransom)
    assert current(admin_s3, bucket) == {}
    assert restic(env, "snapshots", *region, check=False).returncode != 0

    # What the backup key cannot do: remove a version, bypass the retention, see the versions.
    bk = server.client(backup["AWS_ACCESS_KEY_ID"], backup["AWS_SECRET_ACCESS_KEY"])
    key, version, _ = next(v for v in before if v[0].startswith("repo/data/"))
    expect_error(bk.delete_object, "AccessDenied", 403, Bucket=bucket, Key=key, VersionId=version)
    expect_error(bk.delete_object, "AccessDenied", 403, Bucket=bucket, Key=key, VersionId=version,
                 BypassGovernanceRetention=True)
    versions = {"Objects": [{"Key": k, "VersionId": v} for k, v, _ in before[:20]]}
    expect_error(bk.delete_objects, "AccessDenied", 403, Bucket=bucket, Delete=versions,
                 BypassGovernanceRetention=True)
    r = bk.delete_objects(Bucket=bucket, Delete=versions)
    assert not r.get("Deleted") and {e["Code"] for e in r["Errors"]} == {"AccessDenied"}, r
    r = run_aws(server, "s3api", "delete-object", "--bucket", bucket, "--key", key, "--version-id", version,
                "--bypass-governance-retention", env=ransom, check=False)
    assert r.returncode != 0 and "AccessDenied" in r.stderr, r.stderr
    expect_error(bk.list_object_versions, "AccessDenied", 403, Bucket=bucket)
    # Nor can even the tenant's own key remove a version under its GOVERNANCE retention without
    # the bypass.
    expect_error(admin_s3.delete_object, "AccessDenied", 403, Bucket=bucket, Key=key, VersionId=version)
    after_ransom = history(admin_s3, bucket)
    assert {(k, v) for k, v, m in before} <= {(k, v) for k, v, m in after_ransom}, "a version was removed"

    # Rolling back is refused to the backup key and to another tenant's key, and changes nothing.
    assert_refused(rollback(server, backup, bucket, to), "AccessDenied")
    other = {k: tenant_b[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    r = rollback(server, other, bucket, to)
    assert r.returncode != 0 and ("AccessDenied" in r.stderr or "NoSuchBucket" in r.stderr), r.stderr
    assert history(admin_s3, bucket) == after_ransom

    # The tenant's admin makes a key of the whole tenant and rolls back (a dry run first, then in
    # small pages so that keys' versions span pages).
    admin_key = new_key(server)
    dry = rollback_ok(server, admin_key, bucket, to, "--dry-run")
    assert history(admin_s3, bucket) == after_ransom
    assert dry[0] == len(objects_before) and dry[1] == 0, dry
    done = rollback_ok(server, admin_key, bucket, to, "--page-size", "7")
    assert done == dry, (done, dry)
    assert current(admin_s3, bucket) == objects_before
    # Nothing was removed; a second run changes nothing.
    rolled = history(admin_s3, bucket)
    assert set(after_ransom) <= set(rolled)
    again = rollback_ok(server, admin_key, bucket, to)
    assert again[:2] == (0, 0), again
    assert history(admin_s3, bucket) == rolled

    # restic sees every snapshot again and restores each as it was.
    listed = json.loads(restic(env, "snapshots", *region, "--json").stdout)
    assert sorted(s["short_id"] for s in listed) == sorted(snapshots)
    restic(env, "check", *region, "--read-data")
    for i, (snap, state) in enumerate(zip(snapshots, states)):
        target = tmp_path / f"restore-{i}"
        restic(env, "restore", *region, snap, "--target", str(target))
        got = read_tree(target / data.relative_to("/"))
        assert got == state, f"snapshot {i}: {sorted(got)} != {sorted(state)}"


# ---------------------------------------------------------------------------
# the rollback's rules, key by key


def test_rollback_restores_hides_and_keeps_every_version(server, tenant_b):
    s3 = server.client()
    bucket = unique_name("rollback-rules")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    put = lambda k, b: s3.put_object(Bucket=bucket, Key=k, Body=b)["VersionId"]  # noqa: E731
    put("p/overwritten", b"old")
    put("p/deleted", b"gone")
    put("p/deleted then rewritten", b"x")
    s3.delete_object(Bucket=bucket, Key="p/deleted then rewritten")
    put("p/same & kept", b"kept")
    put("q/other prefix", b"q-old")
    to = rfc3339(pause_past_now())
    put("p/overwritten", b"new")
    put("p/overwritten", b"newer")
    s3.delete_object(Bucket=bucket, Key="p/deleted")
    put("p/deleted then rewritten", b"y")
    put("p/created later", b"z")
    put("q/other prefix", b"q-new")
    before = history(s3, bucket)

    # Keys that may not: a read-only key of the tenant (no writes, no versions), another tenant.
    ro = new_key(server, "--read-only")
    assert_refused(rollback(server, ro, bucket, to), "AccessDenied")
    other = {k: tenant_b[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    r = rollback(server, other, bucket, to)
    assert r.returncode != 0 and ("AccessDenied" in r.stderr or "NoSuchBucket" in r.stderr), r.stderr
    assert history(s3, bucket) == before

    admin_key = new_key(server)
    # Only under a prefix; a key at a time, as an interrupted run would have left it.
    assert rollback_ok(server, admin_key, bucket, to, "--prefix", "p/o") == (1, 0, 0)
    assert rollback_ok(server, admin_key, bucket, to, "--prefix", "p/", "--page-size", "2") == (1, 2, 2)
    assert current(s3, bucket) == {
        "p/overwritten": b"old",
        "p/deleted": b"gone",
        "p/same & kept": b"kept",
        "q/other prefix": b"q-new",
    }
    assert rollback_ok(server, admin_key, bucket, to) == (1, 0, 5)
    assert current(s3, bucket)["q/other prefix"] == b"q-old"
    after = history(s3, bucket)
    assert set(before) <= set(after), "a version was removed"
    assert len(after) == len(before) + 5  # three copies, two delete markers
    assert rollback_ok(server, admin_key, bucket, to) == (0, 0, 6)
    assert history(s3, bucket) == after


def test_rollback_refuses_what_it_cannot_do_safely(server):
    s3 = server.client()
    admin_key = new_key(server)
    now = rfc3339(utc_now())
    plain = unique_name("rollback-plain")
    s3.create_bucket(Bucket=plain)
    s3.put_object(Bucket=plain, Key="k", Body=b"v")
    assert_refused(rollback(server, admin_key, plain, now), "not versioned")
    s3.put_bucket_versioning(Bucket=plain, VersioningConfiguration={"Status": "Suspended"})
    assert_refused(rollback(server, admin_key, plain, now), "Suspended")
    assert current(s3, plain) == {"k": b"v"}
    assert_refused(rollback(server, admin_key, plain, "yesterday"), "RFC 3339")
    future = rfc3339(utc_now() + dt.timedelta(hours=1))
    assert_refused(rollback(server, admin_key, plain, future), "future")
    r = server.cli("bucket", "rollback", plain, "--to", now, env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""})
    assert_refused(r, "AWS_ACCESS_KEY_ID")


def test_rollback_never_acts_on_keys_a_url_would_resolve_elsewhere(server):
    """Ransomware holding a key that may write creates, after the rollback's time, keys whose
    `..` segments a request URL resolves away: a delete marker for `x/../victim` sent as a URL
    would hide `victim`, one for `../OTHER/obj` object `obj` of another bucket. The rollback
    leaves such keys alone, counts them and fails, and everything else is rolled back."""
    s3 = server.client()
    bucket = unique_name("rollback-dots")
    other = unique_name("rollback-other")
    for b in (bucket, other):
        s3.create_bucket(Bucket=b)
        s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket, Key="victim", Body=b"precious")
    s3.put_object(Bucket=bucket, Key="overwritten", Body=b"old")
    s3.put_object(Bucket=other, Key="obj", Body=b"other bucket's")
    to = rfc3339(pause_past_now())
    attack = ["x/../victim", f"../{other}/obj"]
    for k in attack:
        s3.put_object(Bucket=bucket, Key=k, Body=b"ransom note")
    s3.put_object(Bucket=bucket, Key="overwritten", Body=b"new")
    # The keys exist under these very names (the server did not resolve them either).
    assert {k for k, _, m in history(s3, bucket) if not m} == {"victim", "overwritten", *attack}
    before_bucket = [e for e in history(s3, bucket) if e[0] != "overwritten"]
    before_other = history(s3, other)

    admin_key = new_key(server)
    for extra in (("--dry-run",), ()):
        r = rollback(server, admin_key, bucket, to, *extra)
        assert r.returncode != 0, f"rollback {extra} succeeded: {r.stdout!r}"
        m = COUNTS.search(r.stdout.strip())
        assert m and m.groups() == ("1", "0", "1"), r.stdout
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("obhut: "), r.stderr
        assert "2 key(s)" in lines[0] and "`..`" in lines[0] and "incomplete" in lines[0], lines[0]
        assert not any(k in r.stderr + r.stdout for k in attack), "object names printed"

    assert s3.get_object(Bucket=bucket, Key="victim")["Body"].read() == b"precious"
    assert s3.get_object(Bucket=bucket, Key="overwritten")["Body"].read() == b"old"
    assert [e for e in history(s3, bucket) if e[0] != "overwritten"] == before_bucket
    assert history(s3, other) == before_other
    assert s3.get_object(Bucket=other, Key="obj")["Body"].read() == b"other bucket's"
