//! Browser form uploads (S3's POST Object: `POST /bucket` with `multipart/form-data`).
//!
//! The form's fields are read up to its file (at most [`MAX_FIELDS_BYTES`]); the trustee
//! checks the signature over the form's policy document and the policy's expiry and
//! conditions ([`obhut_sigv4::post`]), as it checks every other signature: the gateway holds
//! no secret. The request then goes on as the PutObject it amounts to (`PUT /bucket/key`
//! with the form's content headers and the file's bytes as its body, streamed, never held
//! whole), so the access check, scoped keys, bucket policies, quotas and the write path are
//! those of every upload. The policy's `content-length-range` is enforced on the file as it
//! streams. The answer is turned back into a form's ([`answer`]: `success_action_status`,
//! `success_action_redirect`).
//!
//! It never sees a secret or a key.

use crate::authn::{Authenticated, error_response, trustee_refusal};
use bytes::Bytes;
use futures::StreamExt;
use obhut_sigv4::post::SignedPost;
use obhut_trustee_client::auth::AuthFailure;
use obhut_trustee_client::{TrusteeClient, TrusteeError};
use s3s::stream::{ByteStream, RemainingLength};
use s3s::{Body, HttpResponse, S3Error, S3ErrorCode, StdError};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Most bytes of the fields before the file, names and values together (S3's limit on a
/// form's fields).
pub const MAX_FIELDS_BYTES: usize = 20 * 1024;

/// Form fields that become the object's headers (and those starting `x-amz-meta-`).
const HEADER_FIELDS: [&str; 7] = [
    "cache-control",
    "content-type",
    "content-disposition",
    "content-encoding",
    "expires",
    "x-amz-server-side-encryption",
    "x-amz-storage-class",
];

/// What the answer to a form upload needs to know, kept in the request's extensions.
#[derive(Debug, Clone)]
pub struct PostForm {
    bucket: String,
    key: String,
    status: Option<String>,
    redirect: Option<String>,
    /// `scheme://host` the request came to, for the answer's `Location`.
    origin: String,
}

/// Whether `parts` is a browser form upload: `POST` of a bucket alone, without a query, with
/// a `multipart/form-data` body and no signature of its own.
#[must_use]
pub fn is_form(parts: &http::request::Parts) -> bool {
    let path = parts
        .uri
        .path()
        .trim_start_matches('/')
        .trim_end_matches('/');
    parts.method == http::Method::POST
        && parts.uri.query().is_none_or(str::is_empty)
        && !path.is_empty()
        && !path.contains('/')
        && !parts.headers.contains_key(http::header::AUTHORIZATION)
        && parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .get(..19)
                    .is_some_and(|t| t.eq_ignore_ascii_case("multipart/form-data"))
            })
}

fn malformed() -> HttpResponse {
    error_response(
        "MalformedPOSTRequest",
        "The body of your POST request is not well-formed multipart/form-data.",
    )
}

