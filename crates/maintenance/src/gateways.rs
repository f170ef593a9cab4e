//! This process's heartbeat in the catalog's registry of gateways (`Catalog::beat_gateway`):
//! every renewal interval of the lease on background work, the worker `gateway-heartbeat`
//! writes the process's id, release, start time, whether it holds the lease, a readiness
//! summary and its workers' states; the lease holder also removes the rows of processes not
//! seen for [`FORGET_AFTER`].
//!
//! It owns the heartbeat's content ([`GatewayStatus`], JSON in the row's `status`): states,
//! counts, worker names and fixed error kinds. It never holds a tenant, bucket or object name,
//! an error's text or a key.

use crate::lease::Leadership;
use crate::worker::{WorkerStatus, Workers};
use obhut_catalog::{Catalog, GatewayBeat};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// How long a row may go unseen before the lease holder removes it.
pub const FORGET_AFTER: Duration = Duration::from_secs(24 * 60 * 60);
/// Beats between two removals of unseen rows by the lease holder.
const FORGET_EVERY: u32 = 12;

/// The readiness of a process as `/readyz` judges it, summed up: the trustee's state
/// (`unsealed`, `sealed`, `unreachable`, `disconnected`), whether the catalog answered, and how
/// many of the process's sites are not down.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadinessSummary {
    pub trustee: String,
    pub catalog_ok: bool,
    pub sites_ok: u32,
    pub sites_total: u32,
}

impl ReadinessSummary {
    /// Ready as `/readyz` says it: the trustee unsealed and the catalog answering.
    #[must_use]
    pub fn ready(&self) -> bool {
        self.trustee == "unsealed" && self.catalog_ok
    }
}

/// One worker as the registry shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerBeat {
    pub name: String,
    pub state: String,
    pub last_run_ms: Option<i64>,
    /// A fixed word (`catalog`, `site`, …), never an error's text.
    pub last_error: Option<String>,
}

impl From<&WorkerStatus> for WorkerBeat {
    fn from(w: &WorkerStatus) -> Self {
        Self {
            name: w.name.clone(),
            state: match w.state {
                crate::WorkerState::Waiting => "waiting",
                crate::WorkerState::Working => "working",
                crate::WorkerState::Stopped => "stopped",
            }
            .to_owned(),
            last_run_ms: w.last_run_ms,
            last_error: w.last_error.map(str::to_owned),
        }
    }
}

/// What a heartbeat row's `status` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayStatus {
    /// The interval between two beats of this process (ms): a row unseen for a few of them is
    /// stale.
    pub beat_ms: u64,
    pub readiness: ReadinessSummary,
    pub workers: Vec<WorkerBeat>,
}

/// How the heartbeat learns the process's readiness (the binary knows the trustee client;
/// this crate never does), given the catalog to check (the probe keeps none of its own).
pub type ReadinessProbe = Arc<
    dyn Fn(Arc<dyn Catalog>) -> Pin<Box<dyn Future<Output = ReadinessSummary> + Send>>
        + Send
        + Sync,
>;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The beat this process writes now.
#[must_use]
pub fn beat_of(
    leadership: &Leadership,
    version: &str,
    started_ms: i64,
    readiness: ReadinessSummary,
    workers: &Workers,
) -> GatewayBeat {
    let status = GatewayStatus {
        beat_ms: u64::try_from(leadership.timing().renew.as_millis()).unwrap_or(u64::MAX),
        readiness,
        workers: workers.list().iter().map(WorkerBeat::from).collect(),
    };
    GatewayBeat {
        id: leadership.holder().to_owned(),
        version: version.to_owned(),
        started_ms,
        background: leadership.current().is_some(),
        status: serde_json::to_string(&status).unwrap_or_default(),
    }
}

