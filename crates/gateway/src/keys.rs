//! Keys in the gateway. Bucket keys are released by the trustee for a stated reason and kept in
//! memory only, for at most `key_cache_ttl`; object keys are random per object version and are
//! stored only wrapped under the bucket key (the envelope), with a key-check value.
//!
//! Plaintext keys live here in [`obhut_crypto::Key`] values, never in logs, files or the catalog.

use crate::meta::{Checksums, ObjectMeta};
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
///
/// A release runs concurrently with the revocations: a key the trustee released just before
/// it revoked every key (a disconnect) or the tenant's keys may arrive after the revocation
/// was applied. Each revocation of keys starts a new generation; a release notes the
/// generation before it asks the trustee ([`KeyCache::generation`]) and its key is cached only
/// if no revocation came since ([`KeyCache::insert`]).
pub struct KeyCache {
    ttl: Duration,
    entries: Mutex<Entries>,
    /// Tenants whose policy is `key_release = per-object` (the trustee refused their bucket
    /// keys), since when: their object keys are opened by the trustee per request.
    per_object: Mutex<HashMap<String, Instant>>,
}

/// The cached keys and the count of revocations applied to them.
#[derive(Default)]
struct Entries {
    keys: HashMap<(String, u32), Cached>,
    generation: Generation,
}

/// How many revocations of keys the cache has applied: a key released before one of them is
/// not cached after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Generation(u64);

impl std::ops::Deref for Entries {
    type Target = HashMap<(String, u32), Cached>;
    fn deref(&self) -> &Self::Target {
        &self.keys
    }
}

impl std::ops::DerefMut for Entries {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.keys
    }
}

