//! The operator's charts, drawn on the server as SVG: from the Prometheus text the admin API's
//! `/metrics` answers the operator, S3 requests by operation (with the rate since the
//! previous look at the page) and the distribution of S3 request latency; from the history
//! `/v1/metrics/history` answers, request rates, latency and error rates over the last hour.
//!
//! It reads metric names, the operation and status labels and site ids only, which hold no
//! tenant, bucket or object names; the SVG holds numbers and those labels, escaped.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

/// What the charts are drawn from.
#[derive(Debug, Default, PartialEq)]
pub struct S3Metrics {
    /// Requests answered, by operation (all status classes).
    pub requests: BTreeMap<String, f64>,
    /// Requests by status class (`2xx`, `4xx`, …).
    pub statuses: BTreeMap<String, f64>,
    /// Cumulative latency buckets summed over operations: upper bound (s) → count.
    pub latency: Vec<(f64, f64)>,
}

/// A sample's labels: (name, value).
type Labels<'a> = Vec<(&'a str, &'a str)>;

/// `name{labels} value` of one sample line.
pub(crate) fn sample(line: &str) -> Option<(&str, Labels<'_>, f64)> {
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match head.split_once('{') {
        Some((n, rest)) => (n, rest.strip_suffix('}')?),
        None => (head, ""),
    };
    let labels = labels
        .split(',')
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            Some((k, v.trim_matches('"')))
        })
        .collect();
    Some((name, labels, value))
}

/// The S3 metrics of a Prometheus text exposition.
pub fn parse(text: &str) -> S3Metrics {
    let mut m = S3Metrics::default();
    let mut latency: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, labels, value)) = sample(line) else {
            continue;
        };
        let label = |k: &str| labels.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        match name {
            "obhut_s3_requests_total" => {
                if let Some(op) = label("op") {
                    *m.requests.entry(op.to_owned()).or_default() += value;
                }
                if let Some(st) = label("status") {
                    *m.statuses.entry(st.to_owned()).or_default() += value;
                }
            }
            "obhut_s3_request_duration_seconds_bucket" => {
                let le = match label("le") {
                    Some("+Inf") => f64::INFINITY,
                    Some(v) => v.parse().unwrap_or(f64::NAN),
                    None => f64::NAN,
                };
                if le.is_nan() {
                    continue;
                }
                latency.entry(le.to_bits()).or_insert((le, 0.0)).1 += value;
            }
            _ => {}
        }
    }
    let mut buckets: Vec<(f64, f64)> = latency.into_values().collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    m.latency = buckets;
    m
}

/// The previous look's totals by operation, for rates.
#[derive(Default)]
pub struct LastLook(Mutex<Option<(Instant, BTreeMap<String, f64>)>>);

impl LastLook {
    /// Requests per second by operation since the previous call (none on the first).
    pub fn rates(&self, now: &BTreeMap<String, f64>) -> Option<BTreeMap<String, f64>> {
        let mut last = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let rates = last.as_ref().and_then(|(at, before)| {
            let secs = at.elapsed().as_secs_f64();
            (secs >= 0.5).then(|| {
                now.iter()
                    .map(|(op, n)| {
                        let prev = before.get(op).copied().unwrap_or(0.0);
                        (op.clone(), ((n - prev).max(0.0)) / secs)
                    })
                    .collect()
            })
        });
        if last
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed().as_secs_f64() >= 0.5)
        {
            *last = Some((Instant::now(), now.clone()));
        }
        rates
    }
}

pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn number(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.1}M", n / 1e6)
    } else if n >= 1e4 {
        format!("{:.1}k", n / 1e3)
    } else if n.fract() == 0.0 {
        format!("{n:.0}")
    } else {
        format!("{n:.2}")
    }
}

