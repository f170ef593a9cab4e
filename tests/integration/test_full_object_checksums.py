"""Checksums of objects uploaded in parts, as boto3 asks for them: `FULL_OBJECT` (the CRC32,
CRC32C or CRC64NVME of the whole object, combined from the parts' CRCs) and `COMPOSITE` (the
SHA1, SHA256, CRC32 or CRC32C of the parts' checksums, with `-N`), answered by
CompleteMultipartUpload, by HEAD and GET with `ChecksumMode=ENABLED` (where botocore checks
the body against it), and part by part by GetObjectAttributes, a page at a time. Each
expected value is computed here from the bytes sent."""

from __future__ import annotations

import base64
import io
import os

import botocore.exceptions
import pytest
from boto3.s3.transfer import TransferConfig

from s3helpers import checksum_b64

MIB = 1024 * 1024
FIELD = {"CRC32": "ChecksumCRC32", "CRC32C": "ChecksumCRC32C", "CRC64NVME": "ChecksumCRC64NVME",
         "SHA1": "ChecksumSHA1", "SHA256": "ChecksumSHA256"}


def upload(s3, bucket: str, key: str, parts: list[bytes], algorithm: str, kind: str | None,
           complete_extra: dict | None = None):
    """A multipart upload made with `algorithm` (and `kind`), boto3 computing each part's
    checksum; returns the completion's answer."""
    create = {"ChecksumAlgorithm": algorithm}
    if kind:
        create["ChecksumType"] = kind
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, **create)
    if kind:
        assert up["ChecksumType"] == kind
    done = []
    for n, data in enumerate(parts, 1):
        # The part's checksum is given, as SDKs send it (botocore computes CRC32C and
        # CRC64NVME only with awscrt installed).
        part_sum = checksum_b64(algorithm, data)
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=up["UploadId"], PartNumber=n, Body=data,
                           **{FIELD[algorithm]: part_sum})
        assert r[FIELD[algorithm]] == part_sum
        done.append({"PartNumber": n, "ETag": r["ETag"], FIELD[algorithm]: part_sum})
    extra = dict(complete_extra or {})
    if kind == "FULL_OBJECT":
        extra.setdefault("ChecksumType", "FULL_OBJECT")
    try:
        return s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up["UploadId"],
                                            MultipartUpload={"Parts": done}, **extra)
    except botocore.exceptions.ClientError:
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=up["UploadId"])
        raise


def composite(algorithm: str, parts: list[bytes]) -> str:
    raw = b"".join(base64.b64decode(checksum_b64(algorithm, p)) for p in parts)
    return f"{checksum_b64(algorithm, raw)}-{len(parts)}"


