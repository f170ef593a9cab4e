//! Authentication of S3 requests, in front of s3s: the gateway holds no S3 secret, so it
//! reads each request's SigV4 parts, refuses what no valid request can be (Signature Version
//! 2, unsigned `x-amz-*` headers, a wrong region, malformed scopes and dates, access key ids
//! that cannot exist), and asks the trustee, which holds the secrets, to verify the signature.
//! The trustee's answer (who signed, and a ticket for key releases) goes into the request's
//! extensions as [`Authenticated`]; the authentication parts are then taken off the request,
//! and s3s, which is given no secrets, sees it as unsigned.
//!
//! Bodies are held to what was signed: a body whose SHA-256 was signed must match it, and an
//! `aws-chunked` body is decoded here, its chunk signatures checked by the trustee in batches,
//! and its end (so the upload's commit) comes only after the last chunk and the trailer
//! verified. Trailing headers reach the operations as [`Trailers`].
//!
//! It never sees a secret or a key.

use crate::error;
use bytes::Bytes;
use futures::StreamExt;
use obhut_sigv4::chunked::{Decoder, Event};
use obhut_sigv4::{Payload, read};
use obhut_trustee_client::auth::{AuthFailure, ChainToken, ChunkBatch, ChunkSignature, Verified};
use obhut_trustee_client::{TrusteeClient, TrusteeError};
use s3s::stream::{ByteStream, RemainingLength};
use s3s::{Body, HttpResponse, S3Error, S3ErrorCode, StdError};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// Chunks checked by the trustee in one call (the last batch may be smaller).
const CHUNKS_PER_BATCH: usize = 256;
/// Decoded bytes after which a batch is sent even if it has fewer chunks.
const BYTES_PER_BATCH: u64 = 16 * 1024 * 1024;

/// Who signed a request, as the trustee verified it.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub verified: Verified,
    pub access_key_id: String,
    /// The session token the request carried (signed: a header or a query parameter).
    pub session_token: Option<String>,
}

/// The trailing headers of an `aws-chunked` upload, once its body has been read and verified.
#[derive(Debug, Clone, Default)]
pub struct Trailers(Arc<Mutex<Option<http::HeaderMap>>>);

impl Trailers {
    #[must_use]
    pub fn take(&self) -> Option<http::HeaderMap> {
        self.0.lock().ok().and_then(|mut t| t.take())
    }

    fn set(&self, map: http::HeaderMap) {
        if let Ok(mut t) = self.0.lock() {
            *t = Some(map);
        }
    }
}

/// An S3 error answer.
pub fn error_response(code: &str, message: &str) -> HttpResponse {
    let status = match code {
        "AuthorizationHeaderMalformed"
        | "AuthorizationQueryParametersError"
        | "InvalidRequest"
        | "InvalidArgument"
        | "InvalidPolicyDocument"
        | "MalformedPOSTRequest"
        | "InvalidURI" => http::StatusCode::BAD_REQUEST,
        "MissingContentLength" => http::StatusCode::LENGTH_REQUIRED,
        "SlowDown" | "ServiceUnavailable" => http::StatusCode::SERVICE_UNAVAILABLE,
        "InternalError" => http::StatusCode::INTERNAL_SERVER_ERROR,
        _ => http::StatusCode::FORBIDDEN,
    };
    crate::front::s3_error_response(status, code, message)
}

/// Whether an access key id has a shape obhut issues: tenants' `OBK` + 17, grants' `OBG` +
/// 16 characters. Others are refused without asking the trustee.
pub(crate) fn plausible_key_id(id: &str) -> bool {
    let rest_ok = |rest: &str, len: usize| {
        rest.len() == len
            && rest
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    };
    id.strip_prefix("OBK").is_some_and(|r| rest_ok(r, 17))
        || id.strip_prefix("OBG").is_some_and(|r| rest_ok(r, 16))
}

pub(crate) fn trustee_refusal(e: TrusteeError) -> HttpResponse {
    if let TrusteeError::Unauthenticated(f) = e {
        return error_response(f.s3_code(), f.message());
    }
    let s3 = error::trustee(e);
    let message = s3.message().unwrap_or("The trustee refused.").to_owned();
    error_response(s3.code().as_str(), &message)
}

