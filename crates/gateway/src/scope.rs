//! What a tenant's own access key may do inside its tenant: its key's policy (a scoped key's,
//! as the trustee returned it with the signature check, bound by the seal of its secret) and
//! the bucket's policy (kept in the catalog), evaluated for each request after tenant
//! isolation (`crate::access`), an explicit `Deny` of either winning.
//!
//! A bucket policy narrows: its `Deny` applies to the keys it names, its `Allow` grants a key
//! nothing beyond its own scope (a key of the whole tenant may do everything anyway, and a
//! scoped key's limit is the one its tenant's admin signed). So an edit of the catalog's copy
//! can at most take a `Deny` away, giving a tenant's own key back what its trustee-bound
//! scope allows; it never reaches another tenant, an anonymous caller or an operator. Requests
//! under a grant are the trustee's alone and meet no policy here.
//!
//! It also owns the stored forms of bucket policies and Block Public Access settings
//! (`bucket_configs`, kinds `policy` and `public_access_block`) and a short-lived cache of
//! the policies. It never sees keys, secrets or object data.

use crate::error;
use obhut_catalog::{Bucket, Catalog, config_kind};
use obhut_core::iam::{self, Decision, Kind, Policy};
use s3s::{S3Error, S3ErrorCode, S3Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a gateway uses a bucket policy it read before reading it again: a change made
/// through another gateway applies within this time (S3's policy changes are eventually
/// consistent as well); one made through this gateway applies at once.
const POLICY_CACHE_TTL: Duration = Duration::from_secs(1);
/// More cached entries than this and the cache starts over.
const POLICY_CACHE_ENTRIES: usize = 4096;
/// The format of the stored records (a field of its own, so a later release can convert).
const FORMAT: u32 = 1;

/// A bucket policy as stored: the text as the tenant sent it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredPolicy {
    pub format: u32,
    pub policy: String,
}

impl StoredPolicy {
    #[must_use]
    pub fn new(policy: String) -> Self {
        Self {
            format: FORMAT,
            policy,
        }
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Self>(bytes)
            .ok()
            .filter(|p| p.format == FORMAT)
    }
}

/// Block Public Access, as stored; absent means every setting on (obhut's default, as S3's
/// for new buckets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::struct_excessive_bools)]
pub struct PublicAccessBlock {
    pub format: u32,
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

impl Default for PublicAccessBlock {
    fn default() -> Self {
        Self {
            format: FORMAT,
            block_public_acls: true,
            ignore_public_acls: true,
            block_public_policy: true,
            restrict_public_buckets: true,
        }
    }
}

/// The bucket's Block Public Access settings (every one on if none are stored, or if the
/// record cannot be read: refusing is the safe side).
pub async fn public_access_block(
    catalog: &dyn Catalog,
    bucket: &Bucket,
) -> S3Result<PublicAccessBlock> {
    Ok(catalog
        .get_bucket_config(bucket, config_kind::PUBLIC_ACCESS_BLOCK)
        .await
        .map_err(error::catalog)?
        .and_then(|b| serde_json::from_slice::<PublicAccessBlock>(&b).ok())
        .filter(|p| p.format == FORMAT)
        .unwrap_or_default())
}

/// The bucket policy's text, if one is set.
pub async fn stored_policy(catalog: &dyn Catalog, bucket: &Bucket) -> S3Result<Option<String>> {
    Ok(catalog
        .get_bucket_config(bucket, config_kind::POLICY)
        .await
        .map_err(error::catalog)?
        .and_then(|b| StoredPolicy::decode(&b))
        .map(|p| p.policy))
}

/// A bucket's name and incarnation (`created_ms`), and when its policy was read, with it.
type Entries = HashMap<(String, i64), (Instant, Option<Arc<Policy>>)>;

/// The parsed bucket policies of recently used buckets (by name and incarnation).
#[derive(Default)]
pub struct PolicyCache {
    entries: Mutex<Entries>,
}

impl PolicyCache {
    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The bucket's policy, parsed. A stored policy that no longer parses (an edit of the
    /// catalog, say) denies everything rather than nothing.
    pub async fn policy(
        &self,
        catalog: &dyn Catalog,
        bucket: &Bucket,
    ) -> S3Result<Option<Arc<Policy>>> {
        let key = (bucket.name.clone(), bucket.created_ms);
        if let Some((at, p)) = self.entries().get(&key)
            && at.elapsed() < POLICY_CACHE_TTL
        {
            return Ok(p.clone());
        }
        let parsed = stored_policy(catalog, bucket).await?.map(|text| {
            Arc::new(
                Policy::parse(&text, Kind::Bucket(&bucket.name)).unwrap_or_else(|e| {
                    tracing::error!(error = %e, "a stored bucket policy does not parse: everything is denied until it is replaced");
                    deny_all()
                }),
            )
        });
        let mut entries = self.entries();
        if entries.len() >= POLICY_CACHE_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), parsed.clone()));
        Ok(parsed)
    }

    /// Drops the cached policy of `bucket` (after this gateway changed it).
    pub fn forget(&self, bucket: &Bucket) {
        self.entries()
            .remove(&(bucket.name.clone(), bucket.created_ms));
    }
}

