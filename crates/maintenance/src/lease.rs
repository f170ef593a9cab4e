//! The lease on a deployment's background work: gateways that share one catalog run repair,
//! scrubbing and the reclaim of expired quota holds on one gateway at a time, the holder of
//! the catalog's lease `background` (`Catalog::take_lease`).
//!
//! Each process takes or renews the lease every `renew` interval, for `ttl`. The catalog judges
//! expiry by its own clock (never a gateway's); the process counts itself the holder only
//! until `ttl` after the start of its last successful renewal, by its own monotonic clock, which
//! ends no later than the catalog's reckoning, so that it stops before another gateway may take
//! the lease over. Its workers look at [`Leadership::current`] between two pieces of work, and
//! destructive catalog batches are made under the lease's epoch (fenced), so a holder that lost
//! the lease without noticing (paused, cut off from the catalog) changes nothing there.
//!
//! It owns the lease's name, holder id and timing; it never sees what the workers work on.

use obhut_catalog::{Catalog, Lease};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The catalog's name of the lease on background work.
pub const BACKGROUND_LEASE: &str = "background";

/// How long a lease lasts unless renewed, and how often its holder renews it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    pub ttl: Duration,
    pub renew: Duration,
}

impl Default for LeaseTiming {
    /// 15 s, renewed every 5 s: a gateway that dies is replaced within 20 s.
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(15),
            renew: Duration::from_secs(5),
        }
    }
}

struct Inner {
    /// Let go of when the lease is given up for good: every worker of the process refers to
    /// this, and none may keep the catalog open after the process has stopped.
    catalog: Mutex<Option<Arc<dyn Catalog>>>,
    holder: String,
    timing: LeaseTiming,
    /// The lease held, and until when (this process's monotonic clock).
    held: Mutex<Option<(Lease, Instant)>>,
}

/// This process's side of the lease. Clones share it.
#[derive(Clone)]
pub struct Leadership {
    inner: Arc<Inner>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Leadership {
    /// The lease of `catalog` as this process (`holder`, an id unique to the process) takes it.
    #[must_use]
    pub fn new(catalog: Arc<dyn Catalog>, holder: String, timing: LeaseTiming) -> Self {
        Self {
            inner: Arc::new(Inner {
                catalog: Mutex::new(Some(catalog)),
                holder,
                timing,
                held: Mutex::new(None),
            }),
        }
    }

    /// An id for this process as a lease holder: host, process id and start time.
    #[must_use]
    pub fn process_holder_id() -> String {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        format!("{host}:{}:{}", std::process::id(), now_ms())
    }

    #[must_use]
    pub fn holder(&self) -> &str {
        &self.inner.holder
    }

    #[must_use]
    pub fn timing(&self) -> LeaseTiming {
        self.inner.timing
    }

    /// The lease, while this process holds it (by its own clock).
    #[must_use]
    pub fn current(&self) -> Option<Lease> {
        let held = self
            .inner
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match &*held {
            Some((lease, until)) if Instant::now() < *until => Some(lease.clone()),
            _ => None,
        }
    }

    /// `leader` while this process holds the lease, else `standby`.
    #[must_use]
    pub fn role(&self) -> &'static str {
        if self.current().is_some() {
            "leader"
        } else {
            "standby"
        }
    }

