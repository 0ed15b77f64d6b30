//! Arenas by name: list, inspect and remove them, find where they live.
//!
//! What the bindings and tools need from `ringfeed-shm` besides the ring
//! itself, re-exported (or wrapped to return this crate's [`OpenError`]), so
//! that they depend on this crate alone and map every error with one
//! `match err.kind()`.
//!
//! ```
//! # std::env::set_var("RINGFEED_SHM_DIR", std::env::temp_dir());
//! use ringfeed_arrow::{arena, ErrorKind};
//! let err = arena::remove("no-such-arena").unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::NotFound);
//! assert!(arena::check_name("../etc").is_err());
//! ```

use crate::error::OpenError;

pub use ringfeed_shm::layout::Geometry;
pub use ringfeed_shm::{arena_path, check_name, list_arenas, shm_dir, ArenaInfo, ReaderInfo};

/// Removes arena `name` from the shm directory. Processes that have it
/// mapped keep their pages; new opens fail with [`crate::ErrorKind::NotFound`].
pub fn remove(name: &str) -> Result<(), OpenError> {
    Ok(ringfeed_shm::remove(name)?)
}

/// Validates and snapshots arena `name` (header, state, readers, leases)
/// without joining it as a reader.
pub fn inspect(name: &str) -> Result<ArenaInfo, OpenError> {
    Ok(ringfeed_shm::inspect(name)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorKind, RingOptions, Writer};

    #[test]
    fn inspect_list_and_remove_by_name() {
        let name = format!("arena-mod-{}", std::process::id());
        let w = Writer::create(&name, &crate::ohlcv_schema(), RingOptions::default()).unwrap();
        assert!(list_arenas().unwrap().contains(&name));
        let info = inspect(&name).unwrap();
        assert!(info.writer_alive);
        assert!(arena_path(&name).starts_with(shm_dir()));
        remove(&name).unwrap();
        assert_eq!(inspect(&name).unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(
            remove("../x").unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        drop(w);
    }
}
