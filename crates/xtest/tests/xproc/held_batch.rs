//! (b) A batch held by a reader, in another process and in this one, keeps
//! its contents while an `OverwriteOldest` writer publishes 10 × slots more
//! batches, and the writer never fails for it.

use crate::common::*;
use ringfeed_arrow::{ohlcv_schema, Reader, RingOptions, StartAt, Writer};
use ringfeed_xtest::{bar_batch, verify_bar_batch};

const SLOTS: u32 = 8;

#[test]
fn held_batch_survives_ten_laps_of_the_ring() {
    watchdog("held batch vs overwriting writer", HANG, || {
        let name = unique_name("held");
        let _arena = ArenaGuard(name.clone());
        let opts = RingOptions {
            slots: SLOTS,
            slot_bytes: 64 << 10,
            ..RingOptions::default()
        };
        let mut w = Writer::create(&name, &ohlcv_schema(), opts).expect("create ring");
        let schema = w.schema().clone();
        assert_eq!(w.write(&bar_batch(&schema, 1, 32)).expect("write 1"), 1);

        // This process holds batch 1 too, and keeps a deep copy to compare with.
        let mut local = Reader::open(&name, StartAt::Oldest).expect("open local reader");
        let held = local.read(HANG).expect("read").expect("batch 1");
        assert_eq!(held.seq(), 1);
        let snapshot = bar_batch(&schema, 1, 32);
        assert_eq!(*held, snapshot);

        // The child holds the first batch it reads (seq 1: it starts at the
        // oldest), reads until Closed, then verifies the held one again.
        let sub = Proc::spawn(&format!(
            "subscribe --name {name} --expect 1000000 --start oldest --hold-first \
             --allow-lag --timeout-ms 60000"
        ));
        let child = sub.pid();
        wait_until("the child reader to lease batch 1", HANG, || {
            w.ring()
                .readers()
                .iter()
                .any(|r| r.pid == child && r.cursor >= 2 && r.leases >= 1)
        });

        let laps = 10 * SLOTS as u64;
        for seq in 2..=1 + laps {
            let got = w
                .write(&bar_batch(&schema, seq, 32))
                .unwrap_or_else(|e| panic!("write {seq}: {e}"));
            assert_eq!(got, seq);
        }
        // Our lease is still out, and the bytes under it are what we wrote.
        verify_bar_batch(&held, 1).expect("locally held batch changed");
        assert_eq!(*held, snapshot);
        assert!(held.is_zero_copy());
        w.close();

        let (r, exit) = sub.report(HANG);
        assert!(
            exit.status.success(),
            "child reader failed: {r:?}, stderr: {}",
            exit.stderr
        );
        assert!(r.verified && r.zero_copy, "{r:?}");
        assert_eq!(
            r.first_seq,
            Some(1),
            "the child must have held batch 1: {r:?}"
        );
        // Every seq was either read or reported missed.
        assert_eq!(r.batches + r.missed, 1 + laps, "{r:?}");
        drop(held);
    });
}
