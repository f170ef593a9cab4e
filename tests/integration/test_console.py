"""The web console at <admin-url>/console/, through HTTP as a browser sends it:
sign-in with a bearer (the page's script derives it from the token in the browser),
the session cookie's flags, CSRF on every form, the Content-Security-Policy, sessions
that end on sign-out, one page per role with 403 for the others, the operator's page
without tenant data, English and German."""

import json
import os
import re
import time

import requests

from conftest import bearer, new_tenant
from s3helpers import unique_name


def console(server) -> str:
    return f"{server.admin_url}/console"


def sign_in(server, token: str, lang: str | None = None) -> requests.Session:
    """A browser-like session signed in with the bearer derived from `token`."""
    s = requests.Session()
    s.headers["Sec-Fetch-Site"] = "same-origin"
    if lang:
        s.headers["Accept-Language"] = lang
    page = s.get(f"{console(server)}/sign-in", timeout=10)
    assert page.status_code == 200, page.text
    csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text).group(1)
    r = s.post(f"{console(server)}/sign-in", data={"csrf": csrf, "bearer": bearer(token)},
               allow_redirects=False, timeout=10)
    assert r.status_code == 303, (r.status_code, r.text[:500])
    return s


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]{64})"', html).group(1)


def test_sign_in_sets_a_strict_http_only_session_cookie_and_lands_on_the_role_page(server):
    s = requests.Session()
    page = s.get(f"{console(server)}/sign-in", timeout=10)
    r = s.post(f"{console(server)}/sign-in",
               data={"csrf": csrf_of(page.text), "bearer": bearer(server.token("operator"))},
               allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["Location"] == "/console/operator", r.headers
    cookies = [c for c in r.raw.headers.getlist("Set-Cookie") if c.startswith("obhut_console=")]
    assert len(cookies) == 1, r.raw.headers.getlist("Set-Cookie")
    flags = [f.strip() for f in cookies[0].split(";")]
    assert "HttpOnly" in flags and "SameSite=Strict" in flags and "Path=/console" in flags, flags
    # Plain HTTP here: Secure would make the browser drop the cookie (test_listener_tls covers TLS).
    assert "Secure" not in flags
    home = s.get(f"{console(server)}/", timeout=10)
    assert home.status_code == 200 and home.url.endswith("/console/operator"), home.url
    assert "operator" in home.text


def test_every_console_response_forbids_inline_script_and_framing(server):
    s = sign_in(server, server.token("auditor"))
    for path in ("/sign-in", "/auditor", "/operator", "/no-such-page", "/assets/console.js"):
        r = s.get(console(server) + path, timeout=10)
        csp = r.headers.get("Content-Security-Policy", "")
        assert "script-src 'self'" in csp and "default-src 'none'" in csp, (path, csp)
        assert "unsafe-inline" not in csp, csp
        assert "frame-ancestors 'none'" in csp, csp
        assert r.headers.get("X-Frame-Options") == "DENY"
        assert r.headers.get("Cache-Control") == "no-store"
        if r.headers.get("Content-Type", "").startswith("text/html"):
            assert re.search(r"<script(?![^>]*\bsrc=)", r.text) is None, f"inline script on {path}"
            assert not re.search(r"<[^>]+\son[a-z]+=", r.text), f"inline event handler on {path}"


def test_a_form_post_without_the_csrf_token_or_from_another_site_is_refused(server):
    s = sign_in(server, server.token("officer1"))
    page = s.get(f"{console(server)}/officer", timeout=10)
    assert page.status_code == 200
    token = csrf_of(page.text)
    # No token, a wrong token, and the right token sent from another site: all refused, and
    # the session still works afterwards (nothing was signed out).
    for data, site in (({}, "same-origin"), ({"csrf": "0" * 64}, "same-origin"), ({"csrf": token}, "cross-site")):
        r = s.post(f"{console(server)}/sign-out", data=data, headers={"Sec-Fetch-Site": site},
                   allow_redirects=False, timeout=10)
        assert r.status_code == 403, (data, site, r.status_code)
        assert s.get(f"{console(server)}/officer", allow_redirects=False, timeout=10).status_code == 200
    # The sign-in form is protected the same way (no session yet: its own cookie).
    fresh = requests.Session()
    fresh.get(f"{console(server)}/sign-in", timeout=10)
    r = fresh.post(f"{console(server)}/sign-in", data={"csrf": "0" * 64, "bearer": bearer(server.token("operator"))},
                   allow_redirects=False, timeout=10)
    assert r.status_code == 403 and "obhut_console=" not in r.headers.get("Set-Cookie", "")


def test_a_decision_post_needs_the_csrf_token_same_site_and_a_signed_statement(server):
    s = sign_in(server, server.token("officer1"))
    token = csrf_of(s.get(f"{console(server)}/officer", timeout=10).text)
    statement = ('{"principal":"officer1","at_ms":%d,"nonce":"n1","action":"approve_grant","id":"g-0","scope":"x"}'
                 % int(time.time() * 1000))
    signed = {"statement": statement, "signature": "AAAA"}
    for data, site in (({}, "same-origin"), ({"csrf": "0" * 64}, "same-origin"), ({"csrf": token}, "cross-site")):
        r = s.post(f"{console(server)}/decide", data={**signed, **data}, headers={"Sec-Fetch-Site": site},
                   allow_redirects=False, timeout=10)
        assert r.status_code == 403 and "security token" in r.text, (data, site, r.status_code)
    # With the token: an unsigned form is refused by the console, a bad signature by the trustee.
    r = s.post(f"{console(server)}/decide", data={"csrf": token}, allow_redirects=False, timeout=10)
    assert r.status_code == 400 and "no signed statement" in r.text, r.text[:300]
    r = s.post(f"{console(server)}/decide", data={"csrf": token, **signed}, allow_redirects=False, timeout=10)
    assert r.status_code == 403 and "signature is not officer1" in r.text, r.text[:300]
    # Another role's session cannot carry an officer's statement either.
    op = sign_in(server, server.token("operator"))
    op_token = csrf_of(op.get(f"{console(server)}/operator", timeout=10).text)
    r = op.post(f"{console(server)}/decide", data={"csrf": op_token, **signed}, allow_redirects=False, timeout=10)
    assert r.status_code == 403 and "another principal" in r.text, r.text[:300]


def test_sign_out_ends_the_session_on_the_server(server):
    s = sign_in(server, server.token("auditor"))
    cookie = s.cookies.get("obhut_console")
    page = s.get(f"{console(server)}/auditor", timeout=10)
    r = s.post(f"{console(server)}/sign-out", data={"csrf": csrf_of(page.text)}, allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["Location"] == "/console/sign-in"
    # The old cookie, replayed, no longer names a session.
    replay = requests.get(f"{console(server)}/auditor", cookies={"obhut_console": cookie},
                          allow_redirects=False, timeout=10)
    assert replay.status_code == 303 and replay.headers["Location"] == "/console/sign-in"


def test_a_page_of_another_role_answers_403_and_each_role_sees_its_own(server):
    for who, own in (("operator", "operator"), ("officer1", "officer"), ("auditor", "auditor")):
        s = sign_in(server, server.token(who))
        for page in ("operator", "officer", "auditor", "tenant"):
            r = s.get(f"{console(server)}/{page}", allow_redirects=False, timeout=10)
            expected = 200 if page == own else 403
            assert r.status_code == expected, (who, page, r.status_code)
    # Without a session every page sends the browser to sign in.
    r = requests.get(f"{console(server)}/officer", allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["Location"] == "/console/sign-in"


def test_a_token_or_an_unknown_bearer_is_not_a_sign_in(server):
    s = requests.Session()
    page = s.get(f"{console(server)}/sign-in", timeout=10)
    r = s.post(f"{console(server)}/sign-in", data={"csrf": csrf_of(page.text), "bearer": server.token("operator")},
               allow_redirects=False, timeout=10)
    assert r.status_code == 400 and "obhut token bearer" in r.text
    assert server.token("operator") not in r.text, "the token was echoed back"
    page = s.get(f"{console(server)}/sign-in", timeout=10)
    r = s.post(f"{console(server)}/sign-in", data={"csrf": csrf_of(page.text), "bearer": "obb_" + "0" * 64},
               allow_redirects=False, timeout=10)
    assert r.status_code == 401 and "unknown token" in r.text


def test_the_tenant_admin_sees_its_quota_and_keys_and_the_operator_no_bucket_name(server):
    t = new_tenant(server, "con" + os.urandom(4).hex())
    client = server.client(t["AWS_ACCESS_KEY_ID"], t["AWS_SECRET_ACCESS_KEY"])
    bucket = unique_name("console-secret-name")
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="private/report.pdf", Body=b"x" * 1000)
    admin = sign_in(server, t["admin_token"])
    page = admin.get(f"{console(server)}/tenant", timeout=10)
    assert page.status_code == 200
    assert t["AWS_ACCESS_KEY_ID"] in page.text, "the tenant's access key is listed"
    assert t["name"] in page.text
    # The operator's page shows states and counts only.
    op = sign_in(server, server.token("operator")).get(f"{console(server)}/operator", timeout=10)
    assert op.status_code == 200 and "de-fra" in op.text
    for secret in (bucket, "private/report.pdf", t["name"]):
        assert secret not in op.text, f"{secret!r} on the operator's page"


def test_the_console_speaks_german_when_asked(server):
    s = sign_in(server, server.token("officer1"), lang="de-DE,de;q=0.9")
    page = s.get(f"{console(server)}/officer", timeout=10)
    assert '<html lang="de">' in page.text and "Zugriffsfreigaben" in page.text and "Abmelden" in page.text
    # ?lang=en switches and is remembered.
    assert "Sign out" in s.get(f"{console(server)}/officer?lang=en", timeout=10).text
    assert "Sign out" in s.get(f"{console(server)}/officer", timeout=10).text


def log_rows(html: str) -> list[list[str]]:
    """The rows of the tenant page's log table, cell texts."""
    body = re.search(r'<table id="log-rows">.*?<tbody>(.*?)</tbody>', html, re.S)
    if not body:
        return []
    return [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)]


def test_the_tenant_admins_log_view_filters_by_type_bucket_principal_and_time_and_pages(server):
    t = new_tenant(server, "clog" + os.urandom(4).hex())
    client = server.client(t["AWS_ACCESS_KEY_ID"], t["AWS_SECRET_ACCESS_KEY"])
    buckets = [unique_name("log-a"), unique_name("log-b")]
    for b in buckets:
        client.create_bucket(Bucket=b)
        client.put_object(Bucket=b, Key="k", Body=b"x")
    # 55 grant requests by the operator: more than one page of them.
    for i in range(55):
        r = server.cli("access", "request", "--tenant", t["name"], "--bucket", buckets[0 if i < 50 else 1], "--ops", "read",
                       "--duration", "1h", "--reason", f"case {i}", token=server.token("operator"))
        assert r.returncode == 0, r.stderr
    admin = sign_in(server, t["admin_token"])
    page = f"{console(server)}/tenant"

    rows = log_rows(admin.get(page, params={"type": "grant_requested"}, timeout=10).text)
    assert len(rows) == 50 and all(r[2] == "grant_requested" and r[3] == "operator" for r in rows), rows[:3]
    first = admin.get(page, params={"type": "grant_requested"}, timeout=10).text
    nxt = re.search(r'<a href="([^"]+)" id="log-next">', first)
    assert nxt, "no next page after 50 entries"
    last = admin.get(server.admin_url + nxt.group(1).replace("&amp;", "&"), timeout=10).text
    rest = log_rows(last)
    assert len(rest) == 5 and int(rest[0][0]) > int(rows[-1][0]), rest
    # The last page links to no next one.
    assert 'id="log-next"' not in last
    # bucket, principal and time
    only_a = admin.get(page, params={"type": "grant_requested", "bucket": buckets[0]}, timeout=10).text
    assert len(log_rows(only_a)) == 50 and {r[4] for r in log_rows(only_a)} == {buckets[0]}
    # Exactly 50 matches, then only entries that do not match: one page, no link to an empty one.
    assert 'id="log-next"' not in only_a
    releases = log_rows(admin.get(page, params={"type": "key_release"}, timeout=10).text)
    assert releases and all(r[2] == "key_release" for r in releases)
    by_admin = log_rows(admin.get(page, params={"principal": f"{t['name']}-admin"}, timeout=10).text)
    assert by_admin and all(r[3] == f"{t['name']}-admin" for r in by_admin), by_admin
    assert any(r[2] == "access_key_created" for r in by_admin)
    assert log_rows(admin.get(page, params={"since": "2999-01-01"}, timeout=10).text) == []
    assert len(log_rows(admin.get(page, params={"until": "2999-01-01T00:00", "type": "grant_requested"},
                                  timeout=10).text)) == 50
    bad = admin.get(page, params={"since": "yesterday"}, timeout=10)
    assert bad.status_code == 200 and "is not a date" in bad.text and log_rows(bad.text) == []
    # Unfiltered, the page starts with the tenant's own first entry.
    assert log_rows(admin.get(page, timeout=10).text)[0][2] == "tenant_added"


def test_the_tenant_admin_sees_where_each_replica_lies_and_only_its_own(server):
    t = new_tenant(server, "cres" + os.urandom(4).hex())
    other = new_tenant(server, "cres" + os.urandom(4).hex())
    bucket, other_bucket = unique_name("where"), unique_name("elsewhere")
    client = server.client(t["AWS_ACCESS_KEY_ID"], t["AWS_SECRET_ACCESS_KEY"])
    client.create_bucket(Bucket=bucket)
    for k in ("a", "b"):
        client.put_object(Bucket=bucket, Key=k, Body=b"x")
    server.client(other["AWS_ACCESS_KEY_ID"], other["AWS_SECRET_ACCESS_KEY"]).create_bucket(Bucket=other_bucket)
    admin = sign_in(server, t["admin_token"])
    assert "/console/tenant/residency" in admin.get(f"{console(server)}/tenant", timeout=10).text
    page = admin.get(f"{console(server)}/tenant/residency", timeout=10)
    assert page.status_code == 200
    row = re.search(rf"<tr><td>{bucket}</td>(.*?)</tr>", page.text, re.S)
    assert row, page.text[:2000]
    cells = re.findall(r"<td>(.*?)</td>", row.group(1))
    assert cells == ["DE", "2", "2", "de-fra (DE) + de-mgd (DE): 2", "0", "0"], cells
    assert other_bucket not in page.text
    assert "sha256" in page.text
    # Another role's session: 403.
    op = sign_in(server, server.token("operator"))
    assert op.get(f"{console(server)}/tenant/residency", allow_redirects=False, timeout=10).status_code == 403


def test_the_operators_charts_show_requests_and_latency_without_names(server):
    t = new_tenant(server, "cchart" + os.urandom(4).hex())
    client = server.client(t["AWS_ACCESS_KEY_ID"], t["AWS_SECRET_ACCESS_KEY"])
    bucket = unique_name("chart-secret")
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="k", Body=b"x")
    op = sign_in(server, server.token("operator"))
    first = op.get(f"{console(server)}/operator", timeout=10).text
    for _ in range(5):
        client.get_object(Bucket=bucket, Key="k")["Body"].read()
    time.sleep(0.6)
    page = op.get(f"{console(server)}/operator", timeout=10).text
    charts = re.findall(r'(<svg [^>]*class="chart"[^>]*>.*?</svg>)', page, re.S)
    assert len(charts) == 2, page[:1500]
    requests_chart, latency_chart = charts
    got = re.search(r">GetObject</text>.*?>(\d+) \(([\d.]+)/s\)</text>", requests_chart, re.S)
    assert got and int(got.group(1)) >= 5 and float(got.group(2)) > 0, requests_chart
    assert "PutObject" in requests_chart and " ms" in latency_chart
    # Neither page names the bucket or the tenant.
    for text in (first, page):
        assert bucket not in text and t["name"] not in text


