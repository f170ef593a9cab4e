//! Object keys the trustee opens or wraps itself, one verified request at a time.
//!
//! A tenant chooses how its data's keys reach a gateway ([`KeyRelease`]): the bucket key,
//! released against a verified request and cached by the gateway for `key_cache_ttl`, or
//! `per-object`: the bucket key never leaves the trustee, which opens (or wraps) exactly the
//! object keys the verified request names, and for a listing opens only the ETags. Both the
//! gateway (which wraps and opens under a released bucket key) and the trustee (per object)
//! bind a wrapped object key the same way, so the associated data is defined here once.
//!
//! What crosses this interface: wrapped object keys going in, the object keys (or ETags) a
//! verified request needs coming out. Bucket, tenant and master keys never cross it.

use obhut_crypto::{KCV_LEN, Key};
use serde::{Deserialize, Serialize};

/// How a tenant's keys are released for its own (customer-initiated) requests and grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyRelease {
    /// The bucket key, cached by the gateway for at most `key_cache_ttl`: one release serves
    /// every request to the bucket for that time (fast; the gateway could read the whole
    /// bucket meanwhile).
    #[default]
    Bucket,
    /// Object keys, opened by the trustee for each verified request and group-committed to the
    /// log: a gateway holds only the keys of objects customers asked for.
    PerObject,
}

impl KeyRelease {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Bucket => "bucket",
            Self::PerObject => "per-object",
        }
    }

    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "bucket" => Some(Self::Bucket),
            "per-object" => Some(Self::PerObject),
            _ => None,
        }
    }
}

/// Where an object key is filed: its object name, and for a multipart upload's key the upload.
/// The tenant and bucket are the call's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObjectName {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<String>,
}

/// Appends `field` with its length (u32 big-endian) in front, so no two different field
/// lists encode alike whatever bytes the names hold.
fn push_field(aad: &mut Vec<u8>, field: &[u8]) {
    // Names are at most a few KiB (S3 keys: 1024 bytes).
    aad.extend_from_slice(&u32::try_from(field.len()).unwrap_or(u32::MAX).to_be_bytes());
    aad.extend_from_slice(field);
}

/// Associated data of a format-2 wrapped object key:
/// `"obhut object key v2\0" || lp(tenant) || lp(bucket) || lp(key) || kind || [lp(upload id)] ||
/// version_id`, where `lp` is a u32 big-endian length followed by the bytes and `kind` is 0 for
/// an object, 1 for a multipart upload (docs/format.md, section 4).
#[must_use]
pub fn object_key_aad(
    tenant: &str,
    bucket: &str,
    key: &str,
    upload: Option<&str>,
    version_id: &[u8; 16],
) -> Vec<u8> {
    let mut aad = b"obhut object key v2\0".to_vec();
    push_field(&mut aad, tenant.as_bytes());
    push_field(&mut aad, bucket.as_bytes());
    push_field(&mut aad, key.as_bytes());
    match upload {
        None => aad.push(0),
        Some(upload_id) => {
            aad.push(1);
            push_field(&mut aad, upload_id.as_bytes());
        }
    }
    aad.extend_from_slice(version_id);
    aad
}

/// Associated data of a sealed ETag: `"obhut etag v1\0" || version_id`, or for a part of an
/// upload `"obhut part etag v1\0" || version_id || u32be(part)`.
#[must_use]
pub fn etag_aad(version_id: &[u8; 16], part: Option<u32>) -> Vec<u8> {
    let mut aad = match part {
        None => b"obhut etag v1\0".to_vec(),
        Some(_) => b"obhut part etag v1\0".to_vec(),
    };
    aad.extend_from_slice(version_id);
    if let Some(n) = part {
        aad.extend_from_slice(&n.to_be_bytes());
    }
    aad
}

/// The prefix of a sealed ETag as the catalog stores it.
pub const SEALED_ETAG_PREFIX: &str = "s1.";

/// Opens a stored ETag sealed under `key` for `version_id` (and `part`).
pub fn open_sealed_etag(
    key: &Key,
    version_id: &[u8; 16],
    part: Option<u32>,
    stored: &str,
) -> Result<String, obhut_crypto::CryptoError> {
    let bad = || obhut_crypto::CryptoError::Malformed("sealed ETag");
    let body = stored.strip_prefix(SEALED_ETAG_PREFIX).ok_or_else(bad)?;
    let sealed = base64_simd::STANDARD
        .decode_to_vec(body.as_bytes())
        .map_err(|_| bad())?;
    let plain = obhut_crypto::open_value(key, &etag_aad(version_id, part), &sealed)?;
    String::from_utf8(plain).map_err(|_| bad())
}

/// An object key as the catalog stores it: wrapped under a bucket key, with its key-check value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedObjectKey {
    pub name: ObjectName,
    pub version_id: [u8; 16],
    pub wrapped: Vec<u8>,
    pub kcv: [u8; KCV_LEN],
}

/// One thing a gateway asks of the trustee about one object key.
pub enum ObjectKeyOp {
    /// The key itself, to read or write the object's data (only for a name the verified
    /// request names).
    Open(SealedObjectKey),
    /// Only the record's ETag, opened with its key inside the trustee (listings): the stored,
    /// sealed ETag goes in, the ETag comes out.
    Etag(SealedObjectKey, String),
    /// Only whether the key opens where it is filed (listings of uploads).
    Check(SealedObjectKey),
    /// A new object key (made by the gateway, or an upload's key becoming its object's),
    /// wrapped and bound to `name`.
    Wrap {
        name: ObjectName,
        version_id: [u8; 16],
        key: Key,
    },
}

impl ObjectKeyOp {
    #[must_use]
    pub fn name(&self) -> &ObjectName {
        match self {
            Self::Open(s) | Self::Etag(s, _) | Self::Check(s) => &s.name,
            Self::Wrap { name, .. } => name,
        }
    }

    /// Whether the answer hands key material (the object key) to the caller.
    #[must_use]
    pub fn releases_key(&self) -> bool {
        matches!(self, Self::Open(_))
    }
}

/// The trustee's answer to one [`ObjectKeyOp`], in the same order.
pub enum ObjectKeyOutcome {
    Key(Key),
    Etag(String),
    Checked,
    Wrapped {
        wrapped: Vec<u8>,
        kcv: [u8; KCV_LEN],
    },
    /// The key does not open where it is filed (a record moved or edited in the catalog).
    Refused(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in [KeyRelease::Bucket, KeyRelease::PerObject] {
            assert_eq!(KeyRelease::from_name(m.name()), Some(m));
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{}\"", m.name()));
        }
        assert_eq!(KeyRelease::from_name("none"), None);
    }

    #[test]
    fn sealed_etags_open_only_for_their_version_and_part() {
        let key = Key::random().unwrap();
        let v = [7u8; 16];
        let sealed = obhut_crypto::seal_value(&key, &etag_aad(&v, None), b"abc").unwrap();
        let stored = format!(
            "{SEALED_ETAG_PREFIX}{}",
            base64_simd::STANDARD.encode_to_string(&sealed)
        );
        assert_eq!(open_sealed_etag(&key, &v, None, &stored).unwrap(), "abc");
        assert!(open_sealed_etag(&key, &[8u8; 16], None, &stored).is_err());
        assert!(open_sealed_etag(&key, &v, Some(1), &stored).is_err());
        assert!(open_sealed_etag(&key, &v, None, "abc").is_err());
    }
}
