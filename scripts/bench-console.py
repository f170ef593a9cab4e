#!/usr/bin/env python3
"""Console pages at scale, for scripts/bench-console (standard library only).

  bench-console.py buckets ENV_FILE COUNT CONCURRENCY
      creates COUNT buckets through S3 CreateBucket (SigV4-signed with the credentials in the
      demo.env file), CONCURRENCY at a time; prints the rate.
  bench-console.py pages TOKENS_FILE REQUESTS LABEL OUT_JSON
      signs in to the console as each role (a session cookie, as a browser holds it), then asks
      each page REQUESTS times, one request at a time, and records each answer's time; an answer
      that is not 200, or a page that lacks what it must show, fails the run.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import hashlib
import hmac
import http.client
import json
import re
import statistics
import sys
import time
import urllib.parse


def read_env(path: str) -> dict[str, str]:
    out = {}
    with open(path) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                out[k] = v
    return out


def sigv4_headers(method: str, host: str, path: str, region: str, key_id: str, secret: str) -> dict[str, str]:
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = now.strftime("%Y%m%d")
    payload = hashlib.sha256(b"").hexdigest()
    headers = {"host": host, "x-amz-content-sha256": payload, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join([method, path, "", *(f"{k}:{headers[k]}" for k in sorted(headers)), "", signed, payload])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (day, region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "x-amz-content-sha256": payload,
        "x-amz-date": amz_date,
        "Authorization": f"AWS4-HMAC-SHA256 Credential={key_id}/{scope}, SignedHeaders={signed}, Signature={sig}",
    }


def create_buckets(env_file: str, count: int, concurrency: int) -> None:
    env = read_env(env_file)
    url = urllib.parse.urlsplit(env["AWS_ENDPOINT_URL"])
    if url.scheme != "http":
        sys.exit("bench-console.py: the S3 endpoint must be plain http on loopback")
    region = env.get("AWS_REGION", "us-east-1")

    def worker(start: int) -> int:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        made = 0
        for i in range(start, count, concurrency):
            path = f"/console-bench-{i:06d}"
            h = sigv4_headers("PUT", url.netloc, path, region, env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])
            h["Content-Length"] = "0"
            conn.request("PUT", path, headers=h)
            r = conn.getresponse()
            body = r.read()
            if r.status != 200 and b"BucketAlreadyOwnedByYou" not in body:
                raise RuntimeError(f"CreateBucket {path}: {r.status} {body[:300]!r}")
            made += 1
        return made

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        made = sum(pool.map(worker, range(concurrency)))
    took = time.monotonic() - started
    print(f"created {made} buckets in {took:.1f} s ({made / took:.0f}/s, {concurrency} at a time)")


def bearer(token: str) -> str:
    return "obb_" + hmac.new(token.encode(), b"obhut admin bearer v1", hashlib.sha256).hexdigest()


class Session:
    """One browser-like console session over one keep-alive connection."""

    def __init__(self, admin_url: str, token: str):
        u = urllib.parse.urlsplit(admin_url)
        if u.scheme != "http":
            sys.exit("bench-console.py: the admin endpoint must be plain http on loopback")
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        self.cookies: dict[str, str] = {}
        status, page = self.get("/console/sign-in")
        assert status == 200, (status, page[:300])
        csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', page).group(1)
        status, _ = self.request("POST", "/console/sign-in",
                                 urllib.parse.urlencode({"csrf": csrf, "bearer": bearer(token)}),
                                 {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 303, f"sign-in answered {status}"

    def request(self, method: str, path: str, body: str | None = None, headers: dict | None = None):
        h = {"Sec-Fetch-Site": "same-origin", **(headers or {})}
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            self.conn.request(method, path, body=body, headers=h)
            r = self.conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The server closed the connection while it was idle (another session was being
            # measured): a browser opens a new one, and so does this.
            self.conn.close()
            self.conn.request(method, path, body=body, headers=h)
            r = self.conn.getresponse()
        data = r.read().decode("utf-8", "replace")
        for c in r.headers.get_all("Set-Cookie") or []:
            name, _, rest = c.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return r.status, data

    def get(self, path: str):
        return self.request("GET", path)


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def measure_pages(tokens_file: str, requests: int, label: str, out_json: str) -> None:
    env = read_env(tokens_file)
    admin_url = env["OBHUT_ADMIN_URL"]
    tenant = Session(admin_url, env["OBHUT_DEMO_ADMIN_TOKEN"])
    auditor = Session(admin_url, env["OBHUT_AUDITOR_TOKEN"])
    operator = Session(admin_url, env["OBHUT_OPERATOR_TOKEN"])
    status, first = auditor.get("/console/auditor")
    assert status == 200, status
    size = size_hint(first)
    deep = max(0, size - 100)
    pages = [
        ("tenant admin: main page (usage, quota, keys, log's first page)", tenant, "/console/tenant", "log-rows"),
        ("tenant admin: log view, a deep page", tenant, f"/console/tenant?from={deep}", "log-rows"),
        ("tenant admin: log view, filtered by type", tenant, "/console/tenant?type=tenant_added", "log-rows"),
        ("tenant admin: residency of its buckets", tenant, "/console/tenant/residency", "</html>"),
        ("auditor: entries, first page", auditor, "/console/auditor", "served-checkpoint"),
        ("auditor: entries, a deep page", auditor, f"/console/auditor?from={deep}", "served-checkpoint"),
        ("operator: overview", operator, "/console/operator", "</html>"),
    ]
    results = []
    for name, session, path, must in pages:
        status, body = session.get(path)  # warm-up, not counted
        if status != 200 or must not in body:
            raise SystemExit(f"bench-console.py: {path} answered {status} without {must!r}: {body[:300]}")
        times = []
        for _ in range(requests):
            t0 = time.perf_counter()
            status, body = session.get(path)
            times.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                raise SystemExit(f"bench-console.py: {path} answered {status}")
        results.append({"page": name, "path": path, "requests": requests, "bytes": len(body.encode()),
                        "median_ms": statistics.median(times), "p99_ms": pct(times, 99), "max_ms": max(times)})
        print(f"{name:66s} median {results[-1]['median_ms']:7.1f} ms   p99 {results[-1]['p99_ms']:7.1f} ms"
              f"   ({len(body.encode()) // 1024} KiB, {path})", flush=True)
    with open(out_json, "w") as f:
        json.dump({"label": label, "log_size": size, "pages": results}, f, indent=1)


def size_hint(auditor_page: str) -> int:
    """The log's size as the auditor's page shows the served checkpoint (its second line)."""
    m = re.search(r"<pre[^>]*>[^\n]*\n(\d+)\n", auditor_page)
    return int(m.group(1)) if m else 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "buckets":
        create_buckets(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) == 6 and sys.argv[1] == "pages":
        measure_pages(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
    else:
        sys.exit(__doc__)
