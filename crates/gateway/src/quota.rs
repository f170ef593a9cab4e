//! Quotas on the data path: a write holds its share of its tenant's and bucket's quotas from
//! before its data is written until the commit that records it (docs/quotas.md).
//!
//! A [`Hold`] is taken with the size the request declares (Content-Length, a part's size, a
//! copy's source size) and handed to the catalog's commit, which drops it and counts the real
//! size in the same transaction. A write that fails on the way drops its hold ([`Drop`]); one
//! whose gateway dies leaves it to expire, and the reclaim pass here removes it. So nothing is
//! written that the quota has no room for, and a refused write leaves nothing behind: it is
//! refused before its first byte reaches a site.

use crate::access::ReqCtx;
use crate::{Gateway, error};
use obhut_catalog::{Catalog, Reservation};
use s3s::S3Result;
use std::sync::Arc;
use std::time::Duration;

/// How long a hold lasts at least; longer by [`HOLD_PER_MIB`] for each MiB it holds, so that a
/// slow large upload keeps its hold until it commits. A gateway that died leaves its holds to
/// expire after this.
const HOLD_BASE: Duration = Duration::from_secs(15 * 60);
/// Extra lifetime of a hold per MiB (a client sending 1 MiB/s or more commits in time).
const HOLD_PER_MIB: Duration = Duration::from_secs(1);
/// The longest a hold lasts.
const HOLD_MAX: Duration = Duration::from_secs(24 * 3600);
/// The size held for a body whose length is not declared: S3's largest single PUT.
pub(crate) const UNDECLARED_BYTES: u64 = crate::front::MAX_SINGLE_PUT_BYTES;
/// How often expired holds are removed.
const RECLAIM_EVERY: Duration = Duration::from_secs(60);

/// A write's hold on quota: released when dropped unless the commit settled it.
pub(crate) struct Hold {
    catalog: Arc<dyn Catalog>,
    id: Option<String>,
}

impl Hold {
    /// The reservation the commit settles (`None`: no quota applied).
    pub(crate) fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The commit dropped the reservation: nothing is left to release.
    pub(crate) fn settled(mut self) {
        self.id = None;
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let catalog = Arc::clone(&self.catalog);
            // Dropped on a failed write: release now rather than at expiry. If this fails, the
            // hold expires.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if let Err(e) = catalog.release(&id).await {
                        tracing::warn!(error = %e, "a quota reservation was not released; it expires");
                    }
                });
            }
        }
    }
}

fn lifetime(bytes: u64) -> Duration {
    HOLD_BASE
        .saturating_add(HOLD_PER_MIB.saturating_mul(u32::try_from(bytes >> 20).unwrap_or(u32::MAX)))
        .min(HOLD_MAX)
}

impl Gateway {
    /// Holds `bytes` and `objects` of the request's tenant's and bucket's quotas for a write
    /// of `key` (`None` for a part), or refuses the write with `QuotaExceeded`.
    pub(crate) async fn hold_quota(
        &self,
        ctx: &ReqCtx,
        key: Option<&str>,
        bytes: u64,
        objects: u64,
    ) -> S3Result<Hold> {
        let bucket = ctx.bucket()?.name.clone();
        let now = crate::s3::now_ms();
        let expires_ms =
            now.saturating_add(i64::try_from(lifetime(bytes).as_millis()).unwrap_or(i64::MAX));
        let r = Reservation {
            id: obhut_core::random_token(24),
            tenant: ctx.tenant.name.clone(),
            bucket,
            key: key.map(str::to_owned),
            bytes,
            objects,
            expires_ms,
        };
        let held = self
            .catalog
            .reserve(&r, now)
            .await
            .map_err(error::catalog)?;
        Ok(Hold {
            catalog: Arc::clone(&self.catalog),
            id: held.then_some(r.id),
        })
    }

    /// Removes expired holds (of gateways that died mid-write) every [`RECLAIM_EVERY`].
    pub(crate) fn spawn_quota_reclaim(&self, workers: &obhut_maintenance::Workers) {
        let catalog = Arc::clone(&self.catalog);
        workers.spawn("quota-reclaim", move |worker| async move {
            loop {
                tokio::select! {
                    () = worker.stopped() => return,
                    () = tokio::time::sleep(RECLAIM_EVERY) => {}
                }
                // A fenced batch where gateways share the catalog: only under the lease.
                let now = crate::s3::now_ms();
                let reclaimed = match worker.duty() {
                    obhut_maintenance::Duty::Standby => continue,
                    obhut_maintenance::Duty::Alone => {
                        let _run = worker.run();
                        catalog.reclaim_reservations(now).await
                    }
                    obhut_maintenance::Duty::Leader(lease) => {
                        let _run = worker.run();
                        catalog.reclaim_reservations_fenced(&lease, now).await
                    }
                };
                match reclaimed {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(reservations = n, "expired quota reservations reclaimed")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "expired quota reservations were not reclaimed")
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_last_longer_for_more_bytes_up_to_a_day() {
        assert_eq!(lifetime(0), HOLD_BASE);
        assert_eq!(lifetime(600 << 20), HOLD_BASE + Duration::from_secs(600));
        assert_eq!(lifetime(u64::MAX), HOLD_MAX);
    }
}
