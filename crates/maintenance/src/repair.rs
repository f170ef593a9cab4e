//! Keeping every object, and every part of an unfinished upload, on enough allowed sites:
//! repair passes (operator, drain, site down, degraded writes, start-up), scrubbing, site
//! health probes, and replicas found bad on read.
//!
//! A move is copy, then catalog update (only if the object or part is unchanged), then delete
//! of the old replica, so a crash at any point leaves everything on replicas that exist;
//! leftovers are orphans. Replicas are checked against the CRC32C the catalog records for the
//! stored bytes, so none of it needs a key.
//!
//! It never sees plaintext, and never decides residency on its own: the policy it enforces is
//! the tenant's and bucket's, as the trustee holds them ([`crate::policy`]).

use crate::MaintenanceError;
use crate::policy::{Policy, PolicySource, residency_policy};
use crate::replica::{ReplicaProblem, copy_chunk, verify_replica};
use crate::sites::SiteSet;
use crate::worker::{Duty, Worker, Workers};
use obhut_catalog::{Bucket, Catalog, Chunk, Lease, ObjectRecord, Part, Tenant, VersionPages};
use obhut_core::{SiteInfo, SiteState};
use obhut_sites::Site;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// Objects (and uploads, and parts) listed per catalog call in whole-bucket walks: what a walk
/// holds in memory at most.
pub(crate) const PAGE: usize = 500;
const MAX_ERRORS: usize = 20;
/// How often each site's health is checked (and the longest a check may take).
const HEALTH_INTERVAL: Duration = Duration::from_secs(3);
/// How often the repair worker looks for writes placed on too few sites.
const DEGRADED_CHECK: Duration = Duration::from_secs(5);

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Where a repair pass is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RepairState {
    /// No pass has run since the process started.
    #[default]
    Idle,
    Running,
    Done,
    Failed,
}

impl RepairState {
    /// Its name on the wire.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

/// Progress of the current or last repair pass: the answer of `GET /v1/repair`, as the admin
/// API sends it and the CLI reads it.
///
/// Fields are in alphabetical order, the order the admin API wrote them in before this was
/// typed (a `serde_json::Value` sorts its keys): keep it, so the JSON stays the same byte for
/// byte.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairStatus {
    pub errors: Vec<String>,
    pub finished_ms: Option<i64>,
    pub objects_done: u64,
    /// Objects the catalog counted when the pass started (its usage counts, one read per
    /// tenant): the end of the pass's progress bar. The pass may find a few more or fewer.
    #[serde(default)]
    pub objects_expected: u64,
    pub objects_failed: u64,
    /// Objects found so far: the pass counts them as it pages through the catalog, so this is
    /// the final number once the pass is over.
    pub objects_total: u64,
    /// Parts of unfinished multipart uploads brought to their policy, and those that failed.
    pub parts_done: u64,
    pub parts_failed: u64,
    /// What started it: `operator`, `drain`, `site-down`, `policy`, `degraded-write`,
    /// `start-up`.
    pub reason: String,
    pub replicas_copied: u64,
    pub replicas_removed: u64,
    /// Scrubber: replicas checked, found bad, and repaired since start.
    pub scrub_bad: u64,
    pub scrub_checked: u64,
    /// The current (or last) scrubbing pass: objects checked, and objects the catalog counted
    /// when it started.
    #[serde(default)]
    pub scrub_pass_done: u64,
    #[serde(default)]
    pub scrub_pass_total: u64,
    pub scrub_repaired: u64,
    pub started_ms: i64,
    pub state: RepairState,
}

/// What repairing one object or part did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub copied: u64,
    pub removed: u64,
}

/// How fast the scrubber reads, and how long it rests between passes.
#[derive(Debug, Clone, Copy)]
pub struct ScrubRate {
    /// Bytes read per second at most (replicas included); 0 turns scrubbing off.
    pub bytes_per_sec: u64,
    pub pause: Duration,
}

/// What the data path tells maintenance: a replica found bad on read, a write placed on fewer
/// sites than its policy requires. Cheap to call from a request; the work is done by workers.
/// A version found with a bad replica on read: (bucket, key, version id; `None` for the null
/// version).
type ReadFault = (String, String, Option<String>);

#[derive(Debug)]
pub struct RepairRequests {
    faults: mpsc::UnboundedSender<ReadFault>,
    /// Objects reported bad on read and not yet checked and repaired.
    queued: AtomicU64,
    under_replicated: AtomicBool,
}

