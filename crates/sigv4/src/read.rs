//! Reads an HTTP request's SigV4 authentication (header or presigned URL) into a
//! [`SignedRequest`], refusing before anything is verified what no valid request can be:
//! Signature Version 2, other algorithms, malformed scopes and dates, a wrong region or
//! service, presigned URLs that last longer than SigV4 allows, and `x-amz-*` headers that the
//! signature does not cover (a header the client did not sign could change what the request
//! does: `x-amz-copy-source` on a presigned PUT, say).
//!
//! It sees no secret and decides nothing about who may do what.

use crate::{
    ALGORITHM, MAX_PRESIGNED_EXPIRES_SECS, Payload, SignedRequest, UNSIGNED_PAYLOAD, parse_amz_date,
};
use http::HeaderMap;
use thiserror::Error;

/// Why a request's authentication was refused before verification. Each maps to one S3
/// error code ([`ReadError::code`]).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ReadError {
    #[error("Signature Version 2 is not accepted; sign requests with Signature Version 4")]
    SignatureV2,
    #[error("the authorization header is malformed: {0}")]
    MalformedHeader(String),
    #[error("the presigned URL's authentication parameters are malformed: {0}")]
    MalformedQuery(String),
    #[error("the region '{given}' is wrong; expecting '{expected}'")]
    WrongRegion { given: String, expected: String },
    #[error("header {0} is not covered by the request's signature")]
    UnsignedHeader(String),
    #[error("the signature cannot match: {0}")]
    CannotMatch(String),
    #[error("a presigned URL may be valid for 1 second to 7 days")]
    PresignedExpiry,
    #[error("streaming uploads cannot be presigned")]
    PresignedStreaming,
    #[error("x-amz-content-sha256 is missing or not a value SigV4 defines")]
    ContentSha256,
    #[error("aws-chunked uploads need x-amz-decoded-content-length")]
    MissingDecodedLength,
}

impl ReadError {
    /// The S3 error code this refusal is answered with.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::SignatureV2 | Self::PresignedStreaming => "InvalidRequest",
            Self::MalformedHeader(_) | Self::WrongRegion { .. } => "AuthorizationHeaderMalformed",
            Self::MalformedQuery(_) | Self::PresignedExpiry => "AuthorizationQueryParametersError",
            Self::UnsignedHeader(_) => "AccessDenied",
            Self::CannotMatch(_) => "SignatureDoesNotMatch",
            Self::ContentSha256 => "InvalidArgument",
            Self::MissingDecodedLength => "MissingContentLength",
        }
    }
}

/// A signed request as read, with what the gateway needs to handle its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub request: SignedRequest,
    /// What the signature says about the body.
    pub payload: Payload,
    /// For `aws-chunked` bodies, the length of the decoded body.
    pub decoded_length: Option<u64>,
    /// For a presigned request that also sends `x-amz-content-sha256` with a hash: the body
    /// must match it (it is not signed, but it is a promise about the body).
    pub body_sha256: Option<String>,
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// The query as decoded pairs, in order.
#[must_use]
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Whether a request carries authentication of any kind (else it is anonymous).
#[must_use]
pub fn is_signed(headers: &HeaderMap, query: Option<&str>) -> bool {
    headers.contains_key(http::header::AUTHORIZATION)
        || query_pairs(query).iter().any(|(k, _)| {
            matches!(
                k.as_str(),
                "X-Amz-Signature" | "X-Amz-Credential" | "Signature" | "AWSAccessKeyId"
            )
        })
}

/// The value of a header, all its occurrences joined with `,` (as the canonical request
/// wants); `None` if absent or not visible ASCII.
fn header_value(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut values = headers.get_all(name).iter();
    let mut out = values.next()?.to_str().ok()?.to_owned();
    for v in values {
        out.push(',');
        out.push_str(v.to_str().ok()?);
    }
    Some(out)
}

struct Credential {
    access_key_id: String,
    date: String,
    region: String,
    service: String,
}

/// `AKID/YYYYMMDD/region/service/aws4_request`
fn credential(text: &str) -> Option<Credential> {
    let mut parts = text.rsplitn(5, '/');
    let terminator = parts.next()?;
    let service = parts.next()?;
    let region = parts.next()?;
    let date = parts.next()?;
    let access_key_id = parts.next()?;
    let date_ok = date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit());
    (terminator == "aws4_request" && date_ok && !access_key_id.is_empty() && !region.is_empty())
        .then(|| Credential {
            access_key_id: access_key_id.to_owned(),
            date: date.to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
        })
}

