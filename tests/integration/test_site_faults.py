"""Site failures on real directories, mounts and processes: a site made
read-only, filled up, renamed away, unmounted, given a wrong identity; an S3
site's server killed mid-upload; corrupt and missing replicas found on read,
by the scrubber and by `obhut repair`. A failing write is refused cleanly and
nothing becomes visible; reads are served from another replica; nothing is
ever written into an empty mount point; a US site next to the DE sites never
receives a byte of a DE tenant through a mixed workload with failures,
repairs and drains."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path


from conftest import new_tenant
from site_helpers import (
    add_s3_site,
    all_buckets,
    blob_file,
    bucket_report,
    exists,
    listed,
    new_bucket,
    policy,
    put_status,
    remount,
    repair_status,
    require_root,
    residency,
    run_ok,
    s3_site_server,
    set_state,
    sha,
    site_add_fs,
    site_blobs,
    site_files,
    site_list_rows,
    sites,
    tmpfs,
    unmount,
    wait_repair_idle,
    wait_until,
)

MIB = 1024 * 1024


def tmp_files(site_dir: Path) -> list[str]:
    t = site_dir / "tmp"
    return sorted(str(p.relative_to(t)) for p in t.rglob("*")) if t.is_dir() else []


def assert_refused_and_invisible(srv, bucket: str, key: str, status, code, msg):
    """A PUT refused with a 503 S3 error, and the key is not visible."""
    assert status == 503 and code == "ServiceUnavailable", f"expected a 503 ServiceUnavailable: {status} {code} {msg!r}"
    s3 = srv.client()
    assert not exists(s3, bucket, key), f"{key} is visible after a failed PUT"
    assert key not in listed(s3, bucket), f"{key} is listed after a failed PUT"


def assert_no_leftovers(site_dirs, visible: int, timeout: float = 5):
    """No temporary file and no blob beyond the visible objects' is left on
    the given (healthy) sites after failed PUTs, without a restart."""

    def clean():
        return all(tmp_files(d) == [] and len(site_blobs(d)) == visible for d in site_dirs)

    try:
        wait_until(clean, timeout, "the failed PUTs' temporary files and blobs to be removed")
    except AssertionError:
        detail = {str(d): (tmp_files(d), len(site_blobs(d))) for d in site_dirs}
        raise AssertionError(
            f"leftovers of failed PUTs on healthy sites after {timeout}s (tmp files, blob count; "
            f"{visible} objects visible): {detail}"
        ) from None


def assert_failed_cleanly(srv, bucket: str, key: str, status, code, msg, site_dirs, visible: int):
    assert_refused_and_invisible(srv, bucket, key, status, code, msg)
    assert_no_leftovers(site_dirs, visible)


# ---------------------------------------------------------------- unwritable, full


def test_read_only_site_fails_put_cleanly_and_reads_go_on(private_server, tmp_path):
    require_root()
    srv = private_server
    mnt = tmp_path / "ro-mnt"
    with tmpfs(mnt, "16m"):
        site_add_fs(srv, "de-ro", "DE", mnt / "site")
        policy(srv, "demo", min_sites=3)
        s3 = srv.client()
        bucket = new_bucket(s3)
        old = {f"k{i}": os.urandom(30_000) for i in range(5)}
        for k, v in old.items():
            s3.put_object(Bucket=bucket, Key=k, Body=v)
        remount(mnt, "ro")
        try:
            status, code, msg = put_status(srv, bucket, "new", os.urandom(100_000))
            assert "de-ro" in msg, f"the 503 should name the failing site: {msg!r}"
            assert_refused_and_invisible(srv, bucket, "new", status, code, msg)
            # An overwrite that fails keeps the old version.
            status, code, msg = put_status(srv, bucket, "k0", b"replacement")
            assert status == 503, (status, code, msg)
            assert s3.get_object(Bucket=bucket, Key="k0")["Body"].read() == old["k0"]
            for k, v in old.items():
                assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == v
            assert_no_leftovers([srv.site_dir("de-fra"), srv.site_dir("de-mgd")], len(old))
        finally:
            remount(mnt, "rw")
        s3.put_object(Bucket=bucket, Key="new", Body=b"after the remount")
        rep = bucket_report(residency(srv, "demo", verify=True)[1], "demo", bucket)
        assert rep["objects"] == 6 and rep["objects_by_sites"] == {"de-fra,de-mgd,de-ro": 6}, rep
        assert rep["verified"]["missing"] == 0 and rep["verified"]["corrupt"] == 0, rep
        srv.stop_ok()


def test_full_site_fails_put_cleanly_and_frees_its_space(private_server, tmp_path):
    require_root()
    srv = private_server
    mnt = tmp_path / "small"
    with tmpfs(mnt, "3m"):
        site_add_fs(srv, "de-small", "DE", mnt / "site")
        policy(srv, "demo", min_sites=3)
        s3 = srv.client()
        bucket = new_bucket(s3)
        s3.put_object(Bucket=bucket, Key="small", Body=os.urandom(100_000))
        free_before = shutil.disk_usage(mnt).free
        status, code, msg = put_status(srv, bucket, "big", os.urandom(5 * MIB))
        assert "de-small" in msg, f"the 503 should name the full site: {msg!r}"
        assert_failed_cleanly(srv, bucket, "big", status, code, msg,
                              [srv.site_dir("de-fra"), srv.site_dir("de-mgd"), mnt / "site"], 1)
        assert shutil.disk_usage(mnt).free >= free_before - 64 * 1024, "the failed write's space was not freed"
        # The site still takes what fits.
        s3.put_object(Bucket=bucket, Key="small2", Body=os.urandom(200_000))
        assert sorted(listed(s3, bucket)) == ["small", "small2"]
        srv.stop_ok()


def test_failing_site_with_degraded_accept_writes_the_other_sites(private_server, tmp_path):
    """degraded_writes = accept: a site that errors during the write leaves
    fewer sites than min_sites, so the write goes to the sites that work and the
    object is under-replicated (the clean failure is the strict mode's)."""
    require_root()
    srv = private_server
    mnt = tmp_path / "acc"
    with tmpfs(mnt, "16m"):
        site_add_fs(srv, "de-acc", "DE", mnt / "site")
        policy(srv, "demo", min_sites=3, degraded="accept")
        s3 = srv.client()
        bucket = new_bucket(s3)
        remount(mnt, "ro")
        try:
            status, code, msg = put_status(srv, bucket, "k", b"accepted on fewer sites")
            assert status == 200, f"degraded_writes accept, one of three sites failing: {status} {code} {msg!r}"
            rep = bucket_report(residency(srv, "demo")[1], "demo", bucket)
            assert rep["under_replicated"] == 1 and rep["objects_by_sites"] == {"de-fra,de-mgd": 1}, rep
        finally:
            remount(mnt, "rw")
        srv.stop_ok()


# ---------------------------------------------------------------- identity: renamed away, wrong, unmounted


def test_site_renamed_away_at_startup_is_down_and_not_recreated(private_server, tmp_path):
    srv = private_server
    s3 = srv.client()
    bucket = new_bucket(s3)
    data = {f"k{i}": os.urandom(20_000) for i in range(5)}
    for k, v in data.items():
        s3.put_object(Bucket=bucket, Key=k, Body=v)
    srv.stop_ok()
    mgd = srv.site_dir("de-mgd")
    away = mgd.with_name("de-mgd.renamed")
    mgd.rename(away)
    srv.start()
    row = site_list_rows(srv)["de-mgd"]
    assert row["reachable"] == "no" or row["state"] == "down", f"a site without its directory is not down: {row}"
    assert not mgd.exists(), "obhut recreated a site directory that was renamed away"
    # Reads are served from the other replica, with no client-visible error.
    for k, v in data.items():
        assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == v
    # min_sites 2, one DE site left: writes are refused, saying why.
    status, code, msg = put_status(srv, bucket, "new", b"x")
    assert status == 503 and code == "ServiceUnavailable", (status, code, msg)
    assert "1" in msg and "2" in msg, msg
    assert not exists(s3, bucket, "new")
    assert not mgd.exists(), "obhut recreated the missing site directory on a write"
    run_ok(srv, srv.token("operator"), "repair", "--status")
    assert not mgd.exists()
    # A third DE site: writes succeed again, on de-fra and de-ber.
    site_add_fs(srv, "de-ber", "DE", tmp_path / "de-ber")
    s3.put_object(Bucket=bucket, Key="new", Body=b"placed on the sites that are up")
    wait_repair_idle(srv)
    rep = bucket_report(residency(srv, "demo")[1], "demo", bucket)
    assert "de-ber,de-fra" in rep["objects_by_sites"], rep
    assert not mgd.exists()
    srv.stop_ok()
    assert not mgd.exists(), "the missing site directory was created at shutdown"
    assert sorted(os.listdir(away)) == sorted(["blobs", "site.json", "tmp"]), os.listdir(away)


def test_site_with_a_wrong_identity_is_down_and_left_alone(private_server):
    srv = private_server
    s3 = srv.client()
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="k", Body=b"before")
    srv.stop_ok()
    mgd = srv.site_dir("de-mgd")
    foreign = (srv.site_dir("de-fra") / "site.json").read_text()
    (mgd / "site.json").write_text(foreign)  # the wrong disk mounted at de-mgd's path
    before = {p: (mgd / p).stat().st_mtime_ns for p in site_files(mgd)}
    srv.start()
    row = site_list_rows(srv)["de-mgd"]
    assert row["reachable"] == "no" or row["state"] == "down", f"a site with another site's identity is not down: {row}"
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"before"
    assert put_status(srv, bucket, "k2", b"x")[0] == 503
    run_ok(srv, srv.token("operator"), "repair", "--status")
    after = {p: (mgd / p).stat().st_mtime_ns for p in site_files(mgd)}
    assert after == before, "obhut changed files on a site whose identity is wrong"
    assert (mgd / "site.json").read_text() == foreign, "obhut rewrote the foreign identity file"
    srv.stop_ok()


