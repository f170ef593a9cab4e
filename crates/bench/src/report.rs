//! `report`: turns a directory of run records into `benchmarks.md` and a bar chart in SVG.
//!
//! The page keeps its hand-written criterion section ("## 1. …", read from the existing file and
//! copied verbatim) and regenerates everything else. The chart is plain SVG written here: one bar
//! per comparison (obhut's figure divided by its baseline's), with the target ratio marked.

use crate::record::RunRecord;
use crate::size::format_size_spaced;
use anyhow::{Context, Result, bail};
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

pub const CHART_FILE: &str = "benchmarks-e2e.svg";
const PAGE_FILE: &str = "benchmarks.md";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Metric {
    MibPerS,
    OpsPerS,
}

impl Metric {
    fn unit(self) -> &'static str {
        match self {
            Metric::MibPerS => "MiB/s",
            Metric::OpsPerS => "ops/s",
        }
    }

    fn of(self, r: &RunRecord) -> f64 {
        match self {
            Metric::MibPerS => r.results.throughput_mib_per_s,
            Metric::OpsPerS => r.results.ops_per_s,
        }
    }
}

/// obhut's `op` at `size` against `baseline`'s `baseline_op` at the same size.
struct Comparison {
    op: &'static str,
    size: u64,
    baseline: &'static str,
    baseline_op: &'static str,
    baseline_name: &'static str,
    metric: Metric,
    target: Option<f64>,
}

const KIB4: u64 = 4 << 10;
/// The memory target: peak resident below this while this many clients upload this much each.
const RSS_TARGET_MIB: f64 = 256.0;
const RSS_TARGET_CLIENTS: usize = 8;
const RSS_TARGET_SIZE: u64 = 3 << 29;
/// The time-to-first-byte target for a 64 MiB GET on an idle server.
const TTFB_TARGET_MS: f64 = 10.0;
const MIB1: u64 = 1 << 20;
const MIB64: u64 = 64 << 20;

/// The issue's targets first, then the other pairs the matrix measures.
const COMPARISONS: [Comparison; 12] = [
    Comparison {
        op: "get",
        size: MIB64,
        baseline: "raw-read",
        baseline_op: "read",
        baseline_name: "raw read",
        metric: Metric::MibPerS,
        target: Some(0.7),
    },
    Comparison {
        op: "put",
        size: MIB64,
        baseline: "raw-write",
        baseline_op: "write",
        baseline_name: "raw two-copy durable write",
        metric: Metric::MibPerS,
        target: Some(0.6),
    },
    Comparison {
        op: "put",
        size: KIB4,
        baseline: "raw-write",
        baseline_op: "write",
        baseline_name: "raw two-copy create+fsync",
        metric: Metric::OpsPerS,
        target: Some(0.5),
    },
    Comparison {
        op: "get",
        size: KIB4,
        baseline: "http-no-storage",
        baseline_op: "get",
        baseline_name: "HTTP, no storage",
        metric: Metric::OpsPerS,
        target: Some(0.5),
    },
    Comparison {
        op: "get",
        size: MIB1,
        baseline: "raw-read",
        baseline_op: "read",
        baseline_name: "raw read",
        metric: Metric::MibPerS,
        target: None,
    },
    Comparison {
        op: "put",
        size: MIB1,
        baseline: "raw-write",
        baseline_op: "write",
        baseline_name: "raw two-copy durable write",
        metric: Metric::MibPerS,
        target: None,
    },
    Comparison {
        op: "put",
        size: KIB4,
        baseline: "http-no-storage",
        baseline_op: "put",
        baseline_name: "HTTP, no storage",
        metric: Metric::OpsPerS,
        target: None,
    },
    Comparison {
        op: "get",
        size: KIB4,
        baseline: "raw-read",
        baseline_op: "read",
        baseline_name: "raw read",
        metric: Metric::OpsPerS,
        target: None,
    },
    Comparison {
        op: "get",
        size: MIB64,
        baseline: "http-no-storage",
        baseline_op: "get",
        baseline_name: "HTTP, no storage",
        metric: Metric::MibPerS,
        target: None,
    },
    Comparison {
        op: "put",
        size: MIB64,
        baseline: "http-no-storage",
        baseline_op: "put",
        baseline_name: "HTTP, no storage",
        metric: Metric::MibPerS,
        target: None,
    },
    Comparison {
        op: "get",
        size: MIB1,
        baseline: "http-no-storage",
        baseline_op: "get",
        baseline_name: "HTTP, no storage",
        metric: Metric::MibPerS,
        target: None,
    },
    Comparison {
        op: "put",
        size: MIB1,
        baseline: "http-no-storage",
        baseline_op: "put",
        baseline_name: "HTTP, no storage",
        metric: Metric::MibPerS,
        target: None,
    },
];

