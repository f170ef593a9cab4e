//! Bucket-key rotation: a new key version for new writes, and a rewrap of every existing
//! object's (and unfinished upload's) key under it.
//!
//! Only envelopes change: object keys, metadata and blobs stay as they are, so rotation touches
//! the catalog alone and costs one small write per object. Each envelope is replaced only if it
//! is unchanged since it was read, so a concurrent overwrite or delete is never undone. Older key
//! versions stay in the catalog: a write that started before the rotation may still commit an
//! envelope under them. For a tenant whose keys are released per object, the trustee rewraps
//! (its bucket keys never come here).

use crate::Gateway;
use crate::keys::{Binding, Envelope, ObjectCipher};
use obhut_catalog::{Bucket, BucketKey, VersionPages};
use obhut_trustee_client::Justification;
use obhut_trustee_client::object_keys::{ObjectKeyOutcome, SealedObjectKey};
use s3s::S3Error;
use std::collections::BTreeMap;

/// A record's object name, upload (if it is an upload's) and envelope.
type Filed = (String, Option<String>, Vec<u8>);

/// Envelopes read per catalog query.
const PAGE: usize = 500;

/// The outcome of a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotated {
    pub version: u32,
    /// Envelopes rewrapped under the new version.
    pub rewrapped: u64,
    /// Objects replaced or deleted while the rotation ran (nothing to rewrap).
    pub skipped: u64,
}

fn fail(e: &S3Error) -> String {
    e.message().unwrap_or("unknown error").to_owned()
}