def test_unmounted_site_disk_is_never_written_into(private_server, tmp_path):
    require_root()
    srv = private_server
    mnt = tmp_path / "disk"
    s3 = srv.client()
    bucket = new_bucket(s3)
    with tmpfs(mnt, "16m"):
        site_add_fs(srv, "de-disk", "DE", mnt)
        policy(srv, "demo", min_sites=3)
        data = {f"k{i}": os.urandom(10_000) for i in range(4)}
        for k, v in data.items():
            s3.put_object(Bucket=bucket, Key=k, Body=v)
        assert len(site_blobs(mnt)) == 4
        # The disk goes away while obhut runs: the empty mount point stays.
        unmount(mnt)
        assert mnt.is_dir() and os.listdir(mnt) == []
        status, code, msg = put_status(srv, bucket, "w1", b"x")
        assert status == 503, (status, code, msg)
        for k, v in data.items():
            assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == v
        srv.cli("repair", token=srv.token("operator"), timeout=120)
        srv.cli("residency", "report", "--verify", token=srv.token("auditor"))
        assert os.listdir(mnt) == [], f"obhut wrote into the empty mount point: {site_files(mnt)}"
        # Restart with the disk still missing: down, and still nothing written.
        srv.stop_ok()
        srv.start()
        row = site_list_rows(srv)["de-disk"]
        assert row["reachable"] == "no" or row["state"] == "down", row
        policy(srv, "demo", min_sites=2)
        for i in range(5):
            put_status(srv, bucket, f"after{i}", b"y")
        for k, v in data.items():
            assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == v
        srv.cli("repair", token=srv.token("operator"), timeout=120)
        set_state(srv, "de-disk", "draining")
        wait_repair_idle(srv)
        assert os.listdir(mnt) == [], f"obhut wrote into the empty mount point: {site_files(mnt)}"
        srv.stop_ok()


