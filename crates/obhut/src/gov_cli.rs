//! Governance commands: principals, grants (`access`), disclosure requests and the
//! transparency log. Every change is a statement signed on this machine with the key derived
//! from the caller's token; the token itself never leaves it.

use crate::AdminArgs;
use crate::admin_cli::{Client, now_ms, runtime};
use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use obhut_crypto::principal::PrincipalCredential;
use obhut_trustee_client::governance::{GrantScopeFields, grant_scope_digest};
use obhut_trustee_client::log_entry::LogEntriesPage;
use obhut_trustee_client::views::{DisclosureView, GrantCredentialsView, GrantView};
use obhut_trustee_client::{Action, ParsedEntry, PrincipalInfo, Role};
use serde_json::Value;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum PrincipalCommand {
    /// Enrol a principal (officers). Its token is made here and printed once.
    Create {
        name: String,
        /// officer, operator, auditor or tenant-admin.
        #[arg(long)]
        role: String,
        /// The tenant of a tenant admin.
        #[arg(long)]
        tenant: Option<String>,
        /// The token stops working after this long (e.g. 90d, 12h).
        #[arg(long)]
        expires: Option<String>,
    },
    /// List principals (officers).
    List,
    /// Revoke a principal's token at once (officers).
    Revoke { name: String },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Print the bearer derived from the token, for `Authorization: Bearer` with curl.
    Bearer,
}

#[derive(Subcommand)]
pub enum AccessCommand {
    /// Ask for access to a tenant's data (operators).
    Request {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        bucket: String,
        /// Only keys starting with this prefix.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Comma-separated: read, list, write.
        #[arg(long, value_delimiter = ',')]
        ops: Vec<String>,
        /// How long the grant lasts once approved (e.g. 2h, 30m, 1d).
        #[arg(long)]
        duration: String,
        /// Why the access is needed (support case, ...).
        #[arg(long)]
        reason: String,
    },
    /// List the grants you may see.
    List,
    /// Show one grant.
    Show { id: String },
    /// Approve a grant (officers; the tenant's admin where its policy requires it).
    Approve { id: String },
    /// Deny a pending grant.
    Deny { id: String },
    /// End a grant at once (officers or the tenant's admin).
    Revoke { id: String },
    /// Temporary S3 credentials for an approved grant (its requester), as environment lines.
    Credentials { id: String },
}

#[derive(Subcommand)]
pub enum DisclosureCommand {
    /// Record a disclosure request from an authority (officers).
    Request {
        #[arg(long)]
        tenant: String,
        /// The requesting authority.
        #[arg(long)]
        authority: String,
        /// The authority's jurisdiction (ISO 3166-1 alpha-2).
        #[arg(long)]
        jurisdiction: String,
        #[arg(long)]
        legal_basis: String,
        /// What is asked for.
        #[arg(long)]
        scope: String,
        /// Keep it from the tenant this long (e.g. 30d); an officer can change it later.
        #[arg(long, default_value = "0s")]
        delay: String,
    },
    /// List disclosure requests (tenant admins see theirs once their delay has passed).
    List,
    /// Approve (officers; quorum of two).
    Approve { id: String },
    /// Deny (officers).
    Deny { id: String },
    /// Delay the tenant's view of a request (officers); the delay is logged.
    Delay {
        id: String,
        /// e.g. 30d, 0s.
        #[arg(long)]
        delay: String,
    },
}

#[derive(Subcommand)]
pub enum LogCommand {
    /// Print the latest signed checkpoint (save it to verify consistency later).
    Checkpoint,
    /// Verify the log: checkpoint signature, every hash tile against the root, every entry
    /// (officers and auditors), and consistency with an earlier checkpoint.
    Verify {
        /// A checkpoint saved earlier: the log must have only grown since.
        #[arg(long)]
        since: Option<PathBuf>,
        /// The verifier key to trust (`name+id+key`); by default the one the server names,
        /// which is only as good as the first time you saw it: pin it.
        #[arg(long)]
        key: Option<String>,
        /// Write the verified checkpoint here.
        #[arg(long)]
        save: Option<PathBuf>,
    },
    /// List a tenant's entries, each with its inclusion proof checked.
    Show {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        key: Option<String>,
    },
}

/// `90d`, `12h`, `30m`, `45s` as milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<i64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| anyhow!("{s:?} is not a duration (like 30m, 2h, 7d)"))?;
    let unit_ms = match unit {
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => bail!("{s:?} is not a duration (like 30m, 2h, 7d)"),
    };
    n.checked_mul(unit_ms)
        .ok_or_else(|| anyhow!("{s:?} is too long"))
}

