//! A trustee in another process (`obhut trustee`), reached over its API in mutual TLS.
//!
//! [`RemoteTrustee`] implements [`TrusteeClient`], so a gateway or the admin API cannot tell it
//! from the in-process trustee of `obhut serve`. The wire protocol is in [`wire`] and is shared
//! with the server (`obhut_trustee::server`), so both ends map it the same way.
//!
//! # Why mutual TLS
//! - **Both ends authenticate.** The trustee answers only clients whose certificate its private
//!   CA signed (gateways), and a gateway talks only to the server whose certificate that CA
//!   signed, so it neither hands justifications nor trusts released keys from anyone else.
//! - **Bucket keys are confidential in transit.** A released bucket key is plaintext inside the
//!   protocol; TLS 1.3 (forward secrecy, hybrid post-quantum key exchange preferred) protects it
//!   on the wire.
//! - **No shared secret to leak.** There is no bearer token or HMAC key that could end up in a
//!   log, a process listing or a config dump: each side holds only its own private key, and the
//!   trustee holds no gateway secret at all.
//!
//! Only certificates of obhut's own CA are trusted (never the system roots); only TLS 1.3 is
//! spoken; rustls runs on aws-lc-rs, the same crypto library as the data path.
//!
//! # Failures
//! Every call has a connect timeout and a request timeout ([`CONNECT_TIMEOUT`],
//! [`REQUEST_TIMEOUT`]); a trustee that cannot be reached, refuses the TLS handshake or answers
//! something unreadable becomes [`TrusteeError::Unavailable`] naming its URL. Errors the trustee
//! itself reports arrive as the same [`TrusteeError`] variant with the same text.
//!
//! # Revocations and their worst-case delay
//! A background task long-polls `GET /v1/revocations?after=SEQ`; the trustee holds the request
//! up to [`LONG_POLL_HOLD`] and answers as soon as a revocation happens, so while the trustee
//! is reachable a revocation reaches the gateway within one network round trip.
//!
//! The task sends [`Revocation::All`] (every cached key is dropped):
//! - when the stream is (re)established without continuity: at the first contact, when the
//!   trustee restarted (its instance id changed), or when it no longer holds the events after
//!   our sequence number (it answers `{"reset": true}`);
//! - when the trustee stops answering (two failed polls in a row). While it is unreachable no
//!   key can be released again, so the gateway fails closed: requests that need a key answer
//!   503 until the trustee is back.
//!
//! Worst case, then: one long-poll round trip while the trustee is up; a refused connection
//! (trustee process gone) is noticed at once; a silent network partition is noticed after at
//! most one poll timeout (35 s) plus one retry's connect timeout (5 s), about 40 s. In every case
//! `key_cache_ttl` bounds it: a cached key expires and cannot be re-released while the trustee
//! is unreachable.

use crate::{
    GrantAccess, GrantScope, IntegrityAlarm, Justification, LogRead, PrincipalInfo, Query,
    Revocation, SealStatus, SignedStatement, TenantKeyStatus, TrusteeClient, TrusteeError,
    WrappedKey,
};
use async_trait::async_trait;
use obhut_core::TenantResidency;
use obhut_crypto::Key;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use zeroize::Zeroize;

/// Time allowed to open a TCP connection and complete the TLS handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for any one call (except the revocation long-poll).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle connection to the trustee is kept for the next request: less than the
/// trustee API's header-read timeout (30 s by default), which closes a connection left waiting
/// that long, so that a request is not sent on a connection being closed.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the trustee holds a revocation long-poll open when nothing happens.
pub const LONG_POLL_HOLD: Duration = Duration::from_secs(25);
/// The client's limit for one long-poll: the hold plus a margin.
const LONG_POLL_TIMEOUT: Duration = Duration::from_secs(35);

/// The trustee API's messages and error mapping, used by both the client and the server.
pub mod wire {
    use crate::object_keys::{ObjectKeyOp, ObjectKeyOutcome, ObjectName, SealedObjectKey};
    use crate::{Justification, Revocation, TrusteeError, WrappedKey};
    use obhut_crypto::{KCV_LEN, Key};
    use serde::{Deserialize, Serialize};

