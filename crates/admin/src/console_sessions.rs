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
//! each gateway has the trustee open it and keeps it in memory, zeroed on drop. Each row names
//! the key it was sealed under (a hash of the key's sealed row), so a gateway that meets a row
//! of another key reads the key again rather than ending sessions it cannot judge; and each
//! row carries its principal's tag (an HMAC under the session key), so the catalog can bound
//! one principal's sessions without learning who it is.
//!
//! It owns that key and the sealing. It never stores or logs an id, a bearer or a CSRF token
//! in clear, and never gives the key out.

use obhut_catalog::{Catalog, ConsoleSession, SessionBounds, SessionCutoff};
use obhut_console::{Bounds, Cutoff, Principal, Record, SessionStore, StoreError};
use obhut_crypto::Key;
use obhut_crypto::principal::{hmac_sha256_hex, sha256_hex};
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
/// What a principal's tag is made from, before the principal.
const OWNER_TAG: &[u8] = b"obhut console session owner v1\0";

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

/// The layout version alone, read before the rest.
#[derive(Deserialize)]
struct Layout {
    v: u32,
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

/// The session key as this gateway holds it, with its id: the first 32 hex digits of the
/// SHA-256 of its row in `console_keys` (as the trustee sealed it), which every gateway computes
/// alike and which says nothing of the key.
struct SessionKey {
    key: Key,
    id: String,
}

/// Why a row did not open. Fixed texts: nothing read from the row is ever shown.
#[derive(Debug, PartialEq, Eq)]
enum NotOpened {
    /// Sealed under another key than the one it names, or edited, or moved from another row.
    NotIntact,
    /// A layout this release does not read (written by a newer release): left alone.
    UnknownLayout,
}

/// Console sessions in the catalog, sealed under the console's session key.
pub struct CatalogSessions {
    catalog: Arc<dyn Catalog>,
    sealer: Arc<dyn KeySealer>,
    key: tokio::sync::Mutex<Option<Arc<SessionKey>>>,
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

fn key_id(sealed: &str) -> String {
    let mut id = sha256_hex(sealed.as_bytes());
    id.truncate(32);
    id
}

/// A principal's tag: the same for every session of that principal under one session key,
/// and telling nothing of the principal to whoever lacks the key.
fn owner_tag(key: &Key, p: &Principal) -> String {
    let mut message = OWNER_TAG.to_vec();
    for part in [p.role.as_str(), p.tenant.as_deref().unwrap_or(""), &p.name] {
        message.extend_from_slice(&u64::try_from(part.len()).unwrap_or(0).to_be_bytes());
        message.extend_from_slice(part.as_bytes());
    }
    message.push(u8::from(p.tenant.is_some()));
    hmac_sha256_hex(key.expose(), &message)
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
            key: tokio::sync::Mutex::new(None),
        }
    }

