//! The writer lock: one writer per data directory, an advisory `flock` the kernel
//! releases when the holder dies.

use super::OpenError;
use crate::perms::{Create, StoreOptions};
use std::fs::File;
use std::path::Path;

/// The file in a data directory that its writer holds an exclusive `flock` on (the
/// leading `_` keeps Hive-style readers of the cold tier away from it).
pub const WRITER_LOCK: &str = "_writer.lock";

/// How long [`BarStore::open`] waits for the writer lock before it says who holds it.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Take the data directory's writer lock, or say who has it. The lock is advisory
/// (`flock`), held for the life of the returned file, and released by the kernel when the
/// process dies, so a crashed writer never leaves a stale lock behind. The file holds the
/// holder's pid, for the error message only.
pub(super) fn lock_writer(root: &Path, opts: &StoreOptions) -> Result<File, OpenError> {
    use std::io::{Read, Seek, Write};
    let path = root.join(WRITER_LOCK);
    let io = |source| OpenError::Io {
        path: path.clone(),
        source,
    };
    let (mut f, _) = opts
        .open_write(&path, Create::either().and_read())
        .map_err(io)?;
    // A lock whose holder just let go can still look held for a moment: a process that
    // forks (a thread of it spawning a child) while it holds the lock shares the locked
    // file with that child until the child's exec closes it. Wait that out briefly.
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    let res = loop {
        // fs4 (flock through rustix): std's `File::try_lock` needs Rust 1.89, above our MSRV.
        match fs4::FileExt::try_lock(&f) {
            Err(fs4::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            res => break res,
        }
    };
    match res {
        Ok(()) => {}
        Err(fs4::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = f.read_to_string(&mut text);
            let holder = match text.trim().parse::<u32>() {
                Ok(pid) => match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
                    Ok(comm) => format!("pid {pid} ({})", comm.trim()),
                    Err(_) => format!("pid {pid}"),
                },
                Err(_) => "another process".to_string(),
            };
            return Err(OpenError::Locked {
                root: root.into(),
                holder,
            });
        }
        Err(fs4::TryLockError::Error(e)) => return Err(io(e)),
    }
    // Ours now: record who we are (best effort; only error messages read it).
    let _ = f
        .set_len(0)
        .and_then(|()| f.rewind())
        .and_then(|()| writeln!(f, "{}", std::process::id()));
    Ok(f)
}
