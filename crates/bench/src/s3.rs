//! A small S3 client (path-style requests, SigV4) and the S3 loads: put, get, mixed, list.
//!
//! Bodies are produced and checked on the fly (`content`), so a worker never holds more than one
//! chunk of an object. PUT bodies carry `UNSIGNED-PAYLOAD` by default, as SDKs do over TLS, so
//! the client does not hash every byte on a machine it shares with the server; `--payload sha256`
//! signs the hash instead (the body is then generated twice: once to hash it, once to send it).

use crate::content::{CHUNK, Content, GenBody, Verifier, sampled};
use crate::runner::{Outcome, Workload};
use crate::sigv4::{EMPTY_SHA256, Signer, UNSIGNED_PAYLOAD, amz_date_now, uri_encode};
use anyhow::{Context, Result, anyhow, bail};
use aws_lc_rs::digest;
use reqwest::{Method, StatusCode, Url};
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PayloadSigning {
    /// `x-amz-content-sha256: UNSIGNED-PAYLOAD`
    Unsigned,
    /// The SHA-256 of the body, computed before sending.
    Sha256,
}

impl PayloadSigning {
    pub fn name(self) -> &'static str {
        match self {
            PayloadSigning::Unsigned => "unsigned",
            PayloadSigning::Sha256 => "sha256",
        }
    }
}

/// reqwest is built with rustls but without a default crypto provider: use aws-lc-rs, as the
/// rest of the workspace does. Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

#[derive(Clone)]
pub struct S3Client {
    http: reqwest::Client,
    endpoint: Url,
    host: String,
    signer: Signer,
    payload: PayloadSigning,
    timeout: Duration,
}

/// The name of key number `index`.
pub fn key_name(prefix: &str, index: u64) -> String {
    format!("{prefix}{index:08}")
}

impl S3Client {
    pub fn new(
        endpoint: &str,
        signer: Signer,
        payload: PayloadSigning,
        pool: usize,
        timeout: Duration,
        ca_bundle: Option<&Path>,
    ) -> Result<Self> {
        let endpoint: Url = endpoint
            .parse()
            .with_context(|| format!("'{endpoint}' is not a URL"))?;
        let host = match (endpoint.host_str(), endpoint.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => bail!("endpoint '{endpoint}' has no host"),
        };
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(pool)
            .connect_timeout(Duration::from_secs(10));
        if endpoint.scheme() == "https" {
            let bundle = ca_bundle.unwrap_or(Path::new("/etc/ssl/certs/ca-certificates.crt"));
            let pem = std::fs::read(bundle).with_context(|| {
                format!(
                    "cannot read CA certificates from {} (use --ca-bundle)",
                    bundle.display()
                )
            })?;
            builder = builder.tls_built_in_root_certs(false);
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("cannot parse {}", bundle.display()))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        Ok(S3Client {
            http: builder.build().context("cannot build the HTTP client")?,
            endpoint,
            host,
            signer,
            payload,
            timeout,
        })
    }

    fn path(&self, bucket: &str, key: Option<&str>) -> String {
        let base = self.endpoint.path().trim_end_matches('/');
        match key {
            Some(key) => format!(
                "{base}/{}/{}",
                uri_encode(bucket, false),
                uri_encode(key, true)
            ),
            None => format!("{base}/{}", uri_encode(bucket, false)),
        }
    }

