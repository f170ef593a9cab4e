//! The trustee: custody of the master and tenant keys, and the policy that decides which
//! bucket keys are released to whom.
//!
//! It owns the sealed keystore (a master key reconstructed from Shamir shares; tenant keys
//! stored wrapped under it) and the release policy. Nothing outside this crate ever holds the
//! master key or a tenant key; gateways receive bucket keys only through
//! [`obhut_trustee_client::TrusteeClient`], each release checked against its justification.
//!
//! It must never see object data or object names.

pub mod access_keys;
pub mod governance;
#[cfg(test)]
mod governance_tests;
mod group_commit;
mod kept_checkpoint;
mod keystore;
mod lock_body;
mod log_facts;
pub mod pkcs11;
mod policy;
pub mod server;
mod unseal_key;
pub mod verify;

pub use keystore::{Pkcs11Location, SealedKeystore, TenantKeyState, write_private_file};

use async_trait::async_trait;
use governance::{Governance, ShredOutcome};
use obhut_core::TenantResidency;
use obhut_crypto::Key;
use obhut_trustee_client::auth::{KeyUse, TicketScope};
use obhut_trustee_client::log_entry::ObjectKeyRequestEntry;
use obhut_trustee_client::object_keys::{
    KeyRelease, ObjectKeyOp, ObjectKeyOutcome, SealedObjectKey, object_key_aad, open_sealed_etag,
};
use obhut_trustee_client::object_lock::{
    self, LockAnswer, LockChange, LockOpen, LockSeal, LockState, LockTarget,
};
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
    /// Tenants' S3 access keys, sealed.
    access_keys: Arc<access_keys::AccessKeys>,
    /// Checks S3 request signatures and issues the tickets key releases need.
    verifier: Arc<verify::Verifier>,
    /// Access keys made at a first start while the trustee was sealed: kept in memory only,
    /// and taken into custody at the unseal (lost if the process stops before).
    pending_keys: Arc<Mutex<Vec<AccessKeySecret>>>,
    /// The key unseal shares are encrypted to, and the current seal epoch.
    unseal_keys: Arc<unseal_key::UnsealKeys>,
    /// Time between disabling a tenant key and destroying it (DESIGN.md: 7 days).
    shred_grace_ms: i64,
    /// Log entries of per-object key releases, written in groups.
    object_key_log: Arc<group_commit::GroupCommit>,
    /// The log index of the disconnect in force (`None`: connected), for the trustee API,
    /// which pushes the disconnect to every gateway and logs their acknowledgements.
    disconnects: Arc<tokio::sync::watch::Sender<Option<u64>>>,
    /// The longest retention an object lock record may have, from the moment it is sealed.
    max_retention_ms: i64,
    /// Which version each recent write's ticket sealed a first lock record for (by the
    /// ticket's digest, with its issue time): one signed write seals one version.
    lock_claims: Arc<Mutex<std::collections::HashMap<String, (LockTarget, i64)>>>,
    /// Held while a version's record is judged, sealed and noted: two changes of one version
    /// never both replace the same latest record.
    lock_changes: Arc<Mutex<()>>,
}

/// An access key's id, tenant and secret.
pub type AccessKeySecret = (String, String, zeroize::Zeroizing<String>);

