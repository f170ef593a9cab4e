//! The S3 operations, on top of the catalog and the data path.
//!
//! Every operation first resolves the caller's tenant and checks that the bucket belongs to it;
//! another tenant's bucket is `AccessDenied`, a missing one `NoSuchBucket`.

use crate::access::{justification, tenant};
use crate::datapath::{self, Verify, discard_blobs, read_range, write_blob};
use crate::keys::ObjectCipher;
use crate::list::{list_page, url_encode};
use crate::meta::{Checksums, ObjectMeta};
use crate::{Gateway, error};
use bytes::Bytes;
use obhut_catalog::{
    Bucket, BucketKey, CatalogError, Chunk, ObjectRecord, Part, PutCondition, Tenant, Upload,
};
use obhut_core::{validate_bucket_name, validate_object_key};
use obhut_crypto::Key;
use obhut_sites::Site;
use obhut_trustee_client::{Justification, WrappedKey};
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, TrailingHeaders, s3_error};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

const MAX_PART_NUMBER: i32 = 10_000;
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
const MAX_DELETE_KEYS: usize = 1000;

/// An object found for a GET or HEAD, with what is needed to serve it.
struct Found {
    object: ObjectRecord,
    meta: ObjectMeta,
    range: std::ops::Range<u64>,
    content_range: Option<String>,
    cipher: Arc<ObjectCipher>,
}

/// Placed site ids and the sites themselves.
/// Where a new blob goes: the sites chosen, and how many of them must hold it for the write
/// to succeed (all of them, unless the policy accepts degraded writes).
struct Placement {
    ids: Vec<String>,
    sites: Vec<Arc<dyn Site>>,
    min_ok: usize,
    /// What the policy requires; fewer holding sites make the object under-replicated.
    required: usize,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn timestamp(ms: i64) -> Timestamp {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(t)
}

/// Whole seconds, as HTTP dates carry them.
fn seconds(ts: &Timestamp) -> i64 {
    time::OffsetDateTime::from(ts.clone()).unix_timestamp()
}

fn hex(bytes: &[u8]) -> String {
    hex_simd::encode_to_string(bytes, hex_simd::AsciiCase::Lower)
}

fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_owned())
}

fn size_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn check_key(key: &str) -> S3Result<()> {
    validate_object_key(key).map_err(|e| match e {
        obhut_core::NameError::KeyTooLong => s3_error!(KeyTooLongError),
        other => s3_error!(InvalidArgument, "{other}"),
    })
}

/// Bucket-owner-enforced object ownership: only ACLs that grant nothing extra are accepted.
fn check_object_acl(acl: Option<&ObjectCannedACL>, grants: bool) -> S3Result<()> {
    let ok = acl.is_none_or(|a| matches!(a.as_str(), "private" | "bucket-owner-full-control"));
    if ok && !grants {
        Ok(())
    } else {
        Err(s3_error!(
            AccessControlListNotSupported,
            "The bucket does not allow ACLs"
        ))
    }
}

fn part_number(n: i32) -> S3Result<u32> {
    if (1..=MAX_PART_NUMBER).contains(&n) {
        Ok(u32::try_from(n).unwrap_or(1))
    } else {
        Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        ))
    }
}

fn max_keys(n: Option<i32>) -> S3Result<usize> {
    match n {
        None => Ok(1000),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must not be negative")),
        Some(n) => Ok(usize::try_from(n).unwrap_or(0).min(1000)),
    }
}

fn wants_url_encoding(e: Option<&EncodingType>) -> S3Result<bool> {
    match e.map(EncodingType::as_str) {
        None => Ok(false),
        Some("url") => Ok(true),
        Some(other) => Err(s3_error!(
            InvalidArgument,
            "Invalid Encoding Method specified in Request: {other}"
        )),
    }
}

/// Which checksums to compute for an upload: those given as headers, the declared algorithm,
/// and any announced in `x-amz-trailer`.
fn checksum_hasher(
    headers: &http::HeaderMap,
    algorithm: Option<&ChecksumAlgorithm>,
    given: &Checksums,
) -> S3Result<ChecksumHasher> {
    let mut h = ChecksumHasher::default();
    let mut enable = |name: &str| -> S3Result<()> {
        match name.to_ascii_uppercase().as_str() {
            "CRC32" => h.crc32 = Some(Default::default()),
            "CRC32C" => h.crc32c = Some(Default::default()),
            "CRC64NVME" => h.crc64nvme = Some(Default::default()),
            "SHA1" => h.sha1 = Some(Default::default()),
            "SHA256" => h.sha256 = Some(Default::default()),
            other => {
                return Err(s3_error!(
                    InvalidRequest,
                    "unsupported checksum algorithm {other}"
                ));
            }
        }
        Ok(())
    };
    if let Some(a) = algorithm {
        enable(a.as_str())?;
    }
    if given.crc32.is_some() {
        enable("CRC32")?;
    }
    if given.crc32c.is_some() {
        enable("CRC32C")?;
    }
    if given.crc64nvme.is_some() {
        enable("CRC64NVME")?;
    }
    if given.sha1.is_some() {
        enable("SHA1")?;
    }
    if given.sha256.is_some() {
        enable("SHA256")?;
    }
    if let Some(trailer) = headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()) {
        for name in trailer.split(',').map(str::trim) {
            if let Some(alg) = name.strip_prefix("x-amz-checksum-") {
                enable(alg)?;
            }
        }
    }
    Ok(h)
}

/// Checks Content-MD5 and the S3 checksums (from headers or trailers) against what was computed.
fn verifier(
    content_md5: Option<String>,
    given: Checksums,
    trailers: Option<TrailingHeaders>,
) -> S3Result<Verify<'static>> {
    let expected_md5 = match content_md5 {
        None => None,
        Some(b64) => {
            let raw = base64_simd::STANDARD
                .decode_to_vec(b64.trim())
                .map_err(|_| {
                    s3_error!(InvalidDigest, "The Content-MD5 you specified was not valid")
                })?;
            if raw.len() != 16 {
                return Err(s3_error!(
                    InvalidDigest,
                    "The Content-MD5 you specified was not valid"
                ));
            }
            Some(raw)
        }
    };
    Ok(Box::new(move |md5, computed| {
        if let Some(exp) = expected_md5
            && exp.as_slice() != md5
        {
            return Err(s3_error!(
                BadDigest,
                "The Content-MD5 you specified did not match what we received"
            ));
        }
        let mut given = given;
        if let Some(map) = trailers.and_then(|t| t.take()) {
            let get = |n: &str| map.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
            given.crc32 = given.crc32.or_else(|| get("x-amz-checksum-crc32"));
            given.crc32c = given.crc32c.or_else(|| get("x-amz-checksum-crc32c"));
            given.crc64nvme = given.crc64nvme.or_else(|| get("x-amz-checksum-crc64nvme"));
            given.sha1 = given.sha1.or_else(|| get("x-amz-checksum-sha1"));
            given.sha256 = given.sha256.or_else(|| get("x-amz-checksum-sha256"));
        }
        let pairs = [
            ("CRC32", &given.crc32, &computed.checksum_crc32),
            ("CRC32C", &given.crc32c, &computed.checksum_crc32c),
            ("CRC64NVME", &given.crc64nvme, &computed.checksum_crc64nvme),
            ("SHA1", &given.sha1, &computed.checksum_sha1),
            ("SHA256", &given.sha256, &computed.checksum_sha256),
        ];
        for (name, want, got) in pairs {
            if let Some(want) = want
                && Some(want) != got.as_ref()
            {
                return Err(s3_error!(
                    BadDigest,
                    "The {name} you specified did not match the calculated checksum."
                ));
            }
        }
        Ok(())
    }))
}