    /// A signed request builder.
    fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        payload_hash: &str,
    ) -> Result<reqwest::RequestBuilder> {
        let mut url = self.endpoint.clone();
        url.set_path(path);
        if !query.is_empty() {
            let q: Vec<String> = query
                .iter()
                .map(|(k, v)| format!("{}={}", uri_encode(k, false), uri_encode(v, false)))
                .collect();
            url.set_query(Some(&q.join("&")));
        }
        let date = amz_date_now();
        let headers = [
            ("host", self.host.as_str()),
            ("x-amz-content-sha256", payload_hash),
            ("x-amz-date", date.as_str()),
        ];
        let auth =
            self.signer
                .authorization(method.as_str(), path, query, &headers, payload_hash, &date);
        Ok(self
            .http
            .request(method, url)
            .timeout(self.timeout)
            .header("x-amz-content-sha256", payload_hash)
            .header("x-amz-date", date)
            .header("authorization", auth))
    }

    /// Creates the bucket; one that exists already is fine.
    pub async fn create_bucket(&self, bucket: &str) -> Result<()> {
        let path = self.path(bucket, None);
        let resp = self
            .request(Method::PUT, &path, &[], EMPTY_SHA256)?
            .header("content-length", "0")
            .send()
            .await
            .with_context(|| format!("PUT bucket {bucket}"))?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if status.is_success() || body.contains("BucketAlreadyOwnedByYou") {
            return Ok(());
        }
        Err(anyhow!("PUT bucket {bucket}: {}", describe(status, &body)))
    }

    pub async fn put(&self, bucket: &str, key: &str, size: u64) -> Result<Outcome> {
        let content = Content::for_key(key);
        let hash = match self.payload {
            PayloadSigning::Unsigned => UNSIGNED_PAYLOAD.to_owned(),
            PayloadSigning::Sha256 => hash_content(content, size),
        };
        let path = self.path(bucket, Some(key));
        let resp = self
            .request(Method::PUT, &path, &[], &hash)?
            .header("content-length", size)
            .body(reqwest::Body::wrap(GenBody::new(content, size)))
            .send()
            .await
            .map_err(|e| anyhow!("PUT {key}: {}", error_chain(&e)))?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("PUT {key}: {}", describe(status, &body));
        }
        Ok(Outcome {
            bytes: size,
            ttfb: None,
            verified: false,
        })
    }

    /// GET of a whole object, checking its length, and its bytes when `verify`.
    pub async fn get(&self, bucket: &str, key: &str, size: u64, verify: bool) -> Result<Outcome> {
        let start = Instant::now();
        let path = self.path(bucket, Some(key));
        let mut resp = self
            .request(Method::GET, &path, &[], EMPTY_SHA256)?
            .send()
            .await
            .map_err(|e| anyhow!("GET {key}: {}", error_chain(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            bail!("GET {key}: {}", describe(status, &body));
        }
        let mut verifier = verify.then(|| Verifier::new(Content::for_key(key)));
        let mut received = 0u64;
        let mut ttfb = None;
        while let Some(piece) = resp
            .chunk()
            .await
            .map_err(|e| anyhow!("GET {key} after {received} bytes: {}", error_chain(&e)))?
        {
            if ttfb.is_none() && !piece.is_empty() {
                ttfb = Some(start.elapsed());
            }
            if let Some(v) = verifier.as_mut()
                && let Err(at) = v.check(&piece)
            {
                bail!("GET {key}: wrong content at byte {at}");
            }
            received += piece.len() as u64;
        }
        if received != size {
            bail!("GET {key}: {received} bytes, expected {size}");
        }
        Ok(Outcome {
            bytes: received,
            ttfb: ttfb.or(Some(start.elapsed())),
            verified: verify,
        })
    }

    /// The object's size, or `None` if it does not exist.
    pub async fn head(&self, bucket: &str, key: &str) -> Result<Option<u64>> {
        let path = self.path(bucket, Some(key));
        let resp = self
            .request(Method::HEAD, &path, &[], EMPTY_SHA256)?
            .send()
            .await
            .map_err(|e| anyhow!("HEAD {key}: {}", error_chain(&e)))?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(resp
                .headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())),
            s => bail!("HEAD {key}: {s}"),
        }
    }

    /// One ListObjectsV2 page of up to 1000 keys under `prefix`; the outcome's bytes are the
    /// response's size.
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<(Outcome, usize)> {
        let start = Instant::now();
        let path = self.path(bucket, None);
        let query = [("list-type", "2"), ("max-keys", "1000"), ("prefix", prefix)];
        let resp = self
            .request(Method::GET, &path, &query, EMPTY_SHA256)?
            .send()
            .await
            .map_err(|e| anyhow!("LIST {prefix}: {}", error_chain(&e)))?;
        let status = resp.status();
        let ttfb = start.elapsed();
        let body = resp
            .text()
            .await
            .map_err(|e| anyhow!("LIST {prefix}: {}", error_chain(&e)))?;
        if !status.is_success() {
            bail!("LIST {prefix}: {}", describe(status, &body));
        }
        let keys = body.matches("<Key>").count();
        Ok((
            Outcome {
                bytes: body.len() as u64,
                ttfb: Some(ttfb),
                verified: false,
            },
            keys,
        ))
    }
}

