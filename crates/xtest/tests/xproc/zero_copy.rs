//! (f) Zero-copy across processes: every buffer of every column of every
//! batch a child wrote lies inside this reader's mapping of the arena.

use crate::common::*;
use ringfeed_arrow::{ReadError, StartAt};
use ringfeed_xtest::{each_buffer, verify_bar_batch};

#[test]
fn every_buffer_of_a_child_written_batch_lies_in_the_arena() {
    watchdog("zero-copy across processes", HANG, || {
        let name = unique_name("zcopy");
        let _arena = ArenaGuard(name.clone());
        let publisher = Proc::spawn(&format!(
            "publish --name {name} --batches 20 --rows 257 --slots 4 \
             --slot-bytes 65536 --block-ms 60000 --wait-readers 1"
        ));
        let mut r = open_reader(&name, StartAt::Oldest);
        let pool = r.ring().pool_range();
        let mut seen = 0u64;
        loop {
            let b = match r.read(HANG) {
                Ok(Some(b)) => b,
                Ok(None) => panic!("watchdog: no batch within {HANG:?}"),
                Err(ReadError::Closed { .. }) => break,
                Err(e) => panic!("read: {e}"),
            };
            seen += 1;
            assert_eq!(b.seq(), seen);
            verify_bar_batch(&b, b.seq()).expect("contents");
            assert_eq!(b.arena_range(), pool);
            let arena = b.arena_range();
            let mut buffers = 0;
            each_buffer(b.columns(), |buf| {
                let (start, len) = (buf.as_ptr() as usize, buf.len());
                if len == 0 {
                    return; // an empty buffer has no bytes to place anywhere
                }
                buffers += 1;
                assert!(
                    arena.contains(&start) && start + len <= arena.end,
                    "batch {}: buffer {start:#x}+{len} is outside the arena {arena:x?}",
                    b.seq()
                );
            });
            // ts values, symbol views, 5 float columns at least.
            assert!(buffers >= 7, "only {buffers} non-empty buffers");
            assert!(b.is_zero_copy());
        }
        assert_eq!(seen, 20);
        let exit = publisher.wait(HANG);
        assert!(exit.status.success(), "{}", exit.stderr);
    });
}
