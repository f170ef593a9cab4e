//! Versioning: PutBucketVersioning and GetBucketVersioning, version ids as S3 shows them, the
//! lookup of a version for GET, HEAD and CopyObject (delete markers answered with S3's 404 or
//! 405 and `x-amz-delete-marker`), and DELETE in a versioned bucket (delete markers, or removing
//! one version for good).
//!
//! A version's id is the hex of the random version id its object key is bound to (the AAD of
//! the wrapped key and of every segment), so a record moved to another version's row no longer
//! matches its envelope (`Gateway::open_object`). Sees catalog records and version ids, never
//! keys or object content.

use super::convert::now_ms;
use crate::access::ReqCtx;
use crate::{Gateway, error};
use obhut_catalog::{Bucket, ObjectRecord, ObjectVersion, Versioning};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

/// The version id S3 shows for the `null` version.
pub const NULL_VERSION: &str = "null";

/// A version id as a request gives it: `null`, or 32 lowercase hex digits (what obhut hands
/// out); anything else names no version (`InvalidArgument`, as S3 answers).
pub fn parse_version_id(given: &str) -> S3Result<Option<String>> {
    if given == NULL_VERSION {
        return Ok(None);
    }
    if given.len() == 32
        && given
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return Ok(Some(given.to_owned()));
    }
    Err(error::with(
        S3ErrorCode::InvalidArgument,
        error::INVALID_VERSION_ID,
    ))
}

/// The id to show for a version (`null` for the null version).
#[must_use]
pub fn shown(version_id: Option<&str>) -> String {
    version_id.unwrap_or(NULL_VERSION).to_owned()
}

/// `x-amz-version-id` of a response about `o` in `bucket`: absent for a bucket that was never
/// versioned, as S3 answers.
#[must_use]
pub fn response_version_id(bucket: &Bucket, o: &ObjectRecord) -> Option<String> {
    (bucket.versioning != Versioning::Unversioned || o.version_id.is_some())
        .then(|| shown(o.version_id.as_deref()))
}

/// A fresh version id for a delete marker (versions of objects take their key's).
fn new_marker_id() -> S3Result<String> {
    let mut id = [0u8; 16];
    obhut_crypto::random_bytes(&mut id).map_err(|e| error::envelope(&e.into()))?;
    Ok(super::convert::hex(&id))
}

/// An error carrying `x-amz-delete-marker: true` and the marker's version id.
fn about_delete_marker(mut e: S3Error, marker: &ObjectRecord) -> S3Error {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "x-amz-delete-marker",
        http::HeaderValue::from_static("true"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&shown(marker.version_id.as_deref())) {
        headers.insert("x-amz-version-id", v);
    }
    e.set_headers(headers);
    e
}

impl Gateway {
    /// The object a GET, HEAD or copy reads: the current one, or the version `version_id` asks
    /// for. A key whose newest entry is a delete marker is `NoSuchKey` with
    /// `x-amz-delete-marker: true`; a delete marker asked for by id is `MethodNotAllowed`.
    pub(crate) async fn object_version(
        &self,
        bucket: &Bucket,
        key: &str,
        version_id: Option<&str>,
    ) -> S3Result<ObjectRecord> {
        let Some(given) = version_id else {
            if let Some(o) = self
                .catalog
                .get_object(&bucket.name, key)
                .await
                .map_err(error::catalog)?
            {
                return Ok(o);
            }
            let missing = error::with(S3ErrorCode::NoSuchKey, error::NO_SUCH_KEY);
            if bucket.versioning == Versioning::Unversioned {
                return Err(missing);
            }
            return Err(
                match self
                    .catalog
                    .latest_version(&bucket.name, key)
                    .await
                    .map_err(error::catalog)?
                {
                    Some(v) if v.delete_marker => about_delete_marker(missing, &v.object),
                    _ => missing,
                },
            );
        };
        let wanted = parse_version_id(given)?;
        match self
            .catalog
            .get_object_version(&bucket.name, key, wanted.as_deref())
            .await
            .map_err(error::catalog)?
        {
            None => Err(error::with(
                S3ErrorCode::NoSuchVersion,
                error::NO_SUCH_VERSION,
            )),
            Some(v) if v.delete_marker => Err(about_delete_marker(
                error::with(S3ErrorCode::MethodNotAllowed, error::DELETE_MARKER_METHOD),
                &v.object,
            )),
            Some(v) => Ok(v.object),
        }
    }

