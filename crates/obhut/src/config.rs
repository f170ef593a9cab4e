//! `serve` settings: defaults from the interface contract, then the TOML file, then flags.

use crate::ServeArgs;
use crate::tls::TlsFiles;
use anyhow::{Context, Result};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    s3_addr: Option<String>,
    admin_addr: Option<String>,
    region: Option<String>,
    log: Option<String>,
    log_format: Option<crate::common::LogFormat>,
    access_log: Option<bool>,
    metrics: Option<bool>,
    metrics_history_interval_secs: Option<u64>,
    key_cache_ttl_secs: Option<u64>,
    shred_grace_secs: Option<u64>,
    max_retention_days: Option<u64>,
    scrub_bytes_per_sec: Option<u64>,
    scrub_interval_secs: Option<u64>,
    lifecycle_day_secs: Option<u64>,
    lifecycle_interval_secs: Option<u64>,
    header_read_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    s3_tls_cert: Option<PathBuf>,
    s3_tls_key: Option<PathBuf>,
    admin_tls_cert: Option<PathBuf>,
    admin_tls_key: Option<PathBuf>,
    tls_ca_bundle: Option<PathBuf>,
    pkcs11: Option<Pkcs11Config>,
    catalog: Option<String>,
    catalog_password_file: Option<PathBuf>,
}

/// How fast the scrubber reads replicas, by default (0 turns it off).
pub const DEFAULT_SCRUB_BYTES_PER_SEC: u64 = 16 * 1024 * 1024;
/// The pause between two scrubbing passes, by default.
pub const DEFAULT_SCRUB_INTERVAL_SECS: u64 = 3600;

/// Tenant keys in a PKCS#11 token instead of the sealed keystore file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Config {
    /// Path of the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so.
    pub module: PathBuf,
    /// Label of the token.
    pub token: String,
    /// Development only: a file (mode 0600) holding the user PIN, used to log in at start.
    /// Without it the trustee starts sealed and an officer gives the PIN with
    /// `obhut trustee unseal`.
    pub pin_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub s3_addr: String,
    pub admin_addr: String,
    pub region: String,
    /// tracing filter, e.g. `info` or `obhut=debug`.
    pub log: String,
    pub log_format: crate::common::LogFormat,
    /// One line per S3 request (config `access_log`, default false).
    pub access_log: bool,
    /// Whether metrics are recorded and `/metrics` served (config `metrics`, default true).
    pub metrics: bool,
    /// How often the history behind the operator's charts is sampled (config
    /// `metrics_history_interval_secs`, default 10; an hour of it is kept).
    pub metrics_history_interval: Duration,
    /// How long a gateway keeps a released bucket key in memory.
    pub key_cache_ttl: Duration,
    /// Time between disabling a tenant key (crypto-shred) and destroying it.
    pub shred_grace: Duration,
    /// The longest object lock retention the trustee seals, from the moment it seals it
    /// (config `max_retention_days`, default 36525: 100 years).
    pub max_retention: Duration,
    /// Scrubbing: bytes of replicas read per second (0: off), and the pause between passes.
    pub scrub_bytes_per_sec: u64,
    pub scrub_interval: Duration,
    /// The length of a lifecycle day (S3's is 24 hours) and the pause between lifecycle runs,
    /// if configured (`lifecycle_day_secs`, `lifecycle_interval_secs`).
    pub lifecycle_day: Option<Duration>,
    pub lifecycle_every: Option<Duration>,
    /// Both listeners' header-read and idle timeouts and connection cap.
    pub limits: obhut_listen::Limits,
    /// TLS on the S3 and on the admin listener (`None`: plain HTTP).
    pub s3_tls: Option<TlsFiles>,
    pub admin_tls: Option<TlsFiles>,
    /// The CA certificates clients of the TLS listeners are told to trust (`AWS_CA_BUNDLE` in
    /// `demo.env`, `OBHUT_CA_BUNDLE` in `dev-tokens.env`), absolute.
    pub tls_ca_bundle: Option<PathBuf>,
    pub pkcs11: Option<Pkcs11Config>,
    /// The catalog on PostgreSQL (`None`: `catalog.db` in the data directory), and the file
    /// holding its password.
    pub catalog: Option<String>,
    pub catalog_password_file: Option<PathBuf>,
}

