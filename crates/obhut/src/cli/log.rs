//! `obhut log`: the transparency log's checkpoint, its verification (tiles, entries,
//! consistency with an earlier checkpoint) and a tenant's entries, each with its inclusion proof
//! checked and rendered from its type.
//!
//! It trusts nothing the admin API says about the log without checking it against a signed
//! checkpoint.

use crate::AdminArgs;
use crate::cli::shared::{Client, when_ms};
use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use obhut_trustee_client::ParsedEntry;
use obhut_trustee_client::log_entry::LogEntriesPage;
use serde_json::Value;
use std::path::PathBuf;

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
    /// List a tenant's entries (or all, for officers and auditors), each with its inclusion
    /// proof checked, page by page from `--from` to the end of the log.
    Show {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        key: Option<String>,
        /// The first index to show.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Show at most this many entries.
        #[arg(long)]
        limit: Option<u64>,
        /// Log entries read per request (1 to 10,000).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        page_size: u64,
    },
    /// Append a drill's JSON summary to the log (officers), e.g. the `drill-disconnect.json`
    /// that `scripts/two-dc drill disconnect` writes: a flat object of figures.
    RecordDrill {
        /// The drill's name (`disconnect`, `dc-loss`).
        #[arg(long)]
        drill: String,
        /// The summary file (JSON object).
        file: PathBuf,
    },
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

pub fn run(args: &AdminArgs, cmd: LogCommand) -> Result<()> {
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
            LogCommand::RecordDrill { drill, file } => {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let Ok(Value::Object(summary)) = serde_json::from_str::<Value>(&text) else {
                    bail!("{}: not a JSON object", file.display());
                };
                let v = client
                    .act(obhut_trustee_client::Action::RecordDrill {
                        drill: drill.clone(),
                        summary,
                    })
                    .await?;
                println!("drill {drill} recorded: log entry {}", v["log_index"]);
            }
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
            LogCommand::Show {
                tenant,
                key,
                from,
                limit,
                page_size,
            } => {
                let (note, vkey) = checkpoint_and_key(&client, key).await?;
                let cp = obhut_tlog::verify_checkpoint(&note, &vkey)
                    .map_err(|e| anyhow!("checkpoint: {e}"))?;
                let limit = limit.unwrap_or(u64::MAX);
                let (mut shown, mut unreadable) = (0u64, 0u64);
                let mut next = Some(from);
                // One page at a time (the admin API's pages), each printed once checked, up to
                // the checkpoint verified above.
                while let Some(at) = next.filter(|at| *at < cp.size && shown < limit) {
                    let path = match &tenant {
                        Some(t) => {
                            format!("/v1/log/entries?tenant={t}&from={at}&limit={page_size}")
                        }
                        None => format!("/v1/log/entries?from={at}&limit={page_size}"),
                    };
                    let listed: LogEntriesPage = client.get(&path).await?;
                    if listed.next.is_some_and(|n| n <= at) {
                        bail!("the log's next page starts at {at} again; the server is not paging");
                    }
                    next = listed.next;
                    let handle2 = handle.clone();
                    let room = limit - shown;
                    let lines = tokio::task::block_in_place(|| -> Result<Vec<(String, bool)>> {
                        let mut src = HttpTiles {
                            client: &client,
                            handle: handle2,
                            auth: false,
                        };
                        let mut out = Vec::new();
                        for item in listed.entries.iter().filter(|e| e.index < cp.size) {
                            if out.len() as u64 >= room {
                                break;
                            }
                            if let Some(why) = &item.unreadable {
                                out.push((format!("{:>6} UNREADABLE: {why}", item.index), false));
                                continue;
                            }
                            obhut_tlog::verify_inclusion(
                                &mut src,
                                &cp,
                                item.index,
                                item.entry.as_bytes(),
                            )
                            .map_err(|e| {
                                anyhow!("entry {} is not in the log as shown: {e}", item.index)
                            })?;
                            out.push((
                                entry_line(item.index, &ParsedEntry::parse(item.entry.as_bytes())),
                                true,
                            ));
                        }
                        Ok(out)
                    })?;
                    for (line, readable) in &lines {
                        println!("{line}");
                        unreadable += u64::from(!readable);
                    }
                    shown += lines.len() as u64;
                }
                if unreadable > 0 {
                    bail!(
                        "{unreadable} of {shown} entries could not be read from the trustee's log (marked UNREADABLE above); the others' inclusion proofs were checked"
                    );
                }
                println!("{shown} entries, each inclusion proof checked");
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
