//! A site in one bucket of an S3-compatible cluster (Ceph RGW, MinIO, Garage, another obhut),
//! reached with SigV4-presigned, path-style requests.
//!
//! In the bucket: `obhut-site.json`, the site's identity (what `site.json` is to a local
//! site), and `blobs/<BlobId>`, one object per blob. A blob that fits in one part (8 MiB by
//! default) is one PutObject at commit; a larger one is a multipart upload whose parts are sent
//! as they fill, so a writer holds at most one part in memory. The object exists under its name
//! only once S3 has acknowledged the PutObject or CompleteMultipartUpload; a writer dropped
//! before that aborts its upload in the background, and `clear_temporary` aborts the uploads
//! that nobody will finish. Every request and every piece of a streamed body is bounded in
//! time, and every failure names the site and the operation. A request that meets a lost
//! connection or a transient answer (5xx, `SlowDown`) is sent again with backoff within its
//! deadline (`transport`); a multipart write retries only the part that failed, never the parts
//! already acknowledged.
//!
//! This module owns the site's credentials and signs every request (rusty-s3 over aws-lc-rs).
//! The secret key never leaves it: not in `Debug`, not in errors or logs, and not in URLs
//! (which carry a signature, never the key). It never sees object names, tenants or
//! plaintext: only blob ids and the bytes it is given, which are already ciphertext.

mod transport;
mod xml;

use crate::{BlobStream, BlobWriter, Capacity, Site, SiteError};
use async_trait::async_trait;
use bytes::{Buf, Bytes, BytesMut};
use md5::{Digest, Md5};
use obhut_core::BlobId;
use reqwest::{Method, StatusCode};
use rusty_s3::actions::{CompleteMultipartUploadResponse, CreateMultipartUpload, ListObjectsV2};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::task::JoinSet;
use transport::{Patience, Transport};
use url::Url;
use xml::UploadsPage;

/// The identity object, written once by [`S3Site::create`] and checked by [`S3Site::open`].
const IDENTITY_KEY: &str = "obhut-site.json";
/// Blobs live under this prefix, and nothing else does.
const BLOB_PREFIX: &str = "blobs/";
/// How long a presigned request stays valid. Each is signed just before it is sent.
const PRESIGN_TTL: Duration = Duration::from_secs(15 * 60);
/// S3's bounds on a multipart upload.
const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
const MAX_PART_SIZE: usize = 5 * 1024 * 1024 * 1024;
const MAX_PARTS: usize = 10_000;
/// The most an identity object or an answer listing blobs or uploads may weigh.
const IDENTITY_LIMIT: usize = 64 * 1024;
const LISTING_LIMIT: usize = 16 * 1024 * 1024;
/// Bodies at least this long get their Content-MD5 computed off the async threads.
const BLOCKING_DIGEST_FROM: usize = 256 * 1024;

/// Where an S3 site is and how to reach it.
#[derive(Clone)]
pub struct S3SiteConfig {
    /// `http(s)://host[:port][/path]` of the S3 service; the bucket is addressed path-style
    /// (`<endpoint>/<bucket>/<key>`).
    pub endpoint: String,
    pub bucket: String,
    /// The SigV4 signing region (`us-east-1` for most non-AWS servers unless set otherwise).
    pub region: String,
    pub access_key: String,
    /// Never printed: `Debug` shows `<redacted>`.
    pub secret_key: String,
    /// CA certificates (PEM) trusted for an `https` endpoint besides the system's.
    pub ca_pem: Option<String>,
    /// The longest wait for a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Each request's deadline: the longest wait for its answer (a part's upload included),
    /// retries after transient failures included, and for each piece of a streamed body.
    pub request_timeout: Duration,
    /// How long after its first attempt a write may still be tried again after a lost
    /// connection or a transient answer (never past `request_timeout`). Reads of blobs and
    /// health checks retry for at most a second of it: another replica can serve them. Zero:
    /// nothing is retried.
    pub retry_for: Duration,
    /// The size of a multipart upload's parts (5 MiB to 5 GiB); a blob smaller than this is
    /// one PutObject. A writer holds at most one part in memory.
    pub part_size: usize,
    /// `clear_temporary` leaves multipart uploads younger than this alone (by the server's
    /// `Initiated` time): they may be another gateway's writes in progress when several share
    /// the bucket. Zero: every unfinished upload is a leftover, as on a local site.
    pub temporary_min_age: Duration,
}

impl S3SiteConfig {
    pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
    pub const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(10);

