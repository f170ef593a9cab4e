//! `obhut-bench drill disconnect`: the trustee cuts the provider off under load, and the drill
//! measures it (`scripts/two-dc drill disconnect` runs it against the two-datacenter
//! deployment).
//!
//! 1. Bounded S3 load (4 KiB PUTs of new objects and verified GETs, round robin over every
//!    gateway) for `--seconds`, every acknowledged write remembered by name (its content
//!    follows from its name).
//! 2. Two officers run `obhut trustee disconnect` (the second completes the quorum) while the
//!    load goes on; the moment the second returns is the stop.
//! 3. The load continues for `--observe` seconds: every request that starts after the stop
//!    must be refused (503); any served is counted.
//! 4. The trustee's log is read (as the auditor) for each gateway's acknowledgement of the
//!    push; the rogue gateway (running with the drill fault injector, which ignores pushes) must
//!    show as missing, and its key cache (`obhut_key_cache_keys` on its `/metrics`) is watched
//!    until it is empty: how long it could still decrypt.
//! 5. Two officers reconnect; the drill waits until every gateway serves again, then reads back
//!    every acknowledged write, comparing its bytes.
//!
//! It writes the summary (a flat JSON object of figures) and, with `--record`, has an officer
//! append it to the log (`obhut log record-drill`). It holds officers' tokens only to pass them
//! to the `obhut` CLI, and never prints them.

use crate::s3::{S3Client, key_name};
use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Size of every object the drill writes.
const OBJECT_SIZE: u64 = 4096;

/// What the drill needs to know about the deployment.
pub struct DrillArgs {
    /// Every gateway's S3 endpoint (`https://ADDR:PORT`).
    pub endpoints: Vec<String>,
    pub clients: Vec<S3Client>,
    /// The index in `endpoints` of the gateway running with the fault injector.
    pub rogue: Option<usize>,
    /// The rogue gateway's `/metrics` URL and a bearer allowed to read it.
    pub rogue_metrics: Option<String>,
    pub metrics_bearer: String,
    /// The rogue gateway's `key_cache_ttl`.
    pub key_cache_ttl: Duration,
    /// The admin API (log entries) and an auditor's bearer.
    pub admin_url: String,
    pub auditor_bearer: String,
    pub ca_bundle: Option<PathBuf>,
    /// The `obhut` binary, and the two officers' tokens it is run with.
    pub obhut: PathBuf,
    pub officers: [String; 2],
    pub seconds: f64,
    pub observe: f64,
    pub concurrency: usize,
    /// At most this many requests in each load phase.
    pub max_requests: u64,
    pub bucket: String,
    pub out: PathBuf,
    pub record: bool,
}

/// One S3 request of the load: when it started and ended, on which gateway, and how it went.
#[derive(Clone, Copy)]
struct Sample {
    start: Instant,
    end: Instant,
    ok: bool,
    /// Refused with 503.
    refused: bool,
}

struct Load {
    samples: Mutex<Vec<Sample>>,
    acknowledged: Mutex<Vec<String>>,
    next: AtomicU64,
    stop: AtomicBool,
}

