//! Who is on the other end of the socket, and where the socket may live.
//!
//! A client must never hand its appends to a listener owned by another user
//! (who could have bound a predictable path first and "acknowledged" them),
//! so every connection checks the peer's uid with `SO_PEERCRED`. Without
//! `XDG_RUNTIME_DIR` the socket lives in a private directory,
//! `/tmp/ringfeed-$UID/` (0700 and ours, checked, never trusted as found).

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// Why a socket's peer or directory is not trusted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// The listening process belongs to another user.
    #[error("the process listening on {path:?} runs as uid {uid}, not as you (uid {me}): refusing to talk to it; stop it, or use your own socket (RINGFEED_SOCKET)")]
    Foreign {
        /// Socket path.
        path: PathBuf,
        /// The peer's uid.
        uid: u32,
        /// Ours.
        me: u32,
    },
    /// The socket's private directory is not private.
    #[error("{path:?} is not a private directory of yours ({why}): remove it, or set RINGFEED_SOCKET or XDG_RUNTIME_DIR")]
    Unsafe {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The peer's credentials could not be read.
    #[error("cannot check who listens on {path:?}: {source}")]
    Io {
        /// Socket path.
        path: PathBuf,
        /// OS error.
        source: io::Error,
    },
}

/// Our effective uid.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The private directory of the fallback socket: `/tmp/ringfeed-$UID`.
pub fn fallback_dir() -> PathBuf {
    PathBuf::from(format!("/tmp/ringfeed-{}", euid()))
}

/// Checks that the process listening on `stream` runs as us (or as root,
/// who could read our memory anyway).
pub fn check_peer(stream: &UnixStream, path: &Path) -> Result<(), PeerError> {
    let cred = rustix::net::sockopt::socket_peercred(stream).map_err(|e| PeerError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    let (uid, me) = (cred.uid.as_raw(), euid());
    if uid == me || uid == 0 {
        Ok(())
    } else {
        Err(PeerError::Foreign {
            path: path.to_path_buf(),
            uid,
            me,
        })
    }
}

/// Creates `dir` as 0700 if missing, then checks that it is a real
/// directory (not a link), owned by us, and closed to group and others.
pub fn ensure_private_dir(dir: &Path) -> Result<(), PeerError> {
    let unsafe_dir = |why: String| PeerError::Unsafe {
        path: dir.to_path_buf(),
        why,
    };
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(unsafe_dir(format!("cannot create it: {e}"))),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| unsafe_dir(e.to_string()))?;
    if !meta.file_type().is_dir() {
        return Err(unsafe_dir("it is not a directory".into()));
    }
    if meta.uid() != euid() {
        return Err(unsafe_dir(format!("it is owned by uid {}", meta.uid())));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(unsafe_dir(format!(
            "its mode is {:o}; it must be 0700",
            meta.permissions().mode() & 0o777
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_dir_is_created_0700_and_a_shared_one_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("rf");
        ensure_private_dir(&d).unwrap();
        assert_eq!(
            std::fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
        ensure_private_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = ensure_private_dir(&d).unwrap_err().to_string();
        assert!(e.contains("0700"), "{e}");
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&d, &link).unwrap();
        let e = ensure_private_dir(&link).unwrap_err().to_string();
        assert!(e.contains("not a directory"), "{e}");
    }

    #[test]
    fn our_own_listener_passes_the_peer_check() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("s.sock");
        let l = std::os::unix::net::UnixListener::bind(&p).unwrap();
        let c = UnixStream::connect(&p).unwrap();
        let _server_side = l.accept().unwrap();
        check_peer(&c, &p).unwrap();
    }
}
