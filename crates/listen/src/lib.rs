//! obhut's listeners (S3, admin API, trustee API): the accept loop, with the limits that keep
//! one client from exhausting the process: a request's header section must arrive within
//! `header_read_timeout` (which also ends a keep-alive connection left waiting that long for
//! its next request), a connection on which no byte moves for `idle_timeout` while no request
//! is being handled is closed (a client that stops reading its response), and at most
//! `max_connections` connections are served at once: the next ones are answered `503` with
//! the listener's error body and closed, rather than holding file descriptors.
//!
//! A listener speaks plain HTTP/1.1, or HTTP/1.1 over TLS ([`Options::tls`]; [`tls`] reads a
//! certificate and key and reloads them). A client speaking plain HTTP to a TLS listener is
//! answered `400` in plain HTTP, saying so, and closed. On a TLS listener a connection takes
//! one of the `max_connections` slots only once its handshake is done: handshakes in progress
//! are bounded on their own ([`HandshakeLimits`]: in time, per source address, and in all, a new
//! one beyond the total cancelling the oldest), so that clients that connect and never finish
//! a handshake (on the trustee API, never present a gateway's certificate) cannot lock out
//! those that do.
//!
//! It owns sockets only: what a request means is the service's, and it depends on no other
//! obhut crate.

pub mod tls;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, oneshot, watch};
use tokio_rustls::TlsAcceptor;

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
    ) -> Result<Self, InvalidLimits> {
        let header = header_read_timeout_secs.unwrap_or(DEFAULT_HEADER_READ_TIMEOUT_SECS);
        let idle = idle_timeout_secs.unwrap_or(DEFAULT_IDLE_TIMEOUT_SECS);
        let max = max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
        if header == 0 || idle == 0 || max == 0 {
            return Err(InvalidLimits);
        }
        Ok(Self {
            header_read_timeout: Duration::from_secs(header),
            idle_timeout: Duration::from_secs(idle),
            max_connections: max,
        })
    }
}

/// The bounds on TLS handshakes in progress, which hold no connection slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeLimits {
    /// Handshakes in progress at most; a new connection beyond cancels the oldest one, so
    /// that a flood from many addresses delays a real client by at most a retry.
    pub max_pending: usize,
    /// Handshakes in progress from one source at most (an IPv4 address, an IPv6 /64); a new
    /// connection from it beyond is closed at once.
    pub max_pending_per_source: usize,
    /// A handshake not done in this long (or in `header_read_timeout`, if that is shorter) is
    /// cut.
    pub timeout: Duration,
}

impl Default for HandshakeLimits {
    fn default() -> Self {
        Self {
            max_pending: 1024,
            // Generous, since many clients behind one NAT or layer-4 load balancer share an address.
            max_pending_per_source: 64,
            timeout: Duration::from_secs(10),
        }
    }
}

/// A limit set to zero.
#[derive(Debug, thiserror::Error)]
#[error("header_read_timeout_secs, idle_timeout_secs and max_connections must be at least 1")]
pub struct InvalidLimits;

/// What a listener answers in its own error format: to a connection beyond its cap (`503`),
/// and, on a TLS listener, to a request in plain HTTP (`400`).
#[derive(Debug, Clone, Copy)]
pub struct Refusal {
    pub content_type: &'static str,
    /// The `503`'s body.
    pub body: &'static str,
    /// The `400`'s body.
    pub plain_http_body: &'static str,
}

/// The S3 listener's refusal: S3's `SlowDown`, which S3 clients retry with back-off.
pub const S3_REFUSAL: Refusal = Refusal {
    content_type: "application/xml",
    body: "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate: the server has too many open connections.</Message></Error>",
    plain_http_body: "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InvalidRequest</Code><Message>This endpoint speaks HTTPS only: use an https:// endpoint URL.</Message></Error>",
};

/// The admin listener's refusal, as every admin API error: JSON.
pub const ADMIN_REFUSAL: Refusal = Refusal {
    content_type: "application/json",
    body: "{\"error\":\"unavailable\",\"message\":\"the server has too many open connections; retry later\"}",
    plain_http_body: "{\"error\":\"bad_request\",\"message\":\"this listener speaks HTTPS only: use an https:// URL\"}",
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

/// A socket that notes when bytes move (under TLS, bytes of records).
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

/// What a request knows of its connection, in its extensions: who sent it and whether over
/// TLS (a service may set `Secure` cookies, or judge `aws:SecureTransport`, by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection {
    pub peer: std::net::SocketAddr,
    pub tls: bool,
}

