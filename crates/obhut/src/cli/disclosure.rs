//! `obhut disclosure`: requests from authorities, recorded, decided by a quorum of officers and
//! shown to their tenant once any delay has passed.

use crate::AdminArgs;
use crate::cli::shared::{Client, parse_duration_ms, runtime, when_ms};
use anyhow::Result;
use clap::Subcommand;
use obhut_trustee_client::Action;
use obhut_trustee_client::views::DisclosureView;

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
    Deny {
        id: String,
        /// Why (recorded with the denial in the transparency log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Delay the tenant's view of a request (officers); the delay is logged.
    Delay {
        id: String,
        /// e.g. 30d, 0s.
        #[arg(long)]
        delay: String,
    },
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

pub fn run(args: &AdminArgs, cmd: DisclosureCommand) -> Result<()> {
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
            DisclosureCommand::Deny { id, reason } => {
                print_disclosure(
                    &client
                        .act_as(Action::DenyDisclosure {
                            id,
                            reason: reason.filter(|r| !r.trim().is_empty()),
                        })
                        .await?,
                );
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
