//! Server-side encryption as S3 reports it. obhut encrypts every object (docs/format.md) under
//! keys only the trustee releases, which is what S3 calls SSE-S3: objects report
//! `x-amz-server-side-encryption: AES256`, and a bucket's default encryption is always AES256.
//! `PutBucketEncryption` accepts that default and nothing else; `DeleteBucketEncryption` leaves
//! it, as S3 leaves SSE-S3 on every bucket. SSE-KMS and SSE-C are not yet: requests asking for
//! them are refused rather than stored as something they did not ask for.
//!
//! Never sees keys, object names or content.

use crate::access::ReqCtx;
use crate::error;
use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result};

/// What every object reports: encrypted at rest with AES-256.
pub fn reported() -> Option<ServerSideEncryption> {
    Some(ServerSideEncryption::from_static(
        ServerSideEncryption::AES256,
    ))
}

const ONLY_AES256: &str = "obhut encrypts every object with AES-256 under keys the trustee holds (SSE-S3, AES256); SSE-KMS and SSE-C are not supported yet";

/// Refuses a write that asks for encryption other than AES256 (SSE-KMS, SSE-C).
pub fn check_requested(
    sse: Option<&ServerSideEncryption>,
    kms_key: Option<&str>,
    customer_algorithm: Option<&str>,
) -> S3Result<()> {
    let other = sse.is_some_and(|s| s.as_str() != ServerSideEncryption::AES256);
    if other || kms_key.is_some() || customer_algorithm.is_some() {
        return Err(error::with(S3ErrorCode::NotImplemented, ONLY_AES256));
    }
    Ok(())
}

fn default_configuration() -> ServerSideEncryptionConfiguration {
    ServerSideEncryptionConfiguration {
        rules: vec![ServerSideEncryptionRule {
            apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
                kms_master_key_id: None,
                sse_algorithm: ServerSideEncryption::from_static(ServerSideEncryption::AES256),
            }),
            bucket_key_enabled: Some(false),
        }],
    }
}

pub fn put(
    req: S3Request<PutBucketEncryptionInput>,
) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
    ReqCtx::of(&req)?.bucket()?;
    let rules = req.input.server_side_encryption_configuration.rules;
    if rules.len() != 1 {
        return Err(error::with(S3ErrorCode::MalformedXML, error::MALFORMED_XML));
    }
    let Some(by_default) = &rules[0].apply_server_side_encryption_by_default else {
        return Err(error::with(S3ErrorCode::MalformedXML, error::MALFORMED_XML));
    };
    match by_default.sse_algorithm.as_str() {
        ServerSideEncryption::AES256 if by_default.kms_master_key_id.is_none() => {}
        ServerSideEncryption::AES256 => {
            return Err(error::with(
                S3ErrorCode::InvalidArgument,
                "a KMS master key id is allowed only with aws:kms",
            ));
        }
        ServerSideEncryption::AWS_KMS | ServerSideEncryption::AWS_KMS_DSSE => {
            return Err(error::with(S3ErrorCode::NotImplemented, ONLY_AES256));
        }
        _ => return Err(error::with(S3ErrorCode::MalformedXML, error::MALFORMED_XML)),
    }
    Ok(S3Response::new(PutBucketEncryptionOutput {}))
}

pub fn get(
    req: S3Request<GetBucketEncryptionInput>,
) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
    ReqCtx::of(&req)?.bucket()?;
    Ok(S3Response::new(GetBucketEncryptionOutput {
        server_side_encryption_configuration: Some(default_configuration()),
    }))
}

pub fn delete(
    req: S3Request<DeleteBucketEncryptionInput>,
) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
    ReqCtx::of(&req)?.bucket()?;
    Ok(S3Response::new(DeleteBucketEncryptionOutput {}))
}