/// The certificate (DER) a TLS client presented and the listener's client verifier accepted,
/// in the extensions of each request of that connection (only on a listener that asks for
/// client certificates, the trustee API's): who the peer is, as its certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate(pub Arc<[u8]>);

/// A service that counts the requests of its connection being handled.
#[derive(Clone)]
struct Counted<S> {
    inner: S,
    activity: Arc<Activity>,
    connection: Connection,
    peer_certificate: Option<PeerCertificate>,
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

    fn call(&self, mut req: hyper::Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(self.connection);
        if let Some(cert) = &self.peer_certificate {
            req.extensions_mut().insert(cert.clone());
        }
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

/// How a listener serves, beyond the service itself.
#[derive(Clone)]
pub struct Options {
    pub limits: Limits,
    pub refusal: Refusal,
    /// TLS settings; `None` serves plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The bounds on handshakes in progress (TLS only).
    pub handshakes: HandshakeLimits,
    /// After the stop: how long the connections being served are given to finish; `None`
    /// waits for them all.
    pub drain: Option<Duration>,
    /// The listener's name in log lines, e.g. `S3`.
    pub name: &'static str,
    /// Whether failed TLS handshakes are warnings (a listener only known peers use) or
    /// debug lines (a public listener, where scanners fail them all day).
    pub warn_failed_handshakes: bool,
}

impl Options {
    /// Plain HTTP, waiting for every connection at the stop.
    #[must_use]
    pub fn plain(name: &'static str, limits: Limits, refusal: Refusal) -> Self {
        Self {
            limits,
            refusal,
            tls: None,
            handshakes: HandshakeLimits::default(),
            drain: None,
            name,
            warn_failed_handshakes: false,
        }
    }
}

/// Serves `service` on `listener` as `options` say until `stop` turns true, then lets the
/// connections being served finish.
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    options: Options,
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
    let limits = options.limits;
    let refusal = options.refusal;
    let acceptor = options.tls.clone().map(TlsAcceptor::from);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let handshakes = Arc::new(Pending::new(options.handshakes));
    let handshake_time = options.handshakes.timeout.min(limits.header_read_timeout);
    loop {
        let accepted = tokio::select! {
            res = listener.accept() => res,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (socket, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // e.g. out of file descriptors: pause rather than spin on the error
                tracing::warn!(listener = options.name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Responses are written in a few pieces (head, then body frames): without TCP_NODELAY
        // a small response's last piece waits for the client's delayed ACK (about 40 ms).
        if let Err(e) = socket.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let activity = Activity::new();
        let tracked = Tracked {
            inner: socket,
            activity: Arc::clone(&activity),
        };
        let mut counted = Counted {
            inner: service.clone(),
            activity: Arc::clone(&activity),
            connection: Connection {
                peer,
                tls: acceptor.is_some(),
            },
            peer_certificate: None,
        };
        let http = http.clone();
        let watcher = graceful.watcher();
        let Some(acceptor) = acceptor.clone() else {
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                if let Ok(turn) = Arc::clone(&refusing).try_acquire_owned() {
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(REFUSAL_TIME, refuse(tracked, refusal)).await;
                        drop(turn);
                    });
                }
                continue;
            };
            tokio::spawn(async move {
                let conn = watcher.watch(http.serve_connection(TokioIo::new(tracked), counted));
                until_idle(conn, &activity, limits.idle_timeout).await;
                drop(slot);
            });
            continue;
        };
        let Some(mut pending) = handshakes.enter(peer.ip()) else {
            tracing::debug!(listener = options.name, %peer, "closed: too many handshakes in progress from its address");
            continue;
        };
        let (slots, refusing) = (Arc::clone(&slots), Arc::clone(&refusing));
        let (name, warn) = (options.name, options.warn_failed_handshakes);
        tokio::spawn(async move {
            let shaken = tokio::select! {
                shaken = tokio::time::timeout(handshake_time, handshake(&acceptor, tracked, refusal)) => shaken,
                _ = &mut pending.cancelled => {
                    tracing::debug!(listener = name, %peer, "TLS handshake cancelled for a newer one");
                    return;
                }
            };
            drop(pending);
            let stream = match shaken {
                Ok(Ok(stream)) => stream,
                Ok(Err(Handshake::PlainHttp)) => {
                    tracing::debug!(listener = name, %peer, "answered a plain HTTP request on a TLS listener");
                    return;
                }
                Ok(Err(Handshake::Failed(e))) => {
                    if warn {
                        tracing::warn!(listener = name, %peer, error = %e, "refused a TLS connection");
                    } else {
                        tracing::debug!(listener = name, %peer, error = %e, "refused a TLS connection");
                    }
                    return;
                }
                Err(_) => {
                    if warn {
                        tracing::warn!(listener = name, %peer, "TLS handshake not completed in time");
                    } else {
                        tracing::debug!(listener = name, %peer, "TLS handshake not completed in time");
                    }
                    return;
                }
            };
            let Ok(slot) = slots.try_acquire_owned() else {
                if let Ok(turn) = refusing.try_acquire_owned() {
                    let _ = tokio::time::timeout(REFUSAL_TIME, refuse(stream, refusal)).await;
                    drop(turn);
                }
                return;
            };
            counted.peer_certificate = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|leaf| PeerCertificate(Arc::from(leaf.as_ref())));
            let conn = watcher.watch(http.serve_connection(TokioIo::new(stream), counted));
            until_idle(conn, &activity, limits.idle_timeout).await;
            drop(slot);
        });
    }
    match options.drain {
        Some(bound) => {
            let _ = tokio::time::timeout(bound, graceful.shutdown()).await;
        }
        None => graceful.shutdown().await,
    }
}

