//! `RingReader::arm`: an event loop's wait on the ring through an io_uring futex wait
//! (one wake-up per batch, no thread). Skips, saying why, where this kernel cannot.

use ringfeed_shm::{RingOptions, RingReader, RingWriter, StartAt};
use std::os::fd::RawFd;
use std::time::Duration;

/// Whether `fd` turns readable within `ms`.
fn readable(fd: RawFd, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    n == 1 && p.revents & libc::POLLIN != 0
}

/// The `waiters` word of the reader table, as the writer reads it.
fn waiters(name: &str) -> u32 {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(ringfeed_shm::table_path(name)).unwrap();
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, ringfeed_shm::layout::TABLE_CONTROL_OFF)
        .unwrap();
    u32::from_ne_bytes(b)
}

#[test]
fn an_armed_reader_is_woken_through_its_fd_by_each_publish() {
    let name = format!("evented-{}", std::process::id());
    let mut w = RingWriter::create(&name, &RingOptions::default(), b"m").unwrap();
    let mut r = RingReader::open(&name, StartAt::Next).unwrap();
    let fd = match r.arm() {
        Ok(Some(fd)) => fd,
        Ok(None) => panic!("nothing is published yet: the reader must wait"),
        Err(e) => {
            eprintln!("skipped: this kernel cannot wait on a futex through io_uring: {e}");
            return;
        }
    };
    assert_eq!(waiters(&name), 1, "an armed reader counts as a sleeper");
    assert!(!readable(fd, 50), "nothing published: the fd stays quiet");
    // The same fd, and still one count, however often it is armed.
    assert_eq!(r.arm().unwrap(), Some(fd));
    assert_eq!(waiters(&name), 1);
    for i in 1..=3u8 {
        // From another thread, as a writer in another process would.
        let t = std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(20));
                w.publish(&[i], 1, 0).unwrap();
            });
            readable(fd, 10_000)
        });
        assert!(t, "publish {i} woke the fd");
        let l = r
            .try_read()
            .unwrap()
            .expect("the woken reader finds the batch");
        assert_eq!(l.bytes(), &[i]);
        drop(l);
        // Re-armed after reading: quiet again until the next publish.
        assert_eq!(r.arm().unwrap(), Some(fd));
        assert!(!readable(fd, 20), "the old completion was reaped");
    }
    // Idle: the fd still fires once per liveness slice (the loop's cue to check that the
    // writer lives), with nothing to read, and re-arms quietly.
    assert!(readable(fd, 10_000), "the liveness slice ends the wait");
    assert!(r.try_read().unwrap().is_none());
    assert_eq!(r.arm().unwrap(), Some(fd));
    assert!(!readable(fd, 20));
    // A batch already there: no wait, and no longer counted.
    w.publish(b"x", 1, 0).unwrap();
    assert_eq!(r.arm().unwrap(), None);
    assert_eq!(waiters(&name), 0);
    assert_eq!(r.try_read().unwrap().unwrap().bytes(), b"x");
    // A blocking read of an armed reader keeps the single count, and drop takes it back.
    assert!(r.arm().unwrap().is_some());
    assert!(r.read(Duration::from_millis(30)).unwrap().is_none());
    assert_eq!(waiters(&name), 1);
    drop(r);
    assert_eq!(
        waiters(&name),
        0,
        "a dropped armed reader is no longer a sleeper"
    );
    // A closed ring: no wait.
    let mut r = RingReader::open(&name, StartAt::Next).unwrap();
    w.close();
    assert_eq!(r.arm().unwrap(), None);
}
