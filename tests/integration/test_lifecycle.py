"""Bucket lifecycle through boto3 and aws-cli: Put/Get/DeleteBucketLifecycleConfiguration with
S3's validation errors, who may read and set rules, and rules applied for real by the running
binary (a lifecycle "day" shortened with OBHUT_LIFECYCLE_DAY_MS or lifecycle_day_secs):
expiration by days and date, noncurrent version expiration with NewerNoncurrentVersions,
removal of expired delete markers, abort of incomplete multipart uploads, filters by prefix,
tag and size, disabled rules, versioned, suspended and unversioned buckets."""

import json
import re
import time

import pytest
import requests

from conftest import ObhutServer, blob_path, blob_snapshot, new_blob, run_aws
from gov_helpers import approved_grant, credentials, entries_of, grant_client, log_size, tenant_with_bucket, wait_until
from s3helpers import client_error, expect_error, unique_name

# A lifecycle day of one second, applied every 300 ms: a rule of 4 days expires in 4 s.
DAY_MS = 1000
EVERY_MS = 300


def rule(rid, status="Enabled", **kw):
    return {"ID": rid, "Status": status, **kw}


def put_rules(s3, bucket, rules):
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})


def current_keys(s3, bucket) -> set[str]:
    out = s3.list_objects_v2(Bucket=bucket)
    return {o["Key"] for o in out.get("Contents", [])}


def history(s3, bucket) -> list[tuple[str, str, bool, bool]]:
    """(key, version id, is a delete marker, is latest) of every entry, newest first per key."""
    out = s3.list_object_versions(Bucket=bucket)
    entries = [(v["Key"], v["VersionId"], False, v["IsLatest"], v["LastModified"]) for v in out.get("Versions", [])]
    entries += [(m["Key"], m["VersionId"], True, m["IsLatest"], m["LastModified"]) for m in out.get("DeleteMarkers", [])]
    entries.sort(key=lambda e: (e[0], not e[3], -e[4].timestamp()))
    return [e[:4] for e in entries]


@pytest.fixture(scope="module")
def lc(tmp_path_factory):
    """A server of this module's own whose lifecycle day lasts DAY_MS."""
    base = tmp_path_factory.mktemp("obhut-lifecycle")
    srv = ObhutServer(base / "data", base / "serve.log")
    srv.extra_env = {"OBHUT_LIFECYCLE_DAY_MS": str(DAY_MS), "OBHUT_LIFECYCLE_EVERY_MS": str(EVERY_MS)}
    srv.start()
    yield srv
    code = srv.stop()
    assert code == 0, f"`obhut serve` exited with {code} after SIGTERM.\n{srv.log_tail()}"


# ---------------------------------------------------------------------------
# the three operations


RULES = [
    rule("logs", Filter={"Prefix": "logs/"}, Expiration={"Days": 30}),
    rule("tagged", Filter={"And": {"Prefix": "tmp/", "Tags": [{"Key": "class", "Value": "temp"}],
                                   "ObjectSizeGreaterThan": 10, "ObjectSizeLessThan": 1000}},
         Expiration={"Date": "2030-01-01T00:00:00Z"}),
    rule("versions", "Disabled", Filter={}, NoncurrentVersionExpiration={"NoncurrentDays": 7, "NewerNoncurrentVersions": 3},
         Expiration={"ExpiredObjectDeleteMarker": True}),
    rule("uploads", Filter={"Prefix": ""}, AbortIncompleteMultipartUpload={"DaysAfterInitiation": 2}),
    rule("one-tag", Filter={"Tag": {"Key": "k", "Value": "v"}}, Expiration={"Days": 1}),
    rule("size", Filter={"ObjectSizeGreaterThan": 1048576}, Expiration={"Days": 365}),
]


