//! The web console at `<admin-url>/console/`: server-rendered pages for officers, operators,
//! auditors and tenant admins, in English and German.
//!
//! A principal signs in with its admin bearer (the browser derives it from the token, which
//! never leaves the browser); the console keeps it in a server-side session named by an
//! HttpOnly, SameSite=Strict cookie (Secure when served over TLS), in the [`SessionStore`] it
//! is given (the obhut binary's keeps sessions sealed in the catalog, for every gateway), and
//! calls the admin API's own
//! router with it, so every page is authorised exactly as the API is: the console has no data
//! access of its own. Every form carries a CSRF token; every page is sent with a
//! Content-Security-Policy that allows no inline script.
//!
//! Officers and tenant admins decide on grants (and officers on disclosure requests) in the
//! browser: the page shows the statement, the browser signs it with its own non-extractable
//! WebCrypto key (enrolled by the principal with `obhut signing-key enrol`), and the console
//! carries the signed statement to `/v1/act` as the CLI would.
//!
//! It owns sessions and HTML. It never sees a principal's token (only the bearer derived from
//! it), never holds a signing key, and reaches no catalog, trustee or key material except
//! through the admin API.

mod alerts;
mod charts;
mod decide;
mod i18n;
mod logview;
mod map;
mod ops;
#[rustfmt::skip]
mod outlines;
mod pages;
mod quorum;
mod residency;
mod session;

use axum::Router;
use axum::routing::{get, post};
use std::sync::Arc;
use std::time::Duration;

pub use session::{
    Bounds, Current, Cutoff, MemoryStore, Principal, Record, SessionLimits, SessionStore, Sessions,
    StoreError, full_message,
};

/// The console's routes under `/console/`, calling `api` (the admin API's router, without the
/// console) for everything it shows, keeping sessions in `store`.
pub fn router(api: Router, limits: SessionLimits, store: Arc<dyn SessionStore>) -> Router {
    let state = pages::Console::new(api, limits, store);
    Router::new()
        .route("/console", get(pages::home))
        .route("/console/", get(pages::home))
        .route(
            "/console/sign-in",
            get(pages::sign_in_form).post(pages::sign_in),
        )
        .route("/console/sign-out", post(pages::sign_out))
        .route("/console/decide", post(decide::decide))
        .route("/console/operator", get(pages::operator))
        .route("/console/officer", get(pages::officer))
        .route("/console/tenant", get(pages::tenant))
        .route(
            "/console/tenant/residency",
            get(residency::tenant_residency),
        )
        .route(
            "/console/tenant/residency/report",
            get(residency::tenant_residency_report),
        )
        .route("/console/auditor", get(pages::auditor))
        .route("/console/assets/{name}", get(pages::asset))
        .route("/console/{*rest}", get(pages::not_found))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(Arc::new(state))
}

/// No inline script or style, nothing from elsewhere, no framing, nothing cached.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(mut resp: axum::response::Response) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(8 * 3600),
            max_sessions: 10_000,
            max_per_principal: 16,
            touch_every: Duration::from_secs(60),
        }
    }
}
