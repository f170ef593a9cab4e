//! The data path: client bytes → digests → every placed site, durably; and back.
//!
//! A write streams the body once, hashing it (MD5 for the ETag, requested S3 checksums) and
//! writing fixed-size buffers to all placed sites concurrently. Nothing is committed unless the
//! body was complete and every digest checked out; the catalog commit that makes an object
//! visible happens in the caller, after [`write_blob`] has returned. Memory per request is
//! bounded by [`WRITE_BUFFER`] plus the read-ahead of [`READ_AHEAD`] chunks on reads.
//!
//! Encryption (segmented AEAD under the object key) belongs between the hashing and the sites.

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt, future};
use obhut_catalog::{Catalog, Chunk};
use obhut_core::{BlobId, SiteInfo};
use obhut_sites::{BlobWriter, Site, SiteError};
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::StreamingBlob;
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Bytes gathered before a write is issued to the sites.
pub const WRITE_BUFFER: usize = 1024 * 1024;
/// Chunks a read may run ahead of the client.
const READ_AHEAD: usize = 4;

/// The sites this gateway can reach, with what placement needs to know about them.
#[derive(Clone, Default)]
pub struct SiteSet {
    infos: Arc<Vec<SiteInfo>>,
    by_id: Arc<HashMap<String, Arc<dyn Site>>>,
}

impl SiteSet {
    #[must_use]
    pub fn new(sites: Vec<(SiteInfo, Arc<dyn Site>)>) -> Self {
        let infos = sites.iter().map(|(i, _)| i.clone()).collect();
        let by_id = sites.into_iter().map(|(i, s)| (i.id, s)).collect();
        Self {
            infos: Arc::new(infos),
            by_id: Arc::new(by_id),
        }
    }

    #[must_use]
    pub fn infos(&self) -> &[SiteInfo] {
        &self.infos
    }

    #[must_use]
    pub fn get(&self, id: &str) -> Option<&Arc<dyn Site>> {
        self.by_id.get(id)
    }

    fn all(&self) -> impl Iterator<Item = &Arc<dyn Site>> {
        self.by_id.values()
    }

    /// Resolves site ids, failing if a site is unknown to this gateway.
    pub fn resolve(&self, ids: &[String]) -> S3Result<Vec<Arc<dyn Site>>> {
        ids.iter()
            .map(|id| {
                self.by_id.get(id).cloned().ok_or_else(|| {
                    S3Error::with_message(
                        S3ErrorCode::ServiceUnavailable,
                        format!("site {id} is not reachable from this gateway"),
                    )
                })
            })
            .collect()
    }
}

/// What was learned while streaming a body.
pub struct Written {
    pub chunk: Chunk,
    pub md5: [u8; 16],
    pub checksums: s3s::dto::Checksum,
}

/// Which digests to compute besides MD5, and how to check them once the body has been read.
pub type Verify<'a> = Box<dyn FnOnce(&[u8; 16], &s3s::dto::Checksum) -> S3Result<()> + Send + 'a>;

fn body_error(e: &s3s::StdError) -> S3Error {
    if let Some(s3) = e.downcast_ref::<S3Error>() {
        let mut err = S3Error::with_message(
            s3.code().clone(),
            s3.message()
                .unwrap_or("the request body was rejected")
                .to_owned(),
        );
        if let Some(status) = s3.status_code() {
            err.set_status_code(status);
        }
        return err;
    }
    // s3s reports payload verification failures as stream errors; their types are private, so
    // they are recognised by their names.
    let text = e.to_string();
    if text.contains("Sha256Mismatch") {
        let mut err = S3Error::with_message(
            S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        );
        err.set_status_code(http::StatusCode::BAD_REQUEST);
        return err;
    }
    if text.contains("SignatureMismatch") {
        return s3_error!(
            SignatureDoesNotMatch,
            "The chunk signature we calculated does not match the signature you provided."
        );
    }
    s3_error!(IncompleteBody, "the request body could not be read: {text}")
}

async fn write_all(writers: &mut [Box<dyn BlobWriter>], data: Bytes) -> Result<(), SiteError> {
    future::try_join_all(writers.iter_mut().map(|w| w.write(data.clone())))
        .await
        .map(|_| ())
}

