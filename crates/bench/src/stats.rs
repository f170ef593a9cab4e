//! Latency percentiles from a sorted list of samples (nearest-rank, exact).
//!
//! Runs are short enough (at most a few hundred thousand operations) that keeping every sample and
//! sorting is cheaper than a histogram dependency, and exact.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The nearest-rank percentile: the smallest sample such that at least `per_10000 / 100` % of the
/// samples are less than or equal to it. `per_10000` is in hundredths of a percent (p99.9 = 9990),
/// so the rank is computed exactly in integers.
pub fn percentile(sorted: &[u64], per_10000: u64) -> Option<u64> {
    let n = sorted.len() as u64;
    if n == 0 {
        return None;
    }
    let rank = (per_10000.min(10_000) * n).div_ceil(10_000).clamp(1, n);
    usize::try_from(rank - 1)
        .ok()
        .and_then(|i| sorted.get(i))
        .copied()
}

/// Summary of a set of durations, in milliseconds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ms: f64,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

fn ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

impl LatencySummary {
    /// From samples in nanoseconds (sorted here); `None` without samples.
    pub fn from_nanos(mut samples: Vec<u64>) -> Option<Self> {
        samples.sort_unstable();
        let p = |q| percentile(&samples, q).map_or(0.0, ms);
        let count = samples.len() as u64;
        let total: u128 = samples.iter().map(|&s| u128::from(s)).sum();
        Some(LatencySummary {
            count,
            mean_ms: ms(u64::try_from(total / u128::from(count.max(1))).unwrap_or(u64::MAX)),
            min_ms: ms(*samples.first()?),
            p50_ms: p(5_000),
            p90_ms: p(9_000),
            p99_ms: p(9_900),
            p999_ms: p(9_990),
            max_ms: ms(*samples.last()?),
        })
    }
}

pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_on_one_to_a_thousand() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 0), Some(1));
        assert_eq!(percentile(&v, 5_000), Some(500));
        assert_eq!(percentile(&v, 9_000), Some(900));
        assert_eq!(percentile(&v, 9_900), Some(990));
        assert_eq!(percentile(&v, 9_990), Some(999));
        assert_eq!(percentile(&v, 10_000), Some(1000));
    }

    #[test]
    fn small_sets() {
        assert_eq!(percentile(&[], 5_000), None);
        assert_eq!(percentile(&[7], 0), Some(7));
        assert_eq!(percentile(&[7], 9_990), Some(7));
        // Two samples: the median is the lower one, anything above 50 % the upper one.
        assert_eq!(percentile(&[1, 2], 5_000), Some(1));
        assert_eq!(percentile(&[1, 2], 5_001), Some(2));
        // Ten samples: p99 and p99.9 are the maximum.
        let v: Vec<u64> = (10..20).collect();
        assert_eq!(percentile(&v, 9_900), Some(19));
        assert_eq!(percentile(&v, 9_000), Some(18));
    }

    #[test]
    fn summary_in_milliseconds_from_unsorted_nanoseconds() {
        let samples: Vec<u64> = (1..=100).rev().map(|i| i * 1_000_000).collect();
        let s = LatencySummary::from_nanos(samples).unwrap();
        assert_eq!(s.count, 100);
        assert_eq!(s.min_ms, 1.0);
        assert_eq!(s.p50_ms, 50.0);
        assert_eq!(s.p99_ms, 99.0);
        assert_eq!(s.p999_ms, 100.0);
        assert_eq!(s.max_ms, 100.0);
        assert_eq!(s.mean_ms, 50.5);
        assert_eq!(LatencySummary::from_nanos(Vec::new()), None);
    }
}
