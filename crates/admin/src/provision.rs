//! Creating tenants, access keys and principals: shared by the admin API and `obhut serve`'s
//! first start, so both follow the same rules.

use obhut_catalog::{AccessKey, Catalog, CatalogError, Principal, Role, Tenant};
use obhut_core::{NameError, random_token, validate_jurisdiction, validate_tenant_name};
use sha2::{Digest, Sha256};
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

/// Hex SHA-256 of a bearer token: what the catalog stores and looks tokens up by.
#[must_use]
pub fn token_hash(token: &str) -> String {
    hex_simd::encode_to_string(Sha256::digest(token.as_bytes()), hex_simd::AsciiCase::Lower)
}

pub async fn create_tenant(
    catalog: &dyn Catalog,
    name: &str,
    jurisdictions: &[String],
    min_sites: u32,
) -> Result<Tenant, ProvisionError> {
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
    let tenant = Tenant {
        name: name.to_owned(),
        jurisdictions: jurisdictions.to_vec(),
        min_sites,
        created_ms: now_ms(),
    };
    catalog.create_tenant(&tenant).await?;
    Ok(tenant)
}

/// A new S3 access key for `tenant`; the secret is returned once and stored for SigV4.
pub async fn create_access_key(
    catalog: &dyn Catalog,
    tenant: &str,
) -> Result<AccessKey, ProvisionError> {
    if catalog.get_tenant(tenant).await?.is_none() {
        return Err(CatalogError::NotFound {
            kind: "tenant",
            name: tenant.to_owned(),
        }
        .into());
    }
    let key = AccessKey {
        access_key_id: format!("OBK{}", random_token(17).to_ascii_uppercase()),
        tenant: tenant.to_owned(),
        secret: random_token(40),
        created_ms: now_ms(),
    };
    catalog.create_access_key(&key).await?;
    Ok(key)
}

/// A new principal; returns its bearer token, which is stored only as a hash.
pub async fn create_principal(
    catalog: &dyn Catalog,
    name: &str,
    role: Role,
    tenant: Option<&str>,
) -> Result<String, ProvisionError> {
    let token = format!("obt_{}", random_token(43));
    catalog
        .create_principal(&Principal {
            name: name.to_owned(),
            role,
            tenant: tenant.map(str::to_owned),
            token_hash: token_hash(&token),
            created_ms: now_ms(),
            expires_ms: None,
            revoked: false,
        })
        .await?;
    Ok(token)
}
