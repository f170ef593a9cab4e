//! The HTTP side of an S3 site: one reqwest client per site (its own TLS roots and connection
//! pool), the time bounds on every request and every piece of a streamed body, and the
//! translation of whatever goes wrong into a [`SiteError::Remote`] naming the site and the
//! operation.
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
}

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

    /// Sends a request and waits (at most the request timeout) for the answer's head; the
    /// answer may have any status.
    pub(super) async fn send(
        &self,
        op: &'static str,
        method: Method,
        url: Url,
        headers: &[(&'static str, String)],
        body: Option<Bytes>,
    ) -> Result<Response, SiteError> {
        let mut req = self.client.request(method, url);
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        match timeout(self.request_timeout, req.send()).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(self.error(op, None, describe(&e.without_url()))),
            Err(_) => Err(self.timed_out(op)),
        }
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
