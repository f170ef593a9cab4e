//! Keeping every object on enough allowed sites: repair, drain, scrubbing, and replicas found
//! bad on read.
//!
//! All of it copies ciphertext between sites and never needs a key: a replica is checked
//! against the CRC32C of the stored bytes that the catalog records for each blob. A move is
//! copy, then catalog update (only if the object is unchanged), then delete of the old replica,
//! so a crash at any point leaves every object on replicas that exist; leftovers are orphans.
//!
//! It never sees plaintext, and never decides residency on its own: the policy it enforces is
//! the tenant's and bucket's, as the catalog holds them.

use crate::Gateway;
use futures::StreamExt;
use obhut_catalog::{
    Catalog, CatalogError, Chunk, ObjectPages, ObjectRecord, ResidencyRule, Tenant,
};
use obhut_core::{SiteInfo, SiteState};
use obhut_sites::{Site, SiteError};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// A bucket's residency policy in effect: its tenant's, narrowed by the bucket's own rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub jurisdictions: Vec<String>,
    pub min_sites: usize,
    pub degraded_writes: bool,
}

/// Progress of the current or last repair pass.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairStatus {
    /// `idle`, `running`, `done` or `failed`.
    pub state: &'static str,
    /// What started it: `operator`, `drain`, `degraded-write`, `start-up`.
    pub reason: String,
    pub objects_done: u64,
    pub objects_total: u64,
    pub replicas_copied: u64,
    pub replicas_removed: u64,
    pub objects_failed: u64,
    pub errors: Vec<String>,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    /// Scrubber: replicas checked, found bad, and repaired since start.
    pub scrub_checked: u64,
    pub scrub_bad: u64,
    pub scrub_repaired: u64,
}

/// Shared state of repair and scrubbing, one per gateway.
pub struct Maintenance {
    status: std::sync::Mutex<RepairStatus>,
    running: AtomicBool,
    /// A write was placed on fewer sites than its policy requires.
    under_replicated: AtomicBool,
    faults: mpsc::UnboundedSender<(String, String)>,
    fault_rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<(String, String)>>>,
}

/// Objects listed per catalog call in whole-bucket walks.
const PAGE: usize = 500;
const MAX_ERRORS: usize = 20;
/// How often each site's health is checked (and the longest a check may take).
const HEALTH_INTERVAL: Duration = Duration::from_secs(3);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Default for Maintenance {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            status: std::sync::Mutex::new(RepairStatus {
                state: "idle",
                ..RepairStatus::default()
            }),
            running: AtomicBool::new(false),
            under_replicated: AtomicBool::new(false),
            faults: tx,
            fault_rx: std::sync::Mutex::new(Some(rx)),
        }
    }
}

impl Maintenance {
    pub fn note_under_replicated(&self) {
        self.under_replicated.store(true, Ordering::SeqCst);
    }

    /// A replica of `bucket`/`key` failed on read: queue the object for repair.
    pub fn report_fault(&self, bucket: &str, key: &str) {
        let _ = self.faults.send((bucket.to_owned(), key.to_owned()));
    }

    fn update(&self, f: impl FnOnce(&mut RepairStatus)) {
        let mut st = self
            .status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut st);
    }

    #[must_use]
    pub fn status(&self) -> RepairStatus {
        self.status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// What repairing one object did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub copied: u64,
    pub removed: u64,
}

/// What is wrong with one replica.
#[derive(Debug)]
pub enum ReplicaProblem {
    Missing,
    Corrupt(String),
    Unreachable(String),
}

impl std::fmt::Display for ReplicaProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing => write!(f, "missing"),
            Self::Corrupt(m) => write!(f, "corrupt ({m})"),
            Self::Unreachable(m) => write!(f, "unreachable ({m})"),
        }
    }
}

