//! Creating tenants and access keys in the catalog: shared by the admin API and `obhut serve`'s
//! first start, so both follow the same rules.

use obhut_catalog::{Catalog, CatalogError, Tenant};
use obhut_core::{NameError, validate_jurisdiction, validate_tenant_name};
use std::time::{SystemTime, UNIX_EPOCH};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ProvisionError {
    #[error(transparent)]
    Invalid(#[from] NameError),
    #[error("min_sites must be between 1 and 16, got {0}")]
    MinSites(u32),
    #[error("a tenant needs at least one allowed jurisdiction")]
    NoJurisdiction,
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Checks a new tenant's name, jurisdictions and `min_sites`.
pub fn validate_tenant(
    name: &str,
    jurisdictions: &[String],
    min_sites: u32,
) -> Result<(), ProvisionError> {
    validate_tenant_name(name)?;
    if jurisdictions.is_empty() {
        return Err(ProvisionError::NoJurisdiction);
    }
    for j in jurisdictions {
        validate_jurisdiction(j)?;
    }
    if !(1..=16).contains(&min_sites) {
        return Err(ProvisionError::MinSites(min_sites));
    }
    Ok(())
}

pub async fn create_tenant(
    catalog: &dyn Catalog,
    name: &str,
    jurisdictions: &[String],
    min_sites: u32,
) -> Result<Tenant, ProvisionError> {
    validate_tenant(name, jurisdictions, min_sites)?;
    let tenant = Tenant {
        name: name.to_owned(),
        jurisdictions: jurisdictions.to_vec(),
        min_sites,
        created_ms: now_ms(),
    };
    catalog.create_tenant(&tenant).await?;
    Ok(tenant)
}
