//! Further signing keys of officers and tenant admins: a key made elsewhere (a browser's
//! WebCrypto Ed25519 key, which cannot be exported) that the principal enrolled with a
//! statement signed by its own key, and that may then sign that principal's approvals and
//! denials of grants and disclosure requests, and a tenant admin's revocation of its tenant's
//! access keys, and nothing else, until it expires or the principal revokes it.
//!
//! The transparency log is the record: each key is known from its `signing_key_enrolled`
//! entry (which carries the enrolment statement and its signature, checked again at every
//! use against the principal's own key) and ended by a `signing_key_revoked` entry. Nothing
//! here is kept in `governance.db`.
//!
//! It sees public keys and signed statements only; never a private key.

use super::{Governance, denied, invalid, now_ms, storage};
use obhut_crypto::principal::verify_statement;
use obhut_trustee_client::{
    Action, LogEntry, LogEvent, PrincipalInfo, Role, SignedStatement, Statement, TrusteeError,
};
use serde_json::{Value, json};
use std::collections::HashMap;

/// The longest an enrolled key may sign for.
pub const MAX_SIGNING_KEY_MS: i64 = 90 * 24 * 3600 * 1000;

/// One enrolled key as the log shows it.
#[derive(Debug, Clone)]
pub struct EnrolledKey {
    pub public_key: Vec<u8>,
    pub public_key_hex: String,
    pub role: Role,
    pub expires_ms: i64,
    pub label: String,
    pub enrolled_ms: i64,
    /// The enrolment statement and its signature by the principal's own key.
    pub statement: String,
    pub signature: String,
    pub revoked_ms: Option<i64>,
}

impl EnrolledKey {
    fn state_at(&self, now: i64) -> &'static str {
        if self.revoked_ms.is_some() {
            "revoked"
        } else if now >= self.expires_ms {
            "expired"
        } else {
            "active"
        }
    }
}

/// Enrolled keys by principal name.
#[derive(Debug, Default)]
pub struct SigningKeys {
    by_principal: HashMap<String, Vec<EnrolledKey>>,
}

impl SigningKeys {
    /// Takes in one log entry (at start, every entry in order; then each one appended).
    pub fn observe(&mut self, entry: &LogEntry) {
        match &entry.event {
            LogEvent::SigningKeyEnrolled {
                actor,
                role,
                public_key,
                expires_ms,
                label,
                statement,
                signature,
                ..
            } => {
                let Ok(bytes) = hex_simd::decode_to_vec(public_key.as_bytes()) else {
                    return;
                };
                self.by_principal
                    .entry(actor.clone())
                    .or_default()
                    .push(EnrolledKey {
                        public_key: bytes,
                        public_key_hex: public_key.clone(),
                        role: *role,
                        expires_ms: *expires_ms,
                        label: label.clone(),
                        enrolled_ms: entry.at_ms,
                        statement: statement.clone(),
                        signature: signature.clone(),
                        revoked_ms: None,
                    });
            }
            LogEvent::SigningKeyRevoked {
                actor, public_key, ..
            } => {
                if let Some(k) = self
                    .by_principal
                    .get_mut(actor)
                    .and_then(|l| l.iter_mut().find(|k| k.public_key_hex == *public_key))
                {
                    k.revoked_ms.get_or_insert(entry.at_ms);
                }
            }
            _ => {}
        }
    }

    fn of(&self, principal: &str) -> &[EnrolledKey] {
        self.by_principal.get(principal).map_or(&[], Vec::as_slice)
    }

    fn holder_of(&self, public_key_hex: &str) -> Option<&str> {
        self.by_principal
            .iter()
            .find(|(_, l)| l.iter().any(|k| k.public_key_hex == public_key_hex))
            .map(|(p, _)| p.as_str())
    }
}

