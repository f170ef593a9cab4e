//! Residency in the admin API: the site registry (add, state, remove), tenants' and buckets'
//! residency policies, repair, and signed residency reports.
//!
//! Changes arrive as signed statements (see `act` in the API module); this module does what
//! only the storage side can, through obhut-maintenance: create sites, check the catalog so
//! that no change leaves data outside the allowed jurisdictions, rewrite the catalog's copy of
//! a policy the trustee changed (the trustee's record is the policy), start repair, and
//! compute residency reports (which the trustee then attests). It never returns object names, object
//! data or a site's secret.

use crate::api::{AdminState, ApiError, Caller};
use crate::wire::{RepairStarted, ResidencyAnswer, SiteView};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query as UrlQuery, State};
use axum::http::StatusCode;
use obhut_catalog::{CatalogError, SiteRecord};
use obhut_core::{SiteInfo, SiteState, validate_jurisdiction, validate_tenant_name};
use obhut_maintenance::Maintenance;
use obhut_maintenance::registry::{
    SiteSecrets, SiteSpec, check_fs_root, create_site, describe_backend, fs_root, move_site,
};
use obhut_maintenance::{LockedCheck, RepairStatus, ResidencyTotals};
use obhut_maintenance::{project, replicas_outside, uploads_outside};
use obhut_trustee_client::views::{AttestationView, BucketPolicyView};
use obhut_trustee_client::{Action, Query, Role, SignedStatement, TrusteeClient};
use serde::Deserialize;
use serde_json::Value;

/// S3 sites' secrets, sealed and opened by the trustee.
pub struct TrusteeSiteSecrets<'a>(pub &'a dyn TrusteeClient);

#[async_trait::async_trait]
impl SiteSecrets for TrusteeSiteSecrets<'_> {
    async fn seal(&self, site: &str, secret: &str) -> Result<String, String> {
        self.0
            .seal_site_secret(site, secret)
            .await
            .map_err(|e| e.to_string())
    }

    async fn open(&self, site: &str, sealed: &str) -> Result<String, String> {
        self.0
            .open_site_secret(site, sealed)
            .await
            .map_err(|e| e.to_string())
    }
}

pub(crate) fn maintenance(state: &AdminState) -> Result<&Maintenance, ApiError> {
    state.maintenance.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "this process keeps no sites",
        )
    })
}

fn conflict(m: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "conflict", m)
}

fn bad_request(m: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", m)
}

fn not_found(m: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", m)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
}

fn state_of(s: &str) -> Result<SiteState, ApiError> {
    match s {
        "active" => Ok(SiteState::Active),
        "draining" => Ok(SiteState::Draining),
        "down" => Ok(SiteState::Down),
        other => Err(bad_request(format!(
            "a site's state is active, draining or down, not {other:?}"
        ))),
    }
}

/// The buckets a narrowing would leave data outside of: objects, then unfinished uploads.
fn affected_text(objects: &[(String, u64)], uploads: &[(String, u64)]) -> String {
    objects
        .iter()
        .map(|(b, n)| format!("bucket {b}: {n} object(s)"))
        .chain(
            uploads
                .iter()
                .map(|(b, n)| format!("bucket {b}: {n} unfinished multipart upload(s)")),
        )
        .collect::<Vec<_>>()
        .join(", ")
}

/// What to do about unfinished uploads that stand in a narrowing's way.
fn uploads_hint(uploads: &[(String, u64)]) -> &'static str {
    if uploads.is_empty() {
        ""
    } else {
        "; abort the unfinished uploads first, or complete them and move the objects (`aws s3api list-multipart-uploads` lists them)"
    }
}

