//! AWS Signature Version 4 for S3, split the way obhut's trust boundary needs it.
//!
//! The gateway reads a signed request into a [`SignedRequest`] ([`read::signed_request`]):
//! the parts a canonical request is built from, the credential scope and the signature. It
//! never holds the secret, so it cannot check the signature; the trustee holds the secret and
//! checks it ([`SignedRequest::string_to_sign`], [`SigningKey`]). Streaming uploads are
//! framed as `aws-chunked` ([`chunked`]): the gateway decodes the framing and hashes each
//! chunk; the trustee checks the chain of chunk signatures ([`chunk_string_to_sign`],
//! [`trailer_string_to_sign`]). A browser form's upload ([`post`]) signs its policy document.
//!
//! This crate holds no secrets and does no I/O.

pub mod chunked;
pub mod post;
pub mod read;

use aws_lc_rs::{digest, hmac};
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

/// SHA-256 of the empty string.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// The payload hash of a request whose body is not signed.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// A body of chunks each signed in a chain from the request's signature.
pub const STREAMING_PAYLOAD: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
/// Signed chunks followed by signed trailing headers.
pub const STREAMING_PAYLOAD_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
/// Unsigned chunks followed by trailing headers (only the request itself is signed).
pub const STREAMING_UNSIGNED_PAYLOAD_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
/// The only signing algorithm obhut accepts.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The longest a presigned URL may be valid (SigV4's own limit).
pub const MAX_PRESIGNED_EXPIRES_SECS: u64 = 7 * 24 * 3600;
/// How far a request's time may be from the verifier's clock.
pub const MAX_CLOCK_SKEW_SECS: i64 = 15 * 60;

/// Lower-case hex.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    hex_simd::encode_to_string(bytes, hex_simd::AsciiCase::Lower)
}

/// `parts` joined into one string, allocated once.
fn concat(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        out.push_str(p);
    }
    out
}

#[must_use]
pub fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

/// SHA-256 of a body that arrives in pieces.
#[derive(Clone)]
pub struct Sha256(digest::Context);

impl Default for Sha256 {
    fn default() -> Self {
        Self(digest::Context::new(&digest::SHA256))
    }
}

impl Sha256 {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The digest as lower-case hex.
    #[must_use]
    pub fn finish_hex(self) -> String {
        hex(self.0.finish().as_ref())
    }
}

/// URI-encodes as SigV4 wants: unreserved characters stay, everything else is `%XX` (upper
/// case); `/` stays only in paths.
#[must_use]
pub fn uri_encode(text: &str, keep_slash: bool) -> String {
    uri_encode_cow(std::borrow::Cow::Borrowed(text), keep_slash).into_owned()
}

/// [`uri_encode`], giving `text` back as it is when nothing in it needs encoding.
fn uri_encode_cow(text: std::borrow::Cow<'_, str>, keep_slash: bool) -> std::borrow::Cow<'_, str> {
    let keep = |b: u8| {
        b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/')
    };
    if text.bytes().all(keep) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for b in text.bytes() {
        if keep(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 0xF)]));
        }
    }
    std::borrow::Cow::Owned(out)
}

/// What a payload hash line says about the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// The body's SHA-256 is the given hex string; the body must match it.
    Hash,
    /// The body is not covered by the signature.
    Unsigned,
    /// `aws-chunked`, each chunk signed, optionally signed trailers.
    SignedChunks { trailer: bool },
    /// `aws-chunked`, chunks unsigned, trailers (unsigned).
    UnsignedChunksTrailer,
}

impl Payload {
    /// Reads an `x-amz-content-sha256` value; `None` for anything SigV4 does not define (or the
    /// ECDSA variants, which obhut does not accept).
    #[must_use]
    pub fn of(value: &str) -> Option<Self> {
        Some(match value {
            UNSIGNED_PAYLOAD => Self::Unsigned,
            STREAMING_PAYLOAD => Self::SignedChunks { trailer: false },
            STREAMING_PAYLOAD_TRAILER => Self::SignedChunks { trailer: true },
            STREAMING_UNSIGNED_PAYLOAD_TRAILER => Self::UnsignedChunksTrailer,
            v if v.len() == 64 && v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => {
                Self::Hash
            }
            _ => return None,
        })
    }

