//! A release reads the catalogs the releases before it wrote.
//!
//! `tests/fixtures/catalog-v<N>.db` is a catalog written by the release whose schema version
//! was N, holding one record of every kind (see [`write_catalog`]); each is opened by this
//! release and every record is read back through the [`Catalog`] trait. Once checked in, a
//! fixture never changes: a change of layout is a new migration in `src/sqlite.rs`, and the
//! release that makes it adds its own `catalog-v<N+1>.db` beside the old ones.
//!
//! To write the fixture of the current schema version (only when adding a version, or if the
//! file is lost), run
//! `OBHUT_WRITE_FIXTURES=1 cargo test -p obhut-catalog --test backward_compatibility`;
//! it is written with 512-byte pages and vacuumed, to stay a few KiB.

#![allow(clippy::unwrap_used)]

use obhut_catalog::{
    AccessKey, Bucket, BucketKey, Catalog, Chunk, ConsoleSession, ListFrom, ObjectRecord, Part,
    PutCondition, Quota, QuotaTarget, ResidencyRule, SessionBounds, SessionCutoff, SiteRecord,
    SqliteCatalog, Tenant, Upload, config_kind,
};
use obhut_core::{BlobId, PolicyScope, SiteState};
use rusqlite::Connection;
use std::path::{Path, PathBuf};

fn fixture(version: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("catalog-v{version}.db"))
}

/// A copy of a fixture in a temporary directory: opening a catalog writes to it.
fn copy_of(version: u32) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    std::fs::copy(fixture(version), &path)
        .unwrap_or_else(|e| panic!("fixture {}: {e}", fixture(version).display()));
    (dir, path)
}

