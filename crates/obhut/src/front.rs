//! The front of one data directory, shared by `serve` and `gateway`: the sites the catalog
//! names, their maintenance, the S3 gateway and the admin API, run until SIGTERM or Ctrl-C
//! whichever trustee (in this process or remote) releases the keys.

use crate::common::shutdown_signal;
use anyhow::{Context, Result};
use obhut_admin::{BucketKeyRotation, RotationOutcome, RotationProgress, TrusteeSiteSecrets};
use obhut_catalog::Catalog;
use obhut_core::SiteInfo;
use obhut_gateway::{Gateway, GatewayConfig, TrusteePolicies};
use obhut_maintenance::registry::{Applied, OpenError, REFRESH_INTERVAL, open_site, refresh_sites};
use obhut_maintenance::{
    Leadership, LeaseTiming, Maintenance, OrphanCollection, PolicySource, ScrubRate, SiteSet,
    Workers, project_all,
};
use obhut_sites::Site;
use obhut_trustee_client::{Justification, TrusteeClient};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The sites registered in the catalog, and the records they were opened from. A site whose
/// identity does not match (an unmounted disk, a wrong path or bucket) is down: it is left
/// out, never recreated (the registry's refresh tries to open it again, see `serve_front`).
pub(crate) async fn open_sites(
    catalog: &dyn Catalog,
    trustee: &dyn obhut_trustee_client::TrusteeClient,
) -> Result<(SiteSet, Applied)> {
    let mut sites: Vec<(SiteInfo, Arc<dyn Site>)> = Vec::new();
    let mut opened = Vec::new();
    for rec in catalog.list_sites().await? {
        let site = match open_site(&rec, &TrusteeSiteSecrets(trustee)).await {
            Ok(site) => site,
            Err(e @ OpenError::Down(_)) => {
                // Down, not fatal: reads use the other replicas; writes that cannot reach
                // enough sites are refused.
                tracing::error!(error = %e, "site is down; it is left as it is");
                continue;
            }
            Err(e) => {
                tracing::error!(site = %rec.id, error = %e, "site cannot be opened; it is treated as down");
                continue;
            }
        };
        sites.push((
            SiteInfo {
                id: rec.id.clone(),
                jurisdiction: rec.jurisdiction.clone(),
                location: rec.location.clone(),
                state: rec.state,
            },
            site,
        ));
        opened.push(rec);
    }
    Ok((SiteSet::new(sites), Applied::new(opened)))
}

/// Reads the site registry again every [`REFRESH_INTERVAL`], so that a site added, changed or
/// removed through another process sharing the catalog (or whose backend could not be opened
/// at start) is used here without a restart.
fn spawn_site_refresh(
    workers: &Workers,
    catalog: Arc<dyn Catalog>,
    sites: SiteSet,
    trustee: Arc<dyn TrusteeClient>,
    mut applied: Applied,
) {
    workers.spawn("site-registry", move |w| async move {
        while w.sleep(REFRESH_INTERVAL).await {
            let _run = w.run();
            if let Err(e) = refresh_sites(
                catalog.as_ref(),
                &sites,
                &TrusteeSiteSecrets(trustee.as_ref()),
                &mut applied,
            )
            .await
            {
                tracing::warn!(error = %e, "cannot read the site registry; trying again shortly");
            }
        }
    });
}

/// What the S3 front and the admin API need, whichever trustee serves them.
pub(crate) struct Front {
    pub catalog: Arc<dyn Catalog>,
    pub sites: SiteSet,
    /// The registry records `sites` were opened from (see `open_sites`).
    pub sites_applied: Applied,
    pub trustee: Arc<dyn TrusteeClient>,
    pub s3_addr: String,
    pub admin_addr: String,
    pub region: String,
    pub key_cache_ttl: Duration,
    pub scrub_bytes_per_sec: u64,
    pub scrub_interval: Duration,
    /// The length of a lifecycle day and the pause between lifecycle runs, as configured
    /// (the environment may override both, see `lifecycle_timing`).
    pub lifecycle_day: Option<Duration>,
    pub lifecycle_every: Option<Duration>,
    /// The process's background workers (the front adds its own and stops them all).
    pub workers: Workers,
    /// Timeouts and the connection cap of both listeners.
    pub limits: obhut_listen::Limits,
    /// The listeners' TLS certificates (none: plain HTTP), read again on SIGHUP.
    pub certs: crate::tls::ListenerCerts,
    /// Whether blobs no record names are removed at start: only safe where this process is
    /// the catalog's only writer (an embedded catalog, its data directory locked). Gateways
    /// sharing a catalog on PostgreSQL leave them, since another one's upload in flight looks
    /// the same.
    pub collect_orphans_at_start: bool,
    /// Where the log's newest checkpoint is kept, if this process has the log.
    pub log_checkpoint: Option<std::path::PathBuf>,
}