impl KeyCache {
    #[must_use]
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(Entries::default()),
            per_object: Mutex::new(HashMap::new()),
        }
    }

    /// The generation now: taken before a key is asked of the trustee, and given back to
    /// [`KeyCache::insert`].
    pub fn generation(&self) -> Generation {
        self.entries
            .lock()
            .map_or(Generation(u64::MAX), |e| e.generation)
    }

    /// Whether `tenant`'s object keys are opened by the trustee (as it last said, within the
    /// TTL).
    pub fn is_per_object(&self, tenant: &str) -> bool {
        let Ok(mut m) = self.per_object.lock() else {
            return false;
        };
        match m.get(tenant) {
            Some(at) if at.elapsed() < self.ttl => true,
            Some(_) => {
                m.remove(tenant);
                false
            }
            None => false,
        }
    }

    /// Notes that the trustee releases only object keys of `tenant`, and drops any bucket key
    /// of it still cached.
    pub fn mark_per_object(&self, tenant: &str) {
        if let Ok(mut m) = self.per_object.lock() {
            m.insert(tenant.to_owned(), Instant::now());
        }
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, c| c.tenant != tenant);
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
        let before = entries.len();
        entries.retain(|_, c| now.duration_since(c.at) < self.ttl);
        let m = obhut_metrics::get();
        m.key_cache_evicted(before - entries.len());
        let slot = (bucket.to_owned(), version);
        let found = match entries.get(&slot) {
            Some(c) if c.tenant == tenant && obhut_crypto::constant_time_eq(&c.kcv, kcv) => {
                Some(c.key.clone())
            }
            Some(_) => {
                entries.remove(&slot);
                m.key_cache_evicted(1);
                None
            }
            None => None,
        };
        if found.is_some() {
            m.key_cache_hit()
        } else {
            m.key_cache_miss()
        }
        found
    }

    /// Caches a released key, unless a revocation of keys was applied since `asked` (the
    /// generation before the key was asked for): then the key, which the revocation may have
    /// been meant to reach, serves the one request that asked for it and is not kept.
    pub fn insert(
        &self,
        asked: Generation,
        tenant: &str,
        bucket: &str,
        version: u32,
        kcv: [u8; KCV_LEN],
        key: Key,
    ) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.generation != asked {
                tracing::debug!(bucket, "a key released before a revocation is not cached");
                return;
            }
            entries.insert(
                (bucket.to_owned(), version),
                Cached {
                    tenant: tenant.to_owned(),
                    kcv,
                    key,
                    at: Instant::now(),
                },
            );
            obhut_metrics::get().key_cache_size(entries.len());
        }
    }

    /// Drops every key older than the TTL (the key-revocation worker calls it every second).
    pub fn sweep(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            let before = entries.len();
            entries.retain(|_, c| c.at.elapsed() < self.ttl);
            let m = obhut_metrics::get();
            m.key_cache_evicted(before - entries.len());
            m.key_cache_size(entries.len());
        }
    }

    /// How many bucket keys are in memory now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every key of `bucket` (when the bucket is deleted).
    pub fn evict_bucket(&self, bucket: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            let before = entries.len();
            entries.retain(|(b, _), _| b != bucket);
            obhut_metrics::get().key_cache_evicted(before - entries.len());
        }
    }

    /// Applies a revocation from the trustee.
    pub fn revoke(&self, r: &Revocation) {
        if let Ok(mut entries) = self.entries.lock() {
            if let Ok(mut per_object) = self.per_object.lock() {
                match r {
                    Revocation::All => per_object.clear(),
                    Revocation::Tenant { tenant } => {
                        per_object.remove(tenant);
                    }
                    Revocation::Policy { .. } => {}
                }
            }
            let before = entries.len();
            match r {
                Revocation::All => entries.clear(),
                Revocation::Tenant { tenant } => entries.retain(|_, c| &c.tenant != tenant),
                // A policy change drops cached policies (crate::policies), no key.
                Revocation::Policy { .. } => {}
            }
            if !matches!(r, Revocation::Policy { .. }) {
                entries.generation.0 = entries.generation.0.wrapping_add(1);
            }
            obhut_metrics::get().key_cache_evicted(before - entries.len());
            obhut_metrics::get().key_cache_size(entries.len());
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
    /// [`ENVELOPE_FORMAT`] for every envelope this release writes; `1` for envelopes written
    /// before object keys were bound to their names, read only by the upgrade
    /// (`crate::upgrade`) that rebinds them.
    pub format: u8,
    /// Version of the bucket key that wraps the object key.
    pub key_version: u32,
    /// Random per object version; binds the key, the metadata and every blob to this version.
    pub version_id: String,
    pub wrapped_key: String,
    pub kcv: String,
    pub segment_size: u32,
}

/// The envelope format this release writes: the wrapped object key is bound to its tenant,
/// bucket, object name and object version or multipart upload (docs/format.md, section 4).
pub const ENVELOPE_FORMAT: u8 = 2;
/// The format of envelopes written before object keys were bound to their names.
pub const LEGACY_ENVELOPE_FORMAT: u8 = 1;

impl Envelope {
    /// Whether this envelope is bound to its object's name (format 2); a format-1 envelope is
    /// not, and is served only once the upgrade has rebound it.
    #[must_use]
    pub fn is_bound(&self) -> bool {
        self.format == ENVELOPE_FORMAT
    }
}

/// Where an object key belongs: everything its wrapped form is bound to besides its version
/// id. A record copied under another name, into another bucket or another tenant's bucket, or
/// from an upload to an object, no longer opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding<'a> {
    pub tenant: &'a str,
    pub bucket: &'a str,
    /// The object name (S3 key).
    pub key: &'a str,
    /// The multipart upload whose parts the key encrypts; `None` for an object.
    pub upload: Option<&'a str>,
}

impl<'a> Binding<'a> {
    #[must_use]
    pub fn object(tenant: &'a str, bucket: &'a str, key: &'a str) -> Self {
        Self {
            tenant,
            bucket,
            key,
            upload: None,
        }
    }