/// Streams `body` into a new blob on every site in `sites`, then verifies and commits it.
///
/// `expected_len` is the declared content length, if any. Returns only after the blob is durable
/// on every site; on any failure nothing is committed (or what was committed is deleted).
pub async fn write_blob<S>(
    sites: &[Arc<dyn Site>],
    body: S,
    expected_len: Option<u64>,
    mut hasher: ChecksumHasher,
    verify: Verify<'_>,
) -> S3Result<Written>
where
    S: futures::Stream<Item = Result<Bytes, s3s::StdError>> + Unpin,
{
    let blob = BlobId::random();
    let mut writers = future::try_join_all(sites.iter().map(|s| s.create(blob)))
        .await
        .map_err(|e| crate::error::site(&e))?;
    let mut md5 = Md5::new();
    let mut buf = BytesMut::with_capacity(WRITE_BUFFER);
    let mut size: u64 = 0;
    let mut body = body;
    while let Some(item) = body.next().await {
        let data = item.map_err(|e| body_error(&e))?;
        md5.update(&data);
        hasher.update(&data);
        size += data.len() as u64;
        if expected_len.is_some_and(|n| size > n) {
            return Err(s3_error!(
                IncompleteBody,
                "the body is longer than its Content-Length"
            ));
        }
        buf.extend_from_slice(&data);
        if buf.len() >= WRITE_BUFFER {
            write_all(&mut writers, buf.split().freeze())
                .await
                .map_err(|e| crate::error::site(&e))?;
        }
    }
    if expected_len.is_some_and(|n| size != n) {
        return Err(s3_error!(
            IncompleteBody,
            "the body is shorter than its Content-Length"
        ));
    }
    if !buf.is_empty() {
        write_all(&mut writers, buf.split().freeze())
            .await
            .map_err(|e| crate::error::site(&e))?;
    }
    let md5: [u8; 16] = md5.finalize();
    let checksums = hasher.finalize();
    verify(&md5, &checksums)?;

    let results = future::join_all(writers.into_iter().map(BlobWriter::commit)).await;
    if let Some(err) = results.iter().find_map(|r| r.as_ref().err()) {
        let e = crate::error::site(err);
        discard_blobs(sites.to_vec(), vec![blob]);
        return Err(e);
    }
    Ok(Written {
        chunk: Chunk { blob, size },
        md5,
        checksums,
    })
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

/// Reads `range` of an object made of `chunks`, trying replicas in the order of `sites`.
///
/// The returned stream yields the requested bytes; a replica that is missing or fails before
/// sending anything is skipped, and a failure after bytes were sent ends the stream with an error
/// (the client sees a short body, never wrong bytes).
pub fn read_range(
    sites: Vec<Arc<dyn Site>>,
    chunks: Vec<Chunk>,
    range: Range<u64>,
) -> StreamingBlob {
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(READ_AHEAD);
    tokio::spawn(async move {
        let mut offset = 0u64;
        for chunk in chunks {
            let chunk_range = offset..offset + chunk.size;
            offset += chunk.size;
            let start = range.start.max(chunk_range.start);
            let end = range.end.min(chunk_range.end);
            if start >= end {
                continue;
            }
            let local = (start - chunk_range.start)..(end - chunk_range.start);
            if let Err(e) = copy_chunk(&sites, chunk.blob, local, &tx).await {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    StreamingBlob::wrap(stream)
}

async fn copy_chunk(
    sites: &[Arc<dyn Site>],
    blob: BlobId,
    range: Range<u64>,
    tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<(), std::io::Error> {
    let mut last_err = None;
    for site in sites {
        let mut stream = match site.read(blob, range.clone()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(site = site.id(), %blob, error = %e, "replica unavailable; trying the next site");
                last_err = Some(e);
                continue;
            }
        };
        // The first piece decides whether this replica serves the range.
        match stream.try_next().await {
            Ok(Some(first)) => {
                if tx.send(Ok(first)).await.is_err() {
                    return Ok(());
                }
            }
            Ok(None) => return Ok(()),
            Err(e) => {
                tracing::warn!(site = site.id(), %blob, error = %e, "replica unreadable; trying the next site");
                last_err = Some(e);
                continue;
            }
        }
        while let Some(item) = stream.next().await {
            let data = item.map_err(std::io::Error::other)?;
            if tx.send(Ok(data)).await.is_err() {
                return Ok(());
            }
        }
        return Ok(());
    }
    Err(std::io::Error::other(match last_err {
        Some(e) => format!("no replica of the object could be read: {e}"),
        None => "the object has no replicas".to_owned(),
    }))
}

/// See [`crate::Gateway::collect_orphans`].
pub async fn collect_orphans(catalog: &dyn Catalog, sites: &SiteSet) -> Result<usize, String> {
    let referenced: HashSet<BlobId> = catalog
        .referenced_blobs()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect();
    let mut removed = 0;
    for site in sites.all() {
        site.clear_temporary().await.map_err(|e| e.to_string())?;
        for blob in site.list().await.map_err(|e| e.to_string())? {
            if !referenced.contains(&blob) {
                site.delete(blob).await.map_err(|e| e.to_string())?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}
