//! Who is asking, and what a request may touch: the trustee verified the request's signature
//! ([`crate::authn`]) and named its tenant; the request is bound to that tenant, and its
//! bucket is checked to belong to it before any operation runs. Nothing the catalog says about
//! access keys is consulted. Anonymous requests are refused.
//!
//! The outcome is one [`ReqCtx`] per request (tenant, justification, checked bucket), put into
//! the request's extensions; operations take it from there and never repeat these checks.
//! This module never sees request bodies or keys.
//!
//! Requests signed with a grant's temporary credentials (access key ids starting `OBG`) are
//! checked by the trustee itself: session token, the grant's state, operations, bucket and
//! prefix, against the request it verified; the trustee logs each one, allowed or not. Such a request then acts for the
//! grant's tenant and asks for keys with the grant as justification. A copy's source is read
//! here with the parser the copy operations get their source from ([`copy_source_header`],
//! [`copy_source_object`]), so the grant is checked for the object the operation reads.
//!
//! A request signed with a tenant's own key then meets its key's scope and the bucket's
//! policy ([`crate::scope`]): the action it performs on the object or bucket it names, a
//! copy's read of its source, and (checked by the operation, entry by entry) each deletion of
//! a DeleteObjects.

use crate::authn::Authenticated;
use crate::error;
use crate::scope::{Act, PolicyCache, Scope};
use obhut_catalog::{Bucket, Catalog, Tenant};
use obhut_core::iam::{self, Kind, Policy};
use obhut_trustee_client::auth::{RequestTicket, Signer};
use obhut_trustee_client::{GrantAccess, Justification, TrusteeClient};
use s3s::access::{S3Access, S3AccessContext};
use s3s::dto::CopySource;
use s3s::path::S3Path;
use s3s::{S3ErrorCode, S3Request, S3Result, s3_error};
use std::sync::Arc;

/// The operation that names a bucket which does not exist yet: its bucket is not checked.
const CREATES_ITS_BUCKET: &str = "CreateBucket";

/// Everything an operation needs to know about who asks, built once by the access check.
#[derive(Debug, Clone)]
pub struct ReqCtx {
    /// The tenant the request acts for.
    pub tenant: Arc<Tenant>,
    /// Why keys are released for this request: the grant, or the tenant's principal and the
    /// operation.
    pub justification: Justification,
    /// The bucket of the request's path, checked to belong to `tenant` (none for requests
    /// without a bucket, and for CreateBucket).
    bucket: Option<Bucket>,
    /// The signing key's scope, for a tenant's own key (none under a grant).
    scope: Option<Arc<Scope>>,
    /// The checked bucket's policy, if it has one (read for tenants' own keys only).
    bucket_policy: Option<Arc<Policy>>,
    /// The trustee's ticket for the verified request (a grant's too): what a new version's
    /// object lock record is sealed against.
    pub ticket: Option<RequestTicket>,
}

impl ReqCtx {
    /// The context the access check put into `req`.
    /// Shared, not copied: it holds the request's ticket and the bucket's record.
    pub fn of<T>(req: &S3Request<T>) -> S3Result<Arc<Self>> {
        req.extensions
            .get::<Arc<Self>>()
            .cloned()
            .ok_or_else(|| error::with(S3ErrorCode::AccessDenied, error::NOT_AUTHORISED))
    }

    /// The request's bucket, which belongs to the caller's tenant.
    pub fn bucket(&self) -> S3Result<&Bucket> {
        self.bucket
            .as_ref()
            .ok_or_else(|| error::with(S3ErrorCode::InternalError, error::NO_CHECKED_BUCKET))
    }

    /// Whether the key's scope and the bucket's policy let it delete `key` of the request's
    /// bucket (a version of it by id: `by_version`): what DeleteObjects checks for each of its
    /// entries, as S3 does.
    pub fn may_delete(&self, key: &str, by_version: bool) -> S3Result<()> {
        let Some(scope) = &self.scope else {
            return Ok(());
        };
        let resource = iam::object_arn(&self.bucket()?.name, key);
        let action = if by_version {
            "s3:DeleteObjectVersion"
        } else {
            "s3:DeleteObject"
        };
        scope.check(
            &Act {
                action,
                resource: &resource,
                prefix: None,
                delimiter: None,
            },
            self.bucket_policy.as_deref(),
        )
    }

