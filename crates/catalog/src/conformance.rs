//! The catalog conformance suite: every [`Catalog`] implementation must pass it unchanged.
//!
//! Each check asserts behaviour the gateway relies on (S3 byte-order listing, conditional
//! puts, atomic completion of uploads, ownership of bucket names), so a new backend that
//! passes can replace SQLite without touching the gateway. Each check starts from an empty
//! catalog and is named after the property it guards; [`catalog_conformance_tests!`] makes one
//! test of each, so that one failure does not hide the others. It sees nothing but the
//! [`Catalog`] trait: no backend internals.
//!
//! [`catalog_conformance_tests!`]: crate::catalog_conformance_tests

#![allow(clippy::missing_panics_doc, clippy::unwrap_used)]

use crate::{
    Bucket, BucketKey, Catalog, CatalogError, Chunk, Lease, ListFrom, ObjectRecord, Part,
    PutCondition, Quota, QuotaTarget, Reservation, ResidencyRule, SiteRecord, Tenant, Upload,
    Usage,
};
use obhut_core::{BlobId, PolicyScope, SiteState};

/// One `#[tokio::test]` per check of the suite, each on a fresh, empty catalog.
///
/// `$make` is an expression giving a future of `(catalog, guard)`: the catalog (anything that
/// implements [`Catalog`]) and whatever must outlive it (a temporary directory, a database
/// server; `()` if nothing). Invoke it in a module of its own, e.g.
/// `mod in_memory { obhut_catalog::catalog_conformance_tests!(async { (make(), ()) }); }`.
#[macro_export]
macro_rules! catalog_conformance_tests {
    (@tests $make:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                // A tuple drops its fields in order: the backend before its guard.
                let made = $make.await;
                $crate::conformance::$check(&made.0).await;
            }
        )*
    };
    ($make:expr) => {
        $crate::catalog_conformance_tests!(@tests $make;
            tenants_and_keys,
            sites_registry,
            bucket_names_are_global_and_owned,
            objects_put_get_delete_and_conditions,
            listing_follows_byte_order_with_prefix_and_marker,
            multipart_lifecycle,
            referenced_blobs_cover_objects_and_parts,
            bucket_delete_requires_empty,
            key_rotation_records,
            residency_rules_and_site_moves,
            object_pages_walk_a_whole_bucket,
            quotas_are_set_read_and_cleared,
            usage_counts_puts_overwrites_and_deletes,
            usage_counts_parts_until_completion_or_abort,
            reservations_hold_quota_until_settled_or_released,
            overwrites_are_credited_and_freeing_writes_never_refused,
            expired_reservations_are_ignored_and_reclaimed,
            a_commit_whose_reservation_was_lost_is_checked_again,
            concurrent_reservations_never_pass_a_quota,
            deleting_a_bucket_drops_its_usage_and_quota,
            a_recount_of_counted_usage_changes_nothing,
            a_lease_is_taken_and_renewed_at_the_same_epoch,
            a_held_lease_is_refused_to_another_holder,
            a_lapsed_lease_is_taken_over_with_a_higher_epoch,
            a_released_lease_is_taken_at_once,
            a_stale_epoch_is_refused_in_a_fenced_batch,
            a_move_is_recorded_only_under_the_current_lease_and_from_the_sites_read,
            versioning_is_set_and_never_returns_to_unversioned,
            an_unversioned_bucket_takes_no_version_ids,
            versioned_puts_keep_every_version_newest_first,
            conditional_puts_on_a_versioned_key_see_only_the_current_version,
            a_delete_marker_hides_a_key_until_it_is_removed,
            suspended_puts_replace_only_the_null_version,
            a_suspended_delete_writes_a_null_delete_marker,
            deleting_the_current_version_for_good_makes_the_next_current,
            version_listing_pages_by_key_and_version_markers,
            a_version_listing_skips_common_prefixes_and_honours_its_prefix,
            usage_counts_every_version,
            noncurrent_versions_are_replicas_like_current_ones,
            a_bucket_holding_only_noncurrent_versions_is_not_empty,
            version_pages_walk_every_version_of_a_bucket,
            completing_an_upload_in_a_versioned_bucket_adds_a_version,
            concurrent_writes_of_one_versioned_key_keep_every_version_once,
            the_record_of_a_deleted_bucket_reaches_nothing_of_its_successor,
            a_bucket_deleted_and_created_again_by_its_owner_refuses_the_old_record,
            an_upload_cut_off_by_its_buckets_deletion_leaves_usage_whole,
            a_completed_upload_is_remembered_for_its_retention,
            object_meta_is_replaced_only_where_it_is_expected,
            bucket_configs_belong_to_one_incarnation_and_kind,
            object_locks_belong_to_one_version_of_one_incarnation,
            seen_versions_are_removed_or_hidden_only_as_they_were_seen,
            unreferenced_blobs_keep_the_time_they_were_first_found,
            a_tenants_buckets_come_in_pages_and_its_sites_in_one_count,
            a_claimed_blob_refuses_a_move_onto_its_site_and_a_moved_one_is_not_claimed,
            the_console_session_key_is_made_once,
            console_sessions_expire_are_bounded_and_end,
            gateway_beats_are_one_row_per_process_seen_by_the_catalogs_clock,
            unseen_gateways_are_forgotten_only_under_the_current_lease,
        );
    };
}

/// The suite's writes by bucket name: each looks the bucket's record up first and acts
/// through it, as the gateway acts through the record a request was authorised against. A
/// bucket that does not exist is stood for by a record no bucket has, so that the catalog's
/// own answer (`NotFound`) is what a check sees.
pub mod by_name {
    use crate::{
        Bucket, Catalog, ListFrom, ObjectRecord, ObjectVersion, Part, PutCondition, Quota,
        QuotaTarget, Result, Upload, VersionsFrom,
    };
    use obhut_core::PolicyScope;

    pub async fn bucket(cat: &dyn Catalog, name: &str) -> Bucket {
        cat.get_bucket(name)
            .await
            .unwrap()
            .unwrap_or_else(|| Bucket {
                name: name.to_owned(),
                tenant: String::new(),
                created_ms: i64::MIN,
                versioning: crate::Versioning::Unversioned,
            })
    }

    async fn upload_bucket(cat: &dyn Catalog, upload_id: &str) -> Bucket {
        let name = cat
            .get_upload(upload_id)
            .await
            .unwrap()
            .map(|u| u.bucket)
            .unwrap_or_default();
        bucket(cat, &name).await
    }

    pub async fn put_object(
        cat: &dyn Catalog,
        o: &ObjectRecord,
        c: PutCondition,
    ) -> Result<Option<ObjectRecord>> {
        cat.put_object(&bucket(cat, &o.bucket).await, o, c).await
    }

    pub async fn put_object_settling(
        cat: &dyn Catalog,
        o: &ObjectRecord,
        c: PutCondition,
        r: Option<&str>,
    ) -> Result<Option<ObjectRecord>> {
        cat.put_object_settling(&bucket(cat, &o.bucket).await, o, c, r)
            .await
    }

    pub async fn delete_object(
        cat: &dyn Catalog,
        b: &str,
        key: &str,
    ) -> Result<Option<ObjectRecord>> {
        cat.delete_object(&bucket(cat, b).await, key).await
    }

    pub async fn list_objects(
        cat: &dyn Catalog,
        b: &str,
        prefix: &str,
        from: ListFrom<'_>,
        limit: usize,
    ) -> Result<Vec<ObjectRecord>> {
        cat.list_objects(&bucket(cat, b).await, prefix, from, limit)
            .await
    }

    pub async fn put_delete_marker(
        cat: &dyn Catalog,
        m: &ObjectRecord,
    ) -> Result<Vec<ObjectRecord>> {
        cat.put_delete_marker(&bucket(cat, &m.bucket).await, m)
            .await
    }

    pub async fn delete_object_version(
        cat: &dyn Catalog,
        b: &str,
        key: &str,
        v: Option<&str>,
    ) -> Result<Option<ObjectVersion>> {
        cat.delete_object_version(&bucket(cat, b).await, key, v)
            .await
    }

    pub async fn list_object_versions(
        cat: &dyn Catalog,
        b: &str,
        prefix: &str,
        from: VersionsFrom<'_>,
        limit: usize,
    ) -> Result<Vec<ObjectVersion>> {
        cat.list_object_versions(&bucket(cat, b).await, prefix, from, limit)
            .await
    }

    pub async fn create_upload(cat: &dyn Catalog, u: &Upload) -> Result<()> {
        cat.create_upload(&bucket(cat, &u.bucket).await, u).await
    }

    pub async fn put_part(cat: &dyn Catalog, p: &Part) -> Result<Option<Part>> {
        cat.put_part(&upload_bucket(cat, &p.upload_id).await, p)
            .await
    }

    pub async fn put_part_settling(
        cat: &dyn Catalog,
        p: &Part,
        r: Option<&str>,
    ) -> Result<Option<Part>> {
        cat.put_part_settling(&upload_bucket(cat, &p.upload_id).await, p, r)
            .await
    }

    pub async fn list_uploads(
        cat: &dyn Catalog,
        b: &str,
        prefix: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<Upload>> {
        cat.list_uploads(&bucket(cat, b).await, prefix, after, limit)
            .await
    }

    pub async fn complete_upload(
        cat: &dyn Catalog,
        id: &str,
        o: &ObjectRecord,
        c: PutCondition,
    ) -> Result<(Option<ObjectRecord>, Vec<Part>)> {
        cat.complete_upload(&bucket(cat, &o.bucket).await, id, o, c)
            .await
    }

    pub async fn complete_upload_settling(
        cat: &dyn Catalog,
        id: &str,
        o: &ObjectRecord,
        c: PutCondition,
        r: Option<&str>,
    ) -> Result<(Option<ObjectRecord>, Vec<Part>)> {
        cat.complete_upload_settling(&bucket(cat, &o.bucket).await, id, o, c, r)
            .await
    }

    pub async fn set_bucket_versioning(
        cat: &dyn Catalog,
        b: &str,
        state: crate::Versioning,
    ) -> Result<()> {
        cat.set_bucket_versioning(&bucket(cat, b).await, state)
            .await
    }

    pub async fn delete_bucket(cat: &dyn Catalog, b: &str) -> Result<Vec<Part>> {
        cat.delete_bucket(&bucket(cat, b).await).await
    }

    pub async fn add_bucket_key(cat: &dyn Catalog, k: &crate::BucketKey) -> Result<()> {
        cat.add_bucket_key(&bucket(cat, &k.bucket).await, k).await
    }

    pub async fn set_quota(
        cat: &dyn Catalog,
        scope: &PolicyScope,
        q: Option<&Quota>,
    ) -> Result<()> {
        match scope {
            PolicyScope::Tenant(t) => cat.set_quota(QuotaTarget::Tenant(t), q).await,
            PolicyScope::Bucket(b) => {
                let b = bucket(cat, b).await;
                cat.set_quota(QuotaTarget::Bucket(&b), q).await
            }
        }
    }
}

pub async fn object_pages_walk_a_whole_bucket(cat: &dyn Catalog) {
    ensure_tenant_and_bucket(cat, "pager", "pages").await;
    let keys: Vec<String> = (0..7).map(|i| format!("k{i}")).collect();
    for k in &keys {
        by_name::put_object(cat, &object("pages", k, "e"), PutCondition::None)
            .await
            .unwrap();
    }
    // 7 objects in pages of 3 (a short last page), and of 7 (exactly one full page).
    for (size, want_pages) in [(3, vec![3, 3, 1]), (7, vec![7])] {
        let mut pages = crate::ObjectPages::new(cat, &by_name::bucket(cat, "pages").await, size);
        let mut seen = Vec::new();
        let mut lens = Vec::new();
        while let Some(page) = pages.next_page().await.unwrap() {
            lens.push(page.len());
            seen.extend(page.into_iter().map(|o| o.key));
        }
        assert_eq!(lens, want_pages, "page sizes with pages of {size}");
        assert_eq!(seen, keys, "every object once, in key order");
        assert!(
            pages.next_page().await.unwrap().is_none(),
            "stays at the end"
        );
    }
    let mut empty = crate::ObjectPages::new(cat, &by_name::bucket(cat, "pages-none").await, 3);
    assert!(
        matches!(
            empty.next_page().await,
            Ok(None) | Err(CatalogError::NotFound { .. })
        ),
        "a bucket with no objects has no pages"
    );
    for k in &keys {
        by_name::delete_object(cat, "pages", k).await.unwrap();
    }
}

pub async fn residency_rules_and_site_moves(cat: &dyn Catalog) {
    ensure_tenant_and_bucket(cat, "t-r", "res").await;
    // rules: none until set; set and read back; per scope
    assert_eq!(
        cat.get_rule(&PolicyScope::Bucket("res".into()))
            .await
            .unwrap(),
        None
    );
    let rule = ResidencyRule {
        jurisdictions: Some(vec!["DE".into()]),
        min_sites: Some(3),
        degraded_writes: None,
    };
    cat.put_rule(&PolicyScope::Bucket("res".into()), &rule)
        .await
        .unwrap();
    assert_eq!(
        cat.get_rule(&PolicyScope::Bucket("res".into()))
            .await
            .unwrap(),
        Some(rule)
    );
    assert_eq!(
        cat.get_rule(&PolicyScope::Tenant("t-r".into()))
            .await
            .unwrap(),
        None
    );
    cat.update_tenant_residency("t-r", &["DE".into(), "AT".into()], 3)
        .await
        .unwrap();
    let t = cat.get_tenant("t-r").await.unwrap().unwrap();
    assert_eq!(
        (t.jurisdictions, t.min_sites),
        (vec!["DE".into(), "AT".into()], 3)
    );
    assert!(matches!(
        cat.update_tenant_residency("no-such", &["DE".into()], 2)
            .await,
        Err(CatalogError::NotFound { .. })
    ));
    // moving an object's replicas: only while it is unchanged
    let o = object("res", "k", "e1");
    by_name::put_object(cat, &o, PutCondition::None)
        .await
        .unwrap();
    let moved = vec!["s2".to_owned(), "s3".to_owned()];
    assert!(
        cat.set_object_sites("res", "k", &o.chunks, &moved)
            .await
            .unwrap()
    );
    assert_eq!(
        cat.get_object("res", "k").await.unwrap().unwrap().sites,
        moved
    );
    let newer = object("res", "k", "e2");
    by_name::put_object(cat, &newer, PutCondition::None)
        .await
        .unwrap();
    assert!(
        !cat.set_object_sites("res", "k", &o.chunks, &["s9".to_owned()])
            .await
            .unwrap()
    );
    assert_eq!(
        cat.get_object("res", "k").await.unwrap().unwrap().sites,
        newer.sites
    );
    // a site with replicas cannot leave the registry; without, it can
    for id in ["s1", "s9"] {
        cat.put_site(&SiteRecord {
            id: id.into(),
            jurisdiction: "DE".into(),
            location: String::new(),
            state: SiteState::Draining,
            backend: serde_json::json!({"fs": "/x"}),
        })
        .await
        .unwrap();
    }
    assert!(cat.site_references("s1").await.unwrap() >= 1);
    assert!(matches!(
        cat.delete_site("s1").await,
        Err(CatalogError::InUse(_))
    ));
    assert_eq!(cat.site_references("s9").await.unwrap(), 0);
    cat.delete_site("s9").await.unwrap();
    assert!(!cat.list_sites().await.unwrap().iter().any(|s| s.id == "s9"));
    // deleting the bucket forgets its rule
    by_name::delete_object(cat, "res", "k").await.unwrap();
    by_name::delete_bucket(cat, "res").await.unwrap();
    assert_eq!(
        cat.get_rule(&PolicyScope::Bucket("res".into()))
            .await
            .unwrap(),
        None
    );
}

pub async fn key_rotation_records(cat: &dyn Catalog) {
    ensure_tenant_and_bucket(cat, "t-a", "rot").await;
    by_name::add_bucket_key(cat, &bucket_key("rot", 2))
        .await
        .unwrap();
    assert!(matches!(
        by_name::add_bucket_key(cat, &bucket_key("rot", 2)).await,
        Err(CatalogError::AlreadyExists { .. })
    ));
    assert_eq!(
        cat.current_bucket_key("rot")
            .await
            .unwrap()
            .map(|k| k.version),
        Some(2)
    );
    assert!(
        cat.get_bucket_key("rot", 1).await.unwrap().is_some(),
        "old versions stay readable"
    );

    let o = object("rot", "k", "e");
    by_name::put_object(cat, &o, PutCondition::None)
        .await
        .unwrap();
    assert!(
        !cat.replace_object_envelope("rot", "k", b"stale", b"new")
            .await
            .unwrap()
    );
    assert!(
        cat.replace_object_envelope("rot", "k", &o.envelope, b"new")
            .await
            .unwrap()
    );
    let got = cat.get_object("rot", "k").await.unwrap().unwrap();
    assert_eq!(got.envelope, b"new");
    assert_eq!(got.meta, o.meta, "only the envelope changes");
    assert!(
        !cat.replace_object_envelope("rot", "gone", b"new", b"x")
            .await
            .unwrap()
    );

    by_name::create_upload(
        cat,
        &Upload {
            upload_id: "urot".into(),
            bucket: "rot".into(),
            key: "u".into(),
            initiated_ms: 1,
            envelope: b"old".to_vec(),
            meta: Vec::new(),
            sites: Vec::new(),
        },
    )
    .await
    .unwrap();
    assert!(
        !cat.replace_upload_envelope("urot", b"stale", b"new")
            .await
            .unwrap()
    );
    assert!(
        cat.replace_upload_envelope("urot", b"old", b"new")
            .await
            .unwrap()
    );
    assert_eq!(
        cat.get_upload("urot").await.unwrap().unwrap().envelope,
        b"new"
    );
}

fn tenant(name: &str) -> Tenant {
    Tenant {
        name: name.into(),
        jurisdictions: vec!["DE".into()],
        min_sites: 2,
        created_ms: 1,
    }
}

fn object(bucket: &str, key: &str, etag: &str) -> ObjectRecord {
    ObjectRecord {
        bucket: bucket.into(),
        key: key.into(),
        size: 3,
        etag: etag.into(),
        last_modified_ms: 42,
        envelope: b"wrapped object key".to_vec(),
        meta: b"opaque".to_vec(),
        sites: vec!["s1".into(), "s2".into()],
        chunks: vec![Chunk {
            blob: BlobId::random(),
            size: 3,
            part: 1,
            crc32c: None,
        }],
        version_id: None,
    }
}

fn bucket_key(bucket: &str, version: u32) -> BucketKey {
    BucketKey {
        bucket: bucket.into(),
        version,
        wrapped: format!("wrapped {bucket} v{version}").into_bytes(),
        kcv: vec![version as u8; 8],
        created_ms: 3,
    }
}

async fn ensure_tenant(cat: &dyn Catalog, name: &str) {
    match cat.create_tenant(&tenant(name)).await {
        Ok(()) | Err(CatalogError::AlreadyExists { .. }) => {}
        Err(e) => panic!("create tenant: {e}"),
    }
}

async fn ensure_tenant_and_bucket(cat: &dyn Catalog, tenant_name: &str, bucket: &str) {
    ensure_tenant(cat, tenant_name).await;
    cat.create_bucket(
        &Bucket {
            name: bucket.into(),
            tenant: tenant_name.into(),
            created_ms: 1,
            versioning: crate::Versioning::Unversioned,
        },
        &bucket_key(bucket, 1),
    )
    .await
    .unwrap();
}

pub async fn tenants_and_keys(cat: &dyn Catalog) {
    cat.create_tenant(&tenant("t-a")).await.unwrap();
    cat.create_tenant(&tenant("t-b")).await.unwrap();
    assert!(matches!(
        cat.create_tenant(&tenant("t-a")).await,
        Err(CatalogError::AlreadyExists { .. })
    ));
    assert_eq!(cat.get_tenant("t-a").await.unwrap(), Some(tenant("t-a")));
    assert_eq!(cat.get_tenant("nobody").await.unwrap(), None);
    let names: Vec<_> = cat
        .list_tenants()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["t-a", "t-b"]);
}

