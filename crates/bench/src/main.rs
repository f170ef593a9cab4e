//! `obhut-bench`: load generator and baselines for obhut's performance figures.
//!
//! - `s3`: drives any S3 endpoint (SigV4) with PUT, GET, mixed or LIST load;
//! - `http` + `http-serve`: the same client against an HTTP server with no storage;
//! - `raw-write` / `raw-read`: the same objects written durably to / read from plain directories;
//! - `aead`: AES-256-GCM throughput per core;
//! - `report`: the benchmark page and chart from the JSON records of the others;
//! - `drill disconnect`: the trustee cuts the provider off under load (`drill`);
//! - `walk`: a whole bucket listed page by page (ListObjectsV2 or ListObjectVersions), timed.
//!
//! Every measuring subcommand prints one summary line on stderr and a JSON record (see `record`)
//! on stdout or into `--json FILE`.

mod aead;
mod content;
mod drill;
mod http_server;
mod machine;
mod raw;
mod record;
mod report;
mod runner;
mod s3;
use obhut_bench::sigv4;
mod size;
mod stats;
mod walk;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use machine::{Machine, MemoryWatch};
use record::{Params, RunRecord};
use runner::Plan;
use s3::{Listing, PayloadSigning, PrefillLoad, S3Client, S3Load, S3Op};
use sigv4::Signer;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "obhut-bench",
    version,
    about = "Load generator and baselines for obhut's benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Drive an S3 endpoint (credentials and endpoint also from the AWS_* variables of demo.env).
    S3(S3Args),
    /// Drive the HTTP baseline server (`http-serve`) with the same client, dummy credentials.
    Http(HttpArgs),
    /// Baseline: write each object durably into every directory (tmp, write, fsync, rename, fsync dir).
    RawWrite(RawArgs),
    /// Baseline: read the objects back from the directories (written first if missing).
    RawRead(RawArgs),
    /// Baseline server: answers PUT/GET/HEAD/LIST from memory, stores nothing, checks no signature.
    HttpServe {
        #[arg(long, default_value = "127.0.0.1:9100")]
        addr: SocketAddr,
    },
    /// AES-256-GCM sealing throughput, one core and all threads.
    Aead(AeadArgs),
    /// List a whole bucket page by page (ListObjectsV2 or ListObjectVersions) and time each walk.
    Walk(WalkArgs),
    /// Drills against a running deployment (`scripts/two-dc drill`).
    #[command(subcommand)]
    Drill(DrillCommand),
    /// Print a size in bytes (for scripts): `obhut-bench bytes 1.5GiB` prints 1610612736.
    #[command(hide = true)]
    Bytes {
        #[arg(value_parser = size::parse_size)]
        size: u64,
    },
    /// Write benchmarks.md and the SVG chart from a directory of JSON records.
    Report {
        /// Directory of JSON records.
        #[arg(long = "in")]
        input: PathBuf,
        /// Directory for benchmarks.md and benchmarks-e2e.svg (an existing benchmarks.md keeps its section "## 1.").
        #[arg(long)]
        out: PathBuf,
        /// A sentence added under the section heading (e.g. how the run was made).
        #[arg(long)]
        note: Option<String>,
    },
}

/// What every load shares.
#[derive(Args, Clone)]
struct LoadArgs {
    /// Object size: 4096, 4KiB, 1MiB, 64MiB, 1.5GiB…
    #[arg(long, value_parser = size::parse_size, default_value = "1MiB")]
    size: u64,
    /// Number of distinct keys; operations cycle over them.
    #[arg(long, default_value_t = 100)]
    objects: u64,
    /// Workers, each with one operation in flight.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Stop after this many seconds (operations in flight are finished). Without it and without
    /// --max-ops, one operation per key.
    #[arg(long)]
    duration: Option<f64>,
    /// Stop after this many operations.
    #[arg(long)]
    max_ops: Option<u64>,
    /// Fraction of reads whose bytes are checked (all reads check the length).
    #[arg(long, default_value_t = 0.1)]
    verify_sample: f64,
    /// Stop the run when more operations than this have failed.
    #[arg(long, default_value_t = 100)]
    max_errors: u64,
    /// Key prefix [default: obhut-bench/SIZE/].
    #[arg(long)]
    prefix: Option<String>,
    /// Name of what is measured, in the record [default: per subcommand].
    #[arg(long)]
    target: Option<String>,
    /// Free label in the record (scripts/bench uses matrix, rss, ttfb-idle).
    #[arg(long, default_value = "")]
    tag: String,
    /// Write the JSON record here instead of stdout.
    #[arg(long)]
    json: Option<PathBuf>,
}

