//! Listings: ListObjects (v1 and v2), ListObjectVersions (versions and delete markers, newest
//! first within a key) and ListMultipartUploads, with their markers, continuation tokens and
//! URL encoding. The paging and delimiter roll-up are `crate::list`'s.
//!
//! Names, sizes and ETags are the tenant's data: nothing is listed without the bucket's key
//! from the trustee, ETags are opened from their sealed form (with each object's key, which
//! also checks that the record is bound to its name), and a record that fails that check is
//! left out of the listing and reported. Never sees object content.

use super::convert::{etag, owner, size_i64, timestamp};
use super::input::{page_size, wants_url_encoding};
use super::store::KeyMemo;
use super::versions::{parse_version_id, shown};
use crate::access::ReqCtx;
use crate::list::{list_page, list_uploads_page, list_versions_page, url_encode};
use crate::{Gateway, error};
use obhut_catalog::{ObjectRecord, Upload};
use s3s::dto::*;
use s3s::{S3ErrorCode, S3Request, S3Response, S3Result};

/// How names are returned: as they are, or URL-encoded (`encoding-type=url`).
#[derive(Clone, Copy)]
struct Names {
    encode: bool,
}

impl Names {
    fn of(e: Option<&EncodingType>) -> S3Result<Self> {
        Ok(Self {
            encode: wants_url_encoding(e)?,
        })
    }

    fn name(self, s: String) -> String {
        if self.encode { url_encode(&s) } else { s }
    }

    fn common_prefixes(self, prefixes: Vec<String>) -> Option<Vec<CommonPrefix>> {
        Some(
            prefixes
                .into_iter()
                .map(|p| CommonPrefix {
                    prefix: Some(self.name(p)),
                })
                .collect(),
        )
    }

    fn object(self, (o, e): (ObjectRecord, String), owner: Option<&Owner>) -> Object {
        Object {
            e_tag: Some(etag(&e)),
            owner: owner.cloned(),
            key: Some(self.name(o.key)),
            last_modified: Some(timestamp(o.last_modified_ms)),
            size: Some(size_i64(o.size)),
            storage_class: Some(ObjectStorageClass::from_static(
                ObjectStorageClass::STANDARD,
            )),
            ..Default::default()
        }
    }
}

/// Asks for the bucket's current key, so that nothing about the bucket's contents is answered
/// while the trustee is sealed, unreachable or refuses (e.g. after a crypto-shred).
async fn require_key(gw: &Gateway, ctx: &ReqCtx, keys: &KeyMemo) -> S3Result<()> {
    let bucket = ctx.bucket()?.name.as_str();
    gw.require_keys(&ctx.tenant.name, bucket, &ctx.justification, keys)
        .await
}

/// The listed objects with their ETags opened; a record that fails its integrity check is left
/// out (it was reported).
async fn opened(
    gw: &Gateway,
    ctx: &ReqCtx,
    keys: &KeyMemo,
    objects: Vec<ObjectRecord>,
) -> S3Result<Vec<(ObjectRecord, String)>> {
    gw.listed_etags(&ctx.tenant.name, objects, &ctx.justification, keys)
        .await
}

/// The listed uploads whose keys open where they are filed; the others are left out (they
/// were reported).
async fn opened_uploads(
    gw: &Gateway,
    ctx: &ReqCtx,
    keys: &KeyMemo,
    uploads: Vec<Upload>,
) -> S3Result<Vec<Upload>> {
    gw.listed_uploads(&ctx.tenant.name, uploads, &ctx.justification, keys)
        .await
}

/// A `delimiter` parameter sent empty is no delimiter, as S3 takes it: nothing is rolled up,
/// and none is answered.
fn given(delimiter: Option<String>) -> Option<String> {
    delimiter.filter(|d| !d.is_empty())
}

fn page_size_i32(max: usize) -> Option<i32> {
    Some(i32::try_from(max).unwrap_or(1000))
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
            error::with(
                S3ErrorCode::InvalidArgument,
                error::INVALID_CONTINUATION_TOKEN,
            )
        })
}