    #[must_use]
    pub fn upload(tenant: &'a str, bucket: &'a str, key: &'a str, upload_id: &'a str) -> Self {
        Self {
            tenant,
            bucket,
            key,
            upload: Some(upload_id),
        }
    }
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

/// Associated data of a format-2 wrapped object key (defined with the trustee's per-object
/// release, which binds the same way).
fn object_key_aad(binding: &Binding<'_>, version_id: &[u8; 16]) -> Vec<u8> {
    obhut_trustee_client::object_keys::object_key_aad(
        binding.tenant,
        binding.bucket,
        binding.key,
        binding.upload,
        version_id,
    )
}

/// Associated data of a format-1 wrapped object key (bucket and version id only).
fn legacy_object_key_aad(bucket: &str, version_id: &[u8; 16]) -> Vec<u8> {
    let mut aad = b"obhut object key v1\0".to_vec();
    aad.extend_from_slice(bucket.as_bytes());
    aad.push(0);
    aad.extend_from_slice(version_id);
    aad
}

/// The prefix of a sealed ETag as the catalog stores it; an ETag without it is one written
/// before ETags were sealed (an MD5 in hex), read only by the upgrade.
use obhut_trustee_client::object_keys::SEALED_ETAG_PREFIX;

/// Whether a stored ETag is sealed.
#[must_use]
pub fn is_sealed_etag(stored: &str) -> bool {
    stored.starts_with(SEALED_ETAG_PREFIX)
}

/// An envelope's version id, key-check value and wrapped key, decoded.
type EnvelopeParts = ([u8; 16], [u8; KCV_LEN], Vec<u8>);

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("malformed envelope: {0}")]
    Malformed(String),
    #[error("envelope format {0} is not bound to its object's name")]
    Unbound(u8),
    #[error(transparent)]
    Crypto(#[from] obhut_crypto::CryptoError),
}

impl ObjectCipher {
    /// A fresh object key, and its envelope wrapped under `bucket_key` (version `key_version`)
    /// and bound to `binding`.
    pub fn generate(
        binding: &Binding<'_>,
        bucket_key: &Key,
        key_version: u32,
    ) -> Result<(Self, Vec<u8>), EnvelopeError> {
        let cipher = Self::fresh()?;
        let envelope = cipher.envelope_under(binding, bucket_key, key_version)?;
        Ok((cipher, envelope))
    }

    /// A fresh object key and version id, not yet wrapped (the trustee wraps it for tenants
    /// whose keys are released per object).
    pub fn fresh() -> Result<Self, EnvelopeError> {
        let mut version_id = [0u8; 16];
        obhut_crypto::random_bytes(&mut version_id)?;
        Ok(Self {
            key: Key::random()?,
            version_id,
            segment_size: DEFAULT_SEGMENT_SIZE,
        })
    }

    /// This key's envelope from its wrapped form (wrapped under bucket key version
    /// `key_version`, by the gateway or the trustee).
    pub fn envelope_of(
        &self,
        key_version: u32,
        wrapped: &[u8],
        kcv: &[u8; KCV_LEN],
    ) -> Result<Vec<u8>, EnvelopeError> {
        let envelope = Envelope {
            format: ENVELOPE_FORMAT,
            key_version,
            version_id: hex(&self.version_id),
            wrapped_key: base64_simd::STANDARD.encode_to_string(wrapped),
            kcv: hex(kcv),
            segment_size: self.segment_size,
        };
        serde_json::to_vec(&envelope).map_err(|e| EnvelopeError::Malformed(e.to_string()))
    }

    /// `envelope` with its key rewrapped (by the trustee) under bucket key `key_version`.
    pub fn rewrapped_envelope(
        envelope: &Envelope,
        key_version: u32,
        wrapped: &[u8],
        kcv: &[u8; KCV_LEN],
    ) -> Result<Vec<u8>, EnvelopeError> {
        let e = Envelope {
            format: ENVELOPE_FORMAT,
            key_version,
            version_id: envelope.version_id.clone(),
            wrapped_key: base64_simd::STANDARD.encode_to_string(wrapped),
            kcv: hex(kcv),
            segment_size: envelope.segment_size,
        };
        serde_json::to_vec(&e).map_err(|e| EnvelopeError::Malformed(e.to_string()))
    }

    /// A bound envelope's parts as the trustee takes them, filed under `binding`.
    pub fn sealed_key(
        binding: &Binding<'_>,
        envelope: &Envelope,
    ) -> Result<obhut_trustee_client::object_keys::SealedObjectKey, EnvelopeError> {
        let (version_id, kcv, wrapped) = Self::parts(envelope)?;
        Ok(obhut_trustee_client::object_keys::SealedObjectKey {
            name: obhut_trustee_client::object_keys::ObjectName {
                key: binding.key.to_owned(),
                upload: binding.upload.map(str::to_owned),
            },
            version_id,
            wrapped,
            kcv,
        })
    }