    #[must_use]
    pub fn is_streaming(self) -> bool {
        matches!(
            self,
            Self::SignedChunks { .. } | Self::UnsignedChunksTrailer
        )
    }
}

/// A request signed with SigV4, as the gateway received it: everything the canonical request
/// is built from, the credential scope and the signature. The verifier rebuilds the canonical
/// request from these parts itself; it is never given only a digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRequest {
    pub access_key_id: String,
    /// `YYYYMMDDTHHMMSSZ`.
    pub amz_date: String,
    /// The credential scope's date (`YYYYMMDD`), region and service.
    pub scope_date: String,
    pub region: String,
    pub service: String,
    pub method: String,
    /// The request path exactly as received (percent-encoded as the client sent it).
    pub path: String,
    /// The query as decoded name/value pairs in the order received; for a presigned URL,
    /// every parameter but `X-Amz-Signature`.
    pub query: Vec<(String, String)>,
    /// The signed headers with lower-case names, in the order the signature lists them; a
    /// header given more than once has its values joined with `,`.
    pub headers: Vec<(String, String)>,
    /// The payload hash line of the canonical request (a hex SHA-256, `UNSIGNED-PAYLOAD` or
    /// a `STREAMING-…` value).
    pub payload: String,
    /// `X-Amz-Expires` of a presigned URL (seconds); `None` for header signatures.
    pub presigned_expires: Option<u64>,
    /// The signature the client sent (lower-case hex).
    pub signature: String,
}

impl SignedRequest {
    /// The credential scope, `YYYYMMDD/region/service/aws4_request`.
    #[must_use]
    pub fn scope(&self) -> String {
        // Joined by hand: `format!` costs several times more, on every request.
        concat(&[
            &self.scope_date,
            "/",
            &self.region,
            "/",
            &self.service,
            "/aws4_request",
        ])
    }

    /// The value of a signed header, if it was signed.
    #[must_use]
    pub fn signed_header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A decoded query parameter (signed: the whole query is part of the canonical request).
    #[must_use]
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The decoded path (what the request names), or `None` if it is not valid UTF-8 once
    /// decoded.
    #[must_use]
    pub fn decoded_path(&self) -> Option<String> {
        self.decoded_path_ref().map(std::borrow::Cow::into_owned)
    }

