//! Where a tenant's data lies, for its admin: its totals per site and jurisdiction over all its
//! buckets (counted by the catalog in one query, `/v1/residency/totals`), and the signed
//! residency report of one page of its buckets at a time (`/v1/residency?limit=…&after=…`,
//! each page attested in the transparency log); the full signed report is a download.
//!
//! It sees what the admin API answers the tenant's admin: counts per set of sites, never
//! object names.

use crate::pages::{Console, Ctx, Section, Table, encode, render_role_page, session_of_role};
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
    vec![where_, site_section, attested]
}

/// The number of a tenant's buckets one page of its residency shows.
pub const PAGE: usize = 100;

/// Objects per site and per jurisdiction from a `/v1/residency/totals` answer: an object
/// counts once for each site its replicas are on, and once for a jurisdiction however many of
/// its sites are there.
fn totals_by_site_and_jurisdiction(
    totals: &Value,
) -> (
    std::collections::BTreeMap<String, u64>,
    std::collections::BTreeMap<String, u64>,
) {
    use std::collections::{BTreeMap, BTreeSet};
    let jurisdiction: HashMap<String, String> = totals
        .get("sites")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|s| (text(s, "id"), text(s, "jurisdiction")))
        .collect();
    let (mut by_site, mut by_jurisdiction) = (BTreeMap::new(), BTreeMap::new());
    for (set, n) in totals
        .get("objects_by_sites")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let n = n.as_u64().unwrap_or(0);
        let ids: Vec<&str> = set.split(',').filter(|id| !id.is_empty()).collect();
        for id in &ids {
            *by_site.entry((*id).to_owned()).or_default() += n;
        }
        let js: BTreeSet<String> = ids
            .iter()
            .map(|id| {
                jurisdiction
                    .get(*id)
                    .cloned()
                    .unwrap_or_else(|| "?".to_owned())
            })
            .collect();
        for j in js {
            *by_jurisdiction.entry(j).or_default() += n;
        }
    }
    (by_site, by_jurisdiction)
}

/// The map and the totals over all of a tenant's buckets, from `/v1/residency/totals`.
pub fn totals_sections(t: &crate::i18n::Texts, totals: &Value) -> Vec<Section> {
    let (by_site, by_jurisdiction) = totals_by_site_and_jurisdiction(totals);
    let mut section = Section::new(t.totals);
    section.note = Some(t.totals_note);
    let mut rows = vec![vec![
        t.all_objects.to_owned(),
        String::new(),
        text(totals, "objects"),
    ]];
    for (j, n) in &by_jurisdiction {
        rows.push(vec![j.clone(), String::new(), n.to_string()]);
        let jurisdiction_of = |id: &str| {
            totals
                .get("sites")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|s| text(s, "id") == id)
                .map(|s| text(s, "jurisdiction"))
                .unwrap_or_else(|| "?".to_owned())
        };
        for (site, m) in by_site.iter().filter(|(id, _)| jurisdiction_of(id) == *j) {
            rows.push(vec![j.clone(), site.clone(), m.to_string()]);
        }
    }
    section.table = Some(Table {
        headers: [t.f_jurisdiction, t.site, t.objects_with_replica]
            .iter()
            .map(|h| (*h).to_owned())
            .collect(),
        rows,
    });
    vec![tenant_map(t, totals, &by_site), section]
}