/// The query parameters that carry a presigned URL's authentication.
const AUTH_PARAMS: [&str; 7] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
];

/// The URI without a presigned URL's authentication parameters (the others stay exactly as
/// sent).
fn without_auth_params(uri: &http::Uri) -> Option<http::Uri> {
    let Some(query) = uri.query() else {
        return Some(uri.clone());
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| {
            let name = kv.split('=').next().unwrap_or_default();
            !AUTH_PARAMS.contains(
                &percent_encoding::percent_decode_str(name)
                    .decode_utf8_lossy()
                    .as_ref(),
            )
        })
        .collect();
    let path_and_query = if kept.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    http::Uri::from_parts(parts).ok()
}

/// Authenticates `req` with the trustee. `Ok`: the request to hand to s3s (unsigned, with
/// [`Authenticated`] in its extensions unless it was anonymous). `Err`: the answer.
pub async fn admit(
    trustee: &Arc<dyn TrusteeClient>,
    region: &str,
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Request<Body>, HttpResponse> {
    let (mut parts, incoming) = req.into_parts();
    // An empty Authorization header is no signature, as S3 takes it: the request is
    // anonymous, and refused as such (AccessDenied).
    if parts
        .headers
        .get(http::header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes().trim_ascii().is_empty())
    {
        parts.headers.remove(http::header::AUTHORIZATION);
    }
    // A browser form's upload carries its signature in its body: read there.
    if crate::post_form::is_form(&parts) {
        return crate::post_form::admit(trustee, region, parts, incoming).await;
    }
    let mut read = match read::signed_request(&parts.method, &parts.uri, &parts.headers, region) {
        Ok(Some(read)) => read,
        Ok(None) => return Ok(http::Request::from_parts(parts, Body::from(incoming))),
        Err(e) => return Err(error_response(e.code(), &e.to_string())),
    };
    if !plausible_key_id(&read.request.access_key_id) {
        let f = AuthFailure::UnknownKey;
        return Err(error_response(f.s3_code(), f.message()));
    }
    let verified = trustee
        .verify_request(&read.request)
        .await
        .map_err(trustee_refusal)?;
    let session_token = read
        .request
        .signed_header("x-amz-security-token")
        .or_else(|| read.request.query_param("X-Amz-Security-Token"))
        .map(str::to_owned);
    parts.headers.remove(http::header::AUTHORIZATION);
    parts.uri = without_auth_params(&parts.uri)
        .ok_or_else(|| error_response("InvalidURI", "Couldn't parse the specified URI."))?;
    // A body that HTTP framing already says is empty (a GET's, say) matches a signed hash
    // of the empty string without being hashed; any other is hashed as it streams.
    let known_empty = http_body::Body::is_end_stream(&incoming);
    let body = Body::from(incoming);
    let content_length = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Only an `aws-chunked` body has trailers to hand on.
    let mut trailers = None;
    let body = match read.payload {
        Payload::Hash | Payload::Unsigned => match hash_to_check(&read, known_empty) {
            Some(expected) => hash_checked(body, expected, content_length),
            None => body,
        },
        Payload::SignedChunks { .. } | Payload::UnsignedChunksTrailer => {
            let decoded = read.decoded_length.unwrap_or(0);
            let signed = matches!(read.payload, Payload::SignedChunks { .. });
            let chain = if signed {
                Some(verified.chain.clone().ok_or_else(|| {
                    error_response("InternalError", "The trustee did not start a chunk chain.")
                })?)
            } else {
                None
            };
            strip_aws_chunked(&mut parts.headers, decoded);
            let trailers = trailers.insert(Trailers::default());
            chunked(
                Arc::clone(trustee),
                body,
                decoded,
                chain,
                matches!(read.payload, Payload::SignedChunks { trailer: true }),
                trailers.clone(),
            )
        }
    };
    // A retention, legal hold or lock configuration's body (its XML) goes to the trustee as
    // received, which checks it against what the request signed and reads it itself.
    let mut body = body;
    if is_lock_change(&parts) {
        let bytes = body.store_all_limited(LOCK_BODY_MAX).await.map_err(|e| {
            match e.downcast::<S3Error>() {
                // A body that does not match its signed hash: answered as every other.
                Ok(e) => crate::front::s3_error_response(
                    e.status_code().unwrap_or(http::StatusCode::BAD_REQUEST),
                    e.code().as_str(),
                    e.message().unwrap_or("The request body could not be read."),
                ),
                Err(_) => error_response(
                    "InvalidRequest",
                    "The request body could not be read (a retention or legal hold request's is at most 64 KiB).",
                ),
            }
        })?;
        parts.extensions.insert(LockBody(bytes));
    }
    parts.extensions.insert(Authenticated {
        verified,
        // Taken, not copied: the request's parts are not needed any more.
        access_key_id: std::mem::take(&mut read.request.access_key_id),
        session_token,
    });
    if let Some(trailers) = trailers {
        parts.extensions.insert(trailers);
    }
    Ok(http::Request::from_parts(parts, body))
}

/// The body of a signed PutObjectRetention, PutObjectLegalHold or PutObjectLockConfiguration
/// as received (its
/// signature checked, when it signed the body's SHA-256), for the trustee.
#[derive(Debug, Clone)]
pub struct LockBody(pub Bytes);

/// The longest body of a retention or legal hold request that is read (each is a few hundred
/// bytes of XML).
const LOCK_BODY_MAX: usize = 64 * 1024;

/// Whether a request is a PutObjectRetention, PutObjectLegalHold or PutObjectLockConfiguration
/// (a PUT with `?retention`, `?legal-hold` or `?object-lock`), whose body the trustee reads.
fn is_lock_change(parts: &http::request::Parts) -> bool {
    parts.method == http::Method::PUT
        && parts.uri.query().is_some_and(|q| {
            q.split('&')
                .map(|p| p.split_once('=').map_or(p, |(k, _)| k))
                .any(|k| k == "retention" || k == "legal-hold" || k == "object-lock")
        })
}

/// The SHA-256 (hex) a body that is not `aws-chunked` must match, if any: the signed hash, or
/// the one a presigned request declares. A body that HTTP framing already ends (`known_empty`)
/// is not hashed when that is the empty string's hash: it matches by construction.
fn hash_to_check(read: &read::Read, known_empty: bool) -> Option<&str> {
    let expected = match read.payload {
        Payload::Hash => Some(read.request.payload.as_str()),
        Payload::Unsigned => read.body_sha256.as_deref(),
        Payload::SignedChunks { .. } | Payload::UnsignedChunksTrailer => None,
    }?;
    (!(known_empty && expected == obhut_sigv4::EMPTY_SHA256)).then_some(expected)
}

/// After decoding, the body is `decoded` plain bytes: Content-Length says so, and
/// `aws-chunked` leaves Content-Encoding.
fn strip_aws_chunked(headers: &mut http::HeaderMap, decoded: u64) {
    headers.insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(decoded),
    );
    let rest: Vec<String> = headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("aws-chunked"))
        .map(str::to_owned)
        .collect();
    headers.remove(http::header::CONTENT_ENCODING);
    if !rest.is_empty()
        && let Ok(v) = http::HeaderValue::from_str(&rest.join(","))
    {
        headers.insert(http::header::CONTENT_ENCODING, v);
    }
}