pub async fn sites_registry(cat: &dyn Catalog) {
    let mut s = SiteRecord {
        id: "de-fra".into(),
        jurisdiction: "DE".into(),
        location: "Frankfurt".into(),
        state: SiteState::Active,
        backend: serde_json::json!({"fs": "/x"}),
    };
    cat.put_site(&s).await.unwrap();
    s.state = SiteState::Draining;
    cat.put_site(&s).await.unwrap();
    assert_eq!(cat.list_sites().await.unwrap(), vec![s]);
}

pub async fn bucket_names_are_global_and_owned(cat: &dyn Catalog) {
    ensure_tenant_and_bucket(cat, "t-a", "shared-name").await;
    ensure_tenant(cat, "t-b").await;
    let err = cat
        .create_bucket(
            &Bucket {
                name: "shared-name".into(),
                tenant: "t-b".into(),
                created_ms: 2,
                versioning: Default::default(),
            },
            &bucket_key("shared-name", 1),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CatalogError::BucketExists { ref owner, .. } if owner == "t-a"));
    assert_eq!(
        cat.get_bucket("shared-name").await.unwrap().unwrap().tenant,
        "t-a"
    );
    assert!(cat.list_buckets("t-b").await.unwrap().is_empty());
    // The first key version is stored with the bucket; the loser's key is not.
    assert_eq!(
        cat.current_bucket_key("shared-name").await.unwrap(),
        Some(bucket_key("shared-name", 1))
    );
    assert_eq!(
        cat.get_bucket_key("shared-name", 1).await.unwrap(),
        Some(bucket_key("shared-name", 1))
    );
    assert_eq!(cat.get_bucket_key("shared-name", 2).await.unwrap(), None);
    assert_eq!(
        cat.current_bucket_key("no-such-bucket").await.unwrap(),
        None
    );
    assert_eq!(cat.list_buckets("t-a").await.unwrap().len(), 1);
}

pub async fn objects_put_get_delete_and_conditions(cat: &dyn Catalog) {
    ensure_tenant_and_bucket(cat, "t-a", "objs").await;
    let o1 = object("objs", "k", "e1");
    assert_eq!(
        by_name::put_object(cat, &o1, PutCondition::Absent)
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        by_name::put_object(cat, &o1, PutCondition::Absent).await,
        Err(CatalogError::PreconditionFailed(_))
    ));
    let o2 = object("objs", "k", "e2");
    assert!(matches!(
        by_name::put_object(cat, &o2, PutCondition::ETagMatches("nope".into())).await,
        Err(CatalogError::PreconditionFailed(_))
    ));
    let replaced = by_name::put_object(cat, &o2, PutCondition::ETagMatches("e1".into()))
        .await
        .unwrap();
    assert_eq!(replaced, Some(o1));
    assert_eq!(cat.get_object("objs", "k").await.unwrap(), Some(o2.clone()));
    assert_eq!(cat.get_object("objs", "other").await.unwrap(), None);
    assert_eq!(
        by_name::delete_object(cat, "objs", "k").await.unwrap(),
        Some(o2)
    );
    assert_eq!(
        by_name::delete_object(cat, "objs", "k").await.unwrap(),
        None
    );
    assert!(matches!(
        by_name::put_object(
            cat,
            &object("objs", "new", "x"),
            PutCondition::ETagMatches("x".into())
        )
        .await,
        Err(CatalogError::PreconditionFailed(_))
    ));
}

