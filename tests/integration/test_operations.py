"""Operations: Prometheus metrics at <admin-url>/metrics for operators (and
no tenant, bucket or object name in them), /healthz and /readyz on both
listeners without authentication, `healthz` and `readyz` as reserved bucket
names, JSON process logs whose lines carry each S3 request's
x-amz-request-id, and the shipped dashboard and alert rules (promtool)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from conftest import REPO, bearer
from s3helpers import client_error, unique_name, xml_error
from split_helpers import Proc, Split, split  # noqa: F401 (fixture)

SECRET_BUCKET = "secret-bucket-name-xyz"
SECRET_KEY = "secret-object-key-xyz"


def promtool() -> str:
    path = shutil.which("promtool")
    if not path:
        pytest.fail(
            "required tool 'promtool' not found on PATH (Debian package 'prometheus'); run scripts/test to install it",
            pytrace=False,
        )
    return path


def get(url: str, **kw) -> requests.Response:
    return requests.get(url, timeout=30, **kw)


def scrape(srv, who: str = "operator", **headers) -> requests.Response:
    r = get(f"{srv.admin_url}/metrics", headers={**srv.auth(who), **headers})
    assert r.status_code == 200, f"/metrics as {who}: {r.status_code} {r.text[:300]}"
    return r


def readiness(srv) -> list[tuple[str, requests.Response]]:
    return [(base, get(f"{base}/readyz")) for base in (srv.s3_url, srv.admin_url)]


def sample(text: str, name: str, **labels) -> float | None:
    """The value of the sample `name{labels}` (labels in any order), if present."""
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(3))
    return None


def test_health_endpoints_on_both_listeners_need_no_authentication(private_server):
    srv = private_server
    for base in (srv.s3_url, srv.admin_url):
        r = get(f"{base}/healthz")
        assert r.status_code == 200 and r.json() == {"status": "alive"}, f"{base}/healthz: {r.status_code} {r.text}"
        assert r.headers["content-type"].startswith("application/json")
    for base, r in readiness(srv):
        assert r.status_code == 200, f"{base}/readyz: {r.status_code} {r.text}"
        body = r.json()
        assert body["status"] == "ready" and body["trustee"] == "unsealed" and body["catalog"] == "ok", body
        assert {s["id"]: s["state"] for s in body["sites"]} == {"de-fra": "active", "de-mgd": "active"}, body
        assert "demo" not in r.text, f"{base}/readyz names a tenant: {r.text}"


def test_health_paths_are_reserved_bucket_names(server):
    s3, raw = server.client(), server.raw()
    for name in ("healthz", "readyz"):
        code, status, _ = client_error(s3.create_bucket, Bucket=name)
        assert (code, status) == ("InvalidBucketName", 400), f"CreateBucket {name}: {code} {status}"
        # a signed request to the path is still the health check, never a bucket operation
        r = raw.request("GET", name)
        assert r.status_code == 200 and "status" in r.json(), f"GET /{name}: {r.status_code} {r.text[:200]}"
    # names that only begin like them are ordinary buckets
    ok = unique_name("healthz")
    s3.create_bucket(Bucket=ok)
    s3.delete_bucket(Bucket=ok)


def test_a_sealed_trustee_makes_the_process_unready_not_dead(private_server):
    srv = private_server
    shares = [ln.strip() for ln in (srv.data_dir / "trustee" / "dev-unseal-shares").read_text().splitlines() if ln.strip()]
    assert srv.cli_ok("trustee", "seal", token=srv.token("officer1")).strip().startswith("sealed")
    for base, r in readiness(srv):
        assert r.status_code == 503, f"{base}/readyz while sealed: {r.status_code} {r.text}"
        body = r.json()
        assert body["status"] == "unready" and body["trustee"] == "sealed" and body["catalog"] == "ok", body
        assert len(body["sites"]) == 2, body
    for base in (srv.s3_url, srv.admin_url):
        assert get(f"{base}/healthz").status_code == 200, f"{base}/healthz while sealed"
    text = scrape(srv).text
    assert sample(text, "obhut_trustee_sealed") == 1 and sample(text, "obhut_trustee_reachable") == 1, text[-2000:]

    for share, who in zip(shares, ("officer1", "officer2")):
        srv.cli_ok("trustee", "unseal", share, token=srv.token(who))
    for base, r in readiness(srv):
        assert r.status_code == 200, f"{base}/readyz after unseal: {r.status_code} {r.text}"
    assert sample(scrape(srv).text, "obhut_trustee_sealed") == 0


def test_a_site_down_is_reported_but_leaves_the_process_ready(private_server):
    srv = private_server
    srv.cli_ok("site", "set-state", "de-mgd", "down", token=srv.token("officer1"))
    for base, r in readiness(srv):
        assert r.status_code == 200, f"{base}/readyz with a site down: {r.status_code} {r.text}"
        sites = {s["id"]: s["state"] for s in r.json()["sites"]}
        assert sites == {"de-fra": "active", "de-mgd": "down"}, f"{base}/readyz: {r.text}"
    text = scrape(srv).text
    assert sample(text, "obhut_site_state", site="de-mgd", state="down") == 1, text[-3000:]
    assert sample(text, "obhut_site_state", site="de-fra", state="active") == 1
    assert sample(text, "obhut_sites", state="down") == 1
    srv.cli_ok("site", "set-state", "de-mgd", "active", token=srv.token("officer1"))


def test_metrics_are_for_operators_and_name_no_tenant_data(private_server, tmp_path):
    srv = private_server
    # a quota, so that the quota metrics (which the alert rules use) are served
    srv.cli_ok("tenant", "quota", "demo", "--max-bytes", "1GiB", token=srv.token("officer1"))
    s3 = srv.client()
    s3.create_bucket(Bucket=SECRET_BUCKET)
    s3.put_object(Bucket=SECRET_BUCKET, Key=SECRET_KEY, Body=b"x" * 4096)
    assert s3.get_object(Bucket=SECRET_BUCKET, Key=SECRET_KEY)["Body"].read() == b"x" * 4096
    s3.list_objects_v2(Bucket=SECRET_BUCKET, Prefix="secret-")
    client_error(s3.get_object, Bucket=SECRET_BUCKET, Key="secret-missing-key-xyz")

    # refused without a token, with a tenant admin's token, with an unknown one
    r = get(f"{srv.admin_url}/metrics")
    assert r.status_code == 401 and r.json()["error"] == "unauthorized", f"{r.status_code} {r.text}"
    r = get(f"{srv.admin_url}/metrics", headers=srv.auth("demo_admin"))
    assert r.status_code == 403 and r.json()["error"] == "forbidden", f"{r.status_code} {r.text}"
    r = get(f"{srv.admin_url}/metrics", headers={"Authorization": "Bearer obb_" + "0" * 43})
    assert r.status_code == 401, f"{r.status_code} {r.text}"

    r = scrape(srv)
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4"), r.headers["content-type"]
    text = r.text
    for name in (SECRET_BUCKET, SECRET_KEY, "secret-", "demo"):
        assert name not in text, f"/metrics names {name!r}"
    assert "# HELP obhut_s3_requests_total " in text and "# TYPE obhut_s3_requests_total counter" in text
    assert sample(text, "obhut_s3_requests_total", op="PutObject", status="2xx") >= 1
    assert sample(text, "obhut_s3_requests_total", op="GetObject", status="4xx") >= 1
    assert sample(text, "obhut_s3_request_duration_seconds_count", op="GetObject") >= 2
    assert sample(text, "obhut_s3_received_bytes_total") >= 4096
    assert sample(text, "obhut_s3_sent_bytes_total") >= 4096
    for site in ("de-fra", "de-mgd"):
        assert sample(text, "obhut_site_write_duration_seconds_count", site=site) >= 1, site
    assert sum(sample(text, "obhut_site_read_duration_seconds_count", site=s) or 0 for s in ("de-fra", "de-mgd")) >= 1
    assert sample(text, "obhut_key_releases_total", justification="customer") >= 1
    assert sample(text, "obhut_key_cache_hits_total") >= 1
    assert sample(text, "obhut_key_cache_misses_total") >= 1
    assert sample(text, "obhut_trustee_sealed") == 0 and sample(text, "obhut_catalog_up") == 1
    assert sample(text, "obhut_log_entries") >= 1
    assert sample(text, "obhut_log_checkpoint_age_seconds") >= 0
    assert sample(text, "obhut_repair_backlog_objects") == 0 and sample(text, "obhut_repair_queued_objects") == 0

    # promtool accepts the exposition
    path = tmp_path / "metrics.txt"
    path.write_text(text)
    with path.open() as f:
        check = subprocess.run([promtool(), "check", "metrics"], stdin=f, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, f"promtool check metrics: {check.stdout}{check.stderr}"

    # OpenMetrics for scrapers that ask for it; the same for the older path /v1/metrics
    om = scrape(srv, Accept="application/openmetrics-text; version=1.0.0").text
    assert om.endswith("# EOF\n") and "obhut_s3_requests_total{" in om
    assert get(f"{srv.admin_url}/v1/metrics", headers=srv.auth("auditor")).status_code == 200

    # every metric the shipped dashboard and alert rules use exists
    base_names = {re.sub(r"_(bucket|count|sum)$", "", n) for n in re.findall(r"^([a-z0-9_]+)(?:\{| )", text, re.M)}
    used = set()
    for doc in ("grafana-dashboard.json", "alerts.yml"):
        used |= set(re.findall(r"\bobhut_[a-z0-9_]+", (REPO / "docs" / "monitoring" / doc).read_text()))
    used = {re.sub(r"_(bucket|count|sum)$", "", n) for n in used}
    assert used and used <= base_names, f"unknown metrics in docs/monitoring: {sorted(used - base_names)}"


def test_shipped_alert_rules_and_dashboard_are_valid():
    rules = REPO / "docs" / "monitoring" / "alerts.yml"
    check = subprocess.run([promtool(), "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, f"promtool check rules: {check.stdout}{check.stderr}"
    text = rules.read_text()
    for alert in ("ObhutSiteDown", "ObhutTrusteeSealed", "ObhutLogCheckpointTooOld", "ObhutRepairBacklogGrowing",
                  "ObhutQuotaNearFull"):
        assert f"alert: {alert}" in text, alert
    dash = json.loads((REPO / "docs" / "monitoring" / "grafana-dashboard.json").read_text())
    assert dash["panels"] and all("expr" in t for p in dash["panels"] for t in p.get("targets", []))


def test_metrics_can_be_turned_off(private_server_factory):
    srv = private_server_factory(config="metrics = false\n")
    s3 = srv.client()
    bucket = unique_name("nometrics")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    r = get(f"{srv.admin_url}/metrics", headers=srv.auth("operator"))
    assert r.status_code == 404 and "metrics = false" in r.json()["message"], f"{r.status_code} {r.text}"
    assert get(f"{srv.s3_url}/readyz").status_code == 200


def json_log_lines(path: Path) -> list[dict]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip() or line.startswith("====="):
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"a log line is not JSON: {line!r}", pytrace=False)
    return out


def test_json_logs_carry_the_request_id(private_server_factory):
    srv = private_server_factory(config='log_format = "json"\naccess_log = true\n')
    s3, raw = srv.client(), srv.raw()
    s3.create_bucket(Bucket=SECRET_BUCKET)
    put = raw.request("PUT", SECRET_BUCKET, SECRET_KEY, body=b"data" * 1024)
    assert put.status_code == 200, put.text
    got = raw.request("GET", SECRET_BUCKET, SECRET_KEY)
    missing = raw.request("GET", SECRET_BUCKET, "secret-missing-key-xyz")
    assert xml_error(missing)[0] == "NoSuchKey"
    ids = [r.headers.get("x-amz-request-id") for r in (put, got, missing)]
    assert all(ids) and len(set(ids)) == 3, f"x-amz-request-id: {ids}"

    lines = json_log_lines(srv.log_path)
    for rid, op, status in zip(ids, ("PutObject", "GetObject", "GetObject"), (200, 200, 404)):
        mine = [ln for ln in lines if ln.get("span", {}).get("request_id") == rid]
        assert mine, f"no log line carries request id {rid}; {len(lines)} lines"
        done = [ln for ln in mine if ln["fields"].get("message") == "s3 request"]
        assert done and done[0]["fields"]["op"] == op and done[0]["fields"]["status"] == status, mine
    log = srv.log_path.read_text(errors="replace")
    for name in (SECRET_BUCKET, SECRET_KEY, "secret-missing-key-xyz"):
        assert name not in log, f"the info-level log names {name!r}"


def test_the_access_log_is_off_unless_asked_for(private_server_factory):
    srv = private_server_factory(config='log_format = "json"\n')
    s3, raw = srv.client(), srv.raw()
    s3.create_bucket(Bucket=SECRET_BUCKET)
    put = raw.request("PUT", SECRET_BUCKET, SECRET_KEY, body=b"data")
    got = raw.request("GET", SECRET_BUCKET, SECRET_KEY)
    assert put.status_code == 200 and got.status_code == 200, (put.text, got.text)
    assert got.headers.get("x-amz-request-id"), "a response without x-amz-request-id"
    lines = json_log_lines(srv.log_path)
    assert lines, "the server wrote no JSON log lines at all"
    per_request = [ln for ln in lines if ln.get("fields", {}).get("message") == "s3 request"]
    assert not per_request, f"access log lines without access_log: {per_request[:3]}"


def test_gateway_and_trustee_processes_log_json_and_report_an_unreachable_trustee(split: Split):
    s = split
    s.trustee = Proc(
        "obhut trustee",
        ["trustee", "--config", str(s.trustee_config()), "--log-format", "json"],
        s.base / "trustee.log",
    )
    s.start_trustee()
    config = s.gateway_config()
    config.write_text('log_format = "json"\naccess_log = true\n' + config.read_text())
    s.start_gateway(config)

    s3 = s.s3()
    s3.create_bucket(Bucket=SECRET_BUCKET)
    s3.put_object(Bucket=SECRET_BUCKET, Key=SECRET_KEY, Body=b"through the remote trustee")
    rid = s3.get_object(Bucket=SECRET_BUCKET, Key=SECRET_KEY)["ResponseMetadata"]["RequestId"]
    for base in (s.s3_url, s.admin_url):
        r = get(f"{base}/readyz")
        assert r.status_code == 200 and r.json()["trustee"] == "unsealed", f"{base}/readyz: {r.status_code} {r.text}"

    op = {"Authorization": f"Bearer {bearer(s.token('operator'))}"}
    text = get(f"{s.admin_url}/metrics", headers=op).text
    assert sample(text, "obhut_key_releases_total", justification="customer") >= 1, text[-2000:]
    assert "obhut_log_checkpoint_age_seconds" not in text, "a gateway without the log reports its age"

    gateway_lines = json_log_lines(s.gateway.log_path)
    assert any(ln.get("span", {}).get("request_id") == rid for ln in gateway_lines), f"no gateway log line for {rid}"
    assert json_log_lines(s.trustee.log_path), "the trustee wrote no JSON log lines"
    for proc in (s.gateway, s.trustee):
        log = proc.log_text()
        assert SECRET_BUCKET not in log and SECRET_KEY not in log, f"{proc.name}'s log names the bucket or key"

    s.trustee.kill9()
    for base in (s.s3_url, s.admin_url):
        r = get(f"{base}/readyz")
        assert r.status_code == 503 and r.json()["trustee"] == "unreachable", f"{base}/readyz: {r.status_code} {r.text}"
        assert get(f"{base}/healthz").status_code == 200
    text = get(f"{s.admin_url}/metrics", headers=op).text
    assert sample(text, "obhut_trustee_reachable") == 0 and sample(text, "obhut_trustee_sealed") == 1
