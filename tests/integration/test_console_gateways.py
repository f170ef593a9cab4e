"""Console sessions across gateways: two `obhut gateway` processes share one catalog on
PostgreSQL (and the trustee); a session signed in on one is served by the other, Sign out on
either ends it on both, and the catalog holds no session id or bearer in clear. A session row
whose sealed record is edited, or swapped with another session's, with psql grants nothing
(docs/console.md, "Sessions"). Both gateways are on either's operator page, from the catalog's
registry of gateways, and one killed with SIGKILL is shown stale; an unreachable trustee is an
alert there (docs/console.md, "The operator's alerts")."""

from __future__ import annotations

import hashlib
import time
import re

import requests

from conftest import bearer
from split_helpers import split  # noqa: F401 (fixture)
from test_pg_catalog import _two_gateways_on_postgres, pg  # noqa: F401 (fixture)

CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


def sign_in(admin_url: str, token: str) -> requests.Session:
    """Signs in as a browser would (the bearer the page's script derives), on `admin_url`."""
    s = requests.Session()
    s.headers["Sec-Fetch-Site"] = "same-origin"
    page = s.get(f"{admin_url}/console/sign-in", timeout=10)
    assert page.status_code == 200, page.text[:300]
    r = s.post(f"{admin_url}/console/sign-in",
               data={"csrf": CSRF.search(page.text).group(1), "bearer": bearer(token)},
               allow_redirects=False, timeout=10)
    assert r.status_code == 303, (r.status_code, r.text[:500])
    return s


def cookie_of(s: requests.Session) -> str:
    value = s.cookies.get("obhut_console")
    assert value and re.fullmatch(r"[0-9a-f]{64}", value), value
    return value


def page(s: requests.Session, admin_url: str, path: str) -> requests.Response:
    return s.get(f"{admin_url}/console/{path}", allow_redirects=False, timeout=10)


def with_cookie(cookie: str, admin_url: str, path: str) -> requests.Response:
    """A page fetched with exactly this session cookie (whatever a browser would have dropped)."""
    return requests.get(f"{admin_url}/console/{path}", cookies={"obhut_console": cookie},
                        allow_redirects=False, timeout=10)


def assert_signed_out(cookie: str, admin_url: str, path: str):
    r = with_cookie(cookie, admin_url, path)
    assert r.status_code == 303 and r.headers["Location"] == "/console/sign-in", (admin_url, r.status_code)