def test_put_get_delete_lifecycle_configuration(s3, bucket):
    expect_error(s3.get_bucket_lifecycle_configuration, "NoSuchLifecycleConfiguration", 404, Bucket=bucket)
    put_rules(s3, bucket, RULES)
    got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [r["ID"] for r in got] == [r["ID"] for r in RULES]
    by_id = {r["ID"]: r for r in got}
    assert by_id["logs"]["Filter"] == {"Prefix": "logs/"} and by_id["logs"]["Expiration"] == {"Days": 30}
    and_ = by_id["tagged"]["Filter"]["And"]
    assert and_["Prefix"] == "tmp/" and and_["Tags"] == [{"Key": "class", "Value": "temp"}]
    assert (and_["ObjectSizeGreaterThan"], and_["ObjectSizeLessThan"]) == (10, 1000)
    assert by_id["tagged"]["Expiration"]["Date"].isoformat().startswith("2030-01-01T00:00:00")
    assert by_id["versions"]["Status"] == "Disabled"
    assert by_id["versions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 7, "NewerNoncurrentVersions": 3}
    assert by_id["versions"]["Expiration"] == {"ExpiredObjectDeleteMarker": True}
    assert by_id["uploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 2}
    assert by_id["one-tag"]["Filter"] == {"Tag": {"Key": "k", "Value": "v"}}
    assert by_id["size"]["Filter"] == {"ObjectSizeGreaterThan": 1048576}
    # Replaced as a whole.
    put_rules(s3, bucket, RULES[:1])
    assert [r["ID"] for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]] == ["logs"]
    r = s3.delete_bucket_lifecycle(Bucket=bucket)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    expect_error(s3.get_bucket_lifecycle_configuration, "NoSuchLifecycleConfiguration", 404, Bucket=bucket)
    # Deleting what is not there is no error, as in S3.
    s3.delete_bucket_lifecycle(Bucket=bucket)


def test_the_older_rule_level_prefix_round_trips(raw, s3, bucket):
    body = (b'<LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Rule><ID>old</ID>'
            b"<Prefix>archive/</Prefix><Status>Enabled</Status><Expiration><Days>5</Days></Expiration>"
            b"</Rule></LifecycleConfiguration>")
    r = raw.request("PUT", bucket, query=[("lifecycle", "")], body=body)
    assert r.status_code == 200, r.text
    got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert got == [{"ID": "old", "Prefix": "archive/", "Status": "Enabled", "Expiration": {"Days": 5}}]


INVALID = [
    ("no action", [rule("a", Filter={"Prefix": "x"})], "InvalidRequest"),
    ("days zero", [rule("a", Filter={}, Expiration={"Days": 0})], "InvalidArgument"),
    ("days and marker", [rule("a", Filter={}, Expiration={"Days": 1, "ExpiredObjectDeleteMarker": True})],
     "InvalidArgument"),
    ("date not midnight", [rule("a", Filter={}, Expiration={"Date": "2030-01-01T12:00:00Z"})], "InvalidArgument"),
    ("duplicate id", [rule("a", Filter={}, Expiration={"Days": 1}), rule("a", Filter={}, Expiration={"Days": 2})],
     "InvalidArgument"),
    ("id too long", [rule("a" * 256, Filter={}, Expiration={"Days": 1})], "InvalidArgument"),
    ("status", [rule("a", "On", Filter={}, Expiration={"Days": 1})], "MalformedXML"),
    ("two predicates", [rule("a", Filter={"Prefix": "x", "ObjectSizeLessThan": 5}, Expiration={"Days": 1})],
     "MalformedXML"),
    ("sizes crossed", [rule("a", Filter={"And": {"ObjectSizeGreaterThan": 10, "ObjectSizeLessThan": 10}},
                            Expiration={"Days": 1})], "InvalidArgument"),
    ("duplicate tag keys", [rule("a", Filter={"And": {"Tags": [{"Key": "k", "Value": "1"}, {"Key": "k", "Value": "2"}]}},
                                 Expiration={"Days": 1})], "InvalidArgument"),
    ("noncurrent days zero", [rule("a", Filter={}, NoncurrentVersionExpiration={"NoncurrentDays": 0})],
     "InvalidArgument"),
    ("newer versions over 100", [rule("a", Filter={}, NoncurrentVersionExpiration={"NoncurrentDays": 1,
                                                                                  "NewerNoncurrentVersions": 101})],
     "InvalidArgument"),
    ("abort with a tag", [rule("a", Filter={"Tag": {"Key": "k", "Value": "v"}},
                               AbortIncompleteMultipartUpload={"DaysAfterInitiation": 1})], "InvalidArgument"),
    ("marker with a size", [rule("a", Filter={"ObjectSizeGreaterThan": 5},
                                 Expiration={"ExpiredObjectDeleteMarker": True})], "InvalidArgument"),
    ("transition", [rule("a", Filter={}, Transitions=[{"Days": 1, "StorageClass": "GLACIER"}])], "NotImplemented"),
]


@pytest.mark.parametrize("what,rules,code", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_configurations_are_refused_and_change_nothing(s3, bucket, what, rules, code):
    put_rules(s3, bucket, RULES[:1])
    status = 501 if code == "NotImplemented" else 400
    expect_error(put_rules, code, status, s3, bucket, rules)
    assert [r["ID"] for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]] == ["logs"]


def test_malformed_bodies_are_malformed_xml(raw, bucket):
    for body in [
        b'<LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></LifecycleConfiguration>',
        # Neither Filter nor Prefix.
        b'<LifecycleConfiguration><Rule><ID>a</ID><Status>Enabled</Status><Expiration><Days>1</Days>'
        b"</Expiration></Rule></LifecycleConfiguration>",
        # Both.
        b"<LifecycleConfiguration><Rule><ID>a</ID><Prefix>x</Prefix><Filter><Prefix>y</Prefix></Filter>"
        b"<Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>",
        b"<LifecycleConfiguration><Rule>" * 2,
    ]:
        r = raw.request("PUT", bucket, query=[("lifecycle", "")], body=body)
        assert r.status_code == 400 and "<Code>MalformedXML</Code>" in r.text, (body, r.status_code, r.text)
    too_many = b"".join(
        b"<Rule><ID>r%d</ID><Filter></Filter><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>" % i
        for i in range(1001)
    )
    r = raw.request("PUT", bucket, query=[("lifecycle", "")],
                    body=b"<LifecycleConfiguration>" + too_many + b"</LifecycleConfiguration>")
    assert r.status_code == 400 and "<Code>MalformedXML</Code>" in r.text, r.text


def test_aws_cli_bucket_lifecycle(s3, bucket, aws, tmp_path):
    config = tmp_path / "lifecycle.json"
    config.write_text(json.dumps({"Rules": [
        rule("cli", Filter={"Prefix": "cli/"}, Expiration={"Days": 3},
             NoncurrentVersionExpiration={"NoncurrentDays": 2}),
    ]}))
    aws("s3api", "put-bucket-lifecycle-configuration", "--bucket", bucket,
        "--lifecycle-configuration", f"file://{config}")
    got = json.loads(aws("s3api", "get-bucket-lifecycle-configuration", "--bucket", bucket).stdout)
    assert got["Rules"] == [{"ID": "cli", "Filter": {"Prefix": "cli/"}, "Status": "Enabled",
                             "Expiration": {"Days": 3}, "NoncurrentVersionExpiration": {"NoncurrentDays": 2}}], got
    aws("s3api", "delete-bucket-lifecycle", "--bucket", bucket)
    r = aws("s3api", "get-bucket-lifecycle-configuration", "--bucket", bucket, check=False)
    assert r.returncode != 0 and "NoSuchLifecycleConfiguration" in r.stderr, r.stderr
    config.write_text(json.dumps({"Rules": [rule("bad", Filter={}, Expiration={"Days": 0})]}))
    r = aws("s3api", "put-bucket-lifecycle-configuration", "--bucket", bucket,
            "--lifecycle-configuration", f"file://{config}", check=False)
    assert r.returncode != 0 and "InvalidArgument" in r.stderr, r.stderr


def test_another_tenant_cannot_read_set_or_delete_rules(s3, bucket, tenant_b):
    put_rules(s3, bucket, RULES[:1])
    other = tenant_b["client"]
    for call, kw in [
        (other.get_bucket_lifecycle_configuration, {}),
        (other.put_bucket_lifecycle_configuration,
         {"LifecycleConfiguration": {"Rules": [rule("theirs", Filter={}, Expiration={"Days": 1})]}}),
        (other.delete_bucket_lifecycle, {}),
    ]:
        code, status, _ = client_error(call, Bucket=bucket, **kw)
        assert (code, status) == ("AccessDenied", 403), (call, code, status)
    assert [r["ID"] for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]] == ["logs"]
    # And the other way round: the other tenant sets rules on its own bucket, which this one
    # cannot touch.
    theirs = unique_name("lctheirs")
    other.create_bucket(Bucket=theirs)
    put_rules(other, theirs, RULES[1:2])
    assert [r["ID"] for r in other.get_bucket_lifecycle_configuration(Bucket=theirs)["Rules"]] == ["tagged"]
    code, status, _ = client_error(s3.get_bucket_lifecycle_configuration, Bucket=theirs)
    assert (code, status) == ("AccessDenied", 403)