    /// `Vec<u8>` as standard base64 in JSON.
    pub mod b64 {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&base64_simd::STANDARD.encode_to_string(bytes))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
            let text = String::deserialize(d)?;
            base64_simd::STANDARD
                .decode_to_vec(text.as_bytes())
                .map_err(|_| serde::de::Error::custom("invalid base64"))
        }
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct TenantRequest {
        pub tenant: String,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct QueryRequest {
        pub principal: String,
        pub query: crate::Query,
    }

    /// `/v1/gov/authenticate`: the SHA-256 of a principal's bearer.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct BearerRequest {
        pub bearer_hash: String,
    }

    /// `/v1/gov/site-secret/seal` (a site's secret) and `/open` (it sealed); wiped when
    /// dropped.
    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SiteSecretRequest {
        pub site: String,
        pub value: String,
    }

    impl Drop for SiteSecretRequest {
        fn drop(&mut self) {
            zeroize::Zeroize::zeroize(&mut self.value);
        }
    }

    /// `/v1/gov/attest`: a report's kind, its tenant (or all), its hex SHA-256.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct AttestRequest {
        pub kind: String,
        pub tenant: Option<String>,
        pub digest: String,
    }

    /// Bytes of the log (checkpoint, key, tile) in base64; `None` if they do not exist.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct LogBytes {
        pub data: Option<String>,
    }

    /// One unseal share, encrypted to the trustee's unseal key. A share in clear (`share`) is
    /// read only to be refused by name; its text is wiped when dropped.
    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct UnsealRequest {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub share: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub sealed: Option<crate::SealedShare>,
    }

    impl Drop for UnsealRequest {
        fn drop(&mut self) {
            if let Some(s) = &mut self.share {
                zeroize::Zeroize::zeroize(s);
            }
        }
    }

    /// What a share in clear is answered with.
    pub const CLEAR_SHARE_REFUSED: &str = "an unseal share or PIN in clear is refused: it is encrypted on the officer's machine to the trustee's unseal key (`obhut trustee unseal` does this)";

    /// A wrapped bucket key on the wire (bytes in base64).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Wrapped {
        pub version: u32,
        #[serde(with = "b64")]
        pub wrapped: Vec<u8>,
        #[serde(with = "b64")]
        pub kcv: Vec<u8>,
    }

    impl From<&WrappedKey> for Wrapped {
        fn from(k: &WrappedKey) -> Self {
            Self {
                version: k.version,
                wrapped: k.wrapped.clone(),
                kcv: k.kcv.to_vec(),
            }
        }
    }

    impl TryFrom<Wrapped> for WrappedKey {
        type Error = String;
        fn try_from(w: Wrapped) -> Result<Self, String> {
            let kcv: [u8; KCV_LEN] = w
                .kcv
                .as_slice()
                .try_into()
                .map_err(|_| format!("a key-check value has {KCV_LEN} bytes"))?;
            Ok(Self {
                version: w.version,
                wrapped: w.wrapped,
                kcv,
            })
        }
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct CreateBucketKeyRequest {
        pub tenant: String,
        pub bucket: String,
        pub version: u32,
        pub why: Justification,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ReleaseBucketKeyRequest {
        pub tenant: String,
        pub bucket: String,
        pub key: Wrapped,
        pub why: Justification,
    }

    /// A released bucket key (base64 of its 32 bytes). Its text is wiped when dropped (HTTP
    /// and TLS buffers are not: wiping here is best effort).
    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ReleasedKey {
        pub key: String,
    }

    impl Drop for ReleasedKey {
        fn drop(&mut self) {
            zeroize::Zeroize::zeroize(&mut self.key);
        }
    }

    /// `/v1/object-keys`: object keys to open or wrap inside the trustee (per-object release).
    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ObjectKeysRequest {
        pub tenant: String,
        pub bucket: String,
        pub key: Wrapped,
        pub why: Justification,
        pub ops: Vec<ObjectKeyOpWire>,
    }

    /// An [`ObjectKeyOp`](crate::object_keys::ObjectKeyOp) on the wire: version ids and
    /// key-check values in hex, wrapped and plain keys in base64.
    #[derive(Serialize, Deserialize)]
    #[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
    pub enum ObjectKeyOpWire {
        Open {
            name: ObjectName,
            version_id: String,
            wrapped: String,
            kcv: String,
        },
        Etag {
            name: ObjectName,
            version_id: String,
            wrapped: String,
            kcv: String,
            etag: String,
        },
        Check {
            name: ObjectName,
            version_id: String,
            wrapped: String,
            kcv: String,
        },
        Wrap {
            name: ObjectName,
            version_id: String,
            key: String,
        },
    }

    impl Drop for ObjectKeyOpWire {
        fn drop(&mut self) {
            if let Self::Wrap { key, .. } = self {
                zeroize::Zeroize::zeroize(key);
            }
        }
    }

    /// The answer to one op, in order.
    #[derive(Serialize, Deserialize)]
    #[serde(tag = "outcome", rename_all = "snake_case", deny_unknown_fields)]
    pub enum ObjectKeyOutcomeWire {
        Key { key: String },
        Etag { etag: String },
        Checked,
        Wrapped { wrapped: String, kcv: String },
        Refused { reason: String },
    }

    impl Drop for ObjectKeyOutcomeWire {
        fn drop(&mut self) {
            if let Self::Key { key } = self {
                zeroize::Zeroize::zeroize(key);
            }
        }
    }

    /// `/v1/object-keys/rewrap`: keys (as `check` ops) to rewrap from one bucket key
    /// version to another inside the trustee.
    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RewrapRequest {
        pub tenant: String,
        pub bucket: String,
        pub from: Wrapped,
        pub to: Wrapped,
        pub why: Justification,
        pub keys: Vec<ObjectKeyOpWire>,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ObjectKeysAnswer {
        pub outcomes: Vec<ObjectKeyOutcomeWire>,
    }

    fn b64(bytes: &[u8]) -> String {
        base64_simd::STANDARD.encode_to_string(bytes)
    }

    fn hex(bytes: &[u8]) -> String {
        hex_simd::encode_to_string(bytes, hex_simd::AsciiCase::Lower)
    }

    fn unb64(text: &str, what: &str) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
        base64_simd::STANDARD
            .decode_to_vec(text.as_bytes())
            .map(zeroize::Zeroizing::new)
            .map_err(|_| format!("{what} is not base64"))
    }

    fn unhex<const N: usize>(text: &str, what: &str) -> Result<[u8; N], String> {
        hex_simd::decode_to_vec(text.as_bytes())
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| format!("{what} must be {N} bytes in hex"))
    }

    fn key_of(text: &str, what: &str) -> Result<Key, String> {
        Key::from_slice(&unb64(text, what)?).map_err(|e| format!("{what}: {e}"))
    }

    fn sealed(
        name: &ObjectName,
        version_id: &str,
        wrapped: &str,
        kcv: &str,
    ) -> Result<SealedObjectKey, String> {
        Ok(SealedObjectKey {
            name: name.clone(),
            version_id: unhex(version_id, "version_id")?,
            wrapped: unb64(wrapped, "wrapped")?.to_vec(),
            kcv: unhex(kcv, "kcv")?,
        })
    }

    impl ObjectKeyOpWire {
        #[must_use]
        pub fn from_op(op: &ObjectKeyOp) -> Self {
            let parts = |s: &SealedObjectKey| {
                (
                    s.name.clone(),
                    hex(&s.version_id),
                    b64(&s.wrapped),
                    hex(&s.kcv),
                )
            };
            match op {
                ObjectKeyOp::Open(s) => {
                    let (name, version_id, wrapped, kcv) = parts(s);
                    Self::Open {
                        name,
                        version_id,
                        wrapped,
                        kcv,
                    }
                }
                ObjectKeyOp::Etag(s, etag) => {
                    let (name, version_id, wrapped, kcv) = parts(s);
                    Self::Etag {
                        name,
                        version_id,
                        wrapped,
                        kcv,
                        etag: etag.clone(),
                    }
                }
                ObjectKeyOp::Check(s) => {
                    let (name, version_id, wrapped, kcv) = parts(s);
                    Self::Check {
                        name,
                        version_id,
                        wrapped,
                        kcv,
                    }
                }
                ObjectKeyOp::Wrap {
                    name,
                    version_id,
                    key,
                } => Self::Wrap {
                    name: name.clone(),
                    version_id: hex(version_id),
                    key: b64(key.expose()),
                },
            }
        }

        /// The op, or why it is malformed.
        pub fn to_op(&self) -> Result<ObjectKeyOp, String> {
            Ok(match self {
                Self::Open {
                    name,
                    version_id,
                    wrapped,
                    kcv,
                } => ObjectKeyOp::Open(sealed(name, version_id, wrapped, kcv)?),
                Self::Etag {
                    name,
                    version_id,
                    wrapped,
                    kcv,
                    etag,
                } => ObjectKeyOp::Etag(sealed(name, version_id, wrapped, kcv)?, etag.clone()),
                Self::Check {
                    name,
                    version_id,
                    wrapped,
                    kcv,
                } => ObjectKeyOp::Check(sealed(name, version_id, wrapped, kcv)?),
                Self::Wrap {
                    name,
                    version_id,
                    key,
                } => ObjectKeyOp::Wrap {
                    name: name.clone(),
                    version_id: unhex(version_id, "version_id")?,
                    key: key_of(key, "key")?,
                },
            })
        }
    }

    impl ObjectKeyOutcomeWire {
        #[must_use]
        pub fn from_outcome(o: &ObjectKeyOutcome) -> Self {
            match o {
                ObjectKeyOutcome::Key(k) => Self::Key {
                    key: b64(k.expose()),
                },
                ObjectKeyOutcome::Etag(e) => Self::Etag { etag: e.clone() },
                ObjectKeyOutcome::Checked => Self::Checked,
                ObjectKeyOutcome::Wrapped { wrapped, kcv } => Self::Wrapped {
                    wrapped: b64(wrapped),
                    kcv: hex(kcv),
                },
                ObjectKeyOutcome::Refused(r) => Self::Refused { reason: r.clone() },
            }
        }

        /// The outcome, or why it is malformed.
        pub fn to_outcome(&self) -> Result<ObjectKeyOutcome, String> {
            Ok(match self {
                Self::Key { key } => ObjectKeyOutcome::Key(key_of(key, "an object key")?),
                Self::Etag { etag } => ObjectKeyOutcome::Etag(etag.clone()),
                Self::Checked => ObjectKeyOutcome::Checked,
                Self::Wrapped { wrapped, kcv } => ObjectKeyOutcome::Wrapped {
                    wrapped: unb64(wrapped, "a wrapped key")?.to_vec(),
                    kcv: unhex(kcv, "kcv")?,
                },
                Self::Refused { reason } => ObjectKeyOutcome::Refused(reason.clone()),
            })
        }
    }

    /// `GET /v1/revocations` query: without `after`, the trustee answers at once with its
    /// instance and latest sequence number (the starting point of a stream).
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RevocationsQuery {
        pub after: Option<u64>,
        pub instance: Option<String>,
        /// Random per gateway process. Asking for events after `after` acknowledges that every
        /// event up to `after` was taken in; the trustee waits for these acknowledgements.
        #[serde(default)]
        pub client: Option<String>,
        /// A drill fault injector the gateway runs with
        /// ([`super::DRILL_FAULT_IGNORE_DISCONNECT`]), stated so that the trustee logs it:
        /// the gateway's acknowledgements of a disconnect do not count.
        #[serde(default)]
        pub fault: Option<String>,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RevocationEvent {
        pub seq: u64,
        pub revocation: Revocation,
        /// The index of the `trustee_disconnected` entry, for a revocation of every key that
        /// a disconnect pushed (the only revocation the drill fault injector ignores).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub disconnect: Option<u64>,
    }

    /// One long-poll answer. `reset` means the events after the client's sequence number are
    /// not known any more (too old, or the trustee restarted): the client must drop every key
    /// and continue from `last`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RevocationsPage {
        /// Random per trustee process start: sequence numbers are meaningful only within it.
        pub instance: String,
        #[serde(default)]
        pub reset: bool,
        #[serde(default)]
        pub events: Vec<RevocationEvent>,
        /// The latest sequence number the client has now seen.
        pub last: u64,
    }

    /// An error answer: `error` names the [`TrusteeError`] variant, `message` is its text, and
    /// the remaining fields carry the variant's data so the client rebuilds it exactly.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ErrorBody {
        pub error: String,
        pub message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub detail: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub shares_given: Option<u8>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub threshold: Option<u8>,
    }

    impl ErrorBody {
        /// A protocol-level error (bad request, unknown path) that is no [`TrusteeError`].
        #[must_use]
        pub fn other(error: &str, message: impl Into<String>) -> Self {
            Self {
                error: error.to_owned(),
                message: message.into(),
                detail: None,
                shares_given: None,
                threshold: None,
            }
        }
    }

    /// The HTTP status and body that carry `e`.
    #[must_use]
    pub fn error_to_wire(e: &TrusteeError) -> (u16, ErrorBody) {
        let (status, code, detail) = match e {
            TrusteeError::Sealed(given, threshold) => {
                return (
                    503,
                    ErrorBody {
                        shares_given: Some(*given),
                        threshold: Some(*threshold),
                        ..ErrorBody::other("sealed", e.to_string())
                    },
                );
            }
            TrusteeError::Unavailable(d) => (503, "unavailable", d),
            TrusteeError::Denied(d) => (403, "denied", d),
            TrusteeError::TenantKeyDisabled(d) => (403, "tenant_key_disabled", d),
            TrusteeError::TenantKeyDestroyed(d) => (410, "tenant_key_destroyed", d),
            TrusteeError::NoTenantKey(d) => (404, "no_tenant_key", d),
            TrusteeError::BadShare(d) => (400, "bad_share", d),
            TrusteeError::Integrity(d) => (422, "integrity", d),
            TrusteeError::Storage(d) => (500, "storage", d),
            TrusteeError::NotFound(d) => (404, "not_found", d),
            TrusteeError::Invalid(d) => (400, "invalid", d),
            TrusteeError::Conflict(d) => (409, "conflict", d),
            TrusteeError::ObjectKeysOnly(d) => (403, "object_keys_only", d),
            TrusteeError::Disconnected(d) => (503, "disconnected", d),
            TrusteeError::Unauthenticated(f) => {
                return (
                    403,
                    ErrorBody {
                        detail: Some(f.name().to_owned()),
                        ..ErrorBody::other("unauthenticated", e.to_string())
                    },
                );
            }
        };
        (
            status,
            ErrorBody {
                detail: Some(detail.clone()),
                ..ErrorBody::other(code, e.to_string())
            },
        )
    }

    /// The [`TrusteeError`] an error answer carries; `None` if it names no variant (then it
    /// is a protocol error, not the trustee's).
    #[must_use]
    pub fn error_from_wire(body: &ErrorBody) -> Option<TrusteeError> {
        let detail = || body.detail.clone().unwrap_or_default();
        Some(match body.error.as_str() {
            "sealed" => TrusteeError::Sealed(body.shares_given?, body.threshold?),
            "unavailable" => TrusteeError::Unavailable(detail()),
            "denied" => TrusteeError::Denied(detail()),
            "tenant_key_disabled" => TrusteeError::TenantKeyDisabled(detail()),
            "tenant_key_destroyed" => TrusteeError::TenantKeyDestroyed(detail()),
            "no_tenant_key" => TrusteeError::NoTenantKey(detail()),
            "bad_share" => TrusteeError::BadShare(detail()),
            "integrity" => TrusteeError::Integrity(detail()),
            "storage" => TrusteeError::Storage(detail()),
            "not_found" => TrusteeError::NotFound(detail()),
            "invalid" => TrusteeError::Invalid(detail()),
            "conflict" => TrusteeError::Conflict(detail()),
            "object_keys_only" => TrusteeError::ObjectKeysOnly(detail()),
            "disconnected" => TrusteeError::Disconnected(detail()),
            "unauthenticated" => TrusteeError::Unauthenticated(
                crate::auth::AuthFailure::from_name(body.detail.as_deref()?)?,
            ),
            _ => return None,
        })
    }
}

