//! The admin API's own request and response bodies (those it does not pass on from the
//! trustee, which are in [`obhut_trustee_client::views`] and
//! [`obhut_trustee_client::log_entry`]), shared with the CLI. Field names are the JSON on the
//! wire, which scripts and tests parse: they do not change.
//!
//! The site, repair and residency answers keep their fields in alphabetical order, the order
//! they were written in before they were typed (a `serde_json::Value` sorts its keys): keep
//! it, so the JSON stays the same byte for byte.
//!
//! Only [`AccessKeyCreated`] carries a secret, once, to the tenant admin who asked for it.

use obhut_core::SiteState;
use obhut_maintenance::RepairStatus;
use obhut_trustee_client::Role;
use obhut_trustee_client::views::AttestationView;
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

/// The answer to a tenant admin's signed `create_access_key`: a new S3 access key, its secret
/// encrypted to the one-time key the admin's CLI named in the statement
/// (`obhut_crypto::delivery`; base64): only that CLI can read it, once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKeyCreated {
    pub tenant: String,
    pub access_key_id: String,
    pub enc: String,
    pub sealed_secret: String,
}

/// One of a tenant's access keys, as the trustee lists it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKeyView {
    pub access_key_id: String,
    /// `active` or `revoked`.
    pub state: String,
    pub created_ms: i64,
    /// A scoped key's policy (IAM JSON); none for a key of the whole tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// `POST /v1/trustee/unseal`: one unseal share (or PIN), encrypted on the officer's machine to
/// the trustee's unseal key (`GET /v1/trustee/unseal-key`). A share in clear (`share`) is
/// refused, by name.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UnsealRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<obhut_trustee_client::SealedShare>,
}

impl Drop for UnsealRequest {
    fn drop(&mut self) {
        if let Some(s) = &mut self.share {
            zeroize::Zeroize::zeroize(s);
        }
    }
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

/// One entry of `GET /v1/sites`: a site of the registry, its backend described without its
/// secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteView {
    /// `fs:PATH`, or `s3:ENDPOINT/BUCKET as ACCESS_KEY`.
    pub backend: String,
    pub id: String,
    pub jurisdiction: String,
    pub location: String,
    /// Whether this process reaches it (its last health check passed).
    pub reachable: bool,
    /// Replicas the catalog records on it.
    pub replicas: u64,
    pub state: SiteState,
}

/// `POST /v1/repair`: whether a pass started (or one was running already), and its progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairStarted {
    pub started: bool,
    pub status: RepairStatus,
}

/// `GET /v1/residency`: a residency report as text
/// ([`obhut_maintenance::ResidencyReport`] as JSON), the SHA-256 of that text, and the
/// trustee's signed attestation of the digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResidencyAnswer {
    pub attestation: AttestationView,
    /// For a page of a tenant's buckets: the `after` of the next page, while more may follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    pub report: String,
    pub sha256: String,
}

#[cfg(test)]
mod tests {
    use super::{RepairStarted, ResidencyAnswer, SiteView};
    use obhut_core::SiteState;
    use obhut_maintenance::{RepairState, RepairStatus};
    use obhut_trustee_client::views::{AttestationView, BucketPolicyView};
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use serde_json::{Value, json};

    /// `typed` gives byte for byte the JSON the admin API built with `json!` for the same
    /// data, and reads back as itself.
    fn same_json<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
        typed: &T,
        untyped: &Value,
    ) {
        let text = serde_json::to_string(typed).unwrap();
        assert_eq!(text, serde_json::to_string(untyped).unwrap());
        assert_eq!(&serde_json::from_str::<T>(&text).unwrap(), typed);
    }

    #[test]
    fn site_answers_are_the_untyped_json() {
        for (state, reachable) in [(SiteState::Active, true), (SiteState::Down, false)] {
            let site = SiteView {
                backend: "s3:https://s3.example/b as AK".into(),
                id: "de-fra".into(),
                jurisdiction: "DE".into(),
                location: "Frankfurt".into(),
                reachable,
                replicas: 42,
                state,
            };
            same_json(
                &vec![site],
                &json!([{
                    "id": "de-fra",
                    "jurisdiction": "DE",
                    "location": "Frankfurt",
                    "state": state.as_str(),
                    "reachable": reachable,
                    "backend": "s3:https://s3.example/b as AK",
                    "replicas": 42u64,
                }]),
            );
        }
    }

    #[test]
    fn repair_answers_are_the_untyped_json() {
        let status = RepairStatus {
            errors: vec!["e".into()],
            objects_done: 3,
            objects_total: 5,
            reason: "operator".into(),
            started_ms: 99,
            state: RepairState::Running,
            ..RepairStatus::default()
        };
        let started = RepairStarted {
            started: true,
            status: status.clone(),
        };
        same_json(&started, &json!({"started": true, "status": json!(status)}));
        // and the status inside is the status's own JSON, not a copy of it
        assert_eq!(
            serde_json::to_value(&started).unwrap()["status"]["state"],
            "running"
        );
    }

    #[test]
    fn residency_answers_are_the_untyped_json() {
        let attestation = json!({"log_index": 17u64, "note": "obhut attestation residency-report\n",
                                 "verifier_key": "log+0123abcd+AAAA"});
        let answer = ResidencyAnswer {
            attestation: serde_json::from_value::<AttestationView>(attestation.clone()).unwrap(),
            next: None,
            report: "{\"generated_ms\":1}".into(),
            sha256: "ab".repeat(32),
        };
        same_json(
            &answer,
            &json!({
                "report": "{\"generated_ms\":1}",
                "sha256": "ab".repeat(32),
                "attestation": attestation,
            }),
        );
        for (jurisdictions, min_sites) in [(Some(vec!["DE".to_owned()]), Some(3u32)), (None, None)]
        {
            let view = BucketPolicyView {
                tenant: "demo".into(),
                bucket: "b".into(),
                jurisdictions: jurisdictions.clone(),
                min_sites,
            };
            // The admin API answers a bucket policy with a `Value` made of this view.
            let v = serde_json::to_value(&view).unwrap();
            same_json(
                &v,
                &json!({"tenant": "demo", "bucket": "b",
                        "jurisdictions": jurisdictions, "min_sites": min_sites}),
            );
        }
    }
}

/// `POST /v1/tenants/{name}/buckets/{bucket}/rotate-key`: the trustee's answer to the tenant
/// admin's signed `rotate_bucket_key` statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateKeyRequest {
    pub ticket: obhut_trustee_client::auth::RequestTicket,
}

/// `GET|PUT /v1/tenants/{tenant}/quota` and `…/buckets/{bucket}/quota`: a tenant's or bucket's
/// quota (`null`: none) and what it holds. `PUT` takes a [`obhut_catalog::Quota`]: absent
/// limits are no limits, and a body without any clears the quota.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaReport {
    pub tenant: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    pub quota: Option<obhut_catalog::Quota>,
    pub usage: obhut_catalog::Usage,
}
