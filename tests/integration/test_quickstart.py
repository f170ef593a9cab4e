"""The README quick-start with the AWS CLI: source demo.env, `aws s3 mb`,
`aws s3 cp`, `aws s3 ls`, byte-identical round trips at the sizes that
matter (empty, one byte, just over a multipart part, and a real multipart
upload)."""

import hashlib
import json
import os
import subprocess

import pytest

from conftest import aws_env, clean_env, tool
from s3helpers import multipart_etag, unique_name

MIB = 1024 * 1024
CLI_PART = 8 * MIB  # aws-cli's default multipart_chunksize and threshold


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MIB), b""):
            h.update(block)
    return h.hexdigest()


def write_random(path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, MIB)
            f.write(os.urandom(n))
            left -= n


@pytest.fixture(scope="module")
def qs_bucket(server):
    from conftest import run_aws

    name = unique_name("quickstart")
    r = run_aws(server, "s3", "mb", f"s3://{name}")
    assert f"make_bucket: {name}" in r.stdout
    r = run_aws(server, "s3", "ls")
    assert name in r.stdout, r.stdout
    return name


def test_demo_env_alone_is_enough_for_aws_cli(server):
    """Exactly what a user has after `set -a; . obhut-data/demo.env`."""
    name = unique_name("demoenv")
    script = f'set -a; . "{server.demo_env_path}"; set +a; aws s3 mb s3://{name} && aws s3 ls'
    env = clean_env({"PATH": f"{os.path.dirname(tool('aws'))}:{os.environ.get('PATH', '/usr/bin:/bin')}"})
    r = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"aws-cli with only demo.env's variables failed:\n{r.stderr}"
    assert name in r.stdout


@pytest.mark.parametrize(
    "size",
    [0, 1, 5 * MIB + 1, 100 * MIB],
    ids=["0B", "1B", "5MiB+1", "100MiB-multipart"],
)
def test_cp_roundtrip(server, aws, qs_bucket, tmp_path, size):
    src = tmp_path / "src.bin"
    write_random(src, size)
    key = f"data/file-{size}.bin"
    aws("s3", "cp", str(src), f"s3://{qs_bucket}/{key}")

    r = aws("s3", "ls", f"s3://{qs_bucket}/data/")
    line = [ln for ln in r.stdout.splitlines() if ln.endswith(f"file-{size}.bin")]
    assert line, f"aws s3 ls does not show {key}:\n{r.stdout}"
    assert line[0].split()[2] == str(size), f"listed size differs: {line[0]!r}"

    head = json.loads(aws("s3api", "head-object", "--bucket", qs_bucket, "--key", key).stdout)
    assert head["ContentLength"] == size
    data = src.read_bytes()
    if size < CLI_PART:
        assert head["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    else:
        parts = [data[i : i + CLI_PART] for i in range(0, size, CLI_PART)]
        assert head["ETag"] == multipart_etag(parts), "multipart ETag is not MD5-of-MD5s-N"
    del data

    dst = tmp_path / "dst.bin"
    aws("s3", "cp", f"s3://{qs_bucket}/{key}", str(dst))
    assert dst.stat().st_size == size
    assert sha256_file(dst) == sha256_file(src), "downloaded bytes differ from uploaded bytes"


# Runs the AWS CLI as it behaves against an https endpoint: uploads carry
# their CRC32 as an aws-chunked trailer (STREAMING-UNSIGNED-PAYLOAD-TRAILER)
# instead of a header. Only the scheme test in botocore is changed.
TLS_STYLE_AWS = """
import sys
import awscli.clidriver
import botocore.httpchecksum as hc
_orig = hc.urlparse
hc.urlparse = lambda url, *a, **k: _orig(url, *a, **k)._replace(scheme="https")
sys.argv[0] = "aws"
sys.exit(awscli.clidriver.main())
"""


@pytest.mark.parametrize("size", [3000, 20 * MIB + 5], ids=["small", "multipart"])
def test_cp_with_trailing_checksums(server, qs_bucket, tmp_path, size):
    src = tmp_path / "src.bin"
    write_random(src, size)
    key = f"trailer/{size}.bin"
    python = os.path.join(os.path.dirname(tool("aws")), "python")
    r = subprocess.run(
        [python, "-c", TLS_STYLE_AWS, "--debug", "s3", "cp", str(src), f"s3://{qs_bucket}/{key}"],
        env=clean_env(aws_env(server)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, f"aws s3 cp with trailing checksums failed:\n{r.stderr[-3000:]}"
    assert "STREAMING-UNSIGNED-PAYLOAD-TRAILER" in r.stderr, "the upload did not use an aws-chunked trailer"
    dst = tmp_path / "dst.bin"
    from conftest import run_aws

    run_aws(server, "s3", "cp", f"s3://{qs_bucket}/{key}", str(dst))
    assert sha256_file(dst) == sha256_file(src)
    head = json.loads(run_aws(server, "s3api", "head-object", "--bucket", qs_bucket, "--key", key).stdout)
    assert "aws-chunked" not in head.get("ContentEncoding", ""), (
        f"Content-Encoding stored as {head.get('ContentEncoding')!r}: aws-chunked is a transfer detail"
    )


def test_sync_rm_rb(server, aws, tmp_path):
    name = unique_name("sync")
    aws("s3", "mb", f"s3://{name}")
    src = tmp_path / "tree"
    files = {"a.txt": b"alpha", "sub/b.txt": b"beta" * 1000, "sub/deeper/c.bin": os.urandom(70000), "empty": b""}
    for rel, data in files.items():
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    aws("s3", "sync", str(src), f"s3://{name}/tree")
    r = aws("s3", "ls", "--recursive", f"s3://{name}/")
    listed = sorted(ln.split(None, 3)[3] for ln in r.stdout.splitlines() if ln.strip())
    assert listed == sorted(f"tree/{k}" for k in files)

    back = tmp_path / "back"
    aws("s3", "sync", f"s3://{name}/tree", str(back))
    for rel, data in files.items():
        assert (back / rel).read_bytes() == data, rel

    # A second sync has nothing to do.
    r = aws("s3", "sync", str(src), f"s3://{name}/tree")
    assert "upload:" not in r.stdout, r.stdout

    aws("s3", "rm", "--recursive", f"s3://{name}/")
    aws("s3", "rb", f"s3://{name}")
    assert name not in aws("s3", "ls").stdout