/// Reads a whole replica and checks it against the catalog's CRC32C (or, for blobs written
/// before CRCs were recorded, that it can be read in full).
pub async fn verify_replica(site: &Arc<dyn Site>, chunk: &Chunk) -> Result<u64, ReplicaProblem> {
    let len = match site.len(chunk.blob).await {
        Ok(n) => n,
        Err(e) if e.is_not_found() => return Err(ReplicaProblem::Missing),
        Err(e) => return Err(ReplicaProblem::Unreachable(e.to_string())),
    };
    let mut stream = match site.read(chunk.blob, 0..len).await {
        Ok(s) => s,
        Err(e) if e.is_not_found() => return Err(ReplicaProblem::Missing),
        Err(e) => return Err(ReplicaProblem::Unreachable(e.to_string())),
    };
    let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
    let mut read = 0u64;
    while let Some(part) = stream.next().await {
        let bytes = part.map_err(|e| match e {
            SiteError::Truncated { .. } => ReplicaProblem::Corrupt("truncated".into()),
            other => ReplicaProblem::Unreachable(other.to_string()),
        })?;
        read += bytes.len() as u64;
        crc.update(&bytes);
    }
    if read != len {
        return Err(ReplicaProblem::Corrupt(format!("{read} of {len} bytes")));
    }
    if let Some(want) = chunk.crc32c
        && u64::from(want) != crc.finalize()
    {
        return Err(ReplicaProblem::Corrupt("CRC32C mismatch".into()));
    }
    Ok(len)
}

/// Copies `chunk` from the first of `sources` that holds a good replica onto `target`, checking
/// the bytes against the chunk's CRC32C on the way; nothing is committed on a mismatch.
async fn copy_chunk(
    sources: &[Arc<dyn Site>],
    target: &Arc<dyn Site>,
    chunk: &Chunk,
) -> Result<(), String> {
    let mut faults = Vec::new();
    for src in sources {
        match copy_from(src, target, chunk).await {
            Ok(()) => return Ok(()),
            Err(e) => faults.push(format!("{}: {e}", src.id())),
        }
    }
    Err(format!(
        "no good replica of blob {} to copy to {} ({})",
        chunk.blob,
        target.id(),
        faults.join("; ")
    ))
}

async fn copy_from(
    src: &Arc<dyn Site>,
    target: &Arc<dyn Site>,
    chunk: &Chunk,
) -> Result<(), String> {
    let len = src.len(chunk.blob).await.map_err(|e| e.to_string())?;
    let mut stream = src
        .read(chunk.blob, 0..len)
        .await
        .map_err(|e| e.to_string())?;
    let mut writer = target.create(chunk.blob).await.map_err(|e| e.to_string())?;
    let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
    let mut copied = 0u64;
    while let Some(part) = stream.next().await {
        let bytes = part.map_err(|e| e.to_string())?;
        crc.update(&bytes);
        copied += bytes.len() as u64;
        writer.write(bytes).await.map_err(|e| e.to_string())?;
    }
    if copied != len {
        return Err(format!("read {copied} of {len} bytes"));
    }
    if let Some(want) = chunk.crc32c
        && u64::from(want) != crc.finalize()
    {
        // Dropping the writer leaves nothing under the final name.
        return Err("CRC32C mismatch: this replica is corrupt".into());
    }
    writer.commit().await.map_err(|e| e.to_string())?;
    Ok(())
}

impl Gateway {
    /// The residency policy in effect for new objects of `bucket`.
    pub async fn residency_policy(
        &self,
        tenant: &Tenant,
        bucket: &str,
    ) -> Result<Policy, CatalogError> {
        let tenant_rule = self
            .catalog
            .get_rule(&format!("tenant:{}", tenant.name))
            .await?
            .unwrap_or_default();
        let bucket_rule = self
            .catalog
            .get_rule(&format!("bucket:{bucket}"))
            .await?
            .unwrap_or_default();
        Ok(effective_policy(tenant, &tenant_rule, &bucket_rule))
    }

    #[must_use]
    pub fn repair_status(&self) -> RepairStatus {
        self.maintenance.status()
    }

    /// Starts a repair pass over every object unless one is running; returns whether it
    /// started.
    pub fn start_repair(&self, reason: &str) -> bool {
        if self.maintenance.running.swap(true, Ordering::SeqCst) {
            return false;
        }
        let reason = reason.to_owned();
        self.maintenance.update(|st| {
            *st = RepairStatus {
                state: "running",
                reason: reason.clone(),
                started_ms: now_ms(),
                scrub_checked: st.scrub_checked,
                scrub_bad: st.scrub_bad,
                scrub_repaired: st.scrub_repaired,
                ..RepairStatus::default()
            };
        });
        let gw = self.clone();
        tokio::spawn(async move {
            let result = gw.repair_pass().await;
            gw.maintenance.update(|st| {
                st.finished_ms = Some(now_ms());
                match result {
                    Ok(()) => st.state = "done",
                    Err(e) => {
                        st.state = "failed";
                        st.errors.push(e);
                    }
                }
            });
            gw.maintenance.running.store(false, Ordering::SeqCst);
            tracing::info!(status = ?gw.maintenance.status(), "repair pass finished");
        });
        true
    }