def test_site_vanishing_while_running(private_server, tmp_path):
    srv = private_server
    ber = tmp_path / "de-ber"
    site_add_fs(srv, "de-ber", "DE", ber)
    policy(srv, "demo", min_sites=3)
    s3 = srv.client()
    bucket = new_bucket(s3)
    data = {f"k{i}": os.urandom(40_000) for i in range(4)}
    for k, v in data.items():
        s3.put_object(Bucket=bucket, Key=k, Body=v)
    away = tmp_path / "de-ber.gone"
    ber.rename(away)
    try:
        for i, size in enumerate((50_000, 1, 300_000, 2 * MIB, 7)):
            key = "new" if i == 0 else f"new{i}"
            status, code, msg = put_status(srv, bucket, key, os.urandom(size))
            assert "de-ber" in msg, f"the 503 should name the failing site: {msg!r}"
            assert_refused_and_invisible(srv, bucket, key, status, code, msg)
        for k, v in data.items():
            assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == v, k
        assert not ber.exists(), "obhut recreated a vanished site directory"
        assert_no_leftovers([srv.site_dir("de-fra"), srv.site_dir("de-mgd")], len(data))
    finally:
        away.rename(ber)
    # The health check that marked the site down marks it up again at its next round.
    deadline = time.time() + 30
    while time.time() < deadline and site_list_rows(srv)["de-ber"]["reachable"] != "yes":
        time.sleep(0.5)
    s3.put_object(Bucket=bucket, Key="new", Body=b"site is back")
    rep = bucket_report(residency(srv, "demo", verify=True)[1], "demo", bucket)
    assert rep["verified"]["missing"] == 0 and rep["verified"]["corrupt"] == 0, rep