impl LoadArgs {
    fn plan(&self) -> Result<Plan> {
        let duration = self
            .duration
            .map(Duration::try_from_secs_f64)
            .transpose()
            .map_err(|e| anyhow!("--duration: {e}"))?;
        if !(0.0..=1.0).contains(&self.verify_sample) {
            bail!("--verify-sample must be between 0 and 1");
        }
        if self.objects == 0 || self.concurrency == 0 {
            bail!("--objects and --concurrency must be at least 1");
        }
        Ok(Plan {
            objects: self.objects,
            concurrency: self.concurrency,
            duration,
            max_ops: self.max_ops,
            max_errors: self.max_errors,
        })
    }

    fn prefix(&self) -> String {
        self.prefix
            .clone()
            .unwrap_or_else(|| format!("obhut-bench/{}/", size::format_size(self.size)))
    }

    fn params(&self) -> Params {
        Params {
            size_bytes: self.size,
            size: size::format_size(self.size),
            objects: self.objects,
            concurrency: self.concurrency,
            duration_s: self.duration,
            max_ops: self.max_ops,
            verify_sample: self.verify_sample,
            prefix: Some(self.prefix()),
            ..Params::default()
        }
    }
}

/// The client side shared by `s3` and `http`.
#[derive(Args, Clone)]
struct ClientArgs {
    #[arg(long, value_enum, default_value = "put")]
    op: S3Op,
    #[arg(long, default_value = "obhut-bench")]
    bucket: String,
    /// How PUT bodies are signed.
    #[arg(long, value_enum, default_value = "unsigned")]
    payload: PayloadSigning,
    /// Share of PUTs in --op mixed.
    #[arg(long, default_value_t = 0.5)]
    mix_put: f64,
    /// Record this process's memory during the timed part (the server's PID).
    #[arg(long)]
    watch_pid: Option<u32>,
    /// Directory whose disk is reported in the record (the server's data directory).
    #[arg(long, default_value = ".")]
    disk_path: PathBuf,
    /// Seconds before one request is abandoned.
    #[arg(long, default_value_t = 600.0)]
    op_timeout: f64,
    /// Do not check or write the objects before reads.
    #[arg(long)]
    skip_prefill: bool,
    /// Turn versioning on for the bucket before the run (PutBucketVersioning).
    #[arg(long)]
    versioning: bool,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Args)]
struct S3Args {
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    endpoint: String,
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    access_key: String,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_key: String,
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    region: String,
    /// PEM file of trusted CAs for https endpoints.
    #[arg(long)]
    ca_bundle: Option<PathBuf>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args)]
