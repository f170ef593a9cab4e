//! Bucket policies (Put/Get/DeleteBucketPolicy, GetBucketPolicyStatus), Block Public Access
//! (Get/Put/DeletePublicAccessBlock), object ownership (Get/Put/DeleteBucketOwnershipControls:
//! always `BucketOwnerEnforced`) and ACLs as S3 has them under enforced ownership: the owner's
//! full control, answered by GetBucketAcl and GetObjectAcl, and nothing else ever set.
//!
//! Policies are kept in the catalog (`bucket_configs`) and evaluated by `crate::scope`; what
//! they can and cannot do is said there. Public ACLs and public policies are refused while
//! Block Public Access (on by default) says so; even with it off, obhut never stores an ACL,
//! and a policy's `"*"` reaches only the tenant's own keys (anonymous requests are refused
//! before any policy is read). Never sees keys or object data.

use super::convert::{now_ms, owner};
use super::store::KeyMemo;
use crate::access::ReqCtx;
use crate::scope::{PublicAccessBlock, StoredPolicy, public_access_block, stored_policy};
use crate::{Gateway, error};
use obhut_catalog::{Tenant, config_kind};
use obhut_core::iam::{Kind, Policy};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

const ENFORCED_ONLY: &str = "obhut enforces bucket-owner ownership (BucketOwnerEnforced): ACLs are disabled and objects always belong to the bucket's owner";
const PUBLIC_POLICY_BLOCKED: &str = "Access Denied: public policies are blocked by the BlockPublicPolicy block public access setting";
const PUBLIC_ACL_BLOCKED: &str =
    "Access Denied: public ACLs are blocked by the BlockPublicAcls block public access setting";

fn no_such_policy() -> S3Error {
    error::with(
        S3ErrorCode::NoSuchBucketPolicy,
        "The bucket policy does not exist",
    )
}

fn forbidden(message: &'static str) -> S3Error {
    error::with(S3ErrorCode::AccessDenied, message)
}

pub async fn put_policy(
    gw: &Gateway,
    req: S3Request<PutBucketPolicyInput>,
) -> S3Result<S3Response<PutBucketPolicyOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let bucket = ctx.bucket()?;
    let text = req.input.policy;
    let policy = Policy::parse(&text, Kind::Bucket(&bucket.name))
        .map_err(|e| S3Error::with_message(S3ErrorCode::MalformedPolicy, e.to_string()))?;
    if policy.is_public()
        && public_access_block(gw.catalog.as_ref(), bucket)
            .await?
            .block_public_policy
    {
        return Err(forbidden(PUBLIC_POLICY_BLOCKED));
    }
    let stored = serde_json::to_vec(&StoredPolicy::new(text))
        .map_err(|_| error::with(S3ErrorCode::InternalError, "cannot encode the policy"))?;
    gw.catalog
        .put_bucket_config(bucket, config_kind::POLICY, Some(&stored), now_ms())
        .await
        .map_err(error::catalog)?;
    gw.bucket_policies.forget(bucket);
    Ok(S3Response::new(PutBucketPolicyOutput {}))
}

pub async fn get_policy(
    gw: &Gateway,
    req: S3Request<GetBucketPolicyInput>,
) -> S3Result<S3Response<GetBucketPolicyOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let policy = stored_policy(gw.catalog.as_ref(), ctx.bucket()?)
        .await?
        .ok_or_else(no_such_policy)?;
    Ok(S3Response::new(GetBucketPolicyOutput {
        policy: Some(policy),
    }))
}

pub async fn delete_policy(
    gw: &Gateway,
    req: S3Request<DeleteBucketPolicyInput>,
) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let bucket = ctx.bucket()?;
    gw.catalog
        .put_bucket_config(bucket, config_kind::POLICY, None, now_ms())
        .await
        .map_err(error::catalog)?;
    gw.bucket_policies.forget(bucket);
    Ok(S3Response::new(DeleteBucketPolicyOutput {}))
}

pub async fn policy_status(
    gw: &Gateway,
    req: S3Request<GetBucketPolicyStatusInput>,
) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let bucket = ctx.bucket()?;
    let text = stored_policy(gw.catalog.as_ref(), bucket)
        .await?
        .ok_or_else(no_such_policy)?;
    // A record that no longer parses is not public (it denies everything).
    let public = Policy::parse(&text, Kind::Bucket(&bucket.name)).is_ok_and(|p| p.is_public());
    Ok(S3Response::new(GetBucketPolicyStatusOutput {
        policy_status: Some(PolicyStatus {
            is_public: Some(public),
        }),
    }))
}

fn pab_view(p: PublicAccessBlock) -> PublicAccessBlockConfiguration {
    PublicAccessBlockConfiguration {
        block_public_acls: Some(p.block_public_acls),
        ignore_public_acls: Some(p.ignore_public_acls),
        block_public_policy: Some(p.block_public_policy),
        restrict_public_buckets: Some(p.restrict_public_buckets),
    }
}

