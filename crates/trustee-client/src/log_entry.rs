//! The transparency log's entries: one [`LogEvent`] for everything the trustee appends, and
//! [`ParsedEntry`] for reading entries back, known or not.
//!
//! This is a long-lived public format (docs/governance.md, "Log entries"): an entry is a JSON
//! object with `type`, the event's fields, `at_ms` and a random `salt`. Entries written by
//! earlier releases must keep parsing, so field names and type strings never change; a field
//! may be added only as optional. A reader meets entries from later releases too: those parse
//! as [`ParsedEntry::Unknown`] and are shown generically, never refused.
//!
//! Entries name principals, tenants, buckets, object keys and grant ids; they never hold key
//! material, tokens or object data.

use crate::governance::{CustomerApproval, DegradedWrites};
use crate::{Justification, Role, ShredMode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One entry as the trustee appends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    #[serde(flatten)]
    pub event: LogEvent,
    /// When the trustee appended it (ms since the epoch).
    pub at_ms: i64,
    /// 16 random bytes (hex), so an entry withheld from a reader cannot be guessed from its
    /// leaf hash.
    pub salt: String,
}

/// Everything the trustee records. `actor` fields name the principal who acted (`by` or
/// `principal` in the JSON, as the first release wrote them); the other fields name what the
/// event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LogEvent {
    /// An officer (or `bootstrap` at first start) enrolled a principal.
    PrincipalCreated {
        #[serde(rename = "principal")]
        name: String,
        role: Role,
        tenant: Option<String>,
        /// The principal's Ed25519 public key, hex.
        public_key: String,
        expires_ms: Option<i64>,
        #[serde(rename = "by")]
        actor: String,
    },
    /// One officer's signed approval of enrolling a principal whose role needs a quorum of
    /// officers (an officer); `principal_created` follows once the quorum is reached.
    PrincipalApproval {
        #[serde(rename = "principal")]
        name: String,
        role: Role,
        tenant: Option<String>,
        /// The public key being enrolled, hex.
        public_key: String,
        #[serde(rename = "by")]
        actor: String,
    },
    /// An officer revoked a principal.
    PrincipalRevoked {
        #[serde(rename = "principal")]
        name: String,
        role: Role,
        tenant: Option<String>,
        #[serde(rename = "by")]
        actor: String,
    },
    /// An officer (or `bootstrap`) registered a tenant.
    TenantAdded {
        tenant: String,
        jurisdictions: Vec<String>,
        min_sites: u32,
        customer_approval: CustomerApproval,
        #[serde(rename = "by")]
        actor: String,
    },
    /// A tenant's policy (by an officer) or a bucket's (by the tenant's admin) changed.
    PolicyChanged(PolicyChange),
    /// An officer (or `bootstrap`) registered a site.
    SiteAdded {
        site: String,
        jurisdiction: String,
        location: String,
        /// The backend without secrets; absent for the sites `serve` makes at first start.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        backend: Option<String>,
        #[serde(rename = "by")]
        actor: String,
    },
    /// An officer set a site `active`, `draining` or `down`.
    SiteStateChanged {
        site: String,
        state: String,
        #[serde(rename = "by")]
        actor: String,
    },
    /// An officer pointed a site at where it is now (same identity).
    SiteBackendChanged {
        site: String,
        /// The backend without secrets.
        backend: String,
        #[serde(rename = "by")]
        actor: String,
    },
    /// An officer removed a site.
    SiteRemoved {
        site: String,
        #[serde(rename = "by")]
        actor: String,
    },
    /// An operator or officer asked for access.
    GrantRequested {
        grant: String,
        tenant: String,
        bucket: String,
        prefix: String,
        ops: Vec<String>,
        duration_ms: i64,
        reason: String,
        customer_approval: CustomerApproval,
        #[serde(rename = "principal")]
        actor: String,
    },
    /// One approval of a grant, with the statement its approver signed.
    GrantApproval {
        grant: String,
        tenant: String,
        role: Role,
        statement: String,
        signature: String,
        #[serde(rename = "principal")]
        actor: String,
    },
    /// A grant reached its quorum.
    GrantApproved {
        grant: String,
        tenant: String,
        expires_ms: Option<i64>,
        approvers: Vec<String>,
    },
    /// An officer or the tenant's admin denied a pending grant.
    GrantDenied {
        grant: String,
        tenant: String,
        #[serde(rename = "principal")]
        actor: String,
        /// Why, where the denial gave a reason.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// An officer or the tenant's admin ended a grant.
    GrantRevoked {
        grant: String,
        tenant: String,
        #[serde(rename = "principal")]
        actor: String,
    },
    /// The requester received temporary S3 credentials for an approved grant.
    GrantCredentials {
        grant: String,
        tenant: String,
        access_key_id: String,
        #[serde(rename = "principal")]
        actor: String,
    },
    /// One S3 request under a grant, allowed.
    GrantAccess {
        grant: String,
        tenant: String,
        operation: String,
        bucket: String,
        key: String,
        #[serde(rename = "principal")]
        actor: String,
    },
    /// One S3 request under a grant, refused, and why.
    GrantAccessDenied {
        grant: String,
        tenant: String,
        operation: String,
        bucket: String,
        key: String,
        reason: String,
        #[serde(rename = "principal")]
        actor: String,
    },
    /// An officer recorded a disclosure request inside the tenant's jurisdictions.
    DisclosureRequested(DisclosureRequest),
    /// An officer recorded a disclosure request the trustee refused at once (`reason`).
    DisclosureRefused(DisclosureRequest),
    /// One officer approved a disclosure request.
    DisclosureApproval {
        disclosure: String,
        tenant: String,
        #[serde(rename = "principal")]
        actor: String,
    },
    /// A disclosure request reached its quorum.
    DisclosureApproved {
        disclosure: String,
        tenant: String,
        approvers: Vec<String>,
    },
    /// An officer denied a disclosure request.
    DisclosureDenied {
        disclosure: String,
        tenant: String,
        #[serde(rename = "principal")]
        actor: String,
        /// Why, where the denial gave a reason.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// An officer changed how long a disclosure request is kept from its tenant.
    DisclosureDelaySet {
        disclosure: String,
        tenant: String,
        delay_ms: i64,
        visible_after_ms: i64,
        #[serde(rename = "principal")]
        actor: String,
    },
    /// One approval of a crypto-shred (or of its cancellation).
    ShredApproval {
        tenant: String,
        mode: ShredMode,
        role: Role,
        #[serde(rename = "principal")]
        actor: String,
    },
    /// A shred quorum disabled a tenant key; it is destroyed after `destroy_after_ms`.
    TenantKeyDisabled {
        tenant: String,
        destroy_after_ms: i64,
    },
    /// A shred quorum re-enabled a disabled tenant key.
    TenantKeyEnabled { tenant: String },
    /// A tenant key was destroyed: by a shred quorum (no `by`), or by the trustee at the end
    /// of the grace period (`by`: "grace period ended").
    TenantKeyDestroyed {
        tenant: String,
        #[serde(rename = "by", default, skip_serializing_if = "Option::is_none")]
        cause: Option<String>,
    },
    /// A bucket key left the trustee, and why.
    KeyRelease {
        tenant: String,
        bucket: String,
        key_version: u32,
        justification: Justification,
    },
    /// Object keys opened or wrapped inside the trustee for a tenant whose policy is
    /// `key_release = per-object`: one entry for every request of the tenant served by the
    /// same durable write (group commit). No bucket key left the trustee.
    ObjectKeysReleased {
        tenant: String,
        requests: Vec<ObjectKeyRequestEntry>,
    },
    /// The tenant's admin chose how the tenant's keys are released (`bucket` or `per-object`).
    KeyReleasePolicySet {
        tenant: String,
        key_release: crate::object_keys::KeyRelease,
        #[serde(rename = "by")]
        actor: String,
    },
    /// The digest of a signed report (e.g. residency) about one tenant or all (`tenant` null).
    Attestation {
        kind: String,
        tenant: Option<String>,
        digest: String,
    },
    /// The tenant's admin created an S3 access key (its secret is kept sealed by the trustee).
    AccessKeyCreated {
        tenant: String,
        access_key_id: String,
        #[serde(rename = "by")]
        actor: String,
        /// A scoped key's policy (IAM JSON); absent for a key of the whole tenant.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy: Option<String>,
    },
    /// An access key stopped working.
    AccessKeyRevoked {
        tenant: String,
        access_key_id: String,
        #[serde(rename = "by")]
        actor: String,
    },
    /// Access keys that an earlier release kept in the catalog in clear were moved into the
    /// trustee's custody; their secrets were readable by whoever could read the catalog, so
    /// the tenant should replace them.
    AccessKeysImported {
        tenant: String,
        access_key_ids: Vec<String>,
        #[serde(rename = "by")]
        actor: String,
    },
    /// A record that decides access failed its integrity check (an edited or inserted row,
    /// say) and was refused.
    IntegrityFailure {
        /// What kind of record (`access_key`, `object`, `principal`, …).
        what: String,
        /// Which one.
        subject: String,
        tenant: Option<String>,
        detail: String,
    },
    /// A gateway found a catalog record of a tenant's object or upload that fails its
    /// integrity check (e.g. copied under another name, into another bucket, or edited), and
    /// served nothing from it. `upload` names the multipart upload for an upload's record.
    IntegrityAlarm {
        tenant: String,
        bucket: String,
        key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        upload: Option<String>,
        reason: String,
    },
    /// A version's object lock record was sealed: its first one, if it locks the version (a
    /// retention or a legal hold), and every change of its retention or legal hold after
    /// (docs/s3-compatibility.md, "Object lock"). `bypass`: a GOVERNANCE retention was
    /// shortened or removed with the bypass.
    ObjectLock {
        tenant: String,
        bucket: String,
        key: String,
        version_id: String,
        change: crate::object_lock::LockChange,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode: Option<crate::object_lock::LockMode>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retain_until_ms: Option<i64>,
        legal_hold: bool,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        bypass: bool,
    },
    /// An officer or tenant admin enrolled a further key (a browser's) for signing its
    /// approvals and denials, by `statement`, which it signed with its own key.
    SigningKeyEnrolled {
        #[serde(rename = "principal")]
        actor: String,
        role: Role,
        tenant: Option<String>,
        /// The enrolled Ed25519 public key, hex.
        public_key: String,
        expires_ms: i64,
        label: String,
        statement: String,
        signature: String,
    },
    /// An enrolled signing key was revoked by its principal.
    SigningKeyRevoked {
        #[serde(rename = "principal")]
        actor: String,
        tenant: Option<String>,
        public_key: String,
    },
    /// One officer's signed approval of disconnecting the provider (`mode` `disconnect`) or
    /// of reconnecting it (`reconnect`); `trustee_disconnected` or `trustee_reconnected`
    /// follows once the quorum is reached.
    DisconnectApproval {
        mode: DisconnectMode,
        /// Why, as the approving officer gave it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        statement: String,
        signature: String,
        #[serde(rename = "by")]
        actor: String,
    },
    /// A quorum of officers disconnected the provider: from this entry on, the trustee
    /// releases no key and verifies no request, and every gateway is told to drop its keys.
    TrusteeDisconnected {
        approvers: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A quorum of officers ended the disconnect: service resumes.
    TrusteeReconnected { approvers: Vec<String> },
    /// A gateway acknowledged the revocation pushed for the disconnect that `disconnect`
    /// (that `trustee_disconnected` entry's index) recorded, `latency_ms` after the push.
    GatewayAcknowledged {
        /// The gateway process as it names itself to the trustee.
        gateway: String,
        /// The common name of the client certificate the acknowledgement came with (the
        /// gateway as the trustee's CA names it; absent in entries of earlier releases).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        certificate: Option<String>,
        disconnect: u64,
        latency_ms: u64,
    },
    /// A gateway the trustee had heard from did not acknowledge that push within
    /// `waited_ms`: it drops its keys when its cache time (`key_cache_ttl`) ends, or when it
    /// finds the trustee unreachable, whichever comes first.
    GatewayAckMissing {
        gateway: String,
        /// As in `gateway_acknowledged`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        certificate: Option<String>,
        disconnect: u64,
        waited_ms: u64,
        /// The drill fault injector the gateway declared it runs with
        /// (`ignore-disconnect-revocations`): it ignores a disconnect's revocation of every
        /// key by design, so whatever it answered does not count as an acknowledgement.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        drill_fault: Option<String>,
    },
    /// An officer recorded a drill's summary (`obhut log record-drill`): the figures it
    /// measured, as the drill wrote them.
    DrillRecorded {
        drill: String,
        summary: Map<String, Value>,
        #[serde(rename = "by")]
        actor: String,
    },
}

/// What a `disconnect_approval` approves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisconnectMode {
    Disconnect,
    Reconnect,
}

impl DisconnectMode {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disconnect => "disconnect",
            Self::Reconnect => "reconnect",
        }
    }
}

