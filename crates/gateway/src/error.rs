//! The one place where catalog and site errors become S3 errors.

use obhut_catalog::CatalogError;
use obhut_sites::SiteError;
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