/// Starts the worker `gateway-heartbeat`: a beat at once and then every renewal interval of
/// `leadership`, into its catalog, until the workers stop or the lease is given up for good
/// (the worker takes the catalog from `leadership` at each beat, so that it never keeps it
/// open after the process has let it go).
pub fn spawn_heartbeat(
    workers: &Workers,
    leadership: Leadership,
    version: &str,
    probe: ReadinessProbe,
) {
    let version = version.to_owned();
    let started_ms = now_ms();
    let all = workers.clone();
    workers.spawn("gateway-heartbeat", move |w| async move {
        let every = leadership.timing().renew;
        let forget_ms = i64::try_from(FORGET_AFTER.as_millis()).unwrap_or(i64::MAX);
        let mut beats: u32 = 0;
        loop {
            {
                let _run = w.run();
                let Some(catalog) = leadership.catalog() else {
                    return;
                };
                let readiness = probe(Arc::clone(&catalog)).await;
                let beat = beat_of(&leadership, &version, started_ms, readiness, &all);
                if let Err(e) = catalog.beat_gateway(&beat).await {
                    w.note_error("catalog");
                    tracing::warn!(error = %e, "this gateway's heartbeat was not recorded");
                }
                beats = beats.wrapping_add(1);
                if beats % FORGET_EVERY == 1
                    && let Some(lease) = leadership.current()
                {
                    match catalog.forget_gateways_fenced(&lease, forget_ms).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(removed = n, "gateways unseen for a day forgotten"),
                        Err(e) => {
                            w.note_error("catalog");
                            tracing::warn!(error = %e, "unseen gateways were not forgotten");
                        }
                    }
                }
            }
            if !w.sleep(every).await {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LeaseTiming;
    use obhut_catalog::SqliteCatalog;

    fn ready() -> ReadinessProbe {
        Arc::new(|_| {
            Box::pin(async {
                ReadinessSummary {
                    trustee: "unsealed".into(),
                    catalog_ok: true,
                    sites_ok: 2,
                    sites_total: 2,
                }
            })
        })
    }

    #[tokio::test]
    async fn each_process_beats_with_its_role_readiness_and_workers() {
        let catalog: Arc<dyn Catalog> = Arc::new(SqliteCatalog::in_memory().unwrap());
        let timing = LeaseTiming {
            ttl: Duration::from_millis(400),
            renew: Duration::from_millis(50),
        };
        let a = Leadership::new(Arc::clone(&catalog), "gw-a".into(), timing);
        let b = Leadership::new(Arc::clone(&catalog), "gw-b".into(), timing);
        let (wa, wb) = (Workers::new(), Workers::new());
        assert!(a.renew().await);
        wa.lead_with(a.clone());
        wb.lead_with(b.clone());
        spawn_heartbeat(&wa, a, "1.2.3", ready());
        spawn_heartbeat(&wb, b, "1.2.3", ready());
        let mut rows = Vec::new();
        for _ in 0..100 {
            rows = catalog.list_gateways(10).await.unwrap().gateways;
            if rows.len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(rows.len(), 2, "{rows:?}");
        rows.sort_by(|x, y| x.beat.id.cmp(&y.beat.id));
        assert_eq!(
            (rows[0].beat.background, rows[1].beat.background),
            (true, false)
        );
        let status: GatewayStatus = serde_json::from_str(&rows[1].beat.status).unwrap();
        assert_eq!(status.beat_ms, 50);
        assert!(status.readiness.ready());
        assert_eq!(
            (status.readiness.sites_ok, status.readiness.sites_total),
            (2, 2)
        );
        let names: Vec<&str> = status.workers.iter().map(|w| w.name.as_str()).collect();
        assert!(names.contains(&"background-lease") && names.contains(&"gateway-heartbeat"));
        assert_eq!(rows[1].beat.version, "1.2.3");
        wa.stop();
        wb.stop();
    }

    #[test]
    fn readiness_is_that_of_readyz() {
        let mut r = ReadinessSummary {
            trustee: "unsealed".into(),
            catalog_ok: true,
            ..ReadinessSummary::default()
        };
        assert!(r.ready());
        r.catalog_ok = false;
        assert!(!r.ready());
        r.catalog_ok = true;
        r.trustee = "sealed".into();
        assert!(!r.ready());
    }
}
