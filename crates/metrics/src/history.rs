//! A bounded history of this process's S3 and site metrics, for the operator's charts over
//! time: a sampler thread reads the process's own counters every interval (10 s by default)
//! into a ring of fixed size (an hour's worth), and [`History::points`] turns consecutive
//! samples into rates, latency percentiles and error rates.
//!
//! It holds only what the registry holds: totals by operation class and status class, the
//! latency histogram's buckets summed over operations, and per-site operation and error
//! counts (site ids are the operators' own). Never a tenant, bucket or object name.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How much history is kept, whatever the interval.
pub const SPAN: Duration = Duration::from_secs(3600);
/// The default sampling interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// The most samples kept (an hour at one a second).
const MAX_SAMPLES: usize = 3601;

/// The process's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// Milliseconds since 1970.
    pub at_ms: u64,
    /// S3 requests answered, all operations and statuses.
    pub requests: u64,
    /// Of those, answered with a 5xx status.
    pub errors: u64,
    /// The S3 latency histogram summed over operations: cumulative count per upper bound (s),
    /// ascending, `+Inf` last.
    pub latency: Vec<(f64, u64)>,
    /// Per site: reads and writes finished, and failed operations.
    pub site_ops: BTreeMap<String, u64>,
    pub site_errors: BTreeMap<String, u64>,
}

/// What happened between two samples, as the charts draw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The end of the interval, milliseconds since 1970.
    pub at_ms: u64,
    pub requests_per_s: f64,
    /// Share of requests answered 5xx (none without requests).
    pub error_ratio: Option<f64>,
    /// Median and 99th percentile of S3 latency, milliseconds (none without requests).
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Per site: failed operations per second, and operations per second.
    pub site_errors_per_s: BTreeMap<String, f64>,
    pub site_ops_per_s: BTreeMap<String, f64>,
}

/// A ring of samples of fixed capacity.
#[derive(Debug)]
pub struct History {
    interval: Duration,
    capacity: usize,
    ring: Mutex<VecDeque<Sample>>,
}

impl History {
    /// A history sampled every `interval`, keeping [`SPAN`] of it (at least two samples).
    #[must_use]
    pub fn new(interval: Duration) -> Self {
        let interval = interval.max(Duration::from_millis(100));
        let n = SPAN.as_millis() / interval.as_millis().max(1) + 1;
        let capacity = usize::try_from(n)
            .unwrap_or(MAX_SAMPLES)
            .clamp(2, MAX_SAMPLES);
        Self {
            interval,
            capacity,
            ring: Mutex::new(VecDeque::with_capacity(capacity)),
        }
    }

    #[must_use]
    pub fn interval(&self) -> Duration {
        self.interval
    }

    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Adds `s`, dropping the oldest sample when full.
    pub fn push(&self, s: Sample) {
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(s);
    }

    /// Samples held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ring
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One point per pair of consecutive samples, oldest first.
    #[must_use]
    pub fn points(&self) -> Vec<Point> {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        ring.iter()
            .zip(ring.iter().skip(1))
            .map(|(a, b)| point(a, b))
            .collect()
    }
}

#[allow(clippy::cast_precision_loss)]
fn point(a: &Sample, b: &Sample) -> Point {
    let secs = (b.at_ms.saturating_sub(a.at_ms) as f64 / 1000.0).max(0.001);
    let requests = b.requests.saturating_sub(a.requests);
    let errors = b.errors.saturating_sub(a.errors);
    let buckets: Vec<(f64, u64)> = b
        .latency
        .iter()
        .map(|(le, n)| {
            let before = a
                .latency
                .iter()
                .find(|(l, _)| l.to_bits() == le.to_bits())
                .map_or(0, |(_, m)| *m);
            (*le, n.saturating_sub(before))
        })
        .collect();
    let per_s = |now: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>| {
        now.iter()
            .map(|(site, n)| {
                let d = n.saturating_sub(before.get(site).copied().unwrap_or(0));
                (site.clone(), d as f64 / secs)
            })
            .collect()
    };
    Point {
        at_ms: b.at_ms,
        requests_per_s: requests as f64 / secs,
        error_ratio: (requests > 0).then(|| errors as f64 / requests as f64),
        p50_ms: quantile(&buckets, 0.5).map(|s| s * 1000.0),
        p99_ms: quantile(&buckets, 0.99).map(|s| s * 1000.0),
        site_errors_per_s: per_s(&b.site_errors, &a.site_errors),
        site_ops_per_s: per_s(&b.site_ops, &a.site_ops),
    }
}