def test_the_officer_sees_the_sites_on_a_map_of_their_jurisdiction(server):
    page = sign_in(server, server.token("officer1")).get(f"{console(server)}/officer", timeout=10).text
    svg = re.search(r'<svg xmlns="http://www.w3.org/2000/svg" class="map".*?</svg>', page, re.S)
    assert svg, page[:2000]
    spots = {m.group(1): (float(m.group(2)), float(m.group(3))) for m in
             re.finditer(r'data-site="([^"]+)" data-jurisdiction="DE" cx="([\d.]+)" cy="([\d.]+)"', svg.group(0))}
    # The dev sites: Frankfurt am Main and Magdeburg, the second north-east of the first.
    assert set(spots) >= {"de-fra", "de-mgd"}, spots
    assert spots["de-mgd"][0] > spots["de-fra"][0] and spots["de-mgd"][1] < spots["de-fra"][1]
    assert "<path" in svg.group(0) and "http" not in svg.group(0).replace("http://www.w3.org/2000/svg", "")
    # Germany is drawn among its neighbours, which are drawn too.
    for code in ("DE", "AT", "FR", "PL", "CH"):
        assert f'data-jurisdiction="{code}" d="M' in svg.group(0), code


def history_points(svg: str) -> list[list[tuple[float, float]]]:
    """The runs of points of a history chart's lines."""
    return [[tuple(map(float, p.split(","))) for p in run.split(" ")]
            for run in re.findall(r'<polyline class="series"[^>]* points="([^"]+)"', svg)]