    /// The object key the trustee opened for a bound envelope.
    pub fn opened(envelope: &Envelope, key: Key) -> Result<Self, EnvelopeError> {
        let (version_id, _, _) = Self::parts(envelope)?;
        Ok(Self {
            key,
            version_id,
            segment_size: envelope.segment_size,
        })
    }

    /// This object key's envelope, wrapped under `bucket_key` (version `key_version`) and
    /// bound to `binding`; used for new objects, to bind a completed upload's key to its
    /// object, and to rewrap existing ones when the bucket key is rotated.
    pub fn envelope_under(
        &self,
        binding: &Binding<'_>,
        bucket_key: &Key,
        key_version: u32,
    ) -> Result<Vec<u8>, EnvelopeError> {
        let (wrapped, kcv) = obhut_crypto::wrap_key(
            bucket_key,
            &self.key,
            &object_key_aad(binding, &self.version_id),
        )?;
        self.envelope_of(key_version, &wrapped, &kcv)
    }

    /// Parses an envelope of either format; [`Envelope::is_bound`] says which.
    pub fn parse_envelope(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        let e: Envelope =
            serde_json::from_slice(bytes).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        if e.format != ENVELOPE_FORMAT && e.format != LEGACY_ENVELOPE_FORMAT {
            return Err(EnvelopeError::Malformed(format!("format {}", e.format)));
        }
        Ok(e)
    }

    /// An envelope's version id, key-check value and wrapped key.
    fn parts(envelope: &Envelope) -> Result<EnvelopeParts, EnvelopeError> {
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
        Ok((version_id, kcv, wrapped))
    }

    /// Opens a bound (format 2) envelope with the bucket key it names; it opens only for the
    /// tenant, bucket, name and upload it was made for. A format-1 envelope is refused
    /// ([`EnvelopeError::Unbound`]): only the upgrade reads those ([`Self::open_legacy`]).
    pub fn open(
        binding: &Binding<'_>,
        envelope: &Envelope,
        bucket_key: &Key,
    ) -> Result<Self, EnvelopeError> {
        if !envelope.is_bound() {
            return Err(EnvelopeError::Unbound(envelope.format));
        }
        let (version_id, kcv, wrapped) = Self::parts(envelope)?;
        let key = obhut_crypto::unwrap_key(
            bucket_key,
            &wrapped,
            &object_key_aad(binding, &version_id),
            &kcv,
        )?;
        Ok(Self {
            key,
            version_id,
            segment_size: envelope.segment_size,
        })
    }

    /// Opens a format-1 envelope, bound to its bucket and version id only. For the upgrade
    /// that rebinds such envelopes to their names, never for serving.
    pub fn open_legacy(
        bucket: &str,
        envelope: &Envelope,
        bucket_key: &Key,
    ) -> Result<Self, EnvelopeError> {
        if envelope.format != LEGACY_ENVELOPE_FORMAT {
            return Err(EnvelopeError::Malformed(format!(
                "format {} is not the legacy format",
                envelope.format
            )));
        }
        let (version_id, kcv, wrapped) = Self::parts(envelope)?;
        let key = obhut_crypto::unwrap_key(
            bucket_key,
            &wrapped,
            &legacy_object_key_aad(bucket, &version_id),
            &kcv,
        )?;
        Ok(Self {
            key,
            version_id,
            segment_size: envelope.segment_size,
        })
    }

