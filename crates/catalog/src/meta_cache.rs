//! An in-memory copy of the catalog records that change seldom but are read on every request:
//! tenants, buckets, bucket keys and residency rules.
//!
//! It owns no truth: every entry is what a read of the database returned, and every write that
//! may change such a record empties the cache after its commit and before the writer is
//! answered. A lookup stores what it read only if no such write finished while it read (the
//! generation is unchanged), so a read that raced a write never lingers. It holds wrapped
//! bucket keys exactly as the database does, and nothing unwrapped.
//!
//! The embedded catalog is the only writer of its file, so its own writes are all there is to
//! hear of. The catalog on PostgreSQL also empties it when another gateway's write is notified
//! (`postgres.rs`), keeps it switched off while it cannot hear of such writes, and lets every
//! entry expire after a bound of its own as a backstop ([`MetaCache::expiring`]).

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// More entries than this and the cache starts over: lookups of names that do not exist are
/// cached too, and must not grow it without bound.
const MAX_ENTRIES: usize = 16_384;

/// What an entry is: a kind of record and its name within the kind.
pub(crate) type MetaKey = (&'static str, String);

type Entry = Arc<dyn Any + Send + Sync>;

/// When a lookup began: the generation then, and the time.
#[derive(Clone, Copy)]
pub(crate) struct Ticket {
    generation: u64,
    at: Instant,
}

pub(crate) struct MetaCache {
    inner: Mutex<Inner>,
    /// How long an entry is answered from after it was read; `None`: until a write empties it.
    ttl: Option<Duration>,
}

struct Inner {
    generation: u64,
    /// Off, nothing is stored or answered: every lookup reads the database.
    enabled: bool,
    entries: HashMap<MetaKey, (Instant, Entry)>,
}

impl Default for MetaCache {
    /// A cache that is on, and whose entries live until a write empties it.
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                generation: 0,
                enabled: true,
                entries: HashMap::new(),
            }),
            ttl: None,
        }
    }
}

impl MetaCache {
    /// A cache whose entries expire `ttl` after they were read, whatever else happens, and
    /// which starts switched off (until [`MetaCache::enable`]). A zero `ttl` keeps nothing.
    pub(crate) fn expiring(ttl: Duration) -> Self {
        let cache = Self {
            ttl: Some(ttl),
            ..Self::default()
        };
        cache.disable();
        cache
    }

