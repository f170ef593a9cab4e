"""Two datacenters on one machine (`scripts/two-dc`): the standby replicates synchronously, the
link between the datacenters adds the configured round trip and is the only way between
them, an object written in dc1 is read in dc2, and while the link is cut a write that needs
both sites is refused with 503, leaving nothing behind, as reads in dc1 go on; after `heal`
writes work again. One deployment for the module (two_dc_helpers.py)."""

from __future__ import annotations

import os
import stat

import botocore.exceptions
import pytest

from s3helpers import unique_name
from two_dc_helpers import two_dc, wait_until  # noqa: F401 (fixture)

ENV_KEYS = (
    "GW_DC1_S3", "GW_DC1B_S3", "GW_DC2_S3", "OBHUT_ADMIN_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION", "OBHUT_OFFICER1_TOKEN", "OBHUT_OFFICER2_TOKEN", "OBHUT_OPERATOR_TOKEN", "OBHUT_AUDITOR_TOKEN",
    "OBHUT_DEMO_ADMIN_TOKEN", "PG_PRIMARY_URL", "PG_STANDBY_URL",
)


def status_of(err: botocore.exceptions.ClientError) -> int:
    return err.response["ResponseMetadata"]["HTTPStatusCode"]


def keys(client, bucket: str) -> list[str]:
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_status_shows_a_synchronous_standby_and_the_configured_round_trip(two_dc):
    env_file = two_dc.dir / "cluster.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    missing = [k for k in ENV_KEYS if not two_dc.env.get(k)]
    assert not missing, f"cluster.env lacks {missing}"
    for k in ("GW_DC1_S3", "GW_DC1B_S3", "GW_DC2_S3", "OBHUT_ADMIN_URL"):
        assert two_dc.env[k].startswith("https://198.1"), two_dc.env[k]
    for k in ("PG_PRIMARY_URL", "PG_STANDBY_URL"):
        assert "sslmode=verify-full" in two_dc.env[k], two_dc.env[k]

    # `up` again on a deployment that is up changes nothing.
    again = two_dc.run("up", "--rtt-ms", str(two_dc.rtt_ms))
    assert "already up" in again.stdout, again.stdout

    status = two_dc.status()
    rows = two_dc.replication(status)
    assert rows.get("dc2", {}).get("sync_state") == "sync", status
    assert rows["dc2"]["state"] == "streaming", status
    rtt = two_dc.probe_rtt_ms(status)
    assert rtt is not None and abs(rtt - two_dc.rtt_ms) <= 1.0, status
    for name in ("trustee-dc1", "gw-dc1a", "gw-dc1b", "gw-dc2", "garage-dc1", "garage-dc2", "pg-dc1", "pg-dc2"):
        assert any(line.split()[:2] == [name, "running"] for line in status.splitlines()), (name, status)

    # The client namespace reaches the gateways of both datacenters.
    for key in ("GW_DC1_S3", "GW_DC1B_S3", "GW_DC2_S3"):
        url = two_dc.env[key].replace(":9000", ":9001") + "/healthz"
        r = two_dc.ns_run("client", "curl", "-fsS", "--max-time", "10", "--cacert", two_dc.ca, url)
        assert r.returncode == 0, f"client namespace -> {url}: {r.stderr}"

    # Both Garage sites are registered, in DE, and reachable from dc1.
    r = two_dc.cli("site", "list", token=two_dc.token("operator"))
    assert r.returncode == 0, r.stderr
    rows = {ln.split()[0]: ln.split() for ln in r.stdout.splitlines()[1:] if ln.strip()}
    assert set(rows) == {"de-fra", "de-mgd"}, r.stdout
    for site in rows.values():
        assert site[1:4] == ["DE", "active", "yes"], r.stdout
        assert site[5].startswith("s3:http://198.1"), r.stdout


def test_a_put_through_dc1_reads_back_through_dc2_and_the_other_dc1_gateway(two_dc):
    dc1 = two_dc.s3("dc1")
    bucket = unique_name("twodc")
    dc1.create_bucket(Bucket=bucket)
    body = os.urandom(300_000)
    dc1.put_object(Bucket=bucket, Key="from-dc1", Body=body)
    for gw in ("dc1b", "dc2"):
        got = two_dc.s3(gw).get_object(Bucket=bucket, Key="from-dc1")["Body"].read()
        assert got == body, f"read through {gw} differs"
    # And the other way round.
    two_dc.s3("dc2").put_object(Bucket=bucket, Key="from-dc2", Body=b"written in dc2")
    assert dc1.get_object(Bucket=bucket, Key="from-dc2")["Body"].read() == b"written in dc2"


def test_a_cut_link_refuses_writes_with_503_keeps_reads_in_dc1_and_heal_restores_writes(two_dc):
    dc1, dc1b, dc2 = two_dc.s3("dc1"), two_dc.s3("dc1b"), two_dc.s3("dc2")
    bucket = unique_name("twodc-cut")
    dc1.create_bucket(Bucket=bucket)
    dc1.put_object(Bucket=bucket, Key="before", Body=b"written before the cut")

    with two_dc.partition():
        two_dc.cut()  # again: no change
        # The link is the only way between the datacenters: cut, nothing answers.
        assert two_dc.probe_rtt_ms() is None, "dc2 still answers dc1 across a cut link"
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            dc1.put_object(Bucket=bucket, Key="during", Body=b"needs both sites")
        assert status_of(refused.value) == 503, refused.value.response
        for client in (dc1, dc1b):
            assert client.get_object(Bucket=bucket, Key="before")["Body"].read() == b"written before the cut"
            with pytest.raises(botocore.exceptions.ClientError) as absent:
                client.head_object(Bucket=bucket, Key="during")
            assert status_of(absent.value) == 404
            assert keys(client, bucket) == ["before"]

    two_dc.heal()  # again: no change

    def write_after_heal():
        dc1.put_object(Bucket=bucket, Key="after", Body=b"written after the heal")
        return True

    wait_until("a write through dc1 after heal", 90, write_after_heal, interval=1)
    assert dc2.get_object(Bucket=bucket, Key="after")["Body"].read() == b"written after the heal"
    assert sorted(keys(dc2, bucket)) == ["after", "before"], "the refused write became visible"
    wait_until("the standby synchronous again after heal", 60,
               lambda: two_dc.replication().get("dc2", {}).get("sync_state") == "sync", interval=1)
    rtt = two_dc.probe_rtt_ms()
    assert rtt is not None and abs(rtt - two_dc.rtt_ms) <= 1.0, rtt
