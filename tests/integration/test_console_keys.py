"""A tenant admin's access keys on its console page, in Debian's Chromium (headless, driven by
Playwright).

The page lists the tenant's keys with their state and scope. Revoking one is a statement
(`revoke_access_key`, the one `obhut tenant key-revoke` signs) signed in the browser with the
admin's enrolled WebCrypto key and carried to the admin API's `/v1/act` with the form's CSRF
token, as decisions are. Then the attacks: another tenant's admin signing the same revocation
with its own enrolled key, an operator (in the console and with its own key through the CLI), a
post without the CSRF token; and creating a key with an enrolled key, which stays refused."""

import json
import re

import requests

from gov_helpers import log_entries, make_tenant, run_fail, run_ok
from s3helpers import assert_s3_error, parse_env_file
from test_console_approvals import Approver, statement
from test_console_browser import Visit, browser  # noqa: F401 (browser is a fixture)


def spare_key(server, t: dict) -> dict:
    """A second access key of `t`, made with the CLI."""
    return parse_env_file(run_ok(server, t["admin"], "tenant", "key-create", t["name"]))


def key_state(page, key_id: str) -> str | None:
    return page.get_attribute(f"#key-{key_id}", "data-state")


def post_revoke_by_hand(approver: Approver, st: dict, signature: str):
    """Posts a signed statement through the page's own revoke form (with its CSRF token)."""
    with approver.page.expect_navigation() as nav:
        approver.page.evaluate(
            """([text, sig]) => {
                const f = document.querySelector("form.revoke-key");
                f.elements.namedItem("statement").value = text;
                f.elements.namedItem("signature").value = sig;
                f.submit();
            }""",
            [json.dumps(st), signature],
        )
    return nav.value


def test_the_tenant_admin_revokes_an_access_key_signed_in_the_browser(server, browser):  # noqa: F811
    t = make_tenant(server)
    spare = spare_key(server, t)
    kid = spare["AWS_ACCESS_KEY_ID"]
    raw = server.raw(kid, spare["AWS_SECRET_ACCESS_KEY"])
    assert raw.request("GET").status_code == 200
    a = Approver(server, browser, t["admin"], "tenant")
    try:
        assert a.key_state() == "active"
        assert key_state(a.page, kid) == "active"
        assert key_state(a.page, t["access_key"]) == "active"
        form = a.page.locator(f"#key-{kid} form.revoke-key")
        form.locator("button.prepare").click()
        pre = form.locator("pre.statement")
        pre.wait_for(state="visible")
        shown = json.loads(pre.text_content())
        assert shown == {**shown, "principal": f"{t['name']}-admin", "action": "revoke_access_key",
                         "tenant": t["name"], "access_key_id": kid}, shown
        with a.page.expect_navigation():
            form.locator("button.sign").click()
        assert a.page.locator("#decided").count() == 1, a.page.content()[:2000]
        a.reload()
        assert key_state(a.page, kid) == "revoked"
        assert a.page.locator(f"#key-{kid} form.revoke-key").count() == 0, "a revoked key offers revoking"
        assert key_state(a.page, t["access_key"]) == "active"
        listed = run_ok(server, t["admin"], "tenant", "key-list", t["name"])
        assert f"{kid}  revoked" in listed and f"{t['access_key']}  active" in listed, listed
        # The key stops working; the tenant's other key goes on.
        assert_s3_error(raw.request("GET"), 403, "InvalidAccessKeyId")
        assert t["client"].list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200
        revoked = [e for _, e in log_entries(server, tenant=t["name"]) if e["type"] == "access_key_revoked"]
        assert [e.get("access_key_id") for e in revoked] == [kid], revoked
        assert a.visit.problems == [], a.visit.problems
    finally:
        a.close()


