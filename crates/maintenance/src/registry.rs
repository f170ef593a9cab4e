//! The site registry's backends: how a registered site is created and opened, whether it is a
//! local directory or a bucket on an S3-compatible cluster.
//!
//! A site's record in the catalog says where it is and carries the identity written into it
//! when it was created; every process reads the records again now and then
//! ([`refresh_sites`]), so a site added or changed through another process is used without a
//! restart; an S3 site's secret key is stored sealed by the trustee, through
//! [`SiteSecrets`], and opened only to reach the site. It must never log or return a site's
//! secret, and never holds the key that seals it.

use async_trait::async_trait;
use obhut_catalog::SiteRecord;
use obhut_core::SiteInfo;
use obhut_sites::{LocalSite, S3Site, S3SiteConfig, Site, SiteError};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// Seals and opens S3 sites' secret keys: the trustee does it, behind whatever client the
/// caller holds; the registry only carries the sealed form to and from the catalog.
#[async_trait]
pub trait SiteSecrets: Send + Sync {
    /// The sealed form of `secret`, bound to site `site`.
    async fn seal(&self, site: &str, secret: &str) -> Result<String, String>;
    /// The secret sealed as `sealed` for site `site`.
    async fn open(&self, site: &str, sealed: &str) -> Result<String, String>;
}

/// Why a new site could not be created.
#[derive(Debug, Error)]
pub enum CreateError {
    #[error("a site's directory must be an absolute path, not {0}")]
    RelativePath(PathBuf),
    #[error(transparent)]
    Site(#[from] SiteError),
    #[error("the trustee could not seal the site's secret: {0}")]
    Seal(String),
    /// The new site's directory and another site's, or the data directory, would share files.
    #[error(
        "a site's directory must not lie inside or contain {what}: {path} (resolved: {resolved}) {relation} {other}"
    )]
    Overlap {
        path: PathBuf,
        resolved: PathBuf,
        relation: &'static str,
        what: String,
        other: PathBuf,
    },
}

/// `path` with symlinks and `..` resolved as far as it exists (the rest, not yet created,
/// taken as written), so that two spellings of one directory compare equal.
#[must_use]
pub fn resolve_path(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut resolved = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                resolved.pop();
            }
            other => {
                resolved.push(other);
                if let Ok(real) = std::fs::canonicalize(&resolved) {
                    resolved = real;
                }
            }
        }
    }
    resolved
}

/// Refuses a new local site at `path` if, once resolved, it lies inside or contains one of
/// `reserved` (what each is, and its directory: the other sites' roots, the data directory):
/// two sites in one directory would count one disk twice, and a site over the data directory
/// would mix blobs with the databases (and their removal with the orphans').
pub fn check_fs_root(path: &Path, reserved: &[(String, PathBuf)]) -> Result<(), CreateError> {
    if !path.is_absolute() {
        return Err(CreateError::RelativePath(path.to_path_buf()));
    }
    let resolved = resolve_path(path);
    for (what, other) in reserved {
        let theirs = resolve_path(other);
        let relation = if resolved.starts_with(&theirs) {
            "lies inside"
        } else if theirs.starts_with(&resolved) {
            "contains"
        } else {
            continue;
        };
        return Err(CreateError::Overlap {
            path: path.to_path_buf(),
            resolved,
            relation,
            what: what.clone(),
            other: other.clone(),
        });
    }
    Ok(())
}

/// The root directory of a registered local site, if it is one.
#[must_use]
pub fn fs_root(rec: &SiteRecord) -> Option<PathBuf> {
    rec.backend
        .get("fs")
        .and_then(Value::as_str)
        .map(PathBuf::from)
}

/// Where a new site is, as an officer gives it.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SiteSpec {
    /// A local directory (an absolute path; a mounted disk).
    Fs { path: PathBuf },
    /// A bucket on an S3-compatible cluster.
    S3 {
        endpoint: String,
        bucket: String,
        #[serde(default = "default_region")]
        region: String,
        access_key: String,
        secret_key: String,
        /// CA certificates (PEM) trusted for an `https` endpoint besides the system's: a
        /// cluster behind a TLS terminator with a private CA. Stored in the site's record (a
        /// CA certificate is public), so that every gateway sharing the registry uses it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ca_pem: Option<String>,
    },
}

