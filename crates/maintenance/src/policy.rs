//! The residency policy in effect for a bucket, and the catalog's copy of residency policies.
//!
//! The trustee owns every tenant's and bucket's residency policy: each change is a signed
//! statement it logs. Placement of new objects, repair and residency reports get the policy
//! from a [`PolicySource`] (the trustee, through obhut-gateway's cache); the catalog's copy
//! (the tenant row's jurisdictions and `min_sites`, and the rules under [`PolicyScope`]) is
//! a projection of the trustee's records. [`project`] rewrites it from them (at start-up and
//! after each change), and every use compares it with them: a copy that differs is reported
//! (tenant and bucket names only) and rewritten, never used, so editing the catalog can
//! neither widen nor narrow where data goes (docs/residency.md, "Who owns the policy").
//!
//! It never decides a policy on its own, and never reaches the trustee except through
//! [`PolicySource`].

use async_trait::async_trait;
use obhut_catalog::{Catalog, CatalogError, ResidencyRule, Tenant};
pub use obhut_core::Policy;
use obhut_core::{BucketNarrowing, PolicyScope, TenantResidency};
use thiserror::Error;

/// Why the policy in effect could not be had.
#[derive(Debug, Error)]
pub enum PolicyError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The owner of the policy (the trustee) did not answer with it: nothing is placed.
    #[error("the residency policy of tenant {tenant} cannot be had from the trustee: {reason}")]
    Unavailable { tenant: String, reason: String },
}

impl PolicyError {
    /// The error as the process log shows it: the tenant only as [`obhut_core::logged`]
    /// renders it.
    #[must_use]
    pub fn logged(&self) -> String {
        match self {
            Self::Catalog(e) => e.to_string(),
            Self::Unavailable { tenant, reason } => format!(
                "the residency policy of tenant {} cannot be had from the trustee: {reason}",
                obhut_core::logged(tenant)
            ),
        }
    }
}

/// Where the residency policies that decide come from: the trustee's records.
#[async_trait]
pub trait PolicySource: Send + Sync {
    /// The tenant's residency policy and its buckets' narrowings.
    async fn tenant_residency(&self, tenant: &str) -> Result<TenantResidency, PolicyError>;
    /// Forgets what is cached of `tenant`'s policy (`None`: of every tenant).
    fn invalidate(&self, tenant: Option<&str>);
}

/// The residency policy in effect for new objects of `bucket`, owned by `tenant` (its catalog
/// row): the trustee's, whatever the catalog's copy says; a copy that differs is reported and
/// rewritten.
pub async fn residency_policy(
    catalog: &dyn Catalog,
    policies: &dyn PolicySource,
    tenant: &Tenant,
    bucket: &str,
) -> Result<Policy, PolicyError> {
    let mut owned = policies.tenant_residency(&tenant.name).await?;
    if reconcile(catalog, tenant, &owned, &[bucket], Mode::Compare).await? > 0 {
        // The cached record may be older than a change that was already projected: ask the
        // trustee again before reporting anything.
        policies.invalidate(Some(&tenant.name));
        owned = policies.tenant_residency(&tenant.name).await?;
        reconcile(catalog, tenant, &owned, &[bucket], Mode::Report).await?;
    }
    Ok(owned.effective(bucket))
}

/// After a change the trustee made: rewrites the catalog's copy of `tenant`'s policy, and of
/// each of its buckets', from the trustee's record. Returns how many copies were rewritten.
pub async fn project(
    catalog: &dyn Catalog,
    policies: &dyn PolicySource,
    tenant: &str,
) -> Result<usize, PolicyError> {
    project_tenant(catalog, policies, tenant, Mode::Quiet).await
}

/// At start-up: [`project`] for every tenant in the catalog, reporting each copy that
/// differed (a change the catalog missed, or an edit of the catalog).
pub async fn project_all(
    catalog: &dyn Catalog,
    policies: &dyn PolicySource,
) -> Result<usize, PolicyError> {
    let mut rewritten = 0;
    for t in catalog.list_tenants().await? {
        rewritten += project_tenant(catalog, policies, &t.name, Mode::Report).await?;
    }
    Ok(rewritten)
}

