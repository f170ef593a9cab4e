//! `walk`: a whole bucket listed page after page (ListObjectsV2 or ListObjectVersions), as a
//! client that lists everything does, each page asked when the previous one has answered; each
//! walk is timed from its first request to its last answer. Reads no object content.

use crate::s3::{Listing, Resume, S3Client};
use crate::stats::{LatencySummary, nanos};
use anyhow::{Result, bail};
use serde::Serialize;
use std::time::Instant;

/// One walk through the listing.
#[derive(Debug, Serialize)]
pub struct Walk {
    pub entries: u64,
    pub pages: u64,
    pub seconds: f64,
    pub entries_per_s: f64,
    /// Latency of each page request.
    pub page_latency: Option<LatencySummary>,
}

/// Lists every entry under `prefix`, `max_keys` per page.
pub async fn walk(
    client: &S3Client,
    bucket: &str,
    listing: Listing,
    prefix: &str,
    max_keys: usize,
) -> Result<Walk> {
    let mut from = Resume::Start;
    let mut entries = 0u64;
    let mut latencies = Vec::new();
    let start = Instant::now();
    loop {
        let asked = Instant::now();
        let page = client
            .list_page(bucket, listing, prefix, max_keys, &from)
            .await?;
        latencies.push(nanos(asked.elapsed()));
        entries += page.entries as u64;
        match page.next {
            None => break,
            Some(next) if next == from => {
                bail!(
                    "{} does not move on: the same resume point twice",
                    listing.name()
                )
            }
            Some(next) => from = next,
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(Walk {
        entries,
        pages: latencies.len() as u64,
        seconds,
        entries_per_s: entries as f64 / seconds.max(1e-9),
        page_latency: LatencySummary::from_nanos(latencies),
    })
}

/// The median of the walks' rates (the lower middle one for an even count).
pub fn median_rate(walks: &[Walk]) -> Option<f64> {
    let mut rates: Vec<f64> = walks.iter().map(|w| w.entries_per_s).collect();
    rates.sort_by(f64::total_cmp);
    rates.get(rates.len().checked_sub(1)? / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(rate: f64) -> Walk {
        Walk {
            entries: 1,
            pages: 1,
            seconds: 1.0,
            entries_per_s: rate,
            page_latency: None,
        }
    }

    #[test]
    fn the_median_is_the_middle_rate() {
        assert_eq!(median_rate(&[]), None);
        assert_eq!(median_rate(&[w(3.0), w(1.0), w(2.0)]), Some(2.0));
        assert_eq!(median_rate(&[w(4.0), w(1.0)]), Some(1.0));
    }
}
