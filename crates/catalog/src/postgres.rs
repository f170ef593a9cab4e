//! The catalog on PostgreSQL, for gateways on several hosts that share one catalog.
//!
//! It keeps the embedded catalog's tables, keys and meanings (docs/catalog.md): object and
//! upload keys are `bytea`, so that ordering is plain byte order (S3's listing order) whatever
//! the database's collation, and every other name that is listed in order is `COLLATE "C"`.
//! Site lists, chunks and residency rules are the same JSON text as in SQLite, so a row copied
//! from one to the other (`obhut catalog migrate`) compares equal byte for byte.
//!
//! Every call is one transaction on a pooled connection (sqlx's typed `PgPool`). Conditional
//! writes read the current record with `FOR UPDATE` and decide inside the transaction; a key
//! that has no record yet is claimed with `INSERT … ON CONFLICT DO NOTHING`, and a writer that
//! loses that race reads the winner's record and decides again. So of two concurrent puts of
//! one key exactly one ends visible, and the other is either refused by its condition or
//! returns the record it replaced, whose blobs are then garbage.
//!
//! Tenants, buckets, bucket keys, residency rules and quotas are answered from the same
//! in-memory copy as the embedded catalog's (`meta_cache.rs`). Other gateways write the same
//! tables, so every write of such a record sends a notification (`pg_notify`) in its own
//! transaction, which PostgreSQL delivers only once it commits; each catalog listens on a
//! connection of its own and empties its copy on each one. While that connection is down the
//! copy is switched off, and it starts empty again once the catalog listens anew; every entry
//! also expires after [`DEFAULT_CACHE_TTL`] (or what [`PgCatalog::connect_with_cache_ttl`]
//! sets), which bounds what a silently dead connection could leave stale (docs/catalog.md,
//! "Caching across gateways").

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
use sha2::Digest;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, PgConnection, Row};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

/// A statement put together from this file's constants only (column lists, an operator):
/// never from a caller's value, which is always bound.
macro_rules! sql {
    ($($t:tt)*) => {
        AssertSqlSafe(format!($($t)*))
    };
}
use std::time::Duration;

/// The body of a lookup answered from the cache under `$key` when it holds it; else `$read`
/// (the database's answer, a `Result` already unwrapped) is stored unless a write was heard of
/// meanwhile, and returned.
macro_rules! cached {
    ($self:ident, $key:expr, $read:expr) => {{
        let key: MetaKey = $key;
        if let Some(hit) = $self.meta.get(&key) {
            return Ok(hit);
        }
        let ticket = $self.meta.generation();
        let value = $read;
        $self.meta.put(key, ticket, &value);
        Ok(value)
    }};
}

/// The catalog's layouts on PostgreSQL, oldest first; `obhut_schema.version` says which one a
/// database has. They follow the embedded catalog's migrations one for one (version N here
/// holds what version N of `catalog.db` holds), except that the S3 secrets kept in clear by
/// releases before the trustee held them (`access_keys`) never come here. A released
/// migration never changes: a new layout is a migration appended here, and from now on
/// layouts change expand-then-contract (add, let every gateway run the release that writes
/// both, then drop), because gateways of two releases share one database during an upgrade.
const MIGRATIONS: &[&str] = &[
    PG_V1, PG_V2, PG_V3, PG_V4, PG_V5, PG_V6, PG_V7, PG_V8, PG_V9, PG_V10, PG_V11, PG_V12,
];

/// What names the layout's records in messages.
const DATABASE: &str = "the PostgreSQL catalog";

/// Serialises migrations of concurrent starts (an advisory lock of this number).
const MIGRATION_LOCK: i64 = 0x6f62_6875_7401;

const PG_V1: &str = r#"
CREATE TABLE tenants (
    name TEXT COLLATE "C" PRIMARY KEY,
    jurisdictions TEXT NOT NULL,
    min_sites BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE sites (
    id TEXT COLLATE "C" PRIMARY KEY,
    record TEXT NOT NULL
);
CREATE TABLE residency (
    scope TEXT COLLATE "C" PRIMARY KEY,
    rule TEXT NOT NULL
);
CREATE TABLE buckets (
    name TEXT COLLATE "C" PRIMARY KEY,
    tenant TEXT COLLATE "C" NOT NULL REFERENCES tenants(name),
    created_ms BIGINT NOT NULL
);
CREATE INDEX buckets_by_tenant ON buckets(tenant, name);
CREATE TABLE bucket_keys (
    bucket TEXT COLLATE "C" NOT NULL REFERENCES buckets(name) ON DELETE CASCADE,
    version BIGINT NOT NULL,
    wrapped BYTEA NOT NULL,
    kcv BYTEA NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (bucket, version)
);
CREATE TABLE objects (
    bucket TEXT COLLATE "C" NOT NULL,
    key BYTEA NOT NULL,
    size BIGINT NOT NULL,
    etag TEXT NOT NULL,
    last_modified_ms BIGINT NOT NULL,
    envelope BYTEA NOT NULL,
    meta BYTEA NOT NULL,
    sites TEXT NOT NULL,
    chunks TEXT NOT NULL,
    PRIMARY KEY (bucket, key)
);
CREATE TABLE uploads (
    upload_id TEXT COLLATE "C" PRIMARY KEY,
    bucket TEXT COLLATE "C" NOT NULL,
    key BYTEA NOT NULL,
    initiated_ms BIGINT NOT NULL,
    envelope BYTEA NOT NULL,
    meta BYTEA NOT NULL
);
CREATE INDEX uploads_by_key ON uploads(bucket, key, upload_id);
CREATE TABLE parts (
    upload_id TEXT COLLATE "C" NOT NULL REFERENCES uploads(upload_id),
    part_number BIGINT NOT NULL,
    chunk TEXT NOT NULL,
    etag TEXT NOT NULL,
    checksums BYTEA NOT NULL,
    sites TEXT NOT NULL,
    last_modified_ms BIGINT NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);
"#;

const PG_V2: &str = r"
ALTER TABLE uploads ADD COLUMN sites TEXT NOT NULL DEFAULT '[]';
";

const PG_V3: &str = r#"
CREATE TABLE upgrades (
    name TEXT COLLATE "C" PRIMARY KEY,
    done_ms BIGINT NOT NULL
);
"#;

/// Version 4: quotas and usage, as version 4 of `catalog.db` (docs/quotas.md). Only adds:
/// gateways of the release before keep working beside it (their writes are not counted in
/// `bucket_usage` until they are upgraded).
const PG_V4: &str = r#"
CREATE TABLE quotas (
    scope TEXT COLLATE "C" PRIMARY KEY,
    quota TEXT NOT NULL
);
CREATE TABLE bucket_usage (
    bucket TEXT COLLATE "C" NOT NULL,
    shard BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    objects BIGINT NOT NULL,
    PRIMARY KEY (bucket, shard)
);
CREATE TABLE reservations (
    id TEXT COLLATE "C" PRIMARY KEY,
    bucket TEXT COLLATE "C" NOT NULL,
    bytes BIGINT NOT NULL,
    objects BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX reservations_by_bucket ON reservations(bucket, expires_ms);
INSERT INTO bucket_usage (bucket, shard, bytes, objects)
SELECT b.name, 0,
    COALESCE((SELECT SUM(o.size) FROM objects o WHERE o.bucket = b.name), 0)
        + COALESCE((SELECT SUM((p.chunk::json->>'size')::BIGINT) FROM parts p
                    JOIN uploads u ON u.upload_id = p.upload_id WHERE u.bucket = b.name), 0),
    (SELECT COUNT(*) FROM objects o WHERE o.bucket = b.name)
FROM buckets b;
"#;

/// Version 5: `leases`, which says which gateway does the deployment's background work
/// (`Catalog::take_lease`). It only adds a table (expand): gateways of the release before
/// ignore it and keep running their workers as before.
const PG_V5: &str = r#"
CREATE TABLE leases (
    name TEXT COLLATE "C" PRIMARY KEY,
    holder TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
"#;

/// Version 6: versions, as version 6 of `catalog.db` (docs/catalog.md, "Versions"). Only adds
/// (expand): columns with defaults that describe what every row of the release before is (an
/// unversioned bucket, the `null` version) and a table that release never reads. Its gateways
/// keep working on buckets that are not versioned; versioning is turned on only once every
/// gateway runs a release that knows it (docs/catalog.md says why).
const PG_V6: &str = r#"
ALTER TABLE buckets ADD COLUMN versioning BIGINT NOT NULL DEFAULT 0;
ALTER TABLE objects ADD COLUMN version_id TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE objects ADD COLUMN version_order BIGINT NOT NULL DEFAULT 0;
CREATE TABLE object_versions (
    bucket TEXT COLLATE "C" NOT NULL,
    key BYTEA NOT NULL,
    size BIGINT NOT NULL,
    etag TEXT NOT NULL,
    last_modified_ms BIGINT NOT NULL,
    envelope BYTEA NOT NULL,
    meta BYTEA NOT NULL,
    sites TEXT NOT NULL,
    chunks TEXT NOT NULL,
    version_id TEXT COLLATE "C" NOT NULL,
    version_order BIGINT NOT NULL,
    delete_marker BIGINT NOT NULL,
    PRIMARY KEY (bucket, key, version_order)
);
"#;

/// Version 7: per-bucket configurations and completed uploads, as version 7 of `catalog.db`.
/// Only adds tables (expand): gateways of the release before never read them and keep
/// working; a bucket they delete leaves its configuration rows behind, keyed by that bucket's
/// incarnation, so they never apply to a bucket made again under its name.
const PG_V7: &str = r#"
CREATE TABLE bucket_configs (
    bucket TEXT COLLATE "C" NOT NULL,
    created_ms BIGINT NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    config BYTEA NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (bucket, created_ms, kind)
);
CREATE TABLE completed_uploads (
    upload_id TEXT COLLATE "C" PRIMARY KEY,
    bucket TEXT COLLATE "C" NOT NULL,
    created_ms BIGINT NOT NULL,
    key BYTEA NOT NULL,
    version_id TEXT COLLATE "C" NOT NULL,
    etag TEXT NOT NULL,
    completed_ms BIGINT NOT NULL
);
CREATE INDEX completed_uploads_by_time ON completed_uploads(completed_ms);
CREATE INDEX completed_uploads_by_bucket ON completed_uploads(bucket);
"#;

/// Version 8: `unreferenced_blobs`, as in the embedded catalog's version 8: since when (the
/// database's clock) orphan collection has found each blob on a site that no record names.
/// Only adds a table: gateways of the release before never read it. A `first_seen_ms` of -1
/// marks a blob that orphan collection is removing (`Catalog::claim_unreferenced`).
const PG_V8: &str = r#"
CREATE TABLE unreferenced_blobs (
    site TEXT COLLATE "C" NOT NULL,
    blob TEXT COLLATE "C" NOT NULL,
    first_seen_ms BIGINT NOT NULL,
    PRIMARY KEY (site, blob)
);
"#;

/// Version 9: `object_locks`, as in `catalog.db`.
const PG_V9: &str = r#"
CREATE TABLE object_locks (
    bucket TEXT COLLATE "C" NOT NULL,
    created_ms BIGINT NOT NULL,
    key BYTEA NOT NULL,
    version_id TEXT COLLATE "C" NOT NULL,
    record BYTEA NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (bucket, created_ms, key, version_id)
);
"#;

/// Version 10: the web console's sessions and their key, as in `catalog.db`. Only adds tables
/// (expand): gateways of the release before keep their sessions in memory.
const PG_V10: &str = r#"
CREATE TABLE console_keys (
    name TEXT COLLATE "C" PRIMARY KEY,
    sealed TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE console_sessions (
    id_hash TEXT COLLATE "C" PRIMARY KEY,
    sealed BYTEA NOT NULL,
    started_ms BIGINT NOT NULL,
    used_ms BIGINT NOT NULL
);
CREATE INDEX console_sessions_by_use ON console_sessions (used_ms);
"#;

/// Version 12: `gateways`, the registry of the gateways sharing the catalog, as in
/// `catalog.db`. Only adds a table (expand): gateways of the release before neither write nor
/// read it, and so are not listed.
const PG_V12: &str = r#"
CREATE TABLE gateways (
    id TEXT COLLATE "C" PRIMARY KEY,
    version TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    seen_ms BIGINT NOT NULL,
    background BOOLEAN NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX gateways_by_seen ON gateways (seen_ms);
"#;

/// Version 11: each console session's owner tag and session key id, as in `catalog.db`. Only
/// adds columns (expand): rows of version 10 have neither.
const PG_V11: &str = r#"
ALTER TABLE console_sessions ADD COLUMN owner TEXT COLLATE "C";
ALTER TABLE console_sessions ADD COLUMN key_id TEXT COLLATE "C";
CREATE INDEX console_sessions_by_owner ON console_sessions (owner, used_ms);
"#;

/// The advisory lock that serialises the starts of console sessions, so that the bound on
/// their number holds with sign-ins on many gateways at once.
const CONSOLE_SESSION_LOCK: i64 = 0x6f62_6373; // "obcs"

/// In a move's transaction: forgets orphan collection's records of `blobs` on `sites`, which
/// the move names now; returns whether one of them was being removed (claimed), in which case
/// the move must not be committed. The row lock waits for a claim in progress, and the value
/// returned is the one it committed.
async fn forget_named(c: &mut PgConnection, sites: &[String], blobs: &[String]) -> Result<bool> {
    if sites.is_empty() || blobs.is_empty() {
        return Ok(false);
    }
    let removed: Vec<i64> = sqlx::query_scalar(
        "DELETE FROM unreferenced_blobs WHERE site = ANY($1) AND blob = ANY($2)
         RETURNING first_seen_ms",
    )
    .bind(sites)
    .bind(blobs)
    .fetch_all(&mut *c)
    .await
    .map_err(storage)?;
    Ok(removed.contains(&crate::UNREFERENCED_BEING_REMOVED))
}

/// The first key of the advisory locks that serialise the writes of one key of a versioned
/// bucket (the second is a hash of bucket and key): its versions span two tables, and a new
/// newest one is ordered before the newest there is.
const VERSION_LOCK: i32 = 0x6f62_7672; // "obvr"

/// What a bucket (`$1`) holds, counted from its records, and what its usage says: in one
/// statement (one snapshot), so that the difference is the drift alone. Commits after it
/// change both alike, so adding the difference afterwards, without any lock, is exact.
const RECOUNT_BUCKET: &str = "SELECT
    (COALESCE((SELECT SUM(o.size) FROM objects o WHERE o.bucket = $1), 0)
        + COALESCE((SELECT SUM(v.size) FROM object_versions v WHERE v.bucket = $1), 0)
        + COALESCE((SELECT SUM((p.chunk::json->>'size')::BIGINT) FROM parts p
                    JOIN uploads u ON u.upload_id = p.upload_id WHERE u.bucket = $1), 0))::BIGINT,
    ((SELECT COUNT(*) FROM objects o WHERE o.bucket = $1)
        + (SELECT COUNT(*) FROM object_versions v WHERE v.bucket = $1 AND v.delete_marker = 0))::BIGINT,
    (SELECT COALESCE(SUM(bytes), 0) FROM bucket_usage WHERE bucket = $1)::BIGINT,
    (SELECT COALESCE(SUM(objects), 0) FROM bucket_usage WHERE bucket = $1)::BIGINT";

/// Rows each bucket's usage is spread over: concurrent commits into one bucket add to
/// different rows instead of queueing for one row's lock.
const USAGE_SHARDS: u32 = 16;

/// The first key of the advisory locks that serialise the quota checks of one tenant (the
/// second is a hash of its name).
const QUOTA_LOCK: i32 = 0x6f62_7175; // "obqu"

/// The usage row a commit of this process adds to next (in turn, offset by the process id
/// so that gateways started together do not all begin at the same row).
fn usage_shard() -> i64 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        .wrapping_add(std::process::id());
    i64::from(n % USAGE_SHARDS)
}

/// Adds `bytes` and `objects` (negative: removes) to what `bucket` holds, if the bucket exists.
///
/// The change goes to a usage row no other transaction holds (`SKIP LOCKED`, starting from
/// this process's next row), so that a commit left prepared by a gateway that died between
/// the two phases (which keeps its row locked until it is resolved) delays no other write.
/// Only when every existing row is held is one added or waited for.
async fn add_usage_tx(c: &mut PgConnection, bucket: &str, bytes: i64, objects: i64) -> Result<()> {
    if bytes == 0 && objects == 0 {
        return Ok(());
    }
    let shard = usage_shard();
    let updated = sqlx::query(sql!(
        "WITH pick AS (
             SELECT shard FROM bucket_usage WHERE bucket = $1
             ORDER BY (shard + {USAGE_SHARDS} - $2) % {USAGE_SHARDS}
             LIMIT 1 FOR UPDATE SKIP LOCKED)
         UPDATE bucket_usage u SET bytes = u.bytes + $3, objects = u.objects + $4
         FROM pick WHERE u.bucket = $1 AND u.shard = pick.shard"
    ))
    .bind(bucket)
    .bind(shard)
    .bind(bytes)
    .bind(objects)
    .execute(&mut *c)
    .await
    .map_err(storage)?;
    if updated.rows_affected() > 0 {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO bucket_usage (bucket, shard, bytes, objects)
         SELECT name, $2, $3, $4 FROM buckets WHERE name = $1
         ON CONFLICT (bucket, shard) DO UPDATE
         SET bytes = bucket_usage.bytes + EXCLUDED.bytes,
             objects = bucket_usage.objects + EXCLUDED.objects",
    )
    .bind(bucket)
    .bind(shard)
    .bind(bytes)
    .bind(objects)
    .execute(c)
    .await
    .map_err(storage)?;
    Ok(())
}

/// Counts the change from `old` to `new` under one key in the bucket's usage.
async fn count_object_tx(
    c: &mut PgConnection,
    bucket: &str,
    old: Option<&ObjectRecord>,
    new: Option<&ObjectRecord>,
) -> Result<()> {
    let size = |o: Option<&ObjectRecord>| o.map_or(Ok(0), |o| i64_col(o.size));
    let bytes = size(new)? - size(old)?;
    let objects = i64::from(new.is_some()) - i64::from(old.is_some());
    add_usage_tx(c, bucket, bytes, objects).await
}

/// Drops a reservation whose write failed; an unknown id is not an error.
async fn release_tx(c: &mut PgConnection, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM reservations WHERE id = $1")
        .bind(id)
        .execute(c)
        .await
        .map_err(storage)?;
    Ok(())
}

/// The database's clock in milliseconds (`clock_timestamp()`: the time of the call, not of
/// the transaction's start), one clock for every gateway.
const DB_NOW_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::BIGINT";

/// Drops the reservation of a write being committed, reporting whether it was still held:
/// there, and not expired by the database's clock.
async fn settle_tx(c: &mut PgConnection, reservation: Option<&str>) -> Result<Settled> {
    let Some(id) = reservation else {
        return Ok(Settled::NotGiven);
    };
    let live: Option<bool> = sqlx::query_scalar(sql!(
        "DELETE FROM reservations WHERE id = $1 RETURNING expires_ms > {DB_NOW_MS}"
    ))
    .bind(id)
    .fetch_optional(c)
    .await
    .map_err(storage)?;
    Ok(if live == Some(true) {
        Settled::Held
    } else {
        Settled::Lost
    })
}

/// Settles a commit's reservation; if it was lost, checks what the commit added to `bucket`
/// (`change`: bytes and objects, already written in this transaction) against the quotas of
/// the bucket and its tenant as [`Catalog::reserve`] does, under the same lock, so that no
/// reservation is decided meanwhile. `QuotaExceeded` undoes the commit.
async fn settle_and_recheck_tx(
    c: &mut PgConnection,
    bucket: &Bucket,
    reservation: Option<&str>,
    change: (i64, i64),
) -> Result<()> {
    if settle_tx(&mut *c, reservation).await? != Settled::Lost {
        return Ok(());
    }
    let grown = (
        u64::try_from(change.0).unwrap_or(0),
        u64::try_from(change.1).unwrap_or(0),
    );
    if grown == (0, 0) {
        return Ok(());
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(QUOTA_LOCK)
        .bind(&bucket.tenant)
        .execute(&mut *c)
        .await
        .map_err(storage)?;
    let now: i64 = sqlx::query_scalar(sql!("SELECT {DB_NOW_MS}"))
        .fetch_one(&mut *c)
        .await
        .map_err(storage)?;
    for scope in [
        PolicyScope::Tenant(bucket.tenant.clone()),
        PolicyScope::Bucket(bucket.name.clone()),
    ] {
        if let Some(quota) = get_quota_tx(&mut *c, &scope).await? {
            let usage = usage_tx(&mut *c, &scope, now).await?;
            crate::types::check_growth(&scope, &quota, &usage, grown)?;
        }
    }
    Ok(())
}

async fn get_quota_tx(c: &mut PgConnection, scope: &PolicyScope) -> Result<Option<Quota>> {
    let q: Option<String> = sqlx::query_scalar("SELECT quota FROM quotas WHERE scope = $1")
        .bind(scope.encode())
        .fetch_optional(c)
        .await
        .map_err(storage)?;
    q.map(|q| from_json(&q)).transpose()
}

/// What `scope` holds and has reserved (reservations live until `now_ms`): one statement,
/// so one snapshot, even under READ COMMITTED (a commit that settles a reservation is seen
/// either whole or not at all).
async fn usage_tx(c: &mut PgConnection, scope: &PolicyScope, now_ms: i64) -> Result<Usage> {
    let (sql, name) = match scope {
        PolicyScope::Tenant(n) => (USAGE_OF_TENANT, n),
        PolicyScope::Bucket(n) => (USAGE_OF_BUCKET, n),
    };
    let r = sqlx::query(sql)
        .bind(name)
        .bind(now_ms)
        .fetch_one(c)
        .await
        .map_err(storage)?;
    let col = |i: usize| -> Result<u64> {
        let v: i64 = r.try_get(i).map_err(storage)?;
        Ok(u64::try_from(v).unwrap_or(0))
    };
    Ok(Usage {
        bytes: col(0)?,
        objects: col(1)?,
        reserved_bytes: col(2)?,
        reserved_objects: col(3)?,
    })
}

/// A tenant's usage: each bucket's count (the sum of its shards) taken as at least zero, so
/// that a bucket's count that went below zero (what was never counted, taken away: the parts
/// of an upload a release before usage was counted left behind) cannot offset what the
/// others hold. A bucket's own count below zero reads as zero.
const USAGE_OF_TENANT: &str = "SELECT
    (SELECT COALESCE(SUM(GREATEST(s, 0)), 0)::BIGINT FROM (SELECT SUM(u.bytes) AS s FROM bucket_usage u JOIN buckets b ON b.name = u.bucket WHERE b.tenant = $1 GROUP BY u.bucket) AS per_bucket),
    (SELECT COALESCE(SUM(GREATEST(s, 0)), 0)::BIGINT FROM (SELECT SUM(u.objects) AS s FROM bucket_usage u JOIN buckets b ON b.name = u.bucket WHERE b.tenant = $1 GROUP BY u.bucket) AS per_bucket),
    (SELECT COALESCE(SUM(r.bytes), 0)::BIGINT FROM reservations r JOIN buckets b ON b.name = r.bucket WHERE b.tenant = $1 AND r.expires_ms > $2),
    (SELECT COALESCE(SUM(r.objects), 0)::BIGINT FROM reservations r JOIN buckets b ON b.name = r.bucket WHERE b.tenant = $1 AND r.expires_ms > $2)";

const USAGE_OF_BUCKET: &str = "SELECT
    (SELECT GREATEST(COALESCE(SUM(bytes), 0), 0)::BIGINT FROM bucket_usage WHERE bucket = $1),
    (SELECT GREATEST(COALESCE(SUM(objects), 0), 0)::BIGINT FROM bucket_usage WHERE bucket = $1),
    (SELECT COALESCE(SUM(bytes), 0)::BIGINT FROM reservations WHERE bucket = $1 AND expires_ms > $2),
    (SELECT COALESCE(SUM(objects), 0)::BIGINT FROM reservations WHERE bucket = $1 AND expires_ms > $2)";

/// The catalog on PostgreSQL. Cloning shares the pool and the cache.
#[derive(Clone)]
pub struct PgCatalog {
    pool: PgPool,
    meta: Arc<MetaCache>,
    /// The notification channel of this database and schema.
    channel: Arc<str>,
    /// A random name of this catalog (shared by its clones), which its notifications carry.
    me: Arc<str>,
    listener: Arc<Listener>,
    /// Whether commits that make an object visible are two-phase (the server allows prepared
    /// transactions, `max_prepared_transactions` above zero): see [`Self::commit_visible`].
    two_phase: bool,
    /// See [`Self::set_abandoned_after`].
    abandoned_after_ms: Arc<AtomicU64>,
}

/// How long a cached tenant, bucket, bucket key, residency rule or quota is answered from at
/// most, even when no notification of a change arrives (the listening connection could be
/// dead without either side noticing yet).
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(5);

/// The task that listens for other gateways' writes; stopped when the last clone of the
/// catalog is dropped.
struct Listener {
    task: tokio::task::JoinHandle<()>,
    /// Rolls back the prepared transactions that gateways gave up on (two-phase commits).
    resolver: Option<tokio::task::JoinHandle<()>>,
    /// The listening connection's backend process id, 0 while it has none.
    pid: Arc<AtomicI32>,
    /// Notifications of other catalogs' writes heard so far.
    heard: Arc<AtomicU64>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(r) = &self.resolver {
            r.abort();
        }
    }
}

/// How old (since it was prepared) a prepared transaction of a two-phase commit must be before
/// it counts as abandoned, unless [`PgCatalog::set_abandoned_after`] says otherwise: longer
/// than any caller waits for it (its deadline). Rolling back one still about to be committed
/// is safe all the same: its `COMMIT PREPARED` then fails, and the write is answered with an
/// error, never acknowledged.
pub const ABANDONED_AFTER: Duration = Duration::from_secs(60);

/// How often abandoned prepared transactions are looked for.
const RESOLVE_EVERY: Duration = Duration::from_secs(3);

async fn resolve_abandoned_loop(pool: PgPool, channel: Arc<str>, after_ms: Arc<AtomicU64>) {
    loop {
        tokio::time::sleep(RESOLVE_EVERY).await;
        let after = Duration::from_millis(after_ms.load(Ordering::Relaxed));
        // `after` is three deadlines (see `PgCatalog::set_abandoned_after`): past one, the
        // gateway that prepared a commit has stopped waiting for it whatever became of it.
        let resolved = resolve_abandoned(&pool, &channel, after, after / 3);
        match tokio::time::timeout(RESOLVE_EVERY * 3, resolved).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(
                rolled_back = n,
                "prepared catalog transactions that their gateways gave up on were rolled back"
            ),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "abandoned prepared transactions not resolved now")
            }
            Err(_) => {
                tracing::debug!("abandoned prepared transactions not resolved now (no answer)")
            }
        }
    }
}

