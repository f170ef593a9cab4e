"""Bucket CORS through boto3, aws-cli and a browser's requests: Put/Get/DeleteBucketCors
with S3's validation errors, preflight OPTIONS answered per rule (unauthenticated, as in S3,
and telling nobody which bucket names exist), and Access-Control-* on actual responses."""

import json

import pytest
import requests

from s3helpers import assert_s3_error, expect_error, md5_b64, unique_name, xml_error

RULES = [
    {
        "ID": "app",
        "AllowedOrigins": ["https://app.example.com", "https://*.tenant.example"],
        "AllowedMethods": ["GET", "PUT", "HEAD"],
        "AllowedHeaders": ["Content-Type", "x-amz-*"],
        "ExposeHeaders": ["ETag", "x-amz-request-id"],
        "MaxAgeSeconds": 600,
    },
    {"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]},
]


def preflight(server, bucket, key=None, origin="https://app.example.com", method="GET", headers=None):
    h = {}
    if origin is not None:
        h["Origin"] = origin
    if method is not None:
        h["Access-Control-Request-Method"] = method
    if headers:
        h["Access-Control-Request-Headers"] = headers
    path = f"/{bucket}" + (f"/{key}" if key else "")
    return requests.options(server.s3_url + path, headers=h, timeout=10)


@pytest.fixture
def cors_bucket(s3, bucket):
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    s3.put_object(Bucket=bucket, Key="page.html", Body=b"<p>hello</p>")
    return bucket


def test_put_get_delete_bucket_cors(s3, bucket):
    expect_error(s3.get_bucket_cors, "NoSuchCORSConfiguration", 404, Bucket=bucket)
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    got = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert got[0]["ID"] == "app" and got[0]["AllowedOrigins"] == RULES[0]["AllowedOrigins"]
    assert got[0]["AllowedMethods"] == ["GET", "PUT", "HEAD"]
    assert [h.lower() for h in got[0]["AllowedHeaders"]] == ["content-type", "x-amz-*"]
    assert got[0]["ExposeHeaders"] == ["ETag", "x-amz-request-id"] and got[0]["MaxAgeSeconds"] == 600
    assert got[1] == {"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}
    # Replaced as a whole.
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES[1:]})
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == [RULES[1]]
    r = s3.delete_bucket_cors(Bucket=bucket)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    expect_error(s3.get_bucket_cors, "NoSuchCORSConfiguration", 404, Bucket=bucket)
    # Deleting what is not there is no error, as in S3.
    s3.delete_bucket_cors(Bucket=bucket)