    /// A configuration with the default timeouts and part size, and no extra CA.
    #[must_use]
    pub fn new(
        endpoint: impl Into<String>,
        bucket: impl Into<String>,
        region: impl Into<String>,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> Self {
        Self {
            endpoint: endpoint.into(),
            bucket: bucket.into(),
            region: region.into(),
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            ca_pem: None,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            retry_for: Self::DEFAULT_RETRY_FOR,
            part_size: Self::DEFAULT_PART_SIZE,
            temporary_min_age: Duration::ZERO,
        }
    }
}

impl fmt::Debug for S3SiteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3SiteConfig")
            .field("endpoint", &printable_endpoint(&self.endpoint))
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<set>"))
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("retry_for", &self.retry_for)
            .field("part_size", &self.part_size)
            .field("temporary_min_age", &self.temporary_min_age)
            .finish()
    }
}

/// The endpoint without any user or password it may carry (rusty-s3 never sends them either).
fn printable_endpoint(endpoint: &str) -> String {
    match Url::parse(endpoint) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        Err(_) => "<not a URL>".to_owned(),
    }
}

/// A site in a bucket of an S3-compatible cluster. Cheap to clone.
#[derive(Clone)]
pub struct S3Site {
    inner: Arc<Inner>,
}

struct Inner {
    id: String,
    /// The identity this site was opened with (empty until created or opened).
    identity: std::sync::OnceLock<String>,
    bucket: Bucket,
    credentials: Credentials,
    http: Transport,
    part_size: usize,
    temporary_min_age: Duration,
    /// Aborts of uploads whose writers were dropped, still running; `clear_temporary` waits
    /// for them so that what it finds is only what nobody is cleaning up.
    aborts: Mutex<JoinSet<()>>,
}

impl fmt::Debug for S3Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Site")
            .field("id", &self.inner.id)
            .field("bucket_url", &self.inner.bucket.base_url().as_str())
            .field("part_size", &self.inner.part_size)
            .finish_non_exhaustive()
    }
}

/// What the bucket says about the identity object.
enum IdentityObject {
    Found(String),
    Missing,
    NoBucket,
}

impl S3Site {
    /// Makes the bucket a new site: writes `obhut-site.json` with `{"site": id, "identity":
    /// <random>}` and returns the identity, which the registry records and [`S3Site::open`]
    /// checks. A bucket that already holds an identity object is already a site: that is
    /// [`SiteError::Identity`], and nothing is written. The bucket must exist (see
    /// [`S3Site::create_bucket`]).
    ///
    /// # Errors
    /// [`SiteError::Identity`] as above, [`SiteError::Config`] for an unusable configuration,
    /// [`SiteError::Remote`] when the service fails or does not answer.
    pub async fn create(
        id: impl Into<String>,
        config: S3SiteConfig,
    ) -> Result<(Self, String), SiteError> {
        let site = Self::connect(id.into(), config)?;
        let op = "create site";
        match site.read_identity().await? {
            IdentityObject::Found(_) => return Err(site.already_a_site()),
            IdentityObject::NoBucket => {
                return Err(site.http().error(
                    op,
                    Some(StatusCode::NOT_FOUND),
                    format!("bucket {} does not exist", site.inner.bucket.name()),
                ));
            }
            IdentityObject::Missing => {}
        }
        let identity = obhut_core::random_token(32);
        let body = serde_json::json!({ "site": site.inner.id, "identity": identity }).to_string();
        site.write_identity(Bytes::from(body)).await?;
        site.check_identity(&identity).await?;
        let _ = site.inner.identity.set(identity.clone());
        Ok((site, identity))
    }

    /// Opens the site in the bucket if it is the site `id` with `identity`. A missing bucket,
    /// a missing identity object or a different one (a wrong bucket, a wiped or replaced
    /// cluster) is [`SiteError::Identity`]: the site is down, and nothing is written to it.
    ///
    /// # Errors
    /// [`SiteError::Identity`] as above, [`SiteError::Config`] for an unusable configuration,
    /// [`SiteError::Remote`] when the service fails or does not answer (the identity could not
    /// be checked).
    pub async fn open(
        id: impl Into<String>,
        config: S3SiteConfig,
        identity: &str,
    ) -> Result<Self, SiteError> {
        let site = Self::connect(id.into(), config)?;
        site.check_identity(identity).await?;
        let _ = site.inner.identity.set(identity.to_owned());
        Ok(site)
    }

    /// Creates the configured bucket if it does not exist yet (provisioning, tests); a bucket
    /// these credentials already own is fine. It does not make the bucket a site.
    ///
    /// # Errors
    /// [`SiteError::Config`] for an unusable configuration, [`SiteError::Remote`] when the
    /// bucket cannot be created (for instance, someone else owns the name).
    pub async fn create_bucket(
        id: impl Into<String>,
        config: S3SiteConfig,
    ) -> Result<(), SiteError> {
        let site = Self::connect(id.into(), config)?;
        let op = "create bucket";
        let inner = &site.inner;
        let action = inner.bucket.create_bucket(&inner.credentials);
        let body = action.body();
        let url = action.sign(PRESIGN_TTL);
        let resp = site
            .http()
            .send(
                op,
                Patience::Full,
                Method::PUT,
                url,
                &[],
                Some(Bytes::from(body)),
            )
            .await?;
        if resp.status().is_success() {
            return Ok(());
        }
        let refusal = site.http().refusal(op, resp).await;
        if refusal.code == "BucketAlreadyOwnedByYou" {
            return Ok(());
        }
        Err(refusal.error)
    }

