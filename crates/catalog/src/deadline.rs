//! A deadline on every call of a catalog shared over the network (PostgreSQL): a call that has
//! not answered within it fails with [`CatalogError::Unanswered`], so that a request waiting
//! for the catalog answers (503) instead of waiting with it, and background work (lease
//! renewals above all) goes on.
//!
//! What it must never do is report success for a change whose fate it does not know: a call
//! cut short by the deadline is an error, even if the change it was committing may still take
//! effect (with PostgreSQL's synchronous replication, a commit waits for the standby after the
//! primary wrote it; cut off from the standby, it takes effect when the standby is back, or
//! never). The caller treats such an error as "unknown": it never reports success, and it
//! never deletes what the change would refer to (a write's blobs stay for orphan collection,
//! which finds them named or not once the outcome is known).
//!
//! Scans whose length grows with the catalog (the references orphan collection reads, the
//! recount of a bucket's usage, compaction, quota statuses of every tenant) have no deadline:
//! they only read (nothing waits for the standby), and they run in the background.
//!
//! It sees what the catalog it wraps sees, and nothing more: no keys, no blobs.

use crate::{
    AccessKey, Bucket, BucketKey, Catalog, CatalogError, Chunk, CompletedUpload, ConsoleSession,
    GatewayBeat, GatewayList, Lease, ListFrom, ObjectRecord, ObjectVersion, Part, PutCondition,
    Quota, QuotaStatus, QuotaTarget, Reservation, ResidencyRule, Result, SeenVersion,
    SessionBounds, SessionCutoff, SiteRecord, Tenant, Upload, Usage, Versioning, VersionsFrom,
};
use async_trait::async_trait;
use obhut_core::{BlobId, PolicyScope};
use std::future::Future;
use std::time::Duration;

/// `inner` with a deadline on each call (see the module's documentation).
pub struct Deadline<C> {
    inner: C,
    limit: Duration,
}

impl<C: Catalog> Deadline<C> {
    /// `inner`, each of whose calls fails with [`CatalogError::Unanswered`] once it has taken
    /// `limit`.
    pub fn new(inner: C, limit: Duration) -> Self {
        Self { inner, limit }
    }

    /// The catalog this wraps.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// The deadline of each call.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    async fn within<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        match tokio::time::timeout(self.limit, call).await {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!(
                    limit_ms = self.limit.as_millis(),
                    "a catalog call did not answer within its deadline; what it was changing may or may not take effect"
                );
                Err(CatalogError::Unanswered {
                    after_ms: u64::try_from(self.limit.as_millis()).unwrap_or(u64::MAX),
                })
            }
        }
    }
}

#[async_trait]
impl<C: Catalog> Catalog for Deadline<C> {
    async fn create_tenant(&self, tenant: &Tenant) -> Result<()> {
        self.within(self.inner.create_tenant(tenant)).await
    }

    async fn get_tenant(&self, name: &str) -> Result<Option<Tenant>> {
        self.within(self.inner.get_tenant(name)).await
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        self.within(self.inner.list_tenants()).await
    }

    async fn legacy_access_keys(&self) -> Result<Vec<AccessKey>> {
        self.within(self.inner.legacy_access_keys()).await
    }

    async fn erase_legacy_access_keys(&self) -> Result<()> {
        self.within(self.inner.erase_legacy_access_keys()).await
    }

    async fn compact(&self) -> Result<()> {
        self.inner.compact().await
    }

    async fn put_site(&self, site: &SiteRecord) -> Result<()> {
        self.within(self.inner.put_site(site)).await
    }

    async fn delete_site(&self, id: &str) -> Result<()> {
        self.within(self.inner.delete_site(id)).await
    }

    async fn site_references(&self, site: &str) -> Result<u64> {
        self.within(self.inner.site_references(site)).await
    }

    async fn get_rule(&self, scope: &PolicyScope) -> Result<Option<ResidencyRule>> {
        self.within(self.inner.get_rule(scope)).await
    }

