"""The auditor's verification in the browser (crates/console/assets/verify.js), trusting only
the log key pinned in the browser:

- its unit tests in Node.js, against the public test vectors the Rust verifier uses;
- the public log resources (checkpoint, key, hash tiles) answer any origin, entry bundles and
  everything that needs a bearer do not;
- in Chromium: the auditor's console page verifies the checkpoint, the consistency with the
  checkpoint it kept after more entries are appended, and the inclusion of the entries shown;
  then a proxy between the browser and the admin listener alters the checkpoint (root, size,
  re-signed with another key, an older one replayed) or a hash tile, and the page flags
  exactly that;
- the same with the standalone verifier opened from file:// against the proxy's URL; the
  committed file is what scripts/build-verifier builds, and its SHA-256 is the one published
  in docs/verifier.md."""

from __future__ import annotations

import base64
import hashlib
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import requests

from conftest import ObhutServer, enrol, new_tenant
from s3helpers import unique_name
from test_console_browser import Visit, browser  # noqa: F401  (the Chromium fixture)
from test_log import _G, _L, _P, _mul

REPO = Path(__file__).resolve().parents[2]
VERIFIER = REPO / "docs" / "verifier" / "obhut-verify.html"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server of this module's own, so that its log stays under 256 entries: the proxy's
    altered hash tile (level 0, tile 0) is then one the signed root is computed from. On the
    shared server's longer log the root comes from the level-1 tile, and an altered level-0
    tile shows only in the inclusion proofs of its entries."""
    base = tmp_path_factory.mktemp("obhut-verifier")
    srv = ObhutServer(base / "data", base / "serve.log")
    srv.start()
    yield srv
    code = srv.stop()
    assert code == 0, f"`obhut serve` exited with {code} after SIGTERM (expected 0).\n{srv.log_tail()}"


# ---------------------------------------------------------------- Node.js unit tests of verify.js


def test_verify_js_unit_tests_pass_in_node():
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js (node, 20 or newer; Debian package nodejs) is not installed: the verifier's unit tests "
                    "need it", pytrace=False)
    r = subprocess.run([node, "--test", str(REPO / "tests" / "js")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    assert "# fail 0" in r.stdout and "# pass 0" not in r.stdout, r.stdout[-2000:]


# ---------------------------------------------------------------- the standalone file and its published hash


def test_the_committed_standalone_verifier_is_built_from_verify_js_and_its_hash_is_published():
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "build-verifier"), "--check"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    digest = hashlib.sha256(VERIFIER.read_bytes()).hexdigest()
    assert r.stdout.strip() == digest
    docs = (REPO / "docs" / "verifier.md").read_text()
    published = re.findall(r"\b[0-9a-f]{64}\b", docs)
    assert published == [digest] * len(published) and published, \
        f"docs/verifier.md must publish {digest} (and no other SHA-256): {published}"
    verify_js = (REPO / "crates" / "console" / "assets" / "verify.js").read_text()
    assert verify_js.rstrip("\n") in VERIFIER.read_text()
    # The release step prints the line a release publishes, the same hash.
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "build-verifier"), "--release"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == f"{digest}  obhut-verify.html\n", (r.stdout, r.stderr)


# ---------------------------------------------------------------- CORS: public resources only


def test_public_log_resources_answer_any_origin_and_nothing_else_does(server):
    origin = {"Origin": "null"}
    size = int(requests.get(server.admin_url + "/log/checkpoint", timeout=30).text.split("\n")[1])
    width = min(size, 256)
    tile = "000" + ("" if width == 256 else f".p/{width}")
    for path in ("/log/checkpoint", "/log/key", f"/log/tile/0/{tile}", "/log/tile/0/x999/000"):
        r = requests.get(server.admin_url + path, headers=origin, timeout=30)
        assert r.headers.get("access-control-allow-origin") == "*", (path, r.status_code, dict(r.headers))
        assert r.status_code == (404 if "x999" in path else 200), (path, r.status_code)
    auditor = {**origin, **server.auth("auditor")}
    for path, headers, status in (
        (f"/log/tile/entries/{tile}", auditor, 200),
        (f"/log/tile/entries/{tile}", origin, 401),
        ("/v1/log/entries", auditor, 200),
        ("/v1/whoami", auditor, 200),
        ("/v1/whoami", origin, 401),
        ("/console/auditor", origin, 303),
    ):
        r = requests.get(server.admin_url + path, headers=headers, timeout=30, allow_redirects=False)
        assert r.status_code == status, (path, r.status_code, r.text[:200])
        assert "access-control-allow-origin" not in r.headers, (path, dict(r.headers))


# ---------------------------------------------------------------- a test proxy that alters the log


def _encode_point(pt) -> bytes:
    x, y, z, _ = pt
    zi = pow(z, _P - 2, _P)
    x, y = x * zi % _P, y * zi % _P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def ed25519_sign(seed: bytes, message: bytes) -> tuple[bytes, bytes]:
    """RFC 8032 Ed25519: (public key, signature)."""
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little") & ((1 << 254) - 8) | (1 << 254)
    public = _encode_point(_mul(a, _G))
    r = int.from_bytes(hashlib.sha512(h[32:] + message).digest(), "little") % _L
    big_r = _encode_point(_mul(r, _G))
    k = int.from_bytes(hashlib.sha512(big_r + public + message).digest(), "little") % _L
    return public, big_r + ((r + k * a) % _L).to_bytes(32, "little")


def resigned(note: str, seed: bytes) -> tuple[str, str]:
    """`note` with another root, signed by another key of the same name: (note, that key's vkey)."""
    lines = note.split("\n")
    name = lines[0]
    text = "\n".join([name, lines[1], base64.b64encode(b"\x42" * 32).decode()]) + "\n"
    public, sig = ed25519_sign(seed, text.encode())
    raw = b"\x01" + public
    key_id = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    vkey = f"{name}+{key_id.hex()}+{base64.b64encode(raw).decode()}"
    return f"{text}\n\u2014 {name} {base64.b64encode(key_id + sig).decode()}\n", vkey


class LogProxy:
    """An HTTP proxy in front of the admin listener that passes everything through, except
    what `mode` says to alter: "root" or "size" (the checkpoint's line, not re-signed),
    "resign" (another root, signed by another key, which /log/key then serves), "replay"
    (serve `replayed`, an older genuine checkpoint) or "tile" (flip a bit of the first hash of
    level-0 hash tile 0)."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.mode: str | None = None
        self.replayed: str | None = None
        self.altered: list[str] = []
        self.seed = os.urandom(32)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self.forward()

            def do_POST(self):
                self.forward()

            def forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "connection", "content-length", "accept-encoding")}
                req = urllib.request.Request(proxy.upstream + self.path, data=body, headers=headers,
                                             method=self.command)
                opener = urllib.request.build_opener(NoRedirect)
                try:
                    resp = opener.open(req, timeout=60)
                except urllib.error.HTTPError as e:
                    resp = e
                status, data = resp.status if hasattr(resp, "status") else resp.code, resp.read()
                out_headers = [(k, v) for k, v in resp.headers.items()
                               if k.lower() not in ("content-length", "connection", "transfer-encoding")]
                data = proxy.alter(self.path, status, data)
                self.send_response(status)
                for k, v in out_headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kw):
                return None

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def alter(self, path: str, status: int, data: bytes) -> bytes:
        mode = self.mode
        if status != 200 or mode is None:
            return data
        if path == "/log/checkpoint":
            note = data.decode()
            lines = note.split("\n")
            if mode == "root":
                lines[2] = base64.b64encode(b"\x42" * 32).decode()
                note = "\n".join(lines)
            elif mode == "size":
                lines[1] = str(int(lines[1]) + 1)
                note = "\n".join(lines)
            elif mode == "resign":
                note = resigned(note, self.seed)[0]
            elif mode == "replay":
                note = self.replayed
            else:
                return data
            self.altered.append(path)
            return note.encode()
        if path == "/log/key" and mode == "resign":
            cp = requests.get(self.upstream + "/log/checkpoint", timeout=30).text
            self.altered.append(path)
            return (resigned(cp, self.seed)[1] + "\n").encode()
        if mode == "tile" and path.startswith("/log/tile/0/000"):
            self.altered.append(path)
            return bytes([data[0] ^ 1]) + data[1:]
        return data

    def close(self):
        self.httpd.shutdown()


@pytest.fixture
def proxy(server):
    p = LogProxy(server.admin_url)
    yield p
    p.close()


# ---------------------------------------------------------------- helpers


def more_entries(server) -> None:
    """Entries made by ordinary actions: a tenant and its admin, its S3 keys, a bucket, an
    object written and read (key releases), an auditor enrolled."""
    t = new_tenant(server, "cv" + os.urandom(4).hex())
    client = server.client(t["AWS_ACCESS_KEY_ID"], t["AWS_SECRET_ACCESS_KEY"])
    bucket = unique_name("verify")
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="k", Body=b"v" * 1024)
    client.get_object(Bucket=bucket, Key="k")["Body"].read()
    enrol(server, "aud-" + os.urandom(3).hex(), "auditor")


def log_size(server) -> int:
    return int(requests.get(server.admin_url + "/log/checkpoint", timeout=30).text.split("\n")[1])


def checks_of(page) -> dict[str, str]:
    """The page's checks: {check: code} (inclusion checks are per entry, not here)."""
    return page.eval_on_selector_all(
        "#verify-results li:not([data-check=inclusion])",
        "els => Object.fromEntries(els.map(e => [e.dataset.check, e.dataset.code]))")


def audit_page(v: Visit, base: str, want: str) -> dict[str, str]:
    """Loads the auditor's page through `base` and waits for its verification to end."""
    v.page.goto(f"{base}/console/auditor")
    v.page.wait_for_selector("#verify[data-state=verified], #verify[data-state=flagged], #verify[data-state=error]",
                             timeout=60_000)
    state = v.page.get_attribute("#verify", "data-state")
    assert state == want, (state, v.page.text_content("#verify-results"), v.page.text_content("#verify-summary"))
    return checks_of(v.page)


def sign_in_via(v: Visit, base: str, token: str) -> None:
    v.page.goto(f"{base}/console/")
    v.page.fill("#bearer", token)
    with v.page.expect_navigation():
        v.page.click("button[type=submit]")
    assert v.page.url.endswith("/console/auditor"), v.page.url


def verify_all_entries(v: Visit) -> dict[int, str]:
    v.page.click("#verify-all")
    v.page.wait_for_selector("#verify-all-state[data-state=verified], #verify-all-state[data-state=flagged]",
                             timeout=120_000)
    return {int(i): c for i, c in v.page.eval_on_selector_all(
        "tr.entry[data-entry]",
        "rows => rows.map(r => [r.dataset.index, r.querySelector('.inclusion-state').dataset.code])")}


# ---------------------------------------------------------------- the console's auditor page


def test_the_auditor_page_verifies_and_flags_what_a_proxy_alters(server, browser, proxy):  # noqa: F811
    more_entries(server)
    v = Visit(browser)
    try:
        sign_in_via(v, proxy.url, server.token("auditor"))
        # First visit: the key the log serves is pinned, the checkpoint verified and kept.
        size1 = log_size(server)
        first = audit_page(v, proxy.url, "verified")
        assert first == {"key": "key-pinned", "checkpoint": "verified", "tiles": "tiles-match",
                         "consistency": "no-kept"}, first
        vkey = requests.get(server.admin_url + "/log/key", timeout=30).text.strip()
        assert v.page.text_content("#pinned-key") == vkey
        kept = v.page.input_value("#kept")
        assert kept == requests.get(server.admin_url + "/log/checkpoint", timeout=30).text
        assert f"{size1} entries" in v.page.text_content("li[data-check=checkpoint]")
        assert v.problems == [], v.problems

        # More entries: consistency with the kept checkpoint is proved; every entry shown is included.
        more_entries(server)
        size2 = log_size(server)
        assert size2 > size1
        again = audit_page(v, proxy.url, "verified")
        assert again == {"key": "key-matches", "checkpoint": "verified", "tiles": "tiles-match",
                         "consistency": "consistent"}, again
        text = v.page.text_content("li[data-check=consistency]")
        assert f"{size1} entries" in text and f"{size2} entries" in text, text
        included = verify_all_entries(v)
        assert len(included) >= size1 and set(included.values()) == {"included"}, included
        assert v.page.get_attribute("#verify-all-state", "data-state") == "verified"
        # One entry alone, with its own button.
        v.page.click("tr.entry[data-index='3'] button.verify-one")
        v.page.wait_for_selector("tr.entry[data-index='3'] .inclusion-state[data-state=ok]")
        assert v.problems == [], v.problems
        kept_good = v.page.input_value("#kept")

        # The proxy alters the checkpoint or a tile: each is flagged as exactly that, and the
        # kept checkpoint stays the last good one.
        proxy.replayed = kept  # the genuine, signed checkpoint of the first visit: older
        cases = {
            "root": {"key": "key-matches", "checkpoint": "bad-signature", "tiles": "skipped", "consistency": "skipped"},
            "size": {"key": "key-matches", "checkpoint": "bad-signature", "tiles": "skipped", "consistency": "skipped"},
            "resign": {"key": "key-changed", "checkpoint": "not-signed", "tiles": "skipped", "consistency": "skipped"},
            "replay": {"key": "key-matches", "checkpoint": "verified", "tiles": "tiles-match", "consistency": "rollback"},
            "tile": {"key": "key-matches", "checkpoint": "verified", "tiles": "tiles-mismatch", "consistency": "same"},
        }
        for mode, want in cases.items():
            proxy.mode = mode
            proxy.altered.clear()
            got = audit_page(v, proxy.url, "flagged")
            assert got == want, (mode, got, v.page.text_content("#verify-results"))
            assert proxy.altered, f"{mode}: the proxy altered nothing"
            assert v.page.text_content("#verify-summary").startswith("FLAGGED: checks failed."), mode
            assert v.page.input_value("#kept") == kept_good, f"{mode}: an altered checkpoint was kept"
            assert v.page.text_content("#pinned-key") == vkey, f"{mode}: the pinned key changed"
        flagged = v.page.text_content("#verify-results")
        assert "TILES ALTERED" in flagged, flagged
        # With the altered tile, entry 0's own proof (which never uses its stored leaf hash)
        # still verifies; every other entry of that tile is not in the signed log.
        inclusion = verify_all_entries(v)
        assert inclusion[0] == "included", inclusion
        assert {i: c for i, c in inclusion.items() if 0 < i < min(size2, 256)} == \
            {i: "not-included" for i in inclusion if 0 < i < min(size2, 256)}, inclusion
        assert v.page.get_attribute("#verify-all-state", "data-state") == "flagged"

        # The proxy passes everything through again: verified, the log unchanged since kept.
        proxy.mode = None
        assert audit_page(v, proxy.url, "verified")["consistency"] == "same"
    finally:
        v.close()


# ---------------------------------------------------------------- the standalone file, from file://


def standalone_run(v: Visit, want: str) -> dict[str, str]:
    v.page.click("#run")
    v.page.wait_for_selector(
        "#verify-summary[data-state=verified], #verify-summary[data-state=flagged], #verify-summary[data-state=error]",
        timeout=60_000)
    state = v.page.get_attribute("#verify-summary", "data-state")
    assert state == want, (state, v.page.text_content("#verify-summary"), v.page.text_content("#verify-results"))
    return v.page.eval_on_selector_all(
        "#verify-results li", "els => Object.fromEntries(els.map(e => [e.dataset.check, e.dataset.code]))")


def test_the_standalone_verifier_from_disk_verifies_and_flags_what_a_proxy_alters(server, browser, proxy):  # noqa: F811
    more_entries(server)
    vkey = requests.get(server.admin_url + "/log/key", timeout=30).text.strip()
    kept = requests.get(server.admin_url + "/log/checkpoint", timeout=30).text
    more_entries(server)
    entries = requests.get(server.admin_url + "/v1/log/entries?from=5", headers=server.auth("auditor"),
                           timeout=30).json()["entries"]
    entry = entries[0]
    v = Visit(browser)
    try:
        v.page.goto(VERIFIER.as_uri())
        assert v.page.url.startswith("file://")
        v.page.fill("#log-url", proxy.url + "/log")
        v.page.fill("#key", vkey)
        v.page.fill("#kept", kept)
        v.page.fill("#entry-index", str(entry["index"]))
        v.page.fill("#entry-text", entry["entry"])
        got = standalone_run(v, "verified")
        assert got == {"key": "key-matches", "checkpoint": "verified", "tiles": "tiles-match",
                       "consistency": "consistent", "inclusion": "included"}, got
        current = requests.get(server.admin_url + "/log/checkpoint", timeout=30).text
        assert v.page.text_content("#current-checkpoint") == current
        assert v.page.input_value("#kept") == current, "the verified checkpoint is kept"
        assert v.problems == [], v.problems
        # obhut's Rust verifier agrees on the same log, key and kept checkpoint.
        kept_file = Path(server.data_dir) / f"kept-{os.urandom(3).hex()}.checkpoint"
        kept_file.write_text(kept)
        out = server.cli_ok("log", "verify", "--key", vkey, "--since", str(kept_file),
                            token=server.token("auditor"))
        size = int(current.split("\n")[1])
        kept_size = int(kept.split("\n")[1])
        assert f"{size} entries" in out and f"earlier checkpoint of size {kept_size}" in out, out
        assert f"{size} entries" in v.page.text_content("li[data-check=checkpoint]")

        # An entry that is not the one logged at its index.
        v.page.fill("#entry-text", entry["entry"].replace("}", ', "x": 1}', 1))
        assert standalone_run(v, "flagged")["inclusion"] == "not-included"
        v.page.fill("#entry-text", entry["entry"])

        # The proxy alters what the log serves.
        proxy.replayed = kept
        for mode, want in {
            "root": {"checkpoint": "bad-signature"},
            "size": {"checkpoint": "bad-signature"},
            "resign": {"key": "key-changed", "checkpoint": "not-signed"},
            "replay": {"checkpoint": "verified", "consistency": "rollback"},
            "tile": {"tiles": "tiles-mismatch", "inclusion": "not-included"},
        }.items():
            proxy.mode = mode
            proxy.altered.clear()
            got = standalone_run(v, "flagged")
            assert {k: got[k] for k in want} == want, (mode, got)
            assert proxy.altered, mode
            assert v.page.input_value("#kept") == current, f"{mode}: an altered checkpoint was kept"
        proxy.mode = None
        assert standalone_run(v, "verified")["consistency"] == "same"

        # Opened again, it remembers the log, the key and the kept checkpoint.
        v.page.goto(VERIFIER.as_uri())
        assert v.page.input_value("#log-url") == proxy.url + "/log"
        assert v.page.input_value("#key") == vkey
        assert v.page.input_value("#kept") == current
    finally:
        v.close()


def test_a_pasted_checkpoint_is_checked_for_consistency_in_a_browser_that_kept_none(server, browser, proxy):  # noqa: F811
    older = requests.get(server.admin_url + "/log/checkpoint", timeout=30).text
    more_entries(server)
    v = Visit(browser)
    try:
        sign_in_via(v, proxy.url, server.token("auditor"))
        v.page.wait_for_selector("#verify[data-state=verified]", timeout=60_000)
        assert checks_of(v.page)["consistency"] == "no-kept"
        # A checkpoint kept elsewhere (older), pasted.
        v.page.fill("#kept", older)
        v.page.click("#verify-run")
        v.page.wait_for_selector("#verify[data-state=verified] li[data-check=consistency][data-code=consistent]",
                                 timeout=60_000)
        # A pasted "checkpoint" that the log's key did not sign is not evidence of anything.
        forged, _ = resigned(older, os.urandom(32))
        v.page.fill("#kept", forged)
        v.page.click("#verify-run")
        v.page.wait_for_selector("#verify[data-state=flagged]", timeout=60_000)
        assert checks_of(v.page) == {"key": "key-matches", "checkpoint": "verified", "tiles": "tiles-match",
                                     "consistency": "kept-not-signed"}
        assert v.problems == [], v.problems
    finally:
        v.close()


def test_the_auditor_page_in_german(server, browser):  # noqa: F811
    v = Visit(browser, lang="de-DE")
    try:
        v.sign_in(server, server.token("auditor"))
        v.page.wait_for_selector("#verify[data-state=verified]", timeout=60_000)
        assert v.page.text_content("#verify h2") == "Prüfung in diesem Browser"
        assert v.page.text_content("#verify-summary") == "Geprüft: nichts Auffälliges gefunden."
        # The checks speak German too, keeping a flag's English words in brackets.
        assert v.page.text_content("li[data-check=checkpoint]").startswith("\u2713 Checkpoint geprüft: mit dem festgelegten Schlüssel signiert;")
        assert "Von einem früheren Besuch ist kein Checkpoint aufbewahrt" in v.page.text_content("li[data-check=consistency]")
        v.page.click("#verify-all")
        v.page.wait_for_selector("#verify-all-state[data-state=verified]", timeout=60_000)
        assert " von " in v.page.text_content("#verify-all-state") and "Einträgen geprüft." in v.page.text_content("#verify-all-state")
        assert "Aufnahme in das signierte Protokoll" in v.page.text_content("tr.entry[data-index='0'] .inclusion-state")
        assert v.problems == [], v.problems
    finally:
        v.close()


def test_the_standalone_verifier_in_german(server, browser, proxy):  # noqa: F811
    more_entries(server)
    vkey = requests.get(server.admin_url + "/log/key", timeout=30).text.strip()
    v = Visit(browser, lang="de-DE")
    try:
        # The browser's language chooses German; the page's own words and the checks' follow.
        v.page.goto(VERIFIER.as_uri())
        assert v.page.text_content("h1") == "obhut-Protokollprüfer"
        assert v.page.text_content("#run") == "Prüfen"
        v.page.fill("#log-url", proxy.url + "/log")
        v.page.fill("#key", vkey)
        v.page.fill("#kept", "")
        assert standalone_run(v, "verified")["checkpoint"] == "verified"
        assert v.page.text_content("#verify-summary") == "Geprüft: nichts Falsches gefunden."
        assert "Checkpoint geprüft: mit dem festgelegten Schlüssel signiert" in \
            v.page.text_content("li[data-check=checkpoint]")
        # A flag in German keeps its English words.
        proxy.mode = "tile"
        proxy.altered.clear()
        assert standalone_run(v, "flagged")["tiles"] == "tiles-mismatch"
        assert v.page.text_content("li[data-check=tiles]").startswith("\u2717 KACHELN VERÄNDERT (TILES ALTERED): ")
        assert v.page.text_content("#verify-summary").startswith("BEANSTANDET (FLAGGED): ")
        proxy.mode = None
        # The switch back to English is kept for the next visit.
        v.page.click("button[data-lang=en]")
        assert v.page.text_content("h1") == "obhut log verifier"
        v.page.goto(VERIFIER.as_uri())
        assert v.page.text_content("#run") == "Verify"
        assert standalone_run(v, "verified")
        assert v.page.text_content("#verify-summary") == "Verified: nothing wrong found."
        assert v.problems == [], v.problems
    finally:
        v.close()
