//! Residency reports: per bucket, where its objects' replicas are, how many are short of their
//! policy or outside it, and (verified) whether each replica is intact; and the check that a
//! narrower policy would leave no replica outside it.
//!
//! A report names buckets, counts and sites, never objects; the admin API has the trustee
//! attest it. Verification checks ciphertext against its recorded CRC32C, with no key.
//!
//! The report's types are what `GET /v1/residency` carries (as text, with its digest) and the
//! CLI reads. Their fields are in alphabetical order, the order the report was written in
//! before it was typed (a `serde_json::Value` sorts its keys): keep it, so that the same data
//! gives the same bytes, and so the same digest.

use crate::MaintenanceError;
use crate::policy::residency_policy;
use crate::repair::{Maintenance, PAGE, now_ms};
use crate::replica::{ReplicaProblem, verify_replica};
use obhut_catalog::{Catalog, CatalogError, VersionPages};
use obhut_core::{SiteInfo, SiteState};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// A residency report: every site, and per tenant and bucket where the replicas are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResidencyReport {
    /// When it was computed (milliseconds since the epoch).
    pub generated_ms: i64,
    /// Which page of a tenant's buckets this report covers; none in a report of all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<ReportPage>,
    pub sites: Vec<ReportSite>,
    pub tenants: Vec<TenantResidency>,
    /// Whether every replica was read and checked.
    pub verified: bool,
}

/// The page of a tenant's buckets a report covers: those in name order after `after`, at
/// most `limit`; `next` is the last one covered when more may follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportPage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    pub limit: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Where all of a tenant's objects are, counted by the catalog (not a signed report): objects
/// (versions, delete markers left out) per set of sites, with the sites and the tenant's own
/// policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResidencyTotals {
    /// The tenant's own policy (a bucket's may be narrower).
    pub jurisdictions: Vec<String>,
    pub objects: u64,
    /// Objects per set of sites (the site ids sorted and joined with `,`).
    pub objects_by_sites: BTreeMap<String, u64>,
    pub sites: Vec<ReportSite>,
    pub tenant: String,
}

/// A site as a report names it (no backend, no secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportSite {
    pub id: String,
    pub jurisdiction: String,
    pub state: SiteState,
}

/// One tenant's buckets in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantResidency {
    pub buckets: Vec<BucketResidency>,
    /// The tenant's own policy (a bucket's may be narrower).
    pub jurisdictions: Vec<String>,
    /// Only in verified reports: the versions object lock holds, by the trustee's own list,
    /// checked to be in the catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_versions: Option<LockedCheck>,
    pub tenant: String,
}

/// What checking the trustee's list of locked versions against the catalog found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedCheck {
    pub checked: u64,
    /// Locked versions the catalog no longer has (removed by an edit of the catalog).
    pub missing: u64,
    /// Per bucket, how many are missing.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub missing_by_bucket: BTreeMap<String, u64>,
}

/// Where one bucket's objects are: counts, never names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketResidency {
    pub bucket: String,
    pub objects: u64,
    /// Objects per set of sites (the site ids sorted and joined with `,`).
    pub objects_by_sites: BTreeMap<String, u64>,
    /// Objects with a replica on a site outside the policy (or on a site no longer known).
    pub outside_policy: u64,
    /// Per such site, how many objects have a replica there.
    pub outside_policy_sites: BTreeMap<String, u64>,
    pub policy: ReportPolicy,
    /// Objects on fewer sites than the policy's `min_sites`.
    pub under_replicated: u64,
    /// Only in verified reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<ReplicaCheck>,
}

/// The residency policy in effect for a bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportPolicy {
    /// `accept` or `refuse`.
    pub degraded_writes: String,
    pub jurisdictions: Vec<String>,
    pub min_sites: usize,
}

/// What reading every replica of a bucket found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaCheck {
    pub corrupt: u64,
    pub missing: u64,
    pub replicas_checked: u64,
    pub unreachable: u64,
}

