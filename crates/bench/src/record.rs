//! The JSON record every measuring subcommand writes, and `report` reads back.
//!
//! One record per run: what was run (`benchmark`, `target`, `op`, `tag`, `params`), on what
//! (`machine`), and the figures (`results`). Throughput is in MiB/s (2^20 bytes per second).

use crate::machine::{Machine, ServerMemory};
use crate::stats::LatencySummary;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const THROUGHPUT_UNIT: &str = "MiB/s (2^20 bytes per second)";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRecord {
    pub tool: String,
    /// `s3`, `raw-write`, `raw-read` or `aead`.
    pub benchmark: String,
    /// What was driven: `obhut`, `http-no-storage`, `raw-write`, `raw-read`, `aes-256-gcm`, or
    /// whatever `--target` said.
    pub target: String,
    /// `put`, `get`, `mixed`, `list`, `write`, `read`, `seal`.
    pub op: String,
    /// A free label telling runs of the same kind apart (`matrix`, `rss`, `ttfb-idle`).
    pub tag: String,
    pub started_at: String,
    pub params: Params,
    pub machine: Machine,
    pub results: Results,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_memory: Option<ServerMemory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aead: Option<AeadResults>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Params {
    pub size_bytes: u64,
    pub size: String,
    pub objects: u64,
    pub concurrency: usize,
    pub duration_s: Option<f64>,
    pub max_ops: Option<u64>,
    pub verify_sample: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_signing: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dirs: Vec<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Results {
    pub elapsed_s: f64,
    /// Successful operations.
    pub ops: u64,
    pub errors: u64,
    pub first_errors: Vec<String>,
    /// Whether the run stopped early because of too many errors.
    pub aborted: bool,
    pub bytes: u64,
    pub ops_per_s: f64,
    pub throughput_mib_per_s: f64,
    pub throughput_unit: String,
    pub latency: Option<LatencySummary>,
    /// Time to first byte of the body (reads only).
    pub ttfb: Option<LatencySummary>,
    /// Reads whose content was checked against the expected bytes (all passed; a mismatch is an
    /// error).
    pub verified: u64,
    /// Per operation kind, when a run mixes kinds.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_op: BTreeMap<String, Results>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AeadResults {
    pub algorithm: String,
    pub buffer_bytes: u64,
    pub seal_mib_per_s_one_core: f64,
    pub seal_mib_per_s_all_threads: f64,
    pub threads: usize,
}

impl RunRecord {
    /// Writes the record to `path` (pretty JSON), or to stdout without a path.
    pub fn emit(&self, path: Option<&Path>) -> Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        match path {
            Some(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("cannot create {}", parent.display()))?;
                }
                std::fs::write(path, format!("{text}\n"))
                    .with_context(|| format!("cannot write {}", path.display()))
            }
            None => {
                println!("{text}");
                Ok(())
            }
        }
    }

    /// One line for the terminal.
    pub fn summary_line(&self) -> String {
        let r = &self.results;
        let mut line = format!(
            "{} {} {} x{}: {} ops in {:.1} s, {:.1} ops/s, {:.1} MiB/s",
            self.target,
            self.op,
            self.params.size,
            self.params.concurrency,
            r.ops,
            r.elapsed_s,
            r.ops_per_s,
            r.throughput_mib_per_s
        );
        if let Some(l) = &r.latency {
            line.push_str(&format!(
                ", p50 {:.2} ms p99 {:.2} ms p99.9 {:.2} ms",
                l.p50_ms, l.p99_ms, l.p999_ms
            ));
        }
        if let Some(t) = &r.ttfb {
            line.push_str(&format!(", ttfb p50 {:.2} ms", t.p50_ms));
        }
        if r.verified > 0 {
            line.push_str(&format!(", {} verified", r.verified));
        }
        line.push_str(&format!(", {} errors", r.errors));
        if let Some(m) = &self.server_memory {
            line.push_str(&format!(
                ", server peak RSS {:.0} MiB",
                m.vm_hwm_mib.max(m.rss_peak_sampled_mib)
            ));
        }
        line
    }
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
