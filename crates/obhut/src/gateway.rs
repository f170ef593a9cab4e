//! `obhut gateway`: the S3 gateway and the admin API of one data directory, with the trustee
//! in another process (`obhut trustee`), reached over mutual TLS through
//! [`RemoteTrustee`].
//!
//! The data directory is laid out as `serve` lays it out (`catalog.db`, `sites/ID/`); with
//! that embedded catalog the gateway holds the directory's exclusive lock, as `serve` does,
//! because start-up orphan collection is only safe with no other writer. With a catalog on
//! PostgreSQL (`catalog = "postgres://…"`, `--catalog`) any number of gateways share it: none
//! takes the lock and none collects orphans at start. It never opens a keystore: without the
//! trustee's URL and certificate material it refuses to start, and while the trustee is
//! unreachable every request that needs a key answers 503 naming the trustee.
//!
//! What is not about the remote trustee (locking, sites, the S3 and admin listeners,
//! shutdown) is shared with `serve`, in `common` and `front`.

use crate::catalog_location::{self, CatalogLocation};
use crate::common::{init_tracing, load_toml, lock_dir, private_umask, runtime};
use crate::front::{Front, open_sites, serve_front};
use crate::tls::{ListenerCerts, TlsFiles};
use anyhow::{Context, Result, anyhow, bail};
use obhut_trustee_client::TrusteeClient;
use obhut_trustee_client::remote::{RemoteTrustee, client_tls_config};
use serde::Deserialize;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GatewayFile {
    data_dir: Option<PathBuf>,
    s3_addr: Option<String>,
    admin_addr: Option<String>,
    region: Option<String>,
    log: Option<String>,
    log_format: Option<crate::common::LogFormat>,
    access_log: Option<bool>,
    metrics: Option<bool>,
    metrics_history_interval_secs: Option<u64>,
    key_cache_ttl_secs: Option<u64>,
    scrub_bytes_per_sec: Option<u64>,
    scrub_interval_secs: Option<u64>,
    lifecycle_day_secs: Option<u64>,
    lifecycle_interval_secs: Option<u64>,
    header_read_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    s3_tls_cert: Option<PathBuf>,
    s3_tls_key: Option<PathBuf>,
    admin_tls_cert: Option<PathBuf>,
    admin_tls_key: Option<PathBuf>,
    catalog: Option<String>,
    catalog_password_file: Option<PathBuf>,
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
    pub log_format: crate::common::LogFormat,
    /// One line per S3 request (config `access_log`, default false).
    pub access_log: bool,
    pub metrics: bool,
    /// How often the history behind the operator's charts is sampled.
    pub metrics_history_interval: Duration,
    pub key_cache_ttl: Duration,
    pub scrub_bytes_per_sec: u64,
    pub scrub_interval: Duration,
    /// The length of a lifecycle day and the pause between lifecycle runs, if configured.
    pub lifecycle_day: Option<Duration>,
    pub lifecycle_every: Option<Duration>,
    pub limits: obhut_listen::Limits,
    /// TLS on the S3 and on the admin listener (`None`: plain HTTP).
    pub s3_tls: Option<TlsFiles>,
    pub admin_tls: Option<TlsFiles>,
    pub trustee_url: String,
    pub trustee_ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// The catalog on PostgreSQL (`None`: `catalog.db` in the data directory).
    pub catalog: Option<String>,
    pub catalog_password_file: Option<PathBuf>,
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
            log_format: file.log_format.unwrap_or_default(),
            access_log: file.access_log.unwrap_or(false),
            metrics: file.metrics.unwrap_or(true),
            metrics_history_interval: crate::config::history_interval(
                file.metrics_history_interval_secs,
            )?,
            key_cache_ttl: Duration::from_secs(file.key_cache_ttl_secs.unwrap_or(300)),
            scrub_bytes_per_sec: file
                .scrub_bytes_per_sec
                .unwrap_or(crate::config::DEFAULT_SCRUB_BYTES_PER_SEC),
            scrub_interval: Duration::from_secs(
                file.scrub_interval_secs
                    .unwrap_or(crate::config::DEFAULT_SCRUB_INTERVAL_SECS),
            ),
            lifecycle_day: file.lifecycle_day_secs.map(Duration::from_secs),
            lifecycle_every: file.lifecycle_interval_secs.map(Duration::from_secs),
            limits: obhut_listen::Limits::from_config(
                file.header_read_timeout_secs,
                file.idle_timeout_secs,
                file.max_connections,
            )?,
            s3_tls: TlsFiles::pair("s3", file.s3_tls_cert, file.s3_tls_key)?,
            admin_tls: TlsFiles::pair("admin", file.admin_tls_cert, file.admin_tls_key)?,
            trustee_url: t.url,
            trustee_ca: t.ca,
            client_cert: t.cert,
            client_key: t.key,
            catalog: file.catalog,
            catalog_password_file: file.catalog_password_file,
        })
    }
}

