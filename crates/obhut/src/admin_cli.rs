//! Admin commands: thin clients of the admin API that print results as plain lines.

use crate::AdminArgs;
use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use obhut_admin::wire::{AccessKeyCreated, TenantSummary, UnsealRequest, WhoAmI};
use obhut_crypto::principal::PrincipalCredential;
use obhut_trustee_client::views::{BucketPolicyView, ShredView, TenantPolicyView};
use obhut_trustee_client::{Action, DegradedWrites, Role, SealStatus, ShredMode, Statement};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

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
        /// The first trustee officers (repeat; two or more, since grants and other sensitive
        /// actions need two). Their tokens are printed once; officers enrol everyone else.
        #[arg(long = "officer", required = true)]
        officers: Vec<String>,
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
    /// The secrets the token stands for; the token itself is never sent. Public log reads
    /// need none.
    credential: Option<PrincipalCredential>,
    /// The caller's principal name, once asked for.
    name: tokio::sync::OnceCell<String>,
}

impl Client {
    pub(crate) fn new(args: &AdminArgs) -> Result<Self> {
        if args.token.as_deref().is_none_or(str::is_empty) {
            bail!("no token: pass --token or set OBHUT_TOKEN");
        }
        Self::new_optional(args)
    }

    /// A client that may have no token (for the log's public parts).
    pub(crate) fn new_optional(args: &AdminArgs) -> Result<Self> {
        let credential = args
            .token
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(PrincipalCredential::from_token)
            .transpose()
            .map_err(|e| anyhow!("cannot derive keys from the token: {e}"))?;
        Ok(Self {
            http: reqwest::Client::new(),
            base: args.admin_url.trim_end_matches('/').to_owned(),
            credential,
            name: tokio::sync::OnceCell::new(),
        })
    }

    pub(crate) fn has_token(&self) -> bool {
        self.credential.is_some()
    }

    /// Whether the caller may read every entry (officers and auditors).
    pub(crate) async fn can_read_entries(&self) -> bool {
        match self.get::<WhoAmI>("/v1/whoami").await {
            Ok(me) => matches!(me.role, Role::Officer | Role::Auditor),
            Err(_) => false,
        }
    }

    fn credential(&self) -> Result<&PrincipalCredential> {
        self.credential
            .as_ref()
            .ok_or_else(|| anyhow!("no token: pass --token or set OBHUT_TOKEN"))
    }

    /// The caller's principal name, as the admin API knows it.
    pub(crate) async fn principal_name(&self) -> Result<&str> {
        self.name
            .get_or_try_init(|| async {
                let me: WhoAmI = self.get("/v1/whoami").await?;
                Ok::<_, anyhow::Error>(me.name)
            })
            .await
            .map(String::as_str)
    }

    /// Signs `action` as the caller and has the trustee carry it out.
    pub(crate) async fn act(&self, action: Action) -> Result<Value> {
        self.act_with(action, None).await
    }

    /// Like [`Self::act`], reading the answer as `T`.
    pub(crate) async fn act_as<T: DeserializeOwned>(&self, action: Action) -> Result<T> {
        decode("/v1/act", self.act(action).await?)
    }

    /// Like [`Self::act`], with a new site's backend beside the statement (it may hold a
    /// secret, which the statement, recorded in the log, must not).
    pub(crate) async fn act_with(&self, action: Action, site: Option<Value>) -> Result<Value> {
        let statement = Statement {
            principal: self.principal_name().await?.to_owned(),
            at_ms: now_ms(),
            nonce: obhut_core::random_token(16),
            action,
        };
        let text = serde_json::to_string(&statement).context("encoding the statement")?;
        let signature =
            base64_simd::STANDARD.encode_to_string(self.credential()?.sign_statement(&text));
        let mut body = json!({"statement": text, "signature": signature});
        if let Some(site) = site {
            body["site"] = site;
        }
        self.call(reqwest::Method::POST, "/v1/act", Some(body))
            .await
    }

