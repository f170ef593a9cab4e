//! Orphan collection: replicas that no object or part names (a write or move cut short, a
//! gateway killed between writing a blob's replicas and committing it), and leftovers of
//! unfinished writes.
//!
//! Mark and sweep against the catalog: each site's blobs are listed with the time they were
//! written (marked), then the catalog's references are read, and a blob is swept only if no
//! record names it there and it was written longer than the grace period ago. A write in
//! flight commits its blobs within that time (a blob is listed only once its site committed
//! it, and the catalog commit follows within the request), so a blob a live upload will still
//! commit is never swept; a part already recorded is a reference like an object.
//!
//! A blob that no record names is removed only once it has been found so for the retention
//! of removed blobs, by the catalog's clock ([`Catalog::note_unreferenced`]): the blobs of
//! objects deleted or overwritten (which the gateway leaves here rather than removing them),
//! of replicas moved away and of writes that never committed all stay that long, so that a
//! catalog restored to any point within the retention (a point-in-time recovery of
//! PostgreSQL) finds every blob it names.
//!
//! Whether a blob is still unreferenced is checked again in the catalog right before it is
//! removed ([`Catalog::claim_unreferenced`]): the references were read once, earlier, and a
//! repair may since have moved an object back onto a site that still holds its retained copy.
//! The claim and such a move exclude each other in the catalog.
//!
//! It deletes blobs by their opaque names and never reads them; it never sees a key.

use crate::MaintenanceError;
use crate::sites::SiteSet;
use obhut_catalog::{Catalog, Lease};
use obhut_core::BlobId;
use std::collections::HashSet;
use std::time::{Duration, SystemTime};

/// Orphans removed per batch: the lease is checked in the catalog before each.
const BATCH: usize = 100;

/// How long blobs no record names are kept by default: 8 days, a week of point-in-time
/// recovery with a day to notice and decide.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(8 * 24 * 3600);

/// When and how carefully orphans are collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrphanCollection {
    /// A blob younger than this (by its site's clock) is never removed. It must exceed the
    /// longest time from a replica's commit on its site to the catalog commit of its write
    /// (the rest of that request), plus the skew between the sites' clocks and this host's.
    pub grace: Duration,
    /// How often the lease holder collects.
    pub every: Duration,
    /// How long a blob no record names stays after it was first found so: at least the
    /// window within which the catalog may be restored to an earlier point (zero: removed as
    /// soon as the grace allows, and then a restored catalog may name blobs that are gone).
    pub retention: Duration,
}

impl Default for OrphanCollection {
    /// A day's grace, collected every hour, removed blobs kept for [`DEFAULT_RETENTION`].
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(24 * 3600),
            every: Duration::from_secs(3600),
            retention: DEFAULT_RETENTION,
        }
    }
}

/// How a collection is fenced: under a lease, its epoch is checked in the catalog before each
/// batch of removals, and `still_held` (the process's own reckoning of the lease, by its
/// monotonic clock) before each removal, so that a process that lost the lease removes
/// nothing more.
pub struct Fence<'a> {
    pub lease: Option<&'a Lease>,
    pub still_held: &'a (dyn Fn() -> bool + Send + Sync),
}

impl Fence<'_> {
    /// Unfenced: the process is its catalog's only writer.
    pub const ALONE: Fence<'static> = Fence {
        lease: None,
        still_held: &|| true,
    };

    async fn check(&self, catalog: &dyn Catalog) -> Result<(), MaintenanceError> {
        if let Some(lease) = self.lease {
            catalog.check_lease(lease).await?;
        }
        self.check_held()
    }

    fn check_held(&self) -> Result<(), MaintenanceError> {
        if (self.still_held)() {
            Ok(())
        } else {
            Err(MaintenanceError::Standby)
        }
    }
}

/// Removes blobs that no object version or upload part names on their site, that were
/// written at least `grace` ago and that have been found so for at least `retention` (the
/// catalog's record, see the module's documentation), and leftovers of unfinished writes older
/// than `grace`; returns how many blobs it removed.
///
/// With a zero `grace` only safe while no write is in flight (at start-up, under the data
/// directory lock).
pub async fn collect_orphans(
    catalog: &dyn Catalog,
    sites: &SiteSet,
    fence: &Fence<'_>,
    grace: Duration,
    retention: Duration,
) -> Result<usize, MaintenanceError> {
    fence.check(catalog).await?;
    // Mark: what each site holds and since when, before the catalog is read, so that a write
    // that committed before a blob was listed is among the references read after.
    let now = SystemTime::now();
    let mut candidates: Vec<(std::sync::Arc<dyn obhut_sites::Site>, Vec<BlobId>)> = Vec::new();
    for site in &sites.all() {
        let id = site.id().to_owned();
        let failed = |source| MaintenanceError::Site {
            site: id.clone(),
            source,
        };
        let old: Vec<BlobId> = site
            .list_aged()
            .await
            .map_err(failed)?
            .into_iter()
            .filter(|(_, written)| now.duration_since(*written).is_ok_and(|age| age >= grace))
            .map(|(blob, _)| blob)
            .collect();
        candidates.push((std::sync::Arc::clone(site), old));
    }
    // Per replica: a blob left on a site its object no longer names (a move cut short after
    // the catalog update) is an orphan there, though the same blob lives on elsewhere.
    let referenced: HashSet<(String, BlobId)> =
        catalog.referenced_blobs().await?.into_iter().collect();
    let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    // Sweep.
    let mut removed = 0;
    for (site, old) in candidates {
        let id = site.id().to_owned();
        let failed = |source| MaintenanceError::Site {
            site: id.clone(),
            source,
        };
        fence.check(catalog).await?;
        site.clear_temporary_older_than(grace)
            .await
            .map_err(failed)?;
        let unreferenced: Vec<BlobId> = old
            .into_iter()
            .filter(|blob| !referenced.contains(&(id.clone(), *blob)))
            .collect();
        // Since when each has been found so (the catalog's clock): only those found so for
        // the retention go.
        let (catalog_now, since) = catalog.note_unreferenced(&id, &unreferenced).await?;
        let orphans: Vec<(BlobId, i64)> = since
            .into_iter()
            .filter(|(_, first)| catalog_now.saturating_sub(*first) >= retention_ms)
            .collect();
        let kept = unreferenced.len() - orphans.len();
        if kept > 0 {
            tracing::debug!(site = %id, kept, "unreferenced blobs kept for the retention of removed blobs");
        }
        let mut here = 0;
        for batch in orphans.chunks(BATCH) {
            fence.check_held()?;
            // Checked again at removal time, in the catalog (under the lease): a blob named
            // again since it was found (a repair that moved its object back onto this site,
            // where the retained copy lay) is not claimed, and a move that would name a
            // claimed one is refused until it is gone.
            let claimed = catalog.claim_unreferenced(fence.lease, &id, batch).await?;
            let skipped = batch.len() - claimed.len();
            if skipped > 0 {
                tracing::info!(site = %id, skipped, "unreferenced blobs named again before their removal; kept");
            }
            let mut gone = Vec::with_capacity(claimed.len());
            for blob in claimed {
                fence.check_held()?;
                site.delete(blob).await.map_err(failed)?;
                gone.push(blob);
                here += 1;
            }
            // Claims left by a removal cut short are settled by the next collection.
            catalog.forget_unreferenced(&id, &gone).await?;
        }
        if here > 0 {
            tracing::info!(site = %id, removed = here, "orphan blobs removed");
        }
        removed += here;
    }
    Ok(removed)
}
