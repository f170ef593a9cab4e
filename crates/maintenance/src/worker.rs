//! Background workers: every loop a process runs beside its listeners (repair, scrubbing,
//! site health, revocations, key destruction) is started here, under a name, with a stop
//! signal, and listed with its state for the health output.
//!
//! Where the process shares its catalog with others, it also carries the lease on background
//! work ([`Leadership`]): workers that must run on one process at a time ask [`Worker::duty`]
//! between two pieces of work.
//!
//! It owns only names, states, stop signals and the lease; it never sees what a worker works
//! on.

use crate::lease::Leadership;
use obhut_catalog::Lease;
use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What a worker is doing, as the health output shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Waiting for its next run (a timer, a request, an event).
    Waiting,
    /// In the middle of a run.
    Working,
    /// Its loop has ended (stopped, or its source of work went away).
    Stopped,
}

/// One worker's entry in the registry.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerStatus {
    pub name: String,
    pub state: WorkerState,
    /// Runs finished since the process started.
    pub runs: u64,
    /// When the last run finished (milliseconds since the epoch).
    pub last_run_ms: Option<i64>,
    /// The kind of the last error a run met (a fixed word such as `catalog`, never an
    /// error's text, which could name a bucket or an object), if any; a run that meets none
    /// clears it.
    pub last_error: Option<&'static str>,
    /// Whether the run in progress met an error.
    #[serde(skip)]
    erred_in_run: bool,
}

type Table = Arc<Mutex<BTreeMap<String, WorkerStatus>>>;

/// The registry of a process's workers. Clones share it; [`Workers::stop`] stops them all.
#[derive(Clone, Default)]
pub struct Workers {
    table: Table,
    stop: CancellationToken,
    leadership: Arc<OnceLock<Leadership>>,
}

/// Whether a worker of background work may work now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Duty {
    /// The process has no lease to go by (no [`Workers::lead_with`]): it works.
    Alone,
    /// The process holds the lease: it works, and fences its destructive batches with it.
    Leader(Lease),
    /// Another process holds the lease: the worker waits.
    Standby,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Workers {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts `work` as the worker `name`. A name is listed once: a second worker of the same
    /// name replaces the first one's entry.
    pub fn spawn<F, Fut>(&self, name: &str, work: F)
    where
        F: FnOnce(Worker) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.register(name);
        let worker = Worker {
            name: name.to_owned(),
            table: Arc::clone(&self.table),
            stop: self.stop.child_token(),
            leadership: Arc::clone(&self.leadership),
        };
        let done = worker.clone();
        let fut = work(worker);
        tokio::spawn(async move {
            fut.await;
            done.update(|w| w.state = WorkerState::Stopped);
            tracing::debug!(worker = %done.name, "worker stopped");
        });
    }

    fn register(&self, name: &str) {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                name.to_owned(),
                WorkerStatus {
                    name: name.to_owned(),
                    state: WorkerState::Waiting,
                    runs: 0,
                    last_run_ms: None,
                    last_error: None,
                    erred_in_run: false,
                },
            );
    }

    /// Every worker started, by name.
    #[must_use]
    pub fn list(&self) -> Vec<WorkerStatus> {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Tells every worker to stop; each ends at its next wait or between two pieces of work.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Makes the background work of these workers go by `leadership`, and starts the worker
    /// `background-lease` that takes and renews it until stopped; the process gives it up
    /// with [`Leadership::release`] once its workers are stopped. Only the first call counts.
    pub fn lead_with(&self, leadership: Leadership) {
        if self.leadership.set(leadership.clone()).is_err() {
            return;
        }
        self.spawn("background-lease", move |w| async move {
            let renew = leadership.timing().renew;
            loop {
                {
                    let _run = w.run();
                    leadership.renew().await;
                }
                if !w.sleep(renew).await {
                    return;
                }
            }
        });
    }

    /// Whether the process may do background work now (see [`Worker::duty`]).
    #[must_use]
    pub fn duty(&self) -> Duty {
        duty_of(&self.leadership)
    }

    /// `leader` or `standby` where the process goes by a lease, else `None`.
    #[must_use]
    pub fn background_role(&self) -> Option<&'static str> {
        self.leadership.get().map(Leadership::role)
    }
}

fn duty_of(leadership: &OnceLock<Leadership>) -> Duty {
    match leadership.get() {
        None => Duty::Alone,
        Some(l) => l.current().map_or(Duty::Standby, Duty::Leader),
    }
}

