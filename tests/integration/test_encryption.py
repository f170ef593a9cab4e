"""Encryption at rest, seen from outside: no plaintext (object bytes, user
metadata, Content-Type/Disposition, object names) in any file the server
writes or in its log; every blob is an `obhB` blob; and a replica that is
damaged on one site is detected and the other site serves the right bytes,
while damage on every site never yields wrong bytes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from pathlib import Path

import pytest

from conftest import (
    SITES,
    assert_secret_file,
    blob_files,
    blob_path,
    blob_snapshot,
    get_streaming,
    new_blob,
)
from s3helpers import unique_name

KIB = 1024
MIB = 1024 * KIB
SEG = 64 * KIB  # plaintext bytes per segment
TAG = 16
HEADER = 16
STRIDE = SEG + TAG  # stored bytes per full segment


def stored_size(n: int) -> int:
    """Size of the blob of an n-byte part: header plus segments (an empty part
    still has one segment)."""
    segments = max(1, -(-n // SEG))
    return HEADER + n + segments * TAG


def body_with(marker: bytes, n: int) -> bytes:
    """n bytes in which `marker` recurs between random filler."""
    out = bytearray()
    while len(out) < n:
        out += marker + os.urandom(173)
    return bytes(out[:n])


def encodings(marker: bytes) -> dict[str, bytes]:
    """The marker raw, hex-encoded and base64-encoded (at every alignment,
    trimmed to the characters that do not depend on neighbouring bytes)."""
    forms = {"raw": marker, "hex": marker.hex().encode(), "HEX": marker.hex().upper().encode()}
    for shift in range(3):
        b64 = base64.b64encode(b"\0" * shift + marker)
        lead = (shift * 8 + 5) // 6  # characters touched by the padding bytes
        core = b64[lead:-4]
        forms[f"b64/{shift}"] = core
        forms[f"b64url/{shift}"] = core.replace(b"+", b"-").replace(b"/", b"_")
    return forms


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# ---------------------------------------------------------------- Shamir (GF(2^8), x^8+x^4+x^3+x^2+1)


def _gmul(a: int, b: int) -> int:
    r = 0
    while b:
        if b & 1:
            r ^= a
        a <<= 1
        if a & 0x100:
            a ^= 0x11D
        b >>= 1
    return r


def _ginv(a: int) -> int:
    r = 1
    for _ in range(254):
        r = _gmul(r, a)
    return r


SHARE_PREFIX = "obhut-share-v1-"


def share_bytes(share: str) -> bytes:
    payload = share.strip()[len(SHARE_PREFIX):]
    return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))


def combine_shares(shares: list[str]) -> bytes:
    """Lagrange interpolation at 0 of shares (x byte, then y bytes)."""
    pts = [(b[0], b[1:]) for b in map(share_bytes, shares)]
    out = bytearray(len(pts[0][1]))
    for i, (xi, yi) in enumerate(pts):
        num = den = 1
        for j, (xj, _) in enumerate(pts):
            if i != j:
                num = _gmul(num, xj)
                den = _gmul(den, xi ^ xj)
        coeff = _gmul(num, _ginv(den))
        for k, y in enumerate(yi):
            out[k] ^= _gmul(y, coeff)
    return bytes(out)


def secret_forms(raw: bytes) -> set[str]:
    return {
        raw.hex(),
        raw.hex().upper(),
        base64.b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }


# ---------------------------------------------------------------- 1. no plaintext at rest


def test_no_plaintext_at_rest(private_server_factory):
    srv = private_server_factory()
    s3 = srv.client()
    tag = os.urandom(6).hex()
    content_marker = f"contentmarker-{tag}-plaintext-must-not-rest".encode()
    meta_marker = f"metamarker-{tag}-user-metadata-sealed"
    header_marker = f"headermarker-{tag}-content-type-sealed"
    meta_name = f"secretname{tag}"
    markers = {
        "content": content_marker,
        "metadata": meta_marker.encode(),
        "metadata name": meta_name.encode(),
        "content-type/disposition": header_marker.encode(),
    }
    bucket = unique_name("atrest")
    s3.create_bucket(Bucket=bucket)
    meta = {meta_name: meta_marker, "note": meta_marker}
    ctype = f"application/x-{header_marker}"
    cdisp = f'attachment; filename="{header_marker}.bin"'
    key = lambda what: f"objname-{tag}-{what}/{os.urandom(8).hex()}.dat"  # noqa: E731

    expected: dict[str, bytes] = {}  # key -> content
    part_sizes: list[int] = []

    # single PUT, small and > 3 segments
    small_key, small = key("small"), body_with(content_marker, 1000)
    s3.put_object(Bucket=bucket, Key=small_key, Body=small, Metadata=meta, ContentType=ctype, ContentDisposition=cdisp)
    expected[small_key] = small
    part_sizes.append(len(small))
    big_key, big = key("big"), body_with(content_marker, 3 * SEG + 40_000)
    s3.put_object(Bucket=bucket, Key=big_key, Body=big, Metadata=meta, ContentType=ctype, ContentDisposition=cdisp)
    expected[big_key] = big
    part_sizes.append(len(big))

    # multipart, 5 MiB parts
    mp_key = key("multipart")
    mp_parts = [body_with(content_marker, 5 * MIB), body_with(content_marker, MIB + 123)]
    up = s3.create_multipart_upload(Bucket=bucket, Key=mp_key, Metadata=meta, ContentType=ctype, ContentDisposition=cdisp)
    done = []
    for n, data in enumerate(mp_parts, 1):
        r = s3.upload_part(Bucket=bucket, Key=mp_key, UploadId=up["UploadId"], PartNumber=n, Body=data)
        done.append({"PartNumber": n, "ETag": r["ETag"]})
    s3.complete_multipart_upload(Bucket=bucket, Key=mp_key, UploadId=up["UploadId"], MultipartUpload={"Parts": done})
    expected[mp_key] = b"".join(mp_parts)
    part_sizes += [len(p) for p in mp_parts]

    # CopyObject with replaced metadata
    copy_key = key("copy")
    s3.copy_object(
        Bucket=bucket, Key=copy_key, CopySource={"Bucket": bucket, "Key": big_key},
        MetadataDirective="REPLACE", Metadata=meta, ContentType=ctype, ContentDisposition=cdisp,
    )
    expected[copy_key] = big

    # UploadPartCopy: a 5 MiB range of the multipart object, then the small object
    upc_key = key("partcopy")
    up2 = s3.create_multipart_upload(Bucket=bucket, Key=upc_key, Metadata=meta, ContentType=ctype, ContentDisposition=cdisp)
    r1 = s3.upload_part_copy(
        Bucket=bucket, Key=upc_key, UploadId=up2["UploadId"], PartNumber=1,
        CopySource={"Bucket": bucket, "Key": mp_key}, CopySourceRange=f"bytes=0-{5 * MIB - 1}",
    )
    r2 = s3.upload_part_copy(
        Bucket=bucket, Key=upc_key, UploadId=up2["UploadId"], PartNumber=2,
        CopySource={"Bucket": bucket, "Key": small_key},
    )
    s3.complete_multipart_upload(
        Bucket=bucket, Key=upc_key, UploadId=up2["UploadId"],
        MultipartUpload={"Parts": [
            {"PartNumber": 1, "ETag": r1["CopyPartResult"]["ETag"]},
            {"PartNumber": 2, "ETag": r2["CopyPartResult"]["ETag"]},
        ]},
    )
    expected[upc_key] = expected[mp_key][: 5 * MIB] + small

    # a multipart upload still open when the server stops
    open_key = key("open-upload")
    open_part = body_with(content_marker, 100_000)
    up3 = s3.create_multipart_upload(Bucket=bucket, Key=open_key, Metadata=meta, ContentType=ctype, ContentDisposition=cdisp)
    open_etag = s3.upload_part(Bucket=bucket, Key=open_key, UploadId=up3["UploadId"], PartNumber=1, Body=open_part)["ETag"]
    part_sizes.append(len(open_part))

    # sanity before the scan: everything reads back now
    for k, data in expected.items():
        assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == data, f"{k} read back wrong before restart"

    srv.stop_ok()

    # ---- scan every file the server wrote, and its log
    files = all_files(srv.data_dir) + [srv.log_path]
    assert any(p.name == "catalog.db" for p in files), [str(p) for p in files]
    hits = []
    for path in files:
        data = path.read_bytes()
        lowered = data.lower()
        for what, marker in markers.items():
            for form, needle in encodings(marker).items():
                # the raw marker case-insensitively (headers may be stored lowercased)
                found = needle.lower() in lowered if form == "raw" else needle in data
                if found:
                    hits.append(f"{what} marker ({form}) in {path.relative_to(srv.data_dir.parent)}")
    assert not hits, "plaintext found at rest:\n" + "\n".join(sorted(set(hits)))

    # object names (and the bucket name) appear in no site file
    names = [k.encode() for k in [*expected, open_key]] + [bucket.encode()]
    site_files = [p for s in SITES for p in all_files(srv.site_dir(s))]
    name_hits = [
        f"{n.decode()} in {p.relative_to(srv.data_dir)}" for p in site_files for n in names if n in p.read_bytes()
    ]
    assert not name_hits, "object/bucket names found on sites:\n" + "\n".join(name_hits)

    # every blob is an encrypted blob in the documented format
    expected_sizes = {stored_size(n) for n in part_sizes}
    for s in SITES:
        sizes = set()
        for rel in blob_files(srv.site_dir(s)):
            p = blob_path(srv, s, rel)
            head = p.read_bytes()[:HEADER]
            assert head[:4] == b"obhB", f"{s}/{rel} does not start with obhB: {head!r}"
            assert head[4] == 1 and head[5] == 16, f"{s}/{rel}: header version/segment size {head[4]}/{head[5]}, expected 1/16"
            sizes.add(p.stat().st_size)
        # one blob per part; copies may be new blobs of a size already expected
        assert expected_sizes <= sizes, f"{s}: blob sizes {sorted(sizes)} lack {sorted(expected_sizes - sizes)}"
        assert sizes <= expected_sizes, f"{s}: unexpected blob sizes {sorted(sizes - expected_sizes)} (expected {sorted(expected_sizes)})"

    # the keystore holds no share and no master key; the shares file is private
    trustee = srv.data_dir / "trustee"
    assert_secret_file(trustee / "keystore.json")
    assert_secret_file(trustee / "dev-unseal-shares")
    shares = [ln.strip() for ln in (trustee / "dev-unseal-shares").read_text().splitlines() if ln.strip()]
    assert len(shares) == 2 and len(set(shares)) == 2, f"dev-unseal-shares should hold two distinct shares, has {shares!r}"
    ks_text = (trustee / "keystore.json").read_text()
    share_forms = set()
    for sh in shares:
        share_forms |= {sh, sh[len(SHARE_PREFIX):]} | secret_forms(share_bytes(sh)) | secret_forms(share_bytes(sh)[1:])
    tokens = set(re.findall(r"[0-9a-fA-F]{64}", ks_text)) | set(re.findall(r"[A-Za-z0-9+/_=-]{16,}", ks_text))
    assert not tokens & share_forms, f"keystore.json contains an unseal share: {tokens & share_forms}"
    assert not [f for f in share_forms if len(f) >= 16 and f in ks_text], "keystore.json contains an unseal share"

    # The two development shares combine to the master key (Shamir over GF(2^8));
    # when its check value says so, the master key itself must be nowhere at rest.
    master = combine_shares(shares)
    kcv = re.search(r'"master_kcv"\s*:\s*"([0-9a-f]+)"', ks_text)
    if kcv and hmac.new(master, b"obhut key-check value v1", hashlib.sha256).hexdigest().startswith(kcv.group(1)):
        needles = [master] + [f.encode() for f in secret_forms(master)]
        leaks = [str(p) for p in files if any(n in p.read_bytes() for n in needles)]
        assert not leaks, f"the master key is stored at rest in {leaks}"

    # ---- restart: everything reads back byte-identical, with its metadata
    srv.start()
    s3 = srv.client()
    for k, data in expected.items():
        got = s3.get_object(Bucket=bucket, Key=k)
        body = got["Body"].read()
        assert len(body) == len(data) and body == data, f"{k}: read back {len(body)} bytes, differs from what was written"
        assert got["Metadata"] == meta, f"{k}: metadata {got['Metadata']!r}"
        assert got["ContentType"] == ctype, f"{k}: Content-Type {got['ContentType']!r}"
        assert got.get("ContentDisposition") == cdisp, f"{k}: Content-Disposition {got.get('ContentDisposition')!r}"
    rng = s3.get_object(Bucket=bucket, Key=big_key, Range=f"bytes={SEG - 10}-{2 * SEG + 9}")["Body"].read()
    assert rng == big[SEG - 10 : 2 * SEG + 10]
    s3.complete_multipart_upload(
        Bucket=bucket, Key=open_key, UploadId=up3["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": open_etag}]},
    )
    got = s3.get_object(Bucket=bucket, Key=open_key)
    assert got["Body"].read() == open_part
    assert got["Metadata"] == meta and got["ContentType"] == ctype and got.get("ContentDisposition") == cdisp


# ---------------------------------------------------------------- 2. damaged replicas

OBJ_LEN = 230_000  # 3.5 segments: 0..65535 | 65536..131071 | 131072..196607 | 196608..229999


def flip_bit(data: bytes, offset: int) -> bytes:
    b = bytearray(data)
    b[offset] ^= 0x10
    return bytes(b)


def swap_segments_0_1(data: bytes) -> bytes:
    s0 = data[HEADER : HEADER + STRIDE]
    s1 = data[HEADER + STRIDE : HEADER + 2 * STRIDE]
    return data[:HEADER] + s1 + s0 + data[HEADER + 2 * STRIDE :]


RANGES = {
    "inside segment 2": (140_000, 150_000),
    "across segments 1-2": (130_000, 132_000),
    "inside segment 1": (70_000, 80_000),
    "segment 0": (0, SEG - 1),
    "last 1000 bytes": (OBJ_LEN - 1000, OBJ_LEN - 1),
}


def check_reads(s3, bucket, key, data, case):
    for attempt in range(2):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert len(body) == len(data) and body == data, (
            f"{case}: full GET (attempt {attempt + 1}) returned {len(body)} bytes "
            f"{'equal' if body == data else 'NOT equal'} to the object"
        )
    for name, (lo, hi) in RANGES.items():
        got = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={lo}-{hi}")["Body"].read()
        assert got == data[lo : hi + 1], f"{case}: ranged GET {name} (bytes={lo}-{hi}) returned wrong bytes ({len(got)} bytes)"


@pytest.mark.parametrize("site", SITES)
def test_damaged_replica_is_served_from_the_other_site(private_server, site):
    srv = private_server
    s3 = srv.client()
    bucket = unique_name("damage")
    s3.create_bucket(Bucket=bucket)

    before = blob_snapshot(srv)
    data = os.urandom(OBJ_LEN)
    s3.put_object(Bucket=bucket, Key="target", Body=data)
    target = new_blob(srv, before)
    before = blob_snapshot(srv)
    other_data = os.urandom(OBJ_LEN)
    s3.put_object(Bucket=bucket, Key="other", Body=other_data)
    other = new_blob(srv, before)

    path = blob_path(srv, site, target[site])
    original = path.read_bytes()
    assert len(original) == stored_size(OBJ_LEN), f"blob of {OBJ_LEN} bytes is {len(original)} bytes on {site}"
    other_blob = blob_path(srv, site, other[site]).read_bytes()
    assert other_blob != original

    cases = {
        "bit flipped in the middle of segment 1": flip_bit(original, HEADER + STRIDE + SEG // 2),
        "truncated by 100 bytes": original[:-100],
        "segments 0 and 1 swapped": swap_segments_0_1(original),
        "another object's blob copied over it": other_blob,
    }
    for case, damaged in cases.items():
        assert damaged != original
        path.write_bytes(damaged)
        try:
            check_reads(s3, bucket, "target", data, f"{site}: {case}")
        finally:
            path.write_bytes(original)
        assert s3.get_object(Bucket=bucket, Key="other")["Body"].read() == other_data

    # The server may have repaired the replica meanwhile; either way the
    # original bytes are back and reads are exact.
    check_reads(s3, bucket, "target", data, f"{site}: restored")


def test_damage_on_every_site_never_yields_wrong_bytes(private_server):
    srv = private_server
    s3 = srv.client()
    raw = srv.raw()
    bucket = unique_name("damage-all")
    s3.create_bucket(Bucket=bucket)
    before = blob_snapshot(srv)
    data = os.urandom(OBJ_LEN)
    s3.put_object(Bucket=bucket, Key="target", Body=data)
    target = new_blob(srv, before)

    for site in SITES:
        p = blob_path(srv, site, target[site])
        p.write_bytes(flip_bit(p.read_bytes(), HEADER + 2 * STRIDE + 1234))  # inside segment 2

    def assert_no_wrong_bytes(range_header, want: bytes, what: str):
        status, got, error = get_streaming(raw, bucket, "target", range_header)
        if status is not None and status >= 400:
            return  # refused before the body started
        assert status in (200, 206, None), f"{what}: HTTP {status}"
        assert got == want[: len(got)], f"{what}: returned bytes differ from the object (first {len(got)} bytes)"
        assert error is not None or len(got) < len(want), (
            f"{what}: HTTP {status} with the complete {len(got)}-byte body and no error, "
            "although segment 2 fails authentication on every site"
        )

    assert_no_wrong_bytes(None, data, "full GET")
    assert_no_wrong_bytes("bytes=140000-150000", data[140_000:150_001], "GET inside segment 2")
    assert_no_wrong_bytes("bytes=100000-200000", data[100_000:200_001], "GET across segments 1-3")

    # Only touched segments are decrypted: ranges clear of segment 2 still work.
    for lo, hi in ((0, SEG - 1), (1000, 2000), (SEG, 2 * SEG - 1), (3 * SEG, OBJ_LEN - 1)):
        got = s3.get_object(Bucket=bucket, Key="target", Range=f"bytes={lo}-{hi}")["Body"].read()
        assert got == data[lo : hi + 1], f"ranged GET bytes={lo}-{hi} (segment 2 untouched) returned wrong bytes"
    assert srv.running(), f"server died after reading a damaged object.\n{srv.log_tail()}"