    /// Whether the key's scope and the bucket's policy let it bypass a GOVERNANCE retention of
    /// `key` (`s3:BypassGovernanceRetention`); never under a grant.
    pub fn may_bypass_governance(&self, key: &str) -> S3Result<()> {
        let Some(scope) = &self.scope else {
            return Err(error::with(S3ErrorCode::AccessDenied, error::ACCESS_DENIED));
        };
        let resource = iam::object_arn(&self.bucket()?.name, key);
        scope.check(
            &Act {
                action: "s3:BypassGovernanceRetention",
                resource: &resource,
                prefix: None,
                delimiter: None,
            },
            self.bucket_policy.as_deref(),
        )
    }

    /// Whether the key's scope and the bucket's policy allow `action` (setting a retention or
    /// a legal hold) on `key` while writing it; never under a grant.
    pub fn may_set_lock(&self, key: &str, action: &str) -> S3Result<()> {
        let Some(scope) = &self.scope else {
            return Err(error::with(S3ErrorCode::AccessDenied, error::ACCESS_DENIED));
        };
        let resource = iam::object_arn(&self.bucket()?.name, key);
        scope.check(
            &Act {
                action,
                resource: &resource,
                prefix: None,
                delimiter: None,
            },
            self.bucket_policy.as_deref(),
        )
    }

    /// The justification for one step of an operation that reads and writes (`CopyObject:read`).
    pub fn justification_for(&self, step: &str) -> Justification {
        match &self.justification {
            Justification::Customer {
                tenant,
                principal,
                operation,
                request,
            } => Justification::Customer {
                tenant: tenant.clone(),
                principal: principal.clone(),
                operation: format!("{operation}:{step}"),
                request: request.clone(),
            },
            other => other.clone(),
        }
    }
}

/// `bucket` if it belongs to `tenant`: another tenant's bucket is `AccessDenied`, a missing one
/// `NoSuchBucket`.
pub async fn owned_bucket(catalog: &dyn Catalog, tenant: &Tenant, name: &str) -> S3Result<Bucket> {
    match catalog.get_bucket(name).await.map_err(error::catalog)? {
        Some(b) if b.tenant == tenant.name => Ok(b),
        Some(_) => Err(error::with(S3ErrorCode::AccessDenied, error::ACCESS_DENIED)),
        None => Err(error::with(
            S3ErrorCode::NoSuchBucket,
            error::NO_SUCH_BUCKET,
        )),
    }
}

#[derive(Clone)]
pub struct TenantAuth {
    catalog: Arc<dyn Catalog>,
    trustee: Arc<dyn TrusteeClient>,
    policies: Arc<PolicyCache>,
}

impl TenantAuth {
    #[must_use]
    pub fn new(
        catalog: Arc<dyn Catalog>,
        trustee: Arc<dyn TrusteeClient>,
        policies: Arc<PolicyCache>,
    ) -> Self {
        Self {
            catalog,
            trustee,
            policies,
        }
    }

    /// Whether a tenant key's scope and the bucket policy let this request happen: its
    /// action on what its path names, a bypass of governance retention if it asks for one,
    /// and a copy's read of its source (under the source bucket's policy).
    async fn check_scope(
        &self,
        cx: &S3AccessContext<'_>,
        scope: &Scope,
        tenant: &Tenant,
        bucket: Option<&Bucket>,
        bucket_policy: Option<&Policy>,
    ) -> S3Result<()> {
        let operation = action(cx.s3_op().name(), cx.uri().query(), cx.headers());
        // A key of the whole tenant on a bucket without a policy: nothing to evaluate (a
        // copy still meets its source bucket's policy).
        if scope.key_policy.is_none()
            && bucket_policy.is_none()
            && copy_source_class(operation).is_none()
        {
            return Ok(());
        }
        let query = cx.uri().query();
        let (resource, listing) = match cx.s3_path() {
            S3Path::Root => ("arn:aws:s3:::*".to_owned(), false),
            S3Path::Bucket { bucket } => (iam::bucket_arn(bucket), true),
            S3Path::Object { bucket, key } => (iam::object_arn(bucket, key), false),
        };
        let (prefix, delimiter) = if listing {
            (
                query_param(query, "prefix"),
                query_param(query, "delimiter"),
            )
        } else {
            (None, None)
        };
        if let Some(s3_action) = crate::scope::s3_action(operation) {
            scope.check(
                &Act {
                    action: &s3_action,
                    resource: &resource,
                    prefix: prefix.as_deref(),
                    delimiter: delimiter.as_deref(),
                },
                bucket_policy,
            )?;
        }
        let bypass = cx
            .headers()
            .get("x-amz-bypass-governance-retention")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        if bypass {
            scope.check(
                &Act {
                    action: "s3:BypassGovernanceRetention",
                    resource: &resource,
                    prefix: None,
                    delimiter: None,
                },
                bucket_policy,
            )?;
        }
        if copy_source_class(operation).is_some() {
            let source = copy_source_header(cx.headers())?.ok_or_else(|| {
                error::with(S3ErrorCode::InvalidArgument, error::INVALID_COPY_SOURCE)
            })?;
            let (src_bucket, src_key) = copy_source_object(&source)?;
            let fetched;
            let src_policy = match bucket {
                Some(b) if b.name == src_bucket => bucket_policy,
                _ => {
                    let b = owned_bucket(self.catalog.as_ref(), tenant, src_bucket).await?;
                    fetched = self.policies.policy(self.catalog.as_ref(), &b).await?;
                    fetched.as_deref()
                }
            };
            let read = if operation.ends_with("FromVersion") {
                "s3:GetObjectVersion"
            } else {
                "s3:GetObject"
            };
            scope.check(
                &Act {
                    action: read,
                    resource: &iam::object_arn(src_bucket, src_key),
                    prefix: None,
                    delimiter: None,
                },
                src_policy,
            )?;
        }
        Ok(())
    }

