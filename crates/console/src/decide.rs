//! Decisions signed in the browser: the officer's and the tenant admin's pending grants (and
//! the officer's pending disclosure requests) with everything an approver must see, the tenant
//! admin's access keys with a form to revoke each, the browser's enrolled signing keys, and the
//! form through which a statement the browser signed reaches the admin API's `/v1/act`,
//! exactly as the CLI's would.
//!
//! The browser makes its Ed25519 key with WebCrypto (not extractable, kept in IndexedDB) and
//! signs there (assets/signing.js); this module only shows what will be signed and carries the
//! signed statement. It never sees a private key, and it cannot change a signed statement
//! without the trustee refusing it.

use crate::pages::{Console, Ctx, checked_post, form_fields, message};
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// One pending grant as an approver sees it. The `data-` attributes of its card carry the
/// fields from which the browser computes the scope digest it signs.
pub struct GrantCard {
    pub id: String,
    pub tenant: String,
    pub bucket: String,
    pub prefix: String,
    pub ops: String,
    pub ops_json: String,
    pub duration_ms: i64,
    pub duration: String,
    pub reason: String,
    pub requester: String,
    pub requested: String,
    pub lapses: String,
    pub approvals: String,
    pub customer_approval: bool,
    pub scope_digest: String,
}

/// One pending disclosure request.
pub struct DisclosureCard {
    pub id: String,
    pub tenant: String,
    pub authority: String,
    pub jurisdiction: String,
    pub legal_basis: String,
    pub scope: String,
    pub requested_by: String,
    pub requested: String,
    pub approvals: String,
}

/// One of the tenant's access keys, as its admin's page lists it.
pub struct KeyRow {
    pub id: String,
    pub state: String,
    pub created: String,
    /// A scoped key's policy (IAM JSON) as the admin API answers it; none for a key of the
    /// whole tenant.
    pub policy: Option<String>,
    pub active: bool,
}

fn key_row(k: &Value) -> KeyRow {
    let state = text(k, "state");
    KeyRow {
        id: text(k, "access_key_id"),
        active: state == "active",
        state,
        created: crate::pages::utc_ms(k.get("created_ms").and_then(Value::as_i64).unwrap_or(0)),
        policy: k.get("policy").and_then(Value::as_str).map(str::to_owned),
    }
}

/// What the decision part of a page shows.
pub struct Decisions {
    /// The signed-in principal: the statements' `principal`.
    pub principal: String,
    /// The principal's enrolled keys as JSON (`public_key`, `state`, `expires_ms`), for the
    /// browser to find its own key in.
    pub keys_json: String,
    pub keys_error: Option<String>,
    pub grants: Vec<GrantCard>,
    pub grants_error: Option<String>,
    /// Officers only.
    pub disclosures: Option<Result<Vec<DisclosureCard>, String>>,
    /// A tenant's admin only: its tenant, and the tenant's access keys, each active one with
    /// a form to revoke it (signed in the browser).
    pub tenant: String,
    pub keys: Option<Result<Vec<KeyRow>, String>>,
    /// The officer's quorum actions in progress, or the tenant admin's crypto-shred part.
    pub quorum: Option<crate::quorum::QuorumPart>,
}

/// An unapproved grant lapses after this long (the trustee's `REQUEST_TTL_MS`).
const REQUEST_TTL_MS: i64 = 12 * 3600 * 1000;

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_owned()
}

fn grant_card(g: &Value) -> GrantCard {
    let ops: Vec<String> = g
        .get("ops")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let duration_ms = g.get("duration_ms").and_then(Value::as_i64).unwrap_or(0);
    let requested_ms = g.get("requested_ms").and_then(Value::as_i64).unwrap_or(0);
    let approvals: Vec<String> = g
        .get("approvals")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|x| format!("{} ({})", text(x, "principal"), text(x, "role")))
                .collect()
        })
        .unwrap_or_default();
    GrantCard {
        id: text(g, "id"),
        tenant: text(g, "tenant"),
        bucket: text(g, "bucket"),
        prefix: text(g, "prefix"),
        ops: ops.join(", "),
        ops_json: json!(ops).to_string(),
        duration_ms,
        duration: duration_text(duration_ms),
        reason: text(g, "reason"),
        requester: text(g, "requester"),
        requested: crate::pages::utc_ms(requested_ms),
        lapses: crate::pages::utc_ms(requested_ms.saturating_add(REQUEST_TTL_MS)),
        approvals: if approvals.is_empty() {
            "—".to_owned()
        } else {
            approvals.join(", ")
        },
        customer_approval: g
            .get("customer_approval")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        scope_digest: text(g, "scope_digest"),
    }
}

fn disclosure_card(d: &Value) -> DisclosureCard {
    let approvals: Vec<String> = d
        .get("approvals")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    DisclosureCard {
        id: text(d, "id"),
        tenant: text(d, "tenant"),
        authority: text(d, "authority"),
        jurisdiction: text(d, "jurisdiction"),
        legal_basis: text(d, "legal_basis"),
        scope: text(d, "scope"),
        requested_by: text(d, "requested_by"),
        requested: crate::pages::utc_ms(d.get("created_ms").and_then(Value::as_i64).unwrap_or(0)),
        approvals: if approvals.is_empty() {
            "—".to_owned()
        } else {
            approvals.join(", ")
        },
    }
}