    /// Takes or renews the lease once; returns whether this process holds it afterwards.
    pub async fn renew(&self) -> bool {
        let Some(catalog) = self.catalog() else {
            return false;
        };
        let started = Instant::now();
        let ttl_ms = i64::try_from(self.inner.timing.ttl.as_millis()).unwrap_or(i64::MAX);
        let before = self.current().map(|l| l.epoch);
        let taken = catalog
            .take_lease(BACKGROUND_LEASE, &self.inner.holder, ttl_ms)
            .await;
        let mut held = self
            .inner
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match taken {
            Ok(Some(lease)) => {
                if before != Some(lease.epoch) {
                    tracing::info!(epoch = lease.epoch, holder = %lease.holder, "this process holds the lease on background work");
                }
                *held = Some((lease, started + self.inner.timing.ttl));
                true
            }
            Ok(None) => {
                if before.is_some() {
                    tracing::warn!(
                        "the lease on background work passed to another process; its workers stand by"
                    );
                }
                *held = None;
                false
            }
            Err(e) => {
                // Keep what is held until it lapses by this process's clock: a renewal may
                // succeed before then.
                tracing::warn!(error = %e, "the lease on background work could not be renewed");
                held.as_ref()
                    .is_some_and(|(_, until)| Instant::now() < *until)
            }
        }
    }

    /// The catalog, until the lease is given up for good ([`Leadership::release`]): a worker
    /// that takes it from here for each piece of work keeps it open no longer than that.
    pub(crate) fn catalog(&self) -> Option<Arc<dyn Catalog>> {
        self.inner
            .catalog
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Gives the lease up for good (at shutdown, once the workers are stopped), so that another
    /// process takes it at its next renewal instead of waiting for it to lapse.
    pub async fn release(&self) {
        let Some(catalog) = self
            .inner
            .catalog
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return;
        };
        let lease = self
            .inner
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((lease, _)) = lease
            && let Err(e) = catalog.release_lease(&lease).await
        {
            tracing::warn!(error = %e, "the lease on background work was not given up; it lapses by itself");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::{Duty, Workers};
    use obhut_catalog::SqliteCatalog;

    const SHORT: LeaseTiming = LeaseTiming {
        ttl: Duration::from_millis(400),
        renew: Duration::from_millis(100),
    };

    fn two_on_one_catalog() -> (Leadership, Leadership) {
        let catalog: Arc<dyn Catalog> = Arc::new(SqliteCatalog::in_memory().unwrap());
        (
            Leadership::new(Arc::clone(&catalog), "a".into(), SHORT),
            Leadership::new(catalog, "b".into(), SHORT),
        )
    }

    #[tokio::test]
    async fn one_holder_at_a_time_and_a_lapsed_holder_stands_by_by_its_own_clock() {
        let (a, b) = two_on_one_catalog();
        assert!(a.renew().await);
        assert!(!b.renew().await, "a holds it");
        assert_eq!((a.role(), b.role()), ("leader", "standby"));
        let first = a.current().unwrap();
        // a stops renewing (paused): it stops counting itself the holder when the lease
        // lapses, before b may take it.
        tokio::time::sleep(SHORT.ttl).await;
        assert_eq!(a.current(), None);
        assert!(b.renew().await);
        assert!(b.current().unwrap().epoch > first.epoch);
        assert!(!a.renew().await, "b holds it now");
        assert_eq!(a.role(), "standby");
    }

    #[tokio::test]
    async fn workers_follow_the_lease_and_hand_it_over_when_stopped() {
        let (a, b) = two_on_one_catalog();
        let (wa, wb) = (Workers::new(), Workers::new());
        assert_eq!(wa.duty(), Duty::Alone, "no lease to go by");
        assert!(a.renew().await);
        wa.lead_with(a.clone());
        wb.lead_with(b.clone());
        assert!(matches!(wa.duty(), Duty::Leader(_)));
        for _ in 0..3 {
            tokio::time::sleep(SHORT.renew).await;
            assert_eq!(
                (wa.background_role(), wb.background_role()),
                (Some("leader"), Some("standby"))
            );
        }
        // a's workers stop and it gives the lease up: b takes it at its next renewal.
        wa.stop();
        a.release().await;
        assert!(!a.renew().await, "given up for good");
        for _ in 0..50 {
            if wb.background_role() == Some("leader") {
                assert_eq!(a.current(), None);
                return;
            }
            tokio::time::sleep(SHORT.renew / 4).await;
        }
        panic!("b did not take over the lease a gave up");
    }
}
