//! Orphan collection: replicas that no object or part names any more (a write or move cut
//! short), and leftovers of unfinished writes.
//!
//! It compares the catalog's references with what each site lists; it deletes blobs by their
//! opaque names and never reads them.

use crate::MaintenanceError;
use crate::sites::SiteSet;
use obhut_catalog::{Catalog, Lease};
use obhut_core::BlobId;
use std::collections::HashSet;

/// Orphans removed between two checks of the lease.
const BATCH: usize = 100;

/// Removes blobs that no object or upload refers to, and leftovers of unfinished writes.
///
/// Only safe while no write is in flight (at start-up, under the data directory lock). Under
/// a `lease`, its epoch is checked in the catalog before each batch of removals: a process
/// that lost it removes nothing more.
pub async fn collect_orphans(
    catalog: &dyn Catalog,
    sites: &SiteSet,
    lease: Option<&Lease>,
) -> Result<usize, MaintenanceError> {
    // Per replica: a blob left on a site its object no longer names (a move cut short after
    // the catalog update) is an orphan there, though the same blob lives on elsewhere.
    let referenced: HashSet<(String, BlobId)> =
        catalog.referenced_blobs().await?.into_iter().collect();
    let mut removed = 0;
    for site in &sites.all() {
        let id = site.id().to_owned();
        let failed = |source| MaintenanceError::Site {
            site: id.clone(),
            source,
        };
        if let Some(lease) = lease {
            catalog.check_lease(lease, now_ms()).await?;
        }
        site.clear_temporary().await.map_err(failed)?;
        let orphans: Vec<BlobId> = site
            .list()
            .await
            .map_err(failed)?
            .into_iter()
            .filter(|blob| !referenced.contains(&(id.clone(), *blob)))
            .collect();
        for batch in orphans.chunks(BATCH) {
            if let Some(lease) = lease {
                catalog.check_lease(lease, now_ms()).await?;
            }
            for blob in batch {
                site.delete(*blob).await.map_err(failed)?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
