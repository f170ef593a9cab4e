//! `obhut bucket rollback`: a versioned bucket made again what it was at a point in time, the
//! step that recovers a tenant's data after a client (a backup key in a ransomware's hands)
//! deleted or overwrote its objects.
//!
//! It is a client of the S3 endpoint, signed with the caller's own S3 key, never of the admin
//! API: it reads object names, which the admin API (run by the provider) must never see, and its
//! copies need object keys opened, which the trustee does only for a request a tenant's key
//! signed. It lists the bucket's versions a page at a time and, for each key whose current state
//! differs from its state at that time, copies the version that was current then onto the key
//! (a new version: the history stays) or, where the key did not exist then, adds a delete marker.
//! It never deletes a version, and does nothing the key could not do with any other S3 client.
//!
//! It holds the key's secret in memory only and never prints it, nor object names, nor a
//! request's URL (presigned: it holds the key id, a live signature and the object's name), which
//! every transport error is stripped of before it is shown.
//!
//! It never acts on a key the request URL would not name as it is: a key with a `.` or `..`
//! path segment (`x/../victim`, `../other-bucket/obj`) is resolved away by URL parsing, so its
//! copy or delete marker would land on another object or bucket. Such keys are left as they are,
//! counted, and make the run fail once every other key is done.

use crate::AdminArgs;
use crate::cli::shared::{http_client, runtime};
use anyhow::{Context, Result, anyhow, bail};
use jiff::Timestamp;
use rusty_s3::{Bucket, Credentials, Method, UrlStyle};
use std::collections::BTreeMap;
use url::Url;

/// What `obhut bucket rollback` is asked.
#[derive(clap::Args)]
pub struct RollbackArgs {
    /// The bucket, of the tenant whose S3 key is in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
    /// (and AWS_SESSION_TOKEN, if any).
    pub bucket: String,
    /// The point in time, RFC 3339: `2026-12-07T21:30:00Z`, `2026-12-07T22:30:00+01:00`.
    #[arg(long, value_name = "TIME")]
    pub to: String,
    /// Only keys starting with this prefix.
    #[arg(long, value_name = "P")]
    pub prefix: Option<String>,
    /// Count what would change, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The S3 endpoint.
    #[arg(
        long,
        env = "AWS_ENDPOINT_URL",
        default_value = "http://127.0.0.1:9000"
    )]
    pub endpoint_url: String,
    /// The S3 endpoint's region.
    #[arg(long, env = "AWS_REGION", default_value = "de-1")]
    pub region: String,
    /// Versions listed per request (at most 1000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub page_size: u16,
}

/// One entry of a version listing: a version or a delete marker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Entry {
    key: String,
    version_id: String,
    latest: bool,
    marker: bool,
    modified_ms: i64,
    etag: String,
    size: u64,
}

/// One page of `ListObjectVersions`: its entries and, if it was truncated, where the next starts.
#[derive(Debug, Default)]
struct Page {
    entries: Vec<Entry>,
    next: Option<(String, String)>,
}

/// What is known of one key: its current entry and the entry that was current at the time.
#[derive(Debug, Default)]
struct KeyState {
    current: Option<Entry>,
    then: Option<Entry>,
}

impl KeyState {
    /// Takes in one entry of the key (in any order: listings need not interleave versions and
    /// delete markers as they were written).
    fn add(&mut self, e: Entry, to_ms: i64) {
        if e.latest {
            self.current = Some(e.clone());
        }
        if e.modified_ms <= to_ms {
            let newer = self.then.as_ref().is_none_or(|t| {
                e.modified_ms > t.modified_ms || (e.modified_ms == t.modified_ms && e.latest)
            });
            if newer {
                self.then = Some(e);
            }
        }
    }

