//! Multipart uploads: CreateMultipartUpload, UploadPart, CompleteMultipartUpload,
//! AbortMultipartUpload and ListParts, and the one path by which a part (uploaded or copied)
//! is recorded.
//!
//! An upload's object key encrypts every part and, on completion, the object; this module sees
//! that key only to seal and open the upload's metadata.

use super::checksums::{
    ChecksumKind, checksum_hasher, checksum_of, checksums_of, combined_checksum, expected_length,
    set_checksum, upload_checksum_kind, verifier,
};
use super::conditions::put_condition;
use super::convert::{etag, hex, now_ms, owner, size_i64, timestamp};
use super::input::{check_new_object, page_size, part_number};
use super::objects::MetaHeaders;
use super::store::{KeyMemo, NewBlob, Opened, Stored};
use crate::access::ReqCtx;
use crate::keys::{Binding, ObjectCipher};
use crate::meta::Checksums;
use crate::quota::Hold;
use crate::{Gateway, error};
use obhut_catalog::{Bucket, ObjectRecord, Part, Upload, Versioning};
use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result};
use std::collections::BTreeMap;

const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// A part as recorded: what UploadPart and UploadPartCopy answer.
pub struct Recorded {
    pub etag: String,
    pub last_modified_ms: i64,
}

impl Gateway {
    /// Upload `upload_id` of `key` in the request's bucket, or `NoSuchUpload`.
    pub(super) async fn load_upload(
        &self,
        ctx: &ReqCtx,
        key: &str,
        upload_id: &str,
        keys: &KeyMemo,
    ) -> S3Result<Upload> {
        let bucket = ctx.bucket()?.name.as_str();
        // The key first: without the trustee, not even whether the upload exists is answered.
        self.require_keys(&ctx.tenant.name, bucket, &ctx.justification, keys)
            .await?;
        match self
            .catalog
            .get_upload(upload_id)
            .await
            .map_err(error::catalog)?
        {
            Some(u) if u.bucket == bucket && u.key == key => Ok(u),
            _ => Err(error::with(
                S3ErrorCode::NoSuchUpload,
                error::NO_SUCH_UPLOAD,
            )),
        }
    }

    /// Records a stored blob as part `n` of upload `upload_id`, its ETag and checksums
    /// sealed under the upload's key (`cipher`), discarding the part it replaces, or the blob
    /// itself if the upload or `bucket` (the bucket the request was authorised against) is
    /// gone.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn record_part(
        &self,
        bucket: &Bucket,
        upload_id: &str,
        n: u32,
        stored: Stored,
        cipher: &ObjectCipher,
        checksums: Checksums,
        hold: Hold,
    ) -> S3Result<Recorded> {
        let Stored { written, site_ids } = stored;
        let recorded = Recorded {
            etag: hex(&written.md5),
            last_modified_ms: now_ms(),
        };
        let part = Part {
            upload_id: upload_id.to_owned(),
            part_number: n,
            chunk: written.chunk,
            etag: cipher
                .seal_etag(Some(n), &recorded.etag)
                .map_err(|e| error::envelope(&e))?,
            checksums: cipher
                .seal_part_checksums(n, &checksums)
                .map_err(|e| error::envelope(&e))?,
            sites: site_ids,
            last_modified_ms: recorded.last_modified_ms,
        };
        let put = self
            .catalog
            .put_part_settling(bucket, &part, hold.id())
            .await;
        if put.is_ok() {
            hold.settled();
        }
        match put {
            Ok(Some(old)) => self.discard_parts(vec![old]),
            Ok(None) => {}
            Err(e) => {
                self.discard_after_failed_commit(&e, &part.sites, [part.chunk]);
                return Err(error::catalog(e));
            }
        }
        Ok(recorded)
    }
}

