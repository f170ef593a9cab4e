//! One replica of one blob: checking it against the CRC32C the catalog records for the stored
//! bytes, copying it from a good replica to another site, and deleting replicas left behind.
//!
//! Everything here moves and checks ciphertext as the sites hold it; it never needs, and never
//! sees, a key.

use futures::StreamExt;
use obhut_catalog::Chunk;
use obhut_core::BlobId;
use obhut_sites::{Site, SiteError};
use std::sync::Arc;

/// What is wrong with one replica.
#[derive(Debug)]
pub enum ReplicaProblem {
    Missing,
    Corrupt(String),
    Unreachable(String),
}

impl std::fmt::Display for ReplicaProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing => write!(f, "missing"),
            Self::Corrupt(m) => write!(f, "corrupt ({m})"),
            Self::Unreachable(m) => write!(f, "unreachable ({m})"),
        }
    }
}

/// Reads a whole replica and checks it against the catalog's CRC32C (or, for blobs written
/// before CRCs were recorded, that it can be read in full).
pub async fn verify_replica(site: &Arc<dyn Site>, chunk: &Chunk) -> Result<u64, ReplicaProblem> {
    let len = match site.len(chunk.blob).await {
        Ok(n) => n,
        Err(e) if e.is_not_found() => return Err(ReplicaProblem::Missing),
        Err(e) => return Err(ReplicaProblem::Unreachable(e.to_string())),
    };
    let mut stream = match site.read(chunk.blob, 0..len).await {
        Ok(s) => s,
        Err(e) if e.is_not_found() => return Err(ReplicaProblem::Missing),
        Err(e) => return Err(ReplicaProblem::Unreachable(e.to_string())),
    };
    let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
    let mut read = 0u64;
    while let Some(part) = stream.next().await {
        let bytes = part.map_err(|e| match e {
            SiteError::Truncated { .. } => ReplicaProblem::Corrupt("truncated".into()),
            other => ReplicaProblem::Unreachable(other.to_string()),
        })?;
        read += bytes.len() as u64;
        crc.update(&bytes);
    }
    if read != len {
        return Err(ReplicaProblem::Corrupt(format!("{read} of {len} bytes")));
    }
    if let Some(want) = chunk.crc32c
        && u64::from(want) != crc.finalize()
    {
        return Err(ReplicaProblem::Corrupt("CRC32C mismatch".into()));
    }
    Ok(len)
}

/// Copies `chunk` from the first of `sources` that holds a good replica onto `target`, checking
/// the bytes against the chunk's CRC32C on the way; nothing is committed on a mismatch.
pub(crate) async fn copy_chunk(
    sources: &[Arc<dyn Site>],
    target: &Arc<dyn Site>,
    chunk: &Chunk,
) -> Result<(), String> {
    let mut faults = Vec::new();
    for src in sources {
        match copy_from(src, target, chunk).await {
            Ok(()) => return Ok(()),
            Err(e) => faults.push(format!("{}: {e}", src.id())),
        }
    }
    Err(format!(
        "no good replica of blob {} to copy to {} ({})",
        chunk.blob,
        target.id(),
        faults.join("; ")
    ))
}

async fn copy_from(
    src: &Arc<dyn Site>,
    target: &Arc<dyn Site>,
    chunk: &Chunk,
) -> Result<(), String> {
    let len = src.len(chunk.blob).await.map_err(|e| e.to_string())?;
    let mut stream = src
        .read(chunk.blob, 0..len)
        .await
        .map_err(|e| e.to_string())?;
    let mut writer = target.create(chunk.blob).await.map_err(|e| e.to_string())?;
    let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
    let mut copied = 0u64;
    while let Some(part) = stream.next().await {
        let bytes = part.map_err(|e| e.to_string())?;
        crc.update(&bytes);
        copied += bytes.len() as u64;
        writer.write(bytes).await.map_err(|e| e.to_string())?;
    }
    if copied != len {
        return Err(format!("read {copied} of {len} bytes"));
    }
    if let Some(want) = chunk.crc32c
        && u64::from(want) != crc.finalize()
    {
        // Dropping the writer leaves nothing under the final name.
        return Err("CRC32C mismatch: this replica is corrupt".into());
    }
    writer.commit().await.map_err(|e| e.to_string())?;
    Ok(())
}

/// Deletes blobs in the background; failures leave orphans for the collector.
pub fn discard_blobs(sites: Vec<Arc<dyn Site>>, blobs: Vec<BlobId>) {
    if blobs.is_empty() {
        return;
    }
    tokio::spawn(async move {
        for site in &sites {
            for blob in &blobs {
                if let Err(e) = site.delete(*blob).await {
                    tracing::warn!(site = site.id(), %blob, error = %e, "could not delete blob; left for orphan collection");
                }
            }
        }
    });
}
