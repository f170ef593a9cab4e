#!/usr/bin/env python3
"""Writes obhut's known-answer vectors from docs/format.md, independently of obhut's code.

This is a second implementation of the formats, written from docs/format.md with Python's
`cryptography` package (AES-256-GCM, HMAC-SHA256) and a few lines of GF(2^8) arithmetic for the
unseal shares. obhut's tests check that the Rust code produces and reads exactly these bytes:

  crates/crypto/tests/vectors/blob.json          blob header, segment nonces, sealed segments
  crates/crypto/tests/vectors/wrap.json          sealed values, wrapped keys, key-check values
  crates/trustee/tests/vectors/keystore/         keystore.json files and the secrets behind them

Every key, nonce and plaintext is fixed below, so running this again writes the same files. A
change to a format is a new version of it (docs/format.md, section 7): add vectors for the new
version here and keep the old ones, which a release must go on reading.

Run from the repository root: python3 tools/format-vectors/make_vectors.py
Needs: Python 3.9+ and the `cryptography` package (Debian: python3-cryptography).
"""

import base64
import hashlib
import hmac
import json
import pathlib
import struct
import sys

try:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError:
    sys.exit("make_vectors.py needs the `cryptography` package (Debian: python3-cryptography)")

ROOT = pathlib.Path(__file__).resolve().parents[2]


def seq(start, n):
    """n bytes start, start+1, ... (mod 256): recognisable fixed keys and nonces."""
    return bytes((start + i) % 256 for i in range(n))


def write(path, text):
    path = ROOT / path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path.relative_to(ROOT)} ({len(text)} bytes)")


def write_json(path, value):
    write(path, json.dumps(value, indent=2) + "\n")


# ------------------------------------------------------------------ section 3: key-check values

def kcv(key):
    return hmac.new(key, b"obhut key-check value v1", hashlib.sha256).digest()[:8]


# ------------------------------------------------------------------ section 2: sealed values

def seal_value(key, nonce, aad, plaintext):
    return b"\x01" + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def tenant_key_aad(tenant):
    return b"obhut tenant key v1\0" + tenant.encode()


def bucket_key_aad(tenant, bucket, version):
    return (b"obhut bucket key v1\0" + tenant.encode() + b"\0" + bucket.encode() + b"\0"
            + struct.pack(">I", version))


def object_key_aad(bucket, version_id):
    return b"obhut object key v1\0" + bucket.encode() + b"\0" + version_id


def lp(field):
    """A field with its length, u32 big-endian, in front."""
    return struct.pack(">I", len(field)) + field


def bound_object_key_aad(tenant, bucket, key, upload_id, version_id):
    """Envelope format 2: the object key bound to tenant, bucket, name and upload."""
    aad = b"obhut object key v2\0" + lp(tenant.encode()) + lp(bucket.encode()) + lp(key.encode())
    if upload_id is None:
        aad += b"\x00"
    else:
        aad += b"\x01" + lp(upload_id.encode())
    return aad + version_id


def meta_aad(version_id):
    return b"obhut meta v1\0" + version_id


def etag_aad(version_id, part=None):
    if part is None:
        return b"obhut etag v1\0" + version_id
    return b"obhut part etag v1\0" + version_id + struct.pack(">I", part)


def part_checksums_aad(version_id, part):
    return b"obhut part checksums v1\0" + version_id + struct.pack(">I", part)


# ------------------------------------------------------------------ section 1: blobs

def blob_header(segment_size, nonce_prefix):
    exponent = segment_size.bit_length() - 1
    assert 1 << exponent == segment_size and 12 <= exponent <= 24
    return b"obhB" + bytes([1, exponent, 0, 0]) + nonce_prefix + b"\0"


def blob_context(version_id, part, blob_id):
    return b"obhut blob v1\0" + version_id + struct.pack(">I", part) + blob_id


