//! `obhut tenant`: tenants, their policies and S3 keys, bucket policies, bucket-key rotation
//! and crypto-shred.

use crate::AdminArgs;
use crate::cli::shared::{Client, bar, runtime, split_list, when_ms};
use anyhow::{Result, anyhow, bail};
use clap::Subcommand;
use obhut_admin::wire::{AccessKeyCreated, AccessKeyView, JobStarted, JobView, TenantSummary};
use obhut_trustee_client::views::{BucketPolicyView, ShredView, TenantPolicyView};
use obhut_trustee_client::{Action, DegradedWrites, ShredMode};
use std::time::Duration;

#[derive(Subcommand)]
pub enum TenantCommand {
    /// Create a tenant (officers).
    Create {
        name: String,
        /// Allowed jurisdiction(s), ISO 3166-1 alpha-2, comma-separated (e.g. DE).
        #[arg(long)]
        jurisdiction: String,
        /// Distinct sites every object must be durable on before a write is acknowledged.
        #[arg(long, default_value_t = 2)]
        min_sites: u32,
    },
    /// List tenants (officers).
    List,
    /// Show a tenant's policy, or change it (officers): customer approval of grants and
    /// residency. A change that would leave data outside the allowed jurisdictions is refused.
    Policy {
        name: String,
        /// required (the default for new tenants) or optional.
        #[arg(long)]
        customer_approval: Option<String>,
        /// Allowed jurisdictions, comma-separated.
        #[arg(long)]
        jurisdiction: Option<String>,
        /// Distinct sites every write must be durable on.
        #[arg(long)]
        min_sites: Option<u32>,
        /// With fewer sites available than min_sites: refuse (default) or accept the write on
        /// the sites there are, and repair later.
        #[arg(long)]
        degraded_writes: Option<String>,
    },
    /// Narrow one bucket's residency (the tenant's admin): fewer jurisdictions, more sites.
    BucketPolicy {
        name: String,
        #[arg(long)]
        bucket: String,
        #[arg(long)]
        jurisdiction: Option<String>,
        #[arg(long)]
        min_sites: Option<u32>,
    },
    /// Create an S3 access key for a tenant and print it as environment lines (the tenant's
    /// admin; the trustee keeps the secret). Without options the key may do anything the
    /// tenant may; `--policy FILE` (IAM JSON, no Principal) or the presets limit it for good.
    KeyCreate {
        name: String,
        #[command(flatten)]
        scope: KeyScope,
    },
    /// List a tenant's access keys, their states and scopes (the tenant's admin).
    KeyList {
        name: String,
        /// Print each scoped key's whole policy.
        #[arg(long)]
        policies: bool,
    },
    /// Revoke an access key of a tenant at once (the tenant's admin).
    KeyRevoke { name: String, access_key_id: String },
    /// Choose how the tenant's keys reach gateways (the tenant's admin): `bucket` (the bucket
    /// key, cached by the gateway for key_cache_ttl) or `per-object` (the trustee opens each
    /// object key for each verified request; no bucket key leaves it).
    KeyRelease {
        name: String,
        #[arg(value_parser = ["bucket", "per-object"])]
        mode: String,
    },
    /// Rotate a bucket's key and rewrap its objects' keys, with progress (the tenant's admin).
    RotateKey {
        name: String,
        #[arg(long)]
        bucket: String,
        /// Start the rotation and print its job id (`job=ID`) instead of waiting for it.
        #[arg(long)]
        no_wait: bool,
    },
    /// Show a tenant's quota and usage (officers, the tenant's admin), or set it (officers):
    /// `--max-bytes 10GiB --max-objects 1000000`, or `--clear`. Writes beyond it are refused
    /// with S3's QuotaExceeded. `--recount` mends usage that fell behind (officers).
    Quota {
        name: String,
        #[command(flatten)]
        args: crate::cli::quota::TenantQuotaArgs,
    },
    /// Crypto-shred a tenant: disable its key now, destroy it after the grace period. Needs
    /// two distinct principals (officers, or an officer and the tenant's admin): each runs it.
    Shred {
        name: String,
        /// Destroy the key at once (same quorum).
        #[arg(long, conflicts_with = "cancel")]
        now: bool,
        /// Re-enable a disabled key during the grace period (same quorum).
        #[arg(long)]
        cancel: bool,
    },
}