/// Runs the load until `stop` is set or `max` requests were started: each worker PUTs a new
/// object, then GETs (with its bytes checked) one acknowledged earlier, on the next gateway.
async fn load(
    clients: Vec<S3Client>,
    bucket: String,
    concurrency: usize,
    state: Arc<Load>,
    max: u64,
) {
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let clients = clients.clone();
        let bucket = bucket.clone();
        let state = Arc::clone(&state);
        tasks.push(tokio::spawn(async move {
            let mut round = w;
            while !state.stop.load(Ordering::Relaxed) {
                let n = state.next.fetch_add(1, Ordering::Relaxed);
                if n >= max {
                    return;
                }
                let client = &clients[round % clients.len()];
                round += 1;
                let key = key_name("drill/", n);
                let start = Instant::now();
                let result = client.put(&bucket, &key, OBJECT_SIZE).await;
                let put = sample(start, &result);
                if result.is_ok() {
                    lock(&state.acknowledged).push(key);
                }
                lock(&state.samples).push(put);
                let earlier = {
                    let acked = lock(&state.acknowledged);
                    (!acked.is_empty()).then(|| acked[(n as usize * 7919) % acked.len()].clone())
                };
                if let Some(key) = earlier {
                    let client = &clients[round % clients.len()];
                    round += 1;
                    let start = Instant::now();
                    let result = client.get(&bucket, &key, OBJECT_SIZE, true).await;
                    lock(&state.samples).push(sample(start, &result));
                }
                if put.refused {
                    // Refused: do not spin.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

fn sample<T>(start: Instant, result: &Result<T>) -> Sample {
    let refused = match result {
        Ok(_) => false,
        Err(e) => e.to_string().contains(" 503 "),
    };
    Sample {
        start,
        end: Instant::now(),
        ok: result.is_ok(),
        refused,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `obhut ARGS` as `token`'s principal; its stdout, or an error naming its stderr.
fn obhut(args: &DrillArgs, token: &str, cli: &[&str]) -> Result<String> {
    let out = std::process::Command::new(&args.obhut)
        .args(cli)
        .env("OBHUT_TOKEN", token)
        .env("OBHUT_ADMIN_URL", &args.admin_url)
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", args.obhut.display()))?;
    if !out.status.success() {
        bail!(
            "`obhut {}` failed: {}",
            cli.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// An HTTP client trusting the deployment's CA.
fn http(ca_bundle: Option<&std::path::Path>) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10));
    if let Some(path) = ca_bundle {
        let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        b = b.tls_built_in_root_certs(false);
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("cannot parse {}", path.display()))?
        {
            b = b.add_root_certificate(cert);
        }
    }
    b.build().context("cannot build the HTTP client")
}

/// Log entries from index `from`, parsed.
async fn log_entries(
    http: &reqwest::Client,
    args: &DrillArgs,
    from: u64,
) -> Result<Vec<(u64, Value)>> {
    let url = format!("{}/v1/log/entries?from={from}", args.admin_url);
    let page: Value = http
        .get(&url)
        .bearer_auth(&args.auditor_bearer)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?
        .error_for_status()
        .with_context(|| format!("GET {url}"))?
        .json()
        .await
        .with_context(|| format!("GET {url}: not JSON"))?;
    let mut out = Vec::new();
    for item in page["entries"].as_array().into_iter().flatten() {
        let (Some(index), Some(text)) = (item["index"].as_u64(), item["entry"].as_str()) else {
            continue;
        };
        if let Ok(v) = serde_json::from_str::<Value>(text) {
            out.push((index, v));
        }
    }
    Ok(out)
}

/// The log's size now (the checkpoint's second line).
async fn log_size(http: &reqwest::Client, args: &DrillArgs) -> Result<u64> {
    let url = format!("{}/log/checkpoint", args.admin_url);
    let text = http
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?
        .text()
        .await?;
    text.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .ok_or_else(|| anyhow!("{url}: not a checkpoint"))
}

/// The rogue gateway's cached bucket keys (`obhut_key_cache_keys`).
async fn keys_cached(http: &reqwest::Client, url: &str, bearer: &str) -> Result<u64> {
    let text = http
        .get(url)
        .bearer_auth(bearer)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?
        .error_for_status()
        .with_context(|| format!("GET {url}"))?
        .text()
        .await?;
    text.lines()
        .find_map(|l| l.strip_prefix("obhut_key_cache_keys "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .ok_or_else(|| anyhow!("{url}: no obhut_key_cache_keys"))
}

/// `host:port` of an endpoint URL.
fn authority(endpoint: &str) -> String {
    let rest = endpoint.split("://").nth(1).unwrap_or(endpoint);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// Runs the drill; returns the summary (also written to `args.out`) and whether every
/// invariant held.
pub async fn disconnect(args: DrillArgs) -> Result<(Map<String, Value>, bool)> {
    let http = http(args.ca_bundle.as_deref())?;
    let first = args
        .clients
        .first()
        .ok_or_else(|| anyhow!("no gateway endpoint"))?;
    first
        .create_bucket(&args.bucket)
        .await
        .with_context(|| format!("cannot create bucket {}", args.bucket))?;

    // 1. Load before the disconnect.
    let state = Arc::new(Load {
        samples: Mutex::new(Vec::new()),
        acknowledged: Mutex::new(Vec::new()),
        next: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let before_deadline = Duration::from_secs_f64(args.seconds);
    {
        let stopper = Arc::clone(&state);
        let timer = tokio::spawn(async move {
            tokio::time::sleep(before_deadline).await;
            stopper.stop.store(true, Ordering::Relaxed);
        });
        load(
            args.clients.clone(),
            args.bucket.clone(),
            args.concurrency,
            Arc::clone(&state),
            args.max_requests,
        )
        .await;
        timer.abort();
    }
    let before: Vec<Sample> = std::mem::take(&mut *lock(&state.samples));
    let served_before = before.iter().filter(|s| s.ok).count();
    let failed_before = before.len() - served_before;
    let acknowledged_before = lock(&state.acknowledged).len();
    if served_before == 0 {
        bail!("no request was served before the disconnect: is the deployment up?");
    }
    // The rogue gateway must hold a key for the figure to mean anything: read through it.
    if let (Some(r), Some(url)) = (args.rogue, &args.rogue_metrics) {
        let key = lock(&state.acknowledged)
            .first()
            .cloned()
            .ok_or_else(|| anyhow!("nothing acknowledged"))?;
        args.clients[r]
            .get(&args.bucket, &key, OBJECT_SIZE, true)
            .await
            .context("a GET through the rogue gateway before the disconnect")?;
        let n = keys_cached(&http, url, &args.metrics_bearer).await?;
        if n == 0 {
            bail!("the rogue gateway holds no key after serving a GET: {url}");
        }
    }
    let log_from = log_size(&http, &args).await?;

    // 2. The disconnect, under load.
    state.stop.store(false, Ordering::Relaxed);
    state.next.store(args.max_requests, Ordering::Relaxed);
    let background = tokio::spawn(load(
        args.clients.clone(),
        args.bucket.clone(),
        args.concurrency,
        Arc::clone(&state),
        2 * args.max_requests,
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first_vote = obhut(
        &args,
        &args.officers[0],
        &["trustee", "disconnect", "--reason", "disconnect drill"],
    )?;
    if !first_vote.contains("pending: 1 of 2") {
        bail!("the first officer's approval did not leave the disconnect pending: {first_vote}");
    }
    let second = obhut(&args, &args.officers[1], &["trustee", "disconnect"])?;
    let stop = Instant::now();
    if !second.starts_with("disconnected") {
        bail!("the second officer's approval did not disconnect: {second}");
    }
    let stop_wall_ms = now_ms();

    // 3. Keep the load on while the stop takes effect.
    tokio::time::sleep(Duration::from_secs_f64(args.observe)).await;
    state.stop.store(true, Ordering::Relaxed);
    let _ = background.await;
    let during: Vec<Sample> = std::mem::take(&mut *lock(&state.samples));
    let served_after: Vec<&Sample> = during.iter().filter(|s| s.ok && s.start >= stop).collect();
    let refused_after = during
        .iter()
        .filter(|s| s.start >= stop && s.refused)
        .count();
    let other_errors_after = during
        .iter()
        .filter(|s| s.start >= stop && !s.ok && !s.refused)
        .count();
    let last_served_end = during
        .iter()
        .filter(|s| s.ok)
        .map(|s| s.end)
        .max()
        .filter(|end| *end > stop)
        .map_or(Duration::ZERO, |end| end - stop);

    // 4. Acknowledgements in the log, and the rogue gateway's keys.
    let mut acked: Vec<(String, u64)> = Vec::new();
    let mut missing: Vec<String> = Vec::new();
    let mut disconnect_index = None;
    let ack_deadline = Instant::now() + Duration::from_secs(25);
    while Instant::now() < ack_deadline {
        let entries = log_entries(&http, &args, log_from).await?;
        disconnect_index = entries
            .iter()
            .find(|(_, e)| e["type"] == "trustee_disconnected")
            .map(|(i, _)| *i);
        if let Some(d) = disconnect_index {
            acked = entries
                .iter()
                .filter(|(_, e)| e["type"] == "gateway_acknowledged" && e["disconnect"] == d)
                .map(|(_, e)| {
                    (
                        e["gateway"].as_str().unwrap_or_default().to_owned(),
                        e["latency_ms"].as_u64().unwrap_or(u64::MAX),
                    )
                })
                .collect();
            missing = entries
                .iter()
                .filter(|(_, e)| e["type"] == "gateway_ack_missing" && e["disconnect"] == d)
                .map(|(_, e)| e["gateway"].as_str().unwrap_or_default().to_owned())
                .collect();
            if !acked.is_empty() || !missing.is_empty() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let disconnect_index =
        disconnect_index.ok_or_else(|| anyhow!("no trustee_disconnected entry in the log"))?;
    let gateway_of = |name: &str| name.split('@').next().unwrap_or(name).to_owned();
    let obedient: Vec<String> = args
        .endpoints
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != args.rogue)
        .map(|(_, e)| authority(e))
        .collect();
    let acked_obedient: Vec<&(String, u64)> = acked
        .iter()
        .filter(|(g, _)| obedient.contains(&gateway_of(g)))
        .collect();
    let gateways_acked = obedient
        .iter()
        .all(|g| acked_obedient.iter().any(|(a, _)| gateway_of(a) == *g));
    let max_ack = acked_obedient
        .iter()
        .map(|(_, ms)| Duration::from_millis(*ms))
        .max()
        .unwrap_or(Duration::ZERO);
    let rogue_name = args.rogue.map(|r| authority(&args.endpoints[r]));
    let rogue_ack_missing = rogue_name
        .as_ref()
        .is_some_and(|r| missing.iter().any(|m| gateway_of(m) == *r))
        && !rogue_name
            .as_ref()
            .is_some_and(|r| acked.iter().any(|(a, _)| gateway_of(a) == *r));
    let mut rogue_decrypt = None;
    if let Some(url) = &args.rogue_metrics {
        let deadline = stop + args.key_cache_ttl + Duration::from_secs(15);
        loop {
            let n = keys_cached(&http, url, &args.metrics_bearer).await?;
            if n == 0 {
                rogue_decrypt = Some(stop.elapsed());
                break;
            }
            if Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    // 5. Reconnect, wait for every gateway, read everything back.
    obhut(&args, &args.officers[1], &["trustee", "reconnect"])?;
    obhut(&args, &args.officers[0], &["trustee", "reconnect"])?;
    let reconnected = Instant::now();
    let acknowledged: Vec<String> = lock(&state.acknowledged).clone();
    let probe = acknowledged
        .first()
        .cloned()
        .ok_or_else(|| anyhow!("nothing acknowledged"))?;
    let mut resumed = vec![false; args.clients.len()];
    let resume_deadline = reconnected + Duration::from_secs(60);
    while resumed.iter().any(|r| !r) {
        for (i, c) in args.clients.iter().enumerate() {
            if !resumed[i] && c.get(&args.bucket, &probe, OBJECT_SIZE, true).await.is_ok() {
                resumed[i] = true;
            }
        }
        if Instant::now() > resume_deadline {
            bail!("not every gateway serves again 60 s after the reconnect: {resumed:?}");
        }
        if resumed.iter().any(|r| !r) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let time_to_resume = reconnected.elapsed();
    let mut lost = 0u64;
    for (i, key) in acknowledged.iter().enumerate() {
        let c = &args.clients[i % args.clients.len()];
        if c.get(&args.bucket, key, OBJECT_SIZE, true).await.is_err() {
            lost += 1;
        }
    }

    let ttl = args.key_cache_ttl;
    let rogue_within_ttl = rogue_decrypt.is_some_and(|d| d <= ttl + Duration::from_secs(2));
    let mut s = Map::new();
    let mut put = |k: &str, v: Value| {
        s.insert(k.to_owned(), v);
    };
    put("drill", json!("disconnect"));
    put("stopped_at_ms", json!(stop_wall_ms));
    put("gateways", json!(args.endpoints.len()));
    put("load_seconds", json!(args.seconds));
    put("concurrency", json!(args.concurrency));
    put("requests_before_stop", json!(before.len()));
    put("failed_before_stop", json!(failed_before));
    put("acknowledged", json!(acknowledged.len()));
    put("acknowledged_before_stop", json!(acknowledged_before));
    put("disconnect_log_index", json!(disconnect_index));
    put(
        "time_to_full_stop_s",
        json!(secs(last_served_end.max(max_ack))),
    );
    put("last_served_after_stop_s", json!(secs(last_served_end)));
    put("slowest_ack_s", json!(secs(max_ack)));
    put("requests_served_after_stop", json!(served_after.len()));
    put("requests_refused_after_stop", json!(refused_after));
    put("other_errors_after_stop", json!(other_errors_after));
    put("gateways_acked", json!(gateways_acked));
    put("gateways_acked_count", json!(acked_obedient.len()));
    put("gateways_expected_to_ack", json!(obedient.len()));
    put("rogue_gateway", json!(rogue_name));
    put("rogue_ack_missing", json!(rogue_ack_missing));
    put("rogue_gateway_decrypt_s", json!(rogue_decrypt.map(secs)));
    put("key_cache_ttl_s", json!(ttl.as_secs()));
    put("rogue_within_key_cache_ttl", json!(rogue_within_ttl));
    put("time_to_resume_s", json!(secs(time_to_resume)));
    put("lost", json!(lost));
    let ok = served_after.is_empty()
        && other_errors_after == 0
        && refused_after > 0
        && gateways_acked
        && lost == 0
        && (args.rogue.is_none() || (rogue_ack_missing && rogue_within_ttl));
    put("passed", json!(ok));

    let text = serde_json::to_string_pretty(&s)?;
    std::fs::write(&args.out, format!("{text}\n"))
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    if args.record {
        let out = args.out.to_string_lossy().into_owned();
        let said = obhut(
            &args,
            &args.officers[0],
            &["log", "record-drill", "--drill", "disconnect", &out],
        )?;
        eprint!("{said}");
    }
    Ok((s, ok))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
