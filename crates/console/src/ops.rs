//! The operator page's health parts: the alerts ([`crate::alerts`]), the gateways and their
//! workers (`/v1/gateways`), and the progress bars of repair and scrubbing (`/v1/repair`), with
//! their words in English and German.
//!
//! It sees what the admin API answers an operator: states, counts, worker names, gateway and
//! site ids. Never a tenant, bucket or object name.

use crate::alerts::{Alert, Inputs, Rule, Severity};
use crate::i18n::Lang;
use crate::pages::{Console, Section, Table, utc_ms};
use serde_json::Value;
use std::fmt::Write;

/// The words of these parts.
pub struct OpsTexts {
    pub alerts: &'static str,
    pub no_alerts: &'static str,
    pub alerts_note: &'static str,
    pub severity: &'static str,
    pub alert: &'static str,
    pub explanation: &'static str,
    pub critical: &'static str,
    pub warning: &'static str,
    pub gateways: &'static str,
    pub gateways_note: &'static str,
    pub id: &'static str,
    pub version: &'static str,
    pub up_since: &'static str,
    pub seen: &'static str,
    pub seen_ago: &'static str,
    pub health: &'static str,
    pub ok: &'static str,
    pub not_ready: &'static str,
    pub stale: &'static str,
    pub gone: &'static str,
    /// Before the admin API paths the alerts could not read.
    pub alerts_incomplete: &'static str,
    pub background: &'static str,
    pub holder: &'static str,
    pub standby: &'static str,
    pub workers: &'static str,
    pub repair_bar: &'static str,
    pub scrub_bar: &'static str,
    pub no_pass: &'static str,
    /// One line per rule, in [`Rule`]'s order.
    pub rules: fn(Rule) -> &'static str,
}

fn rules_en(r: Rule) -> &'static str {
    match r {
        Rule::SiteDown => "A site is down: writes needing it are refused or under-replicated.",
        Rule::TrusteeSealed => {
            "The trustee is sealed: no bucket key is released until officers unseal it."
        }
        Rule::TrusteeUnreachable => {
            "The trustee does not answer: requests needing a key fail once cached keys expire."
        }
        Rule::CatalogDown => "The catalog does not answer: no object can be read or written.",
        Rule::LogCheckpointTooOld => {
            "Keys are released but the log's newest checkpoint is older than 15 minutes."
        }
        Rule::RepairBacklogGrowing => {
            "The repair backlog grew since the previous look at this page."
        }
        Rule::RepairFailures => "Objects could not be repaired.",
        Rule::SiteErrors => "Sites failed operations in the last 5 minutes.",
        Rule::S3ServerErrors => {
            "More than 5 % of S3 requests failed with 5xx in the last 5 minutes."
        }
        Rule::QuotaNearFull => "Quota scopes are near their limit (count only).",
        Rule::GatewayStale => "Gateways have not been heard from for more than three heartbeats.",
        Rule::GatewayNotReady => "Gateways report that they are not ready.",
    }
}

fn rules_de(r: Rule) -> &'static str {
    match r {
        Rule::SiteDown => {
            "Ein Standort ist ausgefallen: Schreibvorgänge, die ihn brauchen, werden abgelehnt oder zu wenig repliziert."
        }
        Rule::TrusteeSealed => {
            "Der Treuhänder ist versiegelt: kein Bucket-Schlüssel wird freigegeben, bis Beauftragte ihn entsiegeln."
        }
        Rule::TrusteeUnreachable => {
            "Der Treuhänder antwortet nicht: Anfragen, die einen Schlüssel brauchen, scheitern, sobald zwischengespeicherte Schlüssel ablaufen."
        }
        Rule::CatalogDown => {
            "Der Katalog antwortet nicht: kein Objekt kann gelesen oder geschrieben werden."
        }
        Rule::LogCheckpointTooOld => {
            "Schlüssel werden freigegeben, aber der neueste Checkpoint des Logs ist älter als 15 Minuten."
        }
        Rule::RepairBacklogGrowing => {
            "Der Rückstand der Reparatur ist seit dem letzten Aufruf dieser Seite gewachsen."
        }
        Rule::RepairFailures => "Objekte konnten nicht repariert werden.",
        Rule::SiteErrors => {
            "Standorte hatten in den letzten 5 Minuten fehlgeschlagene Operationen."
        }
        Rule::S3ServerErrors => {
            "Mehr als 5 % der S3-Anfragen endeten in den letzten 5 Minuten mit 5xx."
        }
        Rule::QuotaNearFull => "Kontingente sind nahe an ihrer Grenze (nur die Anzahl).",
        Rule::GatewayStale => "Von Gateways kam seit mehr als drei Herzschlägen nichts.",
        Rule::GatewayNotReady => "Gateways melden, dass sie nicht bereit sind.",
    }
}

