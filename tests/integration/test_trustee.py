"""The trustee from outside: sealing stops every keyed S3 request with a 503
that names the trustee, unsealing (two distinct shares, officers only)
resumes service without a restart, a restart unseals from the development
share file; crypto-shred needs a quorum of two distinct principals with an
officer among them, denies the tenant's reads and writes, can be cancelled,
and once the key is destroyed nothing brings the tenant's data back."""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import json
import os
import re
import threading
import time

import requests

from conftest import assert_one_line_failure, new_tenant, parse_key_output
from s3helpers import assert_s3_error, client_error, unique_name, xml_error


def dev_shares(srv) -> list[str]:
    path = srv.data_dir / "trustee" / "dev-unseal-shares"
    shares = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    assert len(shares) == 2 and shares[0] != shares[1], f"{path} should hold two distinct shares"
    return shares


SHARE_PREFIX = "obhut-share-v1-"


def share_bytes(share: str) -> bytes:
    payload = share.strip()[len(SHARE_PREFIX):]
    return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))


def encode_share(raw: bytes) -> str:
    return SHARE_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def status_line(srv, who="operator") -> str:
    return srv.cli_ok("trustee", "status", token=srv.token(who)).strip()


def assert_sealed_503(resp, what: str, given: int = 0):
    assert_s3_error(resp, 503, "ServiceUnavailable")
    if resp.request.method != "HEAD":
        _, msg = xml_error(resp)
        assert "trustee" in msg.lower() and "sealed" in msg.lower(), f"{what}: 503 message does not name the sealed trustee: {msg!r}"
        assert f"{given} of 2" in msg, f"{what}: 503 message should say {given} of 2 shares are given: {msg!r}"


def count_in_log(srv, text: str) -> int:
    return srv.log_path.read_text(errors="replace").count(text)


# ---------------------------------------------------------------- 3. sealed and back


def capturing_proxy(target: str):
    """An HTTP relay in front of the admin API that keeps every request it
    relays, as whoever runs the listener between officers and the trustee
    could. Returns (its URL, the captured (method, path, body) list, the server)."""
    captured: list[tuple[str, str, bytes]] = []

    class Relay(http.server.BaseHTTPRequestHandler):
        def relay(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            captured.append((self.command, self.path, body))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")}
            r = requests.request(self.command, target + self.path, headers=headers, data=body or None, timeout=30)
            self.send_response(r.status_code)
            for k, v in r.headers.items():
                if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(r.content)))
            self.end_headers()
            self.wfile.write(r.content)

        do_GET = do_POST = relay

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Relay)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_port}", captured, httpd


def test_unseal_shares_reach_the_trustee_only_encrypted(private_server):
    """`obhut trustee unseal` encrypts each share to the trustee's unseal key on
    the officer's machine: what crosses the admin listener is not the share, a
    captured request replayed after the trustee was sealed again opens nothing,
    and a share sent in clear is refused by name."""
    srv = private_server
    officer1 = srv.token("officer1")
    share1, share2 = dev_shares(srv)
    assert srv.cli_ok("trustee", "seal", token=officer1).strip() == "sealed: 0 of 2 shares given"
    url, captured, httpd = capturing_proxy(srv.admin_url)
    try:
        for share, who in ((share1, "officer1"), (share2, "officer2")):
            r = srv.cli("trustee", "unseal", share, token=srv.token(who), env={"OBHUT_ADMIN_URL": url})
            assert r.returncode == 0, r.stderr
    finally:
        httpd.shutdown()
    assert status_line(srv) == "unsealed"
    posts = [body for method, path, body in captured if (method, path) == ("POST", "/v1/trustee/unseal")]
    assert len(posts) == 2, [(m, p) for m, p, _ in captured]
    for share in (share1, share2):
        raw = share_bytes(share)
        forms = {share.encode(), share.removeprefix(SHARE_PREFIX).encode(), raw, base64.b64encode(raw).rstrip(b"="),
                 raw.hex().encode()}
        for _, path, body in captured:
            leaked = [f for f in forms if f in body]
            assert not leaked, f"the admin listener saw the share in {path}: {body[:200]!r}"
    for body in posts:
        assert set(json.loads(body)) == {"sealed"}, body

    # a captured request replayed in a later seal epoch opens nothing
    srv.cli_ok("trustee", "seal", token=officer1)
    for body in posts:
        r = requests.post(srv.admin_url + "/v1/trustee/unseal", data=body, timeout=30,
                          headers={**srv.auth("officer1"), "Content-Type": "application/json"})
        assert r.status_code == 403 and "epoch" in r.json()["message"], r.text
    assert status_line(srv) == "sealed: 0 of 2 shares given"

    # a share in clear is refused, by name, and counts for nothing
    r = requests.post(srv.admin_url + "/v1/trustee/unseal", json={"share": share1}, headers=srv.auth("officer1"), timeout=30)
    assert r.status_code == 400 and "in clear" in r.json()["message"], r.text
    assert status_line(srv) == "sealed: 0 of 2 shares given"

    # a pinned unseal key: another key named by the admin API gets nothing; the right one works
    r = srv.cli("trustee", "unseal", share1, "--unseal-key", "ab" * 32, token=officer1)
    assert_one_line_failure(r, "unseal with a pinned key that is not the trustee's")
    assert "pinned" in r.stderr, r.stderr
    key = requests.get(srv.admin_url + "/v1/trustee/unseal-key", headers=srv.auth("officer1"), timeout=30).json()
    assert re.fullmatch(r"[0-9a-f]{64}", key["public_key"]), key
    assert srv.cli_ok("trustee", "unseal", share1, "--unseal-key", key["public_key"], token=officer1).strip() == \
        "sealed: 1 of 2 shares given"
    assert srv.cli_ok("trustee", "unseal", share2, token=srv.token("officer2")).strip() == "unsealed"