pub fn run(
    config: &Path,
    catalog: &crate::CatalogArgs,
    log_format: Option<crate::common::LogFormat>,
) -> Result<()> {
    let mut settings = GatewaySettings::load(config)?;
    if catalog.catalog.is_some() {
        settings.catalog.clone_from(&catalog.catalog);
    }
    if catalog.catalog_password_file.is_some() {
        settings
            .catalog_password_file
            .clone_from(&catalog.catalog_password_file);
    }
    // Checked before anything else starts: no certificate material, no gateway.
    let material = TrusteeMaterial::read(&settings)?;
    // And none for a TLS listener either.
    let certs = ListenerCerts::load(settings.s3_tls.as_ref(), settings.admin_tls.as_ref())?;
    let location = CatalogLocation::parse(
        settings.catalog.as_deref(),
        settings.catalog_password_file.as_deref(),
    )?;
    init_tracing(
        &settings.log,
        log_format.unwrap_or(settings.log_format),
        settings.access_log,
    );
    obhut_metrics::set_enabled(settings.metrics);
    if settings.metrics {
        obhut_metrics::history::start(settings.metrics_history_interval)
            .context("cannot start the metrics history")?;
    }
    runtime()?.block_on(serve(settings, material, certs, location))
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

async fn serve(
    s: GatewaySettings,
    material: TrusteeMaterial,
    certs: ListenerCerts,
    location: CatalogLocation,
) -> Result<()> {
    let catalog_path = s.data_dir.join("catalog.db");
    let shared = matches!(location, CatalogLocation::Postgres(_));
    let _lock = if shared {
        // Several gateways share the catalog: no lock of the data directory, but what this
        // process creates there is still its owner's alone.
        private_umask();
        None
    } else {
        if !catalog_path.exists() {
            bail!(
                "no catalog at {}: create the data directory with `obhut serve --data-dir {}` once (it lays out the catalog and sites), then stop it",
                catalog_path.display(),
                s.data_dir.display()
            );
        }
        Some(lock_dir(&s.data_dir, "directory")?)
    };
    let (catalog, shown) = catalog_location::open(&location, &s.data_dir).await?;
    if shared {
        tracing::info!(catalog = %shown, "the catalog is on PostgreSQL, shared with other gateways");
    }
    let legacy = catalog.legacy_access_keys().await?.len();
    if legacy > 0 {
        bail!(
            "{} holds {legacy} S3 access keys in clear, written by an earlier release: start `obhut serve --data-dir {}` once (its trustee takes them into custody), or erase them with `obhut catalog erase-legacy-keys --data-dir {}` after tenants made new ones",
            catalog_path.display(),
            s.data_dir.display(),
            s.data_dir.display()
        );
    }
    // The gateway acknowledges revocations under its S3 address, which the trustee's log
    // then names (`gateway_acknowledged`, `gateway_ack_missing`).
    let follower = obhut_trustee_client::remote::Follower {
        name: s.s3_addr.clone(),
        ignore_revocations: std::env::var(
            obhut_trustee_client::remote::DRILL_IGNORE_REVOCATIONS_ENV,
        )
        .is_ok_and(|v| v == "1"),
    };
    let remote = RemoteTrustee::connect_as(
        &s.trustee_url,
        &material.ca,
        &material.cert,
        &material.key,
        &follower,
    )
    .context("cannot set up the trustee client")?;
    let (sites, sites_applied) = open_sites(catalog.as_ref(), &remote).await?;
    match remote.seal_status().await {
        Ok(st) if st.sealed => tracing::warn!(
            trustee = %s.trustee_url,
            "the trustee is sealed ({} of {} shares given): requests that need a key answer 503 until officers unseal it",
            st.shares_given,
            st.threshold
        ),
        Ok(st) if st.disconnected => tracing::warn!(
            trustee = %s.trustee_url,
            "the trustee's officers have disconnected the provider: every tenant request answers 503 until they reconnect it"
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
            sites_applied,
            trustee,
            s3_addr: s.s3_addr,
            admin_addr: s.admin_addr,
            region: s.region,
            key_cache_ttl: s.key_cache_ttl,
            scrub_bytes_per_sec: s.scrub_bytes_per_sec,
            scrub_interval: s.scrub_interval,
            lifecycle_day: s.lifecycle_day,
            lifecycle_every: s.lifecycle_every,
            workers: obhut_maintenance::Workers::new(),
            limits: s.limits,
            certs,
            collect_orphans_at_start: !shared,
            log_checkpoint: None,
        },
        &s.data_dir,
    )
    .await
}