fn duration_text(ms: i64) -> String {
    match ms {
        ms if ms % 86_400_000 == 0 => format!("{}d", ms / 86_400_000),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms => format!("{}s", ms / 1000),
    }
}

/// Milliseconds since the epoch as RFC 3339 (to the second), `-` for none.
pub(crate) fn when_ms(ms: Option<i64>) -> String {
    ms.and_then(|ms| time::OffsetDateTime::from_unix_timestamp(ms / 1000).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".into())
}

pub fn principal(args: &AdminArgs, cmd: PrincipalCommand) -> Result<()> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            PrincipalCommand::Create {
                name,
                role,
                tenant,
                expires,
            } => {
                let role = Role::parse(&role).ok_or_else(|| {
                    anyhow!("--role is officer, operator, auditor or tenant-admin, not {role:?}")
                })?;
                let expires_ms = expires
                    .as_deref()
                    .map(parse_duration_ms)
                    .transpose()?
                    .map(|d| now_ms().saturating_add(d));
                let token = format!("obt_{}", obhut_core::random_token(43));
                let cred = PrincipalCredential::from_token(&token)
                    .map_err(|e| anyhow!("cannot derive the new principal's keys: {e}"))?;
                client
                    .act(Action::CreatePrincipal {
                        name: name.clone(),
                        role,
                        tenant,
                        bearer_hash: obhut_crypto::principal::bearer_hash(cred.bearer()),
                        public_key: hex_simd::encode_to_string(
                            cred.public_key(),
                            hex_simd::AsciiCase::Lower,
                        ),
                        expires_ms,
                    })
                    .await?;
                eprintln!(
                    "created principal {name} ({}); give it this token, shown only now:",
                    role.as_str()
                );
                println!("OBHUT_TOKEN={token}");
            }
            PrincipalCommand::List => {
                let list: Vec<PrincipalInfo> = client.get("/v1/principals").await?;
                println!(
                    "{:<20} {:<13} {:<12} {:<8} EXPIRES",
                    "NAME", "ROLE", "TENANT", "REVOKED"
                );
                for p in &list {
                    println!(
                        "{:<20} {:<13} {:<12} {:<8} {}",
                        p.name,
                        p.role.as_str(),
                        p.tenant.as_deref().unwrap_or("-"),
                        p.revoked,
                        when_ms(p.expires_ms)
                    );
                }
            }
            PrincipalCommand::Revoke { name } => {
                client
                    .act(Action::RevokePrincipal { name: name.clone() })
                    .await?;
                println!("principal {name} revoked");
            }
        }
        Ok(())
    })
}

pub fn token(args: &AdminArgs, cmd: TokenCommand) -> Result<()> {
    match cmd {
        TokenCommand::Bearer => {
            let token = args
                .token
                .clone()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| anyhow!("no token: pass --token or set OBHUT_TOKEN"))?;
            let cred = PrincipalCredential::from_token(&token)
                .map_err(|e| anyhow!("cannot derive keys from the token: {e}"))?;
            println!("{}", cred.bearer());
            Ok(())
        }
    }
}

fn print_grant(g: &GrantView) {
    let approvals: Vec<&str> = g.approvals.iter().map(|a| a.principal.as_str()).collect();
    println!(
        "grant {} {}: tenant {} bucket {} prefix {:?} ops {} for {} requested by {}; approvals: {}; expires {}",
        g.id,
        g.state,
        g.tenant,
        g.bucket,
        g.prefix,
        g.ops.join(","),
        duration_text(g.duration_ms),
        g.requester,
        if approvals.is_empty() {
            "none".to_owned()
        } else {
            approvals.join(",")
        },
        when_ms(g.expires_ms),
    );
    if let Some(p) = &g.progress {
        println!("{p}");
    }
}

