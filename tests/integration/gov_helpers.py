"""Helpers for the governance tests (grants, the transparency log, principals,
disclosure requests): thin wrappers around the `obhut` CLI and the admin API
that fail with the command's own words when something goes wrong.

Principals are passed as tokens (strings); `srv.token("officer1")` gives a dev
principal's token, `enrol()` makes new ones.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import boto3
import requests
from botocore.config import Config

from conftest import bearer, obhut_bin
from s3helpers import REGION, clean_env, parse_env_file, unique_name

GRANT_LINE = re.compile(r"^grant (g-[0-9a-f]+) (\w+): ", re.M)
DISCLOSURE_LINE = re.compile(r"^disclosure (d-[0-9a-f]+) (\w+): ", re.M)

# Every entry type the log may hold (the interface the auditors rely on).
ENTRY_TYPES = {
    "access_key_created", "access_key_revoked", "access_keys_imported", "integrity_failure",
    "key_release", "grant_requested", "grant_approval", "grant_approved", "grant_denied",
    "grant_revoked", "grant_credentials", "grant_access", "grant_access_denied", "tenant_added",
    "policy_changed", "principal_created", "principal_revoked", "disclosure_requested",
    "disclosure_refused", "disclosure_approval", "disclosure_approved", "disclosure_denied",
    "disclosure_delay_set", "shred_approval", "tenant_key_disabled", "tenant_key_enabled",
    "tenant_key_destroyed", "site_added", "attestation", "integrity_failure", "principal_approval",
    "integrity_alarm", "signing_key_enrolled", "signing_key_revoked", "disconnect_approval",
    "trustee_disconnected", "trustee_reconnected", "gateway_acknowledged", "gateway_ack_missing",
    "drill_recorded",
}


def cmd(args) -> str:
    return "obhut " + " ".join(args)


def run_ok(srv, token: str, *args: str) -> str:
    """An admin CLI command that must succeed; returns its stdout."""
    r = srv.cli(*args, token=token)
    assert r.returncode == 0, f"`{cmd(args)}` exited {r.returncode}: stderr {r.stderr.strip()!r} stdout {r.stdout.strip()!r}"
    return r.stdout


def run_fail(srv, token: str | None, *args: str, status: int | None = None, says: str | None = None) -> str:
    """An admin CLI command that must fail the documented way: non-zero exit,
    one line on stderr, no panic, nothing on stdout; optionally the HTTP status
    and a phrase it must name. Returns the stderr line."""
    r = srv.cli(*args, token=token)
    what = f"`{cmd(args)}`"
    assert r.returncode != 0, f"{what}: expected failure, exit 0 with stdout {r.stdout!r}"
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"{what}: expected one line on stderr, got {len(lines)}:\n{r.stderr}"
    low = r.stderr.lower()
    assert "panicked" not in low and "backtrace" not in low, r.stderr
    assert r.stdout.strip() == "", f"{what} failed but printed on stdout: {r.stdout!r}"
    if status is not None:
        assert f"(HTTP {status})" in r.stderr, f"{what}: expected HTTP {status}: {r.stderr.strip()!r}"
    if says is not None:
        assert says.lower() in low, f"{what}: the error should say {says!r}: {r.stderr.strip()!r}"
    return lines[0]


def enrol(srv, name: str, role: str, *, tenant: str | None = None, expires: str | None = None,
          officer: str | None = None) -> str:
    """`obhut principal create` by an officer; returns the new principal's token."""
    args = ["principal", "create", name, "--role", role]
    if tenant:
        args += ["--tenant", tenant]
    if expires:
        args += ["--expires", expires]
    first = officer or srv.token("officer1")
    r = srv.cli(*args, token=first)
    assert r.returncode == 0, f"`{cmd(args)}` exited {r.returncode}: stderr {r.stderr.strip()!r}"
    out = r.stdout
    confirm_enrolment(srv, r.stderr, first)
    values = parse_env_file(out)
    assert set(values) == {"OBHUT_TOKEN"}, f"principal create should print exactly one OBHUT_TOKEN= line: {out!r}"
    token = values["OBHUT_TOKEN"]
    assert token.startswith("obt_") and len(token) > 20, f"odd token {token!r}"
    return token


