//! Single objects: PutObject, GetObject, HeadObject, DeleteObject and DeleteObjects, and the
//! object metadata that round-trips through them.
//!
//! Object content passes through `crate::datapath` only; this module sees headers, catalog
//! records and the object key (to seal and open metadata), never bucket or tenant keys.

use super::checksums::{checksum_hasher, checksums_of, expected_length, verifier};
use super::conditions::{Conditions, precondition_failed, put_condition};
use super::convert::{etag, hex, now_ms, size_i64, timestamp};
use super::input::{check_key, check_new_object, part_number_index};
use super::object_lock::{LockHeaders, answer_fields, require_content_check};
use super::store::{KeyMemo, NewBlob, Opened};
use super::tagging::{header_tags, tag_count};
use super::versions::response_version_id;
use crate::access::ReqCtx;
use crate::keys::{Binding, ObjectCipher};
use crate::meta::{Checksums, ObjectMeta};
use crate::{Gateway, error};
use obhut_catalog::{ObjectRecord, PutCondition, Versioning};
use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result};
use std::sync::Arc;

const MAX_DELETE_KEYS: usize = 1000;
/// The Content-Type of an object stored without one.
const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

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

/// The headers of a write that are stored with the object and answered on reads.
pub struct MetaHeaders<'a> {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<&'a Timestamp>,
    pub metadata: Option<Metadata>,
}

impl MetaHeaders<'_> {
    pub fn into_meta(self) -> ObjectMeta {
        let mut m = ObjectMeta {
            content_type: self.content_type,
            content_encoding: stored_content_encoding(self.content_encoding),
            content_disposition: self.content_disposition,
            content_language: self.content_language,
            cache_control: self.cache_control,
            user: self
                .metadata
                .map(|m| m.into_iter().collect())
                .unwrap_or_default(),
            ..ObjectMeta::default()
        };
        m.set_expires(self.expires);
        m
    }
}

/// An object found for a GET or HEAD, with what is needed to serve it.
struct Found {
    object: ObjectRecord,
    /// The object's ETag, opened.
    etag: String,
    meta: ObjectMeta,
    range: std::ops::Range<u64>,
    content_range: Option<String>,
    cipher: Arc<ObjectCipher>,
}

/// What a GET or HEAD asks for beyond the object's name.
struct ReadRequest<'a> {
    key: &'a str,
    /// The version asked for (`versionId`); the current one if absent.
    version_id: Option<&'a str>,
    conditions: Conditions<'a>,
    range: Option<&'a Range>,
    part_number: Option<i32>,
    checksum_mode: Option<&'a ChecksumMode>,
}

/// The headers GET and HEAD answer alike.
struct ObjectHeaders {
    content_length: i64,
    content_range: Option<String>,
    e_tag: ETag,
    last_modified: Timestamp,
    meta: ObjectMeta,
    parts_count: Option<i32>,
    checksums: Checksums,
    /// `FULL_OBJECT` or `COMPOSITE`, with the checksums.
    checksum_type: Option<ChecksumType>,
}

/// Builds a GET or HEAD output (the two share these fields) from [`ObjectHeaders`].
macro_rules! object_output {
    ($output:ident, $h:expr, { $($field:ident: $value:expr),* $(,)? }) => {{
        let h: ObjectHeaders = $h;
        let c = h.checksums;
        $output {
            content_length: Some(h.content_length),
            content_range: h.content_range,
            accept_ranges: Some("bytes".into()),
            e_tag: Some(h.e_tag),
            last_modified: Some(h.last_modified),
            expires: h.meta.expires_timestamp(),
            metadata: h.meta.user_metadata(),
            content_type: h.meta.content_type.or_else(|| Some(DEFAULT_CONTENT_TYPE.into())),
            content_encoding: h.meta.content_encoding,
            content_disposition: h.meta.content_disposition,
            content_language: h.meta.content_language,
            cache_control: h.meta.cache_control,
            parts_count: h.parts_count,
            checksum_crc32: c.crc32,
            checksum_crc32c: c.crc32c,
            checksum_crc64nvme: c.crc64nvme,
            checksum_sha1: c.sha1,
            checksum_sha256: c.sha256,
            checksum_type: h.checksum_type,
            server_side_encryption: super::encryption::reported(),
            $($field: $value,)*
            ..Default::default()
        }
    }};
}