fn deny_all() -> Policy {
    Policy::parse(
        r#"{"Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#,
        Kind::Key,
    )
    .unwrap_or_else(|_| unreachable!("a fixed policy parses"))
}

/// Who asks and over what connection: what a policy's conditions can be judged on.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The access key id that signed the request.
    pub principal: String,
    /// The key's own policy; `None` for a key of the whole tenant.
    pub key_policy: Option<Arc<Policy>>,
    pub connection: Option<obhut_listen::Connection>,
}

/// One thing a request does: an action on a resource (with a listing's parameters).
#[derive(Debug, Clone, Copy)]
pub struct Act<'a> {
    pub action: &'a str,
    pub resource: &'a str,
    pub prefix: Option<&'a str>,
    pub delimiter: Option<&'a str>,
}

/// Actions a key of the whole tenant may always take on a bucket's policy, whatever the
/// policy says (as an account's root user in S3): no policy locks its tenant out.
const POLICY_MANAGEMENT: [&str; 3] = [
    "s3:GetBucketPolicy",
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
];

impl Scope {
    /// `Ok` if the key's scope and the bucket's policy let `act` happen.
    pub fn check(&self, act: &Act<'_>, bucket_policy: Option<&Policy>) -> S3Result<()> {
        let request = iam::Request {
            principal: &self.principal,
            action: act.action,
            resource: act.resource,
            secure_transport: self.connection.map(|c| c.tls),
            source_ip: self.connection.map(|c| c.peer.ip()),
            prefix: act.prefix,
            delimiter: act.delimiter,
            partial: false,
        };
        let manages_policy = self.key_policy.is_none() && POLICY_MANAGEMENT.contains(&act.action);
        if !manages_policy
            && let Some(p) = bucket_policy
            && p.evaluate(&request) == Decision::Deny
        {
            return Err(denied(&format!(
                "{} is denied by the bucket policy",
                act.action
            )));
        }
        match self.key_policy.as_deref().map(|p| p.evaluate(&request)) {
            None | Some(Decision::Allow) => Ok(()),
            Some(Decision::Deny) => Err(denied(&format!(
                "{} is denied by this access key's policy",
                act.action
            ))),
            Some(Decision::None) => Err(denied(&format!(
                "{} on {} is not within this access key's scope",
                act.action, act.resource
            ))),
        }
    }
}

fn denied(message: &str) -> S3Error {
    S3Error::with_message(S3ErrorCode::AccessDenied, message.to_owned())
}