/// `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`
fn authorization(value: &str) -> Result<(Credential, Vec<&str>, String), ReadError> {
    let bad = |m: &str| ReadError::MalformedHeader(m.to_owned());
    let rest = value
        .strip_prefix(ALGORITHM)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or_else(|| bad("it does not start with AWS4-HMAC-SHA256"))?;
    let (mut cred, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| bad("a part is not key=value"))?;
        let slot = match k {
            "Credential" => &mut cred,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut sig,
            _ => return Err(bad("it has an unknown part")),
        };
        if slot.replace(v).is_some() {
            return Err(bad("a part is given twice"));
        }
    }
    let cred = credential(cred.ok_or_else(|| bad("Credential is missing"))?)
        .ok_or_else(|| bad("Credential is not AKID/date/region/service/aws4_request"))?;
    let signed = signed.ok_or_else(|| bad("SignedHeaders is missing"))?;
    let sig = sig.ok_or_else(|| bad("Signature is missing"))?;
    Ok((
        cred,
        signed_headers(signed).ok_or_else(|| bad("SignedHeaders is malformed"))?,
        sig.to_owned(),
    ))
}

fn signed_headers(text: &str) -> Option<Vec<&str>> {
    let names: Vec<&str> = text.split(';').collect();
    let ok = names.iter().all(|n| {
        !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    ok.then_some(names)
}

fn is_signature(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Reads the authentication of a request to `region`. `Ok(None)`: the request carries none
/// (anonymous). `host` stands in for a missing `Host` header (HTTP/2's `:authority`).
pub fn signed_request(
    method: &http::Method,
    uri: &http::Uri,
    headers: &HeaderMap,
    region: &str,
) -> Result<Option<Read>, ReadError> {
    let query = query_pairs(uri.query());
    let has = |name: &str| query.iter().any(|(k, _)| k == name);
    let authorization_header = headers.get(http::header::AUTHORIZATION);
    if authorization_header.is_some_and(|v| v.as_bytes().starts_with(b"AWS "))
        || has("Signature")
        || has("AWSAccessKeyId")
    {
        return Err(ReadError::SignatureV2);
    }
    let presigned = has("X-Amz-Signature") || has("X-Amz-Credential");
    if presigned && authorization_header.is_some() {
        return Err(ReadError::MalformedQuery(
            "a request is signed either in its header or in its URL, not both".into(),
        ));
    }
    let host = uri.authority().map(|a| a.as_str().to_owned());
    if presigned {
        return presigned_request(method, uri, headers, region, query, host).map(Some);
    }
    let Some(value) = authorization_header else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ReadError::MalformedHeader("it is not ASCII".into()))?;
    let (cred, names, signature) = authorization(value)?;
    if !is_signature(&signature) {
        return Err(ReadError::MalformedHeader(
            "Signature is not 64 lower-case hex digits".into(),
        ));
    }
    check_scope(&cred, region, ReadError::MalformedHeader)?;
    let amz_date = header_value(headers, "x-amz-date")
        .ok_or_else(|| ReadError::MalformedHeader("x-amz-date is missing".into()))?;
    check_date(&amz_date, &cred.date, ReadError::MalformedHeader)?;
    let content_sha256 =
        header_value(headers, "x-amz-content-sha256").ok_or(ReadError::ContentSha256)?;
    let payload = Payload::of(&content_sha256).ok_or(ReadError::ContentSha256)?;
    if !names.contains(&"x-amz-content-sha256") {
        return Err(ReadError::UnsignedHeader("x-amz-content-sha256".into()));
    }
    let signed = collect_signed(headers, &names, host.as_deref(), false)?;
    let decoded_length = if payload.is_streaming() {
        let text = header_value(headers, "x-amz-decoded-content-length")
            .ok_or(ReadError::MissingDecodedLength)?;
        Some(
            text.parse::<u64>()
                .map_err(|_| ReadError::MissingDecodedLength)?,
        )
    } else {
        None
    };
    Ok(Some(Read {
        request: SignedRequest {
            access_key_id: cred.access_key_id,
            amz_date,
            scope_date: cred.date,
            region: cred.region,
            service: cred.service,
            method: method.as_str().to_owned(),
            path: uri.path().to_owned(),
            query,
            headers: signed,
            payload: content_sha256,
            presigned_expires: None,
            signature,
        },
        payload,
        decoded_length,
        body_sha256: None,
    }))
}

fn presigned_request(
    method: &http::Method,
    uri: &http::Uri,
    headers: &HeaderMap,
    region: &str,
    mut query: Vec<(String, String)>,
    host: Option<String>,
) -> Result<Read, ReadError> {
    let bad = |m: &str| ReadError::MalformedQuery(m.to_owned());
    let one = |name: &str| -> Result<String, ReadError> {
        let mut values = query.iter().filter(|(k, _)| k == name);
        let v = values
            .next()
            .ok_or_else(|| ReadError::MalformedQuery(format!("{name} is missing")))?;
        if values.next().is_some() {
            return Err(ReadError::MalformedQuery(format!("{name} is given twice")));
        }
        Ok(v.1.clone())
    };
    if one("X-Amz-Algorithm")? != ALGORITHM {
        return Err(bad("X-Amz-Algorithm must be AWS4-HMAC-SHA256"));
    }
    let cred = credential(&one("X-Amz-Credential")?)
        .ok_or_else(|| bad("X-Amz-Credential is not AKID/date/region/service/aws4_request"))?;
    check_scope(&cred, region, ReadError::MalformedQuery)?;
    let amz_date = one("X-Amz-Date")?;
    check_date(&amz_date, &cred.date, ReadError::MalformedQuery)?;
    let expires = one("X-Amz-Expires")?
        .parse::<u64>()
        .ok()
        .filter(|n| (1..=MAX_PRESIGNED_EXPIRES_SECS).contains(n))
        .ok_or(ReadError::PresignedExpiry)?;
    let signed_names = one("X-Amz-SignedHeaders")?;
    let names =
        signed_headers(&signed_names).ok_or_else(|| bad("X-Amz-SignedHeaders is malformed"))?;
    let signature = one("X-Amz-Signature")?;
    if !is_signature(&signature) {
        return Err(bad("X-Amz-Signature is not 64 lower-case hex digits"));
    }
    let content_sha256 = header_value(headers, "x-amz-content-sha256");
    let body_sha256 = match content_sha256.as_deref().map(Payload::of) {
        None => None,
        Some(None) => return Err(ReadError::ContentSha256),
        Some(Some(p)) if p.is_streaming() => return Err(ReadError::PresignedStreaming),
        Some(Some(Payload::Hash)) => content_sha256,
        Some(Some(_)) => None,
    };
    let signed = collect_signed(headers, &names, host.as_deref(), true)?;
    query.retain(|(k, _)| k != "X-Amz-Signature");
    Ok(Read {
        request: SignedRequest {
            access_key_id: cred.access_key_id,
            amz_date,
            scope_date: cred.date,
            region: cred.region,
            service: cred.service,
            method: method.as_str().to_owned(),
            path: uri.path().to_owned(),
            query,
            headers: signed,
            payload: UNSIGNED_PAYLOAD.to_owned(),
            presigned_expires: Some(expires),
            signature,
        },
        payload: Payload::Unsigned,
        decoded_length: None,
        body_sha256,
    })
}

fn check_scope(
    cred: &Credential,
    region: &str,
    malformed: fn(String) -> ReadError,
) -> Result<(), ReadError> {
    if cred.service != "s3" {
        return Err(malformed(format!(
            "the credential's service is '{}', not 's3'",
            cred.service
        )));
    }
    if cred.region != region {
        return Err(ReadError::WrongRegion {
            given: cred.region.clone(),
            expected: region.to_owned(),
        });
    }
    Ok(())
}

fn check_date(
    amz_date: &str,
    scope_date: &str,
    malformed: fn(String) -> ReadError,
) -> Result<(), ReadError> {
    if parse_amz_date(amz_date).is_none() {
        return Err(malformed(
            "the request date is not YYYYMMDDTHHMMSSZ".to_owned(),
        ));
    }
    if amz_date.get(..8) != Some(scope_date) {
        return Err(malformed(
            "the credential's date is not the request's date".to_owned(),
        ));
    }
    Ok(())
}

/// The signed headers' values, and a refusal for any `x-amz-*` header the signature leaves
/// out (a presigned URL's `x-amz-content-sha256` excepted: it cannot be known when the URL
/// is made, and the body is checked against it).
fn collect_signed(
    headers: &HeaderMap,
    names: &[&str],
    host: Option<&str>,
    presigned: bool,
) -> Result<Vec<(String, String)>, ReadError> {
    if !names.contains(&"host") {
        return Err(ReadError::CannotMatch(
            "the signature must cover the host header".into(),
        ));
    }
    for name in headers.keys() {
        let name = name.as_str();
        if name.starts_with("x-amz-")
            && !names.contains(&name)
            && !(presigned && name == "x-amz-content-sha256")
        {
            return Err(ReadError::UnsignedHeader(name.to_owned()));
        }
    }
    names
        .iter()
        .map(|name| {
            let value = header_value(headers, name)
                .or_else(|| (*name == "host").then(|| host.map(str::to_owned)).flatten())
                .ok_or_else(|| ReadError::CannotMatch(format!("signed header {name} is absent")))?;
            Ok(((*name).to_owned(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EMPTY_SHA256, Signer, SigningKey};

    const DATE: &str = "20130524T000000Z";

    fn request(
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
    ) -> (http::Method, http::Uri, HeaderMap) {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        (method.parse().unwrap(), uri.parse().unwrap(), map)
    }

    fn signer() -> Signer {
        Signer {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: crate::tests::SECRET.into(),
            region: "us-east-1".into(),
        }
    }

    fn signed_get(
        extra: &[(&str, &str)],
        signed_extra: bool,
    ) -> (http::Method, http::Uri, HeaderMap) {
        let mut signed = vec![
            ("host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", DATE),
        ];
        if signed_extra {
            signed.extend_from_slice(extra);
        }
        let auth = signer().authorization("GET", "/b/test.txt", &[], &signed, EMPTY_SHA256, DATE);
        let mut all = signed.clone();
        if !signed_extra {
            all.extend_from_slice(extra);
        }
        all.push(("authorization", &auth));
        let (m, u, h) = request("GET", "/b/test.txt", &all);
        (m, u, h)
    }

    #[test]
    fn a_header_signature_reads_into_a_request_that_verifies() {
        let (m, u, h) = signed_get(&[], true);
        let read = signed_request(&m, &u, &h, "us-east-1").unwrap().unwrap();
        let key = SigningKey::derive(crate::tests::SECRET, "20130524", "us-east-1", "s3");
        assert!(key.verifies(&read.request.strings_to_sign()[0], &read.request.signature));
        assert_eq!(read.payload, Payload::Hash);
        assert_eq!(read.request.access_key_id, "AKIAIOSFODNN7EXAMPLE");
    }

    #[test]
    fn unsigned_amz_headers_are_refused() {
        let copy = [("x-amz-copy-source", "other/secret")];
        let (m, u, h) = signed_get(&copy, false);
        assert_eq!(
            signed_request(&m, &u, &h, "us-east-1"),
            Err(ReadError::UnsignedHeader("x-amz-copy-source".into()))
        );
        let (m, u, h) = signed_get(&copy, true);
        assert!(signed_request(&m, &u, &h, "us-east-1").is_ok());
        // Presigned: an x-amz-* header not in X-Amz-SignedHeaders is refused as well.
        let (m, u, h) = request(
            "PUT",
            "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=0000000000000000000000000000000000000000000000000000000000000000",
            &[("host", "h"), ("x-amz-copy-source", "b/secret")],
        );
        assert_eq!(
            signed_request(&m, &u, &h, "us-east-1"),
            Err(ReadError::UnsignedHeader("x-amz-copy-source".into()))
        );
    }

    #[test]
    fn the_wrong_region_and_version_2_are_refused() {
        let (m, u, h) = signed_get(&[], true);
        assert!(matches!(
            signed_request(&m, &u, &h, "eu-central-1"),
            Err(ReadError::WrongRegion { .. })
        ));
        let (m, u, h) = request("GET", "/b/k", &[("authorization", "AWS AK:sig")]);
        assert_eq!(signed_request(&m, &u, &h, "r"), Err(ReadError::SignatureV2));
        let (m, u, h) = request("GET", "/b/k?AWSAccessKeyId=A&Expires=1&Signature=x", &[]);
        assert_eq!(signed_request(&m, &u, &h, "r"), Err(ReadError::SignatureV2));
        let (m, u, h) = request("GET", "/b/k", &[]);
        assert_eq!(signed_request(&m, &u, &h, "r"), Ok(None));
    }

    #[test]
    fn presigned_urls_are_bounded_to_seven_days() {
        for (expires, ok) in [
            ("604800", true),
            ("604801", false),
            ("0", false),
            ("x", false),
        ] {
            let uri = format!(
                "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20130524%2Fr%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires={expires}&X-Amz-SignedHeaders=host&X-Amz-Signature={}",
                "a".repeat(64)
            );
            let (m, u, h) = request("GET", &uri, &[("host", "h")]);
            assert_eq!(signed_request(&m, &u, &h, "r").is_ok(), ok, "{expires}");
        }
    }

    #[test]
    fn reading_never_panics() {
        bolero::check!()
            .with_iterations(2_000)
            .with_type::<(String, String, Vec<u8>)>()
            .for_each(|(path, query, auth)| {
                let mut h = HeaderMap::new();
                if let Ok(v) = http::HeaderValue::from_bytes(auth) {
                    h.insert(http::header::AUTHORIZATION, v.clone());
                    h.insert("x-amz-date", v.clone());
                    h.insert("x-amz-content-sha256", v);
                }
                let uri = format!("/{}?{}", path.escape_default(), query.escape_default());
                if let Ok(u) = uri.parse::<http::Uri>() {
                    let _ = signed_request(&http::Method::GET, &u, &h, "r");
                }
                let _ = credential(path);
                let _ = query_pairs(Some(query));
            });
    }
}
