//! (d) SIGKILL the writer process mid-stream: the reader gets `WriterGone`
//! (not a hang) after verifying every batch it got; a new writer takes over
//! with `open_existing`, the epoch goes up, and the same reader sees the
//! stream continue at `write_seq + 1`.

use crate::common::*;
use ringfeed_arrow::{ReadError, Reader, StartAt, Writer};
use ringfeed_xtest::{bar_batch, verify_bar_batch};
use std::time::Duration;

#[test]
fn killed_writer_gives_writer_gone_then_takeover_continues_the_stream() {
    watchdog("writer death and takeover", HANG, || {
        let name = unique_name("wdeath");
        let _arena = ArenaGuard(name.clone());
        // Lossless (Block) so the reader sees every seq; the interval keeps
        // the writer mid-stream when the kill lands.
        let publisher = Proc::spawn(&format!(
            "publish --name {name} --batches 100000000 --rows 16 --slots 8 \
             --slot-bytes 65536 --block-ms 60000 --wait-readers 1 --interval-us 300"
        ));
        let mut r = open_reader(&name, StartAt::Oldest);
        assert_eq!(
            ringfeed_shm::inspect(&name).expect("inspect").writer_epoch,
            1
        );

        let mut publisher = Some(publisher);
        let mut next = 1u64;
        loop {
            match r.read(HANG) {
                Ok(Some(b)) => {
                    assert_eq!(b.seq(), next, "seqs must rise by one");
                    verify_bar_batch(&b, b.seq()).expect("torn or wrong batch");
                    assert!(b.is_zero_copy());
                    next += 1;
                    if next == 51 {
                        let exit = publisher.take().expect("publisher").kill9();
                        assert!(
                            exit.stdout.is_empty(),
                            "killed mid-stream, not at the end: {:?}",
                            exit.stdout
                        );
                    }
                }
                Ok(None) => panic!("watchdog: neither a batch nor WriterGone within {HANG:?}"),
                Err(ReadError::WriterGone { .. }) => break,
                Err(e) => panic!("after batch {}: unexpected {e}", next - 1),
            }
        }
        assert!(
            publisher.is_none(),
            "WriterGone before the writer was killed"
        );
        let info = ringfeed_shm::inspect(&name).expect("inspect");
        assert!(!info.writer_alive);
        let w_seq = info.write_seq;
        assert_eq!(
            next,
            w_seq + 1,
            "the reader got every published batch before WriterGone"
        );
        // Still gone on a second look: no hang, no phantom batch. (The
        // liveness check is rate-limited to one per 100 ms, so a shorter read
        // may return Ok(None) first.)
        assert!(matches!(r.read(HANG), Err(ReadError::WriterGone { .. })));
        assert!(r.try_read().expect("try_read").is_none());

        let mut w = Writer::open_existing(&name).expect("take over");
        let info = ringfeed_shm::inspect(&name).expect("inspect");
        assert_eq!(info.writer_epoch, 2);
        assert!(info.writer_alive);
        assert_eq!(w.ring().next_seq(), w_seq + 1);
        let schema = w.schema().clone();
        // Lap the ring a few times, so every buffer (including one the dead
        // writer may have left half-written) is used again.
        for seq in w_seq + 1..=w_seq + 40 {
            assert_eq!(
                w.write(&bar_batch(&schema, seq, 16))
                    .expect("write after takeover"),
                seq
            );
            let b = r.read(HANG).expect("read continuation").expect("a batch");
            assert_eq!(b.seq(), seq);
            verify_bar_batch(&b, seq).expect("continuation contents");
        }
        w.close();
        assert!(matches!(r.read(HANG), Err(ReadError::Closed { .. })));
    });
}

/// Reads (verifying every batch, counting lags) until `WriterGone`; returns
/// the reader and the next seq it expects.
fn read_until_writer_gone(mut r: Reader) -> (Reader, u64, u64) {
    let mut expected = r.ring().cursor();
    let mut batches = 0;
    loop {
        match r.read(HANG) {
            Ok(Some(b)) => {
                assert_eq!(b.seq(), expected, "seq after accounting for lags");
                verify_bar_batch(&b, b.seq()).expect("torn or wrong batch");
                expected += 1;
                batches += 1;
            }
            Ok(None) => panic!("watchdog: neither a batch nor WriterGone within {HANG:?}"),
            Err(ReadError::Lagged { missed }) => expected += missed,
            Err(ReadError::WriterGone { .. }) => return (r, expected, batches),
            Err(e) => panic!("unexpected {e}"),
        }
    }
}

#[test]
fn writer_killed_at_arbitrary_points_never_exposes_a_torn_batch() {
    watchdog(
        "writer killed at arbitrary points",
        Duration::from_secs(120),
        || {
            for round in 0..8u64 {
                let name = unique_name("wkill");
                let _arena = ArenaGuard(name.clone());
                // OverwriteOldest at full speed: the writer is nearly always inside
                // `write` (encoding, copying, publishing) when the kill lands.
                let publisher = Proc::spawn(&format!(
                    "publish --name {name} --batches 100000000 --rows 64 --slots 4 \
                     --slot-bytes 65536 --wait-readers 2"
                ));
                let readers: Vec<_> = (0..2)
                    .map(|_| {
                        let name = name.clone();
                        std::thread::spawn(move || {
                            read_until_writer_gone(open_reader(&name, StartAt::Oldest))
                        })
                    })
                    .collect();
                wait_until("the writer to get going", HANG, || {
                    ringfeed_shm::inspect(&name)
                        .map(|i| i.write_seq > 20)
                        .unwrap_or(false)
                });
                let jitter = (round * 7 + std::process::id() as u64) % 23;
                std::thread::sleep(Duration::from_millis(1 + jitter));
                publisher.kill9();
                let mut readers: Vec<(Reader, u64)> = readers
                    .into_iter()
                    .map(|h| {
                        let (r, next, batches) = h.join().expect("reader thread");
                        assert!(batches > 0, "round {round}: a reader got no batch at all");
                        (r, next)
                    })
                    .collect();

                let w_seq = ringfeed_shm::inspect(&name).expect("inspect").write_seq;
                let mut w = Writer::open_existing(&name).expect("take over");
                assert_eq!(
                    ringfeed_shm::inspect(&name).expect("inspect").writer_epoch,
                    2
                );
                assert_eq!(w.ring().next_seq(), w_seq + 1);
                for (_, next) in &readers {
                    assert_eq!(
                        *next,
                        w_seq + 1,
                        "round {round}: a reader stopped short of write_seq"
                    );
                }
                let schema = w.schema().clone();
                let buffers = u64::from(w.ring().geometry().buffers);
                for seq in w_seq + 1..=w_seq + 2 * buffers {
                    assert_eq!(
                        w.write(&bar_batch(&schema, seq, 64))
                            .expect("write after takeover"),
                        seq
                    );
                    for (r, _) in &mut readers {
                        let b = r.read(HANG).expect("read").expect("continuation");
                        assert_eq!(b.seq(), seq);
                        verify_bar_batch(&b, seq).expect("continuation contents");
                    }
                }
                w.close();
            }
        },
    );
}