/// The TLS handshakes in progress, oldest first, and how many each source has.
struct Pending {
    limits: HandshakeLimits,
    state: Mutex<PendingState>,
}

#[derive(Default)]
struct PendingState {
    next: u64,
    /// By the order they started in: the source, and the sender whose drop cancels it.
    by_age: BTreeMap<u64, (IpAddr, oneshot::Sender<()>)>,
    per_source: HashMap<IpAddr, usize>,
}

impl PendingState {
    fn forget(&mut self, id: u64) {
        if let Some((source, _cancel)) = self.by_age.remove(&id) {
            self.leave(source);
        }
    }

    fn leave(&mut self, source: IpAddr) {
        if let Some(n) = self.per_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&source);
            }
        }
    }
}

/// One handshake in progress; it counts until dropped.
struct PendingTurn {
    pending: Arc<Pending>,
    id: u64,
    /// Resolves when a newer handshake cancelled this one.
    cancelled: oneshot::Receiver<()>,
}

impl Drop for PendingTurn {
    fn drop(&mut self) {
        self.pending.lock().forget(self.id);
    }
}

impl Pending {
    fn new(limits: HandshakeLimits) -> Self {
        Self {
            limits,
            state: Mutex::new(PendingState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PendingState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A turn for a handshake from `peer`, or `None` if its source has too many in progress;
    /// beyond the total, the oldest handshake is cancelled to make room.
    fn enter(self: &Arc<Self>, peer: IpAddr) -> Option<PendingTurn> {
        let source = source_of(peer);
        let mut state = self.lock();
        if state.per_source.get(&source).copied().unwrap_or(0) >= self.limits.max_pending_per_source
        {
            return None;
        }
        while state.by_age.len() >= self.limits.max_pending {
            let Some((oldest, _)) = state.by_age.first_key_value() else {
                break;
            };
            let oldest = *oldest;
            // Dropping its sender wakes the oldest handshake's task, which closes it.
            state.forget(oldest);
        }
        let id = state.next;
        state.next += 1;
        let (cancel, cancelled) = oneshot::channel();
        state.by_age.insert(id, (source, cancel));
        *state.per_source.entry(source).or_default() += 1;
        drop(state);
        Some(PendingTurn {
            pending: Arc::clone(self),
            id,
            cancelled,
        })
    }
}

/// The source a handshake counts against: an IPv4 address, or an IPv6 address's /64 (what
/// one customer of a provider usually holds).
fn source_of(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(_) => peer,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// Drives a connection until it ends, or until no byte moved on it for `idle` while none of
/// its requests was being handled (dropping it closes the socket).
async fn until_idle<F: Future>(conn: F, activity: &Activity, idle: Duration) {
    tokio::pin!(conn);
    loop {
        let deadline = activity.idle_deadline(idle);
        tokio::select! {
            _ = &mut conn => break,
            () = tokio::time::sleep_until(deadline.into()) => {
                let idle_now = activity.idle_deadline(idle) <= Instant::now();
                if idle_now && activity.in_flight.load(Ordering::Relaxed) == 0 {
                    break;
                }
                if idle_now {
                    // A request is being handled: look again a while later.
                    activity.touch();
                }
            }
        }
    }
}

/// Why a TLS connection was not made.
enum Handshake {
    /// The client spoke plain HTTP and was told so.
    PlainHttp,
    Failed(std::io::Error),
}

/// The TLS record type of a handshake: the first byte of every ClientHello.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// The server side of a TLS handshake; a client that speaks plain HTTP instead (its first byte
/// a letter, as every request method's) is answered `400` in plain HTTP.
async fn handshake(
    acceptor: &TlsAcceptor,
    tracked: Tracked,
    refusal: Refusal,
) -> Result<tokio_rustls::server::TlsStream<Tracked>, Handshake> {
    let mut first = [0u8; 1];
    match tracked.inner.peek(&mut first).await {
        Ok(1..) if first[0] != TLS_HANDSHAKE_RECORD && first[0].is_ascii_alphabetic() => {
            let _ = tokio::time::timeout(
                REFUSAL_TIME,
                answer(
                    tracked,
                    "400 Bad Request",
                    refusal.content_type,
                    refusal.plain_http_body,
                ),
            )
            .await;
            return Err(Handshake::PlainHttp);
        }
        Ok(_) => {}
        Err(e) => return Err(Handshake::Failed(e)),
    }
    acceptor.accept(tracked).await.map_err(Handshake::Failed)
}

/// Answers a connection beyond the cap with the listener's `503`.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(socket: S, refusal: Refusal) {
    answer(
        socket,
        "503 Service Unavailable",
        refusal.content_type,
        refusal.body,
    )
    .await;
}

/// Reads what the client sent of its request head (so that closing does not reset the
/// connection under the answer), writes the answer, closes.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    mut socket: S,
    status: &str,
    content_type: &str,
    body: &str,
) {
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") && seen.len() < 16 * 1024 {
        match tokio::time::timeout(Duration::from_millis(500), socket.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => seen.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    let retry = if status.starts_with("503") {
        "retry-after: 1\r\n"
    } else {
        ""
    };
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n{retry}connection: close\r\n\r\n{body}",
        body.len(),
    );
    if socket.write_all(answer.as_bytes()).await.is_ok() {
        let _ = socket.shutdown().await;
        // Let the client read the answer before the socket goes.
        let _ = tokio::time::timeout(Duration::from_millis(500), socket.read(&mut buf)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::ServerCert;
    use bytes::Bytes;
    use http_body_util::Full;
    use rustls::pki_types::ServerName;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    /// A CA and a certificate for 127.0.0.1 it signed, with `cn` as common name.
    struct Pki {
        ca: rcgen::Certificate,
        params: rcgen::CertificateParams,
        ca_key: rcgen::KeyPair,
    }

    impl Pki {
        fn new() -> Self {
            let ca_key = rcgen::KeyPair::generate().expect("key");
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "test CA");
            let ca = params.self_signed(&ca_key).expect("ca");
            Self { ca, params, ca_key }
        }

        fn issue(&self, dir: &Path, cn: &str) -> (PathBuf, PathBuf) {
            let key = rcgen::KeyPair::generate().expect("key");
            let mut params =
                rcgen::CertificateParams::new(vec!["127.0.0.1".into()]).expect("params");
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
            let issuer = rcgen::Issuer::from_params(&self.params, &self.ca_key);
            let cert = params.signed_by(&key, &issuer).expect("cert");
            let (c, k) = (dir.join(format!("{cn}.crt")), dir.join(format!("{cn}.key")));
            std::fs::write(&c, cert.pem()).expect("write");
            std::fs::write(&k, key.serialize_pem()).expect("write");
            std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            (c, k)
        }

        fn connector(&self) -> tokio_rustls::TlsConnector {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.ca.der().clone()).expect("root");
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
            tokio_rustls::TlsConnector::from(Arc::new(config))
        }
    }

    async fn start(limits: Limits, cert: &Arc<ServerCert>) -> (u16, watch::Sender<bool>) {
        start_with(limits, HandshakeLimits::default(), cert).await
    }

    async fn start_with(
        limits: Limits,
        handshakes: HandshakeLimits,
        cert: &Arc<ServerCert>,
    ) -> (u16, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let service = hyper::service::service_fn(|_req| async {
            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                b"hello",
            ))))
        });
        let mut options = Options::plain("test", limits, S3_REFUSAL);
        options.tls = Some(cert.server_config().expect("config"));
        options.handshakes = handshakes;
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(serve(listener, service, options, stop_rx));
        (port, stop_tx)
    }

    type Tls = tokio_rustls::client::TlsStream<TcpStream>;

    async fn connect(pki: &Pki, port: u16) -> std::io::Result<Tls> {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
        let name = ServerName::try_from("127.0.0.1").expect("name");
        pki.connector().connect(name, tcp).await
    }

    /// One request on `tls`; the answer's head and body.
    async fn get(tls: &mut Tls) -> String {
        tls.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .expect("write");
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).ends_with("hello") {
            let n = tls.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&got).into_owned()
    }

    fn leaf_cn(tls: &Tls) -> Vec<u8> {
        tls.get_ref().1.peer_certificates().expect("certs")[0]
            .as_ref()
            .to_vec()
    }

    #[tokio::test]
    async fn a_reload_reaches_new_connections_and_keeps_open_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki::new();
        let (cert, key) = pki.issue(dir.path(), "first");
        let served = ServerCert::load(&cert, &key).expect("load");
        let (port, _stop) = start(Limits::default(), &served).await;

        let mut old = connect(&pki, port).await.expect("connect");
        assert!(get(&mut old).await.starts_with("HTTP/1.1 200"));
        let first = leaf_cn(&old);

        let (new_cert, new_key) = pki.issue(dir.path(), "second");
        std::fs::rename(&new_cert, &cert).expect("rename");
        std::fs::rename(&new_key, &key).expect("rename");
        served.reload().expect("reload");

        let mut new = connect(&pki, port).await.expect("connect");
        assert!(get(&mut new).await.starts_with("HTTP/1.1 200"));
        assert_ne!(
            leaf_cn(&new),
            first,
            "a new connection gets the new certificate"
        );
        // The connection made before the reload is still served.
        assert!(get(&mut old).await.starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn a_handshake_never_completed_is_cut_within_the_header_timeout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki::new();
        let (cert, key) = pki.issue(dir.path(), "server");
        let served = ServerCert::load(&cert, &key).expect("load");
        let limits = Limits {
            header_read_timeout: Duration::from_secs(1),
            ..Limits::default()
        };
        let (port, _stop) = start(limits, &served).await;
        for opening in [&b""[..], &[TLS_HANDSHAKE_RECORD, 3, 1][..]] {
            let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.expect("tcp");
            tcp.write_all(opening).await.expect("write");
            let mut buf = [0u8; 64];
            let read = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await;
            assert!(
                matches!(read, Ok(Ok(0) | Err(_))),
                "a half-open handshake was kept: {read:?}"
            );
        }
        // And the listener still serves.
        let mut tls = connect(&pki, port).await.expect("connect");
        assert!(get(&mut tls).await.starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn plain_http_on_a_tls_listener_is_told_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki::new();
        let (cert, key) = pki.issue(dir.path(), "server");
        let served = ServerCert::load(&cert, &key).expect("load");
        let (port, _stop) = start(Limits::default(), &served).await;
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.expect("tcp");
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .expect("write");
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut got))
            .await
            .expect("answered in time")
            .expect("read");
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 400"), "{text}");
        assert!(text.contains("https://"), "{text}");
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_are_refused_over_tls() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki::new();
        let (cert, key) = pki.issue(dir.path(), "server");
        let served = ServerCert::load(&cert, &key).expect("load");
        let limits = Limits {
            max_connections: 1,
            ..Limits::default()
        };
        let (port, _stop) = start(limits, &served).await;
        let mut held = connect(&pki, port).await.expect("connect");
        assert!(get(&mut held).await.starts_with("HTTP/1.1 200"));
        let mut extra = connect(&pki, port).await.expect("connect");
        extra
            .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .expect("write");
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), extra.read_to_end(&mut got)).await;
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 503"), "{text}");
        assert!(text.contains("SlowDown"), "{text}");
    }

    /// A TCP connection from `source` (any 127.0.0.0/8 address is this host's) that sends
    /// nothing: a handshake never started.
    async fn silent(source: &str, port: u16) -> TcpStream {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(format!("{source}:0").parse().expect("addr"))
            .expect("bind");
        socket
            .connect(([127, 0, 0, 1], port).into())
            .await
            .expect("connect")
    }

    /// Whether the server closed `tcp` within `within`.
    async fn closed_within(tcp: &mut TcpStream, within: Duration) -> bool {
        let mut buf = [0u8; 64];
        matches!(
            tokio::time::timeout(within, tcp.read(&mut buf)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    #[tokio::test]
    async fn unfinished_handshakes_take_no_connection_slot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki::new();
        let (cert, key) = pki.issue(dir.path(), "server");
        let served = ServerCert::load(&cert, &key).expect("load");
        let limits = Limits {
            max_connections: 2,
            ..Limits::default()
        };
        let (port, _stop) = start(limits, &served).await;
        let mut held = Vec::new();
        for _ in 0..6 {
            held.push(silent("127.0.0.1", port).await);
        }
        // Three times the cap in connections that never handshake: a real client is served.
        let mut tls = connect(&pki, port).await.expect("connect");
        assert!(get(&mut tls).await.starts_with("HTTP/1.1 200"));
        for tcp in &mut held {
            assert!(
                !closed_within(tcp, Duration::from_millis(50)).await,
                "a pending handshake within its bounds is kept"
            );
        }
    }

    #[tokio::test]
    async fn one_source_holds_no_more_than_its_share_of_handshakes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki::new();
        let (cert, key) = pki.issue(dir.path(), "server");
        let served = ServerCert::load(&cert, &key).expect("load");
        let handshakes = HandshakeLimits {
            max_pending_per_source: 3,
            ..HandshakeLimits::default()
        };
        let (port, _stop) = start_with(Limits::default(), handshakes, &served).await;
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(silent("127.0.0.2", port).await);
        }
        let mut beyond = silent("127.0.0.2", port).await;
        assert!(
            closed_within(&mut beyond, Duration::from_secs(2)).await,
            "a fourth handshake from one address is closed at once, not after the timeout"
        );
        // Others are not held back by that source's handshakes.
        let mut tls = connect(&pki, port).await.expect("connect");
        assert!(get(&mut tls).await.starts_with("HTTP/1.1 200"));
        for tcp in &mut held {
            assert!(!closed_within(tcp, Duration::from_millis(50)).await);
        }
        // A source whose handshakes ended may start new ones.
        drop(held);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut again = silent("127.0.0.2", port).await;
        assert!(!closed_within(&mut again, Duration::from_millis(200)).await);
    }

    #[tokio::test]
    async fn beyond_the_total_the_oldest_handshake_makes_room() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki::new();
        let (cert, key) = pki.issue(dir.path(), "server");
        let served = ServerCert::load(&cert, &key).expect("load");
        let handshakes = HandshakeLimits {
            max_pending: 4,
            ..HandshakeLimits::default()
        };
        let (port, _stop) = start_with(Limits::default(), handshakes, &served).await;
        let mut held = Vec::new();
        for i in 0..4 {
            held.push(silent(&format!("127.0.1.{}", i + 1), port).await);
            // Accepted in this order.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut tls = connect(&pki, port).await.expect("connect");
        assert!(get(&mut tls).await.starts_with("HTTP/1.1 200"));
        assert!(
            closed_within(&mut held[0], Duration::from_secs(2)).await,
            "the oldest pending handshake was cancelled"
        );
        for tcp in &mut held[2..] {
            assert!(!closed_within(tcp, Duration::from_millis(50)).await);
        }
    }
}
