//! The residency policies placement and repair follow, as the trustee holds them: fetched
//! through the trustee client, kept in memory per tenant, and dropped when the trustee
//! announces a change ([`Revocation::Policy`]) or when its announcements may have been missed
//! ([`Revocation::All`], a lagging receiver).
//!
//! It holds policies only: never keys, object data or the catalog's copy of a policy (which
//! obhut-maintenance checks against what this answers).

use async_trait::async_trait;
use obhut_core::TenantResidency;
use obhut_maintenance::{PolicyError, PolicySource, Workers};
use obhut_trustee_client::{Revocation, TrusteeClient};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// What is cached, and a count of invalidations: an answer fetched while one happened is
/// not kept (it may predate the change).
#[derive(Default)]
struct Cache {
    policies: HashMap<String, TenantResidency>,
    generation: u64,
}

/// The trustee's residency policies, cached.
pub struct TrusteePolicies {
    trustee: Arc<dyn TrusteeClient>,
    cache: Mutex<Cache>,
}

impl TrusteePolicies {
    /// A cache in front of `trustee`, emptied by its announcements as they arrive (a listener
    /// among `workers`).
    #[must_use]
    pub fn new(trustee: Arc<dyn TrusteeClient>, workers: &Workers) -> Arc<Self> {
        let rx = trustee.subscribe_revocations();
        let this = Arc::new(Self {
            trustee,
            cache: Mutex::new(Cache::default()),
        });
        spawn_listener(workers, rx, Arc::downgrade(&this));
        this
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl PolicySource for TrusteePolicies {
    async fn tenant_residency(&self, tenant: &str) -> Result<TenantResidency, PolicyError> {
        let generation = {
            let cache = self.cache();
            if let Some(p) = cache.policies.get(tenant) {
                return Ok(p.clone());
            }
            cache.generation
        };
        let fetched =
            self.trustee
                .residency(tenant)
                .await
                .map_err(|e| PolicyError::Unavailable {
                    tenant: tenant.to_owned(),
                    reason: e.to_string(),
                })?;
        let mut cache = self.cache();
        if cache.generation == generation {
            cache.policies.insert(tenant.to_owned(), fetched.clone());
        }
        Ok(fetched)
    }

    fn invalidate(&self, tenant: Option<&str>) {
        let mut cache = self.cache();
        cache.generation += 1;
        match tenant {
            Some(t) => {
                cache.policies.remove(t);
            }
            None => cache.policies.clear(),
        }
    }
}

fn spawn_listener(
    workers: &Workers,
    mut rx: tokio::sync::broadcast::Receiver<Revocation>,
    policies: Weak<TrusteePolicies>,
) {
    use tokio::sync::broadcast::error::RecvError;
    workers.spawn("policy-changes", move |worker| async move {
        loop {
            let event = tokio::select! {
                () = worker.stopped() => return,
                event = rx.recv() => event,
            };
            let Some(policies) = policies.upgrade() else {
                return;
            };
            let _run = worker.run();
            match event {
                Ok(Revocation::Policy { tenant }) => policies.invalidate(Some(&tenant)),
                Ok(Revocation::All) | Err(RecvError::Lagged(_)) => policies.invalidate(None),
                Ok(Revocation::Tenant { .. }) => {}
                Err(RecvError::Closed) => return,
            }
        }
    });
}
