//! The S3-cluster site against a real Garage: every check of the sites' conformance suite (one
//! test each, each in a bucket of its own on one node shared by the whole run), a bucket's
//! identity, and writes through a link that loses connections (a proxy between the site and
//! Garage) or dies.
//!
//! Garage runs as a server of its own (see `garage/mod.rs`); a missing binary fails every test
//! here with a message naming it.

mod garage;

use bytes::Bytes;
use futures::StreamExt;
use garage::{Garage, proxy::FlakyProxy, unique_bucket};
use obhut_core::BlobId;
use obhut_sites::conformance::{LARGE_BLOB, pattern};
use obhut_sites::{S3Site, S3SiteConfig, Site, SiteError};
use std::time::{Duration, Instant};

/// The node shared by this run's tests, started by the first that asks.
async fn shared_garage() -> &'static Garage {
    tokio::task::spawn_blocking(Garage::shared)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// A made site: the site, the node it is on, its bucket and its identity.
struct Made {
    site: S3Site,
    garage: &'static Garage,
    bucket: String,
    identity: String,
}

/// A fresh bucket on the shared node made a site, reached through `endpoint` (the node's own
/// when `None`) with the configuration `change` makes.
async fn new_site(
    prefix: &str,
    endpoint: Option<&str>,
    change: impl FnOnce(&mut S3SiteConfig),
) -> Made {
    let garage = shared_garage().await;
    let bucket = unique_bucket(prefix);
    let name = bucket.clone();
    tokio::task::spawn_blocking(move || Garage::shared().new_bucket(&name))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let mut config = garage.site_config_via(endpoint.unwrap_or(&garage.endpoint), &bucket);
    change(&mut config);
    let (site, identity) = S3Site::create("garage-site", config)
        .await
        .unwrap_or_else(|e| panic!("make a Garage bucket a site: {e}\n{}", garage.log_tail()));
    Made {
        site,
        garage,
        bucket,
        identity,
    }
}

async fn conformance_site() -> (S3Site, ()) {
    (new_site("conf", None, |_| {}).await.site, ())
}