pub fn access(args: &AdminArgs, cmd: AccessCommand) -> Result<()> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            AccessCommand::Request {
                tenant,
                bucket,
                prefix,
                ops,
                duration,
                reason,
            } => {
                let g = client
                    .act_as(Action::RequestGrant {
                        tenant,
                        bucket,
                        prefix,
                        ops,
                        duration_ms: parse_duration_ms(&duration)?,
                        reason,
                    })
                    .await?;
                print_grant(&g);
            }
            AccessCommand::List => {
                let list: Vec<GrantView> = client.get("/v1/grants").await?;
                for g in &list {
                    print_grant(g);
                }
            }
            AccessCommand::Show { id } => {
                print_grant(&client.get(&format!("/v1/grants/{id}")).await?);
            }
            AccessCommand::Approve { id } => {
                // Sign exactly the grant as shown: the approval does not cover anything else.
                let g: GrantView = client.get(&format!("/v1/grants/{id}")).await?;
                let scope = grant_scope_digest(&GrantScopeFields {
                    id: &id,
                    tenant: &g.tenant,
                    bucket: &g.bucket,
                    prefix: &g.prefix,
                    ops: &g.ops,
                    duration_ms: g.duration_ms,
                    requester: &g.requester,
                    reason: &g.reason,
                });
                print_grant(&client.act_as(Action::ApproveGrant { id, scope }).await?);
            }
            AccessCommand::Deny { id } => {
                print_grant(&client.act_as(Action::DenyGrant { id }).await?);
            }
            AccessCommand::Revoke { id } => {
                print_grant(&client.act_as(Action::RevokeGrant { id }).await?);
            }
            AccessCommand::Credentials { id } => {
                let c: GrantCredentialsView =
                    client.act_as(Action::GrantCredentials { id }).await?;
                println!("AWS_ACCESS_KEY_ID={}", c.access_key_id);
                println!("AWS_SECRET_ACCESS_KEY={}", c.secret_access_key);
                println!("AWS_SESSION_TOKEN={}", c.session_token);
                eprintln!(
                    "valid until {} for bucket {} prefix {:?} ({})",
                    when_ms(c.expires_ms),
                    c.bucket,
                    c.prefix,
                    c.ops.join(",")
                );
            }
        }
        Ok(())
    })
}

fn print_disclosure(d: &DisclosureView) {
    println!(
        "disclosure {} {}: tenant {}, {} ({}), legal basis {:?}, scope {:?}; visible to the tenant from {}",
        d.id,
        d.state,
        d.tenant,
        d.authority,
        d.jurisdiction,
        d.legal_basis,
        d.scope,
        when_ms(Some(d.visible_after_ms)),
    );
    if let Some(r) = &d.reason {
        println!("refused: {r}");
    }
    if let Some(p) = &d.progress {
        println!("{p}");
    }
}

pub fn disclosure(args: &AdminArgs, cmd: DisclosureCommand) -> Result<()> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            DisclosureCommand::Request {
                tenant,
                authority,
                jurisdiction,
                legal_basis,
                scope,
                delay,
            } => print_disclosure(
                &client
                    .act_as(Action::RequestDisclosure {
                        tenant,
                        authority,
                        jurisdiction,
                        legal_basis,
                        scope,
                        delay_ms: parse_duration_ms(&delay)?,
                    })
                    .await?,
            ),
            DisclosureCommand::List => {
                let list: Vec<DisclosureView> = client.get("/v1/disclosures").await?;
                for d in &list {
                    print_disclosure(d);
                }
            }
            DisclosureCommand::Approve { id } => {
                print_disclosure(&client.act_as(Action::ApproveDisclosure { id }).await?);
            }
            DisclosureCommand::Deny { id } => {
                print_disclosure(&client.act_as(Action::DenyDisclosure { id }).await?);
            }
            DisclosureCommand::Delay { id, delay } => print_disclosure(
                &client
                    .act_as(Action::SetDisclosureDelay {
                        id,
                        delay_ms: parse_duration_ms(&delay)?,
                    })
                    .await?,
            ),
        }
        Ok(())
    })
}

/// Tiles fetched over HTTP from `<admin-url>/log/`, from a blocking verifier thread.
struct HttpTiles<'a> {
    client: &'a Client,
    handle: tokio::runtime::Handle,
    /// Entry bundles need an officer's or auditor's bearer.
    auth: bool,
}

impl obhut_tlog::TileSource for HttpTiles<'_> {
    fn get(&mut self, path: &str) -> Result<Option<Vec<u8>>, obhut_tlog::TlogError> {
        let auth = self.auth && path.starts_with("tile/entries/");
        self.handle
            .block_on(self.client.get_bytes(&format!("/log/{path}"), auth))
            .map_err(|e| obhut_tlog::TlogError::fetch(path, format!("{e:#}")))
    }
}

async fn fetch_text(client: &Client, path: &str) -> Result<String> {
    let bytes = client
        .get_bytes(path, false)
        .await?
        .ok_or_else(|| anyhow!("the admin API has no {path}"))?;
    String::from_utf8(bytes).with_context(|| format!("{path} is not text"))
}

/// The log's current checkpoint and the key to verify it with: the one given, or else the one
/// the log publishes (which proves only that the log is consistent with itself).
async fn checkpoint_and_key(client: &Client, key: Option<String>) -> Result<(String, String)> {
    let vkey = match key {
        Some(k) => k,
        None => fetch_text(client, "/log/key").await?.trim().to_owned(),
    };
    let note = fetch_text(client, "/log/checkpoint").await?;
    Ok((note, vkey))
}

