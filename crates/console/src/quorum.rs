//! Quorum actions on the console: the officer's "Quorum actions in progress" (crypto-shreds,
//! a disconnect or reconnect awaiting more approvals, each with a form to add this officer's
//! approval) and the tenant admin's "Crypto-shred" (its tenant key's state, its pending shreds
//! and the forms to request or approve a shred, a shred-now and a cancel), from the admin API's
//! `/v1/quorum`, with their words in English and German.
//!
//! Approvals are statements signed in the browser (assets/signing.js) and carried to `/v1/act`
//! by [`crate::decide::decide`], as grant approvals are. This module only shows what will be
//! signed; it never sees a key.

use crate::i18n::Lang;
use crate::pages::Console;
use serde_json::{Value, json};

/// The words of the quorum parts of a page.
pub struct QuorumTexts {
    pub in_progress: &'static str,
    pub in_progress_note: &'static str,
    pub shred_title: &'static str,
    pub shred_note: &'static str,
    pub key_state: &'static str,
    pub destroy_after: &'static str,
    pub pending: &'static str,
    pub f_kind: &'static str,
    pub f_approvals: &'static str,
    pub f_progress: &'static str,
    pub f_rule: &'static str,
    pub f_expires: &'static str,
    pub of: &'static str,
    pub officers_among: &'static str,
    pub rule_shred: &'static str,
    pub rule_officers: &'static str,
    pub approve: &'static str,
    /// Before the command a principal runs with its own key (a shred now, a cancel, a
    /// reconnect: nothing a page the provider serves may sign).
    pub own_key: &'static str,
    pub own_key_note: &'static str,
    pub kind_shred: &'static str,
    pub kind_shred_now: &'static str,
    pub kind_shred_cancel: &'static str,
    pub kind_disconnect: &'static str,
    pub kind_reconnect: &'static str,
    pub state_active: &'static str,
    pub state_disabled: &'static str,
    pub state_destroyed: &'static str,
    pub state_none: &'static str,
    pub request_shred: &'static str,
    pub warn_shred: &'static str,
    pub warn_disconnect: &'static str,
    pub destroyed_note: &'static str,
}

static EN: QuorumTexts = QuorumTexts {
    in_progress: "Quorum actions in progress",
    in_progress_note: "Crypto-shreds and disconnects that wait for more approvals (approvals older than 24 hours no longer count). Your approval of a shred that disables a key, or of a disconnect, is a statement signed in this browser with your enrolled key, shown decoded before you sign it. A shred now, a cancel and a reconnect are signed with your own key only (the command is shown with each): they cannot be undone or give access back, so a page the provider serves must not sign them.",
    shred_title: "Crypto-shred",
    shred_note: "A crypto-shred makes all of your tenant's data unreadable by disabling (and later destroying) its tenant key. It takes two approvals, at least one of them an officer's; each is a statement signed in this browser with your enrolled key, shown decoded before you sign it.",
    key_state: "Tenant key",
    destroy_after: "destroyed after",
    pending: "Pending",
    f_kind: "Action",
    f_approvals: "Approvals",
    f_progress: "Progress",
    f_rule: "Needs",
    f_expires: "Oldest approval lapses",
    of: "of",
    officers_among: "officers among them",
    rule_shred: "2 approvals, at least one of an officer",
    rule_officers: "2 officers",
    approve: "Approve…",
    own_key: "Approve with your own key:",
    own_key_note: "A shred now (the key is destroyed at once, and nothing brings the data back) and a cancel (a disabled key is enabled again) are signed with your own key only, never in this browser: the page is served by the provider, whose script must not be able to sign either. Run, as each approver:",
    kind_shred: "shred (disable now, destroy after the grace period)",
    kind_shred_now: "shred now (destroy at once)",
    kind_shred_cancel: "cancel the shred (re-enable)",
    kind_disconnect: "disconnect the provider",
    kind_reconnect: "reconnect the provider",
    state_active: "active",
    state_disabled: "disabled",
    state_destroyed: "destroyed",
    state_none: "none yet",
    request_shred: "Request or approve a shred…",
    warn_shred: "Once approved by two (one an officer), the tenant key is disabled at once: none of the tenant's objects can be read or written until a cancel is approved, and the key is destroyed for good when the grace period ends.",
    warn_disconnect: "Once approved by two officers, the provider is cut off: the trustee releases no key and serves no request for any tenant until two officers reconnect it.",
    destroyed_note: "The tenant key is destroyed: the tenant's data can no longer be read by anyone.",
};

