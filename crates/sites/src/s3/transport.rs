//! The HTTP side of an S3 site: one reqwest client per site (its own TLS roots and connection
//! pool), the time bounds on every request and every piece of a streamed body, the retries of
//! requests that met a transient failure, and the translation of whatever goes wrong into a
//! [`SiteError::Remote`] naming the site and the operation.
//!
//! Retries: a site in another datacenter loses connections as a matter of course, so a request
//! that got no answer (connection refused or reset, cut off, timed out) or a transient one
//! (500, 502, 503 `SlowDown`, 504, 408, 429) is sent again, after an exponential backoff with
//! jitter. A new attempt starts only within the request's retry window (`retry_for` after its
//! first attempt; a short one for reads, which another replica can serve instead) and every
//! attempt ends by the deadline the request already had, the site's request timeout from the
//! moment it was first sent: retries never make a call wait longer than a single attempt could
//! before. Any other answer (403, 404, 400, …) is final at once. Only requests that may be
//! repeated are retried (`send`); the callers choose `send_once` for the rest.
//!
//! It sends URLs that `s3.rs` has already presigned, so it never sees the secret key. A
//! presigned URL is itself a credential until it expires: it is never put into an error or a
//! log (reqwest errors are stripped of their URL before they are described), and redirects are
//! not followed (they would carry it elsewhere). It never looks inside blob bytes.

use super::xml::ErrorDoc;
use crate::SiteError;
use bytes::{Bytes, BytesMut};
use reqwest::{Method, Response, StatusCode};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, timeout, timeout_at};
use url::Url;

/// How much of an error answer is read to find its S3 code and message.
const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// How much of an S3 error message goes into a [`SiteError`].
const MESSAGE_LIMIT: usize = 300;

pub(super) struct Transport {
    site: String,
    client: reqwest::Client,
    request_timeout: Duration,
    retry_for: Duration,
}

/// How long a request keeps trying after a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Patience {
    /// A write, or upkeep: retried within the site's whole retry window.
    Full,
    /// A read of a blob, or a health check: retried only briefly (at most [`BRIEF_RETRY`]),
    /// because another replica can serve it, and a site that does not answer is better
    /// reported down soon.
    Brief,
}

/// The retry window of [`Patience::Brief`] requests: room for a reconnection or two.
pub(super) const BRIEF_RETRY: Duration = Duration::from_secs(1);

/// A non-success answer: its status, its S3 error code (empty when it had none) and the error
/// that describes it.
pub(super) struct Refusal {
    pub status: StatusCode,
    pub code: String,
    pub error: SiteError,
}

