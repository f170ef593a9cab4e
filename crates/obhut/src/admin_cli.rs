//! Admin commands: thin clients of the admin API that print results as plain lines.

use crate::AdminArgs;
use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use serde_json::{Value, json};

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
    /// Create an S3 access key for a tenant and print it as environment lines.
    KeyCreate { name: String },
    /// Rotate a bucket's key and rewrap its objects' keys, with progress (the tenant's admin).
    RotateKey {
        name: String,
        #[arg(long)]
        bucket: String,
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

#[derive(Subcommand)]
pub enum TrusteeCommand {
    /// Create a sealed keystore and print its unseal shares, once. Run where the trustee runs.
    Init {
        /// Number of shares to deal.
        #[arg(long)]
        shares: u8,
        /// Shares needed to unseal.
        #[arg(long)]
        threshold: u8,
        /// Keystore directory.
        #[arg(long, default_value = "obhut-data/trustee")]
        dir: std::path::PathBuf,
    },
    /// Create the private CA and the certificates of the trustee API (mutual TLS) in DIR:
    /// ca.crt/.key, trustee.crt/.key, gateway-N.crt/.key. Keeps what exists, adds what is
    /// missing. Run it where the trustee runs.
    InitPki {
        /// Directory for the certificates and keys (keys are written with mode 0600).
        #[arg(long)]
        dir: std::path::PathBuf,
        /// Gateway client certificates to have: gateway-1 .. gateway-N.
        #[arg(long, default_value_t = 1)]
        gateways: u32,
        /// Names and addresses the trustee is reached by (repeat, or separate with commas).
        #[arg(long = "san", value_delimiter = ',', default_values = ["localhost", "127.0.0.1"])]
        sans: Vec<String>,
    },
    /// Give one unseal share (officers). Reads it from standard input if not given.
    Unseal { share: Option<String> },
    /// Show whether the trustee is sealed.
    Status,
    /// Seal the trustee at once (officers): nothing is released until it is unsealed again.
    Seal,
    /// Replace the master key of a stopped trustee's sealed keystore: reads the current shares
    /// from standard input, rewraps every tenant key, prints the new shares.
    RotateMaster {
        /// Number of new shares to deal.
        #[arg(long)]
        shares: u8,
        /// New shares needed to unseal.
        #[arg(long)]
        threshold: u8,
        /// Keystore directory.
        #[arg(long, default_value = "obhut-data/trustee")]
        dir: std::path::PathBuf,
    },
}

pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    pub(crate) fn new(args: &AdminArgs) -> Result<Self> {
        let token = args
            .token
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| anyhow!("no token: pass --token or set OBHUT_TOKEN"))?;
        Ok(Self {
            http: reqwest::Client::new(),
            base: args.admin_url.trim_end_matches('/').to_owned(),
            token,
        })
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the admin API at {}", self.base))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .context("reading the admin API's answer")?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            Ok(value)
        } else {
            let msg = value
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| value.to_string(), str::to_owned);
            bail!("{msg} (HTTP {})", status.as_u16())
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn tenant(args: &AdminArgs, cmd: TenantCommand) -> Result<()> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            TenantCommand::Create {
                name,
                jurisdiction,
                min_sites,
            } => {
                let t = client
                    .call(
                        reqwest::Method::POST,
                        "/v1/tenants",
                        Some(json!({"name": name, "jurisdiction": jurisdiction, "min_sites": min_sites})),
                    )
                    .await?;
                println!(
                    "created tenant {} (jurisdictions {}, min_sites {})",
                    t["name"].as_str().unwrap_or("?"),
                    join(&t["jurisdictions"]),
                    t["min_sites"]
                );
            }
            TenantCommand::List => {
                let list = client.call(reqwest::Method::GET, "/v1/tenants", None).await?;
                println!("{:<24} {:<16} MIN_SITES", "NAME", "JURISDICTIONS");
                for t in list.as_array().into_iter().flatten() {
                    println!(
                        "{:<24} {:<16} {}",
                        t["name"].as_str().unwrap_or("?"),
                        join(&t["jurisdictions"]),
                        t["min_sites"]
                    );
                }
            }
            TenantCommand::Shred { name, now, cancel } => {
                obhut_core::validate_tenant_name(&name)?;
                let r = client
                    .call(
                        reqwest::Method::POST,
                        &format!("/v1/tenants/{name}/shred"),
                        Some(json!({"now": now, "cancel": cancel})),
                    )
                    .await?;
                print_shred(&r);
            }
            TenantCommand::RotateKey { name, bucket } => {
                obhut_core::validate_tenant_name(&name)?;
                obhut_core::validate_bucket_name(&bucket)?;
                crate::rotate_cli::rotate_bucket_key(&client, &name, &bucket).await?;
            }
            TenantCommand::KeyCreate { name } => {
                obhut_core::validate_tenant_name(&name)?;
                let k = client
                    .call(reqwest::Method::POST, &format!("/v1/tenants/{name}/keys"), None)
                    .await?;
                println!("AWS_ACCESS_KEY_ID={}", k["access_key_id"].as_str().unwrap_or(""));
                println!(
                    "AWS_SECRET_ACCESS_KEY={}",
                    k["secret_access_key"].as_str().unwrap_or("")
                );
            }
        }
        Ok(())
    })
}

