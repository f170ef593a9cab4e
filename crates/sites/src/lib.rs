//! Sites: the places where blobs live, behind one trait.
//!
//! A site stores opaque blobs under random [`BlobId`]s. It never learns object names, tenants or
//! plaintext: everything it is given is already ciphertext, what may be at rest in a datacenter. This crate owns durability of a single blob on a single site;
//! replication across sites is the gateway's job.
//!
//! Failure semantics every backend keeps:
//! - [`BlobWriter::commit`] returns only once the blob is durable under its final name; if it
//!   returns an error, the blob may or may not exist (callers treat it as an orphan candidate).
//! - A writer dropped or aborted before `commit` leaves no blob under the final name.
//! - [`Site::delete`] of a missing blob succeeds; an error means "unknown whether it went".
//! - [`Site::read`] of a missing blob is [`SiteError::NotFound`], so callers can try a replica.
//! - Every call on a remote backend is bounded in time: a site that does not answer is an
//!   error ([`SiteError::Remote`]), never a hang and never a success.
//!
//! Backends: [`LocalSite`] (a directory) and [`S3Site`] (a bucket on an S3-compatible cluster).
//! The behaviour they share is one test suite, `conformance` (feature `conformance`), that
//! every backend's tests run. Tests elsewhere break sites on purpose through `faults::FaultySite`
//! (feature `faults`).

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
#[cfg(any(test, feature = "faults"))]
pub mod faults;
mod local;
mod s3;

pub use local::LocalSite;
pub use s3::{S3Site, S3SiteConfig};

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use obhut_core::BlobId;
use std::ops::Range;
use std::pin::Pin;
use std::time::{Duration, SystemTime};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SiteError {
    #[error("blob {blob} not found on site {site}")]
    NotFound { site: String, blob: BlobId },
    #[error("blob {blob} on site {site} is shorter than expected")]
    Truncated { site: String, blob: BlobId },
    #[error("site {site} is down: {reason}")]
    Identity { site: String, reason: String },
    #[error("site {site}: {op}: {source}")]
    Io {
        site: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The site's configuration cannot work (a malformed endpoint, an empty key, …).
    #[error("site {site}: invalid configuration: {reason}")]
    Config { site: String, reason: String },
    /// A remote site refused the call, failed it, or did not answer in time. `status` is the
    /// HTTP status when there was an answer; `reason` says what went wrong (never a URL, a
    /// signature or a credential). Whether a write or delete took effect is unknown.
    #[error("site {site}: {op}: {reason}")]
    Remote {
        site: String,
        op: &'static str,
        status: Option<u16>,
        reason: String,
    },
}

impl SiteError {
    /// True when the blob is simply absent, so a replica elsewhere may serve instead.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

/// A stream of a blob's bytes.
pub type BlobStream = Pin<Box<dyn Stream<Item = Result<Bytes, SiteError>> + Send>>;

/// Writes one blob; durable only after [`BlobWriter::commit`].
#[async_trait]
pub trait BlobWriter: Send {
    async fn write(&mut self, data: Bytes) -> Result<(), SiteError>;
    /// Makes the blob durable under its final name and returns its length.
    async fn commit(self: Box<Self>) -> Result<u64, SiteError>;
}

#[async_trait]
pub trait Site: Send + Sync {
    fn id(&self) -> &str;
    /// Starts writing a new blob.
    async fn create(&self, blob: BlobId) -> Result<Box<dyn BlobWriter>, SiteError>;
    /// Reads `range` of a blob; the stream fails with [`SiteError::Truncated`] if it ends early.
    async fn read(&self, blob: BlobId, range: Range<u64>) -> Result<BlobStream, SiteError>;
    /// Length of a stored blob.
    async fn len(&self, blob: BlobId) -> Result<u64, SiteError>;
    async fn delete(&self, blob: BlobId) -> Result<(), SiteError>;
    /// Every blob stored on the site (used by garbage collection and scrubbing).
    async fn list(&self) -> Result<Vec<BlobId>, SiteError>;
    /// Every blob stored on the site with the time it was written, by the site's clock (a
    /// blob is listed only once committed, so for a blob this is about when its write
    /// committed). Orphan collection leaves blobs younger than its grace period alone: a write
    /// in flight commits them to the catalog within that time. A backend that cannot tell a
    /// blob's age answers the time of the call for it, so that it never looks old. (No
    /// default: a wrapper that forgot to pass it on would make every blob look new.)
    async fn list_aged(&self) -> Result<Vec<(BlobId, SystemTime)>, SiteError>;
    /// Removes leftovers of writes that never committed; returns how many were removed.
    async fn clear_temporary(&self) -> Result<usize, SiteError>;
    /// Removes leftovers of writes that never committed and began at least `min_age` ago (by
    /// the site's clock), leaving younger ones, which may be writes still in progress on
    /// another gateway. A backend that cannot tell the age removes nothing unless `min_age`
    /// is zero.
    async fn clear_temporary_older_than(&self, min_age: Duration) -> Result<usize, SiteError>;
    /// Space on the site's storage, if the backend can tell (an S3 cluster usually cannot).
    async fn capacity(&self) -> Result<Option<Capacity>, SiteError>;
    /// Whether the site is still the one that was opened and answers: its identity is in
    /// place (a disk still mounted, the same bucket). An error means the site is down.
    async fn check(&self) -> Result<(), SiteError>;
}

/// Space on a site's storage, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub total_bytes: u64,
    /// What obhut may still write (for a file system: blocks available to unprivileged users).
    pub available_bytes: u64,
}
