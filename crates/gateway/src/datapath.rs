//! The data path: client bytes → digests → every placed site, durably; and back.
//!
//! A write streams the body once, hashing it (MD5 for the ETag, requested S3 checksums) and
//! writing fixed-size buffers to all placed sites concurrently. Nothing is committed unless the
//! body was complete and every digest checked out; the catalog commit that makes an object
//! visible happens in the caller, after [`write_blob`] has returned. Memory per request is
//! bounded by [`WRITE_BUFFER`] plus the read-ahead of [`READ_AHEAD`] chunks on reads.
//!
//! Encryption sits between the hashing and the sites: every blob is the segmented AES-256-GCM
//! encryption (docs/format.md) of its plaintext under the object version's key, so sites only
//! ever receive ciphertext, and reads decrypt only the segments a range touches.

use crate::keys::ObjectCipher;
use bytes::{Bytes, BytesMut};
use futures::{FutureExt, StreamExt, TryStreamExt, future};
use obhut_catalog::Chunk;
use obhut_core::BlobId;
use obhut_crypto::{
    BlobHeader, HEADER_LEN, SegmentDecryptor, StreamEncryptor, TAG_LEN, segment_span,
};
use obhut_sites::{BlobStream, BlobWriter, Site, SiteError};
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::StreamingBlob;
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};
use std::ops::Range;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Ciphertext gathered before a write is issued to the sites.
pub const WRITE_BUFFER: usize = 1024 * 1024;
/// Chunks a read may run ahead of the client.
const READ_AHEAD: usize = 4;

/// The sites this gateway writes to and reads from: the process's shared
/// [`obhut_maintenance::SiteSet`] (health, states and handles change while it runs), with what
/// the S3 front needs on top.
#[derive(Clone)]
pub struct SiteSet(obhut_maintenance::SiteSet);

impl From<obhut_maintenance::SiteSet> for SiteSet {
    fn from(sites: obhut_maintenance::SiteSet) -> Self {
        Self(sites)
    }
}

