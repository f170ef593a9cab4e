//! Where a server's catalog is: embedded (`catalog.db` in the data directory, the default) or
//! on PostgreSQL (`--catalog postgres://user@host:port/db`, or `catalog = "postgres://…"` in
//! the config file).
//!
//! The password is never on the command line, in the URL or in the log: it comes from
//! `--catalog-password-file` (a file its owner alone may read), `OBHUT_CATALOG_PASSWORD`, or
//! `PGPASSWORD`, in that order. TLS is set in the URL as libpq sets it (`sslmode=verify-full`,
//! `sslrootcert=/path/ca.pem`).

use anyhow::{Context, Result, bail};
use obhut_catalog::{Catalog, Deadline, PgCatalog, PgConnectOptions, SqliteCatalog};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

/// A PostgreSQL catalog's connection settings, password included (never printed).
pub(crate) struct PgLocation {
    options: PgConnectOptions,
    /// The URL without anything secret, for messages and the log.
    pub shown: String,
}

pub(crate) enum CatalogLocation {
    Embedded,
    Postgres(Box<PgLocation>),
}

impl CatalogLocation {
    /// From a `--catalog` (or config) value: none means the embedded catalog.
    pub(crate) fn parse(url: Option<&str>, password_file: Option<&Path>) -> Result<Self> {
        match url {
            None => {
                if let Some(f) = password_file {
                    bail!(
                        "--catalog-password-file {} is given without a PostgreSQL catalog (--catalog postgres://…)",
                        f.display()
                    );
                }
                Ok(Self::Embedded)
            }
            Some(url) => Ok(Self::Postgres(Box::new(PgLocation::parse(
                url,
                password_file,
            )?))),
        }
    }
}

impl PgLocation {
    pub(crate) fn parse(url: &str, password_file: Option<&Path>) -> Result<Self> {
        let parsed = url::Url::parse(url).map_err(|e| {
            anyhow::anyhow!("the catalog URL is not a URL ({e}): give postgres://user@host:port/db")
        })?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            bail!(
                "the catalog URL must start with postgres:// (postgres://user@host:port/db), not {}://",
                parsed.scheme()
            );
        }
        if parsed.password().is_some() || parsed.query_pairs().any(|(k, _)| k == "password") {
            bail!(
                "the catalog URL holds a password: give it in a file (--catalog-password-file, mode 0600) or in OBHUT_CATALOG_PASSWORD or PGPASSWORD, never on the command line"
            );
        }
        let mut options = PgConnectOptions::from_str(url)
            .map_err(|e| anyhow::anyhow!("invalid catalog URL: {e}"))?;
        if options.get_application_name().is_none() {
            // What the database's administrators see in pg_stat_activity.
            options = options.application_name("obhut");
        }
        if let Some(pw) = password(password_file)? {
            options = options.password(&pw);
        }
        let mut shown = format!(
            "{}://{}@{}",
            parsed.scheme(),
            parsed.username(),
            parsed.host_str().unwrap_or("")
        );
        if let Some(port) = parsed.port() {
            shown.push_str(&format!(":{port}"));
        }
        shown.push_str(parsed.path());
        Ok(Self { options, shown })
    }

    /// Connects and brings the database to this release's layout.
    pub(crate) async fn open(&self) -> Result<PgCatalog> {
        PgCatalog::connect(self.options.clone())
            .await
            .with_context(|| format!("cannot open the catalog at {}", self.shown))
    }
}

/// The password: from the file if one is named, else `OBHUT_CATALOG_PASSWORD`; `None` leaves
/// `PGPASSWORD` (or `~/.pgpass`) to the driver.
fn password(file: Option<&Path>) -> Result<Option<String>> {
    if let Some(path) = file {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path)
            .with_context(|| format!("cannot read the catalog password file {}", path.display()))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "the catalog password file {} is readable by others (mode {mode:o}): make it its owner's alone (chmod 600)",
                path.display()
            );
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the catalog password file {}", path.display()))?;
        let pw = text.trim_end_matches(['\n', '\r']).to_owned();
        if pw.is_empty() {
            bail!("the catalog password file {} is empty", path.display());
        }
        return Ok(Some(pw));
    }
    Ok(std::env::var("OBHUT_CATALOG_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty()))
}

/// The catalog of a data directory, opened: `catalog.db` in it, or the PostgreSQL database.
pub(crate) async fn open(
    location: &CatalogLocation,
    data_dir: &Path,
) -> Result<(Arc<dyn Catalog>, String)> {
    Ok(match location {
        CatalogLocation::Embedded => {
            let path: PathBuf = data_dir.join("catalog.db");
            let catalog = SqliteCatalog::open(&path).context("cannot open the catalog")?;
            (Arc::new(catalog), path.display().to_string())
        }
        CatalogLocation::Postgres(pg) => {
            let deadline = catalog_deadline()?;
            tracing::info!(
                deadline_ms = deadline.as_millis(),
                "each call of the catalog is answered within its deadline or fails (503)"
            );
            let catalog = pg.open().await?;
            // A write that gave up at its deadline leaves a prepared transaction: rolled back
            // once it is well past the deadline.
            catalog.set_abandoned_after((deadline * 3).max(std::time::Duration::from_secs(10)));
            (Arc::new(Deadline::new(catalog, deadline)), pg.shown.clone())
        }
    })
}

/// The deadline of each call of a catalog on PostgreSQL: 10 s, unless
/// `OBHUT_CATALOG_DEADLINE_MS` says otherwise. A commit waits for the synchronous standby;
/// with the other datacenter cut off it would wait until the link is back, and the request
/// with it: at the deadline it fails instead (503), its outcome unknown (docs/deploy.md).
pub(crate) fn catalog_deadline() -> Result<std::time::Duration> {
    const DEFAULT: std::time::Duration = std::time::Duration::from_secs(10);
    let Ok(v) = std::env::var("OBHUT_CATALOG_DEADLINE_MS") else {
        return Ok(DEFAULT);
    };
    let ms: u64 = v.parse().ok().filter(|ms| *ms > 0).with_context(|| {
        format!("OBHUT_CATALOG_DEADLINE_MS must be a number of milliseconds above zero, not {v:?}")
    })?;
    Ok(std::time::Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_url_is_refused() {
        for url in [
            "postgres://obhut:secret@db:5432/catalog",
            "postgres://obhut@db/catalog?password=secret",
        ] {
            let err = PgLocation::parse(url, None).err().expect("refused");
            assert!(err.to_string().contains("holds a password"), "{err}");
            assert!(!err.to_string().contains("secret"), "{err}");
        }
        let ok = PgLocation::parse(
            "postgres://obhut@db:5433/catalog?sslmode=verify-full&sslrootcert=/etc/ca.pem",
            None,
        )
        .expect("parses");
        assert_eq!(ok.shown, "postgres://obhut@db:5433/catalog");
        assert!(PgLocation::parse("mysql://x@y/z", None).is_err());
    }

    #[test]
    fn a_password_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("pw");
        std::fs::write(&f, "s3cret\n").expect("write");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = password(Some(&f)).expect_err("refused");
        assert!(err.to_string().contains("chmod 600"), "{err}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(password(Some(&f)).expect("read"), Some("s3cret".to_owned()));
    }
}
