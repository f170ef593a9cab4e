//! The trustee's interface, as every other component sees it.
//!
//! Gateways and the admin API depend on this crate, never on the trustee itself, so Cargo.toml
//! shows that they cannot reach a keystore. What crosses this interface: wrapped bucket keys
//! going in, plaintext bucket keys coming out (only for a justified, permitted request), and the
//! trustee's seal state. Tenant and master keys never cross it.

pub mod remote;
use async_trait::async_trait;
use obhut_crypto::{KCV_LEN, Key};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a key is wanted. The trustee checks it against policy before releasing anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Justification {
    /// A tenant's own request: the authenticated principal and the S3 operation.
    Customer {
        tenant: String,
        principal: String,
        operation: String,
    },
    /// Access under an approved grant.
    Grant { grant_id: String },
    /// obhut itself (repair, rotation); never a reason to read data.
    System { reason: String },
}

/// A bucket key as stored in the catalog: sealed under the tenant key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    pub version: u32,
    pub wrapped: Vec<u8>,
    pub kcv: [u8; KCV_LEN],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealStatus {
    pub sealed: bool,
    /// Distinct shares given so far while sealed.
    pub shares_given: u8,
    pub threshold: u8,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TrusteeError {
    #[error("the trustee is sealed: {0} of {1} unseal shares given")]
    Sealed(u8, u8),
    #[error("the trustee is unreachable: {0}")]
    Unavailable(String),
    #[error("key release denied: {0}")]
    Denied(String),
    #[error("the key of tenant {0} is disabled (crypto-shred pending)")]
    TenantKeyDisabled(String),
    #[error("the key of tenant {0} has been destroyed")]
    TenantKeyDestroyed(String),
    #[error("tenant {0} has no key")]
    NoTenantKey(String),
    #[error("invalid unseal share: {0}")]
    BadShare(String),
    #[error("key material failed verification: {0}")]
    Integrity(String),
    #[error("trustee storage failure: {0}")]
    Storage(String),
}

/// Keys a gateway must drop at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Revocation {
    /// Every released key (the trustee was sealed).
    All,
    /// Every key of one tenant (its key was disabled or destroyed).
    Tenant { tenant: String },
}

/// The state of a tenant's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantKeyStatus {
    /// `active`, `disabled` or `destroyed`.
    pub state: String,
    /// For a disabled key: when it will be destroyed (ms since the epoch).
    pub destroy_after_ms: Option<i64>,
}

#[async_trait]
pub trait TrusteeClient: Send + Sync {
    /// Creates the tenant's key if it has none yet.
    async fn ensure_tenant_key(&self, tenant: &str) -> Result<(), TrusteeError>;
    /// A new bucket key for `tenant`/`bucket`, sealed under the tenant key.
    async fn create_bucket_key(
        &self,
        tenant: &str,
        bucket: &str,
        version: u32,
        why: &Justification,
    ) -> Result<WrappedKey, TrusteeError>;
    /// Unwraps a bucket key for use, if `why` is permitted by policy.
    async fn release_bucket_key(
        &self,
        tenant: &str,
        bucket: &str,
        key: &WrappedKey,
        why: &Justification,
    ) -> Result<Key, TrusteeError>;
    async fn seal_status(&self) -> Result<SealStatus, TrusteeError>;
    /// Gives one unseal share.
    async fn unseal(&self, share: &str) -> Result<SealStatus, TrusteeError>;
    /// Forgets the master key at once; every gateway is told to drop its keys.
    async fn seal(&self) -> Result<SealStatus, TrusteeError>;
    /// Revocations as they happen. A receiver that lags must drop every key it holds.
    fn subscribe_revocations(&self) -> tokio::sync::broadcast::Receiver<Revocation>;

    // Crypto-shred, in two phases. Callers enforce the quorum; the trustee records and acts.
    async fn tenant_key_status(&self, tenant: &str) -> Result<TenantKeyStatus, TrusteeError>;
    /// Phase one: nothing is released for the tenant from now on; the key is destroyed at
    /// `destroy_after_ms` unless re-enabled before.
    async fn disable_tenant_key(
        &self,
        tenant: &str,
        destroy_after_ms: i64,
    ) -> Result<TenantKeyStatus, TrusteeError>;
    /// Undoes phase one, while the key still exists.
    async fn enable_tenant_key(&self, tenant: &str) -> Result<TenantKeyStatus, TrusteeError>;
    /// Phase two: the key is gone for good.
    async fn destroy_tenant_key(&self, tenant: &str) -> Result<TenantKeyStatus, TrusteeError>;
}

/// The associated data that binds a wrapped bucket key to its tenant, bucket and version.
#[must_use]
pub fn bucket_key_aad(tenant: &str, bucket: &str, version: u32) -> Vec<u8> {
    let mut aad = b"obhut bucket key v1\0".to_vec();
    aad.extend_from_slice(tenant.as_bytes());
    aad.push(0);
    aad.extend_from_slice(bucket.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}
