"""Fixtures that run the real `obhut` binary and the real S3 clients.

`obhut serve` is started on free loopback ports in a fresh temporary data dir;
tests talk to it only through its public interfaces (S3 API, admin API, CLI,
and the documented on-disk layout of local sites).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import requests
import urllib3
from botocore.config import Config

from s3helpers import EMPTY_SHA256, REGION, RawS3, clean_env, parse_env_file, unique_name

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

# The test process itself talks plain HTTP to loopback: make sure nothing from
# the machine's environment (CA bundles, profiles, proxies) gets in the way.
for _var in ("AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
    os.environ.pop(_var, None)
os.environ["AWS_CONFIG_FILE"] = "/nonexistent/obhut-tests/aws-config"
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = "/nonexistent/obhut-tests/aws-credentials"
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
# Servers started by the tests remove the blobs of deleted and overwritten objects as soon as
# orphan collection may (the tests watch them go); the default keeps them 8 days for a
# point-in-time restore of the catalog, which test_pg_restore.py sets and checks.
os.environ.setdefault("OBHUT_BLOB_RETENTION_MS", "0")
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

DEMO_ENV_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_REGION")
TOKEN_KEYS = (
    "OBHUT_ADMIN_URL",
    "OBHUT_OFFICER1_TOKEN",
    "OBHUT_OFFICER2_TOKEN",
    "OBHUT_OPERATOR_TOKEN",
    "OBHUT_AUDITOR_TOKEN",
    "OBHUT_DEMO_ADMIN_TOKEN",
)


def obhut_bin() -> Path:
    path = Path(os.environ.get("OBHUT_BIN") or REPO / "target" / "debug" / "obhut")
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"obhut binary not found or not executable: {path} "
            "(build it with `cargo build --workspace --bins`, or point OBHUT_BIN at it)",
            pytrace=False,
        )
    return path


def tool(name: str) -> str:
    """Path of a client tool; a missing tool is a failure, never a skip."""
    candidate = VENV_BIN / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if not found:
        pytest.fail(
            f"required tool '{name}' not found (looked in {VENV_BIN} and PATH); run scripts/test to install it",
            pytrace=False,
        )
    return found


def bearer(token: str) -> str:
    """The admin API bearer derived from a principal's token, as the CLI sends it
    (`obhut token bearer`): the token itself never goes over the wire."""
    import hashlib
    import hmac

    return "obb_" + hmac.new(token.encode(), b"obhut admin bearer v1", hashlib.sha256).hexdigest()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class ObhutServer:
    """One `obhut serve` process on a data dir; can be stopped, killed and
    started again on the same dir and ports."""

    def __init__(self, data_dir: Path, log_path: Path, extra_args: list[str] | tuple[str, ...] = ()):
        self.data_dir = data_dir
        self.log_path = log_path
        # Further `obhut serve` arguments, e.g. ["--config", path].
        self.extra_args = list(extra_args)
        # Further environment of the server process, e.g. SOFTHSM2_CONF.
        self.extra_env: dict[str, str] = {}
        self.s3_port = free_port()
        self.admin_port = free_port()
        while self.admin_port == self.s3_port:
            self.admin_port = free_port()
        self.proc: subprocess.Popen | None = None
        # How the readiness check verifies a TLS admin listener (a CA bundle's path); a
        # server with TLS listeners sets it beside its https:// URLs.
        self.verify: bool | str = True
        self.demo: dict[str, str] = {}
        self.tokens: dict[str, str] = {}

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def demo_env_path(self) -> Path:
        return self.data_dir / "demo.env"

    @property
    def tokens_env_path(self) -> Path:
        return self.data_dir / "dev-tokens.env"

    def site_dir(self, site: str) -> Path:
        return self.data_dir / "sites" / site

    def start(self, timeout: float = 90.0) -> "ObhutServer":
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        binary = obhut_bin()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        log.write(f"\n===== start {time.strftime('%H:%M:%S')} =====\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [
                str(binary),
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--s3-addr",
                f"127.0.0.1:{self.s3_port}",
                "--admin-addr",
                f"127.0.0.1:{self.admin_port}",
                *self.extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=clean_env({"RUST_BACKTRACE": "1", **self.extra_env}),
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        last_err = ""
        while True:
            code = self.proc.poll()
            if code is not None:
                pytest.fail(
                    f"`obhut serve` exited with code {code} before it became ready.\n{self.log_tail()}",
                    pytrace=False,
                )
            try:
                r = requests.get(f"{self.admin_url}/v1/health", timeout=2, verify=self.verify)
                if r.status_code == 200:
                    with socket.create_connection(("127.0.0.1", self.s3_port), timeout=2):
                        pass
                    break
                last_err = f"health returned {r.status_code}: {r.text[:200]}"
            except (requests.RequestException, OSError) as e:
                last_err = repr(e)
            if time.monotonic() > deadline:
                self.kill9()
                pytest.fail(
                    f"`obhut serve` not ready after {timeout}s (GET /v1/health: {last_err}).\n{self.log_tail()}",
                    pytrace=False,
                )
            time.sleep(0.1)
        self.demo = self._read_env(self.demo_env_path, DEMO_ENV_KEYS)
        self.tokens = self._read_env(self.tokens_env_path, TOKEN_KEYS)
        return self

    def _read_env(self, path: Path, keys) -> dict[str, str]:
        if not path.is_file():
            pytest.fail(f"server is ready but {path} does not exist.\n{self.log_tail()}", pytrace=False)
        values = parse_env_file(path.read_text())
        missing = [k for k in keys if not values.get(k)]
        if missing:
            pytest.fail(f"{path} lacks {missing}; it has {sorted(values)}", pytrace=False)
        return values

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code (kills and fails on a hang)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
                pytest.fail(f"`obhut serve` did not exit within {timeout}s of SIGTERM.\n{self.log_tail()}", pytrace=False)
        return self.proc.returncode

    def stop_ok(self) -> None:
        code = self.stop()
        assert code == 0, f"`obhut serve` exited with {code} after SIGTERM (expected 0).\n{self.log_tail()}"

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no server log)"
        return "--- obhut serve log (tail) ---\n" + "\n".join(text[-lines:])

    # clients -----------------------------------------------------------
    def client(self, access_key: str | None = None, secret_key: str | None = None, **config) -> "boto3.client":
        return s3_client(
            self.s3_url,
            access_key or self.demo["AWS_ACCESS_KEY_ID"],
            secret_key or self.demo["AWS_SECRET_ACCESS_KEY"],
            **config,
        )

    def raw(self, access_key: str | None = None, secret_key: str | None = None) -> RawS3:
        return RawS3(
            self.s3_url,
            access_key or self.demo["AWS_ACCESS_KEY_ID"],
            secret_key or self.demo["AWS_SECRET_ACCESS_KEY"],
        )

    def cli(
        self,
        *args: str,
        token: str | None = None,
        env: dict | None = None,
        timeout: float = 60,
        input: str | None = None,
    ):
        """Runs an `obhut` admin CLI command with OBHUT_ADMIN_URL/OBHUT_TOKEN set
        (`input`, if given, is its standard input; otherwise stdin is empty)."""
        extra = {"OBHUT_ADMIN_URL": self.admin_url}
        if token is not None:
            extra["OBHUT_TOKEN"] = token
        if env:
            extra.update(env)
        stdin = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
        return subprocess.run(
            [str(obhut_bin()), *args],
            env=clean_env(extra),
            capture_output=True,
            text=True,
            timeout=timeout,
            **stdin,
        )

    def token(self, who: str) -> str:
        """A dev token by short name: officer1, officer2, operator, auditor, demo_admin."""
        return self.tokens[f"OBHUT_{who.upper()}_TOKEN"]

    def auth(self, who: str) -> dict:
        """`Authorization` header of a dev principal, for direct admin API calls."""
        return {"Authorization": f"Bearer {bearer(self.token(who))}"}

    def cli_ok(self, *args: str, token: str | None = None, input: str | None = None) -> str:
        """Runs an admin CLI command that must succeed; returns its stdout."""
        r = self.cli(*args, token=token, input=input)
        assert r.returncode == 0, (
            f"`obhut {' '.join(args)}` exited {r.returncode}: stderr {r.stderr.strip()!r} stdout {r.stdout.strip()!r}"
        )
        return r.stdout


def s3_client(endpoint: str, access_key: str, secret_key: str, **config):
    cfg = dict(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"max_attempts": 1, "mode": "standard"},
        connect_timeout=10,
        read_timeout=120,
        max_pool_connections=32,
    )
    cfg.update(config)
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=REGION,
        config=Config(**cfg),
    )


def assert_secret_file(path: Path) -> None:
    assert path.is_file(), f"{path} is missing"
    mode = file_mode(path)
    assert mode == 0o600, f"{path} has mode {mode:o}, expected 600"


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> ObhutServer:
    """The shared server most tests use; each test works in its own buckets."""
    base = tmp_path_factory.mktemp("obhut-shared")
    srv = ObhutServer(base / "data", base / "serve.log")
    srv.start()
    yield srv
    code = srv.stop()
    assert code == 0, f"`obhut serve` exited with {code} after SIGTERM (expected 0).\n{srv.log_tail()}"
    assert_secret_file(srv.demo_env_path)
    assert_secret_file(srv.tokens_env_path)


@pytest.fixture
def fresh_server(tmp_path):
    """A server of its own on a fresh data dir (for restart / crash tests)."""
    srv = ObhutServer(tmp_path / "data", tmp_path / "serve.log")
    yield srv
    if srv.running():
        srv.kill9()


@pytest.fixture
def private_server_factory(tmp_path):
    """Starts servers of this test's own, each in a fresh data dir (for tests
    that seal the trustee, shred keys or damage blobs). `make(config=TOML)`
    passes a config file with `--config`. Every server still running at the
    end is stopped with SIGTERM and must exit 0."""
    servers: list[ObhutServer] = []

    def make(config: str | None = None, env: dict[str, str] | None = None) -> ObhutServer:
        base = tmp_path / f"srv{len(servers)}"
        base.mkdir(parents=True, exist_ok=True)
        extra: list[str] = []
        if config is not None:
            cfg = base / "obhut.toml"
            cfg.write_text(config)
            extra = ["--config", str(cfg)]
        srv = ObhutServer(base / "data", base / "serve.log", extra_args=extra)
        srv.extra_env = dict(env or {})
        servers.append(srv)
        return srv.start()

    yield make
    problems = []
    for srv in servers:
        if srv.running():
            srv.proc.send_signal(signal.SIGTERM)
            try:
                code = srv.proc.wait(30)
            except subprocess.TimeoutExpired:
                srv.kill9()
                code = "a hang (killed)"
            if code != 0:
                problems.append(f"`obhut serve` exited with {code} after SIGTERM (expected 0).\n{srv.log_tail()}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def private_server(private_server_factory) -> ObhutServer:
    """A started server of this test's own on a fresh data dir."""
    return private_server_factory()


