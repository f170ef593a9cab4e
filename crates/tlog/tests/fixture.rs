//! Interoperability with an independent implementation: the 600-entry C2SP tile directory that
//! `tlog_tiles` 0.2.0 and `signed_note` 0.2.0 wrote (tests/vectors/rust-tlog_tiles-0.2.0).

mod common;

use std::path::{Path, PathBuf};

use common::*;
use obhut_tlog::*;
use serde_json::Value;

struct Fixture {
    vkey: String,
    origin: String,
    size: u64,
    root: Hash,
    older: Vec<String>,
}

fn fixture() -> Fixture {
    let v = read_json("rust-tlog_tiles-0.2.0/fixture.json");
    Fixture {
        vkey: strs(&v, "vkeys")[0].to_owned(),
        origin: s(&v, "origin").to_owned(),
        size: u(&v, "size"),
        root: hash32(&b64(s(&v, "root_b64"))),
        older: strs(&v, "older_checkpoints")
            .into_iter()
            .map(str::to_owned)
            .collect(),
    }
}

fn log_source() -> DirTileSource {
    DirTileSource::new(fixture_dir().join("log"))
}

fn older_checkpoints(f: &Fixture) -> Vec<Checkpoint> {
    f.older
        .iter()
        .map(|name| {
            let note = std::fs::read_to_string(fixture_dir().join(name)).expect("checkpoint file");
            verify_checkpoint(&note, &f.vkey).unwrap_or_else(|e| panic!("{name}: {e}"))
        })
        .collect()
}