fn body_failure(code: S3ErrorCode, message: &str, status: http::StatusCode) -> StdError {
    let mut e = S3Error::with_message(code, message.to_owned());
    e.set_status_code(status);
    Box::new(e)
}

/// A body that must hash to `expected` (hex SHA-256): its end is an error if it does not.
fn hash_checked(body: Body, expected: &str, length: Option<u64>) -> Body {
    let stream = HashChecked {
        inner: body,
        hasher: Some(obhut_sigv4::Sha256::default()),
        expected: expected.to_owned(),
        remaining: length,
    };
    Body::from(Box::pin(stream) as s3s::stream::DynByteStream)
}

struct HashChecked {
    inner: Body,
    hasher: Option<obhut_sigv4::Sha256>,
    expected: String,
    remaining: Option<u64>,
}

impl futures::Stream for HashChecked {
    type Item = Result<Bytes, StdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                if let Some(h) = self.hasher.as_mut() {
                    h.update(&bytes);
                }
                if let Some(r) = self.remaining.as_mut() {
                    *r = r.saturating_sub(bytes.len() as u64);
                }
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(None) => {
                let Some(h) = self.hasher.take() else {
                    return Poll::Ready(None);
                };
                let got = h.finish_hex();
                if got == self.expected {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Err(body_failure(
                        S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
                        "The provided 'x-amz-content-sha256' header does not match what was computed.",
                        http::StatusCode::BAD_REQUEST,
                    ))))
                }
            }
            other => other,
        }
    }
}