struct WalkArgs {
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    endpoint: String,
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    access_key: String,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_key: String,
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    region: String,
    /// PEM file of trusted CAs for https endpoints.
    #[arg(long)]
    ca_bundle: Option<PathBuf>,
    #[arg(long, default_value = "obhut-bench")]
    bucket: String,
    #[arg(long, default_value = "")]
    prefix: String,
    /// Which listing to page through.
    #[arg(long, value_enum, default_value = "objects")]
    listing: Listing,
    /// Entries per page (max-keys).
    #[arg(long, default_value_t = 1000)]
    page: usize,
    /// Number of walks, one after the other.
    #[arg(long, default_value_t = 3)]
    walks: usize,
    /// Begin each walk after this key (ListObjectsV2 `start-after`, ListObjectVersions
    /// `key-marker`).
    #[arg(long)]
    start_after: Option<String>,
    /// End each walk after this many pages (1: each walk is one listing request).
    #[arg(long)]
    pages: Option<u64>,
    /// Fail unless every walk lists exactly this many entries.
    #[arg(long)]
    expect: Option<u64>,
    /// Name of what is measured, in the record.
    #[arg(long, default_value = "obhut")]
    target: String,
    /// Write the JSON record here instead of stdout.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Subcommand)]
enum DrillCommand {
    /// Officers disconnect the provider under load; writes the drill's JSON summary.
    Disconnect(DisconnectArgs),
}

#[derive(Args)]
struct DisconnectArgs {
    /// Every gateway's S3 endpoint, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    endpoints: Vec<String>,
    /// The endpoint (one of --endpoints) of the gateway running with the drill fault injector.
    #[arg(long)]
    rogue: Option<String>,
    /// The rogue gateway's /metrics URL.
    #[arg(long, requires = "rogue")]
    rogue_metrics: Option<String>,
    /// A bearer that may read /metrics (`obhut token bearer` of an operator).
    #[arg(
        long,
        env = "OBHUT_DRILL_METRICS_BEARER",
        hide_env_values = true,
        default_value = ""
    )]
    metrics_bearer: String,
    /// The rogue gateway's key_cache_ttl, in seconds.
    #[arg(long, default_value_t = 300)]
    key_cache_ttl_secs: u64,
    #[arg(long, env = "OBHUT_ADMIN_URL")]
    admin_url: String,
    /// An auditor's bearer, to read the log's entries.
    #[arg(long, env = "OBHUT_DRILL_AUDITOR_BEARER", hide_env_values = true)]
    auditor_bearer: String,
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    access_key: String,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_key: String,
    #[arg(long, env = "AWS_REGION", default_value = "de-1")]
    region: String,
    /// PEM file of trusted CAs for the https endpoints and the admin API.
    #[arg(long)]
    ca_bundle: Option<PathBuf>,
    /// The obhut binary the officers' commands are run with.
    #[arg(long, default_value = "obhut")]
    obhut: PathBuf,
    #[arg(long, env = "OBHUT_OFFICER1_TOKEN", hide_env_values = true)]
    officer1_token: String,
    #[arg(long, env = "OBHUT_OFFICER2_TOKEN", hide_env_values = true)]
    officer2_token: String,
    /// Seconds of load before the disconnect.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Seconds the load goes on after the disconnect.
    #[arg(long, default_value_t = 5.0)]
    observe: f64,
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// At most this many PUTs in each load phase (each followed by a GET).
    #[arg(long, default_value_t = 20_000)]
    max_requests: u64,
    /// The bucket to write into [default: drill-disconnect-<time>].
    #[arg(long)]
    bucket: Option<String>,
    /// Where the JSON summary goes.
    #[arg(long)]
    out: PathBuf,
    /// Have the first officer append the summary to the log (`obhut log record-drill`).
    #[arg(long)]
    record: bool,
}

