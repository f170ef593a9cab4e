//! The console's pages: sign-in and sign-out, one page per role, assets. Each page asks the
//! admin API (its router, called in process with the session's bearer) for what it shows.
//!
//! It sees what the admin API answers the signed-in principal, nothing more.

use crate::decide::Decisions;
use crate::i18n::{Lang, Texts};
use crate::logview::LogView;
use crate::session::{
    COOKIE, Current, LANG_COOKIE, Principal, SIGN_IN_COOKIE, SessionLimits, SessionStore, Sessions,
    cookie, random_token, same_secret, set_cookie,
};
use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use tower::ServiceExt;
use zeroize::Zeroizing;

/// The console's state: the admin API it calls and the sessions.
pub struct Console {
    api: Router,
    sessions: Sessions,
    /// The S3 request totals at the previous look at the operator's page, for rates.
    last_look: crate::charts::LastLook,
    /// The figures of the previous look at the operator's page, for the alerts about growth.
    pub(crate) alert_memory: crate::alerts::Memory,
}

impl Console {
    pub fn new(api: Router, limits: SessionLimits, store: Arc<dyn SessionStore>) -> Self {
        Self {
            api,
            sessions: Sessions::new(limits, store),
            last_look: crate::charts::LastLook::default(),
            alert_memory: crate::alerts::Memory::default(),
        }
    }

    /// `GET path` on the admin API as the holder of `bearer`.
    async fn call(&self, bearer: Option<&str>, path: &str) -> Result<Answer, String> {
        let mut req = http::Request::get(path);
        if let Some(bearer) = bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {bearer}"));
        }
        let req = req.body(Body::empty()).map_err(|e| e.to_string())?;
        self.send(req).await
    }

    /// `GET path`'s JSON whatever its status, for answers that say something in either case
    /// (`/readyz` answers 503 with the reasons when not ready).
    pub(crate) async fn get_json_any_status(
        &self,
        bearer: Option<&str>,
        path: &str,
    ) -> Result<Value, String> {
        let a = self.call(bearer, path).await?;
        serde_json::from_slice(&a.bytes).map_err(|e| e.to_string())
    }

    /// `GET path` as text, for answers that are not JSON (`/metrics`).
    pub(crate) async fn get_text(
        &self,
        bearer: Option<&str>,
        path: &str,
    ) -> Result<String, String> {
        let a = self.call(bearer, path).await?;
        if a.status.is_success() {
            Ok(String::from_utf8_lossy(&a.bytes).into_owned())
        } else {
            Err(a.json().err().unwrap_or_default())
        }
    }

    /// `GET path` on the admin API as the holder of `bearer`, its JSON answer or why not.
    pub(crate) async fn get_json(&self, bearer: Option<&str>, path: &str) -> Result<Value, String> {
        self.call(bearer, path).await?.json()
    }

    /// `POST path` with a JSON body on the admin API as the holder of `bearer`.
    pub(crate) async fn post_json(
        &self,
        bearer: Option<&str>,
        path: &str,
        body: &Value,
    ) -> Result<Answer, String> {
        let mut req = http::Request::post(path).header(header::CONTENT_TYPE, "application/json");
        if let Some(bearer) = bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {bearer}"));
        }
        let req = req
            .body(Body::from(body.to_string()))
            .map_err(|e| e.to_string())?;
        self.send(req).await
    }

    /// `GET path` on the admin API as the holder of `bearer`, its answer's status and body
    /// passed on as they come (for downloads: nothing is collected here).
    pub(crate) async fn pass_through(
        &self,
        bearer: &str,
        path: &str,
    ) -> Result<axum::response::Response, String> {
        let req = http::Request::get(path)
            .header(header::AUTHORIZATION, format!("Bearer {bearer}"))
            .body(Body::empty())
            .map_err(|e| e.to_string())?;
        self.api
            .clone()
            .oneshot(req)
            .await
            .map_err(|e| e.to_string())
    }

    async fn send(&self, req: http::Request<Body>) -> Result<Answer, String> {
        let resp = self
            .api
            .clone()
            .oneshot(req)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), MAX_ANSWER)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Answer { status, bytes })
    }
}

