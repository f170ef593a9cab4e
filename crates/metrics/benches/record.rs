//! What recording one S3 request costs the request path: classifying it, counting it, observing
//! its latency, and one site read's latency. Run with `cargo bench -p obhut-metrics`.

use criterion::{Criterion, criterion_group, criterion_main};
use obhut_metrics::S3Op;
use std::hint::black_box;
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let m = obhut_metrics::get();
    let site = m.site("de-fra");
    let mut g = c.benchmark_group("metrics");
    g.bench_function("classify GetObject", |b| {
        b.iter(|| {
            black_box(S3Op::classify(
                black_box("GET"),
                black_box("/bucket/some/object/key"),
                black_box(None),
                false,
            ))
        });
    });
    g.bench_function("record one S3 request", |b| {
        b.iter(|| {
            m.s3_request(
                black_box(S3Op::GetObject),
                black_box(200),
                black_box(Duration::from_micros(420)),
                0,
                black_box(4096),
            );
        });
    });
    g.bench_function("record one site read", |b| {
        b.iter(|| site.read_done(black_box(Duration::from_micros(80))));
    });
    g.bench_function("request id", |b| b.iter(|| black_box(m.next_request_id())));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
