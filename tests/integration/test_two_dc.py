"""Two datacenters on one machine (`scripts/two-dc`): the standby replicates synchronously, the
link between the datacenters adds the configured round trip and is the only way between
them, an object written in dc1 is read in dc2, and while the link is cut a write that needs
both sites is refused with 503, leaving nothing behind, as reads in dc1 go on; after `heal`
writes work again. Any request goes to any gateway (boto3 and aws-cli against different
gateways: read-after-write, list-after-write, overwrite and delete visibility, a multipart
upload spread over all three); a write the cut held back is repaired to two sites after the
heal and the residency report verifies clean; a gateway killed with SIGKILL mid-upload loses
nothing it acknowledged, and the standby holds every acknowledged commit. One deployment for
all the two-datacenter tests (conftest.py, two_dc_helpers.py)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import threading
import time

import botocore.exceptions
import pytest

from conftest import obhut_bin

from garage_helpers import garage_bin
from s3helpers import clean_env, multipart_etag, unique_name
from two_dc_helpers import wait_until

ENV_KEYS = (
    "GW_DC1_S3", "GW_DC1B_S3", "GW_DC2_S3", "OBHUT_ADMIN_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION", "OBHUT_OFFICER1_TOKEN", "OBHUT_OFFICER2_TOKEN", "OBHUT_OPERATOR_TOKEN", "OBHUT_AUDITOR_TOKEN",
    "OBHUT_DEMO_ADMIN_TOKEN", "PG_PRIMARY_URL", "PG_STANDBY_URL", "PG_CATALOG_DC1_URL", "PG_CATALOG_DC2_URL",
    "PATRONI_DC1_URL", "PATRONI_DC2_URL",
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
    for k in ("PG_PRIMARY_URL", "PG_STANDBY_URL", "PG_CATALOG_DC1_URL", "PG_CATALOG_DC2_URL"):
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
    for name in ("trustee-dc1", "gw-dc1a", "gw-dc1b", "gw-dc2", "garage-dc1", "garage-dc2", "tls-garage-dc1",
                 "tls-garage-dc2", "pg-dc1", "pg-dc2", "etcd-dc1", "etcd-dc2", "etcd-witness", "patroni-dc1",
                 "patroni-dc2", "haproxy-dc1", "haproxy-dc2"):
        assert any(line.split()[:2] == [name, "running"] for line in status.splitlines()), (name, status)
    # Patroni runs both servers: the primary in dc1, its synchronous standby in dc2.
    members = two_dc.patroni(status)
    assert (members.get("dc1", {}).get("role"), members.get("dc2", {}).get("role")) == ("Leader", "Sync Standby"), \
        status
    assert all(m["state"] in ("running", "streaming") for m in members.values()), status

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
        # HTTPS to Garage, through its TLS terminator, with the deployment's CA.
        assert site[5].startswith("s3:https://198.1"), r.stdout
        assert re.search(r", CA sha256:[0-9a-f]{16}$", " ".join(site[5:])), r.stdout
        host = site[5].split("//")[1].split("/")[0]
        # The port speaks TLS only: plain HTTP gets no S3 answer.
        plain = two_dc.ns_run("client", "curl", "-sS", "--max-time", "5", f"http://{host}/")
        assert plain.returncode != 0, f"plain HTTP answered on {host}: {plain.stdout[:200]}"


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
    # dc2's gateway reaches the primary again once its HAProxy has seen dc1's Patroni answer
    # and its pool has connected anew: bounded, not at once.
    read_in_dc2 = wait_until("a read through dc2 after heal", 60,
                             lambda: dc2.get_object(Bucket=bucket, Key="after")["Body"].read(), interval=1)
    assert read_in_dc2 == b"written after the heal"
    assert sorted(keys(dc2, bucket)) == ["after", "before"], "the refused write became visible"
    wait_until("the standby synchronous again after heal", 60,
               lambda: two_dc.replication().get("dc2", {}).get("sync_state") == "sync", interval=1)
    rtt = two_dc.probe_rtt_ms()
    assert rtt is not None and abs(rtt - two_dc.rtt_ms) <= 1.0, rtt


def test_any_request_goes_to_any_gateway_through_boto3_and_aws_cli(two_dc, tmp_path):
    bucket = unique_name("anygw")
    two_dc.aws("dc2", "s3api", "create-bucket", "--bucket", bucket)
    # Read after write: boto3 writes through dc1, aws-cli reads through dc2 and dc1b.
    body = os.urandom(200_000)
    two_dc.s3("dc1").put_object(Bucket=bucket, Key="k", Body=body)
    for gw in ("dc2", "dc1b"):
        out = tmp_path / f"k-{gw}"
        two_dc.aws(gw, "s3api", "get-object", "--bucket", bucket, "--key", "k", str(out))
        assert out.read_bytes() == body, f"read through {gw} (aws-cli) differs"
    # List after write: aws-cli writes through dc1b, both clients list through the others.
    small = tmp_path / "small"
    small.write_bytes(b"through aws-cli in dc1b")
    two_dc.aws("dc1b", "s3", "cp", str(small), f"s3://{bucket}/listed")
    for gw in ("dc2", "dc1"):
        assert keys(two_dc.s3(gw), bucket) == ["k", "listed"], gw
    listed = json.loads(two_dc.aws("dc2", "s3api", "list-objects-v2", "--bucket", bucket).stdout)
    assert [o["Key"] for o in listed["Contents"]] == ["k", "listed"]
    # An overwrite through dc2 is what every gateway reads at once (each had read the old one).
    two_dc.s3("dc2").put_object(Bucket=bucket, Key="k", Body=b"overwritten in dc2")
    for gw in ("dc1", "dc1b", "dc2"):
        assert two_dc.s3(gw).get_object(Bucket=bucket, Key="k")["Body"].read() == b"overwritten in dc2", gw
    # A delete through dc1b (aws-cli) is seen by the other gateways at once.
    two_dc.aws("dc1b", "s3", "rm", f"s3://{bucket}/k")
    for gw in ("dc1", "dc2"):
        with pytest.raises(botocore.exceptions.ClientError) as gone:
            two_dc.s3(gw).head_object(Bucket=bucket, Key="k")
        assert status_of(gone.value) == 404, gw
        assert keys(two_dc.s3(gw), bucket) == ["listed"], gw
    r = two_dc.aws("dc2", "s3api", "head-object", "--bucket", bucket, "--key", "k", check=False)
    assert r.returncode != 0 and "404" in r.stderr, r.stderr


def test_a_multipart_upload_created_in_dc1_gets_its_parts_through_dc1b_and_dc2_and_completes_in_dc2(two_dc, tmp_path):
    bucket = unique_name("mpu2dc")
    two_dc.s3("dc1").create_bucket(Bucket=bucket)
    upload = two_dc.s3("dc1").create_multipart_upload(Bucket=bucket, Key="spread")["UploadId"]
    part1 = os.urandom(5 * 1024 * 1024)
    part2 = os.urandom(1024 * 1024 + 7)
    etag1 = two_dc.s3("dc1b").upload_part(Bucket=bucket, Key="spread", UploadId=upload, PartNumber=1,
                                          Body=part1)["ETag"]
    body2 = tmp_path / "part2"
    body2.write_bytes(part2)
    out = two_dc.aws("dc2", "s3api", "upload-part", "--bucket", bucket, "--key", "spread", "--upload-id", upload,
                     "--part-number", "2", "--body", str(body2))
    etag2 = json.loads(out.stdout)["ETag"]
    listed = two_dc.s3("dc1").list_parts(Bucket=bucket, Key="spread", UploadId=upload)["Parts"]
    assert [(p["PartNumber"], p["ETag"]) for p in listed] == [(1, etag1), (2, etag2)]
    parts = tmp_path / "parts.json"
    parts.write_text(json.dumps({"Parts": [{"PartNumber": 1, "ETag": etag1}, {"PartNumber": 2, "ETag": etag2}]}))
    done = json.loads(two_dc.aws("dc2", "s3api", "complete-multipart-upload", "--bucket", bucket, "--key", "spread",
                                 "--upload-id", upload, "--multipart-upload", f"file://{parts}").stdout)
    assert done["ETag"] == multipart_etag([part1, part2]), done
    for gw in ("dc1", "dc1b", "dc2"):
        got = two_dc.s3(gw).get_object(Bucket=bucket, Key="spread")
        assert got["ETag"] == done["ETag"], gw
        assert got["Body"].read() == part1 + part2, f"read through {gw} differs"
    assert two_dc.s3("dc1b").list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def report_lines(two_dc) -> list[str]:
    """The bucket lines of `obhut residency report --verify` (the auditor's)."""
    r = two_dc.cli("residency", "report", "--verify", token=two_dc.token("auditor"), timeout=120)
    assert r.returncode == 0, r.stderr
    assert "attested by the trustee" in r.stdout, r.stdout
    return [ln.strip() for ln in r.stdout.splitlines() if ln.strip().startswith("bucket ")]


def test_a_write_the_cut_held_back_is_repaired_to_two_sites_after_heal_and_verifies_clean(two_dc):
    """With degraded writes accepted, a write during the cut is placed on de-fra alone and its
    commit waits for the synchronous standby: nothing of it is visible until the heal, then it
    is acknowledged on one site, and repair brings it (and every other object) to two."""
    dc1 = two_dc.s3("dc1", read_timeout=180)
    bucket = unique_name("twodc-heal")
    dc1.create_bucket(Bucket=bucket)
    dc1.put_object(Bucket=bucket, Key="before", Body=b"on both sites")
    officer = two_dc.token("officer1")
    r = two_dc.cli("tenant", "policy", "demo", "--degraded-writes", "accept", token=officer)
    assert r.returncode == 0 and "degraded writes accept" in r.stdout, r.stderr
    result: dict[str, object] = {}
    try:
        with two_dc.partition():
            def put():
                try:
                    result["etag"] = dc1.put_object(Bucket=bucket, Key="held", Body=b"written during the cut")["ETag"]
                except Exception as e:  # noqa: BLE001 (the test looks at it)
                    result["error"] = e

            writer = threading.Thread(target=put)
            writer.start()
            time.sleep(4)
            assert writer.is_alive(), f"the write did not wait for the standby: {result}"
            for gw in ("dc1", "dc1b"):
                with pytest.raises(botocore.exceptions.ClientError) as absent:
                    two_dc.s3(gw).head_object(Bucket=bucket, Key="held")
                assert status_of(absent.value) == 404, "half-visible during the cut"
                assert keys(two_dc.s3(gw), bucket) == ["before"]
        writer.join(timeout=120)
        assert "etag" in result, f"the held write failed after the heal: {result}"
    finally:
        r = two_dc.cli("tenant", "policy", "demo", "--degraded-writes", "refuse", token=officer)
        assert r.returncode == 0, r.stderr
    # Placed on de-fra alone.
    under = [ln for ln in report_lines(two_dc) if ln.startswith(f"bucket {bucket}:")]
    assert under and ("de-fra: 1" in under[0] or "under-replicated 0" in under[0]), under

    # Repair, on the gateway that holds the lease, brings every object to two sites.
    def leader():
        return next((gw for gw in ("dc1", "dc1b", "dc2") if two_dc.role(gw) == "leader"), None)

    def repaired():
        gw = leader()
        if gw is None:
            return False
        r = two_dc.cli("repair", token=two_dc.token("operator"), gateway=gw, timeout=180)
        assert r.returncode == 0 or "lease" in r.stderr + r.stdout, r.stderr + r.stdout
        return r.returncode == 0 and "repair done" in r.stdout + r.stderr and r

    r = wait_until("a repair pass on the gateway holding the lease", 90, repaired, interval=1)
    assert " 0 failed" in r.stdout + r.stderr, r.stdout + r.stderr
    lines = report_lines(two_dc)
    assert lines, "no bucket in the report"
    for ln in lines:
        m = re.search(r"(\d+) objects \((.*)\); under-replicated (\d+); outside policy (\d+); "
                      r"verified (\d+) replicas: (\d+) missing, (\d+) corrupt, (\d+) unreachable", ln)
        assert m, ln
        objects, placement, under_n, outside, verified, missing, corrupt, unreachable = m.groups()
        assert (under_n, outside, missing, corrupt, unreachable) == ("0", "0", "0", "0", "0"), ln
        assert int(objects) == 0 or placement == f"de-fra,de-mgd: {objects}", ln
        # Each chunk's replicas (a multipart object has one chunk per part).
        assert int(verified) >= 2 * int(objects) and int(verified) % 2 == 0, ln
    assert dc1.get_object(Bucket=bucket, Key="held")["Body"].read() == b"written during the cut"
    assert two_dc.s3("dc2").get_object(Bucket=bucket, Key="held")["Body"].read() == b"written during the cut"


def test_a_gateway_killed_mid_upload_loses_nothing_acknowledged_and_the_standby_holds_every_commit(two_dc):
    bucket = unique_name("twodc-kill")
    two_dc.s3("dc1").create_bucket(Bucket=bucket)
    victim = two_dc.s3("dc1b", connect_timeout=2, read_timeout=30)
    acked: dict[str, bytes] = {}
    tried: dict[str, bytes] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def writer(n: int) -> None:
        for j in range(200):
            if stop.is_set():
                return
            key = f"w{n}-{j:03}"
            body = os.urandom(100_000) + key.encode()
            with lock:
                tried[key] = body
            try:
                victim.put_object(Bucket=bucket, Key=key, Body=body)
            except Exception:  # noqa: BLE001 (the gateway was killed)
                return
            with lock:
                acked[key] = body

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    wait_until("a dozen acknowledged writes through gw-dc1b", 60, lambda: len(acked) >= 12, interval=0.05)
    two_dc.kill9("gw-dc1b")
    stop.set()
    for t in threads:
        t.join(timeout=60)
    with lock:
        acked_now, tried_now = dict(acked), dict(tried)
    assert len(acked_now) >= 12

    # Every acknowledged write reads back whole through both datacenters; what was cut off is
    # absent or whole, never anything else.
    for gw in ("dc1", "dc2"):
        client = two_dc.s3(gw)
        for key, body in acked_now.items():
            assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == body, (gw, key)
        listed = set(keys(client, bucket))
        assert set(acked_now) <= listed <= set(tried_now), gw
        for key in listed - set(acked_now):
            assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == tried_now[key], (gw, key)

    # The standby is synchronous and holds every acknowledged commit: the rows are there once
    # it replayed what it had flushed before each commit was acknowledged.
    status = two_dc.status()
    rows = two_dc.replication(status)
    assert (rows.get("dc2", {}).get("sync_state"), rows.get("dc2", {}).get("state")) == ("sync", "streaming"), status
    primary_lsn = two_dc.psql("primary", "SELECT pg_current_wal_lsn()").strip()

    def replayed():
        out = two_dc.psql("standby", f"SELECT pg_last_wal_replay_lsn() >= '{primary_lsn}'::pg_lsn")
        return out.strip() == "t"

    wait_until("the standby replaying up to the primary", 30, replayed, interval=0.2)
    assert two_dc.psql("standby", "SELECT pg_is_in_recovery()").strip() == "t"
    on_standby = set(two_dc.psql(
        "standby", f"SELECT convert_from(key, 'UTF8') FROM objects WHERE bucket = '{bucket}'").split())
    missing = set(acked_now) - on_standby
    assert not missing, f"acknowledged but not on the standby: {sorted(missing)[:5]}"

    # Started again, the gateway serves as before.
    two_dc.restart("gw-dc1b")
    two_dc.s3("dc1b").put_object(Bucket=bucket, Key="after-restart", Body=b"again")
    assert two_dc.s3("dc2").get_object(Bucket=bucket, Key="after-restart")["Body"].read() == b"again"


def test_an_s3_site_behind_tls_is_moved_only_with_a_ca_that_vouches_for_it(two_dc):
    """`obhut site set-backend` of an S3 site: without --s3-ca, or with a CA that did not sign
    the terminator's certificate, the endpoint is refused and the registry keeps the record it
    had; with the deployment's CA it is accepted, and writes go on through it."""
    operator, officer = two_dc.token("operator"), two_dc.token("officer1")

    def de_fra() -> str:
        r = two_dc.cli("site", "list", token=operator)
        assert r.returncode == 0, r.stderr
        return next(ln for ln in r.stdout.splitlines() if ln.startswith("de-fra "))

    before = de_fra()
    m = re.search(r"s3:(https://[^/]+)/obhut-site as (\S+), CA (sha256:[0-9a-f]{16})", before)
    assert m, before
    endpoint, access_key, fingerprint = m.groups()
    cfg = two_dc.dir / "dc1" / "garage" / "garage.toml"
    info = two_dc.ns_run("dc1", garage_bin(), "-c", str(cfg), "key", "info", "obhut-site", "--show-secret")
    assert info.returncode == 0, info.stderr
    secret = re.search(r"Secret key:\s*(\S+)", info.stdout).group(1)

    def set_backend(*ca: str):
        return subprocess.run(
            [str(obhut_bin()), "site", "set-backend", "de-fra", "--s3", endpoint, "--bucket", "obhut-site",
             "--region", "garage", "--access-key", access_key, *ca],
            env=clean_env({"OBHUT_ADMIN_URL": two_dc.admin_url("dc1"), "OBHUT_CA_BUNDLE": two_dc.ca,
                           "OBHUT_TOKEN": officer, "OBHUT_SITE_SECRET_KEY": secret}),
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)

    for ca in ([], ["--s3-ca", str(two_dc.dir / "tls" / "trustee" / "ca.crt")]):
        r = set_backend(*ca)
        assert r.returncode != 0, f"accepted with {ca or 'no CA'}: {r.stdout}"
        assert "certificate" in r.stderr.lower() or "unknownissuer" in r.stderr.lower(), r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert de_fra() == before, "a refused change changed the registry"
    r = set_backend("--s3-ca", two_dc.ca)
    assert r.returncode == 0, r.stderr
    assert f"CA {fingerprint}" in r.stdout, r.stdout
    assert de_fra() == before
    bucket = unique_name("twodc-ca")
    two_dc.s3("dc2").create_bucket(Bucket=bucket)
    two_dc.s3("dc2").put_object(Bucket=bucket, Key="k", Body=b"over TLS to both Garages")
    assert two_dc.s3("dc1b").get_object(Bucket=bucket, Key="k")["Body"].read() == b"over TLS to both Garages"


# The catalog's deadline on each call (OBHUT_CATALOG_DEADLINE_MS, default 10 s), and how long the
# write to the cut-off site may take before the gateway gives up on it (the S3 site's retries
# within their window, each attempt with its 5 s to connect, and backoff; about 30 s measured):
# a write during a cut is answered within their sum, with room for a loaded machine (40.6 s
# measured in all on 2 cores).
CATALOG_DEADLINE_S = 10
SITE_GIVES_UP_S = 30
ANSWER_BOUND_S = CATALOG_DEADLINE_S + SITE_GIVES_UP_S + 20


def test_a_commit_the_cut_holds_past_its_deadline_answers_503_and_never_shows(two_dc):
    """With degraded writes accepted, a write during a cut is placed on de-fra alone and its
    commit waits for the standby in dc2; at the catalog's deadline the gateway answers 503
    (never success: the outcome is unknown to it). The commit's first phase, prepared but
    never committed, shows nothing, and after the heal it is rolled back: the write never
    becomes visible, its key takes writes again, a delete answered 503 the same way never
    takes effect, and the lease on background work, whose
    renewals meanwhile failed at their deadline instead of hanging, has a holder again."""
    dc1 = two_dc.s3("dc1", read_timeout=180)
    bucket = unique_name("twodc-deadline")
    dc1.create_bucket(Bucket=bucket)
    dc1.put_object(Bucket=bucket, Key="kept", Body=b"written before the cut")
    officer = two_dc.token("officer1")
    r = two_dc.cli("tenant", "policy", "demo", "--degraded-writes", "accept", token=officer)
    assert r.returncode == 0 and "degraded writes accept" in r.stdout, r.stderr
    log = two_dc.dir / "logs" / "gw-dc1a.log"
    logged_before = len(log.read_text(errors="replace")) if log.exists() else 0
    try:
        with two_dc.partition():
            started = time.monotonic()
            with pytest.raises(botocore.exceptions.ClientError) as refused:
                dc1.put_object(Bucket=bucket, Key="unacknowledged", Body=b"written during the cut")
            took = time.monotonic() - started
            assert status_of(refused.value) == 503, refused.value.response
            assert took < ANSWER_BOUND_S, f"answered after {took:.1f} s"
            print(f"a write during the cut answered 503 after {took:.1f} s")
            # A delete is held the same way: answered 503, it must not take effect later.
            with pytest.raises(botocore.exceptions.ClientError) as refused:
                dc1.delete_object(Bucket=bucket, Key="kept")
            assert status_of(refused.value) == 503, refused.value.response
            for gw in ("dc1", "dc1b"):
                with pytest.raises(botocore.exceptions.ClientError) as absent:
                    two_dc.s3(gw).head_object(Bucket=bucket, Key="unacknowledged")
                assert status_of(absent.value) == 404, "half-visible during the cut"
                assert keys(two_dc.s3(gw), bucket) == ["kept"]
                # Background work does not hang the gateway: it says where it stands.
                assert two_dc.role(gw) in ("leader", "standby")
    finally:
        r = two_dc.cli("tenant", "policy", "demo", "--degraded-writes", "refuse", token=officer)
        assert r.returncode == 0, r.stderr
    logged = log.read_text(errors="replace")[logged_before:]
    assert "did not answer within its deadline" in logged, logged[-3000:]
    print("\n".join(ln for ln in logged.splitlines() if "deadline" in ln or "outcome" in ln)[-2000:])

    # After the heal: the prepared first phase is rolled back, and nothing of the write shows.
    wait_until("the abandoned commit rolled back", 150,
               lambda: two_dc.psql("primary", "SELECT count(*) FROM pg_prepared_xacts").strip() == "0",
               interval=1)
    for gw in ("dc1", "dc1b", "dc2"):
        client = two_dc.s3(gw)
        with pytest.raises(botocore.exceptions.ClientError) as absent:
            client.head_object(Bucket=bucket, Key="unacknowledged")
        assert status_of(absent.value) == 404, f"the unacknowledged write became visible through {gw}"
        assert keys(client, bucket) == ["kept"], f"the unacknowledged delete took effect through {gw}"
        assert client.get_object(Bucket=bucket, Key="kept")["Body"].read() == b"written before the cut"

    def written():
        dc1.put_object(Bucket=bucket, Key="unacknowledged", Body=b"written after the heal")
        return True

    wait_until("a write of the same key after the heal", 90, written, interval=1)
    assert two_dc.s3("dc2").get_object(Bucket=bucket, Key="unacknowledged")["Body"].read() == b"written after the heal"
    wait_until("a holder of the lease on background work after the heal", 60,
               lambda: any(two_dc.role(gw) == "leader" for gw in ("dc1", "dc1b", "dc2")), interval=1)


# ----------------------------------------------------------------------------- drills (last)
def test_the_disconnect_drill_stops_every_gateway_loses_nothing_and_is_recorded(two_dc):
    """`scripts/two-dc drill disconnect DIR`: load through the three gateways, two officers
    disconnect the provider, gw-dc1b runs with the drill fault injector (it ignores the push);
    the drill writes DIR/drill-disconnect.json and has an officer append it to the log."""
    from two_dc_helpers import SCRIPT

    ttl = 10
    r = subprocess.run(
        [str(SCRIPT), "drill", "disconnect", str(two_dc.dir), "--seconds", "8", "--key-cache-ttl", str(ttl)],
        env=clean_env({"OBHUT_BIN": str(obhut_bin()), **two_dc.gateway_env}),
        capture_output=True, text=True, timeout=420, stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, f"the drill failed: {r.stderr.strip()}\n{r.stdout[-3000:]}\n{two_dc.log_tails()}"
    summary = json.loads((two_dc.dir / "drill-disconnect.json").read_text())
    assert summary["drill"] == "disconnect"
    assert summary["requests_before_stop"] > 0 and summary["acknowledged"] > 0, summary
    assert summary["requests_served_after_stop"] == 0, summary
    assert summary["requests_refused_after_stop"] > 0, summary
    assert summary["other_errors_after_stop"] == 0, summary
    assert summary["gateways_acked"] is True, summary
    assert summary["gateways_acked_count"] == summary["gateways_expected_to_ack"] == 2, summary
    assert summary["rogue_ack_missing"] is True, summary
    assert summary["rogue_within_key_cache_ttl"] is True, summary
    assert summary["key_cache_ttl_s"] == ttl, summary
    assert 0 <= summary["rogue_gateway_decrypt_s"] <= ttl + 2, summary
    assert summary["lost"] == 0, summary
    assert summary["passed"] is True, summary
    for figure in ("time_to_full_stop_s", "time_to_resume_s"):
        assert isinstance(summary[figure], (int, float)) and summary[figure] >= 0, (figure, summary)

    # the record is in the log, figure for figure, and the log names the silent gateway
    r = two_dc.cli("log", "show", token=two_dc.token("auditor"))
    assert r.returncode == 0, r.stderr
    drill_lines = [ln for ln in r.stdout.splitlines() if " drill_recorded " in f" {ln} "]
    assert drill_lines and "drill=disconnect" in drill_lines[-1] and "lost=0" in drill_lines[-1], r.stdout[-2000:]
    acks = [ln for ln in r.stdout.splitlines()
            if "gateway_acknowledged" in ln and f"disconnect={summary['disconnect_log_index']} " in ln]
    assert len(acks) == 2, f"one acknowledgement per obedient gateway, logged once: {acks}"
    rogue = summary["rogue_gateway"]
    # ... named with the certificate it follows with and the fault injector it stated
    assert any("gateway_ack_missing" in ln and f"gateway={rogue}@" in ln and " certificate=" in ln
               and "drill_fault=ignore-disconnect-revocations" in ln for ln in r.stdout.splitlines()), \
        r.stdout[-3000:]
    assert all(" certificate=" in ln for ln in acks), acks

    # service is back on every gateway, and the injector is gone from gw-dc1b
    r = two_dc.cli("trustee", "status", token=two_dc.token("auditor"))
    assert r.returncode == 0 and r.stdout.strip() == "unsealed", (r.stdout, r.stderr)
    bucket = unique_name("after-drill")
    two_dc.s3("dc1").create_bucket(Bucket=bucket)
    for gw in ("dc1", "dc1b", "dc2"):
        two_dc.s3(gw).put_object(Bucket=bucket, Key=gw, Body=gw.encode())
        assert two_dc.s3("dc2").get_object(Bucket=bucket, Key=gw)["Body"].read() == gw.encode()
    assert not (two_dc.dir / "dc1" / "gw-dc1b.drill.toml").exists()
