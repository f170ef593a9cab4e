//! The closed-loop driver shared by every load: `concurrency` workers each run one operation at a
//! time until the run is over, and every operation's latency is kept.
//!
//! A run always ends by itself: after `--duration` (operations in flight then are finished and
//! counted), after `--max-ops` operations, after one pass over the `--objects` keys when neither is
//! given, or when more than `--max-errors` operations failed. A progress bar on stderr shows
//! how far it is, unless stderr is not a terminal.

use crate::record::{Results, THROUGHPUT_UNIT};
use crate::stats::{LatencySummary, nanos};
use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::future::Future;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How many error messages a record keeps.
const KEEP_ERRORS: usize = 10;

#[derive(Clone, Debug)]
pub struct Plan {
    pub objects: u64,
    pub concurrency: usize,
    pub duration: Option<Duration>,
    pub max_ops: Option<u64>,
    pub max_errors: u64,
}

impl Plan {
    /// The number of operations after which the run stops (unbounded with a duration alone).
    pub fn op_limit(&self) -> u64 {
        match (self.max_ops, self.duration) {
            (Some(n), _) => n,
            (None, Some(_)) => u64::MAX,
            (None, None) => self.objects,
        }
    }
}

/// What one successful operation did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Outcome {
    pub bytes: u64,
    pub ttfb: Option<Duration>,
    pub verified: bool,
}

/// A kind of load. `run` does operation number `i` on key number `key` (`i % objects`).
pub trait Workload: Send + Sync + 'static {
    fn op_name(&self, i: u64) -> &'static str;
    fn run(&self, i: u64, key: u64) -> impl Future<Output = Result<Outcome>> + Send;
}

struct Sample {
    op: &'static str,
    latency: u64,
    ttfb: Option<u64>,
    bytes: u64,
    verified: bool,
}

struct Shared {
    next: AtomicU64,
    done: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    stop: AtomicBool,
    first_errors: Mutex<Vec<String>>,
}

/// Runs `workload` according to `plan`; `label` names the progress bar.
pub async fn run<W: Workload>(workload: Arc<W>, plan: &Plan, label: &str) -> Results {
    let shared = Arc::new(Shared {
        next: AtomicU64::new(0),
        done: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        first_errors: Mutex::new(Vec::new()),
    });
    let limit = plan.op_limit();
    let objects = plan.objects.max(1);
    let start = Instant::now();
    let deadline = plan.duration.map(|d| start + d);
    let progress = progress_bar(plan, label);
    let ticker = {
        let (shared, progress, plan) = (shared.clone(), progress.clone(), plan.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                update_progress(&progress, &plan, &shared, start);
            }
        })
    };

    let mut workers = Vec::with_capacity(plan.concurrency);
    for _ in 0..plan.concurrency.max(1) {
        let (shared, workload) = (shared.clone(), workload.clone());
        let max_errors = plan.max_errors;
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                if shared.stop.load(Ordering::Relaxed)
                    || deadline.is_some_and(|d| Instant::now() >= d)
                {
                    break;
                }
                let i = shared.next.fetch_add(1, Ordering::Relaxed);
                if i >= limit {
                    break;
                }
                let op = workload.op_name(i);
                let t0 = Instant::now();
                match workload.run(i, i % objects).await {
                    Ok(outcome) => {
                        samples.push(Sample {
                            op,
                            latency: nanos(t0.elapsed()),
                            ttfb: outcome.ttfb.map(nanos),
                            bytes: outcome.bytes,
                            verified: outcome.verified,
                        });
                        shared.done.fetch_add(1, Ordering::Relaxed);
                        shared.bytes.fetch_add(outcome.bytes, Ordering::Relaxed);
                    }
                    Err(e) => {
                        let n = shared.errors.fetch_add(1, Ordering::Relaxed) + 1;
                        if let Ok(mut kept) = shared.first_errors.lock()
                            && kept.len() < KEEP_ERRORS
                        {
                            kept.push(format!("{op} #{i}: {e:#}"));
                        }
                        if n > max_errors {
                            shared.stop.store(true, Ordering::Relaxed);
                        }
                    }
                }
            }
            samples
        }));
    }
    let mut samples = Vec::new();
    for worker in workers {
        match worker.await {
            Ok(mut s) => samples.append(&mut s),
            Err(e) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut kept) = shared.first_errors.lock() {
                    kept.push(format!("worker failed: {e}"));
                }
            }
        }
    }
    let elapsed = start.elapsed();
    ticker.abort();
    progress.finish_and_clear();

    let mut results = summarise(&samples, elapsed);
    let ops: Vec<&'static str> = {
        let mut names: Vec<_> = samples.iter().map(|s| s.op).collect();
        names.sort_unstable();
        names.dedup();
        names
    };
    if ops.len() > 1 {
        results.by_op = ops
            .iter()
            .map(|&op| {
                let subset: Vec<&Sample> = samples.iter().filter(|s| s.op == op).collect();
                (op.to_owned(), summarise_refs(&subset, elapsed))
            })
            .collect::<BTreeMap<_, _>>();
    }
    results.errors = shared.errors.load(Ordering::Relaxed);
    results.aborted = shared.stop.load(Ordering::Relaxed);
    results.first_errors = shared
        .first_errors
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    results
}

