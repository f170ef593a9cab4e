"""Object tagging through boto3 and aws-cli: Put/Get/DeleteObjectTagging (by version too),
x-amz-tagging on PutObject, CopyObject (COPY/REPLACE) and CreateMultipartUpload, S3's tag
limits and error codes, x-amz-tagging-count on GET. Tags are sealed like user metadata:
catalog.db never holds them in clear; a grant covers them as it covers the object."""

import json
import os
import urllib.parse

import pytest

from gov_helpers import approved_grant, credentials, grant_client, tenant_with_bucket
from s3helpers import assert_s3_error, client_error, expect_error, unique_name

MIB = 1024 * 1024


def tagset(d: dict) -> list[dict]:
    return [{"Key": k, "Value": v} for k, v in d.items()]


def tags_of(s3, bucket, key, **kw) -> dict:
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key, **kw)["TagSet"]}


def test_put_get_delete_object_tagging(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"data", Metadata={"m": "1"})
    assert tags_of(s3, bucket, "k") == {}
    assert "TagCount" not in s3.get_object(Bucket=bucket, Key="k")
    wanted = {"project": "Blau", "empty": "", "Grüße": "漢字 + / = . _ : @"}
    r = s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": tagset(wanted)})
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200 and "VersionId" not in r
    assert tags_of(s3, bucket, "k") == wanted
    g = s3.get_object(Bucket=bucket, Key="k")
    assert g["TagCount"] == 3 and g["Body"].read() == b"data"
    h = s3.head_object(Bucket=bucket, Key="k")
    assert h["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "3"
    # Tagging changes neither the object's ETag nor its metadata.
    h = s3.head_object(Bucket=bucket, Key="k")
    assert h["Metadata"] == {"m": "1"} and h["ETag"] == s3.put_object(Bucket=bucket, Key="other", Body=b"data")["ETag"]
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": tagset({"only": "one"})})
    assert tags_of(s3, bucket, "k") == {"only": "one"}
    r = s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert tags_of(s3, bucket, "k") == {}
    assert "TagCount" not in s3.get_object(Bucket=bucket, Key="k")
    assert "x-amz-tagging-count" not in s3.head_object(Bucket=bucket, Key="k")["ResponseMetadata"]["HTTPHeaders"]
    # Missing objects.
    expect_error(s3.get_object_tagging, "NoSuchKey", 404, Bucket=bucket, Key="missing")
    expect_error(s3.put_object_tagging, "NoSuchKey", 404, Bucket=bucket, Key="missing",
                 Tagging={"TagSet": tagset({"a": "b"})})
    expect_error(s3.delete_object_tagging, "NoSuchKey", 404, Bucket=bucket, Key="missing")


@pytest.mark.parametrize(
    "tags, code, status",
    [
        ([("k%d" % i, "v") for i in range(11)], "BadRequest", 400),
        ([("k" * 129, "v")], "InvalidTag", 400),
        ([("k", "v" * 257)], "InvalidTag", 400),
        ([("aws:createdBy", "me")], "InvalidTag", 400),
        ([("dup", "1"), ("dup", "2")], "InvalidTag", 400),
    ],
    ids=["eleven", "long-key", "long-value", "aws-prefix", "duplicate"],
)
def test_tag_limits_are_refused_and_change_nothing(s3, bucket, tags, code, status):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": tagset({"keep": "me"})})
    expect_error(s3.put_object_tagging, code, status, Bucket=bucket, Key="k",
                 Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags]})
    assert tags_of(s3, bucket, "k") == {"keep": "me"}
    header = urllib.parse.urlencode(tags)
    want = "InvalidArgument" if code == "InvalidTag" and tags[0][0] == "dup" else code
    expect_error(s3.put_object, want, status, Bucket=bucket, Key="new", Body=b"x", Tagging=header)
    expect_error(s3.head_object, "404", 404, Bucket=bucket, Key="new")
    expect_error(s3.create_multipart_upload, want, status, Bucket=bucket, Key="new", Tagging=header)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_limits_at_the_edge_are_taken(s3, bucket):
    edge = {("ß" * 128): "ü" * 256, **{f"k{i}": str(i) for i in range(9)}}
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging=urllib.parse.urlencode(edge))
    assert tags_of(s3, bucket, "k") == edge


