//! HTTP routes of the admin API (`/v1/...`), JSON in and out.

use crate::provision::{self, ProvisionError, now_ms, token_hash};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use obhut_catalog::{Approval, Catalog, CatalogError, Principal, Role};
use obhut_trustee_client::{Justification, SealStatus, TrusteeClient, TrusteeError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use subtle::ConstantTimeEq;

#[derive(Clone)]
pub struct AdminState {
    pub catalog: Arc<dyn Catalog>,
    /// The trustee this process can reach, for its seal state and unsealing.
    pub trustee: Option<Arc<dyn TrusteeClient>>,
    /// Time between disabling a tenant key and destroying it (DESIGN.md: 7 days).
    pub shred_grace: std::time::Duration,
    /// The gateway of this process, for jobs that rewrap keys (bucket-key rotation).
    pub gateway: Option<obhut_gateway::Gateway>,
    /// Background jobs and their progress.
    pub jobs: Jobs,
}

/// Background jobs by id, with the principal who started each.
pub type Jobs = Arc<Mutex<HashMap<String, Job>>>;

#[derive(Debug, Clone, Serialize)]
pub struct Job {
    #[serde(skip)]
    owner: String,
    kind: &'static str,
    /// `running`, `done` or `failed`.
    state: &'static str,
    done: u64,
    total: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Distinct principals a sensitive action needs, at least one of them an officer.
pub const QUORUM: usize = 2;
/// Approvals older than this no longer count towards a quorum.
const APPROVAL_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// An admin API error: `{"error": code, "message": ...}` with a matching status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn forbidden(what: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("your role may not {what}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": self.code, "message": self.message})),
        )
            .into_response()
    }
}

impl From<ProvisionError> for ApiError {
    fn from(e: ProvisionError) -> Self {
        match e {
            ProvisionError::Catalog(c) => c.into(),
            other => Self::new(StatusCode::BAD_REQUEST, "bad_request", other.to_string()),
        }
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::AlreadyExists { .. } | CatalogError::BucketExists { .. } => {
                Self::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            CatalogError::NotFound { .. } => {
                Self::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            other => {
                tracing::error!(error = %other, "catalog failure in admin API");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the catalog is unavailable; retry later",
                )
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text())
    }
}

/// The authenticated caller, from `Authorization: Bearer <token>`.
pub struct Caller(Principal);

impl FromRequestParts<AdminState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| unauthorized("missing bearer token"))?;
        let token = value
            .strip_prefix("Bearer ")
            .ok_or_else(|| unauthorized("the Authorization header must be 'Bearer <token>'"))?;
        let hash = token_hash(token.trim());
        let principal = state
            .catalog
            .get_principal_by_token_hash(&hash)
            .await?
            .ok_or_else(|| unauthorized("unknown token"))?;
        // The lookup is by hash; confirm in constant time anyway so no comparison of secret
        // material short-circuits.
        if !bool::from(principal.token_hash.as_bytes().ct_eq(hash.as_bytes())) {
            return Err(unauthorized("unknown token"));
        }
        if principal.revoked {
            return Err(unauthorized("this token has been revoked"));
        }
        if principal.expires_ms.is_some_and(|e| e <= now_ms()) {
            return Err(unauthorized("this token has expired"));
        }
        Ok(Self(principal))
    }
}

impl Caller {
    fn require(&self, allowed: &[Role], what: &str) -> Result<(), ApiError> {
        if allowed.contains(&self.0.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(what))
        }
    }
}

#[derive(Serialize)]
struct TenantView {
    name: String,
    jurisdictions: Vec<String>,
    min_sites: u32,
}