/// Certificates and keys in PEM, for both ends of the trustee API.
pub mod pem {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    /// Every certificate in `pem`; at least one.
    pub fn certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{what}: not a PEM certificate file ({e})"))?;
        if certs.is_empty() {
            return Err(format!("{what}: no certificate in it"));
        }
        Ok(certs)
    }

    /// The private key in `pem`.
    pub fn key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, String> {
        PrivateKeyDer::from_pem_slice(pem)
            .map_err(|e| format!("{what}: not a PEM private key file ({e})"))
    }

    /// A root store holding exactly the certificates in `ca_pem`.
    pub fn roots(ca_pem: &[u8], what: &str) -> Result<rustls::RootCertStore, String> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs(ca_pem, what)? {
            roots
                .add(cert)
                .map_err(|e| format!("{what}: unusable CA certificate ({e})"))?;
        }
        Ok(roots)
    }
}

/// The crypto provider of both ends: aws-lc-rs.
#[must_use]
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Makes aws-lc-rs the process's default rustls provider. Call it first thing in a binary:
/// reqwest is built without a provider of its own (so that ring is never pulled in), and a
/// `reqwest::Client` built without [`client_tls_config`] looks for the process default.
pub fn install_crypto_provider() {
    // Err means one is installed already, which is as good.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The gateway's TLS settings: trust only `ca_pem`, present `cert_pem`/`key_pem`, TLS 1.3.
pub fn client_tls_config(
    ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<rustls::ClientConfig, String> {
    let roots = pem::roots(ca_pem, "trustee CA certificate")?;
    let chain = pem::certs(cert_pem, "gateway certificate")?;
    let key = pem::key(key_pem, "gateway private key")?;
    rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("TLS settings: {e}"))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| format!("gateway certificate and key do not fit together: {e}"))
}

