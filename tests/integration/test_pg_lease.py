"""Background work on one gateway at a time: two `obhut gateway` processes on one PostgreSQL
catalog, of which only the holder of the catalog's lease runs repair, scrubbing and reclaims
(`/readyz` says `"background": "leader"` or `"standby"`, `/metrics` has
`obhut_background_leader`); when the holder is killed with
SIGKILL, the other takes the lease over, with a higher epoch, within the lease's life plus
one renewal (docs/catalog.md, "Background work and its lease").

Orphan collection on the shared catalog: a gateway killed with SIGKILL after its write's
replicas were committed on the sites but before the catalog commit leaves blobs that no record
names; the lease holder's collector removes them once they are older than the grace period,
while a concurrent upload through a third gateway, held at the same point for part of that
time, is not harmed and commits (docs/catalog.md, "Orphan collection")."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import botocore.exceptions
import requests

from conftest import bearer
from pg_helpers import PgServer
from split_helpers import Proc, _free_ports, split  # noqa: F401 (fixture)
from s3helpers import unique_name
from test_pg_catalog import password_file, run_obhut

# Short for the test; the default is 15 s renewed every 5 s.
TTL_MS = 3000
RENEW_MS = 1000
LEASE_ENV = {"OBHUT_LEASE_TTL_MS": str(TTL_MS), "OBHUT_LEASE_RENEW_MS": str(RENEW_MS)}


def role(admin_port: int) -> str | None:
    r = requests.get(f"http://127.0.0.1:{admin_port}/readyz", timeout=5)
    body = r.json()
    assert "demo" not in r.text, r.text
    return body.get("background")


def leader_gauge(split, admin_port: int) -> str:
    r = requests.get(f"http://127.0.0.1:{admin_port}/metrics",
                     headers={"Authorization": f"Bearer {bearer(split.token('operator'))}"}, timeout=5)
    assert r.status_code == 200, r.text[:300]
    return [ln for ln in r.text.splitlines() if ln.startswith("obhut_background_leader ")][0]


def lease_row(pg: PgServer, url: str) -> tuple[str, int]:
    out = pg.psql(url.rsplit("/", 1)[1], "SELECT holder, epoch FROM leases WHERE name = 'background'")
    holder, epoch = out.strip().split("|")
    return holder, int(epoch)


def start_gateway(name, config, url, pw, log, admin_port, env=None) -> Proc:
    gw = Proc(f"obhut gateway ({name})",
              ["gateway", "--config", str(config), "--catalog", url, "--catalog-password-file", str(pw)],
              log, env={**LEASE_ENV, **(env or {})})
    gw.start()

    def ready():
        resp = requests.get(f"http://127.0.0.1:{admin_port}/readyz", timeout=2)
        return resp.status_code == 200 and "background" in resp.json(), f"readyz {resp.status_code} {resp.text[:200]}"

    gw.wait_ready(ready, f"gateway {name}'s readiness")
    return gw


def test_one_gateway_runs_the_background_work_and_another_takes_over_after_kill_9(split, tmp_path):
    pg = PgServer().start()
    gateways: list[Proc] = []
    try:
        url = pg.new_database()
        pw = password_file(tmp_path)
        r = run_obhut("catalog", "migrate", "--from", str(split.data_dir), "--to", url,
                      "--catalog-password-file", str(pw))
        assert r.returncode == 0, r.stderr
        split.start_trustee()
        base = split.gateway_config().read_text()
        ports = {}
        configs = {}
        for name, n in (("a", 1), ("b", 2)):
            s3_port, admin_port = _free_ports(2)
            ports[name] = admin_port
            configs[name] = tmp_path / f"gateway-{name}.toml"
            configs[name].write_text(
                base.replace(f"127.0.0.1:{split.s3_port}", f"127.0.0.1:{s3_port}")
                .replace(f"127.0.0.1:{split.admin_port}", f"127.0.0.1:{admin_port}")
                .replace("gateway-1.", f"gateway-{n}.")
            )
        a = start_gateway("a", configs["a"], url, pw, tmp_path / "gateway-a.log", ports["a"])
        gateways.append(a)
        assert role(ports["a"]) == "leader", a.log_tail()
        b = start_gateway("b", configs["b"], url, pw, tmp_path / "gateway-b.log", ports["b"])
        gateways.append(b)
        holder, epoch = lease_row(pg, url)

        # Over several renewals, a leads and b stands by; never both.
        deadline = time.monotonic() + 3 * RENEW_MS / 1000
        while time.monotonic() < deadline:
            assert (role(ports["a"]), role(ports["b"])) == ("leader", "standby")
            time.sleep(0.2)
        assert lease_row(pg, url) == (holder, epoch), "renewals keep the holder and the epoch"
        assert leader_gauge(split, ports["a"]) == "obhut_background_leader 1"
        assert leader_gauge(split, ports["b"]) == "obhut_background_leader 0"
        health = requests.get(f"http://127.0.0.1:{ports['b']}/v1/health", timeout=5).json()
        assert "background-lease" in {w["name"] for w in health["workers"]}, health

        # The leader dies without a word: the standby takes over within TTL + one renewal.
        a.kill9()
        killed = time.monotonic()
        bound = (TTL_MS + RENEW_MS) / 1000
        while role(ports["b"]) != "leader":
            assert time.monotonic() - killed < bound + 2, (
                f"b did not take the lease over within {bound} s of the leader's death\n{b.log_tail()}"
            )
            time.sleep(0.1)
        took = time.monotonic() - killed
        assert took <= bound + 1, f"took over after {took:.1f} s"
        new_holder, new_epoch = lease_row(pg, url)
        assert new_holder != holder and new_epoch > epoch, (holder, epoch, new_holder, new_epoch)
        assert "holds the lease on background work" in b.log_text(), b.log_tail()

        # The dead gateway, started again, stands by while b holds the lease.
        a2 = start_gateway("a again", configs["a"], url, pw, tmp_path / "gateway-a.log", ports["a"])
        gateways.append(a2)
        time.sleep(2 * RENEW_MS / 1000)
        assert (role(ports["a"]), role(ports["b"])) == ("standby", "leader")

        # b stops cleanly and gives the lease up: a takes it at its next renewal.
        assert b.stop() == 0, b.log_tail()
        stopped = time.monotonic()
        # Given up, not left to lapse: expired at once, unless a took it already.
        out = pg.psql(url.rsplit("/", 1)[1], "SELECT holder, expires_ms FROM leases WHERE name = 'background'")
        holder_now, expires = out.strip().split("|")
        assert holder_now != new_holder or int(expires) == 0, out
        while role(ports["a"]) != "leader":
            assert time.monotonic() - stopped < bound + 2, a2.log_tail()
            time.sleep(0.1)
        assert lease_row(pg, url)[1] > new_epoch
    finally:
        for g in gateways:
            if g.running():
                g.stop()
        pg.stop()


# Short for the test; the default is a day's grace, collected every hour (below 10 minutes only
# with the test-only setting).
GRACE_MS = 6000
ORPHAN_ENV = {"OBHUT_ORPHAN_GRACE_MS": str(GRACE_MS), "OBHUT_ORPHAN_EVERY_MS": "500",
              "OBHUT_TEST_SHORT_ORPHAN_GRACE": "1"}


def blobs_on_sites(data_dir: Path) -> set[str]:
    """Every committed blob of the local sites, as site/blob."""
    return {f"{p.parts[-4]}/{p.name}" for p in data_dir.glob("sites/*/blobs/*/*")}


class BucketLock:
    """`SELECT … FOR UPDATE` on a bucket's row in an open transaction: a write into the bucket
    has its replicas committed on the sites and then waits for this lock in its catalog
    commit, until `release`."""

    def __init__(self, pg: PgServer, db: str, bucket: str):
        self.proc = subprocess.Popen(
            [str(pg.bin / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", str(pg.base), "-p", str(pg.port), "-U", "postgres", "-d", db],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.proc.stdin.write(f"BEGIN;\nSELECT 'locked' FROM buckets WHERE name = '{bucket}' FOR UPDATE;\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().strip()
        assert line == "locked", f"psql: {line!r} {self.proc.stderr.read() if self.proc.poll() is not None else ''}"

    def release(self) -> None:
        if self.proc.poll() is None:
            self.proc.communicate("COMMIT;\n", timeout=30)


def test_a_gateway_killed_between_replicas_and_commit_leaves_orphans_the_leader_collects(split, tmp_path):
    pg = PgServer().start()
    gateways: list[Proc] = []
    lock: BucketLock | None = None
    try:
        url = pg.new_database()
        db = url.rsplit("/", 1)[1]
        pw = password_file(tmp_path)
        r = run_obhut("catalog", "migrate", "--from", str(split.data_dir), "--to", url,
                      "--catalog-password-file", str(pw))
        assert r.returncode == 0, r.stderr
        split.start_trustee()
        base = split.gateway_config().read_text()
        ports: dict[str, tuple[int, int]] = {}
        procs: dict[str, Proc] = {}
        for name, n in (("a", 1), ("b", 2), ("c", 1)):
            s3_port, admin_port = _free_ports(2)
            ports[name] = (s3_port, admin_port)
            config = tmp_path / f"gateway-{name}.toml"
            config.write_text(
                base.replace(f"127.0.0.1:{split.s3_port}", f"127.0.0.1:{s3_port}")
                .replace(f"127.0.0.1:{split.admin_port}", f"127.0.0.1:{admin_port}")
                .replace("gateway-1.", f"gateway-{n}.")
            )
            procs[name] = start_gateway(name, config, url, pw, tmp_path / f"gateway-{name}.log", admin_port,
                                        env=ORPHAN_ENV)
            gateways.append(procs[name])
        assert role(ports["a"][1]) == "leader", procs["a"].log_tail()
        assert (role(ports["b"][1]), role(ports["c"][1])) == ("standby", "standby")

        def s3(name: str):
            from conftest import s3_client
            return s3_client(f"http://127.0.0.1:{ports[name][0]}", split.demo["AWS_ACCESS_KEY_ID"],
                             split.demo["AWS_SECRET_ACCESS_KEY"], connect_timeout=5, read_timeout=60)

        bucket = unique_name("orphans")
        s3("a").create_bucket(Bucket=bucket)
        s3("a").put_object(Bucket=bucket, Key="kept", Body=b"committed before")
        before = blobs_on_sites(split.data_dir)
        assert len(before) == 2, f"one object on two sites: {before}"

        # Both writes get their replicas committed on the sites, then wait in the catalog commit.
        lock = BucketLock(pg, db, bucket)
        results: dict[str, object] = {}

        def put(name: str, key: str, body: bytes) -> None:
            try:
                results[key] = s3(name).put_object(Bucket=bucket, Key=key, Body=body)["ETag"]
            except Exception as e:  # noqa: BLE001 (the test looks at it)
                results[key] = e

        live_body = b"the live upload through c " * 4000
        threads = [threading.Thread(target=put, args=("b", "lost", b"b dies before committing this")),
                   threading.Thread(target=put, args=("c", "live", live_body))]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(blobs_on_sites(split.data_dir) - before) < 4:
            assert time.monotonic() < deadline, (
                f"the two writes did not reach the sites: {blobs_on_sites(split.data_dir) - before}\n"
                f"{procs['b'].log_tail()}\n{procs['c'].log_tail()}")
            time.sleep(0.05)
        written = blobs_on_sites(split.data_dir) - before
        procs["b"].kill9()
        killed = time.monotonic()

        # Within the grace period the collector (several passes, every 0.5 s) removes none of
        # them: they may be writes about to commit, as the one through c is.
        time.sleep(GRACE_MS / 1000 / 2)
        assert blobs_on_sites(split.data_dir) == before | written, "a blob younger than the grace went"
        lock.release()
        threads[1].join(timeout=60)
        assert isinstance(results.get("live"), str), f"the live upload failed: {results.get('live')!r}"
        threads[0].join(timeout=60)
        assert isinstance(results.get("lost"), Exception), "the killed gateway answered"

        # After the grace, the killed write's replicas go (its record never came), and only they.
        deadline = killed + GRACE_MS / 1000 + 20
        while True:
            left = blobs_on_sites(split.data_dir)
            if len(left) == 4:
                break
            assert time.monotonic() < deadline, (
                f"orphans not collected within the grace plus 20 s: {sorted(left - before)}\n"
                f"{procs['a'].log_tail()}")
            time.sleep(0.25)
        assert before <= left, "a committed object's replica was collected"
        assert "orphan blobs removed" in procs["a"].log_text(), procs["a"].log_tail()
        for name in ("a", "c"):
            assert s3(name).get_object(Bucket=bucket, Key="live")["Body"].read() == live_body
            assert s3(name).get_object(Bucket=bucket, Key="kept")["Body"].read() == b"committed before"
            try:
                s3(name).head_object(Bucket=bucket, Key="lost")
                raise AssertionError("the killed gateway's write became visible")
            except botocore.exceptions.ClientError as e:
                assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        # Nothing else was in the way: the standby c collected nothing.
        assert "orphan blobs removed" not in procs["c"].log_text()
    finally:
        if lock is not None:
            lock.release()
        for g in gateways:
            if g.running():
                g.stop()
        pg.stop()


def test_a_grace_under_ten_minutes_is_refused_unless_a_test_says_so(tmp_path):
    """The grace protects writes in flight: production refuses less than 10 minutes, naming
    the test-only setting, which allows down to 1 s and no further (the other tests of this
    module start gateways with 6 s under it)."""
    from conftest import free_port

    args = ["serve", "--data-dir", str(tmp_path / "data"),
            "--s3-addr", f"127.0.0.1:{free_port()}", "--admin-addr", f"127.0.0.1:{free_port()}"]
    r = run_obhut(*args, env={"OBHUT_ORPHAN_GRACE_MS": "599999"})
    assert r.returncode != 0, r.stdout
    assert "at least 600 s" in r.stderr and "OBHUT_TEST_SHORT_ORPHAN_GRACE" in r.stderr, r.stderr
    r = run_obhut(*args, env={"OBHUT_ORPHAN_GRACE_MS": "999", "OBHUT_TEST_SHORT_ORPHAN_GRACE": "1"})
    assert r.returncode != 0 and "at least 1 s" in r.stderr, r.stderr