impl Gateway {
    /// Rotates `bucket`'s key for `tenant`, justified by `why` (the tenant's own request), and
    /// reports progress as (done, total) envelopes.
    pub async fn rotate_bucket_key(
        &self,
        tenant: &str,
        bucket: &str,
        why: &Justification,
        progress: impl Fn(u64, u64) + Send,
    ) -> Result<Rotated, String> {
        // The record the rotation acts through: if the bucket is deleted (and its name perhaps
        // taken) meanwhile, the catalog refuses the new key version and the walks find nothing.
        let record = self
            .catalog
            .get_bucket(bucket)
            .await
            .map_err(|e| e.to_string())?
            .filter(|b| b.tenant == tenant)
            .ok_or_else(|| format!("tenant {tenant} has no bucket {bucket}"))?;
        if !self.upgrade.is_done() {
            return Err("records of the previous release are still being upgraded to the current format; rotate when the upgrade has finished".into());
        }
        let current = self
            .catalog
            .current_bucket_key(bucket)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the bucket has no key")?;
        let version = current.version + 1;
        let wrapped = self
            .trustee
            .create_bucket_key(tenant, bucket, version, why)
            .await
            .map_err(|e| e.to_string())?;
        self.catalog
            .add_bucket_key(
                &record,
                &BucketKey {
                    bucket: bucket.to_owned(),
                    version,
                    wrapped: wrapped.wrapped,
                    kcv: wrapped.kcv.to_vec(),
                    created_ms: crate::s3::now_ms(),
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(
            tenant = %obhut_core::logged(tenant),
            bucket = %obhut_core::logged(bucket),
            version,
            "bucket key rotated; rewrapping object keys"
        );
        // `None`: the tenant's keys are released per object, and the trustee rewraps them.
        let new_key = self
            .released_bucket_key(tenant, bucket, version, why)
            .await
            .map_err(|e| fail(&e))?;

        let total = self.count_envelopes(&record).await?;
        let mut done = 0u64;
        let mut out = Rotated {
            version,
            rewrapped: 0,
            skipped: 0,
        };
        progress(0, total);

        let mut pages = VersionPages::new(self.catalog.as_ref(), &record, PAGE);
        while let Some(page) = pages.next_objects().await.map_err(|e| e.to_string())? {
            let Some(new_key) = &new_key else {
                let records: Vec<Filed> = page
                    .iter()
                    .map(|o| (o.key.clone(), None, o.envelope.clone()))
                    .collect();
                let envelopes = self
                    .rewrapped_in_trustee(tenant, bucket, version, why, &records)
                    .await?;
                for (o, env) in page.iter().zip(envelopes) {
                    if let Some(env) = env {
                        if self
                            .catalog
                            .replace_object_envelope(bucket, &o.key, &o.envelope, &env)
                            .await
                            .map_err(|e| e.to_string())?
                        {
                            out.rewrapped += 1;
                        } else {
                            out.skipped += 1;
                        }
                    }
                    done += 1;
                    progress(done, total);
                }
                continue;
            };
            for o in page {
                let binding = Binding::object(tenant, bucket, &o.key);
                if let Some(env) = self
                    .rewrapped(&binding, &o.envelope, version, new_key, why)
                    .await?
                {
                    if self
                        .catalog
                        .replace_object_envelope(bucket, &o.key, &o.envelope, &env)
                        .await
                        .map_err(|e| e.to_string())?
                    {
                        out.rewrapped += 1;
                    } else {
                        out.skipped += 1;
                    }
                }
                done += 1;
                progress(done, total);
            }
        }

        let mut marker: Option<(String, String)> = None;
        loop {
            let page = self
                .catalog
                .list_uploads(
                    &record,
                    "",
                    marker.as_ref().map(|(k, u)| (k.as_str(), u.as_str())),
                    PAGE,
                )
                .await
                .map_err(|e| e.to_string())?;
            let Some(last) = page.last() else { break };
            marker = Some((last.key.clone(), last.upload_id.clone()));
            let in_trustee = match &new_key {
                Some(_) => Vec::new(),
                None => {
                    let records: Vec<Filed> = page
                        .iter()
                        .map(|u| (u.key.clone(), Some(u.upload_id.clone()), u.envelope.clone()))
                        .collect();
                    self.rewrapped_in_trustee(tenant, bucket, version, why, &records)
                        .await?
                }
            };
            let mut in_trustee = in_trustee.into_iter();
            for u in page {
                let binding = Binding::upload(tenant, bucket, &u.key, &u.upload_id);
                let rewrapped = match &new_key {
                    Some(new_key) => {
                        self.rewrapped(&binding, &u.envelope, version, new_key, why)
                            .await?
                    }
                    None => in_trustee.next().flatten(),
                };
                if let Some(env) = rewrapped {
                    if self
                        .catalog
                        .replace_upload_envelope(&u.upload_id, &u.envelope, &env)
                        .await
                        .map_err(|e| e.to_string())?
                    {
                        out.rewrapped += 1;
                    } else {
                        out.skipped += 1;
                    }
                }
                done += 1;
                progress(done, total.max(done));
            }
        }
        tracing::info!(
            tenant = %obhut_core::logged(tenant),
            bucket = %obhut_core::logged(bucket),
            version,
            rewrapped = out.rewrapped,
            skipped = out.skipped,
            "bucket key rotation finished"
        );
        Ok(out)
    }

    async fn count_envelopes(&self, bucket: &Bucket) -> Result<u64, String> {
        let mut n = 0u64;
        let mut pages = VersionPages::new(self.catalog.as_ref(), bucket, PAGE);
        while let Some(page) = pages.next_objects().await.map_err(|e| e.to_string())? {
            n += page.len() as u64;
        }
        Ok(n)
    }

    /// The envelopes of `records` rewrapped under bucket key `version` by the trustee (for a
    /// tenant whose keys are released per object; the bucket keys stay there), in order; `None`
    /// for one already under it or failing its integrity check (reported, left as it is).
    async fn rewrapped_in_trustee(
        &self,
        tenant: &str,
        bucket: &str,
        version: u32,
        why: &Justification,
        records: &[Filed],
    ) -> Result<Vec<Option<Vec<u8>>>, String> {
        let mut out: Vec<Option<Vec<u8>>> = vec![None; records.len()];
        // (position, envelope, sealed key) by the key version each is under now.
        type Pending = Vec<(usize, Envelope, SealedObjectKey)>;
        let mut by_version: BTreeMap<u32, Pending> = BTreeMap::new();
        for (at, (key, upload, envelope)) in records.iter().enumerate() {
            let binding = Binding {
                tenant,
                bucket,
                key,
                upload: upload.as_deref(),
            };
            let Ok(env) = ObjectCipher::parse_envelope(envelope) else {
                self.integrity_failure(&binding, "malformed envelope");
                continue;
            };
            if env.key_version == version || !env.is_bound() {
                continue;
            }
            match ObjectCipher::sealed_key(&binding, &env) {
                Ok(sealed) => by_version
                    .entry(env.key_version)
                    .or_default()
                    .push((at, env, sealed)),
                Err(e) => {
                    self.integrity_failure(&binding, &e.to_string());
                }
            }
        }
        let to = self
            .wrapped_bucket_key(bucket, version)
            .await
            .map_err(|e| fail(&e))?;
        for (from_version, batch) in by_version {
            let from = match self.wrapped_bucket_key(bucket, from_version).await {
                Ok(w) => w,
                Err(e) => return Err(fail(&e)),
            };
            let keys = batch.iter().map(|(_, _, s)| s.clone()).collect();
            let outcomes = self
                .trustee
                .rewrap_object_keys(tenant, bucket, &from, &to, why, keys)
                .await
                .map_err(|e| e.to_string())?;
            for ((at, env, sealed), outcome) in batch.into_iter().zip(outcomes) {
                match outcome {
                    ObjectKeyOutcome::Wrapped { wrapped, kcv } => {
                        out[at] = Some(
                            ObjectCipher::rewrapped_envelope(&env, version, &wrapped, &kcv)
                                .map_err(|e| e.to_string())?,
                        );
                    }
                    ObjectKeyOutcome::Refused(reason) => {
                        let binding = Binding {
                            tenant,
                            bucket,
                            key: &sealed.name.key,
                            upload: sealed.name.upload.as_deref(),
                        };
                        self.integrity_failure(&binding, &reason);
                    }
                    _ => return Err("the trustee did not rewrap an object key".into()),
                }
            }
        }
        Ok(out)
    }

    /// The envelope of the record filed under `binding` rewrapped under `new_key`, or `None`
    /// if it already is, or if the record fails its integrity check (it is reported, and left
    /// as it is: it serves nothing either way).
    async fn rewrapped(
        &self,
        binding: &Binding<'_>,
        envelope: &[u8],
        version: u32,
        new_key: &obhut_crypto::Key,
        why: &Justification,
    ) -> Result<Option<Vec<u8>>, String> {
        if ObjectCipher::parse_envelope(envelope).is_ok_and(|env| env.key_version == version) {
            return Ok(None);
        }
        let cipher = match self
            .open_bound(binding, envelope, why, &crate::s3::KeyMemo::default())
            .await
        {
            Ok(cipher) => cipher,
            Err(e) if *e.code() == s3s::S3ErrorCode::InvalidObjectState => return Ok(None),
            Err(e) => return Err(fail(&e)),
        };
        cipher
            .envelope_under(binding, new_key, version)
            .map(Some)
            .map_err(|e| e.to_string())
    }
}