async fn project_tenant(
    catalog: &dyn Catalog,
    policies: &dyn PolicySource,
    tenant: &str,
    mode: Mode,
) -> Result<usize, PolicyError> {
    let Some(row) = catalog.get_tenant(tenant).await? else {
        return Ok(0);
    };
    let owned = policies.tenant_residency(tenant).await?;
    let buckets: Vec<String> = catalog
        .list_buckets(tenant)
        .await?
        .into_iter()
        .map(|b| b.name)
        .collect();
    let names: Vec<&str> = buckets.iter().map(String::as_str).collect();
    reconcile(catalog, &row, &owned, &names, mode).await
}

/// What [`reconcile`] does with a copy that differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Counts it only.
    Compare,
    /// Rewrites it (after a change: the difference is the change).
    Quiet,
    /// Reports and rewrites it.
    Report,
}

/// Compares the catalog's copies (the tenant `row`, its rule, and `buckets`' rules) with the
/// trustee's record `owned`; returns how many differ, handling each as `mode` says.
async fn reconcile(
    catalog: &dyn Catalog,
    row: &Tenant,
    owned: &TenantResidency,
    buckets: &[&str],
    mode: Mode,
) -> Result<usize, PolicyError> {
    let report = |bucket: Option<&str>, fields: &[&str]| {
        if mode == Mode::Report {
            report(&row.name, bucket, fields);
        }
    };
    let rewrite = mode != Mode::Compare;
    let mut rewritten = 0;
    let mut differs = Vec::new();
    if row.jurisdictions != owned.jurisdictions {
        differs.push("jurisdictions");
    }
    if row.min_sites != owned.min_sites {
        differs.push("min_sites");
    }
    if !differs.is_empty() {
        report(None, &differs);
        if rewrite {
            catalog
                .update_tenant_residency(&row.name, &owned.jurisdictions, owned.min_sites)
                .await?;
        }
        rewritten += 1;
    }
    let scope = PolicyScope::Tenant(row.name.clone());
    let rule = catalog.get_rule(&scope).await?.unwrap_or_default();
    if rule.degraded_writes.unwrap_or(false) != owned.degraded_writes
        || rule.jurisdictions.is_some()
        || rule.min_sites.is_some()
    {
        report(None, &["degraded_writes"]);
        let projected = ResidencyRule {
            degraded_writes: Some(owned.degraded_writes),
            ..ResidencyRule::default()
        };
        if rewrite {
            catalog.put_rule(&scope, &projected).await?;
        }
        rewritten += 1;
    }
    for bucket in buckets {
        let scope = PolicyScope::Bucket((*bucket).to_owned());
        let rule = catalog.get_rule(&scope).await?.unwrap_or_default();
        let copy = BucketNarrowing {
            jurisdictions: rule.jurisdictions.clone(),
            min_sites: rule.min_sites,
        };
        let record = owned.buckets.get(*bucket).cloned().unwrap_or_default();
        let mut differs = Vec::new();
        if copy.jurisdictions != record.jurisdictions {
            differs.push("jurisdictions");
        }
        if copy.min_sites != record.min_sites {
            differs.push("min_sites");
        }
        if rule.degraded_writes.is_some() {
            differs.push("degraded_writes");
        }
        if !differs.is_empty() {
            report(Some(bucket), &differs);
            if rewrite {
                catalog
                    .put_rule(
                        &scope,
                        &ResidencyRule {
                            jurisdictions: record.jurisdictions,
                            min_sites: record.min_sites,
                            degraded_writes: None,
                        },
                    )
                    .await?;
            }
            rewritten += 1;
        }
    }
    Ok(rewritten)
}

/// One error line per copy that differs: which tenant and bucket (as the log shows names,
/// [`obhut_core::logged`]), and which fields; never the values (the trustee's log has those).
fn report(tenant: &str, bucket: Option<&str>, fields: &[&str]) {
    tracing::error!(
        tenant = %obhut_core::logged(tenant),
        bucket = %bucket.map_or_else(|| "-".to_owned(), |b| obhut_core::logged(b).to_string()),
        fields = %fields.join(","),
        "the catalog's copy of a residency policy differs from the trustee's record: the trustee's is used and the copy rewritten"
    );
}

/// A policy source answering every tenant with one record, as tests set it.
#[cfg(test)]
pub(crate) struct Fixed(pub(crate) std::sync::Mutex<TenantResidency>);

