//! `obhut catalog`: maintenance of a data directory's catalog that needs no running server.

use crate::common::lock_dir;
use anyhow::{Context, Result};
use clap::Subcommand;
use obhut_catalog::{Catalog, SqliteCatalog};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum CatalogCommand {
    /// Erase the S3 access keys an earlier release kept in the catalog in clear (once their
    /// tenants have new keys from the trustee); prints the erased key ids.
    EraseLegacyKeys {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Copy a data directory's embedded catalog (DIR/catalog.db, read only, never changed) into
    /// PostgreSQL, then compare every table's rows and digest on both sides; safe to run again
    /// after an interruption. No server may be running on DIR.
    Migrate {
        /// The data directory whose catalog.db is copied.
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// The PostgreSQL catalog, postgres://user@host:port/db (no password: see
        /// --catalog-password-file, OBHUT_CATALOG_PASSWORD, PGPASSWORD).
        #[arg(long, value_name = "URL")]
        to: String,
        /// A file (mode 0600) holding the PostgreSQL catalog's password.
        #[arg(long, value_name = "FILE")]
        catalog_password_file: Option<PathBuf>,
    },
}

pub fn run(command: CatalogCommand) -> Result<()> {
    match command {
        CatalogCommand::Migrate {
            from,
            to,
            catalog_password_file,
        } => migrate(&from, &to, catalog_password_file.as_deref()),
        CatalogCommand::EraseLegacyKeys { data_dir } => {
            let _lock = lock_dir(&data_dir, "data directory")?;
            let path = data_dir.join("catalog.db");
            if !path.exists() {
                anyhow::bail!("no catalog at {}", path.display());
            }
            crate::common::runtime()?.block_on(async {
                let catalog = SqliteCatalog::open(&path).context("cannot open the catalog")?;
                let keys = catalog.legacy_access_keys().await?;
                catalog.erase_legacy_access_keys().await?;
                for k in &keys {
                    println!(
                        "erased {} (tenant {}): replace it if it is still in use",
                        k.access_key_id, k.tenant
                    );
                }
                println!("{} access keys erased from {}", keys.len(), path.display());
                Ok(())
            })
        }
    }
}

/// Holds a shared lock of the data directory's lock file while the catalog is copied, without
/// creating or changing anything there: a server (which holds it exclusively) refuses to start
/// meanwhile, and a running server makes the copy refuse.
fn no_server_on(dir: &Path) -> Result<Option<std::fs::File>> {
    let path = dir.join(".lock");
    let Ok(file) = std::fs::File::open(&path) else {
        return Ok(None);
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "an obhut server is running on {}: stop it before copying its catalog",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

fn migrate(from: &Path, to: &str, password_file: Option<&Path>) -> Result<()> {
    let target = crate::catalog_location::PgLocation::parse(to, password_file)?;
    let source = from.join("catalog.db");
    if !source.exists() {
        anyhow::bail!("no catalog at {}", source.display());
    }
    let _lock = no_server_on(from)?;
    crate::common::runtime()?.block_on(async {
        let catalog = target.open().await?;
        let tables = obhut_catalog::copy_embedded(&source, &catalog, |t| {
            println!(
                "{:<12} {:>10} rows copied, {:>10} in PostgreSQL, digest {} on both sides",
                t.table,
                t.source_rows,
                t.target_rows,
                &t.digest[..16]
            );
        })
        .await
        .with_context(|| {
            format!(
                "cannot copy {} to {} (running the same command again is safe)",
                source.display(),
                target.shown
            )
        })?;
        catalog.close().await;
        println!(
            "{} tables of {} copied to {} and verified; serve from it with --catalog {}",
            tables.len(),
            source.display(),
            target.shown,
            target.shown
        );
        Ok(())
    })
}