impl Gateway {
    /// A write's condition in the form the catalog checks atomically: `If-None-Match: *` as
    /// it is; `If-Match` compared here with the current object's ETag (opened: the catalog
    /// holds it sealed) and, if it matches, handed on as the current record's stored ETag, so
    /// the commit succeeds only if that record is still the current one. Fails a condition
    /// that does not hold now.
    pub(super) async fn write_condition(
        &self,
        ctx: &ReqCtx,
        key: &str,
        condition: PutCondition,
        keys: &KeyMemo,
    ) -> S3Result<PutCondition> {
        if condition == PutCondition::None {
            return Ok(condition);
        }
        let bucket = ctx.bucket()?.name.as_str();
        let current = self
            .catalog
            .get_object(bucket, key)
            .await
            .map_err(error::catalog)?;
        match (condition, current) {
            (PutCondition::ETagMatches(wanted), Some(cur)) => {
                let etag = self
                    .current_etag(&ctx.tenant.name, &cur, &ctx.justification, keys)
                    .await?;
                if etag != wanted {
                    return Err(precondition_failed());
                }
                Ok(PutCondition::ETagMatches(cur.etag))
            }
            (condition, current) => {
                if condition.check(current.as_ref()).is_err() {
                    return Err(precondition_failed());
                }
                Ok(condition)
            }
        }
    }

    /// Finds an object for a GET or HEAD, checks its conditions and resolves the range.
    async fn find(&self, ctx: &ReqCtx, r: &ReadRequest<'_>) -> S3Result<Found> {
        let bucket = ctx.bucket()?.name.as_str();
        // The key first: without the trustee, not even whether the name exists is answered.
        let keys = KeyMemo::default();
        let tenant = &ctx.tenant.name;
        // Per object, opening the object's key is the trustee's word; only a missing name
        // needs it asked separately.
        let per_object = self.keys_per_object(tenant);
        if !per_object {
            self.require_keys(tenant, bucket, &ctx.justification, &keys)
                .await?;
        }
        let o = match self
            .object_version(ctx.bucket()?, r.key, r.version_id)
            .await
        {
            Ok(o) => o,
            Err(e) => {
                if per_object {
                    self.require_keys(tenant, bucket, &ctx.justification, &keys)
                        .await?;
                }
                return Err(e);
            }
        };
        let Opened { cipher, etag } = self
            .open_object(&ctx.tenant.name, &o, &ctx.justification, &keys)
            .await?;
        r.conditions.check(&o, &etag, false)?;
        let meta = cipher.open_meta(&o.meta).map_err(|e| {
            self.integrity_failure(
                &Binding::object(&ctx.tenant.name, bucket, r.key),
                &format!("the metadata does not open: {e}"),
            )
        })?;
        let (range, content_range) = if let Some(n) = r.part_number {
            let n = part_number_index(n, o.chunks.len())?;
            let start: u64 = o.chunks[..n].iter().map(|c| c.size).sum();
            let range = start..start + o.chunks[n].size;
            let cr = format!(
                "bytes {}-{}/{}",
                range.start,
                range.end.saturating_sub(1),
                o.size
            );
            (range, Some(cr))
        } else if let Some(range) = r
            .range
            .map(|w| byte_range(w, o.size))
            .transpose()?
            .flatten()
        {
            let cr = format!(
                "bytes {}-{}/{}",
                range.start,
                range.end.saturating_sub(1),
                o.size
            );
            (range, Some(cr))
        } else {
            (0..o.size, None)
        };
        Ok(Found {
            object: o,
            etag,
            meta,
            range,
            content_range,
            cipher: Arc::new(cipher),
        })
    }
}

/// The bytes a Range header asks for, or `None` for the whole object: a suffix range of an empty
/// object is satisfiable (RFC 9110, 14.1.1) but names no byte, so the whole (empty) object is
/// the answer, without a Content-Range that would claim a byte.
fn byte_range(wanted: &Range, size: u64) -> S3Result<Option<std::ops::Range<u64>>> {
    let range = wanted
        .check(size)
        .map_err(|_| error::with(S3ErrorCode::InvalidRange, error::INVALID_RANGE))?;
    Ok((range.start < range.end).then_some(range))
}

