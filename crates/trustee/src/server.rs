//! The trustee's API for gateways in other processes (`obhut trustee`), and the small private
//! CA that authenticates both ends.
//!
//! It owns the HTTP side of [`TrusteeClient`]: JSON bodies (bytes in base64) as defined in
//! [`obhut_trustee_client::remote::wire`], errors as `{"error", "message", ...}` that the client
//! turns back into the same [`TrusteeError`], and the revocation stream: `GET
//! /v1/revocations?after=SEQ&instance=ID` is held open up to
//! [`LONG_POLL_HOLD`](obhut_trustee_client::remote::LONG_POLL_HOLD) and answers as soon as a
//! revocation happens. The last [`REVOCATIONS_KEPT`] events are kept in memory with sequence
//! numbers; a client asking for older ones, or for another instance (the trustee restarted),
//! gets `{"reset": true}` and must drop every key.
//!
//! It is served only over mutual TLS (see the reasons in
//! [`obhut_trustee_client::remote`]): the trustee accepts only client certificates signed by
//! its CA ([`pki`] makes one), TLS 1.3 only, on rustls with aws-lc-rs.
//!
//! It never sees object data or object names, and it never returns a tenant or master key:
//! the only key material that leaves is a bucket key released under policy.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::service::TowerToHyperService;
use obhut_core::TenantResidency;
use obhut_trustee_client::remote::wire::{
    AttestRequest, BearerRequest, CreateBucketKeyRequest, ErrorBody, LogBytes, ObjectKeyOpWire,
    ObjectKeyOutcomeWire, ObjectKeysAnswer, ObjectKeysRequest, QueryRequest,
    ReleaseBucketKeyRequest, ReleasedKey, RevocationEvent, RevocationsPage, RevocationsQuery,
    RewrapRequest, SiteSecretRequest, TenantRequest, UnsealRequest, Wrapped, error_to_wire,
};
use obhut_trustee_client::remote::{LONG_POLL_HOLD, crypto_provider, pem};
use obhut_trustee_client::{
    GrantAccess, GrantScope, IntegrityAlarm, LogRead, PrincipalInfo, Revocation, SealStatus,
    SignedStatement, TenantKeyStatus, TrusteeClient, TrusteeError, WrappedKey,
};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};

/// Revocation events kept for clients that were briefly away.
pub const REVOCATIONS_KEPT: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Unusable certificates or keys.
    #[error("{0}")]
    Tls(String),
    /// Creating the CA or a certificate failed.
    #[error("{0}")]
    Pki(String),
}