def blob_vector(name, key, segment_size, nonce_prefix, version_id, part, blob_id, pattern, n):
    plaintext = (pattern * (n // max(len(pattern), 1) + 1))[:n]
    header = blob_header(segment_size, nonce_prefix)
    context = blob_context(version_id, part, blob_id)
    aad = header + context
    count = max(1, -(-n // segment_size))
    segments = []
    for i in range(count):
        last = i == count - 1
        nonce = nonce_prefix + struct.pack(">I", i) + bytes([1 if last else 0])
        chunk = plaintext[i * segment_size:(i + 1) * segment_size]
        sealed = AESGCM(key).encrypt(nonce, chunk, aad)
        segments.append({"index": i, "last": last, "nonce": nonce.hex(), "sealed": sealed.hex()})
    blob_len = len(header) + n + 16 * count
    assert blob_len == len(header) + sum(len(s["sealed"]) // 2 for s in segments)
    return {
        "name": name,
        "key": key.hex(),
        "segment_size": segment_size,
        "nonce_prefix": nonce_prefix.hex(),
        "context": context.hex(),
        "plaintext_pattern": pattern.hex(),
        "plaintext_len": n,
        "header": header.hex(),
        "aad": aad.hex(),
        "segments": segments,
        "blob_len": blob_len,
    }


# ------------------------------------------------------------------ section 6: unseal shares

def gf_mul(a, b):
    """Multiplication in GF(2^8) modulo x^8 + x^4 + x^3 + x^2 + 1 (0x11d)."""
    product = 0
    while b:
        if b & 1:
            product ^= a
        a <<= 1
        if a & 0x100:
            a ^= 0x11d
        b >>= 1
    return product


def share(master, coefficients, x):
    """p(x) = master + c1·x + c2·x² + … byte by byte; the share is x || p(x)."""
    y = bytearray()
    for i, secret_byte in enumerate(master):
        value, power = secret_byte, 1
        for c in coefficients:
            power = gf_mul(power, x)
            value ^= gf_mul(c[i], power)
        y.append(value)
    raw = bytes([x]) + bytes(y)
    return "obhut-share-v1-" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


# ------------------------------------------------------------------ the vectors

def crypto_vectors():
    version_id = seq(0x10, 16)
    blob_id = seq(0x20, 16)
    key = seq(0x00, 32)
    blobs = {
        "format": "obhut blob, docs/format.md section 1: header || sealed segment 0 || ...",
        "generator": "tools/format-vectors/make_vectors.py",
        "notes": "plaintext = plaintext_pattern repeated, cut to plaintext_len; "
                 "context = \"obhut blob v1\\0\" || version_id || u32be(part) || blob_id; "
                 "aad = header || context; each sealed segment is ciphertext || tag",
        "vectors": [
            blob_vector("empty part: one empty final segment", key, 65536, seq(0xa0, 7),
                        version_id, 1, blob_id, b"", 0),
            blob_vector("one short final segment", key, 65536, seq(0xa0, 7),
                        version_id, 1, blob_id, b"obhut known-answer test", 23),
            blob_vector("a full segment, then a short final one (part 7)", seq(0x40, 32), 4096,
                        seq(0xb0, 7), version_id, 7, blob_id, bytes(range(251)), 4096 + 10),
        ],
    }
    write_json("crates/crypto/tests/vectors/blob.json", blobs)

    master = seq(0x80, 32)
    tenant_key = seq(0x60, 32)
    bucket_key = seq(0x00, 32)
    object_key = seq(0x40, 32)

    def wrapped(name, kek, inner, nonce, aad):
        return {
            "name": name,
            "kek": kek.hex(),
            "key": inner.hex(),
            "nonce": nonce.hex(),
            "aad": aad.hex(),
            "wrapped": seal_value(kek, nonce, aad, inner).hex(),
            "kcv": kcv(inner).hex(),
        }

    meta = b'{"content_type":"image/jpeg","user":{"camera":"x100"}}'

    def sealed(name, key, nonce, aad, plaintext):
        return {
            "name": name,
            "key": key.hex(),
            "nonce": nonce.hex(),
            "aad": aad.hex(),
            "plaintext": plaintext.hex(),
            "sealed": seal_value(key, nonce, aad, plaintext).hex(),
        }
    wrap = {
        "format": "obhut sealed values (version 1) and key-check values, docs/format.md sections 2 and 3",
        "generator": "tools/format-vectors/make_vectors.py",
        "notes": "sealed = 0x01 || nonce (12) || ciphertext || tag (16); a wrapped key is the "
                 "key sealed under the kek; kcv = HMAC-SHA256(key, \"obhut key-check value v1\")[0..8]",
        "key_check_values": [
            {"key": k.hex(), "kcv": kcv(k).hex()}
            for k in (master, tenant_key, bucket_key, object_key, bytes(32))
        ],
        "wrapped_keys": [
            wrapped("tenant key under the master key", master, tenant_key, seq(0xc0, 12),
                    tenant_key_aad("acme")),
            wrapped("bucket key under the tenant key", tenant_key, bucket_key, seq(0xd0, 12),
                    bucket_key_aad("acme", "photos", 1)),
            wrapped("object key under the bucket key", bucket_key, object_key, seq(0xe0, 12),
                    object_key_aad("photos", version_id)),
            wrapped("object key under the bucket key, bound to its object (envelope format 2)",
                    bucket_key, object_key, seq(0xe4, 12),
                    bound_object_key_aad("acme", "photos", "2024/caf\u00e9.jpg", None, version_id)),
            wrapped("upload key under the bucket key, bound to its upload (envelope format 2)",
                    bucket_key, object_key, seq(0xe8, 12),
                    bound_object_key_aad("acme", "photos", "big/video.mp4", "upload-0001",
                                         version_id)),
        ],
        "sealed_values": [
            {
                "name": "object metadata under the object key",
                "key": object_key.hex(),
                "nonce": seq(0xf0, 12).hex(),
                "aad": meta_aad(version_id).hex(),
                "plaintext": meta.hex(),
                "sealed": seal_value(object_key, seq(0xf0, 12), meta_aad(version_id), meta).hex(),
            },
            sealed("object ETag under the object key", object_key, seq(0xf4, 12),
                   etag_aad(version_id), b"9e107d9d372bb6826bd81d3542a419d6"),
            sealed("part ETag under the upload's key", object_key, seq(0xf8, 12),
                   etag_aad(version_id, 3), b"e4d909c290d0fb1ca068ffaddf22cbd0"),
            sealed("part checksums under the upload's key", object_key, seq(0xfc, 12),
                   part_checksums_aad(version_id, 3), b'{"crc32":"AAAAAA=="}'),
            {
                "name": "empty plaintext, empty associated data",
                "key": object_key.hex(),
                "nonce": bytes(12).hex(),
                "aad": "",
                "plaintext": "",
                "sealed": seal_value(object_key, bytes(12), b"", b"").hex(),
            },
        ],
    }
    write_json("crates/crypto/tests/vectors/wrap.json", wrap)


def keystore_vectors():
    master = seq(0x80, 32)
    coefficients = [seq(0x33, 32)]  # threshold 2: p(x) = master + c1·x
    shares = [share(master, coefficients, x) for x in (1, 2, 3)]
    tenants = {
        "acme": {"key": seq(0x60, 32), "nonce": seq(0xc0, 12)},
        "beta": {"key": seq(0x90, 32), "nonce": seq(0xc8, 12)},
        "gamma": {"key": seq(0xa0, 32), "nonce": None},
    }
    entries = {}
    for name, t in tenants.items():
        entry = {"wrapped": "", "kcv": kcv(t["key"]).hex(), "state": "destroyed"}
        if t["nonce"] is not None:
            entry["wrapped"] = base64.b64encode(
                seal_value(master, t["nonce"], tenant_key_aad(name), t["key"])).decode()
            entry["state"] = "active"
        entries[name] = entry
    entries["beta"]["state"] = "disabled"
    entries["beta"]["destroy_after_ms"] = 1767225600000
    sealed_file = {
        "version": 1,
        "threshold": 2,
        "shares": 3,
        "master_kcv": kcv(master).hex(),
        "tenants": entries,
    }
    # serde_json's pretty printer: two-space indent, no newline at the end.
    write("crates/trustee/tests/vectors/keystore/sealed-file/keystore.json",
          json.dumps(sealed_file, indent=2))
    pkcs11 = {
        "version": 1,
        "threshold": 1,
        "shares": 0,
        "master_kcv": "",
        "pkcs11": {"module": "/usr/lib/softhsm/libsofthsm2.so", "token": "obhut"},
        "tenants": {
            "acme": {"wrapped": "", "kcv": "0123456789abcdef", "state": "active"},
        },
    }
    write("crates/trustee/tests/vectors/keystore/pkcs11/keystore.json",
          json.dumps(pkcs11, indent=2))
    secrets = {
        "format": "keystore.json version 1 and unseal shares, docs/format.md sections 5 and 6",
        "generator": "tools/format-vectors/make_vectors.py",
        "master_key": master.hex(),
        "share_coefficients": [c.hex() for c in coefficients],
        "shares": shares,
        "tenants": {
            name: {"key": t["key"].hex(), "nonce": t["nonce"].hex() if t["nonce"] else None}
            for name, t in tenants.items()
        },
        "bucket_key_aad": {
            "tenant": "acme",
            "bucket": "photos",
            "version": 1,
            "aad": bucket_key_aad("acme", "photos", 1).hex(),
        },
    }
    write_json("crates/trustee/tests/vectors/keystore/secrets.json", secrets)


if __name__ == "__main__":
    crypto_vectors()
    keystore_vectors()