/// The headers of a GET or HEAD answer; full-object checksums only for the whole object and
/// when asked for.
fn object_headers(found: &Found, r: &ReadRequest<'_>) -> ObjectHeaders {
    let o = &found.object;
    let want_checksums =
        found.content_range.is_none() && r.checksum_mode.is_some_and(|m| m.as_str() == "ENABLED");
    ObjectHeaders {
        content_length: size_i64(found.range.end - found.range.start),
        content_range: found.content_range.clone(),
        e_tag: etag(&found.etag),
        last_modified: timestamp(o.last_modified_ms),
        meta: found.meta.clone(),
        // Only objects uploaded in parts have a part count (S3: `x-amz-mp-parts-count`).
        parts_count: (found.etag.contains('-') && (o.chunks.len() > 1 || r.part_number.is_some()))
            .then(|| i32::try_from(o.chunks.len()).unwrap_or(i32::MAX)),
        checksums: if want_checksums {
            found.meta.checksums.clone()
        } else {
            Checksums::default()
        },
        checksum_type: (want_checksums && !found.meta.checksums.is_empty())
            .then(|| checksum_type(&found.meta)),
    }
}

/// The checksum type of an object's checksums: its upload's, or `FULL_OBJECT` for an object
/// uploaded at once (whose checksums are of its whole bytes).
fn checksum_type(meta: &ObjectMeta) -> ChecksumType {
    ChecksumType::from(
        meta.checksum_type
            .clone()
            .unwrap_or_else(|| super::checksums::ChecksumKind::FULL_OBJECT.to_owned()),
    )
}

pub async fn put(
    gw: &Gateway,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let expected_len = expected_length(&req, req.input.content_length);
    let trailers = req.extensions.get::<crate::authn::Trailers>().cloned();
    let headers = req.headers.clone();
    let input = req.input;
    let bucket = ctx.bucket()?.name.as_str();
    check_new_object!(input)?;
    let tags = header_tags(input.tagging.as_deref())?;
    let condition = put_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
    let lock_headers = LockHeaders {
        mode: input.object_lock_mode.as_ref(),
        retain_until: input.object_lock_retain_until_date.as_ref(),
        legal_hold: input.object_lock_legal_hold_status.as_ref(),
    };
    lock_headers.check_allowed(&ctx, &input.key)?;
    let lock = gw.new_version_lock(ctx.bucket()?, &lock_headers).await?;
    if lock.is_some() && lock_headers.any() {
        require_content_check(&headers)?;
    }
    // Fails a doomed conditional write before its body is streamed.
    let condition = gw
        .write_condition(&ctx, &input.key, condition, &KeyMemo::default())
        .await?;
    let placed = gw.placement(&ctx).await?;
    // Held before the first byte is written: a write the quota has no room for stores nothing.
    let versioning = ctx.bucket()?.versioning;
    // An overwrite in a versioned bucket keeps what it overwrites: nothing to credit.
    let replaces = (versioning == Versioning::Unversioned).then_some(input.key.as_str());
    let hold = gw
        .hold_quota(
            &ctx,
            replaces,
            expected_len.unwrap_or(crate::quota::UNDECLARED_BYTES),
            1,
        )
        .await?;
    let given = checksums_of(
        input.checksum_crc32,
        input.checksum_crc32c,
        input.checksum_crc64nvme,
        input.checksum_sha1,
        input.checksum_sha256,
    );
    let hasher = checksum_hasher(&headers, input.checksum_algorithm.as_ref(), &given)?;
    let verify = verifier(input.content_md5, given, trailers)?;
    let (cipher, envelope) = gw
        .new_cipher(
            &Binding::object(&ctx.tenant.name, bucket, &input.key),
            &ctx.justification,
        )
        .await?;
    let blob = NewBlob {
        body: input.body,
        expected_len,
        hasher,
        verify,
    };
    let stored = gw.store(&placed, blob, &cipher, 1).await?;
    let mut meta = MetaHeaders {
        content_type: input.content_type,
        content_encoding: input.content_encoding,
        content_disposition: input.content_disposition,
        content_language: input.content_language,
        cache_control: input.cache_control,
        expires: input.expires.as_ref(),
        metadata: input.metadata,
    }
    .into_meta();
    meta.tags = tags;
    let written = stored.written;
    meta.checksums = Checksums::from_dto(written.checksums.clone());
    let etag_value = hex(&written.md5);
    let record = ObjectRecord {
        bucket: bucket.to_owned(),
        key: input.key,
        size: written.chunk.size,
        etag: cipher
            .seal_etag(None, &etag_value)
            .map_err(|e| error::envelope(&e))?,
        last_modified_ms: now_ms(),
        envelope,
        meta: cipher.seal_meta(&meta).map_err(|e| error::envelope(&e))?,
        sites: stored.site_ids,
        chunks: vec![written.chunk],
        version_id: (versioning == Versioning::Enabled).then(|| hex(&cipher.version_id)),
    };
    if let Some(state) = lock {
        gw.write_new_lock(&ctx, &record.key, record.version_id.as_deref(), state, None)
            .await?;
    }
    gw.commit_object(ctx.bucket()?, &record, condition, hold)
        .await?;
    let c = written.checksums;
    Ok(S3Response::new(PutObjectOutput {
        server_side_encryption: super::encryption::reported(),
        e_tag: Some(etag(&etag_value)),
        version_id: response_version_id(ctx.bucket()?, &record),
        checksum_crc32: c.checksum_crc32,
        checksum_crc32c: c.checksum_crc32c,
        checksum_crc64nvme: c.checksum_crc64nvme,
        checksum_sha1: c.checksum_sha1,
        checksum_sha256: c.checksum_sha256,
        ..Default::default()
    }))
}