#[cfg(test)]
#[async_trait]
impl PolicySource for Fixed {
    async fn tenant_residency(&self, tenant: &str) -> Result<TenantResidency, PolicyError> {
        let mut r = self
            .0
            .lock()
            .map_err(|_| PolicyError::Unavailable {
                tenant: tenant.to_owned(),
                reason: "poisoned".into(),
            })?
            .clone();
        tenant.clone_into(&mut r.tenant);
        Ok(r)
    }
    fn invalidate(&self, _tenant: Option<&str>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use obhut_catalog::{Bucket, BucketKey, SqliteCatalog};
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    fn acme() -> TenantResidency {
        TenantResidency {
            tenant: "acme".into(),
            jurisdictions: vec!["DE".into()],
            min_sites: 2,
            degraded_writes: false,
            buckets: BTreeMap::from([(
                "narrow".to_owned(),
                BucketNarrowing {
                    jurisdictions: None,
                    min_sites: Some(3),
                },
            )]),
        }
    }

    async fn catalog() -> SqliteCatalog {
        let cat = SqliteCatalog::in_memory().unwrap();
        cat.create_tenant(&Tenant {
            name: "acme".into(),
            jurisdictions: vec!["DE".into()],
            min_sites: 2,
            created_ms: 0,
        })
        .await
        .unwrap();
        for name in ["narrow", "plain"] {
            cat.create_bucket(
                &Bucket {
                    name: name.into(),
                    tenant: "acme".into(),
                    created_ms: 0,
                    versioning: Default::default(),
                },
                &BucketKey {
                    bucket: name.into(),
                    version: 1,
                    wrapped: vec![1],
                    kcv: vec![2],
                    created_ms: 0,
                },
            )
            .await
            .unwrap();
        }
        cat
    }

    #[tokio::test]
    async fn a_widened_catalog_copy_is_not_used_and_is_rewritten() {
        let cat = catalog().await;
        let source = Fixed(Mutex::new(acme()));
        assert_eq!(project(&cat, &source, "acme").await.unwrap(), 1);
        // The provider edits the catalog: a wider tenant, a bucket rule lifted, degraded
        // writes accepted.
        cat.update_tenant_residency("acme", &["DE".into(), "US".into()], 1)
            .await
            .unwrap();
        cat.put_rule(
            &PolicyScope::Bucket("narrow".into()),
            &ResidencyRule::default(),
        )
        .await
        .unwrap();
        cat.put_rule(
            &PolicyScope::Tenant("acme".into()),
            &ResidencyRule {
                degraded_writes: Some(true),
                ..ResidencyRule::default()
            },
        )
        .await
        .unwrap();
        let row = cat.get_tenant("acme").await.unwrap().unwrap();
        let p = residency_policy(&cat, &source, &row, "narrow")
            .await
            .unwrap();
        assert_eq!(
            p,
            Policy {
                jurisdictions: vec!["DE".into()],
                min_sites: 3,
                degraded_writes: false,
            }
        );
        // The copy is the trustee's again, so the next use finds nothing to rewrite.
        let row = cat.get_tenant("acme").await.unwrap().unwrap();
        assert_eq!(
            (row.jurisdictions.clone(), row.min_sites),
            (vec!["DE".into()], 2)
        );
        assert_eq!(
            reconcile(&cat, &row, &acme(), &["narrow"], Mode::Report)
                .await
                .unwrap(),
            0
        );
    }

    #[tokio::test]
    async fn a_narrowed_catalog_copy_is_not_used_either() {
        let cat = catalog().await;
        let mut wide = acme();
        wide.jurisdictions = vec!["DE".into(), "AT".into()];
        let source = Fixed(Mutex::new(wide));
        project(&cat, &source, "acme").await.unwrap();
        cat.put_rule(
            &PolicyScope::Bucket("plain".into()),
            &ResidencyRule {
                jurisdictions: Some(vec!["AT".into()]),
                min_sites: Some(4),
                degraded_writes: None,
            },
        )
        .await
        .unwrap();
        let row = cat.get_tenant("acme").await.unwrap().unwrap();
        let p = residency_policy(&cat, &source, &row, "plain")
            .await
            .unwrap();
        assert_eq!(p.jurisdictions, vec!["DE".to_owned(), "AT".to_owned()]);
        assert_eq!(p.min_sites, 2);
        assert_eq!(
            cat.get_rule(&PolicyScope::Bucket("plain".into()))
                .await
                .unwrap()
                .unwrap_or_default(),
            ResidencyRule::default()
        );
    }
}