/// A `policy_changed` entry: the two shapes share one type string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PolicyChange {
    /// The tenant's admin narrowed a bucket's residency (absent fields: as the tenant's).
    Bucket {
        tenant: String,
        bucket: String,
        jurisdictions: Option<Vec<String>>,
        min_sites: Option<u32>,
        #[serde(rename = "by")]
        actor: String,
    },
    /// An officer changed a tenant's policy; the fields are the policy after the change
    /// (`degraded_writes` only when it was set).
    Tenant {
        tenant: String,
        customer_approval: CustomerApproval,
        jurisdictions: Vec<String>,
        min_sites: u32,
        degraded_writes: Option<DegradedWrites>,
        #[serde(rename = "by")]
        actor: String,
    },
}

/// The fields of `disclosure_requested` and `disclosure_refused`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisclosureRequest {
    pub disclosure: String,
    pub tenant: String,
    pub authority: String,
    pub jurisdiction: String,
    pub legal_basis: String,
    pub scope: String,
    /// Why it was refused (only for `disclosure_refused`).
    pub reason: Option<String>,
    pub delay_ms: i64,
    pub visible_after_ms: i64,
    #[serde(rename = "principal")]
    pub actor: String,
}

/// One request served with per-object key release: which bucket and key version, whose
/// request (the digest of the signed request the trustee verified, or the grant), and how many
/// object keys were handed out (`opened`), opened only for an ETag or a check inside the
/// trustee (`listed`), and wrapped for new objects (`wrapped`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectKeyRequestEntry {
    pub bucket: String,
    pub key_version: u32,
    /// `customer` or `grant`.
    pub justification: String,
    /// The access key (customer) or grant id.
    pub principal: String,
    /// SHA-256 of the verified request (customer requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    pub opened: u32,
    pub listed: u32,
    pub wrapped: u32,
    /// Keys rewrapped under a new bucket key version inside the trustee (a rotation).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rewrapped: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl LogEvent {
    /// The `type` string of the event.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::PrincipalCreated { .. } => "principal_created",
            Self::PrincipalRevoked { .. } => "principal_revoked",
            Self::PrincipalApproval { .. } => "principal_approval",
            Self::TenantAdded { .. } => "tenant_added",
            Self::PolicyChanged(_) => "policy_changed",
            Self::SiteAdded { .. } => "site_added",
            Self::SiteStateChanged { .. } => "site_state_changed",
            Self::SiteBackendChanged { .. } => "site_backend_changed",
            Self::SiteRemoved { .. } => "site_removed",
            Self::GrantRequested { .. } => "grant_requested",
            Self::GrantApproval { .. } => "grant_approval",
            Self::GrantApproved { .. } => "grant_approved",
            Self::GrantDenied { .. } => "grant_denied",
            Self::GrantRevoked { .. } => "grant_revoked",
            Self::GrantCredentials { .. } => "grant_credentials",
            Self::GrantAccess { .. } => "grant_access",
            Self::GrantAccessDenied { .. } => "grant_access_denied",
            Self::DisclosureRequested(_) => "disclosure_requested",
            Self::DisclosureRefused(_) => "disclosure_refused",
            Self::DisclosureApproval { .. } => "disclosure_approval",
            Self::DisclosureApproved { .. } => "disclosure_approved",
            Self::DisclosureDenied { .. } => "disclosure_denied",
            Self::DisclosureDelaySet { .. } => "disclosure_delay_set",
            Self::ShredApproval { .. } => "shred_approval",
            Self::TenantKeyDisabled { .. } => "tenant_key_disabled",
            Self::TenantKeyEnabled { .. } => "tenant_key_enabled",
            Self::TenantKeyDestroyed { .. } => "tenant_key_destroyed",
            Self::KeyRelease { .. } => "key_release",
            Self::ObjectKeysReleased { .. } => "object_keys_released",
            Self::KeyReleasePolicySet { .. } => "key_release_policy_set",
            Self::Attestation { .. } => "attestation",
            Self::AccessKeyCreated { .. } => "access_key_created",
            Self::AccessKeyRevoked { .. } => "access_key_revoked",
            Self::AccessKeysImported { .. } => "access_keys_imported",
            Self::IntegrityFailure { .. } => "integrity_failure",
            Self::IntegrityAlarm { .. } => "integrity_alarm",
            Self::ObjectLock { .. } => "object_lock",
            Self::SigningKeyEnrolled { .. } => "signing_key_enrolled",
            Self::SigningKeyRevoked { .. } => "signing_key_revoked",
            Self::DisconnectApproval { .. } => "disconnect_approval",
            Self::TrusteeDisconnected { .. } => "trustee_disconnected",
            Self::TrusteeReconnected { .. } => "trustee_reconnected",
            Self::GatewayAcknowledged { .. } => "gateway_acknowledged",
            Self::GatewayAckMissing { .. } => "gateway_ack_missing",
            Self::DrillRecorded { .. } => "drill_recorded",
        }
    }

    /// The tenant the event is about, which decides who may read it: that tenant's admin,
    /// besides officers and auditors. `None`: not about one tenant (sites, officers'
    /// principals, reports on every tenant).
    #[must_use]
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Self::PrincipalCreated { tenant, .. }
            | Self::PrincipalApproval { tenant, .. }
            | Self::PrincipalRevoked { tenant, .. }
            | Self::Attestation { tenant, .. }
            | Self::IntegrityFailure { tenant, .. }
            | Self::SigningKeyEnrolled { tenant, .. }
            | Self::SigningKeyRevoked { tenant, .. } => tenant.as_deref(),
            Self::SiteAdded { .. }
            | Self::SiteStateChanged { .. }
            | Self::SiteBackendChanged { .. }
            | Self::SiteRemoved { .. }
            | Self::DisconnectApproval { .. }
            | Self::TrusteeDisconnected { .. }
            | Self::TrusteeReconnected { .. }
            | Self::GatewayAcknowledged { .. }
            | Self::GatewayAckMissing { .. }
            | Self::DrillRecorded { .. } => None,
            Self::PolicyChanged(
                PolicyChange::Bucket { tenant, .. } | PolicyChange::Tenant { tenant, .. },
            )
            | Self::DisclosureRequested(DisclosureRequest { tenant, .. })
            | Self::DisclosureRefused(DisclosureRequest { tenant, .. })
            | Self::TenantAdded { tenant, .. }
            | Self::GrantRequested { tenant, .. }
            | Self::GrantApproval { tenant, .. }
            | Self::GrantApproved { tenant, .. }
            | Self::GrantDenied { tenant, .. }
            | Self::GrantRevoked { tenant, .. }
            | Self::GrantCredentials { tenant, .. }
            | Self::GrantAccess { tenant, .. }
            | Self::GrantAccessDenied { tenant, .. }
            | Self::DisclosureApproval { tenant, .. }
            | Self::DisclosureApproved { tenant, .. }
            | Self::DisclosureDenied { tenant, .. }
            | Self::DisclosureDelaySet { tenant, .. }
            | Self::ShredApproval { tenant, .. }
            | Self::TenantKeyDisabled { tenant, .. }
            | Self::TenantKeyEnabled { tenant }
            | Self::TenantKeyDestroyed { tenant, .. }
            | Self::KeyRelease { tenant, .. }
            | Self::ObjectKeysReleased { tenant, .. }
            | Self::KeyReleasePolicySet { tenant, .. }
            | Self::AccessKeyCreated { tenant, .. }
            | Self::AccessKeyRevoked { tenant, .. }
            | Self::AccessKeysImported { tenant, .. } => Some(tenant),
            Self::IntegrityAlarm { tenant, .. } | Self::ObjectLock { tenant, .. } => Some(tenant),
        }
    }

    /// The disclosure request the event belongs to: such entries stay hidden from the tenant
    /// until the request's delay has passed.
    #[must_use]
    pub fn disclosure(&self) -> Option<&str> {
        match self {
            Self::DisclosureRequested(d) | Self::DisclosureRefused(d) => Some(&d.disclosure),
            Self::DisclosureApproval { disclosure, .. }
            | Self::DisclosureApproved { disclosure, .. }
            | Self::DisclosureDenied { disclosure, .. }
            | Self::DisclosureDelaySet { disclosure, .. } => Some(disclosure),
            _ => None,
        }
    }

    /// The principal who acted, where one did (a quorum reached, a key released to a gateway
    /// or a report attested have none: the entries before them name who acted).
    #[must_use]
    pub fn actor(&self) -> Option<&str> {
        match self {
            Self::PrincipalCreated { actor, .. }
            | Self::PrincipalApproval { actor, .. }
            | Self::PrincipalRevoked { actor, .. }
            | Self::TenantAdded { actor, .. }
            | Self::PolicyChanged(
                PolicyChange::Bucket { actor, .. } | PolicyChange::Tenant { actor, .. },
            )
            | Self::SiteAdded { actor, .. }
            | Self::SiteStateChanged { actor, .. }
            | Self::SiteBackendChanged { actor, .. }
            | Self::SiteRemoved { actor, .. }
            | Self::GrantRequested { actor, .. }
            | Self::GrantApproval { actor, .. }
            | Self::GrantDenied { actor, .. }
            | Self::GrantRevoked { actor, .. }
            | Self::GrantCredentials { actor, .. }
            | Self::GrantAccess { actor, .. }
            | Self::GrantAccessDenied { actor, .. }
            | Self::DisclosureRequested(DisclosureRequest { actor, .. })
            | Self::DisclosureRefused(DisclosureRequest { actor, .. })
            | Self::DisclosureApproval { actor, .. }
            | Self::DisclosureDenied { actor, .. }
            | Self::DisclosureDelaySet { actor, .. }
            | Self::ShredApproval { actor, .. }
            | Self::AccessKeyCreated { actor, .. }
            | Self::AccessKeyRevoked { actor, .. }
            | Self::KeyReleasePolicySet { actor, .. }
            | Self::AccessKeysImported { actor, .. }
            | Self::SigningKeyEnrolled { actor, .. }
            | Self::SigningKeyRevoked { actor, .. }
            | Self::DisconnectApproval { actor, .. }
            | Self::DrillRecorded { actor, .. } => Some(actor),
            Self::GrantApproved { .. }
            | Self::DisclosureApproved { .. }
            | Self::TenantKeyDisabled { .. }
            | Self::TenantKeyEnabled { .. }
            | Self::TenantKeyDestroyed { .. }
            | Self::KeyRelease { .. }
            | Self::ObjectKeysReleased { .. }
            | Self::Attestation { .. }
            | Self::IntegrityFailure { .. }
            | Self::TrusteeDisconnected { .. }
            | Self::TrusteeReconnected { .. }
            | Self::GatewayAcknowledged { .. }
            | Self::GatewayAckMissing { .. } => None,
            Self::IntegrityAlarm { .. } | Self::ObjectLock { .. } => None,
        }
    }

    /// What the event is about besides its tenant and actor, as `name=value` pairs (JSON
    /// field names) for one line of text. Signed statements, signatures and public keys are
    /// left out: they are for verifiers, not for reading.
    #[must_use]
    pub fn details(&self) -> Vec<(&'static str, String)> {
        let list = |v: &[String]| v.join(",");
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        match self {
            Self::PrincipalCreated {
                name,
                role,
                expires_ms,
                ..
            } => vec![
                ("principal", name.clone()),
                ("role", role.as_str().into()),
                ("expires_ms", opt(expires_ms.map(|e| e.to_string()))),
            ],
            Self::PrincipalApproval { name, role, .. }
            | Self::PrincipalRevoked { name, role, .. } => {
                vec![("principal", name.clone()), ("role", role.as_str().into())]
            }
            Self::TenantAdded {
                jurisdictions,
                min_sites,
                customer_approval,
                ..
            } => vec![
                ("jurisdictions", list(jurisdictions)),
                ("min_sites", min_sites.to_string()),
                ("customer_approval", customer_approval.as_str().into()),
            ],
            Self::PolicyChanged(PolicyChange::Bucket {
                bucket,
                jurisdictions,
                min_sites,
                ..
            }) => vec![
                ("bucket", bucket.clone()),
                ("jurisdictions", opt(jurisdictions.as_deref().map(list))),
                ("min_sites", opt(min_sites.map(|n| n.to_string()))),
            ],
            Self::PolicyChanged(PolicyChange::Tenant {
                customer_approval,
                jurisdictions,
                min_sites,
                degraded_writes,
                ..
            }) => vec![
                ("jurisdictions", list(jurisdictions)),
                ("min_sites", min_sites.to_string()),
                ("customer_approval", customer_approval.as_str().into()),
                (
                    "degraded_writes",
                    opt(degraded_writes.map(|d| d.as_str().into())),
                ),
            ],
            Self::SiteAdded {
                site,
                jurisdiction,
                location,
                backend,
                ..
            } => vec![
                ("site", site.clone()),
                ("jurisdiction", jurisdiction.clone()),
                ("location", format!("{location:?}")),
                ("backend", opt(backend.clone())),
            ],
            Self::SiteStateChanged { site, state, .. } => {
                vec![("site", site.clone()), ("state", state.clone())]
            }
            Self::SiteBackendChanged { site, backend, .. } => {
                vec![("site", site.clone()), ("backend", backend.clone())]
            }
            Self::SiteRemoved { site, .. } => vec![("site", site.clone())],
            Self::GrantRequested {
                grant,
                bucket,
                prefix,
                ops,
                duration_ms,
                reason,
                customer_approval,
                ..
            } => vec![
                ("grant", grant.clone()),
                ("bucket", bucket.clone()),
                ("prefix", format!("{prefix:?}")),
                ("ops", list(ops)),
                ("duration_ms", duration_ms.to_string()),
                ("customer_approval", customer_approval.as_str().into()),
                ("reason", format!("{reason:?}")),
            ],
            Self::GrantApproval { grant, role, .. } => {
                vec![("grant", grant.clone()), ("role", role.as_str().into())]
            }
            Self::GrantApproved {
                grant,
                expires_ms,
                approvers,
                ..
            } => vec![
                ("grant", grant.clone()),
                ("approvers", list(approvers)),
                ("expires_ms", opt(expires_ms.map(|e| e.to_string()))),
            ],
            Self::GrantDenied {
                grant,
                reason: Some(reason),
                ..
            } => vec![("grant", grant.clone()), ("reason", format!("{reason:?}"))],
            Self::GrantDenied { grant, .. } | Self::GrantRevoked { grant, .. } => {
                vec![("grant", grant.clone())]
            }
            Self::GrantCredentials {
                grant,
                access_key_id,
                ..
            } => vec![
                ("grant", grant.clone()),
                ("access_key_id", access_key_id.clone()),
            ],
            Self::GrantAccess {
                grant,
                operation,
                bucket,
                key,
                ..
            } => vec![
                ("grant", grant.clone()),
                ("bucket", bucket.clone()),
                ("key", key.clone()),
                ("operation", operation.clone()),
            ],
            Self::GrantAccessDenied {
                grant,
                operation,
                bucket,
                key,
                reason,
                ..
            } => vec![
                ("grant", grant.clone()),
                ("bucket", bucket.clone()),
                ("key", key.clone()),
                ("operation", operation.clone()),
                ("reason", format!("{reason:?}")),
            ],
            Self::DisclosureRequested(d) | Self::DisclosureRefused(d) => {
                let mut v = vec![
                    ("disclosure", d.disclosure.clone()),
                    ("authority", format!("{:?}", d.authority)),
                    ("jurisdiction", d.jurisdiction.clone()),
                    ("legal_basis", format!("{:?}", d.legal_basis)),
                    ("scope", format!("{:?}", d.scope)),
                    ("visible_after_ms", d.visible_after_ms.to_string()),
                ];
                if let Some(r) = &d.reason {
                    v.push(("reason", format!("{r:?}")));
                }
                v
            }
            Self::DisclosureDenied {
                disclosure,
                reason: Some(reason),
                ..
            } => vec![
                ("disclosure", disclosure.clone()),
                ("reason", format!("{reason:?}")),
            ],
            Self::DisclosureApproval { disclosure, .. }
            | Self::DisclosureDenied { disclosure, .. } => {
                vec![("disclosure", disclosure.clone())]
            }
            Self::DisclosureApproved {
                disclosure,
                approvers,
                ..
            } => vec![
                ("disclosure", disclosure.clone()),
                ("approvers", list(approvers)),
            ],
            Self::DisclosureDelaySet {
                disclosure,
                delay_ms,
                visible_after_ms,
                ..
            } => vec![
                ("disclosure", disclosure.clone()),
                ("delay_ms", delay_ms.to_string()),
                ("visible_after_ms", visible_after_ms.to_string()),
            ],
            Self::ShredApproval { mode, role, .. } => vec![
                ("mode", mode.as_str().into()),
                ("role", role.as_str().into()),
            ],
            Self::TenantKeyDisabled {
                destroy_after_ms, ..
            } => vec![("destroy_after_ms", destroy_after_ms.to_string())],
            Self::TenantKeyEnabled { .. } => Vec::new(),
            Self::TenantKeyDestroyed { cause, .. } => {
                cause.iter().map(|c| ("by", format!("{c:?}"))).collect()
            }
            Self::KeyRelease {
                bucket,
                key_version,
                justification,
                ..
            } => {
                let mut v = vec![
                    ("bucket", bucket.clone()),
                    ("key_version", key_version.to_string()),
                ];
                match justification {
                    Justification::Customer {
                        principal,
                        operation,
                        request,
                        ..
                    } => {
                        v.push(("justification", "customer".into()));
                        v.push(("access_key", principal.clone()));
                        v.push(("operation", operation.clone()));
                        if let Some(r) = request {
                            v.push(("request", r.digest.clone()));
                        }
                    }
                    Justification::Grant { grant_id } => {
                        v.push(("justification", "grant".into()));
                        v.push(("grant", grant_id.clone()));
                    }
                    Justification::System { reason } => {
                        v.push(("justification", "system".into()));
                        v.push(("reason", format!("{reason:?}")));
                    }
                }
                v
            }
            Self::ObjectKeysReleased { requests, .. } => {
                let sum = |f: fn(&ObjectKeyRequestEntry) -> u32| {
                    requests.iter().map(f).sum::<u32>().to_string()
                };
                vec![
                    ("requests", requests.len().to_string()),
                    ("opened", sum(|r| r.opened)),
                    ("listed", sum(|r| r.listed)),
                    ("wrapped", sum(|r| r.wrapped)),
                    ("rewrapped", sum(|r| r.rewrapped)),
                ]
            }
            Self::KeyReleasePolicySet { key_release, .. } => {
                vec![("key_release", key_release.name().into())]
            }
            Self::Attestation { kind, digest, .. } => {
                vec![("kind", kind.clone()), ("digest", digest.clone())]
            }
            Self::AccessKeyCreated { access_key_id, .. }
            | Self::AccessKeyRevoked { access_key_id, .. } => {
                vec![("access_key_id", access_key_id.clone())]
            }
            Self::AccessKeysImported { access_key_ids, .. } => {
                vec![("access_key_ids", list(access_key_ids))]
            }
            Self::IntegrityFailure {
                what,
                subject,
                detail,
                ..
            } => vec![
                ("what", what.clone()),
                ("subject", subject.clone()),
                ("detail", format!("{detail:?}")),
            ],
            Self::IntegrityAlarm {
                bucket,
                key,
                upload,
                reason,
                ..
            } => vec![
                ("bucket", bucket.clone()),
                ("key", key.clone()),
                ("upload", opt(upload.clone())),
                ("reason", reason.clone()),
            ],
            Self::ObjectLock {
                bucket,
                key,
                version_id,
                change,
                mode,
                retain_until_ms,
                legal_hold,
                bypass,
                ..
            } => vec![
                ("bucket", bucket.clone()),
                ("key", key.clone()),
                ("version_id", version_id.clone()),
                (
                    "change",
                    match change {
                        crate::object_lock::LockChange::Written => "written",
                        crate::object_lock::LockChange::Retention => "retention",
                        crate::object_lock::LockChange::LegalHold => "legal_hold",
                        crate::object_lock::LockChange::Upload => "upload",
                        crate::object_lock::LockChange::Abandoned => "abandoned",
                        crate::object_lock::LockChange::BucketDefault => "bucket_default",
                    }
                    .into(),
                ),
                ("mode", opt(mode.map(|m| m.as_str().into()))),
                (
                    "retain_until_ms",
                    opt(retain_until_ms.map(|m| m.to_string())),
                ),
                ("legal_hold", legal_hold.to_string()),
                ("bypass", bypass.to_string()),
            ],
            Self::SigningKeyEnrolled {
                role,
                public_key,
                expires_ms,
                label,
                ..
            } => vec![
                ("role", role.as_str().into()),
                ("key", key_id(public_key)),
                ("expires_ms", expires_ms.to_string()),
                ("label", format!("{label:?}")),
            ],
            Self::SigningKeyRevoked { public_key, .. } => vec![("key", key_id(public_key))],
            Self::DisconnectApproval { mode, reason, .. } => {
                let mut v = vec![("mode", mode.as_str().into())];
                if let Some(r) = reason {
                    v.push(("reason", format!("{r:?}")));
                }
                v
            }
            Self::TrusteeDisconnected { approvers, reason } => {
                let mut v = vec![("approvers", list(approvers))];
                if let Some(r) = reason {
                    v.push(("reason", format!("{r:?}")));
                }
                v
            }
            Self::TrusteeReconnected { approvers } => vec![("approvers", list(approvers))],
            Self::GatewayAcknowledged {
                gateway,
                certificate,
                disconnect,
                latency_ms,
            } => {
                let mut out = vec![("gateway", gateway.clone())];
                if let Some(c) = certificate {
                    out.push(("certificate", c.clone()));
                }
                out.push(("disconnect", disconnect.to_string()));
                out.push(("latency_ms", latency_ms.to_string()));
                out
            }
            Self::GatewayAckMissing {
                gateway,
                certificate,
                disconnect,
                waited_ms,
                drill_fault,
            } => {
                let mut out = vec![("gateway", gateway.clone())];
                if let Some(c) = certificate {
                    out.push(("certificate", c.clone()));
                }
                out.push(("disconnect", disconnect.to_string()));
                out.push(("waited_ms", waited_ms.to_string()));
                if let Some(f) = drill_fault {
                    out.push(("drill_fault", f.clone()));
                }
                out
            }
            Self::DrillRecorded { drill, summary, .. } => {
                let figures: Vec<String> = summary
                    .iter()
                    .map(|(k, v)| match v {
                        Value::String(s) => format!("{k}={s:?}"),
                        other => format!("{k}={other}"),
                    })
                    .collect();
                vec![("drill", drill.clone()), ("figures", figures.join(" "))]
            }
        }
    }
}

