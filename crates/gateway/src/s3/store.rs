//! What the operations share on top of the catalog, the keys and the sites: looking objects
//! up, placing and writing new blobs, committing and discarding them, and opening object keys.
//!
//! Keys are taken from the cache or released by the trustee for the request's justification;
//! nothing here decides who may ask (that is `crate::access`).

use super::checksums::empty_body;
use crate::access::ReqCtx;
use crate::datapath::{self, Verify, discard_blobs, read_range, write_blob};
use crate::keys::{Binding, ObjectCipher};
use crate::meta::Checksums;
use crate::{Gateway, error};
use obhut_catalog::{Chunk, ObjectRecord, Part, PutCondition, Upload};
use obhut_crypto::Key;
use obhut_sites::Site;
use obhut_trustee_client::{IntegrityAlarm, Justification, WrappedKey};
use s3s::checksum::ChecksumHasher;
use s3s::dto::StreamingBlob;
use s3s::{S3Error, S3ErrorCode, S3Result};
use std::sync::Arc;

/// Where a new blob goes: the sites chosen, and how many of them must hold it for the write
/// to succeed (all of them, unless the policy accepts degraded writes).
pub struct Placement {
    ids: Vec<String>,
    sites: Vec<Arc<dyn Site>>,
    min_ok: usize,
    /// What the policy requires; fewer holding sites make the object under-replicated.
    required: usize,
}

impl Placement {
    /// The ids of the sites chosen.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }
}

/// Bucket keys one request has used, by (bucket, version): a request under a grant (whose
/// keys are never cached) has each key released, and logged, once, however many records it
/// opens.
#[derive(Default)]
pub struct KeyMemo(std::sync::Mutex<std::collections::HashMap<(String, u32), Key>>);

impl KeyMemo {
    fn get(&self, bucket: &str, version: u32) -> Option<Key> {
        self.0
            .lock()
            .ok()?
            .get(&(bucket.to_owned(), version))
            .cloned()
    }

    fn put(&self, bucket: &str, version: u32, key: &Key) {
        if let Ok(mut m) = self.0.lock() {
            m.insert((bucket.to_owned(), version), key.clone());
        }
    }
}

/// An object opened for serving: its key and its ETag.
pub struct Opened {
    pub cipher: ObjectCipher,
    pub etag: String,
}

/// A blob on its way to the sites: the body, its expected length and the digests to check.
pub struct NewBlob {
    pub body: Option<StreamingBlob>,
    pub expected_len: Option<u64>,
    pub hasher: ChecksumHasher,
    pub verify: Verify<'static>,
}

/// A blob held by enough sites, with the ids of the sites that hold it.
pub struct Stored {
    pub written: datapath::Written,
    pub site_ids: Vec<String>,
}

impl Gateway {
    /// The object under `bucket`/`key`, or `NoSuchKey`.
    pub(super) async fn object(&self, bucket: &str, key: &str) -> S3Result<ObjectRecord> {
        self.catalog
            .get_object(bucket, key)
            .await
            .map_err(error::catalog)?
            .ok_or_else(|| error::with(S3ErrorCode::NoSuchKey, error::NO_SUCH_KEY))
    }

    /// Sites for a new object in the request's bucket, by its residency policy.
    pub(super) async fn placement(&self, ctx: &ReqCtx) -> S3Result<Placement> {
        let bucket = ctx.bucket()?.name.as_str();
        let policy = self
            .residency_policy(&ctx.tenant, bucket)
            .await
            .map_err(error::policy)?;
        self.place_by(bucket, &policy)
    }

    /// Sites for a new part of `upload`: the placement chosen when the upload was created, as
    /// long as each of its sites is still active; one chosen now by the current policy if a
    /// site left (a drain's repair moves the earlier parts the same way), or for an upload
    /// created before placements were kept. A placement outside the bucket's current policy
    /// is refused: the upload can never complete, and its parts stay where they are.
    pub(super) async fn upload_placement(
        &self,
        ctx: &ReqCtx,
        upload: &Upload,
    ) -> S3Result<Placement> {
        let bucket = ctx.bucket()?.name.as_str();
        let policy = self
            .residency_policy(&ctx.tenant, bucket)
            .await
            .map_err(error::policy)?;
        if upload.sites.is_empty() {
            return self.place_by(bucket, &policy);
        }
        let infos = self.sites.infos();
        // A site since removed from the registry (drained first) is no residency question,
        // only one that is gone; a registered one in a jurisdiction no longer allowed is.
        let registered: Vec<String> = upload
            .sites
            .iter()
            .filter(|id| infos.iter().any(|s| s.id == **id))
            .cloned()
            .collect();
        self.check_within_policy(&infos, &policy, &registered)?;
        let all_active = upload.sites.iter().all(|id| {
            infos
                .iter()
                .any(|s| s.id == *id && s.state == obhut_core::SiteState::Active)
        });
        if !all_active {
            return self.place_by(bucket, &policy);
        }
        let sites = self.sites.resolve(&upload.sites)?;
        let min_ok = if policy.degraded_writes {
            1
        } else {
            upload.sites.len()
        };
        Ok(Placement {
            ids: upload.sites.clone(),
            sites,
            min_ok,
            required: policy.min_sites,
        })
    }