impl RepairRequests {
    /// A write was placed on fewer sites than its policy requires: a repair pass follows.
    pub fn note_under_replicated(&self) {
        self.under_replicated.store(true, Ordering::SeqCst);
    }

    /// A replica of version `version_id` of `bucket`/`key` (current or not) failed on read:
    /// queue that version for repair.
    pub fn report_fault(&self, bucket: &str, key: &str, version_id: Option<&str>) {
        if self
            .faults
            .send((
                bucket.to_owned(),
                key.to_owned(),
                version_id.map(str::to_owned),
            ))
            .is_ok()
        {
            self.queued.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Objects reported bad on read that wait to be checked and repaired.
    #[must_use]
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }
}

/// Where a set of chunks is recorded, and so how its site list is updated after a move.
enum Holder<'a> {
    Object(&'a ObjectRecord),
    Part(&'a Part),
}

impl Holder<'_> {
    fn chunks(&self) -> &[Chunk] {
        match self {
            Self::Object(o) => &o.chunks,
            Self::Part(p) => std::slice::from_ref(&p.chunk),
        }
    }

    fn sites(&self) -> &[String] {
        match self {
            Self::Object(o) => &o.sites,
            Self::Part(p) => &p.sites,
        }
    }

    fn what(&self) -> &'static str {
        match self {
            Self::Object(_) => "an object",
            Self::Part(_) => "an upload part",
        }
    }

    /// Records `sites` as the holder's replicas if it still has the chunks and the sites
    /// read, under `lease` (checked in the same transaction); returns whether it did.
    async fn record(
        &self,
        catalog: &dyn Catalog,
        lease: Option<&Lease>,
        sites: &[String],
    ) -> Result<bool, MaintenanceError> {
        Ok(match self {
            Self::Object(o) => {
                catalog
                    .move_object_sites(lease, &o.bucket, &o.key, &o.chunks, &o.sites, sites)
                    .await?
            }
            Self::Part(p) => {
                catalog
                    .move_part_sites(
                        lease,
                        &p.upload_id,
                        p.part_number,
                        &p.chunk,
                        &p.sites,
                        sites,
                    )
                    .await?
            }
        })
    }
}

/// Repair, scrubbing and site health of one process: the keyless upkeep of its sites.
pub struct Maintenance {
    pub(crate) catalog: Arc<dyn Catalog>,
    pub(crate) sites: SiteSet,
    /// The residency policies placement follows: the trustee's.
    pub(crate) policies: Arc<dyn PolicySource>,
    workers: Workers,
    requests: Arc<RepairRequests>,
    faults: Mutex<Option<mpsc::UnboundedReceiver<ReadFault>>>,
    status: Mutex<RepairStatus>,
    /// A pass is running (or about to): set by whoever starts one, cleared when it ends.
    running: AtomicBool,
    /// Wakes the repair worker for a pass that was started.
    wake: Notify,
    /// How long blobs that no record names any more are kept (see [`crate::collect_orphans`]):
    /// replicas a move leaves behind are left to orphan collection unless it is zero.
    blob_retention: Duration,
}

