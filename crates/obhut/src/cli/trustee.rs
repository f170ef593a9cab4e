//! `obhut trustee`: creating the sealed keystore and the trustee API's certificates, unsealing,
//! sealing, the seal state, and master-key rotation. (`obhut trustee --config` runs the
//! trustee process: `trustee_serve.rs`.)

use crate::AdminArgs;
use crate::cli::shared::{Client, bar, runtime, when_ms};
use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use obhut_admin::wire::UnsealRequest;
use obhut_crypto::principal::PrincipalCredential;
use obhut_trustee_client::{Action, SealStatus, SealedShare, UnsealKey};
use serde_json::Value;
use std::io::BufRead;
use std::path::Path;

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
    Unseal {
        share: Option<String>,
        /// The trustee's unseal key (hex, or a file holding it), as `obhut trustee init`
        /// printed it: the share is encrypted to it here, and refused if the trustee names
        /// another. Without it, the key the admin API names is used.
        #[arg(long, env = "OBHUT_UNSEAL_KEY")]
        unseal_key: Option<String>,
    },
    /// Show whether the trustee is sealed, and whether officers have disconnected the
    /// provider.
    Status,
    /// Disconnect the provider (officers; quorum of two): the trustee releases no key and
    /// serves no request, and every gateway drops its keys, until officers reconnect.
    Disconnect {
        /// Why (recorded in the log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// End a disconnect (officers; quorum of two): service resumes.
    Reconnect,
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

/// One line on the disconnect state (`/v1/trustee/disconnect`).
fn print_disconnect(d: &Value) {
    let names = |v: &Value| {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    if d["state"] == "disconnected" {
        println!(
            "disconnected: since {} by {} (log entry {}){}; no key is released and no request served",
            when_ms(d["since_ms"].as_i64()),
            names(&d["approvers"]),
            d["log_index"],
            d["reason"]
                .as_str()
                .map(|r| format!(", reason {r:?}"))
                .unwrap_or_default(),
        );
        let pending = names(&d["reconnect_approvals"]);
        if !pending.is_empty() {
            println!("reconnect approved by: {pending}");
        }
    } else {
        // Connected: nothing to add (the seal state is the whole story) unless a disconnect
        // is pending.
        let pending = names(&d["disconnect_approvals"]);
        if !pending.is_empty() {
            println!("connected; disconnect approved by: {pending}");
        }
    }
}

/// What a disconnect or reconnect approval did: the quorum's progress, or the new state.
fn print_vote(v: &Value) {
    match v["progress"].as_str() {
        Some(p) => println!("{} {p}", v["mode"].as_str().unwrap_or("change")),
        None => println!(
            "{} (log entry {})",
            v["state"].as_str().unwrap_or("changed"),
            v["log_index"]
        ),
    }
}

pub fn run(args: &AdminArgs, cmd: TrusteeCommand) -> Result<()> {
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
            let unseal_key = runtime()?
                .block_on(obhut_trustee_client::TrusteeClient::unseal_key(&trustee))
                .context("cannot read the new trustee's unseal key")?;
            println!(
                "unseal key (officers pin it: obhut trustee unseal --unseal-key {}):",
                unseal_key.public_key
            );
            println!("unseal-key: {}", unseal_key.public_key);
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
        TrusteeCommand::Unseal { share, unseal_key } => {
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
            let share = zeroize::Zeroizing::new(share);
            let pinned = unseal_key.as_deref().map(pinned_unseal_key).transpose()?;
            let client = Client::new(args)?;
            runtime()?.block_on(async {
                let key: UnsealKey = client.get("/v1/trustee/unseal-key").await?;
                if let Some(pinned) = &pinned
                    && !key.public_key.eq_ignore_ascii_case(pinned)
                {
                    bail!(
                        "the admin API names {} as the trustee's unseal key, not the pinned {pinned}: the share was not sent",
                        key.public_key
                    );
                }
                let public = hex_simd::decode_to_vec(key.public_key.as_bytes())
                    .map_err(|_| anyhow!("the trustee's unseal key is not hex"))?;
                let (enc, ciphertext) =
                    obhut_crypto::unseal::seal(&public, &key.identity, &key.epoch, share.as_bytes())
                        .map_err(|e| anyhow!("cannot encrypt the share to the trustee: {e}"))?;
                let b64 = |b: &[u8]| base64_simd::STANDARD.encode_to_string(b);
                let request = UnsealRequest {
                    share: None,
                    sealed: Some(SealedShare {
                        epoch: key.epoch.clone(),
                        enc: b64(&enc),
                        ciphertext: b64(&ciphertext),
                    }),
                };
                let status: SealStatus = client.post("/v1/trustee/unseal", Some(&request)).await?;
                print_seal(&status);
                Ok(())
            })
        }
        TrusteeCommand::RotateMaster {
            shares,
            threshold,
            dir,
        } => rotate_master(&dir, shares, threshold),
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
                let d: Value = client.get("/v1/trustee/disconnect").await?;
                print_disconnect(&d);
                Ok(())
            })
        }
        TrusteeCommand::Disconnect { reason } => {
            let client = Client::new(args)?;
            runtime()?.block_on(async {
                let v = client.act(Action::Disconnect { reason }).await?;
                print_vote(&v);
                Ok(())
            })
        }
        TrusteeCommand::Reconnect => {
            let client = Client::new(args)?;
            runtime()?.block_on(async {
                let v = client.act(Action::Reconnect {}).await?;
                print_vote(&v);
                Ok(())
            })
        }
    }
}

