//! The catalog's hot paths on the SQLite engine: a durable object write (alone, and 16 at
//! once, which is what group commit is for), a lookup by key, a listing page, and listing the
//! versions of a versioned bucket (a page, and a walk over 100,000 versions).
//!
//! Run with `cargo bench -p obhut-catalog --bench catalog`. The catalog file lives in a
//! temporary directory on the disk `TMPDIR` points at: write figures are bounded by that disk's
//! fsync.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use obhut_catalog::{
    Bucket, BucketKey, Catalog, Chunk, ListFrom, ObjectRecord, PutCondition, SqliteCatalog, Tenant,
    Versioning, VersionsFrom,
};
use obhut_core::BlobId;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

fn bench_bucket() -> Bucket {
    Bucket {
        name: "bench".into(),
        tenant: "t".into(),
        created_ms: 1,
        versioning: Default::default(),
    }
}

fn object(key: String) -> ObjectRecord {
    ObjectRecord {
        bucket: "bench".into(),
        key,
        size: 4096,
        etag: "0123456789abcdef0123456789abcdef".into(),
        last_modified_ms: 1,
        envelope: vec![7; 120],
        meta: vec![9; 80],
        sites: vec!["de-fra".into(), "de-mgd".into()],
        chunks: vec![Chunk {
            blob: BlobId::random(),
            size: 4096,
            part: 1,
            crc32c: Some(1),
        }],
        version_id: None,
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let cat = Arc::new(SqliteCatalog::open(&dir.path().join("catalog.db")).expect("open"));
    rt.block_on(async {
        cat.create_tenant(&Tenant {
            name: "t".into(),
            jurisdictions: vec!["DE".into()],
            min_sites: 2,
            created_ms: 1,
        })
        .await
        .expect("tenant");
        cat.create_bucket(
            &bench_bucket(),
            &BucketKey {
                bucket: "bench".into(),
                version: 1,
                wrapped: vec![1; 60],
                kcv: vec![2; 8],
                created_ms: 1,
            },
        )
        .await
        .expect("bucket");
        for i in 0..10_000 {
            cat.put_object(
                &bench_bucket(),
                &object(format!("seed/{i:06}")),
                PutCondition::None,
            )
            .await
            .expect("seed");
        }
        // A versioned bucket: 20,000 keys of 5 versions each, written by 64 writers at once
        // (group commit), each writer's keys one version after the other.
        cat.create_bucket(
            &versions_bucket(),
            &BucketKey {
                bucket: "versions".into(),
                version: 1,
                wrapped: vec![1; 60],
                kcv: vec![2; 8],
                created_ms: 1,
            },
        )
        .await
        .expect("versioned bucket");
        let writers = (0..64u64).map(|w| {
            let cat = Arc::clone(&cat);
            tokio::spawn(async move {
                for k in (w..VERSIONED_KEYS).step_by(64) {
                    for v in 0..VERSIONS_PER_KEY {
                        let mut o = object(format!("v/{k:06}"));
                        o.bucket = "versions".into();
                        o.version_id = Some(format!("{k:016x}{v:016x}"));
                        cat.put_object(&versions_bucket(), &o, PutCondition::None)
                            .await
                            .expect("seed");
                    }
                }
            })
        });
        for w in writers {
            w.await.expect("join");
        }
    });
    let n = Arc::new(AtomicU64::new(0));

    let mut g = c.benchmark_group("catalog");
    g.throughput(Throughput::Elements(1));
    g.bench_function("put_object, one writer (durable)", |b| {
        b.iter(|| {
            let i = n.fetch_add(1, Ordering::Relaxed);
            rt.block_on(cat.put_object(
                &bench_bucket(),
                &object(format!("w/{i}")),
                PutCondition::None,
            ))
            .expect("put");
        });
    });
    g.throughput(Throughput::Elements(16));
    g.bench_function("put_object, 16 concurrent writers (durable)", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut tasks = Vec::new();
                for _ in 0..16 {
                    let cat = Arc::clone(&cat);
                    let i = n.fetch_add(1, Ordering::Relaxed);
                    tasks.push(tokio::spawn(async move {
                        cat.put_object(
                            &bench_bucket(),
                            &object(format!("w/{i}")),
                            PutCondition::None,
                        )
                        .await
                    }));
                }
                for t in tasks {
                    t.await.expect("join").expect("put");
                }
            });
        });
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("get_object", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i = (i + 7919) % 10_000;
            black_box(rt.block_on(cat.get_object("bench", &format!("seed/{i:06}")))).expect("get");
        });
    });
    g.throughput(Throughput::Elements(1000));
    g.bench_function("list_objects, page of 1000", |b| {
        b.iter(|| {
            black_box(rt.block_on(cat.list_objects(
                &bench_bucket(),
                "seed/",
                ListFrom::Start,
                1000,
            )))
            .expect("list");
        });
    });
    g.throughput(Throughput::Elements(1000));
    g.bench_function("list_object_versions, page of 1000", |b| {
        b.iter(|| {
            black_box(rt.block_on(cat.list_object_versions(
                &versions_bucket(),
                "v/",
                VersionsFrom::AfterKey("v/010000"),
                1000,
            )))
            .expect("list");
        });
    });
    g.throughput(Throughput::Elements(VERSIONED_KEYS * VERSIONS_PER_KEY));
    g.sample_size(10);
    g.bench_function("list_object_versions, all 100,000 in pages of 1000", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut pages =
                    obhut_catalog::VersionPages::new(cat.as_ref(), &versions_bucket(), 1000);
                let mut n = 0u64;
                while let Some(page) = pages.next_page().await.expect("page") {
                    n += page.len() as u64;
                }
                assert_eq!(n, VERSIONED_KEYS * VERSIONS_PER_KEY);
            });
        });
    });
    g.finish();
}

const VERSIONED_KEYS: u64 = 20_000;
const VERSIONS_PER_KEY: u64 = 5;

criterion_group!(benches, bench);
criterion_main!(benches);

/// The versioned bucket the version benchmarks write to and list.
fn versions_bucket() -> Bucket {
    Bucket {
        name: "versions".into(),
        tenant: "t".into(),
        created_ms: 1,
        versioning: Versioning::Enabled,
    }
}