def test_no_grant_covers_a_buckets_lifecycle(server):
    """Bucket configuration is the tenant's own: a grant (read or write) neither reads nor
    sets nor deletes it; the tenant does."""
    t = tenant_with_bucket(server, {"doc": b"doc"})
    b, owner = t["bucket"], t["client"]
    put_rules(owner, b, RULES[:1])
    op = server.token("operator")
    for ops in ("read", "write"):
        g = grant_client(server, credentials(server, op, approved_grant(server, t, ops)))
        if ops == "read":
            assert g.get_object(Bucket=b, Key="doc")["Body"].read() == b"doc"
        for call, kw in [
            (g.get_bucket_lifecycle_configuration, {}),
            (g.put_bucket_lifecycle_configuration,
             {"LifecycleConfiguration": {"Rules": [rule("grant", Filter={}, Expiration={"Days": 1})]}}),
            (g.delete_bucket_lifecycle, {}),
        ]:
            code, status, _ = client_error(call, Bucket=b, **kw)
            assert (code, status) == ("AccessDenied", 403), (ops, call, code, status)
    assert [r["ID"] for r in owner.get_bucket_lifecycle_configuration(Bucket=b)["Rules"]] == ["logs"]


# ---------------------------------------------------------------------------
# rules applied by the running binary


