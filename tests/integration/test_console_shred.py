"""Crypto-shred with its quorum state in the console, in Debian's Chromium (headless, driven by
Playwright, as test_console_approvals.py).

A tenant made for the test: its admin requests a shred on its page (the decoded statement and
the consequence are shown, then the browser signs it); the officer's page lists it among the
quorum actions in progress with 1 of 2 approvals; an officer approves it in the browser, and
the tenant's objects can no longer be read over S3. A cancel, which gives access back, is not
signed in the browser: the pages show its command, two approve it with their own keys, and the
object reads again.

Then who sees what: an operator is refused `/v1/quorum`; a tenant's admin is refused another
tenant's actions, and its page lists none of them."""

import json

from botocore.exceptions import ClientError

from gov_helpers import api, api_json, log_entries, make_tenant, run_ok, tenant_with_bucket
from test_console_approvals import Approver
from test_console_browser import Visit, browser, screenshot  # noqa: F401 (browser is a fixture)

BODY = b"the tenant's own report"


def sign(a: Approver, scope: str, form: str, expected: dict, consequence: str) -> dict:
    """Prepares the quorum approval of `form` within `scope` on `a`'s page, checks the
    statement and the warning shown, signs and sends it; returns the statement shown."""
    f = a.page.locator(f'{scope} form.quorum-sign[data-kind="{form}"]')
    assert f.count() == 1, f"no form {form} in {scope} on {a.page_name}'s page"
    f.locator("button.prepare").click()
    pre = f.locator("pre.statement")
    pre.wait_for(state="visible")
    shown = json.loads(pre.text_content())
    assert shown == {**shown, **expected}, shown
    assert shown["principal"] and shown["nonce"] and shown["at_ms"] > 0, shown
    warning = f.locator(".preview .consequence")
    assert warning.is_visible() and consequence in warning.text_content(), warning.text_content()
    with a.page.expect_navigation():
        f.locator("button.sign").click()
    assert a.page.locator("#decided").count() == 1, a.page.content()
    return shown


def read_error(client, bucket: str) -> tuple[str, int]:
    try:
        client.get_object(Bucket=bucket, Key="report.txt")
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError("the shredded tenant's object was read")


def test_a_shred_requested_and_approved_in_the_browser_and_cancelled_by_two_own_keys(server, browser):  # noqa: F811
    t = tenant_with_bucket(server, objects={"report.txt": BODY})
    name = t["name"]
    client = t["client"]
    admin = Approver(server, browser, t["admin"], "tenant")
    officer = Approver(server, browser, server.token("officer1"), "officer")
    try:
        state = admin.page.locator("#tenant-key-state")
        assert state.get_attribute("data-state") == "active", state.text_content()
        assert admin.page.locator("#crypto-shred article.quorum").count() == 0
        # no cancel to ask for while the key is active
        assert admin.page.locator('#crypto-shred form.quorum-sign[data-kind="shred-cancel"]').count() == 0
        shown = sign(admin, "#crypto-shred", "shred", {"action": "shred", "tenant": name, "mode": "disable"},
                     "disabled at once")
        assert shown["principal"] == f"{name}-admin"
        # pending: the key is still active and the object reads
        assert client.get_object(Bucket=t["bucket"], Key="report.txt")["Body"].read() == BODY
        card = admin.page.locator(f"#quorum-shred-{name}")
        assert card.get_attribute("data-count") == "1" and card.get_attribute("data-officers") == "0"
        assert f"{name}-admin (tenant-admin" in card.locator(".approvals").text_content()
        screenshot(admin.page, "tenant-shred-pending")

        # the officer's page: the shred in progress with 1 of 2 approvals, none an officer's
        officer.reload()
        card = officer.page.locator(f"#quorum-actions #quorum-shred-{name}")
        assert card.count() == 1, officer.page.content()
        assert (card.get_attribute("data-count"), card.get_attribute("data-required")) == ("1", "2")
        assert "1 of 2 (0 officers among them)" in card.locator(".progress").text_content()
        assert f"{name}-admin" in card.locator(".approvals").text_content()
        screenshot(officer.page, "officer-quorum")
        sign(officer, f"#quorum-shred-{name}", "shred",
             {"action": "shred", "tenant": name, "mode": "disable", "principal": "officer1"}, "disabled at once")
        assert officer.page.locator(f"#quorum-shred-{name}").count() == 0, "a completed shred is still listed"

        # the tenant key is disabled: its objects cannot be read over S3
        assert read_error(client, t["bucket"]) == ("AccessDenied", 403)
        admin.reload()
        assert admin.page.locator("#tenant-key-state").get_attribute("data-state") == "disabled"
        assert admin.page.locator(f"#quorum-shred-{name}").count() == 0

        # A cancel gives access back and a shred now destroys for good: neither is signed in a
        # page the provider serves. The page shows their commands, and no form for either.
        for kind in ("shred-now", "shred-cancel"):
            assert admin.page.locator(f'#crypto-shred form.quorum-sign[data-kind="{kind}"]').count() == 0
        commands = admin.page.locator("#crypto-shred ul.own-key").text_content()
        assert f"obhut tenant shred {name} --cancel" in commands and f"obhut tenant shred {name} --now" in commands
        # the admin and an officer approve the cancel with their own keys; the officer's page
        # shows it in progress with the command, not a form
        out = run_ok(server, t["admin"], "tenant", "shred", name, "--cancel")
        assert out.startswith("pending: 1 of 2 approvals for shred-cancel:"), out
        assert read_error(client, t["bucket"]) == ("AccessDenied", 403)
        officer.reload()
        card = officer.page.locator(f"#quorum-shred-cancel-{name}")
        assert card.get_attribute("data-count") == "1", officer.page.content()
        assert card.locator("form").count() == 0
        assert f"obhut tenant shred {name} --cancel" in card.locator(".own-key").text_content()
        run_ok(server, server.token("officer1"), "tenant", "shred", name, "--cancel")
        assert client.get_object(Bucket=t["bucket"], Key="report.txt")["Body"].read() == BODY
        admin.reload()
        assert admin.page.locator("#tenant-key-state").get_attribute("data-state") == "active"
        # the log holds the four approvals, the disable and the enable
        types = [e["type"] for _, e in log_entries(server, tenant=name)]
        assert types.count("shred_approval") == 4, types
        assert types.count("tenant_key_disabled") == 1 and types.count("tenant_key_enabled") == 1, types
        quorum = api_json(server, f"/v1/quorum?tenant={name}", server.token("auditor"))
        assert quorum == {"actions": [], "tenant_key": {"tenant": name, "state": "active",
                                                        "destroy_after_ms": None}}, quorum
    finally:
        admin.close()
        officer.close()