def test_tagging_header_on_put_copy_and_multipart(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"source", Tagging="a=1&b%20c=d%26e")
    assert tags_of(s3, bucket, "src") == {"a": "1", "b c": "d&e"}
    assert s3.get_object(Bucket=bucket, Key="src")["TagCount"] == 2
    # COPY (the default) keeps the source's tags; REPLACE takes the header's.
    s3.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "src"}, Tagging="ignored=1")
    assert tags_of(s3, bucket, "copied") == {"a": "1", "b c": "d&e"}
    s3.copy_object(Bucket=bucket, Key="replaced", CopySource={"Bucket": bucket, "Key": "src"},
                   TaggingDirective="REPLACE", Tagging="new=tag")
    assert tags_of(s3, bucket, "replaced") == {"new": "tag"}
    s3.copy_object(Bucket=bucket, Key="cleared", CopySource={"Bucket": bucket, "Key": "src"},
                   TaggingDirective="REPLACE")
    assert tags_of(s3, bucket, "cleared") == {}
    expect_error(s3.copy_object, "InvalidArgument", 400, Bucket=bucket, Key="bad",
                 CopySource={"Bucket": bucket, "Key": "src"}, TaggingDirective="MERGE")
    # Multipart: the tags given at creation are the object's.
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", Tagging="stage=mpu")["UploadId"]
    e = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=1, Body=b"p" * 10)["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e}]})
    assert tags_of(s3, bucket, "mp") == {"stage": "mpu"}
    # An overwrite without tags has none.
    s3.put_object(Bucket=bucket, Key="src", Body=b"again")
    assert tags_of(s3, bucket, "src") == {}


def test_tagging_by_version(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"one", Tagging="gen=1")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"two", Tagging="gen=2")["VersionId"]
    assert tags_of(s3, bucket, "k") == {"gen": "2"}
    assert tags_of(s3, bucket, "k", VersionId=v1) == {"gen": "1"}
    r = s3.put_object_tagging(Bucket=bucket, Key="k", VersionId=v1, Tagging={"TagSet": tagset({"old": "yes"})})
    assert r["VersionId"] == v1
    assert tags_of(s3, bucket, "k", VersionId=v1) == {"old": "yes"}
    assert tags_of(s3, bucket, "k") == {"gen": "2"}
    got = s3.get_object_tagging(Bucket=bucket, Key="k")
    assert got["VersionId"] == v2
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=v1)["TagCount"] == 1
    r = s3.delete_object_tagging(Bucket=bucket, Key="k", VersionId=v1)
    assert r["VersionId"] == v1 and tags_of(s3, bucket, "k", VersionId=v1) == {}
    assert tags_of(s3, bucket, "k") == {"gen": "2"}
    expect_error(s3.get_object_tagging, "NoSuchVersion", 404, Bucket=bucket, Key="k", VersionId="0" * 32)
    # The current entry a delete marker: no object to tag.
    s3.delete_object(Bucket=bucket, Key="k")
    expect_error(s3.get_object_tagging, "NoSuchKey", 404, Bucket=bucket, Key="k")
    assert tags_of(s3, bucket, "k", VersionId=v2) == {"gen": "2"}


