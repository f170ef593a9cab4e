//! obhut's operational metrics and health reports, for the provider's operators.
//!
//! It owns the process-wide Prometheus registry ([`get`]) and its rendering (the Prometheus
//! text format 0.0.4, or OpenMetrics), the S3 operation classes that label request metrics
//! ([`S3Op`]), the readiness report of `/readyz` ([`Readiness`]), and a bounded history of
//! the S3 and site metrics for charts over time ([`history`]).
//!
//! It must never see a tenant, bucket or object name: every label value is from a closed set
//! (operation, status class, justification kind, site state) or a site id, which is the
//! operators' own data. Recording is atomics on handles created once (per operation when the
//! registry is made, per site when a site is opened), so the request path takes no lock of ours
//! and looks nothing up; a histogram observation takes prometheus-client's own short lock.

mod health;
pub mod history;
mod op;

pub use health::{LIVENESS_JSON, Readiness, SiteHealth, TrusteeState};
pub use op::S3Op;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

static ENABLED: AtomicBool = AtomicBool::new(true);
static METRICS: OnceLock<Metrics> = OnceLock::new();

/// Turns recording on or off for the whole process (config `metrics = false`). Off, nothing is
/// recorded and `/metrics` is not served.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether metrics are recorded in this process.
#[inline]
#[must_use]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    METRICS.get_or_init(Metrics::new)
}

/// Status classes of S3 responses, the `status` label.
const STATUS_CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

