//! The operator page's alerts: the conditions of `docs/monitoring/alerts.yml`, evaluated from
//! what the page reads anyway (`/readyz`, `/metrics`, `/v1/metrics/history`, `/v1/gateways`)
//! and from the previous look at the page, by one pure function ([`evaluate`]).
//!
//! It reads states, counts, metric names and site ids only; an alert names sites by id and
//! counts everything else (quota scopes near their limit are a number, never a tenant or a
//! bucket).

use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Mutex;

/// How bad an alert is, as the rules' `severity` label says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Critical,
    Warning,
}

/// Which alert fired (the rule's name, or one of the console's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    SiteDown,
    TrusteeSealed,
    TrusteeUnreachable,
    CatalogDown,
    LogCheckpointTooOld,
    RepairBacklogGrowing,
    RepairFailures,
    SiteErrors,
    S3ServerErrors,
    QuotaNearFull,
    GatewayStale,
    GatewayNotReady,
}

impl Rule {
    /// The rule's name in `alerts.yml` (the console's own ones are named alike).
    pub fn name(self) -> &'static str {
        match self {
            Self::SiteDown => "ObhutSiteDown",
            Self::TrusteeSealed => "ObhutTrusteeSealed",
            Self::TrusteeUnreachable => "ObhutTrusteeUnreachable",
            Self::CatalogDown => "ObhutCatalogDown",
            Self::LogCheckpointTooOld => "ObhutLogCheckpointTooOld",
            Self::RepairBacklogGrowing => "ObhutRepairBacklogGrowing",
            Self::RepairFailures => "ObhutRepairFailures",
            Self::SiteErrors => "ObhutSiteErrors",
            Self::S3ServerErrors => "ObhutS3ServerErrors",
            Self::QuotaNearFull => "ObhutQuotaNearFull",
            Self::GatewayStale => "ObhutGatewayStale",
            Self::GatewayNotReady => "ObhutGatewayNotReady",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            Self::SiteDown | Self::TrusteeSealed | Self::TrusteeUnreachable | Self::CatalogDown => {
                Severity::Critical
            }
            _ => Severity::Warning,
        }
    }
}

/// A firing alert: its rule and what it concerns (site ids, counts, numbers).
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub rule: Rule,
    pub detail: String,
}

/// The figures of `/metrics` the rules read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpsMetrics {
    pub sites_down: BTreeSet<String>,
    pub checkpoint_age_s: Option<f64>,
    pub key_releases: f64,
    pub repair_backlog: f64,
    pub repair_failed: f64,
    pub quota_near_limit: f64,
}

/// `/metrics` as the rules read it.
pub fn parse_metrics(text: &str) -> OpsMetrics {
    let mut m = OpsMetrics::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, labels, value)) = crate::charts::sample(line) else {
            continue;
        };
        let label = |k: &str| labels.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        match name {
            "obhut_site_state" if label("state") == Some("down") && value >= 1.0 => {
                if let Some(site) = label("site") {
                    m.sites_down.insert(site.to_owned());
                }
            }
            "obhut_log_checkpoint_age_seconds" => m.checkpoint_age_s = Some(value),
            "obhut_key_releases_total" => m.key_releases += value,
            "obhut_repair_backlog_objects" | "obhut_repair_queued_objects" => {
                m.repair_backlog += value;
            }
            "obhut_repair_failed_objects" => m.repair_failed += value,
            "obhut_quota_scopes_near_limit" => m.quota_near_limit += value,
            _ => {}
        }
    }
    m
}

/// What the page saw at its previous look, for the rules about growth.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Previous {
    pub key_releases: f64,
    pub repair_backlog: f64,
}

/// The previous look, kept between two looks at the page.
#[derive(Default)]
pub struct Memory(Mutex<Option<Previous>>);

impl Memory {
    /// The previous look's figures, replaced by `now`'s.
    pub fn swap(&self, now: &OpsMetrics) -> Option<Previous> {
        let mut m = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        m.replace(Previous {
            key_releases: now.key_releases,
            repair_backlog: now.repair_backlog,
        })
    }
}

/// Everything the rules are evaluated on; `None` where the page could not read it.
#[derive(Debug, Default)]
pub struct Inputs<'a> {
    pub readyz: Option<&'a Value>,
    pub metrics: Option<&'a OpsMetrics>,
    pub previous: Option<Previous>,
    pub history: Option<&'a Value>,
    pub gateways: Option<&'a Value>,
}