async fn run_drill_disconnect(a: DisconnectArgs) -> Result<()> {
    s3::install_crypto_provider();
    if a.concurrency == 0 || a.seconds <= 0.0 || a.observe <= 0.0 || a.max_requests == 0 {
        bail!("--concurrency, --seconds, --observe and --max-requests must be positive");
    }
    let rogue = match &a.rogue {
        Some(r) => Some(
            a.endpoints
                .iter()
                .position(|e| e == r)
                .ok_or_else(|| anyhow!("--rogue {r} is not one of --endpoints"))?,
        ),
        None => None,
    };
    let mut clients = Vec::new();
    for e in &a.endpoints {
        clients.push(S3Client::new(
            e,
            Signer {
                access_key: a.access_key.clone(),
                secret_key: a.secret_key.clone(),
                region: a.region.clone(),
            },
            PayloadSigning::Unsigned,
            a.concurrency,
            Duration::from_secs(30),
            a.ca_bundle.as_deref(),
        )?);
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (summary, ok) = drill::disconnect(drill::DrillArgs {
        endpoints: a.endpoints,
        clients,
        rogue,
        rogue_metrics: a.rogue_metrics,
        metrics_bearer: a.metrics_bearer,
        key_cache_ttl: Duration::from_secs(a.key_cache_ttl_secs),
        admin_url: a.admin_url.trim_end_matches('/').to_owned(),
        auditor_bearer: a.auditor_bearer,
        ca_bundle: a.ca_bundle,
        obhut: a.obhut,
        officers: [a.officer1_token, a.officer2_token],
        seconds: a.seconds,
        observe: a.observe,
        concurrency: a.concurrency,
        max_requests: a.max_requests,
        bucket: a
            .bucket
            .unwrap_or_else(|| format!("drill-disconnect-{stamp}")),
        out: a.out.clone(),
        record: a.record,
    })
    .await?;
    println!("{}", serde_json::Value::Object(summary));
    if !ok {
        bail!(
            "the disconnect drill failed its checks (see {})",
            a.out.display()
        );
    }
    Ok(())
}

#[derive(Args)]
struct HttpArgs {
    /// The `http-serve` address (no environment fallback, so demo.env cannot redirect it).
    #[arg(long, default_value = "http://127.0.0.1:9100")]
    endpoint: String,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args)]
struct RawArgs {
    /// Directories, comma-separated; writes go to all of them, reads rotate over them.
    #[arg(long, value_delimiter = ',', required = true)]
    dirs: Vec<PathBuf>,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Args)]
struct AeadArgs {
    /// Buffer sealed at a time (obhut's segment is 64 KiB).
    #[arg(long, value_parser = size::parse_size, default_value = "64KiB")]
    size: u64,
    /// Seconds for each of the two measurements (one thread, all threads).
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// Threads for the all-cores figure [default: the number of cores].
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long, default_value = "")]
    tag: String,
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("obhut-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("obhut-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::S3(a) => {
            let signer = Signer {
                access_key: a.access_key,
                secret_key: a.secret_key,
                region: a.region,
            };
            run_client(&a.endpoint, signer, a.ca_bundle, a.client, "s3").await
        }
        Command::Http(a) => {
            let signer = Signer {
                access_key: "obhut-bench".into(),
                secret_key: "obhut-bench".into(),
                region: "us-east-1".into(),
            };
            run_client(&a.endpoint, signer, None, a.client, "http-no-storage").await
        }
        Command::RawWrite(a) => run_raw(a, true).await,
        Command::RawRead(a) => run_raw(a, false).await,
        Command::HttpServe { addr } => http_server::serve(addr).await,
        Command::Aead(a) => run_aead(a).await,
        Command::Drill(DrillCommand::Disconnect(a)) => run_drill_disconnect(a).await,
        Command::Walk(a) => run_walk(a).await,
        Command::Bytes { size } => {
            println!("{size}");
            Ok(())
        }
        Command::Report { input, out, note } => report::write(&input, &out, note.as_deref()),
    }
}

fn finish(record: &RunRecord, json: Option<&std::path::Path>) -> Result<()> {
    eprintln!("{}", record.summary_line());
    for e in &record.results.first_errors {
        eprintln!("  error: {e}");
    }
    record.emit(json)?;
    if record.results.ops == 0 && record.results.errors > 0 {
        bail!("every operation failed");
    }
    Ok(())
}

