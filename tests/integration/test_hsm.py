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


def test_the_pin_reaches_the_trustee_only_encrypted(private_server_factory, tmp_path):
    """`obhut trustee unseal PIN` through a relay on the admin listener that keeps every body:
    the PIN crosses it in no form; the captured request replayed after a new seal opens
    nothing; a PIN sent in clear is refused by name."""
    import base64

    import requests

    from test_trustee import capturing_proxy

    module = softhsm_module()
    env = make_token(tmp_path)
    srv = private_server_factory(config=hsm_config(module, None), env=env)
    officer1 = srv.token("officer1")
    url, captured, httpd = capturing_proxy(srv.admin_url)
    try:
        r = srv.cli("trustee", "unseal", "wrong-pin-1111", token=officer1, env={"OBHUT_ADMIN_URL": url})
        assert r.returncode != 0, "a wrong PIN logged the trustee in"
        assert "sealed" in srv.cli_ok("trustee", "status", token=srv.token("operator"))
        r = srv.cli("trustee", "unseal", PIN, token=officer1, env={"OBHUT_ADMIN_URL": url})
        assert r.returncode == 0 and r.stdout.strip() == "unsealed", (r.stdout, r.stderr)
    finally:
        httpd.shutdown()
    posts = [body for method, path, body in captured if (method, path) == ("POST", "/v1/trustee/unseal")]
    assert len(posts) == 2, [(m, p) for m, p, _ in captured]
    pin = PIN.encode()
    forms = {
        "as text": pin,
        "hex": pin.hex().encode(),
        "HEX": pin.hex().upper().encode(),
        "base64": base64.b64encode(pin).rstrip(b"="),
        "base64url": base64.urlsafe_b64encode(pin).rstrip(b"="),
        "UTF-16": PIN.encode("utf-16-le"),
        "JSON-escaped": "".join(f"\\u{ord(c):04x}" for c in PIN).encode(),
    }
    for method, path, body in captured:
        assert pin not in path.encode(), f"the PIN is in the path {path}"
        leaked = [name for name, form in forms.items() if form in body]
        assert not leaked, f"the admin listener saw the PIN ({leaked}) in {method} {path}: {body[:200]!r}"
    for body in posts:
        assert set(json.loads(body)) == {"sealed"}, body
    s3 = srv.client()
    s3.create_bucket(Bucket="pin")
    s3.put_object(Bucket="pin", Key="k", Body=b"after an encrypted PIN")

    # the captured request, replayed after the trustee was sealed again, opens nothing
    assert srv.cli_ok("trustee", "seal", token=officer1).strip().startswith("sealed")
    r = requests.post(srv.admin_url + "/v1/trustee/unseal", data=posts[-1], timeout=30,
                      headers={**srv.auth("officer1"), "Content-Type": "application/json"})
    assert r.status_code == 403 and "epoch" in r.json()["message"], r.text
    assert "sealed" in srv.cli_ok("trustee", "status", token=srv.token("operator"))
    # a PIN in clear is refused by name and logs nothing in
    r = requests.post(srv.admin_url + "/v1/trustee/unseal", json={"share": PIN}, headers=srv.auth("officer1"), timeout=30)
    assert r.status_code == 400 and "in clear" in r.json()["message"], r.text
    assert "sealed" in srv.cli_ok("trustee", "status", token=srv.token("operator"))
    # the PIN, encrypted, still works
    assert srv.cli_ok("trustee", "unseal", PIN, token=officer1).strip() == "unsealed"
    assert srv.client().get_object(Bucket="pin", Key="k")["Body"].read() == b"after an encrypted PIN"