mod garage_serves_as_a_conforming_s3_site {
    obhut_sites::site_conformance_tests!(super::conformance_site());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garage_bucket_opens_only_as_the_site_it_was_made() {
    let Made {
        site,
        garage,
        bucket,
        ..
    } = new_site("ident", None, |_| {}).await;
    let config = garage.site_config(&bucket);
    match S3Site::create("garage-other", config.clone()).await {
        Err(SiteError::Identity { reason, .. }) => assert!(reason.contains("already"), "{reason}"),
        Err(e) => panic!("a second create: expected Identity, got {e}"),
        Ok(_) => panic!("a bucket that is a site was made a site again"),
    }
    match S3Site::open("garage-site", config.clone(), "not-the-identity").await {
        Err(SiteError::Identity { .. }) => {}
        Err(e) => panic!("open with a wrong identity: expected Identity, got {e}"),
        Ok(_) => panic!("opened with a wrong identity"),
    }
    site.check().await.expect("the site checks out");
    let mut bad = config;
    bad.secret_key = "not-the-secret-key-not-the-secret-key".into();
    let e = site_error_of(S3Site::open("garage-site", bad, "x").await);
    assert!(
        matches!(
            e,
            SiteError::Remote {
                status: Some(403),
                ..
            }
        ),
        "wrong credentials: expected a 403, got {e}"
    );
    assert!(!e.to_string().contains(garage.secret()), "{e}");
}

fn site_error_of(r: Result<S3Site, SiteError>) -> SiteError {
    match r {
        Err(e) => e,
        Ok(site) => panic!("opened {site:?}"),
    }
}

/// Writes `len` bytes of the `seed` pattern in 1 MiB pieces, calling `between(bytes so far)`
/// after each piece.
async fn write_blob(
    site: &S3Site,
    blob: BlobId,
    seed: u64,
    len: u64,
    mut between: impl FnMut(u64),
) -> Result<u64, SiteError> {
    const MIB: u64 = 1024 * 1024;
    let mut w = site.create(blob).await?;
    let mut at = 0;
    while at < len {
        let n = MIB.min(len - at);
        w.write(Bytes::from(pattern(seed, at..at + n))).await?;
        at += n;
        between(at);
    }
    w.commit().await
}

async fn read_whole(site: &S3Site, blob: BlobId, len: u64) -> Vec<u8> {
    let mut stream = site.read(blob, 0..len).await.expect("read");
    let mut out = Vec::new();
    while let Some(piece) = stream.next().await {
        out.extend_from_slice(&piece.expect("read piece"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_over_a_link_that_loses_connections_succeeds_and_sends_no_part_twice() {
    let garage = shared_garage().await;
    let upstream = garage.endpoint.trim_start_matches("http://").to_owned();
    let proxy = FlakyProxy::start(upstream).await;
    let Made {
        site,
        garage,
        bucket,
        identity,
    } = new_site("flaky", Some(&proxy.endpoint), |_| {}).await;
    let direct = S3Site::open("garage-site", garage.site_config(&bucket), &identity)
        .await
        .expect("open the same site directly");

    let part = S3SiteConfig::DEFAULT_PART_SIZE as u64;
    let blob = BlobId::random();
    let before = proxy.upstream_bytes();
    // At every part boundary the link drops: open connections are cut and the next two
    // connections are lost as well.
    let len = write_blob(&site, blob, 21, LARGE_BLOB, |at| {
        if at % part == 0 {
            proxy.cut_all();
            proxy.drop_next(2);
        }
    })
    .await
    .unwrap_or_else(|e| panic!("a write over a flaky link: {e}\n{}", garage.log_tail()));
    assert_eq!(len, LARGE_BLOB);
    assert!(
        proxy.dropped() >= 4,
        "the link lost connections during the write ({} dropped)",
        proxy.dropped()
    );
    // Every part went through the link once: what the proxy forwarded is the blob and the
    // requests' heads, not a part more.
    let forwarded = proxy.upstream_bytes() - before;
    assert!(
        forwarded < LARGE_BLOB + part / 2,
        "{forwarded} bytes went to Garage for a {LARGE_BLOB}-byte blob: a part was sent twice"
    );
    assert!(
        read_whole(&direct, blob, LARGE_BLOB).await == pattern(21, 0..LARGE_BLOB),
        "the blob read back directly from Garage is not what was written"
    );
    assert_eq!(
        direct.clear_temporary().await.expect("clear_temporary"),
        0,
        "a retried write left an upload behind"
    );

    // A small blob (one PutObject) through the same link.
    let small = BlobId::random();
    proxy.cut_all();
    proxy.drop_next(2);
    write_blob(&site, small, 22, 1000, |_| {})
        .await
        .expect("a small write after two lost connections");
    assert_eq!(direct.len(small).await.expect("len"), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_to_a_dead_site_fails_within_its_deadline_naming_the_site_and_shows_nothing() {
    let garage = shared_garage().await;
    let upstream = garage.endpoint.trim_start_matches("http://").to_owned();
    let proxy = FlakyProxy::start(upstream).await;
    let deadline = Duration::from_secs(3);
    let Made {
        site,
        garage,
        bucket,
        identity,
    } = new_site("dead", Some(&proxy.endpoint), |c| {
        c.request_timeout = deadline;
    })
    .await;
    let direct_config = garage.site_config(&bucket);

    // The link dies after the first part of a multipart write.
    let blob = BlobId::random();
    let part = S3SiteConfig::DEFAULT_PART_SIZE as u64;
    let started = std::cell::Cell::new(None);
    let e = write_blob(&site, blob, 23, LARGE_BLOB, |at| {
        if at == part {
            proxy.set_dead(true);
            started.set(Some(Instant::now()));
        }
    })
    .await
    .expect_err("a write to a dead site fails");
    let took = started.get().expect("the link died").elapsed();
    let text = e.to_string();
    assert!(
        text.starts_with("site garage-site: "),
        "the error names the site: {text}"
    );
    assert!(text.contains("no answer after"), "{text}");
    assert!(!text.contains(garage.secret()), "{text}");
    // One part's deadline (the next part's request), and a loaded machine's scheduling.
    assert!(
        took < deadline * 3,
        "failed after {took:?}, deadline {deadline:?}"
    );

    // Nothing of it is visible on the cluster, and its upload is a leftover to clear.
    proxy.set_dead(false);
    let direct = S3Site::open("garage-site", direct_config, &identity)
        .await
        .expect("open directly");
    assert!(direct.len(blob).await.expect_err("no blob").is_not_found());
    assert!(!direct.list().await.expect("list").contains(&blob));
    assert!(
        direct.clear_temporary().await.expect("clear_temporary") <= 1,
        "at most the failed write's upload is left"
    );
    assert_eq!(direct.clear_temporary().await.expect("clear_temporary"), 0);
}