    /// This key's envelope in the format of the release before (format 1, bound to the bucket
    /// and version id only): what the upgrade finds in catalogs that release wrote.
    #[cfg(test)]
    pub(crate) fn legacy_envelope(
        &self,
        bucket: &str,
        bucket_key: &Key,
        key_version: u32,
    ) -> Vec<u8> {
        let (wrapped, kcv) = obhut_crypto::wrap_key(
            bucket_key,
            &self.key,
            &legacy_object_key_aad(bucket, &self.version_id),
        )
        .expect("wrap");
        serde_json::to_vec(&Envelope {
            format: LEGACY_ENVELOPE_FORMAT,
            key_version,
            version_id: hex(&self.version_id),
            wrapped_key: base64_simd::STANDARD.encode_to_string(&wrapped),
            kcv: hex(&kcv),
            segment_size: self.segment_size,
        })
        .expect("envelope")
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

    /// `"obhut etag v1\0" || version_id`, or for a part of an upload
    /// `"obhut part etag v1\0" || version_id || u32be(part)`.
    fn etag_aad(&self, part: Option<u32>) -> Vec<u8> {
        obhut_trustee_client::object_keys::etag_aad(&self.version_id, part)
    }

    fn part_checksums_aad(&self, part: u32) -> Vec<u8> {
        let mut c = b"obhut part checksums v1\0".to_vec();
        c.extend_from_slice(&self.version_id);
        c.extend_from_slice(&part.to_be_bytes());
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

    /// The ETag of this object version (or of part `part` of this upload) as the catalog
    /// stores it: sealed under the object key, so the catalog never holds an MD5 of customer
    /// data. Text: [`SEALED_ETAG_PREFIX`] followed by the sealed value in standard base64.
    pub fn seal_etag(&self, part: Option<u32>, etag: &str) -> Result<String, EnvelopeError> {
        let sealed = obhut_crypto::seal_value(&self.key, &self.etag_aad(part), etag.as_bytes())?;
        Ok(format!(
            "{SEALED_ETAG_PREFIX}{}",
            base64_simd::STANDARD.encode_to_string(&sealed)
        ))
    }

    /// Opens an ETag made by [`Self::seal_etag`] for the same part.
    pub fn open_etag(&self, part: Option<u32>, stored: &str) -> Result<String, EnvelopeError> {
        if !is_sealed_etag(stored) {
            return Err(EnvelopeError::Malformed("ETag is not sealed".into()));
        }
        Ok(obhut_trustee_client::object_keys::open_sealed_etag(
            &self.key,
            &self.version_id,
            part,
            stored,
        )?)
    }

    /// A part's checksums as the catalog stores them: sealed under the upload's key.
    pub fn seal_part_checksums(
        &self,
        part: u32,
        checksums: &Checksums,
    ) -> Result<Vec<u8>, EnvelopeError> {
        Ok(obhut_crypto::seal_value(
            &self.key,
            &self.part_checksums_aad(part),
            &checksums.encode(),
        )?)
    }

    /// Opens a part's checksums made by [`Self::seal_part_checksums`].
    pub fn open_part_checksums(
        &self,
        part: u32,
        sealed: &[u8],
    ) -> Result<Checksums, EnvelopeError> {
        let plain = obhut_crypto::open_value(&self.key, &self.part_checksums_aad(part), sealed)?;
        Checksums::decode(&plain).map_err(|e| EnvelopeError::Malformed(e.to_string()))
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
        assert_eq!(legacy_object_key_aad("photos", &version_id), object_key);
        let bound = find(
            "wrapped_keys",
            "object key under the bucket key, bound to its object (envelope format 2)",
        );
        assert_eq!(
            object_key_aad(
                &Binding::object("acme", "photos", "2024/caf\u{e9}.jpg"),
                &version_id
            ),
            bound
        );
        let upload = find(
            "wrapped_keys",
            "upload key under the bucket key, bound to its upload (envelope format 2)",
        );
        assert_eq!(
            object_key_aad(
                &Binding::upload("acme", "photos", "big/video.mp4", "upload-0001"),
                &version_id
            ),
            upload
        );
        let meta = find("sealed_values", "object metadata under the object key");
        let version_id: [u8; 16] = meta[meta.len() - 16..].try_into().expect("id");
        let cipher = ObjectCipher {
            key: Key::random().expect("key"),
            version_id,
            segment_size: 65_536,
        };
        assert_eq!(cipher.meta_aad(), meta);
        assert_eq!(
            cipher.etag_aad(None),
            find("sealed_values", "object ETag under the object key")
        );
        assert_eq!(
            cipher.etag_aad(Some(3)),
            find("sealed_values", "part ETag under the upload's key")
        );
        assert_eq!(
            cipher.part_checksums_aad(3),
            find("sealed_values", "part checksums under the upload's key")
        );
    }

    #[test]
    fn envelopes_open_only_under_their_tenant_bucket_name_and_upload() {
        let bk = Key::random().unwrap();
        let here = Binding::object("acme", "photos", "a.jpg");
        let (c, env) = ObjectCipher::generate(&here, &bk, 1).unwrap();
        let parsed = ObjectCipher::parse_envelope(&env).unwrap();
        assert!(parsed.is_bound());
        let back = ObjectCipher::open(&here, &parsed, &bk).unwrap();
        assert_eq!(back.key.expose(), c.key.expose());
        for elsewhere in [
            Binding::object("acme", "photos", "b.jpg"),
            Binding::object("acme", "other", "a.jpg"),
            Binding::object("beta", "photos", "a.jpg"),
            Binding::upload("acme", "photos", "a.jpg", "u1"),
        ] {
            assert!(
                ObjectCipher::open(&elsewhere, &parsed, &bk).is_err(),
                "{elsewhere:?}"
            );
        }
        assert!(ObjectCipher::open(&here, &parsed, &Key::random().unwrap()).is_err());
        // Names that run into each other do not bind alike.
        let (_, env) = ObjectCipher::generate(&Binding::object("ab", "c", "d"), &bk, 1).unwrap();
        let parsed = ObjectCipher::parse_envelope(&env).unwrap();
        assert!(ObjectCipher::open(&Binding::object("a", "bc", "d"), &parsed, &bk).is_err());
    }

    #[test]
    fn legacy_envelopes_open_only_for_the_upgrade() {
        let bk = Key::random().unwrap();
        let (c, _) = ObjectCipher::generate(&Binding::object("t", "b", "k"), &bk, 1).unwrap();
        let (wrapped, kcv) =
            obhut_crypto::wrap_key(&bk, &c.key, &legacy_object_key_aad("b", &c.version_id))
                .unwrap();
        let legacy = Envelope {
            format: LEGACY_ENVELOPE_FORMAT,
            key_version: 1,
            version_id: hex(&c.version_id),
            wrapped_key: base64_simd::STANDARD.encode_to_string(&wrapped),
            kcv: hex(&kcv),
            segment_size: c.segment_size,
        };
        let parsed = ObjectCipher::parse_envelope(&serde_json::to_vec(&legacy).unwrap()).unwrap();
        assert!(!parsed.is_bound());
        assert!(matches!(
            ObjectCipher::open(&Binding::object("t", "b", "k"), &parsed, &bk),
            Err(EnvelopeError::Unbound(1))
        ));
        let back = ObjectCipher::open_legacy("b", &parsed, &bk).unwrap();
        assert_eq!(back.key.expose(), c.key.expose());
    }

    #[test]
    fn metadata_is_sealed_to_its_object_version() {
        let bk = Key::random().unwrap();
        let (a, _) = ObjectCipher::generate(&Binding::object("t", "b", "x"), &bk, 1).unwrap();
        let (b, _) = ObjectCipher::generate(&Binding::object("t", "b", "x"), &bk, 1).unwrap();
        let mut m = ObjectMeta::default();
        m.user.insert("secret".into(), "marker".into());
        let sealed = a.seal_meta(&m).unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"marker"));
        assert_eq!(a.open_meta(&sealed).unwrap(), m);
        assert!(b.open_meta(&sealed).is_err());
    }

