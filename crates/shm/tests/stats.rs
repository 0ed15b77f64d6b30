//! The statistics layout minor 1 added for `ringfeed top`: bytes published
//! (control line 3) and the age of each reader's oldest lease (its row), and
//! how both read in an arena of layout minor 0.

use ringfeed_shm::layout::{Header, ReaderRow, ROWS_OFF};
use ringfeed_shm::{inspect, table_path, RingOptions, RingReader, RingWriter, StartAt};
use std::fs::File;
use std::mem::offset_of;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "stats-{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn small() -> RingOptions {
    RingOptions {
        slots: 4,
        slot_bytes: 4096,
        max_readers: 2,
        leases_per_reader: 2,
        ..RingOptions::default()
    }
}

#[test]
fn bytes_published_counts_every_payload_byte_across_writers() {
    let name = unique("bytes");
    let mut w = RingWriter::create(&name, &small(), b"m").unwrap();
    assert_eq!(inspect(&name).unwrap().bytes_published, Some(0));
    w.publish(&[1u8; 100], 1, 0).unwrap();
    w.publish(&[2u8; 4000], 1, 0).unwrap();
    // Ring wrap-around does not reset it: it counts publishes, not contents.
    for _ in 0..10 {
        w.publish(&[3u8; 10], 1, 0).unwrap();
    }
    assert_eq!(inspect(&name).unwrap().bytes_published, Some(4200));
    // A writer that takes over continues the count.
    w.simulate_death();
    let mut w2 = RingWriter::open_existing(&name).unwrap();
    w2.publish(&[4u8; 7], 1, 0).unwrap();
    let info = inspect(&name).unwrap();
    assert_eq!(info.bytes_published, Some(4207));
    assert_eq!(info.write_seq, 13);
}

#[test]
fn lease_age_is_reported_while_a_reader_holds_a_batch_and_cleared_after() {
    let name = unique("age");
    let mut w = RingWriter::create(&name, &small(), b"m").unwrap();
    let mut r = RingReader::open(&name, StartAt::Oldest).unwrap();
    let info = inspect(&name).unwrap();
    assert_eq!(info.readers.len(), 1);
    assert_eq!(info.readers[0].lease_age_ns, None, "nothing leased yet");
    assert_eq!(info.oldest_lease_age_ns(), None);

    w.publish(b"one", 1, 0).unwrap();
    w.publish(b"two", 1, 0).unwrap();
    let first = r.read(Duration::from_secs(5)).unwrap().unwrap();
    let a1 = inspect(&name)
        .unwrap()
        .oldest_lease_age_ns()
        .expect("leased");
    // A second lease taken while the first is held does not restart the clock:
    // the age is that of the oldest one.
    let second = r.read(Duration::from_secs(5)).unwrap().unwrap();
    let info = inspect(&name).unwrap();
    assert_eq!(info.leases(), 2);
    let a2 = info.oldest_lease_age_ns().expect("leased");
    assert!(a2 >= a1, "age went backwards: {a1} then {a2}");

    drop(first);
    drop(second);
    let info = inspect(&name).unwrap();
    assert_eq!(info.leases(), 0);
    assert_eq!(info.oldest_lease_age_ns(), None, "no lease, no age");

    // A new lease after a lease-free moment restarts the clock: the row's
    // `leased_since_ns` moves forward (read raw: no timing in the assertion).
    let stride = w.geometry().layout().reader_stride;
    let since_before = since(&name, 0, stride);
    std::thread::sleep(Duration::from_millis(2));
    w.publish(b"three", 1, 0).unwrap();
    let third = r.read(Duration::from_secs(5)).unwrap().unwrap();
    assert!(inspect(&name).unwrap().oldest_lease_age_ns().is_some());
    let since_after = since(&name, 0, stride);
    assert!(
        since_after > since_before,
        "the clock did not restart: {since_before} then {since_after}"
    );
    drop(third);
}

fn row_field(row: u32, stride: u64, off: usize) -> u64 {
    ROWS_OFF + stride * row as u64 + off as u64
}

/// Row `row`'s raw `leased_since_ns`.
fn since(name: &str, row: u32, stride: u64) -> u64 {
    let mut b = [0u8; 8];
    File::open(table_path(name))
        .unwrap()
        .read_exact_at(
            &mut b,
            row_field(row, stride, offset_of!(ReaderRow, leased_since_ns)),
        )
        .unwrap();
    u64::from_ne_bytes(b)
}

