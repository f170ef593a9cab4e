//! The catalog: the metadata that makes blobs into tenants' buckets and objects.
//!
//! It owns tenants, access keys, the site registry, buckets, object records
//! (size, ETag, which blobs on which sites) and multipart uploads. A commit here is what makes
//! an object visible, so the gateway commits only after every replica is durable.
//!
//! It must never see object data. User metadata arrives as an opaque byte string (`meta`), sealed
//! by the gateway under the object key before it gets here.
//!
//! One trait, [`Catalog`], with an embedded SQLite implementation and one on PostgreSQL
//! ([`PgCatalog`], for gateways on several hosts); `conformance` (feature
//! `conformance`) is the one test suite every implementation must pass.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod copy;
mod deadline;
mod meta_cache;
#[cfg(test)]
mod pg_test_server;
mod postgres;
mod sqlite;
mod types;

pub use copy::{TableCopy, copy_embedded};
pub use deadline::Deadline;
pub use postgres::PgCatalog;
pub use sqlite::SqliteCatalog;
/// sqlx's connection options, for callers that build a [`PgCatalog`].
pub use sqlx::postgres::{PgConnectOptions, PgSslMode};
pub use types::*;

/// `unreferenced_blobs.first_seen_ms` of a blob that orphan collection is removing from its
/// site ([`Catalog::claim_unreferenced`]): no time the catalog's clock gives.
pub(crate) const UNREFERENCED_BEING_REMOVED: i64 = -1;

/// The sites of `to` that are not in `from`: where a move places new replicas.
pub(crate) fn sites_added(from: &[String], to: &[String]) -> Vec<String> {
    to.iter().filter(|s| !from.contains(s)).cloned().collect()
}

