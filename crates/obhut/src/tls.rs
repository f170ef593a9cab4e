//! TLS on the S3 and admin listeners, as `serve` and `gateway` configure it (and the certificate
//! of `obhut trustee`'s API listener, read again on SIGHUP the same way): each listener's
//! certificate chain and private key (`s3_tls_cert`/`s3_tls_key`,
//! `admin_tls_cert`/`admin_tls_key`, both of a pair or neither; none: plain HTTP), read at
//! start (an unusable pair stops the start with one line naming the file) and again on SIGHUP,
//! which keeps the listeners and their connections; a pair that cannot be used then is logged
//! as one error line and the previous certificate stays.
//!
//! It sees certificate and key files only; the handshake is `obhut_listen`'s.

use anyhow::{Result, bail};
use obhut_listen::tls::ServerCert;
use std::path::PathBuf;
use std::sync::Arc;

/// One listener's certificate chain and key files.
#[derive(Debug, Clone)]
pub(crate) struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// The pair of `listener` (`s3` or `admin`), if configured.
    pub(crate) fn pair(
        listener: &str,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> Result<Option<Self>> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(Self { cert, key })),
            (None, None) => Ok(None),
            _ => bail!(
                "{listener}_tls_cert and {listener}_tls_key (--{listener}-tls-cert, --{listener}-tls-key) go together: set both (TLS on the {listener} listener) or neither (plain HTTP)"
            ),
        }
    }

    /// Reads and checks the pair.
    pub(crate) fn load(&self) -> Result<Arc<ServerCert>> {
        Ok(ServerCert::load(&self.cert, &self.key)?)
    }
}

/// The listeners' certificates, read at start.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListenerCerts {
    pub s3: Option<Arc<ServerCert>>,
    pub admin: Option<Arc<ServerCert>>,
    /// `obhut trustee`'s API listener.
    pub trustee: Option<Arc<ServerCert>>,
}

impl ListenerCerts {
    pub(crate) fn load(s3: Option<&TlsFiles>, admin: Option<&TlsFiles>) -> Result<Self> {
        Ok(Self {
            s3: s3.map(TlsFiles::load).transpose()?,
            admin: admin.map(TlsFiles::load).transpose()?,
            trustee: None,
        })
    }

    fn named(&self) -> Vec<(&'static str, Arc<ServerCert>)> {
        [
            ("S3", &self.s3),
            ("admin", &self.admin),
            ("trustee API", &self.trustee),
        ]
        .into_iter()
        .filter_map(|(name, cert)| cert.as_ref().map(|c| (name, Arc::clone(c))))
        .collect()
    }

    /// Logs which listeners serve TLS with which certificate.
    pub(crate) fn log_serving(&self) {
        for (listener, cert) in self.named() {
            tracing::info!(
                listener,
                cert = %cert.cert_path().display(),
                sha256 = %cert.fingerprint(),
                "TLS certificate in use (SIGHUP reads it again)"
            );
        }
    }

    /// With at least one TLS listener: reads every certificate again on each SIGHUP. Without,
    /// SIGHUP keeps its default (it ends the process, as before TLS existed).
    pub(crate) fn reload_on_sighup(&self) {
        let certs = self.named();
        if certs.is_empty() {
            return;
        }
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot watch for SIGHUP: TLS certificates are read at start only");
                return;
            }
        };
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                for (listener, cert) in &certs {
                    reload(listener, cert);
                }
            }
        });
    }
}

fn reload(listener: &str, cert: &ServerCert) {
    let before = cert.fingerprint();
    match cert.reload() {
        Ok(()) if cert.fingerprint() == before => tracing::info!(
            listener,
            cert = %cert.cert_path().display(),
            sha256 = %before,
            "SIGHUP: TLS certificate read again, unchanged"
        ),
        Ok(()) => tracing::info!(
            listener,
            cert = %cert.cert_path().display(),
            sha256 = %cert.fingerprint(),
            previous = %before,
            "SIGHUP: new TLS certificate in use for new connections"
        ),
        Err(e) => tracing::error!(
            listener,
            sha256 = %before,
            "SIGHUP: {e}; the previous TLS certificate stays in use"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_without_its_key_is_refused() {
        let e = TlsFiles::pair("s3", Some("c.pem".into()), None).expect_err("half a pair");
        assert!(e.to_string().contains("s3_tls_key"), "{e}");
        assert!(TlsFiles::pair("admin", None, None).expect("none").is_none());
    }
}
