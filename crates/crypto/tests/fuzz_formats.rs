//! Fuzz targets for the formats obhut decodes from storage: blob headers, sealed segments, sealed
//! values and signed statements. Under `cargo test` each runs a bounded number of random cases;
//! `cargo bolero test TARGET -p obhut-crypto` fuzzes the same target for as long as wanted.
//!
//! The property everywhere: bytes that were not produced by the matching encoder under the
//! matching key are refused with an error, never a panic, and never accepted.

use bolero::check;
use obhut_crypto::principal::{PrincipalCredential, verify_statement};
use obhut_crypto::{
    BlobHeader, HEADER_LEN, Key, SegmentDecryptor, StreamEncryptor, open_value, seal_value,
    segment_count,
};

/// Random cases per target under `cargo test`: enough to cover every branch of these small
/// decoders, few enough to keep the suite quick.
const CASES: usize = 2_000;

#[test]
fn blob_header_decode_refuses_or_round_trips() {
    check!().with_iterations(CASES).for_each(|bytes: &[u8]| {
        if let Ok(header) = BlobHeader::decode(bytes) {
            // Only the canonical encoding of a header decodes.
            assert_eq!(&header.encode()[..], &bytes[..HEADER_LEN]);
        }
    });
}

/// A blob of `len` bytes of plaintext, encrypted under a fixed key with 4 KiB segments.
fn blob(key: &Key, len: usize) -> (BlobHeader, Vec<u8>) {
    let header = BlobHeader::random(4096).expect("header");
    let mut enc = StreamEncryptor::new(key, header, b"ctx");
    let mut out = enc.header_bytes().to_vec();
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    enc.push(&data, &mut out).expect("push");
    enc.finish(&mut out).expect("finish");
    (header, out)
}

#[test]
fn a_segment_altered_anywhere_never_authenticates() {
    let key = Key::random().expect("key");
    check!()
        .with_iterations(CASES)
        .with_type::<(u16, u32, u8)>()
        .for_each(|&(len, at, mask)| {
            let len = usize::from(len) % (3 * 4096 + 1);
            let (header, mut sealed) = blob(&key, len);
            let body = sealed.split_off(HEADER_LEN);
            let dec = SegmentDecryptor::new(&key, header, b"ctx", len as u64);
            // Split the sealed body into its segments, then alter one byte of one of them.
            let mut segments = Vec::new();
            let mut offset = 0;
            for i in 0..segment_count(len as u64, 4096) {
                let n = dec.sealed_len(i);
                segments.push(body[offset..offset + n].to_vec());
                offset += n;
            }
            let total: usize = segments.iter().map(Vec::len).sum();
            let at = at as usize % total;
            let mask = mask.max(1);
            let mut seen = 0;
            for (i, segment) in segments.iter_mut().enumerate() {
                let altered = (seen..seen + segment.len()).contains(&at);
                if altered {
                    segment[at - seen] ^= mask;
                }
                seen += segment.len();
                let result = dec.open(i as u64, segment);
                assert_eq!(result.is_err(), altered, "segment {i} of a {len}-byte blob");
            }
        });
}

#[test]
fn segments_under_a_wrong_index_or_length_never_authenticate() {
    let key = Key::random().expect("key");
    let (header, sealed) = blob(&key, 2 * 4096 + 10);
    let dec = SegmentDecryptor::new(&key, header, b"ctx", 2 * 4096 + 10);
    let first = sealed[HEADER_LEN..HEADER_LEN + dec.sealed_len(0)].to_vec();
    check!()
        .with_iterations(CASES)
        .with_type::<(u64, u16)>()
        .for_each(|&(index, cut)| {
            let mut bytes = first.clone();
            bytes.truncate(usize::from(cut).min(bytes.len()));
            let same = index == 0 && bytes.len() == first.len();
            assert_eq!(dec.open(index, &mut bytes).is_ok(), same, "index {index}");
        });
}

#[test]
fn sealed_values_open_only_as_sealed() {
    let key = Key::random().expect("key");
    let sealed = seal_value(&key, b"aad", b"metadata").expect("seal");
    assert_eq!(
        open_value(&key, b"aad", &sealed).expect("open"),
        b"metadata"
    );
    check!().with_iterations(CASES).for_each(|bytes: &[u8]| {
        if bytes != sealed.as_slice() {
            assert!(open_value(&key, b"aad", bytes).is_err());
        }
    });
}

#[test]
fn statement_signatures_verify_only_for_the_signed_text() {
    let officer = PrincipalCredential::from_token("an officer's token").expect("credential");
    let statement = r#"{"action":"approve","grant":"g-1"}"#;
    let signature = officer.sign_statement(statement);
    let public = officer.public_key();
    assert!(verify_statement(&public, statement, &signature));
    check!()
        .with_iterations(CASES)
        .with_type::<(Vec<u8>, String, Vec<u8>)>()
        .for_each(|(key, text, sig)| {
            // Arbitrary keys and signatures never panic and never verify.
            assert!(!verify_statement(key, text, sig));
            // The real key and signature verify no other text.
            if text != statement {
                assert!(!verify_statement(&public, text, &signature));
            }
        });
}