/// Bucket-key rotation for the admin API, done by the gateway.
struct GatewayRotation(Gateway);

#[async_trait::async_trait]
impl BucketKeyRotation for GatewayRotation {
    async fn rotate(
        &self,
        tenant: &str,
        bucket: &str,
        why: &Justification,
        progress: RotationProgress,
    ) -> Result<RotationOutcome, String> {
        let r = self
            .0
            .rotate_bucket_key(tenant, bucket, why, progress)
            .await?;
        Ok(RotationOutcome {
            version: r.version,
            rewrapped: r.rewrapped,
            skipped: r.skipped,
        })
    }
}

/// How the heartbeat in the catalog's gateway registry learns this process's readiness: as
/// `/readyz` judges it (the trustee and the catalog, each given 2 s), and its sites' states.
fn readiness_probe(
    trustee: Arc<dyn TrusteeClient>,
    sites: obhut_maintenance::SiteSet,
) -> obhut_maintenance::ReadinessProbe {
    const CHECK: Duration = Duration::from_secs(2);
    Arc::new(move |catalog: Arc<dyn Catalog>| {
        let (trustee, sites) = (Arc::clone(&trustee), sites.clone());
        Box::pin(async move {
            let (seal, listed) = tokio::join!(
                tokio::time::timeout(CHECK, trustee.seal_status()),
                tokio::time::timeout(CHECK, catalog.list_sites())
            );
            let trustee = match seal {
                Ok(Ok(s)) if s.sealed => "sealed",
                Ok(Ok(s)) if s.disconnected => "disconnected",
                Ok(Ok(_)) => "unsealed",
                _ => "unreachable",
            };
            let infos = sites.infos();
            let ok = infos
                .iter()
                .filter(|i| i.state != obhut_core::SiteState::Down)
                .count();
            obhut_maintenance::ReadinessSummary {
                trustee: trustee.to_owned(),
                catalog_ok: matches!(listed, Ok(Ok(_))),
                sites_ok: u32::try_from(ok).unwrap_or(u32::MAX),
                sites_total: u32::try_from(infos.len()).unwrap_or(u32::MAX),
            }
        })
    })
}

