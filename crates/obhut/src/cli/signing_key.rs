//! `obhut signing-key`: keys made elsewhere (the web console's WebCrypto key, which never
//! leaves its browser) that may sign the caller's approvals and denials of grants and
//! disclosure requests. Enrolling and revoking one is a statement signed here with the
//! caller's own key; the trustee records both in the transparency log.
//!
//! It handles public keys only; the browser's private key never reaches this command.

use crate::AdminArgs;
use crate::cli::shared::{Client, parse_duration_ms, runtime, when_ms};
use anyhow::{Result, bail};
use clap::Subcommand;
use obhut_trustee_client::Action;
use serde_json::Value;

#[derive(Subcommand)]
pub enum SigningKeyCommand {
    /// Enrol a key (the public key the console's officer or tenant page shows, 64 hex digits):
    /// from now until it expires it signs your approvals and denials, and nothing else.
    Enrol {
        /// The Ed25519 public key, hex.
        #[arg(long)]
        public_key: String,
        /// How long it may sign (e.g. 30d, 12h; at most 90d).
        #[arg(long, default_value = "30d")]
        expires: String,
        /// Where the key lives, for your own list (e.g. "Chromium on laptop").
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Your enrolled keys and their state.
    List,
    /// Revoke one of your enrolled keys: it signs nothing from now on, and approvals it
    /// signed stop counting.
    Revoke {
        #[arg(long)]
        public_key: String,
    },
}

/// A public key as typed: hex digits, whitespace and `:` allowed between them.
fn public_key_hex(text: &str) -> Result<String> {
    let hex: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("--public-key must be 64 hex digits (a 32-byte Ed25519 public key)");
    }
    Ok(hex)
}

fn print_key(k: &Value) {
    println!(
        "{} {}: {} expires {}",
        k["public_key"].as_str().unwrap_or("?"),
        k["state"].as_str().unwrap_or("?"),
        match k["label"].as_str() {
            Some(l) if !l.is_empty() => format!("{l:?}"),
            _ => "(no label)".to_owned(),
        },
        when_ms(k["expires_ms"].as_i64()),
    );
}

pub fn run(args: &AdminArgs, cmd: SigningKeyCommand) -> Result<()> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        match cmd {
            SigningKeyCommand::Enrol {
                public_key,
                expires,
                label,
            } => {
                let public_key = public_key_hex(&public_key)?;
                let expires_ms = crate::cli::shared::now_ms() + parse_duration_ms(&expires)?;
                let v = client
                    .act(Action::EnrolSigningKey {
                        public_key,
                        expires_ms,
                        label,
                    })
                    .await?;
                print_key(&v);
            }
            SigningKeyCommand::List => {
                let list: Vec<Value> = client.get("/v1/signing-keys").await?;
                if list.is_empty() {
                    println!("no enrolled keys");
                }
                for k in &list {
                    print_key(k);
                }
            }
            SigningKeyCommand::Revoke { public_key } => {
                let public_key = public_key_hex(&public_key)?;
                let v = client.act(Action::RevokeSigningKey { public_key }).await?;
                println!(
                    "{} {}",
                    v["public_key"].as_str().unwrap_or("?"),
                    v["state"].as_str().unwrap_or("?")
                );
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::public_key_hex;

    #[test]
    fn public_keys_are_read_as_64_hex_digits() {
        let k = "AB".repeat(32);
        assert_eq!(public_key_hex(&k).unwrap(), "ab".repeat(32));
        assert_eq!(
            public_key_hex(&format!("{} {}", &k[..32], &k[32..])).unwrap(),
            "ab".repeat(32)
        );
        assert!(public_key_hex("abcd").is_err());
        assert!(public_key_hex(&"zz".repeat(32)).is_err());
    }
}
