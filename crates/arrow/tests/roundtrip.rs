//! Arrow batches through the ring: every type we care about, zero-copy,
//! lifetimes, schema checks, oversize batches, corrupt slots.

use arrow_array::builder::{Int64Builder, ListBuilder, StringDictionaryBuilder};
use arrow_array::types::Int32Type;
use arrow_array::*;
use arrow_buffer::Buffer;
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use proptest::prelude::*;
use ringfeed_arrow::{
    codec, ohlcv_schema, CreateError, ErrorKind, OnFull, ReadError, Reader, RingOptions, StartAt,
    StringLayout, WriteError, Writer,
};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

static COUNTER: AtomicU32 = AtomicU32::new(0);
fn unique(p: &str) -> String {
    format!(
        "{p}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn bars(n: usize, base: f64) -> RecordBatch {
    let ts: Vec<i64> = (0..n as i64)
        .map(|i| 1_600_000_000_000_000_000 + i * 60_000_000_000)
        .collect();
    let sym: Vec<String> = (0..n).map(|i| format!("SYM{}", i % 3)).collect();
    let f = |k: f64| {
        Arc::new(Float64Array::from_iter_values(
            (0..n).map(|i| base + i as f64 + k),
        )) as ArrayRef
    };
    RecordBatch::try_new(
        Arc::new(ohlcv_schema()),
        vec![
            Arc::new(TimestampNanosecondArray::from(ts).with_timezone("UTC")),
            Arc::new(StringViewArray::from_iter_values(sym)),
            f(0.0),
            f(1.0),
            f(-1.0),
            f(0.5),
            f(100.0),
        ],
    )
    .unwrap()
}

fn all_types() -> RecordBatch {
    let mut dict = StringDictionaryBuilder::<Int32Type>::new();
    for s in ["BTC", "ETH", "BTC", "SOL"] {
        dict.append_value(s);
    }
    let mut list = ListBuilder::new(Int64Builder::new());
    list.append_value([Some(1), None, Some(3)]);
    list.append_null();
    list.append_value([]);
    list.append_value([Some(9)]);
    let strukt = StructArray::from(vec![
        (
            Arc::new(Field::new("a", DataType::Int32, true)),
            Arc::new(Int32Array::from(vec![Some(1), None, Some(3), Some(4)])) as ArrayRef,
        ),
        (
            Arc::new(Field::new("b", DataType::Utf8, true)),
            Arc::new(StringArray::from(vec![
                Some("x"),
                Some("y"),
                None,
                Some("a long string beyond twelve bytes"),
            ])) as ArrayRef,
        ),
    ]);
    let cols: Vec<(&str, ArrayRef)> = vec![
        (
            "ts",
            Arc::new(TimestampNanosecondArray::from(vec![1, 2, 3, 4]).with_timezone("UTC")),
        ),
        (
            "ts_ms",
            Arc::new(TimestampMillisecondArray::from(vec![
                Some(1),
                None,
                Some(3),
                Some(4),
            ])),
        ),
        (
            "f64",
            Arc::new(Float64Array::from(vec![
                Some(1.5),
                None,
                Some(f64::NAN),
                Some(-0.0),
            ])),
        ),
        (
            "f32",
            Arc::new(Float32Array::from(vec![1.0, 2.0, 3.0, 4.0])),
        ),
        (
            "i64",
            Arc::new(Int64Array::from(vec![i64::MIN, 0, 1, i64::MAX])),
        ),
        ("u8", Arc::new(UInt8Array::from(vec![0, 1, 254, 255]))),
        (
            "bool",
            Arc::new(BooleanArray::from(vec![
                Some(true),
                None,
                Some(false),
                Some(true),
            ])),
        ),
        (
            "utf8",
            Arc::new(StringArray::from(vec![
                Some("a"),
                None,
                Some(""),
                Some("ünïcode"),
            ])),
        ),
        (
            "large_utf8",
            Arc::new(LargeStringArray::from(vec!["a", "bb", "ccc", "dddd"])),
        ),
        (
            "utf8_view",
            Arc::new(StringViewArray::from(vec![
                Some("short"),
                None,
                Some("a string longer than twelve bytes"),
                Some(""),
            ])),
        ),
        (
            "binary",
            Arc::new(BinaryArray::from(vec![
                &b"\x00\x01"[..],
                b"",
                b"xyz",
                b"\xff",
            ])),
        ),
        (
            "decimal",
            Arc::new(
                Decimal128Array::from(vec![1, -2, 3, 4])
                    .with_precision_and_scale(20, 4)
                    .unwrap(),
            ),
        ),
        ("date", Arc::new(Date32Array::from(vec![0, 1, 19000, -1]))),
        ("dict", Arc::new(dict.finish())),
        ("list", Arc::new(list.finish())),
        ("struct", Arc::new(strukt)),
        ("nulls", Arc::new(NullArray::new(4))),
    ];
    RecordBatch::try_from_iter(cols).unwrap()
}

/// Rings that keep every column's layout as given, so batches come back
/// exactly as written (the default stores strings as views).
fn as_given() -> RingOptions {
    RingOptions {
        strings: StringLayout::AsGiven,
        ..RingOptions::default()
    }
}

fn roundtrip(batch: &RecordBatch) -> ringfeed_arrow::Batch {
    let name = unique("rt");
    let mut w = Writer::create(&name, &batch.schema(), as_given()).unwrap();
    let mut r = Reader::open(&name, StartAt::Oldest).unwrap();
    assert_eq!(r.schema().as_ref(), batch.schema().as_ref());
    w.write(batch).unwrap();
    let got = r.read(Duration::from_secs(5)).unwrap().expect("a batch");
    assert_eq!(got.record_batch(), batch);
    got
}

#[test]
fn bars_round_trip_zero_copy() {
    let b = bars(1000, 10.0);
    let got = roundtrip(&b);
    assert!(got.is_zero_copy(), "every buffer must point into the arena");
    let close = got
        .column(5)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    let p = close.values().inner().as_ptr() as usize;
    assert!(got.arena_range().contains(&p));
}

#[test]
fn every_supported_type_round_trips_zero_copy() {
    let b = all_types();
    let got = roundtrip(&b);
    assert!(got.is_zero_copy());
}

#[test]
fn sliced_input_round_trips() {
    let b = all_types().slice(1, 2);
    let got = roundtrip(&b);
    assert_eq!(got.num_rows(), 2);
}

#[test]
fn dictionary_batches_are_self_contained_per_slot() {
    // A reader that joins late must decode a slot without earlier slots' dictionaries.
    let name = unique("dict");
    let b = all_types();
    let mut w = Writer::create(&name, &b.schema(), as_given()).unwrap();
    for _ in 0..3 {
        w.write(&b).unwrap();
    }
    let mut r = Reader::open(&name, StartAt::Latest).unwrap();
    let got = r.read(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(got.seq(), 3);
    assert_eq!(got.record_batch(), &b);
}

#[test]
fn batch_outlives_reader_and_writer_and_is_never_rewritten() {
    let name = unique("life");
    let opts = RingOptions {
        slots: 2,
        ..Default::default()
    };
    let mut w = Writer::create(&name, &ohlcv_schema(), opts).unwrap();
    let mut r = Reader::open(&name, StartAt::Oldest).unwrap();
    w.write(&bars(100, 1.0)).unwrap();
    let held = r.read(Duration::from_secs(5)).unwrap().unwrap();
    let col: ArrayRef = held.column(5).clone();
    drop(held);
    drop(r);
    for i in 0..50 {
        w.write(&bars(100, 1000.0 + i as f64)).unwrap();
    }
    w.close();
    let close = col.as_any().downcast_ref::<Float64Array>().unwrap();
    assert_eq!(close.value(0), 1.5);
    assert_eq!(close.value(99), 100.5);
}

#[test]
fn wrong_schema_is_refused_with_the_difference() {
    let name = unique("schema");
    let mut w = Writer::create(&name, &ohlcv_schema(), RingOptions::default()).unwrap();
    let other = RecordBatch::try_from_iter([(
        "close",
        Arc::new(Float64Array::from(vec![1.0])) as ArrayRef,
    )])
    .unwrap();
    let err = w.write(&other).unwrap_err();
    assert!(matches!(err, WriteError::SchemaMismatch { .. }), "{err}");
    assert!(err.to_string().contains("7 columns expected"), "{err}");
    // Same names, a type that is not another layout of the ring's (a
    // `Utf8` symbol would be converted to the ring's `Utf8View`).
    let mut fields: Vec<Field> = ohlcv_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields[1] = Field::new("symbol", DataType::Int64, false);
    let b = bars(3, 0.0);
    let mut cols = b.columns().to_vec();
    cols[1] = Arc::new(Int64Array::from(vec![1, 2, 3]));
    let wrong = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
    let err = w.write(&wrong).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::SchemaMismatch);
    let err = err.to_string();
    assert!(
        err.contains("\"symbol\"") && err.contains("Utf8View"),
        "{err}"
    );
    assert_eq!(w.ring().next_seq(), 1, "nothing published");
}

#[test]
fn oversize_batch_is_refused_never_truncated() {
    let name = unique("big");
    let opts = RingOptions {
        slot_bytes: 64 << 10,
        ..Default::default()
    };
    let mut w = Writer::create(&name, &ohlcv_schema(), opts).unwrap();
    let err = w.write(&bars(10_000, 0.0)).unwrap_err();
    match &err {
        WriteError::BatchTooLarge { size, slot_bytes } => {
            assert_eq!(*slot_bytes, 64 << 10);
            assert!(*size > 64 << 10);
        }
        other => panic!("expected BatchTooLarge, got {other}"),
    }
    assert!(err.to_string().contains("slot_bytes"));
    w.write(&bars(10, 0.0)).unwrap();
}

#[test]
fn block_ring_is_lossless_for_a_slow_reader() {
    let name = unique("blk");
    let opts = RingOptions {
        slots: 2,
        on_full: OnFull::Block(Duration::from_secs(30)),
        ..Default::default()
    };
    let mut w = Writer::create(&name, &ohlcv_schema(), opts).unwrap();
    let r = Reader::open(&name, StartAt::Oldest).unwrap();
    let t = std::thread::spawn(move || {
        let mut n = 0u64;
        for b in r {
            let b = b.unwrap();
            n += 1;
            assert_eq!(b.seq(), n);
            std::thread::sleep(Duration::from_micros(200));
        }
        n
    });
    for i in 0..40 {
        w.write(&bars(10, i as f64)).unwrap();
    }
    w.close();
    assert_eq!(t.join().unwrap(), 40);
}

#[test]
fn lagging_reader_is_told_and_continues() {
    let name = unique("lag");
    let opts = RingOptions {
        slots: 4,
        ..Default::default()
    };
    let mut w = Writer::create(&name, &ohlcv_schema(), opts).unwrap();
    let mut r = Reader::open(&name, StartAt::Oldest).unwrap();
    for i in 0..10 {
        w.write(&bars(5, i as f64)).unwrap();
    }
    assert_eq!(r.try_read().unwrap_err(), ReadError::Lagged { missed: 6 });
    assert_eq!(r.try_read().unwrap().unwrap().seq(), 7);
}

#[test]
fn missing_arena_and_bad_name_give_clear_errors() {
    let err = Reader::open(&unique("nope"), StartAt::Latest)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("no arena named") && err.contains("ringfeed inspect"),
        "{err}"
    );
    let err = Reader::open("../etc/passwd", StartAt::Latest)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("invalid arena name"), "{err}");
}