    /// [`Self::decoded_path`], borrowed from the request when the path has no escapes.
    #[must_use]
    pub fn decoded_path_ref(&self) -> Option<std::borrow::Cow<'_, str>> {
        percent_encoding::percent_decode_str(&self.path)
            .decode_utf8()
            .ok()
    }

    /// The canonical requests this request may have been signed over: the path encoded as
    /// SigV4 says (decoded, then each byte but unreserved ones and `/` encoded once), and,
    /// for clients that sign the path exactly as they send it, the raw path when it differs.
    #[must_use]
    pub fn canonical_requests(&self) -> Vec<String> {
        self.canonical_request_candidates().collect()
    }

    /// [`Self::canonical_requests`], each built only when the iterator reaches it: a verifier
    /// that finds the signature over the first never builds the second.
    pub fn canonical_request_candidates(&self) -> impl Iterator<Item = String> + '_ {
        let encoded = self.decoded_path_ref().map(|d| uri_encode_cow(d, true));
        let raw = (encoded.as_deref() != Some(self.path.as_str())).then_some(self.path.as_str());
        encoded
            .map(|p| self.canonical_request_with_path(&p))
            .into_iter()
            .chain(raw.map(|p| self.canonical_request_with_path(p)))
    }

    fn canonical_request_with_path(&self, path: &str) -> String {
        let path = if path.is_empty() { "/" } else { path };
        let mut pairs: Vec<(String, String)> = self
            .query
            .iter()
            .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
            .collect();
        pairs.sort();
        // Names are lower case already ([`Self::headers`]); sorted by name, then value.
        let mut headers: Vec<(&str, std::borrow::Cow<'_, str>)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), canonical_header_value(v)))
            .collect();
        headers.sort();
        let mut out = String::with_capacity(
            256 + path.len()
                + self.payload.len()
                + headers
                    .iter()
                    .map(|(k, v)| 2 * k.len() + v.len() + 2)
                    .sum::<usize>()
                + pairs
                    .iter()
                    .map(|(k, v)| k.len() + v.len() + 2)
                    .sum::<usize>(),
        );
        out.push_str(self.method.as_str());
        out.push('\n');
        out.push_str(path);
        out.push('\n');
        for (i, (k, v)) in pairs.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
        out.push('\n');
        for (k, v) in &headers {
            out.push_str(k);
            out.push(':');
            out.push_str(v);
            out.push('\n');
        }
        out.push('\n');
        for (i, (k, _)) in headers.iter().enumerate() {
            if i > 0 {
                out.push(';');
            }
            out.push_str(k);
        }
        out.push('\n');
        out.push_str(&self.payload);
        out
    }

    /// The strings to sign for [`Self::canonical_requests`], in the same order.
    #[must_use]
    pub fn strings_to_sign(&self) -> Vec<String> {
        self.canonical_requests()
            .iter()
            .map(|c| string_to_sign(&self.amz_date, &self.scope(), c))
            .collect()
    }

    /// A digest naming this request (SHA-256 of its first canonical request and signature),
    /// for records that say which request a key was released for.
    #[must_use]
    pub fn digest(&self) -> String {
        let canonical = self
            .canonical_request_candidates()
            .next()
            .unwrap_or_default();
        HashedCanonical::new(&canonical).digest(&self.signature)
    }

    /// The request time, if `amz_date` is well formed.
    #[must_use]
    pub fn time(&self) -> Option<time::OffsetDateTime> {
        parse_amz_date(&self.amz_date)
    }
}

/// Trims a header value and collapses runs of spaces, as the canonical request wants (most
/// values need neither, and are borrowed as they are).
fn canonical_header_value(v: &str) -> std::borrow::Cow<'_, str> {
    // What `split_whitespace` splits at, among ASCII bytes.
    let space = |c: &u8| c.is_ascii_whitespace() || *c == 0x0B;
    let b = v.as_bytes();
    let plain = v.is_ascii()
        && !b.first().is_some_and(space)
        && !b.last().is_some_and(space)
        && !b.iter().any(|c| space(c) && *c != b' ')
        && !b.windows(2).any(|w| w[0] == b' ' && w[1] == b' ');
    if plain {
        std::borrow::Cow::Borrowed(v)
    } else {
        std::borrow::Cow::Owned(v.split_whitespace().collect::<Vec<_>>().join(" "))
    }
}

/// Parses `YYYYMMDDTHHMMSSZ`.
#[must_use]
pub fn parse_amz_date(text: &str) -> Option<time::OffsetDateTime> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(text, format)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

/// Formats a time as `YYYYMMDDTHHMMSSZ`.
#[must_use]
pub fn format_amz_date(t: time::OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[must_use]
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    HashedCanonical::new(canonical_request).string_to_sign(amz_date, scope)
}

/// A canonical request hashed once, for both of its uses: its SHA-256 is what the signature
/// signs, and the same hash continued with `\n` and the signature is the request's digest
/// ([`SignedRequest::digest`]).
#[derive(Clone)]
pub struct HashedCanonical {
    /// The hash state after the canonical request, not finished.
    state: Sha256,
    sha256_hex: String,
}

impl HashedCanonical {
    #[must_use]
    pub fn new(canonical_request: &str) -> Self {
        let mut state = Sha256::default();
        state.update(canonical_request.as_bytes());
        let sha256_hex = state.clone().finish_hex();
        Self { state, sha256_hex }
    }

