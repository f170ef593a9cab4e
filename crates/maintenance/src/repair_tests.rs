//! Repair and scrubbing against a real catalog (SQLite in memory) and local sites in temporary
//! directories: a drain empties a site of objects and of unfinished uploads' parts in one pass
//! over more objects than a page holds, and the scrubber finds and rewrites a missing replica.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::repair::PAGE;
use crate::{Maintenance, RepairState, RepairStatus, ScrubRate, SiteSet, Workers};
use bytes::Bytes;
use obhut_catalog::{
    Bucket, BucketKey, Catalog, Chunk, ObjectRecord, Part, PutCondition, SqliteCatalog, Tenant,
    Upload,
};
use obhut_core::{BlobId, SiteInfo, SiteState};
use obhut_sites::{LocalSite, Site};
use std::sync::Arc;
use std::time::Duration;

struct Fixture {
    _dir: tempfile::TempDir,
    catalog: Arc<dyn Catalog>,
    sites: SiteSet,
    maintenance: Arc<Maintenance>,
}

fn info(id: &str, state: SiteState) -> SiteInfo {
    SiteInfo {
        id: id.into(),
        jurisdiction: "DE".into(),
        location: String::new(),
        state,
    }
}

async fn fixture(scrub: ScrubRate) -> Fixture {
    fixture_with(scrub, Workers::new()).await
}

async fn fixture_with(scrub: ScrubRate, workers: Workers) -> Fixture {
    fixture_retaining(scrub, workers, Duration::ZERO).await
}

async fn fixture_retaining(scrub: ScrubRate, workers: Workers, retention: Duration) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut opened: Vec<(SiteInfo, Arc<dyn Site>)> = Vec::new();
    for id in ["a", "b", "c"] {
        let (site, _) = LocalSite::create(id, dir.path().join(id)).unwrap();
        opened.push((info(id, SiteState::Active), Arc::new(site)));
    }
    let sites = SiteSet::new(opened);
    let catalog: Arc<dyn Catalog> = Arc::new(SqliteCatalog::in_memory().unwrap());
    catalog
        .create_tenant(&Tenant {
            name: "t".into(),
            jurisdictions: vec!["DE".into()],
            min_sites: 2,
            created_ms: 1,
        })
        .await
        .unwrap();
    catalog
        .create_bucket(
            &Bucket {
                name: "bk".into(),
                tenant: "t".into(),
                created_ms: 1,
                versioning: Default::default(),
            },
            &BucketKey {
                bucket: "bk".into(),
                version: 1,
                wrapped: vec![1],
                kcv: vec![2],
                created_ms: 1,
            },
        )
        .await
        .unwrap();
    let policies = crate::policy::Fixed(std::sync::Mutex::new(obhut_core::TenantResidency {
        tenant: "t".into(),
        jurisdictions: vec!["DE".into()],
        min_sites: 2,
        degraded_writes: false,
        buckets: std::collections::BTreeMap::new(),
    }));
    let maintenance = Maintenance::new(
        Arc::clone(&catalog),
        sites.clone(),
        Arc::new(policies),
        workers,
        retention,
    );
    maintenance.spawn_workers(scrub);
    Fixture {
        _dir: dir,
        catalog,
        sites,
        maintenance,
    }
}

/// A blob of `data` on every site in `on`, with its CRC32C as the catalog records it.
async fn blob(sites: &SiteSet, on: &[&str], data: &[u8], part: u32) -> Chunk {
    let id = BlobId::random();
    for site in on {
        let site = sites.get(site).unwrap();
        let mut w = site.create(id).await.unwrap();
        w.write(Bytes::copy_from_slice(data)).await.unwrap();
        w.commit().await.unwrap();
    }
    let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
    crc.update(data);
    Chunk {
        blob: id,
        size: data.len() as u64,
        part,
        crc32c: u32::try_from(crc.finalize()).ok(),
    }
}