/// The HTTP client and the trustee's base URL.
#[derive(Clone)]
struct Conn {
    base: String,
    http: reqwest::Client,
}

/// The causes of a transport error on one line, without reqwest's "error sending request for
/// url (...)" wrapper.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "no answer in time".to_owned();
    }
    let mut parts: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

impl Conn {
    fn unavailable(&self, why: impl std::fmt::Display) -> TrusteeError {
        TrusteeError::Unavailable(format!("{}: {why}", self.base))
    }

    async fn call<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<R, TrusteeError> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(timeout);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| self.unavailable(describe(&e)))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| self.unavailable(describe(&e)))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| self.unavailable(format!("unreadable answer to {path}: {e}")));
        }
        match serde_json::from_slice::<wire::ErrorBody>(&bytes) {
            Ok(body) => Err(wire::error_from_wire(&body).unwrap_or_else(|| {
                self.unavailable(format!(
                    "HTTP {} to {path}: {}: {}",
                    status.as_u16(),
                    body.error,
                    body.message
                ))
            })),
            Err(_) => Err(self.unavailable(format!(
                "HTTP {} to {path}: {}",
                status.as_u16(),
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ))),
        }
    }

    async fn post<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<R, TrusteeError> {
        self.call(reqwest::Method::POST, path, Some(body), REQUEST_TIMEOUT)
            .await
    }
}

