//! `ringfeed::Reader`: a ring reader owned by C++.

use crate::batch::RustBatch;
use crate::c_data::export_schema_to;
use crate::error::{guard, Error};
use crate::ffi;
use std::time::Duration;

/// A ring reader owned by C++ (`ringfeed::Reader`).
pub struct RustReader {
    pub(crate) inner: ringfeed_arrow::Reader,
}

pub(crate) fn reader_open(name: &str, cfg: &ffi::ReaderConfig) -> Result<Box<RustReader>, Error> {
    guard(|| {
        let start = match cfg.start {
            ffi::Start::Oldest => ringfeed_arrow::StartAt::Oldest,
            ffi::Start::Next => ringfeed_arrow::StartAt::Next,
            _ => ringfeed_arrow::StartAt::Latest,
        };
        let opts = ringfeed_arrow::ReaderOptions {
            start,
            spin: Duration::from_micros(cfg.spin_us),
            allow_foreign_owner: cfg.allow_foreign_owner,
            validate: if cfg.validate_full {
                ringfeed_arrow::Validate::Full
            } else {
                ringfeed_arrow::Validate::Trusted
            },
        };
        Ok(Box::new(RustReader {
            inner: ringfeed_arrow::Reader::open_with(name, opts)?,
        }))
    })
}

impl RustReader {
    pub(crate) fn read(&mut self, timeout_ms: u64) -> Result<Box<RustBatch>, Error> {
        guard(|| {
            let b = self.inner.read(Duration::from_millis(timeout_ms))?;
            Ok(Box::new(RustBatch { inner: b }))
        })
    }

    pub(crate) fn try_read(&mut self) -> Result<Box<RustBatch>, Error> {
        guard(|| {
            let b = self.inner.try_read()?;
            Ok(Box::new(RustBatch { inner: b }))
        })
    }

    pub(crate) fn cursor(&self) -> u64 {
        self.inner.ring().cursor()
    }

    pub(crate) fn write_seq(&self) -> u64 {
        self.inner.ring().write_seq()
    }

    pub(crate) fn leases(&self) -> u32 {
        self.inner.ring().leases()
    }

    pub(crate) fn writer_alive(&self) -> bool {
        self.inner.ring().writer_alive()
    }

    pub(crate) fn name(&self) -> String {
        self.inner.ring().name().to_string()
    }

    /// # Safety
    /// `out` points to writable memory for one `ArrowSchema`.
    pub(crate) unsafe fn export_schema(&self, out: *mut ffi::ArrowSchema) -> Result<(), Error> {
        guard(|| export_schema_to(self.inner.schema(), out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::last_error_kind;
    use crate::ffi::ErrorKind;

    #[test]
    fn missing_ring_is_not_found() {
        std::env::set_var("RINGFEED_SHM_DIR", std::env::temp_dir());
        let rc = ffi::ReaderConfig {
            start: ffi::Start::Oldest,
            spin_us: 0,
            allow_foreign_owner: false,
            validate_full: false,
        };
        let e = reader_open("rf-cpp-unit-missing", &rc)
            .err()
            .expect("no such ring");
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert_eq!(last_error_kind(), ErrorKind::NotFound);
    }
}