/// Runs the S3 gateway and the admin API until SIGTERM or Ctrl-C. With
/// `collect_orphans_at_start`, the caller holds the data directory's lock and its catalog is
/// nobody else's (orphan collection at start relies on both).
pub(crate) async fn serve_front(front: Front, data_dir: &Path) -> Result<()> {
    let workers = front.workers;
    // Repair, scrubbing and the reclaim of expired quota holds run on one process of those
    // sharing the catalog: the holder of its lease (always this one on an embedded catalog).
    // A process that is its catalog's only writer (its data directory locked) holds the lease
    // under the directory's name, so that after a restart it need not wait for its former
    // self's lease to lapse; gateways sharing a catalog each hold it under their own id.
    let holder = if front.collect_orphans_at_start {
        format!("sole writer {}", data_dir.display())
    } else {
        Leadership::process_holder_id()
    };
    let leadership = Leadership::new(Arc::clone(&front.catalog), holder, lease_timing()?);
    let lease = leadership.clone();
    if !leadership.renew().await {
        tracing::info!(
            "another gateway holds the lease on background work: repair, scrubbing and reclaims stand by here"
        );
    }
    workers.lead_with(leadership);
    // The trustee owns residency policies: placement and repair go by its records, and the
    // catalog's copy is rewritten from them now (each difference is reported).
    let policies: Arc<dyn PolicySource> =
        TrusteePolicies::new(Arc::clone(&front.trustee), &workers);
    match project_all(front.catalog.as_ref(), policies.as_ref()).await {
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "the catalog's copy of residency policies was not rewritten; it is checked at each use")
        }
    }
    spawn_site_refresh(
        &workers,
        Arc::clone(&front.catalog),
        front.sites.clone(),
        Arc::clone(&front.trustee),
        front.sites_applied,
    );
    let orphans = orphan_collection()?;
    let maintenance = Maintenance::new(
        Arc::clone(&front.catalog),
        front.sites,
        Arc::clone(&policies),
        workers.clone(),
        orphans.retention,
    );
    let gateway = Gateway::new(
        Arc::clone(&front.catalog),
        maintenance.sites().clone(),
        Arc::clone(&front.trustee),
        GatewayConfig {
            region: front.region.clone(),
            key_cache_ttl: front.key_cache_ttl,
            lifecycle: lifecycle_timing(front.lifecycle_day, front.lifecycle_every)?,
            blob_retention: orphans.retention,
        },
        maintenance.requests(),
        policies,
        &workers,
    );
    if front.collect_orphans_at_start {
        // No write is in flight: every blob no record names is an orphan, however young.
        match maintenance.collect_orphans(Duration::ZERO).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "collected orphan blobs"),
            Err(e) => {
                tracing::warn!(error = %e, "orphan collection failed; will retry at next start")
            }
        }
    } else {
        tracing::info!(
            "the catalog is shared with other gateways: orphans are collected by the lease holder after their grace period, not at start"
        );
    }
    maintenance.spawn_workers(ScrubRate {
        bytes_per_sec: front.scrub_bytes_per_sec,
        pause: front.scrub_interval,
    });
    maintenance.spawn_orphan_collector(orphans);
    obhut_maintenance::spawn_heartbeat(
        &workers,
        lease.clone(),
        env!("CARGO_PKG_VERSION"),
        readiness_probe(Arc::clone(&front.trustee), maintenance.sites().clone()),
    );
    let s3_listener = TcpListener::bind(&front.s3_addr)
        .await
        .with_context(|| format!("cannot listen on {} for S3", front.s3_addr))?;
    let admin_listener = TcpListener::bind(&front.admin_addr)
        .await
        .with_context(|| format!("cannot listen on {} for the admin API", front.admin_addr))?;
    let scheme = |tls: bool| if tls { "https" } else { "http" };
    tracing::info!(
        s3 = %front.s3_addr,
        admin = %front.admin_addr,
        s3_scheme = scheme(front.certs.s3.is_some()),
        admin_scheme = scheme(front.certs.admin.is_some()),
        data_dir = %data_dir.display(),
        "obhut is serving"
    );
    front.certs.log_serving();
    front.certs.reload_on_sighup();
    let options = |name, refusal, cert: &Option<Arc<obhut_listen::tls::ServerCert>>| {
        Ok::<_, anyhow::Error>(obhut_listen::Options {
            tls: cert.as_ref().map(|c| c.server_config()).transpose()?,
            ..obhut_listen::Options::plain(name, front.limits, refusal)
        })
    };
    let s3_options = options("S3", obhut_listen::S3_REFUSAL, &front.certs.s3)?;
    let admin_options = options("admin", obhut_listen::ADMIN_REFUSAL, &front.certs.admin)?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let admin = obhut_admin::router(obhut_admin::AdminState {
        catalog: front.catalog,
        trustee: front.trustee,
        maintenance: Some(maintenance),
        rotation: Some(Arc::new(GatewayRotation(gateway.clone()))),
        workers: workers.clone(),
        jobs: obhut_admin::Jobs::default(),
        data_dir: Some(data_dir.to_path_buf()),
        log_checkpoint: front.log_checkpoint,
    });
    let s3_task = tokio::spawn(obhut_listen::serve(
        s3_listener,
        gateway.into_service(),
        s3_options,
        stop_rx.clone(),
    ));
    let admin_task = tokio::spawn(obhut_listen::serve(
        admin_listener,
        hyper_util::service::TowerToHyperService::new(admin),
        admin_options,
        stop_rx,
    ));

    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(15), async {
        let _ = s3_task.await;
        let _ = admin_task.await;
    })
    .await;
    // Only now: requests still being served may need the workers (revocations of cached keys
    // above all) until the listeners have drained.
    workers.stop();
    // Waited for, so that the catalog's last write is done before the process ends.
    lease.release().await;
    tracing::info!("stopped");
    Ok(())
}

