//! Operations endpoints of the admin listener: `/healthz` and `/readyz` (no authentication,
//! states only), `/metrics`, `/v1/metrics/history` and `/v1/gateways` (officers, operators and
//! auditors). None of them names a tenant, a bucket or an object.

use crate::api::{AdminState, ApiError, Caller};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use obhut_catalog::Catalog;
use obhut_metrics::{Readiness, RepairGauges, SiteHealth, Snapshot, TrusteeState};
use obhut_trustee_client::{LogRead, Role, TrusteeClient};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// How long a check waits for the trustee and for the catalog.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

async fn trustee_state(trustee: &dyn TrusteeClient) -> TrusteeState {
    match tokio::time::timeout(CHECK_TIMEOUT, trustee.seal_status()).await {
        Ok(Ok(s)) if s.sealed => TrusteeState::Sealed,
        Ok(Ok(s)) if s.disconnected => TrusteeState::Disconnected,
        Ok(Ok(_)) => TrusteeState::Unsealed,
        _ => TrusteeState::Unreachable,
    }
}

async fn catalog_answers(catalog: &dyn Catalog) -> bool {
    matches!(
        tokio::time::timeout(CHECK_TIMEOUT, catalog.list_sites()).await,
        Ok(Ok(_))
    )
}

/// The sites as this process sees them (health checks included), or as the catalog records
/// them in a process that keeps no sites.
async fn sites(state: &AdminState) -> Vec<SiteHealth> {
    if let Some(m) = &state.maintenance {
        return m
            .sites()
            .infos()
            .into_iter()
            .map(|i| SiteHealth {
                id: i.id,
                state: i.state.as_str(),
            })
            .collect();
    }
    match tokio::time::timeout(CHECK_TIMEOUT, state.catalog.list_sites()).await {
        Ok(Ok(recs)) => recs
            .into_iter()
            .map(|r| SiteHealth {
                id: r.id,
                state: r.state.as_str(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Alive: 200 whenever the process answers.
pub(crate) async fn healthz() -> Response {
    json(StatusCode::OK, obhut_metrics::LIVENESS_JSON.to_owned())
}

/// Ready: 200 when the trustee answers unsealed and the catalog answers, else 503.
pub(crate) async fn readyz(State(state): State<AdminState>) -> Response {
    let (trustee, catalog_ok) = tokio::join!(
        trustee_state(state.trustee.as_ref()),
        catalog_answers(state.catalog.as_ref())
    );
    let r = Readiness {
        trustee,
        catalog_ok,
        sites: sites(&state).await,
        background: state.workers.background_role(),
    };
    let status = StatusCode::from_u16(r.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    json(status, r.to_json())
}

/// The log's size, from its checkpoint (the second line of the note).
async fn log_entries(trustee: &dyn TrusteeClient) -> Option<u64> {
    let cp = tokio::time::timeout(CHECK_TIMEOUT, trustee.log_read(&LogRead::Checkpoint))
        .await
        .ok()?
        .ok()??;
    String::from_utf8_lossy(&cp).lines().nth(1)?.parse().ok()
}

fn age_of(path: &std::path::Path) -> Option<Duration> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(
        SystemTime::now()
            .duration_since(modified)
            .unwrap_or(Duration::ZERO),
    )
}

/// How long a bearer that the trustee accepted for `/metrics` is accepted again without it,
/// while the trustee cannot be asked.
const SCRAPER_GRACE: Duration = Duration::from_secs(15 * 60);
/// Bearers remembered at most (by hash).
const MAX_SCRAPERS: usize = 64;

/// Hashes of bearers the trustee accepted for `/metrics`, and when. Principals are the
/// trustee's: with the trustee down nobody could be authenticated, and the metrics that say it
/// is down could never be read. A scraper seen within [`SCRAPER_GRACE`] keeps reading them
/// (metrics name no tenant data); every other endpoint still asks the trustee.
fn scrapers() -> &'static Mutex<HashMap<String, Instant>> {
    static SCRAPERS: OnceLock<Mutex<HashMap<String, Instant>>> = OnceLock::new();
    SCRAPERS.get_or_init(Mutex::default)
}

fn bearer_hash_of(headers: &HeaderMap) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?
        .trim();
    Some(obhut_crypto::principal::bearer_hash(bearer))
}

/// Admits the caller of `/metrics`: an officer, operator or auditor the trustee accepts, or,
/// while the trustee cannot be asked, one it accepted within [`SCRAPER_GRACE`].
fn admit_scraper(caller: Result<Caller, ApiError>, headers: &HeaderMap) -> Result<(), ApiError> {
    let mut seen = scrapers().lock().unwrap_or_else(PoisonError::into_inner);
    let now = Instant::now();
    seen.retain(|_, at| now.duration_since(*at) < SCRAPER_GRACE);
    match caller {
        Ok(caller) => {
            caller.require(
                &[Role::Officer, Role::Operator, Role::Auditor],
                "read metrics",
            )?;
            if let Some(hash) = bearer_hash_of(headers) {
                if seen.len() >= MAX_SCRAPERS && !seen.contains_key(&hash) {
                    seen.clear();
                }
                seen.insert(hash, now);
            }
            Ok(())
        }
        Err(e) if e.is_unavailable() => match bearer_hash_of(headers) {
            Some(hash) if seen.contains_key(&hash) => Ok(()),
            _ => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// Quotas and their usage summed per kind of scope; `None` if the catalog cannot say.
async fn quota_gauges(catalog: &dyn obhut_catalog::Catalog) -> Option<obhut_metrics::Quotas> {
    let statuses = match catalog.quota_statuses(crate::api::now_ms()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "quotas could not be read for the metrics");
            return None;
        }
    };
    Some(crate::quota::gauges(&statuses))
}

/// Counters and histograms since start, and the state of the trustee, the log, the sites and
/// repair, in the Prometheus text format (OpenMetrics if the scraper asks for it).
pub(crate) async fn metrics(
    State(state): State<AdminState>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    admit_scraper(caller, &headers)?;
    if !obhut_metrics::enabled() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "metrics are turned off in this process's configuration (metrics = false)",
        ));
    }
    let (trustee, catalog_up, log_entries) = tokio::join!(
        trustee_state(state.trustee.as_ref()),
        catalog_answers(state.catalog.as_ref()),
        log_entries(state.trustee.as_ref())
    );
    let repair = state.maintenance.as_ref().map(|m| {
        let st = m.status();
        let running = st.state == obhut_maintenance::RepairState::Running;
        RepairGauges {
            running,
            backlog: if running {
                st.objects_total
                    .saturating_sub(st.objects_done + st.objects_failed)
            } else {
                0
            },
            failed: st.objects_failed,
            queued: m.requests().queued(),
            scrub_bad: st.scrub_bad,
        }
    });
    let snapshot = Snapshot {
        trustee: Some(trustee),
        catalog_up: Some(catalog_up),
        log_entries,
        log_checkpoint_age: state.log_checkpoint.as_deref().and_then(age_of),
        sites: sites(&state).await,
        repair,
        // The embedded catalog has no connection pool.
        catalog_pool: None,
        quotas: quota_gauges(state.catalog.as_ref()).await,
        background_leader: state.workers.background_role().map(|role| role == "leader"),
    };
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let body = obhut_metrics::get()
        .render(&snapshot, openmetrics)
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the metrics could not be rendered",
            )
        })?;
    Ok((
        [(
            header::CONTENT_TYPE,
            obhut_metrics::content_type(openmetrics),
        )],
        body,
    )
        .into_response())
}