impl Maintenance {
    /// Per bucket: objects by site set, under-replicated objects, replicas outside the policy;
    /// with `verify`, every replica read and checked. Covers `tenant`, or every tenant. The
    /// buckets are read a page at a time; the report holds one entry (counts) per bucket.
    pub async fn residency_report(
        &self,
        tenant: Option<&str>,
        verify: bool,
    ) -> Result<ResidencyReport, MaintenanceError> {
        let infos = self.site_infos();
        let tenants = self.catalog.list_tenants().await?;
        let mut report_tenants = Vec::new();
        for t in tenants {
            if tenant.is_some_and(|name| name != t.name) {
                continue;
            }
            let owned = self.policies.tenant_residency(&t.name).await?;
            let mut buckets = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = self
                    .catalog
                    .list_buckets_page(&t.name, after.as_deref(), PAGE)
                    .await?;
                for b in &page {
                    buckets.push(self.bucket_residency(&t, b, &infos, verify).await?);
                }
                match page.last() {
                    Some(last) if page.len() == PAGE => after = Some(last.name.clone()),
                    _ => break,
                }
            }
            report_tenants.push(TenantResidency {
                buckets,
                jurisdictions: owned.jurisdictions,
                locked_versions: None,
                tenant: t.name,
            });
        }
        Ok(ResidencyReport {
            generated_ms: now_ms(),
            page: None,
            sites: report_sites(infos),
            tenants: report_tenants,
            verified: verify,
        })
    }

    /// One page of `tenant`'s report: at most `limit` of its buckets in name order, after
    /// `after` if given. The report says which page it is (its `page`, with the bucket the next
    /// page starts after, if there may be more).
    pub async fn residency_report_page(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
        verify: bool,
    ) -> Result<ResidencyReport, MaintenanceError> {
        let limit = limit.max(1);
        let infos = self.site_infos();
        let t = self
            .catalog
            .get_tenant(tenant)
            .await?
            .ok_or_else(|| CatalogError::NotFound {
                kind: "tenant",
                name: tenant.to_owned(),
            })?;
        let owned = self.policies.tenant_residency(&t.name).await?;
        // One more than asked for tells whether a next page exists.
        let mut page = self
            .catalog
            .list_buckets_page(&t.name, after, limit + 1)
            .await?;
        let more = page.len() > limit;
        page.truncate(limit);
        let mut buckets = Vec::with_capacity(page.len());
        for b in &page {
            buckets.push(self.bucket_residency(&t, b, &infos, verify).await?);
        }
        let next = if more {
            page.last().map(|b| b.name.clone())
        } else {
            None
        };
        Ok(ResidencyReport {
            generated_ms: now_ms(),
            page: Some(ReportPage {
                after: after.map(str::to_owned),
                limit,
                next,
            }),
            sites: report_sites(infos),
            tenants: vec![TenantResidency {
                buckets,
                jurisdictions: owned.jurisdictions,
                locked_versions: None,
                tenant: t.name,
            }],
            verified: verify,
        })
    }

    /// Where all of `tenant`'s objects are, per set of sites, from one aggregate query of the
    /// catalog (no bucket or record is loaded), with the sites and the tenant's own policy.
    pub async fn residency_totals(
        &self,
        tenant: &str,
    ) -> Result<ResidencyTotals, MaintenanceError> {
        let infos = self.site_infos();
        let owned = self.policies.tenant_residency(tenant).await?;
        let mut objects_by_sites: BTreeMap<String, u64> = BTreeMap::new();
        for (set, n) in self.catalog.tenant_objects_by_sites(tenant).await? {
            let mut sites: Vec<String> = serde_json::from_str(&set).map_err(|e| {
                CatalogError::Storage(format!("a record's sites are not a list: {e}"))
            })?;
            sites.sort();
            *objects_by_sites.entry(sites.join(",")).or_default() += n;
        }
        let objects = objects_by_sites.values().sum();
        Ok(ResidencyTotals {
            jurisdictions: owned.jurisdictions,
            objects,
            objects_by_sites,
            sites: report_sites(infos),
            tenant: tenant.to_owned(),
        })
    }

    fn site_infos(&self) -> HashMap<String, SiteInfo> {
        self.sites
            .infos()
            .into_iter()
            .map(|i| (i.id.clone(), i))
            .collect()
    }

    /// One bucket's entry in a report: its versions walked a page at a time.
    async fn bucket_residency(
        &self,
        t: &obhut_catalog::Tenant,
        b: &obhut_catalog::Bucket,
        infos: &HashMap<String, SiteInfo>,
        verify: bool,
    ) -> Result<BucketResidency, MaintenanceError> {
        let policy =
            residency_policy(self.catalog.as_ref(), self.policies.as_ref(), t, &b.name).await?;
        let mut by_sites: BTreeMap<String, u64> = BTreeMap::new();
        let (mut objects, mut under, mut outside) = (0u64, 0u64, 0u64);
        let (mut checked, mut missing, mut corrupt, mut unreachable) = (0u64, 0u64, 0u64, 0u64);
        let mut outside_sites: BTreeMap<String, u64> = BTreeMap::new();
        let mut pages = VersionPages::new(self.catalog.as_ref(), b, PAGE);
        while let Some(page) = pages.next_objects().await? {
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
        Ok(BucketResidency {
            bucket: b.name.clone(),
            objects,
            objects_by_sites: by_sites,
            outside_policy: outside,
            outside_policy_sites: outside_sites,
            policy: ReportPolicy {
                degraded_writes: if policy.degraded_writes {
                    "accept"
                } else {
                    "refuse"
                }
                .to_owned(),
                jurisdictions: policy.jurisdictions,
                min_sites: policy.min_sites,
            },
            under_replicated: under,
            verified: verify.then_some(ReplicaCheck {
                corrupt,
                missing,
                replicas_checked: checked,
                unreachable,
            }),
        })
    }
}

