//! The ring against a `VecDeque` model: random publish / read / lease / drop
//! sequences, in one process, with several readers.

use proptest::prelude::*;
use ringfeed_shm::{Lease, ReadError, RingOptions, RingReader, RingWriter, StartAt};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

#[derive(Debug, Clone)]
enum Op {
    Publish(u8, usize),
    Read(usize),
    Drop(usize, usize),
}

fn op(readers: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (any::<u8>(), 0usize..3000).prop_map(|(b, n)| Op::Publish(b, n)),
        3 => (0..readers).prop_map(Op::Read),
        2 => (0..readers, 0usize..4).prop_map(|(r, i)| Op::Drop(r, i)),
    ]
}

fn payload(seq: u64, byte: u8, len: usize) -> Vec<u8> {
    let mut v = vec![byte; len];
    v.extend_from_slice(&seq.to_le_bytes());
    v
}

struct ModelReader {
    ring: RingReader,
    cursor: u64,
    held: Vec<(Lease, Vec<u8>)>,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn ring_matches_vecdeque_model(
        slots in 1u32..6,
        leases in 1u32..3,
        ops in proptest::collection::vec(op(3), 1..250),
    ) {
        let name = unique("model");
        let opts = RingOptions { slots, slot_bytes: 4096, max_readers: 3, leases_per_reader: leases, ..Default::default() };
        let mut w = RingWriter::create(&name, &opts, b"m").unwrap();
        let mut readers: Vec<ModelReader> = (0..3)
            .map(|_| ModelReader { ring: RingReader::open(&name, StartAt::Oldest).unwrap(), cursor: 1, held: vec![] })
            .collect();
        // The model: the last `slots` payloads, by seq.
        let mut ring: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
        let mut write_seq = 0u64;

        for op in ops {
            match op {
                Op::Publish(byte, len) => {
                    let p = payload(write_seq + 1, byte, len);
                    let seq = w.publish(&p, 1, 0).expect("with M = D + R*P + 1 a buffer is always free");
                    write_seq += 1;
                    prop_assert_eq!(seq, write_seq);
                    ring.push_back((seq, p));
                    if ring.len() > slots as usize { ring.pop_front(); }
                }
                Op::Read(k) => {
                    let r = &mut readers[k];
                    let oldest = ring.front().map(|(s, _)| *s).unwrap_or(1);
                    let got = r.ring.try_read();
                    if r.cursor > write_seq {
                        prop_assert!(matches!(got, Ok(None)), "expected nothing, got {:?}", got.as_ref().map(|o| o.as_ref().map(|l| l.seq())));
                    } else if r.cursor < oldest {
                        prop_assert_eq!(got.err(), Some(ReadError::Lagged { missed: oldest - r.cursor }));
                        r.cursor = oldest;
                    } else if r.held.len() as u32 >= leases {
                        let is_too_many = matches!(got, Err(ReadError::TooManyLeases { .. }));
                        prop_assert!(is_too_many);
                    } else {
                        let lease = got.unwrap().expect("a batch");
                        let want = &ring[(r.cursor - oldest) as usize];
                        prop_assert_eq!(lease.seq(), want.0);
                        prop_assert_eq!(lease.bytes(), &want.1[..]);
                        r.cursor += 1;
                        let copy = want.1.clone();
                        r.held.push((lease, copy));
                    }
                    prop_assert_eq!(r.ring.cursor(), r.cursor);
                }
                Op::Drop(k, i) => {
                    let r = &mut readers[k];
                    if !r.held.is_empty() {
                        let i = i % r.held.len();
                        r.held.remove(i);
                    }
                }
            }
            // The invariant: leased memory is never rewritten.
            for r in &readers {
                for (lease, copy) in &r.held {
                    prop_assert_eq!(lease.bytes(), &copy[..], "leased seq {} changed", lease.seq());
                }
                prop_assert_eq!(r.ring.leases() as usize, r.held.len());
            }
        }
        drop(readers);
        w.close();
    }
}

#[test]
fn block_mode_times_out_on_a_slow_reader_and_names_it() {
    let name = unique("block");
    let opts = RingOptions {
        slots: 2,
        on_full: ringfeed_shm::OnFull::Block(std::time::Duration::from_millis(50)),
        ..Default::default()
    };
    let mut w = RingWriter::create(&name, &opts, b"").unwrap();
    let _r = RingReader::open(&name, StartAt::Oldest).unwrap();
    w.publish(b"a", 1, 0).unwrap();
    w.publish(b"b", 1, 0).unwrap();
    let err = w.publish(b"c", 1, 0).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            ringfeed_shm::ClaimError::Timeout {
                cursor: 1,
                needed: 1,
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.contains(&std::process::id().to_string()), "{msg}");
}

