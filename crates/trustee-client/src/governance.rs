//! Governance as it crosses the trustee boundary: principals, signed statements, grants,
//! disclosure requests and the transparency log's read side.
//!
//! Everything that changes who may do what (a new principal, an approval, a revocation, a
//! policy) reaches the trustee as a [`SignedStatement`]: JSON text signed with the acting
//! principal's key, which the trustee verifies against the public key it holds. Whoever carries
//! a statement (the admin API, a gateway) can refuse to pass it on, but cannot forge or alter it.

use serde::{Deserialize, Serialize};

/// What a principal may do (DESIGN.md, "Principals").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Officer,
    Operator,
    Auditor,
    TenantAdmin,
}

impl Role {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Officer => "officer",
            Self::Operator => "operator",
            Self::Auditor => "auditor",
            Self::TenantAdmin => "tenant-admin",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "officer" => Some(Self::Officer),
            "operator" => Some(Self::Operator),
            "auditor" => Some(Self::Auditor),
            "tenant-admin" => Some(Self::TenantAdmin),
            _ => None,
        }
    }
}

/// A principal as the trustee knows it (never its bearer or token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalInfo {
    pub name: String,
    pub role: Role,
    /// The tenant of a tenant admin.
    pub tenant: Option<String>,
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
    pub revoked: bool,
}

/// A statement and its signer's Ed25519 signature (base64) over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedStatement {
    /// JSON text of a [`Statement`], exactly as signed.
    pub statement: String,
    pub signature: String,
}

/// Who says what, and when. `at_ms` must be close to the trustee's clock, so an old statement
/// cannot be replayed later; `nonce` makes every statement unique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub principal: String,
    pub at_ms: i64,
    pub nonce: String,
    #[serde(flatten)]
    pub action: Action,
}

/// How a crypto-shred approval is meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShredMode {
    /// Disable now, destroy after the grace period.
    Disable,
    /// Destroy at once.
    Now,
    /// Re-enable a disabled key.
    Cancel,
}

impl ShredMode {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Now => "now",
            Self::Cancel => "cancel",
        }
    }
}

/// Whether a tenant's admin must approve grants on its data, as it appears in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomerApproval {
    Required,
    Optional,
}

impl CustomerApproval {
    #[must_use]
    pub fn from_required(required: bool) -> Self {
        if required {
            Self::Required
        } else {
            Self::Optional
        }
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::Optional => "optional",
        }
    }
}

/// Whether a write may go to fewer sites than `min_sites` when not enough are available.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DegradedWrites {
    Accept,
    Refuse,
}

impl DegradedWrites {
    #[must_use]
    pub fn from_accept(accept: bool) -> Self {
        if accept { Self::Accept } else { Self::Refuse }
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Refuse => "refuse",
        }
    }
}

