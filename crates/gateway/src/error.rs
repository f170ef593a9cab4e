//! The one place where catalog, site, placement and trustee errors become S3 errors, and where
//! the messages of the S3 errors the gateway answers are named.
//!
//! Operations never match on a catalog or site error themselves; they pass it here. Nothing
//! here sees request bodies or keys.

use obhut_catalog::CatalogError;
use obhut_sites::SiteError;
use obhut_trustee_client::TrusteeError;
use s3s::{S3Error, S3ErrorCode, s3_error};

pub const ACCESS_DENIED: &str = "Access Denied";
pub const ANONYMOUS: &str = "anonymous access is not allowed";
pub const KEY_TENANT_GONE: &str = "the access key's tenant no longer exists";
pub const GRANT_TENANT_GONE: &str = "the grant's tenant no longer exists";
pub const GRANT_WITHOUT_SESSION_TOKEN: &str =
    "grant credentials are valid only with their session token (AWS_SESSION_TOKEN)";
pub const NOT_AUTHORISED: &str = "request was not authorised";
pub const NO_SUCH_BUCKET: &str = "The specified bucket does not exist";
pub const NO_SUCH_KEY: &str = "The specified key does not exist.";
pub const NO_SUCH_UPLOAD: &str = "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.";
pub const BUCKET_NOT_EMPTY: &str = "The bucket you tried to delete is not empty";
pub const BUCKET_OWNED_BY_YOU: &str =
    "Your previous request to create the named bucket succeeded and you already own it.";
pub const BUCKET_TAKEN: &str = "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.";
pub const NO_ACLS: &str = "The bucket does not allow ACLs";
pub const PRECONDITION_FAILED: &str =
    "At least one of the pre-conditions you specified did not hold";
pub const INVALID_RANGE: &str = "The requested range is not satisfiable";
pub const INVALID_PART_NUMBER: &str = "The requested partnumber is not satisfiable";
pub const PART_NUMBER_OUT_OF_BOUNDS: &str =
    "Part number must be an integer between 1 and 10000, inclusive";
pub const INVALID_COPY_SOURCE_RANGE: &str = "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy";
pub const COPY_FROM_ACCESS_POINT: &str = "copying from an access point is not supported";
pub const INVALID_COPY_SOURCE: &str = "The x-amz-copy-source header must be given once, as bucket/key (URL-encoded), optionally followed by ?versionId=";
pub const COPY_TO_ITSELF: &str = "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.";
pub const METADATA_TOO_LARGE: &str =
    "Your metadata headers exceed the maximum allowed metadata size of 2 KB";
pub const INVALID_CONTENT_MD5: &str = "The Content-MD5 you specified was not valid";
pub const CONTENT_MD5_MISMATCH: &str =
    "The Content-MD5 you specified did not match what we received";
pub const MALFORMED_XML: &str =
    "The XML you provided was not well-formed or did not validate against our published schema";
pub const NO_PARTS: &str = "You must specify at least one part";
pub const PART_WITHOUT_NUMBER: &str = "A part is missing its PartNumber";
pub const INVALID_PART_ORDER: &str = "The list of parts was not in ascending order. The parts list must be specified in order by part number.";
pub const INVALID_PART: &str = "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.";
pub const PART_REPLACED: &str = "One or more of the specified parts was replaced while the upload was being completed; list the parts and complete again.";
pub const ENTITY_TOO_SMALL: &str =
    "Your proposed upload is smaller than the minimum allowed object size.";
pub const MPU_SIZE_MISMATCH: &str =
    "The provided MpuObjectSize does not match the size of the parts";
pub const PARTS_ON_DIFFERENT_SITES: &str =
    "parts of this upload were placed on different sites; re-upload the affected parts";
pub const UPLOAD_OUTSIDE_POLICY: &str =
    "this upload holds or would hold data outside the bucket's residency policy";
pub const NEGATIVE_MAX_KEYS: &str = "max-keys must not be negative";
pub const NEGATIVE_MAX_PARTS: &str = "max-parts must not be negative";
pub const NEGATIVE_MAX_UPLOADS: &str = "max-uploads must not be negative";
pub const INVALID_CONTINUATION_TOKEN: &str = "The continuation token provided is incorrect";
pub const INVALID_MAX_BUCKETS: &str = "Argument max-buckets must be an integer between 1 and 10000";
pub const IF_NONE_MATCH_ONLY_ANY: &str = "If-None-Match on writes supports only '*'";
pub const IF_MATCH_NEEDS_ETAG: &str = "If-Match on writes needs an ETag";
pub const IF_MATCH_AND_IF_NONE_MATCH: &str = "If-Match and If-None-Match cannot be combined";
pub const CATALOG_UNAVAILABLE: &str = "the catalog is unavailable; retry later";
pub const CATALOG_BUSY: &str =
    "the upload's parts are being moved between sites by maintenance; retry the request";
