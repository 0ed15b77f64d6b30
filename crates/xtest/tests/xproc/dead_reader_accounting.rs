//! A reader process that dies must stop counting as a reader: on an
//! `OverwriteOldest` ring its row and pins are reclaimed while the writer goes
//! on, `wait_for_readers` does not count it, and a sweep takes it off the
//! futex `waiters` count.

use crate::common::*;
use ringfeed_arrow::{ohlcv_schema, RingOptions, Writer};
use ringfeed_shm::layout::{TableControl, TABLE_CONTROL_OFF};
use ringfeed_xtest::bar_batch;
use std::fs::File;
use std::mem::offset_of;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

/// An OverwriteOldest ring with 2 batches, and a reader process that leased
/// both and was then SIGKILLed.
fn ring_with_a_dead_holder(name: &str) -> Writer {
    let opts = RingOptions {
        slots: 4,
        slot_bytes: 64 << 10,
        ..RingOptions::default()
    };
    let mut w = Writer::create(name, &ohlcv_schema(), opts).expect("create ring");
    let schema = w.schema().clone();
    for seq in 1..=2 {
        w.write(&bar_batch(&schema, seq, 8)).expect("write");
    }
    let mut holder = Proc::spawn(&format!("hold --name {name} --count 2"));
    assert_eq!(holder.next_line(HANG), "holding 2");
    holder.kill9();
    w
}

#[test]

fn dead_reader_of_an_overwrite_ring_is_reclaimed() {
    watchdog("dead reader in an OverwriteOldest ring", HANG, || {
        let name = unique_name("rdeath-ow");
        let _arena = ArenaGuard(name.clone());
        let mut w = ring_with_a_dead_holder(&name);
        let schema = w.schema().clone();
        // Keep writing (a live writer's normal life) until the row is gone.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seq = 3;
        loop {
            w.write(&bar_batch(&schema, seq, 8)).expect("write");
            seq += 1;
            let info = ringfeed_shm::inspect(&name).expect("inspect");
            if info.readers.is_empty() && info.leased_buffers == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "after {seq} writes and 10 s the dead reader is still listed: {:?}, {} buffers pinned",
                info.readers,
                info.leased_buffers
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        w.close();
    });
}

#[test]

fn wait_for_readers_does_not_count_a_dead_reader() {
    watchdog("wait_for_readers vs a dead reader", HANG, || {
        let name = unique_name("wfr-dead");
        let _arena = ArenaGuard(name.clone());
        let mut w = ring_with_a_dead_holder(&name);
        assert!(
            !w.ring_mut().wait_for_readers(1, Duration::from_millis(200)),
            "wait_for_readers(1) returned true though the only reader is dead"
        );
        w.close();
    });
}

/// `TableControl::waiters` as stored in the reader table file.
fn waiters(name: &str) -> u32 {
    let f = File::open(ringfeed_shm::table_path(name)).expect("open reader table");
    let mut b = [0u8; 4];
    f.read_exact_at(
        &mut b,
        TABLE_CONTROL_OFF + offset_of!(TableControl, waiters) as u64,
    )
    .expect("read waiters");
    u32::from_ne_bytes(b)
}

#[test]

fn sweeping_a_reader_killed_in_its_sleep_clears_its_waiter() {
    watchdog("waiters after a dead sleeper", HANG, || {
        let name = unique_name("waiters");
        let _arena = ArenaGuard(name.clone());
        let opts = RingOptions {
            slots: 4,
            slot_bytes: 4096,
            ..RingOptions::default()
        };
        let mut w = Writer::create(&name, &ohlcv_schema(), opts).expect("create ring");
        // A reader that waits (in futex_wait slices of <= 100 ms) for a batch
        // that never comes.
        let sleeper = Proc::spawn(&format!(
            "subscribe --name {name} --expect 1 --start next --timeout-ms 60000"
        ));
        wait_until("the reader to sleep on the futex", HANG, || {
            waiters(&name) == 1
        });
        sleeper.kill9();
        assert_eq!(
            w.ring_mut().sweep_dead_readers(true),
            1,
            "the dead row is swept"
        );
        assert_eq!(
            waiters(&name),
            0,
            "a dead reader still counts as a futex waiter"
        );
        w.close();
    });
}
