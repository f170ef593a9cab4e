//! `obhut access`: grants, scoped and time-bound access to a tenant's data, requested by
//! operators and approved by a quorum; approvals sign exactly the grant as shown.

use crate::AdminArgs;
use crate::cli::shared::{Client, duration_text, parse_duration_ms, runtime, when_ms};
use anyhow::Result;
use clap::Subcommand;
use obhut_trustee_client::Action;
use obhut_trustee_client::governance::{GrantScopeFields, grant_scope_digest};
use obhut_trustee_client::views::{GrantCredentialsView, GrantView};

#[derive(Subcommand)]
pub enum AccessCommand {
    /// Ask for access to a tenant's data (operators).
    Request {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        bucket: String,
        /// Only keys under this prefix, which must end in `/` (a folder): `case-42/` covers
        /// `case-42/x`, never `case-420/x`. Without it, the whole bucket.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Take `--prefix` as a plain string prefix even without a trailing `/` (`case-42`
        /// then also covers `case-420/...` and `case-42.txt`).
        #[arg(long)]
        raw_prefix: bool,
        /// Comma-separated: read, list, write; and versions, to widen those to noncurrent
        /// versions of a versioned bucket (without it a grant covers current objects only).
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
    Deny {
        id: String,
        /// Why (recorded with the denial in the transparency log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// End a grant at once (officers or the tenant's admin).
    Revoke { id: String },
    /// Temporary S3 credentials for an approved grant (its requester), as environment lines.
    Credentials { id: String },
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

/// A grant's prefix is a plain string prefix: `case-42` would also cover `case-420/`. Unless
/// asked for with `--raw-prefix`, a prefix must end in `/`.
fn check_prefix(prefix: &str, raw: bool) -> Result<()> {
    if raw || prefix.is_empty() || prefix.ends_with('/') {
        return Ok(());
    }
    anyhow::bail!(
        "--prefix {prefix:?} does not end in '/', so it would also cover keys such as {:?}; use --prefix {:?}, or --raw-prefix to mean the plain string prefix",
        format!("{prefix}0/..."),
        format!("{prefix}/")
    )
}

pub fn run(args: &AdminArgs, cmd: AccessCommand) -> Result<()> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            AccessCommand::Request {
                tenant,
                bucket,
                prefix,
                raw_prefix,
                ops,
                duration,
                reason,
            } => {
                check_prefix(&prefix, raw_prefix)?;
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
            AccessCommand::Deny { id, reason } => {
                print_grant(
                    &client
                        .act_as(Action::DenyGrant {
                            id,
                            reason: reason.filter(|r| !r.trim().is_empty()),
                        })
                        .await?,
                );
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

#[cfg(test)]
mod tests {
    use super::check_prefix;

    #[test]
    fn a_prefix_without_a_trailing_slash_needs_raw_prefix() {
        assert!(check_prefix("case-42", false).is_err());
        assert!(check_prefix("case-42", true).is_ok());
        assert!(check_prefix("case-42/", false).is_ok());
        assert!(check_prefix("", false).is_ok());
    }
}