/// See [`PgCatalog::resolve_abandoned`]. A transaction still waiting in its first phase is
/// busy and left for the next round.
///
/// A gid names the backend of its gateway's listening connection (`channel:pid:blob`, see
/// [`PgCatalog::commit_visible`]); once that backend is gone (the gateway died, or lost the
/// database) the transaction is abandoned once older than `gone_after` (the deadline its
/// gateway waits at most, so that a gateway whose listening connection alone dropped is not
/// failed a commit it still waits for), rather than after `older_than`, so that the rows it
/// holds locked are freed soon after a gateway is killed. A reused process id only makes the
/// wait the full `older_than` again.
async fn resolve_abandoned(
    pool: &PgPool,
    channel: &str,
    older_than: Duration,
    gone_after: Duration,
) -> Result<u64> {
    let gids: Vec<String> = sqlx::query_scalar(
        "SELECT gid FROM pg_prepared_xacts p
         WHERE database = current_database() AND starts_with(gid, $1)
           AND (prepared < clock_timestamp() - make_interval(secs => $2)
                OR (split_part(gid, ':', 3) <> ''
                    AND prepared < clock_timestamp() - make_interval(secs => $3)
                    AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a
                                    WHERE a.pid::text = split_part(p.gid, ':', 2))))",
    )
    .bind(format!("{channel}:"))
    .bind(older_than.as_secs_f64())
    .bind(gone_after.as_secs_f64())
    .fetch_all(pool)
    .await
    .map_err(storage)?;
    let mut n = 0;
    for gid in gids {
        // The gid is ours: the channel's name and a blob id, nothing to quote.
        if !gid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
        {
            continue;
        }
        match sqlx::raw_sql(AssertSqlSafe(format!("ROLLBACK PREPARED '{gid}'")))
            .execute(pool)
            .await
        {
            Ok(_) => n += 1,
            Err(e) => tracing::debug!(%gid, error = %e, "prepared transaction not rolled back now"),
        }
    }
    Ok(n)
}

/// The first wait before listening is tried again after a failure; it doubles up to
/// [`LISTEN_RETRY_MAX`].
const LISTEN_RETRY: Duration = Duration::from_millis(100);
const LISTEN_RETRY_MAX: Duration = Duration::from_secs(5);

/// Listens on `channel` on a connection of its own and empties `meta` on every notification.
/// The cache is off from the moment the connection is lost (or before it was first made)
/// until `LISTEN` is in place again, and empty when it comes back on: what changed meanwhile
/// was not heard of. Ends when the catalog is gone.
async fn listen(
    options: PgConnectOptions,
    channel: Arc<str>,
    me: Arc<str>,
    meta: Weak<MetaCache>,
    pid: Arc<AtomicI32>,
    heard: Arc<AtomicU64>,
) {
    let mut retry = LISTEN_RETRY;
    loop {
        pid.store(0, Ordering::Relaxed);
        match meta.upgrade() {
            Some(m) => m.disable(),
            None => return,
        }
        match subscribe(&options, &channel).await {
            Ok((mut listener, backend)) => {
                pid.store(backend, Ordering::Relaxed);
                match meta.upgrade() {
                    Some(m) => m.enable(),
                    None => return,
                }
                retry = LISTEN_RETRY;
                // A lost connection is `Ok(None)` (no eager reconnect: the cache goes off at
                // once, above) or an error (a terminated backend says so before it closes).
                while let Ok(Some(note)) = listener.try_recv().await {
                    // This catalog's own writes emptied its cache when they committed.
                    if note.payload() == &*me {
                        continue;
                    }
                    match meta.upgrade() {
                        Some(m) => m.invalidate(),
                        None => return,
                    }
                    heard.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(_) => {
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(LISTEN_RETRY_MAX);
            }
        }
    }
}

/// A new connection that listens on `channel`, and its backend process id.
async fn subscribe(
    options: &PgConnectOptions,
    channel: &str,
) -> std::result::Result<(PgListener, i32), sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy_with(options.clone());
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.eager_reconnect(false);
    let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut listener)
        .await?;
    // Last, so that pg_stat_activity shows the connection's purpose.
    listener.listen(channel).await?;
    Ok((listener, backend))
}

/// Tells every catalog on this database and schema, once the transaction commits, that a
/// cached kind of record changed; `me` names the catalog that wrote.
async fn notify_tx(c: &mut PgConnection, channel: &str, me: &str) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(me)
        .execute(c)
        .await
        .map_err(storage)?;
    Ok(())
}

/// The first 8 bytes of a digest in hex.
fn hex8(digest: &[u8]) -> String {
    use std::fmt::Write as _;
    digest.iter().take(8).fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A pooled connection idle for this long is pinged before it is used again.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// How long a connection given back to the pool may take to answer before it is closed (see
/// `after_release` in [`PgCatalog::connect`]).
const RELEASE_CHECK: Duration = Duration::from_secs(2);

/// Connections a process keeps to the catalog at most.
const MAX_CONNECTIONS: u32 = 16;

/// This host's clock, in milliseconds since the epoch.
fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn storage(e: impl std::fmt::Display) -> CatalogError {
    CatalogError::Storage(e.to_string())
}

/// The lease `name` as stored (an empty holder at epoch 0 if nobody ever took it), read with
/// `lock` (`FOR UPDATE` to take it, `FOR SHARE` to check it).
async fn lease_tx(c: &mut PgConnection, name: &str, lock: &'static str) -> Result<Lease> {
    let row: Option<(String, i64, i64)> = sqlx::query_as(sql!(
        "SELECT holder, epoch, expires_ms FROM leases WHERE name = $1 {lock}"
    ))
    .bind(name)
    .fetch_optional(&mut *c)
    .await
    .map_err(storage)?;
    let (holder, epoch, expires_ms) = row.unwrap_or_default();
    Ok(Lease {
        name: name.to_owned(),
        holder,
        epoch: u64::try_from(epoch).map_err(corrupt)?,
        expires_ms,
    })
}

/// The database's clock in milliseconds since the Unix epoch: leases lapse by it, so that the
/// clocks of the gateways sharing the catalog never decide who holds one.
/// `clock_timestamp()` is read when the statement runs (after any lock the transaction waited
/// for), not when the transaction began.
async fn db_now_ms(c: &mut PgConnection) -> Result<i64> {
    sqlx::query_scalar("SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint")
        .fetch_one(&mut *c)
        .await
        .map_err(storage)
}

/// The check of a fenced batch, inside its transaction: the lease's row is share-locked, so a
/// takeover (which updates it) waits until the batch has committed or rolled back, and the
/// batch goes on only under the current lease, unlapsed by the database's clock.
async fn fence_tx(c: &mut PgConnection, lease: &Lease) -> Result<()> {
    let stored = lease_tx(c, &lease.name, "FOR SHARE").await?;
    let now_ms = db_now_ms(c).await?;
    if lease.is_current(&stored, now_ms) {
        Ok(())
    } else {
        Err(CatalogError::LeaseLost(lease.name.clone()))
    }
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

fn key_from(bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(corrupt)
}

fn u64_col(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(corrupt)
}

fn u32_col(v: i64) -> Result<u32> {
    u32::try_from(v).map_err(corrupt)
}

fn i64_col(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(corrupt)
}

fn limit_col(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
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

/// The columns an unversioned write sets (the rest keep their defaults, as they do for a
/// gateway of the release before versions).
const OBJECT_COLS: &str =
    "bucket, key, size, etag, last_modified_ms, envelope, meta, sites, chunks";

/// Every column of an `objects` row, as it is read.
const OBJECT_READ_COLS: &str = "bucket, key, size, etag, last_modified_ms, envelope, meta, sites, chunks, version_id, version_order";

/// The columns of `object_versions`: an object's, and whether it is a delete marker.
const VERSION_COLS: &str = "bucket, key, size, etag, last_modified_ms, envelope, meta, sites, chunks, version_id, version_order, delete_marker";

/// The id of a stored version: `''` is the `null` version.
fn stored_version_id(v: Option<&str>) -> &str {
    v.unwrap_or("")
}

/// A row of `object_versions` (or of `objects` with `false` for its marker column), with its
/// order.
fn decode_version(r: &PgRow) -> Result<(ObjectVersion, i64)> {
    Ok((
        ObjectVersion {
            object: decode_object(r)?,
            delete_marker: r.try_get::<i64, _>(11).map_err(corrupt)? != 0,
            is_latest: false,
        },
        r.try_get(10).map_err(corrupt)?,
    ))
}

fn decode_object(r: &PgRow) -> Result<ObjectRecord> {
    let get = |e: sqlx::Error| corrupt(e);
    Ok(ObjectRecord {
        bucket: r.try_get(0).map_err(get)?,
        key: key_from(r.try_get(1).map_err(get)?)?,
        size: u64_col(r.try_get(2).map_err(get)?)?,
        etag: r.try_get(3).map_err(get)?,
        last_modified_ms: r.try_get(4).map_err(get)?,
        envelope: r.try_get(5).map_err(get)?,
        meta: r.try_get(6).map_err(get)?,
        sites: from_json(&r.try_get::<String, _>(7).map_err(get)?)?,
        chunks: from_json(&r.try_get::<String, _>(8).map_err(get)?)?,
        version_id: Some(r.try_get::<String, _>(9).map_err(get)?).filter(|v| !v.is_empty()),
    })
}

const PART_COLS: &str = "upload_id, part_number, chunk, etag, checksums, sites, last_modified_ms";

fn decode_part(r: &PgRow) -> Result<Part> {
    let get = |e: sqlx::Error| corrupt(e);
    Ok(Part {
        upload_id: r.try_get(0).map_err(get)?,
        part_number: u32_col(r.try_get(1).map_err(get)?)?,
        chunk: from_json(&r.try_get::<String, _>(2).map_err(get)?)?,
        etag: r.try_get(3).map_err(get)?,
        checksums: r.try_get(4).map_err(get)?,
        sites: from_json(&r.try_get::<String, _>(5).map_err(get)?)?,
        last_modified_ms: r.try_get(6).map_err(get)?,
    })
}

const UPLOAD_COLS: &str = "upload_id, bucket, key, initiated_ms, envelope, meta, sites";

fn decode_upload(r: &PgRow) -> Result<Upload> {
    let get = |e: sqlx::Error| corrupt(e);
    Ok(Upload {
        upload_id: r.try_get(0).map_err(get)?,
        bucket: r.try_get(1).map_err(get)?,
        key: key_from(r.try_get(2).map_err(get)?)?,
        initiated_ms: r.try_get(3).map_err(get)?,
        envelope: r.try_get(4).map_err(get)?,
        meta: r.try_get(5).map_err(get)?,
        sites: from_json(&r.try_get::<String, _>(6).map_err(get)?)?,
    })
}

const BUCKET_KEY_COLS: &str = "bucket, version, wrapped, kcv, created_ms";

fn decode_bucket_key(r: &PgRow) -> Result<BucketKey> {
    let get = |e: sqlx::Error| corrupt(e);
    Ok(BucketKey {
        bucket: r.try_get(0).map_err(get)?,
        version: u32_col(r.try_get(1).map_err(get)?)?,
        wrapped: r.try_get(2).map_err(get)?,
        kcv: r.try_get(3).map_err(get)?,
        created_ms: r.try_get(4).map_err(get)?,
    })
}

fn decode_tenant(r: &PgRow) -> Result<Tenant> {
    let get = |e: sqlx::Error| corrupt(e);
    Ok(Tenant {
        name: r.try_get(0).map_err(get)?,
        jurisdictions: from_json(&r.try_get::<String, _>(1).map_err(get)?)?,
        min_sites: u32_col(r.try_get(2).map_err(get)?)?,
        created_ms: r.try_get(3).map_err(get)?,
    })
}

fn decode_bucket(r: &PgRow) -> Result<Bucket> {
    let get = |e: sqlx::Error| corrupt(e);
    Ok(Bucket {
        name: r.try_get(0).map_err(get)?,
        tenant: r.try_get(1).map_err(get)?,
        created_ms: r.try_get(2).map_err(get)?,
        versioning: Versioning::from_code(r.try_get(3).map_err(get)?)?,
    })
}

async fn get_object_tx(
    c: &mut PgConnection,
    bucket: &str,
    key: &str,
    lock: bool,
) -> Result<Option<ObjectRecord>> {
    let sql = format!(
        "SELECT {OBJECT_READ_COLS} FROM objects WHERE bucket = $1 AND key = $2{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    sqlx::query(AssertSqlSafe(sql.as_str()))
        .bind(bucket)
        .bind(key.as_bytes())
        .fetch_optional(c)
        .await
        .map_err(storage)?
        .as_ref()
        .map(decode_object)
        .transpose()
}

/// Makes `o` the record under its key if `condition` holds for the current one; returns the
/// record it replaced. The current record is locked while the condition is decided; a key
/// with no record is claimed by an insert, and a lost race to claim it decides again against
/// the winner's record.
async fn put_object_tx(
    c: &mut PgConnection,
    o: &ObjectRecord,
    condition: &PutCondition,
) -> Result<Option<ObjectRecord>> {
    let (size, sites, chunks) = (i64_col(o.size)?, to_json(&o.sites)?, to_json(&o.chunks)?);
    loop {
        let current = get_object_tx(&mut *c, &o.bucket, &o.key, true).await?;
        condition
            .check(current.as_ref())
            .map_err(CatalogError::PreconditionFailed)?;
        let sql = if current.is_some() {
            "UPDATE objects SET size = $3, etag = $4, last_modified_ms = $5, envelope = $6,
                 meta = $7, sites = $8, chunks = $9 WHERE bucket = $1 AND key = $2"
                .to_owned()
        } else {
            format!(
                "INSERT INTO objects ({OBJECT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (bucket, key) DO NOTHING"
            )
        };
        let n = sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(&o.bucket)
            .bind(o.key.as_bytes())
            .bind(size)
            .bind(&o.etag)
            .bind(o.last_modified_ms)
            .bind(&o.envelope)
            .bind(&o.meta)
            .bind(&sites)
            .bind(&chunks)
            .execute(&mut *c)
            .await
            .map_err(storage)?
            .rows_affected();
        if n == 1 {
            return Ok(current);
        }
        // Another writer created the record since it was read: decide against it.
    }
}

/// `NotFound` unless the bucket exists; the row is share-locked until the transaction ends,
/// so that a bucket being deleted is not written into (the delete locks it for update).
async fn lock_bucket_shared(c: &mut PgConnection, bucket: &str) -> Result<()> {
    lock_bucket_versioning(c, bucket).await.map(|_| ())
}

/// [`lock_bucket_shared`], answering the bucket's versioning state as the lock found it (it
/// cannot change before the transaction ends: changing it locks the row for update).
async fn lock_bucket_versioning(c: &mut PgConnection, bucket: &str) -> Result<Versioning> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT versioning FROM buckets WHERE name = $1 FOR SHARE")
            .bind(bucket)
            .fetch_optional(c)
            .await
            .map_err(storage)?;
    match found {
        Some(code) => Versioning::from_code(code),
        None => Err(CatalogError::NotFound {
            kind: "bucket",
            name: bucket.to_owned(),
        }),
    }
}

/// `bucket`'s versioning state if it is still the bucket of its name: the same owner and the
/// same incarnation (`created_ms`) as the record the caller was authorised against (perhaps
/// a cached one); `NotFound` if it was deleted, or deleted and created again, since. The row
/// is share-locked until the transaction ends, so the answer holds until the write commits
/// (deleting the bucket or changing its versioning locks it for update).
async fn lock_incarnation(c: &mut PgConnection, bucket: &Bucket) -> Result<Versioning> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT versioning FROM buckets WHERE name = $1 AND tenant = $2 AND created_ms = $3
         FOR SHARE",
    )
    .bind(&bucket.name)
    .bind(&bucket.tenant)
    .bind(bucket.created_ms)
    .fetch_optional(c)
    .await
    .map_err(storage)?;
    match found {
        Some(code) => Versioning::from_code(code),
        None => Err(CatalogError::NotFound {
            kind: "bucket",
            name: bucket.name.clone(),
        }),
    }
}

/// `NotFound` unless `bucket` is still the bucket of its name (see [`lock_incarnation`]); for
/// a listing that came back empty, whose statement carried the same check as a condition.
async fn require_incarnation(pool: &PgPool, bucket: &Bucket) -> Result<()> {
    let found =
        sqlx::query("SELECT 1 FROM buckets WHERE name = $1 AND tenant = $2 AND created_ms = $3")
            .bind(&bucket.name)
            .bind(&bucket.tenant)
            .bind(bucket.created_ms)
            .fetch_optional(pool)
            .await
            .map_err(storage)?;
    match found {
        Some(_) => Ok(()),
        None => Err(CatalogError::NotFound {
            kind: "bucket",
            name: bucket.name.clone(),
        }),
    }
}

/// The condition a listing's statement carries, with the bucket's name as `$1`, its tenant as
/// `$T` and its `created_ms` as `$C`: rows are read only while `bucket` is the bucket of its
/// name, in the statement's own snapshot.
macro_rules! incarnation_guard {
    ($t:literal, $c:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM buckets WHERE name = $1 AND tenant = $",
            $t,
            " AND created_ms = $",
            $c,
            ")"
        )
    };
}

