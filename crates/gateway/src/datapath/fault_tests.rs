//! The data path with sites that fail on purpose: writes either reach `min_ok` sites durably or
//! leave nothing behind, and reads never serve bytes that failed authentication.

use super::{read_range, write_blob};
use crate::keys::ObjectCipher;
use bytes::Bytes;
use futures::StreamExt;
use obhut_catalog::Chunk;
use obhut_crypto::Key;
use obhut_sites::faults::{Faults, FaultySite, ReadFault};
use obhut_sites::{LocalSite, Site};
use s3s::checksum::ChecksumHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Three MiB: more than one write buffer, so a write reaches the sites in several pieces.
const BODY_LEN: usize = 3 * 1024 * 1024;

struct Fixture {
    _dir: tempfile::TempDir,
    sites: Vec<Arc<dyn Site>>,
    faults: Vec<Arc<Faults>>,
    cipher: ObjectCipher,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sites: Vec<Arc<dyn Site>> = Vec::new();
    let mut faults = Vec::new();
    for id in ["site-a", "site-b"] {
        let (local, _) = LocalSite::create(id, dir.path().join(id)).expect("create site");
        let (site, switches) = FaultySite::wrap(Arc::new(local));
        sites.push(site);
        faults.push(switches);
    }
    let bucket_key = Key::random().expect("key");
    let (cipher, _) = ObjectCipher::generate(
        &crate::keys::Binding::object("tenant", "bucket", "key"),
        &bucket_key,
        1,
    )
    .expect("object key");
    Fixture {
        _dir: dir,
        sites,
        faults,
        cipher,
    }
}

fn same_cipher(c: &ObjectCipher) -> ObjectCipher {
    ObjectCipher {
        key: Key::from_bytes(*c.key.expose()),
        version_id: c.version_id,
        segment_size: c.segment_size,
    }
}

fn body() -> Vec<u8> {
    (0..BODY_LEN).map(|i| (i % 251) as u8).collect()
}