    /// Asks the trustee whether this grant-signed request is within its grant (and has it
    /// logged); the request acts for the grant's tenant, under the grant.
    async fn check_grant(
        &self,
        cx: &S3AccessContext<'_>,
        who: &Authenticated,
    ) -> S3Result<(Tenant, Justification)> {
        let access_key = who.access_key_id.as_str();
        let session_token = who
            .session_token
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                error::with(
                    S3ErrorCode::AccessDenied,
                    error::GRANT_WITHOUT_SESSION_TOKEN,
                )
            })?;
        let operation = action(cx.s3_op().name(), cx.uri().query(), cx.headers());
        let (bucket, key) = match cx.s3_path() {
            S3Path::Root => (String::new(), String::new()),
            S3Path::Bucket { bucket } => (
                bucket.to_string(),
                query_param(cx.uri().query(), "prefix").unwrap_or_default(),
            ),
            S3Path::Object { bucket, key } => (bucket.to_string(), key.to_string()),
        };
        let ticket: &RequestTicket = &who.verified.ticket;
        let access = |class: &str, bucket: String, key: String| GrantAccess {
            ticket: ticket.clone(),
            access_key_id: access_key.to_owned(),
            session_token: session_token.clone(),
            operation: operation.to_owned(),
            class: class.to_owned(),
            bucket,
            key,
        };
        let Some(class) = grant_class(operation) else {
            // Refused whatever the grant says; the trustee logs the attempt like any other.
            let refused = self
                .trustee
                .authorize_grant_access(&access("none", bucket, key))
                .await;
            return Err(match refused {
                Err(e @ obhut_trustee_client::TrusteeError::Unavailable(_)) => error::trustee(e),
                _ => s3_error!(
                    AccessDenied,
                    "{operation} is not available under a grant (grants cover reading, listing and writing objects)"
                ),
            });
        };
        // A copy also reads its source: that must be within the grant too. Only copies read
        // `x-amz-copy-source`; a copy whose source cannot be read as the operation would read
        // it is refused here, before anything is checked or logged as allowed.
        if let Some(source_class) = copy_source_class(operation) {
            let source = copy_source_header(cx.headers())?.ok_or_else(|| {
                error::with(S3ErrorCode::InvalidArgument, error::INVALID_COPY_SOURCE)
            })?;
            let (src_bucket, src_key) = copy_source_object(&source)?;
            self.trustee
                .authorize_grant_access(&access(
                    source_class,
                    src_bucket.to_owned(),
                    src_key.to_owned(),
                ))
                .await
                .map_err(grant_refused)?;
        }
        let scope = self
            .trustee
            .authorize_grant_access(&access(class, bucket, key))
            .await
            .map_err(grant_refused)?;
        let tenant = self
            .catalog
            .get_tenant(&scope.tenant)
            .await
            .map_err(error::catalog)?
            .ok_or_else(|| error::with(S3ErrorCode::AccessDenied, error::GRANT_TENANT_GONE))?;
        let justification = Justification::Grant {
            grant_id: scope.grant_id,
        };
        Ok((tenant, justification))
    }

    /// The tenant the trustee verified the request for.
    async fn signing_tenant(&self, tenant: &str) -> S3Result<Tenant> {
        self.catalog
            .get_tenant(tenant)
            .await
            .map_err(error::catalog)?
            .ok_or_else(|| error::with(S3ErrorCode::AccessDenied, error::KEY_TENANT_GONE))
    }
}