/// Serialises the writes of one key of a versioned bucket until the transaction ends.
async fn lock_key_versions(c: &mut PgConnection, bucket: &str, key: &str) -> Result<()> {
    let mut name = bucket.as_bytes().to_vec();
    name.push(0);
    name.extend_from_slice(key.as_bytes());
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(encode($2, 'hex')))")
        .bind(VERSION_LOCK)
        .bind(name)
        .execute(c)
        .await
        .map_err(storage)?;
    Ok(())
}

/// [`Catalog::put_delete_marker`] in a transaction (committed by the caller).
async fn put_delete_marker_tx(
    tx: &mut PgConnection,
    bucket: &Bucket,
    m: &ObjectRecord,
) -> Result<Vec<ObjectRecord>> {
    if lock_incarnation(&mut *tx, bucket).await? == Versioning::Unversioned {
        return Err(CatalogError::Conflict(
            "a delete marker in a bucket that is not versioned",
        ));
    }
    lock_key_versions(&mut *tx, &m.bucket, &m.key).await?;
    let current = current_tx(&mut *tx, &m.bucket, &m.key).await?;
    let order = next_order_tx(&mut *tx, &m.bucket, &m.key, current.as_ref().map(|c| c.1)).await?;
    let mut removed = Vec::new();
    if let Some((cur, cur_order)) = current {
        delete_current_tx(&mut *tx, &m.bucket, &m.key).await?;
        if cur.version_id.is_none() && m.version_id.is_none() {
            removed.push(ObjectVersion {
                object: cur,
                delete_marker: false,
                is_latest: true,
            });
        } else {
            write_noncurrent_tx(&mut *tx, &cur, cur_order, false).await?;
        }
    }
    if m.version_id.is_none() && removed.is_empty() {
        removed.extend(remove_noncurrent_tx(&mut *tx, &m.bucket, &m.key, None).await?);
    }
    write_noncurrent_tx(&mut *tx, m, order, true).await?;
    let (bytes, objects) = uncounted(&removed)?;
    add_usage_tx(&mut *tx, &m.bucket, -bytes, -objects).await?;
    Ok(removed
        .into_iter()
        .filter(|r| !r.delete_marker)
        .map(|r| r.object)
        .collect())
}

/// [`Catalog::delete_object_version`] in a transaction (committed by the caller).
async fn delete_version_tx(
    tx: &mut PgConnection,
    b: &Bucket,
    key: &str,
    version_id: Option<&str>,
) -> Result<Option<ObjectVersion>> {
    let bucket = b.name.as_str();
    lock_incarnation(&mut *tx, b).await?;
    lock_key_versions(&mut *tx, bucket, key).await?;
    let current = current_tx(&mut *tx, bucket, key).await?;
    let removed = match current {
        Some((cur, _)) if cur.version_id.as_deref() == version_id => {
            delete_current_tx(&mut *tx, bucket, key).await?;
            Some(ObjectVersion {
                object: cur,
                delete_marker: false,
                is_latest: true,
            })
        }
        Some(_) => remove_noncurrent_tx(&mut *tx, bucket, key, version_id).await?,
        None => {
            let newest = newest_noncurrent_tx(&mut *tx, bucket, key)
                .await?
                .map(|n| n.0);
            remove_noncurrent_tx(&mut *tx, bucket, key, version_id)
                .await?
                .map(|mut v| {
                    v.is_latest = newest.as_ref() == Some(&v);
                    v
                })
        }
    };
    if removed.is_some() {
        let (bytes, objects) = uncounted(removed.as_slice())?;
        add_usage_tx(&mut *tx, bucket, -bytes, -objects).await?;
        if current_tx(&mut *tx, bucket, key).await?.is_none()
            && let Some((next, order)) = newest_noncurrent_tx(&mut *tx, bucket, key).await?
            && !next.delete_marker
        {
            // The newest noncurrent version becomes current.
            sqlx::query(
                "DELETE FROM object_versions WHERE bucket = $1 AND key = $2 AND version_order = $3",
            )
            .bind(bucket)
            .bind(key.as_bytes())
            .bind(order)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
            write_current_tx(&mut *tx, &next.object, order).await?;
        }
    }
    Ok(removed)
}

/// Whether the entry `seen` names is still as it was seen (see [`SeenVersion::matches`]);
/// the key's versions are locked by the caller.
async fn still_seen_tx(
    tx: &mut PgConnection,
    bucket: &str,
    key: &str,
    seen: &SeenVersion,
) -> Result<bool> {
    let current = current_tx(&mut *tx, bucket, key).await?;
    let found = match &current {
        Some((cur, _)) if cur.version_id == seen.version_id => Some((cur.clone(), false, true)),
        _ => {
            let row = sqlx::query(sql!(
                "SELECT {VERSION_COLS} FROM object_versions WHERE bucket = $1 AND key = $2 AND version_id = $3"
            ))
            .bind(bucket)
            .bind(key.as_bytes())
            .bind(stored_version_id(seen.version_id.as_deref()))
            .fetch_optional(&mut *tx)
            .await
            .map_err(storage)?
            .as_ref()
            .map(decode_version)
            .transpose()?;
            match row {
                None => None,
                Some((v, order)) => {
                    let latest = current.is_none()
                        && newest_noncurrent_tx(&mut *tx, bucket, key)
                            .await?
                            .map(|n| n.1)
                            == Some(order);
                    Some((v.object, v.delete_marker, latest))
                }
            }
        }
    };
    let entries: i64 = if seen.only_entry {
        sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM objects WHERE bucket = $1 AND key = $2) + (SELECT COUNT(*) FROM object_versions WHERE bucket = $1 AND key = $2)",
        )
        .bind(bucket)
        .bind(key.as_bytes())
        .fetch_one(&mut *tx)
        .await
        .map_err(storage)?
    } else {
        0
    };
    Ok(seen.matches(
        found.as_ref().map(|(o, m, l)| (o, *m, *l)),
        u64::try_from(entries).unwrap_or(0),
    ))
}

/// The current row of a key with its order, locked for update.
async fn current_tx(
    c: &mut PgConnection,
    bucket: &str,
    key: &str,
) -> Result<Option<(ObjectRecord, i64)>> {
    sqlx::query(sql!(
        "SELECT {OBJECT_READ_COLS} FROM objects WHERE bucket = $1 AND key = $2 FOR UPDATE"
    ))
    .bind(bucket)
    .bind(key.as_bytes())
    .fetch_optional(c)
    .await
    .map_err(storage)?
    .map(|r| Ok((decode_object(&r)?, r.try_get(10).map_err(corrupt)?)))
    .transpose()
}

/// The newest noncurrent entry of a key (a version or a delete marker), with its order.
async fn newest_noncurrent_tx(
    c: &mut PgConnection,
    bucket: &str,
    key: &str,
) -> Result<Option<(ObjectVersion, i64)>> {
    sqlx::query(sql!(
        "SELECT {VERSION_COLS} FROM object_versions WHERE bucket = $1 AND key = $2
         ORDER BY version_order LIMIT 1"
    ))
    .bind(bucket)
    .bind(key.as_bytes())
    .fetch_optional(c)
    .await
    .map_err(storage)?
    .as_ref()
    .map(decode_version)
    .transpose()
}

/// Removes the noncurrent entry of a key with id `version_id`, returning it.
async fn remove_noncurrent_tx(
    c: &mut PgConnection,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> Result<Option<ObjectVersion>> {
    sqlx::query(sql!(
        "DELETE FROM object_versions WHERE bucket = $1 AND key = $2 AND version_id = $3
         RETURNING {VERSION_COLS}"
    ))
    .bind(bucket)
    .bind(key.as_bytes())
    .bind(stored_version_id(version_id))
    .fetch_optional(c)
    .await
    .map_err(storage)?
    .as_ref()
    .map(|r| decode_version(r).map(|v| v.0))
    .transpose()
}

/// Writes `o` as the current row of its key (replacing any), at `order`.
async fn write_current_tx(c: &mut PgConnection, o: &ObjectRecord, order: i64) -> Result<()> {
    sqlx::query(sql!(
        "INSERT INTO objects ({OBJECT_READ_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (bucket, key) DO UPDATE SET size = EXCLUDED.size, etag = EXCLUDED.etag,
             last_modified_ms = EXCLUDED.last_modified_ms, envelope = EXCLUDED.envelope,
             meta = EXCLUDED.meta, sites = EXCLUDED.sites, chunks = EXCLUDED.chunks,
             version_id = EXCLUDED.version_id, version_order = EXCLUDED.version_order"
    ))
    .bind(&o.bucket)
    .bind(o.key.as_bytes())
    .bind(i64_col(o.size)?)
    .bind(&o.etag)
    .bind(o.last_modified_ms)
    .bind(&o.envelope)
    .bind(&o.meta)
    .bind(to_json(&o.sites)?)
    .bind(to_json(&o.chunks)?)
    .bind(stored_version_id(o.version_id.as_deref()))
    .bind(order)
    .execute(c)
    .await
    .map_err(storage)?;
    Ok(())
}

/// Adds `o` at `order` to the noncurrent versions and delete markers of its key.
async fn write_noncurrent_tx(
    c: &mut PgConnection,
    o: &ObjectRecord,
    order: i64,
    marker: bool,
) -> Result<()> {
    sqlx::query(sql!(
        "INSERT INTO object_versions ({VERSION_COLS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ))
    .bind(&o.bucket)
    .bind(o.key.as_bytes())
    .bind(i64_col(o.size)?)
    .bind(&o.etag)
    .bind(o.last_modified_ms)
    .bind(&o.envelope)
    .bind(&o.meta)
    .bind(to_json(&o.sites)?)
    .bind(to_json(&o.chunks)?)
    .bind(stored_version_id(o.version_id.as_deref()))
    .bind(order)
    .bind(i64::from(marker))
    .execute(c)
    .await
    .map_err(storage)?;
    Ok(())
}

async fn delete_current_tx(c: &mut PgConnection, bucket: &str, key: &str) -> Result<()> {
    sqlx::query("DELETE FROM objects WHERE bucket = $1 AND key = $2")
        .bind(bucket)
        .bind(key.as_bytes())
        .execute(c)
        .await
        .map_err(storage)?;
    Ok(())
}

/// The order a new newest entry of a key gets: one less than the newest there is.
async fn next_order_tx(
    c: &mut PgConnection,
    bucket: &str,
    key: &str,
    current: Option<i64>,
) -> Result<i64> {
    if let Some(order) = current {
        return Ok(order - 1);
    }
    let newest: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(version_order) FROM object_versions WHERE bucket = $1 AND key = $2",
    )
    .bind(bucket)
    .bind(key.as_bytes())
    .fetch_one(c)
    .await
    .map_err(storage)?;
    Ok(newest.map_or(0, |n| n - 1))
}

/// What removing `removed` takes from a bucket's usage (a delete marker holds nothing).
fn uncounted(removed: &[ObjectVersion]) -> Result<(i64, i64)> {
    let mut out = (0i64, 0i64);
    for v in removed.iter().filter(|v| !v.delete_marker) {
        out.0 = out.0.saturating_add(i64_col(v.object.size)?);
        out.1 += 1;
    }
    Ok(out)
}

/// Writes `o` as the current version of its key in a versioned bucket (the key locked, the
/// condition checked against `current`); returns what it removed for good. Usage is the
/// caller's to count.
async fn put_version_tx(
    c: &mut PgConnection,
    o: &ObjectRecord,
    current: Option<(ObjectRecord, i64)>,
) -> Result<Option<ObjectVersion>> {
    let order = next_order_tx(&mut *c, &o.bucket, &o.key, current.as_ref().map(|x| x.1)).await?;
    let mut replaced = None;
    match current {
        Some((cur, _)) if cur.version_id.is_none() && o.version_id.is_none() => {
            replaced = Some(ObjectVersion {
                object: cur,
                delete_marker: false,
                is_latest: true,
            });
        }
        Some((cur, cur_order)) => write_noncurrent_tx(&mut *c, &cur, cur_order, false).await?,
        None => {}
    }
    if o.version_id.is_none() && replaced.is_none() {
        replaced = remove_noncurrent_tx(&mut *c, &o.bucket, &o.key, None).await?;
    }
    write_current_tx(&mut *c, o, order).await?;
    Ok(replaced)
}

/// Marks the entries of a page of a version listing that are the newest of their key (see
/// the embedded catalog's `mark_latest`).
fn mark_latest(page: &mut [ObjectVersion], started_within: Option<&str>) {
    let mut previous: Option<String> = started_within.map(str::to_owned);
    for v in page {
        v.is_latest = previous.as_deref() != Some(v.object.key.as_str());
        previous = Some(v.object.key.clone());
    }
}

/// Writes `o` under `condition` as [`Catalog::put_object`] says, in a bucket already locked
/// (`versioning` as the lock found it); returns what it replaced for good, and the usage
/// change (bytes, objects) for the caller to count with the rest of its change.
async fn put_any_tx(
    c: &mut PgConnection,
    o: &ObjectRecord,
    condition: &PutCondition,
    versioning: Versioning,
) -> Result<(Option<ObjectRecord>, (i64, i64))> {
    if versioning == Versioning::Unversioned {
        if o.version_id.is_some() {
            return Err(CatalogError::Conflict(
                "a version with an id written to a bucket that is not versioned",
            ));
        }
        let old = put_object_tx(&mut *c, o, condition).await?;
        let old_size = old.as_ref().map_or(Ok(0), |x| i64_col(x.size))?;
        let change = (i64_col(o.size)? - old_size, 1 - i64::from(old.is_some()));
        return Ok((old, change));
    }
    lock_key_versions(&mut *c, &o.bucket, &o.key).await?;
    let current = current_tx(&mut *c, &o.bucket, &o.key).await?;
    condition
        .check(current.as_ref().map(|x| &x.0))
        .map_err(CatalogError::PreconditionFailed)?;
    let replaced = put_version_tx(&mut *c, o, current).await?;
    let (bytes, objects) = uncounted(replaced.as_slice())?;
    let change = (i64_col(o.size)? - bytes, 1 - objects);
    Ok((
        replaced.filter(|r| !r.delete_marker).map(|r| r.object),
        change,
    ))
}

/// `NotFound` unless the upload exists; locks its row (for update when it is to be completed
/// or removed, shared when a part is added).
async fn lock_upload(c: &mut PgConnection, upload_id: &str, exclusive: bool) -> Result<()> {
    let sql = if exclusive {
        "SELECT 1 FROM uploads WHERE upload_id = $1 FOR UPDATE"
    } else {
        "SELECT 1 FROM uploads WHERE upload_id = $1 FOR SHARE"
    };
    let found = sqlx::query(sql)
        .bind(upload_id)
        .fetch_optional(c)
        .await
        .map_err(storage)?;
    match found {
        Some(_) => Ok(()),
        None => Err(CatalogError::NotFound {
            kind: "upload",
            name: upload_id.to_owned(),
        }),
    }
}

/// Removes an upload and its parts; the caller counts what its bucket no longer holds
/// ([`parts_bytes`]) together with the rest of its change, in one update of one usage row
/// (two updates of two rows could wait on each other's rows in a circle).
async fn remove_upload_tx(c: &mut PgConnection, upload_id: &str) -> Result<Vec<Part>> {
    let rows = sqlx::query(sql!(
        "DELETE FROM parts WHERE upload_id = $1 RETURNING {PART_COLS}"
    ))
    .bind(upload_id)
    .fetch_all(&mut *c)
    .await
    .map_err(storage)?;
    let mut parts = rows.iter().map(decode_part).collect::<Result<Vec<_>>>()?;
    parts.sort_by_key(|p| p.part_number);
    sqlx::query("DELETE FROM uploads WHERE upload_id = $1")
        .bind(upload_id)
        .execute(&mut *c)
        .await
        .map_err(storage)?;
    Ok(parts)
}

/// The bytes `parts` held.
fn parts_bytes(parts: &[Part]) -> Result<i64> {
    parts.iter().try_fold(
        0i64,
        |sum, p| Ok(sum.saturating_add(i64_col(p.chunk.size)?)),
    )
}

/// Objects and parts that name `site` (site lists are JSON arrays of ids).
async fn site_refs(c: &mut PgConnection, site: &str) -> Result<u64> {
    let needle = to_json(&site)?;
    let n: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM objects WHERE strpos(sites, $1) > 0)
              + (SELECT COUNT(*) FROM object_versions WHERE strpos(sites, $1) > 0)
              + (SELECT COUNT(*) FROM parts WHERE strpos(sites, $1) > 0)",
    )
    .bind(needle)
    .fetch_one(c)
    .await
    .map_err(storage)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Whether the database was refused by [`migrate`], and why.
fn refuse(e: obhut_migrate::MigrateError) -> CatalogError {
    CatalogError::Storage(e.to_string())
}

/// Brings the database (its first schema on the search path) to the current layout, one
/// migration per transaction together with its version number, under an advisory lock so that
/// gateways starting together apply each migration once. A database newer than this release
/// knows is refused, untouched. Returns (version found, version now).
async fn migrate(pool: &PgPool) -> Result<(u32, u32)> {
    let supported = u32::try_from(MIGRATIONS.len()).map_err(storage)?;
    let mut first = None;
    loop {
        let mut tx = pool.begin().await.map_err(storage)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        let has_version_table: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM information_schema.tables
                 WHERE table_schema = current_schema() AND table_name = 'obhut_schema')",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(storage)?;
        let found: i64 = if has_version_table {
            sqlx::query_scalar("SELECT version FROM obhut_schema WHERE id = 1")
                .fetch_optional(&mut *tx)
                .await
                .map_err(storage)?
                .unwrap_or(0)
        } else {
            let foreign: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM information_schema.tables
                     WHERE table_schema = current_schema())",
            )
            .fetch_one(&mut *tx)
            .await
            .map_err(storage)?;
            if foreign {
                return Err(refuse(obhut_migrate::MigrateError::Foreign {
                    database: DATABASE,
                    table: "obhut_schema",
                }));
            }
            sqlx::raw_sql(
                "CREATE TABLE obhut_schema (
                     id INTEGER PRIMARY KEY CHECK (id = 1),
                     version BIGINT NOT NULL
                 );
                 INSERT INTO obhut_schema (id, version) VALUES (1, 0);",
            )
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
            0
        };
        let found = u32::try_from(found).map_err(|_| {
            refuse(obhut_migrate::MigrateError::Invalid {
                database: DATABASE,
                found,
            })
        })?;
        let from = *first.get_or_insert(found);
        if found > supported {
            return Err(refuse(obhut_migrate::MigrateError::TooNew {
                database: DATABASE,
                found,
                supported,
            }));
        }
        if found == supported {
            tx.commit().await.map_err(storage)?;
            return Ok((from, found));
        }
        let next = found + 1;
        let failed = |e: sqlx::Error| {
            CatalogError::Storage(format!(
                "{DATABASE}: migration to schema version {next} failed: {e}"
            ))
        };
        sqlx::raw_sql(MIGRATIONS[found as usize])
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        sqlx::query("UPDATE obhut_schema SET version = $1 WHERE id = 1")
            .bind(i64::from(next))
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
    }
}

impl PgCatalog {
    /// The schema version this release writes.
    pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

    /// Connects (without running anything) and brings the database to
    /// [`Self::SCHEMA_VERSION`]; a database written by a newer release is refused, untouched.
    pub async fn connect(options: PgConnectOptions) -> Result<Self> {
        Self::connect_with_cache_ttl(options, DEFAULT_CACHE_TTL).await
    }

    /// As [`Self::connect`], with cached records answered from for at most `ttl` (zero: every
    /// lookup reads the database).
    pub async fn connect_with_cache_ttl(options: PgConnectOptions, ttl: Duration) -> Result<Self> {
        let catalog = Self::open(options, ttl).await?;
        migrate(&catalog.pool).await?;
        Ok(catalog)
    }

    /// A pool on the database, its layout not checked (for tools that inspect it).
    pub async fn connect_unmigrated(options: PgConnectOptions) -> Result<Self> {
        Self::open(options, DEFAULT_CACHE_TTL).await
    }

