//! Who may read a data directory, and how its files are created.
//!
//! Every directory the store creates gets [`StoreOptions::dir_mode`] (default `0700`) and
//! every file [`StoreOptions::file_mode`] (default `0600`): WAL, catalog, Parquet, the
//! writer lock and quarantine files alike, as the daemon's arenas and socket are. Modes
//! are set on the new file or directory itself (`fchmod`/`chmod` after an `O_CREAT` with
//! the mode), so a permissive umask cannot widen them and a strict one cannot narrow them.
//! Existing files and directories keep their modes; `ringfeed fsck` reports the ones that
//! are wider than configured.
//!
//! ```
//! use ringfeed_store::{BarStore, StoreOptions};
//! use std::os::unix::fs::PermissionsExt;
//! let dir = tempfile::tempdir().unwrap();
//! let root = dir.path().join("data");
//! let _store = BarStore::open_with(&root, StoreOptions::default().group_readable()).unwrap();
//! assert_eq!(std::fs::metadata(&root).unwrap().permissions().mode() & 0o777, 0o750);
//! ```

use std::fs::{File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

/// `ENOSPC`: no space left on the device (Linux errno).
pub const ENOSPC: i32 = 28;
/// `EDQUOT`: disk quota exceeded (Linux errno).
pub const EDQUOT: i32 = 122;
/// `EROFS`: the file system is mounted read-only (Linux errno).
pub const EROFS: i32 = 30;

/// How the store creates its files, and a switch for tests of failing disks.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Mode of directories the store creates (default `0o700`).
    pub dir_mode: u32,
    /// Mode of files the store creates (default `0o600`).
    pub file_mode: u32,
    /// Test hook: while set, every durable write of the store fails (see [`WriteFault`]).
    pub fault: Option<WriteFault>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            dir_mode: 0o700,
            file_mode: 0o600,
            fault: None,
        }
    }
}

impl StoreOptions {
    /// Let the owner's group read the data (directories `0750`, files `0640`), e.g. for a
    /// DuckDB user in the same group reading the cold tier in place.
    pub fn group_readable(mut self) -> Self {
        self.dir_mode = 0o750;
        self.file_mode = 0o640;
        self
    }

    /// Create `path` and its missing parents with [`StoreOptions::dir_mode`]; directories
    /// that exist keep their mode.
    pub fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        if path.is_dir() {
            return Ok(());
        }
        // (A relative path's last ancestor is "", the current directory.)
        let missing: Vec<&Path> = path
            .ancestors()
            .take_while(|p| !p.as_os_str().is_empty() && !p.is_dir())
            .collect();
        for dir in missing.into_iter().rev() {
            self.check_fault(dir)?;
            match std::fs::DirBuilder::new().mode(self.dir_mode).create(dir) {
                Ok(()) => std::fs::set_permissions(dir, Permissions::from_mode(self.dir_mode))?,
                // Another thread of this writer (a parallel WAL append) made it first.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Open `path` for writing, creating it with [`StoreOptions::file_mode`] when
    /// `create` (failing if it exists when `create_new`). Returns the file and whether it
    /// was created.
    pub fn open_write(&self, path: &Path, how: Create) -> io::Result<(File, bool)> {
        let mut o = OpenOptions::new();
        o.write(true).read(how.read).mode(self.file_mode);
        let (file, created) = match how.mode {
            CreateMode::Existing => (o.open(path)?, false),
            CreateMode::New => {
                self.check_fault(path)?;
                (o.create_new(true).open(path)?, true)
            }
            CreateMode::Truncate => {
                self.check_fault(path)?;
                (o.create(true).truncate(true).open(path)?, true)
            }
            CreateMode::Either => match o.clone().create_new(true).open(path) {
                Ok(f) => (f, true),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => (o.open(path)?, false),
                Err(e) => return Err(e),
            },
        };
        if created {
            file.set_permissions(Permissions::from_mode(self.file_mode))?;
        }
        Ok((file, created))
    }

    /// Write `path` atomically with [`StoreOptions::file_mode`]: a temp file beside it,
    /// fsync, rename, fsync the directory. A failure removes the temp file (best effort):
    /// on a full disk it is the space someone needs.
    pub fn write_atomic(&self, path: &Path, body: &[u8]) -> io::Result<()> {
        use std::io::Write;
        let tmp = tmp_path(path);
        let res = (|| {
            let (mut f, _) = self.open_write(&tmp, Create::truncate())?;
            self.check_fault(&tmp)?;
            f.write_all(body)?;
            f.sync_all()
        })();
        if let Err(e) = res {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, path)?;
        sync_dir(path.parent().unwrap_or(Path::new(".")))
    }

    /// Fail the way a full disk does while the test hook is set (for `path`).
    pub fn check_fault(&self, path: &Path) -> io::Result<()> {
        match &self.fault {
            Some(f) => f.check(path),
            None => Ok(()),
        }
    }

    /// Fail the undo of a failed write while the test hook says so.
    pub fn check_undo_fault(&self) -> io::Result<()> {
        match &self.fault {
            Some(f) => f.check_undo(),
            None => Ok(()),
        }
    }
}

/// How [`StoreOptions::open_write`] treats a file that exists or not.
#[derive(Clone, Copy, Debug)]
pub struct Create {
    mode: CreateMode,
    read: bool,
}

#[derive(Clone, Copy, Debug)]
enum CreateMode {
    Existing,
    New,
    Truncate,
    Either,
}

impl Create {
    /// The file must exist.
    pub fn existing() -> Self {
        Create {
            mode: CreateMode::Existing,
            read: false,
        }
    }
    /// The file must not exist (`O_EXCL`).
    pub fn new_only() -> Self {
        Create {
            mode: CreateMode::New,
            read: false,
        }
    }
    /// Create or empty it.
    pub fn truncate() -> Self {
        Create {
            mode: CreateMode::Truncate,
            read: false,
        }
    }
    /// Create it if missing, else open it as it is.
    pub fn either() -> Self {
        Create {
            mode: CreateMode::Either,
            read: false,
        }
    }
    /// Open for reading too.
    pub fn and_read(mut self) -> Self {
        self.read = true;
        self
    }
}

/// The temp name [`StoreOptions::write_atomic`] writes before renaming: `<name>.tmp`.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// fsync a directory so renames and creations in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Whether an OS error means the disk cannot take more data (full, over quota, or
/// mounted read-only): the store then stays readable and refuses writes.
pub fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(ENOSPC | EDQUOT | EROFS))
}

