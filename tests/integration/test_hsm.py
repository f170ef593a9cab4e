"""Tenant keys in a PKCS#11 token (SoftHSM2, started for real): `serve` with a [pkcs11]
section keeps no tenant key outside the token, logs in with the PIN (from a development PIN
file, or given by an officer with `obhut trustee unseal`), and crypto-shred destroys the key in
the token."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from s3helpers import client_error

MODULES = ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"]
TOKEN = "obhut-it"
PIN = "user-pin-2468"


def softhsm_module() -> str:
    for m in MODULES:
        if os.path.exists(m):
            return m
    pytest.fail(f"SoftHSM2 is not installed (looked for {MODULES}); install Debian's softhsm2", pytrace=False)


def make_token(tmp_path: Path) -> dict[str, str]:
    """A fresh SoftHSM2 token in tmp_path; returns the environment that selects it."""
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    util = "softhsm2-util"
    r = subprocess.run(
        [util, "--init-token", "--free", "--label", TOKEN, "--so-pin", "so-pin-1357", "--pin", PIN],
        env=env, capture_output=True, text=True,
    )
    assert r.returncode == 0, f"softhsm2-util --init-token failed: {r.stderr} {r.stdout}"
    return {"SOFTHSM2_CONF": str(conf)}


def hsm_config(module: str, pin_file: Path | None) -> str:
    lines = ["[pkcs11]", f'module = "{module}"', f'token = "{TOKEN}"']
    if pin_file is not None:
        lines.append(f'pin_file = "{pin_file}"')
    return "\n".join(lines) + "\n"


def keystore(srv) -> dict:
    return json.loads((srv.data_dir / "trustee" / "keystore.json").read_text())


def test_tenant_keys_live_in_the_token(private_server_factory, tmp_path):
    module = softhsm_module()
    env = make_token(tmp_path)
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    pin_file.chmod(0o600)
    srv = private_server_factory(config=hsm_config(module, pin_file), env=env)
    assert "PKCS#11 token" in srv.log_path.read_text(), "serve should say it logged in to the token"

    s3 = srv.client()
    s3.create_bucket(Bucket="hsm")
    body = os.urandom(300_000)
    s3.put_object(Bucket="hsm", Key="k", Body=body)
    assert s3.get_object(Bucket="hsm", Key="k")["Body"].read() == body

    ks = keystore(srv)
    assert ks["pkcs11"]["token"] == TOKEN
    assert ks["master_kcv"] == "", "a PKCS#11 keystore has no master key"
    assert ks["tenants"]["demo"]["state"] == "active"
    assert ks["tenants"]["demo"]["wrapped"] == "", "the tenant key must not leave the token"
    assert (srv.data_dir / "trustee" / "keystore.json").stat().st_mode & 0o777 == 0o600

    # crypto-shred destroys the key in the token; the data stays unreadable after a restart
    for who in ("officer1", "officer2"):
        out = srv.cli_ok("tenant", "shred", "demo", "--now", token=srv.token(who))
    assert "destroyed" in out, out
    code, status, _ = client_error(s3.get_object, Bucket="hsm", Key="k")
    assert (code, status) == ("AccessDenied", 403), (code, status)
    srv.stop_ok()
    srv.start()
    code, status, _ = client_error(srv.client().get_object, Bucket="hsm", Key="k")
    assert (code, status) == ("AccessDenied", 403), (code, status)
    assert keystore(srv)["tenants"]["demo"]["state"] == "destroyed"


def test_an_officer_logs_the_trustee_in_with_the_pin(private_server_factory, tmp_path):
    module = softhsm_module()
    env = make_token(tmp_path)
    srv = private_server_factory(config=hsm_config(module, None), env=env)
    s3 = srv.client()
    code, status, resp = client_error(s3.create_bucket, Bucket="late")
    assert (code, status) == ("ServiceUnavailable", 503), (code, status, resp)
    assert "trustee" in resp["Error"].get("Message", "")

    assert "sealed" in srv.cli_ok("trustee", "status", token=srv.token("operator"))
    r = srv.cli("trustee", "unseal", "wrong-pin", token=srv.token("officer1"))
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, (r.returncode, r.stderr)
    r = srv.cli("trustee", "unseal", PIN, token=srv.token("operator"))
    assert r.returncode != 0, "an operator must not unseal"
    assert "sealed" in srv.cli_ok("trustee", "status", token=srv.token("operator"))
    assert srv.cli_ok("trustee", "unseal", PIN, token=srv.token("officer1")).strip() == "unsealed"

    s3.create_bucket(Bucket="late")
    s3.put_object(Bucket="late", Key="k", Body=b"after login")
    assert s3.get_object(Bucket="late", Key="k")["Body"].read() == b"after login"