static DE: QuorumTexts = QuorumTexts {
    in_progress: "Laufende Quorum-Aktionen",
    in_progress_note: "Crypto-Shreds und Trennungen, die auf weitere Zustimmungen warten (Zustimmungen, die älter als 24 Stunden sind, zählen nicht mehr). Ihre Zustimmung zu einem Shred, der einen Schlüssel deaktiviert, oder zu einer Trennung ist eine Erklärung, die in diesem Browser mit Ihrem registrierten Schlüssel signiert und vorher entschlüsselt angezeigt wird. Ein sofortiger Shred, ein Abbruch und eine Wiederverbindung werden nur mit Ihrem eigenen Schlüssel signiert (der Befehl steht jeweils dabei): sie sind nicht umkehrbar oder geben Zugang zurück, daher darf eine Seite, die der Anbieter ausliefert, sie nicht signieren.",
    shred_title: "Crypto-Shred",
    shred_note: "Ein Crypto-Shred macht alle Daten Ihres Mandanten unlesbar, indem er den Mandantenschlüssel deaktiviert (und später vernichtet). Er braucht zwei Zustimmungen, mindestens eine davon von einem Officer; jede ist eine Erklärung, die in diesem Browser mit Ihrem registrierten Schlüssel signiert und vorher entschlüsselt angezeigt wird.",
    key_state: "Mandantenschlüssel",
    destroy_after: "vernichtet nach",
    pending: "Offen",
    f_kind: "Aktion",
    f_approvals: "Zustimmungen",
    f_progress: "Stand",
    f_rule: "Braucht",
    f_expires: "Älteste Zustimmung verfällt",
    of: "von",
    officers_among: "davon Officer",
    rule_shred: "2 Zustimmungen, mindestens eine von einem Officer",
    rule_officers: "2 Officer",
    approve: "Zustimmen…",
    own_key: "Mit Ihrem eigenen Schlüssel zustimmen:",
    own_key_note: "Ein sofortiger Shred (der Schlüssel wird sofort vernichtet, nichts bringt die Daten zurück) und ein Abbruch (ein deaktivierter Schlüssel wird wieder aktiviert) werden nur mit Ihrem eigenen Schlüssel signiert, nie in diesem Browser: die Seite liefert der Anbieter aus, dessen Skript keines von beiden signieren können darf. Jeder Zustimmende führt aus:",
    kind_shred: "Shred (jetzt deaktivieren, nach der Frist vernichten)",
    kind_shred_now: "Shred sofort (sofort vernichten)",
    kind_shred_cancel: "Shred abbrechen (wieder aktivieren)",
    kind_disconnect: "Anbieter trennen",
    kind_reconnect: "Anbieter wieder verbinden",
    state_active: "aktiv",
    state_disabled: "deaktiviert",
    state_destroyed: "vernichtet",
    state_none: "noch keiner",
    request_shred: "Shred beantragen oder zustimmen…",
    warn_shred: "Sobald zwei zugestimmt haben (einer davon ein Officer), wird der Mandantenschlüssel sofort deaktiviert: kein Objekt des Mandanten kann gelesen oder geschrieben werden, bis ein Abbruch bewilligt ist, und nach Ablauf der Frist wird der Schlüssel endgültig vernichtet.",
    warn_disconnect: "Sobald zwei Officer zugestimmt haben, ist der Anbieter abgeschnitten: der Treuhänder gibt keinen Schlüssel heraus und bedient keine Anfrage eines Mandanten, bis zwei Officer ihn wieder verbinden.",
    destroyed_note: "Der Mandantenschlüssel ist vernichtet: niemand kann die Daten des Mandanten mehr lesen.",
};

#[must_use]
pub fn texts(lang: Lang) -> &'static QuorumTexts {
    match lang {
        Lang::En => &EN,
        Lang::De => &DE,
    }
}

/// A form that signs one quorum approval in the browser: the action's fields (JSON, without
/// principal, time and nonce), its button and the warning shown with the statement.
pub struct SignForm {
    /// Distinguishes the form on the page (`shred`, `shred-now`, `shred-cancel`, ...).
    pub kind: String,
    pub action_json: String,
    pub label: &'static str,
    pub warning: &'static str,
}

/// One quorum action in progress.
pub struct QuorumCard {
    /// An id for the page: the kind, and the tenant where there is one.
    pub id: String,
    pub kind: String,
    pub kind_label: &'static str,
    pub tenant: String,
    pub approvals: String,
    pub count: usize,
    pub required: usize,
    pub officers: usize,
    pub rule: &'static str,
    pub expires: String,
    pub key_state: String,
    /// The form that adds this principal's approval; none for the actions signed with the
    /// principal's own key only, and on the tenant admin's page (its forms are below the list).
    pub form: Option<SignForm>,
    /// The command for an action signed with the principal's own key only.
    pub own_key_command: Option<String>,
}