/// How a CA bundle is named in a backend's description (and so in the signed statement that
/// adds or moves a site, and in the log): the first 16 hex digits of the SHA-256 of its PEM.
#[must_use]
pub fn ca_fingerprint(pem: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(pem.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{}", &hex[..16])
}

/// The description of an S3 backend, the same for a spec and for the record made of it.
fn describe_s3(endpoint: &str, bucket: &str, access_key: &str, ca_pem: Option<&str>) -> String {
    let mut out = format!(
        "s3:{}/{bucket} as {access_key}",
        endpoint.trim_end_matches('/')
    );
    if let Some(pem) = ca_pem {
        out.push_str(&format!(", CA {}", ca_fingerprint(pem)));
    }
    out
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

impl std::fmt::Debug for SiteSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl SiteSpec {
    /// A description without secrets: what the registry shows and the log records.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Fs { path } => format!("fs:{}", path.display()),
            Self::S3 {
                endpoint,
                bucket,
                access_key,
                ca_pem,
                ..
            } => describe_s3(endpoint, bucket, access_key, ca_pem.as_deref()),
        }
    }
}

/// Creates the site (its identity file or object) and returns it with the backend record to
/// store in the catalog (the S3 secret sealed by the trustee).
pub async fn create_site(
    id: &str,
    spec: &SiteSpec,
    secrets: &dyn SiteSecrets,
) -> Result<(Arc<dyn Site>, Value), CreateError> {
    match spec {
        SiteSpec::Fs { path } => {
            if !path.is_absolute() {
                return Err(CreateError::RelativePath(path.clone()));
            }
            let (site, identity) = LocalSite::create(id, path)?;
            Ok((Arc::new(site), json!({ "fs": path, "identity": identity })))
        }
        SiteSpec::S3 {
            endpoint,
            bucket,
            region,
            access_key,
            secret_key,
            ca_pem,
        } => {
            let mut config = S3SiteConfig::new(
                endpoint.clone(),
                bucket.clone(),
                region.clone(),
                access_key.clone(),
                secret_key.clone(),
            );
            config.ca_pem.clone_from(ca_pem);
            let (site, identity) = S3Site::create(id, config).await?;
            let sealed = secrets
                .seal(id, secret_key)
                .await
                .map_err(CreateError::Seal)?;
            Ok((
                Arc::new(site),
                s3_record(
                    endpoint,
                    bucket,
                    region,
                    access_key,
                    &sealed,
                    ca_pem.as_deref(),
                    &identity,
                ),
            ))
        }
    }
}

/// Opens the registered site `id` (whose identity is `identity`) where `spec` says it is now:
/// a moved disk, a new endpoint, bucket or credentials. Nothing is created or written: the site
/// found there must be the same one (its identity object or file), or this fails with
/// [`SiteError::Identity`]. Returns the site and the backend record to store in the catalog in
/// place of the old one (the S3 secret sealed by the trustee).
pub async fn move_site(
    id: &str,
    identity: &str,
    spec: &SiteSpec,
    secrets: &dyn SiteSecrets,
) -> Result<(Arc<dyn Site>, Value), CreateError> {
    match spec {
        SiteSpec::Fs { path } => {
            if !path.is_absolute() {
                return Err(CreateError::RelativePath(path.clone()));
            }
            let site = LocalSite::open(id, path.clone(), identity)?;
            Ok((Arc::new(site), json!({ "fs": path, "identity": identity })))
        }
        SiteSpec::S3 {
            endpoint,
            bucket,
            region,
            access_key,
            secret_key,
            ca_pem,
        } => {
            let mut config = S3SiteConfig::new(
                endpoint.clone(),
                bucket.clone(),
                region.clone(),
                access_key.clone(),
                secret_key.clone(),
            );
            config.ca_pem.clone_from(ca_pem);
            let site = S3Site::open(id, config, identity).await?;
            let sealed = secrets
                .seal(id, secret_key)
                .await
                .map_err(CreateError::Seal)?;
            Ok((
                Arc::new(site),
                s3_record(
                    endpoint,
                    bucket,
                    region,
                    access_key,
                    &sealed,
                    ca_pem.as_deref(),
                    identity,
                ),
            ))
        }
    }
}

/// The backend record of an S3 site (the secret sealed); `ca_pem` only where one was given, so
/// that records without one stay as releases before CA bundles wrote them.
fn s3_record(
    endpoint: &str,
    bucket: &str,
    region: &str,
    access_key: &str,
    sealed: &str,
    ca_pem: Option<&str>,
    identity: &str,
) -> Value {
    let mut s3 = json!({"endpoint": endpoint, "bucket": bucket, "region": region,
                        "access_key": access_key, "secret_sealed": sealed});
    if let Some(pem) = ca_pem {
        s3["ca_pem"] = Value::from(pem);
    }
    json!({ "s3": s3, "identity": identity })
}

