//! A forked child must not keep its parent's liveness locks alive (it
//! inherits the open file descriptions through fds and mappings), and must
//! not release them either. Real `fork()`s; one test per binary keeps the
//! forking process single-threaded apart from the harness.

use ringfeed_shm::{inspect, ReadError, RingOptions, RingReader, RingWriter, StartAt};
use std::time::{Duration, Instant};

fn wait_pid(pid: libc::pid_t) {
    let mut st = 0;
    // SAFETY: waits for our own child; `st` is a valid out-pointer.
    unsafe { libc::waitpid(pid, &mut st, 0) };
}

fn alive(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[test]
fn a_forked_child_neither_keeps_nor_drops_the_parents_locks() {
    let name = format!("fork-{}", std::process::id());
    let mut fds = [0; 2];
    // SAFETY: valid out-array for two fds.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);

    // Part 1: a writer process W forks a child C that lives on; killing W
    // must make the writer look dead while C lives.
    // SAFETY: the child only calls async-signal-safe functions until it
    // creates the writer, which allocates: acceptable in a test (glibc resets
    // its allocator locks in the child).
    let w_pid = unsafe { libc::fork() };
    assert!(w_pid >= 0);
    if w_pid == 0 {
        let w = RingWriter::create(&name, &RingOptions::default(), b"m").unwrap();
        let r = RingReader::open(&name, StartAt::Oldest).unwrap();
        // SAFETY: plain fork; the grandchild sleeps until killed.
        let c = unsafe { libc::fork() };
        if c == 0 {
            loop {
                // SAFETY: plain sleep.
                unsafe { libc::pause() };
            }
        }
        let msg = c.to_ne_bytes();
        // SAFETY: writes 4 bytes from a valid buffer to our pipe.
        unsafe { libc::write(fds[1], msg.as_ptr().cast(), 4) };
        std::mem::forget((w, r));
        loop {
            // SAFETY: plain sleep.
            unsafe { libc::pause() };
        }
    }
    let mut msg = [0u8; 4];
    // SAFETY: reads 4 bytes into a valid buffer.
    assert_eq!(unsafe { libc::read(fds[0], msg.as_mut_ptr().cast(), 4) }, 4);
    let c_pid = libc::pid_t::from_ne_bytes(msg);
    assert!(inspect(&name).unwrap().writer_alive);
    assert_eq!(inspect(&name).unwrap().readers.len(), 1);
    // SAFETY: kill our own child.
    unsafe { libc::kill(w_pid, libc::SIGKILL) };
    wait_pid(w_pid);
    let c_alive = alive(c_pid);
    let info = inspect(&name).unwrap();
    // SAFETY: kill the grandchild (reparented to init or a subreaper) before
    // asserting, so a failure does not leave it holding the harness's pipes.
    unsafe { libc::kill(c_pid, libc::SIGKILL) };
    assert!(c_alive, "the grandchild must outlive its parent here");
    assert!(
        !info.writer_alive,
        "the child of a killed writer keeps its lock alive"
    );
    // The dead writer's reader row is reclaimable too: a takeover sweeps it.
    let mut w = RingWriter::open_existing(&name).expect("take over the dead writer's arena");
    assert!(w.readers().is_empty(), "the dead reader's row is freed");

    // Part 2: in this (live) process, a child that forks and exits must not
    // release our writer lock or our reader row.
    let mut r = RingReader::open(&name, StartAt::Next).unwrap();
    // SAFETY: the child exits at once without running destructors.
    let c = unsafe { libc::fork() };
    if c == 0 {
        // SAFETY: leave without touching the inherited handles.
        unsafe { libc::_exit(0) };
    }
    wait_pid(c);
    let info = inspect(&name).unwrap();
    assert!(info.writer_alive, "a child's exit released our writer lock");
    assert_eq!(
        info.readers.len(),
        1,
        "a child's exit released our reader row"
    );
    // Both still work, and every acknowledged batch arrives.
    let deadline = Instant::now() + Duration::from_secs(30);
    for k in 0..5u64 {
        let seq = w.publish(&k.to_le_bytes(), 1, 0).unwrap();
        let l = r.read(Duration::from_secs(5)).unwrap().expect("a batch");
        assert_eq!(l.seq(), seq);
        assert_eq!(l.bytes(), k.to_le_bytes());
        assert!(Instant::now() < deadline);
    }
    w.close();
    assert!(matches!(
        r.read(Duration::from_secs(5)),
        Err(ReadError::Closed { .. })
    ));
}
