"""The trustee's own files are not trusted blindly: whoever can edit the
trustee's database (governance.db) or roll back its transparency log while it
is stopped gains nothing by it. Principals count as what the signed statements
(or the log) that enrolled them say; revocations of principals and grants, and
disclosure decisions, are what the log recorded; a log shorter than, or
inconsistent with, the last checkpoint the trustee signed is refused at start.

Each test performs the edit an attacker would, then asserts that it grants
nothing, that the trustee reports it (an `integrity_failure` log entry), and
that what was legitimately signed still works."""

from __future__ import annotations

import json
import shutil
import sqlite3

import botocore

from gov_helpers import (
    DISCLOSURE_LINE,
    api,
    approve,
    approved_grant,
    credentials,
    enrol,
    entries_of,
    grant_client,
    grant_view,
    log_entries,
    log_size,
    make_tenant,
    new_name,
    request_grant,
    run_fail,
    run_ok,
    start_refused,
    tenant_with_bucket,
)
from s3helpers import unique_name

GOV_DB = ("trustee", "governance.db")
LOG_DB = ("trustee", "log", "tlog.sqlite3")
KEPT = ("trustee", "log-checkpoint")


def edit_governance(srv, *statements: tuple) -> None:
    """Runs SQL on the stopped trustee's governance.db, as its database's administrator could."""
    db = sqlite3.connect(srv.data_dir.joinpath(*GOV_DB))
    try:
        for sql, *args in statements:
            cur = db.execute(sql, tuple(args))
            assert cur.rowcount != 0, f"the edit changed nothing: {sql} {args}"
        db.commit()
    finally:
        db.close()


def grant_record(srv, gid: str) -> dict:
    db = sqlite3.connect(srv.data_dir.joinpath(*GOV_DB))
    try:
        (record,) = db.execute("SELECT record FROM grants WHERE id = ?", (gid,)).fetchone()
    finally:
        db.close()
    return json.loads(record)


def disclosure_record(srv, did: str) -> dict:
    db = sqlite3.connect(srv.data_dir.joinpath(*GOV_DB))
    try:
        (record,) = db.execute("SELECT record FROM disclosures WHERE id = ?", (did,)).fetchone()
    finally:
        db.close()
    return json.loads(record)


def integrity_failures(srv, start: int, subject: str) -> list[dict]:
    """`integrity_failure` entries about `what:name` (`principal:o3`, `grant:g-…`)."""
    what, name = subject.split(":", 1)
    return entries_of(srv, start, type="integrity_failure", what=what, subject=name)


def assert_read_denied(fn, what: str) -> None:
    try:
        fn()
    except botocore.exceptions.ClientError as e:
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        assert status == 403, f"{what}: expected 403, got {status}: {e.response.get('Error')}"
    else:
        raise AssertionError(f"{what}: the read succeeded")


# ---------------------------------------------------------------- principals