    /// The bucket this site lives in.
    #[must_use]
    pub fn bucket(&self) -> &str {
        self.inner.bucket.name()
    }

    /// Checks the configuration and builds the client; no request is sent.
    fn connect(id: String, config: S3SiteConfig) -> Result<Self, SiteError> {
        let invalid = |reason: String| SiteError::Config {
            site: id.clone(),
            reason,
        };
        let endpoint = Url::parse(&config.endpoint)
            .map_err(|e| invalid(format!("endpoint is not a URL: {e}")))?;
        let https = match endpoint.scheme() {
            "https" => true,
            "http" => false,
            other => return Err(invalid(format!("endpoint scheme {other} is not http(s)"))),
        };
        if config.bucket.is_empty() || config.bucket.contains('/') {
            return Err(invalid(format!("{:?} is not a bucket name", config.bucket)));
        }
        if config.region.is_empty() {
            return Err(invalid("region is empty".into()));
        }
        if config.access_key.is_empty() || config.secret_key.is_empty() {
            return Err(invalid("access key or secret key is empty".into()));
        }
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&config.part_size) {
            return Err(invalid(format!(
                "part size {} is outside S3's {MIN_PART_SIZE}..={MAX_PART_SIZE}",
                config.part_size
            )));
        }
        if config.connect_timeout.is_zero() || config.request_timeout.is_zero() {
            return Err(invalid("timeouts must be longer than zero".into()));
        }
        let bucket = Bucket::new(endpoint, UrlStyle::Path, config.bucket, config.region)
            .map_err(|e| invalid(format!("bucket URL: {e}")))?;
        let http = Transport::new(
            &id,
            https,
            config.ca_pem.as_deref(),
            config.connect_timeout,
            config.request_timeout,
            config.retry_for,
        )
        .map_err(invalid)?;
        Ok(Self {
            inner: Arc::new(Inner {
                bucket,
                credentials: Credentials::new(config.access_key, config.secret_key),
                http,
                part_size: config.part_size,
                temporary_min_age: config.temporary_min_age,
                aborts: Mutex::new(JoinSet::new()),
                id,
                identity: std::sync::OnceLock::new(),
            }),
        })
    }

    fn http(&self) -> &Transport {
        &self.inner.http
    }

    fn creds(&self) -> Option<&Credentials> {
        Some(&self.inner.credentials)
    }

    fn already_a_site(&self) -> SiteError {
        SiteError::Identity {
            site: self.inner.id.clone(),
            reason: format!(
                "bucket {} already holds {IDENTITY_KEY}: it is a site already",
                self.inner.bucket.name()
            ),
        }
    }

    async fn read_identity(&self) -> Result<IdentityObject, SiteError> {
        let op = "read site identity";
        let url = self
            .inner
            .bucket
            .get_object(self.creds(), IDENTITY_KEY)
            .sign(PRESIGN_TTL);
        let resp = self
            .http()
            .send(op, Patience::Brief, Method::GET, url, &[], None)
            .await?;
        if resp.status().is_success() {
            return Ok(IdentityObject::Found(
                self.http().text(op, resp, IDENTITY_LIMIT).await?,
            ));
        }
        let refusal = self.http().refusal(op, resp).await;
        match (refusal.status, refusal.code.as_str()) {
            (StatusCode::NOT_FOUND, "NoSuchBucket") => Ok(IdentityObject::NoBucket),
            (StatusCode::NOT_FOUND, _) => Ok(IdentityObject::Missing),
            _ => Err(refusal.error),
        }
    }

    /// Writes the identity object only if there is none (`If-None-Match: *`; a server that
    /// does not implement conditional writes gets a plain PutObject, after the check that
    /// `create` made). Sent once, never retried: a repeated conditional write whose first
    /// answer was lost would find its own object and call the bucket someone else's site.
    /// Garage (2.5.0) ignores `If-None-Match` on PutObject and overwrites: there the read before
    /// and the check after this write are the guard, and of two creates racing on one bucket
    /// the one whose identity was overwritten fails its next identity check and is down.
    async fn write_identity(&self, body: Bytes) -> Result<(), SiteError> {
        let op = "write site identity";
        for conditional in [true, false] {
            let extra: &[(&'static str, &str)] = if conditional {
                &[("if-none-match", "*")]
            } else {
                &[]
            };
            let (url, headers) = self.signed_put(IDENTITY_KEY, &body, extra).await;
            let resp = self
                .http()
                .send_once(op, Method::PUT, url, &headers, Some(body.clone()))
                .await?;
            if resp.status().is_success() {
                return Ok(());
            }
            let refusal = self.http().refusal(op, resp).await;
            match refusal.status {
                StatusCode::PRECONDITION_FAILED | StatusCode::CONFLICT if conditional => {
                    return Err(self.already_a_site());
                }
                StatusCode::NOT_IMPLEMENTED if conditional => {}
                _ => return Err(refusal.error),
            }
        }
        Err(self.http().error(op, None, "conditional write refused"))
    }

    async fn check_identity(&self, identity: &str) -> Result<(), SiteError> {
        let down = |reason: String| SiteError::Identity {
            site: self.inner.id.clone(),
            reason,
        };
        let bucket = self.inner.bucket.name();
        let text = match self.read_identity().await? {
            IdentityObject::Found(text) => text,
            IdentityObject::Missing => {
                return Err(down(format!(
                    "bucket {bucket} has no {IDENTITY_KEY}; is it the right bucket?"
                )));
            }
            IdentityObject::NoBucket => {
                return Err(down(format!("bucket {bucket} does not exist")));
            }
        };
        let recorded: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let matches = !identity.is_empty()
            && recorded["site"].as_str() == Some(self.inner.id.as_str())
            && recorded["identity"].as_str() == Some(identity);
        if matches {
            Ok(())
        } else {
            Err(down(format!(
                "bucket {bucket} belongs to another site (its {IDENTITY_KEY} does not match the registry)"
            )))
        }
    }

    /// A presigned PutObject of `body` to `key`, with its Content-MD5 (signed, so the server
    /// checks the bytes it stores) and `extra` headers; returns the URL and the headers to send.
    async fn signed_put(
        &self,
        key: &str,
        body: &Bytes,
        extra: &[(&'static str, &str)],
    ) -> (Url, Vec<(&'static str, String)>) {
        let md5 = content_md5(body).await;
        let mut action = self.inner.bucket.put_object(self.creds(), key);
        action.headers_mut().insert("content-md5", md5.clone());
        let mut headers = vec![("content-md5", md5)];
        for (name, value) in extra {
            action.headers_mut().insert(*name, *value);
            headers.push((*name, (*value).to_owned()));
        }
        (action.sign(PRESIGN_TTL), headers)
    }

    /// A blob small enough for one request.
    async fn put_blob(&self, key: &str, body: Bytes) -> Result<(), SiteError> {
        let op = "commit blob";
        let (url, headers) = self.signed_put(key, &body, &[]).await;
        let resp = self
            .http()
            .send(op, Patience::Full, Method::PUT, url, &headers, Some(body))
            .await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.http().refusal(op, resp).await.error)
        }
    }

    /// Starts a multipart upload. Retried like any request: an upload started by an attempt
    /// whose answer was lost is never used, and `clear_temporary` aborts it later.
    async fn start_upload(&self, key: &str) -> Result<String, SiteError> {
        let op = "start multipart upload";
        let url = self
            .inner
            .bucket
            .create_multipart_upload(self.creds(), key)
            .sign(PRESIGN_TTL);
        let resp = self
            .http()
            .send(op, Patience::Full, Method::POST, url, &[], None)
            .await?;
        if !resp.status().is_success() {
            return Err(self.http().refusal(op, resp).await.error);
        }
        let status = resp.status();
        let text = self.http().text(op, resp, IDENTITY_LIMIT).await?;
        let parsed = CreateMultipartUpload::parse_response(&text).map_err(|e| {
            self.http()
                .error(op, Some(status), format!("unexpected answer: {e}"))
        })?;
        let id = parsed.upload_id();
        if id.is_empty() {
            return Err(self.http().error(op, Some(status), "empty upload id"));
        }
        Ok(id.to_owned())
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u16,
        body: Bytes,
    ) -> Result<String, SiteError> {
        let op = "upload part";
        let md5 = content_md5(&body).await;
        let mut action = self
            .inner
            .bucket
            .upload_part(self.creds(), key, number, upload_id);
        action.headers_mut().insert("content-md5", md5.clone());
        let url = action.sign(PRESIGN_TTL);
        let resp = self
            .http()
            .send(
                op,
                Patience::Full,
                Method::PUT,
                url,
                &[("content-md5", md5)],
                Some(body),
            )
            .await?;
        if !resp.status().is_success() {
            return Err(self.http().refusal(op, resp).await.error);
        }
        let etag = resp
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        etag.ok_or_else(|| {
            self.http()
                .error(op, Some(resp.status()), "answer has no ETag")
        })
    }

    async fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        etags: &[String],
    ) -> Result<(), SiteError> {
        let op = "commit blob";
        let action = self.inner.bucket.complete_multipart_upload(
            self.creds(),
            key,
            upload_id,
            etags.iter().map(String::as_str),
        );
        let url = action.sign(PRESIGN_TTL);
        let body = action.body();
        let resp = self
            .http()
            .send(
                op,
                Patience::Full,
                Method::POST,
                url,
                &[],
                Some(Bytes::from(body)),
            )
            .await?;
        if !resp.status().is_success() {
            let refusal = self.http().refusal(op, resp).await;
            if refusal.code == "NoSuchUpload" {
                // A retry whose first attempt completed the upload (its answer lost) finds the
                // upload gone; so does one whose upload was aborted. The caller's check of the
                // stored object tells which.
                return Ok(());
            }
            return Err(refusal.error);
        }
        // S3 may answer 200 and still fail: the body says which.
        let status = resp.status();
        let text = self.http().text(op, resp, IDENTITY_LIMIT).await?;
        if CompleteMultipartUploadResponse::parse(&text).is_ok() {
            return Ok(());
        }
        let reason = match xml::ErrorDoc::parse(&text) {
            Some(doc) => format!("{}: {}", doc.code, doc.message),
            None => "unexpected answer to CompleteMultipartUpload".to_owned(),
        };
        Err(self.http().error(op, Some(status), reason))
    }

    /// The length of the object `key` by HEAD; `None` when there is none. (A HEAD answer has
    /// no body, so a missing bucket looks like a missing key here.)
    async fn head_len(
        &self,
        op: &'static str,
        patience: Patience,
        key: &str,
    ) -> Result<Option<u64>, SiteError> {
        let url = self
            .inner
            .bucket
            .head_object(self.creds(), key)
            .sign(PRESIGN_TTL);
        let resp = self
            .http()
            .send(op, patience, Method::HEAD, url, &[], None)
            .await?;
        if resp.status().is_success() {
            // Not `content_length()`: a HEAD answer's body is empty whatever the header says.
            return resp
                .headers()
                .get(reqwest::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .map(Some)
                .ok_or_else(|| {
                    self.http()
                        .error(op, Some(resp.status()), "answer has no Content-Length")
                });
        }
        let refusal = self.http().refusal(op, resp).await;
        if refusal.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Err(refusal.error)
    }

    /// Aborts an upload; `Ok(false)` when it was gone already.
    async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<bool, SiteError> {
        let op = "abort multipart upload";
        let url = self
            .inner
            .bucket
            .abort_multipart_upload(self.creds(), key, upload_id)
            .sign(PRESIGN_TTL);
        let resp = self
            .http()
            .send(op, Patience::Full, Method::DELETE, url, &[], None)
            .await?;
        if resp.status().is_success() {
            return Ok(true);
        }
        let refusal = self.http().refusal(op, resp).await;
        if refusal.status == StatusCode::NOT_FOUND && refusal.code != "NoSuchBucket" {
            return Ok(false);
        }
        Err(refusal.error)
    }

    /// Aborts a dropped writer's upload in the background, if there is a runtime to do it on;
    /// otherwise `clear_temporary` will.
    fn abort_later(&self, key: String, upload_id: String) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(site = %self.inner.id, "writer dropped outside a runtime; its upload is left for clear_temporary");
            return;
        };
        let site = self.clone();
        let mut aborts = self
            .inner
            .aborts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Reap the finished ones so the set does not grow.
        while aborts.try_join_next().is_some() {}
        aborts.spawn_on(
            async move {
                if let Err(e) = site.abort_upload(&key, &upload_id).await {
                    tracing::warn!(error = %e, "cannot abort a dropped writer's upload; clear_temporary will");
                }
            },
            &runtime,
        );
    }

    /// Waits for the background aborts started so far.
    async fn settle_aborts(&self) {
        let mut pending = std::mem::take(
            &mut *self
                .inner
                .aborts
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        // Each abort is one request, bounded by the request timeout.
        while pending.join_next().await.is_some() {}
    }

    async fn list_uploads(
        &self,
        after: Option<&(String, String)>,
    ) -> Result<UploadsPage, SiteError> {
        let op = "list multipart uploads";
        let inner = &self.inner;
        // rusty-s3 has no ListMultipartUploads action: sign the request with its signer.
        // Query parameters sorted by name, as `sign` requires.
        let mut query: Vec<(&str, &str)> = Vec::with_capacity(4);
        if let Some((key, _)) = after {
            query.push(("key-marker", key));
        }
        query.push(("prefix", BLOB_PREFIX));
        if let Some((_, upload_id)) = after
            && !upload_id.is_empty()
        {
            query.push(("upload-id-marker", upload_id));
        }
        query.push(("uploads", ""));
        let url = rusty_s3::signing::sign(
            &jiff::Timestamp::now(),
            rusty_s3::Method::Get,
            inner.bucket.base_url().clone(),
            inner.credentials.key(),
            inner.credentials.secret(),
            inner.credentials.token(),
            inner.bucket.region(),
            PRESIGN_TTL.as_secs(),
            query.iter().copied(),
            std::iter::empty(),
        );
        let resp = self
            .http()
            .send(op, Patience::Full, Method::GET, url, &[], None)
            .await?;
        if !resp.status().is_success() {
            return Err(self.http().refusal(op, resp).await.error);
        }
        let status = resp.status();
        let text = self.http().text(op, resp, LISTING_LIMIT).await?;
        UploadsPage::parse(&text).map_err(|e| {
            self.http()
                .error(op, Some(status), format!("unexpected answer: {e}"))
        })
    }

    /// Whether an upload started at `initiated` (server time) is old enough to be a leftover.
    #[cfg(test)]
    fn is_leftover(&self, initiated: Option<&str>) -> bool {
        Self::started_before(initiated, self.inner.temporary_min_age)
    }

    /// Whether an upload started at `initiated` (server time) is at least `min_age` old.
    fn started_before(initiated: Option<&str>, min_age: Duration) -> bool {
        if min_age.is_zero() {
            return true;
        }
        let Some(started) = initiated.and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
            // Undated: it may be someone's write in progress.
            return false;
        };
        let age = jiff::Timestamp::now().duration_since(started);
        age.unsigned_abs() >= min_age && age.is_positive()
    }
}

