//! The trustee: custody of the master and tenant keys, and the policy that decides which
//! bucket keys are released to whom.
//!
//! It owns the sealed keystore (a master key reconstructed from Shamir shares; tenant keys
//! stored wrapped under it) and the release policy. Nothing outside this crate ever holds the
//! master key or a tenant key; gateways receive bucket keys only through
//! [`obhut_trustee_client::TrusteeClient`], each release checked against its justification.
//!
//! It must never see object data or object names.

pub mod governance;
#[cfg(test)]
mod governance_tests;
mod keystore;
pub mod pkcs11;
mod policy;
pub mod server;

pub use keystore::{Pkcs11Location, SealedKeystore, TenantKeyState, write_private_file};

use async_trait::async_trait;
use governance::{Governance, ShredOutcome};
use obhut_core::TenantResidency;
use obhut_crypto::Key;
use obhut_trustee_client::views::{ShredDone, ShredView};
use obhut_trustee_client::{
    Action, GrantAccess, GrantScope, IntegrityAlarm, Justification, LogEvent, LogRead,
    PrincipalInfo, Query, Revocation, Role, SealStatus, ShredMode, SignedStatement,
    TenantKeyStatus, TrusteeClient, TrusteeError, WrappedKey, bucket_key_aad,
};
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Runs `work` on tokio's blocking pool and waits for it. Everything the trustee does touches
/// SQLite, an fsync'd log or a PKCS#11 token, so its async entry points run it here rather
/// than on the executor's threads, where it would stall every other task (and, on a
/// current-thread runtime, the whole process).
pub async fn run_blocking<T, F>(work: F) -> Result<T, TrusteeError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, TrusteeError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| TrusteeError::Storage(format!("a trustee task ended abnormally: {e}")))?
}

/// The trustee, usable in-process through [`TrusteeClient`]. Cloning it is cheap: clones
/// share one keystore and one governance state.
#[derive(Clone)]
pub struct Trustee {
    keystore: Arc<Mutex<SealedKeystore>>,
    revocations: broadcast::Sender<Revocation>,
    governance: Arc<Governance>,
    /// Time between disabling a tenant key and destroying it (DESIGN.md: 7 days).
    shred_grace_ms: i64,
}

/// Default time between disabling a tenant key and destroying it.
pub const DEFAULT_SHRED_GRACE_MS: i64 = 7 * 24 * 3600 * 1000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn to_json(view: &impl serde::Serialize) -> Result<Value, TrusteeError> {
    serde_json::to_value(view).map_err(|e| TrusteeError::Storage(e.to_string()))
}

fn key_status(state: TenantKeyState, destroy_after_ms: Option<i64>) -> TenantKeyStatus {
    TenantKeyStatus {
        state: match state {
            TenantKeyState::Active => "active",
            TenantKeyState::Disabled => "disabled",
            TenantKeyState::Destroyed => "destroyed",
        }
        .to_owned(),
        destroy_after_ms,
    }
}

impl Trustee {
    /// Opens the keystore in `dir`; the trustee starts sealed.
    pub fn open(dir: &Path) -> Result<Self, TrusteeError> {
        Ok(Self {
            keystore: Arc::new(Mutex::new(SealedKeystore::open(dir)?)),
            revocations: broadcast::channel(64).0,
            governance: Arc::new(Governance::open(dir)?),
            shred_grace_ms: DEFAULT_SHRED_GRACE_MS,
        })
    }

    /// Sets the time between disabling a tenant key and destroying it.
    #[must_use]
    pub fn with_shred_grace(mut self, grace: std::time::Duration) -> Self {
        self.shred_grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        self
    }

    /// Enrols a principal without a signature: only for the first principals of a new
    /// installation (`serve`'s development principals), which have no officer to sign yet.
    pub fn bootstrap_principal(
        &self,
        name: &str,
        role: Role,
        tenant: Option<&str>,
        bearer_hash: &str,
        public_key: &[u8],
    ) -> Result<PrincipalInfo, TrusteeError> {
        self.governance.add_principal(
            "bootstrap",
            name,
            role,
            tenant,
            bearer_hash,
            public_key,
            None,
        )
    }

