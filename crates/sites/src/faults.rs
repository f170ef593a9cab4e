//! A site that breaks on purpose: a wrapper around any [`Site`] whose faults tests switch on and
//! off while it is in use (feature `faults`).
//!
//! It owns nothing but the fault switches; every call that is not made to fail goes to the
//! wrapped site unchanged. It must never be built into the product: it exists so that tests of
//! replication, commit and read failover can make one site fail at a chosen point (at create,
//! after some bytes of a write, at commit, or on read with a missing, short or altered blob)
//! and check that no acknowledged write is lost and no unauthenticated byte is served.

use crate::{BlobStream, BlobWriter, Capacity, Site, SiteError};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use obhut_core::BlobId;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What a read of a blob does instead of returning the stored bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFault {
    /// The blob is reported missing.
    Missing,
    /// The stream ends after this many bytes of the requested range.
    Truncated(u64),
    /// The byte at this offset of the blob (if the range covers it) has its bits flipped.
    FlippedByte(u64),
}

/// The switches of one [`FaultySite`]; shared, so a test can change them while the site is used.
#[derive(Debug)]
pub struct Faults {
    fail_create: AtomicBool,
    /// A write fails once the blob would grow past this many bytes (`u64::MAX`: never).
    fail_write_after: AtomicU64,
    fail_commit: AtomicBool,
    fail_delete: AtomicBool,
    read: Mutex<Option<ReadFault>>,
    /// Calls made to fail so far, so tests can see that a fault was really hit.
    injected: AtomicUsize,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            fail_create: AtomicBool::new(false),
            fail_write_after: AtomicU64::new(u64::MAX),
            fail_commit: AtomicBool::new(false),
            fail_delete: AtomicBool::new(false),
            read: Mutex::new(None),
            injected: AtomicUsize::new(0),
        }
    }
}

impl Faults {
    /// Starting a write fails.
    pub fn fail_create(&self, on: bool) {
        self.fail_create.store(on, Ordering::SeqCst);
    }