def test_vanished_site_is_reported_down(private_server, tmp_path):
    """A site whose directory (and identity file) disappears while obhut runs is
    down: `site list` must not keep calling it reachable, and `obhut repair`
    must not report success while its replicas are gone."""
    srv = private_server
    ber = tmp_path / "de-ber"
    site_add_fs(srv, "de-ber", "DE", ber)
    policy(srv, "demo", min_sites=3)
    s3 = srv.client()
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x" * 1000)
    away = tmp_path / "de-ber.gone"
    ber.rename(away)
    try:
        put_status(srv, bucket, "probe", b"y")  # a write that hits the missing site
        # Sites are health-checked every few seconds: wait for the check to notice.
        deadline = time.time() + 20
        while time.time() < deadline and site_list_rows(srv)["de-ber"]["reachable"] == "yes":
            time.sleep(0.5)
        r = srv.cli("repair", token=srv.token("operator"), timeout=120)
        rows = site_list_rows(srv)
        problems = []
        if rows["de-ber"]["reachable"] == "yes" and rows["de-ber"]["state"] == "active":
            problems.append(f"`site list` shows the vanished site as active and reachable: {rows['de-ber']}")
        if r.returncode == 0:
            problems.append(f"`obhut repair` exited 0 although k's replica on de-ber is gone: {r.stdout.strip()!r}")
        assert not problems, "\n".join(problems)
    finally:
        away.rename(ber)


# ---------------------------------------------------------------- an S3 site's server killed mid-upload


