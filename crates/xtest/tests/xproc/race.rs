//! (h) Many reader processes racing a fast `OverwriteOldest` writer process
//! never see a wrong value: every batch they get verifies, and every seq is
//! accounted for as either read or reported missed.

use crate::common::*;
use std::time::Duration;

const READERS: usize = 6;
const N: u64 = 20_000;

#[test]
fn racing_readers_never_observe_a_wrong_value() {
    watchdog(
        "readers racing an overwriting writer",
        Duration::from_secs(180),
        || {
            let name = unique_name("race");
            let _arena = ArenaGuard(name.clone());
            let n = N.to_string();
            let subs: Vec<Proc> = (0..READERS)
                .map(|_| {
                    Proc::spawn(&format!(
                        "subscribe --name {name} --expect {n} --start oldest --allow-lag \
                         --rows 16 --timeout-ms 60000"
                    ))
                })
                .collect();
            // A small ring, so readers are lapped all the time.
            let publisher = Proc::spawn(&format!(
                "publish --name {name} --batches {n} --rows 16 --slots 4 \
                 --slot-bytes 16384 --wait-readers {READERS}"
            ));
            let exit = publisher.wait(Duration::from_secs(150));
            assert!(exit.status.success(), "publisher failed: {}", exit.stderr);
            let mut lagged = 0;
            for s in subs {
                let (r, exit) = s.report(Duration::from_secs(60));
                assert!(
                    exit.status.success() && r.verified,
                    "{r:?}, stderr: {}",
                    exit.stderr
                );
                assert!(r.zero_copy, "{r:?}");
                assert!(r.batches >= 1, "{r:?}");
                assert_eq!(
                    r.batches + r.missed,
                    N,
                    "every seq is read or reported missed: {r:?}"
                );
                if r.missed > 0 {
                    lagged += 1;
                }
            }
            // Not asserted (it depends on scheduling), but worth seeing in the log.
            eprintln!("{lagged} of {READERS} readers were lapped at least once");
        },
    );
}
