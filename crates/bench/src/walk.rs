//! `walk`: a whole bucket listed page after page (ListObjectsV2 or ListObjectVersions), as a
//! client that lists everything does, each page asked when the previous one has answered; each
//! walk is timed from its first request to its last answer. Reads no object content.
//!
//! A walk may start after a given key and stop after a number of pages: repeated one-page
//! walks time single listing requests (the first page, a page in the middle, a prefix).

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
    /// Each page request's latency in nanoseconds (for summaries over several walks).
    #[serde(skip)]
    pub page_nanos: Vec<u64>,
}

/// Where a walk begins and how far it goes.
#[derive(Clone, Debug, Default)]
pub struct Span {
    /// Begin after this key (`start-after`, or `key-marker` for versions).
    pub start_after: Option<String>,
    /// Stop after this many pages (`None`: at the end of the listing).
    pub max_pages: Option<u64>,
}

/// Lists every entry under `prefix` (within `span`), `max_keys` per page.
pub async fn walk(
    client: &S3Client,
    bucket: &str,
    listing: Listing,
    prefix: &str,
    max_keys: usize,
    span: &Span,
) -> Result<Walk> {
    let mut from = span
        .start_after
        .clone()
        .map_or(Resume::Start, Resume::StartAfter);
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
        if span
            .max_pages
            .is_some_and(|max| latencies.len() as u64 >= max)
        {
            break;
        }
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
        page_latency: LatencySummary::from_nanos(latencies.clone()),
        page_nanos: latencies,
    })
}

/// The latency of every page request of `walks` together.
pub fn all_pages(walks: &[Walk]) -> Option<LatencySummary> {
    LatencySummary::from_nanos(
        walks
            .iter()
            .flat_map(|w| w.page_nanos.iter().copied())
            .collect(),
    )
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
            page_nanos: vec![],
        }
    }

    #[test]
    fn the_median_is_the_middle_rate() {
        assert_eq!(median_rate(&[]), None);
        assert_eq!(median_rate(&[w(3.0), w(1.0), w(2.0)]), Some(2.0));
        assert_eq!(median_rate(&[w(4.0), w(1.0)]), Some(1.0));
    }

    #[test]
    fn the_page_summary_covers_every_walk() {
        let mut a = w(1.0);
        a.page_nanos = vec![1_000_000, 3_000_000];
        let mut b = w(1.0);
        b.page_nanos = vec![2_000_000];
        let all = all_pages(&[a, b]).expect("samples");
        assert_eq!(all.count, 3);
        assert_eq!(all.p50_ms, 2.0);
        assert_eq!(all.max_ms, 3.0);
        assert!(all_pages(&[w(1.0)]).is_none());
    }
}
