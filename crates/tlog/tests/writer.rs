//! The writer round trip: append, serve tiles, verify with the verifier; tampering, rollback,
//! forks, wrong keys, reopening and crashes.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use obhut_tlog::*;

const ORIGIN: &str = "obhut.example/log";
const SEED: [u8; 32] = [0x5e; 32];

fn entry(i: u64) -> Vec<u8> {
    // Varying lengths, including the empty entry.
    let mut e = format!("entry {i}").into_bytes();
    e.resize(usize::try_from(i % 97).expect("small") * 3, b'.');
    e
}

fn open(dir: &Path) -> Log {
    Log::open(dir, ORIGIN, SEED).expect("open log")
}

/// Appends entries `from..to`, alternating single appends and batches.
fn fill(log: &Log, from: u64, to: u64) {
    let mut i = from;
    while i < to {
        if i.is_multiple_of(2) {
            assert_eq!(log.append(&entry(i)).expect("append"), i);
            i += 1;
        } else {
            let end = (i + 37).min(to);
            let batch: Vec<Vec<u8>> = (i..end).map(entry).collect();
            assert_eq!(log.append_batch(&batch).expect("append batch"), i..end);
            i = end;
        }
    }
}

fn db(log: &Log) -> rusqlite::Connection {
    rusqlite::Connection::open(log.db_path()).expect("open the log database")
}

fn checkpoint_of(log: &Log) -> Checkpoint {
    verify_checkpoint(&log.checkpoint().expect("checkpoint"), &log.verifier_key())
        .expect("own checkpoint verifies")
}

#[test]
fn round_trip_at_tile_boundaries() -> Result<(), TlogError> {
    for n in [0u64, 1, 2, 255, 256, 257, 511, 512, 513, 600] {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = open(dir.path());
        let mut older = vec![checkpoint_of(&log)];
        for stop in [1, n / 3, n / 2, n.saturating_sub(1), n] {
            if stop > log.size() && stop <= n {
                fill(&log, log.size(), stop);
                older.push(checkpoint_of(&log));
            }
        }
        assert_eq!(log.size(), n);

        let vkey = log.verifier_key();
        assert!(vkey.starts_with(&format!("{ORIGIN}+")), "{vkey}");
        let mut src = &log;
        let cp = fetch_checkpoint(&mut src, &vkey)?;
        assert_eq!((cp.size, cp.root), (n, log.root()));
        let tree = verify_entries(&mut src, &cp)?;
        assert_eq!(tree.verify_entries(&mut src)?, n);
        for old in &older {
            verify_consistency(&mut src, old, &cp)?;
            verify_tree(&mut src, old)?; // partial tiles of older sizes stay served
            assert_eq!(tree.root_at(old.size), Some(old.root));
        }
        for index in [0, 1, n / 2, 255, 256, n.saturating_sub(1)] {
            if index < n {
                verify_inclusion(&mut src, &cp, index, &entry(index))?;
                assert_eq!(log.entry(index)?, entry(index));
                let err = verify_inclusion(&mut src, &cp, index, b"something else")
                    .expect_err("wrong entry");
                assert!(matches!(err, TlogError::InclusionFailed { .. }), "{err}");
            }
        }
        assert!(matches!(
            verify_inclusion(&mut src, &cp, n, b"x"),
            Err(TlogError::IndexOutOfRange { .. })
        ));
        assert!(matches!(
            log.entry(n),
            Err(TlogError::IndexOutOfRange { .. })
        ));

        // Exactly the C2SP tile set is served, and nothing beyond it.
        for tile in hash_tiles_for_size(n).chain(entry_bundles_for_size(n)) {
            assert!(log.read_path(&tile.path())?.is_some(), "{tile} at size {n}");
        }
        let next_full = TileRef::Hash {
            level: 0,
            index: n / 256,
            partial_width: None,
        };
        assert_eq!(
            log.read_path(&next_full.path())?,
            None,
            "{next_full} at {n}"
        );
        let w = u16::try_from(n % 256).expect("w") + 1;
        assert_eq!(log.tile(0, n / 256, Some(w).filter(|w| *w < 256))?, None);
        assert_eq!(
            log.entry_bundle(n / 256, Some(w).filter(|w| *w < 256))?,
            None
        );
        assert_eq!(
            log.tile(1, 0, Some(u16::try_from(n / 256).expect("w") + 1))?,
            None
        );
        assert_eq!(log.tile(8, 0, Some(1))?, None);
        assert_eq!(log.tile(63, 0, None)?, None);
        assert_eq!(log.tile(0, u64::MAX, None)?, None);
    }
    Ok(())
}

