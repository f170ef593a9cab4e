"""Approvals signed in the browser, in Debian's Chromium (headless, driven by Playwright).

Each approver (two officers and the tenant's admin, each in its own browser context) makes an
Ed25519 key with WebCrypto in the console, enrols its public key with `obhut signing-key
enrol` (signed with the principal's own key), and approves the operator's grant on the
console: the page shows the decoded statement, the browser signs it, and the trustee checks
it. The operator's temporary credentials then read the object with boto3, and the tenant's
admin sees that access in its log view.

Then the attacks: a key enrolled for one officer does not approve as the other; a revoked or
expired key approves nothing, even when the page's script is bypassed and the statement
signed and posted by hand; a statement signed by an enrolled key for anything but a decision
is refused."""

import json
import re
import time

import pytest

from gov_helpers import (credentials, grant_client, grant_view, log_entries, request_grant, run_fail, run_ok,
                         tenant_with_bucket)
from test_console_browser import Visit, browser, screenshot  # noqa: F401 (browser is a fixture)

# Chrome supports Ed25519 in WebCrypto from version 137 on.
MIN_CHROMIUM = 137


def chromium_major(b) -> int:
    m = re.match(r"(\d+)\.", b.version)
    assert m, f"odd browser version {b.version!r}"
    return int(m.group(1))


class Approver:
    """A principal signed in to the console in its own browser context, with an enrolled key."""

    def __init__(self, server, browser, token: str, page_name: str, expires: str = "1h"):
        self.server = server
        self.token = token
        self.page_name = page_name
        self.visit = Visit(browser)
        self.page = self.visit.page
        self.visit.sign_in(server, token)
        assert self.page.url.endswith(f"/console/{page_name}"), self.page.url
        self.public_key = self.make_key()
        out = run_ok(server, token, "signing-key", "enrol", "--public-key", self.public_key, "--expires", expires,
                     "--label", "console")
        assert self.public_key in out and "active" in out, out
        self.reload()

    @property
    def url(self) -> str:
        return f"{self.server.admin_url}/console/{self.page_name}"

    def make_key(self) -> str:
        self.page.click("#new-key")
        # Selectors, not predicates: the console's CSP forbids the eval a polled predicate needs.
        self.page.wait_for_selector('#signing-key[data-state="not-enrolled"]')
        key = self.page.text_content("#browser-key").strip()
        assert re.fullmatch(r"[0-9a-f]{64}", key), key
        assert key in self.page.text_content("#enrol-command")
        return key

    def reload(self) -> None:
        self.page.goto(self.url)
        self.page.wait_for_selector('#signing-key:not([data-state="waiting"])')

    def key_state(self) -> str:
        return self.page.get_attribute("#signing-key", "data-state")

    def decide(self, kind: str, item: str, decision: str, reason: str = "") -> str:
        """Prepares the decision, checks the statement shown, signs and sends it; returns
        the statement shown."""
        card = self.page.locator(f"#{kind}-{item}")
        assert card.count() == 1, f"{item} is not pending on {self.page_name}'s page"
        if reason:
            card.locator("textarea.reason").fill(reason)
        card.locator(f"button.prepare[data-decision={decision}]").click()
        pre = card.locator("pre.statement")
        pre.wait_for(state="visible")
        shown = json.loads(pre.text_content())
        with self.page.expect_navigation():
            card.locator("button.sign").click()
        return shown

    def sign_by_hand(self, statement: dict) -> str:
        """Signs `statement` with this browser's stored key, bypassing the page's checks
        (as a script could); returns the signature (base64)."""
        return self.page.evaluate(
            """async (text) => {
                const db = await new Promise((ok, no) => {
                    const r = indexedDB.open("obhut-console", 1);
                    r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error);
                });
                const who = document.getElementById("signing-key").dataset.principal;
                const k = await new Promise((ok, no) => {
                    const r = db.transaction("signing-keys").objectStore("signing-keys").get("key:" + who);
                    r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error);
                });
                const sig = await crypto.subtle.sign({name: "Ed25519"}, k.privateKey,
                    new TextEncoder().encode("obhut signed statement v1\\n" + text));
                return btoa(String.fromCharCode(...new Uint8Array(sig)));
            }""",
            json.dumps(statement),
        )

    def post_by_hand(self, statement: dict, signature: str):
        """Posts a signed statement through the console's own form (with its CSRF token);
        returns the response."""
        text = json.dumps(statement)
        with self.page.expect_navigation() as nav:
            self.page.evaluate(
                """([text, sig]) => {
                    const f = document.querySelector("form.decide");
                    f.elements.namedItem("statement").value = text;
                    f.elements.namedItem("signature").value = sig;
                    f.submit();
                }""",
                [text, signature],
            )
        return nav.value

    def close(self, refusals_expected: bool = False):
        """Closes the context; no script error or CSP violation may have happened (and no
        refused request, unless the test posted refused ones on purpose)."""
        problems = [p for p in self.visit.problems
                    if not (refusals_expected and "status of 403 (Forbidden)" in p)]
        assert problems == [], problems
        self.visit.close()