impl Transport {
    pub(super) fn new(
        site: &str,
        https: bool,
        ca_pem: Option<&str>,
        connect_timeout: Duration,
        request_timeout: Duration,
        retry_for: Duration,
    ) -> Result<Self, String> {
        let tls = tls_config(https, ca_pem)?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                format!(
                    "cannot build the HTTP client: {}",
                    describe(&e.without_url())
                )
            })?;
        Ok(Self {
            site: site.to_owned(),
            client,
            request_timeout,
            retry_for,
        })
    }

    /// An error of this site's `op`.
    pub(super) fn error(
        &self,
        op: &'static str,
        status: Option<StatusCode>,
        reason: impl Into<String>,
    ) -> SiteError {
        SiteError::Remote {
            site: self.site.clone(),
            op,
            status: status.map(|s| s.as_u16()),
            reason: reason.into(),
        }
    }

    /// Sends a request that may be repeated (reads, and writes whose repetition leaves the same
    /// state) and waits for the answer's head, retrying transient failures with backoff until
    /// the request timeout has passed since it was first sent. The answer may have any status;
    /// a transient one is returned only when no time was left to try again.
    pub(super) async fn send(
        &self,
        op: &'static str,
        patience: Patience,
        method: Method,
        url: Url,
        headers: &[(&'static str, String)],
        body: Option<Bytes>,
    ) -> Result<Response, SiteError> {
        let started = Instant::now();
        let deadline = started + self.request_timeout;
        let retry_for = match patience {
            Patience::Full => self.retry_for,
            Patience::Brief => self.retry_for.min(BRIEF_RETRY),
        };
        let last_start = (started + retry_for).min(deadline);
        let mut backoff = Backoff::new(retry_for);
        let mut attempts = 0u32;
        // The server's last refusal: when a later attempt only runs out of time, that answer
        // says better than the timeout what went wrong.
        let mut last_refusal: Option<SiteError> = None;
        loop {
            attempts += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            let outcome = self
                .attempt(method.clone(), url.clone(), headers, body.clone(), left)
                .await;
            let failure = match outcome {
                Attempt::Answer(resp) if !is_transient_status(resp.status()) => return Ok(resp),
                Attempt::Answer(resp) => Failure::Status(resp),
                Attempt::NoAnswer(reason) => Failure::NoAnswer(reason),
                Attempt::Broken(reason) => return Err(self.error(op, None, reason)),
                Attempt::TimedOut => Failure::NoAnswer(format!(
                    "no answer within {:?}",
                    left.min(self.request_timeout)
                )),
            };
            let pause = backoff.next();
            let time_left = Instant::now() + pause < last_start;
            if !time_left {
                return match failure {
                    // The server's own answer says best what went wrong.
                    Failure::Status(resp) => Ok(resp),
                    Failure::NoAnswer(reason) => Err(last_refusal
                        .take()
                        .unwrap_or_else(|| self.gave_up(op, attempts, started, &reason))),
                };
            }
            let reason = match failure {
                Failure::Status(resp) => match timeout_at(deadline, self.refusal(op, resp)).await {
                    Ok(refusal) => {
                        let reason = refusal.error.to_string();
                        last_refusal = Some(refusal.error);
                        reason
                    }
                    Err(_) => return Err(self.timed_out(op)),
                },
                Failure::NoAnswer(reason) => reason,
            };
            tracing::warn!(site = %self.site, op, attempt = attempts, retry_in = ?pause, error = %reason, "transient failure, retrying");
            tokio::time::sleep(pause).await;
        }
    }

    /// Sends a request once (one whose repetition could be mistaken for someone else's
    /// write), waiting at most the request timeout for the answer's head; the answer may have
    /// any status.
    pub(super) async fn send_once(
        &self,
        op: &'static str,
        method: Method,
        url: Url,
        headers: &[(&'static str, String)],
        body: Option<Bytes>,
    ) -> Result<Response, SiteError> {
        match self
            .attempt(method, url, headers, body, self.request_timeout)
            .await
        {
            Attempt::Answer(resp) => Ok(resp),
            Attempt::NoAnswer(reason) | Attempt::Broken(reason) => {
                Err(self.error(op, None, reason))
            }
            Attempt::TimedOut => Err(self.timed_out(op)),
        }
    }

    async fn attempt(
        &self,
        method: Method,
        url: Url,
        headers: &[(&'static str, String)],
        body: Option<Bytes>,
        within: Duration,
    ) -> Attempt {
        let mut req = self.client.request(method, url);
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        match timeout(within, req.send()).await {
            Ok(Ok(resp)) => Attempt::Answer(resp),
            // A request that could not even be built fails the same way every time.
            Ok(Err(e)) if e.is_builder() => Attempt::Broken(describe(&e.without_url())),
            Ok(Err(e)) => Attempt::NoAnswer(describe(&e.without_url())),
            Err(_) => Attempt::TimedOut,
        }
    }

    fn gave_up(&self, op: &'static str, attempts: u32, started: Instant, last: &str) -> SiteError {
        let tries = if attempts == 1 {
            "1 attempt".to_owned()
        } else {
            format!("{attempts} attempts")
        };
        self.error(
            op,
            None,
            format!(
                "no answer after {tries} in {:.1?}: {last}",
                started.elapsed(),
            ),
        )
    }

    /// The next piece of a streamed body (`None` at its end), waiting at most the request
    /// timeout for it.
    pub(super) async fn chunk(
        &self,
        op: &'static str,
        resp: &mut Response,
    ) -> Result<Option<Bytes>, SiteError> {
        match timeout(self.request_timeout, resp.chunk()).await {
            Ok(Ok(chunk)) => Ok(chunk),
            Ok(Err(e)) => Err(self.error(
                op,
                None,
                format!("answer cut off: {}", describe(&e.without_url())),
            )),
            Err(_) => Err(self.timed_out(op)),
        }
    }

    /// A whole (small) answer body as text: at most `limit` bytes, within the request timeout.
    pub(super) async fn text(
        &self,
        op: &'static str,
        mut resp: Response,
        limit: usize,
    ) -> Result<String, SiteError> {
        let deadline = Instant::now() + self.request_timeout;
        let mut buf = BytesMut::new();
        loop {
            match timeout_at(deadline, resp.chunk()).await {
                Ok(Ok(Some(chunk))) => {
                    if buf.len() + chunk.len() > limit {
                        return Err(self.error(
                            op,
                            Some(resp.status()),
                            format!("answer longer than {limit} bytes"),
                        ));
                    }
                    buf.extend_from_slice(&chunk);
                }
                Ok(Ok(None)) => break,
                Ok(Err(e)) => {
                    return Err(self.error(
                        op,
                        Some(resp.status()),
                        format!("answer cut off: {}", describe(&e.without_url())),
                    ));
                }
                Err(_) => return Err(self.timed_out(op)),
            }
        }
        String::from_utf8(buf.to_vec())
            .map_err(|_| self.error(op, Some(resp.status()), "answer is not UTF-8"))
    }

    /// Describes a non-success answer, with the S3 error code and message when its body has
    /// them.
    pub(super) async fn refusal(&self, op: &'static str, resp: Response) -> Refusal {
        let status = resp.status();
        // A HEAD answer has no body; an unreadable body still leaves the status to report.
        let body = self
            .text(op, resp, ERROR_BODY_LIMIT)
            .await
            .unwrap_or_default();
        let doc = ErrorDoc::parse(&body).unwrap_or_default();
        let mut reason = status.to_string();
        if !doc.code.is_empty() {
            reason.push_str(": ");
            reason.push_str(&doc.code);
        }
        if !doc.message.is_empty() {
            reason.push_str(": ");
            reason.extend(doc.message.chars().take(MESSAGE_LIMIT));
        }
        Refusal {
            status,
            code: doc.code,
            error: self.error(op, Some(status), reason),
        }
    }

    fn timed_out(&self, op: &'static str) -> SiteError {
        self.error(
            op,
            None,
            format!("no answer within {:?}", self.request_timeout),
        )
    }
}

/// What one attempt at a request came to.
enum Attempt {
    Answer(Response),
    /// No answer: the connection failed, was cut, or the request could not be sent.
    NoAnswer(String),
    /// The request cannot be sent at all (a bug, not the network).
    Broken(String),
    TimedOut,
}

/// Why an attempt will be tried again.
enum Failure {
    Status(Response),
    NoAnswer(String),
}

/// An answer that says "try again later": the server is overloaded, restarting, or lost its
/// own backend for a moment.
fn is_transient_status(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::REQUEST_TIMEOUT
            | StatusCode::TOO_MANY_REQUESTS
            | StatusCode::INTERNAL_SERVER_ERROR
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

/// Exponential backoff with jitter: the n-th pause is drawn from the upper half of
/// `FIRST_PAUSE * 2^n`, capped at a quarter of the retry window (so that a request has room for
/// several attempts) and at `MAX_PAUSE`.
struct Backoff {
    next: Duration,
    cap: Duration,
}

const FIRST_PAUSE: Duration = Duration::from_millis(50);
const MAX_PAUSE: Duration = Duration::from_secs(2);

impl Backoff {
    fn new(retry_for: Duration) -> Self {
        Self {
            next: FIRST_PAUSE,
            cap: (retry_for / 4).clamp(Duration::from_millis(1), MAX_PAUSE),
        }
    }

    fn next(&mut self) -> Duration {
        use rand::RngExt;
        let full = self.next.min(self.cap);
        self.next = self.next.saturating_mul(2);
        let half = full / 2;
        half + half.mul_f64(rand::rng().random::<f64>())
    }
}

/// A reqwest error and its causes, one line (its URL already removed by the caller).
fn describe(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// TLS with aws-lc-rs (never ring), trusting the system's CAs and `ca_pem`. An `http`
/// endpoint gets an empty root store: it never uses TLS.
fn tls_config(https: bool, ca_pem: Option<&str>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    if https {
        // Unreadable system certificates are skipped: `ca_pem` may be all this site needs.
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
    }
    if let Some(pem) = ca_pem {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| format!("ca_pem is not a PEM certificate list: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("ca_pem holds an unusable certificate: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err("ca_pem holds no certificate".into());
        }
    }
    if https && roots.is_empty() {
        return Err("no CA certificate to verify the endpoint with: set ca_pem".into());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
