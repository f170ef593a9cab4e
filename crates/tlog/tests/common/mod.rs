//! Helpers shared by the integration tests: where the public vectors are and how to decode them.
#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;

/// The public test vectors, copied from the shared `testdata/tlog-vectors/` (see its README).
pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

pub fn fixture_dir() -> PathBuf {
    vectors_dir().join("rust-tlog_tiles-0.2.0")
}

pub fn read_json(name: &str) -> Value {
    let path = vectors_dir().join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

pub fn b64(text: &str) -> Vec<u8> {
    base64_simd::STANDARD
        .decode_to_vec(text)
        .unwrap_or_else(|e| panic!("base64 {text:?}: {e}"))
}

pub fn hex(text: &str) -> Vec<u8> {
    hex_simd::decode_to_vec(text).unwrap_or_else(|e| panic!("hex {text:?}: {e}"))
}

pub fn hash32(bytes: &[u8]) -> [u8; 32] {
    <[u8; 32]>::try_from(bytes).unwrap_or_else(|_| panic!("{} bytes, not 32", bytes.len()))
}

/// A JSON string field.
pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {v}"))
}

/// A JSON unsigned integer field.
pub fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a u64 in {v}"))
}

/// A JSON array of strings (null gives an empty list).
pub fn strs<'a>(v: &'a Value, key: &str) -> Vec<&'a str> {
    match &v[key] {
        Value::Null => Vec::new(),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .unwrap_or_else(|| panic!("{key} has a non-string in {v}"))
            })
            .collect(),
        other => panic!("{key} is not an array: {other}"),
    }
}

/// Decodes a base64 hash field; `None` if it is not exactly 32 bytes (or not base64).
pub fn try_hash(text: &str) -> Option<[u8; 32]> {
    let bytes = base64_simd::STANDARD.decode_to_vec(text).ok()?;
    <[u8; 32]>::try_from(bytes.as_slice()).ok()
}
