//! Checks on request input that several operations share: object keys, ACLs, user metadata,
//! part numbers, page sizes and the URL encoding of listings.
//!
//! Pure functions over request fields; nothing here sees the catalog or object content.

use crate::error;
use obhut_core::validate_object_key;
use s3s::dto::{EncodingType, Metadata, ObjectCannedACL};
use s3s::{S3ErrorCode, S3Result, s3_error};

const MAX_PART_NUMBER: i32 = 10_000;
/// The most entries one listing page returns, and the default page size.
pub const MAX_PAGE: usize = 1000;
/// S3's limit on user metadata: the UTF-8 bytes of all keys and values together.
const MAX_USER_METADATA: usize = 2048;

pub fn check_key(key: &str) -> S3Result<()> {
    validate_object_key(key).map_err(|e| match e {
        obhut_core::NameError::KeyTooLong => s3_error!(KeyTooLongError),
        other => s3_error!(InvalidArgument, "{other}"),
    })
}

/// Checks what every write of a new object names: its key, its ACL headers and its user
/// metadata. A macro because PutObject, CopyObject and CreateMultipartUpload take distinct input
/// types with the same fields.
macro_rules! check_new_object {
    ($input:expr) => {
        $crate::s3::input::check_key(&$input.key)
            .and_then(|()| {
                $crate::s3::input::check_object_acl(&$crate::s3::input::AclRequest {
                    acl: $input.acl.as_ref(),
                    grant_full_control: $input.grant_full_control.as_ref(),
                    grant_read: $input.grant_read.as_ref(),
                    grant_read_acp: $input.grant_read_acp.as_ref(),
                    grant_write_acp: $input.grant_write_acp.as_ref(),
                })
            })
            .and_then(|()| $crate::s3::input::check_user_metadata($input.metadata.as_ref()))
            .and_then(|()| {
                $crate::s3::encryption::check_requested(
                    $input.server_side_encryption.as_ref(),
                    $input.ssekms_key_id.as_deref(),
                    $input.sse_customer_algorithm.as_deref(),
                )
            })
    };
}
pub(crate) use check_new_object;

/// The ACL headers an object write may carry.
pub struct AclRequest<'a> {
    pub acl: Option<&'a ObjectCannedACL>,
    pub grant_full_control: Option<&'a String>,
    pub grant_read: Option<&'a String>,
    pub grant_read_acp: Option<&'a String>,
    pub grant_write_acp: Option<&'a String>,
}

/// Bucket-owner-enforced object ownership: only ACLs that grant nothing extra are accepted.
pub fn check_object_acl(r: &AclRequest<'_>) -> S3Result<()> {
    let grants = r.grant_full_control.is_some()
        || r.grant_read.is_some()
        || r.grant_read_acp.is_some()
        || r.grant_write_acp.is_some();
    let ok = r
        .acl
        .is_none_or(|a| matches!(a.as_str(), "private" | "bucket-owner-full-control"));
    if ok && !grants {
        Ok(())
    } else {
        Err(error::with(
            S3ErrorCode::AccessControlListNotSupported,
            error::NO_ACLS,
        ))
    }
}

pub fn check_user_metadata(m: Option<&Metadata>) -> S3Result<()> {
    let size: usize = m.map_or(0, |m| m.iter().map(|(k, v)| k.len() + v.len()).sum());
    if size > MAX_USER_METADATA {
        return Err(error::with(
            S3ErrorCode::MetadataTooLarge,
            error::METADATA_TOO_LARGE,
        ));
    }
    Ok(())
}

pub fn part_number(n: i32) -> S3Result<u32> {
    if (1..=MAX_PART_NUMBER).contains(&n) {
        Ok(u32::try_from(n).unwrap_or(1))
    } else {
        Err(error::with(
            S3ErrorCode::InvalidArgument,
            error::PART_NUMBER_OUT_OF_BOUNDS,
        ))
    }
}

/// The index of part `n` of an object with `parts` parts (GET and HEAD with `partNumber`).
pub fn part_number_index(n: i32, parts: usize) -> S3Result<usize> {
    let n = part_number(n)? as usize;
    if n > parts {
        let mut e = error::with(
            S3ErrorCode::Custom("InvalidPartNumber".into()),
            error::INVALID_PART_NUMBER,
        );
        e.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
        return Err(e);
    }
    Ok(n - 1)
}

/// A page size (`max-keys`, `max-parts`, `max-uploads`): at most [`MAX_PAGE`], never negative.
pub fn page_size(n: Option<i32>, negative: &'static str) -> S3Result<usize> {
    match n {
        None => Ok(MAX_PAGE),
        Some(n) if n < 0 => Err(error::with(S3ErrorCode::InvalidArgument, negative)),
        Some(n) => Ok(usize::try_from(n).unwrap_or(0).min(MAX_PAGE)),
    }
}

pub fn wants_url_encoding(e: Option<&EncodingType>) -> S3Result<bool> {
    match e.map(EncodingType::as_str) {
        None => Ok(false),
        Some("url") => Ok(true),
        Some(other) => Err(s3_error!(
            InvalidArgument,
            "Invalid Encoding Method specified in Request: {other}"
        )),
    }
}
