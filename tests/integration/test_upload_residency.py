"""Guarantee 1 for multipart uploads: an upload's placement is decided once, when
it is created, and every part goes there; a narrower residency policy is refused
(409, naming each bucket and how many unfinished uploads) while unfinished
uploads hold or would hold parts outside it; and CompleteMultipartUpload checks
every part's sites against the policy as it is now, so an upload whose parts
lie outside it is never acknowledged, whatever the catalog says
(docs/residency.md, "Unfinished multipart uploads")."""

from __future__ import annotations

import json
import sqlite3

import botocore.exceptions
import pytest

from site_helpers import (
    new_bucket,
    policy,
    run_fail,
    run_ok,
    site_add_fs,
    site_blobs,
)


def upload_on_at_site(srv, tmp_path, bucket_prefix: str):
    """An unfinished upload of demo with one part on at-vie and de-fra (demo allows DE and
    AT; placement takes the first eligible sites in id order)."""
    at = tmp_path / "at-vie"
    site_add_fs(srv, "at-vie", "AT", at)
    policy(srv, "demo", jurisdiction="DE,AT")
    s3 = srv.client()
    bucket = new_bucket(s3, bucket_prefix)
    up = s3.create_multipart_upload(Bucket=bucket, Key="half-done")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="half-done", UploadId=up, PartNumber=1, Body=b"p" * 1000)["ETag"]
    assert len(site_blobs(at)) == 1, "the part should be on the AT site"
    return s3, bucket, up, etag, at


def test_narrowing_a_tenant_is_refused_while_an_unfinished_upload_has_parts_outside(private_server, tmp_path):
    srv = private_server
    s3, bucket, up, etag, at = upload_on_at_site(srv, tmp_path, "mpu-narrow")
    # The attack: narrow to DE, then complete the upload, whose part is in AT.
    err = run_fail(srv, srv.token("officer1"), "tenant", "policy", "demo", "--jurisdiction", "DE", status=409,
                   says=[bucket, "1 unfinished multipart upload"])
    assert "abort" in err.lower(), f"the refusal should say what to do: {err!r}"
    out = run_ok(srv, srv.token("officer1"), "tenant", "policy", "demo")
    assert "DE,AT" in out, f"the refused narrowing took effect anyway: {out!r}"
    # A bucket's narrowing is refused the same way.
    run_fail(srv, srv.token("demo_admin"), "tenant", "bucket-policy", "demo", "--bucket", bucket,
             "--jurisdiction", "DE", status=409, says=[bucket, "1 unfinished multipart upload"])
    # Once the upload is aborted, the narrowing goes through.
    s3.abort_multipart_upload(Bucket=bucket, Key="half-done", UploadId=up)
    out = policy(srv, "demo", jurisdiction="DE")
    assert "jurisdictions DE," in out, out


def test_an_upload_placed_outside_a_narrower_bucket_policy_blocks_it_even_without_parts(private_server, tmp_path):
    srv = private_server
    site_add_fs(srv, "at-vie", "AT", tmp_path / "at-vie")
    policy(srv, "demo", jurisdiction="DE,AT")
    s3 = srv.client()
    bucket = new_bucket(s3, "mpu-empty")
    up = s3.create_multipart_upload(Bucket=bucket, Key="not-yet")["UploadId"]
    # The upload holds no byte yet, but every part it would get goes to its AT site.
    run_fail(srv, srv.token("demo_admin"), "tenant", "bucket-policy", "demo", "--bucket", bucket,
             "--jurisdiction", "DE", status=409, says=[bucket, "unfinished multipart upload"])
    s3.abort_multipart_upload(Bucket=bucket, Key="not-yet", UploadId=up)
    run_ok(srv, srv.token("demo_admin"), "tenant", "bucket-policy", "demo", "--bucket", bucket,
           "--jurisdiction", "DE")


def edit_catalog(srv, sql: str, *args) -> None:
    db = sqlite3.connect(srv.data_dir / "catalog.db")
    try:
        db.execute(sql, args)
        db.commit()
    finally:
        db.close()