CONFIRM = re.compile(r"another officer confirms with: obhut (principal create .*)$", re.M)


def confirm_enrolment(srv, stderr: str, first: str) -> None:
    """An officer is enrolled by two officers: if the first one's `principal
    create` says so, a second dev officer confirms it with the command it printed."""
    m = CONFIRM.search(stderr)
    if not m:
        return
    second = srv.token("officer2") if first == srv.token("officer1") else srv.token("officer1")
    out = run_ok(srv, second, *m.group(1).split())
    assert out.startswith("created principal "), f"the second officer's confirmation did not enrol: {out!r}"


def new_name(prefix: str) -> str:
    return prefix + os.urandom(4).hex()


def make_tenant(srv, *, jurisdiction: str = "DE", name: str | None = None) -> dict:
    """A tenant as an installation makes one: an officer creates it and its admin,
    the admin creates its S3 keys. Returns name, admin (token), client."""
    name = name or new_name("t")
    out = run_ok(srv, srv.token("officer1"), "tenant", "create", name, "--jurisdiction", jurisdiction)
    assert "customer approval of grants required" in out, f"a new tenant should require customer approval: {out!r}"
    admin = enrol(srv, f"{name}-admin", "tenant-admin", tenant=name)
    keys = parse_env_file(run_ok(srv, admin, "tenant", "key-create", name))
    client = srv.client(keys["AWS_ACCESS_KEY_ID"], keys["AWS_SECRET_ACCESS_KEY"])
    return {"name": name, "admin": admin, "client": client, "access_key": keys["AWS_ACCESS_KEY_ID"],
            "secret_key": keys["AWS_SECRET_ACCESS_KEY"]}


def tenant_with_bucket(srv, objects: dict[str, bytes] | None = None, **kw) -> dict:
    t = make_tenant(srv, **kw)
    bucket = unique_name("gb")
    t["client"].create_bucket(Bucket=bucket)
    for key, body in (objects or {}).items():
        t["client"].put_object(Bucket=bucket, Key=key, Body=body)
    t["bucket"] = bucket
    return t


def request_grant(srv, token: str, tenant: str, bucket: str, ops: str = "read", *, prefix: str | None = None,
                  duration: str = "2h", reason: str = "support case 4711") -> str:
    """`obhut access request`; returns the grant id (the output is checked)."""
    args = ["access", "request", "--tenant", tenant, "--bucket", bucket, "--ops", ops,
            "--duration", duration, "--reason", reason]
    if prefix is not None:
        args += ["--prefix", prefix]
    out = run_ok(srv, token, *args)
    m = GRANT_LINE.search(out)
    assert m, f"access request printed no `grant g-... pending:` line: {out!r}"
    assert m.group(2) == "pending", f"a new grant should be pending: {out!r}"
    assert re.search(r"^pending: 0 of 2 officers", out, re.M), f"no progress line: {out!r}"
    return m.group(1)


def approve(srv, token: str, grant: str) -> str:
    """`obhut access approve`; returns the progress line (last line)."""
    out = run_ok(srv, token, "access", "approve", grant)
    assert GRANT_LINE.search(out), f"access approve printed no grant line: {out!r}"
    return out.strip().splitlines()[-1]


def approved_grant(srv, tenant: dict, ops: str = "read", *, prefix: str | None = None, requester: str | None = None,
                   duration: str = "2h", bucket: str | None = None) -> str:
    """A grant requested by the operator (or `requester`), approved by both dev
    officers and the tenant's admin."""
    gid = request_grant(srv, requester or srv.token("operator"), tenant["name"], bucket or tenant["bucket"], ops,
                        prefix=prefix, duration=duration)
    approve(srv, srv.token("officer1"), gid)
    approve(srv, srv.token("officer2"), gid)
    last = approve(srv, tenant["admin"], gid)
    assert last == "approved", f"two officers and the tenant admin should complete grant {gid}: {last!r}"
    return gid


