//! The web console's sessions in the catalog, so that a session started on one gateway works on
//! every gateway that shares the catalog, and ends on all of them at sign-out or expiry
//! (docs/console.md, "Sessions").
//!
//! A row is named by the SHA-256 of the session's id (the cookie's value is never stored) and
//! holds the principal, its admin bearer, the CSRF token and the start time sealed with
//! AES-256-GCM under the console's session key, with the id's hash as associated data: a row
//! edited, or moved under another session's hash, fails to open and is ended. The session key
//! is random, made by the first gateway that needs it and stored in the catalog only as the
//! trustee sealed it (the trustee's sealing of S3 site secrets, under a name no site can have);
//! each gateway has the trustee open it once and keeps it in memory, zeroed on drop.
//!
//! It owns that key and the sealing. It never stores or logs an id, a bearer or a CSRF token
//! in clear, and never gives the key out.

use obhut_catalog::{Catalog, ConsoleSession, SessionCutoff};
use obhut_console::{Cutoff, Principal, Record, SessionStore, StoreError};
use obhut_crypto::Key;
use obhut_crypto::principal::sha256_hex;
use obhut_trustee_client::TrusteeClient;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use zeroize::Zeroizing;

/// The row of `console_keys` that holds the session key.
const KEY_ROW: &str = "session-v1";
/// The name the trustee seals the session key under. Site ids are DNS labels, so no site's
/// sealed secret can be opened as this key, nor this key as a site's secret.
pub const TRUSTEE_NAME: &str = "obhut:console-session-key";
/// Associated data of a sealed session, before its id's hash.
const AAD: &[u8] = b"obhut console session v1\0";
/// Version of the sealed record's layout.
const SEALED_VERSION: u32 = 1;

/// What is sealed in a row (serialised as JSON, then sealed).
#[derive(Serialize)]
struct Sealing<'a> {
    v: u32,
    name: &'a str,
    role: &'a str,
    tenant: Option<&'a str>,
    bearer: &'a str,
    csrf: &'a str,
    started_ms: i64,
}

#[derive(Deserialize)]
struct Opened {
    v: u32,
    name: String,
    role: String,
    tenant: Option<String>,
    bearer: String,
    csrf: String,
    started_ms: i64,
}

/// Who seals the session key for the catalog and opens it again.
#[async_trait::async_trait]
pub trait KeySealer: Send + Sync {
    async fn seal(&self, key_hex: &str) -> Result<String, String>;
    async fn open(&self, sealed: &str) -> Result<Zeroizing<String>, String>;
}

/// The trustee, sealing the session key as it seals S3 site secrets, under [`TRUSTEE_NAME`].
pub struct TrusteeKeySealer(pub Arc<dyn TrusteeClient>);

#[async_trait::async_trait]
impl KeySealer for TrusteeKeySealer {
    async fn seal(&self, key_hex: &str) -> Result<String, String> {
        self.0
            .seal_site_secret(TRUSTEE_NAME, key_hex)
            .await
            .map_err(|e| format!("the trustee sealing the session key: {e}"))
    }

    async fn open(&self, sealed: &str) -> Result<Zeroizing<String>, String> {
        self.0
            .open_site_secret(TRUSTEE_NAME, sealed)
            .await
            .map(Zeroizing::new)
            .map_err(|e| format!("the trustee opening the session key: {e}"))
    }
}

/// Console sessions in the catalog, sealed under the console's session key.
pub struct CatalogSessions {
    catalog: Arc<dyn Catalog>,
    sealer: Arc<dyn KeySealer>,
    key: tokio::sync::OnceCell<Key>,
}

fn failed(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError(format!("{what}: {e}"))
}

/// The name of session `id` in the catalog: its SHA-256, hex.
pub fn id_hash(id: &str) -> String {
    sha256_hex(id.as_bytes())
}

