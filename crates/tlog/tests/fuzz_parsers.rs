//! Fuzz targets for what a log verifier parses from a server it does not trust: checkpoints,
//! signed notes, verifier keys, tile paths and entry bundles. Under `cargo test` each runs a
//! bounded number of random cases; `cargo bolero test TARGET -p obhut-tlog` fuzzes the same
//! target for as long as wanted.
//!
//! The property everywhere: malformed input is an error, never a panic; what parses is the
//! canonical encoding of what it parsed to; a note's text verifies only as it was signed.

use bolero::check;
use obhut_tlog::{
    Checkpoint, NoteSigner, VerifierKey, decode_entry_bundle, encode_entry_bundle, open_note,
    parse_tile_path, tile_path, verify_checkpoint,
};

/// Random cases per target under `cargo test`.
const CASES: usize = 2_000;

#[test]
fn checkpoint_bodies_parse_only_in_canonical_form() {
    check!().with_iterations(CASES).for_each(|bytes: &[u8]| {
        let Ok(text) = std::str::from_utf8(bytes) else {
            return;
        };
        if let Ok(cp) = Checkpoint::parse_body(text) {
            // Extension lines are accepted but not kept: the body starts with what was parsed.
            assert!(text.starts_with(&cp.body()), "{text:?}");
        }
    });
}

#[test]
fn verifier_keys_parse_or_refuse() {
    check!()
        .with_iterations(CASES)
        .with_type::<String>()
        .for_each(|text| {
            if let Ok(key) = VerifierKey::parse(text) {
                assert_eq!(key.as_str(), text);
            }
        });
}

#[test]
fn tile_paths_parse_only_in_canonical_form() {
    check!()
        .with_iterations(CASES)
        .with_type::<String>()
        .for_each(|path| {
            if let Ok(tile) = parse_tile_path(path) {
                assert_eq!(&tile_path(&tile), path, "one tile, one path");
            }
        });
    // Random strings rarely start with "tile/": also try the structured neighbourhood.
    check!()
        .with_iterations(CASES)
        .with_type::<(bool, u8, u64, u8)>()
        .for_each(|&(entries, level, index, width)| {
            let kind = if entries {
                "entries".to_owned()
            } else {
                level.to_string()
            };
            let path = format!("tile/{kind}/{index:03}.p/{width}");
            if let Ok(tile) = parse_tile_path(&path) {
                assert_eq!(tile_path(&tile), path);
            }
        });
}

#[test]
fn entry_bundles_decode_or_refuse() {
    check!().with_iterations(CASES).for_each(|bytes: &[u8]| {
        if let Ok(entries) = decode_entry_bundle(bytes) {
            let again = encode_entry_bundle(entries.iter().copied()).expect("re-encode");
            assert_eq!(again, bytes);
        }
    });
}

#[test]
fn a_signed_checkpoint_verifies_only_as_signed() {
    let signer = NoteSigner::from_seed("obhut.example/log", &[7u8; 32]).expect("signer");
    let vkey = signer.verifier_key();
    let cp = Checkpoint {
        origin: "obhut.example/log".to_owned(),
        size: 42,
        root: [9u8; 32],
    };
    let note = signer.sign_checkpoint(&cp).expect("sign");
    assert_eq!(verify_checkpoint(&note, &vkey).expect("verifies"), cp);
    let body = cp.body();
    check!()
        .with_iterations(CASES)
        .with_type::<(u16, u8)>()
        .for_each(|&(at, mask)| {
            let mut bytes = note.clone().into_bytes();
            let at = usize::from(at) % bytes.len();
            bytes[at] ^= mask.max(1);
            // An altered text never verifies; an altered signature line at most re-encodes
            // the same signature (base64's spare bits), so whatever opens is the signed text.
            if let Ok(opened) = open_note(&bytes, &[&vkey]) {
                assert!(at >= body.len(), "byte {at} of the signed text altered");
                assert_eq!(opened.text, body);
            }
        });
    check!().with_iterations(CASES).for_each(|bytes: &[u8]| {
        assert!(open_note(bytes, &[&vkey]).is_err());
    });
}