#[test]
fn tiles_have_c2sp_shape() -> Result<(), TlogError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    fill(&log, 0, 256);
    // A full level-0 tile of 256 hashes; the level-1 partial tile of width 1 is the root.
    let tile0 = log.tile(0, 0, None)?.expect("full tile");
    assert_eq!(tile0.len(), 256 * 32);
    assert_eq!(&tile0[..32], &leaf_hash(&entry(0)));
    assert_eq!(log.tile(1, 0, Some(1))?, Some(log.root().to_vec()));
    // Partial tiles of any width up to what exists are prefixes of the full tile.
    assert_eq!(
        log.tile(0, 0, Some(17))?.as_deref(),
        Some(&tile0[..17 * 32])
    );
    // Widths outside 1..=255 are refused.
    assert!(matches!(
        log.tile(0, 0, Some(0)),
        Err(TlogError::BadTileWidth(0))
    ));
    assert!(matches!(
        log.tile(0, 0, Some(256)),
        Err(TlogError::BadTileWidth(256))
    ));
    // Entry bundles: uint16 length + bytes.
    let bundle = log.entry_bundle(0, Some(3))?.expect("bundle");
    let mut want = Vec::new();
    for i in 0..3 {
        let e = entry(i);
        want.extend_from_slice(&u16::try_from(e.len()).expect("len").to_be_bytes());
        want.extend_from_slice(&e);
    }
    assert_eq!(bundle, want);
    // Paths.
    assert!(matches!(
        log.read_path("tile/0/0"),
        Err(TlogError::BadTilePath { .. })
    ));
    assert!(matches!(
        log.read_path("../etc/passwd"),
        Err(TlogError::BadTilePath { .. })
    ));
    let note = String::from_utf8(log.read_path("checkpoint")?.expect("checkpoint")).expect("utf-8");
    assert_eq!(note, log.checkpoint()?);
    assert!(note.starts_with(&format!("{ORIGIN}\n256\n")), "{note}");
    assert!(note.contains(&format!("\n\n— {ORIGIN} ")), "{note}");
    Ok(())
}

#[test]
fn entries_larger_than_a_bundle_can_carry_are_refused() -> Result<(), TlogError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    let err = log.append(&vec![1; 65536]).expect_err("too large");
    assert!(
        matches!(err, TlogError::EntryTooLarge { len: 65536 }),
        "{err}"
    );
    let err = log
        .append_batch(&[vec![1; 10], vec![2; 70000]])
        .expect_err("too large");
    assert!(
        matches!(err, TlogError::EntryTooLarge { len: 70000 }),
        "{err}"
    );
    assert_eq!(log.size(), 0);
    log.append(&vec![3; 65535])?;
    let mut src = &log;
    verify_entries(&mut src, &checkpoint_of(&log))?;
    Ok(())
}

#[test]
fn tampered_entry_is_caught_by_verify_entries() -> Result<(), TlogError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    fill(&log, 0, 600);
    let cp = checkpoint_of(&log);
    let changed = db(&log)
        .execute(
            "UPDATE entries SET data = CAST('evil' AS BLOB) WHERE idx = 300",
            [],
        )
        .expect("tamper");
    assert_eq!(changed, 1);

    let mut src = &log;
    // The hash tiles are untouched, so the tree still verifies ...
    verify_tree(&mut src, &cp)?;
    // ... but the altered entry does not hash to its leaf.
    let err = verify_entries(&mut src, &cp).expect_err("tampered entry");
    assert!(
        matches!(err, TlogError::EntryMismatch { index: 300, ref path } if path == "tile/entries/001"),
        "{err}"
    );
    assert!(err.to_string().contains("entry 300"), "{err}");
    // The original entry is still provably in the log; the altered one is not.
    verify_inclusion(&mut src, &cp, 300, &entry(300))?;
    let err = verify_inclusion(&mut src, &cp, 300, b"evil").expect_err("altered");
    assert!(
        matches!(err, TlogError::InclusionFailed { index: 300, .. }),
        "{err}"
    );
    Ok(())
}

