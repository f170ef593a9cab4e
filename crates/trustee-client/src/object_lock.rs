//! Object lock records as they cross the trustee boundary (docs/s3-compatibility.md, "Object
//! lock").
//!
//! A version's retention and legal hold are kept in the catalog as a record the trustee sealed
//! (authenticated under a key of its own, bound to the tenant, bucket, name and version id), so
//! that an edit of the catalog is detected rather than obeyed; whether a retention has passed
//! is judged on the trustee's clock, which the trustee answers with every opened record. A
//! change is sealed only if the trustee finds it allowed after the record it replaces (a
//! COMPLIANCE retention is never shortened nor removed while in force; a GOVERNANCE one only
//! with the bypass), and every seal that locks or unlocks is appended to its log.
//!
//! A version's first record is sealed only for a write the tenant signed
//! ([`LockSeal::request`]): the trustee checks its own ticket for that request, that the
//! request writes that name, that no other version was sealed for it, and that the state is
//! what the request's signed lock headers ask for (or, without them, its bucket's default
//! retention as the tenant's signed PutObjectLockConfiguration set it, which the trustee
//! keeps: [`LockChange::BucketDefault`]). A change of a retention or legal hold is sealed only
//! for the tenant's signed request of that change (its body, the XML, bound by what the
//! request signed and read by the trustee), and only against the latest record the trustee
//! sealed for the version. Every retention is held to the trustee's longest retention
//! ([`DEFAULT_MAX_RETENTION_DAYS`] unless configured).
//!
//! This module holds data only: no key, no clock.

use crate::auth::RequestTicket;
use serde::{Deserialize, Serialize};

/// The longest retention a trustee seals unless configured otherwise: 100 years (of 365.25
/// days) from the moment of the seal, on the trustee's clock.
pub const DEFAULT_MAX_RETENTION_DAYS: i64 = 36_525;

/// The start of the message of a seal refused for a retention beyond the trustee's longest
/// (`TrusteeError::Invalid`): a gateway answers it as S3's `InvalidArgument`.
pub const RETENTION_TOO_LONG: &str = "the retain until date is beyond the longest retention";

/// The three object lock headers of a write as the tenant signed them, in a ticket: mode,
/// retain-until date and legal hold, each as sent (empty if absent), joined by `\n`.
#[must_use]
pub fn signed_lock_headers(
    mode: Option<&str>,
    retain_until: Option<&str>,
    legal_hold: Option<&str>,
) -> Option<String> {
    if mode.is_none() && retain_until.is_none() && legal_hold.is_none() {
        return None;
    }
    Some(format!(
        "{}\n{}\n{}",
        mode.unwrap_or_default(),
        retain_until.unwrap_or_default(),
        legal_hold.unwrap_or_default()
    ))
}

/// PutObject (a PUT of an object name without a subresource and without a copy source).
pub const OP_PUT_OBJECT: &str = "PutObject";
/// CopyObject (a PUT of an object name with a signed `x-amz-copy-source`).
pub const OP_COPY_OBJECT: &str = "CopyObject";
/// A browser form's upload (POST to a bucket).
pub const OP_POST_OBJECT: &str = "PostObject";
/// CreateMultipartUpload (`POST ?uploads`).
pub const OP_CREATE_MULTIPART_UPLOAD: &str = "CreateMultipartUpload";
/// CompleteMultipartUpload (`POST ?uploadId`).
pub const OP_COMPLETE_MULTIPART_UPLOAD: &str = "CompleteMultipartUpload";
/// PutObjectRetention (`PUT ?retention`).
pub const OP_PUT_OBJECT_RETENTION: &str = "PutObjectRetention";
/// PutObjectLegalHold (`PUT ?legal-hold`).
pub const OP_PUT_OBJECT_LEGAL_HOLD: &str = "PutObjectLegalHold";
/// PutObjectLockConfiguration (`PUT` of a bucket with `?object-lock`).
pub const OP_PUT_OBJECT_LOCK_CONFIGURATION: &str = "PutObjectLockConfiguration";
/// CreateBucket with object lock (`PUT` of a bucket without a subresource, with a signed
/// `x-amz-bucket-object-lock-enabled: true`): a bucket with object lock and no default
/// retention. A CreateBucket without it names no operation.
pub const OP_CREATE_BUCKET_WITH_LOCK: &str = "CreateBucket";