    #[test]
    fn etags_are_sealed_to_their_object_version_and_part() {
        let bk = Key::random().unwrap();
        let (a, _) = ObjectCipher::generate(&Binding::object("t", "b", "x"), &bk, 1).unwrap();
        let (b, _) = ObjectCipher::generate(&Binding::object("t", "b", "x"), &bk, 1).unwrap();
        let md5 = "9e107d9d372bb6826bd81d3542a419d6";
        let stored = a.seal_etag(None, md5).unwrap();
        assert!(is_sealed_etag(&stored));
        assert!(!stored.contains(md5));
        assert_eq!(a.open_etag(None, &stored).unwrap(), md5);
        assert!(b.open_etag(None, &stored).is_err(), "another version");
        assert!(a.open_etag(Some(1), &stored).is_err(), "a part");
        assert!(a.open_etag(None, md5).is_err(), "an unsealed ETag");
        let part = a.seal_etag(Some(2), md5).unwrap();
        assert!(a.open_etag(Some(3), &part).is_err(), "another part number");
        let sums = Checksums {
            crc32: Some("AAAAAA==".into()),
            ..Checksums::default()
        };
        let sealed = a.seal_part_checksums(2, &sums).unwrap();
        assert_eq!(a.open_part_checksums(2, &sealed).unwrap(), sums);
        assert!(a.open_part_checksums(3, &sealed).is_err());
    }