/// The TLS settings of the trustee API: present `cert_pem`/`key_pem`, accept only clients
/// whose certificate `client_ca_pem` signed, TLS 1.3 only.
pub fn tls_config(
    client_ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let chain = pem::certs(cert_pem, "trustee certificate").map_err(ServerError::Tls)?;
    let key = pem::key(key_pem, "trustee private key").map_err(ServerError::Tls)?;
    let mut config = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ServerError::Tls(format!("TLS settings: {e}")))?
        .with_client_cert_verifier(client_verifier(client_ca_pem)?)
        .with_single_cert(chain, key)
        .map_err(|e| {
            ServerError::Tls(format!(
                "trustee certificate and key do not fit together: {e}"
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The same settings presenting `cert`, whose files are read again by
/// [`obhut_listen::tls::ServerCert::reload`] (the binary does so on SIGHUP) without a restart,
/// which would seal the trustee.
pub fn reloadable_tls_config(
    client_ca_pem: &[u8],
    cert: &Arc<obhut_listen::tls::ServerCert>,
) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    cert.mutual_tls_config(client_verifier(client_ca_pem)?)
        .map_err(|e| ServerError::Tls(e.to_string()))
}

/// Accepts client certificates that `client_ca_pem` signed.
fn client_verifier(
    client_ca_pem: &[u8],
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, ServerError> {
    let roots = pem::roots(client_ca_pem, "CA certificate").map_err(ServerError::Tls)?;
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crypto_provider())
        .build()
        .map_err(|e| ServerError::Tls(format!("CA certificate: {e}")))
}

/// A gateway process that follows the revocations, as the trustee knows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Follower {
    /// The common name of the client certificate its long-polls came with (the trustee's CA
    /// issued it): who it is, authenticated. `None` only without TLS (tests).
    pub certificate: Option<String>,
    /// The name it gives itself (its S3 address and a random part per process): which of
    /// the processes that share a certificate it is. Not authenticated.
    pub client: String,
}

/// What the trustee last heard from a follower.
struct Heard {
    /// The last sequence number it acknowledged.
    after: u64,
    at: Instant,
    /// The drill fault it declared ([`obhut_trustee_client::remote::DRILL_FAULT_IGNORE_DISCONNECT`]), if any.
    fault: Option<String>,
}

/// Revocations with sequence numbers, for long-polling clients.
struct Feed {
    /// Random per start: a client holding another instance's sequence number must reset.
    instance: String,
    kept: usize,
    events: Mutex<(VecDeque<RevocationEvent>, u64)>,
    last: watch::Sender<u64>,
    /// Per gateway process: what it acknowledged, and when it last asked. Keyed by its
    /// certificate too: a gateway acknowledges only for itself, never under another
    /// certificate's name.
    acks: Mutex<HashMap<Follower, Heard>>,
}

/// Who is asking, by the client certificate of the connection: its subject's common name
/// (or, without one, the certificate's SHA-256).
fn certificate_name(cert: &obhut_listen::PeerCertificate) -> String {
    use x509_parser::prelude::FromDer;
    let der: &[u8] = &cert.0;
    let cn = x509_parser::certificate::X509Certificate::from_der(der)
        .ok()
        .and_then(|(_, c)| {
            c.subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .map(str::to_owned)
        });
    cn.unwrap_or_else(|| {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
        format!(
            "sha256:{}",
            hex_simd::encode_to_string(digest.as_ref(), hex_simd::AsciiCase::Lower)
        )
    })
}

/// A declared drill fault as logged: at most 64 of `[a-z0-9-]`, anything else replaced.
fn fault_name(fault: &str) -> String {
    fault
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A gateway that has not asked for revocations for this long is no longer waited for.
const ACK_PEERS_WINDOW: Duration = Duration::from_secs(90);
/// How long a revocation waits for every gateway's acknowledgement before it is logged as
/// unacknowledged (the gateway then drops its keys by itself: see the module doc).
const ACK_WAIT: Duration = Duration::from_secs(10);

impl Feed {
    fn new(kept: usize) -> Result<Self, TrusteeError> {
        let mut id = [0u8; 16];
        obhut_crypto::random_bytes(&mut id).map_err(|e| TrusteeError::Storage(e.to_string()))?;
        Ok(Self {
            instance: hex_simd::encode_to_string(id, hex_simd::AsciiCase::Lower),
            kept,
            events: Mutex::new((VecDeque::new(), 0)),
            last: watch::channel(0).0,
            acks: Mutex::new(HashMap::new()),
        })
    }

    /// Records that `client`, asking over a connection with client certificate
    /// `certificate`, has taken in every event up to `after` of this instance.
    fn record_ack(&self, q: &RevocationsQuery, certificate: Option<String>) {
        if let (Some(client), Some(after), Some(instance)) = (&q.client, q.after, &q.instance)
            && *instance == self.instance
        {
            let fault = q.fault.as_deref().map(fault_name);
            let who = Follower {
                certificate,
                client: client.clone(),
            };
            let mut acks = self.acks.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(fault) = &fault
                && acks
                    .get(&who)
                    .is_none_or(|h| h.fault.as_ref() != Some(fault))
            {
                tracing::warn!(
                    certificate = who.certificate.as_deref().unwrap_or("-"),
                    gateway = %who.client,
                    fault = %fault,
                    "a gateway runs with a drill fault injector: its acknowledgements of a disconnect do not count"
                );
            }
            acks.insert(
                who,
                Heard {
                    after,
                    at: Instant::now(),
                    fault,
                },
            );
        }
    }

    /// (gateways that acknowledged `seq`, gateways seen recently, each with the drill fault
    /// it declared): a revocation is complete when both are equal. For a disconnect's push
    /// (`disconnect`), a gateway that declared a drill fault never counts as acknowledging.
    fn acknowledged(
        &self,
        seq: u64,
        disconnect: bool,
    ) -> (Vec<Follower>, Vec<(Follower, Option<String>)>) {
        let acks = self.acks.lock().unwrap_or_else(PoisonError::into_inner);
        let recent: Vec<(&Follower, &Heard)> = acks
            .iter()
            .filter(|(_, h)| h.at.elapsed() < ACK_PEERS_WINDOW)
            .collect();
        let done = recent
            .iter()
            .filter(|(_, h)| h.after >= seq && !(disconnect && h.fault.is_some()))
            .map(|(c, _)| (*c).clone())
            .collect();
        (
            done,
            recent
                .iter()
                .map(|(c, h)| ((*c).clone(), h.fault.clone()))
                .collect(),
        )
    }

    /// Waits until every recently seen gateway acknowledged `seq`, or [`ACK_WAIT`] passed,
    /// and logs the outcome.
    async fn await_acks(&self, seq: u64, disconnect: bool) {
        let deadline = Instant::now() + ACK_WAIT;
        loop {
            let (done, seen) = self.acknowledged(seq, disconnect);
            if done.len() == seen.len() {
                tracing::info!(
                    seq,
                    gateways = seen.len(),
                    "revocation acknowledged by every gateway"
                );
                return;
            }
            if Instant::now() >= deadline {
                let missing: Vec<&Follower> = seen
                    .iter()
                    .map(|(c, _)| c)
                    .filter(|c| !done.contains(c))
                    .collect();
                tracing::warn!(
                    seq,
                    ?missing,
                    "revocation not acknowledged by every gateway in time; those drop their keys when they find the trustee unreachable, and within key_cache_ttl at the latest"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every gateway seen within [`ACK_PEERS_WINDOW`] acknowledged the
    /// disconnect's push `seq`, or `wait` passed: (each acknowledging gateway with how long it
    /// took in ms, the gateways that did not acknowledge with the drill fault each declared).
    async fn collect_acks(
        &self,
        seq: u64,
        wait: Duration,
    ) -> (Vec<(Follower, u64)>, Vec<(Follower, Option<String>)>) {
        let started = Instant::now();
        let mut acked: Vec<(Follower, u64)> = Vec::new();
        loop {
            let (done, seen) = self.acknowledged(seq, true);
            for gateway in done {
                if !acked.iter().any(|(g, _)| *g == gateway) {
                    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                    acked.push((gateway, ms));
                }
            }
            let mut missing: Vec<(Follower, Option<String>)> = seen
                .into_iter()
                .filter(|(g, _)| !acked.iter().any(|(a, _)| a == g))
                .collect();
            if missing.is_empty() || started.elapsed() >= wait {
                acked.sort();
                missing.sort();
                return (acked, missing);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Appends a revocation (`disconnect`: the index of the disconnect that pushed it);
    /// returns its sequence number.
    fn push(&self, revocation: Revocation, disconnect: Option<u64>) -> u64 {
        let mut guard = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        let (events, last) = &mut *guard;
        *last += 1;
        events.push_back(RevocationEvent {
            seq: *last,
            revocation,
            disconnect,
        });
        while events.len() > self.kept {
            events.pop_front();
        }
        self.last.send_replace(*last);
        *last
    }

    /// The answer to `q` now, and whether it is worth sending before the hold ends.
    fn page(&self, q: &RevocationsQuery) -> (RevocationsPage, bool) {
        let guard = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        let (events, last) = &*guard;
        let page = |reset, events| RevocationsPage {
            instance: self.instance.clone(),
            reset,
            events,
            last: *last,
        };
        let Some(after) = q.after else {
            return (page(false, Vec::new()), true);
        };
        let other_instance = q.instance.as_deref().is_some_and(|i| i != self.instance);
        // Events up to `forgotten` are no longer kept.
        let forgotten = events.front().map_or(*last, |e| e.seq - 1);
        if other_instance || after > *last || after < forgotten {
            return (page(true, Vec::new()), true);
        }
        let news: Vec<_> = events.iter().filter(|e| e.seq > after).cloned().collect();
        let ready = !news.is_empty();
        (page(false, news), ready)
    }
}

/// Copies the trustee's revocations into the feed. If it lagged, revocations were lost: the
/// feed then records `All`, which makes every client drop every key. With `disconnects` (the
/// trustee's disconnect state, which changes before the disconnect's revocation is sent), a
/// revocation of every key while the provider is disconnected is marked as the disconnect's.
fn spawn_feed(
    mut rx: broadcast::Receiver<Revocation>,
    feed: std::sync::Weak<Feed>,
    disconnects: Option<watch::Receiver<Option<u64>>>,
) {
    use tokio::sync::broadcast::error::RecvError;
    tokio::spawn(async move {
        loop {
            let event = rx.recv().await;
            let Some(feed) = feed.upgrade() else { return };
            let revocation = match event {
                Ok(r) => r,
                Err(RecvError::Lagged(_)) => Revocation::All,
                Err(RecvError::Closed) => return,
            };
            let disconnect = match (&revocation, &disconnects) {
                (Revocation::All, Some(d)) => *d.borrow(),
                _ => None,
            };
            let seq = feed.push(revocation, disconnect);
            let waiting = Arc::clone(&feed);
            tokio::spawn(async move { waiting.await_acks(seq, disconnect.is_some()).await });
        }
    });
}

#[derive(Clone)]
struct AppState {
    trustee: Arc<dyn TrusteeClient>,
    feed: Arc<Feed>,
    hold: Duration,
}

enum ApiError {
    Trustee(TrusteeError),
    BadRequest(String),
    NotFound,
}

impl From<TrusteeError> for ApiError {
    fn from(e: TrusteeError) -> Self {
        Self::Trustee(e)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        Self::BadRequest(e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        Self::BadRequest(e.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            Self::Trustee(e) => error_to_wire(&e),
            Self::BadRequest(m) => (400, ErrorBody::other("bad_request", m)),
            Self::NotFound => (404, ErrorBody::other("not_found", "no such endpoint")),
        };
        (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Json(body),
        )
            .into_response()
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// The trustee API over `trustee`. Must be called inside a tokio runtime (it starts copying
/// the trustee's revocations into the stream).
pub fn router(trustee: Arc<dyn TrusteeClient>) -> Result<Router, TrusteeError> {
    router_with(trustee, LONG_POLL_HOLD, REVOCATIONS_KEPT)
}

/// [`router`] for the trustee itself: besides, when officers disconnect the provider, it
/// pushes a revocation of every key to every gateway and logs each gateway's acknowledgement
/// (`gateway_acknowledged`), and each gateway it had heard from that did not acknowledge
/// within [`DISCONNECT_ACK_WAIT`] (`gateway_ack_missing`).
pub fn router_logging_acks(trustee: &Arc<crate::Trustee>) -> Result<Router, TrusteeError> {
    let (router, feed) = router_and_feed(
        Arc::clone(trustee) as Arc<dyn TrusteeClient>,
        LONG_POLL_HOLD,
        REVOCATIONS_KEPT,
        Some(trustee.subscribe_disconnects()),
    )?;
    spawn_disconnect_pushes(
        Arc::clone(trustee),
        Arc::downgrade(&feed),
        DISCONNECT_ACK_WAIT,
    );
    Ok(router)
}

/// How long the trustee waits for gateways to acknowledge a disconnect before it logs the
/// missing ones.
pub const DISCONNECT_ACK_WAIT: Duration = Duration::from_secs(10);

/// Follows the trustee's disconnect state: each new disconnect is pushed to every gateway as
/// a revocation of every key, and the acknowledgements are logged.
fn spawn_disconnect_pushes(
    trustee: Arc<crate::Trustee>,
    feed: std::sync::Weak<Feed>,
    wait: Duration,
) {
    let mut rx = trustee.subscribe_disconnects();
    // A disconnect in force at start needs no push: every gateway finds the trustee restarted
    // and drops every key (a reset of its revocation stream).
    let mut pushed = *rx.borrow_and_update();
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let now = *rx.borrow_and_update();
            // Each disconnect is pushed once, however often the state is looked at.
            let Some(index) = now.filter(|_| now != pushed) else {
                pushed = now;
                continue;
            };
            pushed = now;
            let Some(f) = feed.upgrade() else { return };
            let seq = f.push(Revocation::All, Some(index));
            let (acked, missing) = f.collect_acks(seq, wait).await;
            drop(f);
            if missing.is_empty() {
                tracing::info!(
                    disconnect = index,
                    gateways = acked.len(),
                    "every gateway acknowledged the disconnect"
                );
            } else {
                let named: Vec<String> = missing
                    .iter()
                    .map(|(g, fault)| match fault {
                        Some(f) => format!("{} ({f})", g.client),
                        None => g.client.clone(),
                    })
                    .collect();
                tracing::warn!(
                    disconnect = index,
                    missing = ?named,
                    "gateways did not acknowledge the disconnect; they drop their keys when key_cache_ttl ends"
                );
            }
            let waited_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
            let t = Arc::clone(&trustee);
            if let Err(e) = crate::run_blocking(move || {
                t.record_gateway_acks(index, &acked, &missing, waited_ms)
            })
            .await
            {
                tracing::error!(error = %e, "cannot log the gateways' acknowledgements of the disconnect");
            }
        }
    });
}

fn router_with(
    trustee: Arc<dyn TrusteeClient>,
    hold: Duration,
    kept: usize,
) -> Result<Router, TrusteeError> {
    router_and_feed(trustee, hold, kept, None).map(|(r, _)| r)
}

fn router_and_feed(
    trustee: Arc<dyn TrusteeClient>,
    hold: Duration,
    kept: usize,
    disconnects: Option<watch::Receiver<Option<u64>>>,
) -> Result<(Router, Arc<Feed>), TrusteeError> {
    let feed = Arc::new(Feed::new(kept)?);
    spawn_feed(
        trustee.subscribe_revocations(),
        Arc::downgrade(&feed),
        disconnects,
    );
    let router = Router::new()
        .route("/v1/seal", get(seal_status).post(seal))
        .route("/v1/unseal", post(unseal))
        .route("/v1/unseal-key", get(unseal_key))
        .route("/v1/tenant-keys/ensure", post(ensure_tenant_key))
        .route("/v1/tenant-keys/status", post(tenant_key_status))
        .route("/v1/gov/residency", post(residency))
        .route("/v1/gov/authenticate", post(authenticate))
        .route("/v1/gov/act", post(act))
        .route("/v1/gov/query", post(query))
        .route("/v1/gov/log", post(log_read))
        .route("/v1/auth/verify", post(verify_request))
        .route("/v1/auth/chunks", post(verify_chunks))
        .route("/v1/auth/post", post(verify_post))
        .route("/v1/gov/grant-access", post(grant_access))
        .route("/v1/gov/site-secret/seal", post(seal_site_secret))
        .route("/v1/gov/site-secret/open", post(open_site_secret))
        .route("/v1/gov/attest", post(attest))
        .route("/v1/gov/integrity-alarm", post(integrity_alarm))
        .route("/v1/lock/seal", post(seal_lock))
        .route("/v1/lock/open", post(open_lock))
        .route("/v1/bucket-keys/create", post(create_bucket_key))
        .route("/v1/bucket-keys/release", post(release_bucket_key))
        .route("/v1/object-keys", post(object_keys))
        .route("/v1/object-keys/rewrap", post(rewrap_object_keys))
        .route("/v1/revocations", get(revocations))
        .fallback(|| async { ApiError::NotFound })
        .with_state(AppState {
            trustee,
            feed: Arc::clone(&feed),
            hold,
        });
    Ok((router, feed))
}

async fn seal_status(State(s): State<AppState>) -> ApiResult<SealStatus> {
    Ok(Json(s.trustee.seal_status().await?))
}

async fn seal(State(s): State<AppState>) -> ApiResult<SealStatus> {
    Ok(Json(s.trustee.seal().await?))
}

async fn unseal(
    State(s): State<AppState>,
    body: Result<Json<UnsealRequest>, JsonRejection>,
) -> ApiResult<SealStatus> {
    let Json(r) = body?;
    match (&r.share, &r.sealed) {
        (None, Some(sealed)) => Ok(Json(s.trustee.unseal_sealed(sealed).await?)),
        _ => Err(TrusteeError::Invalid(
            obhut_trustee_client::remote::wire::CLEAR_SHARE_REFUSED.to_owned(),
        )
        .into()),
    }
}

async fn unseal_key(State(s): State<AppState>) -> ApiResult<obhut_trustee_client::UnsealKey> {
    Ok(Json(s.trustee.unseal_key().await?))
}

async fn ensure_tenant_key(
    State(s): State<AppState>,
    body: Result<Json<TenantRequest>, JsonRejection>,
) -> ApiResult<serde_json::Value> {
    let Json(r) = body?;
    s.trustee.ensure_tenant_key(&r.tenant).await?;
    Ok(Json(serde_json::json!({})))
}

async fn tenant_key_status(
    State(s): State<AppState>,
    body: Result<Json<TenantRequest>, JsonRejection>,
) -> ApiResult<TenantKeyStatus> {
    let Json(r) = body?;
    Ok(Json(s.trustee.tenant_key_status(&r.tenant).await?))
}

async fn residency(
    State(s): State<AppState>,
    body: Result<Json<TenantRequest>, JsonRejection>,
) -> ApiResult<TenantResidency> {
    let Json(r) = body?;
    Ok(Json(s.trustee.residency(&r.tenant).await?))
}

async fn authenticate(
    State(s): State<AppState>,
    body: Result<Json<BearerRequest>, JsonRejection>,
) -> ApiResult<Option<PrincipalInfo>> {
    let Json(r) = body?;
    Ok(Json(s.trustee.authenticate(&r.bearer_hash).await?))
}

async fn act(
    State(s): State<AppState>,
    body: Result<Json<SignedStatement>, JsonRejection>,
) -> ApiResult<serde_json::Value> {
    let Json(r) = body?;
    Ok(Json(s.trustee.act(&r).await?))
}

async fn query(
    State(s): State<AppState>,
    body: Result<Json<QueryRequest>, JsonRejection>,
) -> ApiResult<serde_json::Value> {
    let Json(r) = body?;
    Ok(Json(s.trustee.query(&r.principal, &r.query).await?))
}

async fn log_read(
    State(s): State<AppState>,
    body: Result<Json<LogRead>, JsonRejection>,
) -> ApiResult<LogBytes> {
    let Json(r) = body?;
    let data = s.trustee.log_read(&r).await?;
    Ok(Json(LogBytes {
        data: data.map(|d| base64_simd::STANDARD.encode_to_string(d)),
    }))
}

async fn verify_request(
    State(s): State<AppState>,
    body: Result<Json<obhut_trustee_client::auth::SignedRequest>, JsonRejection>,
) -> ApiResult<obhut_trustee_client::auth::Verified> {
    let Json(r) = body?;
    Ok(Json(s.trustee.verify_request(&r).await?))
}

async fn verify_post(
    State(s): State<AppState>,
    body: Result<Json<obhut_trustee_client::auth::SignedPost>, JsonRejection>,
) -> ApiResult<obhut_trustee_client::auth::Verified> {
    let Json(r) = body?;
    Ok(Json(s.trustee.verify_post(&r).await?))
}

async fn verify_chunks(
    State(s): State<AppState>,
    body: Result<Json<obhut_trustee_client::auth::ChunkBatch>, JsonRejection>,
) -> ApiResult<obhut_trustee_client::auth::ChainToken> {
    let Json(r) = body?;
    Ok(Json(s.trustee.verify_chunks(&r).await?))
}

async fn seal_site_secret(
    State(s): State<AppState>,
    body: Result<Json<SiteSecretRequest>, JsonRejection>,
) -> ApiResult<String> {
    let Json(r) = body?;
    Ok(Json(s.trustee.seal_site_secret(&r.site, &r.value).await?))
}

async fn open_site_secret(
    State(s): State<AppState>,
    body: Result<Json<SiteSecretRequest>, JsonRejection>,
) -> ApiResult<String> {
    let Json(r) = body?;
    Ok(Json(s.trustee.open_site_secret(&r.site, &r.value).await?))
}

async fn attest(
    State(s): State<AppState>,
    body: Result<Json<AttestRequest>, JsonRejection>,
) -> ApiResult<serde_json::Value> {
    let Json(r) = body?;
    Ok(Json(
        s.trustee
            .attest(&r.kind, r.tenant.as_deref(), &r.digest)
            .await?,
    ))
}

async fn integrity_alarm(
    State(s): State<AppState>,
    body: Result<Json<IntegrityAlarm>, JsonRejection>,
) -> ApiResult<u64> {
    let Json(r) = body?;
    Ok(Json(s.trustee.report_integrity(&r).await?))
}

async fn seal_lock(
    State(s): State<AppState>,
    body: Result<Json<obhut_trustee_client::object_lock::LockSeal>, JsonRejection>,
) -> ApiResult<obhut_trustee_client::object_lock::LockAnswer> {
    let Json(r) = body?;
    Ok(Json(s.trustee.seal_lock(&r).await?))
}

async fn open_lock(
    State(s): State<AppState>,
    body: Result<Json<obhut_trustee_client::object_lock::LockOpen>, JsonRejection>,
) -> ApiResult<obhut_trustee_client::object_lock::LockAnswer> {
    let Json(r) = body?;
    Ok(Json(s.trustee.open_lock(&r).await?))
}

async fn grant_access(
    State(s): State<AppState>,
    body: Result<Json<GrantAccess>, JsonRejection>,
) -> ApiResult<GrantScope> {
    let Json(r) = body?;
    Ok(Json(s.trustee.authorize_grant_access(&r).await?))
}

async fn create_bucket_key(
    State(s): State<AppState>,
    body: Result<Json<CreateBucketKeyRequest>, JsonRejection>,
) -> ApiResult<Wrapped> {
    let Json(r) = body?;
    let key = s
        .trustee
        .create_bucket_key(&r.tenant, &r.bucket, r.version, &r.why)
        .await?;
    Ok(Json(Wrapped::from(&key)))
}

async fn release_bucket_key(
    State(s): State<AppState>,
    body: Result<Json<ReleaseBucketKeyRequest>, JsonRejection>,
) -> ApiResult<ReleasedKey> {
    let Json(r) = body?;
    // A gateway in another process asks for keys for a customer's signed request or under a
    // grant; obhut's own one-time format upgrade runs only beside an in-process trustee
    // (`obhut serve`), where no gateway certificate can claim it.
    if let obhut_trustee_client::Justification::System { reason } = &r.why {
        return Err(ApiError::Trustee(TrusteeError::Denied(format!(
            "a gateway cannot have keys released for obhut itself ({reason}); start `obhut serve` on its data directory once to finish an upgrade"
        ))));
    }
    let wrapped = WrappedKey::try_from(r.key).map_err(ApiError::BadRequest)?;
    let key = s
        .trustee
        .release_bucket_key(&r.tenant, &r.bucket, &wrapped, &r.why)
        .await?;
    Ok(Json(ReleasedKey {
        key: base64_simd::STANDARD.encode_to_string(key.expose()),
    }))
}

fn answer(outcomes: &[obhut_trustee_client::object_keys::ObjectKeyOutcome]) -> ObjectKeysAnswer {
    ObjectKeysAnswer {
        outcomes: outcomes
            .iter()
            .map(ObjectKeyOutcomeWire::from_outcome)
            .collect(),
    }
}

/// Object-key operations one request may carry: a listing page's (1,000) and more.
const MAX_OBJECT_KEY_OPS: usize = 2_000;

async fn object_keys(
    State(s): State<AppState>,
    body: Result<Json<ObjectKeysRequest>, JsonRejection>,
) -> ApiResult<ObjectKeysAnswer> {
    let Json(r) = body?;
    if let obhut_trustee_client::Justification::System { reason } = &r.why {
        return Err(ApiError::Trustee(TrusteeError::Denied(format!(
            "a gateway cannot have keys opened for obhut itself ({reason})"
        ))));
    }
    if r.ops.len() > MAX_OBJECT_KEY_OPS {
        return Err(ApiError::BadRequest(format!(
            "at most {MAX_OBJECT_KEY_OPS} object-key operations per request"
        )));
    }
    let ops = r
        .ops
        .iter()
        .map(ObjectKeyOpWire::to_op)
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::BadRequest)?;
    let wrapped = WrappedKey::try_from(r.key.clone()).map_err(ApiError::BadRequest)?;
    let outcomes = s
        .trustee
        .object_keys(&r.tenant, &r.bucket, &wrapped, &r.why, ops)
        .await?;
    Ok(Json(answer(&outcomes)))
}

async fn rewrap_object_keys(
    State(s): State<AppState>,
    body: Result<Json<RewrapRequest>, JsonRejection>,
) -> ApiResult<ObjectKeysAnswer> {
    let Json(r) = body?;
    if r.keys.len() > MAX_OBJECT_KEY_OPS {
        return Err(ApiError::BadRequest(format!(
            "at most {MAX_OBJECT_KEY_OPS} keys per request"
        )));
    }
    let keys = r
        .keys
        .iter()
        .map(|k| match k.to_op() {
            Ok(obhut_trustee_client::object_keys::ObjectKeyOp::Check(sealed)) => Ok(sealed),
            Ok(_) => Err("keys to rewrap are given as check operations".to_owned()),
            Err(e) => Err(e),
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::BadRequest)?;
    let from = WrappedKey::try_from(r.from.clone()).map_err(ApiError::BadRequest)?;
    let to = WrappedKey::try_from(r.to.clone()).map_err(ApiError::BadRequest)?;
    let outcomes = s
        .trustee
        .rewrap_object_keys(&r.tenant, &r.bucket, &from, &to, &r.why, keys)
        .await?;
    Ok(Json(answer(&outcomes)))
}

async fn revocations(
    State(s): State<AppState>,
    peer: Option<axum::Extension<obhut_listen::PeerCertificate>>,
    q: Result<Query<RevocationsQuery>, QueryRejection>,
) -> ApiResult<RevocationsPage> {
    let Query(q) = q?;
    s.feed
        .record_ack(&q, peer.map(|axum::Extension(c)| certificate_name(&c)));
    // Subscribe before looking, so that nothing pushed in between is missed.
    let mut changed = s.feed.last.subscribe();
    let (page, ready) = s.feed.page(&q);
    if ready {
        return Ok(Json(page));
    }
    let after = page.last;
    let _ = tokio::time::timeout(s.hold, changed.wait_for(|last| *last > after)).await;
    Ok(Json(s.feed.page(&q).0))
}

/// Serves the trustee API on `listener` over mutual TLS `tls` within `limits` (header-read
/// and idle timeouts, connection cap: the accept loop of every obhut listener, which also bounds
/// a TLS handshake by the header-read timeout) until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    limits: obhut_listen::Limits,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let options = obhut_listen::Options {
        tls: Some(tls),
        // Long-polls would hold a graceful shutdown for their whole hold: give requests in
        // flight a moment, then close; clients treat that like any other interruption.
        drain: Some(Duration::from_secs(2)),
        // Only gateways connect: a failed handshake (a wrong or expired client certificate)
        // is worth a warning.
        warn_failed_handshakes: true,
        ..obhut_listen::Options::plain("trustee API", limits, TRUSTEE_REFUSAL)
    };
    let served = obhut_listen::serve(listener, TowerToHyperService::new(app), options, stop_rx);
    let stopper = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    tokio::join!(served, stopper);
}

/// What the trustee API answers beyond its connection cap, and to plain HTTP: its own error
/// bodies, which the client reads as [`TrusteeError::Unavailable`] and [`TrusteeError::Invalid`].
const TRUSTEE_REFUSAL: obhut_listen::Refusal = obhut_listen::Refusal {
    content_type: "application/json",
    body: "{\"error\":\"unavailable\",\"message\":\"the trustee API has too many open connections; retry later\",\"detail\":\"the trustee API has too many open connections\"}",
    plain_http_body: "{\"error\":\"invalid\",\"message\":\"the trustee API speaks mutual TLS only: use an https:// URL\",\"detail\":\"plain HTTP to the trustee API\"}",
};

/// A small private CA for the trustee API: one CA, one server certificate for the trustee,
/// and one client certificate per gateway, all ECDSA P-256, private keys written with mode
/// 0600.
///
/// Layout of the directory: `ca.crt`, `ca.key`, `trustee.crt`, `trustee.key`,
/// `gateway-N.crt`, `gateway-N.key`. Running it again keeps what exists and adds what is
/// missing (so `--gateways` can grow); keep `ca.key` offline once every certificate is issued.
pub mod pki {
    use super::ServerError;
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
    };
    use std::fs;
    use std::os::unix::fs::DirBuilderExt;
    use std::path::{Path, PathBuf};
    use time::{Duration, OffsetDateTime};

    const CA_VALIDITY: Duration = Duration::days(3650);
    const LEAF_VALIDITY: Duration = Duration::days(825);

    /// What [`init`] did with one file.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Outcome {
        pub path: PathBuf,
        pub created: bool,
    }

    fn err(what: impl std::fmt::Display) -> ServerError {
        ServerError::Pki(what.to_string())
    }

    /// The CA's parameters. Its name carries a fingerprint of its key, so a certificate from
    /// another obhut CA is told apart by name (`UnknownIssuer`), and a CA key loaded again
    /// issues certificates that chain to the `ca.crt` written at first.
    fn ca_params(key: &KeyPair) -> CertificateParams {
        let mut p = CertificateParams::default();
        let id = p.key_identifier(key);
        let fingerprint =
            hex_simd::encode_to_string(&id[..id.len().min(6)], hex_simd::AsciiCase::Lower);
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(
            DnType::CommonName,
            format!("obhut trustee API CA {fingerprint}"),
        );
        p.distinguished_name.push(DnType::OrganizationName, "obhut");
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        p
    }

    fn stamp(p: &mut CertificateParams, validity: Duration) -> Result<(), ServerError> {
        let now = OffsetDateTime::now_utc();
        p.not_before = now - Duration::hours(1);
        p.not_after = now + validity;
        let mut serial = [0u8; 16];
        obhut_crypto::random_bytes(&mut serial).map_err(err)?;
        serial[0] &= 0x7f;
        p.serial_number = Some(SerialNumber::from_slice(&serial));
        Ok(())
    }

    /// Writes a new file atomically and durably; fails if it exists.
    fn write_new(path: &Path, contents: &str, mode: u32) -> Result<(), ServerError> {
        if path.exists() {
            return Err(err(format!("{} exists already", path.display())));
        }
        crate::write_private_file(path, contents.as_bytes(), mode)
            .map_err(|e| err(format!("cannot write {}: {e}", path.display())))
    }

    /// Both files of a pair, or neither: `Some(true)` if both exist.
    fn pair_exists(cert: &Path, key: &Path) -> Result<bool, ServerError> {
        match (cert.exists(), key.exists()) {
            (true, true) => Ok(true),
            (false, false) => Ok(false),
            (true, false) | (false, true) => Err(err(format!(
                "only one of {} and {} exists; remove it or restore the other",
                cert.display(),
                key.display()
            ))),
        }
    }

    fn leaf(
        dir: &Path,
        name: &str,
        params: CertificateParams,
        issuer: &Issuer<'_, KeyPair>,
        out: &mut Vec<Outcome>,
    ) -> Result<(), ServerError> {
        let cert_path = dir.join(format!("{name}.crt"));
        let key_path = dir.join(format!("{name}.key"));
        if pair_exists(&cert_path, &key_path)? {
            out.push(Outcome {
                path: cert_path,
                created: false,
            });
            return Ok(());
        }
        let key = KeyPair::generate().map_err(err)?;
        let cert = params.signed_by(&key, issuer).map_err(err)?;
        write_new(&key_path, &key.serialize_pem(), 0o600)?;
        write_new(&cert_path, &cert.pem(), 0o644)?;
        out.push(Outcome {
            path: key_path,
            created: true,
        });
        out.push(Outcome {
            path: cert_path,
            created: true,
        });
        Ok(())
    }

    /// Creates (or completes) the PKI in `dir`: the CA, the trustee's server certificate for
    /// `sans` (DNS names or IP addresses), and client certificates `gateway-1` ..
    /// `gateway-<gateways>`.
    pub fn init(dir: &Path, sans: &[String], gateways: u32) -> Result<Vec<Outcome>, ServerError> {
        if sans.is_empty() {
            return Err(err(
                "the trustee certificate needs at least one name or address",
            ));
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
        let mut out = Vec::new();

        let ca_cert = dir.join("ca.crt");
        let ca_key_path = dir.join("ca.key");
        let ca_key = if pair_exists(&ca_cert, &ca_key_path)? {
            let pem = fs::read_to_string(&ca_key_path)
                .map_err(|e| err(format!("cannot read {}: {e}", ca_key_path.display())))?;
            out.push(Outcome {
                path: ca_cert,
                created: false,
            });
            KeyPair::from_pem(&pem).map_err(|e| err(format!("{}: {e}", ca_key_path.display())))?
        } else {
            let key = KeyPair::generate().map_err(err)?;
            let mut params = ca_params(&key);
            stamp(&mut params, CA_VALIDITY)?;
            let cert = params.self_signed(&key).map_err(err)?;
            write_new(&ca_key_path, &key.serialize_pem(), 0o600)?;
            write_new(&ca_cert, &cert.pem(), 0o644)?;
            out.push(Outcome {
                path: ca_key_path,
                created: true,
            });
            out.push(Outcome {
                path: ca_cert,
                created: true,
            });
            key
        };
        let issuer = Issuer::new(ca_params(&ca_key), ca_key);

        let mut server = CertificateParams::new(sans.to_vec())
            .map_err(|e| err(format!("invalid name for the trustee certificate: {e}")))?;
        server
            .distinguished_name
            .push(DnType::CommonName, "obhut trustee");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server.use_authority_key_identifier_extension = true;
        stamp(&mut server, LEAF_VALIDITY)?;
        leaf(dir, "trustee", server, &issuer, &mut out)?;

        for n in 1..=gateways {
            let name = format!("gateway-{n}");
            let mut client = CertificateParams::default();
            client.distinguished_name = DistinguishedName::new();
            client
                .distinguished_name
                .push(DnType::CommonName, name.as_str());
            client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            client.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            client.use_authority_key_identifier_extension = true;
            stamp(&mut client, LEAF_VALIDITY)?;
            leaf(dir, &name, client, &issuer, &mut out)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SealedKeystore, Trustee};
    use obhut_trustee_client::Justification;
    use obhut_trustee_client::remote::RemoteTrustee;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    fn customer(t: &Trustee, tenant: &str) -> Justification {
        t.test_customer(tenant)
    }

    fn read(dir: &Path, name: &str) -> Vec<u8> {
        std::fs::read(dir.join(name)).unwrap()
    }

    struct Running {
        _dirs: Vec<tempfile::TempDir>,
        pki: std::path::PathBuf,
        url: String,
        trustee: Arc<Trustee>,
        shares: Vec<String>,
        feed: Arc<Feed>,
    }

    async fn start(hold: Duration, kept: usize) -> Running {
        start_with(hold, kept, obhut_listen::Limits::default()).await
    }

    async fn start_with(hold: Duration, kept: usize, limits: obhut_listen::Limits) -> Running {
        let ks = tempfile::tempdir().unwrap();
        let pki_dir = tempfile::tempdir().unwrap();
        let shares = SealedKeystore::init(ks.path(), 3, 2).unwrap();
        let trustee = Arc::new(Trustee::open(ks.path()).unwrap());
        trustee.unseal(&shares[0]).await.unwrap();
        trustee.unseal(&shares[1]).await.unwrap();
        let pki = pki_dir.path().join("pki");
        pki::init(&pki, &["localhost".into(), "127.0.0.1".into()], 2).unwrap();
        let tls = tls_config(
            &read(&pki, "ca.crt"),
            &read(&pki, "trustee.crt"),
            &read(&pki, "trustee.key"),
        )
        .unwrap();
        let (app, feed) = router_and_feed(trustee.clone(), hold, kept, None).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        tokio::spawn(serve(listener, tls, app, limits, std::future::pending()));
        Running {
            _dirs: vec![ks, pki_dir],
            pki,
            url,
            trustee,
            shares,
            feed,
        }
    }

    fn client(r: &Running, gateway: &str) -> RemoteTrustee {
        RemoteTrustee::connect(
            &r.url,
            &read(&r.pki, "ca.crt"),
            &read(&r.pki, &format!("{gateway}.crt")),
            &read(&r.pki, &format!("{gateway}.key")),
        )
        .unwrap()
    }

    async fn next(rx: &mut broadcast::Receiver<Revocation>) -> Revocation {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("no revocation within 10 s")
            .unwrap()
    }

    #[tokio::test]
    async fn the_api_listener_has_the_limits_of_the_other_listeners() {
        use tokio::io::AsyncReadExt;
        let limits = obhut_listen::Limits {
            header_read_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1,
        };
        let r = start_with(LONG_POLL_HOLD, REVOCATIONS_KEPT, limits).await;
        let addr = r.url.trim_start_matches("https://").to_owned();
        // A connection that never starts its handshake is cut after the header-read timeout.
        let mut half_open = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let mut buf = [0u8; 16];
        let got = tokio::time::timeout(Duration::from_secs(10), half_open.read(&mut buf))
            .await
            .expect("a half-open connection to the trustee API was kept for 10 s (bound: 2 s)");
        assert!(matches!(got, Ok(0) | Err(_)), "{got:?}");
        // Connections that never finish a handshake (no gateway certificate) take no slot:
        // with several held open, a gateway is still served.
        let mut silent = Vec::new();
        for _ in 0..4 {
            silent.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!client(&r, "gateway-1").seal_status().await.unwrap().sealed);
        drop(silent);
        // With the one connection allowed held by a gateway, a call is refused as unavailable.
        let config = obhut_trustee_client::remote::client_tls_config(
            &read(&r.pki, "ca.crt"),
            &read(&r.pki, "gateway-2.crt"),
            &read(&r.pki, "gateway-2.key"),
        )
        .unwrap();
        let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let _held = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(
                rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(),
                tcp,
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let e = client(&r, "gateway-1").seal_status().await.unwrap_err();
        assert!(
            matches!(e, TrusteeError::Unavailable(ref d) if d.contains("too many open connections")),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_remote_trustee_behaves_like_the_in_process_one() {
        let r = start(LONG_POLL_HOLD, REVOCATIONS_KEPT).await;
        let remote = client(&r, "gateway-1");
        remote.ensure_tenant_key("a").await.unwrap();
        let wk = remote
            .create_bucket_key("a", "photos", 1, &customer(&r.trustee, "a"))
            .await
            .unwrap();
        let local = r
            .trustee
            .release_bucket_key("a", "photos", &wk, &customer(&r.trustee, "a"))
            .await
            .unwrap();
        let released = remote
            .release_bucket_key("a", "photos", &wk, &customer(&r.trustee, "a"))
            .await
            .unwrap();
        assert_eq!(released.expose(), local.expose());
        assert!(!remote.seal_status().await.unwrap().sealed);
        assert_eq!(remote.tenant_key_status("a").await.unwrap().state, "active");

        // a gateway's integrity alarm is appended to the log; a malformed one is refused alike
        let alarm = IntegrityAlarm {
            tenant: "a".into(),
            bucket: "photos".into(),
            key: "shared/copied".into(),
            upload: None,
            reason: "the object key does not open here".into(),
        };
        let first = remote.report_integrity(&alarm).await.unwrap();
        assert_eq!(remote.report_integrity(&alarm).await.unwrap(), first + 1);
        let empty = IntegrityAlarm {
            tenant: String::new(),
            ..alarm
        };
        assert_eq!(
            remote.report_integrity(&empty).await.unwrap_err(),
            r.trustee.report_integrity(&empty).await.unwrap_err()
        );

        // the trustee's refusals arrive as the same error, with the same text
        for (got, want) in [
            (
                remote
                    .release_bucket_key("a", "photos", &wk, &customer(&r.trustee, "b"))
                    .await
                    .unwrap_err(),
                r.trustee
                    .release_bucket_key("a", "photos", &wk, &customer(&r.trustee, "b"))
                    .await
                    .unwrap_err(),
            ),
            (
                remote
                    .release_bucket_key("a", "other", &wk, &customer(&r.trustee, "a"))
                    .await
                    .unwrap_err(),
                r.trustee
                    .release_bucket_key("a", "other", &wk, &customer(&r.trustee, "a"))
                    .await
                    .unwrap_err(),
            ),
        ] {
            assert_eq!(got, want);
            assert_eq!(got.to_string(), want.to_string());
        }

        // crypto-shred (by quorum, inside the trustee) is seen through the API; then sealing
        let far = 4_102_444_800_000;
        assert_eq!(
            r.trustee.disable_tenant_key("a", far).unwrap().state,
            "disabled"
        );
        assert!(matches!(
            remote
                .release_bucket_key("a", "photos", &wk, &customer(&r.trustee, "a"))
                .await,
            Err(TrusteeError::TenantKeyDisabled(t)) if t == "a"
        ));
        assert_eq!(r.trustee.enable_tenant_key("a").unwrap().state, "active");
        assert!(remote.seal().await.unwrap().sealed);
        assert_eq!(
            remote
                .release_bucket_key("a", "photos", &wk, &customer(&r.trustee, "a"))
                .await
                .unwrap_err(),
            TrusteeError::Sealed(0, 2)
        );
        // shares reach a remote trustee only encrypted to its unseal key, for its current epoch
        assert!(matches!(
            remote.unseal(&r.shares[2]).await,
            Err(TrusteeError::Invalid(_))
        ));
        let key = remote.unseal_key().await.unwrap();
        assert_eq!(key, r.trustee.unseal_key().await.unwrap());
        let seal_for = |k: &obhut_trustee_client::UnsealKey, share: &str| {
            let pk = hex_simd::decode_to_vec(k.public_key.as_bytes()).unwrap();
            let (enc, ct) =
                obhut_crypto::unseal::seal(&pk, &k.identity, &k.epoch, share.as_bytes()).unwrap();
            obhut_trustee_client::SealedShare {
                epoch: k.epoch.clone(),
                enc: base64_simd::STANDARD.encode_to_string(enc),
                ciphertext: base64_simd::STANDARD.encode_to_string(ct),
            }
        };
        let bad = remote
            .unseal_sealed(&seal_for(&key, "not a share"))
            .await
            .unwrap_err();
        assert!(matches!(bad, TrusteeError::BadShare(_)), "{bad:?}");
        let first = seal_for(&key, &r.shares[2]);
        let st = remote.unseal_sealed(&first).await.unwrap();
        assert!(st.sealed && st.shares_given == 1);
        assert!(
            !remote
                .unseal_sealed(&seal_for(&key, &r.shares[0]))
                .await
                .unwrap()
                .sealed
        );
        // the epoch moved on: the captured first share opens no more
        assert!(remote.seal().await.unwrap().sealed);
        assert!(matches!(
            remote.unseal_sealed(&first).await,
            Err(TrusteeError::Denied(_))
        ));
        let key = remote.unseal_key().await.unwrap();
        remote
            .unseal_sealed(&seal_for(&key, &r.shares[2]))
            .await
            .unwrap();
        assert!(
            !remote
                .unseal_sealed(&seal_for(&key, &r.shares[0]))
                .await
                .unwrap()
                .sealed
        );
        assert_eq!(
            r.trustee.destroy_tenant_key("a").unwrap().state,
            "destroyed"
        );
    }

    #[tokio::test]
    async fn revocations_arrive_within_a_long_poll() {
        let r = start(LONG_POLL_HOLD, REVOCATIONS_KEPT).await;
        r.trustee.ensure_tenant_key("a").await.unwrap();
        let remote = client(&r, "gateway-2");
        let mut rx = remote.subscribe_revocations();
        // the first contact has no continuity with anything: drop everything
        assert_eq!(next(&mut rx).await, Revocation::All);
        // now the client is waiting in a long-poll; events must not wait for its end
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = std::time::Instant::now();
        r.trustee.disable_tenant_key("a", i64::MAX).unwrap();
        assert_eq!(
            next(&mut rx).await,
            Revocation::Tenant { tenant: "a".into() }
        );
        r.trustee.seal().await.unwrap();
        assert_eq!(next(&mut rx).await, Revocation::All);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn revocations_count_as_acknowledged_when_each_gateway_asks_past_them() {
        let feed = Feed::new(10).unwrap();
        let me = feed.instance.clone();
        let ask = |client: &str, after: u64, instance: &str| RevocationsQuery {
            after: Some(after),
            instance: Some(instance.to_owned()),
            client: Some(client.to_owned()),
            fault: None,
        };
        let cert = || Some("gateway-1".to_owned());
        feed.record_ack(&ask("g1", 0, &me), cert());
        feed.record_ack(&ask("g2", 0, &me), cert());
        let seq = feed.push(Revocation::All, None);
        assert_eq!(feed.acknowledged(seq, false).0.len(), 0);
        feed.record_ack(&ask("g1", seq, &me), cert());
        let (done, seen) = feed.acknowledged(seq, false);
        let g1 = Follower {
            certificate: cert(),
            client: "g1".into(),
        };
        assert_eq!((done, seen.len()), (vec![g1], 2));
        // an answer about another trustee instance acknowledges nothing here
        feed.record_ack(&ask("g2", seq, "another-instance"), cert());
        assert_eq!(feed.acknowledged(seq, false).0.len(), 1);
        feed.record_ack(&ask("g2", seq, &me), cert());
        let (done, seen) = feed.acknowledged(seq, false);
        assert_eq!(done.len(), seen.len());
    }

    #[test]
    fn a_gateway_acknowledges_only_under_its_own_certificate() {
        let feed = Feed::new(10).unwrap();
        let me = feed.instance.clone();
        let ask = |after: u64| RevocationsQuery {
            after: Some(after),
            instance: Some(me.clone()),
            client: Some("10.0.0.2:9000@abcd".to_owned()),
            fault: None,
        };
        // gateway-2 is followed; gateway-1 claims gateway-2's self-declared name.
        feed.record_ack(&ask(0), Some("gateway-2".into()));
        let seq = feed.push(Revocation::All, Some(7));
        feed.record_ack(&ask(seq), Some("gateway-1".into()));
        let (done, seen) = feed.acknowledged(seq, true);
        let as_2 = Follower {
            certificate: Some("gateway-2".into()),
            client: "10.0.0.2:9000@abcd".into(),
        };
        assert!(
            !done.contains(&as_2),
            "acknowledged for another certificate"
        );
        assert!(seen.iter().any(|(f, _)| *f == as_2));
        feed.record_ack(&ask(seq), Some("gateway-2".into()));
        assert!(feed.acknowledged(seq, true).0.contains(&as_2));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_drill_fault_injector_ignores_a_disconnects_push_only_and_says_so() {
        let r = start(Duration::from_millis(500), REVOCATIONS_KEPT).await;
        let rogue = RemoteTrustee::connect_as(
            &r.url,
            &read(&r.pki, "ca.crt"),
            &read(&r.pki, "gateway-2.crt"),
            &read(&r.pki, "gateway-2.key"),
            &obhut_trustee_client::remote::Follower {
                name: "rogue".into(),
                ignore_revocations: true,
            },
        )
        .unwrap();
        let mut rx = rogue.subscribe_revocations();
        // Following (its cursor set, the starting revocation of every key sent), and known to
        // the trustee by its certificate, with the fault it declared.
        let started = Instant::now();
        let known = loop {
            let heard: Vec<(Follower, Option<String>)> = {
                let acks = r.feed.acks.lock().unwrap();
                acks.iter()
                    .map(|(f, h)| (f.clone(), h.fault.clone()))
                    .collect()
            };
            if let Some(known) = heard.into_iter().next() {
                break known;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "never followed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(known.0.certificate.as_deref(), Some("gateway-2"));
        assert!(known.0.client.starts_with("rogue@"), "{known:?}");
        assert_eq!(known.1.as_deref(), Some("ignore-disconnect-revocations"));
        while rx.try_recv().is_ok() {}
        // A disconnect's push is ignored; a tenant's revocation after it is obeyed, and so is
        // a revocation of every key that no disconnect pushed (a seal).
        r.feed.push(Revocation::All, Some(5));
        r.feed.push(Revocation::Tenant { tenant: "t".into() }, None);
        assert_eq!(
            next(&mut rx).await,
            Revocation::Tenant { tenant: "t".into() }
        );
        r.feed.push(Revocation::All, None);
        assert_eq!(next(&mut rx).await, Revocation::All);
    }

    #[test]
    fn a_declared_drill_fault_voids_acknowledgements_of_a_disconnect_only() {
        let feed = Feed::new(10).unwrap();
        let me = feed.instance.clone();
        let ask = |after: u64| RevocationsQuery {
            after: Some(after),
            instance: Some(me.clone()),
            client: Some("rogue@1".to_owned()),
            fault: Some(obhut_trustee_client::remote::DRILL_FAULT_IGNORE_DISCONNECT.into()),
        };
        feed.record_ack(&ask(0), Some("gateway-3".into()));
        let disconnect = feed.push(Revocation::All, Some(9));
        let tenant = feed.push(Revocation::Tenant { tenant: "t".into() }, None);
        feed.record_ack(&ask(tenant), Some("gateway-3".into()));
        let (done, seen) = feed.acknowledged(disconnect, true);
        assert!(done.is_empty(), "{done:?}");
        assert_eq!(seen[0].1.as_deref(), Some("ignore-disconnect-revocations"));
        assert_eq!(feed.acknowledged(tenant, false).0.len(), 1);
    }

    #[test]
    fn the_feed_resets_clients_it_cannot_serve_continuously() {
        let feed = Feed::new(3).unwrap();
        let q = |after: Option<u64>, instance: Option<&str>| RevocationsQuery {
            after,
            instance: instance.map(str::to_owned),
            client: None,
            fault: None,
        };
        let me = feed.instance.clone();
        // a starting point, at once
        let (p, ready) = feed.page(&q(None, None));
        assert!(ready && !p.reset && p.last == 0 && p.events.is_empty());
        // nothing new: wait
        assert!(!feed.page(&q(Some(0), Some(&me))).1);
        for t in ["a", "b", "c", "d", "e"] {
            feed.push(Revocation::Tenant { tenant: t.into() }, None);
        }
        // seq 1 and 2 are forgotten; a client at 2 misses nothing, at 1 it missed seq 2
        let (p, _) = feed.page(&q(Some(2), Some(&me)));
        assert!(!p.reset);
        assert_eq!(
            p.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert_eq!(p.last, 5);
        for stale in [q(Some(1), Some(&me)), q(Some(0), None)] {
            let (p, ready) = feed.page(&stale);
            assert!(
                ready && p.reset && p.events.is_empty() && p.last == 5,
                "{stale:?}"
            );
        }
        // another instance's numbers, or numbers from the future, mean a restart
        assert!(feed.page(&q(Some(5), Some("0123"))).0.reset);
        assert!(feed.page(&q(Some(9), Some(&me))).0.reset);
        assert!(!feed.page(&q(Some(5), Some(&me))).1);
    }

    #[tokio::test]
    async fn a_client_certificate_from_another_ca_is_refused() {
        let r = start(LONG_POLL_HOLD, REVOCATIONS_KEPT).await;
        let other = tempfile::tempdir().unwrap();
        pki::init(other.path(), &["127.0.0.1".into()], 1).unwrap();
        // trusts the right CA, but presents a certificate the trustee's CA never signed
        let intruder = RemoteTrustee::connect(
            &r.url,
            &read(&r.pki, "ca.crt"),
            &read(other.path(), "gateway-1.crt"),
            &read(other.path(), "gateway-1.key"),
        )
        .unwrap();
        match intruder.seal_status().await {
            Err(TrusteeError::Unavailable(m)) => assert!(m.contains(&r.url), "{m}"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
        // and a gateway that trusts another CA does not talk to this trustee
        let misled = RemoteTrustee::connect(
            &r.url,
            &read(other.path(), "ca.crt"),
            &read(&r.pki, "gateway-1.crt"),
            &read(&r.pki, "gateway-1.key"),
        )
        .unwrap();
        assert!(matches!(
            misled.seal_status().await,
            Err(TrusteeError::Unavailable(_))
        ));
        // the rightful gateway still gets in
        client(&r, "gateway-1").seal_status().await.unwrap();
    }

    #[tokio::test]
    async fn an_unreachable_trustee_is_unavailable_quickly_and_drops_keys() {
        let r = start(LONG_POLL_HOLD, REVOCATIONS_KEPT).await;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        drop(listener);
        let remote = RemoteTrustee::connect(
            &url,
            &read(&r.pki, "ca.crt"),
            &read(&r.pki, "gateway-1.crt"),
            &read(&r.pki, "gateway-1.key"),
        )
        .unwrap();
        let mut rx = remote.subscribe_revocations();
        let started = std::time::Instant::now();
        match remote.seal_status().await {
            Err(TrusteeError::Unavailable(m)) => assert!(m.contains(&url), "{m}"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(6));
        assert_eq!(next(&mut rx).await, Revocation::All);
    }

    #[test]
    fn pki_keys_are_private_and_a_second_run_only_adds() {
        let dir = tempfile::tempdir().unwrap();
        let pki_dir = dir.path().join("pki");
        let first = pki::init(&pki_dir, &["localhost".into()], 1).unwrap();
        assert!(first.iter().all(|o| o.created));
        for name in ["ca.key", "trustee.key", "gateway-1.key"] {
            let mode = std::fs::metadata(pki_dir.join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        let ca = read(&pki_dir, "ca.crt");
        let second = pki::init(&pki_dir, &["localhost".into()], 2).unwrap();
        let created: Vec<_> = second
            .iter()
            .filter(|o| o.created)
            .map(|o| o.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(created, vec!["gateway-2.key", "gateway-2.crt"]);
        assert_eq!(read(&pki_dir, "ca.crt"), ca);
        // the added certificate chains to the original CA
        let roots = pem::roots(&ca, "ca").unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            crypto_provider(),
        )
        .build()
        .unwrap();
        let cert = pem::certs(&read(&pki_dir, "gateway-2.crt"), "gw").unwrap();
        verifier
            .verify_client_cert(&cert[0], &[], rustls::pki_types::UnixTime::now())
            .unwrap();
        // half a pair is an error, not silently replaced
        std::fs::remove_file(pki_dir.join("gateway-1.crt")).unwrap();
        assert!(pki::init(&pki_dir, &["localhost".into()], 2).is_err());
    }
}