pub static EN: OpsTexts = OpsTexts {
    alerts: "Alerts",
    no_alerts: "No alerts.",
    alerts_note: "The conditions of the Prometheus rules (docs/monitoring/alerts.yml), evaluated at this look from this gateway's readiness, metrics and history and the gateway registry.",
    severity: "Severity",
    alert: "Alert",
    explanation: "What it means",
    critical: "critical",
    warning: "warning",
    gateways: "Gateways and workers",
    gateways_note: "Every process sharing the catalog, by its heartbeat; seen and stale by the catalog's clock.",
    id: "Id",
    version: "Version",
    up_since: "Up since",
    seen: "Seen",
    seen_ago: "s ago",
    health: "Health",
    ok: "ok",
    not_ready: "not ready",
    stale: "stale",
    gone: "gone (unseen for over 10 minutes)",
    alerts_incomplete: "Incomplete: the alerts that need these could not be judged, as they could not be read",
    background: "Background work",
    holder: "holder",
    standby: "standby",
    workers: "Workers",
    repair_bar: "Repair pass",
    scrub_bar: "Scrubbing pass",
    no_pass: "no pass yet",
    rules: rules_en,
};

pub static DE: OpsTexts = OpsTexts {
    alerts: "Alarme",
    no_alerts: "Keine Alarme.",
    alerts_note: "Die Bedingungen der Prometheus-Regeln (docs/monitoring/alerts.yml), bei diesem Aufruf aus Bereitschaft, Metriken und Verlauf dieses Gateways und dem Gateway-Verzeichnis ausgewertet.",
    severity: "Schwere",
    alert: "Alarm",
    explanation: "Bedeutung",
    critical: "kritisch",
    warning: "Warnung",
    gateways: "Gateways und Worker",
    gateways_note: "Jeder Prozess, der den Katalog teilt, nach seinem Herzschlag; gesehen und veraltet nach der Uhr des Katalogs.",
    id: "Kennung",
    version: "Version",
    up_since: "Läuft seit",
    seen: "Gesehen",
    seen_ago: "s her",
    health: "Zustand",
    ok: "in Ordnung",
    not_ready: "nicht bereit",
    stale: "veraltet",
    gone: "fort (seit über 10 Minuten nicht gesehen)",
    alerts_incomplete: "Unvollständig: die Alarme, die diese brauchen, ließen sich nicht beurteilen, da sie nicht gelesen werden konnten",
    background: "Hintergrundarbeit",
    holder: "Inhaber",
    standby: "Bereitschaft",
    workers: "Worker",
    repair_bar: "Reparaturdurchlauf",
    scrub_bar: "Prüfdurchlauf",
    no_pass: "noch kein Durchlauf",
    rules: rules_de,
};

pub fn texts(lang: Lang) -> &'static OpsTexts {
    match lang {
        Lang::En => &EN,
        Lang::De => &DE,
    }
}

/// The alerts as a section: a table of those firing, or "No alerts", and the inputs that could
/// not be read (`unread`, admin API paths): then the page never claims that nothing fires.
pub fn alerts_section(t: &'static OpsTexts, alerts: &[Alert], unread: &[&str]) -> Section {
    let mut s = Section::new(t.alerts);
    if !unread.is_empty() {
        s.error = Some(format!("{}: {}", t.alerts_incomplete, unread.join(", ")));
    }
    if alerts.is_empty() {
        if unread.is_empty() {
            s.note = Some(t.no_alerts);
        }
        return s;
    }
    s.note = Some(t.alerts_note);
    s.table = Some(Table {
        headers: vec![t.severity.into(), t.alert.into(), t.explanation.into()],
        rows: alerts
            .iter()
            .map(|a| {
                let severity = match a.rule.severity() {
                    Severity::Critical => t.critical,
                    Severity::Warning => t.warning,
                };
                let line = (t.rules)(a.rule);
                let explanation = if a.detail.is_empty() {
                    line.to_owned()
                } else {
                    format!("{line} ({})", a.detail)
                };
                vec![severity.into(), a.rule.name().into(), explanation]
            })
            .collect(),
    });
    s
}

