"""Object lock seals as the provider could ask for them: whoever holds a gateway's client
certificate can call the trustee's `/v1/lock/seal` directly. A version's first lock record is
sealed only for a write the tenant signed, of that version, with the lock it signed; a
retention beyond the trustee's longest is refused; no sealed lock is ever abandoned (not even
with the ticket that sealed it), so a write whose commit failed leaves its lock counted.
(docs/governance.md, "Object lock and crypto-shred".)"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import threading
import zlib
from urllib.parse import urlsplit

from gov_helpers import entries_of, log_size
from s3helpers import RawS3, unique_name, xml_error
from split_helpers import running_split, split  # noqa: F401 (fixtures)

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def signed_parts(endpoint: str, access: str, secret: str, region: str, method: str, bucket: str, key: str,
                 headers: dict[str, str] | None = None, query: list[tuple[str, str]] | None = None,
                 payload: str = EMPTY_SHA256) -> dict:
    """A request signed by botocore, in the parts a gateway sends the trustee to verify
    (`payload`: its x-amz-content-sha256, the SHA-256 of its body or UNSIGNED-PAYLOAD)."""
    from urllib.parse import urlencode

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    qs = f"?{urlencode(query)}" if query else ""
    path = f"/{bucket}/{key}" if key else f"/{bucket}"
    req = AWSRequest(method=method, url=f"{endpoint}{path}{qs}",
                     headers={"x-amz-content-sha256": payload, **(headers or {})})
    SigV4Auth(Credentials(access, secret), "s3", region).add_auth(req)
    auth = req.headers["Authorization"]
    fields = dict(part.strip().split("=", 1) for part in auth.split(" ", 1)[1].split(","))
    _, scope_date, scope_region, service, _ = fields["Credential"].split("/")
    signed = []
    for name in fields["SignedHeaders"].split(";"):
        value = urlsplit(endpoint).netloc if name == "host" else req.headers[name]
        signed.append([name, value])
    return {"access_key_id": access, "amz_date": req.headers["X-Amz-Date"], "scope_date": scope_date,
            "region": scope_region, "service": service, "method": method, "path": path,
            "query": [list(q) for q in query or []], "headers": signed, "payload": payload, "presigned_expires": None,
            "signature": fields["Signature"]}


def iso(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def ms(when: dt.datetime) -> int:
    return int(when.timestamp() * 1000)


def ticket_of(split, method: str, bucket: str, key: str, headers: dict[str, str] | None = None,
              query: list[tuple[str, str]] | None = None, body: bytes = b"",
              payload: str | None = None) -> dict:
    """The trustee's ticket for a request the tenant signed, as a gateway obtains it (its body's
    SHA-256 signed, unless `payload` says otherwise)."""
    parts = signed_parts(split.s3_url, split.demo["AWS_ACCESS_KEY_ID"], split.demo["AWS_SECRET_ACCESS_KEY"],
                         "de-1", method, bucket, key, headers, query,
                         payload if payload is not None else hashlib.sha256(body).hexdigest())
    r = split.trustee_api("POST", "/v1/auth/verify", json=parts)
    assert r.status_code == 200, r.text[:300]
    return r.json()["ticket"]


def seal(split, bucket: str, key: str, version: str, until: dt.datetime, ticket: dict | None):
    body = {
        "target": {"tenant": "demo", "bucket": bucket, "key": key, "version_id": version},
        "state": {"retention": ["COMPLIANCE", ms(until)], "legal_hold": False},
        "change": "written",
    }
    if ticket is not None:
        body["request"] = ticket
    return split.trustee_api("POST", "/v1/lock/seal", json=body)


S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def legal_hold_xml(status: str) -> bytes:
    """A PutObjectLegalHold body as boto3 sends it."""
    return f'<LegalHold xmlns="{S3_NS}"><Status>{status}</Status></LegalHold>'.encode()


def retention_xml(mode: str, until: dt.datetime) -> bytes:
    """A PutObjectRetention body as boto3 sends it."""
    return (f'<Retention xmlns="{S3_NS}"><Mode>{mode}</Mode>'
            f'<RetainUntilDate>{iso(until)}</RetainUntilDate></Retention>').encode()


def raw_of(split) -> RawS3:
    return RawS3(split.s3_url, split.demo["AWS_ACCESS_KEY_ID"], split.demo["AWS_SECRET_ACCESS_KEY"])


def listed(split, missing: int = 0) -> str:
    """The trustee's list of locked versions of `demo`, as a verified residency report counts it
    (failing if `missing` of them are not in the catalog)."""
    r = split.run("residency", "report", "--tenant", "demo", "--verify", token=split.token("demo_admin"))
    assert (r.returncode == 0) == (missing == 0), (r.stdout, r.stderr)
    if missing:
        assert f"{missing} locked version(s) are missing from the catalog" in r.stderr, r.stderr
    line = next((ln for ln in r.stdout.splitlines() if "locked versions (the trustee's list)" in ln), None)
    assert line, r.stdout
    return line


def test_the_provider_cannot_seal_a_compliance_lock_on_a_version_the_tenant_did_not_write(running_split):
    split = running_split
    s3 = split.s3()
    b = unique_name("olattack")
    s3.create_bucket(Bucket=b, ObjectLockEnabledForBucket=True)
    until = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3650)
    # Both ways: the tenant's own write with a COMPLIANCE lock is sealed and listed.
    s3.put_object(Bucket=b, Key="genuine", Body=b"x", ObjectLockMode="COMPLIANCE",
                  ObjectLockRetainUntilDate=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1))
    assert "1 checked, 0 missing" in listed(split)
    made_up = "0" * 32

    # No ticket: a made-up version.
    r = seal(split, b, "k", made_up, until, None)
    assert r.status_code == 403, r.text[:300]
    # A genuine ticket of the tenant's, but for reading the name, not writing a version of it.
    r = seal(split, b, "k", made_up, until, ticket_of(split, "GET", b, "k"))
    assert r.status_code == 403, r.text[:300]
    # A genuine write the tenant signed without lock headers gets no legal hold.
    plain = ticket_of(split, "PUT", b, "k")
    held = {"target": {"tenant": "demo", "bucket": b, "key": "k", "version_id": made_up},
            "state": {"legal_hold": True}, "change": "written", "request": plain}
    r = split.trustee_api("POST", "/v1/lock/seal", json=held)
    assert r.status_code == 403, r.text[:300]
    # A genuine write with lock headers: not a later date than it signed, not another name.
    soon = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(hours=1)
    lock_headers = {"x-amz-object-lock-mode": "COMPLIANCE", "x-amz-object-lock-retain-until-date": iso(soon)}
    signed = ticket_of(split, "PUT", b, "k", lock_headers)
    r = seal(split, b, "k", made_up, until, signed)
    assert r.status_code == 403, r.text[:300]
    r = seal(split, b, "other", made_up, soon, signed)
    assert r.status_code == 403, r.text[:300]
    # What it signed seals one version (as the gateway's write would), and no other with it.
    r = seal(split, b, "k", made_up, soon, signed)
    assert r.status_code == 200, r.text[:300]
    r = seal(split, b, "k", "1" * 32, soon, signed)
    assert r.status_code == 403, r.text[:300]
    assert "another version" in r.json()["message"], r.text
    # A ticket with lock headers added to it is not the trustee's.
    forged = dict(plain, lock=f"COMPLIANCE\n{iso(until)}\n")
    r = seal(split, b, "k", "2" * 32, until, forged)
    assert r.status_code == 403, r.text[:300]
    # Listed: the genuine version, and the one sealed for the signed write, whose version the
    # provider then did not commit (reported as missing: a write the tenant made was dropped).
    # Nothing the provider made up is listed.
    assert "2 checked, 1 missing" in listed(split, missing=1)


def test_a_retention_the_tenant_signed_beyond_the_longest_is_refused_by_the_trustee(running_split):
    split = running_split
    s3 = split.s3()
    b = unique_name("olcap")
    s3.create_bucket(Bucket=b, ObjectLockEnabledForBucket=True)
    far = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(days=36525 + 2)
    ticket = ticket_of(split, "PUT", b, "k", {"x-amz-object-lock-mode": "COMPLIANCE",
                                             "x-amz-object-lock-retain-until-date": iso(far)})
    r = seal(split, b, "k", "3" * 32, far, ticket)
    assert r.status_code == 400, r.text[:300]
    assert "beyond the longest retention" in r.json()["message"], r.text
    # Through S3 the same write is InvalidArgument and leaves no version.
    raw = raw_of(split)
    body = b"x"
    resp = raw.request("PUT", b, "k", body=body, headers={
        "x-amz-object-lock-mode": "COMPLIANCE", "x-amz-object-lock-retain-until-date": iso(far),
        "content-md5": base64.b64encode(hashlib.md5(body).digest()).decode()})
    assert resp.status_code == 400, resp.text
    assert xml_error(resp)[0] == "InvalidArgument", resp.text
    assert s3.list_object_versions(Bucket=b).get("Versions", []) == []


class GatedBody:
    """A request body that stops once `hold_at` bytes were taken, until `go` is set: bigger
    than any socket buffer between here and the gateway, so that reaching it means the gateway
    is storing the body (its conditional check and its lock seal are behind it)."""

    def __init__(self, data: bytes, hold_at: int, reached: threading.Event, go: threading.Event):
        self.data, self.hold_at, self.reached, self.go, self.pos = data, hold_at, reached, go, 0

    def __len__(self) -> int:
        return len(self.data)

    def read(self, n: int = -1) -> bytes:
        if self.pos >= self.hold_at and not self.go.is_set():
            self.reached.set()
            assert self.go.wait(60), "the other write never reached its body"
        end = len(self.data) if n is None or n < 0 else min(len(self.data), self.pos + n)
        if self.pos < self.hold_at <= end and not self.go.is_set():
            end = self.hold_at
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk


def test_the_provider_cannot_abandon_a_lock_with_the_ticket_that_sealed_it(running_split):
    """The gateway (the provider) holds the ticket of the tenant's locked write for 15 minutes:
    with it, it asks the trustee to abandon the lock it sealed (to drop it from the shred count
    and the residency report), and then to seal the lock onto a decoy version. Both refused."""
    split = running_split
    b = unique_name("olabandon")
    split.s3().create_bucket(Bucket=b, ObjectLockEnabledForBucket=True)
    start = log_size(split)
    soon = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(hours=1)
    lock_headers = {"x-amz-object-lock-mode": "COMPLIANCE", "x-amz-object-lock-retain-until-date": iso(soon)}
    signed = ticket_of(split, "PUT", b, "k", lock_headers)
    version = "a" * 32
    r = seal(split, b, "k", version, soon, signed)
    assert r.status_code == 200, r.text[:300]
    sealed = r.json()["sealed"]
    abandon = {"target": {"tenant": "demo", "bucket": b, "key": "k", "version_id": version},
               "state": {"legal_hold": False}, "change": "abandoned", "previous": sealed, "request": signed}
    r = split.trustee_api("POST", "/v1/lock/seal", json=abandon)
    assert r.status_code == 403, r.text[:300]
    assert "never abandoned" in r.json()["message"], r.text
    # Still counted (the version is not in the catalog: reported missing, not dropped).
    assert "1 checked, 1 missing" in listed(split, missing=1)
    # The ticket was not freed for a decoy version.
    r = seal(split, b, "k", "d" * 32, soon, signed)
    assert r.status_code == 403, r.text[:300]
    assert "1 checked, 1 missing" in listed(split, missing=1)
    entries = entries_of(split, start, type="object_lock", bucket=b)
    assert [(e["change"], e["version_id"]) for e in entries] == [("written", version)], entries


def test_a_write_whose_commit_fails_leaves_its_lock_counted_and_reported(running_split):
    """Two conditional writes (`If-None-Match: *`) of one new name with a COMPLIANCE lock: both
    pass the early check and have their lock sealed, one commit wins and the other fails. The
    loser's seal stays in the trustee's list (the gateway does not ask to abandon it, and the
    trustee would refuse): a verified residency report counts it as a locked version missing
    from the catalog, and the log shows both writes' seals, the missing one the loser's."""
    split = running_split
    s3 = split.s3()
    b = unique_name("olrace")
    s3.create_bucket(Bucket=b, ObjectLockEnabledForBucket=True)
    start = log_size(split)
    until = iso(dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(hours=2))
    # Two different bodies: two requests the tenant signed (an identical request sent twice
    # is one signed write, which seals one live version).
    bodies = [bytes(64 << 20), bytes((64 << 20) - 1) + b"\x01"]
    go = threading.Event()
    reached = [threading.Event(), threading.Event()]
    answers: list = [None, None]

    def write(i: int) -> None:
        raw = raw_of(split)
        try:
            answers[i] = raw.request(
                "PUT", b, "race", body=GatedBody(bodies[i], 48 << 20, reached[i], go),
                payload_hash="UNSIGNED-PAYLOAD",
                headers={"if-none-match": "*", "x-amz-object-lock-mode": "COMPLIANCE",
                         "x-amz-object-lock-retain-until-date": until,
                         "content-md5": base64.b64encode(hashlib.md5(bodies[i]).digest()).decode()},
                timeout=120)
        except Exception as e:  # noqa: BLE001 (reported below)
            answers[i] = e
            reached[i].set()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    try:
        for i, ev in enumerate(reached):
            assert ev.wait(60), f"write {i} never got to store its body"
    finally:
        go.set()
        for t in threads:
            t.join(150)
    codes = sorted(a.status_code if hasattr(a, "status_code") else repr(a) for a in answers)
    assert codes == [200, 412], [getattr(a, "text", a) for a in answers]
    versions = s3.list_object_versions(Bucket=b).get("Versions", [])
    assert len(versions) == 1, versions
    # Both seals are in the trustee's list; the one whose version is missing from the catalog
    # is the losing write's, and the log shows both writes and no abandonment.
    assert "2 checked, 1 missing" in listed(split, missing=1)
    entries = entries_of(split, start, type="object_lock", bucket=b)
    assert sorted(e["change"] for e in entries) == ["written", "written"], entries
    sealed_versions = {e["version_id"] for e in entries}
    assert versions[0]["VersionId"] in sealed_versions, (entries, versions)
    assert len(sealed_versions) == 2, entries


def test_the_provider_cannot_change_a_lock_without_the_tenants_signed_request_of_that_change(running_split):
    """Whoever holds a gateway's client certificate asks the trustee to set a legal hold (which
    would stop the tenant's shred of the version) or to bypass a GOVERNANCE retention, with the
    record the catalog holds but no signed PutObjectLegalHold or PutObjectRetention of the
    tenant's, or with the ticket of another of its requests. Refused; the tenant's own is sealed."""
    split = running_split
    b = unique_name("olchange")
    split.s3().create_bucket(Bucket=b, ObjectLockEnabledForBucket=True)
    start = log_size(split)
    soon = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(hours=1)
    version = "e" * 32
    target = {"tenant": "demo", "bucket": b, "key": "k", "version_id": version}
    written = ticket_of(split, "PUT", b, "k", {"x-amz-object-lock-mode": "GOVERNANCE",
                                              "x-amz-object-lock-retain-until-date": iso(soon)})
    r = split.trustee_api("POST", "/v1/lock/seal", json={
        "target": target, "state": {"retention": ["GOVERNANCE", ms(soon)], "legal_hold": False},
        "change": "written", "request": written})
    assert r.status_code == 200, r.text[:300]
    first = r.json()["sealed"]
    hold = {"target": target, "state": {"retention": ["GOVERNANCE", ms(soon)], "legal_hold": True},
            "change": "legal_hold", "previous": first}
    unlock = {"target": target, "state": {"legal_hold": False}, "change": "retention", "previous": first,
              "bypass_governance": True}
    # The gateway's word alone.
    for change in (hold, unlock):
        r = split.trustee_api("POST", "/v1/lock/seal", json=change)
        assert r.status_code == 403, r.text[:300]
        assert "signed PutObjectRetention or PutObjectLegalHold" in r.json()["message"], r.text
    # Tickets of the tenant's other requests of the object: a plain PUT, a DELETE, a tagging.
    for method, query in (("PUT", None), ("DELETE", None), ("PUT", [("tagging", "")])):
        other = ticket_of(split, method, b, "k", query=query)
        for change in (hold, unlock):
            r = split.trustee_api("POST", "/v1/lock/seal", json=dict(change, request=other))
            assert r.status_code == 403, (method, query, r.text[:300])
    # The tenant's retention change that did not sign the bypass: not bypassed.
    no_bypass = ticket_of(split, "PUT", b, "k", query=[("retention", "")])
    r = split.trustee_api("POST", "/v1/lock/seal", json=dict(unlock, request=no_bypass))
    assert r.status_code == 403, r.text[:300]
    assert "bypass" in r.json()["message"], r.text
    # Nothing changed, nothing logged but the write.
    entries = entries_of(split, start, type="object_lock", bucket=b)
    assert [e["change"] for e in entries] == ["written"], entries
    # Both ways: the tenant's signed legal hold is sealed, once.
    on = legal_hold_xml("ON")
    signed_hold = ticket_of(split, "PUT", b, "k", query=[("legal-hold", ""), ("versionId", version)], body=on)
    r = split.trustee_api("POST", "/v1/lock/seal", json=dict(hold, request=signed_hold, body=on.decode()))
    assert r.status_code == 200, r.text[:300]
    assert r.json()["state"]["legal_hold"] is True
    entries = entries_of(split, start, type="object_lock", bucket=b)
    assert [e["change"] for e in entries] == ["written", "legal_hold"], entries


def test_only_a_signed_request_that_makes_a_version_seals_its_first_record(running_split):
    """The gateway (the provider) holds the tickets of the tenant's requests that name an object
    without writing a version of it: a DELETE, a tagging, a retention change. With one, it asks
    the trustee to seal a first record with a retention (as if the bucket's default, which the
    catalog keeps) on a version of its choosing. Refused; the tenant's PUT seals its version."""
    split = running_split
    b = unique_name("olopkind")
    split.s3().create_bucket(Bucket=b, ObjectLockEnabledForBucket=True)
    start = log_size(split)
    until = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(hours=1)
    for i, (method, query) in enumerate((("DELETE", None), ("PUT", [("tagging", "")]),
                                         ("PUT", [("retention", "")]), ("PUT", [("legal-hold", "")]),
                                         ("POST", [("uploads", "")]))):
        r = seal(split, b, "k", f"{i:032x}", until, ticket_of(split, method, b, "k", query=query))
        assert r.status_code == 403, (method, query, r.text[:300])
    assert entries_of(split, start, type="object_lock", bucket=b) == []
    # Both ways: a PUT the tenant signed with that retention seals its version.
    signed = ticket_of(split, "PUT", b, "k", {"x-amz-object-lock-mode": "COMPLIANCE",
                                             "x-amz-object-lock-retain-until-date": iso(until)})
    r = seal(split, b, "k", "f" * 32, until, signed)
    assert r.status_code == 200, r.text[:300]
    entries = entries_of(split, start, type="object_lock", bucket=b)
    assert [(e["change"], e["version_id"]) for e in entries] == [("written", "f" * 32)], entries


