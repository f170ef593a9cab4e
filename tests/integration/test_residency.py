"""Guarantees 1 and 2 as policy: a tenant's residency policy (allowed
jurisdictions, min_sites, degraded_writes) is set by officers only; a tenant
admin may narrow it per bucket, never widen it; placement picks distinct
active sites of allowed jurisdictions only; with too few sites a write is
refused with a 503 naming the shortfall (refuse) or stored on fewer sites,
reported under-replicated and repaired later (accept); a change that would
leave data outside the allowed jurisdictions is refused naming what is
affected. `obhut residency report` is signed by the trustee and its digest is
in the transparency log, where the tenant finds it."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re

import pytest
import requests

from conftest import new_tenant
from site_helpers import (
    all_buckets,
    api,
    blob_file,
    bucket_report,
    new_bucket,
    policy,
    put_status,
    repair_status,
    residency,
    run_fail,
    run_ok,
    set_state,
    site_add_fs,
    site_blobs,
    wait_repair_idle,
    wait_until,
)
from test_log import ed25519_verify, parse_vkey


# ---------------------------------------------------------------- tenant policy: who, and what


def test_default_policy_of_demo(private_server):
    out = run_ok(private_server, private_server.token("officer1"), "tenant", "policy", "demo")
    assert re.search(r"jurisdictions DE\b", out) and "min_sites 2" in out and "degraded writes refuse" in out, out


@pytest.mark.parametrize("who", ["operator", "auditor", "demo_admin"])
def test_only_officers_change_tenant_policy(private_server, who):
    srv = private_server
    run_fail(srv, srv.token(who), "tenant", "policy", "demo", "--min-sites", "1", status=403)
    run_fail(srv, srv.token(who), "tenant", "policy", "demo", "--jurisdiction", "DE,US", status=403)
    out = run_ok(srv, srv.token("officer1"), "tenant", "policy", "demo")
    assert "min_sites 2" in out and "DE,US" not in out, out


def test_policy_validation(private_server):
    srv = private_server
    run_fail(srv, srv.token("officer1"), "tenant", "policy", "demo", "--min-sites", "0", status=400)
    run_fail(srv, srv.token("officer1"), "tenant", "policy", "demo", "--degraded-writes", "sometimes")
    run_fail(srv, srv.token("officer1"), "tenant", "policy", "no-such-tenant", "--min-sites", "2", status=404)


def test_policy_change_that_strands_data_is_refused_naming_the_bucket(private_server):
    srv = private_server
    s3 = srv.client()
    b1, b2 = new_bucket(s3, "strand-a"), new_bucket(s3, "strand-b")
    for i in range(3):
        s3.put_object(Bucket=b1, Key=f"k{i}", Body=b"x")
    s3.put_object(Bucket=b2, Key="only", Body=b"y")
    err = run_fail(srv, srv.token("officer1"), "tenant", "policy", "demo", "--jurisdiction", "AT", status=409,
                   says=[b1, b2])
    assert re.search(rf"{b1}\D+3 object", err) and re.search(rf"{b2}\D+1 object", err), (
        f"the refusal should name each bucket and its object count: {err!r}"
    )
    out = run_ok(srv, srv.token("officer1"), "tenant", "policy", "demo")
    assert re.search(r"jurisdictions DE,", out), f"the refused change took effect anyway: {out!r}"
    # Widening is fine, and so is narrowing back to where the data is.
    out = policy(srv, "demo", jurisdiction="DE,AT")
    assert "DE,AT" in out, out
    out = policy(srv, "demo", jurisdiction="DE")
    assert "jurisdictions DE," in out, out


def test_narrowing_a_tenant_without_data_is_allowed(private_server):
    srv = private_server
    t = new_tenant(srv, "tempty" + os.urandom(3).hex())
    out = policy(srv, t["name"], jurisdiction="AT")
    assert "jurisdictions AT" in out, out


def test_policy_changes_are_logged(private_server):
    srv = private_server
    policy(srv, "demo", min_sites=2, degraded="accept")
    r = api(srv, "GET", "/v1/log/entries?from=0&tenant=demo", "auditor")
    assert r.status_code == 200, r.text
    types = [json.loads(e["entry"]).get("type") for e in r.json()["entries"]]
    assert "policy_changed" in types, f"no policy_changed entry in demo's log: {types}"


# ---------------------------------------------------------------- bucket policy: narrow, never widen


def test_bucket_policy_narrows_but_never_widens(private_server, tmp_path):
    srv = private_server
    s3 = srv.client()
    bucket = new_bucket(s3, "narrow")
    other = new_bucket(s3, "other")
    admin = srv.token("demo_admin")

    # Wider than the tenant: refused.
    run_fail(srv, admin, "tenant", "bucket-policy", "demo", "--bucket", bucket, "--jurisdiction", "DE,US",
             status=403, says="narrow")
    run_fail(srv, admin, "tenant", "bucket-policy", "demo", "--bucket", bucket, "--min-sites", "1",
             status=403, says="narrow")
    # Only the tenant's own admin.
    for who in ("officer1", "operator", "auditor"):
        run_fail(srv, srv.token(who), "tenant", "bucket-policy", "demo", "--bucket", bucket, "--min-sites", "3",
                 status=403)
    other_tenant = new_tenant(srv, "tnar" + os.urandom(3).hex())
    run_fail(srv, other_tenant["admin_token"], "tenant", "bucket-policy", "demo", "--bucket", bucket,
             "--min-sites", "3", status=403)
    run_fail(srv, admin, "tenant", "bucket-policy", "demo", "--bucket", "no-such-bucket-x", "--min-sites", "3",
             status=404)

    # Narrower: accepted, and in effect for that bucket only.
    out = run_ok(srv, admin, "tenant", "bucket-policy", "demo", "--bucket", bucket, "--min-sites", "3")
    assert "min_sites 3" in out, out
    status, code, msg = put_status(srv, bucket, "k", b"needs three sites")
    assert status == 503 and code == "ServiceUnavailable", (status, code, msg)
    assert "3" in msg and "2" in msg, f"the 503 should say how many sites it has and needs: {msg!r}"
    s3.put_object(Bucket=other, Key="k", Body=b"two are enough here")
    # A third DE site makes the narrowed bucket writable, on three distinct sites.
    site_add_fs(srv, "de-ber", "DE", tmp_path / "de-ber")
    s3.put_object(Bucket=bucket, Key="k", Body=b"needs three sites")
    rep = bucket_report(residency(srv, "demo")[1], "demo", bucket)
    assert rep["objects_by_sites"] == {"de-ber,de-fra,de-mgd": 1}, rep
    assert rep["policy"]["min_sites"] == 3, rep


def test_bucket_narrowing_that_strands_data_is_refused(private_server):
    srv = private_server
    s3 = srv.client()
    policy(srv, "demo", jurisdiction="DE,AT")
    bucket = new_bucket(s3, "strand")
    s3.put_object(Bucket=bucket, Key="k", Body=b"in DE")
    err = run_fail(srv, srv.token("demo_admin"), "tenant", "bucket-policy", "demo", "--bucket", bucket,
                   "--jurisdiction", "AT", status=409, says=bucket)
    assert "1 object" in err, err
    out = run_ok(srv, srv.token("demo_admin"), "tenant", "bucket-policy", "demo", "--bucket", bucket,
                 "--jurisdiction", "DE")
    assert "DE" in out
    # Narrowing the tenant back to where the data is stays possible.
    policy(srv, "demo", jurisdiction="DE")


# ---------------------------------------------------------------- placement


def test_placement_only_allowed_jurisdictions_and_distinct_sites(private_server, tmp_path):
    srv = private_server
    for sid in ("at-vie", "at-grz"):
        site_add_fs(srv, sid, "AT", tmp_path / sid)
    site_add_fs(srv, "us-east", "US", tmp_path / "us-east")
    de = srv.client()
    de_bucket = new_bucket(de, "de")
    t_at = new_tenant(srv, "tat" + os.urandom(3).hex(), jurisdiction="AT")
    at = srv.client(t_at["AWS_ACCESS_KEY_ID"], t_at["AWS_SECRET_ACCESS_KEY"])
    at_bucket = new_bucket(at, "at")
    for i in range(15):
        de.put_object(Bucket=de_bucket, Key=f"d{i}", Body=os.urandom(3000))
        at.put_object(Bucket=at_bucket, Key=f"a{i}", Body=os.urandom(3000))

    de_blobs = site_blobs(srv.site_dir("de-fra")) | site_blobs(srv.site_dir("de-mgd"))
    at_blobs = site_blobs(tmp_path / "at-vie") | site_blobs(tmp_path / "at-grz")
    assert len(site_blobs(srv.site_dir("de-fra"))) == 15 and len(site_blobs(srv.site_dir("de-mgd"))) == 15
    assert len(site_blobs(tmp_path / "at-vie")) == 15 and len(site_blobs(tmp_path / "at-grz")) == 15
    assert not de_blobs & at_blobs, "blobs shared between DE and AT sites"
    assert site_blobs(tmp_path / "us-east") == set(), "the US site received blobs of a DE or AT tenant"

    report = residency(srv)[1]
    assert bucket_report(report, "demo", de_bucket)["objects_by_sites"] == {"de-fra,de-mgd": 15}
    assert bucket_report(report, t_at["name"], at_bucket)["objects_by_sites"] == {"at-grz,at-vie": 15}
    for tenant, b in all_buckets(report):
        assert b["outside_policy"] == 0 and not b["outside_policy_sites"], (tenant, b)
        for combo in b["objects_by_sites"]:
            ids = combo.split(",")
            assert len(ids) == len(set(ids)), f"replicas of one object on the same site twice: {combo}"


def test_placement_skips_draining_and_down_sites(private_server, tmp_path):
    srv = private_server
    site_add_fs(srv, "de-ber", "DE", tmp_path / "de-ber")
    s3 = srv.client()
    bucket = new_bucket(s3)
    set_state(srv, "de-mgd", "down")
    wait_repair_idle(srv)
    for i in range(10):
        s3.put_object(Bucket=bucket, Key=f"a{i}", Body=os.urandom(1000))
    set_state(srv, "de-mgd", "active")
    set_state(srv, "de-ber", "draining")
    wait_repair_idle(srv)
    for i in range(10):
        s3.put_object(Bucket=bucket, Key=f"b{i}", Body=os.urandom(1000))
    wait_repair_idle(srv)
    rep = bucket_report(residency(srv, "demo")[1], "demo", bucket)
    assert rep["objects_by_sites"] == {"de-fra,de-mgd": 20}, (
        f"writes placed on a down or draining site (or not moved off it): {rep['objects_by_sites']}"
    )


# ---------------------------------------------------------------- too few sites: refuse or accept


def test_degraded_refuse_is_a_503_naming_the_shortfall(private_server):
    srv = private_server
    s3 = srv.client()
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="old", Body=b"old")
    set_state(srv, "de-mgd", "down")
    wait_repair_idle(srv)
    status, code, msg = put_status(srv, bucket, "new", b"new")
    assert status == 503 and code == "ServiceUnavailable", (status, code, msg)
    low = msg.lower()
    assert "1" in msg and "2" in msg and "site" in low and "de" in low, (
        f"the message should say why: sites available vs. required, and the jurisdiction: {msg!r}"
    )
    assert not s3.list_objects_v2(Bucket=bucket, Prefix="new").get("Contents"), "a refused write is visible"
    assert s3.get_object(Bucket=bucket, Key="old")["Body"].read() == b"old"
    # boto3 sees the same 503.
    with pytest.raises(Exception) as e:
        s3.put_object(Bucket=bucket, Key="new2", Body=b"x")
    assert "ServiceUnavailable" in str(e.value) or "503" in str(e.value)


def test_degraded_accept_writes_fewer_sites_then_repairs(private_server):
    srv = private_server
    s3 = srv.client()
    bucket = new_bucket(s3)
    policy(srv, "demo", degraded="accept")
    set_state(srv, "de-mgd", "down")
    wait_repair_idle(srv)
    before_mgd = site_blobs(srv.site_dir("de-mgd"))
    s3.put_object(Bucket=bucket, Key="degraded", Body=b"written on one site")
    assert s3.get_object(Bucket=bucket, Key="degraded")["Body"].read() == b"written on one site"
    rep = bucket_report(residency(srv, "demo")[1], "demo", bucket)
    assert rep["under_replicated"] == 1 and rep["objects_by_sites"] == {"de-fra": 1}, rep
    assert site_blobs(srv.site_dir("de-mgd")) == before_mgd, "a write went to a down site"

    set_state(srv, "de-mgd", "active")
    out = run_ok(srv, srv.token("operator"), "repair")
    assert "0 failed" in out, out
    rep = bucket_report(residency(srv, "demo", verify=True)[1], "demo", bucket)
    assert rep["under_replicated"] == 0 and rep["objects_by_sites"] == {"de-fra,de-mgd": 1}, rep
    assert rep["verified"]["missing"] == 0 and rep["verified"]["corrupt"] == 0, rep


def test_degraded_accept_is_repaired_later_without_an_operator(private_server):
    """"(accept) write to the available sites, mark the object under-replicated,
    and repair later": once the site is back, the object gets its second replica
    without anyone running `obhut repair`."""
    srv = private_server
    s3 = srv.client()
    bucket = new_bucket(s3)
    policy(srv, "demo", degraded="accept")
    set_state(srv, "de-mgd", "down")
    wait_repair_idle(srv)
    s3.put_object(Bucket=bucket, Key="degraded", Body=b"x" * 1000)
    set_state(srv, "de-mgd", "active")
    wait_until(lambda: bucket_report(residency(srv, "demo")[1], "demo", bucket)["under_replicated"] == 0, 30,
               f"the under-replicated object to be repaired after de-mgd came back; repair {repair_status(srv)}")


def test_degraded_accept_with_no_site_at_all_refuses(private_server):
    srv = private_server
    s3 = srv.client()
    bucket = new_bucket(s3)
    policy(srv, "demo", degraded="accept")
    set_state(srv, "de-mgd", "down")
    set_state(srv, "de-fra", "down")
    wait_repair_idle(srv)
    status, code, msg = put_status(srv, bucket, "k", b"x")
    assert status == 503 and code == "ServiceUnavailable", (status, code, msg)
    assert not s3.list_objects_v2(Bucket=bucket).get("Contents")


def test_min_sites_above_sites_available(private_server, tmp_path):
    srv = private_server
    s3 = srv.client()
    bucket = new_bucket(s3)
    policy(srv, "demo", min_sites=3)
    status, code, msg = put_status(srv, bucket, "k", b"x")
    assert status == 503 and code == "ServiceUnavailable" and "3" in msg, (status, code, msg)
    site_add_fs(srv, "de-ber", "DE", tmp_path / "de-ber")
    assert put_status(srv, bucket, "k", b"x")[0] == 200


def test_repair_fails_loudly_when_min_sites_cannot_be_met(private_server):
    """`obhut repair` exits non-zero if some object could not be repaired: raising
    min_sites above the sites there are leaves every object short of replicas."""
    srv = private_server
    s3 = srv.client()
    bucket = new_bucket(s3)
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"k{i}", Body=b"x")
    policy(srv, "demo", min_sites=3)
    rep = bucket_report(residency(srv, "demo")[1], "demo", bucket)
    assert rep["under_replicated"] == 3, rep
    r = srv.cli("repair", token=srv.token("operator"), timeout=120)
    st = repair_status(srv)
    assert r.returncode != 0 and st["objects_failed"] == 3, (
        f"`obhut repair` exited {r.returncode} while 3 objects stay under-replicated "
        f"(only 2 DE sites for min_sites 3); stdout {r.stdout.strip()!r} stderr {r.stderr.strip()!r}; status {st}"
    )


# ---------------------------------------------------------------- the residency report


def _verify_attestation(srv, body: dict, tenant: str | None) -> None:
    text = body["report"]
    assert hashlib.sha256(text.encode()).hexdigest() == body["sha256"], "sha256 is not the digest of the report text"
    att = body["attestation"]
    vkey = requests.get(srv.admin_url + "/log/key", timeout=30).text.strip()
    assert att["verifier_key"].strip() == vkey, "the attestation names a key other than the log's"
    name, key_id, public = parse_vkey(vkey)
    note = att["note"]
    text_part, sep, sigs = note.partition("\n\n")
    assert sep, f"not a signed note: {note!r}"
    lines = text_part.split("\n")
    assert lines[0] == "obhut attestation residency-report", lines
    assert lines[1] == f"tenant {tenant if tenant else '*'}" or (tenant is None and lines[1].startswith("tenant ")), lines
    assert lines[2] == f"sha256 {body['sha256']}", lines
    assert lines[3] == f"log-index {att['log_index']}", lines
    ok = False
    for line in sigs.strip("\n").split("\n"):
        assert line.startswith("\u2014 "), line
        signer, blob = line[2:].rsplit(" ", 1)
        raw = base64.b64decode(blob)
        if signer == name and raw[:4] == key_id:
            ok = ed25519_verify(public, (text_part + "\n").encode(), raw[4:])
    assert ok, f"the attestation note is not validly signed by {name}:\n{note}"
    # A changed digest does not verify.
    forged = (text_part.replace(body["sha256"], "0" * 64) + "\n").encode()
    for line in sigs.strip("\n").split("\n"):
        signer, blob = line[2:].rsplit(" ", 1)
        raw = base64.b64decode(blob)
        assert not ed25519_verify(public, forged, raw[4:])


def test_report_digest_attestation_and_log_entry(private_server, tmp_path):
    srv = private_server
    s3 = srv.client()
    bucket = new_bucket(s3)
    for i in range(4):
        s3.put_object(Bucket=bucket, Key=f"k{i}", Body=os.urandom(2000))
    out_file = tmp_path / "report.json"
    out = run_ok(srv, srv.token("demo_admin"), "residency", "report", "--tenant", "demo", "--verify",
                 "--out", str(out_file))
    assert bucket in out and "outside policy 0" in out, out
    saved = json.loads(out_file.read_text())
    assert set(saved) >= {"report", "sha256", "attestation"}, saved.keys()
    assert saved["sha256"] in out, "the CLI should print the digest it attests"
    _verify_attestation(srv, saved, "demo")
    report = json.loads(saved["report"])
    b = bucket_report(report, "demo", bucket)
    assert b["objects"] == 4 and b["objects_by_sites"] == {"de-fra,de-mgd": 4}, b
    assert b["under_replicated"] == 0 and b["outside_policy"] == 0, b
    v = b["verified"]
    assert (v["replicas_checked"], v["missing"], v["corrupt"], v["unreachable"]) == (8, 0, 0, 0), b

    # The tenant finds the same digest in its own log entries.
    r = api(srv, "GET", "/v1/log/entries?from=0&tenant=demo", "demo_admin")
    assert r.status_code == 200, r.text
    entries = {e["index"]: json.loads(e["entry"]) for e in r.json()["entries"]}
    idx = saved["attestation"]["log_index"]
    assert idx in entries, f"log entry {idx} of the attestation is not among demo's entries: {sorted(entries)}"
    e = entries[idx]
    assert e.get("type") in ("attestation", "residency_report") and e.get("digest") == saved["sha256"], e
    assert e.get("tenant") == "demo", e
    shown = run_ok(srv, srv.token("demo_admin"), "log", "show", "--tenant", "demo")
    assert re.search(rf"^\s*{idx}\s.*(attestation|residency)", shown, re.M), shown
    # The log containing that entry verifies.
    run_ok(srv, srv.token("auditor"), "log", "verify")


def test_report_over_api_and_for_all_tenants(private_server):
    srv = private_server
    s3 = srv.client()
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    body, report = residency(srv, None, who="auditor")
    _verify_attestation(srv, body, None)
    assert any(t["tenant"] == "demo" for t in report["tenants"]), report
    assert {s["id"] for s in report["sites"]} >= {"de-fra", "de-mgd"}, report["sites"]


def test_who_may_read_residency_reports(private_server):
    srv = private_server
    other = new_tenant(srv, "trep" + os.urandom(3).hex())
    run_ok(srv, srv.token("officer1"), "residency", "report", "--tenant", "demo")
    run_ok(srv, srv.token("auditor"), "residency", "report", "--tenant", "demo")
    run_ok(srv, srv.token("demo_admin"), "residency", "report", "--tenant", "demo")
    run_fail(srv, srv.token("operator"), "residency", "report", "--tenant", "demo", status=403)
    run_fail(srv, other["admin_token"], "residency", "report", "--tenant", "demo", status=403)
    run_ok(srv, other["admin_token"], "residency", "report", "--tenant", other["name"])
    r = api(srv, "GET", "/v1/residency?tenant=demo", None, token=other["admin_token"])
    assert r.status_code == 403, f"another tenant's admin read demo's report: {r.status_code}"


def test_report_verify_finds_missing_and_corrupt_replicas(private_server):
    srv = private_server
    s3 = srv.client()
    bucket = new_bucket(s3)
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"k{i}", Body=os.urandom(5000))
    fra = sorted(site_blobs(srv.site_dir("de-fra")))
    assert len(fra) == 3
    blob_file(srv.site_dir("de-fra"), fra[0]).unlink()
    p = blob_file(srv.site_dir("de-fra"), fra[1])
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x40
    p.write_bytes(bytes(data))
    body, report = residency(srv, "demo", verify=True)
    b = bucket_report(report, "demo", bucket)
    assert b["verified"]["missing"] == 1 and b["verified"]["corrupt"] == 1, b
    assert b["verified"]["replicas_checked"] == 6, b
    _verify_attestation(srv, body, "demo")
    # Without --verify the catalog view does not read replicas.
    b = bucket_report(residency(srv, "demo")[1], "demo", bucket)
    assert "verified" not in b or b["verified"] in (None, {}), b
