//! The tenant admin's view of its own log entries: filtered by time, bucket, principal and
//! event type, one page at a time. Each page asks the admin API for one bounded batch of the
//! tenant's entries from an index on (`/v1/log/entries?tenant=…&from=…&limit=…`: [`PAGE`]
//! entries, or [`FILTER_BATCH`] when a filter picks among them) and shows the first [`PAGE`]
//! that match, with a link that goes on from there (the API's `next` cursor): the log is never
//! loaded whole.
//!
//! It sees the entries the admin API answers the tenant's admin, nothing more.

use crate::pages::{Console, utc_ms};
use serde_json::Value;
use std::collections::HashMap;

/// Matching entries shown per page.
pub const PAGE: usize = 50;

/// Index rows one `/v1/log/entries` call reads when a filter is set (matches are picked from
/// them here); without one, a page asks for exactly [`PAGE`] entries.
const FILTER_BATCH: u64 = 1_000;

/// Where the next page starts, if there is one: after the last row shown when more matches
/// follow in this batch; else where the admin API says its next page starts (absent at the end
/// of the log). The batch's length says nothing: rows hidden from this reader are left out of
/// it, so a batch can be short and still be followed by more.
fn next_from(more_matches: bool, last_shown: Option<u64>, api_next: Option<u64>) -> Option<u64> {
    if more_matches {
        last_shown.map(|i| i + 1)
    } else {
        api_next
    }
}

/// The event types the filter offers (any other can be typed).
pub const ENTRY_TYPES: [&str; 22] = [
    "grant_requested",
    "grant_approval",
    "grant_approved",
    "grant_denied",
    "grant_revoked",
    "grant_credentials",
    "grant_access",
    "grant_access_denied",
    "key_release",
    "object_keys_released",
    "access_key_created",
    "access_key_revoked",
    "policy_changed",
    "tenant_added",
    "principal_created",
    "principal_revoked",
    "disclosure_requested",
    "disclosure_approved",
    "disclosure_denied",
    "shred_approval",
    "signing_key_enrolled",
    "integrity_alarm",
];

/// Fields left out of an entry's details: shown elsewhere, or for verifiers, not readers.
const NOT_DETAILS: [&str; 9] = [
    "type",
    "at_ms",
    "salt",
    "tenant",
    "by",
    "principal",
    "bucket",
    "statement",
    "signature",
];

/// What the filter form holds (as typed; empty: any).
#[derive(Default)]
pub struct LogFilter {
    pub from: u64,
    pub kind: String,
    pub bucket: String,
    pub principal: String,
    pub since: String,
    pub until: String,
}

/// One entry as a row.
pub struct LogRow {
    pub index: u64,
    pub time: String,
    pub kind: String,
    pub principal: String,
    pub bucket: String,
    pub details: String,
}

pub struct LogView {
    pub filter: LogFilter,
    pub rows: Vec<LogRow>,
    pub error: Option<String>,
    /// The next page's link, if there may be more.
    pub next: Option<String>,
    /// The first page's link (same filter), when this is not the first page.
    pub first: Option<String>,
}