    async fn put_rule(&self, scope: &PolicyScope, rule: &ResidencyRule) -> Result<()> {
        self.within(self.inner.put_rule(scope, rule)).await
    }

    async fn update_tenant_residency(
        &self,
        name: &str,
        jurisdictions: &[String],
        min_sites: u32,
    ) -> Result<()> {
        self.within(
            self.inner
                .update_tenant_residency(name, jurisdictions, min_sites),
        )
        .await
    }

    async fn set_object_sites(
        &self,
        bucket: &str,
        key: &str,
        chunks: &[Chunk],
        sites: &[String],
    ) -> Result<bool> {
        self.within(self.inner.set_object_sites(bucket, key, chunks, sites))
            .await
    }

    async fn set_part_sites(
        &self,
        upload_id: &str,
        part_number: u32,
        chunk: &Chunk,
        sites: &[String],
    ) -> Result<bool> {
        self.within(
            self.inner
                .set_part_sites(upload_id, part_number, chunk, sites),
        )
        .await
    }

    async fn list_sites(&self) -> Result<Vec<SiteRecord>> {
        self.within(self.inner.list_sites()).await
    }

    async fn create_bucket(&self, bucket: &Bucket, key: &BucketKey) -> Result<()> {
        self.within(self.inner.create_bucket(bucket, key)).await
    }

    async fn get_bucket_key(&self, bucket: &str, version: u32) -> Result<Option<BucketKey>> {
        self.within(self.inner.get_bucket_key(bucket, version))
            .await
    }

    async fn current_bucket_key(&self, bucket: &str) -> Result<Option<BucketKey>> {
        self.within(self.inner.current_bucket_key(bucket)).await
    }

    async fn add_bucket_key(&self, bucket: &Bucket, key: &BucketKey) -> Result<()> {
        self.within(self.inner.add_bucket_key(bucket, key)).await
    }

    async fn get_bucket(&self, name: &str) -> Result<Option<Bucket>> {
        self.within(self.inner.get_bucket(name)).await
    }

    async fn list_buckets(&self, tenant: &str) -> Result<Vec<Bucket>> {
        self.within(self.inner.list_buckets(tenant)).await
    }

