//! A listener's server certificate, read from a PEM certificate chain and a PEM private key,
//! and read again on demand (the binary does so on SIGHUP) without dropping the listener or
//! its connections: new handshakes get the new certificate, connections already up keep the
//! one they were made with. A new pair that cannot be used (unreadable, not PEM, key and
//! certificate that do not fit, a key file others can read) is refused and the previous one
//! stays.
//!
//! TLS 1.2 and 1.3 only, HTTP/1.1 by ALPN, rustls on aws-lc-rs. It never logs key material;
//! a certificate is named by its files and the SHA-256 fingerprint of its leaf.

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

/// Why a certificate and key cannot be served; one line naming the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the TLS private key file {path} is readable by others (mode {mode:o}): make it its owner's alone (chmod 600)"
    )]
    KeyMode { path: PathBuf, mode: u32 },
    #[error("the TLS {what} {path} is unusable: {why}")]
    Unusable {
        what: &'static str,
        path: PathBuf,
        why: String,
    },
    #[error("the TLS certificate {cert} and private key {key} do not fit together: {why}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        why: String,
    },
}

/// The provider of every listener: aws-lc-rs (never ring).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A certificate chain and its key, as files, and the pair read from them last.
pub struct ServerCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    fingerprint: RwLock<String>,
}

impl fmt::Debug for ServerCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCert")
            .field("cert", &self.cert_path)
            .field("key", &self.key_path)
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl ServerCert {
    /// Reads `cert` (PEM chain, leaf first) and `key` (PEM private key, mode 0600 or
    /// narrower).
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Self>, TlsError> {
        let (pair, fingerprint) = read_pair(cert, key)?;
        Ok(Arc::new(Self {
            cert_path: cert.to_path_buf(),
            key_path: key.to_path_buf(),
            current: RwLock::new(pair),
            fingerprint: RwLock::new(fingerprint),
        }))
    }

    /// Reads the files again. On success new handshakes present the new pair; on error the
    /// previous pair stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let (pair, fingerprint) = read_pair(&self.cert_path, &self.key_path)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = pair;
        *self
            .fingerprint
            .write()
            .unwrap_or_else(PoisonError::into_inner) = fingerprint;
        Ok(())
    }

    /// The certificate chain file.
    #[must_use]
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// The private key file.
    #[must_use]
    pub fn key_path(&self) -> &Path {
        &self.key_path
    }

    /// SHA-256 of the leaf certificate being presented (DER), lowercase hex.
    #[must_use]
    pub fn fingerprint(&self) -> String {
        self.fingerprint
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The settings of a listener presenting this certificate: TLS 1.2 and 1.3, no client
    /// certificates, HTTP/1.1 by ALPN.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Unusable {
                what: "settings",
                path: self.cert_path.clone(),
                why: e.to_string(),
            })?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ServerCert {
    /// The settings of a listener presenting this certificate only to clients whose
    /// certificate `verifier` accepts (mutual TLS): TLS 1.3 only, HTTP/1.1 by ALPN.
    pub fn mutual_tls_config(
        self: &Arc<Self>,
        verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    ) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Unusable {
                what: "settings",
                path: self.cert_path.clone(),
                why: e.to_string(),
            })?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(PoisonError::into_inner),
        ))
    }
}

/// The key file must be its owner's alone, as every secret file obhut reads.
fn check_key_mode(path: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| TlsError::Read {
        what: "private key",
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TlsError::KeyMode {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

fn read_pair(cert: &Path, key: &Path) -> Result<(Arc<CertifiedKey>, String), TlsError> {
    let read = |what, path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            what,
            path: path.to_path_buf(),
            source,
        })
    };
    let unusable = |what, path: &Path, why: String| TlsError::Unusable {
        what,
        path: path.to_path_buf(),
        why,
    };
    check_key_mode(key)?;
    let cert_pem = read("certificate", cert)?;
    let key_pem = read("private key", key)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            unusable(
                "certificate",
                cert,
                format!("not a PEM certificate file ({e})"),
            )
        })?;
    let Some(leaf) = chain.first() else {
        return Err(unusable("certificate", cert, "no certificate in it".into()));
    };
    let fingerprint = hex(&Sha256::digest(leaf.as_ref()));
    let der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        unusable(
            "private key",
            key,
            format!("not a PEM private key file ({e})"),
        )
    })?;
    let signing = provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| unusable("private key", key, format!("not a usable key ({e})")))?;
    let pair = CertifiedKey::new(chain, signing);
    match pair.keys_match() {
        // A key whose public half cannot be derived is checked by the handshake itself.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(_)) => {
            return Err(TlsError::Mismatch {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
                why: "the leaf certificate names another public key".into(),
            });
        }
        Err(e) => {
            return Err(unusable(
                "certificate",
                cert,
                format!("not a usable X.509 certificate ({e})"),
            ));
        }
    }
    Ok((Arc::new(pair), fingerprint))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    pub(crate) fn write_pair(dir: &Path, name: &str, mode: u32) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let cert_path = dir.join(format!("{name}.crt"));
        let key_path = dir.join(format!("{name}.key"));
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        (cert_path, key_path)
    }

    #[test]
    fn a_key_file_others_can_read_is_refused_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = write_pair(dir.path(), "wide", 0o644);
        let e = ServerCert::load(&cert, &key).expect_err("a 0644 key must be refused");
        let line = e.to_string();
        assert!(matches!(e, TlsError::KeyMode { mode: 0o644, .. }), "{line}");
        assert!(line.contains(&key.display().to_string()), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }

    #[test]
    fn a_failed_reload_keeps_the_previous_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = write_pair(dir.path(), "a", 0o600);
        let served = ServerCert::load(&cert, &key).expect("load");
        let before = served.fingerprint();
        std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nbroken\n").expect("break cert");
        let e = served
            .reload()
            .expect_err("a broken certificate must be refused");
        assert!(e.to_string().contains(&cert.display().to_string()), "{e}");
        assert_eq!(served.fingerprint(), before);

        // A certificate that does not fit the key is refused too.
        let (other_cert, _) = write_pair(dir.path(), "b", 0o600);
        std::fs::copy(&other_cert, &cert).expect("copy");
        assert!(matches!(served.reload(), Err(TlsError::Mismatch { .. })));
        assert_eq!(served.fingerprint(), before);
    }

    #[test]
    fn a_reload_presents_the_new_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = write_pair(dir.path(), "a", 0o600);
        let served = ServerCert::load(&cert, &key).expect("load");
        let before = served.fingerprint();
        let (new_cert, new_key) = write_pair(dir.path(), "b", 0o600);
        std::fs::rename(&new_cert, &cert).expect("rename");
        std::fs::rename(&new_key, &key).expect("rename");
        served.reload().expect("reload");
        assert_ne!(served.fingerprint(), before);
    }
}