/// Which listing a walk pages through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Listing {
    /// ListObjectsV2, with continuation tokens.
    Objects,
    /// ListObjectVersions (versions and delete markers), with key and version-id markers.
    Versions,
}

impl Listing {
    pub fn name(self) -> &'static str {
        match self {
            Listing::Objects => "list-objects-v2",
            Listing::Versions => "list-object-versions",
        }
    }
}

/// Where the next page of a walk starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Resume {
    #[default]
    Start,
    /// ListObjectsV2 from the first key after this one (`start-after`): a first page that
    /// begins anywhere in the bucket.
    StartAfter(String),
    /// ListObjectsV2's `NextContinuationToken`.
    Token(String),
    /// ListObjectVersions' `NextKeyMarker` and `NextVersionIdMarker`.
    Markers(String, Option<String>),
}

/// One page of a walk: the entries it answered and where the next one starts (`None`: the last
/// page).
#[derive(Debug, PartialEq, Eq)]
pub struct Page {
    pub entries: usize,
    pub next: Option<Resume>,
}

impl S3Client {
    /// Turns versioning on for the bucket (PutBucketVersioning, `Enabled`).
    pub async fn enable_versioning(&self, bucket: &str) -> Result<()> {
        let body = "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                    <Status>Enabled</Status></VersioningConfiguration>";
        let hash = crate::sigv4::sha256_hex(body.as_bytes());
        let path = self.path(bucket, None);
        let resp = self
            .request(Method::PUT, &path, &[("versioning", "")], &hash)?
            .header("content-length", body.len())
            .body(body)
            .send()
            .await
            .map_err(|e| anyhow!("PUT bucket {bucket}?versioning: {}", error_chain(&e)))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!(
                "PUT bucket {bucket}?versioning: {}",
                describe(status, &text)
            );
        }
        Ok(())
    }

    /// One page of up to `max_keys` entries of `listing`, from `from`.
    pub async fn list_page(
        &self,
        bucket: &str,
        listing: Listing,
        prefix: &str,
        max_keys: usize,
        from: &Resume,
    ) -> Result<Page> {
        let path = self.path(bucket, None);
        let max = max_keys.to_string();
        let mut query: Vec<(&str, &str)> = Vec::with_capacity(4);
        match listing {
            Listing::Objects => query.push(("list-type", "2")),
            Listing::Versions => query.push(("versions", "")),
        }
        query.push(("max-keys", &max));
        if !prefix.is_empty() {
            query.push(("prefix", prefix));
        }
        match from {
            Resume::Start => {}
            Resume::StartAfter(k) => match listing {
                Listing::Objects => query.push(("start-after", k)),
                Listing::Versions => query.push(("key-marker", k)),
            },
            Resume::Token(t) => query.push(("continuation-token", t)),
            Resume::Markers(k, v) => {
                query.push(("key-marker", k));
                if let Some(v) = v {
                    query.push(("version-id-marker", v));
                }
            }
        }
        let resp = self
            .request(Method::GET, &path, &query, EMPTY_SHA256)?
            .send()
            .await
            .map_err(|e| anyhow!("{} {bucket}: {}", listing.name(), error_chain(&e)))?;
        let status = resp.status();
        let body = resp
            .text()
            .await
            .map_err(|e| anyhow!("{} {bucket}: {}", listing.name(), error_chain(&e)))?;
        if !status.is_success() {
            bail!("{} {bucket}: {}", listing.name(), describe(status, &body));
        }
        parse_page(listing, &body)
    }
}

