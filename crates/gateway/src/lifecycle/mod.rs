//! Bucket lifecycle: the worker `lifecycle` applies each bucket's rules ([`rules`]) on one
//! gateway at a time (the holder of the lease on background work), every
//! [`LifecycleTiming::every`], in bounded runs.
//!
//! A run walks the versions of every bucket with enabled rules, a page at a time in listing
//! order (key, then newest first), and the bucket's incomplete multipart uploads; it checks the
//! lease before each page and stops after [`MAX_ACTIONS_PER_RUN`] changes (the next run goes
//! on). Every change goes through the catalog conditioned on the entry as the walk saw it
//! ([`obhut_catalog::SeenVersion`]): a version written, overwritten or made current again
//! after the walk looked is left alone. Removed records' blobs become garbage through the same
//! path as an S3 DELETE's ([`Gateway::discard_object`]); expiring a current version of a
//! versioned bucket adds a delete marker as an S3 DELETE does.
//!
//! It sees object names and sizes (as the catalog holds them) and, only for rules that filter
//! by tag, an object version's sealed metadata, opened with a key the trustee releases for
//! [`LIFECYCLE_TAGS_REASON`] (logged by the trustee as every release is). It logs counts only,
//! never a bucket or object name.

pub mod rules;

use crate::Gateway;
use crate::s3::KeyMemo;
use obhut_catalog::{
    Bucket, CatalogError, Lease, ObjectRecord, ObjectVersion, SeenVersion, VersionPages,
    Versioning, config_kind,
};
use obhut_maintenance::{Duty, worker::Worker};
use obhut_metrics::{LifecycleAction, TrusteeState};
use obhut_trustee_client::{Justification, LIFECYCLE_TAGS_REASON};
use rules::{Expiration, Rule, Rules, older_than};
use std::time::Duration;

/// Entries read from the catalog per page.
const PAGE: usize = 500;
/// Changes (removals, delete markers, aborts) per run at most; the next run goes on.
pub const MAX_ACTIONS_PER_RUN: u64 = 1000;

/// How long a lifecycle day lasts and how often the worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifecycleTiming {
    /// S3's day is 24 hours; tests shorten it (config `lifecycle_day_secs`).
    pub day: Duration,
    /// The pause between two runs.
    pub every: Duration,
}

impl Default for LifecycleTiming {
    /// A day of 24 hours, applied every hour.
    fn default() -> Self {
        Self {
            day: Duration::from_secs(24 * 3600),
            every: Duration::from_secs(3600),
        }
    }
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    pub expired: u64,
    pub noncurrent_expired: u64,
    pub delete_markers_removed: u64,
    pub uploads_aborted: u64,
    /// Versions a tag-filtered rule could not be decided for (tags unreadable).
    pub skipped: u64,
    /// Versions a rule applied to but object lock keeps.
    pub locked: u64,
}

impl Applied {
    fn actions(&self) -> u64 {
        self.expired + self.noncurrent_expired + self.delete_markers_removed + self.uploads_aborted
    }

    fn is_empty(&self) -> bool {
        self.actions() == 0 && self.skipped == 0 && self.locked == 0
    }
}

/// Why a run ended early.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The lease on background work passed to another gateway, or the worker was stopped.
    #[error("the lease on background work is no longer held here")]
    Standby,
    /// The trustee is sealed, unreachable, or its officers disconnected the provider.
    #[error("the trustee does not serve (sealed, unreachable or disconnected): rules wait")]
    TrusteeNotServing,
}

impl Gateway {
    /// Whether object lock (a retention in force or a legal hold, on the trustee's clock)
    /// keeps version `v` of `bucket` from being removed or hidden. A lock record that does not
    /// open, or that is missing where it must exist, or a trustee that does not answer, keeps
    /// it too: lifecycle never removes what it cannot tell is free.
    pub async fn held_by_object_lock(&self, bucket: &Bucket, v: &ObjectRecord) -> bool {
        match &v.version_id {
            Some(id) => self.lock_holds(bucket, &v.key, id).await,
            None => false,
        }
    }
}

