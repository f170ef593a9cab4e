//! Keys in the gateway. Bucket keys are released by the trustee for a stated reason and kept in
//! memory only, for at most `key_cache_ttl`; object keys are random per object version and are
//! stored only wrapped under the bucket key (the envelope), with a key-check value.
//!
//! Plaintext keys live here in [`obhut_crypto::Key`] values, never in logs, files or the catalog.

use crate::meta::ObjectMeta;
use obhut_crypto::{DEFAULT_SEGMENT_SIZE, KCV_LEN, Key};
use obhut_trustee_client::Revocation;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A released bucket key, the tenant it belongs to, its key-check value and when it was
/// released.
struct Cached {
    tenant: String,
    kcv: [u8; KCV_LEN],
    key: Key,
    at: Instant,
}

/// Released bucket keys, by (bucket, key version), each dropped after the TTL or at once when
/// the trustee revokes it.
pub struct KeyCache {
    ttl: Duration,
    entries: Mutex<HashMap<(String, u32), Cached>>,
}

impl KeyCache {
    #[must_use]
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cached key of `bucket` version `version`, if it is the key the catalog now names
    /// (same tenant, same key-check value): a bucket deleted and created again under the same
    /// name has a different key, and a stale entry must never stand in for it.
    pub fn get(
        &self,
        tenant: &str,
        bucket: &str,
        version: u32,
        kcv: &[u8; KCV_LEN],
    ) -> Option<Key> {
        let mut entries = self.entries.lock().ok()?;
        let now = Instant::now();
        entries.retain(|_, c| now.duration_since(c.at) < self.ttl);
        let slot = (bucket.to_owned(), version);
        match entries.get(&slot) {
            Some(c) if c.tenant == tenant && obhut_crypto::constant_time_eq(&c.kcv, kcv) => {
                Some(c.key.clone())
            }
            Some(_) => {
                entries.remove(&slot);
                None
            }
            None => None,
        }
    }

    pub fn insert(&self, tenant: &str, bucket: &str, version: u32, kcv: [u8; KCV_LEN], key: Key) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(
                (bucket.to_owned(), version),
                Cached {
                    tenant: tenant.to_owned(),
                    kcv,
                    key,
                    at: Instant::now(),
                },
            );
        }
    }

    /// Drops every key of `bucket` (when the bucket is deleted).
    pub fn evict_bucket(&self, bucket: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|(b, _), _| b != bucket);
        }
    }

    /// Applies a revocation from the trustee.
    pub fn revoke(&self, r: &Revocation) {
        if let Ok(mut entries) = self.entries.lock() {
            match r {
                Revocation::All => entries.clear(),
                Revocation::Tenant { tenant } => entries.retain(|_, c| &c.tenant != tenant),
                // A policy change drops cached policies (crate::policies), no key.
                Revocation::Policy { .. } => {}
            }
        }
    }

    /// Drops every key (when revocations may have been missed).
    pub fn clear(&self) {
        self.revoke(&Revocation::All);
    }
}

/// What the catalog stores beside an object to find and open its key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub format: u8,
    /// Version of the bucket key that wraps the object key.
    pub key_version: u32,
    /// Random per object version; binds the key, the metadata and every blob to this version.
    pub version_id: String,
    pub wrapped_key: String,
    pub kcv: String,
    pub segment_size: u32,
}

/// An object version's key and encryption parameters.
pub struct ObjectCipher {
    pub key: Key,
    pub version_id: [u8; 16],
    pub segment_size: u32,
}

fn hex(b: &[u8]) -> String {
    hex_simd::encode_to_string(b, hex_simd::AsciiCase::Lower)
}

fn object_key_aad(bucket: &str, version_id: &[u8; 16]) -> Vec<u8> {
    let mut aad = b"obhut object key v1\0".to_vec();
    aad.extend_from_slice(bucket.as_bytes());
    aad.push(0);
    aad.extend_from_slice(version_id);
    aad
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("malformed envelope: {0}")]
    Malformed(String),
    #[error(transparent)]
    Crypto(#[from] obhut_crypto::CryptoError),
}

impl ObjectCipher {
    /// A fresh object key, and its envelope wrapped under `bucket_key` (version `key_version`).
    pub fn generate(
        bucket: &str,
        bucket_key: &Key,
        key_version: u32,
    ) -> Result<(Self, Vec<u8>), EnvelopeError> {
        let mut version_id = [0u8; 16];
        obhut_crypto::random_bytes(&mut version_id)?;
        let cipher = Self {
            key: Key::random()?,
            version_id,
            segment_size: DEFAULT_SEGMENT_SIZE,
        };
        let envelope = cipher.envelope_under(bucket, bucket_key, key_version)?;
        Ok((cipher, envelope))
    }

