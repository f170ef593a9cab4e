//! `obhut residency report`: a residency report checked against its digest, summarised per
//! bucket, and written with the trustee's signed attestation.

use crate::AdminArgs;
use crate::cli::shared::{Client, join, runtime};
use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;
use std::path::PathBuf;

/// `obhut residency report`: prints a summary per bucket, writes the report (with its digest
/// and the trustee's signed attestation) to `--out` if given.
pub fn run(
    args: &AdminArgs,
    tenant: Option<String>,
    verify: bool,
    out: Option<PathBuf>,
) -> Result<()> {
    let client = Client::new(args)?;
    runtime()?.block_on(async {
        let mut path = format!("/v1/residency?verify={verify}");
        if let Some(t) = &tenant {
            path.push_str(&format!("&tenant={t}"));
        }
        let answer = client.call(reqwest::Method::GET, &path, None).await?;
        let text = answer["report"]
            .as_str()
            .ok_or_else(|| anyhow!("the admin API returned no report"))?;
        let digest = obhut_crypto::principal::sha256_hex(text.as_bytes());
        if Some(digest.as_str()) != answer["sha256"].as_str() {
            bail!("the report does not match its digest");
        }
        let report: Value = serde_json::from_str(text).context("the report is not JSON")?;
        let mut outside_total = 0;
        for t in report["tenants"].as_array().into_iter().flatten() {
            println!(
                "tenant {} (jurisdictions {})",
                t["tenant"].as_str().unwrap_or("?"),
                join(&t["jurisdictions"])
            );
            for b in t["buckets"].as_array().into_iter().flatten() {
                outside_total += b["outside_policy"].as_u64().unwrap_or(0);
                let sets: Vec<String> = b["objects_by_sites"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect();
                print!(
                    "  bucket {}: {} objects ({}); under-replicated {}; outside policy {}",
                    b["bucket"].as_str().unwrap_or("?"),
                    b["objects"],
                    sets.join("; "),
                    b["under_replicated"],
                    b["outside_policy"],
                );
                if let Some(v) = b.get("verified") {
                    print!(
                        "; verified {} replicas: {} missing, {} corrupt, {} unreachable",
                        v["replicas_checked"], v["missing"], v["corrupt"], v["unreachable"]
                    );
                }
                println!();
            }
        }
        let att = &answer["attestation"];
        println!(
            "sha256 {digest}; attested by the trustee in log entry {}",
            att["log_index"]
        );
        if let Some(out) = out {
            std::fs::write(&out, serde_json::to_string_pretty(&answer)?)
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "report, digest and signed attestation written to {}",
                out.display()
            );
        }
        if outside_total > 0 {
            bail!("{outside_total} object(s) have replicas outside their policy");
        }
        Ok(())
    })
}
