"""The catalog's PostgreSQL fails over by itself (`scripts/two-dc`: Patroni, etcd in dc1, dc2
and the witness, HAProxy in each datacenter): the primary in dc1 is killed with SIGKILL, its
Patroni first, under a bounded write load through the gateways of both datacenters; Patroni
promotes the synchronous standby in dc2, the old primary comes back as its synchronous
standby (rewound), the gateways reach the new primary by themselves and take writes again,
and every acknowledged write reads back. A switchover then puts the primary back in dc1, so
that the deployment this test shares with test_two_dc.py (conftest.py) is as it was. Patroni's
REST API and etcd refuse whoever lacks their credentials."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest
import requests

from s3helpers import unique_name
from two_dc_helpers import wait_until

WRITERS = {"dc1": "gw-dc1a", "dc1b": "gw-dc1b", "dc2": "gw-dc2"}


def sigkill(pid: int, must_name: Path) -> None:
    """SIGKILL to a process of the deployment (its command line names DIR), reaped or a zombie."""
    assert str(must_name) in Path(f"/proc/{pid}/cmdline").read_text(), f"pid {pid} is not the deployment's"
    os.kill(pid, signal.SIGKILL)
    for _ in range(200):
        if not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text():
            return
        time.sleep(0.05)
    pytest.fail(f"pid {pid} still runs after SIGKILL", pytrace=False)


class Load:
    """One writer per gateway, bounded: small objects under fresh keys until stopped or
    MAX_PER_WRITER tries; what each gateway acknowledged, when, and everything tried."""

    MAX_PER_WRITER = 2000

    def __init__(self, two_dc, bucket: str):
        self.bucket = bucket
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.acked: dict[str, bytes] = {}
        self.acked_at: dict[str, list[float]] = {gw: [] for gw in WRITERS}
        self.tried: dict[str, bytes] = {}
        self.failures: dict[str, int] = {gw: 0 for gw in WRITERS}
        self.clients = {gw: two_dc.s3(gw, connect_timeout=3, read_timeout=60) for gw in WRITERS}
        self.threads = [threading.Thread(target=self.writer, args=(gw,), daemon=True) for gw in WRITERS]

    def writer(self, gw: str) -> None:
        for j in range(self.MAX_PER_WRITER):
            if self.stop.is_set():
                return
            key = f"{gw}-{j:05}"
            body = os.urandom(20_000) + key.encode()
            with self.lock:
                self.tried[key] = body
            try:
                self.clients[gw].put_object(Bucket=self.bucket, Key=key, Body=body)
            except Exception:  # noqa: BLE001 (refused or cut off while the catalog has no primary)
                with self.lock:
                    self.failures[gw] += 1
                time.sleep(0.2)
                continue
            with self.lock:
                self.acked[key] = body
                self.acked_at[gw].append(time.monotonic())

    def acked_since(self, gw: str, since: float) -> int:
        with self.lock:
            return sum(1 for t in self.acked_at[gw] if t > since)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in self.threads), "a writer still runs"


def test_patroni_and_etcd_refuse_whoever_lacks_their_credentials(two_dc):
    """Patroni's REST API changes nothing without its password (a wrong one neither), and does
    with it; etcd, which holds the leader lock, talks only to clients with a certificate of the
    deployment's CA."""
    cfg = (two_dc.dir / "witness" / "patronictl.yml").read_text()
    password = re.search(r"password: '([0-9a-f]+)'", cfg).group(1)
    api = two_dc.env["PATRONI_DC1_URL"]
    for auth in (None, ("patroni", "wrong-" + password)):
        r = requests.post(f"{api}/switchover", json={"leader": "dc1", "candidate": "dc2"}, auth=auth,
                          verify=two_dc.ca, timeout=10)
        assert r.status_code == 401, (auth is not None, r.status_code, r.text)
        r = requests.post(f"{api}/reload", auth=auth, verify=two_dc.ca, timeout=10)
        assert r.status_code == 401, (auth is not None, r.status_code, r.text)
    assert two_dc.patroni_says("dc1", "primary") and two_dc.patroni_says("dc2", "sync")
    r = requests.post(f"{api}/reload", auth=("patroni", password), verify=two_dc.ca, timeout=10)
    assert r.status_code in (200, 202), (r.status_code, r.text)

    etcd = two_dc.env["PATRONI_DC1_URL"].replace(":8008", ":2379") + "/version"
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(etcd, verify=two_dc.ca, timeout=10)
    tls = two_dc.dir / "tls"
    r = requests.get(etcd, verify=two_dc.ca, cert=(str(tls / "etcd-client.crt"), str(tls / "etcd-client.key")),
                     timeout=10)
    assert r.status_code == 200 and "etcdserver" in r.json(), r.text