    /// A write fails once the blob being written would exceed `bytes`; `None` turns it off.
    pub fn fail_write_after(&self, bytes: Option<u64>) {
        self.fail_write_after
            .store(bytes.unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    /// Committing a blob fails (after every byte was accepted), leaving no blob behind.
    pub fn fail_commit(&self, on: bool) {
        self.fail_commit.store(on, Ordering::SeqCst);
    }

    /// Deleting a blob fails with "unknown whether it went", and leaves the blob.
    pub fn fail_delete(&self, on: bool) {
        self.fail_delete.store(on, Ordering::SeqCst);
    }

    /// Every read of a blob misbehaves as `fault` says; `None` reads the stored bytes again.
    pub fn fail_reads(&self, fault: Option<ReadFault>) {
        *self
            .read
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fault;
    }

    /// How many calls were made to fail so far.
    #[must_use]
    pub fn injected(&self) -> usize {
        self.injected.load(Ordering::SeqCst)
    }

    fn read_fault(&self) -> Option<ReadFault> {
        *self
            .read
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn hit(&self, site: &str, op: &'static str) -> SiteError {
        self.injected.fetch_add(1, Ordering::SeqCst);
        SiteError::Io {
            site: site.to_owned(),
            op,
            source: std::io::Error::other("injected fault"),
        }
    }
}

/// A [`Site`] that fails when its [`Faults`] say so, and otherwise is the site it wraps.
pub struct FaultySite {
    inner: Arc<dyn Site>,
    faults: Arc<Faults>,
}

impl FaultySite {
    /// Wraps `inner`; the returned switches start with every fault off.
    pub fn wrap(inner: Arc<dyn Site>) -> (Arc<Self>, Arc<Faults>) {
        let faults = Arc::new(Faults::default());
        let site = Arc::new(Self {
            inner,
            faults: Arc::clone(&faults),
        });
        (site, faults)
    }
}

struct FaultyWriter {
    inner: Box<dyn BlobWriter>,
    faults: Arc<Faults>,
    site: String,
    written: u64,
}

#[async_trait]
impl BlobWriter for FaultyWriter {
    async fn write(&mut self, data: Bytes) -> Result<(), SiteError> {
        let limit = self.faults.fail_write_after.load(Ordering::SeqCst);
        if self.written.saturating_add(data.len() as u64) > limit {
            // The wrapped writer is dropped with this one: its temporary file goes with it.
            return Err(self.faults.hit(&self.site, "write blob"));
        }
        self.written += data.len() as u64;
        self.inner.write(data).await
    }

    async fn commit(self: Box<Self>) -> Result<u64, SiteError> {
        if self.faults.fail_commit.load(Ordering::SeqCst) {
            return Err(self.faults.hit(&self.site, "commit blob"));
        }
        self.inner.commit().await
    }
}

/// Applies a truncation or a flipped byte to the stream of `range` of a blob.
fn misread(
    stream: BlobStream,
    range: &Range<u64>,
    fault: ReadFault,
    site: String,
    blob: BlobId,
) -> BlobStream {
    match fault {
        // Handled before the blob is opened.
        ReadFault::Missing => stream,
        ReadFault::Truncated(keep) => {
            let head = stream.scan(keep, |left, item| {
                let out = match item {
                    Err(e) => Some(Err(e)),
                    Ok(_) if *left == 0 => None,
                    Ok(bytes) => {
                        let n = (*left).min(bytes.len() as u64);
                        *left -= n;
                        // n <= bytes.len(), so it fits usize.
                        #[allow(clippy::cast_possible_truncation)]
                        Some(Ok(bytes.slice(..n as usize)))
                    }
                };
                futures::future::ready(out)
            });
            // What a short blob looks like to a reader: the bytes there are, then the error
            // every backend gives when a blob ends early.
            let cut = futures::stream::once(futures::future::ready(Err(SiteError::Truncated {
                site,
                blob,
            })));
            Box::pin(head.chain(cut))
        }
        ReadFault::FlippedByte(at) => {
            let mut offset = range.start;
            Box::pin(stream.map(move |item| {
                let bytes = item?;
                let start = offset;
                offset += bytes.len() as u64;
                if !(start..offset).contains(&at) {
                    return Ok(bytes);
                }
                let mut altered = BytesMut::from(&bytes[..]);
                // at - start < bytes.len(), so it fits usize.
                #[allow(clippy::cast_possible_truncation)]
                let i = (at - start) as usize;
                altered[i] ^= 0xff;
                Ok(altered.freeze())
            }))
        }
    }
}

#[async_trait]
impl Site for FaultySite {
    fn id(&self) -> &str {
        self.inner.id()
    }

    async fn create(&self, blob: BlobId) -> Result<Box<dyn BlobWriter>, SiteError> {
        if self.faults.fail_create.load(Ordering::SeqCst) {
            return Err(self.faults.hit(self.id(), "create blob"));
        }
        let inner = self.inner.create(blob).await?;
        Ok(Box::new(FaultyWriter {
            inner,
            faults: Arc::clone(&self.faults),
            site: self.id().to_owned(),
            written: 0,
        }))
    }

    async fn read(&self, blob: BlobId, range: Range<u64>) -> Result<BlobStream, SiteError> {
        match self.faults.read_fault() {
            None => self.inner.read(blob, range).await,
            Some(ReadFault::Missing) => {
                self.faults.injected.fetch_add(1, Ordering::SeqCst);
                Err(SiteError::NotFound {
                    site: self.id().to_owned(),
                    blob,
                })
            }
            Some(fault) => {
                self.faults.injected.fetch_add(1, Ordering::SeqCst);
                let stream = self.inner.read(blob, range.clone()).await?;
                Ok(misread(stream, &range, fault, self.id().to_owned(), blob))
            }
        }
    }

    async fn len(&self, blob: BlobId) -> Result<u64, SiteError> {
        if self.faults.read_fault() == Some(ReadFault::Missing) {
            return Err(SiteError::NotFound {
                site: self.id().to_owned(),
                blob,
            });
        }
        self.inner.len(blob).await
    }

    async fn delete(&self, blob: BlobId) -> Result<(), SiteError> {
        if self.faults.fail_delete.load(Ordering::SeqCst) {
            return Err(self.faults.hit(self.id(), "delete blob"));
        }
        self.inner.delete(blob).await
    }

    async fn list(&self) -> Result<Vec<BlobId>, SiteError> {
        self.inner.list().await
    }

    async fn list_aged(&self) -> Result<Vec<(BlobId, std::time::SystemTime)>, SiteError> {
        self.inner.list_aged().await
    }

    async fn clear_temporary(&self) -> Result<usize, SiteError> {
        self.inner.clear_temporary().await
    }

    async fn clear_temporary_older_than(
        &self,
        min_age: std::time::Duration,
    ) -> Result<usize, SiteError> {
        self.inner.clear_temporary_older_than(min_age).await
    }

    async fn capacity(&self) -> Result<Option<Capacity>, SiteError> {
        self.inner.capacity().await
    }

    async fn check(&self) -> Result<(), SiteError> {
        self.inner.check().await
    }
}