/// Every file under `dir`, as paths relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for item in std::fs::read_dir(dir.join(&rel)).expect("read_dir") {
            let item = item.expect("dir entry");
            let rel = rel.join(item.file_name());
            if item.file_type().expect("file type").is_dir() {
                stack.push(rel);
            } else {
                out.push(rel.to_str().expect("utf-8 path").to_owned());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn fixture_checkpoint_tree_and_entries_verify() -> Result<(), TlogError> {
    let f = fixture();
    let mut src = log_source();
    let cp = fetch_checkpoint(&mut src, &f.vkey)?;
    assert_eq!(
        (cp.origin.as_str(), cp.size, cp.root),
        (f.origin.as_str(), f.size, f.root)
    );
    let tree = verify_entries(&mut src, &cp)?;
    assert_eq!(tree.verify_entries(&mut src)?, 600);

    // Older checkpoints: each verifies on its own partial tiles, is a prefix of the newest, and
    // its root is what the newest tree's first entries hash to.
    let older = older_checkpoints(&f);
    assert_eq!(
        older.iter().map(|c| c.size).collect::<Vec<_>>(),
        [1, 256, 300, 513]
    );
    for old in &older {
        verify_tree(&mut src, old)?;
        verify_consistency(&mut src, old, &cp)?;
        assert_eq!(tree.root_at(old.size), Some(old.root), "size {}", old.size);
        for later in older.iter().filter(|c| c.size > old.size) {
            verify_consistency(&mut src, old, later)?;
        }
    }
    Ok(())
}

#[test]
fn fixture_proofs_verify() -> Result<(), TlogError> {
    let f = fixture();
    let mut src = log_source();
    let cp = fetch_checkpoint(&mut src, &f.vkey)?;
    let older = older_checkpoints(&f);
    let text = std::fs::read_to_string(fixture_dir().join("proofs.jsonl")).expect("proofs.jsonl");
    let mut counts = (0, 0);
    for line in text.lines() {
        let p: Value = serde_json::from_str(line).expect("proof line");
        let proof: Vec<Hash> = strs(&p, "proof")
            .into_iter()
            .map(|h| hash32(&b64(h)))
            .collect();
        match s(&p, "kind") {
            "inclusion" => {
                let (index, size) = (u(&p, "index"), u(&p, "size"));
                let leaf = hash32(&b64(s(&p, "leaf_hash")));
                let root = hash32(&b64(s(&p, "root")));
                verify_inclusion_proof(&leaf, index, size, &proof, &root)?;
                // A wrong index or a flipped leaf must fail.
                let mut bad = leaf;
                bad[0] ^= 1;
                assert!(verify_inclusion_proof(&bad, index, size, &proof, &root).is_err());
                assert!(
                    verify_inclusion_proof(&leaf, index ^ 1, size, &proof, &root).is_err()
                        || size == 1
                );

                // The same through the tiles, against the checkpoint of that size.
                let checkpoint = std::iter::once(&cp)
                    .chain(&older)
                    .find(|c| c.size == size)
                    .expect("a checkpoint of this size");
                assert_eq!(checkpoint.root, root);
                let bundle = TileRef::Entries {
                    index: index / 256,
                    partial_width: None,
                };
                let entry = entry_from_fixture(&mut src, bundle, index, cp.size)?;
                assert_eq!(leaf_hash(&entry), leaf);
                verify_inclusion(&mut src, checkpoint, index, &entry)?;
                counts.0 += 1;
            }
            "consistency" => {
                let (size1, size2) = (u(&p, "size1"), u(&p, "size2"));
                let root1 = hash32(&b64(s(&p, "root1")));
                let root2 = hash32(&b64(s(&p, "root2")));
                verify_consistency_proof(size1, size2, &proof, &root1, &root2)?;
                let mut bad = root1;
                bad[31] ^= 0x80;
                assert!(verify_consistency_proof(size1, size2, &proof, &bad, &root2).is_err());
                counts.1 += 1;
            }
            other => panic!("unknown proof kind {other}"),
        }
    }
    assert_eq!(counts, (15, 10));
    Ok(())
}

/// Entry `index` read from the fixture's bundles as a tree of `size` has them.
fn entry_from_fixture(
    src: &mut DirTileSource,
    bundle: TileRef,
    index: u64,
    size: u64,
) -> Result<Vec<u8>, TlogError> {
    let width = (size - bundle.index() * 256).min(256);
    let tile = TileRef::Entries {
        index: bundle.index(),
        partial_width: (width < 256).then(|| u16::try_from(width).expect("width")),
    };
    let data = src.get(&tile.path())?.expect("bundle present");
    let entries = decode_entry_bundle(&data).expect("bundle decodes");
    Ok(entries[usize::try_from(index % 256).expect("offset")].to_vec())
}

#[test]
fn our_writer_serves_byte_identical_tiles() -> Result<(), TlogError> {
    let f = fixture();
    let mut src = log_source();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Log::open(dir.path(), &f.origin, [42; 32])?;
    for bundle in entry_bundles_for_size(f.size) {
        let data = src.get(&bundle.path())?.expect("bundle");
        let entries: Vec<Vec<u8>> = decode_entry_bundle(&data)
            .expect("decode")
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        log.append_batch(&entries)?;
    }
    assert_eq!(log.size(), f.size);
    assert_eq!(log.root(), f.root);

    // Every tile and bundle the fixture holds (including the partial ones of older sizes) is
    // served by our writer with the same bytes.
    let root = fixture_dir().join("log");
    let files = files_under(&root);
    assert_eq!(files.len(), 15);
    for rel in files {
        let ours = log.read_path(&rel)?;
        if rel == "checkpoint" {
            // Same body; a different key signs it.
            let theirs = std::fs::read_to_string(root.join(&rel)).expect("checkpoint");
            let ours = String::from_utf8(ours.expect("checkpoint")).expect("utf-8");
            let body = |n: &str| n.split_once("\n\n").map(|(b, _)| b.to_owned());
            assert_eq!(body(&ours), body(&theirs));
            continue;
        }
        let theirs = std::fs::read(root.join(&rel)).expect("tile file");
        assert_eq!(ours.as_deref(), Some(theirs.as_slice()), "{rel}");
    }
    Ok(())
}

/// A copy of the fixture log in a temporary directory, to tamper with.
fn copy_of_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = fixture_dir().join("log");
    for rel in files_under(&root) {
        let to = dir.path().join(&rel);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(root.join(&rel), &to).expect("copy");
    }
    dir
}

fn flip_byte(path: &Path, at: usize) {
    let mut data = std::fs::read(path).expect("read");
    data[at] ^= 0x01;
    std::fs::write(path, data).expect("write");
}

