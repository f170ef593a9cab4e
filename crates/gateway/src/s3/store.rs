//! What the operations share on top of the catalog, the keys and the sites: looking objects
//! up, placing and writing new blobs, committing and discarding them, and opening object keys.
//!
//! Keys are taken from the cache or released by the trustee for the request's justification;
//! nothing here decides who may ask (that is `crate::access`).

use super::checksums::empty_body;
use crate::access::ReqCtx;
use crate::datapath::{self, Verify, discard_blobs, read_range, write_blob};
use crate::keys::{Binding, Envelope, ObjectCipher};
use crate::meta::Checksums;
use crate::quota::Hold;
use crate::{Gateway, error};
use obhut_catalog::{Bucket, Chunk, ObjectRecord, Part, PutCondition, Upload};
use obhut_crypto::Key;
use obhut_sites::Site;
use obhut_trustee_client::object_keys::{ObjectKeyOp, ObjectKeyOutcome, ObjectName};
use obhut_trustee_client::{IntegrityAlarm, Justification, TrusteeError, WrappedKey};
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

/// Keys one request has used: bucket keys by (bucket, version), so that a request under a
/// grant (whose keys are never cached) has each key released, and logged, once, however many
/// records it opens; and whether the trustee has already been asked for the request's keys
/// of a bucket whose tenant's keys are opened per object.
#[derive(Default)]
pub struct KeyMemo {
    buckets: std::sync::Mutex<std::collections::HashMap<(String, u32), Key>>,
    asked: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl KeyMemo {
    fn get(&self, bucket: &str, version: u32) -> Option<Key> {
        self.buckets
            .lock()
            .ok()?
            .get(&(bucket.to_owned(), version))
            .cloned()
    }

    fn put(&self, bucket: &str, version: u32, key: &Key) {
        if let Ok(mut m) = self.buckets.lock() {
            m.insert((bucket.to_owned(), version), key.clone());
        }
    }

    fn asked(&self, bucket: &str) -> bool {
        self.asked.lock().is_ok_and(|m| m.contains(bucket))
    }

    fn note_asked(&self, bucket: &str) {
        if let Ok(mut m) = self.asked.lock() {
            m.insert(bucket.to_owned());
        }
    }
}

/// Where a listed record is filed: bucket, object name, upload (for an upload's record) and
/// its envelope.
type Filed = (String, String, Option<String>, Vec<u8>);

/// The binding of `tenant`'s record filed as `f`.
fn filed_binding<'a>(tenant: &'a str, f: &'a Filed) -> Binding<'a> {
    Binding {
        tenant,
        bucket: &f.0,
        key: &f.1,
        upload: f.2.as_deref(),
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

    /// The blobs of a record the catalog no longer holds (deleted, overwritten, replaced):
    /// with a retention of removed blobs they stay for orphan collection, which removes them
    /// once no record has named them for the retention (a catalog restored to an earlier
    /// point names them); without one they go now.
    pub(super) fn discard_chunks(
        &self,
        site_ids: &[String],
        chunks: impl IntoIterator<Item = Chunk>,
    ) {
        if !self.config.blob_retention.is_zero() {
            return;
        }
        self.discard_uncommitted(site_ids, chunks);
    }

    /// The blobs of a write whose record the catalog certainly never held (its commit was
    /// refused): no catalog, restored or not, names them, so they go now.
    pub(super) fn discard_uncommitted(
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

    /// After a failed commit of `chunks`: removed at once if the catalog refused it; left to
    /// orphan collection if the commit may have happened all the same (no answer within the
    /// deadline, a lost connection), where the object may yet be visible with them.
    pub(super) fn discard_after_failed_commit(
        &self,
        e: &obhut_catalog::CatalogError,
        site_ids: &[String],
        chunks: impl IntoIterator<Item = Chunk>,
    ) {
        if e.may_have_taken_effect() {
            tracing::warn!(error = %e, "a commit's outcome is unknown: its blobs are left to orphan collection");
            return;
        }
        self.discard_uncommitted(site_ids, chunks);
    }

    /// Commits a new object, settling its quota `hold`, discarding what it replaced, or its own
    /// blobs if the commit fails (the hold is then released). A first object lock record
    /// sealed for it stays in the trustee's list either way: the trustee abandons no seal, so
    /// a failed commit's lock counts (blocks a shred) until its date, which the tenant signed.
    pub(super) async fn commit_object(
        &self,
        bucket: &Bucket,
        record: &ObjectRecord,
        condition: PutCondition,
        hold: Hold,
    ) -> S3Result<()> {
        match self
            .catalog
            .put_object_settling(bucket, record, condition, hold.id())
            .await
        {
            Ok(old) => {
                hold.settled();
                if let Some(old) = old {
                    self.discard_object(old);
                }
                Ok(())
            }
            Err(e) => {
                self.discard_after_failed_commit(&e, &record.sites, record.chunks.clone());
                Err(error::catalog(e))
            }
        }
    }

    /// A bucket key version, from the request's `memo`, the cache or released by the trustee
    /// for `why`; `None` if the tenant's keys are opened per object by the trustee (then no
    /// bucket key leaves it).
    pub(crate) async fn bucket_key_in(
        &self,
        tenant: &str,
        bucket: &str,
        version: u32,
        why: &Justification,
        memo: &KeyMemo,
    ) -> S3Result<Option<Key>> {
        if let Some(k) = memo.get(bucket, version) {
            return Ok(Some(k));
        }
        let key = self
            .released_bucket_key(tenant, bucket, version, why)
            .await?;
        if let Some(k) = &key {
            memo.put(bucket, version, k);
        }
        Ok(key)
    }

    /// A bucket key version as the catalog holds it: wrapped under the tenant key.
    pub(crate) async fn wrapped_bucket_key(
        &self,
        bucket: &str,
        version: u32,
    ) -> S3Result<WrappedKey> {
        let stored = self
            .catalog
            .get_bucket_key(bucket, version)
            .await
            .map_err(error::catalog)?
            .ok_or_else(|| error::missing_bucket_key(version))?;
        Ok(WrappedKey {
            version,
            kcv: stored.kcv.as_slice().try_into().map_err(|_| {
                error::with(S3ErrorCode::InternalError, error::MALFORMED_BUCKET_KEY)
            })?,
            wrapped: stored.wrapped,
        })
    }

    pub(crate) async fn released_bucket_key(
        &self,
        tenant: &str,
        bucket: &str,
        version: u32,
        why: &Justification,
    ) -> S3Result<Option<Key>> {
        // The trustee said lately that this tenant's bucket keys never leave it.
        if self.keys.is_per_object(tenant) {
            return Ok(None);
        }
        let wrapped = self.wrapped_bucket_key(bucket, version).await?;
        // Keys used under a grant are neither taken from nor kept in the cache: the trustee
        // checks the grant and logs the release for every request made under it. Nor are keys
        // obhut itself uses (lifecycle's tag reads): each use is a release the trustee logs.
        let under_grant = matches!(
            why,
            Justification::Grant { .. } | Justification::System { .. }
        );
        if !under_grant && let Some(k) = self.keys.get(tenant, bucket, version, &wrapped.kcv) {
            return Ok(Some(k));
        }
        // Before asking: a revocation applied while the trustee answers keeps the key out of
        // the cache.
        let asked = self.keys.generation();
        let key = match self
            .trustee
            .release_bucket_key(tenant, bucket, &wrapped, why)
            .await
        {
            Ok(k) => k,
            Err(TrusteeError::ObjectKeysOnly(_)) => {
                self.keys.mark_per_object(tenant);
                return Ok(None);
            }
            // The wrapped key does not open as this tenant's key of this bucket: the catalog's
            // record of the bucket (its owner, or its key) was edited. A 409 and an alarm, as
            // for an object's record, not a 503 that invites a retry.
            Err(TrusteeError::Integrity(detail)) => {
                let reason = format!("the bucket's key does not open for this tenant: {detail}");
                return Err(self.integrity_failure(&Binding::object(tenant, bucket, ""), &reason));
            }
            Err(e) => return Err(error::trustee(e)),
        };
        crate::note_release(why);
        if !under_grant {
            self.keys
                .insert(asked, tenant, bucket, version, wrapped.kcv, key.clone());
        }
        Ok(Some(key))
    }

    /// Asks the trustee to open or wrap object keys of `bucket` (key version `version`) for
    /// `why`: the bucket key stays in the trustee.
    async fn object_keys(
        &self,
        tenant: &str,
        bucket: &str,
        version: u32,
        why: &Justification,
        memo: &KeyMemo,
        ops: Vec<ObjectKeyOp>,
    ) -> S3Result<Vec<ObjectKeyOutcome>> {
        let wrapped = self.wrapped_bucket_key(bucket, version).await?;
        let outcomes = self
            .trustee
            .object_keys(tenant, bucket, &wrapped, why, ops)
            .await
            .map_err(error::trustee)?;
        if !outcomes.is_empty() {
            // Per object, each request's opening is a release of its own.
            crate::note_release(why);
        }
        memo.note_asked(bucket);
        Ok(outcomes)
    }

    /// The bucket's current key version, and the key unless the tenant's keys are opened per
    /// object.
    async fn current_key(
        &self,
        tenant: &str,
        bucket: &str,
        why: &Justification,
        memo: &KeyMemo,
    ) -> S3Result<(Option<Key>, u32)> {
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

    /// Asks the trustee for the bucket's keys for `why` before anything about its contents
    /// is answered. Every operation on a tenant's data does, so a sealed or unreachable
    /// trustee (or one that refuses, e.g. after a crypto-shred) stops them all, listings and
    /// deletes included: names, sizes and ETags are the tenant's data too. For a tenant whose
    /// keys are opened per object, the trustee checks the request without opening any key.
    pub(crate) async fn require_keys(
        &self,
        tenant: &str,
        bucket: &str,
        why: &Justification,
        memo: &KeyMemo,
    ) -> S3Result<()> {
        let (bk, version) = self.current_key(tenant, bucket, why, memo).await?;
        if bk.is_none() && !memo.asked(bucket) {
            self.object_keys(tenant, bucket, version, why, memo, Vec::new())
                .await?;
        }
        Ok(())
    }

    /// Whether the tenant's object keys are opened per object by the trustee, as far as this
    /// gateway knows.
    pub(crate) fn keys_per_object(&self, tenant: &str) -> bool {
        self.keys.is_per_object(tenant)
    }

    /// `cipher` wrapped under the bucket's current key and bound to `binding`, here or (per
    /// object) by the trustee.
    async fn wrap(
        &self,
        binding: &Binding<'_>,
        cipher: &ObjectCipher,
        why: &Justification,
        memo: &KeyMemo,
    ) -> S3Result<Vec<u8>> {
        let (bk, version) = self
            .current_key(binding.tenant, binding.bucket, why, memo)
            .await?;
        if let Some(bk) = bk {
            return cipher
                .envelope_under(binding, &bk, version)
                .map_err(|e| error::envelope(&e));
        }
        let op = ObjectKeyOp::Wrap {
            name: ObjectName {
                key: binding.key.to_owned(),
                upload: binding.upload.map(str::to_owned),
            },
            version_id: cipher.version_id,
            key: cipher.key.clone(),
        };
        let outcome = self
            .object_keys(binding.tenant, binding.bucket, version, why, memo, vec![op])
            .await?
            .pop();
        match outcome {
            Some(ObjectKeyOutcome::Wrapped { wrapped, kcv }) => cipher
                .envelope_of(version, &wrapped, &kcv)
                .map_err(|e| error::envelope(&e)),
            _ => Err(error::trustee(TrusteeError::Unavailable(
                "the trustee did not wrap the new object key".into(),
            ))),
        }
    }

    /// A new object version's key, wrapped under the bucket's current key and bound to
    /// `binding`.
    pub(super) async fn new_cipher(
        &self,
        binding: &Binding<'_>,
        why: &Justification,
    ) -> S3Result<(ObjectCipher, Vec<u8>)> {
        let cipher = ObjectCipher::fresh().map_err(|e| error::envelope(&e))?;
        let envelope = self
            .wrap(binding, &cipher, why, &KeyMemo::default())
            .await?;
        Ok((cipher, envelope))
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
        self.wrap(binding, cipher, why, memo).await
    }

    /// Parses the envelope of the record filed under `binding` and checks that the bucket
    /// has the key version it names. A record whose envelope is not bound (and the upgrade is
    /// done), or that names a version the bucket lacks (moved from another bucket), is an
    /// integrity failure: reported, and nothing is served.
    async fn bound_envelope(
        &self,
        binding: &Binding<'_>,
        envelope: &[u8],
        memo: &KeyMemo,
    ) -> S3Result<Envelope> {
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
        Ok(env)
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
        let env = self.bound_envelope(binding, envelope, memo).await?;
        let refused = |e: &dyn std::fmt::Display| {
            self.integrity_failure(binding, &format!("the object key does not open here: {e}"))
        };
        if let Some(bk) = self
            .bucket_key_in(binding.tenant, binding.bucket, env.key_version, why, memo)
            .await?
        {
            return ObjectCipher::open(binding, &env, &bk).map_err(|e| refused(&e));
        }
        let sealed = ObjectCipher::sealed_key(binding, &env).map_err(|e| refused(&e))?;
        let outcome = self
            .object_keys(
                binding.tenant,
                binding.bucket,
                env.key_version,
                why,
                memo,
                vec![ObjectKeyOp::Open(sealed)],
            )
            .await?
            .pop();
        match outcome {
            Some(ObjectKeyOutcome::Key(key)) => {
                ObjectCipher::opened(&env, key).map_err(|e| refused(&e))
            }
            Some(ObjectKeyOutcome::Refused(reason)) => {
                Err(self.integrity_failure(binding, &reason))
            }
            _ => Err(error::trustee(TrusteeError::Unavailable(
                "the trustee did not open the object key".into(),
            ))),
        }
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
        // A version's id is the one its key is bound to: a record moved to another version's
        // row (or given another id) opens, but no longer matches.
        if let Some(id) = &o.version_id
            && *id != super::convert::hex(&cipher.version_id)
        {
            return Err(self.integrity_failure(&binding, crate::error::VERSION_NOT_BOUND));
        }
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

    /// The ETags of listed objects of `tenant`; a record that fails its integrity check is
    /// left out (and reported). For a tenant whose keys are opened per object, the trustee
    /// opens the ETags in one call per key version and no object key leaves it.
    pub(crate) async fn listed_etags(
        &self,
        tenant: &str,
        objects: Vec<ObjectRecord>,
        why: &Justification,
        memo: &KeyMemo,
    ) -> S3Result<Vec<(ObjectRecord, String)>> {
        let records = objects
            .into_iter()
            .map(|o| {
                let etag = o.etag.clone();
                (o, Some(etag))
            })
            .collect();
        self.listed(tenant, records, why, memo, |o: &ObjectRecord| {
            (o.bucket.clone(), o.key.clone(), None, o.envelope.clone())
        })
        .await
        .map(|v| {
            v.into_iter()
                .map(|(o, etag)| (o, etag.unwrap_or_default()))
                .collect()
        })
    }

    /// The ETag of object `o` of `tenant` (a conditional write compares it): per object,
    /// the trustee opens it without handing the key out.
    pub(crate) async fn current_etag(
        &self,
        tenant: &str,
        o: &ObjectRecord,
        why: &Justification,
        memo: &KeyMemo,
    ) -> S3Result<String> {
        let binding = Binding::object(tenant, &o.bucket, &o.key);
        let mut opened = self
            .listed_etags(tenant, vec![o.clone()], why, memo)
            .await?;
        match opened.pop() {
            Some((_, etag)) => Ok(etag),
            // Left out: it failed its integrity check (and was reported).
            None => Err(self.integrity_failure(&binding, "the record does not open here")),
        }
    }

    /// The listed uploads of `tenant` whose keys open where they are filed; the others are
    /// left out (and reported).
    pub(crate) async fn listed_uploads(
        &self,
        tenant: &str,
        uploads: Vec<Upload>,
        why: &Justification,
        memo: &KeyMemo,
    ) -> S3Result<Vec<Upload>> {
        let records = uploads.into_iter().map(|u| (u, None)).collect();
        self.listed(tenant, records, why, memo, |u: &Upload| {
            (
                u.bucket.clone(),
                u.key.clone(),
                Some(u.upload_id.clone()),
                u.envelope.clone(),
            )
        })
        .await
        .map(|v| v.into_iter().map(|(u, _)| u).collect())
    }

    /// Opens listed records: each with its key here (bucket keys), or all at once in the
    /// trustee (per object). A record given with its stored ETag answers its ETag.
    async fn listed<R>(
        &self,
        tenant: &str,
        records: Vec<(R, Option<String>)>,
        why: &Justification,
        memo: &KeyMemo,
        filed: impl Fn(&R) -> Filed,
    ) -> S3Result<Vec<(R, Option<String>)>> {
        // Answers in the records' order (listings are sorted); `None`: left out.
        let mut out: Vec<Option<(R, Option<String>)>> = Vec::with_capacity(records.len());
        // (position, record, stored ETag, envelope) of records left for the trustee, by key
        // version.
        type Pending<R> = Vec<(usize, R, Option<String>, Envelope)>;
        let mut per_object: std::collections::BTreeMap<u32, Pending<R>> =
            std::collections::BTreeMap::new();
        for (r, stored_etag) in records {
            let at = out.len();
            out.push(None);
            let record = filed(&r);
            let binding = filed_binding(tenant, &record);
            let env = match self.bound_envelope(&binding, &record.3, memo).await {
                Ok(env) => env,
                Err(e) if *e.code() == S3ErrorCode::InvalidObjectState => continue,
                Err(e) => return Err(e),
            };
            let Some(bk) = self
                .bucket_key_in(tenant, &record.0, env.key_version, why, memo)
                .await?
            else {
                per_object
                    .entry(env.key_version)
                    .or_default()
                    .push((at, r, stored_etag, env));
                continue;
            };
            let opened = ObjectCipher::open(&binding, &env, &bk)
                .map_err(|e| format!("the object key does not open here: {e}"))
                .and_then(|c| match &stored_etag {
                    Some(stored) => c
                        .open_etag(None, stored)
                        .map(Some)
                        .map_err(|e| format!("the ETag does not open: {e}")),
                    None => Ok(None),
                });
            match opened {
                Ok(etag) => out[at] = Some((r, etag)),
                Err(reason) => {
                    self.integrity_failure(&binding, &reason);
                }
            }
        }
        for (version, batch) in per_object {
            let Some((_, first, _, _)) = batch.first() else {
                continue;
            };
            let bucket = filed(first).0;
            let mut ops = Vec::with_capacity(batch.len());
            for (_, r, stored_etag, env) in &batch {
                let record = filed(r);
                let binding = filed_binding(tenant, &record);
                let sealed = ObjectCipher::sealed_key(&binding, env)
                    .map_err(|e| self.integrity_failure(&binding, &e.to_string()))?;
                ops.push(match stored_etag {
                    Some(stored) => ObjectKeyOp::Etag(sealed, stored.clone()),
                    None => ObjectKeyOp::Check(sealed),
                });
            }
            let outcomes = self
                .object_keys(tenant, &bucket, version, why, memo, ops)
                .await?;
            for ((at, r, _, _), outcome) in batch.into_iter().zip(outcomes) {
                match outcome {
                    ObjectKeyOutcome::Etag(etag) => out[at] = Some((r, Some(etag))),
                    ObjectKeyOutcome::Checked => out[at] = Some((r, None)),
                    ObjectKeyOutcome::Refused(reason) => {
                        self.integrity_failure(&filed_binding(tenant, &filed(&r)), &reason);
                    }
                    ObjectKeyOutcome::Key(_) | ObjectKeyOutcome::Wrapped { .. } => {
                        return Err(error::trustee(TrusteeError::Unavailable(
                            "the trustee answered a listing with keys".into(),
                        )));
                    }
                }
            }
        }
        Ok(out.into_iter().flatten().collect())
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
        let (bucket, key, version) = (o.bucket.clone(), o.key.clone(), o.version_id.clone());
        let on_fault: datapath::FaultReport =
            Arc::new(move || maintenance.report_fault(&bucket, &key, version.as_deref()));
        read_range(sites, o.chunks.clone(), range, cipher, Some(on_fault))
    }
}