fn join(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn print_seal(status: &Value) {
    if status["sealed"].as_bool() == Some(false) {
        println!("unsealed");
    } else {
        println!(
            "sealed: {} of {} shares given",
            status["shares_given"], status["threshold"]
        );
    }
}

pub fn trustee(args: &AdminArgs, cmd: TrusteeCommand) -> Result<()> {
    match cmd {
        TrusteeCommand::Init {
            shares,
            threshold,
            dir,
        } => {
            let dealt = obhut_trustee::SealedKeystore::init(&dir, shares, threshold)
                .with_context(|| format!("cannot create a keystore in {}", dir.display()))?;
            println!(
                "created sealed keystore {} ({threshold} of {shares} shares unseal it)",
                dir.display()
            );
            println!("give each share to a different officer; they are shown only now:");
            for (i, s) in dealt.iter().enumerate() {
                println!("share {}: {s}", i + 1);
            }
            Ok(())
        }
        TrusteeCommand::InitPki {
            dir,
            gateways,
            sans,
        } => {
            let outcomes =
                obhut_trustee::server::pki::init(&dir, &sans, gateways).with_context(|| {
                    format!("cannot create the trustee API's PKI in {}", dir.display())
                })?;
            for o in &outcomes {
                let verb = if o.created { "created" } else { "kept" };
                println!("{verb} {}", o.path.display());
            }
            println!(
                "the trustee uses trustee.crt, trustee.key and ca.crt; each gateway uses ca.crt and its own gateway-N.crt and .key; keep ca.key offline until you need more certificates"
            );
            Ok(())
        }
        TrusteeCommand::Unseal { share } => {
            let share = match share {
                Some(s) => s,
                None => {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .context("reading the share from standard input")?;
                    line.trim().to_owned()
                }
            };
            if share.is_empty() {
                bail!("no share given");
            }
            let client = Client::new(args)?;
            runtime()?.block_on(async {
                let status = client
                    .call(
                        reqwest::Method::POST,
                        "/v1/trustee/unseal",
                        Some(json!({ "share": share })),
                    )
                    .await?;
                print_seal(&status);
                Ok(())
            })
        }
        TrusteeCommand::RotateMaster {
            shares,
            threshold,
            dir,
        } => crate::rotate_cli::rotate_master(&dir, shares, threshold),
        TrusteeCommand::Seal => {
            let client = Client::new(args)?;
            runtime()?.block_on(async {
                let status = client
                    .call(reqwest::Method::POST, "/v1/trustee/seal", None)
                    .await?;
                print_seal(&status);
                Ok(())
            })
        }
        TrusteeCommand::Status => {
            let client = Client::new(args)?;
            runtime()?.block_on(async {
                let status = client
                    .call(reqwest::Method::GET, "/v1/trustee/status", None)
                    .await?;
                print_seal(&status);
                Ok(())
            })
        }
    }
}

fn print_shred(r: &Value) {
    let tenant = r["tenant"].as_str().unwrap_or("?");
    match r["state"].as_str().unwrap_or("?") {
        "pending" => {
            let approvals = join(&r["approvals"]);
            println!(
                "pending: {} of {} approvals for {} ({approvals}); at least one officer",
                r["approvals"].as_array().map_or(0, Vec::len),
                r["required"],
                r["action"].as_str().unwrap_or("?"),
            );
        }
        "disabled" => {
            let when = r["destroy_after_ms"]
                .as_i64()
                .and_then(|ms| time::OffsetDateTime::from_unix_timestamp(ms / 1000).ok())
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_else(|| "?".into());
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
