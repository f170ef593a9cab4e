"""The trustee disconnects the provider: `obhut trustee disconnect` and
`obhut trustee reconnect`, each carried out by a quorum of two officers.

Against the split deployment (`obhut trustee --config` and `obhut gateway
--config`, see split_helpers.py): one officer is not enough, nor is the same
officer twice; operators, auditors and tenant admins are refused. Once the
quorum is reached, every tenant data operation that starts afterwards answers
503 ServiceUnavailable naming the disconnect (the trustee verifies no request
and releases no key), the gateway drops its cached keys, `/readyz` says
`disconnected`, and the log records the approvals, the disconnect and each
gateway's acknowledgement of the push -- and, as missing, the acknowledgement of
a gateway that keeps asking for revocations but never takes one in. A trustee
restart keeps the disconnect. Reconnecting restores service, with nothing
acknowledged before lost. Drill summaries are appended to the log by officers
only (`obhut log record-drill`) and shown by `obhut log show`.
"""

from __future__ import annotations

import json
import threading
import time

import botocore.exceptions
import requests

from gov_helpers import api
from s3helpers import unique_name
from split_helpers import Split, running_split, split  # noqa: F401 (fixtures)

# The bound this test holds the deployment to: a request that starts after the quorum's
# answer is refused at once (the trustee already refuses it); the push reaches the gateway
# within one long-poll round trip; acknowledgements are logged within the trustee's wait
# for them (DISCONNECT_ACK_WAIT, 10 s).
ACK_LOGGED_WITHIN_S = 15


def cli(s: Split, who: str | None, *args: str):
    return s.run(*args, token=s.token(who) if who else None)


def cli_ok(s: Split, who: str, *args: str) -> str:
    r = cli(s, who, *args)
    assert r.returncode == 0, f"`obhut {' '.join(args)}` as {who} exited {r.returncode}: {r.stderr.strip()!r}"
    return r.stdout


def cli_refused(s: Split, who: str, *args: str, says: str) -> str:
    r = cli(s, who, *args)
    assert r.returncode != 0, f"`obhut {' '.join(args)}` as {who} succeeded: {r.stdout!r}"
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got: {r.stderr!r}"
    assert says in r.stderr.lower(), f"the refusal does not say {says!r}: {r.stderr!r}"
    assert r.stdout == "", r.stdout
    return r.stderr


def entries(s: Split, start: int = 0) -> list[tuple[int, dict]]:
    r = api(s, "GET", f"/v1/log/entries?from={start}", s.token("auditor"))
    assert r.status_code == 200, f"/v1/log/entries: {r.status_code} {r.text[:300]}"
    return [(item["index"], json.loads(item["entry"])) for item in r.json()["entries"]]


def of_type(s: Split, kind: str, start: int = 0) -> list[tuple[int, dict]]:
    return [(i, e) for i, e in entries(s, start) if e.get("type") == kind]


def s3_error(fn, **kwargs) -> tuple[int, str, str]:
    """(HTTP status, S3 code, message) of a request that must fail."""
    try:
        result = fn(**kwargs)
        if isinstance(result, dict) and "Body" in result:
            result["Body"].read()
    except botocore.exceptions.ClientError as e:
        return (
            e.response["ResponseMetadata"]["HTTPStatusCode"],
            e.response["Error"].get("Code", ""),
            e.response["Error"].get("Message", ""),
        )
    raise AssertionError(f"{getattr(fn, '__name__', fn)} {kwargs} was served")


def assert_refused_as_disconnected(fn, what: str, **kwargs) -> None:
    status, code, msg = s3_error(fn, **kwargs)
    if what == "HEAD":
        # a HEAD answer has no body: the status is all there is
        assert status == 503, f"{what}: {status} {code} {msg!r}"
        return
    assert (status, code) == (503, "ServiceUnavailable"), f"{what}: {status} {code} {msg!r}"
    assert "disconnected" in msg, f"{what}: the 503 does not name the disconnect: {msg!r}"


def keys_cached(s: Split) -> int:
    r = api(s, "GET", "/metrics", s.token("operator"))
    assert r.status_code == 200, f"/metrics: {r.status_code} {r.text[:200]}"
    for line in r.text.splitlines():
        if line.startswith("obhut_key_cache_keys "):
            return int(float(line.split()[1]))
    raise AssertionError("no obhut_key_cache_keys gauge in /metrics")


