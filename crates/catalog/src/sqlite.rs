//! The embedded catalog on SQLite (WAL, `synchronous=FULL`: a returned commit is durable).
//!
//! Object keys are stored as BLOBs so that ordering is plain byte order, which is S3's listing
//! order. Writes queue for one writer thread that commits them in batches; point lookups run
//! on the calling thread against a pooled read connection (they take microseconds from the page
//! cache, less than a hop to another thread would cost); scans run on tokio's blocking pool.
//! Every statement is prepared once per connection and then taken from its cache.

use crate::meta_cache::{MetaCache, MetaKey};
use crate::types::Settled;
use crate::{
    AccessKey, Bucket, BucketKey, Catalog, CatalogError, Chunk, CompletedUpload, ConsoleSession,
    GatewayBeat, GatewayList, GatewayRow, Lease, ListFrom, MAX_GATEWAY_ID, MAX_GATEWAY_ROWS,
    MAX_GATEWAY_STATUS, MAX_GATEWAY_VERSION, ObjectRecord, ObjectVersion, Part, PutCondition,
    Quota, QuotaStatus, QuotaTarget, Reservation, ResidencyRule, Result, SeenVersion,
    SessionBounds, SessionCutoff, SiteRecord, Tenant, Upload, Usage, Versioning, VersionsFrom,
};
use async_trait::async_trait;
use obhut_core::{BlobId, PolicyScope};
use rusqlite::{Connection, OptionalExtension, Params, Row, params};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The catalog's layouts, oldest first (`PRAGMA user_version` says which one a database has).
/// A released migration never changes; a new layout is a migration appended here, and
/// `tests/fixtures/` gets a catalog written by the release before it.
const SCHEMA: obhut_migrate::Schema = obhut_migrate::Schema {
    name: "catalog.db",
    migrations: &[
        SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5, SCHEMA_V6, SCHEMA_V7, SCHEMA_V8,
        SCHEMA_V9, SCHEMA_V10, SCHEMA_V11, SCHEMA_V12,
    ],
    identifying_table: "tenants",
};