impl Gateway {
    /// The answer of the completion of `upload_id`, if it completed lately (the catalog
    /// remembers completions for a day) into `key` of the request's bucket (this incarnation
    /// of it), the version it made is still there, and `requested` names the same parts with
    /// the same ETags; else `None` (the caller answers `NoSuchUpload`). Nothing is written:
    /// the object is as the first completion left it, and so are its conditions.
    async fn completed_again(
        &self,
        ctx: &ReqCtx,
        key: &str,
        upload_id: &str,
        requested: &[CompletedPart],
        keys: &KeyMemo,
    ) -> S3Result<Option<CompleteMultipartUploadOutput>> {
        let bucket = ctx.bucket()?;
        let Some(done) = self
            .catalog
            .get_completed_upload(upload_id)
            .await
            .map_err(error::catalog)?
        else {
            return Ok(None);
        };
        if done.bucket != bucket.name
            || done.bucket_created_ms != bucket.created_ms
            || done.key != key
        {
            return Ok(None);
        }
        let Some(version) = self
            .catalog
            .get_object_version(&bucket.name, key, done.version_id.as_deref())
            .await
            .map_err(error::catalog)?
        else {
            return Ok(None);
        };
        // Overwritten since (the null version), or removed: not the upload's object any more.
        if version.delete_marker || version.object.etag != done.etag {
            return Ok(None);
        }
        let o = version.object;
        let Opened { etag: opened, .. } = self
            .open_object(&ctx.tenant.name, &o, &ctx.justification, keys)
            .await?;
        let numbers: Option<Vec<u32>> = requested
            .iter()
            .map(|p| p.part_number.and_then(|n| u32::try_from(n).ok()))
            .collect();
        if numbers != Some(o.chunks.iter().map(|c| c.part).collect()) {
            return Ok(None);
        }
        let mut md5_of_md5s = Md5::new();
        for p in requested {
            let Some(raw) = p
                .e_tag
                .as_ref()
                .and_then(|e| hex_simd::decode_to_vec(e.value().trim_matches('"')).ok())
            else {
                return Ok(None);
            };
            md5_of_md5s.update(&raw);
        }
        let again = format!("{}-{}", hex(&md5_of_md5s.finalize()), requested.len());
        if again != opened {
            return Ok(None);
        }
        Ok(Some(CompleteMultipartUploadOutput {
            server_side_encryption: super::encryption::reported(),
            version_id: super::versions::response_version_id(bucket, &o),
            location: Some(format!("/{}/{}", bucket.name, key)),
            bucket: Some(bucket.name.clone()),
            key: Some(key.to_owned()),
            e_tag: Some(etag(&opened)),
            ..Default::default()
        }))
    }
}

pub async fn create(
    gw: &Gateway,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let input = req.input;
    let bucket = ctx.bucket()?.name.as_str();
    check_new_object!(input)?;
    let tags = super::tagging::header_tags(input.tagging.as_deref())?;
    let lock_headers = super::object_lock::LockHeaders {
        mode: input.object_lock_mode.as_ref(),
        retain_until: input.object_lock_retain_until_date.as_ref(),
        legal_hold: input.object_lock_legal_hold_status.as_ref(),
    };
    // Lock headers are checked now and kept with the upload; the bucket's default applies at
    // completion, when the version is written.
    lock_headers.check_allowed(&ctx, &input.key)?;
    let lock = if lock_headers.any() {
        gw.new_version_lock(ctx.bucket()?, &lock_headers).await?
    } else {
        None
    };
    // Placement is decided once, here, and kept with the upload: every part goes there.
    // Refused early if the object could not be placed.
    let placed = gw.placement(&ctx).await?;
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
    meta.checksum_algorithm = input
        .checksum_algorithm
        .as_ref()
        .map(|a| a.as_str().to_owned());
    let checksum_kind = upload_checksum_kind(
        meta.checksum_algorithm.as_deref(),
        input.checksum_type.as_ref().map(ChecksumType::as_str),
    )?;
    meta.checksum_type = checksum_kind.map(|k| k.as_str().to_owned());
    // The upload's object key encrypts every part and, on completion, the object.
    let upload_id = obhut_core::random_token(40);
    if let Some(state) = lock {
        meta.lock_seal = Some(
            gw.seal_upload_lock(&ctx, &input.key, &upload_id, state)
                .await?,
        );
        meta.lock = Some(state);
    }
    let (cipher, envelope) = gw
        .new_cipher(
            &Binding::upload(&ctx.tenant.name, bucket, &input.key, &upload_id),
            &ctx.justification,
        )
        .await?;
    let upload = Upload {
        upload_id,
        bucket: bucket.to_owned(),
        key: input.key.clone(),
        initiated_ms: now_ms(),
        envelope,
        meta: cipher.seal_meta(&meta).map_err(|e| error::envelope(&e))?,
        sites: placed.ids().to_vec(),
    };
    gw.catalog
        .create_upload(ctx.bucket()?, &upload)
        .await
        .map_err(error::catalog)?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        server_side_encryption: super::encryption::reported(),
        bucket: Some(upload.bucket),
        key: Some(input.key),
        upload_id: Some(upload.upload_id),
        checksum_algorithm: input.checksum_algorithm,
        checksum_type: checksum_kind.map(|k| ChecksumType::from(k.as_str().to_owned())),
        ..Default::default()
    }))
}