fn grant_refused(e: obhut_trustee_client::TrusteeError) -> s3s::S3Error {
    match e {
        obhut_trustee_client::TrusteeError::Denied(m) => {
            s3_error!(AccessDenied, "not within the grant: {m}")
        }
        other => error::trustee(other),
    }
}

/// The action a request performs, as authorisation names it: its operation, except that
/// reading or deleting one version by its id is an action of its own (S3's
/// `s3:GetObjectVersion`, `s3:DeleteObjectVersion`), as is a copy from a version. A scope that
/// allows `DeleteObject` thus does not allow removing a version for good, and a grant, which
/// covers current objects only, covers none of them.
pub fn action<'a>(operation: &'a str, query: Option<&str>, headers: &http::HeaderMap) -> &'a str {
    let by_version = || query_param(query, "versionId").is_some();
    match operation {
        "GetObject" | "HeadObject" if by_version() => "GetObjectVersion",
        "GetObjectAttributes" if by_version() => "GetObjectVersionAttributes",
        "DeleteObject" if by_version() => "DeleteObjectVersion",
        "GetObjectTagging" if by_version() => "GetObjectVersionTagging",
        "PutObjectTagging" if by_version() => "PutObjectVersionTagging",
        "DeleteObjectTagging" if by_version() => "DeleteObjectVersionTagging",
        "CopyObject" | "UploadPartCopy"
            if matches!(
                copy_source_header(headers),
                Ok(Some(CopySource::Bucket {
                    version_id: Some(_),
                    ..
                }))
            ) =>
        {
            if operation == "CopyObject" {
                "CopyObjectFromVersion"
            } else {
                "UploadPartCopyFromVersion"
            }
        }
        _ => operation,
    }
}

/// What part of a grant an S3 operation needs; `None` for operations no grant covers. Actions
/// on versions by id, and ListObjectVersions, need `versions` besides: a grant without it
/// covers current objects only.
fn grant_class(operation: &str) -> Option<&'static str> {
    Some(match operation {
        "GetObjectVersion" | "GetObjectVersionAttributes" => "read+versions",
        "ListObjectVersions" => "list+versions",
        "DeleteObjectVersion" => "write+versions",
        "CopyObjectFromVersion" | "UploadPartCopyFromVersion" => "write",
        // Tags are object metadata: a grant covers them as it covers the object.
        "GetObjectVersionTagging" => "read+versions",
        "PutObjectVersionTagging" | "DeleteObjectVersionTagging" => "write+versions",
        "GetObject" | "HeadObject" | "GetObjectAttributes" | "GetObjectTagging" => "read",
        "ListObjects"
        | "ListObjectsV2"
        | "HeadBucket"
        | "GetBucketLocation"
        | "ListMultipartUploads"
        | "ListParts" => "list",
        "PutObject"
        | "CopyObject"
        | "DeleteObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload"
        | "AbortMultipartUpload"
        | "PutObjectTagging"
        | "DeleteObjectTagging" => "write",
        _ => return None,
    })
}

/// A decoded query parameter, read as the signature check reads the query.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    obhut_sigv4::read::query_pairs(query)
        .into_iter()
        .find_map(|(k, v)| (k == name).then_some(v))
}

/// What a grant must allow for a copy (`operation`, as [`action`] names it) to read its source;
/// `None` for an operation that copies nothing.
fn copy_source_class(operation: &str) -> Option<&'static str> {
    match operation {
        "CopyObject" | "UploadPartCopy" => Some("read"),
        "CopyObjectFromVersion" | "UploadPartCopyFromVersion" => Some("read+versions"),
        _ => None,
    }
}

/// `x-amz-copy-source` read exactly as s3s reads it for the copy operations (one value, ASCII,
/// parsed by [`CopySource::parse`]: `?versionId=` split off first, then percent-decoded, one
/// leading `/` dropped, split at the first `/`; a key is literal, `..` and all). `None` if the
/// header is absent or empty.
pub fn copy_source_header(headers: &http::HeaderMap) -> S3Result<Option<CopySource>> {
    let invalid = || error::with(S3ErrorCode::InvalidArgument, error::INVALID_COPY_SOURCE);
    let mut values = headers.get_all("x-amz-copy-source").into_iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(invalid());
    }
    if value.is_empty() {
        return Ok(None);
    }
    let text = value.to_str().map_err(|_| invalid())?;
    CopySource::parse(text).map(Some).map_err(|_| invalid())
}