pub const OBJECT_NOT_VERIFIED: &str =
    "the object's key or metadata failed verification; it is not served";
pub const OBJECT_FAILED_INTEGRITY: &str = "the catalog record of this object or upload failed its \
     integrity check (it is not bound to this tenant, bucket and name); nothing is served from it, \
     and the trustee's log records the alarm";
pub const LEGACY_RECORD_PENDING: &str = "this object's record is being upgraded to the current \
     format, which needs the trustee; retry later";
pub const MALFORMED_BUCKET_KEY: &str = "malformed bucket key record";
pub const BUCKET_WITHOUT_KEY: &str = "the bucket has no key";
pub const STORED_RECORD_CORRUPT: &str =
    "a stored record of this object or upload is corrupt; it is not served";
pub const NO_SUCH_VERSION: &str = "The specified version does not exist.";
pub const INVALID_VERSION_ID: &str = "Invalid version id specified";
pub const INVALID_VERSION_ID_MARKER: &str =
    "The version-id-marker does not name a version of the key-marker's key";
pub const VERSION_ID_MARKER_WITHOUT_KEY_MARKER: &str =
    "A version-id marker cannot be specified without a key marker.";
pub const DELETE_MARKER_METHOD: &str = "The specified method is not allowed against this resource.";
pub const ILLEGAL_VERSIONING_CONFIGURATION: &str = "The versioning configuration specified in the request is invalid: Status must be Enabled or Suspended";
pub const MFA_DELETE_UNSUPPORTED: &str = "MFA delete is not supported";
pub const VERSION_NOT_BOUND: &str =
    "the version id of this record is not the one its key is bound to";
pub const NO_CHECKED_BUCKET: &str = "the request's bucket was not checked";

/// An S3 error with one of the messages above (or another fixed text).
pub fn with(code: S3ErrorCode, message: &'static str) -> S3Error {
    S3Error::with_message(code, message)
}

pub fn catalog(e: CatalogError) -> S3Error {
    match e {
        CatalogError::PreconditionFailed(msg) => s3_error!(PreconditionFailed, "{msg}"),
        CatalogError::BucketNotEmpty(_) => with(S3ErrorCode::BucketNotEmpty, BUCKET_NOT_EMPTY),
        CatalogError::NotFound { kind: "bucket", .. } => {
            with(S3ErrorCode::NoSuchBucket, NO_SUCH_BUCKET)
        }
        CatalogError::NotFound { kind: "upload", .. } => {
            with(S3ErrorCode::NoSuchUpload, NO_SUCH_UPLOAD)
        }
        // The only conflict the catalog reports: a part re-uploaded during completion.
        CatalogError::Conflict(_) => with(S3ErrorCode::InvalidPart, PART_REPLACED),
        // Maintenance moved what the request read (a part during a drain): retrying succeeds.
        CatalogError::Busy(_) => with(S3ErrorCode::ServiceUnavailable, CATALOG_BUSY),
        CatalogError::QuotaExceeded {
            kind, what, limit, ..
        } => quota_exceeded(kind, what, limit),
        other => {
            tracing::error!(error = %other, "catalog failure");
            with(S3ErrorCode::ServiceUnavailable, CATALOG_UNAVAILABLE)
        }
    }
}

/// A write refused by a quota: `QuotaExceeded`, 403, as Ceph RGW answers it. The message names
/// the limit (the caller's own tenant's or bucket's), never another tenant's state.
pub fn quota_exceeded(kind: &str, what: &str, limit: u64) -> S3Error {
    let mut err = S3Error::with_message(
        S3ErrorCode::Custom("QuotaExceeded".into()),
        format!(
            "The {kind} quota of {limit} {what} would be exceeded by this write; nothing was stored. Delete objects or abort unfinished multipart uploads, or ask for a larger quota."
        ),
    );
    err.set_status_code(http::StatusCode::FORBIDDEN);
    err
}

