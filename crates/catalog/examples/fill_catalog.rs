//! Fills a catalog with synthetic object records through the catalog's public API (the
//! [`Catalog`] trait, never SQL), so that a gateway's requests can be measured against a large
//! catalog (`scripts/bench-catalog --big`). Benchmarks only: never run it on a catalog that
//! holds data anyone needs.
//!
//! The records exist only to make the catalog large. They point at no real blobs: each names
//! one chunk with a blob id derived from its key, on the sites of a template object, and its
//! envelope, sealed metadata and ETag are bytes of the template's lengths that open under no
//! key (they start with `obhut synthetic record`). They go into a bucket of their own, made
//! beforehand through S3 (so that the bucket and its key are real), which must not be listed
//! or read through S3: the gateway would report every record it touched as an integrity
//! failure, as it should.
//!
//! Writes are `put_object` calls, `--concurrency` at a time (the embedded catalog's group
//! commit and PostgreSQL's commits of concurrent transactions turn them into batches; on
//! PostgreSQL over as many connection pools as it takes to keep them all in flight, since a
//! pool holds 16 connections), each worker taking the
//! next range of `--batch` keys. Keys are `PREFIX` and a 10-digit index; a record's content
//! depends on its key alone, so writing a range again changes nothing (idempotent), and
//! `--from I` or `--resume` continues an interrupted fill. Memory is bounded: one record per
//! worker. Progress goes to stderr every few seconds.
//!
//! `--probe ROUNDS` (instead of filling) times the catalog's calls on a filled bucket directly
//! (no gateway):
//! `get_object` of keys spread over the bucket, and `list_objects` pages of 1,000 (the first,
//! one in the middle, and one under a prefix), and writes p50/p99 as JSON (`--json PATH`).
//!
//! Usage:
//!   fill_catalog --catalog PATH|postgres://USER@HOST:PORT/DB --bucket NAME --records N
//!                [--like BUCKET] [--prefix P] [--from I | --resume] [--concurrency C]
//!                [--batch B] [--probe ROUNDS] [--json PATH]
//!   --catalog      the embedded catalog's file (catalog.db in a data directory, with its
//!                  gateway stopped) or a PostgreSQL URL (no password in it: PGPASSWORD or
//!                  ~/.pgpass)
//!   --bucket       the bucket to fill (it must exist)
//!   --records      how many records the bucket gets (indexes 0 to N-1)
//!   --like         a bucket whose first object is the template (sites, sizes); without it,
//!                  typical sizes and the sites of the catalog's registry
//!   --prefix       key prefix (default `fill/`)
//!   --from I       start at index I (the lowest index not yet written, as progress says)
//!   --resume       find where an interrupted fill stopped (same --batch and --concurrency)
//!   --concurrency  writes in flight (default 32)
//!   --batch        keys per range a worker takes (default 1000)

use obhut_catalog::{
    Bucket, Catalog, CatalogError, Chunk, ListFrom, ObjectRecord, PgCatalog, PgConnectOptions,
    PutCondition, SqliteCatalog,
};
use obhut_core::BlobId;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// What every synthetic envelope, metadata and ETag starts with.
const MARK: &[u8] = b"obhut synthetic record\0";

struct Args {
    catalog: String,
    bucket: String,
    records: u64,
    like: Option<String>,
    prefix: String,
    from: u64,
    resume: bool,
    concurrency: usize,
    batch: u64,
    probe: usize,
    json: Option<PathBuf>,
}

fn usage() -> ! {
    let doc = include_str!("fill_catalog.rs");
    for line in doc.lines().take_while(|l| l.starts_with("//!")) {
        eprintln!("{}", line.trim_start_matches("//!").trim_start_matches(' '));
    }
    std::process::exit(2)
}

fn parse_args() -> Result<Args, Error> {
    let mut a = Args {
        catalog: String::new(),
        bucket: String::new(),
        records: 0,
        like: None,
        prefix: "fill/".into(),
        from: 0,
        resume: false,
        concurrency: 32,
        batch: 1000,
        probe: 0,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--catalog" => a.catalog = value()?,
            "--bucket" => a.bucket = value()?,
            "--records" => a.records = value()?.parse()?,
            "--like" => a.like = Some(value()?),
            "--prefix" => a.prefix = value()?,
            "--from" => a.from = value()?.parse()?,
            "--resume" => a.resume = true,
            "--concurrency" => a.concurrency = value()?.parse()?,
            "--batch" => a.batch = value()?.parse()?,
            "--probe" => a.probe = value()?.parse()?,
            "--json" => a.json = Some(PathBuf::from(value()?)),
            "-h" | "--help" => usage(),
            other => return Err(format!("unknown argument {other:?} (--help)").into()),
        }
    }
    if a.catalog.is_empty() || a.bucket.is_empty() {
        return Err("--catalog and --bucket are required (--help)".into());
    }
    if a.concurrency == 0 || a.batch == 0 {
        return Err("--concurrency and --batch must be at least 1".into());
    }
    Ok(a)
}