#[test]
fn tampered_hashes_are_caught_by_verify_tree() -> Result<(), TlogError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    fill(&log, 0, 600);
    let cp = checkpoint_of(&log);
    let mut src = &log;

    // A leaf hash (level-0 tile): the root no longer matches; the hint names the tile.
    let conn = db(&log);
    conn.execute(
        "UPDATE hashes SET hash = zeroblob(32) WHERE level = 0 AND idx = 10",
        [],
    )
    .expect("tamper");
    let err = verify_tree(&mut src, &cp).expect_err("tampered leaf hash");
    assert!(
        matches!(err, TlogError::RootMismatch { size: 600, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("root mismatch"), "{err}");
    assert!(err.to_string().contains("tile/0/000"), "{err}");
    // Entry 11's inclusion path uses leaf hash 10 as a sibling: it fails, blaming the tiles.
    let err = verify_inclusion(&mut src, &cp, 11, &entry(11)).expect_err("inclusion");
    assert!(matches!(err, TlogError::RootMismatch { .. }), "{err}");
    // Entry 10's own path does not use its stored leaf hash (the verifier hashes the entry),
    // and the checkpoint committed to the original: it is still provably included.
    verify_inclusion(&mut src, &cp, 10, &entry(10))?;
    conn.execute(
        "UPDATE hashes SET hash = ?1 WHERE level = 0 AND idx = 10",
        [&leaf_hash(&entry(10))[..]],
    )
    .expect("restore");
    verify_entries(&mut src, &cp)?;

    // A level-1 tile hash (tree level 8): the level-0 tiles still give the root, the level-1
    // tile disagrees with them.
    conn.execute(
        "UPDATE hashes SET hash = zeroblob(32) WHERE level = 8 AND idx = 1",
        [],
    )
    .expect("tamper");
    let err = verify_tree(&mut src, &cp).expect_err("tampered level-1 tile");
    assert!(
        matches!(err, TlogError::TileMismatch { ref path, position: 1, .. } if path == "tile/1/000.p/2"),
        "{err}"
    );
    Ok(())
}

#[test]
fn rollback_and_fork_are_caught() -> Result<(), TlogError> {
    let a_dir = tempfile::tempdir().expect("tempdir");
    let a = open(a_dir.path());
    fill(&a, 0, 600);
    let cp_a = checkpoint_of(&a);

    // The same log restored from an older state: smaller than what a client has seen.
    let b_dir = tempfile::tempdir().expect("tempdir");
    let b = open(b_dir.path());
    fill(&b, 0, 513);
    let cp_b = checkpoint_of(&b);
    let mut src = &b;
    verify_entries(&mut src, &cp_b)?;
    let err = verify_consistency(&mut src, &cp_a, &cp_b).expect_err("rolled back");
    assert!(
        matches!(err, TlogError::RolledBack { from: 600, to: 513 }),
        "{err}"
    );
    assert_eq!(err.to_string(), "log rolled back from 600 to 513");

    // A fork: same key, different history, larger size.
    let c_dir = tempfile::tempdir().expect("tempdir");
    let c = open(c_dir.path());
    fill(&c, 0, 100);
    c.append(b"a different entry 100")?;
    fill(&c, 101, 700);
    let cp_c = checkpoint_of(&c);
    let mut src = &c;
    verify_entries(&mut src, &cp_c)?;
    let err = verify_consistency(&mut src, &cp_a, &cp_c).expect_err("fork");
    assert!(
        matches!(
            err,
            TlogError::Inconsistent {
                old_size: 600,
                new_size: 700
            }
        ),
        "{err}"
    );
    // Same size, different root.
    let d_dir = tempfile::tempdir().expect("tempdir");
    let d = open(d_dir.path());
    fill(&d, 0, 599);
    d.append(b"another last entry")?;
    let err = verify_consistency(&mut &d, &cp_a, &checkpoint_of(&d)).expect_err("fork");
    assert!(matches!(err, TlogError::Forked { size: 600, .. }), "{err}");
    Ok(())
}

#[test]
fn wrong_key_and_wrong_origin_are_refused() -> Result<(), TlogError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    fill(&log, 0, 5);
    let note = log.checkpoint()?;

    let same_name = NoteSigner::from_seed(ORIGIN, &[1; 32])?.verifier_key();
    let err = verify_checkpoint(&note, &same_name).expect_err("wrong key");
    assert!(matches!(err, TlogError::NotSigned { .. }), "{err}");
    let other_name = NoteSigner::from_seed("other.example/log", &SEED)?.verifier_key();
    let err = verify_checkpoint(&note, &other_name).expect_err("wrong key");
    assert!(matches!(err, TlogError::NotSigned { .. }), "{err}");

    // A flipped signature byte.
    let (body, sig) = note.rsplit_once(' ').expect("signature");
    let mut raw = base64_simd::STANDARD
        .decode_to_vec(sig.trim_end())
        .expect("base64");
    raw[10] ^= 1;
    let bad = format!("{body} {}\n", base64_simd::STANDARD.encode_to_string(&raw));
    let err = verify_checkpoint(&bad, &log.verifier_key()).expect_err("bad signature");
    assert!(matches!(err, TlogError::SignatureInvalid { .. }), "{err}");
    assert!(err.to_string().starts_with("signature invalid"), "{err}");

    // A checkpoint whose origin is not the key name.
    let signer = NoteSigner::from_seed(ORIGIN, &SEED)?;
    let mut cp = checkpoint_of(&log);
    cp.origin = "somewhere.else/log".to_owned();
    let forged = signer.sign_checkpoint(&cp)?;
    let err = verify_checkpoint(&forged, &log.verifier_key()).expect_err("origin");
    assert!(matches!(err, TlogError::OriginMismatch { .. }), "{err}");

    // Garbage.
    for junk in ["", "\n", "hello", &note.replace('\n', "\r\n")] {
        assert!(
            verify_checkpoint(junk, &log.verifier_key()).is_err(),
            "{junk:?}"
        );
    }
    assert!(matches!(
        verify_checkpoint(&note, "not a key"),
        Err(TlogError::BadVerifierKey { .. })
    ));
    Ok(())
}

