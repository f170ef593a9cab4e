//! `obhut bucket`: a tenant's buckets as its admin manages them (quotas and usage).

use crate::AdminArgs;
use crate::cli::quota::{self, QuotaArgs, segment};
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
}

pub fn run(args: &AdminArgs, cmd: BucketCommand) -> Result<()> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            BucketCommand::Quota {
                tenant,
                bucket,
                limits,
            } => quota::run(&client, &path(&tenant, &bucket)?, &limits).await,
            BucketCommand::Usage { tenant, bucket } => {
                quota::usage(&client, &path(&tenant, &bucket)?).await
            }
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
