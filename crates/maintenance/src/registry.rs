//! The site registry's backends: how a registered site is created and opened, whether it is a
//! local directory or a bucket on an S3-compatible cluster.
//!
//! A site's record in the catalog says where it is and carries the identity written into it
//! when it was created; an S3 site's secret key is stored sealed by the trustee, through
//! [`SiteSecrets`], and opened only to reach the site. It must never log or return a site's
//! secret, and never holds the key that seals it.

use async_trait::async_trait;
use obhut_catalog::SiteRecord;
use obhut_sites::{LocalSite, S3Site, S3SiteConfig, Site, SiteError};
use serde::Deserialize;
use serde_json::{Value, json};
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
    },
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
                ..
            } => format!(
                "s3:{}/{bucket} as {access_key}",
                endpoint.trim_end_matches('/')
            ),
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
        } => {
            let config = S3SiteConfig::new(
                endpoint.clone(),
                bucket.clone(),
                region.clone(),
                access_key.clone(),
                secret_key.clone(),
            );
            let (site, identity) = S3Site::create(id, config).await?;
            let sealed = secrets
                .seal(id, secret_key)
                .await
                .map_err(CreateError::Seal)?;
            Ok((
                Arc::new(site),
                json!({
                    "s3": {"endpoint": endpoint, "bucket": bucket, "region": region,
                           "access_key": access_key, "secret_sealed": sealed},
                    "identity": identity,
                }),
            ))
        }
    }
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
        let config = S3SiteConfig::new(
            field("endpoint")?,
            field("bucket")?,
            field("region")?,
            field("access_key")?,
            secret,
        );
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

/// What the registry shows of a site's backend: never its secret.
#[must_use]
pub fn describe_backend(rec: &SiteRecord) -> String {
    if let Some(root) = rec.backend.get("fs").and_then(Value::as_str) {
        return format!("fs:{root}");
    }
    if let Some(s3) = rec.backend.get("s3") {
        let get = |k: &str| s3.get(k).and_then(Value::as_str).unwrap_or("?");
        return format!(
            "s3:{}/{} as {}",
            get("endpoint").trim_end_matches('/'),
            get("bucket"),
            get("access_key")
        );
    }
    "unknown".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

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
