//! HTTP routes of the admin API (`/v1/...`), JSON in and out.

use crate::provision::{self, ProvisionError};
use crate::wire::{
    ErrorBody, JobStarted, JobView, RotateKeyRequest, RotationResult, TenantSummary, UnsealRequest,
    WhoAmI,
};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query as UrlQuery, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use obhut_catalog::{Catalog, CatalogError};
use obhut_maintenance::{Maintenance, Workers};
use obhut_trustee_client::views::TenantPolicyView;
use obhut_trustee_client::{
    Action, DegradedWrites, Justification, LogRead, MAX_LOG_ENTRIES, PrincipalInfo, Query, Role,
    SealStatus, SignedStatement, Statement, TrusteeClient, TrusteeError,
};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;

#[derive(Clone)]
pub struct AdminState {
    pub catalog: Arc<dyn Catalog>,
    /// The trustee: principals, grants, the log, seal state.
    pub trustee: Arc<dyn TrusteeClient>,
    /// The sites of this process and their upkeep: registry, repair, residency reports.
    pub maintenance: Option<Arc<Maintenance>>,
    /// The gateway's rewrap of object keys (bucket-key rotation), if this process has one.
    pub rotation: Option<Arc<dyn BucketKeyRotation>>,
    /// The background workers of this process, listed by the health endpoint.
    pub workers: Workers,
    /// Background jobs and their progress.
    pub jobs: Jobs,
    /// The data directory of this process (its databases and keys): no site may be added
    /// inside it or around it.
    pub data_dir: Option<std::path::PathBuf>,
    /// The file the trustee rewrites with the log's newest checkpoint, where this process has
    /// the log (`serve`): its age is a metric.
    pub log_checkpoint: Option<std::path::PathBuf>,
}

/// What a bucket-key rotation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationOutcome {
    /// The key version now used for new writes.
    pub version: u32,
    /// Envelopes rewrapped under it.
    pub rewrapped: u64,
    /// Objects replaced or deleted while the rotation ran.
    pub skipped: u64,
}

/// Reports a rotation's progress as (done, total) envelopes.
pub type RotationProgress = Box<dyn Fn(u64, u64) + Send + Sync>;

/// Rotates a bucket's key and rewraps its objects' keys under the new version: the data
/// path's work (it needs the bucket keys the trustee releases), which this API runs as a job.
#[async_trait::async_trait]
pub trait BucketKeyRotation: Send + Sync {
    async fn rotate(
        &self,
        tenant: &str,
        bucket: &str,
        why: &Justification,
        progress: RotationProgress,
    ) -> Result<RotationOutcome, String>;
}

/// Background jobs by id, with the principal who started each.
pub type Jobs = Arc<Mutex<HashMap<String, Job>>>;

/// A background job: what `GET /v1/jobs/{id}` shows, and whose it is.
#[derive(Debug, Clone)]
pub struct Job {
    owner: String,
    view: JobView,
}