def test_expiration_in_an_unversioned_bucket_follows_each_filter(lc):
    s3 = lc.client()
    b = unique_name("lcu")
    s3.create_bucket(Bucket=b)
    before = blob_snapshot(lc)
    s3.put_object(Bucket=b, Key="logs/a", Body=b"expires by prefix")
    logs_blob = new_blob(lc, before)
    objects = {
        "keep/b": (b"no rule names it", ""),
        "tmp/t": (b"tagged temp, mid-sized", "class=temp"),
        "tmp/u": (b"tagged keep, mid-sized", "class=keep"),
        "tmp/small": (b"tiny", "class=temp"),
        "big/large": (b"x" * 2000, ""),
        "big/small": (b"x" * 100, ""),
        "solo": (b"one tag among others", "gone=yes&other=1"),
        "off/x": (b"only a disabled rule names it", ""),
    }
    for key, (body, tags) in objects.items():
        s3.put_object(Bucket=b, Key=key, Body=body, **({"Tagging": tags} if tags else {}))
    put_rules(s3, b, [
        rule("logs", Filter={"Prefix": "logs/"}, Expiration={"Days": 4}),
        rule("temp", Filter={"And": {"Prefix": "tmp/", "Tags": [{"Key": "class", "Value": "temp"}],
                                     "ObjectSizeGreaterThan": 10}}, Expiration={"Days": 4}),
        rule("big", Filter={"And": {"Prefix": "big/", "ObjectSizeGreaterThan": 1000}}, Expiration={"Days": 4}),
        rule("solo", Filter={"Tag": {"Key": "gone", "Value": "yes"}}, Expiration={"Days": 4}),
        rule("off", "Disabled", Filter={"Prefix": "off/"}, Expiration={"Days": 1}),
    ])
    everything = {"logs/a", *objects}
    assert current_keys(s3, b) == everything, "nothing expires before its days are over"
    expired = {"logs/a", "tmp/t", "big/large", "solo"}
    wait_until(lambda: not (current_keys(s3, b) & expired), 30, f"{sorted(expired)} to expire")
    # Everything else is older than 4 days too by now; a few more runs change nothing.
    time.sleep(4 * EVERY_MS / 1000)
    assert current_keys(s3, b) == everything - expired
    assert s3.get_object(Bucket=b, Key="tmp/u")["Body"].read() == b"tagged keep, mid-sized"
    expect_error(s3.head_object, "404", 404, Bucket=b, Key="logs/a")
    # The expired object's blobs went the way an S3 DELETE's go.
    wait_until(lambda: not any(blob_path(lc, site, rel).exists() for site, rel in logs_blob.items()), 15,
               "the expired object's blobs to be removed")


def test_expiration_by_a_date_in_the_past(lc):
    s3 = lc.client()
    b = unique_name("lcd")
    s3.create_bucket(Bucket=b)
    for key in ("old/1", "old/2", "new/1"):
        s3.put_object(Bucket=b, Key=key, Body=b"x")
    put_rules(s3, b, [rule("date", Filter={"Prefix": "old/"}, Expiration={"Date": "2020-01-01T00:00:00Z"})])
    wait_until(lambda: current_keys(s3, b) == {"new/1"}, 20, "objects past their date to expire")