pub async fn listing_follows_byte_order_with_prefix_and_marker(cat: &dyn Catalog) {
    ensure_tenant_and_bucket(cat, "t-a", "list").await;
    // Byte order: uppercase before lowercase, '/' (0x2f) before '0', multi-byte UTF-8 last.
    let keys = [
        "a/1",
        "a/2",
        "a0",
        "B",
        "b",
        "b/x",
        "\u{e9}t\u{e9}",
        "a/\u{10348}",
    ];
    for k in keys {
        by_name::put_object(cat, &object("list", k, "e"), PutCondition::None)
            .await
            .unwrap();
    }
    let mut expected: Vec<&str> = keys.to_vec();
    expected.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let all: Vec<String> = by_name::list_objects(cat, "list", "", ListFrom::Start, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(all, expected);

    let with_prefix: Vec<String> = by_name::list_objects(cat, "list", "a/", ListFrom::Start, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(with_prefix, ["a/1", "a/2", "a/\u{10348}"]);

    let page: Vec<String> = by_name::list_objects(cat, "list", "a", ListFrom::After("a/1"), 2)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(page, ["a/2", "a/\u{10348}"]);

    // A marker before the prefix starts at the prefix.
    let page: Vec<String> = by_name::list_objects(cat, "list", "b", ListFrom::After("A"), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(page, ["b", "b/x"]);
    // Skipping past a common prefix: everything under "a/" is passed over.
    let past: Vec<String> = by_name::list_objects(cat, "list", "", ListFrom::PastPrefix("a/"), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(past, ["a0", "b", "b/x", "\u{e9}t\u{e9}"]);
    // A bucket that does not exist is not an empty one.
    assert!(matches!(
        by_name::list_objects(cat, "objs-none", "", ListFrom::Start, 10).await,
        Err(CatalogError::NotFound { kind: "bucket", .. })
    ));
}

fn part(upload_id: &str, n: u32) -> Part {
    Part {
        upload_id: upload_id.into(),
        part_number: n,
        chunk: Chunk {
            blob: BlobId::random(),
            size: 5,
            part: n,
            crc32c: None,
        },
        etag: format!("p{n}"),
        checksums: Vec::new(),
        sites: vec!["s1".into()],
        last_modified_ms: 7,
    }
}

pub async fn multipart_lifecycle(cat: &dyn Catalog) {
    ensure_tenant_and_bucket(cat, "t-a", "mpu").await;
    for (id, key) in [("u2", "k"), ("u1", "k"), ("u3", "j"), ("u4", "other")] {
        by_name::create_upload(
            cat,
            &Upload {
                upload_id: id.into(),
                bucket: "mpu".into(),
                key: key.into(),
                initiated_ms: 1,
                envelope: b"env".to_vec(),
                meta: Vec::new(),
                sites: vec!["s-a".into(), "s-b".into()],
            },
        )
        .await
        .unwrap();
    }
    let listed: Vec<(String, String)> = by_name::list_uploads(cat, "mpu", "", None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.key, u.upload_id))
        .collect();
    assert_eq!(
        listed,
        [("j", "u3"), ("k", "u1"), ("k", "u2"), ("other", "u4")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let after: Vec<String> = by_name::list_uploads(cat, "mpu", "", Some(("k", "u1")), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.upload_id)
        .collect();
    assert_eq!(after, ["u2", "u4"]);
    assert_eq!(
        cat.get_upload("u1").await.unwrap().map(|u| u.sites),
        Some(vec!["s-a".to_owned(), "s-b".to_owned()]),
        "an upload keeps the placement chosen when it was created"
    );
    assert_eq!(
        by_name::list_uploads(cat, "mpu", "o", None, 10)
            .await
            .unwrap()
            .len(),
        1
    );

    let p1 = part("u1", 1);
    let p2 = part("u1", 2);
    let p2b = part("u1", 2);
    let p3 = part("u1", 3);
    assert_eq!(by_name::put_part(cat, &p1).await.unwrap(), None);
    assert_eq!(by_name::put_part(cat, &p2).await.unwrap(), None);
    assert_eq!(by_name::put_part(cat, &p2b).await.unwrap(), Some(p2));
    by_name::put_part(cat, &p3).await.unwrap();
    assert!(matches!(
        by_name::put_part(cat, &part("nope", 1)).await,
        Err(CatalogError::NotFound { .. })
    ));
    assert_eq!(
        cat.list_parts("u1", 0, 10).await.unwrap(),
        vec![p1.clone(), p2b.clone(), p3.clone()]
    );
    assert_eq!(cat.list_parts("u1", 1, 1).await.unwrap(), vec![p2b.clone()]);

    let mut done = object("mpu", "k", "etag-2");
    done.chunks = vec![p1.chunk, p2b.chunk];
    done.sites = p1.sites.clone();
    let (replaced, unused) = by_name::complete_upload(cat, "u1", &done, PutCondition::None)
        .await
        .unwrap();
    assert_eq!(replaced, None);
    assert_eq!(unused, vec![p3]);
    assert_eq!(
        cat.get_object("mpu", "k").await.unwrap(),
        Some(done.clone())
    );
    assert_eq!(cat.get_upload("u1").await.unwrap(), None);
    assert!(matches!(
        by_name::complete_upload(cat, "u1", &done, PutCondition::None).await,
        Err(CatalogError::NotFound { .. })
    ));
    // a part replaced after the caller listed the parts: the completion is refused
    let p5 = part("u3", 1);
    by_name::put_part(cat, &p5).await.unwrap();
    by_name::put_part(cat, &part("u3", 1)).await.unwrap();
    let mut stale = object("mpu", "j", "etag-s");
    stale.chunks = vec![p5.chunk];
    stale.sites = p5.sites.clone();
    assert!(matches!(
        by_name::complete_upload(cat, "u3", &stale, PutCondition::None).await,
        Err(CatalogError::Conflict(_))
    ));
    // the write condition is checked in the same transaction: "k" exists, so Absent fails
    let current = cat.list_parts("u3", 0, 10).await.unwrap();
    let mut fresh = object("mpu", "k", "etag-c");
    fresh.chunks = vec![current[0].chunk];
    fresh.sites = current[0].sites.clone();
    assert!(matches!(
        by_name::complete_upload(cat, "u3", &fresh, PutCondition::Absent).await,
        Err(CatalogError::PreconditionFailed(_))
    ));
    assert!(
        cat.get_upload("u3").await.unwrap().is_some(),
        "a failed condition changes nothing"
    );
    assert!(
        cat.get_upload("u3").await.unwrap().is_some(),
        "nothing changed"
    );
    assert_eq!(cat.get_object("mpu", "j").await.unwrap(), None);
    // no object is committed into a bucket that does not exist (any more)
    assert!(matches!(
        by_name::put_object(cat, &object("no-such-bucket", "k", "e"), PutCondition::None).await,
        Err(CatalogError::NotFound { kind: "bucket", .. })
    ));

    // a part's replicas move only while it is the part the mover read
    let moving = part("u2", 1);
    by_name::put_part(cat, &moving).await.unwrap();
    let moved = vec!["s7".to_owned(), "s8".to_owned()];
    assert!(
        cat.set_part_sites("u2", 1, &moving.chunk, &moved)
            .await
            .unwrap()
    );
    assert_eq!(cat.list_parts("u2", 0, 10).await.unwrap()[0].sites, moved);
    let reuploaded = part("u2", 1);
    by_name::put_part(cat, &reuploaded).await.unwrap();
    assert!(
        !cat.set_part_sites("u2", 1, &moving.chunk, &["s9".to_owned()])
            .await
            .unwrap()
    );
    assert_eq!(
        cat.list_parts("u2", 0, 10).await.unwrap()[0].sites,
        reuploaded.sites
    );
    // a part moved by a drain after the caller listed the parts: the completion is refused as
    // busy (and may be retried), never recorded on the sites the part left
    let mut listed = object("mpu", "m", "etag-m");
    listed.chunks = vec![reuploaded.chunk];
    listed.sites = reuploaded.sites.clone();
    assert!(
        cat.set_part_sites("u2", 1, &reuploaded.chunk, &moved)
            .await
            .unwrap()
    );
    assert!(matches!(
        by_name::complete_upload(cat, "u2", &listed, PutCondition::None).await,
        Err(CatalogError::Busy(_))
    ));
    assert_eq!(cat.get_object("mpu", "m").await.unwrap(), None);
    assert!(
        cat.get_upload("u2").await.unwrap().is_some(),
        "nothing changed"
    );
    assert_eq!(cat.abort_upload("u2").await.unwrap().len(), 1);
    assert!(
        !cat.set_part_sites("u2", 1, &reuploaded.chunk, &moved)
            .await
            .unwrap(),
        "no part of an aborted upload is moved"
    );
    assert!(matches!(
        cat.abort_upload("u2").await,
        Err(CatalogError::NotFound { .. })
    ));
    assert!(cat.get_upload("u3").await.unwrap().is_some());
}

pub async fn referenced_blobs_cover_objects_and_parts(cat: &dyn Catalog) {
    ensure_tenant_and_bucket(cat, "t-b", "refs").await;
    let o = object("refs", "x", "e");
    by_name::put_object(cat, &o, PutCondition::None)
        .await
        .unwrap();
    by_name::create_upload(
        cat,
        &Upload {
            upload_id: "ur".into(),
            bucket: "refs".into(),
            key: "y".into(),
            initiated_ms: 1,
            envelope: Vec::new(),
            meta: Vec::new(),
            sites: Vec::new(),
        },
    )
    .await
    .unwrap();
    let p = part("ur", 1);
    by_name::put_part(cat, &p).await.unwrap();
    let refs = cat.referenced_blobs().await.unwrap();
    for site in &o.sites {
        assert!(refs.contains(&(site.clone(), o.chunks[0].blob)));
    }
    assert!(refs.contains(&(p.sites[0].clone(), p.chunk.blob)));
    // a replica on a site the object no longer names is not referenced
    assert!(!refs.contains(&("elsewhere".to_owned(), o.chunks[0].blob)));
    by_name::delete_object(cat, "refs", "x").await.unwrap();
    assert!(
        !cat.referenced_blobs()
            .await
            .unwrap()
            .iter()
            .any(|(_, b)| *b == o.chunks[0].blob)
    );
}

/// Orphan collection's record of since when blobs have been found unreferenced: the first
/// finding's time is kept while the blob stays on the list, a blob that leaves the list is
/// forgotten (found again later, it starts afresh), and sites are apart.
pub async fn unreferenced_blobs_keep_the_time_they_were_first_found(cat: &dyn Catalog) {
    let (a, b, c) = (BlobId::random(), BlobId::random(), BlobId::random());
    let (now1, first) = cat.note_unreferenced("site-a", &[a, b]).await.unwrap();
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(
        first.iter().all(|(_, since)| *since == now1),
        "{first:?} at {now1}"
    );
    assert!(cat.note_unreferenced("site-b", &[c]).await.is_ok());
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (now2, second) = cat.note_unreferenced("site-a", &[a, c]).await.unwrap();
    assert!(now2 >= now1 + 20, "the catalog's clock: {now1} then {now2}");
    let since = |list: &[(BlobId, i64)], blob: BlobId| {
        list.iter().find(|(x, _)| *x == blob).map(|(_, s)| *s)
    };
    assert_eq!(
        since(&second, a),
        Some(now1),
        "a, still unreferenced, keeps its first time"
    );
    assert_eq!(since(&second, c), Some(now2), "c is new on site-a");
    assert_eq!(
        second.len(),
        2,
        "b, no longer on the list, is not answered: {second:?}"
    );
    // b left the list (named again, or removed): found once more, it starts afresh.
    let (now3, third) = cat.note_unreferenced("site-a", &[b]).await.unwrap();
    assert_eq!(third, vec![(b, now3)]);
    assert!(now3 > now1);
    // site-b's record is its own: untouched by the lists of site-a.
    let (_, other) = cat.note_unreferenced("site-b", &[c]).await.unwrap();
    assert_eq!(since(&other, c).map(|s| s <= now2), Some(true), "{other:?}");
    // An empty list forgets the site's record.
    let (_, none) = cat.note_unreferenced("site-a", &[]).await.unwrap();
    assert!(none.is_empty());
    let (now4, again) = cat.note_unreferenced("site-a", &[a]).await.unwrap();
    assert_eq!(again, vec![(a, now4)]);
}

/// Orphan collection's check at removal time against repair's moves: a blob a move names on
/// a site again is no longer claimed there, a claimed one refuses a move onto its site (object
/// and part alike) until it is forgotten, and a record whose time changed is not claimed.
pub async fn a_claimed_blob_refuses_a_move_onto_its_site_and_a_moved_one_is_not_claimed(
    cat: &dyn Catalog,
) {
    ensure_tenant_and_bucket(cat, "cl-t", "cl-b").await;
    let o = object("cl-b", "k", "e1");
    by_name::put_object(cat, &o, PutCondition::None)
        .await
        .unwrap();
    let blob = o.chunks[0].blob;
    let widened = vec!["s1".to_owned(), "s2".to_owned(), "s3".to_owned()];
    // Moved back onto s3 after orphan collection found the copy there: not claimed.
    let (_, seen) = cat.note_unreferenced("s3", &[blob]).await.unwrap();
    assert!(
        cat.move_object_sites(None, "cl-b", "k", &o.chunks, &o.sites, &widened)
            .await
            .unwrap()
    );
    assert_eq!(cat.claim_unreferenced(None, "s3", &seen).await.unwrap(), []);
    assert!(
        cat.move_object_sites(None, "cl-b", "k", &o.chunks, &widened, &o.sites)
            .await
            .unwrap()
    );
    // Claimed first: the move onto s3 is refused, the record unchanged, until forgotten.
    let (_, seen) = cat.note_unreferenced("s3", &[blob]).await.unwrap();
    assert_eq!(
        cat.claim_unreferenced(None, "s3", &seen).await.unwrap(),
        [blob]
    );
    assert!(
        !cat.move_object_sites(None, "cl-b", "k", &o.chunks, &o.sites, &widened)
            .await
            .unwrap()
    );
    assert_eq!(
        cat.get_object("cl-b", "k").await.unwrap().unwrap().sites,
        o.sites
    );
    // A move onto other sites is not held up.
    let elsewhere = vec!["s1".to_owned(), "s2".to_owned(), "s4".to_owned()];
    assert!(
        cat.move_object_sites(None, "cl-b", "k", &o.chunks, &o.sites, &elsewhere)
            .await
            .unwrap()
    );
    // A part's move likewise.
    let u = Upload {
        upload_id: "cl-u".into(),
        bucket: "cl-b".into(),
        key: "m".into(),
        initiated_ms: 1,
        envelope: b"env".to_vec(),
        meta: Vec::new(),
        sites: Vec::new(),
    };
    by_name::create_upload(cat, &u).await.unwrap();
    let p = part("cl-u", 1);
    by_name::put_part(cat, &p).await.unwrap();
    let mut onto = p.sites.clone();
    onto.push("s5".into());
    let (_, seen) = cat.note_unreferenced("s5", &[p.chunk.blob]).await.unwrap();
    assert_eq!(
        cat.claim_unreferenced(None, "s5", &seen).await.unwrap(),
        [p.chunk.blob]
    );
    assert!(
        !cat.move_part_sites(None, "cl-u", 1, &p.chunk, &p.sites, &onto)
            .await
            .unwrap()
    );
    cat.forget_unreferenced("s5", &[p.chunk.blob])
        .await
        .unwrap();
    assert!(
        cat.move_part_sites(None, "cl-u", 1, &p.chunk, &p.sites, &onto)
            .await
            .unwrap()
    );
    // Forgotten, the object's move onto s3 goes through.
    cat.forget_unreferenced("s3", &[blob]).await.unwrap();
    assert!(
        cat.move_object_sites(None, "cl-b", "k", &o.chunks, &elsewhere, &widened)
            .await
            .unwrap()
    );
    // A record whose time is not the one seen (found afresh meanwhile) is not claimed.
    let other = BlobId::random();
    let (_, seen) = cat.note_unreferenced("s6", &[other]).await.unwrap();
    let stale: Vec<(BlobId, i64)> = seen.iter().map(|(b, t)| (*b, t - 1)).collect();
    assert_eq!(
        cat.claim_unreferenced(None, "s6", &stale).await.unwrap(),
        []
    );
    // A claim left behind (a removal cut short) is found again and claimed again.
    assert_eq!(
        cat.claim_unreferenced(None, "s6", &seen).await.unwrap(),
        [other]
    );
    let (_, again) = cat.note_unreferenced("s6", &[other]).await.unwrap();
    assert_eq!(
        cat.claim_unreferenced(None, "s6", &again).await.unwrap(),
        [other]
    );
}

pub async fn bucket_delete_requires_empty(cat: &dyn Catalog) {
    // An unfinished upload with a part does not keep a bucket; an object does.
    ensure_tenant_and_bucket(cat, "t-b", "refs").await;
    by_name::create_upload(
        cat,
        &Upload {
            upload_id: "ur".into(),
            bucket: "refs".into(),
            key: "y".into(),
            initiated_ms: 1,
            envelope: Vec::new(),
            meta: Vec::new(),
            sites: Vec::new(),
        },
    )
    .await
    .unwrap();
    by_name::put_part(cat, &part("ur", 1)).await.unwrap();
    by_name::put_object(cat, &object("refs", "z", "e"), PutCondition::None)
        .await
        .unwrap();
    assert!(matches!(
        by_name::delete_bucket(cat, "refs").await,
        Err(CatalogError::BucketNotEmpty(_))
    ));
    by_name::delete_object(cat, "refs", "z").await.unwrap();
    let parts = by_name::delete_bucket(cat, "refs").await.unwrap();
    assert_eq!(
        parts.len(),
        1,
        "the unfinished upload's part is handed back"
    );
    assert_eq!(cat.get_bucket("refs").await.unwrap(), None);
    assert_eq!(
        cat.current_bucket_key("refs").await.unwrap(),
        None,
        "keys go with the bucket"
    );
    assert!(matches!(
        by_name::delete_bucket(cat, "refs").await,
        Err(CatalogError::NotFound { .. })
    ));
}

fn sized(bucket: &str, key: &str, size: u64) -> ObjectRecord {
    let mut o = object(bucket, key, "e");
    o.size = size;
    o.chunks[0].size = size;
    o
}

fn hold(id: &str, tenant: &str, bucket: &str, key: Option<&str>, bytes: u64) -> Reservation {
    Reservation {
        id: id.into(),
        tenant: tenant.into(),
        bucket: bucket.into(),
        key: key.map(Into::into),
        bytes,
        objects: u64::from(key.is_some()),
        expires_ms: i64::MAX,
    }
}

fn limit(bytes: Option<u64>, objects: Option<u64>) -> Quota {
    Quota {
        max_bytes: bytes,
        max_objects: objects,
    }
}

const NOW: i64 = 1_000;

async fn used(cat: &dyn Catalog, scope: &PolicyScope) -> (u64, u64) {
    let u = cat.usage(scope, NOW).await.unwrap();
    (u.bytes, u.objects)
}

fn tenant_scope(t: &str) -> PolicyScope {
    PolicyScope::Tenant(t.into())
}

fn bucket_scope(b: &str) -> PolicyScope {
    PolicyScope::Bucket(b.into())
}

pub async fn quotas_are_set_read_and_cleared(cat: &dyn Catalog) {
    ensure_tenant_and_bucket(cat, "q-t", "q-b").await;
    assert_eq!(cat.get_quota(&tenant_scope("q-t")).await.unwrap(), None);
    let q = limit(Some(100), Some(3));
    by_name::set_quota(cat, &tenant_scope("q-t"), Some(&q))
        .await
        .unwrap();
    by_name::set_quota(cat, &bucket_scope("q-b"), Some(&limit(Some(50), None)))
        .await
        .unwrap();
    assert_eq!(cat.get_quota(&tenant_scope("q-t")).await.unwrap(), Some(q));
    let statuses = cat.quota_statuses(NOW).await.unwrap();
    assert_eq!(statuses.len(), 2, "{statuses:?}");
    assert!(statuses.iter().all(|s| s.usage == Usage::default()));
    // Replaced, then cleared (an unlimited quota is no quota).
    by_name::set_quota(cat, &tenant_scope("q-t"), Some(&limit(Some(200), None)))
        .await
        .unwrap();
    assert_eq!(
        cat.get_quota(&tenant_scope("q-t")).await.unwrap(),
        Some(limit(Some(200), None))
    );
    by_name::set_quota(cat, &tenant_scope("q-t"), Some(&Quota::default()))
        .await
        .unwrap();
    by_name::set_quota(cat, &bucket_scope("q-b"), None)
        .await
        .unwrap();
    assert_eq!(cat.get_quota(&tenant_scope("q-t")).await.unwrap(), None);
    assert!(cat.quota_statuses(NOW).await.unwrap().is_empty());
    // Without a quota nothing is reserved.
    assert!(
        !cat.reserve(&hold("r", "q-t", "q-b", Some("k"), 10), NOW)
            .await
            .unwrap()
    );
    assert_eq!(
        cat.usage(&bucket_scope("q-b"), NOW).await.unwrap(),
        Usage::default()
    );
}

pub async fn usage_counts_puts_overwrites_and_deletes(cat: &dyn Catalog) {
    ensure_tenant_and_bucket(cat, "u-t", "u-b1").await;
    ensure_tenant_and_bucket(cat, "u-t", "u-b2").await;
    ensure_tenant_and_bucket(cat, "u-other", "u-b3").await;
    by_name::put_object(cat, &sized("u-b1", "a", 10), PutCondition::None)
        .await
        .unwrap();
    by_name::put_object(cat, &sized("u-b2", "a", 7), PutCondition::None)
        .await
        .unwrap();
    by_name::put_object(cat, &sized("u-b3", "a", 1000), PutCondition::None)
        .await
        .unwrap();
    assert_eq!(used(cat, &bucket_scope("u-b1")).await, (10, 1));
    assert_eq!(used(cat, &tenant_scope("u-t")).await, (17, 2));
    // An overwrite counts its difference, not a second object.
    by_name::put_object(cat, &sized("u-b1", "a", 4), PutCondition::None)
        .await
        .unwrap();
    assert_eq!(used(cat, &tenant_scope("u-t")).await, (11, 2));
    // A refused conditional write counts nothing.
    assert!(
        by_name::put_object(cat, &sized("u-b1", "a", 99), PutCondition::Absent)
            .await
            .is_err()
    );
    assert_eq!(used(cat, &bucket_scope("u-b1")).await, (4, 1));
    by_name::delete_object(cat, "u-b1", "a").await.unwrap();
    by_name::delete_object(cat, "u-b1", "a").await.unwrap();
    assert_eq!(used(cat, &bucket_scope("u-b1")).await, (0, 0));
    assert_eq!(used(cat, &tenant_scope("u-t")).await, (7, 1));
    assert_eq!(used(cat, &tenant_scope("u-other")).await, (1000, 1));
}

async fn upload(cat: &dyn Catalog, id: &str, bucket: &str, key: &str) {
    by_name::create_upload(
        cat,
        &Upload {
            upload_id: id.into(),
            bucket: bucket.into(),
            key: key.into(),
            initiated_ms: 1,
            envelope: b"env".to_vec(),
            meta: Vec::new(),
            sites: vec!["s1".into()],
        },
    )
    .await
    .unwrap();
}

pub async fn usage_counts_parts_until_completion_or_abort(cat: &dyn Catalog) {
    ensure_tenant_and_bucket(cat, "p-t", "p-b").await;
    upload(cat, "up1", "p-b", "k").await;
    upload(cat, "up2", "p-b", "j").await;
    let (p1, p2) = (part("up1", 1), part("up1", 2));
    by_name::put_part(cat, &p1).await.unwrap();
    by_name::put_part(cat, &p2).await.unwrap();
    // A part uploaded again replaces the first one's bytes.
    let p2 = part("up1", 2);
    by_name::put_part(cat, &p2).await.unwrap();
    by_name::put_part(cat, &part("up2", 1)).await.unwrap();
    assert_eq!(used(cat, &bucket_scope("p-b")).await, (15, 0));
    // Completion with part 1 only: the object counts, no part does.
    let mut o = sized("p-b", "k", 5);
    o.chunks = vec![p1.chunk];
    o.sites = p1.sites.clone();
    by_name::complete_upload(cat, "up1", &o, PutCondition::None)
        .await
        .unwrap();
    assert_eq!(used(cat, &bucket_scope("p-b")).await, (10, 1));
    cat.abort_upload("up2").await.unwrap();
    assert_eq!(used(cat, &tenant_scope("p-t")).await, (5, 1));
}

pub async fn reservations_hold_quota_until_settled_or_released(cat: &dyn Catalog) {
    ensure_tenant_and_bucket(cat, "r-t", "r-b").await;
    by_name::set_quota(cat, &tenant_scope("r-t"), Some(&limit(Some(100), Some(2))))
        .await
        .unwrap();
    assert!(
        cat.reserve(&hold("r1", "r-t", "r-b", Some("a"), 60), NOW)
            .await
            .unwrap()
    );
    let u = cat.usage(&tenant_scope("r-t"), NOW).await.unwrap();
    assert_eq!((u.reserved_bytes, u.reserved_objects), (60, 1));
    // 60 held: 50 more do not fit, 40 do.
    let err = cat
        .reserve(&hold("r2", "r-t", "r-b", Some("b"), 50), NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CatalogError::QuotaExceeded {
                kind: "tenant",
                what: "bytes",
                limit: 100,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        cat.reserve(&hold("r3", "r-t", "r-b", Some("c"), 40), NOW)
            .await
            .unwrap()
    );
    // The commit settles r1 with its real size (less than reserved).
    by_name::put_object_settling(cat, &sized("r-b", "a", 30), PutCondition::None, Some("r1"))
        .await
        .unwrap();
    let u = cat.usage(&tenant_scope("r-t"), NOW).await.unwrap();
    assert_eq!(
        (u.bytes, u.objects, u.reserved_bytes, u.reserved_objects),
        (30, 1, 40, 1)
    );
    // Two objects committed or held: a third does not fit, whatever its size.
    let err = cat
        .reserve(&hold("r4", "r-t", "r-b", Some("d"), 0), NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CatalogError::QuotaExceeded {
                what: "objects",
                ..
            }
        ),
        "{err:?}"
    );
    // Released (its write failed): the hold is gone, and releasing again is no error.
    cat.release("r3").await.unwrap();
    cat.release("r3").await.unwrap();
    assert_eq!(
        cat.usage(&tenant_scope("r-t"), NOW).await.unwrap(),
        Usage {
            bytes: 30,
            objects: 1,
            reserved_bytes: 0,
            reserved_objects: 0
        }
    );
    // A bucket's own quota applies beside its tenant's; a part holds bytes, no object.
    by_name::set_quota(cat, &bucket_scope("r-b"), Some(&limit(Some(40), None)))
        .await
        .unwrap();
    let err = cat
        .reserve(&hold("r5", "r-t", "r-b", None, 11), NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CatalogError::QuotaExceeded { kind: "bucket", .. }),
        "{err:?}"
    );
    upload(cat, "r-up", "r-b", "m").await;
    assert!(
        cat.reserve(&hold("r6", "r-t", "r-b", None, 10), NOW)
            .await
            .unwrap()
    );
    let mut p = part("r-up", 1);
    p.chunk.size = 10;
    by_name::put_part_settling(cat, &p, Some("r6"))
        .await
        .unwrap();
    assert_eq!(
        cat.usage(&bucket_scope("r-b"), NOW).await.unwrap(),
        Usage {
            bytes: 40,
            objects: 1,
            reserved_bytes: 0,
            reserved_objects: 0
        }
    );
    // Completing the upload adds an object: one object is free, so it fits.
    assert!(
        cat.reserve(
            &Reservation {
                objects: 1,
                ..hold("r7", "r-t", "r-b", Some("m"), 0)
            },
            NOW
        )
        .await
        .unwrap()
    );
    let mut o = sized("r-b", "m", 10);
    o.chunks = vec![p.chunk];
    o.sites = p.sites.clone();
    by_name::complete_upload_settling(cat, "r-up", &o, PutCondition::None, Some("r7"))
        .await
        .unwrap();
    assert_eq!(
        cat.usage(&tenant_scope("r-t"), NOW).await.unwrap(),
        Usage {
            bytes: 40,
            objects: 2,
            reserved_bytes: 0,
            reserved_objects: 0
        }
    );
}

pub async fn overwrites_are_credited_and_freeing_writes_never_refused(cat: &dyn Catalog) {
    ensure_tenant_and_bucket(cat, "o-t", "o-b").await;
    by_name::put_object(cat, &sized("o-b", "big", 90), PutCondition::None)
        .await
        .unwrap();
    by_name::set_quota(cat, &tenant_scope("o-t"), Some(&limit(Some(100), Some(1))))
        .await
        .unwrap();
    // Full on objects, 10 bytes free: replacing "big" by 95 bytes grows it by 5 and adds no
    // object, so it fits; a new object does not.
    assert!(
        cat.reserve(&hold("w1", "o-t", "o-b", Some("big"), 95), NOW)
            .await
            .unwrap()
    );
    by_name::put_object_settling(
        cat,
        &sized("o-b", "big", 95),
        PutCondition::None,
        Some("w1"),
    )
    .await
    .unwrap();
    assert_eq!(used(cat, &tenant_scope("o-t")).await, (95, 1));
    assert!(
        cat.reserve(&hold("w2", "o-t", "o-b", Some("new"), 1), NOW)
            .await
            .is_err()
    );
    // A quota lowered below what is held refuses growth, never a write that frees space.
    by_name::set_quota(cat, &tenant_scope("o-t"), Some(&limit(Some(50), Some(1))))
        .await
        .unwrap();
    assert!(
        cat.reserve(&hold("w3", "o-t", "o-b", Some("big"), 20), NOW)
            .await
            .unwrap()
    );
    assert!(
        cat.reserve(&hold("w4", "o-t", "o-b", Some("big"), 96), NOW)
            .await
            .is_err()
    );
}

pub async fn expired_reservations_are_ignored_and_reclaimed(cat: &dyn Catalog) {
    ensure_tenant_and_bucket(cat, "x-t", "x-b").await;
    by_name::set_quota(cat, &bucket_scope("x-b"), Some(&limit(Some(10), None)))
        .await
        .unwrap();
    let crashed = Reservation {
        expires_ms: NOW + 10,
        ..hold("x1", "x-t", "x-b", Some("k"), 10)
    };
    assert!(cat.reserve(&crashed, NOW).await.unwrap());
    assert!(
        cat.reserve(&hold("x2", "x-t", "x-b", Some("j"), 1), NOW)
            .await
            .is_err()
    );
    // Once it expired, its hold counts no more, even before it is reclaimed.
    let later = NOW + 10;
    assert_eq!(
        cat.usage(&bucket_scope("x-b"), later)
            .await
            .unwrap()
            .reserved_bytes,
        0
    );
    assert!(
        cat.reserve(&hold("x3", "x-t", "x-b", Some("j"), 10), later)
            .await
            .unwrap()
    );
    assert_eq!(cat.reclaim_reservations(later).await.unwrap(), 1);
    assert_eq!(cat.reclaim_reservations(later).await.unwrap(), 0);
    // A commit whose reservation was reclaimed is checked again: refused while x3 holds the
    // whole quota, committed and counted once x3 is gone.
    assert!(matches!(
        by_name::put_object_settling(cat, &sized("x-b", "k", 3), PutCondition::None, Some("x1"))
            .await,
        Err(CatalogError::QuotaExceeded { .. })
    ));
    cat.release("x3").await.unwrap();
    by_name::put_object_settling(cat, &sized("x-b", "k", 3), PutCondition::None, Some("x1"))
        .await
        .unwrap();
    assert_eq!(used(cat, &bucket_scope("x-b")).await, (3, 1));
}

/// A write that outlived its reservation (expired and reclaimed) must not commit past the
/// quota that others filled meanwhile: its commit is checked again with its real size.
pub async fn a_commit_whose_reservation_was_lost_is_checked_again(cat: &dyn Catalog) {
    ensure_tenant_and_bucket(cat, "l-t", "l-b").await;
    by_name::set_quota(cat, &bucket_scope("l-b"), Some(&limit(Some(10), None)))
        .await
        .unwrap();
    let r1 = Reservation {
        expires_ms: NOW,
        ..hold("l1", "l-t", "l-b", Some("k1"), 10)
    };
    assert!(cat.reserve(&r1, NOW - 1).await.unwrap());
    assert_eq!(cat.reclaim_reservations(NOW).await.unwrap(), 1);
    assert!(
        cat.reserve(&hold("l2", "l-t", "l-b", Some("k2"), 10), NOW)
            .await
            .unwrap()
    );
    by_name::put_object_settling(cat, &sized("l-b", "k2", 10), PutCondition::None, Some("l2"))
        .await
        .unwrap();
    let refused =
        by_name::put_object_settling(cat, &sized("l-b", "k1", 10), PutCondition::None, Some("l1"))
            .await;
    assert!(
        matches!(refused, Err(CatalogError::QuotaExceeded { .. })),
        "{refused:?}"
    );
    assert_eq!(used(cat, &bucket_scope("l-b")).await, (10, 1));
    assert_eq!(cat.get_object("l-b", "k1").await.unwrap(), None);
    // A reservation that expired but was not reclaimed yet is lost all the same (by the
    // catalog's clock, which is far past these), and a part is checked like a put.
    ensure_tenant_and_bucket(cat, "l-t", "l-b2").await;
    by_name::set_quota(cat, &bucket_scope("l-b2"), Some(&limit(Some(10), None)))
        .await
        .unwrap();
    let r5 = Reservation {
        expires_ms: NOW + 1,
        ..hold("l5", "l-t", "l-b2", None, 10)
    };
    assert!(cat.reserve(&r5, NOW).await.unwrap());
    assert!(
        cat.reserve(&hold("l6", "l-t", "l-b2", Some("j"), 10), NOW + 1)
            .await
            .unwrap()
    );
    by_name::put_object_settling(cat, &sized("l-b2", "j", 10), PutCondition::None, Some("l6"))
        .await
        .unwrap();
    upload(cat, "l-up", "l-b2", "big").await;
    let refused = by_name::put_part_settling(cat, &part("l-up", 1), Some("l5")).await;
    assert!(
        matches!(refused, Err(CatalogError::QuotaExceeded { .. })),
        "{refused:?}"
    );
    assert_eq!(used(cat, &bucket_scope("l-b2")).await, (10, 1));
    // A write that frees space is never refused, reservation or not.
    by_name::put_object_settling(cat, &sized("l-b", "k2", 4), PutCondition::None, Some("l4"))
        .await
        .unwrap();
    assert_eq!(used(cat, &bucket_scope("l-b")).await, (4, 1));
}

pub async fn concurrent_reservations_never_pass_a_quota(cat: &dyn Catalog) {
    ensure_tenant_and_bucket(cat, "c-t", "c-b1").await;
    ensure_tenant_and_bucket(cat, "c-t", "c-b2").await;
    by_name::set_quota(cat, &tenant_scope("c-t"), Some(&limit(Some(1000), None)))
        .await
        .unwrap();
    // 40 writers of 100 bytes into two buckets of one tenant: exactly 10 fit.
    let tries = (0..40).map(|i| {
        let bucket = if i % 2 == 0 { "c-b1" } else { "c-b2" };
        let r = hold(&format!("c{i}"), "c-t", bucket, Some(&format!("k{i}")), 100);
        async move {
            match cat.reserve(&r, NOW).await {
                Ok(true) => {
                    by_name::put_object_settling(
                        cat,
                        &sized(&r.bucket, r.key.as_deref().unwrap(), 100),
                        PutCondition::None,
                        Some(&r.id),
                    )
                    .await
                    .unwrap();
                    true
                }
                Ok(false) => panic!("a quota is set"),
                Err(CatalogError::QuotaExceeded { .. }) => false,
                Err(e) => panic!("{e}"),
            }
        }
    });
    let won = futures::future::join_all(tries)
        .await
        .into_iter()
        .filter(|w| *w)
        .count();
    assert_eq!(won, 10);
    let u = cat.usage(&tenant_scope("c-t"), NOW).await.unwrap();
    assert_eq!((u.bytes, u.objects, u.reserved_bytes), (1000, 10, 0));
}

pub async fn deleting_a_bucket_drops_its_usage_and_quota(cat: &dyn Catalog) {
    ensure_tenant_and_bucket(cat, "d-t", "d-b").await;
    by_name::set_quota(cat, &bucket_scope("d-b"), Some(&limit(Some(100), None)))
        .await
        .unwrap();
    upload(cat, "d-up", "d-b", "k").await;
    by_name::put_part(cat, &part("d-up", 1)).await.unwrap();
    assert!(
        cat.reserve(&hold("d1", "d-t", "d-b", Some("z"), 5), NOW)
            .await
            .unwrap()
    );
    by_name::put_object(cat, &sized("d-b", "a", 9), PutCondition::None)
        .await
        .unwrap();
    by_name::delete_object(cat, "d-b", "a").await.unwrap();
    by_name::delete_bucket(cat, "d-b").await.unwrap();
    assert_eq!(cat.get_quota(&bucket_scope("d-b")).await.unwrap(), None);
    // A bucket made again under the same name starts empty.
    ensure_tenant_and_bucket(cat, "d-t", "d-b").await;
    assert_eq!(
        cat.usage(&bucket_scope("d-b"), NOW).await.unwrap(),
        Usage::default()
    );
    assert_eq!(
        cat.usage(&tenant_scope("d-t"), NOW).await.unwrap(),
        Usage::default()
    );
}

/// A bucket `recount` holding one object of 3 bytes and an open upload with a part of 5.
pub async fn fill_for_recount(cat: &dyn Catalog) {
    ensure_tenant_and_bucket(cat, "rc-t", "recount").await;
    by_name::put_object(cat, &sized("recount", "a", 3), PutCondition::None)
        .await
        .unwrap();
    upload(cat, "rc-up", "recount", "b").await;
    by_name::put_part(cat, &part("rc-up", 1)).await.unwrap();
}

pub async fn a_recount_of_counted_usage_changes_nothing(cat: &dyn Catalog) {
    fill_for_recount(cat).await;
    let before = cat.usage(&bucket_scope("recount"), NOW).await.unwrap();
    assert_eq!((before.bytes, before.objects), (8, 1));
    let counted = cat.recount_usage("recount").await.unwrap();
    assert_eq!(counted, before);
    assert_eq!(
        cat.usage(&bucket_scope("recount"), NOW).await.unwrap(),
        before
    );
    assert!(matches!(
        cat.recount_usage("no-such-bucket").await,
        Err(CatalogError::NotFound { .. })
    ));
}

const LEASE: &str = "background";
const TTL: i64 = 15_000;
/// A lease short enough to let lapse in a test: leases lapse by the catalog's clock, so a
/// test waits for it rather than naming a time.
const SHORT_TTL: i64 = 300;

async fn take(cat: &dyn Catalog, holder: &str) -> Option<Lease> {
    cat.take_lease(LEASE, holder, TTL).await.unwrap()
}

/// Takes the lease for `holder` with [`SHORT_TTL`] and waits until it lapsed.
async fn take_and_let_lapse(cat: &dyn Catalog, holder: &str) -> Lease {
    let lease = cat
        .take_lease(LEASE, holder, SHORT_TTL)
        .await
        .unwrap()
        .expect("the lease is free");
    tokio::time::sleep(std::time::Duration::from_millis(
        u64::try_from(SHORT_TTL).unwrap() + 100,
    ))
    .await;
    lease
}

fn clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap())
}

/// The first holder gets the lease at epoch 1, until the catalog's clock passes the TTL;
/// renewing it before it lapses keeps the epoch and moves its end.
pub async fn a_lease_is_taken_and_renewed_at_the_same_epoch(cat: &dyn Catalog) {
    let before = clock_ms();
    let first = take(cat, "gw-a").await.expect("a free lease is taken");
    assert_eq!(
        (first.name.as_str(), first.holder.as_str(), first.epoch),
        (LEASE, "gw-a", 1)
    );
    // The catalog's clock, here the same machine's: within a second of this test's.
    assert!(
        (first.expires_ms - TTL - before).abs() < 1_000,
        "{first:?} taken at {before}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let renewed = take(cat, "gw-a").await.expect("its holder renews it");
    assert_eq!(renewed.epoch, 1);
    assert!(
        renewed.expires_ms > first.expires_ms,
        "{renewed:?} after {first:?}"
    );
    cat.check_lease(&renewed).await.unwrap();
    // Another lease name is another lease.
    let other = cat.take_lease("other", "gw-b", TTL).await.unwrap();
    assert_eq!(other.map(|l| l.epoch), Some(1));
}

/// While its holder keeps it, nobody else gets the lease, and it stays the holder's.
pub async fn a_held_lease_is_refused_to_another_holder(cat: &dyn Catalog) {
    let held = take(cat, "gw-a").await.unwrap();
    assert_eq!(take(cat, "gw-b").await, None);
    cat.check_lease(&held).await.unwrap();
    let renewed = take(cat, "gw-a").await.unwrap();
    assert_eq!(renewed.epoch, held.epoch);
}

/// Once it lapsed (by the catalog's clock), another holder takes the lease with a higher
/// epoch, and the former holder's lease is no longer current; the former holder, coming back,
/// gets it only once it lapsed again, and then with a higher epoch still.
pub async fn a_lapsed_lease_is_taken_over_with_a_higher_epoch(cat: &dyn Catalog) {
    let old = take_and_let_lapse(cat, "gw-a").await;
    assert!(matches!(
        cat.check_lease(&old).await,
        Err(CatalogError::LeaseLost(_))
    ));
    let new = cat
        .take_lease(LEASE, "gw-b", SHORT_TTL)
        .await
        .unwrap()
        .expect("a lapsed lease is taken over");
    assert!(new.epoch > old.epoch, "{new:?} after {old:?}");
    assert!(matches!(
        cat.check_lease(&old).await,
        Err(CatalogError::LeaseLost(_))
    ));
    cat.check_lease(&new).await.unwrap();
    assert_eq!(take(cat, "gw-a").await, None, "gw-b holds it");
    // A holder whose own lease lapsed, even with nobody taking it meanwhile, gets a new epoch.
    tokio::time::sleep(std::time::Duration::from_millis(
        u64::try_from(SHORT_TTL).unwrap() + 100,
    ))
    .await;
    let later = take(cat, "gw-b").await.unwrap();
    assert!(later.epoch > new.epoch, "{later:?} after {new:?}");
    assert_eq!(take(cat, "gw-a").await, None, "gw-b holds it again");
}

/// A lease given up is taken by another holder at once (with a higher epoch); giving up a
/// lease that has passed to another epoch leaves the new holder's alone.
pub async fn a_released_lease_is_taken_at_once(cat: &dyn Catalog) {
    let old = take(cat, "gw-a").await.unwrap();
    cat.release_lease(&old).await.unwrap();
    assert!(cat.check_lease(&old).await.is_err());
    let new = take(cat, "gw-b").await.expect("a released lease is free");
    assert!(new.epoch > old.epoch);
    cat.release_lease(&old).await.unwrap();
    cat.check_lease(&new).await.unwrap();
    assert_eq!(take(cat, "gw-a").await, None);
}

/// A batch made under a lease that passed to another holder changes nothing: the fenced
/// reclaim of expired holds removes them under the current lease only.
pub async fn a_stale_epoch_is_refused_in_a_fenced_batch(cat: &dyn Catalog) {
    ensure_tenant_and_bucket(cat, "f-t", "f-b").await;
    by_name::set_quota(cat, &bucket_scope("f-b"), Some(&limit(Some(100), None)))
        .await
        .unwrap();
    let crashed = Reservation {
        expires_ms: 500,
        ..hold("f1", "f-t", "f-b", None, 10)
    };
    assert!(cat.reserve(&crashed, 100).await.unwrap());
    let old = take_and_let_lapse(cat, "gw-a").await;
    let new = take(cat, "gw-b").await.unwrap();
    let now = 1_000;
    assert!(matches!(
        cat.reclaim_reservations_fenced(&old, now).await,
        Err(CatalogError::LeaseLost(name)) if name == LEASE
    ));
    // Nothing was removed: the current holder's batch still finds the expired hold.
    assert_eq!(cat.reclaim_reservations_fenced(&new, now).await.unwrap(), 1);
    assert_eq!(cat.reclaim_reservations_fenced(&new, now).await.unwrap(), 0);
    // A forged epoch (ahead of the stored one) is refused as well.
    let forged = Lease {
        epoch: new.epoch + 1,
        ..new.clone()
    };
    assert!(cat.reclaim_reservations_fenced(&forged, now).await.is_err());
}

/// A mover (repair, drain) that lost its lease, paused past its TTL while another process
/// took the lease over, records no move of an object's or a part's replicas; the current
/// holder's move is recorded only if the site list is still the one it read, so two movers
/// that read the same list cannot both record theirs.
pub async fn a_move_is_recorded_only_under_the_current_lease_and_from_the_sites_read(
    cat: &dyn Catalog,
) {
    ensure_tenant_and_bucket(cat, "mv-t", "mv-b").await;
    let o = object("mv-b", "k", "e1");
    by_name::put_object(cat, &o, PutCondition::None)
        .await
        .unwrap();
    let u = Upload {
        upload_id: "mv-u".into(),
        bucket: "mv-b".into(),
        key: "m".into(),
        initiated_ms: 1,
        envelope: b"env".to_vec(),
        meta: Vec::new(),
        sites: Vec::new(),
    };
    by_name::create_upload(cat, &u).await.unwrap();
    let p = part("mv-u", 1);
    by_name::put_part(cat, &p).await.unwrap();
    let moved = vec!["s7".to_owned(), "s8".to_owned()];

    let old = take_and_let_lapse(cat, "gw-a").await;
    let new = take(cat, "gw-b").await.expect("taken over");
    assert!(matches!(
        cat.move_object_sites(Some(&old), "mv-b", "k", &o.chunks, &o.sites, &moved)
            .await,
        Err(CatalogError::LeaseLost(_))
    ));
    assert!(matches!(
        cat.move_part_sites(Some(&old), "mv-u", 1, &p.chunk, &p.sites, &moved)
            .await,
        Err(CatalogError::LeaseLost(_))
    ));
    assert_eq!(
        cat.get_object("mv-b", "k").await.unwrap().unwrap().sites,
        o.sites
    );
    assert_eq!(
        cat.list_parts("mv-u", 0, 10).await.unwrap()[0].sites,
        p.sites
    );

    // The current holder moves them.
    assert!(
        cat.move_object_sites(Some(&new), "mv-b", "k", &o.chunks, &o.sites, &moved)
            .await
            .unwrap()
    );
    assert!(
        cat.move_part_sites(Some(&new), "mv-u", 1, &p.chunk, &p.sites, &moved)
            .await
            .unwrap()
    );
    assert_eq!(
        cat.get_object("mv-b", "k").await.unwrap().unwrap().sites,
        moved
    );
    assert_eq!(cat.list_parts("mv-u", 0, 10).await.unwrap()[0].sites, moved);
    // A second mover that read the list before the first one's move records nothing.
    let elsewhere = vec!["s9".to_owned()];
    assert!(
        !cat.move_object_sites(Some(&new), "mv-b", "k", &o.chunks, &o.sites, &elsewhere)
            .await
            .unwrap()
    );
    assert!(
        !cat.move_part_sites(Some(&new), "mv-u", 1, &p.chunk, &p.sites, &elsewhere)
            .await
            .unwrap()
    );
    assert_eq!(
        cat.get_object("mv-b", "k").await.unwrap().unwrap().sites,
        moved
    );
    assert_eq!(cat.list_parts("mv-u", 0, 10).await.unwrap()[0].sites, moved);
    // Without a lease (a process alone on its catalog) only the list read is checked.
    assert!(
        cat.move_object_sites(None, "mv-b", "k", &o.chunks, &moved, &elsewhere)
            .await
            .unwrap()
    );
    assert_eq!(
        cat.get_object("mv-b", "k").await.unwrap().unwrap().sites,
        elsewhere
    );
}

// ---- versions ----

use crate::{ObjectVersion, SeenVersion, Versioning, VersionsFrom};

/// A bucket with versioning `state`.
async fn versioned_bucket(cat: &dyn Catalog, tenant_name: &str, bucket: &str, state: Versioning) {
    ensure_tenant_and_bucket(cat, tenant_name, bucket).await;
    by_name::set_bucket_versioning(cat, bucket, state)
        .await
        .unwrap();
}

/// An object version with id `version` (`None`: the null version) and a size of `size`.
fn version(bucket: &str, key: &str, version: Option<&str>, size: u64) -> ObjectRecord {
    let mut o = object(bucket, key, &format!("etag-{}", version.unwrap_or("null")));
    o.size = size;
    o.chunks[0].size = size;
    o.version_id = version.map(str::to_owned);
    o
}

fn marker(bucket: &str, key: &str, id: Option<&str>) -> ObjectRecord {
    ObjectRecord {
        size: 0,
        etag: String::new(),
        envelope: Vec::new(),
        meta: Vec::new(),
        sites: Vec::new(),
        chunks: Vec::new(),
        ..version(bucket, key, id, 0)
    }
}

/// (key, version id or "null", delete marker, latest) of every entry, in listing order.
fn summary(page: &[ObjectVersion]) -> Vec<(String, String, bool, bool)> {
    page.iter()
        .map(|v| {
            (
                v.object.key.clone(),
                v.object.version_id.clone().unwrap_or_else(|| "null".into()),
                v.delete_marker,
                v.is_latest,
            )
        })
        .collect()
}

fn entry(key: &str, id: &str, marker: bool, latest: bool) -> (String, String, bool, bool) {
    (key.into(), id.into(), marker, latest)
}

async fn all_versions(cat: &dyn Catalog, bucket: &str) -> Vec<(String, String, bool, bool)> {
    summary(
        &by_name::list_object_versions(cat, bucket, "", VersionsFrom::Start, 1000)
            .await
            .unwrap(),
    )
}

pub async fn versioning_is_set_and_never_returns_to_unversioned(cat: &dyn Catalog) {
    ensure_tenant_and_bucket(cat, "vt", "vstate").await;
    let state = |b: Option<Bucket>| b.unwrap().versioning;
    assert_eq!(
        state(cat.get_bucket("vstate").await.unwrap()),
        Versioning::Unversioned
    );
    by_name::set_bucket_versioning(cat, "vstate", Versioning::Enabled)
        .await
        .unwrap();
    assert_eq!(
        state(cat.get_bucket("vstate").await.unwrap()),
        Versioning::Enabled
    );
    assert_eq!(
        cat.list_buckets("vt").await.unwrap()[0].versioning,
        Versioning::Enabled
    );
    by_name::set_bucket_versioning(cat, "vstate", Versioning::Suspended)
        .await
        .unwrap();
    assert_eq!(
        state(cat.get_bucket("vstate").await.unwrap()),
        Versioning::Suspended
    );
    assert!(matches!(
        by_name::set_bucket_versioning(cat, "vstate", Versioning::Unversioned).await,
        Err(CatalogError::Conflict(_))
    ));
    assert_eq!(
        state(cat.get_bucket("vstate").await.unwrap()),
        Versioning::Suspended
    );
    assert!(matches!(
        by_name::set_bucket_versioning(cat, "no-such-bucket", Versioning::Enabled).await,
        Err(CatalogError::NotFound { .. })
    ));
}

pub async fn an_unversioned_bucket_takes_no_version_ids(cat: &dyn Catalog) {
    ensure_tenant_and_bucket(cat, "vt", "plain").await;
    assert!(matches!(
        by_name::put_object(
            cat,
            &version("plain", "k", Some("v1"), 3),
            PutCondition::None
        )
        .await,
        Err(CatalogError::Conflict(_))
    ));
    assert!(matches!(
        by_name::put_delete_marker(cat, &marker("plain", "k", Some("m1"))).await,
        Err(CatalogError::Conflict(_))
    ));
    // An overwrite replaces, and the only version is the null one.
    by_name::put_object(cat, &version("plain", "k", None, 3), PutCondition::None)
        .await
        .unwrap();
    let replaced = by_name::put_object(cat, &version("plain", "k", None, 5), PutCondition::None)
        .await
        .unwrap();
    assert_eq!(replaced.map(|r| r.size), Some(3));
    assert_eq!(
        all_versions(cat, "plain").await,
        vec![entry("k", "null", false, true)]
    );
}

pub async fn versioned_puts_keep_every_version_newest_first(cat: &dyn Catalog) {
    versioned_bucket(cat, "vt", "vput", Versioning::Enabled).await;
    for id in ["v1", "v2", "v3"] {
        let replaced =
            by_name::put_object(cat, &version("vput", "k", Some(id), 3), PutCondition::None)
                .await
                .unwrap();
        assert_eq!(replaced, None, "a versioned put replaces nothing");
    }
    let current = cat.get_object("vput", "k").await.unwrap().unwrap();
    assert_eq!(current.version_id.as_deref(), Some("v3"));
    assert_eq!(
        all_versions(cat, "vput").await,
        vec![
            entry("k", "v3", false, true),
            entry("k", "v2", false, false),
            entry("k", "v1", false, false),
        ]
    );
    // Each version reads back whole by its id, with its own envelope and blobs.
    let v1 = cat
        .get_object_version("vput", "k", Some("v1"))
        .await
        .unwrap()
        .unwrap();
    assert!(!v1.is_latest && !v1.delete_marker);
    assert_eq!(v1.object.etag, "etag-v1");
    assert_ne!(v1.object.chunks, current.chunks);
    assert!(
        cat.get_object_version("vput", "k", Some("v9"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        cat.get_object_version("vput", "k", None)
            .await
            .unwrap()
            .is_none(),
        "no null version in a bucket versioned from the start"
    );
    // Listing current objects is unchanged: one entry per key.
    let listed = by_name::list_objects(cat, "vput", "", ListFrom::Start, 10)
        .await
        .unwrap();
    assert_eq!(listed, vec![current]);
}

pub async fn conditional_puts_on_a_versioned_key_see_only_the_current_version(cat: &dyn Catalog) {
    versioned_bucket(cat, "vt", "vcond", Versioning::Enabled).await;
    by_name::put_object(
        cat,
        &version("vcond", "k", Some("v1"), 3),
        PutCondition::Absent,
    )
    .await
    .unwrap();
    assert!(matches!(
        by_name::put_object(
            cat,
            &version("vcond", "k", Some("v2"), 3),
            PutCondition::Absent
        )
        .await,
        Err(CatalogError::PreconditionFailed(_))
    ));
    by_name::put_object(
        cat,
        &version("vcond", "k", Some("v2"), 3),
        PutCondition::ETagMatches("etag-v1".into()),
    )
    .await
    .unwrap();
    by_name::put_delete_marker(cat, &marker("vcond", "k", Some("m1")))
        .await
        .unwrap();
    // Behind a delete marker the key is absent.
    by_name::put_object(
        cat,
        &version("vcond", "k", Some("v3"), 3),
        PutCondition::Absent,
    )
    .await
    .unwrap();
    assert_eq!(
        all_versions(cat, "vcond").await,
        vec![
            entry("k", "v3", false, true),
            entry("k", "m1", true, false),
            entry("k", "v2", false, false),
            entry("k", "v1", false, false),
        ]
    );
}

pub async fn a_delete_marker_hides_a_key_until_it_is_removed(cat: &dyn Catalog) {
    versioned_bucket(cat, "vt", "vdel", Versioning::Enabled).await;
    by_name::put_object(
        cat,
        &version("vdel", "k", Some("v1"), 3),
        PutCondition::None,
    )
    .await
    .unwrap();
    let garbage = by_name::put_delete_marker(cat, &marker("vdel", "k", Some("m1")))
        .await
        .unwrap();
    assert!(garbage.is_empty(), "a delete marker removes no data");
    assert_eq!(cat.get_object("vdel", "k").await.unwrap(), None);
    assert!(
        by_name::list_objects(cat, "vdel", "", ListFrom::Start, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let latest = cat.latest_version("vdel", "k").await.unwrap().unwrap();
    assert!(latest.delete_marker && latest.is_latest);
    assert_eq!(latest.object.version_id.as_deref(), Some("m1"));
    let m = cat
        .get_object_version("vdel", "k", Some("m1"))
        .await
        .unwrap()
        .unwrap();
    assert!(m.delete_marker && m.is_latest);
    assert_eq!(
        all_versions(cat, "vdel").await,
        vec![entry("k", "m1", true, true), entry("k", "v1", false, false)]
    );
    // A second marker stacks on the first.
    by_name::put_delete_marker(cat, &marker("vdel", "k", Some("m2")))
        .await
        .unwrap();
    let removed = by_name::delete_object_version(cat, "vdel", "k", Some("m2"))
        .await
        .unwrap()
        .unwrap();
    assert!(removed.delete_marker && removed.is_latest);
    assert_eq!(
        cat.get_object("vdel", "k").await.unwrap(),
        None,
        "m1 still hides it"
    );
    // Removing the last marker makes the version under it current again.
    by_name::delete_object_version(cat, "vdel", "k", Some("m1"))
        .await
        .unwrap()
        .unwrap();
    let back = cat.get_object("vdel", "k").await.unwrap().unwrap();
    assert_eq!(back.version_id.as_deref(), Some("v1"));
    assert_eq!(
        all_versions(cat, "vdel").await,
        vec![entry("k", "v1", false, true)]
    );
    assert_eq!(
        cat.latest_version("vdel", "gone").await.unwrap(),
        None,
        "a key that never existed has no latest version"
    );
}

pub async fn suspended_puts_replace_only_the_null_version(cat: &dyn Catalog) {
    ensure_tenant_and_bucket(cat, "vt", "vsus").await;
    // An object from before versioning is the null version.
    let before = version("vsus", "k", None, 1);
    by_name::put_object(cat, &before, PutCondition::None)
        .await
        .unwrap();
    by_name::set_bucket_versioning(cat, "vsus", Versioning::Enabled)
        .await
        .unwrap();
    by_name::put_object(
        cat,
        &version("vsus", "k", Some("v1"), 2),
        PutCondition::None,
    )
    .await
    .unwrap();
    assert_eq!(
        all_versions(cat, "vsus").await,
        vec![
            entry("k", "v1", false, true),
            entry("k", "null", false, false)
        ]
    );
    by_name::set_bucket_versioning(cat, "vsus", Versioning::Suspended)
        .await
        .unwrap();
    // The first suspended put replaces the noncurrent null version and keeps v1.
    let replaced = by_name::put_object(cat, &version("vsus", "k", None, 3), PutCondition::None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        replaced.chunks, before.chunks,
        "the old null version's blobs are garbage"
    );
    assert_eq!(
        all_versions(cat, "vsus").await,
        vec![
            entry("k", "null", false, true),
            entry("k", "v1", false, false)
        ]
    );
    // The next replaces the current null version.
    let replaced = by_name::put_object(cat, &version("vsus", "k", None, 4), PutCondition::None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replaced.size, 3);
    assert_eq!(
        all_versions(cat, "vsus").await,
        vec![
            entry("k", "null", false, true),
            entry("k", "v1", false, false)
        ]
    );
    let current = cat.get_object("vsus", "k").await.unwrap().unwrap();
    assert_eq!((current.size, current.version_id), (4, None));
    let null = cat
        .get_object_version("vsus", "k", None)
        .await
        .unwrap()
        .unwrap();
    assert!(null.is_latest);
    assert_eq!(null.object.size, 4);
}

pub async fn a_suspended_delete_writes_a_null_delete_marker(cat: &dyn Catalog) {
    versioned_bucket(cat, "vt", "vsdel", Versioning::Enabled).await;
    by_name::put_object(
        cat,
        &version("vsdel", "a", Some("v1"), 2),
        PutCondition::None,
    )
    .await
    .unwrap();
    by_name::set_bucket_versioning(cat, "vsdel", Versioning::Suspended)
        .await
        .unwrap();
    // Over a version with an id: it stays, noncurrent.
    let garbage = by_name::put_delete_marker(cat, &marker("vsdel", "a", None))
        .await
        .unwrap();
    assert!(garbage.is_empty());
    assert_eq!(
        all_versions(cat, "vsdel").await,
        vec![
            entry("a", "null", true, true),
            entry("a", "v1", false, false)
        ]
    );
    // Over the null version: the null marker replaces it, its data is garbage.
    let null = version("vsdel", "b", None, 5);
    by_name::put_object(cat, &null, PutCondition::None)
        .await
        .unwrap();
    let garbage = by_name::put_delete_marker(cat, &marker("vsdel", "b", None))
        .await
        .unwrap();
    assert_eq!(garbage.len(), 1);
    assert_eq!(garbage[0].chunks, null.chunks);
    assert_eq!(cat.get_object("vsdel", "b").await.unwrap(), None);
    assert_eq!(
        summary(
            &by_name::list_object_versions(cat, "vsdel", "b", VersionsFrom::Start, 10)
                .await
                .unwrap()
        ),
        vec![entry("b", "null", true, true)]
    );
    // A null put over a null marker replaces the marker.
    assert_eq!(
        by_name::put_object(cat, &version("vsdel", "b", None, 6), PutCondition::None)
            .await
            .unwrap(),
        None,
        "a marker has no blobs"
    );
    assert_eq!(
        summary(
            &by_name::list_object_versions(cat, "vsdel", "b", VersionsFrom::Start, 10)
                .await
                .unwrap()
        ),
        vec![entry("b", "null", false, true)]
    );
}

pub async fn deleting_the_current_version_for_good_makes_the_next_current(cat: &dyn Catalog) {
    versioned_bucket(cat, "vt", "vperm", Versioning::Enabled).await;
    for id in ["v1", "v2", "v3"] {
        by_name::put_object(cat, &version("vperm", "k", Some(id), 3), PutCondition::None)
            .await
            .unwrap();
    }
    // A noncurrent version goes without touching the current one.
    let gone = by_name::delete_object_version(cat, "vperm", "k", Some("v2"))
        .await
        .unwrap()
        .unwrap();
    assert!(!gone.is_latest);
    assert_eq!(gone.object.etag, "etag-v2");
    assert_eq!(
        cat.get_object("vperm", "k")
            .await
            .unwrap()
            .unwrap()
            .version_id
            .as_deref(),
        Some("v3")
    );
    // The current one: the next newest becomes current.
    let gone = by_name::delete_object_version(cat, "vperm", "k", Some("v3"))
        .await
        .unwrap()
        .unwrap();
    assert!(gone.is_latest);
    assert_eq!(
        cat.get_object("vperm", "k")
            .await
            .unwrap()
            .unwrap()
            .version_id
            .as_deref(),
        Some("v1")
    );
    assert_eq!(
        by_name::delete_object_version(cat, "vperm", "k", Some("v3"))
            .await
            .unwrap(),
        None,
        "a version is removed once"
    );
    by_name::delete_object_version(cat, "vperm", "k", Some("v1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cat.get_object("vperm", "k").await.unwrap(), None);
    assert!(all_versions(cat, "vperm").await.is_empty());
    // A new version after all were removed starts the key afresh.
    by_name::put_object(
        cat,
        &version("vperm", "k", Some("v4"), 3),
        PutCondition::None,
    )
    .await
    .unwrap();
    assert_eq!(
        all_versions(cat, "vperm").await,
        vec![entry("k", "v4", false, true)]
    );
}

pub async fn version_listing_pages_by_key_and_version_markers(cat: &dyn Catalog) {
    versioned_bucket(cat, "vt", "vlist", Versioning::Enabled).await;
    // Keys in byte order ("B" < "a" < "ä"), each with versions and markers.
    for (key, ids) in [
        ("a", ["a1", "a2", "a3"]),
        ("B", ["b1", "b2", "b3"]),
        ("\u{e4}", ["c1", "c2", "c3"]),
    ] {
        for id in ids {
            by_name::put_object(cat, &version("vlist", key, Some(id), 1), PutCondition::None)
                .await
                .unwrap();
        }
    }
    by_name::put_delete_marker(cat, &marker("vlist", "a", Some("am")))
        .await
        .unwrap();
    let everything = all_versions(cat, "vlist").await;
    assert_eq!(
        everything,
        vec![
            entry("B", "b3", false, true),
            entry("B", "b2", false, false),
            entry("B", "b1", false, false),
            entry("a", "am", true, true),
            entry("a", "a3", false, false),
            entry("a", "a2", false, false),
            entry("a", "a1", false, false),
            entry("\u{e4}", "c3", false, true),
            entry("\u{e4}", "c2", false, false),
            entry("\u{e4}", "c1", false, false),
        ]
    );
    // Pages of 3, each continuing after the last entry of the one before: the same list.
    let mut paged = Vec::new();
    let mut after: Option<(String, String)> = None;
    loop {
        let from = match &after {
            None => VersionsFrom::Start,
            Some((k, v)) => VersionsFrom::AfterVersion(k, Some(v.as_str())),
        };
        let page = by_name::list_object_versions(cat, "vlist", "", from, 3)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some((
            last.object.key.clone(),
            last.object.version_id.clone().unwrap(),
        ));
        paged.extend(summary(&page));
    }
    assert_eq!(
        paged, everything,
        "latest flags survive page boundaries too"
    );
    // A key marker alone skips every version of that key.
    let rest = by_name::list_object_versions(cat, "vlist", "", VersionsFrom::AfterKey("a"), 10)
        .await
        .unwrap();
    assert_eq!(summary(&rest), everything[7..].to_vec());
    // An unknown version marker is refused.
    assert!(matches!(
        by_name::list_object_versions(
            cat,
            "vlist",
            "",
            VersionsFrom::AfterVersion("a", Some("zz")),
            10
        )
        .await,
        Err(CatalogError::NotFound {
            kind: "version",
            ..
        })
    ));
}

pub async fn a_version_listing_skips_common_prefixes_and_honours_its_prefix(cat: &dyn Catalog) {
    versioned_bucket(cat, "vt", "vpre", Versioning::Enabled).await;
    for key in ["d/1", "d/2", "e", "f/x"] {
        for id in ["1", "2"] {
            by_name::put_object(cat, &version("vpre", key, Some(id), 1), PutCondition::None)
                .await
                .unwrap();
        }
    }
    let keys = |page: Vec<ObjectVersion>| -> Vec<String> {
        page.into_iter().map(|v| v.object.key).collect()
    };
    assert_eq!(
        keys(
            by_name::list_object_versions(cat, "vpre", "d/", VersionsFrom::Start, 10)
                .await
                .unwrap()
        ),
        vec!["d/1", "d/1", "d/2", "d/2"]
    );
    assert_eq!(
        keys(
            by_name::list_object_versions(cat, "vpre", "", VersionsFrom::PastPrefix("d/"), 10)
                .await
                .unwrap()
        ),
        vec!["e", "e", "f/x", "f/x"]
    );
    // A marker before the prefix starts at the prefix.
    assert_eq!(
        keys(
            by_name::list_object_versions(cat, "vpre", "f/", VersionsFrom::AfterKey("a"), 10)
                .await
                .unwrap()
        ),
        vec!["f/x", "f/x"]
    );
}

pub async fn usage_counts_every_version(cat: &dyn Catalog) {
    versioned_bucket(cat, "vu", "vusage", Versioning::Enabled).await;
    let scope = bucket_scope("vusage");
    by_name::put_object(
        cat,
        &version("vusage", "k", Some("v1"), 10),
        PutCondition::None,
    )
    .await
    .unwrap();
    by_name::put_object(
        cat,
        &version("vusage", "k", Some("v2"), 20),
        PutCondition::None,
    )
    .await
    .unwrap();
    assert_eq!(used(cat, &scope).await, (30, 2), "both versions are held");
    by_name::put_delete_marker(cat, &marker("vusage", "k", Some("m")))
        .await
        .unwrap();
    assert_eq!(used(cat, &scope).await, (30, 2), "a marker holds nothing");
    by_name::delete_object_version(cat, "vusage", "k", Some("v1"))
        .await
        .unwrap();
    assert_eq!(used(cat, &scope).await, (20, 1));
    by_name::set_bucket_versioning(cat, "vusage", Versioning::Suspended)
        .await
        .unwrap();
    by_name::put_object(cat, &version("vusage", "k", None, 5), PutCondition::None)
        .await
        .unwrap();
    by_name::put_object(cat, &version("vusage", "k", None, 7), PutCondition::None)
        .await
        .unwrap();
    assert_eq!(
        used(cat, &scope).await,
        (27, 2),
        "the null version was replaced"
    );
    assert_eq!(used(cat, &tenant_scope("vu")).await, (27, 2));
    // What is counted is what a recount finds.
    let recounted = cat.recount_usage("vusage").await.unwrap();
    assert_eq!((recounted.bytes, recounted.objects), (27, 2));
}

pub async fn noncurrent_versions_are_replicas_like_current_ones(cat: &dyn Catalog) {
    versioned_bucket(cat, "vt", "vrep", Versioning::Enabled).await;
    let old = version("vrep", "k", Some("v1"), 3);
    by_name::put_object(cat, &old, PutCondition::None)
        .await
        .unwrap();
    let new = version("vrep", "k", Some("v2"), 3);
    by_name::put_object(cat, &new, PutCondition::None)
        .await
        .unwrap();
    let referenced = cat.referenced_blobs().await.unwrap();
    for blob in [old.chunks[0].blob, new.chunks[0].blob] {
        assert_eq!(
            referenced.iter().filter(|(_, b)| *b == blob).count(),
            2,
            "every version's blobs are named on both sites"
        );
    }
    assert_eq!(cat.site_references("s1").await.unwrap(), 2);
    // Repair moves a noncurrent version's replicas...
    let moved = vec!["s1".to_owned(), "s3".to_owned()];
    assert!(
        cat.set_object_sites("vrep", "k", &old.chunks, &moved)
            .await
            .unwrap()
    );
    let v1 = cat
        .get_object_version("vrep", "k", Some("v1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v1.object.sites, moved);
    assert_eq!(
        cat.get_object("vrep", "k").await.unwrap().unwrap().sites,
        new.sites,
        "the current version is left alone"
    );
    assert_eq!(cat.site_references("s3").await.unwrap(), 1);
    // ... and rotation rewraps its key.
    assert!(
        cat.replace_object_envelope("vrep", "k", &old.envelope, b"rewrapped")
            .await
            .unwrap()
    );
    let v1 = cat
        .get_object_version("vrep", "k", Some("v1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v1.object.envelope, b"rewrapped");
}

pub async fn a_bucket_holding_only_noncurrent_versions_is_not_empty(cat: &dyn Catalog) {
    versioned_bucket(cat, "vt", "vempty", Versioning::Enabled).await;
    by_name::put_object(
        cat,
        &version("vempty", "k", Some("v1"), 3),
        PutCondition::None,
    )
    .await
    .unwrap();
    by_name::put_delete_marker(cat, &marker("vempty", "k", Some("m")))
        .await
        .unwrap();
    assert!(matches!(
        by_name::delete_bucket(cat, "vempty").await,
        Err(CatalogError::BucketNotEmpty(_))
    ));
    by_name::delete_object_version(cat, "vempty", "k", Some("v1"))
        .await
        .unwrap();
    assert!(
        matches!(
            by_name::delete_bucket(cat, "vempty").await,
            Err(CatalogError::BucketNotEmpty(_))
        ),
        "a delete marker alone keeps a bucket"
    );
    by_name::delete_object_version(cat, "vempty", "k", Some("m"))
        .await
        .unwrap();
    by_name::delete_bucket(cat, "vempty").await.unwrap();
}

pub async fn version_pages_walk_every_version_of_a_bucket(cat: &dyn Catalog) {
    versioned_bucket(cat, "vt", "vwalk", Versioning::Enabled).await;
    let mut want = Vec::new();
    for key in ["a", "b", "c"] {
        for id in ["1", "2", "3"] {
            by_name::put_object(cat, &version("vwalk", key, Some(id), 1), PutCondition::None)
                .await
                .unwrap();
        }
        for id in ["3", "2", "1"] {
            want.push((key.to_owned(), id.to_owned()));
        }
    }
    let walk = |size| async move {
        let mut pages = crate::VersionPages::new(cat, &by_name::bucket(cat, "vwalk").await, size);
        let mut seen = Vec::new();
        while let Some(page) = pages.next_page().await.unwrap() {
            seen.extend(
                page.into_iter()
                    .map(|v| (v.object.key, v.object.version_id.unwrap())),
            );
        }
        seen
    };
    assert_eq!(walk(4).await, want, "every version once, in listing order");
    assert_eq!(walk(9).await, want);
    // The version the cursor stands on removed between two pages: the walk goes on with the
    // next key.
    let mut pages = crate::VersionPages::new(cat, &by_name::bucket(cat, "vwalk").await, 4);
    let first = pages.next_page().await.unwrap().unwrap();
    let last = first.last().unwrap().object.clone();
    assert_eq!(
        (last.key.as_str(), last.version_id.as_deref()),
        ("b", Some("3"))
    );
    by_name::delete_object_version(cat, "vwalk", "b", Some("3"))
        .await
        .unwrap();
    let next = pages.next_page().await.unwrap().unwrap();
    assert_eq!(next[0].object.key, "c");
}

pub async fn completing_an_upload_in_a_versioned_bucket_adds_a_version(cat: &dyn Catalog) {
    versioned_bucket(cat, "vt", "vmpu", Versioning::Enabled).await;
    by_name::put_object(
        cat,
        &version("vmpu", "k", Some("v1"), 3),
        PutCondition::None,
    )
    .await
    .unwrap();
    upload(cat, "vup", "vmpu", "k").await;
    let p = part("vup", 1);
    by_name::put_part(cat, &p).await.unwrap();
    let mut done = version("vmpu", "k", Some("v2"), p.chunk.size);
    done.chunks = vec![p.chunk];
    done.sites = p.sites.clone();
    let (replaced, unused) = by_name::complete_upload(cat, "vup", &done, PutCondition::None)
        .await
        .unwrap();
    assert_eq!((replaced, unused), (None, Vec::new()));
    assert_eq!(
        all_versions(cat, "vmpu").await,
        vec![
            entry("k", "v2", false, true),
            entry("k", "v1", false, false)
        ]
    );
}

pub async fn concurrent_writes_of_one_versioned_key_keep_every_version_once(cat: &dyn Catalog) {
    versioned_bucket(cat, "vt", "vrace", Versioning::Enabled).await;
    // Puts and delete markers of one key at once (on PostgreSQL on several connections): each
    // becomes an entry of its own, none is lost, exactly one is the newest.
    let writes = (0..16).map(|i| async move {
        let id = format!("w{i:02}");
        if i % 4 == 3 {
            by_name::put_delete_marker(cat, &marker("vrace", "k", Some(&id)))
                .await
                .map(|garbage| assert!(garbage.is_empty()))
        } else {
            by_name::put_object(
                cat,
                &version("vrace", "k", Some(&id), 1),
                PutCondition::None,
            )
            .await
            .map(|replaced| assert_eq!(replaced, None))
        }
    });
    for result in futures::future::join_all(writes).await {
        result.unwrap();
    }
    let listed = all_versions(cat, "vrace").await;
    let mut ids: Vec<String> = listed.iter().map(|e| e.1.clone()).collect();
    ids.sort();
    let want: Vec<String> = (0..16).map(|i| format!("w{i:02}")).collect();
    assert_eq!(ids, want, "every write once");
    assert_eq!(listed.iter().filter(|e| e.3).count(), 1, "one latest");
    // The current object (if the newest is not a marker) is the newest entry.
    match cat.get_object("vrace", "k").await.unwrap() {
        Some(current) => assert_eq!(current.version_id.as_deref(), Some(listed[0].1.as_str())),
        None => assert!(
            listed[0].2,
            "no current object: the newest is a delete marker"
        ),
    }
    assert_eq!(used(cat, &bucket_scope("vrace")).await, (12, 12));
}

/// `NotFound` for the bucket, and nothing else, is what acting through a stale record answers.
fn assert_bucket_gone<T: std::fmt::Debug>(what: &str, r: crate::Result<T>) {
    assert!(
        matches!(r, Err(CatalogError::NotFound { kind: "bucket", .. })),
        "{what} through the record of a deleted bucket: {r:?}"
    );
}

/// Tenant X checked its access to bucket `inc` (its record in hand, perhaps cached), then
/// deleted it; tenant Y created a bucket of that name. Nothing X does through its record may
/// write, delete or list anything of Y's.
pub async fn the_record_of_a_deleted_bucket_reaches_nothing_of_its_successor(cat: &dyn Catalog) {
    ensure_tenant(cat, "inc-x").await;
    ensure_tenant(cat, "inc-y").await;
    let xs = Bucket {
        name: "inc".into(),
        tenant: "inc-x".into(),
        created_ms: 1,
        versioning: crate::Versioning::Unversioned,
    };
    cat.create_bucket(&xs, &bucket_key("inc", 1)).await.unwrap();
    cat.create_upload(&xs, &upload_record("inc-ux", "inc", "k"))
        .await
        .unwrap();
    cat.delete_bucket(&xs).await.unwrap();
    let ys = Bucket {
        tenant: "inc-y".into(),
        created_ms: 2,
        ..xs.clone()
    };
    cat.create_bucket(&ys, &bucket_key("inc", 1)).await.unwrap();
    let theirs = object("inc", "k", "y");
    cat.put_object(&ys, &theirs, PutCondition::None)
        .await
        .unwrap();
    cat.create_upload(&ys, &upload_record("inc-uy", "inc", "big"))
        .await
        .unwrap();
    let their_part = part("inc-uy", 1);
    cat.put_part(&ys, &their_part).await.unwrap();
    let before = used(cat, &bucket_scope("inc")).await;

    let mine = object("inc", "k", "x");
    assert_bucket_gone("put", cat.put_object(&xs, &mine, PutCondition::None).await);
    assert_bucket_gone(
        "put settling",
        cat.put_object_settling(&xs, &mine, PutCondition::None, Some("r"))
            .await,
    );
    assert_bucket_gone("delete", cat.delete_object(&xs, "k").await);
    assert_bucket_gone(
        "delete of a version",
        cat.delete_object_version(&xs, "k", None).await,
    );
    let marker = ObjectRecord {
        size: 0,
        chunks: Vec::new(),
        version_id: Some("m".into()),
        ..object("inc", "k", "")
    };
    assert_bucket_gone("delete marker", cat.put_delete_marker(&xs, &marker).await);
    assert_bucket_gone("list", cat.list_objects(&xs, "", ListFrom::Start, 10).await);
    assert_bucket_gone(
        "list of versions",
        cat.list_object_versions(&xs, "", crate::VersionsFrom::Start, 10)
            .await,
    );
    assert_bucket_gone("list of uploads", cat.list_uploads(&xs, "", None, 10).await);
    assert_bucket_gone(
        "new upload",
        cat.create_upload(&xs, &upload_record("inc-ux2", "inc", "k"))
            .await,
    );
    assert_bucket_gone(
        "part of the successor's upload",
        cat.put_part(&xs, &part("inc-uy", 2)).await,
    );
    let done = ObjectRecord {
        chunks: vec![their_part.chunk],
        ..object("inc", "big", "x")
    };
    assert_bucket_gone(
        "completion of the successor's upload",
        cat.complete_upload(&xs, "inc-uy", &done, PutCondition::None)
            .await,
    );
    assert_bucket_gone(
        "key rotation",
        cat.add_bucket_key(&xs, &bucket_key("inc", 2)).await,
    );
    assert_bucket_gone(
        "bucket quota",
        cat.set_quota(QuotaTarget::Bucket(&xs), Some(&limit(Some(1), None)))
            .await,
    );
    assert_bucket_gone(
        "versioning",
        cat.set_bucket_versioning(&xs, crate::Versioning::Enabled)
            .await,
    );
    assert_bucket_gone("bucket delete", cat.delete_bucket(&xs).await);
    // A record of another bucket is not a pass to this one either.
    let other = Bucket {
        name: "inc-other".into(),
        ..ys.clone()
    };
    assert_bucket_gone(
        "put filed under another bucket",
        cat.put_object(&other, &mine, PutCondition::None).await,
    );

    // Y's bucket is as Y left it.
    assert_eq!(cat.get_bucket("inc").await.unwrap(), Some(ys.clone()));
    assert_eq!(
        cat.get_object("inc", "k").await.unwrap(),
        Some(theirs.clone())
    );
    assert_eq!(
        cat.current_bucket_key("inc")
            .await
            .unwrap()
            .map(|k| k.version),
        Some(1)
    );
    assert_eq!(cat.get_quota(&bucket_scope("inc")).await.unwrap(), None);
    assert_eq!(
        cat.list_parts("inc-uy", 0, 10).await.unwrap(),
        vec![their_part]
    );
    assert_eq!(used(cat, &bucket_scope("inc")).await, before);
    let listed = cat
        .list_objects(&ys, "", ListFrom::Start, 10)
        .await
        .unwrap();
    assert_eq!(listed, vec![theirs]);
    assert_eq!(
        cat.list_uploads(&ys, "", None, 10)
            .await
            .unwrap()
            .iter()
            .map(|u| u.upload_id.as_str())
            .collect::<Vec<_>>(),
        vec!["inc-uy"]
    );
    // Y's own record works.
    cat.delete_object(&ys, "k").await.unwrap();
    cat.abort_upload("inc-uy").await.unwrap();
    cat.delete_bucket(&ys).await.unwrap();
}

/// A tenant's write that began before it deleted its bucket and made it again must not land
/// in the new bucket (it would be filed under a key the new bucket does not have: acknowledged
/// but unreadable).
pub async fn a_bucket_deleted_and_created_again_by_its_owner_refuses_the_old_record(
    cat: &dyn Catalog,
) {
    ensure_tenant(cat, "inc-o").await;
    let first = Bucket {
        name: "inc-own".into(),
        tenant: "inc-o".into(),
        created_ms: 10,
        versioning: crate::Versioning::Unversioned,
    };
    cat.create_bucket(&first, &bucket_key("inc-own", 1))
        .await
        .unwrap();
    cat.delete_bucket(&first).await.unwrap();
    let second = Bucket {
        created_ms: 11,
        ..first.clone()
    };
    cat.create_bucket(&second, &bucket_key("inc-own", 1))
        .await
        .unwrap();
    let o = object("inc-own", "k", "e");
    assert_bucket_gone(
        "put through the first incarnation",
        cat.put_object(&first, &o, PutCondition::None).await,
    );
    assert_eq!(cat.get_object("inc-own", "k").await.unwrap(), None);
    cat.put_object(&second, &o, PutCondition::None)
        .await
        .unwrap();
    assert_eq!(cat.get_object("inc-own", "k").await.unwrap(), Some(o));
}

fn upload_record(id: &str, bucket: &str, key: &str) -> Upload {
    Upload {
        upload_id: id.into(),
        bucket: bucket.into(),
        key: key.into(),
        initiated_ms: 1,
        envelope: b"env".to_vec(),
        meta: Vec::new(),
        sites: vec!["s1".into()],
    }
}

/// An upload that was under way when its bucket was deleted cannot add parts to, or take
/// them from, a bucket made again under that name: its usage and its tenant's stay whole.
pub async fn an_upload_cut_off_by_its_buckets_deletion_leaves_usage_whole(cat: &dyn Catalog) {
    ensure_tenant_and_bucket(cat, "n-t", "n-other").await;
    by_name::put_object(cat, &sized("n-other", "k", 3), PutCondition::None)
        .await
        .unwrap();
    let first = Bucket {
        name: "n-b".into(),
        tenant: "n-t".into(),
        created_ms: 1,
        versioning: crate::Versioning::Unversioned,
    };
    cat.create_bucket(&first, &bucket_key("n-b", 1))
        .await
        .unwrap();
    cat.create_upload(&first, &upload_record("n-u", "n-b", "k"))
        .await
        .unwrap();
    cat.put_part(&first, &part("n-u", 1)).await.unwrap();
    cat.delete_bucket(&first).await.unwrap();
    assert_bucket_gone(
        "new upload",
        cat.create_upload(&first, &upload_record("n-u2", "n-b", "k"))
            .await,
    );
    let again = Bucket {
        created_ms: 2,
        ..first.clone()
    };
    cat.create_bucket(&again, &bucket_key("n-b", 1))
        .await
        .unwrap();
    assert!(matches!(
        cat.put_part(&again, &part("n-u", 2)).await,
        Err(CatalogError::NotFound { kind: "upload", .. })
    ));
    assert!(matches!(
        cat.abort_upload("n-u").await,
        Err(CatalogError::NotFound { kind: "upload", .. })
    ));
    assert_eq!(used(cat, &bucket_scope("n-b")).await, (0, 0));
    assert_eq!(used(cat, &tenant_scope("n-t")).await, (3, 1));
}

/// Tenant `neg-t` with bucket `neg-held` holding 3 bytes and bucket `neg-b` with upload
/// `neg-u` of one 5-byte part; a backend's test then loses the part's count, as a gateway of
/// a release before usage was counted would have, and calls [`check_uncounted_abort`].
pub async fn fill_for_uncounted_abort(cat: &dyn Catalog) {
    ensure_tenant_and_bucket(cat, "neg-t", "neg-held").await;
    by_name::put_object(cat, &sized("neg-held", "k", 3), PutCondition::None)
        .await
        .unwrap();
    ensure_tenant_and_bucket(cat, "neg-t", "neg-b").await;
    upload(cat, "neg-u", "neg-b", "k").await;
    by_name::put_part(cat, &part("neg-u", 1)).await.unwrap();
}

/// Aborting the upload whose part was never counted takes nothing below zero: neither the
/// bucket's usage nor, through it, the tenant's.
pub async fn check_uncounted_abort(cat: &dyn Catalog) {
    cat.abort_upload("neg-u").await.unwrap();
    assert_eq!(used(cat, &bucket_scope("neg-b")).await, (0, 0));
    assert_eq!(used(cat, &tenant_scope("neg-t")).await, (3, 1));
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Completes upload `id` of `key` in `bucket` with one part, at `at_ms`, as version `version`.
async fn complete_one_part(
    cat: &dyn Catalog,
    id: &str,
    bucket: &str,
    key: &str,
    version: Option<&str>,
    at_ms: i64,
) -> ObjectRecord {
    upload(cat, id, bucket, key).await;
    let p = part(id, 1);
    by_name::put_part(cat, &p).await.unwrap();
    let mut done = self::version(bucket, key, version, p.chunk.size);
    done.chunks = vec![p.chunk];
    done.sites = p.sites.clone();
    done.etag = format!("sealed etag of {id}");
    done.last_modified_ms = at_ms;
    by_name::complete_upload(cat, id, &done, PutCondition::None)
        .await
        .unwrap();
    done
}

/// A completed upload is remembered (bucket incarnation, key, version, sealed ETag) so that a
/// repeated completion can be answered; not past its retention, and not past its bucket.
pub async fn a_completed_upload_is_remembered_for_its_retention(cat: &dyn Catalog) {
    versioned_bucket(cat, "cu", "cu-v", Versioning::Enabled).await;
    ensure_tenant_and_bucket(cat, "cu", "cu-plain").await;
    assert_eq!(cat.get_completed_upload("never").await.unwrap(), None);
    let now = wall_ms();
    let v = complete_one_part(cat, "cu1", "cu-v", "k", Some("ver1"), now).await;
    let b = by_name::bucket(cat, "cu-v").await;
    assert_eq!(
        cat.get_completed_upload("cu1").await.unwrap(),
        Some(crate::CompletedUpload {
            upload_id: "cu1".into(),
            bucket: "cu-v".into(),
            bucket_created_ms: b.created_ms,
            key: "k".into(),
            version_id: Some("ver1".into()),
            etag: v.etag.clone(),
            completed_ms: now,
        })
    );
    let n = complete_one_part(cat, "cu2", "cu-plain", "k\u{1}", None, now).await;
    let got = cat.get_completed_upload("cu2").await.unwrap().unwrap();
    assert_eq!(
        (got.key, got.version_id, got.etag),
        ("k\u{1}".to_owned(), None, n.etag)
    );
    // The upload itself is gone: only its completion is remembered.
    assert_eq!(cat.get_upload("cu2").await.unwrap(), None);
    // A completion older than the retention is not answered.
    let old = now - crate::COMPLETED_UPLOAD_RETENTION_MS - 1_000;
    complete_one_part(cat, "cu3", "cu-plain", "old", None, old).await;
    assert_eq!(cat.get_completed_upload("cu3").await.unwrap(), None);
    // Nor one of a bucket that was deleted.
    by_name::delete_object(cat, "cu-plain", "k\u{1}")
        .await
        .unwrap();
    by_name::delete_object(cat, "cu-plain", "old")
        .await
        .unwrap();
    by_name::delete_bucket(cat, "cu-plain").await.unwrap();
    assert_eq!(cat.get_completed_upload("cu2").await.unwrap(), None);
    assert!(cat.get_completed_upload("cu1").await.unwrap().is_some());
}

/// A version's sealed metadata (where tags live) is replaced only if it is still what the
/// caller read, for the version named, never for a delete marker, and only through the
/// bucket's current incarnation.
pub async fn object_meta_is_replaced_only_where_it_is_expected(cat: &dyn Catalog) {
    versioned_bucket(cat, "om", "om-v", Versioning::Enabled).await;
    let mut v1 = version("om-v", "k", Some("v1"), 3);
    v1.meta = b"meta one".to_vec();
    let mut v2 = version("om-v", "k", Some("v2"), 3);
    v2.meta = b"meta two".to_vec();
    for v in [&v1, &v2] {
        by_name::put_object(cat, v, PutCondition::None)
            .await
            .unwrap();
    }
    let b = by_name::bucket(cat, "om-v").await;
    // Not what is there: nothing changes.
    assert!(
        !cat.replace_object_meta(&b, "k", Some("v1"), b"meta two", b"x")
            .await
            .unwrap()
    );
    assert!(
        !cat.replace_object_meta(&b, "k", Some("nope"), b"meta one", b"x")
            .await
            .unwrap()
    );
    // The noncurrent version by its id, then the current one.
    assert!(
        cat.replace_object_meta(&b, "k", Some("v1"), b"meta one", b"tagged one")
            .await
            .unwrap()
    );
    assert!(
        cat.replace_object_meta(&b, "k", Some("v2"), b"meta two", b"tagged two")
            .await
            .unwrap()
    );
    let got = cat
        .get_object_version("om-v", "k", Some("v1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.object.meta, b"tagged one");
    assert_eq!(
        cat.get_object("om-v", "k").await.unwrap().unwrap().meta,
        b"tagged two"
    );
    // A delete marker has no metadata to replace.
    by_name::put_delete_marker(cat, &marker("om-v", "k", Some("m1")))
        .await
        .unwrap();
    assert!(
        !cat.replace_object_meta(&b, "k", Some("m1"), b"", b"x")
            .await
            .unwrap()
    );
    // The null version of an unversioned bucket.
    ensure_tenant_and_bucket(cat, "om", "om-plain").await;
    let mut o = object("om-plain", "k", "e");
    o.meta = b"plain".to_vec();
    by_name::put_object(cat, &o, PutCondition::None)
        .await
        .unwrap();
    let plain = by_name::bucket(cat, "om-plain").await;
    assert!(
        cat.replace_object_meta(&plain, "k", None, b"plain", b"plain tagged")
            .await
            .unwrap()
    );
    assert_eq!(
        cat.get_object("om-plain", "k").await.unwrap().unwrap().meta,
        b"plain tagged"
    );
    // Through a record of another incarnation: NotFound, nothing written.
    let stale = Bucket {
        created_ms: plain.created_ms - 1,
        ..plain.clone()
    };
    assert_bucket_gone(
        "meta replaced",
        cat.replace_object_meta(&stale, "k", None, b"plain tagged", b"x")
            .await,
    );
    assert_eq!(
        cat.get_object("om-plain", "k").await.unwrap().unwrap().meta,
        b"plain tagged"
    );
}

/// A bucket's configurations are kept per kind, for one incarnation of its name: a bucket
/// deleted and made again starts without any, and a stale record writes none.
pub async fn bucket_configs_belong_to_one_incarnation_and_kind(cat: &dyn Catalog) {
    ensure_tenant(cat, "bc").await;
    let first = Bucket {
        name: "bc-b".into(),
        tenant: "bc".into(),
        created_ms: 10,
        versioning: crate::Versioning::Unversioned,
    };
    cat.create_bucket(&first, &bucket_key("bc-b", 1))
        .await
        .unwrap();
    let cors = crate::config_kind::CORS;
    assert_eq!(cat.get_bucket_config(&first, cors).await.unwrap(), None);
    cat.put_bucket_config(&first, cors, Some(b"rules one"), 1)
        .await
        .unwrap();
    cat.put_bucket_config(&first, "other", Some(b"other kind"), 1)
        .await
        .unwrap();
    assert_eq!(
        cat.get_bucket_config(&first, cors)
            .await
            .unwrap()
            .as_deref(),
        Some(&b"rules one"[..])
    );
    cat.put_bucket_config(&first, cors, Some(b"rules two"), 2)
        .await
        .unwrap();
    assert_eq!(
        cat.get_bucket_config(&first, cors)
            .await
            .unwrap()
            .as_deref(),
        Some(&b"rules two"[..])
    );
    cat.put_bucket_config(&first, cors, None, 3).await.unwrap();
    assert_eq!(cat.get_bucket_config(&first, cors).await.unwrap(), None);
    assert_eq!(
        cat.get_bucket_config(&first, "other")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"other kind"[..])
    );
    cat.put_bucket_config(&first, cors, Some(b"rules three"), 4)
        .await
        .unwrap();
    cat.delete_bucket(&first).await.unwrap();
    let second = Bucket {
        created_ms: 11,
        ..first.clone()
    };
    cat.create_bucket(&second, &bucket_key("bc-b", 1))
        .await
        .unwrap();
    assert_eq!(cat.get_bucket_config(&second, cors).await.unwrap(), None);
    assert_eq!(cat.get_bucket_config(&second, "other").await.unwrap(), None);
    assert_bucket_gone(
        "config set",
        cat.put_bucket_config(&first, cors, Some(b"stale"), 5).await,
    );
    assert_eq!(cat.get_bucket_config(&second, cors).await.unwrap(), None);
    assert_eq!(cat.get_bucket_config(&first, cors).await.unwrap(), None);
}

pub async fn object_locks_belong_to_one_version_of_one_incarnation(cat: &dyn Catalog) {
    ensure_tenant(cat, "ol").await;
    let first = Bucket {
        name: "ol-b".into(),
        tenant: "ol".into(),
        created_ms: 10,
        versioning: crate::Versioning::Enabled,
    };
    cat.create_bucket(&first, &bucket_key("ol-b", 1))
        .await
        .unwrap();
    assert_eq!(cat.get_object_lock(&first, "k", "v1").await.unwrap(), None);
    cat.put_object_lock(&first, "k", "v1", b"one", 1)
        .await
        .unwrap();
    cat.put_object_lock(&first, "k", "v2", b"two", 1)
        .await
        .unwrap();
    cat.put_object_lock(&first, "k\u{e9}", "v1", b"other key", 1)
        .await
        .unwrap();
    let get = |k: &'static str, v: &'static str| {
        let b = first.clone();
        async move { cat.get_object_lock(&b, k, v).await.unwrap() }
    };
    assert_eq!(get("k", "v1").await.as_deref(), Some(&b"one"[..]));
    assert_eq!(get("k", "v2").await.as_deref(), Some(&b"two"[..]));
    assert_eq!(
        get("k\u{e9}", "v1").await.as_deref(),
        Some(&b"other key"[..])
    );
    cat.put_object_lock(&first, "k", "v1", b"one, extended", 2)
        .await
        .unwrap();
    assert_eq!(get("k", "v1").await.as_deref(), Some(&b"one, extended"[..]));
    assert_eq!(get("k", "v2").await.as_deref(), Some(&b"two"[..]));
    cat.delete_bucket(&first).await.unwrap();
    let second = Bucket {
        created_ms: 11,
        ..first.clone()
    };
    cat.create_bucket(&second, &bucket_key("ol-b", 1))
        .await
        .unwrap();
    assert_eq!(cat.get_object_lock(&second, "k", "v1").await.unwrap(), None);
    assert_bucket_gone(
        "object lock set",
        cat.put_object_lock(&first, "k", "v1", b"stale", 3).await,
    );
    assert_eq!(cat.get_object_lock(&second, "k", "v1").await.unwrap(), None);
    assert_eq!(cat.get_object_lock(&first, "k", "v1").await.unwrap(), None);
}

/// The conditional removals a lifecycle walk makes: each acts only on the entry as it was
/// seen, so that nothing a client wrote after the walk looked is removed or hidden.
pub async fn seen_versions_are_removed_or_hidden_only_as_they_were_seen(cat: &dyn Catalog) {
    // Unversioned: the object seen goes; one written over it meanwhile stays.
    ensure_tenant_and_bucket(cat, "st", "seen-plain").await;
    by_name::put_object(cat, &object("seen-plain", "k", "e1"), PutCondition::None)
        .await
        .unwrap();
    let b = cat.get_bucket("seen-plain").await.unwrap().unwrap();
    let v = cat
        .latest_version("seen-plain", "k")
        .await
        .unwrap()
        .unwrap();
    let seen = SeenVersion::of(&v);
    by_name::put_object(cat, &object("seen-plain", "k", "e2"), PutCondition::None)
        .await
        .unwrap();
    assert_eq!(cat.delete_seen_version(&b, "k", &seen).await.unwrap(), None);
    assert_eq!(
        cat.get_object("seen-plain", "k")
            .await
            .unwrap()
            .unwrap()
            .etag,
        "e2"
    );
    let seen = SeenVersion::of(
        &cat.latest_version("seen-plain", "k")
            .await
            .unwrap()
            .unwrap(),
    );
    let gone = cat
        .delete_seen_version(&b, "k", &seen)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(gone.object.etag, "e2");
    assert_eq!(cat.get_object("seen-plain", "k").await.unwrap(), None);
    assert_eq!(
        cat.delete_seen_version(&b, "k", &seen).await.unwrap(),
        None,
        "only once"
    );

    // Versioned: a marker goes over the current version seen, not over a newer one.
    versioned_bucket(cat, "st", "seen-v", Versioning::Enabled).await;
    let b = cat.get_bucket("seen-v").await.unwrap().unwrap();
    by_name::put_object(
        cat,
        &version("seen-v", "k", Some("v1"), 3),
        PutCondition::None,
    )
    .await
    .unwrap();
    let v1 = SeenVersion::of(&cat.latest_version("seen-v", "k").await.unwrap().unwrap());
    by_name::put_object(
        cat,
        &version("seen-v", "k", Some("v2"), 3),
        PutCondition::None,
    )
    .await
    .unwrap();
    assert_eq!(
        cat.put_delete_marker_over(&b, &marker("seen-v", "k", Some("m1")), &v1)
            .await
            .unwrap(),
        None,
        "v1 is no longer current"
    );
    // v1 was seen current; now noncurrent: not removed as if it were the newest.
    assert_eq!(cat.delete_seen_version(&b, "k", &v1).await.unwrap(), None);
    let v2 = SeenVersion::of(&cat.latest_version("seen-v", "k").await.unwrap().unwrap());
    let garbage = cat
        .put_delete_marker_over(&b, &marker("seen-v", "k", Some("m1")), &v2)
        .await
        .unwrap()
        .unwrap();
    assert!(garbage.is_empty());
    assert_eq!(
        all_versions(cat, "seen-v").await,
        vec![
            entry("k", "m1", true, true),
            entry("k", "v2", false, false),
            entry("k", "v1", false, false)
        ]
    );
    // A marker seen as the only entry is not removed while versions remain behind it.
    let m1 = SeenVersion {
        only_entry: true,
        ..SeenVersion::of(&cat.latest_version("seen-v", "k").await.unwrap().unwrap())
    };
    assert_eq!(cat.delete_seen_version(&b, "k", &m1).await.unwrap(), None);
    let noncurrent = |id: &str| SeenVersion {
        version_id: Some(id.into()),
        etag: format!("etag-{id}"),
        delete_marker: false,
        latest: false,
        only_entry: false,
    };
    for id in ["v1", "v2"] {
        let gone = cat
            .delete_seen_version(&b, "k", &noncurrent(id))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(gone.object.version_id.as_deref(), Some(id));
    }
    let gone = cat
        .delete_seen_version(&b, "k", &m1)
        .await
        .unwrap()
        .unwrap();
    assert!(gone.delete_marker);
    assert!(all_versions(cat, "seen-v").await.is_empty());
}

pub async fn a_tenants_buckets_come_in_pages_and_its_sites_in_one_count(cat: &dyn Catalog) {
    for b in ["pg-c", "pg-a", "pg-b"] {
        ensure_tenant_and_bucket(cat, "t-pages", b).await;
    }
    ensure_tenant_and_bucket(cat, "t-pages-other", "pg-aa").await;
    let names = |page: Vec<Bucket>| page.into_iter().map(|b| b.name).collect::<Vec<_>>();
    let first = cat.list_buckets_page("t-pages", None, 2).await.unwrap();
    assert_eq!(
        names(first),
        ["pg-a", "pg-b"],
        "name order, the tenant's own only"
    );
    let rest = cat
        .list_buckets_page("t-pages", Some("pg-b"), 2)
        .await
        .unwrap();
    assert_eq!(names(rest), ["pg-c"]);
    assert!(
        cat.list_buckets_page("t-pages", Some("pg-c"), 2)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        cat.list_buckets_page("nobody", None, 2)
            .await
            .unwrap()
            .is_empty()
    );

    by_name::set_bucket_versioning(cat, "pg-b", Versioning::Enabled)
        .await
        .unwrap();
    let on = |o: ObjectRecord, sites: &[&str]| ObjectRecord {
        sites: sites.iter().map(|s| (*s).to_owned()).collect(),
        ..o
    };
    for (o, sites) in [
        (object("pg-a", "k1", "e"), &["s1", "s2"][..]),
        (object("pg-a", "k2", "e"), &["s1", "s2"][..]),
        (object("pg-c", "k1", "e"), &["s3"][..]),
        (version("pg-b", "k", Some("v1"), 3), &["s1", "s2"][..]),
        (version("pg-b", "k", Some("v2"), 3), &["s2", "s3"][..]),
        (object("pg-aa", "k", "e"), &["s9"][..]),
    ] {
        by_name::put_object(cat, &on(o, sites), PutCondition::None)
            .await
            .unwrap();
    }
    by_name::put_delete_marker(cat, &marker("pg-b", "k", Some("m1")))
        .await
        .unwrap();
    // Noncurrent versions count; the delete marker and the other tenant's objects do not.
    assert_eq!(
        cat.tenant_objects_by_sites("t-pages").await.unwrap(),
        vec![
            (r#"["s1","s2"]"#.to_owned(), 3),
            (r#"["s2","s3"]"#.to_owned(), 1),
            (r#"["s3"]"#.to_owned(), 1),
        ]
    );
    assert!(
        cat.tenant_objects_by_sites("nobody")
            .await
            .unwrap()
            .is_empty()
    );
}

/// The first console session key stored stays; a second gateway's is not stored.
pub async fn the_console_session_key_is_made_once(cat: &dyn Catalog) {
    assert_eq!(cat.console_key("k1").await.unwrap(), None);
    assert_eq!(
        cat.init_console_key("k1", "first", 1).await.unwrap(),
        "first"
    );
    assert_eq!(
        cat.init_console_key("k1", "second", 2).await.unwrap(),
        "first"
    );
    assert_eq!(
        cat.console_key("k1").await.unwrap().as_deref(),
        Some("first")
    );
    assert_eq!(cat.console_key("k2").await.unwrap(), None);
}

/// Console sessions: stored as given, touched forward only, ended, purged once expired when
/// another starts, at most `max_per_owner` of one owner (its own least recently used go first,
/// never another owner's) and at most `max_sessions` in all (a start beyond is refused, ending
/// no one's session).
pub async fn console_sessions_expire_are_bounded_and_end(cat: &dyn Catalog) {
    let row = |n: u8, owner: &str, started_ms: i64, used_ms: i64| crate::ConsoleSession {
        id_hash: format!("{n:064x}"),
        sealed: vec![n, 0, 0xff],
        started_ms,
        used_ms,
        owner: Some(owner.to_owned()),
        key_id: Some(format!("key-{n}")),
    };
    let none_expired = crate::SessionCutoff {
        used_before_ms: 0,
        started_before_ms: 0,
    };
    let bounds = crate::SessionBounds {
        max_sessions: 3,
        max_per_owner: 2,
    };
    let hash = |n: u8| format!("{n:064x}");
    let there = |n: u8| async move { cat.get_console_session(&hash(n)).await.unwrap().is_some() };
    assert_eq!(cat.get_console_session(&hash(1)).await.unwrap(), None);
    assert!(
        cat.start_console_session(&row(1, "a", 100, 100), bounds, none_expired)
            .await
            .unwrap()
    );
    assert_eq!(
        cat.get_console_session(&hash(1)).await.unwrap(),
        Some(row(1, "a", 100, 100))
    );
    cat.touch_console_session(&hash(1), 150).await.unwrap();
    cat.touch_console_session(&hash(1), 120).await.unwrap();
    assert_eq!(
        cat.get_console_session(&hash(1)).await.unwrap(),
        Some(row(1, "a", 100, 150)),
        "touched forward only"
    );
    cat.touch_console_session(&hash(9), 150).await.unwrap();
    assert_eq!(cat.get_console_session(&hash(9)).await.unwrap(), None);
    // The bound per owner: a's third session ends a's least recently used (2), not b's (3),
    // though b's is the least recently used of all.
    for r in [row(2, "a", 110, 110), row(3, "b", 90, 90)] {
        assert!(
            cat.start_console_session(&r, bounds, none_expired)
                .await
                .unwrap()
        );
    }
    assert!(
        cat.start_console_session(&row(4, "a", 170, 170), bounds, none_expired)
            .await
            .unwrap()
    );
    assert!(!there(2).await, "a's own least recently used is kept");
    for n in [1, 3, 4] {
        assert!(there(n).await, "{n}");
    }
    // The bound in all: c's first session is refused, and no one's ends.
    assert!(
        !cat.start_console_session(&row(5, "c", 180, 180), bounds, none_expired)
            .await
            .unwrap()
    );
    assert!(!there(5).await, "a session beyond the bound was added");
    for n in [1, 3, 4] {
        assert!(there(n).await, "{n} ended by another owner's start");
    }
    // a, at its own bound, may still start one: its own least recently used (1) goes.
    assert!(
        cat.start_console_session(&row(5, "a", 180, 180), bounds, none_expired)
            .await
            .unwrap()
    );
    assert!(!there(1).await);
    for n in [3, 4, 5] {
        assert!(there(n).await, "{n}");
    }
    // Expiry: absolute (3, started at 90) and idle (4, last used at 170) go when 6 starts.
    assert!(
        cat.start_console_session(
            &row(6, "c", 200, 200),
            bounds,
            crate::SessionCutoff {
                used_before_ms: 170,
                started_before_ms: 90,
            },
        )
        .await
        .unwrap()
    );
    assert!(!there(3).await && !there(4).await);
    assert_eq!(
        cat.get_console_session(&hash(5)).await.unwrap(),
        Some(row(5, "a", 180, 180))
    );
    // Sign-out.
    cat.end_console_session(&hash(5)).await.unwrap();
    assert!(!there(5).await);
    cat.end_console_session(&hash(5)).await.unwrap();
    assert!(there(6).await);
}

fn beat(id: &str, background: bool, status: &str) -> crate::GatewayBeat {
    crate::GatewayBeat {
        id: id.to_owned(),
        version: "0.1.0".to_owned(),
        started_ms: 1_700_000_000_000,
        background,
        status: status.to_owned(),
    }
}

/// Each process has one row, replaced by its next beat and stamped by the catalog's clock;
/// the list comes most recently seen first, bounded, with the catalog's clock; a status
/// longer than the bound is refused and changes nothing.
pub async fn gateway_beats_are_one_row_per_process_seen_by_the_catalogs_clock(cat: &dyn Catalog) {
    assert!(cat.list_gateways(10).await.unwrap().gateways.is_empty());
    let before = clock_ms();
    let seen_a = cat.beat_gateway(&beat("gw-a", true, "{}")).await.unwrap();
    // The catalog's clock, here the same machine's: within a second of this test's.
    assert!((seen_a - before).abs() < 1_000, "{seen_a} at {before}");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let seen_b = cat.beat_gateway(&beat("gw-b", false, "{}")).await.unwrap();
    assert!(seen_b >= seen_a);
    let list = cat.list_gateways(10).await.unwrap();
    let ids: Vec<&str> = list.gateways.iter().map(|g| g.beat.id.as_str()).collect();
    assert_eq!(ids, ["gw-b", "gw-a"], "most recently seen first");
    assert!(list.now_ms >= seen_b, "{list:?}");
    assert_eq!(list.gateways[1].beat, beat("gw-a", true, "{}"));
    assert_eq!(list.gateways[1].seen_ms, seen_a);
    // The next beat replaces the row.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let again = cat
        .beat_gateway(&beat("gw-a", false, r#"{"x":1}"#))
        .await
        .unwrap();
    assert!(again > seen_a);
    let list = cat.list_gateways(10).await.unwrap();
    assert_eq!(list.gateways.len(), 2);
    assert_eq!(list.gateways[0].beat, beat("gw-a", false, r#"{"x":1}"#));
    assert_eq!(list.gateways[0].seen_ms, again);
    // Bounded: by the caller's limit and by the catalog's.
    assert_eq!(cat.list_gateways(1).await.unwrap().gateways.len(), 1);
    assert!(cat.list_gateways(usize::MAX).await.unwrap().gateways.len() <= crate::MAX_GATEWAY_ROWS);
    // Too long a status is refused; the row stays as it was.
    let long = "x".repeat(crate::MAX_GATEWAY_STATUS + 1);
    assert!(matches!(
        cat.beat_gateway(&beat("gw-a", true, &long)).await,
        Err(CatalogError::PreconditionFailed(_))
    ));
    let list = cat.list_gateways(10).await.unwrap();
    assert_eq!(list.gateways[0].beat, beat("gw-a", false, r#"{"x":1}"#));
}

/// Rows unseen for longer than asked are removed by the lease holder; a lapsed holder's batch
/// removes nothing.
pub async fn unseen_gateways_are_forgotten_only_under_the_current_lease(cat: &dyn Catalog) {
    cat.beat_gateway(&beat("gw-old", false, "{}"))
        .await
        .unwrap();
    let old = take_and_let_lapse(cat, "gw-a").await;
    cat.beat_gateway(&beat("gw-new", true, "{}")).await.unwrap();
    // gw-old was seen at least SHORT_TTL + 100 ms ago, gw-new just now.
    let unseen = SHORT_TTL;
    assert!(matches!(
        cat.forget_gateways_fenced(&old, unseen).await,
        Err(CatalogError::LeaseLost(_))
    ));
    assert_eq!(cat.list_gateways(10).await.unwrap().gateways.len(), 2);
    let new = take(cat, "gw-b").await.unwrap();
    assert_eq!(cat.forget_gateways_fenced(&new, unseen).await.unwrap(), 1);
    let ids: Vec<String> = cat
        .list_gateways(10)
        .await
        .unwrap()
        .gateways
        .into_iter()
        .map(|g| g.beat.id)
        .collect();
    assert_eq!(ids, ["gw-new"]);
    assert_eq!(cat.forget_gateways_fenced(&new, unseen).await.unwrap(), 0);
}