def test_the_primary_killed_fails_over_to_dc2_loses_nothing_acknowledged_and_rejoins_as_sync_standby(two_dc):
    status = two_dc.status()
    members = two_dc.patroni(status)
    assert members.get("dc1", {}).get("role") == "Leader", status
    assert members.get("dc2", {}).get("role") == "Sync Standby", status
    assert two_dc.patroni_says("dc1", "primary") and not two_dc.patroni_says("dc2", "primary")
    timeline = int(members["dc1"]["tl"])

    bucket = unique_name("twodc-failover")
    two_dc.s3("dc1").create_bucket(Bucket=bucket)
    with Load(two_dc, bucket) as load:
        wait_until("writes acknowledged through every gateway", 120,
                   lambda: all(load.acked_since(gw, 0) >= 3 for gw in WRITERS), interval=0.2)

        # The primary's host fails: Patroni first (else it would start PostgreSQL again), then
        # the postmaster, both without a chance to say goodbye.
        run = two_dc.dir / "run"
        sigkill(int((run / "patroni-dc1.pid").read_text().strip()), two_dc.dir)
        postmaster = int((two_dc.dir / "dc1" / "pg" / "data" / "postmaster.pid").read_text().split()[0])
        sigkill(postmaster, two_dc.dir)
        killed_at = time.monotonic()

        # Patroni promotes the synchronous standby once the dead leader's lock runs out.
        wait_until("dc2's PostgreSQL promoted by Patroni", 120, lambda: two_dc.patroni_says("dc2", "primary"))
        # Patroni reports a leader's timeline from its checkpoint, which follows the promotion
        # a moment later: the new timeline is waited for (bounded).
        def leader_on_a_new_timeline():
            members = two_dc.patroni(two_dc.status())
            dc2 = members.get("dc2", {})
            return dc2.get("role") == "Leader" and str(dc2.get("tl") or "0").isdigit() \
                and int(dc2.get("tl") or 0) > timeline and members

        members = wait_until("dc2 the leader on a new timeline", 60, leader_on_a_new_timeline, interval=1)
        assert "dc1" not in members or members["dc1"]["role"] != "Leader", members
        assert not two_dc.patroni_says("dc1", "primary")

        # The old primary comes back as a standby of the new one (pg_rewind where it has to),
        # synchronous again: strictly synchronous, the new primary commits nothing before.
        two_dc.restart("patroni-dc1")

        def dc1_sync_standby():
            s = two_dc.status()
            rows, members = two_dc.replication(s), two_dc.patroni(s)
            return (rows.get("dc1", {}).get("sync_state") == "sync" and rows["dc1"].get("state") == "streaming"
                    and members.get("dc1", {}).get("role") == "Sync Standby"
                    and members.get("dc2", {}).get("role") == "Leader") and s

        status = wait_until("dc1 streaming as dc2's synchronous standby", 180, dc1_sync_standby, interval=1)
        assert "replication (pg_stat_replication on the primary in dc2)" in status, status

        # Every gateway, in either datacenter, reaches the new primary by itself (through its
        # datacenter's HAProxy) and takes writes again.
        rejoined = time.monotonic()
        wait_until("writes acknowledged again through every gateway", 180,
                   lambda: all(load.acked_since(gw, rejoined) >= 3 for gw in WRITERS), interval=0.5)
        with load.lock:
            print(f"failover: acknowledged {len(load.acked)}, failed {load.failures}; "
                  f"{rejoined - killed_at:.1f} s from the kill to a synchronous pair again")

    with load.lock:
        acked, tried = dict(load.acked), dict(load.tried)
    assert sum(load.failures.values()) > 0, "no write was refused while the catalog had no primary"

    # Every acknowledged write reads back whole through both datacenters; a write that was
    # not acknowledged is absent or whole, never anything else.
    for gw in ("dc1", "dc2"):
        client = two_dc.s3(gw)
        for key, body in acked.items():
            assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == body, (gw, key)
        listed = set()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            listed.update(o["Key"] for o in page.get("Contents", []))
        assert set(acked) <= listed <= set(tried), gw
        for key in listed - set(acked):
            assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == tried[key], (gw, key)

    # Back as it was for the tests that share the deployment: the primary in dc1, dc2 its
    # synchronous standby, and every gateway writing.
    two_dc.switchover("dc1")
    status = two_dc.status()
    members, rows = two_dc.patroni(status), two_dc.replication(status)
    assert members.get("dc1", {}).get("role") == "Leader" and members.get("dc2", {}).get("role") == "Sync Standby", \
        status
    assert (rows.get("dc2", {}).get("sync_state"), rows.get("dc2", {}).get("state")) == ("sync", "streaming"), status
    assert "pg-dc1       running" in status and "patroni-dc1  running" in status, status

    def written(gw: str):
        two_dc.s3(gw).put_object(Bucket=bucket, Key=f"after-switchover-{gw}", Body=gw.encode())
        return True

    for gw in WRITERS:
        wait_until(f"a write through {gw} after the switchover back", 120, lambda gw=gw: written(gw), interval=1)
        assert two_dc.s3("dc2").get_object(Bucket=bucket, Key=f"after-switchover-{gw}")["Body"].read() == gw.encode()
