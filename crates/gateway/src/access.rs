//! Who is asking: SigV4 secrets come from the catalog, and every request is bound to the tenant
//! that owns its access key. Anonymous requests are refused.
//!
//! Requests signed with a grant's temporary credentials (access key ids starting `OBG`) are
//! checked by the trustee itself: session token, the grant's state, operations, bucket and
//! prefix; the trustee logs each one before it is allowed. Such a request then acts for the
//! grant's tenant and asks for keys with the grant as justification.

use obhut_catalog::{Catalog, Tenant};
use obhut_trustee_client::governance::GRANT_KEY_PREFIX;
use obhut_trustee_client::{GrantAccess, Justification, TrusteeClient};
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Request, S3Result, s3_error};
use std::sync::Arc;

/// The tenant a request acts for and the access key it signed with, put into the request's
/// extensions by the access check.
#[derive(Debug, Clone)]
pub struct TenantCtx(pub Arc<Tenant>, pub String);

/// A request under a grant, put into the request's extensions beside [`TenantCtx`].
#[derive(Debug, Clone)]
pub struct GrantCtx(pub String);

#[derive(Clone)]
pub struct TenantAuth {
    catalog: Arc<dyn Catalog>,
    trustee: Arc<dyn TrusteeClient>,
}

impl TenantAuth {
    #[must_use]
    pub fn new(catalog: Arc<dyn Catalog>, trustee: Arc<dyn TrusteeClient>) -> Self {
        Self { catalog, trustee }
    }

    /// Asks the trustee whether this grant-signed request is within its grant (and has it
    /// logged); binds the request to the grant's tenant.
    async fn check_grant(&self, cx: &mut S3AccessContext<'_>, access_key: &str) -> S3Result<()> {
        let session_token = session_token(cx.headers(), cx.uri().query()).ok_or_else(|| {
            s3_error!(
                AccessDenied,
                "grant credentials are valid only with their session token (AWS_SESSION_TOKEN)"
            )
        })?;
        let operation = cx.s3_op().name();
        let (bucket, key) = match cx.s3_path() {
            s3s::path::S3Path::Root => (String::new(), String::new()),
            s3s::path::S3Path::Bucket { bucket } => (
                bucket.to_string(),
                query_param(cx.uri().query(), "prefix").unwrap_or_default(),
            ),
            s3s::path::S3Path::Object { bucket, key } => (bucket.to_string(), key.to_string()),
        };
        let class = grant_class(operation).ok_or_else(|| {
            s3_error!(
                AccessDenied,
                "{operation} is not available under a grant (grants cover reading, listing and writing objects)"
            )
        })?;
        let access = |class: &str, bucket: String, key: String| GrantAccess {
            access_key_id: access_key.to_owned(),
            session_token: session_token.clone(),
            operation: operation.to_owned(),
            class: class.to_owned(),
            bucket,
            key,
        };
        // A copy also reads its source: that must be within the grant too.
        if let Some((src_bucket, src_key)) = copy_source(cx.headers()) {
            self.trustee
                .authorize_grant_access(&access("read", src_bucket, src_key))
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
            .map_err(crate::error::catalog)?
            .ok_or_else(|| s3_error!(AccessDenied, "the grant's tenant no longer exists"))?;
        cx.extensions_mut()
            .insert(TenantCtx(Arc::new(tenant), access_key.to_owned()));
        cx.extensions_mut().insert(GrantCtx(scope.grant_id));
        Ok(())
    }
}

fn grant_refused(e: obhut_trustee_client::TrusteeError) -> s3s::S3Error {
    match e {
        obhut_trustee_client::TrusteeError::Denied(m) => {
            s3_error!(AccessDenied, "not within the grant: {m}")
        }
        other => crate::error::trustee(other),
    }
}

/// What part of a grant an S3 operation needs; `None` for operations no grant covers.
fn grant_class(operation: &str) -> Option<&'static str> {
    Some(match operation {
        "GetObject" | "HeadObject" | "GetObjectAttributes" => "read",
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
        | "AbortMultipartUpload" => "write",
        _ => return None,
    })
}

/// The session token of a request: header, or query parameter of a presigned URL.
fn session_token(headers: &http::HeaderMap, query: Option<&str>) -> Option<String> {
    headers
        .get("x-amz-security-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query_param(query, "X-Amz-Security-Token"))
        .filter(|t| !t.is_empty())
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// The bucket and key of `x-amz-copy-source`, if the request copies.
fn copy_source(headers: &http::HeaderMap) -> Option<(String, String)> {
    let raw = headers.get("x-amz-copy-source")?.to_str().ok()?;
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    let path = decoded.split('?').next().unwrap_or_default();
    let path = path.strip_prefix('/').unwrap_or(path);
    let (bucket, key) = path.split_once('/')?;
    Some((bucket.to_owned(), key.to_owned()))
}

#[async_trait::async_trait]
impl S3Auth for TenantAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if access_key.starts_with(GRANT_KEY_PREFIX) {
            return match self.trustee.grant_secret(access_key).await {
                Ok(Some(secret)) => Ok(SecretKey::from(secret)),
                Ok(None) => Err(s3_error!(
                    InvalidAccessKeyId,
                    "these grant credentials are unknown, or their grant is not active"
                )),
                Err(e) => Err(crate::error::trustee(e)),
            };
        }
        match self.catalog.get_access_key(access_key).await {
            Ok(Some(k)) => Ok(SecretKey::from(k.secret)),
            Ok(None) => Err(s3_error!(InvalidAccessKeyId)),
            Err(e) => Err(crate::error::catalog(e)),
        }
    }
}

