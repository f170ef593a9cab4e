//! The one-time upgrade of records written by the release before object keys were bound to
//! their names and ETags were sealed (docs/format.md, section 7, "Binding upgrade").
//!
//! Such a record's envelope (format 1) binds its object key to the bucket and version id only,
//! and its ETag (and, for a part, its checksums) is in clear. The upgrade rewraps each such key
//! bound to the tenant, bucket, name and upload it is filed under (format 2), under the same
//! bucket key version, and seals the ETag and checksums under the object key. It needs the
//! bucket keys, which the trustee releases for a `System` justification and logs; when it is
//! done, it appends an attestation of what it rebound (per tenant, the SHA-256 of the sorted
//! list of bucket, name, upload and version id) to the transparency log, and records in the
//! catalog that it finished. From then on the data path refuses every unbound envelope as an
//! integrity failure; until then it answers such records with 503.
//!
//! The upgrade trusts the names the catalog gives format-1 records while it runs: that is the
//! moment the binding is made. Each run is in the log (its key releases and its attestation),
//! so a later run — which is what laundering an old record under a new name would need — is
//! visible to the tenant and auditors.
//!
//! It owns the upgrade's progress, never keys beyond one run.

use crate::Gateway;
use crate::keys::{Binding, ObjectCipher, is_sealed_etag};
use crate::meta::Checksums;
use obhut_catalog::{ObjectPages, Upload};
use obhut_crypto::Key;
use obhut_trustee_client::{FORMAT_UPGRADE_REASON, Justification, TrusteeError, WrappedKey};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The upgrade's name in the catalog's `upgrades` table.
pub const BINDING_UPGRADE: &str = "bind-object-keys-and-seal-etags";
/// Records read per catalog query.
const PAGE: usize = 500;
/// The pause before a run that failed (e.g. the trustee was sealed) is tried again.
const RETRY: Duration = Duration::from_secs(10);

/// Whether the upgrade has finished in this process.
#[derive(Default)]
pub struct UpgradeState {
    done: AtomicBool,
}

impl UpgradeState {
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    fn set_done(&self) {
        self.done.store(true, Ordering::Release);
    }
}

/// What a run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Upgraded {
    /// Whether the catalog said the upgrade had finished before (nothing was looked at).
    pub already: bool,
    /// Object and upload records rebound or resealed.
    pub records: u64,
    /// Parts whose ETag and checksums were sealed.
    pub parts: u64,
    /// Records left as they were: unreadable (e.g. their tenant's key was destroyed, or they
    /// fail authentication); they serve nothing.
    pub skipped: u64,
}

/// Why a run stopped: the trustee or the catalog could not be had; it is tried again.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UpgradeError(String);

/// Bucket keys released for one run, by (bucket, version); dropped with the run.
struct RunKeys {
    keys: HashMap<(String, u32), Key>,
    why: Justification,
}

enum KeyFor {
    Key(Key),
    /// The tenant's key is destroyed (or it has none), or the bucket key record is missing or
    /// malformed: the records under it can never be opened, by the upgrade or anyone else.
    Gone,
}

/// Why a tenant's records could not all be upgraded in this run.
enum Stop {
    /// The trustee is sealed or unreachable, or the catalog failed: the run ends.
    Run(UpgradeError),
    /// This tenant's key is refused for now (e.g. disabled during a shred's grace period,
    /// which may be cancelled): the other tenants go on, and the run does not count as done.
    Tenant(String),
}

impl From<UpgradeError> for Stop {
    fn from(e: UpgradeError) -> Self {
        Self::Run(e)
    }
}

impl Gateway {
    /// Runs the upgrade until it has finished (retrying while the trustee is sealed or
    /// unreachable), as the worker `format-upgrade`, which then waits for the stop signal.
    pub(crate) fn spawn_upgrade(&self, workers: &obhut_maintenance::Workers) {
        let gw = self.clone();
        workers.spawn("format-upgrade", move |worker| async move {
            loop {
                let result = {
                    let _run = worker.run();
                    gw.upgrade_records().await
                };
                match result {
                    Ok(u) if u.already => break,
                    Ok(u) => {
                        tracing::info!(records = u.records, parts = u.parts, skipped = u.skipped, "records of the previous release upgraded: object keys bound to their names, ETags sealed");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the format upgrade could not finish; records of the previous release are answered with 503 until it does; retrying");
                        if !worker.sleep(RETRY).await {
                            return;
                        }
                    }
                }
            }
            worker.stopped().await;
        });
    }