/// `%XX` and `+` decoded (a query value as a form sends it).
pub fn decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| Some(hex(*bytes.get(i + 1)?)? * 16 + hex(*bytes.get(i + 2)?)?))
            .flatten();
        match (bytes[i], escaped) {
            (_, Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b'+', None) => out.push(b' '),
            (b, None) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl LogFilter {
    pub fn from_query(q: &HashMap<String, String>) -> Self {
        let get = |k: &str| {
            q.get(k)
                .map(|v| decode(v).trim().to_owned())
                .unwrap_or_default()
        };
        Self {
            from: get("from").parse().unwrap_or(0),
            kind: get("type"),
            bucket: get("bucket"),
            principal: get("principal"),
            since: get("since"),
            until: get("until"),
        }
    }

    /// The query string of this filter from index `from`.
    fn link(&self, page: &str, from: u64) -> String {
        let mut q = format!("{page}?from={from}");
        for (k, v) in [
            ("type", &self.kind),
            ("bucket", &self.bucket),
            ("principal", &self.principal),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if !v.is_empty() {
                q.push_str(&format!("&{k}={}", crate::pages::encode(v)));
            }
        }
        q
    }
}

/// `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM` (UTC) as milliseconds since 1970; `end_of_day` takes a
/// bare date as its last millisecond.
pub fn parse_time(s: &str, end_of_day: bool) -> Option<i64> {
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut parts = date.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = match time {
        Some(t) => {
            let (h, min) = t.split_once(':')?;
            let h: i64 = h.parse().ok()?;
            let min: i64 = min.get(..2).unwrap_or(min).parse().ok()?;
            if !(0..24).contains(&h) || !(0..60).contains(&min) {
                return None;
            }
            h * 3600 + min * 60 + if end_of_day { 59 } else { 0 }
        }
        None if end_of_day => 86_399,
        None => 0,
    };
    Some((days * 86_400 + secs) * 1000 + if end_of_day { 999 } else { 0 })
}

fn field(e: &Value, k: &str) -> String {
    match e.get(k) {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

fn details(e: &Value) -> String {
    let Some(o) = e.as_object() else {
        return String::new();
    };
    o.iter()
        .filter(|(k, _)| !NOT_DETAILS.contains(&k.as_str()))
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) if k == "public_key" => s.chars().take(16).collect(),
                Value::String(s) => s.clone(),
                Value::Number(n) if k.ends_with("_ms") && k != "duration_ms" => {
                    n.as_i64().map_or_else(|| n.to_string(), utc_ms)
                }
                other => other.to_string(),
            };
            format!("{k}={text}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The page of the tenant's entries that `filter` selects.
pub async fn log_view(
    console: &Console,
    bearer: &str,
    tenant: &str,
    page: &str,
    filter: LogFilter,
) -> LogView {
    let mut view = LogView {
        rows: Vec::new(),
        error: None,
        next: None,
        first: (filter.from > 0).then(|| filter.link(page, 0)),
        filter,
    };
    let f = &view.filter;
    let since = match f.since.as_str() {
        "" => None,
        s => match parse_time(s, false) {
            Some(t) => Some(t),
            None => {
                view.error = Some(format!(
                    "since: {s:?} is not a date (YYYY-MM-DD[THH:MM], UTC)"
                ));
                return view;
            }
        },
    };
    let until = match f.until.as_str() {
        "" => None,
        s => match parse_time(s, true) {
            Some(t) => Some(t),
            None => {
                view.error = Some(format!(
                    "until: {s:?} is not a date (YYYY-MM-DD[THH:MM], UTC)"
                ));
                return view;
            }
        },
    };
    let filtered = !(f.kind.is_empty()
        && f.bucket.is_empty()
        && f.principal.is_empty()
        && since.is_none()
        && until.is_none());
    let path = format!(
        "/v1/log/entries?tenant={}&from={}&limit={}",
        crate::pages::encode(tenant),
        f.from,
        if filtered { FILTER_BATCH } else { PAGE as u64 }
    );
    let answer = match console.get_json(Some(bearer), &path).await {
        Ok(v) => v,
        Err(e) => {
            view.error = Some(e);
            return view;
        }
    };
    let entries = answer
        .get("entries")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    // A match beyond a full page: then, and only then, is there a next page in this batch.
    let mut more_matches = false;
    for item in entries {
        let Some(index) = item.get("index").and_then(Value::as_u64) else {
            continue;
        };
        let Ok(e) =
            serde_json::from_str::<Value>(item.get("entry").and_then(Value::as_str).unwrap_or(""))
        else {
            continue;
        };
        let at = e.get("at_ms").and_then(Value::as_i64).unwrap_or(0);
        let kind = field(&e, "type");
        let principal = {
            let by = field(&e, "by");
            if by.is_empty() {
                field(&e, "principal")
            } else {
                by
            }
        };
        let bucket = field(&e, "bucket");
        let keep = (f.kind.is_empty() || kind == f.kind)
            && (f.bucket.is_empty() || bucket == f.bucket)
            && (f.principal.is_empty() || principal == f.principal)
            && since.is_none_or(|t| at >= t)
            && until.is_none_or(|t| at <= t);
        if !keep {
            continue;
        }
        if view.rows.len() == PAGE {
            more_matches = true;
            break;
        }
        view.rows.push(LogRow {
            index,
            time: utc_ms(at),
            kind,
            principal,
            bucket,
            details: details(&e),
        });
    }
    view.next = next_from(
        more_matches,
        view.rows.last().map(|r| r.index),
        answer.get("next").and_then(Value::as_u64),
    )
    .map(|from| view.filter.link(page, from));
    view
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_as_utc_and_bad_ones_do_not() {
        assert_eq!(parse_time("1970-01-01", false), Some(0));
        assert_eq!(parse_time("1970-01-01", true), Some(86_399_999));
        assert_eq!(parse_time("2026-12-07", false), Some(1_796_601_600_000));
        assert_eq!(parse_time("2000-02-29T12:30", false), Some(951_827_400_000));
        for bad in ["", "2026-13-01", "yesterday", "2026-12-07T25:00", "2026-12"] {
            assert_eq!(parse_time(bad, false), None, "{bad}");
        }
    }

    #[test]
    fn query_values_are_decoded_and_links_keep_the_filter() {
        assert_eq!(decode("a%20b+c%3A"), "a b c:");
        assert_eq!(decode("100%"), "100%");
        let q: HashMap<String, String> = [
            ("type", "grant_access"),
            ("bucket", "photos"),
            ("since", "2026-12-07T10%3A00"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let f = LogFilter::from_query(&q);
        assert_eq!(f.since, "2026-12-07T10:00");
        assert_eq!(
            f.link("/console/tenant", 7),
            "/console/tenant?from=7&type=grant_access&bucket=photos&since=2026-12-07T10%3A00"
        );
    }

    #[test]
    fn the_next_page_exists_only_while_something_may_follow() {
        // More matches after a full page: on from the last row shown.
        assert_eq!(next_from(true, Some(70), None), Some(71));
        assert_eq!(next_from(true, Some(70), Some(1_000)), Some(71));
        // The batch had no more matches but the API says more follow: on from where it says,
        // however few rows the batch held (hidden ones are left out of it).
        assert_eq!(next_from(false, Some(70), Some(1_000)), Some(1_000));
        assert_eq!(next_from(false, None, Some(9_999)), Some(9_999));
        // The end of the log, nothing more matched: the last page.
        assert_eq!(next_from(false, Some(70), None), None);
        assert_eq!(next_from(false, None, None), None);
    }

    #[test]
    fn details_leave_out_signatures_and_shorten_keys() {
        let e = serde_json::json!({"type": "signing_key_enrolled", "principal": "o1",
            "public_key": "ab".repeat(32), "statement": "{}", "signature": "x", "expires_ms": 0});
        assert_eq!(
            details(&e),
            "expires_ms=1970-01-01 00:00:00 UTC; public_key=abababababababab"
        );
    }
}