pub async fn upload_part(
    gw: &Gateway,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let expected_len = expected_length(&req, req.input.content_length);
    let trailers = req.extensions.get::<crate::authn::Trailers>().cloned();
    let headers = req.headers.clone();
    let input = req.input;
    let n = part_number(input.part_number)?;
    let keys = KeyMemo::default();
    let upload = gw
        .load_upload(&ctx, &input.key, &input.upload_id, &keys)
        .await?;
    let cipher = gw
        .open_upload(&ctx.tenant.name, &upload, &ctx.justification, &keys)
        .await?;
    let placed = gw.upload_placement(&ctx, &upload).await?;
    // A part counts against the quota from its upload until the upload completes or is
    // aborted; held before its first byte is written.
    let hold = gw
        .hold_quota(
            &ctx,
            None,
            expected_len.unwrap_or(crate::quota::UNDECLARED_BYTES),
            0,
        )
        .await?;
    let given = checksums_of(
        input.checksum_crc32,
        input.checksum_crc32c,
        input.checksum_crc64nvme,
        input.checksum_sha1,
        input.checksum_sha256,
    );
    // A part of an upload made with a checksum algorithm always has that checksum computed,
    // whether the request names the algorithm or not: the object's checksum is made from it.
    let algorithm = match input.checksum_algorithm {
        Some(a) => Some(a),
        None => gw
            .upload_meta(&ctx, &upload, &cipher)?
            .checksum_algorithm
            .map(ChecksumAlgorithm::from),
    };
    let hasher = checksum_hasher(&headers, algorithm.as_ref(), &given)?;
    let verify = verifier(input.content_md5, given, trailers)?;
    let blob = NewBlob {
        body: input.body,
        expected_len,
        hasher,
        verify,
    };
    let stored = gw.store(&placed, blob, &cipher, n).await?;
    let c = stored.written.checksums.clone();
    let recorded = gw
        .record_part(
            ctx.bucket()?,
            &upload.upload_id,
            n,
            stored,
            &cipher,
            Checksums::from_dto(c.clone()),
            hold,
        )
        .await?;
    Ok(S3Response::new(UploadPartOutput {
        server_side_encryption: super::encryption::reported(),
        e_tag: Some(etag(&recorded.etag)),
        checksum_crc32: c.checksum_crc32,
        checksum_crc32c: c.checksum_crc32c,
        checksum_crc64nvme: c.checksum_crc64nvme,
        checksum_sha1: c.checksum_sha1,
        checksum_sha256: c.checksum_sha256,
        ..Default::default()
    }))
}

/// A stored part with its ETag and checksums opened.
struct OpenedPart {
    part: Part,
    etag: String,
    checksums: Checksums,
}

/// Checks a requested part against the stored one: it exists, its ETag and any checksums
/// given match.
fn check_requested_part<'a>(
    requested: &CompletedPart,
    n: u32,
    stored: &'a BTreeMap<u32, OpenedPart>,
) -> S3Result<&'a OpenedPart> {
    let invalid = || error::with(S3ErrorCode::InvalidPart, error::INVALID_PART);
    let part = stored.get(&n).ok_or_else(invalid)?;
    let given = requested.e_tag.as_ref().ok_or_else(invalid)?;
    if given.value().trim_matches('"') != part.etag {
        return Err(invalid());
    }
    let part_sums = &part.checksums;
    for (want, have) in [
        (&requested.checksum_crc32, &part_sums.crc32),
        (&requested.checksum_crc32c, &part_sums.crc32c),
        (&requested.checksum_crc64nvme, &part_sums.crc64nvme),
        (&requested.checksum_sha1, &part_sums.sha1),
        (&requested.checksum_sha256, &part_sums.sha256),
    ] {
        if let Some(want) = want
            && have.as_ref().is_some_and(|h| h != want)
        {
            return Err(invalid());
        }
    }
    Ok(part)
}

