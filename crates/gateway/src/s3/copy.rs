//! Server-side copies: CopyObject and UploadPartCopy, which read a source object of the same
//! tenant and write its content (or a range of it) under a new object key.
//!
//! The source's bucket is checked like the request's own; its content is decrypted and
//! re-encrypted in `crate::datapath` only.

use super::conditions::Conditions;
use super::convert::{etag, hex, now_ms, timestamp};
use super::input::{check_new_object, part_number};
use super::objects::MetaHeaders;
use super::store::{KeyMemo, NewBlob, Placement, Stored};
use super::tagging::header_tags;
use crate::access::{ReqCtx, copy_source_object, owned_bucket};
use crate::keys::{Binding, ObjectCipher};
use crate::meta::{Checksums, ObjectMeta};
use crate::{Gateway, error};
use obhut_catalog::{ObjectRecord, PutCondition, Versioning};
use s3s::checksum::ChecksumHasher;
use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use std::sync::Arc;

/// The object a copy reads.
struct Source {
    object: ObjectRecord,
    cipher: Arc<ObjectCipher>,
    meta: ObjectMeta,
    /// The source's version id as a response shows it (`x-amz-copy-source-version-id`).
    version_shown: Option<String>,
}

impl Gateway {
    /// The object `x-amz-copy-source` names, in a bucket of the caller's tenant, opened for
    /// reading (its key released for the copy's read step), with its conditions
    /// (`x-amz-copy-source-if-*`) holding. The conditions compare the source's ETag, which is
    /// sealed: it is opened first.
    async fn copy_source(
        &self,
        ctx: &ReqCtx,
        source: &CopySource,
        conditions: &Conditions<'_>,
    ) -> S3Result<Source> {
        // The grant check read the source the same way (`crate::access`).
        let (bucket, key) = copy_source_object(source)?;
        let source_bucket = owned_bucket(self.catalog.as_ref(), &ctx.tenant, bucket).await?;
        let why = ctx.justification_for("read");
        let keys = KeyMemo::default();
        self.require_keys(&ctx.tenant.name, bucket, &why, &keys)
            .await?;
        let object = self
            .object_version(&source_bucket, key, copy_source_version(source))
            .await?;
        let version_shown = super::versions::response_version_id(&source_bucket, &object);
        let opened = self
            .open_object(&ctx.tenant.name, &object, &why, &keys)
            .await?;
        conditions.check(&object, &opened.etag, true)?;
        let meta = opened.cipher.open_meta(&object.meta).map_err(|e| {
            self.integrity_failure(
                &Binding::object(&ctx.tenant.name, &object.bucket, &object.key),
                &format!("the metadata does not open: {e}"),
            )
        })?;
        Ok(Source {
            object,
            cipher: Arc::new(opened.cipher),
            meta,
            version_shown,
        })
    }

    /// Copies `range` of `src` into a new blob on the `placed` sites, encrypted under `dst` as
    /// part `part`.
    async fn copy_blob(
        &self,
        src: &Source,
        range: std::ops::Range<u64>,
        placed: &Placement,
        dst: &ObjectCipher,
        part: u32,
    ) -> S3Result<Stored> {
        let len = range.end - range.start;
        let blob = NewBlob {
            body: Some(self.read(&src.object, range, Arc::clone(&src.cipher))),
            expected_len: Some(len),
            hasher: ChecksumHasher::default(),
            verify: Box::new(|_, _| Ok(())),
        };
        self.store(placed, blob, dst, part).await
    }
}

/// The version `x-amz-copy-source` names (`?versionId=`), if any.
fn copy_source_version(source: &CopySource) -> Option<&str> {
    match source {
        CopySource::Bucket { version_id, .. } => version_id.as_deref(),
        CopySource::AccessPoint { .. } | CopySource::Outpost { .. } => None,
    }
}

