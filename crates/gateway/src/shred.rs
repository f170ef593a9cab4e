//! After a crypto-shred: the records of a tenant whose key is destroyed are purged from the
//! catalog, and their blobs from the sites.
//!
//! Once the tenant key is destroyed nothing can open those records' keys, ETags or metadata,
//! but object names, sizes and times would stay in the catalog in clear. The worker
//! `shred-purge` removes them when the trustee announces the tenant's revocation (a key
//! disabled or destroyed) and finds the key destroyed, and at every start for every tenant
//! whose key is destroyed (a grace period may have ended while no gateway ran). A disabled key
//! (a shred still inside its grace period, which may be cancelled) purges nothing. Buckets stay,
//! empty, so that their names are not taken by another tenant; S3 answers for them with
//! AccessDenied (docs/governance.md, "What the catalog cannot do").
//!
//! It owns no keys: it needs none.

use crate::Gateway;
use obhut_catalog::VersionPages;
use obhut_trustee_client::Revocation;
use tokio::sync::broadcast::error::RecvError;

/// Records removed per catalog query.
const PAGE: usize = 500;

impl Gateway {
    /// Starts the worker `shred-purge` (see the module doc).
    pub(crate) fn spawn_shred_purge(&self, workers: &obhut_maintenance::Workers) {
        let gw = self.clone();
        let mut rx = self.trustee.subscribe_revocations();
        workers.spawn("shred-purge", move |worker| async move {
            {
                let _run = worker.run();
                gw.purge_destroyed_tenants().await;
            }
            loop {
                let event = tokio::select! {
                    () = worker.stopped() => return,
                    event = rx.recv() => event,
                };
                let _run = worker.run();
                match event {
                    Ok(Revocation::Tenant { tenant }) => {
                        if let Err(e) = gw.purge_if_destroyed(&tenant).await {
                            tracing::warn!(tenant = %obhut_core::logged(&tenant), error = %e, "the records of a shredded tenant were not purged; tried again at the next start");
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => gw.purge_destroyed_tenants().await,
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }

    async fn purge_destroyed_tenants(&self) {
        let tenants = match self.catalog.list_tenants().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list tenants to purge shredded ones");
                return;
            }
        };
        for t in tenants {
            if let Err(e) = self.purge_if_destroyed(&t.name).await {
                tracing::warn!(tenant = %obhut_core::logged(&t.name), error = %e, "the records of a shredded tenant were not purged; tried again at the next start");
            }
        }
    }

    /// Removes every object and upload record of `tenant`, and their blobs, if the trustee says
    /// its key is destroyed; returns how many records went.
    pub async fn purge_if_destroyed(&self, tenant: &str) -> Result<u64, String> {
        let status = self
            .trustee
            .tenant_key_status(tenant)
            .await
            .map_err(|e| e.to_string())?;
        if status.state != "destroyed" {
            return Ok(0);
        }
        let mut purged = 0u64;
        for bucket in self
            .catalog
            .list_buckets(tenant)
            .await
            .map_err(|e| e.to_string())?
        {
            // Every version, noncurrent ones and delete markers too, from the start each time
            // (what was purged is gone).
            loop {
                let page = VersionPages::new(self.catalog.as_ref(), &bucket, PAGE)
                    .next_page()
                    .await
                    .map_err(|e| e.to_string())?
                    .unwrap_or_default();
                if page.is_empty() {
                    break;
                }
                for v in page {
                    let removed = match self
                        .catalog
                        .delete_object_version(
                            &bucket,
                            &v.object.key,
                            v.object.version_id.as_deref(),
                        )
                        .await
                    {
                        // Deleted meanwhile: the next page finds nothing.
                        Err(e) if e.is_bucket_gone() => None,
                        other => other.map_err(|e| e.to_string())?,
                    };
                    if let Some(old) = removed.filter(|r| !r.delete_marker) {
                        self.discard_object(old.object);
                        purged += 1;
                    }
                }
            }
            loop {
                let uploads = match self.catalog.list_uploads(&bucket, "", None, PAGE).await {
                    // Deleted meanwhile: its uploads went with it.
                    Err(e) if e.is_bucket_gone() => Vec::new(),
                    other => other.map_err(|e| e.to_string())?,
                };
                if uploads.is_empty() {
                    break;
                }
                for u in uploads {
                    let parts = self
                        .catalog
                        .abort_upload(&u.upload_id)
                        .await
                        .map_err(|e| e.to_string())?;
                    self.discard_parts(parts);
                    purged += 1;
                }
            }
        }
        if purged > 0 {
            tracing::warn!(
                tenant = %obhut_core::logged(tenant),
                records = purged,
                "the tenant's key is destroyed: its object and upload records were purged from the catalog"
            );
        }
        Ok(purged)
    }
}
