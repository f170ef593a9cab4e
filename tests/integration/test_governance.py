"""Principals (officers create them; tokens expire and can be revoked; the
token itself never travels), disclosure requests (refused by policy outside
the tenant's jurisdictions, otherwise decided by an officer quorum, all
logged, shown to the tenant after a delay an officer sets), and the sweep of
every admin endpoint with an operator's token: none returns object data,
object names or plaintext metadata (guarantee 4)."""

from __future__ import annotations

import json
import os
import re
import time

import requests

from conftest import bearer
from gov_helpers import (
    DISCLOSURE_LINE,
    api,
    approve,
    approved_grant,
    credentials,
    enrol,
    entries_of,
    grant_client,
    log_entries,
    log_size,
    make_tenant,
    new_name,
    request_grant,
    run_fail,
    run_ok,
    tenant_with_bucket,
    wait_until,
)

# ---------------------------------------------------------------- principals


def whoami(srv, token):
    return api(srv, "GET", "/v1/whoami", token)


def test_officers_create_principals_and_nobody_else_does(server):
    t = make_tenant(server)
    start = log_size(server)
    for who in (server.token("operator"), server.token("auditor"), t["admin"], server.token("demo_admin")):
        for role in ("officer", "operator"):
            run_fail(server, who, "principal", "create", new_name("x-"), "--role", role, status=403)
        run_fail(server, who, "principal", "list", status=403)
        run_fail(server, who, "principal", "revoke", "operator", status=403)
    assert api(server, "GET", "/v1/principals", server.token("operator")).status_code == 403

    # an officer enrols every role; each new token works as that role
    names = {role: new_name(f"{role}-") for role in ("officer", "operator", "auditor", "tenant-admin")}
    tokens = {
        role: enrol(server, name, role, tenant=t["name"] if role == "tenant-admin" else None, officer=server.token("officer2"))
        for role, name in names.items()
    }
    for role, token in tokens.items():
        me = whoami(server, token).json()
        assert (me["name"], me["role"]) == (names[role], role), me
        assert me["tenant"] == (t["name"] if role == "tenant-admin" else None), me
    run_ok(server, tokens["officer"], "tenant", "list")
    run_ok(server, tokens["tenant-admin"], "tenant", "key-create", t["name"])
    run_fail(server, tokens["tenant-admin"], "tenant", "key-create", "demo", status=403)
    assert "every entry matches its leaf hash" in run_ok(server, tokens["auditor"], "log", "verify")
    listing = run_ok(server, server.token("officer1"), "principal", "list")
    for role, name in names.items():
        assert re.search(rf"^{re.escape(name)}\s+{role}\s", listing, re.M), listing
    created = {e["principal"]: e for e in entries_of(server, start, type="principal_created")}
    for role, name in names.items():
        # an officer or a tenant admin is enrolled by two: officer2 began it, officer1 confirmed it
        by = "officer1" if role in ("officer", "tenant-admin") else "officer2"
        assert created[name]["role"] == role and created[name]["by"] == by, created[name]
        assert "token" not in json.dumps(created[name]).lower().replace("bearer", ""), created[name]
    for role in ("officer", "tenant-admin"):
        approvals = entries_of(server, start, type="principal_approval", principal=names[role])
        assert [e["by"] for e in approvals] == ["officer2", "officer1"], approvals
    # the listing shows no secrets
    body = api(server, "GET", "/v1/principals", server.token("officer1")).text
    for token in tokens.values():
        assert token not in body and bearer(token) not in body


def test_principal_creation_is_validated(server):
    officer = server.token("officer1")
    run_fail(server, officer, "principal", "create", new_name("x"), "--role", "admin")
    run_fail(server, officer, "principal", "create", new_name("x"), "--role", "tenant-admin", status=400, says="--tenant")
    run_fail(server, officer, "principal", "create", new_name("x"), "--role", "tenant-admin", "--tenant", new_name("nosuch"), status=404)
    run_fail(server, officer, "principal", "create", new_name("x"), "--role", "operator", "--tenant", "demo", status=400)
    run_fail(server, officer, "principal", "create", "officer2", "--role", "officer", status=409)
    run_fail(server, officer, "principal", "create", "bad name!", "--role", "auditor", status=400)
    run_fail(server, officer, "principal", "create", new_name("x"), "--role", "auditor", "--expires", "soon")
    run_fail(server, officer, "principal", "revoke", new_name("nobody"), status=404)


