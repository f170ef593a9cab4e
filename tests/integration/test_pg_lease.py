"""Background work on one gateway at a time: two `obhut gateway` processes on one PostgreSQL
catalog, of which only the holder of the catalog's lease runs repair, scrubbing and reclaims
(`/readyz` says `"background": "leader"` or `"standby"`, `/metrics` has
`obhut_background_leader`); when the holder is killed with
SIGKILL, the other takes the lease over, with a higher epoch, within the lease's life plus
one renewal (docs/catalog.md, "Background work and its lease")."""

from __future__ import annotations

import time

import requests

from conftest import bearer
from pg_helpers import PgServer
from split_helpers import Proc, _free_ports, split  # noqa: F401 (fixture)
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


def start_gateway(name, config, url, pw, log, admin_port) -> Proc:
    gw = Proc(f"obhut gateway ({name})",
              ["gateway", "--config", str(config), "--catalog", url, "--catalog-password-file", str(pw)],
              log, env=LEASE_ENV)
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
