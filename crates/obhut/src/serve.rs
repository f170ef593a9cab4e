//! `obhut serve`: catalog, two local sites, gateway and admin API in one process.
//!
//! On first start it registers the sites `de-fra` and `de-mgd`, creates tenant `demo` and the
//! development principals, and writes `demo.env` and `dev-tokens.env` (mode 0600). It holds an
//! exclusive lock on the data directory, which is what makes start-up orphan collection safe.

use crate::ServeArgs;
use crate::config::Pkcs11Config;
use crate::config::ServeConfig;
use anyhow::{Context, Result, bail};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use obhut_admin::provision;
use obhut_catalog::{Catalog, Role, SiteRecord, SqliteCatalog};
use obhut_core::{SiteInfo, SiteState};
use obhut_gateway::{Gateway, GatewayConfig, SiteSet};
use obhut_sites::{LocalSite, Site};
use obhut_trustee::{Pkcs11Location, SealedKeystore, Trustee};
use obhut_trustee_client::TrusteeClient;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

const DEV_SITES: [(&str, &str); 2] = [("de-fra", "Frankfurt am Main"), ("de-mgd", "Magdeburg")];

pub fn run(args: ServeArgs) -> Result<()> {
    let config = ServeConfig::resolve(&args)?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log)),
        )
        .with_target(false)
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(serve(config))
}