/// The S3 region requests are signed for unless configured otherwise (as the gateway's).
pub const DEFAULT_REGION: &str = "de-1";

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
        let keystore = SealedKeystore::open(dir)?;
        let governance = Governance::open(dir)?;
        let unseal_keys = unseal_key::UnsealKeys::open(dir, governance.identity())?;
        let disconnected = governance.disconnected()?.map(|d| d.index);
        Ok(Self {
            disconnects: Arc::new(tokio::sync::watch::channel(disconnected).0),
            keystore: Arc::new(Mutex::new(keystore)),
            revocations: broadcast::channel(64).0,
            governance: Arc::new(governance),
            unseal_keys: Arc::new(unseal_keys),
            access_keys: Arc::new(access_keys::AccessKeys::open(dir)?),
            verifier: Arc::new(verify::Verifier::new(DEFAULT_REGION)?),
            pending_keys: Arc::default(),
            shred_grace_ms: DEFAULT_SHRED_GRACE_MS,
            object_key_log: Arc::default(),
            max_retention_ms: object_lock::DEFAULT_MAX_RETENTION_DAYS * 86_400_000,
            lock_claims: Arc::default(),
            lock_changes: Arc::default(),
        })
    }

    /// Sets the longest retention an object lock record may have (from the moment it is
    /// sealed): a longer one is refused.
    #[must_use]
    pub fn with_max_retention(mut self, longest: std::time::Duration) -> Self {
        self.max_retention_ms = i64::try_from(longest.as_millis()).unwrap_or(i64::MAX);
        self
    }

    /// Sets the S3 region that request signatures must name.
    pub fn with_region(mut self, region: &str) -> Result<Self, TrusteeError> {
        self.verifier = Arc::new(verify::Verifier::new(region)?);
        Ok(self)
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
            &governance::Vouch::Bootstrap,
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

    /// Creates an access key for `tenant` without a signed statement: only for `serve`'s
    /// first start, whose tenant admin does not exist yet. Returns the id and the secret. A
    /// sealed trustee keeps it in memory until it is unsealed.
    pub fn bootstrap_access_key(
        &self,
        tenant: &str,
    ) -> Result<(String, zeroize::Zeroizing<String>), TrusteeError> {
        let (id, secret) = new_access_key();
        if self.with(|ks| Ok(ks.status().sealed))? {
            tracing::warn!(
                access_key_id = %id,
                "the trustee is sealed: the first access key is taken into its custody at the unseal, and is lost if obhut stops before"
            );
            self.pending_keys
                .lock()
                .map_err(|_| TrusteeError::Storage("pending keys lock poisoned".into()))?
                .push((id.clone(), tenant.to_owned(), secret.clone()));
        } else {
            self.store_access_key(&id, tenant, &secret, "bootstrap", false, None)?;
        }
        Ok((id, secret))
    }

    /// Takes the access keys made while sealed into custody (after an unseal).
    fn store_pending_keys(&self) -> Result<(), TrusteeError> {
        let pending = std::mem::take(
            &mut *self
                .pending_keys
                .lock()
                .map_err(|_| TrusteeError::Storage("pending keys lock poisoned".into()))?,
        );
        for (id, tenant, secret) in pending {
            self.store_access_key(&id, &tenant, &secret, "bootstrap", false, None)?;
        }
        Ok(())
    }

    /// Whether the one import of the access keys an earlier release kept in the catalog is
    /// done ([`Self::import_access_keys`], then [`Self::close_legacy_import`]): after it, keys
    /// found in the catalog are never imported.
    pub fn legacy_import_done(&self) -> Result<bool, TrusteeError> {
        Ok(self.access_keys.legacy_import_done()?.is_some())
    }

    /// Records that the catalog's legacy access keys were imported (or that there were none)
    /// and erased from it: no later start imports any.
    pub fn close_legacy_import(&self) -> Result<(), TrusteeError> {
        self.access_keys.set_legacy_import_done(now_ms())
    }

    /// Takes keys that an earlier release kept in the catalog in clear into custody (the
    /// upgrade of an embedded installation, whose trustee runs in the same process). Each
    /// tenant's imported ids are logged, so its admin knows which keys to replace. Refused
    /// once [`Self::close_legacy_import`] was called.
    pub fn import_access_keys(&self, keys: &[AccessKeySecret]) -> Result<(), TrusteeError> {
        if self.legacy_import_done()? {
            return Err(TrusteeError::Conflict(
                "the access keys of the release before were imported already; keys found in the catalog since are not taken into custody".into(),
            ));
        }
        let mut by_tenant: std::collections::BTreeMap<&str, Vec<String>> =
            std::collections::BTreeMap::new();
        for (id, tenant, secret) in keys {
            if self.access_keys.get(id)?.is_some() {
                continue;
            }
            self.store_access_key(id, tenant, secret, "upgrade", true, None)?;
            by_tenant.entry(tenant).or_default().push(id.clone());
        }
        for (tenant, ids) in by_tenant {
            self.governance.record(LogEvent::AccessKeysImported {
                tenant: tenant.to_owned(),
                access_key_ids: ids,
                actor: "upgrade".to_owned(),
            })?;
        }
        Ok(())
    }

    fn create_access_key_now(
        &self,
        tenant: &str,
        actor: &str,
        policy: Option<&str>,
    ) -> Result<(String, zeroize::Zeroizing<String>), TrusteeError> {
        if let Some(p) = policy {
            obhut_core::iam::Policy::parse(p, obhut_core::iam::Kind::Key)
                .map_err(|e| TrusteeError::Invalid(format!("the key's policy: {e}")))?;
        }
        let (id, secret) = new_access_key();
        self.store_access_key(&id, tenant, &secret, actor, false, policy)?;
        Ok((id, secret))
    }

    /// Seals and stores a new key; logged before it exists (no log entry, no key).
    fn store_access_key(
        &self,
        id: &str,
        tenant: &str,
        secret: &str,
        actor: &str,
        imported: bool,
        policy: Option<&str>,
    ) -> Result<(), TrusteeError> {
        let sealed = self.with(|ks| {
            ks.ensure_tenant_key(tenant)?;
            ks.seal_for(
                tenant,
                &access_keys::secret_aad(id, tenant, policy),
                secret.as_bytes(),
            )
        })?;
        if !imported {
            self.governance.record(LogEvent::AccessKeyCreated {
                tenant: tenant.to_owned(),
                access_key_id: id.to_owned(),
                actor: actor.to_owned(),
                policy: policy.map(str::to_owned),
            })?;
        }
        self.access_keys
            .insert(id, tenant, &sealed, policy, now_ms(), imported)
    }

    fn revoke_access_key_now(
        &self,
        tenant: &str,
        access_key_id: &str,
        actor: &str,
    ) -> Result<Value, TrusteeError> {
        if !self.access_keys.revoke(tenant, access_key_id, now_ms())? {
            return Err(TrusteeError::NotFound(format!(
                "tenant {tenant} has no active access key {access_key_id}"
            )));
        }
        self.verifier.forget(Some(access_key_id));
        self.governance.record(LogEvent::AccessKeyRevoked {
            tenant: tenant.to_owned(),
            access_key_id: access_key_id.to_owned(),
            actor: actor.to_owned(),
        })?;
        Ok(serde_json::json!({ "access_key_id": access_key_id, "state": "revoked" }))
    }

    /// A ticket for a key release that a tenant admin's signed statement asked for.
    fn statement_ticket(
        &self,
        signed: &SignedStatement,
        tenant: &str,
        principal: &str,
        bucket: &str,
    ) -> obhut_trustee_client::auth::RequestTicket {
        let digest = obhut_sigv4::sha256_hex(
            format!("{}\n{}", signed.statement, signed.signature).as_bytes(),
        );
        self.verifier.ticket(
            digest,
            tenant,
            principal,
            vec![bucket.to_owned()],
            vec![TicketScope::Statement {
                bucket: bucket.to_owned(),
            }],
            now_ms(),
        )
    }

    /// A customer-initiated key operation needs a ticket for a request the customer signed,
    /// naming this tenant and bucket.
    fn check_customer_request(
        &self,
        tenant: &str,
        bucket: &str,
        why: &Justification,
    ) -> Result<(), TrusteeError> {
        if let Justification::Customer {
            principal, request, ..
        } = why
        {
            let ticket = request.as_ref().ok_or_else(|| {
                TrusteeError::Denied(
                    "a customer-initiated key release needs the customer's signed request".into(),
                )
            })?;
            // A request signed with grant credentials is served under its grant (scope,
            // operations, expiry, logged access), never as the customer's own.
            if ticket
                .access_key_id
                .starts_with(obhut_trustee_client::governance::GRANT_KEY_PREFIX)
            {
                return Err(TrusteeError::Denied(
                    "a request signed with grant credentials is not the customer's".into(),
                ));
            }
            self.verifier
                .check_ticket(ticket, tenant, principal, bucket, now_ms())?;
        }
        Ok(())
    }

    fn revoke(&self, r: Revocation) {
        if matches!(r, Revocation::All | Revocation::Tenant { .. }) {
            // A sealed trustee or a disabled tenant key: no signature checks from the cache.
            self.verifier.forget(None);
        }
        // No subscriber is fine: then no gateway holds keys.
        let _ = self.revocations.send(r);
    }

    /// The log index of the disconnect in force, as it changes (`None`: connected).
    #[must_use]
    pub fn subscribe_disconnects(&self) -> tokio::sync::watch::Receiver<Option<u64>> {
        self.disconnects.subscribe()
    }

    /// Logs gateways' acknowledgements of the push for the disconnect at log index
    /// `disconnect` (and those missing after `waited_ms`).
    pub fn record_gateway_acks(
        &self,
        disconnect: u64,
        acked: &[(server::Follower, u64)],
        missing: &[(server::Follower, Option<String>)],
        waited_ms: u64,
    ) -> Result<(), TrusteeError> {
        self.governance
            .record_gateway_acks(disconnect, acked, missing, waited_ms)
    }

    /// Takes in a change of the disconnect state: a new disconnect makes every gateway drop
    /// every key at once.
    fn disconnect_changed(&self) -> Result<(), TrusteeError> {
        let now = self.governance.disconnected()?.map(|d| d.index);
        // Only a change is announced: an approval that leaves the state as it is is not.
        let changed = self.disconnects.send_if_modified(|state| {
            let changed = *state != now;
            *state = now;
            changed
        });
        if changed && now.is_some() {
            self.revoke(Revocation::All);
        }
        Ok(())
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
                tenant = %obhut_core::logged(tenant),
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

    /// Gives one share (or PIN) to the keystore; once unsealed, a new seal epoch begins.
    fn unseal_now(&self, share: &str) -> Result<SealStatus, TrusteeError> {
        let status = self.with(|ks| ks.unseal(share))?;
        if !status.sealed {
            self.unseal_keys.next_epoch()?;
            self.store_pending_keys()?;
        }
        Ok(status)
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
        self.governance.check_connected()?;
        policy::may_create_bucket_key(tenant, why)?;
        self.check_customer_request(tenant, bucket, why)?;
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
        self.governance.check_connected()?;
        policy::may_release_bucket_key(tenant, why)?;
        self.check_customer_request(tenant, bucket, why)?;
        let (tenant, bucket, key, why) = (
            tenant.to_owned(),
            bucket.to_owned(),
            key.clone(),
            why.clone(),
        );
        self.blocking(move |t| t.release_bucket_key_now(&tenant, &bucket, &key, &why))
            .await
    }

    async fn object_keys(
        &self,
        tenant: &str,
        bucket: &str,
        bucket_key: &WrappedKey,
        why: &Justification,
        ops: Vec<ObjectKeyOp>,
    ) -> Result<Vec<ObjectKeyOutcome>, TrusteeError> {
        self.governance.check_connected()?;
        policy::may_release_bucket_key(tenant, why)?;
        self.check_customer_request(tenant, bucket, why)?;
        if let Justification::Customer {
            request: Some(ticket),
            ..
        } = why
        {
            // Only the objects the verified request names (for ETags and checks: lists).
            for op in &ops {
                let name = op.name();
                if !ticket.covers(bucket, &name.key, name.upload.as_deref(), key_use(op)) {
                    return Err(TrusteeError::Denied(
                        "the verified request does not name this object".into(),
                    ));
                }
            }
        }
        let (tenant, bucket, bucket_key, why) = (
            tenant.to_owned(),
            bucket.to_owned(),
            bucket_key.clone(),
            why.clone(),
        );
        self.blocking(move |t| t.object_keys_now(&tenant, &bucket, &bucket_key, &why, ops))
            .await
    }

    async fn rewrap_object_keys(
        &self,
        tenant: &str,
        bucket: &str,
        from: &WrappedKey,
        to: &WrappedKey,
        why: &Justification,
        keys: Vec<SealedObjectKey>,
    ) -> Result<Vec<ObjectKeyOutcome>, TrusteeError> {
        self.governance.check_connected()?;
        // Only for the tenant admin's signed rotation of this bucket.
        let statement = matches!(why, Justification::Customer { request: Some(t), .. } if t.is_statement_for(bucket));
        if !statement {
            return Err(TrusteeError::Denied(
                "object keys are rewrapped only for the tenant admin's signed rotation".into(),
            ));
        }
        self.check_customer_request(tenant, bucket, why)?;
        let (tenant, bucket, from, to, why) = (
            tenant.to_owned(),
            bucket.to_owned(),
            from.clone(),
            to.clone(),
            why.clone(),
        );
        self.blocking(move |t| t.rewrap_now(&tenant, &bucket, &from, &to, &why, keys))
            .await
    }

    async fn seal_status(&self) -> Result<SealStatus, TrusteeError> {
        self.blocking(|t| {
            let mut status = t.with(|ks| Ok(ks.status()))?;
            status.disconnected = t.governance.disconnected()?.is_some();
            Ok(status)
        })
        .await
    }

    async fn unseal(&self, share: &str) -> Result<SealStatus, TrusteeError> {
        let share = zeroize::Zeroizing::new(share.to_owned());
        self.blocking(move |t| t.unseal_now(&share)).await
    }

    async fn unseal_key(&self) -> Result<obhut_trustee_client::UnsealKey, TrusteeError> {
        self.unseal_keys.public()
    }

    async fn unseal_sealed(
        &self,
        sealed: &obhut_trustee_client::SealedShare,
    ) -> Result<SealStatus, TrusteeError> {
        let sealed = sealed.clone();
        self.blocking(move |t| {
            let share = t.unseal_keys.open_share(&sealed)?;
            t.unseal_now(&share)
        })
        .await
    }

    async fn seal(&self) -> Result<SealStatus, TrusteeError> {
        // Sealing and revoking cached keys are one step on the blocking pool: a caller that goes
        // away while it runs cannot leave the trustee sealed with gateways still holding keys.
        self.blocking(|t| {
            let status = t.with(|ks| Ok(ks.seal()))?;
            t.unseal_keys.next_epoch()?;
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
                Action::CreateAccessKey {
                    tenant,
                    deliver_to,
                    policy,
                } => {
                    own_tenant_admin(&who, tenant, "create access keys")?;
                    let recipient = hex_simd::decode_to_vec(deliver_to.as_bytes())
                        .ok()
                        .filter(|k| k.len() == 32)
                        .ok_or_else(|| {
                            TrusteeError::Invalid(
                                "deliver_to must be a 32-byte X25519 public key in hex: the new secret is answered only encrypted".into(),
                            )
                        })?;
                    let (id, secret) =
                        t.create_access_key_now(tenant, &who.name, policy.as_deref())?;
                    let (enc, sealed) =
                        obhut_crypto::delivery::seal(&recipient, &id, tenant, secret.as_bytes())
                            .map_err(|e| TrusteeError::Invalid(e.to_string()))?;
                    Ok(serde_json::json!({
                        "tenant": tenant,
                        "access_key_id": id,
                        "enc": base64_simd::STANDARD.encode_to_string(enc),
                        "sealed_secret": base64_simd::STANDARD.encode_to_string(sealed),
                    }))
                }
                Action::RevokeAccessKey {
                    tenant,
                    access_key_id,
                } => {
                    own_tenant_admin(&who, tenant, "revoke access keys")?;
                    t.revoke_access_key_now(tenant, access_key_id, &who.name)
                }
                Action::SetKeyRelease {
                    tenant,
                    key_release,
                } => {
                    own_tenant_admin(&who, tenant, "choose how its keys are released")?;
                    t.governance.record(LogEvent::KeyReleasePolicySet {
                        tenant: tenant.clone(),
                        key_release: *key_release,
                        actor: who.name.clone(),
                    })?;
                    // Gateways drop the tenant's bucket keys at once and ask again.
                    t.revoke(Revocation::Tenant {
                        tenant: tenant.clone(),
                    });
                    Ok(serde_json::json!({
                        "tenant": tenant,
                        "key_release": key_release.name(),
                    }))
                }
                Action::RotateBucketKey { tenant, bucket } => {
                    own_tenant_admin(&who, tenant, "rotate bucket keys")?;
                    to_json(&t.statement_ticket(&signed, tenant, &who.name, bucket))
                }
                Action::SetTenantPolicy { tenant, .. } | Action::SetBucketPolicy { tenant, .. } => {
                    let v = t.governance.act(&who, &statement, &signed)?;
                    // Gateways drop their cached copy and ask again.
                    t.revoke(Revocation::Policy {
                        tenant: tenant.clone(),
                    });
                    Ok(v)
                }
                Action::Disconnect { .. } | Action::Reconnect {} => {
                    let v = t.governance.act(&who, &statement, &signed)?;
                    t.disconnect_changed()?;
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
        self.blocking(move |t| match &query {
            Query::AccessKeys { tenant } => {
                let who = t
                    .governance
                    .principal(&principal)?
                    .ok_or_else(|| {
                        TrusteeError::Denied(format!("unknown principal {principal:?}"))
                    })?
                    .info;
                own_tenant_admin(&who, tenant, "list access keys")?;
                let keys: Vec<Value> = t
                    .access_keys
                    .list(tenant)?
                    .into_iter()
                    .map(|k| {
                        serde_json::json!({
                            "access_key_id": k.access_key_id,
                            "state": k.state,
                            "created_ms": k.created_ms,
                            "policy": k.policy,
                        })
                    })
                    .collect();
                Ok(Value::Array(keys))
            }
            Query::Quorum { tenant } => t.quorum_now(&principal, tenant.as_deref()),
            _ => t.governance.query(&principal, &query),
        })
        .await
    }

    async fn log_read(&self, read: &LogRead) -> Result<Option<Vec<u8>>, TrusteeError> {
        let read = read.clone();
        self.blocking(move |t| t.governance.log_read(&read)).await
    }

    async fn verify_request(
        &self,
        request: &obhut_trustee_client::auth::SignedRequest,
    ) -> Result<obhut_trustee_client::auth::Verified, TrusteeError> {
        obhut_metrics::get().signature_checked();
        // While disconnected no request is served: none is verified.
        self.governance.check_connected()?;
        // A key seen lately is checked here, on the caller's thread (a few HMACs); only a
        // first use reads storage and the keystore, on the blocking pool.
        if let Some(verified) = self.verifier.verify_cached(request, now_ms())? {
            return Ok(verified);
        }
        let request = request.clone();
        self.blocking(move |t| t.verifier.verify(&request, t, now_ms()))
            .await
    }

    async fn verify_post(
        &self,
        post: &obhut_trustee_client::auth::SignedPost,
    ) -> Result<obhut_trustee_client::auth::Verified, TrusteeError> {
        obhut_metrics::get().signature_checked();
        // While disconnected no request is served: none is verified.
        self.governance.check_connected()?;
        let post = post.clone();
        self.blocking(move |t| t.verifier.verify_post(&post, t, now_ms()))
            .await
    }

    async fn verify_chunks(
        &self,
        batch: &obhut_trustee_client::auth::ChunkBatch,
    ) -> Result<obhut_trustee_client::auth::ChainToken, TrusteeError> {
        self.governance.check_connected()?;
        let batch = batch.clone();
        self.blocking(move |t| t.verifier.verify_chunks(&batch, t))
            .await
    }

    async fn authorize_grant_access(
        &self,
        access: &GrantAccess,
    ) -> Result<GrantScope, TrusteeError> {
        self.governance.check_connected()?;
        let access = access.clone();
        self.blocking(move |t| {
            // The access must be part of a request the trustee verified, signed with these
            // credentials, naming this bucket.
            t.verifier.check_ticket(
                &access.ticket,
                &access.ticket.tenant,
                &access.access_key_id,
                &access.bucket,
                now_ms(),
            )?;
            let scope = t.governance.authorize_access(&access)?;
            if scope.tenant != access.ticket.tenant {
                return Err(TrusteeError::Denied(
                    "the request ticket is for another tenant".into(),
                ));
            }
            Ok(scope)
        })
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
        let mut alarm = alarm.clone();
        self.blocking(move |t| {
            // A flood of alarms (a gateway's, say) fills neither the log nor the disk.
            match t.governance.admit_alarm(&alarm.tenant) {
                None => {
                    return Err(TrusteeError::Conflict(
                        "too many integrity alarms about this tenant this minute; this one is counted, not logged".into(),
                    ));
                }
                Some(0) => {}
                Some(n) => alarm.reason.push_str(&format!(
                    " ({n} more alarms about this tenant in the minute before were not logged one by one)"
                )),
            }
            tracing::error!(
                tenant = %obhut_core::logged(&alarm.tenant),
                bucket = %obhut_core::logged(&alarm.bucket),
                key = %obhut_core::logged(&alarm.key),
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

    async fn seal_lock(&self, seal: &LockSeal) -> Result<LockAnswer, TrusteeError> {
        self.governance.check_connected()?;
        if seal.change == LockChange::BucketDefault {
            // A bucket's default names the bucket only.
            check_lock_target(&LockTarget {
                key: "-".into(),
                version_id: "-".into(),
                ..seal.target.clone()
            })?;
        } else {
            check_lock_target(&seal.target)?;
        }
        let seal = seal.clone();
        self.blocking(move |t| match seal.change {
            LockChange::Upload => t.seal_upload_lock(&seal),
            LockChange::BucketDefault => t.note_bucket_default(&seal),
            // A first record is never abandoned: only the gateway (the provider) holds the
            // ticket that sealed it, so an abandonment could not be told from the provider
            // unlocking a committed version (and freeing the ticket for another version).
            // A failed commit's record stays counted until its date instead.
            LockChange::Abandoned => Err(TrusteeError::Denied(ABANDON_REFUSED.into())),
            LockChange::Written | LockChange::Retention | LockChange::LegalHold => {
                t.seal_version_lock(&seal)
            }
        })
        .await
    }

    async fn open_lock(&self, open: &LockOpen) -> Result<LockAnswer, TrusteeError> {
        self.governance.check_connected()?;
        check_lock_target(&open.target)?;
        let open = open.clone();
        self.blocking(move |t| {
            let state = t.open_lock_now(&open.target, &open.sealed)?;
            Ok(LockAnswer {
                sealed: open.sealed,
                state,
                now_ms: now_ms(),
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
        if version == 1 {
            // A bucket's first key: a new bucket, perhaps under the name of one deleted. No
            // default retention of the old one may hold for it (a plain CreateBucket never
            // reaches the lock code); one made with object lock records its own next.
            self.governance.forget_bucket_default(tenant, bucket)?;
        }
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
            tracing::info!(
                tenant = %obhut_core::logged(tenant),
                bucket = %obhut_core::logged(bucket),
                version,
                justification = %logged_why(why),
                "bucket key created"
            );
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
        // A per-object tenant's bucket keys stay here; only obhut's own format upgrade, in
        // process, has them (its rotations rewrap inside the trustee). Lifecycle's tag reads
        // have object keys opened here, as requests do.
        if self.governance.key_release(tenant)? == KeyRelease::PerObject && !is_format_upgrade(why)
        {
            return Err(TrusteeError::ObjectKeysOnly(tenant.to_owned()));
        }
        if let Justification::Grant { grant_id } = why {
            self.governance
                .check_grant_release(grant_id, tenant, bucket)?;
        }
        let released = self.open_bucket_key(tenant, bucket, key)?;
        // No log entry, no key: the release is recorded durably before the key leaves.
        self.governance.record(LogEvent::KeyRelease {
            tenant: tenant.to_owned(),
            bucket: bucket.to_owned(),
            key_version: key.version,
            justification: why.clone(),
        })?;
        // The tenant's admin may have chosen per-object release meanwhile: a release logged
        // after that choice does not leave.
        if self.governance.key_release(tenant)? == KeyRelease::PerObject && !is_format_upgrade(why)
        {
            return Err(TrusteeError::ObjectKeysOnly(tenant.to_owned()));
        }
        tracing::info!(
            tenant = %obhut_core::logged(tenant),
            bucket = %obhut_core::logged(bucket),
            version = key.version,
            justification = %logged_why(why),
            "bucket key released"
        );
        Ok(released)
    }

    /// Opens a bucket key the catalog holds wrapped under the tenant key (for use here).
    fn open_bucket_key(
        &self,
        tenant: &str,
        bucket: &str,
        key: &WrappedKey,
    ) -> Result<Key, TrusteeError> {
        self.with(|ks| {
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
        })
    }

    /// Rewraps object keys from bucket key `from` to `to`, both staying here; recorded like
    /// per-object releases.
    fn rewrap_now(
        &self,
        tenant: &str,
        bucket: &str,
        from: &WrappedKey,
        to: &WrappedKey,
        why: &Justification,
        keys: Vec<SealedObjectKey>,
    ) -> Result<Vec<ObjectKeyOutcome>, TrusteeError> {
        let old = self.open_bucket_key(tenant, bucket, from)?;
        let new = self.open_bucket_key(tenant, bucket, to)?;
        let mut rewrapped = 0u32;
        let outcomes: Vec<ObjectKeyOutcome> = keys
            .iter()
            .map(|s| {
                let aad = object_key_aad(
                    tenant,
                    bucket,
                    &s.name.key,
                    s.name.upload.as_deref(),
                    &s.version_id,
                );
                let result = obhut_crypto::unwrap_key(&old, &s.wrapped, &aad, &s.kcv)
                    .and_then(|k| obhut_crypto::wrap_key(&new, &k, &aad));
                match result {
                    Ok((wrapped, kcv)) => {
                        rewrapped += 1;
                        ObjectKeyOutcome::Wrapped { wrapped, kcv }
                    }
                    Err(e) => {
                        ObjectKeyOutcome::Refused(format!("the object key does not open here: {e}"))
                    }
                }
            })
            .collect();
        if rewrapped > 0 {
            self.record_served(tenant, bucket, to.version, why, [0, 0, 0, rewrapped])?;
        }
        Ok(outcomes)
    }

    /// Opens or wraps object keys under the bucket key, which stays here; the answers leave
    /// only once the request is recorded in the log (group-committed).
    fn object_keys_now(
        &self,
        tenant: &str,
        bucket: &str,
        bucket_key: &WrappedKey,
        why: &Justification,
        ops: Vec<ObjectKeyOp>,
    ) -> Result<Vec<ObjectKeyOutcome>, TrusteeError> {
        if let Justification::Grant { grant_id } = why {
            let (prefix, granted) = self
                .governance
                .grant_release_scope(grant_id, tenant, bucket)?;
            let allowed = |op: &ObjectKeyOp| {
                let name = op.name();
                let may = |what: &str| granted.iter().any(|g| g == what);
                name.key.starts_with(&prefix)
                    && match key_use(op) {
                        KeyUse::Open if name.upload.is_some() => may("write") || may("read"),
                        KeyUse::Open => may("read"),
                        KeyUse::Wrap => may("write"),
                        // Every grant sees the ETags of what it covers.
                        KeyUse::Etag => true,
                    }
            };
            if !ops.iter().all(allowed) {
                return Err(TrusteeError::Denied(format!(
                    "grant {grant_id} does not cover every object key asked for"
                )));
            }
        }
        if ops.iter().any(|op| matches!(op, ObjectKeyOp::Wrap { .. }))
            && self.governance.key_release(tenant)? == KeyRelease::PerObject
            && self
                .governance
                .bucket_key_was_released(tenant, bucket, bucket_key.version)?
        {
            // Whoever held that version could open what is wrapped under it.
            return Err(TrusteeError::Conflict(format!(
                "bucket key version {} of this bucket was released to a gateway before its tenant chose per-object release; its admin rotates the bucket's key (obhut tenant rotate-key) before new objects are written",
                bucket_key.version
            )));
        }
        let bk = self.open_bucket_key(tenant, bucket, bucket_key)?;
        let unwrap = |s: &SealedObjectKey| {
            let aad = object_key_aad(
                tenant,
                bucket,
                &s.name.key,
                s.name.upload.as_deref(),
                &s.version_id,
            );
            obhut_crypto::unwrap_key(&bk, &s.wrapped, &aad, &s.kcv)
                .map_err(|e| format!("the object key does not open here: {e}"))
        };
        let (mut opened, mut listed, mut wrapped) = (0u32, 0u32, 0u32);
        let mut outcomes = Vec::with_capacity(ops.len());
        for op in &ops {
            let outcome = match op {
                ObjectKeyOp::Open(s) => unwrap(s).map(|k| {
                    opened += 1;
                    ObjectKeyOutcome::Key(k)
                }),
                ObjectKeyOp::Etag(s, stored) => unwrap(s).and_then(|k| {
                    open_sealed_etag(&k, &s.version_id, None, stored)
                        .map(|e| {
                            listed += 1;
                            ObjectKeyOutcome::Etag(e)
                        })
                        .map_err(|e| format!("the ETag does not open: {e}"))
                }),
                ObjectKeyOp::Check(s) => unwrap(s).map(|_| {
                    listed += 1;
                    ObjectKeyOutcome::Checked
                }),
                ObjectKeyOp::Wrap {
                    name,
                    version_id,
                    key,
                } => {
                    let aad = object_key_aad(
                        tenant,
                        bucket,
                        &name.key,
                        name.upload.as_deref(),
                        version_id,
                    );
                    obhut_crypto::wrap_key(&bk, key, &aad)
                        .map(|(w, kcv)| {
                            wrapped += 1;
                            ObjectKeyOutcome::Wrapped { wrapped: w, kcv }
                        })
                        .map_err(|e| e.to_string())
                }
            };
            outcomes.push(outcome.unwrap_or_else(ObjectKeyOutcome::Refused));
        }
        if opened + listed + wrapped > 0 {
            // No log entry, no key.
            self.record_served(
                tenant,
                bucket,
                bucket_key.version,
                why,
                [opened, listed, wrapped, 0],
            )?;
        }
        Ok(outcomes)
    }

    /// Records, group-committed, that a request of `tenant` had object keys of `bucket`
    /// (under key `version`) opened, listed, wrapped and rewrapped (`counts`, in that order).
    fn record_served(
        &self,
        tenant: &str,
        bucket: &str,
        version: u32,
        why: &Justification,
        [opened, listed, wrapped, rewrapped]: [u32; 4],
    ) -> Result<(), TrusteeError> {
        let (justification, principal, request) = match why {
            Justification::Customer {
                principal, request, ..
            } => (
                "customer",
                principal.clone(),
                request.as_ref().map(|t| t.digest.clone()),
            ),
            Justification::Grant { grant_id } => ("grant", grant_id.clone(), None),
            Justification::System { reason } => ("system", reason.clone(), None),
        };
        self.object_key_log.record(
            &self.governance,
            tenant,
            ObjectKeyRequestEntry {
                bucket: bucket.to_owned(),
                key_version: version,
                justification: justification.into(),
                principal,
                request,
                opened,
                listed,
                wrapped,
                rewrapped,
            },
        )
    }
}

/// What an object-key operation needs of the request it serves.
fn key_use(op: &ObjectKeyOp) -> KeyUse {
    match op {
        ObjectKeyOp::Open(_) => KeyUse::Open,
        ObjectKeyOp::Wrap { .. } => KeyUse::Wrap,
        ObjectKeyOp::Etag(..) | ObjectKeyOp::Check(_) => KeyUse::Etag,
    }
}

/// A new tenant access key id (`OBK` and 17 more) and its secret.
fn new_access_key() -> (String, zeroize::Zeroizing<String>) {
    let id = format!(
        "{}{}",
        access_keys::TENANT_KEY_PREFIX,
        obhut_core::random_token(17).to_ascii_uppercase()
    );
    (id, zeroize::Zeroizing::new(obhut_core::random_token(40)))
}

/// Only the tenant's own admin may manage its access keys and rotate its bucket keys: an
/// officer who could would have standing access to its data.
fn own_tenant_admin(who: &PrincipalInfo, tenant: &str, what: &str) -> Result<(), TrusteeError> {
    if who.role == Role::TenantAdmin && who.tenant.as_deref() == Some(tenant) {
        Ok(())
    } else {
        Err(TrusteeError::Denied(format!(
            "only tenant {tenant}'s admin may {what}"
        )))
    }
}

impl verify::SecretSource for Trustee {
    fn secret(
        &self,
        access_key_id: &str,
        _request: Option<&obhut_trustee_client::auth::SignedRequest>,
    ) -> Result<
        (
            obhut_trustee_client::auth::Signer,
            zeroize::Zeroizing<String>,
        ),
        TrusteeError,
    > {
        use obhut_trustee_client::auth::{AuthFailure, Signer};
        let unknown = || TrusteeError::Unauthenticated(AuthFailure::UnknownKey);
        // Sealed, no secret can be opened: every request waits for the unseal (503), known
        // key or not.
        let status = self.with(|ks| Ok(ks.status()))?;
        if status.sealed {
            return Err(TrusteeError::Sealed(status.shares_given, status.threshold));
        }
        if access_key_id.starts_with(obhut_trustee_client::governance::GRANT_KEY_PREFIX) {
            let (grant_id, tenant, secret) = self
                .governance
                .grant_secret(access_key_id)?
                .ok_or_else(unknown)?;
            return Ok((Signer::Grant { grant_id, tenant }, secret));
        }
        let key = self.access_keys.get(access_key_id)?.ok_or_else(unknown)?;
        let Some(sealed) = key.sealed.filter(|_| key.state == "active") else {
            return Err(unknown());
        };
        let opened = self.with(|ks| {
            ks.open_for(
                &key.tenant,
                &access_keys::secret_aad(access_key_id, &key.tenant, key.policy.as_deref()),
                &sealed,
            )
        });
        match opened {
            Ok(plain) => {
                let secret = String::from_utf8(plain.to_vec()).map_err(|_| {
                    TrusteeError::Integrity("an access key secret is not UTF-8".into())
                })?;
                Ok((
                    Signer::Tenant {
                        tenant: key.tenant,
                        policy: key.policy,
                    },
                    zeroize::Zeroizing::new(secret),
                ))
            }
            Err(TrusteeError::Integrity(detail)) => {
                // The row was edited, copied or written by hand: refuse and raise the alarm.
                tracing::error!(
                    access_key_id,
                    "an access key record failed its integrity check"
                );
                self.governance.record(LogEvent::IntegrityFailure {
                    what: "access_key".into(),
                    subject: access_key_id.to_owned(),
                    tenant: Some(key.tenant.clone()),
                    detail,
                })?;
                Err(TrusteeError::Unauthenticated(AuthFailure::Integrity))
            }
            // A disabled or destroyed tenant key (crypto-shred) takes its access keys with it;
            // the refusal says so (TenantKeyDisabled, TenantKeyDestroyed pass through).
            Err(TrusteeError::NoTenantKey(t)) => {
                Err(TrusteeError::Denied(format!("tenant {t} has no key")))
            }
            Err(other) => Err(other),
        }
    }

    fn cacheable(&self, access_key_id: &str) -> bool {
        !access_key_id.starts_with(obhut_trustee_client::governance::GRANT_KEY_PREFIX)
    }
}

/// The keystore entry whose key seals S3 sites' secrets (not a tenant: tenant names cannot
/// start with `_`).
const SITE_SECRETS: &str = "_sites";

/// The keystore entry object lock records are sealed under: a key of the trustee's own, so
/// that a record reads the same whatever becomes of its tenant's key.
const OBJECT_LOCKS: &str = "_object_locks";

/// The associated data of a version's object lock record: the version it belongs to.
fn lock_aad(t: &LockTarget) -> Vec<u8> {
    let mut aad = b"obhut object lock v1\0".to_vec();
    for part in [&t.tenant, &t.bucket, &t.key, &t.version_id] {
        aad.extend_from_slice(&u64::try_from(part.len()).unwrap_or(u64::MAX).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

fn check_lock_target(t: &LockTarget) -> Result<(), TrusteeError> {
    let fits = |s: &str, max: usize| !s.is_empty() && s.len() <= max;
    if fits(&t.tenant, 256)
        && fits(&t.bucket, 256)
        && fits(&t.key, 2048)
        && fits(&t.version_id, 256)
    {
        Ok(())
    } else {
        Err(TrusteeError::Invalid(
            "an object lock record names a tenant, a bucket, a key and a version id of bounded length".into(),
        ))
    }
}

/// The associated data of what the trustee sealed for a multipart upload's completion: the
/// lock its CreateMultipartUpload's signed headers asked for (`version_id`: the upload id).
/// Another prefix than a version's record, so that neither opens as the other.
fn upload_lock_aad(t: &LockTarget) -> Vec<u8> {
    let mut aad = b"obhut object lock upload v1\0".to_vec();
    aad.extend_from_slice(&lock_aad(t)[b"obhut object lock v1\0".len()..]);
    aad
}

/// The lock state a write's signed lock headers ask for ([`RequestTicket::lock`]'s text):
/// `Denied` if they cannot be read as S3 reads them.
fn signed_lock_state(text: &str) -> Result<LockState, TrusteeError> {
    let bad = |what: &str| {
        TrusteeError::Denied(format!(
            "the signed request's object lock headers cannot be read: {what}"
        ))
    };
    let mut parts = text.split('\n');
    let (Some(mode), Some(until), Some(hold), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("malformed"));
    };
    let retention = match (mode, until) {
        ("", "") => None,
        ("", _) | (_, "") => return Err(bad("a mode and a retain-until date go together")),
        (mode, until) => {
            let mode = object_lock::LockMode::parse(mode).ok_or_else(|| bad("the mode"))?;
            let at =
                time::OffsetDateTime::parse(until, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| bad("the retain-until date"))?;
            let ms = i64::try_from(at.unix_timestamp_nanos() / 1_000_000)
                .map_err(|_| bad("the retain-until date"))?;
            Some((mode, ms))
        }
    };
    let legal_hold = match hold {
        "" | "OFF" => false,
        "ON" => true,
        _ => return Err(bad("the legal hold")),
    };
    Ok(LockState {
        retention,
        legal_hold,
    })
}

/// Why a change of a retention or legal hold without the tenant's signed request is refused.
const LOCK_CHANGE_UNSIGNED: &str = "a change of a version's retention or legal hold needs the trustee's ticket for the tenant's signed PutObjectRetention or PutObjectLegalHold";

/// Why a change that gives an older record of its version than the latest is refused.
const STALE_LOCK_RECORD: &str = "the object lock record given is not the latest the trustee sealed for this version (an older record, or one the catalog kept after a later change): a change is judged only against the latest";

/// Why an abandonment of a lock record is refused (every one is).
const ABANDON_REFUSED: &str = "an object lock record is never abandoned: a lock sealed for a write counts until its date, even if the write did not commit";

/// How long tickets' claims on the versions they sealed are kept: as long as the same signed
/// request can be verified again with a ticket that may seal (within the clock skew of its
/// signature either way, `verify::in_lock_window`: 30 minutes), and at least as long as a
/// ticket is valid.
const LOCK_CLAIM_MS: i64 = 2 * verify::TICKET_LIFETIME_MS;

// Claims outlive every verification of a request that may seal.
const _: () = assert!(LOCK_CLAIM_MS >= 2 * obhut_sigv4::MAX_CLOCK_SKEW_SECS * 1000);

/// At most this many claims are kept (a full table refuses first seals until some expire).
const LOCK_CLAIMS_MAX: usize = 100_000;

impl Trustee {
    /// Opens a stored object lock record of `target`: `Integrity` if it is not this
    /// trustee's seal for that version (edited, or moved from another version). A record a
    /// release before abandoned (governance.db schema 5, `abandoned_ms`) opens like any other:
    /// its version may exist after all.
    ///
    /// A genuine record that is not the latest the trustee sealed for its version (an older
    /// one put back in the catalog) answers the latest state the trustee lists: the gateway
    /// enforces what the trustee sealed last, never a weaker state from before.
    fn open_lock_now(&self, target: &LockTarget, sealed: &str) -> Result<LockState, TrusteeError> {
        let (state, _) = self.open_lock_record(target, sealed)?;
        // The listed state is the latest sealed (the same as the record's, if it is the
        // latest); a version not listed has a latest record that locks nothing, and any
        // genuine record of it is at least as strict.
        Ok(self
            .governance
            .latest_lock(target)?
            .map_or(state, |(listed, _)| listed))
    }

    /// [`Self::open_lock_now`], with the record's digest
    /// ([`governance::lock_record_digest`]).
    fn open_lock_record(
        &self,
        target: &LockTarget,
        sealed: &str,
    ) -> Result<(LockState, String), TrusteeError> {
        let raw = base64_simd::STANDARD
            .decode_to_vec(sealed.as_bytes())
            .map_err(|_| TrusteeError::Integrity("an object lock record is not base64".into()))?;
        let digest = governance::lock_record_digest(&raw);
        let plain = self.with(|ks| ks.open_for(OBJECT_LOCKS, &lock_aad(target), &raw))?;
        let state: LockState = serde_json::from_slice(&plain)
            .map_err(|e| TrusteeError::Integrity(format!("an object lock record: {e}")))?;
        Ok((state, digest))
    }

    /// Refuses to judge a change against `previous` (genuine, of `target`, with `digest`)
    /// unless it is the latest record the trustee sealed for the version: an older one (from
    /// before a retention was extended or a legal hold set) would have the change judged
    /// against a weaker state. A version the trustee lists no lock of takes any genuine record
    /// (none is weaker than no lock). A row a release before wrote has no digest: a record
    /// whose state is the listed one is accepted (it judges the change the same). A change to
    /// exactly the listed state is accepted whatever record it gives: it weakens nothing, and
    /// it lets a change whose record the catalog missed be asked again.
    fn check_latest_lock(
        &self,
        target: &LockTarget,
        previous: &LockState,
        digest: &str,
        next: &LockState,
    ) -> Result<(), TrusteeError> {
        let Some((listed, listed_digest)) = self.governance.latest_lock(target)? else {
            return Ok(());
        };
        let latest = match &listed_digest {
            Some(d) => {
                d.len() == digest.len()
                    && aws_lc_rs::constant_time::verify_slices_are_equal(
                        d.as_bytes(),
                        digest.as_bytes(),
                    )
                    .is_ok()
            }
            None => *previous == listed,
        };
        if latest || *next == listed {
            return Ok(());
        }
        Err(TrusteeError::Denied(STALE_LOCK_RECORD.into()))
    }

    /// Refuses a retention that ends later than the trustee's longest from `now`, unless the
    /// record it replaces already ended as late (a change that keeps a retention sealed
    /// before the limit was lowered).
    fn check_retention_limit(
        &self,
        previous: Option<&LockState>,
        next: &LockState,
        now: i64,
    ) -> Result<(), TrusteeError> {
        let Some((_, until)) = next.retention else {
            return Ok(());
        };
        let kept = previous
            .and_then(|p| p.retention)
            .is_some_and(|(_, before)| before >= until);
        if !kept && until.saturating_sub(now) > self.max_retention_ms {
            return Err(TrusteeError::Invalid(format!(
                "{}: at most {} days from now",
                object_lock::RETENTION_TOO_LONG,
                self.max_retention_ms / 86_400_000
            )));
        }
        Ok(())
    }

    /// The ticket a first record or an upload's lock needs: this trustee's,
    /// recent, for the target's tenant and bucket.
    fn lock_ticket<'a>(
        &self,
        seal: &'a LockSeal,
        now: i64,
    ) -> Result<&'a obhut_trustee_client::auth::RequestTicket, TrusteeError> {
        let ticket = seal.request.as_ref().ok_or_else(|| {
            TrusteeError::Denied(
                "an object lock record of a new version needs the trustee's ticket for the tenant's signed write".into(),
            )
        })?;
        self.verifier.check_ticket(
            ticket,
            &seal.target.tenant,
            &ticket.access_key_id,
            &seal.target.bucket,
            now,
        )?;
        Ok(ticket)
    }

    /// What a write asked for with its signed lock headers (`None`: it had none), refused
    /// under a grant: a lock set by the provider's staff would outlive the grant and could
    /// stop the tenant's shred.
    fn asked_lock(
        ticket: &obhut_trustee_client::auth::RequestTicket,
    ) -> Result<Option<LockState>, TrusteeError> {
        let Some(text) = &ticket.lock else {
            return Ok(None);
        };
        if ticket
            .access_key_id
            .starts_with(obhut_trustee_client::governance::GRANT_KEY_PREFIX)
        {
            return Err(TrusteeError::Denied(
                "object lock headers are not accepted from a request signed with grant credentials"
                    .into(),
            ));
        }
        signed_lock_state(text).map(Some)
    }

    /// Checks that the first record of a version comes from a genuine write of it: the
    /// trustee's ticket for a signed request that makes a version of that name (PutObject,
    /// CopyObject, a form's upload; a completion: of that upload, as the ticket's operation
    /// says), used for no other version, and a state that is what the request's signed lock
    /// headers (or its upload's, sealed at its creation) ask for. Without lock headers only a
    /// retention may be set, and only the bucket's default retention as the tenant set it
    /// ([`Self::check_default_retention`]), never a legal hold. Claims the ticket for the
    /// version.
    fn check_first_lock(&self, seal: &LockSeal, now: i64) -> Result<(), TrusteeError> {
        let target = &seal.target;
        let ticket = self.lock_ticket(seal, now)?;
        // The provider's staff write only under a grant: no lock of theirs, not even a
        // bucket's default retention, outlives the grant or stops the tenant's shred.
        if (seal.state.retention.is_some() || seal.state.legal_hold)
            && ticket
                .access_key_id
                .starts_with(obhut_trustee_client::governance::GRANT_KEY_PREFIX)
        {
            return Err(TrusteeError::Denied(
                "no object lock is sealed for a request signed with grant credentials".into(),
            ));
        }
        let writes = match &seal.upload {
            None => ticket.covers(&target.bucket, &target.key, None, KeyUse::Wrap),
            Some(u) => {
                ticket.covers(&target.bucket, &target.key, None, KeyUse::Wrap)
                    && ticket.covers(
                        &target.bucket,
                        &target.key,
                        Some(&u.upload_id),
                        KeyUse::Open,
                    )
            }
        };
        // Only a request that makes a version seals its first record: not a DELETE, a tagging,
        // a retention change or any other request that names the object (each `w:`).
        let makes = match &seal.upload {
            None => object_lock::makes_version(ticket.op.as_deref()),
            Some(_) => ticket.op.as_deref() == Some(object_lock::OP_COMPLETE_MULTIPART_UPLOAD),
        };
        if !writes || !makes {
            return Err(TrusteeError::Denied(
                "the signed request does not write this object (or complete this upload)".into(),
            ));
        }
        let asked = match &seal.upload {
            Some(object_lock::UploadLock {
                upload_id,
                sealed: Some(sealed),
            }) => {
                let upload = LockTarget {
                    version_id: upload_id.clone(),
                    ..target.clone()
                };
                check_lock_target(&upload)?;
                let raw = base64_simd::STANDARD
                    .decode_to_vec(sealed.as_bytes())
                    .map_err(|_| {
                        TrusteeError::Integrity("an upload's object lock is not base64".into())
                    })?;
                let plain =
                    self.with(|ks| ks.open_for(OBJECT_LOCKS, &upload_lock_aad(&upload), &raw))?;
                Some(serde_json::from_slice(&plain).map_err(|e| {
                    TrusteeError::Integrity(format!("an upload's object lock: {e}"))
                })?)
            }
            Some(_) => None,
            None => Self::asked_lock(ticket)?,
        };
        match asked {
            Some(asked) if asked != seal.state => {
                return Err(TrusteeError::Denied(
                    "the object lock is not what the tenant's signed request asked for".into(),
                ));
            }
            Some(_) => {}
            None if seal.state.legal_hold => {
                return Err(TrusteeError::Denied(
                    "a legal hold on a new version needs the write's signed x-amz-object-lock-legal-hold".into(),
                ));
            }
            None => {
                if let Some((mode, until)) = seal.state.retention {
                    self.check_default_retention(target, mode, until, now)?;
                }
            }
        }
        self.claim_lock_ticket(ticket, target, now).map(|_| ())
    }

    /// Checks that a retention a write did not sign (`mode` until `until`) is its bucket's
    /// default as the tenant's signed PutObjectLockConfiguration set it, counted from the
    /// trustee's clock at the seal (within [`object_lock::DEFAULT_RETENTION_TOLERANCE_MS`]):
    /// the default the catalog keeps is the provider's to edit. A bucket whose default the
    /// trustee never saw set gives none (`Invalid`, [`object_lock::DEFAULT_NOT_KNOWN`]).
    fn check_default_retention(
        &self,
        target: &LockTarget,
        mode: object_lock::LockMode,
        until: i64,
        now: i64,
    ) -> Result<(), TrusteeError> {
        match self.governance.bucket_default(&target.tenant, &target.bucket)? {
            None => Err(TrusteeError::Invalid(
                object_lock::DEFAULT_NOT_KNOWN_MESSAGE.into(),
            )),
            Some(Some(d))
                if d.mode == mode
                    && (until - now.saturating_add(d.period_ms())).abs()
                        <= object_lock::DEFAULT_RETENTION_TOLERANCE_MS =>
            {
                Ok(())
            }
            Some(_) => Err(TrusteeError::Denied(
                "the retention is neither what the write signed nor its bucket's default retention as the tenant set it".into(),
            )),
        }
    }

    /// Keeps a bucket's default retention from the tenant's signed PutObjectLockConfiguration
    /// (the trustee's own ticket for it, not under a grant, and its body, bound by what the
    /// request signed and read by the trustee), or none from its CreateBucket with object
    /// lock. Nothing is sealed (`sealed` is empty).
    fn note_bucket_default(&self, seal: &LockSeal) -> Result<LockAnswer, TrusteeError> {
        use obhut_trustee_client::object_lock::{
            OP_PUT_OBJECT_LOCK_CONFIGURATION, read_lock_change,
        };
        let now = now_ms();
        let target = &seal.target;
        let denied = |m: &str| Err(TrusteeError::Denied(m.to_owned()));
        let Some(ticket) = seal.request.as_ref() else {
            return denied(
                "a bucket's default retention needs the trustee's ticket for the tenant's signed PutObjectLockConfiguration",
            );
        };
        self.verifier.check_ticket(
            ticket,
            &target.tenant,
            &ticket.access_key_id,
            &target.bucket,
            now,
        )?;
        if ticket
            .access_key_id
            .starts_with(obhut_trustee_client::governance::GRANT_KEY_PREFIX)
        {
            return denied(
                "no default retention is set by a request signed with grant credentials",
            );
        }
        let default = match ticket.op.as_deref() {
            // A new bucket with object lock has no default.
            Some(object_lock::OP_CREATE_BUCKET_WITH_LOCK) => None,
            Some(OP_PUT_OBJECT_LOCK_CONFIGURATION) => {
                let Some((None, false, binding)) =
                    ticket.lock.as_deref().and_then(read_lock_change)
                else {
                    return denied("the signed request's object lock configuration cannot be read");
                };
                let Some(binding) = binding else {
                    return Err(TrusteeError::Invalid(
                        object_lock::BODY_NOT_SIGNED_MESSAGE.into(),
                    ));
                };
                let Some(body) = seal.body.as_deref() else {
                    return denied(
                        "a bucket's default retention needs the body of the tenant's request",
                    );
                };
                lock_body::check_binding(binding, body.as_bytes())?;
                lock_body::default_of(body)?
            }
            _ => {
                return denied(
                    "the signed request is not a PutObjectLockConfiguration (or CreateBucket with object lock) of this bucket",
                );
            }
        };
        // Dated by the request's ticket: an older request never undoes a newer one.
        if !self.governance.note_bucket_default(
            &target.tenant,
            &target.bucket,
            default.as_ref(),
            ticket.issued_ms,
        )? {
            return denied("a later request of the tenant's set this bucket's default retention");
        }
        Ok(LockAnswer {
            sealed: String::new(),
            state: LockState::default(),
            now_ms: now,
        })
    }

    /// Checks that a change of a version's retention or legal hold comes from the tenant's
    /// signed request of that operation (PutObjectRetention, PutObjectLegalHold) on that
    /// object (and version, if it names one), never one signed with grant credentials, and
    /// that a bypass of governance retention was signed by a key whose own policy allows it;
    /// a retention change keeps the legal hold of `previous`, a legal hold change its retention.
    /// A signed change changes its version once: used again, only to seal the state the
    /// trustee lists already (a retry).
    fn check_lock_change(
        &self,
        seal: &LockSeal,
        previous: &LockState,
        now: i64,
    ) -> Result<(), TrusteeError> {
        use obhut_trustee_client::object_lock::{
            OP_PUT_OBJECT_LEGAL_HOLD, OP_PUT_OBJECT_RETENTION, read_lock_change,
        };
        let target = &seal.target;
        let denied = |m: &str| Err(TrusteeError::Denied(m.to_owned()));
        // Each operation changes its part of the state only.
        let op = match seal.change {
            LockChange::Retention if seal.state.legal_hold == previous.legal_hold => {
                OP_PUT_OBJECT_RETENTION
            }
            LockChange::LegalHold if seal.state.retention == previous.retention => {
                OP_PUT_OBJECT_LEGAL_HOLD
            }
            _ => return denied("a change sets a retention or a legal hold, and nothing else"),
        };
        let Some(ticket) = seal.request.as_ref() else {
            return denied(LOCK_CHANGE_UNSIGNED);
        };
        self.verifier.check_ticket(
            ticket,
            &target.tenant,
            &ticket.access_key_id,
            &target.bucket,
            now,
        )?;
        if ticket
            .access_key_id
            .starts_with(obhut_trustee_client::governance::GRANT_KEY_PREFIX)
        {
            return denied("no object lock is changed by a request signed with grant credentials");
        }
        if ticket.op.as_deref() != Some(op)
            || !ticket.covers(&target.bucket, &target.key, None, KeyUse::Wrap)
        {
            return Err(TrusteeError::Denied(format!(
                "the signed request is not a {op} of this object"
            )));
        }
        let Some((version, bypass, binding)) = ticket.lock.as_deref().and_then(read_lock_change)
        else {
            return denied("the signed request's object lock change cannot be read");
        };
        if version.is_some_and(|v| v != target.version_id) {
            return denied("the signed request names another version of this object");
        }
        if seal.bypass_governance && !bypass {
            return denied(
                "x-amz-bypass-governance-retention was not signed by a key whose policy allows s3:BypassGovernanceRetention",
            );
        }
        // The state is the one the request's body asks for, as the trustee reads it: the body
        // given must be the one the signature bound (a gateway could rewrite any other).
        let Some(binding) = binding else {
            return Err(TrusteeError::Invalid(
                object_lock::BODY_NOT_SIGNED_MESSAGE.into(),
            ));
        };
        let Some(body) = seal.body.as_deref() else {
            return denied("a change of a version's lock needs the body of the tenant's request");
        };
        lock_body::check_binding(binding, body.as_bytes())?;
        let asked = match seal.change {
            LockChange::Retention => LockState {
                retention: lock_body::retention_of(body)?,
                legal_hold: previous.legal_hold,
            },
            _ => LockState {
                retention: previous.retention,
                legal_hold: lock_body::legal_hold_of(body)?,
            },
        };
        if asked != seal.state {
            return denied(
                "the object lock change is not what the tenant's signed request asks for",
            );
        }
        if self.claim_lock_ticket(ticket, target, now)? {
            let listed = self
                .governance
                .latest_lock(target)?
                .map(|(state, _)| state)
                .unwrap_or_default();
            if listed != seal.state {
                return denied("this signed request has changed this version's lock already");
            }
        }
        Ok(())
    }

    /// Records that `ticket`'s request sealed a record of `target`: one signed write makes
    /// one version, one signed change changes one, so the ticket seals for no other (the same
    /// version again is a retry: `true`).
    fn claim_lock_ticket(
        &self,
        ticket: &obhut_trustee_client::auth::RequestTicket,
        target: &LockTarget,
        now: i64,
    ) -> Result<bool, TrusteeError> {
        let mut claims = self
            .lock_claims
            .lock()
            .map_err(|_| TrusteeError::Storage("lock claims poisoned".into()))?;
        claims.retain(|_, (_, issued)| now - *issued <= LOCK_CLAIM_MS);
        // A signed request names one object, but a browser form's policy may allow many
        // keys: the claim is the request's and the object's, so that each upload through one
        // form seals its own version, and none a second.
        let claim = format!("{}\n{}\n{}", ticket.digest, target.bucket, target.key);
        match claims.get(&claim) {
            Some((claimed, _)) if claimed != target => Err(TrusteeError::Denied(
                "this signed request has sealed another version's object lock record already"
                    .into(),
            )),
            Some(_) => Ok(true),
            None if claims.len() >= LOCK_CLAIMS_MAX => Err(TrusteeError::Conflict(
                "too many object lock records sealed in the last minutes; try again later".into(),
            )),
            None => {
                claims.insert(claim, (target.clone(), ticket.issued_ms));
                Ok(false)
            }
        }
    }

    /// A version's record: its first ([`LockChange::Written`], for a genuine write of it) or a
    /// change judged against the record it replaces.
    fn seal_version_lock(&self, seal: &LockSeal) -> Result<LockAnswer, TrusteeError> {
        let _one_at_a_time = self
            .lock_changes
            .lock()
            .map_err(|_| TrusteeError::Storage("lock changes poisoned".into()))?;
        let now = now_ms();
        let previous = match &seal.previous {
            Some(sealed) => {
                let (state, digest) = self.open_lock_record(&seal.target, sealed)?;
                self.check_latest_lock(&seal.target, &state, &digest, &seal.state)?;
                Some(state)
            }
            // A first record only for a version the trustee knows no lock of: else a
            // freshly sealed record that locks nothing would replace one that does,
            // without the rules (or the log) ever seeing the change.
            None if self.governance.has_lock(&seal.target)? => {
                return Err(TrusteeError::Denied(
                    "this version already has a lock record: a change must give it".into(),
                ));
            }
            None if seal.change != LockChange::Written => {
                return Err(TrusteeError::Denied(
                    "a change of a version's lock must give the record it replaces".into(),
                ));
            }
            None => None,
        };
        if let Some(prev) = &previous
            && let Some(why) = object_lock::refusal(prev, &seal.state, seal.bypass_governance, now)
        {
            return Err(TrusteeError::Denied(why.into()));
        }
        self.check_retention_limit(previous.as_ref(), &seal.state, now)?;
        match &previous {
            Some(prev) => self.check_lock_change(seal, prev, now)?,
            None => self.check_first_lock(seal, now)?,
        }
        let bypass = previous.is_some_and(|prev| {
            seal.bypass_governance && object_lock::refusal(&prev, &seal.state, false, now).is_some()
        });
        let plain =
            serde_json::to_vec(&seal.state).map_err(|e| TrusteeError::Storage(e.to_string()))?;
        let sealed = self.with(|ks| {
            ks.ensure_tenant_key(OBJECT_LOCKS)?;
            ks.seal_for(OBJECT_LOCKS, &lock_aad(&seal.target), &plain)
        })?;
        // Listed (with the record's digest) before the record leaves the trustee.
        self.governance.note_lock(
            &seal.target,
            &seal.state,
            &governance::lock_record_digest(&sealed),
        )?;
        let locks = seal.state.retention.is_some() || seal.state.legal_hold;
        if seal.change != LockChange::Written || locks {
            self.log_lock(&seal.target, seal.change, &seal.state, bypass)?;
        }
        Ok(LockAnswer {
            sealed: base64_simd::STANDARD.encode_to_string(sealed),
            state: seal.state,
            now_ms: now,
        })
    }

    fn log_lock(
        &self,
        target: &LockTarget,
        change: LockChange,
        state: &LockState,
        bypass: bool,
    ) -> Result<(), TrusteeError> {
        let target = target.clone();
        self.governance
            .record(LogEvent::ObjectLock {
                tenant: target.tenant,
                bucket: target.bucket,
                key: target.key,
                version_id: target.version_id,
                change,
                mode: state.retention.map(|r| r.0),
                retain_until_ms: state.retention.map(|r| r.1),
                legal_hold: state.legal_hold,
                bypass,
            })
            .map(|_| ())
    }

    /// What a CreateMultipartUpload's signed lock headers ask for, sealed for its completion
    /// (bound to the upload): neither listed nor logged, as no version exists yet.
    fn seal_upload_lock(&self, seal: &LockSeal) -> Result<LockAnswer, TrusteeError> {
        let now = now_ms();
        let target = &seal.target;
        let ticket = self.lock_ticket(seal, now)?;
        if seal.previous.is_some()
            || seal.upload.is_some()
            || ticket.op.as_deref() != Some(object_lock::OP_CREATE_MULTIPART_UPLOAD)
            || !ticket.covers(&target.bucket, &target.key, None, KeyUse::Wrap)
        {
            return Err(TrusteeError::Denied(
                "the signed request does not create an upload of this object".into(),
            ));
        }
        if Self::asked_lock(ticket)? != Some(seal.state) {
            return Err(TrusteeError::Denied(
                "the object lock is not what the tenant's signed request asked for".into(),
            ));
        }
        self.check_retention_limit(None, &seal.state, now)?;
        let plain =
            serde_json::to_vec(&seal.state).map_err(|e| TrusteeError::Storage(e.to_string()))?;
        let sealed = self.with(|ks| {
            ks.ensure_tenant_key(OBJECT_LOCKS)?;
            ks.seal_for(OBJECT_LOCKS, &upload_lock_aad(target), &plain)
        })?;
        Ok(LockAnswer {
            sealed: base64_simd::STANDARD.encode_to_string(sealed),
            state: seal.state,
            now_ms: now,
        })
    }
}

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
        // Who may ask comes first: the state of a tenant's key (or whether it has one) is
        // nobody else's business.
        let own_admin = who.role == Role::TenantAdmin && who.tenant.as_deref() == Some(tenant);
        if who.role != Role::Officer && !own_admin {
            return Err(TrusteeError::Denied(format!(
                "only officers and the admin of tenant {tenant} may shred it"
            )));
        }
        let (state, _) = self.with(|ks| ks.tenant_status(tenant))?;
        if state == TenantKeyState::Destroyed {
            return to_json(&ShredView::Done(ShredDone {
                tenant: tenant.to_owned(),
                state: "destroyed".into(),
                destroy_after_ms: None,
            }));
        }
        if mode == ShredMode::Cancel && state != TenantKeyState::Disabled {
            // An approval kept in store for a later shred would let one more approval undo
            // it at once.
            return Err(TrusteeError::Conflict(format!(
                "tenant {tenant}'s key is not disabled: there is no shred to cancel"
            )));
        }
        if mode != ShredMode::Cancel {
            self.refuse_shred_of_compliance_locks(tenant)?;
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

    /// A crypto-shred would make versions unreadable that a COMPLIANCE retention still
    /// protects: refused, naming how many and until when (docs/governance.md, "Object lock and
    /// crypto-shred"). GOVERNANCE retentions and legal holds do not stop a shred.
    fn refuse_shred_of_compliance_locks(&self, tenant: &str) -> Result<(), TrusteeError> {
        let (count, latest) = self.governance.compliance_locks(tenant, now_ms())?;
        if count == 0 {
            return Ok(());
        }
        let until = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(latest) * 1_000_000)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| format!("{latest} ms since the epoch"));
        Err(TrusteeError::Conflict(format!(
            "tenant {tenant} cannot be shredded: {count} object version(s) are under a COMPLIANCE retention until as late as {until}; a shred is possible once the last of them has passed"
        )))
    }

    /// [`Query::Quorum`]: the quorum actions `principal` may see, with the key state of each
    /// shred's tenant, and of the tenant asked about (a tenant admin's own).
    fn quorum_now(&self, principal: &str, tenant: Option<&str>) -> Result<Value, TrusteeError> {
        let who = self
            .governance
            .principal(principal)?
            .ok_or_else(|| TrusteeError::Denied(format!("unknown principal {principal:?}")))?
            .info;
        let mut actions = self.governance.quorum_actions(&who, tenant)?;
        let key_of = |tenant: &str| {
            self.with(|ks| Ok(ks.tenant_status(tenant).ok()))
                .map(|s| s.map(|(state, destroy_after_ms)| key_status(state, destroy_after_ms)))
        };
        for a in &mut actions {
            if let Some(t) = &a.tenant {
                a.key_state = key_of(t)?.map(|k| k.state);
            }
        }
        let asked = match who.role {
            Role::TenantAdmin => who.tenant.as_deref(),
            _ => tenant,
        };
        let tenant_key = match asked {
            Some(t) => {
                let status = key_of(t)?;
                Some(obhut_trustee_client::views::TenantKeyView {
                    tenant: t.to_owned(),
                    state: status
                        .as_ref()
                        .map_or_else(|| "none".to_owned(), |k| k.state.clone()),
                    destroy_after_ms: status.and_then(|k| k.destroy_after_ms),
                })
            }
            None => None,
        };
        to_json(&obhut_trustee_client::views::QuorumView {
            actions,
            tenant_key,
        })
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
        tracing::warn!(tenant = %obhut_core::logged(tenant), destroy_after_ms, "tenant key disabled");
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
        tracing::warn!(tenant = %obhut_core::logged(tenant), "tenant key re-enabled");
        self.key_status_now(tenant)
    }

    pub fn destroy_tenant_key(&self, tenant: &str) -> Result<TenantKeyStatus, TrusteeError> {
        self.governance.record(LogEvent::TenantKeyDestroyed {
            tenant: tenant.to_owned(),
            cause: None,
        })?;
        self.with(|ks| ks.destroy(tenant))?;
        tracing::warn!(tenant = %obhut_core::logged(tenant), "tenant key destroyed");
        self.revoke(Revocation::Tenant {
            tenant: tenant.to_owned(),
        });
        self.key_status_now(tenant)
    }
}

/// A key release's justification as the process log shows it: its kind, the grant's id, and
/// names only as [`obhut_core::logged`] renders them (the transparency log has them in full).
fn logged_why(why: &Justification) -> String {
    match why {
        Justification::Customer {
            tenant,
            principal,
            operation,
            ..
        } => format!(
            "customer {} by {} ({operation})",
            obhut_core::logged(tenant),
            obhut_core::logged(principal)
        ),
        Justification::Grant { grant_id } => format!("grant {grant_id}"),
        Justification::System { reason } => format!("system ({reason})"),
    }
}

impl Trustee {
    /// A customer justification with a ticket as if this trustee had verified a request of
    /// access key `AKID` of `tenant` naming the buckets tests use.
    #[cfg(test)]
    pub(crate) fn test_customer(&self, tenant: &str) -> Justification {
        let buckets = ["photos", "other", "x", "y", "b"]
            .map(str::to_owned)
            .to_vec();
        Justification::Customer {
            tenant: tenant.into(),
            principal: "AKID".into(),
            operation: "GetObject".into(),
            request: Some(self.verifier.ticket(
                "test".into(),
                tenant,
                "AKID",
                buckets,
                Vec::new(),
                now_ms(),
            )),
        }
    }
}

/// Whether `why` is obhut's one-time format upgrade, the one release of a per-object tenant's
/// bucket key.
fn is_format_upgrade(why: &Justification) -> bool {
    matches!(why, Justification::System { reason } if reason == obhut_trustee_client::FORMAT_UPGRADE_REASON)
}

#[cfg(test)]
mod tests {
    use super::*;
    use obhut_trustee_client::auth::RequestTicket;

    fn customer(t: &Trustee, tenant: &str) -> Justification {
        t.test_customer(tenant)
    }

    #[tokio::test]
    async fn a_customer_release_needs_a_ticket_of_this_trustee_for_that_bucket() {
        let (_d, t) = unsealed().await;
        t.ensure_tenant_key("a").await.unwrap();
        let wk = t
            .create_bucket_key("a", "photos", 1, &customer(&t, "a"))
            .await
            .unwrap();
        // A gateway that claims a customer asked, without the customer's signed request.
        let with = |request| Justification::Customer {
            tenant: "a".into(),
            principal: "AKID".into(),
            operation: "GetObject".into(),
            request,
        };
        let claimed = with(None);
        assert!(matches!(
            t.release_bucket_key("a", "photos", &wk, &claimed).await,
            Err(TrusteeError::Denied(_))
        ));
        // A ticket for another bucket, or one forged, or one of another trustee.
        let other_bucket = with(Some(t.verifier.ticket(
            "d".into(),
            "a",
            "AKID",
            vec!["else".into()],
            Vec::new(),
            now_ms(),
        )));
        assert!(matches!(
            t.release_bucket_key("a", "photos", &wk, &other_bucket)
                .await,
            Err(TrusteeError::Denied(_))
        ));
        let Justification::Customer {
            request: Some(mut forged),
            ..
        } = customer(&t, "a")
        else {
            unreachable!()
        };
        forged.tenant = "a".into();
        forged.issued_ms += 1;
        let forged = with(Some(forged));
        assert!(matches!(
            t.release_bucket_key("a", "photos", &wk, &forged).await,
            Err(TrusteeError::Denied(_))
        ));
        let (_d2, other) = unsealed().await;
        assert!(matches!(
            t.release_bucket_key("a", "photos", &wk, &customer(&other, "a"))
                .await,
            Err(TrusteeError::Denied(_))
        ));
        assert!(
            t.release_bucket_key("a", "photos", &wk, &customer(&t, "a"))
                .await
                .is_ok()
        );
    }

    /// A customer's ticket for a request naming `scope`.
    fn ticket_for(t: &Trustee, digest: &str, scope: Vec<TicketScope>) -> Justification {
        Justification::Customer {
            tenant: "a".into(),
            principal: "AKID".into(),
            operation: "GetObject".into(),
            request: Some(t.verifier.ticket(
                digest.into(),
                "a",
                "AKID",
                vec!["photos".into()],
                scope,
                now_ms(),
            )),
        }
    }

    fn object(key: &str) -> TicketScope {
        TicketScope::Read {
            bucket: "photos".into(),
            key: key.into(),
        }
    }

    fn written(key: &str) -> TicketScope {
        TicketScope::Write {
            bucket: "photos".into(),
            key: key.into(),
        }
    }

    fn name(key: &str) -> obhut_trustee_client::object_keys::ObjectName {
        obhut_trustee_client::object_keys::ObjectName {
            key: key.into(),
            upload: None,
        }
    }

    async fn per_object_tenant() -> (tempfile::TempDir, Trustee, WrappedKey) {
        let (d, t) = unsealed().await;
        t.ensure_tenant_key("a").await.unwrap();
        let wk = t
            .create_bucket_key("a", "photos", 1, &customer(&t, "a"))
            .await
            .unwrap();
        t.governance
            .record(LogEvent::KeyReleasePolicySet {
                tenant: "a".into(),
                key_release: KeyRelease::PerObject,
                actor: "demo-admin".into(),
            })
            .unwrap();
        (d, t, wk)
    }

    /// Wraps a new key for `key` under a ticket naming it, as a PUT does.
    async fn put(t: &Trustee, wk: &WrappedKey, key: &str) -> (Key, SealedObjectKey) {
        let object_key = Key::random().unwrap();
        let version_id = [3u8; 16];
        let out = t
            .object_keys(
                "a",
                "photos",
                wk,
                &ticket_for(t, &format!("put-{key}"), vec![written(key)]),
                vec![ObjectKeyOp::Wrap {
                    name: name(key),
                    version_id,
                    key: object_key.clone(),
                }],
            )
            .await
            .unwrap();
        let Some(ObjectKeyOutcome::Wrapped { wrapped, kcv }) = out.into_iter().next() else {
            panic!("not wrapped")
        };
        (
            object_key,
            SealedObjectKey {
                name: name(key),
                version_id,
                wrapped,
                kcv,
            },
        )
    }

    #[tokio::test]
    async fn a_per_object_tenants_bucket_key_never_leaves_the_trustee() {
        let (_d, t, wk) = per_object_tenant().await;
        let get = ticket_for(&t, "g", vec![object("x")]);
        assert!(matches!(
            t.release_bucket_key("a", "photos", &wk, &get).await,
            Err(TrusteeError::ObjectKeysOnly(_))
        ));
        // A grant does not have it either.
        assert!(matches!(
            t.release_bucket_key(
                "a",
                "photos",
                &wk,
                &Justification::Grant {
                    grant_id: "g-1".into()
                }
            )
            .await,
            Err(TrusteeError::ObjectKeysOnly(_))
        ));
        // Nor does the admin's own rotation: the trustee rewraps.
        let rotation = ticket_for(
            &t,
            "r",
            vec![TicketScope::Statement {
                bucket: "photos".into(),
            }],
        );
        assert!(matches!(
            t.release_bucket_key("a", "photos", &wk, &rotation).await,
            Err(TrusteeError::ObjectKeysOnly(_))
        ));
        // Another tenant keeps bucket keys.
        t.ensure_tenant_key("b").await.unwrap();
        let other = t
            .create_bucket_key("b", "photos", 1, &customer(&t, "b"))
            .await
            .unwrap();
        assert!(
            t.release_bucket_key("b", "photos", &other, &customer(&t, "b"))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn object_keys_open_only_for_the_names_the_verified_request_names() {
        let (_d, t, wk) = per_object_tenant().await;
        let (key_x, sealed_x) = put(&t, &wk, "x").await;
        let (_, sealed_y) = put(&t, &wk, "y").await;
        let open = |s: &SealedObjectKey| ObjectKeyOp::Open(s.clone());
        // The request for x opens x.
        let out = t
            .object_keys(
                "a",
                "photos",
                &wk,
                &ticket_for(&t, "gx", vec![object("x")]),
                vec![open(&sealed_x)],
            )
            .await
            .unwrap();
        let Some(ObjectKeyOutcome::Key(k)) = out.into_iter().next() else {
            panic!("x did not open")
        };
        assert_eq!(k.expose(), key_x.expose());
        // It does not open y, alone or beside x.
        for ops in [
            vec![open(&sealed_y)],
            vec![open(&sealed_x), open(&sealed_y)],
        ] {
            assert!(matches!(
                t.object_keys(
                    "a",
                    "photos",
                    &wk,
                    &ticket_for(&t, "gx", vec![object("x")]),
                    ops
                )
                .await,
                Err(TrusteeError::Denied(_))
            ));
        }
        // A listing of prefix "x" may have x's ETag opened, not its key, and not y's ETag.
        let list = ticket_for(
            &t,
            "l",
            vec![TicketScope::Prefix {
                bucket: "photos".into(),
                prefix: "x".into(),
            }],
        );
        assert!(matches!(
            t.object_keys("a", "photos", &wk, &list, vec![open(&sealed_x)])
                .await,
            Err(TrusteeError::Denied(_))
        ));
        assert!(matches!(
            t.object_keys(
                "a",
                "photos",
                &wk,
                &list,
                vec![ObjectKeyOp::Check(sealed_y.clone())]
            )
            .await,
            Err(TrusteeError::Denied(_))
        ));
        assert!(matches!(
            t.object_keys(
                "a",
                "photos",
                &wk,
                &list,
                vec![ObjectKeyOp::Check(sealed_x.clone())]
            )
            .await
            .unwrap()
            .pop(),
            Some(ObjectKeyOutcome::Checked)
        ));
        // A GET of x wraps nothing for x; a PUT of x opens no key of x.
        let wrap = || ObjectKeyOp::Wrap {
            name: name("x"),
            version_id: [9u8; 16],
            key: Key::random().unwrap(),
        };
        assert!(matches!(
            t.object_keys(
                "a",
                "photos",
                &wk,
                &ticket_for(&t, "gx", vec![object("x")]),
                vec![wrap()]
            )
            .await,
            Err(TrusteeError::Denied(_))
        ));
        assert!(matches!(
            t.object_keys(
                "a",
                "photos",
                &wk,
                &ticket_for(&t, "px", vec![written("x")]),
                vec![open(&sealed_x)]
            )
            .await,
            Err(TrusteeError::Denied(_))
        ));
        // A request signed with grant credentials is never taken for the customer's own.
        let Justification::Customer {
            request: Some(mut by_grant),
            ..
        } = ticket_for(&t, "gx", vec![object("x")])
        else {
            unreachable!()
        };
        by_grant.access_key_id =
            format!("{}TEST", obhut_trustee_client::governance::GRANT_KEY_PREFIX);
        let by_grant = t.verifier.ticket(
            by_grant.digest,
            "a",
            &by_grant.access_key_id,
            by_grant.buckets,
            vec![object("x")],
            now_ms(),
        );
        let posing = Justification::Customer {
            tenant: "a".into(),
            principal: by_grant.access_key_id.clone(),
            operation: "GetObject".into(),
            request: Some(by_grant),
        };
        assert!(matches!(
            t.object_keys("a", "photos", &wk, &posing, vec![open(&sealed_x)])
                .await,
            Err(TrusteeError::Denied(_))
        ));
        // y's record filed under x's name (a catalog edit) does not open.
        let mut moved = sealed_y.clone();
        moved.name = name("x");
        assert!(matches!(
            t.object_keys(
                "a",
                "photos",
                &wk,
                &ticket_for(&t, "gx", vec![object("x")]),
                vec![open(&moved)]
            )
            .await
            .unwrap()
            .pop(),
            Some(ObjectKeyOutcome::Refused(_))
        ));
    }

    #[tokio::test]
    async fn every_request_served_per_object_is_in_the_log_before_its_keys_leave() {
        let (_d, t, wk) = per_object_tenant().await;
        let (_, sealed) = put(&t, &wk, "x").await;
        let before = t.governance.test_entries().len();
        let mut calls = Vec::new();
        for i in 0..40 {
            let t = t.clone();
            let (wk, sealed) = (wk.clone(), sealed.clone());
            calls.push(tokio::spawn(async move {
                t.object_keys(
                    "a",
                    "photos",
                    &wk,
                    &ticket_for(&t, &format!("req-{i}"), vec![object("x")]),
                    vec![ObjectKeyOp::Open(sealed)],
                )
                .await
                .map(|_| ())
            }));
        }
        for c in calls {
            c.await.unwrap().unwrap();
        }
        let entries = t.governance.test_entries();
        let mut digests = Vec::new();
        let mut entries_written = 0;
        for e in &entries[before..] {
            if let LogEvent::ObjectKeysReleased { tenant, requests } = &e.event {
                entries_written += 1;
                assert_eq!(tenant, "a");
                for r in requests {
                    assert_eq!((r.opened, r.listed, r.wrapped), (1, 0, 0));
                    digests.extend(r.request.clone());
                }
            }
        }
        digests.sort();
        let mut expected: Vec<String> = (0..40).map(|i| format!("req-{i}")).collect();
        expected.sort();
        assert_eq!(digests, expected, "each request exactly once");
        assert!((1..=40).contains(&entries_written));
        // No bucket key was released for them.
        assert!(
            !entries[before..]
                .iter()
                .any(|e| matches!(e.event, LogEvent::KeyRelease { .. }))
        );
    }

    #[tokio::test]
    async fn a_flood_of_integrity_alarms_does_not_fill_the_log() {
        let (_d, t) = unsealed().await;
        let alarm = |tenant: &str| IntegrityAlarm {
            tenant: tenant.into(),
            bucket: "photos".into(),
            key: "k".into(),
            upload: None,
            reason: "moved".into(),
        };
        let before = t.governance.test_entries().len();
        let mut refused = 0;
        for _ in 0..70 {
            if t.report_integrity(&alarm("a")).await.is_err() {
                refused += 1;
            }
        }
        assert_eq!(
            refused, 10,
            "at most 60 alarms a minute are logged per tenant"
        );
        assert_eq!(t.governance.test_entries().len() - before, 60);
        // Another tenant's alarms are not crowded out.
        assert!(t.report_integrity(&alarm("b")).await.is_ok());
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
            .create_bucket_key("a", "photos", 1, &customer(&t, "a"))
            .await
            .unwrap();
        let k1 = t
            .release_bucket_key("a", "photos", &wk, &customer(&t, "a"))
            .await
            .unwrap();
        let k2 = t
            .release_bucket_key("a", "photos", &wk, &customer(&t, "a"))
            .await
            .unwrap();
        assert_eq!(k1.expose(), k2.expose());
        // denied: another tenant's principal, a grant that does not exist, a system reason
        for why in [
            customer(&t, "b"),
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
        // And reading tags for the tenant's own tag-filtered lifecycle rules (logged too).
        let lifecycle = Justification::System {
            reason: obhut_trustee_client::LIFECYCLE_TAGS_REASON.into(),
        };
        let k4 = t
            .release_bucket_key("a", "photos", &wk, &lifecycle)
            .await
            .unwrap();
        assert_eq!(k1.expose(), k4.expose());
        assert!(matches!(
            t.create_bucket_key("a", "z", 1, &lifecycle).await,
            Err(TrusteeError::Denied(_))
        ));
        assert!(matches!(
            t.create_bucket_key("a", "y", 1, &upgrade).await,
            Err(TrusteeError::Denied(_))
        ));
        assert!(matches!(
            t.create_bucket_key("a", "x", 1, &customer(&t, "b")).await,
            Err(TrusteeError::Denied(_))
        ));
    }

    #[tokio::test]
    async fn a_wrapped_key_filed_under_another_bucket_or_tenant_does_not_open() {
        let (_d, t) = unsealed().await;
        t.ensure_tenant_key("a").await.unwrap();
        t.ensure_tenant_key("b").await.unwrap();
        let wk = t
            .create_bucket_key("a", "photos", 1, &customer(&t, "a"))
            .await
            .unwrap();
        assert!(matches!(
            t.release_bucket_key("a", "other", &wk, &customer(&t, "a"))
                .await,
            Err(TrusteeError::Integrity(_))
        ));
        assert!(matches!(
            t.release_bucket_key("b", "photos", &wk, &customer(&t, "b"))
                .await,
            Err(TrusteeError::Integrity(_))
        ));
        let mut wrong_version = wk.clone();
        wrong_version.version = 2;
        assert!(
            t.release_bucket_key("a", "photos", &wrong_version, &customer(&t, "a"))
                .await
                .is_err()
        );
    }

    fn lock_target(v: &str) -> LockTarget {
        LockTarget {
            tenant: "a".into(),
            bucket: "b".into(),
            key: "k".into(),
            version_id: v.into(),
        }
    }

    fn compliance(until: i64) -> LockState {
        LockState {
            retention: Some((object_lock::LockMode::Compliance, until)),
            legal_hold: false,
        }
    }

    /// A date as a client sends it in `x-amz-object-lock-retain-until-date`.
    fn rfc3339(ms: i64) -> String {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    }

    /// The signed lock headers of a write asking for `state`.
    fn headers_of(state: &LockState) -> Option<String> {
        let until = state.retention.map(|(_, u)| rfc3339(u));
        object_lock::signed_lock_headers(
            state.retention.map(|(m, _)| m.as_str()),
            until.as_deref(),
            state.legal_hold.then_some("ON"),
        )
    }

    /// This trustee's ticket for a PutObject `digest` of tenant `a` (key `AKID`) to bucket `b`
    /// naming `scope`, with the lock headers `lock`.
    fn write_ticket(
        t: &Trustee,
        digest: &str,
        scope: Vec<TicketScope>,
        lock: Option<String>,
    ) -> obhut_trustee_client::auth::RequestTicket {
        t.verifier.with_op(
            t.verifier.with_lock(
                t.verifier.ticket(
                    digest.into(),
                    "a",
                    "AKID",
                    vec!["b".into()],
                    scope,
                    now_ms(),
                ),
                lock,
            ),
            Some(object_lock::OP_PUT_OBJECT),
        )
    }

    /// A bucket's default retention as the tenant's signed PutObjectLockConfiguration of
    /// `b` with `body` sets it (its SHA-256 signed).
    fn bucket_default_seal(t: &Trustee, body: &str) -> LockSeal {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body.as_bytes());
        let binding = format!(
            "sha256={}",
            hex_simd::encode_to_string(digest.as_ref(), hex_simd::AsciiCase::Lower)
        );
        LockSeal {
            target: LockTarget {
                tenant: "a".into(),
                bucket: "b".into(),
                key: String::new(),
                version_id: String::new(),
            },
            state: LockState::default(),
            change: LockChange::BucketDefault,
            previous: None,
            bypass_governance: false,
            request: Some(t.verifier.with_op(
                write_ticket(
                    t,
                    &format!("config-{n}"),
                    vec![],
                    Some(object_lock::signed_lock_change(None, "", &binding)),
                ),
                Some(object_lock::OP_PUT_OBJECT_LOCK_CONFIGURATION),
            )),
            upload: None,
            body: Some(body.to_owned()),
        }
    }

    /// The attack: the provider edits the bucket's default retention in the catalog (or asks
    /// the trustee directly) so that the tenant's writes without lock headers are sealed with
    /// a retention the tenant never configured. Only the default the tenant's signed
    /// PutObjectLockConfiguration set is sealed, counted from the trustee's clock.
    #[tokio::test]
    async fn a_write_without_lock_headers_gets_only_the_default_the_tenant_set() {
        let (_dir, t) = unsealed().await;
        let day = 86_400_000;
        let mut n = 0;
        let mut plain_write = |state: LockState| {
            n += 1;
            let mut seal = first_seal(&t, "unused", &format!("v{n}"), state);
            seal.request = Some(write_ticket(
                &t,
                &format!("put-{n}"),
                vec![writes("k")],
                None,
            ));
            seal
        };
        let governance = |until: i64| LockState {
            retention: Some((object_lock::LockMode::Governance, until)),
            legal_hold: false,
        };
        // No default the trustee knows of: none is sealed, and the answer says why.
        let unknown = t.seal_lock(&plain_write(compliance(now_ms() + day))).await;
        assert!(
            matches!(&unknown, Err(TrusteeError::Invalid(m)) if m.starts_with(object_lock::DEFAULT_NOT_KNOWN)),
            "{unknown:?}"
        );
        // Without a retention the write is sealed.
        t.seal_lock(&plain_write(LockState::default()))
            .await
            .unwrap();
        let config = |rule: &str| {
            format!(
                "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled>{rule}</ObjectLockConfiguration>"
            )
        };
        // The tenant sets a GOVERNANCE default of one day.
        let one_day = config(
            "<Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>1</Days></DefaultRetention></Rule>",
        );
        // A body other than the signed one, a ticket of another operation, none at all, a
        // grant's: the default is not set.
        let mut rewritten = bucket_default_seal(&t, &one_day);
        rewritten.body =
            Some(one_day.replace("GOVERNANCE</Mode><Days>1", "COMPLIANCE</Mode><Days>3650"));
        let mut other_op = bucket_default_seal(&t, &one_day);
        other_op.request = other_op
            .request
            .map(|ticket| t.verifier.with_op(ticket, Some(object_lock::OP_PUT_OBJECT)));
        let mut unsigned = bucket_default_seal(&t, &one_day);
        unsigned.request = None;
        let mut by_grant = bucket_default_seal(&t, &one_day);
        by_grant.request = by_grant.request.map(|mut ticket| {
            ticket.access_key_id =
                format!("{}x", obhut_trustee_client::governance::GRANT_KEY_PREFIX);
            t.verifier.with_lock(ticket.clone(), ticket.lock.clone())
        });
        for seal in [rewritten, other_op, unsigned, by_grant] {
            assert!(t.seal_lock(&seal).await.is_err(), "{seal:?}");
        }
        assert_eq!(t.governance.bucket_default("a", "b").unwrap(), None);
        t.seal_lock(&bucket_default_seal(&t, &one_day))
            .await
            .unwrap();
        // Now only that default: not COMPLIANCE, not longer, not shorter (beyond the
        // tolerance); no legal hold.
        let tolerance = object_lock::DEFAULT_RETENTION_TOLERANCE_MS;
        for state in [
            compliance(now_ms() + day),
            governance(now_ms() + 3650 * day),
            governance(now_ms() + day + tolerance + 60_000),
            governance(now_ms() + day - tolerance - 60_000),
            LockState {
                legal_hold: true,
                ..governance(now_ms() + day)
            },
        ] {
            let r = t.seal_lock(&plain_write(state)).await;
            assert!(
                matches!(r, Err(TrusteeError::Denied(_))),
                "{state:?}: {r:?}"
            );
        }
        t.seal_lock(&plain_write(governance(now_ms() + day)))
            .await
            .unwrap();
        // The bucket created again with object lock (the tenant's signed CreateBucket) has no
        // default; a configuration request signed before it does not bring its default back.
        let older = bucket_default_seal(&t, &one_day);
        std::thread::sleep(std::time::Duration::from_millis(5));
        let mut created = bucket_default_seal(&t, "");
        created.body = None;
        created.request = created.request.map(|ticket| {
            let ticket = t.verifier.with_lock(ticket, None);
            t.verifier
                .with_op(ticket, Some(object_lock::OP_CREATE_BUCKET_WITH_LOCK))
        });
        t.seal_lock(&created).await.unwrap();
        assert_eq!(t.governance.bucket_default("a", "b").unwrap(), Some(None));
        let r = t.seal_lock(&older).await;
        assert!(matches!(r, Err(TrusteeError::Denied(_))), "{r:?}");
        assert_eq!(t.governance.bucket_default("a", "b").unwrap(), Some(None));
        t.seal_lock(&bucket_default_seal(&t, &one_day))
            .await
            .unwrap();
        // A configuration without a rule leaves no default: a plain write gets no retention.
        t.seal_lock(&bucket_default_seal(&t, &config("")))
            .await
            .unwrap();
        assert_eq!(t.governance.bucket_default("a", "b").unwrap(), Some(None));
        let r = t.seal_lock(&plain_write(governance(now_ms() + day))).await;
        assert!(matches!(r, Err(TrusteeError::Denied(_))), "{r:?}");
        t.seal_lock(&plain_write(LockState::default()))
            .await
            .unwrap();
    }

    fn writes(key: &str) -> TicketScope {
        TicketScope::Write {
            bucket: "b".into(),
            key: key.into(),
        }
    }

    /// The first record of version `v` of `k`, sealed for a PUT of `k` signed with lock headers
    /// asking for `state`.
    fn first_seal(t: &Trustee, digest: &str, v: &str, state: LockState) -> LockSeal {
        LockSeal {
            target: lock_target(v),
            state,
            change: LockChange::Written,
            previous: None,
            bypass_governance: false,
            request: Some(write_ticket(
                t,
                digest,
                vec![writes("k")],
                headers_of(&state),
            )),
            upload: None,
            body: None,
        }
    }

    /// This trustee's ticket for the tenant's signed request of `change` (PutObjectRetention
    /// or PutObjectLegalHold) of `k` naming version `v`, asking for the bypass (by a key that
    /// may); each is another request.
    /// The lock of upload `upload` of `k`, sealed for a CreateMultipartUpload signed with lock
    /// headers asking for `state`.
    fn upload_seal(t: &Trustee, digest: &str, upload: &str, state: LockState) -> LockSeal {
        let mut seal = first_seal(t, digest, upload, state);
        seal.change = LockChange::Upload;
        seal.request = seal.request.map(|ticket| {
            t.verifier
                .with_op(ticket, Some(object_lock::OP_CREATE_MULTIPART_UPLOAD))
        });
        seal
    }

    fn change_ticket(t: &Trustee, v: &str, change: LockChange) -> RequestTicket {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let op = match change {
            LockChange::Retention => object_lock::OP_PUT_OBJECT_RETENTION,
            _ => object_lock::OP_PUT_OBJECT_LEGAL_HOLD,
        };
        t.verifier.with_op(
            write_ticket(
                t,
                &format!("change-{n}"),
                vec![writes("k")],
                Some(object_lock::signed_lock_change(Some(v), "true", "")),
            ),
            Some(op),
        )
    }

    fn change(
        t: &Trustee,
        v: &str,
        state: LockState,
        previous: &str,
        change: LockChange,
    ) -> LockSeal {
        bound(
            t,
            LockSeal {
                target: lock_target(v),
                state,
                change,
                previous: Some(previous.to_owned()),
                bypass_governance: true,
                request: Some(change_ticket(t, v, change)),
                upload: None,
                body: None,
            },
        )
    }

    /// The XML body a tenant sends for `seal`'s change.
    fn change_body(seal: &LockSeal) -> String {
        match (seal.change, seal.state.retention) {
            (LockChange::Retention, Some((mode, until))) => {
                let until =
                    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(until) * 1_000_000)
                        .unwrap()
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap();
                format!(
                    "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{}</Mode><RetainUntilDate>{until}</RetainUntilDate></Retention>",
                    mode.as_str()
                )
            }
            (LockChange::Retention, None) => "<Retention/>".to_owned(),
            _ => format!(
                "<LegalHold><Status>{}</Status></LegalHold>",
                if seal.state.legal_hold { "ON" } else { "OFF" }
            ),
        }
    }

    /// `seal` with the body of its change, as the tenant sends it, and its ticket (if it is a
    /// change's) binding that body by its signed SHA-256, as the trustee issues it.
    fn bound(t: &Trustee, mut seal: LockSeal) -> LockSeal {
        let body = change_body(&seal);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body.as_bytes());
        let binding = format!(
            "sha256={}",
            hex_simd::encode_to_string(digest.as_ref(), hex_simd::AsciiCase::Lower)
        );
        if let Some(ticket) = seal.request.take() {
            let lock = match ticket
                .lock
                .as_deref()
                .and_then(object_lock::read_lock_change)
            {
                Some((version, bypass, _)) => Some(object_lock::signed_lock_change(
                    version,
                    if bypass { "true" } else { "" },
                    &binding,
                )),
                None => ticket.lock.clone(),
            };
            seal.request = Some(t.verifier.with_lock(ticket, lock));
        }
        seal.body = Some(body);
        seal
    }

    #[tokio::test]
    async fn lock_records_are_sealed_judged_on_the_trustees_clock_and_bound_to_their_version() {
        let (_dir, t) = unsealed().await;
        let far = now_ms() + 3_600_000;
        let first = t
            .seal_lock(&first_seal(&t, "put-1", "v1", compliance(far)))
            .await
            .unwrap();
        let opened = t
            .open_lock(&LockOpen {
                target: lock_target("v1"),
                sealed: first.sealed.clone(),
            })
            .await
            .unwrap();
        assert_eq!(opened.state, compliance(far));
        assert!(opened.state.holds(opened.now_ms));
        // Another version's record, or an edited one, does not open.
        let mut edited: Vec<char> = first.sealed.chars().collect();
        edited[10] = if edited[10] == 'A' { 'B' } else { 'A' };
        for (v, sealed) in [
            ("v2", first.sealed.clone()),
            ("v1", edited.into_iter().collect()),
        ] {
            assert!(matches!(
                t.open_lock(&LockOpen {
                    target: lock_target(v),
                    sealed,
                })
                .await,
                Err(TrusteeError::Integrity(_))
            ));
        }
        // A COMPLIANCE retention in force is not shortened, bypass or not; it is extended.
        let shorter = change(
            &t,
            "v1",
            compliance(far - 1),
            &first.sealed,
            LockChange::Retention,
        );
        assert!(matches!(
            t.seal_lock(&shorter).await,
            Err(TrusteeError::Denied(_))
        ));
        t.seal_lock(&change(
            &t,
            "v1",
            compliance(far + 1),
            &first.sealed,
            LockChange::Retention,
        ))
        .await
        .unwrap();
        // A "first" record for a version that already has one is refused, locking or not:
        // it would replace the lock without the rules or the log seeing it.
        for (i, state) in [LockState::default(), compliance(far + 2)]
            .into_iter()
            .enumerate()
        {
            assert!(matches!(
                t.seal_lock(&first_seal(&t, &format!("again-{i}"), "v1", state))
                    .await,
                Err(TrusteeError::Denied(_))
            ));
        }
        // A change without the record it replaces is no first record.
        let mut blind = first_seal(&t, "blind", "v9", compliance(far));
        blind.change = LockChange::Retention;
        assert!(matches!(
            t.seal_lock(&blind).await,
            Err(TrusteeError::Denied(_))
        ));
        // The trustee's registry refuses a shred of the tenant, naming count and date.
        let (count, latest) = t.governance.compliance_locks("a", now_ms()).unwrap();
        assert_eq!((count, latest), (1, far + 1));
        let refused = t
            .refuse_shred_of_compliance_locks("a")
            .unwrap_err()
            .to_string();
        assert!(refused.contains("1 object version(s)"), "{refused}");
        t.refuse_shred_of_compliance_locks("other").unwrap();
        // Once passed, it protects nothing.
        assert_eq!(t.governance.compliance_locks("a", far + 2).unwrap().0, 0);
    }

    /// The provider keeps an older genuine record of a version (from before its GOVERNANCE
    /// retention became COMPLIANCE, or was extended) and gives it as the record a change
    /// replaces, to have the change judged against that weaker state.
    #[tokio::test]
    async fn a_change_is_judged_only_against_the_latest_record_of_its_version() {
        let (_dir, t) = unsealed().await;
        let far = now_ms() + 3_600_000;
        let governance = |until| LockState {
            retention: Some((object_lock::LockMode::Governance, until)),
            legal_hold: false,
        };
        let stale = |r: Result<LockAnswer, TrusteeError>| match r {
            Err(TrusteeError::Denied(m)) => assert_eq!(m, STALE_LOCK_RECORD),
            other => panic!("{other:?}"),
        };
        let first = t
            .seal_lock(&first_seal(&t, "put-1", "v1", governance(far)))
            .await
            .unwrap();
        let hardened = t
            .seal_lock(&change(
                &t,
                "v1",
                compliance(far),
                &first.sealed,
                LockChange::Retention,
            ))
            .await
            .unwrap();
        // The GOVERNANCE record, with the bypass, would let the retention go: refused.
        stale(
            t.seal_lock(&change(
                &t,
                "v1",
                LockState::default(),
                &first.sealed,
                LockChange::Retention,
            ))
            .await,
        );
        stale(
            t.seal_lock(&change(
                &t,
                "v1",
                governance(far),
                &first.sealed,
                LockChange::Retention,
            ))
            .await,
        );
        // Opened, the older record answers the latest state the trustee sealed.
        let opened = t
            .open_lock(&LockOpen {
                target: lock_target("v1"),
                sealed: first.sealed.clone(),
            })
            .await
            .unwrap();
        assert_eq!(opened.state, compliance(far));
        // The latest record judges: still no removal, bypass or not; an extension is sealed.
        assert!(matches!(
            t.seal_lock(&change(&t,
                "v1",
                LockState::default(),
                &hardened.sealed,
                LockChange::Retention
            ))
            .await,
            Err(TrusteeError::Denied(m)) if m != STALE_LOCK_RECORD
        ));
        let extended = t
            .seal_lock(&change(
                &t,
                "v1",
                compliance(far + 10),
                &hardened.sealed,
                LockChange::Retention,
            ))
            .await
            .unwrap();
        // Once extended, the record before it is no longer the latest: a change back to its
        // date is refused as stale, not merely by the rules.
        stale(
            t.seal_lock(&change(
                &t,
                "v1",
                compliance(far),
                &hardened.sealed,
                LockChange::Retention,
            ))
            .await,
        );
        // If the catalog missed the extension, asking for it again with the record before
        // is sealed: it changes nothing the trustee knows.
        let again = t
            .seal_lock(&change(
                &t,
                "v1",
                compliance(far + 10),
                &hardened.sealed,
                LockChange::Retention,
            ))
            .await
            .unwrap();
        // Then only that newest record is the latest.
        stale(
            t.seal_lock(&change(
                &t,
                "v1",
                compliance(far + 20),
                &extended.sealed,
                LockChange::Retention,
            ))
            .await,
        );
        let held = t
            .seal_lock(&change(
                &t,
                "v1",
                LockState {
                    legal_hold: true,
                    ..compliance(far + 10)
                },
                &again.sealed,
                LockChange::LegalHold,
            ))
            .await
            .unwrap();
        // A row a release before wrote has no digest: a record whose state is the listed one
        // is accepted, an older one is not; the next seal writes the digest again.
        t.governance.forget_lock_digests().unwrap();
        stale(
            t.seal_lock(&change(
                &t,
                "v1",
                compliance(far + 10),
                &again.sealed,
                LockChange::LegalHold,
            ))
            .await,
        );
        let released = t
            .seal_lock(&change(
                &t,
                "v1",
                compliance(far + 10),
                &held.sealed,
                LockChange::LegalHold,
            ))
            .await
            .unwrap();
        stale(
            t.seal_lock(&change(
                &t,
                "v1",
                compliance(far + 30),
                &held.sealed,
                LockChange::Retention,
            ))
            .await,
        );
        t.seal_lock(&change(
            &t,
            "v1",
            compliance(far + 30),
            &released.sealed,
            LockChange::Retention,
        ))
        .await
        .unwrap();
    }

    /// The provider holds a gateway's client certificate: it asks the trustee to set a legal
    /// hold or lengthen a retention the tenant never asked for (to stop its shred), or to
    /// bypass a GOVERNANCE retention, without the tenant's signed request of that change.
    #[tokio::test]
    async fn a_retention_or_legal_hold_changes_only_for_the_tenants_signed_request_of_it() {
        let (_dir, t) = unsealed().await;
        let far = now_ms() + 3_600_000;
        let governance = LockState {
            retention: Some((object_lock::LockMode::Governance, far)),
            legal_hold: false,
        };
        let first = t
            .seal_lock(&first_seal(&t, "put-1", "v1", governance))
            .await
            .unwrap();
        let held = LockState {
            legal_hold: true,
            ..governance
        };
        let denied = |r: Result<LockAnswer, TrusteeError>| {
            assert!(matches!(r, Err(TrusteeError::Denied(_))), "{r:?}");
        };
        let with = |state: LockState, change: LockChange, request: Option<RequestTicket>| {
            bound(
                &t,
                LockSeal {
                    request,
                    bypass_governance: false,
                    ..self::change(&t, "v1", state, &first.sealed, change)
                },
            )
        };
        // No ticket: the gateway's word alone.
        denied(t.seal_lock(&with(held, LockChange::LegalHold, None)).await);
        denied(
            t.seal_lock(&with(compliance(far + 1), LockChange::Retention, None))
                .await,
        );
        // Tickets of other signed requests of the object: its PUT, its DELETE (no operation),
        // a retention change used for a legal hold, a change of another version.
        let put = t.verifier.with_op(
            write_ticket(&t, "put-2", vec![writes("k")], None),
            Some(object_lock::OP_PUT_OBJECT),
        );
        let delete = t
            .verifier
            .with_op(write_ticket(&t, "delete", vec![writes("k")], None), None);
        let retention = change_ticket(&t, "v1", LockChange::Retention);
        let other_version = change_ticket(&t, "v0", LockChange::LegalHold);
        let other_key = t.verifier.with_op(
            write_ticket(
                &t,
                "other-key",
                vec![writes("other")],
                Some(object_lock::signed_lock_change(None, "", "")),
            ),
            Some(object_lock::OP_PUT_OBJECT_LEGAL_HOLD),
        );
        for ticket in [put, delete, retention, other_version, other_key] {
            denied(
                t.seal_lock(&with(held, LockChange::LegalHold, Some(ticket)))
                    .await,
            );
        }
        // A legal hold change that also lengthens the retention.
        denied(
            t.seal_lock(&with(
                LockState {
                    legal_hold: true,
                    ..compliance(far + 1)
                },
                LockChange::LegalHold,
                Some(change_ticket(&t, "v1", LockChange::LegalHold)),
            ))
            .await,
        );
        // The bypass, claimed for a request that did not sign it (or whose key may not).
        for bypass in ["", "refused"] {
            let unsigned = t.verifier.with_op(
                write_ticket(
                    &t,
                    &format!("no-bypass-{bypass}"),
                    vec![writes("k")],
                    Some(object_lock::signed_lock_change(None, bypass, "")),
                ),
                Some(object_lock::OP_PUT_OBJECT_RETENTION),
            );
            let mut seal = with(LockState::default(), LockChange::Retention, Some(unsigned));
            seal.bypass_governance = true;
            denied(t.seal_lock(&seal).await);
        }
        // A request signed with grant credentials changes no lock.
        let by_grant = t.verifier.with_op(
            t.verifier.with_lock(
                t.verifier.ticket(
                    "grant-hold".into(),
                    "a",
                    &format!("{}x", obhut_trustee_client::governance::GRANT_KEY_PREFIX),
                    vec!["b".into()],
                    vec![writes("k")],
                    now_ms(),
                ),
                Some(object_lock::signed_lock_change(None, "", "")),
            ),
            Some(object_lock::OP_PUT_OBJECT_LEGAL_HOLD),
        );
        denied(
            t.seal_lock(&with(held, LockChange::LegalHold, Some(by_grant)))
                .await,
        );
        // Both ways: the tenant's signed legal hold (naming the current version: none) is
        // sealed; sent again after a later change, the same request changes nothing.
        let hold = t.verifier.with_op(
            write_ticket(
                &t,
                "hold",
                vec![writes("k")],
                Some(object_lock::signed_lock_change(None, "", "")),
            ),
            Some(object_lock::OP_PUT_OBJECT_LEGAL_HOLD),
        );
        let on = t
            .seal_lock(&with(held, LockChange::LegalHold, Some(hold.clone())))
            .await
            .unwrap();
        // A retry of it while it is the latest state is sealed.
        let mut retry = with(held, LockChange::LegalHold, Some(hold.clone()));
        retry.previous = Some(on.sealed.clone());
        let on = t.seal_lock(&retry).await.unwrap();
        let mut off = self::change(&t, "v1", governance, &on.sealed, LockChange::LegalHold);
        off.bypass_governance = false;
        let off = t.seal_lock(&off).await.unwrap();
        let mut replayed = with(held, LockChange::LegalHold, Some(hold));
        replayed.previous = Some(off.sealed.clone());
        denied(t.seal_lock(&replayed).await);
        // The signed bypass, by a key that may, shortens the GOVERNANCE retention.
        t.seal_lock(&self::change(
            &t,
            "v1",
            LockState::default(),
            &off.sealed,
            LockChange::Retention,
        ))
        .await
        .unwrap();
    }

    /// The attack: the gateway (the provider) holds the tenant's genuine signed
    /// PutObjectRetention or PutObjectLegalHold and rewrites its XML body: a later date, a
    /// COMPLIANCE mode, a legal hold set instead of lifted. The trustee checks the body
    /// against what the signature bound and reads it itself: each rewrite is refused.
    #[tokio::test]
    async fn a_change_seals_only_what_the_signed_body_asks_for() {
        let (_dir, t) = unsealed().await;
        let far = now_ms() + 3_600_000;
        let governance = LockState {
            retention: Some((object_lock::LockMode::Governance, far)),
            legal_hold: false,
        };
        let first = t
            .seal_lock(&first_seal(&t, "put-1", "v1", governance))
            .await
            .unwrap();
        let denied = |r: Result<LockAnswer, TrusteeError>| {
            assert!(matches!(r, Err(TrusteeError::Denied(_))), "{r:?}");
        };
        // The tenant's genuine request extends the GOVERNANCE retention by a minute.
        let genuine = change(
            &t,
            "v1",
            LockState {
                retention: Some((object_lock::LockMode::Governance, far + 60_000)),
                ..governance
            },
            &first.sealed,
            LockChange::Retention,
        );
        let stronger = LockState {
            retention: Some((object_lock::LockMode::Compliance, far + 86_400_000)),
            ..governance
        };
        // The body rewritten to ask for a COMPLIANCE retention a day later, the state with it.
        let mut rewritten = genuine.clone();
        rewritten.state = stronger;
        rewritten.body = Some(change_body(&rewritten));
        denied(t.seal_lock(&rewritten).await);
        // The genuine body, another state; no body at all.
        let mut other_state = genuine.clone();
        other_state.state = stronger;
        denied(t.seal_lock(&other_state).await);
        let mut no_body = genuine.clone();
        no_body.body = None;
        denied(t.seal_lock(&no_body).await);
        // A request whose signature binds no body (UNSIGNED-PAYLOAD with a CRC32 only).
        let mut unbound = genuine.clone();
        unbound.request = unbound.request.map(|ticket| {
            let lock = object_lock::signed_lock_change(None, "true", "");
            t.verifier.with_lock(ticket, Some(lock))
        });
        let refused = t.seal_lock(&unbound).await;
        assert!(
            matches!(&refused, Err(TrusteeError::Invalid(m)) if m.starts_with(object_lock::BODY_NOT_SIGNED)),
            "{refused:?}"
        );
        // A legal hold request to lift it, rewritten to set it.
        let lift = change(&t, "v1", governance, &first.sealed, LockChange::LegalHold);
        let mut set = lift.clone();
        set.state.legal_hold = true;
        set.body = Some(change_body(&set));
        denied(t.seal_lock(&set).await);
        // Both ways: the genuine request is sealed as its body asks.
        let answer = t.seal_lock(&genuine).await.unwrap();
        assert_eq!(answer.state, genuine.state);
    }

    /// A signed request verified again later (a replay within the clock skew of its signature)
    /// finds its claim: it seals no second version for up to 30 minutes after the first.
    #[tokio::test]
    async fn a_claim_outlives_every_verification_of_its_request_that_may_seal() {
        let (_dir, t) = unsealed().await;
        let ticket = write_ticket(&t, "once", vec![writes("k")], None);
        let now = now_ms();
        assert!(
            !t.claim_lock_ticket(&ticket, &lock_target("v1"), now)
                .unwrap()
        );
        let later = now + 29 * 60 * 1000;
        assert!(matches!(
            t.claim_lock_ticket(&ticket, &lock_target("v2"), later),
            Err(TrusteeError::Denied(_))
        ));
        assert!(
            t.claim_lock_ticket(&ticket, &lock_target("v1"), later)
                .unwrap()
        );
        // Past every verification that may seal, the claim is forgotten.
        let gone = now + 31 * 60 * 1000;
        assert!(
            !t.claim_lock_ticket(&ticket, &lock_target("v3"), gone)
                .unwrap()
        );
    }

    /// The provider holds the tickets of the tenant's requests that name an object without
    /// writing a version of it (a DELETE, a tagging, a retention or legal hold change, an
    /// UploadPart): each covers the name (`w:`), and it tries to seal with one a first record
    /// with a retention (as if the bucket's default, which the catalog keeps), or none.
    #[tokio::test]
    async fn only_a_request_that_makes_a_version_seals_its_first_record() {
        let (_dir, t) = unsealed().await;
        let far = now_ms() + 3_600_000;
        for (i, op) in [
            None,
            Some(object_lock::OP_PUT_OBJECT_RETENTION),
            Some(object_lock::OP_PUT_OBJECT_LEGAL_HOLD),
            Some(object_lock::OP_CREATE_MULTIPART_UPLOAD),
        ]
        .into_iter()
        .enumerate()
        {
            for (j, state) in [compliance(far), LockState::default()]
                .into_iter()
                .enumerate()
            {
                let mut seal = first_seal(&t, "unused", &format!("v{i}{j}"), state);
                seal.request = Some(t.verifier.with_op(
                    write_ticket(&t, &format!("other-{i}-{j}"), vec![writes("k")], None),
                    op,
                ));
                assert!(
                    matches!(t.seal_lock(&seal).await, Err(TrusteeError::Denied(_))),
                    "{op:?} {state:?}"
                );
            }
        }
        assert!(
            t.governance
                .locked_versions("a", now_ms(), None, 10)
                .unwrap()
                .is_empty()
        );
        // Both ways: a PutObject, a CopyObject and a form's upload each seal their version.
        for (i, op) in [
            object_lock::OP_PUT_OBJECT,
            object_lock::OP_COPY_OBJECT,
            object_lock::OP_POST_OBJECT,
        ]
        .into_iter()
        .enumerate()
        {
            let mut seal = first_seal(&t, &format!("write-{i}"), &format!("w{i}"), compliance(far));
            seal.request = seal
                .request
                .map(|ticket| t.verifier.with_op(ticket, Some(op)));
            t.seal_lock(&seal).await.unwrap();
        }
        assert_eq!(t.governance.compliance_locks("a", now_ms()).unwrap().0, 3);
    }

    /// A bucket deleted and made again (without object lock, which never reaches the lock
    /// code) keeps no default retention of the old one; a key rotation keeps it.
    #[tokio::test]
    async fn a_new_bucket_under_an_old_name_has_no_default_retention() {
        let (_dir, t) = unsealed().await;
        t.ensure_tenant_key("a").await.unwrap();
        let ten_years = object_lock::DefaultRetention {
            mode: object_lock::LockMode::Compliance,
            days: None,
            years: Some(10),
        };
        assert!(
            t.governance
                .note_bucket_default("a", "b", Some(&ten_years), now_ms())
                .unwrap()
        );
        let why = Justification::System {
            reason: "test".into(),
        };
        t.create_bucket_key_now("a", "b", 2, &why).unwrap();
        assert_eq!(
            t.governance.bucket_default("a", "b").unwrap(),
            Some(Some(ten_years))
        );
        t.create_bucket_key_now("a", "b", 1, &why).unwrap();
        assert_eq!(t.governance.bucket_default("a", "b").unwrap(), None);
    }

    /// One browser form (one signed policy) may upload several keys: each upload seals its own
    /// version's first record, and no key a second version.
    #[tokio::test]
    async fn a_form_seals_one_version_per_key_it_uploads() {
        let (_dir, t) = unsealed().await;
        let form = t.verifier.with_op(
            write_ticket(&t, "form", vec![writes("k"), writes("k2")], None),
            Some(object_lock::OP_POST_OBJECT),
        );
        let seal = |key: &str, v: &str| LockSeal {
            target: LockTarget {
                key: key.into(),
                ..lock_target(v)
            },
            state: LockState::default(),
            change: LockChange::Written,
            previous: None,
            bypass_governance: false,
            request: Some(form.clone()),
            upload: None,
            body: None,
        };
        t.seal_lock(&seal("k", "v1")).await.unwrap();
        t.seal_lock(&seal("k2", "v2")).await.unwrap();
        // a retry of the same version, then a second version of a key: refused
        t.seal_lock(&seal("k", "v1")).await.unwrap();
        let r = t.seal_lock(&seal("k", "v3")).await;
        assert!(matches!(r, Err(TrusteeError::Denied(_))), "{r:?}");
    }

    /// The provider holds a gateway's client certificate and so can call `/v1/lock/seal`: it
    /// tries to seal a COMPLIANCE lock on versions the tenant never wrote (to stop its shred).
    #[tokio::test]
    async fn a_first_lock_record_is_sealed_only_for_a_genuine_signed_write_of_that_version() {
        let (_dir, t) = unsealed().await;
        let far = now_ms() + 3_600_000;
        let wanted = compliance(far);
        let denied = |r: Result<LockAnswer, TrusteeError>| {
            assert!(matches!(r, Err(TrusteeError::Denied(_))), "{r:?}");
        };
        // No ticket at all: a made-up version.
        let mut made_up = first_seal(&t, "x", "made-up", wanted);
        made_up.request = None;
        denied(t.seal_lock(&made_up).await);
        // A ticket this trustee did not issue (forged, or with lock headers added to it).
        let mut forged = first_seal(&t, "forged", "made-up", wanted);
        forged.request.as_mut().unwrap().mac = "00".repeat(32);
        denied(t.seal_lock(&forged).await);
        let mut added = first_seal(&t, "added", "made-up", LockState::default());
        added.state = wanted;
        added.request.as_mut().unwrap().lock = headers_of(&wanted);
        denied(t.seal_lock(&added).await);
        // Tickets of genuine requests that write no version of this name: a read of it, a
        // write of another name, another bucket's write, another tenant's.
        let of = |scope, buckets: Vec<String>, tenant: &str| LockSeal {
            request: Some(
                t.verifier.with_lock(
                    t.verifier
                        .ticket("other".into(), tenant, "AKID", buckets, scope, now_ms()),
                    headers_of(&wanted),
                ),
            ),
            ..first_seal(&t, "x", "made-up", wanted)
        };
        for seal in [
            of(
                vec![TicketScope::Read {
                    bucket: "b".into(),
                    key: "k".into(),
                }],
                vec!["b".into()],
                "a",
            ),
            of(vec![writes("other-key")], vec!["b".into()], "a"),
            of(
                vec![TicketScope::Write {
                    bucket: "c".into(),
                    key: "k".into(),
                }],
                vec!["c".into()],
                "a",
            ),
            of(vec![writes("k")], vec!["b".into()], "z"),
        ] {
            denied(t.seal_lock(&seal).await);
        }
        // A genuine write that asked for less than what is sealed: GOVERNANCE, a shorter
        // date, no legal hold; and a write without lock headers cannot have a legal hold.
        let governance = LockState {
            retention: Some((object_lock::LockMode::Governance, far)),
            legal_hold: false,
        };
        let held = LockState {
            retention: None,
            legal_hold: true,
        };
        for (i, (asked, sealed)) in [
            (Some(governance), wanted),
            (Some(compliance(far - 1000)), wanted),
            (
                Some(wanted),
                LockState {
                    legal_hold: true,
                    ..wanted
                },
            ),
            (None, held),
        ]
        .into_iter()
        .enumerate()
        {
            let mut seal = first_seal(&t, &format!("less-{i}"), "v1", sealed);
            seal.request = Some(write_ticket(
                &t,
                &format!("less-{i}"),
                vec![writes("k")],
                asked.as_ref().and_then(headers_of),
            ));
            denied(t.seal_lock(&seal).await);
        }
        // Lock headers signed with grant credentials (the provider's staff) seal nothing.
        let mut by_grant = first_seal(&t, "grant", "v1", wanted);
        by_grant.request = Some(t.verifier.with_lock(
            t.verifier.ticket(
                "grant".into(),
                "a",
                &format!("{}x", obhut_trustee_client::governance::GRANT_KEY_PREFIX),
                vec!["b".into()],
                vec![writes("k")],
                now_ms(),
            ),
            headers_of(&wanted),
        ));
        denied(t.seal_lock(&by_grant).await);
        // Nor without lock headers: no retention (a bucket's default) and no legal hold; only
        // a record that locks nothing.
        let grant_ticket = |digest: &str| {
            t.verifier.with_op(
                t.verifier.ticket(
                    digest.into(),
                    "a",
                    &format!("{}x", obhut_trustee_client::governance::GRANT_KEY_PREFIX),
                    vec!["b".into()],
                    vec![writes("k")],
                    now_ms(),
                ),
                Some(object_lock::OP_PUT_OBJECT),
            )
        };
        for (i, state) in [
            compliance(far),
            LockState {
                retention: Some((object_lock::LockMode::Governance, far)),
                legal_hold: false,
            },
            LockState {
                retention: None,
                legal_hold: true,
            },
        ]
        .into_iter()
        .enumerate()
        {
            let mut plain = first_seal(&t, "unused", &format!("g{i}"), state);
            plain.request = Some(grant_ticket(&format!("grant-plain-{i}")));
            denied(t.seal_lock(&plain).await);
        }
        let mut unlocked = first_seal(&t, "unused", "g-none", LockState::default());
        unlocked.request = Some(grant_ticket("grant-none"));
        t.seal_lock(&unlocked).await.unwrap();
        assert!(
            t.governance
                .locked_versions("a", now_ms(), None, 10)
                .unwrap()
                .is_empty()
        );
        assert_eq!(t.governance.compliance_locks("a", now_ms()).unwrap().0, 0);
        // The genuine write seals its version, once: its ticket seals no other version.
        let genuine = first_seal(&t, "put-k", "v1", wanted);
        t.seal_lock(&genuine).await.unwrap();
        let mut replayed = genuine.clone();
        replayed.target = lock_target("made-up");
        denied(t.seal_lock(&replayed).await);
        // A write without lock headers gets at most a retention: its bucket's default, as
        // the tenant set it (one hour, as `far`).
        t.seal_lock(&bucket_default_seal(
            &t,
            "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Days>1</Days></DefaultRetention></Rule></ObjectLockConfiguration>",
        ))
        .await
        .unwrap();
        let in_a_day = now_ms() + 86_400_000;
        let mut defaulted = first_seal(&t, "put-default", "v2", compliance(in_a_day));
        defaulted.request = Some(write_ticket(&t, "put-default", vec![writes("k")], None));
        t.seal_lock(&defaulted).await.unwrap();
        assert_eq!(t.governance.compliance_locks("a", now_ms()).unwrap().0, 2);
        let listed = t
            .governance
            .locked_versions("a", now_ms(), None, 10)
            .unwrap();
        assert_eq!(
            listed,
            vec![
                ("b".into(), "k".into(), "v1".into()),
                ("b".into(), "k".into(), "v2".into())
            ]
        );
    }

    #[tokio::test]
    async fn retentions_beyond_the_trustees_longest_are_refused() {
        let (_dir, t) = unsealed().await;
        let t = t.with_max_retention(std::time::Duration::from_secs(10 * 86_400));
        let day = 86_400_000;
        let too_long = |r: Result<LockAnswer, TrusteeError>| {
            assert!(
                matches!(&r, Err(TrusteeError::Invalid(m)) if m.starts_with(object_lock::RETENTION_TOO_LONG)),
                "{r:?}"
            );
        };
        // On a new version, by its signed headers.
        too_long(
            t.seal_lock(&first_seal(
                &t,
                "long",
                "v1",
                compliance(now_ms() + 11 * day),
            ))
            .await,
        );
        // And by the default 100 years: a far date beyond them.
        let (_dir2, dflt) = unsealed().await;
        too_long(
            dflt.seal_lock(&first_seal(
                &dflt,
                "long",
                "v1",
                compliance(now_ms() + (object_lock::DEFAULT_MAX_RETENTION_DAYS + 1) * day),
            ))
            .await,
        );
        dflt.seal_lock(&first_seal(
            &dflt,
            "ok",
            "v2",
            compliance(now_ms() + 99 * 365 * day),
        ))
        .await
        .unwrap();
        // Extending beyond it is refused; a change that keeps the date is not.
        let first = t
            .seal_lock(&first_seal(&t, "ok", "v2", compliance(now_ms() + 5 * day)))
            .await
            .unwrap();
        too_long(
            t.seal_lock(&change(
                &t,
                "v2",
                compliance(now_ms() + 11 * day),
                &first.sealed,
                LockChange::Retention,
            ))
            .await,
        );
        let kept = LockState {
            legal_hold: true,
            ..first.state
        };
        t.seal_lock(&change(
            &t,
            "v2",
            kept,
            &first.sealed,
            LockChange::LegalHold,
        ))
        .await
        .unwrap();
        // An upload's lock is held to it when the upload is created.
        let long = compliance(now_ms() + 11 * day);
        too_long(t.seal_lock(&upload_seal(&t, "mpu", "upload-1", long)).await);
        assert_eq!(t.governance.compliance_locks("a", now_ms()).unwrap().0, 1);
    }

    /// The attack: the provider holds the ticket of the tenant's signed write, so while it is
    /// valid it asks the trustee to abandon that committed version's COMPLIANCE lock (to drop it
    /// from the shred count and the residency report, delete the version unnoticed, and reuse
    /// the freed ticket to seal the lock onto a decoy version). Every abandonment is refused,
    /// by any ticket and with any record, and the lock keeps counting.
    #[tokio::test]
    async fn abandoning_a_committed_versions_lock_with_its_ticket_is_refused() {
        let (_dir, t) = unsealed().await;
        let far = now_ms() + 3_600_000;
        let seal = first_seal(&t, "put-1", "v1", compliance(far));
        let first = t.seal_lock(&seal).await.unwrap();
        // A legal hold added after: a later record.
        let held = t
            .seal_lock(&change(
                &t,
                "v1",
                LockState {
                    legal_hold: true,
                    ..first.state
                },
                &first.sealed,
                LockChange::LegalHold,
            ))
            .await
            .unwrap();
        let abandon = |request, previous: &str| LockSeal {
            target: lock_target("v1"),
            state: LockState::default(),
            change: LockChange::Abandoned,
            previous: Some(previous.to_owned()),
            bypass_governance: false,
            request,
            upload: None,
            body: None,
        };
        // The very ticket that sealed it, within its validity, with the first or the later
        // record; another write's ticket; no ticket: all refused.
        for (request, previous) in [
            (seal.request.clone(), &first.sealed),
            (seal.request.clone(), &held.sealed),
            (
                Some(write_ticket(
                    &t,
                    "put-2",
                    vec![writes("k")],
                    headers_of(&compliance(far)),
                )),
                &first.sealed,
            ),
            (None, &first.sealed),
        ] {
            let refused = t.seal_lock(&abandon(request, previous)).await;
            assert!(
                matches!(&refused, Err(TrusteeError::Denied(m)) if m == ABANDON_REFUSED),
                "{refused:?}"
            );
        }
        // The lock still refuses the shred and is still reported.
        assert_eq!(
            t.governance.compliance_locks("a", now_ms()).unwrap(),
            (1, far)
        );
        assert!(t.refuse_shred_of_compliance_locks("a").is_err());
        assert_eq!(
            t.governance
                .locked_versions("a", now_ms(), None, 10)
                .unwrap(),
            vec![("b".into(), "k".into(), "v1".into())]
        );
        // Its records still open, the legal hold with them.
        let opened = t
            .open_lock(&LockOpen {
                target: lock_target("v1"),
                sealed: held.sealed.clone(),
            })
            .await
            .unwrap();
        assert_eq!(
            opened.state.retention,
            Some((object_lock::LockMode::Compliance, far))
        );
        assert!(opened.state.legal_hold);
        // The ticket was not freed: it seals no decoy version.
        let mut decoy = seal.clone();
        decoy.target = lock_target("decoy");
        assert!(matches!(
            t.seal_lock(&decoy).await,
            Err(TrusteeError::Denied(_))
        ));
        assert_eq!(t.governance.compliance_locks("a", now_ms()).unwrap().0, 1);
        // Nothing was logged as abandoned.
        assert!(!t.governance.test_entries().iter().any(|e| matches!(
            &e.event,
            LogEvent::ObjectLock {
                change: LockChange::Abandoned,
                ..
            }
        )));
    }

    #[tokio::test]
    async fn an_uploads_lock_is_what_its_creation_signed_and_comes_only_with_its_completion() {
        let (_dir, t) = unsealed().await;
        let far = now_ms() + 3_600_000;
        let wanted = LockState {
            retention: Some((object_lock::LockMode::Compliance, far)),
            legal_hold: true,
        };
        // CreateMultipartUpload with lock headers: sealed for the upload.
        let intent = t
            .seal_lock(&upload_seal(&t, "create", "upload-1", wanted))
            .await
            .unwrap();
        // Nothing is listed until the completion writes the version.
        assert_eq!(t.governance.compliance_locks("a", now_ms()).unwrap().0, 0);
        // An upload's lock other than what the creation signed is refused.
        let mut more = upload_seal(&t, "create-2", "upload-2", compliance(far));
        more.state = wanted;
        assert!(matches!(
            t.seal_lock(&more).await,
            Err(TrusteeError::Denied(_))
        ));
        let completion = |digest: &str, upload: &str, sealed: Option<String>, state| LockSeal {
            target: lock_target("v1"),
            state,
            change: LockChange::Written,
            previous: None,
            bypass_governance: false,
            request: Some(t.verifier.with_op(
                write_ticket(
                    &t,
                    digest,
                    vec![
                        TicketScope::Upload {
                            bucket: "b".into(),
                            upload: upload.into(),
                        },
                        writes("k"),
                    ],
                    None,
                ),
                Some(object_lock::OP_COMPLETE_MULTIPART_UPLOAD),
            )),
            upload: Some(object_lock::UploadLock {
                upload_id: upload.into(),
                sealed,
            }),
            body: None,
        };
        // Another upload's completion cannot carry it; nor can the completion change it.
        assert!(matches!(
            t.seal_lock(&completion(
                "c1",
                "upload-9",
                Some(intent.sealed.clone()),
                wanted
            ))
            .await,
            Err(TrusteeError::Integrity(_))
        ));
        assert!(matches!(
            t.seal_lock(&completion(
                "c2",
                "upload-1",
                Some(intent.sealed.clone()),
                compliance(far)
            ))
            .await,
            Err(TrusteeError::Denied(_))
        ));
        // A completion ticket of another upload does not complete this one.
        let mut elsewhere = completion("c3", "upload-1", Some(intent.sealed.clone()), wanted);
        elsewhere.request = Some(t.verifier.with_op(
            write_ticket(
                &t,
                "c3",
                vec![
                    TicketScope::Upload {
                        bucket: "b".into(),
                        upload: "upload-9".into(),
                    },
                    writes("k"),
                ],
                None,
            ),
            Some(object_lock::OP_COMPLETE_MULTIPART_UPLOAD),
        ));
        // Nor does any other request of the upload (an UploadPart's ticket names it too), and
        // a PutObject's ticket creates no upload.
        let mut part = completion("c5", "upload-1", Some(intent.sealed.clone()), wanted);
        part.request = part.request.map(|ticket| t.verifier.with_op(ticket, None));
        assert!(matches!(
            t.seal_lock(&part).await,
            Err(TrusteeError::Denied(_))
        ));
        let mut put = upload_seal(&t, "create-3", "upload-3", wanted);
        put.request = put
            .request
            .map(|ticket| t.verifier.with_op(ticket, Some(object_lock::OP_PUT_OBJECT)));
        assert!(matches!(
            t.seal_lock(&put).await,
            Err(TrusteeError::Denied(_))
        ));
        assert!(matches!(
            t.seal_lock(&elsewhere).await,
            Err(TrusteeError::Denied(_))
        ));
        t.seal_lock(&completion("c4", "upload-1", Some(intent.sealed), wanted))
            .await
            .unwrap();
        assert_eq!(t.governance.compliance_locks("a", now_ms()).unwrap().0, 1);
    }

    #[tokio::test]
    async fn shred_disables_at_once_can_be_undone_and_destroys_for_good() {
        let (dir, t) = unsealed().await;
        t.ensure_tenant_key("a").await.unwrap();
        t.ensure_tenant_key("b").await.unwrap();
        let wa = t
            .create_bucket_key("a", "x", 1, &customer(&t, "a"))
            .await
            .unwrap();
        let wb = t
            .create_bucket_key("b", "y", 1, &customer(&t, "b"))
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
            t.release_bucket_key("a", "x", &wa, &customer(&t, "a"))
                .await,
            Err(TrusteeError::TenantKeyDisabled(_))
        ));
        t.release_bucket_key("b", "y", &wb, &customer(&t, "b"))
            .await
            .unwrap();

        // accidental: restored within the grace period
        t.enable_tenant_key("a").unwrap();
        t.release_bucket_key("a", "x", &wa, &customer(&t, "a"))
            .await
            .unwrap();

        // real: destroyed when the grace period ends
        t.disable_tenant_key("a", now_ms() - 1).unwrap();
        assert_eq!(t.destroy_due().unwrap(), vec!["a".to_owned()]);
        assert!(matches!(
            t.release_bucket_key("a", "x", &wa, &customer(&t, "a"))
                .await,
            Err(TrusteeError::TenantKeyDestroyed(_))
        ));
        assert!(
            t.enable_tenant_key("a").is_err(),
            "a destroyed key stays destroyed"
        );
        let text = std::fs::read_to_string(dir.path().join("keystore.json")).unwrap();
        assert!(text.contains("\"destroyed\""));
        t.release_bucket_key("b", "y", &wb, &customer(&t, "b"))
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
            t.release_bucket_key("b", "y", &wb, &customer(&t, "b"))
                .await,
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
            t.create_bucket_key("a", "b", 1, &customer(&t, "a"))
                .await
                .unwrap()
        };
        let t = Trustee::open(dir.path()).unwrap();
        assert!(matches!(
            t.release_bucket_key("a", "b", &wk, &customer(&t, "a"))
                .await,
            Err(TrusteeError::Sealed(0, 2))
        ));
        t.unseal(&shares[2]).await.unwrap();
        t.unseal(&shares[0]).await.unwrap();
        t.release_bucket_key("a", "b", &wk, &customer(&t, "a"))
            .await
            .unwrap();
    }
}