pub async fn get(
    gw: &Gateway,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let i = &req.input;
    let r = ReadRequest {
        key: &i.key,
        version_id: i.version_id.as_deref(),
        conditions: Conditions {
            if_match: i.if_match.as_ref(),
            if_none_match: i.if_none_match.as_ref(),
            if_modified_since: i.if_modified_since.as_ref(),
            if_unmodified_since: i.if_unmodified_since.as_ref(),
        },
        range: i.range.as_ref(),
        part_number: i.part_number,
        checksum_mode: i.checksum_mode.as_ref(),
    };
    let found = gw.find(&ctx, &r).await?;
    let headers = object_headers(&found, &r);
    let version_id = response_version_id(ctx.bucket()?, &found.object);
    let tag_count = tag_count(&found.meta.tags);
    let (lock_mode, lock_until, lock_hold) = answer_fields(
        gw.lock_headers(
            ctx.bucket()?,
            &found.object.key,
            found.object.version_id.as_deref(),
        )
        .await?,
    );
    let body = gw.read(&found.object, found.range.clone(), found.cipher);
    Ok(S3Response::new(object_output!(GetObjectOutput, headers, {
        body: Some(body),
        version_id: version_id,
        tag_count: tag_count,
        object_lock_mode: lock_mode,
        object_lock_retain_until_date: lock_until,
        object_lock_legal_hold_status: lock_hold,
    })))
}

pub async fn head(
    gw: &Gateway,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let i = &req.input;
    let r = ReadRequest {
        key: &i.key,
        version_id: i.version_id.as_deref(),
        conditions: Conditions {
            if_match: i.if_match.as_ref(),
            if_none_match: i.if_none_match.as_ref(),
            if_modified_since: i.if_modified_since.as_ref(),
            if_unmodified_since: i.if_unmodified_since.as_ref(),
        },
        range: i.range.as_ref(),
        part_number: i.part_number,
        checksum_mode: i.checksum_mode.as_ref(),
    };
    let found = gw.find(&ctx, &r).await?;
    let (lock_mode, lock_until, lock_hold) = answer_fields(
        gw.lock_headers(
            ctx.bucket()?,
            &found.object.key,
            found.object.version_id.as_deref(),
        )
        .await?,
    );
    let mut resp = S3Response::new(object_output!(
        HeadObjectOutput,
        object_headers(&found, &r),
        {
            version_id: response_version_id(ctx.bucket()?, &found.object),
            object_lock_mode: lock_mode,
            object_lock_retain_until_date: lock_until,
            object_lock_legal_hold_status: lock_hold,
        }
    ));
    // S3 answers the tag count on HEAD too; s3s's HEAD output has no field for it.
    if let Some(n) = tag_count(&found.meta.tags) {
        resp.headers
            .insert("x-amz-tagging-count", http::HeaderValue::from(n));
    }
    Ok(resp)
}

pub async fn delete(
    gw: &Gateway,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let bucket = ctx.bucket()?.name.as_str();
    check_key(&req.input.key)?;
    // Whether a name exists is the tenant's data: nothing is answered without the trustee.
    gw.require_keys(
        &ctx.tenant.name,
        bucket,
        &ctx.justification,
        &KeyMemo::default(),
    )
    .await?;
    let bypass = req.input.bypass_governance_retention == Some(true);
    if bypass && req.input.version_id.is_some() {
        ctx.may_bypass_governance(&req.input.key)?;
    }
    let (version_id, delete_marker) = gw
        .delete_key(
            ctx.bucket()?,
            &req.input.key,
            req.input.version_id.as_deref(),
            bypass,
        )
        .await?;
    Ok(S3Response::new(DeleteObjectOutput {
        version_id,
        delete_marker: delete_marker.then_some(true),
        ..Default::default()
    }))
}