def test_principals_edited_in_governance_db_approve_nothing(private_server):
    """One officer enrols two auditors and a tenant admin of another tenant (each
    alone, as the rules allow); an edit of governance.db makes the auditors
    officers and moves the admin to tenant demo. The three approve an operator's
    grant on demo's private prefix: none of it counts, the operator gets no
    credentials and reads nothing, and each edited principal is reported."""
    srv = private_server
    demo = srv.client()
    bucket = unique_name("priv")
    demo.create_bucket(Bucket=bucket)
    demo.put_object(Bucket=bucket, Key="private/secret", Body=b"customer data")
    other = make_tenant(srv)
    aud1, aud2, adm = new_name("aud-"), new_name("aud-"), new_name("adm-")
    tokens = {aud1: enrol(srv, aud1, "auditor"), aud2: enrol(srv, aud2, "auditor"),
              adm: enrol(srv, adm, "tenant-admin", tenant=other["name"])}
    # a principal inserted beside them: an enrolled auditor's key and bearer under a new officer's name
    spare = new_name("aud-")
    spare_token = enrol(srv, spare, "auditor")
    planted = new_name("officer-")
    start = log_size(srv)
    srv.stop_ok()
    edit_governance(
        srv,
        ("UPDATE principals SET role = 'officer' WHERE name IN (?, ?)", aud1, aud2),
        ("UPDATE principals SET tenant = 'demo' WHERE name = ?", adm),
        ("UPDATE principals SET name = ?, role = 'officer' WHERE name = ?", planted, spare),
    )
    srv.start()

    gid = request_grant(srv, srv.token("operator"), "demo", bucket, prefix="private/")
    for name, token in [*tokens.items(), (planted, spare_token)]:
        run_fail(srv, token, "access", "approve", gid)
    view = grant_view(srv, gid)
    assert view["state"] == "pending" and view["approvals"] == [], view
    run_fail(srv, srv.token("operator"), "access", "credentials", gid, status=403)
    for name in (aud1, aud2, adm, planted):
        found = integrity_failures(srv, start, f"principal:{name}")
        assert len(found) == 1, f"the edited principal {name} was not reported once: {found}"
    # what the auditors were enrolled as is not lost: they still read the log as auditors ...
    listed = {p["name"]: p for p in api(srv, "GET", "/v1/principals", srv.token("officer1")).json()}
    assert aud1 not in listed and planted not in listed, sorted(listed)
    # ... and the principals nobody edited still decide: the grant completes with them
    approve(srv, srv.token("officer1"), gid)
    approve(srv, srv.token("officer2"), gid)
    assert approve(srv, srv.token("demo_admin"), gid) == "approved"
    c = grant_client(srv, credentials(srv, srv.token("operator"), gid))
    assert c.get_object(Bucket=bucket, Key="private/secret")["Body"].read() == b"customer data"


def test_one_officer_alone_cannot_enrol_an_officer(private_server):
    """Without a database edit, the same goal: one officer enrols two officers
    and a tenant admin and lets them approve. Officers need a second officer's
    confirmation; until then the new token is nobody."""
    srv = private_server
    t = tenant_with_bucket(srv, {"k": b"secret"})
    name = new_name("officer-")
    r = srv.cli("principal", "create", name, "--role", "officer", token=srv.token("officer1"))
    assert r.returncode == 0, r.stderr
    assert "pending: 1 of 2 officers" in r.stderr and "another officer confirms with" in r.stderr, r.stderr
    token = r.stdout.strip().split("=", 1)[1]
    confirm = r.stderr.split("another officer confirms with: obhut ", 1)[1].splitlines()[0].split()
    gid = request_grant(srv, srv.token("operator"), t["name"], t["bucket"])
    assert api(srv, "GET", "/v1/whoami", token).status_code == 401
    run_fail(srv, token, "access", "approve", gid, status=401)
    # the same officer confirming its own enrolment counts once
    assert "pending: 1 of 2 officers" in run_ok(srv, srv.token("officer1"), *confirm)
    assert api(srv, "GET", "/v1/whoami", token).status_code == 401
    # both ways: a second officer's confirmation enrols it
    assert run_ok(srv, srv.token("officer2"), *confirm).startswith("created principal ")
    assert api(srv, "GET", "/v1/whoami", token).json()["role"] == "officer"
    assert approve(srv, token, gid).startswith("pending: 1 of 2 officers")


def test_one_officer_alone_cannot_enrol_a_tenant_admin(private_server):
    """A tenant admin approves grants in its customer's name: one officer enrolling one
    for a tenant gets a token that is nobody until a second officer confirms."""
    srv = private_server
    t = tenant_with_bucket(srv, {"k": b"secret"})
    name = new_name("adm-")
    r = srv.cli("principal", "create", name, "--role", "tenant-admin", "--tenant", t["name"],
                token=srv.token("officer1"))
    assert r.returncode == 0, r.stderr
    assert "pending: 1 of 2 officers" in r.stderr and "another officer confirms with" in r.stderr, r.stderr
    token = r.stdout.strip().split("=", 1)[1]
    confirm = r.stderr.split("another officer confirms with: obhut ", 1)[1].splitlines()[0].split()
    gid = request_grant(srv, srv.token("operator"), t["name"], t["bucket"])
    assert api(srv, "GET", "/v1/whoami", token).status_code == 401
    run_fail(srv, token, "access", "approve", gid, status=401)
    assert run_ok(srv, srv.token("officer2"), *confirm).startswith("created principal ")
    me = api(srv, "GET", "/v1/whoami", token).json()
    assert (me["role"], me["tenant"]) == ("tenant-admin", t["name"]), me


