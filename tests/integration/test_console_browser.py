"""The web console in a real browser: Debian's Chromium, headless, driven by Playwright
for Python (with the system Chromium as its executable; nothing is downloaded).

Each role signs in by typing its token into the sign-in form: the page's script derives
the bearer in the browser (so the token never reaches the server) and the role's page
renders without a Content-Security-Policy violation. A page of another role answers 403;
a form posted from another site does not sign anyone out; the operator's page shows no
bucket name. With OBHUT_CONSOLE_SCREENSHOTS=DIR, each role's page is saved there as PNG
(docs/console/ holds the ones README shows)."""

import http.server
import os
import re
import shutil
import threading
from pathlib import Path

import pytest

from conftest import new_tenant
from s3helpers import unique_name

CHROMIUM = "/usr/bin/chromium"
# The closed network: no component updates, no background lookups (they fail slowly here).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail(f"Chromium ({CHROMIUM}, Debian package chromium) is not installed: scripts/test installs it",
                    pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


class Visit:
    """A fresh browser context that records CSP violations and script errors."""

    def __init__(self, browser, lang="en-GB"):
        self.context = browser.new_context(locale=lang, viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", lambda m: self.problems.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))

    def sign_in(self, server, token: str) -> None:
        self.page.goto(f"{server.admin_url}/console/")
        assert self.page.url.endswith("/console/sign-in"), self.page.url
        self.page.fill("#bearer", token)
        with self.page.expect_navigation():
            self.page.click("button[type=submit]")

    def close(self):
        self.context.close()


def screenshot(page, name: str) -> None:
    target = os.environ.get("OBHUT_CONSOLE_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(target) / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("who,page_name", [
    ("officer1", "officer"), ("operator", "operator"), ("auditor", "auditor"),
])
def test_each_role_signs_in_with_its_token_and_sees_its_page(server, browser, who, page_name):
    token = server.token(who)
    requests_seen: list[str] = []
    v = Visit(browser)
    v.page.on("request", lambda r: requests_seen.append(r.post_data or ""))
    try:
        v.sign_in(server, token)
        assert v.page.url.endswith(f"/console/{page_name}"), v.page.url
        assert v.page.text_content("#principal") == who
        assert not any(token in body for body in requests_seen), "the token left the browser"
        assert any("bearer=obb_" in body for body in requests_seen), requests_seen
        assert v.problems == [], v.problems
        screenshot(v.page, page_name)
        # Another role's page: 403, in the browser too.
        other = "auditor" if page_name != "auditor" else "officer"
        resp = v.page.goto(f"{server.admin_url}/console/{other}")
        assert resp.status == 403
    finally:
        v.close()


def test_the_tenant_admin_page_and_the_operator_page_without_bucket_names(server, browser):
    t = new_tenant(server, "cb" + os.urandom(4).hex())
    client = server.client(t["AWS_ACCESS_KEY_ID"], t["AWS_SECRET_ACCESS_KEY"])
    bucket = unique_name("browser-secret")
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="k", Body=b"x" * 4096)
    v = Visit(browser)
    try:
        v.sign_in(server, t["admin_token"])
        assert v.page.url.endswith("/console/tenant")
        assert t["AWS_ACCESS_KEY_ID"] in v.page.content()
        assert v.problems == [], v.problems
        screenshot(v.page, "tenant")
    finally:
        v.close()
    v = Visit(browser)
    try:
        v.sign_in(server, server.token("operator"))
        text = v.page.content()
        assert "de-fra" in text and bucket not in text and t["name"] not in text
    finally:
        v.close()


def section_text(page, title: str) -> str:
    """The text of the page's section whose heading is `title`."""
    sec = page.locator("section", has=page.locator("h2", has_text=title))
    assert sec.count() == 1, f"no section {title!r}"
    return sec.inner_text()