/// The trustee of another process, through its mutual-TLS API.
pub struct RemoteTrustee {
    conn: Conn,
    revocations: broadcast::Sender<Revocation>,
    poller: tokio::task::AbortHandle,
}

impl Drop for RemoteTrustee {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

impl RemoteTrustee {
    /// The outcomes of an object-key answer, one per operation asked, in order.
    fn outcomes(
        &self,
        answer: &wire::ObjectKeysAnswer,
        asked: usize,
    ) -> Result<Vec<crate::object_keys::ObjectKeyOutcome>, TrusteeError> {
        if answer.outcomes.len() != asked {
            return Err(self.conn.unavailable(format!(
                "{} answers to {asked} object-key operations",
                answer.outcomes.len()
            )));
        }
        answer
            .outcomes
            .iter()
            .map(|o| o.to_outcome().map_err(|e| self.conn.unavailable(e)))
            .collect()
    }

    /// A client of the trustee at `url` (`https://host:port`), trusting only `ca_pem` and
    /// presenting `client_cert_pem`/`client_key_pem`. It does not contact the trustee yet;
    /// it starts the revocation long-poll, so it must be called inside a tokio runtime.
    pub fn connect(
        url: &str,
        ca_pem: &[u8],
        client_cert_pem: &[u8],
        client_key_pem: &[u8],
    ) -> Result<Self, TrusteeError> {
        Self::connect_as(
            url,
            ca_pem,
            client_cert_pem,
            client_key_pem,
            &Follower::default(),
        )
    }

    /// [`Self::connect`], following revocations as `follower` says: under which name the
    /// gateway acknowledges them (the trustee logs acknowledgements of a disconnect by it),
    /// and whether the drill fault injector is on.
    pub fn connect_as(
        url: &str,
        ca_pem: &[u8],
        client_cert_pem: &[u8],
        client_key_pem: &[u8],
        follower: &Follower,
    ) -> Result<Self, TrusteeError> {
        let base = url.trim_end_matches('/').to_owned();
        let bad = |why: String| TrusteeError::Unavailable(format!("{base}: {why}"));
        if !base.starts_with("https://") {
            return Err(bad(
                "the trustee URL must start with https:// (its API is mutual TLS only)".into(),
            ));
        }
        let tls = client_tls_config(ca_pem, client_cert_pem, client_key_pem).map_err(bad)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .https_only(true)
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build()
            .map_err(|e| bad(describe(&e)))?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| bad("RemoteTrustee::connect needs a tokio runtime".into()))?;
        let conn = Conn { base, http };
        let (revocations, _) = broadcast::channel(64);
        let poller = runtime
            .spawn(follow_revocations(
                conn.clone(),
                revocations.clone(),
                follower.clone(),
            ))
            .abort_handle();
        Ok(Self {
            conn,
            revocations,
            poller,
        })
    }

    /// The trustee's base URL.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.conn.base
    }
}

/// The environment variable that turns on the disconnect drill's fault injector on a gateway
/// (`1`): its revocation follower ignores the revocation of every key that a disconnect
/// pushes, like a gateway cut off from the push or altered to ignore it. Every other
/// revocation (a tenant key disabled or destroyed, an access key or a grant revoked, a policy
/// changed, a seal or restart of the trustee seen as a reset) is obeyed as always. The drill
/// uses it to show that such a gateway holds keys no longer than `key_cache_ttl` and that the
/// trustee's log names it as missing. The gateway states it to the trustee with every
/// long-poll ([`DRILL_FAULT_IGNORE_DISCONNECT`]): the trustee counts none of its
/// acknowledgements of a disconnect and logs the fault in `gateway_ack_missing`. It weakens
/// nothing the provider could not do anyway (it runs the gateways), but it must never be set
/// outside a drill.
pub const DRILL_IGNORE_REVOCATIONS_ENV: &str = "OBHUT_DRILL_FAULT_IGNORE_REVOCATIONS";

/// The fault a gateway with [`DRILL_IGNORE_REVOCATIONS_ENV`] states in its long-polls.
pub const DRILL_FAULT_IGNORE_DISCONNECT: &str = "ignore-disconnect-revocations";

/// How a gateway follows the trustee's revocations.
#[derive(Debug, Clone, Default)]
pub struct Follower {
    /// The name the gateway acknowledges revocations under (e.g. its S3 address); a random
    /// suffix per process is added. Empty: the random part only.
    pub name: String,
    /// The drill fault injector ([`DRILL_IGNORE_REVOCATIONS_ENV`]): the revocations of every
    /// key that disconnects push are ignored.
    pub ignore_revocations: bool,
}