async fn write(f: &Fixture, min_ok: usize) -> s3s::S3Result<super::Written> {
    let data = body();
    let pieces: Vec<Result<Bytes, s3s::StdError>> = data
        .chunks(256 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    write_blob(
        &f.sites,
        min_ok,
        futures::stream::iter(pieces),
        Some(BODY_LEN as u64),
        ChecksumHasher::default(),
        Box::new(|_, _| Ok(())),
        &f.cipher,
        1,
    )
    .await
}

#[tokio::test]
async fn a_body_without_a_declared_length_cannot_grow_past_the_limit() {
    let f = fixture();
    let pieces: Vec<Result<Bytes, s3s::StdError>> = body()
        .chunks(256 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let limit = BODY_LEN as u64 - 1;
    let Err(refused) = super::write_blob_within(
        &f.sites,
        f.sites.len(),
        futures::stream::iter(pieces),
        None,
        limit,
        ChecksumHasher::default(),
        Box::new(|_, _| Ok(())),
        &f.cipher,
        1,
    )
    .await
    else {
        panic!("a body past the limit was stored");
    };
    assert_eq!(refused.code(), &s3s::S3ErrorCode::EntityTooLarge);
    no_leftovers(&f.sites).await;
    // The same body within the limit is stored.
    let pieces: Vec<Result<Bytes, s3s::StdError>> = body()
        .chunks(256 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    super::write_blob_within(
        &f.sites,
        f.sites.len(),
        futures::stream::iter(pieces),
        None,
        BODY_LEN as u64,
        ChecksumHasher::default(),
        Box::new(|_, _| Ok(())),
        &f.cipher,
        1,
    )
    .await
    .unwrap_or_else(|e| panic!("a body within the limit: {e}"));
}

/// Blobs stored on `site` (committed ones; temporary files are not blobs).
async fn stored(site: &Arc<dyn Site>) -> usize {
    site.list().await.expect("list").len()
}

/// Waits for the background deletion of discarded blobs (bounded: a few seconds at most).
async fn settle(sites: &[Arc<dyn Site>]) -> Vec<usize> {
    let mut counts = Vec::new();
    for _ in 0..50 {
        counts.clear();
        for s in sites {
            counts.push(stored(s).await);
        }
        if counts.iter().all(|&n| n == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    counts
}

/// No temporary file of an abandoned write is left on any site.
async fn no_leftovers(sites: &[Arc<dyn Site>]) {
    for s in sites {
        assert_eq!(
            s.clear_temporary().await.expect("clear"),
            0,
            "site {} kept a temporary file",
            s.id()
        );
    }
}

#[tokio::test]
async fn a_write_is_durable_on_every_site_when_all_succeed() {
    let f = fixture();
    let w = write(&f, 2).await.expect("write");
    assert_eq!(w.sites, vec![0, 1]);
    assert_eq!(w.chunk.size, BODY_LEN as u64);
    for s in &f.sites {
        assert_eq!(stored(s).await, 1, "site {}", s.id());
    }
}

#[tokio::test]
async fn a_write_that_cannot_start_on_min_sites_is_refused_and_leaves_nothing() {
    let f = fixture();
    f.faults[1].fail_create(true);
    let err = write(&f, 2).await.err().expect("must fail");
    assert!(f.faults[1].injected() > 0, "the fault was hit");
    assert_eq!(
        err.status_code(),
        Some(http::StatusCode::SERVICE_UNAVAILABLE),
        "{err:?}"
    );
    assert_eq!(settle(&f.sites).await, vec![0, 0]);
    no_leftovers(&f.sites).await;
}

#[tokio::test]
async fn a_site_failing_mid_stream_fails_the_write_and_leaves_nothing() {
    let f = fixture();
    f.faults[1].fail_write_after(Some(BODY_LEN as u64 / 2));
    assert!(
        write(&f, 2).await.is_err(),
        "a write below min_ok succeeded"
    );
    assert!(f.faults[1].injected() > 0, "the fault was hit");
    assert_eq!(settle(&f.sites).await, vec![0, 0]);
    no_leftovers(&f.sites).await;
}

#[tokio::test]
async fn a_degraded_write_reports_only_the_sites_that_hold_the_blob() {
    let f = fixture();
    f.faults[1].fail_write_after(Some(BODY_LEN as u64 / 2));
    let w = write(&f, 1).await.expect("degraded write");
    assert_eq!(w.sites, vec![0], "only the healthy site holds the blob");
    assert_eq!(stored(&f.sites[0]).await, 1);
    assert_eq!(stored(&f.sites[1]).await, 0);
    no_leftovers(&f.sites).await;
}

#[tokio::test]
async fn a_failed_commit_on_one_site_withdraws_the_blob_from_the_others() {
    let f = fixture();
    f.faults[1].fail_commit(true);
    assert!(
        write(&f, 2).await.is_err(),
        "a write below min_ok succeeded"
    );
    assert!(f.faults[1].injected() > 0, "the fault was hit");
    assert_eq!(
        settle(&f.sites).await,
        vec![0, 0],
        "the blob committed on the healthy site is an orphan and is deleted"
    );
    no_leftovers(&f.sites).await;
}

async fn read_all(
    f: &Fixture,
    chunk: &Chunk,
    range: std::ops::Range<u64>,
) -> (Result<Vec<u8>, String>, usize) {
    let faults_seen = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&faults_seen);
    let cipher = Arc::new(same_cipher(&f.cipher));
    let mut stream = read_range(
        f.sites.clone(),
        vec![*chunk],
        range,
        cipher,
        Some(Arc::new(move || {
            seen.fetch_add(1, Ordering::SeqCst);
        })),
    );
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(b) => out.extend_from_slice(&b),
            Err(e) => return (Err(e.to_string()), faults_seen.load(Ordering::SeqCst)),
        }
    }
    (Ok(out), faults_seen.load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_read_fails_over_from_a_bad_replica_and_reports_it() {
    let f = fixture();
    let w = write(&f, 2).await.expect("write");
    let data = body();
    let whole = 0..BODY_LEN as u64;
    let middle = 1_500_000..2_500_000;
    // Within one segment: read on the connection's task, without a task of its own.
    let small = 1_000..5_000;
    // (fault on the first replica, range read, whether the read meets the fault)
    let cases = [
        (ReadFault::Missing, small.clone(), true),
        (ReadFault::Truncated(2_000), small.clone(), true),
        (ReadFault::FlippedByte(1_000), small.clone(), true),
        (ReadFault::FlippedByte(2_000_000), small.clone(), false),
        (ReadFault::Missing, whole.clone(), true),
        (ReadFault::Missing, middle.clone(), true),
        (ReadFault::Truncated(100_000), whole.clone(), true),
        (ReadFault::Truncated(100_000), middle.clone(), true),
        // Inside the first segment's ciphertext, past the blob header.
        (ReadFault::FlippedByte(1_000), whole.clone(), true),
        // A range that does not touch the altered segment reads the replica as it is.
        (ReadFault::FlippedByte(1_000), middle.clone(), false),
        (ReadFault::FlippedByte(2_000_000), whole.clone(), true),
        (ReadFault::FlippedByte(2_000_000), middle.clone(), true),
    ];
    for (fault, range, meets_fault) in cases {
        f.faults[0].fail_reads(Some(fault));
        let (got, reported) = read_all(&f, &w.chunk, range.clone()).await;
        let got = got.unwrap_or_else(|e| panic!("{fault:?} {range:?}: {e}"));
        // The range is within BODY_LEN, so it fits usize.
        #[allow(clippy::cast_possible_truncation)]
        let want = &data[range.start as usize..range.end as usize];
        assert!(got == want, "{fault:?} {range:?}: wrong bytes served");
        assert_eq!(
            reported,
            usize::from(meets_fault),
            "{fault:?} {range:?}: a bad replica met is reported, once"
        );
    }
}

#[tokio::test]
async fn a_read_within_one_segment_with_no_good_replica_is_an_error_and_no_bytes() {
    let f = fixture();
    let w = write(&f, 2).await.expect("write");
    for fault in [ReadFault::FlippedByte(1_000), ReadFault::Missing] {
        f.faults[0].fail_reads(Some(fault));
        f.faults[1].fail_reads(Some(fault));
        let (got, reported) = read_all(&f, &w.chunk, 100..200).await;
        let e = got.expect_err("no replica can serve the range");
        assert!(e.contains("no replica"), "{fault:?}: {e}");
        assert_eq!(reported, 1, "{fault:?}: the failed read is reported");
    }
    f.faults[0].fail_reads(None);
    f.faults[1].fail_reads(None);
    let (got, _) = read_all(&f, &w.chunk, 100..200).await;
    assert_eq!(got.expect("healthy replicas"), body()[100..200].to_vec());
}

#[tokio::test]
async fn a_read_with_no_good_replica_ends_in_an_error_never_in_wrong_bytes() {
    let f = fixture();
    let w = write(&f, 2).await.expect("write");
    let data = body();
    f.faults[0].fail_reads(Some(ReadFault::FlippedByte(2_000_000)));
    f.faults[1].fail_reads(Some(ReadFault::FlippedByte(2_000_000)));
    let faults_seen = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&faults_seen);
    let mut stream = read_range(
        f.sites.clone(),
        vec![w.chunk],
        0..BODY_LEN as u64,
        Arc::new(same_cipher(&f.cipher)),
        Some(Arc::new(move || {
            seen.fetch_add(1, Ordering::SeqCst);
        })),
    );
    let mut served = Vec::new();
    let mut failed = false;
    while let Some(item) = stream.next().await {
        match item {
            Ok(b) => served.extend_from_slice(&b),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the stream must end in an error");
    assert!(served.len() < BODY_LEN, "a short body, not a complete one");
    assert!(
        served[..] == data[..served.len()],
        "every byte served is authentic"
    );
    assert!(
        faults_seen.load(Ordering::SeqCst) > 0,
        "the fault is reported"
    );
}