/// A running worker's side: its stop signal and its entry in the registry.
#[derive(Clone)]
pub struct Worker {
    name: String,
    table: Table,
    stop: CancellationToken,
    leadership: Arc<OnceLock<Leadership>>,
}

impl Worker {
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this worker may do background work now, and under which lease.
    #[must_use]
    pub fn duty(&self) -> Duty {
        duty_of(&self.leadership)
    }

    /// Whether the worker has been told to stop.
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Resolves when the worker is told to stop: for `select!` beside its source of work.
    pub async fn stopped(&self) {
        self.stop.cancelled().await;
    }

    /// Sleeps for `pause`; returns `false` (at once) if the worker is told to stop meanwhile.
    pub async fn sleep(&self, pause: Duration) -> bool {
        tokio::select! {
            () = self.stop.cancelled() => false,
            () = tokio::time::sleep(pause) => true,
        }
    }

    /// Marks a run as started; the run ends (and is counted) when the guard is dropped.
    #[must_use]
    pub fn run(&self) -> Run<'_> {
        self.update(|w| {
            w.state = WorkerState::Working;
            w.erred_in_run = false;
        });
        Run { worker: self }
    }

    /// Records that a run met an error of `kind` (a fixed word: see
    /// [`WorkerStatus::last_error`]).
    pub fn note_error(&self, kind: &'static str) {
        self.update(|w| {
            w.last_error = Some(kind);
            w.erred_in_run = true;
        });
    }

    fn update(&self, f: impl FnOnce(&mut WorkerStatus)) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = table.get_mut(&self.name) {
            f(entry);
        }
    }
}

/// A run in progress (see [`Worker::run`]).
pub struct Run<'a> {
    worker: &'a Worker,
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        self.worker.update(|w| {
            w.state = WorkerState::Waiting;
            w.runs += 1;
            w.last_run_ms = Some(now_ms());
            if !w.erred_in_run {
                w.last_error = None;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_of(workers: &Workers, name: &str) -> Option<WorkerStatus> {
        workers.list().into_iter().find(|w| w.name == name)
    }

    #[tokio::test]
    async fn workers_are_listed_with_their_runs_and_stop_on_the_signal() {
        let workers = Workers::new();
        let (ran_tx, mut ran_rx) = tokio::sync::mpsc::unbounded_channel();
        workers.spawn("ticker", move |w| async move {
            while w.sleep(Duration::from_millis(5)).await {
                let _run = w.run();
                let _ = ran_tx.send(());
            }
        });
        workers.spawn("idle", |w| async move { w.stopped().await });
        for _ in 0..3 {
            ran_rx.recv().await.expect("the ticker runs");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        let names: Vec<String> = workers.list().into_iter().map(|w| w.name).collect();
        assert_eq!(names, ["idle", "ticker"]);
        let ticker = state_of(&workers, "ticker").expect("listed");
        assert!(ticker.runs >= 2, "{ticker:?}");
        assert!(ticker.last_run_ms.is_some(), "{ticker:?}");
        let idle = state_of(&workers, "idle").expect("listed");
        assert_eq!((idle.state, idle.runs), (WorkerState::Waiting, 0));

        workers.stop();
        for _ in 0..100 {
            if workers
                .list()
                .iter()
                .all(|w| w.state == WorkerState::Stopped)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("workers still running after stop: {:?}", workers.list());
    }

    /// A run that meets an error shows its kind until a run meets none.
    #[tokio::test]
    async fn the_last_error_lasts_until_a_run_without_one() {
        let workers = Workers::new();
        let (go_tx, mut go_rx) = tokio::sync::mpsc::unbounded_channel::<bool>();
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
        workers.spawn("flaky", move |w| async move {
            while let Some(fail) = go_rx.recv().await {
                {
                    let _run = w.run();
                    if fail {
                        w.note_error("catalog");
                    }
                }
                let _ = done_tx.send(());
            }
        });
        go_tx.send(true).expect("send");
        done_rx.recv().await.expect("ran");
        assert_eq!(
            state_of(&workers, "flaky").unwrap().last_error,
            Some("catalog")
        );
        go_tx.send(false).expect("send");
        done_rx.recv().await.expect("ran");
        assert_eq!(state_of(&workers, "flaky").unwrap().last_error, None);
        workers.stop();
    }
}
