//! Residency reports: per bucket, where its objects' replicas are, how many are short of their
//! policy or outside it, and (verified) whether each replica is intact; and the check that a
//! narrower policy would leave no replica outside it.
//!
//! A report names buckets, counts and sites, never objects; the admin API has the trustee
//! attest it. Verification checks ciphertext against its recorded CRC32C, with no key.

use crate::MaintenanceError;
use crate::policy::residency_policy;
use crate::repair::{Maintenance, PAGE, now_ms};
use crate::replica::{ReplicaProblem, verify_replica};
use obhut_catalog::{Catalog, CatalogError, ObjectPages};
use obhut_core::SiteInfo;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

impl Maintenance {
    /// Per bucket: objects by site set, under-replicated objects, replicas outside the policy;
    /// with `verify`, every replica read and checked. Covers `tenant`, or every tenant.
    pub async fn residency_report(
        &self,
        tenant: Option<&str>,
        verify: bool,
    ) -> Result<Value, MaintenanceError> {
        let infos: HashMap<String, SiteInfo> = self
            .sites
            .infos()
            .into_iter()
            .map(|i| (i.id.clone(), i))
            .collect();
        let tenants = self.catalog.list_tenants().await?;
        let mut report_tenants = Vec::new();
        for t in tenants {
            if tenant.is_some_and(|name| name != t.name) {
                continue;
            }
            let owned = self.policies.tenant_residency(&t.name).await?;
            let mut buckets = Vec::new();
            for b in self.catalog.list_buckets(&t.name).await? {
                let policy =
                    residency_policy(self.catalog.as_ref(), self.policies.as_ref(), &t, &b.name)
                        .await?;
                let mut by_sites: BTreeMap<String, u64> = BTreeMap::new();
                let (mut objects, mut under, mut outside) = (0u64, 0u64, 0u64);
                let (mut checked, mut missing, mut corrupt, mut unreachable) =
                    (0u64, 0u64, 0u64, 0u64);
                let mut outside_sites: BTreeMap<String, u64> = BTreeMap::new();
                let mut pages = ObjectPages::new(self.catalog.as_ref(), &b.name, PAGE);
                while let Some(page) = pages.next_page().await? {
                    for o in &page {
                        objects += 1;
                        let mut sites = o.sites.clone();
                        sites.sort();
                        *by_sites.entry(sites.join(",")).or_default() += 1;
                        if o.sites.len() < policy.min_sites {
                            under += 1;
                        }
                        let bad: Vec<&String> = o
                            .sites
                            .iter()
                            .filter(|id| {
                                infos
                                    .get(*id)
                                    .is_none_or(|i| !policy.jurisdictions.contains(&i.jurisdiction))
                            })
                            .collect();
                        if !bad.is_empty() {
                            outside += 1;
                            for id in bad {
                                *outside_sites.entry(id.clone()).or_default() += 1;
                            }
                        }
                        if verify {
                            for chunk in &o.chunks {
                                for id in &o.sites {
                                    checked += 1;
                                    let Some(site) = self.sites.get(id) else {
                                        unreachable += 1;
                                        continue;
                                    };
                                    match verify_replica(&site, chunk).await {
                                        Ok(_) => {}
                                        Err(ReplicaProblem::Missing) => missing += 1,
                                        Err(ReplicaProblem::Corrupt(_)) => corrupt += 1,
                                        Err(ReplicaProblem::Unreachable(_)) => unreachable += 1,
                                    }
                                }
                            }
                        }
                    }
                }
                let mut entry = json!({
                    "bucket": b.name,
                    "policy": {"jurisdictions": policy.jurisdictions, "min_sites": policy.min_sites,
                               "degraded_writes": if policy.degraded_writes {"accept"} else {"refuse"}},
                    "objects": objects,
                    "objects_by_sites": by_sites,
                    "under_replicated": under,
                    "outside_policy": outside,
                    "outside_policy_sites": outside_sites,
                });
                if verify {
                    entry["verified"] = json!({"replicas_checked": checked, "missing": missing,
                                               "corrupt": corrupt, "unreachable": unreachable});
                }
                buckets.push(entry);
            }
            report_tenants.push(json!({
                "tenant": t.name,
                "jurisdictions": owned.jurisdictions,
                "buckets": buckets,
            }));
        }
        let sites: Vec<Value> = {
            let mut v: Vec<&SiteInfo> = infos.values().collect();
            v.sort_by(|a, b| a.id.cmp(&b.id));
            v.iter()
                .map(|i| json!({"id": i.id, "jurisdiction": i.jurisdiction, "state": i.state.as_str()}))
                .collect()
        };
        Ok(json!({
            "generated_ms": now_ms(),
            "verified": verify,
            "sites": sites,
            "tenants": report_tenants,
        }))
    }
}

/// Whether objects of `catalog` would have replicas outside `allowed` (for `tenant`, or only
/// in `bucket`): returns the buckets affected with their object counts.
pub async fn replicas_outside(
    catalog: &dyn Catalog,
    sites: &[SiteInfo],
    tenant: &str,
    bucket: Option<&str>,
    allowed: &[String],
) -> Result<Vec<(String, u64)>, CatalogError> {
    let jurisdiction: HashMap<&str, &str> = sites
        .iter()
        .map(|s| (s.id.as_str(), s.jurisdiction.as_str()))
        .collect();
    let mut affected = Vec::new();
    for b in catalog.list_buckets(tenant).await? {
        if bucket.is_some_and(|name| name != b.name) {
            continue;
        }
        let mut count = 0u64;
        let mut pages = ObjectPages::new(catalog, &b.name, PAGE);
        while let Some(page) = pages.next_page().await? {
            count += page
                .iter()
                .filter(|o| {
                    o.sites.iter().any(|id| {
                        jurisdiction
                            .get(id.as_str())
                            .is_none_or(|j| !allowed.iter().any(|a| a == j))
                    })
                })
                .count() as u64;
        }
        if count > 0 {
            affected.push((b.name, count));
        }
    }
    Ok(affected)
}
