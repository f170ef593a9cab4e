"""Two datacenters on this machine for tests: `scripts/two-dc up` into a temporary directory
once per test module that uses the fixture `two_dc`, and `scripts/two-dc down` at its end,
also when a test or the start fails (docs/deploy.md, "Two datacenters on one machine").

Tests talk to the deployment as its users would: S3 through the three gateways (boto3,
trusting the deployment's CA), the admin CLI, `scripts/two-dc status|cut|heal`. A test that
cuts the link heals it again before it ends (`with two_dc.partition(): ...`), so that the
tests of a module can share one deployment.

Needs root (network namespaces), PostgreSQL's server programs, openssl, and Garage
(OBHUT_TOOLS_ROOT/bin/garage); a missing one fails the test with the script's one line.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from conftest import REPO, obhut_bin
from s3helpers import clean_env, parse_env_file

SCRIPT = REPO / "scripts" / "two-dc"
GATEWAYS = {"dc1": "GW_DC1_S3", "dc1b": "GW_DC1B_S3", "dc2": "GW_DC2_S3"}
# `scripts/two-dc up` takes about half a minute; a loaded machine may need more.
UP_TIMEOUT = 300


class TwoDC:
    def __init__(self, base: Path, rtt_ms: float):
        self.dir = base
        self.rtt_ms = rtt_ms
        self.env: dict[str, str] = {}

    # ------------------------------------------------------------ the script
    def run(self, command: str, *extra: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        """`scripts/two-dc COMMAND DIR EXTRA...`."""
        r = subprocess.run(
            [str(SCRIPT), command, str(self.dir), *extra],
            env=clean_env({"OBHUT_BIN": str(obhut_bin())}),
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )
        if check and r.returncode != 0:
            pytest.fail(
                f"`scripts/two-dc {command} {self.dir} {' '.join(extra)}` exited {r.returncode}: "
                f"{r.stderr.strip()}\n{r.stdout[-2000:]}\n{self.log_tails()}",
                pytrace=False,
            )
        return r

    def up(self) -> "TwoDC":
        self.run("up", "--rtt-ms", str(self.rtt_ms), timeout=UP_TIMEOUT)
        self.env = parse_env_file((self.dir / "cluster.env").read_text())
        return self

    def down(self) -> subprocess.CompletedProcess:
        return self.run("down", timeout=120, check=False)

    def status(self) -> str:
        return self.run("status").stdout

    def cut(self) -> None:
        self.run("cut")

    def heal(self) -> None:
        self.run("heal")

    @contextlib.contextmanager
    def partition(self):
        """The link between the datacenters cut for the duration; healed also on failure."""
        self.cut()
        try:
            yield self
        finally:
            self.heal()

    def log_tails(self, lines: int = 15) -> str:
        out = []
        for log in sorted((self.dir / "logs").glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {log.name} (tail) ---\n" + "\n".join(text))
        return "\n".join(out)

    # ------------------------------------------------------------ what status shows
    def probe_rtt_ms(self, status: str | None = None) -> float | None:
        """The median round trip dc1 -> dc2 that `status` measured; None without answers."""
        m = re.search(r"min/median/max = [\d.]+/([\d.]+)/[\d.]+ ms", status or self.status())
        return float(m.group(1)) if m else None

    def replication(self, status: str | None = None) -> dict[str, dict[str, str]]:
        """pg_stat_replication on the primary, by application_name, as `status` shows it."""
        rows = {}
        for line in (status or self.status()).splitlines():
            m = re.match(r"\s+(\S+) (\S+) (state=.*)$", line)
            if m:
                rows[m.group(1)] = dict(kv.split("=", 1) for kv in m.group(3).split())
        return rows

    def namespace(self, name: str) -> str:
        """The network namespace of dc1, dc2 or client, for `ip netns exec`."""
        slot = (self.dir / "run" / "slot").read_text().strip()
        return f"obhut{slot}-{name}"

    def ns_run(self, name: str, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """CMD inside namespace dc1, dc2 or client."""
        return subprocess.run(["ip", "netns", "exec", self.namespace(name), *cmd], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    # ------------------------------------------------------------ clients
    @property
    def ca(self) -> str:
        return self.env["AWS_CA_BUNDLE"]

    def s3(self, gateway: str = "dc1", **config):
        """A boto3 client of tenant demo on gateway dc1, dc1b or dc2 (HTTPS, the deployment's CA)."""
        cfg = dict(signature_version="s3v4", s3={"addressing_style": "path"},
                   retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=90)
        cfg.update(config)
        return boto3.session.Session().client(
            "s3", endpoint_url=self.env[GATEWAYS[gateway]], region_name=self.env["AWS_REGION"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
            verify=self.ca, config=Config(**cfg),
        )

    def cli(self, *args: str, token: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        """An `obhut` admin command against dc1's first gateway."""
        extra = {"OBHUT_ADMIN_URL": self.env["OBHUT_ADMIN_URL"], "OBHUT_CA_BUNDLE": self.ca}
        if token is not None:
            extra["OBHUT_TOKEN"] = token
        return subprocess.run([str(obhut_bin()), *args], env=clean_env(extra), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def token(self, who: str) -> str:
        return self.env[f"OBHUT_{who.upper()}_TOKEN"]


def wait_until(what: str, seconds: float, fn, interval: float = 0.5):
    """Calls fn until it returns something true (or stops raising); fails after `seconds`."""
    deadline = time.monotonic() + seconds
    last: object = None
    while True:
        try:
            value = fn()
            if value:
                return value
            last = value
        except Exception as e:  # noqa: BLE001 (reported below)
            last = e
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {seconds}s (last: {last!r})", pytrace=False)
        time.sleep(interval)


@contextlib.contextmanager
def deployment(rtt_ms: float = 5):
    """A deployment in a fresh directory for the duration; `down` and removed afterwards, also
    when its start or the caller fails. A module fixture with another round trip:

        @pytest.fixture(scope="module")
        def two_dc_20ms():
            with deployment(rtt_ms=20) as dep:
                yield dep
    """
    if os.geteuid() != 0:
        pytest.fail("the two-datacenter tests need root (network namespaces)", pytrace=False)
    # Under /tmp, not pytest's directory: PostgreSQL runs as the user postgres and must reach
    # it, and its socket path must stay short.
    base = Path(tempfile.mkdtemp(prefix="obhut-2dc-", dir="/tmp"))
    dep = TwoDC(base, rtt_ms=rtt_ms)
    try:
        dep.up()
        yield dep
    finally:
        r = dep.down()
        shutil.rmtree(base, ignore_errors=True)
        if r.returncode != 0:
            pytest.fail(f"scripts/two-dc down failed: {r.stderr.strip()}", pytrace=False)


@pytest.fixture(scope="module")
def two_dc():
    """One deployment for the module, 5 ms between the datacenters."""
    with deployment(rtt_ms=5) as dep:
        yield dep
