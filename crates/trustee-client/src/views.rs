//! What the trustee answers about governance state, as the admin API passes it on and the CLI
//! reads it: grants, grant credentials, disclosure requests, tenant policies and crypto-shred
//! progress. Field names are the JSON on the wire, which scripts and tests parse: they do not
//! change.
//!
//! Views carry no secret but the one a requester asked for (its grant credentials); never
//! bearer hashes, signatures or keys.

use crate::governance::{CustomerApproval, DegradedWrites, Role};
use serde::{Deserialize, Serialize};

/// A grant as its requester, its tenant's admin, officers and auditors see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantView {
    pub id: String,
    pub tenant: String,
    pub bucket: String,
    pub prefix: String,
    pub ops: Vec<String>,
    pub duration_ms: i64,
    pub reason: String,
    pub requester: String,
    pub requested_ms: i64,
    /// `pending`, `approved`, `denied`, `revoked`, `lapsed` or `expired`.
    pub state: String,
    pub approvals: Vec<ApprovalView>,
    /// Whether the tenant's admin must approve too.
    pub customer_approval: bool,
    pub approved_ms: Option<i64>,
    pub expires_ms: Option<i64>,
    pub ended_by: Option<String>,
    /// What an approval signs ([`crate::governance::grant_scope_digest`]).
    pub scope_digest: String,
    /// For a pending grant: how far its approval is (`pending: 1 of 2 officers, ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
}

/// One approval of a grant (its signed statement stays in the trustee and the log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalView {
    pub principal: String,
    pub role: Role,
    pub at_ms: i64,
}

/// Temporary S3 credentials for an approved grant, for its requester only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantCredentialsView {
    pub grant: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expires_ms: Option<i64>,
    pub tenant: String,
    pub bucket: String,
    pub prefix: String,
    pub ops: Vec<String>,
}

/// A disclosure request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisclosureView {
    pub id: String,
    pub tenant: String,
    pub authority: String,
    pub jurisdiction: String,
    pub legal_basis: String,
    pub scope: String,
    pub requested_by: String,
    pub created_ms: i64,
    /// `pending`, `refused` (by policy), `approved` or `denied`.
    pub state: String,
    pub approvals: Vec<String>,
    pub decided_ms: Option<i64>,
    /// Why it was refused.
    pub reason: Option<String>,
    /// The tenant sees it from then on.
    pub visible_after_ms: i64,
    /// While pending: how many officers approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
}

/// A tenant's policy as the trustee keeps it; the admin API adds `degraded_writes` (a
/// residency rule the catalog keeps).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantPolicyView {
    pub tenant: String,
    pub jurisdictions: Vec<String>,
    pub min_sites: u32,
    pub customer_approval: CustomerApproval,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degraded_writes: Option<DegradedWrites>,
}

/// A bucket's residency as its tenant's admin narrowed it (`None`: as the tenant's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketPolicyView {
    pub tenant: String,
    pub bucket: String,
    pub jurisdictions: Option<Vec<String>>,
    pub min_sites: Option<u32>,
}

/// What one crypto-shred approval led to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ShredView {
    /// The quorum is not reached yet.
    Pending(ShredPending),
    /// The tenant key's state now (`disabled`, `destroyed` or `active`).
    Done(ShredDone),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShredPending {
    pub tenant: String,
    /// Always `pending`.
    pub state: String,
    /// The quorum action (`shred:T`, `shred-now:T`, `shred-cancel:T`).
    pub action: String,
    pub approvals: Vec<String>,
    pub required: usize,
    pub officers: usize,
    pub progress: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShredDone {
    pub tenant: String,
    pub state: String,
    /// For a disabled key: when it will be destroyed.
    pub destroy_after_ms: Option<i64>,
}

/// One approval of a quorum action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumApproval {
    pub principal: String,
    pub role: Role,
    pub at_ms: i64,
}

/// A quorum action in progress: approved by some, not yet by enough.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumAction {
    /// `shred`, `shred-now`, `shred-cancel`, `disconnect` or `reconnect`.
    pub kind: String,
    /// The tenant a shred is of; none for a disconnect or reconnect.
    pub tenant: Option<String>,
    /// Those within the approval window, oldest first.
    pub approvals: Vec<QuorumApproval>,
    /// How many distinct principals the action needs.
    pub required: usize,
    /// Who counts, in words (`2, at least one officer`).
    pub rule: String,
    /// How many of the approvals are officers'.
    pub officers: usize,
    /// When the oldest approval stops counting.
    pub expires_ms: i64,
    /// The tenant key's state, for a shred (`active`, `disabled`, `destroyed`; none when the
    /// tenant has no key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_state: Option<String>,
}

/// A tenant key's state as the quorum view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantKeyView {
    pub tenant: String,
    /// `active`, `disabled`, `destroyed`, or `none` for a tenant without a key yet.
    pub state: String,
    /// For a disabled key: when it will be destroyed.
    pub destroy_after_ms: Option<i64>,
}

/// The answer to [`crate::Query::Quorum`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumView {
    pub actions: Vec<QuorumAction>,
    /// The tenant asked about (or a tenant admin's own): its key's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_key: Option<TenantKeyView>,
}

/// The trustee's signed attestation of a report's digest (appended to the log first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationView {
    /// The log entry that records it.
    pub log_index: u64,
    /// A C2SP signed note naming the kind, tenant, digest and log index.
    pub note: String,
    /// The log's verifier key (signed-note vkey form), which verifies `note`.
    pub verifier_key: String,
}
