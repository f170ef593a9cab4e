"""`obhut serve` as a process: readiness, generated env files, clean shutdown,
restart on the same data dir, and orphan collection at startup."""

import fcntl
import re
import signal
import subprocess
import threading
import time

import requests

from conftest import SITES, assert_secret_file, blob_files, free_port, obhut_bin, tmp_entries, wait_for_blob_counts
from s3helpers import clean_env, md5_b64, multipart_etag, parse_env_file, expect_error

MIB = 1024 * 1024


def test_health_is_json(server):
    r = requests.get(f"{server.admin_url}/v1/health", timeout=5)
    assert r.status_code == 200
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    r.json()


def test_health_lists_the_background_workers(server):
    """Every background loop is a named worker, listed by the unauthenticated health
    endpoint with its state and runs, and nothing about any tenant."""
    expected = {
        "repair", "read-faults", "site-health", "scrubber", "key-revocations", "key-destruction",
        "policy-changes", "format-upgrade",
        "shred-purge", "quota-reclaim", "background-lease", "site-registry", "orphans", "lifecycle",
        "gateway-heartbeat",
    }
    deadline = time.monotonic() + 15
    while True:
        r = requests.get(f"{server.admin_url}/v1/health", timeout=5)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "ok", body
        workers = {w["name"]: w for w in body["workers"]}
        health = workers.get("site-health", {})
        if health.get("runs", 0) >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert set(workers) == expected, f"workers listed: {sorted(workers)}"
    for w in workers.values():
        assert w["state"] in ("waiting", "working"), w
        assert set(w) == {"name", "state", "runs", "last_run_ms", "last_error"}, w
        # A kind of error, a fixed word, never an error's text.
        assert w["last_error"] in (None, "catalog", "policy", "site", "copy", "no-place"), w
    assert health["runs"] >= 1 and health["last_run_ms"] > 0, (
        f"the site-health worker never finished a run: {health}"
    )
    assert "demo" not in r.text, r.text


def test_serve_help_names_the_flags():
    r = subprocess.run([str(obhut_bin()), "serve", "--help"], capture_output=True, text=True, timeout=30, env=clean_env())
    assert r.returncode == 0, r.stderr
    for flag in ("--data-dir", "--s3-addr", "--admin-addr"):
        assert flag in r.stdout, f"`obhut serve --help` does not mention {flag}:\n{r.stdout}"


def test_env_files(server):
    assert_secret_file(server.demo_env_path)
    assert_secret_file(server.tokens_env_path)
    demo, tokens = server.demo, server.tokens
    assert demo["AWS_ENDPOINT_URL"].rstrip("/") == server.s3_url
    assert demo["AWS_REGION"] == "de-1"
    assert tokens["OBHUT_ADMIN_URL"].rstrip("/") == server.admin_url
    secrets = [tokens[k] for k in tokens if k.endswith("_TOKEN")]
    assert len(secrets) == 5 and len(set(secrets)) == 5, "dev tokens must be distinct"
    # Both files are meant to be sourced by a shell (`set -a; . FILE`).
    for path, values in ((server.demo_env_path, demo), (server.tokens_env_path, tokens)):
        r = subprocess.run(
            ["bash", "-c", 'set -a; . "$1"; set +a; env -0', "sh", str(path)],
            capture_output=True,
            env={"PATH": "/usr/bin:/bin"},
            timeout=10,
        )
        assert r.returncode == 0, r.stderr
        sourced = dict(item.split("=", 1) for item in r.stdout.decode().split("\0") if "=" in item)
        for k, v in values.items():
            assert sourced.get(k) == v, f"{path.name}: sourcing gives {k}={sourced.get(k)!r}, expected {v!r}"


