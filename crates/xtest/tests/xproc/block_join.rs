//! A reader that joins a running `Block` ring at the oldest batch must not
//! be lapped: `Block` is lossless for every live reader.

use crate::common::*;
use ringfeed_arrow::{ReadError, StartAt};
use std::time::Duration;

#[test]

fn late_joiner_of_a_block_ring_is_never_lapped() {
    watchdog(
        "late joiners of a Block ring",
        Duration::from_secs(120),
        || {
            let name = unique_name("bjoin");
            let _arena = ArenaGuard(name.clone());
            // A lossless stream through a tiny ring. Once the first reader has
            // left, the writer runs free until a joiner attaches.
            let _publisher = Proc::spawn(&format!(
                "publish --name {name} --batches 1000000000 --rows 1 --slots 2 \
                 --slot-bytes 4096 --block-ms 60000 --wait-readers 1"
            ));
            let mut first = open_reader(&name, StartAt::Oldest);
            drop(first.read(HANG));
            drop(first);
            let mut lapped = 0;
            for _ in 0..3000 {
                let mut r = open_reader(&name, StartAt::Oldest);
                match r.read(HANG) {
                    Ok(Some(_)) => {}
                    Err(ReadError::Lagged { .. }) => lapped += 1,
                    other => panic!("unexpected {other:?}"),
                }
            }
            assert_eq!(
                lapped, 0,
                "joiners of a Block ring were lapped on their first read"
            );
        },
    );
}