def two_parts() -> list[bytes]:
    return [os.urandom(5 * MIB), os.urandom(MIB // 2 + 7)]


def assert_answered(s3, bucket: str, key: str, algorithm: str, kind: str, value: str, data: bytes) -> None:
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head[FIELD[algorithm]] == value and head["ChecksumType"] == kind, head
    # Not asked for, not answered.
    assert FIELD[algorithm] not in s3.head_object(Bucket=bucket, Key=key)
    got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert got[FIELD[algorithm]] == value and got["ChecksumType"] == kind
    assert got["Body"].read() == data


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME"])
def test_full_object_checksums_are_the_crc_of_the_whole_object(s3, bucket, algorithm):
    parts = two_parts()
    data = b"".join(parts)
    whole = checksum_b64(algorithm, data)
    done = upload(s3, bucket, "full", parts, algorithm, "FULL_OBJECT", {FIELD[algorithm]: whole})
    assert done[FIELD[algorithm]] == whole and done["ChecksumType"] == "FULL_OBJECT"
    assert_answered(s3, bucket, "full", algorithm, "FULL_OBJECT", whole, data)


def test_a_full_object_checksum_that_does_not_match_is_bad_digest_and_stores_nothing(s3, bucket):
    parts = two_parts()
    wrong = checksum_b64("CRC32", b"something else")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        upload(s3, bucket, "wrong", parts, "CRC32", "FULL_OBJECT", {"ChecksumCRC32": wrong})
    assert e.value.response["Error"]["Code"] == "BadDigest"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.head_object(Bucket=bucket, Key="wrong")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


@pytest.mark.parametrize("algorithm", ["SHA1", "SHA256", "CRC32", "CRC32C"])
def test_composite_checksums_are_of_the_parts_checksums_with_their_count(s3, bucket, algorithm):
    parts = two_parts()
    value = composite(algorithm, parts)
    done = upload(s3, bucket, "comp", parts, algorithm, "COMPOSITE")
    assert done[FIELD[algorithm]] == value and done["ChecksumType"] == "COMPOSITE"
    head = s3.head_object(Bucket=bucket, Key="comp", ChecksumMode="ENABLED")
    assert head[FIELD[algorithm]] == value and head["ChecksumType"] == "COMPOSITE"
    assert s3.get_object(Bucket=bucket, Key="comp")["Body"].read() == b"".join(parts)


def test_an_upload_without_a_type_takes_the_algorithms_default(s3, bucket):
    parts = two_parts()
    done = upload(s3, bucket, "sha", parts, "SHA256", None)
    assert done["ChecksumSHA256"] == composite("SHA256", parts) and done["ChecksumType"] == "COMPOSITE"
    done = upload(s3, bucket, "nvme", parts, "CRC64NVME", None)
    assert done["ChecksumCRC64NVME"] == checksum_b64("CRC64NVME", b"".join(parts))
    assert done["ChecksumType"] == "FULL_OBJECT"


@pytest.mark.parametrize("algorithm,kind", [("SHA256", "FULL_OBJECT"), ("SHA1", "FULL_OBJECT"),
                                            ("CRC64NVME", "COMPOSITE")])
def test_a_type_its_algorithm_cannot_make_is_refused(s3, bucket, algorithm, kind):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        s3.create_multipart_upload(Bucket=bucket, Key="no", ChecksumAlgorithm=algorithm, ChecksumType=kind)
    assert e.value.response["Error"]["Code"] == "InvalidRequest"
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_object_attributes_list_the_parts_a_page_at_a_time(s3, bucket):
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(1000)]
    upload(s3, bucket, "parts", parts, "SHA256", "COMPOSITE")
    first = s3.get_object_attributes(Bucket=bucket, Key="parts", ObjectAttributes=["ObjectParts", "Checksum"],
                                     MaxParts=2)
    assert first["Checksum"]["ChecksumSHA256"] == composite("SHA256", parts)
    assert first["Checksum"]["ChecksumType"] == "COMPOSITE"
    op = first["ObjectParts"]
    assert op["TotalPartsCount"] == 3 and op["IsTruncated"] is True and op["MaxParts"] == 2
    assert op["NextPartNumberMarker"] == 2
    assert [(p["PartNumber"], p["Size"], p["ChecksumSHA256"]) for p in op["Parts"]] == [
        (n, len(parts[n - 1]), checksum_b64("SHA256", parts[n - 1])) for n in (1, 2)
    ]
    rest = s3.get_object_attributes(Bucket=bucket, Key="parts", ObjectAttributes=["ObjectParts"],
                                    PartNumberMarker=2)["ObjectParts"]
    assert rest["IsTruncated"] is False
    assert [(p["PartNumber"], p["Size"], p["ChecksumSHA256"]) for p in rest["Parts"]] == [
        (3, 1000, checksum_b64("SHA256", parts[2]))
    ]


def test_boto3s_default_multipart_upload_has_a_checksum_botocore_checks_on_get(s3, bucket):
    data = os.urandom(11 * MIB + 5)
    sent = []

    def record(request, **kw):
        sent.append(dict(request.headers))

    event = "before-send.s3.CreateMultipartUpload"
    s3.meta.events.register(event, record)
    try:
        s3.upload_fileobj(io.BytesIO(data), bucket, "default",
                          Config=TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB))
    finally:
        s3.meta.events.unregister(event, record)
    assert sent, "no multipart upload was made"
    head = s3.head_object(Bucket=bucket, Key="default", ChecksumMode="ENABLED")
    assert head["PartsCount"] == 3
    kind = head["ChecksumType"]
    if kind == "FULL_OBJECT":
        assert head["ChecksumCRC32"] == checksum_b64("CRC32", data)
    else:
        parts = [data[i:i + 5 * MIB] for i in range(0, len(data), 5 * MIB)]
        assert head["ChecksumCRC32"] == composite("CRC32", parts)
    got = s3.get_object(Bucket=bucket, Key="default", ChecksumMode="ENABLED")
    assert got["Body"].read() == data