    /// The session key. Kept once opened; with `fresh`, its row is read again and, if it was
    /// replaced (a restore, or by hand), the new one is opened and kept instead. Made first if
    /// the catalog has none. A failure (trustee sealed or unreachable) is tried again next
    /// time.
    async fn key(&self, fresh: bool) -> Result<Arc<SessionKey>, StoreError> {
        let mut held = self.key.lock().await;
        if !fresh && let Some(k) = held.as_ref() {
            return Ok(Arc::clone(k));
        }
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
        let id = key_id(&sealed);
        if let Some(k) = held.as_ref()
            && k.id == id
        {
            return Ok(Arc::clone(k));
        }
        let hex = self.sealer.open(&sealed).await.map_err(StoreError)?;
        let raw = Zeroizing::new(
            hex_simd::decode_to_vec(hex.as_bytes())
                .map_err(|_| StoreError("the session key is not hex".into()))?,
        );
        let key = Key::from_slice(&raw).map_err(|e| failed("the session key", e))?;
        let k = Arc::new(SessionKey { key, id });
        *held = Some(Arc::clone(&k));
        Ok(k)
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

    fn open(key: &Key, row: &ConsoleSession) -> Result<Record, NotOpened> {
        let plain = Zeroizing::new(
            obhut_crypto::open_value(key, &aad(&row.id_hash), &row.sealed)
                .map_err(|_| NotOpened::NotIntact)?,
        );
        // Neither error's text is kept: a decoder's may quote what it read (a bearer).
        let layout: Layout = serde_json::from_slice(&plain).map_err(|_| NotOpened::NotIntact)?;
        if layout.v != SEALED_VERSION {
            return Err(NotOpened::UnknownLayout);
        }
        let opened: Opened = serde_json::from_slice(&plain).map_err(|_| NotOpened::NotIntact)?;
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
            return Err(NotOpened::UnknownLayout);
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
        bounds: Bounds,
        cutoff: Cutoff,
    ) -> Result<(), StoreError> {
        // A sign-in reads the key's row again: a gateway never goes on sealing new sessions
        // under a key the catalog no longer holds.
        let k = self.key(true).await?;
        let id_hash = id_hash(id);
        let row = ConsoleSession {
            sealed: Self::seal(&k.key, &id_hash, record)?,
            id_hash,
            started_ms: record.started_ms,
            used_ms: record.used_ms,
            owner: Some(owner_tag(&k.key, &record.principal)),
            key_id: Some(k.id.clone()),
        };
        let started = self
            .catalog
            .start_console_session(
                &row,
                SessionBounds {
                    max_sessions: u64::try_from(bounds.max_sessions).unwrap_or(u64::MAX),
                    max_per_owner: u64::try_from(bounds.max_per_principal).unwrap_or(u64::MAX),
                },
                SessionCutoff {
                    used_before_ms: cutoff.used_before_ms,
                    started_before_ms: cutoff.started_before_ms,
                },
            )
            .await
            .map_err(|e| failed("a new session", e))?;
        if started {
            Ok(())
        } else {
            Err(StoreError(obhut_console::full_message(bounds.max_sessions)))
        }
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
        let mut k = self.key(false).await?;
        if row.key_id.as_deref() != Some(k.id.as_str()) {
            // Sealed under another key than the one held, or before rows named theirs: the
            // key's row may have been replaced since it was read.
            k = self.key(true).await?;
        }
        let named = match row.key_id.as_deref() {
            Some(id) => id == k.id,
            // Written before rows named their key: judged under the key there is, never ended.
            None => false,
        };
        if row.key_id.is_some() && !named {
            tracing::warn!(
                "a console session in the catalog is sealed under a session key the catalog no \
                 longer holds; not used, left to expire"
            );
            return Ok(None);
        }
        match Self::open(&k.key, &row) {
            Ok(record) => Ok(Some(record)),
            Err(NotOpened::UnknownLayout) => {
                tracing::warn!(
                    "a console session in the catalog has a layout this release does not read; \
                     not used, left alone"
                );
                Ok(None)
            }
            Err(NotOpened::NotIntact) if named => {
                // Edited, or moved here from another row: it authorises nothing, and goes.
                tracing::warn!("a console session's record in the catalog is not intact; ended");
                self.catalog
                    .end_console_session(&id_hash)
                    .await
                    .map_err(|e| failed("a session", e))?;
                Ok(None)
            }
            Err(NotOpened::NotIntact) => {
                tracing::warn!(
                    "a console session in the catalog, of a release before session rows \
                     named their key, does not open; not used, left to expire"
                );
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
            max_per_principal: 10,
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
    const BOUNDS: SessionBounds = SessionBounds {
        max_sessions: 10,
        max_per_owner: 10,
    };

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
        let (ka, kb) = (g.a.key(false).await.unwrap(), g.b.key(false).await.unwrap());
        assert_eq!(ka.key.expose(), kb.key.expose());
        assert_eq!(row.key_id.as_deref(), Some(ka.id.as_str()));
        let stored = g.catalog.console_key(KEY_ROW).await.unwrap().unwrap();
        let clear = hex_simd::encode_to_string(ka.key.expose(), hex_simd::AsciiCase::Lower);
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
                assert!(c.start_console_session(&r, BOUNDS, none).await.unwrap());
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
                max_per_principal: 10,
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
        assert!(
            g.catalog
                .start_console_session(&row, BOUNDS, none)
                .await
                .unwrap()
        );
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
        first.key(false).await.unwrap();
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

    /// Two gateways' stores on one catalog in a file, which the test also writes directly.
    fn two_gateways_on_file(dir: &std::path::Path) -> (Gateways, Arc<dyn KeySealer>) {
        let catalog: Arc<dyn Catalog> =
            Arc::new(SqliteCatalog::open(&dir.join("catalog.db")).unwrap());
        let sealer: Arc<dyn KeySealer> = Arc::new(TestSealer(Key::random().unwrap()));
        (
            Gateways {
                a: Arc::new(CatalogSessions::new(
                    Arc::clone(&catalog),
                    Arc::clone(&sealer),
                )),
                b: Arc::new(CatalogSessions::new(
                    Arc::clone(&catalog),
                    Arc::clone(&sealer),
                )),
                catalog,
            },
            sealer,
        )
    }

    #[tokio::test]
    async fn a_replaced_session_key_is_read_again_and_no_gateway_ends_the_others_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let (g, sealer) = two_gateways_on_file(dir.path());
        let idle = Duration::from_secs(60);
        let (on_a, on_b) = (sessions(&g.a, idle), sessions(&g.b, idle));
        let old = start(&on_a, "ada", BEARER).await;
        assert!(on_b.get(&old).await.is_some());
        // The key's row replaced behind the gateways' backs (a restore, or by hand).
        let fresh =
            hex_simd::encode_to_string(Key::random().unwrap().expose(), hex_simd::AsciiCase::Lower);
        let sealed = sealer.seal(&fresh).await.unwrap();
        rusqlite::Connection::open(dir.path().join("catalog.db"))
            .unwrap()
            .execute(
                "UPDATE console_keys SET sealed = ?1 WHERE name = ?2",
                rusqlite::params![sealed, KEY_ROW],
            )
            .unwrap();
        // b signs in under the new key; a, still holding the old one, reads the key again and
        // opens it (before, a ended it as not intact).
        let new = start(&on_b, "bob", "obb_bob").await;
        assert_eq!(on_a.get(&new).await.unwrap().bearer.as_str(), "obb_bob");
        assert_eq!(on_b.get(&new).await.unwrap().bearer.as_str(), "obb_bob");
        // The session sealed under the key that is gone opens nowhere, and is not deleted by
        // either gateway: it ends when it expires.
        assert!(on_a.get(&old).await.is_none() && on_b.get(&old).await.is_none());
        assert!(
            g.catalog
                .get_console_session(&id_hash(&old))
                .await
                .unwrap()
                .is_some(),
            "a session of another key was deleted"
        );
    }

    #[tokio::test]
    async fn a_row_of_an_unknown_layout_is_ignored_and_kept() {
        let g = two_gateways();
        let on_a = sessions(&g.a, Duration::from_secs(60));
        let id = start(&on_a, "ada", BEARER).await;
        let mut row = g
            .catalog
            .get_console_session(&id_hash(&id))
            .await
            .unwrap()
            .unwrap();
        let k = g.a.key(false).await.unwrap();
        let newer = serde_json::json!({"v": 2, "who": {"name": "ada"}, "bearer": BEARER});
        row.sealed =
            obhut_crypto::seal_value(&k.key, &aad(&row.id_hash), newer.to_string().as_bytes())
                .unwrap();
        g.catalog.end_console_session(&row.id_hash).await.unwrap();
        let none = SessionCutoff {
            used_before_ms: 0,
            started_before_ms: 0,
        };
        assert!(
            g.catalog
                .start_console_session(&row, BOUNDS, none)
                .await
                .unwrap()
        );
        assert!(on_a.get(&id).await.is_none(), "a newer layout was read");
        assert_eq!(
            g.catalog.get_console_session(&row.id_hash).await.unwrap(),
            Some(row),
            "a newer layout's row was deleted"
        );
    }

    #[tokio::test]
    async fn a_principal_ends_only_its_own_sessions_and_a_full_console_refuses_sign_in() {
        let g = two_gateways();
        let limits = SessionLimits {
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(3600),
            max_sessions: 18,
            max_per_principal: 16,
            touch_every: Duration::ZERO,
        };
        let on_a = Sessions::new(limits, Arc::clone(&g.a) as Arc<dyn SessionStore>);
        let on_b = Sessions::new(limits, Arc::clone(&g.b) as Arc<dyn SessionStore>);
        let officer = start(&on_b, "officer", "obb_officer").await;
        let mut ada = Vec::new();
        for n in 0..17 {
            tokio::time::sleep(Duration::from_millis(2)).await;
            let on = if n % 2 == 0 { &on_a } else { &on_b };
            ada.push(start(on, "ada", BEARER).await);
        }
        // Ada's 17th sign-in ended Ada's least recently used, not the officer's (the least
        // recently used of all).
        assert!(
            on_a.get(&ada[0]).await.is_none(),
            "a 17th session of one principal"
        );
        assert_eq!(
            on_a.get(&officer).await.unwrap().bearer.as_str(),
            "obb_officer"
        );
        for id in &ada[1..] {
            assert!(on_b.get(id).await.is_some());
        }
        // 17 live of 18: one more principal signs in, the next is refused, and no one's
        // session ends for it.
        start(&on_a, "carl", "obb_carl").await;
        let refused = on_b
            .start(who("dora"), Zeroizing::new("obb_dora".into()))
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("maximum of 18 live sessions"),
            "{refused}"
        );
        assert!(on_a.get(&officer).await.is_some());
        for id in &ada[1..] {
            assert!(on_a.get(id).await.is_some());
        }
    }
}