def test_the_provider_cannot_rewrite_the_body_of_the_tenants_signed_lock_change(running_split):
    """The gateway (the provider) holds the tenant's genuine signed PutObjectRetention and
    PutObjectLegalHold, and rewrites their XML before asking the trustee to seal: a COMPLIANCE
    retention ten years long instead of a GOVERNANCE one an hour longer (which would stop the
    tenant's shred), a legal hold set instead of lifted. The trustee checks the body against
    what the signature bound and reads it itself: refused. A request whose signature binds no
    body (UNSIGNED-PAYLOAD with a CRC32 only) changes nothing: InvalidRequest-worthy, 400."""
    split = running_split
    b = unique_name("olbody")
    split.s3().create_bucket(Bucket=b, ObjectLockEnabledForBucket=True)
    start = log_size(split)
    soon = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(hours=1)
    version = "b" * 32
    target = {"tenant": "demo", "bucket": b, "key": "k", "version_id": version}
    written = ticket_of(split, "PUT", b, "k", {"x-amz-object-lock-mode": "GOVERNANCE",
                                              "x-amz-object-lock-retain-until-date": iso(soon),
                                              "x-amz-object-lock-legal-hold": "ON"})
    r = split.trustee_api("POST", "/v1/lock/seal", json={
        "target": target, "state": {"retention": ["GOVERNANCE", ms(soon)], "legal_hold": True},
        "change": "written", "request": written})
    assert r.status_code == 200, r.text[:300]
    first = r.json()["sealed"]

    # The tenant signs a GOVERNANCE retention an hour longer.
    later = soon + dt.timedelta(hours=1)
    genuine = retention_xml("GOVERNANCE", later)
    signed = ticket_of(split, "PUT", b, "k", query=[("retention", "")], body=genuine)
    decade = soon + dt.timedelta(days=3650)
    forged = retention_xml("COMPLIANCE", decade)
    change = {"target": target, "change": "retention", "previous": first,
              "state": {"retention": ["COMPLIANCE", ms(decade)], "legal_hold": True}}
    # The rewritten body with its state; the genuine body with the rewritten state; no body.
    for body in (forged.decode(), genuine.decode(), None):
        asked = dict(change, request=signed)
        if body is not None:
            asked["body"] = body
        r = split.trustee_api("POST", "/v1/lock/seal", json=asked)
        assert r.status_code == 403, (body, r.text[:300])
    # The tenant lifts its legal hold; the provider rewrites it to set the hold (kept) with a
    # longer retention, or sends ON.
    off = legal_hold_xml("OFF")
    lift = ticket_of(split, "PUT", b, "k", query=[("legal-hold", "")], body=off)
    hold = {"target": target, "change": "legal_hold", "previous": first, "request": lift,
            "state": {"retention": ["GOVERNANCE", ms(soon)], "legal_hold": True}}
    for body in (legal_hold_xml("ON").decode(), off.decode()):
        r = split.trustee_api("POST", "/v1/lock/seal", json=dict(hold, body=body))
        assert r.status_code == 403, (body, r.text[:300])
    # A signature that binds no body: refused, naming what to send.
    crc = base64.b64encode(zlib.crc32(off).to_bytes(4, "big")).decode()
    unbound = ticket_of(split, "PUT", b, "k", {"x-amz-checksum-crc32": crc}, query=[("legal-hold", "")],
                        payload="UNSIGNED-PAYLOAD")
    r = split.trustee_api("POST", "/v1/lock/seal", json=dict(hold, request=unbound, body=off.decode(),
                                                            state={"retention": ["GOVERNANCE", ms(soon)],
                                                                   "legal_hold": False}))
    assert r.status_code == 400, r.text[:300]
    assert "x-amz-content-sha256" in r.json()["message"] and "Content-MD5" in r.json()["message"], r.text
    assert [e["change"] for e in entries_of(split, start, type="object_lock", bucket=b)] == ["written"]

    # Both ways: the genuine requests are sealed as their bodies ask.
    r = split.trustee_api("POST", "/v1/lock/seal", json=dict(
        change, request=signed, body=genuine.decode(),
        state={"retention": ["GOVERNANCE", ms(later)], "legal_hold": True}))
    assert r.status_code == 200, r.text[:300]
    r = split.trustee_api("POST", "/v1/lock/seal", json=dict(
        hold, previous=r.json()["sealed"], body=off.decode(),
        state={"retention": ["GOVERNANCE", ms(later)], "legal_hold": False}))
    assert r.status_code == 200, r.text[:300]
    entries = entries_of(split, start, type="object_lock", bucket=b)
    assert [(e["change"], e.get("mode"), e["legal_hold"]) for e in entries] == [
        ("written", "GOVERNANCE", True), ("retention", "GOVERNANCE", True), ("legal_hold", "GOVERNANCE", False)
    ], entries


