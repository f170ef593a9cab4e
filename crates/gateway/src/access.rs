//! Who is asking: SigV4 secrets come from the catalog, and every request is bound to the tenant
//! that owns its access key. Anonymous requests are refused.

use obhut_catalog::{Catalog, Tenant};
use obhut_trustee_client::Justification;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Request, S3Result, s3_error};
use std::sync::Arc;

/// The tenant a request acts for and the access key it signed with, put into the request's
/// extensions by the access check.
#[derive(Debug, Clone)]
pub struct TenantCtx(pub Arc<Tenant>, pub String);

#[derive(Clone)]
pub struct TenantAuth {
    catalog: Arc<dyn Catalog>,
}

impl TenantAuth {
    #[must_use]
    pub fn new(catalog: Arc<dyn Catalog>) -> Self {
        Self { catalog }
    }
}

#[async_trait::async_trait]
impl S3Auth for TenantAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
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

/// Why a key is needed for this request: the tenant's own principal performing `operation`.
pub fn justification<T>(req: &S3Request<T>, operation: &str) -> S3Result<Justification> {
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