async fn wait_for(m: &Maintenance, done: impl Fn(&RepairStatus) -> bool) -> RepairStatus {
    // Bounded, and generous: a loaded 2-core machine moves a few hundred objects slowly.
    for _ in 0..6000 {
        let st = m.status();
        if done(&st) {
            return st;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("maintenance did not get there: {:?}", m.status());
}

const NO_SCRUB: ScrubRate = ScrubRate {
    bytes_per_sec: 0,
    pause: Duration::from_secs(3600),
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_moves_objects_and_upload_parts_in_one_paged_pass() {
    let f = fixture(NO_SCRUB).await;
    let bk = f.catalog.get_bucket("bk").await.unwrap().unwrap();
    let objects = PAGE + 3;
    for i in 0..objects {
        let chunk = blob(&f.sites, &["a", "b"], format!("object {i}").as_bytes(), 1).await;
        let o = ObjectRecord {
            bucket: "bk".into(),
            key: format!("k{i:04}"),
            size: chunk.size,
            etag: "e".into(),
            last_modified_ms: 1,
            envelope: Vec::new(),
            meta: Vec::new(),
            sites: vec!["a".into(), "b".into()],
            chunks: vec![chunk],
            version_id: None,
        };
        f.catalog
            .put_object(&bk, &o, PutCondition::None)
            .await
            .unwrap();
    }
    f.catalog
        .create_upload(
            &bk,
            &Upload {
                upload_id: "u".into(),
                bucket: "bk".into(),
                key: "unfinished".into(),
                initiated_ms: 1,
                envelope: Vec::new(),
                meta: Vec::new(),
                sites: Vec::new(),
            },
        )
        .await
        .unwrap();
    for n in 1..=2 {
        let chunk = blob(&f.sites, &["a", "b"], format!("part {n}").as_bytes(), n).await;
        f.catalog
            .put_part(
                &bk,
                &Part {
                    upload_id: "u".into(),
                    part_number: n,
                    chunk,
                    etag: format!("p{n}"),
                    checksums: Vec::new(),
                    sites: vec!["a".into(), "b".into()],
                    last_modified_ms: 1,
                },
            )
            .await
            .unwrap();
    }

    f.sites.upsert(info("b", SiteState::Draining), None);
    assert!(f.maintenance.start_repair("drain"));
    assert!(
        !f.maintenance.start_repair("operator"),
        "a second pass does not start while one runs"
    );
    let st = wait_for(&f.maintenance, |st| st.state != RepairState::Running).await;

    assert_eq!(st.state, RepairState::Done, "{st:?}");
    let objects = objects as u64;
    assert_eq!(
        (st.objects_total, st.objects_done, st.objects_failed),
        (objects, objects, 0),
        "every object counted once: {st:?}"
    );
    // The bar's end, counted from the catalog at the start: its objects (the upload's parts
    // are counted apart).
    assert_eq!(st.objects_expected, objects, "{st:?}");
    assert_eq!((st.parts_done, st.parts_failed), (2, 0), "{st:?}");
    assert_eq!(st.replicas_copied, objects + 2, "{st:?}");
    assert_eq!(st.replicas_removed, objects + 2, "{st:?}");
    let b = f.sites.get("b").unwrap();
    assert!(b.list().await.unwrap().is_empty(), "blobs left on b");
    assert_eq!(f.catalog.site_references("b").await.unwrap(), 0);
    let c = f.sites.get("c").unwrap();
    assert_eq!(c.list().await.unwrap().len() as u64, objects + 2);
    let parts = f.catalog.list_parts("u", 0, 10).await.unwrap();
    for p in &parts {
        assert_eq!(
            p.sites,
            ["a", "c"],
            "part {} on {:?}",
            p.part_number,
            p.sites
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrubber_pages_through_every_object_and_rewrites_a_missing_replica() {
    let f = fixture(ScrubRate {
        bytes_per_sec: u64::MAX,
        pause: Duration::from_millis(10),
    })
    .await;
    let bk = f.catalog.get_bucket("bk").await.unwrap().unwrap();
    let objects = PAGE + 1;
    let mut lost = None;
    for i in 0..objects {
        let chunk = blob(&f.sites, &["a", "c"], format!("object {i}").as_bytes(), 1).await;
        // The last object's replica is lost: only a walk past the first page finds it.
        lost = Some(chunk.blob);
        let o = ObjectRecord {
            bucket: "bk".into(),
            key: format!("k{i:04}"),
            size: chunk.size,
            etag: "e".into(),
            last_modified_ms: 1,
            envelope: Vec::new(),
            meta: Vec::new(),
            sites: vec!["a".into(), "c".into()],
            chunks: vec![chunk],
            version_id: None,
        };
        f.catalog
            .put_object(&bk, &o, PutCondition::None)
            .await
            .unwrap();
    }
    let lost = lost.unwrap();
    let a = f.sites.get("a").unwrap();
    a.delete(lost).await.unwrap();

    let st = wait_for(&f.maintenance, |st| st.scrub_repaired >= 1).await;
    assert!(st.scrub_bad >= 1, "{st:?}");
    assert!(a.len(lost).await.is_ok(), "the replica is back on a");
    // A pass's bar: its end counted from the catalog at its start, its progress within it.
    let st = wait_for(&f.maintenance, |st| st.scrub_pass_total == objects as u64).await;
    assert!(st.scrub_pass_done <= st.scrub_pass_total, "{st:?}");
    assert!(st.scrub_checked >= st.scrub_pass_done, "{st:?}");
    let workers: Vec<String> = f
        .maintenance
        .workers()
        .list()
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(
        workers,
        ["read-faults", "repair", "scrubber", "site-health"]
    );
    f.maintenance.workers().stop();
}

#[tokio::test]
async fn orphan_collection_under_a_lease_that_passed_on_removes_nothing() {
    let f = fixture(NO_SCRUB).await;
    let orphan = blob(&f.sites, &["a", "b"], b"named by no record", 1).await;
    let listed = |id: &str| {
        let site = f.sites.get(id).unwrap();
        async move { site.list().await.unwrap() }
    };
    // gw-a was paused past its lease (300 ms); gw-b took it over.
    let old = f
        .catalog
        .take_lease("background", "gw-a", 300)
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let new = f
        .catalog
        .take_lease("background", "gw-b", 60_000)
        .await
        .unwrap()
        .unwrap();
    // gw-a still counts itself the holder (its own reckoning is what a pause defeats): the
    // catalog's check refuses it.
    let held = || true;
    let refused = crate::collect_orphans(
        f.catalog.as_ref(),
        &f.sites,
        &crate::Fence {
            lease: Some(&old),
            still_held: &held,
        },
        Duration::ZERO,
        Duration::ZERO,
    )
    .await;
    assert!(
        matches!(
            refused,
            Err(crate::MaintenanceError::Catalog(
                obhut_catalog::CatalogError::LeaseLost(_)
            ))
        ),
        "{refused:?}"
    );
    assert_eq!(listed("a").await, [orphan.blob], "nothing removed");
    assert_eq!(listed("b").await, [orphan.blob]);
    // Under the current lease, but the process's own reckoning says it lapsed: nothing either.
    let lapsed = || false;
    let refused = crate::collect_orphans(
        f.catalog.as_ref(),
        &f.sites,
        &crate::Fence {
            lease: Some(&new),
            still_held: &lapsed,
        },
        Duration::ZERO,
        Duration::ZERO,
    )
    .await;
    assert!(
        matches!(refused, Err(crate::MaintenanceError::Standby)),
        "{refused:?}"
    );
    assert_eq!(listed("a").await, [orphan.blob], "nothing removed");
    let removed = crate::collect_orphans(
        f.catalog.as_ref(),
        &f.sites,
        &crate::Fence {
            lease: Some(&new),
            still_held: &held,
        },
        Duration::ZERO,
        Duration::ZERO,
    )
    .await
    .unwrap();
    assert_eq!(removed, 2);
    assert!(listed("a").await.is_empty() && listed("b").await.is_empty());
}

/// The retention of removed blobs: the blobs of an object deleted from the catalog stay on
/// their sites until they have been found unreferenced for the retention, however old they
/// are, so that a catalog restored to before the deletion reads them; named again meanwhile
/// (the restore), they stay, and the retention starts afresh when they are unnamed again.
#[tokio::test]
async fn blobs_of_a_removed_object_stay_for_the_retention() {
    let retention = Duration::from_millis(1500);
    let f = fixture_retaining(NO_SCRUB, Workers::new(), retention).await;
    let bk = f.catalog.get_bucket("bk").await.unwrap().unwrap();
    let chunk = blob(&f.sites, &["a", "b"], b"deleted later", 1).await;
    let record = ObjectRecord {
        bucket: "bk".into(),
        key: "k".into(),
        size: chunk.size,
        etag: "e".into(),
        last_modified_ms: 1,
        envelope: Vec::new(),
        meta: Vec::new(),
        sites: vec!["a".into(), "b".into()],
        chunks: vec![chunk],
        version_id: None,
    };
    f.catalog
        .put_object(&bk, &record, PutCondition::None)
        .await
        .unwrap();
    let on = |id: &str| {
        let site = f.sites.get(id).unwrap();
        async move { site.list().await.unwrap().contains(&chunk.blob) }
    };
    // Deleted: no record names the blob, which is older than the grace (zero here).
    f.catalog.delete_object(&bk, "k").await.unwrap();
    assert_eq!(
        f.maintenance.collect_orphans(Duration::ZERO).await.unwrap(),
        0
    );
    tokio::time::sleep(retention / 2).await;
    assert_eq!(
        f.maintenance.collect_orphans(Duration::ZERO).await.unwrap(),
        0
    );
    assert!(
        on("a").await && on("b").await,
        "removed within the retention"
    );
    // The catalog restored to before the deletion names it again: it stays, however long.
    f.catalog
        .put_object(&bk, &record, PutCondition::None)
        .await
        .unwrap();
    tokio::time::sleep(retention).await;
    assert_eq!(
        f.maintenance.collect_orphans(Duration::ZERO).await.unwrap(),
        0
    );
    // Unnamed again, the retention starts afresh ...
    f.catalog.delete_object(&bk, "k").await.unwrap();
    assert_eq!(
        f.maintenance.collect_orphans(Duration::ZERO).await.unwrap(),
        0
    );
    tokio::time::sleep(retention / 2).await;
    assert_eq!(
        f.maintenance.collect_orphans(Duration::ZERO).await.unwrap(),
        0
    );
    assert!(on("a").await && on("b").await);
    // ... and once it has passed, the blob goes from every site.
    tokio::time::sleep(retention / 2 + Duration::from_millis(200)).await;
    assert_eq!(
        f.maintenance.collect_orphans(Duration::ZERO).await.unwrap(),
        2
    );
    assert!(!on("a").await && !on("b").await);
}

/// With a retention, the replicas a move leaves on a site the tenant's residency still allows
/// stay for orphan collection (a catalog restored to before the move names them).
#[tokio::test]
async fn replicas_a_drain_leaves_stay_for_the_retention() {
    let retention = Duration::from_secs(3600);
    let f = fixture_retaining(NO_SCRUB, Workers::new(), retention).await;
    let bk = f.catalog.get_bucket("bk").await.unwrap().unwrap();
    let chunk = blob(&f.sites, &["a", "b"], b"drained off a", 1).await;
    f.catalog
        .put_object(
            &bk,
            &ObjectRecord {
                bucket: "bk".into(),
                key: "k".into(),
                size: chunk.size,
                etag: "e".into(),
                last_modified_ms: 1,
                envelope: Vec::new(),
                meta: Vec::new(),
                sites: vec!["a".into(), "b".into()],
                chunks: vec![chunk],
                version_id: None,
            },
            PutCondition::None,
        )
        .await
        .unwrap();
    f.sites.upsert(info("a", SiteState::Draining), None);
    assert!(f.maintenance.start_repair("drain"));
    let st = wait_for(&f.maintenance, |st| st.state != RepairState::Running).await;
    assert_eq!(st.state, RepairState::Done, "{st:?}");
    assert_eq!(st.replicas_removed, 0, "{st:?}");
    let o = f.catalog.get_object("bk", "k").await.unwrap().unwrap();
    let mut now_on = o.sites.clone();
    now_on.sort();
    assert_eq!(now_on, ["b", "c"], "moved off a");
    assert!(
        f.sites
            .get("a")
            .unwrap()
            .list()
            .await
            .unwrap()
            .contains(&chunk.blob),
        "the replica left on a stays for the retention"
    );
    assert_eq!(
        f.maintenance.collect_orphans(Duration::ZERO).await.unwrap(),
        0
    );
}

/// Mark and sweep with a grace period: a blob no record names is removed only once it is older
/// than the grace (a write in flight commits it before then); a blob a record names never is,
/// an object's or an unfinished upload's part's.
#[tokio::test]
async fn orphans_younger_than_the_grace_are_kept_and_referenced_blobs_never_go() {
    let f = fixture(NO_SCRUB).await;
    let bk = f.catalog.get_bucket("bk").await.unwrap().unwrap();
    let named = blob(&f.sites, &["a", "b"], b"an object", 1).await;
    f.catalog
        .put_object(
            &bk,
            &ObjectRecord {
                bucket: "bk".into(),
                key: "k".into(),
                size: named.size,
                etag: "e".into(),
                last_modified_ms: 1,
                envelope: Vec::new(),
                meta: Vec::new(),
                sites: vec!["a".into(), "b".into()],
                chunks: vec![named],
                version_id: None,
            },
            PutCondition::None,
        )
        .await
        .unwrap();
    f.catalog
        .create_upload(
            &bk,
            &Upload {
                upload_id: "u".into(),
                bucket: "bk".into(),
                key: "m".into(),
                initiated_ms: 1,
                envelope: Vec::new(),
                meta: Vec::new(),
                sites: Vec::new(),
            },
        )
        .await
        .unwrap();
    let part = blob(&f.sites, &["a"], b"a part", 1).await;
    f.catalog
        .put_part(
            &bk,
            &Part {
                upload_id: "u".into(),
                part_number: 1,
                chunk: part,
                etag: "p".into(),
                checksums: Vec::new(),
                sites: vec!["a".into()],
                last_modified_ms: 1,
            },
        )
        .await
        .unwrap();
    // Not yet committed (the write in flight): on "a" and "b", no record names it.
    let in_flight = blob(&f.sites, &["a", "b"], b"a write in flight", 1).await;
    // The same blob as the object's, on a site its record does not name: an orphan there.
    let stray = f.sites.get("c").unwrap();
    let mut w = stray.create(named.blob).await.unwrap();
    w.write(Bytes::from_static(b"an object")).await.unwrap();
    w.commit().await.unwrap();

    let hour = Duration::from_secs(3600);
    assert_eq!(f.maintenance.collect_orphans(hour).await.unwrap(), 0);
    for id in ["a", "b"] {
        assert!(
            f.sites
                .get(id)
                .unwrap()
                .list()
                .await
                .unwrap()
                .contains(&in_flight.blob)
        );
    }
    // Once older than the grace, they go, and only they.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        f.maintenance
            .collect_orphans(Duration::from_secs(1))
            .await
            .unwrap(),
        3
    );
    let mut on_a = f.sites.get("a").unwrap().list().await.unwrap();
    on_a.sort_by_key(ToString::to_string);
    let mut expected = vec![named.blob, part.blob];
    expected.sort_by_key(ToString::to_string);
    assert_eq!(on_a, expected);
    assert_eq!(
        f.sites.get("b").unwrap().list().await.unwrap(),
        [named.blob]
    );
    assert!(stray.list().await.unwrap().is_empty());
}

/// A process whose lease passed to another (it was paused, or cut off from the catalog, while
/// its own reckoning still says it holds it) records no move, removes no replica and rewrites
/// no bad replica; while it held the lease, it did all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_lost_its_lease_moves_removes_and_rewrites_nothing() {
    let workers = Workers::new();
    let f = fixture_with(NO_SCRUB, workers.clone()).await;
    let leadership = crate::Leadership::new(
        Arc::clone(&f.catalog),
        "gw-a".into(),
        crate::LeaseTiming {
            ttl: Duration::from_secs(60),
            renew: Duration::from_secs(30),
        },
    );
    assert!(leadership.renew().await);
    workers.lead_with(leadership.clone());
    let bk = f.catalog.get_bucket("bk").await.unwrap().unwrap();
    let mut objects = Vec::new();
    for i in 0..2 {
        let chunk = blob(&f.sites, &["a", "b"], format!("object {i}").as_bytes(), 1).await;
        let o = ObjectRecord {
            bucket: "bk".into(),
            key: format!("k{i}"),
            size: chunk.size,
            etag: "e".into(),
            last_modified_ms: 1,
            envelope: Vec::new(),
            meta: Vec::new(),
            sites: vec!["a".into(), "b".into()],
            chunks: vec![chunk],
            version_id: None,
        };
        f.catalog
            .put_object(&bk, &o, PutCondition::None)
            .await
            .unwrap();
        objects.push(o);
    }
    let a = f.sites.get("a").unwrap();
    // Under its lease, the scrubber rewrites a missing replica.
    a.delete(objects[0].chunks[0].blob).await.unwrap();
    assert_eq!(f.maintenance.scrub_object(&objects[0]).await, (2, 1, 1));
    assert!(a.len(objects[0].chunks[0].blob).await.is_ok());

    // The lease passes to gw-b behind gw-a's back (as after a pause past its life: gw-a's own
    // reckoning still runs for a minute).
    let lease = leadership.current().expect("gw-a holds it");
    f.catalog.release_lease(&lease).await.unwrap();
    assert!(
        f.catalog
            .take_lease("background", "gw-b", 60_000)
            .await
            .unwrap()
            .is_some()
    );
    assert!(leadership.current().is_some(), "gw-a does not know yet");

    a.delete(objects[1].chunks[0].blob).await.unwrap();
    assert_eq!(
        f.maintenance.scrub_object(&objects[1]).await,
        (2, 1, 0),
        "found bad, not rewritten"
    );
    assert!(a.len(objects[1].chunks[0].blob).await.is_err());

    // A drain of b: every move is refused in the catalog, and b keeps its replicas.
    f.sites.upsert(info("b", SiteState::Draining), None);
    assert!(f.maintenance.start_repair("drain"));
    let st = wait_for(&f.maintenance, |st| st.state != RepairState::Running).await;
    assert_eq!((st.objects_done, st.objects_failed), (2, 2), "{st:?}");
    assert!(
        st.errors.iter().all(|e| e.contains("no longer held")),
        "{st:?}"
    );
    assert_eq!(st.replicas_removed, 0, "{st:?}");
    let b = f.sites.get("b").unwrap();
    for o in &objects {
        let now = f.catalog.get_object("bk", &o.key).await.unwrap().unwrap();
        assert_eq!(now.sites, ["a", "b"], "the move was not recorded");
        assert!(b.len(o.chunks[0].blob).await.is_ok(), "b keeps its replica");
    }
    workers.stop();
}

/// A site whose first removal of `blob` is preceded by `before`: what another process did
/// between orphan collection's decision and the removal.
struct BeforeDelete {
    inner: Arc<dyn Site>,
    blob: BlobId,
    before: std::sync::Mutex<Option<futures::future::BoxFuture<'static, ()>>>,
}

#[async_trait::async_trait]
impl Site for BeforeDelete {
    fn id(&self) -> &str {
        self.inner.id()
    }
    async fn create(
        &self,
        blob: BlobId,
    ) -> Result<Box<dyn obhut_sites::BlobWriter>, obhut_sites::SiteError> {
        self.inner.create(blob).await
    }
    async fn read(
        &self,
        blob: BlobId,
        range: std::ops::Range<u64>,
    ) -> Result<obhut_sites::BlobStream, obhut_sites::SiteError> {
        self.inner.read(blob, range).await
    }
    async fn len(&self, blob: BlobId) -> Result<u64, obhut_sites::SiteError> {
        self.inner.len(blob).await
    }
    async fn delete(&self, blob: BlobId) -> Result<(), obhut_sites::SiteError> {
        let before = if blob == self.blob {
            self.before.lock().unwrap().take()
        } else {
            None
        };
        if let Some(before) = before {
            before.await;
        }
        self.inner.delete(blob).await
    }
    async fn list(&self) -> Result<Vec<BlobId>, obhut_sites::SiteError> {
        self.inner.list().await
    }
    async fn list_aged(
        &self,
    ) -> Result<Vec<(BlobId, std::time::SystemTime)>, obhut_sites::SiteError> {
        self.inner.list_aged().await
    }
    async fn clear_temporary(&self) -> Result<usize, obhut_sites::SiteError> {
        self.inner.clear_temporary().await
    }
    async fn clear_temporary_older_than(
        &self,
        min_age: Duration,
    ) -> Result<usize, obhut_sites::SiteError> {
        self.inner.clear_temporary_older_than(min_age).await
    }
    async fn capacity(&self) -> Result<Option<obhut_sites::Capacity>, obhut_sites::SiteError> {
        self.inner.capacity().await
    }
    async fn check(&self) -> Result<(), obhut_sites::SiteError> {
        self.inner.check().await
    }
}

#[tokio::test]
async fn a_blob_moved_back_onto_its_site_after_collection_decided_is_not_removed_under_it() {
    let f = fixture(NO_SCRUB).await;
    let bk = f.catalog.get_bucket("bk").await.unwrap().unwrap();
    // The object lives on a and b; c still holds the copy a move off c left (retained).
    let chunk = blob(&f.sites, &["a", "b", "c"], b"moved away, then back", 1).await;
    let record = ObjectRecord {
        bucket: "bk".into(),
        key: "k".into(),
        size: chunk.size,
        etag: "e".into(),
        last_modified_ms: 1,
        envelope: Vec::new(),
        meta: Vec::new(),
        sites: vec!["a".into(), "b".into()],
        chunks: vec![chunk],
        version_id: None,
    };
    f.catalog
        .put_object(&bk, &record, PutCondition::None)
        .await
        .unwrap();
    // Orphan collection has found c's copy unreferenced and decided to remove it; right
    // before it does, repair moves the object onto c, whose copy it finds in place, and
    // records the move.
    let moved = Arc::new(std::sync::Mutex::new(None));
    let before = {
        let (catalog, moved) = (Arc::clone(&f.catalog), Arc::clone(&moved));
        let chunks = record.chunks.clone();
        Box::pin(async move {
            let from = ["a".to_owned(), "b".to_owned()];
            let to = ["a".to_owned(), "b".to_owned(), "c".to_owned()];
            let recorded = catalog
                .move_object_sites(None, "bk", "k", &chunks, &from, &to)
                .await
                .unwrap();
            *moved.lock().unwrap() = Some(recorded);
        }) as futures::future::BoxFuture<'static, ()>
    };
    let c: Arc<dyn Site> = Arc::new(BeforeDelete {
        inner: f.sites.get("c").unwrap(),
        blob: chunk.blob,
        before: std::sync::Mutex::new(Some(before)),
    });
    let sites = SiteSet::new(vec![
        (info("a", SiteState::Active), f.sites.get("a").unwrap()),
        (info("b", SiteState::Active), f.sites.get("b").unwrap()),
        (info("c", SiteState::Active), c),
    ]);
    crate::collect_orphans(
        f.catalog.as_ref(),
        &sites,
        &crate::Fence::ALONE,
        Duration::ZERO,
        Duration::ZERO,
    )
    .await
    .unwrap();
    assert!(
        moved.lock().unwrap().is_some(),
        "the move was not attempted"
    );
    // Whatever the order, every site the record names holds the blob.
    let now = f.catalog.get_object("bk", "k").await.unwrap().unwrap();
    for id in &now.sites {
        let held = f.sites.get(id).unwrap().list().await.unwrap();
        assert!(
            held.contains(&chunk.blob),
            "the record names {id} (sites {:?}), which no longer holds the blob",
            now.sites
        );
    }
    // The move was refused while the copy was being removed; once gone, repair may place it
    // again and record that.
    assert_eq!(*moved.lock().unwrap(), Some(false));
    assert_eq!(now.sites, ["a", "b"]);
    let to = ["a".to_owned(), "b".to_owned(), "c".to_owned()];
    assert!(
        f.catalog
            .move_object_sites(None, "bk", "k", &record.chunks, &record.sites, &to)
            .await
            .unwrap(),
        "a move after the removal is refused"
    );
}
