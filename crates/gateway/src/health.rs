//! The readiness of this process's S3 front: whether the trustee answers and is unsealed and
//! whether the catalog answers, with the sites' states for operators (`/readyz`). It reads
//! states only, never what a tenant stores.

use obhut_catalog::Catalog;
use obhut_maintenance::SiteSet;
use obhut_metrics::{Readiness, SiteHealth, TrusteeState};
use obhut_trustee_client::TrusteeClient;
use std::time::Duration;

/// How long a readiness check waits for the trustee and for the catalog.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The trustee's state: unsealed, sealed, disconnected by its officers, or not answering
/// within [`CHECK_TIMEOUT`].
pub async fn trustee_state(trustee: &dyn TrusteeClient) -> TrusteeState {
    match tokio::time::timeout(CHECK_TIMEOUT, trustee.seal_status()).await {
        Ok(Ok(s)) if s.sealed => TrusteeState::Sealed,
        Ok(Ok(s)) if s.disconnected => TrusteeState::Disconnected,
        Ok(Ok(_)) => TrusteeState::Unsealed,
        _ => TrusteeState::Unreachable,
    }
}

/// Whether the catalog answers a query within [`CHECK_TIMEOUT`].
pub async fn catalog_answers(catalog: &dyn Catalog) -> bool {
    matches!(
        tokio::time::timeout(CHECK_TIMEOUT, catalog.list_sites()).await,
        Ok(Ok(_))
    )
}

/// Each site's id and state as this process sees it.
#[must_use]
pub fn sites(sites: &SiteSet) -> Vec<SiteHealth> {
    sites
        .infos()
        .into_iter()
        .map(|i| SiteHealth {
            id: i.id,
            state: i.state.as_str(),
        })
        .collect()
}

/// The readiness of a process with this trustee, catalog and sites.
pub async fn readiness(
    trustee: &dyn TrusteeClient,
    catalog: &dyn Catalog,
    site_set: &SiteSet,
    background: Option<&'static str>,
) -> Readiness {
    let (trustee, catalog_ok) = tokio::join!(trustee_state(trustee), catalog_answers(catalog));
    Readiness {
        trustee,
        catalog_ok,
        sites: sites(site_set),
        background,
    }
}
