//! The `rf-xtest` contract itself: the checker rejects wrong data (so a green
//! test means something) and reports a missing ring without hanging.

use crate::common::*;
use arrow_array::{ArrayRef, Float64Array, RecordBatch};
use ringfeed_arrow::{ohlcv_schema, OnFull, RingOptions, Writer};
use ringfeed_xtest::bar_batch;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn subscribe_rejects_a_wrong_value() {
    watchdog("subscribe sees a wrong cell", HANG, || {
        let name = unique_name("wrong");
        let _arena = ArenaGuard(name.clone());
        let opts = RingOptions {
            slots: 8,
            slot_bytes: 64 << 10,
            on_full: OnFull::Block(Duration::from_secs(60)),
            ..RingOptions::default()
        };
        let mut w = Writer::create(&name, &ohlcv_schema(), opts).expect("create");
        let schema = w.schema().clone();
        let sub = Proc::spawn(&format!(
            "subscribe --name {name} --expect 3 --timeout-ms 60000"
        ));
        wait_until("the subscriber to attach", HANG, || {
            !w.ring().readers().is_empty()
        });
        w.write(&bar_batch(&schema, 1, 8)).expect("write 1");
        // Batch 2 with one wrong `volume` cell.
        let good = bar_batch(&schema, 2, 8);
        let mut cols: Vec<ArrayRef> = good.columns().to_vec();
        cols[6] = Arc::new(Float64Array::from(vec![
            0.0, 1.0, 2.0, 3.0, 4.0, 5.5, 6.0, 7.0,
        ]));
        w.write(&RecordBatch::try_new(schema.clone(), cols).expect("batch"))
            .expect("write 2");
        w.write(&bar_batch(&schema, 3, 8)).expect("write 3");
        let (r, exit) = sub.report(HANG);
        assert!(!exit.status.success());
        assert!(!r.verified);
        let err = r.error.expect("an error text");
        assert!(err.contains("batch 2 row 5 column volume"), "{err}");
        w.close();
    });
}

#[test]
fn subscribe_stops_early_at_close_and_fails_without_allow_lag() {
    watchdog("subscribe at close", HANG, || {
        let name = unique_name("short");
        let _arena = ArenaGuard(name.clone());
        let sub = Proc::spawn(&format!(
            "subscribe --name {name} --expect 10 --timeout-ms 60000"
        ));
        let publisher = Proc::spawn(&format!(
            "publish --name {name} --batches 4 --rows 2 --slot-bytes 65536 \
             --block-ms 60000 --wait-readers 1"
        ));
        assert!(publisher.wait(HANG).status.success());
        let (r, exit) = sub.report(HANG);
        assert!(!exit.status.success());
        assert_eq!(
            (r.batches, r.first_seq, r.last_seq, r.verified),
            (4, Some(1), Some(4), false)
        );
        assert!(
            r.error
                .as_deref()
                .unwrap_or("")
                .contains("closed after 4 of 10"),
            "{r:?}"
        );
    });
}

#[test]
fn subscribe_to_a_missing_ring_times_out_with_an_error() {
    watchdog("subscribe to nothing", HANG, || {
        let name = unique_name("missing");
        let sub = Proc::spawn(&format!(
            "subscribe --name {name} --expect 1 --timeout-ms 200"
        ));
        let (r, exit) = sub.report(HANG);
        assert!(!exit.status.success());
        assert_eq!((r.batches, r.first_seq, r.verified), (0, None, false));
        assert!(
            r.error.as_deref().unwrap_or("").contains("no arena named"),
            "{r:?}"
        );
    });
}

#[test]
fn subscribe_start_latest_reads_the_newest_and_next_waits_for_new_ones() {
    watchdog("subscribe --start latest/next", HANG, || {
        let name = unique_name("start");
        let _arena = ArenaGuard(name.clone());
        let mut publisher = Proc::spawn(&format!(
            "publish --name {name} --batches 5 --rows 3 --slot-bytes 65536 --hold"
        ));
        assert_eq!(publisher.next_line(HANG), "published 5");
        let latest = Proc::spawn(&format!(
            "subscribe --name {name} --expect 1 --start latest"
        ));
        let (r, exit) = latest.report(HANG);
        assert!(exit.status.success(), "{r:?} {}", exit.stderr);
        assert_eq!(
            (r.batches, r.first_seq, r.last_seq, r.missed),
            (1, Some(5), Some(5), 0)
        );
        // Nothing new is coming: `next` must not hand out an old batch.
        let next = Proc::spawn(&format!(
            "subscribe --name {name} --expect 1 --start next --timeout-ms 300"
        ));
        let (r, exit) = next.report(HANG);
        assert!(!exit.status.success());
        assert_eq!((r.batches, r.first_seq), (0, None), "{r:?}");
        assert!(
            r.error
                .as_deref()
                .unwrap_or("")
                .contains("no batch within 300 ms"),
            "{r:?}"
        );
        publisher.kill9();
    });
}
