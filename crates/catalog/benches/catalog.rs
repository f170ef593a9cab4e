//! The catalog's hot paths on the SQLite engine: a durable object write (alone, and 16 at
//! once, which is what group commit is for), a lookup by key, and a listing page.
//!
//! Run with `cargo bench -p obhut-catalog --bench catalog`. The catalog file lives in a
//! temporary directory on the disk `TMPDIR` points at: write figures are bounded by that disk's
//! fsync.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use obhut_catalog::{
    Bucket, BucketKey, Catalog, Chunk, ListFrom, ObjectRecord, PutCondition, SqliteCatalog, Tenant,
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
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
