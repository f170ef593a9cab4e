//! Group commit of per-object key releases. No log entry, no key: every request served with
//! per-object release waits until an entry naming it is durable. Requests that arrive while
//! the log is being written wait for the next write, which records all of them at once (one
//! entry per tenant, one fsync for the lot), so a busy trustee writes fewer, larger entries
//! instead of queueing one fsync per request.
//!
//! It sees only what the entries say (buckets, access keys, request digests, counts), never a
//! key.

use crate::governance::Governance;
use obhut_trustee_client::TrusteeError;
use obhut_trustee_client::log_entry::{LogEvent, ObjectKeyRequestEntry};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

/// Requests per `object_keys_released` entry: keeps each entry well below the log's 64 KiB
/// entry limit (a request's record is a few hundred bytes).
const REQUESTS_PER_ENTRY: usize = 100;

type Slot = Arc<OnceLock<Result<(), String>>>;

#[derive(Default)]
struct State {
    pending: Vec<(String, ObjectKeyRequestEntry, Slot)>,
    writing: bool,
}

#[derive(Default)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    written: Condvar,
}

impl GroupCommit {
    /// Records that `entry` of `tenant` was served; returns once an entry naming it is
    /// durable in the log. Blocks: call it on the blocking pool.
    pub fn record(
        &self,
        governance: &Governance,
        tenant: &str,
        entry: ObjectKeyRequestEntry,
    ) -> Result<(), TrusteeError> {
        let slot: Slot = Arc::default();
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state
            .pending
            .push((tenant.to_owned(), entry, Arc::clone(&slot)));
        loop {
            if let Some(result) = slot.get() {
                return result.clone().map_err(TrusteeError::Storage);
            }
            if state.writing {
                state = self
                    .written
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                continue;
            }
            // Nobody is writing: this caller writes everything pending, its own included.
            state.writing = true;
            let batch = std::mem::take(&mut state.pending);
            drop(state);
            let writer = Writer {
                commit: self,
                batch: &batch,
            };
            let result = governance
                .record_batch(events(&batch))
                .map(|_| ())
                .map_err(|e| e.to_string());
            for (_, _, s) in &batch {
                let _ = s.set(result.clone());
            }
            drop(writer);
            state = self
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

/// The writer's duty, done however the write ends (a panic included): every request of its
/// batch gets an answer (an error where the write did not), and the next writer may start.
struct Writer<'a> {
    commit: &'a GroupCommit,
    batch: &'a [(String, ObjectKeyRequestEntry, Slot)],
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        for (_, _, s) in self.batch {
            let _ = s.set(Err("the log write did not finish".into()));
        }
        let mut state = self
            .commit
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.writing = false;
        self.commit.written.notify_all();
    }
}

/// One `object_keys_released` entry per tenant (split every [`REQUESTS_PER_ENTRY`]), in the
/// order the requests arrived.
fn events(batch: &[(String, ObjectKeyRequestEntry, Slot)]) -> Vec<LogEvent> {
    let mut by_tenant: Vec<(String, Vec<ObjectKeyRequestEntry>)> = Vec::new();
    for (tenant, entry, _) in batch {
        match by_tenant
            .iter_mut()
            .find(|(t, list)| t == tenant && list.len() < REQUESTS_PER_ENTRY)
        {
            Some((_, list)) => list.push(entry.clone()),
            None => by_tenant.push((tenant.clone(), vec![entry.clone()])),
        }
    }
    by_tenant
        .into_iter()
        .map(|(tenant, requests)| LogEvent::ObjectKeysReleased { tenant, requests })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(bucket: &str) -> ObjectKeyRequestEntry {
        ObjectKeyRequestEntry {
            bucket: bucket.into(),
            key_version: 1,
            justification: "customer".into(),
            principal: "OBKTEST".into(),
            request: Some("00".repeat(32)),
            opened: 1,
            listed: 0,
            wrapped: 0,
            rewrapped: 0,
        }
    }

    #[test]
    fn one_entry_per_tenant_and_at_most_a_hundred_requests_each() {
        let mut batch = Vec::new();
        for i in 0..250 {
            let tenant = if i % 2 == 0 { "a" } else { "b" };
            batch.push((tenant.to_owned(), entry("x"), Slot::default()));
        }
        let events = events(&batch);
        let sizes: Vec<(String, usize)> = events
            .iter()
            .map(|e| match e {
                LogEvent::ObjectKeysReleased { tenant, requests } => {
                    (tenant.clone(), requests.len())
                }
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(
            sizes,
            vec![
                ("a".into(), 100),
                ("b".into(), 100),
                ("a".into(), 25),
                ("b".into(), 25)
            ]
        );
        let bytes = serde_json::to_vec(&events[0]).unwrap();
        assert!(
            bytes.len() < 60_000,
            "an entry of 100 requests is {} bytes",
            bytes.len()
        );
    }
}
