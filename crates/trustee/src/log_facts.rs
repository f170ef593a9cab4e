//! What the transparency log says about principals, grants and disclosure requests: the
//! facts `governance.db` is checked against at every use.
//!
//! The log is append-only and checked against the checkpoint the trustee keeps apart from it
//! ([`crate::kept_checkpoint`]) at every start, so an entry cannot be taken back by editing the
//! trustee's files; `governance.db` can be edited. These facts are built once at start from
//! the whole log and then follow every append, so a record edited, inserted or revived in the
//! database disagrees with them and is refused (and reported) rather than believed.
//!
//! It sees only log entries: names, roles, public keys, grant and disclosure ids, never a
//! token or key material.

use obhut_trustee_client::governance::CustomerApproval;
use obhut_trustee_client::log_entry::{DisclosureRequest, DisconnectMode};
use obhut_trustee_client::object_keys::KeyRelease;
use obhut_trustee_client::{LogEntry, LogEvent, Role};
use std::collections::HashMap;

/// A `principal_created` entry.
#[derive(Debug, Clone)]
pub(crate) struct Created {
    pub index: u64,
    pub role: Role,
    pub tenant: Option<String>,
    /// Hex, as logged.
    pub public_key: String,
    pub expires_ms: Option<i64>,
    pub actor: String,
}

/// A disclosure request as its entries recorded it.
#[derive(Debug, Clone)]
pub(crate) struct DisclosureFacts {
    pub request: DisclosureRequest,
    pub created_ms: i64,
    /// `pending`, `refused`, `approved` or `denied`.
    pub state: String,
    pub approvals: Vec<String>,
    pub decided_ms: Option<i64>,
    pub visible_after_ms: i64,
}

/// The kind of the `attestation` entry that marks a log whose trustee checks its state
/// against it (appended once, when a trustee of this release first opens it).
pub(crate) const STATE_CHECKED: &str = "governance-state-checked";

#[derive(Debug, Default)]
pub(crate) struct LogFacts {
    /// The log carries the [`STATE_CHECKED`] mark.
    pub upgraded: bool,
    /// Entries observed (the log's size once caught up).
    pub size: u64,
    /// The index of the first entry by an actor other than `bootstrap`: principals enrolled
    /// without a signature (a new installation's first ones) are logged before it.
    pub bootstrap_end: Option<u64>,
    /// Every enrolment, by principal name, in log order.
    pub created: HashMap<String, Vec<Created>>,
    /// Revoked principals and when (the first revocation's entry time).
    pub revoked: HashMap<String, i64>,
    /// Grants denied or revoked: id → (state, by whom).
    pub grants_ended: HashMap<String, (String, String)>,
    /// Whether each grant needs its tenant's approval, as its `grant_requested` entry said.
    pub grants_need_tenant: HashMap<String, bool>,
    /// Each grant's logged approvals: grant id → principal → (signature, entry time). Only an
    /// approval that reached the log counts, at the time the log took it.
    pub grant_approvals: HashMap<String, HashMap<String, (String, i64)>>,
    pub disclosures: HashMap<String, DisclosureFacts>,
    /// Disclosure ids in the order they were requested.
    pub disclosure_order: Vec<String>,
    /// Each tenant's key release policy, as its admin last set it (absent: `bucket`).
    pub key_release: HashMap<String, KeyRelease>,
    /// Bucket key versions that left the trustee: (tenant, bucket, version).
    pub released: std::collections::HashSet<(String, String, u32)>,
    /// The provider is disconnected: since the `trustee_disconnected` entry here.
    pub disconnected: Option<Disconnected>,
    /// Approvals of the next change of the disconnect state (to `mode`), since the last
    /// change: principal → (mode, entry time, reason given). A change clears them.
    pub disconnect_approvals: HashMap<String, (DisconnectMode, i64, Option<String>)>,
}

/// A disconnect in force, as its `trustee_disconnected` entry recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Disconnected {
    pub index: u64,
    pub at_ms: i64,
    pub approvers: Vec<String>,
    pub reason: Option<String>,
}