def test_the_operators_history_charts_show_rates_latency_and_errors_over_time(private_server_factory):
    srv = private_server_factory(config="metrics_history_interval_secs = 1\n")
    t = new_tenant(srv, "chist" + os.urandom(4).hex())
    client = srv.client(t["AWS_ACCESS_KEY_ID"], t["AWS_SECRET_ACCESS_KEY"])
    bucket = unique_name("history-secret")
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="k", Body=b"x")
    deadline = time.monotonic() + 30
    history = {}
    while time.monotonic() < deadline:
        for _ in range(10):
            client.get_object(Bucket=bucket, Key="k")["Body"].read()
        time.sleep(0.5)
        history = requests.get(f"{srv.admin_url}/v1/metrics/history", headers=srv.auth("operator"), timeout=10).json()
        busy = [p for p in history["points"] if p["requests_per_s"] > 0]
        if len(history["points"]) >= 3 and len(busy) >= 2:
            break
    assert history["interval_ms"] == 1000 and history["capacity"] == 3601, history
    busy = [p for p in history["points"] if p["requests_per_s"] > 0]
    assert len(busy) >= 2, history
    assert all(p["p50_ms"] is not None and 0 < p["p50_ms"] <= p["p99_ms"] for p in busy), busy
    assert all(p["error_ratio"] == 0 for p in busy), busy
    assert set(history["points"][-1]["site_errors_per_s"]) >= {"de-fra", "de-mgd"}, history["points"][-1]
    # Only those who may read metrics read the history; it names no tenant or bucket.
    assert bucket not in json.dumps(history) and t["name"] not in json.dumps(history)
    admin = requests.get(f"{srv.admin_url}/v1/metrics/history", headers={"Authorization": "Bearer " + bearer(t["admin_token"])},
                         timeout=10)
    assert admin.status_code == 403, admin.text
    assert requests.get(f"{srv.admin_url}/v1/metrics/history", timeout=10).status_code == 401

    page = sign_in(srv, srv.token("operator")).get(f"{console(srv)}/operator", timeout=10).text
    charts = re.findall(r'(<svg [^>]*class="chart history"[^>]*>.*?</svg>)', page, re.S)
    assert len(charts) == 4, page[:2000]
    rate, latency, errors, sites = charts
    runs = history_points(rate)
    assert max(len(r) for r in runs) > 1, rate
    # Requests were made: the line rises above the chart's floor (the largest y) somewhere.
    floor = max(y for r in runs for _, y in r)
    assert any(y < floor for r in runs for _, y in r), rate
    assert history_points(latency) and ">p99<" in latency and ">now<" in rate
    assert ">de-fra<" in sites and ">de-mgd<" in sites and ">5xx %<" in errors
    assert bucket not in page and t["name"] not in page