impl From<obhut_catalog::Tenant> for TenantView {
    fn from(t: obhut_catalog::Tenant) -> Self {
        Self {
            name: t.name,
            jurisdictions: t.jurisdictions,
            min_sites: t.min_sites,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTenant {
    name: String,
    /// One jurisdiction, or several separated by commas.
    jurisdiction: String,
    #[serde(default = "default_min_sites")]
    min_sites: u32,
}

fn default_min_sites() -> u32 {
    2
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn whoami(caller: Caller) -> Json<serde_json::Value> {
    Json(json!({
        "name": caller.0.name,
        "role": caller.0.role.as_str(),
        "tenant": caller.0.tenant,
    }))
}

async fn create_tenant(
    State(state): State<AdminState>,
    caller: Caller,
    body: Result<Json<CreateTenant>, JsonRejection>,
) -> Result<(StatusCode, Json<TenantView>), ApiError> {
    caller.require(&[Role::Officer], "create tenants")?;
    let Json(req) = body?;
    let jurisdictions: Vec<String> = req
        .jurisdiction
        .split(',')
        .map(|j| j.trim().to_owned())
        .filter(|j| !j.is_empty())
        .collect();
    let t = provision::create_tenant(
        state.catalog.as_ref(),
        &req.name,
        &jurisdictions,
        req.min_sites,
    )
    .await?;
    tracing::info!(tenant = %t.name, by = %caller.0.name, "tenant created");
    Ok((StatusCode::CREATED, Json(t.into())))
}

async fn list_tenants(
    State(state): State<AdminState>,
    caller: Caller,
) -> Result<Json<Vec<TenantView>>, ApiError> {
    caller.require(&[Role::Officer], "list tenants")?;
    let tenants = state.catalog.list_tenants().await?;
    Ok(Json(tenants.into_iter().map(Into::into).collect()))
}

async fn create_key(
    State(state): State<AdminState>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let own_admin =
        caller.0.role == Role::TenantAdmin && caller.0.tenant.as_deref() == Some(tenant.as_str());
    if caller.0.role != Role::Officer && !own_admin {
        return Err(ApiError::forbidden("create access keys for this tenant"));
    }
    let key = provision::create_access_key(state.catalog.as_ref(), &tenant).await?;
    tracing::info!(tenant = %tenant, access_key_id = %key.access_key_id, by = %caller.0.name, "access key created");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "tenant": tenant,
            "access_key_id": key.access_key_id,
            "secret_access_key": key.secret,
        })),
    ))
}

async fn list_sites(
    State(state): State<AdminState>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(
        &[Role::Officer, Role::Operator, Role::Auditor],
        "list sites",
    )?;
    let sites = state.catalog.list_sites().await?;
    Ok(Json(json!(
        sites
            .into_iter()
            .map(|s| json!({
                "id": s.id,
                "jurisdiction": s.jurisdiction,
                "location": s.location,
                "state": s.state.as_str(),
            }))
            .collect::<Vec<_>>()
    )))
}

fn trustee_of(state: &AdminState) -> Result<&Arc<dyn TrusteeClient>, ApiError> {
    state.trustee.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "this process has no trustee",
        )
    })
}

impl From<TrusteeError> for ApiError {
    fn from(e: TrusteeError) -> Self {
        match e {
            TrusteeError::BadShare(_) => {
                Self::new(StatusCode::BAD_REQUEST, "bad_share", e.to_string())
            }
            TrusteeError::Sealed(..) | TrusteeError::Unavailable(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "trustee_unavailable",
                e.to_string(),
            ),
            TrusteeError::Denied(_)
            | TrusteeError::TenantKeyDisabled(_)
            | TrusteeError::TenantKeyDestroyed(_) => {
                Self::new(StatusCode::FORBIDDEN, "denied", e.to_string())
            }
            TrusteeError::NoTenantKey(t) => Self::new(
                StatusCode::CONFLICT,
                "no_tenant_key",
                format!("tenant {t} has no key yet (it is made with the tenant's first bucket)"),
            ),
            other => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "trustee_error",
                other.to_string(),
            ),
        }
    }
}