/// A switch that makes the store's durable writes (WAL frames, catalog versions, Parquet
/// parts, quarantine copies, new files and directories) fail with an OS error: how tests
/// reproduce a full disk without one. A fault can be limited to the files under one path
/// (a rollup's WAL directory, say), and the undo of a failed write (cutting its WAL frames
/// back) can be made to fail too. Clones share the switch.
///
/// ```
/// use ringfeed_store::perms::{WriteFault, ENOSPC};
/// use std::path::Path;
/// let fault = WriteFault::default();
/// fault.set(Some(ENOSPC));
/// assert_eq!(fault.check(Path::new("any")).unwrap_err().raw_os_error(), Some(ENOSPC));
/// fault.set_for(Some(ENOSPC), Path::new("/data/_hot/d/5m"));
/// assert!(fault.check(Path::new("/data/_hot/d/5m/1970-01-01.wal")).is_err());
/// assert!(fault.check(Path::new("/data/_hot/d/1m/1970-01-01.wal")).is_ok());
/// fault.set(None);
/// assert!(fault.check(Path::new("any")).is_ok());
/// ```
#[derive(Clone, Debug, Default)]
pub struct WriteFault(Arc<FaultState>);

#[derive(Debug, Default)]
struct FaultState {
    /// The errno writes fail with (0: none).
    errno: AtomicI32,
    /// Only writes to this path or under it fail (`None`: every write).
    only: Mutex<Option<PathBuf>>,
    /// The errno the undo of a failed write fails with (0: none).
    undo: AtomicI32,
}

impl WriteFault {
    /// Make every write fail with `errno` (`None`: let them succeed again).
    pub fn set(&self, errno: Option<i32>) {
        self.set_scope(errno, None);
    }

    /// Make writes to `path`, or to anything under it, fail with `errno` (`None`: let
    /// every write succeed again).
    pub fn set_for(&self, errno: Option<i32>, path: &Path) {
        self.set_scope(errno, Some(path.to_path_buf()));
    }

    fn set_scope(&self, errno: Option<i32>, only: Option<PathBuf>) {
        *self.0.only.lock().unwrap_or_else(|p| p.into_inner()) = only;
        // Relaxed: a test flips it between operations on one thread; no data depends on it.
        self.0.errno.store(errno.unwrap_or(0), Ordering::Relaxed);
    }

    /// Make the undo of a failed write (cutting back the WAL frames it wrote) fail with
    /// `errno` too (`None`: let it succeed): how tests reach the read-only fallback.
    pub fn set_undo(&self, errno: Option<i32>) {
        // Relaxed: as in `set_scope`.
        self.0.undo.store(errno.unwrap_or(0), Ordering::Relaxed);
    }

    /// The error a write to `path` gets now, if any.
    pub fn check(&self, path: &Path) -> io::Result<()> {
        match self.0.errno.load(Ordering::Relaxed) {
            0 => Ok(()),
            errno => {
                let only = self.0.only.lock().unwrap_or_else(|p| p.into_inner());
                match &*only {
                    Some(dir) if !path.starts_with(dir) => Ok(()),
                    _ => Err(io::Error::from_raw_os_error(errno)),
                }
            }
        }
    }

    /// The error the undo of a failed write gets now, if any.
    pub fn check_undo(&self) -> io::Result<()> {
        match self.0.undo.load(Ordering::Relaxed) {
            0 => Ok(()),
            errno => Err(io::Error::from_raw_os_error(errno)),
        }
    }
}

/// What is wider than configured in a data directory: `(path, mode found)` for each
/// directory or file whose mode grants bits beyond [`StoreOptions::dir_mode`] /
/// [`StoreOptions::file_mode`]. `ringfeed fsck` reports them.
pub fn too_open(root: &Path, opts: &StoreOptions) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        let want = if meta.is_dir() {
            opts.dir_mode
        } else {
            opts.file_mode
        };
        if mode & !want != 0 {
            out.push((p.clone(), mode));
        }
        if meta.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.filter_map(|e| e.ok().map(|e| e.path())));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_and_nested_directories_get_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions::default();
        opts.create_dir_all(&dir.path().join("a/b/c")).unwrap();
        for p in ["a", "a/b", "a/b/c"] {
            let m = std::fs::metadata(dir.path().join(p)).unwrap();
            assert_eq!(m.permissions().mode() & 0o777, 0o700, "{p}");
        }
        // A relative path (the CLI's default data dir is one) resolves from the cwd.
        let cwd = std::env::current_dir().unwrap();
        let rel = Path::new("target-perms-test-dir/x");
        let _ = std::fs::remove_dir_all("target-perms-test-dir");
        opts.create_dir_all(rel).unwrap();
        assert!(cwd.join(rel).is_dir());
        std::fs::remove_dir_all("target-perms-test-dir").unwrap();
        // Existing directories are fine, and keep their mode.
        opts.create_dir_all(dir.path()).unwrap();
    }
}