#[async_trait::async_trait]
impl S3Access for TenantAuth {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(creds) = cx.credentials() else {
            return Err(s3_error!(AccessDenied, "anonymous access is not allowed"));
        };
        check_presigned_expiry(cx.uri().query())?;
        refuse_sigv2(cx.headers(), cx.uri().query())?;
        if creds.access_key.starts_with(GRANT_KEY_PREFIX) {
            let access_key = creds.access_key.clone();
            return self.check_grant(cx, &access_key).await;
        }
        let key = self
            .catalog
            .get_access_key(&creds.access_key)
            .await
            .map_err(crate::error::catalog)?
            .ok_or_else(|| s3_error!(InvalidAccessKeyId))?;
        let tenant = self
            .catalog
            .get_tenant(&key.tenant)
            .await
            .map_err(crate::error::catalog)?
            .ok_or_else(|| s3_error!(AccessDenied, "the access key's tenant no longer exists"))?;
        let access_key = creds.access_key.clone();
        cx.extensions_mut()
            .insert(TenantCtx(Arc::new(tenant), access_key));
        Ok(())
    }
}

/// Signature version 2 is refused: it is weaker (HMAC-SHA1, no scope, presigned URLs without an
/// upper bound) and every current client signs with version 4.
fn refuse_sigv2(headers: &http::HeaderMap, query: Option<&str>) -> S3Result<()> {
    let v2_header = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("AWS "));
    let v2_query = query.is_some_and(|q| {
        q.split('&').any(|kv| kv.starts_with("Signature="))
            && !q.split('&').any(|kv| kv.starts_with("X-Amz-Signature="))
    });
    if v2_header || v2_query {
        return Err(s3_error!(
            InvalidRequest,
            "Signature version 2 is not supported; sign requests with AWS Signature Version 4"
        ));
    }
    Ok(())
}

/// SigV4 limits presigned URLs to seven days; s3s checks the expiry time but not this bound.
fn check_presigned_expiry(query: Option<&str>) -> S3Result<()> {
    const MAX_EXPIRES: u64 = 7 * 24 * 3600;
    let Some(value) = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("X-Amz-Expires="))
    else {
        return Ok(());
    };
    match value.parse::<u64>() {
        Ok(n) if (1..=MAX_EXPIRES).contains(&n) => Ok(()),
        _ => Err(s3_error!(
            AuthorizationQueryParametersError,
            "X-Amz-Expires must be a number of seconds from 1 to 604800 (seven days)"
        )),
    }
}

/// Why a key is needed for this request: the grant it runs under, or the tenant's own
/// principal performing `operation`.
pub fn justification<T>(req: &S3Request<T>, operation: &str) -> S3Result<Justification> {
    if let Some(GrantCtx(grant_id)) = req.extensions.get::<GrantCtx>() {
        return Ok(Justification::Grant {
            grant_id: grant_id.clone(),
        });
    }
    let ctx = req
        .extensions
        .get::<TenantCtx>()
        .ok_or_else(|| s3_error!(AccessDenied, "request was not authorised"))?;
    Ok(Justification::Customer {
        tenant: ctx.0.name.clone(),
        principal: ctx.1.clone(),
        operation: operation.to_owned(),
    })
}

/// The tenant of an authorised request.
pub fn tenant<T>(req: &S3Request<T>) -> S3Result<Arc<Tenant>> {
    req.extensions
        .get::<TenantCtx>()
        .map(|t| Arc::clone(&t.0))
        .ok_or_else(|| s3_error!(AccessDenied, "request was not authorised"))
}

#[cfg(test)]
mod tests {
    use super::check_presigned_expiry;

    #[test]
    fn signature_version_2_is_refused_both_ways() {
        let mut h = http::HeaderMap::new();
        assert!(super::refuse_sigv2(&h, Some("X-Amz-Signature=abc&X-Amz-Expires=60")).is_ok());
        assert!(super::refuse_sigv2(&h, None).is_ok());
        assert!(
            super::refuse_sigv2(&h, Some("AWSAccessKeyId=A&Expires=9999999999&Signature=x"))
                .is_err()
        );
        h.insert(http::header::AUTHORIZATION, "AWS AKID:sig".parse().unwrap());
        assert!(super::refuse_sigv2(&h, None).is_err());
        h.insert(
            http::header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=x".parse().unwrap(),
        );
        assert!(super::refuse_sigv2(&h, None).is_ok());
    }

    #[test]
    fn presigned_urls_may_last_at_most_seven_days() {
        assert!(check_presigned_expiry(None).is_ok());
        assert!(check_presigned_expiry(Some("X-Amz-Expires=3600&a=b")).is_ok());
        assert!(check_presigned_expiry(Some("X-Amz-Expires=604800")).is_ok());
        assert!(check_presigned_expiry(Some("a=b&X-Amz-Expires=604801")).is_err());
        assert!(check_presigned_expiry(Some("X-Amz-Expires=0")).is_err());
        assert!(check_presigned_expiry(Some("X-Amz-Expires=soon")).is_err());
    }
}
