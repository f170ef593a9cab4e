//! The sites this process can reach: each registered site's label (id, jurisdiction, state),
//! its open handle, and whether it passed its last health check.
//!
//! Shared by the data path (placement, reads) and by maintenance (repair, scrubbing, health
//! probes); it holds handles to sites, never anything about what they store.

use obhut_core::{SiteInfo, SiteState};
use obhut_sites::{Capacity, Site};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The sites this process can reach, with what placement needs to know about them. Shared by
/// every clone; sites are added, changed and removed while the process runs.
#[derive(Clone, Default)]
pub struct SiteSet {
    inner: Arc<RwLock<SiteMap>>,
}

#[derive(Default)]
struct SiteMap {
    infos: Vec<SiteInfo>,
    by_id: HashMap<String, Arc<dyn Site>>,
    /// Sites whose last health check failed: down until a check passes again.
    failing: HashSet<String>,
}

impl SiteSet {
    #[must_use]
    pub fn new(sites: Vec<(SiteInfo, Arc<dyn Site>)>) -> Self {
        let set = Self::default();
        for (info, site) in sites {
            set.upsert(info, Some(site));
        }
        set
    }

    fn read(&self) -> RwLockReadGuard<'_, SiteMap> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, SiteMap> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The sites, in registry order, with the state placement and repair go by: a site that
    /// failed its last health check, or that this process could not open, is down.
    #[must_use]
    pub fn infos(&self) -> Vec<SiteInfo> {
        let map = self.read();
        map.infos
            .iter()
            .map(|i| {
                let mut i = i.clone();
                if map.failing.contains(&i.id) || !map.by_id.contains_key(&i.id) {
                    i.state = SiteState::Down;
                }
                i
            })
            .collect()
    }

    /// Whether the site is open here and passed its last health check.
    #[must_use]
    pub fn is_healthy(&self, id: &str) -> bool {
        let map = self.read();
        map.by_id.contains_key(id) && !map.failing.contains(id)
    }

    /// Records a health check's outcome; returns whether the site's health changed.
    pub fn set_health(&self, id: &str, healthy: bool) -> bool {
        let mut map = self.write();
        if healthy {
            map.failing.remove(id)
        } else {
            map.failing.insert(id.to_owned())
        }
    }

    /// Every open site with its id.
    #[must_use]
    pub fn handles(&self) -> Vec<(String, Arc<dyn Site>)> {
        self.read()
            .by_id
            .iter()
            .map(|(id, s)| (id.clone(), Arc::clone(s)))
            .collect()
    }

    #[must_use]
    pub fn get(&self, id: &str) -> Option<Arc<dyn Site>> {
        self.read().by_id.get(id).cloned()
    }

    /// Every open site.
    #[must_use]
    pub fn all(&self) -> Vec<Arc<dyn Site>> {
        self.read().by_id.values().cloned().collect()
    }

    /// Adds a site or updates what is known about it; `site` replaces the handle if given
    /// (wrapped to record its latencies and failures in the process's metrics).
    pub fn upsert(&self, info: SiteInfo, site: Option<Arc<dyn Site>>) {
        let mut map = self.write();
        if let Some(site) = site {
            map.by_id
                .insert(info.id.clone(), crate::metered::MeteredSite::wrap(site));
        }
        match map.infos.iter_mut().find(|i| i.id == info.id) {
            Some(existing) => *existing = info,
            None => {
                map.infos.push(info);
                map.infos.sort_by(|a, b| a.id.cmp(&b.id));
            }
        }
    }

    /// Adds a site or updates what is known about it, with exactly `site` as its handle:
    /// `None` leaves it registered but not open here (down), e.g. when its new backend cannot
    /// be opened; the handle it had is never used again.
    pub fn reopen(&self, info: SiteInfo, site: Option<Arc<dyn Site>>) {
        let id = info.id.clone();
        self.upsert(info, site.clone());
        if site.is_none() {
            self.write().by_id.remove(&id);
        }
    }

    /// Forgets a site.
    pub fn remove(&self, id: &str) {
        let mut map = self.write();
        map.infos.retain(|i| i.id != id);
        map.by_id.remove(id);
        map.failing.remove(id);
    }

    /// Each site's space, or why it could not be read.
    pub async fn capacity(&self) -> Vec<(SiteInfo, Result<Option<Capacity>, String>)> {
        let mut out = Vec::new();
        for info in self.infos() {
            let cap = match self.get(&info.id) {
                Some(site) => site.capacity().await.map_err(|e| e.to_string()),
                None => Err("not open".to_owned()),
            };
            out.push((info, cap));
        }
        out
    }
}