def test_s3_site_killed_mid_upload(private_server_factory):
    srv = private_server_factory()
    remote = s3_site_server(private_server_factory)
    r = add_s3_site(srv, "de-s3", remote)
    assert r.returncode == 0, r.stderr
    policy(srv, "demo", min_sites=3)
    s3 = srv.client()
    bucket = new_bucket(s3)
    old = {f"old{i}": os.urandom(50_000) for i in range(4)}
    for k, v in old.items():
        s3.put_object(Bucket=bucket, Key=k, Body=v)
    assert sites(srv)["de-s3"]["replicas"] == 4

    rclient = remote["server"].client()
    big = os.urandom(48 * MIB)
    result = {}

    def upload():
        result["r"] = put_status(srv, bucket, "big", big)

    t = threading.Thread(target=upload, daemon=True)
    t.start()
    deadline = time.monotonic() + 60
    in_flight = False
    while time.monotonic() < deadline and t.is_alive():
        if rclient.list_multipart_uploads(Bucket=remote["bucket"]).get("Uploads"):
            in_flight = True
            break
        time.sleep(0.02)
    remote["server"].kill9()
    t.join(120)
    assert in_flight, f"no multipart upload was seen on the S3 site before the PUT ended: {result}"
    status, code, msg = result["r"]
    assert status == 503 and code == "ServiceUnavailable", (status, code, msg)
    assert "de-s3" in msg, f"the 503 should name the site: {msg!r}"
    assert not exists(s3, bucket, "big") and "big" not in listed(s3, bucket)
    # Reads of objects with a replica on the dead site: no client-visible error.
    for k, v in old.items():
        assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == v, k
    wait_until(lambda: all(tmp_files(srv.site_dir(s)) == [] and len(site_blobs(srv.site_dir(s))) == 4
                           for s in ("de-fra", "de-mgd")), 10, "no leftovers of the failed PUT on the local sites")

    # The S3 cluster comes back: writes work, replicas verify, no upload left behind.
    remote["server"].start()
    # Down for placement until it passes its next health check (every few seconds).
    wait_until(lambda: site_list_rows(srv)["de-s3"]["reachable"] == "yes", 20,
               "the restarted S3 site passes its health check")
    s3.put_object(Bucket=bucket, Key="big", Body=big)
    assert sha(s3.get_object(Bucket=bucket, Key="big")["Body"].read()) == sha(big)
    run_ok(srv, srv.token("operator"), "repair")
    rep = bucket_report(residency(srv, "demo", verify=True)[1], "demo", bucket)
    assert rep["objects"] == 5 and rep["objects_by_sites"] == {"de-fra,de-mgd,de-s3": 5}, rep
    assert rep["verified"]["missing"] == 0 and rep["verified"]["corrupt"] == 0, rep
    assert rep["verified"]["unreachable"] == 0, rep


# ---------------------------------------------------------------- bad replicas: on read, by repair, by the scrubber


def _one_object(srv, bucket: str, key: str, body: bytes) -> str:
    """PUTs one object; returns its blob id (the one new blob on de-fra)."""
    before = site_blobs(srv.site_dir("de-fra"))
    srv.client().put_object(Bucket=bucket, Key=key, Body=body)
    new = site_blobs(srv.site_dir("de-fra")) - before
    assert len(new) == 1, new
    return new.pop()


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_bad_replicas_found_on_read_are_reported_and_repaired(private_server):
    """A GET that meets a corrupt or missing replica serves the other one (never
    bad bytes), reports the bad replica and gets it repaired. A GET reads one
    replica, so the damage is put on de-fra first and, if the reads were served
    from de-mgd without touching it, moved to de-mgd."""
    srv = private_server
    s3 = srv.client()
    bucket = new_bucket(s3)
    body_c, body_m = os.urandom(300_000), os.urandom(300_000)
    bc = _one_object(srv, bucket, "corrupt", body_c)
    bm = _one_object(srv, bucket, "missing", body_m)
    good_c = blob_file(srv.site_dir("de-mgd"), bc).read_bytes()
    good_m = blob_file(srv.site_dir("de-mgd"), bm).read_bytes()
    assert blob_file(srv.site_dir("de-fra"), bc).read_bytes() == good_c, "replicas of one blob differ"

    def healthy(d):
        return (blob_file(d, bc).is_file() and blob_file(d, bc).read_bytes() == good_c
                and blob_file(d, bm).is_file() and blob_file(d, bm).read_bytes() == good_m)

    repaired_on = None
    for sid in ("de-fra", "de-mgd"):
        d = srv.site_dir(sid)
        _corrupt(blob_file(d, bc))
        blob_file(d, bm).unlink()
        for _ in range(3):
            assert s3.get_object(Bucket=bucket, Key="corrupt")["Body"].read() == body_c
            assert s3.get_object(Bucket=bucket, Key="missing")["Body"].read() == body_m
        try:
            wait_until(lambda: healthy(d), 10, f"the bad replicas on {sid} to be repaired after reads")
            repaired_on = sid
            break
        except AssertionError:
            log = srv.log_path.read_text(errors="replace")
            assert bc not in log and bm not in log, (
                f"the bad replicas on {sid} were found on read (they are in the log) but not repaired"
                f"\n{srv.log_tail(15)}"
            )
            # The reads never touched this site: put its replicas right and try the other one.
            blob_file(d, bc).write_bytes(good_c)
            blob_file(d, bm).write_bytes(good_m)
    assert repaired_on, "neither site's bad replicas were found by reads and repaired"
    log = srv.log_path.read_text(errors="replace")
    assert bc in log and bm in log, "the bad replicas found on read are not reported in the server log"
    rep = bucket_report(residency(srv, "demo", verify=True)[1], "demo", bucket)
    assert rep["verified"]["missing"] == 0 and rep["verified"]["corrupt"] == 0, rep