    async fn open(options: PgConnectOptions, ttl: Duration) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(30))
            // sqlx pings every connection it hands out, a round trip as long as a point
            // lookup; a connection in steady use is pinged only after it sat idle a while
            // (one that died unnoticed meanwhile fails one statement, and is dropped when it
            // goes back to the pool, where sqlx tests every connection).
            .test_before_acquire(false)
            .before_acquire(|c, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_AFTER_IDLE {
                        sqlx::Connection::ping(c).await?;
                    }
                    Ok(true)
                })
            })
            // A connection given back while its statement still waits (its caller gave up at
            // the catalog's deadline: a commit waiting for a standby cut off, a lock held by
            // one) is closed instead of being kept until that wait ends, so that waits given
            // up on never use up the pool and reads go on.
            .after_release(|c, _| {
                Box::pin(async move {
                    Ok(
                        tokio::time::timeout(RELEASE_CHECK, sqlx::Connection::ping(c))
                            .await
                            .is_ok_and(|pinged| pinged.is_ok()),
                    )
                })
            })
            .connect_with(options.clone())
            .await
            .map_err(|e| CatalogError::Storage(format!("cannot connect to {DATABASE}: {e}")))?;
        // Notifications reach every session of the database; the catalog's tables are those
        // of the first schema on the search path, so that schema names the channel.
        let schema: Option<String> = sqlx::query_scalar("SELECT current_schema()::text")
            .fetch_one(&pool)
            .await
            .map_err(storage)?;
        let digest = sha2::Sha256::digest(schema.unwrap_or_default().as_bytes());
        let channel: Arc<str> = format!("obhut_catalog_{}", hex8(&digest)).into();
        let meta = Arc::new(MetaCache::expiring(ttl));
        let me: Arc<str> = BlobId::random().to_string().into();
        let pid = Arc::new(AtomicI32::new(0));
        let heard = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(listen(
            options,
            Arc::clone(&channel),
            Arc::clone(&me),
            Arc::downgrade(&meta),
            Arc::clone(&pid),
            Arc::clone(&heard),
        ));
        let prepared: String = sqlx::query_scalar("SHOW max_prepared_transactions")
            .fetch_one(&pool)
            .await
            .map_err(storage)?;
        let two_phase = prepared.trim().parse::<u32>().is_ok_and(|n| n > 0);
        if !two_phase {
            tracing::warn!(
                "the catalog's PostgreSQL allows no prepared transactions (max_prepared_transactions = 0): a write or delete whose commit outlives its deadline (a standby cut off) may still take effect once the standby is back"
            );
        }
        let abandoned_after_ms = Arc::new(AtomicU64::new(
            u64::try_from(ABANDONED_AFTER.as_millis()).unwrap_or(u64::MAX),
        ));
        let resolver = two_phase.then(|| {
            tokio::spawn(resolve_abandoned_loop(
                pool.clone(),
                Arc::clone(&channel),
                Arc::clone(&abandoned_after_ms),
            ))
        });
        Ok(Self {
            pool,
            meta,
            channel,
            me,
            listener: Arc::new(Listener {
                task,
                resolver,
                pid,
                heard,
            }),
            two_phase,
            abandoned_after_ms,
        })
    }

    /// How old a prepared transaction must be before the background resolver rolls it back
    /// (see [`ABANDONED_AFTER`]); set it above the deadline its callers wait.
    pub fn set_abandoned_after(&self, after: Duration) {
        self.abandoned_after_ms.store(
            u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Whether commits that make an object visible are two-phase here.
    #[must_use]
    pub fn two_phase(&self) -> bool {
        self.two_phase
    }

    /// Commits `tx`, which makes an object visible or removes one (a delete, a delete marker,
    /// a version's removal): a change a client is answered about. Where the server allows prepared
    /// transactions, in two phases: `PREPARE TRANSACTION` (which waits for the synchronous
    /// standby, as a commit does), then `COMMIT PREPARED`. A caller that gives up while the
    /// first phase waits (its deadline, see [`crate::Deadline`]) leaves a prepared
    /// transaction, which shows nothing and which [`resolve_abandoned`] rolls back once it is
    /// older than [`ABANDONED_AFTER`], or once older than one deadline if this gateway's
    /// listening connection is gone (a gateway killed between the phases): a write or delete
    /// answered with an error during a cut never takes effect when the standby is back. Only a caller cut off between the two phases
    /// (the standby lost in the moment between them) leaves a commit that takes effect later.
    async fn commit_visible(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
    ) -> Result<()> {
        if !self.two_phase {
            return tx.commit().await.map_err(storage);
        }
        // The listening connection's backend names this gateway to the resolvers of all
        // gateways (see `resolve_abandoned`); without one, only age counts.
        let gid = match self.listener.pid.load(Ordering::Relaxed) {
            0 => format!("{}:{}", self.channel, BlobId::random()),
            pid => format!("{}:{pid}:{}", self.channel, BlobId::random()),
        };
        // One round trip: the transaction is prepared (and ends), and an empty one begins
        // for the `COMMIT` that `tx` sends when it is committed, so that no statement runs
        // outside the transaction sqlx believes open.
        sqlx::raw_sql(AssertSqlSafe(format!("PREPARE TRANSACTION '{gid}'; BEGIN")))
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        sqlx::raw_sql(AssertSqlSafe(format!("COMMIT PREPARED '{gid}'")))
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(())
    }

    /// Rolls back this catalog's prepared transactions older than `older_than` (by the
    /// database's clock), and those older than `gone_after` whose gateway's listening
    /// connection is gone: writes whose gateway gave up on them. Returns how many.
    pub async fn resolve_abandoned(
        &self,
        older_than: Duration,
        gone_after: Duration,
    ) -> Result<u64> {
        resolve_abandoned(&self.pool, &self.channel, older_than, gone_after).await
    }

    /// The backend process id of the connection that listens for other gateways' writes, if
    /// it is listening now (for tests and for the database's administrators).
    #[must_use]
    pub fn listener_pid(&self) -> Option<i32> {
        Some(self.listener.pid.load(Ordering::Relaxed)).filter(|&p| p != 0)
    }

    /// How many notifications of other catalogs' writes this one has heard.
    #[must_use]
    pub fn notifications_heard(&self) -> u64 {
        self.listener.heard.load(Ordering::Relaxed)
    }

    /// Whether cached records are being answered from (off while not listening).
    #[must_use]
    pub fn cache_enabled(&self) -> bool {
        self.meta.is_enabled()
    }

    /// Brings the database to the current layout; returns (version found, version now).
    pub async fn migrate(&self) -> Result<(u32, u32)> {
        migrate(&self.pool).await
    }

    /// The schema version the database has (0 if it has none yet).
    pub async fn schema_version(&self) -> Result<i64> {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM information_schema.tables
                 WHERE table_schema = current_schema() AND table_name = 'obhut_schema')",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(storage)?;
        if !exists {
            return Ok(0);
        }
        Ok(
            sqlx::query_scalar("SELECT version FROM obhut_schema WHERE id = 1")
                .fetch_optional(&self.pool)
                .await
                .map_err(storage)?
                .unwrap_or(0),
        )
    }

    /// The pool, for the copy from an embedded catalog and for tests.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection of the pool, and stops listening.
    pub async fn close(&self) {
        self.listener.task.abort();
        self.meta.disable();
        self.pool.close().await;
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool.begin().await.map_err(storage)
    }

    /// Commits a transaction that changed a cached kind of record (and called [`notify_tx`]),
    /// then empties this catalog's own cache before the caller hears of the write: other
    /// catalogs empty theirs when the notification reaches them. Emptied even if the commit
    /// failed, since it may have happened all the same.
    async fn commit_meta(&self, tx: sqlx::Transaction<'static, sqlx::Postgres>) -> Result<()> {
        let committed = tx.commit().await.map_err(storage);
        self.meta.invalidate();
        committed
    }

    /// A transaction for a write of a cached kind of record, the notification already in it.
    async fn begin_meta(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        let mut tx = self.begin().await?;
        notify_tx(&mut tx, &self.channel, &self.me).await?;
        Ok(tx)
    }
}