fn user_version(path: &Path) -> i64 {
    Connection::open(path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

fn set_user_version(path: &Path, version: i64) {
    Connection::open(path)
        .unwrap()
        .pragma_update(None, "user_version", version)
        .unwrap();
}

fn blob(n: u8) -> BlobId {
    BlobId::parse(&format!("{n:02x}").repeat(16)).unwrap()
}

fn tenant() -> Tenant {
    Tenant {
        name: "acme".into(),
        jurisdictions: vec!["DE".into(), "AT".into()],
        min_sites: 2,
        created_ms: 1_700_000_000_000,
    }
}

fn access_key() -> AccessKey {
    AccessKey {
        access_key_id: "OBHUTFIXTUREKEY00001".into(),
        tenant: "acme".into(),
        secret: "fixture-secret-0123456789abcdefghijklmn".into(),
        created_ms: 1_700_000_000_001,
    }
}

fn site() -> SiteRecord {
    SiteRecord {
        id: "de-fra".into(),
        jurisdiction: "DE".into(),
        location: "Frankfurt".into(),
        state: SiteState::Draining,
        backend: serde_json::json!({"fs": "/srv/obhut/sites/de-fra"}),
    }
}

fn tenant_rule() -> ResidencyRule {
    ResidencyRule {
        jurisdictions: None,
        min_sites: None,
        degraded_writes: Some(true),
    }
}

fn bucket_rule() -> ResidencyRule {
    ResidencyRule {
        jurisdictions: Some(vec!["DE".into()]),
        min_sites: Some(2),
        degraded_writes: None,
    }
}

fn bucket() -> Bucket {
    Bucket {
        name: "photos".into(),
        tenant: "acme".into(),
        created_ms: 1_700_000_000_002,
        versioning: Default::default(),
    }
}

fn bucket_key(version: u32) -> BucketKey {
    BucketKey {
        bucket: "photos".into(),
        version,
        wrapped: vec![0xb0 + u8::try_from(version).unwrap(); 61],
        kcv: vec![version.to_be_bytes()[3]; 8],
        created_ms: 1_700_000_000_003,
    }
}

fn object() -> ObjectRecord {
    ObjectRecord {
        bucket: "photos".into(),
        key: "2024/caf\u{e9}.jpg".into(),
        size: 70_000,
        etag: "\"9e107d9d372bb6826bd81d3542a419d6\"".into(),
        last_modified_ms: 1_700_000_000_004,
        envelope: br#"{"format":1,"key_version":2}"#.to_vec(),
        meta: vec![1, 2, 3, 4],
        sites: vec!["de-fra".into(), "de-mgd".into()],
        chunks: vec![
            Chunk {
                blob: blob(1),
                size: 65_536,
                part: 1,
                crc32c: Some(0xdead_beef),
            },
            Chunk {
                blob: blob(2),
                size: 4_464,
                part: 2,
                crc32c: None,
            },
        ],
        version_id: None,
    }
}

/// The upload as a catalog of schema `version` holds it: placements are kept from version 2
/// on, and an upload of version 1 reads back without one.
fn upload(version: u32) -> Upload {
    Upload {
        upload_id: "upload-0001".into(),
        bucket: "photos".into(),
        key: "big/video.mp4".into(),
        initiated_ms: 1_700_000_000_005,
        envelope: b"upload envelope".to_vec(),
        meta: vec![5, 6, 7],
        sites: if version >= 2 {
            vec!["de-fra".into(), "de-mgd".into()]
        } else {
            Vec::new()
        },
    }
}

fn part() -> Part {
    Part {
        upload_id: "upload-0001".into(),
        part_number: 3,
        chunk: Chunk {
            blob: blob(3),
            size: 5_242_880,
            part: 3,
            crc32c: Some(7),
        },
        etag: "\"part-3\"".into(),
        checksums: br#"{"CRC32":"AAAAAA=="}"#.to_vec(),
        sites: vec!["de-fra".into(), "de-mgd".into()],
        last_modified_ms: 1_700_000_000_006,
    }
}

/// Writes one record of every kind through this release's catalog.
async fn write_catalog(cat: &dyn Catalog) {
    cat.create_tenant(&tenant()).await.unwrap();
    cat.put_site(&site()).await.unwrap();
    cat.put_rule(&PolicyScope::Tenant("acme".into()), &tenant_rule())
        .await
        .unwrap();
    cat.create_bucket(&bucket(), &bucket_key(1)).await.unwrap();
    cat.add_bucket_key(&bucket(), &bucket_key(2)).await.unwrap();
    cat.put_rule(&PolicyScope::Bucket("photos".into()), &bucket_rule())
        .await
        .unwrap();
    cat.put_object(&bucket(), &object(), PutCondition::Absent)
        .await
        .unwrap();
    cat.create_upload(&bucket(), &upload(SqliteCatalog::SCHEMA_VERSION))
        .await
        .unwrap();
    cat.put_part(&bucket(), &part()).await.unwrap();
    if SqliteCatalog::SCHEMA_VERSION >= 3 {
        cat.set_upgrade_done(UPGRADE, UPGRADE_DONE_MS)
            .await
            .unwrap();
    }
    if SqliteCatalog::SCHEMA_VERSION >= 4 {
        cat.set_quota(QuotaTarget::Tenant("acme"), Some(&quota()))
            .await
            .unwrap();
    }
    if SqliteCatalog::SCHEMA_VERSION >= 7 {
        cat.put_bucket_config(&bucket(), config_kind::CORS, Some(CORS), 1_700_000_000_010)
            .await
            .unwrap();
    }
    if SqliteCatalog::SCHEMA_VERSION >= 8 {
        cat.note_unreferenced("de-fra", &[blob(9)]).await.unwrap();
    }
    if SqliteCatalog::SCHEMA_VERSION >= 9 {
        cat.put_object_lock(
            &bucket(),
            "cat.jpg",
            LOCKED_VERSION,
            LOCK,
            1_700_000_000_011,
        )
        .await
        .unwrap();
    }
    if SqliteCatalog::SCHEMA_VERSION >= 10 {
        cat.init_console_key("session", CONSOLE_KEY, 1_700_000_000_012)
            .await
            .unwrap();
        let none_expired = SessionCutoff {
            used_before_ms: 0,
            started_before_ms: 0,
        };
        let bounds = SessionBounds {
            max_sessions: 10,
            max_per_owner: 10,
        };
        assert!(
            cat.start_console_session(
                &console_session(SqliteCatalog::SCHEMA_VERSION),
                bounds,
                none_expired
            )
            .await
            .unwrap()
        );
    }
}

/// The console session and session key the fixtures of version 10 on hold; from version 11,
/// with its owner's tag and its key's id.
fn console_session(version: u32) -> ConsoleSession {
    ConsoleSession {
        id_hash: "ab".repeat(32),
        sealed: b"sealed console session".to_vec(),
        started_ms: 1_700_000_000_012,
        used_ms: 1_700_000_000_013,
        owner: (version >= 11).then(|| "cd".repeat(32)),
        key_id: (version >= 11).then(|| "ef".repeat(16)),
    }
}
const CONSOLE_KEY: &str = "sealed console key";

/// The object lock record the fixtures of version 9 on hold (`object_locks`).
const LOCK: &[u8] = b"sealed lock record";
const LOCKED_VERSION: &str = "0123456789abcdef0123456789abcdef";

/// The bucket configuration the fixtures of version 7 on hold (`bucket_configs`).
const CORS: &[u8] = br#"{"rules":[]}"#;

/// The tenant quota the fixtures of version 4 on hold.
fn quota() -> Quota {
    Quota {
        max_bytes: Some(10 << 30),
        max_objects: Some(1_000),
    }
}

/// The upgrade marker the fixtures of version 3 on hold (`upgrades`).
const UPGRADE: &str = "bind-object-keys-and-seal-etags";
const UPGRADE_DONE_MS: i64 = 1_700_000_000_009;

/// Reads every record [`write_catalog`] of schema `version` wrote, and checks each field.
async fn assert_catalog(cat: &dyn Catalog, version: u32) {
    assert_eq!(
        cat.console_key("session").await.unwrap().as_deref(),
        (version >= 10).then_some(CONSOLE_KEY)
    );
    assert_eq!(
        cat.get_console_session(&"ab".repeat(32)).await.unwrap(),
        (version >= 10).then(|| console_session(version))
    );
    assert_eq!(
        cat.get_object_lock(&bucket(), "cat.jpg", LOCKED_VERSION)
            .await
            .unwrap()
            .as_deref(),
        (version >= 9).then_some(LOCK)
    );
    assert_eq!(cat.get_tenant("acme").await.unwrap(), Some(tenant()));
    assert_eq!(cat.list_tenants().await.unwrap(), vec![tenant()]);
    assert_eq!(cat.list_sites().await.unwrap(), vec![site()]);
    assert_eq!(
        cat.get_rule(&PolicyScope::Tenant("acme".into()))
            .await
            .unwrap(),
        Some(tenant_rule())
    );
    assert_eq!(
        cat.get_rule(&PolicyScope::Bucket("photos".into()))
            .await
            .unwrap(),
        Some(bucket_rule())
    );
    assert_eq!(cat.get_bucket("photos").await.unwrap(), Some(bucket()));
    assert_eq!(cat.list_buckets("acme").await.unwrap(), vec![bucket()]);
    assert_eq!(
        cat.get_bucket_key("photos", 1).await.unwrap(),
        Some(bucket_key(1))
    );
    assert_eq!(
        cat.current_bucket_key("photos").await.unwrap(),
        Some(bucket_key(2))
    );
    let o = object();
    assert_eq!(cat.get_object("photos", &o.key).await.unwrap(), Some(o));
    assert_eq!(
        cat.list_objects(&bucket(), "2024/", ListFrom::Start, 10)
            .await
            .unwrap(),
        vec![object()]
    );
    assert_eq!(
        cat.get_upload("upload-0001").await.unwrap(),
        Some(upload(version))
    );
    assert_eq!(
        cat.list_uploads(&bucket(), "", None, 10).await.unwrap(),
        vec![upload(version)]
    );
    assert_eq!(
        cat.list_parts("upload-0001", 0, 10).await.unwrap(),
        vec![part()]
    );
    let mut referenced = cat.referenced_blobs().await.unwrap();
    referenced.sort_by_key(|(site, blob)| (site.clone(), blob.to_string()));
    let mut expected: Vec<(String, BlobId)> = ["de-fra", "de-mgd"]
        .iter()
        .flat_map(|s| [blob(1), blob(2), blob(3)].map(|b| ((*s).to_owned(), b)))
        .collect();
    expected.sort_by_key(|(site, blob)| (site.clone(), blob.to_string()));
    assert_eq!(referenced, expected);
    assert_eq!(cat.site_references("de-fra").await.unwrap(), 2);
    // What the bucket holds, counted by the migration to version 4 or by the writes since:
    // the object and the open upload's part.
    let usage = cat
        .usage(&PolicyScope::Bucket("photos".into()), 0)
        .await
        .unwrap();
    assert_eq!((usage.bytes, usage.objects), (70_000 + 5_242_880, 1));
    assert_eq!(
        cat.usage(&PolicyScope::Tenant("acme".into()), 0)
            .await
            .unwrap(),
        usage
    );
    assert_eq!(
        cat.get_quota(&PolicyScope::Tenant("acme".into()))
            .await
            .unwrap(),
        (version >= 4).then(quota)
    );
    assert_eq!(
        cat.get_bucket_config(&bucket(), config_kind::CORS)
            .await
            .unwrap()
            .as_deref(),
        (version >= 7).then_some(CORS)
    );
    // Orphan collection's record (version 8): a blob found unreferenced when the catalog was
    // written keeps that time; a catalog from before it starts with none.
    let (now, since) = cat.note_unreferenced("de-fra", &[blob(9)]).await.unwrap();
    assert_eq!(since.len(), 1);
    if version >= 8 {
        assert!(since[0].1 <= now, "{since:?} at {now}");
        let (_, again) = cat.note_unreferenced("de-fra", &[blob(9)]).await.unwrap();
        assert_eq!(again, since, "the time first found is kept");
    } else {
        assert_eq!(since, vec![(blob(9), now)]);
        // Forgotten again, so that reading twice reads the same.
        cat.note_unreferenced("de-fra", &[]).await.unwrap();
    }
}

/// After reading, the catalog is still usable for writes: the upload completes.
async fn assert_writable(cat: &dyn Catalog) {
    let mut done = object();
    done.key = "big/video.mp4".into();
    done.chunks = vec![part().chunk];
    let (replaced, unused) = cat
        .complete_upload(&bucket(), "upload-0001", &done, PutCondition::Absent)
        .await
        .unwrap();
    assert_eq!((replaced, unused), (None, Vec::new()));
    assert_eq!(
        cat.get_object("photos", "big/video.mp4").await.unwrap(),
        Some(done)
    );
}

#[tokio::test]
async fn reads_every_record_of_a_catalog_written_by_schema_version_1() {
    let (_dir, path) = copy_of(1);
    assert_eq!(user_version(&path), 1);
    let cat = SqliteCatalog::open(&path).unwrap();
    assert_catalog(&cat, 1).await;
    assert_eq!(
        cat.upgrade_done(UPGRADE).await.unwrap(),
        None,
        "a catalog of version 1 still needs the gateway's upgrade of its records"
    );
    assert_writable(&cat).await;
    assert_eq!(
        user_version(&path),
        i64::from(SqliteCatalog::SCHEMA_VERSION),
        "opening brings the catalog to this release's version"
    );
}

/// Version 1 kept S3 secret keys in clear: they are read once (to be handed to the trustee),
/// then erased so that no copy is left in the database's files.
#[tokio::test]
async fn access_keys_kept_in_clear_are_read_then_erased_without_a_trace() {
    let (_dir, path) = copy_of(1);
    let secret = access_key().secret;
    let bytes_of = |path: &Path| {
        let mut all = std::fs::read(path).unwrap();
        for ext in ["-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(ext);
            all.extend(std::fs::read(PathBuf::from(p)).unwrap_or_default());
        }
        all
    };
    let contains = |hay: &[u8]| hay.windows(secret.len()).any(|w| w == secret.as_bytes());
    assert!(contains(&bytes_of(&path)), "the fixture holds the secret");
    let cat = SqliteCatalog::open(&path).unwrap();
    assert_eq!(cat.legacy_access_keys().await.unwrap(), vec![access_key()]);
    cat.erase_legacy_access_keys().await.unwrap();
    assert_eq!(cat.legacy_access_keys().await.unwrap(), vec![]);
    assert_catalog(&cat, 1).await;
    assert!(
        !contains(&bytes_of(&path)),
        "a copy of the secret is left in the files"
    );
    // Erasing again (every start does) changes nothing.
    cat.erase_legacy_access_keys().await.unwrap();
    drop(cat);
    let cat = SqliteCatalog::open(&path).unwrap();
    assert_eq!(cat.legacy_access_keys().await.unwrap(), vec![]);
}

#[tokio::test]
async fn reads_every_record_of_a_catalog_written_by_schema_version_2() {
    let (_dir, path) = copy_of(2);
    assert_eq!(user_version(&path), 2);
    let cat = SqliteCatalog::open(&path).unwrap();
    assert_catalog(&cat, 2).await;
    assert_writable(&cat).await;
    assert_eq!(
        user_version(&path),
        i64::from(SqliteCatalog::SCHEMA_VERSION)
    );
}

#[tokio::test]
async fn reads_every_record_of_a_catalog_written_by_schema_version_3() {
    let (_dir, path) = copy_of(3);
    assert_eq!(user_version(&path), 3);
    let cat = SqliteCatalog::open(&path).unwrap();
    assert_catalog(&cat, 3).await;
    assert_eq!(
        cat.upgrade_done(UPGRADE).await.unwrap(),
        Some(UPGRADE_DONE_MS)
    );
    assert_writable(&cat).await;
    assert_eq!(
        user_version(&path),
        i64::from(SqliteCatalog::SCHEMA_VERSION)
    );
}

#[tokio::test]
async fn reads_every_record_of_a_catalog_written_by_schema_version_4() {
    let (_dir, path) = copy_of(4);
    assert_eq!(user_version(&path), 4);
    let cat = SqliteCatalog::open(&path).unwrap();
    assert_catalog(&cat, 4).await;
    assert_writable(&cat).await;
    assert_eq!(
        user_version(&path),
        i64::from(SqliteCatalog::SCHEMA_VERSION)
    );
}

#[tokio::test]
async fn reads_every_record_of_a_catalog_written_by_schema_version_5() {
    let (_dir, path) = copy_of(5);
    assert_eq!(user_version(&path), 5);
    let cat = SqliteCatalog::open(&path).unwrap();
    assert_catalog(&cat, 5).await;
    assert_writable(&cat).await;
    assert_eq!(
        user_version(&path),
        i64::from(SqliteCatalog::SCHEMA_VERSION)
    );
}

#[tokio::test]
async fn reads_every_record_of_a_catalog_written_by_schema_version_6() {
    let (_dir, path) = copy_of(6);
    assert_eq!(user_version(&path), 6);
    let cat = SqliteCatalog::open(&path).unwrap();
    assert_catalog(&cat, 6).await;
    assert_writable(&cat).await;
    assert_eq!(
        user_version(&path),
        i64::from(SqliteCatalog::SCHEMA_VERSION)
    );
}

#[tokio::test]
async fn reads_every_record_of_a_catalog_written_by_schema_version_7() {
    let (_dir, path) = copy_of(7);
    assert_eq!(user_version(&path), 7);
    let cat = SqliteCatalog::open(&path).unwrap();
    assert_catalog(&cat, 7).await;
    assert_writable(&cat).await;
    assert_eq!(
        user_version(&path),
        i64::from(SqliteCatalog::SCHEMA_VERSION)
    );
}

#[tokio::test]
async fn reads_every_record_of_a_catalog_written_by_schema_version_8() {
    let (_dir, path) = copy_of(8);
    assert_eq!(user_version(&path), 8);
    let cat = SqliteCatalog::open(&path).unwrap();
    assert_catalog(&cat, 8).await;
    assert_writable(&cat).await;
    assert_eq!(
        user_version(&path),
        i64::from(SqliteCatalog::SCHEMA_VERSION)
    );
}

#[tokio::test]
async fn reads_every_record_of_a_catalog_written_by_schema_version_9() {
    let (_dir, path) = copy_of(9);
    assert_eq!(user_version(&path), 9);
    let cat = SqliteCatalog::open(&path).unwrap();
    assert_catalog(&cat, 9).await;
    assert_writable(&cat).await;
    assert_eq!(
        user_version(&path),
        i64::from(SqliteCatalog::SCHEMA_VERSION)
    );
}

#[tokio::test]
async fn reads_every_record_of_a_catalog_written_by_schema_version_10() {
    let (_dir, path) = copy_of(10);
    assert_eq!(user_version(&path), 10);
    let cat = SqliteCatalog::open(&path).unwrap();
    assert_catalog(&cat, 10).await;
    assert_writable(&cat).await;
    assert_eq!(
        user_version(&path),
        i64::from(SqliteCatalog::SCHEMA_VERSION)
    );
}

#[tokio::test]
async fn reads_every_record_of_a_catalog_written_by_schema_version_11() {
    let (_dir, path) = copy_of(11);
    assert_eq!(user_version(&path), 11);
    let cat = SqliteCatalog::open(&path).unwrap();
    assert_catalog(&cat, 11).await;
    assert_writable(&cat).await;
    // Schema 12's registry of gateways is there, empty, and takes a beat.
    assert!(cat.list_gateways(10).await.unwrap().gateways.is_empty());
    cat.beat_gateway(&obhut_catalog::GatewayBeat {
        id: "gw".into(),
        version: "v".into(),
        started_ms: 1,
        background: true,
        status: "{}".into(),
    })
    .await
    .unwrap();
    assert_eq!(cat.list_gateways(10).await.unwrap().gateways.len(), 1);
    assert_eq!(
        user_version(&path),
        i64::from(SqliteCatalog::SCHEMA_VERSION)
    );
}

#[tokio::test]
async fn a_catalog_written_before_versions_were_recorded_is_adopted_and_stamped() {
    // The releases before schema versions wrote version 1's tables and no user_version.
    let (_dir, path) = copy_of(1);
    set_user_version(&path, 0);
    let cat = SqliteCatalog::open(&path).unwrap();
    assert_catalog(&cat, 1).await;
    drop(cat);
    assert_eq!(
        user_version(&path),
        i64::from(SqliteCatalog::SCHEMA_VERSION)
    );
}

#[tokio::test]
async fn a_catalog_from_a_newer_release_is_refused_naming_both_versions() {
    let (_dir, path) = copy_of(1);
    let newer = SqliteCatalog::SCHEMA_VERSION + 1;
    set_user_version(&path, i64::from(newer));
    let Err(err) = SqliteCatalog::open(&path) else {
        panic!("a catalog of schema version {newer} was opened");
    };
    let text = err.to_string();
    assert!(
        text.contains("catalog.db")
            && text.contains(&format!("schema version {newer}"))
            && text.contains(&format!("versions up to {}", SqliteCatalog::SCHEMA_VERSION)),
        "{text}"
    );
    assert_eq!(user_version(&path), i64::from(newer), "left untouched");
}

/// The fixture writer still writes what the reader expects (and, with `OBHUT_WRITE_FIXTURES`
/// set, writes the fixture of the current schema version).
#[tokio::test]
async fn the_fixture_writer_writes_what_the_reader_expects() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    // Small pages keep the fixture small: the page size is fixed when the file is first
    // written, here by a table made and dropped before the catalog's own.
    Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA page_size = 512; CREATE TABLE t (x); DROP TABLE t;")
        .unwrap();
    let cat = SqliteCatalog::open(&path).unwrap();
    write_catalog(&cat).await;
    assert_catalog(&cat, SqliteCatalog::SCHEMA_VERSION).await;
    drop(cat);
    let vacuumed = dir.path().join("vacuumed.db");
    Connection::open(&path)
        .unwrap()
        .execute("VACUUM INTO ?1", [vacuumed.to_str().unwrap()])
        .unwrap();
    let reopened = SqliteCatalog::open(&vacuumed).unwrap();
    assert_catalog(&reopened, SqliteCatalog::SCHEMA_VERSION).await;
    drop(reopened);
    if std::env::var_os("OBHUT_WRITE_FIXTURES").is_some() {
        let target = fixture(SqliteCatalog::SCHEMA_VERSION);
        let _ = std::fs::remove_file(&target);
        Connection::open(&path)
            .unwrap()
            .execute("VACUUM INTO ?1", [target.to_str().unwrap()])
            .unwrap();
        // A standalone file, whatever journal mode the catalog runs in.
        Connection::open(&target)
            .unwrap()
            .pragma_update(None, "journal_mode", "DELETE")
            .unwrap();
    }
}
