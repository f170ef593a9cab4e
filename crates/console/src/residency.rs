//! Where a tenant's data lies, for its admin: the signed residency report of its buckets (the
//! sites and jurisdictions each object's replicas are on), asked for on its own page because
//! each report is attested in the transparency log.
//!
//! It sees what the admin API's `/v1/residency` answers the tenant's admin: counts per set of
//! sites, never object names.

use crate::pages::{Console, Ctx, Section, Table, render_role_page, session_of_role};
use axum::extract::State;
use axum::response::Response;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "—".to_owned(),
        Some(other) => other.to_string(),
    }
}

fn list(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// `site (JURISDICTION)` for each site of a comma-joined set.
fn sites_with_jurisdictions(set: &str, jurisdiction: &HashMap<String, String>) -> String {
    set.split(',')
        .map(|id| match jurisdiction.get(id) {
            Some(j) => format!("{id} ({j})"),
            None => format!("{id} (?)"),
        })
        .collect::<Vec<_>>()
        .join(" + ")
}

/// The sections of a `/v1/residency` answer.
pub fn report_sections(t: &crate::i18n::Texts, answer: &Value) -> Vec<Section> {
    let report: Value = answer
        .get("report")
        .and_then(Value::as_str)
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or(Value::Null);
    let sites = report
        .get("sites")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let jurisdiction: HashMap<String, String> = sites
        .iter()
        .map(|s| (text(s, "id"), text(s, "jurisdiction")))
        .collect();
    let mut where_ = Section::new(t.where_data_lies);
    where_.note = Some(t.where_data_lies_note);
    let mut rows = Vec::new();
    for tenant in report
        .get("tenants")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        for b in tenant
            .get("buckets")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let by_sites = b
                .get("objects_by_sites")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(set, n)| {
                            format!("{}: {n}", sites_with_jurisdictions(set, &jurisdiction))
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default();
            let policy = b.get("policy").cloned().unwrap_or(Value::Null);
            rows.push(vec![
                text(b, "bucket"),
                list(&policy, "jurisdictions"),
                text(&policy, "min_sites"),
                text(b, "objects"),
                if by_sites.is_empty() {
                    "—".to_owned()
                } else {
                    by_sites
                },
                text(b, "under_replicated"),
                text(b, "outside_policy"),
            ]);
        }
    }
    where_.table = Some(Table {
        headers: [
            t.f_bucket,
            t.allowed_jurisdictions,
            t.min_sites,
            t.objects,
            t.replicas_on,
            t.under_replicated,
            t.outside_policy,
        ]
        .iter()
        .map(|h| (*h).to_owned())
        .collect(),
        rows,
    });
    let mut site_section = Section::new(t.sites);
    site_section.table = Some(Table {
        headers: ["id", "jurisdiction", "state"]
            .iter()
            .map(|h| (*h).to_owned())
            .collect(),
        rows: sites
            .iter()
            .map(|s| vec![text(s, "id"), text(s, "jurisdiction"), text(s, "state")])
            .collect(),
    });
    let mut attested = Section::new(t.attestation);
    attested.note = Some(t.attestation_note);
    let mut fields = vec![vec!["sha256".to_owned(), text(answer, "sha256")]];
    if let Some(a) = answer.get("attestation").and_then(Value::as_object) {
        fields.extend(a.iter().map(|(k, v)| {
            vec![
                k.clone(),
                v.as_str().map_or_else(|| v.to_string(), str::to_owned),
            ]
        }));
    }
    attested.table = Some(Table {
        headers: Vec::new(),
        rows: fields,
    });
    vec![tenant_map(t, &report), where_, site_section, attested]
}

