//! The copy of an embedded catalog (`catalog.db`) into PostgreSQL (`obhut catalog migrate`).
//!
//! The source is opened read-only and read in one transaction (one consistent snapshot); it is
//! never changed. Each table is copied in primary-key order, a batch of rows per PostgreSQL
//! transaction, each row inserted or, if a row with its key is there already (an earlier run
//! that was interrupted), overwritten with the same values: running the copy again is always
//! safe. Then every table is read back from PostgreSQL and compared with the source: the
//! number of rows and a SHA-256 digest over every value of every row, in key order, must be
//! equal on both sides.

use crate::{CatalogError, PgCatalog, Result, SqliteCatalog};
use futures::TryStreamExt;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};
use sqlx::AssertSqlSafe;
use sqlx::Row;
use std::path::Path;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Text,
    /// Text or NULL.
    MaybeText,
    Bytes,
}

struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
    /// How many of the first columns are the primary key.
    key: usize,
}

use Kind::{Bytes, Int, MaybeText, Text};

/// Every table of the catalog, parents before the tables that refer to them. (`access_keys`,
/// S3 secrets in clear from releases before the trustee kept them, is never copied: a catalog
/// that still holds some is refused.)
const TABLES: &[Table] = &[
    Table {
        name: "tenants",
        columns: &[
            ("name", Text),
            ("jurisdictions", Text),
            ("min_sites", Int),
            ("created_ms", Int),
        ],
        key: 1,
    },
    Table {
        name: "sites",
        columns: &[("id", Text), ("record", Text)],
        key: 1,
    },
    Table {
        name: "residency",
        columns: &[("scope", Text), ("rule", Text)],
        key: 1,
    },
    Table {
        name: "buckets",
        columns: &[
            ("name", Text),
            ("tenant", Text),
            ("created_ms", Int),
            ("versioning", Int),
        ],
        key: 1,
    },
    Table {
        name: "bucket_keys",
        columns: &[
            ("bucket", Text),
            ("version", Int),
            ("wrapped", Bytes),
            ("kcv", Bytes),
            ("created_ms", Int),
        ],
        key: 2,
    },
    Table {
        name: "objects",
        columns: &[
            ("bucket", Text),
            ("key", Bytes),
            ("size", Int),
            ("etag", Text),
            ("last_modified_ms", Int),
            ("envelope", Bytes),
            ("meta", Bytes),
            ("sites", Text),
            ("chunks", Text),
            ("version_id", Text),
            ("version_order", Int),
        ],
        key: 2,
    },
    Table {
        name: "object_versions",
        columns: &[
            ("bucket", Text),
            ("key", Bytes),
            ("version_order", Int),
            ("size", Int),
            ("etag", Text),
            ("last_modified_ms", Int),
            ("envelope", Bytes),
            ("meta", Bytes),
            ("sites", Text),
            ("chunks", Text),
            ("version_id", Text),
            ("delete_marker", Int),
        ],
        key: 3,
    },
    Table {
        name: "uploads",
        columns: &[
            ("upload_id", Text),
            ("bucket", Text),
            ("key", Bytes),
            ("initiated_ms", Int),
            ("envelope", Bytes),
            ("meta", Bytes),
            ("sites", Text),
        ],
        key: 1,
    },
    Table {
        name: "parts",
        columns: &[
            ("upload_id", Text),
            ("part_number", Int),
            ("chunk", Text),
            ("etag", Text),
            ("checksums", Bytes),
            ("sites", Text),
            ("last_modified_ms", Int),
        ],
        key: 2,
    },
    Table {
        name: "upgrades",
        columns: &[("name", Text), ("done_ms", Int)],
        key: 1,
    },
    Table {
        name: "quotas",
        columns: &[("scope", Text), ("quota", Text)],
        key: 1,
    },
    Table {
        name: "bucket_usage",
        columns: &[
            ("bucket", Text),
            ("shard", Int),
            ("bytes", Int),
            ("objects", Int),
        ],
        key: 2,
    },
    Table {
        name: "reservations",
        columns: &[
            ("id", Text),
            ("bucket", Text),
            ("bytes", Int),
            ("objects", Int),
            ("expires_ms", Int),
        ],
        key: 1,
    },
    Table {
        name: "bucket_configs",
        columns: &[
            ("bucket", Text),
            ("created_ms", Int),
            ("kind", Text),
            ("config", Bytes),
            ("updated_ms", Int),
        ],
        key: 3,
    },
    Table {
        name: "completed_uploads",
        columns: &[
            ("upload_id", Text),
            ("bucket", Text),
            ("created_ms", Int),
            ("key", Bytes),
            ("version_id", Text),
            ("etag", Text),
            ("completed_ms", Int),
        ],
        key: 1,
    },
    Table {
        name: "unreferenced_blobs",
        columns: &[("site", Text), ("blob", Text), ("first_seen_ms", Int)],
        key: 2,
    },
    Table {
        name: "object_locks",
        columns: &[
            ("bucket", Text),
            ("created_ms", Int),
            ("key", Bytes),
            ("version_id", Text),
            ("record", Bytes),
            ("updated_ms", Int),
        ],
        key: 4,
    },
    Table {
        name: "console_keys",
        columns: &[("name", Text), ("sealed", Text), ("created_ms", Int)],
        key: 1,
    },
    Table {
        name: "console_sessions",
        columns: &[
            ("id_hash", Text),
            ("sealed", Bytes),
            ("started_ms", Int),
            ("used_ms", Int),
            ("owner", MaybeText),
            ("key_id", MaybeText),
        ],
        key: 1,
    },
];