def test_a_revoked_principal_revived_by_an_edit_stays_revoked(private_server):
    srv = private_server
    t = tenant_with_bucket(srv, {"k": b"v"})
    name = new_name("officer-")
    token = enrol(srv, name, "officer")
    run_ok(srv, srv.token("officer2"), "principal", "revoke", name)
    start = log_size(srv)
    srv.stop_ok()
    edit_governance(srv, ("UPDATE principals SET revoked = 0 WHERE name = ?", name))
    srv.start()
    gid = request_grant(srv, srv.token("operator"), t["name"], t["bucket"])
    run_fail(srv, token, "access", "approve", gid)
    approve(srv, srv.token("officer1"), gid)
    assert approve(srv, t["admin"], gid).startswith("pending: 1 of 2 officers"), grant_view(srv, gid)
    listed = {p["name"]: p for p in api(srv, "GET", "/v1/principals", srv.token("officer1")).json()}
    assert listed[name]["revoked"] is True, listed[name]
    assert len(integrity_failures(srv, start, f"principal:{name}")) == 1


# ---------------------------------------------------------------- grants and disclosures


def test_a_revoked_grant_revived_by_an_edit_stays_revoked(private_server):
    srv = private_server
    t = tenant_with_bucket(srv, {"k": b"secret"})
    gid = approved_grant(srv, t)
    c = grant_client(srv, credentials(srv, srv.token("operator"), gid))
    assert c.get_object(Bucket=t["bucket"], Key="k")["Body"].read() == b"secret"
    run_ok(srv, t["admin"], "access", "revoke", gid)
    start = log_size(srv)
    srv.stop_ok()
    g = grant_record(srv, gid)
    assert g["state"] == "revoked", g
    g["state"], g["ended_by"] = "approved", None
    edit_governance(srv, ("UPDATE grants SET record = ? WHERE id = ?", json.dumps(g), gid))
    srv.start()
    assert_read_denied(lambda: c.get_object(Bucket=t["bucket"], Key="k"), "GetObject under a revoked grant revived by an edit")
    view = grant_view(srv, gid)
    assert view["state"] == "revoked" and view["ended_by"] == t["name"] + "-admin", view
    run_fail(srv, srv.token("operator"), "access", "credentials", gid, status=403)
    assert len(integrity_failures(srv, start, f"grant:{gid}")) == 1


def test_pending_grants_edited_to_approved_in_governance_db_grant_nothing(private_server):
    """Two pending grants on a tenant's bucket, edited while the trustee is stopped: one made
    "approved" with the approvals of another (approved) grant copied into it, one approved by
    both officers but not the tenant, made "approved" with the tenant's approval switched off.
    Neither yields credentials, nothing is read under them, and each edit is reported."""
    import time

    srv = private_server
    t = tenant_with_bucket(srv, {"k": b"secret"})
    genuine = approved_grant(srv, t)
    op = srv.token("operator")
    borrowed = request_grant(srv, op, t["name"], t["bucket"])
    officers_only = request_grant(srv, op, t["name"], t["bucket"])
    approve(srv, srv.token("officer1"), officers_only)
    last = approve(srv, srv.token("officer2"), officers_only)
    assert "tenant admin has not approved" in last, last
    run_fail(srv, op, "access", "credentials", officers_only, status=403)
    start = log_size(srv)
    srv.stop_ok()
    source = grant_record(srv, genuine)
    g = grant_record(srv, borrowed)
    assert g["state"] == "pending" and g["approvals"] == [], g
    g["state"], g["approvals"] = "approved", source["approvals"]
    g["approved_ms"], g["expires_ms"] = source["approved_ms"], source["expires_ms"]
    h = grant_record(srv, officers_only)
    assert h["customer_approval"] is True and len(h["approvals"]) == 2, h
    now = int(time.time() * 1000)
    h["state"], h["customer_approval"] = "approved", False
    h["approved_ms"], h["expires_ms"] = now, now + 2 * 3600 * 1000
    edit_governance(srv, ("UPDATE grants SET record = ? WHERE id = ?", json.dumps(g), borrowed),
                    ("UPDATE grants SET record = ? WHERE id = ?", json.dumps(h), officers_only))
    srv.start()
    for gid, what in ((borrowed, "another grant's approvals"), (officers_only, "the tenant's approval switched off")):
        run_fail(srv, op, "access", "credentials", gid, status=403)
        found = integrity_failures(srv, start, f"grant:{gid}")
        assert len(found) == 1, f"the grant edited to carry {what} was not reported once: {found}"
    # The genuine grant, whose approvals were copied, still works.
    c = grant_client(srv, credentials(srv, op, genuine))
    assert c.get_object(Bucket=t["bucket"], Key="k")["Body"].read() == b"secret"
    assert not integrity_failures(srv, start, f"grant:{genuine}")


