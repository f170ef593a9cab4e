//! Placement of a new object: choosing `min_sites` active sites of allowed jurisdictions from
//! the registry, as every write does. Run with `cargo bench -p obhut-core --bench placement`.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use obhut_core::{SiteInfo, SiteState, place_or_degrade};
use std::hint::black_box;

fn registry(n: usize) -> Vec<SiteInfo> {
    (0..n)
        .map(|i| SiteInfo {
            id: format!("site-{i:03}"),
            jurisdiction: ["DE", "AT", "US", "FR"][i % 4].into(),
            location: String::new(),
            state: if i % 7 == 3 {
                SiteState::Draining
            } else {
                SiteState::Active
            },
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let allowed = vec!["DE".to_owned(), "AT".to_owned()];
    let mut g = c.benchmark_group("placement");
    for n in [2usize, 8, 64] {
        let sites = registry(n.max(4));
        g.bench_with_input(BenchmarkId::new("place 2 of", n), &sites, |b, sites| {
            b.iter(|| black_box(place_or_degrade(sites, &allowed, 2, false)));
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
