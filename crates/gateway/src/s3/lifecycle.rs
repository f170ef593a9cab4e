//! Bucket lifecycle: PutBucketLifecycleConfiguration, GetBucketLifecycleConfiguration and
//! DeleteBucketLifecycle. The rules are checked and stored here (catalog `bucket_configs`,
//! kind `lifecycle`, in clear like CORS rules: the worker that applies them reads them
//! without a key); `crate::lifecycle` applies them. Never sees keys, object names or content.

use crate::access::ReqCtx;
use crate::lifecycle::rules::{self, Rules};
use crate::{Gateway, error};
use obhut_catalog::config_kind;
use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result};

pub async fn put(
    gw: &Gateway,
    req: S3Request<PutBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let rules = rules::checked(req.input.lifecycle_configuration)?;
    let bytes =
        serde_json::to_vec(&rules).map_err(|e| error::corrupt_record("lifecycle rules", &e))?;
    gw.catalog
        .put_bucket_config(
            ctx.bucket()?,
            config_kind::LIFECYCLE,
            Some(&bytes),
            super::convert::now_ms(),
        )
        .await
        .map_err(error::catalog)?;
    Ok(S3Response::new(
        PutBucketLifecycleConfigurationOutput::default(),
    ))
}

pub async fn get(
    gw: &Gateway,
    req: S3Request<GetBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let rules = gw
        .catalog
        .get_bucket_config(ctx.bucket()?, config_kind::LIFECYCLE)
        .await
        .map_err(error::catalog)?
        .and_then(|b| Rules::decode(&b))
        .ok_or_else(|| {
            error::with(
                S3ErrorCode::NoSuchLifecycleConfiguration,
                "The lifecycle configuration does not exist",
            )
        })?;
    Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
        rules: Some(rules.rules.iter().map(rules::answered).collect()),
        transition_default_minimum_object_size: None,
    }))
}

pub async fn delete(
    gw: &Gateway,
    req: S3Request<DeleteBucketLifecycleInput>,
) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
    let ctx = ReqCtx::of(&req)?;
    gw.catalog
        .put_bucket_config(
            ctx.bucket()?,
            config_kind::LIFECYCLE,
            None,
            super::convert::now_ms(),
        )
        .await
        .map_err(error::catalog)?;
    Ok(S3Response::new(DeleteBucketLifecycleOutput {}))
}