    /// What the key needs: nothing, its version of then copied onto it, or a delete marker.
    fn step(&self) -> Step {
        let then = self.then.as_ref().filter(|e| !e.marker);
        let now = self.current.as_ref().filter(|e| !e.marker);
        match (then, now) {
            (None, None) => Step::Unchanged,
            (None, Some(_)) => Step::Hide,
            // The same version, or a copy of it made by an earlier run (same content). Metadata
            // and tags are not compared: the listing does not show them (docs/s3-compatibility.md).
            (Some(t), Some(c))
                if c.version_id == t.version_id || (c.etag == t.etag && c.size == t.size) =>
            {
                Step::Unchanged
            }
            (Some(t), _) => Step::Restore(t.version_id.clone()),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Step {
    Unchanged,
    Restore(String),
    Hide,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    restored: u64,
    hidden: u64,
    unchanged: u64,
    /// Keys that needed a step but whose names no request URL can carry unchanged.
    refused: u64,
}

/// The S3 endpoint, as the caller's key.
struct S3 {
    http: reqwest::Client,
    bucket: Bucket,
    credentials: Credentials,
}

/// How long each signed request stays valid (it is sent at once).
const SIGNATURE_SECONDS: u64 = 300;

impl S3 {
    /// A presigned URL for the request. `query` and `headers` (lowercase names) must each be
    /// sorted by name: the signer merges them with its own, which are.
    fn sign(
        &self,
        method: Method,
        url: Url,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Url {
        rusty_s3::signing::sign(
            &Timestamp::now(),
            method,
            url,
            self.credentials.key(),
            self.credentials.secret(),
            self.credentials.token(),
            self.bucket.region(),
            SIGNATURE_SECONDS,
            query.iter().copied(),
            headers.iter().copied(),
        )
    }

    /// Sends a signed request; a refusal becomes one line naming S3's code and message.
    async fn send(
        &self,
        method: Method,
        url: Url,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        what: &str,
    ) -> Result<reqwest::Response> {
        let url = self.sign(method, url, query, headers);
        let m = match method {
            Method::Get => reqwest::Method::GET,
            Method::Put => reqwest::Method::PUT,
            Method::Delete => reqwest::Method::DELETE,
            _ => bail!("unexpected method"),
        };
        let mut req = self.http.request(m, url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.map_err(|e| {
            without_url(e).context(format!("cannot {what}: the S3 endpoint did not answer"))
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        bail!("cannot {what}: {}", s3_error(status, &body))
    }

    async fn text(&self, resp: reqwest::Response, what: &str) -> Result<String> {
        resp.text()
            .await
            .map_err(|e| without_url(e).context(format!("cannot {what}: the answer broke off")))
    }

    /// The bucket's versioning status (`Enabled`, `Suspended`, or none).
    async fn versioning(&self) -> Result<Option<String>> {
        let what = format!("read the versioning of bucket {}", self.bucket.name());
        let resp = self
            .send(
                Method::Get,
                self.bucket.base_url().clone(),
                &[("versioning", "")],
                &[],
                &what,
            )
            .await?;
        let body = self.text(resp, &what).await?;
        Ok(first_text(&body, "Status"))
    }

    async fn list(&self, prefix: &str, after: Option<&(String, String)>, max: u16) -> Result<Page> {
        let what = format!("list the versions of bucket {}", self.bucket.name());
        let max = max.to_string();
        let mut query = vec![("max-keys", max.as_str()), ("versions", "")];
        if !prefix.is_empty() {
            query.push(("prefix", prefix));
        }
        if let Some((k, v)) = after {
            query.push(("key-marker", k.as_str()));
            query.push(("version-id-marker", v.as_str()));
        }
        // The signer merges these with its own parameters, both sorted by name.
        query.sort_unstable();
        let resp = self
            .send(
                Method::Get,
                self.bucket.base_url().clone(),
                &query,
                &[],
                &what,
            )
            .await?;
        let body = self.text(resp, &what).await?;
        parse_versions(&body).with_context(|| format!("cannot {what}"))
    }

    /// The URL of object `key`, or `None` when the URL would name another object: a `.` or
    /// `..` segment is resolved away by URL parsing (`x/../victim` is `victim`,
    /// `../b2/obj` is object `obj` of bucket `b2`; an encoded `%2E` is resolved the same way,
    /// so encoding does not help). Every other character is percent-encoded and survives, which
    /// the check that the URL's path decodes to the key itself makes sure of.
    fn object_url(&self, key: &str) -> Option<Url> {
        if key.split('/').any(|s| s == "." || s == "..") {
            return None;
        }
        let url = self.bucket.object_url(key);
        let path = percent_decode(url.path())?;
        let base = percent_decode(self.bucket.base_url().path())?;
        (path.strip_prefix(base.as_str()) == Some(key)).then_some(url)
    }

    /// Copies `version` of `key` onto `key`: a new current version with the same content.
    async fn restore(&self, url: Url, key: &str, version: &str) -> Result<()> {
        let what = format!("restore a version in bucket {}", self.bucket.name());
        let source = format!(
            "/{}/{}?versionId={}",
            self.bucket.name(),
            encode_key(key),
            encode_key(version)
        );
        let resp = self
            .send(
                Method::Put,
                url,
                &[],
                // Metadata and tags are copied with the data (S3's default directives).
                &[("x-amz-copy-source", source.as_str())],
                &what,
            )
            .await?;
        let body = self.text(resp, &what).await?;
        copy_result(&body).map_err(|e| anyhow!("cannot {what}: {e}"))
    }

    /// Adds a delete marker to `key` (a delete without a version id; the versions stay).
    async fn hide(&self, url: Url) -> Result<()> {
        let what = format!("add a delete marker in bucket {}", self.bucket.name());
        let resp = self.send(Method::Delete, url, &[], &[], &what).await?;
        let marker = resp
            .headers()
            .get("x-amz-delete-marker")
            .and_then(|v| v.to_str().ok())
            == Some("true");
        if !marker {
            bail!("cannot {what}: the endpoint added no delete marker; stopping");
        }
        Ok(())
    }
}

/// Runs `obhut bucket rollback`.
pub fn run(admin: &AdminArgs, args: &RollbackArgs) -> Result<()> {
    let to: Timestamp = args.to.parse().map_err(|_| {
        anyhow!(
            "--to {:?} is not a time in RFC 3339 (like 2026-12-07T21:30:00Z)",
            args.to
        )
    })?;
    if to > Timestamp::now() {
        bail!("--to {to} is in the future: nothing to roll back to");
    }
    let key = env_nonempty("AWS_ACCESS_KEY_ID")
        .ok_or_else(|| anyhow!("no S3 key: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"))?;
    let secret = env_nonempty("AWS_SECRET_ACCESS_KEY")
        .ok_or_else(|| anyhow!("no S3 secret: set AWS_SECRET_ACCESS_KEY"))?;
    let credentials = match env_nonempty("AWS_SESSION_TOKEN") {
        Some(token) => Credentials::new_with_token(key, secret, token),
        None => Credentials::new(key, secret),
    };
    let endpoint: Url = args
        .endpoint_url
        .parse()
        .map_err(|e| anyhow!("--endpoint-url {:?}: {e}", args.endpoint_url))?;
    if !matches!(endpoint.scheme(), "http" | "https") {
        bail!(
            "--endpoint-url {:?} is not an http(s) URL",
            args.endpoint_url
        );
    }
    let bucket = Bucket::new(
        endpoint,
        UrlStyle::Path,
        args.bucket.clone(),
        args.region.clone(),
    )
    .map_err(|e| anyhow!("bucket {:?}: {e}", args.bucket))?;
    let ca_bundle = admin
        .ca_bundle
        .clone()
        .or_else(|| env_nonempty("AWS_CA_BUNDLE").map(Into::into));
    let s3 = S3 {
        http: http_client(&args.endpoint_url, ca_bundle.as_deref())?,
        bucket,
        credentials,
    };
    let counts = runtime()?.block_on(rollback(
        &s3,
        to.as_millisecond(),
        args.prefix.as_deref().unwrap_or(""),
        args.page_size,
        args.dry_run,
    ))?;
    println!(
        "bucket {} {} to {to}: {} restored, {} hidden, {} unchanged",
        args.bucket,
        if args.dry_run {
            "would be rolled back"
        } else {
            "rolled back"
        },
        counts.restored,
        counts.hidden,
        counts.unchanged
    );
    if counts.refused > 0 {
        bail!(
            "{} key(s) of bucket {} were left as they are: their names hold a `.` or `..` path \
             segment, which a request URL would resolve to another object; the rollback is \
             incomplete, roll those keys back with a client that sends their names unchanged",
            counts.refused,
            args.bucket
        );
    }
    Ok(())
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

async fn rollback(
    s3: &S3,
    to_ms: i64,
    prefix: &str,
    page_size: u16,
    dry_run: bool,
) -> Result<Counts> {
    match s3.versioning().await?.as_deref() {
        Some("Enabled") => {}
        // Suspended, a copy would replace the `null` version (its data deleted).
        Some(other) => bail!(
            "bucket {} has versioning {other}: a rollback needs it Enabled (it never replaces a version)",
            s3.bucket.name()
        ),
        None => bail!(
            "bucket {} is not versioned: there is nothing to roll back to",
            s3.bucket.name()
        ),
    }
    let mut counts = Counts::default();
    // Keys of the pages read so far whose entries may go on in the next page (at most one
    // page's worth: every key before a page's last one is complete).
    let mut pending: BTreeMap<String, KeyState> = BTreeMap::new();
    let mut after: Option<(String, String)> = None;
    loop {
        let page = s3.list(prefix, after.as_ref(), page_size).await?;
        for e in page.entries {
            pending.entry(e.key.clone()).or_default().add(e, to_ms);
        }
        let Some(next) = page.next else {
            for (key, state) in std::mem::take(&mut pending) {
                apply(s3, &key, &state, dry_run, &mut counts).await?;
            }
            return Ok(counts);
        };
        // A listing that does not move forward would never end.
        if let Some(prev) = &after
            && (next.0 < prev.0 || next == *prev)
        {
            bail!(
                "cannot list the versions of bucket {}: the listing did not move forward",
                s3.bucket.name()
            );
        }
        let later = pending.split_off(&next.0);
        for (key, state) in std::mem::replace(&mut pending, later) {
            apply(s3, &key, &state, dry_run, &mut counts).await?;
        }
        after = Some(next);
    }
}

async fn apply(
    s3: &S3,
    key: &str,
    state: &KeyState,
    dry_run: bool,
    counts: &mut Counts,
) -> Result<()> {
    let step = state.step();
    if step == Step::Unchanged {
        counts.unchanged += 1;
        return Ok(());
    }
    // Checked in a dry run too, so that it counts what a real run would refuse.
    let Some(url) = s3.object_url(key) else {
        counts.refused += 1;
        return Ok(());
    };
    match step {
        Step::Unchanged => {}
        Step::Restore(version) => {
            if !dry_run {
                s3.restore(url, key, &version).await?;
            }
            counts.restored += 1;
        }
        Step::Hide => {
            if !dry_run {
                s3.hide(url).await?;
            }
            counts.hidden += 1;
        }
    }
    Ok(())
}

/// A key (or version id) for `x-amz-copy-source`: percent-encoded but for `/`.
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A reqwest error without the request's URL: a presigned URL holds the key id, a signature
/// still valid for minutes, the session token and the object's name, none of which may be
/// printed.
fn without_url(e: reqwest::Error) -> anyhow::Error {
    anyhow::Error::new(e.without_url())
}

/// A percent-encoded string decoded, or `None` if it is not UTF-8 once decoded.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| char::from(c).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// An S3 error answer as one line: `403 AccessDenied: Access Denied`.
fn s3_error(status: reqwest::StatusCode, body: &str) -> String {
    match (first_text(body, "Code"), first_text(body, "Message")) {
        (Some(code), Some(msg)) => format!("{} {code}: {msg}", status.as_u16()),
        (Some(code), None) => format!("{} {code}", status.as_u16()),
        _ => format!("{}", status),
    }
}

/// Events of an XML document with text resolved (entity and character references included):
/// calls `f(depth_path, name, text)` at each element's end.
fn walk(xml: &str, mut f: impl FnMut(&[String], &str, &str)) -> Result<()> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    loop {
        match reader
            .read_event()
            .map_err(|e| anyhow!("malformed XML: {e}"))?
        {
            Event::Start(e) => {
                path.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
                text.clear();
            }
            Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                f(&path, &name, "");
                text.clear();
            }
            Event::Text(t) => {
                text.push_str(&t.decode().map_err(|e| anyhow!("malformed XML: {e}"))?)
            }
            Event::CData(c) => {
                text.push_str(&c.decode().map_err(|e| anyhow!("malformed XML: {e}"))?)
            }
            Event::GeneralRef(r) => {
                if let Some(c) = r
                    .resolve_char_ref()
                    .map_err(|e| anyhow!("malformed XML: {e}"))?
                {
                    text.push(c);
                } else {
                    let name = r.decode().map_err(|e| anyhow!("malformed XML: {e}"))?;
                    let resolved = quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(|| anyhow!("malformed XML: unknown entity &{name};"))?;
                    text.push_str(resolved);
                }
            }
            Event::End(_) => {
                let name = path.pop().unwrap_or_default();
                f(&path, &name, &text);
                text.clear();
            }
            Event::Eof if path.is_empty() => return Ok(()),
            Event::Eof => bail!("malformed XML: it ends inside <{}>", path.join("><")),
            _ => {}
        }
    }
}

/// Whether a `CopyObject` answered with status 200 succeeded: S3 may answer a failed copy with
/// 200 and an error document, so only a `CopyObjectResult` is a copy made.
fn copy_result(body: &str) -> std::result::Result<(), String> {
    match root_name(body).as_deref() {
        Some("CopyObjectResult") => Ok(()),
        Some("Error") => Err(s3_error(reqwest::StatusCode::OK, body)),
        _ => Err("the answer is not a CopyObjectResult; stopping".to_owned()),
    }
}

/// The name of the document's root element.
fn root_name(xml: &str) -> Option<String> {
    let mut root = None;
    walk(xml, |path, name, _| {
        if path.is_empty() {
            root = Some(name.to_owned());
        }
    })
    .ok()?;
    root
}

/// The text of the first element named `name` anywhere in the document.
fn first_text(xml: &str, name: &str) -> Option<String> {
    let mut found = None;
    walk(xml, |_, n, text| {
        if found.is_none() && n == name {
            found = Some(text.to_owned());
        }
    })
    .ok()?;
    found
}

/// A `ListVersionsResult` document as its entries and the next page's markers.
fn parse_versions(xml: &str) -> Result<Page> {
    let blank = || Entry {
        modified_ms: i64::MIN,
        ..Entry::default()
    };
    let mut page = Page::default();
    let mut entry = blank();
    let mut truncated = false;
    let mut next_key = None;
    let mut next_version = None;
    let mut root = None;
    let mut bad: Option<String> = None;
    walk(xml, |path, name, text| {
        match (path.len(), path.get(1).map(String::as_str), name) {
            (0, _, root_name) => root = Some(root_name.to_owned()),
            (1, _, "Version" | "DeleteMarker") => {
                let mut e = std::mem::replace(&mut entry, blank());
                e.marker = name == "DeleteMarker";
                if e.key.is_empty() || e.version_id.is_empty() || e.modified_ms == i64::MIN {
                    bad.get_or_insert_with(|| {
                        format!("a {name} without its Key, VersionId or LastModified")
                    });
                }
                page.entries.push(e);
            }
            (1, _, "IsTruncated") => truncated = text == "true",
            (1, _, "NextKeyMarker") => next_key = Some(text.to_owned()),
            (1, _, "NextVersionIdMarker") => next_version = Some(text.to_owned()),
            (2, Some("Version" | "DeleteMarker"), field) => match field {
                "Key" => entry.key = text.to_owned(),
                "VersionId" => entry.version_id = text.to_owned(),
                "IsLatest" => entry.latest = text == "true",
                "ETag" => entry.etag = text.to_owned(),
                "Size" => match text.parse() {
                    Ok(n) => entry.size = n,
                    Err(_) => {
                        bad.get_or_insert_with(|| format!("Size {text:?}"));
                    }
                },
                "LastModified" => match text.parse::<Timestamp>() {
                    Ok(t) => entry.modified_ms = t.as_millisecond(),
                    Err(_) => {
                        bad.get_or_insert_with(|| format!("LastModified {text:?}"));
                    }
                },
                _ => {}
            },
            _ => {}
        }
    })?;
    if root.as_deref() != Some("ListVersionsResult") {
        bail!("the answer is not a version listing");
    }
    if let Some(bad) = bad {
        bail!("the listing holds {bad}");
    }
    if truncated {
        match (next_key, next_version) {
            (Some(k), Some(v)) if !k.is_empty() => page.next = Some((k, v)),
            _ => bail!("a truncated listing without NextKeyMarker and NextVersionIdMarker"),
        }
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_000_000;

    fn entry(version: &str, latest: bool, marker: bool, modified_ms: i64, etag: &str) -> Entry {
        Entry {
            key: "k".into(),
            version_id: version.into(),
            latest,
            marker,
            modified_ms,
            etag: etag.into(),
            size: if marker { 0 } else { 3 },
        }
    }

    fn state(entries: &[Entry]) -> KeyState {
        let mut s = KeyState::default();
        for e in entries {
            s.add(e.clone(), T);
        }
        s
    }

    #[test]
    fn a_deleted_key_gets_its_version_of_then_back() {
        let s = state(&[
            entry("m", true, true, T + 5, ""),
            entry("b", false, false, T - 1, "\"b\""),
            entry("a", false, false, T - 9, "\"a\""),
        ]);
        assert_eq!(s.step(), Step::Restore("b".into()));
    }

    #[test]
    fn an_overwritten_key_gets_its_version_of_then_back_in_any_listing_order() {
        let entries = [
            entry("a", false, false, T - 9, "\"a\""),
            entry("c", true, false, T + 1, "\"c\""),
            entry("m", false, true, T - 5, ""),
            entry("b", false, false, T, "\"b\""),
        ];
        assert_eq!(state(&entries).step(), Step::Restore("b".into()));
        let mut reversed = entries.clone();
        reversed.reverse();
        assert_eq!(state(&reversed).step(), Step::Restore("b".into()));
    }

    #[test]
    fn a_key_made_after_the_time_is_hidden_and_a_hidden_one_stays_so() {
        let s = state(&[entry("n", true, false, T + 1, "\"n\"")]);
        assert_eq!(s.step(), Step::Hide);
        // Deleted before the time, written again after it.
        let s = state(&[
            entry("n", true, false, T + 1, "\"n\""),
            entry("m", false, true, T - 1, ""),
            entry("a", false, false, T - 2, "\"a\""),
        ]);
        assert_eq!(s.step(), Step::Hide);
        // Hidden already (a second run).
        let s = state(&[
            entry("m2", true, true, T + 2, ""),
            entry("n", false, false, T + 1, "\"n\""),
        ]);
        assert_eq!(s.step(), Step::Unchanged);
    }

    #[test]
    fn a_key_as_it_was_or_restored_already_is_unchanged() {
        let s = state(&[entry("a", true, false, T - 1, "\"a\"")]);
        assert_eq!(s.step(), Step::Unchanged);
        // An earlier run's copy: a new version id, the same content.
        let s = state(&[
            entry("copy", true, false, T + 9, "\"a\""),
            entry("m", false, true, T + 5, ""),
            entry("a", false, false, T - 1, "\"a\""),
        ]);
        assert_eq!(s.step(), Step::Unchanged);
        // Deleted before the time and still deleted.
        let s = state(&[
            entry("m", true, true, T - 1, ""),
            entry("a", false, false, T - 2, "\"a\""),
        ]);
        assert_eq!(s.step(), Step::Unchanged);
    }

    #[test]
    fn a_listing_is_read_with_its_markers_and_escapes() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>b</Name><Prefix></Prefix><KeyMarker/><MaxKeys>2</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <NextKeyMarker>a&amp;b</NextKeyMarker><NextVersionIdMarker>00ff</NextVersionIdMarker>
  <Version><Key>a&amp;b</Key><VersionId>00ff</VersionId><IsLatest>false</IsLatest>
    <LastModified>2026-12-07T21:06:28.123Z</LastModified><ETag>&quot;abc&quot;</ETag><Size>3</Size>
    <Owner><ID>x</ID></Owner><StorageClass>STANDARD</StorageClass></Version>
  <DeleteMarker><Key>a&amp;b</Key><VersionId>11ee</VersionId><IsLatest>true</IsLatest>
    <LastModified>2026-12-07T21:07:00Z</LastModified><Owner><ID>x</ID></Owner></DeleteMarker>
</ListVersionsResult>"#;
        let page = parse_versions(xml).unwrap();
        assert_eq!(page.next, Some(("a&b".into(), "00ff".into())));
        assert_eq!(page.entries.len(), 2);
        assert_eq!(
            page.entries[0],
            Entry {
                key: "a&b".into(),
                version_id: "00ff".into(),
                latest: false,
                marker: false,
                modified_ms: "2026-12-07T21:06:28.123Z"
                    .parse::<Timestamp>()
                    .unwrap()
                    .as_millisecond(),
                etag: "\"abc\"".into(),
                size: 3,
            }
        );
        assert!(page.entries[1].marker && page.entries[1].latest);
    }

    #[test]
    fn listings_that_cannot_be_followed_are_refused() {
        assert!(parse_versions("<Error><Code>AccessDenied</Code></Error>").is_err());
        assert!(
            parse_versions(
                "<ListVersionsResult><IsTruncated>true</IsTruncated></ListVersionsResult>"
            )
            .is_err()
        );
        let no_time = "<ListVersionsResult><Version><Key>k</Key><VersionId>v</VersionId></Version></ListVersionsResult>";
        assert!(parse_versions(no_time).is_err());
        assert!(parse_versions("<ListVersionsResult><Version>").is_err());
    }

    #[test]
    fn copy_sources_are_percent_encoded_but_for_slashes() {
        assert_eq!(encode_key("a b/c+d?e%"), "a%20b/c%2Bd%3Fe%25");
        assert_eq!(encode_key("ä"), "%C3%A4");
    }

    fn s3_for(endpoint: &str) -> S3 {
        obhut_trustee_client::remote::install_crypto_provider();
        S3 {
            http: reqwest::Client::new(),
            bucket: Bucket::new(
                endpoint.parse().unwrap(),
                UrlStyle::Path,
                "b".to_owned(),
                "de-1".to_owned(),
            )
            .unwrap(),
            credentials: Credentials::new("AKIDEXAMPLE", "secret-of-the-key"),
        }
    }

    #[test]
    fn keys_a_url_would_resolve_elsewhere_are_refused() {
        let s3 = s3_for("http://127.0.0.1:9000/");
        // What URL parsing makes of them: another object, another bucket.
        assert_eq!(s3.bucket.object_url("x/../victim").path(), "/b/victim");
        assert_eq!(s3.bucket.object_url("../b2/obj").path(), "/b2/obj");
        for key in [
            "x/../victim",
            "../b2/obj",
            "..",
            ".",
            "./k",
            "a/./b",
            "a/..",
            "a/../../b2/k",
        ] {
            assert_eq!(s3.object_url(key), None, "{key:?}");
        }
        // Everything else is sent as it is: encoded dots, backslashes, empty segments, a
        // folder marker, reserved and control characters.
        for key in [
            "k",
            "x/%2e%2e/victim",
            "x/.%2E/victim",
            "..\\b2\\k",
            "a//b",
            "/k",
            "dir/",
            "...",
            "a/.b/..c",
            "a?b#c%d",
            "t\tn\nr\r",
            "ä/ß",
        ] {
            let url = s3
                .object_url(key)
                .unwrap_or_else(|| panic!("{key:?} refused"));
            assert_eq!(percent_decode(url.path()).unwrap(), format!("/b/{key}"));
            assert_eq!(url.query(), None, "{key:?}");
        }
    }

    #[test]
    fn transport_errors_hold_no_signature_credential_or_url() {
        use std::io::{Read, Write};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let check = |err: anyhow::Error, expect: &str| {
            for text in [format!("{err:#}"), format!("{err:?}")] {
                assert!(text.contains(expect), "{text}");
                for secret in ["X-Amz", "AKIDEXAMPLE", "Signature", "Credential", "http://"] {
                    assert!(!text.contains(secret), "{secret} in {text}");
                }
            }
        };
        // Nothing listening: the request is never answered.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let s3 = s3_for(&format!("http://{addr}/"));
        let err = rt.block_on(s3.versioning()).unwrap_err();
        check(err, "did not answer");
        // An answer that breaks off in its body.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n<Ver")
                .unwrap();
        });
        let s3 = s3_for(&format!("http://{addr}/"));
        let err = rt.block_on(s3.versioning()).unwrap_err();
        server.join().unwrap();
        check(err, "broke off");
    }

    #[test]
    fn only_a_copy_object_result_is_a_copy_made() {
        let ok = r#"<?xml version="1.0" encoding="UTF-8"?>
<CopyObjectResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LastModified>2026-12-07T21:06:28.123Z</LastModified><ETag>"abc"</ETag></CopyObjectResult>"#;
        assert_eq!(copy_result(ok), Ok(()));
        let err = "<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>";
        assert_eq!(
            copy_result(err),
            Err("200 InternalError: We encountered an internal error.".to_owned())
        );
        for other in [
            "",
            "<html><body>ok</body></html>",
            "<CopyPartResult><ETag>x</ETag></CopyPartResult>",
            "<CopyObjectResult>",
        ] {
            assert!(copy_result(other).is_err(), "{other:?}");
        }
    }

    #[test]
    fn errors_are_one_line_with_code_and_message() {
        let body = "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
        assert_eq!(
            s3_error(reqwest::StatusCode::FORBIDDEN, body),
            "403 AccessDenied: Access Denied"
        );
    }
}