/// A horizontal bar chart: one bar per `(label, value, note)`.
pub fn bars(title: &str, rows: &[(String, f64, String)]) -> String {
    let row_h = 22.0;
    let width = 640.0;
    let label_w = 190.0;
    let bar_w = 330.0;
    let height = row_h * rows.len().max(1) as f64 + 10.0;
    let max = rows.iter().map(|r| r.1).fold(0.0_f64, f64::max);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}"><title>{}</title>"##,
        esc(title)
    );
    for (i, (label, value, note)) in rows.iter().enumerate() {
        let y = 5.0 + i as f64 * row_h;
        let w = if max > 0.0 { value / max * bar_w } else { 0.0 };
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="end" font-size="12" fill="#1d2430">{}</text><rect x="{}" y="{}" width="{w:.1}" height="{}" fill="#0b5cad"/><text x="{}" y="{}" font-size="12" fill="#5b6574">{} {}</text>"##,
            label_w - 6.0,
            y + 15.0,
            esc(label),
            label_w,
            y + 3.0,
            row_h - 6.0,
            label_w + w + 6.0,
            y + 15.0,
            number(*value),
            esc(note),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Requests by operation (only operations that were asked), with the rate since the last look.
pub fn requests_chart(m: &S3Metrics, rates: Option<&BTreeMap<String, f64>>) -> String {
    let rows: Vec<(String, f64, String)> = m
        .requests
        .iter()
        .filter(|(_, n)| **n > 0.0)
        .map(|(op, n)| {
            let note = rates
                .and_then(|r| r.get(op))
                .map(|r| format!("({r:.2}/s)"))
                .unwrap_or_default();
            (op.clone(), *n, note)
        })
        .collect();
    bars("S3 requests by operation", &rows)
}

/// Requests per latency band (from the cumulative buckets).
pub fn latency_chart(m: &S3Metrics) -> String {
    let mut rows = Vec::new();
    let mut prev_le = 0.0;
    let mut prev_count = 0.0;
    for (le, count) in &m.latency {
        let label = if le.is_infinite() {
            format!("> {}", band(prev_le))
        } else {
            format!("{} – {}", band(prev_le), band(*le))
        };
        rows.push((label, (count - prev_count).max(0.0), String::new()));
        prev_le = *le;
        prev_count = *count;
    }
    // Bands nobody fell into at either end say nothing.
    while rows.last().is_some_and(|r| r.1 == 0.0) {
        rows.pop();
    }
    let first = rows.iter().position(|r| r.1 > 0.0).unwrap_or(rows.len());
    bars("S3 request latency", &rows[first..])
}

/// One line of a chart over time: (time in ms since 1970, value; none for a gap).
pub struct Series {
    pub name: String,
    pub colour: &'static str,
    pub points: Vec<(u64, Option<f64>)>,
}

/// Colours of a chart's lines, in turn.
pub const COLOURS: [&str; 6] = [
    "#0b5cad", "#c0392b", "#1b6e2a", "#8e44ad", "#d35400", "#5b6574",
];

/// A line chart of `series` over the `span_ms` before the newest point, values in `unit`.
#[allow(clippy::cast_precision_loss)]
pub fn line_chart(title: &str, unit: &str, span_ms: u64, series: &[Series]) -> String {
    let (width, height) = (640.0, 200.0);
    let (left, right, top, bottom) = (64.0, 12.0, 26.0, 24.0);
    let (pw, ph) = (width - left - right, height - top - bottom);
    let end = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .max()
        .unwrap_or(0);
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().filter_map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    let top_value = if max > 0.0 { nice(max * 1.1) } else { 1.0 };
    let x = |at: u64| left + pw - end.saturating_sub(at) as f64 / span_ms.max(1) as f64 * pw;
    let y = |v: f64| top + ph - (v / top_value).clamp(0.0, 1.0) * ph;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="chart history" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}"><title>{}</title>"##,
        esc(title)
    );
    for frac in [0.0, 0.5, 1.0] {
        let v = top_value * frac;
        let _ = write!(
            svg,
            r##"<line x1="{left}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#d7dce3" stroke-width="1"/><text x="{:.1}" y="{:.1}" text-anchor="end" font-size="11" fill="#5b6574">{} {}</text>"##,
            left + pw,
            left - 6.0,
            y(v) + 4.0,
            number(v),
            esc(unit),
            y = y(v),
        );
    }
    let minutes = span_ms / 60_000;
    for (frac, label) in [
        (0.0, format!("−{minutes} min")),
        (0.5, format!("−{} min", minutes / 2)),
        (1.0, "now".to_owned()),
    ] {
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="{}" font-size="11" fill="#5b6574">{label}</text>"##,
            left + frac * pw,
            height - 6.0,
            if frac == 0.0 {
                "start"
            } else if frac == 1.0 {
                "end"
            } else {
                "middle"
            },
        );
    }
    let mut legend_x = left;
    for s in series {
        let _ = write!(
            svg,
            r##"<rect x="{legend_x:.1}" y="8" width="10" height="10" fill="{c}"/><text x="{:.1}" y="17" font-size="12" fill="#1d2430">{}</text>"##,
            legend_x + 14.0,
            esc(&s.name),
            c = s.colour,
        );
        legend_x += 24.0 + 7.0 * s.name.chars().count() as f64;
        // One polyline per run of points without a gap.
        let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for (at, v) in &s.points {
            match v {
                Some(v) if v.is_finite() && end.saturating_sub(*at) <= span_ms => {
                    if let Some(run) = runs.last_mut() {
                        run.push((x(*at), y(*v)));
                    }
                }
                _ => runs.push(Vec::new()),
            }
        }
        for run in runs.iter().filter(|r| !r.is_empty()) {
            let pts: Vec<String> = run.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = write!(
                svg,
                r#"<polyline class="series" data-series="{}" fill="none" stroke="{}" stroke-width="1.6" points="{}"/>"#,
                esc(&s.name),
                s.colour,
                pts.join(" ")
            );
            if let [(px, py)] = run.as_slice() {
                let _ = write!(
                    svg,
                    r#"<circle cx="{px:.1}" cy="{py:.1}" r="2" fill="{}"/>"#,
                    s.colour
                );
            }
        }
    }
    svg.push_str("</svg>");
    svg
}