fn status_json(s: SealStatus) -> Json<serde_json::Value> {
    Json(json!({
        "sealed": s.sealed,
        "shares_given": s.shares_given,
        "threshold": s.threshold,
    }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ShredRequest {
    /// Destroy the key at once instead of after the grace period.
    #[serde(default)]
    now: bool,
    /// Re-enable a disabled key (undo an accidental shred) while it still exists.
    #[serde(default)]
    cancel: bool,
}

/// Crypto-shred of a tenant: every call is one approval; the action happens when the quorum is
/// reached (two distinct principals, officers or that tenant's admin, at least one officer).
async fn shred_tenant(
    State(state): State<AdminState>,
    caller: Caller,
    Path(tenant): Path<String>,
    body: Result<Json<ShredRequest>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let own_admin =
        caller.0.role == Role::TenantAdmin && caller.0.tenant.as_deref() == Some(tenant.as_str());
    if caller.0.role != Role::Officer && !own_admin {
        return Err(ApiError::forbidden("shred this tenant"));
    }
    let Json(req) = body?;
    if req.now && req.cancel {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "now and cancel exclude each other",
        ));
    }
    if state.catalog.get_tenant(&tenant).await?.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("tenant {tenant:?} not found"),
        ));
    }
    let trustee = trustee_of(&state)?;
    let current = trustee.tenant_key_status(&tenant).await?;
    if current.state == "destroyed" {
        return Ok(Json(json!({"tenant": tenant, "state": "destroyed"})));
    }
    let action = match (req.now, req.cancel) {
        (true, _) => format!("shred-now:{tenant}"),
        (_, true) => format!("shred-cancel:{tenant}"),
        _ => format!("shred:{tenant}"),
    };
    let now = now_ms();
    let approvals = state
        .catalog
        .add_approval(&Approval {
            action: action.clone(),
            principal: caller.0.name.clone(),
            role: caller.0.role,
            at_ms: now,
        })
        .await?;
    // Only recent approvals count; each principal was recorded once.
    let recent: Vec<&Approval> = approvals
        .iter()
        .filter(|a| a.at_ms >= now - APPROVAL_WINDOW_MS)
        .collect();
    let counted: Vec<String> = recent.iter().map(|a| a.principal.clone()).collect();
    let officers = recent.iter().filter(|a| a.role == Role::Officer).count();
    tracing::info!(tenant = %tenant, action = %action, by = %caller.0.name, approvals = counted.len(), "shred approval");
    if counted.len() < QUORUM || officers == 0 {
        return Ok(Json(json!({
            "tenant": tenant,
            "state": "pending",
            "action": action,
            "approvals": counted,
            "required": QUORUM,
            "officers": officers,
        })));
    }
    state.catalog.clear_approvals(&action).await?;
    let status = if req.cancel {
        trustee.enable_tenant_key(&tenant).await?
    } else if req.now {
        trustee.destroy_tenant_key(&tenant).await?
    } else {
        let grace = i64::try_from(state.shred_grace.as_millis()).unwrap_or(i64::MAX);
        trustee
            .disable_tenant_key(&tenant, now.saturating_add(grace))
            .await?
    };
    Ok(Json(json!({
        "tenant": tenant,
        "state": status.state,
        "destroy_after_ms": status.destroy_after_ms,
        "approvals": counted,
    })))
}