impl LogFacts {
    /// Takes in entry `index` (entries arrive in order; one seen already is ignored).
    pub fn observe(&mut self, index: u64, entry: &LogEntry) {
        if index < self.size {
            return;
        }
        self.size = index + 1;
        if self.bootstrap_end.is_none() && entry.event.actor().is_some_and(|a| a != "bootstrap") {
            self.bootstrap_end = Some(index);
        }
        match &entry.event {
            LogEvent::PrincipalCreated {
                name,
                role,
                tenant,
                public_key,
                expires_ms,
                actor,
            } => self.created.entry(name.clone()).or_default().push(Created {
                index,
                role: *role,
                tenant: tenant.clone(),
                public_key: public_key.to_ascii_lowercase(),
                expires_ms: *expires_ms,
                actor: actor.clone(),
            }),
            LogEvent::KeyRelease {
                tenant,
                bucket,
                key_version,
                ..
            } => {
                self.released
                    .insert((tenant.clone(), bucket.clone(), *key_version));
            }
            LogEvent::KeyReleasePolicySet {
                tenant,
                key_release,
                ..
            } => {
                self.key_release.insert(tenant.clone(), *key_release);
            }
            LogEvent::PrincipalRevoked { name, .. } => {
                self.revoked.entry(name.clone()).or_insert(entry.at_ms);
            }
            LogEvent::GrantRequested {
                grant,
                customer_approval,
                ..
            } => {
                self.grants_need_tenant
                    .entry(grant.clone())
                    .or_insert(*customer_approval == CustomerApproval::Required);
            }
            LogEvent::GrantApproval {
                grant,
                signature,
                actor,
                ..
            } => {
                self.grant_approvals
                    .entry(grant.clone())
                    .or_default()
                    .entry(actor.clone())
                    .or_insert_with(|| (signature.clone(), entry.at_ms));
            }
            LogEvent::GrantDenied { grant, actor, .. } => {
                self.grants_ended
                    .entry(grant.clone())
                    .or_insert_with(|| ("denied".into(), actor.clone()));
            }
            LogEvent::GrantRevoked { grant, actor, .. } => {
                self.grants_ended
                    .entry(grant.clone())
                    .or_insert_with(|| ("revoked".into(), actor.clone()));
            }
            LogEvent::DisclosureRequested(r) | LogEvent::DisclosureRefused(r) => {
                let refused = matches!(entry.event, LogEvent::DisclosureRefused(_));
                if !self.disclosures.contains_key(&r.disclosure) {
                    self.disclosure_order.push(r.disclosure.clone());
                }
                self.disclosures.insert(
                    r.disclosure.clone(),
                    DisclosureFacts {
                        request: r.clone(),
                        created_ms: entry.at_ms,
                        state: if refused { "refused" } else { "pending" }.into(),
                        approvals: Vec::new(),
                        decided_ms: refused.then_some(entry.at_ms),
                        visible_after_ms: r.visible_after_ms,
                    },
                );
            }
            LogEvent::DisclosureApproval {
                disclosure, actor, ..
            } => {
                if let Some(d) = self.disclosures.get_mut(disclosure)
                    && d.state == "pending"
                    && !d.approvals.contains(actor)
                {
                    d.approvals.push(actor.clone());
                }
            }
            LogEvent::DisclosureApproved { disclosure, .. } => {
                if let Some(d) = self.disclosures.get_mut(disclosure)
                    && d.state == "pending"
                {
                    d.state = "approved".into();
                    d.decided_ms = Some(entry.at_ms);
                }
            }
            LogEvent::DisclosureDenied { disclosure, .. } => {
                if let Some(d) = self.disclosures.get_mut(disclosure)
                    && d.state == "pending"
                {
                    d.state = "denied".into();
                    d.decided_ms = Some(entry.at_ms);
                }
            }
            LogEvent::DisclosureDelaySet {
                disclosure,
                visible_after_ms,
                ..
            } => {
                if let Some(d) = self.disclosures.get_mut(disclosure) {
                    d.visible_after_ms = *visible_after_ms;
                }
            }
            LogEvent::Attestation { kind, .. } if kind == STATE_CHECKED => {
                self.upgraded = true;
            }
            LogEvent::DisconnectApproval {
                mode,
                actor,
                reason,
                ..
            } => {
                self.disconnect_approvals
                    .insert(actor.clone(), (*mode, entry.at_ms, reason.clone()));
            }
            LogEvent::TrusteeDisconnected { approvers, reason } => {
                self.disconnect_approvals.clear();
                self.disconnected = Some(Disconnected {
                    index,
                    at_ms: entry.at_ms,
                    approvers: approvers.clone(),
                    reason: reason.clone(),
                });
            }
            LogEvent::TrusteeReconnected { .. } => {
                self.disconnect_approvals.clear();
                self.disconnected = None;
            }
            _ => {}
        }
    }