    /// The string the request's signature signs.
    #[must_use]
    pub fn string_to_sign(&self, amz_date: &str, scope: &str) -> String {
        concat(&[
            ALGORITHM,
            "\n",
            amz_date,
            "\n",
            scope,
            "\n",
            &self.sha256_hex,
        ])
    }

    /// SHA-256 of the canonical request, `\n` and `signature`, as hex.
    #[must_use]
    pub fn digest(&self, signature: &str) -> String {
        let mut h = self.state.clone();
        h.update(b"\n");
        h.update(signature.as_bytes());
        h.finish_hex()
    }
}

/// The string a chunk's signature signs: the previous signature chains it to the request.
#[must_use]
pub fn chunk_string_to_sign(
    amz_date: &str,
    scope: &str,
    previous_signature: &str,
    chunk_sha256: &str,
) -> String {
    format!(
        "AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{previous_signature}\n{EMPTY_SHA256}\n{chunk_sha256}"
    )
}

/// The string the trailer's signature signs; `canonical_trailers` is `name:value\n` for each
/// trailing header, sorted by name, without `x-amz-trailer-signature`.
#[must_use]
pub fn trailer_string_to_sign(
    amz_date: &str,
    scope: &str,
    previous_signature: &str,
    canonical_trailers: &[u8],
) -> String {
    format!(
        "AWS4-HMAC-SHA256-TRAILER\n{amz_date}\n{scope}\n{previous_signature}\n{}",
        sha256_hex(canonical_trailers)
    )
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
}

/// The key derived from a secret for one day, region and service. It signs any request of
/// that scope, so whoever holds the secret keeps it too. It is kept as a prepared HMAC key
/// (aws-lc's inner and outer hash states, cleansed by aws-lc when dropped), so that checking a
/// signature hashes only the string to sign; the derived bytes are wiped once it is built.
#[derive(Clone)]
pub struct SigningKey(hmac::Key);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    #[must_use]
    pub fn derive(secret: &str, date: &str, region: &str, service: &str) -> Self {
        let mut first = format!("AWS4{secret}").into_bytes();
        let k_date = hmac_sha256(&first, date.as_bytes());
        first.zeroize();
        let k_region = hmac_sha256(k_date.as_ref(), region.as_bytes());
        let k_service = hmac_sha256(k_region.as_ref(), service.as_bytes());
        let k_signing = hmac_sha256(k_service.as_ref(), b"aws4_request");
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        key.copy_from_slice(k_signing.as_ref());
        Self(hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()))
    }

    /// The hex signature of `string_to_sign`.
    #[must_use]
    pub fn sign(&self, string_to_sign: &str) -> String {
        hex(hmac::sign(&self.0, string_to_sign.as_bytes()).as_ref())
    }

    /// Whether `signature` (hex) signs `string_to_sign`, compared in constant time.
    #[must_use]
    pub fn verifies(&self, string_to_sign: &str, signature: &str) -> bool {
        let expected = self.sign(string_to_sign);
        expected.len() == signature.len()
            && aws_lc_rs::constant_time::verify_slices_are_equal(
                expected.as_bytes(),
                signature.as_bytes(),
            )
            .is_ok()
    }
}