fn text(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// `/v1/gateways` as a table: id, version, up since, seen, health, background work, workers.
pub fn gateways_table(t: &'static OpsTexts, v: &Value) -> Table {
    let rows = v
        .get("gateways")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    Table {
        headers: [
            t.id,
            t.version,
            t.up_since,
            t.seen,
            t.health,
            t.background,
            t.workers,
        ]
        .iter()
        .map(|h| (*h).to_owned())
        .collect(),
        rows: rows
            .iter()
            .map(|g| {
                let seen = g
                    .get("seen_ago_ms")
                    .and_then(Value::as_i64)
                    .map_or_else(String::new, |ms| format!("{} {}", ms / 1000, t.seen_ago));
                let health = match g.get("health").and_then(Value::as_str) {
                    Some("ok") => t.ok.to_owned(),
                    Some("not_ready") => t.not_ready.to_owned(),
                    Some("stale") => t.stale.to_owned(),
                    Some("gone") => t.gone.to_owned(),
                    _ => text(g, "health"),
                };
                let background = match g.get("background").and_then(Value::as_str) {
                    Some("leader") => t.holder.to_owned(),
                    Some("standby") => t.standby.to_owned(),
                    _ => text(g, "background"),
                };
                let workers = g
                    .get("workers")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|w| {
                        let error = text(w, "last_error");
                        if error.is_empty() {
                            format!("{}: {}", text(w, "name"), text(w, "state"))
                        } else {
                            format!("{}: {} ({error})", text(w, "name"), text(w, "state"))
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                vec![
                    text(g, "id"),
                    text(g, "version"),
                    g.get("started_ms")
                        .and_then(Value::as_i64)
                        .map_or_else(String::new, utc_ms),
                    seen,
                    health,
                    background,
                    workers,
                ]
            })
            .collect(),
    }
}

fn count(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

/// One bar: a label, `done / total (p %)` and a `<progress>` element.
fn bar(out: &mut String, class: &str, label: &str, done: u64, total: u64, state: &str) {
    let total = total.max(done);
    let percent = done.saturating_mul(100).checked_div(total).unwrap_or(100);
    let _ = write!(
        out,
        "<div class=\"progress {class}\"><p>{label}: <span class=\"figure\">{done} / {total} ({percent} %)</span>{state}</p>\
         <progress max=\"{max}\" value=\"{done}\">{percent} %</progress></div>",
        label = crate::charts::esc(label),
        state = crate::charts::esc(state),
        max = total.max(1),
    );
}

/// The progress bars of repair and scrubbing from `/v1/repair`: the repair pass's objects done
/// against those the catalog counted at its start (or found, if more), and the scrubbing
/// pass's likewise. Numbers and fixed words only.
pub fn progress_bars(t: &'static OpsTexts, v: &Value) -> String {
    let mut out = String::new();
    let state = text(v, "state");
    if state == "idle" {
        bar(
            &mut out,
            "repair",
            t.repair_bar,
            0,
            0,
            &format!(" — {}", t.no_pass),
        );
    } else {
        let total = count(v, "objects_expected").max(count(v, "objects_total"));
        bar(
            &mut out,
            "repair",
            t.repair_bar,
            count(v, "objects_done"),
            total,
            &format!(" — {state}"),
        );
    }
    bar(
        &mut out,
        "scrub",
        t.scrub_bar,
        count(v, "scrub_pass_done"),
        count(v, "scrub_pass_total"),
        "",
    );
    out
}

/// The alerts, from what this look reads (and the previous look's figures).
pub async fn alerts(console: &Console, bearer: Option<&str>, t: &'static OpsTexts) -> Section {
    // Not ready is a 503 whose body says why: the rules read it either way.
    let readyz = console.get_json_any_status(None, "/readyz").await.ok();
    let metrics = console
        .get_text(bearer, "/metrics")
        .await
        .ok()
        .map(|text| crate::alerts::parse_metrics(&text));
    let previous = metrics.as_ref().and_then(|m| console.alert_memory.swap(m));
    let history = console.get_json(bearer, "/v1/metrics/history").await.ok();
    let gateways = console.get_json(bearer, "/v1/gateways").await.ok();
    let unread: Vec<&str> = [
        ("/readyz", readyz.is_none()),
        ("/metrics", metrics.is_none()),
        ("/v1/metrics/history", history.is_none()),
        ("/v1/gateways", gateways.is_none()),
    ]
    .into_iter()
    .filter_map(|(path, missing)| missing.then_some(path))
    .collect();
    let fired = crate::alerts::evaluate(&Inputs {
        readyz: readyz.as_ref(),
        metrics: metrics.as_ref(),
        previous,
        history: history.as_ref(),
        gateways: gateways.as_ref(),
    });
    alerts_section(t, &fired, &unread)
}

/// The gateways and their workers, from `/v1/gateways`.
pub async fn gateways(console: &Console, bearer: Option<&str>, t: &'static OpsTexts) -> Section {
    let mut s = Section::new(t.gateways);
    s.note = Some(t.gateways_note);
    match console.get_json(bearer, "/v1/gateways").await {
        Ok(v) => s.table = Some(gateways_table(t, &v)),
        Err(e) => s.error = Some(e),
    }
    s
}

/// Repair's section: the progress bars above the status as the API answers it.
pub async fn repair(
    console: &Console,
    bearer: Option<&str>,
    title: &'static str,
    t: &'static OpsTexts,
) -> Section {
    let mut s = Section::new(title);
    match console.get_json(bearer, "/v1/repair").await {
        Ok(v) => {
            s.svg = Some(progress_bars(t, &v));
            // Errors as their count: their texts are for `obhut repair --status`, and a
            // catalog error's text may name a bucket, which this page never shows.
            let mut shown = v.clone();
            if let Some(errors) = shown.get_mut("errors") {
                *errors = serde_json::json!(errors.as_array().map_or(0, Vec::len));
            }
            s.table = Some(crate::pages::table(&shown, &[]));
        }
        Err(e) => s.error = Some(e),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bars_show_done_of_the_expected_total() {
        let v = json!({"state": "running", "objects_done": 3, "objects_expected": 12,
                       "objects_total": 5, "scrub_pass_done": 7, "scrub_pass_total": 14});
        let html = progress_bars(&EN, &v);
        assert!(
            html.contains("<progress max=\"12\" value=\"3\">25 %</progress>"),
            "{html}"
        );
        assert!(html.contains("3 / 12 (25 %)"), "{html}");
        assert!(
            html.contains("<progress max=\"14\" value=\"7\">50 %</progress>"),
            "{html}"
        );
        // A pass that found more than counted at its start ends at what it found.
        let v = json!({"state": "done", "objects_done": 9, "objects_expected": 8,
                       "objects_total": 9});
        assert!(progress_bars(&EN, &v).contains("9 / 9 (100 %)"));
        let idle = progress_bars(&DE, &json!({"state": "idle"}));
        assert!(idle.contains("noch kein Durchlauf"), "{idle}");
    }

    #[test]
    fn gateways_are_listed_with_health_role_and_workers() {
        let v = json!({"gateways": [{
            "id": "host:1:2", "version": "0.1.0", "started_ms": 0, "seen_ms": 5,
            "seen_ago_ms": 12_345, "background": "leader", "health": "stale",
            "workers": [{"name": "repair", "state": "waiting", "last_error": "site"},
                        {"name": "scrubber", "state": "working", "last_error": null}]}]});
        let t = gateways_table(&EN, &v);
        assert_eq!(t.headers.len(), 7);
        assert_eq!(
            t.rows,
            [[
                "host:1:2",
                "0.1.0",
                "1970-01-01 00:00:00 UTC",
                "12 s ago",
                "stale",
                "holder",
                "repair: waiting (site), scrubber: working"
            ]]
        );
        let de = gateways_table(&DE, &v);
        assert_eq!(
            (de.rows[0][4].as_str(), de.rows[0][5].as_str()),
            ("veraltet", "Inhaber")
        );
    }

    #[test]
    fn alerts_are_a_table_or_no_alerts_in_either_language() {
        let none = alerts_section(&EN, &[], &[]);
        assert_eq!(none.note, Some("No alerts."));
        assert!(none.table.is_none() && none.error.is_none());
        // nothing fires, but the metrics could not be read: never "No alerts"
        let blind = alerts_section(&EN, &[], &["/metrics", "/v1/gateways"]);
        assert_eq!(blind.note, None);
        let said = blind.error.unwrap();
        assert!(
            said.starts_with("Incomplete") && said.ends_with(": /metrics, /v1/gateways"),
            "{said}"
        );
        let a = [Alert {
            rule: Rule::SiteDown,
            detail: "de-mgd".into(),
        }];
        let s = alerts_section(&DE, &a, &[]);
        let rows = s.table.unwrap().rows;
        assert_eq!(rows[0][0], "kritisch");
        assert_eq!(rows[0][1], "ObhutSiteDown");
        assert!(rows[0][2].ends_with("(de-mgd)"), "{rows:?}");
        // Every rule has a line in both languages.
        for r in [
            Rule::SiteDown,
            Rule::TrusteeSealed,
            Rule::TrusteeUnreachable,
            Rule::CatalogDown,
            Rule::LogCheckpointTooOld,
            Rule::RepairBacklogGrowing,
            Rule::RepairFailures,
            Rule::SiteErrors,
            Rule::S3ServerErrors,
            Rule::QuotaNearFull,
            Rule::GatewayStale,
            Rule::GatewayNotReady,
        ] {
            assert!(!rules_en(r).is_empty() && !rules_de(r).is_empty());
        }
    }
}
