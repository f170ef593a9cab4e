//! What a record held before it was overwritten or deleted is gone from the catalog's files
//! once the catalog is compacted: not in free pages, not in the write-ahead log.

#![allow(clippy::unwrap_used)]

use obhut_catalog::{Catalog, SiteRecord, SqliteCatalog};
use obhut_core::SiteState;
use std::path::Path;

fn site(location: &str) -> SiteRecord {
    SiteRecord {
        id: "de-fra".into(),
        jurisdiction: "DE".into(),
        location: location.into(),
        state: SiteState::Active,
        backend: serde_json::json!({"fs": "/srv/obhut/sites/de-fra"}),
    }
}

/// The database file and its WAL and shared-memory files, as they are on disk.
fn files(path: &Path) -> Vec<u8> {
    let mut all = std::fs::read(path).unwrap();
    for ext in ["-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(ext);
        all.extend(std::fs::read(std::path::PathBuf::from(p)).unwrap_or_default());
    }
    all
}

#[tokio::test]
async fn a_compacted_catalog_keeps_no_copy_of_what_was_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let cat = SqliteCatalog::open(&path).unwrap();
    let old = "what-the-record-held-before-0123456789";
    cat.put_site(&site(old)).await.unwrap();
    cat.put_site(&site("now-something-else")).await.unwrap();
    let holds = |bytes: &[u8]| bytes.windows(old.len()).any(|w| w == old.as_bytes());
    assert!(
        holds(&files(&path)),
        "the overwritten value should still be in the files before compaction"
    );
    cat.compact().await.unwrap();
    assert!(
        !holds(&files(&path)),
        "an overwritten value survived compaction"
    );
    assert_eq!(
        cat.list_sites().await.unwrap(),
        vec![site("now-something-else")]
    );
    // The catalog works on after it.
    cat.put_site(&site("again")).await.unwrap();
    assert_eq!(cat.list_sites().await.unwrap(), vec![site("again")]);
}