/// A signing key's short name in one line of text: the first 16 hex digits of its public key.
fn key_id(public_key: &str) -> String {
    public_key.chars().take(16).collect()
}

/// Log entries as `/v1/log/entries` answers them (a [`crate::Query::LogEntries`]): each
/// entry's exact bytes as text, so the reader can hash them and check their inclusion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntriesPage {
    /// The log's size when read.
    pub size: u64,
    pub entries: Vec<IndexedEntry>,
    /// Where the next page starts (`from`) when more of the asked-for entries follow; absent at
    /// the end. A page can hold fewer entries than asked for and still be followed by more
    /// (entries the reader may not see yet are left out), so only this says whether it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedEntry {
    pub index: u64,
    /// The entry's JSON text, exactly as appended.
    pub entry: String,
    /// Set (and `entry` empty) when the trustee could not read the entry back from its log:
    /// why. The reader shows the gap rather than losing the rest of the page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

/// An entry this version does not know (a later release's type, or a shape it cannot read):
/// kept as JSON, shown field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownEntry {
    /// Its `type`, if it has one.
    pub kind: Option<String>,
    pub at_ms: Option<i64>,
    /// Every field but `type`, `at_ms` and `salt`.
    pub fields: Map<String, Value>,
}

/// An entry read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "entries are read and shown one at a time; boxing would only add an allocation"
)]
pub enum ParsedEntry {
    Known(LogEntry),
    Unknown(UnknownEntry),
}