def credentials(srv, token: str, grant: str) -> dict:
    out = run_ok(srv, token, "access", "credentials", grant)
    values = parse_env_file(out)
    assert set(values) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}, (
        f"access credentials should print exactly the three AWS_* lines: {out!r}"
    )
    assert values["AWS_ACCESS_KEY_ID"].startswith("OBG"), values
    return values


def grant_client(srv, creds: dict, *, session_token: str | None | bool = True):
    """A boto3 client with grant credentials; `session_token=False` leaves the
    session token out, a string replaces it."""
    token = creds["AWS_SESSION_TOKEN"] if session_token is True else (session_token or None)
    return boto3.session.Session().client(
        "s3",
        endpoint_url=srv.s3_url,
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=token,
        region_name=REGION,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                      retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=10, read_timeout=60),
    )


def api(srv, method: str, path: str, token: str | None = None, **kw) -> requests.Response:
    headers = kw.pop("headers", {})
    if token is not None:
        headers["Authorization"] = f"Bearer {bearer(token)}"
    return requests.request(method, srv.admin_url + path, headers=headers, timeout=30, **kw)


def api_json(srv, path: str, token: str):
    r = api(srv, "GET", path, token)
    assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text[:300]}"
    return r.json()


def grant_view(srv, grant: str, token: str | None = None) -> dict:
    return api_json(srv, f"/v1/grants/{grant}", token or srv.token("officer1"))


def log_entries(srv, token: str | None = None, tenant: str | None = None, start: int = 0) -> list[tuple[int, dict]]:
    """Entries from /v1/log/entries as (index, parsed entry), by default as the auditor."""
    q = f"?from={start}" + (f"&tenant={tenant}" if tenant else "")
    body = api_json(srv, "/v1/log/entries" + q, token or srv.token("auditor"))
    out = []
    for item in body["entries"]:
        entry = json.loads(item["entry"])
        out.append((item["index"], entry))
    return out


def entries_of(srv, start: int, *, type: str | None = None, **match) -> list[dict]:
    """Entries from index `start` on, of `type`, whose fields equal `match`."""
    out = []
    for _, e in log_entries(srv, start=start):
        if type is not None and e.get("type") != type:
            continue
        if all(e.get(k) == v for k, v in match.items()):
            out.append(e)
    return out


def log_size(srv) -> int:
    r = requests.get(srv.admin_url + "/log/checkpoint", timeout=30)
    assert r.status_code == 200, f"GET /log/checkpoint: {r.status_code} {r.text[:200]}"
    lines = r.text.split("\n")
    return int(lines[1])


def wait_until(pred, timeout: float, what: str, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


def start_refused(srv, timeout: float = 60) -> str:
    """Starts `obhut serve` on the server's data dir, expecting it to refuse: a
    non-zero exit, and one `obhut:` line saying why. Returns that line."""
    assert not srv.running()
    r = subprocess.run(
        [str(obhut_bin()), "serve", "--data-dir", str(srv.data_dir), "--s3-addr", f"127.0.0.1:{srv.s3_port}",
         "--admin-addr", f"127.0.0.1:{srv.admin_port}", *srv.extra_args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
        env=clean_env({}),
    )
    assert r.returncode != 0, f"the server started (exit {r.returncode}):\n{r.stderr[-2000:]}"
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("obhut: ")]
    assert len(lines) == 1, f"expected one `obhut:` line saying why, got:\n{r.stderr[-3000:]}"
    assert "panicked" not in r.stderr, r.stderr
    with requests.Session() as s:
        try:
            s.get(f"{srv.admin_url}/v1/health", timeout=2)
        except requests.RequestException:
            pass
        else:
            raise AssertionError("something answers on the admin address after the refusal")
    return lines[0]