/// Signs requests the way clients do: for tests, benchmarks and obhut's own S3 clients.
#[derive(Clone, Debug)]
pub struct Signer {
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

impl Signer {
    /// The `Authorization` header value for a request whose signed headers are exactly
    /// `headers`; `path` is sent as is (already encoded), query pairs are raw.
    #[must_use]
    pub fn authorization(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        payload_hash: &str,
        amz_date: &str,
    ) -> String {
        let request = self.request(method, path, query, headers, payload_hash, amz_date);
        let to_sign = string_to_sign(
            amz_date,
            &request.scope(),
            &request.canonical_request_with_path(path),
        );
        let key = SigningKey::derive(&self.secret_key, &request.scope_date, &self.region, "s3");
        let mut names: Vec<String> = headers
            .iter()
            .map(|(k, _)| k.to_ascii_lowercase())
            .collect();
        names.sort();
        format!(
            "{ALGORITHM} Credential={}/{}, SignedHeaders={}, Signature={}",
            self.access_key,
            request.scope(),
            names.join(";"),
            key.sign(&to_sign)
        )
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        payload_hash: &str,
        amz_date: &str,
    ) -> SignedRequest {
        SignedRequest {
            access_key_id: self.access_key.clone(),
            amz_date: amz_date.to_owned(),
            scope_date: amz_date.get(..8).unwrap_or(amz_date).to_owned(),
            region: self.region.clone(),
            service: "s3".to_owned(),
            method: method.to_owned(),
            path: path.to_owned(),
            query: query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned()))
                .collect(),
            payload: payload_hash.to_owned(),
            presigned_expires: None,
            signature: String::new(),
        }
    }
}