/// A round number at least `v` (1, 2 or 5 times a power of ten).
fn nice(v: f64) -> f64 {
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|n| *n >= v)
        .unwrap_or(10.0 * p)
}

/// What the history charts show, from a `/v1/metrics/history` answer: (title index, chart).
pub struct HistoryCharts {
    pub requests: String,
    pub latency: String,
    pub errors: String,
    pub sites: String,
    pub points: usize,
}

/// The four charts over time of a `/v1/metrics/history` answer.
pub fn history_charts(v: &serde_json::Value) -> HistoryCharts {
    use serde_json::Value;
    let points: &[Value] = v
        .get("points")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let interval = v
        .get("interval_ms")
        .and_then(Value::as_u64)
        .unwrap_or(10_000);
    let capacity = v.get("capacity").and_then(Value::as_u64).unwrap_or(361);
    // The time the history covers, in steps of 10 minutes (at least one), up to all it keeps:
    // a process that started a minute ago is not drawn as a dot at the end of an hour.
    let kept = interval
        .saturating_mul(capacity.saturating_sub(1))
        .max(60_000);
    let times = points
        .iter()
        .filter_map(|p| p.get("at_ms").and_then(Value::as_u64));
    let covered = times
        .clone()
        .max()
        .unwrap_or(0)
        .saturating_sub(times.min().unwrap_or(0));
    let span = (covered.div_ceil(600_000).max(1) * 600_000).min(kept);
    let series = |name: &str, colour: &'static str, f: &dyn Fn(&Value) -> Option<f64>| Series {
        name: name.to_owned(),
        colour,
        points: points
            .iter()
            .filter_map(|p| Some((p.get("at_ms")?.as_u64()?, f(p))))
            .collect(),
    };
    let num = |k: &'static str| move |p: &Value| p.get(k).and_then(Value::as_f64);
    let requests = line_chart(
        "S3 requests per second",
        "/s",
        span,
        &[series("requests/s", COLOURS[0], &num("requests_per_s"))],
    );
    let latency = line_chart(
        "S3 latency",
        "ms",
        span,
        &[
            series("p50", COLOURS[0], &num("p50_ms")),
            series("p99", COLOURS[1], &num("p99_ms")),
        ],
    );
    let errors = line_chart(
        "S3 5xx share",
        "%",
        span,
        &[series("5xx %", COLOURS[1], &|p| {
            p.get("error_ratio")
                .and_then(Value::as_f64)
                .map(|r| r * 100.0)
        })],
    );
    let mut sites: Vec<String> = points
        .iter()
        .filter_map(|p| p.get("site_errors_per_s")?.as_object())
        .flat_map(|o| o.keys().cloned())
        .collect();
    sites.sort();
    sites.dedup();
    let site_series: Vec<Series> = sites
        .iter()
        .enumerate()
        .map(|(i, site)| {
            series(site, COLOURS[i % COLOURS.len()], &|p| {
                p.get("site_errors_per_s")?.get(site)?.as_f64()
            })
        })
        .collect();
    let sites = line_chart(
        "Failed site operations per second",
        "/s",
        span,
        &site_series,
    );
    HistoryCharts {
        requests,
        latency,
        errors,
        sites,
        points: points.len(),
    }
}