use async_trait::async_trait;
use obhut_core::PolicyScope;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum CatalogError {
    #[error("{kind} {name:?} already exists")]
    AlreadyExists { kind: &'static str, name: String },
    #[error("bucket {bucket:?} already exists and belongs to tenant {owner:?}")]
    BucketExists { bucket: String, owner: String },
    #[error("bucket {0:?} is not empty")]
    BucketNotEmpty(String),
    #[error("{kind} {name:?} not found")]
    NotFound { kind: &'static str, name: String },
    #[error("precondition failed: {0}")]
    PreconditionFailed(&'static str),
    /// The state the caller acted on changed meanwhile (e.g. a part was re-uploaded).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// What the caller read is being changed by maintenance (e.g. a part moved to other sites
    /// during a drain); the same request made again succeeds.
    #[error("busy: {0}")]
    Busy(&'static str),
    /// Something still refers to what was to be removed.
    #[error("{0}")]
    InUse(String),
    /// A write would take a tenant or bucket beyond its quota (`what`: bytes or objects).
    #[error("the {kind} quota of {limit} {what} would be exceeded")]
    QuotaExceeded {
        kind: &'static str,
        name: String,
        what: &'static str,
        limit: u64,
    },
    /// A fenced batch was refused: the lease it was made under has passed to another holder
    /// (a higher epoch), or lapsed.
    #[error("the lease {0:?} is no longer held")]
    LeaseLost(String),
    /// The catalog did not answer within its deadline ([`Deadline`]): what the call was
    /// changing may or may not take effect (a commit waiting for a standby it cannot reach
    /// takes effect once it is reached). Never a success; never a sign that nothing happened.
    #[error(
        "the catalog did not answer within {after_ms} ms; a change it was committing may or may not take effect"
    )]
    Unanswered { after_ms: u64 },
    #[error("catalog storage error: {0}")]
    Storage(String),
    #[error("corrupt catalog record: {0}")]
    Corrupt(String),
}

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

impl CatalogError {
    /// Whether this says the bucket acted on is gone: deleted, or deleted and created again,
    /// since its record was read.
    #[must_use]
    pub fn is_bucket_gone(&self) -> bool {
        matches!(self, Self::NotFound { kind: "bucket", .. })
    }

    /// Whether a change that failed so may still have taken effect: the catalog did not
    /// answer in time, or the connection failed (perhaps while committing). What such a
    /// change would refer to (a write's blobs) must not be deleted on the spot; the other
    /// errors are refusals, and nothing of the change happened.
    #[must_use]
    pub fn may_have_taken_effect(&self) -> bool {
        matches!(self, Self::Unanswered { .. } | Self::Storage(_))
    }
}

/// `NotFound` unless a record filed under the bucket `name` is written through `bucket`, the
/// bucket the caller was authorised against.
pub(crate) fn same_bucket(bucket: &Bucket, name: &str) -> Result<()> {
    if bucket.name == name {
        Ok(())
    } else {
        Err(CatalogError::NotFound {
            kind: "bucket",
            name: name.to_owned(),
        })
    }
}

/// Everything obhut keeps as metadata. Implementations are transactional per call.
#[async_trait]
pub trait Catalog: Send + Sync {
    // tenants and credentials
    async fn create_tenant(&self, tenant: &Tenant) -> Result<()>;
    async fn get_tenant(&self, name: &str) -> Result<Option<Tenant>>;
    async fn list_tenants(&self) -> Result<Vec<Tenant>>;
    /// S3 access keys that an earlier release kept here in clear (the trustee keeps them
    /// now); empty once [`Catalog::erase_legacy_access_keys`] ran.
    async fn legacy_access_keys(&self) -> Result<Vec<AccessKey>>;
    /// Erases those keys so that no copy of their secrets is left in the catalog's files.
    async fn erase_legacy_access_keys(&self) -> Result<()>;
    /// Leaves no copy of deleted or overwritten records in the catalog's files (free pages,
    /// the write-ahead log): after a one-time rewrite of records that held something in clear.
    async fn compact(&self) -> Result<()>;

    // sites
    async fn put_site(&self, site: &SiteRecord) -> Result<()>;
    /// Removes a site from the registry; fails with `InUse` while any object or part still
    /// names it.
    async fn delete_site(&self, id: &str) -> Result<()>;
    /// How many objects and parts name `site` as holding a replica.
    async fn site_references(&self, site: &str) -> Result<u64>;
    /// The copy of a residency rule kept here, if one is set. The trustee owns residency
    /// policies: this copy is a projection of its records, rebuilt from them and checked
    /// against them where it is used (docs/residency.md, "Who owns the policy").
    async fn get_rule(&self, scope: &PolicyScope) -> Result<Option<ResidencyRule>>;
    async fn put_rule(&self, scope: &PolicyScope, rule: &ResidencyRule) -> Result<()>;
    /// Changes a tenant's allowed jurisdictions and `min_sites`.
    async fn update_tenant_residency(
        &self,
        name: &str,
        jurisdictions: &[String],
        min_sites: u32,
    ) -> Result<()>;
    /// Replaces the site list of the version under `bucket`/`key` that has `chunks` (current
    /// or not), if it is still there; returns whether it did.
    async fn set_object_sites(
        &self,
        bucket: &str,
        key: &str,
        chunks: &[Chunk],
        sites: &[String],
    ) -> Result<bool>;
    /// Replaces the site list of part `part_number` of upload `upload_id` if it still has
    /// `chunk` (the part was not re-uploaded, the upload not completed or aborted meanwhile);
    /// returns whether it did.
    async fn set_part_sites(
        &self,
        upload_id: &str,
        part_number: u32,
        chunk: &Chunk,
        sites: &[String],
    ) -> Result<bool>;
    async fn list_sites(&self) -> Result<Vec<SiteRecord>>;

    // buckets
    //
    // Every method that writes, deletes or lists under a bucket takes the bucket record the
    // caller was authorised against (`&Bucket`: name, owning tenant and `created_ms`, which
    // tells one incarnation of a name from the next) and checks in its own transaction that
    // this is still the bucket of that name; if the bucket was deleted, or deleted and
    // created again (by anyone), the answer is `NotFound` and nothing is written. An access
    // check made earlier, or against a cached record, can then never act on another tenant's
    // bucket of the same name.
    /// Creates a bucket with its first key. Fails with [`CatalogError::BucketExists`] naming
    /// the owner if the name is taken.
    async fn create_bucket(&self, bucket: &Bucket, key: &BucketKey) -> Result<()>;
    async fn get_bucket_key(&self, bucket: &str, version: u32) -> Result<Option<BucketKey>>;
    /// The newest key version of a bucket, used for new writes.
    async fn current_bucket_key(&self, bucket: &str) -> Result<Option<BucketKey>>;
    /// Adds a newer key version (rotation) to `bucket`; a version that exists is
    /// [`CatalogError::AlreadyExists`].
    async fn add_bucket_key(&self, bucket: &Bucket, key: &BucketKey) -> Result<()>;
    async fn get_bucket(&self, name: &str) -> Result<Option<Bucket>>;
    async fn list_buckets(&self, tenant: &str) -> Result<Vec<Bucket>>;
    /// At most `limit` buckets of `tenant` in name order, after `after` if given: for walks
    /// over a tenant's buckets that must not hold its whole list.
    async fn list_buckets_page(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Bucket>>;
    /// How many object versions (delete markers left out) of `tenant`'s buckets are on each
    /// set of sites, as the records hold the set (a JSON array of site ids, in placement
    /// order): counted by the database in one aggregate query, no record loaded.
    async fn tenant_objects_by_sites(&self, tenant: &str) -> Result<Vec<(String, u64)>>;
    /// Deletes an empty bucket; its unfinished multipart uploads go with it and their parts are
    /// returned so their blobs can be removed.
    async fn delete_bucket(&self, bucket: &Bucket) -> Result<Vec<Part>>;

    // quotas and usage (docs/quotas.md)
    /// The quota of a tenant or bucket, if one is set.
    async fn get_quota(&self, scope: &PolicyScope) -> Result<Option<Quota>>;
    /// Sets (or with `None` or an unlimited quota, removes) the quota of a tenant or bucket.
    /// Limits below what is held already are accepted: they refuse growth from then on.
    async fn set_quota(&self, target: QuotaTarget<'_>, quota: Option<&Quota>) -> Result<()>;
    /// What a tenant or bucket holds, and what writes in flight reserved (reservations that
    /// expired before `now_ms` are not counted).
    async fn usage(&self, scope: &PolicyScope, now_ms: i64) -> Result<Usage>;
    /// Every scope with a quota, with its usage.
    async fn quota_statuses(&self, now_ms: i64) -> Result<Vec<QuotaStatus>>;
    /// Takes a hold on the quotas of the reservation's tenant and bucket for a write about to
    /// start, if it fits; `QuotaExceeded` if it does not. Returns `false` (and records nothing)
    /// when neither the tenant nor the bucket has a quota. Checks of one tenant are decided
    /// one at a time, so concurrent writes never together pass a limit.
    async fn reserve(&self, reservation: &Reservation, now_ms: i64) -> Result<bool>;
    /// Drops a reservation (its write failed); an unknown id is not an error.
    async fn release(&self, id: &str) -> Result<()>;
    /// Counts again what `bucket` holds from its records (objects, and the parts of its
    /// unfinished uploads) and replaces its usage with that; returns it (reservations not
    /// included). For usage that fell behind: writes of gateways of a release before usage
    /// was counted, during a rolling upgrade. Concurrent writes need not stop: the count and
    /// the usage it corrects are read together, and writes change both alike.
    async fn recount_usage(&self, bucket: &str) -> Result<Usage>;
    /// Drops the reservations that expired before `now_ms` (their gateways died); returns how
    /// many.
    async fn reclaim_reservations(&self, now_ms: i64) -> Result<u64>;

    // objects
    /// Makes `object` the current version of its key if `condition` holds (checked against the
    /// current object); returns the record it replaced, whose blobs are then garbage. With
    /// `version_id` set (a versioned bucket) nothing is replaced: the current object becomes
    /// noncurrent. A `null` version replaces the key's `null` version, current or not, and
    /// keeps any other current version as noncurrent. A bucket that was never versioned takes
    /// only `null` versions (`Conflict` otherwise).
    async fn put_object(
        &self,
        bucket: &Bucket,
        object: &ObjectRecord,
        condition: PutCondition,
    ) -> Result<Option<ObjectRecord>> {
        self.put_object_settling(bucket, object, condition, None)
            .await
    }
    /// [`Catalog::put_object`], settling `reservation` in the same transaction: the hold is
    /// dropped as the object's real size is counted.
    async fn put_object_settling(
        &self,
        bucket: &Bucket,
        object: &ObjectRecord,
        condition: PutCondition,
        reservation: Option<&str>,
    ) -> Result<Option<ObjectRecord>>;
    async fn get_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectRecord>>;
    /// Replaces the envelope of the version under `bucket`/`key` whose envelope is `expected`
    /// (current or not), if it is still there; returns whether it was replaced.
    async fn replace_object_envelope(
        &self,
        bucket: &str,
        key: &str,
        expected: &[u8],
        envelope: &[u8],
    ) -> Result<bool>;
    /// Replaces a version's envelope and ETag if its envelope is still `expected` (current or
    /// not); returns whether it did (the format upgrade, which binds keys and seals ETags).
    async fn rebind_object(
        &self,
        bucket: &str,
        key: &str,
        expected: &[u8],
        envelope: &[u8],
        etag: &str,
    ) -> Result<bool>;
    async fn delete_object(&self, bucket: &Bucket, key: &str) -> Result<Option<ObjectRecord>>;
    /// Up to `limit` objects whose keys start with `prefix` and come after `from`, in byte order.
    async fn list_objects(
        &self,
        bucket: &Bucket,
        prefix: &str,
        from: ListFrom<'_>,
        limit: usize,
    ) -> Result<Vec<ObjectRecord>>;

    // versions (a bucket's versioning, docs/catalog.md "Versions")
    /// Sets a bucket's versioning state; a bucket once versioned cannot be made
    /// [`Versioning::Unversioned`] again (`Conflict`).
    async fn set_bucket_versioning(&self, bucket: &Bucket, state: Versioning) -> Result<()>;
    /// One version of a key (`None`: the `null` version), current or not, or a delete marker.
    async fn get_object_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<ObjectVersion>>;
    /// The newest entry of a key: its current object, or the delete marker that hides it.
    async fn latest_version(&self, bucket: &str, key: &str) -> Result<Option<ObjectVersion>>;
    /// Makes `marker` (a record without data: its `version_id`, time and key) the newest entry
    /// of its key: the current object, if any, becomes noncurrent. A `null` marker replaces
    /// the key's `null` version. Returns the records no longer held, whose blobs are garbage.
    async fn put_delete_marker(
        &self,
        bucket: &Bucket,
        marker: &ObjectRecord,
    ) -> Result<Vec<ObjectRecord>>;
    /// Removes one version (or delete marker) for good; if it was the newest, the next one
    /// becomes current. Returns what was removed.
    async fn delete_object_version(
        &self,
        bucket: &Bucket,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<ObjectVersion>>;
    /// [`Catalog::delete_object_version`] of the entry `seen` names, only if it is still as
    /// seen (same ETag, kind and newest-or-not; its key's only entry if `seen` says so) in the
    /// transaction of the removal. `Ok(None)` if not: nothing changed.
    async fn delete_seen_version(
        &self,
        bucket: &Bucket,
        key: &str,
        seen: &SeenVersion,
    ) -> Result<Option<ObjectVersion>>;
    /// [`Catalog::put_delete_marker`], only if the key's current object is still the version
    /// `seen` names, in the transaction of the change. `Ok(None)` if not: nothing changed.
    async fn put_delete_marker_over(
        &self,
        bucket: &Bucket,
        marker: &ObjectRecord,
        seen: &SeenVersion,
    ) -> Result<Option<Vec<ObjectRecord>>>;
    /// Up to `limit` entries (versions and delete markers) whose keys start with `prefix`,
    /// ordered by key in byte order and, within a key, newest first, after `from`. One range
    /// scan of an index: nothing but the page is read.
    async fn list_object_versions(
        &self,
        bucket: &Bucket,
        prefix: &str,
        from: VersionsFrom<'_>,
        limit: usize,
    ) -> Result<Vec<ObjectVersion>>;

    // multipart uploads
    async fn create_upload(&self, bucket: &Bucket, upload: &Upload) -> Result<()>;
    async fn get_upload(&self, upload_id: &str) -> Result<Option<Upload>>;
    /// Replaces an upload's envelope if it is still `expected`; returns whether it was replaced.
    async fn replace_upload_envelope(
        &self,
        upload_id: &str,
        expected: &[u8],
        envelope: &[u8],
    ) -> Result<bool>;
    /// Replaces the ETag and checksums of part `part_number` of `upload_id` if it still has
    /// `chunk`; returns whether it did (the format upgrade, which seals them).
    async fn reseal_part(
        &self,
        upload_id: &str,
        part_number: u32,
        chunk: &Chunk,
        etag: &str,
        checksums: &[u8],
    ) -> Result<bool>;
    /// Records a part, returning the part with the same number it replaced.
    async fn put_part(&self, bucket: &Bucket, part: &Part) -> Result<Option<Part>> {
        self.put_part_settling(bucket, part, None).await
    }
    /// [`Catalog::put_part`], settling `reservation` in the same transaction.
    async fn put_part_settling(
        &self,
        bucket: &Bucket,
        part: &Part,
        reservation: Option<&str>,
    ) -> Result<Option<Part>>;
    /// Parts with numbers above `after`, ascending, at most `limit`.
    async fn list_parts(&self, upload_id: &str, after: u32, limit: usize) -> Result<Vec<Part>>;
    /// Uploads in `bucket` whose keys start with `prefix`, ordered by (key, upload id), after the
    /// given markers.
    async fn list_uploads(
        &self,
        bucket: &Bucket,
        prefix: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<Upload>>;
    /// Atomically makes `object` visible and removes the upload. Returns the replaced object and
    /// the upload's parts that `object` does not use. The completion is remembered
    /// ([`Catalog::get_completed_upload`]) for [`COMPLETED_UPLOAD_RETENTION_MS`]; older
    /// completions are forgotten in the same transaction.
    async fn complete_upload(
        &self,
        bucket: &Bucket,
        upload_id: &str,
        object: &ObjectRecord,
        condition: PutCondition,
    ) -> Result<(Option<ObjectRecord>, Vec<Part>)> {
        self.complete_upload_settling(bucket, upload_id, object, condition, None)
            .await
    }
    /// [`Catalog::complete_upload`], settling `reservation` in the same transaction.
    async fn complete_upload_settling(
        &self,
        bucket: &Bucket,
        upload_id: &str,
        object: &ObjectRecord,
        condition: PutCondition,
        reservation: Option<&str>,
    ) -> Result<(Option<ObjectRecord>, Vec<Part>)>;
    /// Removes the upload; returns its parts.
    async fn abort_upload(&self, upload_id: &str) -> Result<Vec<Part>>;

    /// What is remembered of upload `upload_id` after it completed, if it completed within
    /// [`COMPLETED_UPLOAD_RETENTION_MS`] (schema 7; completions by an earlier release are not
    /// remembered).
    async fn get_completed_upload(&self, upload_id: &str) -> Result<Option<CompletedUpload>>;

    // object metadata (tags live in it, sealed by the gateway)
    /// Replaces the sealed metadata of one version of `key` (`None`: the `null` version),
    /// current or not, if it is still `expected`; returns whether it did. A version that is
    /// gone or whose metadata changed meanwhile is `false`; a bucket that is no longer
    /// `bucket` is `NotFound`.
    async fn replace_object_meta(
        &self,
        bucket: &Bucket,
        key: &str,
        version_id: Option<&str>,
        expected: &[u8],
        meta: &[u8],
    ) -> Result<bool>;

    // per-bucket configuration (CORS now; one table for every kind, see [`config_kind`])
    /// The configuration of `kind` of `bucket` (this incarnation of it), if one is set.
    async fn get_bucket_config(&self, bucket: &Bucket, kind: &str) -> Result<Option<Vec<u8>>>;
    /// Sets (`Some`) or removes (`None`) the configuration of `kind` of `bucket`, checked in
    /// the same transaction to still be the bucket of its name.
    async fn put_bucket_config(
        &self,
        bucket: &Bucket,
        kind: &str,
        config: Option<&[u8]>,
        now_ms: i64,
    ) -> Result<()>;

    // object lock (docs/s3-compatibility.md, "Object lock")
    /// The object lock record of version `version_id` of `key` in `bucket` (this incarnation),
    /// as stored: sealed by the trustee, opaque here.
    async fn get_object_lock(
        &self,
        bucket: &Bucket,
        key: &str,
        version_id: &str,
    ) -> Result<Option<Vec<u8>>>;
    /// Sets the object lock record of a version, checked in the same transaction to still be
    /// the bucket of its name. The record may precede its version (it is written first, so
    /// that no version of a bucket with object lock is ever visible without one).
    async fn put_object_lock(
        &self,
        bucket: &Bucket,
        key: &str,
        version_id: &str,
        record: &[u8],
        now_ms: i64,
    ) -> Result<()>;

    // web console sessions (docs/console.md, "Sessions")
    /// The console's session key `name`, as the trustee sealed it, if one was made.
    async fn console_key(&self, name: &str) -> Result<Option<String>>;
    /// Stores `sealed` as the console's session key `name` unless one is stored already;
    /// answers the one stored afterwards (this one, or the one another gateway stored first).
    async fn init_console_key(&self, name: &str, sealed: &str, now_ms: i64) -> Result<String>;
    /// Adds a console session, in one transaction with removing the expired ones (`cutoff`)
    /// and then, while its owner has `bounds.max_per_owner` or more, that owner's least
    /// recently used. If `bounds.max_sessions` or more would be left, adds nothing and ends
    /// no other session (the expired ones still go): answers false then.
    async fn start_console_session(
        &self,
        session: &ConsoleSession,
        bounds: SessionBounds,
        cutoff: SessionCutoff,
    ) -> Result<bool>;
    /// The console session named by `id_hash`, expired or not.
    async fn get_console_session(&self, id_hash: &str) -> Result<Option<ConsoleSession>>;
    /// Marks a console session used at `used_ms` (never moving it back); nothing if it ended.
    async fn touch_console_session(&self, id_hash: &str, used_ms: i64) -> Result<()>;
    /// Ends a console session; nothing if it had ended.
    async fn end_console_session(&self, id_hash: &str) -> Result<()>;

    // one-time upgrades of records
    /// When the upgrade `name` finished, if it did.
    async fn upgrade_done(&self, name: &str) -> Result<Option<i64>>;
    async fn set_upgrade_done(&self, name: &str, done_ms: i64) -> Result<()>;

    // maintenance
    /// Every replica the catalog names: (site, blob) for each object version and part, read in
    /// one snapshot (a part that becomes an object's chunk meanwhile is seen once, not never).
    async fn referenced_blobs(&self) -> Result<Vec<(String, obhut_core::BlobId)>>;
    /// Orphan bookkeeping (schema 8): `unreferenced` are the blobs that orphan collection
    /// found on `site` and that no record names. Each that was not on the list before is
    /// recorded as found now (the catalog's clock); every other blob of `site` on the list is
    /// forgotten (named again, or gone). Returns the catalog's time now (milliseconds since
    /// the epoch) and, for each blob of `unreferenced`, since when it has been found so: a
    /// blob is removed only once that is longer ago than the retention of removed blobs, so
    /// that a catalog restored to an earlier point still finds the blobs it names.
    async fn note_unreferenced(
        &self,
        site: &str,
        unreferenced: &[obhut_core::BlobId],
    ) -> Result<(i64, Vec<(obhut_core::BlobId, i64)>)>;
    /// Orphan collection's check at removal time: in one transaction (with `lease`, if any,
    /// checked as by [`Catalog::check_lease`]), each of `seen` (a blob of `site` and since when
    /// it has been found so, as [`Catalog::note_unreferenced`] answered) whose record is still
    /// there, unchanged, is marked as being removed; returns those, the only ones that may be
    /// removed. A record that is gone was named again meanwhile (a move forgets the records
    /// of the replicas it names). While a blob is marked, a move that would name it on `site`
    /// is refused ([`Catalog::move_object_sites`] answers `false`), until
    /// [`Catalog::forget_unreferenced`] after the removal, or the next collection.
    async fn claim_unreferenced(
        &self,
        lease: Option<&Lease>,
        site: &str,
        seen: &[(obhut_core::BlobId, i64)],
    ) -> Result<Vec<obhut_core::BlobId>>;
    /// Forgets the records of `blobs`, removed from `site`.
    async fn forget_unreferenced(&self, site: &str, blobs: &[obhut_core::BlobId]) -> Result<()>;

    // leases of background work
    //
    // A lease's expiry is judged by the catalog's own clock (PostgreSQL's `clock_timestamp()`;
    // the embedded catalog's host, which is the one process using it), never by the clocks of
    // the gateways that share it.
    /// Takes the lease `name` for `holder` for `ttl_ms` from now (the catalog's clock), or
    /// renews it if `holder` holds it and it has not lapsed (same epoch). A lease that another
    /// holder holds and that has not lapsed is refused (`None`). Taking a lease that was free,
    /// lapsed or held by another gives it the next epoch, so a holder whose lease lapsed, even
    /// if nobody took it meanwhile, gets a new epoch and its batches under the old one are
    /// refused.
    async fn take_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<Option<Lease>>;
    /// Gives a lease up (at shutdown), so that another holder need not wait for it to lapse.
    /// A lease that has passed to another epoch is left alone.
    async fn release_lease(&self, lease: &Lease) -> Result<()>;
    /// Whether `lease` (its holder and epoch) is still held now (the catalog's clock); else
    /// [`CatalogError::LeaseLost`]. A check on its own fences nothing that follows it: work
    /// that changes the catalog under a lease uses the fenced methods below, which check the
    /// lease in the transaction of the change.
    async fn check_lease(&self, lease: &Lease) -> Result<()>;
    async fn reclaim_reservations_fenced(&self, lease: &Lease, now_ms: i64) -> Result<u64>;

    // the registry of gateways sharing the catalog
    //
    /// Records `beat` as its process's latest (one row per id), seen now by the catalog's
    /// clock; returns that time. An id, release or status longer than [`MAX_GATEWAY_ID`],
    /// [`MAX_GATEWAY_VERSION`] or [`MAX_GATEWAY_STATUS`] is refused
    /// (`PreconditionFailed`), and nothing is written.
    async fn beat_gateway(&self, beat: &GatewayBeat) -> Result<i64>;
    /// The registry, most recently seen first, at most `limit` rows (and never more than
    /// [`MAX_GATEWAY_ROWS`]), with the catalog's clock.
    async fn list_gateways(&self, limit: usize) -> Result<GatewayList>;
    /// Removes the rows not seen for `unseen_ms` (the catalog's clock), as a fenced batch
    /// under `lease` (see [`Catalog::check_lease`]); returns how many.
    async fn forget_gateways_fenced(&self, lease: &Lease, unseen_ms: i64) -> Result<u64>;
    /// A move of replicas (repair, drain) as a fenced batch: in one transaction, `lease` (if
    /// any) is checked as by [`Catalog::check_lease`], and the site list of the version under
    /// `bucket`/`key` that has `chunks` (current or not) is replaced by `to` only if it is
    /// still `from`, the list the mover read. Returns whether it was replaced; a lost lease is
    /// [`CatalogError::LeaseLost`] and changes nothing. Two movers that read the same list
    /// cannot both record their move. A move onto a site whose copy of a chunk orphan
    /// collection is removing ([`Catalog::claim_unreferenced`]) is refused (`false`); one that
    /// is recorded forgets orphan collection's records of the chunks on the sites it adds.
    async fn move_object_sites(
        &self,
        lease: Option<&Lease>,
        bucket: &str,
        key: &str,
        chunks: &[Chunk],
        from: &[String],
        to: &[String],
    ) -> Result<bool>;
    /// [`Catalog::move_object_sites`] for part `part_number` of upload `upload_id` that still
    /// has `chunk`.
    async fn move_part_sites(
        &self,
        lease: Option<&Lease>,
        upload_id: &str,
        part_number: u32,
        chunk: &Chunk,
        from: &[String],
        to: &[String],
    ) -> Result<bool>;
}

/// Every object of a bucket, a page at a time in key order: for walks over a whole bucket that
/// must not hold its listing in memory. Objects written behind the cursor meanwhile are not
/// seen; objects ahead of it are.
pub struct ObjectPages<'a> {
    catalog: &'a dyn Catalog,
    bucket: Bucket,
    page_size: usize,
    after: Option<String>,
    done: bool,
}

impl<'a> ObjectPages<'a> {
    pub fn new(catalog: &'a dyn Catalog, bucket: &Bucket, page_size: usize) -> Self {
        Self {
            catalog,
            bucket: bucket.clone(),
            page_size: page_size.max(1),
            after: None,
            done: false,
        }
    }

    /// The next page; `None` after the last.
    pub async fn next_page(&mut self) -> Result<Option<Vec<ObjectRecord>>> {
        if self.done {
            return Ok(None);
        }
        let from = self
            .after
            .as_deref()
            .map_or(ListFrom::Start, ListFrom::After);
        let page = match self
            .catalog
            .list_objects(&self.bucket, "", from, self.page_size)
            .await
        {
            // Deleted meanwhile (or made again, by anyone): nothing more of it to walk.
            Err(e) if e.is_bucket_gone() => Vec::new(),
            other => other?,
        };
        self.done = page.len() < self.page_size;
        match page.last() {
            Some(last) => {
                self.after = Some(last.key.clone());
                Ok(Some(page))
            }
            None => Ok(None),
        }
    }
}

/// Every version and delete marker of a bucket, a page at a time in listing order (key, then
/// newest first): for walks that must cover noncurrent versions too (residency, repair,
/// scrubbing) without holding a listing in memory.
pub struct VersionPages<'a> {
    catalog: &'a dyn Catalog,
    bucket: Bucket,
    page_size: usize,
    after: Option<(String, Option<String>)>,
    done: bool,
}

impl<'a> VersionPages<'a> {
    pub fn new(catalog: &'a dyn Catalog, bucket: &Bucket, page_size: usize) -> Self {
        Self {
            catalog,
            bucket: bucket.clone(),
            page_size: page_size.max(1),
            after: None,
            done: false,
        }
    }

    /// The next page of object versions, delete markers left out (they hold no data); `None`
    /// after the last. A page may be empty when it held only delete markers.
    pub async fn next_objects(&mut self) -> Result<Option<Vec<ObjectRecord>>> {
        Ok(self.next_page().await?.map(|page| {
            page.into_iter()
                .filter(|v| !v.delete_marker)
                .map(|v| v.object)
                .collect()
        }))
    }

    /// The next page; `None` after the last. A version removed behind the cursor ends the walk
    /// of its key, not the walk.
    pub async fn next_page(&mut self) -> Result<Option<Vec<ObjectVersion>>> {
        if self.done {
            return Ok(None);
        }
        let from = match &self.after {
            None => VersionsFrom::Start,
            Some((key, version)) => VersionsFrom::AfterVersion(key, version.as_deref()),
        };
        let page = match self
            .catalog
            .list_object_versions(&self.bucket, "", from, self.page_size)
            .await
        {
            Err(CatalogError::NotFound {
                kind: "version", ..
            }) => {
                let key = self
                    .after
                    .as_ref()
                    .map(|(k, _)| k.clone())
                    .unwrap_or_default();
                self.catalog
                    .list_object_versions(
                        &self.bucket,
                        "",
                        VersionsFrom::AfterKey(&key),
                        self.page_size,
                    )
                    .await?
            }
            // Deleted meanwhile (or made again, by anyone): nothing more of it to walk.
            Err(e) if e.is_bucket_gone() => Vec::new(),
            other => other?,
        };
        self.done = page.len() < self.page_size;
        match page.last() {
            Some(last) => {
                self.after = Some((last.object.key.clone(), last.object.version_id.clone()));
                Ok(Some(page))
            }
            None => Ok(None),
        }
    }
}
