"""Browser form uploads (POST Object) with policies made by boto3's `generate_presigned_post`,
posted as a browser posts them (multipart/form-data, with `requests`).

The trustee checks the form's signature over its policy document, then the policy's expiry
and conditions; the gateway streams the file as a PutObject's body, held to the policy's
`content-length-range`, under the same access check as any upload (scoped keys, bucket
policies, tenants). Every refusal is tried against a form that is otherwise accepted, and
nothing refused is stored.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlsplit

import boto3
import botocore.exceptions
import pytest
import requests
from botocore.config import Config

from conftest import parse_key_output
from s3helpers import strip_ns, unique_name, xml_error

MIB = 1024 * 1024


def post(url: str, fields: dict, data: bytes, filename: str = "upload.bin", extra: dict | None = None):
    """Posts a form as a browser does: the fields first, the file last."""
    form = {**fields, **(extra or {})}
    return requests.post(url, data=form, files={"file": (filename, data)}, timeout=120, allow_redirects=False)


def assert_refused(resp, status: int, code: str, message_start: str | None = None) -> None:
    got_code, message = xml_error(resp)
    assert resp.status_code == status and got_code == code, (
        f"expected {status} {code}, got {resp.status_code}: {resp.text[:500]!r}"
    )
    if message_start is not None:
        assert message.startswith(message_start), message


def absent(s3, bucket: str, key: str) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.head_object(Bucket=bucket, Key=key)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_a_presigned_post_stores_the_file_with_its_fields_and_answers_201(s3, bucket):
    data = os.urandom(3000)
    fields = {"success_action_status": "201", "Content-Type": "text/plain", "x-amz-meta-colour": "blue"}
    p = s3.generate_presigned_post(
        bucket,
        "forms/one.txt",
        Fields=fields,
        Conditions=[
            {"success_action_status": "201"},
            {"Content-Type": "text/plain"},
            {"x-amz-meta-colour": "blue"},
            ["content-length-range", 1, MIB],
        ],
        ExpiresIn=600,
    )
    r = post(p["url"], p["fields"], data)
    assert r.status_code == 201, r.text
    doc = ET.fromstring(r.content)
    assert strip_ns(doc.tag) == "PostResponse"
    got = {strip_ns(e.tag): e.text for e in doc}
    assert got["Bucket"] == bucket and got["Key"] == "forms/one.txt"
    assert got["ETag"].strip('"') == hashlib.md5(data).hexdigest()
    assert got["Location"].endswith(f"/{bucket}/forms/one.txt")
    assert r.headers["ETag"].strip('"') == hashlib.md5(data).hexdigest()
    obj = s3.get_object(Bucket=bucket, Key="forms/one.txt")
    assert obj["Body"].read() == data
    assert obj["ContentType"] == "text/plain"
    assert obj["Metadata"] == {"colour": "blue"}


def test_the_default_answer_is_204_and_200_and_a_redirect_are_answered_as_asked(s3, bucket):
    p = s3.generate_presigned_post(bucket, "plain", ExpiresIn=600)
    r = post(p["url"], p["fields"], b"first")
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert s3.get_object(Bucket=bucket, Key="plain")["Body"].read() == b"first"

    p = s3.generate_presigned_post(
        bucket, "ok", Fields={"success_action_status": "200"},
        Conditions=[{"success_action_status": "200"}], ExpiresIn=600,
    )
    r = post(p["url"], p["fields"], b"second")
    assert r.status_code == 200, r.text

    target = "https://example.test/done?from=form"
    p = s3.generate_presigned_post(
        bucket, "redirected", Fields={"success_action_redirect": target},
        Conditions=[{"success_action_redirect": target}], ExpiresIn=600,
    )
    r = post(p["url"], p["fields"], b"third")
    assert r.status_code == 303, r.text
    location = urlsplit(r.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == "https://example.test/done"
    q = parse_qs(location.query)
    assert q["from"] == ["form"] and q["bucket"] == [bucket] and q["key"] == ["redirected"]
    assert q["etag"][0].strip('"') == hashlib.md5(b"third").hexdigest()
    assert s3.get_object(Bucket=bucket, Key="redirected")["Body"].read() == b"third"


def test_a_filename_key_takes_the_files_name_within_its_starts_with_prefix(s3, bucket):
    p = s3.generate_presigned_post(bucket, "uploads/${filename}", ExpiresIn=600)
    assert ["starts-with", "$key", "uploads/"] in json.loads(base64.b64decode(p["fields"]["policy"]))["conditions"]
    r = post(p["url"], p["fields"], b"named", filename="photo.jpg")
    assert r.status_code == 204, r.text
    assert s3.get_object(Bucket=bucket, Key="uploads/photo.jpg")["Body"].read() == b"named"
    # The key is a form field: changing it leaves the signature whole, and fails the condition.
    r = post(p["url"], {**p["fields"], "key": "elsewhere/${filename}"}, b"moved", filename="photo.jpg")
    assert_refused(r, 403, "AccessDenied", "Invalid according to Policy: Policy Condition failed")
    absent(s3, bucket, "elsewhere/photo.jpg")


def test_a_wrong_signature_or_an_edited_policy_is_signature_does_not_match(s3, bucket):
    p = s3.generate_presigned_post(bucket, "signed", ExpiresIn=600)
    sig = p["fields"]["x-amz-signature"]
    wrong = ("0" if sig[0] != "0" else "1") + sig[1:]
    r = post(p["url"], {**p["fields"], "x-amz-signature": wrong}, b"x")
    assert_refused(r, 403, "SignatureDoesNotMatch")
    # A policy edited to allow another key no longer matches its signature.
    other = s3.generate_presigned_post(bucket, "other", ExpiresIn=600)
    r = post(p["url"], {**p["fields"], "policy": other["fields"]["policy"], "key": "other"}, b"x")
    assert_refused(r, 403, "SignatureDoesNotMatch")
    # Signed with a secret that is not the key's.
    forged = s3_client_with_secret(s3, "x" * 40).generate_presigned_post(bucket, "signed", ExpiresIn=600)
    r = post(forged["url"], forged["fields"], b"x")
    assert_refused(r, 403, "SignatureDoesNotMatch")
    absent(s3, bucket, "signed")
    absent(s3, bucket, "other")
    # The same form, untouched, is accepted.
    assert post(p["url"], p["fields"], b"x").status_code == 204


def s3_client_with_secret(s3, secret: str):
    return boto3.session.Session().client(
        "s3",
        endpoint_url=s3.meta.endpoint_url,
        aws_access_key_id=s3._request_signer._credentials.access_key,
        aws_secret_access_key=secret,
        region_name=s3.meta.region_name,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def test_an_expired_policy_is_refused(s3, bucket):
    p = s3.generate_presigned_post(bucket, "late", ExpiresIn=-60)
    r = post(p["url"], p["fields"], b"late")
    assert_refused(r, 403, "AccessDenied", "Invalid according to Policy: Policy expired.")
    absent(s3, bucket, "late")


def test_content_length_range_holds_the_file_to_its_bounds(s3, bucket):
    p = s3.generate_presigned_post(
        bucket, "sized", Conditions=[["content-length-range", 10, 100]], ExpiresIn=600,
    )
    r = post(p["url"], p["fields"], b"123")
    assert_refused(r, 400, "EntityTooSmall")
    absent(s3, bucket, "sized")
    r = post(p["url"], p["fields"], os.urandom(101))
    assert_refused(r, 400, "EntityTooLarge")
    absent(s3, bucket, "sized")
    for n in (10, 100):
        data = os.urandom(n)
        r = post(p["url"], p["fields"], data)
        assert r.status_code == 204, r.text
        assert s3.get_object(Bucket=bucket, Key="sized")["Body"].read() == data


def test_a_large_file_streams_through_whole(s3, bucket):
    data = os.urandom(24 * MIB + 12345)
    p = s3.generate_presigned_post(
        bucket, "big", Conditions=[["content-length-range", 0, 64 * MIB]], ExpiresIn=600,
    )
    r = post(p["url"], p["fields"], data)
    assert r.status_code == 204, r.text
    got = s3.get_object(Bucket=bucket, Key="big")
    assert got["ContentLength"] == len(data)
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(data).digest()


def test_eq_conditions_and_fields_no_condition_names_are_refused(s3, bucket):
    p = s3.generate_presigned_post(
        bucket, "tagged", Fields={"x-amz-meta-tag": "ok"},
        Conditions=[["eq", "$x-amz-meta-tag", "ok"]], ExpiresIn=600,
    )
    r = post(p["url"], {**p["fields"], "x-amz-meta-tag": "changed"}, b"x")
    assert_refused(r, 403, "AccessDenied", "Invalid according to Policy: Policy Condition failed")
    r = post(p["url"], p["fields"], b"x", extra={"Content-Type": "text/html"})
    assert_refused(r, 403, "AccessDenied", "Invalid according to Policy: Extra input fields")
    # Fields starting x-ignore- need no condition.
    r = post(p["url"], p["fields"], b"x", extra={"x-ignore-note": "anything"})
    assert r.status_code == 204, r.text
    assert s3.head_object(Bucket=bucket, Key="tagged")["Metadata"] == {"tag": "ok"}


def test_a_field_sent_twice_is_refused_so_a_second_value_cannot_slip_past_the_policy(s3, bucket):
    p = s3.generate_presigned_post(
        bucket, "typed", Fields={"Content-Type": "image/png"},
        Conditions=[{"Content-Type": "image/png"}], ExpiresIn=600,
    )
    # The attack: the policy's value first (it is what is checked), another after it.
    form = list(p["fields"].items()) + [("Content-Type", "text/html")]
    r = requests.post(p["url"], data=form, files={"file": ("f", b"<script>")}, timeout=60, allow_redirects=False)
    assert_refused(r, 400, "InvalidArgument", "The form field Content-Type appears more than once")
    absent(s3, bucket, "typed")
    # Both ways: sent once, the signed value is what the object gets.
    r = post(p["url"], p["fields"], b"png")
    assert r.status_code == 204, r.text
    assert s3.head_object(Bucket=bucket, Key="typed")["ContentType"] == "image/png"


def test_a_form_signed_for_one_bucket_is_refused_in_another(s3, bucket):
    other = unique_name("post-other")
    s3.create_bucket(Bucket=other)
    p = s3.generate_presigned_post(bucket, "moved", ExpiresIn=600)
    url = p["url"].rsplit("/", 1)[0] + "/" + other
    r = post(url, p["fields"], b"x")
    assert_refused(r, 403, "AccessDenied", "Invalid according to Policy: Policy Condition failed")
    absent(s3, other, "moved")


def test_an_unsigned_form_is_anonymous_and_refused(s3, bucket, server):
    fields = {"key": "anon"}
    r = post(f"{server.s3_url}/{bucket}", fields, b"x")
    assert_refused(r, 403, "AccessDenied")
    absent(s3, bucket, "anon")


def scoped(server, *options: str) -> dict:
    out = server.cli_ok("tenant", "key-create", "demo", *options, token=server.token("demo_admin"))
    keys = parse_key_output(out)
    keys["client"] = server.client(keys["AWS_ACCESS_KEY_ID"], keys["AWS_SECRET_ACCESS_KEY"])
    return keys


def test_scoped_keys_post_only_what_they_may_put(server, s3, bucket):
    homes = scoped(server, "--write-only", "--bucket", bucket, "--prefix", "home/")["client"]
    p = homes.generate_presigned_post(bucket, "home/a", ExpiresIn=600)
    assert post(p["url"], p["fields"], b"mine").status_code == 204
    assert s3.get_object(Bucket=bucket, Key="home/a")["Body"].read() == b"mine"
    p = homes.generate_presigned_post(bucket, "etc/a", ExpiresIn=600)
    assert_refused(post(p["url"], p["fields"], b"not mine"), 403, "AccessDenied")
    absent(s3, bucket, "etc/a")

    reader = scoped(server, "--read-only", "--bucket", bucket)["client"]
    p = reader.generate_presigned_post(bucket, "home/b", ExpiresIn=600)
    assert_refused(post(p["url"], p["fields"], b"x"), 403, "AccessDenied")
    absent(s3, bucket, "home/b")


def test_a_bucket_policy_deny_of_put_object_refuses_the_form(s3, bucket):
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{bucket}/locked/*",
        }],
    }))
    p = s3.generate_presigned_post(bucket, "locked/x", ExpiresIn=600)
    assert_refused(post(p["url"], p["fields"], b"x"), 403, "AccessDenied")
    absent(s3, bucket, "locked/x")
    p = s3.generate_presigned_post(bucket, "open/x", ExpiresIn=600)
    assert post(p["url"], p["fields"], b"x").status_code == 204


def test_another_tenants_form_cannot_write_into_a_bucket(s3, bucket, tenant_b):
    p = tenant_b["client"].generate_presigned_post(bucket, "intruder", ExpiresIn=600)
    assert_refused(post(p["url"], p["fields"], b"x"), 403, "AccessDenied")
    absent(s3, bucket, "intruder")