pub async fn objects_v1(
    gw: &Gateway,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let bucket = ctx.bucket()?;
    let keys = KeyMemo::default();
    require_key(gw, &ctx, &keys).await?;
    let mut i = req.input;
    i.delimiter = given(i.delimiter);
    let names = Names::of(i.encoding_type.as_ref())?;
    let max = page_size(i.max_keys, error::NEGATIVE_MAX_KEYS)?;
    let prefix = i.prefix.clone().unwrap_or_default();
    // ListObjects (v1) names each object's owner, as S3 does.
    let owner = owner(&ctx.tenant);
    let page = list_page(
        gw.catalog.as_ref(),
        bucket,
        &prefix,
        i.delimiter.as_deref(),
        i.marker.as_deref().filter(|m| !m.is_empty()),
        max,
    )
    .await?;
    let next_marker = (page.truncated && i.delimiter.is_some())
        .then(|| page.last.clone().map(|l| names.name(l)))
        .flatten();
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(i.bucket),
        prefix: Some(names.name(prefix)),
        marker: Some(names.name(i.marker.unwrap_or_default())),
        max_keys: page_size_i32(max),
        is_truncated: Some(page.truncated),
        contents: Some(
            opened(gw, &ctx, &keys, page.objects)
                .await?
                .into_iter()
                .map(|o| names.object(o, Some(&owner)))
                .collect(),
        ),
        common_prefixes: names.common_prefixes(page.common_prefixes),
        delimiter: i.delimiter.map(|d| names.name(d)),
        next_marker,
        encoding_type: i.encoding_type,
        ..Default::default()
    }))
}

pub async fn objects_v2(
    gw: &Gateway,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let ctx = ReqCtx::of(&req)?;
    let bucket = ctx.bucket()?;
    let keys = KeyMemo::default();
    require_key(gw, &ctx, &keys).await?;
    let mut i = req.input;
    i.delimiter = given(i.delimiter);
    let names = Names::of(i.encoding_type.as_ref())?;
    let max = page_size(i.max_keys, error::NEGATIVE_MAX_KEYS)?;
    let prefix = i.prefix.clone().unwrap_or_default();
    // ListObjectsV2 names owners only when asked to (`fetch-owner=true`).
    let fetch_owner = (i.fetch_owner == Some(true)).then(|| owner(&ctx.tenant));
    let after = match &i.continuation_token {
        Some(tok) => Some(decode_token(tok)?),
        None => i.start_after.clone().filter(|s| !s.is_empty()),
    };
    let page = list_page(
        gw.catalog.as_ref(),
        bucket,
        &prefix,
        i.delimiter.as_deref(),
        after.as_deref(),
        max,
    )
    .await?;
    let contents: Vec<Object> = opened(gw, &ctx, &keys, page.objects)
        .await?
        .into_iter()
        .map(|o| names.object(o, fetch_owner.as_ref()))
        .collect();
    // What is answered: records that failed their integrity check are not counted.
    let key_count = contents.len() + page.common_prefixes.len();
    let next = page
        .truncated
        .then(|| page.last.as_deref().map(encode_token))
        .flatten();
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(i.bucket),
        prefix: Some(names.name(prefix)),
        max_keys: page_size_i32(max),
        key_count: Some(i32::try_from(key_count).unwrap_or(i32::MAX)),
        continuation_token: i.continuation_token,
        next_continuation_token: next,
        is_truncated: Some(page.truncated),
        contents: Some(contents),
        common_prefixes: names.common_prefixes(page.common_prefixes),
        delimiter: i.delimiter.map(|d| names.name(d)),
        encoding_type: i.encoding_type,
        start_after: i.start_after.map(|s| names.name(s)),
        ..Default::default()
    }))
}