def test_repair_restores_replicas_deleted_from_a_site(private_server):
    """`obhut repair` restores min_sites replicas for everything: also for
    replicas that are gone from a site's disk (not only for catalog shortfalls)."""
    srv = private_server
    s3 = srv.client()
    bucket = new_bucket(s3)
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"k{i}", Body=os.urandom(5000))
    mgd = srv.site_dir("de-mgd")
    gone = sorted(site_blobs(mgd))
    for b in gone:
        blob_file(mgd, b).unlink()
    r = srv.cli("repair", token=srv.token("operator"), timeout=120)
    restored = site_blobs(mgd)
    rep = bucket_report(residency(srv, "demo", verify=True)[1], "demo", bucket)
    assert restored == set(gone) and rep["verified"]["missing"] == 0, (
        f"after `obhut repair` (exit {r.returncode}: {r.stdout.strip()!r}) de-mgd holds {len(restored)} of the "
        f"{len(gone)} deleted replicas; verify: {rep['verified']}"
    )


SCRUB_FAST = "scrub_bytes_per_sec = 67108864\nscrub_interval_secs = 1\n"


def test_scrubber_finds_and_repairs_bad_replicas(private_server_factory):
    srv = private_server_factory(config=SCRUB_FAST)
    s3 = srv.client()
    bucket = new_bucket(s3)
    ids = [_one_object(srv, bucket, f"k{i}", os.urandom(100_000)) for i in range(4)]
    mgd = srv.site_dir("de-mgd")
    good = {b: blob_file(mgd, b).read_bytes() for b in ids}
    _corrupt(blob_file(mgd, ids[0]))
    blob_file(mgd, ids[1]).unlink()
    # Nobody reads them: the scrubber must find and repair both.
    wait_until(lambda: all(blob_file(mgd, b).is_file() and blob_file(mgd, b).read_bytes() == good[b] for b in ids),
               30, f"the scrubber to repair the bad replicas; status {repair_status(srv)}")
    st = repair_status(srv)
    assert st["scrub_checked"] >= 8 and st["scrub_bad"] >= 2 and st["scrub_repaired"] >= 2, st
    out = run_ok(srv, srv.token("operator"), "repair", "--status")
    assert "scrubber" in out, out


def test_scrubber_off_and_rate_limited(private_server_factory):
    off = private_server_factory(config="scrub_bytes_per_sec = 0\nscrub_interval_secs = 1\n")
    slow = private_server_factory(config="scrub_bytes_per_sec = 65536\nscrub_interval_secs = 1\n")
    for srv in (off, slow):
        s3 = srv.client()
        bucket = new_bucket(s3)
        for i in range(10):
            s3.put_object(Bucket=bucket, Key=f"k{i}", Body=os.urandom(200_000))
    mgd = off.site_dir("de-mgd")
    victim = sorted(site_blobs(mgd))[0]
    _corrupt(blob_file(mgd, victim))
    bad = blob_file(mgd, victim).read_bytes()
    time.sleep(4)
    assert repair_status(off)["scrub_checked"] == 0, f"scrubbing is off but it checked: {repair_status(off)}"
    assert blob_file(mgd, victim).read_bytes() == bad
    # 20 replicas of ~200 KB at 64 KiB/s take about a minute; after 4 s most are unchecked.
    checked = repair_status(slow)["scrub_checked"]
    assert checked < 10, f"the scrubber ignores its rate: {checked} replicas of 200 KB checked in ~4 s at 64 KiB/s"


