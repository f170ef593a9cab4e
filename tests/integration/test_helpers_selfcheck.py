"""Checks of the test helpers themselves against known values and botocore,
so that a failure elsewhere points at the server, not at the test's signer."""

import datetime as dt
import io
from unittest import mock

from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum

import s3helpers as h

NOW = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)


def test_crc_check_values():
    assert h.crc32c_int(b"123456789") == 0xE3069283
    assert h.crc64nvme_int(b"123456789") == 0xAE8B14860A799888
    assert h.checksum_b64("CRC32", b"") == "AAAAAA=="


def test_header_signature_matches_botocore():
    creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    body = b"hello world"
    url = "http://127.0.0.1:9000/bucket/some%20key/x%2By?partNumber=1&uploadId=a%2Fb"
    req = AWSRequest(method="PUT", url=url, data=body, headers={"Content-Type": "text/plain", "x-amz-meta-a": "b"})
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        S3SigV4Auth(creds, "s3", h.REGION).add_auth(req)
    ours = h.sign(
        "PUT",
        "127.0.0.1:9000",
        h.RawS3.path("bucket", "some key/x+y"),
        [("partNumber", "1"), ("uploadId", "a/b")],
        {"Content-Type": "text/plain", "x-amz-meta-a": "b"},
        h.sha256_hex(body),
        creds.access_key,
        creds.secret_key,
        now=NOW,
    )
    assert ours.headers["x-amz-date"] == req.headers["X-Amz-Date"]
    assert ours.headers["Authorization"] == req.headers["Authorization"]


def test_presign_matches_botocore():
    creds = Credentials("AKIDEXAMPLE", "secret/with+chars")
    url = "http://127.0.0.1:9000/bucket/k%20ey"
    req = AWSRequest(method="GET", url=url)
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        S3SigV4QueryAuth(creds, "s3", h.REGION, expires=120).add_auth(req)
    theirs = dict(p.split("=", 1) for p in req.url.split("?", 1)[1].split("&"))
    ours = dict(
        p.split("=", 1)
        for p in h.presign("GET", "127.0.0.1:9000", "/bucket/k%20ey", [], creds.access_key, creds.secret_key, expires=120, now=NOW).split("&")
    )
    assert ours["X-Amz-Signature"] == theirs["X-Amz-Signature"]


def test_unsigned_chunked_body_matches_botocore():
    data = bytes(range(256)) * 300
    wrapper = AwsChunkedWrapper(io.BytesIO(data), checksum_cls=Crc32Checksum, checksum_name="x-amz-checksum-crc32", chunk_size=4096)
    theirs = b"".join(wrapper)
    ours = h.aws_chunked_unsigned(data, 4096, ("x-amz-checksum-crc32", h.checksum_b64("CRC32", data)))
    assert ours == theirs