/// The bucket and key a copy reads: the one place both the grant check and the copy
/// operations take them from.
pub fn copy_source_object(source: &CopySource) -> S3Result<(&str, &str)> {
    match source {
        CopySource::Bucket { bucket, key, .. } => Ok((bucket, key)),
        CopySource::AccessPoint { .. } | CopySource::Outpost { .. } => Err(error::with(
            S3ErrorCode::NotImplemented,
            error::COPY_FROM_ACCESS_POINT,
        )),
    }
}

#[async_trait::async_trait]
impl S3Access for TenantAuth {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        // Taken, not copied: nothing after the access check reads it.
        let Some(who) = cx.extensions_mut().remove::<Authenticated>() else {
            return Err(crate::authn::anonymous());
        };
        let ticket = who.verified.ticket.clone();
        let (tenant, justification, scope) = match &who.verified.signer {
            Signer::Grant { .. } => {
                let (tenant, justification) = self.check_grant(cx, &who).await?;
                (tenant, justification, None)
            }
            Signer::Tenant { tenant, policy } => {
                let tenant = self.signing_tenant(tenant).await?;
                // The trustee checked this policy when the key was made and its seal binds
                // it: one that does not parse now is refused, never read as no limit.
                let key_policy = policy
                    .as_deref()
                    .map(|p| Policy::parse(p, Kind::Key).map(Arc::new))
                    .transpose()
                    .map_err(|_| error::with(S3ErrorCode::AccessDenied, error::ACCESS_DENIED))?;
                let scope = Scope {
                    principal: who.access_key_id.clone(),
                    key_policy,
                    connection: cx
                        .extensions_mut()
                        .get::<obhut_listen::Connection>()
                        .copied(),
                };
                let justification = Justification::Customer {
                    tenant: tenant.name.clone(),
                    principal: who.access_key_id,
                    operation: action(cx.s3_op().name(), cx.uri().query(), cx.headers()).to_owned(),
                    request: Some(who.verified.ticket),
                };
                (tenant, justification, Some(Arc::new(scope)))
            }
        };
        let bucket = match cx.s3_path() {
            S3Path::Bucket { bucket } | S3Path::Object { bucket, .. }
                if cx.s3_op().name() != CREATES_ITS_BUCKET =>
            {
                Some(owned_bucket(self.catalog.as_ref(), &tenant, bucket).await?)
            }
            _ => None,
        };
        let mut bucket_policy = None;
        if let Some(scope) = &scope {
            if let Some(b) = &bucket {
                bucket_policy = self.policies.policy(self.catalog.as_ref(), b).await?;
            }
            self.check_scope(
                cx,
                scope,
                &tenant,
                bucket.as_ref(),
                bucket_policy.as_deref(),
            )
            .await?;
        }
        cx.extensions_mut().insert(Arc::new(ReqCtx {
            tenant: Arc::new(tenant),
            justification,
            bucket,
            scope,
            bucket_policy,
            ticket: Some(ticket),
        }));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tags_are_covered_as_object_metadata_and_by_version_only_with_versions() {
        use super::{action, grant_class};
        let none = http::HeaderMap::new();
        let by_id = Some("tagging&versionId=0123456789abcdef0123456789abcdef");
        let class = |op, q| grant_class(action(op, q, &none));
        assert_eq!(class("GetObjectTagging", Some("tagging")), Some("read"));
        assert_eq!(class("PutObjectTagging", Some("tagging")), Some("write"));
        assert_eq!(class("DeleteObjectTagging", Some("tagging")), Some("write"));
        assert_eq!(
            action("GetObjectTagging", by_id, &none),
            "GetObjectVersionTagging"
        );
        assert_eq!(class("GetObjectTagging", by_id), Some("read+versions"));
        assert_eq!(
            action("GetObjectAttributes", by_id, &none),
            "GetObjectVersionAttributes"
        );
        assert_eq!(
            action("GetObjectAttributes", None, &none),
            "GetObjectAttributes"
        );
        assert_eq!(class("GetObjectAttributes", by_id), Some("read+versions"));
        assert_eq!(class("GetObjectAttributes", None), Some("read"));
        assert_eq!(class("PutObjectTagging", by_id), Some("write+versions"));
        assert_eq!(class("DeleteObjectTagging", by_id), Some("write+versions"));
        // Bucket configuration is no grant's business.
        for op in ["PutBucketCors", "GetBucketCors", "DeleteBucketCors"] {
            assert_eq!(class(op, Some("cors")), None, "{op}");
        }
        for op in [
            "PutBucketTagging",
            "GetBucketTagging",
            "DeleteBucketTagging",
        ] {
            assert_eq!(class(op, Some("tagging")), None, "{op}");
        }
    }