def test_another_tenants_admin_and_an_operator_revoke_nothing(server, browser):  # noqa: F811
    t = make_tenant(server)
    other = make_tenant(server)
    kid = t["access_key"]
    intruder = Approver(server, browser, other["admin"], "tenant")
    operator = Visit(browser)
    try:
        # The other tenant's admin signs the revocation of t's key in its own name with its
        # enrolled key, and posts it through its own page's form: the trustee refuses it.
        st = statement(f"{other['name']}-admin", action="revoke_access_key", tenant=t["name"], access_key_id=kid)
        resp = post_revoke_by_hand(intruder, st, intruder.sign_by_hand(st))
        assert resp.status == 403, resp.status
        # Naming its own tenant does not reach t's key either.
        intruder.reload()
        st = statement(f"{other['name']}-admin", action="revoke_access_key", tenant=other["name"],
                       access_key_id=kid)
        resp = post_revoke_by_hand(intruder, st, intruder.sign_by_hand(st))
        assert resp.status in (403, 404), resp.status
        # (that refusal is the one the browser logs as a failed load; expected)
        intruder.visit.problems[:] = [p for p in intruder.visit.problems if "status of 404" not in p]
        # The operator: no tenant page, no key of its own to enrol, and with its own key (the
        # CLI, the same admin API) refused as well.
        operator.sign_in(server, server.token("operator"))
        assert operator.page.goto(f"{server.admin_url}/console/tenant").status == 403
        run_fail(server, server.token("operator"), "signing-key", "enrol", "--public-key", "ab" * 32, status=403)
        run_fail(server, server.token("operator"), "tenant", "key-revoke", t["name"], kid, status=403)
        # A statement in the operator's name carried by its console session, signed by a key
        # that is not the operator's: refused.
        operator.page.goto(f"{server.admin_url}/console/operator")
        csrf = operator.page.get_attribute('input[name="csrf"]', "value")
        st = statement("operator", action="revoke_access_key", tenant=t["name"], access_key_id=kid)
        intruder.reload()
        not_the_operators = intruder.sign_by_hand(st)
        with operator.page.expect_navigation() as nav:
            operator.page.evaluate(
                """([csrf, text, sig]) => {
                    const f = document.createElement("form");
                    f.method = "post"; f.action = "/console/decide";
                    for (const [k, v] of [["csrf", csrf], ["statement", text], ["signature", sig]]) {
                        const i = document.createElement("input");
                        i.type = "hidden"; i.name = k; i.value = v; f.appendChild(i);
                    }
                    document.body.appendChild(f);
                    f.submit();
                }""",
                [csrf, json.dumps(st), not_the_operators],
            )
        assert nav.value.status == 403, nav.value.status
        # t's key still works and is active.
        assert t["client"].list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200
        listed = run_ok(server, t["admin"], "tenant", "key-list", t["name"])
        assert f"{kid}  active" in listed, listed
        assert not [e for _, e in log_entries(server, tenant=t["name"]) if e["type"] == "access_key_revoked"]
    finally:
        intruder.close(refusals_expected=True)
        operator.close()


def test_a_revocation_without_the_csrf_token_is_refused(server, browser):  # noqa: F811
    t = make_tenant(server)
    a = Approver(server, browser, t["admin"], "tenant")
    try:
        st = statement(f"{t['name']}-admin", action="revoke_access_key", tenant=t["name"],
                       access_key_id=t["access_key"])
        sig = a.sign_by_hand(st)
        cookies = {c["name"]: c["value"] for c in a.visit.context.cookies()}
        session = requests.Session()
        session.cookies.update(cookies)
        url = f"{server.admin_url}/console/decide"
        for form in ({"statement": json.dumps(st), "signature": sig},
                     {"csrf": "00" * 32, "statement": json.dumps(st), "signature": sig}):
            r = session.post(url, data=form, headers={"Sec-Fetch-Site": "same-origin"}, allow_redirects=False,
                             timeout=10)
            assert r.status_code == 403, (r.status_code, r.text[:300])
        # From another site, even with the page's token: refused before the token is looked at.
        csrf = a.page.get_attribute("form.revoke-key input[name=csrf]", "value")
        r = session.post(url, data={"csrf": csrf, "statement": json.dumps(st), "signature": sig},
                         headers={"Sec-Fetch-Site": "cross-site"}, allow_redirects=False, timeout=10)
        assert r.status_code == 403, (r.status_code, r.text[:300])
        assert f"{t['access_key']}  active" in run_ok(server, t["admin"], "tenant", "key-list", t["name"])
        # The same statement with the token is carried out.
        r = session.post(url, data={"csrf": csrf, "statement": json.dumps(st), "signature": sig},
                         headers={"Sec-Fetch-Site": "same-origin"}, allow_redirects=False, timeout=10)
        assert r.status_code == 303, (r.status_code, r.text[:300])
        assert f"{t['access_key']}  revoked" in run_ok(server, t["admin"], "tenant", "key-list", t["name"])
    finally:
        a.close()


def test_an_enrolled_key_creates_no_access_key(server, browser):  # noqa: F811
    """Minting S3 keys stays with the admin's own key: the page has no form for it, and a
    creation signed with the enrolled key is refused."""
    t = make_tenant(server)
    a = Approver(server, browser, t["admin"], "tenant")
    try:
        assert a.page.locator("form.create-key").count() == 0
        st = statement(f"{t['name']}-admin", action="create_access_key", tenant=t["name"],
                       deliver_to="ab" * 32)
        resp = post_revoke_by_hand(a, st, a.sign_by_hand(st))
        assert resp.status == 403, resp.status
        assert "an enrolled key signs decisions on grants" in a.page.content()
        listed = run_ok(server, t["admin"], "tenant", "key-list", t["name"])
        assert len(re.findall(r"^\S+  active", listed, re.M)) == 1, listed
    finally:
        a.close(refusals_expected=True)