def statement(principal: str, **action) -> dict:
    return {"principal": principal, "at_ms": int(time.time() * 1000), "nonce": f"hand-{time.time_ns()}", **action}


def test_chromium_makes_non_extractable_ed25519_keys(server, browser):  # noqa: F811
    assert chromium_major(browser) >= MIN_CHROMIUM, f"Chromium {browser.version} has no Ed25519 in WebCrypto"
    v = Visit(browser)
    try:
        v.page.goto(f"{server.admin_url}/console/sign-in")
        got = v.page.evaluate("""async () => {
            const p = await crypto.subtle.generateKey({name: "Ed25519"}, false, ["sign", "verify"]);
            let exported = "exported";
            try { await crypto.subtle.exportKey("pkcs8", p.privateKey); } catch (e) { exported = e.name; }
            const raw = await crypto.subtle.exportKey("raw", p.publicKey);
            return [p.privateKey.extractable, exported, raw.byteLength];
        }""")
        assert got == [False, "InvalidAccessError", 32], got
    finally:
        v.close()


def test_two_officers_and_the_tenant_admin_approve_in_the_browser_and_the_grant_reads(server, browser):  # noqa: F811
    t = tenant_with_bucket(server, objects={"case-7/report.txt": b"the report"})
    operator = server.token("operator")
    gid = request_grant(server, operator, t["name"], t["bucket"], "read", prefix="case-7/",
                        reason="ticket 7: customer asked for help")
    approvers = [
        Approver(server, browser, server.token("officer1"), "officer"),
        Approver(server, browser, server.token("officer2"), "officer"),
        Approver(server, browser, t["admin"], "tenant"),
    ]
    try:
        for a in approvers:
            assert a.key_state() == "active", a.page.text_content("#key-state")
            # The key survives a reload (IndexedDB), and the page shows the grant to decide.
            card = a.page.locator(f"#grant-{gid}")
            text = card.text_content()
            for shown in (t["name"], t["bucket"], "case-7/", "ticket 7: customer asked for help", "operator"):
                assert shown in text, f"{shown!r} not on the card: {text}"
        approvers[0].page.reload()
        assert approvers[0].page.text_content("#browser-key").strip() == approvers[0].public_key
        screenshot(approvers[0].page, "officer-approval")
        for i, a in enumerate(approvers):
            shown = a.decide("grant", gid, "approve")
            assert shown["action"] == "approve_grant" and shown["id"] == gid, shown
            assert shown["scope"] == grant_view(server, gid)["scope_digest"], shown
            assert a.page.locator("#decided").count() == 1, a.page.content()
            if i < 2:
                assert a.page.locator(f"#grant-{gid}").count() == 1
        view = grant_view(server, gid)
        assert view["state"] == "approved", view
        assert sorted(x["principal"] for x in view["approvals"]) == sorted(
            ["officer1", "officer2", f"{t['name']}-admin"])
        # The approvals in the log are the statements the browsers signed.
        approvals = [e for _, e in log_entries(server, tenant=t["name"]) if e["type"] == "grant_approval"
                     and e["grant"] == gid]
        assert len(approvals) == 3 and all(json.loads(e["statement"])["nonce"] for e in approvals)
        # The operator reads under the grant.
        creds = credentials(server, operator, gid)
        body = grant_client(server, creds).get_object(Bucket=t["bucket"], Key="case-7/report.txt")["Body"].read()
        assert body == b"the report"
        # The tenant admin sees that access in its log view.
        admin = approvers[2]
        admin.page.goto(admin.url)
        content = admin.page.content()
        assert "grant_access" in content and gid in content, "the tenant's log view does not show the access"
        screenshot(admin.page, "tenant-approval")
    finally:
        for a in approvers:
            a.close()


def test_a_denial_is_signed_with_its_reason_and_a_reason_is_required(server, browser):  # noqa: F811
    t = tenant_with_bucket(server)
    gid = request_grant(server, server.token("operator"), t["name"], t["bucket"], "read")
    a = Approver(server, browser, t["admin"], "tenant")
    try:
        card = a.page.locator(f"#grant-{gid}")
        card.locator("button.prepare[data-decision=deny]").click()
        assert card.locator(".decide-error").is_visible()
        assert card.locator(".preview").is_hidden()
        shown = a.decide("grant", gid, "deny", reason="not for this case")
        assert shown == {**shown, "action": "deny_grant", "id": gid, "reason": "not for this case"}
        assert grant_view(server, gid)["state"] == "denied"
        denied = [e for _, e in log_entries(server, tenant=t["name"]) if e["type"] == "grant_denied"
                  and e["grant"] == gid]
        assert denied and denied[0]["reason"] == "not for this case", denied
    finally:
        a.close()


