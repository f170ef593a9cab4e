//! `obhut repair`: restoring every object's replicas to its policy, followed with a progress
//! bar, or only its state.

use crate::AdminArgs;
use crate::cli::shared::{Client, bar, runtime};
use anyhow::{Result, bail};
use serde_json::Value;
use std::time::Duration;

fn print_status(st: &Value) {
    println!(
        "repair {} ({}): {} of {} objects, {} upload parts, {} replicas copied, {} removed, {} failed; scrubber: {} replicas checked, {} bad, {} repaired",
        st["state"].as_str().unwrap_or("?"),
        st["reason"].as_str().unwrap_or("-"),
        st["objects_done"],
        st["objects_total"],
        st["parts_done"],
        st["replicas_copied"],
        st["replicas_removed"],
        st["objects_failed"].as_u64().unwrap_or(0) + st["parts_failed"].as_u64().unwrap_or(0),
        st["scrub_checked"],
        st["scrub_bad"],
        st["scrub_repaired"],
    );
    for e in st["errors"].as_array().into_iter().flatten() {
        println!("  error: {}", e.as_str().unwrap_or("?"));
    }
}

/// `obhut repair`: starts a pass (or joins the running one) and follows it with a progress
/// bar; `--status` prints where it is.
pub fn run(args: &AdminArgs, status_only: bool) -> Result<()> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        if status_only {
            let st = client
                .call(reqwest::Method::GET, "/v1/repair", None)
                .await?;
            print_status(&st);
            return Ok(());
        }
        client
            .call(reqwest::Method::POST, "/v1/repair", None)
            .await?;
        let progress = bar(0);
        progress.set_message("restoring replicas");
        loop {
            let st = client
                .call(reqwest::Method::GET, "/v1/repair", None)
                .await?;
            progress.set_length(st["objects_total"].as_u64().unwrap_or(0));
            progress.set_position(st["objects_done"].as_u64().unwrap_or(0));
            if st["state"] != "running" {
                progress.finish_and_clear();
                print_status(&st);
                let failed = st["objects_failed"].as_u64().unwrap_or(0)
                    + st["parts_failed"].as_u64().unwrap_or(0);
                if st["state"] == "failed" || failed > 0 {
                    bail!("repair did not restore every object (see the errors above)");
                }
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
}
