//! Integrity of what clients send and of what parts recorded: Content-MD5 and the S3
//! checksums (CRC32, CRC32C, CRC64NVME, SHA1, SHA256) from headers or aws-chunked trailers,
//! the stored checksums of multipart parts, and the checksum of an object uploaded in parts
//! made from them ([`ChecksumKind`]: the CRC of the whole object, combined from the parts'
//! CRCs and sizes, or a checksum of the parts' checksums with a `-N` suffix).
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

/// How a multipart upload's object checksum is made from its parts' (S3's
/// `x-amz-checksum-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumKind {
    /// The CRC of the whole object's bytes, as if it had been uploaded at once.
    FullObject,
    /// The checksum of the parts' checksums (their raw bytes, in order), `-N` appended.
    Composite,
}

impl ChecksumKind {
    pub const FULL_OBJECT: &'static str = "FULL_OBJECT";
    pub const COMPOSITE: &'static str = "COMPOSITE";

    pub fn as_str(self) -> &'static str {
        match self {
            Self::FullObject => Self::FULL_OBJECT,
            Self::Composite => Self::COMPOSITE,
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            Self::FULL_OBJECT => Some(Self::FullObject),
            Self::COMPOSITE => Some(Self::Composite),
            _ => None,
        }
    }
}

/// The checksum type of an upload created with `algorithm` and the type a client asked for:
/// CRC64NVME is full-object only, SHA1 and SHA256 composite only, CRC32 and CRC32C either
/// (composite unless asked otherwise), as in S3. A type without an algorithm is refused.
pub fn upload_checksum_kind(
    algorithm: Option<&str>,
    requested: Option<&str>,
) -> S3Result<Option<ChecksumKind>> {
    let requested = requested
        .map(|t| {
            ChecksumKind::parse(t).ok_or_else(|| {
                s3_error!(
                    InvalidRequest,
                    "Value for x-amz-checksum-type header is invalid."
                )
            })
        })
        .transpose()?;
    let Some(algorithm) = algorithm else {
        return match requested {
            None => Ok(None),
            Some(_) => Err(s3_error!(
                InvalidRequest,
                "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header."
            )),
        };
    };
    let algorithm = algorithm.to_ascii_uppercase();
    match (algorithm.as_str(), requested) {
        ("CRC64NVME", None | Some(ChecksumKind::FullObject)) => Ok(Some(ChecksumKind::FullObject)),
        ("SHA1" | "SHA256", None | Some(ChecksumKind::Composite)) => {
            Ok(Some(ChecksumKind::Composite))
        }
        ("CRC32" | "CRC32C", kind) => Ok(Some(kind.unwrap_or(ChecksumKind::Composite))),
        (other, Some(kind)) => Err(s3_error!(
            InvalidRequest,
            "The {} checksum type cannot be used with the {} checksum algorithm.",
            kind.as_str(),
            other.to_ascii_lowercase()
        )),
        (other, None) => Err(s3_error!(
            InvalidRequest,
            "unsupported checksum algorithm {other}"
        )),
    }
}

/// The checksum (base64) `algorithm` names in `c`.
pub fn checksum_of<'a>(c: &'a Checksums, algorithm: &str) -> Option<&'a str> {
    match algorithm.to_ascii_uppercase().as_str() {
        "CRC32" => c.crc32.as_deref(),
        "CRC32C" => c.crc32c.as_deref(),
        "CRC64NVME" => c.crc64nvme.as_deref(),
        "SHA1" => c.sha1.as_deref(),
        "SHA256" => c.sha256.as_deref(),
        _ => None,
    }
}

/// `c` with the checksum `algorithm` names set to `value`.
pub fn set_checksum(c: &mut Checksums, algorithm: &str, value: String) {
    match algorithm.to_ascii_uppercase().as_str() {
        "CRC32" => c.crc32 = Some(value),
        "CRC32C" => c.crc32c = Some(value),
        "CRC64NVME" => c.crc64nvme = Some(value),
        "SHA1" => c.sha1 = Some(value),
        "SHA256" => c.sha256 = Some(value),
        _ => {}
    }
}

