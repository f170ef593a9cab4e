"""`obhut tenant ...` against the admin API: officers may manage tenants;
operators, auditors and tenant admins may not; every failure is one clear
line on stderr and a non-zero exit."""

import os
import signal

import botocore.exceptions
import pytest
import requests

from conftest import assert_one_line_failure, bearer, enrol, parse_key_output
from s3helpers import client_error, unique_name


def new_tenant_name() -> str:
    return "t" + os.urandom(5).hex()


def assert_one_line_failure(r, what: str):
    assert r.returncode != 0, f"{what}: expected failure, exit 0 with stdout {r.stdout!r}"
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"{what}: expected one line on stderr, got {len(lines)}:\n{r.stderr}"
    lowered = r.stderr.lower()
    assert "panicked" not in lowered and "backtrace" not in lowered, r.stderr


def tenant_names(server) -> str:
    r = server.cli("tenant", "list", token=server.tokens["OBHUT_OFFICER1_TOKEN"])
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_officer_creates_tenant_its_admin_creates_keys(server):
    officer = server.tokens["OBHUT_OFFICER1_TOKEN"]
    name = new_tenant_name()
    r = server.cli("tenant", "create", name, "--jurisdiction", "DE", token=officer)
    assert r.returncode == 0, r.stderr
    listing = tenant_names(server)
    assert name in listing.split() or name in listing, listing
    assert "demo" in listing, listing

    # No standing access: an officer cannot mint a tenant's S3 keys; the tenant's admin can.
    for who in ("OBHUT_OFFICER1_TOKEN", "OBHUT_OFFICER2_TOKEN"):
        r = server.cli("tenant", "key-create", name, token=server.tokens[who])
        assert_one_line_failure(r, f"key-create as {who}")
        assert "AWS_SECRET_ACCESS_KEY" not in r.stdout
    admin = enrol(server, f"{name}-admin", "tenant-admin", tenant=name)
    r = server.cli("tenant", "key-create", name, token=admin)
    assert r.returncode == 0, r.stderr
    keys = parse_key_output(r.stdout)
    assert keys["AWS_ACCESS_KEY_ID"] != server.demo["AWS_ACCESS_KEY_ID"]
    client = server.client(keys["AWS_ACCESS_KEY_ID"], keys["AWS_SECRET_ACCESS_KEY"])
    assert client.list_buckets()["Buckets"] == []
    bucket = unique_name("newtenant")
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="k", Body=b"v")
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"

    # A second key for the same tenant works too, and differs.
    r = server.cli("tenant", "key-create", name, token=admin)
    assert r.returncode == 0, r.stderr
    keys2 = parse_key_output(r.stdout)
    assert keys2["AWS_ACCESS_KEY_ID"] != keys["AWS_ACCESS_KEY_ID"]
    client2 = server.client(keys2["AWS_ACCESS_KEY_ID"], keys2["AWS_SECRET_ACCESS_KEY"])
    assert [b["Name"] for b in client2.list_buckets()["Buckets"]] == [bucket]


def test_flags_instead_of_env(server):
    name = new_tenant_name()
    r = server.cli(
        "tenant", "create", name, "--jurisdiction", "DE",
        "--admin-url", server.admin_url, "--token", server.tokens["OBHUT_OFFICER2_TOKEN"],
        env={"OBHUT_ADMIN_URL": "http://127.0.0.1:9", "OBHUT_TOKEN": "wrong"},
    )
    assert r.returncode == 0, r.stderr
    assert name in tenant_names(server)


@pytest.mark.parametrize("who", ["OBHUT_OPERATOR_TOKEN", "OBHUT_AUDITOR_TOKEN", "OBHUT_DEMO_ADMIN_TOKEN"])
def test_non_officers_cannot_create_tenants(server, who):
    name = new_tenant_name()
    r = server.cli("tenant", "create", name, "--jurisdiction", "DE", token=server.tokens[who])
    assert_one_line_failure(r, f"tenant create as {who}")
    assert name not in tenant_names(server)


@pytest.mark.parametrize("who", ["OBHUT_OPERATOR_TOKEN", "OBHUT_AUDITOR_TOKEN"])
def test_non_officers_cannot_list_tenants(server, who):
    r = server.cli("tenant", "list", token=server.tokens[who])
    assert_one_line_failure(r, f"tenant list as {who}")
    assert "demo" not in r.stdout


@pytest.mark.parametrize(
    "who", ["OBHUT_OPERATOR_TOKEN", "OBHUT_AUDITOR_TOKEN", "OBHUT_DEMO_ADMIN_TOKEN", "OBHUT_OFFICER1_TOKEN"]
)
def test_only_a_tenants_admin_creates_its_keys(server, tenant_b, who):
    r = server.cli("tenant", "key-create", tenant_b["name"], token=server.tokens[who])
    assert_one_line_failure(r, f"key-create as {who}")
    assert "AWS_SECRET_ACCESS_KEY" not in r.stdout


@pytest.mark.parametrize("who", ["OBHUT_OPERATOR_TOKEN", "OBHUT_AUDITOR_TOKEN", "OBHUT_OFFICER2_TOKEN"])
def test_others_cannot_create_demo_keys(server, who):
    r = server.cli("tenant", "key-create", "demo", token=server.tokens[who])
    assert_one_line_failure(r, f"key-create demo as {who}")
    assert "AWS_SECRET_ACCESS_KEY" not in r.stdout