impl ByteStream for HashChecked {
    fn remaining_length(&self) -> RemainingLength {
        match self.remaining.and_then(|r| usize::try_from(r).ok()) {
            Some(n) => RemainingLength::new_exact(n),
            None => self.inner.remaining_length(),
        }
    }
}

/// The decoded body of an `aws-chunked` upload, read by a task that checks chunk signatures
/// with the trustee as it goes.
struct Decoded {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, StdError>>,
    remaining: u64,
}

impl futures::Stream for Decoded {
    type Item = Result<Bytes, StdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = self.rx.poll_recv(cx);
        if let Poll::Ready(Some(Ok(b))) = &item {
            self.remaining = self.remaining.saturating_sub(b.len() as u64);
        }
        item
    }
}

impl ByteStream for Decoded {
    fn remaining_length(&self) -> RemainingLength {
        usize::try_from(self.remaining)
            .map_or_else(|_| RemainingLength::unknown(), RemainingLength::new_exact)
    }
}

fn chunked(
    trustee: Arc<dyn TrusteeClient>,
    body: Body,
    decoded: u64,
    chain: Option<ChainToken>,
    signed_trailer: bool,
    trailers: Trailers,
) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let outcome = pump(
            trustee,
            body,
            decoded,
            chain,
            signed_trailer,
            &trailers,
            &tx,
        )
        .await;
        if let Err(e) = outcome {
            let _ = tx.send(Err(e)).await;
        }
    });
    Body::from(Box::pin(Decoded {
        rx,
        remaining: decoded,
    }) as s3s::stream::DynByteStream)
}

fn chunk_refused(e: &TrusteeError) -> StdError {
    match e {
        TrusteeError::Unauthenticated(_) | TrusteeError::Denied(_) => body_failure(
            S3ErrorCode::SignatureDoesNotMatch,
            "The chunk signature we calculated does not match the signature you provided.",
            http::StatusCode::FORBIDDEN,
        ),
        _ => body_failure(
            S3ErrorCode::ServiceUnavailable,
            "The trustee cannot check signatures right now (sealed or unreachable); retry later.",
            http::StatusCode::SERVICE_UNAVAILABLE,
        ),
    }
}

