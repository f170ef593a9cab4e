//! The behaviour every [`Site`] backend must show, as one suite that each backend's tests run
//! against a real instance (a directory, an S3 service): one trait, one shared suite, every
//! adapter.
//!
//! It owns only test data, generated from each byte's offset so that blobs larger than a part
//! are written and checked piece by piece, never held whole. Each check is named after the
//! property it guards and panics with that name on failure. It sees nothing but the [`Site`]
//! trait: no backend internals.
//!
//! [`site_conformance_tests!`] makes one test of each check, each on a fresh site, so that one
//! failure does not hide the others. A site under test must be used by nothing else while a
//! check runs, and must count every uncommitted write as a leftover (for an `S3Site`,
//! `temporary_min_age` zero and a part size of at most 8 MiB, so that [`LARGE_BLOB`] is a
//! multipart upload).
//!
//! [`site_conformance_tests!`]: crate::site_conformance_tests

use crate::{Site, SiteError};
use bytes::Bytes;
use futures::StreamExt;
use obhut_core::BlobId;
use std::ops::Range;

const MIB: u64 = 1024 * 1024;
/// Larger than two 8 MiB parts, and not a multiple of anything a backend might use.
pub const LARGE_BLOB: u64 = 2 * 8 * MIB + 3 * MIB + 12_345;

/// One `#[tokio::test]` per check of the suite, each on a fresh site.
///
/// `$make` is an expression giving a future of `(site, guard)`: the site (anything that
/// implements [`Site`]) and whatever must outlive it (a temporary directory, a server process;
/// `()` if nothing). Invoke it in a module of its own, e.g.
/// `mod conformance { obhut_sites::site_conformance_tests!(make_site()); }`.
#[macro_export]
macro_rules! site_conformance_tests {
    // The checks, in the order `run_all` runs them: the one list of the suite.
    (@each $how:tt) => {
        $crate::site_conformance_tests!(@expand $how
            committed_blob_reads_back_whole_and_in_ranges
            blob_is_invisible_until_committed
            empty_blob_is_a_blob
            blob_larger_than_a_part_streams_through
            blob_of_exactly_one_part_commits
            missing_blob_is_not_found
            reading_past_the_end_is_truncated
            deleted_blob_is_gone_and_deleting_a_missing_blob_succeeds
            list_shows_committed_blobs_only
            listed_blobs_are_dated_by_their_write
            writer_dropped_before_commit_leaves_nothing
            abandoned_write_is_cleared_as_temporary
            young_leftovers_survive_a_clear_by_age
            capacity_answers
        );
    };
    (@expand (tests $make:expr) $($check:ident)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                // A tuple drops its fields in order: the backend before its guard.
                let made = $make.await;
                $crate::conformance::$check(&made.0).await;
            }
        )*
    };
    (@expand (run_all $site:expr) $($check:ident)*) => {
        $( $crate::conformance::$check($site).await; )*
    };
    ($make:expr) => {
        $crate::site_conformance_tests!(@each (tests $make));
    };
}

/// Runs every check in turn on one site, for a backend of which a test can make only one;
/// [`site_conformance_tests!`](crate::site_conformance_tests) reports each check on its own.
pub async fn run_all(site: &dyn Site) {
    crate::site_conformance_tests!(@each (run_all site));
}

/// The byte at `offset` of the test blob made from `seed`.
#[must_use]
pub fn byte_at(seed: u64, offset: u64) -> u8 {
    let x = (offset ^ seed.rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 56) as u8
}

/// Bytes `range` of the test blob made from `seed`.
#[must_use]
pub fn pattern(seed: u64, range: Range<u64>) -> Vec<u8> {
    range.map(|i| byte_at(seed, i)).collect()
}