class SilentGateway:
    """A trustee API client with a gateway's certificate that follows the revocation stream
    under the name `silent-test@1` but never takes an event in (it keeps asking after the
    same point): the trustee must log its acknowledgement as missing."""

    NAME = "silent-test@1"

    def __init__(self, s: Split):
        self.s = s
        first = s.trustee_api("GET", "/v1/revocations").json()
        self.instance, self.after = first["instance"], first["last"]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.s.trustee_api(
                    "GET",
                    f"/v1/revocations?after={self.after}&instance={self.instance}&client={self.NAME}",
                )
            except requests.RequestException:
                pass
            self.stop.wait(0.5)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(45)


class Follower(SilentGateway):
    """A trustee API client that follows the revocation stream under `name`, over mutual TLS
    with the certificate of `gateway`, and takes every event in (it asks after the latest
    point each time), optionally stating a drill fault in its long-polls."""

    def __init__(self, s: Split, name: str, gateway: str, fault: str | None = None):
        self.name, self.gateway, self.fault = name, gateway, fault
        super().__init__(s)

    def _run(self) -> None:
        fault = f"&fault={self.fault}" if self.fault else ""
        while not self.stop.is_set():
            try:
                r = self.s.trustee_api(
                    "GET",
                    f"/v1/revocations?after={self.after}&instance={self.instance}&client={self.name}{fault}",
                    gateway=self.gateway,
                )
                if r.status_code == 200:
                    self.after = r.json()["last"]
            except requests.RequestException:
                pass
            self.stop.wait(0.2)


def test_an_acknowledgement_counts_only_under_its_certificate_and_a_drill_fault_voids_it(running_split: Split):
    """Acknowledgements of a disconnect are tied to the client certificate they came with: a
    process holding gateway-1's certificate that acknowledges under the name the silent
    gateway (gateway-2's certificate) uses does not acknowledge for it. A follower that
    states the drill fault injector is logged as missing, with the fault, whatever it asks."""
    s = running_split
    silent = SilentGateway(s)
    forger = Follower(s, SilentGateway.NAME, gateway="gateway-1")
    rogue = Follower(s, "rogue-test@1", gateway="gateway-2", fault="ignore-disconnect-revocations")
    try:
        time.sleep(1)  # each has asked at least once: known to the trustee
        start = max((i for i, _ in entries(s)), default=-1) + 1
        cli_ok(s, "officer1", "trustee", "disconnect")
        out = cli_ok(s, "officer2", "trustee", "disconnect")
        assert out.startswith("disconnected (log entry "), out
        [(disc_index, _)] = of_type(s, "trustee_disconnected", start)
        deadline = time.monotonic() + ACK_LOGGED_WITHIN_S
        while True:
            acks = [e for _, e in of_type(s, "gateway_acknowledged", disc_index) if e["disconnect"] == disc_index]
            missing = [e for _, e in of_type(s, "gateway_ack_missing", disc_index) if e["disconnect"] == disc_index]
            if missing:
                break
            assert time.monotonic() < deadline, "no missing acknowledgement logged:\n" + s.trustee.log_tail()
            time.sleep(0.3)
        acked = sorted((a["gateway"].split("@")[0], a.get("certificate")) for a in acks)
        gw = f"127.0.0.1:{s.s3_port}"
        assert acked == sorted([(gw, "gateway-1"), ("silent-test", "gateway-1")]), acks
        gone = sorted((m["gateway"], m.get("certificate"), m.get("drill_fault")) for m in missing)
        assert gone == [
            ("rogue-test@1", "gateway-2", "ignore-disconnect-revocations"),
            (SilentGateway.NAME, "gateway-2", None),
        ], missing
        shown = cli_ok(s, "auditor", "log", "show")
        line = next(ln for ln in shown.splitlines() if "gateway_ack_missing" in ln and "rogue-test" in ln)
        assert "certificate=gateway-2" in line and "drill_fault=ignore-disconnect-revocations" in line, line
    finally:
        for f in (silent, forger, rogue):
            f.close()


