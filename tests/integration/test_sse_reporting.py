"""Server-side encryption as S3 clients see it: obhut encrypts every object (SSE-S3 in S3's
terms), so writes and reads report `x-amz-server-side-encryption: AES256`, and a bucket's
default encryption is AES256; Put/Get/DeleteBucketEncryption accept and answer it. SSE-KMS and
SSE-C are not supported yet: asking for them is refused, never silently ignored."""

import pytest

from s3helpers import client_error, expect_error, unique_name

PART = 5 * 1024 * 1024


def sse(resp) -> str | None:
    return resp["ResponseMetadata"]["HTTPHeaders"].get("x-amz-server-side-encryption")


def test_every_write_and_read_reports_aes256(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="a", Body=b"hello")
    assert put["ServerSideEncryption"] == "AES256" and sse(put) == "AES256"
    assert s3.get_object(Bucket=bucket, Key="a")["ServerSideEncryption"] == "AES256"
    assert s3.head_object(Bucket=bucket, Key="a")["ServerSideEncryption"] == "AES256"
    copy = s3.copy_object(Bucket=bucket, Key="b", CopySource={"Bucket": bucket, "Key": "a"})
    assert copy["ServerSideEncryption"] == "AES256"
    mpu = s3.create_multipart_upload(Bucket=bucket, Key="m")
    assert mpu["ServerSideEncryption"] == "AES256"
    p1 = s3.upload_part(Bucket=bucket, Key="m", UploadId=mpu["UploadId"], PartNumber=1, Body=b"x" * PART)
    assert p1["ServerSideEncryption"] == "AES256"
    p2 = s3.upload_part_copy(Bucket=bucket, Key="m", UploadId=mpu["UploadId"], PartNumber=2,
                             CopySource={"Bucket": bucket, "Key": "a"})
    assert p2["ServerSideEncryption"] == "AES256"
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="m", UploadId=mpu["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]},
                                   {"PartNumber": 2, "ETag": p2["CopyPartResult"]["ETag"]}]})
    assert done["ServerSideEncryption"] == "AES256"
    assert s3.head_object(Bucket=bucket, Key="m")["ServerSideEncryption"] == "AES256"


def test_asking_for_aes256_is_taken_and_anything_else_refused(s3, bucket):
    r = s3.put_object(Bucket=bucket, Key="asked", Body=b"x", ServerSideEncryption="AES256")
    assert r["ServerSideEncryption"] == "AES256"
    r = s3.create_multipart_upload(Bucket=bucket, Key="asked-mpu", ServerSideEncryption="AES256")
    s3.abort_multipart_upload(Bucket=bucket, Key="asked-mpu", UploadId=r["UploadId"])
    for kw in [{"ServerSideEncryption": "aws:kms"},
               {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/some-key"}]:
        expect_error(s3.put_object, "NotImplemented", 501, Bucket=bucket, Key="kms", Body=b"x", **kw)
        expect_error(s3.create_multipart_upload, "NotImplemented", 501, Bucket=bucket, Key="kms", **kw)
        expect_error(s3.copy_object, "NotImplemented", 501, Bucket=bucket, Key="kms",
                     CopySource={"Bucket": bucket, "Key": "asked"}, **kw)
    expect_error(s3.head_object, "404", 404, Bucket=bucket, Key="kms")


def test_bucket_encryption_is_aes256(s3, bucket):
    def default():
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        assert len(rules) == 1, rules
        return rules[0]["ApplyServerSideEncryptionByDefault"]

    assert default() == {"SSEAlgorithm": "AES256"}
    r = s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert default() == {"SSEAlgorithm": "AES256"}
    expect_error(s3.put_bucket_encryption, "NotImplemented", 501, Bucket=bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "k"}}]})
    expect_error(s3.put_bucket_encryption, "InvalidArgument", 400, Bucket=bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256", "KMSMasterKeyID": "k"}}]})
    r = s3.delete_bucket_encryption(Bucket=bucket)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert default() == {"SSEAlgorithm": "AES256"}, "every object is encrypted whatever the configuration"


def test_another_tenant_cannot_read_or_set_bucket_encryption(s3, bucket, tenant_b):
    other = tenant_b["client"]
    for call, kw in [
        (other.get_bucket_encryption, {}),
        (other.put_bucket_encryption, {"ServerSideEncryptionConfiguration": {
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}}),
        (other.delete_bucket_encryption, {}),
    ]:
        code, status, _ = client_error(call, Bucket=bucket, **kw)
        assert (code, status) == ("AccessDenied", 403), (call, code, status)
    missing = unique_name("nosuch")
    expect_error(s3.get_bucket_encryption, "NoSuchBucket", 404, Bucket=missing)


def test_get_object_attributes(s3, bucket):
    body = b"attributes"
    put = s3.put_object(Bucket=bucket, Key="a", Body=body, ChecksumAlgorithm="SHA256")
    got = s3.get_object_attributes(Bucket=bucket, Key="a",
                                   ObjectAttributes=["ETag", "Checksum", "ObjectSize", "StorageClass", "ObjectParts"])
    assert got["ETag"].strip('"') == put["ETag"].strip('"')
    assert got["ObjectSize"] == len(body) and got["StorageClass"] == "STANDARD"
    assert got["Checksum"]["ChecksumSHA256"] == put["ChecksumSHA256"]
    assert "ObjectParts" not in got, "an object not uploaded in parts has none"
    only_size = s3.get_object_attributes(Bucket=bucket, Key="a", ObjectAttributes=["ObjectSize"])
    assert only_size["ObjectSize"] == len(body) and "ETag" not in only_size and "Checksum" not in only_size
    mpu = s3.create_multipart_upload(Bucket=bucket, Key="m")
    parts = []
    for n in (1, 2):
        p = s3.upload_part(Bucket=bucket, Key="m", UploadId=mpu["UploadId"], PartNumber=n, Body=b"y" * PART)
        parts.append({"PartNumber": n, "ETag": p["ETag"]})
    s3.complete_multipart_upload(Bucket=bucket, Key="m", UploadId=mpu["UploadId"], MultipartUpload={"Parts": parts})
    got = s3.get_object_attributes(Bucket=bucket, Key="m", ObjectAttributes=["ObjectParts", "ObjectSize"])
    assert got["ObjectParts"]["TotalPartsCount"] == 2 and got["ObjectSize"] == 2 * PART
    expect_error(s3.get_object_attributes, "NoSuchKey", 404, Bucket=bucket, Key="missing", ObjectAttributes=["ETag"])


def test_another_tenant_cannot_read_object_attributes(s3, bucket, tenant_b):
    s3.put_object(Bucket=bucket, Key="a", Body=b"x")
    code, status, _ = client_error(tenant_b["client"].get_object_attributes, Bucket=bucket, Key="a",
                                   ObjectAttributes=["ETag"])
    assert (code, status) == ("AccessDenied", 403)