/// Writes `len` bytes of the `seed` pattern in pieces of the sizes in `pieces` (repeating the
/// last), without committing.
async fn write_pattern(
    site: &dyn Site,
    blob: BlobId,
    seed: u64,
    len: u64,
    pieces: &[u64],
) -> Box<dyn crate::BlobWriter> {
    let mut w = site.create(blob).await.expect("create a writer");
    let mut at = 0;
    let mut i = 0;
    while at < len {
        let piece = pieces[i.min(pieces.len() - 1)].min(len - at);
        w.write(Bytes::from(pattern(seed, at..at + piece)))
            .await
            .expect("write a piece of a blob");
        at += piece;
        i += 1;
    }
    w
}

/// Writes and commits a `len`-byte blob of the `seed` pattern.
async fn put(site: &dyn Site, blob: BlobId, seed: u64, len: u64, pieces: &[u64]) {
    let w = write_pattern(site, blob, seed, len, pieces).await;
    assert_eq!(
        w.commit().await.expect("commit a blob"),
        len,
        "commit returns the blob's length"
    );
}

/// Reads `range` and checks it piece by piece against the `seed` pattern.
async fn assert_reads(site: &dyn Site, blob: BlobId, seed: u64, range: Range<u64>) {
    let mut stream = site
        .read(blob, range.clone())
        .await
        .unwrap_or_else(|e| panic!("read {range:?}: {e}"));
    let mut at = range.start;
    while let Some(piece) = stream.next().await {
        let piece = piece.unwrap_or_else(|e| panic!("stream of {range:?} at {at}: {e}"));
        let end = at + piece.len() as u64;
        assert!(end <= range.end, "read of {range:?} returned past its end");
        assert!(
            piece[..] == pattern(seed, at..end)[..],
            "read of {range:?}: wrong bytes in {at}..{end}"
        );
        at = end;
    }
    assert_eq!(
        at, range.end,
        "read of {range:?} ended early without an error"
    );
}

async fn read_error(site: &dyn Site, blob: BlobId, range: Range<u64>) -> SiteError {
    match site.read(blob, range.clone()).await {
        Err(e) => e,
        Ok(mut stream) => {
            while let Some(piece) = stream.next().await {
                if let Err(e) = piece {
                    return e;
                }
            }
            panic!("read of {range:?} succeeded where it must fail");
        }
    }
}

fn assert_not_found(e: &SiteError, what: &str) {
    assert!(e.is_not_found(), "{what}: expected NotFound, got {e}");
}

pub async fn committed_blob_reads_back_whole_and_in_ranges(site: &dyn Site) {
    let blob = BlobId::random();
    let len = 700_000;
    put(site, blob, 1, len, &[300_000, 1, 65_536]).await;
    assert_eq!(site.len(blob).await.expect("len"), len);
    assert_reads(site, blob, 1, 0..len).await;
    assert_reads(site, blob, 1, 5..300_007).await;
    assert_reads(site, blob, 1, len - 1..len).await;
    assert_reads(site, blob, 1, 0..1).await;
    assert_reads(site, blob, 1, 123..123).await;
    site.delete(blob).await.expect("delete");
}

pub async fn blob_is_invisible_until_committed(site: &dyn Site) {
    let blob = BlobId::random();
    let w = write_pattern(site, blob, 2, 1000, &[1000]).await;
    assert_not_found(
        &read_error(site, blob, 0..1000).await,
        "a blob being written",
    );
    assert!(
        !site.list().await.expect("list").contains(&blob),
        "a blob being written is not listed"
    );
    w.commit().await.expect("commit");
    assert_reads(site, blob, 2, 0..1000).await;
    site.delete(blob).await.expect("delete");
}

pub async fn empty_blob_is_a_blob(site: &dyn Site) {
    let blob = BlobId::random();
    let w = site.create(blob).await.expect("create");
    assert_eq!(w.commit().await.expect("commit"), 0, "empty blob length");
    assert_eq!(site.len(blob).await.expect("len"), 0);
    assert_reads(site, blob, 3, 0..0).await;
    assert!(
        site.list().await.expect("list").contains(&blob),
        "an empty blob is listed"
    );
    assert!(
        matches!(
            read_error(site, blob, 0..1).await,
            SiteError::Truncated { .. }
        ),
        "reading a byte of an empty blob is Truncated"
    );
    site.delete(blob).await.expect("delete");
}

