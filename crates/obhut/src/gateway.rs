//! `obhut gateway`: the S3 gateway and the admin API of one data directory, with the trustee
//! in another process (`obhut trustee`), reached over mutual TLS through
//! [`RemoteTrustee`].
//!
//! The data directory is laid out as `serve` lays it out (`catalog.db`, `sites/ID/`); the
//! gateway holds its exclusive lock, as `serve` does, because start-up orphan collection is
//! only safe with no other writer. It never opens a keystore: without the trustee's URL and
//! certificate material it refuses to start, and while the trustee is unreachable every
//! request that needs a key answers 503 naming the trustee.
//!
//! The helpers here that are not about the remote trustee (locking, sites, the S3 accept
//! loop, shutdown) are meant to be shared with `serve`.

use anyhow::{Context, Result, anyhow, bail};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use obhut_catalog::{Catalog, SqliteCatalog};
use obhut_core::SiteInfo;
use obhut_gateway::{Gateway, GatewayConfig, SiteSet};
use obhut_sites::{LocalSite, Site};
use obhut_trustee_client::TrusteeClient;
use obhut_trustee_client::remote::{RemoteTrustee, client_tls_config};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::fs::{self, File};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GatewayFile {
    data_dir: Option<PathBuf>,
    s3_addr: Option<String>,
    admin_addr: Option<String>,
    region: Option<String>,
    log: Option<String>,
    key_cache_ttl_secs: Option<u64>,
    shred_grace_secs: Option<u64>,
    trustee: Option<TrusteeSection>,
}

/// Where the trustee is and the certificate material to reach it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrusteeSection {
    url: String,
    /// The CA that signed the trustee's certificate (and ours).
    ca: PathBuf,
    /// This gateway's client certificate and key.
    cert: PathBuf,
    key: PathBuf,
}

/// `obhut gateway` settings, after defaults.
#[derive(Debug)]
pub struct GatewaySettings {
    pub data_dir: PathBuf,
    pub s3_addr: String,
    pub admin_addr: String,
    pub region: String,
    pub log: String,
    pub key_cache_ttl: Duration,
    pub shred_grace: Duration,
    pub trustee_url: String,
    pub trustee_ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

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

impl GatewaySettings {
    pub fn load(path: &Path) -> Result<Self> {
        let file: GatewayFile = load_toml(path)?;
        let Some(t) = file.trustee else {
            bail!(
                "{}: no [trustee] section: the gateway needs the trustee's url, ca, cert and key (made by `obhut trustee init-pki`)",
                path.display()
            );
        };
        Ok(Self {
            data_dir: file.data_dir.unwrap_or_else(|| PathBuf::from("obhut-data")),
            s3_addr: file.s3_addr.unwrap_or_else(|| "127.0.0.1:9000".into()),
            admin_addr: file.admin_addr.unwrap_or_else(|| "127.0.0.1:9001".into()),
            region: file.region.unwrap_or_else(|| "de-1".into()),
            log: file.log.unwrap_or_else(|| "info".into()),
            key_cache_ttl: Duration::from_secs(file.key_cache_ttl_secs.unwrap_or(300)),
            shred_grace: Duration::from_secs(file.shred_grace_secs.unwrap_or(7 * 24 * 3600)),
            trustee_url: t.url,
            trustee_ca: t.ca,
            client_cert: t.cert,
            client_key: t.key,
        })
    }
}

pub(crate) fn init_tracing(log: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(log)),
        )
        .with_target(false)
        .init();
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn run(config: &Path) -> Result<()> {
    let settings = GatewaySettings::load(config)?;
    // Checked before anything else starts: no certificate material, no gateway.
    let material = TrusteeMaterial::read(&settings)?;
    init_tracing(&settings.log);
    runtime()?.block_on(serve(settings, material))
}

/// The trustee's CA and this gateway's certificate and key, read and checked.
struct TrusteeMaterial {
    ca: Vec<u8>,
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl TrusteeMaterial {
    fn read(s: &GatewaySettings) -> Result<Self> {
        let read = |what: &str, p: &Path| {
            fs::read(p).with_context(|| {
                format!(
                    "the gateway cannot start without the trustee's certificate material: cannot read {what} {}",
                    p.display()
                )
            })
        };
        let m = Self {
            ca: read("the trustee CA certificate", &s.trustee_ca)?,
            cert: read("the gateway certificate", &s.client_cert)?,
            key: read("the gateway private key", &s.client_key)?,
        };
        client_tls_config(&m.ca, &m.cert, &m.key).map_err(|e| {
            anyhow!("the gateway cannot start without usable trustee certificate material: {e}")
        })?;
        Ok(m)
    }
}

/// Takes the exclusive lock of a data directory, creating it (mode 0700) if needed.
pub(crate) fn lock_dir(dir: &Path) -> Result<File> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create directory {}", dir.display()))?;
    }
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))
        .with_context(|| format!("cannot open lock file in {}", dir.display()))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => {
            bail!("another obhut process is using {}", dir.display())
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", dir.display()))
        }
    }
}