def test_disconnect_needs_a_quorum_stops_every_data_operation_and_survives_a_restart(running_split: Split):
    s = running_split
    s3 = s.s3()
    bucket = unique_name("disc")
    s3.create_bucket(Bucket=bucket)
    written = {f"k{i}": f"acknowledged before the disconnect {i}".encode() for i in range(5)}
    for k, v in written.items():
        s3.put_object(Bucket=bucket, Key=k, Body=v)
    assert s3.get_object(Bucket=bucket, Key="k0")["Body"].read() == written["k0"]
    assert keys_cached(s) >= 1, "the bucket key is cached after a GET"
    start = max((i for i, _ in entries(s)), default=-1) + 1

    # nobody but officers may ask
    for who in ("operator", "auditor", "demo_admin"):
        cli_refused(s, who, "trustee", "disconnect", says="officer")
        cli_refused(s, who, "trustee", "reconnect", says="officer")
    assert of_type(s, "disconnect_approval", start) == []

    silent = SilentGateway(s)
    try:
        # one officer is not enough, nor the same officer twice
        out = cli_ok(s, "officer1", "trustee", "disconnect", "--reason", "test of the disconnect")
        assert "pending: 1 of 2 officers" in out, out
        out = cli_ok(s, "officer1", "trustee", "disconnect")
        assert "pending: 1 of 2 officers" in out, out
        assert s3.get_object(Bucket=bucket, Key="k1")["Body"].read() == written["k1"], "still served"
        assert "disconnect approved by: officer1" in cli_ok(s, "auditor", "trustee", "status")

        out = cli_ok(s, "officer2", "trustee", "disconnect")
        assert out.startswith("disconnected (log entry "), out
        # Every tenant data operation that starts now is refused, on the gateway that took
        # the push and whatever its cache holds.
        assert_refused_as_disconnected(s3.get_object, "GET", Bucket=bucket, Key="k0")
        assert_refused_as_disconnected(s3.put_object, "PUT", Bucket=bucket, Key="new", Body=b"x")
        assert_refused_as_disconnected(s3.head_object, "HEAD", Bucket=bucket, Key="k0")
        assert_refused_as_disconnected(s3.list_objects_v2, "LIST", Bucket=bucket)
        assert_refused_as_disconnected(s3.delete_object, "DELETE", Bucket=bucket, Key="k0")
        assert_refused_as_disconnected(s3.create_bucket, "CreateBucket", Bucket=unique_name("disc2"))
        assert_refused_as_disconnected(s3.list_buckets, "ListBuckets")
        assert_refused_as_disconnected(
            s3.create_multipart_upload, "CreateMultipartUpload", Bucket=bucket, Key="mp"
        )

        deadline = time.monotonic() + 5
        while keys_cached(s) != 0:
            assert time.monotonic() < deadline, "the gateway still holds keys 5 s after the disconnect"
            time.sleep(0.1)
        r = requests.get(s.admin_url + "/readyz", timeout=10)
        assert r.status_code == 503 and r.json()["trustee"] == "disconnected", (r.status_code, r.text)
        status = cli_ok(s, "operator", "trustee", "status")
        assert "disconnected: since" in status and "officer1, officer2" in status, status
        assert 'reason "test of the disconnect"' in status, status

        # the log: two approvals, the disconnect, the gateway's acknowledgement, and the
        # silent one's missing acknowledgement
        approvals = of_type(s, "disconnect_approval", start)
        assert [(e["by"], e["mode"]) for _, e in approvals] == [
            ("officer1", "disconnect"),
            ("officer2", "disconnect"),
        ], approvals
        assert all(e["statement"] and e["signature"] for _, e in approvals)
        [(disc_index, disc)] = of_type(s, "trustee_disconnected", start)
        assert disc["approvers"] == ["officer1", "officer2"], disc
        deadline = time.monotonic() + ACK_LOGGED_WITHIN_S
        while True:
            acks = [e for _, e in of_type(s, "gateway_acknowledged", disc_index) if e["disconnect"] == disc_index]
            missing = [e for _, e in of_type(s, "gateway_ack_missing", disc_index) if e["disconnect"] == disc_index]
            if acks or missing:
                break
            assert time.monotonic() < deadline, "no acknowledgement logged:\n" + s.trustee.log_tail()
            time.sleep(0.3)
        gw = f"127.0.0.1:{s.s3_port}@"
        # On a failure, both processes' view of the revocation stream says why.
        why = f"acks={acks} missing={missing}\n{s.trustee.log_tail()}\n{s.gateway.log_tail()}"
        assert [a["gateway"].startswith(gw) for a in acks] == [True], why
        assert acks[0]["latency_ms"] < 5000, why
        # each named by the certificate it follows with, too
        assert acks[0]["certificate"] == "gateway-1", acks
        assert [m["gateway"] for m in missing] == [SilentGateway.NAME], missing
        assert [m["certificate"] for m in missing] == ["gateway-2"], missing
        assert not [e for _, e in of_type(s, "key_release", disc_index)], "a key was released after the disconnect"
        shown = cli_ok(s, "auditor", "log", "show")
        for kind in ("trustee_disconnected", "gateway_acknowledged", "gateway_ack_missing"):
            assert kind in shown, f"`obhut log show` does not show {kind}"
    finally:
        silent.close()

    # a restart of the trustee keeps the disconnect
    s.trustee.stop()
    s.start_trustee()
    deadline = time.monotonic() + 15
    while True:
        status, code, msg = s3_error(s3.get_object, Bucket=bucket, Key="k0")
        if status == 503 and "disconnected" in msg:
            break
        assert status == 503, (status, code, msg)
        assert time.monotonic() < deadline, f"after the restart: {status} {code} {msg!r}"
        time.sleep(0.2)
    assert "disconnected: since" in cli_ok(s, "auditor", "trustee", "status")

    # reconnecting takes a quorum too
    cli_refused(s, "operator", "trustee", "reconnect", says="officer")
    out = cli_ok(s, "officer2", "trustee", "reconnect")
    assert "pending: 1 of 2 officers" in out, out
    assert_refused_as_disconnected(s3.get_object, "GET after one reconnect approval", Bucket=bucket, Key="k0")
    out = cli_ok(s, "officer1", "trustee", "reconnect")
    assert out.startswith("connected (log entry "), out
    cli_refused(s, "officer1", "trustee", "reconnect", says="not disconnected")

    # service resumes; nothing acknowledged before the disconnect is lost
    for k, v in written.items():
        assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == v, k
    s3.put_object(Bucket=bucket, Key="after", Body=b"after the reconnect")
    assert s3.get_object(Bucket=bucket, Key="after")["Body"].read() == b"after the reconnect"
    r = requests.get(s.admin_url + "/readyz", timeout=10)
    assert r.status_code == 200, r.text
    [(_, rec)] = of_type(s, "trustee_reconnected", start)
    assert rec["approvers"] == ["officer2", "officer1"], rec
    # each gateway's acknowledgement is logged once, whatever came after the disconnect
    acks = [e for _, e in of_type(s, "gateway_acknowledged", disc_index) if e["disconnect"] == disc_index]
    assert len(acks) == 1, acks
    assert cli_ok(s, "auditor", "trustee", "status").strip() == "unsealed"