/// The IAM action of an operation (as `crate::access::action` names it); `None` for one whose
/// actions are checked per entry by the operation itself (DeleteObjects). An operation obhut
/// does not name here is `s3:` and its name, which only a wildcard allows.
#[must_use]
pub fn s3_action(operation: &str) -> Option<String> {
    let a = match operation {
        "DeleteObjects" => return None,
        "GetObject" | "HeadObject" => "s3:GetObject",
        "GetObjectVersion" => "s3:GetObjectVersion",
        "PutObject"
        | "CopyObject"
        | "CopyObjectFromVersion"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "UploadPartCopyFromVersion"
        | "CompleteMultipartUpload" => "s3:PutObject",
        "ListParts" => "s3:ListMultipartUploadParts",
        "ListObjects" | "ListObjectsV2" | "HeadBucket" => "s3:ListBucket",
        "ListObjectVersions" => "s3:ListBucketVersions",
        "ListMultipartUploads" => "s3:ListBucketMultipartUploads",
        "ListBuckets" => "s3:ListAllMyBuckets",
        "GetBucketCors" => "s3:GetBucketCORS",
        "PutBucketCors" | "DeleteBucketCors" => "s3:PutBucketCORS",
        "GetPublicAccessBlock" => "s3:GetBucketPublicAccessBlock",
        "PutPublicAccessBlock" | "DeletePublicAccessBlock" => "s3:PutBucketPublicAccessBlock",
        "GetBucketLifecycleConfiguration" | "GetBucketLifecycle" => "s3:GetLifecycleConfiguration",
        "PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle" => {
            "s3:PutLifecycleConfiguration"
        }
        "GetObjectLockConfiguration" => "s3:GetBucketObjectLockConfiguration",
        "PutObjectLockConfiguration" => "s3:PutBucketObjectLockConfiguration",
        "GetBucketEncryption" => "s3:GetEncryptionConfiguration",
        "PutBucketEncryption" | "DeleteBucketEncryption" => "s3:PutEncryptionConfiguration",
        "DeleteBucketTagging" => "s3:PutBucketTagging",
        other => return Some(format!("s3:{other}")),
    };
    Some(a.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(policy: Option<&str>) -> Scope {
        Scope {
            principal: "OBKAAAAAAAAAAAAAAAAA".into(),
            key_policy: policy.map(|p| Arc::new(Policy::parse(p, Kind::Key).unwrap())),
            connection: Some(obhut_listen::Connection {
                peer: "127.0.0.1:5000".parse().unwrap(),
                tls: false,
            }),
        }
    }

    fn act<'a>(action: &'a str, resource: &'a str) -> Act<'a> {
        Act {
            action,
            resource,
            prefix: None,
            delimiter: None,
        }
    }

    #[test]
    fn a_bucket_policy_deny_beats_a_keys_allow_and_its_allow_widens_nothing() {
        let read_only = iam::Preset::ReadOnly.document(&["b".into()], None).unwrap();
        let key = scope(Some(&read_only));
        let whole = scope(None);
        let deny_get = Policy::parse(
            r#"{"Statement":[
              {"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/secret/*"},
              {"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"]},
              {"Effect":"Deny","Principal":"*","Action":"s3:*Policy","Resource":"arn:aws:s3:::b"}]}"#,
            Kind::Bucket("b"),
        )
        .unwrap();
        let p = Some(&deny_get);
        assert!(
            key.check(&act("s3:GetObject", "arn:aws:s3:::b/x"), p)
                .is_ok()
        );
        assert!(
            key.check(&act("s3:GetObject", "arn:aws:s3:::b/secret/x"), p)
                .is_err()
        );
        assert!(
            whole
                .check(&act("s3:GetObject", "arn:aws:s3:::b/secret/x"), p)
                .is_err()
        );
        // The bucket policy allows s3:*, but the key stays read-only.
        assert!(
            key.check(&act("s3:PutObject", "arn:aws:s3:::b/x"), p)
                .is_err()
        );
        assert!(
            whole
                .check(&act("s3:PutObject", "arn:aws:s3:::b/x"), p)
                .is_ok()
        );
        // No policy locks out a key of the whole tenant from the policy itself; a scoped key
        // it does deny.
        assert!(
            whole
                .check(&act("s3:DeleteBucketPolicy", "arn:aws:s3:::b"), p)
                .is_ok()
        );
        let full = scope(Some(&iam::Preset::Full.document(&[], None).unwrap()));
        assert!(
            full.check(&act("s3:DeleteBucketPolicy", "arn:aws:s3:::b"), p)
                .is_err()
        );
    }

    #[test]
    fn operations_name_their_actions() {
        assert_eq!(s3_action("HeadObject").as_deref(), Some("s3:GetObject"));
        assert_eq!(
            s3_action("DeleteObjectVersion").as_deref(),
            Some("s3:DeleteObjectVersion")
        );
        assert_eq!(s3_action("UploadPart").as_deref(), Some("s3:PutObject"));
        assert_eq!(s3_action("DeleteObjects"), None);
        assert_eq!(
            s3_action("PutBucketPolicy").as_deref(),
            Some("s3:PutBucketPolicy")
        );
        assert_eq!(s3_action("Frobnicate").as_deref(), Some("s3:Frobnicate"));
        // Every fixed action is one a policy may name.
        for op in [
            "GetObject",
            "GetObjectVersion",
            "PutObject",
            "ListParts",
            "ListObjectsV2",
            "ListObjectVersions",
            "ListMultipartUploads",
            "ListBuckets",
            "GetBucketCors",
            "PutBucketCors",
            "GetPublicAccessBlock",
            "PutPublicAccessBlock",
            "GetBucketEncryption",
            "GetObjectLockConfiguration",
            "DeleteObject",
            "DeleteObjectVersion",
            "AbortMultipartUpload",
            "GetBucketAcl",
            "PutObjectAcl",
            "GetBucketPolicyStatus",
            "GetBucketOwnershipControls",
            "GetBucketVersioning",
            "PutBucketVersioning",
            "GetObjectTagging",
            "GetObjectVersionTagging",
        ] {
            let a = s3_action(op).unwrap();
            assert!(iam::ACTIONS.contains(&a.as_str()), "{op}: {a}");
        }
    }
}