def test_restart_keeps_everything(fresh_server):
    srv = fresh_server.start()
    s3 = srv.client()
    s3.create_bucket(Bucket="keep")
    s3.put_object(Bucket="keep", Key="a/b.txt", Body=b"persist me", Metadata={"k": "v"}, ContentType="text/plain")
    upload = s3.create_multipart_upload(Bucket="keep", Key="pending")["UploadId"]
    part = s3.upload_part(Bucket="keep", Key="pending", UploadId=upload, PartNumber=1, Body=b"x" * 1000)
    demo_before = srv.demo_env_path.read_bytes()
    demo_mtime = srv.demo_env_path.stat().st_mtime_ns
    tokens_before = srv.tokens_env_path.read_bytes()
    srv.stop_ok()

    srv.start()
    assert srv.demo_env_path.read_bytes() == demo_before, "demo.env was rewritten on restart"
    assert srv.demo_env_path.stat().st_mtime_ns == demo_mtime, "demo.env was rewritten on restart"
    assert srv.tokens_env_path.read_bytes() == tokens_before, "dev-tokens.env changed on restart"
    s3 = srv.client()
    assert "keep" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    obj = s3.get_object(Bucket="keep", Key="a/b.txt")
    assert obj["Body"].read() == b"persist me"
    assert obj["Metadata"] == {"k": "v"} and obj["ContentType"] == "text/plain"
    uploads = s3.list_multipart_uploads(Bucket="keep").get("Uploads", [])
    assert [u["UploadId"] for u in uploads] == [upload]
    s3.complete_multipart_upload(
        Bucket="keep", Key="pending", UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert s3.get_object(Bucket="keep", Key="pending")["Body"].read() == b"x" * 1000

    # SIGINT is a clean shutdown too.
    srv.proc.send_signal(signal.SIGINT)
    assert srv.proc.wait(30) == 0, f"exit code after SIGINT: {srv.proc.returncode}\n{srv.log_tail()}"
    assert_secret_file(srv.demo_env_path)
    assert_secret_file(srv.tokens_env_path)


def test_every_put_is_on_both_sites_and_orphans_are_collected(fresh_server):
    srv = fresh_server.start()
    s3 = srv.client()
    b = "orphans"
    s3.create_bucket(Bucket=b)
    for site in SITES:
        assert blob_files(srv.site_dir(site)) == [], f"{site} has blobs before any PUT"

    s3.put_object(Bucket=b, Key="a", Body=b"version one")
    # Acknowledged means on both sites, right now.
    for site in SITES:
        assert len(blob_files(srv.site_dir(site))) == 1, f"{site} lacks the blob of an acknowledged PUT"
    s3.put_object(Bucket=b, Key="a", Body=b"version two")              # replaces a's blob
    s3.put_object(Bucket=b, Key="zero", Body=b"")                      # 0-byte objects are a blob too
    s3.put_object(Bucket=b, Key="gone", Body=b"deleted soon")
    s3.delete_object(Bucket=b, Key="gone")
    s3.put_object(Bucket=b, Key="d1", Body=b"1")
    s3.put_object(Bucket=b, Key="d2", Body=b"2")
    s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "d1"}, {"Key": "d2"}]})
    expect_error(s3.put_object, "BadDigest", 400, Bucket=b, Key="bad-md5", Body=b"abc", ContentMD5=md5_b64(b"xyz"))

    # Completed multipart upload: 2 parts; part 1 was uploaded twice.
    p1a, p1b, p2 = b"A" * (5 * MIB), b"B" * (5 * MIB), b"tail"
    up = s3.create_multipart_upload(Bucket=b, Key="mp")["UploadId"]
    s3.upload_part(Bucket=b, Key="mp", UploadId=up, PartNumber=1, Body=p1a)
    e1 = s3.upload_part(Bucket=b, Key="mp", UploadId=up, PartNumber=1, Body=p1b)["ETag"]
    e2 = s3.upload_part(Bucket=b, Key="mp", UploadId=up, PartNumber=2, Body=p2)["ETag"]
    s3.complete_multipart_upload(
        Bucket=b, Key="mp", UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
    )
    # Aborted upload: its part must go.
    ab = s3.create_multipart_upload(Bucket=b, Key="aborted")["UploadId"]
    s3.upload_part(Bucket=b, Key="aborted", UploadId=ab, PartNumber=1, Body=b"abandoned")
    s3.abort_multipart_upload(Bucket=b, Key="aborted", UploadId=ab)
    # Upload still in progress: its part must stay.
    ip = s3.create_multipart_upload(Bucket=b, Key="inprogress")["UploadId"]
    ep = s3.upload_part(Bucket=b, Key="inprogress", UploadId=ip, PartNumber=1, Body=b"keep me")["ETag"]

    expected = 1 + 1 + 2 + 1  # a, zero, mp (2 parts), inprogress part
    srv.stop_ok()
    srv.start()
    counts = wait_for_blob_counts(srv, expected)
    assert counts == {s: expected for s in SITES}, f"blob files per site after restart: {counts}, expected {expected}"
    for site in SITES:
        assert tmp_entries(srv.site_dir(site)) == [], f"{site}/tmp not emptied at startup"

    s3 = srv.client()
    assert s3.get_object(Bucket=b, Key="a")["Body"].read() == b"version two"
    assert s3.get_object(Bucket=b, Key="zero")["Body"].read() == b""
    mp = s3.get_object(Bucket=b, Key="mp")
    assert mp["ETag"] == multipart_etag([p1b, p2])
    assert mp["Body"].read() == p1b + p2
    for k in ("gone", "d1", "d2", "bad-md5"):
        expect_error(s3.head_object, "404", 404, Bucket=b, Key=k)
    s3.complete_multipart_upload(
        Bucket=b, Key="inprogress", UploadId=ip,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": ep}]},
    )
    assert s3.get_object(Bucket=b, Key="inprogress")["Body"].read() == b"keep me"
    srv.stop_ok()


