//! Fills a stopped trustee's transparency log with key-release entries of one tenant, for the
//! console section of `scripts/bench` (a tenant with a large log). The entries go through the
//! trustee's own group-commit append ([`Governance::record_batch`]): appended, hashed into the
//! tree, indexed and checkpointed as the trustee does it, so the log stays verifiable.
//!
//! It owns nothing but the run; it must never be pointed at a trustee that is running, or that
//! holds anything but benchmark data.
//!
//! Usage: `fill-log TRUSTEE_DIR TENANT BUCKET COUNT [BATCH]`

use obhut_trustee::governance::Governance;
use obhut_trustee_client::{Justification, LogEvent};
use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, tenant, bucket, count, rest @ ..] = args.as_slice() else {
        return Err("usage: fill-log TRUSTEE_DIR TENANT BUCKET COUNT [BATCH]".into());
    };
    let count: u64 = count.parse()?;
    let batch: u64 = rest.first().map_or(Ok(10_000), |b| b.parse())?;
    if batch == 0 {
        return Err("BATCH must be at least 1".into());
    }
    let gov = Governance::open(&PathBuf::from(dir))?;
    let started = Instant::now();
    let mut done = 0;
    while done < count {
        let n = batch.min(count - done);
        let events = (0..n)
            .map(|_| LogEvent::KeyRelease {
                tenant: tenant.clone(),
                bucket: bucket.clone(),
                key_version: 1,
                justification: Justification::System {
                    reason: "benchmark: a large log".to_owned(),
                },
            })
            .collect();
        let range = gov.record_batch(events)?;
        done += n;
        if done % (batch * 10) == 0 || done == count {
            eprintln!(
                "fill-log: {done} entries appended (log now ends at {}), {:.1} s",
                range.end,
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}
