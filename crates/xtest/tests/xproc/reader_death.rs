//! (c) SIGKILL a reader process that holds leases in a `Block` ring: the
//! writer gets its row and pins back and proceeds; `inspect` shows the row gone.

use crate::common::*;
use ringfeed_arrow::{ohlcv_schema, OnFull, RingOptions, WriteError, Writer};
use ringfeed_shm::ClaimError;
use ringfeed_xtest::bar_batch;
use std::time::{Duration, Instant};

const SLOTS: u64 = 4;

#[test]
fn killed_lease_holder_is_swept_and_the_blocked_writer_proceeds() {
    watchdog("dead reader in a Block ring", HANG, || {
        let name = unique_name("rdeath");
        let _arena = ArenaGuard(name.clone());
        let opts = RingOptions {
            slots: SLOTS as u32,
            slot_bytes: 64 << 10,
            on_full: OnFull::Block(Duration::from_millis(300)),
            ..RingOptions::default()
        };
        let mut w = Writer::create(&name, &ohlcv_schema(), opts).expect("create ring");
        let schema = w.schema().clone();
        for seq in 1..=2 {
            w.write(&bar_batch(&schema, seq, 8)).expect("write");
        }
        let mut holder = Proc::spawn(&format!("hold --name {name} --count 2"));
        assert_eq!(holder.next_line(HANG), "holding 2");
        let pid = holder.pid();

        let info = ringfeed_shm::inspect(&name).expect("inspect");
        let row = info
            .readers
            .iter()
            .find(|r| r.pid == pid)
            .expect("holder's row");
        assert_eq!((row.cursor, row.leases), (3, 2), "{row:?}");
        assert_eq!(info.leased_buffers, 2);

        // The holder's cursor is 3, so seqs up to SLOTS + 2 fit; the next one
        // would evict seq 3, which the (stuck) holder has not read.
        for seq in 3..=SLOTS + 2 {
            w.write(&bar_batch(&schema, seq, 8))
                .unwrap_or_else(|e| panic!("write {seq}: {e}"));
        }
        let blocked = SLOTS + 3;
        match w.write(&bar_batch(&schema, blocked, 8)) {
            Err(WriteError::Full(ClaimError::Timeout {
                pid: p,
                cursor,
                needed,
                ..
            })) => {
                assert_eq!((p, cursor, needed), (pid, 3, 3));
            }
            other => panic!("expected a Block timeout naming the holder, got {other:?}"),
        }

        let exit = holder.kill9();
        assert!(!exit.status.success());

        // The writer sweeps the dead row while it waits. Retrying only guards
        // against a slow machine eating the 300 ms timeout; it must succeed.
        let deadline = Instant::now() + HANG;
        loop {
            match w.write(&bar_batch(&schema, blocked, 8)) {
                Ok(seq) => {
                    assert_eq!(seq, blocked);
                    break;
                }
                Err(WriteError::Full(ClaimError::Timeout { .. })) if Instant::now() < deadline => {}
                Err(e) => panic!("writer did not proceed after the holder died: {e}"),
            }
        }
        for seq in blocked + 1..=blocked + 3 * SLOTS {
            assert_eq!(
                w.write(&bar_batch(&schema, seq, 8))
                    .expect("write after sweep"),
                seq
            );
        }

        let info = ringfeed_shm::inspect(&name).expect("inspect");
        assert!(
            info.readers.is_empty(),
            "dead reader's row still listed: {:?}",
            info.readers
        );
        assert_eq!(info.leased_buffers, 0, "dead reader's pins not cleared");
        assert_eq!(info.write_seq, blocked + 3 * SLOTS);
        w.close();
    });
}