/// The last hour of this process's S3 and site metrics, one point per sampling interval
/// (rates, latency percentiles, error rates), as JSON: what the operator's charts draw.
pub(crate) async fn metrics_history(
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    admit_scraper(caller, &headers)?;
    let history = obhut_metrics::history::get()
        .filter(|_| obhut_metrics::enabled())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "this process keeps no metrics history (metrics = false, or not a gateway)",
            )
        })?;
    let points: Vec<serde_json::Value> = history
        .points()
        .into_iter()
        .map(|p| {
            serde_json::json!({
                "at_ms": p.at_ms,
                "requests_per_s": p.requests_per_s,
                "error_ratio": p.error_ratio,
                "p50_ms": p.p50_ms,
                "p99_ms": p.p99_ms,
                "site_errors_per_s": p.site_errors_per_s,
                "site_ops_per_s": p.site_ops_per_s,
            })
        })
        .collect();
    let body = serde_json::json!({
        "interval_ms": u64::try_from(history.interval().as_millis()).unwrap_or(u64::MAX),
        "capacity": history.capacity(),
        "points": points,
    });
    Ok(json(StatusCode::OK, body.to_string()))
}

/// A gateway unseen for more than this many of its own heartbeat intervals is stale.
pub const STALE_AFTER_BEATS: u64 = 3;

/// The longest heartbeat interval a row is judged by.
pub const MAX_BEAT_MS: u64 = 60_000;

/// A gateway unseen for this long is `gone` (stopped, restarted under a new id, or lost), no
/// longer `stale`: listed until the registry forgets it, but no alert's concern.
pub const GONE_AFTER_MS: i64 = 10 * 60 * 1000;

/// One row of `GET /v1/gateways`.
#[derive(serde::Serialize)]
struct GatewayView {
    id: String,
    version: String,
    started_ms: i64,
    seen_ms: i64,
    /// How long ago the catalog last heard from it, by the catalog's clock.
    seen_ago_ms: i64,
    /// `leader` (holds the lease on background work) or `standby`.
    background: &'static str,
    /// `ok`, `not_ready` (its last beat said so), `stale` (unseen for more than
    /// [`STALE_AFTER_BEATS`] of its heartbeat intervals) or `gone` (unseen for more than
    /// [`GONE_AFTER_MS`]).
    health: &'static str,
    beat_ms: u64,
    readiness: Option<obhut_maintenance::ReadinessSummary>,
    workers: Vec<obhut_maintenance::WorkerBeat>,
}