pub fn log(args: &AdminArgs, cmd: LogCommand) -> Result<()> {
    // The checkpoint and the hash tiles are public: a token is needed only for entries.
    let client = Client::new_optional(args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let handle = rt.handle().clone();
    rt.block_on(async {
        match cmd {
            LogCommand::Checkpoint => {
                print!("{}", fetch_text(&client, "/log/checkpoint").await?);
            }
            LogCommand::Verify { since, key, save } => {
                let (note, vkey) = checkpoint_and_key(&client, key).await?;
                let old = since
                    .as_ref()
                    .map(|p| {
                        let text = std::fs::read_to_string(p)
                            .with_context(|| format!("cannot read {}", p.display()))?;
                        obhut_tlog::verify_checkpoint(&text, &vkey).map_err(|e| {
                            anyhow!("{}: not a checkpoint signed by this log: {e}", p.display())
                        })
                    })
                    .transpose()?;
                let entries = client.has_token() && client.can_read_entries().await;
                let handle2 = handle.clone();
                let summary = tokio::task::block_in_place(move || -> Result<String> {
                    let cp = obhut_tlog::verify_checkpoint(&note, &vkey)
                        .map_err(|e| anyhow!("checkpoint: {e}"))?;
                    let mut src = HttpTiles {
                        client: &client,
                        handle: handle2,
                        auth: entries,
                    };
                    let tree = obhut_tlog::verify_tree(&mut src, &cp)
                        .map_err(|e| anyhow!("log verification failed: {e}"))?;
                    let mut said = format!(
                        "checkpoint signed by {} verified; {} entries; every hash tile matches the root",
                        cp.origin, cp.size
                    );
                    if entries {
                        tree.verify_entries(&mut src)
                            .map_err(|e| anyhow!("log verification failed: {e}"))?;
                        said.push_str("; every entry matches its leaf hash");
                    }
                    if let Some(old) = &old {
                        obhut_tlog::verify_consistency(&mut src, old, &cp)
                            .map_err(|e| anyhow!("log verification failed: {e}"))?;
                        said.push_str(&format!(
                            "; consistent with the earlier checkpoint of size {}",
                            old.size
                        ));
                    }
                    if let Some(path) = &save {
                        std::fs::write(path, &note)
                            .with_context(|| format!("cannot write {}", path.display()))?;
                    }
                    Ok(said)
                })?;
                println!("ok: {summary}");
            }
            LogCommand::Show { tenant, key } => {
                let (note, vkey) = checkpoint_and_key(&client, key).await?;
                let path = match &tenant {
                    Some(t) => format!("/v1/log/entries?tenant={t}"),
                    None => "/v1/log/entries".to_owned(),
                };
                let listed: LogEntriesPage = client.get(&path).await?;
                let handle2 = handle.clone();
                let lines = tokio::task::block_in_place(move || -> Result<Vec<String>> {
                    let cp = obhut_tlog::verify_checkpoint(&note, &vkey)
                        .map_err(|e| anyhow!("checkpoint: {e}"))?;
                    let mut src = HttpTiles {
                        client: &client,
                        handle: handle2,
                        auth: false,
                    };
                    let mut out = Vec::new();
                    for item in &listed.entries {
                        if item.index >= cp.size {
                            continue;
                        }
                        obhut_tlog::verify_inclusion(&mut src, &cp, item.index, item.entry.as_bytes())
                            .map_err(|e| {
                                anyhow!("entry {} is not in the log as shown: {e}", item.index)
                            })?;
                        out.push(entry_line(item.index, &ParsedEntry::parse(item.entry.as_bytes())));
                    }
                    Ok(out)
                })?;
                for l in &lines {
                    println!("{l}");
                }
                println!("{} entries, each inclusion proof checked", lines.len());
            }
        }
        Ok(())
    })
}

/// One entry as a line: index, time, type, then for a known event its tenant, the principal
/// who acted and what it is about; for an entry of a type this version does not know, its
/// fields as they are.
fn entry_line(index: u64, entry: &ParsedEntry) -> String {
    let mut line = format!("{index:>6} {} {:<20}", when_ms(entry.at_ms()), entry.kind());
    match entry {
        ParsedEntry::Known(e) => {
            line.push_str(&format!(
                " tenant={} by={}",
                e.event.tenant().unwrap_or("-"),
                e.event.actor().unwrap_or("-")
            ));
            for (name, value) in e.event.details() {
                line.push_str(&format!(" {name}={value}"));
            }
        }
        ParsedEntry::Unknown(u) => {
            for (name, value) in &u.fields {
                match value {
                    Value::String(s) => line.push_str(&format!(" {name}={s}")),
                    other => line.push_str(&format!(" {name}={other}")),
                }
            }
        }
    }
    line
}