pub fn run(args: &AdminArgs, cmd: TenantCommand) -> Result<()> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            TenantCommand::Quota { name, args } => {
                let path = format!("/v1/tenants/{}/quota", crate::cli::quota::segment(&name)?);
                if args.recount {
                    crate::cli::quota::recount(&client, &path).await?;
                } else {
                    crate::cli::quota::run(&client, &path, &args.limits).await?;
                }
            }
            TenantCommand::Create {
                name,
                jurisdiction,
                min_sites,
            } => {
                let jurisdictions: Vec<String> = jurisdiction
                    .split(',')
                    .map(|j| j.trim().to_owned())
                    .filter(|j| !j.is_empty())
                    .collect();
                let t: TenantPolicyView = client
                    .act_as(Action::RegisterTenant {
                        name,
                        jurisdictions,
                        min_sites,
                    })
                    .await?;
                println!(
                    "created tenant {} (jurisdictions {}, min_sites {}, customer approval of grants {})",
                    t.tenant,
                    t.jurisdictions.join(","),
                    t.min_sites,
                    t.customer_approval.as_str()
                );
            }
            TenantCommand::List => {
                let list: Vec<TenantSummary> = client.get("/v1/tenants").await?;
                println!("{:<24} {:<16} MIN_SITES", "NAME", "JURISDICTIONS");
                for t in &list {
                    println!(
                        "{:<24} {:<16} {}",
                        t.name,
                        t.jurisdictions.join(","),
                        t.min_sites
                    );
                }
            }
            TenantCommand::Shred { name, now, cancel } => {
                obhut_core::validate_tenant_name(&name)?;
                let mode = match (now, cancel) {
                    (true, _) => ShredMode::Now,
                    (_, true) => ShredMode::Cancel,
                    _ => ShredMode::Disable,
                };
                let r: ShredView = client.act_as(Action::Shred { tenant: name, mode }).await?;
                print_shred(&r);
            }
            TenantCommand::Policy {
                name,
                customer_approval,
                jurisdiction,
                min_sites,
                degraded_writes,
            } => {
                let change = customer_approval.is_some()
                    || jurisdiction.is_some()
                    || min_sites.is_some()
                    || degraded_writes.is_some();
                if change {
                    let customer_approval = customer_approval
                        .as_deref()
                        .map(|v| match v {
                            "required" => Ok(true),
                            "optional" => Ok(false),
                            other => Err(anyhow!(
                                "--customer-approval is required or optional, not {other:?}"
                            )),
                        })
                        .transpose()?;
                    let degraded_writes = degraded_writes
                        .as_deref()
                        .map(|v| match v {
                            "accept" => Ok(true),
                            "refuse" => Ok(false),
                            other => Err(anyhow!(
                                "--degraded-writes is accept or refuse, not {other:?}"
                            )),
                        })
                        .transpose()?;
                    client
                        .act(Action::SetTenantPolicy {
                            tenant: name.clone(),
                            customer_approval,
                            jurisdictions: jurisdiction.as_deref().map(split_list),
                            min_sites,
                            degraded_writes,
                        })
                        .await?;
                }
                let p: TenantPolicyView = client.get(&format!("/v1/tenants/{name}/policy")).await?;
                println!(
                    "tenant {}: jurisdictions {}, min_sites {}, degraded writes {}, customer approval of grants {}",
                    p.tenant,
                    p.jurisdictions.join(","),
                    p.min_sites,
                    p.degraded_writes.unwrap_or(DegradedWrites::Refuse).as_str(),
                    p.customer_approval.as_str(),
                );
            }
            TenantCommand::BucketPolicy {
                name,
                bucket,
                jurisdiction,
                min_sites,
            } => {
                let v: BucketPolicyView = client
                    .act_as(Action::SetBucketPolicy {
                        tenant: name.clone(),
                        bucket: bucket.clone(),
                        jurisdictions: jurisdiction.as_deref().map(split_list),
                        min_sites,
                    })
                    .await?;
                let tenants = || "as the tenant's".to_owned();
                println!(
                    "bucket {bucket} of tenant {name}: jurisdictions {}, min_sites {}",
                    v.jurisdictions.map_or_else(tenants, |j| j.join(",")),
                    v.min_sites.map_or_else(tenants, |n| n.to_string()),
                );
            }
            TenantCommand::RotateKey {
                name,
                bucket,
                no_wait,
            } => {
                obhut_core::validate_tenant_name(&name)?;
                obhut_core::validate_bucket_name(&bucket)?;
                rotate_bucket_key(&client, &name, &bucket, no_wait).await?;
            }
            TenantCommand::KeyCreate { name, scope } => {
                obhut_core::validate_tenant_name(&name)?;
                let policy = scope.policy()?;
                // The trustee answers the secret encrypted to a key made here, for this answer
                // only: the admin API in between relays ciphertext.
                let (seed, public) = obhut_crypto::delivery::recipient()
                    .map_err(|e| anyhow!("cannot make a one-time key: {e}"))?;
                let k: AccessKeyCreated = client
                    .act_as(Action::CreateAccessKey {
                        tenant: name,
                        deliver_to: hex_simd::encode_to_string(public, hex_simd::AsciiCase::Lower),
                        policy,
                    })
                    .await?;
                let b64 = |what: &str, v: &str| {
                    base64_simd::STANDARD
                        .decode_to_vec(v.as_bytes())
                        .map_err(|_| anyhow!("the answer's {what} is not base64"))
                };
                let secret = obhut_crypto::delivery::open(
                    &seed,
                    &k.access_key_id,
                    &k.tenant,
                    &b64("enc", &k.enc)?,
                    &b64("sealed_secret", &k.sealed_secret)?,
                )
                .map_err(|e| anyhow!("the new key's secret does not open: {e}"))?;
                let secret = String::from_utf8(secret.to_vec())
                    .map_err(|_| anyhow!("the new key's secret is not text"))?;
                println!("AWS_ACCESS_KEY_ID={}", k.access_key_id);
                println!("AWS_SECRET_ACCESS_KEY={secret}");
            }
            TenantCommand::KeyList { name, policies } => {
                obhut_core::validate_tenant_name(&name)?;
                let keys: Vec<AccessKeyView> =
                    client.get(&format!("/v1/tenants/{name}/keys")).await?;
                for k in keys {
                    println!(
                        "{}  {}  created {}  scope {}",
                        k.access_key_id,
                        k.state,
                        when_ms(Some(k.created_ms)),
                        k.policy
                            .as_deref()
                            .map_or_else(|| "tenant".to_owned(), obhut_core::iam::summary)
                    );
                    if policies && let Some(p) = &k.policy {
                        println!("  policy {p}");
                    }
                }
            }
            TenantCommand::KeyRevoke {
                name,
                access_key_id,
            } => {
                obhut_core::validate_tenant_name(&name)?;
                client
                    .act(Action::RevokeAccessKey {
                        tenant: name,
                        access_key_id: access_key_id.clone(),
                    })
                    .await?;
                println!("access key {access_key_id}: revoked");
            }
            TenantCommand::KeyRelease { name, mode } => {
                obhut_core::validate_tenant_name(&name)?;
                let key_release =
                    obhut_trustee_client::object_keys::KeyRelease::from_name(&mode)
                        .ok_or_else(|| anyhow!("key release must be bucket or per-object"))?;
                client
                    .act(Action::SetKeyRelease {
                        tenant: name.clone(),
                        key_release,
                    })
                    .await?;
                println!("tenant {name}: key_release={}", key_release.name());
            }
        }
        Ok(())
    })
}