/// The quorum part of the officer's page (no tenant) or the tenant admin's (its tenant).
pub struct QuorumPart {
    pub t: &'static QuorumTexts,
    pub officer: bool,
    pub tenant: String,
    pub error: Option<String>,
    pub cards: Vec<QuorumCard>,
    /// The tenant admin's page: its key's state (`active`, `disabled`, `destroyed`, `none`), in
    /// words, and whether it is destroyed.
    pub state: String,
    pub key_state: String,
    pub destroy_after: Option<String>,
    pub destroyed: bool,
    /// The tenant admin's page: request or approve a shred (disabling the key).
    pub forms: Vec<SignForm>,
    /// The tenant admin's page: the commands for a shred now and, while the key is disabled,
    /// a cancel (own key only).
    pub own_key_commands: Vec<String>,
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_owned()
}

fn kind_label(t: &'static QuorumTexts, kind: &str) -> &'static str {
    match kind {
        "shred" => t.kind_shred,
        "shred-now" => t.kind_shred_now,
        "shred-cancel" => t.kind_shred_cancel,
        "disconnect" => t.kind_disconnect,
        "reconnect" => t.kind_reconnect,
        _ => "",
    }
}

fn state_label(t: &'static QuorumTexts, state: &str) -> String {
    match state {
        "active" => t.state_active.to_owned(),
        "disabled" => t.state_disabled.to_owned(),
        "destroyed" => t.state_destroyed.to_owned(),
        "none" | "" => t.state_none.to_owned(),
        other => other.to_owned(),
    }
}

/// The form signing a shred approval of `tenant` that disables its key: the only shred an
/// enrolled key may sign (a shred now and a cancel need the principal's own key).
fn shred_form(t: &'static QuorumTexts, kind: &str, tenant: &str) -> Option<SignForm> {
    (kind == "shred").then(|| SignForm {
        kind: kind.to_owned(),
        action_json: json!({"action": "shred", "tenant": tenant, "mode": "disable"}).to_string(),
        label: t.request_shred,
        warning: t.warn_shred,
    })
}

/// The command that approves a quorum action of `kind` with the principal's own key, for the
/// actions a page the provider serves must not sign.
fn own_key_command(kind: &str, tenant: &str) -> Option<String> {
    match kind {
        "shred-now" => Some(format!("obhut tenant shred {tenant} --now")),
        "shred-cancel" => Some(format!("obhut tenant shred {tenant} --cancel")),
        "reconnect" => Some("obhut trustee reconnect".to_owned()),
        _ => None,
    }
}

fn card(t: &'static QuorumTexts, a: &Value, officer: bool) -> QuorumCard {
    let kind = text(a, "kind");
    let tenant = text(a, "tenant");
    let approvals: Vec<&Value> = a
        .get("approvals")
        .and_then(Value::as_array)
        .map(|l| l.iter().collect())
        .unwrap_or_default();
    let listed: Vec<String> = approvals
        .iter()
        .map(|x| {
            format!(
                "{} ({}, {})",
                text(x, "principal"),
                text(x, "role"),
                crate::pages::utc_ms(x.get("at_ms").and_then(Value::as_i64).unwrap_or(0))
            )
        })
        .collect();
    let form = if !officer {
        None
    } else if kind == "disconnect" {
        Some(SignForm {
            kind: kind.clone(),
            action_json: json!({"action": "disconnect"}).to_string(),
            label: t.approve,
            warning: t.warn_disconnect,
        })
    } else {
        shred_form(t, &kind, &tenant).map(|f| SignForm {
            label: t.approve,
            ..f
        })
    };
    let count = |k: &str| {
        a.get(k)
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0)
    };
    QuorumCard {
        id: if tenant.is_empty() {
            kind.clone()
        } else {
            format!("{kind}-{tenant}")
        },
        kind_label: kind_label(t, &kind),
        rule: if tenant.is_empty() {
            t.rule_officers
        } else {
            t.rule_shred
        },
        count: approvals.len(),
        required: count("required"),
        officers: count("officers"),
        approvals: if listed.is_empty() {
            "—".to_owned()
        } else {
            listed.join(", ")
        },
        expires: crate::pages::utc_ms(a.get("expires_ms").and_then(Value::as_i64).unwrap_or(0)),
        key_state: a
            .get("key_state")
            .and_then(Value::as_str)
            .map(|s| state_label(t, s))
            .unwrap_or_default(),
        own_key_command: own_key_command(&kind, &tenant),
        kind,
        tenant,
        form,
    }
}