/// The lease and stop signal a run goes by.
struct Fence<'a> {
    worker: &'a Worker,
    lease: Option<Lease>,
}

impl Fence<'_> {
    async fn check(&self, gw: &Gateway) -> Result<(), LifecycleError> {
        if self.worker.is_stopped() || self.worker.duty() == Duty::Standby {
            return Err(LifecycleError::Standby);
        }
        if let Some(lease) = &self.lease {
            gw.catalog.check_lease(lease).await?;
        }
        Ok(())
    }
}

/// One key's entries as the walk goes through them, newest first.
#[derive(Default)]
struct KeyWalk {
    key: String,
    /// When the entry just newer than the next one was written: when the next one became
    /// noncurrent.
    newer_written_ms: Option<i64>,
    /// Noncurrent versions newer than the next one.
    newer_noncurrent: u32,
    /// The key's newest entry, if it is a delete marker (decided once the key is walked).
    latest_marker: Option<ObjectVersion>,
    /// Entries behind it that remain.
    remaining: u64,
}

/// A version as the rules see it: its name, size and (read only if a rule needs them) tags.
struct Candidate<'a> {
    object: &'a ObjectRecord,
    delete_marker: bool,
    tags: Option<Option<Vec<(String, String)>>>,
}

impl Gateway {
    /// Starts the worker `lifecycle` (see the module doc).
    pub(crate) fn spawn_lifecycle(&self, workers: &obhut_maintenance::Workers) {
        let gw = self.clone();
        let timing = self.config.lifecycle;
        workers.spawn("lifecycle", move |worker| async move {
            while worker.sleep(timing.every).await {
                let lease = match worker.duty() {
                    Duty::Standby => continue,
                    Duty::Alone => None,
                    Duty::Leader(lease) => Some(lease),
                };
                let _run = worker.run();
                let fence = Fence {
                    worker: &worker,
                    lease,
                };
                let mut applied = Applied::default();
                let outcome = gw.apply_lifecycle(&fence, timing, &mut applied).await;
                report(&applied);
                match outcome {
                    Ok(()) | Err(LifecycleError::Standby) => {}
                    Err(LifecycleError::TrusteeNotServing) => {
                        tracing::info!("lifecycle run skipped: the trustee does not serve")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "lifecycle run ended early; the next run goes on")
                    }
                }
            }
        });
    }

    /// One run over every bucket that has rules.
    async fn apply_lifecycle(
        &self,
        fence: &Fence<'_>,
        timing: LifecycleTiming,
        applied: &mut Applied,
    ) -> Result<(), LifecycleError> {
        let day_ms = i64::try_from(timing.day.as_millis()).unwrap_or(i64::MAX);
        for tenant in self.catalog.list_tenants().await? {
            for bucket in self.catalog.list_buckets(&tenant.name).await? {
                let Some(rules) = self
                    .catalog
                    .get_bucket_config(&bucket, config_kind::LIFECYCLE)
                    .await?
                    .and_then(|b| Rules::decode(&b))
                else {
                    continue;
                };
                // Rules live in the catalog, which the provider can edit: removals happen only
                // while the trustee serves, so that officers who disconnect the provider stop
                // them with everything else (asked again for each bucket, as a run is long).
                if crate::health::trustee_state(self.trustee.as_ref()).await
                    != TrusteeState::Unsealed
                {
                    return Err(LifecycleError::TrusteeNotServing);
                }
                let walked = async {
                    if rules.acts_on_versions() {
                        self.expire_versions(fence, &tenant.name, &bucket, &rules, day_ms, applied)
                            .await?;
                    }
                    if rules.acts_on_uploads() {
                        self.abort_uploads(fence, &bucket, &rules, day_ms, applied)
                            .await?;
                    }
                    Ok::<(), LifecycleError>(())
                }
                .await;
                match walked {
                    // Deleted meanwhile: nothing more to do in it.
                    Err(LifecycleError::Catalog(e)) if e.is_bucket_gone() => {}
                    other => other?,
                }
                if applied.actions() >= MAX_ACTIONS_PER_RUN {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    async fn expire_versions(
        &self,
        fence: &Fence<'_>,
        tenant: &str,
        bucket: &Bucket,
        rules: &Rules,
        day_ms: i64,
        applied: &mut Applied,
    ) -> Result<(), LifecycleError> {
        let memo = KeyMemo::default();
        let mut pages = VersionPages::new(self.catalog.as_ref(), bucket, PAGE);
        let mut walk = KeyWalk::default();
        loop {
            fence.check(self).await?;
            let Some(page) = pages.next_page().await? else {
                break;
            };
            for v in page {
                if v.object.key != walk.key {
                    self.finish_key(bucket, rules, &mut walk, applied).await?;
                    walk = KeyWalk {
                        key: v.object.key.clone(),
                        ..KeyWalk::default()
                    };
                }
                self.walk_entry(tenant, bucket, rules, day_ms, &memo, &mut walk, v, applied)
                    .await?;
                if applied.actions() >= MAX_ACTIONS_PER_RUN {
                    return Ok(());
                }
            }
        }
        self.finish_key(bucket, rules, &mut walk, applied).await
    }

    /// Reads the tags of `o` if a rule needs them: its metadata opened with a key released for
    /// [`LIFECYCLE_TAGS_REASON`].
    async fn tags_of(
        &self,
        tenant: &str,
        o: &ObjectRecord,
        memo: &KeyMemo,
    ) -> Option<Vec<(String, String)>> {
        let why = Justification::System {
            reason: LIFECYCLE_TAGS_REASON.into(),
        };
        let binding = crate::keys::Binding::object(tenant, &o.bucket, &o.key);
        let cipher = self
            .open_bound(&binding, &o.envelope, &why, memo)
            .await
            .ok()?;
        cipher.open_meta(&o.meta).ok().map(|m| m.tags)
    }

    /// The first enabled rule for which `applies` holds and whose filter matches `c`, reading
    /// its tags once if a filter needs them.
    async fn first_rule<'r>(
        &self,
        tenant: &str,
        rules: &'r Rules,
        c: &mut Candidate<'_>,
        memo: &KeyMemo,
        applied: &mut Applied,
        applies: impl Fn(&Rule) -> bool,
    ) -> Option<&'r Rule> {
        for rule in rules.enabled().filter(|r| applies(r)) {
            let f = &rule.filter;
            if c.delete_marker {
                // A marker has neither size nor tags.
                if !f.beyond_prefix() && f.matches_name(&c.object.key) {
                    return Some(rule);
                }
                continue;
            }
            if f.needs_tags() && c.tags.is_none() {
                // Tags are read only once name and size match (a filter matches its own tags).
                if !f.matches(&c.object.key, c.object.size, || Some(f.tags.clone())) {
                    continue;
                }
                let tags = self.tags_of(tenant, c.object, memo).await;
                if tags.is_none() {
                    applied.skipped += 1;
                }
                c.tags = Some(tags);
            }
            let tags = c.tags.clone().flatten();
            if f.matches(&c.object.key, c.object.size, || tags) {
                return Some(rule);
            }
        }
        None
    }

    #[allow(clippy::too_many_arguments)]
    async fn walk_entry(
        &self,
        tenant: &str,
        bucket: &Bucket,
        rules: &Rules,
        day_ms: i64,
        memo: &KeyMemo,
        walk: &mut KeyWalk,
        v: ObjectVersion,
        applied: &mut Applied,
    ) -> Result<(), LifecycleError> {
        let now = crate::s3::now_ms();
        let written = v.object.last_modified_ms;
        if v.is_latest {
            walk.newer_written_ms = Some(written);
            if v.delete_marker {
                walk.latest_marker = Some(v);
                return Ok(());
            }
            let mut c = Candidate {
                object: &v.object,
                delete_marker: false,
                tags: None,
            };
            let due = |r: &Rule| match r.expiration {
                Some(Expiration::Days(d)) => older_than(written, d, day_ms, now),
                Some(Expiration::Date(at)) => now >= at,
                _ => false,
            };
            if self
                .first_rule(tenant, rules, &mut c, memo, applied, due)
                .await
                .is_none()
            {
                return Ok(());
            }
            if self.held_by_object_lock(bucket, &v.object).await {
                applied.locked += 1;
                return Ok(());
            }
            if self.expire_current(bucket, &v).await? {
                applied.expired += 1;
                obhut_metrics::get().lifecycle_applied(LifecycleAction::Expired, 1);
                // It is noncurrent from now on (versioned), or gone.
                walk.newer_written_ms = Some(now);
            }
            return Ok(());
        }
        // Noncurrent: it became so when the entry just newer was written.
        let since = walk.newer_written_ms.unwrap_or(written);
        walk.newer_written_ms = Some(written);
        let newer = walk.newer_noncurrent;
        if !v.delete_marker {
            walk.newer_noncurrent = walk.newer_noncurrent.saturating_add(1);
        }
        let mut c = Candidate {
            object: &v.object,
            delete_marker: v.delete_marker,
            tags: None,
        };
        let due = |r: &Rule| {
            r.noncurrent.is_some_and(|n| {
                older_than(since, n.days, day_ms, now) && newer >= n.newer_versions.unwrap_or(0)
            })
        };
        let removed = if self
            .first_rule(tenant, rules, &mut c, memo, applied, due)
            .await
            .is_some()
        {
            if self.held_by_object_lock(bucket, &v.object).await {
                applied.locked += 1;
                false
            } else {
                self.remove_seen(bucket, &v, SeenVersion::of(&v)).await?
            }
        } else {
            false
        };
        if removed {
            applied.noncurrent_expired += 1;
            obhut_metrics::get().lifecycle_applied(LifecycleAction::NoncurrentExpired, 1);
        } else {
            walk.remaining += 1;
        }
        Ok(())
    }

    /// At the end of a key's entries: its newest entry, if a delete marker with nothing left
    /// behind it, is removed under a rule that removes expired delete markers.
    async fn finish_key(
        &self,
        bucket: &Bucket,
        rules: &Rules,
        walk: &mut KeyWalk,
        applied: &mut Applied,
    ) -> Result<(), LifecycleError> {
        let Some(marker) = walk.latest_marker.take() else {
            return Ok(());
        };
        if walk.remaining > 0 {
            return Ok(());
        }
        let removes = rules.enabled().any(|r| {
            matches!(
                r.expiration,
                Some(Expiration::ExpiredObjectDeleteMarker | Expiration::Days(_))
            ) && !r.filter.beyond_prefix()
                && r.filter.matches_name(&marker.object.key)
        });
        if !removes || self.held_by_object_lock(bucket, &marker.object).await {
            return Ok(());
        }
        let seen = SeenVersion {
            only_entry: true,
            ..SeenVersion::of(&marker)
        };
        if self.remove_seen(bucket, &marker, seen).await? {
            applied.delete_markers_removed += 1;
            obhut_metrics::get().lifecycle_applied(LifecycleAction::DeleteMarkerRemoved, 1);
        }
        Ok(())
    }

    /// Removes the entry `seen` for good if it is still as seen; its blobs become garbage.
    async fn remove_seen(
        &self,
        bucket: &Bucket,
        v: &ObjectVersion,
        seen: SeenVersion,
    ) -> Result<bool, LifecycleError> {
        match self
            .catalog
            .delete_seen_version(bucket, &v.object.key, &seen)
            .await?
        {
            Some(removed) => {
                if !removed.delete_marker {
                    self.discard_object(removed.object);
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Expires the current version `v`: removed in a bucket that was never versioned, else
    /// hidden by a delete marker (a `null` one, replacing the `null` version, when versioning
    /// is suspended), as an S3 DELETE does. Only if it is still current as seen.
    async fn expire_current(
        &self,
        bucket: &Bucket,
        v: &ObjectVersion,
    ) -> Result<bool, LifecycleError> {
        let seen = SeenVersion::of(v);
        let marker_id = match bucket.versioning {
            Versioning::Unversioned => return self.remove_seen(bucket, v, seen).await,
            Versioning::Enabled => {
                // A version id as an S3 DELETE's marker gets: 16 random bytes in hex.
                let mut id = [0u8; 16];
                obhut_crypto::random_bytes(&mut id).map_err(|e| {
                    CatalogError::Storage(format!("no random delete marker id: {e}"))
                })?;
                Some(hex_simd::encode_to_string(id, hex_simd::AsciiCase::Lower))
            }
            Versioning::Suspended => None,
        };
        let marker = ObjectRecord {
            bucket: bucket.name.clone(),
            key: v.object.key.clone(),
            size: 0,
            etag: String::new(),
            last_modified_ms: crate::s3::now_ms(),
            envelope: Vec::new(),
            meta: Vec::new(),
            sites: Vec::new(),
            chunks: Vec::new(),
            version_id: marker_id,
        };
        match self
            .catalog
            .put_delete_marker_over(bucket, &marker, &seen)
            .await?
        {
            Some(garbage) => {
                for g in garbage {
                    self.discard_object(g);
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Aborts the bucket's multipart uploads that a rule says are too old.
    async fn abort_uploads(
        &self,
        fence: &Fence<'_>,
        bucket: &Bucket,
        rules: &Rules,
        day_ms: i64,
        applied: &mut Applied,
    ) -> Result<(), LifecycleError> {
        let mut after: Option<(String, String)> = None;
        loop {
            fence.check(self).await?;
            let page = self
                .catalog
                .list_uploads(
                    bucket,
                    "",
                    after.as_ref().map(|(k, u)| (k.as_str(), u.as_str())),
                    PAGE,
                )
                .await?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = Some((last.key.clone(), last.upload_id.clone()));
            let full = page.len() == PAGE;
            let now = crate::s3::now_ms();
            for u in page {
                let due = rules.enabled().any(|r| {
                    r.abort_after_days
                        .is_some_and(|d| older_than(u.initiated_ms, d, day_ms, now))
                        && r.filter.matches_name(&u.key)
                });
                if !due {
                    continue;
                }
                match self.catalog.abort_upload(&u.upload_id).await {
                    Ok(parts) => {
                        self.discard_parts(parts);
                        applied.uploads_aborted += 1;
                        obhut_metrics::get().lifecycle_applied(LifecycleAction::UploadAborted, 1);
                    }
                    // Completed or aborted meanwhile.
                    Err(CatalogError::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
                if applied.actions() >= MAX_ACTIONS_PER_RUN {
                    return Ok(());
                }
            }
            if !full {
                return Ok(());
            }
        }
    }
}

/// Logs what a run did, in counts (never a name).
fn report(a: &Applied) {
    obhut_metrics::get().lifecycle_applied(LifecycleAction::Skipped, a.skipped);
    if a.is_empty() {
        return;
    }
    tracing::info!(
        expired = a.expired,
        noncurrent_expired = a.noncurrent_expired,
        delete_markers_removed = a.delete_markers_removed,
        uploads_aborted = a.uploads_aborted,
        skipped = a.skipped,
        locked = a.locked,
        "lifecycle rules applied"
    );
    if a.actions() >= MAX_ACTIONS_PER_RUN {
        tracing::info!(
            limit = MAX_ACTIONS_PER_RUN,
            "the lifecycle run reached its limit of changes; the next run goes on"
        );
    }
}
