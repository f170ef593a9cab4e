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

pub fn run(args: &AdminArgs, cmd: PrincipalCommand) -> Result<()> {
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