/// Carries out a residency statement: checks first, then the trustee (which checks the
/// signature and role and logs it), then the catalog and the sites this process keeps.
pub(crate) async fn act(
    state: &AdminState,
    caller: &Caller,
    signed: &SignedStatement,
    action: &Action,
    site: Option<SiteSpec>,
) -> Result<Option<(StatusCode, Value)>, ApiError> {
    let catalog = state.catalog.as_ref();
    match action {
        Action::AddSite {
            id,
            jurisdiction,
            location,
            backend,
        } => {
            caller.require(&[Role::Officer], "add sites")?;
            validate_tenant_name(id).map_err(|e| bad_request(format!("site id: {e}")))?;
            validate_jurisdiction(jurisdiction)
                .map_err(|e| bad_request(format!("jurisdiction: {e}")))?;
            let spec = site.ok_or_else(|| {
                bad_request("a new site needs its backend: {\"fs\": {...}} or {\"s3\": {...}}")
            })?;
            if spec.describe() != *backend {
                return Err(bad_request(
                    "the signed statement describes another backend than the one given",
                ));
            }
            let registered = catalog.list_sites().await?;
            if registered.iter().any(|s| s.id == *id) {
                return Err(conflict(format!("site {id} exists")));
            }
            if let SiteSpec::Fs { path } = &spec {
                let mut reserved: Vec<(String, std::path::PathBuf)> = registered
                    .iter()
                    .filter_map(|s| fs_root(s).map(|root| (format!("site {}", s.id), root)))
                    .collect();
                if let Some(dir) = &state.data_dir {
                    reserved.push(("the data directory".to_owned(), dir.clone()));
                }
                check_fs_root(path, &reserved)
                    .map_err(|e| bad_request(format!("cannot create site {id}: {e}")))?;
            }
            let m = maintenance(state)?;
            let (handle, record) =
                create_site(id, &spec, &TrusteeSiteSecrets(state.trustee.as_ref()))
                    .await
                    .map_err(|e| bad_request(format!("cannot create site {id}: {e}")))?;
            let v = state.trustee.act(signed).await?;
            catalog
                .put_site(&SiteRecord {
                    id: id.clone(),
                    jurisdiction: jurisdiction.clone(),
                    location: location.clone(),
                    state: SiteState::Active,
                    backend: record,
                })
                .await?;
            m.sites().upsert(
                SiteInfo {
                    id: id.clone(),
                    jurisdiction: jurisdiction.clone(),
                    location: location.clone(),
                    state: SiteState::Active,
                },
                Some(handle),
            );
            tracing::info!(site = %id, %jurisdiction, by = %obhut_core::logged(caller.name()), "site added");
            Ok(Some((StatusCode::CREATED, v)))
        }
        Action::SetSiteState { id, state: new } => {
            caller.require(&[Role::Officer], "change sites' states")?;
            let new_state = state_of(new)?;
            let mut rec = catalog
                .list_sites()
                .await?
                .into_iter()
                .find(|s| s.id == *id)
                .ok_or_else(|| not_found(format!("no site {id}")))?;
            let m = maintenance(state)?;
            let v = state.trustee.act(signed).await?;
            rec.state = new_state;
            catalog.put_site(&rec).await?;
            m.sites().upsert(
                SiteInfo {
                    id: rec.id.clone(),
                    jurisdiction: rec.jurisdiction.clone(),
                    location: rec.location.clone(),
                    state: new_state,
                },
                None,
            );
            // Draining moves replicas off; a site down leaves objects short of sites: both are
            // repaired in the background.
            if new_state != SiteState::Active {
                m.start_repair(if new_state == SiteState::Draining {
                    "drain"
                } else {
                    "site-down"
                });
            }
            Ok(Some((StatusCode::OK, v)))
        }
        Action::SetSiteBackend { id, backend } => {
            caller.require(&[Role::Officer], "change sites' backends")?;
            let spec = site.ok_or_else(|| {
                bad_request("a site's new backend is needed: {\"fs\": {...}} or {\"s3\": {...}}")
            })?;
            if spec.describe() != *backend {
                return Err(bad_request(
                    "the signed statement describes another backend than the one given",
                ));
            }
            let registered = catalog.list_sites().await?;
            let mut rec = registered
                .iter()
                .find(|s| s.id == *id)
                .cloned()
                .ok_or_else(|| not_found(format!("no site {id}")))?;
            if let SiteSpec::Fs { path } = &spec {
                let mut reserved: Vec<(String, std::path::PathBuf)> = registered
                    .iter()
                    .filter(|s| s.id != *id)
                    .filter_map(|s| fs_root(s).map(|root| (format!("site {}", s.id), root)))
                    .collect();
                if let Some(dir) = &state.data_dir {
                    reserved.push(("the data directory".to_owned(), dir.clone()));
                }
                check_fs_root(path, &reserved)
                    .map_err(|e| bad_request(format!("cannot move site {id}: {e}")))?;
            }
            let identity = rec
                .backend
                .get("identity")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let m = maintenance(state)?;
            // The site must be found, as itself, where the officer says it is now.
            let (handle, record) = move_site(
                id,
                &identity,
                &spec,
                &TrusteeSiteSecrets(state.trustee.as_ref()),
            )
            .await
            .map_err(|e| bad_request(format!("cannot move site {id}: {e}")))?;
            let v = state.trustee.act(signed).await?;
            rec.backend = record;
            catalog.put_site(&rec).await?;
            m.sites().reopen(
                SiteInfo {
                    id: rec.id.clone(),
                    jurisdiction: rec.jurisdiction.clone(),
                    location: rec.location.clone(),
                    state: rec.state,
                },
                Some(handle),
            );
            tracing::info!(site = %id, by = %obhut_core::logged(caller.name()), "site backend changed");
            Ok(Some((StatusCode::OK, v)))
        }
        Action::RemoveSite { id } => {
            caller.require(&[Role::Officer], "remove sites")?;
            let rec = catalog
                .list_sites()
                .await?
                .into_iter()
                .find(|s| s.id == *id)
                .ok_or_else(|| not_found(format!("no site {id}")))?;
            if rec.state == SiteState::Active {
                return Err(conflict(format!(
                    "site {id} is active: set it to draining first, and remove it once drained"
                )));
            }
            let refs = catalog.site_references(id).await?;
            if refs > 0 {
                return Err(conflict(format!(
                    "site {id} still holds {refs} replica(s); wait for the drain (`obhut repair --status`)"
                )));
            }
            let v = state.trustee.act(signed).await?;
            match catalog.delete_site(id).await {
                Ok(()) => {}
                Err(CatalogError::InUse(m)) => return Err(conflict(m)),
                Err(e) => return Err(e.into()),
            }
            if let Some(m) = &state.maintenance {
                m.sites().remove(id);
            }
            Ok(Some((StatusCode::OK, v)))
        }
        Action::SetTenantPolicy {
            tenant,
            jurisdictions,
            min_sites,
            ..
        } => {
            caller.require(&[Role::Officer], "change tenants' policies")?;
            if catalog.get_tenant(tenant).await?.is_none() {
                return Err(not_found(format!("no tenant {tenant:?}")));
            }
            if let Some(j) = jurisdictions {
                for x in j {
                    validate_jurisdiction(x)
                        .map_err(|e| bad_request(format!("jurisdiction: {e}")))?;
                }
                let sites = maintenance(state)?.sites().infos();
                let affected = replicas_outside(catalog, &sites, tenant, None, j).await?;
                let uploads = uploads_outside(catalog, &sites, tenant, None, j).await?;
                if !affected.is_empty() || !uploads.is_empty() {
                    return Err(conflict(format!(
                        "refused: tenant {tenant} has data outside {}: {}; move it first (narrow buckets, drain sites){}",
                        j.join(","),
                        affected_text(&affected, &uploads),
                        uploads_hint(&uploads)
                    )));
                }
            }
            let before = state.trustee.residency(tenant).await?;
            let v = state.trustee.act(signed).await?;
            reproject(state, tenant).await;
            if min_sites.is_some_and(|n| n > before.min_sites)
                && let Some(m) = &state.maintenance
            {
                m.start_repair("policy");
            }
            Ok(Some((StatusCode::OK, v)))
        }
        Action::SetBucketPolicy {
            tenant,
            bucket,
            jurisdictions,
            ..
        } => {
            // Who may change it is settled before whether it exists: the answer to anyone
            // else is the same for a bucket that is not theirs and for one that does not exist.
            if !(caller.role() == Role::TenantAdmin && caller.tenant() == Some(tenant.as_str())) {
                return Err(ApiError::forbidden(
                    "change this bucket's policy (only its tenant's admin can)",
                ));
            }
            match catalog.get_bucket(bucket).await? {
                Some(b) if b.tenant == *tenant => {}
                _ => {
                    return Err(not_found(format!(
                        "tenant {tenant} has no bucket {bucket:?}"
                    )));
                }
            }
            if let Some(j) = jurisdictions {
                let sites = maintenance(state)?.sites().infos();
                let affected = replicas_outside(catalog, &sites, tenant, Some(bucket), j).await?;
                let uploads = uploads_outside(catalog, &sites, tenant, Some(bucket), j).await?;
                if !affected.is_empty() || !uploads.is_empty() {
                    return Err(conflict(format!(
                        "refused: {} would be outside {}{}",
                        affected_text(&affected, &uploads),
                        j.join(","),
                        uploads_hint(&uploads)
                    )));
                }
            }
            state.trustee.act(signed).await?;
            reproject(state, tenant).await;
            // Fields not given keep their value (the trustee merges them), as for a tenant's
            // policy.
            let rule = state
                .trustee
                .residency(tenant)
                .await?
                .buckets
                .remove(bucket.as_str())
                .unwrap_or_default();
            let v = serde_json::to_value(BucketPolicyView {
                tenant: tenant.clone(),
                bucket: bucket.clone(),
                jurisdictions: rule.jurisdictions,
                min_sites: rule.min_sites,
            })
            .map_err(internal)?;
            if let Some(m) = &state.maintenance {
                m.start_repair("policy");
            }
            Ok(Some((StatusCode::OK, v)))
        }
        _ => Ok(None),
    }
}