    /// Every object of every bucket, page by page.
    async fn for_each_object<F, Fut>(&self, mut f: F) -> Result<(), String>
    where
        F: FnMut(Tenant, ObjectRecord) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let tenants = self
            .catalog
            .list_tenants()
            .await
            .map_err(|e| e.to_string())?;
        for tenant in tenants {
            let buckets = self
                .catalog
                .list_buckets(&tenant.name)
                .await
                .map_err(|e| e.to_string())?;
            for b in buckets {
                let mut pages = ObjectPages::new(self.catalog.as_ref(), &b.name, PAGE);
                while let Some(page) = pages.next_page().await.map_err(|e| e.to_string())? {
                    for o in page {
                        f(tenant.clone(), o).await;
                    }
                }
            }
        }
        Ok(())
    }

    async fn repair_pass(&self) -> Result<(), String> {
        self.maintenance
            .under_replicated
            .store(false, Ordering::SeqCst);
        let mut total = 0u64;
        self.for_each_object(|_, _| {
            total += 1;
            async {}
        })
        .await?;
        self.maintenance.update(|st| st.objects_total = total);
        let mut policies: HashMap<String, Policy> = HashMap::new();
        let mut work = Vec::new();
        self.for_each_object(|t, o| {
            work.push((t, o));
            async {}
        })
        .await
        .ok();
        // Objects are handled one at a time: repair is background work and must leave the
        // sites' bandwidth to clients.
        for (tenant, o) in work {
            let policy = match policies.get(&o.bucket) {
                Some(p) => p.clone(),
                None => {
                    let p = self
                        .residency_policy(&tenant, &o.bucket)
                        .await
                        .map_err(|e| e.to_string())?;
                    policies.insert(o.bucket.clone(), p.clone());
                    p
                }
            };
            match self.repair_object(&o, &policy).await {
                Ok(out) => self.maintenance.update(|st| {
                    st.objects_done += 1;
                    st.replicas_copied += out.copied;
                    st.replicas_removed += out.removed;
                }),
                Err(e) => {
                    tracing::warn!(error = %e, "object could not be repaired");
                    self.maintenance.update(|st| {
                        st.objects_done += 1;
                        st.objects_failed += 1;
                        if st.errors.len() < MAX_ERRORS {
                            st.errors.push(e);
                        }
                    });
                }
            }
        }
        Ok(())
    }

    /// Brings one object to its policy: replicas only on active sites of allowed
    /// jurisdictions, at least `min_sites` of them. Copies first, records the new site list
    /// (only if the object is unchanged), then removes replicas from sites it left.
    pub async fn repair_object(
        &self,
        o: &ObjectRecord,
        policy: &Policy,
    ) -> Result<Outcome, String> {
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
        let keep: Vec<String> = o.sites.iter().filter(|id| ok_site(id)).cloned().collect();
        let leave: Vec<String> = o.sites.iter().filter(|id| !ok_site(id)).cloned().collect();
        let mut out = Outcome::default();
        // Replicas that are gone (deleted, a site emptied) are rewritten from another one; a
        // full check of every byte is the scrubber's job.
        for id in &keep {
            let Some(site) = self.sites.get(id) else {
                continue;
            };
            for chunk in &o.chunks {
                match site.len(chunk.blob).await {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {
                        let others: Vec<Arc<dyn Site>> = o
                            .sites
                            .iter()
                            .filter(|s| *s != id)
                            .filter_map(|s| self.sites.get(s))
                            .collect();
                        copy_chunk(&others, &site, chunk).await?;
                        out.copied += 1;
                        tracing::info!(site = %id, blob = %chunk.blob, "missing replica restored");
                    }
                    Err(e) => return Err(format!("site {id} cannot be checked: {e}")),
                }
            }
        }
        if keep.len() >= policy.min_sites && leave.is_empty() {
            return Ok(out);
        }
        let need = policy.min_sites.saturating_sub(keep.len());
        let mut candidates: Vec<&SiteInfo> = infos
            .values()
            .filter(|i| !o.sites.contains(&i.id) && ok_site(&i.id))
            .collect();
        candidates.sort_by(|a, b| a.id.cmp(&b.id));
        let targets: Vec<String> = candidates.iter().take(need).map(|i| i.id.clone()).collect();
        if keep.is_empty() && targets.is_empty() {
            return Err(format!(
                "an object has no active site in {} to hold it",
                policy.jurisdictions.join(",")
            ));
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
            for chunk in &o.chunks {
                if let Err(e) = copy_chunk(&sources, &target, chunk).await {
                    tracing::warn!(site = %target_id, error = %e, "copy for repair failed");
                    ok = false;
                    break;
                }
                out.copied += 1;
            }
            if ok {
                placed.push(target_id.clone());
            } else {
                crate::datapath::discard_blobs(
                    vec![target],
                    o.chunks.iter().map(|c| c.blob).collect(),
                );
            }
        }
        let mut new_sites = keep.clone();
        new_sites.extend(placed.iter().cloned());
        // Leave a site only if the object keeps at least as many good replicas as before,
        // never dropping below what it has: a drain with no target keeps the replica.
        let leaving: Vec<String> = if new_sites.len() >= policy.min_sites.min(o.sites.len()).max(1)
        {
            leave.clone()
        } else {
            Vec::new()
        };
        let mut recorded = new_sites.clone();
        recorded.extend(leave.iter().filter(|id| !leaving.contains(id)).cloned());
        let short = |have: usize| {
            format!(
                "an object is on {have} of the {} sites its policy requires: no other active site in {} can take a replica",
                policy.min_sites,
                policy.jurisdictions.join(",")
            )
        };
        if recorded == o.sites {
            return if new_sites.len() < policy.min_sites {
                Err(short(new_sites.len()))
            } else if targets.len() > placed.len() || !leave.is_empty() {
                Err(format!(
                    "an object could not be moved off {} ({} of {} new replicas made)",
                    leave.join(","),
                    placed.len(),
                    targets.len()
                ))
            } else {
                Ok(out)
            };
        }
        let updated = self
            .catalog
            .set_object_sites(&o.bucket, &o.key, &o.chunks, &recorded)
            .await
            .map_err(|e| e.to_string())?;
        if !updated {
            // Overwritten or deleted meanwhile: the copies are orphans now.
            let copies: Vec<Arc<dyn Site>> =
                placed.iter().filter_map(|id| self.sites.get(id)).collect();
            crate::datapath::discard_blobs(copies, o.chunks.iter().map(|c| c.blob).collect());
            return Ok(Outcome::default());
        }
        for id in &leaving {
            if let Some(site) = self.sites.get(id) {
                for chunk in &o.chunks {
                    match site.delete(chunk.blob).await {
                        Ok(()) => out.removed += 1,
                        Err(e) => {
                            tracing::warn!(site = %id, error = %e, "could not remove a moved replica; left for orphan collection")
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
            for site in broken {
                match copy_chunk(&good, &site, chunk).await {
                    Ok(()) => {
                        repaired += 1;
                        tracing::info!(site = site.id(), blob = %chunk.blob, "replica repaired");
                    }
                    Err(e) => {
                        tracing::error!(site = site.id(), error = %e, "replica could not be repaired")
                    }
                }
            }
        }
        (checked, bad, repaired)
    }

    /// Background work: objects found bad on read are scrubbed (and so repaired) at once,
    /// degraded writes start a repair pass, a draining site starts one at start-up, and the
    /// scrubber walks every replica, reading at most `scrub_bytes_per_sec` (0: no scrubbing).
    pub fn spawn_maintenance(&self, scrub_bytes_per_sec: u64, scrub_pause: Duration) {
        let rx = self
            .maintenance
            .fault_rx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(mut rx) = rx {
            let gw = self.clone();
            tokio::spawn(async move {
                while let Some((bucket, key)) = rx.recv().await {
                    if let Ok(Some(o)) = gw.catalog.get_object(&bucket, &key).await {
                        let (checked, bad, repaired) = gw.scrub_object(&o).await;
                        gw.maintenance.update(|st| {
                            st.scrub_checked += checked;
                            st.scrub_bad += bad;
                            st.scrub_repaired += repaired;
                        });
                    }
                }
            });
        }
        // Health: every few seconds each site proves it is still itself (identity in place,
        // writable); one that fails is down for placement until it passes again, and a repair
        // pass restores the redundancy its objects lost.
        let gw = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEALTH_INTERVAL).await;
                let mut went_down = false;
                for (id, site) in gw.sites.handles() {
                    let ok = match tokio::time::timeout(HEALTH_INTERVAL, site.check()).await {
                        Ok(Ok(())) => true,
                        Ok(Err(e)) => {
                            if gw.sites.is_healthy(&id) {
                                tracing::error!(site = %id, error = %e, "site failed its health check; it is down");
                            }
                            false
                        }
                        Err(_) => {
                            if gw.sites.is_healthy(&id) {
                                tracing::error!(site = %id, "site did not answer its health check; it is down");
                            }
                            false
                        }
                    };
                    if gw.sites.set_health(&id, ok) {
                        if ok {
                            tracing::info!(site = %id, "site passed its health check again");
                        } else {
                            went_down = true;
                        }
                    }
                }
                if went_down {
                    gw.start_repair("site-down");
                }
            }
        });
        let gw = self.clone();
        tokio::spawn(async move {
            if gw
                .sites
                .infos()
                .iter()
                .any(|i| i.state != SiteState::Active)
            {
                gw.start_repair("start-up");
            }
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                if gw.maintenance.under_replicated.load(Ordering::SeqCst) {
                    gw.start_repair("degraded-write");
                }
            }
        });
        if scrub_bytes_per_sec == 0 {
            return;
        }
        let gw = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(scrub_pause).await;
                let mut objects = Vec::new();
                if gw
                    .for_each_object(|_, o| {
                        objects.push(o);
                        async {}
                    })
                    .await
                    .is_err()
                {
                    continue;
                }
                for o in objects {
                    let started = std::time::Instant::now();
                    let bytes: u64 = o.size.saturating_mul(o.sites.len() as u64);
                    let (checked, bad, repaired) = gw.scrub_object(&o).await;
                    gw.maintenance.update(|st| {
                        st.scrub_checked += checked;
                        st.scrub_bad += bad;
                        st.scrub_repaired += repaired;
                    });
                    // Keep to the rate: an object of n bytes takes at least n / rate.
                    let budget = Duration::from_secs_f64(bytes as f64 / scrub_bytes_per_sec as f64);
                    if let Some(rest) = budget.checked_sub(started.elapsed()) {
                        tokio::time::sleep(rest).await;
                    }
                }
            }
        });
    }

    /// Per bucket: objects by site set, under-replicated objects, replicas outside the policy;
    /// with `verify`, every replica read and checked. Covers `tenant`, or every tenant.
    pub async fn residency_report(
        &self,
        tenant: Option<&str>,
        verify: bool,
    ) -> Result<Value, String> {
        let infos: HashMap<String, SiteInfo> = self
            .sites
            .infos()
            .into_iter()
            .map(|i| (i.id.clone(), i))
            .collect();
        let tenants = self
            .catalog
            .list_tenants()
            .await
            .map_err(|e| e.to_string())?;
        let mut report_tenants = Vec::new();
        for t in tenants {
            if tenant.is_some_and(|name| name != t.name) {
                continue;
            }
            let mut buckets = Vec::new();
            for b in self
                .catalog
                .list_buckets(&t.name)
                .await
                .map_err(|e| e.to_string())?
            {
                let policy = self
                    .residency_policy(&t, &b.name)
                    .await
                    .map_err(|e| e.to_string())?;
                let mut by_sites: BTreeMap<String, u64> = BTreeMap::new();
                let (mut objects, mut under, mut outside) = (0u64, 0u64, 0u64);
                let (mut checked, mut missing, mut corrupt, mut unreachable) =
                    (0u64, 0u64, 0u64, 0u64);
                let mut outside_sites: BTreeMap<String, u64> = BTreeMap::new();
                let mut pages = ObjectPages::new(self.catalog.as_ref(), &b.name, PAGE);
                while let Some(page) = pages.next_page().await.map_err(|e| e.to_string())? {
                    for o in &page {
                        objects += 1;
                        let mut sites = o.sites.clone();
                        sites.sort();
                        *by_sites.entry(sites.join(",")).or_default() += 1;
                        if o.sites.len() < policy.min_sites {
                            under += 1;
                        }
                        let bad: Vec<&String> = o
                            .sites
                            .iter()
                            .filter(|id| {
                                infos
                                    .get(*id)
                                    .is_none_or(|i| !policy.jurisdictions.contains(&i.jurisdiction))
                            })
                            .collect();
                        if !bad.is_empty() {
                            outside += 1;
                            for id in bad {
                                *outside_sites.entry(id.clone()).or_default() += 1;
                            }
                        }
                        if verify {
                            for chunk in &o.chunks {
                                for id in &o.sites {
                                    checked += 1;
                                    let Some(site) = self.sites.get(id) else {
                                        unreachable += 1;
                                        continue;
                                    };
                                    match verify_replica(&site, chunk).await {
                                        Ok(_) => {}
                                        Err(ReplicaProblem::Missing) => missing += 1,
                                        Err(ReplicaProblem::Corrupt(_)) => corrupt += 1,
                                        Err(ReplicaProblem::Unreachable(_)) => unreachable += 1,
                                    }
                                }
                            }
                        }
                    }
                }
                let mut entry = json!({
                    "bucket": b.name,
                    "policy": {"jurisdictions": policy.jurisdictions, "min_sites": policy.min_sites,
                               "degraded_writes": if policy.degraded_writes {"accept"} else {"refuse"}},
                    "objects": objects,
                    "objects_by_sites": by_sites,
                    "under_replicated": under,
                    "outside_policy": outside,
                    "outside_policy_sites": outside_sites,
                });
                if verify {
                    entry["verified"] = json!({"replicas_checked": checked, "missing": missing,
                                               "corrupt": corrupt, "unreachable": unreachable});
                }
                buckets.push(entry);
            }
            report_tenants.push(json!({
                "tenant": t.name,
                "jurisdictions": t.jurisdictions,
                "buckets": buckets,
            }));
        }
        let sites: Vec<Value> = {
            let mut v: Vec<&SiteInfo> = infos.values().collect();
            v.sort_by(|a, b| a.id.cmp(&b.id));
            v.iter()
                .map(|i| json!({"id": i.id, "jurisdiction": i.jurisdiction, "state": i.state.as_str()}))
                .collect()
        };
        Ok(json!({
            "generated_ms": now_ms(),
            "verified": verify,
            "sites": sites,
            "tenants": report_tenants,
        }))
    }
}