impl Comparison {
    fn title(&self) -> String {
        format!(
            "{} {}",
            format_size_spaced(self.size),
            self.op.to_ascii_uppercase()
        )
    }
}

/// A row of the comparison table, with figures where both runs exist.
struct Row<'a> {
    cmp: &'a Comparison,
    obhut: Option<f64>,
    base: Option<f64>,
}

impl Row<'_> {
    fn ratio(&self) -> Option<f64> {
        match (self.obhut, self.base) {
            (Some(o), Some(b)) if b > 0.0 => Some(o / b),
            _ => None,
        }
    }

    fn met(&self) -> Option<bool> {
        Some(self.ratio()? >= self.cmp.target?)
    }
}

fn is_matrix(r: &RunRecord) -> bool {
    r.tag.is_empty() || r.tag == "matrix"
}

fn find<'a>(records: &'a [RunRecord], target: &str, op: &str, size: u64) -> Option<&'a RunRecord> {
    records
        .iter()
        .filter(|r| {
            is_matrix(r)
                && r.target == target
                && r.op == op
                && r.params.size_bytes == size
                && r.results.ops > 0
        })
        .max_by(|a, b| a.started_at.cmp(&b.started_at))
}

fn rows(records: &[RunRecord]) -> Vec<Row<'static>> {
    COMPARISONS
        .iter()
        .map(|cmp| Row {
            cmp,
            obhut: find(records, "obhut", cmp.op, cmp.size).map(|r| cmp.metric.of(r)),
            base: find(records, cmp.baseline, cmp.baseline_op, cmp.size).map(|r| cmp.metric.of(r)),
        })
        .collect()
}

pub fn load_records(dir: &Path) -> Result<Vec<RunRecord>> {
    let mut records = Vec::new();
    let entries = fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    for path in paths {
        let text =
            fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        match serde_json::from_str::<RunRecord>(&text) {
            Ok(r) => records.push(r),
            Err(e) => eprintln!("report: skipping {}: {e}", path.display()),
        }
    }
    if records.is_empty() {
        bail!("no run records (*.json) in {}", dir.display());
    }
    Ok(records)
}

/// The hand-written section to keep: from the line `## 1.` to the next level-2 heading.
fn preserved_section(existing: &str) -> Option<String> {
    let lines: Vec<&str> = existing.lines().collect();
    let start = lines.iter().position(|l| l.starts_with("## 1."))?;
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.starts_with("## "))
        .map_or(lines.len(), |i| start + 1 + i);
    let mut text = lines[start..end].join("\n");
    while text.ends_with('\n') {
        text.pop();
    }
    Some(text)
}

fn num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), num)
}

pub fn write(input: &Path, out: &Path, note: Option<&str>) -> Result<()> {
    let records = load_records(input)?;
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let page = out.join(PAGE_FILE);
    let existing = fs::read_to_string(&page).unwrap_or_default();
    let rows = rows(&records);
    fs::write(out.join(CHART_FILE), chart(&rows))
        .with_context(|| format!("cannot write {}", out.join(CHART_FILE).display()))?;
    let text = markdown(&records, &rows, preserved_section(&existing), note);
    fs::write(&page, text).with_context(|| format!("cannot write {}", page.display()))?;
    eprintln!(
        "report: wrote {} and {}",
        page.display(),
        out.join(CHART_FILE).display()
    );
    Ok(())
}

