//! Quotas: a tenant's (set by officers) and its buckets' (set by the tenant's admin, within the
//! tenant's), with what each holds; and their sums for the metrics.
//!
//! Who may do what: an officer sets and reads a tenant's quota and usage; a tenant's admin
//! reads its tenant's, and sets and reads its buckets'. Bucket names are the tenant's: no one
//! else reads a bucket's quota, and a bucket that is not the caller's tenant's is answered as
//! one that does not exist. Nothing here is logged with a tenant's or bucket's name.

use crate::api::{AdminState, ApiError, Caller, now_ms};
use crate::wire::QuotaReport;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use obhut_catalog::{Bucket, Quota, QuotaStatus, QuotaTarget};
use obhut_core::PolicyScope;
use obhut_metrics::{QuotaGauges, Quotas};
use obhut_trustee_client::Role;

/// Refuses anyone but officers and `tenant`'s own admin.
fn officer_or_own_admin(caller: &Caller, tenant: &str, what: &str) -> Result<(), ApiError> {
    match caller.role() {
        Role::Officer => Ok(()),
        Role::TenantAdmin if caller.tenant() == Some(tenant) => Ok(()),
        _ => Err(ApiError::forbidden(what)),
    }
}

/// Refuses anyone but `tenant`'s own admin.
fn own_admin(caller: &Caller, tenant: &str, what: &str) -> Result<(), ApiError> {
    if caller.role() == Role::TenantAdmin && caller.tenant() == Some(tenant) {
        Ok(())
    } else {
        Err(ApiError::forbidden(what))
    }
}

async fn require_tenant(state: &AdminState, tenant: &str) -> Result<(), ApiError> {
    match state.catalog.get_tenant(tenant).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no tenant {tenant:?}"),
        )),
    }
}

/// `NotFound` unless `bucket` is `tenant`'s: the same answer for another tenant's bucket as for
/// none.
async fn require_bucket(
    state: &AdminState,
    tenant: &str,
    bucket: &str,
) -> Result<Bucket, ApiError> {
    match state.catalog.get_bucket(bucket).await? {
        Some(b) if b.tenant == tenant => Ok(b),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("tenant {tenant} has no bucket {bucket:?}"),
        )),
    }
}

async fn report(
    state: &AdminState,
    tenant: &str,
    bucket: Option<&str>,
) -> Result<Json<QuotaReport>, ApiError> {
    let scope = match bucket {
        Some(b) => PolicyScope::Bucket(b.to_owned()),
        None => PolicyScope::Tenant(tenant.to_owned()),
    };
    let quota = state.catalog.get_quota(&scope).await?;
    let usage = state.catalog.usage(&scope, now_ms()).await?;
    Ok(Json(QuotaReport {
        tenant: tenant.to_owned(),
        bucket: bucket.map(str::to_owned),
        quota,
        usage,
    }))
}

fn body_quota(body: Result<Json<Quota>, JsonRejection>) -> Result<Option<Quota>, ApiError> {
    let Json(q) = body?;
    Ok((!q.is_unlimited()).then_some(q))
}