/// Reads and decodes `body`, forwarding data at once; the chunk signatures are checked in
/// batches, the last one (with the trailer) before the end is forwarded.
async fn pump(
    trustee: Arc<dyn TrusteeClient>,
    mut body: Body,
    decoded: u64,
    mut chain: Option<ChainToken>,
    signed_trailer: bool,
    trailers: &Trailers,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, StdError>>,
) -> Result<(), StdError> {
    let malformed = |e: obhut_sigv4::chunked::ChunkError| {
        body_failure(
            S3ErrorCode::IncompleteBody,
            &format!("the aws-chunked body is malformed: {e}"),
            http::StatusCode::BAD_REQUEST,
        )
    };
    let mut decoder = Decoder::new(chain.is_some(), decoded);
    let mut pending: Vec<ChunkSignature> = Vec::new();
    let mut pending_bytes = 0u64;
    let mut trailer: Option<(String, Option<String>, http::HeaderMap)> = None;
    let mut handle = |events: Vec<Event>,
                      pending: &mut Vec<ChunkSignature>,
                      pending_bytes: &mut u64,
                      data: &mut Vec<Bytes>|
     -> Result<(), StdError> {
        for e in events {
            match e {
                Event::Data(d) => data.push(d),
                Event::Chunk {
                    size,
                    sha256,
                    signature,
                } => {
                    if let Some(signature) = signature {
                        pending.push(ChunkSignature { sha256, signature });
                        *pending_bytes += size;
                    }
                }
                Event::Trailers {
                    entries,
                    canonical,
                    signature,
                } => {
                    let mut map = http::HeaderMap::new();
                    for (k, v) in entries {
                        let (Ok(k), Ok(v)) = (
                            http::HeaderName::from_bytes(k.as_bytes()),
                            http::HeaderValue::from_str(&v),
                        ) else {
                            return Err(malformed(obhut_sigv4::chunked::ChunkError::Trailers));
                        };
                        map.append(k, v);
                    }
                    let text = String::from_utf8(canonical)
                        .map_err(|_| malformed(obhut_sigv4::chunked::ChunkError::Trailers))?;
                    trailer = Some((text, signature, map));
                }
            }
        }
        Ok(())
    };
    while let Some(next) = body.next().await {
        let bytes = next?;
        let events = decoder.push(bytes).map_err(malformed)?;
        let mut data = Vec::new();
        handle(events, &mut pending, &mut pending_bytes, &mut data)?;
        for d in data {
            if tx.send(Ok(d)).await.is_err() {
                return Ok(());
            }
        }
        if let Some(c) = chain.as_mut()
            && (pending.len() >= CHUNKS_PER_BATCH || pending_bytes >= BYTES_PER_BATCH)
        {
            let batch = ChunkBatch {
                chain: c.clone(),
                chunks: std::mem::take(&mut pending),
                trailer: None,
                trailer_signature: None,
            };
            pending_bytes = 0;
            *c = trustee
                .verify_chunks(&batch)
                .await
                .map_err(|e| chunk_refused(&e))?;
        }
    }
    let events = decoder.finish().map_err(malformed)?;
    handle(events, &mut pending, &mut pending_bytes, &mut Vec::new())?;
    let (trailer_text, trailer_signature, trailer_map) = match trailer {
        Some((t, s, m)) => (Some(t), s, Some(m)),
        None => (None, None, None),
    };
    if let Some(c) = chain {
        if signed_trailer && trailer_text.is_some() && trailer_signature.is_none() {
            return Err(chunk_refused(&TrusteeError::Unauthenticated(
                AuthFailure::SignatureMismatch,
            )));
        }
        let batch = ChunkBatch {
            chain: c,
            chunks: pending,
            trailer: trailer_text.filter(|_| signed_trailer),
            trailer_signature: trailer_signature.filter(|_| signed_trailer),
        };
        trustee
            .verify_chunks(&batch)
            .await
            .map_err(|e| chunk_refused(&e))?;
    }
    if let Some(map) = trailer_map {
        trailers.set(map);
    }
    Ok(())
}

/// What s3s is given as its authentication: no secret at all. Requests reach s3s with their
/// signatures already checked by the trustee and taken off (a browser form's too: it reaches
/// s3s as the PutObject it amounts to, [`crate::post_form`]); s3s asks for a secret only for
/// what was not taken off, which is refused. Having it also
/// makes s3s run the access check ([`crate::access`]) on every request.
pub struct NoSecrets;

#[async_trait::async_trait]
impl s3s::auth::S3Auth for NoSecrets {
    async fn get_secret_key(&self, _access_key: &str) -> s3s::S3Result<s3s::auth::SecretKey> {
        Err(s3s::s3_error!(
            NotImplemented,
            "this request's signature is not one obhut reads: sign requests with Signature Version 4 headers, presigned URLs or a form's policy"
        ))
    }
}

