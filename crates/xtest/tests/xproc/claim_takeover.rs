//! (e) A buffer a writer claimed and filled but never committed (it "died"
//! mid-write) is never visible to readers, and a takeover frees it.
//! Byte ring, in-process: the claim is leaked with `mem::forget` and the
//! writer forgotten with `simulate_death`.

use crate::common::*;
use ringfeed_shm::layout::Header;
use ringfeed_shm::{ReadError, RingOptions, RingReader, RingWriter, StartAt};
use std::fs::File;
use std::mem::size_of;
use std::os::unix::fs::FileExt;
use std::time::Duration;

const POISON: u8 = 0xEE;

fn payload(seq: u64) -> Vec<u8> {
    let mut p = format!("batch {seq} ").into_bytes();
    p.resize(300 + (seq as usize % 7) * 100, seq as u8);
    p
}

/// Buffer generations as stored in the arena file.
fn generations(name: &str) -> Vec<u64> {
    let f = File::open(ringfeed_shm::arena_path(name)).expect("open arena file");
    let mut h = vec![0u8; size_of::<Header>()];
    f.read_exact_at(&mut h, 0).expect("read header");
    let h = Header::from_bytes(&h).expect("header");
    let mut g = vec![0u8; 8 * h.buffers as usize];
    f.read_exact_at(&mut g, h.gens_off)
        .expect("read generations");
    g.chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

#[test]
fn uncommitted_claim_is_invisible_and_freed_by_takeover() {
    watchdog("leaked claim and takeover", HANG, || {
        let name = unique_name("claim");
        let _arena = ArenaGuard(name.clone());
        let opts = RingOptions {
            slots: 4,
            slot_bytes: 4096,
            max_readers: 2,
            leases_per_reader: 1,
            buffers: Some(5), // D + 1: every buffer matters
            ..RingOptions::default()
        };
        let mut w = RingWriter::create(&name, &opts, b"meta").expect("create");
        let mut r = RingReader::open(&name, StartAt::Oldest).expect("open reader");
        for seq in 1..=3 {
            assert_eq!(w.publish(&payload(seq), 1, 0).expect("publish"), seq);
        }
        let mut c = w.claim(4096).expect("claim");
        assert_eq!(c.seq(), 4);
        c.buf().fill(POISON);
        std::mem::forget(c); // never committed, never abandoned
        let gens = generations(&name);
        let odd: Vec<u32> = (0..gens.len() as u32)
            .filter(|&b| gens[b as usize] % 2 == 1)
            .collect();
        assert_eq!(
            odd.len(),
            1,
            "exactly the claimed buffer is marked being-written: {gens:?}"
        );
        let leaked = odd[0];

        for seq in 1..=3 {
            let l = r.read(HANG).expect("read").expect("a batch");
            assert_eq!((l.seq(), l.bytes()), (seq, &payload(seq)[..]));
        }
        assert!(
            r.read(Duration::from_millis(50)).expect("read").is_none(),
            "the claim must stay invisible"
        );

        w.simulate_death();
        assert!(matches!(r.read(HANG), Err(ReadError::WriterGone { .. })));
        // A reader that joins now sees the three committed batches only.
        let mut late = RingReader::open(&name, StartAt::Oldest).expect("open late reader");
        for seq in 1..=3 {
            assert_eq!(late.read(HANG).expect("read").expect("a batch").seq(), seq);
        }
        assert!(matches!(late.read(HANG), Err(ReadError::WriterGone { .. })));
        assert_eq!(ringfeed_shm::inspect(&name).expect("inspect").write_seq, 3);
        drop(late);

        let mut w = RingWriter::open_existing(&name).expect("take over");
        assert_eq!(w.next_seq(), 4);
        let gens = generations(&name);
        assert!(
            gens.iter().all(|g| g % 2 == 0),
            "takeover left a buffer marked being-written: {gens:?}"
        );
        assert_eq!(
            ringfeed_shm::inspect(&name).expect("inspect").writer_epoch,
            2
        );

        let mut reused = false;
        for seq in 4..=4 + 3 * 5 {
            assert_eq!(
                w.publish(&payload(seq), 1, 0)
                    .expect("publish after takeover"),
                seq
            );
            let l = r.read(HANG).expect("read").expect("a batch");
            assert_eq!(l.seq(), seq);
            assert_eq!(l.bytes(), &payload(seq)[..], "seq {seq}");
            assert!(!l.bytes().starts_with(&[POISON; 16]));
            reused |= l.buffer() == leaked;
        }
        assert!(
            reused,
            "buffer {leaked} (the leaked claim) was never used again"
        );
        w.close();
        assert!(matches!(r.read(HANG), Err(ReadError::Closed { .. })));
    });
}