    /// GET of a path that answers bytes (the log), `None` on 404.
    pub(crate) async fn get_bytes(&self, path: &str, auth: bool) -> Result<Option<Vec<u8>>> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.get(&url);
        if auth {
            req = req.bearer_auth(self.credential()?.bearer());
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the admin API at {}", self.base))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body = resp
            .bytes()
            .await
            .context("reading the admin API's answer")?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            let msg = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| text.into_owned());
            bail!("{msg} (HTTP {})", status.as_u16());
        }
        Ok(Some(body.to_vec()))
    }

    /// GET of a JSON resource, read as `T`.
    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        decode(path, self.call(reqwest::Method::GET, path, None).await?)
    }

    /// POST of `body` (JSON) to `path`, the answer read as `T`.
    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&impl serde::Serialize>,
    ) -> Result<T> {
        let body = body
            .map(serde_json::to_value)
            .transpose()
            .context("encoding the request")?;
        decode(path, self.call(reqwest::Method::POST, path, body).await?)
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(c) = &self.credential {
            req = req.bearer_auth(c.bearer());
        }
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

/// An admin API answer read as the type obhut expects of `path`.
fn decode<T: DeserializeOwned>(path: &str, v: Value) -> Result<T> {
    serde_json::from_value(v)
        .with_context(|| format!("the admin API's answer to {path} is not what obhut expects"))
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
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
            TenantCommand::RotateKey { name, bucket } => {
                obhut_core::validate_tenant_name(&name)?;
                obhut_core::validate_bucket_name(&bucket)?;
                crate::rotate_cli::rotate_bucket_key(&client, &name, &bucket).await?;
            }
            TenantCommand::KeyCreate { name } => {
                obhut_core::validate_tenant_name(&name)?;
                let k: AccessKeyCreated = client
                    .post(&format!("/v1/tenants/{name}/keys"), None::<&Value>)
                    .await?;
                println!("AWS_ACCESS_KEY_ID={}", k.access_key_id);
                println!("AWS_SECRET_ACCESS_KEY={}", k.secret_access_key);
            }
        }
        Ok(())
    })
}

/// `DE, AT` → `["DE", "AT"]`.
pub(crate) fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|x| x.trim().to_owned())
        .filter(|x| !x.is_empty())
        .collect()
}

pub(crate) fn join(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn print_seal(status: &SealStatus) {
    if status.sealed {
        println!(
            "sealed: {} of {} shares given",
            status.shares_given, status.threshold
        );
    } else {
        println!("unsealed");
    }
}

pub fn trustee(args: &AdminArgs, cmd: TrusteeCommand) -> Result<()> {
    match cmd {
        TrusteeCommand::Init {
            shares,
            threshold,
            dir,
            officers,
        } => {
            if officers.len() < 2 {
                bail!(
                    "give at least two --officer names: grants and crypto-shred need two officers"
                );
            }
            let dealt = obhut_trustee::SealedKeystore::init(&dir, shares, threshold)
                .with_context(|| format!("cannot create a keystore in {}", dir.display()))?;
            let trustee = obhut_trustee::Trustee::open(&dir)
                .with_context(|| format!("cannot open the new trustee in {}", dir.display()))?;
            let mut tokens = Vec::new();
            for name in &officers {
                let token = format!("obt_{}", obhut_core::random_token(43));
                let cred = PrincipalCredential::from_token(&token)
                    .map_err(|e| anyhow!("cannot derive an officer's keys: {e}"))?;
                trustee
                    .bootstrap_principal(
                        name,
                        obhut_trustee_client::Role::Officer,
                        None,
                        &obhut_crypto::principal::bearer_hash(cred.bearer()),
                        &cred.public_key(),
                    )
                    .with_context(|| format!("cannot enrol officer {name}"))?;
                tokens.push((name.clone(), token));
            }
            println!(
                "created sealed keystore {} ({threshold} of {shares} shares unseal it)",
                dir.display()
            );
            println!("give each share to a different officer; they are shown only now:");
            for (i, s) in dealt.iter().enumerate() {
                println!("share {}: {s}", i + 1);
            }
            println!("officer tokens (OBHUT_TOKEN for each officer), shown only now:");
            for (name, token) in &tokens {
                println!("officer {name}: {token}");
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
                let status: SealStatus = client
                    .post("/v1/trustee/unseal", Some(&UnsealRequest { share }))
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
                let status: SealStatus = client.post("/v1/trustee/seal", None::<&Value>).await?;
                print_seal(&status);
                Ok(())
            })
        }
        TrusteeCommand::Status => {
            let client = Client::new(args)?;
            runtime()?.block_on(async {
                let status: SealStatus = client.get("/v1/trustee/status").await?;
                print_seal(&status);
                Ok(())
            })
        }
    }
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
                .map_or_else(|| "?".into(), |ms| crate::gov_cli::when_ms(Some(ms)));
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
