//! `obhut trustee --config FILE`: the trustee as a process of its own, serving its API to
//! gateways over mutual TLS (`obhut_trustee::server`).
//!
//! It owns the keystore directory (holding its exclusive lock) and the crypto-shred timer.
//! It starts sealed unless the config names a development share file, which is logged loudly:
//! a production trustee is unsealed by its officers through a gateway's admin API
//! (`obhut trustee unseal`).
//!
//! Development unsealing and the destruction timer are also what `serve` does with its
//! in-process trustee; both live here.

use crate::common::{init_tracing, load_toml, lock_dir, runtime, shutdown_signal};
use anyhow::{Context, Result, bail};
use obhut_maintenance::Workers;
use obhut_trustee::{SealedKeystore, Trustee, server};
use obhut_trustee_client::TrusteeClient;
use serde::Deserialize;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrusteeFile {
    /// Address of the trustee API [default: 127.0.0.1:9100].
    listen: Option<String>,
    /// The sealed keystore, made by `obhut trustee init`.
    keystore_dir: PathBuf,
    log: Option<String>,
    /// The process log as `text` lines or `json` objects [default: text].
    log_format: Option<crate::common::LogFormat>,
    /// Development only: a file of unseal shares, one a line, given at start.
    dev_unseal_file: Option<PathBuf>,
    /// Time between disabling a tenant key and destroying it [default: 7 days].
    shred_grace_secs: Option<u64>,
    /// The longest object lock retention sealed, in days from the seal [default: 36525, 100
    /// years].
    max_retention_days: Option<u64>,
    /// The S3 region request signatures must name, as the gateways' [default: de-1].
    region: Option<String>,
    /// The API listener's limits, as the S3 and admin listeners' [defaults: 30 s, 60 s, 4096].
    header_read_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    tls: TlsSection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    /// The trustee's server certificate and key.
    cert: PathBuf,
    key: PathBuf,
    /// The CA whose client certificates (gateways) are accepted.
    client_ca: PathBuf,
}

pub fn run(config: &Path, log_format: Option<crate::common::LogFormat>) -> Result<()> {
    let file: TrusteeFile = load_toml(config)?;
    if !SealedKeystore::exists(&file.keystore_dir) {
        bail!(
            "no keystore in {}: create one with `obhut trustee init --dir {} --shares N --threshold K`",
            file.keystore_dir.display(),
            file.keystore_dir.display()
        );
    }
    init_tracing(
        file.log.as_deref().unwrap_or("info"),
        log_format.or(file.log_format).unwrap_or_default(),
        false,
    );
    runtime()?.block_on(serve(file))
}

async fn serve(file: TrusteeFile) -> Result<()> {
    let limits = obhut_listen::Limits::from_config(
        file.header_read_timeout_secs,
        file.idle_timeout_secs,
        file.max_connections,
    )?;
    let read = |what: &str, p: &Path| {
        fs::read(p).with_context(|| format!("cannot read {what} {}", p.display()))
    };
    // Read again on SIGHUP: renewing the certificate must not take a restart, after which
    // the trustee would be sealed until officers unseal it.
    let cert = obhut_listen::tls::ServerCert::load(&file.tls.cert, &file.tls.key)?;
    let tls =
        server::reloadable_tls_config(&read("the CA certificate", &file.tls.client_ca)?, &cert)?;
    let dir = &file.keystore_dir;
    let _lock = lock_dir(dir, "directory")?;
    let grace = std::time::Duration::from_secs(file.shred_grace_secs.unwrap_or(7 * 24 * 3600));
    let region = file
        .region
        .as_deref()
        .unwrap_or(obhut_trustee::DEFAULT_REGION);
    let trustee = Arc::new(
        Trustee::open(dir)?
            .with_shred_grace(grace)
            .with_max_retention(crate::config::retention_days(file.max_retention_days)?)
            .with_region(region)?,
    );
    match &file.dev_unseal_file {
        Some(path) => {
            let text = fs::read_to_string(path).with_context(|| {
                format!("cannot read the development share file {}", path.display())
            })?;
            dev_unseal(&trustee, path, &text).await?;
        }
        None => tracing::warn!(
            "the trustee is sealed: no key is released until officers give enough shares with `obhut trustee unseal`"
        ),
    }
    let workers = Workers::new();
    spawn_destruction_timer(&workers, Arc::clone(&trustee));
    // Pushes a disconnect to every gateway and logs each one's acknowledgement.
    let app = server::router_logging_acks(&trustee)?;
    let listen = file.listen.unwrap_or_else(|| "127.0.0.1:9100".into());
    let listener = TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen} for the trustee API"))?;
    tracing::info!(listen = %listen, keystore = %dir.display(), "the trustee API is serving (mutual TLS)");
    let certs = crate::tls::ListenerCerts {
        trustee: Some(cert),
        ..crate::tls::ListenerCerts::default()
    };
    certs.log_serving();
    certs.reload_on_sighup();
    server::serve(listener, tls, app, limits, shutdown_signal()).await;
    workers.stop();
    tracing::info!("stopped");
    Ok(())
}

/// Gives the shares in `text`, one a line, read from the development share file `path`, and
/// says so loudly: anyone who can read that file holds the master key.
pub(crate) async fn dev_unseal(trustee: &Trustee, path: &Path, text: &str) -> Result<()> {
    for share in text.lines().filter(|l| !l.trim().is_empty()) {
        trustee.unseal(share.trim()).await?;
    }
    let status = trustee.seal_status().await?;
    if status.sealed {
        bail!(
            "{} holds {} share(s) but the keystore needs {}",
            path.display(),
            status.shares_given,
            status.threshold
        );
    }
    tracing::warn!(
        "DEVELOPMENT MODE: the trustee unsealed itself from {}; anyone who can read that file holds the master key. A production trustee is unsealed by its officers (`obhut trustee unseal`).",
        path.display()
    );
    Ok(())
}

/// Destroys tenant keys whose crypto-shred grace period has ended: at start, then every minute,
/// as the worker `key-destruction`.
pub(crate) fn spawn_destruction_timer(workers: &Workers, trustee: Arc<Trustee>) {
    // Keys already due go before anything is served.
    if let Err(e) = trustee.destroy_due() {
        tracing::error!(error = %e, "could not destroy tenant keys that are due; retrying in a minute");
    }
    workers.spawn("key-destruction", move |worker| async move {
        while worker.sleep(std::time::Duration::from_secs(60)).await {
            let _run = worker.run();
            let due = Arc::clone(&trustee);
            if let Err(e) = obhut_trustee::run_blocking(move || due.destroy_due()).await {
                tracing::error!(error = %e, "could not destroy tenant keys that are due; retrying in a minute");
            }
        }
    });
}