/// `2h`, `30m`, `1d 2h`: a duration for reading.
pub(crate) fn duration_text(ms: i64) -> String {
    let secs = ms / 1000;
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    let parts: Vec<String> = [(d, "d"), (h, "h"), (m, "m"), (s, "s")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, u)| format!("{n}{u}"))
        .collect();
    if parts.is_empty() {
        format!("{ms}ms")
    } else {
        parts.join(" ")
    }
}

fn pending(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|x| x.get("state").and_then(Value::as_str) == Some("pending"))
}

/// The decision part of the officer's page (no `tenant`) or the tenant admin's (its tenant,
/// whose access keys it lists).
pub async fn decisions(
    console: &Console,
    bearer: &str,
    principal: &str,
    tenant: Option<&str>,
) -> Decisions {
    let officer = tenant.is_none();
    let b = Some(bearer);
    let (keys_json, keys_error) = match console.get_json(b, "/v1/signing-keys").await {
        Ok(v) => (v.to_string(), None),
        Err(e) => ("[]".to_owned(), Some(e)),
    };
    let (grants, grants_error) = match console.get_json(b, "/v1/grants").await {
        Ok(v) => (pending(&v).map(grant_card).collect(), None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let disclosures = if officer {
        Some(
            console
                .get_json(b, "/v1/disclosures")
                .await
                .map(|v| pending(&v).map(disclosure_card).collect()),
        )
    } else {
        None
    };
    let keys = match tenant {
        Some(t) => Some(
            console
                .get_json(b, &format!("/v1/tenants/{}/keys", crate::pages::encode(t)))
                .await
                .map(|v| {
                    v.as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default()
                        .iter()
                        .map(key_row)
                        .collect()
                }),
        ),
        None => None,
    };
    Decisions {
        principal: principal.to_owned(),
        keys_json,
        keys_error,
        grants,
        grants_error,
        disclosures,
        tenant: tenant.unwrap_or_default().to_owned(),
        keys,
        quorum: None,
    }
}

/// `POST /console/decide`: a statement signed in the browser, carried to `/v1/act` with the
/// session's bearer. The trustee checks the signature against the principal's keys; the
/// answer is shown as the admin API gave it.
pub async fn decide(
    State(console): State<Arc<Console>>,
    ctx: Ctx,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let form = form_fields(form);
    let session = match checked_post(&ctx, &form) {
        Ok(s) => s,
        Err(resp) => return *resp,
    };
    let t = ctx.t();
    let back = crate::pages::page_of(&session.principal.role);
    let statement = form.get("statement").map_or("", String::as_str);
    let signature = form.get("signature").map_or("", String::as_str);
    if statement.is_empty() || signature.is_empty() || statement.len() > 16 * 1024 {
        return message(
            &ctx,
            StatusCode::BAD_REQUEST,
            t.decision_failed,
            t.decision_unsigned,
        );
    }
    let body = json!({"statement": statement, "signature": signature});
    match console
        .post_json(Some(&session.bearer), "/v1/act", &body)
        .await
    {
        Ok(a) if a.status.is_success() => {
            ctx.finish(Redirect::to(&format!("{back}?decided=1")).into_response())
        }
        Ok(a) => {
            let msg = serde_json::from_slice::<Value>(&a.bytes)
                .ok()
                .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_default();
            let shown = format!("{}: {} {msg}", t.api_refused, a.status.as_u16());
            let status = if a.status.is_client_error() {
                a.status
            } else {
                StatusCode::BAD_GATEWAY
            };
            message(&ctx, status, t.decision_failed, &shown)
        }
        Err(e) => message(&ctx, StatusCode::BAD_GATEWAY, t.decision_failed, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_card_shows_what_the_approval_signs() {
        let g = json!({
            "id": "g-1", "tenant": "acme", "bucket": "b", "prefix": "case/",
            "ops": ["read", "list"], "duration_ms": 7_200_000, "reason": "case 4711",
            "requester": "op", "requested_ms": 0, "state": "pending",
            "approvals": [{"principal": "o1", "role": "officer", "at_ms": 1}],
            "customer_approval": true, "scope_digest": "abc"
        });
        let c = grant_card(&g);
        assert_eq!(c.ops_json, r#"["read","list"]"#);
        assert_eq!(c.duration, "2h");
        assert_eq!(c.approvals, "o1 (officer)");
        assert_eq!(c.lapses, "1970-01-01 12:00:00 UTC");
        assert!(c.customer_approval);
        assert_eq!(pending(&json!([g, {"state": "approved"}])).count(), 1);
    }

    #[test]
    fn a_key_row_shows_its_state_and_scope() {
        let k = key_row(
            &json!({"access_key_id": "OBK1", "state": "active", "created_ms": 0,
                                 "policy": "{\"Version\":\"2012-10-17\"}"}),
        );
        assert!(k.active && k.id == "OBK1" && k.created == "1970-01-01 00:00:00 UTC");
        assert_eq!(k.policy.as_deref(), Some(r#"{"Version":"2012-10-17"}"#));
        let k = key_row(&json!({"access_key_id": "OBK2", "state": "revoked", "created_ms": 0}));
        assert!(!k.active && k.policy.is_none());
    }

    #[test]
    fn durations_read_as_units() {
        assert_eq!(duration_text(90_000), "1m 30s");
        assert_eq!(duration_text(86_400_000 + 3_600_000), "1d 1h");
        assert_eq!(duration_text(500), "500ms");
    }
}