/// The newest checkpoint older than this while keys are released: the log is not advancing.
pub const CHECKPOINT_MAX_AGE_S: f64 = 900.0;
/// The window of history the error rules look at (ms), as their `rate(…[5m])`.
pub const ERROR_WINDOW_MS: i64 = 5 * 60 * 1000;
/// The share of S3 requests answered 5xx above which `ObhutS3ServerErrors` fires.
pub const MAX_5XX_SHARE: f64 = 0.05;

fn str_at<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

/// The history's points within [`ERROR_WINDOW_MS`] of its newest.
fn recent(history: &Value) -> Vec<&Value> {
    let points = history
        .get("points")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let newest = points
        .iter()
        .filter_map(|p| p.get("at_ms").and_then(Value::as_i64))
        .max()
        .unwrap_or(0);
    points
        .iter()
        .filter(|p| {
            p.get("at_ms")
                .and_then(Value::as_i64)
                .is_some_and(|at| at > newest - ERROR_WINDOW_MS)
        })
        .collect()
}

fn ids(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// Every alert that fires on `i`, most severe first.
pub fn evaluate(i: &Inputs<'_>) -> Vec<Alert> {
    let mut out = Vec::new();
    let mut fire = |rule: Rule, detail: String| out.push(Alert { rule, detail });
    if let Some(r) = i.readyz {
        let down: BTreeSet<String> = r
            .get("sites")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|s| str_at(s, "state") == Some("down"))
            .filter_map(|s| str_at(s, "id").map(str::to_owned))
            .chain(i.metrics.map(|m| m.sites_down.clone()).unwrap_or_default())
            .collect();
        if !down.is_empty() {
            fire(Rule::SiteDown, ids(&down));
        }
        match str_at(r, "trustee") {
            Some("sealed") => fire(Rule::TrusteeSealed, String::new()),
            Some("unreachable") => fire(Rule::TrusteeUnreachable, String::new()),
            _ => {}
        }
        if str_at(r, "catalog").is_some_and(|c| c != "ok") {
            fire(Rule::CatalogDown, String::new());
        }
    } else if let Some(m) = i.metrics
        && !m.sites_down.is_empty()
    {
        fire(Rule::SiteDown, ids(&m.sites_down));
    }
    if let Some(m) = i.metrics {
        if let (Some(age), Some(prev)) = (m.checkpoint_age_s, i.previous)
            && age > CHECKPOINT_MAX_AGE_S
            && m.key_releases > prev.key_releases
        {
            fire(Rule::LogCheckpointTooOld, format!("{age:.0} s"));
        }
        if let Some(prev) = i.previous
            && m.repair_backlog > 0.0
            && m.repair_backlog > prev.repair_backlog
        {
            fire(
                Rule::RepairBacklogGrowing,
                format!("{:.0} → {:.0}", prev.repair_backlog, m.repair_backlog),
            );
        }
        if m.repair_failed > 0.0 {
            fire(Rule::RepairFailures, format!("{:.0}", m.repair_failed));
        }
        if m.quota_near_limit > 0.0 {
            fire(Rule::QuotaNearFull, format!("{:.0}", m.quota_near_limit));
        }
    }
    if let Some(h) = i.history {
        let points = recent(h);
        let failing: BTreeSet<String> = points
            .iter()
            .filter_map(|p| p.get("site_errors_per_s").and_then(Value::as_object))
            .flat_map(|by_site| {
                by_site
                    .iter()
                    .filter(|(_, v)| v.as_f64().is_some_and(|x| x > 0.0))
                    .map(|(site, _)| site.clone())
            })
            .collect();
        if !failing.is_empty() {
            fire(Rule::SiteErrors, ids(&failing));
        }
        let (mut all, mut failed) = (0.0, 0.0);
        for p in &points {
            let rps = p
                .get("requests_per_s")
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            let ratio = p.get("error_ratio").and_then(Value::as_f64).unwrap_or(0.0);
            all += rps;
            failed += rps * ratio;
        }
        if all > 0.0 && failed / all > MAX_5XX_SHARE {
            fire(
                Rule::S3ServerErrors,
                format!("{:.1} %", 100.0 * failed / all),
            );
        }
    }
    if let Some(g) = i.gateways {
        let rows = g
            .get("gateways")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let count = |h: &str| {
            rows.iter()
                .filter(|r| str_at(r, "health") == Some(h))
                .count()
        };
        let (stale, unready) = (count("stale"), count("not_ready"));
        if stale > 0 {
            fire(Rule::GatewayStale, stale.to_string());
        }
        if unready > 0 {
            fire(Rule::GatewayNotReady, unready.to_string());
        }
    }
    out.sort_by_key(|a| (a.rule.severity(), a.rule));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ready() -> Value {
        json!({"status": "ready", "trustee": "unsealed", "catalog": "ok",
               "sites": [{"id": "de-fra", "state": "active"}, {"id": "de-mgd", "state": "active"}]})
    }

    fn fired(i: &Inputs<'_>) -> Vec<Rule> {
        evaluate(i).into_iter().map(|a| a.rule).collect()
    }

    fn history(points: &[Value]) -> Value {
        json!({"interval_ms": 10_000, "capacity": 360, "points": points})
    }

    fn point(at_ms: i64, rps: f64, ratio: Option<f64>, site_errors: f64) -> Value {
        json!({"at_ms": at_ms, "requests_per_s": rps, "error_ratio": ratio,
               "site_ops_per_s": {"de-fra": 1.0}, "site_errors_per_s": {"de-fra": site_errors}})
    }

    #[test]
    fn a_healthy_system_has_no_alerts() {
        let r = ready();
        let m = OpsMetrics {
            checkpoint_age_s: Some(10.0),
            key_releases: 5.0,
            ..OpsMetrics::default()
        };
        let h = history(&[point(1_000, 10.0, Some(0.0), 0.0)]);
        let g = json!({"gateways": [{"health": "ok"}, {"health": "ok"}]});
        let i = Inputs {
            readyz: Some(&r),
            metrics: Some(&m),
            previous: Some(Previous {
                key_releases: 5.0,
                repair_backlog: 0.0,
            }),
            history: Some(&h),
            gateways: Some(&g),
        };
        assert_eq!(fired(&i), []);
        assert_eq!(fired(&Inputs::default()), [], "nothing read, nothing fires");
    }

    #[test]
    fn readiness_rules_fire_on_their_condition_only() {
        let mut r = ready();
        r["sites"][1]["state"] = json!("down");
        let a = evaluate(&Inputs {
            readyz: Some(&r),
            ..Inputs::default()
        });
        assert_eq!(
            a,
            [Alert {
                rule: Rule::SiteDown,
                detail: "de-mgd".into()
            }]
        );
        assert_eq!(a[0].rule.severity(), Severity::Critical);
        for (trustee, rule) in [
            ("sealed", Rule::TrusteeSealed),
            ("unreachable", Rule::TrusteeUnreachable),
        ] {
            let mut r = ready();
            r["trustee"] = json!(trustee);
            let i = Inputs {
                readyz: Some(&r),
                ..Inputs::default()
            };
            assert_eq!(fired(&i), [rule]);
        }
        let mut r = ready();
        r["catalog"] = json!("unavailable");
        let i = Inputs {
            readyz: Some(&r),
            ..Inputs::default()
        };
        assert_eq!(fired(&i), [Rule::CatalogDown]);
        // A site down in the metrics counts as well.
        let r = ready();
        let m = parse_metrics(
            "obhut_site_state{site=\"de-fra\",state=\"active\"} 0\n\
             obhut_site_state{site=\"de-fra\",state=\"down\"} 1\n",
        );
        let a = evaluate(&Inputs {
            readyz: Some(&r),
            metrics: Some(&m),
            ..Inputs::default()
        });
        assert_eq!(
            (a[0].rule, a[0].detail.as_str()),
            (Rule::SiteDown, "de-fra")
        );
    }

    #[test]
    fn metric_rules_fire_on_their_condition_only() {
        let text = "# HELP x\n\
            obhut_log_checkpoint_age_seconds 1000\n\
            obhut_key_releases_total{justification=\"customer\"} 7\n\
            obhut_key_releases_total{justification=\"system\"} 3\n\
            obhut_repair_backlog_objects 4\n\
            obhut_repair_queued_objects 1\n\
            obhut_repair_failed_objects 2\n\
            obhut_quota_scopes_near_limit{scope=\"tenant\"} 1\n\
            obhut_quota_scopes_near_limit{scope=\"bucket\"} 2\n";
        let m = parse_metrics(text);
        assert_eq!(
            (
                m.key_releases,
                m.repair_backlog,
                m.repair_failed,
                m.quota_near_limit
            ),
            (10.0, 5.0, 2.0, 3.0)
        );
        let grew = Previous {
            key_releases: 9.0,
            repair_backlog: 4.0,
        };
        let a = evaluate(&Inputs {
            metrics: Some(&m),
            previous: Some(grew),
            ..Inputs::default()
        });
        let rules: Vec<Rule> = a.iter().map(|a| a.rule).collect();
        assert_eq!(
            rules,
            [
                Rule::LogCheckpointTooOld,
                Rule::RepairBacklogGrowing,
                Rule::RepairFailures,
                Rule::QuotaNearFull
            ]
        );
        let quota = a.iter().find(|a| a.rule == Rule::QuotaNearFull).unwrap();
        assert_eq!(quota.detail, "3", "a count, naming no scope");
        // Without growth since the previous look (or without a previous look) the rules
        // about growth stay quiet; without failures or full quotas, so do theirs.
        let still = Previous {
            key_releases: 10.0,
            repair_backlog: 5.0,
        };
        let calm = OpsMetrics {
            repair_failed: 0.0,
            quota_near_limit: 0.0,
            ..m.clone()
        };
        for previous in [Some(still), None] {
            let i = Inputs {
                metrics: Some(&calm),
                previous,
                ..Inputs::default()
            };
            assert_eq!(fired(&i), []);
        }
        // A young checkpoint is no alert, however many keys are released.
        let young = OpsMetrics {
            checkpoint_age_s: Some(100.0),
            ..calm
        };
        let i = Inputs {
            metrics: Some(&young),
            previous: Some(grew),
            ..Inputs::default()
        };
        assert_eq!(fired(&i), [Rule::RepairBacklogGrowing]);
    }

    #[test]
    fn history_rules_fire_on_recent_errors_only() {
        // Site errors and 5xx six minutes ago, none since: quiet.
        let old = history(&[
            point(0, 10.0, Some(0.5), 2.0),
            point(360_000, 10.0, Some(0.0), 0.0),
        ]);
        let i = Inputs {
            history: Some(&old),
            ..Inputs::default()
        };
        assert_eq!(fired(&i), []);
        let now = history(&[
            point(0, 10.0, Some(0.0), 0.0),
            point(10_000, 10.0, Some(0.2), 0.5),
        ]);
        let a = evaluate(&Inputs {
            history: Some(&now),
            ..Inputs::default()
        });
        let rules: Vec<Rule> = a.iter().map(|a| a.rule).collect();
        assert_eq!(rules, [Rule::SiteErrors, Rule::S3ServerErrors]);
        assert_eq!(a[0].detail, "de-fra");
        // 5 % exactly is not more than 5 %; no requests, no ratio.
        let edge = history(&[point(0, 10.0, Some(0.05), 0.0), point(1, 0.0, None, 0.0)]);
        let i = Inputs {
            history: Some(&edge),
            ..Inputs::default()
        };
        assert_eq!(fired(&i), []);
    }

    #[test]
    fn gateway_rules_count_stale_and_unready_gateways() {
        let g = json!({"gateways": [{"health": "stale"}, {"health": "ok"},
                                     {"health": "not_ready"}, {"health": "stale"}]});
        let a = evaluate(&Inputs {
            gateways: Some(&g),
            ..Inputs::default()
        });
        assert_eq!(
            a,
            [
                Alert {
                    rule: Rule::GatewayStale,
                    detail: "2".into()
                },
                Alert {
                    rule: Rule::GatewayNotReady,
                    detail: "1".into()
                }
            ]
        );
    }

    #[test]
    fn critical_alerts_come_first() {
        let mut r = ready();
        r["trustee"] = json!("sealed");
        let m = OpsMetrics {
            repair_failed: 1.0,
            ..OpsMetrics::default()
        };
        let a = evaluate(&Inputs {
            readyz: Some(&r),
            metrics: Some(&m),
            ..Inputs::default()
        });
        assert_eq!(
            a.iter().map(|a| a.rule).collect::<Vec<_>>(),
            [Rule::TrusteeSealed, Rule::RepairFailures]
        );
    }

    #[test]
    fn the_previous_look_is_kept_for_the_next() {
        let mem = Memory::default();
        let m = OpsMetrics {
            key_releases: 3.0,
            repair_backlog: 2.0,
            ..OpsMetrics::default()
        };
        assert_eq!(mem.swap(&m), None);
        assert_eq!(
            mem.swap(&OpsMetrics::default()),
            Some(Previous {
                key_releases: 3.0,
                repair_backlog: 2.0
            })
        );
    }
}