/// The body length to enforce: Content-Length, or the decoded length of an aws-chunked body.
fn expected_length<T>(req: &S3Request<T>, content_length: Option<i64>) -> Option<u64> {
    let streaming = req
        .headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("STREAMING-"));
    if streaming && !req.headers.contains_key("x-amz-decoded-content-length") {
        return None;
    }
    content_length.and_then(|n| u64::try_from(n).ok())
}

/// The body of a request that came without one.
fn empty_body() -> StreamingBlob {
    StreamingBlob::wrap(futures::stream::empty::<Result<Bytes, std::io::Error>>())
}

struct Conditions<'a> {
    if_match: Option<&'a ETagCondition>,
    if_none_match: Option<&'a ETagCondition>,
    if_modified_since: Option<&'a Timestamp>,
    if_unmodified_since: Option<&'a Timestamp>,
}

fn etag_matches(cond: &ETagCondition, current: &str) -> bool {
    match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == current,
    }
}

impl Conditions<'_> {
    /// RFC 7232 evaluation order, as S3 applies it. `for_copy` turns 304 into 412.
    fn check(&self, o: &ObjectRecord, for_copy: bool) -> S3Result<()> {
        let modified = o.last_modified_ms / 1000;
        if let Some(m) = self.if_match {
            if !etag_matches(m, &o.etag) {
                return Err(s3_error!(
                    PreconditionFailed,
                    "At least one of the pre-conditions you specified did not hold"
                ));
            }
        } else if let Some(t) = self.if_unmodified_since
            && modified > seconds(t)
        {
            return Err(s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold"
            ));
        }
        let not_modified = if let Some(n) = self.if_none_match {
            etag_matches(n, &o.etag)
        } else {
            self.if_modified_since
                .is_some_and(|t| modified <= seconds(t))
        };
        if not_modified {
            return Err(if for_copy {
                s3_error!(
                    PreconditionFailed,
                    "At least one of the pre-conditions you specified did not hold"
                )
            } else {
                S3Error::new(S3ErrorCode::NotModified)
            });
        }
        Ok(())
    }
}

/// Parses `bytes=a-b` of UploadPartCopy.
fn copy_source_range(s: &str, len: u64) -> S3Result<std::ops::Range<u64>> {
    let bad = || {
        s3_error!(
            InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"
        )
    };
    let (a, b) = s
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(bad)?;
    let start: u64 = a.parse().map_err(|_| bad())?;
    let end: u64 = b.parse().map_err(|_| bad())?;
    if start > end {
        return Err(bad());
    }
    if end >= len {
        return Err(s3_error!(
            InvalidRange,
            "The requested range is not satisfiable"
        ));
    }
    Ok(start..end + 1)
}

impl Gateway {
    async fn owned_bucket(&self, tenant: &Tenant, name: &str) -> S3Result<Bucket> {
        match self
            .catalog
            .get_bucket(name)
            .await
            .map_err(error::catalog)?
        {
            Some(b) if b.tenant == tenant.name => Ok(b),
            Some(_) => Err(s3_error!(AccessDenied, "Access Denied")),
            None => Err(s3_error!(
                NoSuchBucket,
                "The specified bucket does not exist"
            )),
        }
    }

    async fn object(&self, bucket: &str, key: &str) -> S3Result<ObjectRecord> {
        self.catalog
            .get_object(bucket, key)
            .await
            .map_err(error::catalog)?
            .ok_or_else(|| s3_error!(NoSuchKey, "The specified key does not exist."))
    }

    /// Sites for a new object of `tenant` in `bucket`, by its residency policy.
    async fn placement(&self, tenant: &Tenant, bucket: &str) -> S3Result<Placement> {
        let policy = self
            .residency_policy(tenant, bucket)
            .await
            .map_err(error::catalog)?;
        let infos = self.sites.infos();
        let (chosen, short) = obhut_core::place_or_degrade(
            &infos,
            &policy.jurisdictions,
            policy.min_sites,
            policy.degraded_writes,
        )
        .map_err(|e| {
            S3Error::with_message(
                S3ErrorCode::ServiceUnavailable,
                format!("write refused: {e}"),
            )
        })?;
        let ids: Vec<String> = chosen.iter().map(|s| s.id.clone()).collect();
        if short {
            tracing::warn!(bucket, sites = ?ids, required = policy.min_sites, "degraded write: fewer sites than the policy requires; the object will be repaired");
            self.maintenance.note_under_replicated();
        }
        let sites = self.sites.resolve(&ids)?;
        let min_ok = if policy.degraded_writes { 1 } else { ids.len() };
        Ok(Placement {
            ids,
            sites,
            min_ok,
            required: policy.min_sites,
        })
    }

    /// The sites that hold a written blob; notes an under-replicated result for repair.
    fn held(&self, placed: &Placement, written: &datapath::Written) -> Vec<String> {
        let ids: Vec<String> = written
            .sites
            .iter()
            .filter_map(|&i| placed.ids.get(i).cloned())
            .collect();
        if ids.len() < placed.required {
            tracing::warn!(sites = ?ids, required = placed.required, "write held by fewer sites than the policy requires; it will be repaired");
            self.maintenance.note_under_replicated();
        }
        ids
    }

    fn discard_chunks(&self, site_ids: &[String], chunks: impl IntoIterator<Item = Chunk>) {
        let sites = site_ids
            .iter()
            .filter_map(|id| self.sites.get(id))
            .collect();
        discard_blobs(sites, chunks.into_iter().map(|c| c.blob).collect());
    }

    fn discard_object(&self, o: ObjectRecord) {
        self.discard_chunks(&o.sites, o.chunks);
    }

    fn discard_parts(&self, parts: Vec<Part>) {
        for p in parts {
            self.discard_chunks(&p.sites, [p.chunk]);
        }
    }

    /// A bucket key version, from the cache or released by the trustee for `why`.
    pub(crate) async fn bucket_key(
        &self,
        tenant: &str,
        bucket: &str,
        version: u32,
        why: &Justification,
    ) -> S3Result<Key> {
        let stored = self
            .catalog
            .get_bucket_key(bucket, version)
            .await
            .map_err(error::catalog)?
            .ok_or_else(|| {
                S3Error::with_message(
                    S3ErrorCode::InternalError,
                    format!("bucket key version {version} is missing from the catalog"),
                )
            })?;
        let wrapped = WrappedKey {
            version,
            kcv: stored.kcv.as_slice().try_into().map_err(|_| {
                S3Error::with_message(S3ErrorCode::InternalError, "malformed bucket key record")
            })?,
            wrapped: stored.wrapped,
        };
        // Keys used under a grant are neither taken from nor kept in the cache: the trustee
        // checks the grant and logs the release for every request made under it.
        let under_grant = matches!(why, Justification::Grant { .. });
        if !under_grant && let Some(k) = self.keys.get(tenant, bucket, version, &wrapped.kcv) {
            return Ok(k);
        }
        let key = self
            .trustee
            .release_bucket_key(tenant, bucket, &wrapped, why)
            .await
            .map_err(error::trustee)?;
        if !under_grant {
            self.keys
                .insert(tenant, bucket, version, wrapped.kcv, key.clone());
        }
        Ok(key)
    }

    /// A new object version's key, wrapped under the bucket's current key.
    async fn new_cipher(
        &self,
        tenant: &str,
        bucket: &str,
        why: &Justification,
    ) -> S3Result<(ObjectCipher, Vec<u8>)> {
        let current = self
            .catalog
            .current_bucket_key(bucket)
            .await
            .map_err(error::catalog)?
            .ok_or_else(|| {
                S3Error::with_message(S3ErrorCode::InternalError, "the bucket has no key")
            })?;
        let bk = self
            .bucket_key(tenant, bucket, current.version, why)
            .await?;
        ObjectCipher::generate(bucket, &bk, current.version).map_err(|e| error::envelope(&e))
    }