    /// One run of the upgrade (see the module doc).
    pub async fn upgrade_records(&self) -> Result<Upgraded, UpgradeError> {
        let catalog = |e: obhut_catalog::CatalogError| UpgradeError(e.to_string());
        if self
            .catalog
            .upgrade_done(BINDING_UPGRADE)
            .await
            .map_err(catalog)?
            .is_some()
        {
            self.upgrade.set_done();
            return Ok(Upgraded {
                already: true,
                ..Upgraded::default()
            });
        }
        let mut out = Upgraded::default();
        let mut unfinished: Vec<String> = Vec::new();
        'tenants: for tenant in self.catalog.list_tenants().await.map_err(catalog)? {
            let mut keys = RunKeys {
                keys: HashMap::new(),
                why: Justification::System {
                    reason: FORMAT_UPGRADE_REASON.into(),
                },
            };
            let mut rebound: Vec<String> = Vec::new();
            for bucket in self
                .catalog
                .list_buckets(&tenant.name)
                .await
                .map_err(catalog)?
            {
                match self
                    .upgrade_bucket(&tenant.name, &bucket, &mut keys, &mut rebound, &mut out)
                    .await
                {
                    Ok(()) => {}
                    Err(Stop::Run(e)) => return Err(e),
                    Err(Stop::Tenant(why)) => {
                        unfinished.push(format!("{}: {why}", tenant.name));
                        continue 'tenants;
                    }
                }
            }
            if !rebound.is_empty() {
                rebound.sort();
                let digest = hex_simd::encode_to_string(
                    <s3s::crypto::Sha256 as s3s::crypto::Checksum>::checksum(
                        rebound.join("\n").as_bytes(),
                    ),
                    hex_simd::AsciiCase::Lower,
                );
                self.trustee
                    .attest("format-upgrade", Some(&tenant.name), &digest)
                    .await
                    .map_err(|e| UpgradeError(e.to_string()))?;
            }
        }
        if !unfinished.is_empty() {
            return Err(UpgradeError(format!(
                "the records of some tenants could not be upgraded yet ({})",
                unfinished.join("; ")
            )));
        }
        self.catalog
            .set_upgrade_done(BINDING_UPGRADE, crate::s3::now_ms())
            .await
            .map_err(catalog)?;
        // The rewritten rows' clear ETags and checksums must not survive in free pages.
        if let Err(e) = self.catalog.compact().await {
            tracing::warn!(error = %e, "the catalog could not be compacted after the format upgrade; clear ETags may remain in its free pages until SQLite reuses them");
        }
        self.upgrade.set_done();
        Ok(out)
    }

    /// A bucket key version for the run, released once for the `System` justification.
    async fn run_key(
        &self,
        tenant: &str,
        bucket: &str,
        version: u32,
        keys: &mut RunKeys,
    ) -> Result<KeyFor, Stop> {
        if let Some(k) = keys.keys.get(&(bucket.to_owned(), version)) {
            return Ok(KeyFor::Key(k.clone()));
        }
        let Some(stored) = self
            .catalog
            .get_bucket_key(bucket, version)
            .await
            .map_err(|e| UpgradeError(e.to_string()))?
        else {
            return Ok(KeyFor::Gone);
        };
        let Ok(kcv) = stored.kcv.as_slice().try_into() else {
            return Ok(KeyFor::Gone);
        };
        let wrapped = WrappedKey {
            version,
            kcv,
            wrapped: stored.wrapped,
        };
        match self
            .trustee
            .release_bucket_key(tenant, bucket, &wrapped, &keys.why)
            .await
        {
            Ok(k) => {
                crate::note_release(&keys.why);
                keys.keys.insert((bucket.to_owned(), version), k.clone());
                Ok(KeyFor::Key(k))
            }
            Err(TrusteeError::TenantKeyDestroyed(_) | TrusteeError::NoTenantKey(_)) => {
                Ok(KeyFor::Gone)
            }
            Err(e @ (TrusteeError::Sealed(..) | TrusteeError::Unavailable(_))) => {
                Err(Stop::Run(UpgradeError(e.to_string())))
            }
            Err(e) => Err(Stop::Tenant(format!("bucket {bucket}: {e}"))),
        }
    }

    /// Opens the key of a record for the upgrade: a format-1 envelope with the legacy
    /// construction, a format-2 one bound to `binding`. Returns the key, the version of the
    /// bucket key, and whether the envelope must be rebound.
    async fn upgrade_open(
        &self,
        binding: &Binding<'_>,
        envelope: &[u8],
        keys: &mut RunKeys,
    ) -> Result<Option<(ObjectCipher, Key, u32, bool)>, Stop> {
        let Ok(env) = ObjectCipher::parse_envelope(envelope) else {
            return Ok(None);
        };
        let KeyFor::Key(bk) = self
            .run_key(binding.tenant, binding.bucket, env.key_version, keys)
            .await?
        else {
            return Ok(None);
        };
        let opened = if env.is_bound() {
            ObjectCipher::open(binding, &env, &bk)
        } else {
            ObjectCipher::open_legacy(binding.bucket, &env, &bk)
        };
        Ok(opened
            .ok()
            .map(|c| (c, bk, env.key_version, !env.is_bound())))
    }

    async fn upgrade_bucket(
        &self,
        tenant: &str,
        record: &obhut_catalog::Bucket,
        keys: &mut RunKeys,
        rebound: &mut Vec<String>,
        out: &mut Upgraded,
    ) -> Result<(), Stop> {
        let catalog = |e: obhut_catalog::CatalogError| UpgradeError(e.to_string());
        let bucket = record.name.as_str();
        let mut pages = ObjectPages::new(self.catalog.as_ref(), record, PAGE);
        while let Some(page) = pages.next_page().await.map_err(catalog)? {
            for o in page {
                let legacy_envelope =
                    ObjectCipher::parse_envelope(&o.envelope).is_ok_and(|e| !e.is_bound());
                if !legacy_envelope && is_sealed_etag(&o.etag) {
                    continue;
                }
                let binding = Binding::object(tenant, bucket, &o.key);
                let Some((cipher, bk, version, rebind)) =
                    self.upgrade_open(&binding, &o.envelope, keys).await?
                else {
                    out.skipped += 1;
                    continue;
                };
                let envelope = if rebind {
                    cipher.envelope_under(&binding, &bk, version)
                } else {
                    Ok(o.envelope.clone())
                };
                let etag = if is_sealed_etag(&o.etag) {
                    Ok(o.etag.clone())
                } else {
                    cipher.seal_etag(None, &o.etag)
                };
                let (Ok(envelope), Ok(etag)) = (envelope, etag) else {
                    out.skipped += 1;
                    continue;
                };
                if self
                    .catalog
                    .rebind_object(bucket, &o.key, &o.envelope, &envelope, &etag)
                    .await
                    .map_err(catalog)?
                {
                    out.records += 1;
                    rebound.push(format!(
                        "{bucket}\0{}\0\0{}",
                        o.key,
                        hex_simd::encode_to_string(cipher.version_id, hex_simd::AsciiCase::Lower)
                    ));
                }
            }
        }
        let mut marker: Option<(String, String)> = None;
        loop {
            let page = self
                .catalog
                .list_uploads(
                    record,
                    "",
                    marker.as_ref().map(|(k, u)| (k.as_str(), u.as_str())),
                    PAGE,
                )
                .await
                .map_err(catalog)?;
            let Some(last) = page.last() else { break };
            marker = Some((last.key.clone(), last.upload_id.clone()));
            for u in page {
                self.upgrade_upload(tenant, &u, keys, rebound, out).await?;
            }
        }
        Ok(())
    }

    async fn upgrade_upload(
        &self,
        tenant: &str,
        u: &Upload,
        keys: &mut RunKeys,
        rebound: &mut Vec<String>,
        out: &mut Upgraded,
    ) -> Result<(), Stop> {
        let catalog = |e: obhut_catalog::CatalogError| UpgradeError(e.to_string());
        let binding = Binding::upload(tenant, &u.bucket, &u.key, &u.upload_id);
        let parts = self
            .catalog
            .list_parts(&u.upload_id, 0, usize::MAX)
            .await
            .map_err(catalog)?;
        let bound = ObjectCipher::parse_envelope(&u.envelope).is_ok_and(|e| e.is_bound());
        if bound && parts.iter().all(|p| is_sealed_etag(&p.etag)) {
            return Ok(());
        }
        let Some((cipher, bk, version, rebind)) =
            self.upgrade_open(&binding, &u.envelope, keys).await?
        else {
            out.skipped += 1;
            return Ok(());
        };
        if rebind {
            let Ok(envelope) = cipher.envelope_under(&binding, &bk, version) else {
                out.skipped += 1;
                return Ok(());
            };
            if !self
                .catalog
                .replace_upload_envelope(&u.upload_id, &u.envelope, &envelope)
                .await
                .map_err(catalog)?
            {
                // Completed or aborted meanwhile.
                return Ok(());
            }
            out.records += 1;
            rebound.push(format!(
                "{}\0{}\0{}\0{}",
                u.bucket,
                u.key,
                u.upload_id,
                hex_simd::encode_to_string(cipher.version_id, hex_simd::AsciiCase::Lower)
            ));
        }
        for p in parts {
            if is_sealed_etag(&p.etag) {
                continue;
            }
            let Ok(checksums) = Checksums::decode(&p.checksums) else {
                out.skipped += 1;
                continue;
            };
            let sealed = cipher
                .seal_etag(Some(p.part_number), &p.etag)
                .and_then(|e| {
                    cipher
                        .seal_part_checksums(p.part_number, &checksums)
                        .map(|c| (e, c))
                });
            let Ok((etag, sums)) = sealed else {
                out.skipped += 1;
                continue;
            };
            if self
                .catalog
                .reseal_part(&u.upload_id, p.part_number, &p.chunk, &etag, &sums)
                .await
                .map_err(catalog)?
            {
                out.parts += 1;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "upgrade_tests.rs"]
mod tests;