/// The current time as `YYYYMMDDTHHMMSSZ`.
#[must_use]
pub fn amz_date_now() -> String {
    format_amz_date(time::OffsetDateTime::now_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_trimmed_and_collapsed_as_split_whitespace_does() {
        for v in [
            "plain",
            "a b",
            "  lead",
            "trail  ",
            "a  b",
            "a\tb",
            "a \t b",
            "\x0bv",
            "x\x0b",
            "",
            " ",
            "ü  b",
            "text/plain; charset=utf-8",
        ] {
            let expected = v.split_whitespace().collect::<Vec<_>>().join(" ");
            assert_eq!(canonical_header_value(v), expected, "{v:?}");
        }
    }

    // The examples of the S3 API reference, "Examples: Signature Calculations" (credentials
    // AKIAIOSFODNN7EXAMPLE / wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY, 2013-05-24, us-east-1).
    pub(crate) const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    pub(crate) const DATE: &str = "20130524T000000Z";

    fn signer() -> Signer {
        Signer {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: SECRET.into(),
            region: "us-east-1".into(),
        }
    }

    #[test]
    fn get_object_example() {
        let headers = [
            ("Host", "examplebucket.s3.amazonaws.com"),
            ("Range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", DATE),
        ];
        let request = signer().request("GET", "/test.txt", &[], &headers, EMPTY_SHA256, DATE);
        assert_eq!(
            request.canonical_requests(),
            vec![
                "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n\
             x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
             x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
                    .to_owned()
            ]
        );
        assert_eq!(
            request.strings_to_sign()[0],
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n\
             7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
        );
        assert_eq!(
            signer().authorization("GET", "/test.txt", &[], &headers, EMPTY_SHA256, DATE),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        let key = SigningKey::derive(SECRET, "20130524", "us-east-1", "s3");
        assert!(key.verifies(
            &request.strings_to_sign()[0],
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        ));
        assert!(!key.verifies(
            &request.strings_to_sign()[0],
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb42"
        ));
        assert!(!key.verifies(&request.strings_to_sign()[0], ""));
    }

    #[test]
    fn put_object_example_with_an_encoded_path_and_a_payload_hash() {
        let payload = sha256_hex(b"Welcome to Amazon S3.");
        assert_eq!(
            payload,
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        );
        let path = format!("/{}", uri_encode("test$file.text", true));
        assert_eq!(path, "/test%24file.text");
        let headers = [
            ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("Host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-content-sha256", payload.as_str()),
            ("x-amz-date", DATE),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ];
        let auth = signer().authorization("PUT", &path, &[], &headers, &payload, DATE);
        assert!(
            auth.ends_with(
                "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
            ),
            "{auth}"
        );
    }

    #[test]
    fn list_objects_example_with_a_query() {
        let headers = [
            ("host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", DATE),
        ];
        // Given out of order: the canonical query is sorted.
        let query = [("prefix", "J"), ("max-keys", "2")];
        let request = signer().request("GET", "/", &query, &headers, EMPTY_SHA256, DATE);
        assert!(
            request.canonical_requests()[0].starts_with("GET\n/\nmax-keys=2&prefix=J\n"),
            "{:?}",
            request.canonical_requests()
        );
        let auth = signer().authorization("GET", "/", &query, &headers, EMPTY_SHA256, DATE);
        assert!(
            auth.ends_with(
                "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
            ),
            "{auth}"
        );
    }

    #[test]
    fn seed_and_chunk_signatures_of_the_streaming_example() {
        // "Example: PUT Object" of "Signature Calculations for the Authorization Header:
        // Transferring Payload in Multiple Chunks".
        let headers = [
            ("content-encoding", "aws-chunked"),
            ("content-length", "66824"),
            ("host", "s3.amazonaws.com"),
            ("x-amz-content-sha256", STREAMING_PAYLOAD),
            ("x-amz-date", DATE),
            ("x-amz-decoded-content-length", "66560"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ];
        let request = signer().request(
            "PUT",
            "/examplebucket/chunkObject.txt",
            &[],
            &headers,
            STREAMING_PAYLOAD,
            DATE,
        );
        let key = SigningKey::derive(SECRET, "20130524", "us-east-1", "s3");
        let seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
        assert!(key.verifies(&request.strings_to_sign()[0], seed));
        let first = sha256_hex(&vec![b'a'; 65536]);
        let to_sign = chunk_string_to_sign(DATE, &request.scope(), seed, &first);
        assert_eq!(
            key.sign(&to_sign),
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
        );
    }

    #[test]
    fn the_raw_path_is_a_second_candidate_only_when_it_differs() {
        let date = DATE;
        let headers = [("host", "h")];
        let one = signer().request("GET", "/b/a%2Bb", &[], &headers, EMPTY_SHA256, date);
        assert_eq!(one.canonical_requests().len(), 1);
        assert!(one.canonical_requests()[0].starts_with("GET\n/b/a%2Bb\n"));
        let two = signer().request("GET", "/b/a+b", &[], &headers, EMPTY_SHA256, date);
        let all = two.canonical_requests();
        assert_eq!(all.len(), 2);
        assert!(all[0].starts_with("GET\n/b/a%2Bb\n"), "{all:?}");
        assert!(all[1].starts_with("GET\n/b/a+b\n"), "{all:?}");
        assert_eq!(
            two.canonical_request_candidates().next(),
            Some(all[0].clone())
        );
        // Not UTF-8 once decoded: only the raw path.
        let raw = signer().request("GET", "/b/%FF", &[], &headers, EMPTY_SHA256, date);
        assert_eq!(raw.canonical_requests().len(), 1);
        assert!(raw.canonical_requests()[0].starts_with("GET\n/b/%FF\n"));
        assert!(matches!(
            uri_encode_cow(std::borrow::Cow::Borrowed("/b/plain-key.txt"), true),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn encodes_like_sigv4() {
        assert_eq!(uri_encode("a b/c~d", true), "a%20b/c~d");
        assert_eq!(uri_encode("a b/c~d", false), "a%20b%2Fc~d");
        assert_eq!(uri_encode("ä", false), "%C3%A4");
        assert_eq!(amz_date_now().len(), 16);
        assert_eq!(
            format_amz_date(parse_amz_date(DATE).unwrap()),
            DATE.to_owned()
        );
        assert!(parse_amz_date("20130524").is_none());
        assert!(parse_amz_date("20131324T000000Z").is_none());
    }

    #[test]
    fn payload_lines_are_read_strictly() {
        assert_eq!(Payload::of(EMPTY_SHA256), Some(Payload::Hash));
        assert_eq!(Payload::of(&EMPTY_SHA256.to_uppercase()), None);
        assert_eq!(Payload::of("abc"), None);
        assert_eq!(Payload::of(UNSIGNED_PAYLOAD), Some(Payload::Unsigned));
        assert_eq!(
            Payload::of(STREAMING_PAYLOAD_TRAILER),
            Some(Payload::SignedChunks { trailer: true })
        );
        assert_eq!(
            Payload::of("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"),
            None
        );
    }
}
