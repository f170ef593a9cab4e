//! The one place where catalog and site errors become S3 errors.

use obhut_catalog::CatalogError;
use obhut_sites::SiteError;
use obhut_trustee_client::TrusteeError;
use s3s::{S3Error, S3ErrorCode, s3_error};

pub fn catalog(e: CatalogError) -> S3Error {
    match e {
        CatalogError::PreconditionFailed(msg) => s3_error!(PreconditionFailed, "{msg}"),
        CatalogError::BucketNotEmpty(_) => s3_error!(BucketNotEmpty),
        CatalogError::NotFound { kind: "bucket", .. } => s3_error!(NoSuchBucket),
        CatalogError::NotFound { kind: "upload", .. } => s3_error!(NoSuchUpload),
        other => {
            tracing::error!(error = %other, "catalog failure");
            S3Error::with_message(
                S3ErrorCode::ServiceUnavailable,
                "the catalog is unavailable; retry later",
            )
        }
    }
}

pub fn site(e: &SiteError) -> S3Error {
    tracing::error!(error = %e, "site failure");
    S3Error::with_message(
        S3ErrorCode::ServiceUnavailable,
        format!("a storage site failed ({e}); nothing was acknowledged, retry later"),
    )
}

/// Trustee answers: unavailability is a 503 naming the cause; a refusal is AccessDenied.
pub fn trustee(e: TrusteeError) -> S3Error {
    match e {
        TrusteeError::Denied(_)
        | TrusteeError::TenantKeyDisabled(_)
        | TrusteeError::TenantKeyDestroyed(_) => S3Error::with_message(
            S3ErrorCode::AccessDenied,
            format!("the trustee refused the key: {e}"),
        ),
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

/// An object's key material failed verification: never serve, never guess.
pub fn envelope(e: &crate::keys::EnvelopeError) -> S3Error {
    tracing::error!(error = %e, "object key or metadata failed verification");
    S3Error::with_message(
        S3ErrorCode::InternalError,
        "the object's key or metadata failed verification; it is not served",
    )
}
