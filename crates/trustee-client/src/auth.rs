//! Who signed an S3 request, as the trustee answers it.
//!
//! The gateway never holds an S3 secret key: it sends the signed request's parts
//! ([`SignedRequest`]) to the trustee, which holds every secret sealed, checks the signature,
//! the clock and the region on its own, and answers with the request's principal and a
//! [`RequestTicket`]. A customer-initiated key release names that ticket, so the trustee
//! releases a key only for a request the customer actually signed, for the bucket that request
//! names. Streaming uploads are checked chunk by chunk in batches ([`ChunkBatch`]), each
//! continuing a [`ChainToken`] the trustee issued.
//!
//! Nothing here is secret: tickets and chain tokens carry the trustee's MAC, not a key.

pub use obhut_sigv4::SignedRequest;
pub use obhut_sigv4::post::SignedPost;
use serde::{Deserialize, Serialize};

/// Why the trustee refused a signature. Each maps to one S3 error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthFailure {
    /// No such access key (or it was revoked).
    UnknownKey,
    /// The signature does not match.
    SignatureMismatch,
    /// The request time is more than 15 minutes from the trustee's clock.
    Skewed,
    /// A presigned URL that has expired.
    Expired,
    /// The credential scope names another region or service.
    WrongScope,
    /// Too many failed checks for this key (or in all) lately: try again later.
    RateLimited,
    /// The parts cannot form a SigV4 request.
    Malformed,
    /// The key's record failed its integrity check (an alarm is in the log).
    Integrity,
    /// A browser form's policy document has expired.
    PolicyExpired,
    /// A browser form's fields do not meet its policy's conditions.
    PolicyConditionFailed,
    /// A browser form's policy document cannot be read.
    PolicyMalformed,
}

impl AuthFailure {
    /// The S3 error code a gateway answers with.
    #[must_use]
    pub fn s3_code(self) -> &'static str {
        match self {
            Self::UnknownKey => "InvalidAccessKeyId",
            Self::SignatureMismatch => "SignatureDoesNotMatch",
            Self::Skewed => "RequestTimeTooSkewed",
            Self::Expired | Self::Integrity => "AccessDenied",
            Self::WrongScope => "AuthorizationHeaderMalformed",
            Self::RateLimited => "SlowDown",
            Self::Malformed => "InvalidRequest",
            Self::PolicyExpired | Self::PolicyConditionFailed => "AccessDenied",
            Self::PolicyMalformed => "InvalidPolicyDocument",
        }
    }

    #[must_use]
    pub fn message(self) -> &'static str {
        match self {
            Self::UnknownKey => "The AWS access key Id you provided does not exist in our records.",
            Self::SignatureMismatch => {
                "The request signature we calculated does not match the signature you provided."
            }
            Self::Skewed => {
                "The difference between the request time and the current time is too large."
            }
            Self::Expired => "Request has expired",
            Self::WrongScope => "The credential's region or service is not this server's.",
            Self::RateLimited => "Too many failed authentication attempts; please slow down.",
            Self::Malformed => "The request's authentication is malformed.",
            Self::Integrity => "Access Denied",
            Self::PolicyExpired => "Invalid according to Policy: Policy expired.",
            Self::PolicyConditionFailed => "Invalid according to Policy: Policy Condition failed",
            Self::PolicyMalformed => "Invalid Policy: the policy document cannot be read.",
        }
    }

    /// The wire name (as serialized).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::UnknownKey => "unknown_key",
            Self::SignatureMismatch => "signature_mismatch",
            Self::Skewed => "skewed",
            Self::Expired => "expired",
            Self::WrongScope => "wrong_scope",
            Self::RateLimited => "rate_limited",
            Self::Malformed => "malformed",
            Self::Integrity => "integrity",
            Self::PolicyExpired => "policy_expired",
            Self::PolicyConditionFailed => "policy_condition_failed",
            Self::PolicyMalformed => "policy_malformed",
        }
    }

    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::UnknownKey,
            Self::SignatureMismatch,
            Self::Skewed,
            Self::Expired,
            Self::WrongScope,
            Self::RateLimited,
            Self::Malformed,
            Self::Integrity,
            Self::PolicyExpired,
            Self::PolicyConditionFailed,
            Self::PolicyMalformed,
        ]
        .into_iter()
        .find(|f| f.name() == name)
    }
}

/// The trustee's word that it verified a request: which request (its digest), for whom, and
/// which buckets it names (its path's, and a copy's source). Valid for 15 minutes, and only
/// at the trustee that issued it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestTicket {
    /// SHA-256 of the canonical request and its signature.
    pub digest: String,
    pub tenant: String,
    pub access_key_id: String,
    /// The buckets the request names.
    pub buckets: Vec<String>,
    /// What object keys the request may have opened, as the trustee read it from the signed
    /// request ([`TicketScope`]'s text forms).
    #[serde(default)]
    pub scope: Vec<String>,
    /// What the request signed about object lock: for a write, its lock headers
    /// ([`crate::object_lock::signed_lock_headers`]; none without them); for a
    /// PutObjectRetention or PutObjectLegalHold, the version it names and its bypass
    /// ([`crate::object_lock::signed_lock_change`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    /// The S3 operation of the request, as the trustee read it from its signed method, query
    /// and headers, for the operations that may seal an object lock record
    /// ([`crate::object_lock::LOCK_OPS`]); none for every other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    pub issued_ms: i64,
    /// The trustee's MAC over the fields above.
    pub mac: String,
}