/// Orphan collection on the lease holder: blobs no record names, older than a day, every
/// hour, removed once no record has named them for the retention of removed blobs (8 days),
/// unless `OBHUT_ORPHAN_GRACE_MS`, `OBHUT_ORPHAN_EVERY_MS` and `OBHUT_BLOB_RETENTION_MS` say
/// otherwise. The grace must exceed the longest time from a replica's commit on its site to
/// the catalog commit of its write (seconds, unless the process is paused or a site hangs up
/// to its request timeout): it is at least [`MIN_ORPHAN_GRACE`], and shorter only where
/// `OBHUT_TEST_SHORT_ORPHAN_GRACE=1` says this is a test (never in production). A retention
/// of zero removes the blobs of deleted and overwritten objects at once: a catalog restored to
/// an earlier point may then name blobs that are gone.
fn orphan_collection() -> Result<OrphanCollection> {
    let default = OrphanCollection::default();
    let orphans = OrphanCollection {
        grace: env_ms("OBHUT_ORPHAN_GRACE_MS")?.unwrap_or(default.grace),
        every: env_ms("OBHUT_ORPHAN_EVERY_MS")?.unwrap_or(default.every),
        retention: env_ms("OBHUT_BLOB_RETENTION_MS")?.unwrap_or(default.retention),
    };
    let testing = std::env::var("OBHUT_TEST_SHORT_ORPHAN_GRACE").is_ok_and(|v| v == "1");
    check_orphan_collection(&orphans, testing)?;
    if orphans.grace < MIN_ORPHAN_GRACE {
        tracing::warn!(
            grace_ms = orphans.grace.as_millis(),
            "orphan collection has a grace period under 10 minutes (OBHUT_TEST_SHORT_ORPHAN_GRACE, for tests only): a write stalled longer than that between its replicas and its commit would lose its blobs"
        );
    }
    if orphans.retention.is_zero() {
        tracing::warn!(
            "blobs of deleted and overwritten objects are removed without a retention (OBHUT_BLOB_RETENTION_MS=0): a catalog restored to an earlier point may name blobs that are gone"
        );
    } else {
        tracing::info!(
            retention_s = orphans.retention.as_secs(),
            "blobs no record names any more are kept for the retention before orphan collection removes them"
        );
    }
    Ok(orphans)
}

/// The length of a lifecycle day and the pause between lifecycle runs: 24 hours and one hour,
/// unless the config file (`lifecycle_day_secs`, `lifecycle_interval_secs`) or, over it, the
/// environment (`OBHUT_LIFECYCLE_DAY_MS`, `OBHUT_LIFECYCLE_EVERY_MS`) says otherwise. A day
/// shorter than S3's is for tests (objects expire for real, sooner): it is logged as a warning.
fn lifecycle_timing(
    day: Option<Duration>,
    every: Option<Duration>,
) -> Result<obhut_gateway::lifecycle::LifecycleTiming> {
    let default = obhut_gateway::lifecycle::LifecycleTiming::default();
    let timing = obhut_gateway::lifecycle::LifecycleTiming {
        day: env_ms("OBHUT_LIFECYCLE_DAY_MS")?
            .or(day)
            .unwrap_or(default.day),
        every: env_ms("OBHUT_LIFECYCLE_EVERY_MS")?
            .or(every)
            .unwrap_or(default.every),
    };
    anyhow::ensure!(
        !timing.day.is_zero() && !timing.every.is_zero(),
        "a lifecycle day (lifecycle_day_secs, OBHUT_LIFECYCLE_DAY_MS) and the lifecycle interval (lifecycle_interval_secs, OBHUT_LIFECYCLE_EVERY_MS) must be above zero"
    );
    if timing.day < default.day {
        tracing::warn!(
            day_ms = timing.day.as_millis(),
            "a lifecycle day is shorter than 24 hours here: lifecycle rules expire objects sooner than S3 would"
        );
    }
    Ok(timing)
}