#[test]
fn foreign_file_is_rejected_not_mapped() {
    let name = unique("foreign");
    let path = ringfeed_shm::arena_path(&name);
    std::fs::write(&path, vec![0x41u8; 8192]).unwrap();
    let err = Reader::open(&name, StartAt::Latest)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not a ringfeed arena"), "{err}");
    std::fs::write(&path, b"short").unwrap();
    let err = Reader::open(&name, StartAt::Latest)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("truncated"), "{err}");
    std::fs::remove_file(path).unwrap();
}

#[test]
fn tampered_header_fields_are_rejected() {
    use std::os::unix::fs::FileExt;
    let name = unique("tamper");
    let _w = Writer::create(&name, &ohlcv_schema(), RingOptions::default()).unwrap();
    let path = ringfeed_shm::arena_path(&name);
    // The arena file is 0400 once READY: its owner lifts that to tamper.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut orig = [0u8; 168];
    f.read_exact_at(&mut orig, 0).unwrap();
    // (offset, new bytes, expected message fragment)
    let cases: &[(u64, &[u8], &str)] = &[
        (8, &3u16.to_le_bytes(), "layout version 3"),
        (12, &0x0403_0201u32.to_le_bytes(), "other byte order"),
        (64, &9u32.to_le_bytes(), "CRC"),
        (0, b"X", "bad magic"),
    ];
    for (off, bytes, want) in cases {
        f.write_all_at(bytes, *off).unwrap();
        let err = Reader::open(&name, StartAt::Latest)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(want), "patch at {off}: {err}");
        f.write_all_at(&orig, 0).unwrap();
    }
    Reader::open(&name, StartAt::Latest).unwrap();
}

