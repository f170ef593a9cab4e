//! `obhut catalog`: maintenance of a data directory's catalog that needs no running server.

use crate::common::lock_dir;
use anyhow::{Context, Result};
use clap::Subcommand;
use obhut_catalog::{Catalog, SqliteCatalog};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum CatalogCommand {
    /// Erase the S3 access keys an earlier release kept in the catalog in clear (once their
    /// tenants have new keys from the trustee); prints the erased key ids.
    EraseLegacyKeys {
        #[arg(long)]
        data_dir: PathBuf,
    },
}

pub fn run(command: CatalogCommand) -> Result<()> {
    match command {
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