fn status_class(status: u16) -> usize {
    match status {
        0..300 => 0,
        300..400 => 1,
        400..500 => 2,
        _ => 3,
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpStatus {
    op: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SiteLabel {
    site: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SiteOpLabels {
    site: String,
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JustificationLabel {
    justification: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: &'static str,
}

/// What a lifecycle rule did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleAction {
    /// A current version expired: removed (unversioned bucket) or hidden by a delete marker.
    Expired,
    /// A noncurrent version (or delete marker) removed.
    NoncurrentExpired,
    /// A delete marker with no version left behind it removed.
    DeleteMarkerRemoved,
    /// An incomplete multipart upload aborted.
    UploadAborted,
    /// A version a tag-filtered rule could not be decided for (its tags could not be read).
    Skipped,
}

impl LifecycleAction {
    const ALL: [Self; 5] = [
        Self::Expired,
        Self::NoncurrentExpired,
        Self::DeleteMarkerRemoved,
        Self::UploadAborted,
        Self::Skipped,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::NoncurrentExpired => "noncurrent_expired",
            Self::DeleteMarkerRemoved => "delete_marker_removed",
            Self::UploadAborted => "upload_aborted",
            Self::Skipped => "skipped",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SiteStateLabels {
    site: String,
    state: &'static str,
}

/// Latency buckets, seconds: 0.5 ms to about 16 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

type Latencies<L> = Family<L, Histogram, fn() -> Histogram>;

/// Why a bucket key was released: the kind of the justification, never its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseKind {
    Customer,
    Grant,
    System,
}

impl ReleaseKind {
    const ALL: [Self; 3] = [Self::Customer, Self::Grant, Self::System];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Grant => "grant",
            Self::System => "system",
        }
    }
}

/// The site operations whose failures are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteOp {
    Write,
    Read,
    Delete,
}

impl SiteOp {
    const ALL: [Self; 3] = [Self::Write, Self::Read, Self::Delete];

    fn as_str(self) -> &'static str {
        match self {
            Self::Write => "write",
            Self::Read => "read",
            Self::Delete => "delete",
        }
    }
}

/// One site's metric handles, made when the site is opened.
#[derive(Clone, Debug)]
pub struct SiteMetrics {
    write: Histogram,
    read: Histogram,
    errors: [Counter; 3],
}

impl SiteMetrics {
    /// A blob written and made durable, from its creation to its commit.
    pub fn write_done(&self, took: Duration) {
        if enabled() {
            self.write.observe(took.as_secs_f64());
        }
    }

    /// A read, from its request to its last byte.
    pub fn read_done(&self, took: Duration) {
        if enabled() {
            self.read.observe(took.as_secs_f64());
        }
    }

    pub fn error(&self, op: SiteOp) {
        if enabled() {
            self.errors[op as usize].inc();
        }
    }
}

/// Everything recorded as it happens. Values known only when asked (the trustee's state, the
/// log, sites, repair) come with each scrape, in a [`Snapshot`].
pub struct Metrics {
    registry: Registry,
    requests: Vec<[Counter; 4]>,
    durations: Vec<Histogram>,
    bytes_in: Counter,
    bytes_out: Counter,
    site_write: Latencies<SiteLabel>,
    site_read: Latencies<SiteLabel>,
    site_errors: Family<SiteOpLabels, Counter>,
    key_hits: Counter,
    key_misses: Counter,
    key_evictions: Counter,
    keys_cached: Gauge,
    releases: [Counter; 3],
    signature_checks: Counter,
    lifecycle: [Counter; 5],
    request_ids: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("obhut");
        let requests_family = Family::<OpStatus, Counter>::default();
        let durations_family: Latencies<OpLabel> = Family::new_with_constructor(latency_histogram);
        let requests = S3Op::ALL
            .iter()
            .map(|op| {
                STATUS_CLASSES.map(|status| {
                    requests_family
                        .get_or_create(&OpStatus {
                            op: op.as_str(),
                            status,
                        })
                        .clone()
                })
            })
            .collect();
        let durations = S3Op::ALL
            .iter()
            .map(|op| {
                durations_family
                    .get_or_create(&OpLabel { op: op.as_str() })
                    .clone()
            })
            .collect();
        registry.register(
            "s3_requests",
            "S3 requests answered, by operation and status class",
            requests_family,
        );
        registry.register(
            "s3_request_duration_seconds",
            "Time from an S3 request's arrival to its response head, by operation",
            durations_family,
        );
        let bytes_in = Counter::default();
        let bytes_out = Counter::default();
        registry.register(
            "s3_received_bytes",
            "Bytes of S3 request bodies, as their Content-Length declares them",
            bytes_in.clone(),
        );
        registry.register(
            "s3_sent_bytes",
            "Bytes of S3 response bodies, as their Content-Length declares them",
            bytes_out.clone(),
        );
        let site_write: Latencies<SiteLabel> = Family::new_with_constructor(latency_histogram);
        let site_read: Latencies<SiteLabel> = Family::new_with_constructor(latency_histogram);
        let site_errors = Family::<SiteOpLabels, Counter>::default();
        registry.register(
            "site_write_duration_seconds",
            "Time to write a blob to a site and make it durable, by site",
            site_write.clone(),
        );
        registry.register(
            "site_read_duration_seconds",
            "Time to read a blob range from a site, to its last byte, by site",
            site_read.clone(),
        );
        registry.register(
            "site_errors",
            "Failed site operations (a missing blob is not counted), by site and operation",
            site_errors.clone(),
        );
        let key_hits = Counter::default();
        let key_misses = Counter::default();
        let key_evictions = Counter::default();
        registry.register(
            "key_cache_hits",
            "Bucket keys found in the gateway's key cache",
            key_hits.clone(),
        );
        registry.register(
            "key_cache_misses",
            "Bucket keys not in the gateway's key cache (asked of the trustee)",
            key_misses.clone(),
        );
        registry.register(
            "key_cache_evictions",
            "Bucket keys dropped from the gateway's key cache (expired, revoked, bucket deleted)",
            key_evictions.clone(),
        );
        let keys_cached = Gauge::default();
        registry.register(
            "key_cache_keys",
            "Bucket keys in the gateway's memory now (each usable until key_cache_ttl after its release, or until revoked)",
            keys_cached.clone(),
        );
        let releases_family = Family::<JustificationLabel, Counter>::default();
        let releases = ReleaseKind::ALL.map(|k| {
            releases_family
                .get_or_create(&JustificationLabel {
                    justification: k.as_str(),
                })
                .clone()
        });
        registry.register(
            "key_releases",
            "Bucket keys the trustee released to this gateway, by kind of justification",
            releases_family,
        );
        let signature_checks = Counter::default();
        registry.register(
            "trustee_signature_checks",
            "S3 request signatures the trustee was asked to check (counted by the trustee)",
            signature_checks.clone(),
        );
        let lifecycle_family = Family::<ActionLabel, Counter>::default();
        let lifecycle = LifecycleAction::ALL.map(|a| {
            lifecycle_family
                .get_or_create(&ActionLabel { action: a.as_str() })
                .clone()
        });
        registry.register(
            "lifecycle_actions",
            "What bucket lifecycle rules did on this gateway, by action",
            lifecycle_family,
        );
        Self {
            registry,
            requests,
            durations,
            bytes_in,
            bytes_out,
            site_write,
            site_read,
            site_errors,
            key_hits,
            key_misses,
            key_evictions,
            keys_cached,
            releases,
            signature_checks,
            lifecycle,
            request_ids: AtomicU64::new(0),
        }
    }

    /// One S3 request answered.
    pub fn s3_request(&self, op: S3Op, status: u16, took: Duration, bytes_in: u64, bytes_out: u64) {
        if !enabled() {
            return;
        }
        let i = op as usize;
        self.requests[i][status_class(status)].inc();
        self.durations[i].observe(took.as_secs_f64());
        if bytes_in > 0 {
            self.bytes_in.inc_by(bytes_in);
        }
        if bytes_out > 0 {
            self.bytes_out.inc_by(bytes_out);
        }
    }

    /// The handles of site `id` (made once, when the site is opened).
    #[must_use]
    pub fn site(&self, id: &str) -> SiteMetrics {
        let label = SiteLabel {
            site: id.to_owned(),
        };
        SiteMetrics {
            write: self.site_write.get_or_create_owned(&label),
            read: self.site_read.get_or_create_owned(&label),
            errors: SiteOp::ALL.map(|op| {
                self.site_errors.get_or_create_owned(&SiteOpLabels {
                    site: id.to_owned(),
                    op: op.as_str(),
                })
            }),
        }
    }

    pub fn key_cache_hit(&self) {
        if enabled() {
            self.key_hits.inc();
        }
    }

    pub fn key_cache_miss(&self) {
        if enabled() {
            self.key_misses.inc();
        }
    }

    pub fn key_cache_evicted(&self, n: usize) {
        if enabled() && n > 0 {
            self.key_evictions.inc_by(n as u64);
        }
    }

    /// Bucket keys the gateway holds now.
    pub fn key_cache_size(&self, n: usize) {
        if enabled() {
            self.keys_cached.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    pub fn key_released(&self, kind: ReleaseKind) {
        if enabled() {
            self.releases[kind as usize].inc();
        }
    }

    /// Lifecycle rules did `action` `n` times.
    pub fn lifecycle_applied(&self, action: LifecycleAction, n: u64) {
        if enabled() && n > 0 {
            self.lifecycle[action as usize].inc_by(n);
        }
    }

    /// The trustee was asked to check one request's signature (whatever the outcome).
    pub fn signature_checked(&self) {
        if enabled() {
            self.signature_checks.inc();
        }
    }

    /// A new request id: unique in this process and, with overwhelming likelihood, across a
    /// deployment's processes (a random per-process prefix and a counter), and cheap to make.
    #[must_use]
    pub fn next_request_id(&self) -> String {
        static PREFIX: OnceLock<u32> = OnceLock::new();
        let prefix = *PREFIX.get_or_init(random_prefix);
        let n = self.request_ids.fetch_add(1, Ordering::Relaxed);
        // `format!` with padding costs more than the rest of this; the same digits by hand.
        const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
        let mut id = [0u8; 20];
        for (i, slot) in id[..8].iter_mut().enumerate() {
            *slot = DIGITS[((prefix >> (28 - 4 * i)) & 0xF) as usize];
        }
        for (i, slot) in id[8..].iter_mut().enumerate() {
            *slot = DIGITS[((n >> (44 - 4 * i)) & 0xF) as usize];
        }
        id.iter().map(|&b| char::from(b)).collect()
    }

    /// The exposition of what is recorded as it happens (no scraped values), in the
    /// Prometheus text format: what [`history`] samples.
    ///
    /// # Errors
    /// Only if formatting fails, which writing to a `String` does not.
    pub fn render_own(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(32 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// The exposition: everything recorded, and `snapshot`'s values. `openmetrics` chooses
    /// OpenMetrics text over the Prometheus text format 0.0.4.
    ///
    /// # Errors
    /// Only if formatting fails, which writing to a `String` does not.
    pub fn render(
        &self,
        snapshot: &Snapshot,
        openmetrics: bool,
    ) -> Result<String, std::fmt::Error> {
        let scraped = snapshot.registry();
        let mut out = String::with_capacity(32 * 1024);
        if openmetrics {
            use prometheus_client::encoding::text;
            text::encode_registry(&mut out, &self.registry)?;
            text::encode_registry(&mut out, &scraped)?;
            text::encode_eof(&mut out)?;
        } else {
            use prometheus_client::encoding::prometheus_text;
            prometheus_text::encode(&mut out, &self.registry)?;
            prometheus_text::encode(&mut out, &scraped)?;
        }
        Ok(out)
    }
}

/// The Content-Type of [`Metrics::render`]'s output.
#[must_use]
pub fn content_type(openmetrics: bool) -> &'static str {
    if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        prometheus_client::encoding::prometheus_text::CONTENT_TYPE
    }
}

fn random_prefix() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS once per process: enough to tell processes apart.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    #[allow(clippy::cast_possible_truncation)]
    let v = h.finish() as u32;
    v
}

/// The repair pass's state, as the scrape sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct RepairGauges {
    pub running: bool,
    /// Objects the running pass has found and not yet handled (0 when no pass runs).
    pub backlog: u64,
    /// Objects the current or last pass could not bring to their policy.
    pub failed: u64,
    /// Objects found bad on read, queued to be checked and repaired.
    pub queued: u64,
    /// Replicas the scrubber found bad since the process started.
    pub scrub_bad: u64,
}

