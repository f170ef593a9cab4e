"""The auditor's verification in the browser (crates/console/assets/verify.js): its unit
tests in Node.js against the public test vectors the Rust verifier uses."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_verify_js_unit_tests_pass_in_node():
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js (node, 20 or newer) is not installed: the verifier's unit tests need it", pytrace=False)
    r = subprocess.run([node, "--test", str(REPO / "tests" / "js")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    assert "# fail 0" in r.stdout and "# pass 0" not in r.stdout, r.stdout[-2000:]