/// The operations a ticket names ([`crate::auth::RequestTicket::op`]).
pub const LOCK_OPS: [&str; 9] = [
    OP_PUT_OBJECT,
    OP_COPY_OBJECT,
    OP_POST_OBJECT,
    OP_CREATE_MULTIPART_UPLOAD,
    OP_COMPLETE_MULTIPART_UPLOAD,
    OP_PUT_OBJECT_RETENTION,
    OP_PUT_OBJECT_LEGAL_HOLD,
    OP_PUT_OBJECT_LOCK_CONFIGURATION,
    OP_CREATE_BUCKET_WITH_LOCK,
];

/// How far a first record's retention taken from its bucket's default may end from the
/// default's period counted from the trustee's clock at the seal, either way: the gateway
/// counts it from its own clock when it applies the default, moments before.
pub const DEFAULT_RETENTION_TOLERANCE_MS: i64 = 5 * 60 * 1000;

/// The start of the message of a first record refused because it carries a retention its
/// write did not sign and the trustee knows no default retention of the bucket from the
/// tenant (`TrusteeError::Invalid`): a gateway answers it as S3's `InvalidRequest`.
pub const DEFAULT_NOT_KNOWN: &str =
    "the trustee knows no default retention of this bucket from the tenant";

/// The whole message of [`DEFAULT_NOT_KNOWN`].
pub const DEFAULT_NOT_KNOWN_MESSAGE: &str = "the trustee knows no default retention of this bucket from the tenant: set it again with PutObjectLockConfiguration (the trustee keeps it since this release), or write with x-amz-object-lock-mode and x-amz-object-lock-retain-until-date";

/// Whether `op` makes a version (and so may seal its first record).
#[must_use]
pub fn makes_version(op: Option<&str>) -> bool {
    matches!(
        op,
        Some(OP_PUT_OBJECT | OP_COPY_OBJECT | OP_POST_OBJECT | OP_COMPLETE_MULTIPART_UPLOAD)
    )
}

/// What a signed PutObjectRetention or PutObjectLegalHold says about the lock, in a ticket:
/// the `versionId` it names (empty: the current version), whether it asks to bypass
/// governance retention (`x-amz-bypass-governance-retention: true`, signed) with a key whose
/// own policy allows `s3:BypassGovernanceRetention` on the object (`true`), asks without
/// (`refused`) or does not (empty), and what binds its body ([`body_binding`]; empty: nothing
/// does), joined by `\n`.
#[must_use]
pub fn signed_lock_change(version_id: Option<&str>, bypass: &str, body: &str) -> String {
    format!("{}\n{bypass}\n{body}", version_id.unwrap_or_default())
}

/// [`signed_lock_change`]'s parts: the version named (`None`: the current one), whether
/// the bypass was asked by a key that may, and the body's binding (`None`: nothing binds it);
/// `None` if `text` is not of that form.
#[must_use]
pub fn read_lock_change(text: &str) -> Option<(Option<&str>, bool, Option<&str>)> {
    let mut parts = text.split('\n');
    let (Some(version), Some(bypass), Some(body), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let bypass = match bypass {
        "" | "refused" => false,
        "true" => true,
        _ => return None,
    };
    Some((
        (!version.is_empty()).then_some(version),
        bypass,
        (!body.is_empty()).then_some(body),
    ))
}

/// What binds a signed request's body, for a ticket: the first the request signed of its
/// payload's SHA-256 (`sha256=` and the lower-case hex of `x-amz-content-sha256`, when that is
/// a hash rather than `UNSIGNED-PAYLOAD` or a `STREAMING-…` value), its `Content-MD5`
/// (`content-md5=` and the value as sent), `x-amz-checksum-sha256` or `x-amz-checksum-sha1`
/// (likewise); empty if none (a CRC checksum binds nothing: anyone can make a body match it).
#[must_use]
pub fn body_binding(
    payload: &str,
    content_md5: Option<&str>,
    checksum_sha256: Option<&str>,
    checksum_sha1: Option<&str>,
) -> String {
    if payload.len() == 64 && payload.bytes().all(|b| b.is_ascii_hexdigit()) {
        return format!("sha256={}", payload.to_ascii_lowercase());
    }
    [
        ("content-md5", content_md5),
        ("x-amz-checksum-sha256", checksum_sha256),
        ("x-amz-checksum-sha1", checksum_sha1),
    ]
    .into_iter()
    .find_map(|(name, value)| value.map(|v| format!("{name}={}", v.trim())))
    .unwrap_or_default()
}

/// The start of the message of a change refused because nothing the request signed binds its
/// body (`TrusteeError::Invalid`): a gateway answers it as S3's `InvalidRequest`.
pub const BODY_NOT_SIGNED: &str = "the request body is not bound by its signature";

/// The whole message of [`BODY_NOT_SIGNED`].
pub const BODY_NOT_SIGNED_MESSAGE: &str = "the request body is not bound by its signature: sign its SHA-256 in x-amz-content-sha256, or send a signed Content-MD5, x-amz-checksum-sha256 or x-amz-checksum-sha1 header (a CRC checksum and UNSIGNED-PAYLOAD alone do not bind it)";

/// A bucket's default retention: its mode and its period, `days` or `years` (S3's year:
/// 365 days).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRetention {
    pub mode: LockMode,
    pub days: Option<i64>,
    pub years: Option<i64>,
}

