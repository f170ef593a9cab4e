//! The outermost layer of the S3 listener: checks that come before s3s parses a request.
//!
//! S3 limits the request header section to 8 KiB and answers `RequestHeaderSectionTooLarge`;
//! hyper's own limit is far larger and answers without an S3 error body. On the way out, a
//! ranged HEAD gets the 206 that s3s does not set, and an error answered to a request with a
//! body closes the connection (the body may be unread). Each request's signature is checked
//! by the trustee ([`crate::authn`]) before s3s sees it.
//!
//! It also answers `GET /healthz` and `GET /readyz` (no authentication; `healthz` and `readyz`
//! are no bucket names) and browsers' CORS preflight `OPTIONS` (no authentication, as in S3;
//! answered from the bucket's CORS rules by `crate::s3`, which also adds the rules'
//! `Access-Control-*` headers to successful answers), gives every request an id
//! (`x-amz-request-id`, and the `request_id` of the tracing span its log lines carry), logs
//! each request's operation, status and duration (never its bucket or key), and records the
//! request metrics.

use futures::future::BoxFuture;
use obhut_catalog::Catalog;
use obhut_metrics::S3Op;
use obhut_trustee_client::TrusteeClient;
use s3s::service::S3Service;
use s3s::{Body, HttpError, HttpResponse};
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// S3's limit on the total size of request header names and values.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// The largest object a single PUT (or one part of a multipart upload) may carry, as S3.
pub const MAX_SINGLE_PUT_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// The length a PUT says its body has (decoded, for aws-chunked), if it says one.
fn declared_put_length(req: &http::Request<hyper::body::Incoming>) -> Option<u64> {
    if req.method() != http::Method::PUT {
        return None;
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    header("x-amz-decoded-content-length").or_else(|| header("content-length"))
}

/// What `/readyz` looks at besides the trustee.
#[derive(Clone)]
pub struct HealthSources {
    pub catalog: Arc<dyn Catalog>,
    pub sites: obhut_maintenance::SiteSet,
    /// The process's workers, for the background role (`leader` or `standby`).
    pub workers: obhut_maintenance::Workers,
}

#[derive(Clone)]
pub struct S3Front {
    inner: Arc<S3Service>,
    trustee: Arc<dyn TrusteeClient>,
    region: Arc<str>,
    health: Arc<HealthSources>,
}

impl S3Front {
    #[must_use]
    pub fn new(
        inner: S3Service,
        trustee: Arc<dyn TrusteeClient>,
        region: String,
        health: HealthSources,
    ) -> Self {
        Self {
            inner: Arc::new(inner),
            trustee,
            region: region.into(),
            health: Arc::new(health),
        }
    }
}

/// The health endpoint a request asks for, if it is one.
fn health_check(req: &http::Request<hyper::body::Incoming>) -> Option<bool> {
    if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
        return None;
    }
    match req.uri().path() {
        "/healthz" => Some(false),
        "/readyz" => Some(true),
        _ => None,
    }
}

fn json_response(status: u16, body: String) -> HttpResponse {
    let mut resp = http::Response::new(Body::from(body));
    *resp.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::SERVICE_UNAVAILABLE);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// What is known of a request when it arrives, to finish it with.
struct Arrival {
    id: String,
    op: S3Op,
    started: Instant,
    bytes_in: u64,
    /// A HEAD's response declares the length of a body it does not send.
    head: bool,
}

impl Arrival {
    fn of(req: &http::Request<hyper::body::Incoming>) -> Self {
        let op = S3Op::classify(
            req.method().as_str(),
            req.uri().path(),
            req.uri().query(),
            req.headers().contains_key("x-amz-copy-source"),
        );
        let bytes_in = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Self {
            id: obhut_metrics::get().next_request_id(),
            op,
            started: Instant::now(),
            bytes_in,
            head: req.method() == http::Method::HEAD,
        }
    }

    /// Stamps the response with the request id, records the request and logs it. Called
    /// inside the request's span.
    fn finish(&self, resp: &mut HttpResponse) {
        if let Ok(v) = http::HeaderValue::from_str(&self.id) {
            resp.headers_mut().insert("x-amz-request-id", v);
        }
        resp.headers_mut()
            .insert("x-amz-id-2", http::HeaderValue::from_static(host_id()));
        if !resp.status().is_success() {
            name_request_in_error(resp, &self.id);
        }
        let took = self.started.elapsed();
        let status = resp.status().as_u16();
        let bytes_out = if self.head {
            None
        } else {
            resp.headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .or_else(|| http_body::Body::size_hint(resp.body()).exact())
        }
        .unwrap_or(0);
        obhut_metrics::get().s3_request(self.op, status, took, self.bytes_in, bytes_out);
        tracing::info!(
            target: "obhut::access",
            op = self.op.as_str(),
            status,
            micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            "s3 request"
        );
    }
}

/// This process's `x-amz-id-2`: random per start. S3 names the host that answered; obhut
/// answers with an opaque id that tells requests of one process apart from another's without
/// naming a host.
fn host_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let bytes: [u8; 24] = rand::random();
        base64_simd::STANDARD.encode_to_string(bytes)
    })
}

/// Puts the request id (and host id) into an S3 error body, as S3 does, so that a client's
/// error report carries the id of the `x-amz-request-id` header. Only small in-memory XML
/// bodies are errors; anything else is left alone.
fn name_request_in_error(resp: &mut HttpResponse, id: &str) {
    let is_xml = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/xml"));
    if !is_xml {
        return;
    }
    let Some(body) = resp.body().bytes() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return;
    };
    if text.len() > 64 * 1024 || text.contains("<RequestId>") {
        return;
    }
    let Some(end) = text.rfind("</Error>") else {
        return;
    };
    let named = format!(
        "{}<RequestId>{id}</RequestId><HostId>{}</HostId>{}",
        &text[..end],
        host_id(),
        &text[end..]
    );
    if resp.headers().contains_key(http::header::CONTENT_LENGTH) {
        resp.headers_mut().insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from(named.len()),
        );
    }
    *resp.body_mut() = Body::from(named);
}