/// The largest admin API answer a page reads.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) bytes: axum::body::Bytes,
}

impl Answer {
    fn json(&self) -> Result<Value, String> {
        let v: Value = serde_json::from_slice(&self.bytes).map_err(|e| e.to_string())?;
        if self.status.is_success() {
            Ok(v)
        } else {
            Err(format!(
                "{} {}",
                self.status.as_u16(),
                v.get("message").and_then(Value::as_str).unwrap_or("")
            ))
        }
    }
}

/// What every console request knows: its language, whether it came over TLS, its session.
pub struct Ctx {
    pub(crate) lang: Lang,
    /// `?lang=` asked for a language: remember it.
    lang_chosen: bool,
    secure: bool,
    headers: HeaderMap,
    pub(crate) query: HashMap<String, String>,
    session: Option<Current>,
}

impl FromRequestParts<Arc<Console>> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Arc<Console>,
    ) -> Result<Self, Self::Rejection> {
        let query: HashMap<String, String> = parts
            .uri
            .query()
            .map(|q| {
                q.split('&')
                    .filter_map(|p| p.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let chosen = query.get("lang").and_then(|l| Lang::parse(l));
        let lang = chosen
            .or_else(|| cookie(&parts.headers, LANG_COOKIE).and_then(Lang::parse))
            .unwrap_or_else(|| {
                Lang::from_accept_language(
                    parts
                        .headers
                        .get(header::ACCEPT_LANGUAGE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or(""),
                )
            });
        let secure = parts
            .extensions
            .get::<obhut_listen::Connection>()
            .is_some_and(|c| c.tls);
        let session = match cookie(&parts.headers, COOKIE) {
            Some(id) => console.sessions.get(id).await,
            None => None,
        };
        Ok(Self {
            lang,
            lang_chosen: chosen.is_some(),
            secure,
            headers: parts.headers.clone(),
            query,
            session,
        })
    }
}

impl Ctx {
    pub(crate) fn t(&self) -> &'static Texts {
        self.lang.texts()
    }

    /// A form post from another site (browsers say so in `Sec-Fetch-Site`), which no token
    /// check should even be reached for.
    fn cross_site(&self) -> bool {
        self.headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v != "same-origin" && v != "none")
    }

    /// `resp` with the language cookie set when `?lang=` chose one.
    pub(crate) fn finish(&self, mut resp: Response) -> Response {
        if self.lang_chosen
            && let Ok(v) = HeaderValue::from_str(&set_cookie(
                LANG_COOKIE,
                self.lang.code(),
                self.secure,
                Some(365 * 24 * 3600),
            ))
        {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
        resp
    }
}

/// One navigation link.
pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// A table of what the admin API answered.
#[derive(Default)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// One part of a page: a table, a text, or the API's refusal.
pub struct Section {
    pub title: &'static str,
    pub note: Option<&'static str>,
    pub table: Option<Table>,
    pub text: Option<String>,
    pub error: Option<String>,
    pub next: Option<String>,
    /// A link at the section's end: where, and its text.
    pub link: Option<(String, &'static str)>,
    /// A chart drawn by [`crate::charts`] (numbers and fixed labels, escaped there).
    pub svg: Option<String>,
}

impl Section {
    pub(crate) fn new(title: &'static str) -> Self {
        Self {
            title,
            note: None,
            table: None,
            text: None,
            error: None,
            next: None,
            link: None,
            svg: None,
        }
    }
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage<'a> {
    t: &'a Texts,
    lang: &'a str,
    csrf: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "page.html")]
struct RolePage<'a> {
    t: &'a Texts,
    lang: &'a str,
    who: &'a Principal,
    csrf: &'a str,
    title: &'a str,
    nav: Vec<NavItem>,
    intro: Option<&'a str>,
    decisions: Option<Decisions>,
    decided: bool,
    sections: Vec<Section>,
    log: Option<LogView>,
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    t: &'a Texts,
    lang: &'a str,
    title: &'a str,
    text: &'a str,
}

fn html(status: StatusCode, body: Result<String, askama::Error>) -> Response {
    match body {
        Ok(body) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console page could not be rendered");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "page could not be rendered",
            )
                .into_response()
        }
    }
}

