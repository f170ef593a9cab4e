//! Measures SQLite (rusqlite, bundled), redb and fjall on the access pattern
//! of the obhut metadata catalog: object records keyed by (bucket, key) with a
//! ~300-byte value, written with full durability, read by point lookup and
//! listed in S3 byte order (ListObjectsV2).
//!
//! Usage: `cargo run --release [-- ENGINE...]` where ENGINE is one of
//! `sqlite`, `redb`, `fjall` (default: all three).
//!
//! Environment:
//! - `BENCH_SECS`    seconds per timed phase (default 3)
//! - `BENCH_RECORDS` records in the loaded data set (default 100000)
//! - `BENCH_ROUNDS`  rounds over all engines; cells are medians (default 3)
//! - `BENCH_DIR`     parent directory for the databases (default: the system temp dir)
//! - `BENCH_KEEP`    if set, keep the database directories for inspection

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const BATCH: usize = 1_000;
const LIST_MAX: usize = 1_000;
const BUCKETS: usize = 4;
const TENANTS: usize = 10;
const WRITERS: usize = 8;
const CACHE_BYTES: usize = 64 << 20;

// ---------------------------------------------------------------------------
// The record

/// One object version as the catalog stores it.
#[derive(Clone, Debug, PartialEq)]
struct Record {
    bucket: String,
    key: String,
    size: u64,
    etag: String,
    content_type: String,
    last_modified: i64,
    /// JSON manifest: which content-addressed blobs make up the object, and where they live.
    manifest: String,
}

/// The fields returned by a listing (ListObjectsV2 needs key, size, etag, last-modified).
#[derive(Debug, PartialEq)]
struct ListEntry {
    key: String,
    size: u64,
    etag: String,
    last_modified: i64,
}

/// Key for the key-value engines: [bucket length][bucket][object key]. Within one
/// bucket, keys compare as raw bytes, which is the order S3 lists in.
fn kv_key(bucket: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + bucket.len() + key.len());
    k.push(u8::try_from(bucket.len()).expect("bucket names are at most 63 bytes"));
    k.extend_from_slice(bucket.as_bytes());
    k.extend_from_slice(key.as_bytes());
    k
}

fn kv_key_split(k: &[u8]) -> (&[u8], &[u8]) {
    let n = k[0] as usize;
    (&k[1..1 + n], &k[1 + n..])
}

fn put_str(v: &mut Vec<u8>, s: &str) {
    v.extend_from_slice(&(u16::try_from(s.len()).expect("field too long")).to_be_bytes());
    v.extend_from_slice(s.as_bytes());
}

fn get_str(v: &[u8], pos: &mut usize) -> String {
    let n = u16::from_be_bytes([v[*pos], v[*pos + 1]]) as usize;
    let s = std::str::from_utf8(&v[*pos + 2..*pos + 2 + n])
        .expect("utf-8")
        .to_owned();
    *pos += 2 + n;
    s
}

/// Value for the key-value engines: size, last_modified, then length-prefixed strings.
fn kv_value(r: &Record) -> Vec<u8> {
    let mut v = Vec::with_capacity(320);
    v.extend_from_slice(&r.size.to_be_bytes());
    v.extend_from_slice(&r.last_modified.to_be_bytes());
    put_str(&mut v, &r.etag);
    put_str(&mut v, &r.content_type);
    put_str(&mut v, &r.manifest);
    v
}

fn kv_decode(bucket: &str, key: &str, v: &[u8]) -> Record {
    let size = u64::from_be_bytes(v[0..8].try_into().expect("8 bytes"));
    let last_modified = i64::from_be_bytes(v[8..16].try_into().expect("8 bytes"));
    let mut pos = 16;
    let etag = get_str(v, &mut pos);
    let content_type = get_str(v, &mut pos);
    let manifest = get_str(v, &mut pos);
    Record {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        size,
        etag,
        content_type,
        last_modified,
        manifest,
    }
}

/// Decodes only what a listing returns (the manifest is skipped, not parsed).
fn kv_list_entry(key: &[u8], v: &[u8]) -> ListEntry {
    let size = u64::from_be_bytes(v[0..8].try_into().expect("8 bytes"));
    let last_modified = i64::from_be_bytes(v[8..16].try_into().expect("8 bytes"));
    let mut pos = 16;
    let etag = get_str(v, &mut pos);
    ListEntry {
        key: std::str::from_utf8(key).expect("utf-8").to_owned(),
        size,
        etag,
        last_modified,
    }
}