def disclose(srv, tenant: str, delay: str = "0s") -> str:
    out = run_ok(srv, srv.token("officer1"), "disclosure", "request", "--tenant", tenant, "--authority", "BKA",
                 "--jurisdiction", "DE", "--legal-basis", "StPO 94", "--scope", "mailbox of X", "--delay", delay)
    m = DISCLOSURE_LINE.search(out)
    assert m and m.group(2) == "pending", out
    return m.group(1)


def test_disclosure_decisions_and_delays_edited_in_governance_db_do_not_count(private_server):
    """A denied disclosure request flipped to approved, an approval added to a
    pending one, and a request's delay lengthened to keep it from its tenant:
    the trustee goes by the log, and reports each edit."""
    srv = private_server
    t = make_tenant(srv)
    denied, pending, shown = disclose(srv, t["name"]), disclose(srv, t["name"]), disclose(srv, t["name"])
    run_ok(srv, srv.token("officer2"), "disclosure", "deny", denied)
    run_ok(srv, srv.token("officer2"), "disclosure", "approve", pending)
    start = log_size(srv)
    srv.stop_ok()
    d = disclosure_record(srv, denied)
    d["state"], d["approvals"] = "approved", ["officer1", "officer2"]
    p = disclosure_record(srv, pending)
    p["state"], p["approvals"] = "approved", ["officer2", "auditor"]
    s = disclosure_record(srv, shown)
    s["visible_after_ms"] += 365 * 24 * 3600 * 1000
    edit_governance(
        srv,
        *[("UPDATE disclosures SET record = ? WHERE id = ?", json.dumps(r), r["id"]) for r in (d, p, s)],
    )
    srv.start()
    listed = {x["id"]: x for x in api(srv, "GET", "/v1/disclosures", srv.token("officer1")).json()}
    assert listed[denied]["state"] == "denied", listed[denied]
    assert listed[pending]["state"] == "pending" and listed[pending]["approvals"] == ["officer2"], listed[pending]
    seen_by_tenant = {x["id"] for x in api(srv, "GET", "/v1/disclosures", t["admin"]).json()}
    assert shown in seen_by_tenant, "a disclosure request was kept from its tenant by an edit of governance.db"
    for did in (denied, pending, shown):
        assert len(integrity_failures(srv, start, f"disclosure:{did}")) == 1, did
    # the pending request still needs a second officer, and its recorder is not one
    run_fail(srv, srv.token("officer1"), "disclosure", "approve", pending, status=403)


# ---------------------------------------------------------------- the log


def some_activity(srv, n: int) -> None:
    t = make_tenant(srv)
    for _ in range(n):
        t["client"].create_bucket(Bucket=unique_name("act"))