/// The sites registered in the catalog (local directories in this build).
pub(crate) async fn open_sites(catalog: &dyn Catalog) -> Result<SiteSet> {
    let mut sites: Vec<(SiteInfo, Arc<dyn Site>)> = Vec::new();
    for rec in catalog.list_sites().await? {
        let Some(root) = rec.backend.get("fs").and_then(|v| v.as_str()) else {
            bail!("site {} has a backend this build cannot open", rec.id);
        };
        let site = LocalSite::open(rec.id.clone(), PathBuf::from(root))
            .with_context(|| format!("cannot open site {}", rec.id))?;
        sites.push((
            SiteInfo {
                id: rec.id,
                jurisdiction: rec.jurisdiction,
                location: rec.location,
                state: rec.state,
            },
            Arc::new(site),
        ));
    }
    Ok(SiteSet::new(sites))
}

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

/// What the S3 front and the admin API need, whichever trustee serves them.
pub(crate) struct Front {
    pub catalog: Arc<dyn Catalog>,
    pub sites: SiteSet,
    pub trustee: Arc<dyn TrusteeClient>,
    pub s3_addr: String,
    pub admin_addr: String,
    pub region: String,
    pub key_cache_ttl: Duration,
    pub shred_grace: Duration,
}

/// Runs the S3 gateway and the admin API until SIGTERM or Ctrl-C. The caller holds the data
/// directory's lock (orphan collection at start relies on it).
pub(crate) async fn serve_front(front: Front, data_dir: &Path) -> Result<()> {
    let gateway = Gateway::new(
        Arc::clone(&front.catalog),
        front.sites,
        Arc::clone(&front.trustee),
        GatewayConfig {
            region: front.region.clone(),
            key_cache_ttl: front.key_cache_ttl,
        },
    );
    match gateway.collect_orphans().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "collected orphan blobs"),
        Err(e) => tracing::warn!(error = %e, "orphan collection failed; will retry at next start"),
    }
    let s3_listener = TcpListener::bind(&front.s3_addr)
        .await
        .with_context(|| format!("cannot listen on {} for S3", front.s3_addr))?;
    let admin_listener = TcpListener::bind(&front.admin_addr)
        .await
        .with_context(|| format!("cannot listen on {} for the admin API", front.admin_addr))?;
    tracing::info!(s3 = %front.s3_addr, admin = %front.admin_addr, data_dir = %data_dir.display(), "obhut is serving");

    let (stop_tx, stop_rx) = watch::channel(false);
    let admin = obhut_admin::router(obhut_admin::AdminState {
        catalog: front.catalog,
        trustee: Some(front.trustee),
        shred_grace: front.shred_grace,
        gateway: Some(gateway.clone()),
        jobs: obhut_admin::Jobs::default(),
    });
    let s3_task = tokio::spawn(serve_s3(
        s3_listener,
        gateway.into_service(),
        stop_rx.clone(),
    ));
    let mut admin_stop = stop_rx;
    let admin_task = tokio::spawn(async move {
        axum::serve(admin_listener, admin)
            .with_graceful_shutdown(async move {
                let _ = admin_stop.wait_for(|s| *s).await;
            })
            .await
    });

    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(15), async {
        let _ = s3_task.await;
        let _ = admin_task.await;
    })
    .await;
    tracing::info!("stopped");
    Ok(())
}

async fn serve_s3(
    listener: TcpListener,
    service: obhut_gateway::S3Front,
    mut stop: watch::Receiver<bool>,
) {
    let http = ConnBuilder::new(TokioExecutor::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let socket = tokio::select! {
            res = listener.accept() => match res {
                Ok((socket, _)) => socket,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        let conn = http.serve_connection(TokioIo::new(socket), service.clone());
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    graceful.shutdown().await;
}

async fn serve(s: GatewaySettings, material: TrusteeMaterial) -> Result<()> {
    let catalog_path = s.data_dir.join("catalog.db");
    if !catalog_path.exists() {
        bail!(
            "no catalog at {}: create the data directory with `obhut serve --data-dir {}` once (it lays out the catalog and sites), then stop it",
            catalog_path.display(),
            s.data_dir.display()
        );
    }
    let _lock = lock_dir(&s.data_dir)?;
    let catalog: Arc<dyn Catalog> =
        Arc::new(SqliteCatalog::open(&catalog_path).context("cannot open the catalog")?);
    let sites = open_sites(catalog.as_ref()).await?;
    let remote =
        RemoteTrustee::connect(&s.trustee_url, &material.ca, &material.cert, &material.key)
            .context("cannot set up the trustee client")?;
    match remote.seal_status().await {
        Ok(st) if st.sealed => tracing::warn!(
            trustee = %s.trustee_url,
            "the trustee is sealed ({} of {} shares given): requests that need a key answer 503 until officers unseal it",
            st.shares_given,
            st.threshold
        ),
        Ok(_) => tracing::info!(trustee = %s.trustee_url, "the trustee answers and is unsealed"),
        Err(e) => tracing::warn!(
            "{e}; requests that need a key answer 503 until the trustee can be reached"
        ),
    }
    let trustee: Arc<dyn TrusteeClient> = Arc::new(remote);
    serve_front(
        Front {
            catalog,
            sites,
            trustee,
            s3_addr: s.s3_addr,
            admin_addr: s.admin_addr,
            region: s.region,
            key_cache_ttl: s.key_cache_ttl,
            shred_grace: s.shred_grace,
        },
        &s.data_dir,
    )
    .await
}