    /// Logs a site added at first start (before it is put into the registry).
    pub fn bootstrap_site(
        &self,
        id: &str,
        jurisdiction: &str,
        location: &str,
    ) -> Result<(), TrusteeError> {
        self.governance
            .record(LogEvent::SiteAdded {
                site: id.to_owned(),
                jurisdiction: jurisdiction.to_owned(),
                location: location.to_owned(),
                backend: None,
                actor: "bootstrap".to_owned(),
            })
            .map(|_| ())
    }

    /// Registers a tenant without a signature: only for `serve`'s first start.
    pub fn bootstrap_tenant(
        &self,
        name: &str,
        jurisdictions: &[String],
        min_sites: u32,
    ) -> Result<(), TrusteeError> {
        self.governance
            .register_tenant("bootstrap", name, jurisdictions, min_sites)
            .map(|_| ())
    }

    fn revoke(&self, r: Revocation) {
        // No subscriber is fine: then no gateway holds keys.
        let _ = self.revocations.send(r);
    }

    /// Destroys every disabled tenant key whose grace period has ended; returns those tenants.
    pub fn destroy_due(&self) -> Result<Vec<String>, TrusteeError> {
        let due = self.with(|ks| Ok(ks.due_for_destruction(now_ms())))?;
        for tenant in &due {
            self.governance.record(LogEvent::TenantKeyDestroyed {
                tenant: tenant.clone(),
                cause: Some("grace period ended".to_owned()),
            })?;
            self.with(|ks| ks.destroy(tenant))?;
            tracing::warn!(
                tenant,
                "tenant key destroyed at the end of its grace period"
            );
            self.revoke(Revocation::Tenant {
                tenant: tenant.clone(),
            });
        }
        Ok(due)
    }

    /// Runs `work` on a clone of this trustee on the blocking pool ([`run_blocking`]).
    async fn blocking<T, F>(&self, work: F) -> Result<T, TrusteeError>
    where
        T: Send + 'static,
        F: FnOnce(&Self) -> Result<T, TrusteeError> + Send + 'static,
    {
        let this = self.clone();
        run_blocking(move || work(&this)).await
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut SealedKeystore) -> Result<T, TrusteeError>,
    ) -> Result<T, TrusteeError> {
        let mut ks = self
            .keystore
            .lock()
            .map_err(|_| TrusteeError::Storage("keystore lock poisoned".into()))?;
        f(&mut ks)
    }

    /// Current state of a tenant's key.
    pub fn tenant_key_state(&self, tenant: &str) -> Result<Option<TenantKeyState>, TrusteeError> {
        self.with(|ks| Ok(ks.tenant_state(tenant)))
    }
}

#[async_trait]
impl TrusteeClient for Trustee {
    async fn ensure_tenant_key(&self, tenant: &str) -> Result<(), TrusteeError> {
        let tenant = tenant.to_owned();
        self.blocking(move |t| t.with(|ks| ks.ensure_tenant_key(&tenant)))
            .await
    }

    async fn create_bucket_key(
        &self,
        tenant: &str,
        bucket: &str,
        version: u32,
        why: &Justification,
    ) -> Result<WrappedKey, TrusteeError> {
        policy::may_create_bucket_key(tenant, why)?;
        let (tenant, bucket, why) = (tenant.to_owned(), bucket.to_owned(), why.clone());
        self.blocking(move |t| t.create_bucket_key_now(&tenant, &bucket, version, &why))
            .await
    }

    async fn release_bucket_key(
        &self,
        tenant: &str,
        bucket: &str,
        key: &WrappedKey,
        why: &Justification,
    ) -> Result<Key, TrusteeError> {
        policy::may_release_bucket_key(tenant, why)?;
        let (tenant, bucket, key, why) = (
            tenant.to_owned(),
            bucket.to_owned(),
            key.clone(),
            why.clone(),
        );
        self.blocking(move |t| t.release_bucket_key_now(&tenant, &bucket, &key, &why))
            .await
    }

