//! The admin API's own request and response bodies (those it does not pass on from the
//! trustee, which are in [`obhut_trustee_client::views`] and
//! [`obhut_trustee_client::log_entry`]), shared with the CLI. Field names are the JSON on the
//! wire, which scripts and tests parse: they do not change.
//!
//! Only [`AccessKeyCreated`] carries a secret, once, to the tenant admin who asked for it.

use obhut_trustee_client::Role;
use serde::{Deserialize, Serialize};

/// `GET /v1/whoami`: the authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoAmI {
    pub name: String,
    pub role: Role,
    /// The tenant of a tenant admin.
    pub tenant: Option<String>,
}

/// One entry of `GET /v1/tenants`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSummary {
    pub name: String,
    pub jurisdictions: Vec<String>,
    pub min_sites: u32,
}

/// `POST /v1/tenants/{name}/keys`: a new S3 access key, its secret shown only now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKeyCreated {
    pub tenant: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// `POST /v1/trustee/unseal`: one unseal share.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UnsealRequest {
    pub share: String,
}

/// `{"error": code, "message": ...}`, the body of every admin API error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}

/// `POST /v1/tenants/{name}/buckets/{bucket}/rotate-key`: the job that rewraps the keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStarted {
    pub job: String,
}

/// `GET /v1/jobs/{id}`: a background job and its progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
    /// `rotate-bucket-key`.
    pub kind: String,
    /// `running`, `done` or `failed`.
    pub state: String,
    pub done: u64,
    pub total: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<RotationResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a bucket-key rotation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationResult {
    /// The key version now in use.
    pub version: u32,
    /// Object keys rewrapped under it.
    pub rewrapped: u64,
    /// Objects replaced meanwhile (their keys were new already).
    pub skipped: u64,
}
