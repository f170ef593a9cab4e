//! The residency map: sites drawn on the outlines of their jurisdictions, as SVG made on the
//! server from outlines shipped in the binary ([`crate::outlines`], from Natural Earth; nothing
//! is fetched from elsewhere).
//!
//! The map shows Europe's jurisdictions (the EU and EEA states, Switzerland, the United
//! Kingdom) with the other countries of the window as grey context, zoomed to the jurisdictions
//! that have something to show. A site is placed by its `location` when that names a city of
//! the small gazetteer below, else at the middle of its jurisdiction; sites of a jurisdiction
//! the map does not draw are listed beside it. Jurisdictions can be marked (a tenant's allowed
//! jurisdictions, and those that hold its data) and sites can carry a count (a tenant's objects
//! with a replica there). It sees sites' ids, jurisdictions, locations, states and counts only.

use crate::outlines::{ORIGIN, OUTLINES, SIZE};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::OnceLock;

/// Cities a site's `location` may name, (name, longitude, latitude).
const PLACES: [(&str, f64, f64); 44] = [
    ("frankfurt", 8.68, 50.11),
    ("magdeburg", 11.63, 52.13),
    ("berlin", 13.4, 52.52),
    ("hamburg", 9.99, 53.55),
    ("münchen", 11.58, 48.14),
    ("munich", 11.58, 48.14),
    ("köln", 6.96, 50.94),
    ("cologne", 6.96, 50.94),
    ("düsseldorf", 6.78, 51.23),
    ("nürnberg", 11.08, 49.45),
    ("nuremberg", 11.08, 49.45),
    ("stuttgart", 9.18, 48.78),
    ("leipzig", 12.37, 51.34),
    ("dresden", 13.74, 51.05),
    ("hannover", 9.74, 52.37),
    ("falkenstein", 12.37, 50.48),
    ("wien", 16.37, 48.21),
    ("vienna", 16.37, 48.21),
    ("zürich", 8.54, 47.37),
    ("zurich", 8.54, 47.37),
    ("genève", 6.14, 46.2),
    ("geneva", 6.14, 46.2),
    ("paris", 2.35, 48.86),
    ("marseille", 5.37, 43.3),
    ("amsterdam", 4.9, 52.37),
    ("brussels", 4.35, 50.85),
    ("bruxelles", 4.35, 50.85),
    ("luxembourg", 6.13, 49.61),
    ("london", -0.13, 51.51),
    ("dublin", -6.26, 53.35),
    ("madrid", -3.7, 40.42),
    ("lisbon", -9.14, 38.72),
    ("lisboa", -9.14, 38.72),
    ("milano", 9.19, 45.46),
    ("milan", 9.19, 45.46),
    ("warszawa", 21.01, 52.23),
    ("warsaw", 21.01, 52.23),
    ("praha", 14.42, 50.08),
    ("prague", 14.42, 50.08),
    ("københavn", 12.57, 55.68),
    ("copenhagen", 12.57, 55.68),
    ("stockholm", 18.07, 59.33),
    ("helsinki", 24.94, 60.17),
    ("oslo", 10.75, 59.91),
];

/// One site as the map shows it.
pub struct MapSite {
    pub id: String,
    pub jurisdiction: String,
    pub location: String,
    pub state: String,
    /// The note after the site's name (its replica count, or a tenant's objects there).
    pub replicas: String,
}

/// How a jurisdiction is marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Allowed by a policy, holding nothing.
    Allowed,
    /// Holding data.
    Holding,
}

/// Where `location` is, if it names a city of [`PLACES`].
fn place(location: &str) -> Option<(f64, f64)> {
    let l = location.to_lowercase();
    PLACES
        .iter()
        .find(|(name, _, _)| l.contains(name))
        .map(|(_, lon, lat)| (*lon, *lat))
}

/// (longitude, latitude) as (x, y) in the outlines' SVG units.
fn project(lon: f64, lat: f64) -> (f64, f64) {
    let k = 52.0_f64.to_radians().cos();
    ((lon - ORIGIN.0) * k * 10.0, (ORIGIN.1 - lat) * 10.0)
}

/// A jurisdiction's bounds (min x, min y, max x, max y) and a point inside it.
type Bounds = ([f64; 4], (f64, f64));

/// Each jurisdiction's bounds and inner point, from its path.
fn jurisdictions() -> &'static HashMap<&'static str, Bounds> {
    static BOUNDS: OnceLock<HashMap<&'static str, Bounds>> = OnceLock::new();
    BOUNDS.get_or_init(|| {
        OUTLINES
            .iter()
            .filter(|o| !o.0.is_empty())
            .map(|(code, _, d, lx, ly)| {
                let mut b = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
                for pair in d.split(['M', 'Z', ' ']).filter(|p| !p.is_empty()) {
                    if let Some((x, y)) = pair.split_once(',')
                        && let (Ok(x), Ok(y)) = (x.parse::<f64>(), y.parse::<f64>())
                    {
                        b = [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)];
                    }
                }
                (*code, (b, (*lx, *ly)))
            })
            .collect()
    })
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The width the map is drawn at, in CSS pixels.
const WIDTH: f64 = 640.0;