pub async fn blob_larger_than_a_part_streams_through(site: &dyn Site) {
    let blob = BlobId::random();
    // One write bigger than a part, then pieces that straddle part boundaries.
    put(site, blob, 4, LARGE_BLOB, &[9 * MIB, MIB + 7]).await;
    assert_eq!(site.len(blob).await.expect("len"), LARGE_BLOB);
    assert_reads(site, blob, 4, 0..LARGE_BLOB).await;
    for boundary in [8 * MIB, 16 * MIB] {
        assert_reads(site, blob, 4, boundary - 10..boundary + 10).await;
    }
    assert_reads(site, blob, 4, LARGE_BLOB - 100..LARGE_BLOB).await;
    assert!(site.list().await.expect("list").contains(&blob));
    site.delete(blob).await.expect("delete");
    assert_not_found(
        &site.len(blob).await.expect_err("deleted"),
        "len of a deleted large blob",
    );
}

pub async fn blob_of_exactly_one_part_commits(site: &dyn Site) {
    let blob = BlobId::random();
    let len = 8 * MIB;
    put(site, blob, 5, len, &[MIB]).await;
    assert_eq!(site.len(blob).await.expect("len"), len);
    assert_reads(site, blob, 5, len - 3..len).await;
    site.delete(blob).await.expect("delete");
}

pub async fn missing_blob_is_not_found(site: &dyn Site) {
    let blob = BlobId::random();
    assert_not_found(&read_error(site, blob, 0..10).await, "read");
    assert_not_found(&read_error(site, blob, 0..0).await, "empty read");
    assert_not_found(&site.len(blob).await.expect_err("len"), "len");
}

pub async fn reading_past_the_end_is_truncated(site: &dyn Site) {
    let blob = BlobId::random();
    put(site, blob, 6, 10, &[10]).await;
    for range in [0..20, 5..11, 10..11, 20..30] {
        let e = read_error(site, blob, range.clone()).await;
        assert!(
            matches!(e, SiteError::Truncated { .. }),
            "read of {range:?} of a 10-byte blob: expected Truncated, got {e}"
        );
    }
    site.delete(blob).await.expect("delete");
}

pub async fn deleted_blob_is_gone_and_deleting_a_missing_blob_succeeds(site: &dyn Site) {
    let blob = BlobId::random();
    put(site, blob, 7, 100, &[100]).await;
    site.delete(blob).await.expect("delete");
    assert_not_found(&read_error(site, blob, 0..100).await, "read after delete");
    site.delete(blob).await.expect("deleting again succeeds");
    site.delete(BlobId::random())
        .await
        .expect("deleting a blob that never was succeeds");
}

pub async fn list_shows_committed_blobs_only(site: &dyn Site) {
    let committed: Vec<BlobId> = (0..3).map(|_| BlobId::random()).collect();
    for (i, blob) in committed.iter().enumerate() {
        put(site, *blob, 8, 10 + i as u64, &[7]).await;
    }
    let uncommitted = BlobId::random();
    let w = write_pattern(site, uncommitted, 8, 10, &[10]).await;
    let deleted = BlobId::random();
    put(site, deleted, 8, 10, &[10]).await;
    site.delete(deleted).await.expect("delete");
    let listed = site.list().await.expect("list");
    for blob in &committed {
        assert!(listed.contains(blob), "committed blob {blob} is listed");
    }
    assert!(
        !listed.contains(&uncommitted),
        "uncommitted blob is not listed"
    );
    assert!(!listed.contains(&deleted), "deleted blob is not listed");
    let mut unique = listed.clone();
    unique.sort_by_key(ToString::to_string);
    unique.dedup();
    assert_eq!(unique.len(), listed.len(), "each blob is listed once");
    drop(w);
    for blob in &committed {
        site.delete(*blob).await.expect("delete");
    }
}