fn valid_slot() -> Vec<u8> {
    let b = all_types();
    let mut enc = codec::SlotEncoder::new(&b.schema()).unwrap();
    let bufs = enc.encode(&b).unwrap();
    let mut v = vec![0u8; codec::encoded_len(&bufs)];
    codec::copy_into(&bufs, &mut v);
    v
}

fn aligned(bytes: &[u8]) -> Buffer {
    // Buffer::from copies into a 64-byte aligned allocation.
    Buffer::from(bytes.to_vec())
}

#[test]
fn codec_round_trip_and_frames() {
    let slot = valid_slot();
    let frames = codec::frames(&slot).unwrap();
    assert!(frames.len() >= 2, "schema + dictionary + record batch");
    let schema = Arc::new(all_types().schema().as_ref().clone());
    // SAFETY: the slot was encoded from `all_types()`, whose arrays arrow's
    // safe constructors validated.
    let got = unsafe { codec::decode(&schema, &aligned(&slot)) }.unwrap();
    assert_eq!(got, all_types());
    assert_eq!(
        codec::decode_validated(&schema, &aligned(&slot)).unwrap(),
        all_types()
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Corrupt slots give errors, never a panic (decode swallows nothing
    /// silently: a clean decode of a mutated slot is allowed only if it still
    /// passes every structural check).
    #[test]
    fn corrupt_slots_never_panic(mutations in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
        let mut slot = valid_slot();
        // Only mutate the metadata and frame headers: flipping body bytes (values)
        // is within the trust model and is not structural.
        let meta_end: Vec<(usize, usize)> = codec::frames(&slot).unwrap().iter().map(|f| (f.offset, f.offset + f.meta_len)).collect();
        for (idx, val) in mutations {
            let (a, b) = meta_end[idx.index(meta_end.len())];
            let i = a + idx.index(b - a);
            slot[i] = val;
        }
        let schema = Arc::new(all_types().schema().as_ref().clone());
        let _ = codec::decode_validated(&schema, &aligned(&slot));
        let n = cut.index(slot.len());
        let _ = codec::decode_validated(&schema, &aligned(&slot[..n]));
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let schema = Arc::new(ohlcv_schema());
        let _ = codec::decode_validated(&schema, &aligned(&bytes));
        let _ = codec::decode_schema(&bytes);
    }

    #[test]
    fn random_headers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 168)) {
        if let Some(h) = ringfeed_shm::layout::Header::from_bytes(&bytes) {
            let _ = ringfeed_shm::validate_header(&h, std::path::Path::new("fuzz"));
        }
    }
}

