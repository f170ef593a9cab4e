//! Process plumbing shared by `serve`, `gateway` and `trustee --config`: config files, logging,
//! the async runtime, the exclusive lock of a directory, and the stop signal.

use anyhow::{Context, Result, anyhow, bail};
use serde::de::DeserializeOwned;
use std::fs::{self, File};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

/// Reads a TOML config file; errors are one line (TOML's own are several).
pub(crate) fn load_toml<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str::<T>(&text).map_err(|e| {
        let at = e
            .span()
            .map(|s| format!(" (line {})", text[..s.start].lines().count().max(1)))
            .unwrap_or_default();
        anyhow!(
            "invalid config file {}{at}: {}",
            path.display(),
            e.message().trim()
        )
    })
}

/// Logs to stderr, filtered by `RUST_LOG` if set, else by `log`.
///
/// The S3 protocol library is always silenced, whatever the filter says: at debug level it logs
/// the signature a request should have carried (an operator could replay it as any tenant) and
/// at error level the XML bodies it could not parse (which hold object names). obhut logs its
/// own request outcomes without either.
pub(crate) fn init_tracing(log: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(log))
        .add_directive(s3s_silenced());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
}

fn s3s_silenced() -> tracing_subscriber::filter::Directive {
    "s3s=off"
        .parse()
        .expect("a constant filter directive parses")
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Takes the exclusive lock of a directory, creating it (mode 0700) if needed; `what` names
/// it in the error when it cannot be created.
pub(crate) fn lock_dir(dir: &Path, what: &str) -> Result<File> {
    if !dir.exists() {
        // It holds secrets (S3 credentials, keys): the directory is the owner's alone.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {what} {}", dir.display()))?;
    }
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))
        .with_context(|| format!("cannot open lock file in {}", dir.display()))?;
    // A lock held for a moment is not another obhut: a child process forked (by any thread of
    // any process that had the file open) shares the lock until it execs, so a lock that is
    // released within the grace period was never a second server.
    let deadline = std::time::Instant::now() + LOCK_GRACE;
    loop {
        match lock.try_lock() {
            Ok(()) => return Ok(lock),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                bail!("another obhut process is using {}", dir.display())
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", dir.display()));
            }
        }
    }
}

/// How long a held directory lock is waited for before it counts as another process's.
const LOCK_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}
