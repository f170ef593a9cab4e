//! `obhut site`: the site registry (`add|list|set-state|set-backend|remove`). Changes are statements
//! signed on this machine, like every governance change; a site's secret travels beside the
//! statement, never in it (the statement is logged).

use crate::AdminArgs;
use crate::cli::shared::{Client, runtime};
use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use obhut_admin::wire::SiteView;
use obhut_trustee_client::Action;
use serde_json::json;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum SiteCommand {
    /// Register a site (officers): a local directory (--fs) or a bucket on an S3-compatible
    /// cluster (--s3 URL --bucket B --access-key K --secret-key S [--s3-ca PEM]). It is created
    /// (its identity written) and used for new placements at once.
    Add {
        id: String,
        #[arg(long)]
        jurisdiction: String,
        #[arg(long, default_value = "")]
        location: String,
        /// A local directory (absolute path).
        #[arg(long, conflicts_with = "s3")]
        fs: Option<PathBuf>,
        /// The S3 endpoint URL.
        #[arg(long, requires_all = ["bucket", "access_key", "secret_key"])]
        s3: Option<String>,
        #[arg(long)]
        bucket: Option<String>,
        #[arg(long, default_value = "us-east-1")]
        region: String,
        #[arg(long)]
        access_key: Option<String>,
        /// Better given through the environment (OBHUT_SITE_SECRET_KEY) than on the command
        /// line.
        #[arg(long, env = "OBHUT_SITE_SECRET_KEY", hide_env_values = true)]
        secret_key: Option<String>,
        /// CA certificates (a PEM file) to trust for an https:// S3 endpoint besides the
        /// system's; stored with the site's record, so every gateway uses them.
        #[arg(long, requires = "s3", value_name = "FILE")]
        s3_ca: Option<PathBuf>,
    },
    /// List the registry (officers, operators, auditors).
    List,
    /// active, draining (its replicas are moved to other allowed sites) or down.
    SetState { id: String, state: String },
    /// Point a site at where it is now (officers): a moved disk (--fs), or a new endpoint,
    /// bucket, credentials or CA (--s3 URL --bucket B --access-key K --secret-key S
    /// [--s3-ca PEM]). The site found
    /// there must be the same one (its identity); every gateway uses it within seconds.
    SetBackend {
        id: String,
        /// A local directory (absolute path).
        #[arg(long, conflicts_with = "s3")]
        fs: Option<PathBuf>,
        /// The S3 endpoint URL.
        #[arg(long, requires_all = ["bucket", "access_key", "secret_key"])]
        s3: Option<String>,
        #[arg(long)]
        bucket: Option<String>,
        #[arg(long, default_value = "us-east-1")]
        region: String,
        #[arg(long)]
        access_key: Option<String>,
        /// Better given through the environment (OBHUT_SITE_SECRET_KEY) than on the command
        /// line.
        #[arg(long, env = "OBHUT_SITE_SECRET_KEY", hide_env_values = true)]
        secret_key: Option<String>,
        /// CA certificates (a PEM file) to trust for an https:// S3 endpoint besides the
        /// system's; stored with the site's record, so every gateway uses them.
        #[arg(long, requires = "s3", value_name = "FILE")]
        s3_ca: Option<PathBuf>,
    },
    /// Forget a drained site (officers).
    Remove { id: String },
}

pub fn run(args: &AdminArgs, cmd: SiteCommand) -> Result<()> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            SiteCommand::Add {
                id,
                jurisdiction,
                location,
                fs,
                s3,
                bucket,
                region,
                access_key,
                secret_key,
                s3_ca,
            } => {
                let (spec, backend) =
                    backend_spec(fs, s3, bucket, region, access_key, secret_key, s3_ca)?;
                client
                    .act_with(
                        Action::AddSite {
                            id: id.clone(),
                            jurisdiction: jurisdiction.clone(),
                            location,
                            backend: backend.clone(),
                        },
                        Some(spec),
                    )
                    .await?;
                println!("added site {id} ({jurisdiction}, {backend}), active");
            }
            SiteCommand::List => {
                let list: Vec<SiteView> = client.get("/v1/sites").await?;
                println!(
                    "{:<16} {:<4} {:<9} {:<9} {:>9}  BACKEND",
                    "ID", "JUR", "STATE", "REACHABLE", "REPLICAS"
                );
                for s in list {
                    println!(
                        "{:<16} {:<4} {:<9} {:<9} {:>9}  {}",
                        s.id,
                        s.jurisdiction,
                        s.state.as_str(),
                        if s.reachable { "yes" } else { "no" },
                        s.replicas,
                        s.backend,
                    );
                }
            }
            SiteCommand::SetState { id, state } => {
                client
                    .act(Action::SetSiteState {
                        id: id.clone(),
                        state: state.clone(),
                    })
                    .await?;
                println!("site {id} is {state}");
                if state == "draining" {
                    println!("its replicas are being moved; follow with `obhut repair --status`");
                }
            }
            SiteCommand::SetBackend {
                id,
                fs,
                s3,
                bucket,
                region,
                access_key,
                secret_key,
                s3_ca,
            } => {
                let (spec, backend) =
                    backend_spec(fs, s3, bucket, region, access_key, secret_key, s3_ca)?;
                client
                    .act_with(
                        Action::SetSiteBackend {
                            id: id.clone(),
                            backend: backend.clone(),
                        },
                        Some(spec),
                    )
                    .await?;
                println!("site {id} is at {backend} now");
            }
            SiteCommand::Remove { id } => {
                client.act(Action::RemoveSite { id: id.clone() }).await?;
                println!("site {id} removed from the registry");
            }
        }
        Ok(())
    })
}

/// The new backend as the admin API takes it (with the secret, which travels beside the signed
/// statement) and its description without secrets (what the statement, and so the log, holds).
fn backend_spec(
    fs: Option<PathBuf>,
    s3: Option<String>,
    bucket: Option<String>,
    region: String,
    access_key: Option<String>,
    secret_key: Option<String>,
    s3_ca: Option<PathBuf>,
) -> Result<(serde_json::Value, String)> {
    Ok(match (fs, s3) {
        (Some(path), None) => {
            let path = if path.is_absolute() {
                path
            } else {
                std::env::current_dir()
                    .context("cannot resolve a relative path")?
                    .join(path)
            };
            let backend = format!("fs:{}", path.display());
            (json!({"fs": {"path": path}}), backend)
        }
        (None, Some(endpoint)) => {
            let (bucket, access_key, secret_key) = (
                bucket.ok_or_else(|| anyhow!("--s3 needs --bucket"))?,
                access_key.ok_or_else(|| anyhow!("--s3 needs --access-key"))?,
                secret_key.ok_or_else(|| anyhow!("--s3 needs --secret-key"))?,
            );
            let ca_pem = s3_ca
                .map(|path| {
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read --s3-ca {}", path.display()))
                })
                .transpose()?;
            let mut spec = json!({"endpoint": endpoint, "bucket": bucket, "region": region,
                                  "access_key": access_key, "secret_key": secret_key});
            if let Some(pem) = &ca_pem {
                spec["ca_pem"] = serde_json::Value::from(pem.as_str());
            }
            let spec = json!({ "s3": spec });
            // The description the admin API makes of the same spec: the signed statement
            // names the CA by its fingerprint.
            let backend: obhut_maintenance::registry::SiteSpec =
                serde_json::from_value(spec.clone())
                    .context("the S3 backend given cannot be described")?;
            (spec, backend.describe())
        }
        _ => bail!(
            "give the site's backend: --fs PATH, or --s3 URL with --bucket, --access-key, --secret-key"
        ),
    })
}