    #[test]
    fn cached_keys_expire() {
        let cache = KeyCache::new(Duration::from_millis(50));
        let kcv = [1u8; KCV_LEN];
        cache.insert(cache.generation(), "t", "b", 1, kcv, Key::random().unwrap());
        assert!(cache.get("t", "b", 1, &kcv).is_some());
        assert!(cache.get("t", "b", 2, &kcv).is_none());
        std::thread::sleep(Duration::from_millis(80));
        assert!(cache.get("t", "b", 1, &kcv).is_none());
        cache.insert(cache.generation(), "t", "b", 1, kcv, Key::random().unwrap());
        cache.evict_bucket("b");
        assert!(cache.get("t", "b", 1, &kcv).is_none());
    }

    #[test]
    fn a_sweep_drops_expired_keys_nobody_asks_for() {
        let cache = KeyCache::new(Duration::from_millis(50));
        let kcv = [1u8; KCV_LEN];
        cache.insert(cache.generation(), "t", "b", 1, kcv, Key::random().unwrap());
        cache.sweep();
        assert_eq!(cache.len(), 1, "not expired yet");
        std::thread::sleep(Duration::from_millis(80));
        cache.sweep();
        assert!(cache.is_empty(), "expired keys leave memory without a get");
    }

    #[test]
    fn revocations_drop_exactly_the_named_tenants_keys() {
        let cache = KeyCache::new(Duration::from_secs(300));
        let kcv = [2u8; KCV_LEN];
        cache.insert(
            cache.generation(),
            "t1",
            "a",
            1,
            kcv,
            Key::random().unwrap(),
        );
        cache.insert(
            cache.generation(),
            "t2",
            "b",
            1,
            kcv,
            Key::random().unwrap(),
        );
        cache.revoke(&Revocation::Tenant {
            tenant: "t1".into(),
        });
        assert!(cache.get("t1", "a", 1, &kcv).is_none());
        assert!(cache.get("t2", "b", 1, &kcv).is_some());
        cache.revoke(&Revocation::All);
        assert!(cache.get("t2", "b", 1, &kcv).is_none());
    }

    #[test]
    fn a_key_released_before_a_revocation_is_not_cached_after_it() {
        let cache = KeyCache::new(Duration::from_secs(300));
        let kcv = [5u8; KCV_LEN];
        // A release asked for before the disconnect's revocation of every key, answered
        // after the gateway applied it.
        let asked = cache.generation();
        cache.revoke(&Revocation::All);
        cache.insert(asked, "t1", "b", 1, kcv, Key::random().unwrap());
        assert!(
            cache.get("t1", "b", 1, &kcv).is_none(),
            "cached after revoke-all"
        );
        assert!(cache.is_empty());
        // Likewise across a revocation of the tenant's keys.
        let asked = cache.generation();
        cache.revoke(&Revocation::Tenant {
            tenant: "t1".into(),
        });
        cache.insert(asked, "t1", "b", 1, kcv, Key::random().unwrap());
        assert!(cache.is_empty(), "cached after the tenant's revocation");
        // A policy change revokes no key; a release asked for after the revocation is kept.
        let asked = cache.generation();
        cache.revoke(&Revocation::Policy {
            tenant: "t1".into(),
        });
        cache.insert(asked, "t1", "b", 1, kcv, Key::random().unwrap());
        assert!(cache.get("t1", "b", 1, &kcv).is_some());
    }

    #[test]
    fn a_stale_key_never_stands_in_for_a_recreated_bucket_or_another_tenant() {
        let cache = KeyCache::new(Duration::from_secs(300));
        cache.insert(
            cache.generation(),
            "t1",
            "b",
            1,
            [3u8; KCV_LEN],
            Key::random().unwrap(),
        );
        assert!(
            cache.get("t2", "b", 1, &[3u8; KCV_LEN]).is_none(),
            "another tenant"
        );
        cache.insert(
            cache.generation(),
            "t1",
            "b",
            1,
            [3u8; KCV_LEN],
            Key::random().unwrap(),
        );
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