/// The registry, with each backend described without secrets.
pub(crate) async fn list_sites(
    State(state): State<AdminState>,
    caller: Caller,
) -> Result<Json<Vec<SiteView>>, ApiError> {
    caller.require(
        &[Role::Officer, Role::Operator, Role::Auditor],
        "list sites",
    )?;
    let healthy = |id: &str| {
        state
            .maintenance
            .as_ref()
            .is_some_and(|m| m.sites().is_healthy(id))
    };
    let sites = state.catalog.list_sites().await?;
    let mut out = Vec::new();
    for s in sites {
        let replicas = state.catalog.site_references(&s.id).await?;
        out.push(SiteView {
            backend: describe_backend(&s),
            reachable: healthy(&s.id),
            id: s.id,
            jurisdiction: s.jurisdiction,
            location: s.location,
            replicas,
            state: s.state,
        });
    }
    Ok(Json(out))
}

/// `POST /v1/repair` starts a repair pass; `GET` shows its progress (and the scrubber's).
pub(crate) async fn repair_status(
    State(state): State<AdminState>,
    caller: Caller,
) -> Result<Json<RepairStatus>, ApiError> {
    caller.require(
        &[Role::Officer, Role::Operator, Role::Auditor],
        "see repair progress",
    )?;
    Ok(Json(maintenance(&state)?.status()))
}