pub async fn get_public_access_block(
    gw: &Gateway,
    req: S3Request<GetPublicAccessBlockInput>,
) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let p = public_access_block(gw.catalog.as_ref(), ctx.bucket()?).await?;
    Ok(S3Response::new(GetPublicAccessBlockOutput {
        public_access_block_configuration: Some(pab_view(p)),
    }))
}

pub async fn put_public_access_block(
    gw: &Gateway,
    req: S3Request<PutPublicAccessBlockInput>,
) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let c = req.input.public_access_block_configuration;
    // A setting left out is off, as in S3.
    let p = PublicAccessBlock {
        block_public_acls: c.block_public_acls.unwrap_or(false),
        ignore_public_acls: c.ignore_public_acls.unwrap_or(false),
        block_public_policy: c.block_public_policy.unwrap_or(false),
        restrict_public_buckets: c.restrict_public_buckets.unwrap_or(false),
        ..PublicAccessBlock::default()
    };
    let stored = serde_json::to_vec(&p)
        .map_err(|_| error::with(S3ErrorCode::InternalError, "cannot encode the settings"))?;
    gw.catalog
        .put_bucket_config(
            ctx.bucket()?,
            config_kind::PUBLIC_ACCESS_BLOCK,
            Some(&stored),
            now_ms(),
        )
        .await
        .map_err(error::catalog)?;
    Ok(S3Response::new(PutPublicAccessBlockOutput {}))
}

/// Removes the bucket's own settings: obhut's default (every setting on) applies again.
pub async fn delete_public_access_block(
    gw: &Gateway,
    req: S3Request<DeletePublicAccessBlockInput>,
) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
    let ctx = ReqCtx::of(&req)?;
    gw.catalog
        .put_bucket_config(
            ctx.bucket()?,
            config_kind::PUBLIC_ACCESS_BLOCK,
            None,
            now_ms(),
        )
        .await
        .map_err(error::catalog)?;
    Ok(S3Response::new(DeletePublicAccessBlockOutput {}))
}

fn enforced() -> OwnershipControls {
    OwnershipControls {
        rules: vec![OwnershipControlsRule {
            object_ownership: ObjectOwnership::from_static(ObjectOwnership::BUCKET_OWNER_ENFORCED),
        }],
    }
}

pub fn get_ownership(
    req: &S3Request<GetBucketOwnershipControlsInput>,
) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
    ReqCtx::of(req)?.bucket()?;
    Ok(S3Response::new(GetBucketOwnershipControlsOutput {
        ownership_controls: Some(enforced()),
    }))
}

/// `BucketOwnerEnforced` is accepted (it is what every bucket has); anything else refused.
pub fn put_ownership(
    req: &S3Request<PutBucketOwnershipControlsInput>,
) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
    ReqCtx::of(req)?.bucket()?;
    let rules = &req.input.ownership_controls.rules;
    if rules.is_empty() || rules.len() > 1 {
        return Err(error::with(S3ErrorCode::MalformedXML, error::MALFORMED_XML));
    }
    check_ownership(Some(&rules[0].object_ownership))?;
    Ok(S3Response::new(PutBucketOwnershipControlsOutput {}))
}

/// Refused: without controls S3 would fall back to ACLs (ObjectWriter), which obhut never has.
pub fn delete_ownership(
    req: &S3Request<DeleteBucketOwnershipControlsInput>,
) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
    ReqCtx::of(req)?.bucket()?;
    Err(error::with(S3ErrorCode::InvalidRequest, ENFORCED_ONLY))
}

/// An object ownership a request names (CreateBucket's `x-amz-object-ownership`, a
/// PutBucketOwnershipControls rule): `BucketOwnerEnforced` only.
pub fn check_ownership(o: Option<&ObjectOwnership>) -> S3Result<()> {
    match o.map(ObjectOwnership::as_str) {
        None | Some(ObjectOwnership::BUCKET_OWNER_ENFORCED) => Ok(()),
        Some(ObjectOwnership::BUCKET_OWNER_PREFERRED | ObjectOwnership::OBJECT_WRITER) => {
            Err(error::with(S3ErrorCode::InvalidRequest, ENFORCED_ONLY))
        }
        Some(_) => Err(error::with(S3ErrorCode::MalformedXML, error::MALFORMED_XML)),
    }
}

/// The only ACL there is: the owner's full control.
fn owner_full_control(tenant: &Tenant) -> (Option<Owner>, Option<Grants>) {
    let o = owner(tenant);
    let grant = Grant {
        grantee: Some(Grantee {
            display_name: o.display_name.clone(),
            email_address: None,
            id: o.id.clone(),
            type_: Type::from_static(Type::CANONICAL_USER),
            uri: None,
        }),
        permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
    };
    (Some(o), Some(vec![grant]))
}

/// Whether a canned ACL opens anything to others than the owner (S3's public ones).
fn public_canned(acl: &str) -> bool {
    matches!(
        acl,
        "public-read" | "public-read-write" | "authenticated-read"
    )
}

