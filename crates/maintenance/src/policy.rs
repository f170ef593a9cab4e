//! The residency policy in effect for a bucket: its tenant's, narrowed by the bucket's own
//! rule. Placement of new objects and repair of existing ones both go by it.
//!
//! It reads policies from the catalog; it never decides one on its own.

use obhut_catalog::{Catalog, CatalogError, ResidencyRule, Tenant};

/// A bucket's residency policy in effect: its tenant's, narrowed by the bucket's own rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub jurisdictions: Vec<String>,
    pub min_sites: usize,
    pub degraded_writes: bool,
}

/// The residency policy in effect for new objects of `bucket`, owned by `tenant`.
pub async fn residency_policy(
    catalog: &dyn Catalog,
    tenant: &Tenant,
    bucket: &str,
) -> Result<Policy, CatalogError> {
    let tenant_rule = catalog
        .get_rule(&format!("tenant:{}", tenant.name))
        .await?
        .unwrap_or_default();
    let bucket_rule = catalog
        .get_rule(&format!("bucket:{bucket}"))
        .await?
        .unwrap_or_default();
    Ok(effective_policy(tenant, &tenant_rule, &bucket_rule))
}

/// The tenant's policy, narrowed by the bucket's rule: fewer jurisdictions, more sites.
#[must_use]
pub fn effective_policy(
    tenant: &Tenant,
    tenant_rule: &ResidencyRule,
    bucket_rule: &ResidencyRule,
) -> Policy {
    let jurisdictions = match &bucket_rule.jurisdictions {
        Some(narrow) => tenant
            .jurisdictions
            .iter()
            .filter(|j| narrow.contains(j))
            .cloned()
            .collect(),
        None => tenant.jurisdictions.clone(),
    };
    let min_sites = tenant
        .min_sites
        .max(bucket_rule.min_sites.unwrap_or(0))
        .max(1);
    Policy {
        jurisdictions,
        min_sites: usize::try_from(min_sites).unwrap_or(usize::MAX),
        degraded_writes: tenant_rule.degraded_writes.unwrap_or(false)
            && bucket_rule.degraded_writes != Some(false),
    }
}