pub async fn object_versions(
    gw: &Gateway,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let bucket = ctx.bucket()?;
    let keys = KeyMemo::default();
    require_key(gw, &ctx, &keys).await?;
    let mut i = req.input;
    i.delimiter = given(i.delimiter);
    let names = Names::of(i.encoding_type.as_ref())?;
    let max = page_size(i.max_keys, error::NEGATIVE_MAX_KEYS)?;
    let prefix = i.prefix.clone().unwrap_or_default();
    let key_marker = i.key_marker.as_deref().filter(|m| !m.is_empty());
    let version_marker = match i.version_id_marker.as_deref().filter(|m| !m.is_empty()) {
        None => None,
        Some(_) if key_marker.is_none() => {
            return Err(error::with(
                S3ErrorCode::InvalidArgument,
                error::VERSION_ID_MARKER_WITHOUT_KEY_MARKER,
            ));
        }
        Some(v) => Some(parse_version_id(v)?),
    };
    let page = list_versions_page(
        gw.catalog.as_ref(),
        bucket,
        &prefix,
        i.delimiter.as_deref(),
        key_marker,
        version_marker.as_ref().map(Option::as_deref),
        max,
    )
    .await?;
    // Delete markers have no ETag to open; versions are opened (and checked) like objects.
    let mut markers = Vec::new();
    let mut records = Vec::new();
    let mut latest = std::collections::HashSet::new();
    for v in page.entries {
        if v.delete_marker {
            markers.push(DeleteMarkerEntry {
                is_latest: Some(v.is_latest),
                key: Some(names.name(v.object.key)),
                last_modified: Some(timestamp(v.object.last_modified_ms)),
                owner: Some(owner(&ctx.tenant)),
                version_id: Some(shown(v.object.version_id.as_deref())),
            });
        } else {
            if v.is_latest {
                latest.insert((v.object.key.clone(), v.object.version_id.clone()));
            }
            records.push(v.object);
        }
    }
    let versions = opened(gw, &ctx, &keys, records)
        .await?
        .into_iter()
        .map(|(o, e)| ObjectVersion {
            e_tag: Some(etag(&e)),
            is_latest: Some(latest.contains(&(o.key.clone(), o.version_id.clone()))),
            last_modified: Some(timestamp(o.last_modified_ms)),
            size: Some(size_i64(o.size)),
            storage_class: Some(ObjectVersionStorageClass::from_static(
                ObjectVersionStorageClass::STANDARD,
            )),
            owner: Some(owner(&ctx.tenant)),
            version_id: Some(shown(o.version_id.as_deref())),
            key: Some(names.name(o.key)),
            ..Default::default()
        })
        .collect();
    let (next_key, next_version) = match page.next.filter(|_| page.truncated) {
        Some((k, v)) => (Some(names.name(k)), v.map(|v| shown(v.as_deref()))),
        None => (None, None),
    };
    Ok(S3Response::new(ListObjectVersionsOutput {
        name: Some(i.bucket),
        prefix: Some(names.name(prefix)),
        key_marker: i.key_marker.map(|k| names.name(k)),
        version_id_marker: i.version_id_marker,
        max_keys: page_size_i32(max),
        is_truncated: Some(page.truncated),
        next_key_marker: next_key,
        next_version_id_marker: next_version,
        versions: Some(versions),
        delete_markers: Some(markers),
        common_prefixes: names.common_prefixes(page.common_prefixes),
        delimiter: i.delimiter.map(|d| names.name(d)),
        encoding_type: i.encoding_type,
        ..Default::default()
    }))
}

pub async fn multipart_uploads(
    gw: &Gateway,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let bucket = ctx.bucket()?;
    let keys = KeyMemo::default();
    require_key(gw, &ctx, &keys).await?;
    let mut i = req.input;
    i.delimiter = given(i.delimiter);
    let names = Names::of(i.encoding_type.as_ref())?;
    let max = page_size(i.max_uploads, error::NEGATIVE_MAX_UPLOADS)?;
    let prefix = i.prefix.clone().unwrap_or_default();
    let after = i
        .key_marker
        .as_deref()
        .filter(|k| !k.is_empty())
        .map(|k| (k, i.upload_id_marker.as_deref().unwrap_or("")));
    let page = list_uploads_page(
        gw.catalog.as_ref(),
        bucket,
        &prefix,
        i.delimiter.as_deref(),
        after,
        max,
    )
    .await?;
    let owner = owner(&ctx.tenant);
    let uploads = opened_uploads(gw, &ctx, &keys, page.uploads)
        .await?
        .into_iter()
        .map(|u| MultipartUpload {
            initiated: Some(timestamp(u.initiated_ms)),
            initiator: Some(Initiator {
                display_name: owner.display_name.clone(),
                id: owner.id.clone(),
            }),
            owner: Some(owner.clone()),
            key: Some(names.name(u.key)),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            upload_id: Some(u.upload_id),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(i.bucket),
        prefix: Some(names.name(prefix)),
        key_marker: i.key_marker.map(|k| names.name(k)),
        upload_id_marker: i.upload_id_marker,
        max_uploads: page_size_i32(max),
        is_truncated: Some(page.truncated),
        next_key_marker: page.next_key.map(|k| names.name(k)),
        next_upload_id_marker: page.next_upload_id,
        delimiter: i.delimiter.map(|d| names.name(d)),
        encoding_type: i.encoding_type,
        common_prefixes: names.common_prefixes(page.common_prefixes),
        uploads: Some(uploads),
        ..Default::default()
    }))
}

/// Fuzz target (bolero: 2,000 random cases under `cargo test`): continuation tokens come back
/// from clients, so any token is a key or InvalidArgument, and every key survives the trip.
#[cfg(test)]
mod fuzz {
    use super::{decode_token, encode_token};
    use bolero::check;

    #[test]
    fn continuation_tokens_round_trip_and_refuse_garbage() {
        check!()
            .with_iterations(2_000)
            .with_type::<String>()
            .for_each(|key| {
                assert_eq!(decode_token(&encode_token(key)).ok().as_ref(), Some(key));
                let _ = decode_token(key);
            });
    }
}