    /// The enrolment of `name` with exactly this role, tenant, key and expiry, if logged
    /// (by `actor`, if given).
    pub fn creation(
        &self,
        name: &str,
        role: Role,
        tenant: Option<&str>,
        public_key_hex: &str,
        expires_ms: Option<i64>,
        actor: Option<&str>,
    ) -> Option<&Created> {
        self.created.get(name)?.iter().find(|c| {
            c.role == role
                && c.tenant.as_deref() == tenant
                && c.public_key == public_key_hex
                && c.expires_ms == expires_ms
                && actor.is_none_or(|a| c.actor == a)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(event: LogEvent) -> LogEntry {
        LogEntry {
            event,
            at_ms: 1000,
            salt: "00".into(),
        }
    }

    #[test]
    fn bootstrap_ends_at_the_first_entry_by_someone_else() {
        let mut f = LogFacts::default();
        let created = |actor: &str, name: &str| {
            entry(LogEvent::PrincipalCreated {
                name: name.into(),
                role: Role::Officer,
                tenant: None,
                public_key: "AB".into(),
                expires_ms: None,
                actor: actor.into(),
            })
        };
        f.observe(0, &created("bootstrap", "o1"));
        f.observe(1, &created("bootstrap", "o2"));
        assert_eq!(f.bootstrap_end, None);
        f.observe(2, &created("o1", "o3"));
        f.observe(3, &created("bootstrap", "o4"));
        assert_eq!(f.bootstrap_end, Some(2));
        let c = f
            .creation("o2", Role::Officer, None, "ab", None, Some("bootstrap"))
            .unwrap();
        assert_eq!(c.index, 1);
        assert!(
            f.creation("o2", Role::Auditor, None, "ab", None, None)
                .is_none()
        );
        // seen again: ignored
        f.observe(1, &created("bootstrap", "o5"));
        assert!(!f.created.contains_key("o5"));
    }

    #[test]
    fn the_disconnect_state_is_the_last_change_the_log_recorded() {
        let mut f = LogFacts::default();
        let approval = |mode, by: &str| {
            entry(LogEvent::DisconnectApproval {
                mode,
                reason: None,
                statement: "{}".into(),
                signature: "c2ln".into(),
                actor: by.into(),
            })
        };
        f.observe(0, &approval(DisconnectMode::Disconnect, "o1"));
        assert_eq!(f.disconnected, None, "one approval changes nothing");
        assert_eq!(f.disconnect_approvals.len(), 1);
        f.observe(
            1,
            &entry(LogEvent::TrusteeDisconnected {
                approvers: vec!["o1".into(), "o2".into()],
                reason: Some("drill".into()),
            }),
        );
        assert_eq!(f.disconnected.as_ref().map(|d| d.index), Some(1));
        assert!(
            f.disconnect_approvals.is_empty(),
            "a change clears approvals"
        );
        f.observe(2, &approval(DisconnectMode::Reconnect, "o2"));
        assert!(f.disconnected.is_some());
        f.observe(
            3,
            &entry(LogEvent::TrusteeReconnected {
                approvers: vec!["o2".into(), "o3".into()],
            }),
        );
        assert_eq!(f.disconnected, None);
    }

    #[test]
    fn an_ended_grant_stays_ended() {
        let mut f = LogFacts::default();
        f.observe(
            0,
            &entry(LogEvent::GrantRevoked {
                grant: "g-1".into(),
                tenant: "t".into(),
                actor: "o1".into(),
            }),
        );
        f.observe(
            1,
            &entry(LogEvent::GrantDenied {
                grant: "g-1".into(),
                tenant: "t".into(),
                actor: "o2".into(),
                reason: None,
            }),
        );
        assert_eq!(f.grants_ended["g-1"], ("revoked".into(), "o1".into()));
    }

    #[test]
    fn a_grants_need_for_its_tenants_approval_is_what_its_request_recorded() {
        let requested = |grant: &str, customer_approval| {
            entry(LogEvent::GrantRequested {
                grant: grant.into(),
                tenant: "t".into(),
                bucket: "b".into(),
                prefix: String::new(),
                ops: vec!["read".into()],
                duration_ms: 1,
                reason: "r".into(),
                customer_approval,
                actor: "op".into(),
            })
        };
        let mut f = LogFacts::default();
        f.observe(0, &requested("g-1", CustomerApproval::Required));
        f.observe(1, &requested("g-2", CustomerApproval::Optional));
        // a later entry under the same id changes nothing
        f.observe(2, &requested("g-1", CustomerApproval::Optional));
        assert!(f.grants_need_tenant["g-1"]);
        assert!(!f.grants_need_tenant["g-2"]);
        assert!(!f.grants_need_tenant.contains_key("g-3"));
    }
}