/// Smallest byte string greater than every string starting with `prefix`.
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut p = prefix.to_vec();
    while let Some(last) = p.pop() {
        if last < 0xff {
            p.push(last + 1);
            return Some(p);
        }
    }
    None
}

fn hex(rng: &mut StdRng, bytes: usize) -> String {
    let mut s = String::with_capacity(bytes * 2);
    for _ in 0..bytes {
        s.push_str(&format!("{:02x}", rng.random::<u8>()));
    }
    s
}

const DIRS: &[&str] = &[
    "photos",
    "Photos",
    "logs",
    "backups",
    "übersicht",
    "data",
    "DATA",
    "2024",
    "2025",
    "tmp",
    "café",
    "reports",
    "raw",
    "img",
    "Zeta",
    "alpha",
    "a-b",
    "a_b",
    "a.b",
    "日本",
];

fn make_record(rng: &mut StdRng, bucket: String, key: String) -> Record {
    let blobs = rng.random_range(1..=2);
    let size = rng.random_range(1..=64u64 << 20);
    let mut manifest = String::from("{\"v\":1,\"blobs\":[");
    for b in 0..blobs {
        if b > 0 {
            manifest.push(',');
        }
        manifest.push_str(&format!(
            "{{\"id\":\"sha256:{}\",\"off\":0,\"len\":{}}}",
            hex(rng, 32),
            size / blobs
        ));
    }
    manifest.push_str("],\"sites\":[\"site-a\",\"site-b\"]}");
    Record {
        bucket,
        key,
        size,
        etag: format!("\"{}\"", hex(rng, 16)),
        content_type: "application/octet-stream".to_owned(),
        last_modified: 1_760_000_000_000 + rng.random_range(0..10_000_000_000i64),
        manifest,
    }
}

struct DataSet {
    records: Vec<Record>,
    /// Per (bucket, tenant): the keys in S3 byte order.
    groups: Vec<(String, String, Vec<String>)>,
}

fn make_dataset(n: usize) -> DataSet {
    let mut rng = StdRng::seed_from_u64(0x0b_5e7);
    let mut seen = HashSet::with_capacity(n);
    let mut records = Vec::with_capacity(n);
    let mut i = 0usize;
    while records.len() < n {
        let bucket = format!("bucket-{}", i % BUCKETS);
        let tenant = (i / BUCKETS) % TENANTS;
        let dir = DIRS[rng.random_range(0..DIRS.len())];
        let name = hex(&mut rng, 8);
        let key = format!("tenant-{tenant:02}/{dir}/{name}.dat");
        i += 1;
        if !seen.insert((bucket.clone(), key.clone())) {
            continue;
        }
        let rec = make_record(&mut rng, bucket, key);
        records.push(rec);
    }
    records.shuffle(&mut rng);
    let mut groups = Vec::new();
    for b in 0..BUCKETS {
        for t in 0..TENANTS {
            let bucket = format!("bucket-{b}");
            let prefix = format!("tenant-{t:02}/");
            let mut keys: Vec<String> = records
                .iter()
                .filter(|r| r.bucket == bucket && r.key.starts_with(&prefix))
                .map(|r| r.key.clone())
                .collect();
            keys.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            groups.push((bucket, prefix, keys));
        }
    }
    DataSet { records, groups }
}

// ---------------------------------------------------------------------------
// The engines

trait Engine: Send + Sync {
    /// Writes all records in one transaction and returns once it is durable.
    fn put_batch(&self, recs: &[Record]) -> Res<()>;
    /// One record, one durable commit, callable from many threads at once; each
    /// engine is driven the way its documentation suggests for concurrent writers.
    fn put_durable(&self, rec: &Record) -> Res<()>;
    fn get(&self, bucket: &str, key: &str) -> Res<Option<Record>>;
    /// ListObjectsV2: up to `max` keys of `bucket` that start with `prefix` and
    /// sort after `start_after`, in byte order.
    fn list(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: &str,
        max: usize,
    ) -> Res<Vec<ListEntry>>;
    /// Brings the on-disk state to what a clean shutdown leaves.
    fn settle(&self) -> Res<()>;
}

// --- SQLite ----------------------------------------------------------------

struct Sqlite {
    /// SQLite allows one writer at a time; the catalog would serialise writes on
    /// one connection rather than let connections spin on SQLITE_BUSY.
    conn: Mutex<rusqlite::Connection>,
}

