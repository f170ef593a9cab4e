"""crash_consistency of versions: kill -9 during 120 concurrent overwrites of one key in a
versioning-enabled bucket. After the restart every acknowledged version is listed under the
id its PUT was answered with and reads back whole; every version listed is exactly what one
PUT sent (nothing half-written is visible); no version id appears twice; one version is the
latest and a GET without a version id reads it; orphaned blobs are collected."""

import hashlib
import random
import threading

import requests

from conftest import wait_for_blob_counts
from s3helpers import RawS3

N = 120
KILL_AFTER_ACKS = 60
BUCKET = "crash-versions"
KEY = "one-key"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def all_versions(s3) -> list[dict]:
    versions, markers, args = [], [], {"Bucket": BUCKET, "MaxKeys": 50}
    while True:
        page = s3.list_object_versions(**args)
        versions += page.get("Versions", [])
        markers += page.get("DeleteMarkers", [])
        if not page["IsTruncated"]:
            assert markers == [], f"delete markers appeared: {markers[:3]}"
            return versions
        args["KeyMarker"] = page["NextKeyMarker"]
        args["VersionIdMarker"] = page["NextVersionIdMarker"]


def test_crash_consistency_of_concurrent_versioned_overwrites(fresh_server):
    srv = fresh_server.start()
    s3 = srv.client()
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})

    rnd = random.Random(20261207)
    payloads = [rnd.randbytes(rnd.randint(1024, 128 * 1024)) for _ in range(N)]
    sent = {sha(p): p for p in payloads}
    assert len(sent) == N
    acked: dict[str, str] = {}  # version id -> sha256 of what its PUT sent
    failures: list[str] = []
    problems: list[str] = []
    cond = threading.Condition()
    start = threading.Barrier(N + 1)
    demo = srv.demo

    def put(data: bytes):
        raw = RawS3(srv.s3_url, demo["AWS_ACCESS_KEY_ID"], demo["AWS_SECRET_ACCESS_KEY"])
        start.wait()
        try:
            r = raw.request("PUT", BUCKET, KEY, body=data, timeout=120)
            with cond:
                if r.status_code == 200:
                    vid = r.headers.get("x-amz-version-id")
                    if not vid or vid in acked:
                        problems.append(f"acknowledged with version id {vid!r}")
                    else:
                        acked[vid] = sha(data)
                else:
                    failures.append(f"HTTP {r.status_code}")
                cond.notify_all()
        except requests.RequestException as e:
            with cond:
                failures.append(type(e).__name__)
                cond.notify_all()

    threads = [threading.Thread(target=put, args=(p,), daemon=True) for p in payloads]
    for t in threads:
        t.start()
    start.wait()
    with cond:
        reached = cond.wait_for(lambda: len(acked) >= KILL_AFTER_ACKS or len(acked) + len(failures) + len(problems) == N,
                                timeout=180)
    srv.kill9()
    for t in threads:
        t.join(60)
    assert reached, f"only {len(acked)} PUTs acknowledged within 180 s"
    assert not problems, problems[:5]
    statuses = [f for f in failures if f.startswith("HTTP") and f != "HTTP 503"]
    assert not statuses, f"PUTs failed before the kill: {statuses[:5]}"
    assert len(acked) >= KILL_AFTER_ACKS
    print(f"acknowledged: {len(acked)}, cut off: {N - len(acked)}")

    srv.start()
    s3 = srv.client()
    versions = all_versions(s3)
    ids = [v["VersionId"] for v in versions]
    assert len(ids) == len(set(ids)), "a version id is listed twice"
    assert all(v["Key"] == KEY for v in versions)
    missing = sorted(set(acked) - set(ids))
    assert not missing, f"{len(missing)} acknowledged versions lost after kill -9: {missing[:5]}"
    for v in versions:
        body = s3.get_object(Bucket=BUCKET, Key=KEY, VersionId=v["VersionId"])["Body"].read()
        h = sha(body)
        assert h in sent, f"version {v['VersionId']} is not what any PUT sent ({len(body)} bytes)"
        if v["VersionId"] in acked:
            assert h == acked[v["VersionId"]], f"version {v['VersionId']} holds another PUT's bytes"
        assert v["Size"] == len(body)
        assert v["ETag"].strip('"') == hashlib.md5(body).hexdigest()
    latest = [v for v in versions if v["IsLatest"]]
    assert len(latest) == 1, f"{len(latest)} versions are the latest"
    current = s3.get_object(Bucket=BUCKET, Key=KEY)
    assert current["VersionId"] == latest[0]["VersionId"]
    # Every version has its blob on both sites, and nothing else is left.
    counts = wait_for_blob_counts(srv, len(versions))
    assert set(counts.values()) == {len(versions)}, f"blob files per site {counts}, versions {len(versions)}"
    srv.stop_ok()