/// Rows sent to PostgreSQL in one transaction.
const BATCH: usize = 500;

/// What was copied of one table, and what PostgreSQL holds after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopy {
    pub table: &'static str,
    pub source_rows: u64,
    pub target_rows: u64,
    /// Hex SHA-256 over the source's rows (equal to the target's, or the copy failed).
    pub digest: String,
}

enum Value {
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
    Null,
}

impl Value {
    fn feed(&self, h: &mut Sha256) {
        let (tag, bytes): (u8, &[u8]) = match self {
            Self::Int(v) => {
                h.update([1u8]);
                h.update(v.to_be_bytes());
                return;
            }
            Self::Text(s) => (2, s.as_bytes()),
            Self::Bytes(b) => (3, b),
            Self::Null => {
                h.update([4u8]);
                return;
            }
        };
        h.update([tag]);
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    }
}

/// A table's rows as they are read, counted and digested.
#[derive(Default)]
struct Tally {
    rows: u64,
    hash: Sha256,
}

impl Tally {
    fn add(&mut self, row: &[Value]) {
        self.rows += 1;
        self.hash.update([0xffu8]);
        for v in row {
            v.feed(&mut self.hash);
        }
    }

    fn hex(self) -> String {
        self.hash
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

fn failed(what: impl std::fmt::Display) -> CatalogError {
    CatalogError::Storage(what.to_string())
}

fn columns(t: &Table) -> String {
    t.columns
        .iter()
        .map(|(c, _)| *c)
        .collect::<Vec<_>>()
        .join(", ")
}

fn key_columns(t: &Table) -> String {
    t.columns[..t.key]
        .iter()
        .map(|(c, _)| *c)
        .collect::<Vec<_>>()
        .join(", ")
}

fn select(t: &Table) -> String {
    format!(
        "SELECT {} FROM {} ORDER BY {}",
        columns(t),
        t.name,
        key_columns(t)
    )
}

fn upsert(t: &Table) -> String {
    let params: Vec<String> = (1..=t.columns.len()).map(|i| format!("${i}")).collect();
    let set: Vec<String> = t.columns[t.key..]
        .iter()
        .map(|(c, _)| format!("{c} = EXCLUDED.{c}"))
        .collect();
    format!(
        "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}",
        t.name,
        columns(t),
        params.join(", "),
        key_columns(t),
        set.join(", ")
    )
}

fn read_source_row(t: &Table, row: &rusqlite::Row<'_>, n: u64) -> Result<Vec<Value>> {
    t.columns
        .iter()
        .enumerate()
        .map(|(i, (col, kind))| {
            let v = row.get_ref(i).map_err(failed)?;
            match (kind, v) {
                (Int, ValueRef::Integer(x)) => Ok(Value::Int(x)),
                (MaybeText, ValueRef::Null) => Ok(Value::Null),
                (Text | MaybeText, ValueRef::Text(s)) => Ok(Value::Text(
                    String::from_utf8(s.to_vec()).map_err(|e| {
                        failed(format!("catalog.db: {}.{col} of row {n}: {e}", t.name))
                    })?,
                )),
                (Bytes, ValueRef::Blob(b)) => Ok(Value::Bytes(b.to_vec())),
                (_, other) => Err(failed(format!(
                    "catalog.db: {}.{col} of row {n} holds {:?}, not the column's type: the source catalog is damaged",
                    t.name,
                    other.data_type()
                ))),
            }
        })
        .collect()
}

fn read_target_row(t: &Table, row: &sqlx::postgres::PgRow) -> Result<Vec<Value>> {
    t.columns
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| {
            Ok(match kind {
                Int => Value::Int(row.try_get(i).map_err(failed)?),
                Text => Value::Text(row.try_get(i).map_err(failed)?),
                MaybeText => row
                    .try_get::<Option<String>, _>(i)
                    .map_err(failed)?
                    .map_or(Value::Null, Value::Text),
                Bytes => Value::Bytes(row.try_get(i).map_err(failed)?),
            })
        })
        .collect()
}

async fn write_batch(target: &PgCatalog, t: &Table, rows: &mut Vec<Vec<Value>>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = upsert(t);
    let mut tx = target.pool().begin().await.map_err(failed)?;
    for row in rows.drain(..) {
        let mut q = sqlx::query(AssertSqlSafe(sql.as_str()));
        for v in row {
            q = match v {
                Value::Int(x) => q.bind(x),
                Value::Text(s) => q.bind(s),
                Value::Bytes(b) => q.bind(b),
                Value::Null => q.bind(None::<String>),
            };
        }
        q.execute(&mut *tx)
            .await
            .map_err(|e| failed(format!("PostgreSQL, table {}: {e}", t.name)))?;
    }
    tx.commit().await.map_err(failed)
}

/// Opens `catalog.db` read-only and checks that it can be copied: the schema version this
/// release writes, and no S3 secrets in clear.
fn open_source(path: &Path) -> Result<Connection> {
    if !path.exists() {
        return Err(failed(format!("no catalog at {}", path.display())));
    }
    // Read-only. A catalog closed cleanly has no write-ahead log: it is opened immutable, so
    // that not even an empty log or its index is left beside it. One with a log (its server
    // stopped abruptly) is read with the log, whose index SQLite then keeps beside it.
    let wal = path.with_file_name(format!(
        "{}-wal",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let escaped: String = path
        .to_string_lossy()
        .chars()
        .map(|ch| match ch {
            '%' | '?' | '#' => format!("%{:02X}", ch as u32),
            ch => ch.to_string(),
        })
        .collect();
    let uri = if wal.exists() {
        format!("file:{escaped}?mode=ro")
    } else {
        format!("file:{escaped}?mode=ro&immutable=1")
    };
    let c = Connection::open_with_flags(&uri, flags)
        .map_err(|e| failed(format!("cannot open {} read-only: {e}", path.display())))?;
    c.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(failed)?;
    let version: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| failed(format!("cannot read {}: {e}", path.display())))?;
    let supported = i64::from(SqliteCatalog::SCHEMA_VERSION);
    if version != supported {
        let what = if version > supported {
            "it was written by a newer release: copy it with that release"
        } else {
            "start `obhut serve` on its data directory once to bring it forward, then copy it"
        };
        return Err(failed(format!(
            "{} has schema version {version}; this release copies version {supported}: {what}",
            path.display()
        )));
    }
    let legacy: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'access_keys'",
            [],
            |r| r.get(0),
        )
        .map_err(failed)?;
    if legacy > 0 {
        let keys: i64 = c
            .query_row("SELECT COUNT(*) FROM access_keys", [], |r| r.get(0))
            .map_err(failed)?;
        if keys > 0 {
            return Err(failed(format!(
                "{} holds {keys} S3 access keys in clear, written by an earlier release: start `obhut serve` on its data directory once (its trustee takes them into custody) before copying",
                path.display()
            )));
        }
    }
    Ok(c)
}

/// Copies the embedded catalog at `source` into `target` (brought to the current layout
/// first), then verifies every table; `report` hears of each table once it is verified.
/// Safe to run again after an interruption. The source is never written.
pub async fn copy_embedded(
    source: &Path,
    target: &PgCatalog,
    mut report: impl FnMut(&TableCopy),
) -> Result<Vec<TableCopy>> {
    let src = open_source(source)?;
    target.migrate().await?;
    // One snapshot of the source for the copy and its digests.
    src.execute_batch("BEGIN").map_err(failed)?;
    let mut copied = Vec::new();
    for t in TABLES {
        let mut tally = Tally::default();
        {
            let mut stmt = src.prepare(&select(t)).map_err(failed)?;
            let mut rows = stmt.query([]).map_err(failed)?;
            let mut batch = Vec::with_capacity(BATCH);
            while let Some(row) = rows.next().map_err(failed)? {
                let values = read_source_row(t, row, tally.rows + 1)?;
                tally.add(&values);
                batch.push(values);
                if batch.len() == BATCH {
                    write_batch(target, t, &mut batch).await?;
                }
            }
            write_batch(target, t, &mut batch).await?;
        }
        copied.push((t, tally));
    }
    src.execute_batch("COMMIT").map_err(failed)?;
    drop(src);
    let mut out = Vec::new();
    for (t, source) in copied {
        let mut target_tally = Tally::default();
        let mut c = target.pool().acquire().await.map_err(failed)?;
        let sql = select(t);
        let mut rows = sqlx::query(AssertSqlSafe(sql.as_str())).fetch(&mut *c);
        while let Some(row) = rows.try_next().await.map_err(failed)? {
            target_tally.add(&read_target_row(t, &row)?);
        }
        drop(rows);
        let (source_rows, target_rows) = (source.rows, target_tally.rows);
        let (digest, target_digest) = (source.hex(), target_tally.hex());
        if source_rows != target_rows || digest != target_digest {
            return Err(failed(format!(
                "table {}: the source has {source_rows} rows (digest {}), PostgreSQL {target_rows} (digest {}): they differ; was PostgreSQL written by something else meanwhile, or before? copy into an empty database",
                t.name,
                &digest[..16],
                &target_digest[..16]
            )));
        }
        let done = TableCopy {
            table: t.name,
            source_rows,
            target_rows,
            digest,
        };
        report(&done);
        out.push(done);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::by_name;
    use crate::pg_test_server::fresh_schema;
    use crate::{
        Bucket, BucketKey, Catalog, Chunk, ListFrom, ObjectRecord, Part, PutCondition,
        ResidencyRule, SiteRecord, Tenant, Upload,
    };
    use obhut_core::{BlobId, PolicyScope, SiteState};

    fn sha(path: &Path) -> Option<Vec<u8>> {
        std::fs::read(path)
            .ok()
            .map(|b| Sha256::digest(&b).to_vec())
    }

    /// A catalog with a record of every kind, and more objects than one batch.
    async fn fill(cat: &dyn Catalog) {
        cat.create_tenant(&Tenant {
            name: "t".into(),
            jurisdictions: vec!["DE".into()],
            min_sites: 2,
            created_ms: 1,
        })
        .await
        .unwrap();
        cat.put_site(&SiteRecord {
            id: "de-fra".into(),
            jurisdiction: "DE".into(),
            location: "Frankfurt".into(),
            state: SiteState::Active,
            backend: serde_json::json!({"fs": "/x"}),
        })
        .await
        .unwrap();
        cat.create_bucket(
            &Bucket {
                name: "b".into(),
                tenant: "t".into(),
                created_ms: 2,
                versioning: Default::default(),
            },
            &BucketKey {
                bucket: "b".into(),
                version: 1,
                wrapped: vec![1, 2, 3],
                kcv: vec![0; 8],
                created_ms: 2,
            },
        )
        .await
        .unwrap();
        cat.put_rule(
            &PolicyScope::Bucket("b".into()),
            &ResidencyRule {
                min_sites: Some(2),
                ..ResidencyRule::default()
            },
        )
        .await
        .unwrap();
        for i in 0..(BATCH + 7) {
            let key = if i % 3 == 0 {
                format!("\u{e9}/{i}")
            } else {
                format!("k/{i}")
            };
            by_name::put_object(
                cat,
                &ObjectRecord {
                    bucket: "b".into(),
                    key,
                    size: i as u64,
                    etag: format!("e{i}"),
                    last_modified_ms: 5,
                    envelope: vec![i as u8; 40],
                    meta: Vec::new(),
                    sites: vec!["de-fra".into()],
                    chunks: vec![Chunk {
                        blob: BlobId::random(),
                        size: i as u64,
                        part: 1,
                        crc32c: Some(7),
                    }],
                    version_id: None,
                },
                PutCondition::None,
            )
            .await
            .unwrap();
        }
        by_name::create_upload(
            cat,
            &Upload {
                upload_id: "u1".into(),
                bucket: "b".into(),
                key: "multi".into(),
                initiated_ms: 3,
                envelope: vec![9],
                meta: vec![8],
                sites: vec!["de-fra".into()],
            },
        )
        .await
        .unwrap();
        by_name::put_part(
            cat,
            &Part {
                upload_id: "u1".into(),
                part_number: 1,
                chunk: Chunk {
                    blob: BlobId::random(),
                    size: 5,
                    part: 1,
                    crc32c: None,
                },
                etag: "p1".into(),
                checksums: b"{}".to_vec(),
                sites: vec!["de-fra".into()],
                last_modified_ms: 4,
            },
        )
        .await
        .unwrap();
        // Versions: a new key with two versions, and a delete marker over an older key.
        by_name::set_bucket_versioning(cat, "b", crate::Versioning::Enabled)
            .await
            .unwrap();
        for version in ["11", "22"] {
            by_name::put_object(
                cat,
                &ObjectRecord {
                    bucket: "b".into(),
                    key: "k/0".into(),
                    size: 9,
                    etag: format!("v{version}"),
                    last_modified_ms: 6,
                    envelope: version.as_bytes().to_vec(),
                    meta: Vec::new(),
                    sites: vec!["de-fra".into()],
                    chunks: vec![Chunk {
                        blob: BlobId::random(),
                        size: 9,
                        part: 1,
                        crc32c: None,
                    }],
                    version_id: Some(version.into()),
                },
                PutCondition::None,
            )
            .await
            .unwrap();
        }
        by_name::put_delete_marker(
            cat,
            &ObjectRecord {
                bucket: "b".into(),
                key: "k/1".into(),
                size: 0,
                etag: String::new(),
                last_modified_ms: 7,
                envelope: Vec::new(),
                meta: Vec::new(),
                sites: Vec::new(),
                chunks: Vec::new(),
                version_id: Some("33".into()),
            },
        )
        .await
        .unwrap();
        cat.set_upgrade_done("binding", 6).await.unwrap();
        by_name::set_quota(
            cat,
            &PolicyScope::Tenant("t".into()),
            Some(&crate::Quota {
                max_bytes: Some(1 << 30),
                max_objects: None,
            }),
        )
        .await
        .unwrap();
        let b = by_name::bucket(cat, "b").await;
        cat.put_bucket_config(&b, crate::config_kind::CORS, Some(b"{}"), 8)
            .await
            .unwrap();
        cat.init_console_key("session-v1", "sealed key", 9)
            .await
            .unwrap();
        cat.start_console_session(
            &crate::ConsoleSession {
                id_hash: "ab".repeat(32),
                sealed: vec![0, 1, 0xff],
                started_ms: 9,
                used_ms: 10,
                owner: Some("cd".repeat(32)),
                key_id: None,
            },
            crate::SessionBounds {
                max_sessions: 10,
                max_per_owner: 10,
            },
            crate::SessionCutoff {
                used_before_ms: 0,
                started_before_ms: 0,
            },
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn an_embedded_catalog_is_copied_verified_and_can_be_copied_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        {
            let src = SqliteCatalog::open(&path).unwrap();
            fill(&src).await;
        }
        // As a server leaves it when it stops: the write-ahead log checkpointed and removed.
        std::thread::sleep(std::time::Duration::from_millis(300));
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        let files = ["catalog.db", "catalog.db-wal", "catalog.db-shm"].map(|f| dir.path().join(f));
        let before: Vec<_> = files.iter().map(|f| sha(f)).collect();
        let target = PgCatalog::connect(fresh_schema().await).await.unwrap();
        let mut lines = Vec::new();
        let first = copy_embedded(&path, &target, |t| lines.push(t.table))
            .await
            .unwrap();
        assert_eq!(lines.len(), TABLES.len(), "one report per table");
        let rows = |name: &str| first.iter().find(|t| t.table == name).unwrap().target_rows;
        // k/0 is a new key with a noncurrent version; k/1 (null) is hidden by a delete marker.
        assert_eq!(rows("objects"), (BATCH + 7) as u64);
        assert_eq!(rows("object_versions"), 3);
        assert_eq!(
            (rows("parts"), rows("upgrades"), rows("bucket_keys")),
            (1, 1, 1)
        );
        assert_eq!((rows("quotas"), rows("bucket_usage")), (1, 1));
        assert_eq!((rows("console_keys"), rows("console_sessions")), (1, 1));
        // An interrupted copy: some rows missing, one changed. Copying again mends it.
        sqlx::raw_sql("DELETE FROM parts; DELETE FROM objects WHERE size > 100; UPDATE tenants SET min_sites = 9")
            .execute(target.pool())
            .await
            .unwrap();
        let second = copy_embedded(&path, &target, |_| {}).await.unwrap();
        assert_eq!(first, second, "the same rows and digests");
        let after: Vec<_> = files.iter().map(|f| sha(f)).collect();
        assert_eq!(before, after, "the source is never written");
        // What PostgreSQL serves is what SQLite served.
        let src = SqliteCatalog::open(&path).unwrap();
        for (a, b) in [(&src as &dyn Catalog, &target as &dyn Catalog)] {
            assert_eq!(
                a.list_tenants().await.unwrap(),
                b.list_tenants().await.unwrap()
            );
            assert_eq!(a.list_sites().await.unwrap(), b.list_sites().await.unwrap());
            assert_eq!(
                by_name::list_objects(a, "b", "", ListFrom::Start, 10_000)
                    .await
                    .unwrap(),
                by_name::list_objects(b, "b", "", ListFrom::Start, 10_000)
                    .await
                    .unwrap()
            );
            assert_eq!(
                by_name::list_object_versions(a, "b", "k/", crate::VersionsFrom::Start, 10_000)
                    .await
                    .unwrap(),
                by_name::list_object_versions(b, "b", "k/", crate::VersionsFrom::Start, 10_000)
                    .await
                    .unwrap()
            );
            assert_eq!(
                a.get_bucket("b").await.unwrap(),
                b.get_bucket("b").await.unwrap()
            );
            assert_eq!(
                a.list_parts("u1", 0, 10).await.unwrap(),
                b.list_parts("u1", 0, 10).await.unwrap()
            );
            assert_eq!(
                a.current_bucket_key("b").await.unwrap(),
                b.current_bucket_key("b").await.unwrap()
            );
            assert_eq!(
                a.get_rule(&PolicyScope::Bucket("b".into())).await.unwrap(),
                b.get_rule(&PolicyScope::Bucket("b".into())).await.unwrap()
            );
            assert_eq!(
                a.upgrade_done("binding").await.unwrap(),
                b.upgrade_done("binding").await.unwrap()
            );
        }
        // A row in PostgreSQL that the source does not have: named, and refused.
        target
            .create_tenant(&Tenant {
                name: "stray".into(),
                jurisdictions: Vec::new(),
                min_sites: 1,
                created_ms: 1,
            })
            .await
            .unwrap();
        let err = copy_embedded(&path, &target, |_| {})
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("table tenants") && err.contains("differ"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_catalog_of_another_version_or_with_clear_keys_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        drop(SqliteCatalog::open(&path).unwrap());
        let target = PgCatalog::connect(fresh_schema().await).await.unwrap();
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "INSERT INTO tenants VALUES ('t', '[]', 1, 1);
                 INSERT INTO access_keys VALUES ('AK', 't', 'secret', 1);",
            )
            .unwrap();
        }
        let err = copy_embedded(&path, &target, |_| {})
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("S3 access keys in clear"), "{err}");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 2)
            .unwrap();
        let err = copy_embedded(&path, &target, |_| {})
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("schema version 2"), "{err}");
        let err = copy_embedded(&dir.path().join("none.db"), &target, |_| {})
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("no catalog at"), "{err}");
    }
}