impl DefaultRetention {
    /// The period in milliseconds, as a gateway counts it from the write.
    #[must_use]
    pub fn period_ms(&self) -> i64 {
        const DAY_MS: i64 = 86_400_000;
        self.days.unwrap_or(0).saturating_mul(DAY_MS)
            + self.years.unwrap_or(0).saturating_mul(365 * DAY_MS)
    }
}

/// S3's retention modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LockMode {
    /// Shortened or removed only by a principal allowed to bypass governance retention, who
    /// says so (`x-amz-bypass-governance-retention: true`).
    Governance,
    /// Never shortened nor removed while in force, by anyone.
    Compliance,
}

impl LockMode {
    /// S3's name of the mode.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Governance => "GOVERNANCE",
            Self::Compliance => "COMPLIANCE",
        }
    }

    /// The mode S3 names `s` (case as S3 spells it).
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "GOVERNANCE" => Some(Self::Governance),
            "COMPLIANCE" => Some(Self::Compliance),
            _ => None,
        }
    }
}

/// A version's retention (if any) and legal hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockState {
    /// The retention: its mode and until when (ms since the epoch, the trustee's clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<(LockMode, i64)>,
    #[serde(default)]
    pub legal_hold: bool,
}

impl LockState {
    /// Whether the state keeps its version from being removed at `now_ms`.
    #[must_use]
    pub fn holds(&self, now_ms: i64) -> bool {
        self.legal_hold || self.retention_in_force(now_ms).is_some()
    }

    /// The retention, if it has not passed at `now_ms`.
    #[must_use]
    pub fn retention_in_force(&self, now_ms: i64) -> Option<(LockMode, i64)> {
        self.retention.filter(|(_, until)| *until > now_ms)
    }
}

/// The version a record belongs to: bound into the record's seal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockTarget {
    pub tenant: String,
    pub bucket: String,
    pub key: String,
    pub version_id: String,
}

/// What changes a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockChange {
    /// The version is written (PUT, copy, completion): its first record.
    Written,
    /// PutObjectRetention.
    Retention,
    /// PutObjectLegalHold.
    LegalHold,
    /// CreateMultipartUpload's lock headers, sealed for the upload's completion (the target's
    /// `version_id` is the upload id): no version's record, nothing listed, nothing logged.
    Upload,
    /// PutObjectLockConfiguration (or CreateBucket with object lock): the bucket's default
    /// retention (or none), which the trustee keeps from the tenant's signed request (its
    /// body) and alone lets a write without lock headers have. The target names the bucket (`key` and `version_id`
    /// empty); nothing is sealed, listed or logged.
    BucketDefault,
    /// Asked one release to abandon a version's first record whose write did not commit.
    /// Every trustee since refuses it (only the provider held the ticket that allowed it, so
    /// it could unlock a committed version); kept so that log entries of that release
    /// (change `abandoned`) still read.
    Abandoned,
}

