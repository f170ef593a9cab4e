"""A tenant admin's residency page with more buckets than one page shows, in Debian's Chromium
(headless, driven by Playwright), and the paging of the admin API it calls.

The page shows the totals over all the tenant's buckets (per jurisdiction and site, counted by
the catalog) and the map from them, then one page of 100 buckets in name order as a report the
trustee attests, with a link to the next page; the full signed report is a download. The API
pages `/v1/residency` with `limit` and `after` under the same authorisation as the whole
report, and answers `/v1/residency/totals` the same way."""

import hashlib
import json
import re
from concurrent.futures import ThreadPoolExecutor

import requests

from gov_helpers import api, make_tenant
from test_console_browser import Visit, browser  # noqa: F401 (browser is a fixture)

PAGE = 100


def tenant_with_buckets(server, count: int) -> tuple[dict, list[str]]:
    t = make_tenant(server)
    names = [f"{t['name']}-b{i:03d}" for i in range(count)]

    def make(name: str) -> None:
        client = server.client(t["access_key"], t["secret_key"])
        client.create_bucket(Bucket=name)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(make, names))
    return t, sorted(names)


def bucket_rows(html: str, names: list[str]) -> list[str]:
    """The tenant's buckets that the page's per-bucket table shows, in page order."""
    return re.findall(r"<tr><td>(" + "|".join(map(re.escape, names)) + r")</td>", html)


def test_the_residency_page_shows_all_totals_and_pages_the_buckets(server, browser):  # noqa: F811
    t, names = tenant_with_buckets(server, PAGE + 3)
    # Objects in the first bucket and in the last (on the second page).
    for bucket, keys in ((names[0], ("a", "b")), (names[-1], ("c", "d", "e"))):
        for k in keys:
            t["client"].put_object(Bucket=bucket, Key=k, Body=b"x")
    v = Visit(browser)
    try:
        v.sign_in(server, t["admin"])
        response = v.page.goto(f"{server.admin_url}/console/tenant/residency")
        assert response.status == 200
        first = v.page.content()
        # Totals over every bucket, not only this page: 5 objects, each on de-fra and de-mgd.
        totals = v.page.locator("section", has_text="Totals over all your buckets").inner_text()
        for row in ("all objects\t\t5", "DE\t\t5", "DE\tde-fra\t5", "DE\tde-mgd\t5"):
            assert row in totals, totals
        svg = v.page.locator("svg.map").inner_html()
        assert "5 objects of yours" in svg, svg[-2000:]
        assert bucket_rows(first, names) == names[:PAGE]
        assert f"<tr><td>{names[0]}</td><td>DE</td><td>2</td><td>2</td>" in first
        # The next page starts after the last bucket shown.
        with v.page.expect_navigation():
            v.page.click("a.next-page")
        assert v.page.url.endswith(f"/console/tenant/residency?after={names[PAGE - 1]}"), v.page.url
        second = v.page.content()
        assert bucket_rows(second, names) == names[PAGE:]
        assert f"<tr><td>{names[-1]}</td><td>DE</td><td>2</td><td>3</td>" in second
        assert v.page.locator("a.next-page").count() == 0, "the last page links to a next one"
        # Each page is a report of its own, attested: another digest and log entry than the first.
        digests = [re.search(r"<td>sha256</td><td>([0-9a-f]{64})</td>", p).group(1) for p in (first, second)]
        assert digests[0] != digests[1]
        # The full signed report: every bucket, its digest matches, and it is attested.
        with v.page.expect_download() as dl:
            v.page.click("a.section-link")
        answer = json.loads(open(dl.value.path()).read())
        report = json.loads(answer["report"])
        assert hashlib.sha256(answer["report"].encode()).hexdigest() == answer["sha256"]
        assert "page" not in report and "next" not in answer
        assert [b["bucket"] for b in report["tenants"][0]["buckets"]] == names
        assert answer["attestation"]["log_index"] > 0
        assert v.problems == [], v.problems
    finally:
        v.close()


def test_the_residency_api_pages_under_the_same_authorisation(server):
    t, names = tenant_with_buckets(server, 5)
    other = make_tenant(server)
    admin = t["admin"]
    path = "/v1/residency"
    seen, after = [], None
    while True:
        params = {"limit": 2, **({"after": after} if after else {})}
        r = api(server, "GET", path, admin, params=params)
        assert r.status_code == 200, r.text
        answer = r.json()
        report = json.loads(answer["report"])
        assert hashlib.sha256(answer["report"].encode()).hexdigest() == answer["sha256"]
        assert report["page"] == {"limit": 2, **({"after": after} if after else {}),
                                  **({"next": answer["next"]} if "next" in answer else {})}
        seen += [b["bucket"] for b in report["tenants"][0]["buckets"]]
        after = answer.get("next")
        if not after:
            break
    assert seen == names
    # An officer or auditor pages a tenant it names; without one, a paged report is refused.
    for who in ("officer1", "auditor"):
        r = api(server, "GET", path, server.token(who), params={"tenant": t["name"], "limit": 3})
        assert r.status_code == 200 and r.json()["next"] == names[2], r.text
        assert api(server, "GET", path, server.token(who), params={"limit": 3}).status_code == 400
    for bad in ({"limit": 0}, {"limit": 1001}, {"after": names[0]}, {"limit": "many"}):
        r = api(server, "GET", path, admin, params=bad)
        assert r.status_code == 400 and r.json()["error"] == "bad_request", (bad, r.text)
    # Another tenant's admin and the operator see neither a page nor the totals.
    for token, params in ((other["admin"], {"tenant": t["name"], "limit": 2}),
                          (server.token("operator"), {"tenant": t["name"], "limit": 2})):
        assert api(server, "GET", path, token, params=params).status_code == 403
        assert api(server, "GET", f"{path}/totals", token, params={"tenant": t["name"]}).status_code == 403
    totals = api(server, "GET", f"{path}/totals", admin).json()
    assert totals["tenant"] == t["name"] and totals["objects"] == 0 and totals["objects_by_sites"] == {}
    t["client"].put_object(Bucket=names[3], Key="k", Body=b"x")
    totals = api(server, "GET", f"{path}/totals", server.token("auditor"), params={"tenant": t["name"]}).json()
    assert totals["objects"] == 1 and totals["objects_by_sites"] == {"de-fra,de-mgd": 1}, totals
    assert api(server, "GET", f"{path}/totals", server.token("auditor")).status_code == 400
    assert api(server, "GET", f"{path}/totals", server.token("auditor"),
               params={"tenant": "no-such-tenant"}).status_code == 404
    assert requests.get(f"{server.admin_url}{path}/totals", timeout=10).status_code == 401
