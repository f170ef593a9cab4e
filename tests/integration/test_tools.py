"""Round trips through rclone and s3cmd, configured only through their
command lines and environment (no config written to $HOME)."""

import hashlib
import os
import subprocess

import pytest

from conftest import clean_env, tool
from s3helpers import unique_name

MIB = 1024 * 1024

TREE = {
    "a.txt": b"alpha\n",
    "empty.dat": b"",
    "nested/b.bin": os.urandom(300_000),
    "nested/deeper/c with space.txt": b"spaces in names",
    "nested/deeper/ünïcødé.txt": "grüße".encode(),
    "big/multi.bin": os.urandom(12 * MIB + 3),  # multipart with the flags below
}


def write_tree(root, files):
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def read_tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# ---------------------------------------------------------------- rclone


@pytest.fixture
def rclone(server, tmp_path):
    binary = tool("rclone")
    env = clean_env(
        {
            "RCLONE_CONFIG": str(tmp_path / "rclone-does-not-exist.conf"),
            "RCLONE_CONFIG_OBHUT_TYPE": "s3",
            "RCLONE_CONFIG_OBHUT_PROVIDER": "Other",
            "RCLONE_CONFIG_OBHUT_ACCESS_KEY_ID": server.demo["AWS_ACCESS_KEY_ID"],
            "RCLONE_CONFIG_OBHUT_SECRET_ACCESS_KEY": server.demo["AWS_SECRET_ACCESS_KEY"],
            "RCLONE_CONFIG_OBHUT_ENDPOINT": server.s3_url,
            "RCLONE_CONFIG_OBHUT_REGION": server.demo["AWS_REGION"],
            "RCLONE_CONFIG_OBHUT_FORCE_PATH_STYLE": "true",
            "RCLONE_CONFIG_OBHUT_UPLOAD_CUTOFF": "5Mi",
            "RCLONE_CONFIG_OBHUT_CHUNK_SIZE": "5Mi",
        }
    )

    def run(*args, check=True):
        r = subprocess.run(
            [binary, "--retries", "1", "--low-level-retries", "1", *args],
            env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
        )
        if check:
            assert r.returncode == 0, f"rclone {' '.join(args)} exited {r.returncode}:\n{r.stderr[-3000:]}"
        return r

    return run


def test_rclone_copy_ls_check_sync(rclone, s3, tmp_path):
    bucket = unique_name("rclone")
    rclone("mkdir", f"obhut:{bucket}")
    s3.head_bucket(Bucket=bucket)

    src = tmp_path / "src"
    write_tree(src, TREE)
    rclone("copy", str(src), f"obhut:{bucket}/tree")

    r = rclone("ls", f"obhut:{bucket}")
    listed = {}
    for line in r.stdout.splitlines():
        size, name = line.strip().split(" ", 1)
        listed[name] = int(size)
    assert listed == {f"tree/{k}": len(v) for k, v in TREE.items()}

    rclone("check", str(src), f"obhut:{bucket}/tree")  # sizes and hashes

    # A change, a removal and an addition, then sync: the remote follows.
    (src / "a.txt").write_bytes(b"alpha, changed\n")
    (src / "nested/b.bin").unlink()
    (src / "new.txt").write_bytes(b"new file")
    rclone("sync", str(src), f"obhut:{bucket}/tree")
    rclone("check", str(src), f"obhut:{bucket}/tree")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    expected = dict(TREE)
    expected.pop("nested/b.bin")
    expected["a.txt"] = b"alpha, changed\n"
    expected["new.txt"] = b"new file"
    assert keys == sorted(f"tree/{k}" for k in expected)

    dst = tmp_path / "dst"
    rclone("copy", f"obhut:{bucket}/tree", str(dst))
    assert read_tree(dst) == expected

    r = rclone("md5sum", f"obhut:{bucket}/tree/a.txt")
    assert r.stdout.split()[0] == hashlib.md5(b"alpha, changed\n").hexdigest()

    rclone("purge", f"obhut:{bucket}")
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_rclone_lsd_and_cat(rclone, s3, tmp_path):
    bucket = unique_name("rclone-lsd")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="d1/x", Body=b"x")
    s3.put_object(Bucket=bucket, Key="d2/y", Body=b"hello from obhut")
    r = rclone("lsd", f"obhut:{bucket}")
    dirs = sorted(line.split()[-1] for line in r.stdout.splitlines())
    assert dirs == ["d1", "d2"]
    r = rclone("lsd", "obhut:")
    assert bucket in r.stdout
    r = rclone("cat", f"obhut:{bucket}/d2/y")
    assert r.stdout == "hello from obhut"


