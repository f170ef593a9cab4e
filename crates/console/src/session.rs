//! Console sessions: a random id in an HttpOnly, SameSite=Strict cookie (Secure over TLS) names
//! a server-side record of the principal, its admin bearer and its CSRF token. Sessions end
//! after an idle time, after an absolute time, or when signed out; their number is bounded per
//! principal and in all.
//!
//! The records are kept by a [`SessionStore`]: the obhut binary gives the console one in the
//! catalog, shared by every gateway of it (records sealed there, docs/console.md, "Sessions");
//! [`MemoryStore`] keeps them in this process. This module decides what is live; a store only
//! keeps. It hands bearers to the store and to the admin API's router, and never logs them.

use rand::RngExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The session cookie's name.
pub const COOKIE: &str = "obhut_console";
/// The cookie that protects the sign-in form itself (no session exists yet).
pub const SIGN_IN_COOKIE: &str = "obhut_console_sign_in";
/// The language cookie.
pub const LANG_COOKIE: &str = "obhut_console_lang";

/// How long sessions live and how many exist at most.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after sign-in, used or not.
    pub absolute: Duration,
    /// Live sessions at most, of all principals together. A sign-in beyond is refused: it never
    /// ends another principal's live session.
    pub max_sessions: usize,
    /// Sessions of one principal at most; its sign-in beyond ends its own least recently used.
    pub max_per_principal: usize,
    /// A session's last use is written to its store at most once per this interval, so a
    /// session in use may end up to this much before `idle` has passed since its last use.
    pub touch_every: Duration,
}

/// Who a session is, as the admin API's `whoami` said at sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: String,
    pub tenant: Option<String>,
}

/// A session's record as a [`SessionStore`] keeps it: times are ms since the epoch.
#[derive(Clone)]
pub struct Record {
    pub principal: Principal,
    pub bearer: Zeroizing<String>,
    pub csrf: Zeroizing<String>,
    pub started_ms: i64,
    pub used_ms: i64,
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("principal", &self.principal)
            .field("started_ms", &self.started_ms)
            .field("used_ms", &self.used_ms)
            .finish_non_exhaustive()
    }
}

/// Which sessions have expired: last used at or before `used_before_ms`, or started at or
/// before `started_before_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoff {
    pub used_before_ms: i64,
    pub started_before_ms: i64,
}

/// How many sessions a store keeps: see [`SessionLimits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub max_sessions: usize,
    pub max_per_principal: usize,
}

/// The reason a sign-in is refused when the store holds `max` live sessions.
pub fn full_message(max: usize) -> String {
    format!(
        "the console holds its maximum of {max} live sessions; \
         sign in again when some have ended (sign out, or idle)"
    )
}

/// Why a store could not keep or find a session (never naming a session's id or bearer).
#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the console's session store: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

/// Where sessions are kept. Every gateway that shares a store sees the same sessions.
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync {
    /// Keeps the new session `id`, after ending the expired ones (`cutoff`) and then, while
    /// its principal has `max_per_principal` or more, that principal's least recently used.
    /// Refused ([`full_message`]), ending no other principal's session, if `max_sessions` or
    /// more are left.
    async fn start(
        &self,
        id: &str,
        record: &Record,
        bounds: Bounds,
        cutoff: Cutoff,
    ) -> Result<(), StoreError>;
    /// The record of session `id`, expired or not; none if there is none, or if the one kept
    /// is not intact (a store that can tell ends it then).
    async fn get(&self, id: &str) -> Result<Option<Record>, StoreError>;
    /// Marks session `id` used at `used_ms`.
    async fn touch(&self, id: &str, used_ms: i64) -> Result<(), StoreError>;
    /// Ends session `id`.
    async fn end(&self, id: &str) -> Result<(), StoreError>;
}