#[async_trait]
impl Catalog for PgCatalog {
    async fn create_tenant(&self, tenant: &Tenant) -> Result<()> {
        let mut tx = self.begin_meta().await?;
        let n = sqlx::query(
            "INSERT INTO tenants (name, jurisdictions, min_sites, created_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(&tenant.name)
        .bind(to_json(&tenant.jurisdictions)?)
        .bind(i64::from(tenant.min_sites))
        .bind(tenant.created_ms)
        .execute(&mut *tx)
        .await
        .map_err(storage)?
        .rows_affected();
        if n == 0 {
            return Err(CatalogError::AlreadyExists {
                kind: "tenant",
                name: tenant.name.clone(),
            });
        }
        self.commit_meta(tx).await
    }

    async fn get_tenant(&self, name: &str) -> Result<Option<Tenant>> {
        cached!(
            self,
            ("tenant", name.to_owned()),
            sqlx::query(
                "SELECT name, jurisdictions, min_sites, created_ms FROM tenants WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage)?
            .as_ref()
            .map(decode_tenant)
            .transpose()?
        )
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        sqlx::query("SELECT name, jurisdictions, min_sites, created_ms FROM tenants ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(storage)?
            .iter()
            .map(decode_tenant)
            .collect()
    }

    async fn legacy_access_keys(&self) -> Result<Vec<AccessKey>> {
        // S3 secrets kept in clear never come to PostgreSQL (the copy refuses a catalog that
        // still has them).
        Ok(Vec::new())
    }

    async fn erase_legacy_access_keys(&self) -> Result<()> {
        Ok(())
    }

    async fn compact(&self) -> Result<()> {
        // Rewrites the tables that held what is to be forgotten, without their dead rows.
        // (Copies in the server's write-ahead log and base backups are the operator's to
        // expire; docs/catalog.md.)
        sqlx::raw_sql("VACUUM FULL objects, uploads, parts")
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(())
    }

    async fn put_site(&self, site: &SiteRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO sites (id, record) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
        )
        .bind(&site.id)
        .bind(to_json(site)?)
        .execute(&self.pool)
        .await
        .map_err(storage)?;
        Ok(())
    }

    async fn delete_site(&self, id: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        // No object or part may come to name the site while it is counted and removed.
        sqlx::query("LOCK TABLE objects, parts IN SHARE MODE")
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        let refs = site_refs(&mut tx, id).await?;
        if refs > 0 {
            return Err(CatalogError::InUse(format!(
                "site {id} still holds {refs} replica(s); drain it first"
            )));
        }
        sqlx::query("DELETE FROM sites WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        tx.commit().await.map_err(storage)
    }

    async fn site_references(&self, site: &str) -> Result<u64> {
        let mut c = self.pool.acquire().await.map_err(storage)?;
        site_refs(&mut c, site).await
    }

    async fn get_rule(&self, scope: &PolicyScope) -> Result<Option<ResidencyRule>> {
        let scope = scope.encode();
        cached!(self, ("residency rule", scope.clone()), {
            let rule: Option<String> =
                sqlx::query_scalar("SELECT rule FROM residency WHERE scope = $1")
                    .bind(&scope)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(storage)?;
            rule.map(|r| from_json::<ResidencyRule>(&r)).transpose()?
        })
    }

    async fn put_rule(&self, scope: &PolicyScope, rule: &ResidencyRule) -> Result<()> {
        let mut tx = self.begin_meta().await?;
        sqlx::query(
            "INSERT INTO residency (scope, rule) VALUES ($1, $2)
             ON CONFLICT (scope) DO UPDATE SET rule = EXCLUDED.rule",
        )
        .bind(scope.encode())
        .bind(to_json(rule)?)
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        self.commit_meta(tx).await
    }

    async fn update_tenant_residency(
        &self,
        name: &str,
        jurisdictions: &[String],
        min_sites: u32,
    ) -> Result<()> {
        let mut tx = self.begin_meta().await?;
        let n =
            sqlx::query("UPDATE tenants SET jurisdictions = $2, min_sites = $3 WHERE name = $1")
                .bind(name)
                .bind(to_json(&jurisdictions)?)
                .bind(i64::from(min_sites))
                .execute(&mut *tx)
                .await
                .map_err(storage)?
                .rows_affected();
        if n == 0 {
            return Err(CatalogError::NotFound {
                kind: "tenant",
                name: name.to_owned(),
            });
        }
        self.commit_meta(tx).await
    }

    async fn set_object_sites(
        &self,
        bucket: &str,
        key: &str,
        chunks: &[Chunk],
        sites: &[String],
    ) -> Result<bool> {
        let (chunks, sites) = (to_json(&chunks)?, to_json(&sites)?);
        let mut n = 0;
        for sql in [
            "UPDATE objects SET sites = $4 WHERE bucket = $1 AND key = $2 AND chunks = $3",
            "UPDATE object_versions SET sites = $4 WHERE bucket = $1 AND key = $2 AND chunks = $3",
        ] {
            n += sqlx::query(sql)
                .bind(bucket)
                .bind(key.as_bytes())
                .bind(&chunks)
                .bind(&sites)
                .execute(&self.pool)
                .await
                .map_err(storage)?
                .rows_affected();
        }
        Ok(n >= 1)
    }

    async fn set_part_sites(
        &self,
        upload_id: &str,
        part_number: u32,
        chunk: &Chunk,
        sites: &[String],
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE parts SET sites = $4 WHERE upload_id = $1 AND part_number = $2 AND chunk = $3",
        )
        .bind(upload_id)
        .bind(i64::from(part_number))
        .bind(to_json(chunk)?)
        .bind(to_json(&sites)?)
        .execute(&self.pool)
        .await
        .map_err(storage)?
        .rows_affected();
        Ok(n == 1)
    }

    async fn list_sites(&self) -> Result<Vec<SiteRecord>> {
        let rows: Vec<String> = sqlx::query_scalar("SELECT record FROM sites ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(storage)?;
        rows.iter().map(|r| from_json(r)).collect()
    }

    async fn create_bucket(&self, bucket: &Bucket, key: &BucketKey) -> Result<()> {
        let mut tx = self.begin_meta().await?;
        loop {
            let n = sqlx::query(
                "INSERT INTO buckets (name, tenant, created_ms, versioning) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(&bucket.name)
            .bind(&bucket.tenant)
            .bind(bucket.created_ms)
            .bind(bucket.versioning.code())
            .execute(&mut *tx)
            .await
            .map_err(storage)?
            .rows_affected();
            if n == 1 {
                break;
            }
            let owner: Option<String> =
                sqlx::query_scalar("SELECT tenant FROM buckets WHERE name = $1")
                    .bind(&bucket.name)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(storage)?;
            if let Some(owner) = owner {
                return Err(CatalogError::BucketExists {
                    bucket: bucket.name.clone(),
                    owner,
                });
            }
            // Deleted since the insert found it: try again.
        }
        sqlx::query(sql!(
            "INSERT INTO bucket_keys ({BUCKET_KEY_COLS}) VALUES ($1, $2, $3, $4, $5)"
        ))
        .bind(&bucket.name)
        .bind(i64::from(key.version))
        .bind(&key.wrapped)
        .bind(&key.kcv)
        .bind(key.created_ms)
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        self.commit_meta(tx).await
    }

    async fn get_bucket_key(&self, bucket: &str, version: u32) -> Result<Option<BucketKey>> {
        cached!(
            self,
            ("bucket key", format!("{bucket}/{version}")),
            sqlx::query(sql!(
                "SELECT {BUCKET_KEY_COLS} FROM bucket_keys WHERE bucket = $1 AND version = $2"
            ))
            .bind(bucket)
            .bind(i64::from(version))
            .fetch_optional(&self.pool)
            .await
            .map_err(storage)?
            .as_ref()
            .map(decode_bucket_key)
            .transpose()?
        )
    }

    async fn current_bucket_key(&self, bucket: &str) -> Result<Option<BucketKey>> {
        cached!(
            self,
            ("current bucket key", bucket.to_owned()),
            sqlx::query(sql!(
                "SELECT {BUCKET_KEY_COLS} FROM bucket_keys WHERE bucket = $1 ORDER BY version DESC LIMIT 1"
            ))
            .bind(bucket)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage)?
            .as_ref()
            .map(decode_bucket_key)
            .transpose()?
        )
    }

    async fn add_bucket_key(&self, bucket: &Bucket, key: &BucketKey) -> Result<()> {
        crate::same_bucket(bucket, &key.bucket)?;
        let mut tx = self.begin_meta().await?;
        lock_incarnation(&mut tx, bucket).await?;
        let n = sqlx::query(sql!(
            "INSERT INTO bucket_keys ({BUCKET_KEY_COLS}) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (bucket, version) DO NOTHING"
        ))
        .bind(&key.bucket)
        .bind(i64::from(key.version))
        .bind(&key.wrapped)
        .bind(&key.kcv)
        .bind(key.created_ms)
        .execute(&mut *tx)
        .await
        .map_err(storage)?
        .rows_affected();
        if n == 0 {
            return Err(CatalogError::AlreadyExists {
                kind: "bucket key version",
                name: format!("{}/{}", key.bucket, key.version),
            });
        }
        self.commit_meta(tx).await
    }

    async fn get_bucket(&self, name: &str) -> Result<Option<Bucket>> {
        cached!(
            self,
            ("bucket", name.to_owned()),
            sqlx::query("SELECT name, tenant, created_ms, versioning FROM buckets WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(storage)?
                .as_ref()
                .map(decode_bucket)
                .transpose()?
        )
    }

    async fn list_buckets(&self, tenant: &str) -> Result<Vec<Bucket>> {
        sqlx::query("SELECT name, tenant, created_ms, versioning FROM buckets WHERE tenant = $1 ORDER BY name")
            .bind(tenant)
            .fetch_all(&self.pool)
            .await
            .map_err(storage)?
            .iter()
            .map(decode_bucket)
            .collect()
    }

    async fn list_buckets_page(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Bucket>> {
        // `name > ''` is every name: one range of the index on (tenant, name) either way.
        sqlx::query(
            "SELECT name, tenant, created_ms, versioning FROM buckets
             WHERE tenant = $1 AND name > $2 ORDER BY name LIMIT $3",
        )
        .bind(tenant)
        .bind(after.unwrap_or(""))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?
        .iter()
        .map(decode_bucket)
        .collect()
    }

    async fn tenant_objects_by_sites(&self, tenant: &str) -> Result<Vec<(String, u64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT sites, SUM(n)::BIGINT FROM (
                 SELECT o.sites AS sites, COUNT(*) AS n FROM buckets b
                   JOIN objects o ON o.bucket = b.name
                  WHERE b.tenant = $1 GROUP BY o.sites
                 UNION ALL
                 SELECT v.sites, COUNT(*) FROM buckets b
                   JOIN object_versions v ON v.bucket = b.name
                  WHERE b.tenant = $1 AND v.delete_marker = 0 GROUP BY v.sites) AS t
             GROUP BY sites ORDER BY sites",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        Ok(rows
            .into_iter()
            .map(|(s, n)| (s, u64::try_from(n).unwrap_or(0)))
            .collect())
    }

    async fn delete_bucket(&self, bucket: &Bucket) -> Result<Vec<Part>> {
        let name = bucket.name.as_str();
        let mut tx = self.begin_meta().await?;
        // Locked for update: writes into the bucket (which share-lock it) finish first, and
        // their objects are seen below; later ones find no bucket. Only the incarnation the
        // caller was authorised against is deleted.
        let exists = sqlx::query(
            "SELECT 1 FROM buckets WHERE name = $1 AND tenant = $2 AND created_ms = $3
             FOR UPDATE",
        )
        .bind(name)
        .bind(&bucket.tenant)
        .bind(bucket.created_ms)
        .fetch_optional(&mut *tx)
        .await
        .map_err(storage)?
        .is_some();
        if !exists {
            return Err(CatalogError::NotFound {
                kind: "bucket",
                name: name.to_owned(),
            });
        }
        let has_objects = sqlx::query(
            "SELECT 1 FROM objects WHERE bucket = $1
             UNION ALL SELECT 1 FROM object_versions WHERE bucket = $1 LIMIT 1",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(storage)?
        .is_some();
        if has_objects {
            return Err(CatalogError::BucketNotEmpty(name.to_owned()));
        }
        let upload_ids: Vec<String> = sqlx::query_scalar(
            "SELECT upload_id FROM uploads WHERE bucket = $1 ORDER BY upload_id",
        )
        .bind(name)
        .fetch_all(&mut *tx)
        .await
        .map_err(storage)?;
        let mut parts = Vec::new();
        for id in upload_ids {
            parts.extend(remove_upload_tx(&mut tx, &id).await?);
        }
        sqlx::query("DELETE FROM bucket_keys WHERE bucket = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        sqlx::query("DELETE FROM residency WHERE scope = $1")
            .bind(PolicyScope::Bucket(name.to_owned()).encode())
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        for sql in [
            "DELETE FROM bucket_usage WHERE bucket = $1",
            "DELETE FROM reservations WHERE bucket = $1",
            "DELETE FROM bucket_configs WHERE bucket = $1",
            "DELETE FROM completed_uploads WHERE bucket = $1",
            "DELETE FROM object_locks WHERE bucket = $1",
        ] {
            sqlx::query(sql)
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(storage)?;
        }
        sqlx::query("DELETE FROM quotas WHERE scope = $1")
            .bind(PolicyScope::Bucket(name.to_owned()).encode())
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        sqlx::query("DELETE FROM buckets WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        self.commit_meta(tx).await?;
        Ok(parts)
    }

    async fn put_object_settling(
        &self,
        bucket: &Bucket,
        object: &ObjectRecord,
        condition: PutCondition,
        reservation: Option<&str>,
    ) -> Result<Option<ObjectRecord>> {
        crate::same_bucket(bucket, &object.bucket)?;
        let mut tx = self.begin().await?;
        let versioning = lock_incarnation(&mut tx, bucket).await?;
        let (old, change) = put_any_tx(&mut tx, object, &condition, versioning).await?;
        add_usage_tx(&mut tx, &object.bucket, change.0, change.1).await?;
        settle_and_recheck_tx(&mut tx, bucket, reservation, change).await?;
        self.commit_visible(tx).await?;
        Ok(old)
    }

    async fn get_quota(&self, scope: &PolicyScope) -> Result<Option<Quota>> {
        // Asked by every write: kept in the cache, which a change of any quota empties.
        cached!(self, ("quota", scope.encode()), {
            let mut c = self.pool.acquire().await.map_err(storage)?;
            get_quota_tx(&mut c, scope).await?
        })
    }

    async fn set_quota(&self, target: QuotaTarget<'_>, quota: Option<&Quota>) -> Result<()> {
        let scope = &target.scope();
        let mut tx = self.begin_meta().await?;
        if let QuotaTarget::Bucket(b) = target {
            lock_incarnation(&mut tx, b).await?;
        }
        match quota.filter(|q| !q.is_unlimited()) {
            Some(q) => sqlx::query(
                "INSERT INTO quotas (scope, quota) VALUES ($1, $2)
                 ON CONFLICT (scope) DO UPDATE SET quota = EXCLUDED.quota",
            )
            .bind(scope.encode())
            .bind(to_json(q)?),
            None => sqlx::query("DELETE FROM quotas WHERE scope = $1").bind(scope.encode()),
        }
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        self.commit_meta(tx).await
    }

    async fn usage(&self, scope: &PolicyScope, now_ms: i64) -> Result<Usage> {
        let mut c = self.pool.acquire().await.map_err(storage)?;
        usage_tx(&mut c, scope, now_ms).await
    }

    async fn quota_statuses(&self, now_ms: i64) -> Result<Vec<QuotaStatus>> {
        let mut c = self.pool.acquire().await.map_err(storage)?;
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT scope, quota FROM quotas ORDER BY scope")
                .fetch_all(&mut *c)
                .await
                .map_err(storage)?;
        let mut out = Vec::with_capacity(rows.len());
        for (scope, quota) in rows {
            let scope = PolicyScope::decode(&scope)
                .ok_or_else(|| corrupt(format!("quota scope {scope:?}")))?;
            let usage = usage_tx(&mut c, &scope, now_ms).await?;
            out.push(QuotaStatus {
                scope,
                quota: from_json(&quota)?,
                usage,
            });
        }
        Ok(out)
    }

    async fn reserve(&self, reservation: &Reservation, now_ms: i64) -> Result<bool> {
        let r = reservation;
        // Most writes go where no quota is set: answered from the cache (a quota set by
        // another gateway is heard of as any cached record is), no transaction.
        let tenant_quota = self
            .get_quota(&PolicyScope::Tenant(r.tenant.clone()))
            .await?;
        let bucket_quota = self
            .get_quota(&PolicyScope::Bucket(r.bucket.clone()))
            .await?;
        if tenant_quota.is_none() && bucket_quota.is_none() {
            return Ok(false);
        }
        let mut tx = self.begin().await?;
        // The checks of one tenant's writes are taken one at a time (a lock held until this
        // short transaction ends); the writes themselves and their commits are not: those add
        // to usage rows of their own and drop their reservations without this lock.
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(QUOTA_LOCK)
            .bind(&r.tenant)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        // Read after the lock: each statement sees every commit made before it.
        let mut quotas = Vec::new();
        for scope in [
            PolicyScope::Tenant(r.tenant.clone()),
            PolicyScope::Bucket(r.bucket.clone()),
        ] {
            if let Some(q) = get_quota_tx(&mut tx, &scope).await? {
                quotas.push((scope, q));
            }
        }
        lock_bucket_shared(&mut tx, &r.bucket).await?;
        let credit = match &r.key {
            Some(k) => get_object_tx(&mut tx, &r.bucket, k, false)
                .await?
                .map_or((0, 0), |o| (o.size, 1)),
            None => (0, 0),
        };
        for (scope, quota) in &quotas {
            let usage = usage_tx(&mut tx, scope, now_ms).await?;
            crate::types::check_quota(scope, quota, &usage, (r.bytes, r.objects), credit)?;
        }
        sqlx::query(
            "INSERT INTO reservations (id, bucket, bytes, objects, expires_ms)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&r.id)
        .bind(&r.bucket)
        .bind(i64_col(r.bytes)?)
        .bind(i64_col(r.objects)?)
        .bind(r.expires_ms)
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        Ok(true)
    }

    async fn release(&self, id: &str) -> Result<()> {
        let mut c = self.pool.acquire().await.map_err(storage)?;
        release_tx(&mut c, id).await
    }

    async fn recount_usage(&self, bucket: &str) -> Result<Usage> {
        let mut tx = self.begin().await?;
        lock_bucket_shared(&mut tx, bucket).await?;
        let (bytes, objects, used_bytes, used_objects): (i64, i64, i64, i64) =
            sqlx::query_as(RECOUNT_BUCKET)
                .bind(bucket)
                .fetch_one(&mut *tx)
                .await
                .map_err(storage)?;
        add_usage_tx(&mut tx, bucket, bytes - used_bytes, objects - used_objects).await?;
        tx.commit().await.map_err(storage)?;
        Ok(Usage {
            bytes: u64_col(bytes)?,
            objects: u64_col(objects)?,
            reserved_bytes: 0,
            reserved_objects: 0,
        })
    }

    async fn reclaim_reservations(&self, now_ms: i64) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM reservations WHERE expires_ms <= $1")
                .bind(now_ms)
                .execute(&self.pool)
                .await
                .map_err(storage)?
                .rows_affected(),
        )
    }

    async fn get_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectRecord>> {
        let mut c = self.pool.acquire().await.map_err(storage)?;
        get_object_tx(&mut c, bucket, key, false).await
    }

    async fn replace_object_envelope(
        &self,
        bucket: &str,
        key: &str,
        expected: &[u8],
        envelope: &[u8],
    ) -> Result<bool> {
        let mut n = 0;
        for sql in [
            "UPDATE objects SET envelope = $4 WHERE bucket = $1 AND key = $2 AND envelope = $3",
            "UPDATE object_versions SET envelope = $4 WHERE bucket = $1 AND key = $2 AND envelope = $3",
        ] {
            n += sqlx::query(sql)
                .bind(bucket)
                .bind(key.as_bytes())
                .bind(expected)
                .bind(envelope)
                .execute(&self.pool)
                .await
                .map_err(storage)?
                .rows_affected();
        }
        Ok(n >= 1)
    }

    async fn rebind_object(
        &self,
        bucket: &str,
        key: &str,
        expected: &[u8],
        envelope: &[u8],
        etag: &str,
    ) -> Result<bool> {
        let mut n = 0;
        for sql in [
            "UPDATE objects SET envelope = $4, etag = $5
             WHERE bucket = $1 AND key = $2 AND envelope = $3",
            "UPDATE object_versions SET envelope = $4, etag = $5
             WHERE bucket = $1 AND key = $2 AND envelope = $3",
        ] {
            n += sqlx::query(sql)
                .bind(bucket)
                .bind(key.as_bytes())
                .bind(expected)
                .bind(envelope)
                .bind(etag)
                .execute(&self.pool)
                .await
                .map_err(storage)?
                .rows_affected();
        }
        Ok(n >= 1)
    }

    async fn delete_object(&self, b: &Bucket, key: &str) -> Result<Option<ObjectRecord>> {
        let bucket = b.name.as_str();
        let mut tx = self.begin().await?;
        lock_incarnation(&mut tx, b).await?;
        let old = sqlx::query(sql!(
            "DELETE FROM objects WHERE bucket = $1 AND key = $2 RETURNING {OBJECT_READ_COLS}"
        ))
        .bind(bucket)
        .bind(key.as_bytes())
        .fetch_optional(&mut *tx)
        .await
        .map_err(storage)?
        .as_ref()
        .map(decode_object)
        .transpose()?;
        count_object_tx(&mut tx, bucket, old.as_ref(), None).await?;
        self.commit_visible(tx).await?;
        Ok(old)
    }

    async fn list_objects(
        &self,
        b: &Bucket,
        prefix: &str,
        from: ListFrom<'_>,
        limit: usize,
    ) -> Result<Vec<ObjectRecord>> {
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
        // Start at the larger of `prefix` (inclusive) and `from`.
        let (lower, inclusive) = match from {
            Some((bound, incl)) if bound >= prefix => (bound, incl),
            _ => (prefix.clone(), true),
        };
        let upper = prefix_end(&prefix);
        let sql = format!(
            "SELECT {OBJECT_READ_COLS} FROM objects
             WHERE bucket = $1 AND key {} $2 AND ($3::bytea IS NULL OR key < $3)
                 AND {}
             ORDER BY key LIMIT $4",
            if inclusive { ">=" } else { ">" },
            incarnation_guard!("5", "6"),
        );
        let page = sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(&b.name)
            .bind(lower)
            .bind(upper)
            .bind(limit_col(limit))
            .bind(&b.tenant)
            .bind(b.created_ms)
            .fetch_all(&self.pool)
            .await
            .map_err(storage)?
            .iter()
            .map(decode_object)
            .collect::<Result<Vec<_>>>()?;
        if page.is_empty() {
            require_incarnation(&self.pool, b).await?;
        }
        Ok(page)
    }

    async fn set_bucket_versioning(&self, record: &Bucket, state: Versioning) -> Result<()> {
        let bucket = record.name.as_str();
        let mut tx = self.begin_meta().await?;
        // Only the incarnation the caller was authorised against (see `lock_incarnation`).
        let now: Option<i64> = sqlx::query_scalar(
            "SELECT versioning FROM buckets WHERE name = $1 AND tenant = $2 AND created_ms = $3
             FOR UPDATE",
        )
        .bind(bucket)
        .bind(&record.tenant)
        .bind(record.created_ms)
        .fetch_optional(&mut *tx)
        .await
        .map_err(storage)?;
        let Some(now) = now else {
            return Err(CatalogError::NotFound {
                kind: "bucket",
                name: bucket.to_owned(),
            });
        };
        if state == Versioning::Unversioned && Versioning::from_code(now)? != state {
            return Err(CatalogError::Conflict(
                "a versioned bucket cannot become unversioned again",
            ));
        }
        sqlx::query("UPDATE buckets SET versioning = $2 WHERE name = $1")
            .bind(bucket)
            .bind(state.code())
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        self.commit_meta(tx).await
    }

    async fn get_object_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<ObjectVersion>> {
        // One statement, one snapshot: the current row if it is that version, else the
        // noncurrent entry, with whether it is the newest of its key.
        let row = sqlx::query(sql!(
            "SELECT {OBJECT_READ_COLS}, 0::BIGINT, true FROM objects
             WHERE bucket = $1 AND key = $2 AND version_id = $3
             UNION ALL
             SELECT {VERSION_COLS},
                 NOT EXISTS (SELECT 1 FROM objects o WHERE o.bucket = v.bucket AND o.key = v.key)
                 AND NOT EXISTS (SELECT 1 FROM object_versions w WHERE w.bucket = v.bucket
                     AND w.key = v.key AND w.version_order < v.version_order)
             FROM object_versions v WHERE bucket = $1 AND key = $2 AND version_id = $3
             LIMIT 1"
        ))
        .bind(bucket)
        .bind(key.as_bytes())
        .bind(stored_version_id(version_id))
        .fetch_optional(&self.pool)
        .await
        .map_err(storage)?;
        row.map(|r| {
            let (mut v, _) = decode_version(&r)?;
            v.is_latest = r.try_get(12).map_err(corrupt)?;
            Ok(v)
        })
        .transpose()
    }

    async fn latest_version(&self, bucket: &str, key: &str) -> Result<Option<ObjectVersion>> {
        let row = sqlx::query(sql!(
            "SELECT * FROM (
                 SELECT {OBJECT_READ_COLS}, 0::BIGINT AS delete_marker FROM objects
                 WHERE bucket = $1 AND key = $2
                 UNION ALL
                 (SELECT {VERSION_COLS} FROM object_versions WHERE bucket = $1 AND key = $2
                  ORDER BY version_order LIMIT 1)
             ) AS entries ORDER BY version_order LIMIT 1"
        ))
        .bind(bucket)
        .bind(key.as_bytes())
        .fetch_optional(&self.pool)
        .await
        .map_err(storage)?;
        row.map(|r| {
            let (mut v, _) = decode_version(&r)?;
            v.is_latest = true;
            Ok(v)
        })
        .transpose()
    }

    async fn put_delete_marker(
        &self,
        bucket: &Bucket,
        marker: &ObjectRecord,
    ) -> Result<Vec<ObjectRecord>> {
        crate::same_bucket(bucket, &marker.bucket)?;
        let mut tx = self.begin().await?;
        let removed = put_delete_marker_tx(&mut tx, bucket, marker).await?;
        self.commit_visible(tx).await?;
        Ok(removed)
    }

    async fn put_delete_marker_over(
        &self,
        bucket: &Bucket,
        marker: &ObjectRecord,
        seen: &SeenVersion,
    ) -> Result<Option<Vec<ObjectRecord>>> {
        crate::same_bucket(bucket, &marker.bucket)?;
        if !seen.latest || seen.delete_marker {
            return Ok(None);
        }
        let mut tx = self.begin().await?;
        lock_incarnation(&mut tx, bucket).await?;
        lock_key_versions(&mut tx, &marker.bucket, &marker.key).await?;
        if !still_seen_tx(&mut tx, &marker.bucket, &marker.key, seen).await? {
            return Ok(None);
        }
        let removed = put_delete_marker_tx(&mut tx, bucket, marker).await?;
        self.commit_visible(tx).await?;
        Ok(Some(removed))
    }

    async fn delete_object_version(
        &self,
        b: &Bucket,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<ObjectVersion>> {
        let mut tx = self.begin().await?;
        let removed = delete_version_tx(&mut tx, b, key, version_id).await?;
        self.commit_visible(tx).await?;
        Ok(removed)
    }

    async fn delete_seen_version(
        &self,
        b: &Bucket,
        key: &str,
        seen: &SeenVersion,
    ) -> Result<Option<ObjectVersion>> {
        let mut tx = self.begin().await?;
        lock_incarnation(&mut tx, b).await?;
        lock_key_versions(&mut tx, &b.name, key).await?;
        if !still_seen_tx(&mut tx, &b.name, key, seen).await? {
            return Ok(None);
        }
        let removed = delete_version_tx(&mut tx, b, key, seen.version_id.as_deref()).await?;
        self.commit_visible(tx).await?;
        Ok(removed)
    }

    async fn list_object_versions(
        &self,
        b: &Bucket,
        prefix: &str,
        from: VersionsFrom<'_>,
        limit: usize,
    ) -> Result<Vec<ObjectVersion>> {
        let bucket = b.name.as_str();
        let prefix = prefix.as_bytes().to_vec();
        // The position after which the page starts: (key, order), exclusive.
        let (after, within): ((Vec<u8>, i64), Option<&str>) = match from {
            VersionsFrom::Start => ((prefix.clone(), i64::MIN), None),
            VersionsFrom::AfterKey(k) => ((k.as_bytes().to_vec(), i64::MAX), None),
            VersionsFrom::PastPrefix(p) => match prefix_end(p.as_bytes()) {
                Some(end) => ((end, i64::MIN), None),
                None => return Ok(Vec::new()),
            },
            VersionsFrom::AfterVersion(k, v) => {
                let order: Option<i64> = sqlx::query_scalar(
                    "SELECT version_order FROM objects WHERE bucket = $1 AND key = $2 AND version_id = $3
                     UNION ALL
                     SELECT version_order FROM object_versions WHERE bucket = $1 AND key = $2 AND version_id = $3
                     LIMIT 1",
                )
                .bind(bucket)
                .bind(k.as_bytes())
                .bind(stored_version_id(v))
                .fetch_optional(&self.pool)
                .await
                .map_err(storage)?;
                let order = order.ok_or_else(|| CatalogError::NotFound {
                    kind: "version",
                    name: format!("{k}?versionId={}", v.unwrap_or("null")),
                })?;
                ((k.as_bytes().to_vec(), order), Some(k))
            }
        };
        let after = if after.0 < prefix {
            (prefix.clone(), i64::MIN)
        } else {
            after
        };
        // Two index range scans, each cut at the limit in its own order, merged (a Merge
        // Append) and cut again: a page reads at most twice its length of rows, wherever it
        // starts. (Ordering the union as a whole made PostgreSQL sort every row after the
        // page's start, since `objects`' key does not order it by `version_order`.) The
        // prefix's end is a separate query text so that the bound is an index condition in
        // the prepared statement's generic plan too.
        let (upper, bound) = match prefix_end(&prefix) {
            Some(end) => (Some(end), "AND key < $7"),
            None => (None, ""),
        };
        let rows = sqlx::query(sql!(
            "SELECT * FROM (
                 (SELECT {OBJECT_READ_COLS}, 0::BIGINT AS delete_marker FROM objects
                  WHERE bucket = $1 AND key >= $2 AND (key, version_order) > ($2, $3) {bound}
                  ORDER BY key LIMIT $4)
                 UNION ALL
                 (SELECT {VERSION_COLS} FROM object_versions
                  WHERE bucket = $1 AND (key, version_order) > ($2, $3) {bound}
                  ORDER BY key, version_order LIMIT $4)
             ) AS entries WHERE {GUARD} ORDER BY key, version_order LIMIT $4",
            GUARD = incarnation_guard!("5", "6")
        ))
        .bind(bucket)
        .bind(after.0)
        .bind(after.1)
        .bind(limit_col(limit))
        .bind(&b.tenant)
        .bind(b.created_ms);
        let rows = match upper {
            Some(end) => rows.bind(end),
            None => rows,
        }
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?;
        if rows.is_empty() {
            require_incarnation(&self.pool, b).await?;
        }
        let mut page = rows
            .iter()
            .map(|r| decode_version(r).map(|v| v.0))
            .collect::<Result<Vec<_>>>()?;
        mark_latest(&mut page, within);
        Ok(page)
    }

    async fn create_upload(&self, bucket: &Bucket, upload: &Upload) -> Result<()> {
        crate::same_bucket(bucket, &upload.bucket)?;
        let mut tx = self.begin().await?;
        lock_incarnation(&mut tx, bucket).await?;
        sqlx::query(sql!(
            "INSERT INTO uploads ({UPLOAD_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(&upload.upload_id)
        .bind(&upload.bucket)
        .bind(upload.key.as_bytes())
        .bind(upload.initiated_ms)
        .bind(&upload.envelope)
        .bind(&upload.meta)
        .bind(to_json(&upload.sites)?)
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        tx.commit().await.map_err(storage)
    }

    async fn get_upload(&self, upload_id: &str) -> Result<Option<Upload>> {
        sqlx::query(sql!(
            "SELECT {UPLOAD_COLS} FROM uploads WHERE upload_id = $1"
        ))
        .bind(upload_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(storage)?
        .as_ref()
        .map(decode_upload)
        .transpose()
    }

    async fn replace_upload_envelope(
        &self,
        upload_id: &str,
        expected: &[u8],
        envelope: &[u8],
    ) -> Result<bool> {
        let n =
            sqlx::query("UPDATE uploads SET envelope = $3 WHERE upload_id = $1 AND envelope = $2")
                .bind(upload_id)
                .bind(expected)
                .bind(envelope)
                .execute(&self.pool)
                .await
                .map_err(storage)?
                .rows_affected();
        Ok(n == 1)
    }

    async fn reseal_part(
        &self,
        upload_id: &str,
        part_number: u32,
        chunk: &Chunk,
        etag: &str,
        checksums: &[u8],
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE parts SET etag = $4, checksums = $5
             WHERE upload_id = $1 AND part_number = $2 AND chunk = $3",
        )
        .bind(upload_id)
        .bind(i64::from(part_number))
        .bind(to_json(chunk)?)
        .bind(etag)
        .bind(checksums)
        .execute(&self.pool)
        .await
        .map_err(storage)?
        .rows_affected();
        Ok(n == 1)
    }

    async fn put_part_settling(
        &self,
        b: &Bucket,
        part: &Part,
        reservation: Option<&str>,
    ) -> Result<Option<Part>> {
        let mut tx = self.begin().await?;
        // Locks in the order every writer takes them: bucket, then upload.
        let bucket: Option<String> =
            sqlx::query_scalar("SELECT bucket FROM uploads WHERE upload_id = $1")
                .bind(&part.upload_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(storage)?;
        let Some(bucket) = bucket else {
            return Err(CatalogError::NotFound {
                kind: "upload",
                name: part.upload_id.clone(),
            });
        };
        crate::same_bucket(b, &bucket)?;
        lock_incarnation(&mut tx, b).await?;
        lock_upload(&mut tx, &part.upload_id, false).await?;
        let (chunk, sites) = (to_json(&part.chunk)?, to_json(&part.sites)?);
        let old = loop {
            let old = sqlx::query(sql!(
                "SELECT {PART_COLS} FROM parts WHERE upload_id = $1 AND part_number = $2 FOR UPDATE"
            ))
            .bind(&part.upload_id)
            .bind(i64::from(part.part_number))
            .fetch_optional(&mut *tx)
            .await
            .map_err(storage)?
            .as_ref()
            .map(decode_part)
            .transpose()?;
            let sql = if old.is_some() {
                "UPDATE parts SET chunk = $3, etag = $4, checksums = $5, sites = $6,
                     last_modified_ms = $7 WHERE upload_id = $1 AND part_number = $2"
                    .to_owned()
            } else {
                format!(
                    "INSERT INTO parts ({PART_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (upload_id, part_number) DO NOTHING"
                )
            };
            let n = sqlx::query(AssertSqlSafe(sql.as_str()))
                .bind(&part.upload_id)
                .bind(i64::from(part.part_number))
                .bind(&chunk)
                .bind(&part.etag)
                .bind(&part.checksums)
                .bind(&sites)
                .bind(part.last_modified_ms)
                .execute(&mut *tx)
                .await
                .map_err(storage)?
                .rows_affected();
            if n == 1 {
                break old;
            }
        };
        let old_size = old.as_ref().map_or(Ok(0), |o| i64_col(o.chunk.size))?;
        let grown = i64_col(part.chunk.size)? - old_size;
        add_usage_tx(&mut tx, &bucket, grown, 0).await?;
        settle_and_recheck_tx(&mut tx, b, reservation, (grown, 0)).await?;
        tx.commit().await.map_err(storage)?;
        Ok(old)
    }

    async fn list_parts(&self, upload_id: &str, after: u32, limit: usize) -> Result<Vec<Part>> {
        sqlx::query(sql!(
            "SELECT {PART_COLS} FROM parts WHERE upload_id = $1 AND part_number > $2
             ORDER BY part_number LIMIT $3"
        ))
        .bind(upload_id)
        .bind(i64::from(after))
        .bind(limit_col(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?
        .iter()
        .map(decode_part)
        .collect()
    }

    async fn list_uploads(
        &self,
        b: &Bucket,
        prefix: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<Upload>> {
        let prefix = prefix.as_bytes();
        let upper = prefix_end(prefix);
        let (after_key, after_id) = after.unwrap_or_default();
        let page = sqlx::query(sql!(
            "SELECT {UPLOAD_COLS} FROM uploads
             WHERE bucket = $1 AND key >= $2 AND ($3::bytea IS NULL OR key < $3)
               AND (key > $4 OR (key = $4 AND upload_id > $5)) AND {GUARD}
             ORDER BY key, upload_id LIMIT $6",
            GUARD = incarnation_guard!("7", "8")
        ))
        .bind(&b.name)
        .bind(prefix)
        .bind(upper)
        .bind(after_key.as_bytes())
        .bind(after_id)
        .bind(limit_col(limit))
        .bind(&b.tenant)
        .bind(b.created_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(storage)?
        .iter()
        .map(decode_upload)
        .collect::<Result<Vec<_>>>()?;
        if page.is_empty() {
            require_incarnation(&self.pool, b).await?;
        }
        Ok(page)
    }

    async fn complete_upload_settling(
        &self,
        bucket: &Bucket,
        upload_id: &str,
        object: &ObjectRecord,
        condition: PutCondition,
        reservation: Option<&str>,
    ) -> Result<(Option<ObjectRecord>, Vec<Part>)> {
        let o = object;
        crate::same_bucket(bucket, &o.bucket)?;
        let mut tx = self.begin().await?;
        // Locks in the order every writer takes them (bucket, then upload, then object), so
        // that a completion and a deletion of the bucket never wait on each other in a
        // circle; a missing upload is named before a missing bucket, as in SQLite.
        let upload_bucket: Option<String> =
            sqlx::query_scalar("SELECT bucket FROM uploads WHERE upload_id = $1")
                .bind(upload_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(storage)?;
        let Some(upload_bucket) = upload_bucket else {
            return Err(CatalogError::NotFound {
                kind: "upload",
                name: upload_id.to_owned(),
            });
        };
        crate::same_bucket(bucket, &upload_bucket)?;
        let versioning = lock_incarnation(&mut tx, bucket).await?;
        lock_upload(&mut tx, upload_id, true).await?;
        let parts = remove_upload_tx(&mut tx, upload_id).await?;
        // Every chunk must still be a part of the upload: a part re-uploaded since the caller
        // listed them has replaced (and discarded) the blob it names.
        let current: std::collections::HashSet<BlobId> =
            parts.iter().map(|p| p.chunk.blob).collect();
        if o.chunks.iter().any(|c| !current.contains(&c.blob)) {
            return Err(CatalogError::Conflict(
                "a part was replaced while the upload was being completed",
            ));
        }
        // ... and still on the sites the object will name (a drain may have moved it).
        let on_object_sites = |p: &Part| o.sites.iter().all(|s| p.sites.contains(s));
        if parts
            .iter()
            .any(|p| o.chunks.iter().any(|c| c.blob == p.chunk.blob) && !on_object_sites(p))
        {
            return Err(CatalogError::Busy(
                "a part moved to other sites while the upload was being completed",
            ));
        }
        let (old, change) = put_any_tx(&mut tx, o, &condition, versioning).await?;
        // Parts no longer held, the object and what it replaced: one update.
        let change = (change.0 - parts_bytes(&parts)?, change.1);
        add_usage_tx(&mut tx, &o.bucket, change.0, change.1).await?;
        settle_and_recheck_tx(&mut tx, bucket, reservation, change).await?;
        sqlx::query("DELETE FROM completed_uploads WHERE completed_ms < $1")
            .bind(o.last_modified_ms - crate::COMPLETED_UPLOAD_RETENTION_MS)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        sqlx::query(
            "INSERT INTO completed_uploads
             (upload_id, bucket, created_ms, key, version_id, etag, completed_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (upload_id) DO UPDATE SET bucket = EXCLUDED.bucket,
               created_ms = EXCLUDED.created_ms, key = EXCLUDED.key,
               version_id = EXCLUDED.version_id, etag = EXCLUDED.etag,
               completed_ms = EXCLUDED.completed_ms",
        )
        .bind(upload_id)
        .bind(&bucket.name)
        .bind(bucket.created_ms)
        .bind(o.key.as_bytes())
        .bind(o.version_id.as_deref().unwrap_or(""))
        .bind(&o.etag)
        .bind(o.last_modified_ms)
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        let used: std::collections::HashSet<BlobId> = o.chunks.iter().map(|c| c.blob).collect();
        let unused = parts
            .into_iter()
            .filter(|p| !used.contains(&p.chunk.blob))
            .collect();
        self.commit_visible(tx).await?;
        Ok((old, unused))
    }

    async fn get_completed_upload(&self, upload_id: &str) -> Result<Option<CompletedUpload>> {
        let since = wall_ms() - crate::COMPLETED_UPLOAD_RETENTION_MS;
        let row: Option<(String, String, i64, Vec<u8>, String, String, i64)> = sqlx::query_as(
            "SELECT upload_id, bucket, created_ms, key, version_id, etag, completed_ms
             FROM completed_uploads WHERE upload_id = $1 AND completed_ms >= $2",
        )
        .bind(upload_id)
        .bind(since)
        .fetch_optional(&self.pool)
        .await
        .map_err(storage)?;
        row.map(
            |(upload_id, bucket, bucket_created_ms, key, version, etag, completed_ms)| {
                Ok(CompletedUpload {
                    upload_id,
                    bucket,
                    bucket_created_ms,
                    key: String::from_utf8(key)
                        .map_err(|e| CatalogError::Corrupt(e.to_string()))?,
                    version_id: (!version.is_empty()).then_some(version),
                    etag,
                    completed_ms,
                })
            },
        )
        .transpose()
    }

    async fn replace_object_meta(
        &self,
        bucket: &Bucket,
        key: &str,
        version_id: Option<&str>,
        expected: &[u8],
        meta: &[u8],
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        lock_incarnation(&mut tx, bucket).await?;
        let mut n = 0;
        for sql in [
            "UPDATE objects SET meta = $5
             WHERE bucket = $1 AND key = $2 AND version_id = $3 AND meta = $4",
            "UPDATE object_versions SET meta = $5
             WHERE bucket = $1 AND key = $2 AND version_id = $3 AND meta = $4
             AND delete_marker = 0",
        ] {
            n += sqlx::query(sql)
                .bind(&bucket.name)
                .bind(key.as_bytes())
                .bind(version_id.unwrap_or(""))
                .bind(expected)
                .bind(meta)
                .execute(&mut *tx)
                .await
                .map_err(storage)?
                .rows_affected();
        }
        tx.commit().await.map_err(storage)?;
        Ok(n >= 1)
    }

    async fn get_bucket_config(&self, bucket: &Bucket, kind: &str) -> Result<Option<Vec<u8>>> {
        sqlx::query_scalar(
            "SELECT config FROM bucket_configs WHERE bucket = $1 AND created_ms = $2 AND kind = $3",
        )
        .bind(&bucket.name)
        .bind(bucket.created_ms)
        .bind(kind)
        .fetch_optional(&self.pool)
        .await
        .map_err(storage)
    }

    async fn put_bucket_config(
        &self,
        bucket: &Bucket,
        kind: &str,
        config: Option<&[u8]>,
        now_ms: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        lock_incarnation(&mut tx, bucket).await?;
        match config {
            Some(config) => sqlx::query(
                "INSERT INTO bucket_configs (bucket, created_ms, kind, config, updated_ms)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (bucket, created_ms, kind)
                 DO UPDATE SET config = EXCLUDED.config, updated_ms = EXCLUDED.updated_ms",
            )
            .bind(&bucket.name)
            .bind(bucket.created_ms)
            .bind(kind)
            .bind(config)
            .bind(now_ms),
            None => sqlx::query(
                "DELETE FROM bucket_configs WHERE bucket = $1 AND created_ms = $2 AND kind = $3",
            )
            .bind(&bucket.name)
            .bind(bucket.created_ms)
            .bind(kind),
        }
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        Ok(())
    }

    async fn get_object_lock(
        &self,
        bucket: &Bucket,
        key: &str,
        version_id: &str,
    ) -> Result<Option<Vec<u8>>> {
        sqlx::query_scalar(
            "SELECT record FROM object_locks
             WHERE bucket = $1 AND created_ms = $2 AND key = $3 AND version_id = $4",
        )
        .bind(&bucket.name)
        .bind(bucket.created_ms)
        .bind(key.as_bytes())
        .bind(version_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(storage)
    }

    async fn put_object_lock(
        &self,
        bucket: &Bucket,
        key: &str,
        version_id: &str,
        record: &[u8],
        now_ms: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        lock_incarnation(&mut tx, bucket).await?;
        sqlx::query(
            "INSERT INTO object_locks (bucket, created_ms, key, version_id, record, updated_ms)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (bucket, created_ms, key, version_id)
             DO UPDATE SET record = EXCLUDED.record, updated_ms = EXCLUDED.updated_ms",
        )
        .bind(&bucket.name)
        .bind(bucket.created_ms)
        .bind(key.as_bytes())
        .bind(version_id)
        .bind(record)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        Ok(())
    }

    async fn abort_upload(&self, upload_id: &str) -> Result<Vec<Part>> {
        let mut tx = self.begin().await?;
        lock_upload(&mut tx, upload_id, true).await?;
        let bucket: String = sqlx::query_scalar("SELECT bucket FROM uploads WHERE upload_id = $1")
            .bind(upload_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(storage)?;
        let parts = remove_upload_tx(&mut tx, upload_id).await?;
        add_usage_tx(&mut tx, &bucket, -parts_bytes(&parts)?, 0).await?;
        tx.commit().await.map_err(storage)?;
        Ok(parts)
    }

    async fn console_key(&self, name: &str) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT sealed FROM console_keys WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage)
    }

    async fn init_console_key(&self, name: &str, sealed: &str, now_ms: i64) -> Result<String> {
        sqlx::query(
            "INSERT INTO console_keys (name, sealed, created_ms) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(sealed)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(storage)?;
        // The row is never changed once there, so a read after the insert sees the winner.
        sqlx::query_scalar("SELECT sealed FROM console_keys WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(storage)
    }

    async fn start_console_session(
        &self,
        session: &ConsoleSession,
        bounds: SessionBounds,
        cutoff: SessionCutoff,
    ) -> Result<bool> {
        let max = i64::try_from(bounds.max_sessions.max(1)).unwrap_or(i64::MAX);
        let keep_own = i64::try_from(bounds.max_per_owner.max(1) - 1).unwrap_or(i64::MAX);
        let mut tx = self.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(CONSOLE_SESSION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        sqlx::query("DELETE FROM console_sessions WHERE used_ms <= $1 OR started_ms <= $2")
            .bind(cutoff.used_before_ms)
            .bind(cutoff.started_before_ms)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        let own: i64 = match &session.owner {
            Some(owner) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM console_sessions WHERE owner = $1")
                    .bind(owner)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(storage)?
            }
            None => 0,
        };
        let all: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM console_sessions")
            .fetch_one(&mut *tx)
            .await
            .map_err(storage)?;
        let excess = own.saturating_sub(keep_own).max(0);
        if all - excess >= max {
            // The expired ones still go.
            tx.commit().await.map_err(storage)?;
            return Ok(false);
        }
        if excess > 0 {
            sqlx::query(
                "DELETE FROM console_sessions WHERE id_hash IN (
                     SELECT id_hash FROM console_sessions WHERE owner = $1
                     ORDER BY used_ms DESC, id_hash OFFSET $2)",
            )
            .bind(&session.owner)
            .bind(keep_own)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        }
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, sealed, started_ms, used_ms, owner, key_id)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&session.id_hash)
        .bind(&session.sealed)
        .bind(session.started_ms)
        .bind(session.used_ms)
        .bind(&session.owner)
        .bind(&session.key_id)
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        Ok(true)
    }

    async fn get_console_session(&self, id_hash: &str) -> Result<Option<ConsoleSession>> {
        let row = sqlx::query(
            "SELECT id_hash, sealed, started_ms, used_ms, owner, key_id FROM console_sessions
             WHERE id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(storage)?;
        row.map(|r| {
            Ok(ConsoleSession {
                id_hash: r.try_get(0).map_err(storage)?,
                sealed: r.try_get(1).map_err(storage)?,
                started_ms: r.try_get(2).map_err(storage)?,
                used_ms: r.try_get(3).map_err(storage)?,
                owner: r.try_get(4).map_err(storage)?,
                key_id: r.try_get(5).map_err(storage)?,
            })
        })
        .transpose()
    }

    async fn touch_console_session(&self, id_hash: &str, used_ms: i64) -> Result<()> {
        sqlx::query("UPDATE console_sessions SET used_ms = $2 WHERE id_hash = $1 AND used_ms < $2")
            .bind(id_hash)
            .bind(used_ms)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(())
    }

    async fn end_console_session(&self, id_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(())
    }

    async fn upgrade_done(&self, name: &str) -> Result<Option<i64>> {
        sqlx::query_scalar("SELECT done_ms FROM upgrades WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage)
    }

    async fn set_upgrade_done(&self, name: &str, done_ms: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO upgrades (name, done_ms) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET done_ms = EXCLUDED.done_ms",
        )
        .bind(name)
        .bind(done_ms)
        .execute(&self.pool)
        .await
        .map_err(storage)?;
        Ok(())
    }

    async fn take_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<Option<Lease>> {
        let mut tx = self.begin().await?;
        // The row exists from the first call on, so that every taker locks the same row.
        sqlx::query(
            "INSERT INTO leases (name, holder, epoch, expires_ms) VALUES ($1, '', 0, 0)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        let current = lease_tx(&mut tx, name, "FOR UPDATE").await?;
        // Read once the row is locked: a fenced batch that held it up has ended.
        let now_ms = db_now_ms(&mut tx).await?;
        let Some(taken) = Lease::taken(&current, holder, ttl_ms, now_ms) else {
            return Ok(None);
        };
        sqlx::query("UPDATE leases SET holder = $2, epoch = $3, expires_ms = $4 WHERE name = $1")
            .bind(name)
            .bind(&taken.holder)
            .bind(i64::try_from(taken.epoch).map_err(storage)?)
            .bind(taken.expires_ms)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        Ok(Some(taken))
    }

    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        sqlx::query(
            "UPDATE leases SET expires_ms = 0 WHERE name = $1 AND holder = $2 AND epoch = $3",
        )
        .bind(&lease.name)
        .bind(&lease.holder)
        .bind(i64::try_from(lease.epoch).map_err(storage)?)
        .execute(&self.pool)
        .await
        .map_err(storage)?;
        Ok(())
    }

    async fn check_lease(&self, lease: &Lease) -> Result<()> {
        let mut tx = self.begin().await?;
        fence_tx(&mut tx, lease).await?;
        tx.commit().await.map_err(storage)
    }

    async fn reclaim_reservations_fenced(&self, lease: &Lease, now_ms: i64) -> Result<u64> {
        let mut tx = self.begin().await?;
        fence_tx(&mut tx, lease).await?;
        let n = sqlx::query("DELETE FROM reservations WHERE expires_ms <= $1")
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(storage)?
            .rows_affected();
        tx.commit().await.map_err(storage)?;
        Ok(n)
    }

    async fn beat_gateway(&self, beat: &GatewayBeat) -> Result<i64> {
        if !crate::types::gateway_beat_fits(beat) {
            return Err(CatalogError::PreconditionFailed(
                "a gateway's id, release or status is too long",
            ));
        }
        sqlx::query_scalar(
            "INSERT INTO gateways (id, version, started_ms, seen_ms, background, status)
             VALUES ($1, $2, $3, floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint,
                     $4, $5)
             ON CONFLICT (id) DO UPDATE SET version = excluded.version,
                 started_ms = excluded.started_ms, seen_ms = excluded.seen_ms,
                 background = excluded.background, status = excluded.status
             RETURNING seen_ms",
        )
        .bind(&beat.id)
        .bind(&beat.version)
        .bind(beat.started_ms)
        .bind(beat.background)
        .bind(&beat.status)
        .fetch_one(&self.pool)
        .await
        .map_err(storage)
    }

    async fn list_gateways(&self, limit: usize) -> Result<GatewayList> {
        let limit = i64::try_from(limit.min(MAX_GATEWAY_ROWS)).unwrap_or(0);
        let mut tx = self.begin().await?;
        let rows: Vec<(String, String, i64, i64, bool, String)> = sqlx::query_as(sql!(
            "SELECT id, version, started_ms, seen_ms, background, status FROM gateways
             WHERE octet_length(id) <= {MAX_GATEWAY_ID}
                 AND octet_length(version) <= {MAX_GATEWAY_VERSION}
                 AND octet_length(status) <= {MAX_GATEWAY_STATUS}
             ORDER BY seen_ms DESC, id LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(storage)?;
        let now_ms = db_now_ms(&mut tx).await?;
        tx.commit().await.map_err(storage)?;
        Ok(GatewayList {
            now_ms,
            gateways: rows
                .into_iter()
                .map(
                    |(id, version, started_ms, seen_ms, background, status)| GatewayRow {
                        beat: GatewayBeat {
                            id,
                            version,
                            started_ms,
                            background,
                            status,
                        },
                        seen_ms,
                    },
                )
                .collect(),
        })
    }

    async fn forget_gateways_fenced(&self, lease: &Lease, unseen_ms: i64) -> Result<u64> {
        let mut tx = self.begin().await?;
        fence_tx(&mut tx, lease).await?;
        let now_ms = db_now_ms(&mut tx).await?;
        let n = sqlx::query("DELETE FROM gateways WHERE seen_ms < $1")
            .bind(now_ms.saturating_sub(unseen_ms))
            .execute(&mut *tx)
            .await
            .map_err(storage)?
            .rows_affected();
        tx.commit().await.map_err(storage)?;
        Ok(n)
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
        let blobs: Vec<String> = chunks.iter().map(|c| c.blob.to_string()).collect();
        let added = crate::sites_added(from, to);
        let (chunks, from, to) = (to_json(&chunks)?, to_json(&from)?, to_json(&to)?);
        let mut tx = self.begin().await?;
        if let Some(lease) = lease {
            fence_tx(&mut tx, lease).await?;
        }
        let mut n = 0;
        for sql in [
            "UPDATE objects SET sites = $5 WHERE bucket = $1 AND key = $2 AND chunks = $3 AND sites = $4",
            "UPDATE object_versions SET sites = $5 WHERE bucket = $1 AND key = $2 AND chunks = $3 AND sites = $4",
        ] {
            n += sqlx::query(sql)
                .bind(bucket)
                .bind(key.as_bytes())
                .bind(&chunks)
                .bind(&from)
                .bind(&to)
                .execute(&mut *tx)
                .await
                .map_err(storage)?
                .rows_affected();
        }
        // Dropped without a commit, the transaction rolls back.
        if n >= 1 && forget_named(&mut tx, &added, &blobs).await? {
            return Ok(false);
        }
        tx.commit().await.map_err(storage)?;
        Ok(n >= 1)
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
        let blobs = vec![chunk.blob.to_string()];
        let added = crate::sites_added(from, to);
        let mut tx = self.begin().await?;
        if let Some(lease) = lease {
            fence_tx(&mut tx, lease).await?;
        }
        let n = sqlx::query(
            "UPDATE parts SET sites = $5
             WHERE upload_id = $1 AND part_number = $2 AND chunk = $3 AND sites = $4",
        )
        .bind(upload_id)
        .bind(i64::from(part_number))
        .bind(to_json(chunk)?)
        .bind(to_json(&from)?)
        .bind(to_json(&to)?)
        .execute(&mut *tx)
        .await
        .map_err(storage)?
        .rows_affected();
        if n == 1 && forget_named(&mut tx, &added, &blobs).await? {
            return Ok(false);
        }
        tx.commit().await.map_err(storage)?;
        Ok(n == 1)
    }

    async fn claim_unreferenced(
        &self,
        lease: Option<&Lease>,
        site: &str,
        seen: &[(BlobId, i64)],
    ) -> Result<Vec<BlobId>> {
        let blobs: Vec<String> = seen.iter().map(|(b, _)| b.to_string()).collect();
        let since: Vec<i64> = seen.iter().map(|(_, t)| *t).collect();
        let mut tx = self.begin().await?;
        if let Some(lease) = lease {
            fence_tx(&mut tx, lease).await?;
        }
        // Row locks order it with a concurrent move: whichever comes second sees the other's
        // outcome (a forgotten record is not claimed; a claimed one refuses the move).
        let claimed: Vec<String> = sqlx::query_scalar(
            "UPDATE unreferenced_blobs u SET first_seen_ms = $4
             FROM unnest($2::text[], $3::bigint[]) AS s(blob, since)
             WHERE u.site = $1 AND u.blob = s.blob AND u.first_seen_ms = s.since
             RETURNING u.blob",
        )
        .bind(site)
        .bind(&blobs)
        .bind(&since)
        .bind(crate::UNREFERENCED_BEING_REMOVED)
        .fetch_all(&mut *tx)
        .await
        .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        claimed
            .iter()
            .map(|b| {
                BlobId::parse(b).ok_or_else(|| CatalogError::Corrupt(format!("blob id {b:?}")))
            })
            .collect()
    }

    async fn forget_unreferenced(&self, site: &str, blobs: &[BlobId]) -> Result<()> {
        let blobs: Vec<String> = blobs.iter().map(ToString::to_string).collect();
        sqlx::query("DELETE FROM unreferenced_blobs WHERE site = $1 AND blob = ANY($2)")
            .bind(site)
            .bind(&blobs)
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(())
    }

    async fn note_unreferenced(
        &self,
        site: &str,
        unreferenced: &[BlobId],
    ) -> Result<(i64, Vec<(BlobId, i64)>)> {
        let found: Vec<String> = unreferenced.iter().map(ToString::to_string).collect();
        let mut tx = self.begin().await?;
        let now: i64 = sqlx::query_scalar(sql!("SELECT {DB_NOW_MS}"))
            .fetch_one(&mut *tx)
            .await
            .map_err(storage)?;
        sqlx::query("DELETE FROM unreferenced_blobs WHERE site = $1 AND NOT (blob = ANY($2))")
            .bind(site)
            .bind(&found)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        sqlx::query(
            "INSERT INTO unreferenced_blobs (site, blob, first_seen_ms)
             SELECT $1, b, $3 FROM unnest($2::text[]) AS b
             ON CONFLICT (site, blob) DO NOTHING",
        )
        .bind(site)
        .bind(&found)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT blob, first_seen_ms FROM unreferenced_blobs WHERE site = $1 AND blob = ANY($2)",
        )
        .bind(site)
        .bind(&found)
        .fetch_all(&mut *tx)
        .await
        .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        let mut out = Vec::with_capacity(rows.len());
        for (blob, since) in rows {
            let id = BlobId::parse(&blob)
                .ok_or_else(|| CatalogError::Corrupt(format!("blob id {blob:?}")))?;
            out.push((id, since));
        }
        Ok((now, out))
    }

    async fn referenced_blobs(&self) -> Result<Vec<(String, BlobId)>> {
        use futures::TryStreamExt;
        let mut out = Vec::new();
        // Streamed: the rows are decoded as they arrive, never all held at once. One snapshot
        // for both statements: an upload completed between them would otherwise move its
        // parts' blobs from the second table read to the first, and they would be seen in
        // neither.
        let mut c = self.pool.begin().await.map_err(storage)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *c)
            .await
            .map_err(storage)?;
        let mut rows = sqlx::query(
            "SELECT sites, chunks FROM objects UNION ALL SELECT sites, chunks FROM object_versions",
        )
        .fetch(&mut *c);
        while let Some(r) = rows.try_next().await.map_err(storage)? {
            let sites: Vec<String> = from_json(&r.try_get::<String, _>(0).map_err(corrupt)?)?;
            let chunks: Vec<Chunk> = from_json(&r.try_get::<String, _>(1).map_err(corrupt)?)?;
            for site in &sites {
                out.extend(chunks.iter().map(|c| (site.clone(), c.blob)));
            }
        }
        drop(rows);
        let mut rows = sqlx::query("SELECT sites, chunk FROM parts").fetch(&mut *c);
        while let Some(r) = rows.try_next().await.map_err(storage)? {
            let sites: Vec<String> = from_json(&r.try_get::<String, _>(0).map_err(corrupt)?)?;
            let chunk: Chunk = from_json(&r.try_get::<String, _>(1).map_err(corrupt)?)?;
            out.extend(sites.into_iter().map(|s| (s, chunk.blob)));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::by_name;
    use crate::pg_test_server::{admin, fresh_schema, options, unique};

    mod conformance {
        crate::catalog_conformance_tests!(async {
            let options = crate::pg_test_server::fresh_schema().await;
            (
                crate::PgCatalog::connect(options).await.expect("connect"),
                (),
            )
        });
    }

    /// A write that waits (here for a row lock; in a cut-off datacenter for the synchronous
    /// standby) fails at its deadline, and what it was to write never shows, also after the
    /// wait is over.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_that_waits_fails_at_its_deadline_and_never_shows() {
        use sqlx::Connection;
        let options = fresh_schema().await;
        let cat = PgCatalog::connect(options.clone()).await.unwrap();
        with_bucket(&cat, "t", "dl").await;
        let limit = Duration::from_millis(500);
        let timed = crate::Deadline::new(cat, limit);
        let mut blocker = PgConnection::connect_with(&options).await.unwrap();
        sqlx::query("BEGIN").execute(&mut blocker).await.unwrap();
        sqlx::query("SELECT name FROM buckets WHERE name = 'dl' FOR UPDATE")
            .execute(&mut blocker)
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let o = object("dl", "waits", "e");
        let r = by_name::put_object(&timed, &o, PutCondition::None).await;
        let took = started.elapsed();
        assert!(
            matches!(r, Err(CatalogError::Unanswered { after_ms: 500 })),
            "{r:?}"
        );
        assert!(r.as_ref().unwrap_err().may_have_taken_effect());
        assert!(took >= limit && took < limit * 4, "answered after {took:?}");
        // Other calls are answered meanwhile (reads take no lock).
        assert!(timed.get_bucket("dl").await.unwrap().is_some());
        sqlx::query("COMMIT").execute(&mut blocker).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(timed.get_object("dl", "waits").await.unwrap(), None);
        by_name::put_object(&timed, &o, PutCondition::None)
            .await
            .expect("the catalog writes again once nothing holds it up");
        assert!(timed.get_object("dl", "waits").await.unwrap().is_some());
        timed.inner().close().await;
    }

    /// Commits that make an object visible are two-phase on a server that allows prepared
    /// transactions, and leave none behind; one a gateway gave up on (prepared, never
    /// committed) shows nothing, and is rolled back once older than the threshold, never
    /// before; another catalog's (another schema's) is left alone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_prepared_commit_shows_nothing_and_is_rolled_back() {
        use sqlx::Connection;
        let options = fresh_schema().await;
        let cat = PgCatalog::connect(options.clone()).await.unwrap();
        assert!(
            cat.two_phase(),
            "the test server allows prepared transactions"
        );
        with_bucket(&cat, "t", "tp").await;
        let o = object("tp", "k", "e");
        by_name::put_object(&cat, &o, PutCondition::None)
            .await
            .unwrap();
        assert_eq!(
            cat.get_object("tp", "k").await.unwrap().map(|r| r.etag),
            Some("e".to_owned())
        );
        let pool = cat.pool().clone();
        let ours = |gid: String| {
            let pool = pool.clone();
            async move {
                let n: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM pg_prepared_xacts WHERE gid = $1")
                        .bind(gid)
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                n
            }
        };
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_prepared_xacts WHERE starts_with(gid, $1)")
                .bind(format!("{}:", cat.channel))
                .fetch_one(cat.pool())
                .await
                .unwrap();
        assert_eq!(left, 0, "a completed commit leaves no prepared transaction");

        // A first phase whose caller gave up: prepared, never committed.
        let gid = format!("{}:{}", cat.channel, BlobId::random());
        let other = format!("obhut_catalog_00000000:{}", BlobId::random());
        for g in [&gid, &other] {
            let mut c = PgConnection::connect_with(&options).await.unwrap();
            sqlx::raw_sql(sql!(
                "BEGIN; INSERT INTO unreferenced_blobs VALUES ('s', '{g}', 1); PREPARE TRANSACTION '{g}'"
            ))
            .execute(&mut c)
            .await
            .unwrap();
            c.close().await.unwrap();
        }
        let (_, seen) = cat.note_unreferenced("elsewhere", &[]).await.unwrap();
        assert!(seen.is_empty());
        let visible: i64 = sqlx::query_scalar("SELECT count(*) FROM unreferenced_blobs")
            .fetch_one(cat.pool())
            .await
            .unwrap();
        assert_eq!(visible, 0, "a prepared transaction shows nothing");
        assert_eq!(
            cat.resolve_abandoned(Duration::from_secs(3600), Duration::from_secs(3600))
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            ours(gid.clone()).await,
            1,
            "younger than the threshold: left"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            cat.resolve_abandoned(Duration::from_millis(10), Duration::from_millis(10))
                .await
                .unwrap(),
            1
        );
        assert_eq!(ours(gid).await, 0);
        assert_eq!(
            ours(other.clone()).await,
            1,
            "another catalog's is not this one's to decide"
        );
        sqlx::raw_sql(sql!("ROLLBACK PREPARED '{other}'"))
            .execute(cat.pool())
            .await
            .unwrap();
        let visible: i64 = sqlx::query_scalar("SELECT count(*) FROM unreferenced_blobs")
            .fetch_one(cat.pool())
            .await
            .unwrap();
        assert_eq!(visible, 0, "rolled back, never shown");
        cat.close().await;
    }

    /// A commit left prepared by a gateway that died between the two phases (its gid names a
    /// listening backend that is gone) is rolled back once past the deadline its gateway
    /// waits, long before the age threshold; one whose gateway still listens is left to age. Meanwhile the usage row it
    /// holds locked delays no other write into the bucket.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_prepared_by_a_dead_gateway_is_rolled_back_past_its_deadline_and_blocks_nothing()
     {
        use sqlx::Connection;
        let options = fresh_schema().await;
        let cat = PgCatalog::connect(options.clone()).await.unwrap();
        with_bucket(&cat, "t", "dg").await;
        by_name::put_object(&cat, &object("dg", "first", "e"), PutCondition::None)
            .await
            .unwrap();
        let live_pid = {
            let mut waited = 0;
            loop {
                if let Some(pid) = cat.listener_pid() {
                    break pid;
                }
                assert!(waited < 200, "the catalog listens");
                waited += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };

        // The dead gateway's prepared commit holds every usage row of the bucket there is.
        let mut dying = PgConnection::connect_with(&options).await.unwrap();
        let dead_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut dying)
            .await
            .unwrap();
        let dead = format!("{}:{dead_pid}:{}", cat.channel, BlobId::random());
        sqlx::raw_sql(sql!(
            "BEGIN; UPDATE bucket_usage SET bytes = bytes + 1 WHERE bucket = 'dg'; PREPARE TRANSACTION '{dead}'"
        ))
        .execute(&mut dying)
        .await
        .unwrap();
        dying.close().await.unwrap();
        let alive = format!("{}:{live_pid}:{}", cat.channel, BlobId::random());
        let mut c = PgConnection::connect_with(&options).await.unwrap();
        sqlx::raw_sql(sql!(
            "BEGIN; INSERT INTO unreferenced_blobs VALUES ('s', 'x', 1); PREPARE TRANSACTION '{alive}'"
        ))
        .execute(&mut c)
        .await
        .unwrap();
        c.close().await.unwrap();

        // Writes into the bucket go on meanwhile, on rows nobody holds.
        for i in 0..20 {
            tokio::time::timeout(
                Duration::from_secs(5),
                by_name::put_object(
                    &cat,
                    &object("dg", &format!("k{i}"), "e"),
                    PutCondition::None,
                ),
            )
            .await
            .expect("a write is not held up by an abandoned commit's locked usage row")
            .unwrap();
        }

        let exists = |gid: String| {
            let pool = cat.pool().clone();
            async move {
                let n: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM pg_prepared_xacts WHERE gid = $1")
                        .bind(gid)
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                n == 1
            }
        };
        // Within the deadline a gateway waits, nothing is rolled back: its listening
        // connection alone may have dropped while it still waits for its commit.
        let hour = Duration::from_secs(3600);
        assert_eq!(cat.resolve_abandoned(hour, hour).await.unwrap(), 0);
        assert!(exists(dead.clone()).await);
        // Past it, the dead gateway's is (its backend leaves pg_stat_activity shortly after
        // it closed).
        let mut rolled = 0;
        for _ in 0..100 {
            rolled += cat
                .resolve_abandoned(hour, Duration::from_millis(10))
                .await
                .unwrap();
            if !exists(dead.clone()).await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(rolled, 1, "only the dead gateway's commit is rolled back");
        assert!(!exists(dead).await);
        assert!(
            exists(alive.clone()).await,
            "a listening gateway's commit is left to age"
        );
        sqlx::raw_sql(sql!("ROLLBACK PREPARED '{alive}'"))
            .execute(cat.pool())
            .await
            .unwrap();
        let usage = cat
            .usage(&PolicyScope::Bucket("dg".into()), 0)
            .await
            .unwrap();
        assert_eq!(usage.objects, 21, "the rolled-back change counts nothing");
        cat.close().await;
    }

    fn tenant(name: &str) -> Tenant {
        Tenant {
            name: name.into(),
            jurisdictions: vec!["DE".into()],
            min_sites: 2,
            created_ms: 1,
        }
    }

    fn object(bucket: &str, key: &str, etag: &str) -> ObjectRecord {
        ObjectRecord {
            bucket: bucket.into(),
            key: key.into(),
            size: 3,
            etag: etag.into(),
            last_modified_ms: 42,
            envelope: etag.as_bytes().to_vec(),
            meta: Vec::new(),
            sites: vec!["s1".into()],
            chunks: vec![Chunk {
                blob: BlobId::random(),
                size: 3,
                part: 1,
                crc32c: None,
            }],
            version_id: None,
        }
    }

    async fn with_bucket(cat: &PgCatalog, tenant_name: &str, bucket: &str) {
        cat.create_tenant(&tenant(tenant_name)).await.unwrap();
        cat.create_bucket(
            &Bucket {
                name: bucket.into(),
                tenant: tenant_name.into(),
                created_ms: 1,
                versioning: Default::default(),
            },
            &BucketKey {
                bucket: bucket.into(),
                version: 1,
                wrapped: b"w".to_vec(),
                kcv: b"k".to_vec(),
                created_ms: 1,
            },
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn non_ascii_names_list_in_byte_order_where_the_database_collates_otherwise() {
        // A database whose own collation is linguistic (ICU, German): 'a' sorts before 'B'
        // there, and 'ä' next to 'a'. The catalog must list in byte order all the same.
        let db = unique("icu");
        admin(
            "postgres",
            &format!(
                "CREATE DATABASE {db} TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'de-DE' LOCALE 'C.UTF-8'"
            ),
        )
        .await;
        let cat = PgCatalog::connect(options(&db)).await.unwrap();
        let linguistic: bool = sqlx::query_scalar("SELECT 'a' < 'B' AND 'ä' < 'b'")
            .fetch_one(cat.pool())
            .await
            .unwrap();
        assert!(linguistic, "the database collates linguistically");
        with_bucket(&cat, "tenant-Z", "bucket").await;
        cat.create_tenant(&tenant("tenant-a")).await.unwrap();
        cat.create_tenant(&tenant("tenant-\u{e4}")).await.unwrap();
        let keys = [
            "a",
            "B",
            "\u{e4}",
            "b",
            "Z",
            "z",
            "\u{e9}t\u{e9}",
            "e",
            "\u{65e5}\u{672c}",
            "a/b",
            "a-b",
            "a b",
            "\u{10348}",
            "\u{ff21}",
            "~",
            "\u{7f}",
        ];
        for k in keys {
            by_name::put_object(&cat, &object("bucket", k, "e"), PutCondition::None)
                .await
                .unwrap();
            by_name::create_upload(
                &cat,
                &Upload {
                    upload_id: format!("u-{k}"),
                    bucket: "bucket".into(),
                    key: k.into(),
                    initiated_ms: 1,
                    envelope: Vec::new(),
                    meta: Vec::new(),
                    sites: Vec::new(),
                },
            )
            .await
            .unwrap();
        }
        let mut expected: Vec<&str> = keys.to_vec();
        expected.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        // In pages of 3, each after the last key of the one before.
        let mut listed = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let from = after.as_deref().map_or(ListFrom::Start, ListFrom::After);
            let page = by_name::list_objects(&cat, "bucket", "", from, 3)
                .await
                .unwrap();
            if page.is_empty() {
                break;
            }
            after = page.last().map(|o| o.key.clone());
            listed.extend(page.into_iter().map(|o| o.key));
        }
        assert_eq!(listed, expected);
        let uploads: Vec<String> = by_name::list_uploads(&cat, "bucket", "", None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.key)
            .collect();
        assert_eq!(uploads, expected);
        let tenants: Vec<String> = cat
            .list_tenants()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(tenants, ["tenant-Z", "tenant-a", "tenant-\u{e4}"]);
        // A prefix that ends in a multi-byte character's first bytes' successor.
        let under: Vec<String> =
            by_name::list_objects(&cat, "bucket", "\u{e4}", ListFrom::Start, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|o| o.key)
                .collect();
        assert_eq!(under, ["\u{e4}"]);
        cat.close().await;
    }

    /// Waits until `cat` listens for other gateways' writes; its listener's pid.
    async fn listening(cat: &PgCatalog, other_than: Option<i32>) -> i32 {
        for _ in 0..500 {
            if let Some(pid) = cat.listener_pid().filter(|&p| Some(p) != other_than) {
                return pid;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the catalog did not listen within 5 s");
    }

    /// Asks `read` until it answers `want`; how long that took. Panics after 5 s, far less
    /// than the catalogs' cache bound in these tests (60 s): only a notification (or a
    /// cache that was emptied) explains an answer within it.
    async fn seen<T, F, Fut>(what: &str, want: &T, mut read: F) -> Duration
    where
        T: PartialEq + std::fmt::Debug,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let start = std::time::Instant::now();
        loop {
            let got = read().await;
            if &got == want {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{what}: still {got:?}, not {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    const LONG: Duration = Duration::from_secs(60);

    /// Waits until `cat` has heard more than `before` notifications.
    async fn heard_after(cat: &PgCatalog, before: u64) {
        for _ in 0..500 {
            if cat.notifications_heard() > before {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no notification within 5 s");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_through_one_gateway_empties_the_cache_of_another() {
        let options = fresh_schema().await;
        let a = PgCatalog::connect_with_cache_ttl(options.clone(), LONG)
            .await
            .unwrap();
        let b = PgCatalog::connect_with_cache_ttl(options, LONG)
            .await
            .unwrap();
        listening(&a, None).await;
        listening(&b, None).await;
        // b caches that nothing exists yet.
        assert_eq!(b.get_tenant("t").await.unwrap(), None);
        assert_eq!(b.get_bucket("bk").await.unwrap(), None);
        with_bucket(&a, "t", "bk").await;
        seen("created tenant", &Some(tenant("t")), || async {
            b.get_tenant("t").await.unwrap()
        })
        .await;
        seen("created bucket", &Some("t".to_owned()), || async {
            b.get_bucket("bk").await.unwrap().map(|x| x.tenant)
        })
        .await;

        // Tenant change.
        let jur = vec!["DE".to_owned(), "AT".to_owned()];
        a.update_tenant_residency("t", &jur, 3).await.unwrap();
        seen("tenant residency", &Some((jur, 3)), || async {
            b.get_tenant("t")
                .await
                .unwrap()
                .map(|t| (t.jurisdictions, t.min_sites))
        })
        .await;

        // Residency rule.
        let scope = PolicyScope::Bucket("bk".into());
        assert_eq!(b.get_rule(&scope).await.unwrap(), None);
        let rule = ResidencyRule {
            min_sites: Some(2),
            ..ResidencyRule::default()
        };
        a.put_rule(&scope, &rule).await.unwrap();
        seen("residency rule", &Some(rule), || async {
            b.get_rule(&scope).await.unwrap()
        })
        .await;

        // Bucket key rotation (and the bucket key of a shredded tenant is replaced or gone
        // the same way).
        assert_eq!(
            b.current_bucket_key("bk").await.unwrap().map(|k| k.version),
            Some(1)
        );
        assert_eq!(b.get_bucket_key("bk", 2).await.unwrap(), None);
        let v2 = BucketKey {
            bucket: "bk".into(),
            version: 2,
            wrapped: b"w2".to_vec(),
            kcv: b"k2".to_vec(),
            created_ms: 2,
        };
        by_name::add_bucket_key(&a, &v2).await.unwrap();
        seen("current bucket key", &Some(2), || async {
            b.current_bucket_key("bk").await.unwrap().map(|k| k.version)
        })
        .await;
        seen("bucket key 2", &Some(v2.clone()), || async {
            b.get_bucket_key("bk", 2).await.unwrap()
        })
        .await;

        // Quota.
        assert_eq!(b.get_quota(&scope).await.unwrap(), None);
        let quota = Quota {
            max_bytes: Some(10),
            max_objects: None,
        };
        by_name::set_quota(&a, &scope, Some(&quota)).await.unwrap();
        seen("quota", &Some(quota), || async {
            b.get_quota(&scope).await.unwrap()
        })
        .await;

        // Bucket deletion: the bucket, its keys, rule and quota are gone everywhere.
        by_name::delete_bucket(&a, "bk").await.unwrap();
        seen("deleted bucket", &(None, None, None, None), || async {
            (
                b.get_bucket("bk").await.unwrap(),
                b.current_bucket_key("bk").await.unwrap(),
                b.get_rule(&scope).await.unwrap(),
                b.get_quota(&scope).await.unwrap(),
            )
        })
        .await;
        a.close().await;
        b.close().await;
    }

    /// Changes tenant `t`'s `min_sites` behind the catalog's back: no notification.
    async fn unheard_change(schema: &str, min_sites: u32) {
        admin(
            "postgres",
            &format!("UPDATE {schema}.tenants SET min_sites = {min_sites} WHERE name = 't'"),
        )
        .await;
    }

    fn schema_of(options: &PgConnectOptions) -> String {
        options
            .get_options()
            .and_then(|o| o.split("search_path=").nth(1))
            .map(|s| s.split_whitespace().next().unwrap_or(s).to_owned())
            .expect("a search path")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cached_records_are_kept_only_for_the_stated_bound() {
        let options = fresh_schema().await;
        let schema = schema_of(&options);
        let long = PgCatalog::connect_with_cache_ttl(options.clone(), LONG)
            .await
            .unwrap();
        let short = PgCatalog::connect_with_cache_ttl(options, Duration::from_millis(300))
            .await
            .unwrap();
        listening(&long, None).await;
        listening(&short, None).await;
        long.create_tenant(&tenant("t")).await.unwrap();
        let min_sites = |c: &PgCatalog| {
            let c = c.clone();
            async move { c.get_tenant("t").await.unwrap().map(|t| t.min_sites) }
        };
        assert_eq!(min_sites(&long).await, Some(2));
        assert_eq!(min_sites(&short).await, Some(2));
        unheard_change(&schema, 3).await;
        // Cached: a change nobody notified is not seen within the bound...
        assert_eq!(min_sites(&long).await, Some(2), "the record is cached");
        // ...and is seen once the bound has passed.
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(min_sites(&short).await, Some(3), "expired after its bound");
        assert_eq!(min_sites(&long).await, Some(2));
        long.close().await;
        short.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lost_listener_connection_leaves_no_stale_read() {
        let options = fresh_schema().await;
        let schema = schema_of(&options);
        let a = PgCatalog::connect_with_cache_ttl(options.clone(), LONG)
            .await
            .unwrap();
        let b = PgCatalog::connect_with_cache_ttl(options, LONG)
            .await
            .unwrap();
        listening(&a, None).await;
        let pid = listening(&b, None).await;
        let before = b.notifications_heard();
        a.create_tenant(&tenant("t")).await.unwrap();
        heard_after(&b, before).await;
        assert_eq!(
            b.get_tenant("t").await.unwrap().map(|t| t.min_sites),
            Some(2)
        );
        // A change b cannot hear of (as one notified while its connection was down).
        unheard_change(&schema, 3).await;
        assert_eq!(
            b.get_tenant("t").await.unwrap().map(|t| t.min_sites),
            Some(2),
            "cached"
        );
        admin("postgres", &format!("SELECT pg_terminate_backend({pid})")).await;
        // Once b listens again (a new connection), what it had cached is gone.
        listening(&b, Some(pid)).await;
        assert_eq!(
            b.get_tenant("t").await.unwrap().map(|t| t.min_sites),
            Some(3),
            "stale after the listener came back"
        );
        // And it hears of writes again.
        a.update_tenant_residency("t", &["DE".to_owned()], 4)
            .await
            .unwrap();
        seen("after reconnecting", &Some(4), || async {
            b.get_tenant("t").await.unwrap().map(|t| t.min_sites)
        })
        .await;
        a.close().await;
        b.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn while_the_listener_cannot_reconnect_nothing_is_answered_from_the_cache() {
        let db = unique("nolisten");
        admin("postgres", &format!("CREATE DATABASE {db}")).await;
        let a = PgCatalog::connect_with_cache_ttl(options(&db), LONG)
            .await
            .unwrap();
        let b = PgCatalog::connect_with_cache_ttl(options(&db), LONG)
            .await
            .unwrap();
        listening(&a, None).await;
        let pid = listening(&b, None).await;
        a.create_tenant(&tenant("t")).await.unwrap();
        seen("tenant", &Some(2), || async {
            b.get_tenant("t").await.unwrap().map(|t| t.min_sites)
        })
        .await;
        assert!(b.cache_enabled());
        // No new connection to the database can be made: b's listener stays down, while
        // both pools keep the connections they have.
        admin(
            "postgres",
            &format!(
                "ALTER DATABASE {db} ALLOW_CONNECTIONS false;
                 SELECT pg_terminate_backend({pid})"
            ),
        )
        .await;
        let start = std::time::Instant::now();
        while b.cache_enabled() {
            assert!(start.elapsed() < Duration::from_secs(5), "cache still on");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(b.listener_pid(), None);
        // a's notification cannot reach b, yet b reads the change.
        a.update_tenant_residency("t", &["DE".to_owned()], 5)
            .await
            .unwrap();
        assert_eq!(
            b.get_tenant("t").await.unwrap().map(|t| t.min_sites),
            Some(5)
        );
        admin(
            "postgres",
            &format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"),
        )
        .await;
        listening(&b, Some(pid)).await;
        assert!(b.cache_enabled());
        a.close().await;
        b.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_conditional_puts_from_two_pools_leave_exactly_one() {
        let options = fresh_schema().await;
        let a = PgCatalog::connect(options.clone()).await.unwrap();
        let b = PgCatalog::connect(options).await.unwrap();
        with_bucket(&a, "t", "race").await;
        for round in 0..25 {
            // If-None-Match: * from both: one wins, the other is refused.
            let key = format!("absent-{round}");
            let (oa, ob) = (object("race", &key, "ea"), object("race", &key, "eb"));
            let (ra, rb) = tokio::join!(
                by_name::put_object(&a, &oa, PutCondition::Absent),
                by_name::put_object(&b, &ob, PutCondition::Absent)
            );
            let visible = a.get_object("race", &key).await.unwrap().unwrap();
            match (ra, rb) {
                (Ok(None), Err(CatalogError::PreconditionFailed(_))) => assert_eq!(visible, oa),
                (Err(CatalogError::PreconditionFailed(_)), Ok(None)) => assert_eq!(visible, ob),
                other => panic!("round {round}: not exactly one winner: {other:?}"),
            }
            // Unconditional from both: both succeed, one after the other; the second
            // returns the first's record (whose blobs are then garbage) and stays visible.
            let key = format!("none-{round}");
            let (oa, ob) = (object("race", &key, "ea"), object("race", &key, "eb"));
            let (ra, rb) = tokio::join!(
                by_name::put_object(&a, &oa, PutCondition::None),
                by_name::put_object(&b, &ob, PutCondition::None)
            );
            let visible = b.get_object("race", &key).await.unwrap().unwrap();
            match (ra.unwrap(), rb.unwrap()) {
                (None, Some(replaced)) => assert_eq!((replaced, visible.clone()), (oa, ob)),
                (Some(replaced), None) => assert_eq!((replaced, visible.clone()), (ob, oa)),
                other => panic!("round {round}: {other:?}"),
            }
            // If-Match the current ETag from both: exactly one replaces it.
            let current = visible.etag.clone();
            let (na, nb) = (object("race", &key, "na"), object("race", &key, "nb"));
            let (ra, rb) = tokio::join!(
                by_name::put_object(&a, &na, PutCondition::ETagMatches(current.clone())),
                by_name::put_object(&b, &nb, PutCondition::ETagMatches(current))
            );
            let winners = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
            assert_eq!(winners, 1, "round {round}: {ra:?} {rb:?}");
        }
        a.close().await;
        b.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_object_is_committed_into_a_bucket_deleted_meanwhile() {
        let options = fresh_schema().await;
        let a = PgCatalog::connect(options.clone()).await.unwrap();
        let b = PgCatalog::connect(options).await.unwrap();
        a.create_tenant(&tenant("t")).await.unwrap();
        for round in 0..25 {
            let bucket = format!("gone-{round}");
            a.create_bucket(
                &Bucket {
                    name: bucket.clone(),
                    tenant: "t".into(),
                    created_ms: 1,
                    versioning: Default::default(),
                },
                &BucketKey {
                    bucket: bucket.clone(),
                    version: 1,
                    wrapped: b"w".to_vec(),
                    kcv: b"k".to_vec(),
                    created_ms: 1,
                },
            )
            .await
            .unwrap();
            let o = object(&bucket, "k", "e");
            let (put, del) = tokio::join!(
                by_name::put_object(&a, &o, PutCondition::None),
                by_name::delete_bucket(&b, &bucket)
            );
            let bucket_left = b.get_bucket(&bucket).await.unwrap().is_some();
            let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM objects WHERE bucket = $1")
                .bind(&bucket)
                .fetch_one(a.pool())
                .await
                .unwrap();
            match (put, del) {
                // The put first: the delete finds the object.
                (Ok(None), Err(CatalogError::BucketNotEmpty(_))) => {
                    assert!(bucket_left && rows == 1, "round {round}");
                }
                // The delete first: the put finds no bucket.
                (Err(CatalogError::NotFound { kind: "bucket", .. }), Ok(_)) => {
                    assert!(!bucket_left && rows == 0, "round {round}");
                }
                other => panic!("round {round}: {other:?}"),
            }
        }
        a.close().await;
        b.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn aborting_an_upload_whose_parts_were_never_counted_offsets_no_other_bucket() {
        let cat = PgCatalog::connect(fresh_schema().await).await.unwrap();
        crate::conformance::fill_for_uncounted_abort(&cat).await;
        sqlx::raw_sql("DELETE FROM bucket_usage WHERE bucket = 'neg-b'")
            .execute(cat.pool())
            .await
            .unwrap();
        crate::conformance::check_uncounted_abort(&cat).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_recount_mends_usage_that_fell_behind_while_writes_go_on() {
        let cat = PgCatalog::connect(fresh_schema().await).await.unwrap();
        with_bucket(&cat, "t", "drift").await;
        for i in 0..5 {
            by_name::put_object(
                &cat,
                &object("drift", &format!("k{i}"), "e"),
                PutCondition::None,
            )
            .await
            .unwrap();
        }
        // What a gateway of the release before would leave: writes not counted.
        sqlx::raw_sql("UPDATE bucket_usage SET bytes = 1, objects = 1")
            .execute(cat.pool())
            .await
            .unwrap();
        let writes = (5..25).map(|i| {
            let c = cat.clone();
            tokio::spawn(async move {
                by_name::put_object(
                    &c,
                    &object("drift", &format!("k{i}"), "e"),
                    PutCondition::None,
                )
                .await
                .unwrap();
            })
        });
        let writes: Vec<_> = writes.collect();
        cat.recount_usage("drift").await.unwrap();
        for w in writes {
            w.await.unwrap();
        }
        let u = cat
            .usage(&PolicyScope::Bucket("drift".into()), 0)
            .await
            .unwrap();
        let size = object("drift", "k", "e").size;
        assert_eq!((u.bytes, u.objects), (25 * size, 25));
    }

    /// Expand-then-contract: a gateway of the release before versions (schema 5) writes and
    /// reads with its own statements on a database at schema 6, and what it wrote reads back
    /// through this release as an unversioned bucket's null versions.
    #[tokio::test]
    async fn a_gateway_of_the_release_before_versions_keeps_working_on_the_new_schema() {
        let options = fresh_schema().await;
        let cat = PgCatalog::connect(options).await.unwrap();
        cat.create_tenant(&tenant("old")).await.unwrap();
        let pool = cat.pool().clone();
        // Statements as the release before wrote them (its column lists).
        sqlx::query("INSERT INTO buckets (name, tenant, created_ms) VALUES ('oldb', 'old', 1)")
            .execute(&pool)
            .await
            .unwrap();
        let o = object("oldb", "k", "e1");
        for etag in ["e1", "e2"] {
            sqlx::query(
                "INSERT INTO objects (bucket, key, size, etag, last_modified_ms, envelope, meta, sites, chunks)
                 VALUES ($1, $2, 3, $3, 42, $4, ''::bytea, $5, $6)
                 ON CONFLICT (bucket, key) DO UPDATE SET etag = EXCLUDED.etag",
            )
            .bind("oldb")
            .bind(b"k".to_vec())
            .bind(etag)
            .bind(b"e1".to_vec())
            .bind(to_json(&o.sites).unwrap())
            .bind(to_json(&o.chunks).unwrap())
            .execute(&pool)
            .await
            .unwrap();
        }
        let old_read: Vec<(String, String)> = sqlx::query_as(
            "SELECT bucket, etag FROM objects WHERE bucket = $1 ORDER BY key LIMIT 10",
        )
        .bind("oldb")
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(old_read, vec![("oldb".to_owned(), "e2".to_owned())]);
        let bucket = cat.get_bucket("oldb").await.unwrap().unwrap();
        assert_eq!(bucket.versioning, Versioning::Unversioned);
        let read = cat.get_object("oldb", "k").await.unwrap().unwrap();
        assert_eq!((read.etag.as_str(), read.version_id), ("e2", None));
        let listed = by_name::list_object_versions(&cat, "oldb", "", VersionsFrom::Start, 10)
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].is_latest && listed[0].object.version_id.is_none());
    }

    /// Expand-then-contract for schema 7: a gateway of the release before (schema 6) deletes
    /// a bucket with its own statements, which know nothing of `bucket_configs` or
    /// `completed_uploads`; the configuration it leaves behind never applies to a bucket made
    /// again under that name, and its writes of objects work as before.
    #[tokio::test]
    async fn a_gateway_of_the_release_before_schema_7_keeps_working_on_it() {
        let options = fresh_schema().await;
        let cat = PgCatalog::connect(options).await.unwrap();
        cat.create_tenant(&tenant("t7")).await.unwrap();
        let key = |created_ms| BucketKey {
            bucket: "b7".into(),
            version: 1,
            wrapped: b"wrapped".to_vec(),
            kcv: vec![1; 8],
            created_ms,
        };
        let first = Bucket {
            name: "b7".into(),
            tenant: "t7".into(),
            created_ms: 1,
            versioning: Versioning::Unversioned,
        };
        cat.create_bucket(&first, &key(1)).await.unwrap();
        cat.put_bucket_config(&first, crate::config_kind::CORS, Some(b"rules"), 1)
            .await
            .unwrap();
        let pool = cat.pool().clone();
        // The release before: an object written and deleted, then the bucket, with its own
        // statements.
        let o = object("b7", "k", "e1");
        sqlx::query(
            "INSERT INTO objects (bucket, key, size, etag, last_modified_ms, envelope, meta, sites, chunks, version_id, version_order)
             VALUES ($1, $2, 3, 'e1', 42, ''::bytea, ''::bytea, $3, $4, '', 0)",
        )
        .bind("b7")
        .bind(b"k".to_vec())
        .bind(to_json(&o.sites).unwrap())
        .bind(to_json(&o.chunks).unwrap())
        .execute(&pool)
        .await
        .unwrap();
        assert_eq!(cat.get_object("b7", "k").await.unwrap().unwrap().etag, "e1");
        for sql in [
            "DELETE FROM objects WHERE bucket = 'b7'",
            "DELETE FROM bucket_keys WHERE bucket = 'b7'",
            "DELETE FROM bucket_usage WHERE bucket = 'b7'",
            "DELETE FROM buckets WHERE name = 'b7'",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bucket_configs")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(left, 1, "the release before leaves the row behind");
        let second = Bucket {
            created_ms: 2,
            ..first.clone()
        };
        cat.create_bucket(&second, &key(2)).await.unwrap();
        assert_eq!(
            cat.get_bucket_config(&second, crate::config_kind::CORS)
                .await
                .unwrap(),
            None
        );
        cat.put_bucket_config(&second, crate::config_kind::CORS, Some(b"new"), 3)
            .await
            .unwrap();
        assert_eq!(
            cat.get_bucket_config(&second, crate::config_kind::CORS)
                .await
                .unwrap()
                .as_deref(),
            Some(&b"new"[..])
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn migrations_run_once_and_starting_again_changes_nothing() {
        let options = fresh_schema().await;
        // Four gateways starting at once: each migration is applied once.
        let starts = (0..4).map(|_| {
            let o = options.clone();
            tokio::spawn(async move { PgCatalog::connect(o).await.map(|c| c.pool().clone()) })
        });
        let mut pools = Vec::new();
        for s in starts {
            pools.push(s.await.unwrap().unwrap());
        }
        let cat = PgCatalog::connect(options.clone()).await.unwrap();
        assert_eq!(
            cat.schema_version().await.unwrap(),
            i64::from(PgCatalog::SCHEMA_VERSION)
        );
        cat.create_tenant(&tenant("kept")).await.unwrap();
        assert_eq!(
            cat.migrate().await.unwrap(),
            (PgCatalog::SCHEMA_VERSION, PgCatalog::SCHEMA_VERSION),
            "nothing left to apply"
        );
        let again = PgCatalog::connect(options).await.unwrap();
        assert_eq!(
            again.get_tenant("kept").await.unwrap(),
            Some(tenant("kept"))
        );
        let tables: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()",
        )
        .fetch_one(again.pool())
        .await
        .unwrap();
        assert_eq!(tables, 22, "twenty-one tables and the version");
        for p in pools {
            p.close().await;
        }
    }

    #[tokio::test]
    async fn an_older_database_keeps_its_records_and_is_brought_forward() {
        let options = fresh_schema().await;
        // A database as version 1 left it: an upload without a placement.
        let old = PgCatalog::connect_unmigrated(options.clone())
            .await
            .unwrap();
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE TABLE obhut_schema (id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL);
             INSERT INTO obhut_schema VALUES (1, 1);
             {PG_V1}
             INSERT INTO tenants VALUES ('t', '[\"DE\"]', 2, 1);
             INSERT INTO buckets VALUES ('b', 't', 1);
             INSERT INTO uploads VALUES ('u', 'b', 'k'::bytea, 1, ''::bytea, ''::bytea);"
        )))
        .execute(old.pool())
        .await
        .unwrap();
        let cat = PgCatalog::connect(options).await.unwrap();
        assert_eq!(
            cat.schema_version().await.unwrap(),
            i64::from(PgCatalog::SCHEMA_VERSION)
        );
        let upload = cat.get_upload("u").await.unwrap().unwrap();
        assert_eq!(upload.sites, Vec::<String>::new(), "placed part by part");
        assert_eq!(cat.upgrade_done("x").await.unwrap(), None, "version 3 ran");
        assert_eq!(cat.get_tenant("t").await.unwrap(), Some(tenant("t")));
        old.close().await;
        cat.close().await;
    }

    #[tokio::test]
    async fn a_database_of_a_newer_release_is_refused_untouched() {
        let options = fresh_schema().await;
        let cat = PgCatalog::connect(options.clone()).await.unwrap();
        sqlx::query("UPDATE obhut_schema SET version = 99")
            .execute(cat.pool())
            .await
            .unwrap();
        let err = match PgCatalog::connect(options).await {
            Ok(_) => panic!("a newer schema was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("PostgreSQL catalog has schema version 99")
                && err.contains(&format!("up to {}", PgCatalog::SCHEMA_VERSION))
                && err.contains("newer release"),
            "{err}"
        );
        assert_eq!(cat.schema_version().await.unwrap(), 99, "left untouched");
        cat.close().await;
    }

    #[tokio::test]
    async fn a_database_of_something_else_is_refused() {
        let options = fresh_schema().await;
        let other = PgCatalog::connect_unmigrated(options.clone())
            .await
            .unwrap();
        sqlx::query("CREATE TABLE photos (id BIGINT)")
            .execute(other.pool())
            .await
            .unwrap();
        let err = match PgCatalog::connect(options).await {
            Ok(_) => panic!("a foreign database was taken"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("not an obhut database"), "{err}");
        other.close().await;
    }

    #[tokio::test]
    async fn tls_with_verify_full_as_the_url_spells_it_and_a_wrong_ca_is_refused() {
        use std::str::FromStr;
        let server = crate::pg_test_server::server();
        let url = |ca: &std::path::Path| {
            format!(
                "postgres://postgres@127.0.0.1:{}/postgres?sslmode=verify-full&sslrootcert={}",
                server.port,
                ca.display()
            )
        };
        let options = PgConnectOptions::from_str(&url(&server.ca)).unwrap();
        let cat = PgCatalog::connect_unmigrated(options).await.unwrap();
        let (ssl, version): (bool, String) =
            sqlx::query_as("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(cat.pool())
                .await
                .unwrap();
        assert!(ssl, "the connection is encrypted");
        assert!(version.starts_with("TLSv1."), "{version}");
        cat.close().await;
        let options = PgConnectOptions::from_str(&url(&server.other_ca)).unwrap();
        let err = match PgCatalog::connect_unmigrated(options).await {
            Ok(_) => panic!("a server whose certificate the CA did not sign was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("cannot connect to the PostgreSQL catalog")
                && err.to_lowercase().contains("certificate"),
            "{err}"
        );
    }

    #[test]
    fn prefix_end_is_the_next_byte_string() {
        assert_eq!(prefix_end(b"abc"), Some(b"abd".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b""), None);
    }
}