#[test]
fn timestamps_keep_their_unit_and_zone() {
    let b = bars(2, 0.0);
    let got = roundtrip(&b);
    assert_eq!(
        got.schema().field(0).data_type(),
        &DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
    );
}

#[test]
fn another_users_arena_or_no_permission_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let name = unique("perm");
    let _w = Writer::create(&name, &ohlcv_schema(), RingOptions::default()).unwrap();
    let path = ringfeed_shm::arena_path(&name);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o400,
        "arenas are private to their owner, and read-only once READY"
    );
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc_geteuid() } == 0 {
        // root: hand the file to `nobody` and check the ownership guard.
        let c = std::process::Command::new("chown")
            .arg("65534")
            .arg(&path)
            .status()
            .unwrap();
        assert!(c.success());
        let err = Reader::open(&name, StartAt::Latest)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("belongs to uid 65534"), "{err}");
        let opts = ringfeed_arrow::ReaderOptions {
            allow_foreign_owner: true,
            ..Default::default()
        };
        Reader::open_with(&name, opts).unwrap();
    } else {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
        let err = Reader::open(&name, StartAt::Latest)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("permission denied"), "{err}");
    }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

fn utf8_batch(n: usize) -> RecordBatch {
    let sym: Vec<Option<String>> = (0..n)
        .map(|i| (i % 5 != 3).then(|| format!("SYM{i}{}", "-long-enough".repeat(i % 2))))
        .collect();
    RecordBatch::try_from_iter([
        (
            "ts",
            Arc::new(Int64Array::from_iter_values(0..n as i64)) as ArrayRef,
        ),
        ("symbol", Arc::new(StringArray::from(sym)) as ArrayRef),
        (
            "raw",
            Arc::new(LargeBinaryArray::from_iter_values(
                (0..n).map(|i| vec![i as u8; i % 20]),
            )) as ArrayRef,
        ),
    ])
    .unwrap()
}