fn markdown(
    records: &[RunRecord],
    rows: &[Row<'_>],
    section1: Option<String>,
    note: Option<&str>,
) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# obhut benchmarks\n\n\
         Measured figures, how they were taken, and the decisions they support. Speed is measured here,\n\
         never asserted in tests.\n\n\
         Section 1 is the cost of the blob encryption format on one core (criterion,\n\
         `crates/crypto/benches/segments.rs`) and the choice of segment size it supports; it is written\n\
         by hand. Section 2 is end-to-end figures of `obhut serve`'s S3 endpoint against baselines on the\n\
         same machine; `scripts/bench` measures them with `obhut-bench` and writes section 2 (and this\n\
         page around section 1) with `obhut-bench report`, so rerun the script rather than edit it.\n\n\
         Where the server's time goes, what was removed from its way, and what limits each figure that\n\
         misses its target is in docs/performance.md, with the profiles that show it.\n"
    );
    match section1 {
        Some(s) => {
            let _ = writeln!(md, "{s}\n");
        }
        None => {
            let _ = writeln!(
                md,
                "## 1. Segment encryption, per core\n\nNot measured on this page yet: see `cargo bench -p obhut-crypto --bench segments`.\n"
            );
        }
    }
    md.push_str(&end_to_end(records, rows, note));
    md
}