impl ServeConfig {
    pub fn resolve(args: &ServeArgs) -> Result<Self> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("invalid config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let s3_tls = TlsFiles::pair(
            "s3",
            args.s3_tls_cert.clone().or(file.s3_tls_cert),
            args.s3_tls_key.clone().or(file.s3_tls_key),
        )?;
        let admin_tls = TlsFiles::pair(
            "admin",
            args.admin_tls_cert.clone().or(file.admin_tls_cert),
            args.admin_tls_key.clone().or(file.admin_tls_key),
        )?;
        let tls_ca_bundle = ca_bundle(
            args.tls_ca_bundle.clone().or(file.tls_ca_bundle),
            s3_tls.is_some() || admin_tls.is_some(),
        )?;
        Ok(Self {
            data_dir: args
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("obhut-data")),
            s3_addr: args
                .s3_addr
                .clone()
                .or(file.s3_addr)
                .unwrap_or_else(|| "127.0.0.1:9000".into()),
            admin_addr: args
                .admin_addr
                .clone()
                .or(file.admin_addr)
                .unwrap_or_else(|| "127.0.0.1:9001".into()),
            region: file.region.unwrap_or_else(|| "de-1".into()),
            log: file.log.unwrap_or_else(|| "info".into()),
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            access_log: file.access_log.unwrap_or(false),
            metrics: file.metrics.unwrap_or(true),
            metrics_history_interval: history_interval(file.metrics_history_interval_secs)?,
            key_cache_ttl: Duration::from_secs(file.key_cache_ttl_secs.unwrap_or(300)),
            shred_grace: Duration::from_secs(file.shred_grace_secs.unwrap_or(7 * 24 * 3600)),
            max_retention: retention_days(file.max_retention_days)?,
            scrub_bytes_per_sec: file
                .scrub_bytes_per_sec
                .unwrap_or(DEFAULT_SCRUB_BYTES_PER_SEC),
            scrub_interval: Duration::from_secs(
                file.scrub_interval_secs
                    .unwrap_or(DEFAULT_SCRUB_INTERVAL_SECS),
            ),
            lifecycle_day: file.lifecycle_day_secs.map(Duration::from_secs),
            lifecycle_every: file.lifecycle_interval_secs.map(Duration::from_secs),
            limits: obhut_listen::Limits::from_config(
                file.header_read_timeout_secs,
                file.idle_timeout_secs,
                file.max_connections,
            )?,
            s3_tls,
            admin_tls,
            tls_ca_bundle,
            pkcs11: file.pkcs11,
            catalog: args.catalog.catalog.clone().or(file.catalog),
            catalog_password_file: args
                .catalog
                .catalog_password_file
                .clone()
                .or(file.catalog_password_file),
        })
    }
}

/// The CA bundle named for clients, made absolute (clients run from other directories); only
/// meaningful beside a TLS listener.
fn ca_bundle(path: Option<PathBuf>, any_tls: bool) -> Result<Option<PathBuf>> {
    let Some(path) = path else {
        return Ok(None);
    };
    if !any_tls {
        anyhow::bail!(
            "tls_ca_bundle is for the clients of a TLS listener, and neither listener has TLS: set s3_tls_cert and s3_tls_key, or admin_tls_cert and admin_tls_key"
        );
    }
    let absolute = std::fs::canonicalize(&path)
        .with_context(|| format!("cannot read tls_ca_bundle {}", path.display()))?;
    Ok(Some(absolute))
}

/// The sampling interval of the metrics history: `secs` (1 to 3600), or the default.
pub(crate) fn history_interval(secs: Option<u64>) -> Result<Duration> {
    match secs {
        None => Ok(obhut_metrics::history::DEFAULT_INTERVAL),
        Some(s @ 1..=3600) => Ok(Duration::from_secs(s)),
        Some(s) => anyhow::bail!("metrics_history_interval_secs = {s}: give 1 to 3600 seconds"),
    }
}

/// `max_retention_days` as a duration: at least one day, at most the default (100 years).
pub fn retention_days(days: Option<u64>) -> anyhow::Result<Duration> {
    let most = u64::try_from(obhut_trustee_client::object_lock::DEFAULT_MAX_RETENTION_DAYS)
        .unwrap_or(36_525);
    let days = days.unwrap_or(most);
    if days == 0 || days > most {
        anyhow::bail!("max_retention_days must be between 1 and {most}, not {days}");
    }
    Ok(Duration::from_secs(days * 86_400))
}

#[cfg(test)]
mod tests {
    use super::retention_days;
    use std::time::Duration;

    #[test]
    fn the_longest_retention_is_one_day_to_100_years() {
        assert_eq!(
            retention_days(None).unwrap(),
            Duration::from_secs(36_525 * 86_400)
        );
        assert_eq!(
            retention_days(Some(1)).unwrap(),
            Duration::from_secs(86_400)
        );
        for wrong in [0, 36_526] {
            let e = retention_days(Some(wrong)).unwrap_err().to_string();
            assert!(e.contains("max_retention_days"), "{e}");
        }
    }
}