fn band(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{:.1} ms", seconds * 1000.0)
    } else {
        format!("{seconds:.1} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP obhut_s3_requests S3 requests
# TYPE obhut_s3_requests_total counter
obhut_s3_requests_total{op="GetObject",status="2xx"} 7
obhut_s3_requests_total{op="GetObject",status="4xx"} 1
obhut_s3_requests_total{op="PutObject",status="2xx"} 3
obhut_s3_request_duration_seconds_bucket{le="0.001",op="GetObject"} 2
obhut_s3_request_duration_seconds_bucket{le="0.002",op="GetObject"} 8
obhut_s3_request_duration_seconds_bucket{le="+Inf",op="GetObject"} 8
obhut_s3_request_duration_seconds_bucket{le="0.001",op="PutObject"} 0
obhut_s3_request_duration_seconds_bucket{le="0.002",op="PutObject"} 1
obhut_s3_request_duration_seconds_bucket{le="+Inf",op="PutObject"} 3
"#;

    #[test]
    fn the_exposition_is_summed_by_operation_status_and_latency_band() {
        let m = parse(TEXT);
        assert_eq!(m.requests["GetObject"], 8.0);
        assert_eq!(m.requests["PutObject"], 3.0);
        assert_eq!(m.statuses["2xx"], 10.0);
        assert_eq!(
            m.latency,
            [(0.001, 2.0), (0.002, 9.0), (f64::INFINITY, 11.0)]
        );
        let svg = latency_chart(&m);
        assert!(
            svg.contains("0.0 ms – 1.0 ms") && svg.contains("&gt; 2.0 ms"),
            "{svg}"
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }

    #[test]
    fn rates_come_from_the_previous_look_and_labels_are_escaped() {
        let look = LastLook::default();
        let mut now = BTreeMap::new();
        now.insert("GetObject".to_owned(), 10.0);
        assert!(look.rates(&now).is_none());
        *look.0.lock().unwrap() = Some((
            Instant::now() - std::time::Duration::from_secs(2),
            now.clone(),
        ));
        now.insert("GetObject".to_owned(), 14.0);
        let r = look.rates(&now).unwrap();
        assert!((r["GetObject"] - 2.0).abs() < 0.1, "{r:?}");
        let svg = bars("t", &[("<op>".into(), 1.0, String::new())]);
        assert!(svg.contains("&lt;op&gt;") && !svg.contains("<op>"));
    }

    fn polylines(svg: &str) -> Vec<usize> {
        svg.split("points=\"")
            .skip(1)
            .map(|p| p[..p.find('"').unwrap()].split(' ').count())
            .collect()
    }

    #[test]
    fn history_charts_draw_one_point_per_interval_with_gaps_left_open() {
        let v = serde_json::json!({"interval_ms": 10_000, "capacity": 361, "points": [
            {"at_ms": 10_000, "requests_per_s": 2.0, "error_ratio": 0.0, "p50_ms": 1.5, "p99_ms": 9.0,
             "site_errors_per_s": {"de-fra": 0.0, "<x>": 0.1}, "site_ops_per_s": {}},
            {"at_ms": 20_000, "requests_per_s": 0.0, "error_ratio": null, "p50_ms": null, "p99_ms": null,
             "site_errors_per_s": {"de-fra": 0.0, "<x>": 0.0}, "site_ops_per_s": {}},
            {"at_ms": 30_000, "requests_per_s": 4.0, "error_ratio": 0.5, "p50_ms": 2.0, "p99_ms": 20.0,
             "site_errors_per_s": {"de-fra": 1.0, "<x>": 0.0}, "site_ops_per_s": {}}
        ]});
        let c = history_charts(&v);
        assert_eq!(c.points, 3);
        assert_eq!(polylines(&c.requests), [3]);
        // No requests in the second interval: no latency there, two runs of one point.
        assert_eq!(polylines(&c.latency), [1, 1, 1, 1]);
        assert_eq!(polylines(&c.errors), [1, 1]);
        assert_eq!(polylines(&c.sites), [3, 3]);
        assert!(c.sites.contains("&lt;x&gt;") && !c.sites.contains("<x>"));
        // 20 s of history: drawn over the last 10 minutes.
        assert!(c.requests.contains("−10 min") && c.requests.contains(">now<"));
        // The newest point is at the right edge, the highest value below the top.
        let xs: Vec<f64> = c
            .requests
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .split(' ')
            .map(|p| p.split(',').next().unwrap().parse().unwrap())
            .collect();
        assert!((xs[2] - 628.0).abs() < 0.2 && xs[0] < xs[1], "{xs:?}");
        // An hour and more of history: the hour kept.
        let long: Vec<serde_json::Value> = (0..400_u64)
            .map(|i| serde_json::json!({"at_ms": i * 10_000, "requests_per_s": 1.0}))
            .collect();
        let v = serde_json::json!({"interval_ms": 10_000, "capacity": 361, "points": long});
        assert!(history_charts(&v).requests.contains("−60 min"));
        assert_eq!(nice(4.4), 5.0);
        assert_eq!(nice(0.011), 0.02);
    }
}