def test_versioned_bucket_markers_noncurrent_versions_and_expired_markers(lc):
    s3 = lc.client()
    b = unique_name("lcv")
    s3.create_bucket(Bucket=b)
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    doc = [s3.put_object(Bucket=b, Key="doc", Body=f"v{i}".encode())["VersionId"] for i in range(4)]
    gone_v = s3.put_object(Bucket=b, Key="gone", Body=b"deleted")["VersionId"]
    s3.delete_object(Bucket=b, Key="gone")
    cur_v = s3.put_object(Bucket=b, Key="cur/x", Body=b"current")["VersionId"]
    put_rules(s3, b, [
        # Keep one newer noncurrent version of doc beside the current one.
        rule("doc", Filter={"Prefix": "doc"}, NoncurrentVersionExpiration={"NoncurrentDays": 2,
                                                                           "NewerNoncurrentVersions": 1}),
        # Remove gone's old version, then its delete marker, now alone.
        rule("gone", Filter={"Prefix": "gone"}, NoncurrentVersionExpiration={"NoncurrentDays": 2},
             Expiration={"ExpiredObjectDeleteMarker": True}),
        # Expiring a current version adds a delete marker; the version stays, noncurrent.
        rule("cur", Filter={"Prefix": "cur/"}, Expiration={"Days": 3}),
    ])

    def settled():
        h = history(s3, b)
        return h if (len([e for e in h if e[0] == "doc"]) == 2 and not [e for e in h if e[0] == "gone"]
                     and any(e[0] == "cur/x" and e[2] for e in h)) else None

    h = wait_until(settled, 30, "the versioned rules to be applied")
    assert [e for e in h if e[0] == "doc"] == [("doc", doc[3], False, True), ("doc", doc[2], False, False)], h
    cur = [e for e in h if e[0] == "cur/x"]
    assert len(cur) == 2 and cur[0][2] and cur[0][3], f"a delete marker is the newest entry of cur/x: {cur}"
    assert cur[1] == ("cur/x", cur_v, False, False), cur
    assert s3.get_object(Bucket=b, Key="doc")["Body"].read() == b"v3"
    assert s3.get_object(Bucket=b, Key="cur/x", VersionId=cur_v)["Body"].read() == b"current"
    expect_error(s3.get_object, "NoSuchKey", 404, Bucket=b, Key="cur/x")
    expect_error(s3.get_object, "NoSuchVersion", 404, Bucket=b, Key="gone", VersionId=gone_v)
    # A version written now is not touched by what the rules did before.
    new_v = s3.put_object(Bucket=b, Key="doc", Body=b"v4")["VersionId"]
    assert s3.get_object(Bucket=b, Key="doc", VersionId=new_v)["Body"].read() == b"v4"


def test_suspended_bucket_expiration_writes_a_null_delete_marker(lc):
    s3 = lc.client()
    b = unique_name("lcs")
    s3.create_bucket(Bucket=b)
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    kept = s3.put_object(Bucket=b, Key="k", Body=b"versioned")["VersionId"]
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Suspended"})
    s3.put_object(Bucket=b, Key="k", Body=b"null version")
    put_rules(s3, b, [rule("all", Filter={}, Expiration={"Days": 3})])

    def marked():
        h = history(s3, b)
        return h if h and h[0][2] else None

    h = wait_until(marked, 30, "a null delete marker")
    assert h == [("k", "null", True, True), ("k", kept, False, False)], h
    assert s3.get_object(Bucket=b, Key="k", VersionId=kept)["Body"].read() == b"versioned"


def test_incomplete_multipart_uploads_are_aborted(lc):
    s3 = lc.client()
    b = unique_name("lcm")
    s3.create_bucket(Bucket=b)
    old = s3.create_multipart_upload(Bucket=b, Key="mp/big")["UploadId"]
    s3.upload_part(Bucket=b, Key="mp/big", UploadId=old, PartNumber=1, Body=b"p" * 1024)
    other = s3.create_multipart_upload(Bucket=b, Key="keep/mp")["UploadId"]
    put_rules(s3, b, [rule("abort", Filter={"Prefix": "mp/"}, AbortIncompleteMultipartUpload={"DaysAfterInitiation": 2})])

    def uploads():
        return {u["UploadId"] for u in s3.list_multipart_uploads(Bucket=b).get("Uploads", [])}

    assert uploads() == {old, other}
    wait_until(lambda: uploads() == {other}, 30, "the old upload to be aborted")
    expect_error(s3.upload_part, "NoSuchUpload", 404, Bucket=b, Key="mp/big", UploadId=old, PartNumber=2, Body=b"x")
    s3.abort_multipart_upload(Bucket=b, Key="keep/mp", UploadId=other)