impl Follower {
    /// The `client` id sent with every long-poll: the name (characters outside
    /// `[A-Za-z0-9.:_-]` replaced by `_`, at most 64), `@`, and `random`.
    #[must_use]
    pub fn client_id(&self, random: &str) -> String {
        let name: String = self
            .name
            .chars()
            .take(64)
            .map(|c| {
                if c.is_ascii_alphanumeric() || ".:_-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if name.is_empty() {
            random.to_owned()
        } else {
            format!("{name}@{random}")
        }
    }
}

/// Long-polls the trustee's revocations and forwards them; see the module doc for when it
/// sends [`Revocation::All`].
async fn follow_revocations(conn: Conn, tx: broadcast::Sender<Revocation>, follower: Follower) {
    let mut id = [0u8; 8];
    let random = match obhut_crypto::random_bytes(&mut id) {
        Ok(()) => hex_simd::encode_to_string(id, hex_simd::AsciiCase::Lower),
        Err(_) => "unnamed".to_owned(),
    };
    let client = follower.client_id(&random);
    // Stated with every long-poll, so that the trustee logs it.
    let fault = if follower.ignore_revocations {
        tracing::warn!(
            env = DRILL_IGNORE_REVOCATIONS_ENV,
            "DRILL FAULT INJECTOR ON: this gateway ignores the revocation of every key a disconnect pushes (and tells the trustee so); its cached keys last until key_cache_ttl. Never set this outside a drill."
        );
        format!("&fault={DRILL_FAULT_IGNORE_DISCONNECT}")
    } else {
        String::new()
    };
    // (instance, last sequence number seen); None until the first answer.
    let mut cursor: Option<(String, u64)> = None;
    let mut failures: u32 = 0;
    let mut down = false;
    loop {
        let path = match &cursor {
            None => "/v1/revocations".to_owned(),
            Some((instance, last)) => {
                format!("/v1/revocations?after={last}&instance={instance}&client={client}{fault}")
            }
        };
        let result: Result<wire::RevocationsPage, TrusteeError> = conn
            .call::<(), _>(reqwest::Method::GET, &path, None, LONG_POLL_TIMEOUT)
            .await;
        match result {
            Ok(page) => {
                failures = 0;
                if down {
                    tracing::info!(trustee = %conn.base, "the trustee's revocation stream is back");
                    down = false;
                }
                if cursor.is_none() || page.reset {
                    // No continuity with what came before: keys released before now may have
                    // been revoked unseen.
                    if page.reset {
                        tracing::warn!(trustee = %conn.base, "revocation stream reset: dropping every cached key");
                    }
                    let _ = tx.send(Revocation::All);
                } else {
                    let after = cursor.as_ref().map_or(0, |c| c.1);
                    for event in page.events.into_iter().filter(|e| e.seq > after) {
                        if follower.ignore_revocations && event.disconnect.is_some() {
                            // The drill's rogue gateway: it keeps its keys until their TTL.
                            tracing::warn!(
                                disconnect = event.disconnect,
                                "drill fault injector: ignoring the revocation of every key the disconnect pushed"
                            );
                            continue;
                        }
                        let _ = tx.send(event.revocation);
                    }
                }
                cursor = Some((page.instance, page.last));
            }
            Err(e) => {
                failures += 1;
                // One failure may be a pooled connection closing under us: retry once at once.
                if failures >= 2 && !down {
                    tracing::warn!(error = %e, "lost the trustee's revocation stream: dropping every cached key until it is back");
                    let _ = tx.send(Revocation::All);
                    down = true;
                }
                let pause = match failures {
                    1 => Duration::from_millis(50),
                    2..=3 => Duration::from_millis(500),
                    _ => Duration::from_secs(2),
                };
                tokio::time::sleep(pause).await;
            }
        }
    }
}

#[async_trait]
impl TrusteeClient for RemoteTrustee {
    async fn ensure_tenant_key(&self, tenant: &str) -> Result<(), TrusteeError> {
        let _: serde_json::Value = self
            .conn
            .post(
                "/v1/tenant-keys/ensure",
                &wire::TenantRequest {
                    tenant: tenant.to_owned(),
                },
            )
            .await?;
        Ok(())
    }

    async fn create_bucket_key(
        &self,
        tenant: &str,
        bucket: &str,
        version: u32,
        why: &Justification,
    ) -> Result<WrappedKey, TrusteeError> {
        let w: wire::Wrapped = self
            .conn
            .post(
                "/v1/bucket-keys/create",
                &wire::CreateBucketKeyRequest {
                    tenant: tenant.to_owned(),
                    bucket: bucket.to_owned(),
                    version,
                    why: why.clone(),
                },
            )
            .await?;
        WrappedKey::try_from(w).map_err(|e| self.conn.unavailable(e))
    }

    async fn release_bucket_key(
        &self,
        tenant: &str,
        bucket: &str,
        key: &WrappedKey,
        why: &Justification,
    ) -> Result<Key, TrusteeError> {
        let released: wire::ReleasedKey = self
            .conn
            .post(
                "/v1/bucket-keys/release",
                &wire::ReleaseBucketKeyRequest {
                    tenant: tenant.to_owned(),
                    bucket: bucket.to_owned(),
                    key: key.into(),
                    why: why.clone(),
                },
            )
            .await?;
        let decoded = base64_simd::STANDARD.decode_to_vec(released.key.as_bytes());
        drop(released);
        let mut raw = decoded.map_err(|_| self.conn.unavailable("a released key is not base64"))?;
        let key = Key::from_slice(&raw);
        raw.zeroize();
        key.map_err(|e| {
            self.conn
                .unavailable(format!("a released key is malformed: {e}"))
        })
    }