@pytest.mark.parametrize(
    "rule, code",
    [
        ({"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}, "InvalidRequest"),
        ({"AllowedOrigins": ["https://*.*.example"], "AllowedMethods": ["GET"]}, "InvalidRequest"),
        ({"AllowedOrigins": ["*"], "AllowedMethods": ["GET"], "AllowedHeaders": ["x-*-*"]}, "InvalidRequest"),
        ({"AllowedOrigins": ["*"], "AllowedMethods": ["GET"], "ExposeHeaders": ["*"]}, "InvalidRequest"),
        ({"AllowedOrigins": ["*"], "AllowedMethods": ["GET"], "MaxAgeSeconds": -1}, "MalformedXML"),
    ],
    ids=["method", "origin-wildcards", "header-wildcards", "expose-wildcard", "negative-max-age"],
)
def test_invalid_cors_rules_are_refused_and_change_nothing(s3, cors_bucket, rule, code):
    expect_error(s3.put_bucket_cors, code, 400, Bucket=cors_bucket, CORSConfiguration={"CORSRules": [rule]})
    assert len(s3.get_bucket_cors(Bucket=cors_bucket)["CORSRules"]) == 2


def test_an_empty_or_oversized_configuration_is_malformed(raw, s3, bucket):
    for body in (b"<CORSConfiguration></CORSConfiguration>",
                 b"<CORSConfiguration>" + b"<CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule>" * 101
                 + b"</CORSConfiguration>"):
        r = raw.request("PUT", bucket, query=[("cors", "")], body=body, headers={"Content-MD5": md5_b64(body)})
        assert_s3_error(r, 400, "MalformedXML")
    expect_error(s3.get_bucket_cors, "NoSuchCORSConfiguration", 404, Bucket=bucket)


def test_a_preflight_is_answered_per_rule(server, cors_bucket):
    r = preflight(server, cors_bucket, "page.html", method="PUT", headers="Content-Type, X-Amz-Date")
    assert r.status_code == 200, r.text
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert r.headers["Access-Control-Allow-Methods"] == "GET, PUT, HEAD"
    assert r.headers["Access-Control-Allow-Headers"] == "content-type, x-amz-date"
    assert r.headers["Access-Control-Expose-Headers"] == "ETag, x-amz-request-id"
    assert r.headers["Access-Control-Max-Age"] == "600"
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Origin" in r.headers["Vary"]
    assert r.headers.get("x-amz-request-id")
    # A wildcard origin.
    r = preflight(server, cors_bucket, origin="https://shop.tenant.example", method="HEAD")
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "https://shop.tenant.example"
    # The second rule: anyone may GET, without credentials.
    r = preflight(server, cors_bucket, "page.html", origin="https://elsewhere.example")
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in r.headers
    # Not allowed: a method, an origin, a header no rule names.
    for kw in ({"origin": "https://elsewhere.example", "method": "PUT"},
               {"origin": "https://tenant.example", "method": "PUT"},
               {"method": "PUT", "headers": "Authorization"}):
        r = preflight(server, cors_bucket, "page.html", **kw)
        assert_s3_error(r, 403, "AccessForbidden")
        assert "This CORS request is not allowed" in xml_error(r)[1]
        assert "Access-Control-Allow-Origin" not in r.headers
    # What a preflight must carry.
    assert_s3_error(preflight(server, cors_bucket, origin=None), 400, "BadRequest")
    assert_s3_error(preflight(server, cors_bucket, method="PATCH"), 400, "BadRequest")


def test_a_preflight_tells_a_missing_bucket_from_none_without_rules(server, s3, bucket, tenant_b):
    """Unauthenticated, a preflight must not reveal which names are taken: a bucket that does
    not exist, one of this tenant and one of another tenant without CORS rules are refused
    alike."""
    theirs = unique_name("cors-b")
    tenant_b["client"].create_bucket(Bucket=theirs)
    answers = []
    for name in (unique_name("cors-missing"), bucket, theirs):
        r = preflight(server, name, "k")
        assert_s3_error(r, 403, "AccessForbidden")
        answers.append((r.status_code, xml_error(r), sorted(k.lower() for k in r.headers
                                                             if k.lower() not in ("x-amz-request-id", "x-amz-id-2", "date"))))
    assert answers[0][1][1] == "CORSResponse: CORS is not enabled for this bucket."
    assert answers[0] == answers[1] == answers[2]


def test_actual_responses_carry_the_rules_headers(server, raw, cors_bucket):
    r = raw.request("GET", cors_bucket, "page.html", headers={"Origin": "https://app.example.com"})
    assert r.status_code == 200 and r.content == b"<p>hello</p>"
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert r.headers["Access-Control-Expose-Headers"] == "ETag, x-amz-request-id"
    assert "Origin" in r.headers["Vary"]
    r = raw.request("PUT", cors_bucket, "upload", body=b"x", headers={"Origin": "https://app.example.com"})
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    # The catch-all rule answers any origin for GET.
    r = raw.request("GET", cors_bucket, "page.html", headers={"Origin": "https://elsewhere.example"})
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    # No rule for DELETE: no CORS headers, and the request itself is as without them.
    r = raw.request("DELETE", cors_bucket, "upload", headers={"Origin": "https://app.example.com"})
    assert r.status_code == 204 and "Access-Control-Allow-Origin" not in r.headers
    # Failed requests carry none.
    r = raw.request("GET", cors_bucket, "missing", headers={"Origin": "https://app.example.com"})
    assert r.status_code == 404 and "Access-Control-Allow-Origin" not in r.headers
    r = requests.get(f"{server.s3_url}/{cors_bucket}/page.html", headers={"Origin": "https://app.example.com"}, timeout=10)
    assert_s3_error(r, 403, "AccessDenied")
    assert "Access-Control-Allow-Origin" not in r.headers and b"hello" not in r.content
    # Without an Origin header, none either.
    assert "Access-Control-Allow-Origin" not in raw.request("GET", cors_bucket, "page.html").headers


def test_rules_go_with_their_bucket(server, s3):
    name = unique_name("cors-again")
    s3.create_bucket(Bucket=name)
    s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": RULES})
    assert preflight(server, name).status_code == 200
    s3.delete_bucket(Bucket=name)
    assert_s3_error(preflight(server, name), 403, "AccessForbidden")
    s3.create_bucket(Bucket=name)
    expect_error(s3.get_bucket_cors, "NoSuchCORSConfiguration", 404, Bucket=name)
    assert_s3_error(preflight(server, name), 403, "AccessForbidden")


def test_another_tenant_cannot_read_or_set_rules(s3, cors_bucket, tenant_b):
    other = tenant_b["client"]
    for call, kw in [(other.get_bucket_cors, {}), (other.delete_bucket_cors, {}),
                     (other.put_bucket_cors, {"CORSConfiguration": {"CORSRules": RULES[1:]}})]:
        expect_error(call, {"AccessDenied", "NoSuchBucket"}, {403, 404}, Bucket=cors_bucket, **kw)
    assert len(s3.get_bucket_cors(Bucket=cors_bucket)["CORSRules"]) == 2


def test_aws_cli_bucket_cors(s3, bucket, aws):
    aws("s3api", "put-bucket-cors", "--bucket", bucket, "--cors-configuration", json.dumps({"CORSRules": RULES[1:]}))
    out = json.loads(aws("s3api", "get-bucket-cors", "--bucket", bucket).stdout)
    assert out["CORSRules"] == RULES[1:]
    aws("s3api", "delete-bucket-cors", "--bucket", bucket)
    r = aws("s3api", "get-bucket-cors", "--bucket", bucket, check=False)
    assert r.returncode != 0 and "NoSuchCORSConfiguration" in r.stderr