def test_the_operator_page_shows_alerts_gateways_progress_and_a_site_down(private_server, browser, tmp_path):
    import time

    from site_helpers import site_add_fs

    srv = private_server
    t = new_tenant(srv, "ca" + os.urandom(4).hex())
    client = srv.client(t["AWS_ACCESS_KEY_ID"], t["AWS_SECRET_ACCESS_KEY"])
    bucket = unique_name("alert-secret")
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="k", Body=b"x" * 4096)
    ber = tmp_path / "de-ber"
    site_add_fs(srv, "de-ber", "DE", ber)
    v = Visit(browser)
    away = tmp_path / "de-ber.gone"
    try:
        v.sign_in(srv, srv.token("operator"))
        assert v.page.url.endswith("/console/operator"), v.page.url
        # The alerts come first; nothing is down yet.
        assert v.page.locator("h2").first.inner_text() == "Alerts"
        assert "ObhutSiteDown" not in section_text(v.page, "Alerts")
        # Repair and scrubbing: two progress bars, each with its figure.
        bars = v.page.locator("progress")
        assert bars.count() == 2, v.page.content()[:2000]
        for i in range(2):
            assert int(bars.nth(i).get_attribute("max")) >= int(bars.nth(i).get_attribute("value")) >= 0
        repair = section_text(v.page, "Repair")
        assert re.search(r"Repair pass: \d+ / \d+ \(\d+ %\)", repair), repair
        assert re.search(r"Scrubbing pass: \d+ / \d+ \(\d+ %\)", repair), repair
        # This process, in the registry: ready and holding the lease on background work.
        gateways = section_text(v.page, "Gateways and workers")
        assert "holder" in gateways and "gateway-heartbeat" in gateways, gateways
        # A site whose directory vanishes is down at its next health check: the alert shows.
        ber.rename(away)
        alerts = ""
        for _ in range(60):
            v.page.reload()
            alerts = section_text(v.page, "Alerts")
            if "ObhutSiteDown" in alerts:
                break
            time.sleep(1)
        assert "ObhutSiteDown" in alerts and "critical" in alerts and "de-ber" in alerts, alerts
        text = v.page.content()
        assert bucket not in text and t["name"] not in text, "a tenant's names on the operator page"
        assert v.problems == [], v.problems
        screenshot(v.page, "operator-alerts")
    finally:
        v.close()
        if away.exists():
            away.rename(ber)


def test_a_form_posted_from_another_site_signs_nobody_out(server, browser, tmp_path):
    # A page on another origin (another port is another site) posts the sign-out form.
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "index.html").write_text(
        f'<form id="f" method="post" action="{server.admin_url}/console/sign-out">'
        '<input name="csrf" value="guess"></form>'
        '<script>document.getElementById("f").submit()</script>')
    handler = lambda *a, **kw: http.server.SimpleHTTPRequestHandler(*a, directory=str(evil), **kw)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    v = Visit(browser)
    try:
        v.sign_in(server, server.token("auditor"))
        attack = v.context.new_page()
        attack.goto(f"http://localhost:{httpd.server_address[1]}/index.html")
        attack.wait_for_load_state()
        assert "/console/sign-out" in attack.url or attack.url.endswith("/console/sign-in"), attack.url
        # The post was refused (no session cookie is sent cross-site, and no token matched):
        # the auditor is still signed in.
        v.page.goto(f"{server.admin_url}/console/auditor")
        assert v.page.url.endswith("/console/auditor") and v.page.text_content("#principal") == "auditor"
    finally:
        v.close()
        httpd.shutdown()


def test_the_console_in_german(server, browser):
    v = Visit(browser, lang="de-DE")
    try:
        v.sign_in(server, server.token("officer1"))
        assert v.page.get_attribute("html", "lang") == "de"
        assert "Zugriffsfreigaben" in v.page.content()
        v.page.click("text=English")
        assert "Grants" in v.page.content() and v.page.get_attribute("html", "lang") == "en"
    finally:
        v.close()