# ---------------------------------------------------------------- a US site never gets a DE tenant's byte


def _dir_mtimes(root: Path) -> dict[str, int]:
    out = {".": root.stat().st_mtime_ns}
    for p in root.rglob("*"):
        if p.is_dir():
            out[str(p.relative_to(root))] = p.stat().st_mtime_ns
    return out


def test_us_site_never_receives_a_byte_of_a_de_tenant(private_server_factory, tmp_path):
    require_root()
    srv = private_server_factory(config=SCRUB_FAST)
    us = tmp_path / "us-east"
    site_add_fs(srv, "us-east", "US", us, location="Virginia")
    us_identity = (us / "site.json").read_bytes()
    entries = sorted(os.listdir(us))
    marks = {k: v for k, v in _dir_mtimes(us).items() if k != "."}
    ber_mnt = tmp_path / "ber"
    de_blobs: set[str] = set()
    acked: dict[tuple[str, str], str] = {}  # (tenant, key) -> sha256 of what was acknowledged

    demo = srv.client()
    t2 = new_tenant(srv, "tde" + os.urandom(3).hex())
    other = srv.client(t2["AWS_ACCESS_KEY_ID"], t2["AWS_SECRET_ACCESS_KEY"])
    policy(srv, t2["name"], degraded="accept")
    clients = {"demo": (demo, new_bucket(demo, "us-scan")), t2["name"]: (other, new_bucket(other, "us-scan"))}
    creds = {"demo": (None, None), t2["name"]: (t2["AWS_ACCESS_KEY_ID"], t2["AWS_SECRET_ACCESS_KEY"])}

    def note_de():
        for d in (srv.site_dir("de-fra"), srv.site_dir("de-mgd"), ber_mnt / "site"):
            de_blobs.update(site_blobs(d))

    def workload(tag: str, n: int, size: int, expect_ok: bool | None = None):
        for tenant, (client, bucket) in clients.items():
            ak, sk = creds[tenant]
            for i in range(n):
                key = f"{tag}-{i}"
                body = os.urandom(size + i * 1000)
                status, code, msg = put_status(srv, bucket, key, body, ak, sk)
                if status == 200:
                    acked[(tenant, key)] = sha(body)
                else:
                    assert status == 503, (tenant, key, status, code, msg)
                if expect_ok is True:
                    assert status == 200, (tenant, key, status, code, msg)
        note_de()

    def mpu(tag: str):
        for tenant, (client, bucket) in clients.items():
            parts = [os.urandom(5 * MIB), os.urandom(1234)]
            up = client.create_multipart_upload(Bucket=bucket, Key=tag)["UploadId"]
            done = [{"PartNumber": n, "ETag": client.upload_part(Bucket=bucket, Key=tag, UploadId=up, PartNumber=n,
                                                                 Body=p)["ETag"]} for n, p in enumerate(parts, 1)]
            client.complete_multipart_upload(Bucket=bucket, Key=tag, UploadId=up, MultipartUpload={"Parts": done})
            acked[(tenant, tag)] = sha(b"".join(parts))
            aborted = client.create_multipart_upload(Bucket=bucket, Key=tag + "-aborted")["UploadId"]
            client.upload_part(Bucket=bucket, Key=tag + "-aborted", UploadId=aborted, PartNumber=1, Body=os.urandom(MIB))
            client.abort_multipart_upload(Bucket=bucket, Key=tag + "-aborted", UploadId=aborted)
        note_de()

    with tmpfs(ber_mnt, "64m"):
        site_add_fs(srv, "de-ber", "DE", ber_mnt / "site", location="Berlin")
        # 1. Healthy: three DE sites, one US site.
        workload("healthy", 10, 20_000, expect_ok=True)
        mpu("mpu1")
        # 2. de-ber fails (read-only): writes that land on it are refused.
        remount(ber_mnt, "ro")
        try:
            workload("ro", 10, 10_000)
            # 3. de-ber and de-mgd down: demo refuses, the accept tenant writes de-fra only.
            set_state(srv, "de-ber", "down")
            set_state(srv, "de-mgd", "down")
            wait_repair_idle(srv)
            workload("degraded", 5, 5_000)
            rep = residency(srv)[1]
            assert bucket_report(rep, t2["name"], clients[t2["name"]][1])["under_replicated"] >= 5, rep
        finally:
            remount(ber_mnt, "rw")
        # 4. Back up; repair restores full redundancy.
        set_state(srv, "de-ber", "active")
        set_state(srv, "de-mgd", "active")
        wait_repair_idle(srv)
        run_ok(srv, srv.token("operator"), "repair")
        note_de()
        # 5. Drain de-mgd with a kill -9 part-way, then restart.
        workload("pre-drain", 10, 50_000, expect_ok=True)
        set_state(srv, "de-mgd", "draining")
        time.sleep(0.2)
        srv.kill9()
        srv.start()
        wait_until(lambda: sites(srv)["de-mgd"]["replicas"] == 0 and repair_status(srv)["state"] != "running",
                   60, "the drain to finish after the restart")
        note_de()
        # 6. Corrupt and missing replicas, found by reads and the scrubber and repaired; more writes.
        fra = srv.site_dir("de-fra")
        victims = sorted(site_blobs(fra))[:2]
        good = blob_file(fra, victims[0]).read_bytes(), blob_file(fra, victims[1]).read_bytes()
        _corrupt(blob_file(fra, victims[0]))
        blob_file(fra, victims[1]).unlink()
        for (tenant, key), h in list(acked.items()):
            client, bucket = clients[tenant]
            assert sha(client.get_object(Bucket=bucket, Key=key)["Body"].read()) == h, (tenant, key)
        wait_until(lambda: all(blob_file(fra, v).is_file() and blob_file(fra, v).read_bytes() == g
                               for v, g in zip(victims, good)), 30, "the damaged replicas on de-fra to be repaired")
        set_state(srv, "de-mgd", "active")
        workload("final", 10, 30_000, expect_ok=True)
        run_ok(srv, srv.token("operator"), "repair")
        note_de()

        # Full redundancy, nothing outside policy, every acknowledged object intact.
        rep = residency(srv, verify=True)[1]
        for tenant, b in all_buckets(rep):
            assert b["outside_policy"] == 0 and not b["outside_policy_sites"], (tenant, b)
            assert b["under_replicated"] == 0, (tenant, b)
            assert b["verified"]["missing"] == 0 and b["verified"]["corrupt"] == 0, (tenant, b)
            assert not any("us-east" in combo for combo in b["objects_by_sites"]), (tenant, b)
        for (tenant, key), h in acked.items():
            client, bucket = clients[tenant]
            assert sha(client.get_object(Bucket=bucket, Key=key)["Body"].read()) == h, (tenant, key)
        assert sites(srv)["us-east"]["replicas"] == 0
        srv.stop_ok()

    # The scan: the US site holds its identity file and empty directories, nothing else,
    # and no directory there was ever written to (a temporary file would have changed its mtime).
    files = site_files(us)
    assert files == ["site.json"], f"files on the US site after the workload: {files[:20]}"
    assert (us / "site.json").read_bytes() == us_identity
    assert sorted(os.listdir(us)) == entries
    assert not (site_blobs(us) & de_blobs)
    changed = {k for k, v in _dir_mtimes(us).items() if k != "." and marks.get(k) != v}
    assert not changed, f"directories on the US site were written to: {sorted(changed)[:10]}"
    assert len(de_blobs) > 50, f"the workload left too few DE blobs to mean anything: {len(de_blobs)}"
