//! Known-answer tests: fixed keys, nonces and plaintexts, and the exact bytes obhut must write
//! for them and read back from them, so that any change to a format fails here.
//!
//! The vectors (`tests/vectors/blob.json`, `tests/vectors/wrap.json`) were computed by a
//! second implementation written from docs/format.md, `tools/format-vectors/make_vectors.py`;
//! that script says how to write them again. They hold only test keys.

use crate::segmented::segment_aad;
use crate::wrap::seal_value_with_nonce;
use crate::{
    BlobHeader, CryptoError, Key, SegmentDecryptor, StreamEncryptor, blob_len, key_check_value,
    open_value, unwrap_key,
};
use serde_json::Value;

const BLOB: &str = include_str!("../tests/vectors/blob.json");
const WRAP: &str = include_str!("../tests/vectors/wrap.json");

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("vector file is JSON")
}

fn bytes(v: &Value) -> Vec<u8> {
    let text = v
        .as_str()
        .unwrap_or_else(|| panic!("{v} is not a hex string"));
    hex_simd::decode_to_vec(text).unwrap_or_else(|_| panic!("{text} is not hex"))
}

fn array<const N: usize>(v: &Value) -> [u8; N] {
    bytes(v)
        .try_into()
        .unwrap_or_else(|b: Vec<u8>| panic!("{N} bytes expected, got {}", b.len()))
}

fn key(v: &Value) -> Key {
    Key::from_bytes(array(v))
}

fn number(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{v} is not a number"))
}

fn list(v: &Value) -> &Vec<Value> {
    v.as_array().unwrap_or_else(|| panic!("{v} is not a list"))
}

/// The vector's plaintext: its pattern repeated, cut to its length.
fn plaintext(v: &Value) -> Vec<u8> {
    let pattern = bytes(&v["plaintext_pattern"]);
    let len = usize::try_from(number(&v["plaintext_len"])).expect("length");
    pattern.iter().copied().cycle().take(len).collect()
}

struct BlobVector {
    name: String,
    key: Key,
    header: BlobHeader,
    context: Vec<u8>,
    plaintext: Vec<u8>,
    /// Each segment: index, last flag, nonce and sealed bytes.
    segments: Vec<(u32, bool, [u8; 12], Vec<u8>)>,
    header_bytes: Vec<u8>,
    aad: Vec<u8>,
    blob_len: u64,
}

fn blob_vectors() -> Vec<BlobVector> {
    let file = parse(BLOB);
    list(&file["vectors"])
        .iter()
        .map(|v| BlobVector {
            name: v["name"].as_str().expect("name").to_owned(),
            key: key(&v["key"]),
            header: BlobHeader {
                segment_size: u32::try_from(number(&v["segment_size"])).expect("segment size"),
                nonce_prefix: array(&v["nonce_prefix"]),
            },
            context: bytes(&v["context"]),
            plaintext: plaintext(v),
            segments: list(&v["segments"])
                .iter()
                .map(|s| {
                    (
                        u32::try_from(number(&s["index"])).expect("index"),
                        s["last"].as_bool().expect("last"),
                        array(&s["nonce"]),
                        bytes(&s["sealed"]),
                    )
                })
                .collect(),
            header_bytes: bytes(&v["header"]),
            aad: bytes(&v["aad"]),
            blob_len: number(&v["blob_len"]),
        })
        .collect()
}

impl BlobVector {
    /// The whole blob: header, then every sealed segment in order.
    fn blob(&self) -> Vec<u8> {
        let mut blob = self.header_bytes.clone();
        for (_, _, _, sealed) in &self.segments {
            blob.extend_from_slice(sealed);
        }
        blob
    }
}

#[test]
fn blob_encoding_matches_the_vectors() {
    let vectors = blob_vectors();
    assert_eq!(vectors.len(), 3);
    for v in &vectors {
        let name = &v.name;
        assert_eq!(
            v.header.encode().as_slice(),
            v.header_bytes,
            "{name}: header"
        );
        assert_eq!(segment_aad(&v.header, &v.context), v.aad, "{name}: aad");
        for (index, last, nonce, _) in &v.segments {
            assert_eq!(
                v.header.nonce(*index, *last).as_ref(),
                nonce,
                "{name}: nonce of segment {index}"
            );
        }
        // Pushed in uneven pieces: the blob does not depend on how the data arrives.
        for piece in [1, 1000, 4096, 100_000] {
            let mut enc = StreamEncryptor::new(&v.key, v.header, &v.context);
            let mut out = enc.header_bytes().to_vec();
            for chunk in v.plaintext.chunks(piece) {
                enc.push(chunk, &mut out).expect("push");
            }
            enc.finish(&mut out).expect("finish");
            assert!(out == v.blob(), "{name}: blob pushed in pieces of {piece}");
        }
        let plain_len = v.plaintext.len() as u64;
        assert_eq!(
            blob_len(plain_len, v.header.segment_size),
            v.blob_len,
            "{name}"
        );
        assert_eq!(v.blob().len() as u64, v.blob_len, "{name}");
    }
}

