//! Integrity of what clients send and of what parts recorded: Content-MD5 and the S3
//! checksums (CRC32, CRC32C, CRC64NVME, SHA1, SHA256) from headers or aws-chunked trailers,
//! and the stored checksums of multipart parts.
//!
//! Sees digests only, never keys; the bytes themselves are hashed in `crate::datapath`.

use crate::datapath::Verify;
use crate::error;
use crate::meta::Checksums;
use bytes::Bytes;
use s3s::checksum::ChecksumHasher;
use s3s::dto::{ChecksumAlgorithm, StreamingBlob};
use s3s::{S3ErrorCode, S3Request, S3Result, s3_error};

/// Which checksums to compute for an upload: those given as headers, the declared algorithm,
/// and any announced in `x-amz-trailer`.
pub fn checksum_hasher(
    headers: &http::HeaderMap,
    algorithm: Option<&ChecksumAlgorithm>,
    given: &Checksums,
) -> S3Result<ChecksumHasher> {
    let mut h = ChecksumHasher::default();
    let mut enable = |name: &str| -> S3Result<()> {
        match name.to_ascii_uppercase().as_str() {
            "CRC32" => h.crc32 = Some(Default::default()),
            "CRC32C" => h.crc32c = Some(Default::default()),
            "CRC64NVME" => h.crc64nvme = Some(Default::default()),
            "SHA1" => h.sha1 = Some(Default::default()),
            "SHA256" => h.sha256 = Some(Default::default()),
            other => {
                return Err(s3_error!(
                    InvalidRequest,
                    "unsupported checksum algorithm {other}"
                ));
            }
        }
        Ok(())
    };
    if let Some(a) = algorithm {
        enable(a.as_str())?;
    }
    if given.crc32.is_some() {
        enable("CRC32")?;
    }
    if given.crc32c.is_some() {
        enable("CRC32C")?;
    }
    if given.crc64nvme.is_some() {
        enable("CRC64NVME")?;
    }
    if given.sha1.is_some() {
        enable("SHA1")?;
    }
    if given.sha256.is_some() {
        enable("SHA256")?;
    }
    if let Some(trailer) = headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()) {
        for name in trailer.split(',').map(str::trim) {
            if let Some(alg) = name.strip_prefix("x-amz-checksum-") {
                enable(alg)?;
            }
        }
    }
    Ok(h)
}

/// Checks Content-MD5 and the S3 checksums (from headers or trailers) against what was computed.
pub fn verifier(
    content_md5: Option<String>,
    given: Checksums,
    trailers: Option<crate::authn::Trailers>,
) -> S3Result<Verify<'static>> {
    let expected_md5 = match content_md5 {
        None => None,
        Some(b64) => {
            let invalid = || error::with(S3ErrorCode::InvalidDigest, error::INVALID_CONTENT_MD5);
            let raw = base64_simd::STANDARD
                .decode_to_vec(b64.trim())
                .map_err(|_| invalid())?;
            if raw.len() != 16 {
                return Err(invalid());
            }
            Some(raw)
        }
    };
    Ok(Box::new(move |md5, computed| {
        if let Some(exp) = expected_md5
            && exp.as_slice() != md5
        {
            return Err(error::with(
                S3ErrorCode::BadDigest,
                error::CONTENT_MD5_MISMATCH,
            ));
        }
        let mut given = given;
        if let Some(map) = trailers.and_then(|t| t.take()) {
            let get = |n: &str| map.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
            given.crc32 = given.crc32.or_else(|| get("x-amz-checksum-crc32"));
            given.crc32c = given.crc32c.or_else(|| get("x-amz-checksum-crc32c"));
            given.crc64nvme = given.crc64nvme.or_else(|| get("x-amz-checksum-crc64nvme"));
            given.sha1 = given.sha1.or_else(|| get("x-amz-checksum-sha1"));
            given.sha256 = given.sha256.or_else(|| get("x-amz-checksum-sha256"));
        }
        let pairs = [
            ("CRC32", &given.crc32, &computed.checksum_crc32),
            ("CRC32C", &given.crc32c, &computed.checksum_crc32c),
            ("CRC64NVME", &given.crc64nvme, &computed.checksum_crc64nvme),
            ("SHA1", &given.sha1, &computed.checksum_sha1),
            ("SHA256", &given.sha256, &computed.checksum_sha256),
        ];
        for (name, want, got) in pairs {
            if let Some(want) = want
                && Some(want) != got.as_ref()
            {
                return Err(s3_error!(
                    BadDigest,
                    "The {name} you specified did not match the calculated checksum."
                ));
            }
        }
        Ok(())
    }))
}

/// The body length to enforce: Content-Length, or the decoded length of an aws-chunked body.
pub fn expected_length<T>(req: &S3Request<T>, content_length: Option<i64>) -> Option<u64> {
    let streaming = req
        .headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("STREAMING-"));
    if streaming && !req.headers.contains_key("x-amz-decoded-content-length") {
        return None;
    }
    content_length.and_then(|n| u64::try_from(n).ok())
}

/// The body of a request that came without one.
pub fn empty_body() -> StreamingBlob {
    StreamingBlob::wrap(futures::stream::empty::<Result<Bytes, std::io::Error>>())
}

pub fn checksums_of(
    crc32: Option<String>,
    crc32c: Option<String>,
    crc64nvme: Option<String>,
    sha1: Option<String>,
    sha256: Option<String>,
) -> Checksums {
    Checksums {
        crc32,
        crc32c,
        crc64nvme,
        sha1,
        sha256,
    }
}