def test_quorum_actions_are_refused_to_operators_and_other_tenants(server, browser):  # noqa: F811
    mine, other = make_tenant(server), make_tenant(server)
    out = run_ok(server, other["admin"], "tenant", "shred", other["name"])
    assert out.startswith("pending: 1 of 2 approvals for shred:"), out
    # an operator is refused, for all actions and for one tenant's
    for path in ("/v1/quorum", f"/v1/quorum?tenant={other['name']}"):
        r = api(server, "GET", path, server.token("operator"))
        assert r.status_code == 403 and r.json()["error"] == "denied", (r.status_code, r.text)
    # a tenant's admin is refused another tenant's, and sees none of them in its own
    r = api(server, "GET", f"/v1/quorum?tenant={other['name']}", mine["admin"])
    assert r.status_code == 403, (r.status_code, r.text)
    own = api_json(server, "/v1/quorum", mine["admin"])
    assert own == {"actions": [], "tenant_key": {"tenant": mine["name"], "state": "active",
                                                 "destroy_after_ms": None}}, own
    # officers and auditors see it; the other tenant's admin sees its own
    for token in (server.token("officer2"), server.token("auditor"), other["admin"]):
        listed = api_json(server, "/v1/quorum", token)["actions"]
        assert [(a["kind"], len(a["approvals"])) for a in listed if a["tenant"] == other["name"]] == [("shred", 1)]
    # unknown parameters are refused
    r = api(server, "GET", "/v1/quorum?tenants=x", server.token("officer1"))
    assert r.status_code == 400, (r.status_code, r.text)
    # the admin's page lists no other tenant's action, in either language
    for lang, title in (("en-GB", "Crypto-shred"), ("de-DE", "Mandantenschlüssel")):
        v = Visit(browser, lang=lang)
        try:
            v.sign_in(server, mine["admin"])
            section = v.page.locator("#crypto-shred")
            assert section.count() == 1 and title in section.text_content(), v.page.content()
            assert other["name"] not in v.page.content()
            assert v.page.locator("#crypto-shred article.quorum").count() == 0
            assert v.problems == [], v.problems
        finally:
            v.close()
    # the other tenant's admin sees its pending shred
    v = Visit(browser)
    try:
        v.sign_in(server, other["admin"])
        assert v.page.locator(f"#quorum-shred-{other['name']}").count() == 1, v.page.content()
    finally:
        v.close()