/// When an object was written, from the `LastModified` of a listing (the server's clock); the
/// time of the call when the server gives none or one that cannot be read.
fn written_at(last_modified: Option<&str>) -> std::time::SystemTime {
    last_modified
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(std::time::SystemTime::from)
        .unwrap_or_else(std::time::SystemTime::now)
}

fn blob_key(blob: BlobId) -> String {
    format!("{BLOB_PREFIX}{blob}")
}

/// Base64 of the MD5 of `body`, for Content-MD5.
async fn content_md5(body: &Bytes) -> String {
    fn digest(body: &[u8]) -> String {
        base64_simd::STANDARD.encode_to_string(Md5::digest(body))
    }
    if body.len() < BLOCKING_DIGEST_FROM {
        return digest(body);
    }
    let owned = body.clone();
    match tokio::task::spawn_blocking(move || digest(&owned)).await {
        Ok(md5) => md5,
        // The blocking pool is gone (runtime shutting down): do it here.
        Err(_) => digest(body),
    }
}

/// Streams one blob into S3: parts are sent as they fill, the object appears at commit.
struct S3Writer {
    site: S3Site,
    key: String,
    buf: BytesMut,
    upload: Option<Upload>,
    written: u64,
    failed: bool,
}

struct Upload {
    id: String,
    etags: Vec<String>,
}