fn summarise(samples: &[Sample], elapsed: Duration) -> Results {
    summarise_refs(&samples.iter().collect::<Vec<_>>(), elapsed)
}

fn summarise_refs(samples: &[&Sample], elapsed: Duration) -> Results {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let bytes: u64 = samples.iter().map(|s| s.bytes).sum();
    let ops = samples.len() as u64;
    Results {
        elapsed_s: elapsed.as_secs_f64(),
        ops,
        bytes,
        ops_per_s: ops as f64 / secs,
        throughput_mib_per_s: bytes as f64 / (1u64 << 20) as f64 / secs,
        throughput_unit: THROUGHPUT_UNIT.into(),
        latency: LatencySummary::from_nanos(samples.iter().map(|s| s.latency).collect()),
        ttfb: LatencySummary::from_nanos(samples.iter().filter_map(|s| s.ttfb).collect()),
        verified: samples.iter().filter(|s| s.verified).count() as u64,
        ..Results::default()
    }
}

fn progress_bar(plan: &Plan, label: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let length = match plan.duration {
        Some(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
        None => plan.op_limit(),
    };
    let bar = ProgressBar::new(length);
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix:>12} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg}",
    ) {
        bar.set_style(style);
    }
    bar.set_prefix(label.to_owned());
    bar
}

fn update_progress(bar: &ProgressBar, plan: &Plan, shared: &Shared, start: Instant) {
    let elapsed = start.elapsed();
    let done = shared.done.load(Ordering::Relaxed);
    let bytes = shared.bytes.load(Ordering::Relaxed);
    let errors = shared.errors.load(Ordering::Relaxed);
    match plan.duration {
        Some(d) => bar.set_position(u64::try_from(elapsed.min(d).as_millis()).unwrap_or(u64::MAX)),
        None => bar.set_position(done),
    }
    let secs = elapsed.as_secs_f64().max(1e-9);
    bar.set_message(format!(
        "{done} ops {:.0} ops/s {:.1} MiB/s {errors} err",
        done as f64 / secs,
        bytes as f64 / (1u64 << 20) as f64 / secs
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counting;

    impl Workload for Counting {
        fn op_name(&self, i: u64) -> &'static str {
            if i.is_multiple_of(2) { "even" } else { "odd" }
        }
        async fn run(&self, i: u64, _key: u64) -> Result<Outcome> {
            if i == 3 {
                anyhow::bail!("three fails");
            }
            Ok(Outcome {
                bytes: 10,
                ttfb: None,
                verified: i == 0,
            })
        }
    }

    fn plan(objects: u64) -> Plan {
        Plan {
            objects,
            concurrency: 3,
            duration: None,
            max_ops: None,
            max_errors: 100,
        }
    }

    #[tokio::test]
    async fn one_pass_over_the_keys_without_a_duration() {
        let r = run(Arc::new(Counting), &plan(10), "test").await;
        assert_eq!(r.ops, 9);
        assert_eq!(r.errors, 1);
        assert_eq!(r.bytes, 90);
        assert_eq!(r.verified, 1);
        assert_eq!(r.first_errors.len(), 1);
        assert!(r.first_errors[0].contains("three fails"));
        assert_eq!(r.by_op.len(), 2);
        assert_eq!(r.by_op["even"].ops, 5);
        assert_eq!(r.latency.map(|l| l.count), Some(9));
    }

    #[tokio::test]
    async fn stops_after_max_errors_and_after_max_ops() {
        let mut p = plan(10);
        p.max_errors = 0;
        p.concurrency = 1;
        let r = run(Arc::new(Counting), &p, "test").await;
        assert!(r.aborted);
        assert_eq!(r.ops, 3);
        let mut p = plan(10);
        p.max_ops = Some(25);
        p.duration = Some(Duration::from_secs(60));
        assert_eq!(run(Arc::new(Counting), &p, "test").await.ops, 24);
    }
}