impl std::ops::Deref for SiteSet {
    type Target = obhut_maintenance::SiteSet;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl SiteSet {
    /// Resolves site ids, failing if a site is unknown to this gateway.
    pub fn resolve(&self, ids: &[String]) -> S3Result<Vec<Arc<dyn Site>>> {
        ids.iter()
            .map(|id| {
                self.get(id).ok_or_else(|| {
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
    /// Indices (into the sites given) of the sites that hold the blob durably.
    pub sites: Vec<usize>,
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

/// Writes `data` to every live writer; a writer that fails is dropped (its temporary file
/// goes with it). Fails once fewer than `min_ok` writers are left.
async fn write_all(
    writers: &mut Vec<(usize, Box<dyn BlobWriter>)>,
    data: Bytes,
    min_ok: usize,
) -> Result<(), SiteError> {
    let results = future::join_all(writers.iter_mut().map(|(_, w)| w.write(data.clone()))).await;
    let mut failure = None;
    let mut i = 0;
    writers.retain(|_| {
        let keep = match &results[i] {
            Ok(()) => true,
            Err(_) => false,
        };
        i += 1;
        keep
    });
    for r in results {
        if let Err(e) = r {
            tracing::error!(error = %e, "a site failed during a write");
            failure = Some(e);
        }
    }
    match failure {
        Some(e) if writers.len() < min_ok.max(1) => Err(e),
        _ => Ok(()),
    }
}

/// Streams `body` into a new encrypted blob on every site in `sites`, then verifies and
/// commits it.
///
/// Digests are computed over the plaintext; what reaches the sites is the segmented AEAD
/// encryption of it under `cipher`, bound to `part`. `expected_len` is the declared content
/// length, if any. Returns only after the blob is durable on every site it reports in
/// `Written::sites` (indices into `sites`): all of them, or with `min_ok` below `sites.len()`
/// (a policy that accepts degraded writes) at least `min_ok`. On any other failure nothing is
/// committed (or what was committed is deleted).
#[allow(clippy::too_many_arguments)]
pub async fn write_blob<S>(
    sites: &[Arc<dyn Site>],
    min_ok: usize,
    body: S,
    expected_len: Option<u64>,
    hasher: ChecksumHasher,
    verify: Verify<'_>,
    cipher: &ObjectCipher,
    part: u32,
) -> S3Result<Written>
where
    S: futures::Stream<Item = Result<Bytes, s3s::StdError>> + Unpin,
{
    write_blob_within(
        sites,
        min_ok,
        body,
        expected_len,
        crate::front::MAX_SINGLE_PUT_BYTES,
        hasher,
        verify,
        cipher,
        part,
    )
    .await
}

/// [`write_blob`], with the most a body that declared no length may carry: a chunked body
/// without aws-chunked is held to what a single PUT or part may carry (S3's 5 GiB), which is
/// also what its quota hold reserved.
#[allow(clippy::too_many_arguments)]
async fn write_blob_within<S>(
    sites: &[Arc<dyn Site>],
    min_ok: usize,
    body: S,
    expected_len: Option<u64>,
    undeclared_limit: u64,
    mut hasher: ChecksumHasher,
    verify: Verify<'_>,
    cipher: &ObjectCipher,
    part: u32,
) -> S3Result<Written>
where
    S: futures::Stream<Item = Result<Bytes, s3s::StdError>> + Unpin,
{
    let blob = BlobId::random();
    let header = BlobHeader::random(cipher.segment_size).map_err(S3Error::internal_error)?;
    let mut enc = StreamEncryptor::new(&cipher.key, header, &cipher.blob_context(part, &blob));
    // Every create runs to its end, so that a site failing here cannot cut another's create
    // short and leave its temporary file behind; the writers made are dropped (and their files
    // removed) if any site failed.
    let min_ok = min_ok.clamp(1, sites.len().max(1));
    let mut writers: Vec<(usize, Box<dyn BlobWriter>)> = Vec::with_capacity(sites.len());
    let mut failure = None;
    for (i, created) in future::join_all(sites.iter().map(|s| s.create(blob)))
        .await
        .into_iter()
        .enumerate()
    {
        match created {
            Ok(w) => writers.push((i, w)),
            Err(e) => {
                tracing::error!(error = %e, "a site failed at the start of a write");
                failure = Some(e);
            }
        }
    }
    if let Some(e) = failure
        && writers.len() < min_ok
    {
        return Err(crate::error::site(&e));
    }
    let mut md5 = Md5::new();
    let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
    let mut out: Vec<u8> = Vec::with_capacity(WRITE_BUFFER + cipher.segment_size as usize);
    out.extend_from_slice(&enc.header_bytes());
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
        if expected_len.is_none() && size > undeclared_limit {
            return Err(s3_error!(
                EntityTooLarge,
                "Your proposed upload exceeds the maximum allowed object size."
            ));
        }
        enc.push(&data, &mut out).map_err(S3Error::internal_error)?;
        if out.len() >= WRITE_BUFFER {
            let full = std::mem::replace(
                &mut out,
                Vec::with_capacity(WRITE_BUFFER + cipher.segment_size as usize),
            );
            crc.update(&full);
            if let Err(e) = write_all(&mut writers, Bytes::from(full), min_ok).await {
                discard_blobs(sites.to_vec(), vec![blob]);
                return Err(crate::error::site(&e));
            }
        }
    }
    if expected_len.is_some_and(|n| size != n) {
        return Err(s3_error!(
            IncompleteBody,
            "the body is shorter than its Content-Length"
        ));
    }
    let md5: [u8; 16] = md5.finalize();
    let checksums = hasher.finalize();
    verify(&md5, &checksums)?;
    enc.finish(&mut out).map_err(S3Error::internal_error)?;
    crc.update(&out);
    if let Err(e) = write_all(&mut writers, Bytes::from(out), min_ok).await {
        discard_blobs(sites.to_vec(), vec![blob]);
        return Err(crate::error::site(&e));
    }

    let (indices, writers): (Vec<usize>, Vec<Box<dyn BlobWriter>>) = writers.into_iter().unzip();
    let results = future::join_all(writers.into_iter().map(BlobWriter::commit)).await;
    let mut committed = Vec::new();
    let mut failed = Vec::new();
    let mut last_err = None;
    for (i, r) in indices.into_iter().zip(results) {
        match r {
            Ok(_) => committed.push(i),
            Err(e) => {
                failed.push(Arc::clone(&sites[i]));
                last_err = Some(e);
            }
        }
    }
    if committed.len() < min_ok {
        discard_blobs(sites.to_vec(), vec![blob]);
        let e = last_err.map_or_else(
            || s3_error!(ServiceUnavailable, "no site committed the blob"),
            |e| crate::error::site(&e),
        );
        return Err(e);
    }
    // A commit that failed may or may not have left the blob: it is an orphan either way.
    discard_blobs(failed, vec![blob]);
    Ok(Written {
        sites: committed,
        chunk: Chunk {
            blob,
            size,
            part,
            crc32c: u32::try_from(crc.finalize()).ok(),
        },
        md5,
        checksums,
    })
}

pub use obhut_maintenance::discard_blobs;

/// Reads and decrypts `range` of an object made of `chunks`, trying replicas in the order of
/// `sites`.
///
/// Only authenticated plaintext is ever sent. A replica that is missing, short or fails
/// authentication is abandoned at the segment where it failed and the next replica continues
/// from that segment; if none can, the stream ends with an error (the client sees a short body,
/// never wrong bytes).
/// Called when a replica is found missing or bad during a read, so it is repaired.
pub type FaultReport = Arc<dyn Fn() + Send + Sync>;

pub fn read_range(
    sites: Vec<Arc<dyn Site>>,
    chunks: Vec<Chunk>,
    range: Range<u64>,
    cipher: Arc<ObjectCipher>,
    on_fault: Option<FaultReport>,
) -> StreamingBlob {
    // A range within one segment of one chunk (every small object) is read when the body is
    // first polled, on the connection's own task: nothing to read ahead, so no task and no
    // channel. Longer ranges are read by a task of their own, up to READ_AHEAD pieces ahead.
    let single = {
        let mut touched = touched_chunks(&chunks, &range);
        match (touched.next(), touched.next()) {
            (Some((chunk, local)), None) => Some((*chunk, local)),
            _ => None,
        }
    };
    if let Some((chunk, local)) = single {
        let (first, last, _) = segment_span(&local, chunk.size, cipher.segment_size);
        if first == last {
            let read = async move {
                let mut pieces = Vec::with_capacity(1);
                copy_chunk(
                    &sites,
                    &chunk,
                    local,
                    &cipher,
                    &mut Out::Hold(&mut pieces),
                    on_fault.as_ref(),
                )
                .await?;
                Ok(pieces)
            };
            return StreamingBlob::wrap(Inline {
                read: std::sync::Mutex::new(Some(Box::pin(read))),
                pieces: Vec::new().into_iter(),
            });
        }
    }
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(READ_AHEAD);
    tokio::spawn(async move {
        for (chunk, local) in touched_chunks(&chunks, &range) {
            let mut out = Out::Channel(&tx);
            if let Err(e) =
                copy_chunk(&sites, chunk, local, &cipher, &mut out, on_fault.as_ref()).await
            {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    StreamingBlob::wrap(stream)
}

/// The chunks `range` touches, each with the part of `range` within it (relative to the
/// chunk's start).
fn touched_chunks<'a>(
    chunks: &'a [Chunk],
    range: &Range<u64>,
) -> impl Iterator<Item = (&'a Chunk, Range<u64>)> + 'a {
    let range = range.clone();
    let mut offset = 0u64;
    chunks.iter().filter_map(move |chunk| {
        let chunk_range = offset..offset + chunk.size;
        offset += chunk.size;
        let start = range.start.max(chunk_range.start);
        let end = range.end.min(chunk_range.end);
        (start < end).then(|| {
            (
                chunk,
                (start - chunk_range.start)..(end - chunk_range.start),
            )
        })
    })
}

/// Where a read's plaintext goes: the channel to the client's body, or (for a range within
/// one segment) held until the read is done.
enum Out<'a> {
    Channel(&'a mpsc::Sender<Result<Bytes, std::io::Error>>),
    Hold(&'a mut Vec<Bytes>),
}

impl Out<'_> {
    /// Passes `piece` on; `Err` if the client went away.
    async fn send(&mut self, piece: Bytes) -> Result<(), ReplicaFault> {
        match self {
            Self::Channel(tx) => tx.send(Ok(piece)).await.map_err(|_| ReplicaFault::Gone),
            Self::Hold(held) => {
                held.push(piece);
                Ok(())
            }
        }
    }
}

type HeldRead = futures::future::BoxFuture<'static, Result<Vec<Bytes>, std::io::Error>>;

/// The body of a read within one segment: the read runs when the body is first polled, then
/// its pieces follow (or its error, after which nothing).
struct Inline {
    /// Taken once done. The mutex only makes the body `Sync`, as s3s wants; it is reached
    /// through `get_mut`, never locked.
    read: std::sync::Mutex<Option<HeldRead>>,
    pieces: std::vec::IntoIter<Bytes>,
}

impl futures::Stream for Inline {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = &mut *self;
        let slot = match this.read.get_mut() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(read) = slot.as_mut() {
            let outcome = match read.poll_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(outcome) => outcome,
            };
            *slot = None;
            match outcome {
                Ok(pieces) => this.pieces = pieces.into_iter(),
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
        Poll::Ready(this.pieces.next().map(Ok))
    }
}

/// Why a replica was given up.
#[derive(Debug)]
enum ReplicaFault {
    Site(SiteError),
    Crypto(obhut_crypto::CryptoError),
    /// The client went away: stop quietly.
    Gone,
}

async fn read_exact(
    site: &Arc<dyn Site>,
    blob: BlobId,
    range: Range<u64>,
) -> Result<Vec<u8>, SiteError> {
    let parts: Vec<Bytes> = site.read(blob, range).await?.try_collect().await?;
    Ok(parts.concat())
}

/// The blob's header, and its sealed segments from segment `next` to the end of `range`. From
/// the first segment, header and segments come in one read.
async fn open_segments(
    site: &Arc<dyn Site>,
    chunk: &Chunk,
    range: &Range<u64>,
    cipher: &ObjectCipher,
    next: u64,
) -> Result<(BlobHeader, SealedPieces), ReplicaFault> {
    if next == 0 {
        let (_, _, span) = segment_span(range, chunk.size, cipher.segment_size);
        let stream = site
            .read(chunk.blob, 0..span.end)
            .await
            .map_err(ReplicaFault::Site)?;
        let mut pieces = SealedPieces::new(stream, site.id(), chunk.blob);
        let header =
            BlobHeader::decode(&pieces.take(HEADER_LEN).await?).map_err(ReplicaFault::Crypto)?;
        // Written with another segment size: the span read was not this blob's.
        if header.segment_size == cipher.segment_size {
            return Ok((header, pieces));
        }
    }
    let header_bytes = read_exact(site, chunk.blob, 0..HEADER_LEN as u64)
        .await
        .map_err(ReplicaFault::Site)?;
    let header = BlobHeader::decode(&header_bytes).map_err(ReplicaFault::Crypto)?;
    let stride = u64::from(header.segment_size) + TAG_LEN as u64;
    let (_, _, span) = segment_span(range, chunk.size, header.segment_size);
    let stream = site
        .read(chunk.blob, HEADER_LEN as u64 + next * stride..span.end)
        .await
        .map_err(ReplicaFault::Site)?;
    Ok((header, SealedPieces::new(stream, site.id(), chunk.blob)))
}

/// Cuts a blob's stream, in whatever pieces the site yields, into the lengths asked for. A
/// length that lies within one piece is cut from it without a copy (and stays mutable, so a
/// segment is opened in place); only one that straddles two pieces is copied together.
struct SealedPieces {
    stream: BlobStream,
    /// The unread rest of the current piece.
    piece: BytesMut,
    site: String,
    blob: BlobId,
}

impl SealedPieces {
    fn new(stream: BlobStream, site: &str, blob: BlobId) -> Self {
        Self {
            stream,
            piece: BytesMut::new(),
            site: site.to_owned(),
            blob,
        }
    }

    /// The next piece from the site; a unique buffer becomes mutable without a copy.
    async fn next_piece(&mut self) -> Result<BytesMut, ReplicaFault> {
        match self.stream.next().await {
            Some(Ok(data)) => Ok(BytesMut::from(data)),
            Some(Err(e)) => Err(ReplicaFault::Site(e)),
            None => Err(ReplicaFault::Site(SiteError::Truncated {
                site: self.site.clone(),
                blob: self.blob,
            })),
        }
    }

    /// The next `len` bytes.
    async fn take(&mut self, len: usize) -> Result<BytesMut, ReplicaFault> {
        while self.piece.is_empty() && len > 0 {
            self.piece = self.next_piece().await?;
        }
        if self.piece.len() >= len {
            return Ok(self.piece.split_to(len));
        }
        let mut joined = BytesMut::with_capacity(len);
        joined.extend_from_slice(&std::mem::take(&mut self.piece));
        while joined.len() < len {
            let mut piece = self.next_piece().await?;
            let part = piece.split_to((len - joined.len()).min(piece.len()));
            joined.extend_from_slice(&part);
            self.piece = piece;
        }
        Ok(joined)
    }
}

/// Sends the plaintext of `range` (within one chunk) from `site`, starting at segment `*next`;
/// advances `*next` past every segment delivered.
async fn serve_from(
    site: &Arc<dyn Site>,
    chunk: &Chunk,
    range: &Range<u64>,
    cipher: &ObjectCipher,
    next: &mut u64,
    last: u64,
    out: &mut Out<'_>,
) -> Result<(), ReplicaFault> {
    let (header, mut pieces) = open_segments(site, chunk, range, cipher, *next).await?;
    let dec = SegmentDecryptor::new(
        &cipher.key,
        header,
        &cipher.blob_context(chunk.part, &chunk.blob),
        chunk.size,
    );
    let seg = u64::from(header.segment_size);
    while *next <= last {
        let mut sealed = pieces.take(dec.sealed_len(*next)).await?;
        // Decrypted in place: the plaintext is the start of the same buffer, sent without a copy.
        let plain_len = dec
            .open(*next, &mut sealed)
            .map_err(ReplicaFault::Crypto)?
            .len();
        sealed.truncate(plain_len);
        let seg_start = *next * seg;
        let lo = range.start.saturating_sub(seg_start);
        let hi = (range.end - seg_start).min(plain_len as u64);
        // lo and hi are within one segment: they fit usize.
        let piece = sealed.freeze().slice(lo as usize..hi as usize);
        *next += 1;
        out.send(piece).await?;
    }
    Ok(())
}

async fn copy_chunk(
    sites: &[Arc<dyn Site>],
    chunk: &Chunk,
    range: Range<u64>,
    cipher: &ObjectCipher,
    out: &mut Out<'_>,
    on_fault: Option<&FaultReport>,
) -> Result<(), std::io::Error> {
    let segment_size = cipher.segment_size;
    let (first, last, _) = segment_span(&range, chunk.size, segment_size);
    let mut next = first;
    let mut faults = Vec::new();
    for site in sites {
        match serve_from(site, chunk, &range, cipher, &mut next, last, out).await {
            Ok(()) | Err(ReplicaFault::Gone) => {
                // Served, after skipping a bad replica: have it repaired.
                if !faults.is_empty()
                    && let Some(report) = on_fault
                {
                    report();
                }
                return Ok(());
            }
            Err(ReplicaFault::Site(e)) => {
                tracing::warn!(site = site.id(), blob = %chunk.blob, error = %e, "replica unreadable; queued for repair; trying the next site");
                faults.push(format!("{}: {e}", site.id()));
            }
            Err(ReplicaFault::Crypto(e)) => {
                tracing::error!(site = site.id(), blob = %chunk.blob, error = %e, "replica failed authentication; queued for repair; trying the next site");
                faults.push(format!("{}: {e}", site.id()));
            }
        }
    }
    if let Some(report) = on_fault {
        report();
    }
    Err(std::io::Error::other(format!(
        "no replica of the object could be read ({})",
        faults.join("; ")
    )))
}

#[cfg(test)]
mod fault_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(data: &[u8], cuts: &[usize]) -> SealedPieces {
        let mut parts = Vec::new();
        let mut at = 0;
        for &cut in cuts.iter().chain([&data.len()]) {
            parts.push(Ok(Bytes::copy_from_slice(&data[at..cut])));
            at = cut;
        }
        SealedPieces::new(
            Box::pin(futures::stream::iter(parts)),
            "s",
            BlobId::random(),
        )
    }

    #[tokio::test]
    async fn lengths_are_cut_across_any_piece_boundaries() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        for cuts in [vec![], vec![1], vec![10, 20, 30], vec![100, 101, 500, 999]] {
            let mut p = pieces(&data, &cuts);
            let mut at = 0;
            for len in [16, 0, 300, 7, 300, 377] {
                let got = p.take(len).await.expect("take");
                assert_eq!(
                    &got[..],
                    &data[at..at + len],
                    "cuts {cuts:?}, {len} bytes at {at}"
                );
                at += len;
            }
            assert!(
                matches!(
                    p.take(1).await,
                    Err(ReplicaFault::Site(SiteError::Truncated { .. }))
                ),
                "past the end is a truncated blob"
            );
        }
    }

    #[tokio::test]
    async fn a_length_within_one_piece_is_not_copied() {
        let data = vec![7u8; 4096];
        let source = Bytes::from(data.clone());
        let start = source.as_ptr() as usize;
        let mut p = SealedPieces::new(
            Box::pin(futures::stream::iter(vec![Ok(source)])),
            "s",
            BlobId::random(),
        );
        p.take(16).await.expect("header");
        let segment = p.take(1000).await.expect("segment");
        assert_eq!(
            segment.as_ptr() as usize,
            start + 16,
            "cut from the site's own buffer"
        );
    }
}