def test_seal_and_unseal(private_server):
    srv = private_server
    s3, raw = srv.client(), srv.raw()
    bucket = unique_name("sealed")
    s3.create_bucket(Bucket=bucket)
    old = os.urandom(150_000)
    s3.put_object(Bucket=bucket, Key="old", Body=old)
    assert s3.get_object(Bucket=bucket, Key="old")["Body"].read() == old  # the bucket key is now cached
    mpu = s3.create_multipart_upload(Bucket=bucket, Key="mpu")["UploadId"]
    assert status_line(srv, "auditor") == "unsealed"

    # only officers may seal
    for who in ("operator", "auditor", "demo_admin"):
        r = srv.cli("trustee", "seal", token=srv.token(who))
        assert_one_line_failure(r, f"trustee seal as {who}")
        assert "403" in r.stderr, f"trustee seal as {who}: {r.stderr!r}"
    assert status_line(srv) == "unsealed"
    assert raw.request("GET", bucket, "old").status_code == 200

    out = srv.cli_ok("trustee", "seal", token=srv.token("officer1"))
    assert out.strip() == "sealed: 0 of 2 shares given", out

    # the cached key is gone at once: the very next read fails
    assert_sealed_503(raw.request("GET", bucket, "old"), "GET right after seal")
    assert_sealed_503(raw.request("PUT", bucket, "new", body=b"new data"), "PUT while sealed")
    assert_sealed_503(raw.request("HEAD", bucket, "old"), "HEAD while sealed")
    assert_sealed_503(raw.request("GET", bucket, "old", headers={"Range": "bytes=0-9"}), "ranged GET while sealed")
    r = raw.request("PUT", bucket, "mpu", query=[("partNumber", "1"), ("uploadId", mpu)], body=b"part")
    assert_sealed_503(r, "UploadPart while sealed")
    r = raw.request("PUT", bucket, "copy", headers={"x-amz-copy-source": f"/{bucket}/old"})
    assert_sealed_503(r, "CopyObject while sealed")
    other_bucket = unique_name("sealed-new")
    r = raw.request("PUT", other_bucket)
    assert_sealed_503(r, "CreateBucket (needs a new bucket key) while sealed")
    code, status, resp = client_error(s3.get_object, Bucket=bucket, Key="old")
    assert (code, status) == ("ServiceUnavailable", 503), resp.get("Error")
    assert "trustee" in resp["Error"].get("Message", ""), resp["Error"]
    for who in ("operator", "auditor", "officer2"):
        assert status_line(srv, who) == "sealed: 0 of 2 shares given"

    share1, share2 = dev_shares(srv)
    # only officers may unseal
    for who in ("operator", "auditor", "demo_admin"):
        r = srv.cli("trustee", "unseal", share1, token=srv.token(who))
        assert_one_line_failure(r, f"trustee unseal as {who}")
        assert "403" in r.stderr, f"trustee unseal as {who}: {r.stderr!r}"
    assert status_line(srv) == "sealed: 0 of 2 shares given", "a refused unseal counted"

    # malformed shares are refused with one clear line and count for nothing
    raw1 = share_bytes(share1)
    for bad in (
        "not-a-share",
        "obhut-share-v1-",
        "obhut-share-v1-!!!!",
        share1[:-1],  # not valid base64 any more
        encode_share(raw1[:-1]),  # one byte short
        encode_share(raw1 + b"\0"),  # one byte long
        share1.removeprefix(SHARE_PREFIX),
    ):
        r = srv.cli("trustee", "unseal", bad, token=srv.token("officer1"))
        assert_one_line_failure(r, f"unseal with bad share {bad!r}")
        assert "share" in r.stderr.lower(), f"bad share: the error does not say what is wrong: {r.stderr!r}"
        assert status_line(srv) == "sealed: 0 of 2 shares given", f"bad share {bad!r} counted"

    # a well-formed share that does not belong to this keystore: accepted as
    # one share, but the pair does not reconstruct the master key
    out = srv.cli_ok("trustee", "unseal", share1, token=srv.token("officer1"))
    assert out.strip() == "sealed: 1 of 2 shares given", out
    raw2 = bytearray(share_bytes(share2))
    raw2[5] ^= 0x01
    r = srv.cli("trustee", "unseal", encode_share(bytes(raw2)), token=srv.token("officer2"))
    assert_one_line_failure(r, "unseal with a forged second share")
    assert "share" in r.stderr.lower(), r.stderr
    assert status_line(srv).startswith("sealed: "), "a forged share unsealed the trustee"
    assert_sealed_503(raw.request("GET", bucket, "old"), "GET after a forged share", given=0)

    out = srv.cli_ok("trustee", "unseal", share1, token=srv.token("officer1"))
    assert out.strip() == "sealed: 1 of 2 shares given", out
    # the same share again, even from another officer, does not count twice
    out = srv.cli_ok("trustee", "unseal", share1, token=srv.token("officer2"))
    assert out.strip() == "sealed: 1 of 2 shares given", out
    assert status_line(srv, "auditor") == "sealed: 1 of 2 shares given"
    assert_sealed_503(raw.request("GET", bucket, "old"), "GET with 1 of 2 shares", given=1)

    # the second distinct share, from standard input
    out = srv.cli_ok("trustee", "unseal", token=srv.token("officer2"), input=share2 + "\n")
    assert out.strip() == "unsealed", out
    assert status_line(srv) == "unsealed"
    assert status_line(srv, "auditor") == "unsealed"

    # service resumes by itself
    assert s3.get_object(Bucket=bucket, Key="old")["Body"].read() == old
    new = os.urandom(70_000)
    s3.put_object(Bucket=bucket, Key="new", Body=new)
    assert s3.get_object(Bucket=bucket, Key="new")["Body"].read() == new
    etag = s3.upload_part(Bucket=bucket, Key="mpu", UploadId=mpu, PartNumber=1, Body=b"part one")["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="mpu", UploadId=mpu, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert s3.get_object(Bucket=bucket, Key="mpu")["Body"].read() == b"part one"
    s3.create_bucket(Bucket=other_bucket)
    s3.put_object(Bucket=other_bucket, Key="k", Body=b"in a bucket made after unsealing")
    assert s3.get_object(Bucket=other_bucket, Key="k")["Body"].read() == b"in a bucket made after unsealing"
    # unsealing an unsealed trustee changes nothing
    out = srv.cli_ok("trustee", "unseal", share1, token=srv.token("officer1"))
    assert out.strip() == "unsealed", out

    # seal again, then restart: the development share file unseals it
    srv.cli_ok("trustee", "seal", token=srv.token("officer2"))
    assert_sealed_503(raw.request("GET", bucket, "new"), "GET after sealing again")
    warnings_before = count_in_log(srv, "DEVELOPMENT MODE")
    assert warnings_before >= 1, "the first start did not warn about DEVELOPMENT MODE"
    srv.stop_ok()
    srv.start()
    assert count_in_log(srv, "DEVELOPMENT MODE") == warnings_before + 1, "the restart did not warn about DEVELOPMENT MODE"
    assert status_line(srv) == "unsealed"
    s3 = srv.client()
    assert s3.get_object(Bucket=bucket, Key="old")["Body"].read() == old
    assert s3.get_object(Bucket=bucket, Key="new")["Body"].read() == new
    assert s3.get_object(Bucket=bucket, Key="mpu")["Body"].read() == b"part one"


def test_trustee_admin_api(private_server):
    """The admin API itself: JSON status, roles enforced, bad bodies refused."""
    srv = private_server
    url = srv.admin_url

    def call(method, path, who=None, **kw):
        headers = srv.auth(who) if who else {}
        return requests.request(method, url + path, headers=headers, timeout=10, **kw)

    r = call("GET", "/v1/trustee/status", "auditor")
    assert r.status_code == 200, r.text
    assert r.json()["sealed"] is False, r.json()
    assert call("GET", "/v1/trustee/status").status_code in (401, 403)
    assert call("POST", "/v1/trustee/seal").status_code in (401, 403)
    for who in ("operator", "auditor", "demo_admin"):
        r = call("POST", "/v1/trustee/seal", who)
        assert r.status_code == 403, f"seal as {who}: {r.status_code} {r.text}"
        r = call("POST", "/v1/trustee/unseal", who, json={"share": dev_shares(srv)[0]})
        assert r.status_code == 403, f"unseal as {who}: {r.status_code} {r.text}"
    assert call("GET", "/v1/trustee/status", "operator").json()["sealed"] is False

    r = call("POST", "/v1/trustee/seal", "officer1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["sealed"] is True and body["shares_given"] == 0 and body["threshold"] == 2, body
    for bad in ({"share": "nope"}, {}, {"share": 5}):
        r = call("POST", "/v1/trustee/unseal", "officer1", json=bad)
        assert r.status_code == 400, f"unseal {bad}: {r.status_code} {r.text}"
        assert isinstance(r.json().get("message"), str), r.text
    r = requests.post(
        url + "/v1/trustee/unseal", data=b"{not json", timeout=10,
        headers={**srv.auth("officer1"), "Content-Type": "application/json"},
    )
    assert r.status_code in (400, 415, 422), f"malformed JSON: {r.status_code} {r.text}"
    s1, s2 = dev_shares(srv)
    # a share in clear is refused by name; shares travel encrypted to the trustee's unseal key
    r = call("POST", "/v1/trustee/unseal", "officer1", json={"share": s1})
    assert r.status_code == 400 and "in clear" in r.json()["message"], r.text
    assert call("GET", "/v1/trustee/status", "operator").json()["shares_given"] == 0
    for who in ("operator", "auditor", "demo_admin"):
        assert call("GET", "/v1/trustee/unseal-key", who).status_code == 403, who
    key = call("GET", "/v1/trustee/unseal-key", "officer1").json()
    assert set(key) == {"public_key", "identity", "epoch"}, key
    out = srv.cli_ok("trustee", "unseal", s1, "--unseal-key", key["public_key"], token=srv.token("officer1"))
    assert out.strip() == "sealed: 1 of 2 shares given", out
    assert srv.cli_ok("trustee", "unseal", s2, token=srv.token("officer2")).strip() == "unsealed"
    assert call("GET", "/v1/trustee/unseal-key", "officer1").json()["epoch"] != key["epoch"], "unsealing began no new epoch"


# ---------------------------------------------------------------- 4. crypto-shred

PENDING = re.compile(r"^pending: 1 of 2 approvals for (?P<action>\S+) \(")
DISABLED = re.compile(
    r"^tenant (?P<t>\S+): key disabled; it will be destroyed at (?P<when>\S+) unless the shred is cancelled$"
)


def keystore(srv) -> dict:
    return json.loads((srv.data_dir / "trustee" / "keystore.json").read_text())


def shred(srv, who: str, tenant: str, *flags: str) -> str:
    return srv.cli_ok("tenant", "shred", tenant, *flags, token=srv.token(who)).strip()


def assert_pending(out: str, action: str):
    m = PENDING.match(out)
    assert m and m.group("action") == action, f"expected 'pending: 1 of 2 approvals for {action} (...)', got {out!r}"


def assert_key_refused(client, bucket, key, tenant, state_word):
    """GET and PUT of `tenant` answer 403 AccessDenied naming the key."""
    for what, fn, kw in (
        ("GET", client.get_object, {"Bucket": bucket, "Key": key}),
        ("PUT", client.put_object, {"Bucket": bucket, "Key": key + "-new", "Body": b"x"}),
    ):
        code, status, resp = client_error(fn, **kw)
        msg = resp.get("Error", {}).get("Message", "")
        assert (code, status) == ("AccessDenied", 403), f"{tenant} {what}: expected AccessDenied/403, got {code}/{status}: {msg!r}"
        assert "key" in msg and tenant in msg and state_word in msg, f"{tenant} {what}: message {msg!r} should name the {state_word} key"
    code, status, _ = client_error(client.head_object, Bucket=bucket, Key=key)
    assert status == 403, f"{tenant} HEAD: expected 403, got {code}/{status}"


def test_crypto_shred(private_server):
    srv = private_server
    acme_keys = new_tenant(srv, "acme")
    acme = srv.client(acme_keys["AWS_ACCESS_KEY_ID"], acme_keys["AWS_SECRET_ACCESS_KEY"])
    demo = srv.client()

    demo_bucket, acme_bucket = unique_name("demo-shred"), unique_name("acme-shred")
    demo.create_bucket(Bucket=demo_bucket)
    acme.create_bucket(Bucket=acme_bucket)
    demo_data, acme_data = os.urandom(100_000), os.urandom(90_000)
    demo.put_object(Bucket=demo_bucket, Key="d", Body=demo_data)
    acme.put_object(Bucket=acme_bucket, Key="a", Body=acme_data)

    def acme_fine(tag: str):
        assert acme.get_object(Bucket=acme_bucket, Key="a")["Body"].read() == acme_data, f"acme read wrong ({tag})"
        body = os.urandom(1000)
        acme.put_object(Bucket=acme_bucket, Key=f"w-{tag}", Body=body)
        assert acme.get_object(Bucket=acme_bucket, Key=f"w-{tag}")["Body"].read() == body

    def demo_fine(tag: str):
        assert demo.get_object(Bucket=demo_bucket, Key="d")["Body"].read() == demo_data, f"demo read wrong ({tag})"
        demo.put_object(Bucket=demo_bucket, Key=f"w-{tag}", Body=b"demo " + tag.encode())
        assert demo.get_object(Bucket=demo_bucket, Key=f"w-{tag}")["Body"].read() == b"demo " + tag.encode()

    # one approval, and the same principal again: still pending
    assert_pending(shred(srv, "officer1", "demo"), "shred:demo")
    assert_pending(shred(srv, "officer1", "demo"), "shred:demo")
    # operators and auditors may not approve
    for who in ("operator", "auditor"):
        r = srv.cli("tenant", "shred", "demo", token=srv.token(who))
        assert_one_line_failure(r, f"tenant shred demo as {who}")
        assert "403" in r.stderr, r.stderr
    demo_fine("pending")
    assert keystore(srv)["tenants"]["demo"]["state"] == "active"

    # the tenant's own admin completes the quorum (officer + tenant admin)
    started = dt.datetime.now(dt.timezone.utc)
    out = shred(srv, "demo_admin", "demo")
    m = DISABLED.match(out)
    assert m and m.group("t") == "demo", f"unexpected shred output: {out!r}"
    when = dt.datetime.fromisoformat(m.group("when").replace("Z", "+00:00"))
    grace = when - started
    assert dt.timedelta(days=7) - dt.timedelta(minutes=5) < grace < dt.timedelta(days=7, minutes=5), (
        f"destruction at {when} is not 7 days (the default grace) after {started}"
    )
    assert_key_refused(demo, demo_bucket, "d", "demo", "disabled")
    acme_fine("demo-disabled")
    entry = keystore(srv)["tenants"]["demo"]
    assert entry["state"] == "disabled" and entry["wrapped"], entry

    # a tenant admin may not shred another tenant
    for flags in ((), ("--now",)):
        r = srv.cli("tenant", "shred", "acme", *flags, token=srv.token("demo_admin"))
        assert_one_line_failure(r, f"demo admin shreds acme {flags}")
        assert "403" in r.stderr, r.stderr
    r = srv.cli("tenant", "shred", "acme", token=srv.token("officer1"))
    assert r.returncode == 0 and r.stdout.startswith("pending:"), (r.stdout, r.stderr)
    acme_fine("acme-attacked")

    # cancel: officer2 + demo admin
    assert_pending(shred(srv, "officer2", "demo", "--cancel"), "shred-cancel:demo")
    assert_key_refused(demo, demo_bucket, "d", "demo", "disabled")
    out = shred(srv, "demo_admin", "demo", "--cancel")
    assert out == "tenant demo: key active (shred cancelled)", out
    demo_fine("cancelled")
    acme_fine("cancelled")
    assert keystore(srv)["tenants"]["demo"]["state"] == "active"
    # a cancel approval kept in store while the key is active: refused
    r = srv.cli("tenant", "shred", "demo", "--cancel", token=srv.token("officer1"))
    assert_one_line_failure(r, "cancel of an active key")
    assert "409" in r.stderr and "not disabled" in r.stderr, r.stderr
    # approvals consumed by the first shred do not carry over to a new one
    assert_pending(shred(srv, "officer1", "demo"), "shred:demo")
    demo_fine("new-pending")

    # destroy now: officer1 + officer2
    assert_pending(shred(srv, "officer1", "demo", "--now"), "shred-now:demo")
    demo_fine("now-pending")
    out = shred(srv, "officer2", "demo", "--now")
    assert out.startswith("tenant demo: key destroyed"), out
    assert_key_refused(demo, demo_bucket, "d", "demo", "destroyed")
    acme_fine("demo-destroyed")
    ks = keystore(srv)
    assert ks["tenants"]["demo"]["state"] == "destroyed", ks["tenants"]["demo"]
    assert ks["tenants"]["demo"]["wrapped"] == "", ks["tenants"]["demo"]
    assert ks["tenants"]["acme"]["state"] == "active" and ks["tenants"]["acme"]["wrapped"], ks["tenants"]["acme"]

    # nothing brings it back: cancel with a full quorum, a restart
    shred(srv, "officer1", "demo", "--cancel")
    out = shred(srv, "demo_admin", "demo", "--cancel")
    assert "destroyed" in out, f"cancel after destruction: {out!r}"
    assert_key_refused(demo, demo_bucket, "d", "demo", "destroyed")

    srv.stop_ok()
    srv.start()
    demo = srv.client()
    acme = srv.client(acme_keys["AWS_ACCESS_KEY_ID"], acme_keys["AWS_SECRET_ACCESS_KEY"])
    assert_key_refused(demo, demo_bucket, "d", "demo", "destroyed")
    acme_fine("after-restart")
    assert keystore(srv)["tenants"]["demo"]["state"] == "destroyed"
    out = shred(srv, "officer1", "demo")
    assert out.startswith("tenant demo: key destroyed"), out
    out = shred(srv, "officer2", "demo", "--now")
    assert "destroyed" in out, out


def test_shred_grace_period_ends_in_destruction(private_server_factory):
    """With shred_grace_secs = 2 the disabled key is destroyed once the grace
    period is over (checked at start-up)."""
    srv = private_server_factory(config="shred_grace_secs = 2\n")
    demo = srv.client()
    bucket = unique_name("grace")
    demo.create_bucket(Bucket=bucket)
    demo.put_object(Bucket=bucket, Key="d", Body=b"short-lived")

    assert_pending(shred(srv, "officer1", "demo"), "shred:demo")
    started = dt.datetime.now(dt.timezone.utc)
    out = shred(srv, "officer2", "demo")
    m = DISABLED.match(out)
    assert m, f"unexpected shred output: {out!r}"
    when = dt.datetime.fromisoformat(m.group("when").replace("Z", "+00:00"))
    assert started - dt.timedelta(seconds=2) <= when <= started + dt.timedelta(seconds=10), (
        f"destruction at {when}, expected about 2 s after {started}"
    )
    assert_key_refused(demo, bucket, "d", "demo", "disabled")
    assert keystore(srv)["tenants"]["demo"]["state"] == "disabled"

    time.sleep(max(0.0, (when - dt.datetime.now(dt.timezone.utc)).total_seconds()) + 2.5)
    srv.stop_ok()
    srv.start()
    entry = keystore(srv)["tenants"]["demo"]
    assert entry["state"] == "destroyed" and entry["wrapped"] == "", f"grace period over, restarted, key still {entry}"
    assert_key_refused(srv.client(), bucket, "d", "demo", "destroyed")
    shred(srv, "officer1", "demo", "--cancel")
    assert "destroyed" in shred(srv, "officer2", "demo", "--cancel")

