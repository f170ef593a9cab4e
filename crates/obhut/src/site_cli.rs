//! Residency commands: the site registry (`site add|list|set-state|remove`), `repair`, and
//! `residency report`. Changes are statements signed on this machine, like every governance
//! change.

use crate::AdminArgs;
use crate::admin_cli::{Client, join, runtime};
use crate::rotate_cli::bar;
use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use obhut_trustee_client::Action;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Subcommand)]
pub enum SiteCommand {
    /// Register a site (officers): a local directory (--fs) or a bucket on an S3-compatible
    /// cluster (--s3 URL --bucket B --access-key K --secret-key S). It is created (its identity
    /// written) and used for new placements at once.
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
    },
    /// List the registry (officers, operators, auditors).
    List,
    /// active, draining (its replicas are moved to other allowed sites) or down.
    SetState { id: String, state: String },
    /// Forget a drained site (officers).
    Remove { id: String },
}

pub fn site(args: &AdminArgs, cmd: SiteCommand) -> Result<()> {
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
            } => {
                let (spec, backend) = match (fs, s3) {
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
                        let backend = format!(
                            "s3:{}/{bucket} as {access_key}",
                            endpoint.trim_end_matches('/')
                        );
                        (
                            json!({"s3": {"endpoint": endpoint, "bucket": bucket, "region": region,
                                          "access_key": access_key, "secret_key": secret_key}}),
                            backend,
                        )
                    }
                    _ => bail!("give the site's backend: --fs PATH, or --s3 URL with --bucket, --access-key, --secret-key"),
                };
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
                let list = client.call(reqwest::Method::GET, "/v1/sites", None).await?;
                println!(
                    "{:<16} {:<4} {:<9} {:<9} {:>9}  BACKEND",
                    "ID", "JUR", "STATE", "REACHABLE", "REPLICAS"
                );
                for s in list.as_array().into_iter().flatten() {
                    println!(
                        "{:<16} {:<4} {:<9} {:<9} {:>9}  {}",
                        s["id"].as_str().unwrap_or("?"),
                        s["jurisdiction"].as_str().unwrap_or("?"),
                        s["state"].as_str().unwrap_or("?"),
                        if s["reachable"].as_bool() == Some(true) { "yes" } else { "no" },
                        s["replicas"],
                        s["backend"].as_str().unwrap_or("?"),
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
            SiteCommand::Remove { id } => {
                client.act(Action::RemoveSite { id: id.clone() }).await?;
                println!("site {id} removed from the registry");
            }
        }
        Ok(())
    })
}

fn print_status(st: &Value) {
    println!(
        "repair {} ({}): {} of {} objects, {} upload parts, {} replicas copied, {} removed, {} failed; scrubber: {} replicas checked, {} bad, {} repaired",
        st["state"].as_str().unwrap_or("?"),
        st["reason"].as_str().unwrap_or("-"),
        st["objects_done"],
        st["objects_total"],
        st["parts_done"],
        st["replicas_copied"],
        st["replicas_removed"],
        st["objects_failed"].as_u64().unwrap_or(0) + st["parts_failed"].as_u64().unwrap_or(0),
        st["scrub_checked"],
        st["scrub_bad"],
        st["scrub_repaired"],
    );
    for e in st["errors"].as_array().into_iter().flatten() {
        println!("  error: {}", e.as_str().unwrap_or("?"));
    }
}

/// `obhut repair`: starts a pass (or joins the running one) and follows it with a progress
/// bar; `--status` prints where it is.
pub fn repair(args: &AdminArgs, status_only: bool) -> Result<()> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        if status_only {
            let st = client
                .call(reqwest::Method::GET, "/v1/repair", None)
                .await?;
            print_status(&st);
            return Ok(());
        }
        client
            .call(reqwest::Method::POST, "/v1/repair", None)
            .await?;
        let progress = bar(0);
        progress.set_message("restoring replicas");
        loop {
            let st = client
                .call(reqwest::Method::GET, "/v1/repair", None)
                .await?;
            progress.set_length(st["objects_total"].as_u64().unwrap_or(0));
            progress.set_position(st["objects_done"].as_u64().unwrap_or(0));
            if st["state"] != "running" {
                progress.finish_and_clear();
                print_status(&st);
                let failed = st["objects_failed"].as_u64().unwrap_or(0)
                    + st["parts_failed"].as_u64().unwrap_or(0);
                if st["state"] == "failed" || failed > 0 {
                    bail!("repair did not restore every object (see the errors above)");
                }
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
}

/// `obhut residency report`: prints a summary per bucket, writes the report (with its digest
/// and the trustee's signed attestation) to `--out` if given.
pub fn report(
    args: &AdminArgs,
    tenant: Option<String>,
    verify: bool,
    out: Option<PathBuf>,
) -> Result<()> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        let mut path = format!("/v1/residency?verify={verify}");
        if let Some(t) = &tenant {
            path.push_str(&format!("&tenant={t}"));
        }
        let answer = client.call(reqwest::Method::GET, &path, None).await?;
        let text = answer["report"]
            .as_str()
            .ok_or_else(|| anyhow!("the admin API returned no report"))?;
        let digest = obhut_crypto::principal::sha256_hex(text.as_bytes());
        if Some(digest.as_str()) != answer["sha256"].as_str() {
            bail!("the report does not match its digest");
        }
        let report: Value = serde_json::from_str(text).context("the report is not JSON")?;
        let mut outside_total = 0;
        for t in report["tenants"].as_array().into_iter().flatten() {
            println!(
                "tenant {} (jurisdictions {})",
                t["tenant"].as_str().unwrap_or("?"),
                join(&t["jurisdictions"])
            );
            for b in t["buckets"].as_array().into_iter().flatten() {
                outside_total += b["outside_policy"].as_u64().unwrap_or(0);
                let sets: Vec<String> = b["objects_by_sites"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect();
                print!(
                    "  bucket {}: {} objects ({}); under-replicated {}; outside policy {}",
                    b["bucket"].as_str().unwrap_or("?"),
                    b["objects"],
                    sets.join("; "),
                    b["under_replicated"],
                    b["outside_policy"],
                );
                if let Some(v) = b.get("verified") {
                    print!(
                        "; verified {} replicas: {} missing, {} corrupt, {} unreachable",
                        v["replicas_checked"], v["missing"], v["corrupt"], v["unreachable"]
                    );
                }
                println!();
            }
        }
        let att = &answer["attestation"];
        println!(
            "sha256 {digest}; attested by the trustee in log entry {}",
            att["log_index"]
        );
        if let Some(out) = out {
            std::fs::write(&out, serde_json::to_string_pretty(&answer)?)
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "report, digest and signed attestation written to {}",
                out.display()
            );
        }
        if outside_total > 0 {
            bail!("{outside_total} object(s) have replicas outside their policy");
        }
        Ok(())
    })
}
