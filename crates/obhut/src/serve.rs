//! `obhut serve`: catalog, two local sites, gateway and admin API in one process.
//!
//! On first start it registers the sites `de-fra` and `de-mgd`, creates tenant `demo` and the
//! development principals, and writes `demo.env` and `dev-tokens.env` (mode 0600). It holds an
//! exclusive lock on the data directory, which is what makes start-up orphan collection safe.

use crate::ServeArgs;
use crate::catalog_location::{self, CatalogLocation};
use crate::common::{init_tracing, lock_dir, runtime};
use crate::config::Pkcs11Config;
use crate::config::ServeConfig;
use crate::front::{Front, open_sites, serve_front};
use crate::tls::ListenerCerts;
use crate::trustee_serve::{dev_unseal, spawn_destruction_timer};
use anyhow::{Context, Result, bail};
use obhut_admin::provision;
use obhut_catalog::{Catalog, SiteRecord};
use obhut_core::SiteState;
use obhut_crypto::principal::PrincipalCredential;
use obhut_maintenance::Workers;
use obhut_sites::LocalSite;
use obhut_trustee::{Pkcs11Location, SealedKeystore, Trustee};
use obhut_trustee_client::{Role, TrusteeClient, TrusteeError};
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::Arc;

const DEV_SITES: [(&str, &str); 2] = [("de-fra", "Frankfurt am Main"), ("de-mgd", "Magdeburg")];

pub fn run(args: ServeArgs) -> Result<()> {
    let config = ServeConfig::resolve(&args)?;
    init_tracing(&config.log, config.log_format, config.access_log);
    obhut_metrics::set_enabled(config.metrics);
    if config.metrics {
        obhut_metrics::history::start(config.metrics_history_interval)
            .context("cannot start the metrics history")?;
    }
    runtime()?.block_on(serve(config))
}