impl S3Writer {
    fn failed_before(&self) -> SiteError {
        self.site
            .http()
            .error("write blob", None, "an earlier write of this blob failed")
    }

    async fn send_part(&mut self, part: Bytes) -> Result<(), SiteError> {
        if self.upload.is_none() {
            let id = self.site.start_upload(&self.key).await?;
            self.upload = Some(Upload {
                id,
                etags: Vec::new(),
            });
        }
        let Some(upload) = self.upload.as_mut() else {
            return Err(self.failed_before());
        };
        let number = upload.etags.len() + 1;
        let number = u16::try_from(number)
            .ok()
            .filter(|n| usize::from(*n) <= MAX_PARTS)
            .ok_or_else(|| {
                self.site.http().error(
                    "write blob",
                    None,
                    format!(
                        "blob larger than {MAX_PARTS} parts of {} bytes",
                        self.site.inner.part_size
                    ),
                )
            })?;
        let etag = self
            .site
            .upload_part(&self.key, &upload.id, number, part)
            .await?;
        upload.etags.push(etag);
        Ok(())
    }

    async fn write_inner(&mut self, mut data: Bytes) -> Result<(), SiteError> {
        let part_size = self.site.inner.part_size;
        while !data.is_empty() {
            if self.buf.is_empty() && data.len() >= part_size {
                // A whole part in hand: send it without copying.
                let part = data.split_to(part_size);
                self.written += part.len() as u64;
                self.send_part(part).await?;
                continue;
            }
            let take = (part_size - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data.advance(take);
            self.written += take as u64;
            if self.buf.len() == part_size {
                let part = self.buf.split().freeze();
                self.send_part(part).await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl BlobWriter for S3Writer {
    async fn write(&mut self, data: Bytes) -> Result<(), SiteError> {
        if self.failed {
            return Err(self.failed_before());
        }
        // Stays set if this future is dropped halfway: a part may then be lost, so the
        // writer must not go on to commit a blob with a hole in it.
        self.failed = true;
        let result = self.write_inner(data).await;
        self.failed = result.is_err();
        result
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, SiteError> {
        if self.failed {
            return Err(self.failed_before());
        }
        let rest = self.buf.split().freeze();
        if self.upload.is_none() {
            self.site.put_blob(&self.key, rest).await?;
            return Ok(self.written);
        }
        if !rest.is_empty() {
            self.send_part(rest).await?;
        }
        if let Some(upload) = &self.upload {
            self.site
                .complete_upload(&self.key, &upload.id, &upload.etags)
                .await?;
        }
        // Completed: nothing left for Drop to abort. (On an error above, Drop aborts it.)
        self.upload = None;
        // The server assembled the parts; check it kept every byte it acknowledged (and,
        // after a retried completion, that it completed at all).
        let stored = self
            .site
            .head_len("commit blob", Patience::Full, &self.key)
            .await?;
        match stored {
            Some(n) if n == self.written => {}
            Some(n) => {
                return Err(self.site.http().error(
                    "commit blob",
                    None,
                    format!(
                        "completed upload holds {n} bytes, not the {} written",
                        self.written
                    ),
                ));
            }
            None => {
                return Err(self.site.http().error(
                    "commit blob",
                    None,
                    "the upload is gone and no blob was made of it (aborted by someone else?)",
                ));
            }
        }
        Ok(self.written)
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        if let Some(upload) = self.upload.take() {
            self.site
                .abort_later(std::mem::take(&mut self.key), upload.id);
        }
    }
}

/// The state of a blob being streamed out of a GET.
struct Download {
    site: S3Site,
    blob: BlobId,
    resp: reqwest::Response,
    /// Bytes to drop first (a server that ignored the Range header sent the whole blob).
    skip: u64,
    remaining: u64,
}

impl Download {
    async fn next(mut self) -> Result<Option<(Bytes, Self)>, SiteError> {
        let op = "read blob";
        while self.remaining > 0 {
            let Some(mut chunk) = self.site.http().chunk(op, &mut self.resp).await? else {
                return Err(SiteError::Truncated {
                    site: self.site.inner.id.clone(),
                    blob: self.blob,
                });
            };
            let skip = usize::try_from(self.skip)
                .unwrap_or(usize::MAX)
                .min(chunk.len());
            chunk.advance(skip);
            self.skip -= skip as u64;
            let keep = usize::try_from(self.remaining)
                .unwrap_or(usize::MAX)
                .min(chunk.len());
            chunk.truncate(keep);
            if chunk.is_empty() {
                continue;
            }
            self.remaining -= chunk.len() as u64;
            return Ok(Some((chunk, self)));
        }
        Ok(None)
    }
}

/// The first byte of a `Content-Range: bytes FIRST-LAST/TOTAL` answer.
fn content_range_start(resp: &reqwest::Response) -> Option<u64> {
    let value = resp
        .headers()
        .get(reqwest::header::CONTENT_RANGE)?
        .to_str()
        .ok()?;
    let spec = value.trim().strip_prefix("bytes ")?;
    let (first, _) = spec.split_once('-')?;
    first.trim().parse().ok()
}

#[async_trait]
impl Site for S3Site {
    fn id(&self) -> &str {
        &self.inner.id
    }

    async fn create(&self, blob: BlobId) -> Result<Box<dyn BlobWriter>, SiteError> {
        Ok(Box::new(S3Writer {
            site: self.clone(),
            key: blob_key(blob),
            buf: BytesMut::new(),
            upload: None,
            written: 0,
            failed: false,
        }))
    }

    async fn read(&self, blob: BlobId, range: Range<u64>) -> Result<BlobStream, SiteError> {
        let op = "read blob";
        if range.start >= range.end {
            // Nothing to fetch, but a missing blob is still missing.
            self.len(blob).await?;
            return Ok(Box::pin(futures::stream::empty()));
        }
        let key = blob_key(blob);
        let url = self
            .inner
            .bucket
            .get_object(self.creds(), &key)
            .sign(PRESIGN_TTL);
        let header = format!("bytes={}-{}", range.start, range.end - 1);
        let resp = self
            .http()
            .send(
                op,
                Patience::Brief,
                Method::GET,
                url,
                &[("range", header)],
                None,
            )
            .await?;
        let skip = match resp.status() {
            StatusCode::PARTIAL_CONTENT => {
                if let Some(first) = content_range_start(&resp)
                    && first != range.start
                {
                    return Err(self.http().error(
                        op,
                        Some(resp.status()),
                        format!("asked for bytes from {}, got from {first}", range.start),
                    ));
                }
                0
            }
            StatusCode::OK => range.start,
            StatusCode::RANGE_NOT_SATISFIABLE => {
                // The blob ends before the range starts.
                return Err(SiteError::Truncated {
                    site: self.inner.id.clone(),
                    blob,
                });
            }
            _ => {
                let refusal = self.http().refusal(op, resp).await;
                return Err(
                    if refusal.status == StatusCode::NOT_FOUND && refusal.code != "NoSuchBucket" {
                        SiteError::NotFound {
                            site: self.inner.id.clone(),
                            blob,
                        }
                    } else {
                        refusal.error
                    },
                );
            }
        };
        let download = Download {
            site: self.clone(),
            blob,
            resp,
            skip,
            remaining: range.end - range.start,
        };
        Ok(Box::pin(futures::stream::try_unfold(
            download,
            Download::next,
        )))
    }

    async fn len(&self, blob: BlobId) -> Result<u64, SiteError> {
        self.head_len("stat blob", Patience::Brief, &blob_key(blob))
            .await?
            .ok_or_else(|| SiteError::NotFound {
                site: self.inner.id.clone(),
                blob,
            })
    }

    async fn delete(&self, blob: BlobId) -> Result<(), SiteError> {
        let op = "delete blob";
        let url = self
            .inner
            .bucket
            .delete_object(self.creds(), &blob_key(blob))
            .sign(PRESIGN_TTL);
        let resp = self
            .http()
            .send(op, Patience::Full, Method::DELETE, url, &[], None)
            .await?;
        if resp.status().is_success() {
            return Ok(());
        }
        let refusal = self.http().refusal(op, resp).await;
        if refusal.status == StatusCode::NOT_FOUND && refusal.code != "NoSuchBucket" {
            return Ok(());
        }
        Err(refusal.error)
    }

    async fn list(&self) -> Result<Vec<BlobId>, SiteError> {
        Ok(self
            .list_aged()
            .await?
            .into_iter()
            .map(|(blob, _)| blob)
            .collect())
    }

    async fn list_aged(&self) -> Result<Vec<(BlobId, std::time::SystemTime)>, SiteError> {
        let op = "list blobs";
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        let mut ignored = 0usize;
        loop {
            let mut action = self.inner.bucket.list_objects_v2(self.creds());
            action.with_prefix(BLOB_PREFIX);
            action.with_max_keys(1000);
            if let Some(t) = &token {
                action.with_continuation_token(t.clone());
            }
            let url = action.sign(PRESIGN_TTL);
            let resp = self
                .http()
                .send(op, Patience::Full, Method::GET, url, &[], None)
                .await?;
            if !resp.status().is_success() {
                return Err(self.http().refusal(op, resp).await.error);
            }
            let status = resp.status();
            let text = self.http().text(op, resp, LISTING_LIMIT).await?;
            let page = ListObjectsV2::parse_response(&text).map_err(|e| {
                self.http()
                    .error(op, Some(status), format!("unexpected answer: {e}"))
            })?;
            for object in page.contents {
                match object.key.strip_prefix(BLOB_PREFIX).and_then(BlobId::parse) {
                    // Undated or unreadable: as if written now, so never old enough to collect.
                    Some(id) => out.push((id, written_at(object.last_modified.as_deref()))),
                    None => ignored += 1,
                }
            }
            match page.next_continuation_token {
                Some(next) if token.as_ref() == Some(&next) => {
                    return Err(self.http().error(
                        op,
                        Some(status),
                        "the listing repeats its continuation token",
                    ));
                }
                Some(next) => token = Some(next),
                None => break,
            }
        }
        if ignored > 0 {
            tracing::warn!(site = %self.inner.id, ignored, "objects under blobs/ that are not blob names were ignored");
        }
        Ok(out)
    }

    async fn clear_temporary(&self) -> Result<usize, SiteError> {
        self.clear_temporary_older_than(self.inner.temporary_min_age)
            .await
    }

    async fn clear_temporary_older_than(&self, min_age: Duration) -> Result<usize, SiteError> {
        // The site's own floor holds whatever the caller asks.
        let min_age = min_age.max(self.inner.temporary_min_age);
        self.settle_aborts().await;
        let mut aborted = 0;
        let mut after: Option<(String, String)> = None;
        loop {
            let page = self.list_uploads(after.as_ref()).await?;
            for upload in &page.uploads {
                if upload.key.starts_with(BLOB_PREFIX)
                    && Self::started_before(upload.initiated.as_deref(), min_age)
                    && self.abort_upload(&upload.key, &upload.upload_id).await?
                {
                    aborted += 1;
                }
            }
            match page.next_markers() {
                Some(next) if after.as_ref() == Some(&next) => {
                    return Err(self.http().error(
                        "list multipart uploads",
                        None,
                        "the listing repeats its markers",
                    ));
                }
                Some(next) => after = Some(next),
                None => break,
            }
        }
        Ok(aborted)
    }

    async fn capacity(&self) -> Result<Option<Capacity>, SiteError> {
        // S3 has no call for it; the cluster's operators watch its space.
        Ok(None)
    }

    async fn check(&self) -> Result<(), SiteError> {
        let identity = self.inner.identity.get().cloned().unwrap_or_default();
        self.check_identity(&identity).await
    }
}

#[cfg(test)]
mod tests;