    /// Opens an object version's key from its envelope.
    async fn open_cipher(
        &self,
        tenant: &str,
        bucket: &str,
        envelope: &[u8],
        why: &Justification,
    ) -> S3Result<ObjectCipher> {
        let env = ObjectCipher::parse_envelope(envelope).map_err(|e| error::envelope(&e))?;
        let bk = self
            .bucket_key(tenant, bucket, env.key_version, why)
            .await?;
        ObjectCipher::open(bucket, &env, &bk).map_err(|e| error::envelope(&e))
    }

    /// Streams and decrypts `range` of object `o` from its replicas.
    fn read(
        &self,
        o: &ObjectRecord,
        range: std::ops::Range<u64>,
        cipher: Arc<ObjectCipher>,
    ) -> StreamingBlob {
        let sites = o.sites.iter().filter_map(|id| self.sites.get(id)).collect();
        let maintenance = Arc::clone(&self.maintenance);
        let (bucket, key) = (o.bucket.clone(), o.key.clone());
        let on_fault: datapath::FaultReport =
            Arc::new(move || maintenance.report_fault(&bucket, &key));
        read_range(sites, o.chunks.clone(), range, cipher, Some(on_fault))
    }

    /// Copies `range` of `src` (opened with `src_cipher`) into a new blob on `sites`, encrypted
    /// under `dst` as part `part`.
    async fn copy_blob(
        &self,
        src: &ObjectRecord,
        src_cipher: Arc<ObjectCipher>,
        range: std::ops::Range<u64>,
        placed: &Placement,
        dst: &ObjectCipher,
        part: u32,
    ) -> S3Result<datapath::Written> {
        let len = range.end - range.start;
        let stream = self.read(src, range, src_cipher);
        write_blob(
            &placed.sites,
            placed.min_ok,
            Box::pin(stream),
            Some(len),
            ChecksumHasher::default(),
            Box::new(|_, _| Ok(())),
            dst,
            part,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn head_or_get(
        &self,
        tenant: &Tenant,
        bucket: &str,
        key: &str,
        cond: &Conditions<'_>,
        range: Option<&Range>,
        part_number: Option<i32>,
        why: &Justification,
    ) -> S3Result<Found> {
        self.owned_bucket(tenant, bucket).await?;
        let o = self.object(bucket, key).await?;
        cond.check(&o, false)?;
        let cipher = self
            .open_cipher(&tenant.name, bucket, &o.envelope, why)
            .await?;
        let meta = cipher.open_meta(&o.meta).map_err(|e| error::envelope(&e))?;
        let (r, content_range) = if let Some(n) = part_number {
            let n = part_number_index(n, o.chunks.len())?;
            let start: u64 = o.chunks[..n].iter().map(|c| c.size).sum();
            let r = start..start + o.chunks[n].size;
            let cr = format!("bytes {}-{}/{}", r.start, r.end.saturating_sub(1), o.size);
            (r, Some(cr))
        } else if let Some(range) = range {
            let r = range
                .check(o.size)
                .map_err(|_| s3_error!(InvalidRange, "The requested range is not satisfiable"))?;
            let cr = format!("bytes {}-{}/{}", r.start, r.end.saturating_sub(1), o.size);
            (r, Some(cr))
        } else {
            (0..o.size, None)
        };
        Ok(Found {
            object: o,
            meta,
            range: r,
            content_range,
            cipher: Arc::new(cipher),
        })
    }

    async fn load_upload(
        &self,
        tenant: &Tenant,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> S3Result<Upload> {
        self.owned_bucket(tenant, bucket).await?;
        match self
            .catalog
            .get_upload(upload_id)
            .await
            .map_err(error::catalog)?
        {
            Some(u) if u.bucket == bucket && u.key == key => Ok(u),
            _ => Err(s3_error!(
                NoSuchUpload,
                "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
            )),
        }
    }

    /// Commits a new object, discarding what it replaced, or its own blobs if the commit fails.
    async fn commit_object(&self, record: &ObjectRecord, condition: PutCondition) -> S3Result<()> {
        match self.catalog.put_object(record, condition).await {
            Ok(old) => {
                if let Some(old) = old {
                    self.discard_object(old);
                }
                Ok(())
            }
            Err(e) => {
                self.discard_object(record.clone());
                Err(error::catalog(e))
            }
        }
    }
}

fn bucket_exists(owner: &str, caller: &str) -> S3Error {
    if owner == caller {
        s3_error!(
            BucketAlreadyOwnedByYou,
            "Your previous request to create the named bucket succeeded and you already own it."
        )
    } else {
        s3_error!(
            BucketAlreadyExists,
            "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again."
        )
    }
}

fn part_number_index(n: i32, parts: usize) -> S3Result<usize> {
    let n = part_number(n)? as usize;
    if n > parts {
        let mut e = S3Error::with_message(
            S3ErrorCode::Custom("InvalidPartNumber".into()),
            "The requested partnumber is not satisfiable",
        );
        e.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
        return Err(e);
    }
    Ok(n - 1)
}

fn put_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<PutCondition> {
    match (if_match, if_none_match) {
        (None, None) => Ok(PutCondition::None),
        (None, Some(c)) if c.is_any() => Ok(PutCondition::Absent),
        (None, Some(_)) => Err(s3_error!(
            NotImplemented,
            "If-None-Match on writes supports only '*'"
        )),
        (Some(ETagCondition::ETag(e)), None) => Ok(PutCondition::ETagMatches(e.value().to_owned())),
        (Some(ETagCondition::Any), None) => Err(s3_error!(
            NotImplemented,
            "If-Match on writes needs an ETag"
        )),
        (Some(_), Some(_)) => Err(s3_error!(
            InvalidRequest,
            "If-Match and If-None-Match cannot be combined"
        )),
    }
}

/// S3's limit on user metadata: the UTF-8 bytes of all keys and values together.
const MAX_USER_METADATA: usize = 2048;

fn check_user_metadata(m: Option<&Metadata>) -> S3Result<()> {
    let size: usize = m.map_or(0, |m| m.iter().map(|(k, v)| k.len() + v.len()).sum());
    if size > MAX_USER_METADATA {
        return Err(s3_error!(
            MetadataTooLarge,
            "Your metadata headers exceed the maximum allowed metadata size of 2 KB"
        ));
    }
    Ok(())
}

/// `aws-chunked` describes how the body was sent, not the object: it is never stored.
fn stored_content_encoding(e: Option<String>) -> Option<String> {
    let kept: Vec<&str> = e
        .as_deref()?
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    (!kept.is_empty()).then(|| kept.join(","))
}

fn meta_from_headers(
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    expires: Option<&Timestamp>,
    metadata: Option<Metadata>,
) -> ObjectMeta {
    let mut m = ObjectMeta {
        content_type,
        content_encoding: stored_content_encoding(content_encoding),
        content_disposition,
        content_language,
        cache_control,
        user: metadata
            .map(|m| m.into_iter().collect())
            .unwrap_or_default(),
        ..ObjectMeta::default()
    };
    m.set_expires(expires);
    m
}

fn checksums_of(
    crc32: Option<String>,
    crc32c: Option<String>,
    crc64nvme: Option<String>,
    sha1: Option<String>,
    sha256: Option<String>,
) -> Checksums {
    Checksums {
        crc32,
        crc32c,
        crc64nvme,
        sha1,
        sha256,
    }
}

#[async_trait::async_trait]
impl S3 for Gateway {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let t = tenant(&req)?;
        let prefix = req.input.prefix.clone().unwrap_or_default();
        let buckets = self
            .catalog
            .list_buckets(&t.name)
            .await
            .map_err(error::catalog)?
            .into_iter()
            .filter(|b| b.name.starts_with(&prefix))
            .map(|b| s3s::dto::Bucket {
                name: Some(b.name),
                creation_date: Some(timestamp(b.created_ms)),
                bucket_region: Some(self.config.region.clone()),
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(Owner {
                display_name: Some(t.name.clone()),
                id: Some(t.name.clone()),
            }),
            prefix: req.input.prefix,
            continuation_token: None,
        }))
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let t = tenant(&req)?;
        let why = justification(&req, "CreateBucket")?;
        let input = req.input;
        validate_bucket_name(&input.bucket).map_err(|e| s3_error!(InvalidBucketName, "{e}"))?;
        if let Some(acl) = &input.acl
            && acl.as_str() != "private"
        {
            return Err(s3_error!(
                AccessControlListNotSupported,
                "The bucket does not allow ACLs"
            ));
        }
        if input.grant_full_control.is_some()
            || input.grant_read.is_some()
            || input.grant_read_acp.is_some()
            || input.grant_write.is_some()
            || input.grant_write_acp.is_some()
        {
            return Err(s3_error!(
                AccessControlListNotSupported,
                "The bucket does not allow ACLs"
            ));
        }
        if let Some(loc) = input
            .create_bucket_configuration
            .as_ref()
            .and_then(|c| c.location_constraint.as_ref())
            && loc.as_str() != self.config.region
        {
            return Err(s3_error!(
                IllegalLocationConstraintException,
                "The {} location constraint is incompatible for the region specific endpoint this request was sent to ({}).",
                loc.as_str(),
                self.config.region
            ));
        }
        let bucket = Bucket {
            name: input.bucket.clone(),
            tenant: t.name.clone(),
            created_ms: now_ms(),
        };
        if let Some(existing) = self
            .catalog
            .get_bucket(&bucket.name)
            .await
            .map_err(error::catalog)?
        {
            return Err(bucket_exists(&existing.tenant, &t.name));
        }
        // Every bucket gets its own key, made by the trustee under the tenant's key.
        self.trustee
            .ensure_tenant_key(&t.name)
            .await
            .map_err(error::trustee)?;
        let wrapped = self
            .trustee
            .create_bucket_key(&t.name, &bucket.name, 1, &why)
            .await
            .map_err(error::trustee)?;
        let key = BucketKey {
            bucket: bucket.name.clone(),
            version: wrapped.version,
            wrapped: wrapped.wrapped,
            kcv: wrapped.kcv.to_vec(),
            created_ms: bucket.created_ms,
        };
        match self.catalog.create_bucket(&bucket, &key).await {
            Ok(()) => Ok(S3Response::new(CreateBucketOutput {
                location: Some(format!("/{}", input.bucket)),
            })),
            Err(CatalogError::BucketExists { owner, .. }) => Err(bucket_exists(&owner, &t.name)),
            Err(e) => Err(error::catalog(e)),
        }
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let t = tenant(&req)?;
        self.owned_bucket(&t, &req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.config.region.clone()),
            ..Default::default()
        }))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let t = tenant(&req)?;
        self.owned_bucket(&t, &req.input.bucket).await?;
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint: Some(BucketLocationConstraint::from(self.config.region.clone())),
        }))
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let t = tenant(&req)?;
        self.owned_bucket(&t, &req.input.bucket).await?;
        Ok(S3Response::new(GetBucketVersioningOutput::default()))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let t = tenant(&req)?;
        self.owned_bucket(&t, &req.input.bucket).await?;
        match self.catalog.delete_bucket(&req.input.bucket).await {
            Ok(parts) => {
                self.discard_parts(parts);
                self.keys.evict_bucket(&req.input.bucket);
                Ok(S3Response::new(DeleteBucketOutput {}))
            }
            Err(CatalogError::BucketNotEmpty(_)) => Err(s3_error!(
                BucketNotEmpty,
                "The bucket you tried to delete is not empty"
            )),
            Err(e) => Err(error::catalog(e)),
        }
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let t = tenant(&req)?;
        let expected_len = expected_length(&req, req.input.content_length);
        let trailers = req.trailing_headers.clone();
        let headers = req.headers.clone();
        let why = justification(&req, "PutObject")?;
        let input = req.input;
        self.owned_bucket(&t, &input.bucket).await?;
        check_key(&input.key)?;
        let grants = [
            &input.grant_full_control,
            &input.grant_read,
            &input.grant_read_acp,
            &input.grant_write_acp,
        ];
        check_object_acl(input.acl.as_ref(), grants.iter().any(|g| g.is_some()))?;
        check_user_metadata(input.metadata.as_ref())?;
        let condition = put_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
        // Fail a doomed conditional write before streaming its body.
        if condition != PutCondition::None {
            let current = self
                .catalog
                .get_object(&input.bucket, &input.key)
                .await
                .map_err(error::catalog)?;
            if condition.check(current.as_ref()).is_err() {
                return Err(s3_error!(
                    PreconditionFailed,
                    "At least one of the pre-conditions you specified did not hold"
                ));
            }
        }
        let placed = self.placement(&t, &input.bucket).await?;
        let given = checksums_of(
            input.checksum_crc32,
            input.checksum_crc32c,
            input.checksum_crc64nvme,
            input.checksum_sha1,
            input.checksum_sha256,
        );
        let hasher = checksum_hasher(&headers, input.checksum_algorithm.as_ref(), &given)?;
        let verify = verifier(input.content_md5, given, trailers)?;
        let (cipher, envelope) = self.new_cipher(&t.name, &input.bucket, &why).await?;
        let body = input.body.unwrap_or_else(empty_body);
        let written = write_blob(
            &placed.sites,
            placed.min_ok,
            body,
            expected_len,
            hasher,
            verify,
            &cipher,
            1,
        )
        .await?;
        let site_ids = self.held(&placed, &written);
        let mut meta = meta_from_headers(
            input.content_type,
            input.content_encoding,
            input.content_disposition,
            input.content_language,
            input.cache_control,
            input.expires.as_ref(),
            input.metadata,
        );
        meta.checksums = Checksums::from_dto(written.checksums.clone());
        let etag_value = hex(&written.md5);
        let record = ObjectRecord {
            bucket: input.bucket,
            key: input.key,
            size: written.chunk.size,
            etag: etag_value.clone(),
            last_modified_ms: now_ms(),
            envelope,
            meta: cipher.seal_meta(&meta).map_err(|e| error::envelope(&e))?,
            sites: site_ids,
            chunks: vec![written.chunk],
        };
        self.commit_object(&record, condition).await?;
        let c = written.checksums;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(etag(&etag_value)),
            checksum_crc32: c.checksum_crc32,
            checksum_crc32c: c.checksum_crc32c,
            checksum_crc64nvme: c.checksum_crc64nvme,
            checksum_sha1: c.checksum_sha1,
            checksum_sha256: c.checksum_sha256,
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let t = tenant(&req)?;
        let i = &req.input;
        let cond = Conditions {
            if_match: i.if_match.as_ref(),
            if_none_match: i.if_none_match.as_ref(),
            if_modified_since: i.if_modified_since.as_ref(),
            if_unmodified_since: i.if_unmodified_since.as_ref(),
        };
        let why = justification(&req, "GetObject")?;
        let Found {
            object: o,
            meta,
            range,
            content_range,
            cipher,
        } = self
            .head_or_get(
                &t,
                &i.bucket,
                &i.key,
                &cond,
                i.range.as_ref(),
                i.part_number,
                &why,
            )
            .await?;
        let full = content_range.is_none();
        let want_checksums = full
            && i.checksum_mode
                .as_ref()
                .is_some_and(|m| m.as_str() == "ENABLED");
        let body = self.read(&o, range.clone(), cipher);
        let c = if want_checksums {
            meta.checksums.clone()
        } else {
            Checksums::default()
        };
        Ok(S3Response::new(GetObjectOutput {
            body: Some(body),
            content_length: Some(size_i64(range.end - range.start)),
            content_range,
            accept_ranges: Some("bytes".into()),
            e_tag: Some(etag(&o.etag)),
            last_modified: Some(timestamp(o.last_modified_ms)),
            content_type: meta
                .content_type
                .clone()
                .or_else(|| Some("binary/octet-stream".into())),
            content_encoding: meta.content_encoding.clone(),
            content_disposition: meta.content_disposition.clone(),
            content_language: meta.content_language.clone(),
            cache_control: meta.cache_control.clone(),
            expires: meta.expires_timestamp(),
            metadata: meta.user_metadata(),
            parts_count: (o.chunks.len() > 1 || i.part_number.is_some())
                .then(|| i32::try_from(o.chunks.len()).unwrap_or(i32::MAX)),
            checksum_crc32: c.crc32,
            checksum_crc32c: c.crc32c,
            checksum_crc64nvme: c.crc64nvme,
            checksum_sha1: c.sha1,
            checksum_sha256: c.sha256,
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let t = tenant(&req)?;
        let i = &req.input;
        let cond = Conditions {
            if_match: i.if_match.as_ref(),
            if_none_match: i.if_none_match.as_ref(),
            if_modified_since: i.if_modified_since.as_ref(),
            if_unmodified_since: i.if_unmodified_since.as_ref(),
        };
        let why = justification(&req, "HeadObject")?;
        let Found {
            object: o,
            meta,
            range,
            content_range,
            cipher: _,
        } = self
            .head_or_get(
                &t,
                &i.bucket,
                &i.key,
                &cond,
                i.range.as_ref(),
                i.part_number,
                &why,
            )
            .await?;
        let want_checksums = content_range.is_none()
            && i.checksum_mode
                .as_ref()
                .is_some_and(|m| m.as_str() == "ENABLED");
        let c = if want_checksums {
            meta.checksums.clone()
        } else {
            Checksums::default()
        };
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(size_i64(range.end - range.start)),
            content_range,
            accept_ranges: Some("bytes".into()),
            e_tag: Some(etag(&o.etag)),
            last_modified: Some(timestamp(o.last_modified_ms)),
            content_type: meta
                .content_type
                .clone()
                .or_else(|| Some("binary/octet-stream".into())),
            content_encoding: meta.content_encoding.clone(),
            content_disposition: meta.content_disposition.clone(),
            content_language: meta.content_language.clone(),
            cache_control: meta.cache_control.clone(),
            expires: meta.expires_timestamp(),
            metadata: meta.user_metadata(),
            parts_count: (o.chunks.len() > 1 || i.part_number.is_some())
                .then(|| i32::try_from(o.chunks.len()).unwrap_or(i32::MAX)),
            checksum_crc32: c.crc32,
            checksum_crc32c: c.crc32c,
            checksum_crc64nvme: c.crc64nvme,
            checksum_sha1: c.sha1,
            checksum_sha256: c.sha256,
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let t = tenant(&req)?;
        self.owned_bucket(&t, &req.input.bucket).await?;
        check_key(&req.input.key)?;
        if let Some(old) = self
            .catalog
            .delete_object(&req.input.bucket, &req.input.key)
            .await
            .map_err(error::catalog)?
        {
            self.discard_object(old);
        }
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let t = tenant(&req)?;
        self.owned_bucket(&t, &req.input.bucket).await?;
        let delete = req.input.delete;
        if delete.objects.is_empty() || delete.objects.len() > MAX_DELETE_KEYS {
            return Err(s3_error!(
                MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema"
            ));
        }
        let quiet = delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for obj in delete.objects {
            if let Err(e) = check_key(&obj.key) {
                errors.push(s3s::dto::Error {
                    code: Some(e.code().as_str().to_owned()),
                    key: Some(obj.key),
                    message: e.message().map(str::to_owned),
                    version_id: None,
                });
                continue;
            }
            match self
                .catalog
                .delete_object(&req.input.bucket, &obj.key)
                .await
            {
                Ok(old) => {
                    if let Some(old) = old {
                        self.discard_object(old);
                    }
                    if !quiet {
                        deleted.push(DeletedObject {
                            key: Some(obj.key),
                            version_id: obj.version_id,
                            ..Default::default()
                        });
                    }
                }
                Err(e) => {
                    let e = error::catalog(e);
                    errors.push(s3s::dto::Error {
                        code: Some(e.code().as_str().to_owned()),
                        key: Some(obj.key),
                        message: e.message().map(str::to_owned),
                        version_id: None,
                    });
                }
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: Some(errors),
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let t = tenant(&req)?;
        let read_why = justification(&req, "CopyObject:read")?;
        let write_why = justification(&req, "CopyObject:write")?;
        let input = req.input;
        let CopySource::Bucket {
            bucket: src_bucket,
            key: src_key,
            ..
        } = &input.copy_source
        else {
            return Err(s3_error!(
                NotImplemented,
                "copying from an access point is not supported"
            ));
        };
        self.owned_bucket(&t, &input.bucket).await?;
        check_key(&input.key)?;
        self.owned_bucket(&t, src_bucket).await?;
        let grants = [
            &input.grant_full_control,
            &input.grant_read,
            &input.grant_read_acp,
            &input.grant_write_acp,
        ];
        check_object_acl(input.acl.as_ref(), grants.iter().any(|g| g.is_some()))?;
        check_user_metadata(input.metadata.as_ref())?;
        let src = self.object(src_bucket, src_key).await?;
        Conditions {
            if_match: input.copy_source_if_match.as_ref(),
            if_none_match: input.copy_source_if_none_match.as_ref(),
            if_modified_since: input.copy_source_if_modified_since.as_ref(),
            if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
        }
        .check(&src, true)?;
        let replace = match input
            .metadata_directive
            .as_ref()
            .map(MetadataDirective::as_str)
        {
            None | Some("COPY") => false,
            Some("REPLACE") => true,
            Some(other) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "Unknown metadata directive {other}"
                ));
            }
        };
        let same = **src_bucket == *input.bucket && **src_key == *input.key;
        if same && !replace {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
            ));
        }
        let src_cipher = self
            .open_cipher(&t.name, src_bucket, &src.envelope, &read_why)
            .await?;
        let src_meta = src_cipher
            .open_meta(&src.meta)
            .map_err(|e| error::envelope(&e))?;
        let mut meta = if replace {
            meta_from_headers(
                input.content_type,
                input.content_encoding,
                input.content_disposition,
                input.content_language,
                input.cache_control,
                input.expires.as_ref(),
                input.metadata,
            )
        } else {
            ObjectMeta {
                checksums: Checksums::default(),
                checksum_algorithm: None,
                ..src_meta.clone()
            }
        };
        let placed = self.placement(&t, &input.bucket).await?;
        let (cipher, envelope) = self.new_cipher(&t.name, &input.bucket, &write_why).await?;
        let written = self
            .copy_blob(&src, Arc::new(src_cipher), 0..src.size, &placed, &cipher, 1)
            .await?;
        let site_ids = self.held(&placed, &written);
        // A copy is a single-part object: its ETag is the MD5 of its content.
        meta.checksums = if src.chunks.len() == 1 {
            src_meta.checksums
        } else {
            Checksums::default()
        };
        let etag_value = hex(&written.md5);
        let last_modified_ms = now_ms();
        let record = ObjectRecord {
            bucket: input.bucket,
            key: input.key,
            size: written.chunk.size,
            etag: etag_value.clone(),
            last_modified_ms,
            envelope,
            meta: cipher.seal_meta(&meta).map_err(|e| error::envelope(&e))?,
            sites: site_ids,
            chunks: vec![written.chunk],
        };
        self.commit_object(&record, PutCondition::None).await?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(etag(&etag_value)),
                last_modified: Some(timestamp(last_modified_ms)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let t = tenant(&req)?;
        let i = req.input;
        self.owned_bucket(&t, &i.bucket).await?;
        let encode = wants_url_encoding(i.encoding_type.as_ref())?;
        let max = max_keys(i.max_keys)?;
        let prefix = i.prefix.clone().unwrap_or_default();
        let page = list_page(
            self.catalog.as_ref(),
            &i.bucket,
            &prefix,
            i.delimiter.as_deref(),
            i.marker.as_deref().filter(|m| !m.is_empty()),
            max,
        )
        .await?;
        let enc = |s: String| if encode { url_encode(&s) } else { s };
        let next_marker = (page.truncated && i.delimiter.is_some())
            .then(|| page.last.clone().map(enc))
            .flatten();
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(i.bucket),
            prefix: Some(enc(prefix)),
            marker: Some(enc(i.marker.unwrap_or_default())),
            max_keys: Some(i32::try_from(max).unwrap_or(1000)),
            is_truncated: Some(page.truncated),
            contents: Some(
                page.objects
                    .into_iter()
                    .map(|o| object_entry(o, encode))
                    .collect(),
            ),
            common_prefixes: Some(
                page.common_prefixes
                    .into_iter()
                    .map(|p| CommonPrefix {
                        prefix: Some(enc(p)),
                    })
                    .collect(),
            ),
            delimiter: i.delimiter.map(enc),
            next_marker,
            encoding_type: i.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let t = tenant(&req)?;
        let i = req.input;
        self.owned_bucket(&t, &i.bucket).await?;
        let encode = wants_url_encoding(i.encoding_type.as_ref())?;
        let max = max_keys(i.max_keys)?;
        let prefix = i.prefix.clone().unwrap_or_default();
        let after = match &i.continuation_token {
            Some(tok) => Some(decode_token(tok)?),
            None => i.start_after.clone().filter(|s| !s.is_empty()),
        };
        let page = list_page(
            self.catalog.as_ref(),
            &i.bucket,
            &prefix,
            i.delimiter.as_deref(),
            after.as_deref(),
            max,
        )
        .await?;
        let enc = |s: String| if encode { url_encode(&s) } else { s };
        let key_count = page.objects.len() + page.common_prefixes.len();
        let next = page
            .truncated
            .then(|| page.last.as_deref().map(encode_token))
            .flatten();
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(i.bucket),
            prefix: Some(enc(prefix)),
            max_keys: Some(i32::try_from(max).unwrap_or(1000)),
            key_count: Some(i32::try_from(key_count).unwrap_or(i32::MAX)),
            continuation_token: i.continuation_token,
            next_continuation_token: next,
            is_truncated: Some(page.truncated),
            contents: Some(
                page.objects
                    .into_iter()
                    .map(|o| object_entry(o, encode))
                    .collect(),
            ),
            common_prefixes: Some(
                page.common_prefixes
                    .into_iter()
                    .map(|p| CommonPrefix {
                        prefix: Some(enc(p)),
                    })
                    .collect(),
            ),
            delimiter: i.delimiter.map(enc),
            encoding_type: i.encoding_type,
            start_after: i.start_after.map(enc),
            ..Default::default()
        }))
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let t = tenant(&req)?;
        let i = req.input;
        self.owned_bucket(&t, &i.bucket).await?;
        let encode = wants_url_encoding(i.encoding_type.as_ref())?;
        let max = max_keys(i.max_keys)?;
        let prefix = i.prefix.clone().unwrap_or_default();
        let page = list_page(
            self.catalog.as_ref(),
            &i.bucket,
            &prefix,
            i.delimiter.as_deref(),
            i.key_marker.as_deref().filter(|m| !m.is_empty()),
            max,
        )
        .await?;
        let enc = |s: String| if encode { url_encode(&s) } else { s };
        let versions = page
            .objects
            .into_iter()
            .map(|o| ObjectVersion {
                e_tag: Some(etag(&o.etag)),
                is_latest: Some(true),
                key: Some(enc(o.key)),
                last_modified: Some(timestamp(o.last_modified_ms)),
                size: Some(size_i64(o.size)),
                storage_class: Some(ObjectVersionStorageClass::from_static(
                    ObjectVersionStorageClass::STANDARD,
                )),
                version_id: Some("null".into()),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(i.bucket),
            prefix: Some(enc(prefix)),
            key_marker: i.key_marker.map(enc),
            max_keys: Some(i32::try_from(max).unwrap_or(1000)),
            is_truncated: Some(page.truncated),
            next_key_marker: page.truncated.then(|| page.last.map(enc)).flatten(),
            next_version_id_marker: page.truncated.then(|| "null".to_owned()),
            versions: Some(versions),
            common_prefixes: Some(
                page.common_prefixes
                    .into_iter()
                    .map(|p| CommonPrefix {
                        prefix: Some(enc(p)),
                    })
                    .collect(),
            ),
            delimiter: i.delimiter.map(enc),
            encoding_type: i.encoding_type,
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let t = tenant(&req)?;
        let why = justification(&req, "CreateMultipartUpload")?;
        let input = req.input;
        self.owned_bucket(&t, &input.bucket).await?;
        check_key(&input.key)?;
        let grants = [
            &input.grant_full_control,
            &input.grant_read,
            &input.grant_read_acp,
            &input.grant_write_acp,
        ];
        check_object_acl(input.acl.as_ref(), grants.iter().any(|g| g.is_some()))?;
        check_user_metadata(input.metadata.as_ref())?;
        // Refuse early if the object could not be placed.
        self.placement(&t, &input.bucket).await?;
        let mut meta = meta_from_headers(
            input.content_type,
            input.content_encoding,
            input.content_disposition,
            input.content_language,
            input.cache_control,
            input.expires.as_ref(),
            input.metadata,
        );
        meta.checksum_algorithm = input
            .checksum_algorithm
            .as_ref()
            .map(|a| a.as_str().to_owned());
        // The upload's object key encrypts every part and, on completion, the object.
        let (cipher, envelope) = self.new_cipher(&t.name, &input.bucket, &why).await?;
        let upload = Upload {
            upload_id: obhut_core::random_token(40),
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            initiated_ms: now_ms(),
            envelope,
            meta: cipher.seal_meta(&meta).map_err(|e| error::envelope(&e))?,
        };
        self.catalog
            .create_upload(&upload)
            .await
            .map_err(error::catalog)?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload.upload_id),
            checksum_algorithm: input.checksum_algorithm,
            checksum_type: input.checksum_type,
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let t = tenant(&req)?;
        let expected_len = expected_length(&req, req.input.content_length);
        let trailers = req.trailing_headers.clone();
        let headers = req.headers.clone();
        let why = justification(&req, "UploadPart")?;
        let input = req.input;
        let n = part_number(input.part_number)?;
        let upload = self
            .load_upload(&t, &input.bucket, &input.key, &input.upload_id)
            .await?;
        let cipher = self
            .open_cipher(&t.name, &input.bucket, &upload.envelope, &why)
            .await?;
        let placed = self.placement(&t, &input.bucket).await?;
        let given = checksums_of(
            input.checksum_crc32,
            input.checksum_crc32c,
            input.checksum_crc64nvme,
            input.checksum_sha1,
            input.checksum_sha256,
        );
        let hasher = checksum_hasher(&headers, input.checksum_algorithm.as_ref(), &given)?;
        let verify = verifier(input.content_md5, given, trailers)?;
        let body = input.body.unwrap_or_else(empty_body);
        let written = write_blob(
            &placed.sites,
            placed.min_ok,
            body,
            expected_len,
            hasher,
            verify,
            &cipher,
            n,
        )
        .await?;
        let site_ids = self.held(&placed, &written);
        let etag_value = hex(&written.md5);
        let checksums = Checksums::from_dto(written.checksums.clone());
        let part = Part {
            upload_id: input.upload_id,
            part_number: n,
            chunk: written.chunk,
            etag: etag_value.clone(),
            checksums: serde_json::to_vec(&checksums).unwrap_or_default(),
            sites: site_ids.clone(),
            last_modified_ms: now_ms(),
        };
        match self.catalog.put_part(&part).await {
            Ok(Some(old)) => self.discard_parts(vec![old]),
            Ok(None) => {}
            Err(e) => {
                self.discard_chunks(&site_ids, [written.chunk]);
                return Err(match e {
                    CatalogError::NotFound { .. } => {
                        s3_error!(NoSuchUpload, "The specified upload does not exist.")
                    }
                    other => error::catalog(other),
                });
            }
        }
        let c = written.checksums;
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(etag(&etag_value)),
            checksum_crc32: c.checksum_crc32,
            checksum_crc32c: c.checksum_crc32c,
            checksum_crc64nvme: c.checksum_crc64nvme,
            checksum_sha1: c.checksum_sha1,
            checksum_sha256: c.checksum_sha256,
            ..Default::default()
        }))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let t = tenant(&req)?;
        let read_why = justification(&req, "UploadPartCopy:read")?;
        let write_why = justification(&req, "UploadPartCopy:write")?;
        let input = req.input;
        let n = part_number(input.part_number)?;
        let CopySource::Bucket {
            bucket: src_bucket,
            key: src_key,
            ..
        } = &input.copy_source
        else {
            return Err(s3_error!(
                NotImplemented,
                "copying from an access point is not supported"
            ));
        };
        let upload = self
            .load_upload(&t, &input.bucket, &input.key, &input.upload_id)
            .await?;
        self.owned_bucket(&t, src_bucket).await?;
        let src = self.object(src_bucket, src_key).await?;
        Conditions {
            if_match: input.copy_source_if_match.as_ref(),
            if_none_match: input.copy_source_if_none_match.as_ref(),
            if_modified_since: input.copy_source_if_modified_since.as_ref(),
            if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
        }
        .check(&src, true)?;
        let range = match &input.copy_source_range {
            Some(r) => copy_source_range(r, src.size)?,
            None => 0..src.size,
        };
        let placed = self.placement(&t, &input.bucket).await?;
        let src_cipher = self
            .open_cipher(&t.name, src_bucket, &src.envelope, &read_why)
            .await?;
        let cipher = self
            .open_cipher(&t.name, &input.bucket, &upload.envelope, &write_why)
            .await?;
        let written = self
            .copy_blob(&src, Arc::new(src_cipher), range, &placed, &cipher, n)
            .await?;
        let site_ids = self.held(&placed, &written);
        let etag_value = hex(&written.md5);
        let last_modified_ms = now_ms();
        let part = Part {
            upload_id: input.upload_id,
            part_number: n,
            chunk: written.chunk,
            etag: etag_value.clone(),
            checksums: Vec::new(),
            sites: site_ids.clone(),
            last_modified_ms,
        };
        match self.catalog.put_part(&part).await {
            Ok(Some(old)) => self.discard_parts(vec![old]),
            Ok(None) => {}
            Err(e) => {
                self.discard_chunks(&site_ids, [written.chunk]);
                return Err(error::catalog(e));
            }
        }
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(etag(&etag_value)),
                last_modified: Some(timestamp(last_modified_ms)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let t = tenant(&req)?;
        let why = justification(&req, "CompleteMultipartUpload")?;
        let input = req.input;
        let upload = self
            .load_upload(&t, &input.bucket, &input.key, &input.upload_id)
            .await?;
        let requested = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default();
        if requested.is_empty() {
            return Err(s3_error!(
                MalformedXML,
                "You must specify at least one part"
            ));
        }
        let stored: BTreeMap<u32, Part> = self
            .catalog
            .list_parts(&upload.upload_id, 0, usize::MAX)
            .await
            .map_err(error::catalog)?
            .into_iter()
            .map(|p| (p.part_number, p))
            .collect();
        let mut chosen: Vec<&Part> = Vec::with_capacity(requested.len());
        let mut previous = 0u32;
        for rp in &requested {
            let n = rp
                .part_number
                .ok_or_else(|| s3_error!(MalformedXML, "A part is missing its PartNumber"))?;
            let n = part_number(n)?;
            if n <= previous {
                return Err(s3_error!(
                    InvalidPartOrder,
                    "The list of parts was not in ascending order. The parts list must be specified in order by part number."
                ));
            }
            previous = n;
            let invalid = || {
                s3_error!(
                    InvalidPart,
                    "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."
                )
            };
            let part = stored.get(&n).ok_or_else(invalid)?;
            let given = rp.e_tag.as_ref().ok_or_else(invalid)?;
            if given.value().trim_matches('"') != part.etag {
                return Err(invalid());
            }
            let part_sums: Checksums = serde_json::from_slice(&part.checksums).unwrap_or_default();
            for (want, have) in [
                (&rp.checksum_crc32, &part_sums.crc32),
                (&rp.checksum_crc32c, &part_sums.crc32c),
                (&rp.checksum_crc64nvme, &part_sums.crc64nvme),
                (&rp.checksum_sha1, &part_sums.sha1),
                (&rp.checksum_sha256, &part_sums.sha256),
            ] {
                if let Some(want) = want
                    && have.as_ref().is_some_and(|h| h != want)
                {
                    return Err(invalid());
                }
            }
            chosen.push(part);
        }
        if let Some((_, all_but_last)) = chosen.split_last()
            && all_but_last.iter().any(|p| p.chunk.size < MIN_PART_SIZE)
        {
            return Err(s3_error!(
                EntityTooSmall,
                "Your proposed upload is smaller than the minimum allowed object size."
            ));
        }
        let mut md5_of_md5s = Md5::new();
        for p in &chosen {
            let raw = hex_simd::decode_to_vec(&p.etag).map_err(S3Error::internal_error)?;
            md5_of_md5s.update(&raw);
        }
        let etag_value = format!("{}-{}", hex(&md5_of_md5s.finalize()), chosen.len());
        let size = chosen.iter().map(|p| p.chunk.size).sum();
        if let Some(declared) = input.mpu_object_size
            && u64::try_from(declared).ok() != Some(size)
        {
            return Err(s3_error!(
                InvalidRequest,
                "The provided MpuObjectSize does not match the size of the parts"
            ));
        }
        // All parts must share one site set for the object to be placed consistently.
        let site_ids = chosen[0].sites.clone();
        if chosen.iter().any(|p| p.sites != site_ids) {
            return Err(S3Error::with_message(
                S3ErrorCode::ServiceUnavailable,
                "parts of this upload were placed on different sites; re-upload the affected parts",
            ));
        }
        let cipher = self
            .open_cipher(&t.name, &input.bucket, &upload.envelope, &why)
            .await?;
        let mut meta = cipher
            .open_meta(&upload.meta)
            .map_err(|e| error::envelope(&e))?;
        meta.checksums = Checksums::default();
        let record = ObjectRecord {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            size,
            etag: etag_value.clone(),
            last_modified_ms: now_ms(),
            envelope: upload.envelope.clone(),
            meta: cipher.seal_meta(&meta).map_err(|e| error::envelope(&e))?,
            sites: site_ids,
            chunks: chosen.iter().map(|p| p.chunk).collect(),
        };
        let condition = put_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
        let (replaced, unused) = self
            .catalog
            .complete_upload(&upload.upload_id, &record, condition)
            .await
            .map_err(|e| match e {
                CatalogError::Conflict(_) => s3_error!(
                    InvalidPart,
                    "One or more of the specified parts was replaced while the upload was being completed; list the parts and complete again."
                ),
                other => error::catalog(other),
            })?;
        if let Some(old) = replaced {
            self.discard_object(old);
        }
        self.discard_parts(unused);
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(etag(&etag_value)),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let t = tenant(&req)?;
        let i = req.input;
        self.load_upload(&t, &i.bucket, &i.key, &i.upload_id)
            .await?;
        let parts = self
            .catalog
            .abort_upload(&i.upload_id)
            .await
            .map_err(error::catalog)?;
        self.discard_parts(parts);
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let t = tenant(&req)?;
        let why = justification(&req, "ListParts")?;
        let i = req.input;
        let upload = self
            .load_upload(&t, &i.bucket, &i.key, &i.upload_id)
            .await?;
        let max = match i.max_parts {
            None => 1000,
            Some(n) if n < 0 => {
                return Err(s3_error!(InvalidArgument, "max-parts must not be negative"));
            }
            Some(n) => usize::try_from(n).unwrap_or(0).min(1000),
        };
        let after = u32::try_from(i.part_number_marker.unwrap_or(0).max(0)).unwrap_or(0);
        let mut parts = self
            .catalog
            .list_parts(&upload.upload_id, after, max + 1)
            .await
            .map_err(error::catalog)?;
        let truncated = parts.len() > max;
        parts.truncate(max);
        let next = parts
            .last()
            .map(|p| i32::try_from(p.part_number).unwrap_or(0));
        let meta = self
            .open_cipher(&t.name, &i.bucket, &upload.envelope, &why)
            .await?
            .open_meta(&upload.meta)
            .map_err(|e| error::envelope(&e))?;
        let owner = Owner {
            display_name: Some(t.name.clone()),
            id: Some(t.name.clone()),
        };
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(i.bucket),
            key: Some(i.key),
            upload_id: Some(upload.upload_id),
            max_parts: Some(i32::try_from(max).unwrap_or(1000)),
            part_number_marker: i.part_number_marker,
            next_part_number_marker: next,
            is_truncated: Some(truncated),
            checksum_algorithm: meta.checksum_algorithm.map(ChecksumAlgorithm::from),
            initiator: Some(Initiator {
                display_name: owner.display_name.clone(),
                id: owner.id.clone(),
            }),
            owner: Some(owner),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            parts: Some(
                parts
                    .into_iter()
                    .map(|p| {
                        let c: Checksums = serde_json::from_slice(&p.checksums).unwrap_or_default();
                        s3s::dto::Part {
                            e_tag: Some(etag(&p.etag)),
                            last_modified: Some(timestamp(p.last_modified_ms)),
                            part_number: Some(i32::try_from(p.part_number).unwrap_or(0)),
                            size: Some(size_i64(p.chunk.size)),
                            checksum_crc32: c.crc32,
                            checksum_crc32c: c.crc32c,
                            checksum_crc64nvme: c.crc64nvme,
                            checksum_sha1: c.sha1,
                            checksum_sha256: c.sha256,
                        }
                    })
                    .collect(),
            ),
            ..Default::default()
        }))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let t = tenant(&req)?;
        let i = req.input;
        self.owned_bucket(&t, &i.bucket).await?;
        let encode = wants_url_encoding(i.encoding_type.as_ref())?;
        let max = match i.max_uploads {
            None => 1000,
            Some(n) if n < 0 => {
                return Err(s3_error!(
                    InvalidArgument,
                    "max-uploads must not be negative"
                ));
            }
            Some(n) => usize::try_from(n).unwrap_or(0).min(1000),
        };
        let prefix = i.prefix.clone().unwrap_or_default();
        let after = i
            .key_marker
            .as_deref()
            .filter(|k| !k.is_empty())
            .map(|k| (k, i.upload_id_marker.as_deref().unwrap_or("")));
        // Without an upload-id marker, S3 starts after every upload of the key marker.
        let after_owned = after.map(|(k, u)| {
            (
                k.to_owned(),
                if u.is_empty() {
                    "\u{10ffff}".to_owned()
                } else {
                    u.to_owned()
                },
            )
        });
        let delimiter = i.delimiter.as_deref().filter(|d| !d.is_empty());
        let mut uploads: Vec<Upload> = Vec::new();
        let mut prefixes: Vec<String> = Vec::new();
        let mut truncated = false;
        let mut cursor = after_owned;
        'pages: loop {
            let batch = self
                .catalog
                .list_uploads(
                    &i.bucket,
                    &prefix,
                    cursor.as_ref().map(|(k, u)| (k.as_str(), u.as_str())),
                    max + 1,
                )
                .await
                .map_err(error::catalog)?;
            let full = batch.len() == max + 1;
            for u in batch {
                cursor = Some((u.key.clone(), u.upload_id.clone()));
                let common = delimiter.and_then(|d| {
                    let rest = &u.key[prefix.len()..];
                    rest.find(d)
                        .map(|p| format!("{prefix}{}", &rest[..p + d.len()]))
                });
                if let Some(cp) = &common {
                    let seen =
                        prefixes.last() == Some(cp) || after.is_some_and(|(k, _)| cp.as_str() <= k);
                    if seen {
                        continue;
                    }
                }
                if uploads.len() + prefixes.len() == max {
                    truncated = true;
                    break 'pages;
                }
                match common {
                    Some(cp) => prefixes.push(cp),
                    None => uploads.push(u),
                }
            }
            if !full {
                break;
            }
        }
        let enc = |s: String| if encode { url_encode(&s) } else { s };
        let owner = Owner {
            display_name: Some(t.name.clone()),
            id: Some(t.name.clone()),
        };
        // The next page starts after the last upload or common prefix returned.
        let last_upload = uploads.last().map(|u| (u.key.clone(), u.upload_id.clone()));
        let last_prefix = prefixes.last().cloned();
        let (next_key, next_id) = match (last_upload, last_prefix) {
            (Some((k, _)), Some(p)) if p > k => (Some(p), None),
            (Some((k, id)), _) => (Some(k), Some(id)),
            (None, Some(p)) => (Some(p), None),
            (None, None) => (None, None),
        };
        let next_key = truncated.then(|| next_key.map(enc)).flatten();
        let next_id = truncated.then_some(next_id).flatten();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(i.bucket),
            prefix: Some(enc(prefix)),
            key_marker: i.key_marker.map(enc),
            upload_id_marker: i.upload_id_marker,
            max_uploads: Some(i32::try_from(max).unwrap_or(1000)),
            is_truncated: Some(truncated),
            next_key_marker: next_key,
            next_upload_id_marker: next_id,
            delimiter: i.delimiter.map(enc),
            encoding_type: i.encoding_type,
            common_prefixes: Some(
                prefixes
                    .into_iter()
                    .map(|p| CommonPrefix {
                        prefix: Some(enc(p)),
                    })
                    .collect(),
            ),
            uploads: Some(
                uploads
                    .into_iter()
                    .map(|u| MultipartUpload {
                        initiated: Some(timestamp(u.initiated_ms)),
                        initiator: Some(Initiator {
                            display_name: owner.display_name.clone(),
                            id: owner.id.clone(),
                        }),
                        owner: Some(owner.clone()),
                        key: Some(enc(u.key)),
                        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                        upload_id: Some(u.upload_id),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }))
    }
}

fn object_entry(o: ObjectRecord, encode: bool) -> Object {
    Object {
        e_tag: Some(etag(&o.etag)),
        key: Some(if encode { url_encode(&o.key) } else { o.key }),
        last_modified: Some(timestamp(o.last_modified_ms)),
        size: Some(size_i64(o.size)),
        storage_class: Some(ObjectStorageClass::from_static(
            ObjectStorageClass::STANDARD,
        )),
        ..Default::default()
    }
}

/// Continuation tokens are opaque to clients: the last key or common prefix, base64-encoded.
fn encode_token(last: &str) -> String {
    base64_simd::URL_SAFE_NO_PAD.encode_to_string(last.as_bytes())
}

fn decode_token(token: &str) -> S3Result<String> {
    base64_simd::URL_SAFE_NO_PAD
        .decode_to_vec(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "The continuation token provided is incorrect"
            )
        })
}