def test_the_tenant_admin_sees_its_data_on_the_map_and_the_operator_no_tenant_data(server):
    t = new_tenant(server, "cmap" + os.urandom(4).hex())
    bucket = unique_name("mapped")
    client = server.client(t["AWS_ACCESS_KEY_ID"], t["AWS_SECRET_ACCESS_KEY"])
    client.create_bucket(Bucket=bucket)
    for k in ("a", "b", "c"):
        client.put_object(Bucket=bucket, Key=k, Body=b"x")
    page = sign_in(server, t["admin_token"]).get(f"{console(server)}/tenant/residency", timeout=10).text
    svg = re.search(r'<svg xmlns="http://www.w3.org/2000/svg" class="map".*?</svg>', page, re.S)
    assert svg, page[:2000]
    svg = svg.group(0)
    # Its jurisdiction holds its data; each site shows how many of its objects have a replica there.
    de = re.search(r'<path data-jurisdiction="DE" d="[^"]+"[^>]*>', svg).group(0)
    assert 'data-holds="yes"' in de, de
    for site in ("de-fra", "de-mgd"):
        assert re.search(rf'data-site="{site}"[^>]*/><text[^>]*>{site} · DE · active · 3 objects of yours</text>', svg), svg[-1500:]
    fr = re.search(r'<path data-jurisdiction="FR" d="[^"]+"[^>]*>', svg).group(0)
    assert "data-holds" not in fr and "data-allowed" not in fr
    # The operator's page draws the sites on the map too, with no tenant data.
    op = sign_in(server, server.token("operator")).get(f"{console(server)}/operator", timeout=10).text
    op_map = re.search(r'<svg xmlns="http://www.w3.org/2000/svg" class="map".*?</svg>', op, re.S).group(0)
    assert 'data-site="de-fra"' in op_map and "data-holds" not in op_map and "objects of yours" not in op_map
    assert bucket not in op and t["name"] not in op