def test_tokens_expire(server):
    name = new_name("short-")
    # Long enough to be used first on a machine under load; the wait below is bounded.
    token = enrol(server, name, "operator", expires="10s")
    assert whoami(server, token).status_code == 200
    t = tenant_with_bucket(server)
    request_grant(server, token, t["name"], t["bucket"])
    forever = enrol(server, new_name("long-"), "operator")
    listing = run_ok(server, server.token("officer1"), "principal", "list")
    line = next(ln for ln in listing.splitlines() if ln.startswith(name))
    assert re.search(r"\d{4}-\d\d-\d\dT", line), f"the listing should show the expiry: {line!r}"
    wait_until(lambda: whoami(server, token).status_code == 401, 30, "the token to expire")
    r = whoami(server, token)
    assert r.json()["error"] == "unauthorized" and "expired" in r.json()["message"], r.text
    run_fail(server, token, "access", "request", "--tenant", t["name"], "--bucket", t["bucket"], "--ops", "read",
             "--duration", "1h", "--reason", "x", status=401, says="expired")
    run_fail(server, token, "access", "list", status=401)
    # both ways: a token without expiry goes on working
    assert whoami(server, forever).status_code == 200
    request_grant(server, forever, t["name"], t["bucket"])


def test_tokens_can_be_revoked(server):
    t = tenant_with_bucket(server)
    start = log_size(server)
    off_name, adm_name = new_name("officer-"), new_name("ta-")
    off = enrol(server, off_name, "officer")
    adm = enrol(server, adm_name, "tenant-admin", tenant=t["name"])
    other = enrol(server, new_name("officer-"), "officer")
    gid = request_grant(server, server.token("operator"), t["name"], t["bucket"])
    assert approve(server, off, gid).startswith("pending: 1 of 2")
    run_ok(server, server.token("officer1"), "principal", "revoke", off_name)
    run_ok(server, server.token("officer2"), "principal", "revoke", adm_name)
    for token in (off, adm):
        r = whoami(server, token)
        assert r.status_code == 401 and "revoked" in r.json()["message"], r.text
        run_fail(server, token, "access", "approve", gid, status=401, says="revoked")
        run_fail(server, token, "log", "show", status=401)
    run_fail(server, off, "principal", "create", new_name("x"), "--role", "officer", status=401)
    run_fail(server, adm, "tenant", "key-create", t["name"], status=401)
    assert "revoked" not in run_ok(server, server.token("officer1"), "access", "show", gid).split(";")[0]
    # both ways: everyone else is unaffected (whether the revoked officer's earlier
    # approval still counts is not decided here: two live officers complete it either way)
    assert whoami(server, other).status_code == 200
    assert approve(server, other, gid).startswith("pending: ")
    assert approve(server, server.token("officer1"), gid).endswith("officers, tenant admin has not approved")
    assert approve(server, t["admin"], gid) == "approved"
    revoked = [e for e in entries_of(server, start, type="principal_revoked")]
    assert {(e["principal"], e["by"]) for e in revoked} >= {(off_name, "officer1"), (adm_name, "officer2")}, revoked
    listing = run_ok(server, server.token("officer1"), "principal", "list")
    assert re.search(rf"^{re.escape(off_name)}\s+officer\s+-\s+true\b", listing, re.M), listing


