//! What the gateway stores about an object beyond size and ETag: HTTP headers that round-trip,
//! user metadata and checksums. Serialised, then sealed under the object key, into the catalog's
//! opaque `meta` field.

use s3s::dto::{self, Timestamp, TimestampFormat};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// HTTP date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Checksums::is_empty")]
    pub checksums: Checksums,
    /// The checksum algorithm a multipart upload was created with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<String>,
    /// How the object checksum of a multipart upload is made (`FULL_OBJECT`, `COMPOSITE`):
    /// the upload's choice, then the object's. Releases before it ignore the field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum_type: Option<String>,
    /// An object uploaded in parts with a checksum algorithm: each part's checksum of that
    /// algorithm (base64), in part order, for GetObjectAttributes. Releases before it ignore
    /// the field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub part_checksums: Vec<String>,
    /// The object's tags (S3 object tagging), in the order they were set. Sealed with the
    /// rest: the catalog never holds them in clear. Releases before tags ignore the field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
    /// A multipart upload's object lock, as its CreateMultipartUpload headers asked: applied
    /// to the version its completion writes (and never stored with the version itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<obhut_trustee_client::object_lock::LockState>,
    /// `lock` as the trustee sealed it for the upload's completion, against the
    /// CreateMultipartUpload's signed headers: without it the trustee seals no lock headers'
    /// lock for the version (uploads created by releases before it must be created again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_seal: Option<String>,
}

/// Full-object checksums, base64 as S3 transmits them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksums {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crc32: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crc32c: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crc64nvme: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha1: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl Checksums {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// The stored form of a part's checksums.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain strings cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads the stored form; no bytes at all (a copied part) are no checksums.
    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        if bytes.is_empty() {
            return Ok(Self::default());
        }
        serde_json::from_slice(bytes)
    }

    pub fn from_dto(c: dto::Checksum) -> Self {
        Self {
            crc32: c.checksum_crc32,
            crc32c: c.checksum_crc32c,
            crc64nvme: c.checksum_crc64nvme,
            sha1: c.checksum_sha1,
            sha256: c.checksum_sha256,
        }
    }
}

impl ObjectMeta {
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain strings and maps cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        if bytes.is_empty() {
            return Ok(Self::default());
        }
        serde_json::from_slice(bytes)
    }

    pub fn expires_timestamp(&self) -> Option<Timestamp> {
        self.expires
            .as_deref()
            .and_then(|s| Timestamp::parse(TimestampFormat::HttpDate, s).ok())
    }

    pub fn set_expires(&mut self, ts: Option<&Timestamp>) {
        self.expires = ts.and_then(|t| {
            let mut buf = Vec::new();
            t.format(TimestampFormat::HttpDate, &mut buf).ok()?;
            String::from_utf8(buf).ok()
        });
    }

    pub fn user_metadata(&self) -> Option<dto::Metadata> {
        if self.user.is_empty() {
            None
        } else {
            Some(
                self.user
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips_and_empty_decodes_to_default() {
        let mut m = ObjectMeta {
            content_type: Some("text/plain".into()),
            ..ObjectMeta::default()
        };
        m.user.insert("colour".into(), "blau".into());
        m.checksums.crc32 = Some("AAAAAA==".into());
        m.tags = vec![("b".into(), "2".into()), ("a".into(), String::new())];
        m.checksum_type = Some("FULL_OBJECT".into());
        m.part_checksums = vec!["AAAAAA==".into(), "AAAAAQ==".into()];
        assert_eq!(ObjectMeta::decode(&m.encode()).expect("decode"), m);
        assert_eq!(
            ObjectMeta::decode(b"").expect("decode"),
            ObjectMeta::default()
        );
    }

    #[test]
    fn metadata_written_before_tags_reads_without_them() {
        let old = br#"{"content_type":"text/plain","user":{"k":"v"}}"#;
        let m = ObjectMeta::decode(old).expect("decode");
        assert!(m.tags.is_empty());
        assert_eq!(m.user.get("k").map(String::as_str), Some("v"));
        // And metadata with tags is read by a release that does not know them (serde ignores
        // fields it does not know): it is decoded as a map here to show the field is additive.
        let mut tagged = m.clone();
        tagged.tags = vec![("t".into(), "1".into())];
        let v: serde_json::Value = serde_json::from_slice(&tagged.encode()).expect("json");
        assert_eq!(v["tags"], serde_json::json!([["t", "1"]]));
    }
}