/// Parses `bytes=a-b` of UploadPartCopy.
fn copy_source_range(s: &str, len: u64) -> S3Result<std::ops::Range<u64>> {
    let bad = || {
        error::with(
            S3ErrorCode::InvalidArgument,
            error::INVALID_COPY_SOURCE_RANGE,
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
        return Err(error::with(S3ErrorCode::InvalidRange, error::INVALID_RANGE));
    }
    Ok(start..end + 1)
}

pub async fn copy_object(
    gw: &Gateway,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let input = req.input;
    let bucket = ctx.bucket()?.name.as_str();
    check_new_object!(input)?;
    // A copy's lock is its own (its headers or the bucket's default), never its source's.
    let lock_headers = super::object_lock::LockHeaders {
        mode: input.object_lock_mode.as_ref(),
        retain_until: input.object_lock_retain_until_date.as_ref(),
        legal_hold: input.object_lock_legal_hold_status.as_ref(),
    };
    lock_headers.check_allowed(&ctx, &input.key)?;
    let lock = gw.new_version_lock(ctx.bucket()?, &lock_headers).await?;
    // Tags: the source's (COPY, the default) or those of x-amz-tagging (REPLACE).
    let new_tags = match input
        .tagging_directive
        .as_ref()
        .map(TaggingDirective::as_str)
    {
        None | Some("COPY") => None,
        Some("REPLACE") => Some(header_tags(input.tagging.as_deref())?),
        Some(other) => {
            return Err(s3_error!(
                InvalidArgument,
                "Unknown tagging directive {other}"
            ));
        }
    };
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
    let src = gw
        .copy_source(
            &ctx,
            &input.copy_source,
            &Conditions {
                if_match: input.copy_source_if_match.as_ref(),
                if_none_match: input.copy_source_if_none_match.as_ref(),
                if_modified_since: input.copy_source_if_modified_since.as_ref(),
                if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
            },
        )
        .await?;
    // Copying an older version onto its own key restores it: that is not a copy to itself.
    if src.object.bucket == bucket
        && src.object.key == input.key
        && !replace
        && copy_source_version(&input.copy_source).is_none()
    {
        return Err(error::with(
            S3ErrorCode::InvalidRequest,
            error::COPY_TO_ITSELF,
        ));
    }
    let mut meta = if replace {
        MetaHeaders {
            content_type: input.content_type,
            content_encoding: input.content_encoding,
            content_disposition: input.content_disposition,
            content_language: input.content_language,
            cache_control: input.cache_control,
            expires: input.expires.as_ref(),
            metadata: input.metadata,
        }
        .into_meta()
    } else {
        ObjectMeta {
            checksums: Checksums::default(),
            checksum_algorithm: None,
            checksum_type: None,
            part_checksums: Vec::new(),
            ..src.meta.clone()
        }
    };
    meta.tags = new_tags.unwrap_or_else(|| src.meta.tags.clone());
    let placed = gw.placement(&ctx).await?;
    let versioning = ctx.bucket()?.versioning;
    let replaces = (versioning == Versioning::Unversioned).then_some(input.key.as_str());
    let hold = gw.hold_quota(&ctx, replaces, src.object.size, 1).await?;
    let (cipher, envelope) = gw
        .new_cipher(
            &Binding::object(&ctx.tenant.name, bucket, &input.key),
            &ctx.justification_for("write"),
        )
        .await?;
    let stored = gw
        .copy_blob(&src, 0..src.object.size, &placed, &cipher, 1)
        .await?;
    // A copy is a single-part object: its ETag is the MD5 of its content.
    meta.checksums = if src.object.chunks.len() == 1 {
        src.meta.checksums
    } else {
        Checksums::default()
    };
    let written = stored.written;
    let etag_value = hex(&written.md5);
    let last_modified_ms = now_ms();
    let record = ObjectRecord {
        bucket: bucket.to_owned(),
        key: input.key,
        size: written.chunk.size,
        etag: cipher
            .seal_etag(None, &etag_value)
            .map_err(|e| error::envelope(&e))?,
        last_modified_ms,
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
    gw.commit_object(ctx.bucket()?, &record, PutCondition::None, hold)
        .await?;
    Ok(S3Response::new(CopyObjectOutput {
        server_side_encryption: super::encryption::reported(),
        version_id: super::versions::response_version_id(ctx.bucket()?, &record),
        copy_source_version_id: src.version_shown.clone(),
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(etag(&etag_value)),
            last_modified: Some(timestamp(last_modified_ms)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

pub async fn upload_part_copy(
    gw: &Gateway,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let input = req.input;
    let n = part_number(input.part_number)?;
    let keys = KeyMemo::default();
    let upload = gw
        .load_upload(&ctx, &input.key, &input.upload_id, &keys)
        .await?;
    let src = gw
        .copy_source(
            &ctx,
            &input.copy_source,
            &Conditions {
                if_match: input.copy_source_if_match.as_ref(),
                if_none_match: input.copy_source_if_none_match.as_ref(),
                if_modified_since: input.copy_source_if_modified_since.as_ref(),
                if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
            },
        )
        .await?;
    let range = match &input.copy_source_range {
        Some(r) => copy_source_range(r, src.object.size)?,
        None => 0..src.object.size,
    };
    let placed = gw.upload_placement(&ctx, &upload).await?;
    let hold = gw
        .hold_quota(&ctx, None, range.end - range.start, 0)
        .await?;
    let cipher = gw
        .open_upload(
            &ctx.tenant.name,
            &upload,
            &ctx.justification_for("write"),
            &keys,
        )
        .await?;
    let stored = gw.copy_blob(&src, range, &placed, &cipher, n).await?;
    let recorded = gw
        .record_part(
            ctx.bucket()?,
            &upload.upload_id,
            n,
            stored,
            &cipher,
            Checksums::default(),
            hold,
        )
        .await?;
    Ok(S3Response::new(UploadPartCopyOutput {
        server_side_encryption: super::encryption::reported(),
        copy_source_version_id: src.version_shown.clone(),
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(etag(&recorded.etag)),
            last_modified: Some(timestamp(recorded.last_modified_ms)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

/// Fuzz target (bolero: 2,000 random cases under `cargo test`): the copy-source range is
/// accepted exactly when it names bytes of the source, and then as those bytes.
#[cfg(test)]
mod fuzz {
    use super::copy_source_range;
    use bolero::check;

    #[test]
    fn copy_source_ranges_match_the_model() {
        check!()
            .with_iterations(2_000)
            .with_type::<(u16, u16, u16)>()
            .for_each(|&(a, b, len)| {
                let (a, b, len) = (u64::from(a), u64::from(b), u64::from(len));
                let got = copy_source_range(&format!("bytes={a}-{b}"), len);
                if a <= b && b < len {
                    assert_eq!(got.ok(), Some(a..b + 1));
                } else {
                    assert!(got.is_err(), "bytes={a}-{b} of {len}");
                }
            });
        check!()
            .with_iterations(2_000)
            .with_type::<(String, u64)>()
            .for_each(|(s, len)| {
                if let Ok(r) = copy_source_range(s, *len) {
                    assert!(r.start < r.end && r.end <= *len, "{s:?} of {len}: {r:?}");
                }
            });
    }
}