/// `list_aged` lists what `list` lists, each blob dated by its write (the site's clock, here
/// the same machine's: within a minute), and never in the future by more than that.
pub async fn listed_blobs_are_dated_by_their_write(site: &dyn Site) {
    let before = std::time::SystemTime::now();
    let blob = BlobId::random();
    put(site, blob, 11, 10, &[10]).await;
    let uncommitted = BlobId::random();
    let w = write_pattern(site, uncommitted, 11, 10, &[10]).await;
    let aged = site.list_aged().await.expect("list_aged");
    let (_, written) = aged
        .iter()
        .find(|(b, _)| *b == blob)
        .expect("the committed blob is listed with its date");
    let minute = std::time::Duration::from_secs(60);
    assert!(
        *written + minute >= before && *written <= std::time::SystemTime::now() + minute,
        "written {written:?}, test started {before:?}"
    );
    assert!(
        !aged.iter().any(|(b, _)| *b == uncommitted),
        "an uncommitted blob is not listed"
    );
    let mut plain = site.list().await.expect("list");
    let mut dated: Vec<BlobId> = aged.into_iter().map(|(b, _)| b).collect();
    plain.sort_by_key(ToString::to_string);
    dated.sort_by_key(ToString::to_string);
    assert_eq!(plain, dated, "list_aged lists what list lists");
    drop(w);
    site.delete(blob).await.expect("delete");
}

pub async fn writer_dropped_before_commit_leaves_nothing(site: &dyn Site) {
    for len in [10, 9 * MIB] {
        let blob = BlobId::random();
        let w = write_pattern(site, blob, 9, len, &[MIB]).await;
        drop(w);
        assert_not_found(
            &read_error(site, blob, 0..1).await,
            "read of a dropped write",
        );
        assert_not_found(
            &site.len(blob).await.expect_err("len"),
            "len of a dropped write",
        );
        assert!(
            !site.list().await.expect("list").contains(&blob),
            "a dropped write is not listed"
        );
        // The writer cleaned up after itself: there is nothing left over.
        assert_eq!(
            site.clear_temporary().await.expect("clear_temporary"),
            0,
            "a dropped writer of {len} bytes left something for clear_temporary"
        );
    }
}

pub async fn abandoned_write_is_cleared_as_temporary(site: &dyn Site) {
    // A writer that never got to run its drop (a crash): what it left is a leftover.
    let blob = BlobId::random();
    let w = write_pattern(site, blob, 10, 9 * MIB, &[MIB]).await;
    std::mem::forget(w);
    assert_not_found(
        &read_error(site, blob, 0..1).await,
        "read of an abandoned write",
    );
    let cleared = site.clear_temporary().await.expect("clear_temporary");
    assert!(
        cleared >= 1,
        "clear_temporary removed the abandoned write's leftovers"
    );
    assert_eq!(
        site.clear_temporary().await.expect("clear_temporary"),
        0,
        "nothing is left after clear_temporary"
    );
    assert!(!site.list().await.expect("list").contains(&blob));
}

/// A clear of leftovers older than an hour leaves a write abandoned just now (it may be
/// another gateway's write in progress); a clear without age takes it.
pub async fn young_leftovers_survive_a_clear_by_age(site: &dyn Site) {
    let blob = BlobId::random();
    let w = write_pattern(site, blob, 12, 9 * MIB, &[MIB]).await;
    std::mem::forget(w);
    assert_eq!(
        site.clear_temporary_older_than(std::time::Duration::from_secs(3600))
            .await
            .expect("clear_temporary_older_than"),
        0,
        "a write abandoned just now is younger than an hour"
    );
    assert!(
        site.clear_temporary().await.expect("clear_temporary") >= 1,
        "the young leftover was still there"
    );
}

pub async fn capacity_answers(site: &dyn Site) {
    if let Some(c) = site.capacity().await.expect("capacity") {
        assert!(c.available_bytes <= c.total_bytes, "available <= total");
    }
}
