//! The gateway: the S3 front and the data path from clients to the sites.
//!
//! It owns request authentication and tenant authorisation (through s3s's hooks and the
//! catalog), placement of new objects (by the trustee's residency policies, cached in
//! [`policies`]), replication of every blob to all placed sites before the
//! catalog commit that makes an object visible, and reads that fall back to another replica.
//!
//! It never holds keys above object level and never talks to a keystore directly; encryption
//! slots into [`datapath`] between the S3 front and the sites. Keeping replicas where their
//! policy wants them is obhut-maintenance's work: the gateway only tells it, through
//! [`RepairRequests`], of replicas found bad on read and of writes placed on too few sites.

mod access;
pub mod authn;
pub mod datapath;
mod error;
mod front;
pub mod health;
mod integrity;
pub mod keys;
pub mod lifecycle;
mod list;
mod meta;
pub mod policies;
mod post_form;
mod quota;
pub mod rotation;
mod s3;
mod scope;
mod shred;
pub mod upgrade;

pub use access::TenantAuth;
pub use front::S3Front;
pub use policies::TrusteePolicies;

use datapath::SiteSet;
use keys::KeyCache;
use obhut_catalog::{Catalog, Tenant};
use obhut_maintenance::{Policy, PolicyError, PolicySource, RepairRequests, Workers};
use obhut_trustee_client::TrusteeClient;
use s3s::service::S3ServiceBuilder;
use std::sync::Arc;
use std::time::Duration;

/// Applies the trustee's revocations to the key cache as they arrive. If revocations were
/// missed (the receiver lagged), every key is dropped; if the channel closes, keys still expire
/// by their TTL, which is the worst-case delay (docs/architecture.md).
/// How often expired keys are dropped from the key cache.
const KEY_SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

fn spawn_revocation_listener(
    workers: &Workers,
    mut rx: tokio::sync::broadcast::Receiver<obhut_trustee_client::Revocation>,
    keys: std::sync::Weak<KeyCache>,
) {
    use tokio::sync::broadcast::error::RecvError;
    workers.spawn("key-revocations", move |worker| async move {
        loop {
            let event = tokio::select! {
                () = worker.stopped() => return,
                event = rx.recv() => Some(event),
                // Expired keys leave memory within a second of their TTL, whether or not
                // anyone asks for them again.
                () = tokio::time::sleep(KEY_SWEEP_INTERVAL) => None,
            };
            let Some(keys) = keys.upgrade() else { return };
            let Some(event) = event else {
                keys.sweep();
                continue;
            };
            let _run = worker.run();
            match event {
                Ok(r) => {
                    tracing::info!(revocation = %logged_revocation(&r), "dropping revoked keys");
                    keys.revoke(&r);
                }
                Err(RecvError::Lagged(_)) => keys.clear(),
                Err(RecvError::Closed) => return,
            }
        }
    });
}

/// Counts a bucket key the trustee released, by the kind of its justification.
pub(crate) fn note_release(why: &obhut_trustee_client::Justification) {
    use obhut_metrics::ReleaseKind;
    use obhut_trustee_client::Justification;
    let kind = match why {
        Justification::Customer { .. } => ReleaseKind::Customer,
        Justification::Grant { .. } => ReleaseKind::Grant,
        Justification::System { .. } => ReleaseKind::System,
    };
    obhut_metrics::get().key_released(kind);
}

/// Settings of the S3 front.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The region reported by GetBucketLocation and accepted in CreateBucket.
    pub region: String,
    /// How long a released bucket key may stay in memory (DESIGN.md: at most 300 s by default).
    pub key_cache_ttl: Duration,
    /// The length of a lifecycle day and how often lifecycle rules are applied.
    pub lifecycle: lifecycle::LifecycleTiming,
    /// How long blobs that no record names any more are kept (a point-in-time restore of the
    /// catalog finds them): above zero, the blobs of deleted and overwritten objects, replaced
    /// parts and aborted uploads are left to orphan collection, which removes them after it;
    /// zero removes them at once.
    pub blob_retention: Duration,
}