    async fn seal_status(&self) -> Result<SealStatus, TrusteeError> {
        self.blocking(|t| t.with(|ks| Ok(ks.status()))).await
    }

    async fn unseal(&self, share: &str) -> Result<SealStatus, TrusteeError> {
        let share = zeroize::Zeroizing::new(share.to_owned());
        self.blocking(move |t| t.with(|ks| ks.unseal(&share))).await
    }

    async fn seal(&self) -> Result<SealStatus, TrusteeError> {
        // Sealing and revoking cached keys are one step on the blocking pool: a caller that goes
        // away while it runs cannot leave the trustee sealed with gateways still holding keys.
        self.blocking(|t| {
            let status = t.with(|ks| Ok(ks.seal()))?;
            tracing::warn!("trustee sealed: nothing is released until it is unsealed again");
            t.revoke(Revocation::All);
            Ok(status)
        })
        .await
    }

    fn subscribe_revocations(&self) -> broadcast::Receiver<Revocation> {
        self.revocations.subscribe()
    }

    async fn tenant_key_status(&self, tenant: &str) -> Result<TenantKeyStatus, TrusteeError> {
        let tenant = tenant.to_owned();
        self.blocking(move |t| t.key_status_now(&tenant)).await
    }

    async fn authenticate(&self, bearer_hash: &str) -> Result<Option<PrincipalInfo>, TrusteeError> {
        let bearer_hash = bearer_hash.to_owned();
        self.blocking(move |t| t.governance.authenticate(&bearer_hash))
            .await
    }

    async fn act(&self, signed: &SignedStatement) -> Result<Value, TrusteeError> {
        let signed = signed.clone();
        self.blocking(move |t| {
            let (statement, who) = t.governance.verify(&signed)?;
            match &statement.action {
                Action::Shred { tenant, mode } => t.shred(&who, tenant, *mode),
                Action::SetTenantPolicy { tenant, .. } | Action::SetBucketPolicy { tenant, .. } => {
                    let v = t.governance.act(&who, &statement, &signed)?;
                    // Gateways drop their cached copy and ask again.
                    t.revoke(Revocation::Policy {
                        tenant: tenant.clone(),
                    });
                    Ok(v)
                }
                _ => t.governance.act(&who, &statement, &signed),
            }
        })
        .await
    }

    async fn residency(&self, tenant: &str) -> Result<TenantResidency, TrusteeError> {
        let tenant = tenant.to_owned();
        self.blocking(move |t| t.governance.residency(&tenant))
            .await
    }

    async fn query(&self, principal: &str, query: &Query) -> Result<Value, TrusteeError> {
        let (principal, query) = (principal.to_owned(), query.clone());
        self.blocking(move |t| t.governance.query(&principal, &query))
            .await
    }

    async fn log_read(&self, read: &LogRead) -> Result<Option<Vec<u8>>, TrusteeError> {
        let read = read.clone();
        self.blocking(move |t| t.governance.log_read(&read)).await
    }

    async fn grant_secret(&self, access_key_id: &str) -> Result<Option<String>, TrusteeError> {
        let access_key_id = access_key_id.to_owned();
        self.blocking(move |t| t.governance.grant_secret(&access_key_id))
            .await
    }

    async fn authorize_grant_access(
        &self,
        access: &GrantAccess,
    ) -> Result<GrantScope, TrusteeError> {
        let access = access.clone();
        self.blocking(move |t| t.governance.authorize_access(&access))
            .await
    }

