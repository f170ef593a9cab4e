//! `aead`: AES-256-GCM sealing throughput with aws-lc-rs, on one core and on all of them.
//!
//! The ceiling encryption puts on obhut's data path: every byte stored is sealed once and every
//! byte read is opened once (opening costs the same as sealing, see the criterion figures in
//! docs/benchmarks.md). Each thread seals a buffer of `--size` in place, over and over, for the
//! duration.

use crate::record::{AeadResults, Results, THROUGHPUT_UNIT};
use anyhow::{Result, anyhow};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use std::time::{Duration, Instant};

/// Seals `size`-byte buffers for `duration` on this thread; returns (seals, elapsed).
fn seal_loop(size: usize, duration: Duration) -> Result<(u64, Duration)> {
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, &[0x42; 32]).map_err(|_| anyhow!("AES-256-GCM key"))?,
    );
    let mut buf = vec![0x5Au8; size];
    let aad = [0u8; 50];
    let start = Instant::now();
    let mut seals = 0u64;
    loop {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&seals.to_be_bytes());
        let _tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad),
                &mut buf,
            )
            .map_err(|_| anyhow!("AES-256-GCM seal failed"))?;
        seals += 1;
        let elapsed = start.elapsed();
        if elapsed >= duration {
            return Ok((seals, elapsed));
        }
    }
}

fn mib_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / (1u64 << 20) as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// One thread for `duration`, then `threads` threads together for `duration`.
pub fn measure(size: u64, duration: Duration, threads: usize) -> Result<(Results, AeadResults)> {
    let len = usize::try_from(size).map_err(|_| anyhow!("--size too large"))?;
    let (seals, elapsed) = seal_loop(len, duration)?;
    let one_core = mib_per_s(seals * size, elapsed);

    let handles: Vec<_> = (0..threads.max(1))
        .map(|_| std::thread::spawn(move || seal_loop(len, duration)))
        .collect();
    let mut all_bytes = 0u64;
    let mut longest = Duration::ZERO;
    for h in handles {
        let (s, e) = h
            .join()
            .map_err(|_| anyhow!("a sealing thread panicked"))??;
        all_bytes += s * size;
        longest = longest.max(e);
    }
    let all = mib_per_s(all_bytes, longest);
    let results = Results {
        elapsed_s: elapsed.as_secs_f64(),
        ops: seals,
        bytes: seals * size,
        ops_per_s: seals as f64 / elapsed.as_secs_f64().max(1e-9),
        throughput_mib_per_s: one_core,
        throughput_unit: THROUGHPUT_UNIT.into(),
        ..Results::default()
    };
    let aead = AeadResults {
        algorithm: "AES-256-GCM (aws-lc-rs), seal in place, 50 bytes of associated data".into(),
        buffer_bytes: size,
        seal_mib_per_s_one_core: one_core,
        seal_mib_per_s_all_threads: all,
        threads: threads.max(1),
    };
    Ok((results, aead))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_something() {
        let (r, a) = measure(4096, Duration::from_millis(20), 2).unwrap();
        assert!(r.ops > 0 && a.seal_mib_per_s_one_core > 0.0 && a.seal_mib_per_s_all_threads > 0.0);
    }
}