#[test]
fn tampered_fixture_is_caught() -> Result<(), TlogError> {
    let f = fixture();

    // An entry altered inside the full bundle 001 (entries 256..511); the tree still verifies.
    let dir = copy_of_fixture();
    flip_byte(&dir.path().join("tile/entries/001"), 100);
    let mut src = DirTileSource::new(dir.path());
    let cp = fetch_checkpoint(&mut src, &f.vkey)?;
    verify_tree(&mut src, &cp)?;
    let err = verify_entries(&mut src, &cp).expect_err("altered entry");
    assert!(
        matches!(err, TlogError::EntryMismatch { index: 256..=511, ref path } if path == "tile/entries/001"),
        "{err}"
    );

    // A hash altered in a full level-0 tile: the root no longer matches, and the hint names it.
    let dir = copy_of_fixture();
    flip_byte(&dir.path().join("tile/0/001"), 5);
    let mut src = DirTileSource::new(dir.path());
    let err = verify_tree(&mut src, &cp).expect_err("altered hash tile");
    assert!(
        matches!(err, TlogError::RootMismatch { size: 600, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("tile/0/001"), "{err}");
    // The path-based checks read the same tile, fail, and blame the tile, not the log's history
    // or the entry.
    let err =
        verify_consistency(&mut src, &older_checkpoints(&f)[2], &cp).expect_err("consistency");
    assert!(
        matches!(err, TlogError::RootMismatch { size: 600, .. }),
        "{err}"
    );
    let entry = entry_from_fixture(
        &mut log_source(),
        TileRef::Entries {
            index: 1,
            partial_width: None,
        },
        300,
        600,
    )?;
    let err = verify_inclusion(&mut src, &cp, 300, &entry).expect_err("inclusion");
    assert!(
        matches!(err, TlogError::RootMismatch { size: 600, .. }),
        "{err}"
    );

    // A missing tile is named.
    let dir = copy_of_fixture();
    std::fs::remove_file(dir.path().join("tile/1/000.p/2")).expect("rm");
    let mut src = DirTileSource::new(dir.path());
    let err = verify_tree(&mut src, &cp).expect_err("missing tile");
    assert!(
        matches!(err, TlogError::TileMissing { ref path, .. } if path == "tile/1/000.p/2"),
        "{err}"
    );

    // A truncated tile is malformed.
    let dir = copy_of_fixture();
    let p = dir.path().join("tile/0/002.p/88");
    let data = std::fs::read(&p).expect("read");
    std::fs::write(&p, &data[..data.len() - 1]).expect("write");
    let mut src = DirTileSource::new(dir.path());
    let err = verify_tree(&mut src, &cp).expect_err("truncated tile");
    assert!(matches!(err, TlogError::TileMalformed { .. }), "{err}");
    Ok(())
}

#[test]
fn fixture_rejects_wrong_key_rollback_and_altered_checkpoint() -> Result<(), TlogError> {
    let f = fixture();
    let note = std::fs::read_to_string(fixture_dir().join("log/checkpoint")).expect("checkpoint");

    // Same name, another key: not signed by it.
    let other = NoteSigner::from_seed(&f.origin, &[9; 32])?.verifier_key();
    let err = verify_checkpoint(&note, &other).expect_err("wrong key");
    assert!(matches!(err, TlogError::NotSigned { .. }), "{err}");

    // The size line changed: the signature no longer verifies.
    let altered = note.replacen("\n600\n", "\n601\n", 1);
    let err = verify_checkpoint(&altered, &f.vkey).expect_err("altered body");
    assert!(matches!(err, TlogError::SignatureInvalid { .. }), "{err}");
    assert!(err.to_string().contains("signature invalid"), "{err}");

    // Rolled back: newest first, then an older one presented as "new".
    let mut src = log_source();
    let cp = fetch_checkpoint(&mut src, &f.vkey)?;
    let older = older_checkpoints(&f);
    let err = verify_consistency(&mut src, &cp, &older[3]).expect_err("rollback");
    assert!(
        matches!(err, TlogError::RolledBack { from: 600, to: 513 }),
        "{err}"
    );
    assert_eq!(err.to_string(), "log rolled back from 600 to 513");

    // A forged old checkpoint (right size, wrong root) is not a prefix of the new tree.
    let mut forged = older[2].clone();
    forged.root[0] ^= 1;
    let err = verify_consistency(&mut src, &forged, &cp).expect_err("fork");
    assert!(
        matches!(
            err,
            TlogError::Inconsistent {
                old_size: 300,
                new_size: 600
            }
        ),
        "{err}"
    );
    // And an entry that is not the log's fails inclusion.
    let err = verify_inclusion(&mut src, &cp, 7, b"not the entry").expect_err("inclusion");
    assert!(
        matches!(err, TlogError::InclusionFailed { index: 7, .. }),
        "{err}"
    );
    Ok(())
}
