//! The trustee's interface, as every other component sees it.
//!
//! Gateways and the admin API depend on this crate, never on the trustee itself, so Cargo.toml
//! shows that they cannot reach a keystore. What crosses this interface: wrapped bucket keys
//! going in, plaintext bucket keys coming out (only for a justified, permitted request), and the
//! trustee's seal state. Tenant and master keys never cross it.

pub mod auth;
pub mod governance;
pub mod log_entry;
pub mod object_keys;
pub mod object_lock;
pub mod remote;
pub mod views;
use async_trait::async_trait;
use obhut_core::TenantResidency;
use obhut_crypto::{KCV_LEN, Key};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use governance::{
    Action, CustomerApproval, DegradedWrites, GrantAccess, GrantScope, LogRead, MAX_LOG_ENTRIES,
    PrincipalInfo, Query, Role, ShredMode, SignedStatement, Statement,
};
pub use log_entry::{LogEntry, LogEvent, ParsedEntry};

/// Why a key is wanted. The trustee checks it against policy before releasing anything.
// The customer's variant carries its request's ticket inline: justifications are made once
// per request and passed by reference, so boxing it would buy nothing but an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Justification {
    /// A tenant's own request: the authenticated principal, the S3 operation, and the
    /// trustee's ticket for the signed request it serves (without one, nothing is released).
    Customer {
        tenant: String,
        principal: String,
        operation: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<auth::RequestTicket>,
    },
    /// Access under an approved grant.
    Grant { grant_id: String },
    /// obhut itself (repair, rotation); never a reason to read data.
    System { reason: String },
}

/// A catalog record a gateway refused to serve because it failed its integrity check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrityAlarm {
    pub tenant: String,
    pub bucket: String,
    /// The object name the record is filed under.
    pub key: String,
    /// The multipart upload, for an upload's record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<String>,
    /// What failed (e.g. "the object key is not bound to this name").
    pub reason: String,
}

/// The one `System` reason for which the trustee releases a bucket key: the gateway's one-time
/// upgrade of the records an earlier release wrote (binding object keys to their names,
/// sealing ETags; docs/format.md, section 7). Every such release is logged like any other.
pub const FORMAT_UPGRADE_REASON: &str =
    "format upgrade: bind object keys to their names, seal ETags";

/// The `System` reason for which the trustee releases a bucket key (or, for a tenant whose keys
/// are opened per object, object keys) to apply a tenant's own lifecycle rules that filter by
/// object tag: the tags are sealed in each version's metadata, so the lifecycle worker must
/// open it to tell whether a rule applies (docs/s3-compatibility.md, "Lifecycle"). Every such
/// release is logged like any other; the trustee grants it only to a gateway in its own
/// process (`obhut serve`).
pub const LIFECYCLE_TAGS_REASON: &str =
    "lifecycle: read object tags for the tenant's own tag-filtered rules";

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
    /// Officers have disconnected the provider (`obhut trustee disconnect`): nothing is
    /// released and no request is verified until a quorum reconnects it. Absent (false) in
    /// answers of releases before the disconnect existed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disconnected: bool,
}

/// The trustee's key for unseal shares (and PKCS#11 PINs): a share is encrypted to it on the
/// officer's machine ([`obhut_crypto::unseal`]), for this identity and seal epoch, so that
/// whatever relays it sees only ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsealKey {
    /// X25519 public key, hex.
    pub public_key: String,
    /// The trustee's name (its log's origin), bound into every ciphertext.
    pub identity: String,
    /// The current seal epoch: a share sealed for it opens only until the trustee is next
    /// sealed or unsealed.
    pub epoch: String,
}