pub async fn complete(
    gw: &Gateway,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let mut input = req.input;
    let keys = KeyMemo::default();
    let requested = input
        .multipart_upload
        .take()
        .and_then(|m| m.parts)
        .unwrap_or_default();
    let upload = match gw
        .load_upload(&ctx, &input.key, &input.upload_id, &keys)
        .await
    {
        Ok(upload) => upload,
        Err(gone) if *gone.code() == S3ErrorCode::NoSuchUpload => {
            // A client retrying a completion whose answer it lost gets that answer again.
            return match gw
                .completed_again(&ctx, &input.key, &input.upload_id, &requested, &keys)
                .await?
            {
                Some(done) => Ok(S3Response::new(done)),
                None => Err(gone),
            };
        }
        Err(e) => return Err(e),
    };
    if requested.is_empty() {
        return Err(error::with(S3ErrorCode::MalformedXML, error::NO_PARTS));
    }
    let cipher = gw
        .open_upload(&ctx.tenant.name, &upload, &ctx.justification, &keys)
        .await?;
    let stored: BTreeMap<u32, OpenedPart> = gw
        .catalog
        .list_parts(&upload.upload_id, 0, usize::MAX)
        .await
        .map_err(error::catalog)?
        .into_iter()
        .map(|p| {
            let (etag, checksums) = gw.open_part(&ctx.tenant.name, &upload, &cipher, &p)?;
            Ok((
                p.part_number,
                OpenedPart {
                    part: p,
                    etag,
                    checksums,
                },
            ))
        })
        .collect::<S3Result<_>>()?;
    let mut chosen: Vec<&OpenedPart> = Vec::with_capacity(requested.len());
    let mut previous = 0u32;
    for rp in &requested {
        let n = rp
            .part_number
            .ok_or_else(|| error::with(S3ErrorCode::MalformedXML, error::PART_WITHOUT_NUMBER))?;
        let n = part_number(n)?;
        if n <= previous {
            return Err(error::with(
                S3ErrorCode::InvalidPartOrder,
                error::INVALID_PART_ORDER,
            ));
        }
        previous = n;
        chosen.push(check_requested_part(rp, n, &stored)?);
    }
    if let Some((_, all_but_last)) = chosen.split_last()
        && all_but_last
            .iter()
            .any(|p| p.part.chunk.size < MIN_PART_SIZE)
    {
        return Err(error::with(
            S3ErrorCode::EntityTooSmall,
            error::ENTITY_TOO_SMALL,
        ));
    }
    let mut md5_of_md5s = Md5::new();
    for p in &chosen {
        let raw =
            hex_simd::decode_to_vec(&p.etag).map_err(|e| error::corrupt_record("part ETag", &e))?;
        md5_of_md5s.update(&raw);
    }
    let etag_value = format!("{}-{}", hex(&md5_of_md5s.finalize()), chosen.len());
    let size = chosen.iter().map(|p| p.part.chunk.size).sum();
    if let Some(declared) = input.mpu_object_size
        && u64::try_from(declared).ok() != Some(size)
    {
        return Err(error::with(
            S3ErrorCode::InvalidRequest,
            error::MPU_SIZE_MISMATCH,
        ));
    }
    // All parts must share one site set for the object to be placed consistently.
    let site_ids = chosen[0].part.sites.clone();
    if chosen.iter().any(|p| p.part.sites != site_ids) {
        return Err(error::with(
            S3ErrorCode::ServiceUnavailable,
            error::PARTS_ON_DIFFERENT_SITES,
        ));
    }
    // The policy may have changed since the parts were written: an object is never made of
    // parts outside the bucket's residency policy as it is now.
    let policy = gw
        .residency_policy(&ctx.tenant, &upload.bucket)
        .await
        .map_err(error::policy)?;
    let infos = gw.sites.infos();
    for p in &chosen {
        gw.check_within_policy(&infos, &policy, &p.part.sites)?;
    }
    let mut meta = gw.upload_meta(&ctx, &upload, &cipher)?;
    object_checksum(&mut meta, &chosen, &input)?;
    let condition = put_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
    let condition = gw
        .write_condition(&ctx, &input.key, condition, &keys)
        .await?;
    // The upload's key becomes the object's: bound to the object's name from now on.
    let envelope = gw
        .bind(
            &Binding::object(&ctx.tenant.name, &upload.bucket, &input.key),
            &cipher,
            &ctx.justification,
            &keys,
        )
        .await?;
    let lock_seal = meta.lock_seal.take();
    let lock = match meta.lock.take() {
        Some(state) => Some(state),
        None => {
            gw.new_version_lock(ctx.bucket()?, &super::object_lock::LockHeaders::NONE)
                .await?
        }
    };
    let versioning = ctx.bucket()?.versioning;
    let record = ObjectRecord {
        bucket: upload.bucket.clone(),
        key: input.key.clone(),
        size,
        etag: cipher
            .seal_etag(None, &etag_value)
            .map_err(|e| error::envelope(&e))?,
        last_modified_ms: now_ms(),
        envelope,
        meta: cipher.seal_meta(&meta).map_err(|e| error::envelope(&e))?,
        sites: site_ids,
        chunks: chosen.iter().map(|p| p.part.chunk).collect(),
        // The upload's key becomes the version's, and with it its id.
        version_id: (versioning == Versioning::Enabled)
            .then(|| super::convert::hex(&cipher.version_id)),
    };
    // The parts' bytes are counted already (they become the object's); the object is new.
    // Refused, the upload stays as it was, and can be completed once there is room. In a
    // versioned bucket nothing is replaced, so nothing is credited.
    let replaces = (versioning == Versioning::Unversioned).then_some(input.key.as_str());
    let hold = gw.hold_quota(&ctx, replaces, 0, 1).await?;
    if let Some(state) = lock {
        gw.write_new_lock(
            &ctx,
            &record.key,
            record.version_id.as_deref(),
            state,
            Some(obhut_trustee_client::object_lock::UploadLock {
                upload_id: upload.upload_id.clone(),
                sealed: lock_seal,
            }),
        )
        .await?;
    }
    let (replaced, unused) = gw
        .catalog
        .complete_upload_settling(
            ctx.bucket()?,
            &upload.upload_id,
            &record,
            condition,
            hold.id(),
        )
        .await
        .map_err(error::catalog)?;
    hold.settled();
    if let Some(old) = replaced {
        gw.discard_object(old);
    }
    gw.discard_parts(unused);
    let c = meta.checksums;
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        checksum_crc32: c.crc32,
        checksum_crc32c: c.crc32c,
        checksum_crc64nvme: c.crc64nvme,
        checksum_sha1: c.sha1,
        checksum_sha256: c.sha256,
        checksum_type: meta.checksum_type.map(ChecksumType::from),
        server_side_encryption: super::encryption::reported(),
        version_id: super::versions::response_version_id(ctx.bucket()?, &record),
        location: Some(format!("/{}/{}", upload.bucket, input.key)),
        bucket: Some(upload.bucket),
        key: Some(input.key),
        e_tag: Some(etag(&etag_value)),
        ..Default::default()
    }))
}