/// A request to seal a version's new record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockSeal {
    pub target: LockTarget,
    pub state: LockState,
    pub change: LockChange,
    /// The record it replaces, as stored (none for a version just written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// The request asked to bypass governance retention and its principal may (the trustee
    /// honours it only if its ticket says the request signed it with a key that may).
    #[serde(default)]
    pub bypass_governance: bool,
    /// The trustee's ticket for the tenant's signed request: the write that makes the version
    /// (for [`LockChange::Upload`], creates the upload), or the PutObjectRetention or
    /// PutObjectLegalHold of a change. Needed for every seal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestTicket>,
    /// For the first record of a version a multipart upload's completion writes: the upload
    /// (its id) and what the trustee sealed for it at its creation ([`LockChange::Upload`];
    /// none if it was created without lock headers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<UploadLock>,
    /// For a change ([`LockChange::Retention`], [`LockChange::LegalHold`],
    /// [`LockChange::BucketDefault`]): the request's body (its XML) as received. The trustee checks it against what its ticket binds
    /// ([`body_binding`]), reads it itself and seals only the state it asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// The upload a completion's first record comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadLock {
    pub upload_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
}

/// A stored record to open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockOpen {
    pub target: LockTarget,
    pub sealed: String,
}

/// A record sealed or opened, with the trustee's clock when it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockAnswer {
    /// The record as the catalog stores it.
    pub sealed: String,
    pub state: LockState,
    /// The trustee's clock (ms since the epoch).
    pub now_ms: i64,
}

/// Why a change is refused, judged against the record it replaces at `now_ms`; `None` if it
/// is allowed.
#[must_use]
pub fn refusal(
    previous: &LockState,
    next: &LockState,
    bypass_governance: bool,
    now_ms: i64,
) -> Option<&'static str> {
    let (mode, until) = previous.retention_in_force(now_ms)?;
    let kept = next
        .retention
        .is_some_and(|(m, u)| u >= until && (m == mode || m == LockMode::Compliance));
    if kept {
        return None;
    }
    match mode {
        LockMode::Compliance => {
            Some("a COMPLIANCE retention in force is never shortened, weakened nor removed")
        }
        LockMode::Governance if bypass_governance => None,
        LockMode::Governance => Some(
            "a GOVERNANCE retention in force is shortened or removed only with x-amz-bypass-governance-retention by a principal allowed s3:BypassGovernanceRetention",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ret(mode: LockMode, until: i64) -> LockState {
        LockState {
            retention: Some((mode, until)),
            legal_hold: false,
        }
    }

    #[test]
    fn compliance_is_only_extended_while_in_force() {
        let c = ret(LockMode::Compliance, 100);
        assert!(refusal(&c, &ret(LockMode::Compliance, 200), false, 50).is_none());
        assert!(refusal(&c, &ret(LockMode::Compliance, 99), true, 50).is_some());
        assert!(refusal(&c, &ret(LockMode::Governance, 200), true, 50).is_some());
        assert!(refusal(&c, &LockState::default(), true, 50).is_some());
        // Once passed, anything goes.
        assert!(refusal(&c, &LockState::default(), false, 100).is_none());
    }

    #[test]
    fn governance_is_shortened_only_with_the_bypass() {
        let g = ret(LockMode::Governance, 100);
        assert!(refusal(&g, &ret(LockMode::Governance, 150), false, 50).is_none());
        assert!(refusal(&g, &ret(LockMode::Compliance, 100), false, 50).is_none());
        assert!(refusal(&g, &ret(LockMode::Governance, 60), false, 50).is_some());
        assert!(refusal(&g, &LockState::default(), false, 50).is_some());
        assert!(refusal(&g, &LockState::default(), true, 50).is_none());
    }

    #[test]
    fn a_legal_hold_or_a_retention_in_force_holds() {
        assert!(!LockState::default().holds(0));
        assert!(
            LockState {
                retention: None,
                legal_hold: true
            }
            .holds(0)
        );
        assert!(ret(LockMode::Governance, 10).holds(9));
        assert!(!ret(LockMode::Governance, 10).holds(10));
    }
}
