//! `obhut residency report`: a residency report checked against its digest, summarised per
//! bucket, and written with the trustee's signed attestation.

use crate::AdminArgs;
use crate::cli::shared::{Client, runtime};
use anyhow::{Context, Result, bail};
use obhut_admin::wire::ResidencyAnswer;
use obhut_maintenance::ResidencyReport;
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
        let answer: ResidencyAnswer = client.get(&path).await?;
        let text = &answer.report;
        let digest = obhut_crypto::principal::sha256_hex(text.as_bytes());
        if digest != answer.sha256 {
            bail!("the report does not match its digest");
        }
        let report: ResidencyReport =
            serde_json::from_str(text).context("the report is not what obhut expects")?;
        let mut outside_total = 0;
        let mut locked_missing = 0;
        for t in &report.tenants {
            println!(
                "tenant {} (jurisdictions {})",
                t.tenant,
                t.jurisdictions.join(",")
            );
            for b in &t.buckets {
                outside_total += b.outside_policy;
                let sets: Vec<String> = b
                    .objects_by_sites
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect();
                print!(
                    "  bucket {}: {} objects ({}); under-replicated {}; outside policy {}",
                    b.bucket,
                    b.objects,
                    sets.join("; "),
                    b.under_replicated,
                    b.outside_policy,
                );
                if let Some(v) = &b.verified {
                    print!(
                        "; verified {} replicas: {} missing, {} corrupt, {} unreachable",
                        v.replicas_checked, v.missing, v.corrupt, v.unreachable
                    );
                }
                println!();
            }
            if let Some(l) = &t.locked_versions {
                locked_missing += l.missing;
                println!(
                    "  locked versions (the trustee's list): {} checked, {} missing from the catalog",
                    l.checked, l.missing
                );
            }
        }
        println!(
            "sha256 {digest}; attested by the trustee in log entry {}",
            answer.attestation.log_index
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
        if locked_missing > 0 {
            // Not necessarily an edit: a write whose commit failed after the trustee sealed
            // its lock leaves a listed version that never existed (docs/governance.md).
            bail!(
                "{locked_missing} locked version(s) are missing from the catalog: removed under their lock, or sealed for a write whose commit failed (see the trustee's log for their writes)"
            );
        }
        Ok(())
    })
}