/// The entry count and the resume point of a listing's XML answer.
pub fn parse_page(listing: Listing, body: &str) -> Result<Page> {
    let truncated = xml_field(body, "IsTruncated").as_deref() == Some("true");
    let (entries, next) = match listing {
        Listing::Objects => (
            body.matches("<Contents>").count(),
            xml_field(body, "NextContinuationToken").map(Resume::Token),
        ),
        Listing::Versions => (
            body.matches("<Version>").count() + body.matches("<DeleteMarker>").count(),
            xml_field(body, "NextKeyMarker")
                .map(|k| Resume::Markers(k, xml_field(body, "NextVersionIdMarker"))),
        ),
    };
    match (truncated, next) {
        (false, _) => Ok(Page {
            entries,
            next: None,
        }),
        (true, Some(next)) => Ok(Page {
            entries,
            next: Some(next),
        }),
        (true, None) => bail!("a truncated {} page without a resume point", listing.name()),
    }
}

/// The text of the first `<tag>…</tag>` in `body`, XML entities resolved.
fn xml_field(body: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&close)? + start;
    Some(
        body[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// The SHA-256 of an object's content, produced chunk by chunk.
fn hash_content(content: Content, size: u64) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; usize::try_from(size).map_or(CHUNK, |s| s.min(CHUNK))];
    let mut offset = 0u64;
    while offset < size {
        let n = usize::try_from(size - offset).map_or(buf.len(), |left| left.min(buf.len()));
        content.fill(offset, &mut buf[..n]);
        ctx.update(&buf[..n]);
        offset += n as u64;
    }
    crate::sigv4::hex(ctx.finish().as_ref())
}

/// A status with the S3 error code and message if the body has them.
fn describe(status: StatusCode, body: &str) -> String {
    let field = |tag: &str| {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        let start = body.find(&open)? + open.len();
        let end = body[start..].find(&close)? + start;
        Some(body[start..end].to_owned())
    };
    match (field("Code"), field("Message")) {
        (Some(code), Some(message)) => format!("{status} {code}: {message}"),
        (Some(code), None) => format!("{status} {code}"),
        _ => format!("{status} {}", body.chars().take(200).collect::<String>()),
    }
}

/// reqwest's error with its causes (the top one alone says little: "error sending request").
fn error_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum S3Op {
    Put,
    Get,
    Mixed,
    List,
}

impl S3Op {
    pub fn name(self) -> &'static str {
        match self {
            S3Op::Put => "put",
            S3Op::Get => "get",
            S3Op::Mixed => "mixed",
            S3Op::List => "list",
        }
    }

    /// Whether the objects must exist before the timed part.
    pub fn needs_prefill(self) -> bool {
        !matches!(self, S3Op::Put)
    }
}

/// The timed S3 load.
pub struct S3Load {
    pub client: S3Client,
    pub op: S3Op,
    pub bucket: String,
    pub prefix: String,
    pub size: u64,
    pub verify_sample: f64,
    /// Share of PUTs in a mixed load.
    pub mix_put: f64,
}

impl S3Load {
    fn is_put(&self, i: u64) -> bool {
        match self.op {
            S3Op::Put => true,
            S3Op::Mixed => sampled(i ^ 0xA5A5_A5A5, self.mix_put),
            S3Op::Get | S3Op::List => false,
        }
    }
}