impl ParsedEntry {
    /// Reads one entry's bytes. Never fails: whatever is not a known event (including bytes
    /// that are not JSON at all) becomes [`ParsedEntry::Unknown`].
    #[must_use]
    pub fn parse(bytes: &[u8]) -> Self {
        let mut fields = match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        if let Ok(entry) = serde_json::from_value::<LogEntry>(Value::Object(fields.clone())) {
            return Self::Known(entry);
        }
        let kind = match fields.remove("type") {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        let at_ms = fields.remove("at_ms").and_then(|v| v.as_i64());
        fields.remove("salt");
        Self::Unknown(UnknownEntry {
            kind,
            at_ms,
            fields,
        })
    }

    /// The `type` string, `-` if there is none.
    #[must_use]
    pub fn kind(&self) -> &str {
        match self {
            Self::Known(e) => e.event.kind(),
            Self::Unknown(u) => u.kind.as_deref().unwrap_or("-"),
        }
    }

    #[must_use]
    pub fn at_ms(&self) -> Option<i64> {
        match self {
            Self::Known(e) => Some(e.at_ms),
            Self::Unknown(u) => u.at_ms,
        }
    }

    /// The tenant whose admin may read the entry. An unknown entry belongs to no tenant: only
    /// officers and auditors see it, since its visibility cannot be judged.
    #[must_use]
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Self::Known(e) => e.event.tenant(),
            Self::Unknown(_) => None,
        }
    }

    /// See [`LogEvent::disclosure`]; none for an unknown entry.
    #[must_use]
    pub fn disclosure(&self) -> Option<&str> {
        match self {
            Self::Known(e) => e.event.disclosure(),
            Self::Unknown(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One entry of every type, exactly as the first release wrote them (serde_json's sorted
    /// keys, `null` where it wrote `null`).
    const FIRST_RELEASE: &[&str] = &[
        r#"{"at_ms":1700000000000,"by":"bootstrap","expires_ms":null,"principal":"officer1","public_key":"7d4f","role":"officer","salt":"00","tenant":null,"type":"principal_created"}"#,
        r#"{"at_ms":1700000000000,"by":"officer1","expires_ms":1800000000000,"principal":"acme-admin","public_key":"7d4f","role":"tenant-admin","salt":"00","tenant":"acme","type":"principal_created"}"#,
        r#"{"at_ms":1700000000000,"by":"officer1","principal":"op","role":"operator","salt":"00","tenant":null,"type":"principal_revoked"}"#,
        r#"{"at_ms":1700000000000,"by":"bootstrap","customer_approval":"required","jurisdictions":["DE"],"min_sites":2,"salt":"00","tenant":"demo","type":"tenant_added"}"#,
        r#"{"at_ms":1700000000000,"by":"officer1","customer_approval":"optional","degraded_writes":null,"jurisdictions":["DE","AT"],"min_sites":2,"salt":"00","tenant":"acme","type":"policy_changed"}"#,
        r#"{"at_ms":1700000000000,"by":"officer1","customer_approval":"required","degraded_writes":"accept","jurisdictions":["DE"],"min_sites":1,"salt":"00","tenant":"acme","type":"policy_changed"}"#,
        r#"{"at_ms":1700000000000,"bucket":"photos","by":"acme-admin","jurisdictions":["DE"],"min_sites":null,"salt":"00","tenant":"acme","type":"policy_changed"}"#,
        r#"{"at_ms":1700000000000,"by":"bootstrap","jurisdiction":"DE","location":"Frankfurt","salt":"00","site":"de-fra","type":"site_added"}"#,
        r#"{"at_ms":1700000000000,"backend":"local:/srv/ber","by":"officer1","jurisdiction":"DE","location":"Berlin","salt":"00","site":"de-ber","type":"site_added"}"#,
        r#"{"at_ms":1700000000000,"by":"officer1","salt":"00","site":"de-ber","state":"draining","type":"site_state_changed"}"#,
        r#"{"at_ms":1700000000000,"by":"officer1","salt":"00","site":"de-ber","type":"site_removed"}"#,
        r#"{"at_ms":1700000000000,"bucket":"photos","customer_approval":"required","duration_ms":3600000,"grant":"g-01","ops":["list","read"],"prefix":"support/","principal":"operator","reason":"case 1","salt":"00","tenant":"acme","type":"grant_requested"}"#,
        r#"{"at_ms":1700000000000,"grant":"g-01","principal":"officer1","role":"officer","salt":"00","signature":"c2ln","statement":"{\"principal\":\"officer1\"}","tenant":"acme","type":"grant_approval"}"#,
        r#"{"approvers":["officer1","officer2","acme-admin"],"at_ms":1700000000000,"expires_ms":1700003600000,"grant":"g-01","salt":"00","tenant":"acme","type":"grant_approved"}"#,
        r#"{"at_ms":1700000000000,"grant":"g-01","principal":"officer1","salt":"00","tenant":"acme","type":"grant_denied"}"#,
        r#"{"at_ms":1700000000000,"grant":"g-01","principal":"acme-admin","salt":"00","tenant":"acme","type":"grant_revoked"}"#,
        r#"{"access_key_id":"OBG0123456789ABCDEF","at_ms":1700000000000,"grant":"g-01","principal":"operator","salt":"00","tenant":"acme","type":"grant_credentials"}"#,
        r#"{"at_ms":1700000000000,"bucket":"photos","grant":"g-01","key":"support/a","operation":"GetObject","principal":"operator","salt":"00","tenant":"acme","type":"grant_access"}"#,
        r#"{"at_ms":1700000000000,"bucket":"photos","grant":"g-01","key":"x","operation":"PutObject","principal":"operator","reason":"grant g-01 allows read but not write (PutObject)","salt":"00","tenant":"acme","type":"grant_access_denied"}"#,
        r#"{"at_ms":1700000000000,"authority":"BKA","delay_ms":0,"disclosure":"d-01","jurisdiction":"DE","legal_basis":"StPO 95","principal":"officer1","reason":null,"salt":"00","scope":"bucket photos","tenant":"acme","type":"disclosure_requested","visible_after_ms":1700000000000}"#,
        r#"{"at_ms":1700000000000,"authority":"FBI","delay_ms":0,"disclosure":"d-02","jurisdiction":"US","legal_basis":"CLOUD Act","principal":"officer1","reason":"jurisdiction US is outside tenant acme's allowed set (DE)","salt":"00","scope":"all","tenant":"acme","type":"disclosure_refused","visible_after_ms":1700000000000}"#,
        r#"{"at_ms":1700000000000,"disclosure":"d-01","principal":"officer2","salt":"00","tenant":"acme","type":"disclosure_approval"}"#,
        r#"{"approvers":["officer2","officer3"],"at_ms":1700000000000,"disclosure":"d-01","salt":"00","tenant":"acme","type":"disclosure_approved"}"#,
        r#"{"at_ms":1700000000000,"disclosure":"d-01","principal":"officer2","salt":"00","tenant":"acme","type":"disclosure_denied"}"#,
        r#"{"at_ms":1700000000000,"delay_ms":2592000000,"disclosure":"d-01","principal":"officer1","salt":"00","tenant":"acme","type":"disclosure_delay_set","visible_after_ms":1702592000000}"#,
        r#"{"at_ms":1700000000000,"mode":"disable","principal":"officer1","role":"officer","salt":"00","tenant":"acme","type":"shred_approval"}"#,
        r#"{"at_ms":1700000000000,"mode":"now","principal":"acme-admin","role":"tenant-admin","salt":"00","tenant":"acme","type":"shred_approval"}"#,
        r#"{"at_ms":1700000000000,"destroy_after_ms":1700604800000,"salt":"00","tenant":"acme","type":"tenant_key_disabled"}"#,
        r#"{"at_ms":1700000000000,"salt":"00","tenant":"acme","type":"tenant_key_enabled"}"#,
        r#"{"at_ms":1700000000000,"salt":"00","tenant":"acme","type":"tenant_key_destroyed"}"#,
        r#"{"at_ms":1700000000000,"by":"grace period ended","salt":"00","tenant":"acme","type":"tenant_key_destroyed"}"#,
        r#"{"at_ms":1700000000000,"bucket":"photos","justification":{"kind":"customer","operation":"GetObject","principal":"AKID","tenant":"acme"},"key_version":1,"salt":"00","tenant":"acme","type":"key_release"}"#,
        r#"{"at_ms":1700000000000,"bucket":"photos","justification":{"grant_id":"g-01","kind":"grant"},"key_version":2,"salt":"00","tenant":"acme","type":"key_release"}"#,
        r#"{"at_ms":1700000000000,"bucket":"photos","justification":{"kind":"system","reason":"rotation"},"key_version":2,"salt":"00","tenant":"acme","type":"key_release"}"#,
        r#"{"at_ms":1700000000000,"digest":"0000000000000000000000000000000000000000000000000000000000000000","kind":"residency","salt":"00","tenant":"demo","type":"attestation"}"#,
        r#"{"at_ms":1700000000000,"digest":"0000000000000000000000000000000000000000000000000000000000000000","kind":"residency","salt":"00","tenant":null,"type":"attestation"}"#,
    ];

    #[test]
    fn a_site_backend_change_is_logged_without_a_tenant_and_reads_back() {
        let text = r#"{"at_ms":1700000000000,"backend":"s3:https://rgw2.example.de/blobs as AK2","by":"officer1","salt":"00","site":"de-ceph","type":"site_backend_changed"}"#;
        let ParsedEntry::Known(entry) = ParsedEntry::parse(text.as_bytes()) else {
            panic!("not read as a known event: {text}");
        };
        assert_eq!(entry.event.kind(), "site_backend_changed");
        assert_eq!(
            entry.event.tenant(),
            None,
            "officers and auditors read it, no tenant"
        );
        assert_eq!(entry.event.actor(), Some("officer1"));
        let original: Value = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_value(&entry).unwrap(), original);
    }

    #[test]
    fn every_entry_the_first_release_wrote_parses_and_writes_back_the_same() {
        let mut kinds = std::collections::BTreeSet::new();
        for text in FIRST_RELEASE {
            let ParsedEntry::Known(entry) = ParsedEntry::parse(text.as_bytes()) else {
                panic!("not read as a known event: {text}");
            };
            assert_eq!(entry.at_ms, 1_700_000_000_000);
            assert_eq!(entry.salt, "00");
            let original: Value = serde_json::from_str(text).unwrap();
            assert_eq!(entry.event.kind(), original["type"], "{text}");
            // Writing it again gives the same JSON: no field renamed, none lost or added.
            assert_eq!(serde_json::to_value(&entry).unwrap(), original, "{text}");
            // Visibility comes from the type, and agrees with the first release's rule.
            assert_eq!(
                entry.event.tenant(),
                original.get("tenant").and_then(Value::as_str),
                "{text}"
            );
            assert_eq!(
                entry.event.disclosure(),
                original.get("disclosure").and_then(Value::as_str),
                "{text}"
            );
            kinds.insert(entry.event.kind());
        }
        assert_eq!(
            kinds.len(),
            27,
            "every event type has an example: {kinds:?}"
        );
    }

    #[test]
    fn sites_are_nobodys_tenant_and_actors_are_named() {
        let read = |t: &str| match ParsedEntry::parse(t.as_bytes()) {
            ParsedEntry::Known(e) => e.event,
            ParsedEntry::Unknown(u) => panic!("unknown: {u:?}"),
        };
        let created = read(FIRST_RELEASE[1]);
        assert_eq!(created.actor(), Some("officer1"));
        assert!(
            created
                .details()
                .contains(&("principal", "acme-admin".into()))
        );
        assert_eq!(read(FIRST_RELEASE[7]).tenant(), None);
        assert_eq!(read(FIRST_RELEASE[12]).actor(), Some("officer1"));
        assert_eq!(read(FIRST_RELEASE[13]).actor(), None);
        let bucket_policy = read(FIRST_RELEASE[6]);
        assert!(matches!(
            bucket_policy,
            LogEvent::PolicyChanged(PolicyChange::Bucket { ref bucket, .. }) if bucket == "photos"
        ));
    }

    #[test]
    fn an_unknown_or_unreadable_entry_is_kept_generically() {
        let later = br#"{"type":"quantum_key_rotated","tenant":"acme","by":"officer1","at_ms":1900000000000,"salt":"00","epoch":3}"#;
        let ParsedEntry::Unknown(u) = ParsedEntry::parse(later) else {
            panic!("a later release's type must not parse as a known one");
        };
        assert_eq!(u.kind.as_deref(), Some("quantum_key_rotated"));
        assert_eq!(u.at_ms, Some(1_900_000_000_000));
        assert_eq!(u.fields["epoch"], 3);
        assert!(!u.fields.contains_key("salt") && !u.fields.contains_key("type"));
        // its tenant is not trusted for visibility: only officers and auditors see it
        assert_eq!(ParsedEntry::parse(later).tenant(), None);
        // a known type with a field this version cannot read is shown, not refused
        let odd = br#"{"type":"key_release","tenant":"acme","bucket":"b","key_version":"one","justification":{},"at_ms":1,"salt":"00"}"#;
        assert_eq!(ParsedEntry::parse(odd).kind(), "key_release");
        assert!(matches!(ParsedEntry::parse(odd), ParsedEntry::Unknown(_)));
        for junk in [&b"not json"[..], b"[1,2]", b""] {
            let p = ParsedEntry::parse(junk);
            assert_eq!((p.kind(), p.at_ms()), ("-", None));
        }
    }

    /// Entries of the disconnect and of drill records, as this release writes them: later
    /// releases must keep reading them.
    const DISCONNECT_RELEASE: &[&str] = &[
        r#"{"at_ms":1700000000000,"by":"officer1","mode":"disconnect","reason":"drill","salt":"00","signature":"c2ln","statement":"{}","type":"disconnect_approval"}"#,
        r#"{"approvers":["officer1","officer2"],"at_ms":1700000000000,"reason":"drill","salt":"00","type":"trustee_disconnected"}"#,
        r#"{"at_ms":1700000000000,"disconnect":7,"gateway":"198.18.0.35:9000@ab12","latency_ms":41,"salt":"00","type":"gateway_acknowledged"}"#,
        r#"{"at_ms":1700000000000,"disconnect":7,"gateway":"198.18.0.36:9000@cd34","salt":"00","type":"gateway_ack_missing","waited_ms":10000}"#,
        r#"{"approvers":["officer2","officer3"],"at_ms":1700000000000,"salt":"00","type":"trustee_reconnected"}"#,
        r#"{"at_ms":1700000000000,"by":"officer1","drill":"disconnect","salt":"00","summary":{"gateways_acked":true,"lost":0,"time_to_full_stop_s":0.4},"type":"drill_recorded"}"#,
    ];

    #[test]
    fn disconnect_and_drill_entries_parse_and_write_back_the_same() {
        for text in DISCONNECT_RELEASE {
            let ParsedEntry::Known(entry) = ParsedEntry::parse(text.as_bytes()) else {
                panic!("not read as a known event: {text}");
            };
            let original: Value = serde_json::from_str(text).unwrap();
            assert_eq!(entry.event.kind(), original["type"], "{text}");
            assert_eq!(serde_json::to_value(&entry).unwrap(), original, "{text}");
            assert_eq!(
                entry.event.tenant(),
                None,
                "officers and auditors read {text}"
            );
        }
        let ParsedEntry::Known(drill) = ParsedEntry::parse(DISCONNECT_RELEASE[5].as_bytes()) else {
            panic!("drill record not known");
        };
        assert_eq!(drill.event.actor(), Some("officer1"));
        let details = drill.event.details();
        assert!(
            details.contains(&(
                "figures",
                "gateways_acked=true lost=0 time_to_full_stop_s=0.4".into()
            )),
            "{details:?}"
        );
    }

    #[test]
    fn a_new_entry_round_trips() {
        let entry = LogEntry {
            event: LogEvent::TenantKeyDestroyed {
                tenant: "acme".into(),
                cause: None,
            },
            at_ms: 5,
            salt: "ab".into(),
        };
        let bytes = serde_json::to_vec(&entry).unwrap();
        assert_eq!(ParsedEntry::parse(&bytes), ParsedEntry::Known(entry));
        assert!(!String::from_utf8(bytes).unwrap().contains("\"by\""));
    }
}