    async fn list_buckets_page(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Bucket>> {
        self.within(self.inner.list_buckets_page(tenant, after, limit))
            .await
    }

    async fn tenant_objects_by_sites(&self, tenant: &str) -> Result<Vec<(String, u64)>> {
        self.within(self.inner.tenant_objects_by_sites(tenant))
            .await
    }

    async fn delete_bucket(&self, bucket: &Bucket) -> Result<Vec<Part>> {
        self.within(self.inner.delete_bucket(bucket)).await
    }

    async fn get_quota(&self, scope: &PolicyScope) -> Result<Option<Quota>> {
        self.within(self.inner.get_quota(scope)).await
    }

    async fn set_quota(&self, target: QuotaTarget<'_>, quota: Option<&Quota>) -> Result<()> {
        self.within(self.inner.set_quota(target, quota)).await
    }

    async fn usage(&self, scope: &PolicyScope, now_ms: i64) -> Result<Usage> {
        self.within(self.inner.usage(scope, now_ms)).await
    }

    async fn quota_statuses(&self, now_ms: i64) -> Result<Vec<QuotaStatus>> {
        self.inner.quota_statuses(now_ms).await
    }

    async fn reserve(&self, reservation: &Reservation, now_ms: i64) -> Result<bool> {
        self.within(self.inner.reserve(reservation, now_ms)).await
    }

    async fn release(&self, id: &str) -> Result<()> {
        self.within(self.inner.release(id)).await
    }

    async fn recount_usage(&self, bucket: &str) -> Result<Usage> {
        self.inner.recount_usage(bucket).await
    }

    async fn reclaim_reservations(&self, now_ms: i64) -> Result<u64> {
        self.within(self.inner.reclaim_reservations(now_ms)).await
    }

    async fn put_object(
        &self,
        bucket: &Bucket,
        object: &ObjectRecord,
        condition: PutCondition,
    ) -> Result<Option<ObjectRecord>> {
        self.within(self.inner.put_object(bucket, object, condition))
            .await
    }

    async fn put_object_settling(
        &self,
        bucket: &Bucket,
        object: &ObjectRecord,
        condition: PutCondition,
        reservation: Option<&str>,
    ) -> Result<Option<ObjectRecord>> {
        self.within(
            self.inner
                .put_object_settling(bucket, object, condition, reservation),
        )
        .await
    }

    async fn get_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectRecord>> {
        self.within(self.inner.get_object(bucket, key)).await
    }

    async fn replace_object_envelope(
        &self,
        bucket: &str,
        key: &str,
        expected: &[u8],
        envelope: &[u8],
    ) -> Result<bool> {
        self.within(
            self.inner
                .replace_object_envelope(bucket, key, expected, envelope),
        )
        .await
    }

    async fn rebind_object(
        &self,
        bucket: &str,
        key: &str,
        expected: &[u8],
        envelope: &[u8],
        etag: &str,
    ) -> Result<bool> {
        self.within(
            self.inner
                .rebind_object(bucket, key, expected, envelope, etag),
        )
        .await
    }

    async fn delete_object(&self, bucket: &Bucket, key: &str) -> Result<Option<ObjectRecord>> {
        self.within(self.inner.delete_object(bucket, key)).await
    }

    async fn list_objects(
        &self,
        bucket: &Bucket,
        prefix: &str,
        from: ListFrom<'_>,
        limit: usize,
    ) -> Result<Vec<ObjectRecord>> {
        self.within(self.inner.list_objects(bucket, prefix, from, limit))
            .await
    }

    async fn set_bucket_versioning(&self, bucket: &Bucket, state: Versioning) -> Result<()> {
        self.within(self.inner.set_bucket_versioning(bucket, state))
            .await
    }

    async fn get_object_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<ObjectVersion>> {
        self.within(self.inner.get_object_version(bucket, key, version_id))
            .await
    }

    async fn latest_version(&self, bucket: &str, key: &str) -> Result<Option<ObjectVersion>> {
        self.within(self.inner.latest_version(bucket, key)).await
    }

    async fn put_delete_marker(
        &self,
        bucket: &Bucket,
        marker: &ObjectRecord,
    ) -> Result<Vec<ObjectRecord>> {
        self.within(self.inner.put_delete_marker(bucket, marker))
            .await
    }

    async fn delete_object_version(
        &self,
        bucket: &Bucket,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<ObjectVersion>> {
        self.within(self.inner.delete_object_version(bucket, key, version_id))
            .await
    }

    async fn delete_seen_version(
        &self,
        bucket: &Bucket,
        key: &str,
        seen: &SeenVersion,
    ) -> Result<Option<ObjectVersion>> {
        self.within(self.inner.delete_seen_version(bucket, key, seen))
            .await
    }

    async fn put_delete_marker_over(
        &self,
        bucket: &Bucket,
        marker: &ObjectRecord,
        seen: &SeenVersion,
    ) -> Result<Option<Vec<ObjectRecord>>> {
        self.within(self.inner.put_delete_marker_over(bucket, marker, seen))
            .await
    }

    async fn list_object_versions(
        &self,
        bucket: &Bucket,
        prefix: &str,
        from: VersionsFrom<'_>,
        limit: usize,
    ) -> Result<Vec<ObjectVersion>> {
        self.within(self.inner.list_object_versions(bucket, prefix, from, limit))
            .await
    }

    async fn create_upload(&self, bucket: &Bucket, upload: &Upload) -> Result<()> {
        self.within(self.inner.create_upload(bucket, upload)).await
    }

    async fn get_upload(&self, upload_id: &str) -> Result<Option<Upload>> {
        self.within(self.inner.get_upload(upload_id)).await
    }

    async fn replace_upload_envelope(
        &self,
        upload_id: &str,
        expected: &[u8],
        envelope: &[u8],
    ) -> Result<bool> {
        self.within(
            self.inner
                .replace_upload_envelope(upload_id, expected, envelope),
        )
        .await
    }

    async fn reseal_part(
        &self,
        upload_id: &str,
        part_number: u32,
        chunk: &Chunk,
        etag: &str,
        checksums: &[u8],
    ) -> Result<bool> {
        self.within(
            self.inner
                .reseal_part(upload_id, part_number, chunk, etag, checksums),
        )
        .await
    }

    async fn put_part(&self, bucket: &Bucket, part: &Part) -> Result<Option<Part>> {
        self.within(self.inner.put_part(bucket, part)).await
    }

    async fn put_part_settling(
        &self,
        bucket: &Bucket,
        part: &Part,
        reservation: Option<&str>,
    ) -> Result<Option<Part>> {
        self.within(self.inner.put_part_settling(bucket, part, reservation))
            .await
    }

    async fn list_parts(&self, upload_id: &str, after: u32, limit: usize) -> Result<Vec<Part>> {
        self.within(self.inner.list_parts(upload_id, after, limit))
            .await
    }

    async fn list_uploads(
        &self,
        bucket: &Bucket,
        prefix: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<Upload>> {
        self.within(self.inner.list_uploads(bucket, prefix, after, limit))
            .await
    }

    async fn complete_upload(
        &self,
        bucket: &Bucket,
        upload_id: &str,
        object: &ObjectRecord,
        condition: PutCondition,
    ) -> Result<(Option<ObjectRecord>, Vec<Part>)> {
        self.within(
            self.inner
                .complete_upload(bucket, upload_id, object, condition),
        )
        .await
    }

    async fn complete_upload_settling(
        &self,
        bucket: &Bucket,
        upload_id: &str,
        object: &ObjectRecord,
        condition: PutCondition,
        reservation: Option<&str>,
    ) -> Result<(Option<ObjectRecord>, Vec<Part>)> {
        self.within(self.inner.complete_upload_settling(
            bucket,
            upload_id,
            object,
            condition,
            reservation,
        ))
        .await
    }

    async fn abort_upload(&self, upload_id: &str) -> Result<Vec<Part>> {
        self.within(self.inner.abort_upload(upload_id)).await
    }

    async fn get_completed_upload(&self, upload_id: &str) -> Result<Option<CompletedUpload>> {
        self.within(self.inner.get_completed_upload(upload_id))
            .await
    }

    async fn replace_object_meta(
        &self,
        bucket: &Bucket,
        key: &str,
        version_id: Option<&str>,
        expected: &[u8],
        meta: &[u8],
    ) -> Result<bool> {
        self.within(
            self.inner
                .replace_object_meta(bucket, key, version_id, expected, meta),
        )
        .await
    }

    async fn get_bucket_config(&self, bucket: &Bucket, kind: &str) -> Result<Option<Vec<u8>>> {
        self.within(self.inner.get_bucket_config(bucket, kind))
            .await
    }

    async fn put_bucket_config(
        &self,
        bucket: &Bucket,
        kind: &str,
        config: Option<&[u8]>,
        now_ms: i64,
    ) -> Result<()> {
        self.within(self.inner.put_bucket_config(bucket, kind, config, now_ms))
            .await
    }

    async fn get_object_lock(
        &self,
        bucket: &Bucket,
        key: &str,
        version_id: &str,
    ) -> Result<Option<Vec<u8>>> {
        self.within(self.inner.get_object_lock(bucket, key, version_id))
            .await
    }

    async fn put_object_lock(
        &self,
        bucket: &Bucket,
        key: &str,
        version_id: &str,
        record: &[u8],
        now_ms: i64,
    ) -> Result<()> {
        self.within(
            self.inner
                .put_object_lock(bucket, key, version_id, record, now_ms),
        )
        .await
    }

    async fn console_key(&self, name: &str) -> Result<Option<String>> {
        self.within(self.inner.console_key(name)).await
    }

    async fn init_console_key(&self, name: &str, sealed: &str, now_ms: i64) -> Result<String> {
        self.within(self.inner.init_console_key(name, sealed, now_ms))
            .await
    }

    async fn start_console_session(
        &self,
        session: &ConsoleSession,
        bounds: SessionBounds,
        cutoff: SessionCutoff,
    ) -> Result<bool> {
        self.within(self.inner.start_console_session(session, bounds, cutoff))
            .await
    }

    async fn get_console_session(&self, id_hash: &str) -> Result<Option<ConsoleSession>> {
        self.within(self.inner.get_console_session(id_hash)).await
    }

    async fn touch_console_session(&self, id_hash: &str, used_ms: i64) -> Result<()> {
        self.within(self.inner.touch_console_session(id_hash, used_ms))
            .await
    }

    async fn end_console_session(&self, id_hash: &str) -> Result<()> {
        self.within(self.inner.end_console_session(id_hash)).await
    }

    async fn upgrade_done(&self, name: &str) -> Result<Option<i64>> {
        self.within(self.inner.upgrade_done(name)).await
    }

    async fn set_upgrade_done(&self, name: &str, done_ms: i64) -> Result<()> {
        self.within(self.inner.set_upgrade_done(name, done_ms))
            .await
    }

    async fn referenced_blobs(&self) -> Result<Vec<(String, BlobId)>> {
        self.inner.referenced_blobs().await
    }

    async fn note_unreferenced(
        &self,
        site: &str,
        unreferenced: &[BlobId],
    ) -> Result<(i64, Vec<(BlobId, i64)>)> {
        self.within(self.inner.note_unreferenced(site, unreferenced))
            .await
    }

    async fn claim_unreferenced(
        &self,
        lease: Option<&Lease>,
        site: &str,
        seen: &[(BlobId, i64)],
    ) -> Result<Vec<BlobId>> {
        self.within(self.inner.claim_unreferenced(lease, site, seen))
            .await
    }

    async fn forget_unreferenced(&self, site: &str, blobs: &[BlobId]) -> Result<()> {
        self.within(self.inner.forget_unreferenced(site, blobs))
            .await
    }

    async fn take_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<Option<Lease>> {
        self.within(self.inner.take_lease(name, holder, ttl_ms))
            .await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        self.within(self.inner.release_lease(lease)).await
    }

    async fn check_lease(&self, lease: &Lease) -> Result<()> {
        self.within(self.inner.check_lease(lease)).await
    }

    async fn reclaim_reservations_fenced(&self, lease: &Lease, now_ms: i64) -> Result<u64> {
        self.within(self.inner.reclaim_reservations_fenced(lease, now_ms))
            .await
    }

    async fn beat_gateway(&self, beat: &GatewayBeat) -> Result<i64> {
        self.within(self.inner.beat_gateway(beat)).await
    }

    async fn list_gateways(&self, limit: usize) -> Result<GatewayList> {
        self.within(self.inner.list_gateways(limit)).await
    }

    async fn forget_gateways_fenced(&self, lease: &Lease, unseen_ms: i64) -> Result<u64> {
        self.within(self.inner.forget_gateways_fenced(lease, unseen_ms))
            .await
    }

    async fn move_object_sites(
        &self,
        lease: Option<&Lease>,
        bucket: &str,
        key: &str,
        chunks: &[Chunk],
        from: &[String],
        to: &[String],
    ) -> Result<bool> {
        self.within(
            self.inner
                .move_object_sites(lease, bucket, key, chunks, from, to),
        )
        .await
    }

    async fn move_part_sites(
        &self,
        lease: Option<&Lease>,
        upload_id: &str,
        part_number: u32,
        chunk: &Chunk,
        from: &[String],
        to: &[String],
    ) -> Result<bool> {
        self.within(
            self.inner
                .move_part_sites(lease, upload_id, part_number, chunk, from, to),
        )
        .await
    }
}