/// Quotas of one kind of scope (tenants or buckets), summed: never which tenant or bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaGauges {
    /// Scopes that have a quota.
    pub limited: u64,
    /// Of those, scopes at 90 % or more of a limit (bytes or objects, reservations included).
    pub near_limit: u64,
    /// Of those, scopes at or beyond a limit.
    pub at_limit: u64,
    /// Sum of the byte limits that are set.
    pub limit_bytes: u64,
    /// Bytes held by scopes that have a byte limit (reservations not included).
    pub used_bytes: u64,
    /// Bytes reserved by writes in flight in scopes that have a quota.
    pub reserved_bytes: u64,
    /// Sum of the object limits that are set.
    pub limit_objects: u64,
    /// Objects held by scopes that have an object limit.
    pub used_objects: u64,
}

/// Quotas by kind of scope, as the scrape sees them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quotas {
    pub tenants: QuotaGauges,
    pub buckets: QuotaGauges,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabel {
    scope: &'static str,
}

/// Values read when scraped. `None` (or empty) leaves a metric out: a process without the
/// log, or without a catalog pool, does not pretend to have one.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub trustee: Option<TrusteeState>,
    pub catalog_up: Option<bool>,
    pub log_entries: Option<u64>,
    /// Time since the trustee last wrote a checkpoint of its log (it writes one after every
    /// append); only where this process has the log (`serve`).
    pub log_checkpoint_age: Option<Duration>,
    pub sites: Vec<SiteHealth>,
    pub repair: Option<RepairGauges>,
    /// Connections of the catalog's pool in use and its size, if the catalog has a pool.
    pub catalog_pool: Option<(u64, u64)>,
    /// Quotas and their usage, summed per kind of scope.
    pub quotas: Option<Quotas>,
    /// Whether this process holds the lease on background work, where it goes by one.
    pub background_leader: Option<bool>,
}