    /// Refuses `ids` unless every one is a registered site in a jurisdiction `policy` allows.
    pub(super) fn check_within_policy(
        &self,
        infos: &[obhut_core::SiteInfo],
        policy: &obhut_core::Policy,
        ids: &[String],
    ) -> S3Result<()> {
        for id in ids {
            let allowed = infos
                .iter()
                .find(|s| s.id == *id)
                .is_some_and(|s| policy.jurisdictions.contains(&s.jurisdiction));
            if !allowed {
                return Err(S3Error::with_message(
                    S3ErrorCode::InvalidRequest,
                    format!(
                        "{}: site {id} is not in the bucket's residency policy (jurisdictions {}); abort the upload and upload again",
                        error::UPLOAD_OUTSIDE_POLICY,
                        policy.jurisdictions.join(",")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Chooses the sites for a new blob of `bucket` by `policy`.
    fn place_by(&self, bucket: &str, policy: &obhut_core::Policy) -> S3Result<Placement> {
        let infos = self.sites.infos();
        let (chosen, short) = obhut_core::place_or_degrade(
            &infos,
            &policy.jurisdictions,
            policy.min_sites,
            policy.degraded_writes,
        )
        .map_err(|e| error::placement(&e))?;
        let ids: Vec<String> = chosen.iter().map(|s| s.id.clone()).collect();
        if short {
            tracing::warn!(bucket = %obhut_core::logged(bucket), sites = ?ids, required = policy.min_sites, "degraded write: fewer sites than the policy requires; the object will be repaired");
            self.maintenance.note_under_replicated();
        }
        let sites = self.sites.resolve(&ids)?;
        let min_ok = if policy.degraded_writes { 1 } else { ids.len() };
        Ok(Placement {
            ids,
            sites,
            min_ok,
            required: policy.min_sites,
        })
    }

    /// Writes `blob` as part `part` of an object encrypted under `cipher` to the `placed`
    /// sites; notes an under-replicated result for repair.
    pub(super) async fn store(
        &self,
        placed: &Placement,
        blob: NewBlob,
        cipher: &ObjectCipher,
        part: u32,
    ) -> S3Result<Stored> {
        let written = write_blob(
            &placed.sites,
            placed.min_ok,
            blob.body.unwrap_or_else(empty_body),
            blob.expected_len,
            blob.hasher,
            blob.verify,
            cipher,
            part,
        )
        .await?;
        let site_ids: Vec<String> = written
            .sites
            .iter()
            .filter_map(|&i| placed.ids.get(i).cloned())
            .collect();
        if site_ids.len() < placed.required {
            tracing::warn!(sites = ?site_ids, required = placed.required, "write held by fewer sites than the policy requires; it will be repaired");
            self.maintenance.note_under_replicated();
        }
        Ok(Stored { written, site_ids })
    }

    pub(super) fn discard_chunks(
        &self,
        site_ids: &[String],
        chunks: impl IntoIterator<Item = Chunk>,
    ) {
        let sites = site_ids
            .iter()
            .filter_map(|id| self.sites.get(id))
            .collect();
        discard_blobs(sites, chunks.into_iter().map(|c| c.blob).collect());
    }

    pub(crate) fn discard_object(&self, o: ObjectRecord) {
        self.discard_chunks(&o.sites, o.chunks);
    }

    pub(crate) fn discard_parts(&self, parts: Vec<Part>) {
        for p in parts {
            self.discard_chunks(&p.sites, [p.chunk]);
        }
    }

    /// Commits a new object, discarding what it replaced, or its own blobs if the commit fails.
    pub(super) async fn commit_object(
        &self,
        record: &ObjectRecord,
        condition: PutCondition,
    ) -> S3Result<()> {
        match self.catalog.put_object(record, condition).await {
            Ok(old) => {
                if let Some(old) = old {
                    self.discard_object(old);
                }
                Ok(())
            }
            Err(e) => {
                self.discard_object(record.clone());
                Err(error::catalog(e))
            }
        }
    }

    /// A bucket key version, from the request's `memo`, the cache or released by the trustee
    /// for `why`.
    pub(crate) async fn bucket_key_in(
        &self,
        tenant: &str,
        bucket: &str,
        version: u32,
        why: &Justification,
        memo: &KeyMemo,
    ) -> S3Result<Key> {
        if let Some(k) = memo.get(bucket, version) {
            return Ok(k);
        }
        let key = self.bucket_key(tenant, bucket, version, why).await?;
        memo.put(bucket, version, &key);
        Ok(key)
    }

    /// A bucket key version, from the cache or released by the trustee for `why`.
    pub(crate) async fn bucket_key(
        &self,
        tenant: &str,
        bucket: &str,
        version: u32,
        why: &Justification,
    ) -> S3Result<Key> {
        let stored = self
            .catalog
            .get_bucket_key(bucket, version)
            .await
            .map_err(error::catalog)?
            .ok_or_else(|| error::missing_bucket_key(version))?;
        let wrapped = WrappedKey {
            version,
            kcv: stored.kcv.as_slice().try_into().map_err(|_| {
                error::with(S3ErrorCode::InternalError, error::MALFORMED_BUCKET_KEY)
            })?,
            wrapped: stored.wrapped,
        };
        // Keys used under a grant are neither taken from nor kept in the cache: the trustee
        // checks the grant and logs the release for every request made under it.
        let under_grant = matches!(why, Justification::Grant { .. });
        if !under_grant && let Some(k) = self.keys.get(tenant, bucket, version, &wrapped.kcv) {
            return Ok(k);
        }
        let key = self
            .trustee
            .release_bucket_key(tenant, bucket, &wrapped, why)
            .await
            .map_err(error::trustee)?;
        crate::note_release(why);
        if !under_grant {
            self.keys
                .insert(tenant, bucket, version, wrapped.kcv, key.clone());
        }
        Ok(key)
    }

    /// The bucket's current key version, released for `why`. Every operation on a tenant's
    /// data asks for it first, so a sealed or unreachable trustee stops them all, listings and
    /// deletes included (names, sizes and ETags are the tenant's data too).
    pub(crate) async fn current_bucket_key(
        &self,
        tenant: &str,
        bucket: &str,
        why: &Justification,
        memo: &KeyMemo,
    ) -> S3Result<(Key, u32)> {
        let current = self
            .catalog
            .current_bucket_key(bucket)
            .await
            .map_err(error::catalog)?
            .ok_or_else(|| error::with(S3ErrorCode::InternalError, error::BUCKET_WITHOUT_KEY))?;
        let bk = self
            .bucket_key_in(tenant, bucket, current.version, why, memo)
            .await?;
        Ok((bk, current.version))
    }

    /// A new object version's key, wrapped under the bucket's current key and bound to
    /// `binding`.
    pub(super) async fn new_cipher(
        &self,
        binding: &Binding<'_>,
        why: &Justification,
    ) -> S3Result<(ObjectCipher, Vec<u8>)> {
        let (bk, version) = self
            .current_bucket_key(binding.tenant, binding.bucket, why, &KeyMemo::default())
            .await?;
        ObjectCipher::generate(binding, &bk, version).map_err(|e| error::envelope(&e))
    }

    /// `cipher`'s envelope bound to `binding`, under the bucket's current key: a completed
    /// upload's key becomes its object's.
    pub(super) async fn bind(
        &self,
        binding: &Binding<'_>,
        cipher: &ObjectCipher,
        why: &Justification,
        memo: &KeyMemo,
    ) -> S3Result<Vec<u8>> {
        let (bk, version) = self
            .current_bucket_key(binding.tenant, binding.bucket, why, memo)
            .await?;
        cipher
            .envelope_under(binding, &bk, version)
            .map_err(|e| error::envelope(&e))
    }

    /// Opens the key of the record filed under `binding`. A record whose envelope is not
    /// bound to exactly that tenant, bucket, name and upload (copied or moved there in the
    /// catalog, or edited) is an integrity failure: reported, and nothing is served.
    pub(crate) async fn open_bound(
        &self,
        binding: &Binding<'_>,
        envelope: &[u8],
        why: &Justification,
        memo: &KeyMemo,
    ) -> S3Result<ObjectCipher> {
        let env = ObjectCipher::parse_envelope(envelope)
            .map_err(|e| self.integrity_failure(binding, &e.to_string()))?;
        if !env.is_bound() {
            if !self.upgrade.is_done() {
                return Err(error::legacy_pending());
            }
            return Err(self.integrity_failure(
                binding,
                "an envelope in the unbound format 1 after every record was upgraded",
            ));
        }
        // A record moved from another bucket may name a key version this one does not have.
        if memo.get(binding.bucket, env.key_version).is_none()
            && self
                .catalog
                .get_bucket_key(binding.bucket, env.key_version)
                .await
                .map_err(error::catalog)?
                .is_none()
        {
            return Err(self.integrity_failure(
                binding,
                &format!(
                    "the envelope names bucket key version {}, which the bucket does not have",
                    env.key_version
                ),
            ));
        }
        let bk = self
            .bucket_key_in(binding.tenant, binding.bucket, env.key_version, why, memo)
            .await?;
        ObjectCipher::open(binding, &env, &bk).map_err(|e| {
            self.integrity_failure(binding, &format!("the object key does not open here: {e}"))
        })
    }

    /// Opens object `o` of `tenant`: its key and its ETag.
    pub(crate) async fn open_object(
        &self,
        tenant: &str,
        o: &ObjectRecord,
        why: &Justification,
        memo: &KeyMemo,
    ) -> S3Result<Opened> {
        let binding = Binding::object(tenant, &o.bucket, &o.key);
        let cipher = self.open_bound(&binding, &o.envelope, why, memo).await?;
        let etag = cipher.open_etag(None, &o.etag).map_err(|e| {
            self.integrity_failure(&binding, &format!("the ETag does not open: {e}"))
        })?;
        Ok(Opened { cipher, etag })
    }

    /// Opens the key of upload `u` of `tenant`.
    pub(crate) async fn open_upload(
        &self,
        tenant: &str,
        u: &Upload,
        why: &Justification,
        memo: &KeyMemo,
    ) -> S3Result<ObjectCipher> {
        let binding = Binding::upload(tenant, &u.bucket, &u.key, &u.upload_id);
        self.open_bound(&binding, &u.envelope, why, memo).await
    }

    /// A part's ETag and checksums, opened with its upload's key.
    pub(crate) fn open_part(
        &self,
        tenant: &str,
        u: &Upload,
        cipher: &ObjectCipher,
        p: &Part,
    ) -> S3Result<(String, Checksums)> {
        let opened = cipher
            .open_etag(Some(p.part_number), &p.etag)
            .and_then(|etag| {
                cipher
                    .open_part_checksums(p.part_number, &p.checksums)
                    .map(|c| (etag, c))
            });
        opened.map_err(|e| {
            self.integrity_failure(
                &Binding::upload(tenant, &u.bucket, &u.key, &u.upload_id),
                &format!("part {} does not open: {e}", p.part_number),
            )
        })
    }

    /// An integrity failure of the record filed under `binding`: logged here, reported once to
    /// the trustee's transparency log (an `integrity_alarm` entry), answered with
    /// [`error::integrity`].
    pub(crate) fn integrity_failure(&self, binding: &Binding<'_>, reason: &str) -> s3s::S3Error {
        tracing::error!(
            tenant = %obhut_core::logged(binding.tenant),
            bucket = %obhut_core::logged(binding.bucket),
            key = %obhut_core::logged(binding.key),
            upload = binding.upload,
            reason,
            "a catalog record failed its integrity check; nothing is served from it"
        );
        let alarm = IntegrityAlarm {
            tenant: binding.tenant.to_owned(),
            bucket: binding.bucket.to_owned(),
            key: binding.key.to_owned(),
            upload: binding.upload.map(str::to_owned),
            reason: reason.chars().take(500).collect(),
        };
        if self.alarms.first_time(&alarm) {
            let trustee = Arc::clone(&self.trustee);
            let alarms = Arc::clone(&self.alarms);
            tokio::spawn(async move {
                match trustee.report_integrity(&alarm).await {
                    Ok(index) => tracing::warn!(
                        log_index = index,
                        "integrity alarm recorded in the transparency log"
                    ),
                    Err(e) => {
                        tracing::error!(error = %e, "the trustee did not record an integrity alarm; it is reported again on the next failure");
                        alarms.forget(&alarm);
                    }
                }
            });
        }
        error::integrity()
    }

    /// Streams and decrypts `range` of object `o` from its replicas.
    pub(super) fn read(
        &self,
        o: &ObjectRecord,
        range: std::ops::Range<u64>,
        cipher: Arc<ObjectCipher>,
    ) -> StreamingBlob {
        let sites = o.sites.iter().filter_map(|id| self.sites.get(id)).collect();
        let maintenance = Arc::clone(&self.maintenance);
        let (bucket, key) = (o.bucket.clone(), o.key.clone());
        let on_fault: datapath::FaultReport =
            Arc::new(move || maintenance.report_fault(&bucket, &key));
        read_range(sites, o.chunks.clone(), range, cipher, Some(on_fault))
    }
}