pub(crate) fn message(ctx: &Ctx, status: StatusCode, title: &str, text: &str) -> Response {
    let t = ctx.t();
    html(
        status,
        MessagePage {
            t,
            lang: ctx.lang.code(),
            title,
            text,
        }
        .render(),
    )
}

/// The pages of each role: (path, role as the admin API names it).
const ROLE_PAGES: [(&str, &str); 4] = [
    ("/console/officer", "officer"),
    ("/console/operator", "operator"),
    ("/console/auditor", "auditor"),
    ("/console/tenant", "tenant-admin"),
];

pub(crate) fn page_of(role: &str) -> &'static str {
    ROLE_PAGES
        .iter()
        .find(|(_, r)| *r == role)
        .map_or("/console/sign-in", |(p, _)| p)
}

fn nav(t: &'static Texts, role: &str) -> Vec<NavItem> {
    let label = |r: &str| match r {
        "officer" => t.officer,
        "operator" => t.operator,
        "auditor" => t.auditor,
        _ => t.tenant_admin,
    };
    let mut items: Vec<NavItem> = ROLE_PAGES
        .iter()
        .filter(|(_, r)| *r == role)
        .map(|(href, r)| NavItem {
            href,
            label: label(r),
            current: true,
        })
        .collect();
    if role == "tenant-admin" {
        items.push(NavItem {
            href: "/console/tenant/residency",
            label: t.residency,
            current: false,
        });
    }
    items
}

pub async fn home(ctx: Ctx) -> Response {
    let to = ctx
        .session
        .as_ref()
        .map_or("/console/sign-in", |s| page_of(&s.principal.role));
    ctx.finish(Redirect::to(to).into_response())
}

pub async fn sign_in_form(ctx: Ctx) -> Response {
    sign_in_page(&ctx, StatusCode::OK, None)
}