def lock_configuration_xml(mode: str | None = None, days: int | None = None) -> bytes:
    """A PutObjectLockConfiguration body as boto3 sends it."""
    rule = f"<Rule><DefaultRetention><Mode>{mode}</Mode><Days>{days}</Days></DefaultRetention></Rule>" if mode else ""
    return (f'<ObjectLockConfiguration xmlns="{S3_NS}"><ObjectLockEnabled>Enabled</ObjectLockEnabled>'
            f"{rule}</ObjectLockConfiguration>").encode()


def test_the_provider_cannot_give_the_tenants_plain_writes_a_retention_it_did_not_configure(running_split):
    """The gateway (the provider) holds the ticket of a tenant's PUT without lock headers and asks
    the trustee to seal its version with a retention as if the bucket's default (which the
    catalog, the provider's, keeps). The trustee seals only the default the tenant's signed
    PutObjectLockConfiguration set, from the body it signed: the provider can neither set one
    without it nor rewrite its body."""
    split = running_split
    s3 = split.s3()
    b = unique_name("oldefault")
    s3.create_bucket(Bucket=b, ObjectLockEnabledForBucket=True)
    start = log_size(split)
    now = dt.datetime.now(dt.timezone.utc)

    def plain_write(version: str, state: dict):
        return split.trustee_api("POST", "/v1/lock/seal", json={
            "target": {"tenant": "demo", "bucket": b, "key": "k", "version_id": version},
            "state": state, "change": "written", "request": ticket_of(split, "PUT", b, "k")})

    decade = {"retention": ["COMPLIANCE", ms(now + dt.timedelta(days=3650))], "legal_hold": False}
    # No default the tenant set (its CreateBucket with object lock said so): none is sealed.
    r = plain_write("1" * 32, decade)
    assert r.status_code == 403, r.text[:300]
    # The provider sets the default itself: without the tenant's request, with the ticket of
    # another of its requests, or with its genuine request's body rewritten.
    config = {"target": {"tenant": "demo", "bucket": b, "key": "", "version_id": ""},
              "state": {"legal_hold": False}, "change": "bucket_default"}
    genuine = lock_configuration_xml("GOVERNANCE", 1)
    forged = lock_configuration_xml("COMPLIANCE", 3650)
    signed = ticket_of(split, "PUT", b, "", query=[("object-lock", "")], body=genuine)
    for request, body in ((None, forged), (ticket_of(split, "PUT", b, "k", body=forged), forged),
                          (signed, forged)):
        asked = dict(config, body=body.decode())
        if request is not None:
            asked["request"] = request
        r = split.trustee_api("POST", "/v1/lock/seal", json=asked)
        assert r.status_code == 403, r.text[:300]
    r = plain_write("2" * 32, decade)
    assert r.status_code == 403, r.text[:300]
    # Both ways: the tenant sets a GOVERNANCE day through boto3; then only that is sealed.
    s3.put_object_lock_configuration(Bucket=b, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
    r = plain_write("3" * 32, decade)
    assert r.status_code == 403, r.text[:300]
    now = dt.datetime.now(dt.timezone.utc)
    r = plain_write("4" * 32, {"retention": ["GOVERNANCE", ms(now + dt.timedelta(days=1))], "legal_hold": False})
    assert r.status_code == 200, r.text[:300]
    entries = entries_of(split, start, type="object_lock", bucket=b)
    assert [(e["change"], e["version_id"], e.get("mode")) for e in entries] == [
        ("written", "4" * 32, "GOVERNANCE")], entries

    # A bucket deleted and created again with object lock (by the tenant, through boto3) has no
    # default: the one set for the name before is not sealed.
    again = unique_name("olrecreate")
    s3.create_bucket(Bucket=again, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(Bucket=again, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
    s3.delete_bucket(Bucket=again)
    s3.create_bucket(Bucket=again, ObjectLockEnabledForBucket=True)
    now = dt.datetime.now(dt.timezone.utc)
    r = split.trustee_api("POST", "/v1/lock/seal", json={
        "target": {"tenant": "demo", "bucket": again, "key": "k", "version_id": "5" * 32},
        "state": {"retention": ["GOVERNANCE", ms(now + dt.timedelta(days=1))], "legal_hold": False},
        "change": "written", "request": ticket_of(split, "PUT", again, "k")})
    assert r.status_code == 403, r.text[:300]