def test_the_auditors_entries_come_50_a_page_and_the_last_page_links_to_no_next_one(server):
    auditor = sign_in(server, server.token("auditor"))
    def log_size():
        return int(requests.get(f"{server.admin_url}/log/checkpoint", timeout=10).text.split("\n")[1])

    # A log of more than 50 entries, whatever ran before.
    t = new_tenant(server, "apage" + os.urandom(4).hex())
    bucket = unique_name("apage")
    server.client(t["AWS_ACCESS_KEY_ID"], t["AWS_SECRET_ACCESS_KEY"]).create_bucket(Bucket=bucket)
    while log_size() <= 50:
        r = server.cli("access", "request", "--tenant", t["name"], "--bucket", bucket, "--ops", "read",
                       "--duration", "1h", "--reason", "paging", token=server.token("operator"))
        assert r.returncode == 0, r.stderr
    size = log_size()
    assert size > 50, f"the log holds {size} entries: too few to page"
    # Following the next links from the first page: 50 entries a page, in order, every entry of
    # the log once, and the last page links to no next one.
    seen, path = [], "/console/auditor"
    while path:
        page = auditor.get(server.admin_url + path, timeout=10).text
        rows = [int(i) for i in re.findall(r'class="entry" data-index="(\d+)"', page)]
        assert 0 < len(rows) <= 50, (path, rows)
        seen += rows
        nxt = re.search(r'href="(/console/auditor\?from=\d+)"', page)
        path = nxt.group(1) if nxt else None
    assert seen[:size] == list(range(size)), seen[:5]
    tail = auditor.get(f"{console(server)}/auditor", params={"from": size - 1}, timeout=10).text
    assert f'data-index="{size - 1}"' in tail and "/console/auditor?from=" not in tail