/// What an enrolled key may sign: decisions on grants and disclosure requests, and revoking
/// an access key (which only takes access away: a page that signs one unasked ends a key,
/// logged with the statement, and mints nothing); approvals of a crypto-shred that disables
/// the tenant's key (undone by a cancel within the grace period, and giving no one access) and
/// of a disconnect (which stops the provider's own service). The page that holds the key is
/// served by the provider, whose script could sign any of these unasked, so nothing
/// irreversible and nothing that gives access is among them: a shred *now* (destroys the key
/// at once, beyond every copy of the data and any legal hold), a cancel (enables a disabled
/// key again), creating access keys and a reconnect (gives a disconnected provider its
/// service back) need the principal's own key.
pub fn signable_by_enrolled_key(action: &Action) -> bool {
    matches!(
        action,
        Action::ApproveGrant { .. }
            | Action::DenyGrant { .. }
            | Action::ApproveDisclosure { .. }
            | Action::DenyDisclosure { .. }
            | Action::RevokeAccessKey { .. }
            | Action::Shred {
                mode: obhut_trustee_client::ShredMode::Disable,
                ..
            }
            | Action::Disconnect { .. }
    )
}

impl Governance {
    fn signing_keys(&self) -> Result<std::sync::MutexGuard<'_, SigningKeys>, TrusteeError> {
        self.signing_keys
            .lock()
            .map_err(|_| storage("signing key lock poisoned"))
    }

    /// The enrolled key of `principal` (whose own key is `own_key`) that signed `text` with
    /// `sig`, if one did and its enrolment statement is `principal`'s own signature of
    /// exactly this key and expiry.
    pub(super) fn enrolled_signer(
        &self,
        principal: &str,
        own_key: &[u8],
        text: &str,
        sig: &[u8],
    ) -> Result<Option<EnrolledKey>, TrusteeError> {
        let keys = self.signing_keys()?;
        let found = keys.of(principal).iter().find(|k| {
            verify_statement(&k.public_key, text, sig) && enrolment_holds(k, principal, own_key)
        });
        Ok(found.cloned())
    }

    /// Whether `text` (a statement of `at_ms`) carries a signature of `principal` that counts:
    /// its own key's, or an enrolled key's that was live at `at_ms` and is not revoked.
    pub(super) fn signed_by(
        &self,
        principal: &str,
        own_key: &[u8],
        text: &str,
        sig: &[u8],
        at_ms: i64,
    ) -> Result<bool, TrusteeError> {
        if verify_statement(own_key, text, sig) {
            return Ok(true);
        }
        Ok(self
            .enrolled_signer(principal, own_key, text, sig)?
            .is_some_and(|k| k.revoked_ms.is_none() && at_ms < k.expires_ms))
    }

    /// [`Action::EnrolSigningKey`], its statement verified as signed with `who`'s own key.
    pub(super) fn enrol_signing_key(
        &self,
        who: &PrincipalInfo,
        signed: &SignedStatement,
        public_key: &str,
        expires_ms: i64,
        label: &str,
    ) -> Result<Value, TrusteeError> {
        if !matches!(who.role, Role::Officer | Role::TenantAdmin) {
            return Err(denied(
                "only officers and tenant admins enrol keys for signing approvals",
            ));
        }
        let pk = hex_simd::decode_to_vec(public_key.as_bytes())
            .ok()
            .filter(|k| k.len() == obhut_crypto::principal::PUBLIC_KEY_LEN)
            .ok_or_else(|| invalid("public_key must be a 32-byte Ed25519 public key in hex"))?;
        let public_key = hex_simd::encode_to_string(&pk, hex_simd::AsciiCase::Lower);
        let now = now_ms();
        if expires_ms <= now {
            return Err(invalid("the key's expiry must be in the future"));
        }
        if expires_ms > now.saturating_add(MAX_SIGNING_KEY_MS) {
            return Err(invalid("an enrolled key signs for at most 90 days"));
        }
        if who.expires_ms.is_some_and(|e| expires_ms > e) {
            return Err(invalid(
                "an enrolled key cannot outlive its principal's own token",
            ));
        }
        if label.chars().count() > 100 || label.chars().any(char::is_control) {
            return Err(invalid(
                "a key's label is at most 100 characters, none a control character",
            ));
        }
        let own = self
            .principal(&who.name)?
            .ok_or_else(|| denied(format!("unknown principal {:?}", who.name)))?;
        if own.public_key == pk {
            return Err(invalid(
                "that is your own key, which signs anything already",
            ));
        }
        if let Some(holder) = self.signing_keys()?.holder_of(&public_key) {
            return Err(TrusteeError::Conflict(if holder == who.name {
                "this key is enrolled already (revoked keys are not enrolled again)".to_owned()
            } else {
                "this key is enrolled for another principal".to_owned()
            }));
        }
        let event = LogEvent::SigningKeyEnrolled {
            actor: who.name.clone(),
            role: who.role,
            tenant: who.tenant.clone(),
            public_key: public_key.clone(),
            expires_ms,
            label: label.to_owned(),
            statement: signed.statement.clone(),
            signature: signed.signature.clone(),
        };
        self.record(event)?;
        Ok(json!({
            "principal": who.name,
            "public_key": public_key,
            "expires_ms": expires_ms,
            "label": label,
            "state": "active",
        }))
    }

    /// [`Action::RevokeSigningKey`]: `who`'s own enrolled key.
    pub(super) fn revoke_signing_key(
        &self,
        who: &PrincipalInfo,
        public_key: &str,
    ) -> Result<Value, TrusteeError> {
        let public_key = public_key.to_ascii_lowercase();
        let state = self
            .signing_keys()?
            .of(&who.name)
            .iter()
            .find(|k| k.public_key_hex == public_key)
            .map(|k| k.state_at(now_ms()))
            .ok_or_else(|| {
                TrusteeError::NotFound(format!("{} has no enrolled key {public_key}", who.name))
            })?;
        if state == "revoked" {
            return Err(TrusteeError::Conflict(
                "this key is revoked already".to_owned(),
            ));
        }
        // The principal's pending shred approvals are withdrawn with the key: one it finds
        // signed unasked must not count towards a quorum after the revocation.
        self.record_with(
            LogEvent::SigningKeyRevoked {
                actor: who.name.clone(),
                tenant: who.tenant.clone(),
                public_key: public_key.clone(),
            },
            |db| super::withdraw_approvals(db, &who.name),
        )?;
        Ok(json!({"principal": who.name, "public_key": public_key, "state": "revoked"}))
    }

    /// The asking principal's enrolled keys, newest first.
    pub(super) fn signing_keys_of(&self, who: &PrincipalInfo) -> Result<Value, TrusteeError> {
        let now = now_ms();
        let keys = self.signing_keys()?;
        let list: Vec<Value> = keys
            .of(&who.name)
            .iter()
            .rev()
            .map(|k| {
                json!({
                    "public_key": k.public_key_hex,
                    "label": k.label,
                    "enrolled_ms": k.enrolled_ms,
                    "expires_ms": k.expires_ms,
                    "revoked_ms": k.revoked_ms,
                    "state": k.state_at(now),
                })
            })
            .collect();
        Ok(json!(list))
    }
}

/// Whether `k`'s enrolment statement is `principal`'s own-key signature enrolling exactly `k`.
fn enrolment_holds(k: &EnrolledKey, principal: &str, own_key: &[u8]) -> bool {
    let Ok(sig) = base64_simd::STANDARD.decode_to_vec(k.signature.as_bytes()) else {
        return false;
    };
    if !verify_statement(own_key, &k.statement, &sig) {
        return false;
    }
    let Ok(st) = serde_json::from_str::<Statement>(&k.statement) else {
        return false;
    };
    st.principal == principal
        && matches!(&st.action,
            Action::EnrolSigningKey { public_key, expires_ms, .. }
                if public_key.eq_ignore_ascii_case(&k.public_key_hex) && *expires_ms == k.expires_ms)
}