/// A pinned unseal key: hex, or a file holding it.
fn pinned_unseal_key(given: &str) -> Result<String> {
    let text = if given.len() == 64 && given.bytes().all(|b| b.is_ascii_hexdigit()) {
        given.to_owned()
    } else {
        std::fs::read_to_string(given)
            .with_context(|| {
                format!("--unseal-key {given}: neither 64 hex digits nor a readable file")
            })?
            .trim()
            .to_owned()
    };
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("--unseal-key: the trustee's unseal key is 64 hex digits");
    }
    Ok(text.to_ascii_lowercase())
}

/// Replaces the master key of a stopped trustee's keystore, reading the current shares from
/// standard input (one per line), and prints the new shares.
fn rotate_master(dir: &Path, shares: u8, threshold: u8) -> Result<()> {
    eprintln!("give the current unseal shares, one per line, then end the input (Ctrl-D):");
    let current: Vec<String> = std::io::stdin()
        .lock()
        .lines()
        .map_while(std::result::Result::ok)
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    if current.is_empty() {
        bail!("no current shares given on standard input");
    }
    let progress = bar(0);
    progress.set_message("rewrapping tenant keys");
    let dealt = obhut_trustee::SealedKeystore::rotate_master(
        dir,
        &current,
        shares,
        threshold,
        |done, total| {
            progress.set_length(total as u64);
            progress.set_position(done as u64);
        },
    )
    .with_context(|| format!("cannot rotate the master key of {}", dir.display()))?;
    progress.finish_and_clear();
    println!(
        "master key of {} replaced ({threshold} of {shares} new shares unseal it; the old shares are void)",
        dir.display()
    );
    println!("give each share to a different officer; they are shown only now:");
    for (i, s) in dealt.iter().enumerate() {
        println!("share {}: {s}", i + 1);
    }
    let dev_file = dir.join("dev-unseal-shares");
    if dev_file.exists() {
        let lines: Vec<&str> = dealt
            .iter()
            .take(usize::from(threshold))
            .map(String::as_str)
            .collect();
        crate::serve::write_secret_file(&dev_file, &format!("{}\n", lines.join("\n")))?;
        println!(
            "development share file {} rewritten with {threshold} new shares",
            dev_file.display()
        );
    }
    Ok(())
}