fn gauge(v: u64) -> Gauge {
    let g = Gauge::default();
    g.set(i64::try_from(v).unwrap_or(i64::MAX));
    g
}

const SITE_STATES: [&str; 3] = ["active", "draining", "down"];

impl Snapshot {
    fn registry(&self) -> Registry {
        let mut r = Registry::with_prefix("obhut");
        if let Some(t) = self.trustee {
            r.register(
                "trustee_reachable",
                "Whether the trustee answers (1) or not (0)",
                gauge(u64::from(t != TrusteeState::Unreachable)),
            );
            r.register(
                "trustee_sealed",
                "Whether the trustee is sealed (1; also when it cannot be reached) or not (0)",
                gauge(u64::from(matches!(
                    t,
                    TrusteeState::Sealed | TrusteeState::Unreachable
                ))),
            );
            r.register(
                "trustee_disconnected",
                "Whether the trustee's officers have disconnected the provider (1: nothing is served) or not (0)",
                gauge(u64::from(t == TrusteeState::Disconnected)),
            );
        }
        if let Some(up) = self.catalog_up {
            r.register(
                "catalog_up",
                "Whether the catalog answers (1) or not (0)",
                gauge(u64::from(up)),
            );
        }
        if let Some(leader) = self.background_leader {
            r.register(
                "background_leader",
                "Whether this process holds the lease on background work and runs it (1) or stands by (0)",
                gauge(u64::from(leader)),
            );
        }
        if let Some(n) = self.log_entries {
            r.register("log_entries", "Entries in the transparency log", gauge(n));
        }
        if let Some(age) = self.log_checkpoint_age {
            let g = Gauge::<f64, AtomicU64>::default();
            g.set(age.as_secs_f64());
            r.register(
                "log_checkpoint_age_seconds",
                "Time since the trustee wrote the log's newest checkpoint (after its newest entry)",
                g,
            );
        }
        let by_state = Family::<StateLabel, Gauge>::default();
        let site_state = Family::<SiteStateLabels, Gauge>::default();
        for state in SITE_STATES {
            let n = self.sites.iter().filter(|s| s.state == state).count();
            by_state
                .get_or_create(&StateLabel { state })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        for s in &self.sites {
            for state in SITE_STATES {
                site_state
                    .get_or_create(&SiteStateLabels {
                        site: s.id.clone(),
                        state,
                    })
                    .set(i64::from(s.state == state));
            }
        }
        r.register("sites", "Sites by state", by_state);
        r.register(
            "site_state",
            "Each site's state as this process sees it: 1 for its state, 0 for the others",
            site_state,
        );
        if let Some(rep) = self.repair {
            r.register(
                "repair_running",
                "Whether a repair pass is running",
                gauge(u64::from(rep.running)),
            );
            r.register(
                "repair_backlog_objects",
                "Objects the running repair pass has found and not yet handled",
                gauge(rep.backlog),
            );
            r.register(
                "repair_queued_objects",
                "Objects found bad on read, queued to be checked and repaired",
                gauge(rep.queued),
            );
            r.register(
                "repair_failed_objects",
                "Objects the current or last repair pass could not bring to their policy",
                gauge(rep.failed),
            );
            r.register(
                "scrub_bad_replicas",
                "Replicas the scrubber found bad since the process started",
                gauge(rep.scrub_bad),
            );
        }
        if let Some(q) = self.quotas {
            type Field = fn(&QuotaGauges) -> u64;
            let metrics: [(&str, &str, Field); 8] = [
                (
                    "quota_scopes",
                    "Tenants (scope=tenant) or buckets (scope=bucket) that have a quota",
                    |g| g.limited,
                ),
                (
                    "quota_scopes_near_limit",
                    "Of those with a quota, how many hold (with reservations) 90 % or more of a limit",
                    |g| g.near_limit,
                ),
                (
                    "quota_scopes_at_limit",
                    "Of those with a quota, how many hold (with reservations) all of a limit or more",
                    |g| g.at_limit,
                ),
                (
                    "quota_limit_bytes",
                    "Sum of the byte limits of quotas",
                    |g| g.limit_bytes,
                ),
                (
                    "quota_used_bytes",
                    "Bytes held by tenants or buckets that have a byte limit",
                    |g| g.used_bytes,
                ),
                (
                    "quota_reserved_bytes",
                    "Bytes reserved by writes in flight in tenants or buckets that have a quota",
                    |g| g.reserved_bytes,
                ),
                (
                    "quota_limit_objects",
                    "Sum of the object limits of quotas",
                    |g| g.limit_objects,
                ),
                (
                    "quota_used_objects",
                    "Objects held by tenants or buckets that have an object limit",
                    |g| g.used_objects,
                ),
            ];
            for (name, help, field) in metrics {
                let family = Family::<ScopeLabel, Gauge>::default();
                for (scope, g) in [("tenant", &q.tenants), ("bucket", &q.buckets)] {
                    family
                        .get_or_create(&ScopeLabel { scope })
                        .set(i64::try_from(field(g)).unwrap_or(i64::MAX));
                }
                r.register(name, help, family);
            }
        }
        if let Some((in_use, size)) = self.catalog_pool {
            r.register(
                "catalog_pool_connections_in_use",
                "Catalog connections in use",
                gauge(in_use),
            );
            r.register(
                "catalog_pool_connections",
                "Catalog connections in the pool",
                gauge(size),
            );
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_requests_by_operation_and_class_with_help_and_type() {
        let m = get();
        m.s3_request(S3Op::GetObject, 200, Duration::from_millis(3), 0, 4096);
        m.s3_request(S3Op::PutObject, 503, Duration::from_millis(30), 4096, 0);
        let snap = Snapshot {
            trustee: Some(TrusteeState::Sealed),
            sites: vec![SiteHealth {
                id: "de-fra".into(),
                state: "down",
            }],
            ..Snapshot::default()
        };
        let text = m.render(&snap, false).expect("renders");
        assert!(
            text.contains("# TYPE obhut_s3_requests_total counter"),
            "{text}"
        );
        assert!(text.contains("# HELP obhut_s3_requests_total "), "{text}");
        assert!(
            text.contains("obhut_s3_requests_total{op=\"GetObject\",status=\"2xx\"} "),
            "{text}"
        );
        assert!(
            text.contains("obhut_s3_request_duration_seconds_bucket{"),
            "{text}"
        );
        assert!(text.contains("obhut_trustee_sealed 1"), "{text}");
        assert!(text.contains("obhut_trustee_reachable 1"), "{text}");
        assert!(
            text.contains("obhut_site_state{site=\"de-fra\",state=\"down\"} 1"),
            "{text}"
        );
        assert!(!text.contains("log_checkpoint_age"), "{text}");
        assert!(!text.contains("obhut_quota"), "{text}");
        assert!(!text.contains("background_leader"), "{text}");
        let standby = Snapshot {
            background_leader: Some(false),
            ..Snapshot::default()
        };
        let text = m.render(&standby, false).expect("renders");
        assert!(text.contains("obhut_background_leader 0"), "{text}");
        let with_quotas = Snapshot {
            quotas: Some(Quotas {
                tenants: QuotaGauges {
                    limited: 3,
                    near_limit: 1,
                    limit_bytes: 1 << 30,
                    ..QuotaGauges::default()
                },
                buckets: QuotaGauges::default(),
            }),
            ..Snapshot::default()
        };
        let text = m.render(&with_quotas, false).expect("renders");
        for line in [
            "obhut_quota_scopes{scope=\"tenant\"} 3",
            "obhut_quota_scopes{scope=\"bucket\"} 0",
            "obhut_quota_scopes_near_limit{scope=\"tenant\"} 1",
            "obhut_quota_limit_bytes{scope=\"tenant\"} 1073741824",
            "# TYPE obhut_quota_used_bytes gauge",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        let om = m.render(&snap, true).expect("renders");
        assert!(om.ends_with("# EOF\n"), "{om}");
    }

    #[test]
    fn status_classes() {
        assert_eq!(STATUS_CLASSES[status_class(204)], "2xx");
        assert_eq!(STATUS_CLASSES[status_class(304)], "3xx");
        assert_eq!(STATUS_CLASSES[status_class(404)], "4xx");
        assert_eq!(STATUS_CLASSES[status_class(503)], "5xx");
    }

    #[test]
    fn request_ids_differ() {
        let a = get().next_request_id();
        let b = get().next_request_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 20);
    }
}