fn gateway_view(row: obhut_catalog::GatewayRow, now_ms: i64) -> GatewayView {
    let status: Option<obhut_maintenance::GatewayStatus> =
        serde_json::from_str(&row.beat.status).ok();
    let seen_ago_ms = now_ms.saturating_sub(row.seen_ms).max(0);
    // A row whose status does not parse (another release's) counts its interval as ours. The
    // row is the catalog's, which the provider can write: its interval is held to at most a
    // minute, so that no row can make itself never stale.
    let beat_ms = status
        .as_ref()
        .map_or(5_000, |s| s.beat_ms)
        .clamp(1, MAX_BEAT_MS);
    let stale_ms = i64::try_from(beat_ms.saturating_mul(STALE_AFTER_BEATS)).unwrap_or(i64::MAX);
    let health = if seen_ago_ms > GONE_AFTER_MS {
        "gone"
    } else if seen_ago_ms > stale_ms {
        "stale"
    } else if status.as_ref().is_some_and(|s| s.readiness.ready()) {
        "ok"
    } else {
        "not_ready"
    };
    GatewayView {
        id: row.beat.id,
        version: row.beat.version,
        started_ms: row.beat.started_ms,
        seen_ms: row.seen_ms,
        seen_ago_ms,
        background: if row.beat.background {
            "leader"
        } else {
            "standby"
        },
        health,
        beat_ms,
        readiness: status.as_ref().map(|s| s.readiness.clone()),
        workers: status.map(|s| s.workers).unwrap_or_default(),
    }
}

/// `GET /v1/gateways`: the registry of the processes sharing the catalog, with each one's
/// health judged by the catalog's clock (officers, operators and auditors).
pub(crate) async fn gateways(State(state): State<AdminState>, caller: Caller) -> Response {
    if let Err(e) = caller.require(
        &[Role::Officer, Role::Operator, Role::Auditor],
        "see the gateways",
    ) {
        return e.into_response();
    }
    match state
        .catalog
        .list_gateways(obhut_catalog::MAX_GATEWAY_ROWS)
        .await
    {
        Ok(list) => {
            let now_ms = list.now_ms;
            let rows: Vec<GatewayView> = list
                .gateways
                .into_iter()
                .map(|r| gateway_view(r, now_ms))
                .collect();
            axum::Json(serde_json::json!({
                "now_ms": now_ms,
                "stale_after_beats": STALE_AFTER_BEATS,
                "gateways": rows,
            }))
            .into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[cfg(test)]
mod gateway_tests {
    use super::*;
    use obhut_catalog::{GatewayBeat, GatewayRow};

    fn row(seen_ms: i64, status: &str) -> GatewayRow {
        GatewayRow {
            beat: GatewayBeat {
                id: "gw".into(),
                version: "1".into(),
                started_ms: 0,
                background: true,
                status: status.into(),
            },
            seen_ms,
        }
    }

    const READY: &str = r#"{"beat_ms":1000,"readiness":{"trustee":"unsealed","catalog_ok":true,"sites_ok":2,"sites_total":2},"workers":[]}"#;
    const SEALED: &str = r#"{"beat_ms":1000,"readiness":{"trustee":"sealed","catalog_ok":true,"sites_ok":2,"sites_total":2},"workers":[]}"#;

    #[test]
    fn health_is_ok_not_ready_or_stale_by_the_catalogs_clock() {
        let v = gateway_view(row(10_000, READY), 12_000);
        assert_eq!(
            (v.health, v.seen_ago_ms, v.background),
            ("ok", 2_000, "leader")
        );
        assert_eq!(
            gateway_view(row(10_000, SEALED), 12_000).health,
            "not_ready"
        );
        // More than three of its beats unseen: stale, whatever it last said.
        assert_eq!(gateway_view(row(10_000, READY), 13_000).health, "ok");
        assert_eq!(gateway_view(row(10_000, READY), 13_001).health, "stale");
        // A status that does not parse is not taken for ready.
        assert_eq!(gateway_view(row(10_000, "?"), 10_000).health, "not_ready");
        // Ten minutes unseen: gone, no longer an alert's concern.
        let gone = 10_000 + GONE_AFTER_MS;
        assert_eq!(gateway_view(row(10_000, READY), gone).health, "stale");
        assert_eq!(gateway_view(row(10_000, READY), gone + 1).health, "gone");
        // A row (the provider can write the catalog) cannot make itself never stale: its
        // interval counts as at most a minute.
        let lazy = READY.replace("\"beat_ms\":1000", &format!("\"beat_ms\":{}", u64::MAX));
        let v = gateway_view(row(10_000, &lazy), 10_000 + 3 * 60_000 + 1);
        assert_eq!((v.health, v.beat_ms), ("stale", MAX_BEAT_MS));
    }
}