    /// This object key's envelope, wrapped under `bucket_key` (version `key_version`); used for
    /// new objects and to rewrap existing ones when the bucket key is rotated.
    pub fn envelope_under(
        &self,
        bucket: &str,
        bucket_key: &Key,
        key_version: u32,
    ) -> Result<Vec<u8>, EnvelopeError> {
        let (wrapped, kcv) = obhut_crypto::wrap_key(
            bucket_key,
            &self.key,
            &object_key_aad(bucket, &self.version_id),
        )?;
        let envelope = Envelope {
            format: 1,
            key_version,
            version_id: hex(&self.version_id),
            wrapped_key: base64_simd::STANDARD.encode_to_string(&wrapped),
            kcv: hex(&kcv),
            segment_size: self.segment_size,
        };
        serde_json::to_vec(&envelope).map_err(|e| EnvelopeError::Malformed(e.to_string()))
    }

    pub fn parse_envelope(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        let e: Envelope =
            serde_json::from_slice(bytes).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        if e.format != 1 {
            return Err(EnvelopeError::Malformed(format!("format {}", e.format)));
        }
        Ok(e)
    }

    /// Opens an envelope with the bucket key it names.
    pub fn open(
        bucket: &str,
        envelope: &Envelope,
        bucket_key: &Key,
    ) -> Result<Self, EnvelopeError> {
        let bad = |what: &str| EnvelopeError::Malformed(what.to_owned());
        let version_id: [u8; 16] = hex_simd::decode_to_vec(&envelope.version_id)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| bad("version id"))?;
        let kcv: [u8; KCV_LEN] = hex_simd::decode_to_vec(&envelope.kcv)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| bad("key-check value"))?;
        let wrapped = base64_simd::STANDARD
            .decode_to_vec(&envelope.wrapped_key)
            .map_err(|_| bad("wrapped key"))?;
        let key = obhut_crypto::unwrap_key(
            bucket_key,
            &wrapped,
            &object_key_aad(bucket, &version_id),
            &kcv,
        )?;
        Ok(Self {
            key,
            version_id,
            segment_size: envelope.segment_size,
        })
    }

    /// Associated data of the blob `blob` holding part `part`. The blob id is bound too, so a
    /// site cannot answer with another blob of the same object (e.g. an earlier upload of the
    /// same part) under this blob's name.
    #[must_use]
    pub fn blob_context(&self, part: u32, blob: &obhut_core::BlobId) -> Vec<u8> {
        let mut c = b"obhut blob v1\0".to_vec();
        c.extend_from_slice(&self.version_id);
        c.extend_from_slice(&part.to_be_bytes());
        c.extend_from_slice(blob.as_bytes());
        c
    }

    fn meta_aad(&self) -> Vec<u8> {
        let mut c = b"obhut meta v1\0".to_vec();
        c.extend_from_slice(&self.version_id);
        c
    }

    pub fn seal_meta(&self, meta: &ObjectMeta) -> Result<Vec<u8>, EnvelopeError> {
        Ok(obhut_crypto::seal_value(
            &self.key,
            &self.meta_aad(),
            &meta.encode(),
        )?)
    }

    pub fn open_meta(&self, sealed: &[u8]) -> Result<ObjectMeta, EnvelopeError> {
        let plain = obhut_crypto::open_value(&self.key, &self.meta_aad(), sealed)?;
        ObjectMeta::decode(&plain).map_err(|e| EnvelopeError::Malformed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex_simd::decode_to_vec(s.as_bytes()).expect("hex")
    }

    fn vectors(text: &str) -> serde_json::Value {
        serde_json::from_str(text).expect("vector file")
    }

    /// The associated data the gateway builds are the bytes docs/format.md and the known-answer
    /// vectors (made by an independent implementation of that document) name.
    #[test]
    fn associated_data_matches_the_format_vectors() {
        let blob = vectors(include_str!("../../crypto/tests/vectors/blob.json"));
        let mut checked = 0;
        for v in blob["vectors"].as_array().expect("vectors") {
            let context = unhex(v["context"].as_str().expect("context"));
            let prefix = b"obhut blob v1\0".len();
            let version_id: [u8; 16] = context[prefix..prefix + 16].try_into().expect("version");
            let part =
                u32::from_be_bytes(context[prefix + 16..prefix + 20].try_into().expect("part"));
            let blob_hex = hex(&context[prefix + 20..]);
            let blob_id = obhut_core::BlobId::parse(&blob_hex).expect("blob id");
            let cipher = ObjectCipher {
                key: Key::random().expect("key"),
                version_id,
                segment_size: 65_536,
            };
            assert_eq!(
                cipher.blob_context(part, &blob_id),
                context,
                "{}",
                v["name"]
            );
            checked += 1;
        }
        assert!(checked > 0);
        let wrap = vectors(include_str!("../../crypto/tests/vectors/wrap.json"));
        let find = |list: &str, name: &str| {
            wrap[list]
                .as_array()
                .expect("list")
                .iter()
                .find(|e| e["name"] == name)
                .map(|e| unhex(e["aad"].as_str().expect("aad")))
                .unwrap_or_else(|| panic!("no vector {name:?}"))
        };
        let object_key = find("wrapped_keys", "object key under the bucket key");
        let version_id: [u8; 16] = object_key[object_key.len() - 16..].try_into().expect("id");
        assert_eq!(object_key_aad("photos", &version_id), object_key);
        let meta = find("sealed_values", "object metadata under the object key");
        let version_id: [u8; 16] = meta[meta.len() - 16..].try_into().expect("id");
        let cipher = ObjectCipher {
            key: Key::random().expect("key"),
            version_id,
            segment_size: 65_536,
        };
        assert_eq!(cipher.meta_aad(), meta);
    }

    #[test]
    fn envelopes_open_only_under_their_bucket_and_key() {
        let bk = Key::random().unwrap();
        let (c, env) = ObjectCipher::generate("photos", &bk, 1).unwrap();
        let parsed = ObjectCipher::parse_envelope(&env).unwrap();
        let back = ObjectCipher::open("photos", &parsed, &bk).unwrap();
        assert_eq!(back.key.expose(), c.key.expose());
        assert!(ObjectCipher::open("other", &parsed, &bk).is_err());
        assert!(ObjectCipher::open("photos", &parsed, &Key::random().unwrap()).is_err());
    }

    #[test]
    fn metadata_is_sealed_to_its_object_version() {
        let bk = Key::random().unwrap();
        let (a, _) = ObjectCipher::generate("b", &bk, 1).unwrap();
        let (b, _) = ObjectCipher::generate("b", &bk, 1).unwrap();
        let mut m = ObjectMeta::default();
        m.user.insert("secret".into(), "marker".into());
        let sealed = a.seal_meta(&m).unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"marker"));
        assert_eq!(a.open_meta(&sealed).unwrap(), m);
        assert!(b.open_meta(&sealed).is_err());
    }

    #[test]
    fn cached_keys_expire() {
        let cache = KeyCache::new(Duration::from_millis(50));
        let kcv = [1u8; KCV_LEN];
        cache.insert("t", "b", 1, kcv, Key::random().unwrap());
        assert!(cache.get("t", "b", 1, &kcv).is_some());
        assert!(cache.get("t", "b", 2, &kcv).is_none());
        std::thread::sleep(Duration::from_millis(80));
        assert!(cache.get("t", "b", 1, &kcv).is_none());
        cache.insert("t", "b", 1, kcv, Key::random().unwrap());
        cache.evict_bucket("b");
        assert!(cache.get("t", "b", 1, &kcv).is_none());
    }

    #[test]
    fn revocations_drop_exactly_the_named_tenants_keys() {
        let cache = KeyCache::new(Duration::from_secs(300));
        let kcv = [2u8; KCV_LEN];
        cache.insert("t1", "a", 1, kcv, Key::random().unwrap());
        cache.insert("t2", "b", 1, kcv, Key::random().unwrap());
        cache.revoke(&Revocation::Tenant {
            tenant: "t1".into(),
        });
        assert!(cache.get("t1", "a", 1, &kcv).is_none());
        assert!(cache.get("t2", "b", 1, &kcv).is_some());
        cache.revoke(&Revocation::All);
        assert!(cache.get("t2", "b", 1, &kcv).is_none());
    }

    #[test]
    fn a_stale_key_never_stands_in_for_a_recreated_bucket_or_another_tenant() {
        let cache = KeyCache::new(Duration::from_secs(300));
        cache.insert("t1", "b", 1, [3u8; KCV_LEN], Key::random().unwrap());
        assert!(
            cache.get("t2", "b", 1, &[3u8; KCV_LEN]).is_none(),
            "another tenant"
        );
        cache.insert("t1", "b", 1, [3u8; KCV_LEN], Key::random().unwrap());
        assert!(
            cache.get("t1", "b", 1, &[4u8; KCV_LEN]).is_none(),
            "another key under the name"
        );
        assert!(
            cache.get("t1", "b", 1, &[3u8; KCV_LEN]).is_none(),
            "the stale entry was dropped"
        );
    }
}
