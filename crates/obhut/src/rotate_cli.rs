//! Key rotation commands: bucket keys (through the admin API, as a job with progress) and the
//! master key (offline, on the keystore directory, with the current shares).

use crate::admin_cli::Client;
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

/// The progress bar of the CLI's long jobs (rotation, repair).
pub(crate) fn bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

/// Rotates a bucket's key and waits for the rewrap job, showing its progress.
pub async fn rotate_bucket_key(client: &Client, tenant: &str, bucket: &str) -> Result<()> {
    let started = client
        .call(
            reqwest::Method::POST,
            &format!("/v1/tenants/{tenant}/buckets/{bucket}/rotate-key"),
            None,
        )
        .await?;
    let job = started["job"]
        .as_str()
        .context("the admin API did not return a job id")?
        .to_owned();
    let progress = bar(0);
    progress.set_message(format!("rewrapping object keys of {bucket}"));
    loop {
        let j: Value = client
            .call(reqwest::Method::GET, &format!("/v1/jobs/{job}"), None)
            .await?;
        progress.set_length(j["total"].as_u64().unwrap_or(0));
        progress.set_position(j["done"].as_u64().unwrap_or(0));
        match j["state"].as_str() {
            Some("done") => {
                progress.finish_and_clear();
                let r = &j["result"];
                println!(
                    "bucket {bucket}: key version {} in use; {} object keys rewrapped, {} replaced meanwhile",
                    r["version"], r["rewrapped"], r["skipped"]
                );
                return Ok(());
            }
            Some("failed") => {
                progress.abandon();
                bail!(
                    "rotation of {bucket} failed: {}",
                    j["error"].as_str().unwrap_or("unknown error")
                );
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Replaces the master key of a stopped trustee's keystore, reading the current shares from
/// standard input (one per line), and prints the new shares.
pub fn rotate_master(dir: &Path, shares: u8, threshold: u8) -> Result<()> {
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