    async fn object_keys(
        &self,
        tenant: &str,
        bucket: &str,
        bucket_key: &WrappedKey,
        why: &Justification,
        ops: Vec<crate::object_keys::ObjectKeyOp>,
    ) -> Result<Vec<crate::object_keys::ObjectKeyOutcome>, TrusteeError> {
        let count = ops.len();
        let answer: wire::ObjectKeysAnswer = self
            .conn
            .post(
                "/v1/object-keys",
                &wire::ObjectKeysRequest {
                    tenant: tenant.to_owned(),
                    bucket: bucket.to_owned(),
                    key: bucket_key.into(),
                    why: why.clone(),
                    ops: ops.iter().map(wire::ObjectKeyOpWire::from_op).collect(),
                },
            )
            .await?;
        self.outcomes(&answer, count)
    }

    async fn rewrap_object_keys(
        &self,
        tenant: &str,
        bucket: &str,
        from: &WrappedKey,
        to: &WrappedKey,
        why: &Justification,
        keys: Vec<crate::object_keys::SealedObjectKey>,
    ) -> Result<Vec<crate::object_keys::ObjectKeyOutcome>, TrusteeError> {
        let count = keys.len();
        let answer: wire::ObjectKeysAnswer = self
            .conn
            .post(
                "/v1/object-keys/rewrap",
                &wire::RewrapRequest {
                    tenant: tenant.to_owned(),
                    bucket: bucket.to_owned(),
                    from: from.into(),
                    to: to.into(),
                    why: why.clone(),
                    keys: keys
                        .into_iter()
                        .map(|k| {
                            wire::ObjectKeyOpWire::from_op(&crate::object_keys::ObjectKeyOp::Check(
                                k,
                            ))
                        })
                        .collect(),
                },
            )
            .await?;
        self.outcomes(&answer, count)
    }

    async fn seal_status(&self) -> Result<SealStatus, TrusteeError> {
        self.conn
            .call::<(), _>(reqwest::Method::GET, "/v1/seal", None, REQUEST_TIMEOUT)
            .await
    }

    async fn unseal(&self, _share: &str) -> Result<SealStatus, TrusteeError> {
        Err(TrusteeError::Invalid(wire::CLEAR_SHARE_REFUSED.to_owned()))
    }

    async fn unseal_key(&self) -> Result<crate::UnsealKey, TrusteeError> {
        self.conn
            .call::<(), _>(
                reqwest::Method::GET,
                "/v1/unseal-key",
                None,
                REQUEST_TIMEOUT,
            )
            .await
    }

    async fn unseal_sealed(&self, sealed: &crate::SealedShare) -> Result<SealStatus, TrusteeError> {
        self.conn
            .post(
                "/v1/unseal",
                &wire::UnsealRequest {
                    share: None,
                    sealed: Some(sealed.clone()),
                },
            )
            .await
    }

    async fn seal(&self) -> Result<SealStatus, TrusteeError> {
        self.conn.post("/v1/seal", &serde_json::json!({})).await
    }

    fn subscribe_revocations(&self) -> broadcast::Receiver<Revocation> {
        self.revocations.subscribe()
    }

    async fn tenant_key_status(&self, tenant: &str) -> Result<TenantKeyStatus, TrusteeError> {
        self.conn
            .post(
                "/v1/tenant-keys/status",
                &wire::TenantRequest {
                    tenant: tenant.to_owned(),
                },
            )
            .await
    }

    async fn residency(&self, tenant: &str) -> Result<TenantResidency, TrusteeError> {
        self.conn
            .post(
                "/v1/gov/residency",
                &wire::TenantRequest {
                    tenant: tenant.to_owned(),
                },
            )
            .await
    }

    async fn authenticate(&self, bearer_hash: &str) -> Result<Option<PrincipalInfo>, TrusteeError> {
        self.conn
            .post(
                "/v1/gov/authenticate",
                &wire::BearerRequest {
                    bearer_hash: bearer_hash.to_owned(),
                },
            )
            .await
    }

    async fn act(&self, signed: &SignedStatement) -> Result<serde_json::Value, TrusteeError> {
        self.conn.post("/v1/gov/act", signed).await
    }

    async fn query(
        &self,
        principal: &str,
        query: &Query,
    ) -> Result<serde_json::Value, TrusteeError> {
        self.conn
            .post(
                "/v1/gov/query",
                &wire::QueryRequest {
                    principal: principal.to_owned(),
                    query: query.clone(),
                },
            )
            .await
    }

    async fn log_read(&self, read: &LogRead) -> Result<Option<Vec<u8>>, TrusteeError> {
        let r: wire::LogBytes = self.conn.post("/v1/gov/log", read).await?;
        r.data
            .map(|d| {
                base64_simd::STANDARD
                    .decode_to_vec(d.as_bytes())
                    .map_err(|_| self.conn.unavailable("log bytes are not base64"))
            })
            .transpose()
    }

    async fn verify_request(
        &self,
        request: &crate::auth::SignedRequest,
    ) -> Result<crate::auth::Verified, TrusteeError> {
        self.conn.post("/v1/auth/verify", request).await
    }

    async fn verify_post(
        &self,
        post: &crate::auth::SignedPost,
    ) -> Result<crate::auth::Verified, TrusteeError> {
        self.conn.post("/v1/auth/post", post).await
    }

    async fn verify_chunks(
        &self,
        batch: &crate::auth::ChunkBatch,
    ) -> Result<crate::auth::ChainToken, TrusteeError> {
        self.conn.post("/v1/auth/chunks", batch).await
    }