def assert_one_line_failure(r, what: str) -> None:
    """An admin CLI command failed the way it should: non-zero exit, exactly
    one non-empty line on stderr, no panic."""
    assert r.returncode != 0, f"{what}: expected failure, exit 0 with stdout {r.stdout!r}"
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"{what}: expected one line on stderr, got {len(lines)}:\n{r.stderr}"
    lowered = r.stderr.lower()
    assert "panicked" not in lowered and "backtrace" not in lowered, r.stderr


@pytest.fixture(scope="session")
def s3(server):
    return server.client()


@pytest.fixture(scope="session")
def raw(server) -> RawS3:
    return server.raw()


@pytest.fixture
def bucket(s3, request) -> str:
    name = unique_name(request.node.name[:20])
    s3.create_bucket(Bucket=name)
    return name


def enrol(server: "ObhutServer", name: str, role: str, tenant: str | None = None, officer: str = "officer1") -> str:
    """Enrols a principal with `obhut principal create` (as an officer); returns its token."""
    args = ["principal", "create", name, "--role", role]
    if tenant:
        args += ["--tenant", tenant]
    r = server.cli(*args, token=server.token(officer))
    assert r.returncode == 0, f"`obhut {' '.join(args)}` exited {r.returncode}: {r.stderr.strip()!r}"
    out = r.stdout
    m = re.search(r"another officer confirms with: obhut (principal create .*)$", r.stderr, re.M)
    if m:  # an officer is enrolled by two officers
        second = "officer2" if officer == "officer1" else "officer1"
        server.cli_ok(*m.group(1).split(), token=server.token(second))
    tokens = [l.split("=", 1)[1] for l in out.splitlines() if l.startswith("OBHUT_TOKEN=")]
    assert len(tokens) == 1, f"principal create printed no OBHUT_TOKEN= line: {out!r}"
    return tokens[0]