/// The batch as a view ring stores it.
fn as_views(b: &RecordBatch) -> RecordBatch {
    let stored = Arc::new(ringfeed_arrow::storage_schema(
        &b.schema(),
        StringLayout::View,
    ));
    ringfeed_arrow::foreign::conform(b, &stored).unwrap()
}

#[test]
fn strings_are_stored_as_views_by_default() {
    let name = unique("views");
    let b = utf8_batch(50);
    let mut w = Writer::create(&name, &b.schema(), RingOptions::default()).unwrap();
    let mut r = Reader::open(&name, StartAt::Oldest).unwrap();
    assert_eq!(r.schema().field(1).data_type(), &DataType::Utf8View);
    assert_eq!(r.schema().field(2).data_type(), &DataType::BinaryView);
    assert_eq!(w.schema(), r.schema());
    // Utf8/LargeBinary batches are converted; view batches go as they are.
    w.write(&b).unwrap();
    w.write(&b.slice(7, 20)).unwrap();
    w.write(&as_views(&b)).unwrap();
    for want in [b.clone(), b.slice(7, 20), b.clone()] {
        let got = r.read(Duration::from_secs(5)).unwrap().unwrap();
        assert!(got.is_zero_copy());
        assert_eq!(got.record_batch(), &as_views(&want));
        let sym = got
            .column(1)
            .as_any()
            .downcast_ref::<StringViewArray>()
            .unwrap();
        let src = want
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(
            sym.iter().collect::<Vec<_>>(),
            src.iter().collect::<Vec<_>>()
        );
    }
    // As given: the ring keeps Utf8.
    let name = unique("given");
    let mut w = Writer::create(&name, &b.schema(), as_given()).unwrap();
    let mut r = Reader::open(&name, StartAt::Oldest).unwrap();
    assert_eq!(r.schema().field(1).data_type(), &DataType::Utf8);
    w.write(&b).unwrap();
    assert_eq!(
        r.read(Duration::from_secs(5))
            .unwrap()
            .unwrap()
            .record_batch(),
        &b
    );
}

#[test]
fn a_result_ring_is_sized_for_its_batches_and_each_is_encoded_once() {
    let name = unique("sized");
    let b = utf8_batch(100);
    let batches = [b.slice(0, 40), b.slice(40, 40), b.slice(80, 20)];
    let opts = RingOptions {
        max_readers: 2,
        ..RingOptions::default()
    };
    let (w, written) = Writer::create_for_batches(&name, &b.schema(), &batches, opts).unwrap();
    // What the daemon measured by encoding each batch itself.
    let stored = ringfeed_arrow::storage_schema(&b.schema(), StringLayout::View);
    let mut enc = codec::SlotEncoder::new(&stored).unwrap();
    let lens: Vec<u64> = batches
        .iter()
        .map(|c| codec::encoded_len(&enc.encode(&as_views(c)).unwrap()) as u64)
        .collect();
    assert_eq!(written.batches, 3);
    assert_eq!(written.bytes, lens.iter().sum::<u64>());
    assert_eq!(written.slot_bytes, *lens.iter().max().unwrap());
    let g = w.ring().geometry();
    assert_eq!(
        (g.slots, g.buffers, g.leases_per_reader, g.max_readers),
        (3, 3, 3, 2)
    );
    assert!(g.buffer_bytes >= written.slot_bytes && g.buffer_bytes < written.slot_bytes + 4096);
    // One reader holds every batch at once.
    let mut r = Reader::open(&name, StartAt::Oldest).unwrap();
    let held: Vec<_> = (0..3).map(|_| r.try_read().unwrap().unwrap()).collect();
    for (got, want) in held.iter().zip(&batches) {
        assert_eq!(got.record_batch(), &as_views(want));
    }
    assert!(r.try_read().unwrap().is_none());

    // A batch that fits nothing is refused by index; no arena is made.
    let name = unique("sized-bad");
    let other = bars(2, 0.0);
    let err = Writer::create_for_batches(
        &name,
        &b.schema(),
        &[b.clone(), other],
        RingOptions::default(),
    )
    .err()
    .unwrap();
    assert!(matches!(err, CreateError::Batch { index: 1, .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::SchemaMismatch);
    assert_eq!(
        Reader::open(&name, StartAt::Oldest).err().unwrap().kind(),
        ErrorKind::NotFound
    );
}
