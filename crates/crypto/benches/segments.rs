//! Throughput of the blob format on one core: sealing and opening single segments of each
//! candidate size, the streaming encryptor the gateway's write path uses, and `memcpy` of the
//! same sizes as the baseline every figure is compared with. docs/benchmarks.md holds the
//! results and the choice of segment size they support.
//!
//! Run with `cargo bench -p obhut-crypto --bench segments`; the whole run takes about a minute
//! and a half. Everything runs on the calling thread, so each figure is per core.

use criterion::{
    BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use obhut_crypto::{
    BlobHeader, Key, SegmentDecryptor, SegmentEncryptor, StreamEncryptor, TAG_LEN, blob_len,
};
use std::hint::black_box;
use std::time::Duration;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// The segment sizes under consideration (the format allows 4 KiB to 16 MiB).
const SEGMENT_SIZES: [usize; 4] = [16 * KIB, 64 * KIB, 256 * KIB, MIB];
/// The object the streaming benchmark encrypts, and the pieces it arrives in.
const OBJECT_LEN: usize = 16 * MIB;
const PIECE_LEN: usize = MIB;

/// A blob context shaped like the gateway's: label, 16-byte version id, part number.
const CONTEXT: &[u8] =
    b"obhut blob v1\0\x01\x23\x45\x67\x89\xab\xcd\xef\x01\x23\x45\x67\x89\xab\xcd\xef\0\0\0\x01";

fn label(len: usize) -> String {
    if len >= MIB {
        format!("{}MiB", len / MIB)
    } else {
        format!("{}KiB", len / KIB)
    }
}

fn as_u32(len: usize) -> u32 {
    u32::try_from(len).expect("segment sizes fit u32")
}

fn sample(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from(i * 31 % 251).expect("below 251"))
        .collect()
}

fn key() -> Key {
    Key::random().expect("the system RNG works")
}

fn header(segment_size: usize) -> BlobHeader {
    BlobHeader::random(as_u32(segment_size)).expect("a valid segment size")
}

/// `SegmentEncryptor::seal` of one full segment, in place on a buffer reused across iterations
/// (the previous ciphertext is sealed again: the bytes' values do not change the work).
fn seal(c: &mut Criterion) {
    let mut g = c.benchmark_group("seal");
    for size in SEGMENT_SIZES {
        g.throughput(Throughput::Bytes(size as u64));
        let mut enc = SegmentEncryptor::new(&key(), header(size), CONTEXT);
        let mut buf = Vec::with_capacity(size + TAG_LEN);
        buf.extend_from_slice(&sample(size));
        g.bench_function(BenchmarkId::from_parameter(label(size)), |b| {
            b.iter(|| {
                buf.truncate(size);
                enc.seal(black_box(&mut buf), false).expect("seal");
            });
        });
    }
    g.finish();
}

/// The fixed cost of one segment, whatever its size: sealing an empty segment (nonce, GHASH of
/// the 50 bytes of associated data, tag).
fn seal_empty(c: &mut Criterion) {
    let mut g = c.benchmark_group("seal_fixed_cost");
    let mut enc = SegmentEncryptor::new(&key(), header(64 * KIB), CONTEXT);
    let mut buf = Vec::with_capacity(TAG_LEN);
    g.bench_function("empty_segment", |b| {
        b.iter(|| {
            buf.clear();
            enc.seal(black_box(&mut buf), false).expect("seal");
        });
    });
    g.finish();
}

/// `SegmentDecryptor::open` (authenticate and decrypt in place) of one full segment. Each
/// iteration needs a fresh copy of the sealed segment; making it is not timed.
fn open(c: &mut Criterion) {
    let mut g = c.benchmark_group("open");
    for size in SEGMENT_SIZES {
        g.throughput(Throughput::Bytes(size as u64));
        let k = key();
        let h = header(size);
        let mut sealed = sample(size);
        SegmentEncryptor::new(&k, h, CONTEXT)
            .seal(&mut sealed, true)
            .expect("seal");
        let dec = SegmentDecryptor::new(&k, h, CONTEXT, size as u64);
        g.bench_function(BenchmarkId::from_parameter(label(size)), |b| {
            b.iter_batched_ref(
                || sealed.clone(),
                |buf| {
                    black_box(dec.open(0, buf.as_mut_slice()).expect("open"));
                },
                BatchSize::LargeInput,
            );
        });
    }
    g.finish();
}

/// The gateway's write path without the network: a 16 MiB object pushed in 1 MiB pieces
/// through a new `StreamEncryptor` (key schedule included), into a reused output buffer.
fn stream(c: &mut Criterion) {
    let mut g = c.benchmark_group("stream_16MiB_in_1MiB_pieces");
    // A few milliseconds per iteration: equal-sized samples fit the measurement time.
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Bytes(OBJECT_LEN as u64));
    let data = sample(OBJECT_LEN);
    let k = key();
    for size in SEGMENT_SIZES {
        let cap = usize::try_from(blob_len(OBJECT_LEN as u64, as_u32(size))).expect("fits");
        let mut out = Vec::with_capacity(cap);
        g.bench_function(BenchmarkId::new("segment", label(size)), |b| {
            b.iter(|| {
                out.clear();
                let mut enc = StreamEncryptor::new(&k, header(size), CONTEXT);
                out.extend_from_slice(&enc.header_bytes());
                for piece in data.chunks(PIECE_LEN) {
                    enc.push(black_box(piece), &mut out).expect("push");
                }
                enc.finish(&mut out).expect("finish");
                black_box(&out);
            });
        });
    }
    g.finish();
}

/// The baseline: `copy_from_slice` between two preallocated buffers of each size.
fn memcpy(c: &mut Criterion) {
    let mut g = c.benchmark_group("memcpy");
    for size in SEGMENT_SIZES.into_iter().chain([OBJECT_LEN]) {
        g.throughput(Throughput::Bytes(size as u64));
        let src = sample(size);
        let mut dst = vec![0u8; size];
        g.bench_function(BenchmarkId::from_parameter(label(size)), |b| {
            b.iter(|| {
                dst.copy_from_slice(black_box(&src));
                black_box(&dst);
            });
        });
    }
    g.finish();
}

fn config() -> Criterion {
    // 18 benchmarks at about 4.5 s each keep the whole run near a minute and a half.
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = seal, seal_empty, open, stream, memcpy
}
criterion_main!(benches);