/// Refuses a grace period below [`MIN_ORPHAN_GRACE`] (below [`MIN_TEST_ORPHAN_GRACE`] with
/// `testing`) and an interval of zero.
fn check_orphan_collection(orphans: &OrphanCollection, testing: bool) -> Result<()> {
    let floor = if testing {
        MIN_TEST_ORPHAN_GRACE
    } else {
        MIN_ORPHAN_GRACE
    };
    anyhow::ensure!(
        orphans.grace >= floor,
        "orphan collection needs a grace period of at least {} s (OBHUT_ORPHAN_GRACE_MS is {} ms){}",
        floor.as_secs(),
        orphans.grace.as_millis(),
        if testing {
            ""
        } else {
            "; shorter ones are for tests only (OBHUT_TEST_SHORT_ORPHAN_GRACE=1)"
        }
    );
    anyhow::ensure!(
        !orphans.every.is_zero(),
        "orphan collection needs an interval above zero (OBHUT_ORPHAN_EVERY_MS)"
    );
    Ok(())
}

/// The shortest grace period of orphan collection allowed in production: longer than any
/// write takes from its replicas to its commit, pauses and retries included.
const MIN_ORPHAN_GRACE: Duration = Duration::from_secs(600);

/// The shortest allowed with `OBHUT_TEST_SHORT_ORPHAN_GRACE=1`, for tests that watch orphans
/// go.
const MIN_TEST_ORPHAN_GRACE: Duration = Duration::from_secs(1);

/// A duration in milliseconds from the environment variable `name`, if set.
fn env_ms(name: &str) -> Result<Option<Duration>> {
    match std::env::var(name) {
        Ok(v) => {
            let n: u64 = v
                .parse()
                .with_context(|| format!("{name} must be a number of milliseconds"))?;
            Ok(Some(Duration::from_millis(n)))
        }
        Err(_) => Ok(None),
    }
}

/// The lease's timing: 15 s, renewed every 5 s, unless `OBHUT_LEASE_TTL_MS` and
/// `OBHUT_LEASE_RENEW_MS` say otherwise (tests shorten it). The renewal must come well within
/// the lease's life.
fn lease_timing() -> Result<LeaseTiming> {
    let ms = |name: &str| -> Result<Option<std::time::Duration>> {
        match std::env::var(name) {
            Ok(v) => {
                let n: u64 = v
                    .parse()
                    .with_context(|| format!("{name} must be a number of milliseconds"))?;
                Ok(Some(std::time::Duration::from_millis(n)))
            }
            Err(_) => Ok(None),
        }
    };
    let default = LeaseTiming::default();
    let timing = LeaseTiming {
        ttl: ms("OBHUT_LEASE_TTL_MS")?.unwrap_or(default.ttl),
        renew: ms("OBHUT_LEASE_RENEW_MS")?.unwrap_or(default.renew),
    };
    anyhow::ensure!(
        !timing.renew.is_zero() && timing.renew * 2 <= timing.ttl,
        "the lease on background work must be renewed at least twice in its life ({} ms renewal, {} ms lease)",
        timing.renew.as_millis(),
        timing.ttl.as_millis()
    );
    Ok(timing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collection(grace_ms: u64, every_ms: u64) -> OrphanCollection {
        OrphanCollection {
            grace: Duration::from_millis(grace_ms),
            every: Duration::from_millis(every_ms),
            retention: Duration::ZERO,
        }
    }

    #[test]
    fn a_grace_below_ten_minutes_is_refused_outside_tests() {
        for ms in [0, 1000, 599_999] {
            let e = check_orphan_collection(&collection(ms, 1000), false).unwrap_err();
            let text = e.to_string();
            assert!(
                text.contains("at least 600 s") && text.contains("OBHUT_TEST_SHORT_ORPHAN_GRACE"),
                "{text}"
            );
        }
        assert!(check_orphan_collection(&collection(600_000, 1000), false).is_ok());
        assert!(check_orphan_collection(&OrphanCollection::default(), false).is_ok());
    }

    #[test]
    fn tests_may_shorten_the_grace_to_a_second_and_no_further() {
        assert!(check_orphan_collection(&collection(1000, 500), true).is_ok());
        let e = check_orphan_collection(&collection(999, 500), true).unwrap_err();
        assert!(e.to_string().contains("at least 1 s"), "{e}");
        let e = check_orphan_collection(&collection(1000, 0), true).unwrap_err();
        assert!(e.to_string().contains("OBHUT_ORPHAN_EVERY_MS"), "{e}");
    }

    #[test]
    fn removed_blobs_are_kept_eight_days_by_default() {
        assert_eq!(
            OrphanCollection::default().retention,
            Duration::from_secs(8 * 24 * 3600)
        );
    }
}
