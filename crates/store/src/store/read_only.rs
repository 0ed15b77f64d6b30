//! A store opened for queries only, as a type: [`ReadOnlyStore`] lends out `&BarStore` and
//! never `&mut BarStore`, and every write of [`BarStore`] takes `&mut self`, so code that
//! holds a read-only store cannot call a write: it does not compile.
//!
//! ```compile_fail,E0596
//! # use ringfeed_store::store::BarStore;
//! let mut ro = BarStore::open_read_only("ringfeed-data".as_ref()).unwrap();
//! ro.write_down(None, i64::MAX).unwrap(); // error: cannot borrow data in dereference as mutable
//! ```
//!
//! A writer can still be read-only at run time: [`BarStore::open`] on a store whose
//! recovery cannot write (a full disk) serves reads and refuses writes with
//! [`crate::store::WriteError::ReadOnly`] (see [`BarStore::read_only_reason`]).

use super::{BarStore, OpenError};
use crate::catalog::Catalog;
use crate::perms::StoreOptions;
use std::path::Path;

/// A store opened with [`BarStore::open_read_only`]: every query of [`BarStore`] (through
/// `Deref`), no write. It takes no lock, never modifies files, skips (never serves) damaged
/// WAL regions and torn tails, and sees what writers committed up to its open.
pub struct ReadOnlyStore(BarStore);

impl std::ops::Deref for ReadOnlyStore {
    type Target = BarStore;

    fn deref(&self) -> &BarStore {
        &self.0
    }
}

impl ReadOnlyStore {
    /// The store as a [`BarStore`] value, for a slot that holds either kind (the daemon's
    /// stand-in while it reopens its writer). Its writes are refused at run time
    /// ([`crate::store::WriteError::ReadOnly`]).
    pub fn into_inner(self) -> BarStore {
        self.0
    }
}

impl BarStore {
    /// Open an existing store for queries only. Never modifies files; damaged WAL regions
    /// and torn tails are skipped, not served.
    pub fn open_read_only(root: &Path) -> Result<ReadOnlyStore, OpenError> {
        if !root.is_dir() {
            return Err(OpenError::Io {
                path: root.into(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no store here (ingest something first)",
                ),
            });
        }
        Ok(ReadOnlyStore(BarStore::fresh(
            root,
            Catalog::load(root)?,
            false,
            StoreOptions::default(),
            None,
        )))
    }
}