    /// DELETE of one key: in a bucket that was never versioned the object goes; with a
    /// version id that version goes for good; else a delete marker is added (a `null` one when
    /// versioning is suspended). Returns the version id to answer with and whether it is (or
    /// was) a delete marker.
    pub(crate) async fn delete_key(
        &self,
        bucket: &Bucket,
        key: &str,
        version_id: Option<&str>,
        bypass_governance: bool,
    ) -> S3Result<(Option<String>, bool)> {
        if let Some(given) = version_id {
            let wanted = parse_version_id(given)?;
            // A version an object lock holds is never removed (a delete marker over it is).
            self.check_removable(bucket, key, wanted.as_deref(), bypass_governance)
                .await?;
            let removed: Option<ObjectVersion> = self
                .catalog
                .delete_object_version(bucket, key, wanted.as_deref())
                .await
                .map_err(error::catalog)?;
            let marker = removed.as_ref().is_some_and(|r| r.delete_marker);
            if let Some(r) = removed.filter(|r| !r.delete_marker) {
                self.discard_object(r.object);
            }
            return Ok((Some(given.to_owned()), marker));
        }
        let marker_id = match bucket.versioning {
            Versioning::Unversioned => {
                if let Some(old) = self
                    .catalog
                    .delete_object(bucket, key)
                    .await
                    .map_err(error::catalog)?
                {
                    self.discard_object(old);
                }
                return Ok((None, false));
            }
            Versioning::Enabled => Some(new_marker_id()?),
            Versioning::Suspended => None,
        };
        let marker = ObjectRecord {
            bucket: bucket.name.clone(),
            key: key.to_owned(),
            size: 0,
            etag: String::new(),
            last_modified_ms: now_ms(),
            envelope: Vec::new(),
            meta: Vec::new(),
            sites: Vec::new(),
            chunks: Vec::new(),
            version_id: marker_id,
        };
        for garbage in self
            .catalog
            .put_delete_marker(bucket, &marker)
            .await
            .map_err(error::catalog)?
        {
            self.discard_object(garbage);
        }
        Ok((Some(shown(marker.version_id.as_deref())), true))
    }
}

pub async fn put_bucket_versioning(
    gw: &Gateway,
    req: S3Request<PutBucketVersioningInput>,
) -> S3Result<S3Response<PutBucketVersioningOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let bucket = ctx.bucket()?.clone();
    let config = req.input.versioning_configuration;
    if config
        .mfa_delete
        .as_ref()
        .is_some_and(|m| m.as_str() == MFADelete::ENABLED)
    {
        return Err(error::with(
            S3ErrorCode::NotImplemented,
            error::MFA_DELETE_UNSUPPORTED,
        ));
    }
    let state = match config.status.as_ref().map(BucketVersioningStatus::as_str) {
        Some(BucketVersioningStatus::ENABLED) => Versioning::Enabled,
        Some(BucketVersioningStatus::SUSPENDED) => Versioning::Suspended,
        _ => {
            return Err(error::with(
                S3ErrorCode::IllegalVersioningConfigurationException,
                error::ILLEGAL_VERSIONING_CONFIGURATION,
            ));
        }
    };
    if state != Versioning::Enabled && gw.bucket_lock(&bucket).await?.is_some() {
        return Err(error::with(
            S3ErrorCode::InvalidBucketState,
            "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed.",
        ));
    }
    gw.catalog
        .set_bucket_versioning(&bucket, state)
        .await
        .map_err(error::catalog)?;
    Ok(S3Response::new(PutBucketVersioningOutput::default()))
}

pub fn get_bucket_versioning(
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let ctx = ReqCtx::of(&req)?;
    let status = match ctx.bucket()?.versioning {
        Versioning::Unversioned => None,
        Versioning::Enabled => Some(BucketVersioningStatus::from_static(
            BucketVersioningStatus::ENABLED,
        )),
        Versioning::Suspended => Some(BucketVersioningStatus::from_static(
            BucketVersioningStatus::SUSPENDED,
        )),
    };
    Ok(S3Response::new(GetBucketVersioningOutput {
        status,
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ids_are_null_or_32_lowercase_hex_digits() {
        assert_eq!(parse_version_id("null").ok(), Some(None));
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(parse_version_id(id).ok(), Some(Some(id.to_owned())));
        for bad in [
            "",
            "NULL",
            "0123456789ABCDEF0123456789ABCDEF",
            "xyz",
            &id[..31],
            "../x",
        ] {
            let e = parse_version_id(bad).expect_err(bad);
            assert_eq!(e.code(), &S3ErrorCode::InvalidArgument, "{bad}");
        }
    }
}
