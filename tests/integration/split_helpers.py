"""A split deployment for tests: `obhut trustee --config` and `obhut gateway
--config` as two real processes on free loopback ports, talking mutual TLS.

Bootstrap (there is no separate one yet): `obhut serve` runs once on a fresh
data dir, which lays out the catalog, the sites `de-fra` and `de-mgd`, tenant
`demo` with its S3 keys, the development principals, and the sealed keystore
in DIR/trustee with its development share file; it is stopped again. Then
`obhut trustee init-pki` makes the CA and the certificates, and the trustee
runs on DIR/trustee (auto-unsealing from the development share file) while
the gateway runs on DIR itself.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import ObhutServer, free_port, obhut_bin, s3_client
from s3helpers import clean_env, parse_env_file


def _free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        p = free_port()
        if p not in ports:
            ports.append(p)
    return ports


class Proc:
    """One long-running obhut process with its own log file."""

    def __init__(self, name: str, args: list[str], log_path: Path, env: dict[str, str] | None = None):
        self.name = name
        self.args = args
        self.log_path = log_path
        self.env = dict(env or {})
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Proc":
        assert not self.running(), f"{self.name} already running"
        log = open(self.log_path, "ab")
        log.write(f"\n===== start {time.strftime('%H:%M:%S')} =====\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [str(obhut_bin()), *self.args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=clean_env({"RUST_BACKTRACE": "1", **self.env}),
            start_new_session=True,
        )
        log.close()
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
                pytest.fail(f"{self.name} did not exit within {timeout}s of SIGTERM.\n{self.log_tail()}", pytrace=False)
        return self.proc.returncode

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return f"--- {self.name} log (tail) ---\n" + "\n".join(self.log_text().splitlines()[-lines:])

    def wait_ready(self, ready, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            code = self.proc.poll()
            if code is not None:
                pytest.fail(f"{self.name} exited with code {code} before it was ready.\n{self.log_tail()}", pytrace=False)
            try:
                ok, last = ready()
                if ok:
                    return
            except (requests.RequestException, OSError) as e:
                last = repr(e)
            if time.monotonic() > deadline:
                self.kill9()
                pytest.fail(f"{self.name} not ready after {timeout}s ({what}: {last}).\n{self.log_tail()}", pytrace=False)
            time.sleep(0.1)


class Split:
    """Trustee and gateway of one bootstrapped data dir."""

    def __init__(self, base: Path):
        self.base = base
        self.data_dir = base / "data"
        self.pki = base / "pki"
        self.trustee_port, self.s3_port, self.admin_port = _free_ports(3)
        self.demo: dict[str, str] = {}
        self.tokens: dict[str, str] = {}
        self.trustee: Proc | None = None
        self.gateway: Proc | None = None

    # ------------------------------------------------------------ setup
    def bootstrap(self) -> "Split":
        srv = ObhutServer(self.data_dir, self.base / "bootstrap-serve.log")
        srv.start()
        srv.stop_ok()
        self.demo = parse_env_file((self.data_dir / "demo.env").read_text())
        self.tokens = parse_env_file((self.data_dir / "dev-tokens.env").read_text())
        r = self.run("trustee", "init-pki", "--dir", str(self.pki), "--gateways", "2")
        assert r.returncode == 0, f"init-pki failed: {r.stderr}"
        return self

    @property
    def trustee_url(self) -> str:
        return f"https://127.0.0.1:{self.trustee_port}"

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def trustee_config(self) -> Path:
        path = self.base / "trustee.toml"
        keystore = self.data_dir / "trustee"
        path.write_text(
            f'listen = "127.0.0.1:{self.trustee_port}"\n'
            f'keystore_dir = "{keystore}"\n'
            f'dev_unseal_file = "{keystore / "dev-unseal-shares"}"\n'
            "[tls]\n"
            f'cert = "{self.pki / "trustee.crt"}"\n'
            f'key = "{self.pki / "trustee.key"}"\n'
            f'client_ca = "{self.pki / "ca.crt"}"\n'
        )
        return path

    def gateway_config(self, name: str = "gateway.toml", ca: Path | None = None, cert: Path | None = None,
                       key: Path | None = None, trustee_section: bool = True) -> Path:
        path = self.base / name
        text = (
            f'data_dir = "{self.data_dir}"\n'
            f's3_addr = "127.0.0.1:{self.s3_port}"\n'
            f'admin_addr = "127.0.0.1:{self.admin_port}"\n'
            'region = "de-1"\n'
        )
        if trustee_section:
            text += (
                "[trustee]\n"
                f'url = "{self.trustee_url}"\n'
                f'ca = "{ca or self.pki / "ca.crt"}"\n'
                f'cert = "{cert or self.pki / "gateway-1.crt"}"\n'
                f'key = "{key or self.pki / "gateway-1.key"}"\n'
            )
        path.write_text(text)
        return path

    # ------------------------------------------------------------ processes
    def start_trustee(self) -> Proc:
        if self.trustee is None:
            self.trustee = Proc("obhut trustee", ["trustee", "--config", str(self.trustee_config())],
                                self.base / "trustee.log")
        self.trustee.start()
        self.trustee.wait_ready(self._trustee_ready, f"GET {self.trustee_url}/v1/seal")
        return self.trustee

    def _trustee_ready(self):
        r = self.trustee_api("GET", "/v1/seal")
        return r.status_code == 200 and r.json().get("sealed") is False, f"{r.status_code} {r.text[:200]}"

    def trustee_api(self, method: str, path: str, gateway: str = "gateway-2", **kw) -> requests.Response:
        """Calls the trustee API directly, as gateway `gateway`, over mutual TLS."""
        return requests.request(
            method,
            self.trustee_url + path,
            cert=(str(self.pki / f"{gateway}.crt"), str(self.pki / f"{gateway}.key")),
            verify=str(self.pki / "ca.crt"),
            timeout=10,
            **kw,
        )

    def start_gateway(self, config: Path | None = None) -> Proc:
        config = config or self.gateway_config()
        self.gateway = Proc("obhut gateway", ["gateway", "--config", str(config)], self.base / "gateway.log")
        self.gateway.start()
        self.gateway.wait_ready(self._gateway_ready, f"GET {self.admin_url}/v1/health")
        return self.gateway

    def _gateway_ready(self):
        r = requests.get(f"{self.admin_url}/v1/health", timeout=2)
        if r.status_code != 200:
            return False, f"health {r.status_code}"
        with socket.create_connection(("127.0.0.1", self.s3_port), timeout=2):
            pass
        return True, ""

    def stop_all(self) -> list[str]:
        problems = []
        for p in (self.gateway, self.trustee):
            if p is not None and p.running():
                code = p.stop()
                if code != 0:
                    problems.append(f"{p.name} exited with {code} after SIGTERM (expected 0).\n{p.log_tail()}")
        return problems

    # ------------------------------------------------------------ clients
    def s3(self):
        return s3_client(self.s3_url, self.demo["AWS_ACCESS_KEY_ID"], self.demo["AWS_SECRET_ACCESS_KEY"],
                         connect_timeout=5, read_timeout=30)

    def run(self, *args: str, token: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        """Runs an `obhut` command (admin commands go to the gateway's admin API)."""
        extra = {"OBHUT_ADMIN_URL": self.admin_url}
        if token is not None:
            extra["OBHUT_TOKEN"] = token
        return subprocess.run([str(obhut_bin()), *args], env=clean_env(extra), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def token(self, who: str) -> str:
        return self.tokens[f"OBHUT_{who.upper()}_TOKEN"]

    def dev_shares(self) -> list[str]:
        text = (self.data_dir / "trustee" / "dev-unseal-shares").read_text()
        return [ln.strip() for ln in text.splitlines() if ln.strip()]


@pytest.fixture
def split(tmp_path):
    """A bootstrapped data dir with its PKI; nothing running yet. Every process
    still running at the end is stopped with SIGTERM and must exit 0."""
    s = Split(tmp_path).bootstrap()
    yield s
    problems = s.stop_all()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def running_split(split):
    split.start_trustee()
    split.start_gateway()
    return split