fn invalid(message: &str) -> HttpResponse {
    error_response("InvalidArgument", message)
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Reads the form up to its file, has the trustee verify it, and answers the request to hand
/// to s3s: the PutObject the form amounts to, with [`Authenticated`] and [`PostForm`] in its
/// extensions. `Err`: the answer.
pub async fn admit(
    trustee: &Arc<dyn TrusteeClient>,
    region: &str,
    mut parts: http::request::Parts,
    incoming: hyper::body::Incoming,
) -> Result<http::Request<Body>, HttpResponse> {
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = multer::parse_boundary(content_type).map_err(|_| malformed())?;
    let mut multipart = multer::Multipart::new(Body::from(incoming), boundary);
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut total = 0usize;
    let file = loop {
        let Some(mut part) = multipart.next_field().await.map_err(|_| malformed())? else {
            return Err(invalid(
                "POST requires exactly one file upload per request.",
            ));
        };
        let name = part.name().unwrap_or_default().to_owned();
        if name.eq_ignore_ascii_case("file") {
            break part;
        }
        total += name.len();
        let mut value = Vec::new();
        while let Some(chunk) = part.chunk().await.map_err(|_| malformed())? {
            total += chunk.len();
            if total > MAX_FIELDS_BYTES {
                return Err(invalid(
                    "Your POST request fields preceding the upload file were too large.",
                ));
            }
            value.extend_from_slice(&chunk);
        }
        let value = String::from_utf8(value).map_err(|_| malformed())?;
        // One value per field: the policy is checked against one, and the object must get
        // that one, never a second sent after it.
        if field(&fields, &name).is_some() {
            return Err(invalid(&format!(
                "The form field {name} appears more than once; each may be sent once."
            )));
        }
        fields.push((name, value));
    };
    let signed = signed_post(&parts, region, &fields, file.file_name())
        .map_err(|(code, message)| error_response(code, &message))?;
    if !crate::authn::plausible_key_id(&signed.access_key_id) {
        let f = AuthFailure::UnknownKey;
        return Err(error_response(f.s3_code(), f.message()));
    }
    let verified = match trustee.verify_post(&signed).await {
        Ok(v) => v,
        Err(TrusteeError::Unauthenticated(
            f @ (AuthFailure::PolicyExpired
            | AuthFailure::PolicyConditionFailed
            | AuthFailure::PolicyMalformed),
        )) => {
            // The trustee decided; the same check here names what failed (the policy and the
            // fields are no secret), unless the clocks disagree.
            let message = signed
                .check_policy(crate::s3::now_ms().div_euclid(1000))
                .err()
                .map_or_else(|| f.message().to_owned(), |e| e.to_string());
            return Err(error_response(f.s3_code(), &message));
        }
        Err(e) => return Err(trustee_refusal(e)),
    };
    // The bounds are the policy's, which the trustee read too; enforced here, where the
    // file's bytes are.
    let range = obhut_sigv4::post::Policy::parse(&signed.policy)
        .map_err(|e| error_response("InvalidPolicyDocument", &e.to_string()))?
        .length_range();
    let session_token = field(&fields, "x-amz-security-token").map(str::to_owned);
    let origin = format!(
        "{}://{}",
        if parts
            .extensions
            .get::<obhut_listen::Connection>()
            .is_some_and(|c| c.tls)
        {
            "https"
        } else {
            "http"
        },
        parts
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("localhost")
    );
    let form = PostForm {
        bucket: signed.bucket.clone(),
        key: signed.key.clone(),
        status: field(&fields, "success_action_status").map(str::to_owned),
        redirect: field(&fields, "success_action_redirect")
            .or_else(|| field(&fields, "redirect"))
            .map(str::to_owned),
        origin,
    };
    parts.method = http::Method::PUT;
    let path = format!(
        "/{}/{}",
        obhut_sigv4::uri_encode(&signed.bucket, false),
        obhut_sigv4::uri_encode(&signed.key, true)
    );
    parts.uri = path
        .parse()
        .map_err(|_| error_response("InvalidURI", "Couldn't parse the specified URI."))?;
    parts.headers = object_headers(&parts.headers, &fields);
    parts.extensions.insert(Authenticated {
        verified,
        access_key_id: signed.access_key_id,
        session_token,
    });
    parts.extensions.insert(form);
    let body = FileBody {
        file,
        _form: multipart,
        read: 0,
        range,
        done: false,
    };
    Ok(http::Request::from_parts(
        parts,
        Body::from(Box::pin(body) as s3s::stream::DynByteStream),
    ))
}

/// An S3 error code and message, to answer with.
type Refusal = (&'static str, String);

/// The signed parts of the form, as the trustee checks them; what no valid form can be is
/// refused here.
fn signed_post(
    parts: &http::request::Parts,
    region: &str,
    fields: &[(String, String)],
    filename: Option<&str>,
) -> Result<SignedPost, Refusal> {
    let invalid = |m: &str| ("InvalidArgument", m.to_owned());
    if field(fields, "signature").is_some() || field(fields, "awsaccesskeyid").is_some() {
        return Err((
            "InvalidRequest",
            "Signature Version 2 is not supported: sign the form with AWS4-HMAC-SHA256.".into(),
        ));
    }
    let Some(signature) = field(fields, "x-amz-signature") else {
        // An unsigned form is anonymous, and refused as every anonymous request is.
        return Err(("AccessDenied", crate::error::ANONYMOUS.into()));
    };
    let required = |name: &str| {
        field(fields, name).ok_or_else(|| {
            invalid(&format!(
                "Bucket POST must contain a field named '{name}'.  If it is specified, please check the order of the fields."
            ))
        })
    };
    let policy = required("policy")?;
    let algorithm = required("x-amz-algorithm")?;
    if algorithm != obhut_sigv4::ALGORITHM {
        return Err(invalid(
            "Only AWS4-HMAC-SHA256 is supported as x-amz-algorithm.",
        ));
    }
    let credential = required("x-amz-credential")?;
    let amz_date = required("x-amz-date")?;
    let mut scope = credential.rsplitn(5, '/');
    let (Some("aws4_request"), Some(service), Some(scope_region), Some(date), Some(key_id)) = (
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
    ) else {
        return Err(invalid(
            "x-amz-credential is not AKID/date/region/service/aws4_request.",
        ));
    };
    if scope_region != region {
        return Err((
            "AuthorizationHeaderMalformed",
            format!("the region '{scope_region}' is wrong; expecting '{region}'"),
        ));
    }
    let key = required("key")?.replace("${filename}", filename.unwrap_or_default());
    if key.is_empty() {
        return Err(invalid("The key of a POST upload must not be empty."));
    }
    let bucket = percent_encoding::percent_decode_str(
        parts
            .uri
            .path()
            .trim_start_matches('/')
            .trim_end_matches('/'),
    )
    .decode_utf8()
    .map_err(|_| ("InvalidURI", "Couldn't parse the specified URI.".to_owned()))?
    .into_owned();
    Ok(SignedPost {
        access_key_id: key_id.to_owned(),
        amz_date: amz_date.to_owned(),
        scope_date: date.to_owned(),
        region: scope_region.to_owned(),
        service: service.to_owned(),
        policy: policy.to_owned(),
        signature: signature.to_owned(),
        bucket,
        key,
        fields: fields
            .iter()
            .filter(|(k, _)| {
                !k.eq_ignore_ascii_case("policy") && !k.eq_ignore_ascii_case("x-amz-signature")
            })
            .cloned()
            .collect(),
    })
}

/// The headers of the PutObject a form amounts to: the request's `Host` and `Origin`, the
/// form's content and metadata fields; its length is unknown until the file ends.
fn object_headers(request: &http::HeaderMap, fields: &[(String, String)]) -> http::HeaderMap {
    let mut out = http::HeaderMap::new();
    for name in [http::header::HOST, http::header::ORIGIN] {
        if let Some(v) = request.get(&name) {
            out.insert(name, v.clone());
        }
    }
    out.insert(
        http::header::TRANSFER_ENCODING,
        http::HeaderValue::from_static("chunked"),
    );
    for (name, value) in fields {
        let lower = name.to_ascii_lowercase();
        if !(HEADER_FIELDS.contains(&lower.as_str()) || lower.starts_with("x-amz-meta-")) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(lower.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            out.insert(n, v);
        }
    }
    out
}

fn body_failure(code: S3ErrorCode, message: &str) -> StdError {
    let mut e = S3Error::with_message(code, message.to_owned());
    e.set_status_code(http::StatusCode::BAD_REQUEST);
    Box::new(e)
}

/// The file's bytes, held to the policy's `content-length-range` as they stream.
struct FileBody {
    file: multer::Field<'static>,
    /// The form the file is part of, kept while its bytes are read.
    _form: multer::Multipart<'static>,
    read: u64,
    range: Option<(u64, u64)>,
    done: bool,
}

impl futures::Stream for FileBody {
    type Item = Result<Bytes, StdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.file.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                self.read += bytes.len() as u64;
                if let Some((_, max)) = self.range
                    && self.read > max
                {
                    self.done = true;
                    return Poll::Ready(Some(Err(body_failure(
                        S3ErrorCode::EntityTooLarge,
                        "Your proposed upload exceeds the maximum allowed size",
                    ))));
                }
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Some(Err(_))) => {
                self.done = true;
                Poll::Ready(Some(Err(body_failure(
                    S3ErrorCode::MalformedPOSTRequest,
                    "The body of your POST request is not well-formed multipart/form-data.",
                ))))
            }
            Poll::Ready(None) => {
                self.done = true;
                if let Some((min, _)) = self.range
                    && self.read < min
                {
                    return Poll::Ready(Some(Err(body_failure(
                        S3ErrorCode::EntityTooSmall,
                        "Your proposed upload is smaller than the minimum allowed size",
                    ))));
                }
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl ByteStream for FileBody {
    fn remaining_length(&self) -> RemainingLength {
        RemainingLength::unknown()
    }
}

/// The answer to a form upload, from the PutObject's: `success_action_redirect` (303 to it,
/// with `bucket`, `key` and `etag`), else `success_action_status` 200 (empty), 201 (a
/// `PostResponse` document) or 204 (the default, also for any other value).
#[must_use]
pub fn answer(form: &PostForm, put: HttpResponse) -> HttpResponse {
    if !put.status().is_success() {
        return put;
    }
    let etag = put
        .headers()
        .get(http::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let location = format!(
        "{}/{}/{}",
        form.origin,
        obhut_sigv4::uri_encode(&form.bucket, false),
        obhut_sigv4::uri_encode(&form.key, true)
    );
    if let Some(redirect) = form
        .redirect
        .as_deref()
        .filter(|r| r.starts_with("http://") || r.starts_with("https://"))
    {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("bucket", &form.bucket)
            .append_pair("key", &form.key)
            .append_pair("etag", &etag)
            .finish();
        let sep = if redirect.contains('?') { '&' } else { '?' };
        let mut resp = http::Response::new(Body::empty());
        *resp.status_mut() = http::StatusCode::SEE_OTHER;
        if let Ok(v) = http::HeaderValue::from_str(&format!("{redirect}{sep}{query}")) {
            resp.headers_mut().insert(http::header::LOCATION, v);
        }
        copy_headers(&put, &mut resp);
        return resp;
    }
    let (status, body) = match form.status.as_deref().map(str::trim) {
        Some("200") => (http::StatusCode::OK, String::new()),
        Some("201") => (
            http::StatusCode::CREATED,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></PostResponse>",
                xml(&location),
                xml(&form.bucket),
                xml(&form.key),
                xml(&etag)
            ),
        ),
        _ => (http::StatusCode::NO_CONTENT, String::new()),
    };
    let mut resp = http::Response::new(Body::from(body.clone()));
    *resp.status_mut() = status;
    if !body.is_empty() {
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/xml"),
        );
    }
    if status != http::StatusCode::NO_CONTENT {
        resp.headers_mut().insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from(body.len()),
        );
    }
    if let Ok(v) = http::HeaderValue::from_str(&location) {
        resp.headers_mut().insert(http::header::LOCATION, v);
    }
    copy_headers(&put, &mut resp);
    resp
}

/// The PutObject answer's headers a form's answer keeps.
fn copy_headers(put: &HttpResponse, resp: &mut HttpResponse) {
    for (name, value) in put.headers() {
        let keep = name == http::header::ETAG
            || name.as_str() == "x-amz-version-id"
            || name.as_str() == "x-amz-server-side-encryption"
            || name.as_str().starts_with("x-amz-checksum-");
        if keep {
            resp.headers_mut().append(name.clone(), value.clone());
        }
    }
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, uri: &str, content_type: &str) -> http::request::Parts {
        http::Request::builder()
            .method(method)
            .uri(uri)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn only_a_post_of_a_bucket_with_a_form_is_a_form_upload() {
        let form = "multipart/form-data; boundary=x";
        assert!(is_form(&parts("POST", "/b", form)));
        assert!(is_form(&parts("POST", "/b/", form)));
        assert!(!is_form(&parts("POST", "/b/k", form)));
        assert!(!is_form(&parts("POST", "/b?delete", form)));
        assert!(!is_form(&parts("PUT", "/b", form)));
        assert!(!is_form(&parts("POST", "/b", "application/xml")));
        assert!(!is_form(&parts("POST", "/", form)));
    }

    #[test]
    fn content_fields_become_headers_and_nothing_else_does() {
        let fields: Vec<(String, String)> = [
            ("Content-Type", "text/plain"),
            ("x-amz-meta-Colour", "blue"),
            ("key", "k"),
            ("x-amz-credential", "c"),
            ("success_action_status", "201"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let h = object_headers(&http::HeaderMap::new(), &fields);
        assert_eq!(h["content-type"], "text/plain");
        assert_eq!(h["x-amz-meta-colour"], "blue");
        assert_eq!(h["transfer-encoding"], "chunked");
        assert_eq!(h.len(), 3);
    }
}
