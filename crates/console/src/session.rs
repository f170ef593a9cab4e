//! Console sessions: a random id in an HttpOnly, SameSite=Strict cookie (Secure over TLS) names
//! a server-side record of the principal, its admin bearer and its CSRF token. Sessions end
//! after an idle time, after an absolute time, or when signed out; the store is bounded.
//!
//! It owns the bearers of signed-in principals, in memory only, and never logs them.

use rand::RngExt;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
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
    /// Sessions at most; signing in beyond ends the least recently used one.
    pub max_sessions: usize,
}

/// Who a session is, as the admin API's `whoami` said at sign-in.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub role: String,
    pub tenant: Option<String>,
}

struct Session {
    principal: Principal,
    bearer: Zeroizing<String>,
    csrf: String,
    started: Instant,
    used: Instant,
}

/// A session as a request sees it.
pub struct Current {
    pub id: String,
    pub principal: Principal,
    pub bearer: Zeroizing<String>,
    pub csrf: String,
}

pub struct Sessions {
    limits: SessionLimits,
    by_id: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes, hex: a session id or a CSRF token.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex_simd::encode_to_string(bytes, hex_simd::AsciiCase::Lower)
}

/// Whether two secrets are equal, in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Sessions {
    pub fn new(limits: SessionLimits) -> Self {
        Self {
            limits,
            by_id: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.by_id.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn live(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.started) < self.limits.absolute
            && now.duration_since(s.used) < self.limits.idle
    }

    /// Starts a session; its id.
    pub fn start(&self, principal: Principal, bearer: Zeroizing<String>) -> String {
        let now = Instant::now();
        let id = random_token();
        let mut map = self.lock();
        map.retain(|_, s| self.live(s, now));
        while map.len() >= self.limits.max_sessions {
            let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.used)
                .map(|(id, _)| id.clone())
            else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                principal,
                bearer,
                csrf: random_token(),
                started: now,
                used: now,
            },
        );
        id
    }

    /// The live session `id` names, marked as used now.
    pub fn get(&self, id: &str) -> Option<Current> {
        let now = Instant::now();
        let mut map = self.lock();
        let live = map.get(id).is_some_and(|s| self.live(s, now));
        if !live {
            map.remove(id);
            return None;
        }
        let s = map.get_mut(id)?;
        s.used = now;
        Some(Current {
            id: id.to_owned(),
            principal: s.principal.clone(),
            bearer: s.bearer.clone(),
            csrf: s.csrf.clone(),
        })
    }

    /// Ends session `id`.
    pub fn end(&self, id: &str) {
        self.lock().remove(id);
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

    #[test]
    fn a_session_ends_when_idle_too_long_or_signed_out() {
        let sessions = Sessions::new(SessionLimits {
            idle: Duration::from_millis(50),
            absolute: Duration::from_secs(60),
            max_sessions: 10,
        });
        let id = sessions.start(who(), Zeroizing::new("obb_x".into()));
        assert!(sessions.get(&id).is_some());
        std::thread::sleep(Duration::from_millis(80));
        assert!(sessions.get(&id).is_none(), "idle session still live");
        let id = sessions.start(who(), Zeroizing::new("obb_x".into()));
        sessions.end(&id);
        assert!(sessions.get(&id).is_none(), "signed-out session still live");
        assert!(sessions.get("not-a-session").is_none());
    }

    #[test]
    fn a_session_ends_at_its_absolute_limit_even_if_used() {
        let sessions = Sessions::new(SessionLimits {
            idle: Duration::from_secs(60),
            absolute: Duration::from_millis(600),
            max_sessions: 10,
        });
        let id = sessions.start(who(), Zeroizing::new("obb_x".into()));
        // Used well within the limit (with room for a loaded machine), then past it.
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(50));
            assert!(sessions.get(&id).is_some());
        }
        std::thread::sleep(Duration::from_millis(600));
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn the_store_is_bounded_and_drops_the_least_recently_used() {
        let sessions = Sessions::new(SessionLimits {
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(60),
            max_sessions: 2,
        });
        let a = sessions.start(who(), Zeroizing::new("obb_a".into()));
        std::thread::sleep(Duration::from_millis(2));
        let b = sessions.start(who(), Zeroizing::new("obb_b".into()));
        std::thread::sleep(Duration::from_millis(2));
        assert!(sessions.get(&a).is_some()); // a is now the more recently used
        let c = sessions.start(who(), Zeroizing::new("obb_c".into()));
        assert!(sessions.get(&b).is_none());
        assert!(sessions.get(&a).is_some() && sessions.get(&c).is_some());
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
