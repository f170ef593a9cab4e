//! The outermost layer of the S3 listener: checks that come before s3s parses a request.
//!
//! S3 limits the request header section to 8 KiB and answers `RequestHeaderSectionTooLarge`;
//! hyper's own limit is far larger and answers without an S3 error body. On the way out, a
//! ranged HEAD gets the 206 that s3s does not set, and an error answered to a request with a
//! body closes the connection (the body may be unread). Each request's signature is checked
//! by the trustee ([`crate::authn`]) before s3s sees it.

use futures::future::BoxFuture;
use obhut_trustee_client::TrusteeClient;
use s3s::service::S3Service;
use s3s::{Body, HttpError, HttpResponse};
use std::sync::Arc;

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

#[derive(Clone)]
pub struct S3Front {
    inner: Arc<S3Service>,
    trustee: Arc<dyn TrusteeClient>,
    region: Arc<str>,
}

impl S3Front {
    #[must_use]
    pub fn new(inner: S3Service, trustee: Arc<dyn TrusteeClient>, region: String) -> Self {
        Self {
            inner: Arc::new(inner),
            trustee,
            region: region.into(),
        }
    }
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
        let header_bytes: usize = req
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len())
            .sum();
        if header_bytes > MAX_HEADER_BYTES {
            return Box::pin(std::future::ready(Ok(s3_error_response(
                http::StatusCode::BAD_REQUEST,
                "RequestHeaderSectionTooLarge",
                "Your request header section exceeds the maximum allowed size.",
            ))));
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
            return Box::pin(std::future::ready(Ok(resp)));
        }
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
        Box::pin(async move {
            let mut resp = match crate::authn::admit(&trustee, &region, req).await {
                Ok(req) => S3Service::call(&inner, req).await?,
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
            // s3s answers a ranged HEAD with 200; S3 (like GET) answers 206 with Content-Range.
            if head
                && resp.status() == http::StatusCode::OK
                && resp.headers().contains_key(http::header::CONTENT_RANGE)
            {
                *resp.status_mut() = http::StatusCode::PARTIAL_CONTENT;
            }
            Ok(resp)
        })
    }
}
