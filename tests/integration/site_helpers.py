"""Helpers for the site, residency and site-fault tests: the site registry,
residency policies, repair progress and residency reports through the admin
CLI and API; real mounts (tmpfs, read-only remounts) for fault injection; a
second `obhut serve` as an S3 site; scans of site directories.

Everything here goes through obhut's public interfaces (CLI, admin API, S3)
and the documented layout of local sites (SITE/site.json, SITE/blobs/<2 hex>/
<32 hex>, SITE/tmp/).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import botocore.exceptions
import pytest
import requests

from conftest import ObhutServer, bearer
from s3helpers import unique_name

BLOB_ROOT = "blobs"
MIB = 1024 * 1024


def cmd(args) -> str:
    return "obhut " + " ".join(args)


# ---------------------------------------------------------------- root, mounts


def require_root() -> None:
    """Fault injection mounts tmpfs and remounts it read-only; that needs root.
    A test that cannot run is a failure, never a skip."""
    if os.geteuid() != 0:
        pytest.fail(
            "this test needs root (it mounts a tmpfs and remounts it read-only to break a site; "
            "chmod does not stop root, so the tests run as root)",
            pytrace=False,
        )


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60)


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "64m"):
    """A tmpfs mounted at `path` for the duration; always unmounted."""
    require_root()
    path.mkdir(parents=True, exist_ok=True)
    r = _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))
    assert r.returncode == 0, f"mount -t tmpfs at {path} failed: {r.stderr.strip()}"
    try:
        yield path
    finally:
        unmount(path)


def unmount(path: Path) -> None:
    """Unmounts `path` if something is mounted there (lazily if busy)."""
    if not os.path.ismount(path):
        return
    r = _run("umount", str(path))
    if r.returncode != 0 and os.path.ismount(path):
        _run("umount", "-l", str(path))


def remount(path: Path, mode: str) -> None:
    """`mount -o remount,ro|rw PATH`."""
    r = _run("mount", "-o", f"remount,{mode}", str(path))
    assert r.returncode == 0, f"mount -o remount,{mode} {path} failed: {r.stderr.strip()}"


# ---------------------------------------------------------------- admin API and CLI


def api(srv: ObhutServer, method: str, path: str, who: str | None = "officer1", token: str | None = None, **kw):
    headers = dict(kw.pop("headers", {}))
    tok = token if token is not None else (srv.token(who) if who else None)
    if tok is not None:
        headers["Authorization"] = f"Bearer {bearer(tok)}"
    return requests.request(method, srv.admin_url + path, headers=headers, timeout=60, **kw)


def run_ok(srv: ObhutServer, token: str, *args: str, timeout: float = 120) -> str:
    r = srv.cli(*args, token=token, timeout=timeout)
    assert r.returncode == 0, (
        f"`{cmd(args)}` exited {r.returncode}: stderr {r.stderr.strip()!r} stdout {r.stdout.strip()[-2000:]!r}"
        f"\n{srv.log_tail(15)}"
    )
    return r.stdout


def run_fail(srv: ObhutServer, token: str | None, *args: str, status: int | None = None,
             says: str | list[str] | None = None, timeout: float = 120) -> str:
    """A CLI command that must fail: non-zero exit, one line on stderr, no panic;
    optionally the HTTP status it reports and phrases the message must contain.
    Returns stderr."""
    r = srv.cli(*args, token=token, timeout=timeout)
    what = f"`{cmd(args)}`"
    assert r.returncode != 0, f"{what}: expected failure, exit 0 with stdout {r.stdout!r}"
    low = r.stderr.lower()
    assert "panicked" not in low and "backtrace" not in low, f"{what} panicked: {r.stderr}"
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) >= 1, f"{what} failed without a message (stdout {r.stdout!r})"
    if status is not None:
        assert f"(HTTP {status})" in r.stderr, f"{what}: expected HTTP {status}: {r.stderr.strip()!r}"
    for phrase in ([says] if isinstance(says, str) else (says or [])):
        assert phrase.lower() in low, f"{what}: the error should say {phrase!r}: {r.stderr.strip()!r}"
    return r.stderr


def site_add_fs(srv: ObhutServer, site: str, jurisdiction: str, path: Path, location: str = "test rack",
                who: str = "officer1") -> str:
    return run_ok(srv, srv.token(who), "site", "add", site, "--jurisdiction", jurisdiction,
                  "--location", location, "--fs", str(path))


def set_state(srv: ObhutServer, site: str, state: str, who: str = "officer1") -> str:
    return run_ok(srv, srv.token(who), "site", "set-state", site, state)


def sites(srv: ObhutServer, who: str = "officer1") -> dict[str, dict]:
    r = api(srv, "GET", "/v1/sites", who)
    assert r.status_code == 200, f"GET /v1/sites: {r.status_code} {r.text[:300]}"
    return {s["id"]: s for s in r.json()}


def site_list_rows(srv: ObhutServer, who: str = "officer1") -> dict[str, dict]:
    """`obhut site list` parsed: {id: {jur, state, reachable, replicas, backend}}."""
    out = run_ok(srv, srv.token(who), "site", "list")
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert lines and lines[0].split()[:6] == ["ID", "JUR", "STATE", "REACHABLE", "REPLICAS", "BACKEND"], (
        f"`obhut site list` header should be ID JUR STATE REACHABLE REPLICAS BACKEND: {out!r}"
    )
    rows = {}
    for ln in lines[1:]:
        parts = ln.split(None, 5)
        assert len(parts) == 6, f"odd `site list` row {ln!r}"
        rows[parts[0]] = {"jur": parts[1], "state": parts[2], "reachable": parts[3],
                          "replicas": int(parts[4]), "backend": parts[5]}
    return rows


def policy(srv: ObhutServer, tenant: str, *, jurisdiction: str | None = None, min_sites: int | None = None,
           degraded: str | None = None, who: str = "officer1") -> str:
    args = ["tenant", "policy", tenant]
    if jurisdiction is not None:
        args += ["--jurisdiction", jurisdiction]
    if min_sites is not None:
        args += ["--min-sites", str(min_sites)]
    if degraded is not None:
        args += ["--degraded-writes", degraded]
    return run_ok(srv, srv.token(who), *args)


def repair_status(srv: ObhutServer, who: str = "officer1") -> dict:
    r = api(srv, "GET", "/v1/repair", who)
    assert r.status_code == 200, f"GET /v1/repair: {r.status_code} {r.text[:300]}"
    return r.json()


def wait_repair_idle(srv: ObhutServer, timeout: float = 60) -> dict:
    """Waits until no repair pass is running; returns the status."""
    deadline = time.monotonic() + timeout
    while True:
        st = repair_status(srv)
        if st["state"] != "running":
            return st
        if time.monotonic() > deadline:
            raise AssertionError(f"a repair pass is still running after {timeout}s: {st}\n{srv.log_tail(20)}")
        time.sleep(0.1)


def wait_until(pred, timeout: float, what: str, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


def residency(srv: ObhutServer, tenant: str | None = None, verify: bool = False, who: str = "officer1",
              token: str | None = None) -> tuple[dict, dict]:
    """GET /v1/residency: (the response with its attestation, the parsed report)."""
    q = []
    if tenant:
        q.append(f"tenant={tenant}")
    if verify:
        q.append("verify=true")
    path = "/v1/residency" + ("?" + "&".join(q) if q else "")
    r = api(srv, "GET", path, who, token=token)
    assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text[:500]}"
    body = r.json()
    return body, json.loads(body["report"])


def bucket_report(report: dict, tenant: str, bucket: str) -> dict:
    for t in report["tenants"]:
        if t["tenant"] == tenant:
            for b in t["buckets"]:
                if b["bucket"] == bucket:
                    return b
            raise AssertionError(f"no bucket {bucket} of tenant {tenant} in the residency report: {t}")
    raise AssertionError(f"no tenant {tenant} in the residency report: {report}")


def all_buckets(report: dict):
    for t in report["tenants"]:
        for b in t["buckets"]:
            yield t["tenant"], b


# ---------------------------------------------------------------- site directories


def site_blobs(site_dir: Path) -> set[str]:
    """Blob ids (32 hex) stored under a local site."""
    root = site_dir / BLOB_ROOT
    if not root.is_dir():
        return set()
    return {p.name for p in root.rglob("*") if p.is_file()}


def site_files(site_dir: Path) -> list[str]:
    """Every file (not directory) under a site directory, relative."""
    if not site_dir.exists():
        return []
    return sorted(str(p.relative_to(site_dir)) for p in site_dir.rglob("*") if not p.is_dir())


def blob_file(site_dir: Path, blob: str) -> Path:
    return site_dir / BLOB_ROOT / blob[:2] / blob


# ---------------------------------------------------------------- S3 helpers


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def payload(key: str, size: int) -> bytes:
    """Deterministic bytes for a key (so a test can check content without keeping it)."""
    out = bytearray()
    seed = key.encode()
    i = 0
    while len(out) < size:
        out += hashlib.sha256(seed + i.to_bytes(8, "big")).digest()
        i += 1
    return bytes(out[:size])


def put_status(srv: ObhutServer, bucket: str, key: str, body: bytes, access_key: str | None = None,
               secret_key: str | None = None):
    """PUT through the raw client: (status, S3 error code, message)."""
    from s3helpers import xml_error

    r = srv.raw(access_key, secret_key).request("PUT", bucket, key, body=body, timeout=120)
    if r.status_code == 200:
        return 200, None, ""
    code, msg = xml_error(r)
    return r.status_code, code, msg


def exists(client, bucket: str, key: str) -> bool:
    try:
        client.head_object(Bucket=bucket, Key=key)
        return True
    except botocore.exceptions.ClientError as e:
        if e.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
            return False
        raise


def listed(client, bucket: str) -> set[str]:
    keys, token = set(), None
    while True:
        args = {"Bucket": bucket}
        if token:
            args["ContinuationToken"] = token
        page = client.list_objects_v2(**args)
        keys |= {o["Key"] for o in page.get("Contents", [])}
        if not page.get("IsTruncated"):
            return keys
        token = page["NextContinuationToken"]


def new_bucket(client, prefix: str = "b") -> str:
    name = unique_name(prefix)
    client.create_bucket(Bucket=name)
    return name


# ---------------------------------------------------------------- a second obhut as an S3 site


def s3_site_server(factory) -> dict:
    """Starts another `obhut serve` (its own ports and data dir) and makes a
    bucket there with its demo credentials: an S3 cluster to use as a site."""
    other = factory()
    bucket = unique_name("site")
    other.client().create_bucket(Bucket=bucket)
    return {
        "server": other,
        "url": other.s3_url,
        "bucket": bucket,
        "access_key": other.demo["AWS_ACCESS_KEY_ID"],
        "secret_key": other.demo["AWS_SECRET_ACCESS_KEY"],
        "region": other.demo["AWS_REGION"],
    }


def add_s3_site(srv: ObhutServer, site: str, remote: dict, jurisdiction: str = "DE", secret_via_env: bool = True,
                who: str = "officer1"):
    args = ["site", "add", site, "--jurisdiction", jurisdiction, "--location", "Berlin (S3 cluster)",
            "--s3", remote["url"], "--bucket", remote["bucket"], "--region", remote["region"],
            "--access-key", remote["access_key"]]
    env = None
    if secret_via_env:
        env = {"OBHUT_SITE_SECRET_KEY": remote["secret_key"]}
    else:
        args += ["--secret-key", remote["secret_key"]]
    return srv.cli(*args, token=srv.token(who), env=env)


def remote_keys(remote: dict) -> list[str]:
    """Object keys in the S3 site's bucket (read with the remote's own credentials)."""
    client = remote["server"].client()
    return sorted(listed(client, remote["bucket"]))