def id_hash(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def test_a_session_works_on_every_gateway_and_signing_out_on_one_ends_it_on_all(pg, split, tmp_path):
    gw2, _s3_port, admin_port = _two_gateways_on_postgres(pg, split, tmp_path)
    a, b = split.admin_url, f"http://127.0.0.1:{admin_port}"
    db = pg_db_of(split)
    try:
        officer = sign_in(a, split.token("officer1"))
        cookie = cookie_of(officer)
        # The page loads on the other gateway, with the session's principal and CSRF token.
        on_b = page(officer, b, "officer")
        assert on_b.status_code == 200, (on_b.status_code, on_b.text[:300])
        assert "officer1" in on_b.text
        on_a = page(officer, a, "officer")
        assert on_a.status_code == 200
        assert CSRF.search(on_b.text).group(1) == CSRF.search(on_a.text).group(1), "one CSRF token"
        # The catalog: one row named by the id's hash; no cookie value or bearer in clear.
        rows = pg.psql(db, "SELECT id_hash, encode(sealed, 'hex') FROM console_sessions").split()
        assert [r.split("|")[0] for r in rows] == [id_hash(cookie)], rows
        dump = pg.psql(db, "SELECT id_hash || encode(sealed, 'hex') || sealed::text FROM console_sessions")
        secret = bearer(split.token("officer1"))
        for clear in (cookie, secret, secret.encode().hex(), cookie.encode().hex()):
            assert clear not in dump, "a credential in clear in the catalog"
        key = pg.psql(db, "SELECT name, sealed FROM console_keys").strip()
        assert key.startswith("session-v1|") and len(key) > 60, key
        # Sign out on b (with the CSRF token b's page carries): ended on a as well.
        r = officer.post(f"{b}/console/sign-out", data={"csrf": CSRF.search(on_b.text).group(1)},
                         allow_redirects=False, timeout=10)
        assert r.status_code == 303 and r.headers["Location"] == "/console/sign-in", r.status_code
        assert_signed_out(cookie, a, "officer")
        assert_signed_out(cookie, b, "officer")
        assert pg.psql(db, "SELECT COUNT(*) FROM console_sessions").strip() == "0"
        # A sign-in on b works on a just as well.
        auditor = sign_in(b, split.token("auditor"))
        assert with_cookie(cookie_of(auditor), a, "auditor").status_code == 200
        for log in (split.gateway.log_text(), gw2.log_text()):
            assert secret not in log and cookie not in log
    finally:
        code = gw2.stop()
        assert code == 0, gw2.log_tail()


def test_a_session_row_edited_or_swapped_in_the_catalog_grants_nothing(pg, split, tmp_path):
    gw2, _s3_port, admin_port = _two_gateways_on_postgres(pg, split, tmp_path)
    a, b = split.admin_url, f"http://127.0.0.1:{admin_port}"
    db = pg_db_of(split)
    try:
        officer = sign_in(a, split.token("officer1"))
        operator = sign_in(a, split.token("operator"))
        assert page(officer, b, "officer").status_code == 200
        assert page(operator, b, "operator").status_code == 200
        oc, pc = cookie_of(officer), cookie_of(operator)
        o, p = id_hash(oc), id_hash(pc)
        # The officer's sealed record under the operator's hash and the other way round: the
        # operator's cookie must not become the officer's session (nor the reverse).
        pg.psql(db, f"""UPDATE console_sessions SET sealed = CASE id_hash
                            WHEN '{o}' THEN (SELECT sealed FROM console_sessions WHERE id_hash = '{p}')
                            ELSE (SELECT sealed FROM console_sessions WHERE id_hash = '{o}') END
                        WHERE id_hash IN ('{o}', '{p}')""")
        assert_signed_out(pc, b, "officer")
        assert_signed_out(pc, b, "operator")
        assert_signed_out(oc, a, "officer")
        assert pg.psql(db, "SELECT COUNT(*) FROM console_sessions").strip() == "0", \
            "swapped rows were kept"
        # One byte of a sealed record changed: refused on both gateways, and removed.
        officer = sign_in(b, split.token("officer1"))
        oc = cookie_of(officer)
        o = id_hash(oc)
        assert with_cookie(oc, a, "officer").status_code == 200
        pg.psql(db, f"UPDATE console_sessions SET sealed = set_byte(sealed, 30, get_byte(sealed, 30) # 1) "
                    f"WHERE id_hash = '{o}'")
        assert_signed_out(oc, a, "officer")
        assert_signed_out(oc, b, "officer")
        assert pg.psql(db, f"SELECT COUNT(*) FROM console_sessions WHERE id_hash = '{o}'").strip() == "0"
        # The last use moved back a day: past the idle limit, ended on both.
        oc = cookie_of(sign_in(a, split.token("officer1")))
        o = id_hash(oc)
        assert with_cookie(oc, b, "officer").status_code == 200
        pg.psql(db, f"UPDATE console_sessions SET used_ms = used_ms - 86400000 WHERE id_hash = '{o}'")
        assert_signed_out(oc, b, "officer")
        logs = split.gateway.log_text() + gw2.log_text()
        intact = [line for line in logs.splitlines() if "not intact" in line]
        assert intact, "no row was logged as not intact"
        # A fixed message: no decoder's text (which could quote what it read) is logged.
        assert all("error" not in line for line in intact), intact
    finally:
        code = gw2.stop()
        assert code == 0, gw2.log_tail()


def test_a_principal_crowds_out_only_its_own_sessions(pg, split, tmp_path):
    gw2, _s3_port, admin_port = _two_gateways_on_postgres(pg, split, tmp_path)
    a, b = split.admin_url, f"http://127.0.0.1:{admin_port}"
    db = pg_db_of(split)
    try:
        officer = cookie_of(sign_in(a, split.token("officer1")))
        # The auditor signs in 17 times, on both gateways: its 17th ends its own first session
        # (the least recently used of its own), not the officer's (older than all of them).
        auditor = [cookie_of(sign_in(a if n % 2 else b, split.token("auditor"))) for n in range(17)]
        assert pg.psql(db, "SELECT COUNT(*) FROM console_sessions").strip() == "17"
        assert_signed_out(auditor[0], a, "auditor")
        for gateway in (a, b):
            assert with_cookie(officer, gateway, "officer").status_code == 200
            assert with_cookie(auditor[1], gateway, "auditor").status_code == 200
            assert with_cookie(auditor[16], gateway, "auditor").status_code == 200
        # The rows name one owner per principal, and no principal in clear.
        owners = pg.psql(db, "SELECT owner, COUNT(*) FROM console_sessions GROUP BY owner ORDER BY 2")
        counts = sorted(int(line.split("|")[1]) for line in owners.strip().splitlines())
        assert counts == [1, 16], owners
        assert "auditor" not in owners and "officer" not in owners
    finally:
        code = gw2.stop()
        assert code == 0, gw2.log_tail()


def pg_db_of(split) -> str:
    """The database of the catalog the split's gateway was configured with."""
    text = (split.base / "gateway.toml").read_text()
    url = re.search(r'^catalog = "([^"]+)"', text, re.M).group(1)
    return url.rsplit("/", 1)[1]


GATEWAY_ROW = re.compile(r"<tr>(<td>[^<]*</td>){7}</tr>")


def gateway_rows(html: str) -> list[list[str]]:
    """The rows of the operator page's "Gateways and workers" table (seven cells each)."""
    section = html.split("<h2>Gateways and workers</h2>", 1)
    assert len(section) == 2, "no gateways section on the operator page"
    body = section[1].split("</section>", 1)[0]
    return [re.findall(r"<td>([^<]*)</td>", m.group(0)) for m in GATEWAY_ROW.finditer(body)]


def test_both_gateways_are_on_either_operator_page_and_a_killed_one_turns_stale(pg, split, tmp_path):
    gw2, _s3_port, admin_port = _two_gateways_on_postgres(pg, split, tmp_path)
    a, b = split.admin_url, f"http://127.0.0.1:{admin_port}"
    try:
        # The registry, as the admin API answers it: operators, officers and auditors; a
        # tenant admin and nobody are refused.
        for who in ("operator", "officer1", "auditor"):
            r = requests.get(f"{a}/v1/gateways", headers={"Authorization": f"Bearer {bearer(split.token(who))}"},
                             timeout=10)
            assert r.status_code == 200, (who, r.status_code, r.text[:300])
        r = requests.get(f"{a}/v1/gateways", headers={"Authorization": f"Bearer {bearer(split.token('demo_admin'))}"},
                         timeout=10)
        assert r.status_code == 403, (r.status_code, r.text[:300])
        assert requests.get(f"{a}/v1/gateways", timeout=10).status_code == 401
        operator = sign_in(a, split.token("operator"))
        op_b = sign_in(b, split.token("operator"))
        rows = []
        for _ in range(60):
            rows = [gateway_rows(page(s, url, "operator").text) for s, url in ((operator, a), (op_b, b))]
            if all(len(r) == 2 and all(c[4] == "ok" for c in r) for r in rows):
                break
            time.sleep(1)
        for r in rows:
            assert len(r) == 2 and all(c[4] == "ok" for c in r), rows
            assert sorted(c[5] for c in r) == ["holder", "standby"], r
            assert all("gateway-heartbeat: " in c[6] for c in r), r
        # b dies without a word: a's page shows it stale once more than three of its
        # heartbeats are missed (by the catalog's clock), still listed until a day passes.
        ids_before = {c[0] for c in rows[0]}
        gw2.kill9()
        stale = []
        for _ in range(90):
            rows_a = gateway_rows(page(operator, a, "operator").text)
            stale = [c for c in rows_a if c[4] == "stale"]
            if len(stale) == 1:
                break
            time.sleep(1)
        assert len(stale) == 1, rows_a
        assert {c[0] for c in rows_a} == ids_before
        html = page(operator, a, "operator").text
        assert "ObhutGatewayStale" in html, "the stale gateway is an alert"
    finally:
        gw2.stop()


def test_an_unreachable_trustee_is_an_alert_on_the_operator_page(split):
    """`/readyz` answers 503 when not ready: the alerts read its reasons all the same."""
    split.start_trustee()
    split.start_gateway()
    a = split.admin_url
    operator = sign_in(a, split.token("operator"))
    first = page(operator, a, "operator")
    assert first.status_code == 200, first.text[:300]
    assert "ObhutTrusteeUnreachable" not in first.text
    split.trustee.kill9()
    r = page(operator, a, "operator")
    assert r.status_code == 200, (r.status_code, r.text[:300])
    alerts = r.text.split("<h2>Alerts</h2>", 1)[1].split("</section>", 1)[0]
    assert "ObhutTrusteeUnreachable" in alerts and "critical" in alerts, alerts