def test_tags_are_never_in_the_catalog_in_clear(server, s3, bucket):
    secret_key, secret_value = "tagkey-b7e1c9d4", "tagvalue-3f8a2e6d-confidential"
    s3.put_object(Bucket=bucket, Key="t", Body=b"x", Tagging=f"{secret_key}={secret_value}")
    s3.put_object(Bucket=bucket, Key="t2", Body=b"x")
    s3.put_object_tagging(Bucket=bucket, Key="t2", Tagging={"TagSet": tagset({secret_key: secret_value})})
    assert tags_of(s3, bucket, "t2") == {secret_key: secret_value}
    files = [p for p in server.data_dir.iterdir() if p.name.startswith("catalog.db")]
    assert files, f"no catalog files in {server.data_dir}"
    for p in files:
        data = p.read_bytes()
        assert secret_value.encode() not in data and secret_key.encode() not in data, f"{p.name} holds a tag in clear"


def test_aws_cli_object_tagging(s3, bucket, aws):
    s3.put_object(Bucket=bucket, Key="cli", Body=b"x")
    aws("s3api", "put-object-tagging", "--bucket", bucket, "--key", "cli",
        "--tagging", json.dumps({"TagSet": tagset({"from": "cli"})}))
    out = json.loads(aws("s3api", "get-object-tagging", "--bucket", bucket, "--key", "cli").stdout)
    assert out["TagSet"] == [{"Key": "from", "Value": "cli"}]
    aws("s3api", "delete-object-tagging", "--bucket", bucket, "--key", "cli")
    assert tags_of(s3, bucket, "cli") == {}
    r = aws("s3api", "put-object-tagging", "--bucket", bucket, "--key", "cli",
            "--tagging", json.dumps({"TagSet": tagset({"aws:no": "x"})}), check=False)
    assert r.returncode != 0 and "InvalidTag" in r.stderr, r.stderr


def test_a_grant_covers_tags_as_it_covers_the_object(server):
    t = tenant_with_bucket(server, {"doc": b"doc"})
    b, owner = t["bucket"], t["client"]
    owner.put_object_tagging(Bucket=b, Key="doc", Tagging={"TagSet": tagset({"class": "internal"})})
    op = server.token("operator")
    r = grant_client(server, credentials(server, op, approved_grant(server, t, "read")))
    assert tags_of(r, b, "doc") == {"class": "internal"}
    code, status, _ = client_error(r.put_object_tagging, Bucket=b, Key="doc", Tagging={"TagSet": tagset({"x": "y"})})
    assert (code, status) == ("AccessDenied", 403)
    code, status, _ = client_error(r.delete_object_tagging, Bucket=b, Key="doc")
    assert (code, status) == ("AccessDenied", 403)
    assert tags_of(owner, b, "doc") == {"class": "internal"}
    w = grant_client(server, credentials(server, op, approved_grant(server, t, "write")))
    w.put_object_tagging(Bucket=b, Key="doc", Tagging={"TagSet": tagset({"class": "reviewed"})})
    assert tags_of(owner, b, "doc") == {"class": "reviewed"}
    code, status, _ = client_error(w.get_object_tagging, Bucket=b, Key="doc")
    assert (code, status) == ("AccessDenied", 403)
    # By version id, a grant without `versions` covers nothing.
    code, status, _ = client_error(r.get_object_tagging, Bucket=b, Key="doc", VersionId="null")
    assert (code, status) == ("AccessDenied", 403)


def test_another_tenant_cannot_read_or_set_tags(s3, bucket, tenant_b):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="mine=yes")
    other = tenant_b["client"] if isinstance(tenant_b, dict) else tenant_b
    for call, kw in [
        (other.get_object_tagging, {}),
        (other.put_object_tagging, {"Tagging": {"TagSet": tagset({"theirs": "no"})}}),
        (other.delete_object_tagging, {}),
    ]:
        code, status, _ = client_error(call, Bucket=bucket, Key="k", **kw)
        assert status in (403, 404) and code in ("AccessDenied", "NoSuchBucket"), (code, status)
    assert tags_of(s3, bucket, "k") == {"mine": "yes"}


# ------------------------------------------------------------------------------ bucket tagging
def bucket_tags_of(s3, bucket) -> dict:
    return {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}