/// Rotates a bucket's key and rewraps its objects' keys: the tenant's own admin only, since
/// the rewrap needs the bucket keys released for the tenant.
async fn rotate_bucket_key(
    State(state): State<AdminState>,
    caller: Caller,
    Path((tenant, bucket)): Path<(String, String)>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let own_admin =
        caller.0.role == Role::TenantAdmin && caller.0.tenant.as_deref() == Some(tenant.as_str());
    if !own_admin {
        return Err(ApiError::forbidden(
            "rotate this tenant's bucket keys (only the tenant's admin can)",
        ));
    }
    let gateway = state.gateway.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "this process has no gateway",
        )
    })?;
    match state.catalog.get_bucket(&bucket).await? {
        Some(b) if b.tenant == tenant => {}
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("tenant {tenant} has no bucket {bucket:?}"),
            ));
        }
    }
    let id = obhut_core::random_token(20);
    let job = Job {
        owner: caller.0.name.clone(),
        kind: "rotate-bucket-key",
        state: "running",
        done: 0,
        total: 0,
        result: None,
        error: None,
    };
    lock_jobs(&state.jobs)?.insert(id.clone(), job);
    let why = Justification::Customer {
        tenant: tenant.clone(),
        principal: caller.0.name.clone(),
        operation: "RotateBucketKey".into(),
    };
    let jobs = Arc::clone(&state.jobs);
    let job_id = id.clone();
    tokio::spawn(async move {
        let progress_jobs = Arc::clone(&jobs);
        let progress_id = job_id.clone();
        let outcome = gateway
            .rotate_bucket_key(&tenant, &bucket, &why, move |done, total| {
                if let Ok(mut j) = progress_jobs.lock()
                    && let Some(job) = j.get_mut(&progress_id)
                {
                    job.done = done;
                    job.total = total;
                }
            })
            .await;
        if let Ok(mut j) = jobs.lock()
            && let Some(job) = j.get_mut(&job_id)
        {
            match outcome {
                Ok(r) => {
                    job.state = "done";
                    job.result = Some(json!({
                        "version": r.version,
                        "rewrapped": r.rewrapped,
                        "skipped": r.skipped,
                    }));
                }
                Err(e) => {
                    job.state = "failed";
                    job.error = Some(e);
                }
            }
        }
    });
    Ok((StatusCode::ACCEPTED, Json(json!({ "job": id }))))
}

fn lock_jobs(jobs: &Jobs) -> Result<std::sync::MutexGuard<'_, HashMap<String, Job>>, ApiError> {
    jobs.lock().map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "job table lock poisoned",
        )
    })
}

async fn get_job(
    State(state): State<AdminState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Job>, ApiError> {
    let jobs = lock_jobs(&state.jobs)?;
    match jobs.get(&id) {
        Some(job) if job.owner == caller.0.name => Ok(Json(job.clone())),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no job {id:?} of yours"),
        )),
    }
}

async fn trustee_seal(
    State(state): State<AdminState>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(&[Role::Officer], "seal the trustee")?;
    let status = trustee_of(&state)?.seal().await?;
    tracing::warn!(by = %caller.0.name, "trustee sealed by an officer");
    Ok(status_json(status))
}

async fn trustee_status(
    State(state): State<AdminState>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(
        &[Role::Officer, Role::Operator, Role::Auditor],
        "see the trustee's state",
    )?;
    Ok(status_json(trustee_of(&state)?.seal_status().await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnsealRequest {
    share: String,
}

async fn trustee_unseal(
    State(state): State<AdminState>,
    caller: Caller,
    body: Result<Json<UnsealRequest>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(&[Role::Officer], "unseal the trustee")?;
    let Json(req) = body?;
    let status = trustee_of(&state)?.unseal(&req.share).await?;
    tracing::info!(by = %caller.0.name, sealed = status.sealed, given = status.shares_given, "unseal share given");
    Ok(status_json(status))
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such admin API endpoint",
    )
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/whoami", get(whoami))
        .route("/v1/tenants", get(list_tenants).post(create_tenant))
        .route("/v1/tenants/{name}/keys", post(create_key))
        .route("/v1/sites", get(list_sites))
        .route("/v1/trustee/status", get(trustee_status))
        .route("/v1/trustee/unseal", post(trustee_unseal))
        .route("/v1/trustee/seal", post(trustee_seal))
        .route("/v1/tenants/{name}/shred", post(shred_tenant))
        .route(
            "/v1/tenants/{name}/buckets/{bucket}/rotate-key",
            post(rotate_bucket_key),
        )
        .route("/v1/jobs/{id}", get(get_job))
        .fallback(not_found)
        .with_state(state)
}
