"""The AWS CLI's default upload path, unchanged: aws-cli v1 from PyPI (pinned in
tests/requirements.txt), whose botocore (1.36 and later) computes a CRC32 of every upload by
default (`request_checksum_calculation = when_supported`) and, over https, sends it as an
aws-chunked trailer (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`). Run against obhut's own TLS
listener, so nothing in the client is patched; each upload reads back byte for byte, and the
checksum it sent is the one obhut answers."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import zlib

from conftest import run_aws
from s3helpers import parse_env_file
from test_listener_tls import tls_server  # noqa: F401 (fixture)

MIB = 1024 * 1024


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MIB), b""):
            h.update(chunk)
    return h.hexdigest()


def sent_with_crc32_trailer(stderr: str) -> bool:
    return "STREAMING-UNSIGNED-PAYLOAD-TRAILER" in stderr and "x-amz-checksum-crc32" in stderr


def test_aws_cli_default_uploads_send_crc32_trailers_and_read_back_whole(tls_server, tmp_path):
    srv = tls_server()
    env = parse_env_file(srv.demo_env_path.read_text())
    env["AWS_DEFAULT_REGION"] = env["AWS_REGION"]
    r = run_aws(srv, "--version", env=env)
    version = r.stdout + r.stderr
    m = re.search(r"botocore/(\d+)\.(\d+)", version)
    assert m and (int(m[1]), int(m[2])) >= (1, 36), f"aws-cli's botocore is older than 1.36: {version!r}"
    run_aws(srv, "s3", "mb", "s3://defaults", env=env)

    # `aws s3 cp` of a small file (one PUT) and of one past the 8 MiB multipart threshold.
    for name, size in (("small", 3000), ("multipart", 17 * MIB + 3)):
        src = tmp_path / f"{name}.bin"
        src.write_bytes(os.urandom(size))
        r = run_aws(srv, "--debug", "s3", "cp", str(src), f"s3://defaults/{name}", env=env)
        assert sent_with_crc32_trailer(r.stderr), f"{name}: the upload did not carry a CRC32 trailer"
        back = tmp_path / f"{name}.back"
        run_aws(srv, "s3", "cp", f"s3://defaults/{name}", str(back), env=env)
        assert back.stat().st_size == size
        assert sha256_file(back) == sha256_file(src), f"{name}: bytes read back differ"

    # `aws s3api put-object`: the CRC32 it sent is the one obhut keeps and answers.
    data = os.urandom(70_000)
    src = tmp_path / "api.bin"
    src.write_bytes(data)
    r = run_aws(srv, "--debug", "s3api", "put-object", "--bucket", "defaults", "--key", "api",
                "--body", str(src), env=env)
    assert sent_with_crc32_trailer(r.stderr), "put-object did not carry a CRC32 trailer"
    assert json.loads(r.stdout)["ChecksumCRC32"] == crc32_b64(data)
    head = json.loads(run_aws(srv, "s3api", "head-object", "--bucket", "defaults", "--key", "api",
                              "--checksum-mode", "ENABLED", env=env).stdout)
    assert head["ChecksumCRC32"] == crc32_b64(data)
    assert head["ContentLength"] == len(data)
    assert "aws-chunked" not in head.get("ContentEncoding", "")
    back = tmp_path / "api.back"
    run_aws(srv, "s3api", "get-object", "--bucket", "defaults", "--key", "api", str(back), env=env)
    assert back.read_bytes() == data