def test_put_get_delete_bucket_tagging(s3):
    bucket = unique_name("btag")
    s3.create_bucket(Bucket=bucket)
    expect_error(s3.get_bucket_tagging, "NoSuchTagSet", 404, Bucket=bucket)
    wanted = {"cost-centre": "4711", "empty": "", "Grüße": "漢字 + / = . _ : @"}
    r = s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tagset(wanted)})
    assert r["ResponseMetadata"]["HTTPStatusCode"] in (200, 204)
    assert bucket_tags_of(s3, bucket) == wanted
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tagset({"only": "one"})})
    assert bucket_tags_of(s3, bucket) == {"only": "one"}, "a put replaces the whole set"
    # Bucket tags are the bucket's, not its objects'.
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert tags_of(s3, bucket, "k") == {}
    r = s3.delete_bucket_tagging(Bucket=bucket)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    expect_error(s3.get_bucket_tagging, "NoSuchTagSet", 404, Bucket=bucket)
    # A bucket deleted and made again starts without the old one's tags.
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tagset({"old": "bucket"})})
    s3.delete_object(Bucket=bucket, Key="k")
    s3.delete_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=bucket)
    expect_error(s3.get_bucket_tagging, "NoSuchTagSet", 404, Bucket=bucket)
    expect_error(s3.get_bucket_tagging, "NoSuchBucket", 404, Bucket=unique_name("missing"))


@pytest.mark.parametrize(
    "tags",
    [
        [("k%d" % i, "v") for i in range(51)],
        [("k" * 129, "v")],
        [("k", "v" * 257)],
        [("aws:cost", "v")],
    ],
)
def test_bucket_tag_limits_are_refused_and_change_nothing(s3, tags):
    bucket = unique_name("btag")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tagset({"keep": "me"})})
    expect_error(s3.put_bucket_tagging, "InvalidTag", 400, Bucket=bucket,
                 Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags]})
    assert bucket_tags_of(s3, bucket) == {"keep": "me"}
    fifty = {f"k{i}": "v" for i in range(50)}
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tagset(fifty)})
    assert bucket_tags_of(s3, bucket) == fifty, "50 tags are S3's limit, and taken"


def test_aws_cli_bucket_tagging(s3, aws):
    bucket = unique_name("btag")
    s3.create_bucket(Bucket=bucket)
    aws("s3api", "put-bucket-tagging", "--bucket", bucket,
        "--tagging", json.dumps({"TagSet": tagset({"from": "cli"})}))
    out = json.loads(aws("s3api", "get-bucket-tagging", "--bucket", bucket).stdout)
    assert out["TagSet"] == [{"Key": "from", "Value": "cli"}]
    aws("s3api", "delete-bucket-tagging", "--bucket", bucket)
    r = aws("s3api", "get-bucket-tagging", "--bucket", bucket, check=False)
    assert r.returncode != 0 and "NoSuchTagSet" in r.stderr, r.stderr


def test_another_tenant_and_a_grant_cannot_read_or_set_bucket_tags(server, tenant_b):
    t = tenant_with_bucket(server, {"doc": b"doc"})
    b, owner = t["bucket"], t["client"]
    owner.put_bucket_tagging(Bucket=b, Tagging={"TagSet": tagset({"mine": "yes"})})
    other = tenant_b["client"] if isinstance(tenant_b, dict) else tenant_b
    op = server.token("operator")
    grantee = grant_client(server, credentials(server, op, approved_grant(server, t, "write")))
    for who in (other, grantee):
        for call, kw in [
            (who.get_bucket_tagging, {}),
            (who.put_bucket_tagging, {"Tagging": {"TagSet": tagset({"theirs": "no"})}}),
            (who.delete_bucket_tagging, {}),
        ]:
            code, status, _ = client_error(call, Bucket=b, **kw)
            assert status in (403, 404) and code in ("AccessDenied", "NoSuchBucket"), (code, status)
    assert bucket_tags_of(owner, b) == {"mine": "yes"}