/// The S3 error for a request the access check refuses because it was not authenticated.
#[must_use]
pub fn anonymous() -> S3Error {
    error::with(S3ErrorCode::AccessDenied, error::ANONYMOUS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_key_ids_obhut_issues_are_asked_about() {
        assert!(plausible_key_id("OBKABCDEFGHIJKLMNOPQ"));
        assert!(plausible_key_id("OBG0123456789ABCDEF"));
        assert!(!plausible_key_id("OBKabcdefghijklmnopq"));
        assert!(!plausible_key_id("AKIAIOSFODNN7EXAMPLE"));
        assert!(!plausible_key_id("OBK"));
        assert!(!plausible_key_id("OBKABCDEFGHIJKLMNOPQR"));
    }

    #[test]
    fn only_a_body_known_to_be_empty_skips_the_hash_of_the_empty_string() {
        let sha = |b: &[u8]| obhut_sigv4::sha256_hex(b);
        let read = |payload: Payload, line: &str, declared: Option<String>| read::Read {
            request: obhut_sigv4::SignedRequest {
                access_key_id: "OBKAAAAAAAAAAAAAAAAA".into(),
                amz_date: "20260101T000000Z".into(),
                scope_date: "20260101".into(),
                region: "r".into(),
                service: "s3".into(),
                method: "PUT".into(),
                path: "/b/k".into(),
                query: vec![],
                headers: vec![],
                payload: line.into(),
                presigned_expires: None,
                signature: String::new(),
            },
            payload,
            decoded_length: None,
            body_sha256: declared,
        };
        let empty = obhut_sigv4::EMPTY_SHA256;
        let other = sha(b"data");
        let signed_empty = read(Payload::Hash, empty, None);
        assert_eq!(hash_to_check(&signed_empty, true), None);
        // A body that may have bytes is hashed, even against the empty string's hash.
        assert_eq!(hash_to_check(&signed_empty, false), Some(empty));
        let signed_other = read(Payload::Hash, &other, None);
        assert_eq!(hash_to_check(&signed_other, true), Some(other.as_str()));
        assert_eq!(hash_to_check(&signed_other, false), Some(other.as_str()));
        let presigned = read(
            Payload::Unsigned,
            obhut_sigv4::UNSIGNED_PAYLOAD,
            Some(other.clone()),
        );
        assert_eq!(hash_to_check(&presigned, true), Some(other.as_str()));
        let presigned_empty = read(
            Payload::Unsigned,
            obhut_sigv4::UNSIGNED_PAYLOAD,
            Some(empty.into()),
        );
        assert_eq!(hash_to_check(&presigned_empty, true), None);
        assert_eq!(hash_to_check(&presigned_empty, false), Some(empty));
        let unsigned = read(Payload::Unsigned, obhut_sigv4::UNSIGNED_PAYLOAD, None);
        assert_eq!(hash_to_check(&unsigned, false), None);
    }

    #[test]
    fn presigned_parameters_are_taken_off_and_the_rest_kept_as_sent() {
        let uri: http::Uri =
            "/b/k?uploadId=a%2Bb&X-Amz-Signature=x&partNumber=1&X-Amz-Credential=c"
                .parse()
                .unwrap();
        assert_eq!(
            without_auth_params(&uri).unwrap().to_string(),
            "/b/k?uploadId=a%2Bb&partNumber=1"
        );
        let uri: http::Uri = "/b/k?X-Amz-Signature=x".parse().unwrap();
        assert_eq!(without_auth_params(&uri).unwrap().to_string(), "/b/k");
    }

    #[test]
    fn aws_chunked_leaves_content_encoding_and_sets_the_decoded_length() {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::CONTENT_ENCODING,
            "aws-chunked,gzip".parse().unwrap(),
        );
        h.insert(http::header::CONTENT_LENGTH, "999".parse().unwrap());
        strip_aws_chunked(&mut h, 12);
        assert_eq!(h[http::header::CONTENT_ENCODING], "gzip");
        assert_eq!(h[http::header::CONTENT_LENGTH], "12");
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::CONTENT_ENCODING,
            "aws-chunked".parse().unwrap(),
        );
        strip_aws_chunked(&mut h, 0);
        assert!(!h.contains_key(http::header::CONTENT_ENCODING));
    }
}