def test_a_session_row_swapped_or_edited_in_catalog_db_grants_nothing(server):
    """`obhut serve` keeps sessions in its embedded catalog as gateways do in theirs
    (docs/console.md, "Sessions"): named by the id's hash, sealed, bound to that hash."""
    import hashlib
    import sqlite3

    officer = sign_in(server, server.token("officer1"))
    operator = sign_in(server, server.token("operator"))
    o = hashlib.sha256(officer.cookies.get("obhut_console").encode()).hexdigest()
    p = hashlib.sha256(operator.cookies.get("obhut_console").encode()).hexdigest()
    assert officer.get(f"{console(server)}/officer", allow_redirects=False, timeout=10).status_code == 200

    def edit(sql: str, args: tuple = ()):
        db = sqlite3.connect(server.data_dir / "catalog.db", timeout=30)
        try:
            db.execute(sql, args)
            db.commit()
        finally:
            db.close()

    db = sqlite3.connect(f"file:{server.data_dir / 'catalog.db'}?mode=ro", uri=True)
    try:
        sealed = dict(db.execute("SELECT id_hash, sealed FROM console_sessions WHERE id_hash IN (?, ?)", (o, p)))
    finally:
        db.close()
    assert set(sealed) == {o, p}
    assert bearer(server.token("officer1")).encode() not in sealed[o]
    # The officer's record under the operator's hash: the operator's cookie is no officer.
    edit("UPDATE console_sessions SET sealed = ? WHERE id_hash = ?", (sealed[o], p))
    pc, oc = operator.cookies.get("obhut_console"), officer.cookies.get("obhut_console")
    for page in ("officer", "operator"):
        r = requests.get(f"{console(server)}/{page}", cookies={"obhut_console": pc}, allow_redirects=False,
                         timeout=10)
        assert r.status_code == 303 and r.headers["Location"] == "/console/sign-in", (page, r.status_code)
    # One bit of the officer's own record flipped: refused too.
    flipped = bytearray(sealed[o])
    flipped[30] ^= 1
    edit("UPDATE console_sessions SET sealed = ? WHERE id_hash = ?", (bytes(flipped), o))
    r = requests.get(f"{console(server)}/officer", cookies={"obhut_console": oc}, allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["Location"] == "/console/sign-in", r.status_code
