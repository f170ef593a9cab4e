"""The admin API tells no principal whether a tenant or bucket exists unless it may
know: to a tenant admin of another tenant and to an operator, every endpoint that
takes a tenant or bucket name answers the same (status and body, the name it was
asked about aside) for a tenant or bucket that exists but is not theirs and for one
that does not exist."""

from __future__ import annotations

import os

import pytest
import requests

from conftest import bearer, new_tenant

MISSING_TENANT = "nosuch" + os.urandom(3).hex()
MISSING_BUCKET = "nosuch-bucket-" + os.urandom(3).hex()


@pytest.fixture(scope="module")
def world(server):
    s3 = server.client()
    bucket = "exists-" + os.urandom(4).hex()
    s3.create_bucket(Bucket=bucket)
    other = new_tenant(server, "tex" + os.urandom(3).hex())
    return {"bucket": bucket, "principals": {"other tenant's admin": other["admin_token"],
                                             "operator": server.token("operator")}}


def normalised(text: str, *names: str) -> str:
    for n in names:
        text = text.replace(n, "NAME")
    return text


def http(server, token: str, method: str, path: str, **kw) -> tuple[int, str]:
    r = requests.request(method, server.admin_url + path, headers={"Authorization": f"Bearer {bearer(token)}"},
                         timeout=30, **kw)
    return r.status_code, r.text


ENDPOINTS = [
    ("GET tenant policy", lambda t, b: ("GET", f"/v1/tenants/{t}/policy")),
    ("POST tenant keys", lambda t, b: ("POST", f"/v1/tenants/{t}/keys")),
    ("POST rotate-key", lambda t, b: ("POST", f"/v1/tenants/{t}/buckets/{b}/rotate-key")),
    ("GET residency report", lambda t, b: ("GET", f"/v1/residency?tenant={t}")),
    ("GET log entries", lambda t, b: ("GET", f"/v1/log/entries?tenant={t}")),
    ("GET tenant quota", lambda t, b: ("GET", f"/v1/tenants/{t}/quota")),
    ("PUT tenant quota", lambda t, b: ("PUT", f"/v1/tenants/{t}/quota")),
    ("POST tenant usage recount", lambda t, b: ("POST", f"/v1/tenants/{t}/quota/recount")),
    ("GET bucket quota", lambda t, b: ("GET", f"/v1/tenants/{t}/buckets/{b}/quota")),
    ("PUT bucket quota", lambda t, b: ("PUT", f"/v1/tenants/{t}/buckets/{b}/quota")),
]


@pytest.mark.parametrize("who", ["other tenant's admin", "operator"])
@pytest.mark.parametrize("name,endpoint", ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_an_admin_endpoint_answers_the_same_for_not_yours_and_missing(server, world, who, name, endpoint):
    token = world["principals"][who]
    answers = {}
    for label, (tenant, bucket) in {
        "existing tenant and bucket": ("demo", world["bucket"]),
        "existing tenant, missing bucket": ("demo", MISSING_BUCKET),
        "missing tenant and bucket": (MISSING_TENANT, MISSING_BUCKET),
    }.items():
        method, path = endpoint(tenant, bucket)
        status, body = http(server, token, method, path)
        assert status >= 400, f"{name} as {who} for the {label}: {status} {body}"
        answers[label] = (status, normalised(body, tenant, bucket))
    assert len(set(answers.values())) == 1, f"{name} as {who} tells existing from missing: {answers}"


CLI = [
    ("tenant bucket-policy", lambda t, b: ("tenant", "bucket-policy", t, "--bucket", b, "--min-sites", "3")),
    ("tenant bucket-policy narrowing", lambda t, b: ("tenant", "bucket-policy", t, "--bucket", b,
                                                     "--jurisdiction", "DE")),
    ("tenant policy", lambda t, b: ("tenant", "policy", t, "--min-sites", "2")),
    ("tenant create", lambda t, b: ("tenant", "create", t, "--jurisdiction", "DE")),
    ("tenant shred", lambda t, b: ("tenant", "shred", t)),
]


@pytest.mark.parametrize("who", ["other tenant's admin", "operator"])
@pytest.mark.parametrize("name,args", CLI, ids=[c[0] for c in CLI])
def test_a_signed_statement_is_refused_the_same_for_not_yours_and_missing(server, world, who, name, args):
    token = world["principals"][who]
    answers = {}
    for label, (tenant, bucket) in {
        "existing tenant and bucket": ("demo", world["bucket"]),
        "existing tenant, missing bucket": ("demo", MISSING_BUCKET),
        "missing tenant and bucket": (MISSING_TENANT, MISSING_BUCKET),
    }.items():
        r = server.cli(*args(tenant, bucket), token=token)
        assert r.returncode != 0, f"`{name}` as {who} for the {label} succeeded: {r.stdout}"
        answers[label] = normalised(r.stderr.strip(), tenant, bucket)
    assert len(set(answers.values())) == 1, f"`{name}` as {who} tells existing from missing: {answers}"