/// Writes `contents` to `path` with mode 0600, atomically and durably.
pub(crate) fn write_secret_file(path: &Path, contents: &str) -> Result<()> {
    obhut_trustee::write_private_file(path, contents.as_bytes(), 0o600)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The URL clients reach a listener at.
fn listener_url(addr: &str, tls: bool) -> String {
    if tls {
        format!("https://{addr}")
    } else {
        format!("http://{addr}")
    }
}

/// What `demo.env` tells S3 clients about the listener: its URL and, with TLS, the CA bundle
/// to trust (none: the system's CAs).
fn demo_endpoint(config: &ServeConfig) -> [(&'static str, Option<String>); 2] {
    let tls = config.s3_tls.is_some();
    [
        ("AWS_ENDPOINT_URL", Some(listener_url(&config.s3_addr, tls))),
        ("AWS_CA_BUNDLE", ca_bundle_value(config, tls)),
    ]
}

/// The same for the admin commands, in `dev-tokens.env`.
fn admin_endpoint(config: &ServeConfig) -> [(&'static str, Option<String>); 2] {
    let tls = config.admin_tls.is_some();
    [
        (
            "OBHUT_ADMIN_URL",
            Some(listener_url(&config.admin_addr, tls)),
        ),
        ("OBHUT_CA_BUNDLE", ca_bundle_value(config, tls)),
    ]
}

fn ca_bundle_value(config: &ServeConfig, tls: bool) -> Option<String> {
    config
        .tls_ca_bundle
        .as_ref()
        .filter(|_| tls)
        .map(|p| p.display().to_string())
}

/// Brings the listener lines of an env file written at first start up to date with this
/// start's settings (TLS turned on or off, another address): each `KEY=` line of `settings`
/// is rewritten, dropped (`None`) or added; every other line stays. A missing file is left
/// missing.
fn refresh_env_file(path: &Path, settings: &[(&str, Option<String>)]) -> Result<()> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut seen = vec![false; settings.len()];
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let key = line.split_once('=').map(|(k, _)| k.trim());
        match settings.iter().position(|(k, _)| Some(*k) == key) {
            Some(i) => {
                seen[i] = true;
                if let Some(value) = &settings[i].1 {
                    out.push_str(&format!("{}={value}\n", settings[i].0));
                }
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    for (i, (key, value)) in settings.iter().enumerate() {
        if let (false, Some(value)) = (seen[i], value) {
            out.push_str(&format!("{key}={value}\n"));
        }
    }
    if out != text {
        write_secret_file(path, &out)?;
        tracing::info!(file = %path.display(), "updated the endpoint lines for this start's listeners");
    }
    Ok(())
}

/// A missing catalog next to sites that hold blobs means the catalog was lost or moved: starting
/// would register the sites afresh and collect every blob as an orphan. Refuse instead.
fn refuse_new_catalog_over_old_sites(data_dir: &Path) -> Result<()> {
    if data_dir.join("catalog.db").exists() {
        return Ok(());
    }
    if let Some(id) = site_with_blobs(data_dir) {
        bail!(
            "{} has no catalog.db but site {id} holds blobs; restore the catalog (or move the sites away) before starting",
            data_dir.display()
        );
    }
    Ok(())
}

/// The same for a catalog on PostgreSQL: one that registers no site while the data
/// directory's sites hold blobs is not this directory's catalog (or was never copied here).
async fn refuse_empty_catalog_over_old_sites(
    catalog: &dyn Catalog,
    shown: &str,
    data_dir: &Path,
) -> Result<()> {
    if !catalog.list_sites().await?.is_empty() {
        return Ok(());
    }
    if let Some(id) = site_with_blobs(data_dir) {
        bail!(
            "the catalog at {shown} registers no site but site {id} in {} holds blobs; copy the directory's catalog there first (`obhut catalog migrate --from {} --to {shown}`), or move the sites away",
            data_dir.display(),
            data_dir.display()
        );
    }
    Ok(())
}

/// A development site of `data_dir` that holds blobs, if any.
fn site_with_blobs(data_dir: &Path) -> Option<&'static str> {
    DEV_SITES.iter().map(|(id, _)| *id).find(|id| {
        let blobs = data_dir.join("sites").join(id).join("blobs");
        fs::read_dir(&blobs).is_ok_and(|mut shards| shards.next().is_some())
    })
}

/// First start: sites, tenant `demo`, development principals and the two env files.
async fn bootstrap(
    catalog: &dyn Catalog,
    trustee: &Trustee,
    config: &ServeConfig,
    data_dir: &Path,
) -> Result<()> {
    if catalog.list_sites().await?.is_empty() {
        for (id, location) in DEV_SITES {
            let root = data_dir.join("sites").join(id);
            let (_, identity) =
                LocalSite::create(id, &root).with_context(|| format!("cannot create site {id}"))?;
            trustee
                .bootstrap_site(id, "DE", location)
                .context("cannot log the new site")?;
            catalog
                .put_site(&SiteRecord {
                    id: id.into(),
                    jurisdiction: "DE".into(),
                    location: location.into(),
                    state: SiteState::Active,
                    backend: serde_json::json!({ "fs": root, "identity": identity }),
                })
                .await?;
        }
    }
    if catalog.get_tenant("demo").await?.is_some() {
        refresh_env_file(&data_dir.join("demo.env"), &demo_endpoint(config))?;
        refresh_env_file(&data_dir.join("dev-tokens.env"), &admin_endpoint(config))?;
        return Ok(());
    }
    let de = ["DE".to_owned()];
    match trustee.bootstrap_tenant("demo", &de, 2) {
        Ok(()) | Err(TrusteeError::Conflict(_)) => {}
        Err(e) => return Err(e).context("cannot register tenant demo with the trustee"),
    }
    provision::create_tenant(catalog, "demo", &de, 2).await?;
    // The trustee keeps the secret; it is written here once, for the developer.
    let (key_id, secret) = trustee
        .bootstrap_access_key("demo")
        .context("cannot create demo's access key")?;
    let [(_, endpoint), (_, s3_ca)] = demo_endpoint(config);
    let s3_ca = s3_ca.map(|ca| format!("AWS_CA_BUNDLE={ca}\n"));
    write_secret_file(
        &data_dir.join("demo.env"),
        &format!(
            // AWS_DEFAULT_REGION too: aws-cli v1 reads only that one, and signatures must
            // name this server's region.
            "AWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\nAWS_ENDPOINT_URL={}\nAWS_REGION={}\nAWS_DEFAULT_REGION={}\n{}",
            key_id,
            secret.as_str(),
            endpoint.unwrap_or_default(),
            config.region,
            config.region,
            s3_ca.unwrap_or_default()
        ),
    )?;
    let [(_, admin_url), (_, admin_ca)] = admin_endpoint(config);
    let mut tokens = format!("OBHUT_ADMIN_URL={}\n", admin_url.unwrap_or_default());
    if let Some(ca) = admin_ca {
        tokens.push_str(&format!("OBHUT_CA_BUNDLE={ca}\n"));
    }
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
        // The token is made here and only its derived bearer hash and public key are kept.
        let token = format!("obt_{}", obhut_core::random_token(43));
        let cred = PrincipalCredential::from_token(&token)
            .map_err(|e| anyhow::anyhow!("cannot derive a principal's keys: {e}"))?;
        let bearer_hash = obhut_crypto::principal::bearer_hash(cred.bearer());
        match trustee.bootstrap_principal(name, role, tenant, &bearer_hash, &cred.public_key()) {
            Ok(_) => {}
            // A first start cut short: the principal exists, and its token is lost with the
            // unwritten file. Replace nothing silently.
            Err(TrusteeError::Conflict(_)) => anyhow::bail!(
                "principal {name} exists in the trustee but {} was never written: this first start was interrupted; remove {} and start again",
                data_dir.join("dev-tokens.env").display(),
                data_dir.display()
            ),
            Err(e) => return Err(e).context("cannot enrol the development principals"),
        }
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
        Ok(text) => dev_unseal(&trustee, &share_file, &text).await?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(
                "the trustee is sealed: no reads or writes until officers give enough shares with `obhut trustee unseal`"
            );
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", share_file.display())),
    }
    Ok(trustee)
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

/// An earlier release kept S3 secret keys in the catalog, in clear. They move into the
/// trustee's custody (sealed), and are erased from the catalog's files; since whoever could
/// read the catalog could read them, their ids are reported (here and in the log) so that
/// tenants replace them.
///
/// This happens once: the trustee records that it was done (or that there was nothing to
/// take), and rows found in the catalog after that, which only someone writing into the
/// catalog by hand can have put there, are erased without being taken into custody.
async fn take_legacy_access_keys(catalog: &dyn Catalog, trustee: &Trustee) -> Result<()> {
    let legacy = catalog.legacy_access_keys().await?;
    if trustee.legacy_import_done()? {
        if !legacy.is_empty() {
            let ids: Vec<&str> = legacy.iter().map(|k| k.access_key_id.as_str()).collect();
            tracing::error!(
                keys = %ids.join(","),
                "catalog.db holds S3 access keys in clear although the keys of the earlier release were taken into the trustee's custody already: someone wrote them into the catalog; they are not taken into custody (they grant nothing) and are erased"
            );
        }
    } else if !legacy.is_empty() {
        if trustee.seal_status().await?.sealed {
            bail!(
                "catalog.db holds {} S3 access keys in clear, written by an earlier release; start once with the trustee unsealed (its development share file or PKCS#11 PIN file) so they move into its custody",
                legacy.len()
            );
        }
        let keys: Vec<_> = legacy
            .iter()
            .map(|k| {
                (
                    k.access_key_id.clone(),
                    k.tenant.clone(),
                    zeroize::Zeroizing::new(k.secret.clone()),
                )
            })
            .collect();
        trustee
            .import_access_keys(&keys)
            .context("cannot move the catalog's access keys into the trustee's custody")?;
        let ids: Vec<&str> = legacy.iter().map(|k| k.access_key_id.as_str()).collect();
        tracing::warn!(
            keys = %ids.join(","),
            "access keys an earlier release kept in the catalog in clear are now kept by the trustee; their secrets were readable by anyone who could read catalog.db: replace them (`obhut tenant key-create`, then `obhut tenant key-revoke`)"
        );
    }
    // Every start: a crash between the import and the erasure leaves nothing behind.
    catalog
        .erase_legacy_access_keys()
        .await
        .context("cannot erase the access keys from the catalog")?;
    // Only once they are erased: a start cut short before imports them again (idempotent).
    trustee
        .close_legacy_import()
        .context("cannot record in the trustee that the catalog's access keys were taken")?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

async fn serve(config: ServeConfig) -> Result<()> {
    // Before anything else: an unusable certificate or key stops the start.
    let certs = ListenerCerts::load(config.s3_tls.as_ref(), config.admin_tls.as_ref())?;
    let location = CatalogLocation::parse(
        config.catalog.as_deref(),
        config.catalog_password_file.as_deref(),
    )?;
    let _lock = lock_dir(&config.data_dir, "data directory")?;
    // Site roots are recorded in the catalog: absolute, so that starting from another working
    // directory can never open (or create) sites elsewhere.
    let data_dir = fs::canonicalize(&config.data_dir)
        .with_context(|| format!("cannot resolve {}", config.data_dir.display()))?;
    if matches!(location, CatalogLocation::Embedded) {
        refuse_new_catalog_over_old_sites(&data_dir)?;
    }
    let (catalog, shown) = catalog_location::open(&location, &data_dir).await?;
    if matches!(location, CatalogLocation::Postgres(_)) {
        refuse_empty_catalog_over_old_sites(catalog.as_ref(), &shown, &data_dir).await?;
        tracing::info!(catalog = %shown, "the catalog is on PostgreSQL");
    }
    let trustee_dir = data_dir.join("trustee");
    let in_process = Arc::new(
        match &config.pkcs11 {
            Some(hsm) => hsm_trustee(&trustee_dir, hsm).await?,
            None => dev_trustee(&trustee_dir).await?,
        }
        .with_shred_grace(config.shred_grace)
        .with_max_retention(config.max_retention)
        .with_region(&config.region)?,
    );
    take_legacy_access_keys(catalog.as_ref(), &in_process).await?;
    bootstrap(catalog.as_ref(), &in_process, &config, &data_dir).await?;
    let (sites, sites_applied) = open_sites(catalog.as_ref(), in_process.as_ref()).await?;
    let workers = Workers::new();
    spawn_destruction_timer(&workers, Arc::clone(&in_process));
    let trustee: Arc<dyn TrusteeClient> = in_process;
    // The trustee rewrites this file with the log's newest checkpoint after every append
    // (obhut-trustee's kept_checkpoint): its age is the age of the newest checkpoint.
    let log_checkpoint = Some(trustee_dir.join("log-checkpoint"));
    serve_front(
        Front {
            catalog,
            sites,
            sites_applied,
            trustee,
            s3_addr: config.s3_addr,
            admin_addr: config.admin_addr,
            region: config.region,
            key_cache_ttl: config.key_cache_ttl,
            scrub_bytes_per_sec: config.scrub_bytes_per_sec,
            scrub_interval: config.scrub_interval,
            lifecycle_day: config.lifecycle_day,
            lifecycle_every: config.lifecycle_every,
            workers,
            limits: config.limits,
            certs,
            collect_orphans_at_start: true,
            log_checkpoint,
        },
        &data_dir,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshing_an_env_file_rewrites_only_the_endpoint_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("demo.env");
        let before = "AWS_ACCESS_KEY_ID=k\nAWS_SECRET_ACCESS_KEY=s\nAWS_ENDPOINT_URL=http://127.0.0.1:9000\nAWS_REGION=de-1\n";
        fs::write(&path, before).expect("write");
        let tls = [
            (
                "AWS_ENDPOINT_URL",
                Some("https://127.0.0.1:9000".to_owned()),
            ),
            ("AWS_CA_BUNDLE", Some("/etc/obhut/ca.crt".to_owned())),
        ];
        refresh_env_file(&path, &tls).expect("refresh");
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            "AWS_ACCESS_KEY_ID=k\nAWS_SECRET_ACCESS_KEY=s\nAWS_ENDPOINT_URL=https://127.0.0.1:9000\nAWS_REGION=de-1\nAWS_CA_BUNDLE=/etc/obhut/ca.crt\n"
        );
        // TLS off again: the bundle line goes, the URL is plain again.
        let plain = [
            ("AWS_ENDPOINT_URL", Some("http://127.0.0.1:9000".to_owned())),
            ("AWS_CA_BUNDLE", None),
        ];
        refresh_env_file(&path, &plain).expect("refresh");
        assert_eq!(fs::read_to_string(&path).expect("read"), before);
        // A missing file stays missing.
        let gone = dir.path().join("dev-tokens.env");
        refresh_env_file(&gone, &plain).expect("refresh");
        assert!(!gone.exists());
    }
}