/// Why a registered site could not be opened.
#[derive(Debug, Error)]
pub enum OpenError {
    /// The site is not the one registered (missing or different identity): it is down and
    /// must be left alone.
    #[error("{0}")]
    Down(SiteError),
    /// Anything else (unreadable record, trustee, network).
    #[error("{0}")]
    Failed(String),
}

/// Opens a registered site, checking its identity.
pub async fn open_site(
    rec: &SiteRecord,
    secrets: &dyn SiteSecrets,
) -> Result<Arc<dyn Site>, OpenError> {
    let identity = rec
        .backend
        .get("identity")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let down_or_failed = |e: SiteError| match e {
        e @ SiteError::Identity { .. } => OpenError::Down(e),
        other => OpenError::Failed(other.to_string()),
    };
    if let Some(root) = rec.backend.get("fs").and_then(Value::as_str) {
        let site = LocalSite::open(rec.id.clone(), PathBuf::from(root), identity)
            .map_err(down_or_failed)?;
        return Ok(Arc::new(site));
    }
    if let Some(s3) = rec.backend.get("s3") {
        let field = |k: &str| {
            s3.get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| {
                    OpenError::Failed(format!("site {}: the record has no s3.{k}", rec.id))
                })
        };
        let secret = secrets
            .open(&rec.id, &field("secret_sealed")?)
            .await
            .map_err(|e| {
                OpenError::Failed(format!("site {}: cannot open its secret: {e}", rec.id))
            })?;
        let mut config = S3SiteConfig::new(
            field("endpoint")?,
            field("bucket")?,
            field("region")?,
            field("access_key")?,
            secret,
        );
        config.ca_pem = s3.get("ca_pem").and_then(Value::as_str).map(str::to_owned);
        let site = S3Site::open(rec.id.clone(), config, identity)
            .await
            .map_err(down_or_failed)?;
        return Ok(Arc::new(site));
    }
    Err(OpenError::Failed(format!(
        "site {} has a backend this build cannot open",
        rec.id
    )))
}

/// How often a process reads the registry again, so that a site added, changed (endpoint,
/// bucket, credentials, directory), re-labelled or removed through any process sharing the
/// catalog is used here without a restart.
pub const REFRESH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The registry records a process has applied to its [`SiteSet`], by site id, and the backends
/// it could not open (so that each failure is reported once, and retried at every refresh).
#[derive(Default)]
pub struct Applied {
    records: HashMap<String, SiteRecord>,
    failed: HashMap<String, Value>,
}

impl Applied {
    /// What a process opened at start-up.
    #[must_use]
    pub fn new(records: impl IntoIterator<Item = SiteRecord>) -> Self {
        Self {
            records: records.into_iter().map(|r| (r.id.clone(), r)).collect(),
            failed: HashMap::new(),
        }
    }
}

fn info_of(rec: &SiteRecord) -> SiteInfo {
    SiteInfo {
        id: rec.id.clone(),
        jurisdiction: rec.jurisdiction.clone(),
        location: rec.location.clone(),
        state: rec.state,
    }
}

/// Brings `sites` up to the registry in `catalog`: opens each site added since the last call,
/// and opens again each whose backend changed (its old handle is dropped, never used again);
/// takes new states and labels; forgets the sites removed. A site that cannot be opened stays
/// registered and down here, and is tried again at the next call. Returns the ids of the sites
/// whose handle or label changed.
///
/// # Errors
/// Only when the catalog cannot list the sites; a site that fails to open is not an error.
pub async fn refresh_sites(
    catalog: &dyn obhut_catalog::Catalog,
    sites: &crate::SiteSet,
    secrets: &dyn SiteSecrets,
    applied: &mut Applied,
) -> Result<Vec<String>, obhut_catalog::CatalogError> {
    let records = catalog.list_sites().await?;
    let mut changed = Vec::new();
    for rec in &records {
        let known = applied.records.get(&rec.id);
        let backend_same = known.is_some_and(|k| k.backend == rec.backend);
        if backend_same {
            if known != Some(rec) {
                sites.upsert(info_of(rec), None);
                applied.records.insert(rec.id.clone(), rec.clone());
                changed.push(rec.id.clone());
            }
            continue;
        }
        match open_site(rec, secrets).await {
            Ok(site) => {
                tracing::info!(site = %rec.id, backend = %describe_backend(rec), "site opened from the registry");
                sites.reopen(info_of(rec), Some(site));
                applied.failed.remove(&rec.id);
                applied.records.insert(rec.id.clone(), rec.clone());
                changed.push(rec.id.clone());
            }
            Err(e) => {
                if applied.failed.get(&rec.id) != Some(&rec.backend) {
                    tracing::error!(site = %rec.id, error = %e, "site in the registry cannot be opened; it is down here until it can");
                    applied.failed.insert(rec.id.clone(), rec.backend.clone());
                    // A changed backend that cannot be opened: the old handle must not be
                    // used for it either.
                    sites.reopen(info_of(rec), None);
                    changed.push(rec.id.clone());
                }
            }
        }
    }
    // Only sites this refresh has seen: one the admin API of this process added after the
    // listing above is not taken for removed.
    let gone: Vec<String> = applied
        .records
        .keys()
        .chain(applied.failed.keys())
        .filter(|id| !records.iter().any(|r| &r.id == *id))
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for id in gone {
        tracing::info!(site = %id, "site removed from the registry");
        sites.remove(&id);
        applied.records.remove(&id);
        applied.failed.remove(&id);
        changed.push(id);
    }
    Ok(changed)
}