/// The `q` quantile of cumulative `buckets` (upper bound, count), interpolated linearly within
/// its bucket as Prometheus's `histogram_quantile` does; the last finite bound if it falls in
/// `+Inf`. None for an empty histogram.
#[allow(clippy::cast_precision_loss)]
#[must_use]
pub fn quantile(buckets: &[(f64, u64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut prev = (0.0, 0u64);
    for &(le, n) in buckets {
        if n as f64 >= rank {
            if le.is_infinite() {
                return Some(prev.0);
            }
            let inside = (n - prev.1) as f64;
            let frac = if inside > 0.0 {
                (rank - prev.1 as f64) / inside
            } else {
                1.0
            };
            return Some(prev.0 + (le - prev.0) * frac);
        }
        prev = (le, n);
    }
    Some(prev.0)
}

/// The sample of a Prometheus text exposition of this crate's registry.
#[must_use]
pub fn sample_of(text: &str, at_ms: u64) -> Sample {
    let mut s = Sample {
        at_ms,
        ..Sample::default()
    };
    let mut latency: BTreeMap<u64, (f64, u64)> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((head, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let n = value.max(0.0) as u64;
        let (name, labels) = head.split_once('{').unwrap_or((head, ""));
        let label = |k: &str| {
            labels
                .trim_end_matches('}')
                .split(',')
                .filter_map(|l| l.split_once('='))
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.trim_matches('"'))
        };
        match name {
            "obhut_s3_requests_total" => {
                s.requests += n;
                if label("status") == Some("5xx") {
                    s.errors += n;
                }
            }
            "obhut_s3_request_duration_seconds_bucket" => {
                let le = match label("le") {
                    Some("+Inf") => f64::INFINITY,
                    Some(v) => match v.parse() {
                        Ok(v) => v,
                        Err(_) => continue,
                    },
                    None => continue,
                };
                latency.entry(le.to_bits()).or_insert((le, 0)).1 += n;
            }
            "obhut_site_write_duration_seconds_count"
            | "obhut_site_read_duration_seconds_count" => {
                if let Some(site) = label("site") {
                    *s.site_ops.entry(site.to_owned()).or_default() += n;
                }
            }
            "obhut_site_errors_total" => {
                if let Some(site) = label("site") {
                    *s.site_errors.entry(site.to_owned()).or_default() += n;
                    // A failed operation was an operation too.
                    *s.site_ops.entry(site.to_owned()).or_default() += n;
                }
            }
            _ => {}
        }
    }
    let mut buckets: Vec<(f64, u64)> = latency.into_values().collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    s.latency = buckets;
    s
}

static HISTORY: OnceLock<History> = OnceLock::new();

/// This process's history, if [`start`] started one.
#[must_use]
pub fn get() -> Option<&'static History> {
    HISTORY.get()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Starts sampling this process's metrics every `interval` on a thread of its own (once per
/// process; later calls do nothing). The first sample is taken at once.
///
/// # Errors
/// If the thread cannot be started.
pub fn start(interval: Duration) -> std::io::Result<()> {
    if HISTORY.get().is_some() {
        return Ok(());
    }
    let history = HISTORY.get_or_init(|| History::new(interval));
    std::thread::Builder::new()
        .name("obhut-metrics-history".into())
        .spawn(move || {
            loop {
                if let Ok(text) = crate::get().render_own() {
                    history.push(sample_of(&text, now_ms()));
                }
                std::thread::sleep(history.interval());
            }
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: u64, requests: u64, errors: u64, latency: &[(f64, u64)]) -> Sample {
        Sample {
            at_ms,
            requests,
            errors,
            latency: latency.to_vec(),
            ..Sample::default()
        }
    }

    #[test]
    fn the_ring_keeps_an_hour_and_drops_the_oldest() {
        let h = History::new(Duration::from_secs(10));
        assert_eq!(h.capacity(), 361);
        for i in 0..400 {
            h.push(sample(i * 10_000, i, 0, &[]));
        }
        assert_eq!(h.len(), 361);
        let points = h.points();
        assert_eq!(points.len(), 360);
        // The oldest kept is sample 39; the newest 399.
        assert_eq!(points[0].at_ms, 40 * 10_000);
        assert_eq!(points[359].at_ms, 399 * 10_000);
        // Fast sampling is bounded too.
        assert_eq!(History::new(Duration::from_millis(1)).capacity(), 3601);
        assert_eq!(History::new(Duration::from_secs(7200)).capacity(), 2);
    }

    #[test]
    fn points_are_rates_error_shares_and_percentiles_between_samples() {
        let h = History::new(Duration::from_secs(10));
        let mut a = sample(0, 100, 1, &[(0.001, 50), (0.01, 100), (f64::INFINITY, 100)]);
        a.site_errors.insert("de-fra".into(), 2);
        a.site_ops.insert("de-fra".into(), 10);
        let mut b = sample(
            10_000,
            300,
            21,
            &[(0.001, 50), (0.01, 250), (f64::INFINITY, 300)],
        );
        b.site_errors.insert("de-fra".into(), 12);
        b.site_ops.insert("de-fra".into(), 110);
        b.site_ops.insert("de-mgd".into(), 50);
        h.push(a);
        assert!(h.points().is_empty());
        h.push(b);
        let p = &h.points()[0];
        assert!((p.requests_per_s - 20.0).abs() < 1e-9, "{p:?}");
        assert!((p.error_ratio.unwrap() - 0.1).abs() < 1e-9);
        // 200 requests in the interval: 150 in (1 ms, 10 ms], 50 above 10 ms.
        let p50 = p.p50_ms.unwrap();
        assert!(p50 > 1.0 && p50 < 10.0, "{p50}");
        assert!((p.p99_ms.unwrap() - 10.0).abs() < 1e-9);
        assert!((p.site_errors_per_s["de-fra"] - 1.0).abs() < 1e-9);
        assert!((p.site_ops_per_s["de-mgd"] - 5.0).abs() < 1e-9);
        // An idle interval: no latency, no error share.
        h.push(sample(20_000, 300, 21, &[(f64::INFINITY, 300)]));
        let idle = &h.points()[1];
        assert_eq!(idle.requests_per_s, 0.0);
        assert_eq!((idle.error_ratio, idle.p50_ms), (None, None));
    }

    #[test]
    fn a_sample_reads_the_registry_text() {
        let text = r#"# TYPE obhut_s3_requests_total counter
obhut_s3_requests_total{op="GetObject",status="2xx"} 7
obhut_s3_requests_total{op="GetObject",status="5xx"} 2
obhut_s3_requests_total{op="PutObject",status="2xx"} 3
obhut_s3_request_duration_seconds_bucket{le="0.001",op="GetObject"} 4
obhut_s3_request_duration_seconds_bucket{le="+Inf",op="GetObject"} 9
obhut_s3_request_duration_seconds_bucket{le="0.001",op="PutObject"} 1
obhut_s3_request_duration_seconds_bucket{le="+Inf",op="PutObject"} 3
obhut_site_write_duration_seconds_count{site="de-fra"} 5
obhut_site_read_duration_seconds_count{site="de-fra"} 6
obhut_site_errors_total{site="de-fra",op="write"} 1
"#;
        let s = sample_of(text, 42);
        assert_eq!((s.at_ms, s.requests, s.errors), (42, 12, 2));
        assert_eq!(s.latency, [(0.001, 5), (f64::INFINITY, 12)]);
        assert_eq!(s.site_ops["de-fra"], 12);
        assert_eq!(s.site_errors["de-fra"], 1);
        assert_eq!(quantile(&s.latency, 0.99), Some(0.001));
        assert_eq!(quantile(&[(f64::INFINITY, 0)], 0.5), None);
    }

    #[test]
    fn the_sampler_reads_this_processs_own_counters() {
        let m = crate::get();
        m.s3_request(crate::S3Op::GetObject, 200, Duration::from_millis(2), 0, 1);
        let s = sample_of(&m.render_own().unwrap(), 0);
        assert!(
            s.requests >= 1 && s.latency.last().is_some_and(|l| l.1 >= 1),
            "{s:?}"
        );
    }
}