/// The quorum part: for the officer (`tenant` none) every action in progress, for a tenant's
/// admin its tenant's shreds and key, from `/v1/quorum` as the admin API answers the session.
pub async fn part(console: &Console, bearer: &str, tenant: Option<&str>, lang: Lang) -> QuorumPart {
    let t = texts(lang);
    let officer = tenant.is_none();
    let path = match tenant {
        Some(tn) => format!("/v1/quorum?tenant={}", crate::pages::encode(tn)),
        None => "/v1/quorum".to_owned(),
    };
    let mut part = QuorumPart {
        t,
        officer,
        tenant: tenant.unwrap_or_default().to_owned(),
        error: None,
        cards: Vec::new(),
        state: String::new(),
        key_state: String::new(),
        destroy_after: None,
        destroyed: false,
        forms: Vec::new(),
        own_key_commands: Vec::new(),
    };
    let v = match console.get_json(Some(bearer), &path).await {
        Ok(v) => v,
        Err(e) => {
            part.error = Some(e);
            return part;
        }
    };
    part.cards = v
        .get("actions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|a| card(t, a, officer))
        .collect();
    if let (Some(tn), Some(k)) = (tenant, v.get("tenant_key")) {
        let state = text(k, "state");
        part.key_state = state_label(t, &state);
        part.state.clone_from(&state);
        part.destroy_after = k
            .get("destroy_after_ms")
            .and_then(Value::as_i64)
            .map(crate::pages::utc_ms);
        part.destroyed = state == "destroyed";
        if !part.destroyed {
            part.forms = shred_form(t, "shred", tn).into_iter().collect();
            let mut kinds = vec!["shred-now"];
            if state == "disabled" {
                kinds.push("shred-cancel");
            }
            part.own_key_commands = kinds
                .into_iter()
                .filter_map(|k| own_key_command(k, tn))
                .collect();
        }
    }
    part
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_shows_the_approvals_and_signs_the_right_action() {
        let t = texts(Lang::En);
        let a = json!({"kind": "shred", "tenant": "acme", "required": 2, "officers": 1,
            "rule": "2, at least one officer", "expires_ms": 86_400_000, "key_state": "active",
            "approvals": [{"principal": "o1", "role": "officer", "at_ms": 0}]});
        let c = card(t, &a, true);
        assert_eq!((c.count, c.required, c.officers), (1, 2, 1));
        assert_eq!(c.id, "shred-acme");
        assert_eq!(c.approvals, "o1 (officer, 1970-01-01 00:00:00 UTC)");
        assert_eq!(c.expires, "1970-01-02 00:00:00 UTC");
        let f = c.form.unwrap();
        assert_eq!(
            f.action_json,
            r#"{"action":"shred","mode":"disable","tenant":"acme"}"#
        );
        assert_eq!(f.warning, t.warn_shred);
        assert!(c.own_key_command.is_none());
        // on the tenant admin's page the forms are apart
        assert!(card(t, &a, false).form.is_none());
        // a shred now, a cancel and a reconnect are never signed here: their command instead
        for (kind, tenant, command) in [
            ("shred-now", "acme", "obhut tenant shred acme --now"),
            ("shred-cancel", "acme", "obhut tenant shred acme --cancel"),
            ("reconnect", "", "obhut trustee reconnect"),
        ] {
            let v = json!({"kind": kind, "tenant": tenant, "approvals": []});
            let c = card(t, &v, true);
            assert!(c.form.is_none(), "{kind}");
            assert_eq!(c.own_key_command.as_deref(), Some(command));
        }
        let r = json!({"kind": "reconnect", "tenant": null, "approvals": []});
        let c = card(t, &r, true);
        assert!(c.id == "reconnect" && c.rule == t.rule_officers);
        let d = json!({"kind": "disconnect", "tenant": null, "approvals": []});
        assert_eq!(
            card(t, &d, true).form.unwrap().action_json,
            r#"{"action":"disconnect"}"#
        );
    }

    #[test]
    fn both_languages_name_every_state() {
        for lang in [Lang::En, Lang::De] {
            let t = texts(lang);
            for s in ["active", "disabled", "destroyed", "none"] {
                assert!(!state_label(t, s).is_empty());
            }
            for k in [
                "shred",
                "shred-now",
                "shred-cancel",
                "disconnect",
                "reconnect",
            ] {
                assert!(!kind_label(t, k).is_empty());
            }
        }
    }
}