/// One key's failure in a DeleteObjects answer.
fn delete_error(key: String, e: &s3s::S3Error) -> s3s::dto::Error {
    s3s::dto::Error {
        code: Some(e.code().as_str().to_owned()),
        key: Some(key),
        message: e.message().map(str::to_owned),
        version_id: None,
    }
}

pub async fn delete_many(
    gw: &Gateway,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let bucket = ctx.bucket()?.name.as_str();
    let delete = req.input.delete;
    if delete.objects.is_empty() || delete.objects.len() > MAX_DELETE_KEYS {
        return Err(error::with(S3ErrorCode::MalformedXML, error::MALFORMED_XML));
    }
    let quiet = delete.quiet.unwrap_or(false);
    let bypass = req.input.bypass_governance_retention == Some(true);
    gw.require_keys(
        &ctx.tenant.name,
        bucket,
        &ctx.justification,
        &KeyMemo::default(),
    )
    .await?;
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for obj in delete.objects {
        if let Err(e) = check_key(&obj.key)
            .and_then(|()| ctx.may_delete(&obj.key, obj.version_id.is_some()))
            .and_then(|()| {
                if bypass && obj.version_id.is_some() {
                    ctx.may_bypass_governance(&obj.key)
                } else {
                    Ok(())
                }
            })
        {
            errors.push(delete_error(obj.key, &e));
            continue;
        }
        let asked = obj.version_id.clone();
        match gw
            .delete_key(ctx.bucket()?, &obj.key, obj.version_id.as_deref(), bypass)
            .await
        {
            Ok((version_id, marker)) => {
                if !quiet {
                    // A version asked for by id is answered as such; a marker just written
                    // is answered with its own id.
                    let (version_id, marker_id) = match asked {
                        Some(v) => (Some(v), None),
                        None if marker => (None, version_id),
                        None => (None, None),
                    };
                    deleted.push(DeletedObject {
                        key: Some(obj.key),
                        version_id,
                        delete_marker: marker.then_some(true),
                        delete_marker_version_id: marker_id,
                    });
                }
            }
            Err(e) => errors.push(delete_error(obj.key, &e)),
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: Some(errors),
        ..Default::default()
    }))
}

/// GetObjectAttributes: what a HEAD tells, in S3's XML form, for the attributes asked for
/// (`ETag`, `Checksum`, `ObjectParts`: the part count of an object uploaded in parts,
/// `ObjectSize`, `StorageClass`). Read as a HEAD reads, under the same authorisation.
pub async fn attributes(
    gw: &Gateway,
    req: S3Request<GetObjectAttributesInput>,
) -> S3Result<S3Response<GetObjectAttributesOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let i = &req.input;
    let r = ReadRequest {
        key: &i.key,
        version_id: i.version_id.as_deref(),
        conditions: Conditions {
            if_match: None,
            if_none_match: None,
            if_modified_since: None,
            if_unmodified_since: None,
        },
        range: None,
        part_number: None,
        checksum_mode: None,
    };
    let found = gw.find(&ctx, &r).await?;
    // One header of comma-separated names (as SDKs send it), or several headers.
    let wants = |a: &str| {
        i.object_attributes
            .iter()
            .any(|x| x.as_str().split(',').any(|n| n.trim() == a))
    };
    let o = &found.object;
    let c = &found.meta.checksums;
    let any_checksum = c.crc32.is_some()
        || c.crc32c.is_some()
        || c.crc64nvme.is_some()
        || c.sha1.is_some()
        || c.sha256.is_some();
    let parts = found
        .etag
        .contains('-')
        .then(|| i32::try_from(o.chunks.len()).unwrap_or(i32::MAX));
    let object_parts = if wants(ObjectAttributes::OBJECT_PARTS) && parts.is_some() {
        Some(object_parts(&found, i.max_parts, i.part_number_marker)?)
    } else {
        None
    };
    Ok(S3Response::new(GetObjectAttributesOutput {
        e_tag: wants(ObjectAttributes::ETAG).then(|| etag(&found.etag)),
        checksum: (wants(ObjectAttributes::CHECKSUM) && any_checksum).then(|| Checksum {
            checksum_crc32: c.crc32.clone(),
            checksum_crc32c: c.crc32c.clone(),
            checksum_crc64nvme: c.crc64nvme.clone(),
            checksum_sha1: c.sha1.clone(),
            checksum_sha256: c.sha256.clone(),
            checksum_type: Some(checksum_type(&found.meta)),
        }),
        object_parts,
        object_size: wants(ObjectAttributes::OBJECT_SIZE).then(|| size_i64(o.size)),
        storage_class: wants(ObjectAttributes::STORAGE_CLASS)
            .then(|| StorageClass::from_static(StorageClass::STANDARD)),
        last_modified: Some(timestamp(o.last_modified_ms)),
        version_id: response_version_id(ctx.bucket()?, o),
        ..Default::default()
    }))
}