fn aad(id_hash: &str) -> Vec<u8> {
    let mut aad = AAD.to_vec();
    aad.extend_from_slice(id_hash.as_bytes());
    aad
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl CatalogSessions {
    pub fn new(catalog: Arc<dyn Catalog>, sealer: Arc<dyn KeySealer>) -> Self {
        Self {
            catalog,
            sealer,
            key: tokio::sync::OnceCell::new(),
        }
    }

    /// The session key: opened by the trustee on first use (made first if the catalog has
    /// none), then kept. A failure (trustee sealed or unreachable) is tried again next time.
    async fn key(&self) -> Result<&Key, StoreError> {
        self.key
            .get_or_try_init(|| async {
                let sealed = match self
                    .catalog
                    .console_key(KEY_ROW)
                    .await
                    .map_err(|e| failed("the session key", e))?
                {
                    Some(sealed) => sealed,
                    None => {
                        let fresh = Key::random().map_err(|e| failed("a new session key", e))?;
                        let hex = Zeroizing::new(hex_simd::encode_to_string(
                            fresh.expose(),
                            hex_simd::AsciiCase::Lower,
                        ));
                        let sealed = self.sealer.seal(&hex).await.map_err(StoreError)?;
                        // Another gateway may have stored its key first: then that one is used.
                        self.catalog
                            .init_console_key(KEY_ROW, &sealed, now_ms())
                            .await
                            .map_err(|e| failed("the session key", e))?
                    }
                };
                let hex = self.sealer.open(&sealed).await.map_err(StoreError)?;
                let raw = Zeroizing::new(
                    hex_simd::decode_to_vec(hex.as_bytes())
                        .map_err(|_| StoreError("the session key is not hex".into()))?,
                );
                Key::from_slice(&raw).map_err(|e| failed("the session key", e))
            })
            .await
    }

    fn seal(key: &Key, id_hash: &str, record: &Record) -> Result<Vec<u8>, StoreError> {
        let sealing = Sealing {
            v: SEALED_VERSION,
            name: &record.principal.name,
            role: &record.principal.role,
            tenant: record.principal.tenant.as_deref(),
            bearer: &record.bearer,
            csrf: &record.csrf,
            started_ms: record.started_ms,
        };
        // Room for the whole record up front: no reallocation leaves a copy of the bearer.
        let mut plain = Zeroizing::new(Vec::with_capacity(2048));
        serde_json::to_writer(&mut *plain, &sealing).map_err(|e| failed("a session", e))?;
        obhut_crypto::seal_value(key, &aad(id_hash), &plain).map_err(|e| failed("a session", e))
    }

    fn open(key: &Key, row: &ConsoleSession) -> Result<Record, StoreError> {
        let plain = Zeroizing::new(
            obhut_crypto::open_value(key, &aad(&row.id_hash), &row.sealed)
                .map_err(|e| failed("a session's record does not open", e))?,
        );
        let opened: Opened = serde_json::from_slice(&plain)
            .map_err(|e| failed("a session's record cannot be read", e))?;
        let Opened {
            v,
            name,
            role,
            tenant,
            bearer,
            csrf,
            started_ms,
        } = opened;
        let (bearer, csrf) = (Zeroizing::new(bearer), Zeroizing::new(csrf));
        if v != SEALED_VERSION {
            return Err(StoreError(format!(
                "a session's record has layout {v}, this release reads {SEALED_VERSION}"
            )));
        }
        Ok(Record {
            principal: Principal { name, role, tenant },
            bearer,
            csrf,
            // The start is the sealed one: editing the row's column extends nothing.
            started_ms,
            used_ms: row.used_ms,
        })
    }
}

#[async_trait::async_trait]
impl SessionStore for CatalogSessions {
    async fn start(
        &self,
        id: &str,
        record: &Record,
        max_sessions: usize,
        cutoff: Cutoff,
    ) -> Result<(), StoreError> {
        let key = self.key().await?;
        let id_hash = id_hash(id);
        let row = ConsoleSession {
            sealed: Self::seal(key, &id_hash, record)?,
            id_hash,
            started_ms: record.started_ms,
            used_ms: record.used_ms,
        };
        self.catalog
            .start_console_session(
                &row,
                u64::try_from(max_sessions).unwrap_or(u64::MAX),
                SessionCutoff {
                    used_before_ms: cutoff.used_before_ms,
                    started_before_ms: cutoff.started_before_ms,
                },
            )
            .await
            .map_err(|e| failed("a new session", e))
    }

    async fn get(&self, id: &str) -> Result<Option<Record>, StoreError> {
        let id_hash = id_hash(id);
        let Some(row) = self
            .catalog
            .get_console_session(&id_hash)
            .await
            .map_err(|e| failed("a session", e))?
        else {
            return Ok(None);
        };
        let key = self.key().await?;
        match Self::open(key, &row) {
            Ok(record) => Ok(Some(record)),
            Err(e) => {
                // Edited, or moved here from another row: it authorises nothing, and goes.
                tracing::warn!(error = %e, "a console session's record in the catalog is not intact; ended");
                self.catalog
                    .end_console_session(&id_hash)
                    .await
                    .map_err(|e| failed("a session", e))?;
                Ok(None)
            }
        }
    }

    async fn touch(&self, id: &str, used_ms: i64) -> Result<(), StoreError> {
        self.catalog
            .touch_console_session(&id_hash(id), used_ms)
            .await
            .map_err(|e| failed("a session's use", e))
    }

    async fn end(&self, id: &str) -> Result<(), StoreError> {
        self.catalog
            .end_console_session(&id_hash(id))
            .await
            .map_err(|e| failed("a session's end", e))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use obhut_catalog::SqliteCatalog;
    use obhut_console::{SessionLimits, Sessions};
    use std::time::Duration;

    /// Seals as a trustee would: AES-256-GCM under a key this test holds, bound to the name.
    struct TestSealer(Key);

    #[async_trait::async_trait]
    impl KeySealer for TestSealer {
        async fn seal(&self, key_hex: &str) -> Result<String, String> {
            let sealed =
                obhut_crypto::seal_value(&self.0, TRUSTEE_NAME.as_bytes(), key_hex.as_bytes())
                    .map_err(|e| e.to_string())?;
            Ok(hex_simd::encode_to_string(
                sealed,
                hex_simd::AsciiCase::Lower,
            ))
        }

        async fn open(&self, sealed: &str) -> Result<Zeroizing<String>, String> {
            let raw = hex_simd::decode_to_vec(sealed.as_bytes()).map_err(|e| e.to_string())?;
            let plain = obhut_crypto::open_value(&self.0, TRUSTEE_NAME.as_bytes(), &raw)
                .map_err(|e| e.to_string())?;
            Ok(Zeroizing::new(String::from_utf8(plain).unwrap()))
        }
    }

    fn who(name: &str) -> Principal {
        Principal {
            name: name.into(),
            role: "tenant_admin".into(),
            tenant: Some("acme".into()),
        }
    }

    fn limits(idle: Duration) -> SessionLimits {
        SessionLimits {
            idle,
            absolute: Duration::from_secs(3600),
            max_sessions: 10,
            touch_every: Duration::ZERO,
        }
    }

    struct Gateways {
        catalog: Arc<dyn Catalog>,
        a: Arc<CatalogSessions>,
        b: Arc<CatalogSessions>,
    }

    /// Two gateways' stores on one catalog and one trustee.
    fn two_gateways() -> Gateways {
        let catalog: Arc<dyn Catalog> = Arc::new(SqliteCatalog::in_memory().unwrap());
        let sealer: Arc<dyn KeySealer> = Arc::new(TestSealer(Key::random().unwrap()));
        Gateways {
            a: Arc::new(CatalogSessions::new(
                Arc::clone(&catalog),
                Arc::clone(&sealer),
            )),
            b: Arc::new(CatalogSessions::new(Arc::clone(&catalog), sealer)),
            catalog,
        }
    }

    fn sessions(store: &Arc<CatalogSessions>, idle: Duration) -> Sessions {
        Sessions::new(limits(idle), Arc::clone(store) as Arc<dyn SessionStore>)
    }

    async fn start(s: &Sessions, name: &str, bearer: &str) -> String {
        s.start(who(name), Zeroizing::new(bearer.into()))
            .await
            .unwrap()
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    const BEARER: &str = "obb_0123456789abcdefghijklmnopqrstuv";

    #[tokio::test]
    async fn a_session_started_on_one_gateway_is_read_on_another_and_kept_sealed() {
        let g = two_gateways();
        let idle = Duration::from_secs(60);
        let (on_a, on_b) = (sessions(&g.a, idle), sessions(&g.b, idle));
        let id = start(&on_a, "ada", BEARER).await;
        let seen = on_b
            .get(&id)
            .await
            .expect("the session on the other gateway");
        assert_eq!(seen.bearer.as_str(), BEARER);
        assert_eq!(seen.principal, who("ada"));
        let csrf = seen.csrf.clone();
        assert_eq!(on_a.get(&id).await.unwrap().csrf, csrf, "one CSRF token");
        // The row: named by the id's hash; no id, bearer, CSRF token or name in clear.
        assert_eq!(g.catalog.get_console_session(&id).await.unwrap(), None);
        let row = g
            .catalog
            .get_console_session(&id_hash(&id))
            .await
            .unwrap()
            .unwrap();
        for secret in [id.as_str(), BEARER, csrf.as_str(), "ada", "acme"] {
            assert!(
                !contains(&row.sealed, secret.as_bytes()),
                "{secret} in clear"
            );
        }
        // One key for both gateways, stored only sealed.
        let (ka, kb) = (g.a.key().await.unwrap(), g.b.key().await.unwrap());
        assert_eq!(ka.expose(), kb.expose());
        let stored = g.catalog.console_key(KEY_ROW).await.unwrap().unwrap();
        let clear = hex_simd::encode_to_string(ka.expose(), hex_simd::AsciiCase::Lower);
        assert!(!stored.contains(&clear), "the session key in clear");
        // The record as sealed opens with the key only.
        assert!(CatalogSessions::open(&Key::random().unwrap(), &row).is_err());
    }

    #[tokio::test]
    async fn a_record_edited_or_moved_to_another_session_is_refused_and_ended() {
        let g = two_gateways();
        let idle = Duration::from_secs(60);
        let (on_a, on_b) = (sessions(&g.a, idle), sessions(&g.b, idle));
        let ada = start(&on_a, "ada", BEARER).await;
        let bob = start(&on_a, "bob", "obb_bob").await;
        let row = |id: &str| {
            let (c, h) = (Arc::clone(&g.catalog), id_hash(id));
            async move { c.get_console_session(&h).await.unwrap().unwrap() }
        };
        let (ada_row, bob_row) = (row(&ada).await, row(&bob).await);
        let put = |r: ConsoleSession| {
            let c = Arc::clone(&g.catalog);
            async move {
                c.end_console_session(&r.id_hash).await.unwrap();
                let none = SessionCutoff {
                    used_before_ms: 0,
                    started_before_ms: 0,
                };
                c.start_console_session(&r, 10, none).await.unwrap();
            }
        };
        // Bob's record (an operator's, say) under Ada's hash: Ada's cookie gets nothing.
        put(ConsoleSession {
            sealed: bob_row.sealed.clone(),
            ..ada_row.clone()
        })
        .await;
        assert!(on_b.get(&ada).await.is_none(), "a swapped record opened");
        assert_eq!(
            g.catalog.get_console_session(&id_hash(&ada)).await.unwrap(),
            None,
            "a swapped record is ended"
        );
        assert_eq!(on_b.get(&bob).await.unwrap().bearer.as_str(), "obb_bob");
        // One byte of Bob's sealed record changed: refused, and ended.
        let mut edited = bob_row.clone();
        let last = edited.sealed.len() - 20;
        edited.sealed[last] ^= 1;
        put(edited).await;
        assert!(on_a.get(&bob).await.is_none(), "an edited record opened");
        assert!(on_b.get(&bob).await.is_none());
        assert_eq!(
            g.catalog.get_console_session(&id_hash(&bob)).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn the_sealed_start_decides_and_an_edited_column_extends_nothing() {
        let g = two_gateways();
        let short = Sessions::new(
            SessionLimits {
                idle: Duration::from_secs(60),
                absolute: Duration::from_millis(300),
                max_sessions: 10,
                touch_every: Duration::ZERO,
            },
            Arc::clone(&g.a) as Arc<dyn SessionStore>,
        );
        let id = start(&short, "ada", BEARER).await;
        let mut row = g
            .catalog
            .get_console_session(&id_hash(&id))
            .await
            .unwrap()
            .unwrap();
        row.started_ms += 3_600_000;
        g.catalog.end_console_session(&row.id_hash).await.unwrap();
        let none = SessionCutoff {
            used_before_ms: 0,
            started_before_ms: 0,
        };
        g.catalog
            .start_console_session(&row, 10, none)
            .await
            .unwrap();
        assert!(short.get(&id).await.is_some());
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(
            short.get(&id).await.is_none(),
            "the edited start was believed"
        );
    }

    #[tokio::test]
    async fn sign_out_and_expiry_end_a_session_everywhere_and_expired_rows_go() {
        let g = two_gateways();
        let idle = Duration::from_millis(200);
        let (on_a, on_b) = (sessions(&g.a, idle), sessions(&g.b, idle));
        let id = start(&on_a, "ada", BEARER).await;
        assert!(on_b.get(&id).await.is_some());
        on_b.end(&id).await.unwrap();
        assert!(on_a.get(&id).await.is_none(), "signed out on b, live on a");
        // Idle on both: ended on both, and its row removed by the next look.
        let idle_one = start(&on_a, "ada", BEARER).await;
        let left_alone = start(&on_a, "bob", "obb_bob").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(on_b.get(&idle_one).await.is_none());
        assert_eq!(
            g.catalog
                .get_console_session(&id_hash(&idle_one))
                .await
                .unwrap(),
            None
        );
        // One never looked at again is purged when another session starts.
        assert!(
            g.catalog
                .get_console_session(&id_hash(&left_alone))
                .await
                .unwrap()
                .is_some()
        );
        start(&on_b, "carl", "obb_carl").await;
        assert_eq!(
            g.catalog
                .get_console_session(&id_hash(&left_alone))
                .await
                .unwrap(),
            None,
            "an expired row was kept"
        );
    }

    #[tokio::test]
    async fn a_session_key_that_does_not_open_starts_nothing() {
        let catalog: Arc<dyn Catalog> = Arc::new(SqliteCatalog::in_memory().unwrap());
        let first = CatalogSessions::new(
            Arc::clone(&catalog),
            Arc::new(TestSealer(Key::random().unwrap())),
        );
        first.key().await.unwrap();
        // Another trustee (or a key row written by someone else): nothing opens, nothing starts.
        let other = Sessions::new(
            limits(Duration::from_secs(60)),
            Arc::new(CatalogSessions::new(
                catalog,
                Arc::new(TestSealer(Key::random().unwrap())),
            )) as Arc<dyn SessionStore>,
        );
        assert!(
            other
                .start(who("ada"), Zeroizing::new(BEARER.into()))
                .await
                .is_err()
        );
    }
}