/// The checksum of the object a completion makes (S3's full-object checksums): of the
/// upload's algorithm and type, from the chosen parts' checksums, checked against one the
/// request gives. Parts without the algorithm's checksum (copied parts) leave the object
/// without one, as does an upload made without an algorithm.
fn object_checksum(
    meta: &mut crate::meta::ObjectMeta,
    chosen: &[&OpenedPart],
    input: &CompleteMultipartUploadInput,
) -> S3Result<()> {
    meta.checksums = Checksums::default();
    let kind = meta.checksum_type.as_deref().and_then(ChecksumKind::parse);
    if let Some(asked) = &input.checksum_type
        && Some(asked.as_str()) != kind.map(ChecksumKind::as_str)
    {
        return Err(s3s::s3_error!(
            InvalidRequest,
            "The upload was created using the {} checksum mode. The complete request must use the same checksum mode.",
            kind.map_or("NONE", ChecksumKind::as_str)
        ));
    }
    let (Some(algorithm), Some(kind)) = (meta.checksum_algorithm.clone(), kind) else {
        meta.checksum_type = None;
        return Ok(());
    };
    let sums: Option<Vec<(&str, u64)>> = chosen
        .iter()
        .map(|p| checksum_of(&p.checksums, &algorithm).map(|c| (c, p.part.chunk.size)))
        .collect();
    let Some(sums) = sums else {
        meta.checksum_type = None;
        return Ok(());
    };
    let value = combined_checksum(&algorithm, kind, &sums)?;
    let given = checksums_of(
        input.checksum_crc32.clone(),
        input.checksum_crc32c.clone(),
        input.checksum_crc64nvme.clone(),
        input.checksum_sha1.clone(),
        input.checksum_sha256.clone(),
    );
    if let Some(want) = checksum_of(&given, &algorithm) {
        // A composite checksum may be given with or without its `-N`.
        let bare = value.rsplit_once('-').map_or(value.as_str(), |(v, _)| v);
        let matches = want == value || (kind == ChecksumKind::Composite && want == bare);
        if !matches {
            return Err(s3s::s3_error!(
                BadDigest,
                "The {} you specified did not match the calculated checksum.",
                algorithm.to_ascii_lowercase()
            ));
        }
    }
    meta.part_checksums = sums.iter().map(|(c, _)| (*c).to_owned()).collect();
    set_checksum(&mut meta.checksums, &algorithm, value);
    Ok(())
}