fn sign_in_page(ctx: &Ctx, status: StatusCode, error: Option<&str>) -> Response {
    let csrf = random_token();
    let mut resp = html(
        status,
        SignInPage {
            t: ctx.t(),
            lang: ctx.lang.code(),
            csrf: &csrf,
            error,
        }
        .render(),
    );
    if let Ok(v) = HeaderValue::from_str(&set_cookie(SIGN_IN_COOKIE, &csrf, ctx.secure, Some(900)))
    {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    ctx.finish(resp)
}

pub async fn sign_in(
    State(console): State<Arc<Console>>,
    ctx: Ctx,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let form = form_fields(form);
    let t = ctx.t();
    let expected = cookie(&ctx.headers, SIGN_IN_COOKIE).unwrap_or("");
    let given = form.get("csrf").map_or("", String::as_str);
    if ctx.cross_site() || expected.is_empty() || !same_secret(expected, given) {
        return message(&ctx, StatusCode::FORBIDDEN, t.forbidden, t.bad_form);
    }
    let bearer = Zeroizing::new(form.get("bearer").map_or("", |b| b.trim()).to_owned());
    if bearer.starts_with("obt_") {
        return sign_in_page(&ctx, StatusCode::BAD_REQUEST, Some(t.token_sent));
    }
    if !bearer.starts_with("obb_") || bearer.len() > 200 {
        return sign_in_page(&ctx, StatusCode::BAD_REQUEST, Some(t.not_a_bearer));
    }
    let who = match console.call(Some(&bearer), "/v1/whoami").await {
        Ok(a) => a.json(),
        Err(e) => Err(e),
    };
    let who = match who {
        Ok(v) => v,
        Err(e) => {
            let shown = format!("{}: {e}", t.api_refused);
            return sign_in_page(&ctx, StatusCode::UNAUTHORIZED, Some(&shown));
        }
    };
    let principal = Principal {
        name: who["name"].as_str().unwrap_or_default().to_owned(),
        role: who["role"].as_str().unwrap_or_default().to_owned(),
        tenant: who["tenant"].as_str().map(str::to_owned),
    };
    let to = page_of(&principal.role);
    tracing::info!(principal = %principal.name, role = %principal.role, "console sign-in");
    let id = match console.sessions.start(principal, bearer).await {
        Ok(id) => id,
        Err(e) => {
            tracing::warn!(error = %e, "a console session could not be started");
            let shown = format!("{}: {e}", t.session_not_kept);
            return sign_in_page(&ctx, StatusCode::SERVICE_UNAVAILABLE, Some(&shown));
        }
    };
    let mut resp = Redirect::to(to).into_response();
    for c in [
        set_cookie(COOKIE, &id, ctx.secure, None),
        set_cookie(SIGN_IN_COOKIE, "", ctx.secure, Some(0)),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    ctx.finish(resp)
}

/// A form's fields; none for a body that is not a form (refused then for want of a token).
pub(crate) fn form_fields(
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> HashMap<String, String> {
    form.map(|Form(f)| f).unwrap_or_default()
}

/// The session of a form post whose CSRF token matches, or the response refusing it.
pub(crate) fn checked_post(
    ctx: &Ctx,
    form: &HashMap<String, String>,
) -> Result<Current, Box<Response>> {
    let t = ctx.t();
    let Some(session) = &ctx.session else {
        return Err(Box::new(
            ctx.finish(Redirect::to("/console/sign-in").into_response()),
        ));
    };
    let given = form.get("csrf").map_or("", String::as_str);
    if ctx.cross_site() || !same_secret(&session.csrf, given) {
        return Err(Box::new(message(
            ctx,
            StatusCode::FORBIDDEN,
            t.forbidden,
            t.bad_form,
        )));
    }
    Ok(Current {
        id: session.id.clone(),
        principal: session.principal.clone(),
        bearer: session.bearer.clone(),
        csrf: session.csrf.clone(),
    })
}

pub async fn sign_out(
    State(console): State<Arc<Console>>,
    ctx: Ctx,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let form = form_fields(form);
    let session = match checked_post(&ctx, &form) {
        Ok(s) => s,
        Err(resp) => return *resp,
    };
    if let Err(e) = console.sessions.end(&session.id).await {
        tracing::warn!(error = %e, "a console session could not be ended");
        let t = ctx.t();
        return message(
            &ctx,
            StatusCode::SERVICE_UNAVAILABLE,
            t.session_not_kept,
            &e.to_string(),
        );
    }
    let mut resp = Redirect::to("/console/sign-in").into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(COOKIE, "", ctx.secure, Some(0))) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// The session if its role is `role`, else the response: sign-in, or 403.
pub(crate) fn session_of_role<'a>(ctx: &'a Ctx, role: &str) -> Result<&'a Current, Box<Response>> {
    let t = ctx.t();
    match &ctx.session {
        None => Err(Box::new(
            ctx.finish(Redirect::to("/console/sign-in").into_response()),
        )),
        Some(s) if s.principal.role == role => Ok(s),
        Some(_) => Err(Box::new(ctx.finish(message(
            ctx,
            StatusCode::FORBIDDEN,
            t.forbidden,
            t.forbidden_text,
        )))),
    }
}

/// A section showing what `GET path` answers, as a table (or text, for text answers).
async fn section(
    console: &Console,
    bearer: Option<&str>,
    title: &'static str,
    path: &str,
    columns: &[&str],
) -> Section {
    let mut s = Section::new(title);
    match console.call(bearer, path).await {
        Err(e) => s.error = Some(e),
        Ok(a) if a.status.is_success() && serde_json::from_slice::<Value>(&a.bytes).is_err() => {
            s.text = Some(String::from_utf8_lossy(&a.bytes).into_owned());
        }
        Ok(a) => match a.json() {
            Ok(v) => s.table = Some(table(&v, columns)),
            Err(e) => s.error = Some(e),
        },
    }
    s
}

pub(crate) fn render_role_page(
    ctx: &Ctx,
    session: &Current,
    title: &'static str,
    intro: Option<&'static str>,
    decisions: Option<Decisions>,
    sections: Vec<Section>,
    log: Option<LogView>,
) -> Response {
    let t = ctx.t();
    ctx.finish(html(
        StatusCode::OK,
        RolePage {
            t,
            lang: ctx.lang.code(),
            who: &session.principal,
            csrf: &session.csrf,
            title,
            nav: nav(t, &session.principal.role),
            intro,
            decisions,
            decided: ctx.query.contains_key("decided"),
            sections,
            log,
        }
        .render(),
    ))
}

pub async fn operator(State(console): State<Arc<Console>>, ctx: Ctx) -> Response {
    let session = match session_of_role(&ctx, "operator") {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let t = ctx.t();
    let ot = crate::ops::texts(ctx.lang);
    let b = Some(session.bearer.as_str());
    // Alerts first; the figures for them are read before the charts' own look.
    let mut sections = vec![crate::ops::alerts(&console, b, ot).await];
    let (requests, latency) = charts(&console, b, t).await;
    sections.extend(history(&console, b, t).await);
    sections.extend([
        requests,
        latency,
        residency_map(&console, b, t).await,
        crate::ops::gateways(&console, b, ot).await,
        section(&console, b, t.trustee, "/v1/trustee/status", &[]).await,
        section(&console, None, t.readiness, "/readyz", &[]).await,
        section(&console, b, t.sites, "/v1/sites", &[]).await,
        section(&console, b, t.capacity, "/v1/capacity", &[]).await,
        crate::ops::repair(&console, b, t.repair, ot).await,
    ]);
    render_role_page(
        &ctx,
        session,
        t.operator,
        Some(t.operator_note),
        None,
        sections,
        None,
    )
}

/// The operator's charts over the last hour, from `/v1/metrics/history` as the admin API
/// answers the operator: request rate, latency, and error rates (5xx share, failed site
/// operations).
async fn history(console: &Console, bearer: Option<&str>, t: &'static Texts) -> Vec<Section> {
    let mut rate = Section::new(t.history);
    rate.note = Some(t.history_note);
    let mut latency = Section::new(t.history_latency);
    let mut errors = Section::new(t.history_errors);
    match console.get_json(bearer, "/v1/metrics/history").await {
        Ok(v) => {
            let c = crate::charts::history_charts(&v);
            if c.points == 0 {
                rate.text = Some(t.history_empty.to_owned());
            }
            rate.svg = Some(c.requests);
            latency.svg = Some(c.latency);
            errors.svg = Some(c.errors + &c.sites);
        }
        Err(e) => rate.error = Some(e),
    }
    vec![rate, latency, errors]
}

/// The operator's two charts, from `/metrics` as the admin API answers the operator.
async fn charts(console: &Console, bearer: Option<&str>, t: &'static Texts) -> (Section, Section) {
    let mut requests = Section::new(t.request_rates);
    let mut latency = Section::new(t.request_latency);
    requests.note = Some(t.request_rates_note);
    match console.call(bearer, "/metrics").await {
        Ok(a) if a.status.is_success() => {
            let m = crate::charts::parse(&String::from_utf8_lossy(&a.bytes));
            let rates = console.last_look.rates(&m.requests);
            requests.svg = Some(crate::charts::requests_chart(&m, rates.as_ref()));
            latency.svg = Some(crate::charts::latency_chart(&m));
        }
        Ok(a) => {
            let e = a.json().err().unwrap_or_default();
            requests.error = Some(e.clone());
            latency.error = Some(e);
        }
        Err(e) => {
            requests.error = Some(e.clone());
            latency.error = Some(e);
        }
    }
    (requests, latency)
}

/// The sites on a map of their jurisdiction, from `/v1/sites`.
async fn residency_map(console: &Console, bearer: Option<&str>, t: &'static Texts) -> Section {
    let mut s = Section::new(t.residency_map);
    s.note = Some(t.residency_map_note);
    match console.get_json(bearer, "/v1/sites").await {
        Ok(v) => {
            let text = |x: &Value, k: &str| match x.get(k) {
                Some(Value::String(v)) => v.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            let sites: Vec<crate::map::MapSite> = v
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|x| crate::map::MapSite {
                    id: text(x, "id"),
                    jurisdiction: text(x, "jurisdiction"),
                    location: text(x, "location"),
                    state: text(x, "state"),
                    replicas: format!("{} {}", text(x, "replicas"), t.replicas),
                })
                .collect();
            let (svg, unplaced) =
                crate::map::residency_map(&sites, &std::collections::BTreeMap::new());
            s.svg = Some(svg);
            if !unplaced.is_empty() {
                s.text = Some(format!("{}\n{}", t.not_on_map, unplaced.join("\n")));
            }
        }
        Err(e) => s.error = Some(e),
    }
    s
}

pub async fn officer(State(console): State<Arc<Console>>, ctx: Ctx) -> Response {
    let session = match session_of_role(&ctx, "officer") {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let t = ctx.t();
    let b = Some(session.bearer.as_str());
    let mut decisions =
        crate::decide::decisions(&console, &session.bearer, &session.principal.name, None).await;
    decisions.quorum = Some(crate::quorum::part(&console, &session.bearer, None, ctx.lang).await);
    let mut grants = section(&console, b, t.all_grants, "/v1/grants", &[]).await;
    grants.note = Some(t.grants_note);
    let sections = vec![
        residency_map(&console, b, t).await,
        grants,
        section(&console, b, t.disclosures, "/v1/disclosures", &[]).await,
        section(&console, b, t.tenants, "/v1/tenants", &[]).await,
        section(&console, b, t.trustee, "/v1/trustee/status", &[]).await,
    ];
    render_role_page(
        &ctx,
        session,
        t.officer,
        None,
        Some(decisions),
        sections,
        None,
    )
}

pub async fn tenant(State(console): State<Arc<Console>>, ctx: Ctx) -> Response {
    let session = match session_of_role(&ctx, "tenant-admin") {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let t = ctx.t();
    let b = Some(session.bearer.as_str());
    let tenant_name = session.principal.tenant.clone().unwrap_or_default();
    let tenant = encode(&tenant_name);
    let mut decisions = crate::decide::decisions(
        &console,
        &session.bearer,
        &session.principal.name,
        Some(&tenant_name),
    )
    .await;
    decisions.quorum =
        Some(crate::quorum::part(&console, &session.bearer, Some(&tenant_name), ctx.lang).await);
    let mut grants = section(&console, b, t.your_grants, "/v1/grants", &[]).await;
    grants.note = Some(t.grants_note);
    let sections = vec![
        section(
            &console,
            b,
            t.quota,
            &format!("/v1/tenants/{tenant}/quota"),
            &[],
        )
        .await,
        grants,
    ];
    let log = crate::logview::log_view(
        &console,
        &session.bearer,
        &tenant_name,
        "/console/tenant",
        crate::logview::LogFilter::from_query(&ctx.query),
    )
    .await;
    render_role_page(
        &ctx,
        session,
        t.tenant_admin,
        None,
        Some(decisions),
        sections,
        Some(log),
    )
}

/// One log entry as the auditor's page shows it: its exact text goes in a `data-` attribute,
/// from which the page's script computes the leaf hash and checks the entry's inclusion.
pub struct EntryRow {
    pub index: u64,
    pub entry: String,
    pub unreadable: Option<String>,
}

#[derive(Template)]
#[template(path = "auditor.html")]
struct AuditorPage<'a> {
    t: &'a Texts,
    lang: &'a str,
    who: &'a Principal,
    csrf: &'a str,
    title: &'a str,
    nav: Vec<NavItem>,
    checkpoint: Result<String, String>,
    entries: Result<Vec<EntryRow>, String>,
    next: Option<String>,
}

/// The entries of a `/v1/log/entries` answer.
fn entry_rows(v: &Value) -> Result<Vec<EntryRow>, String> {
    let list = v
        .get("entries")
        .and_then(Value::as_array)
        .ok_or_else(|| "the answer holds no entries".to_owned())?;
    list.iter()
        .map(|e| {
            Ok(EntryRow {
                index: e
                    .get("index")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| "an entry without an index".to_owned())?,
                entry: e
                    .get("entry")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                unreadable: e
                    .get("unreadable")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            })
        })
        .collect()
}

/// The auditor's page: the verification panel (driven in the browser by verify.js and
/// auditor.js, which fetch the log's public resources themselves and trust only the pinned
/// key), the newest checkpoint as served, and the log's entries page by page, each with its
/// inclusion check.
pub async fn auditor(State(console): State<Arc<Console>>, ctx: Ctx) -> Response {
    let session = match session_of_role(&ctx, "auditor") {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let t = ctx.t();
    let b = Some(session.bearer.as_str());
    let from: u64 = ctx
        .query
        .get("from")
        .and_then(|f| f.parse().ok())
        .unwrap_or(0);
    let answer = match console
        .call(
            b,
            &format!("/v1/log/entries?from={from}&limit={}", crate::logview::PAGE),
        )
        .await
    {
        Ok(a) => a.json(),
        Err(e) => Err(e),
    };
    // A next page only where the API says one starts.
    let next = answer
        .as_ref()
        .ok()
        .and_then(|v| v.get("next"))
        .and_then(Value::as_u64)
        .map(|after| format!("/console/auditor?from={after}"));
    let entries = answer.and_then(|v| entry_rows(&v));
    let checkpoint = match console.call(None, "/log/checkpoint").await {
        Ok(a) if a.status.is_success() => Ok(String::from_utf8_lossy(&a.bytes).into_owned()),
        Ok(a) => Err(format!("{}", a.status.as_u16())),
        Err(e) => Err(e),
    };
    ctx.finish(html(
        StatusCode::OK,
        AuditorPage {
            t,
            lang: ctx.lang.code(),
            who: &session.principal,
            csrf: &session.csrf,
            title: t.auditor,
            nav: nav(t, &session.principal.role),
            checkpoint,
            entries,
            next,
        }
        .render(),
    ))
}

pub async fn not_found(ctx: Ctx) -> Response {
    let t = ctx.t();
    message(&ctx, StatusCode::NOT_FOUND, t.not_found, t.not_found)
}

const CSS: &str = include_str!("../assets/console.css");
const JS: &str = include_str!("../assets/console.js");
const VERIFY_JS: &str = include_str!("../assets/verify.js");
const AUDITOR_JS: &str = include_str!("../assets/auditor.js");
const SIGNING_JS: &str = include_str!("../assets/signing.js");

pub async fn asset(ctx: Ctx, Path(name): Path<String>) -> Response {
    match name.as_str() {
        "console.css" => ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response(),
        "console.js" | "verify.js" | "auditor.js" | "signing.js" => (
            [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
            match name.as_str() {
                "verify.js" => VERIFY_JS,
                "auditor.js" => AUDITOR_JS,
                "signing.js" => SIGNING_JS,
                _ => JS,
            },
        )
            .into_response(),
        _ => not_found(ctx).await,
    }
}

/// `s` percent-encoded for a path segment or query value.
pub(crate) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A table of a JSON answer: an array of objects gives one row each (columns: `columns`, or
/// the keys of the first objects); an object holding one array is that array; any other
/// object is a list of its fields.
pub fn table(v: &Value, columns: &[&str]) -> Table {
    let rows: &[Value] = match v {
        Value::Array(a) => a,
        Value::Object(o) => {
            let arrays: Vec<&Vec<Value>> = o.values().filter_map(Value::as_array).collect();
            match arrays.as_slice() {
                [only] if o.len() == 1 => only,
                _ => {
                    return Table {
                        headers: Vec::new(),
                        rows: o.iter().map(|(k, v)| vec![k.clone(), cell(k, v)]).collect(),
                    };
                }
            }
        }
        other => {
            return Table {
                headers: Vec::new(),
                rows: vec![vec![cell("", other)]],
            };
        }
    };
    let headers: Vec<String> = if columns.is_empty() {
        let mut keys: Vec<String> = Vec::new();
        for row in rows.iter().take(20) {
            if let Value::Object(o) = row {
                for k in o.keys() {
                    if !keys.contains(k) {
                        keys.push(k.clone());
                    }
                }
            }
        }
        keys
    } else {
        columns.iter().map(|c| (*c).to_owned()).collect()
    };
    let rows = rows
        .iter()
        .map(|row| match row {
            Value::Object(o) => headers
                .iter()
                .map(|h| o.get(h).map_or_else(String::new, |v| cell(h, v)))
                .collect(),
            other => vec![cell("", other)],
        })
        .collect();
    Table { headers, rows }
}

/// One value as text: times in milliseconds as UTC dates, lists joined, objects as JSON.
fn cell(key: &str, v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) if key == "duration_ms" || key == "delay_ms" => n
            .as_i64()
            .map_or_else(|| n.to_string(), crate::decide::duration_text),
        Value::Number(n) if key.ends_with("_ms") => n
            .as_i64()
            .and_then(|ms| utc(ms / 1000))
            .unwrap_or_else(|| n.to_string()),
        Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
            a.iter().map(|x| cell("", x)).collect::<Vec<_>>().join(", ")
        }
        other => other.to_string(),
    }
}

/// Milliseconds since 1970 as `YYYY-MM-DD HH:MM:SS UTC`.
pub(crate) fn utc_ms(ms: i64) -> String {
    utc(ms.div_euclid(1000)).unwrap_or_else(|| ms.to_string())
}

/// Seconds since 1970 as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc(secs: i64) -> Option<String> {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    Some(format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_become_tables() {
        let t = table(
            &json!([{"id": "g1", "at_ms": 0}, {"id": "g2", "extra": [1, 2]}]),
            &[],
        );
        assert_eq!(t.headers, ["at_ms", "id", "extra"]);
        assert_eq!(t.rows[0], ["1970-01-01 00:00:00 UTC", "g1", ""]);
        assert_eq!(t.rows[1], ["", "g2", "1, 2"]);
        let t = table(&json!([{"duration_ms": 7_200_000, "delay_ms": 0}]), &[]);
        assert_eq!(t.headers, ["delay_ms", "duration_ms"]);
        assert_eq!(t.rows[0], ["0ms", "2h"]);
        let t = table(&json!({"sites": [{"id": "de-fra"}]}), &[]);
        assert_eq!(t.rows, [["de-fra"]]);
        let t = table(&json!({"sealed": false, "shares": 2}), &[]);
        assert_eq!(t.rows, [["sealed", "false"], ["shares", "2"]]);
    }

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(
            utc(1_796_601_600).as_deref(),
            Some("2026-12-07 00:00:00 UTC")
        );
        assert_eq!(utc(951_825_600).as_deref(), Some("2000-02-29 12:00:00 UTC"));
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode("a b/ü"), "a%20b%2F%C3%BC");
        assert_eq!(encode("demo-1_x.y~"), "demo-1_x.y~");
    }
}