def test_tmp_leftovers_are_removed_at_startup(fresh_server):
    srv = fresh_server.start()
    srv.stop_ok()
    for site in SITES:
        tmp = srv.site_dir(site) / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "leftover-from-crash").write_bytes(b"partial write")
    srv.start()
    deadline = time.monotonic() + 15
    while any(tmp_entries(srv.site_dir(s)) for s in SITES) and time.monotonic() < deadline:
        time.sleep(0.2)
    for site in SITES:
        assert tmp_entries(srv.site_dir(site)) == [], f"{site}/tmp still has {tmp_entries(srv.site_dir(site))}"
    srv.stop_ok()


def test_stray_blob_is_collected_at_startup(fresh_server):
    srv = fresh_server.start()
    s3 = srv.client()
    s3.create_bucket(Bucket="stray")
    s3.put_object(Bucket="stray", Key="real", Body=b"real data")
    srv.stop_ok()
    for site in SITES:
        d = srv.site_dir(site) / "blobs" / "ab"
        d.mkdir(parents=True, exist_ok=True)
        (d / ("ab" + "0" * 30)).write_bytes(b"not referenced by anything")
    srv.start()
    counts = wait_for_blob_counts(srv, 1)
    assert counts == {s: 1 for s in SITES}, f"stray blob not collected: {counts}"
    assert srv.client().get_object(Bucket="stray", Key="real")["Body"].read() == b"real data"
    srv.stop_ok()


def test_env_files_parse_as_plain_lines(server):
    # KEY=VALUE lines, nothing else that a plain parser would trip on.
    for path in (server.demo_env_path, server.tokens_env_path):
        values = parse_env_file(path.read_text())
        assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", k) for k in values), values.keys()


def run_second_serve(srv, timeout: float = 30):
    """`obhut serve` on `srv`'s data dir with ports of its own; returns the finished process."""
    return subprocess.run(
        [str(obhut_bin()), "serve", "--data-dir", str(srv.data_dir),
         "--s3-addr", f"127.0.0.1:{free_port()}", "--admin-addr", f"127.0.0.1:{free_port()}"],
        env=clean_env({}), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )


def test_a_second_server_on_the_same_data_dir_is_refused(fresh_server):
    srv = fresh_server.start()
    r = run_second_serve(srv)
    assert r.returncode != 0, f"a second server started on a data dir in use: {r.stdout}"
    assert "another obhut process is using" in r.stderr, r.stderr
    assert "panicked" not in r.stderr
    # The first server is untouched.
    assert srv.running()
    srv.client().list_buckets()
    srv.stop_ok()


def test_a_lock_held_for_a_moment_is_not_another_server(fresh_server):
    """A process forked between fork and exec shares the data dir's lock for a
    moment; that must not keep the server from starting."""
    srv = fresh_server.start()
    srv.stop_ok()
    lock = open(srv.data_dir / ".lock", "a")
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    release = threading.Timer(0.5, lambda: (fcntl.flock(lock, fcntl.LOCK_UN), lock.close()))
    release.start()
    try:
        srv.start()
    finally:
        release.join()
    srv.client().list_buckets()
    srv.stop_ok()
