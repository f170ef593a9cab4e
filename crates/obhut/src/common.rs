//! Process plumbing shared by `serve`, `gateway` and `trustee --config`: config files, logging,
//! the async runtime, the exclusive lock of a directory, and the stop signal.

use anyhow::{Context, Result, anyhow, bail};
use serde::de::DeserializeOwned;
use std::fs::{self, File};
use std::io::IsTerminal;
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

/// How the process log is written: lines for people, or one JSON object a line for log
/// collectors (`--log-format json`, config `log_format = "json"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Logs to stderr, filtered by `RUST_LOG` if set, else by `log`, as `format` says.
///
/// The S3 protocol library is always silenced, whatever the filter says: at debug level it logs
/// the signature a request should have carried (an operator could replay it as any tenant) and
/// at error level the XML bodies it could not parse (which hold object names). obhut logs its
/// own request outcomes without either.
///
/// In JSON each line carries the fields of the spans it happened in: an S3 request's lines
/// carry its `request_id`, the `x-amz-request-id` its response was given.
///
/// The access log (one line per S3 request, target `obhut::access`) is written only with
/// `access_log`: formatting and writing a line per request cost about a tenth of a small GET.
/// Colours only on a terminal.
pub(crate) fn init_tracing(log: &str, format: LogFormat, access_log: bool) {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(log))
        .add_directive(silenced("s3s"));
    if !access_log {
        filter = filter.add_directive(silenced("obhut::access"));
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// A filter directive that turns every line of `target` off.
fn silenced(target: &str) -> tracing_subscriber::filter::Directive {
    format!("{target}=off")
        .parse()
        .expect("a target name makes a filter directive")
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Takes the exclusive lock of a directory, creating it (mode 0700) if needed; `what` names
/// it in the error when it cannot be created. Everything the process creates from now on is
/// its owner's alone (umask 077), and what the directory already holds is made so
/// ([`make_private`]).
pub(crate) fn lock_dir(dir: &Path, what: &str) -> Result<File> {
    private_umask();
    let lock = take_lock(dir, what)?;
    make_private(dir)?;
    Ok(lock)
}

/// Takes away every permission of group and others from `dir` and what it holds (databases,
/// their WAL and SHM files, the log, keys, site identities), also when an older release or
/// an administrator left it wider. A site's `blobs` directory is made private but not walked:
/// it can hold millions of blobs, which are ciphertext written under umask 077.
pub(crate) fn make_private(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let tighten = |path: &Path, meta: &fs::Metadata, min: u32| -> Result<()> {
        let mode = meta.permissions().mode() & 0o7777;
        let private = (mode & 0o700) | min;
        if mode != private {
            fs::set_permissions(path, fs::Permissions::from_mode(private))
                .with_context(|| format!("cannot make {} private", path.display()))?;
        }
        Ok(())
    };
    let meta =
        fs::symlink_metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    tighten(dir, &meta, 0o700)?;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let entries = fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot read {}", d.display()))?;
            let path = entry.path();
            let meta = fs::symlink_metadata(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            if meta.file_type().is_symlink() {
                continue;
            }
            if meta.is_dir() {
                tighten(&path, &meta, 0o700)?;
                if entry.file_name() != "blobs" {
                    pending.push(path);
                }
            } else {
                tighten(&path, &meta, 0)?;
            }
        }
    }
    Ok(())
}

/// Everything the process creates from now on is its owner's alone (umask 077).
pub(crate) fn private_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

fn take_lock(dir: &Path, what: &str) -> Result<File> {
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