    /// The cached value, if any.
    pub(crate) fn get<T: Clone + Send + Sync + 'static>(&self, key: &MetaKey) -> Option<T> {
        let inner = self.inner.lock().ok()?;
        let (read_at, entry) = inner.entries.get(key)?;
        if self.ttl.is_some_and(|ttl| read_at.elapsed() >= ttl) {
            return None;
        }
        entry.downcast_ref::<T>().cloned()
    }

    /// Taken before a lookup reads the database; handed back to [`MetaCache::put`].
    pub(crate) fn generation(&self) -> Option<Ticket> {
        self.inner.lock().ok().map(|i| Ticket {
            generation: i.generation,
            at: Instant::now(),
        })
    }

    /// Stores what a lookup read, unless a write finished since `ticket` was taken (or the
    /// cache is off). The entry's age counts from the ticket, taken before the read.
    pub(crate) fn put<T: Clone + Send + Sync + 'static>(
        &self,
        key: MetaKey,
        ticket: Option<Ticket>,
        value: &T,
    ) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let Some(ticket) = ticket else {
            return;
        };
        if !inner.enabled || ticket.generation != inner.generation {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES {
            inner.entries.clear();
        }
        inner
            .entries
            .insert(key, (ticket.at, Arc::new(value.clone())));
    }

    /// Forgets everything; called once a write that may change a cached record has committed.
    pub(crate) fn invalidate(&self) {
        self.reset(None);
    }

    /// Forgets everything and stores nothing more until [`MetaCache::enable`]: writes made
    /// meanwhile may not be heard of.
    pub(crate) fn disable(&self) {
        self.reset(Some(false));
    }

    /// Forgets everything (what was read before may have been changed unheard) and stores
    /// again from now on.
    pub(crate) fn enable(&self) {
        self.reset(Some(true));
    }

    /// Whether lookups are stored.
    pub(crate) fn is_enabled(&self) -> bool {
        self.inner.lock().is_ok_and(|i| i.enabled)
    }

    fn reset(&self, enabled: Option<bool>) {
        let mut inner = match self.inner.lock() {
            Ok(inner) => inner,
            // A panic elsewhere while holding the lock: the entries are still only copies.
            Err(poisoned) => poisoned.into_inner(),
        };
        inner.generation += 1;
        inner.entries.clear();
        if let Some(enabled) = enabled {
            inner.enabled = enabled;
        }
        self.inner.clear_poison();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> MetaKey {
        ("tenant", name.to_owned())
    }

    #[test]
    fn stores_and_returns_by_kind_and_name() {
        let cache = MetaCache::default();
        let g = cache.generation();
        cache.put(key("a"), g, &Some(1u32));
        assert_eq!(cache.get::<Option<u32>>(&key("a")), Some(Some(1)));
        assert_eq!(cache.get::<Option<u32>>(&key("b")), None);
        assert_eq!(
            cache.get::<Option<u32>>(&("bucket", "a".to_owned())),
            None,
            "another kind of record with the same name is another entry"
        );
        assert_eq!(
            cache.get::<String>(&key("a")),
            None,
            "another type is a miss"
        );
    }

    #[test]
    fn a_read_that_raced_a_write_is_not_stored() {
        let cache = MetaCache::default();
        let before = cache.generation();
        cache.invalidate();
        cache.put(key("a"), before, &1u32);
        assert_eq!(cache.get::<u32>(&key("a")), None);
        cache.put(key("a"), cache.generation(), &2u32);
        assert_eq!(cache.get::<u32>(&key("a")), Some(2));
        cache.invalidate();
        assert_eq!(
            cache.get::<u32>(&key("a")),
            None,
            "a write empties the cache"
        );
    }

    #[test]
    fn a_disabled_cache_stores_nothing_and_enabling_starts_empty() {
        let cache = MetaCache::default();
        cache.put(key("a"), cache.generation(), &1u32);
        cache.disable();
        assert!(!cache.is_enabled());
        assert_eq!(cache.get::<u32>(&key("a")), None, "disabling empties it");
        let during = cache.generation();
        cache.put(key("a"), during, &2u32);
        assert_eq!(
            cache.get::<u32>(&key("a")),
            None,
            "nothing is stored while off"
        );
        cache.enable();
        cache.put(key("a"), during, &3u32);
        assert_eq!(
            cache.get::<u32>(&key("a")),
            None,
            "a read begun while off is not stored once on"
        );
        cache.put(key("a"), cache.generation(), &4u32);
        assert_eq!(cache.get::<u32>(&key("a")), Some(4));
    }

    #[test]
    fn an_expiring_cache_starts_off_and_forgets_after_its_bound() {
        let cache = MetaCache::expiring(Duration::from_millis(50));
        cache.put(key("a"), cache.generation(), &1u32);
        assert_eq!(cache.get::<u32>(&key("a")), None, "off until enabled");
        cache.enable();
        cache.put(key("a"), cache.generation(), &1u32);
        assert_eq!(cache.get::<u32>(&key("a")), Some(1));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get::<u32>(&key("a")), None, "expired");
        let none = MetaCache::expiring(Duration::ZERO);
        none.enable();
        none.put(key("a"), none.generation(), &1u32);
        assert_eq!(
            none.get::<u32>(&key("a")),
            None,
            "a zero bound keeps nothing"
        );
    }

    #[test]
    fn it_stays_bounded() {
        let cache = MetaCache::default();
        for i in 0..MAX_ENTRIES + 10 {
            cache.put(key(&i.to_string()), cache.generation(), &i);
        }
        assert!(cache.inner.lock().unwrap().entries.len() <= MAX_ENTRIES);
    }
}
