//! The residency map: the sites drawn on an outline of their jurisdiction, as SVG made on the
//! server from data shipped in the binary (nothing is fetched from elsewhere).
//!
//! The outline of Germany is coarse, drawn for obhut from about seventy points along the border
//! (good to some kilometres, enough to see where a site is, not to settle a border). A site is
//! placed by its `location` when that names a city of the small gazetteer below; others are
//! listed beside the map. It sees sites' ids, jurisdictions, locations and replica counts only.

use std::fmt::Write;

/// Germany's border, (longitude, latitude), clockwise from the Danish border on the North Sea.
const DE_OUTLINE: [(f64, f64); 60] = [
    (8.65, 54.91),
    (9.42, 54.83),
    (9.95, 54.78),
    (10.03, 54.55),
    (10.85, 54.42),
    (11.1, 54.1),
    (10.88, 53.96),
    (11.45, 54.02),
    (12.1, 54.18),
    (12.53, 54.47),
    (13.12, 54.55),
    (13.42, 54.68),
    (13.75, 54.48),
    (13.7, 54.15),
    (14.22, 53.93),
    (14.42, 53.28),
    (14.14, 52.96),
    (14.64, 52.57),
    (14.55, 52.26),
    (14.75, 52.07),
    (14.6, 51.8),
    (14.75, 51.5),
    (15.04, 51.28),
    (14.82, 50.87),
    (14.3, 51.05),
    (13.9, 50.78),
    (13.25, 50.6),
    (12.95, 50.42),
    (12.32, 50.2),
    (12.1, 50.32),
    (12.5, 49.95),
    (12.55, 49.62),
    (12.93, 49.34),
    (13.4, 49.05),
    (13.83, 48.77),
    (13.73, 48.5),
    (13.18, 48.3),
    (12.75, 48.12),
    (13.0, 47.85),
    (12.92, 47.6),
    (13.05, 47.48),
    (12.72, 47.67),
    (12.2, 47.6),
    (11.62, 47.58),
    (11.22, 47.4),
    (10.45, 47.55),
    (10.18, 47.27),
    (9.95, 47.55),
    (9.55, 47.54),
    (8.95, 47.7),
    (8.5, 47.78),
    (7.62, 47.57),
    (7.55, 48.1),
    (8.0, 48.75),
    (8.22, 48.98),
    (7.1, 49.14),
    (6.37, 49.47),
    (6.12, 50.13),
    (6.02, 50.75),
    (5.95, 51.8),
];

/// The points north of the Ruhr that close the outline (Dutch border and the North Sea coast).
const DE_OUTLINE_NORTH: [(f64, f64); 9] = [
    (6.72, 51.9),
    (6.98, 52.23),
    (7.06, 52.65),
    (7.2, 53.25),
    (7.05, 53.6),
    (7.95, 53.72),
    (8.58, 53.88),
    (8.9, 54.3),
    (8.6, 54.55),
];

/// Cities a site's `location` may name, (name, longitude, latitude).
const PLACES: [(&str, f64, f64); 16] = [
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
];

/// One site as the map shows it.
pub struct MapSite {
    pub id: String,
    pub jurisdiction: String,
    pub location: String,
    pub state: String,
    pub replicas: String,
}

/// Where `location` is, if it names a city of [`PLACES`].
fn place(location: &str) -> Option<(f64, f64)> {
    let l = location.to_lowercase();
    PLACES
        .iter()
        .find(|(name, _, _)| l.contains(name))
        .map(|(_, lon, lat)| (*lon, *lat))
}

const SCALE: f64 = 60.0;
/// Room right of the outline for the labels of eastern sites.
const LABELS: f64 = 320.0;
const WEST: f64 = 5.6;
const NORTH: f64 = 55.2;

/// Equirectangular, squeezed by cos(51°) east-west: (x, y) in the SVG.
fn project(lon: f64, lat: f64) -> (f64, f64) {
    let k = 51.0_f64.to_radians().cos();
    (
        (lon - WEST) * k * SCALE + 10.0,
        (NORTH - lat) * SCALE + 10.0,
    )
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The map of the DE sites, and the sites it could not place (another jurisdiction, or a
/// location it does not know).
pub fn residency_map(sites: &[MapSite]) -> (String, Vec<String>) {
    let (w, h) = project(15.3, 47.1);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="map" role="img" width="{:.0}" height="{:.0}" viewBox="0 0 {:.0} {:.0}"><title>DE</title><polygon fill="#eef2f7" stroke="#5b6574" stroke-width="1.2" points=""##,
        w + LABELS,
        h + 10.0,
        w + LABELS,
        h + 10.0
    );
    for (lon, lat) in DE_OUTLINE.iter().chain(DE_OUTLINE_NORTH.iter()) {
        let (x, y) = project(*lon, *lat);
        let _ = write!(svg, "{x:.1},{y:.1} ");
    }
    svg.push_str(r#""/>"#);
    let mut unplaced = Vec::new();
    for s in sites {
        let at = (s.jurisdiction == "DE")
            .then(|| place(&s.location))
            .flatten();
        let Some((lon, lat)) = at else {
            unplaced.push(format!(
                "{} ({}, {}): {}",
                s.id, s.jurisdiction, s.location, s.state
            ));
            continue;
        };
        let (x, y) = project(lon, lat);
        let colour = if s.state == "active" {
            "#0b5cad"
        } else {
            "#a4161a"
        };
        let _ = write!(
            svg,
            r##"<circle class="site" data-site="{id}" cx="{x:.1}" cy="{y:.1}" r="6" fill="{colour}"/><text x="{:.1}" y="{:.1}" font-size="13" fill="#1d2430">{id} · {loc} · {state} · {replicas}</text>"##,
            x + 9.0,
            y + 4.0,
            id = esc(&s.id),
            loc = esc(&s.location),
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

    #[test]
    fn sites_are_placed_where_their_cities_are_and_the_rest_listed() {
        let (svg, unplaced) = residency_map(&[
            site("de-fra", "DE", "Frankfurt am Main"),
            site("de-mgd", "DE", "Magdeburg"),
            site("at-vie", "AT", "Wien"),
            site("de-x", "DE", "<somewhere>"),
        ]);
        let fra = circle(&svg, "de-fra");
        let mgd = circle(&svg, "de-mgd");
        // Magdeburg is north-east of Frankfurt.
        assert!(mgd.0 > fra.0 && mgd.1 < fra.1, "{fra:?} {mgd:?}");
        assert_eq!(unplaced.len(), 2);
        assert!(unplaced[1].contains("<somewhere>"));
        assert!(!svg.contains("<somewhere>"));
    }

    #[test]
    fn the_outline_lies_inside_the_drawing() {
        let (w, h) = project(15.3, 47.1);
        for (lon, lat) in DE_OUTLINE.iter().chain(DE_OUTLINE_NORTH.iter()) {
            let (x, y) = project(*lon, *lat);
            assert!(x > 0.0 && x < w && y > 0.0 && y < h, "{lon},{lat}");
        }
    }
}