#[test]
fn block_mode_resumes_when_the_reader_catches_up() {
    let name = unique("block-resume");
    let opts = RingOptions {
        slots: 2,
        on_full: ringfeed_shm::OnFull::Block(std::time::Duration::from_secs(20)),
        ..Default::default()
    };
    let mut w = RingWriter::create(&name, &opts, b"").unwrap();
    let mut r = RingReader::open(&name, StartAt::Oldest).unwrap();
    let t = std::thread::spawn(move || {
        let mut seen = vec![];
        while seen.len() < 50 {
            if let Some(l) = r.read(std::time::Duration::from_secs(20)).unwrap() {
                seen.push(l.bytes()[0]);
            }
        }
        seen
    });
    for i in 0..50u8 {
        w.publish(&[i], 1, 0).unwrap();
    }
    let seen = t.join().unwrap();
    assert_eq!(seen, (0..50).collect::<Vec<u8>>(), "lossless in Block mode");
}

#[test]
fn closed_ring_drains_then_reports_closed() {
    let name = unique("closed");
    let mut w = RingWriter::create(&name, &RingOptions::default(), b"").unwrap();
    let mut r = RingReader::open(&name, StartAt::Oldest).unwrap();
    w.publish(b"x", 1, 0).unwrap();
    w.close();
    assert!(
        !ringfeed_shm::arena_path(&name).exists(),
        "close removes the name"
    );
    let l = r.read(std::time::Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(l.bytes(), b"x");
    assert!(matches!(
        r.read(std::time::Duration::from_secs(5)),
        Err(ReadError::Closed { .. })
    ));
}

#[test]
fn dead_writer_is_reported_and_can_be_replaced() {
    let name = unique("takeover");
    let mut w = RingWriter::create(&name, &RingOptions::default(), b"meta").unwrap();
    let mut r = RingReader::open(&name, StartAt::Oldest).unwrap();
    w.publish(b"one", 1, 0).unwrap();
    // Half-written batch that never commits, then the writer "dies".
    {
        let mut c = w.claim(5).unwrap();
        c.buf()[..5].copy_from_slice(b"TORN!");
        std::mem::forget(c);
    }
    w.simulate_death();
    let l = r.read(std::time::Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(l.bytes(), b"one");
    assert!(matches!(
        r.read(std::time::Duration::from_secs(5)),
        Err(ReadError::WriterGone { .. })
    ));
    // Creating over the leftover is refused with a clear message.
    let err = match RingWriter::create(&name, &RingOptions::default(), b"meta") {
        Err(e) => e,
        Ok(_) => panic!("create over a leftover must fail"),
    };
    assert!(err.to_string().contains("writer is gone"), "{err}");
    let mut w2 = RingWriter::open_existing(&name).unwrap();
    assert_eq!(w2.next_seq(), 2);
    assert_eq!(w2.meta(), b"meta");
    let info = ringfeed_shm::inspect(&name).unwrap();
    assert_eq!(info.writer_epoch, 2);
    assert!(info.writer_alive);
    w2.publish(b"two", 1, 0).unwrap();
    let l2 = r.read(std::time::Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!((l2.seq(), l2.bytes()), (2, &b"two"[..]));
    // A second writer while one lives is refused.
    assert!(matches!(
        RingWriter::open_existing(&name),
        Err(ringfeed_shm::OpenError::WriterAlive { .. })
    ));
}

#[test]
fn dropped_reader_row_is_reused_and_readers_table_fills() {
    let name = unique("rows");
    let opts = RingOptions {
        max_readers: 2,
        ..Default::default()
    };
    let mut w = RingWriter::create(&name, &opts, b"").unwrap();
    let a = RingReader::open(&name, StartAt::Latest).unwrap();
    let _b = RingReader::open(&name, StartAt::Latest).unwrap();
    assert!(matches!(
        RingReader::open(&name, StartAt::Latest),
        Err(ringfeed_shm::OpenError::ReaderTableFull { max_readers: 2, .. })
    ));
    drop(a);
    let _c = RingReader::open(&name, StartAt::Latest).unwrap();
    assert_eq!(w.readers().len(), 2);
    w.publish(b"x", 1, 0).unwrap();
}

#[test]
fn lease_outlives_reader_and_blocks_reuse_of_its_buffer() {
    let name = unique("outlive");
    let opts = RingOptions {
        slots: 2,
        ..Default::default()
    };
    let mut w = RingWriter::create(&name, &opts, b"").unwrap();
    let mut r = RingReader::open(&name, StartAt::Oldest).unwrap();
    w.publish(b"keep me", 1, 0).unwrap();
    let l = r.try_read().unwrap().unwrap();
    let buf = l.buffer();
    drop(r); // the reader handle is gone; the lease keeps the mapping and the pin
    for i in 0..100u32 {
        w.publish(&i.to_le_bytes(), 1, 0).unwrap();
    }
    assert_eq!(l.bytes(), b"keep me");
    let info = ringfeed_shm::inspect(&name).unwrap();
    assert_eq!(info.leased_buffers, 1);
    assert_eq!(
        info.readers.len(),
        1,
        "row stays until the last lease drops"
    );
    assert_eq!(
        info.readers[0].state,
        ringfeed_shm::layout::row_state::DRAINING
    );
    drop(l);
    let info = ringfeed_shm::inspect(&name).unwrap();
    assert_eq!(info.leased_buffers, 0);
    assert!(info.readers.is_empty());
    let _ = buf;
}

#[test]
fn oversize_payload_is_refused_with_both_sizes() {
    let name = unique("big");
    let mut w = RingWriter::create(&name, &RingOptions::default(), b"").unwrap();
    let err = w.publish(&vec![0u8; (1 << 20) + 1], 1, 0).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("1048577") && msg.contains("1048576") && msg.contains("slot_bytes"),
        "{msg}"
    );
    assert_eq!(w.next_seq(), 1, "nothing was published");
}

#[test]
fn start_positions() {
    let name = unique("start");
    let opts = RingOptions {
        slots: 4,
        ..Default::default()
    };
    let mut w = RingWriter::create(&name, &opts, b"").unwrap();
    for i in 0..10u8 {
        w.publish(&[i], 1, 0).unwrap();
    }
    let mut oldest = RingReader::open(&name, StartAt::Oldest).unwrap();
    let mut latest = RingReader::open(&name, StartAt::Latest).unwrap();
    let mut next = RingReader::open(&name, StartAt::Next).unwrap();
    assert_eq!(oldest.try_read().unwrap().unwrap().seq(), 7);
    assert_eq!(latest.try_read().unwrap().unwrap().seq(), 10);
    assert!(next.try_read().unwrap().is_none());
    w.publish(&[10], 1, 0).unwrap();
    assert_eq!(next.try_read().unwrap().unwrap().seq(), 11);
}

#[test]
fn handles_inherited_across_fork_leave_the_parents_state_alone() {
    let name = unique("fork");
    let mut w = RingWriter::create(&name, &RingOptions::default(), b"").unwrap();
    let mut r = RingReader::open(&name, StartAt::Oldest).unwrap();
    w.publish(b"parent", 1, 0).unwrap();
    let lease = r.try_read().unwrap().unwrap();
    // SAFETY: the child only calls async-signal-safe-enough code paths of
    // ours (atomics, no locks held by other threads of this test binary are
    // needed: the ring API takes no process-wide locks) and exits with _exit.
    let pid = unsafe { libc_fork() };
    if pid == 0 {
        // Child: the inherited handles refuse to work and release nothing.
        let ok = matches!(r.try_read(), Err(ReadError::Forked))
            && matches!(w.publish(b"x", 1, 0), Err(ringfeed_shm::ClaimError::Forked));
        drop(lease);
        drop(r);
        drop(w);
        // SAFETY: terminate the child without running the parent's destructors again.
        unsafe { libc_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc_waitpid(pid, &mut status, 0) };
    assert_eq!(status, 0, "child saw inherited handles misbehave");
    // Parent: its lease, row, lock and arena are untouched by the child's drops.
    assert_eq!(lease.bytes(), b"parent");
    let info = ringfeed_shm::inspect(&name).unwrap();
    assert_eq!(info.leased_buffers, 1);
    assert_eq!(info.readers.len(), 1);
    assert!(info.writer_alive && info.state == "ready");
    w.publish(b"more", 1, 0).unwrap();
    assert_eq!(r.try_read().unwrap().unwrap().bytes(), b"more");
}

extern "C" {
    #[link_name = "fork"]
    fn libc_fork() -> i32;
    #[link_name = "_exit"]
    fn libc_exit(code: i32) -> !;
    #[link_name = "waitpid"]
    fn libc_waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
}