    async fn report_integrity(&self, alarm: &IntegrityAlarm) -> Result<u64, TrusteeError> {
        let fits = |s: &str, max: usize| !s.is_empty() && s.len() <= max;
        if !(fits(&alarm.tenant, 256)
            && fits(&alarm.bucket, 256)
            && alarm.key.len() <= 2048
            && alarm.upload.as_deref().is_none_or(|u| fits(u, 256))
            && fits(&alarm.reason, 512))
        {
            return Err(TrusteeError::Invalid(
                "an integrity alarm names a tenant, a bucket, a key and a reason of bounded length"
                    .into(),
            ));
        }
        let alarm = alarm.clone();
        self.blocking(move |t| {
            tracing::error!(
                tenant = alarm.tenant,
                bucket = alarm.bucket,
                key = alarm.key,
                reason = alarm.reason,
                "integrity alarm from a gateway"
            );
            t.governance.record(LogEvent::IntegrityAlarm {
                tenant: alarm.tenant,
                bucket: alarm.bucket,
                key: alarm.key,
                upload: alarm.upload,
                reason: alarm.reason,
            })
        })
        .await
    }

    async fn seal_site_secret(&self, site: &str, secret: &str) -> Result<String, TrusteeError> {
        let (site, secret) = (site.to_owned(), zeroize::Zeroizing::new(secret.to_owned()));
        let sealed = self
            .blocking(move |t| {
                t.with(|ks| {
                    ks.ensure_tenant_key(SITE_SECRETS)?;
                    ks.seal_for(SITE_SECRETS, &site_secret_aad(&site), secret.as_bytes())
                })
            })
            .await?;
        Ok(base64_simd::STANDARD.encode_to_string(sealed))
    }

    async fn open_site_secret(&self, site: &str, sealed: &str) -> Result<String, TrusteeError> {
        let raw = base64_simd::STANDARD
            .decode_to_vec(sealed.as_bytes())
            .map_err(|_| TrusteeError::Invalid("a sealed site secret is not base64".into()))?;
        let site = site.to_owned();
        let plain = self
            .blocking(move |t| {
                t.with(|ks| ks.open_for(SITE_SECRETS, &site_secret_aad(&site), &raw))
            })
            .await?;
        String::from_utf8(plain.to_vec())
            .map_err(|_| TrusteeError::Integrity("a site secret is not UTF-8".into()))
    }

    async fn attest(
        &self,
        kind: &str,
        tenant: Option<&str>,
        digest: &str,
    ) -> Result<Value, TrusteeError> {
        let (kind, tenant, digest) = (
            kind.to_owned(),
            tenant.map(str::to_owned),
            digest.to_owned(),
        );
        self.blocking(move |t| t.governance.attest(&kind, tenant.as_deref(), &digest))
            .await
    }
}

impl Trustee {
    fn create_bucket_key_now(
        &self,
        tenant: &str,
        bucket: &str,
        version: u32,
        why: &Justification,
    ) -> Result<WrappedKey, TrusteeError> {
        self.with(|ks| {
            let bucket_key = Key::random().map_err(|e| TrusteeError::Storage(e.to_string()))?;
            let aad = bucket_key_aad(tenant, bucket, version);
            let wrapped = ks.seal_for(tenant, &aad, bucket_key.expose())?;
            let kcv = obhut_crypto::key_check_value(&bucket_key);
            // Check the round trip before the wrapped key is handed out to be stored.
            let back = ks.open_for(tenant, &aad, &wrapped)?;
            if back.as_slice() != bucket_key.expose().as_slice() {
                return Err(TrusteeError::Integrity(
                    "a new bucket key did not survive wrapping".into(),
                ));
            }
            tracing::info!(tenant, bucket, version, justification = ?why, "bucket key created");
            Ok(WrappedKey {
                version,
                wrapped,
                kcv,
            })
        })
    }

    fn release_bucket_key_now(
        &self,
        tenant: &str,
        bucket: &str,
        key: &WrappedKey,
        why: &Justification,
    ) -> Result<Key, TrusteeError> {
        if let Justification::Grant { grant_id } = why {
            self.governance
                .check_grant_release(grant_id, tenant, bucket)?;
        }
        let released = self.with(|ks| {
            let raw = ks.open_for(tenant, &bucket_key_aad(tenant, bucket, key.version), &key.wrapped)?;
            let released =
                Key::from_slice(&raw).map_err(|e| TrusteeError::Integrity(e.to_string()))?;
            let kcv = obhut_crypto::key_check_value(&released);
            if !obhut_crypto::constant_time_eq(&kcv, &key.kcv) {
                return Err(TrusteeError::Integrity(
                    "key-check value mismatch: the wrapped key is not the bucket key it claims to be"
                        .into(),
                ));
            }
            Ok(released)
        })?;
        // No log entry, no key: the release is recorded durably before the key leaves.
        self.governance.record(LogEvent::KeyRelease {
            tenant: tenant.to_owned(),
            bucket: bucket.to_owned(),
            key_version: key.version,
            justification: why.clone(),
        })?;
        tracing::info!(tenant, bucket, version = key.version, justification = ?why, "bucket key released");
        Ok(released)
    }
}

