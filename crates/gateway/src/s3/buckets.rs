//! Buckets: ListBuckets, CreateBucket (with the bucket's own key from the trustee),
//! HeadBucket, GetBucketLocation, GetBucketVersioning and DeleteBucket.
//!
//! Bucket keys are made and wrapped by the trustee; this module never sees them in clear.

use super::convert::{now_ms, owner, timestamp};
use crate::access::ReqCtx;
use crate::{Gateway, error};
use obhut_catalog::{Bucket, BucketKey};
use obhut_core::validate_bucket_name;
use obhut_trustee_client::TrusteeError;
use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

pub async fn list(
    gw: &Gateway,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let ctx = ReqCtx::of(&req)?;
    // Bucket names are the tenant's data too: listed only while its key is usable (not with
    // the trustee sealed or unreachable, nor after a crypto-shred).
    let seal = gw.trustee.seal_status().await.map_err(error::trustee)?;
    if seal.sealed {
        return Err(error::trustee(TrusteeError::Sealed(
            seal.shares_given,
            seal.threshold,
        )));
    }
    let tenant = ctx.tenant.name.clone();
    match gw.trustee.tenant_key_status(&tenant).await {
        Ok(status) => match status.state.as_str() {
            "active" => {}
            "destroyed" => return Err(error::trustee(TrusteeError::TenantKeyDestroyed(tenant))),
            _ => return Err(error::trustee(TrusteeError::TenantKeyDisabled(tenant))),
        },
        // A tenant's key is made with its first bucket: without one there is nothing to hide.
        Err(TrusteeError::NoTenantKey(_)) => {}
        Err(e) => return Err(error::trustee(e)),
    }
    let input = req.input;
    let prefix = input.prefix.clone().unwrap_or_default();
    let max = match input.max_buckets {
        None => MAX_BUCKETS_PAGE,
        Some(n) if (1..=10_000).contains(&n) => usize::try_from(n).unwrap_or(MAX_BUCKETS_PAGE),
        Some(_) => {
            return Err(error::with(
                S3ErrorCode::InvalidArgument,
                error::INVALID_MAX_BUCKETS,
            ));
        }
    };
    let after = input
        .continuation_token
        .as_deref()
        .map(decode_bucket_token)
        .transpose()?;
    // Every bucket is in this gateway's region: another region has none.
    let other_region = input
        .bucket_region
        .as_deref()
        .is_some_and(|r| r != gw.config.region);
    let mut buckets: Vec<Bucket> = gw
        .catalog
        .list_buckets(&ctx.tenant.name)
        .await
        .map_err(error::catalog)?
        .into_iter()
        .filter(|b| !other_region && b.name.starts_with(&prefix))
        .filter(|b| after.as_deref().is_none_or(|a| b.name.as_str() > a))
        .collect();
    buckets.sort_by(|a, b| a.name.cmp(&b.name));
    let next = (buckets.len() > max).then(|| encode_bucket_token(&buckets[max - 1].name));
    buckets.truncate(max);
    let buckets = buckets
        .into_iter()
        .map(|b| s3s::dto::Bucket {
            name: Some(b.name),
            creation_date: Some(timestamp(b.created_ms)),
            bucket_region: Some(gw.config.region.clone()),
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(owner(&ctx.tenant)),
        prefix: input.prefix,
        continuation_token: next,
    }))
}

/// Buckets in one ListBuckets answer unless `max-buckets` says fewer (S3's page when paging
/// is asked for; every bucket of a tenant fits in it, as S3 answers without paging).
const MAX_BUCKETS_PAGE: usize = 10_000;

/// ListBuckets continuation tokens are opaque to clients: the last name answered, base64.
fn encode_bucket_token(last: &str) -> String {
    base64_simd::URL_SAFE_NO_PAD.encode_to_string(last.as_bytes())
}

fn decode_bucket_token(token: &str) -> S3Result<String> {
    base64_simd::URL_SAFE_NO_PAD
        .decode_to_vec(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            error::with(
                S3ErrorCode::InvalidArgument,
                error::INVALID_CONTINUATION_TOKEN,
            )
        })
}