pub(crate) fn s3_error_response(
    status: http::StatusCode,
    code: &str,
    message: &str,
) -> HttpResponse {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut resp = http::Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    resp
}

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for S3Front {
    type Response = HttpResponse;
    type Error = HttpError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn call(&self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        if let Some(ready) = health_check(&req) {
            if !ready {
                return Box::pin(std::future::ready(Ok(json_response(
                    200,
                    obhut_metrics::LIVENESS_JSON.to_owned(),
                ))));
            }
            let (trustee, health) = (Arc::clone(&self.trustee), Arc::clone(&self.health));
            return Box::pin(async move {
                let r = crate::health::readiness(
                    trustee.as_ref(),
                    health.catalog.as_ref(),
                    &health.sites,
                    health.workers.background_role(),
                )
                .await;
                Ok(json_response(r.status(), r.to_json()))
            });
        }
        let arrival = Arrival::of(&req);
        let span = tracing::info_span!("s3", request_id = %arrival.id);
        let header_bytes: usize = req
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len())
            .sum();
        if header_bytes > MAX_HEADER_BYTES {
            let mut resp = s3_error_response(
                http::StatusCode::BAD_REQUEST,
                "RequestHeaderSectionTooLarge",
                "Your request header section exceeds the maximum allowed size.",
            );
            span.in_scope(|| arrival.finish(&mut resp));
            return Box::pin(std::future::ready(Ok(resp)));
        }
        // s3s reads an empty Content-MD5 as none at all: S3 refuses it as an invalid digest.
        if req
            .headers()
            .get("content-md5")
            .is_some_and(|v| v.as_bytes().trim_ascii().is_empty())
        {
            let mut resp = s3_error_response(
                http::StatusCode::BAD_REQUEST,
                "InvalidDigest",
                crate::error::INVALID_CONTENT_MD5,
            );
            span.in_scope(|| arrival.finish(&mut resp));
            return Box::pin(std::future::ready(Ok(resp)));
        }
        // Refused before the body is read (or, with `Expect: 100-continue`, sent).
        if declared_put_length(&req).is_some_and(|n| n > MAX_SINGLE_PUT_BYTES) {
            let mut resp = s3_error_response(
                http::StatusCode::BAD_REQUEST,
                "EntityTooLarge",
                "Your proposed upload exceeds the maximum allowed object size.",
            );
            resp.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
            span.in_scope(|| arrival.finish(&mut resp));
            return Box::pin(std::future::ready(Ok(resp)));
        }
        // A browser's CORS preflight: unauthenticated, answered from the bucket's CORS rules.
        if req.method() == http::Method::OPTIONS {
            let catalog = Arc::clone(&self.health.catalog);
            return Box::pin(
                async move {
                    let mut resp = crate::s3::cors_preflight(
                        catalog.as_ref(),
                        req.uri().path(),
                        req.headers(),
                    )
                    .await;
                    arrival.finish(&mut resp);
                    Ok(resp)
                }
                .instrument(span),
            );
        }
        // A request from a web page: a successful answer gets the bucket's CORS headers.
        let cors = req
            .headers()
            .get(http::header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .map(|o| {
                (
                    o.to_owned(),
                    req.uri().path().to_owned(),
                    req.method().clone(),
                )
            });
        let catalog = Arc::clone(&self.health.catalog);
        let head = req.method() == http::Method::HEAD;
        let has_body = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
            || req.headers().contains_key(http::header::TRANSFER_ENCODING);
        let (inner, trustee, region) = (
            Arc::clone(&self.inner),
            Arc::clone(&self.trustee),
            Arc::clone(&self.region),
        );
        Box::pin(
            async move {
                let mut resp = match crate::authn::admit(&trustee, &region, req).await {
                    Ok(req) => match (
                        req.extensions()
                            .get::<crate::post_form::PostForm>()
                            .cloned(),
                        S3Service::call(&inner, req).await,
                    ) {
                        // A browser form's upload is answered as a form's.
                        (Some(form), Ok(resp)) => crate::post_form::answer(&form, resp),
                        (None, Ok(resp)) => resp,
                        (_, Err(e)) => {
                            // No response to stamp: hyper closes the connection.
                            let mut lost = s3_error_response(
                                http::StatusCode::INTERNAL_SERVER_ERROR,
                                "InternalError",
                                "",
                            );
                            arrival.finish(&mut lost);
                            return Err(e);
                        }
                    },
                    Err(refusal) => refusal,
                };
                // An error may be answered before the request body was read (and, with
                // `Expect: 100-continue`, before the client sent it). Reusing the connection would
                // then mistake the next request for the rest of this body, so it is closed instead.
                if has_body && !resp.status().is_success() {
                    resp.headers_mut().insert(
                        http::header::CONNECTION,
                        http::HeaderValue::from_static("close"),
                    );
                }
                if let Some((origin, path, method)) = cors {
                    crate::s3::cors_decorate(catalog.as_ref(), &path, &method, &origin, &mut resp)
                        .await;
                }
                // s3s answers a ranged HEAD with 200; S3 (like GET) answers 206 with Content-Range.
                if head
                    && resp.status() == http::StatusCode::OK
                    && resp.headers().contains_key(http::header::CONTENT_RANGE)
                {
                    *resp.status_mut() = http::StatusCode::PARTIAL_CONTENT;
                }
                arrival.finish(&mut resp);
                Ok(resp)
            }
            .instrument(span),
        )
    }
}