/// The `ObjectParts` of an object uploaded in parts: its part count, and a page of its parts
/// (number, size and, for an upload made with a checksum algorithm, that checksum) after
/// `marker`, at most `max_parts` (default and most 1,000).
fn object_parts(
    found: &Found,
    max_parts: Option<i32>,
    marker: Option<i32>,
) -> S3Result<GetObjectAttributesParts> {
    let chunks = &found.object.chunks;
    let max = super::input::page_size(max_parts, error::NEGATIVE_MAX_PARTS)?;
    let after = usize::try_from(marker.unwrap_or(0).max(0)).unwrap_or(usize::MAX);
    let meta = &found.meta;
    let algorithm = meta.checksum_algorithm.as_deref().unwrap_or_default();
    let page: Vec<ObjectPart> = chunks
        .iter()
        .enumerate()
        .skip(after)
        .take(max)
        .map(|(i, chunk)| {
            let mut c = Checksums::default();
            if let Some(sum) = meta.part_checksums.get(i) {
                super::checksums::set_checksum(&mut c, algorithm, sum.clone());
            }
            ObjectPart {
                part_number: i32::try_from(i + 1).ok(),
                size: Some(size_i64(chunk.size)),
                checksum_crc32: c.crc32,
                checksum_crc32c: c.crc32c,
                checksum_crc64nvme: c.crc64nvme,
                checksum_sha1: c.sha1,
                checksum_sha256: c.sha256,
            }
        })
        .collect();
    let last = after.saturating_add(page.len());
    Ok(GetObjectAttributesParts {
        total_parts_count: i32::try_from(chunks.len()).ok(),
        part_number_marker: marker,
        next_part_number_marker: i32::try_from(last).ok().filter(|_| !page.is_empty()),
        max_parts: i32::try_from(max).ok(),
        is_truncated: Some(last < chunks.len()),
        parts: Some(page),
    })
}

/// Fuzz target (bolero: 2,000 random cases under `cargo test`): a Range header, whatever it
/// says, resolves to bytes of the object or to InvalidRange; the data path is never asked for
/// bytes past the end.
#[cfg(test)]
mod fuzz {
    use bolero::check;
    use s3s::dto::Range;

    #[test]
    fn any_range_header_resolves_inside_the_object_or_not_at_all() {
        // Found by this target: a suffix range of an empty object named no byte, yet was
        // answered with "Content-Range: bytes 0-0/0".
        let suffix = Range::parse("bytes=-1").expect("parse");
        assert_eq!(super::byte_range(&suffix, 0).ok(), Some(None));
        let resolve = |header: &str, len: u64| {
            if let Ok(wanted) = Range::parse(header)
                && let Ok(Some(bytes)) = super::byte_range(&wanted, len)
            {
                assert!(
                    bytes.start < bytes.end && bytes.end <= len,
                    "{header:?} of {len}: {bytes:?}"
                );
            }
        };
        check!()
            .with_iterations(2_000)
            .with_type::<(String, u64)>()
            .for_each(|(header, len)| resolve(header, *len));
        check!()
            .with_iterations(2_000)
            .with_type::<(u8, u64, u64, u64)>()
            .for_each(|&(form, a, b, len)| {
                let (a, b, len) = (a % 1_000, b % 1_000, len % 1_000);
                let header = match form % 3 {
                    0 => format!("bytes={a}-{b}"),
                    1 => format!("bytes={a}-"),
                    _ => format!("bytes=-{b}"),
                };
                resolve(&header, len);
            });
    }
}