#[test]
fn reopen_keeps_size_root_and_checkpoint() -> Result<(), TlogError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let (note, root) = {
        let log = open(dir.path());
        fill(&log, 0, 300);
        (log.checkpoint()?, log.root())
    };
    let log = open(dir.path());
    assert_eq!(log.size(), 300);
    assert_eq!(log.root(), root);
    assert_eq!(log.checkpoint()?, note, "Ed25519 is deterministic");
    let old = verify_checkpoint(&note, &log.verifier_key())?;
    fill(&log, 300, 700);
    drop(log);

    let log = open(dir.path());
    let mut src = &log;
    let cp = fetch_checkpoint(&mut src, &log.verifier_key())?;
    assert_eq!(cp.size, 700);
    verify_entries(&mut src, &cp)?;
    verify_consistency(&mut src, &old, &cp)?;

    // The directory belongs to one origin and one key.
    let err = Log::open(dir.path(), "other.example/log", SEED).expect_err("origin");
    assert!(matches!(err, TlogError::OriginChanged { .. }), "{err}");
    let err = Log::open(dir.path(), ORIGIN, [0; 32]).expect_err("key");
    assert!(matches!(err, TlogError::KeyChanged { .. }), "{err}");
    for bad in ["", "has space", "a+b", "new\nline"] {
        let err = Log::open(dir.path(), bad, SEED).expect_err("bad origin");
        assert!(matches!(err, TlogError::BadOrigin(_)), "{bad:?}: {err}");
    }
    Ok(())
}