/// The tenant's data on the map: each site with the number of the tenant's objects that have
/// a replica there, the jurisdictions that hold some marked, and the others its policy allows.
fn tenant_map(
    t: &crate::i18n::Texts,
    totals: &Value,
    objects_on: &std::collections::BTreeMap<String, u64>,
) -> Section {
    use crate::map::{MapSite, Mark};
    use std::collections::BTreeMap;
    let mut marks: BTreeMap<String, Mark> = BTreeMap::new();
    // A bucket's policy is within its tenant's: the tenant's marks what is allowed.
    for j in totals
        .get("jurisdictions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        marks.insert(j.to_owned(), Mark::Allowed);
    }
    let sites: Vec<MapSite> = totals
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

/// `GET /console/tenant/residency[?after=BUCKET]`: the totals and the map over all the
/// tenant's buckets, then one page of its signed report ([`PAGE`] buckets in name order), with
/// a link to the next page and one to download the full signed report.
pub async fn tenant_residency(State(console): State<Arc<Console>>, ctx: Ctx) -> Response {
    let session = match session_of_role(&ctx, "tenant-admin") {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let t = ctx.t();
    let b = Some(session.bearer.as_str());
    let mut sections = match console.get_json(b, "/v1/residency/totals").await {
        Ok(totals) => totals_sections(t, &totals),
        Err(e) => {
            let mut s = Section::new(t.totals);
            s.error = Some(e);
            vec![s]
        }
    };
    let after = ctx.query.get("after").filter(|a| !a.is_empty());
    let mut path = format!("/v1/residency?limit={PAGE}");
    if let Some(a) = after {
        path.push_str("&after=");
        path.push_str(&encode(a));
    }
    match console.get_json(b, &path).await {
        Ok(answer) => {
            let mut page = report_sections(t, &answer);
            if let Some(next) = answer.get("next").and_then(Value::as_str) {
                page[0].next = Some(format!("/console/tenant/residency?after={}", encode(next)));
            }
            sections.extend(page);
        }
        Err(e) => {
            let mut s = Section::new(t.where_data_lies);
            s.error = Some(e);
            sections.push(s);
        }
    }
    let mut download = Section::new(t.full_report);
    download.note = Some(t.full_report_note);
    download.link = Some((
        "/console/tenant/residency/report".to_owned(),
        t.download_report,
    ));
    sections.push(download);
    render_role_page(&ctx, session, t.residency, None, None, sections, None)
}

/// `GET /console/tenant/residency/report`: the full signed report of all the tenant's buckets
/// (`/v1/residency`: the report, its SHA-256 and the trustee's attestation) as a download,
/// passed on from the admin API as it comes.
pub async fn tenant_residency_report(State(console): State<Arc<Console>>, ctx: Ctx) -> Response {
    use axum::http::{HeaderValue, StatusCode, header};
    let session = match session_of_role(&ctx, "tenant-admin") {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let t = ctx.t();
    match console.pass_through(&session.bearer, "/v1/residency").await {
        Ok(mut resp) if resp.status().is_success() => {
            resp.headers_mut().insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"residency-report.json\""),
            );
            ctx.finish(resp)
        }
        Ok(resp) => crate::pages::message(
            &ctx,
            resp.status(),
            t.full_report,
            &format!("{}: {}", t.api_refused, resp.status().as_u16()),
        ),
        Err(e) => crate::pages::message(&ctx, StatusCode::BAD_GATEWAY, t.full_report, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_bucket_shows_its_sites_with_their_jurisdictions() {
        let report = json!({
            "generated_ms": 0, "verified": false,
            "page": {"limit": 100, "next": "photos"},
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

    #[test]
    fn the_totals_count_each_object_once_per_site_and_per_jurisdiction() {
        let totals = json!({
            "tenant": "acme", "jurisdictions": ["DE", "AT"], "objects": 6,
            "objects_by_sites": {"de-fra,de-mgd": 3, "at-vie,de-fra": 2, "at-vie": 1},
            "sites": [{"id": "at-vie", "jurisdiction": "AT", "state": "active"},
                      {"id": "de-fra", "jurisdiction": "DE", "state": "active"},
                      {"id": "de-mgd", "jurisdiction": "DE", "state": "active"},
                      {"id": "fr-par", "jurisdiction": "FR", "state": "active"}]
        });
        let s = totals_sections(crate::i18n::Lang::En.texts(), &totals);
        let map = s[0].svg.as_ref().unwrap();
        assert!(map.contains(r#"data-site="de-fra""#) && map.contains("5 objects of yours"));
        let de = &map[map.find(r#"data-jurisdiction="DE" d="#).unwrap()..];
        assert!(de[..de.find("</path>").unwrap()].contains(r#"data-holds="yes""#));
        assert!(!map.contains("acme"));
        let rows = &s[1].table.as_ref().unwrap().rows;
        let want: Vec<Vec<String>> = [
            ["all objects", "", "6"],
            ["AT", "", "3"],
            ["AT", "at-vie", "3"],
            ["DE", "", "5"],
            ["DE", "de-fra", "5"],
            ["DE", "de-mgd", "3"],
        ]
        .iter()
        .map(|r| r.iter().map(|c| (*c).to_owned()).collect())
        .collect();
        assert_eq!(rows, &want);
    }
}