    async fn authorize_grant_access(
        &self,
        access: &GrantAccess,
    ) -> Result<GrantScope, TrusteeError> {
        self.conn.post("/v1/gov/grant-access", access).await
    }

    async fn report_integrity(&self, alarm: &IntegrityAlarm) -> Result<u64, TrusteeError> {
        self.conn.post("/v1/gov/integrity-alarm", alarm).await
    }

    async fn seal_lock(
        &self,
        seal: &crate::object_lock::LockSeal,
    ) -> Result<crate::object_lock::LockAnswer, TrusteeError> {
        self.conn.post("/v1/lock/seal", seal).await
    }

    async fn open_lock(
        &self,
        open: &crate::object_lock::LockOpen,
    ) -> Result<crate::object_lock::LockAnswer, TrusteeError> {
        self.conn.post("/v1/lock/open", open).await
    }

    async fn seal_site_secret(&self, site: &str, secret: &str) -> Result<String, TrusteeError> {
        self.conn
            .post(
                "/v1/gov/site-secret/seal",
                &wire::SiteSecretRequest {
                    site: site.to_owned(),
                    value: secret.to_owned(),
                },
            )
            .await
    }

    async fn open_site_secret(&self, site: &str, sealed: &str) -> Result<String, TrusteeError> {
        self.conn
            .post(
                "/v1/gov/site-secret/open",
                &wire::SiteSecretRequest {
                    site: site.to_owned(),
                    value: sealed.to_owned(),
                },
            )
            .await
    }

    async fn attest(
        &self,
        kind: &str,
        tenant: Option<&str>,
        digest: &str,
    ) -> Result<serde_json::Value, TrusteeError> {
        self.conn
            .post(
                "/v1/gov/attest",
                &wire::AttestRequest {
                    kind: kind.to_owned(),
                    tenant: tenant.map(str::to_owned),
                    digest: digest.to_owned(),
                },
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::wire::*;
    use super::*;

    fn every_variant() -> Vec<TrusteeError> {
        vec![
            TrusteeError::Sealed(1, 2),
            TrusteeError::Sealed(0, 3),
            TrusteeError::Unavailable("the HSM does not answer".into()),
            TrusteeError::Denied("a principal of tenant b may not use keys of tenant a".into()),
            TrusteeError::TenantKeyDisabled("acme".into()),
            TrusteeError::TenantKeyDestroyed("acme".into()),
            TrusteeError::NoTenantKey("acme".into()),
            TrusteeError::BadShare("not a share: \"x\"".into()),
            TrusteeError::Integrity("key-check value mismatch".into()),
            TrusteeError::Storage("disk full\nand a second line".into()),
            TrusteeError::Denied(String::new()),
            TrusteeError::NotFound("no grant g-1".into()),
            TrusteeError::Invalid("bad statement".into()),
            TrusteeError::Conflict("grant g-1 was denied".into()),
        ]
    }

    #[test]
    fn every_error_survives_the_wire_with_its_variant_and_text() {
        for e in every_variant() {
            let (status, body) = error_to_wire(&e);
            assert!((400..600).contains(&status), "{e:?} -> {status}");
            assert_eq!(body.message, e.to_string());
            // through JSON, as it travels
            let json = serde_json::to_vec(&body).unwrap();
            let back: ErrorBody = serde_json::from_slice(&json).unwrap();
            let rebuilt = error_from_wire(&back).unwrap();
            assert_eq!(rebuilt, e);
            assert_eq!(rebuilt.to_string(), e.to_string());
        }
    }

    #[test]
    fn statuses_say_what_kind_of_failure_it_is() {
        let status = |e: TrusteeError| error_to_wire(&e).0;
        assert_eq!(status(TrusteeError::Sealed(0, 2)), 503);
        assert_eq!(status(TrusteeError::Unavailable(String::new())), 503);
        assert_eq!(status(TrusteeError::Denied(String::new())), 403);
        assert_eq!(status(TrusteeError::TenantKeyDestroyed(String::new())), 410);
        assert_eq!(status(TrusteeError::BadShare(String::new())), 400);
        assert_eq!(status(TrusteeError::Storage(String::new())), 500);
    }

    #[test]
    fn an_unknown_error_code_is_no_trustee_error() {
        assert_eq!(
            error_from_wire(&ErrorBody::other("bad_request", "invalid JSON")),
            None
        );
        // a sealed answer without its numbers is not guessed at
        assert_eq!(error_from_wire(&ErrorBody::other("sealed", "sealed")), None);
    }

    #[test]
    fn wrapped_keys_travel_as_base64_and_come_back_whole() {
        let k = WrappedKey {
            version: 7,
            wrapped: vec![0, 1, 2, 250, 251, 252],
            kcv: [9; obhut_crypto::KCV_LEN],
        };
        let json = serde_json::to_value(Wrapped::from(&k)).unwrap();
        assert_eq!(json["wrapped"], "AAEC+vv8");
        let back: Wrapped = serde_json::from_value(json).unwrap();
        assert_eq!(WrappedKey::try_from(back).unwrap(), k);
        let short = Wrapped {
            version: 1,
            wrapped: vec![],
            kcv: vec![1, 2],
        };
        assert!(WrappedKey::try_from(short).is_err());
    }

    #[test]
    fn the_url_must_be_https() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _g = rt.enter();
        let Err(e) = RemoteTrustee::connect("http://127.0.0.1:1", b"", b"", b"") else {
            panic!("a plain-HTTP trustee URL was accepted");
        };
        assert!(matches!(e, TrusteeError::Unavailable(ref m) if m.contains("https://")));
        assert!(e.to_string().contains("http://127.0.0.1:1"));
    }
}