def new_tenant(server: "ObhutServer", name: str, jurisdiction: str = "DE") -> dict:
    """A tenant made the way an installation makes one: an officer creates it and its
    admin, and the admin (only it) creates the tenant's S3 keys."""
    r = server.cli("tenant", "create", name, "--jurisdiction", jurisdiction, token=server.token("officer1"))
    assert r.returncode == 0, f"tenant create failed ({r.returncode}): {r.stderr.strip()} {r.stdout.strip()}"
    admin = enrol(server, f"{name}-admin", "tenant-admin", tenant=name)
    r = server.cli("tenant", "key-create", name, token=admin)
    assert r.returncode == 0, f"tenant key-create failed ({r.returncode}): {r.stderr.strip()} {r.stdout.strip()}"
    keys = parse_key_output(r.stdout)
    return {"name": name, "admin_token": admin, **keys}


@pytest.fixture(scope="session")
def tenant_b(server):
    """A second tenant created with the admin CLI, with its own admin and S3 keys."""
    t = new_tenant(server, "tb" + os.urandom(4).hex())
    return {**t, "client": server.client(t["AWS_ACCESS_KEY_ID"], t["AWS_SECRET_ACCESS_KEY"])}


def parse_key_output(stdout: str) -> dict[str, str]:
    keys = {}
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[7:]
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            if line.startswith(k + "="):
                keys[k] = line.split("=", 1)[1].strip().strip("'\"")
    assert set(keys) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}, (
        f"key-create output lacks AWS_ACCESS_KEY_ID=/AWS_SECRET_ACCESS_KEY= lines: {stdout!r}"
    )
    return keys