#[test]
fn blob_decoding_of_the_vectors_gives_their_plaintext() {
    for v in blob_vectors() {
        let name = &v.name;
        let blob = v.blob();
        let header = BlobHeader::decode(&blob).expect("header");
        assert_eq!(header, v.header, "{name}: decoded header");
        let plain_len = v.plaintext.len() as u64;
        let dec = SegmentDecryptor::new(&v.key, header, &v.context, plain_len);
        let mut plain = Vec::new();
        for (index, _, _, sealed) in &v.segments {
            let mut sealed = sealed.clone();
            assert_eq!(dec.sealed_len(u64::from(*index)), sealed.len(), "{name}");
            plain.extend_from_slice(dec.open(u64::from(*index), &mut sealed).expect("open"));
        }
        assert!(plain == v.plaintext, "{name}: plaintext");
        // Another context (another object, part or blob id) does not open it.
        let mut other = v.context.clone();
        if let Some(last) = other.last_mut() {
            *last ^= 1;
        }
        let dec = SegmentDecryptor::new(&v.key, header, &other, plain_len);
        let mut sealed = v.segments[0].3.clone();
        assert_eq!(
            dec.open(0, &mut sealed).map(|p| p.len()),
            Err(CryptoError::Authentication),
            "{name}: another context"
        );
    }
}

#[test]
fn key_check_values_match_the_vectors() {
    let file = parse(WRAP);
    let kcvs = list(&file["key_check_values"]);
    assert_eq!(kcvs.len(), 5);
    for v in kcvs {
        assert_eq!(
            key_check_value(&key(&v["key"])).as_slice(),
            bytes(&v["kcv"]),
            "{v}"
        );
    }
}

#[test]
fn wrapped_keys_match_the_vectors_both_ways() {
    let file = parse(WRAP);
    let wrapped = list(&file["wrapped_keys"]);
    assert_eq!(wrapped.len(), 5);
    for v in wrapped {
        let name = v["name"].as_str().expect("name");
        let (kek, inner, aad) = (key(&v["kek"]), key(&v["key"]), bytes(&v["aad"]));
        let expected = bytes(&v["wrapped"]);
        assert_eq!(expected.len(), 61, "{name}: a wrapped key is 61 bytes");
        let sealed =
            seal_value_with_nonce(&kek, array(&v["nonce"]), &aad, inner.expose()).expect("seal");
        assert_eq!(sealed, expected, "{name}: wrapped bytes");
        let kcv: [u8; 8] = array(&v["kcv"]);
        assert_eq!(key_check_value(&inner), kcv, "{name}: kcv");
        let back = unwrap_key(&kek, &expected, &aad, &kcv).expect("unwrap");
        assert_eq!(back.expose(), inner.expose(), "{name}: unwrapped key");
        assert_eq!(
            unwrap_key(&kek, &expected, b"elsewhere", &kcv).map(|_| ()),
            Err(CryptoError::Authentication),
            "{name}: other associated data"
        );
    }
}

#[test]
fn sealed_values_match_the_vectors_both_ways() {
    let file = parse(WRAP);
    let sealed_values = list(&file["sealed_values"]);
    assert_eq!(sealed_values.len(), 5);
    for v in sealed_values {
        let name = v["name"].as_str().expect("name");
        let (k, aad, plain) = (key(&v["key"]), bytes(&v["aad"]), bytes(&v["plaintext"]));
        let expected = bytes(&v["sealed"]);
        assert_eq!(expected.len(), 29 + plain.len(), "{name}: length");
        assert_eq!(expected[0], 1, "{name}: version byte");
        let sealed = seal_value_with_nonce(&k, array(&v["nonce"]), &aad, &plain).expect("seal");
        assert_eq!(sealed, expected, "{name}: sealed bytes");
        assert_eq!(
            open_value(&k, &aad, &expected).expect("open"),
            plain,
            "{name}"
        );
        let mut v2 = expected.clone();
        v2[0] = 2;
        assert_eq!(
            open_value(&k, &aad, &v2),
            Err(CryptoError::Version(2)),
            "{name}: an unknown version is refused"
        );
    }
}