/// Version 12: `gateways`, the registry of processes sharing the catalog (one heartbeat row
/// each, `Catalog::beat_gateway`). Only adds a table (expand): a gateway of the release before
/// neither writes nor reads it.
const SCHEMA_V12: &str = r"
CREATE TABLE IF NOT EXISTS gateways (
    id TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    seen_ms INTEGER NOT NULL,
    background INTEGER NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS gateways_by_seen ON gateways (seen_ms);
";

/// Version 11: each console session names its principal's tag (`owner`, for the bound per
/// principal) and the session key it is sealed under (`key_id`), docs/console.md, "Sessions".
/// Only adds columns (expand): rows of schema 10 have neither, and a gateway of the release
/// before reads and writes the table as it did.
const SCHEMA_V11: &str = r"
ALTER TABLE console_sessions ADD COLUMN owner TEXT;
ALTER TABLE console_sessions ADD COLUMN key_id TEXT;
CREATE INDEX IF NOT EXISTS console_sessions_by_owner ON console_sessions (owner, used_ms);
";

/// Version 10: the web console's sessions, shared by every gateway of the catalog
/// (docs/console.md, "Sessions"). `console_sessions` is keyed by the SHA-256 of a session's id
/// and holds its record sealed under the console's session key; `console_keys` holds that key
/// as the trustee sealed it. Only adds tables: a release before it never reads them (its
/// gateways keep their sessions in memory).
const SCHEMA_V10: &str = r"
CREATE TABLE IF NOT EXISTS console_keys (
    name TEXT PRIMARY KEY,
    sealed TEXT NOT NULL,
    created_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS console_sessions (
    id_hash TEXT PRIMARY KEY,
    sealed BLOB NOT NULL,
    started_ms INTEGER NOT NULL,
    used_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS console_sessions_by_use ON console_sessions (used_ms);
";

/// Version 9: `object_locks`, the object lock record of each version of a bucket with object
/// lock (its retention and legal hold), as the trustee sealed it: opaque here. Keyed by the
/// bucket's incarnation, the key and the version id. Only adds a table: a release before it
/// never reads it.
const SCHEMA_V9: &str = r"
CREATE TABLE IF NOT EXISTS object_locks (
    bucket TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    key BLOB NOT NULL,
    version_id TEXT NOT NULL,
    record BLOB NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (bucket, created_ms, key, version_id)
) WITHOUT ROWID;
";

/// Version 8: `unreferenced_blobs`, orphan collection's record of since when (the catalog's
/// clock) each blob it found on a site, named by no record, has been found so; a blob is
/// removed only once that is longer ago than the retention of removed blobs (docs/catalog.md,
/// "Orphan collection"). Only adds a table: a release before it never reads it. A
/// `first_seen_ms` of -1 marks a blob that orphan collection is removing
/// (`Catalog::claim_unreferenced`); a release before it takes that for a long time ago.
const SCHEMA_V8: &str = r"
CREATE TABLE IF NOT EXISTS unreferenced_blobs (
    site TEXT NOT NULL,
    blob TEXT NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    PRIMARY KEY (site, blob)
) WITHOUT ROWID;
";

/// Version 7: `bucket_configs`, every kind of per-bucket configuration (CORS first), keyed
/// by the bucket's incarnation (name and `created_ms`) and the kind, so that a configuration
/// left behind by a deleted bucket never applies to a new bucket of the same name; and
/// `completed_uploads`, what is remembered of a multipart upload for a day after it
/// completed, so that a repeated completion is answered as the first (docs/catalog.md).
/// Tags live in the sealed `meta` of each version: no column for them.
const SCHEMA_V7: &str = r"
CREATE TABLE IF NOT EXISTS bucket_configs (
    bucket TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    config BLOB NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (bucket, created_ms, kind)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS completed_uploads (
    upload_id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    key BLOB NOT NULL,
    version_id TEXT NOT NULL,
    etag TEXT NOT NULL,
    completed_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS completed_uploads_by_time ON completed_uploads(completed_ms);
CREATE INDEX IF NOT EXISTS completed_uploads_by_bucket ON completed_uploads(bucket);
";

/// Version 6: versions (docs/catalog.md, "Versions"). `buckets.versioning` holds a bucket's
/// state (0 unversioned, 1 enabled, 2 suspended); `objects` keeps one row per key, its current
/// version, now with its id (`''` for the `null` version) and `version_order`, which orders a
/// key's versions newest first (ascending, a new version gets one less than the newest);
/// `object_versions` holds the noncurrent versions and the delete markers, keyed so that a
/// listing of versions is one range scan of each table, merged. Current objects stay where
/// they were, so a bucket that is not versioned reads and writes exactly as before.
const SCHEMA_V6: &str = r"
ALTER TABLE buckets ADD COLUMN versioning INTEGER NOT NULL DEFAULT 0;
ALTER TABLE objects ADD COLUMN version_id TEXT NOT NULL DEFAULT '';
ALTER TABLE objects ADD COLUMN version_order INTEGER NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS object_versions (
    bucket TEXT NOT NULL,
    key BLOB NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    last_modified_ms INTEGER NOT NULL,
    envelope BLOB NOT NULL,
    meta BLOB NOT NULL,
    sites TEXT NOT NULL,
    chunks TEXT NOT NULL,
    version_id TEXT NOT NULL,
    version_order INTEGER NOT NULL,
    delete_marker INTEGER NOT NULL,
    PRIMARY KEY (bucket, key, version_order)
) WITHOUT ROWID;
";

/// Version 5: `leases`, which says which process does a deployment's background work
/// (`Catalog::take_lease`). The embedded catalog belongs to one process (the data directory's
/// lock), which always gets the lease; it goes through the same table so that the code path is
/// the one of the PostgreSQL catalog.
const SCHEMA_V5: &str = r"
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
";

/// Version 1: the layout of every release before versions were recorded, so it is written to
/// adopt their databases too (`IF NOT EXISTS`).
const SCHEMA_V1: &str = r"
CREATE TABLE IF NOT EXISTS tenants (
    name TEXT PRIMARY KEY,
    jurisdictions TEXT NOT NULL,
    min_sites INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS access_keys (
    access_key_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL REFERENCES tenants(name),
    secret TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sites (
    id TEXT PRIMARY KEY,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS residency (
    scope TEXT PRIMARY KEY,
    rule TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS buckets (
    name TEXT PRIMARY KEY,
    tenant TEXT NOT NULL REFERENCES tenants(name),
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS buckets_by_tenant ON buckets(tenant, name);
CREATE TABLE IF NOT EXISTS bucket_keys (
    bucket TEXT NOT NULL REFERENCES buckets(name) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    wrapped BLOB NOT NULL,
    kcv BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (bucket, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS objects (
    bucket TEXT NOT NULL,
    key BLOB NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    last_modified_ms INTEGER NOT NULL,
    envelope BLOB NOT NULL,
    meta BLOB NOT NULL,
    sites TEXT NOT NULL,
    chunks TEXT NOT NULL,
    PRIMARY KEY (bucket, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    key BLOB NOT NULL,
    initiated_ms INTEGER NOT NULL,
    envelope BLOB NOT NULL,
    meta BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS uploads_by_key ON uploads(bucket, key, upload_id);
CREATE TABLE IF NOT EXISTS parts (
    upload_id TEXT NOT NULL REFERENCES uploads(upload_id),
    part_number INTEGER NOT NULL,
    chunk TEXT NOT NULL,
    etag TEXT NOT NULL,
    checksums BLOB NOT NULL,
    sites TEXT NOT NULL,
    last_modified_ms INTEGER NOT NULL,
    PRIMARY KEY (upload_id, part_number)
) WITHOUT ROWID;
";

/// Version 2: an upload keeps the placement chosen when it was created (`[]` for the uploads
/// of version 1, which had none).
const SCHEMA_V2: &str = r"
ALTER TABLE uploads ADD COLUMN sites TEXT NOT NULL DEFAULT '[]';
";

/// Version 3: `upgrades`, which records the gateway's one-time rewrites of records (the
/// binding of object keys to their names and the sealing of ETags, docs/format.md section 7),
/// so that they are not looked for again at every start. Records are not changed here: the
/// rewrite needs bucket keys, which only a gateway gets.
const SCHEMA_V3: &str = r"
CREATE TABLE IF NOT EXISTS upgrades (
    name TEXT PRIMARY KEY,
    done_ms INTEGER NOT NULL
);
";

/// Version 4: quotas and usage (docs/quotas.md). `quotas` holds a tenant's or bucket's limits
/// (JSON, keyed by scope as `residency` is); `bucket_usage` what each bucket holds, in rows
/// (shards) that commits add to, so that PostgreSQL spreads concurrent writers of one bucket
/// over several rows (the embedded catalog, with one writer, uses shard 0 only); and
/// `reservations` the holds of writes in flight. Usage is counted from the records there are.
const SCHEMA_V4: &str = r"
CREATE TABLE IF NOT EXISTS quotas (
    scope TEXT PRIMARY KEY,
    quota TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS bucket_usage (
    bucket TEXT NOT NULL,
    shard INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    objects INTEGER NOT NULL,
    PRIMARY KEY (bucket, shard)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reservations (
    id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    objects INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS reservations_by_bucket ON reservations(bucket, expires_ms);
INSERT INTO bucket_usage (bucket, shard, bytes, objects)
SELECT b.name, 0,
    COALESCE((SELECT SUM(o.size) FROM objects o WHERE o.bucket = b.name), 0)
        + COALESCE((SELECT SUM(json_extract(p.chunk, '$.size')) FROM parts p
                    JOIN uploads u ON u.upload_id = p.upload_id WHERE u.bucket = b.name), 0),
    (SELECT COUNT(*) FROM objects o WHERE o.bucket = b.name)
FROM buckets b WHERE true;
";

/// What a bucket (`?1`) holds, counted from its records, and what its usage says: in one
/// statement, so that the difference is the drift alone.
const RECOUNT_BUCKET: &str = "SELECT
    COALESCE((SELECT SUM(o.size) FROM objects o WHERE o.bucket = ?1), 0)
        + COALESCE((SELECT SUM(v.size) FROM object_versions v WHERE v.bucket = ?1), 0)
        + COALESCE((SELECT SUM(json_extract(p.chunk, '$.size')) FROM parts p
                    JOIN uploads u ON u.upload_id = p.upload_id WHERE u.bucket = ?1), 0),
    (SELECT COUNT(*) FROM objects o WHERE o.bucket = ?1)
        + (SELECT COUNT(*) FROM object_versions v WHERE v.bucket = ?1 AND v.delete_marker = 0),
    (SELECT COALESCE(SUM(bytes), 0) FROM bucket_usage WHERE bucket = ?1),
    (SELECT COALESCE(SUM(objects), 0) FROM bucket_usage WHERE bucket = ?1)";

/// Adds `bytes` and `objects` (negative: removes) to what `bucket` holds, if the bucket exists.
/// Its one row never goes below zero: taking away what was never counted (the parts of an
/// upload a release before usage was counted left behind) must not let the bucket grow past
/// its quota later by as much.
fn add_usage_tx(tx: &Connection, bucket: &str, bytes: i64, objects: i64) -> Result<()> {
    if bytes == 0 && objects == 0 {
        return Ok(());
    }
    exec(
        tx,
        "INSERT INTO bucket_usage (bucket, shard, bytes, objects)
         SELECT name, 0, MAX(?2, 0), MAX(?3, 0) FROM buckets WHERE name = ?1
         ON CONFLICT (bucket, shard) DO UPDATE
         SET bytes = MAX(bytes + ?2, 0), objects = MAX(objects + ?3, 0)",
        params![bucket, bytes, objects],
    )
    .map_err(storage)?;
    Ok(())
}

/// Counts the change from `old` to `new` under one key in the bucket's usage.
fn count_object_tx(
    tx: &Connection,
    bucket: &str,
    old: Option<&ObjectRecord>,
    new: Option<&ObjectRecord>,
) -> Result<()> {
    let size = |o: Option<&ObjectRecord>| o.map_or(Ok(0), |o| i64_col(o.size));
    let bytes = size(new)? - size(old)?;
    let objects = i64::from(new.is_some()) - i64::from(old.is_some());
    add_usage_tx(tx, bucket, bytes, objects)
}

/// Drops a reservation whose write failed; an unknown id is not an error.
fn release_tx(tx: &Connection, id: &str) -> Result<()> {
    exec(tx, "DELETE FROM reservations WHERE id = ?1", params![id]).map_err(storage)?;
    Ok(())
}

/// The wall clock in milliseconds, by which a commit tells whether its reservation expired:
/// the embedded catalog runs in the gateway's process, whose clock set the expiry.
fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Drops the reservation of a write being committed, reporting whether it was still held
/// (there, and not expired at `now_ms`).
fn settle_tx(tx: &Connection, reservation: Option<&str>, now_ms: i64) -> Result<Settled> {
    let Some(id) = reservation else {
        return Ok(Settled::NotGiven);
    };
    let expires: Option<i64> = query_row(
        tx,
        "DELETE FROM reservations WHERE id = ?1 RETURNING expires_ms",
        params![id],
        |r| r.get(0),
    )
    .optional()
    .map_err(storage)?;
    Ok(match expires {
        Some(e) if e > now_ms => Settled::Held,
        _ => Settled::Lost,
    })
}

/// What `bucket` holds by its usage rows: (bytes, objects).
fn counted_tx(tx: &Connection, bucket: &str) -> Result<(i64, i64)> {
    query_row(
        tx,
        "SELECT COALESCE(SUM(bytes), 0), COALESCE(SUM(objects), 0) FROM bucket_usage
         WHERE bucket = ?1",
        params![bucket],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .map_err(storage)
}

/// For a commit whose reservation was lost: checks what it added to `bucket` (its usage
/// was `before` the commit) against the quotas of the bucket and its tenant, as a
/// reservation would have been; `QuotaExceeded` undoes the commit. The one writer makes this
/// decision in turn with every reservation.
fn recheck_tx(tx: &Connection, bucket: &Bucket, before: (i64, i64), now_ms: i64) -> Result<()> {
    let after = counted_tx(tx, &bucket.name)?;
    let grown = (
        u64::try_from(after.0 - before.0).unwrap_or(0),
        u64::try_from(after.1 - before.1).unwrap_or(0),
    );
    if grown == (0, 0) {
        return Ok(());
    }
    for scope in [
        PolicyScope::Tenant(bucket.tenant.clone()),
        PolicyScope::Bucket(bucket.name.clone()),
    ] {
        if let Some(quota) = get_quota_tx(tx, &scope)? {
            let usage = usage_tx(tx, &scope, now_ms)?;
            crate::types::check_growth(&scope, &quota, &usage, grown)?;
        }
    }
    Ok(())
}

/// Settles a commit's reservation before the commit writes anything; when it was lost, the
/// bucket's usage before the write, for [`recheck_tx`] after it.
fn settle_before_tx(
    tx: &Connection,
    bucket: &Bucket,
    reservation: Option<&str>,
    now_ms: i64,
) -> Result<Option<(i64, i64)>> {
    match settle_tx(tx, reservation, now_ms)? {
        Settled::Lost => Ok(Some(counted_tx(tx, &bucket.name)?)),
        Settled::NotGiven | Settled::Held => Ok(None),
    }
}

/// The bucket of an upload (parts are counted in their upload's bucket).
fn upload_bucket_tx(tx: &Connection, upload_id: &str) -> Result<String> {
    query_row(
        tx,
        "SELECT bucket FROM uploads WHERE upload_id = ?1",
        params![upload_id],
        |r| r.get(0),
    )
    .optional()
    .map_err(storage)?
    .ok_or_else(|| CatalogError::NotFound {
        kind: "upload",
        name: upload_id.to_owned(),
    })
}

fn get_quota_tx(c: &Connection, scope: &PolicyScope) -> Result<Option<Quota>> {
    query_row(
        c,
        "SELECT quota FROM quotas WHERE scope = ?1",
        params![scope.encode()],
        |r| r.get::<_, String>(0),
    )
    .optional()
    .map_err(storage)?
    .map(|q| from_json(&q))
    .transpose()
}

/// What `scope` holds and has reserved (reservations live until `now_ms`), in one statement.
fn usage_tx(c: &Connection, scope: &PolicyScope, now_ms: i64) -> Result<Usage> {
    let (sql, name) = match scope {
        PolicyScope::Tenant(n) => (USAGE_OF_TENANT, n),
        PolicyScope::Bucket(n) => (USAGE_OF_BUCKET, n),
    };
    let v: (i64, i64, i64, i64) = query_row(c, sql, params![name, now_ms], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })
    .map_err(storage)?;
    Ok(Usage {
        bytes: u64::try_from(v.0).unwrap_or(0),
        objects: u64::try_from(v.1).unwrap_or(0),
        reserved_bytes: u64::try_from(v.2).unwrap_or(0),
        reserved_objects: u64::try_from(v.3).unwrap_or(0),
    })
}

/// A tenant's usage: each bucket's count taken as at least zero, so that one bucket's count
/// that went below zero cannot offset what the others hold.
const USAGE_OF_TENANT: &str = "SELECT
    (SELECT COALESCE(SUM(MAX(s, 0)), 0) FROM (SELECT SUM(u.bytes) AS s FROM bucket_usage u JOIN buckets b ON b.name = u.bucket WHERE b.tenant = ?1 GROUP BY u.bucket)),
    (SELECT COALESCE(SUM(MAX(s, 0)), 0) FROM (SELECT SUM(u.objects) AS s FROM bucket_usage u JOIN buckets b ON b.name = u.bucket WHERE b.tenant = ?1 GROUP BY u.bucket)),
    (SELECT COALESCE(SUM(r.bytes), 0) FROM reservations r JOIN buckets b ON b.name = r.bucket WHERE b.tenant = ?1 AND r.expires_ms > ?2),
    (SELECT COALESCE(SUM(r.objects), 0) FROM reservations r JOIN buckets b ON b.name = r.bucket WHERE b.tenant = ?1 AND r.expires_ms > ?2)";

const USAGE_OF_BUCKET: &str = "SELECT
    (SELECT COALESCE(SUM(bytes), 0) FROM bucket_usage WHERE bucket = ?1),
    (SELECT COALESCE(SUM(objects), 0) FROM bucket_usage WHERE bucket = ?1),
    (SELECT COALESCE(SUM(bytes), 0) FROM reservations WHERE bucket = ?1 AND expires_ms > ?2),
    (SELECT COALESCE(SUM(objects), 0) FROM reservations WHERE bucket = ?1 AND expires_ms > ?2)";

/// Objects and parts that name `site` (site lists are JSON arrays of ids).
fn site_refs(c: &Connection, site: &str) -> Result<u64> {
    let pattern = format!("%{}%", to_json(&site)?);
    let n: i64 = query_row(
        c,
        "SELECT (SELECT COUNT(*) FROM objects WHERE sites LIKE ?1)
              + (SELECT COUNT(*) FROM object_versions WHERE sites LIKE ?1)
              + (SELECT COUNT(*) FROM parts WHERE sites LIKE ?1)",
        params![pattern],
        |r| r.get(0),
    )
    .map_err(storage)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The SQLite catalog. Reads run on their own connection; every write goes to one writer
/// thread, which commits the writes queued meanwhile together (group commit): each in its own
/// savepoint, so one failing write undoes only itself, then one COMMIT, one fsync for all.
/// No caller hears back before the commit that makes its write durable.
#[derive(Clone)]
pub struct SqliteCatalog {
    /// Read connections, taken in turn (one, shared with the writer, for an in-memory
    /// catalog).
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: Arc<std::sync::atomic::AtomicUsize>,
    /// The writer's connection when it is also the only reader (in memory).
    shared: Option<Arc<Mutex<Connection>>>,
    writer: std::sync::mpsc::Sender<WriteJob>,
    /// The writer's connection, for maintenance that must run outside a transaction
    /// (`VACUUM`), between two of the writer's batches.
    write_conn: Arc<Mutex<Connection>>,
    meta: Arc<MetaCache>,
}

/// Read connections of a file catalog: lookups and listings of concurrent requests do not
/// queue behind each other (WAL lets them all read while the writer writes).
const READERS: usize = 4;

/// Sends a write's result once its batch is committed (or the commit's error).
type Deliver = Box<dyn FnOnce(Result<()>) + Send>;
/// A queued write: runs on the writer's connection (`None`: the batch could not begin), says
/// whether it succeeded, and how to deliver its result.
type WriteJob = Box<dyn FnOnce(Option<&Connection>) -> (bool, Deliver) + Send>;

/// The most writes committed together.
const MAX_BATCH: usize = 512;

fn configure(conn: &Connection) -> Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(storage)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(storage)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(storage)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(storage)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

/// Prepared statements kept per connection: more than the catalog has distinct statements.
const STATEMENT_CACHE: usize = 128;

/// The lease `name` as stored (an empty holder at epoch 0 if nobody ever took it).
fn read_lease(c: &Connection, name: &str) -> Result<Lease> {
    let row: Option<(String, i64, i64)> = query_row(
        c,
        "SELECT holder, epoch, expires_ms FROM leases WHERE name = ?1",
        params![name],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .optional()
    .map_err(storage)?;
    let (holder, epoch, expires_ms) = row.unwrap_or_default();
    Ok(Lease {
        name: name.to_owned(),
        holder,
        epoch: u64::try_from(epoch).map_err(storage)?,
        expires_ms,
    })
}

/// This host's clock in milliseconds since the Unix epoch: the embedded catalog belongs to one
/// process, so its leases lapse by the clock of the host that process runs on.
fn host_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The check of a fenced batch, inside its write: the batch goes on only under the current
/// lease.
fn fence(c: &Connection, lease: &Lease) -> Result<()> {
    if lease.is_current(&read_lease(c, &lease.name)?, host_now_ms()) {
        Ok(())
    } else {
        Err(CatalogError::LeaseLost(lease.name.clone()))
    }
}

/// Runs a statement taken from the connection's cache of prepared ones.
fn exec(c: &Connection, sql: &str, p: impl Params) -> rusqlite::Result<usize> {
    c.prepare_cached(sql)?.execute(p)
}

/// The one row of a query taken from the connection's cache of prepared ones.
fn query_row<T>(
    c: &Connection,
    sql: &str,
    p: impl Params,
    f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    c.prepare_cached(sql)?.query_row(p, f)
}

/// The writer thread: takes the first queued write and every one queued behind it, runs them in
/// one transaction, commits, and only then answers them all.
fn write_loop(conn: Arc<Mutex<Connection>>, rx: std::sync::mpsc::Receiver<WriteJob>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let guard = conn.lock();
        let Ok(guard) = guard else {
            for job in jobs {
                let (_, deliver) = job(None);
                deliver(Err(CatalogError::Storage("catalog lock poisoned".into())));
            }
            continue;
        };
        let c: &Connection = &guard;
        if let Err(e) = c.execute_batch("BEGIN IMMEDIATE") {
            for job in jobs {
                let (_, deliver) = job(None);
                deliver(Err(storage(&e)));
            }
            continue;
        }
        let mut delivers = Vec::with_capacity(jobs.len());
        for job in jobs {
            if let Err(e) = c.execute_batch("SAVEPOINT w") {
                let (_, deliver) = job(None);
                delivers.push((Some(storage(e)), deliver));
                continue;
            }
            let (ok, deliver) = job(Some(c));
            let end = if ok {
                c.execute_batch("RELEASE w")
            } else {
                c.execute_batch("ROLLBACK TO w; RELEASE w")
            };
            delivers.push((end.err().map(storage), deliver));
        }
        let commit = c.execute_batch("COMMIT");
        if commit.is_err() {
            let _ = c.execute_batch("ROLLBACK");
        }
        drop(guard);
        for (err, deliver) in delivers {
            deliver(match (&commit, err) {
                (Err(e), _) => Err(storage(e)),
                (Ok(()), Some(e)) => Err(e),
                (Ok(()), None) => Ok(()),
            });
        }
    }
}

fn storage(e: impl std::fmt::Display) -> CatalogError {
    CatalogError::Storage(e.to_string())
}

fn corrupt(e: impl std::fmt::Display) -> CatalogError {
    CatalogError::Corrupt(e.to_string())
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(corrupt)
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(corrupt)
}

fn key_bytes(key: &str) -> &[u8] {
    key.as_bytes()
}

fn key_from(bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(corrupt)
}

/// The smallest byte string greater than every string starting with `prefix`, if any.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

fn u64_col(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(corrupt)
}

fn i64_col(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(corrupt)
}

struct RawObject {
    bucket: String,
    key: Vec<u8>,
    size: i64,
    etag: String,
    last_modified_ms: i64,
    envelope: Vec<u8>,
    meta: Vec<u8>,
    sites: String,
    chunks: String,
    version_id: String,
    version_order: i64,
}

const OBJECT_COLS: &str = "bucket, key, size, etag, last_modified_ms, envelope, meta, sites, chunks, version_id, version_order";

/// The columns of `object_versions`: an object's, and whether it is a delete marker.
const VERSION_COLS: &str = "bucket, key, size, etag, last_modified_ms, envelope, meta, sites, chunks, version_id, version_order, delete_marker";

fn raw_object(r: &Row<'_>) -> rusqlite::Result<RawObject> {
    Ok(RawObject {
        bucket: r.get(0)?,
        key: r.get(1)?,
        size: r.get(2)?,
        etag: r.get(3)?,
        last_modified_ms: r.get(4)?,
        envelope: r.get(5)?,
        meta: r.get(6)?,
        sites: r.get(7)?,
        chunks: r.get(8)?,
        version_id: r.get(9)?,
        version_order: r.get(10)?,
    })
}

/// An `object_versions` row: the object's columns and whether it is a delete marker.
fn raw_version(r: &Row<'_>) -> rusqlite::Result<(RawObject, bool)> {
    Ok((raw_object(r)?, r.get::<_, i64>(11)? != 0))
}

/// The id of a stored version: `''` is the `null` version.
fn stored_version_id(v: Option<&str>) -> &str {
    v.unwrap_or("")
}

impl RawObject {
    fn decode(self) -> Result<ObjectRecord> {
        Ok(ObjectRecord {
            bucket: self.bucket,
            key: key_from(self.key)?,
            size: u64_col(self.size)?,
            etag: self.etag,
            last_modified_ms: self.last_modified_ms,
            envelope: self.envelope,
            meta: self.meta,
            sites: from_json(&self.sites)?,
            chunks: from_json(&self.chunks)?,
            version_id: (!self.version_id.is_empty()).then_some(self.version_id),
        })
    }
}

struct RawPart {
    upload_id: String,
    part_number: i64,
    chunk: String,
    etag: String,
    checksums: Vec<u8>,
    sites: String,
    last_modified_ms: i64,
}

const PART_COLS: &str = "upload_id, part_number, chunk, etag, checksums, sites, last_modified_ms";

fn raw_part(r: &Row<'_>) -> rusqlite::Result<RawPart> {
    Ok(RawPart {
        upload_id: r.get(0)?,
        part_number: r.get(1)?,
        chunk: r.get(2)?,
        etag: r.get(3)?,
        checksums: r.get(4)?,
        sites: r.get(5)?,
        last_modified_ms: r.get(6)?,
    })
}

impl RawPart {
    fn decode(self) -> Result<Part> {
        Ok(Part {
            upload_id: self.upload_id,
            part_number: u32::try_from(self.part_number).map_err(corrupt)?,
            chunk: from_json(&self.chunk)?,
            etag: self.etag,
            checksums: self.checksums,
            sites: from_json(&self.sites)?,
            last_modified_ms: self.last_modified_ms,
        })
    }
}

const UPLOAD_COLS: &str = "upload_id, bucket, key, initiated_ms, envelope, meta, sites";

/// An `uploads` row before its key is checked to be UTF-8.
type UploadRow = (String, String, Vec<u8>, i64, Vec<u8>, Vec<u8>, String);

fn raw_upload(r: &Row<'_>) -> rusqlite::Result<UploadRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

fn decode_upload(
    (upload_id, bucket, key, initiated_ms, envelope, meta, sites): UploadRow,
) -> Result<Upload> {
    Ok(Upload {
        upload_id,
        bucket,
        key: key_from(key)?,
        initiated_ms,
        envelope,
        meta,
        sites: from_json(&sites)?,
    })
}

fn raw_bucket(r: &Row<'_>) -> rusqlite::Result<(Bucket, i64)> {
    Ok((
        Bucket {
            name: r.get(0)?,
            tenant: r.get(1)?,
            created_ms: r.get(2)?,
            versioning: Versioning::Unversioned,
        },
        r.get(3)?,
    ))
}

fn decode_bucket((bucket, versioning): (Bucket, i64)) -> Result<Bucket> {
    Ok(Bucket {
        versioning: Versioning::from_code(versioning)?,
        ..bucket
    })
}

fn raw_bucket_key(r: &Row<'_>) -> rusqlite::Result<BucketKey> {
    Ok(BucketKey {
        bucket: r.get(0)?,
        version: r.get(1)?,
        wrapped: r.get(2)?,
        kcv: r.get(3)?,
        created_ms: r.get(4)?,
    })
}

fn get_object_tx(tx: &Connection, bucket: &str, key: &str) -> Result<Option<ObjectRecord>> {
    query_row(
        tx,
        &format!("SELECT {OBJECT_COLS} FROM objects WHERE bucket = ?1 AND key = ?2"),
        params![bucket, key_bytes(key)],
        raw_object,
    )
    .optional()
    .map_err(storage)?
    .map(RawObject::decode)
    .transpose()
}

/// Writes `o` as the current row of its key, at `order` (see `SCHEMA_V6`).
fn write_current_tx(tx: &Connection, o: &ObjectRecord, order: i64) -> Result<()> {
    exec(
        tx,
        &format!(
            "INSERT OR REPLACE INTO objects ({OBJECT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ),
        params![
            o.bucket,
            key_bytes(&o.key),
            i64_col(o.size)?,
            o.etag,
            o.last_modified_ms,
            o.envelope,
            o.meta,
            to_json(&o.sites)?,
            to_json(&o.chunks)?,
            stored_version_id(o.version_id.as_deref()),
            order,
        ],
    )
    .map_err(storage)?;
    Ok(())
}

/// Adds `o` at `order` to the noncurrent versions and delete markers of its key.
fn write_noncurrent_tx(tx: &Connection, o: &ObjectRecord, order: i64, marker: bool) -> Result<()> {
    exec(
        tx,
        &format!(
            "INSERT INTO object_versions ({VERSION_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
        ),
        params![
            o.bucket,
            key_bytes(&o.key),
            i64_col(o.size)?,
            o.etag,
            o.last_modified_ms,
            o.envelope,
            o.meta,
            to_json(&o.sites)?,
            to_json(&o.chunks)?,
            stored_version_id(o.version_id.as_deref()),
            order,
            i64::from(marker),
        ],
    )
    .map_err(storage)?;
    Ok(())
}

/// The current row of a key with its order.
fn current_tx(tx: &Connection, bucket: &str, key: &str) -> Result<Option<(ObjectRecord, i64)>> {
    query_row(
        tx,
        &format!("SELECT {OBJECT_COLS} FROM objects WHERE bucket = ?1 AND key = ?2"),
        params![bucket, key_bytes(key)],
        raw_object,
    )
    .optional()
    .map_err(storage)?
    .map(|r| {
        let order = r.version_order;
        r.decode().map(|o| (o, order))
    })
    .transpose()
}

/// The newest noncurrent entry of a key (a version or a delete marker), with its order.
fn newest_noncurrent_tx(
    tx: &Connection,
    bucket: &str,
    key: &str,
) -> Result<Option<(ObjectVersion, i64)>> {
    query_row(
        tx,
        &format!(
            "SELECT {VERSION_COLS} FROM object_versions WHERE bucket = ?1 AND key = ?2 ORDER BY version_order LIMIT 1"
        ),
        params![bucket, key_bytes(key)],
        raw_version,
    )
    .optional()
    .map_err(storage)?
    .map(decode_version)
    .transpose()
}

fn decode_version((raw, marker): (RawObject, bool)) -> Result<(ObjectVersion, i64)> {
    let order = raw.version_order;
    Ok((
        ObjectVersion {
            object: raw.decode()?,
            delete_marker: marker,
            is_latest: false,
        },
        order,
    ))
}

/// Removes the noncurrent entry of a key with id `version_id`, returning it.
fn remove_noncurrent_tx(
    tx: &Connection,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> Result<Option<ObjectVersion>> {
    let found = query_row(
        tx,
        &format!(
            "SELECT {VERSION_COLS} FROM object_versions WHERE bucket = ?1 AND key = ?2 AND version_id = ?3"
        ),
        params![bucket, key_bytes(key), stored_version_id(version_id)],
        raw_version,
    )
    .optional()
    .map_err(storage)?
    .map(decode_version)
    .transpose()?;
    if let Some((_, order)) = &found {
        exec(
            tx,
            "DELETE FROM object_versions WHERE bucket = ?1 AND key = ?2 AND version_order = ?3",
            params![bucket, key_bytes(key), order],
        )
        .map_err(storage)?;
    }
    Ok(found.map(|(v, _)| v))
}

/// The order a new newest entry of a key gets: one less than the newest there is.
fn next_order_tx(tx: &Connection, bucket: &str, key: &str, current: Option<i64>) -> Result<i64> {
    if let Some(order) = current {
        return Ok(order - 1);
    }
    let newest: Option<i64> = query_row(
        tx,
        "SELECT MIN(version_order) FROM object_versions WHERE bucket = ?1 AND key = ?2",
        params![bucket, key_bytes(key)],
        |r| r.get(0),
    )
    .map_err(storage)?;
    Ok(newest.map_or(0, |n| n - 1))
}

/// After the current version of a key was removed: the newest noncurrent one becomes current,
/// unless it is a delete marker (which then hides the key).
fn promote_tx(tx: &Connection, bucket: &str, key: &str) -> Result<()> {
    if let Some((next, order)) = newest_noncurrent_tx(tx, bucket, key)?
        && !next.delete_marker
    {
        exec(
            tx,
            "DELETE FROM object_versions WHERE bucket = ?1 AND key = ?2 AND version_order = ?3",
            params![bucket, key_bytes(key), order],
        )
        .map_err(storage)?;
        write_current_tx(tx, &next.object, order)?;
    }
    Ok(())
}

/// [`Catalog::put_delete_marker`] in a transaction.
fn put_delete_marker_tx(
    tx: &Connection,
    b: &Bucket,
    m: &ObjectRecord,
) -> Result<Vec<ObjectRecord>> {
    if incarnation_tx(tx, b)? == Versioning::Unversioned {
        return Err(CatalogError::Conflict(
            "a delete marker in a bucket that is not versioned",
        ));
    }
    let current = current_tx(tx, &m.bucket, &m.key)?;
    let order = next_order_tx(tx, &m.bucket, &m.key, current.as_ref().map(|c| c.1))?;
    let mut removed = Vec::new();
    if let Some((cur, cur_order)) = current {
        exec(
            tx,
            "DELETE FROM objects WHERE bucket = ?1 AND key = ?2",
            params![m.bucket, key_bytes(&m.key)],
        )
        .map_err(storage)?;
        if cur.version_id.is_none() && m.version_id.is_none() {
            removed.push(ObjectVersion {
                object: cur,
                delete_marker: false,
                is_latest: true,
            });
        } else {
            write_noncurrent_tx(tx, &cur, cur_order, false)?;
        }
    }
    if m.version_id.is_none() && removed.is_empty() {
        removed.extend(remove_noncurrent_tx(tx, &m.bucket, &m.key, None)?);
    }
    write_noncurrent_tx(tx, m, order, true)?;
    uncount_tx(tx, &removed)?;
    Ok(removed
        .into_iter()
        .filter(|r| !r.delete_marker)
        .map(|r| r.object)
        .collect())
}

/// [`Catalog::delete_object_version`] in a transaction.
fn delete_version_tx(
    tx: &Connection,
    b: &Bucket,
    key: &str,
    version_id: Option<&str>,
) -> Result<Option<ObjectVersion>> {
    incarnation_tx(tx, b)?;
    let bucket = b.name.as_str();
    let removed = match current_tx(tx, bucket, key)? {
        Some((cur, _)) if cur.version_id.as_deref() == version_id => {
            exec(
                tx,
                "DELETE FROM objects WHERE bucket = ?1 AND key = ?2",
                params![bucket, key_bytes(key)],
            )
            .map_err(storage)?;
            Some(ObjectVersion {
                object: cur,
                delete_marker: false,
                is_latest: true,
            })
        }
        Some(_) => remove_noncurrent_tx(tx, bucket, key, version_id)?,
        None => {
            let newest = newest_noncurrent_tx(tx, bucket, key)?.map(|n| n.0);
            remove_noncurrent_tx(tx, bucket, key, version_id)?.map(|mut v| {
                v.is_latest = newest.as_ref() == Some(&v);
                v
            })
        }
    };
    if removed.is_some() {
        uncount_tx(tx, removed.as_slice())?;
        if current_tx(tx, bucket, key)?.is_none() {
            promote_tx(tx, bucket, key)?;
        }
    }
    Ok(removed)
}

/// Whether the entry `seen` names is still as it was seen (see [`SeenVersion::matches`]).
fn still_seen_tx(tx: &Connection, bucket: &str, key: &str, seen: &SeenVersion) -> Result<bool> {
    let current = current_tx(tx, bucket, key)?;
    let found = match &current {
        Some((cur, _)) if cur.version_id == seen.version_id => Some((cur.clone(), false, true)),
        _ => {
            let row = query_row(
                tx,
                &format!(
                    "SELECT {VERSION_COLS} FROM object_versions WHERE bucket = ?1 AND key = ?2 AND version_id = ?3"
                ),
                params![bucket, key_bytes(key), stored_version_id(seen.version_id.as_deref())],
                raw_version,
            )
            .optional()
            .map_err(storage)?
            .map(decode_version)
            .transpose()?;
            match row {
                None => None,
                Some((v, order)) => {
                    let latest = current.is_none()
                        && newest_noncurrent_tx(tx, bucket, key)?.map(|n| n.1) == Some(order);
                    Some((v.object, v.delete_marker, latest))
                }
            }
        }
    };
    let entries: i64 = if seen.only_entry {
        query_row(
            tx,
            "SELECT (SELECT COUNT(*) FROM objects WHERE bucket = ?1 AND key = ?2) + (SELECT COUNT(*) FROM object_versions WHERE bucket = ?1 AND key = ?2)",
            params![bucket, key_bytes(key)],
            |r| r.get(0),
        )
        .map_err(storage)?
    } else {
        0
    };
    Ok(seen.matches(
        found.as_ref().map(|(o, m, l)| (o, *m, *l)),
        u64::try_from(entries).unwrap_or(0),
    ))
}

/// Counts the removal of `removed` in its bucket's usage (a delete marker holds nothing).
fn uncount_tx(tx: &Connection, removed: &[ObjectVersion]) -> Result<()> {
    for v in removed.iter().filter(|v| !v.delete_marker) {
        count_object_tx(tx, &v.object.bucket, Some(&v.object), None)?;
    }
    Ok(())
}

/// Writes `o` as the current version of its key in a bucket in state `versioning`, the
/// condition already checked against `current`; returns what it replaced for good (as
/// [`Catalog::put_object`] says) and counts the change in the bucket's usage.
fn put_version_tx(
    tx: &Connection,
    o: &ObjectRecord,
    versioning: Versioning,
    current: Option<(ObjectRecord, i64)>,
) -> Result<Option<ObjectRecord>> {
    if versioning == Versioning::Unversioned {
        // The path of every bucket that was never versioned: one row per key, replaced.
        if o.version_id.is_some() {
            return Err(CatalogError::Conflict(
                "a version with an id written to a bucket that is not versioned",
            ));
        }
        let old = current.map(|(c, _)| c);
        write_current_tx(tx, o, 0)?;
        count_object_tx(tx, &o.bucket, old.as_ref(), Some(o))?;
        return Ok(old);
    }
    let order = next_order_tx(tx, &o.bucket, &o.key, current.as_ref().map(|c| c.1))?;
    let mut replaced = None;
    match current {
        Some((cur, _)) if cur.version_id.is_none() && o.version_id.is_none() => {
            replaced = Some(ObjectVersion {
                object: cur,
                delete_marker: false,
                is_latest: true,
            });
        }
        Some((cur, cur_order)) => write_noncurrent_tx(tx, &cur, cur_order, false)?,
        None => {}
    }
    if o.version_id.is_none() && replaced.is_none() {
        replaced = remove_noncurrent_tx(tx, &o.bucket, &o.key, None)?;
    }
    write_current_tx(tx, o, order)?;
    uncount_tx(tx, replaced.as_slice())?;
    count_object_tx(tx, &o.bucket, None, Some(o))?;
    Ok(replaced.filter(|r| !r.delete_marker).map(|r| r.object))
}

/// A bucket's versioning state; `NotFound` if it does not exist. Objects are committed only
/// into a bucket that exists at commit time: a write racing the bucket's deletion fails
/// instead of being acknowledged into nowhere.
fn bucket_versioning_tx(tx: &Connection, bucket: &str) -> Result<Versioning> {
    let code: Option<i64> = query_row(
        tx,
        "SELECT versioning FROM buckets WHERE name = ?1",
        params![bucket],
        |r| r.get(0),
    )
    .optional()
    .map_err(storage)?;
    match code {
        Some(c) => Versioning::from_code(c),
        None => Err(CatalogError::NotFound {
            kind: "bucket",
            name: bucket.to_owned(),
        }),
    }
}

/// Marks the entries of one key in a page of a listing that are the newest of their key:
/// entries come by key, newest first, so the first of each key is, unless the page starts
/// within a key (after one of its versions).
fn mark_latest(page: &mut [ObjectVersion], started_within: Option<&str>) {
    let mut previous: Option<String> = started_within.map(str::to_owned);
    for v in page {
        v.is_latest = previous.as_deref() != Some(v.object.key.as_str());
        previous = Some(v.object.key.clone());
    }
}

/// `NotFound` for a `kind` named `name` unless `sql` (with `name` as `?1`) finds a row.
fn require_row(tx: &Connection, kind: &'static str, sql: &str, name: &str) -> Result<()> {
    let exists = query_row(tx, sql, params![name], |_| Ok(()))
        .optional()
        .map_err(storage)?
        .is_some();
    if exists {
        Ok(())
    } else {
        Err(CatalogError::NotFound {
            kind,
            name: name.to_owned(),
        })
    }
}

/// `NotFound` unless the upload exists.
fn upload_exists_tx(tx: &Connection, upload_id: &str) -> Result<()> {
    require_row(
        tx,
        "upload",
        "SELECT 1 FROM uploads WHERE upload_id = ?1",
        upload_id,
    )
}

/// `bucket`'s versioning state if it is still the bucket of its name: the same owner and the
/// same incarnation (`created_ms`) as the record the caller was authorised against;
/// `NotFound` if it was deleted, or deleted and created again, since. Writes run in the one
/// writer's transaction, so the answer holds until the write commits.
/// Records that upload `upload_id` became `o` (see `SCHEMA_V7`), and forgets completions
/// older than [`crate::COMPLETED_UPLOAD_RETENTION_MS`].
fn remember_completion_tx(
    tx: &Connection,
    bucket: &Bucket,
    upload_id: &str,
    o: &ObjectRecord,
) -> Result<()> {
    exec(
        tx,
        "DELETE FROM completed_uploads WHERE completed_ms < ?1",
        params![o.last_modified_ms - crate::COMPLETED_UPLOAD_RETENTION_MS],
    )
    .map_err(storage)?;
    exec(
        tx,
        "INSERT OR REPLACE INTO completed_uploads
         (upload_id, bucket, created_ms, key, version_id, etag, completed_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            upload_id,
            bucket.name,
            bucket.created_ms,
            key_bytes(&o.key),
            o.version_id.as_deref().unwrap_or(""),
            o.etag,
            o.last_modified_ms
        ],
    )
    .map_err(storage)?;
    Ok(())
}

fn incarnation_tx(tx: &Connection, bucket: &Bucket) -> Result<Versioning> {
    let code: Option<i64> = query_row(
        tx,
        "SELECT versioning FROM buckets WHERE name = ?1 AND tenant = ?2 AND created_ms = ?3",
        params![bucket.name, bucket.tenant, bucket.created_ms],
        |r| r.get(0),
    )
    .optional()
    .map_err(storage)?;
    match code {
        Some(c) => Versioning::from_code(c),
        None => Err(CatalogError::NotFound {
            kind: "bucket",
            name: bucket.name.clone(),
        }),
    }
}

/// `NotFound` unless the bucket exists.
fn bucket_exists_tx(tx: &Connection, bucket: &str) -> Result<()> {
    bucket_versioning_tx(tx, bucket).map(|_| ())
}

fn parts_tx(tx: &Connection, upload_id: &str) -> Result<Vec<Part>> {
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT {PART_COLS} FROM parts WHERE upload_id = ?1 ORDER BY part_number"
        ))
        .map_err(storage)?;
    let rows = stmt
        .query_map(params![upload_id], raw_part)
        .map_err(storage)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(storage)?;
    rows.into_iter().map(RawPart::decode).collect()
}

/// Removes an upload and its parts, which its bucket no longer holds.
fn remove_upload_tx(tx: &Connection, upload_id: &str) -> Result<Vec<Part>> {
    let bucket = upload_bucket_tx(tx, upload_id)?;
    let parts = parts_tx(tx, upload_id)?;
    let mut bytes = 0i64;
    for p in &parts {
        bytes = bytes.saturating_add(i64_col(p.chunk.size)?);
    }
    add_usage_tx(tx, &bucket, -bytes, 0)?;
    exec(
        tx,
        "DELETE FROM parts WHERE upload_id = ?1",
        params![upload_id],
    )
    .map_err(storage)?;
    exec(
        tx,
        "DELETE FROM uploads WHERE upload_id = ?1",
        params![upload_id],
    )
    .map_err(storage)?;
    Ok(parts)
}

/// Whether orphan collection is removing any of `blobs` from any of `sites` (it claimed them:
/// [`Catalog::claim_unreferenced`]): a move must not name such a replica.
fn being_removed(c: &Connection, sites: &[String], blobs: &[String]) -> Result<bool> {
    for site in sites {
        for blob in blobs {
            let n: i64 = c
                .query_row(
                    "SELECT COUNT(*) FROM unreferenced_blobs
                     WHERE site = ?1 AND blob = ?2 AND first_seen_ms = ?3",
                    params![site, blob, crate::UNREFERENCED_BEING_REMOVED],
                    |r| r.get(0),
                )
                .map_err(storage)?;
            if n > 0 {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Forgets orphan collection's record of `blobs` on `sites`, which a move now names: it must
/// find them anew (and wait the retention again) before it may remove them.
fn forget_named(c: &Connection, sites: &[String], blobs: &[String]) -> Result<()> {
    for site in sites {
        for blob in blobs {
            exec(
                c,
                "DELETE FROM unreferenced_blobs WHERE site = ?1 AND blob = ?2",
                params![site, blob],
            )
            .map_err(storage)?;
        }
    }
    Ok(())
}

/// Whether the catalog still has the table of S3 keys an earlier release kept in clear.
fn has_legacy_access_keys(c: &Connection) -> Result<bool> {
    c.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'access_keys'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
    .map_err(storage)
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

impl SqliteCatalog {
    /// The schema version this release writes (`PRAGMA user_version` of `catalog.db`).
    pub const SCHEMA_VERSION: u32 = SCHEMA.current_version();

    /// Opens or creates the catalog database at `path`, bringing it to [`Self::SCHEMA_VERSION`].
    /// A database written by a newer release (a newer schema version) is refused, untouched.
    pub fn open(path: &Path) -> Result<Self> {
        // The schema is current once the first connection has migrated it; the readers open
        // after.
        let writer = Self::migrated(Connection::open(path).map_err(storage)?)?;
        let readers = (0..READERS)
            .map(|_| Connection::open(path).map_err(storage))
            .collect::<Result<Vec<_>>>()?;
        Self::init(writer, readers)
    }

    /// The connection, configured, its database at the current schema version.
    fn migrated(mut conn: Connection) -> Result<Connection> {
        configure(&conn)?;
        obhut_migrate::migrate(&mut conn, &SCHEMA).map_err(storage)?;
        Ok(conn)
    }

    /// A private in-memory catalog, for tests.
    pub fn in_memory() -> Result<Self> {
        let conn = Self::migrated(Connection::open_in_memory().map_err(storage)?)?;
        Self::init(conn, Vec::new())
    }

    fn init(conn: Connection, readers: Vec<Connection>) -> Result<Self> {
        let write_conn = Arc::new(Mutex::new(conn));
        // A file database gets connections of its own for reads; an in-memory one has only
        // the one connection, shared with the writer.
        for r in &readers {
            configure(r)?;
        }
        let shared = readers.is_empty().then(|| Arc::clone(&write_conn));
        let readers: Vec<Mutex<Connection>> = readers.into_iter().map(Mutex::new).collect();
        let (tx, rx) = std::sync::mpsc::channel();
        let loop_conn = Arc::clone(&write_conn);
        std::thread::Builder::new()
            .name("catalog-writer".into())
            .spawn(move || write_loop(loop_conn, rx))
            .map_err(storage)?;
        Ok(Self {
            readers: Arc::new(readers),
            next_reader: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            shared,
            writer: tx,
            write_conn,
            meta: Arc::default(),
        })
    }

    /// Runs `sql` (if any) with freed pages zeroed, then rebuilds the file without its free
    /// pages and empties the WAL: no copy of what was deleted or overwritten is left in the
    /// database's files. Runs on the writer's connection between two of its batches.
    async fn rebuild_without(&self, sql: &'static str) -> Result<()> {
        let conn = Arc::clone(&self.write_conn);
        tokio::task::spawn_blocking(move || {
            let c = conn.lock().map_err(|_| storage("catalog lock poisoned"))?;
            c.execute_batch(&format!(
                "PRAGMA secure_delete = ON; {sql} VACUUM; PRAGMA wal_checkpoint(TRUNCATE); PRAGMA secure_delete = OFF;"
            ))
            .map_err(storage)
        })
        .await
        .map_err(storage)?
    }

    /// Queues a write that may change tenants, buckets, bucket keys or residency
    /// rules; returns once the batch holding it is durably committed, and the cache of those
    /// records is emptied.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.queue_write(f, Some(Arc::clone(&self.meta))).await
    }

    /// Queues a write of objects, uploads or parts only; returns once the batch holding it is
    /// durably committed.
    async fn write_data<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.queue_write(f, None).await
    }

    /// Every queued write runs in its own savepoint of the batch's transaction: a write of
    /// several statements is atomic.
    async fn queue_write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
        invalidates: Option<Arc<MetaCache>>,
    ) -> Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<T>>();
        let job: WriteJob = Box::new(move |conn| {
            let Some(conn) = conn else {
                let deliver: Deliver = Box::new(move |r: Result<()>| {
                    let _ = tx.send(r.and(Err(storage("the catalog write could not begin"))));
                });
                return (false, deliver);
            };
            let result = f(conn);
            let ok = result.is_ok();
            let deliver: Deliver = Box::new(move |committed: Result<()>| {
                // After the commit, before the answer: no one who heard of the write can read
                // what it replaced from the cache.
                if let Some(meta) = invalidates {
                    meta.invalidate();
                }
                let _ = tx.send(committed.and(result));
            });
            (ok, deliver)
        });
        self.writer
            .send(job)
            .map_err(|_| storage("the catalog writer has stopped"))?;
        rx.await
            .map_err(|_| storage("the catalog writer has stopped"))?
    }

    /// A point lookup of a record kept in the cache of seldom-changing ones.
    async fn lookup_cached<T: Clone + Send + Sync + 'static>(
        &self,
        key: MetaKey,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        if let Some(hit) = self.meta.get::<T>(&key) {
            return Ok(hit);
        }
        let generation = self.meta.generation();
        let value = self.lookup(f).await?;
        self.meta.put(key, generation, &value);
        Ok(value)
    }

    /// A point lookup: runs here, on the calling thread, on the first free read connection;
    /// only when every one is busy (with scans) does it wait on the blocking pool instead.
    async fn lookup<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        match self.run_on_free_reader(f) {
            Ok(result) => result,
            Err(f) => self.with(f).await,
        }
    }

    /// Runs `f` on a read connection nobody holds, or gives `f` back when all are held.
    fn run_on_free_reader<T, F: FnOnce(&mut Connection) -> Result<T>>(
        &self,
        f: F,
    ) -> std::result::Result<Result<T>, F> {
        let free = match &self.shared {
            Some(conn) => conn.try_lock().ok(),
            None => {
                let n = self.readers.len();
                let turn = self
                    .next_reader
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                (0..n).find_map(|i| self.readers[(turn + i) % n].try_lock().ok())
            }
        };
        match free {
            Some(mut conn) => Ok(f(&mut conn)),
            None => Err(f),
        }
    }

    /// A read that may take long (a scan): runs on the blocking pool.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let shared = self.shared.clone();
        let readers = Arc::clone(&self.readers);
        let turn = self
            .next_reader
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            let poisoned = |_| CatalogError::Storage("catalog lock poisoned".into());
            match &shared {
                Some(conn) => f(&mut *conn.lock().map_err(poisoned)?),
                None => {
                    let conn = &readers[turn % readers.len()];
                    f(&mut *conn.lock().map_err(poisoned)?)
                }
            }
        })
        .await
        .map_err(storage)?
    }
}

#[async_trait]
impl Catalog for SqliteCatalog {
    async fn create_tenant(&self, tenant: &Tenant) -> Result<()> {
        let t = tenant.clone();
        self.write(move |c| {
            exec(
                c,
                "INSERT INTO tenants (name, jurisdictions, min_sites, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![t.name, to_json(&t.jurisdictions)?, t.min_sites, t.created_ms],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    CatalogError::AlreadyExists { kind: "tenant", name: t.name.clone() }
                } else {
                    storage(e)
                }
            })?;
            Ok(())
        })
        .await
    }

    async fn get_tenant(&self, name: &str) -> Result<Option<Tenant>> {
        let name = name.to_owned();
        self.lookup_cached(("tenant", name.clone()), move |c| {
            let row = query_row(
                c,
                "SELECT name, jurisdictions, min_sites, created_ms FROM tenants WHERE name = ?1",
                params![name],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, u32>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                },
            )
            .optional()
            .map_err(storage)?;
            row.map(|(name, j, min_sites, created_ms)| {
                Ok(Tenant {
                    name,
                    jurisdictions: from_json(&j)?,
                    min_sites,
                    created_ms,
                })
            })
            .transpose()
        })
        .await
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        self.with(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT name, jurisdictions, min_sites, created_ms FROM tenants ORDER BY name",
                )
                .map_err(storage)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, u32>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })
                .map_err(storage)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(storage)?;
            rows.into_iter()
                .map(|(name, j, min_sites, created_ms)| {
                    Ok(Tenant {
                        name,
                        jurisdictions: from_json(&j)?,
                        min_sites,
                        created_ms,
                    })
                })
                .collect()
        })
        .await
    }

    async fn legacy_access_keys(&self) -> Result<Vec<AccessKey>> {
        self.lookup(move |c| {
            if !has_legacy_access_keys(c)? {
                return Ok(Vec::new());
            }
            let mut stmt = c
                .prepare(
                    "SELECT access_key_id, tenant, secret, created_ms FROM access_keys ORDER BY access_key_id",
                )
                .map_err(storage)?;
            stmt.query_map([], |r| {
                Ok(AccessKey {
                    access_key_id: r.get(0)?,
                    tenant: r.get(1)?,
                    secret: r.get(2)?,
                    created_ms: r.get(3)?,
                })
            })
            .map_err(storage)?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(storage)
        })
        .await
    }

    async fn erase_legacy_access_keys(&self) -> Result<()> {
        // Every start asks; only a catalog that still has the table is rebuilt.
        if !self.lookup(|c| has_legacy_access_keys(c)).await? {
            return Ok(());
        }
        self.rebuild_without("DROP TABLE IF EXISTS access_keys;")
            .await
    }

    async fn compact(&self) -> Result<()> {
        self.rebuild_without("").await
    }

    async fn put_site(&self, site: &SiteRecord) -> Result<()> {
        let s = site.clone();
        self.write(move |c| {
            exec(
                c,
                "INSERT OR REPLACE INTO sites (id, record) VALUES (?1, ?2)",
                params![s.id, to_json(&s)?],
            )
            .map_err(storage)?;
            Ok(())
        })
        .await
    }

    async fn delete_site(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.write(move |tx| {
            let refs = site_refs(tx, &id)?;
            if refs > 0 {
                return Err(CatalogError::InUse(format!(
                    "site {id} still holds {refs} replica(s); drain it first"
                )));
            }
            exec(tx, "DELETE FROM sites WHERE id = ?1", params![id]).map_err(storage)?;
            Ok(())
        })
        .await
    }

    async fn site_references(&self, site: &str) -> Result<u64> {
        let site = site.to_owned();
        self.with(move |c| site_refs(c, &site)).await
    }

    async fn get_rule(&self, scope: &PolicyScope) -> Result<Option<ResidencyRule>> {
        let scope = scope.encode();
        self.lookup_cached(("residency rule", scope.clone()), move |c| {
            let r: Option<String> = query_row(
                c,
                "SELECT rule FROM residency WHERE scope = ?1",
                params![scope],
                |r| r.get(0),
            )
            .optional()
            .map_err(storage)?;
            r.map(|r| from_json(&r)).transpose()
        })
        .await
    }

    async fn put_rule(&self, scope: &PolicyScope, rule: &ResidencyRule) -> Result<()> {
        let (scope, rule) = (scope.encode(), to_json(rule)?);
        self.write(move |c| {
            exec(
                c,
                "INSERT OR REPLACE INTO residency (scope, rule) VALUES (?1, ?2)",
                params![scope, rule],
            )
            .map_err(storage)?;
            Ok(())
        })
        .await
    }

    async fn update_tenant_residency(
        &self,
        name: &str,
        jurisdictions: &[String],
        min_sites: u32,
    ) -> Result<()> {
        let (name, j) = (name.to_owned(), to_json(&jurisdictions)?);
        self.write(move |c| {
            let n = exec(
                c,
                "UPDATE tenants SET jurisdictions = ?2, min_sites = ?3 WHERE name = ?1",
                params![name, j, min_sites],
            )
            .map_err(storage)?;
            if n == 0 {
                return Err(CatalogError::NotFound {
                    kind: "tenant",
                    name,
                });
            }
            Ok(())
        })
        .await
    }

    async fn set_object_sites(
        &self,
        bucket: &str,
        key: &str,
        chunks: &[Chunk],
        sites: &[String],
    ) -> Result<bool> {
        let (bucket, key, chunks, sites) = (
            bucket.to_owned(),
            key.to_owned(),
            to_json(&chunks)?,
            to_json(&sites)?,
        );
        self.write_data(move |c| {
            let mut n = 0;
            for sql in [
                "UPDATE objects SET sites = ?4 WHERE bucket = ?1 AND key = ?2 AND chunks = ?3",
                "UPDATE object_versions SET sites = ?4 WHERE bucket = ?1 AND key = ?2 AND chunks = ?3",
            ] {
                n += exec(c, sql, params![bucket, key_bytes(&key), chunks, sites])
                    .map_err(storage)?;
            }
            Ok(n >= 1)
        })
        .await
    }

    async fn set_part_sites(
        &self,
        upload_id: &str,
        part_number: u32,
        chunk: &Chunk,
        sites: &[String],
    ) -> Result<bool> {
        let (upload_id, chunk, sites) = (upload_id.to_owned(), to_json(chunk)?, to_json(&sites)?);
        self.write_data(move |c| {
            let n = exec(
                c,
                "UPDATE parts SET sites = ?4 WHERE upload_id = ?1 AND part_number = ?2 AND chunk = ?3",
                params![upload_id, part_number, chunk, sites],
            )
            .map_err(storage)?;
            Ok(n == 1)
        })
        .await
    }

    async fn list_sites(&self) -> Result<Vec<SiteRecord>> {
        self.with(|c| {
            let mut stmt = c
                .prepare("SELECT record FROM sites ORDER BY id")
                .map_err(storage)?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(storage)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(storage)?;
            rows.iter().map(|r| from_json(r)).collect()
        })
        .await
    }

    async fn create_bucket(&self, bucket: &Bucket, key: &BucketKey) -> Result<()> {
        let b = bucket.clone();
        let k = key.clone();
        self.write(move |tx| {
            let owner: Option<String> = query_row(
                tx,
                "SELECT tenant FROM buckets WHERE name = ?1",
                params![b.name],
                |r| r.get(0),
            )
            .optional()
            .map_err(storage)?;
            if let Some(owner) = owner {
                return Err(CatalogError::BucketExists {
                    bucket: b.name,
                    owner,
                });
            }
            exec(
                tx,
                "INSERT INTO buckets (name, tenant, created_ms, versioning) VALUES (?1, ?2, ?3, ?4)",
                params![b.name, b.tenant, b.created_ms, b.versioning.code()],
            )
            .map_err(storage)?;
            exec(
                tx,
                "INSERT INTO bucket_keys (bucket, version, wrapped, kcv, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![b.name, k.version, k.wrapped, k.kcv, k.created_ms],
            )
            .map_err(storage)?;
            Ok(())
        })
        .await
    }

    async fn get_bucket_key(&self, bucket: &str, version: u32) -> Result<Option<BucketKey>> {
        let bucket = bucket.to_owned();
        let key = ("bucket key", format!("{bucket}/{version}"));
        self.lookup_cached(key, move |c| {
            query_row(
                c,
                "SELECT bucket, version, wrapped, kcv, created_ms FROM bucket_keys WHERE bucket = ?1 AND version = ?2",
                params![bucket, version],
                raw_bucket_key,
            )
            .optional()
            .map_err(storage)
        })
        .await
    }

    async fn current_bucket_key(&self, bucket: &str) -> Result<Option<BucketKey>> {
        let bucket = bucket.to_owned();
        self.lookup_cached(("current bucket key", bucket.clone()), move |c| {
            query_row(
                c,
                "SELECT bucket, version, wrapped, kcv, created_ms FROM bucket_keys WHERE bucket = ?1 ORDER BY version DESC LIMIT 1",
                params![bucket],
                raw_bucket_key,
            )
            .optional()
            .map_err(storage)
        })
        .await
    }

    async fn get_bucket(&self, name: &str) -> Result<Option<Bucket>> {
        let name = name.to_owned();
        self.lookup_cached(("bucket", name.clone()), move |c| {
            query_row(
                c,
                "SELECT name, tenant, created_ms, versioning FROM buckets WHERE name = ?1",
                params![name],
                raw_bucket,
            )
            .optional()
            .map_err(storage)?
            .map(decode_bucket)
            .transpose()
        })
        .await
    }

    async fn list_buckets(&self, tenant: &str) -> Result<Vec<Bucket>> {
        let tenant = tenant.to_owned();
        self.with(move |c| {
            let mut stmt = c
                .prepare(
                    "SELECT name, tenant, created_ms, versioning FROM buckets WHERE tenant = ?1 ORDER BY name",
                )
                .map_err(storage)?;
            stmt.query_map(params![tenant], raw_bucket)
                .map_err(storage)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(storage)?
                .into_iter()
                .map(decode_bucket)
                .collect()
        })
        .await
    }

    async fn list_buckets_page(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Bucket>> {
        let (tenant, after) = (tenant.to_owned(), after.map(str::to_owned));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(move |c| {
            // `name > ''` is every name (none is empty): one range of the index on (tenant,
            // name) either way.
            let mut stmt = c
                .prepare(
                    "SELECT name, tenant, created_ms, versioning FROM buckets
                     WHERE tenant = ?1 AND name > ?2 ORDER BY name LIMIT ?3",
                )
                .map_err(storage)?;
            let after = after.unwrap_or_default();
            stmt.query_map(params![tenant, after, limit], raw_bucket)
                .map_err(storage)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(storage)?
                .into_iter()
                .map(decode_bucket)
                .collect()
        })
        .await
    }

    async fn tenant_objects_by_sites(&self, tenant: &str) -> Result<Vec<(String, u64)>> {
        let tenant = tenant.to_owned();
        self.with(move |c| {
            let mut stmt = c
                .prepare(
                    "SELECT sites, SUM(n) FROM (
                         SELECT o.sites AS sites, COUNT(*) AS n FROM buckets b
                           JOIN objects o ON o.bucket = b.name
                          WHERE b.tenant = ?1 GROUP BY o.sites
                         UNION ALL
                         SELECT v.sites, COUNT(*) FROM buckets b
                           JOIN object_versions v ON v.bucket = b.name
                          WHERE b.tenant = ?1 AND v.delete_marker = 0 GROUP BY v.sites)
                     GROUP BY sites ORDER BY sites",
                )
                .map_err(storage)?;
            stmt.query_map(params![tenant], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(storage)?
            .map(|r| {
                r.map(|(s, n)| (s, u64::try_from(n).unwrap_or(0)))
                    .map_err(storage)
            })
            .collect()
        })
        .await
    }

    async fn delete_bucket(&self, bucket: &Bucket) -> Result<Vec<Part>> {
        let bucket = bucket.clone();
        self.write(move |tx| {
            incarnation_tx(tx, &bucket)?;
            let name = bucket.name;
            let has_objects: bool = query_row(
                tx,
                "SELECT 1 FROM objects WHERE bucket = ?1
                 UNION ALL SELECT 1 FROM object_versions WHERE bucket = ?1 LIMIT 1",
                params![name],
                |_| Ok(true),
            )
            .optional()
            .map_err(storage)?
            .unwrap_or(false);
            if has_objects {
                return Err(CatalogError::BucketNotEmpty(name));
            }
            let upload_ids: Vec<String> = {
                let mut stmt = tx
                    .prepare("SELECT upload_id FROM uploads WHERE bucket = ?1")
                    .map_err(storage)?;
                stmt.query_map(params![name], |r| r.get(0))
                    .map_err(storage)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(storage)?
            };
            let mut parts = Vec::new();
            for id in upload_ids {
                parts.extend(remove_upload_tx(tx, &id)?);
            }
            exec(
                tx,
                "DELETE FROM bucket_keys WHERE bucket = ?1",
                params![name],
            )
            .map_err(storage)?;
            exec(
                tx,
                "DELETE FROM residency WHERE scope = ?1",
                params![PolicyScope::Bucket(name.clone()).encode()],
            )
            .map_err(storage)?;
            for sql in [
                "DELETE FROM bucket_usage WHERE bucket = ?1",
                "DELETE FROM reservations WHERE bucket = ?1",
                "DELETE FROM bucket_configs WHERE bucket = ?1",
                "DELETE FROM completed_uploads WHERE bucket = ?1",
                "DELETE FROM object_locks WHERE bucket = ?1",
            ] {
                exec(tx, sql, params![name]).map_err(storage)?;
            }
            exec(
                tx,
                "DELETE FROM quotas WHERE scope = ?1",
                params![PolicyScope::Bucket(name.clone()).encode()],
            )
            .map_err(storage)?;
            exec(tx, "DELETE FROM buckets WHERE name = ?1", params![name]).map_err(storage)?;
            Ok(parts)
        })
        .await
    }

    async fn put_object_settling(
        &self,
        bucket: &Bucket,
        object: &ObjectRecord,
        condition: PutCondition,
        reservation: Option<&str>,
    ) -> Result<Option<ObjectRecord>> {
        crate::same_bucket(bucket, &object.bucket)?;
        let (bucket, o) = (bucket.clone(), object.clone());
        let reservation = reservation.map(str::to_owned);
        self.write_data(move |tx| {
            let versioning = incarnation_tx(tx, &bucket)?;
            let now = wall_ms();
            let lost = settle_before_tx(tx, &bucket, reservation.as_deref(), now)?;
            let current = current_tx(tx, &o.bucket, &o.key)?;
            condition
                .check(current.as_ref().map(|c| &c.0))
                .map_err(CatalogError::PreconditionFailed)?;
            let old = put_version_tx(tx, &o, versioning, current)?;
            if let Some(before) = lost {
                recheck_tx(tx, &bucket, before, now)?;
            }
            Ok(old)
        })
        .await
    }

    async fn get_quota(&self, scope: &PolicyScope) -> Result<Option<Quota>> {
        let scope = scope.clone();
        // Asked by every write: kept in the cache of seldom-changing records, which
        // `set_quota` (a `write`) empties.
        self.lookup_cached(("quota", scope.encode()), move |c| get_quota_tx(c, &scope))
            .await
    }

    async fn set_quota(&self, target: QuotaTarget<'_>, quota: Option<&Quota>) -> Result<()> {
        let scope = target.scope().encode();
        let bucket = match target {
            QuotaTarget::Bucket(b) => Some(b.clone()),
            QuotaTarget::Tenant(_) => None,
        };
        let quota = quota
            .filter(|q| !q.is_unlimited())
            .map(to_json)
            .transpose()?;
        self.write(move |tx| {
            if let Some(b) = &bucket {
                incarnation_tx(tx, b)?;
            }
            match quota {
                Some(q) => exec(
                    tx,
                    "INSERT INTO quotas (scope, quota) VALUES (?1, ?2)
                     ON CONFLICT (scope) DO UPDATE SET quota = excluded.quota",
                    params![scope, q],
                ),
                None => exec(tx, "DELETE FROM quotas WHERE scope = ?1", params![scope]),
            }
            .map_err(storage)?;
            Ok(())
        })
        .await
    }

    async fn usage(&self, scope: &PolicyScope, now_ms: i64) -> Result<Usage> {
        let scope = scope.clone();
        self.lookup(move |c| usage_tx(c, &scope, now_ms)).await
    }

    async fn quota_statuses(&self, now_ms: i64) -> Result<Vec<QuotaStatus>> {
        self.with(move |c| {
            let rows: Vec<(String, String)> = {
                let mut stmt = c
                    .prepare_cached("SELECT scope, quota FROM quotas ORDER BY scope")
                    .map_err(storage)?;
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(storage)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(storage)?
            };
            let mut out = Vec::with_capacity(rows.len());
            for (scope, quota) in rows {
                let scope = PolicyScope::decode(&scope)
                    .ok_or_else(|| corrupt(format!("quota scope {scope:?}")))?;
                let usage = usage_tx(c, &scope, now_ms)?;
                out.push(QuotaStatus {
                    scope,
                    quota: from_json(&quota)?,
                    usage,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn reserve(&self, reservation: &Reservation, now_ms: i64) -> Result<bool> {
        // Most writes go where no quota is set: they are answered from the cache, without
        // queueing for the writer.
        let tenant_quota = self
            .get_quota(&PolicyScope::Tenant(reservation.tenant.clone()))
            .await?;
        let bucket_quota = self
            .get_quota(&PolicyScope::Bucket(reservation.bucket.clone()))
            .await?;
        if tenant_quota.is_none() && bucket_quota.is_none() {
            return Ok(false);
        }
        let r = reservation.clone();
        // The one writer decides every reservation in turn: none is checked against a state
        // another one is about to change.
        self.write_data(move |tx| {
            let bucket_scope = PolicyScope::Bucket(r.bucket.clone());
            let tenant_scope = PolicyScope::Tenant(r.tenant.clone());
            let quotas: Vec<(PolicyScope, Quota)> = [tenant_scope, bucket_scope]
                .into_iter()
                .filter_map(|s| match get_quota_tx(tx, &s) {
                    Ok(Some(q)) => Some(Ok((s, q))),
                    Ok(None) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<_>>()?;
            if quotas.is_empty() {
                return Ok(false);
            }
            bucket_exists_tx(tx, &r.bucket)?;
            let credit = match &r.key {
                Some(k) => get_object_tx(tx, &r.bucket, k)?.map_or((0, 0), |o| (o.size, 1)),
                None => (0, 0),
            };
            for (scope, quota) in &quotas {
                let usage = usage_tx(tx, scope, now_ms)?;
                crate::types::check_quota(scope, quota, &usage, (r.bytes, r.objects), credit)?;
            }
            exec(
                tx,
                "INSERT INTO reservations (id, bucket, bytes, objects, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![r.id, r.bucket, i64_col(r.bytes)?, i64_col(r.objects)?, r.expires_ms],
            )
            .map_err(storage)?;
            Ok(true)
        })
        .await
    }

    async fn release(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.write_data(move |tx| release_tx(tx, &id)).await
    }

    async fn recount_usage(&self, bucket: &str) -> Result<Usage> {
        let bucket = bucket.to_owned();
        self.write_data(move |tx| {
            bucket_exists_tx(tx, &bucket)?;
            let (bytes, objects, used_bytes, used_objects): (i64, i64, i64, i64) =
                query_row(tx, RECOUNT_BUCKET, params![bucket], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .map_err(storage)?;
            add_usage_tx(tx, &bucket, bytes - used_bytes, objects - used_objects)?;
            Ok(Usage {
                bytes: u64_col(bytes)?,
                objects: u64_col(objects)?,
                reserved_bytes: 0,
                reserved_objects: 0,
            })
        })
        .await
    }

    async fn reclaim_reservations(&self, now_ms: i64) -> Result<u64> {
        self.write_data(move |tx| {
            let n = exec(
                tx,
                "DELETE FROM reservations WHERE expires_ms <= ?1",
                params![now_ms],
            )
            .map_err(storage)?;
            Ok(u64::try_from(n).unwrap_or(u64::MAX))
        })
        .await
    }

    async fn replace_object_envelope(
        &self,
        bucket: &str,
        key: &str,
        expected: &[u8],
        envelope: &[u8],
    ) -> Result<bool> {
        let (bucket, key, expected, envelope) = (
            bucket.to_owned(),
            key.to_owned(),
            expected.to_vec(),
            envelope.to_vec(),
        );
        self.write_data(move |c| {
            let mut n = 0;
            for sql in [
                "UPDATE objects SET envelope = ?4 WHERE bucket = ?1 AND key = ?2 AND envelope = ?3",
                "UPDATE object_versions SET envelope = ?4 WHERE bucket = ?1 AND key = ?2 AND envelope = ?3",
            ] {
                n += exec(c, sql, params![bucket, key_bytes(&key), expected, envelope])
                    .map_err(storage)?;
            }
            Ok(n >= 1)
        })
        .await
    }

    async fn rebind_object(
        &self,
        bucket: &str,
        key: &str,
        expected: &[u8],
        envelope: &[u8],
        etag: &str,
    ) -> Result<bool> {
        let (bucket, key, expected, envelope, etag) = (
            bucket.to_owned(),
            key.to_owned(),
            expected.to_vec(),
            envelope.to_vec(),
            etag.to_owned(),
        );
        self.write_data(move |c| {
            let mut n = 0;
            for sql in [
                "UPDATE objects SET envelope = ?4, etag = ?5 WHERE bucket = ?1 AND key = ?2 AND envelope = ?3",
                "UPDATE object_versions SET envelope = ?4, etag = ?5 WHERE bucket = ?1 AND key = ?2 AND envelope = ?3",
            ] {
                n += exec(c, sql, params![bucket, key_bytes(&key), expected, envelope, etag])
                    .map_err(storage)?;
            }
            Ok(n >= 1)
        })
        .await
    }

    async fn reseal_part(
        &self,
        upload_id: &str,
        part_number: u32,
        chunk: &Chunk,
        etag: &str,
        checksums: &[u8],
    ) -> Result<bool> {
        let (upload_id, chunk, etag, checksums) = (
            upload_id.to_owned(),
            to_json(chunk)?,
            etag.to_owned(),
            checksums.to_vec(),
        );
        self.write_data(move |c| {
            let n = exec(
                c,
                "UPDATE parts SET etag = ?4, checksums = ?5 WHERE upload_id = ?1 AND part_number = ?2 AND chunk = ?3",
                params![upload_id, part_number, chunk, etag, checksums],
            )
            .map_err(storage)?;
            Ok(n == 1)
        })
        .await
    }

    async fn console_key(&self, name: &str) -> Result<Option<String>> {
        let name = name.to_owned();
        self.lookup(move |c| {
            query_row(
                c,
                "SELECT sealed FROM console_keys WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()
            .map_err(storage)
        })
        .await
    }

    async fn init_console_key(&self, name: &str, sealed: &str, now_ms: i64) -> Result<String> {
        let (name, sealed) = (name.to_owned(), sealed.to_owned());
        self.write_data(move |c| {
            exec(
                c,
                "INSERT INTO console_keys (name, sealed, created_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO NOTHING",
                params![name, sealed, now_ms],
            )
            .map_err(storage)?;
            query_row(
                c,
                "SELECT sealed FROM console_keys WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .map_err(storage)
        })
        .await
    }

    async fn start_console_session(
        &self,
        session: &ConsoleSession,
        bounds: SessionBounds,
        cutoff: SessionCutoff,
    ) -> Result<bool> {
        let session = session.clone();
        let max = i64::try_from(bounds.max_sessions.max(1)).unwrap_or(i64::MAX);
        let keep_own = i64::try_from(bounds.max_per_owner.max(1) - 1).unwrap_or(i64::MAX);
        self.write_data(move |c| {
            exec(
                c,
                "DELETE FROM console_sessions WHERE used_ms <= ?1 OR started_ms <= ?2",
                params![cutoff.used_before_ms, cutoff.started_before_ms],
            )
            .map_err(storage)?;
            let own: i64 = match &session.owner {
                Some(owner) => query_row(
                    c,
                    "SELECT COUNT(*) FROM console_sessions WHERE owner = ?1",
                    params![owner],
                    |r| r.get(0),
                )
                .map_err(storage)?,
                None => 0,
            };
            let all: i64 = query_row(c, "SELECT COUNT(*) FROM console_sessions", [], |r| r.get(0))
                .map_err(storage)?;
            let excess = own.saturating_sub(keep_own).max(0);
            if all - excess >= max {
                return Ok(false);
            }
            if excess > 0 {
                exec(
                    c,
                    "DELETE FROM console_sessions WHERE id_hash IN (
                         SELECT id_hash FROM console_sessions WHERE owner = ?1
                         ORDER BY used_ms DESC, id_hash LIMIT -1 OFFSET ?2)",
                    params![session.owner, keep_own],
                )
                .map_err(storage)?;
            }
            exec(
                c,
                "INSERT INTO console_sessions (id_hash, sealed, started_ms, used_ms, owner, key_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    session.id_hash,
                    session.sealed,
                    session.started_ms,
                    session.used_ms,
                    session.owner,
                    session.key_id
                ],
            )
            .map_err(storage)?;
            Ok(true)
        })
        .await
    }

    async fn get_console_session(&self, id_hash: &str) -> Result<Option<ConsoleSession>> {
        let id_hash = id_hash.to_owned();
        self.lookup(move |c| {
            query_row(
                c,
                "SELECT id_hash, sealed, started_ms, used_ms, owner, key_id FROM console_sessions
                 WHERE id_hash = ?1",
                params![id_hash],
                |r| {
                    Ok(ConsoleSession {
                        id_hash: r.get(0)?,
                        sealed: r.get(1)?,
                        started_ms: r.get(2)?,
                        used_ms: r.get(3)?,
                        owner: r.get(4)?,
                        key_id: r.get(5)?,
                    })
                },
            )
            .optional()
            .map_err(storage)
        })
        .await
    }

    async fn touch_console_session(&self, id_hash: &str, used_ms: i64) -> Result<()> {
        let id_hash = id_hash.to_owned();
        self.write_data(move |c| {
            exec(
                c,
                "UPDATE console_sessions SET used_ms = ?2 WHERE id_hash = ?1 AND used_ms < ?2",
                params![id_hash, used_ms],
            )
            .map_err(storage)?;
            Ok(())
        })
        .await
    }

    async fn end_console_session(&self, id_hash: &str) -> Result<()> {
        let id_hash = id_hash.to_owned();
        self.write_data(move |c| {
            exec(
                c,
                "DELETE FROM console_sessions WHERE id_hash = ?1",
                params![id_hash],
            )
            .map_err(storage)?;
            Ok(())
        })
        .await
    }

    async fn upgrade_done(&self, name: &str) -> Result<Option<i64>> {
        let name = name.to_owned();
        self.with(move |c| {
            query_row(
                c,
                "SELECT done_ms FROM upgrades WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()
            .map_err(storage)
        })
        .await
    }

    async fn set_upgrade_done(&self, name: &str, done_ms: i64) -> Result<()> {
        let name = name.to_owned();
        self.write(move |c| {
            exec(
                c,
                "INSERT INTO upgrades (name, done_ms) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET done_ms = ?2",
                params![name, done_ms],
            )
            .map_err(storage)?;
            Ok(())
        })
        .await
    }

    async fn replace_upload_envelope(
        &self,
        upload_id: &str,
        expected: &[u8],
        envelope: &[u8],
    ) -> Result<bool> {
        let (id, expected, envelope) = (upload_id.to_owned(), expected.to_vec(), envelope.to_vec());
        self.write_data(move |c| {
            let n = exec(
                c,
                "UPDATE uploads SET envelope = ?3 WHERE upload_id = ?1 AND envelope = ?2",
                params![id, expected, envelope],
            )
            .map_err(storage)?;
            Ok(n == 1)
        })
        .await
    }

    async fn add_bucket_key(&self, bucket: &Bucket, key: &BucketKey) -> Result<()> {
        crate::same_bucket(bucket, &key.bucket)?;
        let (bucket, k) = (bucket.clone(), key.clone());
        self.write(move |c| {
            incarnation_tx(c, &bucket)?;
            exec(
                c,
                "INSERT INTO bucket_keys (bucket, version, wrapped, kcv, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![k.bucket, k.version, k.wrapped, k.kcv, k.created_ms],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    CatalogError::AlreadyExists {
                        kind: "bucket key version",
                        name: format!("{}/{}", k.bucket, k.version),
                    }
                } else {
                    storage(e)
                }
            })?;
            Ok(())
        })
        .await
    }

    async fn get_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectRecord>> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.lookup(move |c| get_object_tx(c, &bucket, &key)).await
    }

    async fn delete_object(&self, bucket: &Bucket, key: &str) -> Result<Option<ObjectRecord>> {
        let (b, key) = (bucket.clone(), key.to_owned());
        self.write_data(move |tx| {
            incarnation_tx(tx, &b)?;
            let bucket = b.name;
            let old = get_object_tx(tx, &bucket, &key)?;
            exec(
                tx,
                "DELETE FROM objects WHERE bucket = ?1 AND key = ?2",
                params![bucket, key_bytes(&key)],
            )
            .map_err(storage)?;
            count_object_tx(tx, &bucket, old.as_ref(), None)?;
            Ok(old)
        })
        .await
    }

    async fn list_objects(
        &self,
        bucket: &Bucket,
        prefix: &str,
        from: ListFrom<'_>,
        limit: usize,
    ) -> Result<Vec<ObjectRecord>> {
        let b = bucket.clone();
        let prefix = prefix.as_bytes().to_vec();
        // (bound, inclusive)
        let from = match from {
            ListFrom::Start => None,
            ListFrom::After(a) => Some((a.as_bytes().to_vec(), false)),
            ListFrom::PastPrefix(p) => match prefix_end(p.as_bytes()) {
                Some(end) => Some((end, true)),
                None => return Ok(Vec::new()),
            },
        };
        self.with(move |c| {
            // The bucket's check and the scan read one snapshot.
            let c = c.transaction().map_err(storage)?;
            incarnation_tx(&c, &b)?;
            let bucket = b.name.as_str();
            // Start at the larger of `prefix` (inclusive) and `from`.
            let (lower, inclusive) = match from {
                Some((bound, incl)) if bound >= prefix => (bound, incl),
                _ => (prefix.clone(), true),
            };
            let upper = prefix_end(&prefix);
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let sql = format!(
                "SELECT {OBJECT_COLS} FROM objects WHERE bucket = ?1 AND key {} ?2 AND (?3 IS NULL OR key < ?3) ORDER BY key LIMIT ?4",
                if inclusive { ">=" } else { ">" }
            );
            let mut stmt = c.prepare_cached(&sql).map_err(storage)?;
            let rows = stmt
                .query_map(params![bucket, lower, upper, limit], raw_object)
                .map_err(storage)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(storage)?;
            drop(stmt);
            c.finish().map_err(storage)?;
            rows.into_iter().map(RawObject::decode).collect()
        })
        .await
    }

    async fn set_bucket_versioning(&self, bucket: &Bucket, state: Versioning) -> Result<()> {
        let record = bucket.clone();
        let bucket = bucket.name.clone();
        // A `write`: the bucket is a cached record.
        self.write(move |tx| {
            let now = incarnation_tx(tx, &record)?;
            if state == Versioning::Unversioned && now != Versioning::Unversioned {
                return Err(CatalogError::Conflict(
                    "a versioned bucket cannot become unversioned again",
                ));
            }
            exec(
                tx,
                "UPDATE buckets SET versioning = ?2 WHERE name = ?1",
                params![bucket, state.code()],
            )
            .map_err(storage)?;
            Ok(())
        })
        .await
    }

    async fn get_object_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<ObjectVersion>> {
        let (bucket, key, version_id) = (
            bucket.to_owned(),
            key.to_owned(),
            version_id.map(str::to_owned),
        );
        self.lookup(move |c| {
            let current = current_tx(c, &bucket, &key)?;
            if let Some((cur, _)) = &current
                && cur.version_id == version_id
            {
                return Ok(Some(ObjectVersion {
                    object: cur.clone(),
                    delete_marker: false,
                    is_latest: true,
                }));
            }
            let found = query_row(
                c,
                &format!(
                    "SELECT {VERSION_COLS} FROM object_versions WHERE bucket = ?1 AND key = ?2 AND version_id = ?3"
                ),
                params![bucket, key_bytes(&key), stored_version_id(version_id.as_deref())],
                raw_version,
            )
            .optional()
            .map_err(storage)?
            .map(decode_version)
            .transpose()?;
            let Some((mut v, order)) = found else {
                return Ok(None);
            };
            if current.is_none() {
                let newest = newest_noncurrent_tx(c, &bucket, &key)?.map(|n| n.1);
                v.is_latest = newest == Some(order);
            }
            Ok(Some(v))
        })
        .await
    }

    async fn latest_version(&self, bucket: &str, key: &str) -> Result<Option<ObjectVersion>> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.lookup(move |c| {
            if let Some((cur, _)) = current_tx(c, &bucket, &key)? {
                return Ok(Some(ObjectVersion {
                    object: cur,
                    delete_marker: false,
                    is_latest: true,
                }));
            }
            Ok(newest_noncurrent_tx(c, &bucket, &key)?.map(|(mut v, _)| {
                v.is_latest = true;
                v
            }))
        })
        .await
    }

    async fn put_delete_marker(
        &self,
        bucket: &Bucket,
        marker: &ObjectRecord,
    ) -> Result<Vec<ObjectRecord>> {
        crate::same_bucket(bucket, &marker.bucket)?;
        let (b, m) = (bucket.clone(), marker.clone());
        self.write_data(move |tx| put_delete_marker_tx(tx, &b, &m))
            .await
    }

    async fn put_delete_marker_over(
        &self,
        bucket: &Bucket,
        marker: &ObjectRecord,
        seen: &SeenVersion,
    ) -> Result<Option<Vec<ObjectRecord>>> {
        crate::same_bucket(bucket, &marker.bucket)?;
        let (b, m, seen) = (bucket.clone(), marker.clone(), seen.clone());
        self.write_data(move |tx| {
            incarnation_tx(tx, &b)?;
            if !seen.latest || seen.delete_marker || !still_seen_tx(tx, &m.bucket, &m.key, &seen)? {
                return Ok(None);
            }
            put_delete_marker_tx(tx, &b, &m).map(Some)
        })
        .await
    }

    async fn delete_object_version(
        &self,
        bucket: &Bucket,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<ObjectVersion>> {
        let (b, key, version_id) = (
            bucket.clone(),
            key.to_owned(),
            version_id.map(str::to_owned),
        );
        self.write_data(move |tx| delete_version_tx(tx, &b, &key, version_id.as_deref()))
            .await
    }

    async fn delete_seen_version(
        &self,
        bucket: &Bucket,
        key: &str,
        seen: &SeenVersion,
    ) -> Result<Option<ObjectVersion>> {
        let (b, key, seen) = (bucket.clone(), key.to_owned(), seen.clone());
        self.write_data(move |tx| {
            incarnation_tx(tx, &b)?;
            if !still_seen_tx(tx, &b.name, &key, &seen)? {
                return Ok(None);
            }
            delete_version_tx(tx, &b, &key, seen.version_id.as_deref())
        })
        .await
    }

    async fn list_object_versions(
        &self,
        bucket: &Bucket,
        prefix: &str,
        from: VersionsFrom<'_>,
        limit: usize,
    ) -> Result<Vec<ObjectVersion>> {
        let b = bucket.clone();
        let bucket = bucket.name.clone();
        let prefix = prefix.as_bytes().to_vec();
        // The position after which the page starts: (key, order), exclusive.
        let (after, within): ((Vec<u8>, i64), Option<String>) = match from {
            VersionsFrom::Start => ((prefix.clone(), i64::MIN), None),
            VersionsFrom::AfterKey(k) => ((k.as_bytes().to_vec(), i64::MAX), None),
            VersionsFrom::PastPrefix(p) => match prefix_end(p.as_bytes()) {
                Some(end) => ((end, i64::MIN), None),
                None => return Ok(Vec::new()),
            },
            VersionsFrom::AfterVersion(k, v) => {
                let (bucket, key, wanted) = (bucket.clone(), k.to_owned(), v.map(str::to_owned));
                let order = self
                    .lookup(move |c| {
                        query_row(
                            c,
                            "SELECT version_order FROM objects WHERE bucket = ?1 AND key = ?2 AND version_id = ?3
                             UNION ALL
                             SELECT version_order FROM object_versions WHERE bucket = ?1 AND key = ?2 AND version_id = ?3",
                            params![bucket, key_bytes(&key), stored_version_id(wanted.as_deref())],
                            |r| r.get::<_, i64>(0),
                        )
                        .optional()
                        .map_err(storage)
                    })
                    .await?
                    .ok_or_else(|| CatalogError::NotFound {
                        kind: "version",
                        name: format!("{k}?versionId={}", v.unwrap_or("null")),
                    })?;
                ((k.as_bytes().to_vec(), order), Some(k.to_owned()))
            }
        };
        let after = if after.0 < prefix {
            (prefix.clone(), i64::MIN)
        } else {
            after
        };
        let upper = prefix_end(&prefix);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut page = self
            .with(move |c| {
                // The bucket's check and the scan read one snapshot.
                let c = c.transaction().map_err(storage)?;
                incarnation_tx(&c, &b)?;
                // Two range scans merged in order (SQLite merges a compound SELECT whose
                // ORDER BY each side's primary key already delivers).
                let sql = format!(
                    "SELECT {OBJECT_COLS}, 0 FROM objects
                     WHERE bucket = ?1 AND (key, version_order) > (?2, ?3) AND (?4 IS NULL OR key < ?4)
                     UNION ALL
                     SELECT {VERSION_COLS} FROM object_versions
                     WHERE bucket = ?1 AND (key, version_order) > (?2, ?3) AND (?4 IS NULL OR key < ?4)
                     ORDER BY 2, 11 LIMIT ?5"
                );
                let mut stmt = c.prepare_cached(&sql).map_err(storage)?;
                let rows = stmt
                    .query_map(params![bucket, after.0, after.1, upper, limit], raw_version)
                    .map_err(storage)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(storage)?;
                drop(stmt);
                c.finish().map_err(storage)?;
                rows.into_iter()
                    .map(|r| decode_version(r).map(|v| v.0))
                    .collect::<Result<Vec<_>>>()
            })
            .await?;
        mark_latest(&mut page, within.as_deref());
        Ok(page)
    }

    async fn create_upload(&self, bucket: &Bucket, upload: &Upload) -> Result<()> {
        crate::same_bucket(bucket, &upload.bucket)?;
        let (b, u) = (bucket.clone(), upload.clone());
        self.write_data(move |c| {
            incarnation_tx(c, &b)?;
            exec(
                c,
                &format!("INSERT INTO uploads ({UPLOAD_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
                params![
                    u.upload_id,
                    u.bucket,
                    key_bytes(&u.key),
                    u.initiated_ms,
                    u.envelope,
                    u.meta,
                    to_json(&u.sites)?
                ],
            )
            .map_err(storage)?;
            Ok(())
        })
        .await
    }

    async fn get_upload(&self, upload_id: &str) -> Result<Option<Upload>> {
        let id = upload_id.to_owned();
        self.lookup(move |c| {
            query_row(
                c,
                &format!("SELECT {UPLOAD_COLS} FROM uploads WHERE upload_id = ?1"),
                params![id],
                raw_upload,
            )
            .optional()
            .map_err(storage)?
            .map(decode_upload)
            .transpose()
        })
        .await
    }

    async fn put_part_settling(
        &self,
        bucket: &Bucket,
        part: &Part,
        reservation: Option<&str>,
    ) -> Result<Option<Part>> {
        let (b, p) = (bucket.clone(), part.clone());
        let reservation = reservation.map(str::to_owned);
        self.write_data(move |tx| {
            let bucket = upload_bucket_tx(tx, &p.upload_id)?;
            crate::same_bucket(&b, &bucket)?;
            incarnation_tx(tx, &b)?;
            let now = wall_ms();
            let lost = settle_before_tx(tx, &b, reservation.as_deref(), now)?;
            let old = query_row(
                tx,
                &format!("SELECT {PART_COLS} FROM parts WHERE upload_id = ?1 AND part_number = ?2"),
                params![p.upload_id, p.part_number],
                raw_part,
            )
            .optional()
            .map_err(storage)?
            .map(RawPart::decode)
            .transpose()?;
            exec(
                tx,
                &format!(
                    "INSERT OR REPLACE INTO parts ({PART_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ),
                params![
                    p.upload_id,
                    p.part_number,
                    to_json(&p.chunk)?,
                    p.etag,
                    p.checksums,
                    to_json(&p.sites)?,
                    p.last_modified_ms
                ],
            )
            .map_err(storage)?;
            let old_size = old.as_ref().map_or(Ok(0), |o| i64_col(o.chunk.size))?;
            add_usage_tx(tx, &bucket, i64_col(p.chunk.size)? - old_size, 0)?;
            if let Some(before) = lost {
                recheck_tx(tx, &b, before, now)?;
            }
            Ok(old)
        })
        .await
    }

    async fn list_parts(&self, upload_id: &str, after: u32, limit: usize) -> Result<Vec<Part>> {
        let id = upload_id.to_owned();
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {PART_COLS} FROM parts WHERE upload_id = ?1 AND part_number > ?2 ORDER BY part_number LIMIT ?3"
                ))
                .map_err(storage)?;
            let rows = stmt
                .query_map(params![id, after, i64::try_from(limit).unwrap_or(i64::MAX)], raw_part)
                .map_err(storage)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(storage)?;
            rows.into_iter().map(RawPart::decode).collect()
        })
        .await
    }

    async fn list_uploads(
        &self,
        bucket: &Bucket,
        prefix: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<Upload>> {
        let b = bucket.clone();
        let bucket = bucket.name.clone();
        let prefix = prefix.as_bytes().to_vec();
        let after = after.map(|(k, u)| (k.as_bytes().to_vec(), u.to_owned()));
        self.with(move |c| {
            // The bucket's check and the scan read one snapshot.
            let c = c.transaction().map_err(storage)?;
            incarnation_tx(&c, &b)?;
            let upper = prefix_end(&prefix);
            let (after_key, after_id) = after.unwrap_or_default();
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {UPLOAD_COLS} FROM uploads
                     WHERE bucket = ?1 AND key >= ?2 AND (?3 IS NULL OR key < ?3)
                       AND (key > ?4 OR (key = ?4 AND upload_id > ?5))
                     ORDER BY key, upload_id LIMIT ?6"
                ))
                .map_err(storage)?;
            let rows = stmt
                .query_map(
                    params![
                        bucket,
                        prefix,
                        upper,
                        after_key,
                        after_id,
                        i64::try_from(limit).unwrap_or(i64::MAX)
                    ],
                    raw_upload,
                )
                .map_err(storage)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(storage)?;
            drop(stmt);
            c.finish().map_err(storage)?;
            rows.into_iter().map(decode_upload).collect()
        })
        .await
    }

    async fn complete_upload_settling(
        &self,
        bucket: &Bucket,
        upload_id: &str,
        object: &ObjectRecord,
        condition: PutCondition,
        reservation: Option<&str>,
    ) -> Result<(Option<ObjectRecord>, Vec<Part>)> {
        crate::same_bucket(bucket, &object.bucket)?;
        let id = upload_id.to_owned();
        let (b, o) = (bucket.clone(), object.clone());
        let reservation = reservation.map(str::to_owned);
        self.write_data(move |tx| {
            crate::same_bucket(&b, &upload_bucket_tx(tx, &id)?)?;
            let versioning = incarnation_tx(tx, &b)?;
            let now = wall_ms();
            let lost = settle_before_tx(tx, &b, reservation.as_deref(), now)?;
            let parts = remove_upload_tx(tx, &id)?;
            // Every chunk must still be a part of the upload: a part re-uploaded since the
            // caller listed them has replaced (and discarded) the blob it names.
            let current: std::collections::HashSet<BlobId> =
                parts.iter().map(|p| p.chunk.blob).collect();
            if o.chunks.iter().any(|c| !current.contains(&c.blob)) {
                return Err(CatalogError::Conflict(
                    "a part was replaced while the upload was being completed",
                ));
            }
            // ... and still on the sites the object will name: a drain that moved a part since
            // the caller listed them would otherwise leave the object recorded on a replica
            // that was just deleted.
            let on_object_sites = |p: &Part| o.sites.iter().all(|s| p.sites.contains(s));
            if parts
                .iter()
                .any(|p| o.chunks.iter().any(|c| c.blob == p.chunk.blob) && !on_object_sites(p))
            {
                return Err(CatalogError::Busy(
                    "a part moved to other sites while the upload was being completed",
                ));
            }
            let current = current_tx(tx, &o.bucket, &o.key)?;
            condition
                .check(current.as_ref().map(|c| &c.0))
                .map_err(CatalogError::PreconditionFailed)?;
            let used: std::collections::HashSet<BlobId> =
                o.chunks.iter().map(|c: &Chunk| c.blob).collect();
            let unused = parts
                .into_iter()
                .filter(|p| !used.contains(&p.chunk.blob))
                .collect();
            let old = put_version_tx(tx, &o, versioning, current)?;
            if let Some(before) = lost {
                recheck_tx(tx, &b, before, now)?;
            }
            remember_completion_tx(tx, &b, &id, &o)?;
            Ok((old, unused))
        })
        .await
    }

    async fn get_completed_upload(&self, upload_id: &str) -> Result<Option<CompletedUpload>> {
        let id = upload_id.to_owned();
        let since = wall_ms() - crate::COMPLETED_UPLOAD_RETENTION_MS;
        self.lookup(move |c| {
            query_row(
                c,
                "SELECT upload_id, bucket, created_ms, key, version_id, etag, completed_ms
                 FROM completed_uploads WHERE upload_id = ?1 AND completed_ms >= ?2",
                params![id, since],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Vec<u8>>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, i64>(6)?,
                    ))
                },
            )
            .optional()
            .map_err(storage)?
            .map(
                |(upload_id, bucket, bucket_created_ms, key, version, etag, completed_ms)| {
                    Ok(CompletedUpload {
                        upload_id,
                        bucket,
                        bucket_created_ms,
                        key: key_from(key)?,
                        version_id: (!version.is_empty()).then_some(version),
                        etag,
                        completed_ms,
                    })
                },
            )
            .transpose()
        })
        .await
    }

    async fn replace_object_meta(
        &self,
        bucket: &Bucket,
        key: &str,
        version_id: Option<&str>,
        expected: &[u8],
        meta: &[u8],
    ) -> Result<bool> {
        let b = bucket.clone();
        let (key, version) = (key.to_owned(), version_id.unwrap_or("").to_owned());
        let (expected, meta) = (expected.to_vec(), meta.to_vec());
        self.write_data(move |tx| {
            incarnation_tx(tx, &b)?;
            let mut n = 0;
            for sql in [
                "UPDATE objects SET meta = ?5
                 WHERE bucket = ?1 AND key = ?2 AND version_id = ?3 AND meta = ?4",
                "UPDATE object_versions SET meta = ?5
                 WHERE bucket = ?1 AND key = ?2 AND version_id = ?3 AND meta = ?4
                 AND delete_marker = 0",
            ] {
                n += exec(
                    tx,
                    sql,
                    params![b.name, key_bytes(&key), version, expected, meta],
                )
                .map_err(storage)?;
            }
            Ok(n >= 1)
        })
        .await
    }

    async fn get_bucket_config(&self, bucket: &Bucket, kind: &str) -> Result<Option<Vec<u8>>> {
        let (name, created, kind) = (bucket.name.clone(), bucket.created_ms, kind.to_owned());
        self.lookup(move |c| {
            query_row(
                c,
                "SELECT config FROM bucket_configs
                 WHERE bucket = ?1 AND created_ms = ?2 AND kind = ?3",
                params![name, created, kind],
                |r| r.get(0),
            )
            .optional()
            .map_err(storage)
        })
        .await
    }

    async fn put_bucket_config(
        &self,
        bucket: &Bucket,
        kind: &str,
        config: Option<&[u8]>,
        now_ms: i64,
    ) -> Result<()> {
        let b = bucket.clone();
        let (kind, config) = (kind.to_owned(), config.map(<[u8]>::to_vec));
        self.write_data(move |tx| {
            incarnation_tx(tx, &b)?;
            match config {
                Some(config) => exec(
                    tx,
                    "INSERT OR REPLACE INTO bucket_configs
                     (bucket, created_ms, kind, config, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![b.name, b.created_ms, kind, config, now_ms],
                ),
                None => exec(
                    tx,
                    "DELETE FROM bucket_configs WHERE bucket = ?1 AND created_ms = ?2 AND kind = ?3",
                    params![b.name, b.created_ms, kind],
                ),
            }
            .map_err(storage)?;
            Ok(())
        })
        .await
    }

    async fn get_object_lock(
        &self,
        bucket: &Bucket,
        key: &str,
        version_id: &str,
    ) -> Result<Option<Vec<u8>>> {
        let (name, created) = (bucket.name.clone(), bucket.created_ms);
        let (key, version) = (key.to_owned(), version_id.to_owned());
        self.lookup(move |c| {
            query_row(
                c,
                "SELECT record FROM object_locks
                 WHERE bucket = ?1 AND created_ms = ?2 AND key = ?3 AND version_id = ?4",
                params![name, created, key_bytes(&key), version],
                |r| r.get(0),
            )
            .optional()
            .map_err(storage)
        })
        .await
    }

    async fn put_object_lock(
        &self,
        bucket: &Bucket,
        key: &str,
        version_id: &str,
        record: &[u8],
        now_ms: i64,
    ) -> Result<()> {
        let b = bucket.clone();
        let (key, version, record) = (key.to_owned(), version_id.to_owned(), record.to_vec());
        self.write_data(move |tx| {
            incarnation_tx(tx, &b)?;
            exec(
                tx,
                "INSERT OR REPLACE INTO object_locks
                 (bucket, created_ms, key, version_id, record, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    b.name,
                    b.created_ms,
                    key_bytes(&key),
                    version,
                    record,
                    now_ms
                ],
            )
            .map_err(storage)?;
            Ok(())
        })
        .await
    }

    async fn abort_upload(&self, upload_id: &str) -> Result<Vec<Part>> {
        let id = upload_id.to_owned();
        self.write_data(move |tx| {
            upload_exists_tx(tx, &id)?;
            remove_upload_tx(tx, &id)
        })
        .await
    }

    async fn take_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<Option<Lease>> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.write_data(move |tx| {
            let current = read_lease(tx, &name)?;
            let Some(taken) = Lease::taken(&current, &holder, ttl_ms, host_now_ms()) else {
                return Ok(None);
            };
            exec(
                tx,
                "INSERT INTO leases (name, holder, epoch, expires_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,
                     epoch = excluded.epoch, expires_ms = excluded.expires_ms",
                params![
                    taken.name,
                    taken.holder,
                    i64::try_from(taken.epoch).map_err(storage)?,
                    taken.expires_ms
                ],
            )
            .map_err(storage)?;
            Ok(Some(taken))
        })
        .await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        let lease = lease.clone();
        self.write_data(move |tx| {
            exec(
                tx,
                "UPDATE leases SET expires_ms = 0 WHERE name = ?1 AND holder = ?2 AND epoch = ?3",
                params![
                    lease.name,
                    lease.holder,
                    i64::try_from(lease.epoch).map_err(storage)?
                ],
            )
            .map_err(storage)?;
            Ok(())
        })
        .await
    }

    async fn check_lease(&self, lease: &Lease) -> Result<()> {
        let lease = lease.clone();
        // The process owns the file: a read sees every take and release it made.
        self.with(move |c| fence(c, &lease)).await
    }

    async fn beat_gateway(&self, beat: &GatewayBeat) -> Result<i64> {
        if !crate::types::gateway_beat_fits(beat) {
            return Err(CatalogError::PreconditionFailed(
                "a gateway's id, release or status is too long",
            ));
        }
        let beat = beat.clone();
        self.write_data(move |tx| {
            let now = host_now_ms();
            exec(
                tx,
                "INSERT INTO gateways (id, version, started_ms, seen_ms, background, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (id) DO UPDATE SET version = excluded.version,
                     started_ms = excluded.started_ms, seen_ms = excluded.seen_ms,
                     background = excluded.background, status = excluded.status",
                params![
                    beat.id,
                    beat.version,
                    beat.started_ms,
                    now,
                    beat.background,
                    beat.status
                ],
            )
            .map_err(storage)?;
            Ok(now)
        })
        .await
    }

    async fn list_gateways(&self, limit: usize) -> Result<GatewayList> {
        let limit = i64::try_from(limit.min(MAX_GATEWAY_ROWS)).unwrap_or(0);
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT id, version, started_ms, seen_ms, background, status FROM gateways
                         WHERE length(CAST(id AS BLOB)) <= {MAX_GATEWAY_ID}
                             AND length(CAST(version AS BLOB)) <= {MAX_GATEWAY_VERSION}
                             AND length(CAST(status AS BLOB)) <= {MAX_GATEWAY_STATUS}
                         ORDER BY seen_ms DESC, id LIMIT ?1"
                ))
                .map_err(storage)?;
            let gateways = stmt
                .query_map(params![limit], |r| {
                    Ok(GatewayRow {
                        beat: GatewayBeat {
                            id: r.get(0)?,
                            version: r.get(1)?,
                            started_ms: r.get(2)?,
                            background: r.get(4)?,
                            status: r.get(5)?,
                        },
                        seen_ms: r.get(3)?,
                    })
                })
                .map_err(storage)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(storage)?;
            Ok(GatewayList {
                now_ms: host_now_ms(),
                gateways,
            })
        })
        .await
    }

    async fn forget_gateways_fenced(&self, lease: &Lease, unseen_ms: i64) -> Result<u64> {
        let lease = lease.clone();
        self.write_data(move |tx| {
            fence(tx, &lease)?;
            let n = exec(
                tx,
                "DELETE FROM gateways WHERE seen_ms < ?1",
                params![host_now_ms().saturating_sub(unseen_ms)],
            )
            .map_err(storage)?;
            Ok(u64::try_from(n).unwrap_or(u64::MAX))
        })
        .await
    }

    async fn reclaim_reservations_fenced(&self, lease: &Lease, now_ms: i64) -> Result<u64> {
        let lease = lease.clone();
        self.write_data(move |tx| {
            fence(tx, &lease)?;
            let n = exec(
                tx,
                "DELETE FROM reservations WHERE expires_ms <= ?1",
                params![now_ms],
            )
            .map_err(storage)?;
            Ok(u64::try_from(n).unwrap_or(u64::MAX))
        })
        .await
    }

    async fn move_object_sites(
        &self,
        lease: Option<&Lease>,
        bucket: &str,
        key: &str,
        chunks: &[Chunk],
        from: &[String],
        to: &[String],
    ) -> Result<bool> {
        let (lease, bucket, key) = (lease.cloned(), bucket.to_owned(), key.to_owned());
        let blobs: Vec<String> = chunks.iter().map(|c| c.blob.to_string()).collect();
        let added = crate::sites_added(from, to);
        let (chunks, from, to) = (to_json(&chunks)?, to_json(&from)?, to_json(&to)?);
        self.write_data(move |c| {
            if let Some(lease) = &lease {
                fence(c, lease)?;
            }
            if being_removed(c, &added, &blobs)? {
                return Ok(false);
            }
            let mut n = 0;
            for sql in [
                "UPDATE objects SET sites = ?5
                 WHERE bucket = ?1 AND key = ?2 AND chunks = ?3 AND sites = ?4",
                "UPDATE object_versions SET sites = ?5
                 WHERE bucket = ?1 AND key = ?2 AND chunks = ?3 AND sites = ?4",
            ] {
                n += exec(c, sql, params![bucket, key_bytes(&key), chunks, from, to])
                    .map_err(storage)?;
            }
            if n >= 1 {
                forget_named(c, &added, &blobs)?;
            }
            Ok(n >= 1)
        })
        .await
    }

    async fn move_part_sites(
        &self,
        lease: Option<&Lease>,
        upload_id: &str,
        part_number: u32,
        chunk: &Chunk,
        from: &[String],
        to: &[String],
    ) -> Result<bool> {
        let (lease, upload_id) = (lease.cloned(), upload_id.to_owned());
        let blobs = vec![chunk.blob.to_string()];
        let added = crate::sites_added(from, to);
        let (chunk, from, to) = (to_json(chunk)?, to_json(&from)?, to_json(&to)?);
        self.write_data(move |c| {
            if let Some(lease) = &lease {
                fence(c, lease)?;
            }
            if being_removed(c, &added, &blobs)? {
                return Ok(false);
            }
            let n = exec(
                c,
                "UPDATE parts SET sites = ?5
                 WHERE upload_id = ?1 AND part_number = ?2 AND chunk = ?3 AND sites = ?4",
                params![upload_id, part_number, chunk, from, to],
            )
            .map_err(storage)?;
            if n == 1 {
                forget_named(c, &added, &blobs)?;
            }
            Ok(n == 1)
        })
        .await
    }

    async fn note_unreferenced(
        &self,
        site: &str,
        unreferenced: &[BlobId],
    ) -> Result<(i64, Vec<(BlobId, i64)>)> {
        let site = site.to_owned();
        let found: Vec<String> = unreferenced.iter().map(ToString::to_string).collect();
        self.write_data(move |c| {
            let now = host_now_ms();
            let mut known: std::collections::HashMap<String, i64> = {
                let mut stmt = c
                    .prepare_cached(
                        "SELECT blob, first_seen_ms FROM unreferenced_blobs WHERE site = ?1",
                    )
                    .map_err(storage)?;
                stmt.query_map(params![site], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(storage)?
                    .collect::<rusqlite::Result<_>>()
                    .map_err(storage)?
            };
            let wanted: std::collections::HashSet<&str> =
                found.iter().map(String::as_str).collect();
            for blob in known.keys().filter(|b| !wanted.contains(b.as_str())) {
                exec(
                    c,
                    "DELETE FROM unreferenced_blobs WHERE site = ?1 AND blob = ?2",
                    params![site, blob],
                )
                .map_err(storage)?;
            }
            let mut out = Vec::with_capacity(found.len());
            for blob in &found {
                let since = match known.remove(blob) {
                    Some(since) => since,
                    None => {
                        exec(
                            c,
                            "INSERT INTO unreferenced_blobs (site, blob, first_seen_ms) VALUES (?1, ?2, ?3)",
                            params![site, blob, now],
                        )
                        .map_err(storage)?;
                        now
                    }
                };
                let id = BlobId::parse(blob)
                    .ok_or_else(|| CatalogError::Corrupt(format!("blob id {blob:?}")))?;
                out.push((id, since));
            }
            Ok((now, out))
        })
        .await
    }

    async fn claim_unreferenced(
        &self,
        lease: Option<&Lease>,
        site: &str,
        seen: &[(BlobId, i64)],
    ) -> Result<Vec<BlobId>> {
        let (lease, site) = (lease.cloned(), site.to_owned());
        let seen: Vec<(BlobId, i64)> = seen.to_vec();
        self.write_data(move |c| {
            if let Some(lease) = &lease {
                fence(c, lease)?;
            }
            let mut claimed = Vec::with_capacity(seen.len());
            for (blob, since) in &seen {
                let n = exec(
                    c,
                    "UPDATE unreferenced_blobs SET first_seen_ms = ?4
                     WHERE site = ?1 AND blob = ?2 AND first_seen_ms = ?3",
                    params![
                        site,
                        blob.to_string(),
                        since,
                        crate::UNREFERENCED_BEING_REMOVED
                    ],
                )
                .map_err(storage)?;
                if n == 1 {
                    claimed.push(*blob);
                }
            }
            Ok(claimed)
        })
        .await
    }

    async fn forget_unreferenced(&self, site: &str, blobs: &[BlobId]) -> Result<()> {
        let site = site.to_owned();
        let blobs: Vec<String> = blobs.iter().map(ToString::to_string).collect();
        self.write_data(move |c| {
            for blob in &blobs {
                exec(
                    c,
                    "DELETE FROM unreferenced_blobs WHERE site = ?1 AND blob = ?2",
                    params![site, blob],
                )
                .map_err(storage)?;
            }
            Ok(())
        })
        .await
    }

    async fn referenced_blobs(&self) -> Result<Vec<(String, BlobId)>> {
        self.with(|c| {
            // One read transaction, one snapshot for both statements: an upload completed
            // between them would move its parts' blobs out of the table read second into the
            // one read first.
            let c = c.transaction().map_err(storage)?;
            let mut out = Vec::new();
            let mut stmt = c
                .prepare("SELECT sites, chunks FROM objects UNION ALL SELECT sites, chunks FROM object_versions")
                .map_err(storage)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(storage)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(storage)?;
            for (sites, chunks) in rows {
                let sites: Vec<String> = from_json(&sites)?;
                let chunks: Vec<Chunk> = from_json(&chunks)?;
                for site in &sites {
                    out.extend(chunks.iter().map(|c| (site.clone(), c.blob)));
                }
            }
            let mut stmt = c
                .prepare("SELECT sites, chunk FROM parts")
                .map_err(storage)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(storage)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(storage)?;
            for (sites, chunk) in rows {
                let sites: Vec<String> = from_json(&sites)?;
                let chunk: Chunk = from_json(&chunk)?;
                out.extend(sites.into_iter().map(|s| (s, chunk.blob)));
            }
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_byte_string() {
        assert_eq!(prefix_end(b"abc"), Some(b"abd".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b""), None);
    }

    mod conformance_in_memory {
        crate::catalog_conformance_tests!(async {
            (crate::SqliteCatalog::in_memory().expect("open"), ())
        });
    }

    /// The deadline changes nothing of what a catalog that answers in time answers.
    mod conformance_with_a_deadline {
        crate::catalog_conformance_tests!(async {
            (
                crate::Deadline::new(
                    crate::SqliteCatalog::in_memory().expect("open"),
                    std::time::Duration::from_secs(30),
                ),
                (),
            )
        });
    }

    mod conformance_on_disk {
        crate::catalog_conformance_tests!(async {
            let dir = tempfile::tempdir().expect("tempdir");
            let catalog = crate::SqliteCatalog::open(&dir.path().join("catalog.db")).expect("open");
            (catalog, dir)
        });
    }

    /// The catalog is the provider's to write: a registry row longer than a heartbeat may be
    /// (written by other means) is not listed, so a page reading the registry never reads it.
    #[tokio::test]
    async fn registry_rows_past_the_bounds_are_not_listed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("catalog.db");
        let cat = SqliteCatalog::open(&path).expect("open");
        let beat = |id: &str| GatewayBeat {
            id: id.into(),
            version: "1".into(),
            started_ms: 0,
            background: false,
            status: "{}".into(),
        };
        cat.beat_gateway(&beat("gw-ok")).await.expect("beat");
        let long_id = "i".repeat(crate::MAX_GATEWAY_ID + 1);
        assert!(matches!(
            cat.beat_gateway(&beat(&long_id)).await,
            Err(CatalogError::PreconditionFailed(_))
        ));
        drop(cat);
        let huge = "s".repeat(crate::MAX_GATEWAY_STATUS + 1);
        Connection::open(&path)
            .expect("open")
            .execute(
                "INSERT INTO gateways (id, version, started_ms, seen_ms, background, status)
                 VALUES ('gw-huge', '1', 0, 0, 0, ?1), (?2, '1', 0, 0, 0, '{}'),
                        ('gw-ver', ?3, 0, 0, 0, '{}')",
                params![huge, long_id, "v".repeat(crate::MAX_GATEWAY_VERSION + 1)],
            )
            .expect("insert");
        let cat = SqliteCatalog::open(&path).expect("reopen");
        let ids: Vec<String> = cat
            .list_gateways(10)
            .await
            .expect("list")
            .gateways
            .into_iter()
            .map(|g| g.beat.id)
            .collect();
        assert_eq!(ids, ["gw-ok"]);
    }

    #[tokio::test]
    async fn reopen_keeps_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("catalog.db");
        let tenant = Tenant {
            name: "t-a".into(),
            jurisdictions: vec!["DE".into()],
            min_sites: 2,
            created_ms: 1,
        };
        {
            let cat = SqliteCatalog::open(&path).expect("open");
            cat.create_tenant(&tenant).await.expect("create");
        }
        let cat = SqliteCatalog::open(&path).expect("reopen");
        assert_eq!(cat.get_tenant("t-a").await.expect("get"), Some(tenant));
    }

    #[tokio::test]
    async fn aborting_an_upload_whose_parts_were_never_counted_takes_usage_below_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("catalog.db");
        let cat = SqliteCatalog::open(&path).expect("open");
        crate::conformance::fill_for_uncounted_abort(&cat).await;
        drop(cat);
        Connection::open(&path)
            .expect("open")
            .execute_batch("DELETE FROM bucket_usage WHERE bucket = 'neg-b'")
            .expect("delete");
        let cat = SqliteCatalog::open(&path).expect("reopen");
        crate::conformance::check_uncounted_abort(&cat).await;
    }

    #[tokio::test]
    async fn a_recount_mends_usage_that_fell_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("catalog.db");
        let cat = SqliteCatalog::open(&path).expect("open");
        crate::conformance::fill_for_recount(&cat).await;
        drop(cat);
        // What a release before usage was counted would leave behind.
        Connection::open(&path)
            .expect("open")
            .execute_batch("UPDATE bucket_usage SET bytes = 1, objects = 7")
            .expect("update");
        let cat = SqliteCatalog::open(&path).expect("reopen");
        let counted = cat.recount_usage("recount").await.expect("recount");
        assert_eq!((counted.bytes, counted.objects), (3 + 5, 1));
        let u = cat
            .usage(&PolicyScope::Bucket("recount".into()), 0)
            .await
            .expect("usage");
        assert_eq!((u.bytes, u.objects), (8, 1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writes_commit_together_and_a_failing_one_undoes_only_itself() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cat = SqliteCatalog::open(&dir.path().join("catalog.db")).expect("open");
        let t = |name: String| Tenant {
            name,
            jurisdictions: vec!["DE".into()],
            min_sites: 2,
            created_ms: 1,
        };
        let mut tasks = Vec::new();
        for i in 0..300 {
            let cat = cat.clone();
            // every third one collides with an earlier name: it must fail alone
            let name = if i % 3 == 2 {
                format!("t{}", i - 1)
            } else {
                format!("t{i}")
            };
            tasks.push(tokio::spawn(
                async move { cat.create_tenant(&t(name)).await },
            ));
        }
        let mut ok = 0;
        let mut dup = 0;
        for task in tasks {
            match task.await.expect("join") {
                Ok(()) => ok += 1,
                Err(CatalogError::AlreadyExists { .. }) => dup += 1,
                Err(e) => panic!("unexpected: {e}"),
            }
        }
        assert_eq!((ok, dup), (200, 100));
        assert_eq!(cat.list_tenants().await.expect("list").len(), 200);
        // durable: a second catalog on the same file sees every acknowledged write
        let again = SqliteCatalog::open(&dir.path().join("catalog.db")).expect("reopen");
        assert_eq!(again.list_tenants().await.expect("list").len(), 200);
    }
}