/// A bucket name that exists already: the caller's own, or someone else's.
pub fn bucket_exists(owner: &str, caller: &str) -> S3Error {
    if owner == caller {
        with(S3ErrorCode::BucketAlreadyOwnedByYou, BUCKET_OWNED_BY_YOU)
    } else {
        with(S3ErrorCode::BucketAlreadyExists, BUCKET_TAKEN)
    }
}

/// Creating a bucket for `caller`: a name taken meanwhile is told apart by its owner.
pub fn bucket_creation(e: CatalogError, caller: &str) -> S3Error {
    match e {
        CatalogError::BucketExists { owner, .. } => bucket_exists(&owner, caller),
        other => catalog(other),
    }
}

pub fn site(e: &SiteError) -> S3Error {
    tracing::error!(error = %e, "site failure");
    S3Error::with_message(
        S3ErrorCode::ServiceUnavailable,
        format!("a storage site failed ({e}); nothing was acknowledged, retry later"),
    )
}

/// The bucket's residency policy could not be had: nothing is placed without it.
pub fn policy(e: obhut_maintenance::PolicyError) -> S3Error {
    match e {
        obhut_maintenance::PolicyError::Catalog(e) => catalog(e),
        other => {
            tracing::error!(error = %other.logged(), "residency policy unavailable");
            S3Error::with_message(
                S3ErrorCode::ServiceUnavailable,
                format!("write refused: {other}; retry when the trustee is back"),
            )
        }
    }
}

/// No set of sites satisfies the bucket's residency policy.
pub fn placement(e: &impl std::fmt::Display) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::ServiceUnavailable,
        format!("write refused: {e}"),
    )
}

/// A bucket key version the catalog should hold but does not.
pub fn missing_bucket_key(version: u32) -> S3Error {
    tracing::error!(version, "bucket key version missing from the catalog");
    S3Error::with_message(
        S3ErrorCode::InternalError,
        format!("bucket key version {version} is missing from the catalog"),
    )
}

/// A stored record (a part's checksums or ETag) that does not parse: never guessed, never
/// silently empty.
pub fn corrupt_record(what: &str, e: &dyn std::fmt::Display) -> S3Error {
    tracing::error!(record = what, error = %e, "stored record does not parse");
    with(S3ErrorCode::InternalError, STORED_RECORD_CORRUPT)
}

/// Trustee answers: unavailability is a 503 naming the cause; a refusal is AccessDenied.
pub fn trustee(e: TrusteeError) -> S3Error {
    match e {
        TrusteeError::Denied(_)
        | TrusteeError::ObjectKeysOnly(_)
        | TrusteeError::TenantKeyDisabled(_)
        | TrusteeError::TenantKeyDestroyed(_) => S3Error::with_message(
            S3ErrorCode::AccessDenied,
            format!("the trustee refused the key: {e}"),
        ),
        TrusteeError::Disconnected(_) => {
            S3Error::with_message(S3ErrorCode::ServiceUnavailable, e.to_string())
        }
        TrusteeError::Sealed(..) | TrusteeError::Unavailable(_) => S3Error::with_message(
            S3ErrorCode::ServiceUnavailable,
            format!("{e}; retry when the trustee is back"),
        ),
        other => {
            tracing::error!(error = %other, "trustee failure");
            S3Error::with_message(
                S3ErrorCode::ServiceUnavailable,
                format!("the trustee could not serve the key: {other}"),
            )
        }
    }
}

/// A catalog record that failed its integrity check (its key is not bound to the tenant,
/// bucket and name it is filed under, or its sealed fields do not open): `InvalidObjectState`,
/// HTTP 409. Not a server fault (500) and not a permission problem (403): the record exists
/// but is in no state to be served. The caller has reported it to the trustee's log.
pub fn integrity() -> S3Error {
    let mut e = with(S3ErrorCode::InvalidObjectState, OBJECT_FAILED_INTEGRITY);
    e.set_status_code(http::StatusCode::CONFLICT);
    e
}

/// A record in the format of the release before, met before the upgrade has rebound it.
pub fn legacy_pending() -> S3Error {
    with(S3ErrorCode::ServiceUnavailable, LEGACY_RECORD_PENDING)
}

/// An object's key material failed verification: never serve, never guess.
pub fn envelope(e: &crate::keys::EnvelopeError) -> S3Error {
    tracing::error!(error = %e, "object key or metadata failed verification");
    with(S3ErrorCode::InternalError, OBJECT_NOT_VERIFIED)
}
