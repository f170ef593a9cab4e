//! The gateway: the S3 front and the data path from clients to the sites.
//!
//! It owns request authentication and tenant authorisation (through s3s's hooks and the
//! catalog), placement of new objects, replication of every blob to all placed sites before the
//! catalog commit that makes an object visible, and reads that fall back to another replica.
//!
//! It never holds keys above object level and never talks to a keystore directly; encryption
//! slots into [`datapath`] between the S3 front and the sites.

mod access;
pub mod datapath;
mod error;
mod front;
pub mod keys;
mod list;
mod meta;
pub mod registry;
pub mod repair;
pub mod rotation;
mod s3;

pub use access::TenantAuth;
pub use datapath::SiteSet;
pub use front::S3Front;

use keys::KeyCache;
use obhut_catalog::Catalog;
use obhut_trustee_client::TrusteeClient;
use s3s::service::S3ServiceBuilder;
use std::sync::Arc;
use std::time::Duration;

/// Applies the trustee's revocations to the key cache as they arrive. If revocations were
/// missed (the receiver lagged), every key is dropped; if the channel closes, keys still expire
/// by their TTL, which is the worst-case delay (docs/architecture.md).
fn spawn_revocation_listener(
    mut rx: tokio::sync::broadcast::Receiver<obhut_trustee_client::Revocation>,
    keys: std::sync::Weak<KeyCache>,
) {
    use tokio::sync::broadcast::error::RecvError;
    tokio::spawn(async move {
        loop {
            let event = rx.recv().await;
            let Some(keys) = keys.upgrade() else { return };
            match event {
                Ok(r) => {
                    tracing::info!(revocation = ?r, "dropping revoked keys");
                    keys.revoke(&r);
                }
                Err(RecvError::Lagged(_)) => keys.clear(),
                Err(RecvError::Closed) => return,
            }
        }
    });
}

/// Settings of the S3 front.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The region reported by GetBucketLocation and accepted in CreateBucket.
    pub region: String,
    /// How long a released bucket key may stay in memory (DESIGN.md: at most 300 s by default).
    pub key_cache_ttl: Duration,
}

/// The S3 gateway over a catalog, a set of sites and the trustee.
#[derive(Clone)]
pub struct Gateway {
    catalog: Arc<dyn Catalog>,
    sites: SiteSet,
    trustee: Arc<dyn TrusteeClient>,
    keys: Arc<KeyCache>,
    config: Arc<GatewayConfig>,
    maintenance: Arc<repair::Maintenance>,
}

impl Gateway {
    #[must_use]
    pub fn new(
        catalog: Arc<dyn Catalog>,
        sites: SiteSet,
        trustee: Arc<dyn TrusteeClient>,
        config: GatewayConfig,
    ) -> Self {
        let keys = Arc::new(KeyCache::new(config.key_cache_ttl));
        spawn_revocation_listener(trustee.subscribe_revocations(), Arc::downgrade(&keys));
        Self {
            catalog,
            sites,
            trustee,
            keys,
            config: Arc::new(config),
            maintenance: Arc::new(repair::Maintenance::default()),
        }
    }

    /// The sites this gateway writes to and reads from (shared: changes apply at once).
    #[must_use]
    pub fn sites(&self) -> &SiteSet {
        &self.sites
    }

    /// The hyper service answering S3 requests, with SigV4 authentication against the catalog.
    #[must_use]
    pub fn into_service(self) -> S3Front {
        let auth = TenantAuth::new(Arc::clone(&self.catalog), Arc::clone(&self.trustee));
        let mut builder = S3ServiceBuilder::new(self);
        builder.set_auth(auth.clone());
        builder.set_access(auth);
        S3Front::new(builder.build())
    }

    /// Each site's space, or why it could not be read.
    pub async fn site_capacity(
        &self,
    ) -> Vec<(
        obhut_core::SiteInfo,
        Result<Option<obhut_sites::Capacity>, String>,
    )> {
        let mut out = Vec::new();
        for info in self.sites.infos() {
            let cap = match self.sites.get(&info.id) {
                Some(site) => site.capacity().await.map_err(|e| e.to_string()),
                None => Err("not open".to_owned()),
            };
            out.push((info, cap));
        }
        out
    }

    /// Removes blobs that no object or upload refers to, and leftovers of unfinished writes.
    ///
    /// Only safe while no write is in flight (at start-up, under the data directory lock).
    pub async fn collect_orphans(&self) -> Result<usize, String> {
        datapath::collect_orphans(self.catalog.as_ref(), &self.sites).await
    }
}