pub async fn create(
    gw: &Gateway,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let tenant = ctx.tenant.name.as_str();
    let input = req.input;
    validate_bucket_name(&input.bucket).map_err(|e| s3_error!(InvalidBucketName, "{e}"))?;
    let grants = input.grant_full_control.is_some()
        || input.grant_read.is_some()
        || input.grant_read_acp.is_some()
        || input.grant_write.is_some()
        || input.grant_write_acp.is_some();
    // Ownership is always enforced: an ACL that grants more than the owner's full control
    // is refused as S3 refuses it then.
    if input
        .acl
        .as_ref()
        .is_some_and(|a| !matches!(a.as_str(), "private" | "bucket-owner-full-control"))
        || grants
    {
        return Err(error::with(
            S3ErrorCode::InvalidBucketAclWithObjectOwnership,
            "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
        ));
    }
    super::policy::check_ownership(input.object_ownership.as_ref())?;
    if let Some(loc) = input
        .create_bucket_configuration
        .as_ref()
        .and_then(|c| c.location_constraint.as_ref())
        && loc.as_str() != gw.config.region
    {
        return Err(s3_error!(
            IllegalLocationConstraintException,
            "The {} location constraint is incompatible for the region specific endpoint this request was sent to ({}).",
            loc.as_str(),
            gw.config.region
        ));
    }
    let bucket = Bucket {
        name: input.bucket.clone(),
        tenant: tenant.to_owned(),
        created_ms: now_ms(),
        versioning: Default::default(),
    };
    if let Some(existing) = gw
        .catalog
        .get_bucket(&bucket.name)
        .await
        .map_err(error::catalog)?
    {
        return Err(error::bucket_exists(&existing.tenant, tenant));
    }
    // Every bucket gets its own key, made by the trustee under the tenant's key.
    gw.trustee
        .ensure_tenant_key(tenant)
        .await
        .map_err(error::trustee)?;
    let wrapped = gw
        .trustee
        .create_bucket_key(tenant, &bucket.name, 1, &ctx.justification)
        .await
        .map_err(error::trustee)?;
    let key = BucketKey {
        bucket: bucket.name.clone(),
        version: wrapped.version,
        wrapped: wrapped.wrapped,
        kcv: wrapped.kcv.to_vec(),
        created_ms: bucket.created_ms,
    };
    if input.object_lock_enabled_for_bucket == Some(true) {
        // The trustee learns that the bucket has no default retention (a bucket of that name
        // before may have had one), from the tenant's signed request, before it exists.
        super::object_lock::note_new_bucket(gw, &bucket, ctx.ticket.clone()).await?;
    }
    gw.catalog
        .create_bucket(&bucket, &key)
        .await
        .map_err(|e| error::bucket_creation(e, tenant))?;
    if input.object_lock_enabled_for_bucket == Some(true) {
        super::object_lock::enable_on_new_bucket(gw, &bucket).await?;
    }
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{}", input.bucket)),
    }))
}

/// The bucket was checked to be the caller's before any operation runs: HEAD has nothing to add.
pub fn head(
    gw: &Gateway,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    ReqCtx::of(&req)?.bucket()?;
    Ok(S3Response::new(HeadBucketOutput {
        bucket_region: Some(gw.config.region.clone()),
        ..Default::default()
    }))
}

pub fn location(
    gw: &Gateway,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    ReqCtx::of(&req)?.bucket()?;
    Ok(S3Response::new(GetBucketLocationOutput {
        location_constraint: Some(BucketLocationConstraint::from(gw.config.region.clone())),
    }))
}

/// Buckets are never versioned: the answer is always the unversioned one.
pub async fn delete(
    gw: &Gateway,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let bucket = ctx.bucket()?;
    // Only the bucket the request was authorised against: another of the same name (made
    // since by anyone) is NoSuchBucket.
    let parts = gw
        .catalog
        .delete_bucket(bucket)
        .await
        .map_err(error::catalog)?;
    gw.discard_parts(parts);
    gw.keys.evict_bucket(&bucket.name);
    Ok(S3Response::new(DeleteBucketOutput {}))
}