def test_a_key_enrolled_for_one_officer_never_approves_as_the_other(server, browser):  # noqa: F811
    t = tenant_with_bucket(server)
    gid = request_grant(server, server.token("operator"), t["name"], t["bucket"], "read")
    scope = grant_view(server, gid)["scope_digest"]
    o1 = Approver(server, browser, server.token("officer1"), "officer")
    o2 = Approver(server, browser, server.token("officer2"), "officer")
    try:
        # officer1's browser key signs an approval in officer2's name; officer2's session
        # carries it: the trustee finds it is not officer2's signature.
        forged = statement("officer2", action="approve_grant", id=gid, scope=scope)
        resp = o2.post_by_hand(forged, o1.sign_by_hand(forged))
        assert resp.status == 403, resp.status
        assert "not officer2" in o2.page.content()
        # Carried by officer1's own session, the admin API refuses it before the trustee.
        forged = statement("officer2", action="approve_grant", id=gid, scope=scope)
        resp = o1.post_by_hand(forged, o1.sign_by_hand(forged))
        assert resp.status == 403, resp.status
        assert grant_view(server, gid)["approvals"] == []
        # The same key signing in officer1's own name is accepted.
        honest = statement("officer1", action="approve_grant", id=gid, scope=scope)
        o1.reload()
        resp = o1.post_by_hand(honest, o1.sign_by_hand(honest))
        assert resp.status == 200, o1.page.content()
        assert [x["principal"] for x in grant_view(server, gid)["approvals"]] == ["officer1"]
        # An enrolled key signs decisions only: revoking a principal with it is refused.
        other = statement("officer1", action="revoke_principal", name="auditor")
        resp = o1.post_by_hand(other, o1.sign_by_hand(other))
        assert resp.status == 403 and "an enrolled key signs decisions on grants" in o1.page.content()
    finally:
        o1.close(refusals_expected=True)
        o2.close(refusals_expected=True)


def test_a_revoked_or_expired_browser_key_approves_nothing(server, browser):  # noqa: F811
    t = tenant_with_bucket(server)
    gid = request_grant(server, server.token("operator"), t["name"], t["bucket"], "read")
    scope = grant_view(server, gid)["scope_digest"]
    admin = t["admin"]
    expiring = Approver(server, browser, admin, "tenant", expires="8s")
    enrolled_at = time.monotonic()
    revoked = None
    try:
        revoked = Approver(server, browser, admin, "tenant")
        # Both keys are live: each signs (a second approval by the same admin counts once).
        for a in (expiring, revoked):
            assert a.key_state() == "active"
            st = statement(f"{t['name']}-admin", action="approve_grant", id=gid, scope=scope)
            resp = a.post_by_hand(st, a.sign_by_hand(st))
            assert resp.status == 200, a.page.content()
        assert time.monotonic() - enrolled_at < 8, "too slow to use the short-lived key in time"
        run_ok(server, admin, "signing-key", "revoke", "--public-key", revoked.public_key)
        run_fail(server, admin, "signing-key", "revoke", "--public-key", revoked.public_key, status=409)
        listed = run_ok(server, admin, "signing-key", "list")
        assert f"{revoked.public_key} revoked" in listed, listed
        time.sleep(max(0.0, 8.5 - (time.monotonic() - enrolled_at)))
        for a, why in ((revoked, "revoked"), (expiring, "expired")):
            a.reload()
            assert a.key_state() == why
            assert a.page.locator("button.prepare").first.is_disabled()
            st = statement(f"{t['name']}-admin", action="approve_grant", id=gid, scope=scope)
            resp = a.post_by_hand(st, a.sign_by_hand(st))
            assert resp.status == 403, resp.status
            assert f"has {'been revoked' if why == 'revoked' else 'expired'}" in a.page.content()
        # The revoked key's approval no longer counts; the admin's own key (the CLI) still works.
        run_ok(server, admin, "access", "approve", gid)
    finally:
        expiring.close(refusals_expected=True)
        if revoked:
            revoked.close(refusals_expected=True)


def test_enrolment_is_refused_for_roles_without_approvals_and_for_bad_keys(server):
    run_fail(server, server.token("operator"), "signing-key", "enrol", "--public-key", "ab" * 32, status=403)
    run_fail(server, server.token("officer1"), "signing-key", "enrol", "--public-key", "abcd",
             says="64 hex digits")
    run_fail(server, server.token("officer1"), "signing-key", "enrol", "--public-key", "ab" * 32,
             "--expires", "365d", status=400, says="90 days")
    run_fail(server, server.token("officer1"), "signing-key", "revoke", "--public-key", "cd" * 32, status=404)


@pytest.mark.parametrize("lang,words", [("de-DE", "Signierschlüssel dieses Browsers"),
                                        ("en-GB", "This browser's signing key")])
def test_the_signing_panel_speaks_both_languages(server, browser, lang, words):  # noqa: F811
    v = Visit(browser, lang=lang)
    try:
        v.sign_in(server, server.token("officer1"))
        assert words in v.page.content()
        assert v.problems == [], v.problems
    finally:
        v.close()
