//! The S3 and admin listeners' accept loop, with the limits that keep one client from
//! exhausting the process: a request's header section must arrive within
//! `header_read_timeout` (which also ends a keep-alive connection left waiting that long for
//! its next request), a connection on which no byte moves for `idle_timeout` while no request
//! is being handled is closed (a client that stops reading its response), and at most
//! `max_connections` connections are served at once: the next ones are answered `503` with
//! the listener's error body and closed, rather than holding file descriptors.
//!
//! It owns sockets only; what a request means is the service's.

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

/// The limits of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// Defaults of [`Limits`] (config keys `header_read_timeout_secs`, `idle_timeout_secs`,
/// `max_connections`).
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 30;
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(DEFAULT_HEADER_READ_TIMEOUT_SECS),
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl Limits {
    /// The limits a config file sets, defaults for what it leaves out; zero is refused.
    pub fn from_config(
        header_read_timeout_secs: Option<u64>,
        idle_timeout_secs: Option<u64>,
        max_connections: Option<usize>,
    ) -> anyhow::Result<Self> {
        let header = header_read_timeout_secs.unwrap_or(DEFAULT_HEADER_READ_TIMEOUT_SECS);
        let idle = idle_timeout_secs.unwrap_or(DEFAULT_IDLE_TIMEOUT_SECS);
        let max = max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
        if header == 0 || idle == 0 || max == 0 {
            anyhow::bail!(
                "header_read_timeout_secs, idle_timeout_secs and max_connections must be at least 1"
            );
        }
        Ok(Self {
            header_read_timeout: Duration::from_secs(header),
            idle_timeout: Duration::from_secs(idle),
            max_connections: max,
        })
    }
}

/// What a listener answers to a connection beyond its cap: the content type and body of a
/// `503`.
#[derive(Debug, Clone, Copy)]
pub struct Refusal {
    pub content_type: &'static str,
    pub body: &'static str,
}

/// The S3 listener's refusal: S3's `SlowDown`, which S3 clients retry with back-off.
pub const S3_REFUSAL: Refusal = Refusal {
    content_type: "application/xml",
    body: "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate: the server has too many open connections.</Message></Error>",
};

/// The admin listener's refusal, as every admin API error: JSON.
pub const ADMIN_REFUSAL: Refusal = Refusal {
    content_type: "application/json",
    body: "{\"error\":\"unavailable\",\"message\":\"the server has too many open connections; retry later\"}",
};

/// Connections being refused at once at most; beyond, a connection is closed unanswered.
const MAX_REFUSING: usize = 64;
/// How long a refusal waits for the request head and for its answer to be taken.
const REFUSAL_TIME: Duration = Duration::from_secs(2);

/// When bytes last moved on a connection, and how many of its requests are being handled.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// When the connection will have been idle for `idle`, if nothing moves meanwhile.
    fn idle_deadline(&self, idle: Duration) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + idle
    }
}

/// A socket that notes when bytes move.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A service that counts the requests of its connection being handled.
#[derive(Clone)]
struct Counted<S> {
    inner: S,
    activity: Arc<Activity>,
}

/// Counts a request as handled when dropped (its future finished or was dropped).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

impl<S, B> hyper::service::Service<hyper::Request<Incoming>> for Counted<S>
where
    S: hyper::service::Service<hyper::Request<Incoming>, Response = hyper::Response<B>>,
    S::Future: Send + 'static,
{
    type Response = hyper::Response<B>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<hyper::Response<B>, S::Error>> + Send>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        self.activity.in_flight.fetch_add(1, Ordering::Relaxed);
        let guard = InFlight(Arc::clone(&self.activity));
        let fut = self.inner.call(req);
        Box::pin(async move {
            let r = fut.await;
            drop(guard);
            r
        })
    }
}

/// Serves `service` on `listener` within `limits` until `stop` turns true, then lets the
/// connections being served finish.
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    limits: Limits,
    refusal: Refusal,
    mut stop: watch::Receiver<bool>,
) where
    S: hyper::service::Service<hyper::Request<Incoming>, Response = hyper::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    loop {
        let accepted = tokio::select! {
            res = listener.accept() => res,
            _ = stop.wait_for(|s| *s) => break,
        };
        let socket = match accepted {
            Ok((socket, _)) => socket,
            Err(e) => {
                // e.g. out of file descriptors: pause rather than spin on the error
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            if let Ok(turn) = Arc::clone(&refusing).try_acquire_owned() {
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(REFUSAL_TIME, refuse(socket, refusal)).await;
                    drop(turn);
                });
            }
            continue;
        };
        // Responses are written in a few pieces (head, then body frames): without TCP_NODELAY
        // a small response's last piece waits for the client's delayed ACK (about 40 ms).
        if let Err(e) = socket.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let activity = Activity::new();
        let io = TokioIo::new(Tracked {
            inner: socket,
            activity: Arc::clone(&activity),
        });
        let counted = Counted {
            inner: service.clone(),
            activity: Arc::clone(&activity),
        };
        let conn = graceful.watch(http.serve_connection(io, counted));
        let idle = limits.idle_timeout;
        tokio::spawn(async move {
            tokio::pin!(conn);
            loop {
                let deadline = activity.idle_deadline(idle);
                tokio::select! {
                    _ = &mut conn => break,
                    () = tokio::time::sleep_until(deadline.into()) => {
                        let idle_now = activity.idle_deadline(idle) <= Instant::now();
                        if idle_now && activity.in_flight.load(Ordering::Relaxed) == 0 {
                            // Dropping the connection closes the socket.
                            break;
                        }
                        if idle_now {
                            // A request is being handled: look again a while later.
                            activity.touch();
                        }
                    }
                }
            }
            drop(slot);
        });
    }
    graceful.shutdown().await;
}

/// Answers a connection beyond the cap: reads what the client sent of its request head (so
/// that closing does not reset the connection under the answer), writes the `503`, closes.
async fn refuse(mut socket: TcpStream, refusal: Refusal) {
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") && seen.len() < 16 * 1024 {
        match tokio::time::timeout(Duration::from_millis(500), socket.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => seen.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {}\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{}",
        refusal.content_type,
        refusal.body.len(),
        refusal.body
    );
    if socket.write_all(answer.as_bytes()).await.is_ok() {
        let _ = socket.shutdown().await;
        // Let the client read the answer before the socket goes.
        let _ = tokio::time::timeout(Duration::from_millis(500), socket.read(&mut buf)).await;
    }
}