def test_drill_records_are_appended_by_officers_and_shown(running_split: Split, tmp_path):
    s = running_split
    summary = {"time_to_full_stop_s": 0.42, "requests_served_after_stop": 0, "gateways_acked": True, "lost": 0}
    path = tmp_path / "drill-disconnect.json"
    path.write_text(json.dumps(summary))
    for who in ("operator", "auditor", "demo_admin"):
        cli_refused(s, who, "log", "record-drill", "--drill", "disconnect", str(path), says="officer")
    out = cli_ok(s, "officer1", "log", "record-drill", "--drill", "disconnect", str(path))
    assert out.startswith("drill disconnect recorded: log entry "), out
    index = int(out.split()[-1])
    [(i, e)] = of_type(s, "drill_recorded")
    assert i == index and e["drill"] == "disconnect" and e["by"] == "officer1", e
    assert e["summary"] == summary, e
    shown = cli_ok(s, "auditor", "log", "show")
    line = next(ln for ln in shown.splitlines() if "drill_recorded" in ln)
    assert "drill=disconnect" in line and "gateways_acked=true" in line and "lost=0" in line, line

    # a summary is a flat record of figures: nothing nested, no name outside the format
    nested = tmp_path / "nested.json"
    nested.write_text(json.dumps({"lost": {"objects": 0}}))
    cli_refused(s, "officer1", "log", "record-drill", "--drill", "disconnect", str(nested), says="figure")
    cli_refused(s, "officer1", "log", "record-drill", "--drill", "Disconnect!", str(path), says="name")
    not_object = tmp_path / "list.json"
    not_object.write_text("[1, 2]")
    cli_refused(s, "officer1", "log", "record-drill", "--drill", "disconnect", str(not_object), says="json object")
    assert len(of_type(s, "drill_recorded")) == 1