/// Connections of one [`PgCatalog`]'s pool.
const PG_POOL: usize = 16;

/// The catalog, opened `concurrency.div_ceil(PG_POOL)` times on PostgreSQL (once for the
/// embedded catalog, whose writes go through its one writer whatever the number).
async fn open(catalog: &str, concurrency: usize) -> Result<Vec<Arc<dyn Catalog>>, Error> {
    if catalog.starts_with("postgres://") || catalog.starts_with("postgresql://") {
        let options = PgConnectOptions::from_str(catalog)?.application_name("obhut-fill-catalog");
        let mut pools: Vec<Arc<dyn Catalog>> = Vec::new();
        for _ in 0..concurrency.div_ceil(PG_POOL).max(1) {
            pools.push(Arc::new(PgCatalog::connect(options.clone()).await?));
        }
        Ok(pools)
    } else {
        let path = PathBuf::from(catalog);
        if !path.is_file() {
            return Err(format!("{catalog} is not a catalog file").into());
        }
        Ok(vec![Arc::new(SqliteCatalog::open(&path)?)])
    }
}

/// The shape every synthetic record copies: field lengths, size and sites.
struct Template {
    size: u64,
    etag_len: usize,
    envelope_len: usize,
    meta_len: usize,
    sites: Vec<String>,
}

async fn template(catalog: &dyn Catalog, like: Option<&str>) -> Result<Template, Error> {
    if let Some(name) = like {
        let bucket = catalog
            .get_bucket(name)
            .await?
            .ok_or_else(|| format!("bucket {name:?} (--like) does not exist"))?;
        let first = catalog
            .list_objects(&bucket, "", ListFrom::Start, 1)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| format!("bucket {name:?} (--like) holds no object"))?;
        return Ok(Template {
            size: first.size,
            etag_len: first.etag.len(),
            envelope_len: first.envelope.len(),
            meta_len: first.meta.len(),
            sites: first.sites,
        });
    }
    let sites: Vec<String> = catalog
        .list_sites()
        .await?
        .into_iter()
        .map(|s| s.id)
        .take(2)
        .collect();
    Ok(Template {
        size: 4096,
        etag_len: 64,
        envelope_len: 280,
        meta_len: 90,
        sites,
    })
}

/// `len` bytes: [`MARK`], then bytes derived from `key` and `what` (as incompressible as the
/// ciphertext they stand in for).
fn filler(key: &str, what: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len.max(MARK.len()));
    out.extend_from_slice(MARK);
    let mut n = 0u32;
    while out.len() < len {
        let mut h = Sha256::new();
        h.update(what);
        h.update(key.as_bytes());
        h.update(n.to_be_bytes());
        out.extend_from_slice(&h.finalize());
        n += 1;
    }
    out.truncate(len.max(MARK.len()));
    out
}

fn key_of(prefix: &str, index: u64) -> String {
    format!("{prefix}{index:010}")
}