#[test]
fn a_row_whose_owner_does_not_record_lease_times_reports_no_age() {
    let name = unique("oldowner");
    let mut w = RingWriter::create(&name, &small(), b"m").unwrap();
    let stride = w.geometry().layout().reader_stride;
    let mut r = RingReader::open(&name, StartAt::Oldest).unwrap();
    w.publish(b"one", 1, 0).unwrap();
    let l = r.read(Duration::from_secs(5)).unwrap().unwrap();
    assert!(inspect(&name).unwrap().oldest_lease_age_ns().is_some());
    // What a minor-0 owner leaves: `lease_gen` not matching the row's `gen`
    // (it bumps gen at claim and never touches lease_gen), with a stale time.
    let t = File::options()
        .read(true)
        .write(true)
        .open(table_path(&name))
        .unwrap();
    let off = row_field(0, stride, offset_of!(ReaderRow, lease_gen));
    t.write_all_at(&0xdead_u32.to_ne_bytes(), off).unwrap();
    let off = row_field(0, stride, offset_of!(ReaderRow, leased_since_ns));
    t.write_all_at(&1u64.to_ne_bytes(), off).unwrap();
    let info = inspect(&name).unwrap();
    assert_eq!(info.leases(), 1);
    assert_eq!(info.readers[0].lease_age_ns, None);
    // A time in the future (another clock, or a scribble) is age 0, not a wrap.
    let off = row_field(0, stride, offset_of!(ReaderRow, lease_gen));
    let gen_off = row_field(0, stride, offset_of!(ReaderRow, gen));
    let mut g = [0u8; 4];
    t.read_exact_at(&mut g, gen_off).unwrap();
    t.write_all_at(&g, off).unwrap();
    let off = row_field(0, stride, offset_of!(ReaderRow, leased_since_ns));
    t.write_all_at(&u64::MAX.to_ne_bytes(), off).unwrap();
    assert_eq!(inspect(&name).unwrap().readers[0].lease_age_ns, Some(0));
    drop(l);
    // The ring still works.
    w.publish(b"two", 1, 0).unwrap();
    assert_eq!(
        r.read(Duration::from_secs(5)).unwrap().unwrap().bytes(),
        b"two"
    );
}

#[test]
fn an_arena_of_layout_minor_0_reads_and_reports_no_byte_count() {
    let name = unique("minor0");
    let mut w = RingWriter::create(&name, &small(), b"m").unwrap();
    w.publish(b"before", 1, 0).unwrap();
    // Rewrite the header as a minor-0 creator wrote it (same bytes, minor 0,
    // CRC recomputed). The file is 0400 once READY: lift it for the patch.
    let path = w.path().to_path_buf();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let f = File::options().read(true).write(true).open(&path).unwrap();
    let mut raw = vec![0u8; std::mem::size_of::<Header>()];
    f.read_exact_at(&mut raw, 0).unwrap();
    let mut h = Header::from_bytes(&raw).unwrap();
    assert_eq!(h.layout_minor, ringfeed_shm::layout::LAYOUT_MINOR);
    h.layout_minor = 0;
    h.header_crc = h.compute_crc();
    f.write_all_at(h.as_bytes(), 0).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();

    let info = inspect(&name).unwrap();
    assert_eq!(info.header.layout_minor, 0);
    assert_eq!(info.bytes_published, None, "minor 0 has no byte count");
    // A reader of this version attaches and reads, and records its lease time.
    let mut r = RingReader::open(&name, StartAt::Oldest).unwrap();
    let l = r.read(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(l.bytes(), b"before");
    assert!(inspect(&name).unwrap().oldest_lease_age_ns().is_some());
}

#[test]
fn the_reader_table_header_keeps_minor_0_so_older_readers_still_attach() {
    // Every reader compares the table header for equality, minor included: a reader of
    // 2.0 (a wheel older than its daemon) refuses any other minor as "another instance".
    let name = unique("table-minor");
    let w = RingWriter::create(&name, &small(), b"m").unwrap();
    let f = File::open(table_path(&name)).unwrap();
    let mut b = [0u8; 4];
    f.read_exact_at(
        &mut b,
        offset_of!(ringfeed_shm::layout::TableHeader, layout_major) as u64,
    )
    .unwrap();
    assert_eq!(
        u16::from_ne_bytes([b[0], b[1]]),
        ringfeed_shm::layout::LAYOUT_MAJOR
    );
    assert_eq!(
        u16::from_ne_bytes([b[2], b[3]]),
        0,
        "the table's minor stays 0"
    );
    let mut r = RingReader::open(&name, StartAt::Oldest).unwrap();
    drop(r.try_read().unwrap());
    w.close();
}
