"""TLS on the S3 and admin listeners, with a CA and certificates made by `openssl` here:
aws-cli, boto3 and the admin CLI work over https with the CA bundle `demo.env` and
`dev-tokens.env` name, and fail without it; plain HTTP to a TLS port is told so; SIGHUP reads
the certificate again (a good one reaches new connections while old ones go on, a broken one
leaves the previous one in use with one error line); a client that never completes its
handshake is cut within the header-read timeout; a private key others can read stops the start
with one line naming it. `obhut gateway` takes the same keys, and the trustee process's API
listener has the same limits."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import boto3
import botocore.exceptions
import pytest
import requests
from botocore.config import Config

from conftest import ObhutServer, bearer, obhut_bin, run_aws
from s3helpers import REGION, clean_env, parse_env_file
from split_helpers import Proc, Split


def openssl(*args: str, cwd: Path) -> None:
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"openssl {' '.join(args)} failed: {r.stderr}"


class Pki:
    """A self-made CA and server certificates for 127.0.0.1 it signs, as an operator would
    make them for a test with openssl."""

    def __init__(self, dir: Path):
        self.dir = dir
        dir.mkdir(parents=True, exist_ok=True)
        self.ca = dir / "ca.crt"
        openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=obhut test CA",
            cwd=dir,
        )
        self.serial = 1000

    def issue(self, name: str, cn: str) -> tuple[Path, Path]:
        """`name.crt` (leaf, then the CA: a chain) and `name.key` (mode 0600)."""
        self.serial += 1
        openssl(
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}",
            cwd=self.dir,
        )
        ext = self.dir / f"{name}.ext"
        ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
        openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-set_serial", str(self.serial), "-days", "2", "-extfile", ext.name, "-out", f"{name}.leaf",
            cwd=self.dir,
        )
        cert, key = self.dir / f"{name}.crt", self.dir / f"{name}.key"
        cert.write_text((self.dir / f"{name}.leaf").read_text() + self.ca.read_text())
        key.chmod(0o600)
        return cert, key


class TlsServer(ObhutServer):
    """`obhut serve` with TLS on both listeners."""

    def __init__(self, base: Path, pki: Pki, config_extra: str = ""):
        self.cert, self.key = pki.issue("server", "obhut first")
        config = base / "obhut.toml"
        config.write_text(
            f's3_tls_cert = "{self.cert}"\ns3_tls_key = "{self.key}"\n'
            f'admin_tls_cert = "{self.cert}"\nadmin_tls_key = "{self.key}"\n'
            f'tls_ca_bundle = "{pki.ca}"\n{config_extra}'
        )
        super().__init__(base / "data", base / "serve.log", extra_args=["--config", str(config)])
        self.pki = pki
        self.verify = str(pki.ca)

    @property
    def s3_url(self) -> str:
        return f"https://127.0.0.1:{self.s3_port}"

    @property
    def admin_url(self) -> str:
        return f"https://127.0.0.1:{self.admin_port}"

    def boto3(self, verify) -> "boto3.client":
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.demo["AWS_ENDPOINT_URL"],
            aws_access_key_id=self.demo["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.demo["AWS_SECRET_ACCESS_KEY"],
            region_name=REGION,
            verify=verify,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def replace_cert(self, cert: Path, key: Path) -> None:
        """Puts a new pair in place of the served files (each by rename, as deploy tools do)."""
        os.replace(key, self.key)
        os.replace(cert, self.cert)

    def hangup(self) -> None:
        self.proc.send_signal(signal.SIGHUP)


@pytest.fixture
def tls_server(tmp_path):
    """Starts a TLS server of this test's own; `make(config_extra)` adds config lines. Each is
    stopped with SIGTERM at the end and must exit 0 (SIGHUP never stopped it)."""
    servers: list[TlsServer] = []
    pki = Pki(tmp_path / "pki")

    def make(config_extra: str = "") -> TlsServer:
        base = tmp_path / f"srv{len(servers)}"
        base.mkdir()
        srv = TlsServer(base, pki, config_extra)
        servers.append(srv)
        return srv.start()

    yield make
    for srv in servers:
        if srv.running():
            code = srv.stop()
            assert code == 0, f"`obhut serve` exited with {code} after SIGTERM.\n{srv.log_tail()}"


def peer_subject(port: int, ca: Path) -> tuple[str, int]:
    """(CN, serial) of the certificate a new connection to `port` is shown."""
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            cert = tls.getpeercert()
    cn = dict(x[0] for x in cert["subject"])["commonName"]
    return cn, int(cert["serialNumber"], 16)


def log_lines(srv: TlsServer, needle: str) -> list[str]:
    return [l for l in srv.log_path.read_text(errors="replace").splitlines() if needle in l]


def wait_for_log(srv: TlsServer, needle: str, count: int = 1, timeout: float = 10) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        lines = log_lines(srv, needle)
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def test_demo_env_points_clients_at_https_with_the_ca_bundle(tls_server):
    srv = tls_server()
    assert srv.demo["AWS_ENDPOINT_URL"] == srv.s3_url
    assert srv.demo["AWS_CA_BUNDLE"] == str(srv.pki.ca)
    assert srv.tokens["OBHUT_ADMIN_URL"] == srv.admin_url
    tokens = parse_env_file(srv.tokens_env_path.read_text())
    assert tokens["OBHUT_CA_BUNDLE"] == str(srv.pki.ca)

    # boto3 with the bundle of demo.env
    s3 = srv.boto3(srv.demo["AWS_CA_BUNDLE"])
    s3.create_bucket(Bucket="over-tls")
    s3.put_object(Bucket="over-tls", Key="k", Body=b"sealed in transit")
    assert s3.get_object(Bucket="over-tls", Key="k")["Body"].read() == b"sealed in transit"

    # aws-cli with nothing but demo.env's lines in its environment
    demo = parse_env_file(srv.demo_env_path.read_text())
    r = run_aws(srv, "s3", "cp", "s3://over-tls/k", "-", env=demo)
    assert r.stdout == "sealed in transit"
    r = run_aws(srv, "s3api", "list-buckets", env=demo)
    assert "over-tls" in r.stdout

    # the admin CLI with dev-tokens.env's URL and bundle
    r = subprocess.run(
        [str(obhut_bin()), "site", "list"],
        env=clean_env({**tokens, "OBHUT_TOKEN": srv.token("operator")}),
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, r.stderr
    assert "de-fra" in r.stdout

    # health and metrics over https, as monitoring reaches them
    assert requests.get(f"{srv.admin_url}/healthz", verify=srv.verify, timeout=5).status_code == 200
    assert requests.get(f"{srv.s3_url}/healthz", verify=srv.verify, timeout=5).status_code == 200


def test_the_console_session_cookie_is_secure_over_tls(tls_server):
    srv = tls_server()
    s = requests.Session()
    s.verify = srv.verify
    page = s.get(f"{srv.admin_url}/console/sign-in", timeout=10)
    csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text).group(1)
    r = s.post(f"{srv.admin_url}/console/sign-in", data={"csrf": csrf, "bearer": bearer(srv.token("auditor"))},
               allow_redirects=False, timeout=10)
    assert r.status_code == 303, r.text[:300]
    session = [c for c in r.raw.headers.getlist("Set-Cookie") if c.startswith("obhut_console=")]
    assert len(session) == 1 and "Secure" in [f.strip() for f in session[0].split(";")], session


def test_a_client_that_does_not_trust_the_ca_fails(tls_server):
    srv = tls_server()
    with pytest.raises(botocore.exceptions.SSLError):
        srv.boto3(True).list_buckets()
    env = {k: v for k, v in parse_env_file(srv.demo_env_path.read_text()).items() if k != "AWS_CA_BUNDLE"}
    r = run_aws(srv, "s3api", "list-buckets", env=env, check=False)
    assert r.returncode != 0
    assert "certificate verify failed" in r.stderr.lower() or "ssl" in r.stderr.lower(), r.stderr
    # The admin CLI without the bundle: one line, naming the admin API.
    r = subprocess.run(
        [str(obhut_bin()), "site", "list"],
        env=clean_env({"OBHUT_ADMIN_URL": srv.admin_url, "OBHUT_TOKEN": srv.token("operator")}),
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert r.returncode != 0
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "admin API" in lines[0], r.stderr


@pytest.mark.parametrize("listener", ["s3", "admin"])
def test_plain_http_to_a_tls_port_is_told_to_use_https(tls_server, listener):
    srv = tls_server()
    port = srv.s3_port if listener == "s3" else srv.admin_port
    r = requests.get(f"http://127.0.0.1:{port}/", timeout=10)
    assert r.status_code == 400
    assert "https://" in r.text
    if listener == "s3":
        assert "<Code>InvalidRequest</Code>" in r.text
    else:
        assert r.json()["error"] == "bad_request"
    # The listener goes on serving TLS.
    assert requests.get(f"https://127.0.0.1:{port}/healthz", verify=srv.verify, timeout=5).status_code == 200


def test_sighup_with_a_new_certificate_reaches_new_connections_and_keeps_open_ones(tls_server):
    srv = tls_server()
    assert peer_subject(srv.s3_port, srv.pki.ca)[0] == "obhut first"
    first_serial = peer_subject(srv.admin_port, srv.pki.ca)[1]
    ctx = ssl.create_default_context(cafile=str(srv.pki.ca))
    held = http.client.HTTPSConnection("127.0.0.1", srv.admin_port, context=ctx, timeout=10)
    held.request("GET", "/healthz")
    assert held.getresponse().read() is not None

    cert, key = srv.pki.issue("renewed", "obhut renewed")
    srv.replace_cert(cert, key)
    srv.hangup()
    lines = wait_for_log(srv, "new TLS certificate in use", count=2)
    assert len(lines) == 2, f"expected one line per listener.\n{srv.log_tail()}"
    for port in (srv.s3_port, srv.admin_port):
        cn, serial = peer_subject(port, srv.pki.ca)
        assert cn == "obhut renewed" and serial != first_serial
    # The connection made before the reload was not dropped.
    held.request("GET", "/healthz")
    assert held.getresponse().status == 200
    held.close()
    assert srv.running(), "SIGHUP stopped the server"
    s3 = srv.boto3(str(srv.pki.ca))
    s3.create_bucket(Bucket="after-reload")


def test_sighup_with_a_broken_certificate_keeps_serving_the_old_one(tls_server):
    srv = tls_server()
    before = peer_subject(srv.s3_port, srv.pki.ca)
    srv.cert.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    srv.hangup()
    errors = wait_for_log(srv, "previous TLS certificate stays in use", count=2)
    assert len(errors) == 2, f"expected one error line per listener.\n{srv.log_tail()}"
    for line in errors:
        assert "ERROR" in line and str(srv.cert) in line and "unusable" in line, line
    assert peer_subject(srv.s3_port, srv.pki.ca) == before
    assert peer_subject(srv.admin_port, srv.pki.ca) == before

    # A key others can read is refused on reload as at start.
    cert, key = srv.pki.issue("wide", "obhut wide")
    key.chmod(0o644)
    srv.replace_cert(cert, key)
    srv.hangup()
    errors = wait_for_log(srv, "readable by others", count=2)
    assert len(errors) == 2, srv.log_tail()
    assert peer_subject(srv.s3_port, srv.pki.ca) == before
    assert srv.running()
    srv.boto3(str(srv.pki.ca)).list_buckets()


def test_a_handshake_never_completed_is_cut_within_the_header_timeout(tls_server):
    srv = tls_server("header_read_timeout_secs = 2\n")
    for port in (srv.s3_port, srv.admin_port):
        for opening in (b"", b"\x16\x03\x01"):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(opening)
                start = time.monotonic()
                s.settimeout(15)
                try:
                    closed = s.recv(1024) == b""
                except (ConnectionResetError, socket.timeout) as e:
                    closed = not isinstance(e, socket.timeout)
                took = time.monotonic() - start
            assert closed and 1 < took < 10, f"a half-open handshake to {port} was closed after {took:.1f}s (bound: 2 s)"
        assert requests.get(f"https://127.0.0.1:{port}/healthz", verify=srv.verify, timeout=5).status_code == 200


def test_connections_beyond_the_cap_are_answered_503_over_tls(tls_server):
    srv = tls_server("max_connections = 2\nheader_read_timeout_secs = 5\n")
    ctx = ssl.create_default_context(cafile=str(srv.pki.ca))
    deadline = time.monotonic() + 30
    while True:
        held = []
        status = 200
        for _ in range(2):
            c = http.client.HTTPSConnection("127.0.0.1", srv.s3_port, context=ctx, timeout=10)
            c.request("GET", "/healthz")
            resp = c.getresponse()
            resp.read()
            held.append(c)
            status = resp.status
        if status != 503:
            break
        for c in held:
            c.close()
        assert time.monotonic() < deadline, "the server never served two connections at once (cap 2)"
        time.sleep(0.5)
    try:
        extra = http.client.HTTPSConnection("127.0.0.1", srv.s3_port, context=ctx, timeout=10)
        extra.request("GET", "/healthz")
        resp = extra.getresponse()
        body = resp.read()
        assert resp.status == 503 and b"<Code>SlowDown</Code>" in body, body
        extra.close()
    finally:
        for c in held:
            c.close()


def test_a_private_key_others_can_read_stops_the_start(tmp_path):
    pki = Pki(tmp_path / "pki")
    cert, key = pki.issue("server", "obhut wide")
    key.chmod(0o644)
    r = subprocess.run(
        [
            str(obhut_bin()), "serve", "--data-dir", str(tmp_path / "data"),
            "--s3-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
            "--s3-tls-cert", str(cert), "--s3-tls-key", str(key),
        ],
        env=clean_env(), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert r.returncode != 0
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    assert str(key) in lines[0] and "chmod 600" in lines[0], lines[0]
    assert not (tmp_path / "data").exists(), "nothing is set up before the certificate is checked"


def test_half_a_pair_is_refused(tmp_path):
    pki = Pki(tmp_path / "pki")
    cert, _ = pki.issue("server", "obhut half")
    r = subprocess.run(
        [str(obhut_bin()), "serve", "--data-dir", str(tmp_path / "data"), "--admin-tls-cert", str(cert)],
        env=clean_env(), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert r.returncode != 0
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "admin_tls_key" in lines[0], r.stderr


def test_a_gateway_serves_s3_over_tls_and_the_trustee_api_has_the_listener_limits(tmp_path):
    """`obhut gateway` takes the same TLS keys as `serve`; the trustee process's API listener
    bounds a connection that never completes its handshake by its header-read timeout."""
    split = Split(tmp_path / "split").bootstrap()
    try:
        trustee_config = split.trustee_config()
        text = trustee_config.read_text()
        trustee_config.write_text("header_read_timeout_secs = 2\nmax_connections = 64\n" + text)
        split.trustee = Proc(
            "obhut trustee", ["trustee", "--config", str(trustee_config)], split.base / "trustee.log"
        )
        split.trustee.start()
        split.trustee.wait_ready(split._trustee_ready, f"GET {split.trustee_url}/v1/seal")
        with socket.create_connection(("127.0.0.1", split.trustee_port), timeout=5) as s:
            start = time.monotonic()
            s.settimeout(15)
            try:
                closed = s.recv(1024) == b""
            except ConnectionResetError:
                closed = True
            took = time.monotonic() - start
        assert closed and 1 < took < 10, f"the trustee API closed a half-open connection after {took:.1f}s (bound: 2 s)"

        pki = Pki(tmp_path / "pki")
        cert, key = pki.issue("gateway-s3", "obhut gateway")
        config = split.gateway_config()
        config.write_text(f's3_tls_cert = "{cert}"\ns3_tls_key = "{key}"\n' + config.read_text())
        split.start_gateway(config)
        s3 = boto3.session.Session().client(
            "s3",
            endpoint_url=f"https://127.0.0.1:{split.s3_port}",
            aws_access_key_id=split.demo["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=split.demo["AWS_SECRET_ACCESS_KEY"],
            region_name=REGION,
            verify=str(pki.ca),
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )
        s3.create_bucket(Bucket="gateway-tls")
        s3.put_object(Bucket="gateway-tls", Key="k", Body=b"through the trustee")
        assert s3.get_object(Bucket="gateway-tls", Key="k")["Body"].read() == b"through the trustee"
    finally:
        problems = split.stop_all()
    assert not problems, "\n".join(problems)


def test_turning_tls_on_for_an_existing_data_dir_points_its_env_files_at_https(tmp_path):
    base = tmp_path / "srv"
    base.mkdir()
    plain = ObhutServer(base / "data", base / "plain.log")
    plain.start()
    assert plain.demo["AWS_ENDPOINT_URL"].startswith("http://")
    secret = plain.demo["AWS_SECRET_ACCESS_KEY"]
    plain.stop_ok()

    srv = TlsServer(base, Pki(tmp_path / "pki"))
    try:
        srv.start()
        assert srv.demo["AWS_ENDPOINT_URL"] == srv.s3_url
        assert srv.demo["AWS_CA_BUNDLE"] == str(srv.pki.ca)
        assert srv.demo["AWS_SECRET_ACCESS_KEY"] == secret, "only the endpoint lines change"
        tokens = parse_env_file(srv.tokens_env_path.read_text())
        assert tokens["OBHUT_ADMIN_URL"] == srv.admin_url
        assert tokens["OBHUT_CA_BUNDLE"] == str(srv.pki.ca)
        assert oct(srv.demo_env_path.stat().st_mode & 0o777) == "0o600"
        srv.boto3(srv.demo["AWS_CA_BUNDLE"]).list_buckets()
    finally:
        if srv.running():
            srv.stop_ok()