async fn run_client(
    endpoint: &str,
    signer: Signer,
    ca_bundle: Option<PathBuf>,
    c: ClientArgs,
    default_target: &str,
) -> Result<()> {
    s3::install_crypto_provider();
    let load = &c.load;
    let plan = load.plan()?;
    let timeout =
        Duration::try_from_secs_f64(c.op_timeout).map_err(|e| anyhow!("--op-timeout: {e}"))?;
    let client = S3Client::new(
        endpoint,
        signer,
        c.payload,
        load.concurrency,
        timeout,
        ca_bundle.as_deref(),
    )?;
    client
        .create_bucket(&c.bucket)
        .await
        .with_context(|| format!("cannot create bucket {} at {endpoint}", c.bucket))?;
    if c.versioning {
        client.enable_versioning(&c.bucket).await?;
    }
    let prefix = load.prefix();
    if c.op.needs_prefill() && !c.skip_prefill {
        let prefill = Arc::new(PrefillLoad {
            client: client.clone(),
            bucket: c.bucket.clone(),
            prefix: prefix.clone(),
            size: load.size,
        });
        prefill_once(prefill, &plan, "objects").await?;
    }
    let watch = c.watch_pid.map(MemoryWatch::start).transpose()?;
    let started_at = record::now_rfc3339();
    let workload = Arc::new(S3Load {
        client,
        op: c.op,
        bucket: c.bucket.clone(),
        prefix,
        size: load.size,
        verify_sample: load.verify_sample,
        mix_put: c.mix_put,
    });
    let target = load
        .target
        .clone()
        .unwrap_or_else(|| default_target.to_owned());
    let results = runner::run(workload, &plan, &format!("{target} {}", c.op.name())).await;
    let server_memory = match watch {
        Some(w) => Some(w.finish().await),
        None => None,
    };
    let record = RunRecord {
        tool: format!("obhut-bench {}", env!("CARGO_PKG_VERSION")),
        benchmark: "s3".into(),
        target,
        op: c.op.name().into(),
        tag: load.tag.clone(),
        started_at,
        params: Params {
            endpoint: Some(endpoint.to_owned()),
            bucket: Some(c.bucket.clone()),
            payload_signing: Some(c.payload.name().into()),
            ..load.params()
        },
        machine: Machine::probe(std::slice::from_ref(&c.disk_path)),
        results,
        server_memory,
        aead: None,
    };
    finish(&record, load.json.as_deref())
}

async fn run_walk(a: WalkArgs) -> Result<()> {
    s3::install_crypto_provider();
    if a.walks == 0 || a.page == 0 {
        bail!("--walks and --page must be at least 1");
    }
    let signer = Signer {
        access_key: a.access_key,
        secret_key: a.secret_key,
        region: a.region,
    };
    let client = S3Client::new(
        &a.endpoint,
        signer,
        PayloadSigning::Unsigned,
        1,
        Duration::from_secs(600),
        a.ca_bundle.as_deref(),
    )?;
    let started_at = record::now_rfc3339();
    if a.pages == Some(0) {
        bail!("--pages must be at least 1");
    }
    let span = walk::Span {
        start_after: a.start_after.clone(),
        max_pages: a.pages,
    };
    let mut walks = Vec::with_capacity(a.walks);
    for n in 1..=a.walks {
        let w = walk::walk(&client, &a.bucket, a.listing, &a.prefix, a.page, &span).await?;
        let p = w.page_latency.as_ref();
        eprintln!(
            "{} {} walk {n}/{}: {} entries in {} pages, {:.2} s, {:.0} entries/s (page p50 {:.1} ms, p99 {:.1} ms)",
            a.target,
            a.listing.name(),
            a.walks,
            w.entries,
            w.pages,
            w.seconds,
            w.entries_per_s,
            p.map_or(0.0, |p| p.p50_ms),
            p.map_or(0.0, |p| p.p99_ms),
        );
        if let Some(expect) = a.expect
            && w.entries != expect
        {
            bail!(
                "walk {n} listed {} entries of bucket {}, {expect} expected",
                w.entries,
                a.bucket
            );
        }
        walks.push(w);
    }
    let record = serde_json::json!({
        "tool": format!("obhut-bench {}", env!("CARGO_PKG_VERSION")),
        "benchmark": "walk",
        "target": a.target,
        "op": a.listing.name(),
        "started_at": started_at,
        "endpoint": a.endpoint,
        "bucket": a.bucket,
        "prefix": a.prefix,
        "page": a.page,
        "start_after": a.start_after,
        "pages": a.pages,
        "median_entries_per_s": walk::median_rate(&walks),
        "page_latency": walk::all_pages(&walks),
        "walks": walks,
    });
    let text = serde_json::to_string_pretty(&record)?;
    match &a.json {
        Some(path) => std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => println!("{text}"),
    }
    Ok(())
}