/// The tenant's policy, narrowed by the bucket's rule: fewer jurisdictions, more sites.
#[must_use]
pub fn effective_policy(
    tenant: &Tenant,
    tenant_rule: &ResidencyRule,
    bucket_rule: &ResidencyRule,
) -> Policy {
    let jurisdictions = match &bucket_rule.jurisdictions {
        Some(narrow) => tenant
            .jurisdictions
            .iter()
            .filter(|j| narrow.contains(j))
            .cloned()
            .collect(),
        None => tenant.jurisdictions.clone(),
    };
    let min_sites = tenant
        .min_sites
        .max(bucket_rule.min_sites.unwrap_or(0))
        .max(1);
    Policy {
        jurisdictions,
        min_sites: usize::try_from(min_sites).unwrap_or(usize::MAX),
        degraded_writes: tenant_rule.degraded_writes.unwrap_or(false)
            && bucket_rule.degraded_writes != Some(false),
    }
}

/// Whether objects of `catalog` would have replicas outside `allowed` (for `tenant`, or only
/// in `bucket`): returns the buckets affected with their object counts.
pub async fn replicas_outside(
    catalog: &dyn Catalog,
    sites: &[SiteInfo],
    tenant: &str,
    bucket: Option<&str>,
    allowed: &[String],
) -> Result<Vec<(String, u64)>, CatalogError> {
    let jurisdiction: HashMap<&str, &str> = sites
        .iter()
        .map(|s| (s.id.as_str(), s.jurisdiction.as_str()))
        .collect();
    let mut affected = Vec::new();
    for b in catalog.list_buckets(tenant).await? {
        if bucket.is_some_and(|name| name != b.name) {
            continue;
        }
        let mut count = 0u64;
        let mut pages = ObjectPages::new(catalog, &b.name, PAGE);
        while let Some(page) = pages.next_page().await? {
            count += page
                .iter()
                .filter(|o| {
                    o.sites.iter().any(|id| {
                        jurisdiction
                            .get(id.as_str())
                            .is_none_or(|j| !allowed.iter().any(|a| a == j))
                    })
                })
                .count() as u64;
        }
        if count > 0 {
            affected.push((b.name, count));
        }
    }
    Ok(affected)
}