def test_tag_reads_are_logged_key_releases_and_runs_log_counts_without_names(lc):
    s3 = lc.client()
    b = unique_name("lcl")
    s3.create_bucket(Bucket=b)
    s3.put_object(Bucket=b, Key="secret-name", Body=b"x", Tagging="t=1")
    start = log_size(lc)
    put_rules(s3, b, [rule("tag", Filter={"Tag": {"Key": "t", "Value": "1"}}, Expiration={"Days": 2})])
    wait_until(lambda: not current_keys(s3, b), 30, "the tagged object to expire")
    reasons = [e["justification"] for e in entries_of(lc, start, type="key_release")]
    assert any(j.get("kind") == "system" and "lifecycle" in j.get("reason", "") for j in reasons), reasons
    log = lc.log_path.read_text(errors="replace")
    runs = [line for line in log.splitlines() if "lifecycle rules applied" in line]
    assert runs and any(re.search(r"expired[=:]\s*\"?[1-9]", line) for line in runs), runs[-5:]
    lifecycle_lines = [line for line in log.splitlines() if "lifecycle" in line]
    assert not [line for line in lifecycle_lines if b in line or "secret-name" in line], lifecycle_lines
    r = requests.get(f"{lc.admin_url}/metrics", headers=lc.auth("operator"), timeout=30)
    assert r.status_code == 200, r.text[:300]
    m = re.search(r'^obhut_lifecycle_actions_total\{action="expired"\} (\d+)', r.text, re.M)
    assert m and int(m.group(1)) >= 1, [line for line in r.text.splitlines() if "lifecycle" in line]


def test_the_lifecycle_day_is_set_in_the_config_file(private_server_factory):
    srv = private_server_factory(config="lifecycle_day_secs = 1\nlifecycle_interval_secs = 1\n")
    s3 = srv.client()
    b = unique_name("lcc")
    s3.create_bucket(Bucket=b)
    s3.put_object(Bucket=b, Key="a", Body=b"x")
    put_rules(s3, b, [rule("all", Filter={}, Expiration={"Days": 2})])
    assert current_keys(s3, b) == {"a"}
    wait_until(lambda: not current_keys(s3, b), 30, "the object to expire after two one-second days")
    log = srv.log_path.read_text(errors="replace")
    assert "a lifecycle day is shorter than 24 hours" in log


def test_a_bad_lifecycle_setting_stops_the_start_with_one_line(tmp_path):
    srv = ObhutServer(tmp_path / "data", tmp_path / "serve.log")
    srv.extra_env = {"OBHUT_LIFECYCLE_DAY_MS": "0"}
    with pytest.raises(pytest.fail.Exception):
        srv.start(timeout=30)
    assert "lifecycle" in srv.log_tail(), srv.log_tail()


def test_a_disconnect_stops_lifecycle_until_the_officers_reconnect(lc):
    """Rules live in the catalog, which the provider can edit: while officers have disconnected
    the provider, the worker removes nothing; after the reconnect it goes on."""
    s3 = lc.client()
    bucket = unique_name("lc-disconnect")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="kept", Body=b"x")
    days = 5
    put_rules(s3, bucket, [rule("all", Filter={}, Expiration={"Days": days})])
    lc.cli_ok("trustee", "disconnect", "--reason", "lifecycle test", token=lc.token("officer1"))
    lc.cli_ok("trustee", "disconnect", token=lc.token("officer2"))
    try:
        # Well past the rule's time, many runs later, the object's record is still there.
        time.sleep((days + 3) * DAY_MS / 1000)
        import sqlite3
        db = sqlite3.connect(f"file:{lc.data_dir / 'catalog.db'}?mode=ro", uri=True, timeout=30)
        try:
            rows = db.execute("SELECT count(*) FROM objects WHERE bucket = ? AND key = ?",
                              (bucket, b"kept")).fetchone()[0]
        finally:
            db.close()
        assert rows == 1, "lifecycle removed an object while the provider was disconnected"
    finally:
        lc.cli_ok("trustee", "reconnect", token=lc.token("officer1"))
        lc.cli_ok("trustee", "reconnect", token=lc.token("officer2"))
    wait_until(lambda: "kept" not in current_keys(s3, bucket), timeout=30,
               what="the rule to apply after the reconnect")