fn print_shred(r: &ShredView) {
    let done = match r {
        ShredView::Pending(p) => {
            println!(
                "pending: {} of {} approvals for {} ({}); at least one officer",
                p.approvals.len(),
                p.required,
                p.action,
                p.approvals.join(","),
            );
            return;
        }
        ShredView::Done(d) => d,
    };
    let tenant = &done.tenant;
    match done.state.as_str() {
        "disabled" => {
            let when = done
                .destroy_after_ms
                .map_or_else(|| "?".into(), |ms| when_ms(Some(ms)));
            println!(
                "tenant {tenant}: key disabled; it will be destroyed at {when} unless the shred is cancelled"
            );
        }
        "destroyed" => {
            println!("tenant {tenant}: key destroyed; its data can no longer be decrypted")
        }
        "active" => println!("tenant {tenant}: key active (shred cancelled)"),
        other => println!("tenant {tenant}: {other}"),
    }
}

/// Rotates a bucket's key and waits for the rewrap job, showing its progress.
async fn rotate_bucket_key(
    client: &Client,
    tenant: &str,
    bucket: &str,
    no_wait: bool,
) -> Result<()> {
    // The signed statement gets a ticket from the trustee; the rotation uses the bucket's
    // keys under it.
    let ticket = client
        .act(Action::RotateBucketKey {
            tenant: tenant.to_owned(),
            bucket: bucket.to_owned(),
        })
        .await?;
    let started: JobStarted = client
        .post(
            &format!("/v1/tenants/{tenant}/buckets/{bucket}/rotate-key"),
            Some(&serde_json::json!({ "ticket": ticket })),
        )
        .await?;
    if no_wait {
        println!("job={}", started.job);
        return Ok(());
    }
    let progress = bar(0);
    progress.set_message(format!("rewrapping object keys of {bucket}"));
    loop {
        let j: JobView = client.get(&format!("/v1/jobs/{}", started.job)).await?;
        progress.set_length(j.total);
        progress.set_position(j.done);
        match (j.state.as_str(), j.result) {
            ("done", Some(r)) => {
                progress.finish_and_clear();
                println!(
                    "bucket {bucket}: key version {} in use; {} object keys rewrapped, {} replaced meanwhile",
                    r.version, r.rewrapped, r.skipped
                );
                return Ok(());
            }
            ("failed" | "done", _) => {
                progress.abandon();
                bail!(
                    "rotation of {bucket} failed: {}",
                    j.error.as_deref().unwrap_or("unknown error")
                );
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// What a new access key may do: a policy file, or a preset limited to buckets and a prefix.
#[derive(clap::Args, Debug, Default)]
pub struct KeyScope {
    /// An IAM policy (JSON, no Principal) that limits the key.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["read_only", "write_only", "no_delete", "backup", "bucket", "prefix"])]
    policy: Option<std::path::PathBuf>,
    /// Reading and listing objects only.
    #[arg(long, conflicts_with_all = ["write_only", "no_delete", "backup"])]
    read_only: bool,
    /// Writing objects only: no reading, listing or deleting.
    #[arg(long, conflicts_with_all = ["no_delete", "backup"])]
    write_only: bool,
    /// Everything except deleting anything and except changing a bucket's lifecycle rules,
    /// versioning or policy.
    #[arg(long, conflicts_with = "backup")]
    no_delete: bool,
    /// A backup client's key: read, list, write and delete objects, but never delete a
    /// version for good, bypass a retention or change a bucket's settings.
    #[arg(long)]
    backup: bool,
    /// Only this bucket (repeat for more).
    #[arg(long, value_name = "BUCKET")]
    bucket: Vec<String>,
    /// Only object keys starting with this prefix (listings too).
    #[arg(long, value_name = "PREFIX")]
    prefix: Option<String>,
}

impl KeyScope {
    /// The policy text to bind to the key; `None` for a key of the whole tenant.
    fn policy(&self) -> Result<Option<String>> {
        use obhut_core::iam::{Kind, Policy, Preset};
        if let Some(path) = &self.policy {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow!("cannot read {}: {e}", path.display()))?;
            Policy::parse(&text, Kind::Key)
                .map_err(|e| anyhow!("{}: not a key policy: {e}", path.display()))?;
            return Ok(Some(text));
        }
        for b in &self.bucket {
            obhut_core::validate_bucket_name(b)?;
        }
        let preset = if self.read_only {
            Preset::ReadOnly
        } else if self.write_only {
            Preset::WriteOnly
        } else if self.no_delete {
            Preset::NoDelete
        } else if self.backup {
            Preset::Backup
        } else if self.bucket.is_empty() && self.prefix.is_none() {
            return Ok(None);
        } else {
            Preset::Full
        };
        let text = preset
            .document(&self.bucket, self.prefix.as_deref())
            .map_err(|e| anyhow!("{e}"))?;
        Ok(Some(text))
    }
}
