"""Guarantee 5, the verifiable record: the transparency log is served in the
C2SP tlog-tiles layout with signed checkpoints that a tool which is not obhut's
can check (done here in Python: Ed25519 signed note, RFC 6962 root from the
public hash tiles, leaf hashes of the entry bundles); it stays consistent
across restarts and crashes; a changed entry, a changed stored hash, a rolled
back or rewritten log fail `obhut log verify` with a non-zero exit and a
message naming what failed; tenant admins read only their own entries."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3

import pytest
import requests

from gov_helpers import (
    ENTRY_TYPES,
    api,
    approve,
    approved_grant,
    credentials,
    enrol,
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

LOG_DB = ("trustee", "log", "tlog.sqlite3")  # crates/tlog/src/writer.rs, DB_FILE in DATA_DIR/trustee/log/


# ---------------------------------------------------------------- an independent verifier (RFC 8032, RFC 6962, C2SP)

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _recover_x(y: int, sign: int):
    xx = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    x = pow(xx, (_P + 3) // 8, _P)
    if (x * x - xx) % _P:
        x = x * _SQRT_M1 % _P
    if (x * x - xx) % _P:
        return None
    if x == 0 and sign:
        return None
    return _P - x if (x & 1) != sign else x


def _add(a, b):
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % _P
    bb = (y1 + x1) * (y2 + x2) % _P
    cc = t1 * 2 * _D * t2 % _P
    dd = z1 * 2 * z2 % _P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(s: int, pt):
    q = (0, 1, 1, 0)
    while s:
        if s & 1:
            q = _add(q, pt)
        pt = _add(pt, pt)
        s >>= 1
    return q


def _point(b: bytes):
    y = int.from_bytes(b, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    if y >= _P:
        return None
    x = _recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % _P)


_GY = 4 * pow(5, _P - 2, _P) % _P
_G = (_recover_x(_GY, 0), _GY, 1, _recover_x(_GY, 0) * _GY % _P)


def ed25519_verify(public: bytes, message: bytes, signature: bytes) -> bool:
    if len(public) != 32 or len(signature) != 64:
        return False
    a, r = _point(public), _point(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= _L:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % _L
    left, right = _mul(s, _G), _add(r, _mul(h, a))
    return (left[0] * right[2] - right[0] * left[2]) % _P == 0 and (left[1] * right[2] - right[1] * left[2]) % _P == 0


def parse_vkey(vkey: str) -> tuple[str, bytes, bytes]:
    name, key_id, key = vkey.strip().split("+", 2)
    raw = base64.b64decode(key)
    assert raw[0] == 1 and len(raw) == 33, f"not an Ed25519 vkey: {vkey!r}"
    expected_id = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    assert bytes.fromhex(key_id) == expected_id, f"the key id of {vkey!r} is not SHA-256(name\\n key)[:4]"
    return name, expected_id, raw[1:]


def check_note(note: str, vkey: str) -> tuple[str, int, bytes]:
    """Verifies a C2SP checkpoint note against a vkey; returns (origin, size, root)."""
    name, key_id, public = parse_vkey(vkey)
    body, sep, sigs = note.partition("\n\n")
    assert sep, f"a signed note has a blank line before its signatures: {note!r}"
    body += "\n"
    lines = body.split("\n")
    origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2])
    assert origin == name and len(root) == 32 and str(size) == lines[1], note
    ok = False
    for line in sigs.strip("\n").split("\n"):
        assert line.startswith("\u2014 "), f"signature line must start with an em dash: {line!r}"
        signer, blob = line[2:].rsplit(" ", 1)
        raw = base64.b64decode(blob)
        if signer == name and raw[:4] == key_id:
            ok = ed25519_verify(public, body.encode(), raw[4:])
    assert ok, f"no valid signature by {name} on the checkpoint:\n{note}"
    return origin, size, root


def tile_index(i: int) -> str:
    parts = [f"{i % 1000:03d}"]
    i //= 1000
    while i:
        parts.append(f"x{i % 1000:03d}")
        i //= 1000
    return "/".join(reversed(parts))


def fetch_tiles(srv, kind: str, count: int, headers=None) -> bytes:
    """Concatenated level-0 hash tiles (kind "0") or entry bundles ("entries") covering `count` items."""
    out = b""
    for t in range((count + 255) // 256):
        width = min(256, count - t * 256)
        path = f"/log/tile/{kind}/{tile_index(t)}" + ("" if width == 256 else f".p/{width}")
        r = requests.get(srv.admin_url + path, headers=headers or {}, timeout=30)
        assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text[:200]}"
        out += r.content
    return out


def merkle_root(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + merkle_root(leaves[:k]) + merkle_root(leaves[k:])).digest()


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def decode_bundle(data: bytes) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        n = int.from_bytes(data[i:i + 2], "big")
        out.append(data[i + 2:i + 2 + n])
        i += 2 + n
    assert i == len(data), "truncated entry bundle"
    return out


# ---------------------------------------------------------------- helpers


def checkpoint_text(srv) -> str:
    return run_ok(srv, srv.token("auditor"), "log", "checkpoint")


def verify(srv, token, *extra) -> str:
    out = run_ok(srv, token, "log", "verify", *extra)
    assert out.startswith("ok: "), out
    return out


def verify_fails(srv, token, *extra, says: str) -> str:
    return run_fail(srv, token, "log", "verify", *extra, says=says)


def some_activity(srv, n: int = 3) -> None:
    """Appends a few entries (principals made by an officer)."""
    for _ in range(n):
        enrol(srv, new_name("p-"), "auditor")


def db(srv) -> sqlite3.Connection:
    return sqlite3.connect(srv.data_dir.joinpath(*LOG_DB))


# ---------------------------------------------------------------- the public, checkable log


def test_log_is_verifiable_by_an_independent_tool(server):
    t = tenant_with_bucket(server, {"k": b"v"})
    grant_client(server, credentials(server, server.token("operator"), approved_grant(server, t))).get_object(
        Bucket=t["bucket"], Key="k")
    r = requests.get(server.admin_url + "/log/key", timeout=30)
    assert r.status_code == 200, r.text
    vkey = r.text.strip()
    r = requests.get(server.admin_url + "/log/checkpoint", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain"), (r.status_code, r.headers)
    origin, size, root = check_note(r.text, vkey)
    assert size >= 10
    # tampering with the note breaks the signature
    forged = r.text.replace(f"\n{size}\n", f"\n{size + 1}\n", 1)
    with pytest.raises(AssertionError):
        check_note(forged, vkey)

    # hash tiles are public; the root they give is the checkpoint's
    leaves = fetch_tiles(server, "0", size)
    hashes = [leaves[i:i + 32] for i in range(0, len(leaves), 32)]
    assert len(hashes) == size and merkle_root(hashes) == root

    # entry bundles: officers and auditors only; each entry hashes to its leaf
    path = f"/log/tile/entries/{tile_index(0)}" + ("" if size >= 256 else f".p/{size}")
    assert requests.get(server.admin_url + path, timeout=30).status_code == 401
    for who in ("operator", "demo_admin"):
        assert api(server, "GET", path, server.token(who)).status_code == 403, who
    for who in ("auditor", "officer1"):
        bundle = fetch_tiles(server, "entries", size, headers=server.auth(who))
        entries = decode_bundle(bundle)
        assert len(entries) == size
        assert [leaf_hash(e) for e in entries] == hashes, f"an entry does not match its leaf hash ({who})"
    kinds = {json.loads(e)["type"] for e in entries}
    assert kinds <= ENTRY_TYPES, kinds - ENTRY_TYPES
    assert {"tenant_added", "principal_created", "grant_requested", "grant_access", "key_release"} <= kinds, kinds


def test_log_verify_cli(server):
    for who in ("auditor", "officer1"):
        out = verify(server, server.token(who))
        assert "every hash tile matches the root" in out and "every entry matches its leaf hash" in out, out
    # without entitlement to the entries: the tree is still checked
    for token in (None, server.token("operator"), server.token("demo_admin")):
        out = verify(server, token)
        assert "every hash tile matches the root" in out and "every entry" not in out, out
    # a pinned key: the right one passes, another one fails
    vkey = requests.get(server.admin_url + "/log/key", timeout=30).text.strip()
    verify(server, None, "--key", vkey)
    name, key_id, _ = parse_vkey(vkey)
    other_pub = bytes([1]) + hashlib.sha256(b"another key").digest()
    other_id = hashlib.sha256(name.encode() + b"\n" + other_pub).hexdigest()[:8]
    verify_fails(server, None, "--key", f"{name}+{other_id}+{base64.b64encode(other_pub).decode()}", says="checkpoint")


def test_log_verify_save_and_since(server, tmp_path):
    saved = tmp_path / "cp"
    out = verify(server, server.token("auditor"), "--save", str(saved))
    origin, size, _ = check_note(saved.read_text(), requests.get(server.admin_url + "/log/key", timeout=30).text)
    some_activity(server, 2)
    out = verify(server, server.token("auditor"), "--since", str(saved))
    assert f"consistent with the earlier checkpoint of size {size}" in out, out
    # `log checkpoint` prints the same kind of note
    (tmp_path / "cp2").write_text(checkpoint_text(server))
    verify(server, None, "--since", str(tmp_path / "cp2"))
    # a checkpoint not signed by this log
    broken = saved.read_text().replace(f"\n{size}\n", f"\n{size - 1}\n", 1)
    (tmp_path / "bad").write_text(broken)
    verify_fails(server, None, "--since", str(tmp_path / "bad"), says="not a checkpoint signed by this log")
    (tmp_path / "junk").write_text("hello\n")
    verify_fails(server, None, "--since", str(tmp_path / "junk"), says="checkpoint")
    verify_fails(server, None, "--since", str(tmp_path / "missing"), says="cannot read")


def test_tenant_admin_reads_only_its_own_entries(server):
    a = tenant_with_bucket(server, {"k": b"v"})
    b = make_tenant(server)
    approved_grant(server, a)
    out = run_ok(server, a["admin"], "log", "show")
    lines = [ln for ln in out.splitlines() if ln.strip() and not ln.endswith("each inclusion proof checked")]
    assert lines and all(f"tenant={a['name']} " in ln for ln in lines), out
    assert "grant_approved" in out and "grant_requested" in out and "tenant_added" in out, out
    assert out.strip().endswith(f"{len(lines)} entries, each inclusion proof checked"), out
    run_ok(server, a["admin"], "log", "show", "--tenant", a["name"])
    run_fail(server, a["admin"], "log", "show", "--tenant", b["name"], status=403)
    assert api(server, "GET", f"/v1/log/entries?tenant={b['name']}", a["admin"]).status_code == 403
    own = api(server, "GET", "/v1/log/entries", a["admin"]).json()["entries"]
    assert own and all(json.loads(e["entry"]).get("tenant") == a["name"] for e in own)
    # operators read no entries at all; auditors and officers read every tenant's
    run_fail(server, server.token("operator"), "log", "show", status=403)
    assert api(server, "GET", "/v1/log/entries", server.token("operator")).status_code == 403
    for who in ("auditor", "officer2"):
        out = run_ok(server, server.token(who), "log", "show", "--tenant", b["name"])
        assert "tenant_added" in out and f"tenant={b['name']}" in out, out
    assert api(server, "GET", "/v1/log/entries?bogus=1", server.token("auditor")).status_code == 400


def test_log_entries_come_in_pages_of_the_asked_size_with_a_next_cursor(server):
    a = tenant_with_bucket(server, {"k": b"v"})
    approved_grant(server, a)
    whole = api(server, "GET", "/v1/log/entries", a["admin"]).json()
    assert "next" not in whole and len(whole["entries"]) >= 4, whole
    # Two at a time: the same entries, each page at most two, `next` on all but the last.
    paged, cursor, pages = [], 0, 0
    while cursor is not None:
        r = api(server, "GET", f"/v1/log/entries?from={cursor}&limit=2", a["admin"])
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["entries"]) <= 2, page
        paged += page["entries"]
        cursor = page.get("next")
        pages += 1
        if cursor is not None:
            assert cursor > page["entries"][-1]["index"], page
    assert paged == whole["entries"] and pages == (len(paged) + 1) // 2
    # An auditor pages through every tenant's entries the same way.
    first = api(server, "GET", "/v1/log/entries?limit=1", server.token("auditor")).json()
    assert [e["index"] for e in first["entries"]] == [0] and first["next"] == 1, first
    # Out of bounds or not a number: a JSON error, never a page.
    for bad in ("0", "10001", "-1", "many", ""):
        r = api(server, "GET", f"/v1/log/entries?limit={bad}", server.token("auditor"))
        assert r.status_code == 400 and r.json()["error"] == "bad_request", (bad, r.text)
    r = api(server, "GET", "/v1/log/entries?limit=10000", server.token("auditor"))
    assert r.status_code == 200 and r.json()["entries"], r.text
    # The CLI follows `next` to the end: pages of two show what one page shows; --from and
    # --limit pick a window; a page size out of bounds is refused before any request.
    def shown(*args):
        out = run_ok(server, a["admin"], "log", "show", *args)
        return [ln for ln in out.splitlines() if ln.strip() and not ln.endswith("each inclusion proof checked")]

    everything = shown()
    assert len(everything) == len(whole["entries"]) >= 4, everything
    assert shown("--page-size", "2") == everything
    second = whole["entries"][1]["index"]
    assert shown("--from", str(second), "--limit", "2", "--page-size", "1") == everything[1:3]
    r = server.cli("log", "show", "--page-size", "0", token=a["admin"])
    assert r.returncode != 0 and "--page-size" in r.stderr and not r.stdout, r


# ---------------------------------------------------------------- restarts


def test_consistency_holds_across_restarts(private_server, tmp_path):
    srv = private_server
    t = tenant_with_bucket(srv, {"k": b"kept"})
    cp0 = tmp_path / "cp0"
    verify(srv, srv.token("auditor"), "--save", str(cp0))
    op = srv.token("operator")
    g_done = approved_grant(srv, t)
    creds = credentials(srv, op, g_done)
    g_half = request_grant(srv, op, t["name"], t["bucket"])
    approve(srv, srv.token("officer1"), g_half)
    before = log_entries(srv)

    srv.stop_ok()
    srv.start()
    out = verify(srv, srv.token("auditor"), "--since", str(cp0))
    assert "consistent with the earlier checkpoint" in out, out
    assert log_entries(srv)[:len(before)] == before, "entries changed across a restart"
    # governance state survives: the half-approved grant still needs one officer, the approved one works
    assert [a["principal"] for a in grant_view(srv, g_half)["approvals"]] == ["officer1"]
    assert approve(srv, srv.token("officer2"), g_half) == "pending: 2 of 2 officers, tenant admin has not approved"
    assert grant_client(srv, creds).get_object(Bucket=t["bucket"], Key="k")["Body"].read() == b"kept"

    cp1 = tmp_path / "cp1"
    verify(srv, srv.token("auditor"), "--save", str(cp1))
    some_activity(srv, 2)
    srv.kill9()  # a crash, not a clean stop
    srv.start()
    some_activity(srv, 1)
    for cp in (cp0, cp1):
        verify(srv, srv.token("auditor"), "--since", str(cp))
    after = log_entries(srv)
    assert after[:len(before)] == before and len(after) > len(before)
    assert [i for i, _ in after] == list(range(len(after))), "log indexes are not dense"


# ---------------------------------------------------------------- tampering


def test_a_tampered_entry_fails_verification(private_server, tmp_path):
    srv = private_server
    t = tenant_with_bucket(srv, {"k": b"v"}, name=None)
    gid = approved_grant(srv, t)
    entries = log_entries(srv)
    idx = next(i for i, e in entries if e["type"] == "grant_approval" and e["principal"] == "officer2")
    verify(srv, srv.token("auditor"))
    with db(srv) as c:  # while the trustee runs
        (orig,) = c.execute("SELECT data FROM entries WHERE idx = ?", (idx,)).fetchone()
        changed = bytes(orig).replace(b'"officer2"', b'"officer9"')
        assert changed != bytes(orig)
        c.execute("UPDATE entries SET data = ? WHERE idx = ?", (changed, idx))
    for who in ("auditor", "officer1"):
        line = verify_fails(srv, srv.token(who), says="log verification failed")
        assert f"entry {idx}" in line and "altered" in line, line
    # the tenant admin's own view proves each entry's inclusion: the changed one fails
    line = run_fail(srv, t["admin"], "log", "show", says=f"entry {idx}")
    assert "not in the log" in line, line
    # the trustee checks every entry against its leaf hash at start, and refuses
    srv.stop_ok()
    line = start_refused(srv)
    assert "refusing to start" in line and f"entry {idx}" in line, line
    # both ways: the original bytes verify again
    with db(srv) as c:
        c.execute("UPDATE entries SET data = ? WHERE idx = ?", (orig, idx))
    srv.start()
    verify(srv, srv.token("auditor"))
    assert "each inclusion proof checked" in run_ok(srv, t["admin"], "log", "show")
    assert grant_view(srv, gid)["state"] == "approved"


@pytest.mark.parametrize("which", ["leaf", "interior"])
def test_a_tampered_stored_hash_fails_verification(private_server, which):
    srv = private_server
    some_activity(srv, 9)  # at least 15 entries: a complete subtree of 8 to spoil
    size = log_size(srv)
    srv.stop_ok()
    if which == "leaf":
        where = (0, 0)
    else:
        top = size.bit_length() - 1  # the leftmost complete subtree is part of every root computation
        where = (top, 0)
    with db(srv) as c:
        (h,) = c.execute("SELECT hash FROM hashes WHERE level = ? AND idx = ?", where).fetchone()
        c.execute("UPDATE hashes SET hash = ? WHERE level = ? AND idx = ?", (bytes([h[0] ^ 1]) + bytes(h[1:]), *where))
    # the trustee recomputes its tree at start, and refuses
    line = start_refused(srv)
    assert "refusing to start" in line and ("root" in line or "hash" in line), line
    with db(srv) as c:
        c.execute("UPDATE hashes SET hash = ? WHERE level = ? AND idx = ?", (h, *where))
    srv.start()
    verify(srv, srv.token("auditor"))


def test_a_leaf_hash_changed_under_a_running_trustee_fails_verification(private_server):
    srv = private_server
    some_activity(srv, 2)
    with db(srv) as c:
        (h,) = c.execute("SELECT hash FROM hashes WHERE level = 0 AND idx = 0").fetchone()
        c.execute("UPDATE hashes SET hash = ? WHERE level = 0 AND idx = 0", (bytes([h[0] ^ 1]) + bytes(h[1:]),))
    for token in (None, srv.token("auditor")):
        line = verify_fails(srv, token, says="log verification failed")
        assert "root" in line or "hash" in line, line
    with db(srv) as c:
        c.execute("UPDATE hashes SET hash = ? WHERE level = 0 AND idx = 0", (h,))
    verify(srv, srv.token("auditor"))


def test_a_rolled_back_log_is_refused_by_the_trustee(private_server, tmp_path):
    """A log cut short while the trustee is stopped: the trustee compares it with
    the last checkpoint it signed, kept apart from the log, and refuses to start
    (test_trustee_state.py has more of these); auditors holding a saved
    checkpoint would catch it too (`log verify --since`)."""
    srv = private_server
    some_activity(srv, 2)
    size = log_size(srv)
    srv.stop_ok()
    keep = size - 3
    with db(srv) as c:
        (kept_rows,) = c.execute("SELECT COUNT(*) FROM entries").fetchone()
        c.execute("DELETE FROM entries WHERE idx >= ?", (keep,))
        for level in range(0, 64):
            c.execute("DELETE FROM hashes WHERE level = ? AND ((idx + 1) << ?) > ?", (level, level, keep))
    assert kept_rows == size
    line = start_refused(srv)
    assert "fewer than" in line and str(size) in line and str(keep) in line, line


def test_a_rewritten_history_is_refused_by_the_trustee(private_server, tmp_path):
    """Whoever can rewrite the stored log completely (entry and every hash) gets
    a log that is consistent in itself; the checkpoint the trustee kept catches
    it at start, as a checkpoint saved by an auditor would."""
    srv = private_server
    t = tenant_with_bucket(srv, {"k": b"v"})
    grant_client(srv, credentials(srv, srv.token("operator"), approved_grant(srv, t))).get_object(Bucket=t["bucket"], Key="k")
    saved = tmp_path / "saved"
    verify(srv, srv.token("auditor"), "--save", str(saved))
    idx = next(i for i, e in log_entries(srv) if e["type"] == "grant_access")
    srv.stop_ok()
    with db(srv) as c:
        rows = [bytes(d) for (d,) in c.execute("SELECT data FROM entries ORDER BY idx")]
        rows[idx] = rows[idx].replace(b'"key":"k"', b'"key":"nothing-to-see"')
        c.execute("UPDATE entries SET data = ? WHERE idx = ?", (rows[idx], idx))
        c.execute("DELETE FROM hashes")
        level, nodes = 0, [leaf_hash(r) for r in rows]
        while nodes:
            c.executemany("INSERT INTO hashes (level, idx, hash) VALUES (?, ?, ?)",
                          [(level, i, h) for i, h in enumerate(nodes)])
            nodes = [hashlib.sha256(b"\x01" + nodes[i] + nodes[i + 1]).digest() for i in range(0, len(nodes) - 1, 2)]
            level += 1
    line = start_refused(srv)
    assert "not consistent" in line and "refusing to start" in line, line


def test_no_log_entry_no_key(private_server):
    """The trustee releases a key only after the entry recording the release is
    durable: while the log cannot be written, a write that needs the bucket key
    fails and nothing is stored; once it can, the same write succeeds."""
    srv = private_server
    t = tenant_with_bucket(srv)  # the bucket exists and its key is made; no key has been released yet
    size = log_size(srv)
    c = sqlite3.connect(srv.data_dir.joinpath(*LOG_DB), isolation_level=None, timeout=30)
    c.execute("BEGIN IMMEDIATE")  # holds the log's write lock longer than the writer waits for it
    try:
        # one raw request (an SDK would retry the 503); the writer gives up after its 10 s busy timeout
        r = srv.raw(t["access_key"], t["secret_key"]).request("PUT", t["bucket"], "k", body=b"v")
        assert r.status_code == 503, f"a write succeeded although its key release could not be logged: {r.status_code} {r.text[:300]}"
        assert "log" in r.text, f"the 503 should say the log cannot be written: {r.text[:300]}"
    finally:
        c.execute("ROLLBACK")
        c.close()
    assert log_size(srv) == size
    assert "Contents" not in t["client"].list_objects_v2(Bucket=t["bucket"])
    t["client"].put_object(Bucket=t["bucket"], Key="k", Body=b"v")
    assert t["client"].get_object(Bucket=t["bucket"], Key="k")["Body"].read() == b"v"
    releases = [e for _, e in log_entries(srv, start=size) if e["type"] == "key_release"]
    assert releases and releases[0]["bucket"] == t["bucket"], releases
    verify(srv, srv.token("auditor"))