/// `GET /v1/tenants/{tenant}/quota`: officers, and the tenant's admin.
pub(crate) async fn get_tenant_quota(
    State(state): State<AdminState>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> Result<Json<QuotaReport>, ApiError> {
    officer_or_own_admin(&caller, &tenant, "read this tenant's quota")?;
    require_tenant(&state, &tenant).await?;
    report(&state, &tenant, None).await
}

/// `PUT /v1/tenants/{tenant}/quota`: officers only.
pub(crate) async fn set_tenant_quota(
    State(state): State<AdminState>,
    caller: Caller,
    Path(tenant): Path<String>,
    body: Result<Json<Quota>, JsonRejection>,
) -> Result<Json<QuotaReport>, ApiError> {
    caller.require(&[Role::Officer], "set a tenant's quota (only officers can)")?;
    let quota = body_quota(body)?;
    require_tenant(&state, &tenant).await?;
    state
        .catalog
        .set_quota(QuotaTarget::Tenant(&tenant), quota.as_ref())
        .await?;
    tracing::info!(tenant = %obhut_core::logged(&tenant), by = %obhut_core::logged(caller.name()), cleared = quota.is_none(), "tenant quota set");
    report(&state, &tenant, None).await
}

/// `POST /v1/tenants/{tenant}/quota/recount`: officers only. Counts again what each of the
/// tenant's buckets holds from its records and mends the usage where it fell behind (writes
/// of gateways of a release before usage was counted); answers the tenant's usage after.
pub(crate) async fn recount_tenant_usage(
    State(state): State<AdminState>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> Result<Json<QuotaReport>, ApiError> {
    caller.require(
        &[Role::Officer],
        "recount a tenant's usage (only officers can)",
    )?;
    require_tenant(&state, &tenant).await?;
    for b in state.catalog.list_buckets(&tenant).await? {
        match state.catalog.recount_usage(&b.name).await {
            // Deleted meanwhile: nothing to count.
            Ok(_) | Err(obhut_catalog::CatalogError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    tracing::info!(tenant = %obhut_core::logged(&tenant), by = %obhut_core::logged(caller.name()), "tenant usage recounted");
    report(&state, &tenant, None).await
}

/// `GET /v1/tenants/{tenant}/buckets/{bucket}/quota`: the tenant's admin only.
pub(crate) async fn get_bucket_quota(
    State(state): State<AdminState>,
    caller: Caller,
    Path((tenant, bucket)): Path<(String, String)>,
) -> Result<Json<QuotaReport>, ApiError> {
    own_admin(
        &caller,
        &tenant,
        "read this tenant's bucket quotas (only the tenant's admin can)",
    )?;
    require_bucket(&state, &tenant, &bucket).await?;
    report(&state, &tenant, Some(&bucket)).await
}

/// `PUT /v1/tenants/{tenant}/buckets/{bucket}/quota`: the tenant's admin only, within the
/// tenant's quota (each limit the tenant has, the bucket has too, no higher).
pub(crate) async fn set_bucket_quota(
    State(state): State<AdminState>,
    caller: Caller,
    Path((tenant, bucket)): Path<(String, String)>,
    body: Result<Json<Quota>, JsonRejection>,
) -> Result<Json<QuotaReport>, ApiError> {
    own_admin(
        &caller,
        &tenant,
        "set this tenant's bucket quotas (only the tenant's admin can)",
    )?;
    let quota = body_quota(body)?;
    // The quota is set on this bucket only: if it is deleted (and its name perhaps taken by
    // another tenant) meanwhile, the catalog refuses.
    let record = require_bucket(&state, &tenant, &bucket).await?;
    if let Some(q) = &quota
        && let Some(outer) = state
            .catalog
            .get_quota(&PolicyScope::Tenant(tenant.clone()))
            .await?
        && !outer.contains(q)
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "exceeds_tenant_quota",
            format!(
                "a bucket's quota must stay within its tenant's ({}); this one ({}) does not",
                describe(&outer),
                describe(q)
            ),
        ));
    }
    state
        .catalog
        .set_quota(QuotaTarget::Bucket(&record), quota.as_ref())
        .await?;
    tracing::info!(tenant = %obhut_core::logged(&tenant), bucket = %obhut_core::logged(&bucket), cleared = quota.is_none(), "bucket quota set");
    report(&state, &tenant, Some(&bucket)).await
}

/// A quota in words, e.g. `max 1073741824 bytes, no object limit`.
fn describe(q: &Quota) -> String {
    let part = |v: Option<u64>, what: &str| match v {
        Some(n) => format!("max {n} {what}"),
        None => format!("no {what} limit"),
    };
    format!(
        "{}, {}",
        part(q.max_bytes, "bytes"),
        part(q.max_objects, "objects")
    )
}

/// Fraction of a limit from which a scope counts as near it.
const NEAR: f64 = 0.9;

/// The quotas summed per kind of scope, for the metrics.
pub(crate) fn gauges(statuses: &[QuotaStatus]) -> Quotas {
    let mut out = Quotas::default();
    for s in statuses {
        let g: &mut QuotaGauges = match s.scope {
            PolicyScope::Tenant(_) => &mut out.tenants,
            PolicyScope::Bucket(_) => &mut out.buckets,
        };
        let fill = s.quota.fill(&s.usage);
        g.limited += 1;
        g.near_limit += u64::from(fill >= NEAR);
        g.at_limit += u64::from(fill >= 1.0);
        g.reserved_bytes = g.reserved_bytes.saturating_add(s.usage.reserved_bytes);
        if let Some(m) = s.quota.max_bytes {
            g.limit_bytes = g.limit_bytes.saturating_add(m);
            g.used_bytes = g.used_bytes.saturating_add(s.usage.bytes);
        }
        if let Some(m) = s.quota.max_objects {
            g.limit_objects = g.limit_objects.saturating_add(m);
            g.used_objects = g.used_objects.saturating_add(s.usage.objects);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use obhut_catalog::Usage;

    fn status(
        scope: PolicyScope,
        max_bytes: Option<u64>,
        bytes: u64,
        reserved: u64,
    ) -> QuotaStatus {
        QuotaStatus {
            scope,
            quota: Quota {
                max_bytes,
                max_objects: Some(10),
            },
            usage: Usage {
                bytes,
                objects: 1,
                reserved_bytes: reserved,
                reserved_objects: 0,
            },
        }
    }

    #[test]
    fn gauges_sum_per_kind_of_scope_and_count_those_near_a_limit() {
        let t = |n: &str| PolicyScope::Tenant(n.into());
        let b = |n: &str| PolicyScope::Bucket(n.into());
        let g = gauges(&[
            status(t("a"), Some(100), 50, 0),
            // 85 held and 5 reserved: 90 %, near.
            status(t("b"), Some(100), 85, 5),
            status(t("c"), Some(100), 100, 0),
            status(b("x"), None, 7, 0),
        ]);
        assert_eq!(
            g.tenants,
            QuotaGauges {
                limited: 3,
                near_limit: 2,
                at_limit: 1,
                limit_bytes: 300,
                used_bytes: 235,
                reserved_bytes: 5,
                limit_objects: 30,
                used_objects: 3,
            }
        );
        assert_eq!(
            (
                g.buckets.limited,
                g.buckets.limit_bytes,
                g.buckets.used_bytes
            ),
            (1, 0, 0)
        );
    }
}