# ---------------------------------------------------------------------------
# external client tools


def aws_env(server: ObhutServer, **extra) -> dict[str, str]:
    """Environment as after `set -a; . demo.env` plus AWS_DEFAULT_REGION
    (the name AWS CLI v1 reads)."""
    env = {k: server.demo[k] for k in DEMO_ENV_KEYS}
    env["AWS_DEFAULT_REGION"] = server.demo["AWS_REGION"]
    env.update(extra)
    return env


def run_aws(server: ObhutServer, *args: str, env: dict | None = None, timeout: float = 300, check: bool = True):
    cmd = [tool("aws"), *args]
    r = subprocess.run(
        cmd,
        env=clean_env(env if env is not None else aws_env(server)),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert r.returncode == 0, f"{' '.join(cmd)} exited {r.returncode}:\n{r.stderr}\n{r.stdout[-2000:]}"
    return r


@pytest.fixture
def aws(server):
    def _run(*args, **kw):
        return run_aws(server, *args, **kw)

    return _run


# ---------------------------------------------------------------------------
# local site layout: DIR/sites/<id>/blobs/<2 hex>/<32 hex>, DIR/sites/<id>/tmp/

SITES = ("de-fra", "de-mgd")
BLOB_NAME = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{32}$")


def blob_files(site_dir: Path) -> list[str]:
    root = site_dir / "blobs"
    assert root.is_dir(), f"{root} does not exist"
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    bad = [f for f in files if not BLOB_NAME.match(f)]
    assert not bad, f"unexpected files under {root}: {bad[:10]}"
    return files


def tmp_entries(site_dir: Path) -> list[str]:
    root = site_dir / "tmp"
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def wait_for_blob_counts(srv: ObhutServer, expected: int, timeout: float = 15.0) -> dict[str, int]:
    """Blob files per site, polled until each site has `expected` (orphan
    collection may finish shortly after the server reports ready)."""
    deadline = time.monotonic() + timeout
    while True:
        counts = {s: len(blob_files(srv.site_dir(s))) for s in SITES}
        if all(c == expected for c in counts.values()) or time.monotonic() > deadline:
            return counts
        time.sleep(0.2)


def blob_path(srv: ObhutServer, site: str, rel: str) -> Path:
    return srv.site_dir(site) / "blobs" / rel


def new_blob(srv: ObhutServer, before: dict[str, list[str]]) -> dict[str, str]:
    """The one blob each site gained since `before` (a {site: blob_files()}
    snapshot); fails unless there is exactly one new file per site."""
    out = {}
    for s in SITES:
        added = sorted(set(blob_files(srv.site_dir(s))) - set(before[s]))
        assert len(added) == 1, f"expected exactly one new blob on {s}, found {added}"
        out[s] = added[0]
    return out


def blob_snapshot(srv: ObhutServer) -> dict[str, list[str]]:
    return {s: blob_files(srv.site_dir(s)) for s in SITES}


def get_streaming(raw: RawS3, bucket: str, key: str, range_header: str | None = None, timeout: float = 60):
    """GET read as a stream that may break off: returns (status or None,
    bytes received before any error, the error or None). Never raises for
    a connection that is closed early."""
    path = raw.path(bucket, key)
    headers = {"Range": range_header} if range_header else {}
    signed = raw.sign("GET", path, [], headers, EMPTY_SHA256).headers
    try:
        resp = raw.http.get(raw.endpoint + path, headers=signed, stream=True, timeout=timeout)
    except requests.RequestException as e:
        return None, b"", e
    got = bytearray()
    error = None
    try:
        for piece in resp.iter_content(65536):
            got += piece
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as e:
        error = e
    finally:
        resp.close()
    return resp.status_code, bytes(got), error


# ----------------------------------------------------------------------------- two datacenters
# One `scripts/two-dc` deployment (two_dc_helpers.py, 5 ms between the datacenters) for every
# test that asks for `two_dc`, whatever its module (test_two_dc.py, test_two_dc_failover.py):
# `up` once, `down` after the last such test (pytest runs them one after the other, in file
# order), not at the end of the session.
_TWO_DC: dict = {}


@pytest.fixture(scope="session")
def two_dc():
    import contextlib

    from two_dc_helpers import deployment

    stack = contextlib.ExitStack()
    _TWO_DC["stack"] = stack
    dep = stack.enter_context(deployment(rtt_ms=5))
    try:
        yield dep
    finally:
        _two_dc_down()


def _two_dc_down() -> None:
    stack = _TWO_DC.pop("stack", None)
    if stack is not None:
        _TWO_DC["down"] = True
        stack.close()


def pytest_runtest_setup(item):
    if "two_dc" in getattr(item, "fixturenames", ()) and _TWO_DC.get("down"):
        pytest.fail("the two-datacenter deployment is already down: a test that uses it ran after others "
                    "that do not (keep the two_dc tests together)", pytrace=False)


def pytest_runtest_teardown(item, nextitem):
    if "two_dc" in getattr(item, "fixturenames", ()) and (
            nextitem is None or "two_dc" not in getattr(nextitem, "fixturenames", ())):
        _two_dc_down()