def test_a_truncated_log_is_refused_at_start(private_server, tmp_path):
    srv = private_server
    some_activity(srv, 2)
    size = log_size(srv)
    srv.stop_ok()
    log_db = srv.data_dir.joinpath(*LOG_DB)
    saved = tmp_path / "log"
    shutil.copytree(log_db.parent, saved)
    keep = size - 3
    with sqlite3.connect(log_db) as c:
        c.execute("DELETE FROM entries WHERE idx >= ?", (keep,))
        for level in range(0, 64):
            c.execute("DELETE FROM hashes WHERE level = ? AND ((idx + 1) << ?) > ?", (level, level, keep))
    line = start_refused(srv)
    assert "refusing to start" in line and f"{keep} entries" in line and str(size) in line, line
    # both ways: the whole log back, and it starts
    shutil.rmtree(log_db.parent)
    shutil.copytree(saved, log_db.parent)
    srv.start()
    assert log_size(srv) == size


def test_an_older_copy_of_the_log_is_refused_at_start(private_server, tmp_path):
    """An older copy of the whole log directory (its own files consistent) put
    back while the trustee is stopped: shorter than the kept checkpoint, and once
    grown past it, not consistent with it."""
    srv = private_server
    some_activity(srv, 1)
    srv.stop_ok()
    log_dir = srv.data_dir / "trustee" / "log"
    old = tmp_path / "old-log"
    shutil.copytree(log_dir, old)
    old_kept = srv.data_dir.joinpath(*KEPT).read_text()
    srv.start()
    some_activity(srv, 2)
    size = log_size(srv)
    srv.stop_ok()
    newer = tmp_path / "newer-log"
    shutil.copytree(log_dir, newer)
    shutil.rmtree(log_dir)
    shutil.copytree(old, log_dir)
    line = start_refused(srv)
    assert "refusing to start" in line and "fewer than" in line and str(size) in line, line
    # an older copy that has grown past the kept size on its own (a fork) is not consistent with it:
    # the old copy started with its own kept checkpoint, grown, then the newer kept checkpoint put back
    kept = srv.data_dir.joinpath(*KEPT).read_text()
    srv.data_dir.joinpath(*KEPT).write_text(old_kept)
    srv.start()
    while log_size(srv) <= size:
        some_activity(srv, 2)
    srv.stop_ok()
    srv.data_dir.joinpath(*KEPT).write_text(kept)
    line = start_refused(srv)
    assert "not consistent" in line, line
    shutil.rmtree(log_dir)
    shutil.copytree(newer, log_dir)
    srv.start()
    assert log_size(srv) >= size


def test_a_missing_kept_checkpoint_is_refused_at_start(private_server):
    srv = private_server
    some_activity(srv, 1)
    srv.stop_ok()
    kept = srv.data_dir.joinpath(*KEPT)
    saved = kept.read_bytes()
    assert kept.stat().st_mode & 0o777 == 0o600, oct(kept.stat().st_mode)
    kept.unlink()
    line = start_refused(srv)
    assert "missing" in line and "refusing to start" in line, line
    kept.write_bytes(saved)
    srv.start()


def test_log_show_names_an_entry_it_cannot_read_instead_of_failing(private_server):
    """An entry missing from the log's storage: the entries page still answers
    (never a 500), marks the gap, and `obhut log show` says so in one line."""
    srv = private_server
    t = tenant_with_bucket(srv, {"k": b"v"})
    gid = approved_grant(srv, t)
    idx = next(i for i, e in log_entries(srv) if e.get("grant") == gid)
    c = sqlite3.connect(srv.data_dir.joinpath(*LOG_DB), isolation_level=None, timeout=30)
    try:
        c.execute("DELETE FROM entries WHERE idx = ?", (idx,))
    finally:
        c.close()
    r = api(srv, "GET", f"/v1/log/entries?tenant={t['name']}", t["admin"])
    assert r.status_code == 200, f"{r.status_code} {r.text[:300]}"
    gaps = [e for e in r.json()["entries"] if e.get("unreadable")]
    assert [e["index"] for e in gaps] == [idx], gaps
    r = srv.cli("log", "show", token=t["admin"])
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode != 0 and len(lines) == 1 and "could not be read" in lines[0], (r.returncode, r.stderr)
    assert "panicked" not in r.stderr
    assert f"{idx:>6} UNREADABLE" in r.stdout, r.stdout
    assert "grant_requested" in r.stdout or "grant_approval" in r.stdout, "the readable entries are still shown"