/// The keystore entry whose key seals S3 sites' secrets (not a tenant: tenant names cannot
/// start with `_`).
const SITE_SECRETS: &str = "_sites";

fn site_secret_aad(site: &str) -> Vec<u8> {
    let mut aad = b"obhut site secret v1\0".to_vec();
    aad.extend_from_slice(site.as_bytes());
    aad
}

impl Trustee {
    /// One crypto-shred approval; at the quorum, the key is disabled, destroyed or re-enabled.
    fn shred(
        &self,
        who: &PrincipalInfo,
        tenant: &str,
        mode: ShredMode,
    ) -> Result<Value, TrusteeError> {
        let (state, _) = self.with(|ks| ks.tenant_status(tenant))?;
        if state == TenantKeyState::Destroyed {
            return to_json(&ShredView::Done(ShredDone {
                tenant: tenant.to_owned(),
                state: "destroyed".into(),
                destroy_after_ms: None,
            }));
        }
        match self.governance.approve_shred(who, tenant, mode)? {
            ShredOutcome::Pending(p) => to_json(&ShredView::Pending(p)),
            ShredOutcome::Reached => {
                let status = match mode {
                    ShredMode::Cancel => self.enable_tenant_key(tenant)?,
                    ShredMode::Now => self.destroy_tenant_key(tenant)?,
                    ShredMode::Disable => self.disable_tenant_key(
                        tenant,
                        governance::now_ms().saturating_add(self.shred_grace_ms),
                    )?,
                };
                to_json(&ShredView::Done(ShredDone {
                    tenant: tenant.to_owned(),
                    state: status.state,
                    destroy_after_ms: status.destroy_after_ms,
                }))
            }
        }
    }

    fn key_status_now(&self, tenant: &str) -> Result<TenantKeyStatus, TrusteeError> {
        self.with(|ks| ks.tenant_status(tenant))
            .map(|(s, d)| key_status(s, d))
    }

    pub fn disable_tenant_key(
        &self,
        tenant: &str,
        destroy_after_ms: i64,
    ) -> Result<TenantKeyStatus, TrusteeError> {
        self.governance.record(LogEvent::TenantKeyDisabled {
            tenant: tenant.to_owned(),
            destroy_after_ms,
        })?;
        self.with(|ks| ks.disable(tenant, destroy_after_ms))?;
        tracing::warn!(tenant, destroy_after_ms, "tenant key disabled");
        self.revoke(Revocation::Tenant {
            tenant: tenant.to_owned(),
        });
        self.key_status_now(tenant)
    }

    pub fn enable_tenant_key(&self, tenant: &str) -> Result<TenantKeyStatus, TrusteeError> {
        self.governance.record(LogEvent::TenantKeyEnabled {
            tenant: tenant.to_owned(),
        })?;
        self.with(|ks| ks.enable(tenant))?;
        tracing::warn!(tenant, "tenant key re-enabled");
        self.key_status_now(tenant)
    }