async fn run_raw(a: RawArgs, write: bool) -> Result<()> {
    let load = &a.load;
    let plan = load.plan()?;
    let prefix = load.prefix();
    raw::prepare_dirs(&a.dirs, &prefix)?;
    let started_at;
    let results = if write {
        started_at = record::now_rfc3339();
        let w = Arc::new(raw::RawWrite {
            dirs: a.dirs.clone(),
            prefix,
            size: load.size,
        });
        runner::run(w, &plan, "raw write").await
    } else {
        let prefill = Arc::new(raw::RawPrefill {
            dirs: a.dirs.clone(),
            prefix: prefix.clone(),
            size: load.size,
        });
        prefill_once(prefill, &plan, "files").await?;
        started_at = record::now_rfc3339();
        let w = Arc::new(raw::RawRead {
            dirs: a.dirs.clone(),
            prefix,
            size: load.size,
            verify_sample: load.verify_sample,
        });
        runner::run(w, &plan, "raw read").await
    };
    let (benchmark, op) = if write {
        ("raw-write", "write")
    } else {
        ("raw-read", "read")
    };
    let record = RunRecord {
        tool: format!("obhut-bench {}", env!("CARGO_PKG_VERSION")),
        benchmark: benchmark.into(),
        target: load.target.clone().unwrap_or_else(|| benchmark.to_owned()),
        op: op.into(),
        tag: load.tag.clone(),
        started_at,
        params: Params {
            dirs: a.dirs.clone(),
            ..load.params()
        },
        machine: Machine::probe(&a.dirs),
        results,
        server_memory: None,
        aead: None,
    };
    finish(&record, load.json.as_deref())
}

async fn run_aead(a: AeadArgs) -> Result<()> {
    let duration =
        Duration::try_from_secs_f64(a.duration).map_err(|e| anyhow!("--duration: {e}"))?;
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let started_at = record::now_rfc3339();
    let size = a.size;
    let (results, aead) =
        tokio::task::spawn_blocking(move || aead::measure(size, duration, threads))
            .await
            .context("the measuring thread failed")??;
    eprintln!(
        "aes-256-gcm seal {}: {:.0} MiB/s on one core, {:.0} MiB/s on {} threads",
        size::format_size(a.size),
        aead.seal_mib_per_s_one_core,
        aead.seal_mib_per_s_all_threads,
        aead.threads
    );
    let record = RunRecord {
        tool: format!("obhut-bench {}", env!("CARGO_PKG_VERSION")),
        benchmark: "aead".into(),
        target: "aes-256-gcm".into(),
        op: "seal".into(),
        tag: a.tag,
        started_at,
        params: Params {
            size_bytes: a.size,
            size: size::format_size(a.size),
            concurrency: 1,
            duration_s: Some(a.duration),
            threads: Some(threads),
            ..Params::default()
        },
        machine: Machine::probe(&[PathBuf::from(".")]),
        results,
        server_memory: None,
        aead: Some(aead),
    };
    record.emit(a.json.as_deref())
}

/// Writes what the reads will read: one operation per key, no time limit, no error allowed.
async fn prefill_once<W: runner::Workload>(prefill: Arc<W>, plan: &Plan, what: &str) -> Result<()> {
    let once = Plan {
        duration: None,
        max_ops: None,
        max_errors: 0,
        ..plan.clone()
    };
    let r = runner::run(prefill, &once, "prefill").await;
    if r.errors > 0 {
        bail!(
            "writing the {what} before the reads failed: {}",
            r.first_errors.join("; ")
        );
    }
    Ok(())
}
