//! What the operations share on top of the catalog, the keys and the sites: looking objects
//! up, placing and writing new blobs, committing and discarding them, and opening object keys.
//!
//! Keys are taken from the cache or released by the trustee for the request's justification;
//! nothing here decides who may ask (that is `crate::access`).

use super::checksums::empty_body;
use crate::access::ReqCtx;
use crate::datapath::{self, Verify, discard_blobs, read_range, write_blob};
use crate::keys::ObjectCipher;
use crate::{Gateway, error};
use obhut_catalog::{Chunk, ObjectRecord, Part, PutCondition, Upload};
use obhut_crypto::Key;
use obhut_sites::Site;
use obhut_trustee_client::{Justification, WrappedKey};
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

    pub(super) fn discard_object(&self, o: ObjectRecord) {
        self.discard_chunks(&o.sites, o.chunks);
    }

    pub(super) fn discard_parts(&self, parts: Vec<Part>) {
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
        if !under_grant {
            self.keys
                .insert(tenant, bucket, version, wrapped.kcv, key.clone());
        }
        Ok(key)
    }

    /// A new object version's key, wrapped under the bucket's current key.
    pub(super) async fn new_cipher(
        &self,
        tenant: &str,
        bucket: &str,
        why: &Justification,
    ) -> S3Result<(ObjectCipher, Vec<u8>)> {
        let current = self
            .catalog
            .current_bucket_key(bucket)
            .await
            .map_err(error::catalog)?
            .ok_or_else(|| error::with(S3ErrorCode::InternalError, error::BUCKET_WITHOUT_KEY))?;
        let bk = self
            .bucket_key(tenant, bucket, current.version, why)
            .await?;
        ObjectCipher::generate(bucket, &bk, current.version).map_err(|e| error::envelope(&e))
    }

    /// Opens an object version's key from its envelope.
    pub(super) async fn open_cipher(
        &self,
        tenant: &str,
        bucket: &str,
        envelope: &[u8],
        why: &Justification,
    ) -> S3Result<ObjectCipher> {
        let env = ObjectCipher::parse_envelope(envelope).map_err(|e| error::envelope(&e))?;
        let bk = self
            .bucket_key(tenant, bucket, env.key_version, why)
            .await?;
        ObjectCipher::open(bucket, &env, &bk).map_err(|e| error::envelope(&e))
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