/// An admin API error: `{"error": code, "message": ...}` with a matching status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// Whether the trustee could not be asked (it is sealed or unreachable).
    pub(crate) fn is_unavailable(&self) -> bool {
        self.status == StatusCode::SERVICE_UNAVAILABLE
    }

    pub(crate) fn forbidden(what: &str) -> Self {
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
            Json(ErrorBody {
                error: self.code.to_owned(),
                message: self.message,
            }),
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

/// The authenticated caller, from `Authorization: Bearer <bearer>`.
///
/// The bearer is derived from the principal's token by the CLI
/// ([`obhut_crypto::principal::PrincipalCredential`]); the token itself never reaches this
/// API, so this API cannot sign statements in the caller's name.
pub struct Caller(PrincipalInfo);

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
        let bearer = value
            .strip_prefix("Bearer ")
            .ok_or_else(|| unauthorized("the Authorization header must be 'Bearer <bearer>'"))?
            .trim();
        if bearer.starts_with("obt_") {
            return Err(unauthorized(
                "send the bearer derived from your token (`obhut token bearer`), never the token itself",
            ));
        }
        let principal = state
            .trustee
            .authenticate(&obhut_crypto::principal::bearer_hash(bearer))
            .await?
            .ok_or_else(|| unauthorized("unknown token"))?;
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
    pub(crate) fn name(&self) -> &str {
        &self.0.name
    }

    pub(crate) fn role(&self) -> Role {
        self.0.role
    }

    pub(crate) fn tenant(&self) -> Option<&str> {
        self.0.tenant.as_deref()
    }

    pub(crate) fn require(&self, allowed: &[Role], what: &str) -> Result<(), ApiError> {
        if allowed.contains(&self.0.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(what))
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn tenant_summary(t: obhut_catalog::Tenant) -> TenantSummary {
    TenantSummary {
        name: t.name,
        jurisdictions: t.jurisdictions,
        min_sites: t.min_sites,
    }
}

/// Liveness, and the background workers of this process (names and states only).
async fn health(State(state): State<AdminState>) -> Json<serde_json::Value> {
    Json(json!({"status": "ok", "workers": state.workers.list()}))
}

async fn whoami(caller: Caller) -> Json<WhoAmI> {
    Json(WhoAmI {
        name: caller.0.name,
        role: caller.0.role,
        tenant: caller.0.tenant,
    })
}

async fn list_tenants(
    State(state): State<AdminState>,
    caller: Caller,
) -> Result<Json<Vec<TenantSummary>>, ApiError> {
    caller.require(&[Role::Officer], "list tenants")?;
    let tenants = state.catalog.list_tenants().await?;
    Ok(Json(tenants.into_iter().map(tenant_summary).collect()))
}

/// A tenant's access keys (ids and states), as the trustee keeps them: its admin only.
async fn list_keys(
    State(state): State<AdminState>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> ApiResult {
    ask(&state, &caller, Query::AccessKeys { tenant }).await
}

fn trustee_of(state: &AdminState) -> Result<&Arc<dyn TrusteeClient>, ApiError> {
    Ok(&state.trustee)
}

impl From<TrusteeError> for ApiError {
    fn from(e: TrusteeError) -> Self {
        match e {
            TrusteeError::BadShare(_) => {
                Self::new(StatusCode::BAD_REQUEST, "bad_share", e.to_string())
            }
            TrusteeError::Disconnected(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "trustee_disconnected",
                e.to_string(),
            ),
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
            TrusteeError::NotFound(m) => Self::new(StatusCode::NOT_FOUND, "not_found", m),
            TrusteeError::Invalid(m) => Self::new(StatusCode::BAD_REQUEST, "bad_request", m),
            TrusteeError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
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

/// A signed statement, and for a new site its backend (which may hold a secret key, so it is
/// not part of the statement that the log records).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActBody {
    statement: String,
    signature: String,
    #[serde(default)]
    site: Option<obhut_maintenance::registry::SiteSpec>,
}

fn bad_request(m: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", m)
}

/// Every change of governance (principals, tenants, policies, grants, disclosures,
/// crypto-shred): a statement signed by the caller, checked and carried out by the trustee.
/// This API adds only what it alone can check (the catalog, for a new tenant) and carries the
/// statement; it cannot alter it. A grant request is not checked against the catalog: whether a
/// bucket exists is the tenant's business, and every request is logged by the trustee.
async fn act(
    State(state): State<AdminState>,
    caller: Caller,
    body: Result<Json<ActBody>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Json(ActBody {
        statement,
        signature,
        site,
    }) = body?;
    let signed = SignedStatement {
        statement,
        signature,
    };
    let statement: Statement = serde_json::from_str(&signed.statement)
        .map_err(|e| bad_request(format!("not a statement: {e}")))?;
    if statement.principal != caller.0.name {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the statement is signed for another principal than the caller",
        ));
    }
    if let Some((status, v)) =
        crate::residency::act(&state, &caller, &signed, &statement.action, site).await?
    {
        return Ok((status, Json(v)));
    }
    let catalog = state.catalog.as_ref();
    if let Action::RegisterTenant {
        name,
        jurisdictions,
        min_sites,
    } = &statement.action
    {
        {
            // Only officers learn whether a tenant exists.
            caller.require(&[Role::Officer], "create tenants")?;
            provision::validate_tenant(name, jurisdictions, *min_sites)?;
            if catalog.get_tenant(name).await?.is_some() {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    format!("tenant {name:?} exists"),
                ));
            }
            let v = state.trustee.act(&signed).await?;
            provision::create_tenant(catalog, name, jurisdictions, *min_sites).await?;
            tracing::info!(tenant = %obhut_core::logged(name), by = %obhut_core::logged(&caller.0.name), "tenant created");
            return Ok((StatusCode::CREATED, Json(v)));
        }
    }
    let v = state.trustee.act(&signed).await?;
    Ok((StatusCode::OK, Json(v)))
}

async fn ask(state: &AdminState, caller: &Caller, q: Query) -> ApiResult {
    Ok(Json(state.trustee.query(&caller.0.name, &q).await?))
}

type ApiResult = Result<Json<serde_json::Value>, ApiError>;

async fn list_principals(State(state): State<AdminState>, caller: Caller) -> ApiResult {
    ask(&state, &caller, Query::Principals).await
}

async fn list_grants(State(state): State<AdminState>, caller: Caller) -> ApiResult {
    ask(&state, &caller, Query::Grants).await
}

async fn get_grant(
    State(state): State<AdminState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult {
    ask(&state, &caller, Query::Grant { id }).await
}

async fn list_disclosures(State(state): State<AdminState>, caller: Caller) -> ApiResult {
    ask(&state, &caller, Query::Disclosures).await
}

/// The caller's own enrolled signing keys (browser keys that sign its approvals and denials);
/// enrolling and revoking one is a statement signed with the caller's own key (`/v1/act`).
async fn list_signing_keys(State(state): State<AdminState>, caller: Caller) -> ApiResult {
    ask(&state, &caller, Query::SigningKeys).await
}

/// Whether officers have disconnected the provider, and the approvals pending for the next
/// change (`obhut trustee status`); the change itself is a signed statement (`/v1/act`).
async fn disconnect_status(State(state): State<AdminState>, caller: Caller) -> ApiResult {
    ask(&state, &caller, Query::Disconnect).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuorumParams {
    tenant: Option<String>,
}

/// The quorum actions in progress (crypto-shreds, a disconnect or reconnect) with the
/// approvals so far, and the asked tenant's key state: officers and auditors see all, a
/// tenant's admin its own tenant's shreds, operators nothing (the trustee decides). Approving
/// one is a signed statement (`/v1/act`).
async fn quorum(
    State(state): State<AdminState>,
    caller: Caller,
    params: Result<UrlQuery<QuorumParams>, QueryRejection>,
) -> ApiResult {
    let UrlQuery(QuorumParams { tenant }) = params.map_err(|e| bad_request(e.body_text()))?;
    ask(&state, &caller, Query::Quorum { tenant }).await
}

async fn tenant_policy(
    State(state): State<AdminState>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> Result<Json<TenantPolicyView>, ApiError> {
    let Json(v) = ask(
        &state,
        &caller,
        Query::TenantPolicy {
            tenant: tenant.clone(),
        },
    )
    .await?;
    let degraded = crate::residency::degraded_of(&state, &tenant).await?;
    let policy: TenantPolicyView = serde_json::from_value(v).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "trustee_error",
            format!("the trustee's answer is not a tenant policy: {e}"),
        )
    })?;
    Ok(Json(TenantPolicyView {
        degraded_writes: Some(DegradedWrites::from_accept(degraded == "accept")),
        ..policy
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntriesParams {
    tenant: Option<String>,
    #[serde(default)]
    from: u64,
    /// At most this many index rows read (1 to [`MAX_LOG_ENTRIES`]; that many when absent).
    limit: Option<u64>,
}

async fn log_entries(
    State(state): State<AdminState>,
    caller: Caller,
    params: Result<UrlQuery<EntriesParams>, QueryRejection>,
) -> ApiResult {
    let UrlQuery(p) = params.map_err(|e| bad_request(e.body_text()))?;
    if let Some(limit) = p.limit
        && !(1..=MAX_LOG_ENTRIES).contains(&limit)
    {
        return Err(bad_request(format!(
            "limit must be between 1 and {MAX_LOG_ENTRIES}, not {limit}"
        )));
    }
    ask(
        &state,
        &caller,
        Query::LogEntries {
            tenant: p.tenant,
            from: p.from,
            limit: p.limit,
        },
    )
    .await
}

fn log_bytes(data: Option<Vec<u8>>, content_type: &'static str) -> Response {
    match data {
        Some(d) => ([(header::CONTENT_TYPE, content_type)], d).into_response(),
        None => ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such log resource")
            .into_response(),
    }
}

/// A public log resource's answer (found or not, or the trustee's error), readable by a page of
/// any origin: the standalone verifier, opened from disk, fetches the checkpoint, the key and
/// the hash tiles from another origin. Nothing that needs a bearer is ever sent this way.
fn public(resp: Result<Response, ApiError>) -> Response {
    let mut resp = resp.unwrap_or_else(IntoResponse::into_response);
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        axum::http::HeaderValue::from_static("*"),
    );
    resp
}

/// The latest signed checkpoint: public.
async fn log_checkpoint(State(state): State<AdminState>) -> Response {
    public(
        state
            .trustee
            .log_read(&LogRead::Checkpoint)
            .await
            .map(|data| log_bytes(data, "text/plain; charset=utf-8"))
            .map_err(ApiError::from),
    )
}

/// The log's verifier key in signed-note form: public.
async fn log_key(State(state): State<AdminState>) -> Response {
    public(
        state
            .trustee
            .log_read(&LogRead::Key)
            .await
            .map(|data| log_bytes(data, "text/plain; charset=utf-8"))
            .map_err(ApiError::from),
    )
}

/// Hash tiles are public (readable from any origin); entry bundles only for officers and
/// auditors, since they hold every tenant's entries (a tenant reads its own through
/// `/v1/log/entries`), and never for another origin's page.
async fn log_tile(
    State(state): State<AdminState>,
    caller: Result<Caller, ApiError>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    if !path.starts_with("tile/") {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such log resource",
        ));
    }
    if path.starts_with("tile/entries/") {
        let caller = caller?;
        caller.require(
            &[Role::Officer, Role::Auditor],
            "read entry bundles (tenant admins read their entries at /v1/log/entries)",
        )?;
        let data = state.trustee.log_read(&LogRead::Tile { path }).await?;
        return Ok(log_bytes(data, "application/octet-stream"));
    }
    Ok(public(
        state
            .trustee
            .log_read(&LogRead::Tile { path })
            .await
            .map(|data| log_bytes(data, "application/octet-stream"))
            .map_err(ApiError::from),
    ))
}

/// Each site's space: for operators planning capacity. Names no tenant and no object.
async fn capacity(State(state): State<AdminState>, caller: Caller) -> ApiResult {
    caller.require(
        &[Role::Officer, Role::Operator, Role::Auditor],
        "read capacity",
    )?;
    let sites: Vec<serde_json::Value> = crate::residency::maintenance(&state)?
        .sites()
        .capacity()
        .await
        .into_iter()
        .map(|(info, cap)| match cap {
            Ok(c) => json!({
                "id": info.id, "jurisdiction": info.jurisdiction, "state": info.state.as_str(),
                "total_bytes": c.map(|c| c.total_bytes), "available_bytes": c.map(|c| c.available_bytes),
            }),
            Err(e) => json!({
                "id": info.id, "jurisdiction": info.jurisdiction, "state": info.state.as_str(),
                "error": e,
            }),
        })
        .collect();
    Ok(Json(json!({ "sites": sites })))
}

/// Rotates a bucket's key and rewraps its objects' keys: the tenant's own admin only, since
/// the rewrap needs the bucket keys released for the tenant.
async fn rotate_bucket_key(
    State(state): State<AdminState>,
    caller: Caller,
    Path((tenant, bucket)): Path<(String, String)>,
    body: Result<Json<RotateKeyRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<JobStarted>), ApiError> {
    // The trustee's ticket for the tenant admin's signed `rotate_bucket_key` statement: without
    // it the trustee releases none of the bucket's keys.
    let Json(RotateKeyRequest { ticket }) = body?;
    let own_admin =
        caller.0.role == Role::TenantAdmin && caller.0.tenant.as_deref() == Some(tenant.as_str());
    if !own_admin {
        return Err(ApiError::forbidden(
            "rotate this tenant's bucket keys (only the tenant's admin can)",
        ));
    }
    let rotation = state.rotation.clone().ok_or_else(|| {
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
        view: JobView {
            kind: "rotate-bucket-key".into(),
            state: "running".into(),
            done: 0,
            total: 0,
            result: None,
            error: None,
        },
    };
    lock_jobs(&state.jobs)?.insert(id.clone(), job);
    let why = Justification::Customer {
        tenant: tenant.clone(),
        principal: caller.0.name.clone(),
        operation: "RotateBucketKey".into(),
        request: Some(ticket),
    };
    let jobs = Arc::clone(&state.jobs);
    let job_id = id.clone();
    tokio::spawn(async move {
        let progress_jobs = Arc::clone(&jobs);
        let progress_id = job_id.clone();
        let progress: RotationProgress = Box::new(move |done, total| {
            if let Ok(mut j) = progress_jobs.lock()
                && let Some(job) = j.get_mut(&progress_id)
            {
                job.view.done = done;
                job.view.total = total;
            }
        });
        let outcome = rotation.rotate(&tenant, &bucket, &why, progress).await;
        if let Ok(mut j) = jobs.lock()
            && let Some(job) = j.get_mut(&job_id)
        {
            match outcome {
                Ok(r) => {
                    job.view.state = "done".into();
                    job.view.result = Some(RotationResult {
                        version: r.version,
                        rewrapped: r.rewrapped,
                        skipped: r.skipped,
                    });
                }
                Err(e) => {
                    job.view.state = "failed".into();
                    job.view.error = Some(e);
                }
            }
        }
    });
    Ok((StatusCode::ACCEPTED, Json(JobStarted { job: id })))
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
) -> Result<Json<JobView>, ApiError> {
    let jobs = lock_jobs(&state.jobs)?;
    match jobs.get(&id) {
        Some(job) if job.owner == caller.0.name => Ok(Json(job.view.clone())),
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
) -> Result<Json<SealStatus>, ApiError> {
    caller.require(&[Role::Officer], "seal the trustee")?;
    let status = trustee_of(&state)?.seal().await?;
    tracing::warn!(by = %obhut_core::logged(&caller.0.name), "trustee sealed by an officer");
    Ok(Json(status))
}

async fn trustee_status(
    State(state): State<AdminState>,
    caller: Caller,
) -> Result<Json<SealStatus>, ApiError> {
    caller.require(
        &[Role::Officer, Role::Operator, Role::Auditor],
        "see the trustee's state",
    )?;
    Ok(Json(trustee_of(&state)?.seal_status().await?))
}

/// The trustee's unseal key and seal epoch, for officers to encrypt their shares to. Pin the
/// key (`obhut trustee unseal --unseal-key`): the admin API could name another.
async fn trustee_unseal_key(
    State(state): State<AdminState>,
    caller: Caller,
) -> Result<Json<obhut_trustee_client::UnsealKey>, ApiError> {
    caller.require(&[Role::Officer], "unseal the trustee")?;
    Ok(Json(trustee_of(&state)?.unseal_key().await?))
}

async fn trustee_unseal(
    State(state): State<AdminState>,
    caller: Caller,
    body: Result<Json<UnsealRequest>, JsonRejection>,
) -> Result<Json<SealStatus>, ApiError> {
    caller.require(&[Role::Officer], "unseal the trustee")?;
    let Json(req) = body?;
    let sealed = match (&req.share, &req.sealed) {
        (None, Some(sealed)) => sealed,
        _ => {
            return Err(bad_request(
                obhut_trustee_client::remote::wire::CLEAR_SHARE_REFUSED,
            ));
        }
    };
    let status = trustee_of(&state)?.unseal_sealed(sealed).await?;
    tracing::info!(by = %obhut_core::logged(&caller.0.name), sealed = status.sealed, given = status.shares_given, "unseal share given");
    Ok(Json(status))
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such admin API endpoint",
    )
}

pub fn router(state: AdminState) -> Router {
    // Console sessions live in the catalog, sealed: any gateway of it serves any session.
    let sessions: Arc<dyn obhut_console::SessionStore> =
        Arc::new(crate::console_sessions::CatalogSessions::new(
            Arc::clone(&state.catalog),
            Arc::new(crate::console_sessions::TrusteeKeySealer(Arc::clone(
                &state.trustee,
            ))),
        ));
    let api = Router::new()
        .route("/v1/health", get(health))
        .route("/v1/whoami", get(whoami))
        .route("/v1/tenants", get(list_tenants))
        .route("/v1/tenants/{name}/policy", get(tenant_policy))
        .route("/v1/act", post(act))
        .route("/v1/principals", get(list_principals))
        .route("/v1/grants", get(list_grants))
        .route("/v1/grants/{id}", get(get_grant))
        .route("/v1/disclosures", get(list_disclosures))
        .route("/v1/signing-keys", get(list_signing_keys))
        .route("/v1/log/entries", get(log_entries))
        .route("/v1/metrics", get(crate::ops::metrics))
        .route("/v1/metrics/history", get(crate::ops::metrics_history))
        .route("/metrics", get(crate::ops::metrics))
        .route("/healthz", get(crate::ops::healthz))
        .route("/readyz", get(crate::ops::readyz))
        .route("/v1/capacity", get(capacity))
        .route("/v1/gateways", get(crate::ops::gateways))
        .route("/log/checkpoint", get(log_checkpoint))
        .route("/log/key", get(log_key))
        .route("/log/{*path}", get(log_tile))
        .route("/v1/tenants/{name}/keys", get(list_keys))
        .route("/v1/sites", get(crate::residency::list_sites))
        .route(
            "/v1/repair",
            get(crate::residency::repair_status).post(crate::residency::repair_start),
        )
        .route("/v1/residency", get(crate::residency::residency_report))
        .route(
            "/v1/residency/totals",
            get(crate::residency::residency_totals),
        )
        .route("/v1/trustee/status", get(trustee_status))
        .route("/v1/trustee/disconnect", get(disconnect_status))
        .route("/v1/quorum", get(quorum))
        .route("/v1/trustee/unseal", post(trustee_unseal))
        .route("/v1/trustee/unseal-key", get(trustee_unseal_key))
        .route("/v1/trustee/seal", post(trustee_seal))
        .route(
            "/v1/tenants/{name}/buckets/{bucket}/rotate-key",
            post(rotate_bucket_key),
        )
        .route("/v1/jobs/{id}", get(get_job))
        .route(
            "/v1/tenants/{name}/quota",
            get(crate::quota::get_tenant_quota).put(crate::quota::set_tenant_quota),
        )
        .route(
            "/v1/tenants/{name}/quota/recount",
            post(crate::quota::recount_tenant_usage),
        )
        .route(
            "/v1/tenants/{name}/buckets/{bucket}/quota",
            get(crate::quota::get_bucket_quota).put(crate::quota::set_bucket_quota),
        )
        .fallback(not_found)
        .with_state(state);
    // The console calls this same router with the signed-in principal's bearer.
    api.clone().merge(obhut_console::router(
        api,
        obhut_console::SessionLimits::default(),
        sessions,
    ))
}
