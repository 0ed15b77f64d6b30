//! Writer throughput for large batches, against plain memcpy in the same run.
//!
//! - `publish/memcpy/*`: `copy_from_slice` into a pre-faulted buffer of the
//!   same size: the bandwidth one copy can reach.
//! - `publish/ring/*`: `RingWriter::publish` of that many bytes (claim, one
//!   copy into the slot, commit).
//! - `publish/arrow_f64/*`: `Writer::write` of a one-column `f64` batch of that
//!   size (IPC encode without copying, one copy into the slot, commit).
//! - `publish/arrow_bars/*`: the same with the 7-column bar schema (size/64 rows).
//!
//! - `write/view_symbol_1M` vs `write/utf8_symbol_1M`: `Writer::write` of a
//!   1M-row bar batch into a ring that stores `symbol` as `Utf8View` (the
//!   default string layout), with the symbol column already `Utf8View` (the
//!   fast path) or plain `Utf8` (converted to views on write, then encoded).
//!
//! Every ring is reader-less with `OverwriteOldest`, so the writer never
//! blocks; it is mapped with `MAP_POPULATE`, so its buffers are pre-faulted
//! like the memcpy destination. `publish_small/*` gives the per-call cost of
//! a tiny publish with nobody waiting (no syscall).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringfeed_arrow::{ohlcv_schema, OnFull, RingOptions, Writer};
use ringfeed_benches::{
    arena_name, bar_batch, bar_batch_utf8, bytes_label, f64_batch, f64_schema, quick, times,
};
use ringfeed_shm::RingWriter;

const SIZES: [usize; 3] = [64 << 10, 4 << 20, 64 << 20];

/// A small reader-less ring: D = 2, M = D + R·P + 1 = 4 buffers.
fn ring_opts(slot_bytes: usize) -> RingOptions {
    RingOptions {
        slots: 2,
        slot_bytes: slot_bytes as u64 + (64 << 10),
        max_readers: 1,
        leases_per_reader: 1,
        buffers: None,
        on_full: OnFull::OverwriteOldest,
        force: true,
        ..RingOptions::default()
    }
}

