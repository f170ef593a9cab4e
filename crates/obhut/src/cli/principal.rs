//! `obhut principal`: enrolling, listing and revoking principals (officers). A new principal's
//! token is made on this machine and shown once; only its bearer hash and public key travel.

use crate::AdminArgs;
use crate::cli::shared::{Client, now_ms, parse_duration_ms, runtime, when_ms};
use anyhow::{Result, anyhow};
use clap::Subcommand;
use obhut_crypto::principal::PrincipalCredential;
use obhut_trustee_client::{Action, PrincipalInfo, Role};

#[derive(Subcommand)]
pub enum PrincipalCommand {
    /// Enrol a principal (officers). Its token is made here and printed once. An officer is
    /// enrolled by two officers: the second confirms the first's enrolment with the
    /// `--public-key`, `--bearer-hash` (and `--expires-ms`) the first one's command printed.
    Create {
        name: String,
        /// officer, operator, auditor or tenant-admin.
        #[arg(long)]
        role: String,
        /// The tenant of a tenant admin.
        #[arg(long)]
        tenant: Option<String>,
        /// The token stops working after this long (e.g. 90d, 12h).
        #[arg(long, conflicts_with = "expires_ms")]
        expires: Option<String>,
        /// Confirm an enrolment begun by another officer: its public key (no token is made).
        #[arg(long, requires = "bearer_hash")]
        public_key: Option<String>,
        /// Confirm an enrolment begun by another officer: its bearer hash.
        #[arg(long, requires = "public_key")]
        bearer_hash: Option<String>,
        /// Confirm an enrolment begun by another officer: its expiry (ms since the epoch).
        #[arg(long, requires = "public_key")]
        expires_ms: Option<i64>,
    },
    /// List principals (officers).
    List,
    /// Revoke a principal's token at once (officers).
    Revoke { name: String },
}

pub fn run(args: &AdminArgs, cmd: PrincipalCommand) -> Result<()> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            PrincipalCommand::Create {
                name,
                role,
                tenant,
                expires,
                public_key,
                bearer_hash,
                expires_ms,
            } => {
                let role = Role::parse(&role).ok_or_else(|| {
                    anyhow!("--role is officer, operator, auditor or tenant-admin, not {role:?}")
                })?;
                // Confirming another officer's enrolment: the same fields, no token.
                if let (Some(public_key), Some(bearer_hash)) = (public_key, bearer_hash) {
                    let v = client
                        .act(Action::CreatePrincipal {
                            name: name.clone(),
                            role,
                            tenant,
                            bearer_hash,
                            public_key,
                            expires_ms,
                        })
                        .await?;
                    match v["progress"].as_str() {
                        Some(p) => println!("principal {name} ({}) {p}", role.as_str()),
                        None => println!("created principal {name} ({})", role.as_str()),
                    }
                    return Ok(());
                }
                let expires_ms = expires
                    .as_deref()
                    .map(parse_duration_ms)
                    .transpose()?
                    .map(|d| now_ms().saturating_add(d));
                let token = format!("obt_{}", obhut_core::random_token(43));
                let cred = PrincipalCredential::from_token(&token)
                    .map_err(|e| anyhow!("cannot derive the new principal's keys: {e}"))?;
                let bearer_hash = obhut_crypto::principal::bearer_hash(cred.bearer());
                let public_key =
                    hex_simd::encode_to_string(cred.public_key(), hex_simd::AsciiCase::Lower);
                let v = client
                    .act(Action::CreatePrincipal {
                        name: name.clone(),
                        role,
                        tenant: tenant.clone(),
                        bearer_hash: bearer_hash.clone(),
                        public_key: public_key.clone(),
                        expires_ms,
                    })
                    .await?;
                if let Some(progress) = v["progress"].as_str() {
                    let mut confirm = format!(
                        "obhut principal create {name} --role {} --public-key {public_key} --bearer-hash {bearer_hash}",
                        role.as_str()
                    );
                    if let Some(t) = &tenant {
                        confirm.push_str(&format!(" --tenant {t}"));
                    }
                    if let Some(e) = expires_ms {
                        confirm.push_str(&format!(" --expires-ms {e}"));
                    }
                    eprintln!(
                        "principal {name} ({}) {progress}; another officer confirms with: {confirm}",
                        role.as_str()
                    );
                    eprintln!("its token works once confirmed; give it this token, shown only now:");
                } else {
                    eprintln!(
                        "created principal {name} ({}); give it this token, shown only now:",
                        role.as_str()
                    );
                }
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
