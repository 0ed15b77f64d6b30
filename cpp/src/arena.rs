//! Arenas by name: inspect and remove them.

use crate::error::{guard, Error};
use crate::ffi;

pub(crate) fn arena_status(name: &str) -> Result<ffi::ArenaStatus, Error> {
    guard(|| {
        let info = ringfeed_arrow::arena::inspect(name)?;
        Ok(ffi::ArenaStatus {
            state: info.state.to_string(),
            write_seq: info.write_seq,
            writer_alive: info.writer_alive,
            readers: info.readers.len() as u32,
            leases: info.readers.iter().map(|r| r.leases).sum(),
            leased_buffers: info.leased_buffers,
            slots: info.header.slots,
            buffers: info.header.buffers,
            slot_bytes: info.header.buffer_bytes,
        })
    })
}

pub(crate) fn arena_remove(name: &str) -> Result<(), Error> {
    guard(|| Ok(ringfeed_arrow::arena::remove(name)?))
}