def test_completing_an_upload_whose_parts_lie_outside_the_policy_is_never_acknowledged(
        private_server_factory, tmp_path):
    srv = private_server_factory()
    site_add_fs(srv, "at-vie", "AT", tmp_path / "at-vie")
    s3 = srv.client()
    bucket = new_bucket(s3, "mpu-edit")
    up = s3.create_multipart_upload(Bucket=bucket, Key="obj")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="obj", UploadId=up, PartNumber=1, Body=b"q" * 1000)["ETag"]
    srv.stop_ok()
    # The provider's database administrator records the part (and the upload) on the AT
    # site, which demo's policy (DE only) does not allow.
    edit_catalog(srv, "UPDATE parts SET sites = ? WHERE upload_id = ?", json.dumps(["at-vie", "de-fra"]), up)
    srv.start()
    s3 = srv.client()
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="obj", UploadId=up,
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    err = e.value.response["Error"]
    assert err["Code"] == "InvalidRequest" and "residency policy" in err["Message"], err
    assert "at-vie" in err["Message"], err
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.head_object(Bucket=bucket, Key="obj")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404, "no object was made"


def test_an_upload_keeps_the_placement_it_was_created_with(private_server, tmp_path):
    srv = private_server
    s3 = srv.client()
    bucket = new_bucket(s3, "mpu-place")
    up = s3.create_multipart_upload(Bucket=bucket, Key="big")["UploadId"]
    first = b"a" * (5 * 1024 * 1024)
    e1 = s3.upload_part(Bucket=bucket, Key="big", UploadId=up, PartNumber=1, Body=first)["ETag"]
    # A new site that comes first in the registry: a placement made now would choose it.
    ber = tmp_path / "de-ber"
    site_add_fs(srv, "de-ber", "DE", ber)
    s3.put_object(Bucket=bucket, Key="single", Body=b"placed now")
    assert len(site_blobs(ber)) == 1, "a placement made now chooses de-ber"
    e2 = s3.upload_part(Bucket=bucket, Key="big", UploadId=up, PartNumber=2, Body=b"b" * 100)["ETag"]
    assert len(site_blobs(ber)) == 1, "the upload's second part went elsewhere than its placement"
    s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=up,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1},
                                                            {"PartNumber": 2, "ETag": e2}]})
    got = s3.get_object(Bucket=bucket, Key="big")["Body"].read()
    assert got == first + b"b" * 100


def test_an_upload_placed_on_a_site_since_drained_and_removed_goes_on(private_server, tmp_path):
    """A drain moves an unfinished upload's parts; once the drained site is removed, the
    upload's kept placement names a site that is gone, which is no residency question: the
    next part is placed anew and the upload completes."""
    from site_helpers import set_state, sites, wait_repair_idle

    srv = private_server
    site_add_fs(srv, "de-ber", "DE", tmp_path / "de-ber")
    s3 = srv.client()
    bucket = new_bucket(s3, "mpu-gone")
    up = s3.create_multipart_upload(Bucket=bucket, Key="long")["UploadId"]
    first = b"c" * (5 * 1024 * 1024)
    e1 = s3.upload_part(Bucket=bucket, Key="long", UploadId=up, PartNumber=1, Body=first)["ETag"]
    assert len(site_blobs(tmp_path / "de-ber")) == 1, "the upload was placed on de-ber (first in id order)"
    set_state(srv, "de-ber", "draining")
    wait_repair_idle(srv)
    assert sites(srv)["de-ber"]["replicas"] == 0
    run_ok(srv, srv.token("officer1"), "site", "remove", "de-ber")
    e2 = s3.upload_part(Bucket=bucket, Key="long", UploadId=up, PartNumber=2, Body=b"d" * 10)["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="long", UploadId=up,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1},
                                                            {"PartNumber": 2, "ETag": e2}]})
    assert s3.get_object(Bucket=bucket, Key="long")["Body"].read() == first + b"d" * 10