pub(crate) async fn repair_start(
    State(state): State<AdminState>,
    caller: Caller,
) -> Result<(StatusCode, Json<RepairStarted>), ApiError> {
    caller.require(&[Role::Officer, Role::Operator], "start repair")?;
    let m = maintenance(&state)?;
    let started = m.start_repair("operator");
    tracing::info!(by = %obhut_core::logged(caller.name()), started, "repair requested");
    Ok((
        if started {
            StatusCode::ACCEPTED
        } else {
            StatusCode::OK
        },
        Json(RepairStarted {
            started,
            status: m.status(),
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportParams {
    tenant: Option<String>,
    #[serde(default)]
    verify: bool,
    /// Paging (a tenant's buckets in name order): the bucket the page starts after.
    after: Option<String>,
    /// Paging: at most this many buckets (1 to [`MAX_REPORT_PAGE`]).
    limit: Option<usize>,
}

/// The most buckets one page of a residency report covers.
pub(crate) const MAX_REPORT_PAGE: usize = 1000;

/// The tenant whose residency `caller` asks for with `asked`: officers and auditors any (or,
/// with `None`, every one), a tenant's admin its own; operators none. A tenant that does not
/// exist is `404`.
async fn residency_tenant(
    state: &AdminState,
    caller: &Caller,
    asked: Option<&String>,
) -> Result<Option<String>, ApiError> {
    let tenant = match caller.role() {
        Role::Officer | Role::Auditor => asked.cloned(),
        Role::TenantAdmin => match (asked, caller.tenant()) {
            (Some(t), Some(own)) if t == own => Some(t.clone()),
            (None, Some(own)) => Some(own.to_owned()),
            _ => return Err(ApiError::forbidden("see another tenant's residency")),
        },
        Role::Operator => return Err(ApiError::forbidden("see residency reports")),
    };
    if let Some(t) = &tenant
        && state.catalog.get_tenant(t).await?.is_none()
    {
        return Err(not_found(format!("no tenant {t:?}")));
    }
    Ok(tenant)
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        e.to_string(),
    )
}

/// A residency report, its SHA-256, and the trustee's signed attestation of that digest (also
/// appended to the transparency log). Officers and auditors: any tenant or all; a tenant's
/// admin: its own. With `limit` (and a tenant), one page of the tenant's buckets in name
/// order, after `after`: the report says which page it is, and the answer's `next` is the
/// `after` of the next page while more may follow.
pub(crate) async fn residency_report(
    State(state): State<AdminState>,
    caller: Caller,
    params: Result<UrlQuery<ReportParams>, QueryRejection>,
) -> Result<Json<ResidencyAnswer>, ApiError> {
    let UrlQuery(p) = params.map_err(|e| bad_request(e.body_text()))?;
    let tenant = residency_tenant(&state, &caller, p.tenant.as_ref()).await?;
    let m = maintenance(&state)?;
    let mut report = match (p.limit, &tenant) {
        (None, _) if p.after.is_some() => {
            return Err(bad_request("`after` pages a report: give `limit` too"));
        }
        (None, _) => m.residency_report(tenant.as_deref(), p.verify).await,
        (Some(limit), _) if limit == 0 || limit > MAX_REPORT_PAGE => {
            return Err(bad_request(format!(
                "limit is 1 to {MAX_REPORT_PAGE} buckets, not {limit}"
            )));
        }
        (Some(_), None) => {
            return Err(bad_request("a report is paged per tenant: name the tenant"));
        }
        (Some(limit), Some(t)) => {
            m.residency_report_page(t, p.after.as_deref(), limit, p.verify)
                .await
        }
    }
    .map_err(unavailable)?;
    if p.verify {
        for t in &mut report.tenants {
            t.locked_versions = Some(check_locked_versions(&state, &caller, &t.tenant).await?);
        }
    }
    let next = report.page.as_ref().and_then(|pg| pg.next.clone());
    let bytes = serde_json::to_vec(&report).map_err(internal)?;
    drop(report);
    let digest = obhut_crypto::principal::sha256_hex(&bytes);
    let attestation = state
        .trustee
        .attest("residency-report", tenant.as_deref(), &digest)
        .await?;
    let attestation: AttestationView = serde_json::from_value(attestation)
        .map_err(|e| internal(format!("the trustee's attestation: {e}")))?;
    Ok(Json(ResidencyAnswer {
        attestation,
        next,
        report: String::from_utf8_lossy(&bytes).into_owned(),
        sha256: digest,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TotalsParams {
    tenant: Option<String>,
}

/// `GET /v1/residency/totals`: where all of a tenant's objects are, per set of sites, counted
/// by one aggregate query of the catalog; not a report and not attested (the report is
/// `/v1/residency`). Authorised as the report is; a tenant must be named or be the caller's.
pub(crate) async fn residency_totals(
    State(state): State<AdminState>,
    caller: Caller,
    params: Result<UrlQuery<TotalsParams>, QueryRejection>,
) -> Result<Json<ResidencyTotals>, ApiError> {
    let UrlQuery(p) = params.map_err(|e| bad_request(e.body_text()))?;
    let tenant = residency_tenant(&state, &caller, p.tenant.as_ref())
        .await?
        .ok_or_else(|| bad_request("name the tenant"))?;
    let totals = maintenance(&state)?
        .residency_totals(&tenant)
        .await
        .map_err(unavailable)?;
    Ok(Json(totals))
}

/// The versions of `tenant` the trustee knows object lock holds, each checked to be in the
/// catalog: one missing was removed by an edit of the catalog (the S3 API, lifecycle and
/// shred never remove it).
async fn check_locked_versions(
    state: &AdminState,
    caller: &Caller,
    tenant: &str,
) -> Result<LockedCheck, ApiError> {
    let mut check = LockedCheck::default();
    let mut after: Option<(String, String, String)> = None;
    loop {
        let page = state
            .trustee
            .query(
                caller.name(),
                &Query::LockedVersions {
                    tenant: tenant.to_owned(),
                    after: after.clone(),
                },
            )
            .await?;
        let page: Vec<(String, String, String)> = serde_json::from_value(page)
            .map_err(|e| internal(format!("the trustee's locked versions: {e}")))?;
        let Some(last) = page.last().cloned() else {
            return Ok(check);
        };
        for (bucket, key, version_id) in &page {
            check.checked += 1;
            let found = match state.catalog.get_bucket(bucket).await? {
                Some(b) if b.tenant == tenant => state
                    .catalog
                    .get_object_version(bucket, key, Some(version_id))
                    .await?
                    .is_some_and(|v| !v.delete_marker),
                _ => false,
            };
            if !found {
                check.missing += 1;
                *check.missing_by_bucket.entry(bucket.clone()).or_default() += 1;
            }
        }
        after = Some(last);
    }
}

/// After the trustee carried out a policy change: every cached copy of the tenant's policy is
/// dropped, and the catalog's copy rewritten from the trustee's record. A copy that cannot be
/// rewritten now is rewritten where it is next used: the change is in effect either way.
async fn reproject(state: &AdminState, tenant: &str) {
    let Some(m) = &state.maintenance else { return };
    m.policies().invalidate(Some(tenant));
    if let Err(e) = project(state.catalog.as_ref(), m.policies().as_ref(), tenant).await {
        tracing::warn!(tenant = %obhut_core::logged(tenant), error = %e.logged(), "the catalog's copy of the residency policy is rewritten at its next use");
    }
}

/// Whether the tenant's writes go on with fewer sites than its policy asks: the trustee's.
pub(crate) async fn degraded_of(
    state: &AdminState,
    tenant: &str,
) -> Result<&'static str, ApiError> {
    Ok(if state.trustee.residency(tenant).await?.degraded_writes {
        "accept"
    } else {
        "refuse"
    })
}