impl Gateway {
    /// An upload's metadata, opened with its key.
    fn upload_meta(
        &self,
        ctx: &ReqCtx,
        upload: &Upload,
        cipher: &ObjectCipher,
    ) -> S3Result<crate::meta::ObjectMeta> {
        cipher.open_meta(&upload.meta).map_err(|e| {
            self.integrity_failure(
                &Binding::upload(
                    &ctx.tenant.name,
                    &upload.bucket,
                    &upload.key,
                    &upload.upload_id,
                ),
                &format!("the metadata does not open: {e}"),
            )
        })
    }
}

pub async fn abort(
    gw: &Gateway,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let i = req.input;
    gw.load_upload(&ctx, &i.key, &i.upload_id, &KeyMemo::default())
        .await?;
    let parts = gw
        .catalog
        .abort_upload(&i.upload_id)
        .await
        .map_err(error::catalog)?;
    gw.discard_parts(parts);
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

/// A recorded part as ListParts lists it, its ETag and checksums opened.
fn listed_part(p: &Part, opened_etag: &str, c: Checksums) -> s3s::dto::Part {
    s3s::dto::Part {
        e_tag: Some(etag(opened_etag)),
        last_modified: Some(timestamp(p.last_modified_ms)),
        part_number: Some(i32::try_from(p.part_number).unwrap_or(0)),
        size: Some(size_i64(p.chunk.size)),
        checksum_crc32: c.crc32,
        checksum_crc32c: c.crc32c,
        checksum_crc64nvme: c.crc64nvme,
        checksum_sha1: c.sha1,
        checksum_sha256: c.sha256,
    }
}

pub async fn list_parts(
    gw: &Gateway,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let i = req.input;
    let keys = KeyMemo::default();
    let upload = gw.load_upload(&ctx, &i.key, &i.upload_id, &keys).await?;
    let max = page_size(i.max_parts, error::NEGATIVE_MAX_PARTS)?;
    let after = u32::try_from(i.part_number_marker.unwrap_or(0).max(0)).unwrap_or(0);
    let mut parts = gw
        .catalog
        .list_parts(&upload.upload_id, after, max + 1)
        .await
        .map_err(error::catalog)?;
    let truncated = parts.len() > max;
    parts.truncate(max);
    let next = parts
        .last()
        .map(|p| i32::try_from(p.part_number).unwrap_or(0));
    let cipher = gw
        .open_upload(&ctx.tenant.name, &upload, &ctx.justification, &keys)
        .await?;
    let meta = gw.upload_meta(&ctx, &upload, &cipher)?;
    let owner = owner(&ctx.tenant);
    let parts = parts
        .iter()
        .map(|p| {
            let (e, c) = gw.open_part(&ctx.tenant.name, &upload, &cipher, p)?;
            Ok(listed_part(p, &e, c))
        })
        .collect::<S3Result<Vec<_>>>()?;
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(upload.bucket),
        key: Some(i.key),
        upload_id: Some(upload.upload_id),
        max_parts: Some(i32::try_from(max).unwrap_or(1000)),
        part_number_marker: i.part_number_marker,
        next_part_number_marker: next,
        is_truncated: Some(truncated),
        checksum_algorithm: meta.checksum_algorithm.map(ChecksumAlgorithm::from),
        checksum_type: meta.checksum_type.map(ChecksumType::from),
        initiator: Some(Initiator {
            display_name: owner.display_name.clone(),
            id: owner.id.clone(),
        }),
        owner: Some(owner),
        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
        parts: Some(parts),
        ..Default::default()
    }))
}