const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS objects (
    bucket        TEXT    NOT NULL,
    key           BLOB    NOT NULL,
    size          INTEGER NOT NULL,
    etag          TEXT    NOT NULL,
    content_type  TEXT    NOT NULL,
    last_modified INTEGER NOT NULL,
    manifest      TEXT    NOT NULL,
    PRIMARY KEY (bucket, key)
) WITHOUT ROWID;
";

const SQLITE_UPSERT: &str = "
INSERT INTO objects (bucket, key, size, etag, content_type, last_modified, manifest)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
ON CONFLICT (bucket, key) DO UPDATE SET
    size = excluded.size, etag = excluded.etag, content_type = excluded.content_type,
    last_modified = excluded.last_modified, manifest = excluded.manifest";

impl Sqlite {
    fn open(dir: &Path) -> Res<Self> {
        let conn = rusqlite::Connection::open(dir.join("catalog.sqlite"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: every commit fsyncs the WAL, so a commit survives power loss.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "cache_size", -((CACHE_BYTES / 1024) as i64))?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(SQLITE_SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn insert(conn: &rusqlite::Connection, r: &Record) -> Res<()> {
        let mut st = conn.prepare_cached(SQLITE_UPSERT)?;
        st.execute(rusqlite::params![
            r.bucket,
            r.key.as_bytes(),
            r.size as i64,
            r.etag,
            r.content_type,
            r.last_modified,
            r.manifest
        ])?;
        Ok(())
    }
}

impl Engine for Sqlite {
    fn put_batch(&self, recs: &[Record]) -> Res<()> {
        let mut conn = self.conn.lock().expect("lock");
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for r in recs {
            Self::insert(&tx, r)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn put_durable(&self, rec: &Record) -> Res<()> {
        let conn = self.conn.lock().expect("lock");
        // Autocommit: one statement, one transaction, one WAL fsync.
        Self::insert(&conn, rec)
    }

    fn get(&self, bucket: &str, key: &str) -> Res<Option<Record>> {
        let conn = self.conn.lock().expect("lock");
        let mut st = conn.prepare_cached(
            "SELECT size, etag, content_type, last_modified, manifest
             FROM objects WHERE bucket = ?1 AND key = ?2",
        )?;
        let mut rows = st.query(rusqlite::params![bucket, key.as_bytes()])?;
        match rows.next()? {
            None => Ok(None),
            Some(row) => Ok(Some(Record {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                size: row.get::<_, i64>(0)? as u64,
                etag: row.get(1)?,
                content_type: row.get(2)?,
                last_modified: row.get(3)?,
                manifest: row.get(4)?,
            })),
        }
    }

    fn list(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: &str,
        max: usize,
    ) -> Res<Vec<ListEntry>> {
        let conn = self.conn.lock().expect("lock");
        // Keys are BLOBs, which compare with memcmp: S3 byte order. The same column
        // is `bytea` in PostgreSQL. `?4` is NULL when no string ends the prefix.
        let upper = prefix_successor(prefix.as_bytes());
        let mut st = conn.prepare_cached(
            "SELECT key, size, etag, last_modified FROM objects
             WHERE bucket = ?1 AND key > ?2 AND key >= ?3 AND (?4 IS NULL OR key < ?4)
             ORDER BY key LIMIT ?5",
        )?;
        let rows = st.query_map(
            rusqlite::params![
                bucket,
                start_after.as_bytes(),
                prefix.as_bytes(),
                upper,
                max as i64
            ],
            |row| {
                let key: Vec<u8> = row.get(0)?;
                Ok(ListEntry {
                    key: String::from_utf8(key).expect("keys are UTF-8"),
                    size: row.get::<_, i64>(1)? as u64,
                    etag: row.get(2)?,
                    last_modified: row.get(3)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn settle(&self) -> Res<()> {
        let conn = self.conn.lock().expect("lock");
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        Ok(())
    }
}

// --- redb ------------------------------------------------------------------

const REDB_OBJECTS: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("objects");

struct Redb {
    db: redb::Database,
}

impl Redb {
    fn open(dir: &Path) -> Res<Self> {
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(dir.join("catalog.redb"))?;
        let tx = db.begin_write()?;
        tx.open_table(REDB_OBJECTS)?;
        tx.commit()?;
        Ok(Self { db })
    }
}

impl Engine for Redb {
    fn put_batch(&self, recs: &[Record]) -> Res<()> {
        let tx = self.db.begin_write()?; // Durability::Immediate is the default
        {
            let mut t = tx.open_table(REDB_OBJECTS)?;
            for r in recs {
                t.insert(kv_key(&r.bucket, &r.key).as_slice(), kv_value(r).as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn put_durable(&self, rec: &Record) -> Res<()> {
        // begin_write blocks while another write transaction is open.
        self.put_batch(std::slice::from_ref(rec))
    }

    fn get(&self, bucket: &str, key: &str) -> Res<Option<Record>> {
        use redb::ReadableDatabase;
        let tx = self.db.begin_read()?;
        let t = tx.open_table(REDB_OBJECTS)?;
        let k = kv_key(bucket, key);
        Ok(t.get(k.as_slice())?
            .map(|v| kv_decode(bucket, key, v.value())))
    }

    fn list(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: &str,
        max: usize,
    ) -> Res<Vec<ListEntry>> {
        use redb::ReadableDatabase;
        let tx = self.db.begin_read()?;
        let t = tx.open_table(REDB_OBJECTS)?;
        let lo = kv_key(bucket, start_after.max(prefix));
        let lo_bound = if start_after >= prefix {
            Bound::Excluded(lo.as_slice())
        } else {
            Bound::Included(lo.as_slice())
        };
        let hi = prefix_successor(&kv_key(bucket, prefix)).expect("non-empty");
        let mut out = Vec::with_capacity(max);
        for item in t.range::<&[u8]>((lo_bound, Bound::Excluded(hi.as_slice())))? {
            let (k, v) = item?;
            let (_, key) = kv_key_split(k.value());
            out.push(kv_list_entry(key, v.value()));
            if out.len() == max {
                break;
            }
        }
        Ok(out)
    }

    fn settle(&self) -> Res<()> {
        Ok(())
    }
}

// --- fjall -----------------------------------------------------------------

struct Fjall {
    db: fjall::Database,
    objects: fjall::Keyspace,
}

/// fdatasync, like SQLite's and redb's commits on Linux; the journal is
/// append-only, so the file size is synced with the data.
const FJALL_SYNC: fjall::PersistMode = fjall::PersistMode::SyncData;

impl Fjall {
    fn open(dir: &Path) -> Res<Self> {
        let db = fjall::Database::builder(dir.join("catalog.fjall"))
            .cache_size(CACHE_BYTES as u64)
            .open()?;
        let objects = db.keyspace("objects", fjall::KeyspaceCreateOptions::default)?;
        Ok(Self { db, objects })
    }
}

impl Engine for Fjall {
    fn put_batch(&self, recs: &[Record]) -> Res<()> {
        let mut b = self.db.batch().durability(Some(FJALL_SYNC));
        for r in recs {
            b.insert(&self.objects, kv_key(&r.bucket, &r.key), kv_value(r));
        }
        b.commit()?;
        Ok(())
    }

    fn put_durable(&self, rec: &Record) -> Res<()> {
        // Write to the journal buffer, then sync it. Concurrent writers share
        // syncs: one persist covers every insert that reached the journal before it.
        self.objects
            .insert(kv_key(&rec.bucket, &rec.key), kv_value(rec))?;
        self.db.persist(FJALL_SYNC)?;
        Ok(())
    }

    fn get(&self, bucket: &str, key: &str) -> Res<Option<Record>> {
        Ok(self
            .objects
            .get(kv_key(bucket, key))?
            .map(|v| kv_decode(bucket, key, &v)))
    }

    fn list(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: &str,
        max: usize,
    ) -> Res<Vec<ListEntry>> {
        let lo = kv_key(bucket, start_after.max(prefix));
        let lo_bound = if start_after >= prefix {
            Bound::Excluded(lo)
        } else {
            Bound::Included(lo)
        };
        let hi = prefix_successor(&kv_key(bucket, prefix)).expect("non-empty");
        let mut out = Vec::with_capacity(max);
        for item in self.objects.range((lo_bound, Bound::Excluded(hi))) {
            let (k, v) = item.into_inner()?;
            let (_, key) = kv_key_split(&k);
            out.push(kv_list_entry(key, &v));
            if out.len() == max {
                break;
            }
        }
        Ok(out)
    }

    fn settle(&self) -> Res<()> {
        // Move the memtable into a sorted table so the size on disk reflects the
        // engine's steady state rather than its write-ahead journal.
        self.objects.rotate_memtable_and_wait()?;
        self.db.persist(fjall::PersistMode::SyncAll)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Measurements

#[derive(Default, Clone)]
struct Results {
    batch_load_rps: f64,
    size_bytes: u64,
    size_alloc_bytes: u64,
    lookup_ops: f64,
    scan_ops: f64,
    durable_1: Durable,
    durable_n: Durable,
    durable_group: Durable,
    group_avg_batch: f64,
}

#[derive(Default, Clone, Copy)]
struct Durable {
    ops: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn durable_from(count: usize, elapsed: Duration, mut lat_us: Vec<u32>) -> Durable {
    lat_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat_us.is_empty() {
            return 0.0;
        }
        let i = ((lat_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(lat_us[i]) / 1000.0
    };
    Durable {
        ops: count as f64 / elapsed.as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}

fn dir_size(p: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut len = 0;
    let mut alloc = 0;
    if let Ok(rd) = fs::read_dir(p) {
        for e in rd.flatten() {
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                let (l, a) = dir_size(&e.path());
                len += l;
                alloc += a;
            } else {
                len += md.len();
                alloc += md.blocks() * 512;
            }
        }
    }
    (len, alloc)
}

/// A new record in a random position of bucket-0, as an incoming PUT would be.
fn incoming(rng: &mut StdRng, template: &Record) -> Record {
    let mut r = template.clone();
    r.bucket = "bucket-0".to_owned();
    r.key = format!("incoming/{}", hex(rng, 8));
    r
}

/// `threads` writers, each committing single records durably until the deadline.
fn run_durable(
    engine: &Arc<dyn Engine>,
    threads: usize,
    secs: f64,
    template: &Record,
    seed: u64,
) -> Res<Durable> {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let engine = Arc::clone(engine);
            let stop = Arc::clone(&stop);
            let template = template.clone();
            thread::spawn(move || -> Res<Vec<u32>> {
                let mut rng = StdRng::seed_from_u64(seed + t as u64);
                let mut lat = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let r = incoming(&mut rng, &template);
                    let t0 = Instant::now();
                    engine.put_durable(&r)?;
                    lat.push(t0.elapsed().as_micros() as u32);
                }
                Ok(lat)
            })
        })
        .collect();
    thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().expect("writer thread")?);
    }
    let elapsed = start.elapsed();
    Ok(durable_from(all.len(), elapsed, all))
}

/// `threads` writers hand records to one committer thread, which writes whatever
/// has queued up as one durable transaction and then acknowledges each writer.
/// Engine-independent; returns the throughput and the mean records per commit.
fn run_group_commit(
    engine: &Arc<dyn Engine>,
    threads: usize,
    secs: f64,
    template: &Record,
    seed: u64,
) -> Res<(Durable, f64)> {
    type Req = (Record, mpsc::SyncSender<()>);
    let (tx, rx) = mpsc::channel::<Req>();
    let committer = {
        let engine = Arc::clone(engine);
        thread::spawn(move || -> Res<(usize, usize)> {
            let (mut commits, mut records) = (0usize, 0usize);
            while let Ok(first) = rx.recv() {
                let mut pending = vec![first];
                while pending.len() < 1024 {
                    match rx.try_recv() {
                        Ok(r) => pending.push(r),
                        Err(_) => break,
                    }
                }
                let recs: Vec<Record> = pending.iter().map(|(r, _)| r.clone()).collect();
                engine.put_batch(&recs)?;
                commits += 1;
                records += recs.len();
                for (_, ack) in pending {
                    let _ = ack.send(());
                }
            }
            Ok((commits, records))
        })
    };
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let tx = tx.clone();
            let stop = Arc::clone(&stop);
            let template = template.clone();
            thread::spawn(move || -> Vec<u32> {
                let mut rng = StdRng::seed_from_u64(seed + t as u64);
                let mut lat = Vec::new();
                let (ack_tx, ack_rx) = mpsc::sync_channel(1);
                while !stop.load(Ordering::Relaxed) {
                    let r = incoming(&mut rng, &template);
                    let t0 = Instant::now();
                    if tx.send((r, ack_tx.clone())).is_err() || ack_rx.recv().is_err() {
                        break;
                    }
                    lat.push(t0.elapsed().as_micros() as u32);
                }
                lat
            })
        })
        .collect();
    drop(tx);
    thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().expect("writer thread"));
    }
    let elapsed = start.elapsed();
    let (commits, records) = committer.join().expect("committer thread")?;
    let avg = records as f64 / commits.max(1) as f64;
    Ok((durable_from(all.len(), elapsed, all), avg))
}

fn open_engine(name: &str, dir: &Path) -> Res<Arc<dyn Engine>> {
    Ok(match name {
        "sqlite" => Arc::new(Sqlite::open(dir)?),
        "redb" => Arc::new(Redb::open(dir)?),
        "fjall" => Arc::new(Fjall::open(dir)?),
        other => return Err(format!("unknown engine {other}").into()),
    })
}

fn bench_engine(name: &str, dir: &Path, data: &DataSet, secs: f64) -> Res<Results> {
    let dir = dir.to_path_buf();
    fs::create_dir_all(&dir)?;
    let mut res = Results::default();
    let mut rng = StdRng::seed_from_u64(42);

    // 2. Batched load: transactions of BATCH records, each durable.
    let engine = open_engine(name, &dir)?;
    let t0 = Instant::now();
    for chunk in data.records.chunks(BATCH) {
        engine.put_batch(chunk)?;
    }
    res.batch_load_rps = data.records.len() as f64 / t0.elapsed().as_secs_f64();
    eprintln!("  {name}: loaded {} records", data.records.len());

    // 5. Size on disk after a clean shutdown.
    engine.settle()?;
    drop(engine);
    (res.size_bytes, res.size_alloc_bytes) = dir_size(&dir);

    let engine = open_engine(name, &dir)?;

    // Correctness first: every engine must return the same records and the same
    // listings, in S3 byte order.
    for r in data.records.iter().take(200) {
        let got = engine.get(&r.bucket, &r.key)?;
        assert_eq!(got.as_ref(), Some(r), "{name}: lookup mismatch");
    }
    assert!(engine.get("bucket-0", "no/such/key")?.is_none());
    for (bucket, prefix, keys) in &data.groups {
        let expect_from = |after: &str| -> Vec<&String> {
            keys.iter()
                .filter(|k| k.as_bytes() > after.as_bytes())
                .take(LIST_MAX)
                .collect()
        };
        for after in [
            "",
            keys[keys.len() / 3].as_str(),
            keys[keys.len() - 10].as_str(),
        ] {
            let got = engine.list(bucket, prefix, after, LIST_MAX)?;
            let got_keys: Vec<&String> = got.iter().map(|e| &e.key).collect();
            assert_eq!(got_keys, expect_from(after), "{name}: listing mismatch");
        }
    }

    // 3. Point lookups of random existing keys.
    let mut n = 0usize;
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(secs);
    while Instant::now() < deadline {
        for _ in 0..256 {
            let r = &data.records[rng.random_range(0..data.records.len())];
            let got = engine.get(&r.bucket, &r.key)?;
            assert!(got.is_some_and(|g| g.size == r.size));
            n += 1;
        }
    }
    res.lookup_ops = n as f64 / t0.elapsed().as_secs_f64();

    // 4. ListObjectsV2: 1,000 keys after a random start key within a prefix.
    let mut n = 0usize;
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(secs);
    while Instant::now() < deadline {
        for _ in 0..8 {
            let (bucket, prefix, keys) = &data.groups[rng.random_range(0..data.groups.len())];
            let i = rng.random_range(0..keys.len() - LIST_MAX);
            let got = engine.list(bucket, prefix, &keys[i], LIST_MAX)?;
            assert_eq!(got.len(), LIST_MAX);
            assert_eq!(got[0].key, keys[i + 1]);
            n += 1;
        }
    }
    res.scan_ops = n as f64 / t0.elapsed().as_secs_f64();
    eprintln!("  {name}: reads done");

    // 1. Durable single-record commits on the loaded catalog.
    let template = &data.records[0];
    res.durable_1 = run_durable(&engine, 1, secs, template, 1000)?;
    res.durable_n = run_durable(&engine, WRITERS, secs, template, 2000)?;
    let (g, avg) = run_group_commit(&engine, WRITERS, secs, template, 3000)?;
    res.durable_group = g;
    res.group_avg_batch = avg;
    eprintln!("  {name}: durable writes done");
    drop(engine);
    Ok(res)
}

/// What the device itself allows: write 300 bytes and fdatasync, in a loop.
/// Appending grows the file, so each sync also commits the file system's
/// journal; overwriting in place inside an allocated file syncs only the data.
fn raw_fsync_rate(root: &Path, secs: f64, append: bool) -> Res<f64> {
    use std::io::{Seek, SeekFrom};
    let path = root.join(if append {
        "fsync-probe-append"
    } else {
        "fsync-probe-overwrite"
    });
    let mut f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)?;
    let buf = [0x5au8; 300];
    if !append {
        f.write_all(&[0u8; 1 << 20])?;
        f.sync_all()?;
    }
    let mut n = 0usize;
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(secs);
    while Instant::now() < deadline {
        if append {
            f.seek(SeekFrom::End(0))?;
        } else {
            f.seek(SeekFrom::Start(((n % 3000) * 300) as u64))?;
        }
        f.write_all(&buf)?;
        f.sync_data()?;
        n += 1;
    }
    Ok(n as f64 / t0.elapsed().as_secs_f64())
}

fn lock_version(name: &str) -> String {
    let lock = include_str!("../Cargo.lock");
    let needle = format!("name = \"{name}\"\nversion = \"");
    lock.find(&needle)
        .map(|i| {
            let rest = &lock[i + needle.len()..];
            rest[..rest.find('"').unwrap_or(0)].to_owned()
        })
        .unwrap_or_else(|| "?".to_owned())
}

fn machine_facts(root: &Path) -> Vec<String> {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    let df = std::process::Command::new("df")
        .arg("-T")
        .arg(root)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().nth(1).map(str::to_owned))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!(
                "{} ({}) mounted on {}",
                f.first().unwrap_or(&"?"),
                f.get(1).unwrap_or(&"?"),
                f.last().unwrap_or(&"?")
            )
        })
        .unwrap_or_else(|| "unknown".to_owned());
    vec![
        format!("- CPU: {cpu}, {cpus} logical CPUs"),
        format!("- Database directory: {} on {df}", root.display()),
        format!(
            "- Crates: rusqlite {} (bundled SQLite {}), redb {}, fjall {}",
            lock_version("rusqlite"),
            rusqlite::version(),
            lock_version("redb"),
            lock_version("fjall")
        ),
    ]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Per-field median over the rounds of one engine.
fn median_results(rs: &[Results]) -> Results {
    let m = |f: &dyn Fn(&Results) -> f64| median(rs.iter().map(f).collect());
    let md = |f: &dyn Fn(&Results) -> Durable| Durable {
        ops: m(&|r| f(r).ops),
        p50_ms: m(&|r| f(r).p50_ms),
        p99_ms: m(&|r| f(r).p99_ms),
    };
    Results {
        batch_load_rps: m(&|r| r.batch_load_rps),
        size_bytes: m(&|r| r.size_bytes as f64) as u64,
        size_alloc_bytes: m(&|r| r.size_alloc_bytes as f64) as u64,
        lookup_ops: m(&|r| r.lookup_ops),
        scan_ops: m(&|r| r.scan_ops),
        durable_1: md(&|r| r.durable_1),
        durable_n: md(&|r| r.durable_n),
        durable_group: md(&|r| r.durable_group),
        group_avg_batch: m(&|r| r.group_avg_batch),
    }
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() -> Res<()> {
    let secs: f64 = env_num("BENCH_SECS", 3.0);
    let n: usize = env_num("BENCH_RECORDS", 100_000);
    let rounds: usize = env_num("BENCH_ROUNDS", 3usize).max(1);
    assert!(
        n >= BUCKETS * TENANTS * (LIST_MAX + 50),
        "BENCH_RECORDS too small"
    );
    let parent: PathBuf =
        std::env::var_os("BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let mut engines: Vec<String> = std::env::args().skip(1).collect();
    if engines.is_empty() {
        engines = vec!["sqlite".into(), "redb".into(), "fjall".into()];
    }

    let tmp = tempfile::Builder::new()
        .prefix("catalog-engine-bench-")
        .tempdir_in(&parent)?;
    let root = tmp.path();
    let keep = std::env::var_os("BENCH_KEEP").is_some();
    let started = Instant::now();

    eprintln!("generating {n} records ...");
    let data = make_dataset(n);
    let avg_val: f64 = data
        .records
        .iter()
        .map(|r| kv_value(r).len() as f64)
        .sum::<f64>()
        / n as f64;
    let avg_key: f64 = data.records.iter().map(|r| r.key.len() as f64).sum::<f64>() / n as f64;

    // Rounds interleave the engines (in rotating order) so that a slow spell of
    // a shared disk or CPU does not land on one engine only; cells are medians.
    let mut per_engine: Vec<Vec<Results>> = vec![Vec::new(); engines.len()];
    let mut fsync_append = Vec::new();
    let mut fsync_overwrite = Vec::new();
    for round in 0..rounds {
        fsync_append.push(raw_fsync_rate(root, secs.min(2.0), true)?);
        fsync_overwrite.push(raw_fsync_rate(root, secs.min(2.0), false)?);
        for j in 0..engines.len() {
            let i = (j + round) % engines.len();
            let e = &engines[i];
            eprintln!("round {}/{rounds}: {e} ...", round + 1);
            let dir = root.join(format!("{e}-{round}"));
            per_engine[i].push(bench_engine(e, &dir, &data, secs)?);
            if !keep {
                fs::remove_dir_all(&dir)?;
            }
        }
    }
    let results: Vec<Results> = per_engine.iter().map(|rs| median_results(rs)).collect();

    println!("## Catalog engine benchmark\n");
    for l in machine_facts(root) {
        println!("{l}");
    }
    println!(
        "- Data: {n} records in {BUCKETS} buckets, mean key {avg_key:.0} B, mean value {avg_val:.0} B"
    );
    println!(
        "- {rounds} rounds of {secs} s per timed phase; each cell is the median over the rounds"
    );
    println!(
        "- Raw device, 1 thread, median: append 300 B + fdatasync {:.0} ops/s; overwrite 300 B in place + fdatasync {:.0} ops/s\n",
        median(fsync_append),
        median(fsync_overwrite)
    );

    let mut header = String::from("| Measurement |");
    let mut rule = String::from("|---|");
    for e in &engines {
        header.push_str(&format!(" {e} |"));
        rule.push_str("---:|");
    }
    println!("{header}\n{rule}");
    let row = |label: &str, f: &dyn Fn(&Results) -> String| {
        let mut s = format!("| {label} |");
        for r in &results {
            s.push_str(&format!(" {} |", f(r)));
        }
        println!("{s}");
    };
    let d = |x: &Durable| {
        format!(
            "{:.0} ops/s (p50 {:.1} ms, p99 {:.1} ms)",
            x.ops, x.p50_ms, x.p99_ms
        )
    };
    row("Durable single-record commits, 1 writer", &|r| {
        d(&r.durable_1)
    });
    row(
        &format!("Durable single-record commits, {WRITERS} writers, engine's own concurrency"),
        &|r| d(&r.durable_n),
    );
    row(
        &format!("Durable commits, {WRITERS} writers, group commit in the catalog"),
        &|r| {
            format!(
                "{} (mean {:.1} records/commit)",
                d(&r.durable_group),
                r.group_avg_batch
            )
        },
    );
    row(
        &format!("Batched load, {BATCH} records per durable transaction"),
        &|r| format!("{:.0} records/s", r.batch_load_rps),
    );
    row(&format!("Point lookups, random key of {n}"), &|r| {
        format!("{:.0} ops/s", r.lookup_ops)
    });
    row(
        &format!("ListObjectsV2, {LIST_MAX} keys after random start, prefix filter"),
        &|r| format!("{:.0} scans/s", r.scan_ops),
    );
    row(
        &format!("Size on disk after {n} records, allocated (apparent)"),
        &|r| {
            format!(
                "{:.1} MiB ({:.1} MiB)",
                r.size_alloc_bytes as f64 / 1048576.0,
                r.size_bytes as f64 / 1048576.0
            )
        },
    );

    if rounds > 1 {
        println!("\nSpread over the rounds (min to max):\n");
        println!("{header}\n{rule}");
        let spread = |label: &str, f: &dyn Fn(&Results) -> f64| {
            let mut s = format!("| {label} |");
            for rs in &per_engine {
                let v: Vec<f64> = rs.iter().map(f).collect();
                let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = v.iter().copied().fold(0.0, f64::max);
                s.push_str(&format!(" {lo:.0} to {hi:.0} |"));
            }
            println!("{s}");
        };
        spread("Durable commits/s, 1 writer", &|r| r.durable_1.ops);
        spread(
            &format!("Durable commits/s, {WRITERS} writers, own concurrency"),
            &|r| r.durable_n.ops,
        );
        spread(
            &format!("Durable commits/s, {WRITERS} writers, group commit"),
            &|r| r.durable_group.ops,
        );
        spread("Batched load, records/s", &|r| r.batch_load_rps);
        spread("Point lookups/s", &|r| r.lookup_ops);
        spread("ListObjectsV2 scans/s", &|r| r.scan_ops);
    }

    println!(
        "\nTotal bench time: {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if keep {
        eprintln!("kept {}", tmp.keep().display());
    }
    Ok(())
}
