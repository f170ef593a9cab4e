//! Integrity alarms already reported to the trustee by this gateway, so that a record failing
//! its check is logged once, not once per request that meets it.
//!
//! Holds only the alarms' names (tenant, bucket, object name, upload), in memory.

use obhut_trustee_client::IntegrityAlarm;
use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

/// Alarms remembered at most; past that the set starts again (an alarm may then be logged
/// twice, never lost).
const REMEMBERED: usize = 10_000;

type AlarmKey = (String, String, String, Option<String>);

#[derive(Default)]
pub struct Alarms {
    reported: Mutex<HashSet<AlarmKey>>,
}

fn key_of(a: &IntegrityAlarm) -> AlarmKey {
    (
        a.tenant.clone(),
        a.bucket.clone(),
        a.key.clone(),
        a.upload.clone(),
    )
}

impl Alarms {
    /// Whether `alarm` is new (and remembers it).
    pub fn first_time(&self, alarm: &IntegrityAlarm) -> bool {
        let mut set = self.reported.lock().unwrap_or_else(PoisonError::into_inner);
        if set.len() >= REMEMBERED {
            set.clear();
        }
        set.insert(key_of(alarm))
    }

    /// Forgets `alarm` (its report failed: the next failure reports it again).
    pub fn forget(&self, alarm: &IntegrityAlarm) {
        self.reported
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key_of(alarm));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alarm_is_reported_once_until_forgotten() {
        let alarms = Alarms::default();
        let a = IntegrityAlarm {
            tenant: "t".into(),
            bucket: "b".into(),
            key: "k".into(),
            upload: None,
            reason: "r".into(),
        };
        assert!(alarms.first_time(&a));
        assert!(!alarms.first_time(&a));
        alarms.forget(&a);
        assert!(alarms.first_time(&a));
    }
}
