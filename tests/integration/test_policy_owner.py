"""Guarantee 1 against the provider: the trustee's record of a residency policy
is the policy. The catalog (which the provider administers) keeps only a copy;
editing that copy on disk neither widens where a tenant's data may go nor moves
data away from where the trustee's record allows it, and every difference is
reported (docs/residency.md, "Who owns the policy")."""

from __future__ import annotations

import hashlib
import json
import sqlite3

from site_helpers import (
    policy,
    repair_status,
    run_ok,
    site_add_fs,
    site_blobs,
    wait_repair_idle,
    wait_until,
)

DIFFERS = "the catalog's copy of a residency policy differs from the trustee's record"


def edit_catalog(srv, sql: str, *args) -> None:
    """Edits catalog.db of the stopped server, as the provider's database admin could."""
    db = sqlite3.connect(srv.data_dir / "catalog.db")
    try:
        db.execute(sql, args)
        db.commit()
    finally:
        db.close()


def catalog_row(srv, tenant: str) -> tuple[list[str], int]:
    db = sqlite3.connect(srv.data_dir / "catalog.db")
    try:
        j, n = db.execute("SELECT jurisdictions, min_sites FROM tenants WHERE name = ?", (tenant,)).fetchone()
    finally:
        db.close()
    return json.loads(j), n


def reports(srv) -> list[str]:
    return [ln for ln in srv.log_path.read_text(errors="replace").splitlines() if DIFFERS in ln]


def test_a_catalog_widened_to_a_us_site_places_nothing_there(private_server_factory, tmp_path):
    srv = private_server_factory()
    site_add_fs(srv, "us-east", "US", tmp_path / "us-east")
    us = tmp_path / "us-east"
    s3 = srv.client()
    s3.create_bucket(Bucket="stays-in-de")
    srv.stop_ok()
    # The attack: the tenant may (says the catalog) use US too, and needs three sites, so
    # every write would have to land on the US site if the catalog's copy were used.
    edit_catalog(srv, "UPDATE tenants SET jurisdictions = ?, min_sites = 3 WHERE name = 'demo'",
                 json.dumps(["DE", "US"]))
    edit_catalog(srv, "INSERT OR REPLACE INTO residency (scope, rule) VALUES ('tenant:demo', ?)",
                 json.dumps({"degraded_writes": True}))
    srv.start()
    s3 = srv.client()
    for i in range(6):
        s3.put_object(Bucket="stays-in-de", Key=f"k{i}", Body=b"customer data %d" % i)
    assert site_blobs(us) == set(), "no blob of a DE-only tenant may land on the US site"
    for site in ("de-fra", "de-mgd"):
        assert len(site_blobs(srv.site_dir(site))) >= 6, f"every object is on {site}"
    found = reports(srv)
    assert found, "the widened copy must be reported"
    # The tenant is named as the log names it: a SHA-256 prefix, never the name.
    demo = "#" + hashlib.sha256(b"demo").hexdigest()[:12]
    assert all("tenant" in ln and demo in ln for ln in found), found
    assert not any("customer data" in ln or "k0" in ln for ln in found), "reports name ids, never data or keys"
    # The report shows the trustee's policy, and repair moves nothing to the US site.
    out = run_ok(srv, srv.token("officer1"), "tenant", "policy", "demo")
    assert "min_sites 2" in out and "US" not in out and "degraded writes refuse" in out, out
    run_ok(srv, srv.token("operator"), "repair")
    wait_repair_idle(srv)
    assert site_blobs(us) == set()
    srv.stop_ok()
    assert catalog_row(srv, "demo") == (["DE"], 2), "the copy is rewritten from the trustee's record"


def test_a_catalog_narrowed_below_the_trustees_policy_moves_nothing(private_server_factory, tmp_path):
    srv = private_server_factory()
    at = tmp_path / "at-vie"
    site_add_fs(srv, "at-vie", "AT", at)
    policy(srv, "demo", jurisdiction="DE,AT", min_sites=3)
    s3 = srv.client()
    s3.create_bucket(Bucket="three-sites")
    for i in range(4):
        s3.put_object(Bucket="three-sites", Key=f"k{i}", Body=b"x" * 100)
    on_at = site_blobs(at)
    assert len(on_at) >= 4, "with min_sites 3 every object is on the AT site too"
    srv.stop_ok()
    # The catalog now says DE only, on two sites: were it used, repair would take every
    # replica off the AT site the trustee's record allows.
    edit_catalog(srv, "UPDATE tenants SET jurisdictions = ?, min_sites = 2 WHERE name = 'demo'",
                 json.dumps(["DE"]))
    edit_catalog(srv, "INSERT OR REPLACE INTO residency (scope, rule) VALUES ('bucket:three-sites', ?)",
                 json.dumps({"jurisdictions": ["DE"]}))
    srv.start()
    assert reports(srv), "the narrowed copy must be reported"
    run_ok(srv, srv.token("operator"), "repair")
    wait_until(lambda: repair_status(srv)["state"] != "running", timeout=60, what="repair pass")
    st = wait_repair_idle(srv)
    assert st["replicas_removed"] == 0, st
    assert on_at <= site_blobs(at), "no replica may leave a site the trustee's record allows"
    srv.client().put_object(Bucket="three-sites", Key="new", Body=b"y")
    assert len(site_blobs(at)) == len(on_at) + 1, "new objects are still placed by the trustee's policy"
