"""Two datacenters on this machine for tests: `scripts/two-dc up` into a temporary directory
once for all tests that use the fixture `two_dc` (conftest.py; test_two_dc.py and
test_two_dc_failover.py share it), and `scripts/two-dc down` after the last of them, also
when a test or the start fails (docs/deploy.md, "Two datacenters on one machine").

Tests talk to the deployment as its users would: S3 through the three gateways (boto3,
trusting the deployment's CA), the admin CLI, `scripts/two-dc status|cut|heal`. A test that
cuts the link heals it again before it ends (`with two_dc.partition(): ...`), and a test
that moves the catalog's primary moves it back to dc1 (`switchover("dc1")`), so that the
tests can share one deployment.

Needs root (network namespaces), PostgreSQL's server programs, Patroni, etcd, HAProxy,
openssl, and Garage (OBHUT_TOOLS_ROOT/bin/garage); a missing one fails the test with the
script's one line.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config

from conftest import REPO, obhut_bin, tool
from s3helpers import clean_env, parse_env_file

SCRIPT = REPO / "scripts" / "two-dc"
GATEWAYS = {"dc1": "GW_DC1_S3", "dc1b": "GW_DC1B_S3", "dc2": "GW_DC2_S3"}
# `scripts/two-dc up` takes about half a minute; a loaded machine may need more.
UP_TIMEOUT = 300


# The lease on background work, short for the tests (default 15 s renewed every 5 s), so
# that a dc1 gateway takes it over soon after a cut left it with nobody.
GATEWAY_ENV = {"OBHUT_LEASE_TTL_MS": "3000", "OBHUT_LEASE_RENEW_MS": "1000"}


class TwoDC:
    def __init__(self, base: Path, rtt_ms: float, gateway_env: dict[str, str] | None = None):
        self.dir = base
        self.rtt_ms = rtt_ms
        self.env: dict[str, str] = {}
        # The gateways' environment: they inherit the script's (`up`, `restart`).
        self.gateway_env = dict(GATEWAY_ENV if gateway_env is None else gateway_env)

    # ------------------------------------------------------------ the script
    def run(self, command: str, *extra: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        """`scripts/two-dc COMMAND DIR EXTRA...`."""
        r = subprocess.run(
            [str(SCRIPT), command, str(self.dir), *extra],
            env=clean_env({"OBHUT_BIN": str(obhut_bin()), **self.gateway_env}),
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

    def restart(self, gateway: str) -> None:
        """`scripts/two-dc restart DIR gw-…|patroni-…`: started again (after a kill) and ready."""
        self.run("restart", gateway, timeout=240)

    def switchover(self, dc: str) -> None:
        """`scripts/two-dc switchover DIR dc1|dc2`: the primary there, the other its sync standby."""
        self.run("switchover", dc, timeout=300)

    def patroni(self, status: str | None = None) -> dict[str, dict[str, str]]:
        """Patroni's members as `status` shows them (patronictl list): role, state, timeline."""
        members = {}
        for line in (status or self.status()).splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) >= 5 and cells[0] in ("dc1", "dc2"):
                members[cells[0]] = {"role": cells[2], "state": cells[3], "tl": cells[4]}
        return members

    def patroni_says(self, dc: str, endpoint: str) -> bool:
        """Whether dc1's or dc2's Patroni answers 200 to GET /ENDPOINT (primary, sync, health)."""
        try:
            r = requests.get(f"{self.env[f'PATRONI_{dc.upper()}_URL']}/{endpoint}", verify=self.ca, timeout=5)
        except requests.RequestException:
            return False
        return r.status_code == 200

    def kill9(self, gateway: str) -> int:
        """SIGKILL to gateway gw-dc1a, gw-dc1b or gw-dc2; returns its pid."""
        pid = int((self.dir / "run" / f"{gateway}.pid").read_text().strip())
        assert str(self.dir) in Path(f"/proc/{pid}/cmdline").read_text(), f"{gateway}: pid {pid} is not ours"
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text():
                return pid
            time.sleep(0.05)
        pytest.fail(f"{gateway} (pid {pid}) still runs after SIGKILL", pytrace=False)

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

    def admin_url(self, gateway: str) -> str:
        return self.env[GATEWAYS[gateway]].replace(":9000", ":9001")

    def role(self, gateway: str) -> str | None:
        """`leader` or `standby` for the lease on background work, as the gateway's /readyz says."""
        r = requests.get(self.admin_url(gateway) + "/readyz", verify=self.ca, timeout=5)
        return r.json().get("background")

    def aws(self, gateway: str, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        """aws-cli against gateway dc1, dc1b or dc2 as tenant demo (HTTPS, the deployment's CA)."""
        env = {k: self.env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")}
        env.update(AWS_DEFAULT_REGION=self.env["AWS_REGION"], AWS_CA_BUNDLE=self.ca, AWS_MAX_ATTEMPTS="1")
        cmd = [tool("aws"), "--endpoint-url", self.env[GATEWAYS[gateway]], *args]
        r = subprocess.run(cmd, env=clean_env(env), capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if check:
            assert r.returncode == 0, f"{' '.join(cmd[1:])} exited {r.returncode}:\n{r.stderr}\n{r.stdout[-2000:]}"
        return r

    def psql(self, which: str, sql: str, timeout: float = 30) -> str:
        """SQL as the catalog's role on the PostgreSQL `primary` or `standby` (TLS, verify-full)."""
        url = self.env["PG_PRIMARY_URL" if which == "primary" else "PG_STANDBY_URL"]
        psql = shutil.which("psql") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"))), None)
        if psql is None:
            pytest.fail("psql not found (Debian: apt-get install postgresql-client)", pytrace=False)
        r = subprocess.run([str(psql), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                           env=clean_env({"PGPASSWORD": self.env["PGPASSWORD"]}), capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, f"psql on the {which}: {r.stderr}"
        return r.stdout

    def cli(self, *args: str, token: str | None = None, timeout: float = 60,
            gateway: str = "dc1") -> subprocess.CompletedProcess:
        """An `obhut` admin command against a gateway's admin API (dc1's first by default)."""
        extra = {"OBHUT_ADMIN_URL": self.admin_url(gateway), "OBHUT_CA_BUNDLE": self.ca}
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
    when its start or the caller fails. (The fixture `two_dc` in conftest.py is the shared one,
    5 ms.) A module fixture with another round trip:

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