/// Everything a signed statement can ask the trustee to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Officers: enrol a principal. Its token was made on the creator's machine; only the
    /// bearer's hash and the signing public key (hex) travel.
    CreatePrincipal {
        name: String,
        role: Role,
        tenant: Option<String>,
        bearer_hash: String,
        public_key: String,
        expires_ms: Option<i64>,
    },
    /// Officers: a principal's token stops working at once.
    RevokePrincipal {
        name: String,
    },
    /// Officers: a new tenant and its allowed jurisdictions.
    RegisterTenant {
        name: String,
        jurisdictions: Vec<String>,
        min_sites: u32,
    },
    /// Officers: a tenant's policy. Fields left out keep their value: whether its admin must
    /// approve grants, its allowed jurisdictions, the sites every write needs, and whether a
    /// write may go to fewer sites when not enough are available (`degraded_writes`).
    SetTenantPolicy {
        tenant: String,
        #[serde(default)]
        customer_approval: Option<bool>,
        #[serde(default)]
        jurisdictions: Option<Vec<String>>,
        #[serde(default)]
        min_sites: Option<u32>,
        #[serde(default)]
        degraded_writes: Option<bool>,
    },
    /// The tenant's admin: narrow a bucket's residency (fewer jurisdictions, more sites).
    SetBucketPolicy {
        tenant: String,
        bucket: String,
        #[serde(default)]
        jurisdictions: Option<Vec<String>>,
        #[serde(default)]
        min_sites: Option<u32>,
    },
    /// Officers: register a site. `backend` describes it without secrets.
    AddSite {
        id: String,
        jurisdiction: String,
        location: String,
        backend: String,
    },
    /// Officers: `active`, `draining` or `down`.
    SetSiteState {
        id: String,
        state: String,
    },
    /// Officers: where a registered site is now (a moved disk, a new endpoint, bucket or
    /// credentials); it must still be the same site (its identity). `backend` describes it
    /// without secrets.
    SetSiteBackend {
        id: String,
        backend: String,
    },
    /// Officers: forget a site that holds no replica any more.
    RemoveSite {
        id: String,
    },
    /// Operators (and officers): ask for access to data.
    RequestGrant {
        tenant: String,
        bucket: String,
        prefix: String,
        ops: Vec<String>,
        duration_ms: i64,
        reason: String,
    },
    /// `scope` is [`grant_scope_digest`] of the grant as the approver saw it: an approval
    /// covers exactly that scope, and stops counting if the grant is changed.
    ApproveGrant {
        id: String,
        scope: String,
    },
    DenyGrant {
        id: String,
        /// Why (shown to the requester and recorded in the log).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    RevokeGrant {
        id: String,
    },
    /// The requester of an approved grant: temporary S3 credentials within its scope.
    GrantCredentials {
        id: String,
    },
    /// Officers: record a request from an authority.
    RequestDisclosure {
        tenant: String,
        authority: String,
        jurisdiction: String,
        legal_basis: String,
        scope: String,
        /// How long after its creation the tenant may see it (0: at once).
        #[serde(default)]
        delay_ms: i64,
    },
    ApproveDisclosure {
        id: String,
    },
    DenyDisclosure {
        id: String,
        /// Why (recorded in the log).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Officers: how long after its creation the tenant may see a disclosure request.
    SetDisclosureDelay {
        id: String,
        delay_ms: i64,
    },
    /// Crypto-shred approvals (officers, or the tenant's admin; quorum of two, one an officer).
    Shred {
        tenant: String,
        mode: ShredMode,
    },
    /// The tenant's admin: a new S3 access key for its tenant. The trustee keeps the secret
    /// sealed and answers it once.
    CreateAccessKey {
        tenant: String,
        /// A one-time X25519 public key (hex) of the admin's CLI: the trustee answers the new
        /// secret encrypted to it (`obhut_crypto::delivery`), so that nothing in between
        /// ever holds it in clear.
        deliver_to: String,
        /// A scoped key: the IAM policy (JSON) that limits it, signed with the rest of the
        /// statement; none for a key of the whole tenant.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy: Option<String>,
    },
    /// The tenant's admin: an access key of its tenant stops working at once.
    RevokeAccessKey {
        tenant: String,
        access_key_id: String,
    },
    /// The tenant's admin: rotate a bucket's key. Answers a request ticket that lets the
    /// rotation use the bucket's keys.
    RotateBucketKey {
        tenant: String,
        bucket: String,
    },
    /// The tenant's admin: how the tenant's keys are released for its requests and grants
    /// (`bucket`, the default, or `per-object`).
    SetKeyRelease {
        tenant: String,
        key_release: crate::object_keys::KeyRelease,
    },
    /// Officers and tenant admins, signed with their own (CLI) key: a further Ed25519 key
    /// (hex), made elsewhere (a browser's WebCrypto key that cannot be exported), that may sign
    /// this principal's approvals and denials of grants and disclosure requests, and nothing
    /// else, until `expires_ms`. `label` says where the key lives, for the principal's own
    /// list.
    EnrolSigningKey {
        public_key: String,
        expires_ms: i64,
        #[serde(default)]
        label: String,
    },
    /// The principal (with its own key): an enrolled key signs nothing from now on, and
    /// approvals it signed stop counting.
    RevokeSigningKey {
        public_key: String,
    },
    /// Officers (quorum): cut the provider off. The trustee releases no key and verifies no
    /// request, and every gateway is told to drop its keys, until a quorum reconnects.
    Disconnect {
        /// Why (recorded in the log).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Officers (quorum): end a disconnect.
    Reconnect {},
    /// Officers: append a drill's summary (its measured figures) to the log, so that
    /// auditors see the drill happened and what it measured.
    RecordDrill {
        /// The drill's name (`disconnect`, `dc-loss`).
        drill: String,
        /// The drill's JSON summary: a flat object of numbers, booleans and short strings.
        summary: serde_json::Map<String, serde_json::Value>,
    },
}

/// The most log entries one [`Query::LogEntries`] answer holds.
pub const MAX_LOG_ENTRIES: u64 = 10_000;

/// Reads of governance state; the trustee filters by the asking principal's role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "query", rename_all = "snake_case", deny_unknown_fields)]
pub enum Query {
    Principals,
    Grants,
    Grant {
        id: String,
    },
    Disclosures,
    TenantPolicy {
        tenant: String,
    },
    /// Log entries of one tenant (or all, for officers and auditors), from index `from`: at
    /// most `limit` index rows read ([`MAX_LOG_ENTRIES`] when absent, and never more).
    LogEntries {
        tenant: Option<String>,
        from: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u64>,
    },
    /// A tenant's access keys (ids and states; never secrets): its admin only.
    AccessKeys {
        tenant: String,
    },
    /// The asking principal's own enrolled signing keys ([`Action::EnrolSigningKey`]).
    SigningKeys,
    /// Whether officers have disconnected the provider, since when and by whom, and the
    /// approvals pending for the next change (officers, operators and auditors).
    Disconnect,
    /// The versions of a tenant an object lock holds now (a legal hold or a retention in
    /// force), by the trustee's own list, as `[bucket, key, version_id]`, at most
    /// [`MAX_LOCKED_VERSIONS`] after `after`: officers, auditors and the tenant's admin.
    LockedVersions {
        tenant: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<(String, String, String)>,
    },
    /// The quorum actions in progress ([`crate::views::QuorumView`]): crypto-shreds
    /// (`shred`, `shred-now`, `shred-cancel`) and a disconnect or reconnect of the provider,
    /// each with the approvals given within the approval window. Officers and auditors see
    /// every one (or one tenant's, with `tenant`); a tenant's admin only its own tenant's
    /// shreds, with its tenant key's state; operators are refused.
    Quorum {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tenant: Option<String>,
    },
}

/// The most versions one [`Query::LockedVersions`] answers.
pub const MAX_LOCKED_VERSIONS: usize = 1000;

/// The public side of the transparency log, plus entry bundles for those entitled to them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "read", rename_all = "snake_case", deny_unknown_fields)]
pub enum LogRead {
    Checkpoint,
    Key,
    /// A C2SP path below `/log/` (`tile/...`).
    Tile {
        path: String,
    },
}

/// What the gateway needs to check a request signed with grant credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantAccess {
    /// The trustee's ticket for the verified request this access is part of.
    pub ticket: crate::auth::RequestTicket,
    pub access_key_id: String,
    pub session_token: String,
    /// The S3 operation's name (e.g. `GetObject`).
    pub operation: String,
    /// `read`, `list` or `write`.
    pub class: String,
    pub bucket: String,
    /// The object key, or for a listing its prefix.
    pub key: String,
}

/// A granted access: the grant and the tenant it is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantScope {
    pub grant_id: String,
    pub tenant: String,
}

/// What defines a grant, as its approvers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantScopeFields<'a> {
    pub id: &'a str,
    pub tenant: &'a str,
    pub bucket: &'a str,
    pub prefix: &'a str,
    /// Sorted.
    pub ops: &'a [String],
    pub duration_ms: i64,
    pub requester: &'a str,
    pub reason: &'a str,
}

/// The digest an approval signs: hex SHA-256 of the grant's defining fields as JSON, in this
/// fixed order.
#[must_use]
pub fn grant_scope_digest(fields: &GrantScopeFields<'_>) -> String {
    let text = serde_json::to_string(fields).unwrap_or_default();
    obhut_crypto::principal::sha256_hex(text.as_bytes())
}

/// Prefix of every access key id issued for a grant.
pub const GRANT_KEY_PREFIX: &str = "OBG";