def test_bad_token(server):
    r = server.cli("tenant", "list", token="not-a-real-token")
    assert_one_line_failure(r, "bad token")
    r = server.cli("tenant", "create", new_tenant_name(), "--jurisdiction", "DE", token="")
    assert_one_line_failure(r, "empty token")


@pytest.mark.parametrize("name", ["Bad Name", "UPPER", "", "a/b", "-dash", "ü-nicode", "a" * 200])
def test_invalid_tenant_name(server, name):
    r = server.cli("tenant", "create", "--jurisdiction", "DE", "--", name, token=server.tokens["OBHUT_OFFICER1_TOKEN"])
    assert_one_line_failure(r, f"tenant create {name!r}")


def test_duplicate_tenant(server):
    officer = server.tokens["OBHUT_OFFICER1_TOKEN"]
    r = server.cli("tenant", "create", "demo", "--jurisdiction", "DE", token=officer)
    assert_one_line_failure(r, "tenant create demo (exists)")


@pytest.mark.parametrize("value", ["DEU", "1", "", "de-fra"])
def test_malformed_jurisdiction(server, value):
    r = server.cli("tenant", "create", new_tenant_name(), "--jurisdiction", value, token=server.tokens["OBHUT_OFFICER1_TOKEN"])
    assert_one_line_failure(r, f"tenant create --jurisdiction {value!r}")


def test_jurisdiction_without_sites_never_stores_elsewhere(server):
    """Residency: a tenant limited to a jurisdiction with no site (FR here)
    is either refused at creation, or every write of it is refused; its
    bytes never land on the DE sites."""
    officer = server.tokens["OBHUT_OFFICER1_TOKEN"]
    name = new_tenant_name()
    r = server.cli("tenant", "create", name, "--jurisdiction", "FR", token=officer)
    if r.returncode != 0:
        assert_one_line_failure(r, "tenant create --jurisdiction FR")
        return
    admin = enrol(server, f"{name}-admin", "tenant-admin", tenant=name)
    r = server.cli("tenant", "key-create", name, token=admin)
    assert r.returncode == 0, r.stderr
    keys = parse_key_output(r.stdout)
    client = server.client(keys["AWS_ACCESS_KEY_ID"], keys["AWS_SECRET_ACCESS_KEY"])
    bucket = unique_name("fr-only")
    try:
        client.create_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as e:
        status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        assert e.response["Error"]["Code"] != "InternalError" and status != 500, e.response["Error"]
        return
    try:
        client.put_object(Bucket=bucket, Key="k", Body=b"must not be stored in DE")
    except botocore.exceptions.ClientError as e:
        status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        assert e.response["Error"]["Code"] != "InternalError" and status != 500, e.response["Error"]
        code, _, _ = client_error(client.head_object, Bucket=bucket, Key="k")
        assert code == "404"
        return
    raise AssertionError("a tenant limited to FR stored an object although the only sites are in DE")


def test_key_create_unknown_tenant(server):
    r = server.cli("tenant", "key-create", "no-such-tenant-" + os.urandom(3).hex(), token=server.tokens["OBHUT_DEMO_ADMIN_TOKEN"])
    assert_one_line_failure(r, "key-create for unknown tenant")


def test_unreachable_admin_url(server):
    r = server.cli("tenant", "list", token=server.tokens["OBHUT_OFFICER1_TOKEN"], env={"OBHUT_ADMIN_URL": "http://127.0.0.1:9"})
    assert_one_line_failure(r, "unreachable admin URL")


def test_admin_api_errors_are_json(server):
    officer = server.tokens["OBHUT_OFFICER1_TOKEN"]
    for headers in ({"Authorization": f"Bearer {bearer(officer)}"}, {"Authorization": f"Bearer {officer}"}, {}, {"Authorization": "Bearer nope"}):
        r = requests.get(f"{server.admin_url}/v1/no-such-endpoint", headers=headers, timeout=10)
        assert 400 <= r.status_code < 500, r.status_code
        body = r.json()
        assert isinstance(body.get("error"), str) and body["error"], body
        assert isinstance(body.get("message"), str), body


def test_output_to_a_reader_that_went_away_ends_quietly(server):
    """`obhut log show | head`: when the reader closes the pipe, the command
    stops without a panic (SIGPIPE, as any Unix tool), and it never hangs."""
    import subprocess

    from conftest import obhut_bin
    from s3helpers import clean_env

    for args in (["log", "checkpoint"], ["tenant", "list"]):
        proc = subprocess.Popen(
            [str(obhut_bin()), *args],
            env=clean_env({"OBHUT_ADMIN_URL": server.admin_url, "OBHUT_TOKEN": server.token("officer1")}),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        proc.stdout.close()  # the reader is gone before the first line is printed
        _, err = proc.communicate(timeout=60)
        err = err.decode(errors="replace")
        assert "panicked" not in err and "failed printing" not in err, f"{args}: {err}"
        assert proc.returncode in (0, -signal.SIGPIPE), f"{args}: exit {proc.returncode}: {err}"