fn bench_publish(c: &mut Criterion) {
    let (warm_up, measure) = times();
    let mut group = c.benchmark_group("publish");
    group.warm_up_time(warm_up).measurement_time(measure);
    for size in SIZES {
        let label = bytes_label(size);
        group.throughput(Throughput::Bytes(size as u64));
        group.sample_size(if size >= 64 << 20 || quick() { 20 } else { 50 });

        let src = vec![0x5au8; size];
        let mut dst = vec![0u8; size];
        dst.fill(1); // pre-fault every page
        group.bench_function(BenchmarkId::new("memcpy", &label), |b| {
            b.iter(|| {
                dst.copy_from_slice(black_box(&src));
                black_box(dst.as_ptr());
            })
        });
        drop(dst);

        let name = arena_name(&format!("publish-ring-{size}"));
        let mut ring =
            RingWriter::create(&name, &ring_opts(size).ring(), b"bench").expect("create ring");
        group.bench_function(BenchmarkId::new("ring", &label), |b| {
            b.iter(|| ring.publish(black_box(&src), 0, 0).expect("publish"))
        });
        drop(ring);
        drop(src);

        let batch = f64_batch(size / 8);
        let name = arena_name(&format!("publish-f64-{size}"));
        let mut w = Writer::create(&name, &f64_schema(), ring_opts(size)).expect("create ring");
        group.bench_function(BenchmarkId::new("arrow_f64", &label), |b| {
            b.iter(|| w.write(black_box(&batch)).expect("write"))
        });
        drop(w);
        drop(batch);

        let batch = bar_batch(size / 64);
        let name = arena_name(&format!("publish-bars-{size}"));
        let mut w = Writer::create(&name, &ohlcv_schema(), ring_opts(size)).expect("create ring");
        group.bench_function(BenchmarkId::new("arrow_bars", &label), |b| {
            b.iter(|| w.write(black_box(&batch)).expect("write"))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("publish_small");
    group.warm_up_time(warm_up).measurement_time(measure);
    let payload = [7u8; 64];
    let name = arena_name("publish-small-ring");
    let mut ring =
        RingWriter::create(&name, &ring_opts(4096).ring(), b"bench").expect("create ring");
    group.bench_function(BenchmarkId::new("ring", "64B"), |b| {
        b.iter(|| ring.publish(black_box(&payload), 1, 0).expect("publish"))
    });
    drop(ring);
    let batch = bar_batch(1);
    let name = arena_name("publish-small-bars");
    let mut w = Writer::create(&name, &ohlcv_schema(), ring_opts(4096)).expect("create ring");
    group.bench_function(BenchmarkId::new("arrow_bars", "1_row"), |b| {
        b.iter(|| w.write(black_box(&batch)).expect("write"))
    });
    group.finish();
}

/// The write-side cost of storing strings as views when a batch brings `Utf8`.
fn bench_write_strings(c: &mut Criterion) {
    let (warm_up, measure) = times();
    let mut group = c.benchmark_group("write");
    group
        .warm_up_time(warm_up)
        .measurement_time(measure)
        .sample_size(if quick() { 10 } else { 20 });
    let rows = 1_000_000;
    let name = arena_name("write-symbol");
    let mut w = Writer::create(&name, &ohlcv_schema(), ring_opts(rows * 64)).expect("create ring");
    let view = bar_batch(rows);
    group.bench_function("view_symbol_1M", |b| {
        b.iter(|| w.write(black_box(&view)).expect("write"))
    });
    let utf8 = bar_batch_utf8(rows);
    group.bench_function("utf8_symbol_1M", |b| {
        b.iter(|| w.write(black_box(&utf8)).expect("write"))
    });
    group.finish();
}

/// What the layout-2.1 statistics cost a reader, and what `ringfeed top` costs
/// per arena per refresh (issue 15).
///
/// - `lease/publish_read_drop/64B`: publish 64 B, `try_read`, drop the lease:
///   every read is a 0 -> 1 lease transition, so it stamps `leased_since_ns`
///   (one vDSO clock read and a store).
/// - `lease/publish_read_drop_holding/64B`: the same while the reader holds
///   another lease, so every read is 1 -> 2 and stamps nothing: the baseline.
/// - `lease/clock_monotonic`: `Instant::now()`, the same `CLOCK_MONOTONIC`
///   vDSO read the stamp makes.
/// - `lease/inspect`: `ringfeed_shm::inspect` of that ring (one reader),
///   what `ringfeed top` does per arena per refresh.
fn bench_lease(c: &mut Criterion) {
    let (warm_up, measure) = times();
    let mut group = c.benchmark_group("lease");
    group.warm_up_time(warm_up).measurement_time(measure);
    let name = arena_name("lease-stamp");
    let opts = ringfeed_shm::RingOptions {
        slots: 8,
        slot_bytes: 4096,
        max_readers: 1,
        leases_per_reader: 2,
        force: true,
        ..Default::default()
    };
    let mut ring = RingWriter::create(&name, &opts, b"bench").expect("create ring");
    let mut reader =
        ringfeed_shm::RingReader::open(&name, ringfeed_shm::StartAt::Next).expect("open reader");
    let payload = [7u8; 64];
    let cycle = |ring: &mut RingWriter, reader: &mut ringfeed_shm::RingReader| {
        ring.publish(black_box(&payload), 1, 0).expect("publish");
        let lease = reader.try_read().expect("read").expect("a batch");
        black_box(lease.bytes().len());
    };
    group.bench_function(BenchmarkId::new("publish_read_drop", "64B"), |b| {
        b.iter(|| cycle(&mut ring, &mut reader))
    });
    ring.publish(&payload, 1, 0).expect("publish");
    let held = reader.try_read().expect("read").expect("a batch");
    group.bench_function(BenchmarkId::new("publish_read_drop_holding", "64B"), |b| {
        b.iter(|| cycle(&mut ring, &mut reader))
    });
    group.bench_function("clock_monotonic", |b| {
        b.iter(|| black_box(std::time::Instant::now()))
    });
    group.bench_function("inspect", |b| {
        b.iter(|| ringfeed_shm::inspect(black_box(&name)).expect("inspect"))
    });
    drop(held);
    group.finish();
}

criterion_group!(benches, bench_publish, bench_write_strings, bench_lease);
criterion_main!(benches);
