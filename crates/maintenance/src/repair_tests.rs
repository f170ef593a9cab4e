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
        Workers::new(),
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
    for _ in 0..1000 {
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
    let f = fixture(ScrubRate {
        bytes_per_sec: 0,
        pause: Duration::from_secs(3600),
    })
    .await;
    let orphan = blob(&f.sites, &["a", "b"], b"named by no record", 1).await;
    let listed = |id: &str| {
        let site = f.sites.get(id).unwrap();
        async move { site.list().await.unwrap() }
    };
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let old = f
        .catalog
        .take_lease("background", "gw-a", 1_000, now - 10_000)
        .await
        .unwrap()
        .unwrap();
    // gw-a was paused past its lease; gw-b took it over.
    let new = f
        .catalog
        .take_lease("background", "gw-b", 60_000, now)
        .await
        .unwrap()
        .unwrap();
    let refused = crate::collect_orphans(f.catalog.as_ref(), &f.sites, Some(&old)).await;
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
    let removed = crate::collect_orphans(f.catalog.as_ref(), &f.sites, Some(&new))
        .await
        .unwrap();
    assert_eq!(removed, 2);
    assert!(listed("a").await.is_empty() && listed("b").await.is_empty());
}
