//! Orphan collection: replicas that no object or part names any more (a write or move cut
//! short), and leftovers of unfinished writes.
//!
//! It compares the catalog's references with what each site lists; it deletes blobs by their
//! opaque names and never reads them.

use crate::MaintenanceError;
use crate::sites::SiteSet;
use obhut_catalog::Catalog;
use obhut_core::BlobId;
use std::collections::HashSet;

/// Removes blobs that no object or upload refers to, and leftovers of unfinished writes.
///
/// Only safe while no write is in flight (at start-up, under the data directory lock).
pub async fn collect_orphans(
    catalog: &dyn Catalog,
    sites: &SiteSet,
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
        site.clear_temporary().await.map_err(failed)?;
        for blob in site.list().await.map_err(failed)? {
            if !referenced.contains(&(id.clone(), blob)) {
                site.delete(blob).await.map_err(failed)?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}