/// One unseal share (or PIN) encrypted to the trustee's [`UnsealKey`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedShare {
    pub epoch: String,
    /// The HPKE encapsulated key, base64.
    pub enc: String,
    /// base64.
    pub ciphertext: String,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TrusteeError {
    #[error("the trustee is sealed: {0} of {1} unseal shares given")]
    Sealed(u8, u8),
    #[error("the trustee is unreachable: {0}")]
    Unavailable(String),
    #[error("denied: {0}")]
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
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the request's signature was not accepted: {}", .0.name())]
    Unauthenticated(auth::AuthFailure),
    /// The tenant's policy is `key_release = per-object`: its bucket keys are not released;
    /// ask for object keys ([`TrusteeClient::object_keys`]).
    #[error("tenant {0} releases object keys only (key_release = per-object)")]
    ObjectKeysOnly(String),
    /// A quorum of officers has disconnected the provider (`obhut trustee disconnect`): the
    /// trustee releases no key and verifies no request until a quorum reconnects it.
    #[error("the provider is disconnected: {0}")]
    Disconnected(String),
}

/// What a gateway must drop from its memory at once: released keys, and cached residency
/// policies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Revocation {
    /// Every released key and every cached policy (the trustee was sealed, restarted or
    /// cannot be reached).
    All,
    /// Every key of one tenant (its key was disabled or destroyed).
    Tenant { tenant: String },
    /// The cached residency policy of one tenant (it or one of its buckets' changed); no key.
    Policy { tenant: String },
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
    /// Opens or wraps object keys of `bucket` (whose key version is `bucket_key`) for `why`,
    /// inside the trustee: the bucket key never leaves it. Each op must be for a name the
    /// verified request behind `why` names (or, for ETags, lists); the answers come back in
    /// order, and only after one durable log entry records the request (entries of requests
    /// served together are written in one group commit).
    async fn object_keys(
        &self,
        tenant: &str,
        bucket: &str,
        bucket_key: &WrappedKey,
        why: &Justification,
        ops: Vec<object_keys::ObjectKeyOp>,
    ) -> Result<Vec<object_keys::ObjectKeyOutcome>, TrusteeError>;
    /// Rewraps object keys of `bucket` from bucket key version `from` to `to` inside the
    /// trustee (a rotation of a tenant whose keys are released per object, for its admin's
    /// signed rotation statement): answers [`object_keys::ObjectKeyOutcome::Wrapped`] or
    /// `Refused` per key, in order.
    async fn rewrap_object_keys(
        &self,
        tenant: &str,
        bucket: &str,
        from: &WrappedKey,
        to: &WrappedKey,
        why: &Justification,
        keys: Vec<object_keys::SealedObjectKey>,
    ) -> Result<Vec<object_keys::ObjectKeyOutcome>, TrusteeError>;
    async fn seal_status(&self) -> Result<SealStatus, TrusteeError>;
    /// Gives one unseal share in clear: only where it is already at hand in the trustee's own
    /// process (a development share file, a PIN file). A remote trustee refuses this.
    async fn unseal(&self, share: &str) -> Result<SealStatus, TrusteeError>;
    /// The key and seal epoch unseal shares are encrypted to.
    async fn unseal_key(&self) -> Result<UnsealKey, TrusteeError>;
    /// Gives one unseal share (or PIN) encrypted on the officer's machine.
    async fn unseal_sealed(&self, sealed: &SealedShare) -> Result<SealStatus, TrusteeError>;
    /// Forgets the master key at once; every gateway is told to drop its keys.
    async fn seal(&self) -> Result<SealStatus, TrusteeError>;
    /// Revocations as they happen. A receiver that lags must drop every key it holds.
    fn subscribe_revocations(&self) -> tokio::sync::broadcast::Receiver<Revocation>;

    /// The state of a tenant's key (crypto-shred is a signed [`governance::Action::Shred`]).
    async fn tenant_key_status(&self, tenant: &str) -> Result<TenantKeyStatus, TrusteeError>;
    /// The tenant's residency policy and its buckets' narrowings: the record that decides
    /// where its data may go (the catalog keeps only a checked copy). A change is announced
    /// as [`Revocation::Policy`].
    async fn residency(&self, tenant: &str) -> Result<TenantResidency, TrusteeError>;

    // Governance: principals, grants, disclosures, the transparency log.
    /// The principal whose bearer hashes to `bearer_hash`, if it exists (revoked and expired
    /// principals are returned too, so the caller can say why it refuses them).
    async fn authenticate(&self, bearer_hash: &str) -> Result<Option<PrincipalInfo>, TrusteeError>;
    /// Carries out a signed statement after checking its signature, its signer's role and the
    /// quorum rules; returns what changed, as JSON.
    async fn act(&self, signed: &SignedStatement) -> Result<serde_json::Value, TrusteeError>;
    /// Governance state as `principal` may see it.
    async fn query(
        &self,
        principal: &str,
        query: &Query,
    ) -> Result<serde_json::Value, TrusteeError>;
    /// The log's checkpoint, verifier key or a tile; `None` if it does not exist (yet).
    async fn log_read(&self, read: &LogRead) -> Result<Option<Vec<u8>>, TrusteeError>;
    /// Checks a request's SigV4 signature with the secret only the trustee holds (tenants'
    /// access keys and grants' temporary ones), the request time against the trustee's clock
    /// and the region; answers who signed it. Appends nothing to the log.
    async fn verify_request(
        &self,
        request: &auth::SignedRequest,
    ) -> Result<auth::Verified, TrusteeError>;
    /// Checks a browser form upload (POST Object): its signature over its policy document
    /// with the secret only the trustee holds, then the policy's expiry (against the
    /// trustee's clock) and conditions (against the form's fields, bucket and key); answers
    /// who signed it, with a ticket for writing that one key. The file's size
    /// (`content-length-range`) is the gateway's to enforce. Appends nothing to the log.
    async fn verify_post(&self, post: &auth::SignedPost) -> Result<auth::Verified, TrusteeError>;
    /// Checks a batch of a streaming upload's chunk signatures (and, in the last batch, its
    /// trailer); answers where the chain now stands.
    async fn verify_chunks(
        &self,
        batch: &auth::ChunkBatch,
    ) -> Result<auth::ChainToken, TrusteeError>;
    /// Seals an S3 site's secret key for the catalog (it is never stored in clear).
    async fn seal_site_secret(&self, site: &str, secret: &str) -> Result<String, TrusteeError>;
    /// Opens a sealed site secret, for a gateway that must reach the site.
    async fn open_site_secret(&self, site: &str, sealed: &str) -> Result<String, TrusteeError>;
    /// Logs `digest` (hex SHA-256 of a report about `tenant`, or all tenants) and returns the
    /// log index and a note signed with the log's key that binds the two.
    async fn attest(
        &self,
        kind: &str,
        tenant: Option<&str>,
        digest: &str,
    ) -> Result<serde_json::Value, TrusteeError>;
    /// Checks one S3 request made with grant credentials against the grant, and logs it before
    /// answering: an access that is not in the log is refused.
    async fn authorize_grant_access(
        &self,
        access: &GrantAccess,
    ) -> Result<GrantScope, TrusteeError>;
    /// Appends an `integrity_alarm` entry to the log: a gateway found `alarm`'s record failing
    /// its integrity check and served nothing from it. Returns the entry's log index.
    async fn report_integrity(&self, alarm: &IntegrityAlarm) -> Result<u64, TrusteeError>;
    /// Seals a version's object lock record, if the change is allowed after the record it
    /// replaces, judged on the trustee's clock (`Denied` otherwise); a record that locks or
    /// unlocks is appended to the log first.
    async fn seal_lock(
        &self,
        seal: &object_lock::LockSeal,
    ) -> Result<object_lock::LockAnswer, TrusteeError>;
    /// Opens a stored object lock record: `Integrity` if it is not the trustee's seal for that
    /// version. Answers the trustee's clock with it.
    async fn open_lock(
        &self,
        open: &object_lock::LockOpen,
    ) -> Result<object_lock::LockAnswer, TrusteeError>;
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
