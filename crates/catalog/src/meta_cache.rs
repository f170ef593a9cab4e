//! An in-memory copy of the catalog records that change seldom but are read on every request:
//! tenants, buckets, bucket keys and residency rules.
//!
//! It owns no truth: every entry is what a read of the database returned, and every write that
//! may change such a record empties the cache after its commit and before the writer is
//! answered. A lookup stores what it read only if no such write finished while it read (the
//! generation is unchanged), so a read that raced a write never lingers. It holds wrapped
//! bucket keys exactly as the database does, and nothing unwrapped.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// More entries than this and the cache starts over: lookups of names that do not exist are
/// cached too, and must not grow it without bound.
const MAX_ENTRIES: usize = 16_384;

/// What an entry is: a kind of record and its name within the kind.
pub(crate) type MetaKey = (&'static str, String);

type Entry = Arc<dyn Any + Send + Sync>;

#[derive(Default)]
pub(crate) struct MetaCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    generation: u64,
    entries: HashMap<MetaKey, Entry>,
}

impl MetaCache {
    /// The cached value, if any.
    pub(crate) fn get<T: Clone + Send + Sync + 'static>(&self, key: &MetaKey) -> Option<T> {
        let inner = self.inner.lock().ok()?;
        inner.entries.get(key)?.downcast_ref::<T>().cloned()
    }

    /// Taken before a lookup reads the database; handed back to [`MetaCache::put`].
    pub(crate) fn generation(&self) -> Option<u64> {
        self.inner.lock().ok().map(|i| i.generation)
    }

    /// Stores what a lookup read, unless a write finished since `generation` was taken.
    pub(crate) fn put<T: Clone + Send + Sync + 'static>(
        &self,
        key: MetaKey,
        generation: Option<u64>,
        value: &T,
    ) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if generation != Some(inner.generation) {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES {
            inner.entries.clear();
        }
        inner.entries.insert(key, Arc::new(value.clone()));
    }

    /// Forgets everything; called once a write that may change a cached record has committed.
    pub(crate) fn invalidate(&self) {
        let mut inner = match self.inner.lock() {
            Ok(inner) => inner,
            // A panic elsewhere while holding the lock: the entries are still only copies.
            Err(poisoned) => poisoned.into_inner(),
        };
        inner.generation += 1;
        inner.entries.clear();
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
    fn it_stays_bounded() {
        let cache = MetaCache::default();
        for i in 0..MAX_ENTRIES + 10 {
            cache.put(key(&i.to_string()), cache.generation(), &i);
        }
        assert!(cache.inner.lock().unwrap().entries.len() <= MAX_ENTRIES);
    }
}
