"""A real Garage (the S3 cluster that S3 sites are tested against) for the
integration tests: one node on free loopback ports under the test's temporary
directory, `replication_factor = 1`, a layout of that one node, one access key,
and buckets that key owns.

Garage is AGPL-3.0 and runs as a server of its own, never linked into obhut:
this module only starts its binary (OBHUT_GARAGE_BIN, else
$OBHUT_TOOLS_ROOT/bin/garage, else /var/tmp/obhut-tools/bin/garage, where
scripts/test installs it) and drives its CLI. A missing binary is a failure
naming it, never a skip. The node's config file (it holds the RPC secret) is
0600; the key's secret is never printed."""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from conftest import free_port
from s3helpers import unique_name

GARAGE_VERSION = "2.5.0"
REGION = "garage"


def garage_bin() -> str:
    explicit = os.environ.get("OBHUT_GARAGE_BIN")
    root = Path(os.environ.get("OBHUT_TOOLS_ROOT") or "/var/tmp/obhut-tools")
    path = Path(explicit) if explicit else root / "bin" / "garage"
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30)
    except OSError as e:
        pytest.fail(
            f"garage {GARAGE_VERSION} is needed to test S3 sites against a real cluster, and {path} cannot be run "
            f"({e}): run scripts/test --setup-only, or set OBHUT_GARAGE_BIN",
            pytrace=False,
        )
    if GARAGE_VERSION not in out.stdout:
        pytest.fail(f"{path} is not garage {GARAGE_VERSION} (it says {out.stdout.strip()!r}); scripts/test installs it",
                    pytrace=False)
    return str(path)


class Garage:
    """One Garage node of a test's own."""

    def __init__(self, base: Path):
        self.bin = garage_bin()
        self.dir = base
        self.dir.mkdir(parents=True, exist_ok=True)
        self.s3_port = free_port()
        self.rpc_port = free_port()
        while self.rpc_port == self.s3_port:
            self.rpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.s3_port}"
        self.config = self.dir / "garage.toml"
        self.log_path = self.dir / "garage.log"
        self.proc: subprocess.Popen | None = None
        self.key_id = ""
        self.secret_key = ""

    def start(self) -> "Garage":
        text = (
            f'metadata_dir = "{self.dir / "meta"}"\n'
            f'data_dir = "{self.dir / "data"}"\n'
            'db_engine = "sqlite"\n'
            "replication_factor = 1\n"
            f'rpc_bind_addr = "127.0.0.1:{self.rpc_port}"\n'
            f'rpc_public_addr = "127.0.0.1:{self.rpc_port}"\n'
            f'rpc_secret = "{secrets.token_hex(32)}"\n'
            "\n[s3_api]\n"
            f's3_region = "{REGION}"\n'
            f'api_bind_addr = "127.0.0.1:{self.s3_port}"\n'
        )
        fd = os.open(self.config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.bin, "-c", str(self.config), "server"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            env=dict(os.environ, RUST_LOG="garage=warn"),
        )
        log.close()
        deadline = time.monotonic() + 60
        while True:
            r = subprocess.run([self.bin, "-c", str(self.config), "status"], capture_output=True, text=True,
                               timeout=30)
            if r.returncode == 0:
                break
            assert self.proc.poll() is None, f"garage exited ({self.proc.returncode}):\n{self.log_tail()}"
            assert time.monotonic() < deadline, f"garage did not answer `garage status` in 60 s:\n{self.log_tail()}"
            time.sleep(0.2)
        node = self.cli("node", "id", "-q").strip().split("@")[0]
        self.cli("layout", "assign", "-z", "dc1", "-c", "1G", node)
        self.cli("layout", "apply", "--version", "1")
        self.key_id, self.secret_key = self.new_key("obhut-test")
        return self

    def new_key(self, name: str, bucket: str | None = None) -> tuple[str, str]:
        """A new access key (id, secret), given read, write and owner rights on `bucket`."""
        out = self.cli("key", "create", name)
        fields = {}
        for line in out.splitlines():
            field, sep, value = line.partition(":")
            if sep:
                fields[field.strip()] = value.strip()
        key_id, secret = fields.get("Key ID", ""), fields.get("Secret key", "")
        assert key_id and secret, "garage key create printed no Key ID or Secret key"
        if bucket is not None:
            self.cli("bucket", "allow", "--read", "--write", "--owner", bucket, "--key", key_id)
        return key_id, secret

    def delete_key(self, key_id: str) -> None:
        self.cli("key", "delete", "--yes", key_id)

    def cli(self, *args: str) -> str:
        r = subprocess.run([self.bin, "-c", str(self.config), *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"garage {' '.join(args)} failed: {r.stderr.strip()}\n{self.log_tail()}"
        return r.stdout

    def new_bucket(self, prefix: str = "site") -> str:
        name = unique_name(prefix)
        self.cli("bucket", "create", name)
        self.cli("bucket", "allow", "--read", "--write", "--owner", name, "--key", self.key_id)
        return name

    def client(self):
        return boto3.session.Session().client(
            "s3", endpoint_url=self.url, aws_access_key_id=self.key_id, aws_secret_access_key=self.secret_key,
            region_name=REGION,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                          retries={"max_attempts": 1, "mode": "standard"}),
        )

    def site(self, bucket: str | None = None) -> dict:
        """What `add_s3_site` needs, in the shape `s3_site_server` gives."""
        return {
            "server": self,
            "url": self.url,
            "bucket": bucket or self.new_bucket(),
            "access_key": self.key_id,
            "secret_key": self.secret_key,
            "region": REGION,
        }

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)


@pytest.fixture
def garage(tmp_path):
    """A Garage node of this test's own, stopped when the test ends."""
    node = Garage(tmp_path / "garage")
    try:
        yield node.start()
    finally:
        node.stop()
