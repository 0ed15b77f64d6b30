//! The Arrow C Data Interface structs that cross the bridge as raw pointers:
//! borrowing, taking and filling them.

use crate::error::Error;
use crate::ffi::{self, ErrorKind};
use arrow_array::ffi::{FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_schema::Schema;

// The C structs and arrow-rs's `#[repr(C)]` mirrors must agree (64-bit layout).
const _: () = assert!(std::mem::size_of::<FFI_ArrowArray>() == 80);
const _: () = assert!(std::mem::size_of::<FFI_ArrowSchema>() == 72);
const _: () = assert!(std::mem::size_of::<FFI_ArrowArrayStream>() == 40);

/// Borrows the schema behind `ptr`.
///
/// # Safety
/// `ptr` is null or points to an `ArrowSchema` that stays valid for `'a`.
pub(crate) unsafe fn borrow_schema<'a>(
    ptr: *const ffi::ArrowSchema,
) -> Result<&'a FFI_ArrowSchema, Error> {
    // SAFETY: the C struct and `FFI_ArrowSchema` have the same `#[repr(C)]`
    // layout (size asserted above); validity of `ptr` is the caller's promise.
    let schema = unsafe { ptr.cast::<FFI_ArrowSchema>().as_ref() }
        .ok_or_else(|| Error::new(ErrorKind::InvalidArgument, "ArrowSchema pointer is null"))?;
    if schema.release().is_none() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "ArrowSchema is released (its release callback is null)",
        ));
    }
    Ok(schema)
}

/// Moves the array behind `ptr` out (leaving a released one behind), so that
/// it is released exactly once, when the result is dropped. A released
/// array comes out released.
///
/// # Safety
/// `ptr` is null or points to a valid `ArrowArray` (maybe released).
pub(crate) unsafe fn take_array(ptr: *mut ffi::ArrowArray) -> Result<FFI_ArrowArray, Error> {
    if ptr.is_null() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "ArrowArray pointer is null",
        ));
    }
    // SAFETY: `ptr` is non-null and valid (the caller's promise), and the C
    // struct and `FFI_ArrowArray` share layout (size asserted above);
    // `from_raw` moves the struct out and marks the original released.
    // A released array is refused by `foreign::import_array`.
    Ok(unsafe { FFI_ArrowArray::from_raw(ptr.cast::<FFI_ArrowArray>()) })
}

/// Moves `value` into the C struct at `out`.
///
/// # Safety
/// `out` is null or points to writable memory for one `T`; whatever it held is
/// overwritten without being released (the C Data Interface convention for out-parameters).
pub(crate) unsafe fn write_out<T, C>(out: *mut C, value: T, what: &str) -> Result<(), Error> {
    if out.is_null() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("{what} out-pointer is null"),
        ));
    }
    // SAFETY: non-null, writable for one `T` (the caller's promise; the C
    // struct and the arrow-rs mirror share layout). `write` does not drop the
    // old contents.
    unsafe { std::ptr::write(out.cast::<T>(), value) };
    Ok(())
}

pub(crate) fn export_schema_to(schema: &Schema, out: *mut ffi::ArrowSchema) -> Result<(), Error> {
    let c = FFI_ArrowSchema::try_from(schema)
        .map_err(|e| Error::new(ErrorKind::Other, format!("cannot export schema: {e}")))?;
    // SAFETY: forwarded from the bridge function's `# Safety` contract.
    unsafe { write_out(out, c, "ArrowSchema") }
}
