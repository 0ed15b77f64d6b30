//! (g) A writer that died leaves its arena file behind. Creating over it fails
//! with `AlreadyExists` saying the writer is gone, and succeeds with `force`.
//! While the writer lived, the same error said so instead.

use crate::common::*;
use ringfeed_arrow::{ohlcv_schema, CreateError, RingOptions, Writer};
use ringfeed_xtest::bar_batch;

fn create(name: &str, force: bool) -> Result<Writer, CreateError> {
    let opts = RingOptions {
        slots: 4,
        slot_bytes: 64 << 10,
        force,
        ..RingOptions::default()
    };
    Writer::create(name, &ohlcv_schema(), opts)
}

fn expect_exists(name: &str, alive: bool) {
    match create(name, false) {
        Err(CreateError::Ring(
            e @ ringfeed_shm::CreateError::AlreadyExists { writer_alive, .. },
        )) => {
            assert_eq!(writer_alive, alive, "{e}");
            let msg = e.to_string();
            let hint = if alive {
                "writer is alive"
            } else {
                "writer is gone"
            };
            assert!(msg.contains(hint), "message should say {hint:?}: {msg}");
        }
        Err(e) => panic!("expected AlreadyExists, got {e}"),
        Ok(_) => panic!("create over an existing arena must fail without force"),
    }
}

#[test]
fn leftover_of_a_dead_writer_is_reported_and_force_replaces_it() {
    watchdog("leftover arena", HANG, || {
        let name = unique_name("leftover");
        let _arena = ArenaGuard(name.clone());
        let mut publisher = Proc::spawn(&format!(
            "publish --name {name} --batches 3 --rows 4 --slots 4 \
             --slot-bytes 65536 --hold"
        ));
        assert_eq!(publisher.next_line(HANG), "published 3");
        expect_exists(&name, true);
        assert!(matches!(
            Writer::open_existing(&name),
            Err(ringfeed_arrow::OpenError::Ring(
                ringfeed_shm::OpenError::WriterAlive { .. }
            ))
        ));

        publisher.kill9();
        assert!(
            ringfeed_shm::arena_path(&name).exists(),
            "SIGKILL leaves the file"
        );
        assert!(ringfeed_shm::list_arenas().expect("list").contains(&name));
        let info = ringfeed_shm::inspect(&name).expect("inspect");
        assert!(!info.writer_alive);
        assert_eq!(info.write_seq, 3);
        expect_exists(&name, false);

        let mut w = create(&name, true).expect("create with force over a leftover");
        let fresh = ringfeed_shm::inspect(&name).expect("inspect");
        assert_ne!(
            fresh.header.instance_id, info.header.instance_id,
            "a new arena, not the old one"
        );
        assert_eq!((fresh.write_seq, fresh.writer_epoch), (0, 1));
        let schema = w.schema().clone();
        assert_eq!(w.write(&bar_batch(&schema, 1, 4)).expect("write"), 1);
        w.close();
        assert!(
            !ringfeed_shm::arena_path(&name).exists(),
            "close removes the file"
        );
    });
}