    #[test]
    fn actions_on_a_version_by_id_are_named_apart_from_those_on_the_current_object() {
        use super::action;
        let none = http::HeaderMap::new();
        let by_id = Some("versionId=0123456789abcdef0123456789abcdef");
        assert_eq!(action("GetObject", None, &none), "GetObject");
        assert_eq!(action("GetObject", by_id, &none), "GetObjectVersion");
        assert_eq!(action("HeadObject", by_id, &none), "GetObjectVersion");
        assert_eq!(
            action("DeleteObject", Some("x-id=DeleteObject"), &none),
            "DeleteObject"
        );
        assert_eq!(action("DeleteObject", by_id, &none), "DeleteObjectVersion");
        assert_eq!(action("PutObject", by_id, &none), "PutObject");
        let mut from_version = http::HeaderMap::new();
        from_version.insert(
            "x-amz-copy-source",
            http::HeaderValue::from_static("bkt/k?versionId=0123456789abcdef0123456789abcdef"),
        );
        let mut from_current = http::HeaderMap::new();
        from_current.insert("x-amz-copy-source", http::HeaderValue::from_static("bkt/k"));
        assert_eq!(action("CopyObject", None, &from_current), "CopyObject");
        assert_eq!(
            action("CopyObject", None, &from_version),
            "CopyObjectFromVersion"
        );
        assert_eq!(
            action("UploadPartCopy", None, &from_version),
            "UploadPartCopyFromVersion"
        );
        // What a grant must allow for each: versions on top of the class of the current one.
        assert_eq!(super::grant_class("GetObject"), Some("read"));
        assert_eq!(
            super::grant_class("GetObjectVersion"),
            Some("read+versions")
        );
        assert_eq!(
            super::grant_class("DeleteObjectVersion"),
            Some("write+versions")
        );
        assert_eq!(
            super::grant_class("ListObjectVersions"),
            Some("list+versions")
        );
        assert_eq!(super::copy_source_class("CopyObject"), Some("read"));
        assert_eq!(
            super::copy_source_class("CopyObjectFromVersion"),
            Some("read+versions")
        );
        assert_eq!(super::copy_source_class("PutObject"), None);
    }

    use super::ReqCtx;
    use obhut_catalog::Tenant;
    use obhut_trustee_client::Justification;
    use std::sync::Arc;

    fn ctx(justification: Justification) -> ReqCtx {
        ReqCtx {
            tenant: Arc::new(Tenant {
                name: "t".into(),
                jurisdictions: vec!["DE".into()],
                min_sites: 2,
                created_ms: 0,
            }),
            justification,
            bucket: None,
            scope: None,
            bucket_policy: None,
            ticket: None,
        }
    }

    #[test]
    fn a_step_names_itself_for_the_tenant_and_not_under_a_grant() {
        let own = ctx(Justification::Customer {
            tenant: "t".into(),
            principal: "AK".into(),
            operation: "CopyObject".into(),
            request: None,
        });
        assert_eq!(
            own.justification_for("read"),
            Justification::Customer {
                tenant: "t".into(),
                principal: "AK".into(),
                operation: "CopyObject:read".into(),
                request: None,
            }
        );
        let granted = ctx(Justification::Grant {
            grant_id: "g1".into(),
        });
        assert_eq!(granted.justification_for("write"), granted.justification);
        // Without a checked bucket an operation that needs one fails instead of going on.
        assert!(own.bucket().is_err());
    }
}

/// Fuzz targets (bolero: 2,000 random cases under `cargo test`) for the request parts obhut
/// reads itself: query parameters and the copy source. Anything is an answer, never a panic.
#[cfg(test)]
mod fuzz {
    use super::{copy_source_header, copy_source_object, query_param};
    use bolero::check;
    use s3s::dto::{CopyObjectInput, CopyObjectOutput};
    use s3s::service::{S3Service, S3ServiceBuilder};
    use s3s::{S3Request, S3Response, S3Result};
    use std::sync::{Arc, Mutex};