#[test]
fn concurrent_appends_get_distinct_indexes() -> Result<(), TlogError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    let indexes: Vec<u64> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4u64)
            .map(|t| {
                let log = &log;
                scope.spawn(move || {
                    let mut got = Vec::new();
                    for i in 0..40u64 {
                        if i % 10 == 9 {
                            let batch = vec![format!("t{t} b{i}").into_bytes(); 3];
                            got.extend(log.append_batch(&batch).expect("batch"));
                        } else {
                            got.push(log.append(format!("t{t} e{i}").as_bytes()).expect("append"));
                        }
                    }
                    got
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect()
    });
    let distinct: BTreeSet<u64> = indexes.iter().copied().collect();
    assert_eq!(distinct.len(), indexes.len());
    assert_eq!(distinct, (0..log.size()).collect());
    assert_eq!(log.size(), 4 * (36 + 4 * 3));
    let mut src = &log;
    verify_entries(&mut src, &checkpoint_of(&log))?;
    Ok(())
}

const CRASH_DIR_ENV: &str = "OBHUT_TLOG_CRASH_CHILD_DIR";

/// The child half of `crash_consistency`: appends until killed. A no-op in a normal test run.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CRASH_DIR_ENV) else {
        return;
    };
    let log = open(Path::new(&dir));
    let mut i = log.size();
    loop {
        if i.is_multiple_of(5) {
            let batch: Vec<Vec<u8>> = (i..i + 20).map(entry).collect();
            log.append_batch(&batch).expect("append batch");
            i += 20;
        } else {
            log.append(&entry(i)).expect("append");
            i += 1;
        }
    }
}

#[test]
fn crash_consistency() -> Result<(), TlogError> {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(open(dir.path()));
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CRASH_DIR_ENV, dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn the appending child");

    // Let it commit a few hundred entries, then SIGKILL it mid-stream.
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).expect("db");
    conn.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let count: Option<i64> = conn
            .query_row("SELECT MAX(idx) FROM entries", [], |r| r.get(0))
            .unwrap_or(None);
        if count.unwrap_or(0) >= 300 {
            break;
        }
        if let Some(status) = child.try_wait().expect("child status") {
            panic!("appending child exited early: {status}");
        }
        assert!(Instant::now() < deadline, "child appended too slowly");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(37));
    child.kill().expect("kill child");
    child.wait().expect("reap child");
    drop(conn);

    // Whatever the child managed, the log reopens whole: every entry there, every hash right.
    let log = open(dir.path());
    let size = log.size();
    assert!(size >= 300, "size {size}");
    let mut src = &log;
    let cp = fetch_checkpoint(&mut src, &log.verifier_key())?;
    let tree = verify_entries(&mut src, &cp)?;
    for i in [0, size / 2, size - 1] {
        assert_eq!(log.entry(i)?, entry(i));
        assert_eq!(tree.leaf_hash(i), Some(leaf_hash(&entry(i))));
    }
    // And it keeps growing consistently.
    fill(&log, size, size + 10);
    let later = checkpoint_of(&log);
    verify_consistency(&mut src, &cp, &later)?;
    Ok(())
}

#[test]
fn log_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Log>();
}

#[test]
fn absurd_sizes_fail_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut empty = DirTileSource::new(dir.path());
    let huge = Checkpoint {
        origin: ORIGIN.to_owned(),
        size: u64::MAX,
        root: EMPTY_ROOT,
    };
    assert!(matches!(
        verify_tree(&mut empty, &huge),
        Err(TlogError::SizeTooLarge(_))
    ));
    assert!(matches!(
        verify_inclusion(&mut empty, &huge, 0, b""),
        Err(TlogError::SizeTooLarge(_))
    ));
    // Large but allowed: fails at the first missing tile, without allocating for the size.
    let big = Checkpoint {
        size: MAX_VERIFIABLE_SIZE,
        ..huge.clone()
    };
    let err = verify_tree(&mut empty, &big).expect_err("nothing served");
    assert!(
        matches!(err, TlogError::TileMissing { ref path, .. } if path == "tile/0/000"),
        "{err}"
    );
    let err = verify_inclusion(&mut empty, &big, MAX_VERIFIABLE_SIZE - 1, b"")
        .expect_err("nothing served");
    assert!(matches!(err, TlogError::TileMissing { .. }), "{err}");
    let small = Checkpoint { size: 5, ..huge };
    let err = verify_consistency(&mut empty, &small, &big).expect_err("nothing served");
    assert!(matches!(err, TlogError::TileMissing { .. }), "{err}");
    // The empty tree needs no tiles, but its root must be the empty root.
    let zero = Checkpoint {
        size: 0,
        ..small.clone()
    };
    verify_entries(&mut empty, &zero).expect("empty tree");
    let bad_zero = Checkpoint {
        root: [1; 32],
        ..zero
    };
    assert!(matches!(
        verify_tree(&mut empty, &bad_zero),
        Err(TlogError::RootMismatch { .. })
    ));
}
