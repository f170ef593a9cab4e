//! `obhut bucket`: a tenant's buckets as its admin manages them (quotas and usage through the
//! admin API; a rollback to a point in time through the S3 endpoint, with the tenant's S3 key).

use crate::AdminArgs;
use crate::cli::quota::{self, QuotaArgs, segment};
use crate::cli::rollback::{self, RollbackArgs};
use crate::cli::shared::{Client, runtime};
use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum BucketCommand {
    /// Show a bucket's quota and usage, or set it (the tenant's admin, within the tenant's
    /// quota): `--max-bytes 1GiB --max-objects 10000`, or `--clear`.
    Quota {
        tenant: String,
        bucket: String,
        #[command(flatten)]
        limits: QuotaArgs,
    },
    /// Show what a bucket holds and what writes in flight reserved (the tenant's admin).
    Usage { tenant: String, bucket: String },
    /// Make a versioned bucket's objects what they were at a point in time: each key changed
    /// since gets the version current then copied onto it, or a delete marker if it did not
    /// exist then; no version is ever deleted. Signed with the S3 key in AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY (it needs to list and read versions, write and delete objects: a
    /// key of the whole tenant, which only its admin makes), not with OBHUT_TOKEN.
    Rollback(RollbackArgs),
}

pub fn run(args: &AdminArgs, cmd: BucketCommand) -> Result<()> {
    let (tenant, bucket, limits) = match cmd {
        BucketCommand::Rollback(rollback) => return rollback::run(args, &rollback),
        BucketCommand::Quota {
            tenant,
            bucket,
            limits,
        } => (tenant, bucket, Some(limits)),
        BucketCommand::Usage { tenant, bucket } => (tenant, bucket, None),
    };
    let client = Client::new(args)?;
    let path = path(&tenant, &bucket)?;
    runtime()?.block_on(async {
        match limits {
            Some(limits) => quota::run(&client, &path, &limits).await,
            None => quota::usage(&client, &path).await,
        }
    })
}

fn path(tenant: &str, bucket: &str) -> Result<String> {
    Ok(format!(
        "/v1/tenants/{}/buckets/{}/quota",
        segment(tenant)?,
        segment(bucket)?
    ))
}