# ---------------------------------------------------------------- s3cmd


@pytest.fixture
def s3cmd(server, tmp_path):
    binary = tool("s3cmd")
    host = server.s3_url.removeprefix("http://")
    cfg = tmp_path / "s3cmd.cfg"
    cfg.write_text("[default]\n")
    base = [
        binary, "-c", str(cfg),
        f"--host={host}", f"--host-bucket={host}",
        f"--access_key={server.demo['AWS_ACCESS_KEY_ID']}",
        f"--secret_key={server.demo['AWS_SECRET_ACCESS_KEY']}",
        "--no-ssl", f"--region={server.demo['AWS_REGION']}",
        "--multipart-chunk-size-mb=5",
    ]

    def run(*args, check=True):
        env = clean_env({"HOME": str(tmp_path)})
        r = subprocess.run([*base, *args], env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        if check:
            assert r.returncode == 0, f"s3cmd {' '.join(args)} exited {r.returncode}:\n{r.stderr[-3000:]}\n{r.stdout[-1000:]}"
        return r

    return run


def test_s3cmd_roundtrip(s3cmd, s3, tmp_path):
    bucket = unique_name("s3cmd")
    s3cmd("mb", f"s3://{bucket}")
    s3.head_bucket(Bucket=bucket)
    small = tmp_path / "small.txt"
    small.write_bytes(b"hello s3cmd\n")
    big = tmp_path / "big.bin"
    big_data = os.urandom(11 * MIB + 5)  # three parts of 5 MiB chunks
    big.write_bytes(big_data)
    s3cmd("put", str(small), f"s3://{bucket}/dir/small.txt")
    s3cmd("put", str(big), f"s3://{bucket}/dir/big.bin")
    head = s3.head_object(Bucket=bucket, Key="dir/big.bin")
    assert head["ContentLength"] == len(big_data)
    assert head["ETag"].endswith('-3"'), f"expected a 3-part multipart upload, ETag {head['ETag']}"

    r = s3cmd("ls", f"s3://{bucket}/dir/")
    assert f"s3://{bucket}/dir/small.txt" in r.stdout and f"s3://{bucket}/dir/big.bin" in r.stdout
    r = s3cmd("ls", "--recursive", f"s3://{bucket}")
    assert len([ln for ln in r.stdout.splitlines() if f"s3://{bucket}/" in ln]) == 2
    r = s3cmd("ls")
    assert f"s3://{bucket}" in r.stdout

    out = tmp_path / "out"
    out.mkdir()
    s3cmd("get", f"s3://{bucket}/dir/small.txt", str(out / "small.txt"))
    s3cmd("get", f"s3://{bucket}/dir/big.bin", str(out / "big.bin"))
    assert (out / "small.txt").read_bytes() == b"hello s3cmd\n"
    assert (out / "big.bin").read_bytes() == big_data

    r = s3cmd("info", f"s3://{bucket}/dir/small.txt")
    assert hashlib.md5(b"hello s3cmd\n").hexdigest() in r.stdout

    s3cmd("del", f"s3://{bucket}/dir/small.txt")
    s3cmd("del", f"s3://{bucket}/dir/big.bin")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    s3cmd("rb", f"s3://{bucket}")
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_s3cmd_sync(s3cmd, s3, tmp_path):
    bucket = unique_name("s3cmd-sync")
    s3cmd("mb", f"s3://{bucket}")
    src = tmp_path / "src"
    files = {k: v for k, v in TREE.items() if not k.startswith("big/")}
    write_tree(src, files)
    s3cmd("sync", f"{src}/", f"s3://{bucket}/t/")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == sorted(f"t/{k}" for k in files)
    back = tmp_path / "back"
    back.mkdir()
    s3cmd("sync", f"s3://{bucket}/t/", f"{back}/")
    assert read_tree(back) == files
