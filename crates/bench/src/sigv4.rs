//! AWS Signature Version 4 for the load generator's requests: obhut's own SigV4 crate
//! (`obhut-sigv4`), whose signer is tested against the examples of the S3 API reference.

pub use obhut_sigv4::{
    EMPTY_SHA256, Signer, UNSIGNED_PAYLOAD, amz_date_now, hex, sha256_hex, uri_encode,
};