fn end_to_end(records: &[RunRecord], rows: &[Row<'_>], note: Option<&str>) -> String {
    let mut md = String::from("## 2. End to end (S3 endpoint)\n\n");
    let first = records
        .iter()
        .map(|r| r.started_at.as_str())
        .min()
        .unwrap_or("");
    let day = first.get(..10).unwrap_or(first);
    let _ = writeln!(
        md,
        "Measured {day} by `scripts/bench`; generated by `obhut-bench report`."
    );
    if let Some(note) = note.filter(|n| !n.is_empty()) {
        let _ = writeln!(md, "{note}");
    }
    md.push('\n');

    // Machine
    if let Some(m) = records.first().map(|r| &r.machine) {
        md.push_str("### Machine\n\n| | |\n|---|---|\n");
        let _ = writeln!(md, "| CPUs | {} |", m.cores);
        let _ = writeln!(md, "| CPU | `{}` |", m.cpu_model);
        if let Some(mem) = m.memory_total_mib {
            let _ = writeln!(md, "| memory | {:.1} GiB |", mem as f64 / 1024.0);
        }
        if let Some(k) = &m.kernel {
            let _ = writeln!(md, "| kernel | {k} |");
        }
        let disk = records
            .iter()
            .flat_map(|r| r.machine.disks.iter())
            .find(|d| d.device.is_some());
        if let Some(d) = disk {
            let kind = match d.rotational {
                Some(true) => ", the kernel reports it rotational",
                Some(false) => ", the kernel reports it non-rotational",
                None => "",
            };
            let model = d
                .model
                .as_deref()
                .map(|m| format!(", model `{m}`"))
                .unwrap_or_default();
            let _ = writeln!(
                md,
                "| disk | `{}` ({}, mounted on `{}`{kind}{model}); the obhut data directory (both sites) and the raw baseline directories are on it |",
                d.device.as_deref().unwrap_or("?"),
                d.filesystem.as_deref().unwrap_or("?"),
                d.mount_point.as_deref().unwrap_or("?"),
            );
        }
        md.push('\n');
        md.push_str(
            "Client and server run on the same machine and share its cores, so every figure includes the\n\
             load generator's own CPU use (producing and checking bodies, signing, HTTP); the baselines pay\n\
             the same costs, which keeps the ratios fair. Figures from one run on a shared virtual machine\n\
             vary by 10–20 % from run to run.\n\n",
        );
    }

    // Targets
    md.push_str("### Against the targets\n\n");
    let _ = writeln!(
        md,
        "![obhut's figure divided by its baseline's, with the target ratios]({CHART_FILE})\n"
    );
    md.push_str("| workload | obhut | baseline | baseline figure | ratio | target | |\n|---|---|---|---|---|---|---|\n");
    for row in rows {
        let unit = row.cmp.metric.unit();
        let verdict = match row.met() {
            Some(true) => "met",
            Some(false) => "**not met**",
            None => "",
        };
        let _ = writeln!(
            md,
            "| {} ({unit}) | {} | {} | {} | {} | {} | {verdict} |",
            row.cmp.title(),
            opt(row.obhut),
            row.cmp.baseline_name,
            opt(row.base),
            row.ratio()
                .map_or_else(|| "—".to_owned(), |r| format!("{r:.2}")),
            row.cmp
                .target
                .map_or_else(|| "—".to_owned(), |t| format!("≥ {t}")),
        );
    }
    md.push('\n');

    // All runs
    md.push_str(
        "### All runs\n\n\
         | target | op | size | workers | time s | ops | ops/s | MiB/s | p50 ms | p99 ms | p99.9 ms | TTFB p50 ms | errors |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut sorted: Vec<&RunRecord> = records.iter().filter(|r| r.benchmark != "aead").collect();
    sorted.sort_by(|a, b| {
        (a.params.size_bytes, &a.op, &a.target, &a.tag).cmp(&(
            b.params.size_bytes,
            &b.op,
            &b.target,
            &b.tag,
        ))
    });
    for r in &sorted {
        let res = &r.results;
        let l = res.latency.as_ref();
        let target = if is_matrix(r) {
            r.target.clone()
        } else {
            format!("{} ({})", r.target, r.tag)
        };
        let _ = writeln!(
            md,
            "| {target} | {} | {} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.op,
            format_size_spaced(r.params.size_bytes),
            r.params.concurrency,
            res.elapsed_s,
            res.ops,
            num(res.ops_per_s),
            num(res.throughput_mib_per_s),
            opt(l.map(|l| l.p50_ms)),
            opt(l.map(|l| l.p99_ms)),
            opt(l.map(|l| l.p999_ms)),
            opt(res.ttfb.as_ref().map(|t| t.p50_ms)),
            res.errors,
        );
    }
    md.push('\n');
    let failing: Vec<&&RunRecord> = sorted.iter().filter(|r| r.results.errors > 0).collect();
    if !failing.is_empty() {
        md.push_str("Errors (first of each run):\n\n");
        for r in failing {
            let first = r.results.first_errors.first().map_or("?", String::as_str);
            let _ = writeln!(
                md,
                "- {} {} {}: {} errors, first: `{}`",
                r.target,
                r.op,
                r.params.size,
                r.results.errors,
                first.replace('`', "'")
            );
        }
        md.push('\n');
    }

    // Memory under large uploads
    md.push_str("### Server memory under concurrent large uploads\n\n");
    match records.iter().find(|r| r.tag == "rss") {
        Some(r) => {
            let mem = r.server_memory.as_ref();
            let _ = writeln!(
                md,
                "{} clients each PUT one {} object at the same time ({} in total) to a running `obhut serve`.\n",
                r.params.concurrency,
                format_size_spaced(r.params.size_bytes),
                format_size_spaced(
                    r.params
                        .size_bytes
                        .saturating_mul(r.params.concurrency as u64)
                ),
            );
            match mem {
                Some(m) => {
                    let _ = writeln!(
                        md,
                        "| | MiB |\n|---|---|\n| resident before | {:.0} |\n| peak resident (VmHWM{}) | **{:.0}** |\n| peak resident, sampled every 50 ms | {:.0} |\n| resident after | {:.0} |\n",
                        m.rss_start_mib,
                        if m.hwm_reset_at_start {
                            ", reset at the start"
                        } else {
                            " since the server started"
                        },
                        m.vm_hwm_mib,
                        m.rss_peak_sampled_mib,
                        m.rss_end_mib
                    );
                }
                None => md.push_str("(the server's memory was not watched)\n\n"),
            }
            let full_size = r.params.concurrency >= RSS_TARGET_CLIENTS
                && r.params.size_bytes >= RSS_TARGET_SIZE;
            let verdict = match mem {
                Some(_) if !full_size => "not decided by this run (its uploads are smaller than \
                     the target's 8 x 1.5 GiB)"
                    .to_owned(),
                Some(m) if m.vm_hwm_mib.max(m.rss_peak_sampled_mib) < RSS_TARGET_MIB => {
                    "**met**".to_owned()
                }
                Some(_) => "**not met**".to_owned(),
                None => "not decided (memory not watched)".to_owned(),
            };
            let _ = writeln!(
                md,
                "Target: peak resident under {RSS_TARGET_MIB:.0} MiB while 8 clients upload 1.5 GiB each: {verdict}.\n"
            );
            let _ = writeln!(
                md,
                "The uploads took {:.1} s ({} MiB/s together, {} errors).\n",
                r.results.elapsed_s,
                num(r.results.throughput_mib_per_s),
                r.results.errors
            );
        }
        None => md.push_str("Not measured in this run.\n\n"),
    }

    // TTFB
    md.push_str("### Time to first byte of a 64 MiB GET on an idle server\n\n");
    match records
        .iter()
        .find(|r| r.tag == "ttfb-idle")
        .and_then(|r| r.results.ttfb.as_ref().map(|t| (r, t)))
    {
        Some((r, t)) => {
            let _ = writeln!(
                md,
                "{} GETs of {} objects, one at a time: time from sending the request to the first body byte\n\
                 p50 **{:.2} ms**, p99 {:.2} ms, max {:.2} ms (whole GET p50 {:.1} ms).\n",
                t.count,
                format_size_spaced(r.params.size_bytes),
                t.p50_ms,
                t.p99_ms,
                t.max_ms,
                r.results.latency.as_ref().map_or(0.0, |l| l.p50_ms),
            );
            let verdict = if t.p50_ms < TTFB_TARGET_MS {
                "**met**"
            } else {
                "**not met**"
            };
            let _ = writeln!(
                md,
                "Target: under {TTFB_TARGET_MS:.0} ms on an idle machine (judged at the median): {verdict}.\n"
            );
        }
        None => md.push_str("Not measured in this run.\n\n"),
    }

    // AES
    md.push_str("### AES-256-GCM per core (the encryption ceiling)\n\n");
    match records.iter().find_map(|r| r.aead.as_ref()) {
        Some(a) => {
            let _ = writeln!(
                md,
                "Sealing {} buffers with aws-lc-rs: **{} MiB/s on one core**, {} MiB/s on {} threads\n\
                 together. obhut seals every byte it stores once and opens every byte it reads once (opening\n\
                 costs about the same, section 1).\n",
                format_size_spaced(a.buffer_bytes),
                num(a.seal_mib_per_s_one_core),
                num(a.seal_mib_per_s_all_threads),
                a.threads
            );
        }
        None => md.push_str("Not measured in this run.\n\n"),
    }

    md.push_str(WHAT_IS_MEASURED);
    md
}

const WHAT_IS_MEASURED: &str = "### What is measured\n\n\
- **obhut**: `obhut serve` (two local sites on the same disk, embedded catalog, in-process trustee),\n  \
  driven over HTTP/1.1 by `obhut-bench s3`: a closed loop of N workers, each with one request in\n  \
  flight; SigV4 in the `Authorization` header with `UNSIGNED-PAYLOAD`; path-style requests.\n  \
  Object bodies are generated from the key (SplitMix64), streamed in 256 KiB pieces, never held\n  \
  whole; 10 % of GETs check every byte, all GETs check the length. PUTs with a duration cycle over\n  \
  the key set, so later ones overwrite. GETs read objects written before the timed part.\n\
- **raw two-copy durable write** (`obhut-bench raw-write`): the same bodies written into two\n  \
  directories on the same disk as obhut's sites, in parallel; per directory: create a temporary\n  \
  file, write, fsync, rename, fsync the directory. This is what a store that acknowledges only\n  \
  durable two-copy writes cannot beat on this disk. The 4 KiB figure is the create+fsync rate.\n\
- **raw read** (`obhut-bench raw-read`): the same files read back with 256 KiB reads; like obhut's\n  \
  reads right after the writes, from the page cache when the files are in it.\n\
- **HTTP, no storage** (`obhut-bench http-serve`, driven by `obhut-bench http`): a hyper HTTP/1.1\n  \
  server that discards PUT bodies and produces GET bodies on the fly. The client signs every\n  \
  request exactly as for obhut, but the server verifies nothing, so this baseline includes SigV4\n  \
  signing on the client and no signature check, no storage, no encryption. For large objects it\n  \
  is the most any server can deliver to this client over loopback HTTP on this machine.\n\
- **ratio** = obhut's figure ÷ the baseline's, same size, same number of workers, same client.\n\
- MiB/s is 2^20 bytes of object data per second; latencies are per request, from sending it to\n  \
  the last byte of the response (percentiles by nearest rank over every request).\n\n\
### How to rerun\n\n\
```\n\
scripts/bench            # the full matrix, about 9 minutes on 2 cores (needs 25 GiB free)\n\
scripts/bench --quick    # short runs and smaller large uploads, under 4 minutes once built\n\
scripts/profile get-4KiB # perf profile and flamegraph of the server under one workload\n\
scripts/bench --help     # durations, the size and number of the large uploads, directories\n\
scripts/bench --catalog-only   # the catalog at scale (section 1): LIST of 100,000 keys on both\n\
                               # catalogs, versioned against unversioned, 100,000 versions\n\
```\n\n\
The script builds the release binaries, starts `obhut serve` on a fresh data directory, keeps each\n\
run's JSON record in `target/bench/results/`, and rewrites this page's section 2 and\n\
`docs/benchmarks-e2e.svg`. One run by hand, for example:\n\n\
```\n\
set -a; . obhut-data/demo.env; set +a\n\
obhut-bench s3 --op get --size 64MiB --objects 8 --concurrency 4 --duration 20\n\
```\n";

fn svg_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The chart: one horizontal bar per comparison.
fn chart(rows: &[Row<'_>]) -> String {
    const LEFT: f64 = 300.0;
    const PLOT: f64 = 380.0;
    const ROW: f64 = 30.0;
    const TOP: f64 = 50.0;
    let max = rows
        .iter()
        .flat_map(|r| [r.ratio(), r.cmp.target])
        .flatten()
        .fold(1.0f64, f64::max);
    let scale_max = (max * 4.0).ceil() / 4.0 + 0.25;
    let x = |v: f64| LEFT + PLOT * (v / scale_max).clamp(0.0, 1.0);
    let height = TOP + ROW * rows.len() as f64 + 60.0;
    let width = LEFT + PLOT + 60.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"sans-serif\" font-size=\"13\">"
    );
    let _ = writeln!(s, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(
        s,
        "<text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">obhut ÷ baseline (1.0 = as fast as the baseline; | = target)</text>"
    );
    // Grid every 0.25.
    let mut g = 0.0;
    while g <= scale_max + 1e-9 {
        let gx = x(g);
        let stroke = if (g - 1.0).abs() < 1e-9 {
            "#555"
        } else {
            "#ddd"
        };
        let _ = writeln!(
            s,
            "<line x1=\"{gx:.1}\" y1=\"{:.1}\" x2=\"{gx:.1}\" y2=\"{:.1}\" stroke=\"{stroke}\"/>",
            TOP - 8.0,
            TOP + ROW * rows.len() as f64
        );
        let _ = writeln!(
            s,
            "<text x=\"{gx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{g:.2}</text>",
            TOP + ROW * rows.len() as f64 + 16.0
        );
        g += 0.25;
    }
    for (i, row) in rows.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        let label = format!("{} vs {}", row.cmp.title(), row.cmp.baseline_name);
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 8.0,
            y + ROW / 2.0 + 4.0,
            svg_escape(&label)
        );
        match row.ratio() {
            Some(ratio) => {
                let colour = match row.met() {
                    Some(true) => "#2e7d32",
                    Some(false) => "#c62828",
                    None => "#78909c",
                };
                let _ = writeln!(
                    s,
                    "<rect x=\"{LEFT:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"/>",
                    y + 6.0,
                    x(ratio) - LEFT,
                    ROW - 12.0
                );
                let _ = writeln!(
                    s,
                    "<text x=\"{:.1}\" y=\"{:.1}\">{ratio:.2}</text>",
                    x(ratio) + 4.0,
                    y + ROW / 2.0 + 4.0
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#999\">not measured</text>",
                    LEFT + 4.0,
                    y + ROW / 2.0 + 4.0
                );
            }
        }
        if let Some(t) = row.cmp.target {
            let _ = writeln!(
                s,
                "<line x1=\"{0:.1}\" y1=\"{1:.1}\" x2=\"{0:.1}\" y2=\"{2:.1}\" stroke=\"black\" stroke-width=\"3\"/>",
                x(t),
                y + 2.0,
                y + ROW - 2.0
            );
        }
    }
    let _ = writeln!(
        s,
        "<text x=\"10\" y=\"{:.1}\" fill=\"#555\">green: target met · red: target not met · grey: no target</text>",
        height - 10.0
    );
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::Machine;
    use crate::record::{Params, Results};

    fn record(target: &str, op: &str, size: u64, mib: f64, ops: f64) -> RunRecord {
        RunRecord {
            tool: "obhut-bench".into(),
            benchmark: "s3".into(),
            target: target.into(),
            op: op.into(),
            tag: "matrix".into(),
            started_at: "2026-05-01T00:00:00Z".into(),
            params: Params {
                size_bytes: size,
                size: crate::size::format_size(size),
                concurrency: 4,
                ..Params::default()
            },
            machine: Machine::probe(&[]),
            results: Results {
                ops: 10,
                throughput_mib_per_s: mib,
                ops_per_s: ops,
                ..Results::default()
            },
            server_memory: None,
            aead: None,
        }
    }

    #[test]
    fn keeps_section_one_and_compares_against_targets() {
        let existing = "# old title\n\nold intro\n\n## 1. Segment encryption, per core\n\nkeep me\n\n### sub\n\nme too\n\n## 2. End to end\n\nold\n";
        let kept = preserved_section(existing).unwrap();
        assert_eq!(
            kept,
            "## 1. Segment encryption, per core\n\nkeep me\n\n### sub\n\nme too"
        );
        assert_eq!(preserved_section("# nothing\n"), None);

        let records = vec![
            record("obhut", "get", MIB64, 700.0, 11.0),
            record("raw-read", "read", MIB64, 1000.0, 15.0),
            record("obhut", "put", KIB4, 1.0, 100.0),
            record("raw-write", "write", KIB4, 1.0, 400.0),
        ];
        let rows = rows(&records);
        assert_eq!(rows[0].ratio(), Some(0.7));
        assert_eq!(rows[0].met(), Some(true));
        assert_eq!(rows[2].ratio(), Some(0.25));
        assert_eq!(rows[2].met(), Some(false));
        assert_eq!(rows[1].ratio(), None);
        let md = markdown(&records, &rows, Some(kept), Some("A note."));
        assert!(md.contains("keep me") && md.contains("me too") && !md.contains("old intro"));
        assert!(
            md.contains("| 64 MiB GET (MiB/s) | 700 | raw read | 1000 | 0.70 | ≥ 0.7 | met |"),
            "{md}"
        );
        assert!(md.contains("**not met**"));
        let svg = chart(&rows);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<rect").count(), 1 + 2);
    }
}