impl Maintenance {
    #[must_use]
    pub fn new(
        catalog: Arc<dyn Catalog>,
        sites: SiteSet,
        policies: Arc<dyn PolicySource>,
        workers: Workers,
        blob_retention: Duration,
    ) -> Arc<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        Arc::new(Self {
            catalog,
            sites,
            policies,
            workers,
            requests: Arc::new(RepairRequests {
                faults: tx,
                queued: AtomicU64::new(0),
                under_replicated: AtomicBool::new(false),
            }),
            faults: Mutex::new(Some(rx)),
            status: Mutex::new(RepairStatus::default()),
            running: AtomicBool::new(false),
            wake: Notify::new(),
            blob_retention,
        })
    }

    /// How long blobs no record names any more are kept before orphan collection removes them.
    #[must_use]
    pub fn blob_retention(&self) -> Duration {
        self.blob_retention
    }

    /// The sites this process reaches (shared: changes apply at once).
    #[must_use]
    pub fn sites(&self) -> &SiteSet {
        &self.sites
    }

    /// Where the residency policies come from (the trustee's, cached).
    #[must_use]
    pub fn policies(&self) -> &Arc<dyn PolicySource> {
        &self.policies
    }

    /// The workers of this process, for the health output.
    #[must_use]
    pub fn workers(&self) -> &Workers {
        &self.workers
    }

    /// The handle the data path reports to.
    #[must_use]
    pub fn requests(&self) -> Arc<RepairRequests> {
        Arc::clone(&self.requests)
    }

    fn update(&self, f: impl FnOnce(&mut RepairStatus)) {
        let mut st = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut st);
    }

    #[must_use]
    pub fn status(&self) -> RepairStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Removes blobs that no object or upload refers to, that were written at least `grace`
    /// ago and that have been found so for the retention of removed blobs; see
    /// [`crate::collect_orphans`]. Where the process goes by a lease, only
    /// while it holds it, fenced by its epoch.
    pub async fn collect_orphans(&self, grace: Duration) -> Result<usize, MaintenanceError> {
        let lease = self.fence_lease()?;
        let still_held = || self.still_holds(lease.as_ref());
        let fence = crate::orphans::Fence {
            lease: lease.as_ref(),
            still_held: &still_held,
        };
        crate::orphans::collect_orphans(
            self.catalog.as_ref(),
            &self.sites,
            &fence,
            grace,
            self.blob_retention,
        )
        .await
    }

    /// The lease to fence background work with: `None` for a process alone on its catalog;
    /// [`MaintenanceError::Standby`] where another process holds it.
    fn fence_lease(&self) -> Result<Option<Lease>, MaintenanceError> {
        match self.workers.duty() {
            Duty::Alone => Ok(None),
            Duty::Leader(lease) => Ok(Some(lease)),
            Duty::Standby => Err(MaintenanceError::Standby),
        }
    }

    /// Whether this process still holds `lease` (the same epoch) by its own reckoning, or
    /// goes by no lease at all.
    fn still_holds(&self, lease: Option<&Lease>) -> bool {
        match (self.workers.duty(), lease) {
            (Duty::Alone, None) => true,
            (Duty::Leader(now), Some(then)) => now.epoch == then.epoch,
            _ => false,
        }
    }

    /// Whether a bad replica may be rewritten now: by the process alone on its catalog, or by
    /// the lease holder once the catalog confirmed its lease. A standby leaves it to the
    /// holder's scrubber (reads go to a good replica meanwhile).
    async fn may_rewrite(&self) -> bool {
        match self.fence_lease() {
            Ok(None) => true,
            Ok(Some(lease)) => self.catalog.check_lease(&lease).await.is_ok(),
            Err(_) => false,
        }
    }

    /// Starts the worker `orphans`: on the lease holder (or a process alone on its catalog),
    /// every `every`, blobs no record names and older than `grace` are removed.
    pub fn spawn_orphan_collector(self: &Arc<Self>, orphans: crate::orphans::OrphanCollection) {
        let m = Arc::clone(self);
        self.workers.spawn("orphans", move |w| async move {
            while w.sleep(orphans.every).await {
                if w.duty() == Duty::Standby {
                    continue;
                }
                let _run = w.run();
                match m.collect_orphans(orphans.grace).await {
                    Ok(_) | Err(MaintenanceError::Standby) => {}
                    Err(e) => tracing::warn!(error = %e, "orphan collection cut short"),
                }
            }
        });
    }

    /// Starts a repair pass over every object and upload part unless one is running; returns
    /// whether it started. The pass itself runs in the `repair` worker.
    pub fn start_repair(&self, reason: &str) -> bool {
        let started = self.begin(reason);
        if started {
            self.wake.notify_one();
        }
        started
    }

    /// Marks a pass as running (at once, so that its status never shows the last one's end).
    fn begin(&self, reason: &str) -> bool {
        if self.running.swap(true, Ordering::SeqCst) {
            return false;
        }
        self.update(|st| {
            *st = RepairStatus {
                state: RepairState::Running,
                reason: reason.to_owned(),
                started_ms: now_ms(),
                scrub_checked: st.scrub_checked,
                scrub_bad: st.scrub_bad,
                scrub_repaired: st.scrub_repaired,
                scrub_pass_done: st.scrub_pass_done,
                scrub_pass_total: st.scrub_pass_total,
                ..RepairStatus::default()
            };
        });
        true
    }

    fn finish(&self, result: Result<(), MaintenanceError>) {
        self.update(|st| {
            st.finished_ms = Some(now_ms());
            match result {
                Ok(()) => st.state = RepairState::Done,
                Err(e) => {
                    st.state = RepairState::Failed;
                    st.errors.push(e.to_string());
                }
            }
        });
        self.running.store(false, Ordering::SeqCst);
        tracing::info!(status = ?self.status(), "repair pass finished");
    }

    fn note_failure(&self, e: &MaintenanceError, count: impl FnOnce(&mut RepairStatus)) {
        tracing::warn!(error = %e, "could not be repaired");
        self.update(|st| {
            count(st);
            if st.errors.len() < MAX_ERRORS {
                st.errors.push(e.to_string());
            }
        });
    }

    /// Every (tenant, bucket) pair; buckets are few, their objects are paged.
    async fn buckets(&self) -> Result<Vec<(Tenant, Bucket)>, MaintenanceError> {
        let mut out = Vec::new();
        for tenant in self.catalog.list_tenants().await? {
            for b in self.catalog.list_buckets(&tenant.name).await? {
                out.push((tenant.clone(), b));
            }
        }
        Ok(out)
    }

    /// How many objects the catalog holds, by its usage counts (one read per tenant): the
    /// expected end of a pass. 0 if it cannot be read (the pass finds out as it goes).
    async fn expected_objects(&self) -> u64 {
        let Ok(tenants) = self.catalog.list_tenants().await else {
            return 0;
        };
        let mut total: u64 = 0;
        for t in tenants {
            let scope = obhut_core::PolicyScope::Tenant(t.name);
            if let Ok(u) = self.catalog.usage(&scope, now_ms()).await {
                total = total.saturating_add(u.objects);
            }
        }
        total
    }

    /// Between two pieces of background work: goes on only while the worker is not stopped
    /// and this process may do the work (by its own reckoning of the lease). What a piece of
    /// work changes in the catalog is fenced in the transaction of the change itself.
    fn on_duty(worker: &Worker) -> Result<(), MaintenanceError> {
        if worker.is_stopped() {
            return Err(MaintenanceError::Stopped);
        }
        match worker.duty() {
            Duty::Alone | Duty::Leader(_) => Ok(()),
            Duty::Standby => Err(MaintenanceError::Standby),
        }
    }

    /// One walk over every object and every part of every unfinished upload, a page at a
    /// time, bringing each to its bucket's policy.
    async fn repair_pass(&self, worker: &Worker) -> Result<(), MaintenanceError> {
        self.requests
            .under_replicated
            .store(false, Ordering::SeqCst);
        let expected = self.expected_objects().await;
        self.update(|st| st.objects_expected = expected);
        for (tenant, bucket) in self.buckets().await? {
            let policy = residency_policy(
                self.catalog.as_ref(),
                self.policies.as_ref(),
                &tenant,
                &bucket.name,
            )
            .await?;
            let mut pages = VersionPages::new(self.catalog.as_ref(), &bucket, PAGE);
            while let Some(page) = pages.next_objects().await? {
                self.update(|st| st.objects_total += page.len() as u64);
                // Objects are handled one at a time: repair is background work and must
                // leave the sites' bandwidth to clients.
                for o in &page {
                    Self::on_duty(worker)?;
                    match self.repair_object(o, &policy).await {
                        Ok(out) => self.update(|st| {
                            st.objects_done += 1;
                            st.replicas_copied += out.copied;
                            st.replicas_removed += out.removed;
                        }),
                        Err(e) => self.note_failure(&e, |st| {
                            st.objects_done += 1;
                            st.objects_failed += 1;
                        }),
                    }
                }
            }
            self.repair_uploads(worker, &bucket, &policy).await?;
        }
        Ok(())
    }

    /// The parts of `bucket`'s unfinished uploads: a drain must empty a site of them too.
    async fn repair_uploads(
        &self,
        worker: &Worker,
        bucket: &Bucket,
        policy: &Policy,
    ) -> Result<(), MaintenanceError> {
        let mut after: Option<(String, String)> = None;
        loop {
            let uploads = match self
                .catalog
                .list_uploads(
                    bucket,
                    "",
                    after.as_ref().map(|(k, u)| (k.as_str(), u.as_str())),
                    PAGE,
                )
                .await
            {
                // Deleted meanwhile: its uploads went with it.
                Err(e) if e.is_bucket_gone() => return Ok(()),
                other => other?,
            };
            for upload in &uploads {
                let mut after_part = 0;
                loop {
                    let parts = self
                        .catalog
                        .list_parts(&upload.upload_id, after_part, PAGE)
                        .await?;
                    for part in &parts {
                        Self::on_duty(worker)?;
                        match self.repair_part(part, policy).await {
                            Ok(out) => self.update(|st| {
                                st.parts_done += 1;
                                st.replicas_copied += out.copied;
                                st.replicas_removed += out.removed;
                            }),
                            Err(e) => self.note_failure(&e, |st| {
                                st.parts_done += 1;
                                st.parts_failed += 1;
                            }),
                        }
                    }
                    match parts.last() {
                        Some(last) if parts.len() == PAGE => after_part = last.part_number,
                        _ => break,
                    }
                }
            }
            match uploads.last() {
                Some(last) if uploads.len() == PAGE => {
                    after = Some((last.key.clone(), last.upload_id.clone()));
                }
                _ => return Ok(()),
            }
        }
    }

    /// Brings one object to its policy: replicas only on active sites of allowed
    /// jurisdictions, at least `min_sites` of them. Copies first, records the new site list
    /// (only if the object is unchanged), then removes replicas from sites it left.
    pub async fn repair_object(
        &self,
        o: &ObjectRecord,
        policy: &Policy,
    ) -> Result<Outcome, MaintenanceError> {
        self.repair_holding(&Holder::Object(o), policy).await
    }

    /// Brings one part of an unfinished upload to its policy, as [`Self::repair_object`] does
    /// an object. Parts of one upload with the same sites end on the same sites, in the same
    /// order, so the upload still completes.
    pub async fn repair_part(
        &self,
        p: &Part,
        policy: &Policy,
    ) -> Result<Outcome, MaintenanceError> {
        self.repair_holding(&Holder::Part(p), policy).await
    }

    async fn repair_holding(
        &self,
        holder: &Holder<'_>,
        policy: &Policy,
    ) -> Result<Outcome, MaintenanceError> {
        let (chunks, sites) = (holder.chunks(), holder.sites());
        let infos: HashMap<String, SiteInfo> = self
            .sites
            .infos()
            .into_iter()
            .map(|i| (i.id.clone(), i))
            .collect();
        let ok_site = |id: &String| {
            infos.get(id).is_some_and(|i| {
                i.state == SiteState::Active
                    && policy.jurisdictions.contains(&i.jurisdiction)
                    && self.sites.get(id).is_some()
            })
        };
        let keep: Vec<String> = sites.iter().filter(|id| ok_site(id)).cloned().collect();
        let leave: Vec<String> = sites.iter().filter(|id| !ok_site(id)).cloned().collect();
        let mut out = Outcome::default();
        // Replicas that are gone (deleted, a site emptied) are rewritten from another one; a
        // full check of every byte is the scrubber's job.
        for id in &keep {
            let Some(site) = self.sites.get(id) else {
                continue;
            };
            for chunk in chunks {
                match site.len(chunk.blob).await {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {
                        let others: Vec<Arc<dyn Site>> = sites
                            .iter()
                            .filter(|s| *s != id)
                            .filter_map(|s| self.sites.get(s))
                            .collect();
                        copy_chunk(&others, &site, chunk)
                            .await
                            .map_err(MaintenanceError::Copy)?;
                        out.copied += 1;
                        tracing::info!(site = %id, blob = %chunk.blob, "missing replica restored");
                    }
                    Err(e) => {
                        return Err(MaintenanceError::Site {
                            site: id.clone(),
                            source: e,
                        });
                    }
                }
            }
        }
        if keep.len() >= policy.min_sites && leave.is_empty() {
            return Ok(out);
        }
        let need = policy.min_sites.saturating_sub(keep.len());
        let mut candidates: Vec<&SiteInfo> = infos
            .values()
            .filter(|i| !sites.contains(&i.id) && ok_site(&i.id))
            .collect();
        candidates.sort_by(|a, b| a.id.cmp(&b.id));
        let targets: Vec<String> = candidates.iter().take(need).map(|i| i.id.clone()).collect();
        if keep.is_empty() && targets.is_empty() {
            return Err(MaintenanceError::NoPlace(format!(
                "{} has no active site in {} to hold it",
                holder.what(),
                policy.jurisdictions.join(",")
            )));
        }
        // Sources: the replicas that stay first, then those on sites being left.
        let sources: Vec<Arc<dyn Site>> = keep
            .iter()
            .chain(leave.iter())
            .filter_map(|id| self.sites.get(id))
            .collect();
        let mut placed = Vec::new();
        for target_id in &targets {
            let Some(target) = self.sites.get(target_id) else {
                continue;
            };
            let mut ok = true;
            for chunk in chunks {
                if let Err(e) = copy_chunk(&sources, &target, chunk).await {
                    tracing::warn!(site = %target_id, error = %e, "copy for repair failed");
                    ok = false;
                    break;
                }
                out.copied += 1;
            }
            if ok {
                placed.push(target_id.clone());
            }
            // Else what was copied is left to orphan collection, which removes only what no
            // record names: a mover that lost its lease unnoticed must not remove a replica
            // the current holder placed there meanwhile.
        }
        let mut new_sites = keep.clone();
        new_sites.extend(placed.iter().cloned());
        // Leave a site only if the holder keeps at least as many good replicas as before,
        // never dropping below what it has: a drain with no target keeps the replica.
        let leaving: Vec<String> = if new_sites.len() >= policy.min_sites.min(sites.len()).max(1) {
            leave.clone()
        } else {
            Vec::new()
        };
        let mut recorded = new_sites.clone();
        recorded.extend(leave.iter().filter(|id| !leaving.contains(id)).cloned());
        if recorded == sites {
            return if new_sites.len() < policy.min_sites {
                Err(MaintenanceError::NoPlace(format!(
                    "{} is on {} of the {} sites its policy requires: no other active site in {} can take a replica",
                    holder.what(),
                    new_sites.len(),
                    policy.min_sites,
                    policy.jurisdictions.join(",")
                )))
            } else if targets.len() > placed.len() || !leave.is_empty() {
                Err(MaintenanceError::NoPlace(format!(
                    "{} could not be moved off {} ({} of {} new replicas made)",
                    holder.what(),
                    leave.join(","),
                    placed.len(),
                    targets.len()
                )))
            } else {
                Ok(out)
            };
        }
        // The move is recorded under the lease (checked in the same transaction) and only if
        // nobody changed the holder's chunks or sites since they were read; only then are the
        // replicas it left removed, which that commit made unreachable.
        let lease = self.fence_lease()?;
        if !holder
            .record(self.catalog.as_ref(), lease.as_ref(), &recorded)
            .await?
        {
            // Overwritten, re-uploaded, completed, deleted or moved by another meanwhile: the
            // copies are orphans (unless the holder names them now, which repair sees next).
            if !placed.is_empty() {
                tracing::info!(
                    "{} changed while it was being moved; the copies made are left to orphan collection",
                    holder.what()
                );
            }
            return Ok(Outcome::default());
        }
        if !leaving.is_empty() && !self.still_holds(lease.as_ref()) {
            // The lease lapsed since the commit (by this process's clock): another holder may
            // be placing replicas now; the replicas left behind are orphans.
            tracing::warn!(
                "the lease on background work lapsed after a move was recorded; the replicas it left are left to orphan collection"
            );
            return Ok(out);
        }
        // A catalog restored to a point before the move names the replicas it leaves: they
        // stay for the retention of removed blobs (orphan collection removes them after it),
        // unless the tenant's residency no longer allows their site, which comes first.
        let allowed = |id: &String| {
            infos
                .get(id)
                .is_some_and(|i| policy.jurisdictions.contains(&i.jurisdiction))
        };
        for id in &leaving {
            if !self.blob_retention.is_zero() && allowed(id) {
                continue;
            }
            if let Some(site) = self.sites.get(id) {
                for chunk in chunks {
                    match site.delete(chunk.blob).await {
                        Ok(()) => out.removed += 1,
                        Err(e) => {
                            tracing::warn!(site = %id, error = %e, "could not remove a moved replica; left for orphan collection");
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Checks every replica of `o`; rewrites bad ones from a good replica. Returns (checked,
    /// bad, repaired).
    pub async fn scrub_object(&self, o: &ObjectRecord) -> (u64, u64, u64) {
        let (mut checked, mut bad, mut repaired) = (0, 0, 0);
        for chunk in &o.chunks {
            let mut good: Vec<Arc<dyn Site>> = Vec::new();
            let mut broken: Vec<Arc<dyn Site>> = Vec::new();
            for id in &o.sites {
                let Some(site) = self.sites.get(id) else {
                    continue;
                };
                checked += 1;
                match verify_replica(&site, chunk).await {
                    Ok(_) => good.push(site),
                    Err(ReplicaProblem::Unreachable(e)) => {
                        tracing::warn!(site = %id, error = %e, "replica unreachable while scrubbing");
                    }
                    Err(p) => {
                        bad += 1;
                        tracing::error!(site = %id, blob = %chunk.blob, problem = %p, "bad replica found");
                        broken.push(site);
                    }
                }
            }
            if !broken.is_empty() && !self.may_rewrite().await {
                tracing::warn!(blob = %chunk.blob, "bad replica left for the lease holder's scrubber to rewrite");
                continue;
            }
            for site in broken {
                match copy_chunk(&good, &site, chunk).await {
                    Ok(()) => {
                        repaired += 1;
                        tracing::info!(site = site.id(), blob = %chunk.blob, "replica repaired");
                    }
                    Err(e) => {
                        tracing::error!(site = site.id(), error = %e, "replica could not be repaired");
                    }
                }
            }
        }
        (checked, bad, repaired)
    }

    async fn scrub_and_count(&self, o: &ObjectRecord) {
        let (checked, bad, repaired) = self.scrub_object(o).await;
        self.update(|st| {
            st.scrub_checked += checked;
            st.scrub_bad += bad;
            st.scrub_repaired += repaired;
        });
    }

    /// One scrubbing pass over every replica of every object, a page of records at a time,
    /// reading at most `bytes_per_sec`.
    async fn scrub_pass(
        &self,
        worker: &Worker,
        bytes_per_sec: u64,
    ) -> Result<(), MaintenanceError> {
        let expected = self.expected_objects().await;
        self.update(|st| {
            st.scrub_pass_done = 0;
            st.scrub_pass_total = expected;
        });
        for (_, bucket) in self.buckets().await? {
            let mut pages = VersionPages::new(self.catalog.as_ref(), &bucket, PAGE);
            while let Some(page) = pages.next_objects().await? {
                for o in &page {
                    Self::on_duty(worker)?;
                    let started = std::time::Instant::now();
                    let bytes: u64 = o.size.saturating_mul(o.sites.len() as u64);
                    self.scrub_and_count(o).await;
                    self.update(|st| st.scrub_pass_done += 1);
                    // Keep to the rate: an object of n bytes takes at least n / rate.
                    let budget = Duration::from_secs_f64(bytes as f64 / bytes_per_sec as f64);
                    if let Some(rest) = budget.checked_sub(started.elapsed())
                        && !worker.sleep(rest).await
                    {
                        return Err(MaintenanceError::Stopped);
                    }
                }
            }
        }
        Ok(())
    }

    /// Every few seconds each site proves it is still itself (identity in place, writable);
    /// one that fails is down for placement until it passes again. Returns whether a site went
    /// down.
    async fn probe_sites(&self) -> bool {
        let mut went_down = false;
        for (id, site) in self.sites.handles() {
            let ok = match tokio::time::timeout(HEALTH_INTERVAL, site.check()).await {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    if self.sites.is_healthy(&id) {
                        tracing::error!(site = %id, error = %e, "site failed its health check; it is down");
                    }
                    false
                }
                Err(_) => {
                    if self.sites.is_healthy(&id) {
                        tracing::error!(site = %id, "site did not answer its health check; it is down");
                    }
                    false
                }
            };
            if self.sites.set_health(&id, ok) {
                if ok {
                    tracing::info!(site = %id, "site passed its health check again");
                } else {
                    went_down = true;
                }
            }
        }
        went_down
    }

    /// Starts the background workers: `repair` (passes: requested, after degraded writes, at
    /// start-up while a site is not active), `read-faults` (objects found bad on read are
    /// scrubbed, and so repaired, at once), `site-health` (a site that fails its check is down
    /// and its objects are repaired elsewhere) and, unless its rate is 0, `scrubber`.
    pub fn spawn_workers(self: &Arc<Self>, scrub: ScrubRate) {
        let m = Arc::clone(self);
        self.workers.spawn("repair", move |w| async move {
            let not_all_active =
                |m: &Self| m.sites.infos().iter().any(|i| i.state != SiteState::Active);
            let mut on_duty = w.duty() != Duty::Standby;
            if on_duty && not_all_active(&m) {
                m.start_repair("start-up");
            }
            loop {
                let start = tokio::select! {
                    () = w.stopped() => return,
                    () = m.wake.notified() => true,
                    () = tokio::time::sleep(DEGRADED_CHECK) => {
                        // A process that takes the lease over does what its holder was doing.
                        let was = std::mem::replace(&mut on_duty, w.duty() != Duty::Standby);
                        if on_duty && !was && not_all_active(&m) {
                            m.begin("takeover")
                        } else {
                            on_duty
                                && m.requests.under_replicated.load(Ordering::SeqCst)
                                && m.begin("degraded-write")
                        }
                    }
                };
                if start {
                    let _run = w.run();
                    let result = m.repair_pass(&w).await;
                    if let Err(e) = &result {
                        w.note_error(e.kind());
                    }
                    m.finish(result);
                }
            }
        });
        let faults = self
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut faults) = faults {
            let m = Arc::clone(self);
            self.workers.spawn("read-faults", move |w| async move {
                loop {
                    let (bucket, key, version) = tokio::select! {
                        () = w.stopped() => return,
                        next = faults.recv() => match next {
                            Some(fault) => fault,
                            None => return,
                        },
                    };
                    let _run = w.run();
                    if let Ok(Some(v)) = m
                        .catalog
                        .get_object_version(&bucket, &key, version.as_deref())
                        .await
                        && !v.delete_marker
                    {
                        m.scrub_and_count(&v.object).await;
                    }
                    m.requests.queued.fetch_sub(1, Ordering::Relaxed);
                }
            });
        }
        let m = Arc::clone(self);
        self.workers.spawn("site-health", move |w| async move {
            while w.sleep(HEALTH_INTERVAL).await {
                let _run = w.run();
                if m.probe_sites().await {
                    m.start_repair("site-down");
                }
            }
        });
        if scrub.bytes_per_sec == 0 {
            return;
        }
        let m = Arc::clone(self);
        self.workers.spawn("scrubber", move |w| async move {
            while w.sleep(scrub.pause).await {
                if w.duty() == Duty::Standby {
                    continue;
                }
                let _run = w.run();
                match m.scrub_pass(&w, scrub.bytes_per_sec).await {
                    Ok(()) | Err(MaintenanceError::Stopped | MaintenanceError::Standby) => {}
                    Err(e) => {
                        w.note_error(e.kind());
                        tracing::warn!(error = %e, "scrubbing pass cut short");
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod wire_tests {
    use super::{RepairState, RepairStatus};
    use serde_json::json;

    #[test]
    fn repair_status_is_the_untyped_json_byte_for_byte() {
        let st = RepairStatus {
            errors: vec!["object b/k: no good replica".into()],
            finished_ms: Some(20),
            objects_done: 7,
            objects_expected: 9,
            objects_failed: 1,
            objects_total: 8,
            parts_done: 2,
            parts_failed: 3,
            reason: "drain".into(),
            replicas_copied: 9,
            replicas_removed: 4,
            scrub_bad: 5,
            scrub_checked: 60,
            scrub_pass_done: 11,
            scrub_pass_total: 12,
            scrub_repaired: 6,
            started_ms: 10,
            state: RepairState::Failed,
        };
        // What `json!(status)` of the struct with `state: &'static str` gave (keys sorted).
        let untyped = json!({
            "state": "failed", "reason": "drain", "objects_done": 7, "objects_total": 8,
            "replicas_copied": 9, "replicas_removed": 4, "objects_failed": 1, "parts_done": 2,
            "parts_failed": 3, "errors": ["object b/k: no good replica"], "started_ms": 10,
            "finished_ms": 20, "scrub_checked": 60, "scrub_bad": 5, "scrub_repaired": 6,
            "objects_expected": 9, "scrub_pass_done": 11, "scrub_pass_total": 12,
        });
        let text = serde_json::to_string(&st).unwrap();
        assert_eq!(text, serde_json::to_string(&untyped).unwrap());
        assert_eq!(serde_json::from_str::<RepairStatus>(&text).unwrap(), st);
        for (state, name) in [
            (RepairState::Idle, "idle"),
            (RepairState::Running, "running"),
            (RepairState::Done, "done"),
            (RepairState::Failed, "failed"),
        ] {
            assert_eq!(serde_json::to_value(state).unwrap(), json!(name));
            assert_eq!(state.as_str(), name);
        }
        let idle = serde_json::to_value(RepairStatus::default()).unwrap();
        assert_eq!(idle["state"], "idle");
        assert_eq!(idle["finished_ms"], serde_json::Value::Null);
    }
}
