//! `obhut token`: what a token stands for. Works offline; the token is never sent.

use crate::AdminArgs;
use anyhow::{Result, anyhow};
use clap::Subcommand;
use obhut_crypto::principal::PrincipalCredential;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Print the bearer derived from the token, for `Authorization: Bearer` with curl.
    Bearer,
}

pub fn run(args: &AdminArgs, cmd: TokenCommand) -> Result<()> {
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
