//! (a) Four reader processes each see all 10,000 batches, in order, with the
//! right contents, from a `Block` (lossless) writer process.

use crate::common::*;
use std::time::Duration;

#[test]
fn four_reader_processes_see_every_batch_in_order() {
    watchdog("fan-out to 4 readers", Duration::from_secs(240), || {
        const N: &str = "10000";
        let name = unique_name("fanout");
        let _arena = ArenaGuard(name.clone());
        let subs: Vec<Proc> = (0..4)
            .map(|_| {
                Proc::spawn(&format!(
                    "subscribe --name {name} --expect {N} --start oldest --rows 4 \
                     --timeout-ms 60000"
                ))
            })
            .collect();
        let publisher = Proc::spawn(&format!(
            "publish --name {name} --batches {N} --rows 4 --slots 64 \
             --slot-bytes 65536 --block-ms 60000 --wait-readers 4"
        ));
        let pub_exit = publisher.wait(Duration::from_secs(200));
        assert!(
            pub_exit.status.success(),
            "publisher failed: {}",
            pub_exit.stderr
        );
        assert_eq!(pub_exit.stdout, vec![format!("published {N}")]);
        for s in subs {
            let (r, exit) = s.report(Duration::from_secs(60));
            assert!(
                exit.status.success(),
                "subscriber failed: {r:?}, stderr: {}",
                exit.stderr
            );
            assert!(r.verified, "{r:?}");
            assert_eq!(r.error, None);
            assert_eq!(r.batches, 10_000);
            assert_eq!(r.first_seq, Some(1));
            assert_eq!(r.last_seq, Some(10_000));
            assert_eq!(r.missed, 0);
            assert!(r.zero_copy, "{r:?}");
        }
    });
}