/// A revocation as the process log shows it: tenants only as [`obhut_core::logged`] renders
/// them.
fn logged_revocation(r: &obhut_trustee_client::Revocation) -> String {
    use obhut_trustee_client::Revocation;
    match r {
        Revocation::All => "all".to_owned(),
        Revocation::Tenant { tenant } => format!("tenant {}", obhut_core::logged(tenant)),
        Revocation::Policy { tenant } => format!("policy of tenant {}", obhut_core::logged(tenant)),
    }
}

/// The S3 gateway over a catalog, a set of sites and the trustee.
#[derive(Clone)]
pub struct Gateway {
    catalog: Arc<dyn Catalog>,
    sites: SiteSet,
    trustee: Arc<dyn TrusteeClient>,
    keys: Arc<KeyCache>,
    config: Arc<GatewayConfig>,
    /// Where replicas found bad on read and under-replicated writes are reported.
    maintenance: Arc<RepairRequests>,
    /// The residency policies placement follows: the trustee's.
    policies: Arc<dyn PolicySource>,
    /// Whether the records of the previous release have been upgraded (`upgrade`).
    upgrade: Arc<upgrade::UpgradeState>,
    /// Integrity alarms already sent to the trustee.
    alarms: Arc<integrity::Alarms>,
    /// The process's background workers (`/readyz` shows whether they lead or stand by).
    workers: Workers,
    /// Bucket policies recently read (`scope`).
    bucket_policies: Arc<scope::PolicyCache>,
}

impl Gateway {
    /// A gateway over `sites` (shared with maintenance: changes apply at once) that reports
    /// to `repairs` and places by `policies`; its revocation listener, the upgrade of the
    /// previous release's records (`upgrade`) and the purge of shredded tenants' records
    /// (`shred`) run among `workers`.
    #[must_use]
    pub fn new(
        catalog: Arc<dyn Catalog>,
        sites: obhut_maintenance::SiteSet,
        trustee: Arc<dyn TrusteeClient>,
        config: GatewayConfig,
        repairs: Arc<RepairRequests>,
        policies: Arc<dyn PolicySource>,
        workers: &Workers,
    ) -> Self {
        let keys = Arc::new(KeyCache::new(config.key_cache_ttl));
        spawn_revocation_listener(
            workers,
            trustee.subscribe_revocations(),
            Arc::downgrade(&keys),
        );
        let gateway = Self {
            catalog,
            sites: SiteSet::from(sites),
            trustee,
            keys,
            config: Arc::new(config),
            maintenance: repairs,
            policies,
            upgrade: Arc::default(),
            alarms: Arc::default(),
            workers: workers.clone(),
            bucket_policies: Arc::default(),
        };
        gateway.spawn_upgrade(workers);
        gateway.spawn_shred_purge(workers);
        gateway.spawn_quota_reclaim(workers);
        gateway.spawn_lifecycle(workers);
        gateway
    }

    /// The residency policy in effect for new objects of `bucket`: the trustee's (the
    /// catalog's copy is only checked against it).
    pub async fn residency_policy(
        &self,
        tenant: &Tenant,
        bucket: &str,
    ) -> Result<Policy, PolicyError> {
        obhut_maintenance::residency_policy(
            self.catalog.as_ref(),
            self.policies.as_ref(),
            tenant,
            bucket,
        )
        .await
    }

    /// The hyper service answering S3 requests. Signatures are verified by the trustee in
    /// front of s3s ([`authn`]), which is given no secrets.
    #[must_use]
    pub fn into_service(self) -> S3Front {
        let access = TenantAuth::new(
            Arc::clone(&self.catalog),
            Arc::clone(&self.trustee),
            Arc::clone(&self.bucket_policies),
        );
        let trustee = Arc::clone(&self.trustee);
        let region = self.config.region.clone();
        let health = front::HealthSources {
            catalog: Arc::clone(&self.catalog),
            sites: (*self.sites).clone(),
            workers: self.workers.clone(),
        };
        let mut builder = S3ServiceBuilder::new(self);
        builder.set_auth(authn::NoSecrets);
        builder.set_access(access);
        S3Front::new(builder.build(), trustee, region, health)
    }
}