/// The map of `sites` with `marks` on jurisdictions, and the sites it could not place (of a
/// jurisdiction it does not draw).
pub fn residency_map(sites: &[MapSite], marks: &BTreeMap<String, Mark>) -> (String, Vec<String>) {
    let known = jurisdictions();
    // Zoom to the jurisdictions with a site or a mark, with a margin; the whole window if none.
    let mut view = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
    for code in sites
        .iter()
        .map(|s| s.jurisdiction.as_str())
        .chain(marks.keys().map(String::as_str))
    {
        if let Some((b, _)) = known.get(code) {
            view = [
                view[0].min(b[0]),
                view[1].min(b[1]),
                view[2].max(b[2]),
                view[3].max(b[3]),
            ];
        }
    }
    if view[0] > view[2] {
        view = [0.0, 0.0, SIZE.0, SIZE.1];
    }
    let margin = ((view[2] - view[0]).max(view[3] - view[1]) * 0.25).max(12.0);
    let (x0, y0) = ((view[0] - margin).max(0.0), (view[1] - margin).max(0.0));
    let (x1, y1) = (
        (view[2] + margin).min(SIZE.0),
        (view[3] + margin).min(SIZE.1),
    );
    // Room on the right for labels.
    let x1 = (x1 + (x1 - x0) * 0.45).min(SIZE.0 + (x1 - x0) * 0.45);
    let (w, h) = (x1 - x0, y1 - y0);
    let px = w / WIDTH; // SVG units per CSS pixel
    let height = (h / px).round();
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="map" role="img" width="{WIDTH:.0}" height="{height:.0}" viewBox="{x0:.1} {y0:.1} {w:.1} {h:.1}"><title>Europe</title><rect x="{x0:.1}" y="{y0:.1}" width="{w:.1}" height="{h:.1}" fill="#f7f9fc"/>"##
    );
    let with_sites: Vec<&str> = sites.iter().map(|s| s.jurisdiction.as_str()).collect();
    for (code, name, d, _, _) in OUTLINES {
        let (fill, stroke) = match (code.is_empty(), marks.get(*code)) {
            (true, _) => ("#e4e6ea", "#c4c8cf"),
            (false, Some(Mark::Holding)) => ("#8fb8e6", "#3d5a80"),
            (false, Some(Mark::Allowed)) => ("#d4e4f7", "#5b6574"),
            // A jurisdiction with sites stands out a little from those without.
            (false, None) if with_sites.contains(code) => ("#e3ecf7", "#5b6574"),
            (false, None) => ("#f1f3f6", "#8a93a0"),
        };
        let mark = match marks.get(*code) {
            Some(Mark::Holding) => " data-holds=\"yes\"",
            Some(Mark::Allowed) => " data-allowed=\"yes\"",
            None => "",
        };
        let _ = write!(
            svg,
            r#"<path{} d="{d}" fill="{fill}" stroke="{stroke}" stroke-width="0.8" vector-effect="non-scaling-stroke"{mark}><title>{}</title></path>"#,
            if code.is_empty() {
                String::new()
            } else {
                format!(r#" data-jurisdiction="{code}""#)
            },
            esc(&if code.is_empty() {
                (*name).to_owned()
            } else {
                format!("{name} ({code})")
            }),
        );
    }
    let font = 12.5 * px;
    let mut unplaced = Vec::new();
    let mut at_centre: HashMap<&str, usize> = HashMap::new();
    for s in sites {
        let Some((_, centre)) = known.get(s.jurisdiction.as_str()) else {
            unplaced.push(format!(
                "{} ({}, {}): {}",
                s.id, s.jurisdiction, s.location, s.state
            ));
            continue;
        };
        let (x, y) = match place(&s.location) {
            Some((lon, lat)) => project(lon, lat),
            None => {
                // Several sites in the middle of one jurisdiction: one below the other.
                let n = at_centre.entry(s.jurisdiction.as_str()).or_default();
                *n += 1;
                (centre.0, centre.1 + (*n - 1) as f64 * 18.0 * px)
            }
        };
        let colour = if s.state == "active" {
            "#0b5cad"
        } else {
            "#a4161a"
        };
        let _ = write!(
            svg,
            r##"<circle class="site" data-site="{id}" data-jurisdiction="{j}" cx="{x:.2}" cy="{y:.2}" r="{r:.2}" fill="{colour}" stroke="#fff" stroke-width="1" vector-effect="non-scaling-stroke"/><text x="{:.2}" y="{:.2}" font-size="{font:.2}" fill="#1d2430" stroke="#fff" stroke-width="3" paint-order="stroke" stroke-linejoin="round">{id} · {loc} · {state} · {replicas}</text>"##,
            x + 9.0 * px,
            y + 4.0 * px,
            r = 5.5 * px,
            id = esc(&s.id),
            j = esc(&s.jurisdiction),
            loc = esc(if s.location.is_empty() {
                &s.jurisdiction
            } else {
                &s.location
            }),
            state = esc(&s.state),
            replicas = esc(&s.replicas),
        );
    }
    svg.push_str("</svg>");
    (svg, unplaced)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(id: &str, j: &str, loc: &str) -> MapSite {
        MapSite {
            id: id.into(),
            jurisdiction: j.into(),
            location: loc.into(),
            state: "active".into(),
            replicas: "3".into(),
        }
    }

    fn circle(svg: &str, id: &str) -> (f64, f64) {
        let at = svg.find(&format!(r#"data-site="{id}""#)).unwrap();
        let rest = &svg[at..];
        let num = |k: &str| -> f64 {
            let s = &rest[rest.find(k).unwrap() + k.len()..];
            s[..s.find('"').unwrap()].parse().unwrap()
        };
        (num(r#"cx=""#), num(r#"cy=""#))
    }

    fn view_box(svg: &str) -> [f64; 4] {
        let s = &svg[svg.find("viewBox=\"").unwrap() + 9..];
        let v: Vec<f64> = s[..s.find('"').unwrap()]
            .split(' ')
            .map(|x| x.parse().unwrap())
            .collect();
        [v[0], v[1], v[2], v[3]]
    }

    #[test]
    fn sites_are_placed_where_their_cities_are_and_the_rest_listed() {
        let (svg, unplaced) = residency_map(
            &[
                site("de-fra", "DE", "Frankfurt am Main"),
                site("de-mgd", "DE", "Magdeburg"),
                site("at-vie", "AT", "Wien"),
                site("de-x", "DE", "<somewhere>"),
                site("us-east", "US", "Virginia"),
            ],
            &BTreeMap::new(),
        );
        let fra = circle(&svg, "de-fra");
        let mgd = circle(&svg, "de-mgd");
        let vie = circle(&svg, "at-vie");
        // Magdeburg is north-east of Frankfurt, Vienna south-east of both.
        assert!(mgd.0 > fra.0 && mgd.1 < fra.1, "{fra:?} {mgd:?}");
        assert!(vie.0 > mgd.0 && vie.1 > fra.1, "{vie:?}");
        // A place the gazetteer does not know: the middle of its jurisdiction, escaped.
        let x = circle(&svg, "de-x");
        assert!(x.0 > fra.0 && x.0 < mgd.0 + 30.0, "{x:?}");
        assert!(svg.contains("&lt;somewhere&gt;") && !svg.contains("<somewhere>"));
        assert_eq!(unplaced.len(), 1);
        assert!(unplaced[0].starts_with("us-east (US"));
    }

    #[test]
    fn every_jurisdiction_of_the_eu_eea_ch_and_uk_is_drawn() {
        for code in [
            "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
            "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS",
            "LI", "NO", "CH", "GB",
        ] {
            let (b, (lx, ly)) = jurisdictions()[code];
            assert!(b[0] < b[2] && b[1] < b[3], "{code}: {b:?}");
            assert!(b[0] >= 0.0 && b[2] <= SIZE.0 && b[1] >= 0.0 && b[3] <= SIZE.1);
            assert!(
                lx >= b[0] && lx <= b[2] && ly >= b[1] && ly <= b[3],
                "{code}"
            );
        }
        // Frankfurt lies inside Germany's bounds, Paris inside France's.
        let (de, _) = jurisdictions()["DE"];
        let (x, y) = project(8.68, 50.11);
        assert!(x > de[0] && x < de[2] && y > de[1] && y < de[3]);
        let (fr, _) = jurisdictions()["FR"];
        let (x, y) = project(2.35, 48.86);
        assert!(x > fr[0] && x < fr[2] && y > fr[1] && y < fr[3]);
    }

    #[test]
    fn the_map_zooms_to_what_it_shows_and_marks_jurisdictions() {
        let only_de = view_box(&residency_map(&[site("a", "DE", "Berlin")], &BTreeMap::new()).0);
        let mut marks = BTreeMap::new();
        marks.insert("DE".to_owned(), Mark::Holding);
        marks.insert("PT".to_owned(), Mark::Allowed);
        let (svg, _) = residency_map(&[site("a", "DE", "Berlin")], &marks);
        let wide = view_box(&svg);
        assert!(
            wide[2] > only_de[2] && wide[0] < only_de[0],
            "{only_de:?} {wide:?}"
        );
        assert!(svg.contains(r#"data-jurisdiction="DE" d="#));
        let de = &svg[svg.find(r#"data-jurisdiction="DE" d="#).unwrap()..];
        assert!(de[..de.find("</path>").unwrap()].contains(r#"data-holds="yes""#));
        let pt = &svg[svg.find(r#"data-jurisdiction="PT" d="#).unwrap()..];
        assert!(pt[..pt.find("</path>").unwrap()].contains(r#"data-allowed="yes""#));
        // Nothing to show: the whole window.
        let all = view_box(&residency_map(&[], &BTreeMap::new()).0);
        assert!(all[0] == 0.0 && all[1] == 0.0);
    }
}