    pub fn destroy_tenant_key(&self, tenant: &str) -> Result<TenantKeyStatus, TrusteeError> {
        self.governance.record(LogEvent::TenantKeyDestroyed {
            tenant: tenant.to_owned(),
            cause: None,
        })?;
        self.with(|ks| ks.destroy(tenant))?;
        tracing::warn!(tenant, "tenant key destroyed");
        self.revoke(Revocation::Tenant {
            tenant: tenant.to_owned(),
        });
        self.key_status_now(tenant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(tenant: &str) -> Justification {
        Justification::Customer {
            tenant: tenant.into(),
            principal: "AKID".into(),
            operation: "GetObject".into(),
        }
    }

    async fn unsealed() -> (tempfile::TempDir, Trustee) {
        let dir = tempfile::tempdir().unwrap();
        let shares = SealedKeystore::init(dir.path(), 3, 2).unwrap();
        let t = Trustee::open(dir.path()).unwrap();
        t.unseal(&shares[0]).await.unwrap();
        t.unseal(&shares[2]).await.unwrap();
        (dir, t)
    }

    #[tokio::test]
    async fn customer_release_is_allowed_for_its_own_tenant_only() {
        let (_d, t) = unsealed().await;
        t.ensure_tenant_key("a").await.unwrap();
        t.ensure_tenant_key("b").await.unwrap();
        let wk = t
            .create_bucket_key("a", "photos", 1, &customer("a"))
            .await
            .unwrap();
        let k1 = t
            .release_bucket_key("a", "photos", &wk, &customer("a"))
            .await
            .unwrap();
        let k2 = t
            .release_bucket_key("a", "photos", &wk, &customer("a"))
            .await
            .unwrap();
        assert_eq!(k1.expose(), k2.expose());
        // denied: another tenant's principal, a grant that does not exist, a system reason
        for why in [
            customer("b"),
            Justification::Grant {
                grant_id: "g1".into(),
            },
            Justification::System {
                reason: "repair".into(),
            },
        ] {
            assert!(
                matches!(
                    t.release_bucket_key("a", "photos", &wk, &why).await,
                    Err(TrusteeError::Denied(_))
                ),
                "{why:?}"
            );
        }
        // The one system reason that may have a key released: the format upgrade (logged).
        let upgrade = Justification::System {
            reason: obhut_trustee_client::FORMAT_UPGRADE_REASON.into(),
        };
        let k3 = t
            .release_bucket_key("a", "photos", &wk, &upgrade)
            .await
            .unwrap();
        assert_eq!(k1.expose(), k3.expose());
        assert!(matches!(
            t.create_bucket_key("a", "y", 1, &upgrade).await,
            Err(TrusteeError::Denied(_))
        ));
        assert!(matches!(
            t.create_bucket_key("a", "x", 1, &customer("b")).await,
            Err(TrusteeError::Denied(_))
        ));
    }

    #[tokio::test]
    async fn a_wrapped_key_filed_under_another_bucket_or_tenant_does_not_open() {
        let (_d, t) = unsealed().await;
        t.ensure_tenant_key("a").await.unwrap();
        t.ensure_tenant_key("b").await.unwrap();
        let wk = t
            .create_bucket_key("a", "photos", 1, &customer("a"))
            .await
            .unwrap();
        assert!(matches!(
            t.release_bucket_key("a", "other", &wk, &customer("a"))
                .await,
            Err(TrusteeError::Integrity(_))
        ));
        assert!(matches!(
            t.release_bucket_key("b", "photos", &wk, &customer("b"))
                .await,
            Err(TrusteeError::Integrity(_))
        ));
        let mut wrong_version = wk.clone();
        wrong_version.version = 2;
        assert!(
            t.release_bucket_key("a", "photos", &wrong_version, &customer("a"))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn shred_disables_at_once_can_be_undone_and_destroys_for_good() {
        let (dir, t) = unsealed().await;
        t.ensure_tenant_key("a").await.unwrap();
        t.ensure_tenant_key("b").await.unwrap();
        let wa = t
            .create_bucket_key("a", "x", 1, &customer("a"))
            .await
            .unwrap();
        let wb = t
            .create_bucket_key("b", "y", 1, &customer("b"))
            .await
            .unwrap();
        let mut rx = t.subscribe_revocations();

        let far = now_ms() + 7 * 24 * 3600 * 1000;
        let st = t.disable_tenant_key("a", far).unwrap();
        assert_eq!(st.state, "disabled");
        assert_eq!(
            rx.try_recv().unwrap(),
            Revocation::Tenant { tenant: "a".into() }
        );
        assert!(matches!(
            t.release_bucket_key("a", "x", &wa, &customer("a")).await,
            Err(TrusteeError::TenantKeyDisabled(_))
        ));
        t.release_bucket_key("b", "y", &wb, &customer("b"))
            .await
            .unwrap();

        // accidental: restored within the grace period
        t.enable_tenant_key("a").unwrap();
        t.release_bucket_key("a", "x", &wa, &customer("a"))
            .await
            .unwrap();

        // real: destroyed when the grace period ends
        t.disable_tenant_key("a", now_ms() - 1).unwrap();
        assert_eq!(t.destroy_due().unwrap(), vec!["a".to_owned()]);
        assert!(matches!(
            t.release_bucket_key("a", "x", &wa, &customer("a")).await,
            Err(TrusteeError::TenantKeyDestroyed(_))
        ));
        assert!(
            t.enable_tenant_key("a").is_err(),
            "a destroyed key stays destroyed"
        );
        let text = std::fs::read_to_string(dir.path().join("keystore.json")).unwrap();
        assert!(text.contains("\"destroyed\""));
        t.release_bucket_key("b", "y", &wb, &customer("b"))
            .await
            .unwrap();

        // sealing revokes everything
        t.seal().await.unwrap();
        let mut seen = Vec::new();
        while let Ok(r) = rx.try_recv() {
            seen.push(r);
        }
        let a = Revocation::Tenant { tenant: "a".into() };
        // second disable, destruction, then the seal
        assert_eq!(seen, vec![a.clone(), a, Revocation::All]);
        assert!(matches!(
            t.release_bucket_key("b", "y", &wb, &customer("b")).await,
            Err(TrusteeError::Sealed(..))
        ));
    }

    #[tokio::test]
    async fn trustee_work_waiting_on_the_keystore_does_not_hold_up_the_executor() {
        // A current-thread runtime: one blocked call would stop every other task.
        let (_d, t) = unsealed().await;
        let keystore = Arc::clone(&t.keystore);
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            let _held = keystore.lock().unwrap();
            locked_tx.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(300));
        });
        locked_rx.recv().unwrap();
        let ticks = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let ticker = {
            let ticks = Arc::clone(&ticks);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        };
        // waits for the keystore the other thread holds
        assert!(!t.seal_status().await.unwrap().sealed);
        let ticked = ticks.load(std::sync::atomic::Ordering::Relaxed);
        ticker.abort();
        holder.join().unwrap();
        assert!(
            ticked >= 5,
            "other tasks ran only {ticked} times while the trustee waited"
        );
    }

    #[tokio::test]
    async fn a_sealed_trustee_releases_nothing_and_survives_restart() {
        let dir = tempfile::tempdir().unwrap();
        let shares = SealedKeystore::init(dir.path(), 3, 2).unwrap();
        let wk = {
            let t = Trustee::open(dir.path()).unwrap();
            assert!(matches!(
                t.ensure_tenant_key("a").await,
                Err(TrusteeError::Sealed(0, 2))
            ));
            let st = t.unseal(&shares[1]).await.unwrap();
            assert!(st.sealed && st.shares_given == 1);
            // the same share twice still counts once
            let st = t.unseal(&shares[1]).await.unwrap();
            assert!(st.sealed && st.shares_given == 1);
            assert!(!t.unseal(&shares[0]).await.unwrap().sealed);
            t.ensure_tenant_key("a").await.unwrap();
            t.create_bucket_key("a", "b", 1, &customer("a"))
                .await
                .unwrap()
        };
        let t = Trustee::open(dir.path()).unwrap();
        assert!(matches!(
            t.release_bucket_key("a", "b", &wk, &customer("a")).await,
            Err(TrusteeError::Sealed(0, 2))
        ));
        t.unseal(&shares[2]).await.unwrap();
        t.unseal(&shares[0]).await.unwrap();
        t.release_bucket_key("a", "b", &wk, &customer("a"))
            .await
            .unwrap();
    }
}
