//! Residency policies as values: a tenant's policy with its buckets' narrowings
//! ([`TenantResidency`]), the policy in effect for one bucket ([`Policy`]), and the scope a
//! policy applies to ([`PolicyScope`]) with the one text encoding the catalog keys its copies
//! by.
//!
//! The trustee owns these policies (every change is in its log); this module only says what
//! they mean. It performs no I/O and never sees object data.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// What a residency rule applies to: a tenant, or one bucket (bucket names are global).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyScope {
    Tenant(String),
    Bucket(String),
}

impl PolicyScope {
    /// The text the catalog keys a rule by: `tenant:NAME` or `bucket:NAME`.
    #[must_use]
    pub fn encode(&self) -> String {
        self.to_string()
    }

    /// The scope `encode` wrote, or `None` for any other text.
    #[must_use]
    pub fn decode(text: &str) -> Option<Self> {
        match text.split_once(':') {
            Some(("tenant", name)) if !name.is_empty() => Some(Self::Tenant(name.to_owned())),
            Some(("bucket", name)) if !name.is_empty() => Some(Self::Bucket(name.to_owned())),
            _ => None,
        }
    }
}

impl fmt::Display for PolicyScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tenant(name) => write!(f, "tenant:{name}"),
            Self::Bucket(name) => write!(f, "bucket:{name}"),
        }
    }
}

/// A bucket's narrowing of its tenant's policy, as its tenant's admin set it (`None`: as the
/// tenant's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketNarrowing {
    pub jurisdictions: Option<Vec<String>>,
    pub min_sites: Option<u32>,
}

impl BucketNarrowing {
    /// Whether it narrows nothing (the same as no rule).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.jurisdictions.is_none() && self.min_sites.is_none()
    }
}

/// A tenant's residency policy and its buckets' narrowings, as the trustee holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantResidency {
    pub tenant: String,
    /// Jurisdictions where the tenant's bytes may live.
    pub jurisdictions: Vec<String>,
    pub min_sites: u32,
    /// With fewer than `min_sites` sites available: accept writes on those there are.
    pub degraded_writes: bool,
    /// Buckets whose policy the tenant's admin narrowed (buckets not named: as the tenant's).
    #[serde(default)]
    pub buckets: BTreeMap<String, BucketNarrowing>,
}

impl TenantResidency {
    /// The policy in effect for new objects of `bucket`: the tenant's, narrowed by the
    /// bucket's rule (fewer jurisdictions, more sites; never wider).
    #[must_use]
    pub fn effective(&self, bucket: &str) -> Policy {
        let narrowing = self.buckets.get(bucket).cloned().unwrap_or_default();
        let jurisdictions = match &narrowing.jurisdictions {
            Some(narrow) => self
                .jurisdictions
                .iter()
                .filter(|j| narrow.contains(j))
                .cloned()
                .collect(),
            None => self.jurisdictions.clone(),
        };
        let min_sites = self.min_sites.max(narrowing.min_sites.unwrap_or(0)).max(1);
        Policy {
            jurisdictions,
            min_sites: usize::try_from(min_sites).unwrap_or(usize::MAX),
            degraded_writes: self.degraded_writes,
        }
    }
}

/// A bucket's residency policy in effect: its tenant's, narrowed by the bucket's own rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub jurisdictions: Vec<String>,
    pub min_sites: usize,
    pub degraded_writes: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acme() -> TenantResidency {
        TenantResidency {
            tenant: "acme".into(),
            jurisdictions: vec!["DE".into(), "AT".into()],
            min_sites: 2,
            degraded_writes: true,
            buckets: BTreeMap::from([(
                "narrow".to_owned(),
                BucketNarrowing {
                    jurisdictions: Some(vec!["AT".into(), "US".into()]),
                    min_sites: Some(3),
                },
            )]),
        }
    }

    #[test]
    fn scopes_encode_as_the_catalog_keys_them_and_decode_back() {
        for (scope, text) in [
            (PolicyScope::Tenant("acme".into()), "tenant:acme"),
            (PolicyScope::Bucket("photos".into()), "bucket:photos"),
        ] {
            assert_eq!(scope.encode(), text);
            assert_eq!(PolicyScope::decode(text), Some(scope));
        }
        for bad in ["acme", "tenant:", "object:x", ":x", ""] {
            assert_eq!(PolicyScope::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_bucket_rule_only_narrows() {
        let t = acme();
        let p = t.effective("narrow");
        // US is not the tenant's, so naming it in the bucket's rule does not add it.
        assert_eq!(p.jurisdictions, vec!["AT".to_owned()]);
        assert_eq!(p.min_sites, 3);
        assert!(p.degraded_writes);
        let other = t.effective("other");
        assert_eq!(other.jurisdictions, t.jurisdictions);
        assert_eq!(other.min_sites, 2);
    }

    #[test]
    fn a_narrowing_cannot_lower_min_sites_below_one_or_the_tenants() {
        let mut t = acme();
        t.min_sites = 0;
        t.buckets.clear();
        assert_eq!(t.effective("x").min_sites, 1);
        t.min_sites = 2;
        t.buckets.insert(
            "x".into(),
            BucketNarrowing {
                jurisdictions: None,
                min_sites: Some(1),
            },
        );
        assert_eq!(t.effective("x").min_sites, 2);
    }
}
