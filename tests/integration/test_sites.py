"""The site registry: officers add local-directory and S3-cluster sites and
change their state; operators and auditors list them, nobody else changes
them. A site's identity file is written when it is added. An S3 site is a real
S3 server (a second `obhut serve`, and Garage). Site credentials are stored encrypted and
never appear in the catalog, the logs, the transparency log or `site list`.
Draining moves a site's replicas (ciphertext) to other allowed sites with
progress, after which the site can be removed; kill -9 during a drain loses
nothing and the drain resumes by itself at start-up."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import obhut_bin
from garage_helpers import garage  # noqa: F401 (a fixture)
from s3helpers import clean_env
from site_helpers import (
    add_s3_site,
    api,
    bucket_report,
    new_bucket,
    payload,
    policy,
    remote_keys,
    repair_status,
    residency,
    run_fail,
    run_ok,
    s3_site_server,
    set_state,
    sha,
    site_add_fs,
    site_blobs,
    site_files,
    site_list_rows,
    sites,
    wait_repair_idle,
    wait_until,
)


# ---------------------------------------------------------------- the registry and who may change it


def test_dev_server_has_two_de_sites_with_identity_files(private_server):
    srv = private_server
    rows = site_list_rows(srv)
    assert set(rows) == {"de-fra", "de-mgd"}, rows
    for sid in ("de-fra", "de-mgd"):
        assert rows[sid]["jur"] == "DE" and rows[sid]["state"] == "active" and rows[sid]["reachable"] == "yes", rows
        ident = json.loads((srv.site_dir(sid) / "site.json").read_text())
        assert ident.get("site") == sid and ident.get("identity"), f"{sid}/site.json: {ident}"
    a = json.loads((srv.site_dir("de-fra") / "site.json").read_text())["identity"]
    b = json.loads((srv.site_dir("de-mgd") / "site.json").read_text())["identity"]
    assert a != b, "two sites share one identity"


def test_officer_adds_fs_site_and_identity_is_written(private_server, tmp_path):
    srv = private_server
    path = tmp_path / "de-ber"
    out = site_add_fs(srv, "de-ber", "DE", path, location="Berlin, rack 7")
    assert "de-ber" in out
    ident = json.loads((path / "site.json").read_text())
    assert ident.get("site") == "de-ber" and ident.get("identity"), ident
    rows = site_list_rows(srv)
    assert rows["de-ber"]["jur"] == "DE" and rows["de-ber"]["state"] == "active", rows
    assert rows["de-ber"]["reachable"] == "yes" and rows["de-ber"]["replicas"] == 0, rows
    assert str(path) in rows["de-ber"]["backend"], rows
    listed = sites(srv)["de-ber"]
    assert listed["location"] == "Berlin, rack 7", listed
    # The addition is on the record.
    r = api(srv, "GET", "/v1/log/entries?from=0", "auditor")
    assert r.status_code == 200, r.text
    added = [json.loads(e["entry"]) for e in r.json()["entries"]]
    assert any(e.get("type") == "site_added" and e.get("site") == "de-ber" for e in added), (
        "no site_added entry for de-ber in the transparency log"
    )
    # The same id cannot be added twice, not even at another path.
    run_fail(srv, srv.token("officer2"), "site", "add", "de-ber", "--jurisdiction", "DE",
             "--fs", str(tmp_path / "elsewhere"), status=409)
    assert not (tmp_path / "elsewhere" / "site.json").exists(), "a refused site add wrote an identity file"


def test_a_site_inside_or_around_another_site_or_the_data_dir_is_refused(private_server, tmp_path):
    """Two sites in one directory would count one disk twice, and a site over the data
    directory would mix blobs with the databases: both are refused, however the path is
    spelt (`..`, a symlink), with one clear line and nothing written."""
    srv = private_server
    officer = srv.token("officer1")
    site_add_fs(srv, "de-ber", "DE", tmp_path / "disks" / "ber")
    link = tmp_path / "innocent-looking"
    link.symlink_to(srv.site_dir("de-fra"))
    attempts = [
        (srv.data_dir / "sites" / "de-new", "data directory"),
        (srv.data_dir.parent / "elsewhere" / ".." / srv.data_dir.name / "blobs", "data directory"),
        (srv.data_dir.parent, "contains"),
        (tmp_path / "disks", "site de-ber"),
        (tmp_path / "disks" / "ber" / "inner", "site de-ber"),
        (link / "inner", "site de-fra"),
        (link, "site de-fra"),
    ]
    identity = (srv.site_dir("de-fra") / "site.json").read_bytes()
    for n, (path, what) in enumerate(attempts):
        had_identity = (path / "site.json").exists()
        err = run_fail(srv, officer, "site", "add", f"de-x{n}", "--jurisdiction", "DE", "--fs", str(path),
                       status=400, says=what)
        assert "inside" in err or "contains" in err, err
        assert had_identity or not (path / "site.json").exists(), f"a refused site add wrote {path / 'site.json'}"
    assert (srv.site_dir("de-fra") / "site.json").read_bytes() == identity, "de-fra's identity was touched"
    assert set(sites(srv)) == {"de-fra", "de-mgd", "de-ber"}
    # A directory beside them is fine.
    site_add_fs(srv, "de-ok", "DE", tmp_path / "disks-2" / "ok")


@pytest.mark.parametrize("who", ["operator", "auditor", "demo_admin"])
def test_only_officers_add_sites(private_server, tmp_path, who):
    srv = private_server
    path = tmp_path / f"by-{who}"
    run_fail(srv, srv.token(who), "site", "add", f"x-{who.replace('_', '-')}", "--jurisdiction", "DE",
             "--fs", str(path), status=403)
    assert not path.exists() or site_files(path) == [], f"a refused site add by {who} left files: {site_files(path)}"
    assert set(sites(srv)) == {"de-fra", "de-mgd"}


def test_who_may_list_sites(private_server):
    srv = private_server
    for who in ("officer1", "operator", "auditor"):
        rows = site_list_rows(srv, who)
        assert {"de-fra", "de-mgd"} <= set(rows), (who, rows)
    run_fail(srv, srv.token("demo_admin"), "site", "list", status=403)
    r = api(srv, "GET", "/v1/sites", None)
    assert r.status_code in (401, 403), f"GET /v1/sites without a token: {r.status_code}"


def test_who_may_run_repair(private_server):
    srv = private_server
    for who in ("officer1", "operator"):
        out = run_ok(srv, srv.token(who), "repair")
        assert re.search(r"\d+ of \d+ objects", out), out
        run_ok(srv, srv.token(who), "repair", "--status")
    for who in ("auditor", "demo_admin"):
        run_fail(srv, srv.token(who), "repair", status=403)
    r = api(srv, "POST", "/v1/repair", "demo_admin")
    assert r.status_code == 403, f"POST /v1/repair as a tenant admin: {r.status_code} {r.text[:200]}"


def test_site_state_changes_and_remove_rules(private_server, tmp_path):
    srv = private_server
    site_add_fs(srv, "de-x", "DE", tmp_path / "de-x")
    for who in ("auditor", "demo_admin"):
        run_fail(srv, srv.token(who), "site", "set-state", "de-x", "down", status=403)
        run_fail(srv, srv.token(who), "site", "remove", "de-x", status=403)
    run_fail(srv, srv.token("officer1"), "site", "set-state", "de-x", "sideways", status=400)
    run_fail(srv, srv.token("officer1"), "site", "set-state", "no-such-site", "down", status=404)
    # An active site is never removed.
    run_fail(srv, srv.token("officer1"), "site", "remove", "de-x", status=409, says="active")
    assert "de-x" in sites(srv)
    for state in ("down", "draining", "active"):
        set_state(srv, "de-x", state)
        assert sites(srv)["de-x"]["state"] == state
    wait_repair_idle(srv)

    # A site that holds replicas is not removed, not even when it is down.
    s3 = srv.client()
    bucket = new_bucket(s3)
    policy(srv, "demo", min_sites=3)
    s3.put_object(Bucket=bucket, Key="k", Body=b"on three sites")
    assert sites(srv)["de-x"]["replicas"] == 1
    set_state(srv, "de-x", "down")
    wait_repair_idle(srv)
    assert sites(srv)["de-x"]["replicas"] == 1, "with no fourth site the replica cannot have moved"
    run_fail(srv, srv.token("officer1"), "site", "remove", "de-x", status=409, says="replica")
    assert "de-x" in sites(srv)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"on three sites"


# ---------------------------------------------------------------- S3 sites


def test_s3_site_on_a_real_s3_server(private_server_factory):
    srv = private_server_factory()
    remote = s3_site_server(private_server_factory)
    r = add_s3_site(srv, "de-s3", remote)
    assert r.returncode == 0, f"site add --s3: {r.stderr} {r.stdout}"
    row = site_list_rows(srv)["de-s3"]
    assert row["jur"] == "DE" and row["state"] == "active" and row["reachable"] == "yes", row
    assert remote["url"] in row["backend"] and remote["bucket"] in row["backend"], row
    # Its identity is in the bucket, next to nothing else yet.
    before = remote_keys(remote)
    assert before, "the S3 site's bucket holds no identity object after site add"

    policy(srv, "demo", min_sites=3)
    s3 = srv.client()
    bucket = new_bucket(s3)
    data = {f"doc-{i}": os.urandom(1000 + i * 37_000) for i in range(6)}
    data["large"] = os.urandom(12 * 1024 * 1024 + 5)  # larger than a multipart part on the S3 site
    for k, v in data.items():
        s3.put_object(Bucket=bucket, Key=k, Body=v)
    rep = bucket_report(residency(srv, "demo", verify=True)[1], "demo", bucket)
    assert rep["objects_by_sites"] == {"de-fra,de-mgd,de-s3": len(data)}, rep
    assert rep["verified"]["missing"] == 0 and rep["verified"]["corrupt"] == 0, rep
    assert rep["verified"]["unreachable"] == 0, rep

    after = set(remote_keys(remote)) - set(before)
    assert len(after) == len(data), f"expected {len(data)} blobs in the S3 site's bucket, found {sorted(after)}"
    # Opaque names only: no object key, bucket or tenant name shows up on the site.
    for name in after:
        for word in (*data, bucket, "demo"):
            assert word not in name, f"the S3 site sees a name {name!r} containing {word!r}"
    # ... and only ciphertext.
    rclient = remote["server"].client()
    for name in sorted(after)[:3]:
        body = rclient.get_object(Bucket=remote["bucket"], Key=name)["Body"].read()
        for v in data.values():
            assert v[:64] not in body, "plaintext found in a blob on the S3 site"

    # Reads are served by the S3 site alone when both local sites lose their blobs.
    for sid in ("de-fra", "de-mgd"):
        for p in (srv.site_dir(sid) / "blobs").rglob("*"):
            if p.is_file():
                p.unlink()
    for k, v in data.items():
        assert sha(s3.get_object(Bucket=bucket, Key=k)["Body"].read()) == sha(v), f"{k} wrong from the S3 site"

    # Repair restores the local replicas from the S3 site (ciphertext copy).
    run_ok(srv, srv.token("operator"), "repair")
    rep = bucket_report(residency(srv, "demo", verify=True)[1], "demo", bucket)
    assert rep["verified"]["missing"] == 0 and rep["verified"]["corrupt"] == 0, rep
    for sid in ("de-fra", "de-mgd"):
        assert len(site_blobs(srv.site_dir(sid))) == len(data), f"{sid} not restored by repair"


def test_s3_site_on_garage(private_server, garage):
    """A bucket on a real Garage node as a third site: objects written through
    obhut land there as opaque ciphertext blobs, are read back from it alone,
    and are removed from it when deleted."""
    srv = private_server
    remote = garage.site()
    r = add_s3_site(srv, "de-garage", remote)
    assert r.returncode == 0, f"site add --s3 (Garage): {r.stderr} {r.stdout}\n{garage.log_tail()}"
    row = site_list_rows(srv)["de-garage"]
    assert row["state"] == "active" and row["reachable"] == "yes", row
    identity = set(remote_keys(remote))
    assert identity == {"obhut-site.json"}, identity

    policy(srv, "demo", min_sites=3)
    s3 = srv.client()
    bucket = new_bucket(s3)
    data = {"small": os.urandom(5000), "large": os.urandom(12 * 1024 * 1024 + 5)}
    for k, v in data.items():
        s3.put_object(Bucket=bucket, Key=k, Body=v)
    rep = bucket_report(residency(srv, "demo", verify=True)[1], "demo", bucket)
    assert rep["objects_by_sites"] == {"de-fra,de-garage,de-mgd": len(data)}, rep
    assert rep["verified"]["missing"] == 0 and rep["verified"]["corrupt"] == 0, rep
    blobs = set(remote_keys(remote)) - identity
    assert len(blobs) == len(data) and all(b.startswith("blobs/") for b in blobs), blobs
    uploads = garage.client().list_multipart_uploads(Bucket=remote["bucket"]).get("Uploads") or []
    assert not uploads, f"multipart uploads left on Garage: {uploads}"

    # Served by Garage alone when both local sites lose their blobs.
    for sid in ("de-fra", "de-mgd"):
        for p in (srv.site_dir(sid) / "blobs").rglob("*"):
            if p.is_file():
                p.unlink()
    for k, v in data.items():
        assert sha(s3.get_object(Bucket=bucket, Key=k)["Body"].read()) == sha(v), f"{k} wrong from Garage"

    for k in data:
        s3.delete_object(Bucket=bucket, Key=k)
    wait_until(lambda: set(remote_keys(remote)) == identity, 30, "the deleted objects' blobs to leave Garage")


def test_s3_site_drain_empties_the_bucket_and_site_can_be_removed(private_server_factory):
    srv = private_server_factory()
    remote = s3_site_server(private_server_factory)
    r = add_s3_site(srv, "de-s3", remote, secret_via_env=False)
    assert r.returncode == 0, f"site add --s3: {r.stderr} {r.stdout}"
    identity_keys = set(remote_keys(remote))
    policy(srv, "demo", min_sites=3)
    s3 = srv.client()
    bucket = new_bucket(s3)
    data = {f"o{i}": os.urandom(20_000) for i in range(8)}
    for k, v in data.items():
        s3.put_object(Bucket=bucket, Key=k, Body=v)
    assert sites(srv)["de-s3"]["replicas"] == len(data)
    policy(srv, "demo", min_sites=2)
    set_state(srv, "de-s3", "draining")
    wait_until(lambda: sites(srv)["de-s3"]["replicas"] == 0 and repair_status(srv)["state"] != "running",
               60, "the S3 site to be drained")
    assert set(remote_keys(remote)) == identity_keys, (
        f"blobs left in the drained S3 site's bucket: {sorted(set(remote_keys(remote)) - identity_keys)}"
    )
    uploads = remote["server"].client().list_multipart_uploads(Bucket=remote["bucket"]).get("Uploads") or []
    assert not uploads, f"multipart uploads left on the drained S3 site: {uploads}"
    run_ok(srv, srv.token("officer1"), "site", "remove", "de-s3")
    assert "de-s3" not in sites(srv)
    for k, v in data.items():
        assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == v


def test_s3_site_with_wrong_credentials_is_refused(private_server_factory):
    srv = private_server_factory()
    remote = s3_site_server(private_server_factory)
    bad = dict(remote, secret_key="not-the-secret-" + "x" * 25)
    r = add_s3_site(srv, "de-bad", bad)
    assert r.returncode != 0, f"site add with a wrong secret key succeeded: {r.stdout}"
    assert "de-bad" not in sites(srv)


# ---------------------------------------------------------------- site secrets


def _scan_for(secret: bytes, root: Path) -> list[str]:
    hits = []
    for p in root.rglob("*"):
        if p.is_file():
            try:
                if secret in p.read_bytes():
                    hits.append(str(p))
            except OSError:
                pass
    return hits


def test_site_secrets_never_stored_or_shown_in_clear(private_server_factory):
    srv = private_server_factory(config='log = "debug"\n')
    remote = s3_site_server(private_server_factory)
    secret = remote["secret_key"]
    # Once through the environment, once on the command line.
    r = add_s3_site(srv, "de-s3a", remote, secret_via_env=True)
    assert r.returncode == 0, f"site add: {r.stderr}"
    assert secret not in r.stdout + r.stderr, "site add printed the secret key"
    remote2 = dict(remote)
    remote2["bucket"] = new_bucket(remote["server"].client(), "site2")
    r = add_s3_site(srv, "de-s3b", remote2, secret_via_env=False)
    assert r.returncode == 0, f"site add: {r.stderr}"
    assert secret not in r.stdout + r.stderr, "site add printed the secret key"

    policy(srv, "demo", min_sites=4)
    s3 = srv.client()
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x" * 5000)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x" * 5000
    run_ok(srv, srv.token("operator"), "repair")

    for who in ("officer1", "operator", "auditor"):
        out = run_ok(srv, srv.token(who), "site", "list")
        assert secret not in out, f"`site list` as {who} shows the secret key"
        r = api(srv, "GET", "/v1/sites", who)
        assert secret not in r.text, f"GET /v1/sites as {who} shows the secret key"
    r = api(srv, "GET", "/v1/log/entries?from=0", "auditor")
    assert r.status_code == 200 and secret not in r.text, "the transparency log holds the secret key"
    out = run_ok(srv, srv.token("officer1"), "residency", "report")
    assert secret not in out

    # Restart (the secret must be decrypted from storage, not kept from the command line).
    srv.stop_ok()
    srv.start()
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x" * 5000
    rep = bucket_report(residency(srv, "demo", verify=True)[1], "demo", bucket)
    assert rep["verified"]["unreachable"] == 0 and rep["verified"]["missing"] == 0, (
        f"the S3 sites do not work after a restart: {rep}"
    )
    srv.stop_ok()
    hits = _scan_for(secret.encode(), srv.data_dir)
    assert not hits, f"the site secret key is stored in clear in {hits}"
    assert secret not in srv.log_path.read_text(errors="replace"), "the server log holds the site secret key"
    srv.start()


# ---------------------------------------------------------------- draining


def _fill(srv, bucket: str, n: int, size: int, prefix: str = "k") -> dict[str, str]:
    s3 = srv.client()
    keys = {f"{prefix}{i:04d}": size for i in range(n)}
    with ThreadPoolExecutor(16) as ex:
        list(ex.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=payload(k, keys[k])), keys))
    return {k: sha(payload(k, s)) for k, s in keys.items()}


def test_drain_moves_replicas_then_site_can_be_removed(private_server, tmp_path):
    srv = private_server
    site_add_fs(srv, "de-ber", "DE", tmp_path / "de-ber")
    s3 = srv.client()
    bucket = new_bucket(s3)
    # Place objects on de-fra and de-mgd only: de-ber down while writing.
    set_state(srv, "de-ber", "down")
    wait_repair_idle(srv)
    sums = _fill(srv, bucket, 60, 50_000)
    set_state(srv, "de-ber", "active")
    before = site_blobs(srv.site_dir("de-mgd"))
    assert len(before) == 60
    run_fail(srv, srv.token("officer1"), "site", "remove", "de-mgd", status=409)

    out = set_state(srv, "de-mgd", "draining")
    assert "repair --status" in out, f"set-state draining should say how to follow it: {out!r}"
    seen = []
    wait_until(lambda: seen.append(repair_status(srv)) or seen[-1]["state"] != "running", 60, "the drain")
    last = seen[-1]
    assert last["state"] == "done" and last["objects_failed"] == 0, last
    assert last["objects_total"] >= 60 and last["objects_done"] == last["objects_total"], last
    assert last["replicas_copied"] >= 60 and last["replicas_removed"] >= 60, last
    status_line = run_ok(srv, srv.token("operator"), "repair", "--status")
    assert re.search(r"\b60 of 60 objects|\b(\d+) of \1 objects", status_line), status_line

    assert sites(srv)["de-mgd"]["replicas"] == 0
    assert site_blobs(srv.site_dir("de-mgd")) == set(), "blobs left on the drained site"
    assert len(site_blobs(tmp_path / "de-ber")) == 60
    assert site_blobs(tmp_path / "de-ber") == before, "the drain did not copy the same blobs (ciphertext) over"
    rep = bucket_report(residency(srv, "demo", verify=True)[1], "demo", bucket)
    assert rep["objects_by_sites"] == {"de-ber,de-fra": 60}, rep
    assert rep["verified"]["missing"] == 0 and rep["verified"]["corrupt"] == 0, rep
    for k, h in sums.items():
        assert sha(s3.get_object(Bucket=bucket, Key=k)["Body"].read()) == h

    # New writes do not go to a draining site.
    for i in range(10):
        s3.put_object(Bucket=bucket, Key=f"new{i}", Body=os.urandom(1000))
    assert site_blobs(srv.site_dir("de-mgd")) == set(), "a draining site received new writes"

    run_ok(srv, srv.token("officer1"), "site", "remove", "de-mgd")
    assert "de-mgd" not in sites(srv)
    for k, h in sums.items():
        assert sha(s3.get_object(Bucket=bucket, Key=k)["Body"].read()) == h


def test_drain_moves_parts_of_unfinished_uploads(private_server, tmp_path):
    """A drain moves the part blobs of multipart uploads still in progress too: the
    upload completes afterwards, reads back, and the drained site holds nothing."""
    srv = private_server
    site_add_fs(srv, "de-ber", "DE", tmp_path / "de-ber")
    s3 = srv.client()
    bucket = new_bucket(s3)
    # Parts placed on de-fra and de-mgd only: de-ber down while uploading.
    set_state(srv, "de-ber", "down")
    wait_repair_idle(srv)
    bodies = [os.urandom(5 * 1024 * 1024), os.urandom(123_457)]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="unfinished")["UploadId"]
    parts = []
    for n, body in enumerate(bodies, start=1):
        r = s3.upload_part(Bucket=bucket, Key="unfinished", UploadId=upload_id, PartNumber=n, Body=body)
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    set_state(srv, "de-ber", "active")
    wait_repair_idle(srv)
    before = site_blobs(srv.site_dir("de-mgd"))
    assert len(before) == 2, f"the parts are not on de-mgd: {before}"
    assert sites(srv)["de-mgd"]["replicas"] == 2

    set_state(srv, "de-mgd", "draining")
    st = wait_repair_idle(srv)
    assert st["state"] == "done" and st["parts_done"] == 2 and st["parts_failed"] == 0, st
    assert st["replicas_removed"] >= 2, st
    assert sites(srv)["de-mgd"]["replicas"] == 0, sites(srv)["de-mgd"]
    assert site_blobs(srv.site_dir("de-mgd")) == set(), "part blobs left on the drained site"
    assert site_blobs(tmp_path / "de-ber") == before, "the drain did not copy the parts (ciphertext) over"

    s3.complete_multipart_upload(Bucket=bucket, Key="unfinished", UploadId=upload_id,
                                 MultipartUpload={"Parts": parts})
    got = s3.get_object(Bucket=bucket, Key="unfinished")["Body"].read()
    assert sha(got) == sha(b"".join(bodies)), "the upload completed after the drain reads back wrong"
    assert site_blobs(srv.site_dir("de-mgd")) == set(), "the drained site received blobs again"
    rep = bucket_report(residency(srv, "demo", verify=True)[1], "demo", bucket)
    assert rep["objects_by_sites"] == {"de-ber,de-fra": 1}, rep
    assert rep["verified"]["missing"] == 0 and rep["verified"]["corrupt"] == 0, rep
    run_ok(srv, srv.token("officer1"), "site", "remove", "de-mgd")
    assert "de-mgd" not in sites(srv)


def test_down_site_is_repaired_away_from(private_server, tmp_path):
    """`set-state down` starts a repair pass that restores min_sites replicas
    elsewhere (copied from the other replica)."""
    srv = private_server
    s3 = srv.client()
    bucket = new_bucket(s3)
    sums = _fill(srv, bucket, 20, 10_000)
    site_add_fs(srv, "de-ber", "DE", tmp_path / "de-ber")
    set_state(srv, "de-mgd", "down")
    wait_until(lambda: len(site_blobs(tmp_path / "de-ber")) == 20 and repair_status(srv)["state"] != "running",
               60, "replicas to be restored on de-ber after de-mgd went down")
    rep = bucket_report(residency(srv, "demo", verify=True)[1], "demo", bucket)
    assert rep["under_replicated"] == 0 and rep["verified"]["missing"] == 0, rep
    assert all("de-ber" in s and "de-fra" in s for s in rep["objects_by_sites"]), rep
    for k, h in sums.items():
        assert sha(s3.get_object(Bucket=bucket, Key=k)["Body"].read()) == h


def test_repair_cli_shows_a_progress_bar(private_server, tmp_path):
    srv = private_server
    s3 = srv.client()
    bucket = new_bucket(s3)
    _fill(srv, bucket, 150, 100_000)
    site_add_fs(srv, "de-ber", "DE", tmp_path / "de-ber")
    set_state(srv, "de-mgd", "draining")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [str(obhut_bin()), "repair"],
        env=clean_env({"OBHUT_ADMIN_URL": srv.admin_url, "OBHUT_TOKEN": srv.token("operator"), "TERM": "xterm"}),
        stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
    )
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    code = proc.wait(30)
    os.close(master)
    text = out.decode(errors="replace")
    assert code == 0, f"`obhut repair` on a terminal exited {code}: {text[-2000:]}"
    bars = re.findall(r"\[[=> ]{10,}\]\s*\d+/\d+", text)
    assert len(bars) >= 2, f"no progress bar drawn by `obhut repair` on a terminal: {text[-2000:]!r}"
    assert re.search(r"\d+ of \d+ objects", text), text[-500:]


# ---------------------------------------------------------------- kill -9 during a drain


def test_kill9_during_drain_loses_nothing_and_drain_resumes(private_server, tmp_path):
    srv = private_server
    s3 = srv.client()
    bucket = new_bucket(s3)
    n = 400
    sums = _fill(srv, bucket, n, 256 * 1024)
    site_add_fs(srv, "de-ber", "DE", tmp_path / "de-ber")
    assert len(site_blobs(srv.site_dir("de-mgd"))) == n

    set_state(srv, "de-mgd", "draining")
    deadline = time.monotonic() + 60
    st = repair_status(srv)
    while time.monotonic() < deadline:
        st = repair_status(srv)
        if st["state"] != "running" or st["objects_done"] >= n // 8:
            break
        time.sleep(0.02)
    assert st["state"] == "running" and 0 < st["objects_done"] < n, (
        f"could not interrupt the drain half-way (it is too fast or did not start): {st}"
    )
    srv.kill9()
    moved_at_kill = len(site_blobs(tmp_path / "de-ber"))
    left_at_kill = len(site_blobs(srv.site_dir("de-mgd")))
    print(f"killed at {st['objects_done']} of {st['objects_total']}; de-ber {moved_at_kill}, de-mgd {left_at_kill}")
    assert 0 < left_at_kill < n or moved_at_kill > 0, (moved_at_kill, left_at_kill)

    srv.start()
    # Nothing lost right after the restart, before the drain has finished.
    got = {}
    for k in sums:
        got[k] = sha(s3.get_object(Bucket=bucket, Key=k)["Body"].read())
    wrong = [k for k in sums if got[k] != sums[k]]
    assert not wrong, f"{len(wrong)} objects wrong after kill -9 during a drain: {wrong[:5]}"
    assert sites(srv)["de-mgd"]["state"] == "draining", "the site is no longer draining after the restart"

    # The drain resumes on its own (no operator command).
    wait_until(lambda: sites(srv)["de-mgd"]["replicas"] == 0 and repair_status(srv)["state"] != "running",
               90, f"the drain to resume and finish after the restart; status {repair_status(srv)}")
    st = repair_status(srv)
    assert st["objects_failed"] == 0, st
    wait_until(lambda: site_blobs(srv.site_dir("de-mgd")) == set(), 30,
               "the drained site's blob files to be gone (moved, orphans collected)")
    rep = bucket_report(residency(srv, "demo", verify=True)[1], "demo", bucket)
    assert rep["objects"] == n and rep["under_replicated"] == 0, rep
    assert rep["objects_by_sites"] == {"de-ber,de-fra": n}, rep
    assert rep["verified"]["missing"] == 0 and rep["verified"]["corrupt"] == 0, rep
    assert len(site_blobs(tmp_path / "de-ber")) == n, "orphans or missing replicas on de-ber"
    for k, h in sums.items():
        assert sha(s3.get_object(Bucket=bucket, Key=k)["Body"].read()) == h, k
    assert (tmp_path / "de-ber" / "tmp").is_dir() and list((tmp_path / "de-ber" / "tmp").iterdir()) == []
    run_ok(srv, srv.token("officer1"), "site", "remove", "de-mgd")