/// What the registry shows of a site's backend: never its secret.
#[must_use]
pub fn describe_backend(rec: &SiteRecord) -> String {
    if let Some(root) = rec.backend.get("fs").and_then(Value::as_str) {
        return format!("fs:{root}");
    }
    if let Some(s3) = rec.backend.get("s3") {
        let get = |k: &str| s3.get(k).and_then(Value::as_str).unwrap_or("?");
        return describe_s3(
            get("endpoint"),
            get("bucket"),
            get("access_key"),
            s3.get("ca_pem").and_then(Value::as_str),
        );
    }
    "unknown".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SiteSet;
    use obhut_catalog::{Catalog, SqliteCatalog};
    use obhut_core::{BlobId, SiteState};

    /// An S3 backend with a CA bundle is described with the bundle's fingerprint (so the signed
    /// statement, and the log, name the CA), the same from the spec and from the record made of
    /// it; the record holds the PEM only where one was given, so older records stay as they were.
    #[test]
    fn an_s3_site_s_ca_bundle_is_in_its_record_and_named_in_its_description() {
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let spec: SiteSpec = serde_json::from_value(json!({"s3": {
            "endpoint": "https://198.18.0.33:3900/", "bucket": "b", "access_key": "K",
            "secret_key": "S", "ca_pem": pem}}))
        .unwrap();
        let fingerprint = ca_fingerprint(pem);
        assert!(
            fingerprint.starts_with("sha256:") && fingerprint.len() == 23,
            "{fingerprint}"
        );
        assert_eq!(
            spec.describe(),
            format!("s3:https://198.18.0.33:3900/b as K, CA {fingerprint}")
        );
        assert_ne!(
            ca_fingerprint(pem),
            ca_fingerprint(&pem.replace("MIIB", "MIIC"))
        );
        let record = s3_record(
            "https://198.18.0.33:3900/",
            "b",
            "us-east-1",
            "K",
            "sealed",
            Some(pem),
            "id",
        );
        assert_eq!(record["s3"]["ca_pem"], pem);
        let rec = SiteRecord {
            id: "s".into(),
            jurisdiction: "DE".into(),
            location: String::new(),
            state: SiteState::Active,
            backend: record,
        };
        assert_eq!(describe_backend(&rec), spec.describe());
        let plain = s3_record("https://x", "b", "r", "K", "sealed", None, "id");
        assert!(plain["s3"].get("ca_pem").is_none(), "{plain}");
        // Without a CA, the description is what it always was.
        let spec: SiteSpec = serde_json::from_value(json!({"s3": {
            "endpoint": "http://h:3900", "bucket": "b", "access_key": "K", "secret_key": "S"}}))
        .unwrap();
        assert_eq!(spec.describe(), "s3:http://h:3900/b as K");
    }

    /// Local sites need no secret.
    struct NoSecrets;

    #[async_trait]
    impl SiteSecrets for NoSecrets {
        async fn seal(&self, _: &str, _: &str) -> Result<String, String> {
            Err("no secrets here".into())
        }
        async fn open(&self, _: &str, _: &str) -> Result<String, String> {
            Err("no secrets here".into())
        }
    }

    fn record(id: &str, state: SiteState, backend: Value) -> SiteRecord {
        SiteRecord {
            id: id.into(),
            jurisdiction: "DE".into(),
            location: "rack 1".into(),
            state,
            backend,
        }
    }

    /// Writes a one-byte blob through the handle `sites` has for `id`.
    async fn write_through(sites: &SiteSet, id: &str) -> BlobId {
        let site = sites.get(id).expect("the site is open");
        let blob = BlobId::random();
        let mut w = site.create(blob).await.unwrap();
        w.write(bytes::Bytes::from_static(b"x")).await.unwrap();
        w.commit().await.unwrap();
        blob
    }

    #[tokio::test]
    async fn a_site_added_changed_or_removed_in_the_registry_is_used_without_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let catalog = SqliteCatalog::in_memory().unwrap();
        let sites = SiteSet::default();
        let mut applied = Applied::default();
        let refresh = async |sites: &SiteSet, applied: &mut Applied| {
            refresh_sites(&catalog, sites, &NoSecrets, applied)
                .await
                .unwrap()
        };

        // Added through another process: opened here at the next refresh.
        let (_, backend) = create_site(
            "de-x",
            &SiteSpec::Fs {
                path: tmp.path().join("x1"),
            },
            &NoSecrets,
        )
        .await
        .unwrap();
        catalog
            .put_site(&record("de-x", SiteState::Active, backend))
            .await
            .unwrap();
        assert_eq!(refresh(&sites, &mut applied).await, vec!["de-x"]);
        assert!(sites.is_healthy("de-x"));
        let first = write_through(&sites, "de-x").await;
        assert!(
            LocalSite::open("de-x", tmp.path().join("x1"), &identity_of(&catalog).await)
                .unwrap()
                .len(first)
                .await
                .is_ok(),
            "the blob is on the site's directory"
        );
        assert!(
            refresh(&sites, &mut applied).await.is_empty(),
            "nothing changed"
        );
        let handle = sites.get("de-x").unwrap();

        // A new state: taken, the handle kept.
        let mut rec = catalog.list_sites().await.unwrap().remove(0);
        rec.state = SiteState::Draining;
        catalog.put_site(&rec).await.unwrap();
        assert_eq!(refresh(&sites, &mut applied).await, vec!["de-x"]);
        assert_eq!(sites.infos()[0].state, SiteState::Draining);
        assert!(Arc::ptr_eq(&handle, &sites.get("de-x").unwrap()));

        // Moved to another backend: the next write goes there, never to the old one.
        let (_, moved) = create_site(
            "de-x",
            &SiteSpec::Fs {
                path: tmp.path().join("x2"),
            },
            &NoSecrets,
        )
        .await
        .unwrap();
        rec.backend = moved;
        rec.state = SiteState::Active;
        catalog.put_site(&rec).await.unwrap();
        assert_eq!(refresh(&sites, &mut applied).await, vec!["de-x"]);
        let second = write_through(&sites, "de-x").await;
        let new_site =
            LocalSite::open("de-x", tmp.path().join("x2"), &identity_of(&catalog).await).unwrap();
        assert!(
            new_site.len(second).await.is_ok(),
            "written to the new backend"
        );
        assert!(
            new_site.len(first).await.is_err(),
            "the new backend is another directory"
        );

        // Changed to a backend that cannot be opened: down here, the old handle unused.
        rec.backend = json!({ "fs": tmp.path().join("nowhere"), "identity": "x" });
        catalog.put_site(&rec).await.unwrap();
        assert_eq!(refresh(&sites, &mut applied).await, vec!["de-x"]);
        assert!(
            sites.get("de-x").is_none(),
            "no handle for a site that cannot be opened"
        );
        assert_eq!(sites.infos()[0].state, SiteState::Down);
        assert!(
            refresh(&sites, &mut applied).await.is_empty(),
            "a failure is reported once"
        );

        // Removed through another process: forgotten here.
        catalog.delete_site("de-x").await.unwrap();
        assert_eq!(refresh(&sites, &mut applied).await, vec!["de-x"]);
        assert!(sites.infos().is_empty());
    }

    async fn identity_of(catalog: &SqliteCatalog) -> String {
        catalog.list_sites().await.unwrap()[0].backend["identity"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn a_site_inside_or_around_another_or_the_data_dir_is_refused_also_through_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let site = data.join("sites").join("de-fra");
        std::fs::create_dir_all(&site).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&site, &link).unwrap();
        let reserved = vec![
            ("the data directory".to_owned(), data.clone()),
            ("site de-fra".to_owned(), site.clone()),
        ];
        for bad in [
            data.join("sites/de-ber"),
            tmp.path().to_path_buf(),
            link.join("inner"),
            tmp.path().join("elsewhere/../data/x"),
        ] {
            assert!(
                matches!(
                    check_fs_root(&bad, &reserved),
                    Err(CreateError::Overlap { .. })
                ),
                "{}",
                bad.display()
            );
        }
        check_fs_root(&tmp.path().join("de-ber"), &reserved).unwrap();
        check_fs_root(&tmp.path().join("data-2"), &reserved).unwrap();
    }
}