/// The object checksum (base64; a composite one with `-N`) of a multipart upload made with
/// `algorithm`, from its parts' checksums (base64) and sizes, in order.
pub fn combined_checksum(
    algorithm: &str,
    kind: ChecksumKind,
    parts: &[(&str, u64)],
) -> S3Result<String> {
    let corrupt = || {
        error::with(
            S3ErrorCode::InternalError,
            "a part's stored checksum is not one the algorithm makes",
        )
    };
    let algorithm = algorithm.to_ascii_uppercase();
    let raw = |b64: &str| {
        base64_simd::STANDARD
            .decode_to_vec(b64)
            .map_err(|_| corrupt())
    };
    match kind {
        ChecksumKind::FullObject => {
            let (crc, width) = match algorithm.as_str() {
                "CRC32" => (crc_fast::CrcAlgorithm::Crc32IsoHdlc, 4),
                "CRC32C" => (crc_fast::CrcAlgorithm::Crc32Iscsi, 4),
                "CRC64NVME" => (crc_fast::CrcAlgorithm::Crc64Nvme, 8),
                _ => return Err(corrupt()),
            };
            let mut whole: Option<u64> = None;
            for (b64, size) in parts {
                let bytes = raw(b64)?;
                if bytes.len() != width {
                    return Err(corrupt());
                }
                let value = bytes.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b));
                whole = Some(match whole {
                    None => value,
                    Some(before) => crc_fast::checksum_combine(crc, before, value, *size),
                });
            }
            let whole = whole.ok_or_else(corrupt)?;
            let bytes = whole.to_be_bytes();
            Ok(base64_simd::STANDARD.encode_to_string(&bytes[8 - width..]))
        }
        ChecksumKind::Composite => {
            let mut hasher = checksum_hasher(
                &http::HeaderMap::new(),
                Some(&ChecksumAlgorithm::from(algorithm.clone())),
                &Checksums::default(),
            )?;
            for (b64, _) in parts {
                hasher.update(&raw(b64)?);
            }
            let c = Checksums::from_dto(hasher.finalize());
            let value = checksum_of(&c, &algorithm).ok_or_else(corrupt)?;
            Ok(format!("{value}-{}", parts.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        base64_simd::STANDARD.encode_to_string(bytes)
    }

    fn whole(algorithm: &str, data: &[u8]) -> String {
        let mut h = checksum_hasher(
            &http::HeaderMap::new(),
            Some(&ChecksumAlgorithm::from(algorithm.to_owned())),
            &Checksums::default(),
        )
        .unwrap();
        h.update(data);
        checksum_of(&Checksums::from_dto(h.finalize()), algorithm)
            .unwrap()
            .to_owned()
    }

    #[test]
    fn full_object_crcs_combine_to_the_crc_of_the_whole() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (a, rest) = data.split_at(40_000);
        let (b, c) = rest.split_at(59_999);
        for algorithm in ["CRC32", "CRC32C", "CRC64NVME"] {
            let parts: Vec<(String, u64)> = [a, b, c]
                .iter()
                .map(|p| (whole(algorithm, p), p.len() as u64))
                .collect();
            let refs: Vec<(&str, u64)> = parts.iter().map(|(s, n)| (s.as_str(), *n)).collect();
            assert_eq!(
                combined_checksum(algorithm, ChecksumKind::FullObject, &refs).unwrap(),
                whole(algorithm, &data),
                "{algorithm}"
            );
        }
    }

    #[test]
    fn composite_checksums_hash_the_parts_checksums_and_count_them() {
        for algorithm in ["CRC32", "CRC32C", "SHA1", "SHA256"] {
            let parts = [whole(algorithm, b"one"), whole(algorithm, b"two")];
            let mut raw = Vec::new();
            for p in &parts {
                raw.extend(base64_simd::STANDARD.decode_to_vec(p).unwrap());
            }
            let refs: Vec<(&str, u64)> = parts.iter().map(|p| (p.as_str(), 3)).collect();
            assert_eq!(
                combined_checksum(algorithm, ChecksumKind::Composite, &refs).unwrap(),
                format!("{}-2", whole(algorithm, &raw)),
                "{algorithm}"
            );
        }
        assert_eq!(b64(&[0, 0, 0, 0]), "AAAAAA==");
    }

    #[test]
    fn checksum_types_follow_their_algorithms_as_in_s3() {
        let kind = |a: Option<&str>, t: Option<&str>| upload_checksum_kind(a, t).ok().flatten();
        assert_eq!(
            kind(Some("CRC64NVME"), None),
            Some(ChecksumKind::FullObject)
        );
        assert_eq!(kind(Some("CRC32"), None), Some(ChecksumKind::Composite));
        assert_eq!(
            kind(Some("CRC32C"), Some("FULL_OBJECT")),
            Some(ChecksumKind::FullObject)
        );
        assert_eq!(kind(Some("SHA256"), None), Some(ChecksumKind::Composite));
        assert!(upload_checksum_kind(Some("SHA1"), Some("FULL_OBJECT")).is_err());
        assert!(upload_checksum_kind(Some("CRC64NVME"), Some("COMPOSITE")).is_err());
        assert!(upload_checksum_kind(None, Some("COMPOSITE")).is_err());
        assert!(upload_checksum_kind(Some("CRC32"), Some("OTHER")).is_err());
        assert_eq!(upload_checksum_kind(None, None).ok(), Some(None));
    }
}