/// Sessions in this process's memory: for one process alone (and tests).
#[derive(Default)]
pub struct MemoryStore {
    by_id: Mutex<HashMap<String, Record>>,
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Record>> {
        self.by_id.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl SessionStore for MemoryStore {
    async fn start(
        &self,
        id: &str,
        record: &Record,
        bounds: Bounds,
        cutoff: Cutoff,
    ) -> Result<(), StoreError> {
        let mut map = self.lock();
        map.retain(|_, r| {
            r.used_ms > cutoff.used_before_ms && r.started_ms > cutoff.started_before_ms
        });
        let mut own: Vec<(i64, String)> = map
            .iter()
            .filter(|(_, r)| r.principal == record.principal)
            .map(|(id, r)| (r.used_ms, id.clone()))
            .collect();
        own.sort();
        let excess = own
            .len()
            .saturating_sub(bounds.max_per_principal.max(1) - 1);
        if map.len() - excess >= bounds.max_sessions.max(1) {
            return Err(StoreError(full_message(bounds.max_sessions)));
        }
        for (_, oldest) in own.into_iter().take(excess) {
            map.remove(&oldest);
        }
        map.insert(id.to_owned(), record.clone());
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<Record>, StoreError> {
        Ok(self.lock().get(id).cloned())
    }

    async fn touch(&self, id: &str, used_ms: i64) -> Result<(), StoreError> {
        if let Some(r) = self.lock().get_mut(id) {
            r.used_ms = r.used_ms.max(used_ms);
        }
        Ok(())
    }

    async fn end(&self, id: &str) -> Result<(), StoreError> {
        self.lock().remove(id);
        Ok(())
    }
}

/// A session as a request sees it.
pub struct Current {
    pub id: String,
    pub principal: Principal,
    pub bearer: Zeroizing<String>,
    pub csrf: String,
}

/// The sessions: what is live, over a store.
pub struct Sessions {
    limits: SessionLimits,
    store: Arc<dyn SessionStore>,
}

/// 32 random bytes, hex: a session id or a CSRF token.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex_simd::encode_to_string(bytes, hex_simd::AsciiCase::Lower)
}

/// Whether `id` could be a session id (64 lowercase hex digits): anything else is not looked up.
fn well_formed(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether two secrets are equal, in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Sessions {
    pub fn new(limits: SessionLimits, store: Arc<dyn SessionStore>) -> Self {
        Self { limits, store }
    }

    fn cutoff(&self, now: i64) -> Cutoff {
        Cutoff {
            used_before_ms: now.saturating_sub(ms(self.limits.idle)),
            started_before_ms: now.saturating_sub(ms(self.limits.absolute)),
        }
    }

    fn live(&self, r: &Record, now: i64) -> bool {
        let cutoff = self.cutoff(now);
        r.used_ms > cutoff.used_before_ms && r.started_ms > cutoff.started_before_ms
    }

    /// Starts a session; its id.
    pub async fn start(
        &self,
        principal: Principal,
        bearer: Zeroizing<String>,
    ) -> Result<String, StoreError> {
        let now = now_ms();
        let id = random_token();
        let record = Record {
            principal,
            bearer,
            csrf: Zeroizing::new(random_token()),
            started_ms: now,
            used_ms: now,
        };
        self.store
            .start(
                &id,
                &record,
                Bounds {
                    max_sessions: self.limits.max_sessions,
                    max_per_principal: self.limits.max_per_principal,
                },
                self.cutoff(now),
            )
            .await?;
        Ok(id)
    }

    /// The live session `id` names, marked as used now (in the store, at most once per
    /// `touch_every`). A store that fails is logged and answers no session.
    pub async fn get(&self, id: &str) -> Option<Current> {
        if !well_formed(id) {
            return None;
        }
        let now = now_ms();
        let record = match self.store.get(id).await {
            Ok(Some(r)) => r,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(error = %e, "a console session could not be read");
                return None;
            }
        };
        if !self.live(&record, now) {
            if let Err(e) = self.store.end(id).await {
                tracing::warn!(error = %e, "an expired console session could not be removed");
            }
            return None;
        }
        if now.saturating_sub(record.used_ms) >= ms(self.limits.touch_every)
            && let Err(e) = self.store.touch(id, now).await
        {
            tracing::warn!(error = %e, "a console session's use could not be recorded");
        }
        Some(Current {
            id: id.to_owned(),
            principal: record.principal,
            bearer: record.bearer,
            csrf: record.csrf.to_string(),
        })
    }

    /// Ends session `id`, on every gateway that shares the store.
    pub async fn end(&self, id: &str) -> Result<(), StoreError> {
        self.store.end(id).await
    }
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: path `/console`, HttpOnly, SameSite=Strict, Secure over TLS;
/// `max_age` `Some(0)` deletes it, `None` lasts the browser session.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> String {
    let mut c = format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who() -> Principal {
        Principal {
            name: "officer1".into(),
            role: "officer".into(),
            tenant: None,
        }
    }

    fn sessions(idle: Duration, absolute: Duration, max_sessions: usize) -> Sessions {
        Sessions::new(
            SessionLimits {
                idle,
                absolute,
                max_sessions,
                max_per_principal: 2,
                touch_every: Duration::ZERO,
            },
            Arc::new(MemoryStore::default()),
        )
    }

    async fn start(s: &Sessions, bearer: &str) -> String {
        s.start(who(), Zeroizing::new(bearer.into())).await.unwrap()
    }

    #[tokio::test]
    async fn a_session_ends_when_idle_too_long_or_signed_out() {
        let sessions = sessions(Duration::from_millis(50), Duration::from_secs(60), 10);
        let id = start(&sessions, "obb_x").await;
        let got = sessions.get(&id).await.unwrap();
        assert_eq!(got.bearer.as_str(), "obb_x");
        assert_eq!(got.principal, who());
        assert!(well_formed(&got.csrf) && got.csrf != id);
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(sessions.get(&id).await.is_none(), "idle session still live");
        let id = start(&sessions, "obb_x").await;
        sessions.end(&id).await.unwrap();
        assert!(
            sessions.get(&id).await.is_none(),
            "signed-out session still live"
        );
        assert!(sessions.get("not-a-session").await.is_none());
    }

    #[tokio::test]
    async fn a_session_ends_at_its_absolute_limit_even_if_used() {
        let sessions = sessions(Duration::from_secs(60), Duration::from_millis(600), 10);
        let id = start(&sessions, "obb_x").await;
        // Used well within the limit (with room for a loaded machine), then past it.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(sessions.get(&id).await.is_some());
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(sessions.get(&id).await.is_none());
    }

    #[tokio::test]
    async fn a_principal_beyond_its_bound_ends_its_own_least_recently_used_session() {
        let sessions = sessions(Duration::from_secs(60), Duration::from_secs(60), 10);
        let other = Principal {
            name: "auditor1".into(),
            role: "auditor".into(),
            tenant: None,
        };
        let theirs = sessions
            .start(other.clone(), Zeroizing::new("obb_o".into()))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
        let a = start(&sessions, "obb_a").await;
        tokio::time::sleep(Duration::from_millis(2)).await;
        let b = start(&sessions, "obb_b").await;
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert!(sessions.get(&a).await.is_some()); // a is now the more recently used
        // officer1's third session ends officer1's least recently used (b), not the auditor's
        // (the least recently used of all).
        let c = start(&sessions, "obb_c").await;
        assert!(sessions.get(&b).await.is_none());
        assert!(sessions.get(&a).await.is_some() && sessions.get(&c).await.is_some());
        assert_eq!(sessions.get(&theirs).await.unwrap().principal, other);
    }

    #[tokio::test]
    async fn a_full_store_refuses_a_sign_in_and_ends_no_other_principals_session() {
        let sessions = sessions(Duration::from_secs(60), Duration::from_secs(60), 2);
        let a = start(&sessions, "obb_a").await;
        tokio::time::sleep(Duration::from_millis(2)).await;
        let b = start(&sessions, "obb_b").await;
        let other = Principal {
            name: "auditor1".into(),
            role: "auditor".into(),
            tenant: None,
        };
        let err = sessions
            .start(other, Zeroizing::new("obb_o".into()))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("maximum of 2 live sessions"),
            "{err}"
        );
        assert!(sessions.get(&a).await.is_some());
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert!(sessions.get(&b).await.is_some());
        tokio::time::sleep(Duration::from_millis(2)).await;
        // officer1 itself, at its own bound, replaces its own least recently used (a).
        let c = start(&sessions, "obb_c").await;
        assert!(sessions.get(&a).await.is_none());
        assert!(sessions.get(&b).await.is_some() && sessions.get(&c).await.is_some());
    }

    #[tokio::test]
    async fn use_is_written_at_most_once_per_interval() {
        let store = Arc::new(MemoryStore::default());
        let sessions = Sessions::new(
            SessionLimits {
                idle: Duration::from_secs(60),
                absolute: Duration::from_secs(60),
                max_sessions: 10,
                max_per_principal: 10,
                touch_every: Duration::from_secs(30),
            },
            store.clone(),
        );
        let id = start(&sessions, "obb_x").await;
        let started = store.get(&id).await.unwrap().unwrap().used_ms;
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(sessions.get(&id).await.is_some());
        assert_eq!(
            store.get(&id).await.unwrap().unwrap().used_ms,
            started,
            "written again within the interval"
        );
        // A record last written longer ago than the interval is written again.
        store.lock().get_mut(&id).unwrap().used_ms -= 31_000;
        assert!(sessions.get(&id).await.is_some());
        assert!(store.get(&id).await.unwrap().unwrap().used_ms >= started);
    }

    #[tokio::test]
    async fn a_session_ended_in_the_store_ends_for_every_user_of_it() {
        // Two consoles (two gateways) over one store: sign-in on one, use and sign-out on the
        // other.
        let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::default());
        let limits = SessionLimits {
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(60),
            max_sessions: 10,
            max_per_principal: 10,
            touch_every: Duration::from_secs(1),
        };
        let (a, b) = (
            Sessions::new(limits, store.clone()),
            Sessions::new(limits, store),
        );
        let id = start(&a, "obb_x").await;
        assert_eq!(b.get(&id).await.unwrap().bearer.as_str(), "obb_x");
        b.end(&id).await.unwrap();
        assert!(a.get(&id).await.is_none());
    }

    #[test]
    fn cookies_are_read_by_name_and_set_with_their_flags() {
        let mut h = http::HeaderMap::new();
        h.append(
            http::header::COOKIE,
            "a=1; obhut_console=abc".parse().unwrap(),
        );
        h.append(http::header::COOKIE, "b=2".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "obhut"), None);
        let c = set_cookie(COOKIE, "v", true, None);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"));
        assert!(!set_cookie(COOKIE, "v", false, None).contains("Secure"));
        assert!(set_cookie(COOKIE, "", false, Some(0)).contains("Max-Age=0"));
    }

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