/// The sites of a report, by id.
fn report_sites(infos: HashMap<String, SiteInfo>) -> Vec<ReportSite> {
    let mut sites: Vec<ReportSite> = infos
        .into_values()
        .map(|i| ReportSite {
            id: i.id,
            jurisdiction: i.jurisdiction,
            state: i.state,
        })
        .collect();
    sites.sort_by(|a, b| a.id.cmp(&b.id));
    sites
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
        let mut pages = VersionPages::new(catalog, &b, PAGE);
        while let Some(page) = pages.next_objects().await? {
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

/// Whether unfinished multipart uploads of `tenant` (or only of `bucket`) hold parts outside
/// `allowed`, or were placed outside it: returns the buckets affected with their upload counts.
/// Completing such an upload would make an object outside `allowed`, so a narrower policy is
/// refused while they exist (docs/residency.md, "Changing a policy").
pub async fn uploads_outside(
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
    // A part on a site the registry does not know is outside; a placement naming a site
    // since removed (drained first) only names one that is gone.
    let outside = |ids: &[String], unknown_is_outside: bool| {
        ids.iter().any(|id| match jurisdiction.get(id.as_str()) {
            Some(j) => !allowed.iter().any(|a| a == j),
            None => unknown_is_outside,
        })
    };
    let mut affected = Vec::new();
    for b in catalog.list_buckets(tenant).await? {
        if bucket.is_some_and(|name| name != b.name) {
            continue;
        }
        let mut count = 0u64;
        let mut after: Option<(String, String)> = None;
        loop {
            let uploads = match catalog
                .list_uploads(
                    &b,
                    "",
                    after.as_ref().map(|(k, u)| (k.as_str(), u.as_str())),
                    PAGE,
                )
                .await
            {
                // Deleted meanwhile: its uploads went with it.
                Err(e) if e.is_bucket_gone() => Vec::new(),
                other => other?,
            };
            for upload in &uploads {
                if outside(&upload.sites, false) {
                    count += 1;
                    continue;
                }
                let mut after_part = 0;
                loop {
                    let parts = catalog
                        .list_parts(&upload.upload_id, after_part, PAGE)
                        .await?;
                    if parts.iter().any(|p| outside(&p.sites, true)) {
                        count += 1;
                        break;
                    }
                    match parts.last() {
                        Some(last) if parts.len() == PAGE => after_part = last.part_number,
                        _ => break,
                    }
                }
            }
            match uploads.last() {
                Some(last) if uploads.len() == PAGE => {
                    after = Some((last.key.clone(), last.upload_id.clone()));
                }
                _ => break,
            }
        }
        if count > 0 {
            affected.push((b.name, count));
        }
    }
    Ok(affected)
}

#[cfg(test)]
mod tests {
    use super::{
        BucketResidency, ReplicaCheck, ReportPolicy, ReportSite, ResidencyReport, TenantResidency,
    };
    use obhut_core::SiteState;
    use serde_json::json;
    use std::collections::BTreeMap;

    /// The report as the admin API wrote it before it was typed (`json!`, keys sorted), for
    /// the same data.
    fn untyped(verify: bool) -> serde_json::Value {
        let by_sites = BTreeMap::from([("de-fra,de-mgd".to_owned(), 3u64), ("x".to_owned(), 1)]);
        let outside_sites = BTreeMap::from([("x".to_owned(), 1u64)]);
        let policy_j = vec!["DE".to_owned()];
        let mut entry = json!({
            "bucket": "b1",
            "policy": {"jurisdictions": policy_j, "min_sites": 2usize,
                       "degraded_writes": if verify {"accept"} else {"refuse"}},
            "objects": 4u64,
            "objects_by_sites": by_sites,
            "under_replicated": 1u64,
            "outside_policy": 1u64,
            "outside_policy_sites": outside_sites,
        });
        if verify {
            entry["verified"] = json!({"replicas_checked": 8u64, "missing": 1u64,
                                       "corrupt": 2u64, "unreachable": 3u64});
        }
        let tenants = vec![
            json!({"tenant": "demo", "jurisdictions": ["DE", "AT"], "buckets": [entry]}),
            json!({"tenant": "empty", "jurisdictions": ["DE"], "buckets": []}),
        ];
        let sites = vec![
            json!({"id": "de-fra", "jurisdiction": "DE", "state": SiteState::Active.as_str()}),
            json!({"id": "x", "jurisdiction": "FR", "state": SiteState::Draining.as_str()}),
        ];
        json!({
            "generated_ms": 1_700_000_000_123i64,
            "verified": verify,
            "sites": sites,
            "tenants": tenants,
        })
    }

    fn typed(verify: bool) -> ResidencyReport {
        ResidencyReport {
            generated_ms: 1_700_000_000_123,
            page: None,
            sites: vec![
                ReportSite {
                    id: "de-fra".into(),
                    jurisdiction: "DE".into(),
                    state: SiteState::Active,
                },
                ReportSite {
                    id: "x".into(),
                    jurisdiction: "FR".into(),
                    state: SiteState::Draining,
                },
            ],
            tenants: vec![
                TenantResidency {
                    buckets: vec![BucketResidency {
                        bucket: "b1".into(),
                        objects: 4,
                        objects_by_sites: BTreeMap::from([
                            ("de-fra,de-mgd".to_owned(), 3),
                            ("x".to_owned(), 1),
                        ]),
                        outside_policy: 1,
                        outside_policy_sites: BTreeMap::from([("x".to_owned(), 1)]),
                        policy: ReportPolicy {
                            degraded_writes: if verify { "accept" } else { "refuse" }.into(),
                            jurisdictions: vec!["DE".into()],
                            min_sites: 2,
                        },
                        under_replicated: 1,
                        verified: verify.then_some(ReplicaCheck {
                            corrupt: 2,
                            missing: 1,
                            replicas_checked: 8,
                            unreachable: 3,
                        }),
                    }],
                    jurisdictions: vec!["DE".into(), "AT".into()],
                    locked_versions: None,
                    tenant: "demo".into(),
                },
                TenantResidency {
                    buckets: vec![],
                    jurisdictions: vec!["DE".into()],
                    locked_versions: None,
                    tenant: "empty".into(),
                },
            ],
            verified: verify,
        }
    }

    #[test]
    fn the_typed_report_is_the_untyped_one_byte_for_byte() {
        for verify in [false, true] {
            let report = typed(verify);
            let bytes = serde_json::to_vec(&report).unwrap();
            // The digest the trustee attests is over these bytes: they must not change.
            assert_eq!(
                String::from_utf8(bytes.clone()).unwrap(),
                serde_json::to_string(&untyped(verify)).unwrap(),
                "verify={verify}"
            );
            let back: ResidencyReport = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(back, report);
        }
    }

    #[test]
    fn a_page_of_a_report_says_which_page_it_is_in_key_order() {
        let mut report = typed(false);
        report.page = Some(super::ReportPage {
            after: Some("a".into()),
            limit: 2,
            next: Some("b1".into()),
        });
        let text = serde_json::to_string(&report).unwrap();
        // A `Value` sorts its keys: the typed report writes them in the same order.
        let sorted: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(text, serde_json::to_string(&sorted).unwrap());
        assert!(
            text.contains(r#""page":{"after":"a","limit":2,"next":"b1"}"#),
            "{text}"
        );
        report.page = Some(super::ReportPage {
            after: None,
            limit: 2,
            next: None,
        });
        let text = serde_json::to_string(&report).unwrap();
        assert!(text.contains(r#""page":{"limit":2}"#), "{text}");
    }

    #[tokio::test]
    async fn unfinished_uploads_outside_a_narrower_policy_are_counted_per_bucket() {
        use obhut_catalog::{
            Bucket, BucketKey, Catalog, Chunk, Part, SqliteCatalog, Tenant, Upload,
        };
        use obhut_core::{BlobId, SiteInfo};
        let cat = SqliteCatalog::in_memory().unwrap();
        cat.create_tenant(&Tenant {
            name: "acme".into(),
            jurisdictions: vec!["DE".into(), "AT".into()],
            min_sites: 2,
            created_ms: 0,
        })
        .await
        .unwrap();
        cat.create_bucket(
            &Bucket {
                name: "b".into(),
                tenant: "acme".into(),
                created_ms: 0,
                versioning: Default::default(),
            },
            &BucketKey {
                bucket: "b".into(),
                version: 1,
                wrapped: vec![1],
                kcv: vec![2],
                created_ms: 0,
            },
        )
        .await
        .unwrap();
        let b = cat.get_bucket("b").await.unwrap().unwrap();
        let upload = |id: &str, sites: &[&str]| Upload {
            upload_id: id.into(),
            bucket: "b".into(),
            key: id.into(),
            initiated_ms: 0,
            envelope: Vec::new(),
            meta: Vec::new(),
            sites: sites.iter().map(|s| (*s).to_owned()).collect(),
        };
        // Placed in AT, no part yet; placed in DE with a part in AT; placed in DE on a site
        // removed since; placed and written in DE.
        cat.create_upload(&b, &upload("placed-at", &["at-vie", "de-fra"]))
            .await
            .unwrap();
        cat.create_upload(&b, &upload("part-at", &["de-fra", "de-mgd"]))
            .await
            .unwrap();
        cat.create_upload(&b, &upload("gone", &["de-old", "de-fra"]))
            .await
            .unwrap();
        cat.create_upload(&b, &upload("in-de", &["de-fra", "de-mgd"]))
            .await
            .unwrap();
        for (id, sites) in [
            ("part-at", ["at-vie", "de-fra"]),
            ("in-de", ["de-fra", "de-mgd"]),
        ] {
            cat.put_part(
                &b,
                &Part {
                    upload_id: id.into(),
                    part_number: 1,
                    chunk: Chunk {
                        blob: BlobId::parse(&"ab".repeat(16)).unwrap(),
                        size: 1,
                        part: 1,
                        crc32c: None,
                    },
                    etag: "e".into(),
                    checksums: Vec::new(),
                    sites: sites.iter().map(|s| (*s).to_owned()).collect(),
                    last_modified_ms: 0,
                },
            )
            .await
            .unwrap();
        }
        let site = |id: &str, j: &str| SiteInfo {
            id: id.into(),
            jurisdiction: j.into(),
            location: String::new(),
            state: SiteState::Active,
        };
        let sites = [
            site("at-vie", "AT"),
            site("de-fra", "DE"),
            site("de-mgd", "DE"),
        ];
        let de = ["DE".to_owned()];
        assert_eq!(
            super::uploads_outside(&cat, &sites, "acme", None, &de)
                .await
                .unwrap(),
            vec![("b".to_owned(), 2)]
        );
        let both = ["DE".to_owned(), "AT".to_owned()];
        assert!(
            super::uploads_outside(&cat, &sites, "acme", Some("b"), &both)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