/// What a verified request may have object keys opened for (per-object key release).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketScope {
    /// An object a GET or HEAD names (its path), or a copy's source: its key may be opened:
    /// `r:<bucket>/<key>`.
    Read { bucket: String, key: String },
    /// An object a PUT, POST or DELETE names: a new key may be wrapped for it, an upload's
    /// key opened (with [`Self::Upload`]), its ETag read: `w:<bucket>/<key>`.
    Write { bucket: String, key: String },
    /// The multipart upload a request names (`uploadId`): only its key may be opened:
    /// `u:<bucket>/<upload id>`.
    Upload { bucket: String, upload: String },
    /// A listing (a GET of the bucket with only listing parameters): the ETags of names under
    /// `prefix`, never a key: `p:<bucket>/<prefix>`.
    Prefix { bucket: String, prefix: String },
    /// A signed statement of the tenant's admin about the bucket (a key rotation): `s:<bucket>`.
    Statement { bucket: String },
}

impl TicketScope {
    #[must_use]
    pub fn text(&self) -> String {
        match self {
            Self::Read { bucket, key } => format!("r:{bucket}/{key}"),
            Self::Write { bucket, key } => format!("w:{bucket}/{key}"),
            Self::Upload { bucket, upload } => format!("u:{bucket}/{upload}"),
            Self::Prefix { bucket, prefix } => format!("p:{bucket}/{prefix}"),
            Self::Statement { bucket } => format!("s:{bucket}"),
        }
    }

    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let (kind, rest) = text.split_at_checked(2)?;
        if kind == "s:" {
            return Some(Self::Statement {
                bucket: rest.to_owned(),
            });
        }
        let (bucket, name) = rest.split_once('/')?;
        let (bucket, name) = (bucket.to_owned(), name.to_owned());
        match kind {
            "r:" => Some(Self::Read { bucket, key: name }),
            "w:" => Some(Self::Write { bucket, key: name }),
            "u:" => Some(Self::Upload {
                bucket,
                upload: name,
            }),
            "p:" => Some(Self::Prefix {
                bucket,
                prefix: name,
            }),
            _ => None,
        }
    }
}

/// What an object-key operation needs of the verified request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// The object's key itself, to read its data (or, with `upload`, an upload's key).
    Open,
    /// A new key wrapped for the name (a write).
    Wrap,
    /// Only the ETag, or whether the key opens (listings, conditional writes).
    Etag,
}

impl RequestTicket {
    fn scopes(&self) -> impl Iterator<Item = TicketScope> + '_ {
        self.scope.iter().filter_map(|s| TicketScope::parse(s))
    }

    /// Whether the verified request covers `key_use` of the key of object `key` of `bucket`
    /// (for a multipart upload's key: `upload`).
    #[must_use]
    pub fn covers(&self, bucket: &str, key: &str, upload: Option<&str>, key_use: KeyUse) -> bool {
        let reads = self.scopes().any(
            |s| matches!(s, TicketScope::Read { bucket: b, key: k } if b == bucket && k == key),
        );
        let writes = self.scopes().any(
            |s| matches!(s, TicketScope::Write { bucket: b, key: k } if b == bucket && k == key),
        );
        let this_upload = |u: &str| {
            self.scopes().any(
                |s| matches!(s, TicketScope::Upload { bucket: b, upload: x } if b == bucket && x == u),
            )
        };
        let listed = || {
            self.scopes().any(|s| {
                matches!(s, TicketScope::Prefix { bucket: b, prefix } if b == bucket && key.starts_with(&prefix))
            })
        };
        match (key_use, upload) {
            (KeyUse::Open, None) => reads,
            (KeyUse::Open, Some(u)) => (reads || writes) && this_upload(u),
            (KeyUse::Wrap, _) => writes,
            (KeyUse::Etag, _) => reads || writes || listed(),
        }
    }

    /// Whether the ticket is for a signed statement of the tenant's admin about `bucket`.
    #[must_use]
    pub fn is_statement_for(&self, bucket: &str) -> bool {
        self.scopes()
            .any(|s| matches!(s, TicketScope::Statement { bucket: b } if b == bucket))
    }
}

/// Whose request it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Signer {
    /// An access key of the tenant; a scoped key carries its policy (IAM JSON,
    /// `obhut_core::iam`), read from the trustee's own record, whose seal binds it: the
    /// gateway evaluates it for each request, and the trustee's ticket covers only objects it
    /// could allow.
    Tenant {
        tenant: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        policy: Option<String>,
    },
    /// A grant's temporary credentials (the grant's scope is checked per operation).
    Grant { grant_id: String, tenant: String },
}

impl Signer {
    #[must_use]
    pub fn tenant(&self) -> &str {
        match self {
            Self::Tenant { tenant, .. } | Self::Grant { tenant, .. } => tenant,
        }
    }
}

/// A verified request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verified {
    pub signer: Signer,
    pub ticket: RequestTicket,
    /// For a streaming upload with signed chunks: where its chain of chunk signatures starts.
    pub chain: Option<ChainToken>,
}

/// Where a chain of chunk signatures stands: the last signature the trustee verified in it,
/// with the trustee's MAC so a gateway cannot start a chain elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainToken {
    pub access_key_id: String,
    pub amz_date: String,
    pub scope: String,
    pub previous_signature: String,
    pub mac: String,
}

/// One chunk as the gateway decoded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkSignature {
    /// Hex SHA-256 of the chunk's data.
    pub sha256: String,
    pub signature: String,
}

/// Chunks of one upload to check, continuing `chain`; the last batch carries the final
/// (empty) chunk and, for uploads with trailers, the trailer and its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkBatch {
    pub chain: ChainToken,
    pub chunks: Vec<ChunkSignature>,
    /// `name:value\n` of each trailing header, sorted (base64 is not needed: trailers are
    /// ASCII).
    pub trailer: Option<String>,
    pub trailer_signature: Option<String>,
}