/// The tenant's data on the map: each site with the number of the tenant's objects that have
/// a replica there, the jurisdictions that hold some marked, and the others its policies allow.
fn tenant_map(t: &crate::i18n::Texts, report: &Value) -> Section {
    use crate::map::{MapSite, Mark};
    use std::collections::BTreeMap;
    let mut objects_on: BTreeMap<String, u64> = BTreeMap::new();
    let mut marks: BTreeMap<String, Mark> = BTreeMap::new();
    for tenant in report
        .get("tenants")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let allowed = tenant
            .get("jurisdictions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        let buckets = tenant
            .get("buckets")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let by_policy = buckets
            .iter()
            .filter_map(|b| b.get("policy")?.get("jurisdictions")?.as_array())
            .flatten();
        for j in allowed.chain(by_policy).filter_map(Value::as_str) {
            marks.insert(j.to_owned(), Mark::Allowed);
        }
        for b in buckets {
            for (set, n) in b
                .get("objects_by_sites")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                for id in set.split(',') {
                    *objects_on.entry(id.to_owned()).or_default() += n.as_u64().unwrap_or(0);
                }
            }
        }
    }
    let sites: Vec<MapSite> = report
        .get("sites")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|s| {
            let id = text(s, "id");
            let n = objects_on.get(&id).copied().unwrap_or(0);
            MapSite {
                jurisdiction: text(s, "jurisdiction"),
                location: String::new(),
                state: text(s, "state"),
                replicas: format!("{n} {}", t.your_objects),
                id,
            }
        })
        .collect();
    for s in &sites {
        if objects_on.get(&s.id).is_some_and(|n| *n > 0) {
            marks.insert(s.jurisdiction.clone(), Mark::Holding);
        }
    }
    let mut section = Section::new(t.residency_map);
    section.note = Some(t.tenant_map_note);
    let (svg, unplaced) = crate::map::residency_map(&sites, &marks);
    section.svg = Some(svg);
    if !unplaced.is_empty() {
        section.text = Some(format!("{}\n{}", t.not_on_map, unplaced.join("\n")));
    }
    section
}

/// `GET /console/tenant/residency`.
pub async fn tenant_residency(State(console): State<Arc<Console>>, ctx: Ctx) -> Response {
    let session = match session_of_role(&ctx, "tenant-admin") {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let t = ctx.t();
    let sections = match console
        .get_json(Some(&session.bearer), "/v1/residency")
        .await
    {
        Ok(answer) => report_sections(t, &answer),
        Err(e) => {
            let mut s = Section::new(t.where_data_lies);
            s.error = Some(e);
            vec![s]
        }
    };
    render_role_page(&ctx, session, t.residency, None, None, sections, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_bucket_shows_its_sites_with_their_jurisdictions() {
        let report = json!({
            "generated_ms": 0, "verified": false,
            "sites": [{"id": "de-fra", "jurisdiction": "DE", "state": "active"},
                      {"id": "de-mgd", "jurisdiction": "DE", "state": "active"}],
            "tenants": [{"tenant": "acme", "jurisdictions": ["DE"], "buckets": [{
                "bucket": "photos", "objects": 3, "objects_by_sites": {"de-fra,de-mgd": 3},
                "outside_policy": 0, "outside_policy_sites": {}, "under_replicated": 0,
                "policy": {"degraded_writes": "refuse", "jurisdictions": ["DE"], "min_sites": 2}}]}]
        });
        let answer =
            json!({"report": report.to_string(), "sha256": "ab", "attestation": {"index": 7}});
        let s = report_sections(crate::i18n::Lang::En.texts(), &answer);
        let map = s[0].svg.as_ref().unwrap();
        assert!(map.contains(r#"data-site="de-fra""#) && map.contains("3 objects of yours"));
        let de = &map[map.find(r#"data-jurisdiction="DE" d="#).unwrap()..];
        assert!(de[..de.find("</path>").unwrap()].contains(r#"data-holds="yes""#));
        assert!(!map.contains("photos") && !map.contains("acme"));
        let s = &s[1..];
        let rows = &s[0].table.as_ref().unwrap().rows;
        assert_eq!(
            rows[0],
            [
                "photos",
                "DE",
                "2",
                "3",
                "de-fra (DE) + de-mgd (DE): 3",
                "0",
                "0"
            ]
        );
        assert_eq!(s[1].table.as_ref().unwrap().rows.len(), 2);
        assert_eq!(s[2].table.as_ref().unwrap().rows[1], ["index", "7"]);
    }
}