fn lock_data_dir(dir: &Path) -> Result<File> {
    if !dir.exists() {
        // The catalog holds S3 secrets: the directory is the owner's alone.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create data directory {}", dir.display()))?;
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

/// Writes `contents` to `path` with mode 0600, atomically.
pub(crate) fn write_secret_file(path: &Path, contents: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn http_url(addr: &str) -> String {
    format!("http://{addr}")
}

/// First start: sites, tenant `demo`, development principals and the two env files.
async fn bootstrap(catalog: &dyn Catalog, config: &ServeConfig, data_dir: &Path) -> Result<()> {
    if catalog.list_sites().await?.is_empty() {
        for (id, location) in DEV_SITES {
            let root = data_dir.join("sites").join(id);
            catalog
                .put_site(&SiteRecord {
                    id: id.into(),
                    jurisdiction: "DE".into(),
                    location: location.into(),
                    state: SiteState::Active,
                    backend: serde_json::json!({ "fs": root }),
                })
                .await?;
        }
    }
    if catalog.get_tenant("demo").await?.is_some() {
        return Ok(());
    }
    provision::create_tenant(catalog, "demo", &["DE".to_owned()], 2).await?;
    let key = provision::create_access_key(catalog, "demo").await?;
    write_secret_file(
        &data_dir.join("demo.env"),
        &format!(
            "AWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\nAWS_ENDPOINT_URL={}\nAWS_REGION={}\n",
            key.access_key_id,
            key.secret,
            http_url(&config.s3_addr),
            config.region
        ),
    )?;
    let mut tokens = format!("OBHUT_ADMIN_URL={}\n", http_url(&config.admin_addr));
    for (var, name, role, tenant) in [
        ("OBHUT_OFFICER1_TOKEN", "officer1", Role::Officer, None),
        ("OBHUT_OFFICER2_TOKEN", "officer2", Role::Officer, None),
        ("OBHUT_OPERATOR_TOKEN", "operator", Role::Operator, None),
        ("OBHUT_AUDITOR_TOKEN", "auditor", Role::Auditor, None),
        (
            "OBHUT_DEMO_ADMIN_TOKEN",
            "demo-admin",
            Role::TenantAdmin,
            Some("demo"),
        ),
    ] {
        let token = provision::create_principal(catalog, name, role, tenant).await?;
        tokens.push_str(&format!("{var}={token}\n"));
    }
    write_secret_file(&data_dir.join("dev-tokens.env"), &tokens)?;
    tracing::warn!(
        "first start: created tenant demo and development principals; credentials are in {} and {} (mode 0600)",
        data_dir.join("demo.env").display(),
        data_dir.join("dev-tokens.env").display()
    );
    Ok(())
}

/// The in-process trustee of `serve`: created on first start with a 2-of-3 sealed keystore,
/// and unsealed from a development share file, which is only acceptable on a developer machine.
async fn dev_trustee(dir: &Path) -> Result<Trustee> {
    let share_file = dir.join("dev-unseal-shares");
    if !SealedKeystore::exists(dir) {
        create_private_dir(dir)?;
        let shares = SealedKeystore::init(dir, 3, 2)?;
        write_secret_file(&share_file, &format!("{}\n", shares[..2].join("\n")))?;
    }
    let trustee = Trustee::open(dir)?;
    match fs::read_to_string(&share_file) {
        Ok(text) => {
            for share in text.lines().filter(|l| !l.trim().is_empty()) {
                trustee.unseal(share).await?;
            }
            let status = trustee.seal_status().await?;
            if status.sealed {
                bail!(
                    "{} holds {} share(s) but the keystore needs {}",
                    share_file.display(),
                    status.shares_given,
                    status.threshold
                );
            }
            tracing::warn!(
                "DEVELOPMENT MODE: the trustee unsealed itself from {}; anyone who can read that file holds the master key. A production trustee is unsealed by its officers (`obhut trustee unseal`).",
                share_file.display()
            );
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(
                "the trustee is sealed: no reads or writes until officers give enough shares with `obhut trustee unseal`"
            );
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", share_file.display())),
    }
    Ok(trustee)
}

/// Destroys tenant keys whose crypto-shred grace period has ended: at start, then every minute.
fn spawn_destruction_timer(trustee: Arc<Trustee>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            if let Err(e) = trustee.destroy_due() {
                tracing::error!(error = %e, "could not destroy tenant keys that are due; retrying in a minute");
            }
        }
    });
}

/// The in-process trustee with tenant keys in a PKCS#11 token.
async fn hsm_trustee(dir: &Path, hsm: &Pkcs11Config) -> Result<Trustee> {
    if !SealedKeystore::exists(dir) {
        create_private_dir(dir)?;
        SealedKeystore::init_pkcs11(
            dir,
            Pkcs11Location {
                module: hsm.module.clone(),
                token: hsm.token.clone(),
            },
        )?;
    }
    let trustee = Trustee::open(dir)?;
    match &hsm.pin_file {
        Some(pin_file) => {
            let pin = fs::read_to_string(pin_file)
                .with_context(|| format!("cannot read the PIN file {}", pin_file.display()))?;
            trustee
                .unseal(pin.trim())
                .await
                .with_context(|| format!("cannot log in to PKCS#11 token {}", hsm.token))?;
            tracing::warn!(
                "DEVELOPMENT MODE: the trustee logged in to PKCS#11 token {} with the PIN from {}; a production trustee is unsealed by an officer (`obhut trustee unseal`).",
                hsm.token,
                pin_file.display()
            );
        }
        None => tracing::warn!(
            "the trustee is sealed: an officer logs it in to the PKCS#11 token with `obhut trustee unseal`"
        ),
    }
    Ok(trustee)
}

fn create_private_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

async fn open_sites(catalog: &dyn Catalog) -> Result<SiteSet> {
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

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
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
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

async fn serve(config: ServeConfig) -> Result<()> {
    let data_dir = config.data_dir.clone();
    let _lock = lock_data_dir(&data_dir)?;
    let catalog: Arc<dyn Catalog> = Arc::new(
        SqliteCatalog::open(&data_dir.join("catalog.db")).context("cannot open the catalog")?,
    );
    bootstrap(catalog.as_ref(), &config, &data_dir).await?;
    let sites = open_sites(catalog.as_ref()).await?;
    let trustee_dir = data_dir.join("trustee");
    let in_process = Arc::new(match &config.pkcs11 {
        Some(hsm) => hsm_trustee(&trustee_dir, hsm).await?,
        None => dev_trustee(&trustee_dir).await?,
    });
    spawn_destruction_timer(Arc::clone(&in_process));
    let trustee: Arc<dyn TrusteeClient> = in_process;
    let gateway = Gateway::new(
        Arc::clone(&catalog),
        sites,
        Arc::clone(&trustee),
        GatewayConfig {
            region: config.region.clone(),
            key_cache_ttl: config.key_cache_ttl,
        },
    );
    match gateway.collect_orphans().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "collected orphan blobs"),
        Err(e) => tracing::warn!(error = %e, "orphan collection failed; will retry at next start"),
    }

    let s3_listener = TcpListener::bind(&config.s3_addr)
        .await
        .with_context(|| format!("cannot listen on {} for S3", config.s3_addr))?;
    let admin_listener = TcpListener::bind(&config.admin_addr)
        .await
        .with_context(|| format!("cannot listen on {} for the admin API", config.admin_addr))?;
    tracing::info!(s3 = %config.s3_addr, admin = %config.admin_addr, data_dir = %data_dir.display(), "obhut is serving");

    let (stop_tx, stop_rx) = watch::channel(false);
    let s3_task = tokio::spawn(serve_s3(
        s3_listener,
        gateway.clone().into_service(),
        stop_rx.clone(),
    ));
    let admin = obhut_admin::router(obhut_admin::AdminState {
        catalog: Arc::clone(&catalog),
        trustee: Some(trustee),
        shred_grace: config.shred_grace,
        gateway: Some(gateway),
        jobs: obhut_admin::Jobs::default(),
    });
    let mut admin_stop = stop_rx.clone();
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
    let _ = tokio::time::timeout(std::time::Duration::from_secs(15), async {
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