def test_the_token_itself_never_travels(server):
    token = server.token("auditor")
    assert run_ok(server, token, "token", "bearer").strip() == bearer(token)
    r = requests.get(server.admin_url + "/v1/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 401 and r.json()["error"] == "unauthorized", r.text
    assert "bearer" in r.json()["message"], r.text
    assert whoami(server, token).json()["role"] == "auditor"
    for header in ({}, {"Authorization": "Basic eDp5"}, {"Authorization": "Bearer obb_" + "0" * 64}):
        r = requests.get(server.admin_url + "/v1/whoami", headers=header, timeout=30)
        assert r.status_code == 401 and set(r.json()) == {"error", "message"}, (header, r.text)


# ---------------------------------------------------------------- disclosure requests


def disclose(srv, token, tenant, jurisdiction, *, authority="Bundeskriminalamt", basis="StPO 94", scope="mailbox of X"):
    out = run_ok(srv, token, "disclosure", "request", "--tenant", tenant, "--authority", authority,
                 "--jurisdiction", jurisdiction, "--legal-basis", basis, "--scope", scope)
    m = DISCLOSURE_LINE.search(out)
    assert m, f"disclosure request printed no `disclosure d-... STATE:` line: {out!r}"
    return m.group(1), m.group(2), out


def disclosures(srv, token) -> dict[str, dict]:
    return {d["id"]: d for d in api(srv, "GET", "/v1/disclosures", token).json()}


def test_disclosure_outside_the_tenants_jurisdictions_is_refused(server):
    t = make_tenant(server, jurisdiction="DE,AT")
    officer = server.token("officer1")
    start = log_size(server)
    did, state, out = disclose(server, officer, t["name"], "US", authority="US DOJ", basis="CLOUD Act")
    assert state == "refused", out
    assert re.search(r"^refused: .*US.*DE,AT", out, re.M), out
    run_fail(server, officer, "disclosure", "approve", did, status=409, says="refused")
    run_fail(server, server.token("officer2"), "disclosure", "approve", did, status=409)
    assert disclosures(server, officer)[did]["state"] == "refused"
    (entry,) = entries_of(server, start, type="disclosure_refused", disclosure=did)
    assert (entry["tenant"], entry["jurisdiction"], entry["authority"], entry["principal"]) == (t["name"], "US", "US DOJ", "officer1"), entry
    assert "outside" in entry["reason"], entry
    # both ways: allowed jurisdictions (in any letter case) go on to the quorum
    for j in ("AT", "de"):
        did2, state, out = disclose(server, officer, t["name"], j)
        assert state == "pending", out
        assert disclosures(server, officer)[did2]["jurisdiction"] == j.upper()
        assert entries_of(server, start, type="disclosure_requested", disclosure=did2)
    # the tenant sees refusals too (no delay was set)
    assert did in disclosures(server, t["admin"])


def test_disclosure_requests_need_the_officer_quorum(server):
    t = make_tenant(server)
    o1, o2 = server.token("officer1"), server.token("officer2")
    recorder_name = new_name("officer-")
    recorder = enrol(server, recorder_name, "officer")
    start = log_size(server)
    for who in (server.token("operator"), server.token("auditor"), t["admin"]):
        run_fail(server, who, "disclosure", "request", "--tenant", t["name"], "--authority", "BKA", "--jurisdiction", "DE",
                 "--legal-basis", "x", "--scope", "y", status=403)
    did, state, _ = disclose(server, recorder, t["name"], "DE")
    assert state == "pending"
    for who in (server.token("operator"), server.token("auditor"), t["admin"]):
        run_fail(server, who, "disclosure", "approve", did, status=403)
        run_fail(server, who, "disclosure", "deny", did, status=403)
        run_fail(server, who, "disclosure", "delay", did, "--delay", "1d", status=403)
    out = run_ok(server, o1, "disclosure", "approve", did)
    assert "pending: 1 of 2 officers" in out, out
    out = run_ok(server, o1, "disclosure", "approve", did)
    assert "pending: 1 of 2 officers" in out, f"the same officer counted twice: {out!r}"
    assert disclosures(server, o1)[did]["state"] == "pending"
    # the officer who recorded the request does not count towards its quorum
    run_fail(server, recorder, "disclosure", "approve", did, status=403)
    out = run_ok(server, o2, "disclosure", "approve", did)
    assert DISCLOSURE_LINE.search(out).group(2) == "approved", out
    run_fail(server, o1, "disclosure", "deny", did, status=409)
    kinds = [(e["type"], e.get("principal")) for e in entries_of(server, start, disclosure=did)]
    assert kinds == [("disclosure_requested", recorder_name), ("disclosure_approval", "officer1"),
                     ("disclosure_approval", "officer2"), ("disclosure_approved", None)], kinds
    # a denial by one officer ends a request
    did2, _, _ = disclose(server, recorder, t["name"], "DE")
    run_ok(server, o1, "disclosure", "approve", did2)
    out = run_ok(server, o2, "disclosure", "deny", did2, "--reason", "no legal basis shown")
    assert DISCLOSURE_LINE.search(out).group(2) == "denied", out
    run_fail(server, o1, "disclosure", "approve", did2, status=409)
    denied = entries_of(server, start, type="disclosure_denied", disclosure=did2)
    assert [(e["principal"], e.get("reason")) for e in denied] == [("officer2", "no legal basis shown")], denied
    # operators do not see disclosure requests at all
    run_fail(server, server.token("operator"), "disclosure", "list", status=403)
    assert api(server, "GET", "/v1/disclosures", server.token("operator")).status_code == 403
    assert did in run_ok(server, server.token("auditor"), "disclosure", "list")


def test_the_tenant_sees_a_disclosure_after_the_delay_an_officer_sets(server):
    t = make_tenant(server)
    other = make_tenant(server)
    officer = server.token("officer1")
    third = enrol(server, new_name("officer-"), "officer")
    start = log_size(server)
    did, _, _ = disclose(server, third, t["name"], "DE", scope="hidden-scope-" + os.urandom(3).hex())
    out = run_ok(server, officer, "disclosure", "delay", did, "--delay", "30d")
    view = disclosures(server, officer)[did]
    assert view["visible_after_ms"] - view["created_ms"] == 30 * 86400 * 1000, view
    (entry,) = entries_of(server, start, type="disclosure_delay_set", disclosure=did)
    assert (entry["delay_ms"], entry["principal"], entry["tenant"]) == (30 * 86400 * 1000, "officer1", t["name"]), entry
    run_ok(server, server.token("officer2"), "disclosure", "approve", did)
    run_ok(server, officer, "disclosure", "approve", did)

    def tenant_view():
        listed = did in run_ok(server, t["admin"], "disclosure", "list")
        logged = [e for _, e in log_entries(server, t["admin"]) if e.get("disclosure") == did]
        # (`log show` does not print disclosure ids: look for the entry types)
        shown = "disclosure_" in run_ok(server, t["admin"], "log", "show")
        return listed, logged, shown

    listed, logged, shown = tenant_view()
    assert not listed and not logged and not shown, f"the tenant saw a delayed disclosure: {listed} {logged} {shown}"
    # officers and auditors see it, and the other tenant never does
    assert did in disclosures(server, server.token("auditor"))
    assert did not in disclosures(server, other["admin"])
    assert [e["type"] for e in entries_of(server, start, disclosure=did)] == [
        "disclosure_requested", "disclosure_delay_set", "disclosure_approval", "disclosure_approval", "disclosure_approved"]
    run_fail(server, officer, "disclosure", "delay", did, "--delay", "400d", status=400)

    # a short delay: hidden now, shown once it has passed
    run_ok(server, server.token("officer2"), "disclosure", "delay", did, "--delay", "0s")
    did2, _, _ = disclose(server, officer, t["name"], "DE")
    run_ok(server, officer, "disclosure", "delay", did2, "--delay", "2s")
    created = disclosures(server, officer)[did2]["created_ms"]
    if time.time() * 1000 < created + 1500:
        assert did2 not in disclosures(server, t["admin"])
    wait_until(lambda: did2 in disclosures(server, t["admin"]), 10, "the 2 s delay to pass")
    assert time.time() * 1000 >= created + 2000

    # the first one (delay now 0) is visible with every entry about it, the delay changes included
    listed, logged, shown = tenant_view()
    assert listed and shown, (listed, shown)
    assert [e["type"] for e in logged] == ["disclosure_requested", "disclosure_delay_set", "disclosure_approval",
                                           "disclosure_approval", "disclosure_approved", "disclosure_delay_set"], logged
    assert did not in disclosures(server, other["admin"])


# ---------------------------------------------------------------- the operator sweep


def test_no_operator_endpoint_returns_customer_data(server):
    mark = os.urandom(4).hex()
    secret_bucket = f"secretbucket-{mark}"
    secret_key = f"secretobject-{mark}/file.txt"
    secret_meta = f"secretmeta-{mark}"
    secret_body = f"secretcontent-{mark}".encode()
    t = tenant_with_bucket(server)
    c = t["client"]
    c.create_bucket(Bucket=secret_bucket)
    c.put_object(Bucket=secret_bucket, Key=secret_key, Body=secret_body, Metadata={"note": secret_meta},
                 ContentType=f"text/x-{mark}")
    c.put_object(Bucket=t["bucket"], Key=secret_key, Body=secret_body, Metadata={"note": secret_meta})
    c.create_multipart_upload(Bucket=secret_bucket, Key=f"upload-{secret_key}")
    markers = [mark]  # every secret above carries it

    op = server.token("operator")
    # the operator's own, approved grant on the *other* bucket, used once; an officer's grant on the secret bucket
    own = approved_grant(server, t, "read,list", prefix="nothing-here/")
    assert "Contents" not in grant_client(server, credentials(server, op, own)).list_objects_v2(Bucket=t["bucket"], Prefix="nothing-here/")
    officer3 = enrol(server, new_name("officer-"), "officer")
    theirs = approved_grant(server, t, "read,list", bucket=secret_bucket, requester=officer3)
    grant_client(server, credentials(server, officer3, theirs)).get_object(Bucket=secret_bucket, Key=secret_key)
    # a job of the tenant's admin on the secret bucket
    out = server.cli_ok("tenant", "rotate-key", t["name"], "--bucket", secret_bucket, "--no-wait", token=t["admin"])
    job = out.strip().removeprefix("job=")
    did, _, _ = disclose(server, server.token("officer1"), t["name"], "DE", scope=f"all of {secret_bucket}")

    size = log_size(server)
    tiles = "000" if size >= 256 else f"000.p/{size}"
    shares = (server.data_dir / "trustee" / "dev-unseal-shares").read_text().split()
    gets = [
        "/v1/health", "/v1/whoami", "/v1/tenants", f"/v1/tenants/{t['name']}/policy", "/v1/tenants/demo/policy",
        "/v1/principals", "/v1/grants", f"/v1/grants/{own}", f"/v1/grants/{theirs}", "/v1/disclosures",
        "/v1/log/entries", f"/v1/log/entries?tenant={t['name']}", "/v1/metrics", "/v1/sites", "/v1/trustee/status",
        f"/v1/jobs/{job}", "/log/checkpoint", "/log/key", f"/log/tile/0/{tiles}", f"/log/tile/entries/{tiles}",
        f"/v1/tenants/{t['name']}/buckets/{secret_bucket}", f"/v1/tenants/{t['name']}/keys", "/v1/no-such-endpoint",
    ]
    posts = [
        (f"/v1/tenants/{t['name']}/buckets/{secret_bucket}/rotate-key", None),
        ("/v1/trustee/seal", None),
        ("/v1/trustee/unseal", {"share": shares[0]}),
        ("/v1/act", {"statement": "{}", "signature": ""}),
        ("/v1/act", {"statement": json.dumps({"principal": "operator", "at_ms": int(time.time() * 1000), "nonce": "n",
                                              "action": "grant_credentials", "id": theirs}), "signature": "AAAA"}),
    ]
    allowed = {"/v1/health", "/v1/whoami", "/v1/grants", f"/v1/grants/{own}", "/v1/metrics", "/v1/sites",
               "/v1/trustee/status", "/log/checkpoint", "/log/key", f"/log/tile/0/{tiles}"}
    seen = []
    for path in gets:
        r = api(server, "GET", path, op)
        seen.append((f"GET {path}", r))
        if path in allowed:
            assert r.status_code == 200, f"GET {path} as operator: {r.status_code} {r.text[:300]}"
        else:
            assert r.status_code in (401, 403, 404), f"GET {path} as operator should be refused: {r.status_code} {r.text[:300]}"
    for path, body in posts:
        r = api(server, "POST", path, op, json=body) if body is not None else api(server, "POST", path, op)
        seen.append((f"POST {path}", r))
        assert r.status_code in (400, 401, 403, 404), f"POST {path} as operator should be refused: {r.status_code} {r.text[:300]}"
    assert api(server, "GET", "/v1/trustee/status", op).json()["sealed"] is False

    # every CLI command, as the operator
    commands = [
        ("tenant", "list"), ("tenant", "policy", t["name"]), ("tenant", "key-create", t["name"]),
        ("tenant", "policy", t["name"], "--customer-approval", "optional"), ("tenant", "shred", t["name"]),
        ("tenant", "rotate-key", t["name"], "--bucket", secret_bucket),
        ("principal", "list"), ("principal", "create", new_name("x"), "--role", "operator"), ("principal", "revoke", "auditor"),
        ("access", "list"), ("access", "show", own), ("access", "show", theirs), ("access", "approve", theirs),
        ("access", "revoke", theirs), ("access", "deny", theirs), ("access", "credentials", theirs),
        ("disclosure", "list"), ("disclosure", "request", "--tenant", t["name"], "--authority", "a", "--jurisdiction", "DE",
                                 "--legal-basis", "b", "--scope", "c"),
        ("disclosure", "approve", did), ("disclosure", "delay", did, "--delay", "0s"),
        ("log", "show"), ("log", "show", "--tenant", t["name"]), ("log", "verify"), ("log", "checkpoint"),
        ("trustee", "status"), ("trustee", "seal"),
    ]
    cli_allowed = {("access", "list"), ("access", "show", own), ("log", "verify"), ("log", "checkpoint"),
                   ("trustee", "status")}
    for args in commands:
        r = server.cli(*args, token=op)
        seen.append(("obhut " + " ".join(args), r))
        if args in cli_allowed:
            assert r.returncode == 0, f"`obhut {' '.join(args)}` as operator: {r.stderr.strip()}"
        else:
            assert r.returncode != 0, f"`obhut {' '.join(args)}` as operator succeeded: {r.stdout!r}"
    assert api(server, "GET", "/v1/trustee/status", op).json()["sealed"] is False

    for what, r in seen:
        if isinstance(r, requests.Response):
            text = r.text + " " + " ".join(f"{k}: {v}" for k, v in r.headers.items())
            data = r.content
        else:
            text, data = r.stdout + r.stderr, (r.stdout + r.stderr).encode()
        for m in markers:
            assert m not in text, f"{what} as operator returned customer data/names ({m!r}): {text[:800]}"
        assert secret_body not in data, f"{what} returned object data"
    # both ways: the same sweep as the tenant's admin does show its own names (the markers are findable)
    assert secret_bucket in api(server, "GET", f"/v1/log/entries?tenant={t['name']}", t["admin"]).text


def test_operators_run_the_system(server):
    """What an operator may do (health, metrics, sites, trustee state, the
    public log), and that it carries no tenant's names."""
    op = server.token("operator")
    tenants = [t["name"] for t in api(server, "GET", "/v1/tenants", server.token("officer1")).json()]
    for path in ("/v1/health", "/v1/sites", "/v1/metrics", "/v1/trustee/status", "/v1/whoami"):
        r = api(server, "GET", path, op)
        assert r.status_code == 200, f"{path}: {r.status_code} {r.text[:200]}"
    sites = api(server, "GET", "/v1/sites", op).json()
    assert {s["id"] for s in sites} >= {"de-fra", "de-mgd"} and all(s["state"] for s in sites), sites
    metrics = api(server, "GET", "/v1/metrics", op).text
    assert re.search(r"^obhut_log_entries \d+$", metrics, re.M), metrics
    assert 'obhut_sites{state="active"}' in metrics, metrics
    for name in tenants:
        if len(name) > 4:
            assert name not in metrics, f"metrics name tenant {name}"
    assert "demo" not in metrics
    assert "unsealed" in run_ok(server, op, "trustee", "status")


# ---------------------------------------------------------------- signed statements


class RecordingProxy:
    """An HTTP proxy in front of the admin API that keeps every request body it
    carries: what the admin API (or anyone on the path) sees of a statement."""

    def __init__(self, target: str):
        import http.server
        import threading

        self.bodies: list[tuple[str, bytes, dict]] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _forward(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
                proxy.bodies.append((self.path, body, headers))
                r = requests.request(self.command, target + self.path, data=body, headers=headers, timeout=30)
                self.send_response(r.status_code)
                self.send_header("Content-Type", r.headers.get("content-type", "application/json"))
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            do_GET = do_POST = _forward

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_signed_statement_counts_once(server):
    """Whoever carries a statement cannot alter it, and cannot use it twice:
    replaying an officer's earlier "customer approval optional" after the
    officer set it back to "required" must not change the policy."""
    t = make_tenant(server)
    officer = server.token("officer1")
    proxy = RecordingProxy(server.admin_url)
    try:
        r = server.cli("tenant", "policy", t["name"], "--customer-approval", "optional", token=officer,
                       env={"OBHUT_ADMIN_URL": proxy.url})
        assert r.returncode == 0, r.stderr
    finally:
        proxy.close()
    acts = [(body, headers) for path, body, headers in proxy.bodies if path == "/v1/act"]
    assert len(acts) == 1, proxy.bodies
    body, headers = acts[0]
    statement = json.loads(json.loads(body)["statement"])
    assert statement["action"] == "set_tenant_policy" and statement["principal"] == "officer1", statement
    run_ok(server, officer, "tenant", "policy", t["name"], "--customer-approval", "required")
    # altered: refused
    tampered = json.loads(body)
    tampered["statement"] = tampered["statement"].replace(t["name"], "demo")
    r = requests.post(server.admin_url + "/v1/act", json=tampered, headers=headers, timeout=30)
    assert r.status_code == 403, f"an altered statement was accepted: {r.status_code} {r.text}"
    # replayed as it was: must not count a second time
    r = requests.post(server.admin_url + "/v1/act", data=body, headers=headers, timeout=30)
    policy = api(server, "GET", f"/v1/tenants/{t['name']}/policy", officer).json()["customer_approval"]
    assert r.status_code >= 400 and policy == "required", (
        f"a replayed statement was carried out again: HTTP {r.status_code} {r.text[:200]}; policy now {policy}")


def test_trustee_init_enrols_the_first_officers(tmp_path):
    """A new installation's first officers come from `trustee init`; with fewer than two
    the keystore is not made at all."""
    import subprocess

    from conftest import obhut_bin

    one = subprocess.run(
        [str(obhut_bin()), "trustee", "init", "--dir", str(tmp_path / "one"), "--shares", "3", "--threshold", "2",
         "--officer", "alice"],
        capture_output=True, text=True, timeout=60,
    )
    assert one.returncode != 0 and "two" in one.stderr, one.stderr
    assert not (tmp_path / "one" / "keystore.json").exists()
    r = subprocess.run(
        [str(obhut_bin()), "trustee", "init", "--dir", str(tmp_path / "ks"), "--shares", "3", "--threshold", "2",
         "--officer", "alice", "--officer", "bob"],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0, r.stderr
    tokens = dict(
        line.removeprefix("officer ").split(": ", 1) for line in r.stdout.splitlines() if line.startswith("officer ") and ": obt_" in line
    )
    assert set(tokens) == {"alice", "bob"} and all(t.startswith("obt_") for t in tokens.values()), r.stdout
    assert len([l for l in r.stdout.splitlines() if l.startswith("share ")]) == 3, r.stdout
    # only hashes and public keys are kept: no token appears in the trustee's files
    for f in (tmp_path / "ks").rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert not any(t.encode() in data for t in tokens.values()), f"a token is stored in {f}"