    /// A copy source as read: `Ok(None)` for none, `Err(())` for a refusal.
    type Read = Result<Option<(String, String)>, ()>;

    /// What the access check and the operation each read of one request's copy source.
    #[derive(Default)]
    struct Seen {
        access: Option<Read>,
        operation: Option<Read>,
    }

    /// The access check's reading of the copy source (what `check_grant` authorises).
    fn read_by_access(headers: &http::HeaderMap) -> Read {
        match copy_source_header(headers) {
            Ok(Some(source)) => copy_source_object(&source)
                .map(|(b, k)| Some((b.to_owned(), k.to_owned())))
                .map_err(|_| ()),
            Ok(None) => Ok(None),
            Err(_) => Err(()),
        }
    }

    /// An S3 service whose access check and CopyObject only record what they read: the real
    /// s3s path from header to operation input in between.
    #[derive(Clone)]
    struct Recorder(Arc<Mutex<Seen>>);

    #[async_trait::async_trait]
    impl s3s::access::S3Access for Recorder {
        async fn check(&self, cx: &mut s3s::access::S3AccessContext<'_>) -> S3Result<()> {
            self.0.lock().unwrap().access = Some(read_by_access(cx.headers()));
            Ok(())
        }
    }

    #[async_trait::async_trait]
    impl s3s::S3 for Recorder {
        async fn copy_object(
            &self,
            req: S3Request<CopyObjectInput>,
        ) -> S3Result<S3Response<CopyObjectOutput>> {
            let read = copy_source_object(&req.input.copy_source)
                .map(|(b, k)| Some((b.to_owned(), k.to_owned())))
                .map_err(|_| ());
            self.0.lock().unwrap().operation = Some(read);
            Ok(S3Response::new(CopyObjectOutput::default()))
        }
    }

    /// No key is known: requests go unsigned, and s3s still runs the access check.
    struct NoKeys;

    #[async_trait::async_trait]
    impl s3s::auth::S3Auth for NoKeys {
        async fn get_secret_key(&self, _: &str) -> S3Result<s3s::auth::SecretKey> {
            Err(s3s::s3_error!(InvalidAccessKeyId))
        }
    }

    fn recording_service() -> (S3Service, Recorder) {
        let recorder = Recorder(Arc::default());
        let mut builder = S3ServiceBuilder::new(recorder.clone());
        builder.set_auth(NoKeys);
        builder.set_access(recorder.clone());
        (builder.build(), recorder)
    }

    /// Sends `PUT /dst/copy` with these `x-amz-copy-source` values; returns what the access
    /// check read, and what the CopyObject operation read if it ran.
    fn copy_with(
        rt: &tokio::runtime::Runtime,
        service: &S3Service,
        recorder: &Recorder,
        values: &[http::HeaderValue],
    ) -> (Option<Read>, Option<Read>) {
        *recorder.0.lock().unwrap() = Seen::default();
        let mut req = http::Request::builder()
            .method(http::Method::PUT)
            .uri("http://localhost/dst/copy");
        for v in values {
            req = req.header("x-amz-copy-source", v.clone());
        }
        let req = req.body(s3s::Body::empty()).unwrap();
        let _ = rt.block_on(service.call(req));
        let seen = std::mem::take(&mut *recorder.0.lock().unwrap());
        (seen.access, seen.operation)
    }

    /// Whenever the copy operation runs, the access check read the same source (so a grant is
    /// checked for exactly the object copied); whenever it does not (s3s refused the header,
    /// or an empty one made the request a PutObject), the access check read no source either.
    fn assert_agree(access: Option<&Read>, operation: Option<&Read>, what: &str) {
        let access = access.unwrap_or_else(|| panic!("{what}: no access check ran"));
        match operation {
            Some(op) => assert_eq!(access, op, "{what}"),
            None => assert!(
                matches!(access, Err(()) | Ok(None)),
                "{what}: no copy ran, yet the access check read {access:?}"
            ),
        }
    }