impl Workload for S3Load {
    fn op_name(&self, i: u64) -> &'static str {
        match self.op {
            S3Op::List => "list",
            _ if self.is_put(i) => "put",
            _ => "get",
        }
    }

    async fn run(&self, i: u64, key: u64) -> Result<Outcome> {
        if self.op == S3Op::List {
            return self
                .client
                .list(&self.bucket, &self.prefix)
                .await
                .map(|(o, _)| o);
        }
        let name = key_name(&self.prefix, key);
        if self.is_put(i) {
            self.client.put(&self.bucket, &name, self.size).await
        } else {
            self.client
                .get(
                    &self.bucket,
                    &name,
                    self.size,
                    sampled(i, self.verify_sample),
                )
                .await
        }
    }
}

/// The untimed preparation of reads: every key that is missing or has the wrong size is PUT.
pub struct PrefillLoad {
    pub client: S3Client,
    pub bucket: String,
    pub prefix: String,
    pub size: u64,
}

impl Workload for PrefillLoad {
    fn op_name(&self, _i: u64) -> &'static str {
        "prefill"
    }

    async fn run(&self, _i: u64, key: u64) -> Result<Outcome> {
        let name = key_name(&self.prefix, key);
        if self.client.head(&self.bucket, &name).await? == Some(self.size) {
            return Ok(Outcome::default());
        }
        self.client.put(&self.bucket, &name, self.size).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigv4::sha256_hex;

    #[test]
    fn pages_resume_where_the_answer_says() {
        let v2 = "<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>a</Key></Contents>\
                  <Contents><Key>b</Key></Contents><NextContinuationToken>Yg</NextContinuationToken></ListBucketResult>";
        assert_eq!(
            parse_page(Listing::Objects, v2).unwrap(),
            Page {
                entries: 2,
                next: Some(Resume::Token("Yg".into()))
            }
        );
        let last = "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>c</Key></Contents></ListBucketResult>";
        assert_eq!(
            parse_page(Listing::Objects, last).unwrap(),
            Page {
                entries: 1,
                next: None
            }
        );
        let versions = "<ListVersionsResult><IsTruncated>true</IsTruncated><NextKeyMarker>a&amp;b</NextKeyMarker>\
                        <NextVersionIdMarker>v1</NextVersionIdMarker><Version><Key>a&amp;b</Key></Version>\
                        <DeleteMarker><Key>a&amp;b</Key></DeleteMarker></ListVersionsResult>";
        assert_eq!(
            parse_page(Listing::Versions, versions).unwrap(),
            Page {
                entries: 2,
                next: Some(Resume::Markers("a&b".into(), Some("v1".into())))
            }
        );
        let broken = "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>";
        assert!(parse_page(Listing::Objects, broken).is_err());
    }

    #[test]
    fn error_descriptions_use_the_s3_code() {
        let body = "<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>";
        assert_eq!(
            describe(StatusCode::NOT_FOUND, body),
            "404 Not Found NoSuchKey: gone"
        );
        assert_eq!(
            describe(StatusCode::BAD_GATEWAY, "boom"),
            "502 Bad Gateway boom"
        );
    }

    #[test]
    fn content_hash_matches_a_one_shot_hash() {
        let c = Content::for_key("x");
        let size = CHUNK as u64 * 2 + 5;
        let mut all = vec![0u8; usize::try_from(size).unwrap()];
        c.fill(0, &mut all);
        assert_eq!(hash_content(c, size), sha256_hex(&all));
        assert_eq!(hash_content(c, 0), EMPTY_SHA256);
    }

    #[test]
    fn paths_are_path_style_and_encoded() {
        let signer = Signer {
            access_key: "a".into(),
            secret_key: "s".into(),
            region: "r".into(),
        };
        install_crypto_provider();
        let c = S3Client::new(
            "http://127.0.0.1:9000",
            signer,
            PayloadSigning::Unsigned,
            1,
            Duration::from_secs(1),
            None,
        )
        .unwrap();
        assert_eq!(c.host, "127.0.0.1:9000");
        assert_eq!(c.path("b", Some("p/k 1")), "/b/p/k%201");
        assert_eq!(c.path("b", None), "/b");
        assert_eq!(key_name("p/", 7), "p/00000007");
    }
}