/// What an ACL a request sets (PutBucketAcl, PutObjectAcl) may be: a canned `private` or
/// `bucket-owner-full-control`, or a policy granting the owner full control and nothing
/// more. A public one is AccessDenied while Block Public Access blocks public ACLs; any other
/// is AccessControlListNotSupported, as S3 answers under enforced ownership.
async fn check_acl(
    gw: &Gateway,
    ctx: &ReqCtx,
    canned: Option<&str>,
    policy: Option<&AccessControlPolicy>,
    header_grants: bool,
) -> S3Result<()> {
    let tenant = &ctx.tenant;
    let owner_only = |p: &AccessControlPolicy| {
        p.grants.as_ref().is_none_or(|g| {
            g.iter().all(|g| {
                g.permission.as_ref().map(Permission::as_str) == Some(Permission::FULL_CONTROL)
                    && g.grantee.as_ref().is_some_and(|e| {
                        e.type_.as_str() == Type::CANONICAL_USER
                            && e.id.as_deref() == Some(tenant.name.as_str())
                    })
            })
        })
    };
    let public_grant = |p: &AccessControlPolicy| {
        p.grants.as_ref().is_some_and(|g| {
            g.iter().any(|g| {
                g.grantee
                    .as_ref()
                    .and_then(|e| e.uri.as_deref())
                    .is_some_and(|u| u.contains("AllUsers") || u.contains("AuthenticatedUsers"))
            })
        })
    };
    let fine = canned.is_none_or(|a| matches!(a, "private" | "bucket-owner-full-control"))
        && policy.is_none_or(owner_only)
        && !header_grants;
    if fine {
        return Ok(());
    }
    let public = canned.is_some_and(public_canned) || policy.is_some_and(public_grant);
    if public
        && public_access_block(gw.catalog.as_ref(), ctx.bucket()?)
            .await?
            .block_public_acls
    {
        return Err(forbidden(PUBLIC_ACL_BLOCKED));
    }
    Err(error::with(
        S3ErrorCode::AccessControlListNotSupported,
        error::NO_ACLS,
    ))
}

pub fn get_bucket_acl(
    req: &S3Request<GetBucketAclInput>,
) -> S3Result<S3Response<GetBucketAclOutput>> {
    let ctx = ReqCtx::of(req)?;
    ctx.bucket()?;
    let (owner, grants) = owner_full_control(&ctx.tenant);
    Ok(S3Response::new(GetBucketAclOutput { grants, owner }))
}

pub async fn put_bucket_acl(
    gw: &Gateway,
    req: S3Request<PutBucketAclInput>,
) -> S3Result<S3Response<PutBucketAclOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let i = &req.input;
    let grants = i.grant_full_control.is_some()
        || i.grant_read.is_some()
        || i.grant_read_acp.is_some()
        || i.grant_write.is_some()
        || i.grant_write_acp.is_some();
    check_acl(
        gw,
        &ctx,
        i.acl.as_ref().map(BucketCannedACL::as_str),
        i.access_control_policy.as_ref(),
        grants,
    )
    .await?;
    Ok(S3Response::new(PutBucketAclOutput {}))
}

/// The object (or version) an ACL call names must exist, as in S3; whether it does is
/// answered only with the trustee's consent, as for its tags.
async fn existing_object(
    gw: &Gateway,
    ctx: &ReqCtx,
    key: &str,
    version_id: Option<&str>,
) -> S3Result<()> {
    super::input::check_key(key)?;
    let bucket = ctx.bucket()?;
    gw.require_keys(
        &ctx.tenant.name,
        &bucket.name,
        &ctx.justification,
        &KeyMemo::default(),
    )
    .await?;
    gw.object_version(bucket, key, version_id).await?;
    Ok(())
}

pub async fn get_object_acl(
    gw: &Gateway,
    req: S3Request<GetObjectAclInput>,
) -> S3Result<S3Response<GetObjectAclOutput>> {
    let ctx = ReqCtx::of(&req)?;
    existing_object(gw, &ctx, &req.input.key, req.input.version_id.as_deref()).await?;
    let (owner, grants) = owner_full_control(&ctx.tenant);
    Ok(S3Response::new(GetObjectAclOutput {
        grants,
        owner,
        request_charged: None,
    }))
}

pub async fn put_object_acl(
    gw: &Gateway,
    req: S3Request<PutObjectAclInput>,
) -> S3Result<S3Response<PutObjectAclOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let i = &req.input;
    let grants = i.grant_full_control.is_some()
        || i.grant_read.is_some()
        || i.grant_read_acp.is_some()
        || i.grant_write.is_some()
        || i.grant_write_acp.is_some();
    check_acl(
        gw,
        &ctx,
        i.acl.as_ref().map(ObjectCannedACL::as_str),
        i.access_control_policy.as_ref(),
        grants,
    )
    .await?;
    existing_object(gw, &ctx, &i.key, i.version_id.as_deref()).await?;
    Ok(S3Response::new(PutObjectAclOutput {
        request_charged: None,
    }))
}