fn record(t: &Template, bucket: &str, key: String, now_ms: i64) -> Result<ObjectRecord, Error> {
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    let blob = BlobId::parse(&hex).ok_or("a blob id of 32 hex digits")?;
    let etag: String = filler(&key, b"etag", t.etag_len.max(MARK.len()))
        .iter()
        .map(|b| char::from(b'a' + b % 26))
        .collect();
    Ok(ObjectRecord {
        bucket: bucket.to_owned(),
        size: t.size,
        etag: format!("synthetic-{}", &etag[..etag.len().saturating_sub(10)]),
        last_modified_ms: now_ms,
        envelope: filler(&key, b"envelope", t.envelope_len),
        meta: filler(&key, b"meta", t.meta_len),
        sites: t.sites.clone(),
        chunks: vec![Chunk {
            blob,
            size: t.size,
            part: 1,
            crc32c: None,
        }],
        version_id: None,
        key,
    })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The first index of the range an interrupted fill (same batch and concurrency) must be
/// continued from. Workers take ranges in order and write each from its first key, so at the
/// interruption every range below some `c` was complete, at most `concurrency` ranges from `c`
/// on had been begun, and none beyond: a range whose first key exists and whose successor's
/// does not is below `c + concurrency`.
async fn resume_point(catalog: &dyn Catalog, a: &Args) -> Result<u64, Error> {
    let ranges = a.records.div_ceil(a.batch);
    let begun = |r: u64| {
        let key = key_of(&a.prefix, r * a.batch);
        async move {
            catalog
                .get_object(&a.bucket, &key)
                .await
                .map(|o| o.is_some())
        }
    };
    if ranges == 0 || !begun(0).await? {
        return Ok(0);
    }
    // begun(lo) holds; begun(hi) does not (hi = ranges: past the end).
    let (mut lo, mut hi) = (0u64, ranges);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if begun(mid).await? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let back = u64::try_from(a.concurrency).unwrap_or(u64::MAX);
    Ok((lo + 1).saturating_sub(back) * a.batch)
}

/// Which ranges are done, to say which index everything below has been written up to.
struct Done {
    below: u64,
    finished: BTreeSet<u64>,
}

impl Done {
    fn finish(&mut self, range: u64) {
        self.finished.insert(range);
        while self.finished.remove(&self.below) {
            self.below += 1;
        }
    }
}

async fn fill(pools: &[Arc<dyn Catalog>], bucket: Bucket, a: &Args) -> Result<(), Error> {
    let catalog = Arc::clone(pools.first().ok_or("no catalog")?);
    let t = Arc::new(template(catalog.as_ref(), a.like.as_deref()).await?);
    let from = if a.resume {
        let at = resume_point(catalog.as_ref(), a).await?;
        eprintln!("fill_catalog: resuming at index {at}");
        at
    } else {
        a.from
    };
    if from >= a.records {
        eprintln!("fill_catalog: nothing to write ({} records)", a.records);
        return Ok(());
    }
    let ranges = (a.records - from).div_ceil(a.batch);
    let next = Arc::new(AtomicU64::new(0));
    let written = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Mutex::new(Done {
        below: 0,
        finished: BTreeSet::new(),
    }));
    eprintln!(
        "fill_catalog: {} records into bucket {} ({}), indexes {from} to {}, {} at a time; each {} bytes on {:?}, envelope {} B, metadata {} B (no blob exists)",
        a.records - from,
        bucket.name,
        a.catalog.split('@').next_back().unwrap_or(""),
        a.records - 1,
        a.concurrency,
        t.size,
        t.sites,
        t.envelope_len,
        t.meta_len,
    );
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..a.concurrency {
        let catalog = Arc::clone(&pools[worker % pools.len()]);
        let (bucket, t) = (bucket.clone(), Arc::clone(&t));
        let (next, written, done) = (Arc::clone(&next), Arc::clone(&written), Arc::clone(&done));
        let (prefix, batch, records) = (a.prefix.clone(), a.batch, a.records);
        workers.spawn(async move {
            loop {
                let range = next.fetch_add(1, Ordering::Relaxed);
                if range >= ranges {
                    return Ok::<(), Error>(());
                }
                let first = from + range * batch;
                for index in first..(first + batch).min(records) {
                    let r = record(&t, &bucket.name, key_of(&prefix, index), now_ms())?;
                    catalog
                        .put_object(&bucket, &r, PutCondition::None)
                        .await
                        .map_err(|e| format!("record {index}: {e}"))?;
                    written.fetch_add(1, Ordering::Relaxed);
                }
                done.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .finish(range);
            }
        });
    }
    let below = |done: &Mutex<Done>| {
        (from + done.lock().unwrap_or_else(PoisonError::into_inner).below * a.batch).min(a.records)
    };
    let total = a.records - from;
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.tick().await;
    let mut last = (Instant::now(), 0u64);
    loop {
        tokio::select! {
            joined = workers.join_next() => match joined {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => {
                    workers.abort_all();
                    return Err(format!("{e}; every index below {} is written: continue with --from {} (or --resume)", below(&done), below(&done)).into());
                }
                Some(Err(e)) => return Err(e.into()),
            },
            _ = tick.tick() => {
                let n = written.load(Ordering::Relaxed);
                let secs = started.elapsed().as_secs_f64();
                let recent = (n - last.1) as f64 / last.0.elapsed().as_secs_f64().max(1e-9);
                last = (Instant::now(), n);
                let eta = (total - n) as f64 / recent.max(1.0);
                eprintln!(
                    "fill_catalog: {n} of {total} ({:.1} %), {:.0} records/s now, {:.0} on average, about {:.0} s left; every index below {} written",
                    n as f64 * 100.0 / total as f64,
                    recent,
                    n as f64 / secs,
                    eta,
                    below(&done),
                );
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "fill_catalog: {total} records in {secs:.1} s, {:.0} records/s",
        total as f64 / secs.max(1e-9)
    );
    println!(
        "{{\"records\":{total},\"seconds\":{secs:.3},\"records_per_s\":{:.1},\"concurrency\":{}}}",
        total as f64 / secs.max(1e-9),
        a.concurrency
    );
    Ok(())
}

/// p50 and p99 (nearest rank) of `samples` in milliseconds.
fn p50_p99(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
        samples[rank - 1]
    };
    if samples.is_empty() {
        (0.0, 0.0)
    } else {
        (at(0.50), at(0.99))
    }
}

async fn probe(catalog: &dyn Catalog, bucket: &Bucket, a: &Args) -> Result<(), Error> {
    let n = a.records;
    if n == 0 {
        return Err("--probe needs --records of the filled bucket".into());
    }
    let timed = |f: std::time::Instant| f.elapsed().as_secs_f64() * 1e3;
    let mut get = Vec::with_capacity(a.probe);
    let mut first = Vec::with_capacity(a.probe);
    let mut middle = Vec::with_capacity(a.probe);
    let mut prefixed = Vec::with_capacity(a.probe);
    let mid_key = key_of(&a.prefix, n / 2);
    // The prefix of a run of 1,000 keys (or fewer, in a small bucket) in the middle.
    let mid_prefix = {
        let k = key_of(&a.prefix, n / 2);
        k[..k.len() - 3].to_owned()
    };
    let mut seen = [0usize; 3];
    for round in 0..a.probe {
        // Keys spread over the whole bucket (a stride prime to most sizes).
        let index = (round as u64).wrapping_mul(7_919_993) % n;
        let key = key_of(&a.prefix, index);
        let t = Instant::now();
        let found = catalog.get_object(&bucket.name, &key).await?;
        get.push(timed(t));
        if found.is_none() {
            return Err(format!("{key} is not in the catalog: is the bucket filled?").into());
        }
        let t = Instant::now();
        seen[0] = catalog
            .list_objects(bucket, "", ListFrom::Start, 1000)
            .await?
            .len();
        first.push(timed(t));
        let t = Instant::now();
        seen[1] = catalog
            .list_objects(bucket, "", ListFrom::After(&mid_key), 1000)
            .await?
            .len();
        middle.push(timed(t));
        let t = Instant::now();
        seen[2] = catalog
            .list_objects(bucket, &mid_prefix, ListFrom::Start, 1000)
            .await?
            .len();
        prefixed.push(timed(t));
    }
    let mut parts = Vec::new();
    for (name, samples, entries) in [
        ("get_object", get, 1),
        ("list_first_page", first, seen[0]),
        ("list_middle_page", middle, seen[1]),
        ("list_prefix", prefixed, seen[2]),
    ] {
        let (p50, p99) = p50_p99(samples);
        eprintln!(
            "fill_catalog probe: {name}: p50 {p50:.3} ms, p99 {p99:.3} ms ({entries} entries, {} rounds)",
            a.probe
        );
        parts.push(format!(
            "\"{name}\":{{\"p50_ms\":{p50:.4},\"p99_ms\":{p99:.4},\"entries\":{entries}}}"
        ));
    }
    let json = format!(
        "{{\"records\":{n},\"rounds\":{},\"middle_prefix\":{:?},{}}}\n",
        a.probe,
        mid_prefix,
        parts.join(",")
    );
    match &a.json {
        Some(path) => std::fs::write(path, json)?,
        None => print!("{json}"),
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("fill_catalog: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Error> {
    let a = parse_args()?;
    let pools = open(&a.catalog, if a.probe > 0 { 1 } else { a.concurrency }).await?;
    let catalog = Arc::clone(pools.first().ok_or("no catalog")?);
    let bucket = catalog.get_bucket(&a.bucket).await?.ok_or_else(|| {
        CatalogError::NotFound {
            kind: "bucket",
            name: a.bucket.clone(),
        }
        .to_string()
            + " (create it through S3 first)"
    })?;
    if a.records > 0 && a.probe == 0 {
        fill(&pools, bucket.clone(), &a).await?;
    }
    if a.probe > 0 {
        probe(catalog.as_ref(), &bucket, &a).await?;
    }
    Ok(())
}
