//! A site that records its latencies and failures in the process's metrics (labelled with the
//! site's id only), around any backend. It sees what the site sees: blob ids, never names.

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use obhut_core::BlobId;
use obhut_metrics::{SiteMetrics, SiteOp};
use obhut_sites::{BlobStream, BlobWriter, Capacity, Site, SiteError};
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// `inner`, measured.
pub struct MeteredSite {
    inner: Arc<dyn Site>,
    metrics: SiteMetrics,
}

impl MeteredSite {
    #[must_use]
    pub fn wrap(inner: Arc<dyn Site>) -> Arc<dyn Site> {
        let metrics = obhut_metrics::get().site(inner.id());
        Arc::new(Self { inner, metrics })
    }

    fn failed<T>(&self, op: SiteOp, r: Result<T, SiteError>) -> Result<T, SiteError> {
        if let Err(e) = &r
            && !e.is_not_found()
        {
            self.metrics.error(op);
        }
        r
    }
}

struct MeteredWriter {
    inner: Box<dyn BlobWriter>,
    started: Instant,
    metrics: SiteMetrics,
}

#[async_trait]
impl BlobWriter for MeteredWriter {
    async fn write(&mut self, data: Bytes) -> Result<(), SiteError> {
        let r = self.inner.write(data).await;
        if r.is_err() {
            self.metrics.error(SiteOp::Write);
        }
        r
    }

    async fn commit(self: Box<Self>) -> Result<u64, SiteError> {
        let Self {
            inner,
            started,
            metrics,
        } = *self;
        let r = inner.commit().await;
        match &r {
            Ok(_) => metrics.write_done(started.elapsed()),
            Err(_) => metrics.error(SiteOp::Write),
        }
        r
    }
}

/// A read's stream, timed to its end, or to when its reader stops (a read of a range that
/// ends inside the blob's last segment is dropped once it has what it needs).
struct MeteredStream {
    inner: BlobStream,
    started: Instant,
    metrics: SiteMetrics,
    done: bool,
}

impl Drop for MeteredStream {
    fn drop(&mut self) {
        if !self.done {
            self.metrics.read_done(self.started.elapsed());
        }
    }
}

impl Stream for MeteredStream {
    type Item = Result<Bytes, SiteError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let r = self.inner.as_mut().poll_next(cx);
        if !self.done {
            match &r {
                Poll::Ready(None) => {
                    self.done = true;
                    let took = self.started.elapsed();
                    self.metrics.read_done(took);
                }
                Poll::Ready(Some(Err(e))) => {
                    self.done = true;
                    if !e.is_not_found() {
                        self.metrics.error(SiteOp::Read);
                    }
                }
                _ => {}
            }
        }
        r
    }
}

#[async_trait]
impl Site for MeteredSite {
    fn id(&self) -> &str {
        self.inner.id()
    }

    async fn create(&self, blob: BlobId) -> Result<Box<dyn BlobWriter>, SiteError> {
        let started = Instant::now();
        let inner = self.failed(SiteOp::Write, self.inner.create(blob).await)?;
        Ok(Box::new(MeteredWriter {
            inner,
            started,
            metrics: self.metrics.clone(),
        }))
    }

    async fn read(&self, blob: BlobId, range: Range<u64>) -> Result<BlobStream, SiteError> {
        let started = Instant::now();
        let inner = self.failed(SiteOp::Read, self.inner.read(blob, range).await)?;
        if !obhut_metrics::enabled() {
            return Ok(inner);
        }
        Ok(Box::pin(MeteredStream {
            inner,
            started,
            metrics: self.metrics.clone(),
            done: false,
        }))
    }

    async fn len(&self, blob: BlobId) -> Result<u64, SiteError> {
        let r = self.inner.len(blob).await;
        self.failed(SiteOp::Read, r)
    }

    async fn delete(&self, blob: BlobId) -> Result<(), SiteError> {
        let r = self.inner.delete(blob).await;
        self.failed(SiteOp::Delete, r)
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

#[cfg(test)]
mod tests {
    use super::MeteredSite;
    use futures::TryStreamExt;
    use obhut_core::BlobId;
    use obhut_metrics::Snapshot;
    use obhut_sites::LocalSite;
    use std::sync::Arc;

    fn count(text: &str, metric: &str, labels: &str) -> u64 {
        let prefix = format!("{metric}{{{labels}}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn writes_and_reads_are_timed_and_failures_counted_but_not_absence() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (local, _) = LocalSite::create("metered-t", dir.path().join("s")).expect("site");
        let site = MeteredSite::wrap(Arc::new(local));
        assert_eq!(site.id(), "metered-t");
        let blob = BlobId::random();
        let mut w = site.create(blob).await.expect("create");
        w.write(bytes::Bytes::from_static(b"0123456789"))
            .await
            .expect("write");
        w.commit().await.expect("commit");
        // a read dropped before its end counts as done too
        let full: Vec<_> = site
            .read(blob, 0..10)
            .await
            .expect("read")
            .try_collect()
            .await
            .expect("bytes");
        assert_eq!(full.concat(), b"0123456789");
        drop(site.read(blob, 2..4).await.expect("read"));
        // a missing blob is no site failure
        assert!(site.read(BlobId::random(), 0..1).await.is_err());
        let text = obhut_metrics::get()
            .render(&Snapshot::default(), false)
            .expect("renders");
        let l = "site=\"metered-t\"";
        assert_eq!(
            count(&text, "obhut_site_write_duration_seconds_count", l),
            1,
            "{text}"
        );
        assert_eq!(
            count(&text, "obhut_site_read_duration_seconds_count", l),
            2,
            "{text}"
        );
        assert_eq!(
            count(
                &text,
                "obhut_site_errors_total",
                "site=\"metered-t\",op=\"read\""
            ),
            0,
            "{text}"
        );
    }
}