    #[test]
    fn the_grant_check_reads_the_copy_source_the_operation_reads() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (service, recorder) = recording_service();
        let cases: &[(&str, (&str, &str))] = &[
            ("bucket/a/b", ("bucket", "a/b")),
            ("/bucket/a/b", ("bucket", "a/b")),
            ("%2Fbucket%2Fa%2Fb", ("bucket", "a/b")),
            ("bucket//secret", ("bucket", "/secret")),
            ("bucket/a%2F..%2Fsecret", ("bucket", "a/../secret")),
            ("bucket/a/../secret", ("bucket", "a/../secret")),
            ("bucket/a/b?versionId=v1", ("bucket", "a/b")),
            ("bucket/secret?versionId=%2Fa%2Fx", ("bucket", "secret")),
            ("bucket/a/q?x", ("bucket", "a/q?x")),
            ("bucket/a/q%3Fx", ("bucket", "a/q?x")),
            ("bucket/a/%3FversionId=1", ("bucket", "a/?versionId=1")),
            ("bucket/a/100%25", ("bucket", "a/100%")),
            ("bucket/a/%25%32%46", ("bucket", "a/%2F")),
            ("bucket/a/%C3%A4", ("bucket", "a/\u{e4}")),
        ];
        for &(header, (bucket, key)) in cases {
            let value = http::HeaderValue::from_str(header).unwrap();
            let (access, operation) = copy_with(&rt, &service, &recorder, &[value]);
            assert_agree(access.as_ref(), operation.as_ref(), header);
            let expected = Some((bucket.to_owned(), key.to_owned()));
            assert_eq!(operation, Some(Ok(expected)), "{header}");
        }
        // Refused alike: no key, a bad bucket name, bytes that are not UTF-8 once decoded,
        // not ASCII, an access point.
        for header in [
            b"bucket".as_slice(),
            b"Bucket/x",
            b"bucket/%FF",
            b"bucket/\xc3\xa4",
            b"arn:aws:s3:eu-central-1:123456789012:accesspoint/ap1/object/secret",
        ] {
            let value = http::HeaderValue::from_bytes(header).unwrap();
            let (access, operation) = copy_with(&rt, &service, &recorder, &[value]);
            let what = String::from_utf8_lossy(header);
            assert_agree(access.as_ref(), operation.as_ref(), &what);
            assert_eq!(access, Some(Err(())), "{what}");
        }
        // The header twice: which one would be checked, which one copied? Neither.
        let twice = [
            http::HeaderValue::from_static("bucket/a/x"),
            http::HeaderValue::from_static("bucket/secret"),
        ];
        let (access, operation) = copy_with(&rt, &service, &recorder, &twice);
        assert_agree(access.as_ref(), operation.as_ref(), "twice");
        assert_eq!(operation, None);
    }

    #[test]
    fn the_grant_check_and_the_copy_agree_on_any_copy_source() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (service, recorder) = recording_service();
        // A failed case panics out of the service: nothing of it is used after that.
        let harness = std::panic::AssertUnwindSafe((&rt, &service, &recorder));
        check!()
            .with_iterations(2_000)
            .with_type::<(Vec<u8>, String)>()
            .for_each(|(raw, key)| {
                // Through a reference to the whole wrapper, so that the closure captures the
                // wrapper (unwind-safe) and not its fields.
                let whole = &harness;
                let (rt, service, recorder) = whole.0;
                // Arbitrary bytes, and well-formed headers around an arbitrary key.
                let mut values = vec![];
                if let Ok(v) = http::HeaderValue::from_bytes(raw) {
                    values.push(v);
                }
                let encoded =
                    percent_encoding::utf8_percent_encode(key, percent_encoding::NON_ALPHANUMERIC);
                for header in [format!("bucket/{key}"), format!("/bucket/{encoded}")] {
                    if let Ok(v) = http::HeaderValue::from_str(&header) {
                        values.push(v);
                    }
                }
                for v in values {
                    let (access, operation) =
                        copy_with(rt, service, recorder, std::slice::from_ref(&v));
                    assert_agree(access.as_ref(), operation.as_ref(), &format!("{v:?}"));
                }
            });
    }

    #[test]
    fn request_parts_read_before_authentication_never_panic() {
        check!()
            .with_iterations(2_000)
            .with_type::<(String, Vec<u8>)>()
            .for_each(|(query, header)| {
                let mut headers = http::HeaderMap::new();
                if let Ok(v) = http::HeaderValue::from_bytes(header) {
                    headers.insert("x-amz-copy-source", v.clone());
                    headers.insert("x-amz-security-token", v.clone());
                    headers.insert(http::header::AUTHORIZATION, v);
                }
                let q = Some(query.as_str());
                let _ = query_param(q, "prefix");
                if let Ok(Some(source)) = copy_source_header(&headers)
                    && let Ok((bucket, _)) = copy_source_object(&source)
                {
                    assert!(!bucket.contains('/'));
                }
            });
    }
}
